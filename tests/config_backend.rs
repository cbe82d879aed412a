//! The keys that websocket-upgrade and invoke share describe the backend call alike: the same
//! mistake is reported with the same words at the same place in both. An invoke's
//! `stop-on-error` names the errors it raises; any other name is a warning at its line.

use crate::common::conf;
use crate::common::*;
use std::path::PathBuf;
use wsgate::config::{Diagnostic, Overrides, Severity, load};
use wsgate::model::{PolicyKind, StopOn};

/// The open API with `edits` applied to its websocket-upgrade, turned into an invoke (to a
/// plain HTTP backend, on an `http` API) when `invoke` is set.
fn open_api(edits: &[(&str, &str)], invoke: bool) -> (TempConf, PathBuf) {
    let conf = TempConf::new();
    conf.write_open_api("/open");
    let api = conf.file(conf::OPEN_API);
    let mut text = std::fs::read_to_string(&api).unwrap();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in the open API");
        text = text.replacen(from, to, 1);
    }
    if invoke {
        text = text
            .replace("- websocket-upgrade:", "- invoke:")
            .replace("          verb: keep\n", "")
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

fn line_of(conf: &TempConf, needle: &str) -> usize {
    let text = std::fs::read_to_string(conf.file(conf::OPEN_API)).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

fn shown(ds: &[Diagnostic]) -> Vec<String> {
    ds.iter().map(|d| d.to_string()).collect()
}

#[test]
fn a_shared_key_is_reported_alike_in_websocket_upgrade_and_invoke() {
    let mut seen = Vec::new();
    for (invoke, policy) in [(false, "websocket-upgrade"), (true, "invoke")] {
        let (conf, path) = open_api(
            &[
                (
                    "parameter-control:\n            type: blocklist",
                    "parameter-control:\n            type: denylist",
                ),
                (
                    "timeout: 60\n",
                    "timeout: 60\n          username: $(request.path)\n",
                ),
            ],
            invoke,
        );
        let Err(ds) = load(&path, &Overrides::default()) else {
            panic!("{policy}: a bad parameter-control and username loaded");
        };
        let errors: Vec<&Diagnostic> = ds
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let at = format!("x-ibm-configuration.assembly.execute[0].{policy}");
        let [control, username] = errors.as_slice() else {
            panic!("{policy}: expected two errors, got {:#?}", shown(&ds));
        };
        assert_eq!(control.field, format!("{at}.parameter-control.type"));
        assert_eq!(control.line, line_of(&conf, "type: denylist"));
        assert!(
            control.message.contains("'denylist' is not a control type"),
            "{control}"
        );
        assert_eq!(username.field, format!("{at}.username"));
        assert_eq!(username.line, line_of(&conf, "username:"));
        assert!(
            username.message.contains("API properties only"),
            "{username}"
        );
        seen.push((control.message.clone(), username.message.clone()));
    }
    assert_eq!(
        seen[0], seen[1],
        "the two policies report the shared keys in the same words"
    );
}

#[test]
fn stop_on_error_names_other_than_the_errors_an_invoke_raises_are_warnings() {
    let (conf, path) = open_api(
        &[(
            "timeout: 60\n",
            "timeout: 60\n          stop-on-error:\n            - ConnectionError\n            \
             - SOAPError\n            - operationerror\n",
        )],
        true,
    );
    let loaded = match load(&path, &Overrides::default()) {
        Ok(l) => l,
        Err(ds) => panic!("{:#?}", shown(&ds)),
    };
    let warnings: Vec<&Diagnostic> = loaded
        .warnings
        .iter()
        .filter(|d| d.field.contains("stop-on-error"))
        .collect();
    let at = "x-ibm-configuration.assembly.execute[0].invoke.stop-on-error";
    let [soap, lower] = warnings.as_slice() else {
        panic!("expected two warnings, got {:#?}", shown(&loaded.warnings));
    };
    for (d, index, name) in [(soap, 1, "SOAPError"), (lower, 2, "operationerror")] {
        assert_eq!(d.field, format!("{at}[{index}]"), "{d}");
        assert_eq!(d.line, line_of(&conf, &format!("- {name}")), "{d}");
        assert!(d.message.contains(&format!("'{name}'")), "{d}");
        assert!(
            d.message
                .contains("expected ConnectionError or OperationError"),
            "{d}"
        );
    }
    // Only the exact names count: the listed ConnectionError, not the lower-case one.
    let PolicyKind::Invoke(invoke) = &loaded.model.apis[0].assembly.execute[0].kind else {
        panic!("expected the invoke");
    };
    assert_eq!(
        invoke.stop_on,
        StopOn {
            connection: true,
            operation: false
        }
    );
}
