//! The activity log (spec §1.9) over real sockets: one JSON line per transaction on standard
//! output, or in a file that SIGUSR1 reopens after a rename. Plain calls through `invoke` (each
//! request of a kept-alive connection is its own record), WebSocket connections closed by the
//! client and by a message limit (one record at the close, with messages and bytes each way),
//! and an upgrade refused by the count limit. The seed API logs `activity` on success and
//! `payload` on error; `payload` logs headers and never bodies or frames.

use crate::common;

use crate::common::admin::*;
use crate::common::client::http_request;
use crate::common::conf::SEED_BASE_PATH;
use crate::common::limits::*;
use crate::common::*;
use serde_yaml::Value;
use tungstenite::Message;

const SEED_API_ID: &str = "test-yahel-websocket-api:1.0.0";

/// Every line of standard output, each parsed as JSON (with the YAML parser the crate has).
fn records(gw: &Gateway) -> Vec<Value> {
    let out = gw.stdout();
    let complete = out.rfind('\n').map_or("", |i| &out[..i]);
    complete
        .lines()
        .map(|l| {
            assert!(
                l.starts_with('{') && l.ends_with('}'),
                "not one JSON object per line: {l}"
            );
            serde_yaml::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .collect()
}

/// Waits for `n` records of answers with `status` and returns those.
fn wait_records(gw: &Gateway, status: u16, n: usize) -> Vec<Value> {
    let pattern = format!("\"status\":{status},");
    assert!(
        gw.wait_stdout_count(&pattern, n, DEADLINE),
        "fewer than {n} activity records with status {status}; stdout:\n{}",
        gw.stdout()
    );
    records(gw)
        .into_iter()
        .filter(|r| r.get("status").and_then(Value::as_u64) == Some(u64::from(status)))
        .collect()
}

fn s<'a>(r: &'a Value, k: &str) -> Option<&'a str> {
    r.get(k).and_then(Value::as_str)
}

fn n(r: &Value, k: &str) -> u64 {
    r.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number {k} in {r:?}"))
}

fn ms(r: &Value, k: &str) -> f64 {
    r.get(k)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {k} in {r:?}"))
}

/// The (name, value) pairs of a header list of a record.
fn headers(r: &Value, k: &str) -> Vec<(String, String)> {
    r.get(k)
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("no {k} in {r:?}"))
        .iter()
        .map(|p| {
            let p = p.as_sequence().expect("a [name, value] pair");
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The fields every record has, checked against what the client saw.
fn check_common(r: &Value, api: &str, method: &str, path: &str, txn: Option<&str>) {
    let ts = s(r, "timestamp").unwrap_or_else(|| panic!("no timestamp in {r:?}"));
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T",
        "timestamp {ts}"
    );
    let id = s(r, "transaction_id").unwrap_or_else(|| panic!("no transaction id in {r:?}"));
    assert_eq!(id.len(), 24, "{r:?}");
    if let Some(t) = txn {
        assert_eq!(id, t, "the id the client got in X-Global-Transaction-ID");
    }
    assert_eq!(s(r, "api"), Some(api), "{r:?}");
    assert_eq!(s(r, "method"), Some(method), "{r:?}");
    assert_eq!(s(r, "path"), Some(path), "{r:?}");
    let client = s(r, "client").unwrap_or_else(|| panic!("no client in {r:?}"));
    assert!(client.starts_with("127.0.0.1:"), "{r:?}");
    assert!(ms(r, "latency_ms") >= 0.0 && ms(r, "duration_ms") >= ms(r, "latency_ms"));
}

// ---- plain calls ---------------------------------------------------------------------------

const CALL_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: act-api
  x-ibm-name: act-api
basePath: /act
x-ibm-configuration:
  properties:
    target-url:
      value: http://127.0.0.1:9
  activity-log:
    enabled: true
    success-content: activity
    error-content: header
  assembly:
    execute:
      - invoke:
          version: 2.0.0
          title: invoke
          target-url: $(target-url)$(request.path)
          timeout: 10
paths:
  /items/{id}:
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
"#;

const CALL_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: act-product
  name: act-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    apis:
      act-api1.0.0: {}
apis:
  act-api1.0.0:
    $ref: act-api_1.0.0.yaml
product: 1.0.0
"#;

/// Sends `request` as it is and reads the answer; returns (bytes sent, bytes received, answer).
fn exchange(c: &mut RawConn, request: &str) -> (u64, u64, HttpResponse) {
    c.send(request.as_bytes()).expect("send");
    let method = request.split(' ').next().unwrap();
    let r = c.read_response_to(method).expect("answer");
    let got = (r.raw_head.len() + r.body.len()) as u64;
    (request.len() as u64, got, r)
}

#[test]
fn each_call_on_a_kept_alive_connection_is_one_record_and_errors_log_headers() {
    let Some(py) = python() else {
        skip_note("no Python 3: the call records need tests/peers/http_echo.py");
        return;
    };
    let backend = PyHttpEcho::start(&py);
    let conf = TempConf::new();
    conf.write("act-api_1.0.0.yaml", CALL_API);
    conf.write("act-product_1.0.0.yaml", CALL_PRODUCT);
    let mut yaml = GatewayYaml::open(&backend.url()).application(
        "act-app",
        "act-client",
        "act-product",
        "default-plan",
    );
    yaml.products = vec!["act-product_1.0.0.yaml".into()];
    let gw = Gateway::start(yaml.write(&conf), &[]);

    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let get = "GET /act/items/1?keep=1&token=abc HTTP/1.1\r\nHost: gw.test\r\nX-IBM-Client-Id: act-client\r\nAuthorization: Bearer s3cret\r\n\r\n";
    let post = "POST /act/items/2 HTTP/1.1\r\nHost: gw.test\r\nX-IBM-Client-Id: act-client\r\nContent-Length: 5\r\n\r\nhello";
    let (in1, out1, r1) = exchange(&mut c, get);
    let (in2, out2, r2) = exchange(&mut c, post);
    assert_eq!((r1.status, r2.status), (200, 200), "{r1:?} {r2:?}");
    let calls = wait_records(&gw, 200, 2);
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (rec, method, path, sent, got, resp) in [
        (&calls[0], "GET", "/act/items/1", in1, out1, &r1),
        (&calls[1], "POST", "/act/items/2", in2, out2, &r2),
    ] {
        check_common(
            rec,
            "act-api:1.0.0",
            method,
            path,
            resp.header("x-global-transaction-id"),
        );
        assert_eq!(s(rec, "application"), Some("act-app"));
        assert_eq!(s(rec, "plan"), Some("default-plan"));
        assert_eq!(n(rec, "status"), 200);
        assert_eq!(n(rec, "bytes_in"), sent, "what the client sent: {rec:?}");
        assert_eq!(
            n(rec, "bytes_out"),
            got,
            "what the client received: {rec:?}"
        );
        // Success content is `activity`: no headers, and nothing of a WebSocket.
        assert!(rec.get("request_headers").is_none(), "{rec:?}");
        assert!(rec.get("closed_by").is_none(), "{rec:?}");
    }
    assert_ne!(
        s(&calls[0], "transaction_id"),
        s(&calls[1], "transaction_id")
    );

    // An error (no client id) is logged with the error content, `header`: request and response
    // headers, the credentials redacted.
    let mut c2 = RawConn::connect(gw.addr("plain")).expect("connect");
    let (_, out3, r3) = exchange(
        &mut c2,
        "GET /act/items/3 HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer s3cret\r\n\r\n",
    );
    assert_eq!(r3.status, 401, "{r3:?}");
    let errors = wait_records(&gw, 401, 1);
    let e = &errors[0];
    check_common(
        e,
        "act-api:1.0.0",
        "GET",
        "/act/items/3",
        r3.header("x-global-transaction-id"),
    );
    assert_eq!(e.get("application"), Some(&Value::Null), "{e:?}");
    assert_eq!(n(e, "bytes_out"), out3);
    let req = headers(e, "request_headers");
    assert!(
        req.contains(&("Authorization".into(), "[redacted]".into())),
        "{req:?}"
    );
    assert!(req.contains(&("Host".into(), "gw.test".into())), "{req:?}");
    let resp = headers(e, "response_headers");
    assert!(
        resp.iter()
            .any(|(n, v)| n == "X-Global-Transaction-ID"
                && Some(v.as_str()) == s(e, "transaction_id")),
        "{resp:?}"
    );
    let metrics = http_request(gw.addr("admin"), "GET", "/metrics", &[], b"").expect("metrics");
    assert!(
        metrics
            .body_text()
            .contains("wsgate_calls_total{api=\"act-api:1.0.0\"} 2\n"),
        "{}",
        metrics.body_text()
    );
    assert!(
        !gw.stdout().contains("s3cret") && !gw.stdout().contains("token=abc"),
        "credentials in the activity log:\n{}",
        gw.stdout()
    );
}

// ---- WebSocket connections -----------------------------------------------------------------

#[test]
fn websocket_closed_by_the_client_is_one_record_at_its_close() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let gw = Gateway::start(
        write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]),
        &[],
    );
    let (mut ws, resp) = open_as(&gw, A);
    let txn = header(&resp, "x-global-transaction-id").expect("a transaction id");
    roundtrip(&mut ws, Message::text("hello"));
    roundtrip(&mut ws, Message::binary(vec![7u8; 300]));
    assert!(
        records(&gw).is_empty(),
        "a WebSocket is logged when it closes, not before"
    );
    let closed = close_and_wait(&mut ws, 1000, "bye");
    assert_eq!(closed.code(), Some(1000));
    let r = &wait_records(&gw, 101, 1)[0];
    check_common(r, SEED_API_ID, "GET", SEED_BASE_PATH, Some(&txn));
    assert_eq!(s(r, "application"), Some("demo-app"));
    assert_eq!(s(r, "plan"), Some("default-plan"));
    assert_eq!((n(r, "messages_in"), n(r, "messages_out")), (2, 2), "{r:?}");
    assert_eq!(n(r, "close_code"), 1000, "{r:?}");
    assert_eq!(s(r, "closed_by"), Some("client"), "{r:?}");
    assert_eq!(r.get("closed_by_limit"), Some(&Value::Null), "{r:?}");
    // Frames each way: 5 + 300 bytes of payload, masked headers from the client, plus the
    // upgrade request and the 101 and the close frames.
    assert!(n(r, "bytes_in") > 305 + 100, "{r:?}");
    assert!(n(r, "bytes_out") > 305 + 100, "{r:?}");
    // Success content is `activity`: no headers.
    assert!(r.get("request_headers").is_none(), "{r:?}");
    println!("record: {}", gw.stdout().trim());
}

#[test]
fn websocket_closed_by_a_message_limit_names_the_limit() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]);
    let gw = start_with_test_clock(&path, 3600);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("one too many")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    let r = &wait_records(&gw, 101, 1)[0];
    check_common(r, SEED_API_ID, "GET", SEED_BASE_PATH, None);
    assert_eq!(s(r, "closed_by"), Some("gateway"), "{r:?}");
    assert_eq!(n(r, "close_code"), 1008, "{r:?}");
    assert_eq!(s(r, "closed_by_limit"), Some(REQUEST_LIMIT), "{r:?}");
    // The refused message was not relayed.
    assert_eq!((n(r, "messages_in"), n(r, "messages_out")), (3, 3), "{r:?}");
}

#[test]
fn websockets_closed_by_a_shutdown_are_logged_before_the_gateway_exits() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let mut gw = Gateway::start(
        write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]),
        &[],
    );
    let (mut ws, _) = open_as(&gw, A);
    roundtrip(&mut ws, Message::text("before the shutdown"));
    gw.signal("TERM");
    assert_eq!(read_until_closed(&mut ws).code(), Some(1001));
    drop(ws);
    assert!(gw.wait_exit(DEADLINE).is_some_and(|s| s.success()));
    let r = &wait_records(&gw, 101, 1)[0];
    assert_eq!(s(r, "closed_by"), Some("gateway"), "{r:?}");
    assert_eq!(n(r, "close_code"), 1001, "{r:?}");
    assert_eq!((n(r, "messages_in"), n(r, "messages_out")), (1, 1), "{r:?}");
}

#[test]
fn upgrade_refused_by_the_count_limit_is_logged_with_its_headers() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let gw = Gateway::start(
        write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]),
        &[],
    );
    let (_a1, _) = open_as(&gw, A);
    let (_a2, _) = open_as(&gw, A);
    let third = refused(connect_as(&gw, A, &[("X-Probe", "third")]));
    assert_eq!(third.status, 429);
    let r = &wait_records(&gw, 429, 1)[0];
    check_common(
        r,
        SEED_API_ID,
        "GET",
        SEED_BASE_PATH,
        third.header("x-global-transaction-id"),
    );
    assert_eq!(s(r, "application"), Some("demo-app"));
    assert_eq!(s(r, "plan"), Some("default-plan"));
    // The seed's error content is `payload`: headers, and never a body.
    let req = headers(r, "request_headers");
    assert!(
        req.iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-probe") && v == "third"),
        "{req:?}"
    );
    let resp = headers(r, "response_headers");
    assert!(
        resp.iter().any(|(n, _)| n == "X-CountLimit-Remaining"),
        "{resp:?}"
    );
    assert!(r.get("closed_by").is_none(), "not a WebSocket: {r:?}");
    assert!(
        !gw.stdout().contains("moreInformation"),
        "a body was logged"
    );
    // The two open connections have no record yet.
    assert_eq!(records(&gw).len(), 1, "{}", gw.stdout());
}

// ---- a file, reopened on SIGUSR1 -----------------------------------------------------------

#[test]
fn sigusr1_reopens_the_file_after_a_rename() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let file = conf.file("activity.log");
    let mut yaml = seed_yaml(&backend.target_url());
    yaml.extra = "activity-log:\n  output: file\n  file: activity.log\n".into();
    let mut gw = Gateway::start(write_conf(&conf, &yaml, &[], &[]), &[]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // Unknown client id: a 401, one record.
    let refuse = |gw: &Gateway, probe: &str| {
        let r = refused(connect_as(gw, "nobody", &[("X-Probe", probe)]));
        assert_eq!(r.status, 401);
    };

    refuse(&gw, "before");
    let (_, ok) = poll(|| read(&file), |t| t.contains("before"));
    assert!(ok, "no record in {}", file.display());
    let rotated = conf.file("activity.log.1");
    std::fs::rename(&file, &rotated).expect("rename");
    // Until the signal, records still go to the renamed file.
    refuse(&gw, "renamed");
    let (_, ok) = poll(|| read(&rotated), |t| t.contains("renamed"));
    assert!(ok, "{}", read(&rotated));

    gw.signal("USR1");
    gw.expect_log("activity log reopened");
    refuse(&gw, "after");
    let (now, ok) = poll(|| read(&file), |t| t.contains("after"));
    assert!(ok, "no record in the new file: {now:?}");
    assert_eq!(now.lines().count(), 1, "{now}");
    let old = read(&rotated);
    assert_eq!(old.lines().count(), 2, "{old}");
    assert!(!old.contains("after"));
    assert!(gw.stdout().is_empty(), "records went to stdout too");
    assert!(
        gw.try_status().is_none(),
        "SIGUSR1 must not stop the gateway"
    );
}

// ---- the gateway config's `activity-log` ---------------------------------------------------

/// Loads a gateway.yaml of one listener and `activity_log`; returns the errors as
/// `line:field: message` (or the output chosen, when it loads).
fn load_activity(activity_log: &str) -> Result<wsgate::model::ActivityOutput, Vec<String>> {
    use wsgate::config::{Overrides, Severity, load};
    let conf = TempConf::new();
    let path = conf.write(
        "gateway.yaml",
        &format!("listeners:\n  - address: 127.0.0.1:0\n{activity_log}"),
    );
    match load(&path, &Overrides::default()) {
        Ok(l) => Ok(l.model.settings.activity_log),
        Err(ds) => Err(ds
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}:{}: {}", d.line, d.field, d.message))
            .collect()),
    }
}

#[test]
fn activity_log_settings_and_their_errors_name_line_and_field() {
    use wsgate::model::ActivityOutput;
    assert_eq!(load_activity(""), Ok(ActivityOutput::Stdout));
    assert_eq!(
        load_activity("activity-log:\n  output: off\n"),
        Ok(ActivityOutput::Off)
    );
    // A relative path is relative to the config file's folder.
    match load_activity("activity-log:\n  output: file\n  file: a.log\n") {
        Err(e) => panic!("{e:?}"),
        Ok(ActivityOutput::File(p)) => {
            assert!(p.is_absolute() && p.ends_with("a.log"), "{p:?}")
        }
        Ok(other) => panic!("{other:?}"),
    }
    let cases = [
        (
            "activity-log:\n  output: syslog\n",
            "4:activity-log.output:",
            "expected stdout, file or off",
        ),
        (
            "activity-log:\n  output: file\n",
            "3:activity-log.file:",
            "needs the path",
        ),
        (
            "activity-log:\n  file: a.log\n",
            "4:activity-log.file:",
            "only used with output: file",
        ),
        (
            "activity-log:\n  output: file\n  file: no/such/dir/a.log\n",
            "5:activity-log.file:",
            "does not exist",
        ),
    ];
    for (yaml, at, words) in cases {
        let errors = load_activity(yaml).expect_err(yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(at) && e.contains(words)),
            "{yaml}: expected {at} ... {words}, got {errors:?}"
        );
    }
}

// ---- figures -------------------------------------------------------------------------------

/// What an idle logged WebSocket costs: RSS per connection with the activity log on and off,
/// to a separate `wsgate echo` backend. Prints figures only.
#[test]
#[ignore]
fn figures_memory_of_idle_logged_websockets() {
    const N: usize = 2000;
    for (label, output) in [("on", "stdout"), ("off", "off")] {
        let conf = TempConf::new();
        conf.write_open_api("/open");
        let api = std::fs::read_to_string(conf.file(common::conf::OPEN_API)).unwrap();
        let api = edit(
            &api,
            "  assembly:\n",
            "  activity-log:\n    enabled: true\n  assembly:\n",
        );
        conf.write(common::conf::OPEN_API, &api);
        let echo = Gateway::start_echo();
        let mut yaml = GatewayYaml::open(&format!("ws://{}/", echo.addr("echo")));
        yaml.extra = format!("activity-log:\n  output: {output}\n");
        let path = yaml.write(&conf);
        let gw = Gateway::builder(&path).rust_log("info").start();
        let mut open = Vec::with_capacity(N);
        let (ws, _) = ws_connect(&gw.url("/open"), &[]).expect("first upgrade");
        open.push(ws);
        let base = gw.rss_kib();
        for _ in 1..N {
            let (ws, _) = ws_connect(&gw.url("/open"), &[]).expect("upgrade");
            open.push(ws);
        }
        let rss = gw.rss_kib();
        println!(
            "activity log {label}: {N} idle WebSockets, RSS {base} KiB -> {rss} KiB, {:.0} bytes per connection",
            (rss - base) as f64 * 1024.0 / (N - 1) as f64
        );
        drop(open);
    }
}
