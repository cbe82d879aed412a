//! The gateway's admin listener as the limit tests read it: `GET /limits` (live counters),
//! `GET /stats`, `DELETE /limits/...` and, with `WSGATE_TEST_CLOCK=1`, `POST /clock/advance`.
//!
//! Waiting here means polling the admin listener until a state holds, bounded by `DEADLINE`;
//! the state itself is what the tests assert, never how long it took.

use std::time::{Duration, Instant};

use super::DEADLINE;
use super::client::http_request;
use super::gateway::Gateway;

/// One entry of `GET /limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub limit: String,
    /// `Count`, `Rate` or `Burst`.
    pub kind: String,
    pub key: String,
    pub window_start: Option<u64>,
    pub value: u64,
    pub max: u64,
}

/// `GET /limits`, parsed (JSON is read with the YAML parser the crate already has).
pub fn limits(gw: &Gateway) -> Vec<Counter> {
    let r = http_request(gw.addr("admin"), "GET", "/limits", &[], b"").expect("GET /limits");
    assert_eq!(r.status, 200, "GET /limits: {}", r.body_text());
    let body = r.body_text();
    let v: serde_yaml::Value = serde_yaml::from_str(&body)
        .unwrap_or_else(|e| panic!("GET /limits is not JSON ({e}): {body}"));
    let list = v
        .as_sequence()
        .unwrap_or_else(|| panic!("GET /limits is not an array: {body}"));
    list.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(|x| x.as_str())
                    .unwrap_or_else(|| panic!("{k} missing in {body}"))
                    .to_string()
            };
            let n = |k: &str| {
                e.get(k)
                    .and_then(|x| x.as_u64())
                    .unwrap_or_else(|| panic!("{k} missing in {body}"))
            };
            Counter {
                limit: s("limit"),
                kind: s("kind"),
                key: s("key"),
                window_start: e.get("window_start").and_then(|x| x.as_u64()),
                value: n("value"),
                max: n("max"),
            }
        })
        .collect()
}

/// The live Count entries with a value above 0.
pub fn counts(gw: &Gateway) -> Vec<Counter> {
    limits(gw)
        .into_iter()
        .filter(|c| c.kind == "Count" && c.value > 0)
        .collect()
}

/// Sum of the live values of one limit (every key).
pub fn limit_total(gw: &Gateway, name: &str) -> u64 {
    limits(gw)
        .iter()
        .filter(|c| c.limit == name)
        .map(|c| c.value)
        .sum()
}

/// `GET /stats`, as (name, number) pairs.
pub fn stats(gw: &Gateway) -> Vec<(String, u64)> {
    let r = http_request(gw.addr("admin"), "GET", "/stats", &[], b"").expect("GET /stats");
    assert_eq!(r.status, 200, "GET /stats: {}", r.body_text());
    let body = r.body_text();
    let v: serde_yaml::Value = serde_yaml::from_str(&body)
        .unwrap_or_else(|e| panic!("GET /stats is not JSON ({e}): {body}"));
    let map = v
        .as_mapping()
        .unwrap_or_else(|| panic!("GET /stats is not an object: {body}"));
    map.iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_u64()?)))
        .collect()
}

/// One number of `GET /stats`.
pub fn stat(gw: &Gateway, name: &str) -> u64 {
    let all = stats(gw);
    all.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} missing in /stats: {all:?}"))
}

/// Polls `probe` until `done` holds for its result; returns the last result and whether it held.
pub fn poll<T>(mut probe: impl FnMut() -> T, mut done: impl FnMut(&T) -> bool) -> (T, bool) {
    let until = Instant::now() + DEADLINE;
    loop {
        let v = probe();
        if done(&v) {
            return (v, true);
        }
        if Instant::now() >= until {
            return (v, false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no count limit holds anything (no Count entry with a value above 0); panics with
/// what is still held and the log tail otherwise.
pub fn expect_no_counts(gw: &Gateway, after: &str) {
    let (left, ok) = poll(|| counts(gw), |c| c.is_empty());
    assert!(
        ok,
        "after {after}: counts still held {DEADLINE:?} later: {left:?}\n--- log tail ---\n{}",
        log_digest(gw, 40)
    );
}

/// Waits until `/stats` shows `name` at `want`; panics otherwise.
pub fn expect_stat(gw: &Gateway, name: &str, want: u64, after: &str) {
    let (got, ok) = poll(|| stat(gw, name), |v| *v == want);
    assert!(
        ok,
        "after {after}: /stats {name} is {got}, expected {want}\n--- log tail ---\n{}",
        log_digest(gw, 40)
    );
}

/// Waits until the total of one limit's live values is `want`; panics otherwise.
pub fn expect_limit_total(gw: &Gateway, name: &str, want: u64, after: &str) {
    let (got, ok) = poll(|| limit_total(gw, name), |v| *v == want);
    assert!(
        ok,
        "after {after}: limit {name} holds {got}, expected {want}: {:?}",
        limits(gw)
    );
}

/// `DELETE /limits/<path>`; returns how many counters were reset.
pub fn reset(gw: &Gateway, path: &str) -> u64 {
    let r = http_request(
        gw.addr("admin"),
        "DELETE",
        &format!("/limits/{path}"),
        &[],
        b"",
    )
    .expect("DELETE /limits");
    assert_eq!(r.status, 200, "DELETE /limits/{path}: {}", r.body_text());
    let body = r.body_text();
    let v: serde_yaml::Value = serde_yaml::from_str(&body).expect("reset answer is JSON");
    v.get("reset")
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| panic!("no reset count in {body}"))
}

/// `POST /clock/advance?seconds=N` (the gateway must run with `WSGATE_TEST_CLOCK=1`); returns
/// the gateway's total clock offset.
pub fn advance_clock(gw: &Gateway, seconds: u64) -> u64 {
    let r = http_request(
        gw.addr("admin"),
        "POST",
        &format!("/clock/advance?seconds={seconds}"),
        &[],
        b"",
    )
    .expect("POST /clock/advance");
    assert_eq!(
        r.status,
        200,
        "POST /clock/advance (is WSGATE_TEST_CLOCK=1 set?): {}",
        r.body_text()
    );
    let body = r.body_text();
    let v: serde_yaml::Value = serde_yaml::from_str(&body).expect("advance answer is JSON");
    v.get("offset")
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| panic!("no offset in {body}"))
}

/// Moves the gateway's clock to the start of the next `period`-second window (windows are
/// aligned to the epoch), so that a test has a whole window of real time before its counters
/// roll over: counting "3 a minute" must not straddle a minute boundary by chance. Both
/// processes read the same system clock.
pub fn align_clock(gw: &Gateway, period: u64) {
    let offset = advance_clock(gw, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        + offset;
    advance_clock(gw, period - now % period);
}

/// A gateway that runs with `WSGATE_TEST_CLOCK=1`, clock aligned to the start of a window of
/// `period` seconds.
pub fn start_with_test_clock(conf: &std::path::Path, period: u64) -> Gateway {
    let gw = Gateway::builder(conf).env("WSGATE_TEST_CLOCK", "1").start();
    align_clock(&gw, period);
    gw
}

/// Returns once every line the gateway logged before this call is in its collected log: opens
/// and closes a TCP connection to the plain listener and waits for the gateway's own line about
/// that connection, which comes after anything logged earlier (one thread, one ordered pipe).
/// Use it before asserting that a line appears exactly once.
pub fn log_barrier(gw: &Gateway) {
    let s = std::net::TcpStream::connect(gw.addr("plain")).expect("connect for the log barrier");
    let me = s.local_addr().expect("local addr");
    drop(s);
    gw.expect_log(&format!("connection from {me} closed"));
}

/// The last `n` lines of the gateway log without the noise of the admin requests the tests
/// poll with: a `connection from PEER closed` line is left out when no other line names PEER.
pub fn log_digest(gw: &Gateway, n: usize) -> String {
    let log = gw.log();
    let closed_peer = |l: &str| {
        let (_, rest) = l.split_once("connection from ")?;
        rest.strip_suffix(" closed").map(str::to_string)
    };
    let others: Vec<&str> = log.lines().filter(|l| closed_peer(l).is_none()).collect();
    let kept: Vec<&str> = log
        .lines()
        .filter(|l| match closed_peer(l) {
            None => true,
            Some(p) => others.iter().any(|o| o.contains(&p)),
        })
        .collect();
    let from = kept.len().saturating_sub(n);
    kept[from..].join("\n")
}
