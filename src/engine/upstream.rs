//! The backend side of the handshake: resolve, connect, send our upgrade request, check the
//! answer. Only after the backend's 101 does the client get its own 101.

use super::conn::{Conn, Phase, flag};
use super::cx::{Cx, Next};
use super::metrics::{BackendError, Failure};
use super::relay::{Io, read_leaving, read_once, splice_head, write_out};
use super::resolve::Attempts;
use super::stream::{Stream, TlsError};
use crate::http::head::{ANSWER_ROOM, HeadError, parse_response_more};
use crate::model::Model;
use crate::ws::frame::{Decoder, Role};
use crate::ws::handshake::{self, BackendAnswer};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed at most during one handshake.
pub(super) const MAX_REDIRECTS: u8 = 5;

impl Cx {
    pub(super) fn start_connect(&mut self, key: usize, c: &mut Conn) -> Next {
        let Some(hs) = c.hs.as_ref() else {
            return Next::Stay;
        };
        // A plain call goes on a connection an earlier call to the same origin left open.
        if let Some(call) = hs.call.as_ref()
            && call.persistent
            && !call.retried
        {
            let origin = super::keepalive::origin(hs);
            if let Some(stream) = self.unpark(key, &origin) {
                c.backend = Some(stream);
                c.clear(flag::BACKEND_READABLE | flag::BACKEND_EOF);
                c.set(flag::BACKEND_WRITABLE);
                c.phase = Phase::Connecting;
                if let Some(call) = c.hs.as_mut().and_then(|h| h.call.as_mut()) {
                    call.reused = true;
                }
                return self.drive_upstream(key, c);
            }
        }
        let (host, port) = (hs.target.host.clone(), hs.target.port);
        match self.resolver.lookup(&host, port, key, c.epoch, self.now) {
            Some(addrs) => self.connect(key, c, addrs),
            None => {
                c.phase = Phase::Resolving;
                Next::Stay
            }
        }
    }

    /// The resolver answered for the backend name that connection `key` waits for.
    pub(super) fn resolved(
        &mut self,
        key: usize,
        c: &mut Conn,
        result: Result<Vec<SocketAddr>, String>,
    ) -> Next {
        match result {
            Ok(addrs) => self.connect(key, c, addrs),
            Err(e) => {
                log::warn!("backend name did not resolve: {e}");
                self.metrics.backend_error(BackendError::Resolve);
                self.backend_failed(key, c, 500, "Could not connect to endpoint")
            }
        }
    }

    /// Connects to the first of `addrs` that takes the connection.
    fn connect(&mut self, key: usize, c: &mut Conn, addrs: Vec<SocketAddr>) -> Next {
        let Some(hs) = c.hs.as_mut() else {
            return Next::Stay;
        };
        hs.addrs = Attempts::new(addrs, hs.deadline);
        self.connect_next(key, c)
    }

    /// The backend address tried so far did not connect (refused, unreachable, or out of its
    /// share of the timeout) before anything was sent: the next one gets its turn. False when
    /// none is left, the policy's timeout is spent, or the request had started to go out; else
    /// what the next attempt led to.
    pub(super) fn try_next_address(&mut self, key: usize, c: &mut Conn) -> Option<Next> {
        let hs = c.hs.as_ref()?;
        if hs.written > 0 || !hs.addrs.has_more() || self.now >= hs.deadline {
            return None;
        }
        log::info!("trying the next address of backend {}", hs.target.host);
        self.drop_backend(c);
        Some(self.connect_next(key, c))
    }

    fn connect_next(&mut self, key: usize, c: &mut Conn) -> Next {
        loop {
            let Some(hs) = c.hs.as_mut() else {
                return Next::Stay;
            };
            let Some((addr, budget)) = hs.addrs.next(self.now) else {
                log::warn!(
                    "no address of backend {} took the connection",
                    hs.target.host
                );
                self.metrics.backend_error(BackendError::Connect);
                return self.backend_failed(key, c, 500, "Could not connect to endpoint");
            };
            match TcpStream::connect(addr) {
                Ok(tcp) => return self.connect_with(key, c, tcp, budget),
                Err(e) => log::warn!("connect to backend {addr} failed: {e}"),
            }
        }
    }

    /// Sets up the backend connection `tcp` is starting; it has `budget` to connect.
    fn connect_with(&mut self, key: usize, c: &mut Conn, tcp: TcpStream, budget: Duration) -> Next {
        self.set_timeout(key, c, budget);
        let Some(hs) = c.hs.as_mut() else {
            return Next::Stay;
        };
        let _ = tcp.set_nodelay(true);
        super::stream::cap_kernel_buffers(&tcp, c.model.settings.bounds.socket_buffer);
        let mut stream = if hs.target.tls() {
            let (config, insecure) = backend_tls(&c.model, hs.tls_profile, hs.other_origin);
            if insecure {
                log::warn!(
                    "TLS to backend {}: certificate NOT verified (insecure-skip-verify)",
                    hs.target.host
                );
            }
            match Stream::client(tcp, &config, &hs.target.host) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("TLS to backend {}: {e}", hs.target.host);
                    self.metrics.backend_error(BackendError::Tls);
                    return self.backend_failed(key, c, 500, "Could not connect to endpoint");
                }
            }
        } else {
            Stream::plain(tcp)
        };
        if let Err(e) = self.registry.register(
            &mut stream,
            Token(key * 2 + 1),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot register a backend connection: {e}");
            self.metrics.backend_error(BackendError::Connect);
            return self.backend_failed(key, c, 500, "Could not connect to endpoint");
        }
        c.backend = Some(stream);
        hs.backend_started = self.now;
        c.clear(flag::BACKEND_READABLE | flag::BACKEND_WRITABLE | flag::BACKEND_EOF);
        c.phase = Phase::Connecting;
        Next::Stay
    }

    pub(super) fn drive_upstream(&mut self, key: usize, c: &mut Conn) -> Next {
        if c.phase == Phase::Connecting {
            if !c.has(flag::BACKEND_WRITABLE) {
                return Next::Stay;
            }
            let Some(b) = c.backend.as_mut() else {
                return Next::Stay;
            };
            // A writable event means the connect finished, one way or the other.
            match b.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.connect_failed(key, c, e),
            }
            match b.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                    c.clear(flag::BACKEND_WRITABLE);
                    return Next::Stay;
                }
                Err(e) => return self.connect_failed(key, c, e),
            }
            // Connected: the rest of the policy's timeout applies again, not the address's share.
            let Some(deadline) = c.hs.as_ref().map(|h| h.deadline) else {
                return Next::Stay;
            };
            self.set_timeout(key, c, deadline.saturating_duration_since(self.now));
            let Some(b) = c.backend.as_mut() else {
                return Next::Stay;
            };
            let Some(hs) = c.hs.as_mut() else {
                return Next::Stay;
            };
            while hs.written < hs.request.len() {
                match b.write(&hs.request[hs.written..]) {
                    Ok(n) => hs.written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        c.clear(flag::BACKEND_WRITABLE);
                        return Next::Stay;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return self.connect_failed(key, c, e),
                }
            }
            if hs.call.is_some() {
                // The request body follows its head while the answer is awaited.
                c.phase = Phase::Call;
                return self.drive_call(key, c);
            }
            c.phase = Phase::BackendHead;
        }
        if c.phase == Phase::BackendHead {
            return self.read_backend_head(key, c);
        }
        Next::Stay
    }

    fn connect_failed(&mut self, key: usize, c: &mut Conn, e: std::io::Error) -> Next {
        let target =
            c.hs.as_ref()
                .map(|h| format!("{}:{}", h.target.host, h.target.port))
                .unwrap_or_default();
        log::warn!("backend {target} for client {}: {e}", c.peer);
        // A backend that answers but fails TLS (its certificate does not verify, or the
        // handshake breaks) is reached but unusable: a bad gateway rather than unreachable.
        let tls = e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<TlsError>().is_some());
        if !tls && let Some(next) = self.try_next_address(key, c) {
            return next;
        }
        self.metrics.backend_error(if tls {
            BackendError::Tls
        } else {
            BackendError::Connect
        });
        if tls {
            self.backend_failed(key, c, 502, "TLS handshake with the backend failed")
        } else {
            self.backend_failed(key, c, 500, "Could not connect to endpoint")
        }
    }

    fn read_backend_head(&mut self, key: usize, c: &mut Conn) -> Next {
        loop {
            if !c.has(flag::BACKEND_READABLE) {
                return Next::Stay;
            }
            let Some(b) = c.backend.as_mut() else {
                return Next::Stay;
            };
            match read_leaving(&mut self.pool, &mut c.down, b, ANSWER_ROOM) {
                Io::Blocked => {
                    c.clear(flag::BACKEND_READABLE);
                    return Next::Stay;
                }
                Io::Eof => {
                    log::warn!("backend closed the connection before answering the upgrade");
                    self.metrics.backend_error(BackendError::InvalidResponse);
                    return self.respond(key, c, 502, "Invalid response from backend", &[]);
                }
                Io::Error(e) => return self.connect_failed(key, c, e),
                Io::Full => {
                    log::warn!("backend answer head too large");
                    self.metrics.backend_error(BackendError::InvalidResponse);
                    return self.respond(key, c, 502, "Invalid response from backend", &[]);
                }
                Io::Progress => {}
                Io::Drained => flag::drained(&mut c.flags, flag::BACKEND_READABLE),
            }
            let Some(id) = &c.down.buf else {
                return Next::Stay;
            };
            let (start, end) = (c.down.head as usize, c.down.end as usize);
            let seen = c.hs.as_ref().map_or(0, |h| h.answer_seen as usize);
            let parsed = parse_response_more(&self.pool.get(id)[start..end], seen);
            let (resp, used) = match parsed {
                Ok(None) => {
                    if let Some(hs) = c.hs.as_mut() {
                        hs.answer_seen = (end - start) as u32;
                    }
                    continue;
                }
                Ok(Some(x)) => x,
                Err(HeadError::TooLarge) | Err(HeadError::Malformed(_)) => {
                    log::warn!("backend answered the upgrade with a malformed head");
                    self.metrics.backend_error(BackendError::InvalidResponse);
                    return self.respond(key, c, 502, "Invalid response from backend", &[]);
                }
            };
            let Some(hs) = c.hs.as_mut() else {
                return Next::Stay;
            };
            let Some(upgrade) = hs.upgrade.as_ref() else {
                return Next::Stay;
            };
            let checked = handshake::check_backend_response(
                &resp,
                &hs.key,
                upgrade.protocols.as_deref(),
                upgrade.extensions.as_deref(),
            );
            match checked {
                Ok(neg) => {
                    let mut reply = Vec::with_capacity(256);
                    let extra: Vec<(&str, &str)> = hs
                        .reply_headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    handshake::client_101(&mut reply, &upgrade.key, &neg, &hs.txn, &extra);
                    let max = self.model.settings.bounds.max_message_size;
                    c.up.dec = Decoder::new(Role::Client, neg.deflate(), max);
                    c.down.dec = Decoder::new(Role::Server, neg.deflate(), max);
                    // The backend's bytes after its head are frames: they follow our 101.
                    if !splice_head(&mut self.pool, &mut c.down, start, used, &reply) {
                        self.metrics.backend_error(BackendError::InvalidResponse);
                        return self.respond(key, c, 502, "Invalid response from backend", &[]);
                    }
                    let now = self.now;
                    super::activity::own_head_out(&mut c.activity, 101, &hs.txn, &reply, now);
                    c.flags &= !flag::UPGRADE_ASKED;
                    let took = self.now.saturating_duration_since(hs.backend_started);
                    c.metrics_row = self.metrics.upgraded(&c.model, c.api, c.listener, took);
                    c.hs = None;
                    c.phase = Phase::Open;
                    self.stats.upgraded += 1;
                    let idle = self.model.settings.bounds.idle_timeout;
                    self.set_timeout(key, c, idle);
                    return self.drive_relay(key, c);
                }
                Err(BackendAnswer::NotUpgraded) => {
                    let status = resp.status();
                    let wsu = {
                        let api = &c.model.apis[c.api as usize];
                        super::head::nth_upgrade(&api.assembly.execute, c.wsu)
                            .map(|w| w.backend.follow_redirects)
                    };
                    if wsu == Some(true)
                        && hs.redirects < MAX_REDIRECTS
                        && let Some(loc) = crate::http::forward::redirect_location(&resp)
                    {
                        let loc = loc.to_string();
                        return self.redirect(key, c, &loc);
                    }
                    log::info!("backend refused the upgrade with status {status}");
                    // The transaction ends with this answer: counts come back now, not when the
                    // client hangs up.
                    self.release_limits(c);
                    let Some(hs) = c.hs.as_mut() else {
                        return Next::Stay;
                    };
                    hs.refused_left = resp
                        .header("content-length")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|len| len.saturating_sub((end - start - used) as u64))
                        .unwrap_or(u64::MAX);
                    // Relay the backend's answer as it came: head and the body bytes so far.
                    c.down.out = c.down.end;
                    c.phase = Phase::Refused;
                    c.flags &= !flag::UPGRADE_ASKED;
                    self.metrics.upgrade_failed(Failure::BackendRefused);
                    if let Some(r) = c.activity.as_deref_mut()
                        && let Some(id) = &c.down.buf
                    {
                        let head = &self.pool.get(id)[start..start + used];
                        r.response_head(head, self.now);
                        r.set_txn(&hs.txn);
                        r.bytes_out += (end - start) as u64;
                    }
                    return self.drive_refused(key, c);
                }
                Err(BackendAnswer::Invalid(why)) => {
                    log::warn!("backend's upgrade answer is not valid: {why}");
                    self.metrics.backend_error(BackendError::InvalidResponse);
                    return self.respond(key, c, 502, "Invalid response from backend", &[]);
                }
            }
        }
    }

    /// Follows a websocket-upgrade's redirect: the same upgrade request to the new target.
    fn redirect(&mut self, key: usize, c: &mut Conn, location: &str) -> Next {
        if let Some(next) = self.retarget(key, c, location) {
            return next;
        }
        let model = c.model.clone();
        let api = &model.apis[c.api as usize];
        let Some(wsu) = super::head::nth_upgrade(&api.assembly.execute, c.wsu) else {
            return Next::Stay;
        };
        let (secure, peer) = (c.has(flag::SECURE), c.peer);
        let port = super::head::listener_port(self, c);
        let Some(hs) = c.hs.as_mut() else {
            return Next::Stay;
        };
        super::head::build_backend_request(hs, api, &wsu.backend, secure, peer, port, None);
        self.start_connect(key, c)
    }

    /// Points the connection's backend exchange at a redirect's `location` (absolute, or
    /// relative to the current target) and drops the backend connection and whatever it sent.
    /// The caller writes the new request and connects. A location that is not usable, or that
    /// leaves TLS for plain text, is refused with a 502: then what answering led to.
    pub(super) fn retarget(&mut self, key: usize, c: &mut Conn, location: &str) -> Option<Next> {
        let Some(hs) = c.hs.as_mut() else {
            return Some(Next::Stay);
        };
        let target = match hs.target.follow(location) {
            Ok(t) => t,
            Err(why) => {
                log::warn!("backend redirected to an unusable location: {why}");
                self.metrics.backend_error(BackendError::InvalidResponse);
                let why = "Invalid redirect location from backend";
                return Some(self.backend_failed(key, c, 502, why));
            }
        };
        // What went encrypted must not go again in clear text, to anyone.
        if hs.target.tls() && !target.tls() {
            log::warn!("backend redirected from {} to {target}: refused", hs.target);
            self.metrics.backend_error(BackendError::InvalidResponse);
            let why = "Redirect from TLS to plain text refused";
            return Some(self.backend_failed(key, c, 502, why));
        }
        // Once another origin, always: a later hop back does not bring the credentials back.
        if !hs.target.same_origin(&target) {
            hs.other_origin = true;
        }
        log::debug!("following a redirect to {target}");
        hs.target = target;
        hs.redirects += 1;
        hs.addrs = Default::default();
        self.drop_backend(c);
        None
    }

    /// Closes the backend connection and forgets what it sent, so that the exchange can start
    /// again on another (a redirect, a retry).
    pub(super) fn drop_backend(&mut self, c: &mut Conn) {
        if let Some(mut b) = c.backend.take() {
            let _ = self.registry.deregister(&mut b);
        }
        c.clear(flag::BACKEND_READABLE | flag::BACKEND_WRITABLE | flag::BACKEND_EOF);
        if let Some(id) = c.down.buf.take() {
            self.pool.give(id);
        }
        c.down.head = 0;
        c.down.out = 0;
        c.down.end = 0;
        if let Some(hs) = c.hs.as_mut() {
            hs.answer_seen = 0;
        }
    }

    /// Relays a backend's non-101 answer (head and a bounded body) to the client, then closes.
    pub(super) fn drive_refused(&mut self, key: usize, c: &mut Conn) -> Next {
        let bound = self.model.settings.bounds.buffer_bound as u64;
        loop {
            if c.down.pending_out() {
                if !c.has(flag::CLIENT_WRITABLE) {
                    return Next::Stay;
                }
                match write_out(&mut self.pool, &mut c.down, &mut c.client) {
                    Io::Blocked => {
                        c.clear(flag::CLIENT_WRITABLE);
                        return Next::Stay;
                    }
                    Io::Error(_) | Io::Eof => return Next::Finish,
                    _ => {}
                }
                continue;
            }
            let left = c.hs.as_ref().map_or(0, |h| h.refused_left);
            if left == 0 || c.has(flag::BACKEND_EOF) {
                break;
            }
            if !c.has(flag::BACKEND_READABLE) {
                return Next::Stay;
            }
            let Some(hs) = c.hs.as_mut() else {
                return Next::Stay;
            };
            let Some(b) = c.backend.as_mut() else { break };
            let before = c.down.end;
            match read_once(&mut self.pool, &mut c.down, b) {
                Io::Blocked => {
                    c.clear(flag::BACKEND_READABLE);
                    return Next::Stay;
                }
                io @ (Io::Progress | Io::Drained) => {
                    if matches!(io, Io::Drained) {
                        flag::drained(&mut c.flags, flag::BACKEND_READABLE);
                    }
                    let got = (c.down.end - before) as u64;
                    super::activity::count_out(&mut c.activity, got as usize);
                    hs.refused_left = hs.refused_left.saturating_sub(got);
                    hs.refused_left = hs.refused_left.min(bound);
                    c.down.out = c.down.end;
                }
                _ => c.set(flag::BACKEND_EOF),
            }
        }
        // Everything relayed: close the client side gently.
        if let Some(mut b) = c.backend.take() {
            let _ = self.registry.deregister(&mut b);
        }
        c.client.shutdown_write();
        c.phase = Phase::Linger;
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, c, grace);
        self.activity_end(c);
        self.drive_respond(key, c)
    }
}

/// The TLS client settings for a backend: those of the policy's `tls-profile`, or the system
/// roots; without the profile's client certificate for `other_origin`. Also says whether
/// verification is off.
fn backend_tls(
    model: &Model,
    profile: Option<u16>,
    other_origin: bool,
) -> (Arc<rustls::ClientConfig>, bool) {
    match profile.and_then(|p| model.tls_profiles.get(p as usize)) {
        Some(p) if other_origin => (p.without_client_cert.clone(), p.insecure_skip_verify),
        Some(p) => (p.config.clone(), p.insecure_skip_verify),
        None => (crate::tls::default_client_config(), false),
    }
}
