//! wsgate: a WebSocket API gateway that runs IBM API Connect API and Product YAML as they are.
//!
//! The crate follows the path of a connection. [`config`] loads the YAML into the compiled
//! [`model`]. The sans-I/O core ([`http`] for request heads and responses, [`ws`] for the
//! handshake and the frame codec, [`route`] for the route table, [`policy`] for the policy
//! engine) works on byte slices only. [`engine`] is the one thin driver: a single-threaded mio
//! loop that moves bytes between sockets and those state machines.
//!
//! Embedding: load a model with [`config::load`], build a [`engine::Gateway`] from it and call
//! [`engine::Gateway::run`].

pub mod activity;
pub mod cli;
pub mod config;
pub mod engine;
pub mod fuzz_checks;
pub mod http;
pub mod json;
#[cfg(test)]
mod memory;
pub mod model;
pub mod policy;
pub mod route;
pub mod tls;
pub mod validate;
pub mod ws;
