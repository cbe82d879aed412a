//! The driver: one mio poll loop on one thread. It moves bytes between sockets and the sans-I/O
//! state machines of [`crate::http`] and [`crate::ws`]; nothing here parses or decides on its own.
//!
//! The path of a connection: [`listen`] accepts it, [`front`] reads the request head and decides
//! what to do, [`upstream`] connects to the backend and performs the upgrade there, [`relay`]
//! moves frames both ways, [`close`] ends it. [`echo`] is the built-in echo backend on the same
//! loop.

mod activity;
mod admin;
mod call;
mod close;
pub mod conn;
mod echo;
mod front;
mod keepalive;
mod listen;
mod metrics;
mod pending;
pub mod pool;
mod relay;
mod reload;
mod resolve;
mod signals;
mod status;
pub mod stream;
pub mod timer;
mod upstream;

use crate::http::response::TxnIds;
use crate::model::Model;
use crate::route::RouteTable;
use conn::Conn;
use mio::{Events, Interest, Poll, Token};
use pool::Pool;
pub use reload::Loader;
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timer::{Entry, Wheel};

// Tokens by range, so that no count of connections, parked connections or listeners can make
// two of them meet: connection `key` has `2 * key` (its client) and `2 * key + 1` (its
// backend), below `PARKED_BASE` since `bounds.max-connections` keeps keys far smaller; parked
// backend connection `i` has `PARKED_BASE + i`; listener `i` has `LISTENER_BASE + i`, with a
// quarter of the token space to itself; the self-pipe of the signals and the resolver the last.
const PARKED_BASE: usize = usize::MAX / 4 * 2;
const LISTENER_BASE: usize = usize::MAX / 4 * 3;
const RESOLVER: Token = Token(usize::MAX - 2);
const SIGNAL: Token = Token(usize::MAX - 1);
/// Time one loop turn may spend on steps of client TLS handshakes (their key exchange and
/// signature are the loop's costliest work, and cost no authentication to ask for). Handshakes
/// beyond it wait for the next turn, which comes at once, after that turn's relaying; at least
/// one step runs per turn.
const HANDSHAKE_WORK_PER_TURN: Duration = Duration::from_millis(1);

/// Counters a test or an operator can read.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub accepted: u64,
    /// Connections in the slab now (each may hold a backend socket too).
    pub open: usize,
    /// Of those, upgraded on both sides.
    pub upgraded: usize,
    pub upgrades_total: u64,
    pub upgrades_failed: u64,
    /// Plain calls (the invoke policy) answered by a backend.
    pub calls: u64,
    /// Connections closed at accept because their network had `max-pending-per-address`
    /// connections without a complete head already.
    pub refused_pending: u64,
}

/// What the gateway is listening on, once bound.
#[derive(Debug, Clone)]
pub struct Bound {
    pub addr: SocketAddr,
    pub kind: &'static str,
}

pub struct Gateway {
    poll: Poll,
    model: Arc<Model>,
    routes: Arc<RouteTable>,
    listeners: Vec<listen::Listener>,
    conns: Slab<Conn>,
    /// Connections of each client network that have not finished their first head.
    pending: pending::PendingByNetwork,
    /// Client TLS handshakes with input to process that found this turn's handshake time used
    /// up, first come first served: (key, epoch). A connection's events can put it here more
    /// than once, a few times during its handshake at most; a stale entry is skipped.
    handshakes_waiting: std::collections::VecDeque<(u32, u32)>,
    /// Time spent on client TLS handshake steps in this turn.
    handshake_work: Duration,
    pool: Pool,
    /// Backend connections kept open between plain calls.
    parked: keepalive::Pool,
    wheel: Wheel,
    due: Vec<Entry>,
    next_epoch: u32,
    rng: u64,
    txn: TxnIds,
    resolver: resolve::Resolver,
    signals: signals::Signals,
    stats: Stats,
    metrics: metrics::Metrics,
    /// The status page's history ring and what it says about the config.
    status: status::Status,
    /// Where the activity log goes.
    activity: activity::Sink,
    /// Applications by client id.
    clients: crate::policy::preflow::ClientIndex,
    /// Loads the config again on SIGHUP or `POST /reload`.
    loader: Option<Loader>,
    /// Earlier configs that plain calls in flight still run their flows on.
    past: Vec<reload::Past>,
    /// Every limit counter of the gateway.
    counters: crate::policy::limits::Counters,
    /// Unix time in seconds, read once per loop turn; limit windows use it.
    now_secs: u64,
    /// Seconds added to the clock; moved only through the admin listener when the gateway runs
    /// with `WSGATE_TEST_CLOCK=1`, so tests can cross a limit window without waiting.
    clock_offset: u64,
    test_clock: bool,
    /// Listeners that reported a connection in this loop turn (kept to reuse its room).
    ready_listeners: Vec<usize>,
    /// Accepting is paused because the connection cap is reached.
    paused: bool,
    /// Shutting down since this instant.
    stopping: Option<Instant>,
    now: Instant,
}

// Another thread may build a gateway and run it (one loop per thread).
const _: () = {
    const fn send<T: Send>() {}
    send::<Gateway>();
};

impl Gateway {
    /// Binds every listener of the model. Nothing is served until [`Gateway::run`].
    pub fn new(model: Model) -> io::Result<Gateway> {
        let poll = Poll::new()?;
        let model = Arc::new(model);
        let routes = Arc::new(RouteTable::new(&model.apis));
        let mut listeners = Vec::new();
        for l in &model.settings.listeners {
            listeners.push(listen::Listener::bind(
                l.addr,
                listen::Kind::Proxy {
                    secure: l.tls_offloaded || l.tls.is_some(),
                },
                l.tls.as_ref().map(|t| t.config.clone()),
            )?);
        }
        if let Some(a) = model.settings.echo {
            listeners.push(listen::Listener::bind(a, listen::Kind::Echo, None)?);
        }
        if let Some(a) = model.settings.admin {
            listeners.push(listen::Listener::bind(a, listen::Kind::Admin, None)?);
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut l.socket,
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
        }
        let signals = signals::Signals::install(poll.registry(), SIGNAL)?;
        let resolver = resolve::Resolver::new(poll.registry(), RESOLVER, &model)?;
        let bounds = &model.settings.bounds;

        let buf_size = bounds.buffer_bound.max(crate::http::head::MIN_BUFFER);
        let now = Instant::now();
        Ok(Gateway {
            poll,
            routes,
            listeners,
            conns: Slab::with_capacity(1024),
            pending: pending::PendingByNetwork::new(),
            handshakes_waiting: std::collections::VecDeque::new(),
            handshake_work: Duration::ZERO,
            pool: Pool::new(buf_size, 256),
            parked: keepalive::Pool::new(),
            wheel: Wheel::new(now),
            due: Vec::new(),
            next_epoch: 1,
            rng: seed(),
            txn: TxnIds::random(),
            resolver,
            signals,
            stats: Stats::default(),
            metrics: metrics::Metrics::new(&model),
            status: status::Status::new(now, unix_now()),
            activity: activity::Sink::open(&model.settings.activity_log)?,
            counters: crate::policy::limits::Counters::new(
                &model,
                model.settings.bounds.max_limit_keys,
            ),
            clients: crate::policy::preflow::client_index(&model),
            loader: None,
            past: Vec::new(),
            now_secs: unix_now(),
            clock_offset: 0,
            test_clock: std::env::var_os("WSGATE_TEST_CLOCK").is_some_and(|v| v == "1"),
            ready_listeners: Vec::new(),
            paused: false,
            stopping: None,
            now,
            model,
        })
    }

    /// The addresses actually bound (port 0 in the config becomes a real port).
    pub fn bound(&self) -> Vec<Bound> {
        self.listeners
            .iter()
            .map(|l| Bound {
                addr: l.addr,
                kind: l.kind_name(),
            })
            .collect()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs until SIGTERM or SIGINT, then closes every connection (close 1001 on open
    /// WebSockets) and returns once all are closed or the shutdown grace period is over.
    pub fn run(&mut self) -> io::Result<()> {
        for b in self.bound() {
            log::info!("listening on {} ({})", b.addr, b.kind);
        }
        let mut events = Events::with_capacity(1024);
        loop {
            self.now = Instant::now();
            let mut timeout = self.status_sleep(self.wheel.sleep(self.now));
            if let Some(since) = self.stopping {
                if self.conns.is_empty() {
                    log::info!("all connections closed, exiting");
                    self.activity.flush_all();
                    return Ok(());
                }
                let grace = self.model.settings.bounds.shutdown_grace;
                let left = grace.saturating_sub(self.now.duration_since(since));
                if left.is_zero() {
                    log::warn!(
                        "shutdown grace period over, dropping {} connections",
                        self.conns.len()
                    );
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.finish(k);
                    }
                    self.activity.flush_all();
                    return Ok(());
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if !self.handshakes_waiting.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if self.activity.pending() > 0 {
                // The output was not ready: try again soon even if nothing else happens.
                let retry = Duration::from_millis(50);
                timeout = Some(timeout.map_or(retry, |t| t.min(retry)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            self.now_secs = unix_now() + self.clock_offset;
            self.handshake_work = Duration::ZERO;
            // Accepting waits until the batch is done: a connection that ends in this batch
            // frees its slab key, and a connection accepted into that key at once would get
            // the events still queued in the batch for the old one's sockets (a hang-up, read
            // as "the client left").
            let mut ready = std::mem::take(&mut self.ready_listeners);
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => self.on_signal(),
                    RESOLVER => self.on_resolved(),
                    Token(t) if (LISTENER_BASE..RESOLVER.0).contains(&t) => {
                        ready.push(t - LISTENER_BASE)
                    }
                    Token(t) if (PARKED_BASE..LISTENER_BASE).contains(&t) => {
                        self.on_parked(t - PARKED_BASE)
                    }
                    Token(t) => self.on_event(t >> 1, t & 1 == 1, ev),
                }
            }
            self.resume_handshakes();
            for &i in &ready {
                self.accept(i);
            }
            ready.clear();
            self.ready_listeners = ready;
            self.expire_timers();
            self.sample_status();
            self.activity.flush();
            if self.paused && self.conns.len() < self.model.settings.bounds.max_connections {
                self.paused = false;
                log::info!("below the connection cap again, accepting");
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
        }
    }

    fn on_signal(&mut self) {
        for sig in self.signals.drain() {
            match sig {
                signals::Signal::Terminate => self.begin_shutdown(),
                signals::Signal::Reload => {
                    if self.stopping.is_none() {
                        self.reload();
                    }
                }
                signals::Signal::ReopenLogs => self.reopen_logs(),
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        log::info!("shutting down: closing {} connections", self.conns.len());
        self.stopping = Some(self.now);
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut l.socket);
        }
        self.listeners.clear();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.shutdown_conn(k);
        }
    }

    fn on_event(&mut self, key: usize, backend: bool, ev: &mio::event::Event) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        use conn::flag::*;
        if backend {
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.set(BACKEND_READABLE);
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.set(BACKEND_WRITABLE);
                // TLS records queued when the socket was full go now, whether or not the
                // relay has anything new to write.
                // A TLS read can stop because its own records could not go out; now they
                // can, so reading is worth another try.
                if let Some(b) = c.backend.as_mut()
                    && b.is_tls()
                    && b.flush_tls().unwrap_or(true)
                {
                    c.set(BACKEND_READABLE);
                }
            }
        } else {
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.set(CLIENT_READABLE);
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.set(CLIENT_WRITABLE);
                if c.client.is_tls() && c.client.flush_tls().unwrap_or(true) {
                    c.set(CLIENT_READABLE);
                }
            }
        }
        if ev.is_read_closed() || ev.is_error() {
            c.set(HUP_SEEN);
        }
        let vanished = !backend && (ev.is_read_closed() || ev.is_error());
        self.drive(key, vanished);
    }

    /// Advances a connection as far as its sockets allow.
    fn drive(&mut self, key: usize, client_vanished: bool) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        use conn::Phase::*;
        match c.phase {
            FirstHead | Head => {
                if !c.client.handshaking() {
                    return self.head_step(key, client_vanished);
                }
                if !self.handshakes_waiting.is_empty()
                    || self.handshake_work >= HANDSHAKE_WORK_PER_TURN
                {
                    self.handshakes_waiting.push_back((key as u32, c.epoch));
                    return;
                }
                self.handshake_step(key, client_vanished);
            }
            Resolving | Connecting | BackendHead => {
                if client_vanished {
                    log::debug!("client {} left during the backend handshake", c.peer);
                    self.finish(key);
                    return;
                }
                self.drive_upstream(key)
            }
            Refused => self.drive_refused(key),
            // A client that half-closes after its request still gets the answer.
            Call => self.drive_call(key),
            Open => self.drive_relay(key),
            Respond | Linger => self.drive_respond(key),
            Echo => self.drive_echo(key),
        }
    }

    fn head_step(&mut self, key: usize, client_vanished: bool) {
        self.read_head(key);
        // The head and the client's goodbye can come in one event; edge-triggered readiness
        // will not report the goodbye again.
        let waiting = self.conns.get(key).is_some_and(|c| {
            use conn::Phase::*;
            matches!(c.phase, Resolving | Connecting | BackendHead)
        });
        if client_vanished && waiting {
            log::debug!("client left right after its request");
            self.finish(key);
        }
    }

    /// Runs a client's TLS handshake as far as its input goes (and the head, if it came along),
    /// on the turn's handshake time.
    fn handshake_step(&mut self, key: usize, client_vanished: bool) {
        let started = Instant::now();
        self.head_step(key, client_vanished);
        self.handshake_work += started.elapsed();
    }

    /// Handshakes that waited for a turn run first come first served, as long as the turn's
    /// handshake time lasts; the rest wait for the next turn.
    fn resume_handshakes(&mut self) {
        while self.handshake_work < HANDSHAKE_WORK_PER_TURN
            && let Some((key, epoch)) = self.handshakes_waiting.pop_front()
        {
            let key = key as usize;
            let Some(c) = self.conns.get(key) else {
                continue;
            };
            // Ended meanwhile, or an earlier entry of the same connection took it further.
            if c.epoch != epoch || c.phase != conn::Phase::FirstHead {
                continue;
            }
            // Only the client's socket is open while the handshake runs.
            let vanished = c.has(conn::flag::HUP_SEEN);
            self.handshake_step(key, vanished);
        }
        if self.handshakes_waiting.is_empty() && self.handshakes_waiting.capacity() > 1024 {
            self.handshakes_waiting.shrink_to(1024);
        }
    }

    /// Sets the connection's timeout `after` from now.
    fn set_timeout(&mut self, key: usize, after: Duration) {
        let at = self.wheel.deadline(self.now, after);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.deadline = at;
        if c.armed == 0 || at < c.armed {
            c.armed = at;
            self.wheel.insert(Entry {
                key: key as u32,
                epoch: c.epoch,
                at,
            });
            // Entries of ended connections stay until their tick comes up (an idle timeout's:
            // an hour), so under churn they would grow with the connections made, not the
            // connections open. Once they outnumber the open ones, drop those that cannot fire.
            if self.wheel.len() > 2 * self.conns.len() + 4096 {
                let conns = &self.conns;
                self.wheel.retain(|e| {
                    conns
                        .get(e.key as usize)
                        .is_some_and(|c| c.epoch == e.epoch && c.armed == e.at)
                });
            }
        }
    }

    fn expire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(self.now, &mut due);
        let now = self.wheel.now_tick(self.now);
        for e in due.drain(..) {
            let key = e.key as usize;
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.epoch != e.epoch || c.armed != e.at {
                continue; // an entry superseded by an earlier deadline
            }
            if c.deadline == 0 {
                c.armed = 0;
                continue;
            }
            if c.deadline > now {
                // The deadline moved later since this entry was made.
                c.armed = c.deadline;
                self.wheel.insert(Entry {
                    key: e.key,
                    epoch: e.epoch,
                    at: c.deadline,
                });
                continue;
            }
            c.armed = 0;
            c.deadline = 0;
            self.on_timeout(key);
        }
        self.due = due;
    }

    fn random(&mut self) -> u64 {
        // splitmix64: fast, and good enough for masking keys and handshake nonces, which only
        // need to be unpredictable to the peers, not cryptographically strong. Seeded from the OS.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn random16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.random().to_le_bytes());
        out[8..].copy_from_slice(&self.random().to_le_bytes());
        out
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn seed() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom")
        && f.read_exact(&mut b).is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (std::process::id() as u64) << 32
}
