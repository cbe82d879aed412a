//! The table of limit keys known only at run time (`bounds.max-limit-keys`) over real sockets:
//! one limit fed by a header cannot take the whole table, a message limit whose key finds no
//! room refuses the upgrade (503) instead of letting its messages through uncounted, and a key
//! that did find room is counted to its 4th message. The table here has 8 entries and two
//! limits use it: 2 are reserved for each, 4 are shared.

use crate::common::admin::start_with_test_clock;
use crate::common::keys::*;
use crate::common::limits::refused;
use crate::common::load::source;
use crate::common::*;
use std::net::Ipv4Addr;
use tungstenite::Message;

const OVER: &str = "Rate Limit exceeded";
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn start(backend: &EchoBackend) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let path = write_keys_conf(&conf, &backend.target_url(), 8);
    // Hour-aligned test clock: no minute window rolls over during the test.
    let gw = start_with_test_clock(&path, 3600);
    (conf, gw)
}

/// Opens and closes one WebSocket per new tenant until the gateway refuses one; returns how
/// many were admitted and the refusal.
fn fill_tenants(gw: &Gateway) -> (usize, crate::common::limits::Refused) {
    for i in 0..64 {
        match connect_keys(gw, LOOPBACK, &format!("tenant-{i}")) {
            Ok((mut ws, _)) => {
                let _ = close_and_wait(&mut ws, 1000, "");
            }
            Err(e) => return (i, refused(Err(e))),
        }
    }
    panic!("64 tenants in an 8-entry table: nothing was refused");
}

#[test]
fn a_limit_filling_its_share_leaves_the_other_limits_callers_counted() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend);

    // The tenant limit gets its reserve and the shared half, then its new keys are refused
    // with 503 (the gateway is out of room, not the caller over its limit).
    let (admitted, refusal) = fill_tenants(&gw);
    assert_eq!(admitted, 6, "2 reserved + 4 shared");
    refusal.assert_error(503, "Assembly Rate Limit exceeded");
    assert!(!refusal.has_prefix("X-RateLimit"), "{refusal:?}");

    // A known tenant still passes, and its caller's messages count in the reserve of `msgs`:
    // the 4th closes with 1008.
    let (mut ws, _) = connect_keys(&gw, LOOPBACK, "tenant-0").expect("known tenant");
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    ws.send(Message::text("one too many")).expect("send");
    let closed = read_until_closed(&mut ws);
    assert_eq!(
        closed.frame,
        Some(Some((1008, OVER.to_string()))),
        "{closed:?}"
    );
    assert!(closed.messages.is_empty(), "the 4th was echoed: {closed:?}");
    assert_eq!(backend.messages(), 3, "the 4th reached the backend");

    // The second entry of its reserve goes to another caller, counted too.
    let (mut second, _) = connect_keys(&gw, source(0), "tenant-0").expect("second caller");
    roundtrip(&mut second, Message::text("counted"));

    // A third caller's key has no room: the upgrade is refused, never admitted uncounted.
    let third = refused(connect_keys(&gw, source(1), "tenant-0"));
    third.assert_error(503, "Assembly Rate Limit exceeded");
    assert_eq!(backend.messages(), 4);
    assert_eq!(metric(&gw, "wsgate_limit_keys_full_total"), 2);
    assert_eq!(
        labelled_metric(&gw, "wsgate_upgrades_failed_total", "reason", "limit"),
        2
    );
    assert!(
        gw.log_contains("message limit msgs: no room for its key"),
        "{}",
        gw.log()
    );
    let _ = close_and_wait(&mut second, 1000, "");
}
