//! Every answer the gateway gives before and during the upgrade, over raw sockets so that each
//! byte on the wire is under the test's control.

use crate::common::*;
use std::time::{Duration, Instant};

const BASE: &str = "/hs";

/// A keyless API whose websocket-upgrade has the given timeout (seconds).
fn api_with_timeout(conf: &TempConf, timeout: u32) {
    conf.write_open_api(BASE);
    let api = std::fs::read_to_string(conf.file(conf::OPEN_API)).expect("read api");
    conf.write(
        conf::OPEN_API,
        &api.replace("timeout: 60", &format!("timeout: {timeout}")),
    );
}

fn start(target: &str, timeout: u32, bounds: &[(&str, &str)]) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    api_with_timeout(&conf, timeout);
    let mut y = GatewayYaml::open(target);
    for (k, v) in bounds {
        y = y.bound(k, v);
    }
    let path = conf.write("gateway.yaml", &y.render());
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

fn answer(gw: &Gateway, request: &str) -> HttpResponse {
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    c.send(request.as_bytes()).expect("send");
    c.read_response().expect("an HTTP answer")
}

fn assert_json_error(r: &HttpResponse, status: u16, words: &str) {
    assert_eq!(r.status, status, "head: {}", r.raw_head);
    assert!(r.header("x-global-transaction-id").is_some());
    let body = r.body_text();
    assert!(
        body.starts_with(&format!("{{\"httpCode\":\"{status}\"")) && body.contains(words),
        "body: {body}"
    );
}

#[test]
fn malformed_upgrades_get_400() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let host = gw.addr("plain").to_string();
    let good = upgrade_request(&host, BASE, &[]);
    let cases = [
        good.replace(
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Key: c2hvcnQ=",
        ),
        good.replace("Connection: Upgrade", "Connection: keep-alive"),
        good.replace("Upgrade: websocket", "Upgrade: h2c"),
        good.replace("HTTP/1.1", "HTTP/1.0"),
        format!("GET {BASE} HTTP/1.1\r\nHost\r\n\r\n"),
        "GARBAGE\r\n\r\n".to_string(),
    ];
    for req in &cases {
        let r = answer(&gw, req);
        assert_json_error(&r, 400, "");
    }
    assert_eq!(
        backend.accepted(),
        0,
        "no malformed upgrade reached the backend"
    );
}

#[test]
fn other_version_gets_426_with_version_13() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let host = gw.addr("plain").to_string();
    let req = upgrade_request(&host, BASE, &[])
        .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let r = answer(&gw, &req);
    assert_json_error(&r, 426, "version");
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
}

#[test]
fn plain_get_to_a_websocket_only_api_is_told_to_upgrade() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let r = answer(&gw, &format!("GET {BASE} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_json_error(&r, 426, "WebSocket");
}

#[test]
fn unknown_paths_and_methods_get_404_and_405() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let host = gw.addr("plain").to_string();
    let r = answer(&gw, &upgrade_request(&host, "/nowhere", &[]));
    assert_json_error(&r, 404, "API not found for requested URI");
    let r = answer(&gw, &upgrade_request(&host, &format!("{BASE}/deeper"), &[]));
    assert_json_error(&r, 404, "No resources match requested URI");
    let r = answer(&gw, &format!("DELETE {BASE} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_json_error(&r, 405, "The method is not allowed for the requested URL.");
}

#[test]
fn head_over_16_kib_gets_431() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let host = gw.addr("plain").to_string();
    let filler = "a".repeat(17 * 1024);
    let req = upgrade_request(&host, BASE, &[("X-Filler", filler.as_str())]);
    let r = answer(&gw, &req);
    assert_json_error(&r, 431, "");
}

#[test]
fn slow_header_is_closed_when_the_header_timeout_expires() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[("header-timeout", "1s")]);
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    let started = Instant::now();
    let req = upgrade_request(&gw.addr("plain").to_string(), BASE, &[]);
    // One byte at a time, slower than any client would: the gateway must not wait forever.
    let mut closed = false;
    for b in req.as_bytes() {
        if c.send(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    if !closed {
        // The gateway answered 408 and closed; reading shows it.
        closed = c.wait_closed();
    }
    assert!(closed, "a trickling client was not closed");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed only after {:?}",
        started.elapsed()
    );
    assert_eq!(backend.accepted(), 0);
}

#[test]
fn backend_refusing_the_upgrade_is_relayed() {
    let backend = EchoBackend::start_with(Mode::Reject(403));
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let host = gw.addr("plain").to_string();
    let r = answer(&gw, &upgrade_request(&host, BASE, &[]));
    assert_eq!(r.status, 403);
    assert!(
        r.body_text().contains(backend::REJECT_BODY),
        "body: {}",
        r.body_text()
    );
}

#[test]
fn backend_not_listening_gets_the_connection_error() {
    // A port that was free a moment ago: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe port")
        .port();
    let (_c, gw) = start(&format!("ws://127.0.0.1:{port}/"), 60, &[]);
    let host = gw.addr("plain").to_string();
    let r = answer(&gw, &upgrade_request(&host, BASE, &[]));
    assert_json_error(&r, 500, "Could not connect to endpoint");
    assert!(gw.wait_log("127.0.0.1", DEADLINE));
}

#[test]
fn silent_backend_times_out_with_504() {
    let backend = EchoBackend::start_with(Mode::Silent);
    let (_c, gw) = start(&backend.target_url(), 1, &[]);
    let host = gw.addr("plain").to_string();
    let r = answer(&gw, &upgrade_request(&host, BASE, &[]));
    assert_json_error(&r, 504, "Timeout");
    assert!(gw.wait_log("did not complete the upgrade in time", DEADLINE));
}

fn upgraded(gw: &Gateway) -> RawConn {
    let host = gw.addr("plain").to_string();
    let mut c = RawConn::connect(gw.addr("plain")).expect("connect");
    c.send(upgrade_request(&host, BASE, &[]).as_bytes())
        .expect("send");
    let head = c.read_head().expect("101");
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some(client::UPGRADE_ACCEPT)
    );
    c
}

fn expect_close(c: &mut RawConn, code: u16) {
    loop {
        let f = c.read_frame().expect("a close frame");
        if f.opcode == 8 {
            assert!(f.payload.len() >= 2);
            assert_eq!(u16::from_be_bytes([f.payload[0], f.payload[1]]), code);
            return;
        }
    }
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let mut c = upgraded(&gw);
    c.send(&client::encode_frame(true, 1, b"not masked", None))
        .expect("send");
    expect_close(&mut c, 1002);
    assert!(backend.wait_until(DEADLINE, |s| !s.closes.is_empty()));
    assert_eq!(backend.closes()[0].1.as_ref().map(|c| c.0), Some(1001));
}

#[test]
fn reserved_opcode_closes_with_1002() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[]);
    let mut c = upgraded(&gw);
    c.send_frame(true, 3, b"reserved").expect("send");
    expect_close(&mut c, 1002);
}

#[test]
fn message_over_the_size_bound_closes_with_1009() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), 60, &[("max-message-size", "1KiB")]);
    let mut c = upgraded(&gw);
    c.send_frame(true, 2, &[7u8; 1024]).expect("at the bound");
    let echoed = c.read_frame().expect("echo of a message at the bound");
    assert_eq!(echoed.payload.len(), 1024);
    c.send_frame(true, 2, &[7u8; 1025]).expect("over the bound");
    expect_close(&mut c, 1009);
}

/// A backend that answers every upgrade with a redirect to `location`, counting the requests.
fn redirector(
    location: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind redirector");
    let addr = l.local_addr().expect("addr");
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply =
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (addr, hits)
}

#[test]
fn redirects_are_followed_only_when_the_policy_says_so() {
    let backend = EchoBackend::start();
    let (from, hits) = redirector(backend.target_url());
    // follow-redirects: true → the upgrade ends at the real backend.
    let conf = TempConf::new();
    api_with_timeout(&conf, 60);
    let api = std::fs::read_to_string(conf.file(conf::OPEN_API)).expect("read api");
    conf.write(
        conf::OPEN_API,
        &api.replace("follow-redirects: false", "follow-redirects: true"),
    );
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::open(&format!("ws://{from}/")).render(),
    );
    let gw = Gateway::start(&path, &[]);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade after a redirect");
    roundtrip(&mut ws, tungstenite::Message::text("redirected"));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(backend.accepted(), 1);
    // follow-redirects: false → the client sees the 302 as the backend sent it.
    let (_c, gw) = start(&format!("ws://{from}/"), 60, &[]);
    let host = gw.addr("plain").to_string();
    let r = answer(&gw, &upgrade_request(&host, BASE, &[]));
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some(backend.target_url().as_str()));
}
