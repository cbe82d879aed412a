//! Shared helpers for wsgate's integration tests: `tests/main.rs` declares it once for every module.
//!
//! - `conf`: temp config dirs (`TempConf`, `GatewayYaml`, seed and keyless API files)
//! - `gateway`: the `wsgate` binary as a child process (`Gateway`, `run_wsgate`)
//! - `backend`: a tungstenite backend that records what it receives (`EchoBackend`, `Mode`)
//! - `client`: tungstenite client and raw TCP helpers (`ws_connect`, `RawConn`, `http_request`)
//! - `tls`: test CAs and certificates (rcgen), rustls client/server configs, `wss_connect`
//! - `python`: the Python peers (`python`, `PyEcho`, `run_py_client`, `PyHttpEcho`)
//! - `hosts`: the gateway under an /etc/hosts of the test's own (`unshare -rm`)
//! - `redirect`: a tungstenite backend that redirects, then upgrades (`WsRedirector`)
//! - `admin`: the admin listener's `/limits`, `/stats` and test clock, and waiting on them
//! - `limits`: seed files with edits, applications A and B, refused upgrades with headers
//! - `keys`: a keyless API whose limits use the run-time key table, clients from any loopback address
//! - `pinger`: a backend that floods pings and reports the close it got
//! - `load`: sockets by the thousand: source addresses, kernel buffer sizes, resets, measures
//! - `raw_http`: a raw HTTP backend that answers with fixed bytes (`RawHttpBackend`, `Reply`)
//! - `browser`: headless Chromium on the status page (`dump_dom`, `screenshot`), installed by
//!   `tests/peers/setup-chromium.sh`
//! - `proc`, `sync`: child processes stopped by pid, and waiting on state without sleeps
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod backend;
pub mod browser;
pub mod client;
pub mod conf;
pub mod gateway;
pub mod hosts;
pub mod keys;
pub mod limits;
pub mod load;
pub mod pinger;
pub mod proc;
pub mod python;
pub mod raw_http;
pub mod redirect;
pub mod sync;
pub mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub use backend::{EchoBackend, Mode, SeenRequest, TlsSeen};
pub use client::{
    HttpResponse, RawConn, Ws, close_and_wait, expect_refused, http_error, http_request,
    read_until_closed, recv_data, roundtrip, upgrade_request, ws_connect, ws_connect_with,
};
pub use conf::{GatewayYaml, OpenApi, TempConf, TlsCertConf};
pub use gateway::{Gateway, run_wsgate};
pub use python::{PyEcho, PyHttpEcho, SeenHttp, python, run_py_client};

/// The one generous deadline: for the gateway to start, for a log line, and as the read/write
/// timeout guarding every test socket. Reaching it means the test failed, not that it waited.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints a skip notice past libtest's output capture, so it shows even for passing tests.
pub fn skip_note(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}
