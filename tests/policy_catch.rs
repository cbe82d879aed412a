//! An assembly's `catch` (spec §1.10): entries are tried in order by error name, `default`
//! catches the rest, and an assembly limit's refusal (AssemblyRateLimitError) can be caught,
//! unlike the plan's own limits.

use crate::common::admin::*;
use crate::common::*;
use tungstenite::Message;

const BASE: &str = "/catch";
const CLIENT: &str = "catch-client-id";

const CATCH_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: catch-api
  x-ibm-name: catch-api
basePath: /catch
x-ibm-configuration:
  properties:
    target-url:
      value: ws://127.0.0.1:9/
      description: backend
      encoded: false
  gateway: datapower-api-gateway
  type: rest
  phase: realized
  enforced: true
  testable: true
  assembly:
    execute:
      - ratelimit:
          version: 2.2.0
          title: count limit
          source: plan-named
          count-limit:
            - name: websocket-connections
              operation: inc
      - switch:
          version: 2.0.0
          title: test modes
          case:
            - condition: $header('X-Mode') = 'throw'
              execute:
                - throw:
                    version: 2.1.0
                    title: custom
                    name: Custom
                    message: custom thrown
                    error-status-code: 418
            - condition: $header('X-Mode') = 'other'
              execute:
                - throw:
                    version: 2.1.0
                    title: other
                    name: Other
                    message: other thrown
                    error-status-code: 409
            - otherwise:
                - websocket-upgrade:
                    version: 2.0.0
                    title: websocket-upgrade
                    target-url: $(target-url)
                    timeout: 60
    catch:
      - errors: [Custom]
        execute:
          - throw:
              version: 2.1.0
              title: handled
              name: Handled
              message: handled Custom
              error-status-code: 403
      - errors: [AssemblyRateLimitError]
        execute:
          - throw:
              version: 2.1.0
              title: busy
              name: Busy
              message: busy, try later
              error-status-code: 503
      - default:
          - throw:
              version: 2.1.0
              title: fallback
              name: Fallback
              message: fallback
              error-status-code: 400
paths:
  /:
    get:
      responses:
        '200':
          description: success
securityDefinitions:
  clientID:
    type: apiKey
    in: header
    name: X-IBM-Client-Id
security:
  - clientID: []
schemes:
  - https
  - wss
"#;

const CATCH_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: catch-product
  name: catch-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    assembly-count-limits:
      websocket-connections:
        - value: 1
          hard-limit: true
          is-client: true
          auto-decrement: true
    apis:
      catch-api1.0.0: {}
apis:
  catch-api1.0.0:
    $ref: catch-api_1.0.0.yaml
product: 1.0.0
"#;

fn start(backend: &EchoBackend) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write("catch-api_1.0.0.yaml", CATCH_API);
    conf.write("catch-product_1.0.0.yaml", CATCH_PRODUCT);
    let mut yaml = GatewayYaml::open(&backend.target_url()).application(
        "catch-app",
        CLIENT,
        "catch-product",
        "default-plan",
    );
    yaml.products = vec!["catch-product_1.0.0.yaml".into()];
    let path = yaml.write(&conf);
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

fn upgrade_with(
    gw: &Gateway,
    mode: &str,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    ws_connect(
        &gw.url(BASE),
        &[("X-IBM-Client-Id", CLIENT), ("X-Mode", mode)],
    )
}

fn refused_with(gw: &Gateway, mode: &str) -> (u16, String) {
    expect_refused(upgrade_with(gw, mode))
}

#[test]
fn catch_entries_match_by_name_then_default() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend);
    let (status, body) = refused_with(&gw, "throw");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("handled Custom"), "{body}");
    let (status, body) = refused_with(&gw, "other");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("fallback"), "{body}");
    // The count taken before the throw came back with each answer.
    expect_no_counts(&gw, "caught throws");
    assert_eq!(backend.accepted(), 0);
}

#[test]
fn an_assembly_limit_refusal_can_be_caught() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend);
    let (mut ws, _) = upgrade_with(&gw, "ws").expect("the first connection fits the limit of 1");
    roundtrip(&mut ws, Message::text("held"));
    let (status, body) = refused_with(&gw, "ws");
    assert_eq!(status, 503, "the catch's answer replaces the 429: {body}");
    assert!(body.contains("busy, try later"), "{body}");
    assert_eq!(
        backend.accepted(),
        1,
        "the refused upgrade never reached the backend"
    );
    let closed = close_and_wait(&mut ws, 1000, "");
    assert_eq!(closed.code(), Some(1000));
    expect_no_counts(&gw, "the held connection closed");
}
