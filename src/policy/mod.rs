//! The policy engine's sans-I/O pieces.

pub mod condition;
pub mod limits;
pub mod pattern;
