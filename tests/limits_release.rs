//! Auto-decrement of the seed's count limit on every way a transaction can end (spec decision 8,
//! §5): after each, `GET /limits` shows no count held and the client gets exactly its two
//! connections again.
//!
//! Where the path allows it a second connection of the same client (the keeper) stays open
//! meanwhile, so that a count given back twice would show: the count must come down to exactly 1
//! and the client must get exactly one more connection.

use crate::common::admin::*;
use crate::common::backend::REJECT_BODY;
use crate::common::client::{UPGRADE_ACCEPT, encode_frame, upgrade_request};
use crate::common::conf::SEED_BASE_PATH;
use crate::common::limits::*;
use crate::common::*;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use tungstenite::Message;

struct Setup {
    _conf: TempConf,
    gw: Gateway,
}

fn start(target: &str, bounds: &[(&str, &str)], api_edits: &[(&str, &str)]) -> Setup {
    let conf = TempConf::new();
    let mut yaml = seed_yaml(target);
    for (k, v) in bounds {
        yaml = yaml.bound(k, v);
    }
    let path = write_conf(&conf, &yaml, &[], api_edits);
    let gw = start_with_test_clock(&path, 3600);
    Setup { _conf: conf, gw }
}

/// The live count of A (the demo application).
fn count_a(gw: &Gateway) -> u64 {
    limits(gw)
        .iter()
        .filter(|c| c.limit == COUNT_LIMIT && c.key.ends_with("app=demo-app"))
        .map(|c| c.value)
        .sum()
}

/// After a path ended a connection of A: the count is exactly what `keeper` holds, nothing else
/// is open, A gets exactly its remaining connections (then 429), and once everything closes no
/// count is held.
fn assert_released(gw: &Gateway, keeper: Option<Ws>, path: &str) {
    let held = u64::from(keeper.is_some());
    let (got, ok) = poll(|| count_a(gw), |v| *v == held);
    assert!(
        ok,
        "after {path}: A's count is {got}, expected {held}: {:?}\n--- log tail ---\n{}",
        limits(gw),
        log_digest(gw, 40)
    );
    expect_stat(gw, "open", held, path);
    let mut open: Vec<Ws> = keeper.into_iter().collect();
    while open.len() < 2 {
        open.push(open_as(gw, A).0);
    }
    let third = refused(connect_as(gw, A, &[]));
    assert_eq!(
        third.status, 429,
        "after {path}: the count limit must still allow exactly 2: {third:?}"
    );
    for ws in open.iter_mut() {
        let closed = close_and_wait(ws, 1000, "");
        assert_eq!(closed.code(), Some(1000), "after {path}: {closed:?}");
    }
    expect_no_counts(gw, path);
    expect_stat(gw, "open", 0, path);
}

/// A raw client that upgraded to the seed API as A.
fn raw_upgrade(gw: &Gateway) -> RawConn {
    let mut raw = RawConn::connect(gw.addr("plain")).expect("connect");
    let head = upgrade_request("gw", SEED_BASE_PATH, &[("X-IBM-Client-Id", A)]);
    raw.send(head.as_bytes()).expect("send upgrade");
    raw
}

/// Reads server frames until a close frame; returns its code.
fn read_close_code(raw: &mut RawConn) -> Option<u16> {
    loop {
        let f = raw.read_frame().ok()?;
        if f.opcode == 8 {
            return (f.payload.len() >= 2)
                .then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
        }
    }
}

/// Waits for the backend to have received a close frame and returns its code.
fn backend_close_code(backend: &EchoBackend) -> Option<u16> {
    assert!(
        backend.wait_until(DEADLINE, |s| !s.closes.is_empty()),
        "the backend got no close frame; errors {:?}",
        backend.state(|s| s.errors.clone())
    );
    backend.closes()[0].1.as_ref().map(|c| c.0)
}

/// Waits for the backend's connection to end and checks that it ended without a close frame,
/// as the client's did.
fn backend_ended_without_close(backend: &EchoBackend) {
    assert!(
        backend.wait_until(DEADLINE, |s| !s.errors.is_empty() || !s.closes.is_empty()),
        "the backend's connection did not end"
    );
    assert_eq!(backend.closes(), [], "a close frame the client never sent");
}

/// A port with nothing listening on it (free a moment ago).
fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

// ---- The WebSocket ends -------------------------------------------------------------------

#[test]
fn normal_close_by_the_client_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    let (mut ws, _) = open_as(&s.gw, A);
    assert_eq!(count_a(&s.gw), 2);
    roundtrip(&mut ws, Message::text("hello"));
    let closed = close_and_wait(&mut ws, 1000, "bye");
    assert_eq!(closed.code(), Some(1000));
    assert_released(&s.gw, Some(keeper), "a normal close");
}

#[test]
fn backend_initiated_close_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    backend.set_mode(Mode::CloseAfterFirst(1000));
    let (mut ws, _) = open_as(&s.gw, A);
    backend.set_mode(Mode::Echo);
    ws.send(Message::text("one")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1000), "{closed:?}");
    assert_released(&s.gw, Some(keeper), "a close started by the backend");
}

#[test]
fn client_dropping_its_socket_without_a_close_frame_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    let (mut ws, _) = open_as(&s.gw, A);
    roundtrip(&mut ws, Message::text("then gone"));
    drop(ws); // FIN without a close frame
    backend_ended_without_close(&backend);
    assert_released(&s.gw, Some(keeper), "the client vanished (FIN)");
}

#[test]
fn client_reset_gives_the_count_back() {
    use std::os::fd::AsRawFd;
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    let (mut ws, _) = open_as(&s.gw, A);
    roundtrip(&mut ws, Message::text("then reset"));
    // SO_LINGER 0: closing sends a TCP RST instead of a FIN.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            ws.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
    drop(ws);
    backend_ended_without_close(&backend);
    assert_released(&s.gw, Some(keeper), "a client reset (RST)");
}

#[test]
fn backend_connections_cut_give_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (mut a1, _) = open_as(&s.gw, A);
    let (mut a2, _) = open_as(&s.gw, A);
    roundtrip(&mut a1, Message::text("before the crash"));
    assert!(backend.wait_open(2, DEADLINE));
    assert_eq!(backend.sever(), 2);
    for ws in [&mut a1, &mut a2] {
        let closed = read_until_closed(ws);
        assert_eq!(closed.frame, None, "client got {closed:?}");
    }
    assert_released(&s.gw, None, "the backend's connections were cut");
}

#[test]
fn backend_process_killed_gives_the_count_back() {
    let Some(py) = python() else {
        skip_note("Python websockets could not be installed");
        return;
    };
    let mut echo = PyEcho::start(&py);
    let s = start(&echo.target_url(), &[], &[]);
    let (mut a1, _) = open_as(&s.gw, A);
    let (mut a2, _) = open_as(&s.gw, A);
    roundtrip(&mut a1, Message::text("alive"));
    echo.kill();
    for ws in [&mut a1, &mut a2] {
        let closed = read_until_closed(ws);
        assert_eq!(closed.frame, None, "client got {closed:?}");
    }
    expect_no_counts(&s.gw, "the backend process was killed");
    expect_stat(&s.gw, "open", 0, "the backend process was killed");
    // No backend any more: every further attempt fails at the connect, none with 429.
    for i in 0..3 {
        refused(connect_as(&s.gw, A, &[])).assert_error(500, "Could not connect to endpoint");
        expect_no_counts(&s.gw, &format!("failed connect {i}"));
    }
}

#[test]
fn idle_timeout_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[("idle-timeout", "1s")], &[]);
    let (mut a1, _) = open_as(&s.gw, A);
    let (mut a2, _) = open_as(&s.gw, A);
    assert_eq!(count_a(&s.gw), 2);
    for ws in [&mut a1, &mut a2] {
        let closed = read_until_closed(ws);
        assert_eq!(
            closed.frame,
            Some(Some((1001, "idle timeout".to_string()))),
            "{closed:?}"
        );
    }
    assert!(backend.wait_until(DEADLINE, |s| s.closes.len() == 2));
    for (_, c) in backend.closes() {
        assert_eq!(c.map(|c| c.0), Some(1001));
    }
    expect_no_counts(&s.gw, "the idle timeout");
    expect_stat(&s.gw, "open", 0, "the idle timeout");
    // Exactly two again. These time out as well, so how they end is not asserted here.
    let (_x, _) = open_as(&s.gw, A);
    let (_y, _) = open_as(&s.gw, A);
    assert_eq!(refused(connect_as(&s.gw, A, &[])).status, 429);
}

#[test]
fn protocol_error_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    let mut raw = raw_upgrade(&s.gw);
    let resp = raw.read_head().expect("101");
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(resp.header("sec-websocket-accept"), Some(UPGRADE_ACCEPT));
    // A client frame without a mask: protocol error (1002).
    raw.send(&encode_frame(true, 1, b"unmasked", None))
        .expect("send");
    assert_eq!(read_close_code(&mut raw), Some(1002));
    assert_eq!(backend_close_code(&backend), Some(1001));
    assert_eq!(backend.messages(), 0, "the bad frame was not forwarded");
    assert_released(&s.gw, Some(keeper), "a protocol error");
}

#[test]
fn message_over_the_rate_limit_gives_the_count_back() {
    let backend = EchoBackend::start();
    let s = start(&backend.target_url(), &[], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    let (mut ws, _) = open_as(&s.gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("one too many")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    assert_released(&s.gw, Some(keeper), "a message over the rate limit");
}

#[test]
fn gateway_shutdown_closes_with_1001_and_exits_0() {
    let backend = EchoBackend::start();
    let mut s = start(&backend.target_url(), &[], &[]);
    let (mut a1, _) = open_as(&s.gw, A);
    let (mut a2, _) = open_as(&s.gw, A);
    assert_eq!(count_a(&s.gw), 2);
    s.gw.signal("TERM");
    for ws in [&mut a1, &mut a2] {
        let closed = read_until_closed(ws);
        assert_eq!(closed.code(), Some(1001), "{closed:?}");
    }
    let status = s.gw.wait_exit(DEADLINE).expect("the gateway exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(backend.wait_until(DEADLINE, |s| s.closes.len() == 2));
    for (_, c) in backend.closes() {
        assert_eq!(c.map(|c| c.0), Some(1001));
    }
    // Counts are in memory: they end with the process, and so did every connection.
}

// ---- The handshake fails ------------------------------------------------------------------

#[test]
fn backend_refusing_the_upgrade_gives_the_count_back_when_the_refusal_is_sent() {
    let backend = EchoBackend::start();
    // A long close grace: the count must come back with the refusal, not when a timer fires.
    let s = start(&backend.target_url(), &[("close-grace", "60s")], &[]);
    let (keeper, _) = open_as(&s.gw, A);
    backend.set_mode(Mode::Reject(403));
    // A client that reads the whole refusal and keeps its socket open.
    let mut raw = raw_upgrade(&s.gw);
    let resp = raw.read_response().expect("the backend's refusal");
    assert_eq!(resp.status, 403, "{resp:?}");
    assert_eq!(resp.body_text(), REJECT_BODY);
    let (got, ok) = poll(|| count_a(&s.gw), |v| *v == 1);
    assert!(
        ok,
        "the refused transaction still holds its count ({got}) while the client keeps its \
         socket open: {:?}\n--- log tail ---\n{}",
        limits(&s.gw),
        log_digest(&s.gw, 30)
    );
    drop(raw);
    // More refusals in a row: none may turn into a 429.
    for _ in 0..3 {
        let r = refused(connect_as(&s.gw, A, &[]));
        assert_eq!((r.status, r.body.as_str()), (403, REJECT_BODY), "{r:?}");
    }
    backend.set_mode(Mode::Echo);
    assert_released(&s.gw, Some(keeper), "backend refusals (403)");
}

#[test]
fn backend_not_listening_gives_the_count_back() {
    let target = format!("ws://{}/", dead_port());
    let s = start(&target, &[], &[]);
    for i in 0..3 {
        refused(connect_as(&s.gw, A, &[])).assert_error(500, "Could not connect to endpoint");
        expect_no_counts(&s.gw, &format!("failed connect {i}"));
    }
    expect_stat(&s.gw, "open", 0, "failed connects");
}

#[test]
fn backend_closing_before_its_answer_gives_the_count_back() {
    // A backend that reads the upgrade request and closes without answering, three times.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = format!("ws://{}/", listener.local_addr().expect("addr"));
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
        }
    });
    let s = start(&target, &[], &[]);
    for i in 0..3 {
        refused(connect_as(&s.gw, A, &[])).assert_error(502, "Invalid response from backend");
        expect_no_counts(&s.gw, &format!("backend EOF {i}"));
    }
    server.join().expect("the test backend");
    expect_stat(&s.gw, "open", 0, "backend EOFs");
}

#[test]
fn backend_silent_past_the_upgrade_timeout_gives_the_count_back() {
    let backend = EchoBackend::start_with(Mode::Silent);
    let s = start(&backend.target_url(), &[], &[("timeout: 60", "timeout: 1")]);
    refused(connect_as(&s.gw, A, &[])).assert_error(504, "Timeout");
    expect_no_counts(&s.gw, "an upgrade timeout");
    // While a handshake waits for the backend, its count is held.
    let mut raw = raw_upgrade(&s.gw);
    assert!(backend.wait_requests(2, DEADLINE));
    assert_eq!(count_a(&s.gw), 1, "{:?}", limits(&s.gw));
    let resp = raw.read_response().expect("the 504");
    assert_eq!(resp.status, 504);
    assert_eq!(resp.body_text(), error_body(504, "Timeout"));
    expect_no_counts(&s.gw, "a second upgrade timeout");
    drop(raw);
    backend.set_mode(Mode::Echo);
    assert_released(&s.gw, None, "upgrade timeouts");
}

#[test]
fn client_vanishing_during_the_backend_handshake_gives_the_count_back() {
    let backend = EchoBackend::start_with(Mode::Silent);
    let s = start(&backend.target_url(), &[], &[]);
    let raw = raw_upgrade(&s.gw);
    // The gateway is waiting for the backend's answer, holding the count.
    assert!(backend.wait_requests(1, DEADLINE));
    assert_eq!(count_a(&s.gw), 1, "{:?}", limits(&s.gw));
    drop(raw);
    expect_no_counts(&s.gw, "the client left during the backend handshake");
    expect_stat(
        &s.gw,
        "open",
        0,
        "the client left during the backend handshake",
    );
    assert!(
        backend.wait_open(0, DEADLINE),
        "the gateway kept its backend connection"
    );
    backend.set_mode(Mode::Echo);
    assert_released(&s.gw, None, "the client left during the backend handshake");
}

#[test]
fn client_vanishing_right_after_its_upgrade_request_gives_the_count_back() {
    let backend = EchoBackend::start_with(Mode::Silent);
    let s = start(&backend.target_url(), &[], &[]);
    // The request and the FIN leave together: the gateway may read both in one go.
    let raw = raw_upgrade(&s.gw);
    raw.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    drop(raw);
    expect_no_counts(&s.gw, "the client left right after its request");
    expect_stat(&s.gw, "open", 0, "the client left right after its request");
    assert!(
        backend.wait_open(0, DEADLINE),
        "the gateway kept its backend connection"
    );
    backend.set_mode(Mode::Echo);
    assert_released(&s.gw, None, "the client left right after its request");
}
