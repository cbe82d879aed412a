//! A `switch` on `request.websocket` (spec decisions 2 and 3, §2.4, §2.6): one API serves
//! upgrades through `websocket-upgrade` and answers plain requests with the `throw` of its
//! `otherwise` branch. The count limit in front of the switch is given back when the throw's
//! answer is sent.

use crate::common::admin::*;
use crate::common::limits::*;
use crate::common::*;
use tungstenite::Message;

const BASE: &str = "/switch";
const CLIENT: &str = "switch-client-id";

const SWITCH_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: switch-api
  x-ibm-name: switch-api
basePath: /switch
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
          title: websocket or not
          case:
            - condition: request.websocket
              execute:
                - websocket-upgrade:
                    version: 2.0.0
                    title: websocket-upgrade
                    target-url: $(target-url)
                    timeout: 60
            - otherwise:
                - throw:
                    version: 2.1.0
                    title: not a websocket
                    name: NotWebSocket
                    message: plain request
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

const SWITCH_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: switch-product
  name: switch-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    assembly-count-limits:
      websocket-connections:
        - value: 2
          hard-limit: true
          is-client: true
          auto-decrement: true
    apis:
      switch-api1.0.0: {}
apis:
  switch-api1.0.0:
    $ref: switch-api_1.0.0.yaml
product: 1.0.0
"#;

fn start(backend: &EchoBackend) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    conf.write("switch-api_1.0.0.yaml", SWITCH_API);
    conf.write("switch-product_1.0.0.yaml", SWITCH_PRODUCT);
    let mut yaml = GatewayYaml::open(&backend.target_url()).application(
        "switch-app",
        CLIENT,
        "switch-product",
        "default-plan",
    );
    yaml.products = vec!["switch-product_1.0.0.yaml".into()];
    let path = yaml.write(&conf);
    let gw = Gateway::start(&path, &[]);
    (conf, gw)
}

fn plain_get(gw: &Gateway) -> HttpResponse {
    http_request(
        gw.addr("plain"),
        "GET",
        "/switch/",
        &[("Host", "gw"), ("X-IBM-Client-Id", CLIENT)],
        b"",
    )
    .expect("plain GET")
}

fn upgrade(
    gw: &Gateway,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    ws_connect(&gw.url(BASE), &[("X-IBM-Client-Id", CLIENT)])
}

#[test]
fn switch_on_request_websocket_upgrades_websockets_and_throws_for_plain_requests() {
    let backend = EchoBackend::start();
    let (_c, gw) = start(&backend);

    let (mut ws, resp) = upgrade(&gw).expect("the websocket case upgrades");
    assert_eq!(resp.status(), 101);
    assert_eq!(
        header(&resp, "x-countlimit-remaining").as_deref(),
        Some("name=websocket-connections,1;")
    );
    roundtrip(&mut ws, Message::text("through the switch"));

    // A plain GET takes the otherwise branch: the throw's status and message.
    let r = plain_get(&gw);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body_text(), error_body(400, "plain request"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-global-transaction-id").is_some(), "{r:?}");
    assert_eq!(backend.accepted(), 1, "the throw never reaches the backend");

    // The count taken before the switch came back with the throw's answer: plain requests in
    // a row never use up the two slots.
    for _ in 0..3 {
        assert_eq!(plain_get(&gw).status, 400);
    }
    let (got, ok) = poll(|| limit_total(&gw, "websocket-connections"), |v| *v == 1);
    assert!(ok, "count {got} with one websocket open: {:?}", limits(&gw));
    let (_ws2, _) = upgrade(&gw).expect("the second slot is free");
    let third = refused(upgrade(&gw));
    third.assert_error(429, "Assembly Rate Limit exceeded");
    // The count limit comes before the switch: with both slots taken a plain request is
    // refused by it, not by the throw.
    let r = plain_get(&gw);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(
        r.body_text(),
        error_body(429, "Assembly Rate Limit exceeded")
    );
    let _ = close_and_wait(&mut ws, 1000, "");
    let (got, ok) = poll(|| limit_total(&gw, "websocket-connections"), |v| *v == 1);
    assert!(ok, "count {got} after one close: {:?}", limits(&gw));
}
