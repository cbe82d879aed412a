//! Product YAML (spec §3): info, plans with their limits, and the APIs the product includes.

use super::gateway::relative_to;
use super::limits::{Sink, kind_name};
use super::node::{Anchor, Diags, Doc, Node};
use crate::model::{LimitDef, LimitIdx, LimitKind, LimitLevel, Plan, PlanIdx, Product};
use std::path::PathBuf;
use std::rc::Rc;

/// How a product names one of its APIs.
pub enum ApiRef {
    /// `$ref: file.yaml`, relative to the product file.
    File(PathBuf),
    /// `name: api-name:version`.
    Name {
        name: String,
        version: Option<String>,
    },
}

/// A plan and the API keys it lists (`None`: all of the product's APIs).
pub type PlanApis = (PlanIdx, Option<Vec<(String, Anchor)>>);

pub struct ProductSrc {
    /// `apis` of the product: key, reference, where it is written.
    pub apis: Vec<(String, ApiRef, Anchor)>,
    /// Per plan: the API keys it lists, or `None` for all of the product's APIs.
    pub plan_apis: Vec<PlanApis>,
}

const TOP_KEYS: &[&str] = &["product", "info", "gateways", "plans", "apis", "visibility"];
const PLAN_KEYS: &[&str] = &[
    "title",
    "description",
    "approval",
    "rate-limits",
    "rate-limit",
    "burst-limits",
    "assembly-rate-limits",
    "assembly-burst-limits",
    "assembly-count-limits",
    "apis",
];

pub fn parse(
    doc: &Rc<Doc>,
    products: &mut Vec<Product>,
    plans: &mut Vec<Plan>,
    limits: &mut Vec<LimitDef>,
    d: &mut Diags,
) -> Option<ProductSrc> {
    let root = Node::root(doc);
    if !root.v.is_mapping() {
        d.error(
            &root,
            "expected a Product: a mapping with info, plans and apis",
        );
        return None;
    }
    root.known(TOP_KEYS, true, d);
    let info = root.get("info");
    let (name, version, title) = match &info {
        Some(i) => {
            i.known(
                &[
                    "name",
                    "title",
                    "version",
                    "summary",
                    "description",
                    "contact",
                    "license",
                    "termsOfService",
                    "categories",
                ],
                true,
                d,
            );
            let name = i.required_text("name", "the product name", d);
            let version = i.text_at("version", d).unwrap_or_default();
            let title = i.text_at("title", d);
            (name, version, title)
        }
        None => {
            d.missing(
                &root,
                "info",
                "missing: expected info with name and version",
            );
            (None, String::new(), None)
        }
    };
    let name = name?;
    if let Some(g) = root.get("gateways") {
        let names: Vec<String> = g.items(d).iter().filter_map(|x| x.text(d)).collect();
        if !names.is_empty() && !names.iter().any(|n| n == "datapower-api-gateway") {
            d.warn(
                &g,
                "wsgate follows the DataPower API Gateway (datapower-api-gateway); this product \
                 targets another gateway type",
            );
        }
    }
    if let Some(dup) = products
        .iter()
        .find(|p| p.name == name && p.version == version)
    {
        d.error(
            &root.get("info").unwrap_or(root.clone()),
            format!(
                "product {name}:{version} is already loaded from '{}'",
                dup.file.display()
            ),
        );
        return None;
    }
    let Ok(idx) = u16::try_from(products.len()) else {
        d.error(&root, "too many products");
        return None;
    };

    let mut apis = Vec::new();
    if let Some(a) = root.get("apis") {
        for (key, n) in a.entries(d) {
            if let Some(r) = n.get("$ref") {
                n.known(&["$ref"], false, d);
                if let Some(text) = r.text(d) {
                    apis.push((
                        key,
                        ApiRef::File(relative_to(&doc.file, &text)),
                        r.anchor(doc),
                    ));
                }
            } else if let Some(nm) = n.get("name") {
                n.known(&["name"], false, d);
                if let Some(text) = nm.text(d) {
                    let (name, version) = match text.split_once(':') {
                        Some((a, b)) => (a.to_string(), Some(b.to_string())),
                        None => (text, None),
                    };
                    apis.push((key, ApiRef::Name { name, version }, nm.anchor(doc)));
                }
            } else {
                d.error(
                    &n,
                    "expected {$ref: api-file.yaml} (relative to this product) or {name: \
                     api-name:version}",
                );
            }
        }
    }
    if apis.is_empty() {
        d.warn(&root, format!("product {name} includes no APIs"));
    }

    let mut plan_idx = Vec::new();
    let mut plan_apis = Vec::new();
    match root.get("plans") {
        None => d.warn(
            &root,
            format!("product {name} has no plans: no application can subscribe"),
        ),
        Some(p) => {
            for (pname, pn) in p.entries(d) {
                let Ok(pi) = PlanIdx::try_from(plans.len()) else {
                    d.error(&pn, "too many plans");
                    break;
                };
                if !pn.v.is_mapping() && !pn.is_null() {
                    d.error(
                        &pn,
                        "expected a plan: a mapping with title, rate-limits, apis, ...",
                    );
                    continue;
                }
                pn.known(PLAN_KEYS, true, d);
                let plan = parse_plan(doc, &pname, &pn, idx, pi, limits, d, &mut plan_apis);
                plans.push(plan);
                plan_idx.push(pi);
            }
        }
    }

    products.push(Product {
        name,
        version,
        title: title.unwrap_or_default(),
        file: doc.file.clone(),
        plans: plan_idx,
    });
    Some(ProductSrc { apis, plan_apis })
}

#[allow(clippy::too_many_arguments)]
fn parse_plan(
    doc: &Rc<Doc>,
    name: &str,
    n: &Node,
    product: u16,
    pi: PlanIdx,
    limits: &mut Vec<LimitDef>,
    d: &mut Diags,
    plan_apis: &mut Vec<PlanApis>,
) -> Plan {
    let mut sink = Sink {
        limits,
        level: LimitLevel::PlanDefault,
        plan: Some(pi),
    };
    let mut rate_limits = Vec::new();
    if let Some(r) = n.get("rate-limits") {
        rate_limits = sink.plan_default(&r, LimitKind::Rate, d);
    }
    if let Some(r) = n.get("rate-limit") {
        if n.has("rate-limits") {
            d.warn(&r, "both rate-limit and rate-limits are given; both apply");
        }
        rate_limits.extend(sink.single(&r, LimitKind::Rate, d));
    }
    let burst_limits = match n.get("burst-limits") {
        Some(b) => sink.plan_default(&b, LimitKind::Burst, d),
        None => Vec::new(),
    };
    sink.level = LimitLevel::PlanNamed;
    let mut named: Vec<(String, Vec<LimitIdx>)> = Vec::new();
    let mut kinds: Vec<(String, LimitKind)> = Vec::new();
    for (key, kind) in [
        ("assembly-rate-limits", LimitKind::Rate),
        ("assembly-burst-limits", LimitKind::Burst),
        ("assembly-count-limits", LimitKind::Count),
    ] {
        let Some(m) = n.get(key) else { continue };
        for (lname, idx) in sink.named(&m, kind, d) {
            if let Some((_, other)) = kinds.iter().find(|(k, _)| *k == lname)
                && *other != kind
            {
                d.warn(
                    &m.get(&lname).unwrap_or(m.clone()),
                    format!(
                        "'{lname}' is also a {} limit in this plan; names should be unique",
                        kind_name(*other)
                    ),
                );
            }
            kinds.push((lname.clone(), kind));
            match named.iter_mut().find(|(x, _)| *x == lname) {
                Some((_, v)) => v.extend(idx),
                None => named.push((lname, idx)),
            }
        }
    }
    let apis = n.get("apis").map(|a| {
        let mut keys = Vec::new();
        for (key, an) in a.entries(d) {
            if let Some(ops) = an.get("operations") {
                d.warn(
                    &ops,
                    "per-operation plan settings are not supported yet: the plan includes every \
                     operation of this API with the plan's own limits",
                );
            }
            an.known(&["operations"], true, d);
            keys.push((key, an.anchor(doc)));
        }
        keys
    });
    plan_apis.push((pi, apis));
    Plan {
        name: name.to_string(),
        title: n.text_at("title", d).unwrap_or_default(),
        product,
        apis: Vec::new(),
        rate_limits,
        burst_limits,
        named,
    }
}
