//! The bounded table for keys only known at run time: remote addresses of keyless calls,
//! expanded `dynamic-value`s, and applications outside a plan limit's own plan.
//!
//! Open addressing over a fixed array. A key is (limit, h1, h2), two 64-bit SipHash values under
//! two independent random keys, so a false match needs a 128-bit collision; the key text itself
//! is not kept (only a bounded description for the admin listing). A key lives in one of two
//! windows of [`PROBE`] entries, both placed by h1; lookups scan both whole (so freed entries need
//! no tombstones), and an insert goes to the window with more room ("two choices": random keys
//! then fill about 85–95% of the table before one finds both windows taken, against about 67%
//! with a single window). An insert takes an empty entry or evicts one that holds no information
//! any more: a rate window that ended, a value of 0. An entry that still counts something is
//! never evicted: then the table reports full. Entries never move, so a slot stays valid.
//!
//! Share rule. The keys of one limit can come from anyone (a header in `dynamic-value`, a range
//! of addresses), so no limit may take the whole table from the others: half of the table is
//! reserved, split evenly among the limits whose keys can land here, and the other half is
//! shared, first come. A limit that holds its reserve and finds the shared half taken is full,
//! while every other limit still has its own reserve. Its expired entries elsewhere in the table
//! are then swept back (a bounded scan on a refused insert, at most once a second).
//!
//! Callers without a client id are keyed by address: an IPv4 address, or the /64 prefix of an
//! IPv6 one (one subscriber line or host usually owns a whole /64, and keying by the whole
//! address would let it take the table by changing the low bits).

use super::{Cell, Consumer, Counters, Index, Layout, Lookup, Slot, window_of, window_tag};
use crate::model::LimitIdx;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv6Addr};

/// Entries per probe window; a lookup scans two.
const PROBE: usize = 64;
/// Entries one sweep looks at, when a limit over its share wants its expired entries back.
const SWEEP: usize = 1024;
/// Bytes of a dynamic value kept for the admin listing.
pub(super) const DYN_SHOWN: usize = 28;

/// One table entry (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) h1: u64,
    pub(super) h2: u64,
    /// `u32::MAX` when empty.
    pub(super) limit: LimitIdx,
    flags: u32,
}

/// The entry was re-created from a slot, which carries h1 only: h2 and the description are
/// filled in by the next `slot` for that key.
const H2_UNKNOWN: u32 = 1;

impl Entry {
    pub(super) const EMPTY: Entry = Entry {
        h1: 0,
        h2: 0,
        limit: u32::MAX,
        flags: 0,
    };
    fn is_empty(&self) -> bool {
        self.limit == u32::MAX
    }
}

/// Who a run-time key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Who {
    /// A limit that is not `is-client`.
    #[default]
    Nobody,
    App(u32),
    Ip(IpAddr),
    /// Re-created from a slot: the key is known by its hash only.
    Unknown,
}

/// A bounded description of a table key, for `snapshot` and `reset` (56 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Desc {
    pub(super) who: Who,
    /// API name id (with bit 31 set: an API index without a name id); `u32::MAX`: none.
    pub(super) api: u32,
    /// Whether the key has a dynamic value, and the first bytes of it (cut at a char boundary).
    pub(super) has_dyn: bool,
    pub(super) dyn_cut: bool,
    pub(super) dyn_len: u8,
    pub(super) dyn_bytes: [u8; DYN_SHOWN],
}

impl Desc {
    pub(super) fn dynamic(&self) -> Option<&str> {
        if !self.has_dyn {
            return None;
        }
        let b = self
            .dyn_bytes
            .get(..usize::from(self.dyn_len))
            .unwrap_or(&[]);
        Some(std::str::from_utf8(b).unwrap_or(""))
    }
}

/// The parts of a run-time key.
struct Key<'a> {
    who: Who,
    api: u32,
    dynamic: Option<&'a str>,
}

impl Key<'_> {
    /// Built from names, not indices, so that the key hashes the same after a reload that
    /// renumbers limits, applications or APIs (the hash keys carry over).
    fn hash(&self, state: &std::collections::hash_map::RandomState, ident: u64, ix: &Index) -> u64 {
        let mut h = state.build_hasher();
        h.write_u64(ident);
        match self.who {
            Who::Nobody | Who::Unknown => h.write_u8(0),
            Who::App(a) => {
                h.write_u8(1);
                h.write_u64(ix.app_hash.get(a as usize).copied().unwrap_or(u64::from(a)));
            }
            Who::Ip(IpAddr::V4(ip)) => {
                h.write_u8(2);
                h.write(&ip.octets());
            }
            Who::Ip(IpAddr::V6(ip)) => {
                h.write_u8(3);
                h.write(&ip.octets());
            }
        }
        match ix.api_hash.get(self.api as usize) {
            Some(&name) => h.write_u64(name),
            None => h.write_u32(self.api),
        }
        match self.dynamic {
            None => h.write_u8(0),
            Some(s) => {
                h.write_u8(1);
                h.write_usize(s.len());
                h.write(s.as_bytes());
            }
        }
        h.finish()
    }

    fn desc(&self) -> Desc {
        let mut d = Desc {
            who: self.who,
            api: self.api,
            ..Desc::default()
        };
        if let Some(s) = self.dynamic {
            let mut n = s.len().min(DYN_SHOWN);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            d.has_dyn = true;
            d.dyn_cut = n < s.len();
            d.dyn_len = n as u8;
            d.dyn_bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        }
        d
    }
}

pub(super) enum Probe {
    Found(usize),
    Inserted(usize),
    Absent,
    Full,
}

impl Counters {
    /// `slot` for a key that has no dense cell.
    pub(super) fn table_slot(&mut self, limit: LimitIdx, who: &Consumer, now: u64) -> Lookup {
        let Some(l) = self.layouts.get(limit as usize) else {
            return Lookup::Unlimited;
        };
        let key = Key {
            who: if !l.is_client {
                Who::Nobody
            } else if let Some(a) = who.app {
                Who::App(a)
            } else {
                Who::Ip(client_prefix(who.remote_ip))
            },
            api: if !l.use_api {
                u32::MAX
            } else {
                match self.index.api_name_id.get(usize::from(who.api)) {
                    Some(&id) => id,
                    None => (1 << 31) | u32::from(who.api),
                }
            },
            dynamic: if l.dyn_sparse {
                Some(who.dynamic.unwrap_or(""))
            } else {
                None
            },
        };
        let h1 = key.hash(&self.hash1, l.ident, &self.index);
        let h2 = key.hash(&self.hash2, l.ident, &self.index);
        match self.probe(limit, h1, Some(h2), now, Some(key.desc())) {
            Probe::Found(e) | Probe::Inserted(e) => Lookup::Counter(Slot {
                cell: self.dense_len + e as u32,
                limit,
                h1,
            }),
            Probe::Absent | Probe::Full => Lookup::Full,
        }
    }

    /// The cell of a table slot whose entry no longer holds its key.
    pub(super) fn table_refind(&mut self, slot: Slot, now: u64, insert: bool) -> Option<usize> {
        let desc = insert.then_some(Desc {
            who: Who::Unknown,
            ..Desc::default()
        });
        match self.probe(slot.limit, slot.h1, None, now, desc) {
            Probe::Found(e) | Probe::Inserted(e) => Some(self.dense_len as usize + e),
            Probe::Absent | Probe::Full => None,
        }
    }

    /// Finds the key (limit, h1, h2) in its two probe windows; else, when `insert` carries its
    /// description, puts it in the window with more room: in its first empty entry, else in its
    /// first evictable one, as far as the limit's share allows.
    /// `h2 = None` (a slot being re-resolved) matches on (limit, h1) alone.
    pub(super) fn probe(
        &mut self,
        limit: LimitIdx,
        h1: u64,
        h2: Option<u64>,
        now: u64,
        insert: Option<Desc>,
    ) -> Probe {
        match self.probe_once(limit, h1, h2, now, insert) {
            Probe::Full if !self.may_take(limit) => {
                // Over its share: what expired of it (or of the shared half) elsewhere in the
                // table comes back first.
                self.sweep(now);
                if self.may_take(limit) {
                    self.probe_once(limit, h1, h2, now, insert)
                } else {
                    Probe::Full
                }
            }
            p => p,
        }
    }

    fn probe_once(
        &mut self,
        limit: LimitIdx,
        h1: u64,
        h2: Option<u64>,
        now: u64,
        insert: Option<Desc>,
    ) -> Probe {
        let cap = self.entries.len();
        if cap == 0 {
            return if insert.is_some() {
                Probe::Full
            } else {
                Probe::Absent
            };
        }
        // Multiply-shift maps 64 random bits onto 0..cap without a division; the rotation gives
        // the second window other bits of the same hash, since a slot carries h1 alone.
        let homes =
            [h1, h1.rotate_left(32)].map(|h| ((u128::from(h) * cap as u128) >> 64) as usize);
        let width = PROBE.min(cap);
        // Over its share, a limit can only take an entry whose eviction gives a share back:
        // one of its own, or one beyond another limit's reserve.
        let over_share = insert.is_some() && !self.may_take(limit);
        let mut free = None;
        let mut most_room = 0;
        for home in homes {
            let (mut empty, mut first) = (None, None);
            let mut room = 0;
            for step in 0..width {
                let mut e = home + step;
                if e >= cap {
                    e -= cap;
                }
                let entry = self.entries[e];
                if entry.limit == limit && entry.h1 == h1 {
                    let unknown = entry.flags & H2_UNKNOWN != 0;
                    match h2 {
                        None => return Probe::Found(e),
                        Some(h2) if entry.h2 == h2 => return Probe::Found(e),
                        Some(h2) if unknown => {
                            // Complete an entry re-created from a slot of this key.
                            self.entries[e] = Entry {
                                h1,
                                h2,
                                limit,
                                flags: 0,
                            };
                            if let Some(d) = insert {
                                self.descs[e] = d;
                            }
                            return Probe::Found(e);
                        }
                        Some(_) => {}
                    }
                }
                if insert.is_some() {
                    // Prefer an empty entry: a key resolved but not yet counted is evictable
                    // too, and taking it would only make its owner re-create it.
                    if entry.is_empty() {
                        if !over_share {
                            room += 1;
                            empty.get_or_insert(e);
                        }
                    } else if (!over_share
                        || entry.limit == limit
                        || self.beyond_reserve(entry.limit))
                        && self.evictable(e, now)
                    {
                        room += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            if room > most_room {
                most_room = room;
                free = empty.or(first);
            }
        }
        let Some(desc) = insert else {
            return Probe::Absent;
        };
        let Some(e) = free else {
            return Probe::Full;
        };
        // An evicted entry gives its owner's share back before this key takes one.
        self.table_free(e);
        self.take_share(limit);
        self.entries[e] = Entry {
            h1,
            h2: h2.unwrap_or(0),
            limit,
            flags: if h2.is_none() { H2_UNKNOWN } else { 0 },
        };
        self.descs[e] = desc;
        if let Some(c) = self.cells.get_mut(self.dense_len as usize + e) {
            *c = Cell::default();
        }
        Probe::Inserted(e)
    }

    /// An entry that can be reused without losing a count: empty, a rate window that ended, or
    /// a value of 0.
    fn evictable(&self, e: usize, now: u64) -> bool {
        let entry = self.entries[e];
        if entry.is_empty() {
            return true;
        }
        let Some(c) = self.cells.get(self.dense_len as usize + e) else {
            return false;
        };
        match self.layouts.get(entry.limit as usize) {
            Some(l) => !live(l, c, now),
            None => true,
        }
    }

    /// Whether `limit` may hold one more entry: below its reserve, or room in the shared half.
    fn may_take(&self, limit: LimitIdx) -> bool {
        let below_reserve = self
            .layouts
            .get(limit as usize)
            .is_some_and(|l| l.keys < l.reserve);
        below_reserve || self.shared_used < self.shared
    }

    /// Whether freeing an entry of `limit` gives a shared entry back.
    fn beyond_reserve(&self, limit: LimitIdx) -> bool {
        self.layouts
            .get(limit as usize)
            .is_some_and(|l| l.keys > l.reserve)
    }

    fn take_share(&mut self, limit: LimitIdx) {
        if let Some(l) = self.layouts.get_mut(limit as usize) {
            if l.keys >= l.reserve {
                self.shared_used += 1;
            }
            l.keys += 1;
        } else {
            self.shared_used += 1;
        }
    }

    fn give_share(&mut self, limit: LimitIdx) {
        let from_shared = match self.layouts.get_mut(limit as usize) {
            Some(l) => {
                l.keys = l.keys.saturating_sub(1);
                l.keys >= l.reserve
            }
            None => true,
        };
        if from_shared {
            self.shared_used = self.shared_used.saturating_sub(1);
        }
    }

    /// Frees the expired and zero entries among the next [`SWEEP`] of the table, at most once
    /// per second of `now`: a refused insert (also a message re-finding its evicted entry)
    /// otherwise costs a probe alone.
    fn sweep(&mut self, now: u64) {
        if self.last_sweep == Some(now) {
            return;
        }
        self.last_sweep = Some(now);
        let cap = self.entries.len();
        for _ in 0..SWEEP.min(cap) {
            let e = self.sweep_at;
            self.sweep_at = if e + 1 >= cap { 0 } else { e + 1 };
            if !self.entries[e].is_empty() && self.evictable(e, now) {
                self.table_free(e);
            }
        }
    }

    /// Empties a table entry (eviction, sweep, admin reset).
    pub(super) fn table_free(&mut self, e: usize) {
        if let Some(entry) = self.entries.get_mut(e) {
            let was = *entry;
            *entry = Entry::EMPTY;
            if !was.is_empty() {
                self.give_share(was.limit);
            }
        }
        if let Some(d) = self.descs.get_mut(e) {
            *d = Desc::default();
        }
        if let Some(c) = self.cells.get_mut(self.dense_len as usize + e) {
            *c = Cell::default();
        }
    }
}

/// Splits the table: every limit whose keys can land in it gets an even part of one half as its
/// reserve; the rest is shared. Returns the shared size.
pub(super) fn share_out(layouts: &mut [Layout], capacity: usize) -> u32 {
    let cap = u32::try_from(capacity).unwrap_or(u32::MAX);
    let users = layouts.iter().filter(|l| l.uses_table()).count() as u32;
    if users == 0 {
        return cap;
    }
    let reserve = cap / 2 / users;
    for l in layouts.iter_mut().filter(|l| l.uses_table()) {
        l.reserve = reserve;
    }
    cap - reserve * users
}

/// The part of a keyless caller's address that names it: an IPv4 address (also when it comes
/// IPv4-mapped), or the /64 of an IPv6 address.
pub(super) fn client_prefix(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

/// Whether a cell still counts something at `now`.
pub(super) fn live(l: &Layout, c: &Cell, now: u64) -> bool {
    c.value() > 0 && (!l.windowed() || c.window() == window_tag(window_of(now, l.period)))
}
