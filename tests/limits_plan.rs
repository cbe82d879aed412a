//! The plan's own limits in the preflow (spec §3.3, §3.8, §3.9): the seed's `default` rate
//! limit of 100 an hour is soft, so the 101st call goes on with `Remaining: 0` and one warning;
//! made hard it refuses the 101st with 429 and the `X-RateLimit-*` headers. A plan burst limit
//! answers the same way with `X-BurstLimit-*`.
//!
//! The seed API serves only upgrades, so every call is an upgrade that is closed at once. The
//! gateways run with the test clock aligned to the start of an hour: the hour window cannot roll
//! over during a test, and `POST /clock/advance` opens the next one.

use crate::common::admin::*;
use crate::common::limits::*;
use crate::common::*;

const SOFT_WARNING: &str = "limit default (100/1hour) exceeded";

fn start(backend: &EchoBackend, product_edits: &[(&str, &str)]) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&backend.target_url()), product_edits, &[]);
    let gw = start_with_test_clock(&path, 3600);
    (conf, gw)
}

/// One call: an upgrade as `who`, closed at once. Returns the 101's rate-limit headers.
fn call(gw: &Gateway, who: &str, n: usize) -> (Option<String>, Option<String>) {
    let (mut ws, resp) = connect_as(gw, who, &[]).unwrap_or_else(|e| {
        panic!(
            "call {n} as {who}: {e} {:?}\n--- log tail ---\n{}",
            http_error(&e),
            log_digest(gw, 30)
        )
    });
    let closed = close_and_wait(&mut ws, 1000, "");
    assert_eq!(closed.code(), Some(1000), "call {n}: {closed:?}");
    (
        header(&resp, "x-ratelimit-limit"),
        header(&resp, "x-ratelimit-remaining"),
    )
}

fn rate(n: u64) -> Option<String> {
    Some(format!("name=default,{n};"))
}

#[test]
fn soft_plan_limit_lets_the_101st_call_through_with_remaining_0_and_warns_once() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend, &[]);
    for n in 1..=100usize {
        let (limit, remaining) = call(&gw, A, n);
        assert_eq!(limit, rate(100), "call {n}");
        assert_eq!(remaining, rate(100 - n as u64), "call {n}");
    }
    log_barrier(&gw);
    assert_eq!(gw.log_count(SOFT_WARNING), 0, "no warning within the limit");
    for n in 101..=103usize {
        let (limit, remaining) = call(&gw, A, n);
        assert_eq!(limit, rate(100), "call {n}");
        assert_eq!(remaining, rate(0), "call {n} is over a soft limit");
    }
    log_barrier(&gw);
    assert_eq!(
        gw.log_count(SOFT_WARNING),
        1,
        "one warning per window and key:\n{}",
        log_digest(&gw, 20)
    );
    assert_eq!(
        backend.accepted(),
        103,
        "soft: every call reached the backend"
    );
    // B's key is its own.
    assert_eq!(call(&gw, B, 1).1, rate(99));
    // The next hour starts afresh.
    advance_clock(&gw, 3600);
    assert_eq!(call(&gw, A, 104).1, rate(99));
    expect_no_counts(&gw, "sequential calls");
}

#[test]
fn hard_plan_limit_refuses_the_101st_call_with_429_and_rate_limit_headers() {
    let backend = EchoBackend::start();
    let hard = SEED_PLAN_RATE.replace("hard-limit: false", "hard-limit: true");
    let (_c, gw) = start(&backend, &[(SEED_PLAN_RATE, &hard)]);
    for n in 1..=100usize {
        let (_, remaining) = call(&gw, A, n);
        assert_eq!(remaining, rate(100 - n as u64), "call {n}");
    }
    assert!(backend.wait_until(DEADLINE, |s| s.accepted == 100 && s.open == 0));
    for _ in 0..2 {
        let r = refused(connect_as(&gw, A, &[("X-Probe", "over")]));
        r.assert_error(429, "Rate Limit exceeded");
        assert_eq!(r.header("x-ratelimit-limit"), rate(100).as_deref(), "{r:?}");
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            rate(0).as_deref(),
            "{r:?}"
        );
        assert!(
            !r.has_prefix("x-countlimit"),
            "refused before the assembly: no count was checked: {r:?}"
        );
    }
    assert_eq!(
        backend.accepted(),
        100,
        "a refused call reached the backend"
    );
    expect_no_counts(&gw, "plan-limit refusals");
    log_barrier(&gw);
    assert_eq!(
        gw.log_count(SOFT_WARNING),
        0,
        "a hard limit does not warn as soft"
    );
    // B's key is its own; A's next hour starts afresh.
    assert_eq!(call(&gw, B, 1).1, rate(99));
    advance_clock(&gw, 3600);
    assert_eq!(call(&gw, A, 101).1, rate(99));
}

#[test]
fn plan_burst_limit_refuses_with_429_and_burst_limit_headers() {
    let backend = EchoBackend::start();
    let with_burst = format!(
        "    burst-limits:\n      per-minute:\n        value: 3/1minute\n{}",
        "    rate-limits:\n"
    );
    let (_c, gw) = start(&backend, &[("    rate-limits:\n", &with_burst)]);
    for n in 1..=3usize {
        let (mut ws, resp) = connect_as(&gw, A, &[]).expect("within the burst limit");
        assert_eq!(
            header(&resp, "x-burstlimit-limit").as_deref(),
            Some("name=per-minute,3;")
        );
        assert_eq!(
            header(&resp, "x-burstlimit-remaining"),
            Some(format!("name=per-minute,{};", 3 - n))
        );
        // Burst first, then the rate limit: both are reported.
        assert_eq!(header(&resp, "x-ratelimit-remaining"), rate(100 - n as u64));
        let _ = close_and_wait(&mut ws, 1000, "");
    }
    let r = refused(connect_as(&gw, A, &[]));
    r.assert_error(429, "Rate Limit exceeded");
    assert_eq!(r.header("x-burstlimit-limit"), Some("name=per-minute,3;"));
    assert_eq!(
        r.header("x-burstlimit-remaining"),
        Some("name=per-minute,0;")
    );
    assert_eq!(backend.accepted(), 3);
    advance_clock(&gw, 60);
    let (_ws, resp) = connect_as(&gw, A, &[]).expect("a new minute");
    assert_eq!(
        header(&resp, "x-burstlimit-remaining").as_deref(),
        Some("name=per-minute,2;")
    );
}
