//! Client identification and subscriptions in front of the seed API (spec §1.4, §4.1, §4.2):
//! no client id, an unknown one, and an application whose plan does not include the API are
//! all refused with 401 and the API Connect JSON body, before any limit counts and before the
//! backend is contacted.

use crate::common::admin::{counts, limits};
use crate::common::conf::{OPEN_PRODUCT, OPEN_PRODUCT_NAME};
use crate::common::limits::*;
use crate::common::*;

const INVALID: &str = "Invalid client id or secret.";
const SEED_BASE_PATH_SLASH: &str = "/test-yahel-websocket-api/";
const NO_SUBSCRIPTION: &str = "Cannot find valid subscription for the incoming API request.";

fn start(yaml: GatewayYaml) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let path = write_conf(&conf, &yaml, &[], &[]);
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

/// No refusal of this file may leave a counter behind, nor reach the backend; and the real
/// application still gets its two connections.
fn assert_nothing_counted(gw: &Gateway, backend: &EchoBackend) {
    assert_eq!(
        limits(gw),
        vec![],
        "a refused identification counted something"
    );
    assert_eq!(backend.accepted(), 0, "the backend was contacted");
    let (_a1, r1) = open_as(gw, A);
    let (_a2, r2) = open_as(gw, A);
    assert_eq!(r1.status(), 101);
    assert_eq!(r2.status(), 101);
    assert_eq!(counts(gw).len(), 1, "{:?}", limits(gw));
}

#[test]
fn upgrade_without_a_client_id_is_401_invalid_client() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(seed_yaml(&backend.target_url()));
    refused(ws_connect(&seed_url(&gw), &[])).assert_error(401, INVALID);
    // The same for a plain request (no upgrade): identification comes first.
    let plain = http_request(
        gw.addr("plain"),
        "GET",
        SEED_BASE_PATH_SLASH,
        &[("Host", "gw")],
        b"",
    )
    .expect("plain GET");
    assert_eq!(plain.status, 401, "{plain:?}");
    assert_eq!(plain.body_text(), error_body(401, INVALID));
    assert!(plain.header("x-global-transaction-id").is_some());
    assert_nothing_counted(&gw, &backend);
}

#[test]
fn unknown_client_id_is_401_invalid_client() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(seed_yaml(&backend.target_url()));
    refused(connect_as(&gw, "no-such-client", &[])).assert_error(401, INVALID);
    // Client ids are compared exactly: another case is another id.
    refused(connect_as(&gw, &A.to_uppercase(), &[])).assert_error(401, INVALID);
    // The API reads the id from the header only; a query parameter of that name is no id.
    let url = format!("{}?X-IBM-Client-Id={A}", seed_url(&gw));
    refused(ws_connect(&url, &[])).assert_error(401, INVALID);
    assert_nothing_counted(&gw, &backend);
}

#[test]
fn application_subscribed_to_another_product_is_401_no_subscription() {
    let backend = EchoBackend::start();
    let conf = TempConf::new();
    // A second product whose only plan holds a different API (the keyless open API).
    conf.write_open_api("/other");
    let mut yaml = seed_yaml(&backend.target_url()).application(
        "other-app",
        "other-client-id",
        OPEN_PRODUCT_NAME,
        "default-plan",
    );
    yaml.products.push(OPEN_PRODUCT.into());
    let path = write_conf(&conf, &yaml, &[], &[]);
    let gw = Gateway::start(&path, &[]);
    refused(connect_as(&gw, "other-client-id", &[])).assert_error(401, NO_SUBSCRIPTION);
    // That application is known and its own API works: the refusal is about the subscription.
    let (mut ws, resp) = ws_connect(&gw.url("/other"), &[("X-IBM-Client-Id", "other-client-id")])
        .expect("the other product's API is open");
    assert_eq!(resp.status(), 101);
    let _ = close_and_wait(&mut ws, 1000, "");
    assert!(backend.wait_until(DEADLINE, |s| s.open == 0));
    let before = backend.accepted();
    refused(connect_as(&gw, "other-client-id", &[])).assert_error(401, NO_SUBSCRIPTION);
    assert_eq!(
        backend.accepted(),
        before,
        "the refused call reached the backend"
    );
    assert!(
        counts(&gw).is_empty(),
        "a refused subscription counted: {:?}",
        limits(&gw)
    );
    let (_a1, _) = open_as(&gw, A);
    let (_a2, _) = open_as(&gw, A);
}
