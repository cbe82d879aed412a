//! The shipped `conf/gateway.yaml` works on its own: the seed's API and Product, and the second
//! recipe's WebSocket-and-HTTPS API in its own product, served end to end through the built-in
//! echo backend, exactly as the README's first tries do it.

use crate::common;

use crate::common::*;
use tungstenite::Message;

/// The API and Product files the shipped `conf/gateway.yaml` loads.
const SHIPPED_FILES: [&str; 4] = [
    "test-yahel-websocket-api_1.0.0.yaml",
    "test-yahel-websocket-product_1.0.0.yaml",
    "test-yahel-websocket-https-api_1.0.0.yaml",
    "test-yahel-websocket-https-product_1.0.0.yaml",
];

/// A port that was free a moment ago (the shipped config names fixed ports).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

/// Starts the shipped config from a copy in `conf`, its fixed ports replaced: the plain listener
/// by port 0, the echo backend and the admin listener by ports that were free a moment ago.
fn start_shipped(conf: &TempConf) -> Gateway {
    let shipped = std::fs::read_to_string(repo_root().join("conf/gateway.yaml")).expect("read");
    let (echo, admin) = (free_port(), free_port());
    let yaml = shipped
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{echo}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"));
    assert_ne!(
        yaml, shipped,
        "the shipped addresses moved; update this test"
    );
    for f in SHIPPED_FILES {
        std::fs::copy(repo_root().join("conf").join(f), conf.file(f)).expect("copy shipped file");
    }
    let path = conf.write("gateway.yaml", &yaml);
    Gateway::start(&path, &[])
}

#[test]
fn shipped_config_serves_the_seed_api_through_the_builtin_echo() {
    let conf = TempConf::new();
    let gw = start_shipped(&conf);
    // The seed allows the client 3 messages a minute towards the backend: one per connection.
    // demo-client-id goes through the second product's plan, seed-client-id through the seed's.
    let messages = [Message::text("hello"), Message::binary(vec![1u8, 2, 3])];
    for client in ["demo-client-id", "seed-client-id"] {
        for (base, msg) in ["/test-yahel-websocket-api", "/test-yahel-websocket-api/"]
            .into_iter()
            .zip(messages.clone())
        {
            let (mut ws, resp) = ws_connect(&gw.url(base), &[("X-IBM-Client-Id", client)])
                .unwrap_or_else(|e| panic!("{client} {base}: {e}"));
            assert_eq!(resp.status(), 101);
            roundtrip(&mut ws, msg);
            let closed = close_and_wait(&mut ws, 1000, "bye");
            assert_eq!(closed.code(), Some(1000));
        }
    }
}

#[test]
fn shipped_config_serves_the_https_api_for_websockets_and_plain_calls() {
    let conf = TempConf::new();
    let gw = start_shipped(&conf);
    let base = "/test-yahel-websocket-https-api/";
    let id = [("X-IBM-Client-Id", "demo-client-id")];

    // wscat: the switch's WebSocket case, with the count limit's headers on the 101.
    let (mut ws, resp) = ws_connect(&gw.url(base), &id).unwrap_or_else(|e| {
        panic!(
            "upgrade: {e} {:?}\n{}",
            http_error(&e),
            common::proc::tail(&gw.log(), 30)
        )
    });
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("x-countlimit-remaining")
            .map(|v| v.as_bytes()),
        Some(&b"name=websocket-connections,1;"[..])
    );
    roundtrip(&mut ws, Message::text("over the https api"));

    // curl: the otherwise case, invoked at the echo backend, which answers with the request
    // line and headers it got.
    let r = http_request(
        gw.addr("plain"),
        "GET",
        base,
        &[("X-IBM-Client-Id", "demo-client-id"), ("X-Probe", "curl")],
        b"",
    )
    .expect("plain GET");
    assert_eq!(
        r.status,
        200,
        "{r:?}\n{}",
        common::proc::tail(&gw.log(), 30)
    );
    let body = r.body_text();
    assert!(body.starts_with("GET / HTTP/1.1\r\n"), "{body:?}");
    let lower = body.to_ascii_lowercase();
    assert!(lower.contains("\r\nx-probe: curl\r\n"), "{body:?}");
    assert!(
        !lower.contains("x-ibm-client-id"),
        "the client id went to the backend: {body:?}"
    );
    assert!(r.header("x-global-transaction-id").is_some(), "{r:?}");
    assert!(
        r.header("x-ratelimit-remaining")
            .is_some_and(|v| v.contains("name=https-ratelimit,59;")),
        "{r:?}"
    );
    let closed = close_and_wait(&mut ws, 1000, "bye");
    assert_eq!(closed.code(), Some(1000));

    // seed-client-id is subscribed to the seed's product only.
    let r = http_request(
        gw.addr("plain"),
        "GET",
        base,
        &[("X-IBM-Client-Id", "seed-client-id")],
        b"",
    )
    .expect("plain GET as seed-client-id");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.body_text()
            .contains("Cannot find valid subscription for the incoming API request."),
        "{r:?}"
    );
}

#[test]
fn check_accepts_the_shipped_config_and_prints_the_summary() {
    let out = run_wsgate(&[
        "check",
        "--config",
        repo_root()
            .join("conf/gateway.yaml")
            .to_str()
            .expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "wsgate check failed:\n{}", out.stderr);
    for words in [
        "/test-yahel-websocket-api",
        "/test-yahel-websocket-https-api",
        "websocket-connections",
        "websocket-request-ratelimit",
        "websocket-response-ratelimit",
        "https-ratelimit",
        "demo-client-id",
        "seed-client-id",
    ] {
        assert!(
            out.stdout.contains(words),
            "summary lacks {words:?}:\n{}",
            out.stdout
        );
    }
}
