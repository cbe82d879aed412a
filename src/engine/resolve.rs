//! Backend names without stalling the loop. Names in static `target-url`s are resolved once at
//! load. A name first seen at run time is handed to a resolver thread (off the data path), and
//! the connection waits in `Resolving` until the answer wakes the loop. The thread also refreshes
//! every known name once a minute, so a backend that moves is followed without a reload.

use crate::http::url::TargetUrl;
use crate::model::{Model, PolicyKind};
use mio::{Registry, Token, Waker};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

const REFRESH: Duration = Duration::from_secs(60);

type Name = (String, u16);
type Answer = (Name, Result<Vec<SocketAddr>, String>);

pub struct Resolver {
    cache: HashMap<Name, Vec<SocketAddr>>,
    ask: Sender<Name>,
    answers: Receiver<Answer>,
    /// Connections waiting for a name: (slab key, generation, name).
    waiting: Vec<(usize, u32, Name)>,
}

impl Resolver {
    pub fn new(registry: &Registry, token: Token, model: &Model) -> std::io::Result<Resolver> {
        let mut cache = HashMap::new();
        for api in &model.apis {
            for p in &api.assembly.execute {
                if let PolicyKind::WebSocketUpgrade(w) = &p.kind {
                    let Some(url) = w.target_url.as_static() else {
                        continue;
                    };
                    let Ok(t) = TargetUrl::parse(url) else {
                        continue;
                    };
                    if t.host.parse::<IpAddr>().is_ok() {
                        continue;
                    }
                    match resolve(&t.host, t.port) {
                        Ok(a) => {
                            cache.insert((t.host.clone(), t.port), a);
                        }
                        Err(e) => log::warn!("backend {} does not resolve yet: {e}", t.host),
                    }
                }
            }
        }
        let waker = Arc::new(Waker::new(registry, token)?);
        let (ask, asked) = mpsc::channel::<Name>();
        let (tell, answers) = mpsc::channel::<Answer>();
        let known: Vec<Name> = cache.keys().cloned().collect();
        std::thread::Builder::new()
            .name("wsgate-resolver".into())
            .spawn(move || resolver_thread(asked, tell, waker, known))?;
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
    ) -> Option<Vec<SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(vec![SocketAddr::new(ip, port)]);
        }
        let name = (host.to_string(), port);
        if let Some(a) = self.cache.get(&name) {
            return Some(a.clone());
        }
        let first = !self.waiting.iter().any(|w| w.2 == name);
        self.waiting.push((key, epoch, name.clone()));
        if first {
            let _ = self.ask.send(name);
        }
        None
    }

    /// Answers that arrived, for the connections that waited for them.
    pub fn drain(&mut self) -> Vec<(usize, u32, Result<Vec<SocketAddr>, String>)> {
        let mut out = Vec::new();
        while let Ok((name, result)) = self.answers.try_recv() {
            if let Ok(a) = &result {
                self.cache.insert(name.clone(), a.clone());
            }
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].2 == name {
                    let (k, g, _) = self.waiting.swap_remove(i);
                    out.push((k, g, result.clone()));
                } else {
                    i += 1;
                }
            }
        }
        out
    }
}

fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
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

fn resolver_thread(
    asked: Receiver<Name>,
    tell: Sender<Answer>,
    waker: Arc<Waker>,
    mut known: Vec<Name>,
) {
    loop {
        match asked.recv_timeout(REFRESH) {
            Ok(name) => {
                let r = resolve(&name.0, name.1);
                if r.is_ok() && !known.contains(&name) {
                    known.push(name.clone());
                }
                if tell.send((name, r)).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                for name in &known {
                    if let Ok(a) = resolve(&name.0, name.1)
                        && tell.send((name.clone(), Ok(a))).is_err()
                    {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let _ = waker.wake();
    }
}
