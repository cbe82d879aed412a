//! Backpressure, many connections, a backend that dies, and shutdown: what the loop does when
//! the peers are not polite.

use crate::common::*;
use std::time::Duration;
use tungstenite::Message;

const BASE: &str = "/flow";

fn start(target: &str, bounds: &[(&str, &str)]) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write_open_api(BASE);
    let mut y = GatewayYaml::open(target);
    for (k, v) in bounds {
        y = y.bound(k, v);
    }
    let path = conf.write("gateway.yaml", &y.render());
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

/// One number from the admin listener's `/stats`.
fn stat(gw: &Gateway, name: &str) -> u64 {
    let r = http_request(gw.addr("admin"), "GET", "/stats", &[], b"").expect("GET /stats");
    assert_eq!(r.status, 200);
    let body = r.body_text();
    let key = format!("\"{name}\":");
    let at = body
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {body}"))
        + key.len();
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .expect("a number")
}

fn wait_stat(gw: &Gateway, name: &str, want: u64) -> bool {
    let until = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < until {
        if stat(gw, name) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn slow_reader_pauses_the_backend_and_resumes() {
    let backend = EchoBackend::start_with(Mode::Flood {
        size: 16 * 1024,
        count: None,
    });
    let bound: u64 = 64 * 1024;
    let (_c, gw) = start(&backend.target_url(), &[("buffer-bound", "64KiB")]);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    // The client reads nothing: the backend keeps sending until its socket blocks.
    assert!(
        backend.wait_until(DEADLINE, |s| s.flood_blocked == 1),
        "the backend's sends never blocked"
    );
    let sent = backend.state(|s| s.flood_sent);
    let held = stat(&gw, "max_buffered_per_connection");
    println!("backend sent {sent} messages of 16 KiB before blocking; gateway holds {held} bytes");
    assert!(
        held <= bound,
        "gateway buffered {held} bytes, bound {bound}"
    );
    // Now read everything: every message arrives, in order, then the echo of a new one.
    ws.send(Message::text("flowing again")).expect("send");
    let mut next = 0u64;
    loop {
        match recv_data(&mut ws).expect("flood message or echo") {
            Message::Binary(b) => {
                assert_eq!(b.len(), 16 * 1024);
                assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), next);
                next += 1;
            }
            Message::Text(t) => {
                assert_eq!(t.as_str(), "flowing again");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(next >= sent, "only {next} of {sent} flood messages arrived");
    assert!(
        wait_stat(&gw, "buffers_in_use", 0),
        "buffers went back to the pool"
    );
}

#[test]
fn a_thousand_connections_open_echo_and_close_without_leaks() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), &[]);
    let baseline = gw.fd_count();
    let mut clients = Vec::new();
    for i in 0..1000 {
        let (ws, _) =
            ws_connect(&gw.url(BASE), &[]).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        clients.push(ws);
    }
    assert!(wait_stat(&gw, "upgraded", 1000));
    println!(
        "gateway descriptors: {baseline} idle, {} with 1000 connections",
        gw.fd_count()
    );
    for (i, ws) in clients.iter_mut().enumerate() {
        roundtrip(ws, Message::text(format!("message {i}")));
    }
    for ws in clients.iter_mut() {
        let _ = close_and_wait(ws, 1000, "");
    }
    drop(clients);
    assert!(wait_stat(&gw, "open", 0), "connections left open");
    assert_eq!(stat(&gw, "buffers_in_use"), 0);
    let until = std::time::Instant::now() + DEADLINE;
    while gw.fd_count() != baseline && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(gw.fd_count(), baseline, "descriptors leaked");
}

#[test]
fn backend_killed_mid_conversation_ends_the_client_without_a_close_frame() {
    let Some(py) = python() else {
        skip_note("Python websockets could not be installed");
        return;
    };
    let mut echo = PyEcho::start(&py);
    let (_c, gw) = start(&echo.target_url(), &[]);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    roundtrip(&mut ws, Message::text("alive"));
    echo.kill();
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.frame, None, "client got {closed:?}");
    assert!(closed.error.is_some(), "{closed:?}");
    assert!(wait_stat(&gw, "open", 0));
}

#[test]
fn sigterm_closes_both_sides_with_1001_and_exits_0() {
    let backend = EchoBackend::start();
    let (_c, mut gw) = start(&backend.target_url(), &[]);
    let (mut a, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade a");
    let (mut b, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade b");
    roundtrip(&mut a, Message::text("a"));
    roundtrip(&mut b, Message::text("b"));
    gw.signal("TERM");
    for ws in [&mut a, &mut b] {
        let closed = read_until_closed(ws);
        assert_eq!(closed.code(), Some(1001));
    }
    let status = gw.wait_exit(DEADLINE).expect("the gateway exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(backend.wait_until(DEADLINE, |s| s.closes.len() == 2));
    for (_, c) in backend.closes() {
        assert_eq!(c.map(|c| c.0), Some(1001));
    }
}

#[test]
fn idle_connection_is_closed_with_1001_on_both_sides() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), &[("idle-timeout", "1s")]);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    roundtrip(&mut ws, Message::text("then silence"));
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1001));
    assert!(backend.wait_until(DEADLINE, |s| !s.closes.is_empty()));
    assert_eq!(backend.closes()[0].1.as_ref().map(|c| c.0), Some(1001));
    assert!(wait_stat(&gw, "open", 0));
}

#[test]
fn over_the_connection_cap_new_clients_wait_until_one_leaves() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url(), &[("max-connections", "2")]);
    let (mut a, _) = ws_connect(&gw.url(BASE), &[]).expect("first");
    let (_b, _) = ws_connect(&gw.url(BASE), &[]).expect("second");
    // The third is accepted by the kernel but not by the gateway: its upgrade gets no answer.
    let mut third = RawConn::connect(gw.addr("plain")).expect("tcp connect");
    third
        .send(upgrade_request(&gw.addr("plain").to_string(), BASE, &[]).as_bytes())
        .expect("send the upgrade");
    assert!(gw.wait_log("connection cap of 2 reached", DEADLINE));
    assert_eq!(
        stat(&gw, "open"),
        2,
        "the admin listener still answers at the cap"
    );
    third
        .set_read_guard(Duration::from_millis(300))
        .expect("guard");
    assert!(third.read_head().is_err(), "served over the cap");
    // One leaves: the waiting client is served.
    let _ = close_and_wait(&mut a, 1000, "");
    third.set_read_guard(DEADLINE).expect("guard");
    let head = third.read_head().expect("served once below the cap");
    assert_eq!(head.status, 101);
    assert!(gw.wait_log("below the connection cap again", DEADLINE));
    // The admin listener answered throughout; the cap is about API traffic.
    assert_eq!(stat(&gw, "open"), 2);
}
