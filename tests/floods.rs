//! Floods before authentication, over real sockets: one address opening sockets that never
//! speak, TLS handshakes by the hundred beside an established connection, and heads trickled a
//! byte at a time. The gateway must keep serving everyone else, and count what it refused.

use crate::common::admin::*;
use crate::common::client::{http_request, upgrade_request};
use crate::common::conf::SEED_BASE_PATH;
use crate::common::limits::*;
use crate::common::load::{self, start_seed};
use crate::common::*;
use std::net::{Ipv4Addr, TcpStream};
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
