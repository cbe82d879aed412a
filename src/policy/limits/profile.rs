//! Message-limit profiles: the message limits a WebSocket resolved at its handshake, kept once
//! for every open connection that resolved the same ones (the same API, upgrade policy and
//! consumer give the same counters), so that a connection holds a 4-byte reference instead of
//! its own copy. The counters own the table: a reload rewrites each profile once, and a profile
//! goes when its last connection gives its reference back.

use super::{Counters, Slot};
use crate::model::LimitIdx;
use std::collections::HashMap;

/// One rate limit counted on every data message of one direction, resolved at the handshake so
/// that a message costs one counter update and no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageLimit {
    pub slot: Slot,
    pub weight: u32,
    /// Client to backend (`request-assembly`) or backend to client (`response-assembly`).
    pub upstream: bool,
    pub is_client: bool,
}

/// A connection's reference to its profile. Neither `Copy` nor `Clone`: giving it back
/// ([`Counters::release_profile`]) consumes it, so it is given back at most once.
#[derive(Debug, PartialEq, Eq)]
pub struct Profile(u32);

struct Entry {
    limits: Box<[MessageLimit]>,
    /// Connections holding it; 0: the entry is free.
    refs: u32,
}

/// The table of profiles, bounded like the connections that hold them.
#[derive(Default)]
pub(super) struct Profiles {
    entries: Vec<Entry>,
    free: Vec<u32>,
    by_limits: HashMap<Box<[MessageLimit]>, u32>,
    max: usize,
}

impl Profiles {
    pub(super) fn new(max: usize) -> Profiles {
        Profiles {
            max,
            ..Profiles::default()
        }
    }

    /// The limits of every profile in use.
    pub(super) fn limits(&self) -> impl Iterator<Item = LimitIdx> + '_ {
        self.entries
            .iter()
            .filter(|e| e.refs > 0)
            .flat_map(|e| e.limits.iter().map(|m| m.slot.limit()))
    }

    pub(super) fn in_use(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}

impl Counters {
    /// A reference to the profile of `limits`, shared with every connection that holds the
    /// same; `None` when the table is full (the caller refuses the upgrade, as for a full key
    /// table). The retired definitions it names are pinned while it lives.
    pub fn intern_profile(&mut self, limits: &[MessageLimit]) -> Option<Profile> {
        if let Some(&i) = self.profiles.by_limits.get(limits) {
            let e = &mut self.profiles.entries[i as usize];
            e.refs += 1;
            return Some(Profile(i));
        }
        let i = match self.profiles.free.pop() {
            Some(i) => i,
            None if self.profiles.entries.len() < self.profiles.max => {
                self.profiles.entries.push(Entry {
                    limits: Box::new([]),
                    refs: 0,
                });
                (self.profiles.entries.len() - 1) as u32
            }
            None => {
                self.keys_full += 1;
                return None;
            }
        };
        self.profiles.entries[i as usize] = Entry {
            limits: limits.into(),
            refs: 1,
        };
        self.profiles.by_limits.insert(limits.into(), i);
        for m in limits {
            self.pin(m.slot.limit());
        }
        Some(Profile(i))
    }

    /// The message limits of a profile.
    pub fn profile_limits(&self, p: &Profile) -> &[MessageLimit] {
        self.profiles
            .entries
            .get(p.0 as usize)
            .map_or(&[], |e| &e.limits[..])
    }

    /// Gives back a connection's reference; the last one frees the profile and unpins what it
    /// named.
    pub fn release_profile(&mut self, p: Profile) {
        let Some(e) = self.profiles.entries.get_mut(p.0 as usize) else {
            return;
        };
        if e.refs == 0 {
            return;
        }
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let limits = std::mem::take(&mut e.limits);
        if self.profiles.by_limits.get(&limits) == Some(&p.0) {
            self.profiles.by_limits.remove(&limits);
        }
        self.profiles.free.push(p.0);
        for m in limits.iter() {
            self.unpin(m.slot.limit());
        }
    }

    /// Profiles held by open connections.
    pub fn profiles_in_use(&self) -> usize {
        self.profiles.in_use()
    }

    /// After a reload: the profiles of the old counters, their slots pointed at the new layout
    /// (which retired every limit they name) and those definitions pinned once per profile.
    pub(super) fn take_profiles(&mut self, old: Profiles, carry: &mut super::Reload) {
        let mut p = old;
        p.max = self.profiles.max;
        p.by_limits.clear();
        for (i, e) in p.entries.iter_mut().enumerate() {
            if e.refs == 0 {
                continue;
            }
            for m in e.limits.iter_mut() {
                m.slot = carry.slot(self, m.slot);
                self.pin(m.slot.limit());
            }
            p.by_limits.entry(e.limits.clone()).or_insert(i as u32);
        }
        self.profiles = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::policy::limits::{Consumer, Lookup};

    const NOW: u64 = 1_704_326_400;

    fn rate(name: &str, max: u64) -> LimitDef {
        LimitDef {
            name: name.into(),
            kind: LimitKind::Rate,
            level: LimitLevel::GatewayNamed,
            plan: None,
            value: LimitValue::Rate {
                max,
                period_secs: 60,
            },
            value_text: String::new(),
            hard: true,
            cache_only: true,
            is_client: true,
            use_api_name: false,
            use_app_id: false,
            use_client_id: false,
            dynamic_value: None,
            weight: "1".into(),
            auto_decrement: true,
            origin: "test".into(),
        }
    }

    /// Two keyless limits (one per direction) and room for `connections` connections.
    fn model(limits: Vec<LimitDef>, connections: usize) -> Model {
        let bounds = Bounds {
            max_connections: connections,
            ..Bounds::default()
        };
        Model {
            settings: Settings {
                source: Default::default(),
                listeners: Vec::new(),
                admin: None,
                admin_token: None,
                echo: None,
                bounds,
                activity_log: Default::default(),
                trusted_proxies: Vec::new(),
            },
            apis: Vec::new(),
            products: Vec::new(),
            plans: Vec::new(),
            limits,
            applications: Vec::new(),
            tls_profiles: Vec::new(),
        }
    }

    /// The message limits of a keyless caller from `10.0.0.last`.
    fn limits_of(c: &mut Counters, last: u8) -> Vec<MessageLimit> {
        let who = Consumer {
            app: None,
            remote_ip: std::net::Ipv4Addr::new(10, 0, 0, last).into(),
            api: 0,
            dynamic: None,
        };
        [(0, true), (1, false)]
            .iter()
            .map(|&(limit, upstream)| match c.slot(limit, &who, NOW) {
                Lookup::Counter(slot) => MessageLimit {
                    slot,
                    weight: 1,
                    upstream,
                    is_client: true,
                },
                other => panic!("no counter: {other:?}"),
            })
            .collect()
    }

    fn intern(c: &mut Counters, last: u8) -> Option<Profile> {
        let l = limits_of(c, last);
        c.intern_profile(&l)
    }

    #[test]
    fn the_same_limits_share_one_profile_until_the_last_gives_it_back() {
        let mut c = Counters::new(&model(vec![rate("up", 5), rate("down", 5)], 8), 16);
        let a = limits_of(&mut c, 1);
        let p1 = c.intern_profile(&a).unwrap();
        let p2 = c.intern_profile(&a).unwrap();
        assert_eq!(p1, p2, "one entry for both connections");
        assert_eq!(c.profile_limits(&p1), &a[..]);
        let other = intern(&mut c, 2).unwrap();
        assert_ne!(other, p1);
        assert_eq!(c.profiles_in_use(), 2);
        c.release_profile(p1);
        assert_eq!(c.profile_limits(&p2), &a[..], "still held by the second");
        c.release_profile(p2);
        assert_eq!(c.profiles_in_use(), 1);
        // A reference to a freed entry finds nothing and gives back nothing.
        let stale = Profile(0);
        assert!(c.profile_limits(&stale).is_empty());
        c.release_profile(stale);
        assert_eq!(c.profiles_in_use(), 1);
        // The freed entry is used again, for the same limits or others.
        let again = c.intern_profile(&a).unwrap();
        assert_eq!(c.profile_limits(&again), &a[..]);
        assert_eq!(c.profiles_in_use(), 2);
    }

    #[test]
    fn a_full_table_refuses_like_the_key_table() {
        let mut c = Counters::new(&model(vec![rate("up", 5), rate("down", 5)], 2), 16);
        let p1 = intern(&mut c, 1).unwrap();
        let _p2 = intern(&mut c, 2).unwrap();
        let full = c.keys_full();
        assert_eq!(intern(&mut c, 3), None);
        assert_eq!(
            c.keys_full(),
            full + 1,
            "counted with the keys that found no room"
        );
        // Existing profiles are still shared when full.
        assert!(intern(&mut c, 1).is_some());
        c.release_profile(p1);
        assert!(intern(&mut c, 1).is_some());
        c.release_profile(Profile(0));
        c.release_profile(Profile(0));
        assert!(intern(&mut c, 3).is_some(), "room again");
    }

    #[test]
    fn a_reload_carries_profiles_and_keeps_removed_limits_while_they_are_held() {
        let mut c = Counters::new(&model(vec![rate("up", 5), rate("down", 5)], 8), 16);
        let a = limits_of(&mut c, 1);
        let p = c.intern_profile(&a).unwrap();
        for _ in 0..3 {
            assert!(c.consume(c.profile_limits(&p)[0].slot, 1, NOW).allowed);
        }
        // The new config drops "down" and lowers "up"; the connection keeps its own maximum
        // and its counts.
        let m = model(vec![rate("up", 4)], 8);
        drop(c.reload(&m, NOW, std::iter::empty()));
        let moved: Vec<MessageLimit> = c.profile_limits(&p).to_vec();
        assert_eq!(moved.len(), 2);
        assert!(moved.iter().all(|l| c.is_retired(l.slot.limit())));
        let v = c.consume(moved[0].slot, 1, NOW);
        assert!(v.allowed);
        assert_eq!((v.limit, v.remaining), (5, 1), "4 of its own 5");
        assert!(
            c.consume(moved[1].slot, 1, NOW).allowed,
            "the removed limit still counts"
        );
        // A new connection gets a new profile on the new layout.
        let fresh = limits_of_current(&mut c);
        let q = c.intern_profile(&fresh).unwrap();
        assert_ne!(q, p);
        // The last holder goes: the removed limit's counters go with it.
        let before = c.snapshot(NOW).len();
        c.release_profile(p);
        assert!(
            c.snapshot(NOW).len() < before,
            "the removed limit was dropped"
        );
        assert_eq!(c.profiles_in_use(), 1);
    }

    fn limits_of_current(c: &mut Counters) -> Vec<MessageLimit> {
        let who = Consumer {
            app: None,
            remote_ip: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            api: 0,
            dynamic: None,
        };
        match c.slot(0, &who, NOW) {
            Lookup::Counter(slot) => vec![MessageLimit {
                slot,
                weight: 1,
                upstream: true,
                is_client: true,
            }],
            other => panic!("no counter: {other:?}"),
        }
    }
}
