//! The admin listener's status page (`GET /`) and its JSON (`GET /status`), over real sockets:
//! two WebSockets of the seed's demo application hold its count limit and a third is refused
//! with 429; the JSON says so, and headless Chromium, running the page's own script, renders
//! `2 / 2` for that application and the one 429. With a token, the page and its JSON need it
//! (Bearer, or Basic so that a browser can log in), and the 401 offers both challenges.

use crate::common::admin::poll;
use crate::common::browser::{chromium, dump_dom, row, screenshot};
use crate::common::limits::*;
use crate::common::*;
use base64::prelude::*;
use std::os::unix::fs::PermissionsExt;

const TOKEN: &str = "page-token-7";

/// The seed gateway (admin with `token` when given), two WebSockets of application A and a
/// third refused with 429. The sockets stay open as long as the value lives.
struct Scene {
    _conf: TempConf,
    gw: Gateway,
    _backend: EchoBackend,
    _open: Vec<Ws>,
}

fn scene(token: Option<&str>) -> Scene {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    let mut yaml = seed_yaml(&backend.target_url());
    if let Some(t) = token {
        let file = conf.write("admin.token", &format!("{t}\n"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        yaml = yaml.admin(false);
        yaml.extra = format!(
            "admin: {{address: \"127.0.0.1:0\", token-file: \"{}\"}}\n",
            file.display()
        );
    }
    let path = write_conf(&conf, &yaml, &[], &[]);
    let gw = Gateway::start(&path, &[]);
    let (mut a1, _) = open_as(&gw, A);
    let (a2, _) = open_as(&gw, A);
    roundtrip(&mut a1, tungstenite::Message::text("hello"));
    let refused = connect_as(&gw, A, &[]).expect_err("a third WebSocket of A");
    assert_eq!(http_error(&refused).map(|(s, _)| s), Some(429), "{refused}");
    Scene {
        _conf: conf,
        gw,
        _backend: backend,
        _open: vec![a1, a2],
    }
}

fn basic(token: &str) -> String {
    format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("operator:{token}"))
    )
}

fn get(gw: &Gateway, path: &str, auth: Option<&str>) -> HttpResponse {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    http_request(gw.addr("admin"), "GET", path, &headers, b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn status(gw: &Gateway, auth: Option<&str>) -> serde_yaml::Value {
    let r = get(gw, "/status", auth);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    serde_yaml::from_str(&r.body_text()).unwrap_or_else(|e| panic!("{e}: {}", r.body_text()))
}

/// The entry of `list` whose `field` is `value`.
fn entry<'a>(list: &'a serde_yaml::Value, field: &str, value: &str) -> &'a serde_yaml::Value {
    list.as_sequence()
        .and_then(|l| {
            l.iter().find(|e| match &e[field] {
                serde_yaml::Value::String(s) => s == value,
                serde_yaml::Value::Number(n) => n.to_string() == value,
                _ => false,
            })
        })
        .unwrap_or_else(|| panic!("no {field}={value} in {list:?}"))
}

#[test]
fn the_json_shows_who_holds_the_count_limit_and_the_refusal() {
    let s = scene(None);
    let v = status(&s.gw, None);
    let limit = entry(&v["limits"], "name", COUNT_LIMIT);
    assert_eq!(limit["kind"].as_str(), Some("Count"), "{limit:?}");
    assert_eq!(limit["rejections"]["total"].as_u64(), Some(1), "{limit:?}");
    assert_eq!(limit["rejections"]["minute"].as_u64(), Some(1), "{limit:?}");
    let key = &limit["keys"][0];
    assert_eq!(key["by"].as_str(), Some("app"), "{key:?}");
    assert_eq!(key["who"].as_str(), Some("demo-app"), "{key:?}");
    assert_eq!(
        (key["value"].as_u64(), key["max"].as_u64()),
        (Some(2), Some(2))
    );
    let refusal = entry(&v["refusals"], "code", "429");
    assert_eq!(refusal["total"].as_u64(), Some(1), "{v:?}");
    assert_eq!(v["refusals"].as_sequence().map(Vec::len), Some(1), "{v:?}");
    assert_eq!(v["upgrades_failed"]["limit"].as_u64(), Some(1), "{v:?}");
    assert_eq!(v["totals"]["websockets"].as_u64(), Some(2), "{v:?}");
    assert_eq!(v["totals"]["messages"][0].as_u64(), Some(1), "{v:?}");
    let api = entry(&v["apis"], "api", "test-yahel-websocket-api:1.0.0");
    assert_eq!(api["websockets"].as_u64(), Some(2), "{api:?}");
    let plain = entry(&v["listeners"], "kind", "plain");
    assert_eq!(plain["websockets"].as_u64(), Some(2), "{plain:?}");
    assert_eq!(plain["connections"].as_u64(), Some(2), "{plain:?}");
    let body = get(&s.gw, "/status", None).body_text();
    assert!(!body.contains(A), "a client id in the status: {body}");

    let page = get(&s.gw, "/", None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("connect-src 'self'"), "{page:?}");
    assert!(csp.contains("frame-ancestors 'none'"), "{page:?}");
    assert_eq!(
        get(&s.gw, "/status", None).header("cache-control"),
        Some("no-store")
    );
}

/// The browser runs the page's script against the gateway and shows, for application A on the
/// seed's count limit, `2 / 2` marked full, and the one 429. `WSGATE_STATUS_SCREENSHOT=FILE`
/// also writes a screenshot of it there (the README's picture).
#[test]
fn a_browser_renders_two_of_two_for_the_application_and_the_429() {
    let Some(browser) = chromium() else {
        return;
    };
    let s = scene(None);
    let url = format!("http://{}/", s.gw.addr("admin"));
    let dom = dump_dom(&browser, &url);
    let held = row(
        &dom,
        &format!("data-limit=\"{COUNT_LIMIT}\" data-who=\"demo-app\""),
    )
    .unwrap_or_else(|| panic!("no row of demo-app on {COUNT_LIMIT}:\n{dom}"));
    assert!(held.contains(">2 / 2<"), "{held}");
    assert!(held.contains(">FULL<"), "{held}");
    let refused = row(&dom, "data-code=\"429\"").unwrap_or_else(|| panic!("no 429 row:\n{dom}"));
    assert!(
        refused.contains("<td class=\"n\">1</td><td class=\"n\">1</td>"),
        "one 429 in the last minute and since start: {refused}"
    );
    assert!(
        dom.contains("<div class=\"alert\" id=\"alert\"></div>"),
        "{dom}"
    );
    if let Some(png) = std::env::var_os("WSGATE_STATUS_SCREENSHOT") {
        screenshot(&browser, &url, std::path::Path::new(&png), 1280, 1400);
    }
}

#[test]
fn with_a_token_the_page_and_its_json_need_it() {
    let s = scene(Some(TOKEN));
    for path in ["/", "/status"] {
        let r = get(&s.gw, path, None);
        assert_eq!(r.status, 401, "{path}: {r:?}");
        let challenges: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(challenges.iter().any(|c| c.starts_with("Bearer ")), "{r:?}");
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic realm=")),
            "a browser needs a Basic challenge to show its login dialog: {r:?}"
        );
        assert_eq!(get(&s.gw, path, Some(&basic("wrong"))).status, 401);
        assert_eq!(get(&s.gw, path, Some(&basic(TOKEN))).status, 200);
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(get(&s.gw, path, Some(&bearer)).status, 200);
    }
    let v = status(&s.gw, Some(&basic(TOKEN)));
    let limit = entry(&v["limits"], "name", COUNT_LIMIT);
    assert_eq!(limit["keys"][0]["value"].as_u64(), Some(2), "{v:?}");

    let Some(browser) = chromium() else {
        return;
    };
    let admin = s.gw.addr("admin");
    // Without credentials the browser gets the 401 and nothing of the page.
    let dom = dump_dom(&browser, &format!("http://{admin}/"));
    assert!(!dom.contains("id=\"cards\""), "{dom}");
    // With the token as the password of the address, the page loads and so does its JSON.
    let dom = dump_dom(&browser, &format!("http://operator:{TOKEN}@{admin}/"));
    let held = row(
        &dom,
        &format!("data-limit=\"{COUNT_LIMIT}\" data-who=\"demo-app\""),
    )
    .unwrap_or_else(|| panic!("the page did not render with the login:\n{dom}"));
    assert!(held.contains(">2 / 2<"), "{held}");
}

/// The JSON is polled only until the state is there; then the page is judged on it.
#[test]
fn a_closed_websocket_gives_its_place_back_on_the_page() {
    let mut s = scene(None);
    let mut ws = s._open.pop().expect("a WebSocket");
    close_and_wait(&mut ws, 1000, "");
    let (v, ok) = poll(
        || status(&s.gw, None),
        |v| entry(&v["limits"], "name", COUNT_LIMIT)["keys"][0]["value"].as_u64() == Some(1),
    );
    assert!(ok, "{v:?}");
    assert_eq!(v["totals"]["websockets"].as_u64(), Some(1), "{v:?}");
    let plain = entry(&v["listeners"], "kind", "plain");
    assert_eq!(plain["websockets"].as_u64(), Some(1), "{plain:?}");
    assert_eq!(plain["connections"].as_u64(), Some(1), "{plain:?}");
}

/// A reload that fails shows with its first error, and the config in use stays the one loaded
/// before; the next good reload clears it.
#[test]
fn a_failed_reload_shows_with_its_first_error() {
    let s = scene(None);
    let before = status(&s.gw, None);
    assert!(before["config"]["reload_failed"].is_null(), "{before:?}");
    let file = before["config"]["file"]
        .as_str()
        .expect("config file")
        .to_string();
    let good = std::fs::read_to_string(&file).expect("read gateway.yaml");
    std::fs::write(&file, "listeners: [\n").expect("break gateway.yaml");
    let reload = |gw: &Gateway| {
        http_request(gw.addr("admin"), "POST", "/reload", &[], b"")
            .expect("POST /reload")
            .status
    };
    assert_eq!(reload(&s.gw), 422);
    let v = status(&s.gw, None);
    let failed = &v["config"]["reload_failed"];
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("gateway.yaml"),
        "the first error names the file: {v:?}"
    );
    assert_eq!(v["config"]["reloads"].as_u64(), Some(1), "{v:?}");
    assert_eq!(v["config"]["loaded"], before["config"]["loaded"], "{v:?}");
    std::fs::write(&file, good).expect("mend gateway.yaml");
    assert_eq!(reload(&s.gw), 200);
    let v = status(&s.gw, None);
    assert!(v["config"]["reload_failed"].is_null(), "{v:?}");
    assert_eq!(v["config"]["reloads"].as_u64(), Some(2), "{v:?}");
}

/// A `/status` larger than one pool buffer (hundreds of listeners, the smallest buffer) comes
/// whole: as many bytes as its Content-Length says, and JSON that lists every listener.
#[test]
fn a_status_larger_than_one_buffer_comes_whole() {
    const LISTENERS: usize = 400;
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let mut y = GatewayYaml::open("ws://127.0.0.1:9/").bound("buffer-bound", "1KiB");
    y.listeners = vec!["127.0.0.1:0".to_string(); LISTENERS];
    let gw = Gateway::start(y.write(&conf), &[]);
    let r = get(&gw, "/status", None);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let length: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(r.body.len(), length);
    assert!(
        length > wsgate::http::head::MIN_BUFFER,
        "only {length} bytes: the answer fits one buffer and proves nothing"
    );
    let v: serde_yaml::Value =
        serde_yaml::from_str(&r.body_text()).unwrap_or_else(|e| panic!("{e}: {}", r.body_text()));
    let plain = v["listeners"]
        .as_sequence()
        .expect("listeners")
        .iter()
        .filter(|l| l["kind"].as_str() == Some("plain"))
        .count();
    assert_eq!(plain, LISTENERS);
}
