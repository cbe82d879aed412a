//! The driver: one mio poll loop on one thread. It moves bytes between sockets and the sans-I/O
//! state machines of [`crate::http`] and [`crate::ws`]; nothing here parses or decides on its own.
//!
//! The loop ([`Gateway`]) owns the poll, the listeners and the slab of connections. What the
//! steps of a connection share (pool, counters, metrics, timers and clock, config) is the
//! [`cx::Cx`]. Each event looks its connection up once and runs the step of its phase, a `Cx`
//! method over `(key, &mut Conn)`; the step returns a [`cx::Next`] for what only the loop may do
//! (end the connection, answer an admin request). LIFECYCLE.md beside this file has the
//! transitions and the invariants.
//!
//! | Phase ([`conn::Phase`]) | What happens | Module |
//! |---|---|---|
//! | accept | listening sockets, the connection cap, pending per network | [`listen`] |
//! | `FirstHead`, `Head` | TLS handshake, the request head, routing, the policies | [`head`] |
//! | `Resolving`, `Connecting`, `BackendHead` | the backend's name, connect, our upgrade request, its answer | [`upstream`] ([`resolve`]) |
//! | `Refused` | a backend's non-101 answer relayed to the client | [`upstream`] |
//! | `Call` | a plain call (invoke): both bodies, keep-alive, redirects, retries | [`call`] ([`keepalive`]) |
//! | `Open` | frames both ways, message limits, the close protocol | [`relay`] |
//! | `Respond`, `Linger` | the gateway's own answer (refusals, a backend that failed), then a lingering close | [`answer`] |
//! | `Echo` | the built-in echo backend | [`echo`] |
//! | timeouts, shutdown, the end | what a deadline means per phase; [`cx::Cx::finish`] | [`close`] |
//! | admin requests | `/stats`, `/metrics`, `/status`, `/reload`, run by the loop | [`admin`] ([`metrics`], [`status`], [`reload`]) |

mod activity;
mod admin;
mod answer;
mod call;
mod close;
pub mod conn;
mod cx;
mod echo;
mod head;
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
use cx::{Cx, Next};
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

/// Counters of the connections themselves. What happens to requests (upgrades, failed
/// upgrades, calls) is counted once, in the metrics, and `GET /stats` reads it there.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub accepted: u64,
    /// Connections in the slab now (each may hold a backend socket too).
    pub open: usize,
    /// Of those, upgraded on both sides.
    pub upgraded: usize,
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

/// The loop: the poll, the listeners and the connections. Everything a connection's steps
/// share is in [`Cx`]; the loop looks a connection up once per event, hands it to its step with
/// the `Cx`, and does what the step returns ([`Next`]).
pub struct Gateway {
    poll: Poll,
    listeners: Vec<listen::Listener>,
    conns: Slab<Conn>,
    cx: Cx,
    /// Client TLS handshakes with input to process that found this turn's handshake time used
    /// up, first come first served: (key, epoch). A connection has one entry at most
    /// (`Conn::handshake_queued`); the entry of one that ended meanwhile is skipped.
    handshakes_waiting: std::collections::VecDeque<(u32, u32)>,
    /// Time spent on client TLS handshake steps in this turn.
    handshake_work: Duration,
    due: Vec<Entry>,
    next_epoch: u32,
    signals: signals::Signals,
    /// The status page's history ring and what it says about the config.
    status: status::Status,
    /// Loads the config again on SIGHUP or `POST /reload`.
    loader: Option<Loader>,
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
        let cx = Cx {
            registry: poll.registry().try_clone()?,
            routes,
            clients: crate::policy::preflow::client_index(&model),
            past: Vec::new(),
            pending: pending::PendingByNetwork::new(),
            pool: Pool::new(buf_size, 256),
            long_answers: Vec::new(),
            listener_ports: listeners.iter().map(|l| l.addr.port()).collect(),
            parked: keepalive::Pool::new(),
            wheel: Wheel::new(now),
            rng: seed(),
            txn: TxnIds::random(),
            resolver,
            stats: Stats::default(),
            metrics: metrics::Metrics::new(&model),
            activity: activity::Sink::open(&model.settings.activity_log)?,
            counters: crate::policy::limits::Counters::new(
                &model,
                model.settings.bounds.max_limit_keys,
            ),
            now_secs: unix_now(),
            now,
            model,
        };
        Ok(Gateway {
            poll,
            listeners,
            conns: Slab::with_capacity(1024),
            cx,
            handshakes_waiting: std::collections::VecDeque::new(),
            handshake_work: Duration::ZERO,
            due: Vec::new(),
            next_epoch: 1,
            signals,
            status: status::Status::new(now, unix_now()),
            loader: None,
            clock_offset: 0,
            test_clock: std::env::var_os("WSGATE_TEST_CLOCK").is_some_and(|v| v == "1"),
            ready_listeners: Vec::new(),
            paused: false,
            stopping: None,
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
        &self.cx.stats
    }

    /// Runs until SIGTERM or SIGINT, then closes every connection (close 1001 on open
    /// WebSockets) and returns once all are closed or the shutdown grace period is over.
    pub fn run(&mut self) -> io::Result<()> {
        for b in self.bound() {
            log::info!("listening on {} ({})", b.addr, b.kind);
        }
        let mut events = Events::with_capacity(1024);
        loop {
            self.cx.now = Instant::now();
            let mut timeout = self.status_sleep(self.cx.wheel.sleep(self.cx.now));
            if let Some(since) = self.stopping {
                if self.conns.is_empty() {
                    log::info!("all connections closed, exiting");
                    self.cx.activity.flush_all();
                    return Ok(());
                }
                let grace = self.cx.model.settings.bounds.shutdown_grace;
                let left = grace.saturating_sub(self.cx.now.duration_since(since));
                if left.is_zero() {
                    log::warn!(
                        "shutdown grace period over, dropping {} connections",
                        self.conns.len()
                    );
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.finish(k);
                    }
                    self.cx.activity.flush_all();
                    return Ok(());
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if !self.handshakes_waiting.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if self.cx.activity.pending() > 0 {
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
            self.cx.now = Instant::now();
            self.cx.now_secs = unix_now() + self.clock_offset;
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
                        self.cx.on_parked(t - PARKED_BASE)
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
            self.prune_timers();
            self.sample_status();
            self.cx.activity.flush();
            if self.paused && self.conns.len() < self.cx.model.settings.bounds.max_connections {
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
                signals::Signal::ReopenLogs => self.cx.activity.reopen(),
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        log::info!("shutting down: closing {} connections", self.conns.len());
        self.stopping = Some(self.cx.now);
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut l.socket);
        }
        self.listeners.clear();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            let Some(c) = self.conns.get_mut(k) else {
                continue;
            };
            let next = self.cx.shutdown_conn(k, c);
            self.settle(k, next);
        }
    }

    /// The resolver answered; connections waiting for those names go on.
    fn on_resolved(&mut self) {
        for (key, epoch, result) in self.cx.resolver.drain(self.cx.now) {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.epoch != epoch || c.phase != conn::Phase::Resolving {
                continue;
            }
            let next = self.cx.resolved(key, c, result);
            self.settle(key, next);
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
        use conn::Phase::*;
        let next = match c.phase {
            FirstHead | Head if c.client.handshaking() => {
                if c.handshake_queued {
                    // Its entry comes up in turn and finds the readiness this event set.
                    return;
                }
                if !self.handshakes_waiting.is_empty()
                    || self.handshake_work >= HANDSHAKE_WORK_PER_TURN
                {
                    c.handshake_queued = true;
                    self.handshakes_waiting.push_back((key as u32, c.epoch));
                    return;
                }
                // A client's TLS handshake runs as far as its input goes (and the head, if it
                // came along), on the turn's handshake time.
                let started = Instant::now();
                let next = self.cx.head_step(key, c, vanished);
                self.handshake_work += started.elapsed();
                next
            }
            _ => self.cx.drive(key, c, vanished),
        };
        self.settle(key, next);
    }

    /// Does what a step of connection `key` left for the loop.
    fn settle(&mut self, key: usize, mut next: Next) {
        loop {
            match next {
                Next::Stay => return,
                Next::Finish => return self.finish(key),
                Next::Admin(head) => next = self.admin_request(key, head),
            }
        }
    }

    /// Takes connection `key` out of the slab and closes it.
    fn finish(&mut self, key: usize) {
        if let Some(c) = self.conns.try_remove(key) {
            self.cx.finish(c);
        }
        self.cx.stats.open = self.conns.len();
    }

    /// Handshakes that waited for a turn run first come first served, as long as the turn's
    /// handshake time lasts; the rest wait for the next turn.
    fn resume_handshakes(&mut self) {
        while self.handshake_work < HANDSHAKE_WORK_PER_TURN
            && let Some((key, epoch)) = self.handshakes_waiting.pop_front()
        {
            let key = key as usize;
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            // Ended meanwhile (the key may have a new connection by now).
            if c.epoch != epoch {
                continue;
            }
            c.handshake_queued = false;
            // Its head timed out meanwhile: it is being answered.
            if c.phase != conn::Phase::FirstHead {
                continue;
            }
            // Only the client's socket is open while the handshake runs.
            let vanished = c.has(conn::flag::HUP_SEEN);
            let started = Instant::now();
            let next = self.cx.head_step(key, c, vanished);
            self.handshake_work += started.elapsed();
            self.settle(key, next);
        }
        if self.handshakes_waiting.is_empty() && self.handshakes_waiting.capacity() > 1024 {
            self.handshakes_waiting.shrink_to(1024);
        }
    }

    fn expire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.cx.wheel.expire(self.cx.now, &mut due);
        let now = self.cx.wheel.now_tick(self.cx.now);
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
                self.cx.wheel.insert(Entry {
                    key: e.key,
                    epoch: e.epoch,
                    at: c.deadline,
                });
                continue;
            }
            c.armed = 0;
            c.deadline = 0;
            let next = self.cx.on_timeout(key, c);
            self.settle(key, next);
        }
        self.due = due;
    }

    /// Entries of ended connections stay until their tick comes up (an idle timeout's: an
    /// hour), so under churn they would grow with the connections made, not the connections
    /// open. Once they outnumber the open ones, drop those that cannot fire.
    fn prune_timers(&mut self) {
        if self.cx.wheel.len() > 2 * self.conns.len() + 4096 {
            let conns = &self.conns;
            self.cx.wheel.retain(|e| {
                conns
                    .get(e.key as usize)
                    .is_some_and(|c| c.epoch == e.epoch && c.armed == e.at)
            });
        }
    }
}

impl Cx {
    /// Advances a connection as far as its sockets allow.
    fn drive(&mut self, key: usize, c: &mut Conn, client_vanished: bool) -> Next {
        use conn::Phase::*;
        match c.phase {
            FirstHead | Head => self.head_step(key, c, client_vanished),
            Resolving | Connecting | BackendHead => {
                if client_vanished {
                    log::debug!("client {} left during the backend handshake", c.peer);
                    return Next::Finish;
                }
                self.drive_upstream(key, c)
            }
            Refused => self.drive_refused(key, c),
            // A client that half-closes after its request still gets the answer.
            Call => self.drive_call(key, c),
            Open => self.drive_relay(key, c),
            Respond | Linger => self.drive_respond(key, c),
            Echo => self.drive_echo(key, c),
        }
    }

    fn head_step(&mut self, key: usize, c: &mut Conn, client_vanished: bool) -> Next {
        let next = self.read_head(key, c);
        // The head and the client's goodbye can come in one event; edge-triggered readiness
        // will not report the goodbye again.
        use conn::Phase::*;
        let waiting = matches!(c.phase, Resolving | Connecting | BackendHead);
        if matches!(next, Next::Stay) && client_vanished && waiting {
            log::debug!("client left right after its request");
            return Next::Finish;
        }
        next
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
