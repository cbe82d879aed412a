//! The seed's per-message rate limits over real sockets (spec decisions 6 and 7): 3 messages a
//! minute from each client to the backend (`websocket-request-ratelimit`), 5 a minute from the
//! backend to each client (`websocket-response-ratelimit`). A message over a hard limit closes
//! the connection (1008 to the client, 1001 to the backend), or with `over-limit: drop` is
//! dropped whole while the connection stays; fragments count once, control frames never.
//!
//! Every gateway here runs with the test clock, aligned to the start of an hour, so a minute
//! window cannot roll over in the middle of a test, and `POST /clock/advance` opens the next one.

use crate::common::admin::*;
use crate::common::limits::*;
use crate::common::*;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

const OVER: &str = "Rate Limit exceeded";

fn start_with(
    backend: &EchoBackend,
    bounds: &[(&str, &str)],
    product_edits: &[(&str, &str)],
) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let mut yaml = seed_yaml(&backend.target_url());
    for (k, v) in bounds {
        yaml = yaml.bound(k, v);
    }
    let path = write_conf(&conf, &yaml, product_edits, &[]);
    let gw = start_with_test_clock(&path, 3600);
    (conf, gw)
}

fn start(backend: &EchoBackend, bounds: &[(&str, &str)]) -> (TempConf, Gateway) {
    start_with(backend, bounds, &[])
}

/// The live counter of one limit for one application: (value, max, window_start).
fn counter(gw: &Gateway, limit: &str, app: &str) -> Option<(u64, u64, Option<u64>)> {
    limits(gw)
        .into_iter()
        .find(|c| c.limit == limit && c.key.ends_with(&format!("app={app}")))
        .map(|c| (c.value, c.max, c.window_start))
}

/// Sends a ping and reads until its pong: everything the peers sent before is through the
/// gateway by then. Panics if a data message or a close comes first.
fn ping_through(ws: &mut Ws, payload: &[u8]) {
    ws.send(Message::Ping(payload.to_vec().into()))
        .expect("ping");
    loop {
        match ws.read().expect("read until the pong") {
            Message::Pong(p) if &p[..] == payload => return,
            Message::Pong(_) => {}
            other => panic!("{other:?} arrived before the pong of {payload:?}"),
        }
    }
}

/// Sends one text message as `parts.len()` frames, with a ping between the first two frames
/// when `ping_between`.
fn send_fragmented(ws: &mut Ws, parts: &[&str], ping_between: bool) {
    let n = parts.len();
    for (i, p) in parts.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let fin = i + 1 == n;
        let mut f = Frame::message(p.as_bytes().to_vec(), op, fin);
        f.header_mut().is_final = fin;
        ws.write(Message::Frame(f)).expect("fragment");
        if i == 0 && ping_between {
            ws.write(Message::Ping(b"between".to_vec().into()))
                .expect("ping");
        }
    }
    ws.flush().expect("flush");
}

fn backend_close_code(backend: &EchoBackend) -> Option<u16> {
    assert!(
        backend.wait_until(DEADLINE, |s| !s.closes.is_empty()),
        "the backend got no close frame; its errors: {:?}",
        backend.state(|s| s.errors.clone())
    );
    backend.closes()[0].1.as_ref().map(|c| c.0)
}

/// The Flood backend's sequence number of a message.
fn seq(m: &Message) -> u64 {
    match m {
        Message::Binary(b) if b.len() == 8 => u64::from_le_bytes(b[..8].try_into().unwrap()),
        other => panic!("expected an 8-byte flood message, got {other:?}"),
    }
}

// ---- client to backend: 3 a minute ---------------------------------------------------------

#[test]
fn fourth_client_message_in_a_minute_closes_with_1008_and_the_backend_gets_1001() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    let (value, max, window) = counter(&gw, REQUEST_LIMIT, "demo-app").expect("request counter");
    assert_eq!((value, max), (3, 3));
    assert_eq!(window.map(|w| w % 60), Some(0), "minute windows");
    // Each echo counted once against the response limit.
    let (rvalue, rmax, _) = counter(&gw, RESPONSE_LIMIT, "demo-app").expect("response counter");
    assert_eq!((rvalue, rmax), (3, 5));

    ws.send(Message::text("one too many")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(
        closed.frame,
        Some(Some((1008, OVER.to_string()))),
        "{closed:?}"
    );
    assert!(closed.messages.is_empty(), "the 4th was echoed: {closed:?}");
    expect_stat(&gw, "open", 0, "the close for the 4th message");
    assert_eq!(backend.messages(), 3, "the 4th reached the backend");
    // A refused message consumes nothing.
    assert_eq!(
        counter(&gw, REQUEST_LIMIT, "demo-app").map(|c| c.0),
        Some(3)
    );
    assert_eq!(
        backend_close_code(&backend),
        Some(1001),
        "the backend is closed with 1001"
    );
}

#[test]
fn request_limit_is_per_client_and_per_minute() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    let _ = close_and_wait(&mut ws, 1000, "");

    // The limit is per client, not per connection: A's next connection is still over it ...
    let (mut again, _) = open_as(&gw, A);
    again
        .send(Message::text("still this minute"))
        .expect("send");
    let closed = read_until_closed(&mut again);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    // ... while B has its own three.
    let (mut b, _) = open_as(&gw, B);
    for i in 0..3 {
        roundtrip(&mut b, Message::text(format!("b {i}")));
    }
    let _ = close_and_wait(&mut b, 1000, "");

    // The next minute, A's messages pass again.
    advance_clock(&gw, 60);
    let (mut next, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut next, Message::text(format!("next minute {i}")));
    }
    assert_eq!(
        counter(&gw, REQUEST_LIMIT, "demo-app").map(|c| c.0),
        Some(3)
    );
}

#[test]
fn drop_mode_drops_the_fourth_client_message_and_keeps_the_connection() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[("over-limit", "drop")]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("dropped 4th")).expect("send");
    ws.send(Message::binary(vec![5u8; 100])).expect("send");
    // The pong comes back through the same connection, behind anything the backend echoed.
    ping_through(&mut ws, b"after the drops");
    assert_eq!(
        backend.messages(),
        3,
        "a message over the limit reached the backend"
    );
    assert_eq!(
        counter(&gw, REQUEST_LIMIT, "demo-app").map(|c| c.0),
        Some(3)
    );
    assert_eq!(stat(&gw, "upgraded"), 1, "the connection stays");

    advance_clock(&gw, 60);
    roundtrip(&mut ws, Message::text("a new minute"));
    assert_eq!(backend.messages(), 4);
    assert_eq!(
        counter(&gw, REQUEST_LIMIT, "demo-app").map(|c| c.0),
        Some(1)
    );
    let closed = close_and_wait(&mut ws, 1000, "done");
    assert_eq!(closed.code(), Some(1000));
}

// ---- backend to client: 5 a minute ---------------------------------------------------------

#[test]
fn sixth_backend_message_in_a_minute_closes_the_client_with_1008() {
    let backend = EchoBackend::start_with(Mode::Flood {
        size: 8,
        count: Some(6),
    });
    let (_c, gw) = start(&backend, &[]);
    let (mut ws, _) = open_as(&gw, A);
    let closed = read_until_closed(&mut ws);
    let seqs: Vec<u64> = closed.messages.iter().map(seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4], "{closed:?}");
    assert_eq!(
        closed.frame,
        Some(Some((1008, OVER.to_string()))),
        "{closed:?}"
    );
    // The backend thread counts its sends on its own schedule: wait for the 6th to be counted.
    assert!(
        backend.wait_until(DEADLINE, |s| s.flood_sent == 6),
        "the backend sent {} messages",
        backend.state(|s| s.flood_sent)
    );
    assert_eq!(backend_close_code(&backend), Some(1001));
    assert_eq!(
        counter(&gw, RESPONSE_LIMIT, "demo-app").map(|c| c.0),
        Some(5)
    );
    expect_no_counts(&gw, "the close for the 6th backend message");
}

#[test]
fn drop_mode_drops_the_sixth_backend_message_and_keeps_the_connection() {
    let backend = EchoBackend::start_with(Mode::Flood {
        size: 8,
        count: Some(6),
    });
    let (_c, gw) = start(&backend, &[("over-limit", "drop")]);
    let (mut ws, _) = open_as(&gw, A);
    for want in 0..5 {
        let m = recv_data(&mut ws).expect("flood message");
        assert_eq!(seq(&m), want);
    }
    assert!(backend.wait_until(DEADLINE, |s| s.flood_sent == 6));
    // The backend wrote its 6th message before it could read this ping: had the gateway
    // forwarded it, it would arrive before the pong.
    ping_through(&mut ws, b"after the flood");
    assert_eq!(stat(&gw, "upgraded"), 1, "the connection stays");

    advance_clock(&gw, 60);
    roundtrip(&mut ws, Message::text("a new minute"));
    assert_eq!(
        counter(&gw, RESPONSE_LIMIT, "demo-app").map(|c| c.0),
        Some(1)
    );
    let closed = close_and_wait(&mut ws, 1000, "done");
    assert_eq!(closed.code(), Some(1000));
}

/// The seed with the request limit raised to 10 a minute, so that echoes alone can pass the
/// response limit of 5.
fn raised_request_limit() -> String {
    SEED_REQUEST_BLOCK.replace("value: 3/1minute", "value: 10/1minute")
}

#[test]
fn sixth_echo_in_a_minute_closes_the_client_with_1008() {
    let backend = EchoBackend::start();
    let raised = raised_request_limit();
    let (_c, gw) = start_with(&backend, &[], &[(SEED_REQUEST_BLOCK, &raised)]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..5 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    assert_eq!(
        counter(&gw, RESPONSE_LIMIT, "demo-app").map(|c| c.0),
        Some(5)
    );
    // The 6th goes to the backend (request 6 of 10); its echo is the 6th response.
    ws.send(Message::text("the 6th echo is one too many"))
        .expect("send");
    let closed = read_until_closed(&mut ws);
    assert!(
        closed.messages.is_empty(),
        "the 6th echo arrived: {closed:?}"
    );
    assert_eq!(
        closed.frame,
        Some(Some((1008, OVER.to_string()))),
        "{closed:?}"
    );
    assert!(backend.wait_until(DEADLINE, |s| s.messages == 6));
    assert_eq!(backend_close_code(&backend), Some(1001));
    expect_no_counts(&gw, "the close for the 6th echo");
}

#[test]
fn drop_mode_drops_the_sixth_echo_and_keeps_the_connection() {
    let backend = EchoBackend::start();
    let raised = raised_request_limit();
    let (_c, gw) = start_with(
        &backend,
        &[("over-limit", "drop")],
        &[(SEED_REQUEST_BLOCK, &raised)],
    );
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..5 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("echo dropped")).expect("send");
    // The backend echoes before it reads the ping: a forwarded echo would come before the pong.
    ping_through(&mut ws, b"after the 6th");
    assert_eq!(backend.messages(), 6);
    assert_eq!(stat(&gw, "upgraded"), 1, "the connection stays");
    advance_clock(&gw, 60);
    roundtrip(&mut ws, Message::text("a new minute"));
    let closed = close_and_wait(&mut ws, 1000, "done");
    assert_eq!(closed.code(), Some(1000));
}

/// A backend on a raw socket that answers the upgrade and sends `n` binary messages of 8 bytes
/// (sequence numbers, little endian) in the same write as its 101, then reads until the gateway
/// closes. Returns its `ws://` URL.
fn one_write_backend(n: u64) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let t = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut head = Vec::new();
        let mut b = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(k) => head.extend_from_slice(&b[..k]),
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&head).expect("the gateway's upgrade request");
        let key = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|h| h.value.to_vec())
            .expect("Sec-WebSocket-Key");
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            tungstenite::handshake::derive_accept_key(&key)
        )
        .into_bytes();
        for i in 0..n {
            out.extend_from_slice(&[0x82, 8]);
            out.extend_from_slice(&i.to_le_bytes());
        }
        sock.write_all(&out).expect("101 and frames in one write");
        while let Ok(k) = sock.read(&mut b) {
            if k == 0 {
                break;
            }
        }
    });
    (url, t)
}

#[test]
fn backend_messages_in_the_same_segment_as_its_101_reach_the_client() {
    // Below every limit: frames that come in the same read as the backend's 101 must be relayed
    // (and counted) without waiting for more backend traffic.
    let (url, server) = one_write_backend(3);
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&url), &[], &[]);
    let gw = start_with_test_clock(&path, 3600);
    let (mut ws, _) = open_as(&gw, A);
    for want in 0..3 {
        let m = recv_data(&mut ws)
            .unwrap_or_else(|e| panic!("message {want} of the 3 sent behind the 101: {e}"));
        assert_eq!(seq(&m), want);
    }
    assert_eq!(
        counter(&gw, RESPONSE_LIMIT, "demo-app").map(|c| c.0),
        Some(3)
    );
    drop(ws);
    drop(gw);
    server.join().expect("backend thread");
}

// ---- what counts --------------------------------------------------------------------------

#[test]
fn a_fragmented_message_counts_once() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    let (mut ws, _) = open_as(&gw, A);
    let parts = ["first part, ", "second part, ", "third part"];
    send_fragmented(&mut ws, &parts, false);
    assert_eq!(
        recv_data(&mut ws).expect("echo"),
        Message::text(parts.concat())
    );
    roundtrip(&mut ws, Message::text("whole"));
    send_fragmented(&mut ws, &parts, true);
    loop {
        match ws.read().expect("echo of the second fragmented message") {
            Message::Pong(_) => {}
            m => {
                assert_eq!(m, Message::text(parts.concat()));
                break;
            }
        }
    }
    assert_eq!(backend.messages(), 3);
    assert_eq!(
        counter(&gw, REQUEST_LIMIT, "demo-app").map(|c| c.0),
        Some(3)
    );
    // Three messages of five frames in all: the next message is the 4th.
    ws.send(Message::text("fourth")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    assert_eq!(backend.messages(), 3);
}

#[test]
fn drop_mode_drops_every_frame_of_a_fragmented_message() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[("over-limit", "drop")]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    // The 4th, in three frames with a ping between them: the frames go, the ping passes.
    send_fragmented(&mut ws, &["dropped ", "in ", "pieces"], true);
    match ws
        .read()
        .expect("the pong of the ping between the fragments")
    {
        Message::Pong(p) => assert_eq!(&p[..], b"between"),
        other => panic!("{other:?} before the pong"),
    }
    ping_through(&mut ws, b"after");
    assert_eq!(backend.messages(), 3);
    assert!(
        backend.state(|s| s.errors.is_empty()),
        "a stray fragment reached the backend: {:?}",
        backend.state(|s| s.errors.clone())
    );
    advance_clock(&gw, 60);
    // Nothing of the dropped message sticks to the next one.
    roundtrip(&mut ws, Message::text("clean"));
    assert_eq!(backend.messages(), 4);
}

#[test]
fn pings_and_pongs_never_count() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    let (mut ws, _) = open_as(&gw, A);
    for i in 0..10u8 {
        ws.send(Message::Pong(vec![i].into()))
            .expect("unsolicited pong");
    }
    for i in 0..10u8 {
        ping_through(&mut ws, &[b'p', i]);
    }
    assert_eq!(limit_total(&gw, REQUEST_LIMIT), 0, "{:?}", limits(&gw));
    assert_eq!(limit_total(&gw, RESPONSE_LIMIT), 0, "{:?}", limits(&gw));
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("fourth")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1008), "{closed:?}");
    assert_eq!(backend.messages(), 3);
}

#[test]
fn message_limit_that_is_not_is_client_is_shared_and_closes_with_1013() {
    let backend = EchoBackend::start();
    let shared = SEED_REQUEST_BLOCK.replace("is-client: true", "is-client: false");
    let (_c, gw) = start_with(&backend, &[], &[(SEED_REQUEST_BLOCK, &shared)]);
    let (mut a, _) = open_as(&gw, A);
    let (mut b, _) = open_as(&gw, B);
    roundtrip(&mut a, Message::text("a 1"));
    roundtrip(&mut b, Message::text("b 1"));
    roundtrip(&mut a, Message::text("a 2"));
    assert_eq!(limit_total(&gw, REQUEST_LIMIT), 3, "{:?}", limits(&gw));
    // One counter for every client: B's second message is the 4th.
    b.send(Message::text("b 2")).expect("send");
    let closed = read_until_closed(&mut b);
    assert_eq!(
        closed.frame,
        Some(Some((1013, OVER.to_string()))),
        "{closed:?}"
    );
    a.send(Message::text("a 3")).expect("send");
    let closed = read_until_closed(&mut a);
    assert_eq!(closed.code(), Some(1013), "{closed:?}");
    assert_eq!(backend.messages(), 3);
    assert!(backend.wait_until(DEADLINE, |s| s.open == 0));
    let closes = backend.closes();
    assert_eq!(
        closes
            .iter()
            .map(|c| c.1.as_ref().map(|c| c.0))
            .collect::<Vec<_>>(),
        vec![Some(1001), Some(1001)],
        "both backend connections are closed with 1001; errors {:?}",
        backend.state(|s| s.errors.clone())
    );
}
