//! Counters for `GET /metrics` on the admin listener, in the Prometheus text exposition format
//! (version 0.0.4). Per-API counters are flat arrays with one row per API (`name:version`); a
//! config maps its [`ApiIdx`] to those rows once, when it is first seen, so that after a reload
//! connections of the earlier config keep counting on their own API's row and counters never
//! jump back. Updating one is an add behind a pointer comparison, never a lookup by name or an
//! allocation. Limits are counted by name: their rejections in the limit counters, their closes
//! here (a close is rare enough for a lookup).

use super::Gateway;
use super::conn::flag;
use crate::model::{ApiIdx, Model};
use std::fmt::Write;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Why an upgrade request got no 101.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// A limit said no (429, or 503 for a limit that is not `is-client`).
    Limit,
    /// Any other 4xx of the gateway: routing, identification, a bad upgrade, a `throw`.
    Rejected,
    /// A 5xx of the gateway: backend unreachable, timed out or answering nonsense.
    BackendError,
    /// The backend answered the upgrade with something else than 101, passed on as it was.
    BackendRefused,
    /// The client went away before the handshake was over.
    Aborted,
}

pub(super) const FAILURES: [&str; 5] = [
    "limit",
    "rejected",
    "backend_error",
    "backend_refused",
    "aborted",
];

/// Why the backend could not be used.
#[derive(Debug, Clone, Copy)]
pub enum BackendError {
    Resolve,
    Connect,
    Tls,
    Timeout,
    InvalidResponse,
}

pub(super) const BACKEND_ERRORS: [&str; 5] =
    ["resolve", "connect", "tls", "timeout", "invalid_response"];

/// Upper bounds of the handshake latency histogram, in seconds.
pub(super) const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A row that [`Metrics::upgraded`] could not give in 16 bits (only after more than 65534
/// distinct APIs were seen): such a connection's reads look their row up instead.
pub const NO_ROW: u16 = u16::MAX;

/// Connections open now on one listener (by its index in the gateway's listeners), and of them
/// WebSockets upgraded on both sides.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ListenerOpen {
    pub connections: u64,
    pub websockets: u64,
}

/// How one config's API indices map to rows.
#[derive(Debug)]
struct Rows {
    model: Weak<Model>,
    apis: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// The configs seen, the current one first.
    rows: Vec<Rows>,
    /// `name:version` of each API row, and the name of each limit row.
    pub(super) api_names: Vec<String>,
    limit_names: Vec<String>,
    /// Open WebSocket connections, by API.
    pub(super) open: Vec<u64>,
    pub(super) upgrades: u64,
    pub(super) failed: [u64; 5],
    /// Plain calls answered by a backend, by API.
    pub(super) calls: Vec<u64>,
    /// Data messages and bytes relayed, by API: [client to backend, backend to client].
    pub(super) messages: Vec<[u64; 2]>,
    pub(super) bytes: Vec<[u64; 2]>,
    /// Connections closed because of a limit, by limit.
    limit_closes: Vec<u64>,
    /// Connections closed because one side sent too many control frames: [client, backend].
    control_closes: [u64; 2],
    pub(super) backend_errors: [u64; 5],
    /// Backend handshake latency: per bucket (not cumulative), then above the last.
    pub(super) handshake: [u64; BUCKETS.len() + 1],
    pub(super) handshake_sum: f64,
    /// Open connections and WebSockets by listener.
    pub(super) listeners: Vec<ListenerOpen>,
    /// The gateway's own refusals by code, in the order codes first appear: HTTP statuses of
    /// 400 and above it answered with, and close codes it sent to clients (not 1000 or 1001).
    pub(super) refusals: Vec<(u16, u64)>,
}

impl Metrics {
    pub fn new(model: &Arc<Model>) -> Metrics {
        let mut m = Metrics::default();
        m.rows_of(model);
        m
    }

    /// The rows of `model`'s indices, made when the config is new to the metrics.
    fn rows_of(&mut self, model: &Arc<Model>) -> &Rows {
        let at = self
            .rows
            .iter()
            .position(|r| std::ptr::eq(r.model.as_ptr(), Arc::as_ptr(model)));
        let i = match at {
            Some(i) => i,
            None => {
                self.rows.retain(|r| r.model.strong_count() > 0);
                let apis = model
                    .apis
                    .iter()
                    .map(|a| row(&mut self.api_names, format!("{}:{}", a.name, a.version)))
                    .collect();
                let n = self.api_names.len();
                self.open.resize(n, 0);
                self.calls.resize(n, 0);
                self.messages.resize(n, [0; 2]);
                self.bytes.resize(n, [0; 2]);
                self.rows.insert(
                    0,
                    Rows {
                        model: Arc::downgrade(model),
                        apis,
                    },
                );
                0
            }
        };
        &self.rows[i]
    }

    fn api_row(&mut self, model: &Arc<Model>, api: ApiIdx) -> usize {
        self.rows_of(model)
            .apis
            .get(api as usize)
            .map_or(usize::MAX, |&r| r as usize)
    }

    pub fn upgrade_failed(&mut self, why: Failure) {
        self.failed[why as usize] += 1;
    }

    pub fn backend_error(&mut self, why: BackendError) {
        self.backend_errors[why as usize] += 1;
    }

    /// A connection came in on listener `listener`.
    pub fn accepted(&mut self, listener: u16) {
        self.listener(listener).connections += 1;
    }

    /// A connection of listener `listener` ended; `websocket`: it was an upgraded one.
    pub fn connection_closed(&mut self, listener: u16, websocket: bool) {
        let l = self.listener(listener);
        l.connections = l.connections.saturating_sub(1);
        if websocket {
            l.websockets = l.websockets.saturating_sub(1);
        }
    }

    fn listener(&mut self, listener: u16) -> &mut ListenerOpen {
        let i = usize::from(listener);
        if i >= self.listeners.len() {
            self.listeners.resize(i + 1, ListenerOpen::default());
        }
        &mut self.listeners[i]
    }

    /// The gateway refused something with `code`: an HTTP status of its own answer, or the
    /// close code it sent a client. Codes are few, so a look-up is enough.
    pub fn refused(&mut self, code: u16) {
        match self.refusals.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.refusals.push((code, 1)),
        }
    }

    /// A 101 went to the client of listener `listener`, `took` after the gateway started to
    /// connect to the backend. Returns the API's row (or [`NO_ROW`]), for the connection to keep
    /// so that [`Metrics::relayed`] needs no lookup per read.
    pub fn upgraded(
        &mut self,
        model: &Arc<Model>,
        api: ApiIdx,
        listener: u16,
        took: Duration,
    ) -> u16 {
        self.upgrades += 1;
        self.listener(listener).websockets += 1;
        let r = self.api_row(model, api);
        if let Some(n) = self.open.get_mut(r) {
            *n += 1;
        }
        let s = took.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(BUCKETS.len());
        self.handshake[i] += 1;
        self.handshake_sum += s;
        u16::try_from(r).unwrap_or(NO_ROW)
    }

    pub fn websocket_closed(&mut self, model: &Arc<Model>, api: ApiIdx) {
        let r = self.api_row(model, api);
        if let Some(n) = self.open.get_mut(r) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn call_done(&mut self, model: &Arc<Model>, api: ApiIdx) {
        let r = self.api_row(model, api);
        if let Some(n) = self.calls.get_mut(r) {
            *n += 1;
        }
    }

    /// `messages` data messages in `bytes` bytes relayed on `row` (from [`Metrics::upgraded`]);
    /// `up`: client to backend. `model` and `api` are only looked at when `row` is [`NO_ROW`].
    pub fn relayed(
        &mut self,
        row: u16,
        model: &Arc<Model>,
        api: ApiIdx,
        up: bool,
        messages: u64,
        bytes: u64,
    ) {
        let d = usize::from(!up);
        let r = if row == NO_ROW {
            self.api_row(model, api)
        } else {
            usize::from(row)
        };
        if let Some(m) = self.messages.get_mut(r) {
            m[d] += messages;
        }
        if let Some(b) = self.bytes.get_mut(r) {
            b[d] += bytes;
        }
    }

    /// A connection was closed because one side (the client when `up`) went over
    /// `bounds.max-control-frames`.
    pub fn control_flood_closed(&mut self, up: bool) {
        self.control_closes[usize::from(!up)] += 1;
    }

    /// A connection was closed because of the limit called `name` (rare: a lookup by name).
    pub fn limit_closed(&mut self, name: &str) {
        let r = row(&mut self.limit_names, name.to_string()) as usize;
        self.limit_closes.resize(self.limit_names.len(), 0);
        self.limit_closes[r] += 1;
    }
}

/// The row of `name`, added at the end when it has none.
fn row(names: &mut Vec<String>, name: String) -> u32 {
    match names.iter().position(|n| *n == name) {
        Some(i) => i as u32,
        None => {
            names.push(name);
            (names.len() - 1) as u32
        }
    }
}

/// One metric family being written: its HELP and TYPE lines come first.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else {
        format!("{v}")
    }
}

impl Gateway {
    /// The whole `/metrics` page.
    pub(super) fn metrics_text(&self) -> String {
        let m = &self.cx.metrics;
        let model = &self.cx.model;
        let mut out = String::with_capacity(4096);
        let apis: Vec<String> = m.api_names.iter().map(|a| label(a)).collect();

        let (mut open, mut buffered) = (0u64, 0u64);
        for (_, c) in self.conns.iter() {
            if c.has(flag::ADMIN) {
                continue;
            }
            open += 1;
            buffered += u64::from(c.up.end - c.up.head) + u64::from(c.down.end - c.down.head);
        }
        family(
            &mut out,
            "wsgate_connections_open",
            "gauge",
            "Client connections open now (any phase; admin connections excluded).",
        );
        let _ = writeln!(out, "wsgate_connections_open {open}");
        family(
            &mut out,
            "wsgate_connections_accepted_total",
            "counter",
            "Client connections accepted.",
        );
        let _ = writeln!(
            out,
            "wsgate_connections_accepted_total {}",
            self.cx.stats.accepted
        );
        family(
            &mut out,
            "wsgate_connections_pending",
            "gauge",
            "Client connections still in their TLS handshake or first request head.",
        );
        let _ = writeln!(
            out,
            "wsgate_connections_pending {}",
            self.cx.pending.total()
        );
        family(
            &mut out,
            "wsgate_connections_refused_total",
            "counter",
            "Client connections closed at accept, by reason (pending_per_address: their address \
             had bounds.max-pending-per-address connections without a complete head).",
        );
        let _ = writeln!(
            out,
            "wsgate_connections_refused_total{{reason=\"pending_per_address\"}} {}",
            self.cx.stats.refused_pending
        );
        family(
            &mut out,
            "wsgate_websocket_connections_open",
            "gauge",
            "WebSocket connections open now (upgraded on both sides), by API.",
        );
        for (i, api) in apis.iter().enumerate() {
            let _ = writeln!(
                out,
                "wsgate_websocket_connections_open{{api=\"{api}\"}} {}",
                m.open[i]
            );
        }
        family(
            &mut out,
            "wsgate_upgrades_total",
            "counter",
            "WebSocket upgrade requests answered with 101.",
        );
        let _ = writeln!(out, "wsgate_upgrades_total {}", m.upgrades);
        family(
            &mut out,
            "wsgate_upgrades_failed_total",
            "counter",
            "WebSocket upgrade requests that got no 101, by reason.",
        );
        for (i, why) in FAILURES.iter().enumerate() {
            let _ = writeln!(
                out,
                "wsgate_upgrades_failed_total{{reason=\"{why}\"}} {}",
                m.failed[i]
            );
        }
        family(
            &mut out,
            "wsgate_calls_total",
            "counter",
            "Plain HTTP calls (invoke) answered by a backend, by API.",
        );
        for (i, api) in apis.iter().enumerate() {
            let _ = writeln!(out, "wsgate_calls_total{{api=\"{api}\"}} {}", m.calls[i]);
        }
        for (name, help, values) in [
            (
                "wsgate_websocket_messages_total",
                "WebSocket data messages relayed, by API and direction.",
                &m.messages,
            ),
            (
                "wsgate_websocket_bytes_total",
                "WebSocket bytes relayed (frames as on the wire), by API and direction.",
                &m.bytes,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (i, api) in apis.iter().enumerate() {
                for (d, dir) in ["client_to_backend", "backend_to_client"]
                    .iter()
                    .enumerate()
                {
                    let _ = writeln!(
                        out,
                        "{name}{{api=\"{api}\",direction=\"{dir}\"}} {}",
                        values[i][d]
                    );
                }
            }
        }
        // Limits are labelled by name; definitions that share a name (one per plan, or one
        // per value of a list) add up.
        let mut limits: Vec<(&str, u64, u64)> = m
            .limit_names
            .iter()
            .zip(&m.limit_closes)
            .map(|(n, &c)| (n.as_str(), 0, c))
            .collect();
        // Every limit of the config shows, rejected or not.
        let rejections = self.cx.counters.rejections_by_name();
        let names = model.limits.iter().map(|d| (d.name.as_str(), 0));
        for (name, r) in rejections.into_iter().chain(names) {
            match limits.iter_mut().find(|(n, ..)| *n == name) {
                Some(e) => e.1 += r,
                None => limits.push((name, r, 0)),
            }
        }
        family(
            &mut out,
            "wsgate_limit_rejections_total",
            "counter",
            "Times a hard limit said no (a request refused, a message dropped or closing its connection), by limit.",
        );
        for (name, r, _) in &limits {
            let _ = writeln!(
                out,
                "wsgate_limit_rejections_total{{limit=\"{}\"}} {r}",
                label(name)
            );
        }
        family(
            &mut out,
            "wsgate_limit_closes_total",
            "counter",
            "WebSocket connections closed because a message was over a hard limit, by limit.",
        );
        for (name, _, c) in &limits {
            let _ = writeln!(
                out,
                "wsgate_limit_closes_total{{limit=\"{}\"}} {c}",
                label(name)
            );
        }
        family(
            &mut out,
            "wsgate_control_frame_closes_total",
            "counter",
            "WebSocket connections closed because one side sent more control frames in a second than bounds.max-control-frames, by that side.",
        );
        for (i, side) in ["client", "backend"].iter().enumerate() {
            let _ = writeln!(
                out,
                "wsgate_control_frame_closes_total{{side=\"{side}\"}} {}",
                m.control_closes[i]
            );
        }
        family(
            &mut out,
            "wsgate_limit_keys_full_total",
            "counter",
            "Limit keys that found no room in the run-time key table (bounds.max-limit-keys): the request or upgrade was refused with 503, or the message failed closed.",
        );
        let _ = writeln!(
            out,
            "wsgate_limit_keys_full_total {}",
            self.cx.counters.keys_full()
        );
        family(
            &mut out,
            "wsgate_backend_errors_total",
            "counter",
            "Backends that could not be used, by reason.",
        );
        for (i, why) in BACKEND_ERRORS.iter().enumerate() {
            let _ = writeln!(
                out,
                "wsgate_backend_errors_total{{reason=\"{why}\"}} {}",
                m.backend_errors[i]
            );
        }
        family(
            &mut out,
            "wsgate_backend_handshake_seconds",
            "histogram",
            "Time from connecting to the backend to its 101.",
        );
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().chain([f64::INFINITY].iter()).enumerate() {
            cumulative += m.handshake[i];
            let _ = writeln!(
                out,
                "wsgate_backend_handshake_seconds_bucket{{le=\"{}\"}} {cumulative}",
                float(*le)
            );
        }
        let _ = writeln!(
            out,
            "wsgate_backend_handshake_seconds_sum {}",
            float(m.handshake_sum)
        );
        let _ = writeln!(out, "wsgate_backend_handshake_seconds_count {cumulative}");

        for (name, help, v) in [
            (
                "wsgate_buffers_in_use",
                "Pool buffers lent to connections now.",
                self.cx.pool.in_use() as u64,
            ),
            (
                "wsgate_buffers_idle",
                "Pool buffers kept for reuse.",
                self.cx.pool.idle() as u64,
            ),
            (
                "wsgate_buffer_size_bytes",
                "Size of one pool buffer.",
                self.cx.pool.buf_size() as u64,
            ),
            (
                "wsgate_buffered_bytes",
                "Bytes waiting in connection buffers now.",
                buffered,
            ),
            (
                "wsgate_activity_log_pending_bytes",
                "Activity log bytes not written to the output yet.",
                self.cx.activity.pending() as u64,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
        for (name, help, v) in [
            (
                "wsgate_activity_log_records_total",
                "Activity log records written.",
                self.cx.activity.records,
            ),
            (
                "wsgate_activity_log_dropped_total",
                "Activity log records dropped because the output did not keep up or failed.",
                self.cx.activity.dropped,
            ),
        ] {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
        process_metrics(&mut out);
        out
    }
}

/// What the process itself uses, from /proc and getrlimit; `None` where it cannot be read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub resident_bytes: Option<u64>,
    pub open_files: Option<u64>,
    pub max_files: Option<u64>,
}

impl Process {
    pub fn read() -> Process {
        // statm: size resident shared ... in pages.
        let resident = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        // The directory being read holds one descriptor itself.
        let open_files = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count().saturating_sub(1) as u64);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct passed.
        let max_files = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0)
            .then_some(lim.rlim_cur);
        Process {
            resident_bytes: resident.map(|pages| pages * page),
            open_files,
            max_files,
        }
    }
}

/// The standard process metrics of Prometheus client libraries, from /proc.
fn process_metrics(out: &mut String) {
    let p = Process::read();
    if let Some(bytes) = p.resident_bytes {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {bytes}");
    }
    if let Some(n) = p.open_files {
        family(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(out, "process_open_fds {n}");
    }
    if let Some(n) = p.max_files {
        family(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        let _ = writeln!(out, "process_max_fds {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::path::PathBuf;

    fn model(apis: &[&str]) -> Arc<Model> {
        let api = |name: &str| Api {
            name: name.into(),
            version: "1.0.0".into(),
            title: name.into(),
            file: PathBuf::new(),
            base_path: format!("/{name}"),
            schemes: Schemes::ALL,
            operations: Vec::new(),
            properties: Vec::new(),
            security: Security::default(),
            cors: Cors::default(),
            activity_log: ActivityLog::default(),
            assembly: Assembly::default(),
            plans: Vec::new(),
        };
        Arc::new(Model {
            settings: Settings {
                source: PathBuf::new(),
                listeners: Vec::new(),
                admin: None,
                admin_token: None,
                echo: None,
                bounds: Bounds::default(),
                activity_log: ActivityOutput::Off,
                trusted_proxies: Vec::new(),
            },
            apis: apis.iter().map(|n| api(n)).collect(),
            products: Vec::new(),
            plans: Vec::new(),
            limits: Vec::new(),
            applications: Vec::new(),
            tls_profiles: Vec::new(),
        })
    }

    /// A reload that puts a new API first shifts the indices; connections of either config
    /// count on the row of their own API.
    #[test]
    fn rows_follow_api_names_across_configs() {
        let old = model(&["chat"]);
        let mut m = Metrics::new(&old);
        let chat = m.upgraded(&old, 0, 0, Duration::from_millis(2));
        let new = model(&["news", "chat"]);
        m.upgraded(&new, 0, 0, Duration::from_millis(2));
        assert_eq!(m.upgraded(&new, 1, 0, Duration::from_millis(2)), chat);
        m.relayed(chat, &old, 0, true, 3, 30);
        assert_eq!(m.api_names, ["chat:1.0.0", "news:1.0.0"]);
        assert_eq!(m.open, [2, 1]);
        assert_eq!(m.messages, [[3, 0], [0, 0]]);
        m.websocket_closed(&old, 0);
        assert_eq!(m.open, [1, 1]);
        // A config nobody holds any more is forgotten; its rows stay.
        drop(old);
        let newer = model(&["chat"]);
        m.call_done(&newer, 0);
        assert_eq!(m.rows.len(), 2);
        assert_eq!(m.calls, [1, 0]);
        assert_eq!(m.handshake.iter().sum::<u64>(), 3);
    }

    /// A row resolved at the upgrade keeps counting on its API after a reload shifted the
    /// indices, and a connection without a row in 16 bits counts on the same row by lookup.
    #[test]
    fn a_row_kept_with_the_connection_counts_like_a_lookup() {
        let old = model(&["chat", "news"]);
        let mut m = Metrics::new(&old);
        let news = m.upgraded(&old, 1, 0, Duration::ZERO);
        let new = model(&["sport", "news"]);
        let sport = m.upgraded(&new, 0, 0, Duration::ZERO);
        m.relayed(news, &old, 1, true, 2, 20);
        m.relayed(NO_ROW, &new, 1, false, 1, 10);
        m.relayed(sport, &new, 0, true, 5, 50);
        assert_eq!(m.api_names, ["chat:1.0.0", "news:1.0.0", "sport:1.0.0"]);
        assert_eq!(m.messages, [[0, 0], [2, 1], [5, 0]]);
        assert_eq!(m.bytes, [[0, 0], [20, 10], [50, 0]]);
    }
}
