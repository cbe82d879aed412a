//! A plain HTTP call through the invoke policy. The request body goes to the backend as the
//! client framed it, and the backend's answer comes back as it arrives, its head rewritten
//! for the client. Both bodies stream through the flows' pool buffers with the same bound as
//! the WebSocket relay; [`Body`] says where each ends, so that what follows a request is the
//! client's next one. With keep-alive the connection then waits for that next request.

use super::conn::{Conn, Phase, flag};
use super::cx::{Cx, Next};
use super::head::build_backend_request;
use super::keepalive;
use super::relay::{Io, read_leaving, read_once, splice_head, write_out};
use super::upstream::MAX_REDIRECTS;
use crate::http::answer::{self, ClientFraming, Pass};
use crate::http::body::Body;
use crate::http::forward::PlainRequest;
use crate::http::head::{ANSWER_ROOM, BodyFraming, ResponseHead, parse_response_more};
use crate::http::response::{reason, write_header};
use crate::policy::{assembly, preflow};

/// What one round of a call found.
enum Round {
    /// Bytes moved; another round may move more.
    Moved,
    /// Nothing can move until a socket is ready.
    Idle,
    /// The call is out of this round's hands: answered, closed, or sent to another target;
    /// what that left for the loop.
    Ended(Next),
}

impl Cx {
    /// Advances a call as far as the sockets allow, and ends it when both bodies are through.
    pub(super) fn drive_call(&mut self, key: usize, c: &mut Conn) -> Next {
        let mut moved = false;
        loop {
            let up = self.call_request(key, c);
            if let Round::Ended(next) = up {
                return next;
            }
            let down = self.call_response(key, c);
            match (up, down) {
                (_, Round::Ended(next)) => return next,
                (Round::Idle, Round::Idle) => break,
                _ => moved = true,
            }
        }
        // A long body is not cut off while it flows: the timeout counts from the last bytes
        // that moved, not from the start of the call.
        let flowing = c.hs.as_ref().and_then(|h| h.call.as_ref());
        if moved && let Some(t) = flowing.map(|call| call.timeout) {
            self.set_timeout(key, c, t);
        }
        self.call_done(key, c)
    }

    /// Client to backend: the request body, up to its end.
    fn call_request(&mut self, key: usize, c: &mut Conn) -> Round {
        let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
            return Round::Ended(Next::Stay);
        };
        let mut moved = false;
        if !call.request.done()
            && c.up.out < c.up.end
            && let Some(id) = &c.up.buf
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
                        return Round::Ended(self.respond(key, c, 400, e.reason(), &[]));
                    }
                    return Round::Ended(Next::Finish);
                }
            }
        }
        if c.up.pending_out() && (c.flags & flag::BACKEND_WRITABLE != 0) && !call.request_broken {
            let Some(b) = c.backend.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            match write_out(&mut self.pool, &mut c.up, b) {
                Io::Progress | Io::Drained => moved = true,
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
                Io::Drained => {
                    moved = true;
                    flag::drained(&mut c.flags, flag::CLIENT_READABLE);
                }
                Io::Blocked => c.flags &= !flag::CLIENT_READABLE,
                // Full: the backend has not taken what is buffered yet.
                Io::Full => {}
                Io::Eof | Io::Error(_) => {
                    log::debug!("client {} left in the middle of its request", c.peer);
                    return Round::Ended(Next::Finish);
                }
            }
        }
        if moved { Round::Moved } else { Round::Idle }
    }

    /// Backend to client: the answer's head, rewritten, then its body.
    fn call_response(&mut self, key: usize, c: &mut Conn) -> Round {
        let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
            return Round::Ended(Next::Stay);
        };
        let mut moved = false;
        if (c.flags & flag::BACKEND_READABLE != 0) && !call.response_done() {
            let Some(b) = c.backend.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            // Room for the rewritten head in front of the body bytes read with it.
            let reserve = if call.response.is_none() {
                ANSWER_ROOM
            } else {
                0
            };
            match read_leaving(&mut self.pool, &mut c.down, b, reserve) {
                Io::Progress => moved = true,
                Io::Drained => {
                    moved = true;
                    flag::drained(&mut c.flags, flag::BACKEND_READABLE);
                }
                Io::Blocked => c.flags &= !flag::BACKEND_READABLE,
                Io::Full if call.response.is_none() => {
                    log::warn!("backend answer head too large");
                    return Round::Ended(self.backend_failed(
                        key,
                        c,
                        502,
                        "Invalid response from backend",
                    ));
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
                        return Round::Ended(self.backend_failed(
                            key,
                            c,
                            502,
                            "Invalid response from backend",
                        ));
                    }
                    if !whole {
                        log::warn!("backend closed the connection in the middle of its answer");
                        return Round::Ended(Next::Finish);
                    }
                }
                Io::Error(e) => {
                    if call.response.is_none() {
                        log::warn!("backend for client {}: {e}", c.peer);
                        let why = "Invalid response from backend";
                        return Round::Ended(self.backend_failed(key, c, 502, why));
                    }
                    return Round::Ended(Next::Finish);
                }
            }
        }
        loop {
            let Some(hs) = c.hs.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            let Some(call) = hs.call.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            if call.response.is_some() {
                break;
            }
            let Some(id) = &c.down.buf else { break };
            // Bytes before `out` are heads already rewritten (an interim 100 Continue).
            let (start, end) = (c.down.out as usize, c.down.end as usize);
            let buf = self.pool.get(id);
            let (resp, used) = match parse_response_more(&buf[start..end], hs.answer_seen as usize)
            {
                Ok(None) => {
                    hs.answer_seen = (end - start) as u32;
                    break;
                }
                Ok(Some(x)) => {
                    // The next head (after an interim answer) starts after this one.
                    hs.answer_seen = 0;
                    x
                }
                Err(e) => {
                    log::warn!("backend answered with a malformed head: {e}");
                    return Round::Ended(self.backend_failed(
                        key,
                        c,
                        502,
                        "Invalid response from backend",
                    ));
                }
            };
            let status = resp.status();
            // The request did not ask to switch protocols: what follows a 101 is not HTTP,
            // and no answer to the call will come.
            if status == 101 {
                log::warn!("backend answered a plain call with 101 Switching Protocols");
                drop(resp);
                return Round::Ended(self.backend_failed(
                    key,
                    c,
                    502,
                    "Invalid response from backend",
                ));
            }
            let informational = status < 200;
            if status >= 400 && call.stop_on.operation {
                drop(resp);
                let why = "The backend reported an error";
                return Round::Ended(self.recover(key, c, "OperationError", status, why));
            }
            if !informational && let Some(location) = redirect_to(c, &resp) {
                drop(resp);
                return Round::Ended(self.follow_redirect(key, c, &location, status == 303));
            }
            let Some(hs) = c.hs.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            let Some(call) = hs.call.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            // How the backend's body ends, from what it was asked and answered.
            let framing = if call.head_only || informational {
                Ok(BodyFraming::None)
            } else {
                resp.body_framing()
            };
            let framing = match framing {
                Ok(f) => f,
                Err(e) => {
                    log::warn!("backend answer: {e}");
                    return Round::Ended(self.backend_failed(
                        key,
                        c,
                        502,
                        "Invalid response from backend",
                    ));
                }
            };
            if !informational {
                call.backend_keep = call.persistent && resp.keeps_connection(framing);
            }
            let client = answer::Client {
                head: hs.head.method().eq_ignore_ascii_case("HEAD"),
                minor: hs.head.minor_version(),
            };
            let coded = resp.headers("transfer-encoding").next().is_some();
            // Policies that follow the invoke see the answer as `message` and may change its
            // status and headers, or replace it with an error.
            let edited = if informational || call.resume.is_none() {
                None
            } else {
                match self.after_invoke(key, c, &resp) {
                    Ok(edited) => Some(edited),
                    Err(next) => return Round::Ended(next),
                }
            };
            let Some(hs) = c.hs.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            let Some(call) = hs.call.as_mut() else {
                return Round::Ended(Next::Stay);
            };
            // What the client gets follows the status the flow left.
            let status = edited.as_ref().map_or(status, |e| e.status);
            let Some(to_client) = answer::for_client(client, status, framing, coded) else {
                drop(resp);
                log::warn!("backend answer has a transfer coding an HTTP/1.0 client cannot take");
                return Round::Ended(self.backend_failed(
                    key,
                    c,
                    502,
                    "Invalid response from backend",
                ));
            };
            call.keep_alive &= !to_client.close;
            let mut head = Vec::with_capacity(used + 128);
            // HTTP/1.0 has no interim answers (RFC 9110 §15.2): the client does not see it.
            if !informational || client.minor >= 1 {
                let (reason, own, theirs) = match &edited {
                    Some(e) => (e.reason.as_str(), Some(&e.headers), None),
                    None => (resp.reason(), None, Some(end_to_end(&resp))),
                };
                let own = own.into_iter().flatten();
                let answer = Answer {
                    status,
                    reason,
                    headers: own
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .chain(theirs.into_iter().flatten()),
                };
                client_head(
                    &mut head,
                    answer,
                    to_client,
                    &hs.txn,
                    &hs.reply_headers,
                    call.keep_alive,
                );
            }
            drop(resp);
            if !head.is_empty() {
                super::activity::head_out(&mut c.activity, &head, self.now);
            }
            if !splice_head(&mut self.pool, &mut c.down, start, used, &head) {
                return Round::Ended(self.backend_failed(
                    key,
                    c,
                    502,
                    "Invalid response from backend",
                ));
            }
            moved = true;
            let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
                return Round::Ended(Next::Stay);
            };
            if !informational {
                // A body the client does not get and that only a close would end is not
                // waited for: the backend connection goes, the client's may stay.
                let framing = match (to_client.pass, framing) {
                    (Pass::Drop, BodyFraming::UntilClose) => BodyFraming::None,
                    _ => framing,
                };
                call.response = Some(Body::new(framing));
                call.pass = to_client.pass;
            }
        }
        let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) else {
            return Round::Ended(Next::Stay);
        };
        if let Some(body) = call.response.as_mut()
            && c.down.out < c.down.end
            && let Some(id) = &c.down.buf
        {
            let bytes = &mut self.pool.get(id)[c.down.out as usize..c.down.end as usize];
            let fed = match call.pass {
                Pass::AsIs => body.feed(bytes).map(|n| (n, n)),
                Pass::Drop => body.feed(bytes).map(|n| (n, 0)),
                Pass::Dechunk => body.feed_decoded(bytes),
            };
            match fed {
                Ok((taken, kept)) => {
                    c.down.out += kept as u32;
                    super::activity::count_out(&mut c.activity, kept);
                    // Whatever the backend sent after its answer belongs to nothing, and
                    // makes its connection unfit for another call.
                    if taken < bytes.len() {
                        call.backend_keep = false;
                    }
                    // What is not for the client goes with what followed the answer.
                    c.down.end = c.down.out;
                }
                Err(e) => {
                    log::warn!("backend answer body: {}", e.reason());
                    return Round::Ended(Next::Finish);
                }
            }
        }
        if c.down.pending_out() && (c.flags & flag::CLIENT_WRITABLE != 0) {
            match write_out(&mut self.pool, &mut c.down, &mut c.client) {
                Io::Progress => moved = true,
                Io::Blocked => c.flags &= !flag::CLIENT_WRITABLE,
                _ => {
                    return Round::Ended(Next::Finish);
                }
            }
        }
        if moved { Round::Moved } else { Round::Idle }
    }

    /// Runs the policies after the invoke on its answer `resp`. Returns the answer head the flow
    /// made, or `None` when the flow raised an error and the client has been answered with it.
    /// Count limits the flow takes are held until the call ends; the headers of the limits it
    /// checked go to the client.
    fn after_invoke(
        &mut self,
        key: usize,
        c: &mut Conn,
        resp: &ResponseHead,
    ) -> Result<Edited, Next> {
        let at =
            c.hs.as_ref()
                .and_then(|h| h.call.as_ref())
                .map(|call| call.at.clone());
        let Some(at) = at else {
            return Err(Next::Stay);
        };
        let status = resp.status();
        let outcome = self.in_flow(c, |assembly, vars, lim| {
            vars.answer(status, resp.reason(), end_to_end(resp));
            match assembly::after_invoke(assembly, &at, vars, lim) {
                Some(raised) => Err(raised),
                None => {
                    // A final status only: the body that follows was framed for one.
                    let status = match vars.status {
                        Some(s) if (200..=599).contains(&s) => s,
                        Some(s) => {
                            log::warn!(
                                "message.status.code {s} is not a final status; kept {status}"
                            );
                            status
                        }
                        None => status,
                    };
                    // A reason the flow set goes out only if it is a valid reason phrase.
                    let phrase = |r: &str| {
                        r.bytes()
                            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
                    };
                    let reason = match vars.get("message.status.reason") {
                        Some(r) if status == resp.status() && phrase(&r) => r.into_owned(),
                        _ => reason(status).to_string(),
                    };
                    // The body is relayed as the backend framed it, whatever the flow set.
                    let framing = |n: &str| {
                        n.eq_ignore_ascii_case("content-length")
                            || n.eq_ignore_ascii_case("transfer-encoding")
                    };
                    let headers = vars
                        .answer_headers()
                        .filter(|(n, _)| !framing(n))
                        .chain(resp.headers_iter().filter(|(n, _)| framing(n)))
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                    Ok(Edited {
                        status,
                        reason,
                        headers,
                    })
                }
            }
        });
        let Some((result, mut held, checked)) = outcome else {
            // The caller is gone from the config: the answer passes as it came.
            return Ok(Edited {
                status,
                reason: resp.reason().to_string(),
                headers: end_to_end(resp)
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            });
        };
        if !held.is_empty() {
            let limits = c.limits.get_or_insert_with(Default::default);
            for (slot, w) in held.take_all() {
                limits.held.push(slot, w);
            }
        }
        if let Some(hs) = c.hs.as_mut() {
            hs.reply_headers.extend(preflow::limit_headers(&checked));
        }
        match result {
            Ok(edited) => Ok(edited),
            Err(raised) => {
                log::debug!(
                    "{} after the invoke for client {}: {}",
                    raised.name,
                    c.peer,
                    raised.status
                );
                // The backend's answer is not wanted any more, nor its connection.
                if let Some(mut b) = c.backend.take() {
                    let _ = self.registry.deregister(&mut b);
                }
                Err(self.respond(key, c, raised.status, &raised.message, &[]))
            }
        }
    }

    /// Sends the call again to `location`; after a 303 as a GET without a body.
    fn follow_redirect(
        &mut self,
        key: usize,
        c: &mut Conn,
        location: &str,
        see_other: bool,
    ) -> Next {
        if let Some(next) = self.retarget(key, c, location) {
            return next;
        }
        let port = super::head::listener_port(self, c);
        let model = c.model.clone();
        let api = &model.apis[c.api as usize];
        let (secure, peer) = (c.has(flag::SECURE), c.peer);
        let Some(hs) = c.hs.as_mut() else {
            return Next::Stay;
        };
        let Some(call) = hs.call.as_mut() else {
            return Next::Stay;
        };
        let Some(invoke) = assembly::invoke_at(&api.assembly, &call.at) else {
            return Next::Stay;
        };
        let method = invoke.verb.as_deref().unwrap_or(hs.head.method());
        let method = if see_other && !method.eq_ignore_ascii_case("HEAD") {
            "GET"
        } else {
            method
        }
        .to_string();
        call.response = None;
        call.backend_eof = false;
        call.request_broken = false;
        let timeout = call.timeout;
        let plain = PlainRequest {
            method: &method,
            framing: BodyFraming::None,
            persistent: call.persistent,
        };
        build_backend_request(hs, api, &invoke.backend, secure, peer, port, Some(plain));
        hs.deadline = self.now + timeout;
        c.phase = Phase::Resolving;
        self.set_timeout(key, c, timeout);
        self.start_connect(key, c)
    }

    /// A call on a reused connection that failed before any of the answer came: the backend
    /// closed the connection while it was parked. A request that can be sent again safely
    /// (its method as sent is idempotent, and it has no body) goes again on a new connection.
    /// What that led to, when it did.
    pub(super) fn retry_fresh(&mut self, key: usize, c: &mut Conn) -> Option<Next> {
        let hs = c.hs.as_mut()?;
        let call = hs.call.as_mut()?;
        // The backend got the method of our request line (the invoke's `verb`, or GET after
        // a 303), not necessarily the client's.
        let idempotent = matches!(
            sent_method(&hs.request),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        );
        let bodiless = matches!(hs.head.body_framing(), Ok(BodyFraming::None));
        let nothing_came = call.response.is_none() && c.down.is_empty();
        if !(call.reused && !call.retried && nothing_came && idempotent && bodiless) {
            return None;
        }
        log::debug!("a kept backend connection failed before answering; trying a new one");
        call.reused = false;
        call.retried = true;
        call.backend_eof = false;
        call.request_broken = false;
        hs.written = 0;
        hs.addrs = Default::default();
        self.drop_backend(c);
        c.phase = Phase::Resolving;
        Some(self.start_connect(key, c))
    }

    /// Ends the call once the answer is out and the request body is through: the backend
    /// connection closes, counts come back, and the client sends its next request or goes.
    fn call_done(&mut self, key: usize, c: &mut Conn) -> Next {
        let Some(call) = c.hs.as_ref().and_then(|h| h.call.as_ref()) else {
            return Next::Stay;
        };
        let request_over = call.request.done() || call.request_broken;
        if !(call.response_done() && request_over && c.down.is_empty()) {
            return Next::Stay;
        }
        let keep_alive = call.keep_alive && call.request.done();
        // The backend connection can carry another call when both messages went through
        // whole and neither side asked to close.
        let reusable = call.backend_keep
            && call.request.done()
            && !call.request_broken
            && !call.backend_eof
            && !c.up.pending_out();
        let origin =
            c.hs.as_ref()
                .filter(|_| reusable)
                .map(|hs| keepalive::origin(hs));
        if let Some(mut b) = c.backend.take() {
            match origin {
                Some(origin) => self.park(origin, b),
                None => {
                    let _ = self.registry.deregister(&mut b);
                }
            }
        }
        c.clear(flag::BACKEND_READABLE | flag::BACKEND_WRITABLE | flag::BACKEND_EOF);
        c.hs = None;
        self.call_ended(c);
        self.release_limits(c);
        if !keep_alive {
            // Nothing more is read as a request: answer done, close as after an error.
            c.up.head = c.up.end;
            super::relay::release_if_empty(&mut self.pool, &mut c.up);
            c.phase = Phase::Respond;
            let grace = self.model.settings.bounds.close_grace;
            self.set_timeout(key, c, grace);
            return self.drive_respond(key, c);
        }
        c.phase = Phase::Head;
        // What follows the request in the buffer is the start of the next one.
        c.up.head = c.up.out;
        super::relay::release_if_empty(&mut self.pool, &mut c.up);
        let t = self.model.settings.bounds.header_timeout;
        self.set_timeout(key, c, t);
        self.read_head(key, c)
    }
}

/// Where to go instead, when `resp` is a redirect the invoke follows (`follow-redirects`,
/// at most [`MAX_REDIRECTS`] times). Only a request without a body is sent again, since the
/// body was streamed and is not kept; a 303 is followed once the body is through, as a GET.
fn redirect_to(c: &Conn, resp: &ResponseHead) -> Option<String> {
    let hs = c.hs.as_ref()?;
    let call = hs.call.as_ref()?;
    let status = resp.status();
    if !matches!(status, 301 | 302 | 303 | 307 | 308) || hs.redirects >= MAX_REDIRECTS {
        return None;
    }
    let invoke = assembly::invoke_at(&c.model.apis[c.api as usize].assembly, &call.at)?;
    if !invoke.backend.follow_redirects {
        return None;
    }
    let bodiless = matches!(hs.head.body_framing(), Ok(BodyFraming::None));
    if !(bodiless || status == 303 && call.request.done()) {
        return None;
    }
    let location = resp.header("location").filter(|l| !l.is_empty())?;
    Some(location.to_string())
}

/// The method of a request written for the backend: its request line's first word.
fn sent_method(request: &[u8]) -> &[u8] {
    request.split(|&b| b == b' ').next().unwrap_or_default()
}

/// An answer head as the policies after the invoke left it.
struct Edited {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

/// An answer head as it goes to the client.
struct Answer<'a, H> {
    status: u16,
    reason: &'a str,
    /// End-to-end headers: those of the backend connection are already gone.
    headers: H,
}

/// The backend answer's headers that are meant for the client: all but those that concern only
/// the connection to the backend, and its own transaction id.
fn end_to_end(resp: &ResponseHead) -> impl Iterator<Item = (&str, &str)> {
    resp.headers_iter().filter(|(name, _)| {
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        !(is("connection")
            || is("keep-alive")
            || is("proxy-connection")
            || is("upgrade")
            || is("te")
            || is("proxy-authenticate")
            || is("proxy-authentication-info")
            || is("x-global-transaction-id")
            || resp.has_token("connection", name))
    })
}

/// The client's copy of a backend answer head, plus the transaction id, the gateway's own
/// headers (limits, CORS) and `Connection: close` when the client connection ends after it.
fn client_head<'a>(
    out: &mut Vec<u8>,
    answer: Answer<'a, impl Iterator<Item = (&'a str, &'a str)>>,
    framing: ClientFraming,
    txn: &str,
    extra: &[(String, String)],
    keep_alive: bool,
) {
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", answer.status, answer.reason).as_bytes());
    for (name, value) in answer.headers {
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        // Only the framing the client's body really has (RFC 9112 §6.3: never both).
        if is("content-length") && !framing.content_length
            || (is("transfer-encoding") || is("trailer")) && !framing.transfer_encoding
        {
            continue;
        }
        write_header(out, name, value);
    }
    if answer.status >= 200 {
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
