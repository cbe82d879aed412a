//! What runs before the assembly (spec §1.11): CORS, client identification, the subscription
//! lookup and the plan's burst and rate limits. Each refusal is a ready answer for the driver.

use super::assembly::{LimitHeaders, Limiter};
use crate::http::head::RequestHead;
use crate::model::{Api, AppIdx, Model, Operation, PlanIdx};

/// A refusal: status, `moreInformation`, and whether limit headers belong on it.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
}

/// Who is calling, once identified.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    pub app: Option<AppIdx>,
    pub plan: Option<PlanIdx>,
}

/// A CORS preflight (spec §1.8): answered here, no assembly runs.
pub fn preflight(
    head: &RequestHead,
    api: &Api,
    op: Option<&Operation>,
) -> Option<Vec<(String, String)>> {
    if !api.cors.enabled || head.method() != "OPTIONS" {
        return None;
    }
    let origin = head.header("origin")?;
    head.header("access-control-request-method")?;
    let methods = op.map(|o| o.methods).unwrap_or_default();
    let names: Vec<&str> = [
        "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
    ]
    .into_iter()
    .filter(|m| methods.allows(m))
    .collect();
    let mut h = vec![
        (
            "Access-Control-Allow-Origin".to_string(),
            origin.to_string(),
        ),
        (
            "Access-Control-Allow-Credentials".to_string(),
            "true".to_string(),
        ),
        ("Access-Control-Allow-Methods".to_string(), names.join(", ")),
        ("Vary".to_string(), "Origin".to_string()),
    ];
    if let Some(req) = head.header("access-control-request-headers") {
        h.push(("Access-Control-Allow-Headers".to_string(), req.to_string()));
    }
    Some(h)
}

/// Headers a cross-origin (non-preflight) answer carries when CORS is on.
pub fn cors_headers(head: &RequestHead, api: &Api) -> Vec<(String, String)> {
    match head.header("origin") {
        Some(o) if api.cors.enabled => vec![
            ("Access-Control-Allow-Origin".to_string(), o.to_string()),
            (
                "Access-Control-Allow-Credentials".to_string(),
                "true".to_string(),
            ),
        ],
        _ => Vec::new(),
    }
}

fn credential<'h>(head: &'h RequestHead, key: &crate::model::ApiKey) -> Option<&'h str> {
    if key.in_header {
        head.header(&key.name)
    } else {
        head.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key.name).then_some(v)
        })
    }
}

/// Applications by client id, built once when the config loads.
pub type ClientIndex = std::collections::HashMap<String, AppIdx>;

pub fn client_index(model: &Model) -> ClientIndex {
    model
        .applications
        .iter()
        .enumerate()
        .map(|(i, a)| (a.client_id.clone(), i as AppIdx))
        .collect()
}

/// Client identification and the subscription lookup (spec §1.3, §1.4, §4.1).
pub fn identify(
    model: &Model,
    clients: &ClientIndex,
    api_idx: u16,
    head: &RequestHead,
) -> Result<Caller, Refusal> {
    let api = &model.apis[api_idx as usize];
    let reqs = &api.security.requirements;
    if reqs.iter().all(|r| r.client_id.is_none()) {
        return Ok(Caller::default()); // keyless
    }
    let invalid = Refusal {
        status: 401,
        message: "Invalid client id or secret.",
    };
    let mut found = None;
    for r in reqs {
        let Some(id_key) = &r.client_id else { continue };
        let Some(id) = credential(head, id_key) else {
            continue;
        };
        let Some(&app_idx) = clients.get(id) else {
            continue;
        };
        let app = &model.applications[app_idx as usize];
        if let Some(secret_key) = &r.client_secret {
            let given = credential(head, secret_key);
            if given.is_none() || app.client_secret.as_deref() != given {
                continue;
            }
        }
        found = Some(app_idx);
        break;
    }
    let app = found.ok_or(invalid)?;
    let plan = model.applications[app as usize].plan;
    if !api.plans.contains(&plan) {
        return Err(Refusal {
            status: 401,
            message: "Cannot find valid subscription for the incoming API request.",
        });
    }
    Ok(Caller {
        app: Some(app),
        plan: Some(plan),
    })
}

/// The plan's burst limits, then its rate limits (spec §3.6). A hard limit over its maximum
/// refuses with 429; a soft one lets the call through with a warning.
pub fn plan_limits(model: &Model, caller: Caller, lim: &mut Limiter<'_>) -> Result<(), Refusal> {
    let Some(plan) = caller.plan else {
        return Ok(());
    };
    let plan = &model.plans[plan as usize];
    for &idx in plan.burst_limits.iter().chain(plan.rate_limits.iter()) {
        let def = &model.limits[idx as usize];
        let slot = match lim.counters.slot(idx, &lim.consumer, lim.now) {
            super::limits::Lookup::Counter(s) => s,
            super::limits::Lookup::Unlimited => continue,
            super::limits::Lookup::Full => {
                return Err(Refusal {
                    status: 429,
                    message: "Rate Limit exceeded",
                });
            }
        };
        let v = lim.counters.consume(slot, 1, lim.now);
        let prefix = match def.kind {
            crate::model::LimitKind::Burst => "X-BurstLimit",
            _ => "X-RateLimit",
        };
        lim.headers
            .push((prefix, def.name.clone(), v.limit, v.remaining));
        if !v.allowed {
            return Err(Refusal {
                status: 429,
                message: "Rate Limit exceeded",
            });
        }
        if v.exceeded && v.first_in_window {
            log::warn!(
                "plan {} limit {} ({}) exceeded; soft, the call goes on",
                plan.name,
                def.name,
                def.value_text
            );
        }
    }
    Ok(())
}

/// The headers of §3.9 for what was checked, grouped by kind in evaluation order.
pub fn limit_headers(h: &LimitHeaders) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for prefix in ["X-RateLimit", "X-BurstLimit", "X-CountLimit"] {
        let (mut lim, mut rem) = (String::new(), String::new());
        for (p, name, max, left) in h {
            if *p == prefix {
                lim.push_str(&format!("name={name},{max};"));
                rem.push_str(&format!("name={name},{left};"));
            }
        }
        if !lim.is_empty() {
            out.push((format!("{prefix}-Limit"), lim));
            out.push((format!("{prefix}-Remaining"), rem));
        }
    }
    out
}
