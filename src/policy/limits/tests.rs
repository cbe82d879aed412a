//! Tests of `Counters` on hand-built models.

use super::table::{Desc, Entry};
use super::*;
use crate::model::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

fn api(name: &str, version: &str) -> Api {
    Api {
        name: name.into(),
        version: version.into(),
        title: name.into(),
        file: PathBuf::new(),
        base_path: format!("/{name}"),
        schemes: Schemes::ALL,
        operations: Vec::new(),
        properties: Vec::new(),
        security: Security::default(),
        cors: Cors::default(),
        activity_log: ActivityLog::default(),
        assembly: Assembly::default(),
        plans: Vec::new(),
    }
}

/// A limit with the assembly-limit defaults of the given kind: gateway level, hard, is-client.
fn lim(name: &str, kind: LimitKind, value: LimitValue) -> LimitDef {
    LimitDef {
        name: name.into(),
        kind,
        level: LimitLevel::GatewayNamed,
        plan: None,
        value,
        value_text: String::new(),
        hard: true,
        cache_only: true,
        is_client: true,
        use_api_name: false,
        use_app_id: false,
        use_client_id: false,
        dynamic_value: None,
        weight: "1".into(),
        auto_decrement: true,
        origin: "test".into(),
    }
}

fn rate(name: &str, max: u64, period_secs: u64) -> LimitDef {
    lim(name, LimitKind::Rate, LimitValue::Rate { max, period_secs })
}

fn count(name: &str, max: u64) -> LimitDef {
    lim(name, LimitKind::Count, LimitValue::Count { max })
}

/// APIs as (name, version); plans as (name, API indices); applications as (name, plan).
fn model(
    apis: &[(&str, &str)],
    plans: &[(&str, &[ApiIdx])],
    apps: &[(&str, PlanIdx)],
    limits: Vec<LimitDef>,
) -> Model {
    Model {
        settings: Settings {
            source: PathBuf::new(),
            listeners: Vec::new(),
            admin: None,
            admin_token: None,
            echo: None,
            bounds: Bounds::default(),
            activity_log: Default::default(),
            trusted_proxies: Vec::new(),
        },
        apis: apis.iter().map(|(n, v)| api(n, v)).collect(),
        products: Vec::new(),
        plans: plans
            .iter()
            .map(|(n, a)| Plan {
                name: (*n).into(),
                title: (*n).into(),
                product: 0,
                apis: a.to_vec(),
                rate_limits: Vec::new(),
                burst_limits: Vec::new(),
                named: Vec::new(),
            })
            .collect(),
        limits,
        applications: apps
            .iter()
            .map(|(n, p)| Application {
                name: (*n).into(),
                client_id: format!("{n}-id"),
                client_secret: None,
                plan: *p,
            })
            .collect(),
        tls_profiles: Vec::new(),
    }
}

/// One plan with two APIs and two applications.
fn simple(limits: Vec<LimitDef>) -> Model {
    model(
        &[("chat", "1.0.0"), ("feed", "1.0.0")],
        &[("default-plan", &[0, 1])],
        &[("app-a", 0), ("app-b", 0)],
        limits,
    )
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn app(a: AppIdx) -> Consumer<'static> {
    Consumer {
        app: Some(a),
        remote_ip: ip(1),
        api: 0,
        dynamic: None,
    }
}

fn keyless(ip: IpAddr) -> Consumer<'static> {
    Consumer {
        app: None,
        remote_ip: ip,
        api: 0,
        dynamic: None,
    }
}

fn slot(c: &mut Counters, limit: LimitIdx, who: &Consumer, now: u64) -> Slot {
    match c.slot(limit, who, now) {
        Lookup::Counter(s) => s,
        other => panic!("expected a counter, got {other:?}"),
    }
}

/// A Thursday, 2024-01-04 00:00:00 UTC: a day and a week boundary.
const THU: u64 = 1_704_326_400;

#[test]
fn window_numbers_are_epoch_aligned() {
    assert_eq!(window_of(THU, 86_400), 19_726);
    assert_eq!(window_of(THU - 1, 86_400), 19_725);
    assert_eq!(window_of(THU, 604_800), 2_818);
    assert_eq!(window_of(THU - 1, 604_800), 2_817);
    // Monday 2024-01-01 00:00 UTC starts a day but not a week.
    let monday = THU - 3 * 86_400;
    assert_ne!(window_of(monday, 86_400), window_of(monday - 1, 86_400));
    assert_eq!(window_of(monday, 604_800), window_of(monday - 1, 604_800));
    // 5-minute windows start at :00, :05, ...
    assert_eq!(window_of(THU + 299, 300), window_of(THU, 300));
    assert_ne!(window_of(THU + 300, 300), window_of(THU + 299, 300));
    assert_eq!(window_of(7, 0), 7, "a period of 0 is treated as 1");
}

#[test]
fn windows_roll_over_exactly_at_the_boundary_for_every_unit() {
    for period in [1, 5, 60, 180, 3_600, 86_400, 604_800] {
        let mut c = Counters::new(&simple(vec![rate("r", 2, period)]), 0);
        let s = slot(&mut c, 0, &app(0), THU);
        // THU is a multiple of every period here, so it starts a window.
        assert_eq!(THU % period, 0);
        let v = c.consume(s, 1, THU);
        assert!(v.allowed && !v.exceeded);
        assert_eq!((v.limit, v.remaining, v.reset_in_secs), (2, 1, period));
        assert!(c.consume(s, 1, THU + period - 1).allowed);
        let v = c.consume(s, 1, THU + period - 1);
        assert!(!v.allowed && v.exceeded, "period {period}");
        assert_eq!((v.remaining, v.reset_in_secs), (0, 1));
        // The first second of the next window starts from 0.
        let v = c.consume(s, 1, THU + period);
        assert!(v.allowed, "period {period}");
        assert_eq!((v.remaining, v.reset_in_secs), (1, period));
        // A window long gone reads as 0, and so does a much later one.
        let v = c.consume(s, 2, THU + 5 * period + period / 2);
        assert!(v.allowed && v.remaining == 0, "period {period}");
        assert_eq!(v.reset_in_secs, period - period / 2);
    }
}

#[test]
fn day_windows_reset_at_midnight_utc_and_weeks_on_thursday() {
    let mut c = Counters::new(
        &simple(vec![rate("day", 1, 86_400), rate("week", 1, 604_800)]),
        0,
    );
    let day = slot(&mut c, 0, &app(0), THU);
    let week = slot(&mut c, 1, &app(0), THU);
    // Monday 00:00 UTC: a new day, the same week as the Sunday before.
    let monday = THU - 3 * 86_400;
    assert!(c.consume(day, 1, monday - 1).allowed);
    assert!(c.consume(week, 1, monday - 1).allowed);
    assert!(c.consume(day, 1, monday).allowed);
    assert!(!c.consume(week, 1, monday).allowed);
    // Wednesday 23:59:59 is still that week; Thursday 00:00 starts the next.
    let v = c.consume(week, 1, THU - 1);
    assert!(!v.allowed);
    assert_eq!(v.reset_in_secs, 1);
    assert!(c.consume(week, 1, THU).allowed);
    assert!(c.consume(day, 1, THU).allowed);
    assert!(!c.consume(day, 1, THU + 86_399).allowed);
    assert!(c.consume(day, 1, THU + 86_400).allowed);
}

#[test]
fn rejected_calls_do_not_consume() {
    let mut c = Counters::new(&simple(vec![rate("r", 3, 60)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    assert_eq!(c.consume(s, 2, THU).remaining, 1);
    let v = c.consume(s, 2, THU + 1);
    assert!(!v.allowed && v.exceeded && v.remaining == 0);
    for _ in 0..10 {
        assert!(!c.consume(s, 5, THU + 2).allowed);
    }
    // Had the rejections counted, this would fail too.
    let v = c.consume(s, 1, THU + 3);
    assert!(v.allowed && !v.exceeded);
    assert_eq!(v.remaining, 0);
    assert!(!c.consume(s, 1, THU + 4).allowed);
}

#[test]
fn hard_limit_reports_the_first_rejection_once_per_window_and_key() {
    let mut c = Counters::new(&simple(vec![rate("r", 1, 10)]), 0);
    let a = slot(&mut c, 0, &app(0), THU);
    let b = slot(&mut c, 0, &app(1), THU);
    assert!(!c.consume(a, 1, THU).first_in_window, "not exceeded");
    let v = c.consume(a, 1, THU);
    assert!(!v.allowed && v.first_in_window);
    assert!(!c.consume(a, 1, THU + 9).first_in_window);
    c.consume(b, 1, THU);
    assert!(c.consume(b, 1, THU).first_in_window, "another key");
    c.consume(a, 1, THU + 10);
    assert!(c.consume(a, 1, THU + 10).first_in_window, "a new window");
}

#[test]
fn soft_limits_pass_report_exceeded_and_warn_once_per_window() {
    let mut l = rate("soft", 2, 60);
    l.hard = false;
    let mut c = Counters::new(&simple(vec![l]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    assert_eq!(c.consume(s, 1, THU).remaining, 1);
    let v = c.consume(s, 1, THU);
    assert!(v.allowed && !v.exceeded && v.remaining == 0);
    let v = c.consume(s, 1, THU + 1);
    assert!(v.allowed && v.exceeded && v.first_in_window);
    assert_eq!((v.limit, v.remaining), (2, 0));
    let v = c.consume(s, 1, THU + 2);
    assert!(v.allowed && v.exceeded && !v.first_in_window);
    // Soft calls are stored: 4 in this window.
    assert_eq!(c.snapshot(THU + 2)[0].value, 4);
    // Next window: counted from 0, warned again when exceeded.
    c.consume(s, 2, THU + 60);
    let v = c.consume(s, 1, THU + 61);
    assert!(v.allowed && v.exceeded && v.first_in_window);
}

#[test]
fn burst_limits_are_always_hard() {
    let mut l = lim(
        "b",
        LimitKind::Burst,
        LimitValue::Rate {
            max: 1,
            period_secs: 1,
        },
    );
    l.hard = false;
    let mut c = Counters::new(&simple(vec![l]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    assert!(c.consume(s, 1, THU).allowed);
    assert!(!c.consume(s, 1, THU).allowed);
}

#[test]
fn unlimited_and_zero_have_no_counter() {
    let m = simple(vec![
        lim("u", LimitKind::Rate, LimitValue::Unlimited),
        rate("zero", 0, 60),
        count("zero-count", 0),
        rate("r", 1, 60),
    ]);
    let mut c = Counters::new(&m, 4);
    for l in 0..3 {
        assert_eq!(c.slot(l, &app(0), THU), Lookup::Unlimited);
        assert_eq!(c.slot(l, &keyless(ip(1)), THU), Lookup::Unlimited);
    }
    assert_eq!(c.slot(99, &app(0), THU), Lookup::Unlimited, "no such limit");
    // Only the real limit has cells: one per application.
    assert_eq!(c.dense_len, 2);
}

#[test]
fn two_apps_are_independent() {
    let mut c = Counters::new(&simple(vec![rate("r", 1, 60)]), 0);
    let a = slot(&mut c, 0, &app(0), THU);
    let b = slot(&mut c, 0, &app(1), THU);
    assert_ne!(a, b);
    assert!(c.consume(a, 1, THU).allowed);
    assert!(!c.consume(a, 1, THU).allowed);
    assert!(c.consume(b, 1, THU).allowed);
    // The same consumer resolves to the same counter again.
    assert_eq!(slot(&mut c, 0, &app(0), THU + 1), a);
}

#[test]
fn not_is_client_shares_one_counter_across_every_consumer() {
    let mut l = count("backend", 2);
    l.is_client = false;
    let mut c = Counters::new(&simple(vec![l]), 0);
    let a = slot(&mut c, 0, &app(0), THU);
    let b = slot(&mut c, 0, &app(1), THU);
    // Keyless callers share it too, without using the table (capacity 0 here).
    let k = slot(&mut c, 0, &keyless(ip(7)), THU);
    assert_eq!(a, b);
    assert_eq!(a, k);
    assert_eq!(c.dense_len, 1);
    assert!(c.inc(a, 1).allowed);
    assert!(c.inc(k, 1).allowed);
    assert!(!c.inc(b, 1).allowed);
}

#[test]
fn use_api_name_separates_apis_but_not_versions() {
    let mut l = rate("r", 1, 60);
    l.use_api_name = true;
    let m = model(
        &[("chat", "1.0.0"), ("feed", "1.0.0"), ("chat", "2.0.0")],
        &[("p", &[0, 1, 2])],
        &[("app-a", 0)],
        vec![l],
    );
    let mut c = Counters::new(&m, 0);
    let on = |api| Consumer { api, ..app(0) };
    let chat = slot(&mut c, 0, &on(0), THU);
    let feed = slot(&mut c, 0, &on(1), THU);
    let chat2 = slot(&mut c, 0, &on(2), THU);
    assert_ne!(chat, feed);
    assert_eq!(chat, chat2, "use-api-name keys by name");
    assert_eq!(c.dense_len, 2);
    assert!(c.consume(chat, 1, THU).allowed);
    assert!(c.consume(feed, 1, THU).allowed);
    assert!(!c.consume(chat2, 1, THU).allowed);
}

#[test]
fn plan_limits_are_laid_out_over_their_plan_only() {
    let mut gold = rate("per-app", 1, 60);
    gold.level = LimitLevel::PlanNamed;
    gold.plan = Some(1);
    gold.use_api_name = true;
    let m = model(
        &[("a", "1"), ("b", "1"), ("c", "1")],
        &[("silver", &[0]), ("gold", &[1, 2])],
        &[("s1", 0), ("g1", 1), ("s2", 0), ("g2", 1), ("g3", 1)],
        vec![gold],
    );
    let mut c = Counters::new(&m, 4);
    // 3 gold applications × 2 gold APIs.
    assert_eq!(c.dense_len, 6);
    let at = |a, api| Consumer { api, ..app(a) };
    let mut seen = Vec::new();
    for a in [1, 3, 4] {
        for api in [1, 2] {
            let s = slot(&mut c, 0, &at(a, api), THU);
            assert!(s.cell < 6);
            seen.push(s.cell);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    // A consumer outside the plan still gets its own counter, from the table.
    let outside = slot(&mut c, 0, &at(0, 1), THU);
    assert!(outside.cell >= 6);
    assert!(c.consume(outside, 1, THU).allowed);
    assert!(!c.consume(outside, 1, THU).allowed);
    let inside = slot(&mut c, 0, &at(1, 1), THU);
    assert!(c.consume(inside, 1, THU).allowed);
}

#[test]
fn remote_ips_use_the_table_and_are_independent() {
    let mut c = Counters::new(&simple(vec![rate("r", 1, 60)]), 8);
    let one = slot(&mut c, 0, &keyless(ip(1)), THU);
    let two = slot(&mut c, 0, &keyless(ip(2)), THU);
    assert!(one.cell >= c.dense_len && two.cell >= c.dense_len);
    assert_ne!(one, two);
    assert!(c.consume(one, 1, THU).allowed);
    assert!(!c.consume(one, 1, THU).allowed);
    assert!(c.consume(two, 1, THU).allowed);
    // The same address, as IPv4-mapped IPv6, is the same client.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    assert_eq!(slot(&mut c, 0, &keyless(mapped), THU), one);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_ne!(slot(&mut c, 0, &keyless(v6), THU), one);
}

#[test]
fn dynamic_values_use_the_table_and_are_independent() {
    let mut l = rate("r", 1, 60);
    l.is_client = false;
    l.dynamic_value = Some(Template {
        parts: vec![Part::Var("request.headers.tenant".into())],
    });
    let mut stat = rate("s", 1, 60);
    stat.dynamic_value = Some(Template::literal("fixed"));
    let mut c = Counters::new(&simple(vec![l, stat]), 8);
    let with = |d| Consumer {
        dynamic: Some(d),
        ..app(0)
    };
    let t1 = slot(&mut c, 0, &with("t1"), THU);
    let t2 = slot(&mut c, 0, &with("t2"), THU);
    assert!(t1.cell >= c.dense_len);
    assert_ne!(t1, t2);
    // Not is-client: another application with the same value shares the counter.
    let other = Consumer {
        dynamic: Some("t1"),
        ..app(1)
    };
    assert_eq!(slot(&mut c, 0, &other, THU), t1);
    assert!(c.consume(t1, 1, THU).allowed);
    assert!(!c.consume(t1, 1, THU).allowed);
    assert!(c.consume(t2, 1, THU).allowed);
    // A missing expansion is the empty value: a key of its own.
    let none = slot(&mut c, 0, &app(0), THU);
    assert!(none != t1 && none != t2);
    // A dynamic value without run-time references is constant: it stays dense.
    assert!(slot(&mut c, 1, &with("ignored"), THU).cell < c.dense_len);
}

#[test]
fn table_evicts_expired_windows_when_full() {
    let mut c = Counters::new(&simple(vec![rate("r", 5, 60)]), 2);
    let one = slot(&mut c, 0, &keyless(ip(1)), THU);
    let two = slot(&mut c, 0, &keyless(ip(2)), THU);
    c.consume(one, 1, THU);
    c.consume(two, 1, THU);
    assert_eq!(c.slot(0, &keyless(ip(3)), THU + 59), Lookup::Full);
    // Both windows ended: the entries can go.
    let three = slot(&mut c, 0, &keyless(ip(3)), THU + 60);
    assert!(c.consume(three, 5, THU + 60).allowed);
    // A key resolved but never used holds nothing and can go too; a live one cannot.
    let four = slot(&mut c, 0, &keyless(ip(4)), THU + 60);
    let five = slot(&mut c, 0, &keyless(ip(5)), THU + 60);
    assert_eq!(four.cell, five.cell);
    assert!(c.consume(five, 1, THU + 60).allowed);
    assert_eq!(c.slot(0, &keyless(ip(6)), THU + 119), Lookup::Full);
    assert!(
        !c.consume(three, 1, THU + 119).allowed,
        "ip 3 kept its count"
    );
}

#[test]
fn table_evicts_zero_counts_but_never_a_live_count() {
    let mut c = Counters::new(&simple(vec![count("conns", 2)]), 2);
    let one = slot(&mut c, 0, &keyless(ip(1)), THU);
    let two = slot(&mut c, 0, &keyless(ip(2)), THU);
    assert!(c.inc(one, 1).allowed);
    assert!(c.inc(two, 1).allowed);
    // Counts have no window: a year later they are still live.
    assert_eq!(c.slot(0, &keyless(ip(3)), THU + 31_536_000), Lookup::Full);
    c.dec(one, 1);
    let three = slot(&mut c, 0, &keyless(ip(3)), THU);
    assert!(c.inc(three, 2).allowed);
    assert!(!c.inc(three, 1).allowed);
    // The live count of ip 2 survived all of this.
    assert!(c.inc(two, 1).allowed);
    assert!(!c.inc(two, 1).allowed);
}

#[test]
fn table_fills_three_quarters_with_live_keys_and_finds_them_again() {
    let cap = 2048;
    let n: u16 = 1536;
    let mut c = Counters::new(&simple(vec![count("conns", 1)]), cap);
    // One /64 each: keyless IPv6 callers are keyed by their /64.
    let addr = |i: u16| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, i, 0, 0, 0, 1));
    let mut slots = Vec::new();
    for i in 0..n {
        let s = slot(&mut c, 0, &keyless(addr(i)), THU);
        assert!(c.inc(s, 1).allowed, "key {i} has a counter of its own");
        slots.push(s);
    }
    for i in 0..n {
        let s = slot(&mut c, 0, &keyless(addr(i)), THU + 1);
        assert_eq!(s, slots[usize::from(i)]);
        assert!(!c.inc(s, 1).allowed);
    }
    assert_eq!(c.snapshot(THU).len(), usize::from(n));
}

#[test]
fn zero_capacity_table_reports_full() {
    let mut c = Counters::new(&simple(vec![count("conns", 2)]), 0);
    assert_eq!(c.slot(0, &keyless(ip(1)), THU), Lookup::Full);
    assert_eq!(c.slot(0, &keyless(ip(1)), THU).slot(), None);
}

#[test]
fn an_evicted_slot_never_touches_another_key() {
    let mut c = Counters::new(&simple(vec![rate("r", 2, 60)]), 1);
    let a = slot(&mut c, 0, &keyless(ip(1)), THU);
    assert!(c.consume(a, 1, THU).allowed);
    // Next window: ip 2 takes the only entry, and uses all of it.
    let b = slot(&mut c, 0, &keyless(ip(2)), THU + 60);
    assert_eq!(a.cell, b.cell);
    assert!(c.consume(b, 2, THU + 60).allowed);
    // ip 1's old slot is noticed as stale; with no room left it fails closed...
    let v = c.consume(a, 1, THU + 61);
    assert!(!v.allowed && v.exceeded);
    c.replenish(a, 1, THU + 61);
    // ...and ip 2's counter was not touched by either call.
    assert!(!c.consume(b, 1, THU + 61).allowed);
    // A window later ip 1's slot re-creates its entry and works again.
    assert!(c.consume(a, 2, THU + 120).allowed);
    assert!(!c.consume(a, 1, THU + 120).allowed);
    // The entry was re-created from the hash alone; the next lookup of ip 1 finds it and
    // restores its description.
    assert_eq!(
        c.snapshot(THU + 120)[0].key,
        format!("gateway:r:key=#{:016x}", a.h1)
    );
    assert_eq!(slot(&mut c, 0, &keyless(ip(1)), THU + 121), a);
    assert_eq!(c.snapshot(THU + 121)[0].key, "gateway:r:ip=10.0.0.1");
    assert!(!c.consume(a, 1, THU + 121).allowed);
}

#[test]
fn count_inc_to_max_rejects_without_counting_and_dec_stops_at_zero() {
    let mut c = Counters::new(&simple(vec![count("conns", 3)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    for left in [2, 1, 0] {
        let v = c.inc(s, 1);
        assert!(v.allowed && !v.exceeded);
        assert_eq!((v.limit, v.remaining, v.reset_in_secs), (3, left, 0));
    }
    let v = c.inc(s, 1);
    assert!(!v.allowed && v.exceeded && v.first_in_window);
    assert!(!c.inc(s, 1).first_in_window, "reported once");
    c.dec(s, 1);
    let v = c.inc(s, 1);
    assert!(
        v.allowed && v.remaining == 0,
        "the rejections were not counted"
    );
    let v = c.inc(s, 1);
    assert!(
        !v.allowed && v.first_in_window,
        "reported again after a dec"
    );
    c.dec(s, 10);
    assert!(c.snapshot(THU).is_empty(), "clamped at 0");
    assert_eq!(c.inc(s, 1).remaining, 2);
}

#[test]
fn seed_case_each_client_holds_its_own_two_connections() {
    // The seed: assembly-count-limits websocket-connections, value 2, is-client.
    let mut l = count("websocket-connections", 2);
    l.level = LimitLevel::PlanNamed;
    l.plan = Some(0);
    let m = model(
        &[("echo", "1.0.0")],
        &[("default-plan", &[0])],
        &[("demo-app", 0), ("other-app", 0)],
        vec![l],
    );
    let mut c = Counters::new(&m, 0);
    let a = slot(&mut c, 0, &app(0), THU);
    let mut held_a = [Held::new(), Held::new()];
    for h in &mut held_a {
        assert!(c.inc(a, 1).allowed);
        h.push(a, 1);
    }
    let v = c.inc(a, 1);
    assert!(!v.allowed && v.limit == 2 && v.remaining == 0);
    let b = slot(&mut c, 0, &app(1), THU);
    assert!(c.inc(b, 1).allowed);
    assert!(c.inc(b, 1).allowed);
    assert!(!c.inc(b, 1).allowed);
    // One of A's connections closes: its count comes back exactly once.
    for (s, w) in held_a[0].take_all() {
        c.dec(s, w);
    }
    for (s, w) in held_a[0].take_all() {
        c.dec(s, w);
    }
    let v = c.inc(a, 1);
    assert!(v.allowed && v.remaining == 0);
    assert!(
        !c.inc(a, 1).allowed,
        "the second take_all gave nothing back"
    );
}

#[test]
fn held_with_explicit_dec_gives_back_only_the_rest() {
    let mut c = Counters::new(&simple(vec![count("conns", 10)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    let other = slot(&mut c, 0, &app(1), THU);
    let mut held = Held::new();
    c.inc(other, 4);
    c.inc(s, 3);
    held.push(s, 3);
    // An explicit dec in the flow, then the connection ends.
    c.dec(s, 1);
    held.remove(s, 1);
    for (s, w) in held.take_all() {
        c.dec(s, w);
    }
    let view = c.snapshot(THU);
    assert_eq!(view.len(), 1);
    assert_eq!(
        view[0].value, 4,
        "only the other application's count is left"
    );
}

#[test]
fn replenish_gives_back_within_the_window_and_clamps_at_zero() {
    let mut c = Counters::new(&simple(vec![rate("r", 3, 60)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    c.consume(s, 3, THU);
    assert!(!c.consume(s, 1, THU).allowed);
    c.replenish(s, 2, THU + 1);
    assert_eq!(c.consume(s, 1, THU + 1).remaining, 1);
    c.replenish(s, 100, THU + 2);
    assert!(c.snapshot(THU + 2).is_empty(), "clamped at 0");
    // What was consumed in a window that ended cannot be credited to the new one.
    c.consume(s, 3, THU + 60);
    c.replenish(s, 2, THU + 120);
    c.consume(s, 3, THU + 120);
    assert!(!c.consume(s, 1, THU + 120).allowed);
}

#[test]
fn weights_count_and_zero_weighs_one() {
    let mut c = Counters::new(&simple(vec![rate("bytes", 1000, 60)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    assert_eq!(c.consume(s, 600, THU).remaining, 400);
    assert!(!c.consume(s, 401, THU).allowed);
    assert_eq!(c.consume(s, 0, THU).remaining, 399);
    assert!(
        !c.consume(s, u64::MAX, THU).allowed,
        "saturates, never wraps"
    );
    assert_eq!(c.consume(s, 399, THU).remaining, 0);
}

#[test]
fn large_values_keep_all_their_bits() {
    let max = 10_000_000_000;
    let mut c = Counters::new(&simple(vec![rate("bytes", max, 86_400)]), 0);
    let s = slot(&mut c, 0, &app(0), THU);
    assert_eq!(c.consume(s, 6_000_000_000, THU).remaining, 4_000_000_000);
    assert_eq!(c.consume(s, 4_000_000_000, THU).remaining, 0);
    assert!(!c.consume(s, 1, THU).allowed);
}

#[test]
fn garbage_slots_fail_closed_and_do_nothing() {
    let mut c = Counters::new(&simple(vec![count("conns", 2)]), 2);
    let v = c.inc(Slot::NONE, 1);
    assert!(!v.allowed);
    c.dec(Slot::NONE, 1);
    let bogus = Slot {
        cell: 1_000,
        limit: 0,
        h1: 0,
    };
    assert!(!c.consume(bogus, 1, THU).allowed);
    c.replenish(bogus, 1, THU);
    assert!(c.snapshot(THU).is_empty());
}

#[test]
fn consume_on_a_count_is_inc_and_inc_on_a_rate_uses_the_last_time() {
    let mut c = Counters::new(&simple(vec![count("conns", 1), rate("r", 1, 60)]), 0);
    let n = slot(&mut c, 0, &app(0), THU);
    assert!(c.consume(n, 1, THU).allowed);
    assert!(!c.consume(n, 1, THU + 1_000_000).allowed, "no window");
    c.replenish(n, 1, THU);
    assert!(c.inc(n, 1).allowed);
    let r = slot(&mut c, 1, &app(0), THU);
    assert!(c.inc(r, 1).allowed);
    assert!(!c.consume(r, 1, THU).allowed);
    c.consume(r, 1, THU + 60);
    assert!(!c.inc(r, 1).allowed, "inc counts in the window last seen");
}

#[test]
fn snapshot_lists_live_counters_with_their_keys() {
    let mut conns = count("websocket-connections", 2);
    conns.level = LimitLevel::PlanNamed;
    conns.plan = Some(0);
    let mut per_api = rate("msgs", 10, 60);
    per_api.level = LimitLevel::CatalogNamed;
    per_api.use_api_name = true;
    let mut tenant = rate("tenant", 10, 60);
    tenant.is_client = false;
    tenant.dynamic_value = Some(Template {
        parts: vec![Part::Var("x".into())],
    });
    let m = model(
        &[("chat", "1.0.0"), ("feed", "1.0.0")],
        &[("default-plan", &[0, 1])],
        &[("demo-app", 0), ("other-app", 0)],
        vec![conns, per_api, tenant],
    );
    let mut c = Counters::new(&m, 8);
    let s = slot(&mut c, 0, &app(0), THU);
    c.inc(s, 1);
    let s = slot(&mut c, 0, &keyless(ip(9)), THU);
    c.inc(s, 2);
    let s = slot(&mut c, 1, &Consumer { api: 1, ..app(1) }, THU + 70);
    c.consume(s, 3, THU + 70);
    let long = "é".repeat(20);
    for d in ["acme", long.as_str()] {
        let who = Consumer {
            dynamic: Some(d),
            ..app(0)
        };
        let s = slot(&mut c, 2, &who, THU + 70);
        c.consume(s, 1, THU + 70);
    }
    // Resolved but never counted: not listed.
    slot(&mut c, 0, &app(1), THU + 70);
    let mut v = c.snapshot(THU + 75);
    v.sort_by(|a, b| a.key.cmp(&b.key));
    let cut = format!("gateway:tenant:dv={}…", "é".repeat(14));
    let want = vec![
        CounterView {
            limit: "msgs".into(),
            kind: LimitKind::Rate,
            key: "catalog:msgs:app=other-app:api=feed".into(),
            window_start: Some(THU + 60),
            value: 3,
            max: 10,
        },
        CounterView {
            limit: "tenant".into(),
            kind: LimitKind::Rate,
            key: "gateway:tenant:dv=acme".into(),
            window_start: Some(THU + 60),
            value: 1,
            max: 10,
        },
        CounterView {
            limit: "tenant".into(),
            kind: LimitKind::Rate,
            key: cut,
            window_start: Some(THU + 60),
            value: 1,
            max: 10,
        },
        CounterView {
            limit: "websocket-connections".into(),
            kind: LimitKind::Count,
            key: "plan:default-plan:websocket-connections:app=demo-app".into(),
            window_start: None,
            value: 1,
            max: 2,
        },
        CounterView {
            limit: "websocket-connections".into(),
            kind: LimitKind::Count,
            key: "plan:default-plan:websocket-connections:ip=10.0.0.9".into(),
            window_start: None,
            value: 2,
            max: 2,
        },
    ];
    assert_eq!(v, want);
    // The rate windows end; the counts stay.
    assert_eq!(c.snapshot(THU + 120).len(), 2);
}

#[test]
fn reset_one_key_or_every_key_of_a_limit() {
    let mut conns = count("websocket-connections", 2);
    conns.level = LimitLevel::PlanNamed;
    conns.plan = Some(0);
    let mut c = Counters::new(&simple(vec![conns, count("other", 5)]), 4);
    let a = slot(&mut c, 0, &app(0), THU);
    let b = slot(&mut c, 0, &app(1), THU);
    let k = slot(&mut c, 0, &keyless(ip(3)), THU);
    let o = slot(&mut c, 1, &app(0), THU);
    for s in [a, a, b, k, o] {
        assert!(c.inc(s, 1).allowed);
    }
    assert!(!c.inc(a, 1).allowed);
    let key = "plan:default-plan:websocket-connections:app=app-a";
    assert_eq!(c.reset("websocket-connections", Some(key)), 1);
    assert_eq!(
        c.reset("websocket-connections", Some(key)),
        0,
        "nothing left"
    );
    assert!(c.inc(a, 2).allowed, "app-a starts again from 0");
    assert_eq!(c.reset("nope", None), 0);
    assert_eq!(c.reset("websocket-connections", None), 3);
    assert_eq!(c.snapshot(THU).len(), 1, "the other limit is untouched");
    // A connection that held a reset table count gives it back without harm.
    c.dec(k, 1);
    let k2 = slot(&mut c, 0, &keyless(ip(3)), THU);
    assert!(c.inc(k2, 2).allowed);
    c.dec(b, 1);
    assert!(c.inc(b, 2).allowed);
}

#[test]
fn memory_figures() {
    assert_eq!(std::mem::size_of::<Cell>(), 8);
    assert_eq!(std::mem::size_of::<Entry>(), 24);
    assert_eq!(std::mem::size_of::<Desc>(), 56);
    // A gateway limit per application and API name: 2 × 2 cells; a plan limit per application:
    // 2; a shared limit: 1.
    let mut per_api = rate("a", 1, 1);
    per_api.use_api_name = true;
    let mut plan = count("p", 1);
    plan.level = LimitLevel::PlanNamed;
    plan.plan = Some(0);
    let mut shared = count("s", 1);
    shared.is_client = false;
    let c = Counters::new(&simple(vec![per_api, plan, shared]), 100);
    assert_eq!(c.dense_len, 7);
    let bases: Vec<u32> = c.layouts.iter().map(|l| l.base).collect();
    assert_eq!(bases, vec![0, 4, 6]);
    assert_eq!(c.cells.len(), 107);
    assert_eq!(c.entries.len(), 100);
    assert_eq!(
        format!("{c:?}"),
        "Counters { limits: 3, dense_cells: 7, table_capacity: 100 }"
    );
}

/// Reloads `c` onto `m` with the given open-connection slots and returns them rewritten.
fn reload(c: &mut Counters, m: &Model, now: u64, open: &[Slot]) -> Vec<Slot> {
    let mut r = c.reload(m, now, open.iter().map(|s| s.limit()));
    let out: Vec<Slot> = open.iter().map(|&s| r.slot(c, s)).collect();
    for s in &out {
        c.pin(s.limit());
    }
    out
}

fn values(c: &Counters, now: u64) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = c
        .snapshot(now)
        .into_iter()
        .map(|v| (v.key, v.value, v.max))
        .collect();
    v.sort();
    v
}

#[test]
fn reload_keeps_counts_and_old_connections_give_back_into_the_same_counter() {
    let mut c = Counters::new(&simple(vec![count("conns", 2)]), 64);
    let s = slot(&mut c, 0, &app(1), THU);
    assert!(c.inc(s, 1).allowed);
    assert!(c.inc(s, 1).allowed);
    // The new config adds an application in front, which renumbers app-b, and raises the max.
    let m = model(
        &[("chat", "1.0.0"), ("feed", "1.0.0")],
        &[("default-plan", &[0, 1])],
        &[("app-0", 0), ("app-a", 0), ("app-b", 0)],
        vec![count("conns", 3)],
    );
    let old = reload(&mut c, &m, THU, &[s, s]);
    assert_eq!(
        values(&c, THU),
        vec![("gateway:conns:app=app-b".to_string(), 2, 3)]
    );
    let new = slot(&mut c, 0, &app(2), THU);
    assert!(c.inc(new, 1).allowed, "3 of 3");
    assert!(!c.inc(new, 1).allowed, "a fourth is over the new max");
    // The old connections give back exactly what they hold, into the same counter.
    c.dec(old[0], 1);
    c.dec(old[1], 1);
    assert_eq!(
        values(&c, THU),
        vec![("gateway:conns:app=app-b".to_string(), 1, 3)]
    );
    assert!(c.snapshot(THU).iter().all(|v| v.key.contains("app-b")));
}

#[test]
fn reload_carries_rate_windows_and_old_slots_keep_their_own_max() {
    let mut c = Counters::new(&simple(vec![rate("msgs", 100, 60)]), 64);
    let s = slot(&mut c, 0, &app(0), THU);
    for _ in 0..5 {
        assert!(c.consume(s, 1, THU).allowed);
    }
    let old = reload(&mut c, &simple(vec![rate("msgs", 6, 60)]), THU, &[s]);
    let new = slot(&mut c, 0, &app(0), THU);
    let v = c.consume(new, 1, THU);
    assert!(
        v.allowed && v.remaining == 0,
        "the window carried over: 6 of 6"
    );
    assert!(!c.consume(new, 1, THU).allowed);
    // The connection from before counts in the same window against its own 100.
    let v = c.consume(old[0], 1, THU);
    assert!(v.allowed);
    assert_eq!((v.limit, v.remaining), (100, 93));
    assert_eq!(values(&c, THU)[0].1, 7);
}

#[test]
fn reload_keeps_a_removed_limit_while_used_and_drops_it_after() {
    let mut c = Counters::new(&simple(vec![rate("gone", 10, 60), count("kept", 5)]), 64);
    let g = slot(&mut c, 0, &app(0), THU);
    let k = slot(&mut c, 1, &app(0), THU);
    assert!(c.consume(g, 1, THU).allowed);
    assert!(c.inc(k, 1).allowed);
    let old = reload(&mut c, &simple(vec![count("kept", 5)]), THU, &[g, k]);
    assert_eq!(
        values(&c, THU),
        vec![
            ("gateway:gone:app=app-a".to_string(), 1, 10),
            ("gateway:kept:app=app-a".to_string(), 1, 5),
        ]
    );
    assert!(c.consume(old[0], 1, THU).allowed);
    // The last connection that used it ends.
    c.dec(old[1], 1);
    c.unpin(old[0].limit());
    c.unpin(old[1].limit());
    assert!(values(&c, THU).is_empty(), "{:?}", values(&c, THU));
    // A later reload with no connections carries nothing of it.
    reload(&mut c, &simple(vec![count("kept", 5)]), THU, &[]);
    assert!(values(&c, THU).is_empty());
}

#[test]
fn reload_carries_run_time_keys_by_their_hashes() {
    let dv = |t: &str| {
        let mut d = rate("per-dv", 10, 60);
        d.dynamic_value = Some(Template {
            parts: vec![crate::model::template::Part::Var(t.into())],
        });
        d
    };
    let mut c = Counters::new(&simple(vec![rate("ip", 10, 60), dv("request.path")]), 64);
    let by_ip = slot(&mut c, 0, &keyless(ip(7)), THU);
    let long = "x".repeat(60);
    let who = Consumer {
        dynamic: Some(&long),
        ..app(0)
    };
    let by_dv = slot(&mut c, 1, &who, THU);
    assert!(c.consume(by_ip, 3, THU).allowed);
    assert!(c.consume(by_dv, 2, THU).allowed);
    // The limits swap places in the new config; the keys still find their counters.
    reload(
        &mut c,
        &simple(vec![dv("request.path"), rate("ip", 10, 60)]),
        THU,
        &[],
    );
    let ip_again = slot(&mut c, 1, &keyless(ip(7)), THU);
    assert_eq!(c.consume(ip_again, 1, THU).remaining, 6);
    let dv_again = slot(&mut c, 0, &who, THU);
    assert_eq!(c.consume(dv_again, 1, THU).remaining, 7);
}

#[test]
fn reload_to_an_uncounted_value_leaves_old_connections_their_own_counter() {
    let mut c = Counters::new(&simple(vec![rate("msgs", 3, 60)]), 64);
    let s = slot(&mut c, 0, &app(0), THU);
    assert!(c.consume(s, 1, THU).allowed);
    // A maximum of 0 means no counter for new connections, not a closed door for old ones.
    let old = reload(&mut c, &simple(vec![rate("msgs", 0, 60)]), THU, &[s]);
    assert_eq!(c.slot(0, &app(0), THU), Lookup::Unlimited);
    assert!(c.consume(old[0], 1, THU).allowed);
    assert!(c.consume(old[0], 1, THU).allowed);
    assert!(!c.consume(old[0], 1, THU).allowed, "still 3 a minute");
}

// ---- the table's share rule and the keys of keyless callers --------------------------------

/// A limit keyed by a dynamic value only (`is-client: false`), as a header would feed it.
fn by_tenant(max: u64) -> LimitDef {
    let mut l = rate("by-tenant", max, 60);
    l.is_client = false;
    l.dynamic_value = Some(Template {
        parts: vec![Part::Var("request.headers.x-tenant".into())],
    });
    l
}

fn tenant(t: &str) -> Consumer<'_> {
    Consumer {
        dynamic: Some(t),
        ..keyless(ip(1))
    }
}

/// Live keys of limit 0 until the table refuses one; returns how many it took.
fn fill_tenants(c: &mut Counters, now: u64, tag: &str) -> usize {
    for i in 0.. {
        let t = format!("{tag}{i}");
        match c.slot(0, &tenant(&t), now) {
            Lookup::Counter(s) => assert!(c.consume(s, 1, now).allowed),
            Lookup::Full => return i,
            Lookup::Unlimited => panic!("by-tenant is counted"),
        }
    }
    unreachable!()
}

#[test]
fn one_limit_cannot_take_the_whole_table_from_another() {
    // 64 entries, two limits that use the table: 16 reserved for each, 32 shared.
    let mut c = Counters::new(&simple(vec![by_tenant(100), rate("msgs", 3, 60)]), 64);
    assert_eq!(
        fill_tenants(&mut c, THU, "t"),
        48,
        "its reserve and the shared half"
    );
    // Keyless callers of the other limit are still counted, in its reserve ...
    for i in 0..16 {
        let s = slot(&mut c, 1, &keyless(ip(i)), THU);
        for _ in 0..3 {
            assert!(c.consume(s, 1, THU).allowed);
        }
        assert!(!c.consume(s, 1, THU).allowed, "caller {i} is counted");
    }
    // ... which ends too: then it is refused rather than let through uncounted.
    assert_eq!(c.slot(1, &keyless(ip(16)), THU), Lookup::Full);
    // Known keys still count whatever the table holds.
    let t0 = slot(&mut c, 0, &tenant("t0"), THU);
    assert_eq!(c.consume(t0, 1, THU).remaining, 98);
}

#[test]
fn a_limit_freeing_shared_entries_lets_another_take_them() {
    let mut c = Counters::new(&simple(vec![by_tenant(100), count("conns", 1)]), 64);
    assert_eq!(fill_tenants(&mut c, THU, "t"), 48);
    // The next minute every tenant key has expired: the count limit can take its reserve
    // and all the shared half back.
    let mut held = Vec::new();
    for i in 0..48 {
        let s = slot(&mut c, 1, &keyless(ip(i)), THU + 60);
        assert!(c.inc(s, 1).allowed, "caller {i}");
        held.push(s);
    }
    assert_eq!(
        fill_tenants(&mut c, THU + 60, "u"),
        16,
        "only its reserve is left"
    );
    // Counts given back free their shared entries for the tenants again.
    for s in &held[..10] {
        c.dec(*s, 1);
    }
    assert_eq!(fill_tenants(&mut c, THU + 60, "v"), 10);
}

#[test]
fn expired_keys_of_a_limit_at_its_share_are_swept_back() {
    // Many limits: each one's reserve is a few entries scattered over the table, so a new key's
    // two probe windows seldom hold one of its own expired entries; the sweep finds them.
    let mut limits = vec![by_tenant(100), count("conns", 1)];
    for i in 0..198 {
        limits.push(rate(&format!("other{i}"), 1, 60));
    }
    let mut c = Counters::new(&simple(limits), 1024);
    let mut now = THU;
    // The count limit holds its reserve and the whole shared part, and never lets go.
    let mut i = 0u32;
    while let Lookup::Counter(s) = c.slot(1, &keyless(IpAddr::V4(Ipv4Addr::from(i))), now) {
        assert!(c.inc(s, 1).allowed);
        i += 1;
    }
    let reserve = fill_tenants(&mut c, now, "start");
    assert_eq!(reserve, 2, "1024 / 2 / 200 limits");
    for round in 0..8 {
        now += 60;
        assert_eq!(
            fill_tenants(&mut c, now, &format!("r{round}-")),
            reserve,
            "round {round}: its expired entries came back"
        );
    }
}

#[test]
fn keyless_ipv6_callers_are_keyed_by_their_64() {
    let mut c = Counters::new(&simple(vec![rate("r", 2, 60)]), 64);
    let v6 = |s: &str| keyless(s.parse::<IpAddr>().unwrap());
    let a = slot(&mut c, 0, &v6("2001:db8:1:2::1"), THU);
    // Another address of the same /64 is the same caller ...
    let same = slot(&mut c, 0, &v6("2001:db8:1:2:ffff:ffff:ffff:fffe"), THU);
    assert_eq!(a, same);
    assert!(c.consume(a, 1, THU).allowed);
    assert!(c.consume(same, 1, THU).allowed);
    assert!(!c.consume(same, 1, THU).allowed);
    // ... the next /64 is another.
    let next = slot(&mut c, 0, &v6("2001:db8:1:3::1"), THU);
    assert_ne!(a, next);
    assert!(c.consume(next, 1, THU).allowed);
    // IPv4 stays per address.
    let v4 = slot(&mut c, 0, &keyless(ip(1)), THU);
    assert_ne!(v4, slot(&mut c, 0, &keyless(ip(2)), THU));
    let keys: Vec<String> = c.snapshot(THU).into_iter().map(|v| v.key).collect();
    assert!(
        keys.contains(&"gateway:r:ip=2001:db8:1:2::/64".to_string()),
        "{keys:?}"
    );
    assert_eq!(c.reset("r", Some("gateway:r:ip=2001:db8:1:2::/64")), 1);
    assert!(c.consume(a, 1, THU).allowed, "reset by its /64");
}

/// The window each limit caches follows the time across boundaries, also when the clock goes
/// back, and two limits with different periods keep their own.
#[test]
fn cached_windows_follow_the_clock_both_ways_and_per_limit() {
    let mut c = Counters::new(
        &simple(vec![rate("minute", 2, 60), rate("hour", 3, 3_600)]),
        0,
    );
    let m = slot(&mut c, 0, &app(0), THU);
    let h = slot(&mut c, 1, &app(0), THU);
    let seen = |v: Verdict| (v.allowed, v.remaining, v.reset_in_secs);
    assert_eq!(seen(c.consume(m, 1, THU + 59)), (true, 1, 1));
    assert_eq!(seen(c.consume(h, 1, THU + 59)), (true, 2, 3_541));
    assert_eq!(seen(c.consume(m, 1, THU + 59)), (true, 0, 1));
    assert_eq!(seen(c.consume(m, 1, THU + 59)), (false, 0, 1));
    // The next minute, same hour.
    assert_eq!(seen(c.consume(m, 1, THU + 60)), (true, 1, 60));
    assert_eq!(seen(c.consume(h, 1, THU + 60)), (true, 1, 3_540));
    // The clock steps back a second: that minute's counter was replaced by the next one's.
    assert_eq!(seen(c.consume(m, 1, THU + 59)), (true, 1, 1));
    assert_eq!(seen(c.consume(h, 1, THU + 59)), (true, 0, 3_541));
    assert_eq!(seen(c.consume(m, 1, THU + 60)), (true, 1, 60));
    // Far ahead, and the last second of a window.
    assert_eq!(seen(c.consume(m, 2, THU + 3_599)), (true, 0, 1));
    assert_eq!(seen(c.consume(h, 1, THU + 3_599)), (false, 0, 1));
    assert_eq!(seen(c.consume(h, 1, THU + 3_600)), (true, 2, 3_600));
    // The counters were untouched by the cache: replenish (which computes the window itself)
    // gives back in the same window.
    c.replenish(h, 1, THU + 3_601);
    assert_eq!(seen(c.consume(h, 3, THU + 3_601)), (true, 0, 3_599));
}

/// A cell is one u64: the count saturates in its 40 bits without touching the window tag or
/// the warned bit, so the largest maximum the config accepts still refuses and still resets
/// with its window.
#[test]
fn one_word_cells_at_their_limits() {
    assert_eq!(COUNT_FULL, LIMIT_MAX + 1);
    let mut soft = rate("soft", LIMIT_MAX, 60);
    soft.hard = false;
    let mut c = Counters::new(
        &simple(vec![
            rate("hard", LIMIT_MAX, 60),
            soft,
            count("conns", LIMIT_MAX),
        ]),
        0,
    );
    let (h, s, n) = (
        slot(&mut c, 0, &app(0), THU),
        slot(&mut c, 1, &app(0), THU),
        slot(&mut c, 2, &app(0), THU),
    );
    // The hard maximum is reached exactly and then refuses.
    assert_eq!(c.consume(h, LIMIT_MAX - 1, THU).remaining, 1);
    assert_eq!(c.consume(h, 1, THU).remaining, 0);
    let v = c.consume(h, 1, THU);
    assert!(!v.allowed && v.exceeded && v.first_in_window);
    assert!(!c.consume(h, u64::MAX, THU).allowed);
    // A soft limit takes any weight: the count saturates above the maximum and stays there.
    let v = c.consume(s, u64::MAX, THU);
    assert!(v.allowed && v.exceeded && v.first_in_window);
    let v = c.consume(s, u64::MAX, THU + 1);
    assert!(
        v.allowed && v.exceeded && !v.first_in_window,
        "saturated, not wrapped"
    );
    assert_eq!(c.cells[s.cell as usize].value(), COUNT_FULL);
    assert_eq!(
        c.cells[s.cell as usize].window(),
        window_tag(window_of(THU, 60))
    );
    // Both start afresh in the next window, warned bit included.
    let v = c.consume(h, LIMIT_MAX, THU + 60);
    assert!(v.allowed && v.remaining == 0);
    let v = c.consume(s, 1, THU + 60);
    assert!(v.allowed && !v.exceeded && v.remaining == LIMIT_MAX - 1);
    // Window numbers wider than the tag: only their low bits are kept, and the count is intact.
    let far = (1u64 << 40) * 60;
    assert_eq!(c.consume(s, 5, far).remaining, LIMIT_MAX - 5);
    assert_eq!(c.consume(s, 5, far).remaining, LIMIT_MAX - 10);
    // A count at the largest maximum, given back to 0 and no further.
    assert_eq!(c.inc(n, LIMIT_MAX).remaining, 0);
    assert!(!c.inc(n, 1).allowed);
    c.dec(n, LIMIT_MAX);
    c.dec(n, 1);
    assert_eq!(c.inc(n, 1).remaining, LIMIT_MAX - 1);
}

#[test]
fn a_limit_over_its_share_sweeps_at_most_once_a_second() {
    // 4096 entries, two limits: the tenant limit takes its 1024 and the shared 2048, then is
    // over its share, and each refused insert would look for its expired entries again.
    let mut c = Counters::new(&simple(vec![by_tenant(100), count("conns", 1)]), 4096);
    assert_eq!(fill_tenants(&mut c, THU, "t"), 3072);
    let after_first = c.sweep_at;
    assert_eq!(after_first, 1024, "the refused insert swept once");
    for i in 0..10 {
        assert_eq!(c.slot(0, &tenant(&format!("more{i}")), THU), Lookup::Full);
    }
    assert_eq!(
        c.sweep_at, after_first,
        "no second sweep in the same second"
    );
    assert_eq!(c.slot(0, &tenant("later"), THU + 1), Lookup::Full);
    assert_eq!(c.sweep_at, 2048, "the next second sweeps again");
}
