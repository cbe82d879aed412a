//! Proves the test helpers against tungstenite and the Python peer before the gateway uses them.

use crate::common;

use crate::common::*;
use std::time::Duration;

use tungstenite::Message;

#[test]
fn echo_backend_echoes_and_records_the_request() {
    let backend = EchoBackend::start();
    let url = backend.url("/some/path?q=1&r=two");
    let (mut ws, resp) = ws_connect(
        &url,
        &[
            ("X-IBM-Client-Id", "abc"),
            ("X-Twice", "1"),
            ("X-Twice", "2"),
        ],
    )
    .expect("connect to backend");
    assert_eq!(resp.status().as_u16(), 101);
    assert!(resp.headers().get("Sec-WebSocket-Protocol").is_none());
    roundtrip(&mut ws, Message::text("hello"));
    roundtrip(&mut ws, Message::binary(vec![0u8, 1, 2, 255]));
    roundtrip(&mut ws, Message::binary(vec![7u8; 300_000]));
    let closed = close_and_wait(&mut ws, 4001, "bye");
    assert_eq!(closed.code(), Some(4001), "{closed:?}");
    assert!(closed.error.is_none(), "{closed:?}");

    assert!(backend.wait_open(0, DEADLINE));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/some/path?q=1&r=two");
    assert_eq!(r.header("x-ibm-client-id"), Some("abc"));
    assert_eq!(r.header_all("X-Twice"), vec!["1", "2"]);
    assert!(r.raw_head.ends_with("\r\n\r\n"));
    assert_eq!(backend.messages(), 3);
    assert_eq!(backend.closes(), vec![(0, Some((4001, "bye".to_string())))]);
}

#[test]
fn echo_backend_selects_the_first_offered_subprotocol() {
    let backend = EchoBackend::start();
    let (mut ws, resp) = ws_connect(
        &backend.url("/"),
        &[("Sec-WebSocket-Protocol", "chat.v2, chat.v1")],
    )
    .expect("connect with subprotocols");
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "chat.v2"
    );
    roundtrip(&mut ws, Message::text("with a subprotocol"));
}

#[test]
fn echo_backend_rejects_with_status_and_body() {
    let backend = EchoBackend::start_with(Mode::Reject(403));
    let (status, body) = expect_refused(ws_connect(&backend.url("/x"), &[]));
    assert_eq!(status, 403);
    assert_eq!(body, backend::REJECT_BODY);
    assert!(backend.wait_requests(1, DEADLINE));
    assert_eq!(backend.last_request().unwrap().path, "/x");

    // The same refusal over raw TCP, to check the head and Content-Length.
    let mut raw = RawConn::connect(backend.addr()).unwrap();
    raw.send(upgrade_request(&backend.addr().to_string(), "/raw", &[]).as_bytes())
        .unwrap();
    let resp = raw.read_response().unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body_text(), backend::REJECT_BODY);
}

#[test]
fn echo_backend_modes_silent_close_and_flood() {
    let mut backend = EchoBackend::start_with(Mode::Silent);
    let mut raw = RawConn::connect(backend.addr()).unwrap();
    raw.send(upgrade_request("h", "/silent", &[]).as_bytes())
        .unwrap();
    assert!(backend.wait_requests(1, DEADLINE));
    assert!(raw.buffered().is_empty());
    assert_eq!(backend.open(), 1);

    backend.set_mode(Mode::CloseAfterFirst(4002));
    let (mut ws, _) = ws_connect(&backend.url("/close"), &[]).unwrap();
    ws.send(Message::text("one")).unwrap();
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.messages, vec![Message::text("one")]);
    assert_eq!(
        closed.frame,
        Some(Some((4002, backend::CLOSE_REASON.to_string())))
    );

    backend.set_mode(Mode::Flood {
        size: 100,
        count: Some(50),
    });
    let (mut ws, _) = ws_connect(&backend.url("/flood"), &[]).unwrap();
    for seq in 0u64..50 {
        match recv_data(&mut ws).unwrap() {
            Message::Binary(b) => {
                assert_eq!(b.len(), 100);
                assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), seq);
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    assert!(backend.wait_until(DEADLINE, |s| s.flood_sent == 50));

    // Flood until blocked: this client does not read, so the backend's socket fills up.
    backend.set_mode(Mode::Flood {
        size: 64 * 1024,
        count: None,
    });
    let (mut reader, _) = ws_connect(&backend.url("/flood-block"), &[]).unwrap();
    assert!(backend.wait_until(DEADLINE, |s| s.flood_blocked == 1));
    // Once blocked, `flood_sent` is the whole flood: reading it all, then an echo, proves it.
    let sent = backend.state(|s| s.flood_sent) - 50;
    assert!(
        sent > 1,
        "a 64 KiB flood blocks only after several messages"
    );
    for seq in 0..sent {
        match recv_data(&mut reader).unwrap() {
            Message::Binary(b) => assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), seq),
            m => panic!("unexpected {m:?}"),
        }
    }
    roundtrip(&mut reader, Message::text("after the flood"));

    // A second blocked flood stays blocked until the backend stops.
    let (ws_blocked, _) = ws_connect(&backend.url("/flood-block-2"), &[]).unwrap();
    assert!(backend.wait_until(DEADLINE, |s| s.flood_blocked == 2));

    // Stopping closes the silent, blocked and idle connections alike.
    drop(raw);
    backend.stop();
    assert_eq!(backend.open(), 0);
    drop(ws_blocked);
}

#[test]
fn python_peers_echo_each_other() {
    let Some(py) = python() else {
        return;
    };
    let mut echo = PyEcho::start(&py);
    let run = run_py_client(
        &py,
        &format!("{}path?x=1", echo.target_url()),
        &[
            "-H",
            "X-IBM-Client-Id: abc",
            "--sizes",
            "0,1,126,70000",
            "--close-code",
            "4003",
        ],
    );
    assert!(run.ok(), "{run:?}");
    assert!(run.summary.contains("\"echoed\": 4"), "{}", run.summary);
    assert!(
        echo.wait_events("\"code\": 4003", 1, DEADLINE),
        "{:?}",
        echo.events()
    );
    assert!(echo.events()[0].contains("/path?x=1"));
    assert!(echo.stop().success());

    // And the Python client against the tungstenite backend.
    let backend = EchoBackend::start();
    let run = run_py_client(
        &py,
        &backend.url("/"),
        &["--sizes", "5,500000", "--kind", "binary"],
    );
    assert!(run.ok(), "{run:?}");
    assert!(backend.wait_open(0, DEADLINE));
    assert_eq!(
        backend.closes(),
        vec![(0, Some((1000, "done".to_string())))]
    );
}

#[test]
fn listener_lines_are_parsed() {
    let log = "[2026-01-01T00:00:00Z INFO  wsgate::engine] listening on 127.0.0.1:4000 (plain)\n\
               [x INFO wsgate] listening on [::1]:4001 (admin)\n\
               something else (plain)\n";
    let found = common::gateway::parse_listeners(log);
    assert_eq!(
        found,
        vec![
            ("plain".to_string(), "127.0.0.1:4000".parse().unwrap()),
            ("admin".to_string(), "[::1]:4001".parse().unwrap())
        ]
    );
}

#[test]
fn templates_fill_and_refuse_leftovers() {
    let conf = TempConf::new();
    let p = conf.write_template(
        "a.yaml",
        "x: {{A}}\ny: {{B}}\n",
        &[("A", "1"), ("B", "two")],
    );
    assert_eq!(std::fs::read_to_string(p).unwrap(), "x: 1\ny: two\n");
    let r = std::panic::catch_unwind(|| common::conf::fill("{{MISSING}}", &[]));
    assert!(r.is_err());
    conf.copy_seed().write_open_api("/open");
    for f in [
        conf::SEED_API,
        conf::SEED_PRODUCT,
        conf::OPEN_API,
        conf::OPEN_PRODUCT,
    ] {
        let text = std::fs::read_to_string(conf.file(f)).unwrap();
        serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let g = GatewayYaml::seed("ws://127.0.0.1:1/")
        .bound("max-message-size", "1KiB")
        .render();
    let v: serde_yaml::Value = serde_yaml::from_str(&g).unwrap();
    assert_eq!(v["bounds"]["max-message-size"].as_str(), Some("1KiB"));
    assert_eq!(
        v["applications"][0]["client-id"].as_str(),
        Some(conf::DEMO_CLIENT_ID)
    );
    assert_eq!(v["listeners"][0]["tls-offloaded"].as_bool(), Some(true));
}

/// Stands in for wsgate: logs two listener lines like the gateway does, then waits for SIGTERM.
const FAKE_GATEWAY: &str = r#"
import signal, socket, sys
mode = sys.argv[1]
sys.stderr.write("args: %s\n" % " ".join(sys.argv[2:]))
if mode == "exit-early":
    sys.stderr.write("config error: no such product\n")
    sys.exit(3)
# The handler goes in before the listener lines: the harness may signal right after them.
def term(*_):
    sys.stderr.write("shutting down\n")
    sys.stderr.flush()
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore-term" else term)
socks = []
for kind in ("plain", "admin"):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    socks.append(s)
    sys.stderr.write("[2026-01-01T00:00:00Z INFO  wsgate::engine] listening on 127.0.0.1:%d (%s)\n"
                     % (s.getsockname()[1], kind))
sys.stderr.flush()
while True:
    signal.pause()
"#;

fn fake(
    conf: &std::path::Path,
    py: &std::path::Path,
    mode: &str,
) -> common::gateway::GatewayBuilder {
    Gateway::builder(conf).program(py, &["-c", FAKE_GATEWAY, mode])
}

#[test]
fn gateway_helper_drives_a_stand_in() {
    let Some(py) = python() else {
        return;
    };
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let path = GatewayYaml::open("ws://127.0.0.1:9/").write(&conf);

    let mut gw = fake(&path, &py, "serve")
        .arg("--property")
        .arg("a=b")
        .start();
    let plain = gw.addr("plain");
    assert_ne!(plain.port(), 0);
    assert_ne!(gw.addr("admin"), plain);
    std::net::TcpStream::connect(plain).expect("the logged plain address accepts");
    assert!(gw.log_contains(&format!("args: --config {} --property a=b", path.display())));
    assert_eq!(gw.url("/x"), format!("ws://{plain}/x"));
    assert!(gw.wait_log_count("listening on", 2, DEADLINE));
    assert!(!gw.wait_log_count("listening on", 3, Duration::from_millis(50)));
    assert_eq!(gw.log_count("listening on"), 2);
    assert!(gw.fd_count() >= 3);
    assert!(gw.rss_kib() > 0);
    assert!(gw.status_kib("VmHWM") >= gw.rss_kib() / 2);
    let pid = gw.pid();
    let status = gw.stop();
    assert!(status.success(), "{status}");
    assert!(gw.log_contains("shutting down"));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    // A process that exits before listening fails the start with its log.
    let err = fake(&path, &py, "exit-early")
        .try_start()
        .err()
        .expect("start must fail");
    assert!(
        err.contains("exited") && err.contains("config error"),
        "{err}"
    );

    // One that ignores SIGTERM is killed after the grace.
    let mut stubborn = fake(&path, &py, "ignore-term").start();
    let status = stubborn.stop_within(Duration::from_millis(200));
    assert_eq!(status.code(), None, "killed by a signal");

    // A listener the config declares but the process never logs fails the start.
    let path = GatewayYaml::open("ws://127.0.0.1:9/")
        .echo_backend(true)
        .write(&conf);
    let err = fake(&path, &py, "serve")
        .deadline(Duration::from_secs(1))
        .try_start()
        .err()
        .expect("the echo listener never appears");
    assert!(err.contains("did not log"), "{err}");
}

#[test]
fn gateway_helper_drives_the_real_binary() {
    // The built-in echo backend alone.
    let mut echo = Gateway::start_echo();
    let (mut ws, _) = ws_connect(&format!("ws://{}/", echo.addr("echo")), &[]).expect("echo");
    roundtrip(&mut ws, Message::text("built-in"));
    close_and_wait(&mut ws, 1000, "");
    assert!(echo.stop().success());

    // The gateway in front of the recording backend, with the keyless API.
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let path = GatewayYaml::open(&backend.target_url()).write(&conf);
    let mut gw = Gateway::start(&path, &[]);
    let (mut ws, _) = ws_connect(&gw.url("/open/?q=1"), &[]).expect("upgrade through wsgate");
    roundtrip(&mut ws, Message::binary(vec![1u8; 1000]));
    let closed = close_and_wait(&mut ws, 4000, "bye");
    assert_eq!(closed.code(), Some(4000), "{closed:?}");
    assert!(backend.wait_open(0, DEADLINE));
    assert_eq!(backend.closes(), vec![(0, Some((4000, "bye".to_string())))]);
    assert!(gw.wait_log("listening on", DEADLINE));
    assert!(gw.fd_count() > 0 && gw.rss_kib() > 0);
    assert!(gw.stop().success());
}
