//! A readable summary of a compiled model, for `wsgate check`.

use super::limits::kind_name;
use super::template::show;
use crate::model::{
    Control, LimitLevel, LimitOp, LimitSource, LimitValue, LogContent, Methods, Model, Policy,
    PolicyKind, Schemes, SetOp,
};
use std::fmt::Write as _;
use std::time::Duration;

const METHOD_NAMES: &[(u16, &str)] = &[
    (Methods::GET, "GET"),
    (Methods::PUT, "PUT"),
    (Methods::POST, "POST"),
    (Methods::DELETE, "DELETE"),
    (Methods::OPTIONS, "OPTIONS"),
    (Methods::HEAD, "HEAD"),
    (Methods::PATCH, "PATCH"),
    (Methods::TRACE, "TRACE"),
];

fn secs(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

fn schemes(s: Schemes) -> String {
    let mut out = Vec::new();
    for (bit, name) in [
        (Schemes::HTTP, "http"),
        (Schemes::HTTPS, "https"),
        (Schemes::WS, "ws"),
        (Schemes::WSS, "wss"),
    ] {
        if s.has(bit) {
            out.push(name);
        }
    }
    out.join(" ")
}

fn control(c: &Control) -> String {
    let list: Vec<&str> = c.patterns.iter().map(|p| p.source()).collect();
    format!(
        "{} [{}]",
        if c.allow { "allowlist" } else { "blocklist" },
        list.join(", ")
    )
}

fn op(o: LimitOp) -> &'static str {
    match o {
        LimitOp::Consume => "consume",
        LimitOp::Replenish => "replenish",
        LimitOp::Inc => "inc",
        LimitOp::Dec => "dec",
    }
}

fn source(s: LimitSource) -> &'static str {
    match s {
        LimitSource::PlanDefault => "plan-default",
        LimitSource::PlanNamed => "plan-named",
        LimitSource::CatalogNamed => "catalog-named",
        LimitSource::GatewayNamed => "gateway-named",
    }
}

fn content(c: LogContent) -> &'static str {
    match c {
        LogContent::None => "none",
        LogContent::Activity => "activity",
        LogContent::Header => "header",
        LogContent::Payload => "payload",
    }
}

fn policies(m: &Model, list: &[Policy], depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    if list.is_empty() {
        let _ = writeln!(out, "{pad}(none)");
    }
    for p in list {
        let _ = write!(out, "{pad}- ");
        match &p.kind {
            PolicyKind::RateLimit(r) => {
                let _ = writeln!(out, "ratelimit \"{}\" source {}", p.title, source(r.source));
                for e in &r.entries {
                    let n = e.fixed.len() + e.per_plan.iter().map(|(_, v)| v.len()).sum::<usize>();
                    let plans: Vec<&str> = e
                        .per_plan
                        .iter()
                        .filter_map(|(pi, _)| m.plans.get(*pi as usize).map(|p| p.name.as_str()))
                        .collect();
                    let _ = writeln!(
                        out,
                        "{pad}    {}-limit {} {}{}",
                        kind_name(e.kind),
                        e.name,
                        op(e.op),
                        if n == 0 {
                            " (defined nowhere: skipped)".to_string()
                        } else if plans.is_empty() {
                            String::new()
                        } else {
                            format!(" (plans: {})", plans.join(", "))
                        }
                    );
                }
            }
            PolicyKind::WebSocketUpgrade(w) => {
                let _ = writeln!(
                    out,
                    "websocket-upgrade \"{}\" -> {}",
                    p.title,
                    show(&w.backend.target_url)
                );
                let _ = writeln!(
                    out,
                    "{pad}    timeout {}, follow-redirects {}, inject-proxy-headers {}, verb {}",
                    secs(w.backend.timeout),
                    w.backend.follow_redirects,
                    w.backend.inject_proxy_headers,
                    if w.verb_keep { "keep" } else { "GET" }
                );
                let _ = writeln!(
                    out,
                    "{pad}    headers {}, query parameters {}",
                    control(&w.backend.header_control),
                    control(&w.backend.parameter_control)
                );
                if let Some(t) = w
                    .backend
                    .tls_profile
                    .and_then(|i| m.tls_profiles.get(i as usize))
                {
                    let _ = writeln!(out, "{pad}    tls-profile {}", t.name);
                }
                if w.backend.username.is_some() {
                    let _ = writeln!(out, "{pad}    basic credentials set");
                }
                let _ = writeln!(out, "{pad}    request-assembly (per client message):");
                policies(m, &w.request_assembly, depth + 3, out);
                let _ = writeln!(out, "{pad}    response-assembly (per backend message):");
                policies(m, &w.response_assembly, depth + 3, out);
            }
            PolicyKind::Invoke(i) => {
                let _ = writeln!(
                    out,
                    "invoke \"{}\" {} {} (timeout {})",
                    p.title,
                    i.verb.as_deref().unwrap_or("(keep verb)"),
                    show(&i.backend.target_url),
                    secs(i.backend.timeout)
                );
            }
            PolicyKind::Switch(s) => {
                let _ = writeln!(out, "switch \"{}\"", p.title);
                for c in &s.cases {
                    let _ = writeln!(out, "{pad}    case {}:", c.source);
                    policies(m, &c.execute, depth + 3, out);
                }
                if let Some(o) = &s.otherwise {
                    let _ = writeln!(out, "{pad}    otherwise:");
                    policies(m, o, depth + 3, out);
                }
            }
            PolicyKind::SetVariable(actions) => {
                let _ = writeln!(out, "set-variable \"{}\"", p.title);
                for a in actions {
                    let _ = match a.op {
                        SetOp::Clear => writeln!(out, "{pad}    clear {}", a.variable),
                        SetOp::Set | SetOp::Add => writeln!(
                            out,
                            "{pad}    {} {} = {}",
                            if a.op == SetOp::Set { "set" } else { "add" },
                            a.variable,
                            show(&a.value)
                        ),
                    };
                }
            }
            PolicyKind::Throw(t) => {
                let _ = writeln!(
                    out,
                    "throw \"{}\" {} {}{}",
                    p.title,
                    t.name,
                    show(&t.message),
                    t.status.map_or(String::new(), |s| format!(" (status {s})"))
                );
            }
            PolicyKind::Log(l) => {
                let _ = writeln!(
                    out,
                    "log \"{}\" mode {}{}",
                    p.title,
                    l.mode,
                    l.level
                        .map_or(String::new(), |c| format!(", level {}", content(c)))
                );
            }
            PolicyKind::Parse(c) => {
                let l = &c.limits;
                let _ = writeln!(
                    out,
                    "parse \"{}\" (JSON; at most {} bytes, depth {}, width {})",
                    p.title, l.document_size, l.nesting_depth, l.width
                );
            }
            PolicyKind::Validate(c) => {
                let _ = writeln!(
                    out,
                    "validate \"{}\" against {} ({} schema nodes)",
                    p.title,
                    c.definition,
                    c.schema.as_ref().map_or(0, |s| s.nodes.len())
                );
            }
        }
    }
}

fn value(v: LimitValue) -> String {
    match v {
        LimitValue::Unlimited => "unlimited".into(),
        LimitValue::Rate { max, period_secs } => format!("{max} per {period_secs}s"),
        LimitValue::Count { max } => format!("at most {max} at once"),
    }
}

fn limit_line(m: &Model, i: u32, out: &mut String, pad: &str) {
    let Some(l) = m.limits.get(i as usize) else {
        return;
    };
    let level = match l.level {
        LimitLevel::PlanDefault => "plan",
        LimitLevel::PlanNamed => "assembly",
        LimitLevel::CatalogNamed => "catalog",
        LimitLevel::GatewayNamed => "gateway",
    };
    let mut flags = vec![
        if l.hard { "hard" } else { "soft" }.to_string(),
        if l.is_client {
            "is-client"
        } else {
            "not is-client"
        }
        .to_string(),
    ];
    if l.kind == crate::model::LimitKind::Count {
        flags.push(
            if l.auto_decrement {
                "auto-decrement"
            } else {
                "no auto-decrement"
            }
            .into(),
        );
    }
    for (on, name) in [
        (l.use_api_name, "use-api-name"),
        (l.use_app_id, "use-app-id"),
        (l.use_client_id, "use-client-id"),
    ] {
        if on {
            flags.push(name.into());
        }
    }
    if let Some(dv) = &l.dynamic_value {
        flags.push(format!("dynamic-value {}", show(dv)));
    }
    if l.weight != "1" {
        flags.push(format!("weight {}", l.weight));
    }
    let _ = writeln!(
        out,
        "{pad}{} {} limit {}: {} ({}), {}",
        level,
        kind_name(l.kind),
        l.name,
        l.value_text,
        value(l.value),
        flags.join(", ")
    );
}

/// Everything the gateway will serve, for `wsgate check`.
pub fn summary(m: &Model) -> String {
    let mut out = String::new();
    let s = &m.settings;
    let _ = writeln!(out, "config {}", s.source.display());
    let _ = writeln!(out, "listeners:");
    for l in &s.listeners {
        let kind = match (&l.tls, l.tls_offloaded) {
            (Some(t), _) => format!("TLS ({} certificate(s))", t.certs.len()),
            (None, true) => "plain, TLS offloaded (serves https/wss APIs)".into(),
            (None, false) => "plain (serves http/ws APIs)".into(),
        };
        let _ = writeln!(out, "  {} {}", l.addr, kind);
    }
    if let Some(a) = s.admin {
        let _ = writeln!(out, "admin {a}");
    }
    if let Some(e) = s.echo {
        let _ = writeln!(out, "echo backend {e}");
    }
    let b = &s.bounds;
    let _ = writeln!(
        out,
        "bounds: max-connections {}, max-pending-per-address {}, max-message-size {} bytes, buffer-bound {} bytes, \
         socket-buffer {}, idle-timeout {}, header-timeout {}, handshake-timeout {}, close-grace {}, \
         shutdown-grace {}, over-limit {}, max-limit-keys {}, max-control-frames {}/s",
        b.max_connections,
        b.max_pending_per_address,
        b.max_message_size,
        b.buffer_bound,
        match b.socket_buffer {
            0 => "kernel autotuning".to_string(),
            n => format!("{n} bytes"),
        },
        secs(b.idle_timeout),
        secs(b.header_timeout),
        secs(b.handshake_timeout),
        secs(b.close_grace),
        secs(b.shutdown_grace),
        match b.over_limit {
            crate::model::OverLimitAction::Close => "close",
            crate::model::OverLimitAction::Drop => "drop",
        },
        b.max_limit_keys,
        b.max_control_frames
    );

    for api in &m.apis {
        let _ = writeln!(
            out,
            "\napi {}:{} \"{}\" ({})",
            api.name,
            api.version,
            api.title,
            api.file.display()
        );
        let _ = writeln!(out, "  base path {}", api.base_path);
        let _ = writeln!(out, "  schemes {}", schemes(api.schemes));
        if api.security.requirements.is_empty() {
            let _ = writeln!(out, "  security: none (keyless)");
        }
        for r in &api.security.requirements {
            let key = |k: &Option<crate::model::ApiKey>| {
                k.as_ref().map(|k| {
                    format!(
                        "{} {}",
                        if k.in_header { "header" } else { "query" },
                        k.name
                    )
                })
            };
            let _ = writeln!(
                out,
                "  security: client id {}{}",
                key(&r.client_id).unwrap_or_else(|| "none".into()),
                key(&r.client_secret).map_or(String::new(), |s| format!(", secret {s}"))
            );
        }
        if api.cors.enabled {
            let _ = writeln!(out, "  cors enabled");
        }
        if api.activity_log.enabled {
            let _ = writeln!(
                out,
                "  activity-log: success {}, error {}",
                content(api.activity_log.success),
                content(api.activity_log.error)
            );
        }
        let _ = writeln!(out, "  operations:");
        for o in &api.operations {
            let methods: Vec<&str> = METHOD_NAMES
                .iter()
                .filter(|(bit, _)| o.methods.0 & bit != 0)
                .map(|(_, n)| *n)
                .collect();
            let _ = writeln!(out, "    {} {}", o.path, methods.join(" "));
        }
        let plans: Vec<String> = api
            .plans
            .iter()
            .filter_map(|&pi| m.plans.get(pi as usize))
            .map(|p| p.name.clone())
            .collect();
        let _ = writeln!(
            out,
            "  plans: {}",
            if plans.is_empty() {
                "none".into()
            } else {
                plans.join(", ")
            }
        );
        let _ = writeln!(out, "  assembly:\n    execute:");
        policies(m, &api.assembly.execute, 3, &mut out);
        for c in &api.assembly.catch {
            let errors = if c.errors.is_empty() {
                "default".to_string()
            } else {
                c.errors.join(", ")
            };
            let _ = writeln!(out, "    catch {errors}:");
            policies(m, &c.execute, 3, &mut out);
        }
        if !api.assembly.finally.is_empty() {
            let _ = writeln!(out, "    finally:");
            policies(m, &api.assembly.finally, 3, &mut out);
        }
    }

    for p in &m.products {
        let _ = writeln!(
            out,
            "\nproduct {}:{} \"{}\" ({})",
            p.name,
            p.version,
            p.title,
            p.file.display()
        );
        for &pi in &p.plans {
            let Some(plan) = m.plans.get(pi as usize) else {
                continue;
            };
            let apis: Vec<&str> = plan
                .apis
                .iter()
                .filter_map(|&a| m.apis.get(a as usize).map(|a| a.name.as_str()))
                .collect();
            let _ = writeln!(
                out,
                "  plan {} \"{}\": apis {}",
                plan.name,
                plan.title,
                if apis.is_empty() {
                    "none".into()
                } else {
                    apis.join(", ")
                }
            );
            for &i in plan.burst_limits.iter().chain(&plan.rate_limits) {
                limit_line(m, i, &mut out, "    ");
            }
            for (_, idx) in &plan.named {
                for &i in idx {
                    limit_line(m, i, &mut out, "    ");
                }
            }
        }
    }

    let outside: Vec<u32> = (0..m.limits.len() as u32)
        .filter(|&i| {
            matches!(
                m.limits[i as usize].level,
                LimitLevel::CatalogNamed | LimitLevel::GatewayNamed
            )
        })
        .collect();
    if !outside.is_empty() {
        let _ = writeln!(out, "\ncatalog and gateway limits:");
        for i in outside {
            limit_line(m, i, &mut out, "  ");
        }
    }

    let _ = writeln!(out, "\napplications:");
    if m.applications.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for a in &m.applications {
        let plan = m.plans.get(a.plan as usize);
        let product = plan.and_then(|p| m.products.get(p.product as usize));
        let _ = writeln!(
            out,
            "  {}: client id {}{}, plan {}:{}/{}",
            a.name,
            a.client_id,
            if a.client_secret.is_some() {
                " (with secret)"
            } else {
                ""
            },
            product.map_or("?", |p| p.name.as_str()),
            product.map_or("?", |p| p.version.as_str()),
            plan.map_or("?", |p| p.name.as_str())
        );
    }
    if !m.tls_profiles.is_empty() {
        let _ = writeln!(out, "\ntls profiles:");
        for t in &m.tls_profiles {
            let _ = writeln!(
                out,
                "  {}: ca {}{}{}",
                t.name,
                t.ca_file
                    .as_ref()
                    .map_or("built-in roots".to_string(), |p| p.display().to_string()),
                if t.client_cert.is_some() {
                    ", client certificate"
                } else {
                    ""
                },
                if t.insecure_skip_verify {
                    ", INSECURE: no verification"
                } else {
                    ""
                }
            );
        }
    }
    out
}
