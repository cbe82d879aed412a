//! A keyless API whose limits keep their keys in the run-time key table: `by-tenant`, a call
//! limit keyed by the `X-Tenant` header alone, in front of a `websocket-upgrade` whose
//! request flow counts `msgs` (3 a minute per caller, keyless callers keyed by address).
//! Plus clients that connect from a chosen loopback address.

use std::net::{Ipv4Addr, SocketAddr};

use tungstenite::Error;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::client::Response;

use super::client::{Ws, client_config, http_request};
use super::conf::{GatewayYaml, TempConf};
use super::gateway::Gateway;
use super::load::connect_from;

pub const KEYS_BASE_PATH: &str = "/keys";
pub const TENANT_LIMIT: &str = "by-tenant";
pub const MESSAGE_LIMIT: &str = "msgs";

const KEYS_API: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: keys-api
  x-ibm-name: keys-api
basePath: /keys
x-ibm-configuration:
  properties:
    target-url:
      value: ws://127.0.0.1:9/
  gateway: datapower-api-gateway
  type: rest
  assembly:
    execute:
      - ratelimit:
          version: 2.2.0
          title: per tenant
          source: gateway-named
          rate-limit:
            - name: by-tenant
              operation: consume
      - websocket-upgrade:
          title: websocket-upgrade
          version: 2.0.0
          target-url: $(target-url)
          timeout: 60
          parameter-control:
            type: allowlist
            values: []
          request-assembly:
            execute:
              - ratelimit:
                  version: 2.2.0
                  title: messages
                  source: gateway-named
                  rate-limit:
                    - name: msgs
                      operation: consume
paths:
  /:
    get:
      responses:
        '200':
          description: success
security: []
schemes:
  - ws
"#;

const KEYS_PRODUCT: &str = r#"info:
  version: 1.0.0
  title: keys-product
  name: keys-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    apis:
      keys-api1.0.0: {}
apis:
  keys-api1.0.0:
    $ref: keys-api_1.0.0.yaml
product: 1.0.0
"#;

const KEYS_LIMITS: &str = "gateway:
  assembly-rate-limits:
    by-tenant:
      - value: 1000/1hour
        hard-limit: true
        is-client: false
        dynamic-value: $(request.headers.x-tenant)
    msgs:
      - value: 3/1minute
        hard-limit: true
        is-client: true
";

/// Writes the keys API, its product and a `gateway.yaml` with `max-limit-keys`, the backend
/// at `target`; returns the config's path.
pub fn write_keys_conf(conf: &TempConf, target: &str, max_limit_keys: usize) -> std::path::PathBuf {
    conf.write("keys-api_1.0.0.yaml", KEYS_API);
    conf.write("keys-product_1.0.0.yaml", KEYS_PRODUCT);
    let mut yaml = GatewayYaml::open(target).bound("max-limit-keys", &max_limit_keys.to_string());
    yaml.products = vec!["keys-product_1.0.0.yaml".into()];
    yaml.tls_offloaded = false;
    yaml.extra.push_str(KEYS_LIMITS);
    yaml.write(conf)
}

/// Upgrades to the keys API from loopback address `src`, as tenant `tenant`.
pub fn connect_keys(gw: &Gateway, src: Ipv4Addr, tenant: &str) -> Result<(Ws, Response), Error> {
    let addr: SocketAddr = gw.addr("plain");
    let mut request = format!("ws://{addr}{KEYS_BASE_PATH}").into_client_request()?;
    request
        .headers_mut()
        .insert("X-Tenant", tenant.parse().expect("tenant header"));
    let stream = connect_from(Some(src), addr, None)?;
    stream.set_read_timeout(Some(super::DEADLINE))?;
    stream.set_write_timeout(Some(super::DEADLINE))?;
    match tungstenite::client::client_with_config(request, stream, Some(client_config())) {
        Ok(pair) => Ok(pair),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no handshake answer",
        ))),
    }
}

/// The value of an unlabelled counter on `GET /metrics`.
pub fn metric(gw: &Gateway, name: &str) -> u64 {
    let r = http_request(gw.addr("admin"), "GET", "/metrics", &[], b"").expect("GET /metrics");
    let text = r.body_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The value of `name{label="value"}` on `GET /metrics`.
pub fn labelled_metric(gw: &Gateway, name: &str, label: &str, value: &str) -> u64 {
    let r = http_request(gw.addr("admin"), "GET", "/metrics", &[], b"").expect("GET /metrics");
    let text = r.body_text();
    let want = format!("{name}{{{label}=\"{value}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want)?.parse().ok())
        .unwrap_or_else(|| panic!("no {want} in /metrics:\n{text}"))
}
