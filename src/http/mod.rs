//! HTTP/1.1 heads and responses, sans-I/O.

pub mod head;
pub mod response;
pub mod url;
