//! HTTP/1.1 heads, body framing and responses, sans-I/O.

pub mod answer;
pub mod auth;
pub mod body;
pub mod forward;
pub mod forwarded;
pub mod head;
pub mod response;
pub mod url;
