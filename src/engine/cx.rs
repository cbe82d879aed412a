//! What every step of a connection shares: the buffer pool, the counters, the metrics, the
//! timers and the clock, the config. The loop ([`super::Gateway`]) owns the sockets' poll, the
//! listeners and the slab of connections; it looks a connection up once per event and hands it
//! to a step together with the [`Cx`]. A step never reaches another connection, and what only
//! the loop can do (take the connection out of the slab, answer from the whole gateway's state)
//! it asks for by returning a [`Next`].

use super::conn::Conn;
use super::pool::Pool;
use super::timer::{Entry, Wheel};
use super::{Stats, activity, keepalive, metrics, pending, reload, resolve};
use crate::http::head::RequestHead;
use crate::http::response::TxnIds;
use crate::model::Model;
use crate::policy::limits::Counters;
use crate::policy::preflow::ClientIndex;
use crate::route::RouteTable;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a step leaves for the loop to do with its connection.
#[must_use]
pub(super) enum Next {
    /// The connection waits for its sockets or its timer.
    Stay,
    /// The connection is over: the loop takes it out of the slab and closes it
    /// ([`Cx::finish`]).
    Finish,
    /// A request on the admin listener, whose answer reads the whole gateway (every connection,
    /// a reload): the loop answers it.
    Admin(RequestHead),
}

pub(super) struct Cx {
    /// A handle on the loop's poll, for (re)registering the sockets of a connection.
    pub registry: mio::Registry,
    /// The config new requests start on; a connection keeps the one its request started on.
    pub model: Arc<Model>,
    pub routes: Arc<RouteTable>,
    /// Applications by client id.
    pub clients: ClientIndex,
    /// Earlier configs that plain calls in flight still run their flows on.
    pub past: Vec<reload::Past>,
    /// Connections of each client network that have not finished their first head.
    pub pending: pending::PendingByNetwork,
    pub pool: Pool,
    /// Final answers larger than one buffer: the parts still to write.
    pub long_answers: Vec<super::answer::LongAnswer>,
    /// The port each listener is bound to, by `Conn::listener` (for `X-Forwarded-Port`).
    pub listener_ports: Vec<u16>,
    /// Backend connections kept open between plain calls.
    pub parked: keepalive::Pool,
    pub wheel: Wheel,
    pub rng: u64,
    pub txn: TxnIds,
    pub resolver: resolve::Resolver,
    pub stats: Stats,
    pub metrics: metrics::Metrics,
    /// Where the activity log goes.
    pub activity: activity::Sink,
    /// Every limit counter of the gateway.
    pub counters: Counters,
    /// Unix time in seconds (moved by the test clock's offset), read once per loop turn; limit
    /// windows use it.
    pub now_secs: u64,
    pub now: Instant,
}

impl Cx {
    /// Sets the connection's timeout `after` from now. Entries of ended connections are dropped
    /// by the loop (see `Gateway::prune_timers`).
    pub fn set_timeout(&mut self, key: usize, c: &mut Conn, after: Duration) {
        let at = self.wheel.deadline(self.now, after);
        c.deadline = at;
        if c.armed == 0 || at < c.armed {
            c.armed = at;
            self.wheel.insert(Entry {
                key: key as u32,
                epoch: c.epoch,
                at,
            });
        }
    }

    pub fn random(&mut self) -> u64 {
        // splitmix64: fast, and good enough for masking keys and handshake nonces, which only
        // need to be unpredictable to the peers, not cryptographically strong. Seeded from the OS.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn random16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.random().to_le_bytes());
        out[8..].copy_from_slice(&self.random().to_le_bytes());
        out
    }
}
