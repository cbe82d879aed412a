//! The assembly (spec §1.10, §2) compiled into typed policies.

use super::api::Env;
use super::limits::kind_name;
use super::node::{Diags, Node};
use super::template::{self, Scope};
use crate::json::parse::Limits;
use crate::model::{
    Assembly, BackendTarget, Catch, Control, Invoke, LimitIdx, LimitKind, LimitOp, LimitRef,
    LimitSource, Log, LogContent, Methods, Part, PlanIdx, Policy, PolicyKind, RateLimit, SetAction,
    SetOp, StopOn, Switch, SwitchCase, Template, Throw, ValueType, WebSocketUpgrade,
};
use crate::policy::condition::{Condition, expand_refs};
use crate::policy::pattern::Pattern;
use crate::validate::MessageCheck;
use std::time::Duration;

pub struct Ctx<'a> {
    pub scope: Scope<'a>,
    /// Where an effective property value comes from, for messages.
    pub property_origin: &'a dyn Fn(&str) -> Option<String>,
    /// Plans that include the API being compiled.
    pub api_plans: &'a [PlanIdx],
    pub env: &'a Env<'a>,
    /// The API's `definitions`, which `validate` compiles from.
    pub definitions: Option<Node<'a>>,
}

/// Where a policy list runs: the transaction, or once per WebSocket message (directly in a
/// request-assembly or response-assembly, or inside a switch there).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Main,
    Message,
    MessageSwitch,
}

impl Flow {
    fn per_message(self) -> bool {
        self != Flow::Main
    }
}

const SUPPORTED: &str =
    "ratelimit, websocket-upgrade, invoke, switch, set-variable, throw, log, parse, validate";
const COMMON: &[&str] = &["version", "title", "description"];

fn keys(extra: &[&'static str]) -> Vec<&'static str> {
    let mut k = COMMON.to_vec();
    k.extend_from_slice(extra);
    k
}

pub fn assembly(ctx: &Ctx, n: &Node, d: &mut Diags) -> Assembly {
    n.known(&["execute", "catch", "finally"], false, d);
    let mut catch = Vec::new();
    if let Some(c) = n.get("catch") {
        let mut shadowed = false;
        for item in c.items(d) {
            if shadowed {
                d.warn(
                    &item,
                    "unreachable: an earlier default catch handles every error",
                );
            }
            if let Some(def) = item.get("default") {
                item.known(&["default"], false, d);
                shadowed = true;
                catch.push(Catch {
                    errors: Vec::new(),
                    execute: policies(ctx, Some(def), Flow::Main, d),
                });
            } else if item.v.is_mapping() {
                item.known(&["errors", "execute"], false, d);
                let errors = match item.get("errors") {
                    Some(e) => e.items(d).iter().filter_map(|x| x.text(d)).collect(),
                    None => {
                        d.missing(
                            &item,
                            "errors",
                            "missing: expected the error names this entry catches, or use default",
                        );
                        Vec::new()
                    }
                };
                catch.push(Catch {
                    errors,
                    execute: policies(ctx, item.get("execute"), Flow::Main, d),
                });
            } else {
                d.error(
                    &item,
                    "expected {errors: [Name, ...], execute: [...]} or {default: [...]}",
                );
            }
        }
    }
    Assembly {
        execute: policies(ctx, n.get("execute"), Flow::Main, d),
        catch,
        finally: policies(ctx, n.get("finally"), Flow::Main, d),
    }
}

fn policies(ctx: &Ctx, n: Option<Node>, flow: Flow, d: &mut Diags) -> Vec<Policy> {
    let Some(n) = n else {
        return Vec::new();
    };
    n.items(d)
        .iter()
        .filter_map(|item| policy(ctx, item, flow, d))
        .collect()
}

fn policy(ctx: &Ctx, item: &Node, flow: Flow, d: &mut Diags) -> Option<Policy> {
    let entries = if item.v.is_mapping() {
        item.entries(d)
    } else {
        Vec::new()
    };
    let [(name, body)] = entries.as_slice() else {
        d.error(
            item,
            "expected one policy per list item, like '- ratelimit: {version: 2.2.0, ...}'",
        );
        return None;
    };
    if !body.v.is_mapping() && !body.is_null() {
        d.error(
            body,
            format!("expected the properties of the {name} policy as a mapping"),
        );
        return None;
    }
    let kind = match name.as_str() {
        "ratelimit" => PolicyKind::RateLimit(ratelimit(ctx, body, d)?),
        "websocket-upgrade" | "invoke" if flow.per_message() => {
            d.error(
                body,
                format!(
                    "{name} cannot run inside request-assembly or response-assembly: those run \
                     once per WebSocket message"
                ),
            );
            return None;
        }
        "websocket-upgrade" => {
            PolicyKind::WebSocketUpgrade(Box::new(websocket_upgrade(ctx, body, d)?))
        }
        "invoke" => PolicyKind::Invoke(Box::new(invoke(ctx, body, d)?)),
        "switch" => PolicyKind::Switch(switch(ctx, body, flow, d)),
        "set-variable" => PolicyKind::SetVariable(set_variable(ctx, body, d)),
        "throw" => PolicyKind::Throw(throw(ctx, body, d)?),
        "log" => PolicyKind::Log(log(body, d)),
        "parse" | "validate" if flow != Flow::Message => {
            d.error(
                body,
                if flow == Flow::Main {
                    format!(
                        "{name} runs on WebSocket messages in wsgate: put it in a \
                         websocket-upgrade's request-assembly or response-assembly"
                    )
                } else {
                    format!(
                        "{name} inside a switch of a message flow is not supported: put it \
                         directly in the request-assembly or response-assembly"
                    )
                },
            );
            return None;
        }
        "parse" => PolicyKind::Parse(Box::new(parse(body, d)?)),
        "validate" => PolicyKind::Validate(Box::new(validate(ctx, body, d)?)),
        other => {
            d.error(
                body,
                format!("policy '{other}' is not supported by wsgate: expected one of {SUPPORTED}"),
            );
            return None;
        }
    };
    Some(Policy {
        title: body.text_at("title", d).unwrap_or_else(|| name.clone()),
        origin: item.origin(),
        kind,
    })
}

impl Ctx<'_> {
    fn template(&self, n: &Node, d: &mut Diags) -> Template {
        let text = n.text(d).unwrap_or_default();
        let (t, warnings) = template::compile(&text, &self.scope);
        for w in warnings {
            d.warn(n, w);
        }
        t
    }

    /// A string field that must not depend on the request (username, password).
    fn static_text(&self, parent: &Node, key: &str, d: &mut Diags) -> Option<String> {
        let n = parent.get(key)?;
        let t = self.template(&n, d);
        match t.as_static() {
            Some(s) => Some(s.to_string()),
            None => {
                d.error(
                    &n,
                    format!("{key} may refer to API properties only, not to context variables"),
                );
                None
            }
        }
    }

    fn tls_profile(&self, parent: &Node, d: &mut Diags) -> Option<u16> {
        let n = parent.get("tls-profile")?;
        let name = self.template(&n, d).as_static()?.to_string();
        if name.is_empty() {
            return None;
        }
        let bare = name.split(':').next().unwrap_or(&name);
        let found = self
            .env
            .tls_profiles
            .iter()
            .position(|p| p.name == name || p.name == bare);
        match found.and_then(|i| u16::try_from(i).ok()) {
            Some(i) => Some(i),
            None => {
                d.error(
                    &n,
                    format!(
                        "TLS profile '{name}' is not defined in the gateway config's tls-profiles"
                    ),
                );
                None
            }
        }
    }

    fn target_url(&self, parent: &Node, d: &mut Diags) -> Option<Template> {
        let n = match parent.get("target-url").or_else(|| parent.get("target")) {
            Some(n) => n,
            None => {
                d.missing(parent, "target-url", "missing: expected the backend URL");
                return None;
            }
        };
        let t = self.template(&n, d);
        if let Some(problem) = check_target(&t) {
            let written = n.text(d).unwrap_or_default();
            let mut msg = format!("target-url '{written}'");
            let resolved = template::show(&t);
            if resolved != written {
                msg.push_str(&format!(" resolves to '{resolved}', which"));
            }
            msg.push_str(&format!(" {problem}"));
            let from: Vec<String> = referenced(&written)
                .filter_map(|p| (self.property_origin)(p).map(|o| format!("'{p}' comes from {o}")))
                .collect();
            if !from.is_empty() {
                msg.push_str(&format!(" ({})", from.join("; ")));
            }
            d.error(&n, msg);
        }
        Some(t)
    }

    /// Resolves one `{name, operation}` entry to limit indices (spec §7 #25: unknown names warn).
    fn resolve(
        &self,
        source: LimitSource,
        kind: LimitKind,
        name: String,
        op: LimitOp,
        at: &Node,
        d: &mut Diags,
    ) -> LimitRef {
        let limits = self.env.limits;
        let kind_of = |i: LimitIdx| limits.get(i as usize).map(|l| l.kind);
        let split = |idx: &[LimitIdx]| -> (Vec<LimitIdx>, Option<LimitKind>) {
            let same: Vec<LimitIdx> = idx
                .iter()
                .copied()
                .filter(|&i| kind_of(i) == Some(kind))
                .collect();
            let other = idx.iter().find_map(|&i| kind_of(i).filter(|k| *k != kind));
            (same, other)
        };
        let k = kind_name(kind);
        let hint = |other: Option<LimitKind>| {
            other.map_or(String::new(), |o| {
                format!(" ('{name}' is a {} limit there)", kind_name(o))
            })
        };
        let mut out = LimitRef {
            name: name.clone(),
            kind,
            op,
            fixed: Vec::new(),
            per_plan: Vec::new(),
        };
        match source {
            LimitSource::PlanDefault | LimitSource::PlanNamed => {
                let place = if source == LimitSource::PlanDefault {
                    format!("{k}-limits")
                } else {
                    format!("assembly-{k}-limits")
                };
                let mut missing = Vec::new();
                let mut other = None;
                let mut quiet = false;
                for &pi in self.api_plans {
                    let Some(plan) = self.env.plans.get(pi as usize) else {
                        continue;
                    };
                    // A name declared with no usable entry was reported at its definition.
                    let mut declared_empty = false;
                    let idx: Vec<LimitIdx> = if source == LimitSource::PlanDefault {
                        let list = if kind == LimitKind::Burst {
                            &plan.burst_limits
                        } else {
                            &plan.rate_limits
                        };
                        list.iter()
                            .copied()
                            .filter(|&i| limits.get(i as usize).is_some_and(|l| l.name == name))
                            .collect()
                    } else {
                        let found = plan.named.iter().find(|(n, _)| *n == name);
                        declared_empty = found.is_some_and(|(_, v)| v.is_empty());
                        found.map(|(_, v)| v.clone()).unwrap_or_default()
                    };
                    let (same, o) = split(&idx);
                    other = other.or(o);
                    if declared_empty {
                        quiet = true;
                    } else if same.is_empty() {
                        missing.push(plan.name.clone());
                    } else {
                        out.per_plan.push((pi, same));
                    }
                }
                if self.api_plans.is_empty() {
                    d.warn(
                        at,
                        format!(
                            "no plan includes this API, so the {k} limit '{name}' is never \
                             enforced"
                        ),
                    );
                } else if out.per_plan.is_empty() && !quiet {
                    d.warn(
                        at,
                        format!(
                            "no plan that includes this API defines a {k} limit '{name}' in its \
                             {place}{}; this entry is skipped and limits nothing",
                            hint(other)
                        ),
                    );
                } else if !missing.is_empty() {
                    d.warn(
                        at,
                        format!(
                            "plan {} defines no {k} limit '{name}' in its {place}{}; the entry \
                             is skipped for its subscribers",
                            missing.join(", "),
                            hint(other)
                        ),
                    );
                }
            }
            LimitSource::CatalogNamed | LimitSource::GatewayNamed => {
                let (named, section) = if source == LimitSource::CatalogNamed {
                    (self.env.catalog_named, "catalog")
                } else {
                    (self.env.gateway_named, "gateway")
                };
                let idx = named
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_slice())
                    .unwrap_or_default();
                let declared = named.iter().any(|(n, _)| *n == name);
                let (same, other) = split(idx);
                if same.is_empty() && !(declared && idx.is_empty()) {
                    d.warn(
                        at,
                        format!(
                            "no {k} limit '{name}' is defined under {section}.assembly-{k}-limits \
                             in the gateway config{}; this entry is skipped and limits nothing",
                            hint(other)
                        ),
                    );
                }
                out.fixed = same;
            }
        }
        out
    }
}

/// What is wrong with a target URL after static resolution, if anything can be told.
fn check_target(t: &Template) -> Option<String> {
    const EXPECTED: &str = "expected a ws://, wss://, http:// or https:// URL";
    match t.parts.first() {
        None => Some(format!("is empty after resolving properties: {EXPECTED}")),
        Some(Part::Literal(s)) => match s.find("://") {
            Some(i) => {
                let scheme = s[..i].to_ascii_lowercase();
                (!matches!(scheme.as_str(), "ws" | "wss" | "http" | "https"))
                    .then(|| format!("has scheme '{scheme}': {EXPECTED}"))
            }
            None if t.parts.len() == 1 => Some(format!("is not an absolute URL: {EXPECTED}")),
            None => None,
        },
        Some(Part::Var(_)) => None,
    }
}

/// Property names referenced as `$(name)` or `$(api.properties.name)` in `text`.
fn referenced(text: &str) -> impl Iterator<Item = &str> {
    text.split("$(").skip(1).filter_map(|chunk| {
        let name = chunk.split(')').next()?.trim();
        let name = name.strip_prefix("api.properties.").unwrap_or(name);
        (!name.contains('.')).then_some(name)
    })
}

fn source(n: &Node, d: &mut Diags) -> Option<LimitSource> {
    let Some(s) = n.get("source") else {
        return Some(LimitSource::PlanDefault);
    };
    Some(match s.text(d)?.as_str() {
        "plan-default" => LimitSource::PlanDefault,
        "plan-named" => LimitSource::PlanNamed,
        "catalog-named" => LimitSource::CatalogNamed,
        "gateway-named" => LimitSource::GatewayNamed,
        other => {
            d.error(
                &s,
                format!(
                    "'{other}' is not a limit source: expected plan-default, plan-named, \
                     catalog-named or gateway-named"
                ),
            );
            return None;
        }
    })
}

fn ratelimit(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<RateLimit> {
    n.known(
        &keys(&["source", "rate-limit", "burst-limit", "count-limit"]),
        false,
        d,
    );
    let source = source(n, d)?;
    let mut entries = Vec::new();
    let mut any = false;
    for (key, kind, default_op) in [
        ("rate-limit", LimitKind::Rate, LimitOp::Consume),
        ("burst-limit", LimitKind::Burst, LimitOp::Consume),
        ("count-limit", LimitKind::Count, LimitOp::Inc),
    ] {
        let Some(list) = n.get(key) else { continue };
        any = true;
        if kind == LimitKind::Count && source == LimitSource::PlanDefault {
            d.error(
                &list,
                "a plan's own limits (source plan-default) are rate and burst limits; a \
                 count-limit needs source plan-named, catalog-named or gateway-named",
            );
            continue;
        }
        for item in list.items(d) {
            if !item.v.is_mapping() {
                d.error(
                    &item,
                    format!("expected {{name: LIMIT, operation: ...}} in {key}"),
                );
                continue;
            }
            item.known(&["name", "operation"], false, d);
            let Some(name) = item.required_text("name", "the name of a limit", d) else {
                continue;
            };
            let op = match item.get("operation") {
                None => default_op,
                Some(o) => {
                    let text = o.text(d).unwrap_or_default();
                    let (op, allowed) = match kind {
                        LimitKind::Rate => (
                            match text.as_str() {
                                "consume" => Some(LimitOp::Consume),
                                "replenish" => Some(LimitOp::Replenish),
                                _ => None,
                            },
                            "consume or replenish",
                        ),
                        LimitKind::Burst => {
                            ((text == "consume").then_some(LimitOp::Consume), "consume")
                        }
                        LimitKind::Count => (
                            match text.as_str() {
                                "inc" => Some(LimitOp::Inc),
                                "dec" => Some(LimitOp::Dec),
                                _ => None,
                            },
                            "inc or dec",
                        ),
                    };
                    match op {
                        Some(op) => op,
                        None => {
                            d.error(
                                &o,
                                format!(
                                    "'{text}' is not an operation of a {key}: expected {allowed}"
                                ),
                            );
                            continue;
                        }
                    }
                }
            };
            let at = item.get("name").unwrap_or(item.clone());
            entries.push(ctx.resolve(source, kind, name, op, &at, d));
        }
    }
    if !any {
        if source != LimitSource::PlanDefault {
            d.error(
                n,
                "expected at least one of rate-limit, burst-limit or count-limit",
            );
            return None;
        }
        // A bare plan-default ratelimit applies every rate and burst limit of the caller's plan.
        for kind in [LimitKind::Burst, LimitKind::Rate] {
            let mut names: Vec<String> = Vec::new();
            for &pi in ctx.api_plans {
                let Some(plan) = ctx.env.plans.get(pi as usize) else {
                    continue;
                };
                let list = if kind == LimitKind::Burst {
                    &plan.burst_limits
                } else {
                    &plan.rate_limits
                };
                for &i in list {
                    if let Some(l) = ctx.env.limits.get(i as usize)
                        && !names.contains(&l.name)
                    {
                        names.push(l.name.clone());
                    }
                }
            }
            for name in names {
                let mut r = LimitRef {
                    name: name.clone(),
                    kind,
                    op: LimitOp::Consume,
                    fixed: Vec::new(),
                    per_plan: Vec::new(),
                };
                for &pi in ctx.api_plans {
                    let Some(plan) = ctx.env.plans.get(pi as usize) else {
                        continue;
                    };
                    let list = if kind == LimitKind::Burst {
                        &plan.burst_limits
                    } else {
                        &plan.rate_limits
                    };
                    let idx: Vec<LimitIdx> = list
                        .iter()
                        .copied()
                        .filter(|&i| {
                            ctx.env
                                .limits
                                .get(i as usize)
                                .is_some_and(|l| l.name == name)
                        })
                        .collect();
                    if !idx.is_empty() {
                        r.per_plan.push((pi, idx));
                    }
                }
                entries.push(r);
            }
        }
    }
    Some(RateLimit { source, entries })
}

fn control(n: &Node, d: &mut Diags) -> Control {
    n.known(&["type", "values"], false, d);
    let allow = match n.text_at("type", d).as_deref() {
        Some("blocklist") | Some("blacklist") => false,
        Some("allowlist") | Some("whitelist") => true,
        other => {
            let at = n.get("type").unwrap_or(n.clone());
            d.error(
                &at,
                format!(
                    "'{}' is not a control type: expected allowlist or blocklist",
                    other.unwrap_or("")
                ),
            );
            false
        }
    };
    let mut patterns = Vec::new();
    if let Some(values) = n.get("values") {
        for v in values.items(d) {
            let Some(text) = v.text(d) else { continue };
            match Pattern::compile(&text) {
                Ok(p) => patterns.push(p),
                Err(e) => d.error(&v, format!("pattern '{text}': {e}")),
            }
        }
    }
    Control { allow, patterns }
}

/// The longest a backend may keep a websocket-upgrade or invoke waiting, in seconds (a day, as
/// DataPower's own limit for a backend timeout).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

fn timeout(n: &Node, d: &mut Diags) -> Duration {
    match n.get("timeout") {
        None => Duration::from_secs(60),
        Some(t) => match t.u64(d) {
            Some(s @ 1..=MAX_TIMEOUT_SECS) => Duration::from_secs(s),
            Some(s) => {
                d.error(
                    &t,
                    format!(
                        "timeout {s} is out of range: expected 1 to {MAX_TIMEOUT_SECS} seconds"
                    ),
                );
                Duration::from_secs(60)
            }
            None => Duration::from_secs(60),
        },
    }
}

fn unsupported_flags(n: &Node, flags: &[&str], d: &mut Diags) {
    for f in flags {
        if let Some(x) = n.get(f)
            && x.bool(d) == Some(true)
        {
            d.warn(&x, format!("{f} is not supported yet and is ignored"));
        }
    }
}

/// The keys of websocket-upgrade and invoke that describe the backend call.
const BACKEND_KEYS: &[&str] = &[
    "target-url",
    "tls-profile",
    "timeout",
    "follow-redirects",
    "username",
    "password",
    "inject-proxy-headers",
    "decode-request-params",
    "encode-plus-char",
    "header-control",
    "parameter-control",
];

/// The backend call of a websocket-upgrade or an invoke: one reading of the keys both share,
/// so both policies default and report them alike.
fn backend_target(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<BackendTarget> {
    let target_url = ctx.target_url(n, d);
    unsupported_flags(n, &["decode-request-params", "encode-plus-char"], d);
    let timeout = timeout(n, d);
    let follow_redirects = n.bool_at("follow-redirects", false, d);
    let header_control = n
        .get("header-control")
        .map_or_else(Control::copy_all, |c| control(&c, d));
    let parameter_control = n
        .get("parameter-control")
        .map_or_else(Control::copy_none, |c| control(&c, d));
    Some(BackendTarget {
        target_url: target_url?,
        timeout,
        follow_redirects,
        header_control,
        parameter_control,
        inject_proxy_headers: n.bool_at("inject-proxy-headers", false, d),
        username: ctx.static_text(n, "username", d),
        password: ctx.static_text(n, "password", d),
        tls_profile: ctx.tls_profile(n, d),
    })
}

fn websocket_upgrade(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<WebSocketUpgrade> {
    let mut known = keys(BACKEND_KEYS);
    known.extend([
        "target",
        "inject-user-agent",
        "request-assembly",
        "response-assembly",
        "verb",
    ]);
    n.known(&known, false, d);
    let backend = backend_target(ctx, n, d);
    if !n.has("parameter-control") {
        d.warn(
            n,
            "parameter-control is missing: no query parameters are copied to the backend \
             (add parameter-control, or put $(request.search) in target-url)",
        );
    }
    let verb_keep = match n.get("verb") {
        None => true,
        Some(v) => match v.text(d).map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("keep") => true,
            Some("get") => false,
            Some(other) => {
                d.error(
                    &v,
                    format!("verb '{other}' cannot upgrade a WebSocket: expected keep or GET"),
                );
                true
            }
            None => true,
        },
    };
    let flow = |key: &str, d: &mut Diags| -> Vec<Policy> {
        let Some(f) = n.get(key) else {
            return Vec::new();
        };
        f.known(&["execute"], false, d);
        policies(ctx, f.get("execute"), Flow::Message, d)
    };
    let request_assembly = flow("request-assembly", d);
    let response_assembly = flow("response-assembly", d);
    Some(WebSocketUpgrade {
        backend: backend?,
        verb_keep,
        request_assembly,
        response_assembly,
    })
}

fn invoke(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<Invoke> {
    let mut known = keys(BACKEND_KEYS);
    known.extend([
        "verb",
        "http-version",
        "http2-required",
        "compression",
        "output",
        "cache-response",
        "cache-ttl",
        "cache-key",
        "cache-putpost-response",
        "stop-on-error",
        "backend-type",
        "graphql-send-type",
        "keep-payload",
        "chunked-uploads",
        "persistent-connection",
        "websocket-upgrade",
    ]);
    n.known(&known, false, d);
    let backend = backend_target(ctx, n, d);
    let verb = match n.get("verb") {
        None => None,
        Some(v) => {
            let text = v.text(d).unwrap_or_default();
            let upper = text.to_ascii_uppercase();
            if upper == "KEEP" {
                None
            } else if Methods::bit(&upper).is_some() {
                Some(upper)
            } else {
                d.error(
                    &v,
                    format!("'{text}' is not a verb: expected keep, GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS or TRACE"),
                );
                None
            }
        }
    };
    if let Some(o) = n.get("output")
        && o.text(d).as_deref() != Some("message")
    {
        d.warn(&o, "output to a variable other than message is not supported yet; the response becomes message");
    }
    if let Some(w) = n.get("websocket-upgrade")
        && w.bool(d) == Some(true)
    {
        d.warn(&w, "invoke's websocket-upgrade flag is deprecated and ignored: use the websocket-upgrade policy");
    }
    unsupported_flags(n, &["http2-required"], d);
    let stop_on = n
        .get("stop-on-error")
        .map(|s| stop_on(&s, d))
        .unwrap_or_default();
    Some(Invoke {
        backend: backend?,
        verb,
        stop_on,
        persistent_connection: n.bool_at("persistent-connection", true, d),
    })
}

/// `stop-on-error` compiled to the errors an invoke raises. Names are matched exactly, as
/// `catch` matches them; any other name could never be raised by the call, so it is a warning
/// rather than a silent no-op.
fn stop_on(n: &Node, d: &mut Diags) -> StopOn {
    let mut out = StopOn::default();
    for item in n.items(d) {
        let Some(name) = item.text(d) else { continue };
        match name.as_str() {
            "ConnectionError" => out.connection = true,
            "OperationError" => out.operation = true,
            _ => d.warn(
                &item,
                format!(
                    "'{name}' is not an error an invoke raises in wsgate, so listing it in \
                     stop-on-error has no effect: expected ConnectionError or OperationError"
                ),
            ),
        }
    }
    out
}

/// Expands `$(property)` in a switch condition into string literals (spec decision 2) with the
/// condition compiler's own quote-aware expansion. A reference that names no API property is
/// returned by name: conditions read run-time values through paths (`request.verb`), not `$(…)`.
fn expand_condition(text: &str, scope: &Scope) -> (String, Vec<String>) {
    let unknown = std::cell::RefCell::new(Vec::new());
    let lookup = |name: &str| {
        let prop = name.strip_prefix("api.properties.").unwrap_or(name);
        let value = if prop.contains('.') {
            None
        } else {
            (scope.property)(prop)
        };
        if value.is_none() {
            unknown.borrow_mut().push(name.to_string());
        }
        value
    };
    let expanded = expand_refs(text, &lookup);
    (expanded, unknown.into_inner())
}

fn switch(ctx: &Ctx, n: &Node, flow: Flow, d: &mut Diags) -> Switch {
    let flow = if flow == Flow::Message {
        Flow::MessageSwitch
    } else {
        flow
    };
    n.known(&keys(&["case"]), false, d);
    let mut cases = Vec::new();
    let mut otherwise = None;
    let Some(list) = n.get("case") else {
        d.missing(
            n,
            "case",
            "missing: expected case: [{condition: ..., execute: [...]}, {otherwise: [...]}]",
        );
        return Switch { cases, otherwise };
    };
    for item in list.items(d) {
        if otherwise.is_some() {
            d.warn(&item, "unreachable: this case comes after otherwise");
        }
        if item.has("otherwise") {
            item.known(&["otherwise"], false, d);
            otherwise = Some(policies(ctx, item.get("otherwise"), flow, d));
            continue;
        }
        item.known(&["condition", "execute"], false, d);
        let Some(cn) = item.get("condition") else {
            d.missing(
                &item,
                "condition",
                "missing: expected a condition such as request.websocket",
            );
            continue;
        };
        let Some(source) = cn.text(d) else { continue };
        let (expanded, unknown) = expand_condition(&source, &ctx.scope);
        let execute = policies(ctx, item.get("execute"), flow, d);
        if !unknown.is_empty() {
            let names = unknown.join(", ");
            d.error(
                &cn,
                format!("condition '{source}': $({names}) is not an API property (a condition reads run-time values by path, such as request.verb)"),
            );
            continue;
        }
        match Condition::compile(&expanded) {
            Ok(condition) => cases.push(SwitchCase {
                source,
                condition,
                execute,
            }),
            Err(e) => d.error(&cn, format!("condition '{source}': {e}")),
        }
    }
    Switch { cases, otherwise }
}

fn set_variable(ctx: &Ctx, n: &Node, d: &mut Diags) -> Vec<SetAction> {
    n.known(&keys(&["actions"]), false, d);
    let mut out = Vec::new();
    let Some(actions) = n.get("actions") else {
        d.missing(
            n,
            "actions",
            "missing: expected actions: [{set: VARIABLE, value: ...}]",
        );
        return out;
    };
    for a in actions.items(d) {
        a.known(&["set", "add", "clear", "value", "type"], false, d);
        let found: Vec<(SetOp, &str)> = [
            (SetOp::Set, "set"),
            (SetOp::Add, "add"),
            (SetOp::Clear, "clear"),
        ]
        .into_iter()
        .filter(|(_, k)| a.has(k))
        .collect();
        let [(op, key)] = found.as_slice() else {
            d.error(
                &a,
                "expected exactly one of set, add or clear naming the variable",
            );
            continue;
        };
        let Some(variable) = a.get(key).and_then(|v| v.text(d)) else {
            d.error(&a, format!("{key} needs the name of a variable"));
            continue;
        };
        let value = match a.get("value") {
            Some(v) if *op == SetOp::Clear => {
                d.warn(&v, "clear ignores value");
                Template::default()
            }
            Some(v) => ctx.template(&v, d),
            None => Template::default(),
        };
        let value_type = match a.get("type") {
            None => ValueType::Any,
            Some(t) => match t.text(d).as_deref() {
                Some("any") => ValueType::Any,
                Some("string") => ValueType::String,
                Some("number") => ValueType::Number,
                Some("boolean") => ValueType::Boolean,
                other => {
                    d.error(
                        &t,
                        format!(
                            "'{}' is not a type: expected any, string, number or boolean",
                            other.unwrap_or("")
                        ),
                    );
                    ValueType::Any
                }
            },
        };
        out.push(SetAction {
            op: *op,
            variable,
            value,
            value_type,
        });
    }
    out
}

fn throw(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<Throw> {
    n.known(
        &keys(&[
            "name",
            "message",
            "error-status-code",
            "error-status-reason",
        ]),
        false,
        d,
    );
    let name = n.required_text("name", "the error name that catch entries match", d);
    let status = n.get("error-status-code").and_then(|s| match s.u64(d) {
        Some(c @ 100..=599) => u16::try_from(c).ok(),
        Some(c) => {
            d.error(
                &s,
                format!("{c} is not an HTTP status: expected 100 to 599"),
            );
            None
        }
        None => None,
    });
    Some(Throw {
        name: name?,
        message: n
            .get("message")
            .map(|m| ctx.template(&m, d))
            .unwrap_or_default(),
        status,
        reason: n.text_at("error-status-reason", d),
    })
}

/// The versions of `validate` and `parse` that the DataPower API Gateway accepts.
const VALIDATE_VERSIONS: &[&str] = &[
    "2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0", "2.5.0", "2.6.0", "2.7.0",
];
const PARSE_VERSIONS: &[&str] = &["2.0.0", "2.1.0", "2.2.0"];

/// A policy's `version`, which must be one of `accepted` when it is given.
fn version(name: &str, n: &Node, accepted: &[&str], d: &mut Diags) {
    let Some(v) = n.get("version") else { return };
    let text = v.text(d).unwrap_or_default();
    if !accepted.contains(&text.as_str()) {
        d.error(
            &v,
            format!(
                "{name} version '{text}' is not one the DataPower API Gateway accepts: expected {}",
                accepted.join(", ")
            ),
        );
    }
}

/// `input` and `output` name the message being checked; a message flow has no other.
fn message_only(name: &str, n: &Node, d: &mut Diags) {
    for key in ["input", "output"] {
        if let Some(v) = n.get(key)
            && v.text(d).as_deref() != Some("message")
        {
            let error = key == "input";
            let msg = format!(
                "{key}: {name} in a message flow reads{} the WebSocket message itself",
                if error { "" } else { " and keeps" }
            );
            if error {
                d.error(&v, msg)
            } else {
                d.warn(&v, msg)
            }
        }
    }
}

fn validate(ctx: &Ctx, n: &Node, d: &mut Diags) -> Option<MessageCheck> {
    n.known(
        &keys(&[
            "validate-against",
            "definition",
            "input",
            "output",
            "compile-settings",
            "xslt-version",
            "strict",
        ]),
        false,
        d,
    );
    version("validate", n, VALIDATE_VERSIONS, d);
    message_only("validate", n, d);
    match n.get("validate-against") {
        Some(v) => match v.text(d).as_deref() {
            Some("definition") => {}
            other => {
                d.error(
                    &v,
                    format!(
                        "validate-against '{}' cannot check a WebSocket message: wsgate \
                         validates against a definition of the API (validate-against: \
                         definition)",
                        other.unwrap_or("")
                    ),
                );
                return None;
            }
        },
        None if n.has("definition") => {}
        None => {
            d.missing(
                n,
                "validate-against",
                "missing: expected validate-against: definition and definition: \
                 '#/definitions/NAME'",
            );
            return None;
        }
    }
    let def = match n.get("definition") {
        Some(def) => def,
        None => {
            d.missing(
                n,
                "definition",
                "missing: expected the schema, as '#/definitions/NAME'",
            );
            return None;
        }
    };
    let reference = def.text(d)?;
    let schema = super::schema::compile(ctx.definitions.clone(), &reference, &def, d)?;
    Some(MessageCheck {
        limits: Limits::DEFAULT,
        schema: Some(Box::new(schema)),
        definition: reference,
    })
}

/// The name API Connect gives the gateway's default parse settings.
const DEFAULT_PARSE_SETTINGS: &str = "apic-default-parsesettings";

fn parse(n: &Node, d: &mut Diags) -> Option<MessageCheck> {
    n.known(
        &keys(&[
            "parse-settings-reference",
            "use-content-type",
            "input",
            "output",
            "warn-on-empty-input",
        ]),
        false,
        d,
    );
    version("parse", n, PARSE_VERSIONS, d);
    message_only("parse", n, d);
    if let Some(u) = n.get("use-content-type")
        && u.bool(d) == Some(true)
    {
        d.warn(
            &u,
            "use-content-type is ignored: a WebSocket message has no Content-Type, and text \
             messages are parsed as JSON",
        );
    }
    let mut limits = Limits::DEFAULT;
    if let Some(r) = n.get("parse-settings-reference") {
        r.known(&["default", "literal", "url"], false, d);
        if let Some(def) = r.get("default") {
            let name = def.text(d).unwrap_or_default();
            if name != DEFAULT_PARSE_SETTINGS {
                d.error(
                    &def,
                    format!(
                        "parse settings '{name}' are not known: wsgate has the defaults \
                         ({DEFAULT_PARSE_SETTINGS}); give other bounds with literal"
                    ),
                );
            }
        }
        if let Some(lit) = r.get("literal") {
            limits = parse_settings_literal(&lit, limits, d)?;
        }
        if let Some(u) = r.get("url") {
            d.error(
                &u,
                "parse settings from a url are not supported: give them with literal",
            );
        }
    }
    Some(MessageCheck {
        limits,
        schema: None,
        definition: String::new(),
    })
}

/// Bounds a `literal` sets over the defaults, written as the JSON form of DataPower's
/// ParseSettings: `{"ParseSettings": {"NestingDepth": 64, "DocumentSize": 65536}}`.
fn parse_settings_literal(n: &Node, mut limits: Limits, d: &mut Diags) -> Option<Limits> {
    use crate::json::parse::{Kind, Tape};
    let text = n.text(d)?;
    let mut tape = Tape::new();
    let doc = match tape.parse(text.as_bytes(), &Limits::DEFAULT) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(
                n,
                format!(
                    "literal: expected the JSON form {{\"ParseSettings\": {{...}}}} ({} at byte {})",
                    e.fault.name(),
                    e.at
                ),
            );
            return None;
        }
    };
    let mut buf = String::new();
    let settings = (doc.token(0).kind == Kind::Object)
        .then(|| {
            doc.children(0)
                .find(|&(k, _)| doc.text(k, &mut buf) == "ParseSettings")
        })
        .flatten()
        .map(|(_, v)| v)
        .filter(|&v| doc.token(v).kind == Kind::Object);
    let Some(settings) = settings else {
        d.error(n, "literal: expected {\"ParseSettings\": {...}}");
        return None;
    };
    for (k, v) in doc.children(settings) {
        let name = doc.text(k, &mut buf).to_string();
        let value = doc.raw(v);
        let number = || value.parse::<u64>().ok();
        // DataPower's own maxima for each bound.
        let (slot, max): (Option<&mut u64>, u64) = match name.as_str() {
            "DocumentSize" => (Some(&mut limits.document_size), 5_368_709_121),
            "DocumentType" => {
                let mut t = String::new();
                let kind = doc.text(v, &mut t);
                if !matches!(kind, "json" | "detect") {
                    d.error(
                        n,
                        format!("literal: DocumentType '{kind}': WebSocket text messages are parsed as json"),
                    );
                }
                continue;
            }
            "NestingDepth" | "Width" | "NameLength" | "ValueLength" | "NumberLength" => {
                let (max, field) = match name.as_str() {
                    "NestingDepth" => (4096, &mut limits.nesting_depth),
                    "Width" => (65535, &mut limits.width),
                    "NameLength" => (8192, &mut limits.name_length),
                    "ValueLength" => (u64::from(u32::MAX), &mut limits.value_length),
                    _ => (256, &mut limits.number_length),
                };
                match number() {
                    Some(x @ 1..) if x <= max => *field = x as u32,
                    _ => d.error(
                        n,
                        format!("literal: {name} {value} is out of range: expected 1 to {max}"),
                    ),
                }
                continue;
            }
            _ => {
                d.warn(
                    n,
                    format!("literal: {name} is not a JSON bound and is ignored"),
                );
                continue;
            }
        };
        match (slot, number()) {
            (Some(field), Some(x @ 1..)) if x <= max => *field = x,
            _ => d.error(
                n,
                format!("literal: {name} {value} is out of range: expected 1 to {max}"),
            ),
        }
    }
    Some(limits)
}

fn log(n: &Node, d: &mut Diags) -> Log {
    n.known(&keys(&["mode", "log-level"]), false, d);
    let mode = match n.get("mode") {
        None => "gather-and-send".to_string(),
        Some(m) => {
            let text = m.text(d).unwrap_or_default();
            if !matches!(
                text.as_str(),
                "gather-only" | "send-only" | "gather-and-send"
            ) {
                d.error(
                    &m,
                    format!("'{text}' is not a log mode: expected gather-only, send-only or gather-and-send"),
                );
            }
            text
        }
    };
    let level = n.get("log-level").and_then(|l| match l.text(d).as_deref() {
        Some("default") => None,
        Some("none") => Some(LogContent::None),
        Some("activity") => Some(LogContent::Activity),
        Some("header") => Some(LogContent::Header),
        Some("payload") => Some(LogContent::Payload),
        other => {
            d.error(
                &l,
                format!(
                    "'{}' is not a log level: expected none, activity, header, payload or default",
                    other.unwrap_or("")
                ),
            );
            None
        }
    });
    Log { mode, level }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_get_property_literals() {
        let prop = |n: &str| match n {
            "env" => Some("prod \"x\"".to_string()),
            "ver" => Some("2".to_string()),
            _ => None,
        };
        let rt = |_: &str| false;
        let scope = Scope {
            property: &prop,
            runtime: &rt,
        };
        let expand = |text: &str| expand_condition(text, &scope);
        assert_eq!(
            expand("$(env) = 'a' and $(api.properties.env) = request.verb").0,
            "\"prod \\\"x\\\"\" = 'a' and \"prod \\\"x\\\"\" = request.verb"
        );
        // Inside a string literal the value joins the string.
        assert_eq!(
            expand("request.path = '/v$(ver)'").0,
            "request.path = '/v2'"
        );
        assert_eq!(expand("'$$(ver)'").0, "'$(ver)'");
        assert_eq!(expand("request.websocket").0, "request.websocket");
        let (_, unknown) = expand("$(nope) = $(request.verb) and $(env) = ''");
        assert_eq!(unknown, ["nope", "request.verb"]);
        assert_eq!(expand("$(").0, "$(");
    }
}
