//! WebSocket handshake and frame codec, sans-I/O.

pub mod frame;
pub mod handshake;
