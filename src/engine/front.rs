//! The client's request head: read it, route it, check the upgrade, and start the backend side.
//! Every refusal is a JSON answer (spec §4.3) followed by a lingering close.

use super::Gateway;
use super::conn::{Handshake, Phase, flag};
use super::relay::{Io, read_once, write_out};
use crate::http::head::{HeadError, RequestHead, parse_request};
use crate::http::response;
use crate::http::url::TargetUrl;
use crate::model::{Api, Policy, PolicyKind, WebSocketUpgrade};
use crate::route::Route;
use crate::ws::handshake::{self, UpgradeError};

impl Gateway {
    pub(super) fn read_head(&mut self, key: usize) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if !c.has(flag::CLIENT_READABLE) {
                return;
            }
            match read_once(&mut self.pool, &mut c.up, &mut c.client) {
                Io::Blocked => {
                    c.clear(flag::CLIENT_READABLE);
                    return;
                }
                Io::Eof | Io::Error(_) => {
                    self.finish(key);
                    return;
                }
                Io::Full => {
                    self.respond(key, 431, "Request header fields too large", &[]);
                    return;
                }
                Io::Progress => {}
            }
            let Some(id) = c.up.buf else { return };
            let buf = &self.pool.get(id)[c.up.head as usize..c.up.end as usize];
            match parse_request(buf) {
                Ok(None) => continue,
                Ok(Some((head, used))) => {
                    c.up.head += used as u32;
                    c.up.out = c.up.head;
                    self.on_request(key, head);
                    return;
                }
                Err(HeadError::TooLarge) => {
                    self.respond(key, 431, "Request header fields too large", &[]);
                    return;
                }
                Err(HeadError::Malformed(why)) => {
                    log::debug!("malformed request head: {why}");
                    self.respond(key, 400, why, &[]);
                    return;
                }
            }
        }
    }

    fn on_request(&mut self, key: usize, head: RequestHead) {
        let Some(c) = self.conns.get(key) else { return };
        if c.has(flag::ECHO) {
            self.echo_request(key, head);
            return;
        }
        if c.has(flag::ADMIN) {
            self.admin_request(key, head);
            return;
        }
        let model = c.model.clone();
        let secure = c.has(flag::SECURE);
        let (api_idx, _op) = match self.routes.lookup(head.path(), head.method()) {
            Route::Found { api, operation } => (api, operation),
            Route::NoApi => return self.respond(key, 404, "API not found for requested URI", &[]),
            Route::NoResource { .. } => {
                return self.respond(key, 404, "No resources match requested URI", &[]);
            }
            Route::MethodNotAllowed { .. } => {
                return self.respond(
                    key,
                    405,
                    "The method is not allowed for the requested URL.",
                    &[],
                );
            }
        };
        let api = &model.apis[api_idx as usize];
        // Spec §1.2: an API is reachable only on listeners of the schemes it declares.
        let reachable = if secure {
            api.schemes.secure()
        } else {
            api.schemes.plain()
        };
        if !reachable {
            return self.respond(key, 404, "API not found for requested URI", &[]);
        }
        let Some((n, wsu)) = first_upgrade(&api.assembly.execute) else {
            return self.respond(
                key,
                501,
                "This API's assembly has no websocket-upgrade policy; plain HTTP calls are not served yet",
                &[],
            );
        };
        if head.header("upgrade").is_none() {
            return self.respond(
                key,
                426,
                "This API accepts only WebSocket upgrade requests",
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            );
        }
        let upgrade = match handshake::validate_client(&head) {
            Ok(u) => u,
            Err(UpgradeError::Version) => {
                return self.respond(
                    key,
                    426,
                    "Unsupported WebSocket version",
                    &[("Sec-WebSocket-Version", "13")],
                );
            }
            Err(UpgradeError::BadRequest(why)) => return self.respond(key, 400, why, &[]),
        };
        let url = wsu
            .target_url
            .expand(&|name| request_variable(&head, api, secure, name));
        let target = match TargetUrl::parse(&url) {
            Ok(t) => t,
            Err(why) => {
                log::error!("api {}: target-url {url:?} is not usable: {why}", api.name);
                return self.respond(key, 500, "Invalid target-url", &[]);
            }
        };
        let txn = self.txn.next();
        let nonce = self.random16();
        let key_b64 = handshake::new_key(nonce);
        let mut hs = Box::new(Handshake {
            head,
            upgrade,
            txn,
            target,
            key: key_b64,
            request: Vec::new(),
            written: 0,
            redirects: 0,
            attempt: 0,
            refused_left: 0,
        });
        build_backend_request(
            &mut hs,
            api,
            wsu,
            secure,
            self.conns[key].peer,
            self.listener_port(key),
        );
        let c = &mut self.conns[key];
        c.api = api_idx;
        c.wsu = n;
        c.hs = Some(hs);
        c.phase = Phase::Resolving;
        let timeout = wsu.timeout;
        self.set_timeout(key, timeout);
        self.start_connect(key);
    }

    fn listener_port(&self, key: usize) -> u16 {
        let l = self.conns[key].listener as usize;
        self.listeners.get(l).map(|l| l.addr.port()).unwrap_or(0)
    }

    /// Answers the client with a JSON error and closes once it is written.
    pub(super) fn respond(&mut self, key: usize, status: u16, more: &str, extra: &[(&str, &str)]) {
        let txn = match self.conns.get(key).and_then(|c| c.hs.as_ref()) {
            Some(hs) => hs.txn.clone(),
            None => self.txn.next(),
        };
        let mut out = Vec::with_capacity(256);
        response::error(&mut out, status, more, &txn, extra);
        self.answer(key, &out);
    }

    /// Sends `bytes` as the client's final answer, then lingers and closes.
    pub(super) fn answer(&mut self, key: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase == Phase::Open {
            self.stats.upgraded -= 1;
        }
        if let Some(mut b) = c.backend.take() {
            let _ = self.poll.registry().deregister(&mut b);
        }
        // Whatever the client sent beyond its head is not needed any more.
        if let Some(id) = c.up.buf.take() {
            self.pool.give(id);
        }
        c.up.head = 0;
        c.up.out = 0;
        c.up.end = 0;
        if c.phase != Phase::Open && c.phase != Phase::Echo && c.phase != Phase::Head {
            self.stats.upgrades_failed += 1;
        }
        c.phase = Phase::Respond;
        c.down.head = 0;
        c.down.out = 0;
        c.down.end = 0;
        let id = match c.down.buf {
            Some(id) => id,
            None => {
                let id = self.pool.take();
                c.down.buf = Some(id);
                id
            }
        };
        let buf = self.pool.get(id);
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        c.down.out = n as u32;
        c.down.end = n as u32;
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, grace);
        self.drive_respond(key);
    }

    pub(super) fn drive_respond(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase == Phase::Respond {
            if c.has(flag::CLIENT_WRITABLE) {
                match write_out(&mut self.pool, &mut c.down, &mut c.client) {
                    Io::Blocked => c.clear(flag::CLIENT_WRITABLE),
                    Io::Error(_) | Io::Eof => return self.finish(key),
                    _ => {}
                }
            }
            if c.down.pending_out() {
                return;
            }
            let _ = c.client.shutdown(std::net::Shutdown::Write);
            c.phase = Phase::Linger;
        }
        // Linger: discard what the client still sends until it closes.
        let mut scratch = [0u8; 4096];
        loop {
            use std::io::Read;
            match c.client.read(&mut scratch) {
                Ok(0) => return self.finish(key),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    c.clear(flag::CLIENT_READABLE);
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return self.finish(key),
            }
        }
    }
}

/// The first `websocket-upgrade` of an execute list, with its depth-first number.
/// Switch cases are chosen by the policy engine; until then only the top level is searched.
pub(super) fn first_upgrade(execute: &[Policy]) -> Option<(u16, &WebSocketUpgrade)> {
    execute
        .iter()
        .filter_map(|p| match &p.kind {
            PolicyKind::WebSocketUpgrade(w) => Some(&**w),
            _ => None,
        })
        .next()
        .map(|w| (0, w))
}

/// The context variables a `target-url` may refer to (spec §1.7).
fn request_variable(head: &RequestHead, api: &Api, secure: bool, name: &str) -> Option<String> {
    Some(match name {
        "request.path" => head.path().to_string(),
        "request.search" => head.query().map(|q| format!("?{q}")).unwrap_or_default(),
        "request.querystring" => head.query().unwrap_or("").to_string(),
        "request.verb" => head.method().to_string(),
        "request.uri" => {
            let scheme = if secure { "https" } else { "http" };
            format!(
                "{scheme}://{}{}",
                head.header("host").unwrap_or(""),
                head.target()
            )
        }
        "api.root" => api.base_path.clone(),
        "api.name" => api.name.clone(),
        "api.version" => api.version.clone(),
        _ => {
            if let Some(h) = name.strip_prefix("request.headers.") {
                return head.header(h).map(str::to_string);
            }
            return None;
        }
    })
}

pub(super) fn build_backend_request(
    hs: &mut Handshake,
    api: &Api,
    wsu: &WebSocketUpgrade,
    secure: bool,
    peer: std::net::SocketAddr,
    port: u16,
) {
    let strip: Vec<&str> = api
        .security
        .requirements
        .iter()
        .flat_map(|r| [r.client_id.as_ref(), r.client_secret.as_ref()])
        .flatten()
        .map(|k| k.name.as_str())
        .collect();
    let req = handshake::BackendRequest {
        client: &hs.head,
        target: &hs.target,
        client_query: hs.head.query(),
        header_control: &wsu.header_control,
        parameter_control: &wsu.parameter_control,
        key: &hs.key,
        inject_proxy_headers: wsu.inject_proxy_headers,
        client_ip: peer.ip(),
        original_host: hs.head.header("host"),
        listener_port: port,
        proto: if secure { "https" } else { "http" },
        credentials: match (&wsu.username, &wsu.password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
            (Some(u), None) => Some((u.as_str(), "")),
            _ => None,
        },
        strip: &strip,
    };
    hs.request.clear();
    handshake::backend_request(&mut hs.request, &req);
    hs.written = 0;
}
