//! Limit definitions (spec §3.3, §3.4): plan `rate-limits` / `burst-limits`, and the
//! `assembly-*-limits` of plans, the catalog and the gateway. Every definition lands in
//! `Model::limits`; callers keep the indices.

use super::limit_value;
use super::node::{Diags, Node};
use super::template::{self, Scope};
use crate::model::{LimitDef, LimitIdx, LimitKind, LimitLevel, PlanIdx};

const ENTRY_KEYS: &[&str] = &[
    "value",
    "hard-limit",
    "cache-only",
    "is-client",
    "use-api-name",
    "use-app-id",
    "use-client-id",
    "dynamic-value",
    "weight",
    "auto-decrement",
    "autodecrement",
    "intervals-len",
];

pub fn kind_name(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Rate => "rate",
        LimitKind::Burst => "burst",
        LimitKind::Count => "count",
    }
}

/// Where definitions go and what they belong to.
pub struct Sink<'a> {
    pub limits: &'a mut Vec<LimitDef>,
    pub level: LimitLevel,
    pub plan: Option<PlanIdx>,
}

impl Sink<'_> {
    fn add(&mut self, def: LimitDef, n: &Node, d: &mut Diags) -> Option<LimitIdx> {
        match LimitIdx::try_from(self.limits.len()) {
            Ok(i) => {
                self.limits.push(def);
                Some(i)
            }
            Err(_) => {
                d.error(n, "too many limit definitions");
                None
            }
        }
    }

    /// `assembly-<kind>-limits`: name → list of entries (a single entry is accepted too).
    pub fn named(
        &mut self,
        n: &Node,
        kind: LimitKind,
        d: &mut Diags,
    ) -> Vec<(String, Vec<LimitIdx>)> {
        let mut out = Vec::new();
        for (name, entries) in n.entries(d) {
            let items = if entries.v.is_sequence() || entries.is_null() {
                entries.items(d)
            } else {
                vec![entries.clone()]
            };
            if items.is_empty() {
                d.warn(
                    &entries,
                    format!("limit '{name}' has no entries and limits nothing"),
                );
            }
            let idx: Vec<LimitIdx> = items
                .iter()
                .filter_map(|e| {
                    let def = entry(e, &name, kind, self.level.clone(), self.plan, d)?;
                    self.add(def, e, d)
                })
                .collect();
            out.push((name, idx));
        }
        out
    }

    /// Plan `rate-limits` / `burst-limits`: name → one entry (a list is accepted too).
    pub fn plan_default(&mut self, n: &Node, kind: LimitKind, d: &mut Diags) -> Vec<LimitIdx> {
        self.named(n, kind, d)
            .into_iter()
            .flat_map(|(_, idx)| idx)
            .collect()
    }

    /// The legacy singular `rate-limit: {value, hard-limit}`, named `default`.
    pub fn single(&mut self, n: &Node, kind: LimitKind, d: &mut Diags) -> Option<LimitIdx> {
        let def = entry(n, "default", kind, self.level.clone(), self.plan, d)?;
        self.add(def, n, d)
    }
}

fn entry(
    n: &Node,
    name: &str,
    kind: LimitKind,
    level: LimitLevel,
    plan: Option<PlanIdx>,
    d: &mut Diags,
) -> Option<LimitDef> {
    if !n.v.is_mapping() {
        d.error(
            n,
            format!(
                "expected a limit entry like {{value: {}}}",
                match kind {
                    LimitKind::Count => "2",
                    LimitKind::Burst => "10/1second",
                    LimitKind::Rate => "100/1hour",
                }
            ),
        );
        return None;
    }
    n.known(ENTRY_KEYS, false, d);
    let (value, value_text) = match n.get("value") {
        None => {
            d.missing(
                n,
                "value",
                format!("missing: every {} limit needs a value", kind_name(kind)),
            );
            return None;
        }
        Some(v) => {
            let text = v.text(d)?;
            match limit_value::parse(&text, kind) {
                Ok(parsed) => (parsed, text),
                Err(msg) => {
                    d.error(&v, format!("{} limit '{name}': {msg}", kind_name(kind)));
                    return None;
                }
            }
        }
    };
    let (hard_default, client_default) = match kind {
        LimitKind::Count => (true, false),
        LimitKind::Rate => (false, true),
        LimitKind::Burst => (true, true),
    };
    let mut hard = n.bool_at("hard-limit", hard_default, d);
    if kind == LimitKind::Burst && !hard {
        if let Some(h) = n.get("hard-limit") {
            d.warn(
                &h,
                "burst limits are always hard; hard-limit: false is ignored",
            );
        }
        hard = true;
    }
    let auto_key = if n.has("auto-decrement") {
        "auto-decrement"
    } else {
        "autodecrement"
    };
    let auto_decrement = match n.get(auto_key) {
        Some(a) if kind != LimitKind::Count => {
            d.warn(&a, "auto-decrement applies to count limits only; ignored");
            false
        }
        Some(a) => a.bool(d).unwrap_or(true),
        None => kind == LimitKind::Count,
    };
    if let Some(il) = n.get("intervals-len") {
        d.warn(&il, "intervals-len has no documented meaning; ignored");
    }
    let dynamic_value = n.get("dynamic-value").and_then(|dv| {
        let text = dv.text(d)?;
        // Limits live outside any API, so every reference is a run-time variable.
        let none = |_: &str| None;
        let all = |_: &str| true;
        let scope = Scope {
            property: &none,
            runtime: &all,
        };
        let (t, warnings) = template::compile(&text, &scope);
        for w in warnings {
            d.warn(&dv, w);
        }
        Some(t)
    });
    let weight = match n.get("weight") {
        None => "1".to_string(),
        Some(w) => {
            let text = w.text(d).unwrap_or_default();
            if text.trim().is_empty() {
                d.error(&w, "weight is empty: expected an expression such as 1");
            }
            // A number is all that is evaluated; one too large for a counter step is a typo.
            let digits = text.trim();
            if !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u32>().is_err()
            {
                d.error(
                    &w,
                    format!("weight {digits} is too large: at most {}", u32::MAX),
                );
            }
            text.trim().to_string()
        }
    };
    Some(LimitDef {
        name: name.to_string(),
        kind,
        level,
        plan,
        value,
        value_text,
        hard,
        cache_only: n.bool_at("cache-only", true, d),
        is_client: n.bool_at("is-client", client_default, d),
        use_api_name: n.bool_at("use-api-name", false, d),
        use_app_id: n.bool_at("use-app-id", false, d),
        use_client_id: n.bool_at("use-client-id", false, d),
        dynamic_value,
        weight,
        auto_decrement,
        origin: n.origin(),
    })
}
