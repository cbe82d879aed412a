//! The seed's count limit `websocket-connections` (2 per client, hard, auto-decrement) over real
//! sockets: the 101 carries the limit headers, the third connection of a client is refused with
//! 429 before the backend is contacted, each application has its own count, a closed connection
//! gives its slot back, and the `is-client: false` form is one shared count answered with 503.

use crate::common::admin::*;
use crate::common::limits::*;
use crate::common::*;

fn start(backend: &EchoBackend, product_edits: &[(&str, &str)]) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&backend.target_url()), product_edits, &[]);
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

/// The live count of `websocket-connections` for one application (0 when no entry).
fn count_of(gw: &Gateway, app: &str) -> u64 {
    limits(gw)
        .iter()
        .filter(|c| c.limit == COUNT_LIMIT && c.key.ends_with(&format!("app={app}")))
        .map(|c| c.value)
        .sum()
}

fn expect_count(gw: &Gateway, app: &str, want: u64) {
    let (got, ok) = poll(|| count_of(gw, app), |v| *v == want);
    assert!(
        ok,
        "count of {app} is {got}, expected {want}: {:?}",
        limits(gw)
    );
}

/// Whether the backend ever received a request carrying `X-Probe: probe`.
fn backend_saw_probe(backend: &EchoBackend, probe: &str) -> bool {
    backend
        .requests()
        .iter()
        .any(|r| r.header("x-probe") == Some(probe))
}

fn assert_count_refusal(r: &Refused) {
    r.assert_error(429, "Assembly Rate Limit exceeded");
    let (limit, remaining) = count_headers(0);
    assert_eq!(
        r.header("x-countlimit-limit"),
        Some(limit.as_str()),
        "{r:?}"
    );
    assert_eq!(
        r.header("x-countlimit-remaining"),
        Some(remaining.as_str()),
        "{r:?}"
    );
}

#[test]
fn third_connection_of_a_client_is_429_and_never_reaches_the_backend() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);

    // The 101s carry the limits checked at the handshake: the plan's rate limit and the count.
    let (mut a1, r1) = open_as(&gw, A);
    let (_a2, r2) = open_as(&gw, A);
    for (resp, count_left, rate_left) in [(&r1, 1, 99), (&r2, 0, 98)] {
        let (limit, remaining) = count_headers(count_left);
        assert_eq!(header(resp, "x-countlimit-limit"), Some(limit));
        assert_eq!(header(resp, "x-countlimit-remaining"), Some(remaining));
        assert_eq!(
            header(resp, "x-ratelimit-limit").as_deref(),
            Some("name=default,100;")
        );
        assert_eq!(
            header(resp, "x-ratelimit-remaining"),
            Some(format!("name=default,{rate_left};"))
        );
    }
    assert!(backend.wait_open(2, DEADLINE));
    let held = counts(&gw);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].limit, COUNT_LIMIT);
    assert_eq!((held[0].value, held[0].max), (2, 2), "{held:?}");
    assert_eq!(held[0].window_start, None, "a count has no window");

    let third = refused(connect_as(&gw, A, &[("X-Probe", "a3")]));
    assert_count_refusal(&third);
    assert_eq!(count_of(&gw, "demo-app"), 2, "a refused inc must not count");

    // Application B on the same plan has its own two, while A holds two. B's first connection
    // is accepted by the backend after A's third was refused: had that one been forwarded, the
    // backend would have seen it first.
    let (_b1, rb1) = open_as(&gw, B);
    let (_b2, rb2) = open_as(&gw, B);
    assert_eq!(
        header(&rb1, "x-countlimit-remaining"),
        Some(count_headers(1).1)
    );
    assert_eq!(
        header(&rb2, "x-countlimit-remaining"),
        Some(count_headers(0).1)
    );
    assert_count_refusal(&refused(connect_as(&gw, B, &[("X-Probe", "b3")])));
    assert!(backend.wait_requests(4, DEADLINE));
    assert_eq!(backend.accepted(), 4, "{:?}", backend.requests());
    assert!(
        !backend_saw_probe(&backend, "a3"),
        "A's third reached the backend"
    );
    assert!(
        !backend_saw_probe(&backend, "b3"),
        "B's third reached the backend"
    );
    assert_eq!(count_of(&gw, "demo-app"), 2);
    assert_eq!(count_of(&gw, "b-app"), 2);

    // A closes one: its slot comes back and a new connection of A succeeds; B is untouched.
    let closed = close_and_wait(&mut a1, 1000, "done");
    assert_eq!(closed.code(), Some(1000));
    expect_count(&gw, "demo-app", 1);
    assert_eq!(count_of(&gw, "b-app"), 2);
    let (_a3, r3) = open_as(&gw, A);
    assert_eq!(
        header(&r3, "x-countlimit-remaining"),
        Some(count_headers(0).1)
    );
    assert_count_refusal(&refused(connect_as(&gw, A, &[("X-Probe", "a4")])));
    assert!(!backend_saw_probe(&backend, "a4"));
    assert_eq!(backend.accepted(), 5);
}

#[test]
fn count_limit_that_is_not_is_client_is_one_shared_count_answered_503_without_headers() {
    let backend = EchoBackend::start();
    let shared = SEED_COUNT_BLOCK
        .replace("is-client: true", "is-client: false")
        .replace("value: 2", "value: 1");
    let (_c, gw) = start(&backend, &[(SEED_COUNT_BLOCK, &shared)]);

    let (mut a1, r1) = open_as(&gw, A);
    assert_eq!(
        header(&r1, "x-countlimit-limit"),
        None,
        "is-client false: no headers"
    );
    assert_eq!(header(&r1, "x-countlimit-remaining"), None);
    assert!(backend.wait_open(1, DEADLINE));
    // One counter for every consumer: B is refused while A holds the only slot, and so is A.
    for (who, probe) in [(B, "b1"), (A, "a2")] {
        let r = refused(connect_as(&gw, who, &[("X-Probe", probe)]));
        r.assert_error(503, "Assembly Rate Limit exceeded");
        assert!(
            !r.has_prefix("x-countlimit"),
            "a 503 carries no count headers: {r:?}"
        );
    }
    let held = counts(&gw);
    assert_eq!(held.len(), 1, "one shared key: {held:?}");
    assert_eq!((held[0].value, held[0].max), (1, 1));
    assert!(!held[0].key.contains("app="), "{held:?}");
    assert_eq!(backend.accepted(), 1);
    assert!(!backend_saw_probe(&backend, "b1") && !backend_saw_probe(&backend, "a2"));

    let _ = close_and_wait(&mut a1, 1000, "");
    expect_no_counts(&gw, "A's only connection closed");
    let (_b1, _) = open_as(&gw, B);
    assert_eq!(counts(&gw).len(), 1);
}

#[test]
fn soft_count_limit_lets_the_third_in_and_warns_once() {
    let backend = EchoBackend::start();
    let soft = SEED_COUNT_BLOCK.replace("- hard-limit: true", "- hard-limit: false");
    let (_c, gw) = start(&backend, &[(SEED_COUNT_BLOCK, &soft)]);
    let (_a1, _) = open_as(&gw, A);
    let (_a2, _) = open_as(&gw, A);
    let (_a3, r3) = open_as(&gw, A);
    let (_a4, r4) = open_as(&gw, A);
    for r in [&r3, &r4] {
        assert_eq!(
            header(r, "x-countlimit-remaining"),
            Some(count_headers(0).1)
        );
    }
    assert!(backend.wait_open(4, DEADLINE));
    expect_count(&gw, "demo-app", 4);
    gw.expect_log("soft limit websocket-connections");
    log_barrier(&gw);
    assert_eq!(
        gw.log_count("soft limit websocket-connections"),
        1,
        "warned once while over the limit"
    );
}

#[test]
fn admin_reset_frees_slots_and_later_auto_decrements_never_go_below_zero() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    let mut a: Vec<Ws> = (0..2).map(|_| open_as(&gw, A).0).collect();
    let (_b1, _) = open_as(&gw, B);
    expect_count(&gw, "demo-app", 2);

    // Reset A's key only, named as /limits lists it (percent-encoded).
    let key = limits(&gw)
        .into_iter()
        .find(|c| c.limit == COUNT_LIMIT && c.key.ends_with("app=demo-app"))
        .expect("A's count")
        .key;
    let encoded = key.replace(':', "%3A").replace('=', "%3D");
    assert_eq!(reset(&gw, &format!("{COUNT_LIMIT}/{encoded}")), 1);
    assert_eq!(count_of(&gw, "demo-app"), 0);
    assert_eq!(count_of(&gw, "b-app"), 1, "B's key is another key");

    // A may open two more now: four connections, a count of 2.
    a.push(open_as(&gw, A).0);
    a.push(open_as(&gw, A).0);
    expect_count(&gw, "demo-app", 2);
    assert_eq!(refused(connect_as(&gw, A, &[])).status, 429);

    // All four end: four decrements against a count of 2 stop at 0 instead of going below.
    for ws in a.iter_mut() {
        let _ = close_and_wait(ws, 1000, "");
    }
    expect_count(&gw, "demo-app", 0);
    // Below zero would show as extra slots: A still gets exactly two.
    let (_x, _) = open_as(&gw, A);
    let (_y, _) = open_as(&gw, A);
    assert_count_refusal(&refused(connect_as(&gw, A, &[])));

    // Resetting a whole limit by name clears every key of it.
    assert_eq!(reset(&gw, COUNT_LIMIT), 2);
    expect_no_counts(&gw, "DELETE /limits/websocket-connections");
}
