//! How many connections each client network has open that have not finished their first request
//! head yet (the TLS handshake included), so that one address cannot take every connection slot
//! with sockets that never say anything.
//!
//! The table holds one entry per network with at least one such connection, never one per
//! connection, and an entry goes as soon as its count is back to zero. The table doubles when
//! it is half full and halves when it is an eighth full, so its size follows the networks
//! pending now (at most the connection cap), not the most ever pending at once, however many
//! distinct addresses come and go. A connection needs no state of its own to be counted: its
//! peer address names the entry. The total over all networks is kept as it changes, so that
//! reading it costs no scan.
//! Networks are IPv4 addresses and IPv6 /64 prefixes (one host or one LAN usually has a whole
//! /64); IPv4-mapped IPv6 addresses count as the IPv4 address.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// The table's smallest size, in entries.
const MIN_SLOTS: usize = 64;

/// One network's entry: a keyed hash of the network (`tag`, never 0) and its count (0: empty).
#[derive(Clone, Copy, Default)]
struct Entry {
    tag: u64,
    count: u32,
}

/// Open addressing with linear probing, kept at most half full; deletion shifts the entries that
/// follow back, so lookups never meet tombstones.
pub struct PendingByNetwork {
    entries: Vec<Entry>,
    /// Entries in use (networks), and the sum of their counts (connections).
    used: usize,
    total: usize,
    /// Keyed with random keys per process: a client cannot choose addresses that collide.
    hasher: RandomState,
}

/// The network an address is counted in, as 128 bits.
fn network(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a) & !u128::from(u64::MAX),
    }
}

impl PendingByNetwork {
    pub fn new() -> PendingByNetwork {
        PendingByNetwork {
            entries: vec![Entry::default(); MIN_SLOTS],
            used: 0,
            total: 0,
            hasher: RandomState::new(),
        }
    }

    fn tag(&self, ip: IpAddr) -> u64 {
        self.hasher.hash_one(network(ip)).max(1)
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The index of `tag`'s entry, or of the empty entry where it would go.
    fn find(&self, tag: u64) -> usize {
        let mut i = tag as usize & self.mask();
        loop {
            let e = self.entries[i];
            if e.count == 0 || e.tag == tag {
                return i;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Counts one more pending connection from `ip`'s network, unless `limit` are pending there
    /// already: then `false`, and nothing changes.
    pub fn admit(&mut self, ip: IpAddr, limit: usize) -> bool {
        let tag = self.tag(ip);
        let i = self.find(tag);
        if self.entries[i].count as usize >= limit {
            return false;
        }
        if self.entries[i].count == 0 {
            if 2 * (self.used + 1) > self.entries.len() {
                self.resize(2 * self.entries.len());
                return self.admit(ip, limit);
            }
            self.entries[i].tag = tag;
            self.used += 1;
        }
        self.entries[i].count += 1;
        self.total += 1;
        true
    }

    /// One pending connection from `ip`'s network has finished its head or ended.
    pub fn release(&mut self, ip: IpAddr) {
        let tag = self.tag(ip);
        let mut i = self.find(tag);
        let e = &mut self.entries[i];
        if e.count == 0 {
            debug_assert!(false, "released a network that holds no pending connection");
            return;
        }
        e.count -= 1;
        self.total -= 1;
        if e.count > 0 {
            return;
        }
        self.used -= 1;
        // Backward shift: move up each later entry of the run whose home is not between the
        // hole and itself, so every entry stays reachable from its home without gaps.
        let mut j = i;
        loop {
            j = (j + 1) & self.mask();
            let e = self.entries[j];
            if e.count == 0 {
                break;
            }
            let home = e.tag as usize & self.mask();
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.entries[i] = e;
                self.entries[j] = Entry::default();
                i = j;
            }
        }
        self.entries[i] = Entry::default();
        // Halving at an eighth full leaves it a quarter full: far from both thresholds, so a
        // count going up and down around one of them does not rebuild the table each time.
        if self.entries.len() > MIN_SLOTS && 8 * self.used <= self.entries.len() {
            self.resize(self.entries.len() / 2);
        }
    }

    fn resize(&mut self, slots: usize) {
        let fresh = vec![Entry::default(); slots];
        let old = std::mem::replace(&mut self.entries, fresh);
        for e in old.into_iter().filter(|e| e.count > 0) {
            let i = self.find(e.tag);
            self.entries[i] = e;
        }
    }

    /// Pending connections of `ip`'s network.
    #[cfg(test)]
    pub fn of(&self, ip: IpAddr) -> usize {
        self.entries[self.find(self.tag(ip))].count as usize
    }

    /// Networks with a pending connection.
    pub fn networks(&self) -> usize {
        self.used
    }

    /// Pending connections, all networks together.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Slots of the table (its memory is 16 bytes each).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn counts_per_network_up_to_the_limit() {
        let mut p = PendingByNetwork::new();
        let a = v4(1);
        for _ in 0..3 {
            assert!(p.admit(a, 3));
        }
        assert!(!p.admit(a, 3), "a fourth is over the limit");
        assert_eq!(p.of(a), 3);
        assert!(p.admit(v4(2), 3), "another address is not affected");
        p.release(a);
        assert!(p.admit(a, 3), "a released place can be taken again");
        for _ in 0..3 {
            p.release(a);
        }
        p.release(v4(2));
        assert_eq!((p.of(a), p.networks(), p.total()), (0, 0, 0));
    }

    /// A burst of many networks grows the table; once they are gone it is back to its smallest
    /// size, and the running total always equals the sum of the counts.
    #[test]
    fn the_table_shrinks_back_after_a_burst_and_the_total_follows() {
        let mut p = PendingByNetwork::new();
        for a in 0..10_000 {
            assert!(p.admit(v4(a), 4));
            assert!(p.admit(v4(a), 4));
        }
        assert_eq!((p.networks(), p.total()), (10_000, 20_000));
        assert!(p.capacity() >= 20_000);
        for a in 0..10_000 {
            p.release(v4(a));
        }
        assert_eq!((p.networks(), p.total()), (10_000, 10_000));
        for a in 0..9_990 {
            p.release(v4(a));
        }
        assert_eq!((p.networks(), p.total()), (10, 10));
        assert_eq!(p.capacity(), MIN_SLOTS, "the table kept its burst size");
        for a in 9_990..10_000 {
            assert_eq!(p.of(v4(a)), 1, "an entry lost in a shrink");
            p.release(v4(a));
        }
        assert_eq!((p.networks(), p.total(), p.capacity()), (0, 0, MIN_SLOTS));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut p = PendingByNetwork::new();
        let host = |low: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, low));
        assert!(p.admit(host(1), 2));
        assert!(p.admit(host(2), 2));
        assert!(!p.admit(host(3), 2), "the same /64");
        let next = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(p.admit(next, 2), "the next /64 is another network");
        let ip = Ipv4Addr::new(192, 0, 2, 7);
        assert!(p.admit(IpAddr::V4(ip), 2));
        assert!(p.admit(IpAddr::V6(ip.to_ipv6_mapped()), 2));
        assert!(
            !p.admit(IpAddr::V4(ip), 2),
            "mapped and plain are one client"
        );
        assert!(
            p.admit(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)), 2),
            "IPv4 counts per address"
        );
        assert_eq!(p.networks(), 4);
    }

    /// Many distinct networks coming and going in any order: every count stays exact, the table
    /// never holds an entry for a network with nothing pending, and its size follows the
    /// networks pending at once, not the networks ever seen.
    #[test]
    fn churn_of_many_networks_keeps_exact_counts_and_a_bounded_table() {
        let mut p = PendingByNetwork::new();
        let mut expect = std::collections::HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<u32> = Vec::new();
        for round in 0..200_000u32 {
            // Up to ~2,000 connections pending at once, over addresses drawn from a million.
            if live.len() < 2_000 && (next() % 2 == 0 || live.is_empty()) {
                let a = (next() % 1_000_000) as u32;
                let n: &mut usize = expect.entry(a).or_default();
                let admitted = p.admit(v4(a), 4);
                assert_eq!(admitted, *n < 4, "round {round}");
                if admitted {
                    *n += 1;
                    live.push(a);
                }
            } else {
                let at = (next() as usize) % live.len();
                let a = live.swap_remove(at);
                p.release(v4(a));
                *expect.get_mut(&a).unwrap() -= 1;
            }
            if round % 10_000 == 0 {
                expect.retain(|_, n| *n > 0);
                assert_eq!(p.networks(), expect.len());
                assert_eq!(p.total(), live.len());
                for (&a, &n) in &expect {
                    assert_eq!(p.of(v4(a)), n);
                }
            }
        }
        assert!(p.capacity() <= 8_192, "table of {} slots", p.capacity());
        for a in live {
            p.release(v4(a));
        }
        assert_eq!(p.networks(), 0);
        assert!(p.entries.iter().all(|e| e.count == 0));
    }
}
