//! A hashed timer wheel. Each connection has at most one deadline that matters (header,
//! handshake, connect, idle or close grace); moving it later costs nothing (the entry is checked
//! when it fires and put back), moving it earlier adds one entry. Firing a slot looks only at the
//! entries of that slot, never at every connection.

use std::time::{Duration, Instant};

/// Milliseconds per tick.
const TICK_MS: u64 = 100;
/// Whole ticks per second: a tick divides a second exactly, so that a duration's ticks come
/// from its seconds and sub-second part with 32-bit arithmetic only.
const TICKS_PER_SEC: u64 = 1000 / TICK_MS;
const _: () = assert!(1000 % TICK_MS == 0);
const TICK_MICROS: u32 = TICK_MS as u32 * 1000;
const SLOTS: usize = 1024;

/// A point in time in ticks since the wheel started. 0 means "no deadline".
pub type Tick = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: u32,
    pub epoch: u32,
    /// The deadline this entry was armed for.
    pub at: Tick,
}

pub struct Wheel {
    start: Instant,
    slots: Vec<Vec<Entry>>,
    /// The last tick whose slot has been processed.
    done: Tick,
    len: usize,
}

impl Wheel {
    pub fn new(start: Instant) -> Wheel {
        Wheel {
            start,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            done: 0,
            len: 0,
        }
    }

    pub fn now_tick(&self, now: Instant) -> Tick {
        let d = now.saturating_duration_since(self.start);
        let ticks = d.as_secs() * TICKS_PER_SEC + u64::from(d.subsec_micros() / TICK_MICROS);
        ticks.min(Tick::MAX as u64) as Tick
    }

    /// The tick at or after which `after` has elapsed from `now` (never 0). Rounded up from
    /// the exact instant: `now` may lie anywhere within its tick, and counting from the start
    /// of that tick would fire up to a whole tick early.
    pub fn deadline(&self, now: Instant, after: Duration) -> Tick {
        let due = now.saturating_duration_since(self.start) + after;
        // Ticks up to the microsecond, rounded up, without a 128-bit division: this runs on
        // every timer update.
        let ticks = due
            .as_secs()
            .saturating_mul(TICKS_PER_SEC)
            .saturating_add(u64::from(due.subsec_micros().div_ceil(TICK_MICROS)));
        let t = ticks.max(self.now_tick(now) as u64 + 1);
        t.min(Tick::MAX as u64) as Tick
    }

    pub fn insert(&mut self, e: Entry) {
        let at = e.at.max(self.done + 1);
        self.slots[at as usize % SLOTS].push(e);
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries in the wheel, live or stale.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keeps only the entries for which `keep` holds: the caller drops those that can no longer
    /// fire anything (their connection ended, or an earlier deadline superseded them).
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        for slot in &mut self.slots {
            slot.retain(&mut keep);
            trim(slot);
        }
        self.len = self.slots.iter().map(Vec::len).sum();
    }

    /// How long the loop may sleep before the next tick needs processing.
    pub fn sleep(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let next = Duration::from_millis((self.done as u64 + 1) * TICK_MS);
        Some(next.saturating_sub(now.saturating_duration_since(self.start)))
    }

    /// Moves every entry whose slot has come up into `due`. Entries whose deadline lies a full
    /// turn or more ahead stay in place. The caller checks each entry against the connection's
    /// current deadline and re-inserts the ones that moved.
    pub fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) {
        let now = self.now_tick(now);
        while self.done < now {
            self.done += 1;
            let t = self.done;
            let slot = &mut self.slots[t as usize % SLOTS];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].at <= t {
                    due.push(slot.swap_remove(i));
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            trim(slot);
            if self.len == 0 {
                self.done = now;
                break;
            }
        }
    }
}

/// Gives back most of a slot's spare capacity. A slot holds what falls due in one tick, so in
/// a turn of the wheel every slot sees the peak connection rate: kept at its largest burst,
/// the wheel's memory would follow the busiest moment of the day, not the connections open.
fn trim(slot: &mut Vec<Entry>) {
    if slot.capacity() > 64 && slot.len() * 4 < slot.capacity() {
        slot.shrink_to(slot.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_not_before() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let at = w.deadline(t0, Duration::from_millis(250));
        assert_eq!(at, 3);
        w.insert(Entry {
            key: 1,
            epoch: 1,
            at,
        });
        let mut due = Vec::new();
        w.expire(t0 + Duration::from_millis(200), &mut due);
        assert!(due.is_empty());
        w.expire(t0 + Duration::from_millis(300), &mut due);
        assert_eq!(
            due,
            vec![Entry {
                key: 1,
                epoch: 1,
                at
            }]
        );
        assert!(w.is_empty());
    }

    #[test]
    fn a_deadline_set_late_in_a_tick_does_not_fire_early() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let set = t0 + Duration::from_millis(99);
        let at = w.deadline(set, Duration::from_millis(200));
        w.insert(Entry {
            key: 1,
            epoch: 1,
            at,
        });
        let mut due = Vec::new();
        // 200 ms after the start of the tick, but only 101 ms after the deadline was set.
        w.expire(t0 + Duration::from_millis(200), &mut due);
        assert!(due.is_empty(), "fired 99 ms early");
        w.expire(set + Duration::from_millis(200), &mut due);
        assert!(due.is_empty(), "fired before its 200 ms");
        w.expire(t0 + Duration::from_millis(300), &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn far_deadlines_survive_full_turns() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let at = w.deadline(t0, Duration::from_secs(250)); // more than two turns
        w.insert(Entry {
            key: 9,
            epoch: 2,
            at,
        });
        let mut due = Vec::new();
        w.expire(t0 + Duration::from_secs(249), &mut due);
        assert!(due.is_empty());
        w.expire(t0 + Duration::from_secs(251), &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn retain_drops_entries_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        for key in 0..10 {
            let at = w.deadline(t0, Duration::from_secs(key as u64 * 60));
            w.insert(Entry { key, epoch: 0, at });
        }
        w.retain(|e| e.key % 2 == 0);
        assert_eq!(w.len(), 5);
        let mut due = Vec::new();
        w.expire(t0 + Duration::from_secs(3600), &mut due);
        let mut keys: Vec<u32> = due.iter().map(|e| e.key).collect();
        keys.sort();
        assert_eq!(keys, vec![0, 2, 4, 6, 8]);
    }

    /// The tick arithmetic gives what exact division of the microseconds gives, on and around
    /// tick and second boundaries.
    #[test]
    fn ticks_match_exact_division_around_boundaries() {
        let t0 = Instant::now();
        let w = Wheel::new(t0);
        let tick = TICK_MS as u128 * 1000;
        for secs in [0u64, 1, 59, 3_600, 86_400 * 400] {
            for micros in [
                0u32, 1, 99_999, 100_000, 100_001, 450_000, 899_999, 900_000, 999_999,
            ] {
                let at = Duration::new(secs, micros * 1000);
                let now = t0 + at;
                assert_eq!(
                    u128::from(w.now_tick(now)),
                    at.as_micros() / tick,
                    "now_tick at {at:?}"
                );
                for after in [
                    Duration::ZERO,
                    Duration::from_micros(1),
                    Duration::from_millis(100),
                ] {
                    let due = (at + after).as_micros().div_ceil(tick);
                    let want = due.max(at.as_micros() / tick + 1);
                    assert_eq!(
                        u128::from(w.deadline(now, after)),
                        want,
                        "deadline at {at:?} after {after:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn sleep_points_at_next_tick() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        assert_eq!(w.sleep(t0), None);
        w.insert(Entry {
            key: 0,
            epoch: 0,
            at: 5,
        });
        assert_eq!(w.sleep(t0), Some(Duration::from_millis(100)));
    }
}
