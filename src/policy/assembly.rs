//! Running an API's assembly for one request (spec §1.10): `execute`, then `catch` on an error,
//! then `finally`. It stops at the first policy that needs the network (`websocket-upgrade`,
//! `invoke`) and hands it to the driver; everything else happens here, on plain data. After an
//! invoke's answer head has arrived, [`after_invoke`] runs the rest of the flow from where it
//! stopped, with `message.*` now describing that answer.

use super::context::{Vars, same_variable};
use super::limits::{Consumer, Counters, Held};
use crate::model::{
    Assembly, LimitDef, LimitKind, LimitOp, LimitRef, LimitSource, Policy, PolicyKind, RateLimit,
    SetOp, WebSocketUpgrade,
};

/// An error raised in an assembly: a limit, a `throw`, a failed policy.
#[derive(Debug, Clone)]
pub struct Raised {
    /// The error name a `catch` matches, e.g. `AssemblyRateLimitError`.
    pub name: String,
    pub status: u16,
    pub reason: Option<String>,
    /// `moreInformation` of the JSON answer.
    pub message: String,
}

/// Where the assembly stopped.
pub enum Step<'m> {
    /// Upgrade through this policy; `nth` is its depth-first number in the API's assembly.
    Upgrade {
        policy: &'m WebSocketUpgrade,
        nth: u16,
    },
    /// Proxy the call through this invoke; the flow goes on from `at` once its answer arrives.
    Invoke {
        policy: &'m crate::model::Invoke,
        at: Cursor,
    },
    /// Answer with an error (uncaught, or built by a catch flow).
    Fail(Raised),
    /// The assembly finished without a backend call.
    Done,
}

/// Where in the assembly a flow stopped: for each level from `execute` inwards, the policy's
/// index in its list and, for a `switch`, the branch taken (a case's index, or [`OTHERWISE`]).
/// The last entry is the policy itself. Branches are recorded rather than evaluated again
/// because their conditions may read variables that have changed since.
pub type Cursor = Vec<(u16, u16)>;

/// The branch number of a switch's `otherwise`.
pub const OTHERWISE: u16 = u16::MAX;

/// Response headers for `is-client` limits checked during this transaction (spec §3.9), in
/// evaluation order: (header prefix, limit name, maximum, remaining).
pub type LimitHeaders = Vec<(&'static str, String, u64, u64)>;

/// Everything a transaction's limits need.
pub struct Limiter<'c> {
    pub counters: &'c mut Counters,
    /// The limit indices of the earlier config a call in flight began on, mapped to their
    /// retired definitions (see `Counters::slot_in`); `None` for the current config.
    pub view: Option<&'c [crate::model::LimitIdx]>,
    pub consumer: Consumer<'c>,
    pub now: u64,
    /// Count-limit increments to give back when the transaction ends.
    pub held: &'c mut Held,
    pub headers: &'c mut LimitHeaders,
}

pub fn run<'m>(assembly: &'m Assembly, vars: &mut Vars<'_>, lim: &mut Limiter<'_>) -> Step<'m> {
    let mut nth = 0u16;
    let step = match exec(&assembly.execute, vars, lim, &mut nth) {
        Ok(Some(s)) => s,
        Ok(None) => Step::Done,
        Err(e) => catch(assembly, e, vars, lim),
    };
    // An invoke's `finally` runs with the rest of its flow, once the answer is known. Other
    // flows end here; of their `finally` only the policies that need no network take effect.
    if !matches!(step, Step::Invoke { .. }) {
        let mut n = 0;
        let _ = exec(&assembly.finally, vars, lim, &mut n);
    }
    step
}

/// The invoke a flow stopped at.
pub fn invoke_at<'m>(
    assembly: &'m Assembly,
    at: &[(u16, u16)],
) -> Option<&'m crate::model::Invoke> {
    let (&(last, _), outer) = at.split_last()?;
    let list = list_at(&assembly.execute, outer)?;
    match &list.get(last as usize)?.kind {
        PolicyKind::Invoke(i) => Some(i),
        _ => None,
    }
}

/// The policy list the `path` of (index, branch) pairs leads into.
fn list_at<'m>(mut list: &'m [Policy], path: &[(u16, u16)]) -> Option<&'m [Policy]> {
    for &(i, branch) in path {
        let PolicyKind::Switch(s) = &list.get(i as usize)?.kind else {
            return None;
        };
        list = if branch == OTHERWISE {
            s.otherwise.as_deref()?
        } else {
            &s.cases.get(branch as usize)?.execute
        };
    }
    Some(list)
}

/// Whether anything runs after the invoke at `at`: policies after it at any level, or a
/// `finally`. Most assemblies end with their invoke, and their answers pass untouched.
pub fn has_rest(assembly: &Assembly, at: &[(u16, u16)]) -> bool {
    if !assembly.finally.is_empty() {
        return true;
    }
    (1..=at.len()).any(|depth| {
        let (i, _) = at[depth - 1];
        list_at(&assembly.execute, &at[..depth - 1]).is_some_and(|l| l.len() > i as usize + 1)
    })
}

/// The rest of a flow after its invoke answered: the policies after it, inner levels first,
/// then `catch` on an error, then `finally`. `None`: the backend's answer goes to the client
/// with what the flow made of `message.*`; `Some`: the answer is replaced by this error.
pub fn after_invoke(
    assembly: &Assembly,
    at: &[(u16, u16)],
    vars: &mut Vars<'_>,
    lim: &mut Limiter<'_>,
) -> Option<Raised> {
    let outcome = match rest(&assembly.execute, at, vars, lim) {
        Ok(None) => None,
        Ok(Some(_)) => {
            log::warn!(
                "api {}: a second backend policy after an invoke is not run; the first answer stands",
                vars.api.name
            );
            None
        }
        Err(e) => match catch(assembly, e, vars, lim) {
            Step::Fail(r) => Some(r),
            _ => None,
        },
    };
    let mut n = 0;
    match exec(&assembly.finally, vars, lim, &mut n) {
        Err(e) if outcome.is_none() => Some(e),
        _ => outcome,
    }
}

/// Runs what follows position `at` in `list`: first the rest of the inner list the position
/// is in, then the rest of this one.
fn rest<'m>(
    list: &'m [Policy],
    at: &[(u16, u16)],
    vars: &mut Vars<'_>,
    lim: &mut Limiter<'_>,
) -> Result<Option<Step<'m>>, Raised> {
    let Some((&(i, _), inner)) = at.split_first() else {
        return Ok(None);
    };
    if !inner.is_empty()
        && let Some(inner_list) = list_at(list, &at[..1])
        && let Some(step) = rest(inner_list, inner, vars, lim)?
    {
        return Ok(Some(step));
    }
    let mut nth = 0;
    exec(
        list.get(i as usize + 1..).unwrap_or(&[]),
        vars,
        lim,
        &mut nth,
    )
}

/// An error of the backend call the assembly stopped at (an invoke's `ConnectionError` or
/// `OperationError` listed in its `stop-on-error`): the assembly's `catch` for it, then
/// `finally`, as if the call had raised it.
pub fn recover<'m>(
    assembly: &'m Assembly,
    e: Raised,
    vars: &mut Vars<'_>,
    lim: &mut Limiter<'_>,
) -> Step<'m> {
    let step = catch(assembly, e, vars, lim);
    let mut n = 0;
    let _ = exec(&assembly.finally, vars, lim, &mut n);
    step
}

fn catch<'m>(
    assembly: &'m Assembly,
    e: Raised,
    vars: &mut Vars<'_>,
    lim: &mut Limiter<'_>,
) -> Step<'m> {
    let Some(c) = assembly
        .catch
        .iter()
        .find(|c| c.errors.is_empty() || c.errors.contains(&e.name))
    else {
        return Step::Fail(e);
    };
    let mut nth = 0;
    let before = vars.status;
    match exec(&c.execute, vars, lim, &mut nth) {
        Ok(Some(s)) => s,
        // The catch flow handled the error: answer with what it set, else the error's status.
        Ok(None) => Step::Fail(Raised {
            status: if vars.status != before {
                vars.status.unwrap_or(e.status)
            } else {
                e.status
            },
            ..e
        }),
        Err(again) => Step::Fail(again),
    }
}

fn exec<'m>(
    policies: &'m [Policy],
    vars: &mut Vars<'_>,
    lim: &mut Limiter<'_>,
    nth: &mut u16,
) -> Result<Option<Step<'m>>, Raised> {
    for (index, p) in policies.iter().enumerate() {
        match &p.kind {
            PolicyKind::RateLimit(r) => ratelimit(r, vars, lim)?,
            PolicyKind::WebSocketUpgrade(w) => {
                if vars.websocket {
                    return Ok(Some(Step::Upgrade {
                        policy: w,
                        nth: *nth,
                    }));
                }
                *nth += 1;
                return Err(Raised {
                    name: "BadRequestError".into(),
                    status: 426,
                    reason: None,
                    message: "This API accepts only WebSocket upgrade requests".into(),
                });
            }
            PolicyKind::Invoke(i) => {
                return Ok(Some(Step::Invoke {
                    policy: i,
                    at: vec![(index as u16, 0)],
                }));
            }
            PolicyKind::Switch(s) => {
                let case = s.cases.iter().position(|c| match c.condition.eval(&*vars) {
                    Ok(b) => b,
                    Err(e) => {
                        log::warn!("{}: switch condition {:?}: {e}", p.origin, c.source);
                        false
                    }
                });
                let chosen = match case {
                    Some(n) => Some((s.cases[n].execute.as_slice(), n as u16)),
                    None => s.otherwise.as_deref().map(|l| (l, OTHERWISE)),
                };
                if let Some((list, branch)) = chosen
                    && let Some(mut step) = exec(list, vars, lim, nth)?
                {
                    if let Step::Invoke { at, .. } = &mut step {
                        at.insert(0, (index as u16, branch));
                    }
                    return Ok(Some(step));
                }
            }
            PolicyKind::SetVariable(actions) => {
                for a in actions {
                    let value = vars.expand(&a.value);
                    if a.variable == "message.status.code" {
                        vars.status = value.trim().parse().ok();
                    }
                    let name = a.variable.as_str();
                    match a.op {
                        SetOp::Set => {
                            vars.set.retain(|(n, _)| !same_variable(n, name));
                            vars.set.push((a.variable.clone(), value));
                        }
                        SetOp::Add => vars.set.push((a.variable.clone(), value)),
                        SetOp::Clear => vars.set.retain(|(n, _)| !same_variable(n, name)),
                    }
                }
            }
            PolicyKind::Throw(t) => {
                return Err(Raised {
                    name: t.name.clone(),
                    status: t.status.unwrap_or(500),
                    reason: t.reason.clone(),
                    message: vars.expand(&t.message),
                });
            }
            PolicyKind::Log(_) => {}
            // Refused at load outside a websocket-upgrade's message flows.
            PolicyKind::Parse(_) | PolicyKind::Validate(_) => {}
        }
        if let PolicyKind::WebSocketUpgrade(_) = p.kind {
            *nth += 1;
        }
    }
    Ok(None)
}

/// The limits a `ratelimit` entry refers to for this caller.
pub fn resolve(e: &LimitRef, source: LimitSource, plan: Option<u16>) -> &[u32] {
    match source {
        LimitSource::CatalogNamed | LimitSource::GatewayNamed => &e.fixed,
        LimitSource::PlanDefault | LimitSource::PlanNamed => plan
            .and_then(|p| e.per_plan.iter().find(|(q, _)| *q == p))
            .map(|(_, l)| l.as_slice())
            .unwrap_or(&[]),
    }
}

fn ratelimit(r: &RateLimit, vars: &Vars<'_>, lim: &mut Limiter<'_>) -> Result<(), Raised> {
    let plan = vars.plan_idx;
    for e in &r.entries {
        let limits = resolve(e, r.source, plan);
        if limits.is_empty() {
            log::debug!("limit {} is not defined for this caller; skipped", e.name);
        }
        for &idx in limits {
            let def = &vars.model.limits[idx as usize];
            apply(def, idx, e.op, vars, lim)?;
        }
    }
    Ok(())
}

/// Applies one operation of one limit; raises when a hard limit refuses.
pub fn apply(
    def: &LimitDef,
    idx: u32,
    op: LimitOp,
    vars: &Vars<'_>,
    lim: &mut Limiter<'_>,
) -> Result<(), Raised> {
    let dynamic = def.dynamic_value.as_ref().map(|t| vars.expand(t));
    let who = Consumer {
        dynamic: dynamic.as_deref(),
        ..lim.consumer
    };
    let slot = match lim.counters.slot_in(lim.view, idx, &who, lim.now) {
        super::limits::Lookup::Unlimited => return Ok(()),
        super::limits::Lookup::Full => {
            log::warn!(
                "limit {}: no room for its key in the table of run-time keys; refusing",
                def.name
            );
            return Err(keys_full());
        }
        super::limits::Lookup::Counter(s) => s,
    };
    let weight = weight(def);
    let verdict = match op {
        LimitOp::Consume => lim.counters.consume(slot, weight, lim.now),
        LimitOp::Inc => lim.counters.inc(slot, weight),
        LimitOp::Replenish => {
            lim.counters.replenish(slot, weight, lim.now);
            return Ok(());
        }
        LimitOp::Dec => {
            lim.counters.dec(slot, weight);
            lim.held.remove(slot, weight);
            return Ok(());
        }
    };
    if def.is_client {
        let prefix = match def.kind {
            LimitKind::Rate => "X-RateLimit",
            LimitKind::Burst => "X-BurstLimit",
            LimitKind::Count => "X-CountLimit",
        };
        lim.headers
            .push((prefix, def.name.clone(), verdict.limit, verdict.remaining));
    }
    if !verdict.allowed {
        return Err(refusal(def));
    }
    if verdict.exceeded && verdict.first_in_window {
        log::warn!(
            "soft limit {} ({}) exceeded; the call goes on",
            def.name,
            def.value_text
        );
    }
    if op == LimitOp::Inc && def.auto_decrement {
        lim.held.push(slot, weight);
    }
    Ok(())
}

/// A limit whose key the gateway cannot count: the gateway is out of room, not the caller over
/// its limit, so 503 whatever `is-client` says.
pub fn keys_full() -> Raised {
    Raised {
        name: "AssemblyRateLimitError".into(),
        status: 503,
        reason: None,
        message: "Assembly Rate Limit exceeded".into(),
    }
}

fn refusal(def: &LimitDef) -> Raised {
    Raised {
        name: "AssemblyRateLimitError".into(),
        status: if def.is_client { 429 } else { 503 },
        reason: None,
        message: "Assembly Rate Limit exceeded".into(),
    }
}

/// `weight` is a JSONata expression in API Connect; a number is all we evaluate. Anything
/// that is not a positive number counts as 1 (spec §3.4).
pub fn weight(def: &LimitDef) -> u64 {
    def.weight
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|w| *w > 0)
        .unwrap_or(1)
}
