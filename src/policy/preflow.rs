//! What runs before the assembly (spec §1.11): CORS, client identification, the subscription
//! lookup and the plan's burst and rate limits. Each refusal is a ready answer for the driver.

use super::assembly::{self, LimitHeaders, Limiter};
use super::context::Vars;
use crate::http::head::RequestHead;
use crate::model::{Api, AppIdx, LimitOp, Model, Operation, PlanIdx};

/// A refusal: status, `moreInformation`, and whether limit headers belong on it.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
    /// The limit that said no, for a refusal of one.
    pub limit: Option<crate::model::LimitIdx>,
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
        head.query_param(&key.name)
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
        limit: None,
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
            let matches = match (given, app.client_secret.as_deref()) {
                (Some(g), Some(s)) => crate::http::auth::same_secret(g.as_bytes(), s.as_bytes()),
                _ => false,
            };
            if !matches {
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
            limit: None,
        });
    }
    Ok(Caller {
        app: Some(app),
        plan: Some(plan),
    })
}

/// The plan's burst limits, then its rate limits (spec §3.6), each applied as an assembly
/// limit would be. A hard limit over its maximum refuses with 429; these refusals happen before
/// the assembly, so no `catch` sees them.
pub fn plan_limits(vars: &Vars<'_>, lim: &mut Limiter<'_>) -> Result<(), Refusal> {
    let Some(plan) = vars.plan else {
        return Ok(());
    };
    for &idx in plan.burst_limits.iter().chain(plan.rate_limits.iter()) {
        let def = &vars.model.limits[idx as usize];
        assembly::apply(def, idx, LimitOp::Consume, vars, lim).map_err(|r| Refusal {
            status: 429,
            message: "Rate Limit exceeded",
            limit: r.limit,
        })?;
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
