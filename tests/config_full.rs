//! The `full` fixture: every supported policy, property precedence, catalog- and gateway-named
//! limits, two products sharing an API, a non-enforced API, TLS listeners and profiles.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use wsgate::config::{Loaded, Overrides, Severity, load};
use wsgate::model::*;
use wsgate::route::{Route, RouteTable};

/// A copy of the fixture with a server certificate, its key and a CA certificate generated for
/// this run: the loader builds TLS settings from them, and no key is committed.
fn dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/full");
        let dst = std::env::temp_dir().join(format!("wsgate-config-full-{}", std::process::id()));
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        let server = rcgen::generate_simple_self_signed(vec!["api.example.com".into()]).unwrap();
        std::fs::write(dst.join("server.pem"), server.cert.pem()).unwrap();
        std::fs::write(dst.join("server.key"), server.signing_key.serialize_pem()).unwrap();
        // A key others can read is a warning of its own; this test counts the others.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dst.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["backend-ca.test".into()]).unwrap();
        std::fs::write(dst.join("ca.pem"), ca.cert.pem()).unwrap();
        dst
    })
    .clone()
}

fn loaded(o: &Overrides) -> Loaded {
    match load(&dir().join("gateway.yaml"), o) {
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

fn api<'a>(m: &'a Model, name: &str) -> &'a Api {
    m.apis.iter().find(|a| a.name == name).expect(name)
}

fn plan(m: &Model, name: &str) -> PlanIdx {
    m.plans.iter().position(|p| p.name == name).expect(name) as PlanIdx
}

fn limit(m: &Model, name: &str, plan: Option<PlanIdx>) -> LimitIdx {
    m.limits
        .iter()
        .position(|l| l.name == name && l.plan == plan)
        .expect(name) as LimitIdx
}

fn ratelimit(p: &Policy) -> &RateLimit {
    match &p.kind {
        PolicyKind::RateLimit(r) => r,
        other => panic!("expected ratelimit, got {other:?}"),
    }
}

#[test]
fn only_expected_warnings() {
    let l = loaded(&Overrides::default());
    let w: Vec<String> = l.warnings.iter().map(|d| d.message.clone()).collect();
    assert_eq!(l.warnings.len(), 2, "{w:?}");
    assert!(l.warnings.iter().all(|d| d.severity == Severity::Warning));
    assert!(w[0].contains("enforced is false"), "{w:?}");
    assert!(w[1].contains("trailing / is ignored"), "{w:?}");
}

#[test]
fn settings() {
    let m = loaded(&Overrides::default()).model;
    let s = &m.settings;
    assert_eq!(s.listeners.len(), 2);
    let tls = s.listeners[1].tls.as_ref().expect("tls listener");
    assert_eq!(s.listeners[1].addr, "[::1]:18443".parse().unwrap());
    assert!(!s.listeners[1].tls_offloaded);
    assert_eq!(tls.certs.len(), 1);
    assert_eq!(tls.certs[0].cert_chain, dir().join("server.pem"));
    assert_eq!(tls.certs[0].private_key, dir().join("server.key"));
    assert_eq!(tls.certs[0].server_names, vec!["api.example.com"]);
    assert_eq!(s.admin, None);
    let b = &s.bounds;
    assert_eq!(b.max_connections, 100);
    assert_eq!(b.max_pending_per_address, 10);
    assert_eq!(b.max_message_size, 1 << 20);
    assert_eq!(b.idle_timeout, Duration::from_secs(300));
    assert_eq!(b.header_timeout, Duration::from_millis(500));
    assert_eq!(b.handshake_timeout, Duration::from_secs(3));
    assert_eq!(b.close_grace, Duration::ZERO);
    assert_eq!(b.shutdown_grace, Duration::from_secs(2));
    assert_eq!(b.buffer_bound, 32 << 10);
    assert_eq!(b.over_limit, OverLimitAction::Drop);
    assert_eq!(m.tls_profiles.len(), 1);
    assert_eq!(m.tls_profiles[0].ca_file, Some(dir().join("ca.pem")));
}

#[test]
fn command_line_listeners_replace_plain_ones_only() {
    let o = Overrides {
        listen: Some(vec![
            "127.0.0.1:28080".parse().unwrap(),
            "127.0.0.1:28081".parse().unwrap(),
        ]),
        ..Overrides::default()
    };
    let m = loaded(&o).model;
    let l = &m.settings.listeners;
    assert_eq!(l.len(), 3);
    assert!(l[0].tls.is_some(), "the TLS listener stays");
    assert_eq!(l[1].addr, "127.0.0.1:28080".parse().unwrap());
    assert_eq!(l[2].addr, "127.0.0.1:28081".parse().unwrap());
    assert!(l[1].tls_offloaded && l[2].tls_offloaded && l[1].tls.is_none());
}

#[test]
fn products_plans_and_shared_apis() {
    let m = loaded(&Overrides::default()).model;
    assert_eq!(m.apis.len(), 2, "api-c is not enforced");
    let (gold, silver, basic) = (plan(&m, "gold"), plan(&m, "silver"), plan(&m, "basic"));
    let a = m.apis.iter().position(|x| x.name == "api-a").unwrap() as ApiIdx;
    let b = m.apis.iter().position(|x| x.name == "api-b").unwrap() as ApiIdx;
    assert_eq!(api(&m, "api-a").plans, vec![gold, silver, basic]);
    assert_eq!(api(&m, "api-b").plans, vec![gold]);
    assert_eq!(m.plans[gold as usize].apis, vec![a, b]);
    assert_eq!(m.plans[silver as usize].apis, vec![a], "plan apis restrict");
    assert_eq!(m.plans[basic as usize].apis, vec![a], "api-c is dropped");
    assert_eq!(m.products[1].version, "2.0.0");
    assert_eq!(m.products[1].plans, vec![basic]);

    let g = &m.plans[gold as usize];
    let d = &m.limits[g.rate_limits[0] as usize];
    assert_eq!(d.name, "default", "legacy rate-limit is named default");
    assert!(d.hard);
    assert_eq!(g.burst_limits.len(), 1);
    let burst = &m.limits[g.burst_limits[0] as usize];
    assert_eq!((burst.kind, burst.hard), (LimitKind::Burst, true));
    let conns = &m.limits[limit(&m, "conns", Some(gold)) as usize];
    assert!(!conns.auto_decrement && conns.hard && !conns.is_client);
    let per_day = &m.limits[limit(&m, "per-day", Some(silver)) as usize];
    assert_eq!(per_day.value, LimitValue::Unlimited);
    let zero = &m.limits[limit(&m, "conns", Some(basic)) as usize];
    assert_eq!(zero.value, LimitValue::Unlimited);

    let gw = &m.limits[limit(&m, "gw-msgs", None) as usize];
    assert_eq!(gw.level, LimitLevel::GatewayNamed);
    assert!(gw.use_api_name && gw.is_client && !gw.hard);
    assert_eq!(gw.weight, "message.attributes.parse.DocumentSize");
    assert_eq!(
        gw.dynamic_value.as_ref().unwrap().parts,
        vec![Part::Var("request.headers.x-tenant".into())]
    );
    let cat = &m.limits[limit(&m, "catalog-conns", None) as usize];
    assert_eq!(cat.level, LimitLevel::CatalogNamed);

    let apps: Vec<(&str, PlanIdx, bool)> = m
        .applications
        .iter()
        .map(|a| (a.name.as_str(), a.plan, a.client_secret.is_some()))
        .collect();
    assert_eq!(
        apps,
        vec![
            ("gold-app", gold, true),
            ("silver-id", silver, false),
            ("other", basic, false)
        ]
    );
}

#[test]
fn security_and_operations() {
    let m = loaded(&Overrides::default()).model;
    let a = api(&m, "api-a");
    assert_eq!(a.schemes, Schemes(Schemes::WSS | Schemes::HTTPS));
    let r = &a.security.requirements;
    assert_eq!(r.len(), 2);
    let id = r[0].client_id.as_ref().unwrap();
    let secret = r[0].client_secret.as_ref().unwrap();
    assert_eq!((id.in_header, id.name.as_str()), (true, "x-client"));
    assert_eq!(
        (secret.in_header, secret.name.as_str()),
        (true, "x-ibm-client-secret")
    );
    let q = r[1].client_id.as_ref().unwrap();
    assert_eq!((q.in_header, q.name.as_str()), (false, "client_id"));
    assert!(r[1].client_secret.is_none());

    assert_eq!(a.operations[1].path, "/items/{id}");
    assert_eq!(
        a.operations[1].segments,
        vec![Some("items".to_string()), None]
    );
    assert_eq!(
        a.operations[1].operation_ids,
        vec![(Methods::GET, "getItem".to_string())]
    );
    assert!(a.operations[1].methods.allows("POST"));
    assert!(api(&m, "api-b").security.requirements.is_empty());
    assert_eq!(api(&m, "api-b").base_path, "/a/b");

    let t = RouteTable::new(&m.apis);
    let ai = m.apis.iter().position(|x| x.name == "api-a").unwrap() as ApiIdx;
    let bi = m.apis.iter().position(|x| x.name == "api-b").unwrap() as ApiIdx;
    assert_eq!(
        t.lookup("/a/b/things/special", "PUT"),
        Route::Found {
            api: bi,
            operation: 1
        }
    );
    assert_eq!(
        t.lookup("/a/b/things/special", "GET"),
        Route::Found {
            api: bi,
            operation: 0
        }
    );
    assert_eq!(
        t.lookup("/a/items/7", "POST"),
        Route::Found {
            api: ai,
            operation: 1
        }
    );
    assert_eq!(t.lookup("/a/bc", "GET"), Route::NoResource { api: ai });
    assert_eq!(t.lookup("/c", "GET"), Route::NoApi);
}

#[test]
fn properties_follow_precedence() {
    let m = loaded(&Overrides::default()).model;
    let a = api(&m, "api-a");
    // The API's catalogs.prod value beats its own value; the gateway catalog adds `region`.
    assert_eq!(m.property(a, "backend"), Some("ws://127.0.0.1:18081/prod"));
    assert_eq!(m.property(a, "region"), Some("eu"));
    assert_eq!(m.property(a, "greeting"), Some("hello"));

    let o = Overrides {
        properties: vec![
            ("backend".into(), "wss://cli.example/".into()),
            ("region".into(), "us".into()),
        ],
        ..Overrides::default()
    };
    let m = loaded(&o).model;
    let a = api(&m, "api-a");
    assert_eq!(m.property(a, "backend"), Some("wss://cli.example/"));
    assert_eq!(m.property(a, "region"), Some("us"));
    match &a.assembly.execute[0].kind {
        PolicyKind::SetVariable(actions) => {
            assert_eq!(actions[0].value.as_static(), Some("hello-us"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn policies() {
    let m = loaded(&Overrides::default()).model;
    let a = api(&m, "api-a");
    let ex = &a.assembly.execute;
    assert_eq!(ex.len(), 2);
    assert!(ex[0].origin.ends_with("api-a.yaml:48"), "{}", ex[0].origin);

    let PolicyKind::SetVariable(actions) = &ex[0].kind else {
        panic!("set-variable")
    };
    assert_eq!(actions.len(), 3);
    assert_eq!(
        (actions[0].op, actions[0].variable.as_str()),
        (SetOp::Set, "tenant")
    );
    assert_eq!(actions[0].value.as_static(), Some("hello-eu"));
    assert_eq!(actions[0].value_type, ValueType::Any);
    assert_eq!(actions[1].op, SetOp::Add);
    assert_eq!(actions[1].value.as_static(), Some("hello"));
    assert_eq!(actions[1].value_type, ValueType::String);
    assert_eq!(actions[2].op, SetOp::Clear);

    let PolicyKind::Switch(sw) = &ex[1].kind else {
        panic!("switch")
    };
    assert_eq!(ex[1].title, "websocket or not");
    assert_eq!(sw.cases.len(), 1);
    let case = &sw.cases[0];
    assert_eq!(
        case.source,
        "request.websocket = true and $(greeting) = \"hello\""
    );
    assert_eq!(
        case.condition.source(),
        "request.websocket = true and \"hello\" = \"hello\""
    );
    assert_eq!(case.execute.len(), 3);

    let cat = ratelimit(&case.execute[0]);
    assert_eq!(cat.source, LimitSource::CatalogNamed);
    assert_eq!(cat.entries[0].fixed, vec![limit(&m, "catalog-conns", None)]);
    assert!(cat.entries[0].per_plan.is_empty());

    let conns = ratelimit(&case.execute[1]);
    let (gold, silver, basic) = (plan(&m, "gold"), plan(&m, "silver"), plan(&m, "basic"));
    assert_eq!(
        conns.entries[0].per_plan,
        vec![
            (gold, vec![limit(&m, "conns", Some(gold))]),
            (silver, vec![limit(&m, "conns", Some(silver))]),
            (basic, vec![limit(&m, "conns", Some(basic))]),
        ]
    );

    let PolicyKind::WebSocketUpgrade(w) = &case.execute[2].kind else {
        panic!("websocket-upgrade")
    };
    assert_eq!(
        w.backend.target_url.parts,
        vec![
            Part::Literal("ws://127.0.0.1:18081/prod?t=".into()),
            Part::Var("tenant".into())
        ]
    );
    assert_eq!(w.backend.timeout, Duration::from_secs(5));
    assert!(w.backend.follow_redirects && !w.backend.inject_proxy_headers);
    assert_eq!(w.backend.tls_profile, Some(0));
    assert_eq!(w.backend.username.as_deref(), Some("user"));
    assert_eq!(w.backend.password.as_deref(), Some("hello"));
    assert!(w.backend.header_control.allow);
    assert_eq!(w.backend.header_control.patterns.len(), 2);
    assert!(!w.backend.parameter_control.allow);
    let gw = ratelimit(&w.request_assembly[0]);
    assert_eq!(gw.source, LimitSource::GatewayNamed);
    assert_eq!(gw.entries[0].fixed, vec![limit(&m, "gw-msgs", None)]);
    match &w.response_assembly[0].kind {
        PolicyKind::Log(l) => {
            assert_eq!(l.mode, "gather-only");
            assert_eq!(l.level, Some(LogContent::Header));
        }
        other => panic!("{other:?}"),
    }

    let otherwise = sw.otherwise.as_ref().expect("otherwise");
    let pd = ratelimit(&otherwise[0]);
    assert_eq!(pd.source, LimitSource::PlanDefault);
    let names: Vec<(&str, LimitKind)> = pd
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("burst", LimitKind::Burst),
            ("default", LimitKind::Rate),
            ("per-minute", LimitKind::Rate),
            ("per-day", LimitKind::Rate),
        ]
    );
    assert_eq!(
        pd.entries[1].per_plan,
        vec![(gold, vec![limit(&m, "default", Some(gold))])]
    );
    let PolicyKind::Invoke(inv) = &otherwise[1].kind else {
        panic!("invoke")
    };
    assert_eq!(inv.verb.as_deref(), Some("POST"));
    assert!(inv.stop_on.connection && !inv.stop_on.operation);
    assert!(!inv.persistent_connection);
    assert!(
        inv.backend.parameter_control.allow && inv.backend.parameter_control.patterns.is_empty()
    );
    assert!(!inv.backend.header_control.allow);
    assert_eq!(
        inv.backend.target_url.parts,
        vec![
            Part::Literal("http://127.0.0.1:18082".into()),
            Part::Var("request.path".into()),
            Part::Var("request.search".into())
        ]
    );

    let c = &a.assembly.catch;
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].errors, vec!["ConnectionError", "OperationError"]);
    let PolicyKind::Throw(t) = &c[0].execute[0].kind else {
        panic!("throw")
    };
    assert_eq!(t.name, "Upstream");
    assert_eq!(t.status, Some(502));
    assert_eq!(t.reason.as_deref(), Some("Bad Gateway"));
    assert_eq!(
        t.message.as_static(),
        Some("backend ws://127.0.0.1:18081/prod failed")
    );
    assert!(c[1].errors.is_empty());
    match &a.assembly.finally[0].kind {
        PolicyKind::Log(l) => assert_eq!((l.mode.as_str(), l.level), ("send-only", None)),
        other => panic!("{other:?}"),
    }
}
