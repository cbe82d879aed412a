//! Backend connections kept open between plain calls (the invoke's `persistent-connection`).
//! A call that ends cleanly parks its backend connection here under its origin; the next call
//! to the same origin takes it instead of connecting. Parked connections are watched for the
//! backend closing them, and the pool is bounded: when it is full, the connection closes.

use super::conn::Handshake;
use super::stream::Stream;
use slab::Slab;
use std::io::Read;

/// Backend connections parked at most, for all origins together. Each holds a descriptor and
/// its socket's kernel memory; a few per busy backend is what keep-alive is for.
pub const CAPACITY: usize = 128;

/// What makes two backend connections interchangeable: scheme, host, port and the TLS
/// settings that set up the session (the profile's roots, and its client certificate unless a
/// redirect to another origin left it out).
pub fn origin(hs: &Handshake) -> String {
    let target = &hs.target;
    format!(
        "{}://{}:{}/{}{}",
        if target.tls() { "tls" } else { "tcp" },
        target.host,
        target.port,
        hs.tls_profile.map_or(-1, i32::from),
        if hs.other_origin { "/anonymous" } else { "" }
    )
}

struct Parked {
    origin: String,
    stream: Stream,
}

pub struct Pool {
    parked: Slab<Parked>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            parked: Slab::new(),
        }
    }

    /// Parks `stream`; returns its index, or gives the stream back when the pool is full.
    pub fn park(&mut self, origin: String, stream: Stream) -> Result<usize, Stream> {
        if self.parked.len() >= CAPACITY {
            return Err(stream);
        }
        Ok(self.parked.insert(Parked { origin, stream }))
    }

    /// A parked connection to `origin` that is still open, if any, and the connections found
    /// closed on the way (for the caller to deregister and drop).
    pub fn take(&mut self, origin: &str, closed: &mut Vec<Stream>) -> Option<Stream> {
        loop {
            let idx = self
                .parked
                .iter()
                .find(|(_, p)| p.origin == origin)
                .map(|(i, _)| i)?;
            // The backend may have closed it a moment ago, before the loop saw the event.
            match self.check(idx) {
                None => return Some(self.parked.remove(idx).stream),
                Some(gone) => closed.push(gone),
            }
        }
    }

    /// Looks at the parked connection `idx`, after it became readable or before it is used.
    /// An idle HTTP/1.1 backend sends nothing, so readable means it is closing (or a TLS
    /// record such as a session ticket came, which the read absorbs). Returns the stream when
    /// it has to go.
    pub fn check(&mut self, idx: usize) -> Option<Stream> {
        let p = self.parked.get_mut(idx)?;
        let mut byte = [0u8; 1];
        match p.stream.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            // End of stream, an error, or bytes nobody asked for: the connection is done.
            _ => Some(self.parked.remove(idx).stream),
        }
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Stream> {
        self.parked.get_mut(idx).map(|p| &mut p.stream)
    }

    pub fn remove(&mut self, idx: usize) -> Option<Stream> {
        self.parked.try_remove(idx).map(|p| p.stream)
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

impl super::cx::Cx {
    /// A parked backend connection has news: most likely the backend closed it.
    pub(super) fn on_parked(&mut self, idx: usize) {
        if let Some(mut gone) = self.parked.check(idx) {
            log::debug!("a kept backend connection closed");
            let _ = self.registry.deregister(&mut gone);
        }
    }

    /// Keeps `stream`, whose call ended cleanly, for the next call to `origin`; closes it when
    /// the pool is full.
    pub(super) fn park(&mut self, origin: String, stream: Stream) {
        let mut stream = match self.parked.park(origin, stream) {
            Ok(idx) => {
                let token = mio::Token(super::PARKED_BASE + idx);
                let s = self.parked.get_mut(idx);
                match s.map(|s| self.registry.reregister(s, token, mio::Interest::READABLE)) {
                    Some(Ok(())) => return,
                    _ => match self.parked.remove(idx) {
                        Some(s) => s,
                        None => return,
                    },
                }
            }
            Err(s) => s,
        };
        let _ = self.registry.deregister(&mut stream);
    }

    /// A kept connection to `origin`, registered as connection `key`'s backend.
    pub(super) fn unpark(&mut self, key: usize, origin: &str) -> Option<Stream> {
        let mut closed = Vec::new();
        let found = self.parked.take(origin, &mut closed);
        for mut gone in closed {
            let _ = self.registry.deregister(&mut gone);
        }
        let mut stream = found?;
        let token = mio::Token(key * 2 + 1);
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        match self.registry.reregister(&mut stream, token, interest) {
            Ok(()) => Some(stream),
            Err(e) => {
                log::debug!("cannot reuse a kept backend connection: {e}");
                let _ = self.registry.deregister(&mut stream);
                None
            }
        }
    }
}
