//! JSON (RFC 8259) for the message policies: a bounded parser into a reusable tape.

pub mod parse;
