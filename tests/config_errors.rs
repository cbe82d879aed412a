//! Bad configurations: each fixture under `tests/fixtures/config/` must be reported with the
//! right file, line, field and words, and one run must report every error it holds.

use std::path::PathBuf;
use wsgate::config::{Diagnostic, Loaded, Overrides, Severity, load};

fn path(fixture: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(fixture)
        .join("gateway.yaml")
}

fn show(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn errors(fixture: &str) -> Vec<Diagnostic> {
    match load(&path(fixture), &Overrides::default()) {
        Ok(l) => panic!("{fixture} loaded; warnings:\n{}", show(&l.warnings)),
        Err(ds) => ds,
    }
}

fn loads(fixture: &str) -> Loaded {
    match load(&path(fixture), &Overrides::default()) {
        Ok(l) => l,
        Err(ds) => panic!("{fixture} failed:\n{}", show(&ds)),
    }
}

/// Finds the one diagnostic in `file` at `line` and checks its severity, field and words.
fn expect(ds: &[Diagnostic], sev: Severity, file: &str, line: usize, field: &str, words: &[&str]) {
    let found: Vec<&Diagnostic> = ds
        .iter()
        .filter(|d| d.file.file_name().is_some_and(|f| f == file) && d.line == line)
        .collect();
    let [d] = found.as_slice() else {
        panic!(
            "expected one diagnostic at {file}:{line}, got:\n{}",
            show(ds)
        );
    };
    assert_eq!(d.severity, sev, "{d}");
    assert_eq!(d.field, field, "{d}");
    for w in words {
        assert!(d.message.contains(w), "{w:?} not in: {d}");
    }
}

fn only_error(fixture: &str, file: &str, line: usize, field: &str, words: &[&str]) {
    let ds = errors(fixture);
    let errs: Vec<Diagnostic> = ds
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    assert_eq!(errs.len(), 1, "{fixture}:\n{}", show(&ds));
    expect(&ds, Severity::Error, file, line, field, words);
}

#[test]
fn the_valid_fixture_loads_cleanly() {
    let l = loads("valid");
    assert!(l.warnings.is_empty(), "{}", show(&l.warnings));
    assert_eq!(l.model.apis.len(), 1);
    assert_eq!(l.model.applications.len(), 1);
}

#[test]
fn rate_with_an_unknown_unit() {
    only_error(
        "rate-fortnight",
        "product.yaml",
        10,
        "plans.gold.assembly-rate-limits.msgs[0].value",
        &[
            "'fortnight'",
            "3/1fortnight",
            "second, minute, hour, day or week",
        ],
    );
}

#[test]
fn count_limit_that_is_not_a_number() {
    only_error(
        "count-two",
        "product.yaml",
        13,
        "plans.gold.assembly-count-limits.conns[0].value",
        &["'two' is not a limit value", "whole number"],
    );
}

#[test]
fn unsupported_policy() {
    only_error(
        "unknown-policy",
        "api.yaml",
        21,
        "x-ibm-configuration.assembly.execute[0].gatewayscript",
        &[
            "policy 'gatewayscript' is not supported",
            "ratelimit, websocket-upgrade",
        ],
    );
}

#[test]
fn product_ref_to_a_missing_file() {
    only_error(
        "missing-ref",
        "product.yaml",
        16,
        "apis.ws.$ref",
        &["no-such-api.yaml", "does not exist"],
    );
}

#[test]
fn application_subscribed_to_a_missing_plan() {
    only_error(
        "unknown-plan",
        "gateway.yaml",
        6,
        "applications[0].plan",
        &[
            "plan 'platinum'",
            "does not exist in product p:1.0.0",
            "plans: gold",
        ],
    );
}

#[test]
fn undefined_limit_is_a_warning() {
    let l = loads("undefined-limit");
    assert_eq!(l.warnings.len(), 1, "{}", show(&l.warnings));
    expect(
        &l.warnings,
        Severity::Warning,
        "api.yaml",
        36,
        "x-ibm-configuration.assembly.execute[1].websocket-upgrade.request-assembly.execute[0]\
         .ratelimit.rate-limit[0].name",
        &["'msgs-per-minute'", "skipped"],
    );
}

#[test]
fn yaml_that_is_not_yaml() {
    only_error(
        "not-yaml",
        "product.yaml",
        10,
        "",
        &["not valid YAML", "flow sequence"],
    );
}

#[test]
fn duplicate_base_path() {
    only_error(
        "duplicate-base-path",
        "api2.yaml",
        6,
        "basePath",
        &[
            "base path '/ws' is already used by API ws:1.0.0",
            "api.yaml",
        ],
    );
}

#[test]
fn listener_address_that_does_not_parse() {
    only_error(
        "bad-listener",
        "gateway.yaml",
        2,
        "listeners[0].address",
        &["'localhost:80800' is not a socket address", "IP:PORT"],
    );
}

#[test]
fn burst_limit_with_an_hour_unit() {
    only_error(
        "burst-hour",
        "product.yaml",
        9,
        "plans.gold.burst-limits.spike.value",
        &["burst limits take only second or minute units", "'hour'"],
    );
}

#[test]
fn bad_duration_in_bounds() {
    only_error(
        "bad-duration",
        "gateway.yaml",
        9,
        "bounds.idle-timeout",
        &["'fortnights'", "500ms, 10s, 5m, 1h"],
    );
}

#[test]
fn bad_over_limit_action() {
    only_error(
        "bad-over-limit",
        "gateway.yaml",
        8,
        "bounds.over-limit",
        &["'ignore'", "close", "drop"],
    );
}

#[test]
fn socket_buffer_below_what_the_kernel_takes() {
    only_error(
        "small-socket-buffer",
        "gateway.yaml",
        8,
        "bounds.socket-buffer",
        &["0 (the kernel's autotuning) or at least 4KiB"],
    );
}

#[test]
fn limit_key_table_above_its_maximum() {
    only_error(
        "too-many-limit-keys",
        "gateway.yaml",
        8,
        "bounds.max-limit-keys",
        &["too large: at most 16777216"],
    );
}

#[test]
fn no_control_frames_at_all_is_not_a_bound() {
    only_error(
        "zero-control-frames",
        "gateway.yaml",
        8,
        "bounds.max-control-frames",
        &["at least 1"],
    );
}

#[test]
fn no_pending_connection_per_address_is_refused() {
    only_error(
        "zero-pending-per-address",
        "gateway.yaml",
        8,
        "bounds.max-pending-per-address",
        &["must be at least 1"],
    );
}

#[test]
fn bare_integer_in_a_rate() {
    only_error(
        "bare-rate",
        "product.yaml",
        10,
        "plans.gold.assembly-rate-limits.msgs[0].value",
        &["'3' has no time unit", "only allowed for count limits"],
    );
}

#[test]
fn target_url_with_an_unsupported_scheme_names_where_the_value_comes_from() {
    only_error(
        "bad-target-scheme",
        "api.yaml",
        28,
        "x-ibm-configuration.assembly.execute[1].websocket-upgrade.target-url",
        &[
            "resolves to 'ftp://127.0.0.1:21/'",
            "scheme 'ftp'",
            "catalog.properties in the gateway config",
        ],
    );
}

#[test]
fn duplicate_client_id() {
    only_error(
        "duplicate-client-id",
        "gateway.yaml",
        8,
        "applications[1].client-id",
        &["client id 'cid' is already used by application 'app'"],
    );
}

#[test]
fn three_errors_in_one_run() {
    let ds = errors("three-errors");
    let n = ds.iter().filter(|d| d.severity == Severity::Error).count();
    assert_eq!(n, 3, "{}", show(&ds));
    expect(
        &ds,
        Severity::Error,
        "gateway.yaml",
        8,
        "bounds.buffer-bound",
        &["'huge' is not a size"],
    );
    expect(
        &ds,
        Severity::Error,
        "product.yaml",
        13,
        "plans.gold.assembly-count-limits.conns[0].value",
        &["'2/1minute' is a rate", "count limits take a whole number"],
    );
    expect(
        &ds,
        Severity::Error,
        "gateway.yaml",
        6,
        "applications[0].plan",
        &["plan 'silver'"],
    );
}

#[test]
fn warnings_do_not_stop_the_load() {
    let l = loads("warnings");
    let w = &l.warnings;
    assert_eq!(w.len(), 3, "{}", show(w));
    let up = "x-ibm-configuration.assembly.execute[0].websocket-upgrade";
    expect(
        w,
        Severity::Warning,
        "api.yaml",
        15,
        &format!("{up}.target-url"),
        &["'backend-host' is neither an API property"],
    );
    expect(
        w,
        Severity::Warning,
        "api.yaml",
        16,
        &format!("{up}.shiny-new-option"),
        &["unknown key 'shiny-new-option' is ignored"],
    );
    expect(
        w,
        Severity::Warning,
        "api.yaml",
        13,
        up,
        &["parameter-control is missing", "no query parameters"],
    );
}

#[test]
fn display_format() {
    let ds = errors("bad-over-limit");
    let text = ds[0].to_string();
    assert!(
        text.ends_with(
            "bad-over-limit/gateway.yaml:8:15: error: bounds.over-limit: 'ignore' is not an \
             over-limit action: expected close (close the connection) or drop (discard the \
             message)"
        ),
        "{text}"
    );
    let missing = errors("no-such-fixture");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].line, 0);
    assert!(
        missing[0].to_string().contains("gateway.yaml: error: file"),
        "{}",
        missing[0]
    );
}

/// Truncated and mangled copies of every file of the `full` fixture: the loader may reject
/// them, but it must never panic, and every error names a file.
#[test]
fn mangled_files_never_panic() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/full");
    let tmp = std::env::temp_dir().join(format!("wsgate-config-mangle-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let files: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for f in &files {
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    let mut runs = 0;
    for f in files.iter().filter(|f| f.ends_with(".yaml")) {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut variants: Vec<String> = text
            .char_indices()
            .map(|(i, _)| i)
            .filter(|i| i % 13 == 0)
            .map(|i| text[..i].to_string())
            .collect();
        for i in 0..lines.len() {
            let mut without = lines.clone();
            without.remove(i);
            variants.push(without.join("\n"));
            let mut broken = lines.clone();
            broken[i] = "  x: [";
            variants.push(broken.join("\n"));
            let mut shifted = lines.clone();
            let moved = format!("  {}", lines[i]);
            shifted[i] = &moved;
            variants.push(shifted.join("\n"));
        }
        for v in variants {
            std::fs::write(tmp.join(f), v).unwrap();
            if let Err(ds) = load(&tmp.join("gateway.yaml"), &Overrides::default()) {
                assert!(!ds.is_empty());
                assert!(ds.iter().all(|d| !d.file.as_os_str().is_empty()));
            }
            runs += 1;
        }
        std::fs::copy(src.join(f), tmp.join(f)).unwrap();
    }
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(runs > 500, "{runs}");
}

#[test]
fn api_that_no_listener_serves_is_a_warning() {
    let l = loads("unreachable");
    assert_eq!(l.warnings.len(), 1, "{}", show(&l.warnings));
    expect(
        &l.warnings,
        Severity::Warning,
        "api.yaml",
        7,
        "schemes",
        &["https/wss", "tls-offloaded: true", "not reachable"],
    );
}

#[test]
fn echo_backend_on_a_listener_address() {
    only_error(
        "address-clash",
        "gateway.yaml",
        8,
        "echo-backend",
        &["127.0.0.1:8080 is already used", "needs its own address"],
    );
}

#[test]
fn too_small_buffer_bound_is_raised_with_a_warning() {
    let l = loads("small-buffer");
    assert_eq!(l.warnings.len(), 1, "{}", show(&l.warnings));
    expect(
        &l.warnings,
        Severity::Warning,
        "gateway.yaml",
        8,
        "bounds.buffer-bound",
        &["buffer-bound 4096 is below", "request head"],
    );
    assert_eq!(
        l.model.settings.bounds.buffer_bound,
        wsgate::http::head::MIN_BUFFER
    );
}

#[test]
fn validate_and_parse_compile_into_the_message_flows_in_order() {
    use wsgate::model::PolicyKind;
    let l = loads("validate");
    assert!(l.warnings.is_empty(), "{}", show(&l.warnings));
    let PolicyKind::WebSocketUpgrade(w) = &l.model.apis[0].assembly.execute[0].kind else {
        panic!("expected the websocket-upgrade first");
    };
    let [validate, limit] = w.request_assembly.as_slice() else {
        panic!("expected validate then ratelimit");
    };
    let PolicyKind::Validate(check) = &validate.kind else {
        panic!("expected validate first");
    };
    assert!(matches!(limit.kind, PolicyKind::RateLimit(_)));
    assert_eq!(validate.title, "validate subscriptions");
    assert_eq!(check.definition, "#/definitions/Subscribe");
    assert_eq!(
        check.check(br#"{"action":"subscribe","symbol":"IBM"}"#, true),
        Ok(())
    );
    let f = check
        .check(br#"{"action":"subscribe","symbol":"ibm"}"#, true)
        .unwrap_err();
    assert_eq!(f.reason(), "validate: pattern at /symbol");
    let [parse] = w.response_assembly.as_slice() else {
        panic!("expected one parse");
    };
    let PolicyKind::Parse(p) = &parse.kind else {
        panic!("expected parse");
    };
    assert_eq!(p.check(b"[1,2]", true), Ok(()));
    assert!(p.check(b"[1,2", true).is_err());
}

#[test]
fn validate_names_an_unknown_definition() {
    only_error(
        "validate-unknown-definition",
        "api.yaml",
        46,
        "x-ibm-configuration.assembly.execute[0].websocket-upgrade.request-assembly.execute[0].validate.definition",
        &[
            "definition 'Subscription' is not in the API's definitions",
            "Subscribe, Symbol",
        ],
    );
}

#[test]
fn validate_refuses_a_ref_cycle_without_progress() {
    only_error(
        "validate-cycle",
        "api.yaml",
        23,
        "definitions.Symbol",
        &["$ref cycle"],
    );
}

#[test]
fn validate_refuses_an_unsupported_keyword() {
    only_error(
        "validate-keyword",
        "api.yaml",
        26,
        "definitions.Symbol.multipleOf",
        &["'multipleOf' is not supported"],
    );
}

#[test]
fn validate_accepts_the_gateway_versions_only() {
    only_error(
        "validate-version",
        "api.yaml",
        43,
        "x-ibm-configuration.assembly.execute[0].websocket-upgrade.request-assembly.execute[0].validate.version",
        &["'1.0.0'", "2.0.0, 2.1.0", "2.7.0"],
    );
}

#[test]
fn parse_outside_a_message_flow_is_refused() {
    only_error(
        "validate-main-flow",
        "api.yaml",
        36,
        "x-ibm-configuration.assembly.execute[0].parse",
        &[
            "parse runs on WebSocket messages",
            "request-assembly or response-assembly",
        ],
    );
}
