//! Numbers that would break the running gateway are load errors with `file:line`: every bound,
//! the policies' `timeout`, a limit's `weight`. And a gateway with many listeners accepts on
//! every one of them.

use crate::common::conf;
use crate::common::limits::write_seed_with;
use crate::common::*;
use wsgate::config::{Diagnostic, Overrides, Severity, load};

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

fn load_errors(path: &std::path::Path) -> Vec<Diagnostic> {
    match load(path, &Overrides::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(ds) => ds
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
    }
}

/// Exactly one error, in `file` at the line holding `needle`, naming `field`, with `words`; its
/// text starts with `file:line:` as `wsgate check` prints it.
fn expect_one(
    errors: &[Diagnostic],
    dir: &TempConf,
    file: &str,
    needle: &str,
    field: &str,
    words: &[&str],
) {
    let text = std::fs::read_to_string(dir.file(file)).unwrap();
    let line = line_of(&text, needle);
    let all: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    let [d] = errors else {
        panic!("expected one error for {needle:?}, got {all:#?}");
    };
    let shown = d.to_string();
    assert!(
        shown.contains(&format!("{file}:{line}:")),
        "{shown} is not at {file}:{line}"
    );
    assert_eq!(d.field, field, "{shown}");
    for w in words {
        assert!(shown.contains(w), "{w:?} not in {shown}");
    }
}

fn bound_error(key: &str, value: &str, words: &[&str]) {
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let path = GatewayYaml::open("ws://127.0.0.1:9/")
        .bound(key, value)
        .write(&conf);
    let errors = load_errors(&path);
    expect_one(
        &errors,
        &conf,
        "gateway.yaml",
        &format!("  {key}: {value}"),
        &format!("bounds.{key}"),
        words,
    );
}

#[test]
fn bounds_out_of_range() {
    bound_error("max-connections", "0", &["at least 1"]);
    bound_error("max-connections", "16777217", &["too large", "16777216"]);
    bound_error("max-connections", "18446744073709551615", &["too large"]);
    bound_error("max-message-size", "0", &["at least 1"]);
    // The decoder keeps the limit in 32 bits.
    bound_error("max-message-size", "2049MiB", &["too large", "2GiB"]);
    // Flow offsets are u32: 4 GiB wrapped them.
    bound_error("buffer-bound", "4GiB", &["too large", "1GiB"]);
    bound_error("socket-buffer", "2GiB", &["too large", "1GiB"]);
    bound_error("socket-buffer", "1KiB", &["at least 4KiB"]);
    bound_error("idle-timeout", "169h", &["too long", "168h"]);
    bound_error("idle-timeout", "0", &["longer than 0"]);
    for key in [
        "header-timeout",
        "handshake-timeout",
        "close-grace",
        "shutdown-grace",
    ] {
        bound_error(key, "25h", &["too long", "24h"]);
    }
    bound_error("header-timeout", "0s", &["longer than 0"]);
    bound_error("idle-timeout", "99999999999999999999h", &["not a duration"]);
}

#[test]
fn bounds_at_the_edges_of_their_ranges_load() {
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let path = GatewayYaml::open("ws://127.0.0.1:9/")
        .bound("max-connections", "16777216")
        .bound("max-message-size", "2GiB")
        .bound("buffer-bound", "1GiB")
        .bound("socket-buffer", "1GiB")
        .bound("idle-timeout", "168h")
        .bound("header-timeout", "24h")
        .bound("close-grace", "0")
        .bound("shutdown-grace", "24h")
        .write(&conf);
    if let Err(ds) = load(&path, &Overrides::default()) {
        panic!(
            "{:#?}",
            ds.iter().map(|d| d.to_string()).collect::<Vec<_>>()
        );
    }
}

/// The open API with its websocket-upgrade's `timeout: 60` replaced by `timeout: VALUE`, or
/// with an invoke in its place.
fn policy_timeout(value: &str, invoke: bool) -> (TempConf, std::path::PathBuf) {
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let api = conf.file(conf::OPEN_API);
    let mut text = std::fs::read_to_string(&api).unwrap();
    text = text.replace("timeout: 60", &format!("timeout: {value}"));
    if invoke {
        text = text
            .replace("- websocket-upgrade:", "- invoke:")
            .replace(
                "target-url: $(target-url)",
                "target-url: http://127.0.0.1:9/",
            )
            .replace("  - ws\n  - wss\n", "  - http\n");
    }
    std::fs::write(&api, text).unwrap();
    let path = GatewayYaml::open("ws://127.0.0.1:9/").write(&conf);
    (conf, path)
}

#[test]
fn the_timeout_that_panicked_at_the_first_request_is_a_load_error() {
    for invoke in [false, true] {
        let policy = if invoke {
            "invoke"
        } else {
            "websocket-upgrade"
        };
        for value in ["18446744073709551615", "86401", "0"] {
            let (conf, path) = policy_timeout(value, invoke);
            let errors: Vec<Diagnostic> = load_errors(&path)
                .into_iter()
                .filter(|d| d.field.ends_with("timeout"))
                .collect();
            expect_one(
                &errors,
                &conf,
                conf::OPEN_API,
                &format!("timeout: {value}"),
                &format!("x-ibm-configuration.assembly.execute[0].{policy}.timeout"),
                &["1 to 86400 seconds"],
            );
        }
    }
    // Through the binary: `wsgate check` refuses it with exit 2 instead of a gateway that
    // loads and then panics.
    let (_conf, path) = policy_timeout("18446744073709551615", false);
    let out = run_wsgate(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("timeout 18446744073709551615 is out of range"),
        "{out:?}"
    );
    // A day is the longest.
    let (_conf, path) = policy_timeout("86400", true);
    assert!(load(&path, &Overrides::default()).is_ok());
}

#[test]
fn a_weight_too_large_for_a_counter_step() {
    let conf = TempConf::new();
    write_seed_with(
        &conf,
        &[(
            "- value: 3/1minute",
            "- value: 3/1minute\n          weight: 4294967296",
        )],
        &[],
    );
    let path = GatewayYaml::seed("ws://127.0.0.1:9/").write(&conf);
    let errors = load_errors(&path);
    expect_one(
        &errors,
        &conf,
        conf::SEED_PRODUCT,
        "weight: 4294967296",
        "plans.default-plan.assembly-rate-limits.websocket-request-ratelimit[0].weight",
        &["too large", "4294967295"],
    );
}

#[test]
fn twenty_listeners_all_accept() {
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let mut y = GatewayYaml::open("ws://127.0.0.1:9/");
    y.listeners = vec!["127.0.0.1:0".to_string(); 20];
    let gw = Gateway::start(y.write(&conf), &[]);
    let addrs = gw.addrs("plain");
    assert_eq!(addrs.len(), 20, "{:?}", gw.listeners());
    for a in addrs {
        let r = http_request(a, "GET", "/nothing-here", &[], b"")
            .unwrap_or_else(|e| panic!("listener {a}: {e}"));
        assert_eq!(r.status, 404, "listener {a}: {r:?}");
    }
    // The admin listener comes after them and still answers.
    assert_eq!(
        http_request(gw.addr("admin"), "GET", "/healthz", &[], b"")
            .unwrap()
            .status,
        200
    );
}
