//! A plain HTTP call through the invoke policy. The request body goes to the backend as the
//! client framed it, and the backend's answer comes back as it arrives, its head rewritten
//! for the client. Both bodies stream through the flows' pool buffers with the same bound as
//! the WebSocket relay; [`Body`] says where each ends, so that what follows a request is the
//! client's next one. With keep-alive the connection then waits for that next request.

use super::Gateway;
use super::conn::{Phase, flag};
use super::relay::{Io, read_leaving, read_once, splice_head, write_out};
use super::upstream::ANSWER_ROOM;
use crate::http::body::Body;
use crate::http::head::{BodyFraming, ResponseHead, parse_response};
use crate::http::response::write_header;

/// What one round of a call found.
enum Round {
    /// Bytes moved; another round may move more.
    Moved,
    /// Nothing can move until a socket is ready.
    Idle,
    /// The connection was answered or closed.
    Ended,
}

impl Gateway {
    /// Advances a call as far as the sockets allow, and ends it when both bodies are through.
    pub(super) fn drive_call(&mut self, key: usize) {
        let mut moved = false;
        loop {
            let up = self.call_request(key);
            if matches!(up, Round::Ended) {
                return;
            }
            let down = self.call_response(key);
            match (up, down) {
                (_, Round::Ended) => return,
                (Round::Idle, Round::Idle) => break,
                _ => moved = true,
            }
        }
        // A long body is not cut off while it flows: the timeout counts from the last bytes
        // that moved, not from the start of the call.
        let flowing = self
            .conns
            .get(key)
            .and_then(|c| c.hs.as_ref())
            .and_then(|h| h.call.as_ref());
        if moved && let Some(t) = flowing.map(|call| call.timeout) {
            self.set_timeout(key, t);
        }
        self.call_done(key);
    }

    /// Client to backend: the request body, up to its end.
    fn call_request(&mut self, key: usize) -> Round {
        let Some(c) = self.conns.get_mut(key) else {
            return Round::Ended;
        };
        let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
            return Round::Ended;
        };
        let mut moved = false;
        if !call.request.done()
            && c.up.out < c.up.end
            && let Some(id) = c.up.buf
        {
            let bytes = &self.pool.get(id)[c.up.out as usize..c.up.end as usize];
            match call.request.feed(bytes) {
                Ok(n) => {
                    c.up.out += n as u32;
                    super::activity::count_in(&mut c.activity, n);
                }
                Err(e) => {
                    log::debug!("client {}: request body: {}", c.peer, e.reason());
                    // Refused while the answer has not started; cut off once it has.
                    if call.response.is_none() {
                        self.respond(key, 400, e.reason(), &[]);
                    } else {
                        self.finish(key);
                    }
                    return Round::Ended;
                }
            }
        }
        if c.up.pending_out() && (c.flags & flag::BACKEND_WRITABLE != 0) && !call.request_broken {
            let Some(b) = c.backend.as_mut() else {
                return Round::Ended;
            };
            match write_out(&mut self.pool, &mut c.up, b) {
                Io::Progress => moved = true,
                Io::Blocked => c.flags &= !flag::BACKEND_WRITABLE,
                Io::Eof | Io::Error(_) | Io::Full => {
                    // The backend no longer takes the body; its answer may still come, but
                    // the client's connection cannot be reused after an unread body.
                    call.request_broken = true;
                    call.keep_alive = false;
                }
            }
        }
        if !call.request.done() && !call.request_broken && (c.flags & flag::CLIENT_READABLE != 0) {
            match read_once(&mut self.pool, &mut c.up, &mut c.client) {
                Io::Progress => moved = true,
                Io::Blocked => c.flags &= !flag::CLIENT_READABLE,
                // Full: the backend has not taken what is buffered yet.
                Io::Full => {}
                Io::Eof | Io::Error(_) => {
                    log::debug!("client {} left in the middle of its request", c.peer);
                    self.finish(key);
                    return Round::Ended;
                }
            }
        }
        if moved { Round::Moved } else { Round::Idle }
    }

    /// Backend to client: the answer's head, rewritten, then its body.
    fn call_response(&mut self, key: usize) -> Round {
        let Some(c) = self.conns.get_mut(key) else {
            return Round::Ended;
        };
        let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
            return Round::Ended;
        };
        let mut moved = false;
        if (c.flags & flag::BACKEND_READABLE != 0) && !call.response_done() {
            let Some(b) = c.backend.as_mut() else {
                return Round::Ended;
            };
            // Room for the rewritten head in front of the body bytes read with it.
            let reserve = if call.response.is_none() {
                ANSWER_ROOM
            } else {
                0
            };
            match read_leaving(&mut self.pool, &mut c.down, b, reserve) {
                Io::Progress => moved = true,
                Io::Blocked => c.flags &= !flag::BACKEND_READABLE,
                Io::Full if call.response.is_none() => {
                    log::warn!("backend answer head too large");
                    self.backend_failed(key, 502, "Invalid response from backend");
                    return Round::Ended;
                }
                Io::Full => {}
                Io::Eof => {
                    call.backend_eof = true;
                    let whole = call
                        .response
                        .as_ref()
                        .is_some_and(|r| r.done() || r.until_close());
                    if call.response.is_none() {
                        log::warn!("backend closed the connection before answering");
                        self.backend_failed(key, 502, "Invalid response from backend");
                        return Round::Ended;
                    }
                    if !whole {
                        log::warn!("backend closed the connection in the middle of its answer");
                        self.finish(key);
                        return Round::Ended;
                    }
                }
                Io::Error(e) => {
                    if call.response.is_none() {
                        log::warn!("backend for client {}: {e}", c.peer);
                        self.backend_failed(key, 502, "Invalid response from backend");
                    } else {
                        self.finish(key);
                    }
                    return Round::Ended;
                }
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return Round::Ended;
        };
        let Some(hs) = c.hs.as_mut() else {
            return Round::Ended;
        };
        let Some(call) = hs.call.as_mut() else {
            return Round::Ended;
        };
        while call.response.is_none()
            && let Some(id) = c.down.buf
        {
            // Bytes before `out` are heads already rewritten (an interim 100 Continue).
            let (start, end) = (c.down.out as usize, c.down.end as usize);
            let buf = self.pool.get(id);
            let (resp, used) = match parse_response(&buf[start..end]) {
                Ok(None) => break,
                Ok(Some(x)) => x,
                Err(e) => {
                    log::warn!("backend answered with a malformed head: {e}");
                    self.backend_failed(key, 502, "Invalid response from backend");
                    return Round::Ended;
                }
            };
            let informational = resp.status() < 200;
            let status = resp.status();
            if status >= 400 && call.stop_on.operation {
                drop(resp);
                self.recover(
                    key,
                    "OperationError",
                    status,
                    "The backend reported an error",
                );
                return Round::Ended;
            }
            let framing = if call.head_only || informational {
                Ok(BodyFraming::None)
            } else {
                resp.body_framing()
            };
            let framing = match framing {
                Ok(f) => f,
                Err(e) => {
                    log::warn!("backend answer: {e}");
                    self.backend_failed(key, 502, "Invalid response from backend");
                    return Round::Ended;
                }
            };
            if framing == BodyFraming::UntilClose {
                call.keep_alive = false;
            }
            let mut head = Vec::with_capacity(used + 128);
            client_head(
                &mut head,
                &resp,
                &hs.txn,
                &hs.reply_headers,
                call.keep_alive,
            );
            drop(resp);
            super::activity::head_out(&mut c.activity, &head, self.now);
            if !splice_head(&mut self.pool, &mut c.down, start, used, &head) {
                self.backend_failed(key, 502, "Invalid response from backend");
                return Round::Ended;
            }
            moved = true;
            if !informational {
                call.response = Some(Body::new(framing));
            }
        }
        if let Some(body) = call.response.as_mut()
            && c.down.out < c.down.end
            && let Some(id) = c.down.buf
        {
            let bytes = &self.pool.get(id)[c.down.out as usize..c.down.end as usize];
            match body.feed(bytes) {
                Ok(n) => {
                    c.down.out += n as u32;
                    super::activity::count_out(&mut c.activity, n);
                    // Whatever the backend sent after its answer belongs to nothing.
                    c.down.end = c.down.out;
                }
                Err(e) => {
                    log::warn!("backend answer body: {}", e.reason());
                    self.finish(key);
                    return Round::Ended;
                }
            }
        }
        if c.down.pending_out() && (c.flags & flag::CLIENT_WRITABLE != 0) {
            match write_out(&mut self.pool, &mut c.down, &mut c.client) {
                Io::Progress => moved = true,
                Io::Blocked => c.flags &= !flag::CLIENT_WRITABLE,
                _ => {
                    self.finish(key);
                    return Round::Ended;
                }
            }
        }
        if moved { Round::Moved } else { Round::Idle }
    }

    /// Ends the call once the answer is out and the request body is through: the backend
    /// connection closes, counts come back, and the client sends its next request or goes.
    fn call_done(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(call) = c.hs.as_ref().and_then(|h| h.call.as_ref()) else {
            return;
        };
        let request_over = call.request.done() || call.request_broken;
        if !(call.response_done() && request_over && c.down.is_empty()) {
            return;
        }
        let keep_alive = call.keep_alive && call.request.done();
        if let Some(mut b) = c.backend.take() {
            let _ = self.poll.registry().deregister(&mut b);
        }
        c.clear(flag::BACKEND_READABLE | flag::BACKEND_WRITABLE | flag::BACKEND_EOF);
        c.hs = None;
        self.stats.calls += 1;
        self.call_ended(key);
        self.release_limits(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !keep_alive {
            // Nothing more is read as a request: answer done, close as after an error.
            c.up.head = c.up.end;
            super::relay::release_if_empty(&mut self.pool, &mut c.up);
            c.phase = Phase::Respond;
            let grace = self.model.settings.bounds.close_grace;
            self.set_timeout(key, grace);
            self.drive_respond(key);
            return;
        }
        c.phase = Phase::Head;
        // What follows the request in the buffer is the start of the next one.
        c.up.head = c.up.out;
        super::relay::release_if_empty(&mut self.pool, &mut c.up);
        let t = self.model.settings.bounds.header_timeout;
        self.set_timeout(key, t);
        self.read_head(key);
    }
}

/// The client's copy of a backend answer head: its status line and headers without those that
/// concern only the backend connection, plus the transaction id, the gateway's own headers
/// (limits, CORS) and `Connection: close` when the client connection ends after it.
fn client_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead,
    txn: &str,
    extra: &[(String, String)],
    keep_alive: bool,
) {
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", resp.status(), resp.reason()).as_bytes());
    for (name, value) in resp.headers_iter() {
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        if is("connection")
            || is("keep-alive")
            || is("proxy-connection")
            || is("x-global-transaction-id")
            || resp.has_token("connection", name)
        {
            continue;
        }
        write_header(out, name, value);
    }
    if resp.status() >= 200 {
        write_header(out, "X-Global-Transaction-ID", txn);
        for (name, value) in extra {
            write_header(out, name, value);
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}
