//! The shipped `conf/gateway.yaml` works on its own: the seed's API and Product, served end to
//! end through the built-in echo backend, exactly as the README's first try does it.

mod common;

use common::*;
use tungstenite::Message;

/// A port that was free a moment ago (the shipped config names fixed ports).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
        .port()
}

#[test]
fn shipped_config_serves_the_seed_api_through_the_builtin_echo() {
    let conf = TempConf::new();
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
    for f in [
        "test-yahel-websocket-api_1.0.0.yaml",
        "test-yahel-websocket-product_1.0.0.yaml",
    ] {
        std::fs::copy(repo_root().join("conf").join(f), conf.file(f)).expect("copy seed file");
    }
    let path = conf.write("gateway.yaml", &yaml);
    let gw = Gateway::start(&path, &[]);
    // The seed allows the client 3 messages a minute towards the backend: one per connection.
    let messages = [Message::text("hello"), Message::binary(vec![1u8, 2, 3])];
    for (base, msg) in ["/test-yahel-websocket-api", "/test-yahel-websocket-api/"]
        .into_iter()
        .zip(messages)
    {
        let (mut ws, resp) = ws_connect(&gw.url(base), &[("X-IBM-Client-Id", "demo-client-id")])
            .unwrap_or_else(|e| panic!("{base}: {e}"));
        assert_eq!(resp.status(), 101);
        roundtrip(&mut ws, msg);
        let closed = close_and_wait(&mut ws, 1000, "bye");
        assert_eq!(closed.code(), Some(1000));
    }
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
        "websocket-connections",
        "websocket-request-ratelimit",
        "websocket-response-ratelimit",
        "demo-client-id",
    ] {
        assert!(
            out.stdout.contains(words),
            "summary lacks {words:?}:\n{}",
            out.stdout
        );
    }
}
