//! The gateway's own answers: a JSON error (spec §4.3), a preflight's 200, an admin page or an
//! echo reply, written from the backward flow's buffer, then a lingering close (`Respond`, then
//! `Linger`). An answer ends the transaction: what it holds of count limits comes back here.
//! A backend that cannot be used is answered here too, or handed to the assembly's `catch`.

use super::conn::{Conn, Phase, flag};
use super::cx::{Cx, Next};
use super::relay::{Io, write_out};
use crate::http::response;
use crate::policy::assembly::{self, Step};

impl Cx {
    /// The backend could not be used: the documented error, or, for a call whose invoke lists
    /// the error in `stop-on-error`, what the assembly's `catch` makes of it.
    pub(super) fn backend_failed(
        &mut self,
        key: usize,
        c: &mut Conn,
        status: u16,
        message: &str,
    ) -> Next {
        if let Some(next) = self.retry_fresh(key, c) {
            return next;
        }
        let listed =
            c.hs.as_ref()
                .and_then(|h| h.call.as_ref())
                .is_some_and(|call| call.stop_on.connection);
        if !listed {
            return self.respond(key, c, status, message, &[]);
        }
        self.recover(key, c, "ConnectionError", status, message)
    }

    /// Runs the assembly's `catch` for an error of the backend call and answers with its result.
    pub(super) fn recover(
        &mut self,
        key: usize,
        c: &mut Conn,
        name: &str,
        status: u16,
        message: &str,
    ) -> Next {
        let raised = assembly::Raised {
            name: name.to_string(),
            status,
            reason: None,
            message: message.to_string(),
            limit: None,
        };
        let outcome = self.in_flow(c, |assembly, vars, lim| {
            match assembly::recover(assembly, raised, vars, lim) {
                Step::Fail(r) => Some((r.status, r.message)),
                // A catch that calls another backend is not followed: the error stands.
                _ => None,
            }
        });
        let (status, message) = match outcome {
            Some((Some(answer), mut held, _)) => {
                // The transaction ends with this answer: what the catch counted comes back.
                for (slot, w) in held.take_all() {
                    self.counters.dec(slot, w);
                }
                answer
            }
            Some((None, mut held, _)) => {
                for (slot, w) in held.take_all() {
                    self.counters.dec(slot, w);
                }
                (status, message.to_string())
            }
            None => (status, message.to_string()),
        };
        log::debug!(
            "{name} for client {} handled by the assembly's catch: {status}",
            c.peer
        );
        self.respond(key, c, status, &message, &[])
    }

    /// Answers the client with a JSON error and closes once it is written.
    pub(super) fn respond(
        &mut self,
        key: usize,
        c: &mut Conn,
        status: u16,
        more: &str,
        extra: &[(&str, &str)],
    ) -> Next {
        let txn = match c.hs.as_ref() {
            Some(hs) => hs.txn.clone(),
            None => self.txn.next(),
        };
        let mut out = Vec::with_capacity(256);
        response::error(&mut out, status, more, &txn, extra);
        self.answer(key, c, &out)
    }

    /// A 200 with headers and no body (a CORS preflight).
    pub(super) fn respond_headers(
        &mut self,
        key: usize,
        c: &mut Conn,
        status: u16,
        headers: &[(String, String)],
    ) -> Next {
        let txn = self.txn.next();
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nX-Global-Transaction-ID: {txn}\r\n",
            response::reason(status)
        )
        .into_bytes();
        for (n, v) in headers {
            response::write_header(&mut out, n, v);
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        self.answer(key, c, &out)
    }

    /// Sends `bytes` as the client's final answer, then lingers and closes. The transaction
    /// ends here: what it holds of count limits is given back now. An answer larger than one
    /// buffer goes out whole, a buffer at a time.
    pub(super) fn answer(&mut self, key: usize, c: &mut Conn, bytes: &[u8]) -> Next {
        self.answered(c, bytes);
        self.release_limits(c);
        if let Some(mut b) = c.backend.take() {
            let _ = self.registry.deregister(&mut b);
        }
        // Whatever the client sent beyond its head is not needed any more.
        if let Some(id) = c.up.buf.take() {
            self.pool.give(id);
        }
        c.up.head = 0;
        c.up.out = 0;
        c.up.end = 0;
        // A first head refused (400, 431) or too late (408) is over too: the connection only
        // lingers now, for `close-grace` at most.
        if c.phase == Phase::FirstHead {
            self.pending.release(c.peer.ip());
        }
        c.phase = Phase::Respond;
        c.down.head = 0;
        c.down.out = 0;
        c.down.end = 0;
        let n = fill(&mut self.pool, &mut c.down, bytes);
        if n < bytes.len() {
            // Rare (an admin page of a large config): the rest waits here, not in `Conn`, until
            // the buffer is out or the connection ends (`Cx::finish`).
            self.long_answers.push(LongAnswer {
                epoch: c.epoch,
                rest: bytes[n..].to_vec(),
                sent: 0,
            });
        }
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, c, grace);
        self.drive_respond(key, c)
    }

    pub(super) fn drive_respond(&mut self, _key: usize, c: &mut Conn) -> Next {
        if c.phase == Phase::Respond {
            loop {
                if c.has(flag::CLIENT_WRITABLE) {
                    match write_out(&mut self.pool, &mut c.down, &mut c.client) {
                        Io::Blocked => c.clear(flag::CLIENT_WRITABLE),
                        Io::Error(_) | Io::Eof => return Next::Finish,
                        _ => {}
                    }
                }
                if c.down.pending_out() {
                    return Next::Stay;
                }
                // The buffer is out: the next part of a long answer, if this is one.
                let Some(i) = self.long_answers.iter().position(|a| a.epoch == c.epoch) else {
                    break;
                };
                let a = &mut self.long_answers[i];
                a.sent += fill(&mut self.pool, &mut c.down, &a.rest[a.sent..]);
                if a.sent == a.rest.len() {
                    self.long_answers.swap_remove(i);
                }
            }
            c.client.shutdown_write();
            c.phase = Phase::Linger;
        }
        // Linger: discard what the client still sends until it closes.
        let mut scratch = [0u8; 4096];
        loop {
            use std::io::Read;
            match c.client.read(&mut scratch) {
                Ok(0) => return Next::Finish,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    c.clear(flag::CLIENT_READABLE);
                    return Next::Stay;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Finish,
            }
        }
    }
}

/// The part of an answer that did not fit the connection's buffer, written as the socket takes
/// the parts before it. Connection epochs are never reused, so the epoch names its connection.
pub(super) struct LongAnswer {
    pub(super) epoch: u32,
    rest: Vec<u8>,
    sent: usize,
}

/// Puts as much of `bytes` as fits into the empty flow's buffer, ready to write; how much.
fn fill(pool: &mut super::pool::Pool, flow: &mut super::conn::Flow, bytes: &[u8]) -> usize {
    let id = flow.buffer(pool);
    let buf = pool.get(id);
    let n = bytes.len().min(buf.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    flow.head = 0;
    flow.out = n as u32;
    flow.end = n as u32;
    n
}
