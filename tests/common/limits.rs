//! What the limit tests share: the seed's API and Product YAML with small edits, a second
//! application, and the HTTP side of refused upgrades (status, headers and the JSON body).

use tungstenite::Error;
use tungstenite::handshake::client::Response;

use super::client::{Ws, ws_connect};
use super::conf::{
    CLIENT_ID_HEADER, DEMO_CLIENT_ID, GatewayYaml, SEED_API, SEED_BASE_PATH, SEED_PLAN,
    SEED_PRODUCT, SEED_PRODUCT_NAME, TempConf,
};
use super::gateway::Gateway;
use super::repo_root;

/// Application A is the seed's demo application.
pub const A: &str = DEMO_CLIENT_ID;
/// Application B: another application on the same plan.
pub const B: &str = "b-client-id";
pub const COUNT_LIMIT: &str = "websocket-connections";
pub const REQUEST_LIMIT: &str = "websocket-request-ratelimit";
pub const RESPONSE_LIMIT: &str = "websocket-response-ratelimit";

/// The text of a seed file as shipped in `conf/`.
pub fn seed_text(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("conf").join(file))
        .unwrap_or_else(|e| panic!("read conf/{file}: {e}"))
}

/// `text` with `from` replaced by `to` exactly once; panics when `from` is not there, so a seed
/// change cannot silently turn a test config back into the seed.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, 1, "{from:?} occurs {n} times in the text being edited");
    text.replacen(from, to, 1)
}

/// The seed's count-limit block, as shipped.
pub const SEED_COUNT_BLOCK: &str = "      websocket-connections:
        - hard-limit: true
          cache-only: true
          is-client: true
          use-api-name: false
          use-app-id: false
          use-client-id: false
          auto-decrement: true
          value: 2
";

/// The seed's request rate-limit block, as shipped.
pub const SEED_REQUEST_BLOCK: &str = "      websocket-request-ratelimit:
        - value: 3/1minute
          cache-only: true
          is-client: true
";

/// The seed's plan rate limit, as shipped.
pub const SEED_PLAN_RATE: &str = "      default:
        value: 100/1hour
        hard-limit: false
";

/// Copies the seed API into `conf`, then writes the seed product with `edits` applied (each
/// (from, to) exactly once).
pub fn write_seed_with(
    conf: &TempConf,
    product_edits: &[(&str, &str)],
    api_edits: &[(&str, &str)],
) {
    let mut product = seed_text(SEED_PRODUCT);
    for (from, to) in product_edits {
        product = edit(&product, from, to);
    }
    let mut api = seed_text(SEED_API);
    for (from, to) in api_edits {
        api = edit(&api, from, to);
    }
    conf.write(SEED_PRODUCT, &product);
    conf.write(SEED_API, &api);
}

/// The seed config with applications A and B on the seed plan.
pub fn seed_yaml(target: &str) -> GatewayYaml {
    GatewayYaml::seed(target).application("b-app", B, SEED_PRODUCT_NAME, SEED_PLAN)
}

/// Writes the (possibly edited) seed files and `gateway.yaml` from `yaml`; returns its path.
pub fn write_conf(
    conf: &TempConf,
    yaml: &GatewayYaml,
    product_edits: &[(&str, &str)],
    api_edits: &[(&str, &str)],
) -> std::path::PathBuf {
    write_seed_with(conf, product_edits, api_edits);
    yaml.write(conf)
}

/// The seed API's URL on the gateway.
pub fn seed_url(gw: &Gateway) -> String {
    gw.url(SEED_BASE_PATH)
}

/// Upgrades to the seed API as `client_id`, with extra headers.
pub fn connect_as(
    gw: &Gateway,
    client_id: &str,
    extra: &[(&str, &str)],
) -> Result<(Ws, Response), Error> {
    let mut h = vec![(CLIENT_ID_HEADER, client_id)];
    h.extend_from_slice(extra);
    ws_connect(&seed_url(gw), &h)
}

/// Upgrades as `client_id` and panics with the refusal (and the log tail) if it fails.
pub fn open_as(gw: &Gateway, client_id: &str) -> (Ws, Response) {
    connect_as(gw, client_id, &[]).unwrap_or_else(|e| {
        panic!(
            "upgrade as {client_id} failed: {e} {:?}\n--- log tail ---\n{}",
            super::client::http_error(&e),
            super::proc::tail(&gw.log(), 30)
        )
    })
}

/// A refused upgrade as the client saw it.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Refused {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any header name starts with `prefix` (case-insensitive).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let p = prefix.to_ascii_lowercase();
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with(&p))
    }

    /// Asserts the API Connect error answer: status, the exact JSON body, the JSON content type
    /// and a transaction id.
    pub fn assert_error(&self, status: u16, more_information: &str) {
        assert_eq!(self.status, status, "status of {self:?}");
        assert_eq!(
            self.body,
            error_body(status, more_information),
            "body of {self:?}"
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "content type of {self:?}"
        );
        assert!(
            self.header("x-global-transaction-id")
                .is_some_and(|v| !v.is_empty()),
            "no X-Global-Transaction-ID in {self:?}"
        );
    }
}

/// Expects a refused upgrade and returns it whole; panics on a 101 or a non-HTTP error.
pub fn refused(result: Result<(Ws, Response), Error>) -> Refused {
    match result {
        Ok((_, resp)) => panic!(
            "upgrade succeeded ({}), refusal expected; headers {:?}",
            resp.status(),
            resp.headers()
        ),
        Err(Error::Http(resp)) => Refused {
            status: resp.status().as_u16(),
            headers: resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        },
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// A header of a 101 (or any tungstenite response).
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The JSON body of an error answer (spec §4.3), for the standard reason phrase of `status`.
pub fn error_body(status: u16, more_information: &str) -> String {
    let phrase = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        other => panic!("no reason phrase for {other} in the test table"),
    };
    format!(
        "{{\"httpCode\":\"{status}\",\"httpMessage\":\"{phrase}\",\"moreInformation\":\"{more_information}\"}}"
    )
}

/// `X-CountLimit-*` of the seed's count limit.
pub fn count_headers(remaining: u64) -> (String, String) {
    (
        format!("name={COUNT_LIMIT},2;"),
        format!("name={COUNT_LIMIT},{remaining};"),
    )
}
