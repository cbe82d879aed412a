//! The live status page of the admin listener: `GET /` is one self-contained HTML page
//! (`status.html`, embedded), which reads `GET /status` every 2 s and draws it.
//!
//! Nothing here runs per connection or per message. The JSON is a plain function of the
//! counters that exist anyway ([`Metrics`], [`Counters`], the listeners' open counts), plus a
//! [`History`]: a fixed ring of samples taken on a timer of the loop, behind the sparklines and
//! the "last minute" columns. Summing several loops' counters first would give one view of
//! them all.

use super::Gateway;
use super::metrics::{BACKEND_ERRORS, BUCKETS, FAILURES, ListenerOpen, Metrics, Process};
use crate::json::write::quoted;
use crate::model::LimitKind;
use crate::policy::limits::{CounterView, Counters};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// The page, inline CSS and JS, no external assets.
pub const PAGE: &str = include_str!("status.html");

/// Time between two samples of the history, and how many samples it keeps (5 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
pub const SAMPLES: usize = 150;
/// Samples in one minute: the "last minute" columns count from the sample this far back.
const MINUTE: usize = (60 / SAMPLE_EVERY.as_secs()) as usize;
/// At most this many live keys go into one answer, the fullest first (the page shows what is
/// near its limit; the rest is counted, and `GET /limits` lists them all).
pub const MAX_KEYS: usize = 100;

/// The gateway's totals at one instant. Counters only grow; the connection counts are gauges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sample {
    pub connections: u64,
    pub websockets: u64,
    pub upgrades: u64,
    pub calls: u64,
    /// [client to backend, backend to client].
    pub messages: [u64; 2],
    pub bytes: [u64; 2],
    /// Rejections by limit name, in [`History::limit_names`] order.
    pub by_limit: Vec<u64>,
    /// Refusals by code, in the order of [`Metrics`]'s refusals (which only grows).
    pub by_code: Vec<u64>,
}

/// The last [`SAMPLES`] samples, oldest first once it has wrapped. Its room is taken once;
/// a sample reuses the vectors of the one it replaces.
#[derive(Debug)]
pub struct History {
    samples: Vec<Sample>,
    /// Where the next sample goes once the ring is full.
    next: usize,
    /// Limit names seen so far; only grows, so a sample's `by_limit` stays aligned.
    limit_names: Vec<Box<str>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            samples: Vec::with_capacity(SAMPLES),
            next: 0,
            limit_names: Vec::new(),
        }
    }
}

impl History {
    /// Records the totals now.
    pub fn record(&mut self, metrics: &Metrics, counters: &Counters, open: Totals) {
        let slot = if self.samples.len() < SAMPLES {
            self.samples.push(Sample::default());
            self.samples.len() - 1
        } else {
            let i = self.next;
            self.next = (self.next + 1) % SAMPLES;
            i
        };
        let mut s = std::mem::take(&mut self.samples[slot]);
        s.connections = open.connections;
        s.websockets = open.websockets;
        s.upgrades = metrics.upgrades;
        s.calls = metrics.calls.iter().sum();
        s.messages = sum2(&metrics.messages);
        s.bytes = sum2(&metrics.bytes);
        s.by_limit.clear();
        for (name, n) in counters.rejections_by_name() {
            let row = match self.limit_names.iter().position(|l| **l == *name) {
                Some(r) => r,
                None => {
                    self.limit_names.push(name.into());
                    self.limit_names.len() - 1
                }
            };
            if s.by_limit.len() <= row {
                s.by_limit.resize(row + 1, 0);
            }
            s.by_limit[row] = n;
        }
        s.by_code.clear();
        s.by_code.extend(metrics.refusals.iter().map(|&(_, n)| n));
        self.samples[slot] = s;
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        let (newer, older) = self.samples.split_at(self.next);
        older.iter().chain(newer)
    }

    /// The sample about a minute old, or the first one while the gateway is younger than that.
    fn minute_ago(&self) -> Option<&Sample> {
        let n = self.samples.len();
        self.iter().nth(n.saturating_sub(MINUTE + 1))
    }

    /// Rejections of the limit `name` in a sample (0 before the name was seen).
    fn limit_in(&self, s: &Sample, name: &str) -> u64 {
        self.limit_names
            .iter()
            .position(|l| **l == *name)
            .and_then(|r| s.by_limit.get(r).copied())
            .unwrap_or(0)
    }
}

/// Connections open now, admin connections excluded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub websockets: u64,
}

/// What the page says about the config and the process, apart from the counters.
#[derive(Debug, Default, Clone)]
pub struct Info {
    /// Unix time (seconds) the gateway started, and the config in use was loaded.
    pub started: u64,
    pub loaded: u64,
    /// The last reload that failed, if the last reload failed: when, and its first error.
    pub reload_failed: Option<(u64, String)>,
    pub reloads: u64,
}

/// One listener as the page lists it.
#[derive(Debug, Clone)]
pub struct ListenerRow {
    pub address: String,
    pub kind: &'static str,
    pub open: ListenerOpen,
}

/// A limit of the config, with or without live keys.
#[derive(Debug, Clone)]
pub struct LimitRow {
    pub name: String,
    pub kind: LimitKind,
}

/// Everything the status JSON is made of, borrowed from the gateway (or built by a test).
pub struct Inputs<'a> {
    pub version: &'a str,
    pub config_file: &'a str,
    /// Unix time (seconds) now.
    pub now: u64,
    pub info: &'a Info,
    pub listeners: &'a [ListenerRow],
    pub limits: &'a [LimitRow],
    pub accepted: u64,
    /// Connections open now ([`totals`]), the same figures the history samples.
    pub open: Totals,
    pub metrics: &'a Metrics,
    pub counters: &'a Counters,
    /// The live counters (`Counters::snapshot`), any order.
    pub live: Vec<CounterView>,
    pub history: &'a History,
    pub buffers: [u64; 3],
    pub process: Process,
}

/// Open counts of the listeners that are not the admin one.
pub fn totals(listeners: &[ListenerOpen], admin: Option<usize>) -> Totals {
    let mut t = Totals::default();
    for (i, l) in listeners.iter().enumerate() {
        if Some(i) != admin {
            t.connections += l.connections;
            t.websockets += l.websockets;
        }
    }
    t
}

fn sum2(rows: &[[u64; 2]]) -> [u64; 2] {
    rows.iter().fold([0, 0], |a, r| [a[0] + r[0], a[1] + r[1]])
}

/// The `/status` JSON.
pub fn json(v: &Inputs) -> String {
    let m = v.metrics;
    let mut o = String::with_capacity(8192);
    let info = v.info;
    let _ = write!(
        o,
        "{{\"version\":{},\"now\":{},\"uptime\":{},\"config\":{{\"file\":{},\"loaded\":{},\"reloads\":{},\"reload_failed\":",
        quoted(v.version),
        v.now,
        v.now.saturating_sub(info.started),
        quoted(v.config_file),
        info.loaded,
        info.reloads
    );
    match &info.reload_failed {
        Some((at, error)) => {
            let _ = write!(o, "{{\"at\":{at},\"error\":{}}}", quoted(error));
        }
        None => o.push_str("null"),
    }
    o.push_str("},\"listeners\":[");
    for (i, l) in v.listeners.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(
            o,
            "{{\"address\":{},\"kind\":{},\"connections\":{},\"websockets\":{}}}",
            quoted(&l.address),
            quoted(l.kind),
            l.open.connections,
            l.open.websockets
        );
    }
    let t = v.open;
    let _ = write!(
        o,
        "],\"totals\":{{\"connections\":{},\"websockets\":{},\"accepted\":{},\"upgrades\":{},\"calls\":{},\"messages\":{},\"bytes\":{}}},\"apis\":[",
        t.connections,
        t.websockets,
        v.accepted,
        m.upgrades,
        m.calls.iter().sum::<u64>(),
        pair(sum2(&m.messages)),
        pair(sum2(&m.bytes)),
    );
    for (i, name) in m.api_names.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(
            o,
            "{{\"api\":{},\"websockets\":{},\"calls\":{},\"messages\":{},\"bytes\":{}}}",
            quoted(name),
            m.open[i],
            m.calls[i],
            pair(m.messages[i]),
            pair(m.bytes[i])
        );
    }
    o.push_str("],");
    history(&mut o, v.history);
    limits(&mut o, v);
    let minute = v.history.minute_ago();
    o.push_str(",\"refusals\":[");
    let mut codes: Vec<(usize, u16, u64)> = m
        .refusals
        .iter()
        .enumerate()
        .map(|(i, &(c, n))| (i, c, n))
        .collect();
    codes.sort_by_key(|&(_, c, _)| c);
    for (j, (i, code, total)) in codes.into_iter().enumerate() {
        comma(&mut o, j);
        let before = minute.and_then(|s| s.by_code.get(i).copied()).unwrap_or(0);
        let _ = write!(
            o,
            "{{\"code\":{code},\"minute\":{},\"total\":{total}}}",
            total.saturating_sub(before)
        );
    }
    o.push_str("],\"upgrades_failed\":{");
    for (i, why) in FAILURES.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(o, "\"{why}\":{}", m.failed[i]);
    }
    o.push_str("},\"backend_errors\":{");
    for (i, why) in BACKEND_ERRORS.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(o, "\"{why}\":{}", m.backend_errors[i]);
    }
    o.push_str("},\"handshake\":{\"le\":[");
    for (i, b) in BUCKETS.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(o, "{b}");
    }
    o.push_str("],\"counts\":[");
    for (i, n) in m.handshake.iter().enumerate() {
        comma(&mut o, i);
        let _ = write!(o, "{n}");
    }
    let p = &v.process;
    let per_conn = match (p.resident_bytes, t.connections) {
        (Some(r), n) if n > 0 => (r / n).to_string(),
        _ => "null".to_string(),
    };
    let _ = writeln!(
        o,
        "],\"sum\":{}}},\"memory\":{{\"resident\":{},\"resident_per_connection\":{per_conn},\"buffers_in_use\":{},\"buffers_idle\":{},\"buffer_size\":{}}},\"files\":{{\"open\":{},\"max\":{}}}}}",
        m.handshake_sum,
        opt(p.resident_bytes),
        v.buffers[0],
        v.buffers[1],
        v.buffers[2],
        opt(p.open_files),
        opt(p.max_files)
    );
    o
}

/// `"history"`: the gauges as sampled, the counters as their growth between two samples.
fn history(o: &mut String, h: &History) {
    let _ = write!(o, "\"history\":{{\"every\":{}", SAMPLE_EVERY.as_secs());
    // Each series: its name, its value in a sample, and whether it is a counter.
    type Series = (&'static str, fn(&Sample) -> u64, bool);
    let series: [Series; 8] = [
        ("connections", |s| s.connections, false),
        ("websockets", |s| s.websockets, false),
        ("upgrades", |s| s.upgrades, true),
        ("calls", |s| s.calls, true),
        ("messages_in", |s| s.messages[0], true),
        ("messages_out", |s| s.messages[1], true),
        ("bytes_in", |s| s.bytes[0], true),
        ("bytes_out", |s| s.bytes[1], true),
    ];
    for (name, get, growth) in series {
        let _ = write!(o, ",\"{name}\":[");
        let mut before: Option<u64> = None;
        let mut first = true;
        for s in h.iter() {
            let now = get(s);
            let value = match (growth, before) {
                (false, _) => Some(now),
                (true, Some(b)) => Some(now.saturating_sub(b)),
                (true, None) => None,
            };
            before = Some(now);
            if let Some(x) = value {
                if !first {
                    o.push(',');
                }
                first = false;
                let _ = write!(o, "{x}");
            }
        }
        o.push(']');
    }
    o.push_str("},");
}

/// `"limits"`: every limit of the config by name, with its rejections and its live keys, the
/// fullest first; `"keys"`: how many keys are live and how many are listed.
fn limits(o: &mut String, v: &Inputs) {
    let mut live: Vec<&CounterView> = v.live.iter().collect();
    // Fullest first (value / max, compared without division), then by key for a stable order.
    live.sort_by(|a, b| {
        let fa = u128::from(a.value) * u128::from(b.max.max(1));
        let fb = u128::from(b.value) * u128::from(a.max.max(1));
        fb.cmp(&fa).then_with(|| a.key.cmp(&b.key))
    });
    let shown = live.len().min(MAX_KEYS);
    let live_total = live.len();
    live.truncate(shown);
    let mut names: Vec<(&str, LimitKind)> = Vec::new();
    for l in v.limits {
        if !names.iter().any(|(n, _)| *n == l.name) {
            names.push((&l.name, l.kind));
        }
    }
    for c in &live {
        if !names.iter().any(|(n, _)| *n == c.limit) {
            names.push((&c.limit, c.kind));
        }
    }
    // Count limits first: they are who holds how many connections.
    names.sort_by_key(|&(_, kind)| kind != LimitKind::Count);
    let rejections = v.counters.rejections_by_name();
    let minute = v.history.minute_ago();
    o.push_str("\"limits\":[");
    for (i, (name, kind)) in names.iter().enumerate() {
        comma(o, i);
        let total = rejections
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |&(_, r)| r);
        let before = minute.map_or(0, |s| v.history.limit_in(s, name));
        let _ = write!(
            o,
            "{{\"name\":{},\"kind\":\"{kind:?}\",\"rejections\":{{\"minute\":{},\"total\":{total}}},\"keys\":[",
            quoted(name),
            total.saturating_sub(before)
        );
        for (j, c) in live.iter().filter(|c| c.limit == *name).enumerate() {
            comma(o, j);
            let k = KeyParts::of(&c.key, name);
            let window = c
                .window_start
                .map_or_else(|| "null".to_string(), |w| w.to_string());
            let _ = write!(
                o,
                "{{\"scope\":{},\"by\":\"{}\",\"who\":{},\"more\":{},\"value\":{},\"max\":{},\"window_start\":{window}}}",
                quoted(k.scope),
                k.by,
                quoted(k.who),
                quoted(k.more),
                c.value,
                c.max
            );
        }
        o.push_str("]}");
    }
    let _ = write!(o, "],\"keys\":{{\"live\":{live_total},\"shown\":{shown}}}");
}

/// A printed counter key (see [`CounterView::key`]) taken apart for the page.
#[derive(Debug, PartialEq, Eq)]
struct KeyParts<'a> {
    /// `plan:<plan>`, `catalog` or `gateway`.
    scope: &'a str,
    /// `app` (an application of the config, by its name), `ip` (a client address or /64),
    /// `key` (only a hash is known) or `all` (one count shared by every client).
    by: &'static str,
    who: &'a str,
    /// What else the key has: `api=`, `dv=`.
    more: &'a str,
}

impl<'a> KeyParts<'a> {
    fn of(key: &'a str, limit: &str) -> KeyParts<'a> {
        // The key is `<scope>:<limit>` then `:part=value` pieces.
        let cut = key.match_indices(':').map(|(i, _)| i).find(|&i| {
            key[i + 1..].starts_with(limit) && {
                let end = i + 1 + limit.len();
                end == key.len() || key[end..].starts_with(':')
            }
        });
        let (scope, rest) = match cut {
            Some(i) => (&key[..i], &key[i + 1 + limit.len()..]),
            None => ("", key),
        };
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        for by in ["app", "ip", "key"] {
            if let Some(v) = rest.strip_prefix(by).and_then(|r| r.strip_prefix('=')) {
                // Applications and addresses hold no `:api=`/`:dv=`; a v6 /64 holds colons,
                // so the next piece is found by its name.
                let end = [":api=", ":dv="]
                    .iter()
                    .filter_map(|p| v.find(p))
                    .min()
                    .unwrap_or(v.len());
                let more = v[end..].strip_prefix(':').unwrap_or("");
                return KeyParts {
                    scope,
                    by,
                    who: &v[..end],
                    more,
                };
            }
        }
        KeyParts {
            scope,
            by: "all",
            who: "",
            more: rest,
        }
    }
}

fn comma(o: &mut String, i: usize) {
    if i > 0 {
        o.push(',');
    }
}

fn pair(p: [u64; 2]) -> String {
    format!("[{},{}]", p[0], p[1])
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// The status page's state in the gateway: the facts about the config and the history ring.
#[derive(Debug)]
pub struct Status {
    pub info: Info,
    pub history: History,
    next_sample: Instant,
}

impl Status {
    pub fn new(now: Instant, unix_now: u64) -> Status {
        Status {
            info: Info {
                started: unix_now,
                loaded: unix_now,
                reload_failed: None,
                reloads: 0,
            },
            history: History::default(),
            next_sample: now,
        }
    }

    /// A reload was applied (`Ok`) or not (`Err(first error)`) at `unix_now`.
    pub fn reloaded(&mut self, unix_now: u64, result: Result<(), &str>) {
        self.info.reloads += 1;
        match result {
            Ok(()) => {
                self.info.loaded = unix_now;
                self.info.reload_failed = None;
            }
            Err(e) => self.info.reload_failed = Some((unix_now, e.to_string())),
        }
    }
}

impl Gateway {
    /// Takes a history sample when one is due; called once per loop turn.
    pub(super) fn sample_status(&mut self) {
        if self.cx.now < self.status.next_sample {
            return;
        }
        let open = self.open_now();
        self.status
            .history
            .record(&self.cx.metrics, &self.cx.counters, open);
        // Keep the cadence; after a stall, start again from now rather than catch up.
        let next = self.status.next_sample + SAMPLE_EVERY;
        self.status.next_sample = if next > self.cx.now {
            next
        } else {
            self.cx.now + SAMPLE_EVERY
        };
    }

    /// How long the loop may sleep, given the next history sample.
    pub(super) fn status_sleep(&self, timeout: Option<Duration>) -> Option<Duration> {
        let left = self
            .status
            .next_sample
            .saturating_duration_since(self.cx.now);
        Some(timeout.map_or(left, |t| t.min(left)))
    }

    /// Connections open now, for the page and its history alike.
    fn open_now(&self) -> Totals {
        // The admin listener is bound last, after the proxy listeners and the echo one; a
        // reload keeps them all, and the index stays known once shutdown has closed them.
        let s = &self.cx.model.settings;
        let admin = s
            .admin
            .map(|_| s.listeners.len() + usize::from(s.echo.is_some()));
        totals(&self.cx.metrics.listeners, admin)
    }

    /// The `/status` JSON, from the counters as they are now.
    pub(super) fn status_json(&self) -> String {
        let listeners: Vec<ListenerRow> = self
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerRow {
                address: l.addr.to_string(),
                kind: l.kind_name(),
                open: self
                    .cx
                    .metrics
                    .listeners
                    .get(i)
                    .copied()
                    .unwrap_or_default(),
            })
            .collect();
        let limits: Vec<LimitRow> = self
            .cx
            .model
            .limits
            .iter()
            .map(|d| LimitRow {
                name: d.name.clone(),
                kind: d.kind,
            })
            .collect();
        let file = self.cx.model.settings.source.display().to_string();
        json(&Inputs {
            version: env!("CARGO_PKG_VERSION"),
            config_file: &file,
            // Uptime and "ago" on the wall clock, not the limits' (tests may move that one).
            now: super::unix_now(),
            info: &self.status.info,
            listeners: &listeners,
            limits: &limits,
            accepted: self.cx.stats.accepted,
            open: self.open_now(),
            metrics: &self.cx.metrics,
            counters: &self.cx.counters,
            live: self.cx.counters.snapshot(self.cx.now_secs),
            history: &self.status.history,
            buffers: [
                self.cx.pool.in_use() as u64,
                self.cx.pool.idle() as u64,
                self.cx.pool.buf_size() as u64,
            ],
            process: Process::read(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::policy::limits::{Consumer, Lookup};
    use std::sync::Arc;

    /// The seed config as shipped: its plan limits and its demo application.
    fn seed() -> Arc<Model> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml");
        let loaded = crate::config::load(&path, &Default::default()).expect("the seed loads");
        Arc::new(loaded.model)
    }

    fn limit_rows(model: &Model) -> Vec<LimitRow> {
        model
            .limits
            .iter()
            .map(|d| LimitRow {
                name: d.name.clone(),
                kind: d.kind,
            })
            .collect()
    }

    const NOW: u64 = 1_800_000_000;

    fn inputs<'a>(
        info: &'a Info,
        listeners: &'a [ListenerRow],
        limits: &'a [LimitRow],
        metrics: &'a Metrics,
        counters: &'a Counters,
        history: &'a History,
    ) -> Inputs<'a> {
        Inputs {
            version: "9.9.9",
            config_file: "/etc/wsgate/gateway.yaml",
            now: NOW,
            info,
            listeners,
            limits,
            accepted: 4,
            open: totals(&metrics.listeners, Some(2)),
            metrics,
            counters,
            live: counters.snapshot(NOW),
            history,
            buffers: [2, 3, 65536],
            process: Process {
                resident_bytes: Some(3_000_000),
                open_files: Some(17),
                max_files: Some(1024),
            },
        }
    }

    /// Two WebSockets of the demo application on the seed's count limit, a third refused with
    /// 429, an admin request, three messages each way: the JSON says exactly that.
    #[test]
    fn json_after_known_traffic() {
        let model = seed();
        let mut metrics = Metrics::new(&model);
        let mut counters = Counters::new(&model, 64);
        let mut history = History::default();
        let open = |m: &Metrics| totals(&m.listeners, Some(2));
        history.record(&metrics, &counters, open(&metrics));

        let app = model
            .applications
            .iter()
            .position(|a| a.name == "demo-app")
            .map(|a| a as u32);
        let count = model
            .limits
            .iter()
            .position(|d| d.name == "websocket-connections")
            .expect("the seed's count limit") as u32;
        let who = Consumer {
            app,
            remote_ip: "127.0.0.1".parse().unwrap(),
            api: 0,
            dynamic: None,
        };
        let Lookup::Counter(slot) = counters.slot(count, &who, NOW) else {
            panic!("a counter for the demo application");
        };
        for _ in 0..3 {
            metrics.accepted(0);
        }
        metrics.accepted(2);
        assert!(counters.inc(slot, 1).allowed);
        assert!(counters.inc(slot, 1).allowed);
        assert!(
            !counters.inc(slot, 1).allowed,
            "the third is over the maximum"
        );
        let mut row = 0;
        for _ in 0..2 {
            row = metrics.upgraded(&model, 0, 0, Duration::from_micros(800));
        }
        metrics.refused(429);
        metrics.connection_closed(0, false);
        metrics.relayed(row, &model, 0, true, 3, 39);
        metrics.relayed(row, &model, 0, false, 3, 27);
        history.record(&metrics, &counters, open(&metrics));

        let info = Info {
            started: NOW - 90,
            loaded: NOW - 30,
            reload_failed: Some((NOW - 10, "gateway.yaml:3: unknown key".into())),
            reloads: 2,
        };
        let row = |address: &str, kind, i: usize| ListenerRow {
            address: address.into(),
            kind,
            open: metrics.listeners.get(i).copied().unwrap_or_default(),
        };
        let listeners = [
            row("127.0.0.1:8080", "plain", 0),
            row("127.0.0.1:8081", "echo", 1),
            row("127.0.0.1:9090", "admin", 2),
        ];
        let limits = limit_rows(&model);
        let j = json(&inputs(
            &info, &listeners, &limits, &metrics, &counters, &history,
        ));
        let has = |part: &str| assert!(j.contains(part), "{part}\nnot in\n{j}");
        has(concat!(
            "{\"version\":\"9.9.9\",\"now\":1800000000,\"uptime\":90,\"config\":{",
            "\"file\":\"/etc/wsgate/gateway.yaml\",\"loaded\":1799999970,\"reloads\":2,",
            "\"reload_failed\":{\"at\":1799999990,\"error\":\"gateway.yaml:3: unknown key\"}},"
        ));
        has(concat!(
            "\"listeners\":[",
            "{\"address\":\"127.0.0.1:8080\",\"kind\":\"plain\",\"connections\":2,\"websockets\":2},",
            "{\"address\":\"127.0.0.1:8081\",\"kind\":\"echo\",\"connections\":0,\"websockets\":0},",
            "{\"address\":\"127.0.0.1:9090\",\"kind\":\"admin\",\"connections\":1,\"websockets\":0}],",
            "\"totals\":{\"connections\":2,\"websockets\":2,\"accepted\":4,\"upgrades\":2,",
            "\"calls\":0,\"messages\":[3,3],\"bytes\":[39,27]},"
        ));
        has(concat!(
            "\"apis\":[{\"api\":\"test-yahel-websocket-api:1.0.0\",\"websockets\":2,\"calls\":0,",
            "\"messages\":[3,3],\"bytes\":[39,27]},"
        ));
        // Connection counts as sampled; counters as their growth from one sample to the next.
        has(concat!(
            "\"history\":{\"every\":2,\"connections\":[0,2],\"websockets\":[0,2],",
            "\"upgrades\":[2],\"calls\":[0],\"messages_in\":[3],\"messages_out\":[3],",
            "\"bytes_in\":[39],\"bytes_out\":[27]},"
        ));
        // The count limit comes first, with its one live key by application name.
        has(concat!(
            "\"limits\":[{\"name\":\"websocket-connections\",\"kind\":\"Count\",",
            "\"rejections\":{\"minute\":1,\"total\":1},\"keys\":[{\"scope\":\"plan:default-plan\",",
            "\"by\":\"app\",\"who\":\"demo-app\",\"more\":\"\",\"value\":2,\"max\":2,",
            "\"window_start\":null}]},"
        ));
        has("\"keys\":{\"live\":1,\"shown\":1}");
        has("\"refusals\":[{\"code\":429,\"minute\":1,\"total\":1}]");
        has(concat!(
            "\"upgrades_failed\":{\"limit\":0,\"rejected\":0,\"backend_error\":0,",
            "\"backend_refused\":0,\"aborted\":0}"
        ));
        has("\"counts\":[2,0,0,0,0,0,0,0,0,0,0,0,0,0]");
        has(concat!(
            "\"memory\":{\"resident\":3000000,\"resident_per_connection\":1500000,",
            "\"buffers_in_use\":2,\"buffers_idle\":3,\"buffer_size\":65536},",
            "\"files\":{\"open\":17,\"max\":1024}}\n"
        ));
        // Applications by name only: no client id or secret of the config.
        for app in &model.applications {
            assert!(!j.contains(&app.client_id), "{j}");
            if let Some(secret) = &app.client_secret {
                assert!(!j.contains(secret.as_str()), "{j}");
            }
        }
        let parsed: serde_yaml::Value = serde_yaml::from_str(&j).expect("the answer is JSON");
        assert_eq!(parsed["limits"][0]["keys"][0]["value"].as_u64(), Some(2));
    }

    /// "Last minute" counts from the sample a minute old; the ring keeps [`SAMPLES`] samples
    /// and lists them oldest first.
    /// Once shutdown has closed the listeners the page lists none, yet its totals are still the
    /// connections open, the same figures the history samples.
    #[test]
    fn totals_are_the_sampled_ones_without_listener_rows() {
        let model = seed();
        let mut metrics = Metrics::new(&model);
        let counters = Counters::new(&model, 64);
        let mut history = History::default();
        metrics.accepted(0);
        metrics.accepted(0);
        metrics.accepted(2); // the admin connection that asks
        history.record(&metrics, &counters, totals(&metrics.listeners, Some(2)));
        let info = Info::default();
        let j = json(&inputs(&info, &[], &[], &metrics, &counters, &history));
        assert!(
            j.contains("\"listeners\":[],\"totals\":{\"connections\":2,"),
            "{j}"
        );
        assert!(j.contains("\"every\":2,\"connections\":[2],"), "{j}");
    }

    #[test]
    fn history_is_a_fixed_ring_and_the_minute_counts_from_a_minute_ago() {
        let model = seed();
        let mut metrics = Metrics::new(&model);
        let counters = Counters::new(&model, 64);
        let mut history = History::default();
        metrics.refused(503);
        history.record(&metrics, &counters, Totals::default());
        metrics.refused(503);
        // A minute of samples later, one more.
        for _ in 0..MINUTE {
            history.record(&metrics, &counters, Totals::default());
        }
        metrics.refused(503);
        metrics.refused(1009);
        let info = Info::default();
        let j = json(&inputs(&info, &[], &[], &metrics, &counters, &history));
        assert!(
            j.contains(
                "\"refusals\":[{\"code\":503,\"minute\":2,\"total\":3},{\"code\":1009,\"minute\":1,\"total\":1}]"
            ),
            "{j}"
        );
        for i in 0..(2 * SAMPLES as u64) {
            let open = Totals {
                connections: i,
                websockets: 0,
            };
            history.record(&metrics, &counters, open);
        }
        let seen: Vec<u64> = history.iter().map(|s| s.connections).collect();
        assert_eq!(seen.len(), SAMPLES);
        assert_eq!(seen[0], SAMPLES as u64);
        assert_eq!(seen[SAMPLES - 1], 2 * SAMPLES as u64 - 1);
        assert!(seen.windows(2).all(|w| w[0] + 1 == w[1]), "{seen:?}");
        assert_eq!(history.samples.capacity(), SAMPLES);
    }

    #[test]
    fn keys_are_taken_apart_by_who_they_count() {
        let k = |key| KeyParts::of(key, "conns");
        assert_eq!(
            k("plan:gold:conns:app=demo-app"),
            KeyParts {
                scope: "plan:gold",
                by: "app",
                who: "demo-app",
                more: ""
            }
        );
        assert_eq!(
            k("gateway:conns:ip=2001:db8:1:2::/64:api=chat"),
            KeyParts {
                scope: "gateway",
                by: "ip",
                who: "2001:db8:1:2::/64",
                more: "api=chat"
            }
        );
        assert_eq!(
            k("catalog:conns:key=#00000000000000ff"),
            KeyParts {
                scope: "catalog",
                by: "key",
                who: "#00000000000000ff",
                more: ""
            }
        );
        assert_eq!(
            k("gateway:conns:dv=room-1"),
            KeyParts {
                scope: "gateway",
                by: "all",
                who: "",
                more: "dv=room-1"
            }
        );
        // A plan whose name starts like the limit's is not taken for it.
        assert_eq!(k("plan:conns-plan:conns:app=a").scope, "plan:conns-plan");
    }

    /// The page is one self-contained file, small next to the smallest buffer.
    #[test]
    fn the_page_fits_the_smallest_buffer() {
        assert!(PAGE.starts_with("<!DOCTYPE html>"));
        assert!(
            PAGE.len() + 1024 < crate::http::head::MAX_HEAD,
            "{}",
            PAGE.len()
        );
        for external in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!PAGE.contains(external), "the page loads {external}");
        }
    }
}
