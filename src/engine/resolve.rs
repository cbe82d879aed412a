//! Backend names without stalling the loop. Names in static `target-url`s are resolved once at
//! load. A name first seen at run time is handed to a resolver thread (off the data path), and
//! the connection waits in `Resolving` until the answer wakes the loop.
//!
//! The answers live in a [`NameCache`] of bounded size: a name in use is looked up again in the
//! background once its addresses are a minute old, so a backend that moves is followed without
//! a reload; addresses that could not be confirmed for [`STALE`] are not used any more; when
//! the cache is full, the name used longest ago makes room. A `target-url` built from request
//! data therefore cannot grow it without bound.
//!
//! A name may have several addresses (often an IPv6 one that does not answer, then an IPv4
//! one): [`Attempts`] hands them out in turn, each with its share of the policy's timeout.

use crate::http::url::TargetUrl;
use crate::model::{Model, PolicyKind};
use mio::{Registry, Token, Waker};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// Addresses older than this are looked up again, in the background, when next used.
pub const REFRESH: Duration = Duration::from_secs(60);
/// Addresses that no lookup has confirmed for this long are dropped: a backend whose name has
/// gone is not called on an address that may belong to someone else by now. Long enough to
/// ride out a resolver outage of a few minutes.
pub const STALE: Duration = Duration::from_secs(300);
/// Names kept at most. Each costs its addresses and a map entry (about 100 bytes).
pub const CAPACITY: usize = 1024;

pub type Name = (String, u16);
type Answer = (Name, Result<Vec<SocketAddr>, String>);

/// How a name becomes addresses: the system's resolver, or a fake in tests.
pub type Lookup = fn(&str, u16) -> Result<Vec<SocketAddr>, String>;

pub struct Resolver {
    cache: NameCache,
    ask: Sender<Name>,
    answers: Receiver<Answer>,
    /// Connections waiting for a name: (slab key, generation, name).
    waiting: Vec<(usize, u32, Name)>,
}

impl Resolver {
    pub fn new(registry: &Registry, token: Token, model: &Model) -> std::io::Result<Resolver> {
        let names = static_names(model);
        Resolver::start(registry, token, &names, system_lookup, Instant::now())
    }

    /// A resolver that looks names up with `lookup`, `names` resolved already.
    pub fn start(
        registry: &Registry,
        token: Token,
        names: &[Name],
        lookup: Lookup,
        now: Instant,
    ) -> std::io::Result<Resolver> {
        let mut cache = NameCache::new(CAPACITY);
        for (host, port) in names {
            match lookup(host, *port) {
                Ok(a) => cache.answer((host.clone(), *port), Ok(a), now),
                Err(e) => log::warn!("backend {host} does not resolve yet: {e}"),
            }
        }
        let waker = Arc::new(Waker::new(registry, token)?);
        let (ask, asked) = mpsc::channel::<Name>();
        let (tell, answers) = mpsc::channel::<Answer>();
        std::thread::Builder::new()
            .name("wsgate-resolver".into())
            .spawn(move || resolver_thread(asked, tell, waker, lookup))?;
        Ok(Resolver {
            cache,
            ask,
            answers,
            waiting: Vec::new(),
        })
    }

    /// The addresses of `host:port` when known now; otherwise the connection is queued and
    /// `None` returned.
    pub fn lookup(
        &mut self,
        host: &str,
        port: u16,
        key: usize,
        epoch: u32,
        now: Instant,
    ) -> Option<Vec<SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(vec![SocketAddr::new(ip, port)]);
        }
        let name = (host.to_string(), port);
        match self.cache.get(&name, now) {
            Cached::Fresh(a) => return Some(a),
            Cached::Refresh(a) => {
                let _ = self.ask.send(name);
                return Some(a);
            }
            Cached::Miss => {}
        }
        let first = !self.waiting.iter().any(|w| w.2 == name);
        self.waiting.push((key, epoch, name.clone()));
        if first {
            let _ = self.ask.send(name);
        }
        None
    }

    /// Answers that arrived, for the connections that waited for them.
    pub fn drain(&mut self, now: Instant) -> Vec<(usize, u32, Result<Vec<SocketAddr>, String>)> {
        let mut out = Vec::new();
        while let Ok((name, result)) = self.answers.try_recv() {
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].2 == name {
                    let (k, g, _) = self.waiting.swap_remove(i);
                    out.push((k, g, result.clone()));
                } else {
                    i += 1;
                }
            }
            self.cache.answer(name, result, now);
        }
        out
    }
}

/// The host names of the upgrade policies' static `target-url`s.
fn static_names(model: &Model) -> Vec<Name> {
    let mut names = Vec::new();
    for api in &model.apis {
        for p in &api.assembly.execute {
            let PolicyKind::WebSocketUpgrade(w) = &p.kind else {
                continue;
            };
            let Some(Ok(t)) = w.backend.target_url.as_static().map(TargetUrl::parse) else {
                continue;
            };
            if t.host.parse::<IpAddr>().is_err() {
                names.push((t.host, t.port));
            }
        }
    }
    names
}

/// What the cache knows of a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Cached {
    Fresh(Vec<SocketAddr>),
    /// Usable, but old enough to look up again (the caller asks; once per name at a time).
    Refresh(Vec<SocketAddr>),
    /// Unknown, or too stale to use: the caller waits for a lookup.
    Miss,
}

struct Entry {
    addrs: Vec<SocketAddr>,
    /// The last lookup that gave these addresses.
    confirmed: Instant,
    used: Instant,
    /// A lookup for this name is under way.
    asked: bool,
}

/// Resolved names, bounded in number and age. Sans-I/O: the caller brings the time.
pub struct NameCache {
    entries: HashMap<Name, Entry>,
    capacity: usize,
}

impl NameCache {
    pub fn new(capacity: usize) -> NameCache {
        NameCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&mut self, name: &Name, now: Instant) -> Cached {
        let Some(e) = self.entries.get_mut(name) else {
            return Cached::Miss;
        };
        let age = now.saturating_duration_since(e.confirmed);
        if age >= STALE {
            self.entries.remove(name);
            return Cached::Miss;
        }
        e.used = now;
        if age >= REFRESH && !e.asked {
            e.asked = true;
            return Cached::Refresh(e.addrs.clone());
        }
        Cached::Fresh(e.addrs.clone())
    }

    /// A lookup's result. A failure leaves the addresses in place until they are stale, so
    /// that a resolver hiccup does not take a backend down.
    pub fn answer(&mut self, name: Name, result: Result<Vec<SocketAddr>, String>, now: Instant) {
        match result {
            Ok(addrs) => {
                if !self.entries.contains_key(&name) && self.entries.len() >= self.capacity {
                    self.evict_least_used();
                }
                let e = Entry {
                    addrs,
                    confirmed: now,
                    used: now,
                    asked: false,
                };
                self.entries.insert(name, e);
            }
            Err(_) => {
                if let Some(e) = self.entries.get_mut(&name) {
                    e.asked = false;
                }
            }
        }
    }

    fn evict_least_used(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.used)
            .map(|(n, _)| n.clone());
        if let Some(n) = oldest {
            self.entries.remove(&n);
        }
    }
}

/// The addresses of one backend name, tried in turn until one connects. Each attempt gets an
/// equal share of the time left before `deadline`, so an address that swallows the connect
/// does not use up the whole timeout of the ones after it.
#[derive(Debug, Default)]
pub struct Attempts {
    addrs: Vec<SocketAddr>,
    next: usize,
    deadline: Option<Instant>,
}

impl Attempts {
    pub fn new(addrs: Vec<SocketAddr>, deadline: Instant) -> Attempts {
        Attempts {
            addrs,
            next: 0,
            deadline: Some(deadline),
        }
    }

    /// The next address and how long it may take to connect; `None` when all were tried.
    pub fn next(&mut self, now: Instant) -> Option<(SocketAddr, Duration)> {
        let addr = *self.addrs.get(self.next)?;
        let left = (self.addrs.len() - self.next) as u32;
        self.next += 1;
        let remaining = self
            .deadline
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
        Some((addr, remaining / left))
    }

    pub fn has_more(&self) -> bool {
        self.next < self.addrs.len()
    }
}

fn system_lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match (host, port).to_socket_addrs() {
        Ok(a) => {
            let v: Vec<SocketAddr> = a.collect();
            if v.is_empty() {
                Err(format!("{host} has no address"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!("{host}: {e}")),
    }
}

fn resolver_thread(asked: Receiver<Name>, tell: Sender<Answer>, waker: Arc<Waker>, lookup: Lookup) {
    while let Ok(name) = asked.recv() {
        let r = lookup(&name.0, name.1);
        if tell.send((name, r)).is_err() {
            return;
        }
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn name(n: &str) -> Name {
        (n.to_string(), 80)
    }

    #[test]
    fn names_are_refreshed_once_then_dropped_when_stale() {
        let t0 = Instant::now();
        let mut c = NameCache::new(8);
        let a = vec![addr("10.0.0.1:80")];
        c.answer(name("b"), Ok(a.clone()), t0);
        assert_eq!(
            c.get(&name("b"), t0 + REFRESH / 2),
            Cached::Fresh(a.clone())
        );
        assert_eq!(c.get(&name("b"), t0 + REFRESH), Cached::Refresh(a.clone()));
        // One lookup at a time: the next user does not ask again.
        assert_eq!(c.get(&name("b"), t0 + REFRESH), Cached::Fresh(a.clone()));
        // The lookup failed: the old addresses still serve, and the next use asks again...
        c.answer(name("b"), Err("SERVFAIL".into()), t0 + REFRESH);
        let later = t0 + REFRESH * 2;
        assert_eq!(c.get(&name("b"), later), Cached::Refresh(a.clone()));
        // ...until nothing has confirmed them for STALE.
        assert_eq!(c.get(&name("b"), t0 + STALE), Cached::Miss);
        assert_eq!(c.len(), 0);
        // A success renews them.
        let b = vec![addr("10.0.0.2:80")];
        c.answer(name("b"), Ok(b.clone()), t0 + STALE);
        assert_eq!(
            c.get(&name("b"), t0 + STALE + REFRESH / 2),
            Cached::Fresh(b)
        );
    }

    #[test]
    fn a_full_cache_evicts_the_name_used_longest_ago() {
        let t0 = Instant::now();
        let mut c = NameCache::new(3);
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            c.answer(name(n), Ok(vec![addr("10.0.0.1:80")]), t0);
            let _ = c.get(&name(n), t0 + Duration::from_secs(i as u64));
        }
        let _ = c.get(&name("a"), t0 + Duration::from_secs(5));
        // Names made from request data keep coming: the cache stays at its bound.
        for i in 0..100 {
            let at = t0 + Duration::from_secs(10 + i);
            c.answer(name(&format!("n{i}")), Ok(vec![addr("10.0.0.9:80")]), at);
            assert_eq!(c.len(), 3);
            if i == 0 {
                // "b" was used longest ago.
                assert_eq!(c.get(&name("b"), at), Cached::Miss);
                assert!(matches!(c.get(&name("a"), at), Cached::Fresh(_)));
            }
        }
        // Renewing a known name evicts nothing.
        let at = t0 + Duration::from_secs(200);
        c.answer(name("n99"), Ok(vec![addr("10.0.0.3:80")]), at);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn attempts_share_the_time_left() {
        let t0 = Instant::now();
        let dead = addr("[::1]:9");
        let live = addr("127.0.0.1:8080");
        let mut a = Attempts::new(vec![dead, live], t0 + Duration::from_secs(10));
        assert!(a.has_more());
        assert_eq!(a.next(t0), Some((dead, Duration::from_secs(5))));
        // The first took its whole share: the last one gets all that is left.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(a.next(t1), Some((live, Duration::from_secs(5))));
        assert!(!a.has_more());
        assert_eq!(a.next(t1), None);
        assert_eq!(Attempts::default().next(t0), None);
    }

    /// A name whose first address refuses connections, then a live one (a fake lookup: this
    /// machine's `localhost` has one address only).
    fn two_addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        match host {
            "two.test" => Ok(vec![
                SocketAddr::new("127.0.0.1".parse().unwrap(), 1),
                SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            ]),
            _ => Err(format!("{host}: not found")),
        }
    }

    #[test]
    fn the_resolver_thread_answers_waiting_connections_from_the_lookup() {
        let mut poll = mio::Poll::new().unwrap();
        let t0 = Instant::now();
        let mut r = Resolver::start(poll.registry(), Token(1), &[], two_addresses, t0).unwrap();
        assert_eq!(r.lookup("two.test", 8080, 7, 1, t0), None);
        assert_eq!(
            r.lookup("two.test", 8080, 8, 1, t0),
            None,
            "queued behind the first"
        );
        assert_eq!(r.lookup("gone.test", 80, 9, 1, t0), None);
        let mut answers = Vec::new();
        let mut events = mio::Events::with_capacity(4);
        for _ in 0..100 {
            if answers.len() == 3 {
                break;
            }
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            answers.extend(r.drain(t0));
        }
        assert_eq!(answers.len(), 3, "{answers:?}");
        answers.sort_by_key(|a| a.0);
        let want = two_addresses("two.test", 8080);
        assert_eq!(answers[0], (7, 1, want.clone()));
        assert_eq!(answers[1], (8, 1, want.clone()));
        assert!(answers[2].2.is_err());
        // Known now, in the lookup's order.
        assert_eq!(r.lookup("two.test", 8080, 10, 1, t0), want.ok());
    }
}
