//! `X-Forwarded-*` with `inject-proxy-headers`, for plain calls (invoke, against a raw HTTP
//! backend) and WebSocket upgrades (against the tungstenite backend): a client's own
//! `X-Forwarded-Host/-Proto/-Port` never reach the backend unless its peer is one of the
//! gateway config's `trusted-proxies`, `X-Forwarded-For` always ends with the peer, and a
//! trusted proxy's `X-Forwarded-For` names the client in the activity log.

use crate::common::raw_http::RawHttpBackend;
use crate::common::*;

const API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: fwd-api
  x-ibm-name: fwd-api
basePath: /fwd
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9
    ws-target-url:
      value: ws://127.0.0.1:9/
  activity-log:
    enabled: true
    success-content: activity
    error-content: activity
  assembly:
    execute:
      - switch:
          version: 2.0.0
          title: switch
          case:
            - condition: request.websocket = true
              execute:
                - websocket-upgrade:
                    version: 2.0.0
                    title: websocket-upgrade
                    target-url: $(ws-target-url)
                    inject-proxy-headers: true
            - otherwise:
                - invoke:
                    version: 2.0.0
                    title: invoke
                    target-url: $(target-url)$(request.path)
                    inject-proxy-headers: true
paths:
  /{item}:
    get: {responses: {'200': {description: ok}}}
security: []
schemes:
  - http
  - ws
"#;

const PRODUCT: &str = r#"info:
  version: 1.0.0
  title: fwd-product
  name: fwd-product
plans:
  default-plan:
    title: Default Plan
    apis:
      fwd-api1.0.0: {}
apis:
  fwd-api1.0.0:
    $ref: fwd-api_1.0.0.yaml
"#;

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// What a client claims about the hops before it.
const CLAIMS: &[(&str, &str)] = &[
    ("X-Forwarded-For", "198.51.100.7, 127.0.0.9"),
    ("X-Forwarded-Host", "front.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "443"),
];

/// A gateway in front of both backends; `trusted` is the `trusted-proxies` list, if any.
fn gateway(http: &RawHttpBackend, ws: &EchoBackend, trusted: Option<&str>) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write("fwd-api_1.0.0.yaml", API);
    conf.write("fwd-product_1.0.0.yaml", PRODUCT);
    let trusted = trusted.map_or(String::new(), |t| format!("trusted-proxies: {t}\n"));
    let path = conf.write(
        "gateway.yaml",
        &format!(
            "listeners:\n  - address: 127.0.0.1:0\n\
             products: [fwd-product_1.0.0.yaml]\n\
             catalog:\n  properties:\n    target-url: {}\n    ws-target-url: {}\n{trusted}",
            http.url(),
            ws.target_url()
        ),
    );
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

/// One plain GET with the claims; returns the head the backend received.
fn plain_call(gw: &Gateway, http: &RawHttpBackend) -> String {
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let mut head = String::from("GET /fwd/item HTTP/1.1\r\nHost: gw.test\r\n");
    for (n, v) in CLAIMS {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.send(head.as_bytes()).expect("send");
    let r = c.read_response_to("GET").expect("the answer");
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log());
    http.wait_heads(1).remove(0)
}

/// One upgrade with the claims; returns what the backend received.
fn upgrade(gw: &Gateway, ws: &EchoBackend) -> SeenRequest {
    let (mut client, _) = ws_connect(&gw.url("/fwd/item"), CLAIMS)
        .unwrap_or_else(|e| panic!("upgrade: {e}\n{}", gw.log()));
    let _ = client.close(None);
    ws.last_request().expect("the backend saw the upgrade")
}

/// Every value of `name` in a raw head, in order.
fn values<'h>(head: &'h str, name: &str) -> Vec<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The `client` of the activity records on standard output.
fn logged_clients(gw: &Gateway) -> Vec<String> {
    assert!(
        gw.wait_stdout_count("\"client\":", 1, DEADLINE),
        "no activity record; stdout: {}",
        gw.stdout()
    );
    gw.stdout()
        .lines()
        .filter_map(|l| l.split_once("\"client\":\"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(c, _)| c.to_string()))
        .collect()
}

#[test]
fn a_client_cannot_set_forwarded_host_proto_or_port() {
    let http = RawHttpBackend::fixed(HELLO);
    let ws = EchoBackend::start();
    let (_conf, gw) = gateway(&http, &ws, None);
    let port = gw.addr("plain").port().to_string();

    let head = plain_call(&gw, &http);
    assert_eq!(
        values(&head, "x-forwarded-for"),
        ["198.51.100.7, 127.0.0.9, 127.0.0.1"],
        "the claim, then the peer: {head}"
    );
    assert_eq!(values(&head, "x-forwarded-host"), ["gw.test"], "{head}");
    assert_eq!(values(&head, "x-forwarded-proto"), ["http"], "{head}");
    assert_eq!(values(&head, "x-forwarded-port"), [port.as_str()], "{head}");
    let clients = logged_clients(&gw);
    assert!(
        clients[0].starts_with("127.0.0.1:"),
        "the peer is the client: {clients:?}"
    );

    let seen = upgrade(&gw, &ws);
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        ["198.51.100.7, 127.0.0.9, 127.0.0.1"],
        "{seen:?}"
    );
    let host = gw.addr("plain").to_string();
    assert_eq!(
        seen.header_all("x-forwarded-host"),
        [host.as_str()],
        "{seen:?}"
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), ["http"], "{seen:?}");
    assert_eq!(
        seen.header_all("x-forwarded-port"),
        [port.as_str()],
        "{seen:?}"
    );
}

#[test]
fn a_trusted_proxy_forwards_its_values_and_names_the_client() {
    let http = RawHttpBackend::fixed(HELLO);
    let ws = EchoBackend::start();
    let (_conf, gw) = gateway(&http, &ws, Some("[127.0.0.0/8, 'fd00::/8']"));

    let head = plain_call(&gw, &http);
    assert_eq!(
        values(&head, "x-forwarded-for"),
        ["198.51.100.7, 127.0.0.9, 127.0.0.1"],
        "{head}"
    );
    assert_eq!(
        values(&head, "x-forwarded-host"),
        ["front.example"],
        "{head}"
    );
    assert_eq!(values(&head, "x-forwarded-proto"), ["https"], "{head}");
    assert_eq!(values(&head, "x-forwarded-port"), ["443"], "{head}");
    // 127.0.0.9 is trusted too: the client is the right-most hop that is not.
    assert_eq!(logged_clients(&gw), ["198.51.100.7"]);

    let seen = upgrade(&gw, &ws);
    assert_eq!(
        seen.header_all("x-forwarded-host"),
        ["front.example"],
        "{seen:?}"
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), ["https"], "{seen:?}");
    assert_eq!(seen.header_all("x-forwarded-port"), ["443"], "{seen:?}");
}

#[test]
fn a_bad_trusted_proxy_range_is_a_load_error_with_its_line() {
    use wsgate::config::{Overrides, Severity, load};
    let conf = TempConf::new();
    let path = conf.write(
        "gateway.yaml",
        "listeners:\n  - address: 127.0.0.1:0\ntrusted-proxies:\n  - 10.0.0.0/8\n  - 10.0.0.0/40\n",
    );
    let errors: Vec<String> = match load(&path, &Overrides::default()) {
        Ok(_) => panic!("a /40 IPv4 range loaded"),
        Err(ds) => ds
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                let file = d.file.file_name().unwrap_or_default().to_string_lossy();
                format!("{file}:{}: {}: {}", d.line, d.field, d.message)
            })
            .collect(),
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("gateway.yaml:5: trusted-proxies[1]: '10.0.0.0/40'"),
        "{errors:?}"
    );
    assert!(errors[0].contains("from 0 to 32"), "{errors:?}");
}
