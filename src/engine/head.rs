//! The client's request head: read it, route it, check the upgrade, and start the backend side.
//! Every refusal is an answer of the gateway's own (see [`super::answer`]).

use super::conn::{Call, Conn, ConnLimits, Handshake, MessageLimit, Phase, flag};
use super::cx::{Cx, Next};
use super::relay::{Io, read_once};
use crate::http::body::Body;
use crate::http::forward::{self, Forward, PlainRequest};
use crate::http::head::{BodyFraming, HeadError, RequestHead, parse_request_more};
use crate::http::url::TargetUrl;
use crate::model::{Api, BackendTarget, Invoke, LimitOp, Policy, PolicyKind, WebSocketUpgrade};
use crate::policy::assembly::{self, LimitHeaders, Limiter, Step};
use crate::policy::context::Vars;
use crate::policy::limits::{Consumer, Held, Lookup};
use crate::policy::preflow;
use crate::route::Route;
use crate::ws::handshake::{self, UpgradeError};

impl Cx {
    pub(super) fn read_head(&mut self, key: usize, c: &mut Conn) -> Next {
        loop {
            // Bytes already buffered (a pipelined request after a call) come first. While the
            // head is incomplete, `out` marks how much of it was looked at.
            if let Some(id) = &c.up.buf
                && c.up.head < c.up.end
            {
                let buf = &self.pool.get(id)[c.up.head as usize..c.up.end as usize];
                match parse_request_more(buf, (c.up.out - c.up.head) as usize) {
                    Ok(None) => c.up.out = c.up.end,
                    Ok(Some((head, used))) => {
                        if c.phase == Phase::FirstHead {
                            c.phase = Phase::Head;
                            self.pending.release(c.peer.ip());
                        }
                        c.up.head += used as u32;
                        c.up.out = c.up.head;
                        // A head read to its last byte leaves no reason to keep the buffer.
                        super::relay::release_if_empty(&mut self.pool, &mut c.up);
                        return self.on_request(key, c, head);
                    }
                    Err(HeadError::TooLarge) => {
                        return self.respond(key, c, 431, "Request header fields too large", &[]);
                    }
                    Err(HeadError::Malformed(why)) => {
                        log::debug!("malformed request head: {why}");
                        return self.respond(key, c, 400, why, &[]);
                    }
                }
            }
            if !c.has(flag::CLIENT_READABLE) {
                return Next::Stay;
            }
            let io = read_once(&mut self.pool, &mut c.up, &mut c.client);
            if c.client.is_tls() && !c.has(flag::TLS_READY) && !c.client.handshaking() {
                // The TLS handshake is done: the head timeout starts now.
                c.set(flag::TLS_READY);
                let t = self.model.settings.bounds.header_timeout;
                self.set_timeout(key, c, t);
            }
            match io {
                Io::Blocked => {
                    c.clear(flag::CLIENT_READABLE);
                    return Next::Stay;
                }
                Io::Eof => return Next::Finish,
                Io::Error(e) => {
                    log::debug!("client {}: {e}", c.peer);
                    return Next::Finish;
                }
                Io::Full => {
                    return self.respond(key, c, 431, "Request header fields too large", &[]);
                }
                Io::Progress => {}
                Io::Drained => flag::drained(&mut c.flags, flag::CLIENT_READABLE),
            }
        }
    }

    fn on_request(&mut self, key: usize, c: &mut Conn, head: RequestHead) -> Next {
        if c.has(flag::ECHO) {
            return self.echo_request(key, c, head);
        }
        if c.has(flag::ADMIN) {
            return Next::Admin(head);
        }
        // A request starts on the config of the moment, even on a connection older than it.
        let model = self.model.clone();
        let secure = c.has(flag::SECURE);
        let peer = c.peer;
        c.model = model.clone();
        self.request_started(c, &head);
        let (api_idx, op) = match self.routes.lookup(head.path(), head.method()) {
            Route::Found { api, operation } => (api, operation),
            Route::NoApi => {
                return self.respond(key, c, 404, "API not found for requested URI", &[]);
            }
            Route::NoResource { .. } => {
                return self.respond(key, c, 404, "No resources match requested URI", &[]);
            }
            Route::MethodNotAllowed { .. } => {
                return self.respond(
                    key,
                    c,
                    405,
                    "The method is not allowed for the requested URL.",
                    &[],
                );
            }
        };
        let api = &model.apis[api_idx as usize];
        let operation = api.operations.get(op);
        // Spec §1.2: an API is reachable only on listeners of the schemes it declares.
        let reachable = if secure {
            api.schemes.secure()
        } else {
            api.schemes.plain()
        };
        if !reachable {
            return self.respond(key, c, 404, "API not found for requested URI", &[]);
        }
        self.request_routed(c, api_idx, &head);
        if let Some(headers) = preflow::preflight(&head, api, operation) {
            return self.respond_headers(key, c, 200, &headers);
        }
        // A request that asks for an upgrade must be a valid one before anything is counted.
        let upgrade = if head.header("upgrade").is_some() {
            match handshake::validate_client(&head) {
                Ok(u) => Some(u),
                Err(UpgradeError::Version) => {
                    return self.respond(
                        key,
                        c,
                        426,
                        "Unsupported WebSocket version",
                        &[("Sec-WebSocket-Version", "13")],
                    );
                }
                Err(UpgradeError::BadRequest(why)) => return self.respond(key, c, 400, why, &[]),
            }
        } else {
            None
        };
        // A body that two servers could delimit differently is refused before anything counts.
        let framing = match upgrade {
            Some(_) => BodyFraming::None,
            None => match head.body_framing() {
                Ok(f) => f,
                Err(e) => {
                    let why = match e {
                        HeadError::Malformed(why) => why,
                        HeadError::TooLarge => "request head too large",
                    };
                    log::debug!("client {peer}: {why}");
                    return self.respond(key, c, 400, why, &[]);
                }
            },
        };
        let caller = match preflow::identify(&model, &self.clients, api_idx, &head) {
            Ok(c) => c,
            Err(r) => return self.respond(key, c, r.status, r.message, &[]),
        };
        super::activity::request_identified(c, &caller);
        let mut held = Held::new();
        let mut checked: LimitHeaders = Vec::new();
        let mut messages = Vec::new();
        let mut profile = None;
        let now = self.now_secs;
        let mut vars = Vars::new(
            &head,
            &model,
            api,
            operation,
            &caller,
            upgrade.is_some(),
            secure,
        );
        let mut lim = Limiter {
            counters: &mut self.counters,
            view: None,
            consumer: Consumer {
                app: caller.app,
                remote_ip: peer.ip(),
                api: api_idx,
                dynamic: None,
            },
            now,
            held: &mut held,
            headers: &mut checked,
        };
        // A refusal, with the limit that said no if one did.
        let outcome = match preflow::plan_limits(&vars, &mut lim) {
            Err(r) => Err((r.status, r.message.to_string(), r.limit)),
            Ok(()) => match assembly::run(&api.assembly, &mut vars, &mut lim) {
                Step::Upgrade { policy, nth } => {
                    match message_limits(policy, &vars, &mut lim, &mut messages) {
                        Ok(()) if messages.is_empty() => Ok(Backend::Upgrade(policy, nth)),
                        Ok(()) => match lim.counters.intern_profile(&messages) {
                            Some(p) => {
                                profile = Some(p);
                                Ok(Backend::Upgrade(policy, nth))
                            }
                            None => {
                                log::warn!(
                                    "message limits: no room in the table of limit profiles; refusing the upgrade"
                                );
                                let e = assembly::keys_full(messages[0].slot.limit());
                                Err((e.status, e.message, e.limit))
                            }
                        },
                        Err(e) => Err((e.status, e.message, e.limit)),
                    }
                }
                Step::Invoke { policy, at } => Ok(Backend::Invoke(policy, at)),
                Step::Fail(e) => Err((e.status, e.message, e.limit)),
                Step::Done => Err((
                    500,
                    "The assembly ended without a backend call".to_string(),
                    None,
                )),
            },
        };
        let mut reply_headers = preflow::limit_headers(&checked);
        reply_headers.extend(preflow::cors_headers(&head, api));
        let backend = match outcome {
            Ok(Backend::Upgrade(..)) if upgrade.is_none() => {
                // The assembly only returns an upgrade for a WebSocket request.
                Err((500, "Internal error".to_string(), None))
            }
            other => other,
        };
        let backend = match backend {
            Ok(x) => x,
            Err((status, message, limit)) => {
                for (slot, w) in held.take_all() {
                    self.counters.dec(slot, w);
                }
                if let Some(p) = profile.take() {
                    self.counters.release_profile(p);
                }
                if limit.is_some() {
                    self.refused_by_limit(c, status);
                }
                let mut extra: Vec<(&str, &str)> = reply_headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                if status == 426 {
                    extra.push(("Upgrade", "websocket"));
                    extra.push(("Sec-WebSocket-Version", "13"));
                }
                return self.respond(key, c, status, &message, &extra);
            }
        };
        let call = backend.target();
        let url = vars.expand(&call.target_url);
        let target = TargetUrl::parse(&url);
        // What the flow set so far, for the policies that run once the invoke has answered.
        let resume = match &backend {
            Backend::Invoke(_, at) if assembly::has_rest(&api.assembly, at) => {
                Some(std::mem::take(&mut vars.set))
            }
            _ => None,
        };
        drop(vars);
        let limits = (!held.is_empty() || profile.is_some()).then(|| {
            Box::new(ConnLimits {
                held,
                profile,
                retired: Vec::new(),
            })
        });
        c.limits = limits;
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                log::error!("api {}: target-url {url:?} is not usable: {why}", api.name);
                return self.respond(key, c, 500, "Invalid target-url", &[]);
            }
        };
        let txn = self.txn.next();
        let nonce = self.random16();
        let (nth, plain) = match backend {
            Backend::Upgrade(_, nth) => (nth, None),
            Backend::Invoke(invoke, at) => {
                let method = invoke.verb.as_deref().unwrap_or(head.method()).to_string();
                // HTTP/1.1 keeps the connection unless the client says otherwise; 1.0 does not.
                let keep_alive =
                    head.minor_version() >= 1 && !head.has_token("connection", "close");
                let state = Call {
                    request: Body::new(framing),
                    response: None,
                    pass: Default::default(),
                    head_only: method.eq_ignore_ascii_case("HEAD"),
                    keep_alive,
                    request_broken: false,
                    backend_eof: false,
                    stop_on: invoke.stop_on,
                    timeout: invoke.backend.timeout,
                    persistent: invoke.persistent_connection,
                    backend_keep: false,
                    reused: false,
                    retried: false,
                    at,
                    resume,
                };
                (0, Some((method, state)))
            }
        };
        let mut hs = Box::new(Handshake {
            head,
            upgrade,
            call: None,
            tls_profile: call.tls_profile,
            txn,
            target,
            backend_started: self.now,
            key: handshake::new_key(nonce),
            request: Vec::new(),
            written: 0,
            redirects: 0,
            other_origin: false,
            addrs: Default::default(),
            deadline: self.now + call.timeout,
            refused_left: 0,
            answer_seen: 0,
            reply_headers,
            peer_trusted: crate::http::forwarded::trusted(
                &model.settings.trusted_proxies,
                peer.ip(),
            ),
        });
        let port = listener_port(self, c);
        let request = plain.as_ref().map(|(method, state)| PlainRequest {
            method,
            framing,
            persistent: state.persistent,
        });
        build_backend_request(&mut hs, api, call, secure, peer, port, request);
        hs.call = plain.map(|(_, state)| state);
        c.api = api_idx;
        c.wsu = nth;
        c.hs = Some(hs);
        c.phase = Phase::Resolving;
        self.set_timeout(key, c, call.timeout);
        self.start_connect(key, c)
    }

    /// Runs `f` on the variables and limits of the transaction in progress on `c`, rebuilt
    /// from its request head and what its flow set before the backend call. Returns what `f`
    /// returned, the count limits it took (for the caller to hold or give back) and the limit
    /// headers it checked; `None` when the transaction or its caller is gone.
    pub(super) fn in_flow<R>(
        &mut self,
        c: &Conn,
        f: impl FnOnce(&crate::model::Assembly, &mut Vars<'_>, &mut Limiter<'_>) -> R,
    ) -> Option<(R, Held, LimitHeaders)> {
        let hs = c.hs.as_ref()?;
        // A call that began before a reload runs on the routes and limits of its own config.
        let Some(past) = super::reload::config_of(&self.past, &self.model, &c.model) else {
            log::info!(
                "call from {} began on a config that is gone: the rest of its flow is skipped",
                c.peer
            );
            return None;
        };
        let routes = past.map_or(&*self.routes, |p| &*p.routes);
        let clients = past.map_or(&self.clients, |p| &p.clients);
        let model = c.model.clone();
        let api_idx = c.api;
        let api = &model.apis[api_idx as usize];
        let (peer, secure) = (c.peer, c.has(flag::SECURE));
        let head = &hs.head;
        let operation = match routes.lookup(head.path(), head.method()) {
            Route::Found { operation, .. } => api.operations.get(operation),
            _ => None,
        };
        let caller = preflow::identify(&model, clients, api_idx, head).ok()?;
        let mut vars = Vars::new(head, &model, api, operation, &caller, false, secure);
        if let Some(set) = hs.call.as_ref().and_then(|call| call.resume.as_ref()) {
            vars.set = set.clone();
        }
        let mut held = Held::new();
        let mut checked: LimitHeaders = Vec::new();
        let mut lim = Limiter {
            counters: &mut self.counters,
            view: past.map(|p| &p.limits[..]),
            consumer: Consumer {
                app: caller.app,
                remote_ip: peer.ip(),
                api: api_idx,
                dynamic: None,
            },
            now: self.now_secs,
            held: &mut held,
            headers: &mut checked,
        };
        let out = f(&api.assembly, &mut vars, &mut lim);
        Some((out, held, checked))
    }
}

/// The port the client connected to: the one its listener is bound to (no system call).
/// Only a connection whose index did not fit `Conn::listener` asks its own socket.
pub(super) fn listener_port(cx: &Cx, c: &Conn) -> u16 {
    match cx.listener_ports.get(usize::from(c.listener)) {
        Some(&port) if c.listener != u16::MAX => port,
        _ => c.client.local_addr().map_or(0, |a| a.port()),
    }
}

/// The `nth` websocket-upgrade of a policy tree, depth first (as the assembly numbers them).
pub(super) fn nth_upgrade(policies: &[Policy], nth: u16) -> Option<&WebSocketUpgrade> {
    fn walk<'p>(list: &'p [Policy], n: &mut u16, want: u16) -> Option<&'p WebSocketUpgrade> {
        for p in list {
            match &p.kind {
                PolicyKind::WebSocketUpgrade(w) => {
                    if *n == want {
                        return Some(w);
                    }
                    *n += 1;
                }
                PolicyKind::Switch(s) => {
                    for c in &s.cases {
                        if let Some(w) = walk(&c.execute, n, want) {
                            return Some(w);
                        }
                    }
                    if let Some(o) = &s.otherwise
                        && let Some(w) = walk(o, n, want)
                    {
                        return Some(w);
                    }
                }
                _ => {}
            }
        }
        None
    }
    walk(policies, &mut 0, nth)
}

/// Resolves the message limits of a websocket-upgrade's request and response assemblies to
/// counters, once, at the handshake. A limit whose key finds no room in the table refuses the
/// upgrade: admitted, its messages would go uncounted.
fn message_limits(
    wsu: &WebSocketUpgrade,
    vars: &Vars<'_>,
    lim: &mut Limiter<'_>,
    out: &mut Vec<MessageLimit>,
) -> Result<(), assembly::Raised> {
    for (flow, upstream) in [
        (&wsu.request_assembly, true),
        (&wsu.response_assembly, false),
    ] {
        for p in flow {
            let PolicyKind::RateLimit(r) = &p.kind else {
                continue;
            };
            for e in &r.entries {
                if e.op != LimitOp::Consume {
                    continue;
                }
                for &idx in assembly::resolve(e, r.source, vars.plan_idx) {
                    let def = &vars.model.limits[idx as usize];
                    let dynamic = def.dynamic_value.as_ref().map(|t| vars.expand(t));
                    let who = Consumer {
                        dynamic: dynamic.as_deref(),
                        ..lim.consumer
                    };
                    match lim.counters.slot_in(lim.view, idx, &who, lim.now) {
                        Lookup::Counter(slot) => out.push(MessageLimit {
                            slot,
                            weight: assembly::weight(def).min(u32::MAX as u64) as u32,
                            upstream,
                            is_client: def.is_client,
                        }),
                        Lookup::Unlimited => {}
                        Lookup::Full => {
                            log::warn!(
                                "message limit {}: no room for its key in the table of run-time keys; refusing the upgrade",
                                def.name
                            );
                            return Err(assembly::keys_full(idx));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The policy that reaches the backend.
enum Backend<'m> {
    /// websocket-upgrade, and its place in the assembly.
    Upgrade(&'m WebSocketUpgrade, u16),
    /// invoke, and where the flow goes on once it has answered.
    Invoke(&'m Invoke, assembly::Cursor),
}

impl<'m> Backend<'m> {
    fn target(&self) -> &'m BackendTarget {
        match self {
            Backend::Upgrade(w, _) => &w.backend,
            Backend::Invoke(i, _) => &i.backend,
        }
    }
}

/// Writes the request for the backend into `hs.request`: an upgrade, or with `plain` a plain
/// call.
pub(super) fn build_backend_request(
    hs: &mut Handshake,
    api: &Api,
    target: &BackendTarget,
    secure: bool,
    peer: std::net::SocketAddr,
    port: u16,
    plain: Option<PlainRequest>,
) {
    let mut strip: Vec<&str> = api
        .security
        .requirements
        .iter()
        .flat_map(|r| [r.client_id.as_ref(), r.client_secret.as_ref()])
        .flatten()
        .map(|k| k.name.as_str())
        .collect();
    // Credentials are for the origin the API names, not for whoever a redirect points at.
    let credentials = match (target.username.as_deref(), target.password.as_deref()) {
        _ if hs.other_origin => {
            strip.extend(["authorization", "cookie"]);
            None
        }
        (Some(u), Some(p)) => Some((u, p)),
        (Some(u), None) => Some((u, "")),
        _ => None,
    };
    let req = Forward {
        client: &hs.head,
        target: &hs.target,
        // A redirect's location is the whole URL to use: the client's query is in it already.
        client_query: if hs.redirects > 0 {
            None
        } else {
            hs.head.query()
        },
        header_control: &target.header_control,
        parameter_control: &target.parameter_control,
        inject_proxy_headers: target.inject_proxy_headers,
        peer_trusted: hs.peer_trusted,
        client_ip: peer.ip(),
        original_host: hs.head.header("host"),
        listener_port: port,
        proto: if secure { "https" } else { "http" },
        credentials,
        strip: &strip,
    };
    hs.request.clear();
    match plain {
        Some(plain) => forward::plain_request(&mut hs.request, &req, &plain),
        None => handshake::upgrade_request(&mut hs.request, &req, &hs.key),
    }
    hs.written = 0;
}
