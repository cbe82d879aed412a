//! The `invoke` policy (spec §2.3, decisions 9 and 10) over real sockets: plain HTTP/1.1 calls
//! through the seed's second recipe (a `switch` on `request.websocket` whose `otherwise` takes a
//! rate limit and then invokes the backend) reach an independent backend, Python's
//! `http.server` (`tests/peers/http_echo.py`), which answers with what it received.
//!
//! Clients are raw sockets, so every byte is the test's own: kept-alive connections carry many
//! requests, and the request-smuggling forms (spec-violating heads and bodies) are sent as they
//! are. The WebSocket case of the same switch goes to a tungstenite echo backend.
//!
//! Every gateway runs with the test clock aligned to the start of a minute, so a minute window
//! cannot roll over in the middle of a test.

use crate::common;

use std::net::TcpListener;

use crate::common::admin::*;
use crate::common::limits::error_body;
use crate::common::*;
use tungstenite::Message;

const BASE: &str = "/inv";
const CLIENT: &str = "inv-client-id";
/// The `Host` the test clients send.
const HOST: &str = "gw.test:8443";

const INVOKE_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: invoke-api
  x-ibm-name: invoke-api
basePath: /inv
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9
      description: the HTTP backend (overridden by the catalog)
      encoded: false
    ws-target-url:
      value: ws://127.0.0.1:9/
      description: the WebSocket backend (overridden by the catalog)
      encoded: false
  gateway: datapower-api-gateway
  type: rest
  phase: realized
  enforced: true
  testable: true
  assembly:
    execute:
      - switch:
          version: 2.0.0
          title: switch
          case:
            - condition: request.websocket = true
              execute:
                - ratelimit:
                    version: 2.2.0
                    title: count limit
                    source: plan-named
                    count-limit:
                      - name: websocket-connections
                        operation: inc
                - websocket-upgrade:
                    version: 2.0.0
                    title: websocket-upgrade
                    target-url: $(ws-target-url)
                    timeout: 60
                    parameter-control:
                      type: allowlist
                      values: []
                    request-assembly:
                      execute:
                        - ratelimit:
                            version: 2.2.0
                            title: request rate limit
                            source: plan-named
                            rate-limit:
                              - name: websocket-request-ratelimit
                                operation: consume
                    response-assembly:
                      execute:
                        - ratelimit:
                            version: 2.2.0
                            title: response rate limit
                            source: plan-named
                            rate-limit:
                              - name: websocket-response-ratelimit
                                operation: consume
            - otherwise:
                - ratelimit:
                    version: 2.2.0
                    title: https rate limit
                    source: plan-named
                    rate-limit:
                      - name: https-ratelimit
                        operation: consume
                - invoke:
                    version: 2.0.0
                    title: invoke
{{INVOKE}}
paths:
  /:
    get: {responses: {'200': {description: success}}}
    put: {responses: {'200': {description: success}}}
    post: {responses: {'200': {description: success}}}
    delete: {responses: {'200': {description: success}}}
    patch: {responses: {'200': {description: success}}}
    head: {responses: {'200': {description: success}}}
  /items/{id}:
    get: {responses: {'200': {description: success}}}
    put: {responses: {'200': {description: success}}}
    post: {responses: {'200': {description: success}}}
    delete: {responses: {'200': {description: success}}}
    patch: {responses: {'200': {description: success}}}
    head: {responses: {'200': {description: success}}}
securityDefinitions:
  clientID:
    type: apiKey
    in: header
    name: X-IBM-Client-Id
security:
  - clientID: []
schemes:
  - https
  - wss
"#;

const INVOKE_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: invoke-product
  name: invoke-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    rate-limits:
      default:
        value: {{PLAN_RATE}}
        hard-limit: true
    assembly-rate-limits:
      websocket-request-ratelimit:
        - value: 3/1minute
          hard-limit: true
          is-client: true
      websocket-response-ratelimit:
        - value: 5/1minute
          hard-limit: true
          is-client: true
      https-ratelimit:
        - value: {{HTTPS_RATE}}
          hard-limit: true
          is-client: true
    assembly-count-limits:
      websocket-connections:
        - value: 2
          hard-limit: true
          is-client: true
          auto-decrement: true
    apis:
      invoke-api1.0.0: {}
apis:
  invoke-api1.0.0:
    $ref: invoke-api_1.0.0.yaml
product: 1.0.0
"#;

/// The invoke fields most tests use: the client's path appended by `$(request.path)`, query
/// parameters starting with `keep` copied, proxy headers injected, header-control left at its
/// default (copy all).
const DEFAULT_INVOKE: &[(&str, &str)] = &[
    ("target-url", "$(target-url)$(request.path)"),
    ("timeout", "10"),
    ("inject-proxy-headers", "true"),
    ("parameter-control", "{type: allowlist, values: ['^keep']}"),
];

/// One gateway's config: the invoke policy's fields, the plan's rate limit and the rate limit
/// of the `otherwise` branch, and where the two targets point.
struct Setup<'a> {
    invoke: &'a [(&'a str, &'a str)],
    plan_rate: &'a str,
    https_rate: &'a str,
    http_target: String,
    ws_target: String,
}

impl<'a> Setup<'a> {
    fn new(http_target: &str) -> Setup<'a> {
        Setup {
            invoke: DEFAULT_INVOKE,
            plan_rate: "1000/1hour",
            https_rate: "1000/1minute",
            http_target: http_target.to_string(),
            ws_target: "ws://127.0.0.1:9/".to_string(),
        }
    }

    fn invoke(mut self, fields: &'a [(&'a str, &'a str)]) -> Self {
        self.invoke = fields;
        self
    }

    fn start(&self) -> (TempConf, Gateway) {
        let conf = TempConf::new();
        let fields: String = self
            .invoke
            .iter()
            .map(|(k, v)| format!("                    {k}: {v}\n"))
            .collect();
        conf.write(
            "invoke-api_1.0.0.yaml",
            &common::conf::fill(INVOKE_API, &[("INVOKE", fields.trim_end())]),
        );
        conf.write(
            "invoke-product_1.0.0.yaml",
            &common::conf::fill(
                INVOKE_PRODUCT,
                &[
                    ("PLAN_RATE", self.plan_rate),
                    ("HTTPS_RATE", self.https_rate),
                ],
            ),
        );
        let mut yaml = GatewayYaml::open(&self.http_target)
            .property("ws-target-url", &self.ws_target)
            .application("inv-app", CLIENT, "invoke-product", "default-plan");
        yaml.products = vec!["invoke-product_1.0.0.yaml".into()];
        let path = yaml.write(&conf);
        let gw = start_with_test_clock(&path, 60);
        (conf, gw)
    }
}

fn connect(gw: &Gateway) -> RawConn {
    RawConn::connect(gw.addr("plain")).expect("connect to the gateway")
}

/// Sends one request as `client` (no client id header when `None`) with `headers` and, when
/// given, a body with its Content-Length; returns the response read for `method`.
fn send_as(
    c: &mut RawConn,
    client: Option<&str>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {HOST}\r\n");
    if let Some(id) = client {
        head.push_str(&format!("X-IBM-Client-Id: {id}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    c.send(head.as_bytes()).expect("send the request head");
    if let Some(b) = body {
        c.send(b).expect("send the request body");
    }
    c.read_response_to(method)
        .unwrap_or_else(|e| panic!("{method} {target}: no response: {e}"))
}

/// `send_as` with the test application's client id.
fn send(
    c: &mut RawConn,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    send_as(c, Some(CLIENT), method, target, headers, body)
}

/// What the backend received, from the JSON body of its answer.
fn seen(r: &HttpResponse) -> SeenHttp {
    assert!(
        r.header("x-backend") == Some("http_echo"),
        "not the backend's answer: {r:?}"
    );
    SeenHttp::parse(&r.body_text())
}

/// Asserts the gateway's own error answer (spec §4.3): status, the exact JSON body, its content
/// type, a transaction id, `Connection: close`, and that the gateway then closes.
fn assert_own_error(c: &mut RawConn, r: &HttpResponse, status: u16, more_information: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body_text(), error_body(status, more_information), "{r:?}");
    assert_error_framing(c, r);
}

/// The parts of an own error answer that do not depend on its text.
fn assert_error_framing(c: &mut RawConn, r: &HttpResponse) {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert!(
        r.header("x-global-transaction-id")
            .is_some_and(|v| !v.is_empty()),
        "{r:?}"
    );
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "an own error answer says Connection: close: {r:?}"
    );
    assert!(
        c.wait_closed(),
        "the gateway kept the connection open after {} (read {:?})",
        r.status,
        String::from_utf8_lossy(c.buffered())
    );
}

fn log_tail(gw: &Gateway) -> String {
    log_digest(gw, 40)
}

// ---- plain calls through switch → invoke --------------------------------------------------

#[test]
fn get_is_proxied_with_headers_and_query_filtered_and_proxy_headers_added() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);
    let r = send(
        &mut c,
        "GET",
        "/inv/items/7?keep=1&drop=2&keepalso=3",
        &[
            ("X-Custom", "custom value"),
            ("Accept", "application/json"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "nominated by Connection"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let s = seen(&r);
    assert_eq!(s.method, "GET");
    assert_eq!(s.version, "HTTP/1.1");
    assert_eq!(s.path, "/inv/items/7", "$(request.path) is the whole path");
    assert_eq!(s.query, "keep=1&keepalso=3", "allowlist ^keep");
    assert_eq!(
        s.header("host"),
        Some(format!("127.0.0.1:{}", backend.port()).as_str())
    );
    assert_eq!(s.header("x-custom"), Some("custom value"));
    assert_eq!(s.header("accept"), Some("application/json"));
    for gone in ["x-ibm-client-id", "x-hop", "keep-alive", "te"] {
        assert!(
            s.header(gone).is_none(),
            "{gone} reached the backend: {s:?}"
        );
    }
    assert!(
        s.header("connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-hop")),
        "the client's Connection reached the backend: {s:?}"
    );
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s.header("x-forwarded-host"), Some(HOST));
    let port = gw.addr("plain").port().to_string();
    assert_eq!(s.header("x-forwarded-port"), Some(port.as_str()));
    assert_eq!(
        s.header("x-forwarded-proto"),
        Some("https"),
        "a TLS-offloaded listener"
    );
    assert!(s.body.is_empty());

    // The backend's answer comes back with the gateway's transaction id; its hop-by-hop
    // headers stay behind.
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("x-global-transaction-id")
            .is_some_and(|v| !v.is_empty()),
        "{r:?}"
    );
    let multi: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-multi"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(multi, ["one", "two"], "{r:?}");
    assert!(r.header("keep-alive").is_none(), "{r:?}");
    assert!(
        r.header("connection")
            .is_none_or(|v| v.eq_ignore_ascii_case("keep-alive")),
        "{r:?}"
    );

    // The connection stays open for the next call.
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen(&r).path, "/inv/");
    assert_eq!(seen(&r).query, "");
}

#[test]
fn post_put_delete_patch_keep_their_method_and_body_on_one_connection() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);
    let json = br#"{"name":"widget","size":3}"#;
    let calls: [(&str, Option<&[u8]>); 5] = [
        ("POST", Some(json)),
        ("PUT", Some(b"replacement body")),
        ("DELETE", None),
        ("PATCH", Some(b"{\"size\":4}")),
        ("POST", Some(b"")),
    ];
    for (i, (method, body)) in calls.into_iter().enumerate() {
        let target = format!("/inv/items/{i}");
        let r = send(
            &mut c,
            method,
            &target,
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(r.status, 200, "{method}: {r:?}\n{}", log_tail(&gw));
        let s = seen(&r);
        assert_eq!(s.method, method);
        assert_eq!(s.path, target);
        let sent = body.unwrap_or_default();
        assert_eq!(s.body.as_bytes(), sent, "{method}");
        if !sent.is_empty() {
            assert_eq!(
                s.header("content-length"),
                Some(sent.len().to_string().as_str()),
                "{method}: {s:?}"
            );
        }
        assert!(s.header("transfer-encoding").is_none(), "{method}: {s:?}");
        assert_eq!(s.header("content-type"), Some("application/json"));
        assert!(s.header("x-ibm-client-id").is_none());
    }
    assert_eq!(backend.requests_at_least(calls.len()).len(), calls.len());
}

#[test]
fn backend_status_is_relayed_and_head_204_304_have_no_body() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);

    // Each answer without a body is followed by a GET on the same connection: it can only be
    // read correctly if no body bytes came after the head.
    let r = send(&mut c, "HEAD", "/inv/items/head", &[], None);
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    assert!(
        r.header("content-length").is_some_and(|v| v != "0"),
        "HEAD keeps the backend's Content-Length: {r:?}"
    );
    assert!(r.header("x-global-transaction-id").is_some(), "{r:?}");
    let after_head = send(&mut c, "GET", "/inv/items/after-head", &[], None);
    assert_eq!(after_head.status, 200, "{after_head:?}");
    assert_eq!(seen(&after_head).path, "/inv/items/after-head");

    for status in [204u16, 304] {
        let r = send(
            &mut c,
            "GET",
            &format!("/inv/items/status-{status}"),
            &[],
            None,
        );
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.header("x-backend"), Some("http_echo"));
        assert!(r.header("x-global-transaction-id").is_some(), "{r:?}");
        let next = send(
            &mut c,
            "GET",
            &format!("/inv/items/after-{status}"),
            &[],
            None,
        );
        assert_eq!(next.status, 200, "after {status}: {next:?}");
        assert_eq!(seen(&next).path, format!("/inv/items/after-{status}"));
    }

    // Statuses with a body, errors included, are the backend's, not the gateway's.
    for status in [201u16, 404, 500] {
        let r = send(
            &mut c,
            "GET",
            &format!("/inv/items/status-{status}"),
            &[],
            None,
        );
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(seen(&r).path, format!("/inv/items/status-{status}"));
    }
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_eq!(
        r.status, 200,
        "still open after the backend's errors: {r:?}"
    );

    let methods: Vec<String> = backend
        .requests_at_least(1)
        .into_iter()
        .map(|s| s.method)
        .collect();
    assert_eq!(methods[0], "HEAD", "{methods:?}");
}

#[test]
fn verb_override_and_basic_credentials() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let fields: &[(&str, &str)] = &[
        ("target-url", "$(target-url)$(request.path)"),
        ("verb", "PUT"),
        ("username", "alice"),
        ("password", "s3cret"),
    ];
    let (_c, gw) = Setup::new(&backend.url()).invoke(fields).start();
    let mut c = connect(&gw);
    let r = send(
        &mut c,
        "POST",
        "/inv/items/9",
        &[("Authorization", "Bearer client-token")],
        Some(b"payload"),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let s = seen(&r);
    assert_eq!(s.method, "PUT", "verb: PUT overrides the client's POST");
    assert_eq!(s.body, "payload");
    // base64("alice:s3cret")
    assert_eq!(
        s.header_all("authorization"),
        ["Basic YWxpY2U6czNjcmV0"],
        "{s:?}"
    );
    // Without inject-proxy-headers, none are added.
    assert!(s.header("x-forwarded-for").is_none(), "{s:?}");
    assert!(s.header("x-forwarded-host").is_none(), "{s:?}");
}

#[test]
fn target_url_is_used_as_written_and_header_control_allowlist_filters() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    // No $(request.path): the client's path below the base path is not appended; no
    // parameter-control: no client query parameter is copied.
    let fields: &[(&str, &str)] = &[
        ("target-url", "$(target-url)/fixed/path?static=1"),
        ("header-control", "{type: allowlist, values: ['^X-Keep']}"),
    ];
    let (_c, gw) = Setup::new(&backend.url()).invoke(fields).start();
    let mut c = connect(&gw);
    let r = send(
        &mut c,
        "GET",
        "/inv/items/42?client=1",
        &[
            ("X-Keep-Me", "yes"),
            ("x-keep-lower", "yes"),
            ("X-Other", "no"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let s = seen(&r);
    assert_eq!(s.path, "/fixed/path");
    assert_eq!(s.query, "static=1");
    assert_eq!(s.header("x-keep-me"), Some("yes"));
    assert_eq!(
        s.header("x-keep-lower"),
        Some("yes"),
        "header names match case-insensitively"
    );
    assert!(s.header("x-other").is_none(), "{s:?}");
    assert!(s.header("x-ibm-client-id").is_none(), "{s:?}");

    // $(request.search) carries the whole client query when the target asks for it.
    let fields: &[(&str, &str)] = &[("target-url", "$(target-url)/q$(request.search)")];
    let (_c2, gw2) = Setup::new(&backend.url()).invoke(fields).start();
    let mut c2 = connect(&gw2);
    let r = send(&mut c2, "GET", "/inv/items/1?a=1&b=two", &[], None);
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw2));
    let s = seen(&r);
    assert_eq!(s.path, "/q");
    assert_eq!(s.query, "a=1&b=two");
}

#[test]
fn chunked_upload_is_forwarded_chunked() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);
    let head = format!(
        "POST /inv/items/upload HTTP/1.1\r\nHost: {HOST}\r\nX-IBM-Client-Id: {CLIENT}\r\n\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.send(head.as_bytes()).expect("send head");
    // Chunk by chunk, so the body is streamed rather than arriving with the head.
    let chunks: [&[u8]; 4] = [
        b"5\r\nhello\r\n",
        b"8\r\n, world!\r\n",
        b"1a\r\n",
        b"abcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
    ];
    for chunk in chunks {
        c.send(chunk).expect("send a chunk");
    }
    let r = c.read_response_to("POST").expect("response to the upload");
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let s = seen(&r);
    assert_eq!(s.method, "POST");
    assert_eq!(s.body, "hello, world!abcdefghijklmnopqrstuvwxyz");
    assert_eq!(s.header("transfer-encoding"), Some("chunked"), "{s:?}");
    assert!(s.header("content-length").is_none(), "{s:?}");
    assert_eq!(
        s.raw_body.as_deref(),
        Some("5\r\nhello\r\n8\r\n, world!\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"),
        "the chunked encoding is forwarded as it came"
    );
    // The gateway found the end of the chunked body: the connection carries the next call.
    let r = send(&mut c, "GET", "/inv/items/next", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen(&r).path, "/inv/items/next");
}

// ---- keep-alive and limits ----------------------------------------------------------------

#[test]
fn hundred_calls_on_one_connection_count_against_the_plan_then_429_and_close() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let mut setup = Setup::new(&backend.url());
    setup.plan_rate = "100/1minute";
    let (_c, gw) = setup.start();
    let mut c = connect(&gw);
    for n in 1..=100u32 {
        let r = send(&mut c, "GET", &format!("/inv/items/{n}"), &[], None);
        assert_eq!(r.status, 200, "call {n}: {r:?}\n{}", log_tail(&gw));
        assert!(
            r.header("x-ratelimit-limit")
                .is_some_and(|v| v.contains("name=default,100;")),
            "call {n}: {r:?}"
        );
        let remaining = format!("name=default,{};", 100 - n);
        assert!(
            r.header("x-ratelimit-remaining")
                .is_some_and(|v| v.contains(&remaining)),
            "call {n}: expected {remaining} in {r:?}"
        );
    }
    let r = send(&mut c, "GET", "/inv/items/101", &[], None);
    assert_eq!(r.header("x-ratelimit-limit"), Some("name=default,100;"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("name=default,0;"));
    assert_own_error(&mut c, &r, 429, "Rate Limit exceeded");
    let paths: Vec<String> = backend
        .requests_at_least(100)
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(paths.len(), 100, "the refused call reached the backend");
    assert_eq!(paths[99], "/inv/items/100");
}

#[test]
fn every_call_on_a_connection_runs_the_preflow_again() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let r = send_as(&mut c, Some("unknown-id"), "GET", "/inv/", &[], None);
    assert_own_error(&mut c, &r, 401, "Invalid client id or secret.");

    let mut c = connect(&gw);
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    let r = send(&mut c, "GET", "/inv/nothing/here", &[], None);
    assert_own_error(&mut c, &r, 404, "No resources match requested URI");
    assert_eq!(backend.requests_at_least(2).len(), 2);
}

#[test]
fn rate_limit_before_invoke_refuses_the_fourth_call_with_429() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let mut setup = Setup::new(&backend.url());
    setup.https_rate = "3/1minute";
    let (_c, gw) = setup.start();
    let mut c = connect(&gw);
    for n in 1..=3u32 {
        let r = send(&mut c, "GET", "/inv/", &[], None);
        assert_eq!(r.status, 200, "call {n}: {r:?}\n{}", log_tail(&gw));
        let remaining = format!("name=https-ratelimit,{};", 3 - n);
        assert!(
            r.header("x-ratelimit-remaining")
                .is_some_and(|v| v.contains(&remaining)),
            "call {n}: expected {remaining} in {r:?}"
        );
    }
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert!(
        r.header("x-ratelimit-remaining")
            .is_some_and(|v| v.contains("name=https-ratelimit,0;")),
        "{r:?}"
    );
    assert_own_error(&mut c, &r, 429, "Assembly Rate Limit exceeded");
    assert_eq!(backend.requests_at_least(3).len(), 3);
    // The next minute has three calls again.
    advance_clock(&gw, 60);
    let mut c = connect(&gw);
    assert_eq!(send(&mut c, "GET", "/inv/", &[], None).status, 200);
}

// ---- request smuggling: 400 and close -----------------------------------------------------

/// Sends `bytes` (a request the gateway must refuse, followed by a request that must never be
/// seen) and expects 400 with the JSON body and a closed connection. Then a valid call on a new
/// connection reaches the backend, and the smuggled one never did. With `head_refused`, the
/// backend must not have seen any request before the valid one.
fn expect_smuggling_refused(bytes: &str, head_refused: bool) {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_c, gw) = Setup::new(&backend.url()).start();
    let mut c = connect(&gw);
    c.send(bytes.as_bytes()).expect("send");
    let r = c
        .read_response_to("POST")
        .unwrap_or_else(|e| panic!("no answer to {bytes:?}: {e}\n{}", log_tail(&gw)));
    assert_eq!(r.status, 400, "{bytes:?}: {r:?}\n{}", log_tail(&gw));
    assert!(
        r.body_text()
            .starts_with("{\"httpCode\":\"400\",\"httpMessage\":\"Bad Request\""),
        "{r:?}"
    );
    assert_error_framing(&mut c, &r);

    let mut probe = connect(&gw);
    let r = send(&mut probe, "GET", "/inv/items/probe", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    let seen: Vec<String> = backend
        .requests_at_least(1)
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert!(
        !seen.iter().any(|t| t.contains("smuggled")),
        "the smuggled request reached the backend: {seen:?}"
    );
    if head_refused {
        assert_eq!(
            seen,
            ["/inv/items/probe"],
            "the refused request was forwarded"
        );
    }
}

/// A request head for `POST /inv/` with the test's client id, the given extra header lines
/// (each ending in CRLF unless the test breaks that on purpose), then the blank line.
fn post_head(lines: &str) -> String {
    format!("POST /inv/ HTTP/1.1\r\nHost: {HOST}\r\nX-IBM-Client-Id: {CLIENT}\r\n{lines}\r\n")
}

fn smuggled() -> String {
    format!("GET /inv/items/smuggled HTTP/1.1\r\nHost: {HOST}\r\nX-IBM-Client-Id: {CLIENT}\r\n\r\n")
}

#[test]
fn smuggling_content_length_with_transfer_encoding_is_400() {
    let req = post_head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")
        + "0\r\n\r\n"
        + &smuggled();
    expect_smuggling_refused(&req, true);
}

#[test]
fn smuggling_two_different_content_lengths_is_400() {
    let req = post_head("Content-Length: 5\r\nContent-Length: 48\r\n") + "hello" + &smuggled();
    expect_smuggling_refused(&req, true);
}

#[test]
fn smuggling_bad_chunk_size_is_400() {
    let req =
        post_head("Transfer-Encoding: chunked\r\n") + "zz\r\nhello\r\n0\r\n\r\n" + &smuggled();
    // The head was valid and may have gone to the backend before the body showed the error.
    expect_smuggling_refused(&req, false);
}

#[test]
fn smuggling_obsolete_line_folding_is_400() {
    let req = post_head("Content-Length: 0\r\nX-Folded: first\r\n second\r\n") + &smuggled();
    expect_smuggling_refused(&req, true);
}

#[test]
fn smuggling_bare_lf_in_the_head_is_400() {
    let req = post_head("Content-Length: 0\nX-After-Bare-Lf: 1\r\n") + &smuggled();
    expect_smuggling_refused(&req, true);
}

// ---- backend failures ---------------------------------------------------------------------

#[test]
fn backend_down_is_500_could_not_connect() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port();
    let (_c, gw) = Setup::new(&format!("http://127.0.0.1:{port}")).start();
    let mut c = connect(&gw);
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_own_error(&mut c, &r, 500, "Could not connect to endpoint");
    // A failed plain call is no failed upgrade, in `/stats` as in `/metrics`.
    assert_eq!(stat(&gw, "upgrades_failed"), 0);
    assert_eq!(stat(&gw, "calls"), 0);
}

#[test]
fn backend_that_never_answers_is_504_after_the_invoke_timeout() {
    // Connections complete in the kernel's backlog and are never accepted, so nothing is ever
    // read or answered.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind the silent backend");
    let url = format!(
        "http://127.0.0.1:{}",
        silent.local_addr().expect("addr").port()
    );
    let fields: &[(&str, &str)] = &[
        ("target-url", "$(target-url)$(request.path)"),
        ("timeout", "1"),
    ];
    let (_c, gw) = Setup::new(&url).invoke(fields).start();
    let mut c = connect(&gw);
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_own_error(&mut c, &r, 504, "Timeout");
    drop(silent);
}

// ---- one path, two protocols --------------------------------------------------------------

#[test]
fn the_same_path_upgrades_websockets_and_invokes_plain_calls() {
    let Some(http) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let ws_backend = EchoBackend::start();
    let mut setup = Setup::new(&http.url());
    setup.ws_target = ws_backend.target_url();
    let (_c, gw) = setup.start();

    // The WebSocket case: the count limit, then the upgrade.
    let (mut ws, resp) = ws_connect(
        &gw.url(&format!("{BASE}/items/5")),
        &[("X-IBM-Client-Id", CLIENT)],
    )
    .unwrap_or_else(|e| panic!("upgrade: {e} {:?}\n{}", http_error(&e), log_tail(&gw)));
    assert_eq!(resp.status(), 101);
    assert_eq!(
        common::limits::header(&resp, "x-countlimit-remaining").as_deref(),
        Some("name=websocket-connections,1;")
    );
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    expect_limit_total(&gw, "websocket-connections", 1, "one upgrade");

    // A plain GET on the same path takes the otherwise branch; it takes no count.
    let mut c = connect(&gw);
    let r = send(&mut c, "GET", "/inv/items/5", &[], None);
    assert_eq!(r.status, 200, "{r:?}\n{}", log_tail(&gw));
    let s = seen(&r);
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("GET", "/inv/items/5")
    );
    assert!(
        !r.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with("x-countlimit")),
        "{r:?}"
    );
    assert!(
        r.header("x-ratelimit-remaining")
            .is_some_and(|v| v.contains("name=https-ratelimit,999;")),
        "{r:?}"
    );
    expect_limit_total(&gw, "websocket-connections", 1, "a plain GET");
    assert_eq!(ws_backend.accepted(), 1, "the GET went to the HTTP backend");

    // The WebSocket's message limit (3 a minute) still holds after the plain call.
    ws.send(Message::text("one too many")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    expect_no_counts(&gw, "the websocket closed");
    let r = send(&mut c, "GET", "/inv/", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(http.requests_at_least(2).len(), 2);
}
