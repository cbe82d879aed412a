//! Floods before authentication, over real sockets: one address opening sockets that never
//! speak, TLS handshakes by the hundred beside an established connection, and heads trickled a
//! byte at a time. The gateway must keep serving everyone else, and count what it refused.

use crate::common::admin::*;
use crate::common::client::{http_request, upgrade_request};
use crate::common::conf::SEED_BASE_PATH;
use crate::common::limits::*;
use crate::common::load::{self, start_seed};
use crate::common::tls::{self, TestCa};
use crate::common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Instant;
use tungstenite::Message;

const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One sample of `GET /metrics`, by its whole series name (`name{labels}`).
fn metric(gw: &Gateway, series: &str) -> u64 {
    let r = http_request(gw.addr("admin"), "GET", "/metrics", &[], b"").expect("GET /metrics");
    assert_eq!(r.status, 200);
    let body = r.body_text();
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
}

/// `n` sockets from `src` that connect and say nothing.
fn silent(src: Ipv4Addr, gw: &Gateway, n: usize) -> Vec<TcpStream> {
    let addr = gw.addr("plain");
    (0..n)
        .map(|i| {
            load::connect_from(Some(src), addr, None)
                .unwrap_or_else(|e| panic!("silent socket {i} connects: {e}"))
        })
        .collect()
}

/// 400 silent sockets from one address against `max-connections: 300`: the gateway keeps the
/// default 64 of them, closes the rest at once and counts them, and a client from another
/// address upgrades and echoes as usual. Once the silent ones are gone their address has its
/// whole allowance again, exactly: nothing of the count leaked.
#[test]
fn one_address_cannot_hold_every_slot_with_silent_sockets() {
    const LIMIT: u64 = 64; // the default of bounds.max-pending-per-address
    let backend = EchoBackend::start();
    // A head timeout far beyond the test: only the gateway's refusals can free the slots.
    let (_c, gw) = start_seed(
        |y| {
            y.bound("max-connections", "300")
                .bound("header-timeout", "120s")
        },
        100,
        &[],
        &backend.target_url(),
    );
    let flood = silent(FLOODER, &gw, 400);
    let (refused, ok) = poll(|| stat(&gw, "refused_pending"), |n| *n >= 400 - LIMIT);
    assert!(
        ok,
        "only {refused} of the 336 extra silent sockets were refused"
    );
    assert_eq!(stat(&gw, "open"), LIMIT);
    assert_eq!(stat(&gw, "pending"), LIMIT);

    // A client from 127.0.0.1 is served as if nothing happened.
    let (mut ws, _) = open_as(&gw, A);
    roundtrip(&mut ws, Message::text("beside the flood"));
    assert_eq!(
        metric(
            &gw,
            "wsgate_connections_refused_total{reason=\"pending_per_address\"}"
        ),
        400 - LIMIT
    );
    assert_eq!(metric(&gw, "wsgate_connections_pending"), LIMIT);
    assert_eq!(
        stat(&gw, "pending"),
        LIMIT,
        "the upgraded client is not pending"
    );

    // The refused ones were closed, not left waiting: each reads the end of the stream.
    let mut closed = 0;
    for s in &flood {
        s.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 1];
        match s.peek(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) | Err(_) => closed += 1,
            Ok(_) => panic!("a silent socket got an answer"),
        }
    }
    assert_eq!(closed, 400 - LIMIT as usize, "closed at once");

    drop(flood);
    expect_stat(&gw, "pending", 0, "the silent sockets closed");
    expect_stat(&gw, "pending_networks", 0, "the silent sockets closed");
    // Exactly the allowance again: 64 kept, the 65th refused.
    let again = silent(FLOODER, &gw, LIMIT as usize);
    expect_stat(&gw, "pending", LIMIT, "64 silent sockets again");
    assert_eq!(stat(&gw, "refused_pending"), 400 - LIMIT);
    let extra = silent(FLOODER, &gw, 1);
    expect_stat(&gw, "refused_pending", 400 - LIMIT + 1, "the 65th");
    drop((again, extra));
    expect_stat(&gw, "pending", 0, "all gone");

    // And 127.0.0.2 is an ordinary client once it speaks.
    let tcp = load::connect_from(Some(FLOODER), gw.addr("plain"), None).expect("connect");
    let mut raw = RawConn::from_stream(tcp).expect("raw");
    raw.send(upgrade_request("gw", SEED_BASE_PATH, &[("X-IBM-Client-Id", A)]).as_bytes())
        .expect("send the upgrade");
    assert_eq!(raw.read_head().expect("answer").status, 101);
    raw.send_frame(true, 1, b"from the flooder").expect("send");
    assert_eq!(raw.read_frame().expect("echo").payload, b"from the flooder");
    drop(raw);
    let _ = close_and_wait(&mut ws, 1000, "");
    expect_stat(&gw, "open", 0, "the end");
    expect_stat(&gw, "pending", 0, "the end");
}

/// Pending connections that end otherwise than with a head give their place back too: those
/// answered 400 for a malformed head while they still linger, and those answered 408 when the
/// head timeout passes. Their address then has its whole allowance again.
#[test]
fn refused_and_timed_out_heads_give_their_place_back() {
    const LIMIT: usize = 64;
    let backend = EchoBackend::start();
    let (_c, gw) = start_seed(
        |y| y.bound("header-timeout", "1s").bound("close-grace", "60s"),
        100,
        &[],
        &backend.target_url(),
    );
    let read_status = |s: &mut TcpStream| {
        s.set_read_timeout(Some(DEADLINE)).expect("guard");
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        while !got.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut b).expect("an answer");
            assert!(n > 0, "closed without an answer");
            got.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    // Malformed heads: answered 400, and lingering (the clients keep their sockets open).
    let mut bad = silent(FLOODER, &gw, LIMIT);
    for s in &mut bad {
        s.write_all(b"NOT HTTP\r\n\r\n").expect("send");
        assert_eq!(read_status(s), "HTTP/1.1 400 Bad Request");
    }
    assert_eq!(stat(&gw, "open"), LIMIT as u64, "they linger");
    assert_eq!(stat(&gw, "pending_networks"), 0, "and hold no place");
    // Silent until the head timeout: answered 408.
    let mut slow = silent(FLOODER, &gw, LIMIT);
    for s in &mut slow {
        assert_eq!(read_status(s), "HTTP/1.1 408 Request Timeout");
    }
    assert_eq!(stat(&gw, "pending_networks"), 0);
    // The whole allowance again, and not one more.
    let again = silent(FLOODER, &gw, LIMIT);
    expect_stat(&gw, "pending", LIMIT as u64, "64 silent sockets again");
    assert_eq!(stat(&gw, "refused_pending"), 0);
    let extra = silent(FLOODER, &gw, 1);
    expect_stat(&gw, "refused_pending", 1, "the 65th");
    drop((bad, slow, again, extra));
    expect_stat(&gw, "open", 0, "the end");
    expect_stat(&gw, "pending_networks", 0, "the end");
}

/// The gateway stopped with SIGSTOP until this is dropped, so that what clients send meanwhile
/// reaches it in one batch, in the order it was sent.
struct Stopped(i32);

impl Stopped {
    fn new(gw: &Gateway) -> Stopped {
        let pid = gw.pid() as i32;
        // SAFETY: a signal to our own child process, which the guard continues on drop.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        let stopped = Stopped(pid);
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(String::from)
        };
        let start = Instant::now();
        while state().as_deref() != Some("T") {
            assert!(start.elapsed() < DEADLINE, "the gateway did not stop");
            std::thread::yield_now();
        }
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// 200 TLS handshakes reach the gateway at once, ahead of a message on an established `wss`
/// connection. The handshakes' crypto runs on the loop, but only so much of it per turn: the
/// message is relayed and its echo comes back before every handshake has had its answer, and
/// then every handshake gets its answer too.
#[test]
fn a_flood_of_tls_handshakes_does_not_hold_up_an_established_connection() {
    const FLOOD: usize = 200;
    const GW_NAME: &str = "gateway.test";
    const BASE: &str = "/floods";
    let conf = TempConf::new();
    let ca = TestCa::new(&conf, "floods");
    let leaf = ca.leaf(&conf, "gateway", &[GW_NAME]);
    let backend = EchoBackend::start();
    conf.write_open_api(BASE);
    let yaml = GatewayYaml::open(&backend.target_url())
        .tls_listener(&[leaf.conf()])
        // All of them come from 127.0.0.1.
        .bound("max-pending-per-address", "1000")
        .bound("handshake-timeout", "120s");
    let gw = Gateway::start(conf.write("gateway.yaml", &yaml.render()), &[]);
    let addr = gw.addr("tls");
    let (mut ws, _) =
        tls::wss_connect(addr, GW_NAME, BASE, &[], &ca.roots()).expect("the established client");
    roundtrip(&mut ws, Message::text("before the flood"));

    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("client {i}: {e}")))
        .collect();
    expect_stat(&gw, "pending", FLOOD as u64, "the flood is accepted");
    let hello = tls::client_hello(GW_NAME);
    {
        let _stopped = Stopped::new(&gw);
        for s in &mut flood {
            s.write_all(&hello).expect("send a ClientHello");
        }
        ws.send(Message::text("during the flood"))
            .expect("send on the established connection");
    }
    let echo = recv_data(&mut ws).expect("the echo");
    let answered = flood
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).expect("nonblocking");
            let mut b = [0u8; 1];
            matches!(s.peek(&mut b), Ok(1))
        })
        .count();
    assert_eq!(echo, Message::text("during the flood"));
    println!("when the echo came back, {answered} of {FLOOD} handshakes had their answer");
    assert!(
        answered < FLOOD,
        "the echo waited for every handshake of the flood"
    );

    // Every handshake goes on: each client gets the server's first flight.
    for (i, s) in flood.iter_mut().enumerate() {
        s.set_nonblocking(false).expect("blocking");
        s.set_read_timeout(Some(DEADLINE)).expect("guard");
        let mut b = [0u8; 5];
        s.read_exact(&mut b)
            .unwrap_or_else(|e| panic!("handshake {i} got no answer: {e}"));
        assert_eq!(b[0], 22, "handshake {i}: a TLS handshake record");
    }
    roundtrip(&mut ws, Message::text("after the flood"));
    drop(flood);
    let _ = close_and_wait(&mut ws, 1000, "");
    expect_stat(&gw, "open", 0, "the end");
}
