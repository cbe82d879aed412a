//! HTTP/1.1 heads and responses, sans-I/O.
