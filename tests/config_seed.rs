//! Loads the shipped `conf/gateway.yaml` with the seed's API and Product YAML and checks the
//! compiled model. The shipped config also loads a second product (with the seed's API and the
//! WebSocket-and-HTTPS API, see `config_https.rs`); the seed's product is loaded first, so its
//! plan is plan 0 and the seed API is API 0.

use std::path::PathBuf;
use std::time::Duration;
use wsgate::config::{Loaded, Overrides, load, summary};
use wsgate::model::*;
use wsgate::route::{Route, RouteTable};

fn conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml")
}

fn loaded(o: &Overrides) -> Loaded {
    match load(&conf(), o) {
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

/// The limit `name` of the seed's plan (plan 0).
fn limit<'a>(m: &'a Model, name: &str) -> (LimitIdx, &'a LimitDef) {
    plan_limit(m, 0, name)
}

fn plan_limit<'a>(m: &'a Model, plan: PlanIdx, name: &str) -> (LimitIdx, &'a LimitDef) {
    let i = m
        .limits
        .iter()
        .position(|l| l.name == name && l.plan == Some(plan))
        .unwrap_or_else(|| panic!("no limit {name} in plan {plan}"));
    (i as LimitIdx, &m.limits[i])
}

/// The index of the plan of the second shipped product.
fn https_plan(m: &Model) -> PlanIdx {
    let p = m
        .products
        .iter()
        .find(|p| p.name == "test-yahel-websocket-https-product")
        .expect("the second product is loaded");
    assert_eq!(p.plans.len(), 1);
    p.plans[0]
}

fn upgrade(api: &Api) -> &WebSocketUpgrade {
    match &api.assembly.execute[1].kind {
        PolicyKind::WebSocketUpgrade(w) => w,
        other => panic!("expected websocket-upgrade, got {other:?}"),
    }
}

/// The single ratelimit entry of a one-policy message flow.
fn flow_entry(flow: &[Policy]) -> &LimitRef {
    assert_eq!(flow.len(), 1);
    match &flow[0].kind {
        PolicyKind::RateLimit(r) => {
            assert_eq!(r.source, LimitSource::PlanNamed);
            assert_eq!(r.entries.len(), 1);
            &r.entries[0]
        }
        other => panic!("expected ratelimit, got {other:?}"),
    }
}

#[test]
fn loads_without_warnings() {
    let l = loaded(&Overrides::default());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn limits_of_the_default_plan() {
    let m = loaded(&Overrides::default()).model;
    assert_eq!(m.products.len(), 2);
    assert_eq!(m.products[0].name, "test-yahel-websocket-product");
    assert_eq!(m.products[0].version, "1.0.0");
    assert_eq!(m.plans.len(), 2);
    assert_eq!(m.products[0].plans, vec![0]);
    let plan = &m.plans[0];
    assert_eq!(plan.name, "default-plan");
    assert_eq!(plan.title, "Default Plan");
    assert_eq!(plan.apis, vec![0]);

    let (ci, conns) = limit(&m, "websocket-connections");
    assert_eq!(conns.kind, LimitKind::Count);
    assert_eq!(conns.level, LimitLevel::PlanNamed);
    assert_eq!(conns.plan, Some(0));
    assert_eq!(conns.value, LimitValue::Count { max: 2 });
    assert_eq!(conns.value_text, "2");
    assert!(conns.hard && conns.auto_decrement && conns.is_client && conns.cache_only);
    assert!(!conns.use_api_name && !conns.use_app_id && !conns.use_client_id);
    assert_eq!(conns.weight, "1");
    assert!(
        conns
            .origin
            .ends_with("test-yahel-websocket-product_1.0.0.yaml:34")
    );

    let (ri, req) = limit(&m, "websocket-request-ratelimit");
    assert_eq!(req.kind, LimitKind::Rate);
    assert_eq!(
        req.value,
        LimitValue::Rate {
            max: 3,
            period_secs: 60
        }
    );
    assert!(req.hard && req.is_client);
    let (si, resp) = limit(&m, "websocket-response-ratelimit");
    assert_eq!(
        resp.value,
        LimitValue::Rate {
            max: 5,
            period_secs: 60
        }
    );
    assert!(resp.hard && resp.is_client);

    let (di, default) = limit(&m, "default");
    assert_eq!(default.level, LimitLevel::PlanDefault);
    assert_eq!(
        default.value,
        LimitValue::Rate {
            max: 100,
            period_secs: 3600
        }
    );
    assert!(!default.hard && default.is_client);
    assert_eq!(plan.rate_limits, vec![di]);
    assert!(plan.burst_limits.is_empty());

    let named = |n: &str| {
        plan.named
            .iter()
            .find(|(x, _)| x == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(named("websocket-connections"), Some(vec![ci]));
    assert_eq!(named("websocket-request-ratelimit"), Some(vec![ri]));
    assert_eq!(named("websocket-response-ratelimit"), Some(vec![si]));
    assert_eq!(m.limits.iter().filter(|l| l.plan == Some(0)).count(), 4);
}

#[test]
fn api_and_assembly() {
    let m = loaded(&Overrides::default()).model;
    assert_eq!(m.apis.len(), 2);
    let api = &m.apis[0];
    assert_eq!(api.name, "test-yahel-websocket-api");
    assert_eq!(api.version, "1.0.0");
    assert_eq!(api.base_path, "/test-yahel-websocket-api");
    assert_eq!(api.schemes, Schemes(Schemes::HTTPS | Schemes::WSS));
    let hp = https_plan(&m);
    assert_eq!(api.plans, vec![0, hp]);
    assert!(api.cors.enabled);
    assert!(api.activity_log.enabled);
    assert_eq!(api.activity_log.success, LogContent::Activity);
    assert_eq!(api.activity_log.error, LogContent::Payload);

    assert_eq!(api.operations.len(), 1);
    let op = &api.operations[0];
    assert_eq!(op.path, "/");
    assert!(op.segments.is_empty());
    for m in ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"] {
        assert!(op.methods.allows(m), "{m}");
    }
    assert!(!op.methods.allows("OPTIONS"));

    assert_eq!(api.security.requirements.len(), 1);
    let req = &api.security.requirements[0];
    let id = req.client_id.as_ref().expect("client id");
    assert!(id.in_header);
    assert_eq!(id.name, "x-ibm-client-id");
    assert!(req.client_secret.is_none());

    let a = &api.assembly;
    assert_eq!(a.execute.len(), 2);
    assert!(a.catch.is_empty() && a.finally.is_empty());
    assert_eq!(a.execute[0].title, "count limit");
    match &a.execute[0].kind {
        PolicyKind::RateLimit(r) => {
            assert_eq!(r.source, LimitSource::PlanNamed);
            assert_eq!(r.entries.len(), 1);
            let e = &r.entries[0];
            assert_eq!(e.name, "websocket-connections");
            assert_eq!(e.kind, LimitKind::Count);
            assert_eq!(e.op, LimitOp::Inc);
            let (ci, _) = limit(&m, "websocket-connections");
            let (hi, _) = plan_limit(&m, hp, "websocket-connections");
            assert_eq!(e.per_plan, vec![(0, vec![ci]), (hp, vec![hi])]);
            assert!(e.fixed.is_empty());
        }
        other => panic!("expected ratelimit, got {other:?}"),
    }

    let w = upgrade(api);
    assert_eq!(
        w.backend.target_url.as_static(),
        Some("http://127.0.0.1:8081/")
    );
    assert_eq!(w.backend.timeout, Duration::from_secs(60));
    assert!(w.backend.inject_proxy_headers && w.verb_keep && !w.backend.follow_redirects);
    assert!(w.backend.parameter_control.allow && w.backend.parameter_control.patterns.is_empty());
    assert!(!w.backend.header_control.allow && w.backend.header_control.patterns.is_empty());
    assert!(w.backend.header_control.copies("x-anything", true));
    assert!(!w.backend.parameter_control.copies("q", false));
    assert!(
        w.backend.username.is_none()
            && w.backend.password.is_none()
            && w.backend.tls_profile.is_none()
    );

    let rq = flow_entry(&w.request_assembly);
    assert_eq!(rq.name, "websocket-request-ratelimit");
    assert_eq!((rq.kind, rq.op), (LimitKind::Rate, LimitOp::Consume));
    assert_eq!(
        rq.per_plan,
        vec![
            (0, vec![limit(&m, &rq.name).0]),
            (hp, vec![plan_limit(&m, hp, &rq.name).0])
        ]
    );
    let rs = flow_entry(&w.response_assembly);
    assert_eq!(rs.name, "websocket-response-ratelimit");
    assert_eq!((rs.kind, rs.op), (LimitKind::Rate, LimitOp::Consume));
    assert_eq!(
        rs.per_plan,
        vec![
            (0, vec![limit(&m, &rs.name).0]),
            (hp, vec![plan_limit(&m, hp, &rs.name).0])
        ]
    );

    assert_eq!(
        m.property(api, "target-url"),
        Some("http://127.0.0.1:8081/")
    );
}

#[test]
fn command_line_property_wins() {
    let o = Overrides {
        properties: vec![(
            "target-url".into(),
            "wss://backend.example:9443/feed".into(),
        )],
        ..Overrides::default()
    };
    let m = loaded(&o).model;
    let w = upgrade(&m.apis[0]);
    assert_eq!(
        w.backend.target_url.as_static(),
        Some("wss://backend.example:9443/feed")
    );
}

#[test]
fn settings_applications_and_overrides() {
    let m = loaded(&Overrides::default()).model;
    let s = &m.settings;
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].addr, "127.0.0.1:8080".parse().unwrap());
    assert!(s.listeners[0].tls_offloaded && s.listeners[0].tls.is_none());
    assert_eq!(s.admin, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(s.echo, Some("127.0.0.1:8081".parse().unwrap()));
    let d = Bounds::default();
    assert_eq!(s.bounds.max_connections, d.max_connections);
    assert_eq!(s.bounds.max_message_size, 16 << 20);
    assert_eq!(s.bounds.buffer_bound, 64 << 10);
    assert_eq!(s.bounds.idle_timeout, Duration::from_secs(3600));
    assert_eq!(s.bounds.over_limit, OverLimitAction::Close);

    assert_eq!(m.applications.len(), 2);
    let app = &m.applications[0];
    assert_eq!(app.name, "demo-app");
    assert_eq!(app.client_id, "demo-client-id");
    assert!(app.client_secret.is_none());
    assert_eq!(app.plan, https_plan(&m));
    assert_eq!(m.plans[app.plan as usize].name, "default-plan");
    let seed_app = &m.applications[1];
    assert_eq!(seed_app.name, "seed-app");
    assert_eq!(seed_app.client_id, "seed-client-id");
    assert_eq!(seed_app.plan, 0, "seed-app is on the seed's own plan");

    let o = Overrides {
        listen: Some(vec!["127.0.0.1:18080".parse().unwrap()]),
        admin: Some("127.0.0.1:19090".parse().unwrap()),
        ..Overrides::default()
    };
    let m = loaded(&o).model;
    assert_eq!(m.settings.listeners.len(), 1);
    assert_eq!(
        m.settings.listeners[0].addr,
        "127.0.0.1:18080".parse().unwrap()
    );
    assert!(m.settings.listeners[0].tls_offloaded);
    assert_eq!(m.settings.admin, Some("127.0.0.1:19090".parse().unwrap()));
}

#[test]
fn routes() {
    let m = loaded(&Overrides::default()).model;
    let t = RouteTable::new(&m.apis);
    let found = Route::Found {
        api: 0,
        operation: 0,
    };
    assert_eq!(t.lookup("/test-yahel-websocket-api", "GET"), found);
    assert_eq!(t.lookup("/test-yahel-websocket-api/", "GET"), found);
    assert_eq!(t.lookup("/test-yahel-websocket-api", "PATCH"), found);
    assert_eq!(t.lookup("/other", "GET"), Route::NoApi);
    assert_eq!(t.lookup("/test-yahel-websocket-apix", "GET"), Route::NoApi);
    assert_eq!(
        t.lookup("/test-yahel-websocket-api/x", "GET"),
        Route::NoResource { api: 0 }
    );
    assert_eq!(
        t.lookup("/test-yahel-websocket-api", "OPTIONS"),
        Route::MethodNotAllowed {
            api: 0,
            operation: 0
        }
    );
}

#[test]
fn summary_shows_the_policy_tree_limits_and_applications() {
    let m = loaded(&Overrides::default()).model;
    let s = summary(&m);
    for want in [
        "127.0.0.1:8080 plain, TLS offloaded",
        "base path /test-yahel-websocket-api",
        "schemes https wss",
        "/ GET PUT POST DELETE HEAD PATCH",
        "- ratelimit \"count limit\" source plan-named",
        "count-limit websocket-connections inc",
        "- websocket-upgrade \"websocket-upgrade\" -> http://127.0.0.1:8081/",
        "rate-limit websocket-request-ratelimit consume",
        "rate-limit websocket-response-ratelimit consume",
        "plan rate limit default: 100/1hour (100 per 3600s), soft, is-client",
        "assembly count limit websocket-connections: 2 (at most 2 at once), hard, is-client, auto-decrement",
        "seed-app: client id seed-client-id, plan test-yahel-websocket-product:1.0.0/default-plan",
        "demo-app: client id demo-client-id, plan test-yahel-websocket-https-product:1.0.0/default-plan",
        "over-limit close",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    // The request flow is nested below the upgrade.
    let up = s.find("websocket-upgrade \"").unwrap();
    let rq = s.find("request-assembly").unwrap();
    assert!(rq > up);
}
