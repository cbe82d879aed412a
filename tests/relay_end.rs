//! How a relayed WebSocket ends when one side goes without a close frame, and what passes with
//! permessage-deflate. The gateway relays an abnormal end as an abnormal end: the other side
//! gets what was already relayed, then the end of the TCP stream (a FIN, never a reset that
//! could destroy those last bytes), and no close frame the vanished side never sent. Its own
//! closes (protocol errors, limits, timeouts, shutdown) keep their close frames.

use crate::common;

use crate::common::limits::{A, open_as, seed_yaml, write_conf};
use crate::common::*;
use serde_yaml::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use tungstenite::Message;

/// What tungstenite reports when the TCP stream ends (EOF) without a close frame. A reset
/// would be an I/O error instead ("Connection reset by peer").
const ENDED_WITHOUT_CLOSE: &str = "Connection reset without closing handshake";

/// The seed API, whose activity records go to the gateway's standard output.
fn seed_gateway(target: &str) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let gw = Gateway::start(write_conf(&conf, &seed_yaml(target), &[], &[]), &[]);
    (conf, gw)
}

/// The one activity record of an upgraded connection, once it is written.
fn websocket_record(gw: &Gateway) -> Value {
    assert!(
        gw.wait_stdout_count("\"status\":101,", 1, DEADLINE),
        "no activity record of the WebSocket; stdout:\n{}",
        gw.stdout()
    );
    let out = gw.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("\"status\":101,"))
        .expect("the record's line");
    serde_yaml::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn assert_closed(record: &Value, code: u64, by: &str) {
    assert_eq!(
        record.get("close_code").and_then(Value::as_u64),
        Some(code),
        "{record:?}"
    );
    assert_eq!(
        record.get("closed_by").and_then(Value::as_str),
        Some(by),
        "{record:?}"
    );
}

/// A backend for one connection: tungstenite accepts the upgrade, then `then` acts on the
/// socket. Gives its target URL and the thread, to join at the end of the test.
fn one_shot_backend(then: fn(tungstenite::WebSocket<TcpStream>)) -> (String, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", l.local_addr().expect("addr"));
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(DEADLINE)).expect("guard");
        then(tungstenite::accept(s).expect("upgrade"));
    });
    (url, h)
}

/// SO_LINGER 0: closing the socket sends a TCP reset instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_LINGER");
}

#[test]
fn backend_fin_without_a_close_frame_ends_the_client_without_one_after_its_messages() {
    let backend = EchoBackend::start_with(Mode::SendThenFin(5));
    let (_c, gw) = seed_gateway(&backend.target_url());
    let (mut ws, _) = open_as(&gw, A);
    let closed = read_until_closed(&mut ws);
    let want: Vec<Message> = (0..5)
        .map(|i| Message::text(format!("message {i}")))
        .collect();
    assert_eq!(closed.messages, want, "every message reached the client");
    assert_eq!(closed.frame, None, "a close frame the backend never sent");
    assert!(
        closed
            .error
            .as_deref()
            .is_some_and(|e| e.contains(ENDED_WITHOUT_CLOSE)),
        "the stream should end with a FIN: {closed:?}"
    );
    assert_closed(&websocket_record(&gw), 1006, "backend");
}

#[test]
fn backend_reset_ends_the_client_without_a_close_frame() {
    let (url, backend) = one_shot_backend(|mut ws| {
        ws.send(Message::text("before the reset")).expect("send");
        reset_on_close(ws.get_ref());
    });
    let (_c, gw) = seed_gateway(&url);
    let (mut ws, _) = open_as(&gw, A);
    let closed = read_until_closed(&mut ws);
    backend.join().expect("backend thread");
    assert_eq!(closed.messages, [Message::text("before the reset")]);
    assert_eq!(closed.frame, None, "{closed:?}");
    // The backend's reset is not passed on: the client's stream ends with a FIN.
    assert!(
        closed
            .error
            .as_deref()
            .is_some_and(|e| e.contains(ENDED_WITHOUT_CLOSE)),
        "{closed:?}"
    );
    assert_closed(&websocket_record(&gw), 1006, "backend");
}

#[test]
fn backend_gone_inside_a_frame_ends_the_client_right_there() {
    let (url, backend) = one_shot_backend(|mut ws| {
        // A binary frame that declares 100 bytes, 10 of them sent, then FIN.
        let mut part = vec![0x82, 100];
        part.extend_from_slice(b"0123456789");
        ws.get_mut().write_all(&part).expect("write");
        ws.get_ref()
            .shutdown(std::net::Shutdown::Write)
            .expect("FIN");
        let mut sink = [0u8; 256];
        while matches!(ws.get_mut().read(&mut sink), Ok(n) if n > 0) {}
    });
    let (_c, gw) = seed_gateway(&url);
    let mut raw = RawConn::connect(gw.addr("plain")).expect("connect");
    let head = upgrade_request(
        "gw",
        common::conf::SEED_BASE_PATH,
        &[("X-IBM-Client-Id", A)],
    );
    raw.send(head.as_bytes()).expect("upgrade request");
    assert_eq!(raw.read_head().expect("101").status, 101);
    let mut got = raw.buffered().to_vec();
    let mut s = raw.into_stream();
    let mut chunk = [0u8; 256];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => panic!("reset after {got:02x?}"),
            Err(e) => panic!("reading to the end: {e}"),
        }
    }
    backend.join().expect("backend thread");
    let mut want = vec![0x82, 100];
    want.extend_from_slice(b"0123456789");
    assert_eq!(got, want, "the bytes relayed, and nothing after them");
    assert_closed(&websocket_record(&gw), 1006, "backend");
}

#[test]
fn client_fin_without_a_close_frame_ends_the_backend_without_one() {
    let backend = EchoBackend::start();
    let (_c, gw) = seed_gateway(&backend.target_url());
    let (mut ws, _) = open_as(&gw, A);
    roundtrip(&mut ws, Message::text("then gone"));
    ws.get_ref()
        .shutdown(std::net::Shutdown::Write)
        .expect("FIN");
    assert!(
        backend.wait_until(DEADLINE, |s| !s.errors.is_empty() || !s.closes.is_empty()),
        "the backend never learned that the client left"
    );
    assert_eq!(backend.closes(), [], "a close frame the client never sent");
    let errors = backend.state(|s| s.errors.clone());
    assert!(
        errors.iter().any(|(_, e)| e.contains(ENDED_WITHOUT_CLOSE)),
        "the backend's stream should end with a FIN: {errors:?}"
    );
    // The client's side is ended the same way once the backend's is.
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.frame, None, "{closed:?}");
    assert_closed(&websocket_record(&gw), 1006, "client");
}

#[test]
fn permessage_deflate_is_negotiated_end_to_end_and_compressed_messages_pass() {
    let Some(py) = python() else {
        skip_note("Python websockets could not be installed");
        return;
    };
    let echo = PyEcho::start(&py);
    let conf = TempConf::new();
    conf.write_open_api("/deflate");
    let gw = Gateway::start(
        conf.write(
            "gateway.yaml",
            &GatewayYaml::open(&echo.target_url()).render(),
        ),
        &[],
    );
    // Compressible text and binary messages of several sizes, fragmented ones among them
    // (websockets fragments nothing by itself; large messages cross many reads).
    let run = run_py_client(
        &py,
        &gw.url("/deflate"),
        &[
            "--compression",
            "deflate",
            "--sizes",
            "0,1,125,126,65535,65536,1000000",
        ],
    );
    assert!(run.ok(), "{run:?}\n{}", gw.log());
    assert!(
        run.summary
            .contains("\"extensions\": [\"PerMessageDeflate\"]"),
        "permessage-deflate was not in effect: {}",
        run.summary
    );
    assert!(
        echo.wait_events("permessage-deflate", 1, DEADLINE),
        "the backend was not offered the extension: {:?}",
        echo.events()
    );
}

#[test]
fn rsv1_on_a_continuation_frame_is_a_protocol_error_even_with_permessage_deflate() {
    let Some(py) = python() else {
        skip_note("Python websockets could not be installed");
        return;
    };
    let echo = PyEcho::start(&py);
    let conf = TempConf::new();
    conf.write_open_api("/deflate");
    let gw = Gateway::start(
        conf.write(
            "gateway.yaml",
            &GatewayYaml::open(&echo.target_url()).render(),
        ),
        &[],
    );
    let mut raw = RawConn::connect(gw.addr("plain")).expect("connect");
    let head = upgrade_request(
        "gw",
        "/deflate",
        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
    );
    raw.send(head.as_bytes()).expect("upgrade request");
    let resp = raw.read_head().expect("101");
    assert_eq!(resp.status, 101, "{resp:?}");
    assert!(
        resp.header("sec-websocket-extensions")
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{resp:?}"
    );
    // An uncompressed first frame (RSV1 clear), then a continuation with RSV1 set: RFC 7692
    // gives RSV1 to a message's first frame only.
    raw.send_frame(false, 1, b"plain ").expect("first frame");
    let mut bad = client::encode_frame(true, 0, b"text", Some([9, 8, 7, 6]));
    bad[0] |= 0x40;
    raw.send(&bad).expect("continuation with RSV1");
    let close = loop {
        let f = raw.read_frame().expect("a close frame");
        if f.opcode == 8 {
            break f;
        }
    };
    assert_eq!(&close.payload[..2], &1002u16.to_be_bytes(), "{close:?}");
    assert_eq!(
        &close.payload[2..],
        b"protocol error",
        "the gateway's own close"
    );
    // The gateway caught it: the backend never saw the bad frame and was closed with 1001.
    assert!(
        echo.wait_events("\"event\": \"close\"", 1, DEADLINE),
        "{:?}",
        echo.events()
    );
    let events = echo.events();
    let closed = events.iter().find(|e| e.contains("\"close\"")).unwrap();
    assert!(closed.contains("\"code\": 1001"), "{closed}");
}
