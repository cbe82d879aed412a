//! The four client modes. Each opens its connections through the shared driver, measures over
//! a window and prints one JSON line.

use std::time::{Duration, Instant};

use crate::client::{End, Phase, Pool, Step, Target};
use crate::drive::{Mode, Tick, drive};
use crate::frame::{self, OP_BINARY};
use crate::hist::Hist;
use crate::opts::Opts;
use crate::report::{Cpu, Json, bump};
use crate::sys;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn until(t: Instant, now: Instant) -> Duration {
    t.saturating_duration_since(now)
}

/// Opens connections up to a total, at most `concurrency` in progress at once.
struct Ramp {
    total: usize,
    started: usize,
    in_progress: usize,
    concurrency: usize,
    opened: usize,
    failures: Vec<(String, u64)>,
    began: Option<Instant>,
    done: Option<Instant>,
}

impl Ramp {
    fn new(total: usize, concurrency: usize) -> Ramp {
        Ramp {
            total,
            started: 0,
            in_progress: 0,
            concurrency: concurrency.max(1),
            opened: 0,
            failures: Vec::new(),
            began: None,
            done: None,
        }
    }

    /// Starts what it may; true once every connection has opened or failed.
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> bool {
        self.began.get_or_insert(now);
        while self.started < self.total && self.in_progress < self.concurrency {
            self.started += 1;
            match pool.open(now) {
                Ok(_) => self.in_progress += 1,
                Err(e) => bump(&mut self.failures, e.kind()),
            }
        }
        if self.started == self.total && self.in_progress == 0 {
            self.done.get_or_insert(now);
            return true;
        }
        false
    }

    /// Accounts for a connection that was still opening; true if it just opened.
    fn after(&mut self, was: Phase, step: &Step) -> bool {
        if !matches!(was, Phase::Connecting | Phase::Upgrading) {
            return false;
        }
        if step.upgraded {
            self.in_progress -= 1;
            self.opened += 1;
            return true;
        }
        if let Some(e) = &step.end {
            self.in_progress -= 1;
            bump(&mut self.failures, e.kind());
        }
        false
    }

    fn secs(&self) -> f64 {
        match (self.began, self.done) {
            (Some(b), Some(d)) => d.duration_since(b).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn failed(&self) -> u64 {
        self.failures.iter().map(|(_, c)| c).sum()
    }
}

fn pool_for(o: &Opts) -> Result<Pool, String> {
    let t = Target::new(
        o.url.as_deref().unwrap_or(""),
        &o.headers,
        &o.sources,
        &o.tls,
    )?;
    Pool::new(t).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------

enum HoldPhase {
    Ramp,
    Hold(Instant),
}

struct Hold {
    ramp: Ramp,
    phase: HoldPhase,
    hold_secs: f64,
    watch_stdin: bool,
    held_from: Option<Instant>,
    held_until: Option<Instant>,
    dropped: Vec<(String, u64)>,
}

impl Mode for Hold {
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> Tick {
        let stop = sys::stop_requested() || (self.watch_stdin && sys::stdin_closed());
        match self.phase {
            HoldPhase::Ramp => {
                if self.ramp.tick(pool, now) {
                    eprintln!(
                        "ready: {} open, {} failed, ramp {:.3}s",
                        self.ramp.opened,
                        self.ramp.failed(),
                        self.ramp.secs()
                    );
                    self.held_from = Some(now);
                    self.phase = HoldPhase::Hold(now + secs(self.hold_secs));
                    return Tick::Wake(Duration::ZERO);
                }
                if stop {
                    return Tick::Done;
                }
                Tick::Wake(Duration::from_millis(100))
            }
            HoldPhase::Hold(end) => {
                if stop || now >= end {
                    self.held_until = Some(now);
                    return Tick::Done;
                }
                Tick::Wake(until(end, now))
            }
        }
    }

    fn after(&mut self, _pool: &mut Pool, _idx: usize, was: Phase, step: &Step, _now: Instant) {
        // A connection may open and end in the same event: then it counts as dropped too.
        self.ramp.after(was, step);
        if let Some(e) = &step.end
            && (step.upgraded || !matches!(was, Phase::Connecting | Phase::Upgrading))
        {
            bump(&mut self.dropped, e.kind());
        }
    }
}

pub fn hold(o: &Opts) -> Result<(), String> {
    let mut pool = pool_for(o)?;
    let mut m = Hold {
        ramp: Ramp::new(o.conns, o.concurrency.unwrap_or(256)),
        phase: HoldPhase::Ramp,
        hold_secs: o.hold_secs,
        watch_stdin: o.stdin,
        held_from: None,
        held_until: None,
        dropped: Vec::new(),
    };
    drive(&mut pool, &mut m, secs(o.timeout)).map_err(|e| e.to_string())?;
    let open_at_end = pool.live();
    let mut scratch = vec![0u8; 64 * 1024];
    let clean = pool.close_all(Duration::from_secs(2), &mut scratch);
    let held = match (m.held_from, m.held_until) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    Json::new("hold", &o.label)
        .int("conns", o.conns as u64)
        .int("opened", m.ramp.opened as u64)
        .int("failed", m.ramp.failed())
        .counts("failures", &m.ramp.failures)
        .num("ramp_secs", m.ramp.secs(), 3)
        .num("held_secs", held, 3)
        .counts("dropped_while_open", &m.dropped)
        .int("open_at_end", open_at_end as u64)
        .int("closed_clean", clean as u64)
        .print();
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Phases of a timed run: ramp, warmup, measured window, then an optional drain.
#[derive(Clone, Copy)]
enum Timed {
    Ramp,
    Warmup(Instant),
    Measure(Instant),
    Drain(Instant),
    Done,
}

/// One masked binary frame of `size` payload bytes; its payload starts at `.1`.
fn template(size: usize, mask: [u8; 4]) -> (Vec<u8>, usize) {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut f = Vec::with_capacity(size + 14);
    frame::frame(&mut f, OP_BINARY, &payload, Some(mask));
    let off = f.len() - size;
    (f, off)
}

struct Flood {
    ramp: Ramp,
    phase: Timed,
    warmup: f64,
    secs: f64,
    window: usize,
    frame: Vec<u8>,
    total: u64,
    at_start: u64,
    window_msgs: u64,
    t0: Option<Instant>,
    t1: Option<Instant>,
    cpu: Cpu,
    cpu_used: Vec<(String, f64)>,
    lost: Vec<(String, u64)>,
}

impl Flood {
    fn send(&self, pool: &mut Pool, idx: usize, n: usize) {
        // After a close frame either way, no more data may follow.
        if let Some(c) = pool.get(idx).filter(|c| c.phase == Phase::Open) {
            for _ in 0..n {
                c.queue(&self.frame);
            }
            // An error here shows up as an event on this connection.
            let _ = c.flush();
        }
    }

    fn sending(&self) -> bool {
        matches!(
            self.phase,
            Timed::Ramp | Timed::Warmup(_) | Timed::Measure(_)
        )
    }
}

impl Mode for Flood {
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> Tick {
        if sys::stop_requested() && !matches!(self.phase, Timed::Done) {
            if let Timed::Measure(_) = self.phase {
                self.end_window(now);
            }
            self.phase = Timed::Done;
        }
        match self.phase {
            Timed::Ramp => {
                if self.ramp.tick(pool, now) {
                    if self.ramp.opened == 0 {
                        self.phase = Timed::Done;
                        return Tick::Done;
                    }
                    self.phase = Timed::Warmup(now + secs(self.warmup));
                    return Tick::Wake(Duration::ZERO);
                }
                Tick::Wake(Duration::from_millis(100))
            }
            Timed::Warmup(end) => {
                if now >= end {
                    self.at_start = self.total;
                    self.t0 = Some(now);
                    self.cpu.start();
                    self.phase = Timed::Measure(now + secs(self.secs));
                    return Tick::Wake(secs(self.secs));
                }
                Tick::Wake(until(end, now))
            }
            Timed::Measure(end) => {
                if now >= end {
                    self.end_window(now);
                    self.phase = Timed::Done;
                    return Tick::Done;
                }
                Tick::Wake(until(end, now))
            }
            Timed::Drain(_) | Timed::Done => Tick::Done,
        }
    }

    fn after(&mut self, pool: &mut Pool, idx: usize, was: Phase, step: &Step, _now: Instant) {
        let opened = self.ramp.after(was, step);
        self.total += step.msgs as u64;
        if step.end.is_some() {
            if let Some(e) = &step.end
                && (opened || !matches!(was, Phase::Connecting | Phase::Upgrading))
            {
                bump(&mut self.lost, e.kind());
            }
            return;
        }
        if !self.sending() {
            return;
        }
        let n = if opened { self.window } else { 0 } + step.msgs as usize;
        if n > 0 {
            self.send(pool, idx, n);
        }
    }
}

impl Flood {
    fn end_window(&mut self, now: Instant) {
        self.window_msgs = self.total - self.at_start;
        self.t1 = Some(now);
        self.cpu_used = self.cpu.since();
    }
}

pub fn flood(o: &Opts) -> Result<(), String> {
    let mut pool = pool_for(o)?;
    let mask = (pool.rng.next() as u32).to_ne_bytes();
    let mut m = Flood {
        ramp: Ramp::new(o.conns, o.concurrency.unwrap_or(256)),
        phase: Timed::Ramp,
        warmup: o.warmup,
        secs: o.secs,
        window: o.window,
        frame: template(o.size, mask).0,
        total: 0,
        at_start: 0,
        window_msgs: 0,
        t0: None,
        t1: None,
        cpu: Cpu::new(&o.cpu_pids),
        cpu_used: Vec::new(),
        lost: Vec::new(),
    };
    drive(&mut pool, &mut m, secs(o.timeout)).map_err(|e| e.to_string())?;
    let mut scratch = vec![0u8; 256 * 1024];
    pool.close_all(Duration::from_secs(1), &mut scratch);
    let span = match (m.t0, m.t1) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if span > 0.0 {
        m.window_msgs as f64 / span
    } else {
        0.0
    };
    Json::new("flood", &o.label)
        .str("url", o.url.as_deref().unwrap_or(""))
        .int("conns", o.conns as u64)
        .int("opened", m.ramp.opened as u64)
        .counts("failures", &m.ramp.failures)
        .int("size", o.size as u64)
        .int("window", o.window as u64)
        .num("secs", span, 3)
        .int("msgs", m.window_msgs)
        .num("msgs_per_sec", rate, 0)
        .num("payload_bytes_per_sec", rate * o.size as f64, 0)
        .counts("lost_conns", &m.lost)
        .cpu("cpu_secs", &m.cpu_used)
        .print();
    if m.ramp.opened == 0 {
        return Err("no connection opened".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

struct Latency {
    ramp: Ramp,
    phase: Timed,
    warmup: f64,
    secs: f64,
    interval: Duration,
    tick: Duration,
    next_send: Option<Instant>,
    frame: Vec<u8>,
    ts_off: usize,
    mask: [u8; 4],
    epoch: Instant,
    open: Vec<usize>,
    rr: usize,
    /// Measured window in nanoseconds since `epoch`.
    win: (u64, u64),
    sent: u64,
    received: u64,
    hist: Hist,
    late: Hist,
    cpu: Cpu,
    cpu_used: Vec<(String, f64)>,
    t0: Option<Instant>,
    t1: Option<Instant>,
    lost: Vec<(String, u64)>,
}

impl Latency {
    fn ns(&self, t: Instant) -> u64 {
        t.duration_since(self.epoch).as_nanos() as u64
    }

    /// Sends every message that is due: an open-loop schedule, independent of replies.
    fn send_due(&mut self, pool: &mut Pool, now: Instant) {
        let Some(mut next) = self.next_send else {
            return;
        };
        let measuring = matches!(self.phase, Timed::Measure(_));
        let mut f = self.frame.clone();
        'due: while next <= now {
            // Round robin over connections that are still open (not closing).
            let mut tries = self.open.len();
            let c = loop {
                if tries == 0 {
                    // All are closing: offer nothing for a moment instead of spinning.
                    next = now + Duration::from_millis(1);
                    break 'due;
                }
                tries -= 1;
                self.rr = (self.rr + 1) % self.open.len();
                if let Some(c) = pool
                    .get(self.open[self.rr])
                    .filter(|c| c.phase == Phase::Open)
                {
                    break c;
                }
            };
            // Stamped one by one: a burst's last message must not carry its first one's time.
            let t = Instant::now();
            let mut ts = t.duration_since(self.epoch).as_nanos().to_le_bytes();
            let ts = &mut ts[..8];
            frame::apply_mask(ts, self.mask, 0);
            f[self.ts_off..self.ts_off + 8].copy_from_slice(ts);
            c.queue(&f);
            let _ = c.flush();
            if measuring {
                self.sent += 1;
                self.late.record(t.duration_since(next).as_nanos() as u64);
            }
            next += self.interval;
        }
        self.next_send = Some(next);
    }

    fn end_window(&mut self, now: Instant) {
        self.win.1 = self.ns(now);
        self.t1 = Some(now);
        self.cpu_used = self.cpu.since();
    }
}

impl Mode for Latency {
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> Tick {
        if sys::stop_requested() {
            match self.phase {
                Timed::Measure(_) => {
                    self.end_window(now);
                    self.phase = Timed::Drain(now + Duration::from_secs(2));
                }
                Timed::Ramp | Timed::Warmup(_) => self.phase = Timed::Done,
                _ => {}
            }
        }
        match self.phase {
            Timed::Ramp => {
                if self.ramp.tick(pool, now) {
                    if self.ramp.opened == 0 {
                        return Tick::Done;
                    }
                    self.next_send = Some(now);
                    self.phase = Timed::Warmup(now + secs(self.warmup));
                    return Tick::Wake(Duration::ZERO);
                }
                Tick::Wake(Duration::from_millis(100))
            }
            Timed::Warmup(end) | Timed::Measure(end) => {
                if self.open.is_empty() {
                    // Every connection is gone: nothing left to measure.
                    if let Timed::Measure(_) = self.phase {
                        self.end_window(now);
                    }
                    self.phase = Timed::Done;
                    return Tick::Done;
                }
                if now >= end {
                    if let Timed::Warmup(_) = self.phase {
                        self.win.0 = self.ns(now);
                        self.t0 = Some(now);
                        self.cpu.start();
                        self.phase = Timed::Measure(now + secs(self.secs));
                    } else {
                        self.end_window(now);
                        self.phase = Timed::Drain(now + Duration::from_secs(2));
                    }
                    return Tick::Wake(Duration::ZERO);
                }
                self.send_due(pool, now);
                // Sleep at least `tick` between bursts: waking for every message would cost
                // the sender more CPU than the gateway it measures.
                let next = self.next_send.map_or(end, |n| n.min(end));
                Tick::Wake(until(next, Instant::now()).max(self.tick))
            }
            Timed::Drain(end) => {
                if now >= end || self.received >= self.sent {
                    self.phase = Timed::Done;
                    return Tick::Done;
                }
                Tick::Wake(until(end, now))
            }
            Timed::Done => Tick::Done,
        }
    }

    fn on_msg(&mut self, prefix: &[u8], at: Instant) {
        let Ok(b) = <[u8; 8]>::try_from(prefix) else {
            return;
        };
        let sent = u64::from_le_bytes(b);
        if sent >= self.win.0 && sent < self.win.1 {
            self.received += 1;
            self.hist.record(self.ns(at).saturating_sub(sent));
        }
    }

    fn after(&mut self, _pool: &mut Pool, idx: usize, was: Phase, step: &Step, _now: Instant) {
        let opened = self.ramp.after(was, step);
        if opened {
            self.open.push(idx);
        }
        if let Some(e) = &step.end
            && let Some(p) = self.open.iter().position(|&i| i == idx)
        {
            self.open.swap_remove(p);
            bump(&mut self.lost, e.kind());
        }
    }
}

pub fn latency(o: &Opts) -> Result<(), String> {
    let mut pool = pool_for(o)?;
    let mask = (pool.rng.next() as u32).to_ne_bytes();
    let (frame, ts_off) = template(o.size, mask);
    let mut m = Latency {
        ramp: Ramp::new(o.conns, o.concurrency.unwrap_or(256)),
        phase: Timed::Ramp,
        warmup: o.warmup,
        secs: o.secs,
        interval: Duration::from_secs_f64(1.0 / o.rate),
        tick: Duration::from_micros(o.tick_us),
        next_send: None,
        frame,
        ts_off,
        mask,
        epoch: Instant::now(),
        open: Vec::new(),
        rr: 0,
        win: (u64::MAX, u64::MAX),
        sent: 0,
        received: 0,
        hist: Hist::new(),
        late: Hist::new(),
        cpu: Cpu::new(&o.cpu_pids),
        cpu_used: Vec::new(),
        t0: None,
        t1: None,
        lost: Vec::new(),
    };
    drive(&mut pool, &mut m, secs(o.timeout)).map_err(|e| e.to_string())?;
    let mut scratch = vec![0u8; 256 * 1024];
    pool.close_all(Duration::from_secs(1), &mut scratch);
    let span = match (m.t0, m.t1) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let us = |v: u64| v as f64 / 1000.0;
    let h = &m.hist;
    Json::new("latency", &o.label)
        .str("url", o.url.as_deref().unwrap_or(""))
        .int("conns", o.conns as u64)
        .int("opened", m.ramp.opened as u64)
        .counts("failures", &m.ramp.failures)
        .int("size", o.size as u64)
        .num("rate", o.rate, 0)
        .num("secs", span, 3)
        .num("sent_per_sec", m.sent as f64 / span.max(1e-9), 0)
        .int("sent", m.sent)
        .int("received", m.received)
        .int("missing", m.sent.saturating_sub(h.count()))
        .num("p50_us", us(h.quantile(0.5)), 1)
        .num("p90_us", us(h.quantile(0.9)), 1)
        .num("p99_us", us(h.quantile(0.99)), 1)
        .num("p999_us", us(h.quantile(0.999)), 1)
        .num("max_us", us(h.max()), 1)
        .num("send_late_p99_us", us(m.late.quantile(0.99)), 1)
        .num("send_late_max_us", us(m.late.max()), 1)
        .counts("lost_conns", &m.lost)
        .cpu("cpu_secs", &m.cpu_used)
        .print();
    if m.ramp.opened == 0 {
        return Err("no connection opened".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

struct Handshakes {
    concurrency: usize,
    in_flight: usize,
    phase: Timed,
    secs: f64,
    upgrades: u64,
    failures: Vec<(String, u64)>,
    unclean: Vec<(String, u64)>,
    t0: Option<Instant>,
    t1: Option<Instant>,
    cpu: Cpu,
    cpu_used: Vec<(String, f64)>,
    /// Set after a connect failed at once (e.g. no free port), to back off briefly.
    backoff: Option<Instant>,
}

impl Mode for Handshakes {
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> Tick {
        let stop = sys::stop_requested();
        match self.phase {
            Timed::Ramp | Timed::Drain(_) | Timed::Done => {
                // No ramp here; Warmup starts at once (see `handshakes`).
                if self.in_flight == 0 {
                    return Tick::Done;
                }
                if let Timed::Drain(end) = self.phase
                    && now < end
                {
                    return Tick::Wake(until(end, now));
                }
                Tick::Done
            }
            Timed::Warmup(end) | Timed::Measure(end) => {
                if now >= end || stop {
                    if let (Timed::Warmup(_), false) = (self.phase, stop) {
                        self.t0 = Some(now);
                        self.upgrades = 0;
                        self.cpu.start();
                        self.phase = Timed::Measure(now + secs(self.secs));
                    } else {
                        if let Timed::Measure(_) = self.phase {
                            self.t1 = Some(now);
                            self.cpu_used = self.cpu.since();
                        }
                        self.phase = Timed::Drain(now + Duration::from_secs(2));
                    }
                    return Tick::Wake(Duration::ZERO);
                }
                if self.backoff.is_some_and(|b| now < b) {
                    return Tick::Wake(Duration::from_millis(1));
                }
                while self.in_flight < self.concurrency {
                    match pool.open(now) {
                        Ok(_) => self.in_flight += 1,
                        Err(e) => {
                            bump(&mut self.failures, e.kind());
                            self.backoff = Some(now + Duration::from_millis(1));
                            break;
                        }
                    }
                }
                Tick::Wake(until(end, now))
            }
        }
    }

    fn after(&mut self, pool: &mut Pool, idx: usize, was: Phase, step: &Step, now: Instant) {
        if step.upgraded {
            if let Timed::Measure(_) = self.phase {
                self.upgrades += 1;
            }
            if step.end.is_none() {
                pool.start_close(idx, now);
            }
        }
        if let Some(e) = &step.end {
            self.in_flight -= 1;
            let upgraded = step.upgraded || !matches!(was, Phase::Connecting | Phase::Upgrading);
            if !upgraded {
                bump(&mut self.failures, e.kind());
            } else if *e != End::Clean {
                bump(&mut self.unclean, e.kind());
            }
        }
    }
}

pub fn handshakes(o: &Opts) -> Result<(), String> {
    let mut pool = pool_for(o)?;
    let now = Instant::now();
    let mut m = Handshakes {
        concurrency: o.concurrency.unwrap_or(16).max(1),
        in_flight: 0,
        phase: Timed::Warmup(now + secs(o.warmup)),
        secs: o.secs,
        upgrades: 0,
        failures: Vec::new(),
        unclean: Vec::new(),
        t0: None,
        t1: None,
        cpu: Cpu::new(&o.cpu_pids),
        cpu_used: Vec::new(),
        backoff: None,
    };
    drive(&mut pool, &mut m, secs(o.timeout)).map_err(|e| e.to_string())?;
    let span = match (m.t0, m.t1) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if span > 0.0 {
        m.upgrades as f64 / span
    } else {
        0.0
    };
    Json::new("handshakes", &o.label)
        .str("url", o.url.as_deref().unwrap_or(""))
        .int("concurrency", m.concurrency as u64)
        .num("secs", span, 3)
        .int("upgrades", m.upgrades)
        .num("upgrades_per_sec", rate, 0)
        .counts("failures", &m.failures)
        .counts("unclean_closes", &m.unclean)
        .cpu("cpu_secs", &m.cpu_used)
        .print();
    Ok(())
}
