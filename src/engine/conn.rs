//! The state of one client connection and, once it has one, its backend connection. One slab
//! entry holds both; the client's token is `2 * key` and the backend's `2 * key + 1`.

use super::pool::BufId;
use super::stream::Stream;
use crate::http::body::Body;
use crate::http::head::RequestHead;
use crate::http::url::TargetUrl;
use crate::model::{ApiIdx, Model};
use crate::policy::limits::{Held, Profile};
use crate::ws::frame::Decoder;
use crate::ws::handshake::ClientUpgrade;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the first request head of an API client, TLS handshake included. Only these
    /// count among their network's pending connections (see [`super::pending`]): leaving this
    /// phase (a head, an error answer, the end) gives the place back.
    FirstHead,
    /// Reading a request head: the next one on a connection kept alive after a plain call, or
    /// one on the admin and echo listeners.
    Head,
    /// Waiting for the backend's name to resolve.
    Resolving,
    /// Connecting to the backend and sending it our upgrade request.
    Connecting,
    /// Reading the backend's answer to the upgrade.
    BackendHead,
    /// Relaying a non-101 backend answer to the client, then closing.
    Refused,
    /// Upgraded on both sides: relaying frames.
    Open,
    /// Writing a final answer to the client, then closing.
    Respond,
    /// Our answer is written and our side shut: reading and discarding until the client closes,
    /// so that closing with unread bytes does not reset the connection before the answer is read.
    Linger,
    /// The built-in echo backend: upgraded, echoing frames.
    Echo,
    /// A plain HTTP call (the invoke policy): request body to the backend, its answer back.
    Call,
}

/// Readiness and close bookkeeping, one bit each.
pub mod flag {
    pub const CLIENT_READABLE: u16 = 1;
    pub const CLIENT_WRITABLE: u16 = 1 << 1;
    pub const BACKEND_READABLE: u16 = 1 << 2;
    pub const BACKEND_WRITABLE: u16 = 1 << 3;
    /// The client's close frame has passed to the backend.
    pub const CLIENT_CLOSED: u16 = 1 << 4;
    /// The backend's close frame has passed to the client.
    pub const BACKEND_CLOSED: u16 = 1 << 5;
    /// The gateway has sent its own close frames: input is discarded, output drains, then both
    /// sockets go.
    pub const FAILING: u16 = 1 << 6;
    /// Read end of the client reached.
    pub const CLIENT_EOF: u16 = 1 << 7;
    pub const BACKEND_EOF: u16 = 1 << 8;
    /// The client side was accepted on a TLS-offloaded or TLS listener.
    pub const SECURE: u16 = 1 << 9;
    /// The connection came in on the echo listener.
    pub const ECHO: u16 = 1 << 10;
    /// The connection came in on the admin listener.
    pub const ADMIN: u16 = 1 << 11;
    /// Our write side is shut; waiting for the peers to close theirs.
    pub const SHUT: u16 = 1 << 12;
    /// The client's TLS handshake is complete and the head timeout runs.
    pub const TLS_READY: u16 = 1 << 13;
    /// The current request asks for a WebSocket upgrade that is not decided yet (metrics).
    pub const UPGRADE_ASKED: u16 = 1 << 14;
    /// A socket of this connection reported a hang-up or an error. From then on a short read
    /// is not taken as "drained": the end of the stream may be waiting behind the data, and
    /// edge-triggered readiness will not report it again.
    pub const HUP_SEEN: u16 = 1 << 15;

    /// A read came back short: the socket had nothing more, so there is no point reading it
    /// again before its next readiness event (which saves a read that would only block).
    pub fn drained(flags: &mut u16, readable: u16) {
        if *flags & HUP_SEEN == 0 {
            *flags &= !readable;
        }
    }
}

/// Bytes travelling in one direction, with the decoder that watches them.
pub struct Flow {
    pub dec: Decoder,
    pub buf: Option<BufId>,
    /// First byte not yet written to the destination.
    pub head: u32,
    /// End of the bytes ready for the destination; `out..end` is not decoded yet.
    pub out: u32,
    /// End of the bytes read.
    pub end: u32,
    /// Discarding the data message in progress (a message over a limit in `drop` mode).
    pub dropping: bool,
    /// Control frames from this flow's source in the current second.
    pub control: ControlRate,
}

/// Control frames (ping, pong, close) one side sent in the current second, against
/// `bounds.max-control-frames`. Pings cost the other side an answer each and are not data
/// messages, so no message limit sees them. 6 bytes, aligned to 2, so that it fits in the
/// padding of [`Flow`].
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(2))]
pub struct ControlRate {
    /// The second (Unix time, wrapping in 2106: only compared for equality) being counted.
    second: u32,
    count: u16,
}

impl ControlRate {
    /// Counts one control frame at `now_secs`; false when it is over `max` for that second.
    pub fn admit(&mut self, now_secs: u64, max: u16) -> bool {
        let second = now_secs as u32;
        if self.second != second {
            self.second = second;
            self.count = 0;
        }
        if self.count >= max {
            return false;
        }
        self.count += 1;
        true
    }
}

impl Flow {
    pub fn new(dec: Decoder) -> Flow {
        Flow {
            dec,
            buf: None,
            head: 0,
            out: 0,
            end: 0,
            dropping: false,
            control: ControlRate::default(),
        }
    }
    /// The flow's buffer, taken from the pool (empty) if it has none.
    pub fn buffer(&mut self, pool: &mut super::pool::Pool) -> &BufId {
        if self.buf.is_none() {
            self.head = 0;
            self.out = 0;
            self.end = 0;
        }
        self.buf.get_or_insert_with(|| pool.take())
    }

    pub fn pending_out(&self) -> bool {
        self.head < self.out
    }
    pub fn is_empty(&self) -> bool {
        self.head == self.end
    }
}

/// What only the exchange with the backend needs: the upgrade handshake, or a plain call.
/// Dropped once the WebSocket is open or the call is over.
pub struct Handshake {
    pub head: RequestHead,
    /// The client's upgrade; `None` for a plain call.
    pub upgrade: Option<ClientUpgrade>,
    /// A plain call in progress (the invoke policy).
    pub call: Option<Call>,
    /// The `tls-profile` of the policy that reaches the backend.
    pub tls_profile: Option<u16>,
    pub txn: String,
    pub target: TargetUrl,
    /// When the gateway started to connect to the backend (for the handshake latency).
    pub backend_started: std::time::Instant,
    /// The `Sec-WebSocket-Key` we sent to the backend.
    pub key: String,
    /// Our upgrade request to the backend and how much of it is written.
    pub request: Vec<u8>,
    pub written: usize,
    pub redirects: u8,
    /// A redirect led to another origin than the policy's `target-url`: from then on the
    /// backend gets no credentials (the policy's Basic, the client's `Authorization` and
    /// `Cookie`, the TLS profile's client certificate).
    pub other_origin: bool,
    /// The backend's resolved addresses, tried in turn.
    pub addrs: super::resolve::Attempts,
    /// When the policy's `timeout` runs out for connecting (and, for an upgrade, its answer).
    pub deadline: std::time::Instant,
    /// Body bytes of a refused upgrade still to relay.
    pub refused_left: u64,
    /// How much of the backend's answer head, from its start, was looked at for its end.
    pub answer_seen: u32,
    /// Headers for the client's 101: limit headers (spec §3.9) and CORS.
    pub reply_headers: Vec<(String, String)>,
    /// The peer is one of `trusted-proxies`: its `X-Forwarded-*` headers go to the backend.
    pub peer_trusted: bool,
}

/// Where the bodies of a plain call end.
pub struct Call {
    pub request: Body,
    /// Set once the backend's response head has gone to the client.
    pub response: Option<Body>,
    /// What the client gets of the response body.
    pub pass: crate::http::answer::Pass,
    /// The request to the backend is a HEAD (the client's method or the invoke's `verb`): its
    /// answer has no body whatever its headers say.
    pub head_only: bool,
    /// The client connection takes another request after this one.
    pub keep_alive: bool,
    /// The backend stopped taking the request body (it may still answer).
    pub request_broken: bool,
    /// The backend's side has ended.
    pub backend_eof: bool,
    /// Errors the invoke's `stop-on-error` lists, which go to the assembly's `catch`.
    pub stop_on: crate::model::StopOn,
    /// The invoke's `timeout`: for the answer to start, then for each pause while bodies flow.
    pub timeout: std::time::Duration,
    /// The invoke's `persistent-connection`: the backend connection may carry later calls.
    pub persistent: bool,
    /// The backend lets this connection carry another call once this answer is through
    /// (HTTP/1.1, no `Connection: close`, a delimited body, nothing sent after it).
    pub backend_keep: bool,
    /// The call runs on a connection an earlier call left open.
    pub reused: bool,
    /// A reused connection failed before answering and the call went to a new one.
    pub retried: bool,
    /// Where the invoke sits in the assembly.
    pub at: crate::policy::assembly::Cursor,
    /// The variables the flow set before the call, kept when policies run after the invoke
    /// (see `policy::assembly::after_invoke`); `None` when the answer passes untouched.
    pub resume: Option<Vec<(String, String)>>,
}

impl Call {
    pub fn response_done(&self) -> bool {
        self.response
            .as_ref()
            .is_some_and(|r| r.done() || self.backend_eof)
    }
}

pub use crate::policy::limits::MessageLimit;

/// The limit state of a connection that has any: what it holds of count limits and its
/// reference to the message limits of both directions, each given back exactly once when it
/// ends. Connections without limits carry none of it.
#[derive(Debug, Default)]
pub struct ConnLimits {
    pub held: Held,
    /// The message limits, kept once in the counters for every connection that has the same.
    pub profile: Option<Profile>,
    /// Retired limit definitions (from before a reload) that the slots above name, pinned in
    /// the counters until the transaction ends.
    pub retired: Vec<crate::model::LimitIdx>,
}

pub struct Conn {
    pub client: Stream,
    pub backend: Option<Stream>,
    pub peer: SocketAddr,
    pub phase: Phase,
    /// The index of the listener it came in on (`u16::MAX` for any beyond), for per-listener
    /// counts and the port the client connected to.
    pub listener: u16,
    pub flags: u16,
    /// The connection has an entry among the TLS handshakes waiting for a turn (see
    /// `Gateway::handshakes_waiting`), so its events add no other. Fits in padding.
    pub handshake_queued: bool,
    pub api: ApiIdx,
    /// The metrics row of `api`, resolved when the WebSocket opens (see `Metrics::upgraded`).
    pub metrics_row: u16,
    /// The n-th websocket-upgrade of the API's assembly (depth-first), once chosen.
    pub wsu: u16,
    /// Distinguishes this connection from earlier ones that had the same slab key.
    pub epoch: u32,
    /// The tick at which the current timeout fires (0: none) and the tick of the wheel entry
    /// that will look at it.
    pub deadline: u32,
    pub armed: u32,
    pub model: Arc<Model>,
    /// Client to backend.
    pub up: Flow,
    /// Backend to client.
    pub down: Flow,
    pub hs: Option<Box<Handshake>>,
    pub limits: Option<Box<ConnLimits>>,
    /// The activity record of the transaction in progress, for APIs that log activity.
    pub activity: Option<Box<crate::activity::Record>>,
}

impl Conn {
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    pub fn set(&mut self, f: u16) {
        self.flags |= f
    }
    pub fn clear(&mut self, f: u16) {
        self.flags &= !f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_rate_counts_per_second_up_to_its_maximum() {
        let mut r = ControlRate::default();
        let t = 1_704_326_400;
        for _ in 0..3 {
            assert!(r.admit(t, 3));
        }
        assert!(!r.admit(t, 3), "the 4th in one second");
        assert!(!r.admit(t, 3), "and every one after it");
        // A new second starts from 0, whatever the gap.
        for _ in 0..3 {
            assert!(r.admit(t + 1, 3));
        }
        assert!(!r.admit(t + 1, 3));
        assert!(r.admit(t + 86_400, 3));
        // A maximum of 0 admits nothing.
        assert!(!ControlRate::default().admit(t, 0));
    }

    /// What one connection costs in the slab, whatever it does. The heap parts come on top
    /// only while they are needed: the handshake box until the 101, the limit box for
    /// connections that have limits, and pool buffers while bytes are in flight.
    #[test]
    fn connection_state_stays_small() {
        let conn = std::mem::size_of::<Conn>();
        let slab_entry = std::mem::size_of::<slab::Slab<Conn>>(); // the slab itself, once
        println!(
            "Conn: {conn} bytes (Flow {} each, Decoder {}), ConnLimits {} when limited, Handshake {} during the upgrade, activity Record {} when logged; slab header {slab_entry}",
            std::mem::size_of::<Flow>(),
            std::mem::size_of::<Decoder>(),
            std::mem::size_of::<ConnLimits>(),
            std::mem::size_of::<Handshake>(),
            std::mem::size_of::<crate::activity::Record>(),
        );
        assert!(conn <= 256, "Conn grew to {conn} bytes");
        // The control-frame counter lives in what used to be the flow's padding.
        let flow = std::mem::size_of::<Flow>();
        assert!(flow <= 64, "Flow grew to {flow} bytes");
        // Both live as long as a WebSocket that has limits or logs activity.
        let limits = std::mem::size_of::<ConnLimits>();
        assert!(limits <= 104, "ConnLimits grew to {limits} bytes");
        let record = std::mem::size_of::<crate::activity::Record>();
        // 184 with its request text inside: one 192-byte chunk instead of 176 and 48.
        assert!(record <= 184, "the activity Record grew to {record} bytes");
    }
}
