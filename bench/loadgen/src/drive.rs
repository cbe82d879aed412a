//! The event loop shared by the client modes: poll, hand readiness to connections, report what
//! happened to the mode, and time out connections that hang.

use std::io;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};

use crate::client::{End, Phase, Pool, Step};
use crate::sys::Timer;

pub enum Tick {
    /// Call `tick` again after at most this long.
    Wake(Duration),
    Done,
}

pub trait Mode {
    /// Opens connections, sends timed messages, moves between phases.
    fn tick(&mut self, pool: &mut Pool, now: Instant) -> Tick;
    /// The first bytes of one completed message, received at `at`.
    fn on_msg(&mut self, _prefix: &[u8], _at: Instant) {}
    /// What an event did to connection `idx`. On `step.end` the driver removes it afterwards;
    /// `was` is its phase before the event.
    fn after(&mut self, pool: &mut Pool, idx: usize, was: Phase, step: &Step, now: Instant);
}

/// Longest poll sleep, so signals and stdin are noticed promptly.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Below this, sleeps use the timerfd: epoll alone would round them up to a millisecond.
const FINE: Duration = Duration::from_millis(2);
const TIMER: Token = Token(usize::MAX);

pub fn drive(pool: &mut Pool, mode: &mut impl Mode, timeout: Duration) -> io::Result<()> {
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 256 * 1024];
    let mut next_sweep = Instant::now() + MAX_SLEEP;
    let timer = Timer::new()?;
    pool.poll
        .registry()
        .register(&mut SourceFd(&timer.fd()), TIMER, Interest::READABLE)?;
    loop {
        let now = Instant::now();
        let mut wake = match mode.tick(pool, now) {
            Tick::Done => return Ok(()),
            Tick::Wake(d) => Some(d.min(MAX_SLEEP)),
        };
        if let Some(d) = wake
            && !d.is_zero()
            && d < FINE
        {
            timer.arm(d);
            wake = Some(MAX_SLEEP);
        }
        if let Err(e) = pool.poll.poll(&mut events, wake)
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                timer.clear();
                continue;
            }
            let i = ev.token().0;
            let Some(was) = pool.get(i).map(|c| c.phase) else {
                continue;
            };
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            let Some(step) = pool.ready(i, readable, ev.is_writable(), &mut scratch, &mut |p| {
                mode.on_msg(p, Instant::now())
            }) else {
                continue;
            };
            mode.after(pool, i, was, &step, Instant::now());
            if step.end.is_some() {
                pool.remove(i);
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + MAX_SLEEP;
            sweep(pool, mode, timeout, now);
        }
    }
}

/// Ends connections stuck in connect, upgrade or close for longer than `timeout`.
fn sweep(pool: &mut Pool, mode: &mut impl Mode, timeout: Duration, now: Instant) {
    for i in pool.tokens() {
        let Some(c) = pool.get(i) else { continue };
        let since = match c.phase {
            Phase::Connecting | Phase::Upgrading => c.started,
            Phase::Closing => c.closing_since.unwrap_or(c.started),
            Phase::Open => continue,
        };
        if now.duration_since(since) > timeout {
            let was = c.phase;
            let step = Step {
                end: Some(End::Dropped("timeout".into())),
                ..Step::default()
            };
            mode.after(pool, i, was, &step, now);
            pool.remove(i);
        }
    }
}
