//! wsgate's integration tests, in one binary: the shared harness (`common`) compiles and links
//! once instead of once per file. Each module is one capability, driven over real sockets
//! against independent peers; `cargo test --release MODULE::` runs one of them.

mod common;

// Configuration: loading, errors with file:line, the shipped and seed files.
mod config_backend;
mod config_errors;
mod config_full;
mod config_https;
mod config_ranges;
mod config_seed;
mod default_config;

// Message validation: the validator against an independent JSON Schema implementation.
mod validate_crosscheck;

// The engine: upgrade handshakes, the relay and its close rules, the frame codec against
// tungstenite.
mod backend_addresses;
mod engine_flow;
mod engine_handshake;
mod engine_relay;
mod frame_tungstenite;
mod redirects;
mod relay_end;

// Limits: count, message and plan limits, identification, release on every path, the table
// of run-time keys, control frames.
mod limits_control;
mod limits_count;
mod limits_identify;
mod limits_messages;
mod limits_plan;
mod limits_release;
mod limits_switch;
mod limits_table;

// Plain calls through invoke, and the assembly around them.
mod forwarded;
mod invoke;
mod invoke_answers;
mod invoke_flow;
mod invoke_stream;
mod policy_catch;

// TLS on both sides.
mod tls;

// Operating it: activity log, metrics, reload, the status page.
mod activity_log;
mod admin_auth;
mod metrics;
mod reload;
mod status_page;

// Abuse, faults and conformance.
mod adversaries;
mod autobahn;
mod faults;
mod floods;
mod fuzz_corpus;

// The harness's own checks.
mod harness_selftest;
