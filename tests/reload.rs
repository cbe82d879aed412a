//! Reload over real sockets (SIGHUP and `POST /reload`): open WebSockets keep echoing on the
//! limits they started with while new ones get the new config; counts and rate windows carry
//! over; an invalid config changes nothing; a removed limit's counters go with its last
//! connection.
//!
//! Every gateway runs with the test clock aligned to the start of an hour, so no minute window
//! rolls over during a test.

use crate::common;

use crate::common::admin::*;
use crate::common::limits::*;
use crate::common::*;
use tungstenite::Message;

const OVER: &str = "Rate Limit exceeded";

/// The seed product's limit values, each replaced.
struct Values<'a> {
    request: &'a str,
    response: &'a str,
    count: &'a str,
}

const SEED: Values = Values {
    request: "3/1minute",
    response: "5/1minute",
    count: "2",
};

/// Writes the seed API and the seed product with the given limit values (and extra edits).
fn write_product(
    conf: &TempConf,
    v: &Values,
    product_edits: &[(&str, &str)],
    api_edits: &[(&str, &str)],
) {
    let request = format!("value: {}", v.request);
    let response = format!("value: {}", v.response);
    let count = format!("auto-decrement: true\n          value: {}\n", v.count);
    let mut edits: Vec<(&str, &str)> = vec![
        ("value: 3/1minute", &request),
        ("value: 5/1minute", &response),
        ("auto-decrement: true\n          value: 2\n", &count),
    ];
    edits.extend_from_slice(product_edits);
    write_seed_with(conf, &edits, api_edits);
}

fn start(backend: &EchoBackend, v: &Values) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    write_product(&conf, v, &[], &[]);
    let path = seed_yaml(&backend.target_url()).write(&conf);
    let gw = start_with_test_clock(&path, 3600);
    (conf, gw)
}

/// `POST /reload`: the status and the JSON answer.
fn post_reload(gw: &Gateway) -> (u16, serde_yaml::Value) {
    let r = http_request(gw.addr("admin"), "POST", "/reload", &[], b"").expect("POST /reload");
    let body = r.body_text();
    let v = serde_yaml::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (r.status, v)
}

/// The live counter of one limit for one application: (value, max).
fn counter(gw: &Gateway, limit: &str, app: &str) -> Option<(u64, u64)> {
    limits(gw)
        .into_iter()
        .find(|c| c.limit == limit && c.key.ends_with(&format!("app={app}")))
        .map(|c| (c.value, c.max))
}

fn expect_counter(gw: &Gateway, limit: &str, app: &str, want: Option<(u64, u64)>, after: &str) {
    let (got, ok) = poll(|| counter(gw, limit, app), |v| *v == want);
    assert!(
        ok,
        "after {after}: {limit} of {app} is {got:?}, expected {want:?}: {:?}",
        limits(gw)
    );
}

/// Sends a text message and expects it back.
fn echo(ws: &mut Ws, text: &str) {
    roundtrip(ws, Message::text(text));
}

/// Sends a text message and expects the gateway to close with 1008 instead of forwarding it.
fn expect_rate_close(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).expect("send");
    let closed = read_until_closed(ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    assert_eq!(
        closed.frame,
        Some(Some((1008, OVER.to_string()))),
        "{closed:?}"
    );
}

#[test]
fn fifty_websockets_keep_echoing_across_a_reload_that_lowers_the_message_rate() {
    let backend = EchoBackend::start();
    let generous = Values {
        request: "1000/1minute",
        response: "1000/1minute",
        count: "60",
    };
    let (conf, gw) = start(&backend, &generous);
    let mut old: Vec<Ws> = (0..50).map(|_| open_as(&gw, A).0).collect();
    for (i, ws) in old.iter_mut().enumerate() {
        echo(ws, &format!("before {i}"));
    }
    expect_counter(
        &gw,
        REQUEST_LIMIT,
        "demo-app",
        Some((50, 1000)),
        "50 messages",
    );

    write_product(
        &conf,
        &Values {
            request: "3/1minute",
            ..generous
        },
        &[],
        &[],
    );
    let t = std::time::Instant::now();
    let (status, answer) = post_reload(&gw);
    println!(
        "POST /reload with 50 open WebSockets answered in {:?}",
        t.elapsed()
    );
    assert_eq!(status, 200, "{answer:?}");
    assert_eq!(answer["applied"].as_bool(), Some(true), "{answer:?}");
    assert_eq!(answer["connections"].as_u64(), Some(50), "{answer:?}");
    gw.expect_log("config reloaded");
    // The window carried over; the counter now shows the new maximum.
    expect_counter(&gw, REQUEST_LIMIT, "demo-app", Some((50, 3)), "the reload");
    expect_counter(&gw, COUNT_LIMIT, "demo-app", Some((50, 60)), "the reload");

    // The old connections keep their 1000 a minute: 50 more pass, far over the new 3.
    for (i, ws) in old.iter_mut().enumerate() {
        echo(ws, &format!("after {i}"));
    }
    expect_counter(
        &gw,
        REQUEST_LIMIT,
        "demo-app",
        Some((100, 3)),
        "50 more messages",
    );

    // A new connection of B gets the new limit: 3 messages, the fourth closes it.
    let (mut b, _) = open_as(&gw, B);
    for i in 0..3 {
        echo(&mut b, &format!("b {i}"));
    }
    expect_rate_close(&mut b, "b 3");
    // A new connection of A counts in A's carried window, already over the new 3.
    let (mut a, _) = open_as(&gw, A);
    expect_rate_close(&mut a, "a 0");

    // The old ones are still undisturbed.
    for (i, ws) in old.iter_mut().enumerate() {
        echo(ws, &format!("still {i}"));
    }
    for ws in &mut old {
        close_and_wait(ws, 1000, "done");
    }
    expect_counter(&gw, COUNT_LIMIT, "demo-app", None, "closing all");
}

#[test]
fn sighup_reload_keeps_counting_the_connections_held_before_it() {
    let backend = EchoBackend::start();
    let (conf, mut gw) = start(&backend, &SEED);
    let (mut a1, _) = open_as(&gw, A);
    let (mut a2, _) = open_as(&gw, A);
    expect_counter(
        &gw,
        COUNT_LIMIT,
        "demo-app",
        Some((2, 2)),
        "two connections",
    );

    // Same count limit, another request rate: a real change that leaves the count alone.
    write_product(
        &conf,
        &Values {
            request: "4/1minute",
            ..SEED
        },
        &[],
        &[],
    );
    gw.signal("HUP");
    assert!(
        gw.wait_log("config reloaded", DEADLINE),
        "{}",
        log_digest(&gw, 20)
    );
    expect_counter(&gw, COUNT_LIMIT, "demo-app", Some((2, 2)), "the reload");
    let third = refused(connect_as(&gw, A, &[]));
    third.assert_error(429, "Assembly Rate Limit exceeded");
    echo(&mut a1, "a1 still here");

    // One old connection closes: its count comes back exactly once, into the same counter.
    close_and_wait(&mut a2, 1000, "done");
    expect_counter(&gw, COUNT_LIMIT, "demo-app", Some((1, 2)), "closing one");
    let (mut a3, r3) = open_as(&gw, A);
    assert_eq!(
        header(&r3, "x-countlimit-remaining"),
        Some(count_headers(0).1)
    );
    expect_counter(&gw, COUNT_LIMIT, "demo-app", Some((2, 2)), "a new one");

    // A second reload raises the count: the two held still count, one more fits.
    write_product(&conf, &Values { count: "3", ..SEED }, &[], &[]);
    gw.signal("HUP");
    assert!(
        gw.wait_log_count("config reloaded", 2, DEADLINE),
        "{}",
        log_digest(&gw, 20)
    );
    expect_counter(
        &gw,
        COUNT_LIMIT,
        "demo-app",
        Some((2, 3)),
        "the second reload",
    );
    let (_a4, r4) = open_as(&gw, A);
    assert_eq!(
        header(&r4, "x-countlimit-remaining").as_deref(),
        Some("name=websocket-connections,0;")
    );
    refused(connect_as(&gw, A, &[])).assert_error(429, "Assembly Rate Limit exceeded");

    // Connections from both earlier configs give back what they hold.
    close_and_wait(&mut a1, 1000, "done");
    close_and_wait(&mut a3, 1000, "done");
    expect_counter(
        &gw,
        COUNT_LIMIT,
        "demo-app",
        Some((1, 3)),
        "closing the older ones",
    );
}

#[test]
fn an_invalid_config_changes_nothing() {
    let backend = EchoBackend::start();
    let (conf, mut gw) = start(&backend, &SEED);
    let (mut a, _) = open_as(&gw, A);
    echo(&mut a, "one");
    let before = limits(&gw);
    assert_eq!(
        before.len(),
        4,
        "plan rate, count, request and response counters: {before:?}"
    );

    write_product(
        &conf,
        &Values {
            request: "lots/1minute",
            ..SEED
        },
        &[],
        &[],
    );
    let (status, answer) = post_reload(&gw);
    assert_eq!(status, 422, "{answer:?}");
    assert_eq!(answer["applied"].as_bool(), Some(false), "{answer:?}");
    let errors: Vec<&str> = answer["errors"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no errors in {answer:?}"))
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    let bad = errors
        .iter()
        .find(|e| e.contains("websocket-request-ratelimit") && e.contains(": error: "))
        .unwrap_or_else(|| panic!("no error about the request limit in {errors:?}"));
    // File, line and field, as `wsgate check` reports them.
    assert!(
        bad.contains("test-yahel-websocket-product_1.0.0.yaml:17:18:"),
        "{bad}"
    );
    gw.expect_log(bad);
    gw.expect_log("reload failed");

    // SIGHUP with the same files: the same refusal, in the log only.
    gw.signal("HUP");
    assert!(
        gw.wait_log_count("reload failed", 2, DEADLINE),
        "{}",
        log_digest(&gw, 20)
    );
    assert!(!gw.log_contains("config reloaded"));

    // The connection echoes, the counters are as they were, and the old limits hold.
    echo(&mut a, "two");
    let mut after = limits(&gw);
    let mut want = before.clone();
    for c in want
        .iter_mut()
        .filter(|c| c.limit == REQUEST_LIMIT || c.limit == RESPONSE_LIMIT)
    {
        c.value += 1;
    }
    after.sort_by(|x, y| x.limit.cmp(&y.limit));
    want.sort_by(|x, y| x.limit.cmp(&y.limit));
    assert_eq!(after, want);
    let (_a2, r2) = open_as(&gw, A);
    assert_eq!(
        header(&r2, "x-countlimit-remaining"),
        Some(count_headers(0).1)
    );
    refused(connect_as(&gw, A, &[])).assert_error(429, "Assembly Rate Limit exceeded");
    echo(&mut a, "three");
    expect_rate_close(&mut a, "four is over 3 a minute");
}

#[test]
fn a_removed_limit_keeps_counting_for_its_connections_and_goes_with_the_last() {
    let backend = EchoBackend::start();
    let (conf, gw) = start(&backend, &SEED);
    let (mut old, _) = open_as(&gw, A);
    echo(&mut old, "one");
    expect_counter(&gw, REQUEST_LIMIT, "demo-app", Some((1, 3)), "one message");

    // The request limit is replaced by one of another name.
    const RENAMED: &str = "websocket-request-ratelimit-v2";
    let rename = [(
        "      websocket-request-ratelimit:\n",
        "      websocket-request-ratelimit-v2:\n",
    )];
    let api_rename = [(
        "- name: websocket-request-ratelimit\n",
        "- name: websocket-request-ratelimit-v2\n",
    )];
    write_product(&conf, &SEED, &rename, &api_rename);
    let (status, answer) = post_reload(&gw);
    assert_eq!(status, 200, "{answer:?}");

    // The old connection still counts in the removed limit, against its 3.
    echo(&mut old, "two");
    expect_counter(
        &gw,
        REQUEST_LIMIT,
        "demo-app",
        Some((2, 3)),
        "a message after",
    );
    let (mut new, _) = open_as(&gw, A);
    echo(&mut new, "new one");
    expect_counter(
        &gw,
        RENAMED,
        "demo-app",
        Some((1, 3)),
        "the new connection's message",
    );
    expect_counter(
        &gw,
        REQUEST_LIMIT,
        "demo-app",
        Some((2, 3)),
        "the new connection's message",
    );

    close_and_wait(&mut old, 1000, "done");
    expect_counter(
        &gw,
        REQUEST_LIMIT,
        "demo-app",
        None,
        "its last connection closed",
    );
    gw.expect_log("counters dropped");
    expect_counter(&gw, RENAMED, "demo-app", Some((1, 3)), "the old one closed");
    echo(&mut new, "new two");
}

#[test]
fn a_reload_serves_new_applications_at_once_and_leaves_the_listeners_bound() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    write_product(&conf, &SEED, &[], &[]);
    let path = GatewayYaml::seed(&backend.target_url()).write(&conf);
    let gw = start_with_test_clock(&path, 3600);
    let (mut a, _) = open_as(&gw, A);
    refused(connect_as(&gw, B, &[])).assert_error(401, "Invalid client id or secret.");

    // Application B is added; an echo listener and a bigger buffer bound need a restart.
    let mut yaml = seed_yaml(&backend.target_url()).bound("buffer-bound", "128KiB");
    yaml.echo_backend = true;
    yaml.write(&conf);
    let (status, answer) = post_reload(&gw);
    assert_eq!(status, 200, "{answer:?}");
    let restart: Vec<&str> = answer["restart_needed"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{answer:?}"))
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(restart, ["the echo listener", "buffer-bound"], "{answer:?}");
    gw.expect_log("reload: the echo listener changed; that takes a restart");
    assert!(gw.addrs("echo").is_empty(), "{:?}", gw.listeners());

    let (mut b, _) = open_as(&gw, B);
    echo(&mut b, "b is known now");
    echo(&mut a, "a is undisturbed");
}

/// Figures only: how long a reload takes with many open, limited WebSockets, and that each of
/// them still echoes after it. `cargo test --release --test integration reload:: -- --ignored --nocapture`.
#[test]
#[ignore]
fn reload_with_thousands_of_open_websockets() {
    const N: usize = 3000;
    let backend = EchoBackend::start();
    let generous = Values {
        request: "100000/1minute",
        response: "100000/1minute",
        count: "5000",
    };
    let (conf, gw) = start(&backend, &generous);
    let mut open: Vec<Ws> = (0..N).map(|_| open_as(&gw, A).0).collect();
    for ws in open.iter_mut().step_by(10) {
        echo(ws, "before");
    }
    let rss_before = gw.rss_kib();
    write_product(
        &conf,
        &Values {
            request: "50000/1minute",
            ..generous
        },
        &[],
        &[],
    );
    for round in 0..10 {
        let t = std::time::Instant::now();
        let (status, answer) = post_reload(&gw);
        let took = t.elapsed();
        assert_eq!(status, 200, "{answer:?}");
        assert_eq!(answer["connections"].as_u64(), Some(N as u64));
        println!(
            "reload {round} with {N} open WebSockets: POST /reload answered in {took:?}, RSS {} KiB",
            gw.rss_kib()
        );
    }
    println!(
        "gateway RSS {} KiB before the reloads, {} KiB after 10",
        rss_before,
        gw.rss_kib()
    );
    for (i, ws) in open.iter_mut().enumerate() {
        echo(ws, &format!("after {i}"));
    }
    expect_counter(
        &gw,
        COUNT_LIMIT,
        "demo-app",
        Some((N as u64, 5000)),
        "the reloads",
    );
    drop(open);
    expect_counter(&gw, COUNT_LIMIT, "demo-app", None, "closing them all");
}

const CALL_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: call-api
  x-ibm-name: call-api
basePath: /call
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
      - invoke:
          version: 2.0.0
          title: invoke
          target-url: $(target-url)$(request.path)
          timeout: 20
      - set-variable:
          version: 2.0.0
          title: after the call
          actions:
            - set: message.headers.X-Flow
              value: {{FLOW}}
      - ratelimit:
          version: 2.2.0
          title: after the call
          source: plan-named
          rate-limit:
            - name: after-call
              operation: consume
paths:
  /{rest}:
    get: {responses: {'200': {description: success}}}
securityDefinitions:
  clientID:
    type: apiKey
    in: header
    name: X-IBM-Client-Id
security:
  - clientID: []
schemes:
  - https
"#;

const CALL_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: call-product
  name: call-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    rate-limits:
      default:
        value: 1000/1hour
        hard-limit: true
    assembly-rate-limits:
      after-call:
        - value: {{AFTER}}
          cache-only: true
          is-client: true
          hard-limit: true
    apis:
      call-api1.0.0: {}
apis:
  call-api1.0.0:
    $ref: call-api_1.0.0.yaml
product: 1.0.0
"#;

const CALL_CLIENT: &str = "call-client-id";

fn write_call_conf(conf: &TempConf, flow: &str, after: &str) {
    conf.write(
        "call-api_1.0.0.yaml",
        &common::conf::fill(CALL_API, &[("FLOW", flow)]),
    );
    conf.write(
        "call-product_1.0.0.yaml",
        &common::conf::fill(CALL_PRODUCT, &[("AFTER", after)]),
    );
}

/// An HTTP backend that answers each request only when the test lets it: it reports every
/// request head it has read, then waits for a go before it answers `200 ok`.
struct HeldBackend {
    addr: std::net::SocketAddr,
    heads: std::sync::mpsc::Receiver<String>,
    go: std::sync::mpsc::Sender<()>,
}

impl HeldBackend {
    fn start() -> HeldBackend {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tell, heads) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                if tell
                    .send(String::from_utf8_lossy(&head).into_owned())
                    .is_err()
                    || wait.recv().is_err()
                {
                    return;
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        HeldBackend { addr, heads, go }
    }

    /// Waits for the next request head to arrive.
    fn next_head(&self) -> String {
        self.heads
            .recv_timeout(DEADLINE)
            .expect("the backend got no request")
    }
}

fn call(c: &mut RawConn) {
    let head = format!(
        "GET /call/x HTTP/1.1\r\nHost: gw.test\r\nX-IBM-Client-Id: {CALL_CLIENT}\r\nConnection: close\r\n\r\n"
    );
    c.send(head.as_bytes()).expect("send the request");
}

#[test]
fn a_call_in_flight_finishes_its_flow_on_the_config_it_began_on() {
    let backend = HeldBackend::start();
    let conf = TempConf::new();
    write_call_conf(&conf, "old", "5/1minute");
    let mut yaml = GatewayYaml::open(&format!("http://{}", backend.addr)).application(
        "call-app",
        CALL_CLIENT,
        "call-product",
        "default-plan",
    );
    yaml.products = vec!["call-product_1.0.0.yaml".into()];
    let path = yaml.write(&conf);
    let gw = start_with_test_clock(&path, 3600);

    // One call is with the backend when the config changes under it.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    call(&mut c);
    backend.next_head();
    write_call_conf(&conf, "new", "1/1minute");
    let (status, answer) = post_reload(&gw);
    assert_eq!(status, 200, "{answer:?}");
    backend.go.send(()).expect("go");
    let r = c.read_response_to("GET").expect("the answer");
    // Its flow after the call is the old one, and its limit the old 5 a minute.
    assert_eq!(r.status, 200, "{r:?}\n{}", log_digest(&gw, 20));
    assert_eq!(r.header("x-flow"), Some("old"), "{r:?}");
    expect_counter(&gw, "after-call", "call-app", Some((1, 1)), "the old call");

    // A new call runs the new flow and meets the new limit, in the same window.
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    call(&mut c);
    backend.next_head();
    backend.go.send(()).expect("go");
    let r = c.read_response_to("GET").expect("the answer");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("x-flow"), None, "{r:?}");
}
