//! `bounds.max-control-frames` over real sockets: a side of a WebSocket that sends more control
//! frames (pings, pongs) in one second than the bound is closed with 1008 and the other side
//! gets 1001, whichever side floods; the close is the gateway's in the activity record and in
//! `wsgate_control_frame_closes_total`. Under the bound pings pass, and a close frame always
//! does. The seed's limits stay in place: a client held to 3 messages a minute cannot make its
//! backend answer unlimited pings instead.

use crate::common::admin::start_with_test_clock;
use crate::common::keys::labelled_metric;
use crate::common::limits::*;
use crate::common::pinger::PingFlood;
use crate::common::*;
use serde_yaml::Value;
use tungstenite::Message;

const FLOOD: &str = "too many control frames";
const MAX: usize = 5;

fn start(target: &str) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let yaml = seed_yaml(target).bound("max-control-frames", &MAX.to_string());
    let path = write_conf(&conf, &yaml, &[], &[]);
    let gw = start_with_test_clock(&path, 3600);
    (conf, gw)
}

/// The activity record of the one WebSocket, once written.
fn ws_record(gw: &Gateway) -> Value {
    assert!(
        gw.wait_stdout_count("\"status\":101,", 1, DEADLINE),
        "no WebSocket record; stdout:\n{}",
        gw.stdout()
    );
    let out = gw.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("\"status\":101,"))
        .expect("the record");
    serde_yaml::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn field<'a>(r: &'a Value, k: &str) -> &'a Value {
    r.get(k).unwrap_or_else(|| panic!("no {k} in {r:?}"))
}

fn backend_close(backend: &EchoBackend) -> Option<(u16, String)> {
    assert!(
        backend.wait_until(DEADLINE, |s| !s.closes.is_empty()),
        "the backend got no close frame; its errors: {:?}",
        backend.state(|s| s.errors.clone())
    );
    backend.closes()[0].1.clone()
}

#[test]
fn a_client_flooding_pings_gets_1008_and_its_backend_1001() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url());
    let (mut ws, _) = open_as(&gw, A);
    // Far more than fit in one second, or in the two a burst can straddle.
    for i in 0..40 * MAX {
        ws.write(Message::Ping(format!("ping {i}").into_bytes().into()))
            .expect("ping");
    }
    ws.flush().expect("flush");
    let closed = read_until_closed(&mut ws);
    assert_eq!(
        closed.frame,
        Some(Some((1008, FLOOD.to_string()))),
        "{closed:?}"
    );
    assert_eq!(backend_close(&backend).map(|c| c.0), Some(1001));
    let r = ws_record(&gw);
    assert_eq!(field(&r, "close_code").as_u64(), Some(1008), "{r:?}");
    assert_eq!(field(&r, "closed_by").as_str(), Some("gateway"), "{r:?}");
    assert_eq!(
        field(&r, "closed_by_limit").as_str(),
        Some("bounds.max-control-frames"),
        "{r:?}"
    );
    assert_eq!(
        labelled_metric(&gw, "wsgate_control_frame_closes_total", "side", "client"),
        1
    );
    assert_eq!(
        labelled_metric(&gw, "wsgate_control_frame_closes_total", "side", "backend"),
        0
    );
}

#[test]
fn a_backend_flooding_pings_gets_1008_and_the_client_1001() {
    let backend = PingFlood::start(40 * MAX);
    let (_c, gw) = start(&backend.target_url());
    let (mut ws, _) = open_as(&gw, A);
    let closed = read_until_closed(&mut ws);
    assert_eq!(closed.code(), Some(1001), "{closed:?}");
    assert_eq!(backend.close(), Some((1008, FLOOD.to_string())));
    let r = ws_record(&gw);
    assert_eq!(field(&r, "close_code").as_u64(), Some(1008), "{r:?}");
    assert_eq!(field(&r, "closed_by").as_str(), Some("gateway"), "{r:?}");
    assert_eq!(
        labelled_metric(&gw, "wsgate_control_frame_closes_total", "side", "backend"),
        1
    );
}

#[test]
fn pings_up_to_the_bound_pass_and_a_close_over_it_still_closes_cleanly() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend.target_url());
    let (mut ws, _) = open_as(&gw, A);
    // The bound's worth of pings, each answered by the backend ...
    for i in 0..MAX {
        ws.write(Message::Ping(format!("ping {i}").into_bytes().into()))
            .expect("ping");
    }
    ws.flush().expect("flush");
    let mut pongs = 0;
    while pongs < MAX {
        match ws.read().expect("read a pong") {
            Message::Pong(_) => pongs += 1,
            other => panic!("{other:?} before the pongs"),
        }
    }
    // ... and a close right after them, over the bound in the same second, is the client's
    // own close: the backend gets it and answers it.
    let closed = close_and_wait(&mut ws, 1000, "bye");
    assert_eq!(closed.code(), Some(1000), "{closed:?}");
    assert_eq!(backend_close(&backend), Some((1000, "bye".to_string())));
    let r = ws_record(&gw);
    assert_eq!(field(&r, "closed_by").as_str(), Some("client"), "{r:?}");
}
