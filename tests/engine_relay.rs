//! The relay against an independent peer: tungstenite as client and as backend, through the
//! real gateway binary over loopback sockets.

use crate::common::*;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

const BASE: &str = "/relay";

fn open_gateway(backend: &EchoBackend) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write_open_api(BASE);
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::open(&backend.target_url()).render(),
    );
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

#[test]
fn echoes_text_and_binary_of_every_length_class() {
    let backend = EchoBackend::start();
    let (_conf, gw) = open_gateway(&backend);
    let (mut ws, resp) = ws_connect(&gw.url(BASE), &[]).expect("upgrade through the gateway");
    assert_eq!(resp.status(), 101);
    for n in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
        let text: String = "abcdefghij".chars().cycle().take(n).collect();
        roundtrip(&mut ws, Message::text(text));
        let bin: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        roundtrip(&mut ws, Message::binary(bin));
    }
    let closed = close_and_wait(&mut ws, 1000, "done");
    assert_eq!(closed.code(), Some(1000));
}

#[test]
fn fragmented_message_with_a_ping_between_arrives_whole() {
    let backend = EchoBackend::start();
    let (_conf, gw) = open_gateway(&backend);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    let parts = ["first part, ", "second part, ", "third part"];
    let frame = |fin: bool, op: OpCode, payload: &str| {
        let mut f = Frame::message(payload.as_bytes().to_vec(), op, fin);
        f.header_mut().is_final = fin;
        f
    };
    ws.write(Message::Frame(frame(
        false,
        OpCode::Data(Data::Text),
        parts[0],
    )))
    .expect("first fragment");
    ws.write(Message::Frame(frame(
        false,
        OpCode::Data(Data::Continue),
        parts[1],
    )))
    .expect("second fragment");
    ws.write(Message::Ping(b"between".to_vec().into()))
        .expect("ping");
    ws.write(Message::Frame(frame(
        true,
        OpCode::Data(Data::Continue),
        parts[2],
    )))
    .expect("last fragment");
    ws.flush().expect("flush");
    let mut got_pong = false;
    let echoed = loop {
        match ws.read().expect("read") {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"between");
                got_pong = true;
            }
            Message::Text(t) => break t.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(echoed, parts.concat());
    assert!(
        got_pong,
        "the ping between the fragments was answered through the gateway"
    );
}

#[test]
fn client_headers_reach_the_backend_but_not_the_client_id() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    conf.copy_seed();
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::seed(&backend.target_url()).render(),
    );
    let gw = Gateway::start(&path, &[]);
    let url = gw.url("/test-yahel-websocket-api/?client_id=no&x=1");
    let (mut ws, _) = ws_connect(
        &url,
        &[
            ("X-IBM-Client-Id", "demo-client-id"),
            ("User-Agent", "wscat-like/1.0"),
            ("X-Custom", "kept"),
        ],
    )
    .expect("upgrade with the demo client id");
    roundtrip(&mut ws, Message::text("hi"));
    let seen = backend.last_request().expect("the backend saw the upgrade");
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(seen.header("user-agent"), Some("wscat-like/1.0"));
    assert_eq!(
        seen.header("x-ibm-client-id"),
        None,
        "the client id is never forwarded"
    );
    // The seed's parameter-control is an empty allowlist: no query parameter is copied.
    assert!(!seen.path.contains('?'), "query copied: {}", seen.path);
    // inject-proxy-headers: true in the seed.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    let host = seen.header("host").expect("Host");
    assert_eq!(
        host,
        backend.addr().to_string(),
        "Host is the target's host:port"
    );
}

#[test]
fn client_close_reaches_backend_and_reply_reaches_client() {
    let backend = EchoBackend::start();
    let (_conf, gw) = open_gateway(&backend);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    roundtrip(&mut ws, Message::text("before close"));
    let closed = close_and_wait(&mut ws, 4001, "client says bye");
    assert_eq!(
        closed.code(),
        Some(4001),
        "the backend's reply echoes the code"
    );
    assert!(backend.wait_until(DEADLINE, |s| !s.closes.is_empty()));
    let closes = backend.closes();
    assert_eq!(
        closes[0].1,
        Some((4001, "client says bye".to_string())),
        "the backend saw the client's code and reason"
    );
}

#[test]
fn backend_initiated_close_reaches_client() {
    let backend = EchoBackend::start_with(Mode::CloseAfterFirst(4002));
    let (_conf, gw) = open_gateway(&backend);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    ws.send(Message::text("one")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.messages, vec![Message::text("one")]);
    assert_eq!(closed.code(), Some(4002));
}

/// Messages and the end of the stream arriving together: the gateway must relay every message
/// and still notice the end, though no further readiness event will report it.
#[test]
fn client_messages_followed_at_once_by_its_fin_all_reach_the_backend() {
    let backend = EchoBackend::start();
    let (_conf, gw) = open_gateway(&backend);
    let mut raw = RawConn::connect(gw.addr("plain")).expect("connect");
    raw.send(upgrade_request("gw", BASE, &[]).as_bytes())
        .expect("upgrade request");
    assert_eq!(raw.read_head().expect("answer").status, 101);
    let mut burst = Vec::new();
    for i in 0..5 {
        let text = format!("message {i}");
        burst.extend(client::encode_frame(
            true,
            1,
            text.as_bytes(),
            Some([1, 2, 3, 4]),
        ));
    }
    raw.send(&burst).expect("messages");
    raw.stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("FIN");
    assert!(
        backend.wait_until(DEADLINE, |s| !s.closes.is_empty() || !s.errors.is_empty()),
        "the backend never learned that the client left"
    );
    assert_eq!(backend.messages(), 5, "every message reached the backend");
    // Then the end of the stream, as the client sent it: no close frame.
    assert_eq!(backend.closes(), [], "a close frame the client never sent");
}

#[test]
fn backend_messages_followed_at_once_by_its_fin_all_reach_the_client() {
    let backend = EchoBackend::start_with(Mode::SendThenFin(5));
    let (_conf, gw) = open_gateway(&backend);
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade");
    let closed = read_until_closed(&mut ws);
    let want: Vec<Message> = (0..5)
        .map(|i| Message::text(format!("message {i}")))
        .collect();
    assert_eq!(closed.messages, want, "every message reached the client");
    assert_eq!(
        closed.frame, None,
        "then the end of the stream, without a close frame"
    );
}

#[test]
fn python_websockets_both_ends_through_the_gateway() {
    let Some(py) = python() else {
        skip_note("Python websockets could not be installed");
        return;
    };
    let mut echo = PyEcho::start(&py);
    let conf = TempConf::new();
    conf.write_open_api(BASE);
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::open(&echo.target_url()).render(),
    );
    let gw = Gateway::start(&path, &[]);
    let run = run_py_client(&py, &gw.url(BASE), &[]);
    assert!(
        run.ok(),
        "python client through the gateway failed: {run:?}"
    );
    let _ = echo.stop();
}

#[test]
fn subprotocol_is_negotiated_end_to_end_with_the_builtin_echo() {
    // `wsgate echo` as the backend: it picks the first subprotocol the client offers.
    let mut cmd = std::process::Command::new(gateway::wsgate_bin());
    cmd.args(["echo", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("RUST_LOG_STYLE", "never");
    let echo = proc::Proc::spawn("wsgate echo", cmd).expect("spawn wsgate echo");
    assert!(
        echo.streams()
            .wait_until(DEADLINE, |s| s.stderr.contains("(echo)"))
    );
    let (_, echo_addr) = gateway::parse_listeners(&echo.stderr())
        .into_iter()
        .find(|(k, _)| k == "echo")
        .expect("echo listener");
    let conf = TempConf::new();
    conf.write_open_api(BASE);
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::open(&format!("ws://{echo_addr}/")).render(),
    );
    let gw = Gateway::start(&path, &[]);
    let (mut ws, resp) = ws_connect(
        &gw.url(BASE),
        &[("Sec-WebSocket-Protocol", "chat, superchat")],
    )
    .expect("upgrade with subprotocols");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("chat")
    );
    roundtrip(&mut ws, Message::text("negotiated"));
}
