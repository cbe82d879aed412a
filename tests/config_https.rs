//! The shipped config's second recipe (the seed's "secure WebSocket and HTTPS API from a target
//! service"): `conf/test-yahel-websocket-https-api_1.0.0.yaml` in
//! `conf/test-yahel-websocket-https-product_1.0.0.yaml`, next to the seed's own API and Product.
//! Checks that both APIs load from the shipped `conf/gateway.yaml` and that the new API's
//! assembly is the tree the seed describes: a `switch` on `request.websocket` whose WebSocket
//! case takes a count limit and then upgrades (with a message rate limit in each direction),
//! and whose `otherwise` takes a regular rate limit and then invokes the same target.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use wsgate::config::{Loaded, Overrides, load};
use wsgate::model::*;
use wsgate::route::{Route, RouteTable};

const HTTPS_API: &str = "test-yahel-websocket-https-api";
const HTTPS_PRODUCT: &str = "test-yahel-websocket-https-product";
const SEED_API_NAME: &str = "test-yahel-websocket-api";
const ECHO_URL: &str = "http://127.0.0.1:8081/";

fn shipped() -> PathBuf {
    repo_root().join("conf/gateway.yaml")
}

fn loaded() -> Loaded {
    match load(&shipped(), &Overrides::default()) {
        Ok(l) => l,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn api_index(m: &Model, name: &str) -> usize {
    m.apis
        .iter()
        .position(|a| a.name == name)
        .unwrap_or_else(|| panic!("API {name} is not loaded"))
}

fn https_plan(m: &Model) -> PlanIdx {
    let p = m
        .products
        .iter()
        .find(|p| p.name == HTTPS_PRODUCT)
        .unwrap_or_else(|| panic!("product {HTTPS_PRODUCT} is not loaded"));
    assert_eq!(p.version, "1.0.0");
    assert_eq!(p.plans.len(), 1, "one plan");
    p.plans[0]
}

fn plan_limit<'a>(m: &'a Model, plan: PlanIdx, name: &str) -> (LimitIdx, &'a LimitDef) {
    let i = m
        .limits
        .iter()
        .position(|l| l.name == name && l.plan == Some(plan))
        .unwrap_or_else(|| panic!("no limit {name} in plan {plan}"));
    (i as LimitIdx, &m.limits[i])
}

/// The one entry of a `ratelimit` policy, which must be plan-named.
fn only_entry<'a>(p: &'a Policy, title: &str) -> &'a LimitRef {
    assert_eq!(p.title, title);
    match &p.kind {
        PolicyKind::RateLimit(r) => {
            assert_eq!(r.source, LimitSource::PlanNamed, "{title}");
            assert_eq!(r.entries.len(), 1, "{title}");
            &r.entries[0]
        }
        other => panic!("{title}: expected ratelimit, got {other:?}"),
    }
}

#[test]
fn shipped_config_loads_both_apis_without_warnings() {
    let l = loaded();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let m = l.model;
    let names: Vec<&str> = m.apis.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec![SEED_API_NAME, HTTPS_API]);
    let products: Vec<&str> = m.products.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        products,
        vec!["test-yahel-websocket-product", HTTPS_PRODUCT]
    );

    // The new plan holds both APIs; the seed API is in both products.
    let hp = https_plan(&m);
    let plan = &m.plans[hp as usize];
    assert_eq!(plan.name, "default-plan");
    let (seed, https) = (api_index(&m, SEED_API_NAME), api_index(&m, HTTPS_API));
    assert_eq!(plan.apis, vec![seed as ApiIdx, https as ApiIdx]);
    assert_eq!(m.apis[https].plans, vec![hp]);
    assert!(m.apis[seed].plans.contains(&hp));

    // demo-client-id reaches both APIs through it.
    let demo = m
        .applications
        .iter()
        .find(|a| a.client_id == "demo-client-id")
        .expect("demo application");
    assert_eq!(demo.plan, hp);

    // The new plan repeats the seed's limits and adds the rate limit for plain calls.
    let (_, conns) = plan_limit(&m, hp, "websocket-connections");
    assert_eq!(conns.kind, LimitKind::Count);
    assert_eq!(conns.value, LimitValue::Count { max: 2 });
    assert!(conns.hard && conns.is_client && conns.auto_decrement);
    for (name, max) in [
        ("websocket-request-ratelimit", 3),
        ("websocket-response-ratelimit", 5),
        ("https-ratelimit", 60),
    ] {
        let (_, l) = plan_limit(&m, hp, name);
        assert_eq!(l.kind, LimitKind::Rate, "{name}");
        assert_eq!(
            l.value,
            LimitValue::Rate {
                max,
                period_secs: 60
            },
            "{name}"
        );
        assert!(l.hard && l.is_client, "{name}");
    }
    let (di, default) = plan_limit(&m, hp, "default");
    assert_eq!(default.level, LimitLevel::PlanDefault);
    assert!(!default.hard);
    assert_eq!(plan.rate_limits, vec![di]);
}

#[test]
fn the_https_api_mirrors_the_seed_api() {
    let m = loaded().model;
    let api = &m.apis[api_index(&m, HTTPS_API)];
    assert_eq!(api.title, HTTPS_API);
    assert_eq!(api.version, "1.0.0");
    assert_eq!(api.base_path, "/test-yahel-websocket-https-api");
    assert_eq!(api.schemes, Schemes(Schemes::HTTPS | Schemes::WSS));
    assert!(api.cors.enabled);
    assert!(api.activity_log.enabled);
    assert_eq!(api.activity_log.success, LogContent::Activity);
    assert_eq!(api.activity_log.error, LogContent::Payload);
    assert_eq!(api.operations.len(), 1);
    let op = &api.operations[0];
    assert_eq!(op.path, "/");
    for verb in ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"] {
        assert!(op.methods.allows(verb), "{verb}");
    }
    assert_eq!(api.security.requirements.len(), 1);
    let id = api.security.requirements[0]
        .client_id
        .as_ref()
        .expect("client id");
    assert!(id.in_header);
    assert_eq!(id.name, "x-ibm-client-id");
    // The catalog property points both APIs at the built-in echo backend.
    assert_eq!(m.property(api, "target-url"), Some(ECHO_URL));

    let routes = RouteTable::new(&m.apis);
    let https = api_index(&m, HTTPS_API) as ApiIdx;
    for verb in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] {
        assert_eq!(
            routes.lookup("/test-yahel-websocket-https-api/", verb),
            Route::Found {
                api: https,
                operation: 0
            },
            "{verb}"
        );
    }
    // The seed's base path is a prefix of the new one's text, not of its path.
    assert_eq!(
        routes.lookup("/test-yahel-websocket-api/", "GET"),
        Route::Found {
            api: api_index(&m, SEED_API_NAME) as ApiIdx,
            operation: 0
        }
    );
}

#[test]
fn the_https_api_assembly_is_the_seeds_second_recipe() {
    let m = loaded().model;
    let hp = https_plan(&m);
    let api = &m.apis[api_index(&m, HTTPS_API)];
    let a = &api.assembly;
    assert!(a.catch.is_empty() && a.finally.is_empty());
    assert_eq!(a.execute.len(), 1, "only the switch at the top");
    let switch = match &a.execute[0].kind {
        PolicyKind::Switch(s) => s,
        other => panic!("expected switch, got {other:?}"),
    };
    assert_eq!(switch.cases.len(), 1);
    let case = &switch.cases[0];
    assert_eq!(case.source, "request.websocket = true");

    // The WebSocket case: the count limit, then the upgrade with its message limits.
    assert_eq!(case.execute.len(), 2);
    let count = only_entry(&case.execute[0], "count limit");
    assert_eq!(count.name, "websocket-connections");
    assert_eq!((count.kind, count.op), (LimitKind::Count, LimitOp::Inc));
    assert_eq!(
        count.per_plan,
        vec![(hp, vec![plan_limit(&m, hp, "websocket-connections").0])]
    );
    let w = match &case.execute[1].kind {
        PolicyKind::WebSocketUpgrade(w) => w,
        other => panic!("expected websocket-upgrade, got {other:?}"),
    };
    assert_eq!(case.execute[1].title, "websocket-upgrade");
    assert_eq!(w.target_url.as_static(), Some(ECHO_URL));
    assert_eq!(w.timeout, Duration::from_secs(60));
    assert!(w.verb_keep && w.inject_proxy_headers && !w.follow_redirects);
    assert!(w.parameter_control.allow && w.parameter_control.patterns.is_empty());
    assert!(!w.header_control.allow && w.header_control.patterns.is_empty());
    for (flow, title, name) in [
        (
            &w.request_assembly,
            "request rate limit",
            "websocket-request-ratelimit",
        ),
        (
            &w.response_assembly,
            "response rate limit",
            "websocket-response-ratelimit",
        ),
    ] {
        assert_eq!(flow.len(), 1, "{title}");
        let e = only_entry(&flow[0], title);
        assert_eq!(e.name, name);
        assert_eq!((e.kind, e.op), (LimitKind::Rate, LimitOp::Consume));
        assert_eq!(e.per_plan, vec![(hp, vec![plan_limit(&m, hp, name).0])]);
    }

    // Otherwise: a regular rate limit, then the invoke the upgrade was copied from.
    let otherwise = switch.otherwise.as_ref().expect("an otherwise branch");
    assert_eq!(otherwise.len(), 2);
    let rate = only_entry(&otherwise[0], "https rate limit");
    assert_eq!(rate.name, "https-ratelimit");
    assert_eq!((rate.kind, rate.op), (LimitKind::Rate, LimitOp::Consume));
    assert_eq!(
        rate.per_plan,
        vec![(hp, vec![plan_limit(&m, hp, "https-ratelimit").0])]
    );
    assert_eq!(otherwise[1].title, "invoke");
    let i = match &otherwise[1].kind {
        PolicyKind::Invoke(i) => i,
        other => panic!("expected invoke, got {other:?}"),
    };
    assert_eq!(i.target_url.as_static(), Some(ECHO_URL));
    assert_eq!(i.verb, None, "verb keep");
    assert_eq!(i.timeout, w.timeout);
    assert_eq!(i.follow_redirects, w.follow_redirects);
    assert_eq!(i.inject_proxy_headers, w.inject_proxy_headers);
    assert!(i.parameter_control.allow && i.parameter_control.patterns.is_empty());
    assert!(!i.header_control.allow && i.header_control.patterns.is_empty());
    assert!(i.username.is_none() && i.password.is_none() && i.tls_profile.is_none());
}

#[test]
fn check_prints_the_recipe_tree() {
    let out = run_wsgate(&["check", "--config", shipped().to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "wsgate check failed:\n{}", out.stderr);
    let s = &out.stdout;
    let section = s
        .split("\napi ")
        .find(|p| p.starts_with("test-yahel-websocket-https-api:1.0.0"))
        .unwrap_or_else(|| panic!("no section for the https API in\n{s}"));
    // Each line in order, with the nesting the seed's screenshot shows.
    let want = [
        "      - switch \"switch\"",
        "          case request.websocket = true:",
        "            - ratelimit \"count limit\" source plan-named",
        "                count-limit websocket-connections inc",
        "            - websocket-upgrade \"websocket-upgrade\" -> http://127.0.0.1:8081/",
        "                request-assembly (per client message):",
        "                  - ratelimit \"request rate limit\" source plan-named",
        "                      rate-limit websocket-request-ratelimit consume",
        "                response-assembly (per backend message):",
        "                  - ratelimit \"response rate limit\" source plan-named",
        "                      rate-limit websocket-response-ratelimit consume",
        "          otherwise:",
        "            - ratelimit \"https rate limit\" source plan-named",
        "                rate-limit https-ratelimit consume",
        "            - invoke \"invoke\"",
    ];
    let mut from = 0;
    for line in want {
        match section[from..].find(line) {
            Some(i) => from += i + line.len(),
            None => panic!("{line:?} missing (or out of order) in\n{section}"),
        }
    }
    for line in [
        "demo-app: client id demo-client-id, plan test-yahel-websocket-https-product:1.0.0/default-plan",
        "assembly rate limit https-ratelimit: 60/1minute (60 per 60s), hard, is-client",
    ] {
        assert!(s.contains(line), "{line:?} missing in\n{s}");
    }
}

#[test]
fn the_seed_files_are_shipped_as_published() {
    // The first recipe stays the seed's own text: spot-check what the second recipe's files
    // must not have changed in it.
    let api = std::fs::read_to_string(repo_root().join("conf/test-yahel-websocket-api_1.0.0.yaml"))
        .expect("read the seed API");
    assert!(api.contains("      value: https://mywebsocketendpointhere.com/\n"));
    assert!(!api.contains("switch"));
    assert!(!api.contains("invoke"));
    let product =
        std::fs::read_to_string(repo_root().join("conf/test-yahel-websocket-product_1.0.0.yaml"))
            .expect("read the seed product");
    assert!(product.contains("    apis:\n      test-yahel-websocket-api1.0.0: {}\n"));
    assert!(!product.contains("https"));
}
