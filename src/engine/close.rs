//! The end of a connection. Every path ends in [`Gateway::finish`], exactly once per connection:
//! it is where sockets close, buffers go back to the pool and, later, counts are given back.

use super::Gateway;
use super::conn::{Phase, flag};
use super::metrics::BackendError;
use crate::activity::Closer;

impl Gateway {
    /// Closes both sockets and frees everything the connection holds.
    pub(super) fn finish(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        self.release_limits(key);
        self.connection_ended(key);
        let mut c = self.conns.remove(key);
        if c.phase == Phase::FirstHead {
            self.pending.release(c.peer.ip());
        }
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut c.client);
        if let Some(mut b) = c.backend.take() {
            let _ = registry.deregister(&mut b);
        }
        for id in [c.up.buf.take(), c.down.buf.take()].into_iter().flatten() {
            self.pool.give(id);
        }
        if c.phase == Phase::Open {
            self.stats.upgraded -= 1;
        }
        self.stats.open = self.conns.len();
        log::debug!("connection from {} closed", c.peer);
    }

    /// Gives back what the connection holds of count limits (auto-decrement). Taking the ledger
    /// empties it, so this happens once whichever path ends the connection.
    pub(super) fn release_limits(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(l) = c.limits.as_mut() {
            for (slot, w) in l.held.take_all() {
                self.counters.dec(slot, w);
            }
            if let Some(p) = l.profile.take() {
                self.counters.release_profile(p);
            }
            for r in std::mem::take(&mut l.retired) {
                self.counters.unpin(r);
            }
        }
    }

    /// A connection's deadline passed; what that means depends on where it is.
    pub(super) fn on_timeout(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        // An address that did not connect in its share of the timeout gives way to the next.
        if c.phase == Phase::Connecting && self.try_next_address(key) {
            return;
        }
        let Some(c) = self.conns.get(key) else { return };
        match c.phase {
            Phase::FirstHead if c.client.handshaking() => {
                log::debug!(
                    "client {} did not complete the TLS handshake in time",
                    c.peer
                );
                self.finish(key);
            }
            Phase::FirstHead | Phase::Head => {
                log::debug!("client {} did not send its head in time", c.peer);
                self.respond(key, 408, "Request timeout", &[]);
            }
            Phase::Resolving | Phase::Connecting | Phase::BackendHead => {
                let target =
                    c.hs.as_ref()
                        .map(|h| format!("{}:{}", h.target.host, h.target.port))
                        .unwrap_or_default();
                log::warn!("backend {target} did not complete the upgrade in time");
                self.metrics.backend_error(BackendError::Timeout);
                self.backend_failed(key, 504, "Timeout");
            }
            Phase::Open => {
                if c.has(flag::FAILING) || c.has(flag::CLIENT_CLOSED) || c.has(flag::BACKEND_CLOSED)
                {
                    // The close handshake did not complete within the grace period.
                    self.finish(key);
                } else {
                    log::debug!("connection from {} idle too long", c.peer);
                    self.note_close(key, Closer::Gateway, 1001);
                    self.fail(
                        key,
                        Some((1001, "idle timeout")),
                        Some((1001, "idle timeout")),
                    );
                }
            }
            Phase::Echo => {
                if c.has(flag::FAILING) || c.has(flag::CLIENT_CLOSED) {
                    self.finish(key);
                } else {
                    self.echo_close(key, 1001, "idle timeout");
                }
            }
            Phase::Call => {
                let answered =
                    c.hs.as_ref()
                        .and_then(|h| h.call.as_ref())
                        .is_some_and(|call| call.response.is_some());
                if answered {
                    // The answer started: too late for an error of our own.
                    log::warn!(
                        "backend call for client {} did not complete in time",
                        c.peer
                    );
                    self.finish(key);
                } else {
                    log::warn!("backend did not answer the call in time");
                    self.metrics.backend_error(BackendError::Timeout);
                    self.backend_failed(key, 504, "Timeout");
                }
            }
            Phase::Refused | Phase::Respond | Phase::Linger => self.finish(key),
        }
    }

    /// Gateway shutdown: open WebSockets get close 1001 on both sides; connections still in
    /// their handshake are closed at once.
    pub(super) fn shutdown_conn(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        match c.phase {
            Phase::Open => {
                if !c.has(flag::FAILING) {
                    self.note_close(key, Closer::Gateway, 1001);
                    self.fail(
                        key,
                        Some((1001, "gateway shutting down")),
                        Some((1001, "gateway shutting down")),
                    );
                }
            }
            Phase::Echo => self.echo_close(key, 1001, "gateway shutting down"),
            Phase::Respond | Phase::Linger => {}
            Phase::FirstHead
            | Phase::Head
            | Phase::Resolving
            | Phase::Connecting
            | Phase::BackendHead
            | Phase::Call
            | Phase::Refused => self.finish(key),
        }
    }
}
