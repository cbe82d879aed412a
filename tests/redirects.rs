//! Redirects a `websocket-upgrade` follows (`follow-redirects: true`): credentials go only to
//! the origin of the policy's `target-url`. A redirect to another origin (scheme, host or port)
//! drops the policy's Basic credentials, the client's `Authorization` and `Cookie`, and the TLS
//! profile's client certificate; a redirect from TLS to plain text is refused with a 502. The
//! backends are tungstenite (and rustls) servers that record every request they get.

use crate::common::conf::OPEN_API;
use crate::common::limits::error_body;
use crate::common::redirect::{Hop, WsRedirector, asking_for_client_cert};
use crate::common::tls::{Leaf, TestCa};
use crate::common::*;

const BASE: &str = "/r";
/// `Authorization` for `username: gw-user`, `password: gw-secret`.
const BASIC: &str = "Basic Z3ctdXNlcjpndy1zZWNyZXQ=";
const COOKIE: &str = "session=s3cret";

/// A gateway whose upgrade policy follows redirects with Basic credentials, starting at
/// `target`, with the TLS profile named `profile` (defined in `yaml`).
fn gateway(conf: &TempConf, target: &str, yaml: GatewayYaml, profile: Option<&str>) -> Gateway {
    let mut api = OpenApi::new("open-api", BASE).target_url(target);
    if let Some(p) = profile {
        api = api.tls_profile(p);
    }
    conf.write_open_apis(std::slice::from_ref(&api));
    let text = api.render().replacen(
        "follow-redirects: false\n",
        "follow-redirects: true\n          username: gw-user\n          password: gw-secret\n",
        1,
    );
    conf.write(OPEN_API, &text);
    Gateway::start(yaml.write(conf), &[])
}

/// The policy's Basic credentials and the client's cookie reached `hop`, or neither did.
fn assert_credentials(hop: &Hop, present: bool) {
    let want = |v: &str| present.then(|| v.to_string());
    assert_eq!(
        hop.header("authorization").map(str::to_string),
        want(BASIC),
        "{hop:?}"
    );
    assert_eq!(
        hop.header("cookie").map(str::to_string),
        want(COOKIE),
        "{hop:?}"
    );
}

#[test]
fn a_redirect_to_another_origin_drops_the_credentials() {
    let landing = WsRedirector::start(&[]);
    let first = WsRedirector::start(&[&landing.url("/landed")]);
    let conf = TempConf::new();
    let gw = gateway(
        &conf,
        &first.url("/start"),
        GatewayYaml::open("unused"),
        None,
    );
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[("Cookie", COOKIE)]).expect("upgrade");
    roundtrip(&mut ws, tungstenite::Message::text("after the redirect"));
    let hops = first.hops_at_least(1);
    assert_credentials(&hops[0], true);
    let hops = landing.hops_at_least(1);
    assert_eq!(hops[0].path, "/landed");
    assert_credentials(&hops[0], false);
}

#[test]
fn a_redirect_within_the_origin_keeps_the_credentials() {
    let backend = WsRedirector::start(&["/again", "/and/again"]);
    let conf = TempConf::new();
    let gw = gateway(
        &conf,
        &backend.url("/start"),
        GatewayYaml::open("unused"),
        None,
    );
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[("Cookie", COOKIE)]).expect("upgrade");
    roundtrip(&mut ws, tungstenite::Message::text("same origin"));
    let hops = backend.hops_at_least(3);
    let paths: Vec<&str> = hops.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/start", "/again", "/and/again"]);
    for hop in &hops {
        assert_credentials(hop, true);
    }
}

#[test]
fn a_redirect_back_after_another_origin_stays_without_credentials() {
    // A, then B, then A again: what B chose on A does not get A's credentials.
    let a = WsRedirector::start(&[]);
    let b = WsRedirector::start(&[&a.url("/back")]);
    a.add_location(&b.url("/b"));
    let conf = TempConf::new();
    let gw = gateway(&conf, &a.url("/start"), GatewayYaml::open("unused"), None);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[("Cookie", COOKIE)]).expect("upgrade");
    roundtrip(&mut ws, tungstenite::Message::text("back home"));
    let on_a = a.hops_at_least(2);
    assert_credentials(&on_a[0], true);
    assert_eq!(on_a[1].path, "/back");
    assert_credentials(&on_a[1], false);
    assert_credentials(&b.hops_at_least(1)[0], false);
}

/// A CA, a leaf for `localhost`, a client certificate, and the gateway YAML whose profile
/// `backend-ca` trusts the CA and presents the client certificate.
fn tls_setup(conf: &TempConf) -> (TestCa, Leaf, GatewayYaml) {
    let ca = TestCa::new(conf, "backends");
    let server = ca.leaf(conf, "backend", &["localhost"]);
    let client = ca.leaf(conf, "gateway-client", &["wsgate.test"]);
    let yaml = GatewayYaml::open("unused").tls_profile(
        "backend-ca",
        Some(&ca.pem_path),
        Some((&client.cert_path, &client.key_path)),
    );
    (ca, server, yaml)
}

#[test]
fn the_client_certificate_goes_only_to_the_first_origin() {
    let conf = TempConf::new();
    let (ca, leaf, yaml) = tls_setup(&conf);
    let config = asking_for_client_cert(&leaf, &ca);
    // Same host, another port: another origin.
    let landing = WsRedirector::start_tls(&[], config.clone());
    let first = WsRedirector::start_tls(&["/same", &landing.url("/landed")], config);
    let gw = gateway(&conf, &first.url("/start"), yaml, Some("backend-ca"));
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[("Cookie", COOKIE)]).expect("upgrade");
    roundtrip(&mut ws, tungstenite::Message::text("over TLS"));
    let on_first = first.hops_at_least(2);
    for hop in &on_first {
        assert_eq!(
            hop.client_certs, 2,
            "the profile's chain, to its origin: {hop:?}"
        );
        assert_credentials(hop, true);
    }
    let landed = &landing.hops_at_least(1)[0];
    assert_eq!(landed.client_certs, 0, "{landed:?}");
    assert_credentials(landed, false);
}

#[test]
fn a_redirect_from_tls_to_plain_text_is_refused() {
    let conf = TempConf::new();
    let (_ca, leaf, yaml) = tls_setup(&conf);
    let plain = WsRedirector::start(&[]);
    // The same host and port in clear text would be no better: the scheme alone decides.
    let first = WsRedirector::start_tls(&[&plain.url("/clear")], leaf.server_config());
    let gw = gateway(&conf, &first.url("/start"), yaml, Some("backend-ca"));
    let (status, body) = expect_refused(ws_connect(&gw.url(BASE), &[("Cookie", COOKIE)]));
    assert_eq!(status, 502);
    assert_eq!(
        body,
        error_body(502, "Redirect from TLS to plain text refused")
    );
    assert_eq!(first.hops_at_least(1).len(), 1);
    assert!(plain.hops().is_empty(), "{:?}", plain.hops());
}
