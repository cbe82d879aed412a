//! JSON (RFC 8259): a bounded parser into a reusable tape for the message policies, and the
//! one string escaper every JSON answer and log line uses.

pub mod parse;
pub mod write;
