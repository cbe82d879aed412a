//! What happens around an invoke's backend call (spec §1.10, §2.3): the policies after the
//! invoke see the backend's answer as `message.*` and may change it or throw, `finally` runs
//! last; redirects are followed when `follow-redirects` asks for it; backend connections are
//! reused when `persistent-connection` allows. The backend is Python's `http.server`
//! (`tests/peers/http_echo.py`), which reports the port each request came from, so the test can
//! tell which requests shared a backend connection.

use crate::common;

use crate::common::admin::log_digest;
use crate::common::limits::error_body;
use crate::common::*;

const CLIENT: &str = "flow-client-id";
const HOST: &str = "gw.test";

const API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: flow-api
  x-ibm-name: flow-api
basePath: /flow
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9
      description: the HTTP backend (overridden by the catalog)
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
                - throw:
                    version: 2.1.0
                    title: no websockets here
                    name: NotHere
                    message: plain calls only
            - otherwise:
                - set-variable:
                    version: 2.0.0
                    title: set on the request
                    actions:
                      - set: message.headers.X-Request-Side
                        value: before the call
                - invoke:
                    version: 2.0.0
                    title: invoke
{{INVOKE}}
                - set-variable:
                    version: 2.0.0
                    title: read the answer
                    actions:
                      - set: message.headers.X-Seen-Status
                        value: $(message.status.code)
                      - set: message.headers.X-Seen-Backend
                        value: $(message.headers.x-backend)
                      - set: message.headers.X-Seen-Request-Side
                        value: '[$(message.headers.X-Request-Side)]'
                      - clear: message.headers.X-Multi
                      - add: message.headers.X-Added
                        value: first
                      - add: message.headers.X-Added
                        value: second
                - switch:
                    version: 2.0.0
                    title: on the status
                    case:
                      - condition: $statusCode() = 404
                        execute:
                          - throw:
                              version: 2.1.0
                              title: missing
                              name: MissingItem
                              message: no such item
                              error-status-code: 404
                      - condition: $statusCode() = 202 and $header('X-Backend') = 'http_echo'
                        execute:
                          - set-variable:
                              version: 2.0.0
                              title: accepted becomes created
                              actions:
                                - set: message.status.code
                                  value: '201'
                      - condition: $statusCode() = 418
                        execute:
                          - throw:
                              version: 2.1.0
                              title: uncaught
                              name: Teapot
                              message: the backend is a teapot
                              error-status-code: 502
      - set-variable:
          version: 2.0.0
          title: after the outer switch
          actions:
            - set: message.headers.X-After-Switch
              value: 'yes'
    catch:
      - errors: [MissingItem]
        execute:
          - set-variable:
              version: 2.0.0
              title: gone
              actions:
                - set: message.status.code
                  value: '410'
    finally:
      - set-variable:
          version: 2.0.0
          title: finally
          actions:
            - set: message.headers.X-Finally
              value: $(message.status.code)
paths:
  /:
    get: {responses: {'200': {description: success}}}
    post: {responses: {'200': {description: success}}}
  /{rest}:
    get: {responses: {'200': {description: success}}}
    post: {responses: {'200': {description: success}}}
  /{a}/{b}:
    get: {responses: {'200': {description: success}}}
    post: {responses: {'200': {description: success}}}
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

const PRODUCT: &str = r#"info:
  version: 1.0.0
  title: flow-product
  name: flow-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    rate-limits:
      default:
        value: 1000/1hour
        hard-limit: true
    apis:
      flow-api1.0.0: {}
apis:
  flow-api1.0.0:
    $ref: flow-api_1.0.0.yaml
product: 1.0.0
"#;

fn start(backend: &PyHttpEcho, invoke: &[(&str, &str)]) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let mut fields = vec![
        (
            "target-url",
            "$(target-url)$(request.path)$(request.search)",
        ),
        ("timeout", "10"),
        ("parameter-control", "{type: allowlist, values: ['^keep']}"),
    ];
    fields.extend_from_slice(invoke);
    let fields: String = fields
        .iter()
        .map(|(k, v)| format!("                    {k}: {v}\n"))
        .collect();
    conf.write(
        "flow-api_1.0.0.yaml",
        &common::conf::fill(API, &[("INVOKE", fields.trim_end())]),
    );
    conf.write("flow-product_1.0.0.yaml", PRODUCT);
    let mut yaml = GatewayYaml::open(&backend.url()).application(
        "flow-app",
        CLIENT,
        "flow-product",
        "default-plan",
    );
    yaml.products = vec!["flow-product_1.0.0.yaml".into()];
    let path = yaml.write(&conf);
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

fn get(c: &mut RawConn, target: &str, extra: &str) -> HttpResponse {
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nX-IBM-Client-Id: {CLIENT}\r\n{extra}\r\n"
    );
    c.send(head.as_bytes()).expect("send the request");
    c.read_response_to("GET")
        .unwrap_or_else(|e| panic!("GET {target}: no response: {e}"))
}

fn seen(r: &HttpResponse) -> SeenHttp {
    assert_eq!(r.header("x-backend"), Some("http_echo"), "{r:?}");
    SeenHttp::parse(&r.body_text())
}

fn all<'r>(r: &'r HttpResponse, name: &str) -> Vec<&'r str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---- message.* after the invoke --------------------------------------------------------------

#[test]
fn policies_after_the_invoke_read_and_change_the_backends_answer() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");

    let r = get(&mut c, "/flow/items", "");
    assert_eq!(r.status, 200, "{r:?}");
    // Read: the backend's status and headers, not the request's.
    assert_eq!(r.header("x-seen-status"), Some("200"), "{r:?}");
    assert_eq!(r.header("x-seen-backend"), Some("http_echo"), "{r:?}");
    assert_eq!(
        r.header("x-seen-request-side"),
        Some("[]"),
        "a header set on the request is not one of the answer's: {r:?}"
    );
    assert_eq!(r.header("x-request-side"), None, "{r:?}");
    // Changed: a cleared header is gone, added values are all there, the outer flow and
    // `finally` ran after the inner switch.
    assert!(all(&r, "x-multi").is_empty(), "X-Multi was cleared: {r:?}");
    assert_eq!(all(&r, "x-added"), ["first", "second"], "{r:?}");
    assert_eq!(r.header("x-after-switch"), Some("yes"), "{r:?}");
    assert_eq!(r.header("x-finally"), Some("200"), "{r:?}");
    // The body is the backend's, framed as it framed it.
    assert_eq!(seen(&r).path, "/flow/items");

    // A status the flow rewrites: 202 from the backend goes out as 201, with its body.
    let r = get(&mut c, "/flow/status-202", "");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.reason, "Created", "{r:?}");
    assert_eq!(r.header("x-seen-status"), Some("202"), "{r:?}");
    assert_eq!(r.header("x-finally"), Some("201"), "{r:?}");
    assert_eq!(seen(&r).path, "/flow/status-202");

    // The connection stayed usable through both.
    let r = get(&mut c, "/flow/again", "");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_throw_after_the_invoke_replaces_the_answer_and_catch_and_finally_see_it() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);

    // 404 from the backend: the flow throws MissingItem, the catch makes it 410.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/status-404", "");
    assert_eq!(r.status, 410, "{r:?}");
    assert_eq!(r.body_text(), error_body(410, "no such item"), "{r:?}");
    assert!(c.wait_closed(), "an error answer closes the connection");

    // 418: a throw no catch entry names: its own status and message.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/status-418", "");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_text(),
        error_body(502, "the backend is a teapot"),
        "{r:?}"
    );
    assert!(c.wait_closed(), "an error answer closes the connection");

    // Nothing is left behind: a new connection is served normally.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/fine", "");
    assert_eq!(r.status, 200, "{r:?}");
}

// ---- follow-redirects ----------------------------------------------------------------------

/// Sends `method target` with an optional body and reads the answer.
fn call(c: &mut RawConn, method: &str, target: &str, body: Option<&[u8]>) -> HttpResponse {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nX-IBM-Client-Id: {CLIENT}\r\n");
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    c.send(head.as_bytes()).expect("send the head");
    if let Some(b) = body {
        c.send(b).expect("send the body");
    }
    c.read_response_to(method)
        .unwrap_or_else(|e| panic!("{method} {target}: no response: {e}"))
}

#[test]
fn redirects_are_followed_when_asked_to_and_bounded() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[("follow-redirects", "true")]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");

    // Relative, then absolute: the client sees only where it landed.
    let r = get(
        &mut c,
        "/flow/status-302?keep-location=/landed/here%3Fkeep=1",
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let s = seen(&r);
    assert_eq!(
        (s.path.as_str(), s.query.as_str()),
        ("/landed/here", "keep=1")
    );
    assert_eq!(
        r.header("x-seen-status"),
        Some("200"),
        "the flow ran on the final answer"
    );
    let absolute = format!("{}/landed/absolute", backend.url());
    let r = get(
        &mut c,
        &format!("/flow/status-301?keep-location={absolute}"),
        "",
    );
    assert_eq!(seen(&r).path, "/landed/absolute", "{r:?}");

    // A POST with a body is not sent twice: a 307 goes back to the client...
    let r = call(
        &mut c,
        "POST",
        "/flow/status-307?keep-location=/elsewhere",
        Some(b"once"),
    );
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(r.header("location"), Some("/elsewhere"), "{r:?}");
    // ...while a 303 is followed as a GET without the body.
    let r = call(
        &mut c,
        "POST",
        "/flow/status-303?keep-location=/after-post",
        Some(b"once"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let s = seen(&r);
    assert_eq!(
        (s.method.as_str(), s.path.as_str(), s.body.as_str()),
        ("GET", "/after-post", "")
    );
    assert_eq!(s.header("content-length"), None, "{s:?}");

    // A loop ends after five redirects: the sixth answer, a redirect, goes to the client.
    // Seven requests so far: two for each followed redirect, one for the 307.
    assert_eq!(backend.requests_at_least(7).len(), 7);
    let r = get(&mut c, "/flow/status-307?keep-location=self", "");
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        backend.requests_at_least(13).len(),
        13,
        "the first call and five redirects"
    );
}

#[test]
fn redirects_go_to_the_client_without_follow_redirects() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/status-302?keep-location=/landed", "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/landed"), "{r:?}");
    assert_eq!(seen(&r).path, "/flow/status-302");
}

// ---- persistent-connection -------------------------------------------------------------------

/// The backend connection (its port) of each of `n` calls, made over `clients` client
/// connections one after another.
fn ports_of_calls(
    gw: &Gateway,
    backend: &PyHttpEcho,
    clients: usize,
    per_client: usize,
) -> Vec<u16> {
    let before = backend.requests().len();
    for _ in 0..clients {
        let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
        for _ in 0..per_client {
            let r = get(&mut c, "/flow/reuse", "");
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let seen = backend.requests_at_least(before + clients * per_client);
    seen[before..].iter().map(|s| s.peer).collect()
}

#[test]
fn backend_connections_carry_later_calls_from_any_client() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);
    let ports = ports_of_calls(&gw, &backend, 4, 5);
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    println!(
        "20 calls over 4 client connections used {} backend connection(s)",
        distinct.len()
    );
    assert_eq!(
        distinct.len(),
        1,
        "one backend connection for calls in sequence: {ports:?}"
    );
    let seen = backend.requests();
    assert!(
        seen.iter().all(|s| s.header("connection").is_none()),
        "a persistent call does not ask the backend to close"
    );
}

#[test]
fn persistent_connection_false_uses_a_connection_per_call() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[("persistent-connection", "false")]);
    let ports = ports_of_calls(&gw, &backend, 2, 5);
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 10, "{ports:?}");
    let seen = backend.requests();
    assert!(
        seen.iter().all(|s| s.header("connection") == Some("close")),
        "each call asks the backend to close"
    );
}

#[test]
fn a_backend_that_closes_or_refuses_keep_alive_gets_a_new_connection() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    // The backend closes after answering, without a word: the next call still succeeds.
    let r = get(&mut c, "/flow/drop-after", "");
    assert_eq!(r.status, 200, "{r:?}");
    let dropped = seen(&r).peer;
    for _ in 0..3 {
        let r = get(&mut c, "/flow/after-drop", "");
        assert_eq!(r.status, 200, "{r:?}");
        assert_ne!(seen(&r).peer, dropped, "a closed connection was used again");
    }
    // An answer with `Connection: close`: the gateway does not keep that connection, and the
    // client's connection is not affected.
    let r = get(&mut c, "/flow/say-close", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection"), None, "{r:?}");
    let closed = seen(&r).peer;
    let r = get(&mut c, "/flow/next", "");
    assert_ne!(seen(&r).peer, closed);
    let kept = seen(&r).peer;
    let r = get(&mut c, "/flow/next", "");
    assert_eq!(
        seen(&r).peer,
        kept,
        "keep-alive resumes with the new connection"
    );
}

#[test]
fn a_kept_connection_that_fails_before_answering_is_retried_only_when_safe() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    let (_conf, gw) = start(&backend, &[]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    // The connection of this call is kept, and the backend drops the next request on it.
    let r = get(&mut c, "/flow/drop-next", "");
    assert_eq!(r.status, 200, "{r:?}");
    let first = seen(&r).peer;
    // A GET goes again on a new connection: the client sees nothing of it.
    let r = get(&mut c, "/flow/retried", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_ne!(seen(&r).peer, first);
    assert!(
        gw.wait_log("trying a new one", DEADLINE),
        "{}",
        log_digest(&gw, 20)
    );

    // A POST is not sent twice, even without a body: the backend may have acted on it.
    let r = get(&mut c, "/flow/drop-next", "");
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(&mut c, "POST", "/flow/not-retried", None);
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_text(),
        error_body(502, "Invalid response from backend"),
        "{r:?}"
    );
}

#[test]
fn a_get_sent_as_a_post_is_not_retried() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    // The client's GET reaches the backend as a POST: the retry rule follows the POST.
    let (_conf, gw) = start(&backend, &[("verb", "POST")]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/drop-next", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen(&r).method, "POST", "{r:?}");
    let r = get(&mut c, "/flow/not-retried", "");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_text(),
        error_body(502, "Invalid response from backend"),
        "{r:?}"
    );
    let answered = backend.requests_at_least(1);
    assert!(
        answered.iter().all(|s| s.path != "/flow/not-retried"),
        "the POST went to the backend a second time: {answered:?}"
    );
}

/// `Authorization` for `username: gw-user`, `password: gw-secret`.
const BASIC: &str = "Basic Z3ctdXNlcjpndy1zZWNyZXQ=";

#[test]
fn redirects_to_another_origin_carry_no_credentials() {
    let (Some(first), Some(other)) = (PyHttpEcho::start_or_skip(), PyHttpEcho::start_or_skip())
    else {
        return;
    };
    let basic = [
        ("follow-redirects", "true"),
        ("username", "gw-user"),
        ("password", "gw-secret"),
    ];
    let (_conf, gw) = start(&first, &basic);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let cookie = "Cookie: session=s3cret\r\n";
    // Within the origin (a relative location), the policy's credentials and the cookie stay.
    let r = get(&mut c, "/flow/status-302?keep-location=/same", cookie);
    let s = seen(&r);
    assert_eq!(s.path, "/same", "{r:?}");
    assert_eq!(s.header("authorization"), Some(BASIC), "{s:?}");
    assert_eq!(s.header("cookie"), Some("session=s3cret"), "{s:?}");
    // To another port, they are left behind.
    let elsewhere = format!("{}/elsewhere", other.url());
    let r = get(
        &mut c,
        &format!("/flow/status-302?keep-location={elsewhere}"),
        cookie,
    );
    let s = seen(&r);
    assert_eq!(s.path, "/elsewhere", "{r:?}");
    assert_eq!(s.header("authorization"), None, "{s:?}");
    assert_eq!(s.header("cookie"), None, "{s:?}");
    // The first backend had its credentials: the two redirecting requests and /same.
    let asked = first.requests_at_least(3);
    assert_eq!(asked[2].header("authorization"), Some(BASIC), "{asked:?}");

    // Without a username, the client's own Authorization is what stays behind.
    let (_conf, gw) = start(&first, &[("follow-redirects", "true")]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let mine = "Authorization: Bearer client-token\r\nCookie: session=s3cret\r\n";
    let r = get(&mut c, "/flow/status-302?keep-location=/same", mine);
    assert_eq!(
        seen(&r).header("authorization"),
        Some("Bearer client-token")
    );
    // Another host name for the same address is another origin too.
    let by_name = format!("http://localhost:{}/by-name", first.port());
    let r = get(
        &mut c,
        &format!("/flow/status-307?keep-location={by_name}"),
        mine,
    );
    let s = seen(&r);
    assert_eq!(s.path, "/by-name", "{r:?}");
    assert_eq!(s.header("authorization"), None, "{s:?}");
    assert_eq!(s.header("cookie"), None, "{s:?}");
}

// ---- stop-on-error -------------------------------------------------------------------------

#[test]
fn stop_on_error_hands_only_the_listed_errors_to_the_assembly() {
    let Some(backend) = PyHttpEcho::start_or_skip() else {
        return;
    };
    // OperationError listed: a 418 stops the flow at the invoke. No catch entry names it, so
    // the error itself is the answer, and the throw after the invoke never runs.
    let (_conf, gw) = start(&backend, &[("stop-on-error", "[OperationError]")]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/status-418", "");
    assert_eq!(r.status, 418, "{r:?}");
    assert!(
        r.body_text().contains("The backend reported an error"),
        "{r:?}"
    );
    assert!(c.wait_closed(), "an error answer closes the connection");
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    assert_eq!(get(&mut c, "/flow/fine", "").status, 200);
    drop(gw);

    // Names that are not an invoke's errors, or not written exactly, stop nothing: the answer
    // goes on through the flow, whose throw makes it 502.
    let (_conf, gw) = start(
        &backend,
        &[(
            "stop-on-error",
            "[SOAPError, operationerror, ConnectionError]",
        )],
    );
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = get(&mut c, "/flow/status-418", "");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_text(),
        error_body(502, "the backend is a teapot"),
        "{r:?}"
    );
}
