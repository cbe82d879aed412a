//! `GET /metrics` on the admin listener after known traffic: the counters' values, and the whole
//! page read by a small strict parser of the Prometheus text format 0.0.4 written here (HELP and
//! TYPE lines, metric and label names, escaped label values, float values, one family per name,
//! no duplicate series, counters named `_total`, histogram buckets ascending and cumulative
//! with `+Inf` equal to `_count`).

use crate::common::admin::*;
use crate::common::client::http_request;
use crate::common::limits::*;
use crate::common::*;
use std::collections::{BTreeMap, HashSet};
use tungstenite::Message;

const SEED_API_ID: &str = "test-yahel-websocket-api:1.0.0";

/// One sample: name, labels (sorted), value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The parsed page: every sample, and the TYPE of each family.
#[derive(Debug, Default)]
struct Page {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Page {
    /// The value of the one sample with this name and exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
            .value
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if !ok {
                return Err(format!("bad value {s:?}"));
            }
            s.parse().map_err(|e| format!("bad value {s:?}: {e}"))
        }
    }
}

/// `{a="x",b="y"}` (the braces included) at the start of `s`; returns labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("unquoted label value")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// The family a sample belongs to: histogram samples carry a suffix.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram")
        {
            return base;
        }
    }
    name
}

/// Parses the whole page strictly; every rule broken is an error naming the line.
fn parse(text: &str) -> Result<Page, String> {
    if !text.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    let mut page = Page::default();
    let mut helps = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            let (kw, name, rest) = (parts.next(), parts.next(), parts.next());
            let Some(name) = name else { continue };
            if !matches!(kw, Some("HELP") | Some("TYPE")) {
                continue; // a plain comment
            }
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            if finished.contains(name) {
                return Err(at(format!("{name} comes back after other families")));
            }
            if current.as_deref() != Some(name) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                current = Some(name.to_string());
            }
            match kw {
                Some("HELP") => {
                    if !helps.insert(name.to_string()) {
                        return Err(at("second HELP".into()));
                    }
                    if rest.is_none_or(str::is_empty) {
                        return Err(at("HELP without text".into()));
                    }
                }
                _ => {
                    let t = rest.unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(at(format!("unknown type {t:?}")));
                    }
                    if page.types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(at("second TYPE".into()));
                    }
                    if page
                        .samples
                        .iter()
                        .any(|s| family_of(&s.name, &page.types) == name)
                    {
                        return Err(at("TYPE after samples".into()));
                    }
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|e| at(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &page.types).to_string();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at(format!("samples of {family} are not together")));
            }
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            current = Some(family.clone());
        }
        let key = format!("{name}{labels:?}");
        if !series.insert(key) {
            return Err(at("duplicate series".into()));
        }
        page.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_families(&page)?;
    Ok(page)
}

/// Naming conventions and histogram consistency.
fn check_families(page: &Page) -> Result<(), String> {
    for (name, t) in &page.types {
        let of: Vec<&Sample> = page
            .samples
            .iter()
            .filter(|s| family_of(&s.name, &page.types) == name)
            .collect();
        if of.is_empty() && t != "histogram" {
            // A family without series is allowed (an API-less model), but say so.
            println!("family {name} has no samples");
        }
        match t.as_str() {
            "counter" if !name.ends_with("_total") => {
                return Err(format!("counter {name} does not end in _total"));
            }
            "gauge" | "counter" => {
                if let Some(s) = of.iter().find(|s| s.name != *name) {
                    return Err(format!("{} in family {name}", s.name));
                }
                if t == "counter"
                    && let Some(s) = of.iter().find(|s| s.value < 0.0 || s.value.is_nan())
                {
                    return Err(format!("negative counter {s:?}"));
                }
            }
            "histogram" => {
                let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
                for s in &of {
                    let mut l = s.labels.clone();
                    l.remove("le");
                    groups.entry(format!("{l:?}")).or_default().push(s);
                }
                for (g, samples) in groups {
                    let mut last_le = f64::NEG_INFINITY;
                    let mut last_count = 0.0;
                    let mut inf = None;
                    for b in samples
                        .iter()
                        .filter(|s| s.name == format!("{name}_bucket"))
                    {
                        let le = parse_value(b.labels.get("le").ok_or("bucket without le")?)?;
                        if le <= last_le {
                            return Err(format!("{name}{g}: buckets not ascending at le={le}"));
                        }
                        if b.value < last_count {
                            return Err(format!("{name}{g}: bucket le={le} below the previous"));
                        }
                        last_le = le;
                        last_count = b.value;
                        if le == f64::INFINITY {
                            inf = Some(b.value);
                        }
                    }
                    let count = samples
                        .iter()
                        .find(|s| s.name == format!("{name}_count"))
                        .ok_or(format!("{name}{g}: no _count"))?
                        .value;
                    samples
                        .iter()
                        .find(|s| s.name == format!("{name}_sum"))
                        .ok_or(format!("{name}{g}: no _sum"))?;
                    match inf {
                        Some(v) if v == count => {}
                        Some(v) => return Err(format!("{name}{g}: +Inf {v} != _count {count}")),
                        None => return Err(format!("{name}{g}: no +Inf bucket")),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn scrape(gw: &Gateway) -> Page {
    let r = http_request(gw.addr("admin"), "GET", "/metrics", &[], b"").expect("GET /metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.body_text();
    parse(&text).unwrap_or_else(|e| panic!("/metrics is not valid exposition text: {e}\n{text}"))
}

/// Scrapes until `name{labels}` reads `want`.
fn expect_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)], want: f64) {
    let (page, ok) = poll(|| scrape(gw), |p| p.get(name, labels) == want);
    assert!(
        ok,
        "{name}{labels:?} is {}, expected {want}",
        page.get(name, labels)
    );
}

#[test]
fn parser_rejects_broken_pages() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a_total 1",                                       // no final newline
        "# TYPE a_total counter\na_total{x=1} 2\n",        // unquoted
        "# TYPE a_total counter\na_total{x=\"1\"} two\n",  // value
        "# TYPE a counter\na 1\n",                         // counter name
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // split family
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",    // duplicate
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE 1a gauge\n1a 1\n",          // name
        "# TYPE a gauge\na{x=\"\\q\"} 1\n", // escape
    ] {
        match parse(bad) {
            Ok(_) => panic!("accepted: {bad:?}"),
            Err(e) => println!("rejected: {e}"),
        }
    }
}

#[test]
fn metrics_count_known_websocket_traffic_and_parse_as_prometheus_text() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]);
    let gw = start_with_test_clock(&path, 3600);
    let api = [("api", SEED_API_ID)];
    let up = [("api", SEED_API_ID), ("direction", "client_to_backend")];
    let down = [("api", SEED_API_ID), ("direction", "backend_to_client")];

    let before = scrape(&gw);
    assert_eq!(before.get("wsgate_upgrades_total", &[]), 0.0);
    assert_eq!(before.get("wsgate_websocket_connections_open", &api), 0.0);
    assert_eq!(
        before.get("wsgate_backend_handshake_seconds_count", &[]),
        0.0
    );

    // One connection: three messages each way (the request limit's three a minute), closed.
    let (mut ws, _) = open_as(&gw, A);
    assert_eq!(
        scrape(&gw).get("wsgate_websocket_connections_open", &api),
        1.0
    );
    for i in 0..3 {
        roundtrip(&mut ws, Message::text(format!("message {i}")));
    }
    close_and_wait(&mut ws, 1000, "done");
    expect_metric(&gw, "wsgate_websocket_connections_open", &api, 0.0);

    // Two more, a third refused by the count limit, one upgrade to no API.
    let (mut a2, _) = open_as(&gw, A);
    let (_a3, _) = open_as(&gw, A);
    assert_eq!(refused(connect_as(&gw, A, &[])).status, 429);
    assert_eq!(expect_refused(ws_connect(&gw.url("/nowhere"), &[])).0, 404);
    // The fourth message of the minute closes its connection.
    a2.send(Message::text("one too many")).expect("send");
    assert_eq!(read_until_closed(&mut a2).code(), Some(1008));
    expect_metric(&gw, "wsgate_websocket_connections_open", &api, 1.0);

    let m = scrape(&gw);
    assert_eq!(m.get("wsgate_upgrades_total", &[]), 3.0);
    for (reason, want) in [
        ("limit", 1.0),
        ("rejected", 1.0),
        ("backend_error", 0.0),
        ("backend_refused", 0.0),
        ("aborted", 0.0),
    ] {
        assert_eq!(
            m.get("wsgate_upgrades_failed_total", &[("reason", reason)]),
            want,
            "{reason}"
        );
    }
    assert_eq!(m.get("wsgate_websocket_messages_total", &up), 3.0);
    assert_eq!(m.get("wsgate_websocket_messages_total", &down), 3.0);
    // "message N" is 9 bytes: 6 bytes of masked client header, 2 of backend header.
    assert!(m.get("wsgate_websocket_bytes_total", &up) >= 3.0 * 15.0);
    assert!(m.get("wsgate_websocket_bytes_total", &down) >= 3.0 * 11.0);
    fn limit(name: &str) -> [(&str, &str); 1] {
        [("limit", name)]
    }
    assert_eq!(
        m.get("wsgate_limit_rejections_total", &limit(COUNT_LIMIT)),
        1.0
    );
    assert_eq!(
        m.get("wsgate_limit_rejections_total", &limit(REQUEST_LIMIT)),
        1.0
    );
    assert_eq!(
        m.get("wsgate_limit_closes_total", &limit(REQUEST_LIMIT)),
        1.0
    );
    assert_eq!(m.get("wsgate_limit_closes_total", &limit(COUNT_LIMIT)), 0.0);
    assert_eq!(m.get("wsgate_backend_handshake_seconds_count", &[]), 3.0);
    assert!(m.get("wsgate_backend_handshake_seconds_sum", &[]) > 0.0);
    assert_eq!(m.get("wsgate_calls_total", &api), 0.0);
    assert!(m.get("wsgate_connections_accepted_total", &[]) >= 5.0);
    // One WebSocket open; the admin connection of the scrape is not counted.
    assert_eq!(m.get("wsgate_connections_open", &[]), 1.0);
    let rss = m.get("process_resident_memory_bytes", &[]);
    assert!(rss > 1_000_000.0, "resident memory {rss}");
    assert!(m.get("process_open_fds", &[]) >= 4.0);
    assert!(m.get("wsgate_buffer_size_bytes", &[]) >= 16_384.0);
    // The seed logs activity to stdout: one record per closed WebSocket and per refusal.
    let (_, logged) = poll(
        || scrape(&gw).get("wsgate_activity_log_records_total", &[]),
        |v| *v == 3.0,
    );
    assert!(logged, "{}", gw.stdout());
    assert_eq!(m.get("wsgate_activity_log_dropped_total", &[]), 0.0);
    println!(
        "rss {:.1} MiB, handshake sum {:.6} s, bytes up {} down {}",
        rss / 1048576.0,
        m.get("wsgate_backend_handshake_seconds_sum", &[]),
        m.get("wsgate_websocket_bytes_total", &up),
        m.get("wsgate_websocket_bytes_total", &down)
    );
}

#[test]
fn an_unreachable_backend_counts_as_a_backend_error() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let gw = Gateway::start(
        GatewayYaml::open(&format!("ws://127.0.0.1:{port}/")).write(&conf),
        &[],
    );
    let (status, _) = expect_refused(ws_connect(&gw.url("/open"), &[]));
    assert_eq!(status, 500);
    let m = scrape(&gw);
    assert_eq!(
        m.get("wsgate_backend_errors_total", &[("reason", "connect")]),
        1.0
    );
    assert_eq!(
        m.get(
            "wsgate_upgrades_failed_total",
            &[("reason", "backend_error")]
        ),
        1.0
    );
    assert_eq!(m.get("wsgate_upgrades_total", &[]), 0.0);
    assert_eq!(m.get("wsgate_backend_handshake_seconds_count", &[]), 0.0);
}

#[test]
fn counters_survive_a_reload_and_old_connections_count_on_their_api() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let path = write_conf(&conf, &seed_yaml(&backend.target_url()), &[], &[]);
    let gw = start_with_test_clock(&path, 3600);
    let api = [("api", SEED_API_ID)];
    let up = [("api", SEED_API_ID), ("direction", "client_to_backend")];
    let count = [("limit", COUNT_LIMIT)];
    let (mut a1, _) = open_as(&gw, A);
    let (_a2, _) = open_as(&gw, A);
    assert_eq!(refused(connect_as(&gw, A, &[])).status, 429);
    assert_eq!(
        scrape(&gw).get("wsgate_limit_rejections_total", &count),
        1.0
    );

    // A new config: three connections per client.
    let three = SEED_COUNT_BLOCK.replace("value: 2", "value: 3");
    write_seed_with(&conf, &[(SEED_COUNT_BLOCK, &three)], &[]);
    let r = http_request(gw.addr("admin"), "POST", "/reload", &[], b"").expect("POST /reload");
    assert_eq!(r.status, 200, "{}", r.body_text());

    let m = scrape(&gw);
    assert_eq!(m.get("wsgate_limit_rejections_total", &count), 1.0);
    assert_eq!(m.get("wsgate_websocket_connections_open", &api), 2.0);
    assert_eq!(m.get("wsgate_upgrades_total", &[]), 2.0);
    roundtrip(&mut a1, Message::text("after the reload"));
    let (_a3, _) = open_as(&gw, A);
    assert_eq!(refused(connect_as(&gw, A, &[])).status, 429);
    close_and_wait(&mut a1, 1000, "done");
    expect_metric(&gw, "wsgate_websocket_connections_open", &api, 2.0);
    let m = scrape(&gw);
    assert_eq!(m.get("wsgate_websocket_messages_total", &up), 1.0);
    assert_eq!(m.get("wsgate_limit_rejections_total", &count), 2.0);
    assert_eq!(m.get("wsgate_upgrades_total", &[]), 3.0);
    assert_eq!(
        m.samples
            .iter()
            .filter(|s| s.name == "wsgate_websocket_connections_open")
            .count(),
        1,
        "one row per API, however many configs"
    );
}
