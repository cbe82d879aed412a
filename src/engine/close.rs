//! The end of a connection. Every path ends in [`Cx::finish`], exactly once per connection (a
//! step returns [`Next::Finish`] and the loop takes the connection out of the slab): it is where
//! sockets close, buffers go back to the pool and counts are given back.

use super::conn::{Conn, Phase, flag};
use super::cx::{Cx, Next};
use super::metrics::BackendError;
use crate::activity::Closer;

impl Cx {
    /// Closes both sockets and frees everything the connection, just taken out of the slab,
    /// holds.
    pub(super) fn finish(&mut self, mut c: Conn) {
        self.release_limits(&mut c);
        self.connection_ended(&mut c);
        if c.phase == Phase::FirstHead {
            self.pending.release(c.peer.ip());
        }
        let registry = &self.registry;
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
        if !self.long_answers.is_empty() {
            self.long_answers.retain(|a| a.epoch != c.epoch);
        }
        log::debug!("connection from {} closed", c.peer);
    }

    /// Gives back what the connection holds of count limits (auto-decrement). Taking the ledger
    /// empties it, so this happens once whichever path ends the connection.
    pub(super) fn release_limits(&mut self, c: &mut Conn) {
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
    pub(super) fn on_timeout(&mut self, key: usize, c: &mut Conn) -> Next {
        // An address that did not connect in its share of the timeout gives way to the next.
        if c.phase == Phase::Connecting
            && let Some(next) = self.try_next_address(key, c)
        {
            return next;
        }
        match c.phase {
            Phase::FirstHead if c.client.handshaking() => {
                log::debug!(
                    "client {} did not complete the TLS handshake in time",
                    c.peer
                );
                Next::Finish
            }
            Phase::FirstHead | Phase::Head => {
                log::debug!("client {} did not send its head in time", c.peer);
                self.respond(key, c, 408, "Request timeout", &[])
            }
            Phase::Resolving | Phase::Connecting | Phase::BackendHead => {
                let target =
                    c.hs.as_ref()
                        .map(|h| format!("{}:{}", h.target.host, h.target.port))
                        .unwrap_or_default();
                log::warn!("backend {target} did not complete the upgrade in time");
                self.metrics.backend_error(BackendError::Timeout);
                self.backend_failed(key, c, 504, "Timeout")
            }
            Phase::Open => {
                if c.has(flag::FAILING) || c.has(flag::CLIENT_CLOSED) || c.has(flag::BACKEND_CLOSED)
                {
                    // The close handshake did not complete within the grace period.
                    Next::Finish
                } else {
                    log::debug!("connection from {} idle too long", c.peer);
                    super::activity::note_close(c, Closer::Gateway, 1001);
                    self.fail(
                        key,
                        c,
                        Some((1001, "idle timeout")),
                        Some((1001, "idle timeout")),
                    )
                }
            }
            Phase::Echo => {
                if c.has(flag::FAILING) || c.has(flag::CLIENT_CLOSED) {
                    Next::Finish
                } else {
                    self.echo_close(key, c, 1001, "idle timeout")
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
                    Next::Finish
                } else {
                    log::warn!("backend did not answer the call in time");
                    self.metrics.backend_error(BackendError::Timeout);
                    self.backend_failed(key, c, 504, "Timeout")
                }
            }
            Phase::Refused | Phase::Respond | Phase::Linger => Next::Finish,
        }
    }

    /// Gateway shutdown: open WebSockets get close 1001 on both sides; connections still in
    /// their handshake are closed at once.
    pub(super) fn shutdown_conn(&mut self, key: usize, c: &mut Conn) -> Next {
        match c.phase {
            Phase::Open => {
                if c.has(flag::FAILING) {
                    return Next::Stay;
                }
                super::activity::note_close(c, Closer::Gateway, 1001);
                self.fail(
                    key,
                    c,
                    Some((1001, "gateway shutting down")),
                    Some((1001, "gateway shutting down")),
                )
            }
            Phase::Echo => self.echo_close(key, c, 1001, "gateway shutting down"),
            Phase::Respond | Phase::Linger => Next::Stay,
            Phase::FirstHead
            | Phase::Head
            | Phase::Resolving
            | Phase::Connecting
            | Phase::BackendHead
            | Phase::Call
            | Phase::Refused => Next::Finish,
        }
    }
}
