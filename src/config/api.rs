//! API YAML (OpenAPI 2.0 with `x-ibm-configuration`, spec §1) compiled into [`Api`].

use super::assembly;
use super::node::{Anchor, Diags, Doc, Node, scalar_text};
use super::template::Scope;
use crate::model::{
    ActivityLog, Api, ApiKey, Assembly, Cors, LimitDef, LimitIdx, Listener, LogContent, Methods,
    Operation, Plan, PlanIdx, Schemes, Security, SecurityRequirement, TlsProfile,
};
use serde_yaml::Value;
use std::rc::Rc;

/// An API file as referenced by products, before it is compiled.
pub struct ApiSrc {
    pub doc: Rc<Doc>,
    pub name: String,
    pub version: String,
    pub enforced: bool,
    /// Plans that include this API.
    pub plans: Vec<PlanIdx>,
    /// Where the API was first referenced (a product's `$ref`, or the gateway's `apis`).
    pub from: Anchor,
}

/// What compiling an API needs from the rest of the configuration.
pub struct Env<'a> {
    pub catalog: &'a str,
    pub catalog_props: &'a [(String, String)],
    pub overrides: &'a [(String, String)],
    pub plans: &'a [Plan],
    pub limits: &'a [LimitDef],
    pub catalog_named: &'a [(String, Vec<LimitIdx>)],
    pub gateway_named: &'a [(String, Vec<LimitIdx>)],
    pub tls_profiles: &'a [TlsProfile],
    pub listeners: &'a [Listener],
}

const TOP_KEYS: &[&str] = &[
    "swagger",
    "info",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "parameters",
    "responses",
    "securityDefinitions",
    "security",
    "tags",
    "externalDocs",
    "x-ibm-configuration",
];

const IBM_KEYS: &[&str] = &[
    "properties",
    "catalogs",
    "cors",
    "activity-log",
    "gateway",
    "type",
    "phase",
    "enforced",
    "testable",
    "assembly",
    "buffering",
    "compile-json-schemas",
    "enforce-form-data-parameter",
    "forceHttp500ForSoap11",
    "extensions",
    "application-authentication",
    "compatibility",
    "servers",
    "targets",
    "wsdl-definition",
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Reads an API file's identity; `None` when it is not an OpenAPI 2.0 document.
pub fn identify(doc: Rc<Doc>, from: Anchor, d: &mut Diags) -> Option<ApiSrc> {
    let root = Node::root(&doc);
    if !root.v.is_mapping() {
        d.error(
            &root,
            "expected an OpenAPI 2.0 API: a mapping with swagger, info, paths, ...",
        );
        return None;
    }
    if let Some(o) = root.get("openapi") {
        d.error(
            &o,
            "OpenAPI 3 documents are not supported yet: wsgate reads OpenAPI 2.0 (swagger: '2.0')",
        );
        return None;
    }
    match root.get("swagger") {
        Some(s) => {
            if scalar_text(s.v).as_deref() != Some("2.0") {
                d.error(&s, "expected swagger: '2.0'");
            }
        }
        None => d.missing(&root, "swagger", "missing: expected swagger: '2.0'"),
    }
    let info = root.get("info");
    let (name, version) = match &info {
        Some(i) => {
            let name = i.text_at("x-ibm-name", d).or_else(|| i.text_at("title", d));
            if name.is_none() {
                d.missing(
                    i,
                    "x-ibm-name",
                    "missing: expected x-ibm-name (or title) naming the API",
                );
            }
            (name, i.text_at("version", d).unwrap_or_default())
        }
        None => {
            d.missing(
                &root,
                "info",
                "missing: expected info with x-ibm-name and version",
            );
            (None, String::new())
        }
    };
    let enforced = root
        .get("x-ibm-configuration")
        .is_none_or(|c| c.bool_at("enforced", true, d));
    Some(ApiSrc {
        name: name?,
        version,
        enforced,
        plans: Vec::new(),
        from,
        doc,
    })
}

fn log_content(n: &Node, d: &mut Diags) -> Option<LogContent> {
    let text = n.text(d)?;
    Some(match text.as_str() {
        "none" => LogContent::None,
        "activity" => LogContent::Activity,
        "header" => LogContent::Header,
        "payload" => LogContent::Payload,
        other => {
            d.error(
                n,
                format!(
                    "'{other}' is not a log content: expected none, activity, header or payload"
                ),
            );
            return None;
        }
    })
}

/// `/` → [], `/a/{b}` → [Some(a), None].
pub fn segments(path: &str) -> Vec<Option<String>> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split('/')
        .map(|s| {
            if s.len() >= 2 && s.starts_with('{') && s.ends_with('}') {
                None
            } else {
                Some(s.to_string())
            }
        })
        .collect()
}

/// Names that `set-variable` sets anywhere in the assembly (without a dot): `$(name)` of these
/// stays a run-time variable.
fn set_variables(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some("set-variable") {
                    let actions = val.get("actions").and_then(Value::as_sequence);
                    for a in actions.into_iter().flatten() {
                        for op in ["set", "add"] {
                            if let Some(name) = a.get(op).and_then(Value::as_str)
                                && !name.contains('.')
                            {
                                out.push(name.to_string());
                            }
                        }
                    }
                }
                set_variables(val, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| set_variables(x, out)),
        _ => {}
    }
}

/// Effective API properties: (name, value, where the value comes from).
fn effective_properties(root: &Node, env: &Env, d: &mut Diags) -> Vec<(String, String, String)> {
    let ibm = root.get("x-ibm-configuration");
    let mut props: Vec<(String, String, String)> = Vec::new();
    if let Some(p) = ibm.as_ref().and_then(|c| c.get("properties")) {
        for (name, pn) in p.entries(d) {
            pn.known(&["value", "description", "encoded"], false, d);
            let value = if pn.v.is_mapping() {
                pn.text_at("value", d).unwrap_or_default()
            } else {
                pn.text(d).unwrap_or_default()
            };
            props.push((
                name,
                value,
                "the API's x-ibm-configuration.properties".into(),
            ));
        }
    }
    let set = |props: &mut Vec<(String, String, String)>, name: &str, value: &str, from: String| {
        match props.iter_mut().find(|(n, _, _)| n == name) {
            Some(p) => {
                p.1 = value.to_string();
                p.2 = from;
            }
            None => props.push((name.to_string(), value.to_string(), from)),
        }
    };
    // Lowest to highest precedence: API value, API catalog value, gateway catalog, command line.
    if let Some(cats) = ibm.as_ref().and_then(|c| c.get("catalogs")) {
        for (cat, cn) in cats.entries(d) {
            cn.known(&["properties"], false, d);
            if cat != env.catalog {
                continue;
            }
            if let Some(p) = cn.get("properties") {
                for (name, v) in p.entries(d) {
                    if let Some(val) = v.text(d) {
                        let from =
                            format!("the API's x-ibm-configuration.catalogs.{cat}.properties");
                        set(&mut props, &name, &val, from);
                    }
                }
            }
        }
    }
    for (name, value) in env.catalog_props {
        set(
            &mut props,
            name,
            value,
            "catalog.properties in the gateway config".into(),
        );
    }
    for (name, value) in env.overrides {
        set(
            &mut props,
            name,
            value,
            "--property on the command line".into(),
        );
    }
    props
}

fn security(root: &Node, d: &mut Diags) -> Security {
    let defs = root.get("securityDefinitions");
    if let Some(defs) = &defs {
        for (_, def) in defs.entries(d) {
            def.known(
                &[
                    "type",
                    "in",
                    "name",
                    "x-key-type",
                    "description",
                    "flow",
                    "authorizationUrl",
                    "tokenUrl",
                    "scopes",
                ],
                true,
                d,
            );
        }
    }
    let mut out = Security::default();
    let Some(reqs) = root.get("security") else {
        return out;
    };
    for req in reqs.items(d) {
        let mut r = SecurityRequirement::default();
        for (scheme, sn) in req.entries(d) {
            let Some(def) = defs.as_ref().and_then(|x| x.get(&scheme)) else {
                d.error(
                    &sn,
                    format!("security scheme '{scheme}' is not defined in securityDefinitions"),
                );
                continue;
            };
            let ty = def.text_at("type", d).unwrap_or_default();
            if ty != "apiKey" {
                d.error(
                    &sn,
                    format!(
                        "security scheme '{scheme}' has type '{ty}': wsgate supports apiKey \
                         schemes (client id and secret) only"
                    ),
                );
                continue;
            }
            let Some(name) = def.required_text("name", "the header or query parameter name", d)
            else {
                continue;
            };
            let in_header = match def.text_at("in", d).as_deref() {
                Some("header") => true,
                Some("query") => false,
                other => {
                    let at = def.get("in").unwrap_or(def.clone());
                    d.error(
                        &at,
                        format!(
                            "'in: {}' is not supported: expected header or query",
                            other.unwrap_or("")
                        ),
                    );
                    continue;
                }
            };
            let secret = match def.text_at("x-key-type", d).as_deref() {
                Some("client_id") => false,
                Some("client_secret") => true,
                Some(other) => {
                    d.error(
                        &def.get("x-key-type").unwrap_or(def.clone()),
                        format!("'{other}' is not a key type: expected client_id or client_secret"),
                    );
                    continue;
                }
                None => name.to_ascii_lowercase().contains("secret"),
            };
            let key = ApiKey {
                in_header,
                name: if in_header {
                    name.to_ascii_lowercase()
                } else {
                    name
                },
            };
            let slot = if secret {
                &mut r.client_secret
            } else {
                &mut r.client_id
            };
            if slot.is_some() {
                d.error(
                    &sn,
                    format!(
                        "this requirement already has a client {}; one requirement holds at most \
                         one id and one secret",
                        if secret { "secret" } else { "id" }
                    ),
                );
                continue;
            }
            *slot = Some(key);
        }
        if r.client_secret.is_some() && r.client_id.is_none() {
            d.error(
                &req,
                "a client secret is checked only together with a client id: add the id scheme to \
                 this requirement",
            );
        }
        out.requirements.push(r);
    }
    out
}

fn operations(root: &Node, d: &mut Diags) -> Vec<Operation> {
    let mut ops = Vec::new();
    let Some(paths) = root.get("paths") else {
        d.missing(
            root,
            "paths",
            "missing: expected paths with at least one operation",
        );
        return ops;
    };
    for (path, pn) in paths.entries(d) {
        if !path.starts_with('/') {
            d.error(&pn, format!("path '{path}' must start with /"));
            continue;
        }
        let mut known: Vec<&str> = METHODS.to_vec();
        known.extend(["parameters", "$ref"]);
        pn.known(&known, true, d);
        if let Some(r) = pn.get("$ref") {
            d.warn(
                &r,
                "$ref in a path item is not followed; define the methods inline",
            );
        }
        let mut methods = Methods::default();
        let mut ids = Vec::new();
        for m in METHODS {
            if !pn.has(m) {
                continue;
            }
            let bit = Methods::bit(&m.to_ascii_uppercase()).unwrap_or(0);
            methods.0 |= bit;
            if let Some(on) = pn.get(m) {
                if let Some(id) = on.text_at("operationId", d) {
                    ids.push((bit, id));
                }
                if let Some(sec) = on.get("security") {
                    d.warn(
                        &sec,
                        "operation-level security is not supported yet: the API-level security \
                         applies to this operation",
                    );
                }
            }
        }
        if methods.0 == 0 {
            d.warn(&pn, format!("path '{path}' defines no methods"));
        }
        ops.push(Operation {
            segments: segments(&path),
            path,
            methods,
            operation_ids: ids,
        });
    }
    ops
}

pub fn compile(src: &ApiSrc, env: &Env, d: &mut Diags) -> (Api, Anchor) {
    let doc = &src.doc;
    let root = Node::root(doc);
    root.known(TOP_KEYS, true, d);
    let ibm = root.get("x-ibm-configuration");
    if let Some(c) = &ibm {
        c.known(IBM_KEYS, true, d);
        if let Some(g) = c.get("gateway")
            && g.text(d).as_deref() != Some("datapower-api-gateway")
        {
            d.warn(
                &g,
                "wsgate follows the DataPower API Gateway (datapower-api-gateway); behaviour \
                     may differ from this gateway type",
            );
        }
    }

    let info = root.get("info");
    let title = info
        .as_ref()
        .and_then(|i| i.text_at("title", d))
        .unwrap_or_default();

    let base_node = root.get("basePath");
    let base_at = base_node.as_ref().unwrap_or(&root).anchor(doc);
    let mut base_path = match &base_node {
        Some(b) => b.text(d).unwrap_or_default(),
        None => "/".to_string(),
    };
    if !base_path.starts_with('/') {
        if let Some(b) = &base_node {
            d.error(b, format!("basePath '{base_path}' must start with /"));
        }
        base_path.insert(0, '/');
    }
    if base_path.len() > 1 && base_path.ends_with('/') {
        if let Some(b) = &base_node {
            d.warn(
                b,
                "basePath should not end with /; the trailing / is ignored",
            );
        }
        while base_path.len() > 1 && base_path.ends_with('/') {
            base_path.pop();
        }
    }

    let schemes = match root.get("schemes") {
        None => Schemes::ALL,
        Some(s) => {
            let mut bits = 0;
            for item in s.items(d) {
                match item.text(d).as_deref() {
                    Some("http") => bits |= Schemes::HTTP,
                    Some("https") => bits |= Schemes::HTTPS,
                    Some("ws") => bits |= Schemes::WS,
                    Some("wss") => bits |= Schemes::WSS,
                    Some(other) => d.error(
                        &item,
                        format!("'{other}' is not a scheme: expected http, https, ws or wss"),
                    ),
                    None => {}
                }
            }
            if bits == 0 {
                d.warn(&s, "no schemes listed: the API is served on every scheme");
                Schemes::ALL
            } else {
                Schemes(bits)
            }
        }
    };

    // An API no listener can serve is almost certainly a mistake in the listeners.
    let secure = env
        .listeners
        .iter()
        .any(|l| l.tls.is_some() || l.tls_offloaded);
    let plain = env
        .listeners
        .iter()
        .any(|l| l.tls.is_none() && !l.tls_offloaded);
    let reachable = (schemes.secure() && secure) || (schemes.plain() && plain);
    if !env.listeners.is_empty() && !reachable {
        let at = root.get("schemes").unwrap_or_else(|| root.clone());
        d.warn(
            &at,
            if schemes.secure() {
                "the API's schemes are https/wss but no listener has tls or tls-offloaded: true, \
                 so it is not reachable"
            } else {
                "the API's schemes are http/ws but every listener is TLS or TLS-offloaded, so it \
                 is not reachable"
            },
        );
    }

    let properties = effective_properties(&root, env, d);
    let mut runtime = Vec::new();
    if let Some(a) = ibm.as_ref().and_then(|c| c.get("assembly")) {
        set_variables(a.v, &mut runtime);
    }
    let property = |name: &str| {
        properties
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.clone())
    };
    let property_origin = |name: &str| {
        properties
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, o)| o.clone())
    };
    let is_runtime = |name: &str| runtime.iter().any(|r| r == name);
    let scope = Scope {
        property: &property,
        runtime: &is_runtime,
    };

    let cors = Cors {
        enabled: ibm.as_ref().and_then(|c| c.get("cors")).is_some_and(|c| {
            c.known(&["enabled", "rules", "policy"], false, d);
            c.bool_at("enabled", false, d)
        }),
    };
    let mut activity_log = ActivityLog::default();
    if let Some(a) = ibm.as_ref().and_then(|c| c.get("activity-log")) {
        a.known(&["enabled", "success-content", "error-content"], false, d);
        activity_log.enabled = a.bool_at("enabled", false, d);
        if let Some(c) = a.get("success-content").and_then(|c| log_content(&c, d)) {
            activity_log.success = c;
        }
        if let Some(c) = a.get("error-content").and_then(|c| log_content(&c, d)) {
            activity_log.error = c;
        }
    }

    let ctx = assembly::Ctx {
        scope,
        property_origin: &property_origin,
        api_plans: &src.plans,
        env,
        definitions: root.get("definitions"),
    };
    let assembly = match ibm.as_ref().and_then(|c| c.get("assembly")) {
        Some(a) => assembly::assembly(&ctx, &a, d),
        None => {
            d.warn(
                ibm.as_ref().unwrap_or(&root),
                "no assembly: requests are identified and limited, then answered without a backend",
            );
            Assembly::default()
        }
    };

    let api = Api {
        name: src.name.clone(),
        version: src.version.clone(),
        title,
        file: doc.file.clone(),
        base_path,
        schemes,
        operations: operations(&root, d),
        properties: properties.into_iter().map(|(n, v, _)| (n, v)).collect(),
        security: security(&root, d),
        cors,
        activity_log,
        assembly,
        plans: src.plans.clone(),
    };
    (api, base_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert!(segments("/").is_empty());
        assert_eq!(segments("/a"), vec![Some("a".to_string())]);
        assert_eq!(
            segments("/a/{id}/b"),
            vec![Some("a".to_string()), None, Some("b".to_string())]
        );
        assert_eq!(
            segments("/a/"),
            vec![Some("a".to_string()), Some(String::new())]
        );
    }
}
