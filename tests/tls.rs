//! TLS on both sides of the gateway, against independent peers: rustls clients and a rustls +
//! tungstenite backend, certificates made by rcgen at test time (nothing secret is committed).
//!
//! - TLS listeners: echo over `wss://`, TLS 1.2 and 1.3, ALPN, certificates chosen by SNI,
//!   `--tls-listen` on the command line.
//! - `schemes`: an API is served only on the listeners its schemes allow.
//! - TLS backends: `wss://` targets verified against a `tls-profile`'s CA with SNI, mutual TLS,
//!   `insecure-skip-verify`, and the 502 of a certificate that does not verify.
//! - Handshake bounds: garbage and stalled handshakes are closed, and do not slow other clients.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::tls::{self, Leaf, TestCa};
use crate::common::*;
use tungstenite::Message;

const BASE: &str = "/tlsapi";
/// The name clients use for the gateway's TLS listener (its certificate is for it).
const GW_NAME: &str = "gateway.test";

/// A test CA with a gateway certificate for `GW_NAME` and a backend certificate for
/// `localhost`, all in `conf`.
struct Pki {
    ca: TestCa,
    gateway: Leaf,
    backend: Leaf,
}

fn pki(conf: &TempConf) -> Pki {
    let ca = TestCa::new(conf, "test");
    let gateway = ca.leaf(conf, "gateway", &[GW_NAME]);
    let backend = ca.leaf(conf, "backend", &["localhost"]);
    Pki {
        ca,
        gateway,
        backend,
    }
}

fn start(conf: &TempConf, y: &GatewayYaml) -> Gateway {
    let path = conf.write("gateway.yaml", &y.render());
    Gateway::start(&path, &[])
}

/// Text and binary echo, then 1 MiB of each, intact.
fn echo_checks<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>) {
    roundtrip(ws, Message::text("hello over TLS"));
    roundtrip(ws, Message::binary(vec![0u8, 1, 2, 0xfe, 0xff]));
    let text: String = "0123456789abcdef".chars().cycle().take(1 << 20).collect();
    roundtrip(ws, Message::text(text));
    let bin: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    roundtrip(ws, Message::binary(bin));
    let closed = close_and_wait(ws, 1000, "done");
    assert_eq!(closed.code(), Some(1000), "close handshake: {closed:?}");
}

/// The refused upgrade's status and body; the body is the gateway's JSON error.
fn assert_json_refusal(status: u16, body: &str, want: u16, words: &str) {
    assert_eq!(status, want, "body: {body}");
    assert!(
        body.starts_with(&format!("{{\"httpCode\":\"{want}\"")) && body.contains(words),
        "expected a JSON {want} body with {words:?}, got: {body}"
    );
}

/// Polls the gateway log until a line satisfies `pred`; panics with the log tail otherwise.
fn expect_log_line(gw: &Gateway, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let (log, ok) = admin::poll(|| gw.log(), |log| log.lines().any(&pred));
    assert!(
        ok,
        "no log line {what} within {DEADLINE:?}\n--- stderr ---\n{}",
        proc::tail(&log, 80)
    );
    log.lines()
        .find(|l| pred(l))
        .unwrap_or_default()
        .to_string()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Round-trip times of `n` small text messages.
fn echo_times(ws: &mut tls::Wss, n: usize, tag: &str) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let msg = Message::text(format!("{tag} {i}"));
            let t = Instant::now();
            ws.send(msg.clone()).expect("send");
            let got = recv_data(ws).expect("echo");
            let dt = t.elapsed();
            assert_eq!(got, msg);
            dt
        })
        .collect()
}

#[test]
fn wss_client_through_a_tls_listener_to_a_plain_backend() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url()).tls_listener(&[pki.gateway.conf()]),
    );
    let (mut ws, resp) = tls::wss_connect(gw.addr("tls"), GW_NAME, BASE, &[], &pki.ca.roots())
        .expect("wss upgrade through the TLS listener");
    assert_eq!(resp.status(), 101);
    assert_eq!(
        ws.get_ref().conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the TLS listener agrees ALPN http/1.1"
    );
    assert_eq!(
        tls::peer_leaf(ws.get_ref()).as_ref(),
        Some(&pki.gateway.cert),
        "the listener presents its configured certificate"
    );
    echo_checks(&mut ws);
    let seen = backend.last_request().expect("the backend saw the upgrade");
    assert_eq!(
        seen.header("x-forwarded-proto"),
        Some("https"),
        "a TLS client is https to the backend: {}",
        seen.raw_head
    );
}

#[test]
fn tls12_and_tls13_clients_are_both_served() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url()).tls_listener(&[pki.gateway.conf()]),
    );
    for (version, name) in [
        (&rustls::version::TLS12, "TLSv1_2"),
        (&rustls::version::TLS13, "TLSv1_3"),
    ] {
        let config = tls::client_config_version(&pki.ca.roots(), version);
        let (mut ws, _) = tls::wss_connect_with(gw.addr("tls"), GW_NAME, BASE, &[], config)
            .unwrap_or_else(|e| panic!("{name} upgrade: {e}"));
        assert_eq!(
            ws.get_ref()
                .conn
                .protocol_version()
                .map(|v| format!("{v:?}")),
            Some(name.to_string())
        );
        roundtrip(&mut ws, Message::text(format!("over {name}")));
        close_and_wait(&mut ws, 1000, "done");
    }
}

#[test]
fn plain_client_to_a_tls_backend_verified_through_a_tls_profile() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start_tls(Mode::Echo, pki.backend.server_config());
    assert!(backend.target_url().starts_with("wss://localhost:"));
    conf.write_open_apis(&[OpenApi::new("tls-backend", BASE).tls_profile("test-ca")]);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_offloaded(false)
            .tls_profile("test-ca", Some(&pki.ca.pem_path), None),
    );
    let (mut ws, resp) = ws_connect(&gw.url(BASE), &[]).expect("upgrade to a wss backend");
    assert_eq!(resp.status(), 101);
    echo_checks(&mut ws);
    let hs = backend.tls_seen();
    assert_eq!(hs.len(), 1, "one TLS handshake at the backend: {hs:?}");
    assert_eq!(hs[0].error, None);
    assert_eq!(
        hs[0].server_name.as_deref(),
        Some("localhost"),
        "the gateway sends the target's host name as SNI"
    );
    let seen = backend.last_request().expect("the backend saw the upgrade");
    assert_eq!(
        seen.header("host"),
        Some(format!("localhost:{}", backend.addr().port()).as_str()),
        "Host is the target's host:port"
    );
}

#[test]
fn wss_client_to_a_tls_backend() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start_tls(Mode::Echo, pki.backend.server_config());
    conf.write_open_apis(&[OpenApi::new("tls-both", BASE)
        .schemes(&["wss"])
        .tls_profile("test-ca")]);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .no_plain_listeners()
            .tls_listener(&[pki.gateway.conf()])
            .tls_profile("test-ca", Some(&pki.ca.pem_path), None),
    );
    let (mut ws, _) = tls::wss_connect(gw.addr("tls"), GW_NAME, BASE, &[], &pki.ca.roots())
        .expect("wss through the gateway to a wss backend");
    echo_checks(&mut ws);
    let hs = backend.tls_seen();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].server_name.as_deref(), Some("localhost"));
    assert_eq!(hs[0].error, None);
}

#[test]
fn schemes_decide_which_listeners_serve_an_api() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_apis(&[
        OpenApi::new("secure-api", "/secure").schemes(&["wss"]),
        OpenApi::new("plain-api", "/plain").schemes(&["ws"]),
    ]);
    // One plain listener that is not TLS-offloaded, one TLS listener.
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_offloaded(false)
            .tls_listener(&[pki.gateway.conf()]),
    );
    let roots = pki.ca.roots();

    // wss-only API: not found on the plain listener, served on the TLS one.
    let (status, body) = expect_refused(ws_connect(&gw.url("/secure"), &[]));
    assert_json_refusal(status, &body, 404, "API not found for requested URI");
    let (mut ws, _) = tls::wss_connect(gw.addr("tls"), GW_NAME, "/secure", &[], &roots)
        .expect("the wss API over TLS");
    roundtrip(&mut ws, Message::text("secure"));
    close_and_wait(&mut ws, 1000, "done");

    // ws-only API: not found over TLS, served on the plain listener.
    let (status, body) = expect_refused(tls::wss_connect(
        gw.addr("tls"),
        GW_NAME,
        "/plain",
        &[],
        &roots,
    ));
    assert_json_refusal(status, &body, 404, "API not found for requested URI");
    let (mut ws, _) = ws_connect(&gw.url("/plain"), &[]).expect("the ws API on the plain listener");
    roundtrip(&mut ws, Message::text("plain"));
    close_and_wait(&mut ws, 1000, "done");

    assert_eq!(
        backend.accepted(),
        2,
        "only the two served upgrades reached the backend"
    );
}

/// A gateway in front of a TLS backend presenting `backend_leaf`, checked against the test CA.
fn refused_backend_certificate(
    conf: &TempConf,
    ca: &TestCa,
    backend_leaf: &Leaf,
) -> (Gateway, EchoBackend, u16, String) {
    let backend = EchoBackend::start_tls(Mode::Echo, backend_leaf.server_config());
    conf.write_open_apis(&[OpenApi::new("bad-cert", BASE).tls_profile("test-ca")]);
    let gw = start(
        conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_offloaded(false)
            .tls_profile("test-ca", Some(&ca.pem_path), None),
    );
    let (status, body) = expect_refused(ws_connect(&gw.url(BASE), &[]));
    (gw, backend, status, body)
}

#[test]
fn backend_certificate_for_another_name_gets_502() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let wrong = pki.ca.leaf(&conf, "other", &["other.test"]);
    let (gw, backend, status, body) = refused_backend_certificate(&conf, &pki.ca, &wrong);
    assert_json_refusal(status, &body, 502, "");
    let line = expect_log_line(&gw, "naming the certificate's wrong name", |l| {
        let l = l.to_ascii_lowercase();
        l.contains("certificate") && (l.contains("notvalidforname") || l.contains("name"))
    });
    println!("log: {line}");
    assert!(
        backend.requests().is_empty(),
        "no request went to a backend that failed verification"
    );
    assert!(
        backend.wait_until(DEADLINE, |s| s.tls.iter().any(|t| t.error.is_some())),
        "the backend saw its handshake fail: {:?}",
        backend.tls_seen()
    );
}

#[test]
fn backend_certificate_from_an_unknown_ca_gets_502() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let stranger = TestCa::new(&conf, "stranger");
    let unknown = stranger.leaf(&conf, "unknown", &["localhost"]);
    let (gw, backend, status, body) = refused_backend_certificate(&conf, &pki.ca, &unknown);
    assert_json_refusal(status, &body, 502, "");
    let line = expect_log_line(&gw, "naming the unknown issuer", |l| {
        let l = l.to_ascii_lowercase();
        l.contains("certificate") && (l.contains("unknownissuer") || l.contains("issuer"))
    });
    println!("log: {line}");
    assert!(backend.requests().is_empty());
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_listener(&[pki.gateway.conf()])
            .bound("handshake-timeout", "30s")
            .bound("header-timeout", "30s"),
    );
    let addr = gw.addr("tls");
    let garbage: [&[u8]; 3] = [
        // Plain HTTP to the TLS port.
        b"GET /tlsapi HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
        // Not a TLS record type at all.
        &[0x00u8; 64],
        // A handshake record header announcing a ClientHello, then nonsense.
        &[
            0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut s = tls::send_raw(addr, bytes).expect("connect");
        // The handshake and header timeouts are 30 s: only the garbage can close it sooner.
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read guard");
        let started = Instant::now();
        assert!(
            tls::wait_tcp_closed(&mut s),
            "garbage #{i} was not closed within 10 s"
        );
        println!("garbage #{i} closed after {:?}", started.elapsed());
    }
    // The listener still serves a real client.
    let (mut ws, _) = tls::wss_connect(addr, GW_NAME, BASE, &[], &pki.ca.roots())
        .expect("a real client after the garbage");
    roundtrip(&mut ws, Message::text("still serving"));
    assert_eq!(backend.accepted(), 1);
}

#[test]
fn stalled_handshakes_are_closed_after_the_handshake_timeout() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    // The header timeout is long, so only the handshake timeout can close these.
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_listener(&[pki.gateway.conf()])
            .bound("handshake-timeout", "1s")
            .bound("header-timeout", "60s"),
    );
    let addr = gw.addr("tls");
    let hello = tls::client_hello(GW_NAME);
    let half = &hello[..hello.len() / 2];
    let mut cases = vec![
        (
            "half a ClientHello",
            tls::send_raw(addr, half).expect("connect"),
        ),
        (
            "nothing after TCP",
            tls::send_raw(addr, b"").expect("connect"),
        ),
    ];
    // The whole ClientHello, then nothing more (the client never finishes its side).
    let mut whole = tls::send_raw(addr, &hello).expect("connect");
    let _ = whole.flush();
    cases.push(("a ClientHello, then silence", whole));
    let started = Instant::now();
    for (what, s) in &mut cases {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read guard");
        assert!(
            tls::wait_tcp_closed(s),
            "{what}: not closed within 10 s with a 1 s handshake timeout"
        );
        println!("{what}: closed {:?} after the start", started.elapsed());
    }
    let (mut ws, _) = tls::wss_connect(addr, GW_NAME, BASE, &[], &pki.ca.roots())
        .expect("a real client after the stalled ones");
    roundtrip(&mut ws, Message::text("still serving"));
}

#[test]
fn a_hundred_stalled_handshakes_do_not_slow_a_working_client() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    // Long timeouts: the stalled clients stay open for the whole measurement.
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_listener(&[pki.gateway.conf()])
            .bound("handshake-timeout", "60s")
            .bound("header-timeout", "60s"),
    );
    let addr = gw.addr("tls");
    let roots = pki.ca.roots();
    let (mut ws, _) = tls::wss_connect(addr, GW_NAME, BASE, &[], &roots).expect("working client");
    echo_times(&mut ws, 20, "warm-up");
    let before = median(echo_times(&mut ws, 200, "before"));

    let open_before = admin::stat(&gw, "open");
    let hello = tls::client_hello(GW_NAME);
    let stalled: Vec<_> = (0..100)
        .map(|i| {
            let bytes: &[u8] = match i % 3 {
                0 => &hello[..hello.len() / 2],
                1 => b"",
                _ => &hello[..5],
            };
            tls::send_raw(addr, bytes).expect("stalled client connects")
        })
        .collect();
    let (open, ok) = admin::poll(|| admin::stat(&gw, "open"), |n| *n >= open_before + 100);
    assert!(
        ok,
        "the gateway did not take the 100 stalled connections: /stats open {open}, {open_before} before"
    );
    let during = median(echo_times(&mut ws, 200, "during"));
    // A new client completes its handshake while the stalled ones wait.
    let (mut other, _) =
        tls::wss_connect(addr, GW_NAME, BASE, &[], &roots).expect("a new client during the stall");
    roundtrip(&mut other, Message::text("new client"));
    println!(
        "median echo round trip: {before:?} before, {during:?} with 100 stalled handshakes open"
    );
    // Every timed echo went through the backend (20 + 200 + 200, and the new client's one).
    assert_eq!(backend.messages(), 421);
    assert!(
        during <= before * 10 + Duration::from_millis(5),
        "100 stalled handshakes slowed the working client: median {before:?} -> {during:?}"
    );
    drop(stalled);
    close_and_wait(&mut ws, 1000, "done");
}

#[test]
fn certificates_are_chosen_by_sni() {
    let conf = TempConf::new();
    let ca = TestCa::new(&conf, "test");
    let a = ca.leaf(&conf, "a", &["a.test"]);
    let b = ca.leaf(&conf, "b", &["b.test"]);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            // By server-names.
            .tls_listener(&[
                a.conf().server_names(&["a.test"]),
                b.conf().server_names(&["b.test"]),
            ])
            // By the certificates' own names.
            .tls_listener(&[a.conf(), b.conf()])
            // One certificate serves every name.
            .tls_listener(&[a.conf()]),
    );
    let tls_addrs = gw.addrs("tls");
    assert_eq!(tls_addrs.len(), 3, "{:?}", gw.listeners());
    let roots = ca.roots();
    for &addr in &tls_addrs[..2] {
        for (name, leaf) in [("a.test", &a), ("b.test", &b)] {
            let (mut ws, _) = tls::wss_connect(addr, name, BASE, &[], &roots)
                .unwrap_or_else(|e| panic!("SNI {name} on {addr}: {e}"));
            assert_eq!(
                tls::peer_leaf(ws.get_ref()).as_ref(),
                Some(&leaf.cert),
                "SNI {name} on {addr} got another certificate"
            );
            roundtrip(&mut ws, Message::text(format!("via {name}")));
            close_and_wait(&mut ws, 1000, "done");
        }
        // Without SNI: the first certificate.
        let s = tls::tls_connect(addr, "a.test", tls::client_config_accepting_any(false))
            .unwrap_or_else(|e| panic!("no SNI on {addr}: {e}"));
        assert_eq!(
            tls::peer_leaf(&s).as_ref(),
            Some(&a.cert),
            "no SNI on {addr}: the first certificate"
        );
        // A name no certificate has: the handshake is refused (not merely a certificate this
        // client would reject: it accepts any).
        let refused = tls::tls_connect(addr, "c.test", tls::client_config_accepting_any(true));
        assert!(
            refused.is_err(),
            "SNI c.test on {addr} got a certificate: {:?}",
            refused.ok().and_then(|s| tls::peer_leaf(&s))
        );
    }
    // The single-certificate listener answers any name with it.
    for name in ["a.test", "c.test"] {
        let s = tls::tls_connect(tls_addrs[2], name, tls::client_config_accepting_any(true))
            .unwrap_or_else(|e| panic!("SNI {name} on the single-certificate listener: {e}"));
        assert_eq!(tls::peer_leaf(&s).as_ref(), Some(&a.cert));
    }
}

#[test]
fn cli_tls_listen_adds_a_tls_listener_for_the_seed_api() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start();
    conf.copy_seed();
    let path = conf.write(
        "gateway.yaml",
        &GatewayYaml::seed(&backend.target_url()).render(),
    );
    let cert = pki.gateway.cert_path.to_string_lossy().into_owned();
    let key = pki.gateway.key_path.to_string_lossy().into_owned();
    let gw = Gateway::builder(&path)
        .args(&[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .start();
    assert_eq!(gw.addrs("tls").len(), 1, "{:?}", gw.listeners());
    let (mut ws, _) = tls::wss_connect(
        gw.addr("tls"),
        GW_NAME,
        conf::SEED_BASE_PATH,
        &[(conf::CLIENT_ID_HEADER, conf::DEMO_CLIENT_ID)],
        &pki.ca.roots(),
    )
    .expect("the seed API over the --tls-listen listener");
    assert_eq!(
        tls::peer_leaf(ws.get_ref()).as_ref(),
        Some(&pki.gateway.cert)
    );
    roundtrip(&mut ws, Message::text("seed over TLS"));
    close_and_wait(&mut ws, 1000, "done");
    // The config's own (offloaded) listener still serves it too.
    let (mut ws, _) = ws_connect(
        &gw.url(conf::SEED_BASE_PATH),
        &[(conf::CLIENT_ID_HEADER, conf::DEMO_CLIENT_ID)],
    )
    .expect("the seed API on the plain listener");
    roundtrip(&mut ws, Message::text("seed in the clear"));
}

#[test]
fn mutual_tls_to_the_backend() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let client = pki
        .ca
        .leaf(&conf, "gateway-client", &["gateway-client.test"]);
    let backend = EchoBackend::start_tls(
        Mode::Echo,
        pki.backend.server_config_requiring_client_cert(&pki.ca),
    );
    conf.write_open_apis(&[
        OpenApi::new("with-cert", "/with-cert").tls_profile("mtls"),
        OpenApi::new("without-cert", "/without-cert").tls_profile("ca-only"),
    ]);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_offloaded(false)
            .tls_profile(
                "mtls",
                Some(&pki.ca.pem_path),
                Some((&client.cert_path, &client.key_path)),
            )
            .tls_profile("ca-only", Some(&pki.ca.pem_path), None),
    );
    let (mut ws, _) = ws_connect(&gw.url("/with-cert"), &[]).expect("upgrade with a client cert");
    echo_checks(&mut ws);
    let hs = backend.tls_seen();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].error, None);
    assert!(
        hs[0].client_certs >= 1,
        "the gateway presented its client certificate: {hs:?}"
    );

    let (status, body) = expect_refused(ws_connect(&gw.url("/without-cert"), &[]));
    assert_json_refusal(status, &body, 502, "");
    assert_eq!(
        backend.requests().len(),
        1,
        "the upgrade without a client certificate never reached the backend's WebSocket layer"
    );
}

#[test]
fn insecure_skip_verify_accepts_an_unknown_ca_and_warns() {
    let conf = TempConf::new();
    let stranger = TestCa::new(&conf, "stranger");
    let leaf = stranger.leaf(&conf, "unknown", &["localhost"]);
    let backend = EchoBackend::start_tls(Mode::Echo, leaf.server_config());
    conf.write_open_apis(&[OpenApi::new("insecure", BASE).tls_profile("insecure")]);
    let gw = start(
        &conf,
        &GatewayYaml::open(&backend.target_url())
            .tls_offloaded(false)
            .tls_profile_insecure("insecure"),
    );
    let (mut ws, _) = ws_connect(&gw.url(BASE), &[]).expect("upgrade despite the unknown CA");
    roundtrip(&mut ws, Message::text("unverified"));
    close_and_wait(&mut ws, 1000, "done");
    let line = expect_log_line(&gw, "warning that verification is skipped", |l| {
        let l = l.to_ascii_lowercase();
        (l.contains("warn") || l.contains("insecure"))
            && (l.contains("insecure-skip-verify")
                || l.contains("not verified")
                || (l.contains("skip") && l.contains("verif")))
    });
    println!("log: {line}");
}

/// The harness's own TLS peers, without the gateway: the wss client against the TLS echo
/// backend, so a failure elsewhere in this file is the gateway's and not the test PKI's.
#[test]
fn harness_tls_client_and_backend_work_together() {
    let conf = TempConf::new();
    let pki = pki(&conf);
    let backend = EchoBackend::start_tls(Mode::Echo, pki.backend.server_config());
    let (mut ws, _) = tls::wss_connect(backend.addr(), "localhost", "/x", &[], &pki.ca.roots())
        .expect("wss straight to the TLS backend");
    assert_eq!(
        tls::peer_leaf(ws.get_ref()).as_ref(),
        Some(&pki.backend.cert)
    );
    echo_checks(&mut ws);
    let hs = backend.tls_seen();
    assert_eq!(hs.len(), 1, "{hs:?}");
    assert_eq!(hs[0].server_name.as_deref(), Some("localhost"));
    assert_eq!(hs[0].alpn.as_deref(), Some("http/1.1"));
    assert_eq!(hs[0].client_certs, 0);

    // The client checks names: the backend's certificate is not for other.test.
    let err = tls::tls_connect(
        backend.addr(),
        "other.test",
        tls::client_config(&pki.ca.roots()),
    )
    .map(|_| ())
    .expect_err("a certificate for localhost does not verify as other.test");
    assert!(err.to_string().contains("certificate"), "{err}");

    // The mutual-TLS backend refuses a client without a certificate.
    let mtls = EchoBackend::start_tls(
        Mode::Echo,
        pki.backend.server_config_requiring_client_cert(&pki.ca),
    );
    let refused = tls::wss_connect(mtls.addr(), "localhost", "/x", &[], &pki.ca.roots());
    assert!(refused.is_err(), "no client certificate, yet upgraded");
    assert!(
        mtls.wait_until(DEADLINE, |s| s.tls.iter().any(|t| t.error.is_some())),
        "{:?}",
        mtls.tls_seen()
    );
    assert!(mtls.requests().is_empty());
}
