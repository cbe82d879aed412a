//! How a backend's answer to a plain call reaches the client, against a raw backend that sends
//! exactly the bytes each test gives it: the client's body and framing follow the client's own
//! method and HTTP version and the final status (after the policies that follow the invoke),
//! whatever the backend was asked and answered; the headers that only concern the backend
//! connection stay behind; a 101 is no answer to a plain call.
//!
//! Clients are raw sockets, so that a body where none belongs, or a promised body that never
//! comes, shows up as the next answer failing to parse or as a read that never ends.

use crate::common::raw_http::{RawHttpBackend, Reply};
use crate::common::*;

const API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: answers-api
  x-ibm-name: answers-api
basePath: /ans
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9
  assembly:
    execute:
      - invoke:
          version: 2.0.0
          title: invoke
          target-url: $(target-url)$(request.path)
          timeout: 10
{{VERB}}
      - set-variable:
          version: 2.0.0
          title: the final status a test asks for
          actions:
            - set: message.status.code
              value: $(request.headers.x-final-status)
paths:
  /{item}:
    get: {responses: {'200': {description: ok}}}
    head: {responses: {'200': {description: ok}}}
security: []
schemes:
  - http
"#;

const PRODUCT: &str = r#"info:
  version: 1.0.0
  title: answers-product
  name: answers-product
plans:
  default-plan:
    title: Default Plan
    apis:
      answers-api1.0.0: {}
apis:
  answers-api1.0.0:
    $ref: answers-api_1.0.0.yaml
"#;

/// A gateway in front of `backend`, its invoke sending `verb` when given (else the client's
/// method).
fn gateway(backend: &RawHttpBackend, verb: Option<&str>) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let verb = verb.map_or(String::new(), |v| format!("          verb: {v}"));
    conf.write(
        "answers-api_1.0.0.yaml",
        &crate::common::conf::fill(API, &[("VERB", &verb)]),
    );
    conf.write("answers-product_1.0.0.yaml", PRODUCT);
    let gw = conf.write(
        "gateway.yaml",
        &format!(
            "listeners:\n  - address: 127.0.0.1:0\nadmin: 127.0.0.1:0\n\
             products: [answers-product_1.0.0.yaml]\n\
             catalog:\n  properties:\n    target-url: {}\n",
            backend.url()
        ),
    );
    let g = Gateway::start(&gw, &[]);
    (conf, g)
}

/// Sends `method target` over HTTP/1.`minor` with `extra` header lines.
fn ask(c: &mut RawConn, method: &str, target: &str, minor: u8, extra: &str) {
    let head = format!("{method} {target} HTTP/1.{minor}\r\nHost: gw.test\r\n{extra}\r\n");
    c.send(head.as_bytes()).expect("send the request");
}

fn call(c: &mut RawConn, method: &str, target: &str, extra: &str) -> HttpResponse {
    ask(c, method, target, 1, extra);
    c.read_response_to(method)
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// Asserts that the connection still carries calls: a GET that must come back whole, which it
/// cannot if body bytes of the previous answer came after its head.
fn next_call_works(c: &mut RawConn) {
    let r = call(c, "GET", "/ans/next", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_text(), "hello", "{r:?}");
}

fn has(r: &HttpResponse, name: &str) -> bool {
    r.header(name).is_some()
}

fn says_close(r: &HttpResponse) -> bool {
    r.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: raw\r\n\r\nhello";

// ---- the client's framing follows the final status and the client's method ------------------

#[test]
fn a_flow_that_makes_a_200_a_204_or_304_sends_no_body() {
    let backend = RawHttpBackend::fixed(HELLO);
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    for status in [204u16, 304] {
        let r = call(
            &mut c,
            "GET",
            "/ans/item",
            &format!("X-Final-Status: {status}\r\n"),
        );
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.header("x-backend"), Some("raw"), "{r:?}");
        assert!(!has(&r, "transfer-encoding"), "{r:?}");
        // A 304 may say how long the representation is; a 204 must not (RFC 9110 §8.6).
        let length = if status == 304 { Some("5") } else { None };
        assert_eq!(r.header("content-length"), length, "{r:?}");
        assert!(
            !says_close(&r),
            "the body was framed, so read and dropped: {r:?}"
        );
        next_call_works(&mut c);
    }
}

#[test]
fn a_flow_that_makes_a_304_a_200_sends_an_empty_body_ended_by_close() {
    let backend = RawHttpBackend::fixed(
        b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\n",
    );
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "GET", "/ans/item", "X-Final-Status: 200\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("etag"), Some("\"v1\""), "{r:?}");
    assert!(
        !has(&r, "content-length") && !has(&r, "transfer-encoding"),
        "no body came, so no length can be promised: {r:?}"
    );
    assert!(says_close(&r), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert!(c.wait_closed(), "the empty body ends at close");
}

#[test]
fn a_head_sent_to_the_backend_as_get_gets_no_body() {
    let backend = RawHttpBackend::fixed(HELLO);
    let (_conf, gw) = gateway(&backend, Some("GET"));
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "HEAD", "/ans/item", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-length"),
        Some("5"),
        "the length a GET gets: {r:?}"
    );
    assert!(!says_close(&r), "{r:?}");
    next_call_works(&mut c);
    let heads = backend.wait_heads(2);
    assert!(heads[0].starts_with("GET /ans/item "), "{heads:?}");
}

#[test]
fn a_get_sent_to_the_backend_as_head_gets_headers_and_a_close() {
    let backend =
        RawHttpBackend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: raw\r\n\r\n");
    let (_conf, gw) = gateway(&backend, Some("HEAD"));
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "GET", "/ans/item", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("raw"), "{r:?}");
    assert!(
        !has(&r, "content-length") && !has(&r, "transfer-encoding"),
        "the backend's length is that of a body that does not come: {r:?}"
    );
    assert!(says_close(&r), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert!(c.wait_closed());
    let heads = backend.wait_heads(1);
    assert!(heads[0].starts_with("HEAD /ans/item "), "{heads:?}");
}

// ---- hop-by-hop headers and framing of the answer --------------------------------------------

#[test]
fn an_answer_with_transfer_encoding_and_content_length_loses_the_length() {
    let backend = RawHttpBackend::start(|head| {
        if head.starts_with("GET /ans/next ") {
            return Reply::keep(HELLO);
        }
        Reply::keep(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
               5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..],
        )
    });
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "GET", "/ans/item", "");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{r:?}");
    assert!(!has(&r, "content-length"), "{r:?}");
    assert_eq!(r.body_text(), "hello world", "{r:?}");
    next_call_works(&mut c);
}

#[test]
fn hop_by_hop_headers_of_the_answer_stay_behind() {
    let backend = RawHttpBackend::fixed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\
          Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: X-Sum\r\n\
          Proxy-Authenticate: Basic realm=\"backend\"\r\nProxy-Connection: keep-alive\r\n\
          X-End: kept\r\n\r\nhello",
    );
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "GET", "/ans/item", "");
    assert_eq!(r.status, 200, "{r:?}");
    for gone in [
        "x-hop",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "proxy-connection",
    ] {
        assert!(!has(&r, gone), "{gone} reached the client: {r:?}");
    }
    assert!(
        r.header("connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-hop")),
        "{r:?}"
    );
    assert_eq!(r.header("x-end"), Some("kept"), "{r:?}");
    assert_eq!(r.body_text(), "hello");
    next_call_works(&mut c);
}

#[test]
fn a_101_to_a_plain_call_is_a_502() {
    // Nothing follows the 101: the gateway must not relay it and wait for a final answer.
    let backend = RawHttpBackend::fixed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let r = call(&mut c, "GET", "/ans/item", "");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body_text(),
        crate::common::limits::error_body(502, "Invalid response from backend"),
        "{r:?}"
    );
    assert!(c.wait_closed());
}

#[test]
fn an_http10_client_gets_no_interim_answer() {
    let backend = RawHttpBackend::fixed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    );
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    ask(&mut c, "GET", "/ans/item", 0, "");
    let all = c.read_to_end().expect("read the answer");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text:?}");
    assert!(text.ends_with("\r\n\r\nhello"), "{text:?}");

    // An HTTP/1.1 client still sees it.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    ask(&mut c, "GET", "/ans/item", 1, "");
    let interim = c.read_head().expect("the interim answer");
    assert_eq!(interim.status, 100, "{interim:?}");
    let r = c.read_response_to("GET").expect("the final answer");
    assert_eq!((r.status, r.body_text().as_str()), (200, "hello"), "{r:?}");
}

#[test]
fn an_http10_client_gets_a_chunked_body_decoded_and_ended_by_close() {
    let backend = RawHttpBackend::fixed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
    );
    let (_conf, gw) = gateway(&backend, None);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    ask(&mut c, "GET", "/ans/item", 0, "");
    let r = c.read_head().expect("the answer head");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        !has(&r, "transfer-encoding") && !has(&r, "content-length") && !has(&r, "trailer"),
        "{r:?}"
    );
    assert!(says_close(&r), "{r:?}");
    let body = c.read_to_end().expect("the body, to the close");
    assert_eq!(String::from_utf8_lossy(&body), "hello world");
}
