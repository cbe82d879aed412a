//! The compiled runtime model: everything the running gateway needs, built once when the config
//! loads. Nothing here refers back to YAML; limits, plans, APIs and applications are addressed by
//! small dense integers so that counters can live in flat arrays.

pub mod assembly;
pub mod limits;
pub mod template;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use assembly::*;
pub use limits::*;
pub use template::{Part, Template};

/// Index of an API in [`Model::apis`].
pub type ApiIdx = u16;
/// Index of a plan in [`Model::plans`].
pub type PlanIdx = u16;
/// Index of an application in [`Model::applications`].
pub type AppIdx = u32;

/// The whole loaded configuration.
#[derive(Debug, Clone)]
pub struct Model {
    pub settings: Settings,
    pub apis: Vec<Api>,
    pub products: Vec<Product>,
    pub plans: Vec<Plan>,
    /// Every limit definition of every level, addressed by [`LimitIdx`].
    pub limits: Vec<LimitDef>,
    pub applications: Vec<Application>,
    /// Named TLS client profiles for backends (`tls-profile` of a policy).
    pub tls_profiles: Vec<TlsProfile>,
}

/// The gateway's own settings (from `gateway.yaml` and the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file this model was loaded from.
    pub source: PathBuf,
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    /// The token that the admin listener asks for (`admin.token-file`), read at every load.
    pub admin_token: Option<AdminToken>,
    /// The built-in echo backend, served on the same loop when set.
    pub echo: Option<SocketAddr>,
    pub bounds: Bounds,
    /// Where the activity log of the APIs goes.
    pub activity_log: ActivityOutput,
    /// Peers whose `X-Forwarded-*` headers stand (`trusted-proxies`); every other peer is the
    /// client itself.
    pub trusted_proxies: Vec<crate::http::forwarded::Cidr>,
}

/// A secret that must not show up in logs: its `Debug` prints no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// Where activity-log records (one JSON line per transaction) are written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ActivityOutput {
    /// Standard output, apart from the diagnostic log on standard error.
    #[default]
    Stdout,
    /// Appended to a file, which is reopened on SIGUSR1 (log rotation).
    File(PathBuf),
    /// Nowhere, whatever the APIs ask for.
    Off,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Certificates for a TLS listener; `None` for a plain one.
    pub tls: Option<TlsListener>,
    /// A plain listener behind a TLS terminator: it serves APIs whose schemes are `https`/`wss`.
    pub tls_offloaded: bool,
}

#[derive(Debug, Clone)]
pub struct TlsListener {
    /// One or more certificate chains; chosen by SNI when there is more than one.
    pub certs: Vec<TlsCert>,
    /// The handshake settings built from them at load.
    pub config: Arc<rustls::ServerConfig>,
}

#[derive(Debug, Clone)]
pub struct TlsCert {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    /// Host names this certificate answers for (empty: taken from the certificate).
    pub server_names: Vec<String>,
}

impl TlsCert {
    pub fn files_exist(&self) -> bool {
        self.cert_chain.is_file() && self.private_key.is_file()
    }
}

#[derive(Debug, Clone)]
pub struct TlsProfile {
    pub name: String,
    /// PEM file of trusted roots; `None` uses the system's store.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<TlsCert>,
    /// Skip certificate verification (warned at load and on every connection).
    pub insecure_skip_verify: bool,
    /// The handshake settings built from the above at load.
    pub config: Arc<rustls::ClientConfig>,
    /// The same without the client certificate, for a backend a redirect led to.
    pub without_client_cert: Arc<rustls::ClientConfig>,
}

/// What a message over a hard message limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimitAction {
    Close,
    Drop,
}

/// The gateway's own bounds.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub max_connections: usize,
    /// Connections from one client network (an IPv4 address, an IPv6 /64) that may be open
    /// before their first request head is complete; more are closed at once.
    pub max_pending_per_address: usize,
    /// Largest WebSocket message (sum of its fragments' payloads), per direction; 1009 above.
    pub max_message_size: u64,
    pub idle_timeout: Duration,
    /// Time for the whole request head to arrive.
    pub header_timeout: Duration,
    /// Time for the client side TLS handshake (and for a client to send its head once connected).
    pub handshake_timeout: Duration,
    /// How long a close handshake may take before both sockets are shut anyway.
    pub close_grace: Duration,
    /// How long a shutdown waits for closes to complete.
    pub shutdown_grace: Duration,
    /// Bytes buffered per direction of one connection before its source is paused.
    pub buffer_bound: usize,
    /// The kernel's send and receive buffers of each proxied socket (`SO_SNDBUF`,
    /// `SO_RCVBUF`); 0 leaves them to the kernel's autotuning. Without a cap, a paused
    /// direction lets the kernel queue megabytes behind it.
    pub socket_buffer: usize,
    pub over_limit: OverLimitAction,
    /// Entries of the table for limit keys known only at run time (keyless callers' addresses,
    /// dynamic values); fixed at start.
    pub max_limit_keys: usize,
    /// Control frames (ping, pong, close) one side of a WebSocket may send per second; above
    /// it that side is closed with 1008.
    pub max_control_frames: u16,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_connections: 9_000,
            max_pending_per_address: 64,
            max_message_size: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            buffer_bound: 64 * 1024,
            socket_buffer: 256 * 1024,
            over_limit: OverLimitAction::Close,
            max_limit_keys: 65_536,
            max_control_frames: 50,
        }
    }
}

/// Bit set of the four OpenAPI schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schemes(pub u8);

impl Schemes {
    pub const HTTP: u8 = 1;
    pub const HTTPS: u8 = 2;
    pub const WS: u8 = 4;
    pub const WSS: u8 = 8;
    pub const ALL: Schemes = Schemes(15);
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    /// Reachable on a plain listener (`http` or `ws`).
    pub fn plain(self) -> bool {
        self.0 & (Self::HTTP | Self::WS) != 0
    }
    /// Reachable on a TLS listener (`https` or `wss`).
    pub fn secure(self) -> bool {
        self.0 & (Self::HTTPS | Self::WSS) != 0
    }
}

/// Bit set of HTTP methods an operation path defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Methods(pub u16);

impl Methods {
    pub const GET: u16 = 1;
    pub const PUT: u16 = 2;
    pub const POST: u16 = 4;
    pub const DELETE: u16 = 8;
    pub const OPTIONS: u16 = 16;
    pub const HEAD: u16 = 32;
    pub const PATCH: u16 = 64;
    pub const TRACE: u16 = 128;

    pub fn bit(method: &str) -> Option<u16> {
        Some(match method {
            "GET" => Self::GET,
            "PUT" => Self::PUT,
            "POST" => Self::POST,
            "DELETE" => Self::DELETE,
            "OPTIONS" => Self::OPTIONS,
            "HEAD" => Self::HEAD,
            "PATCH" => Self::PATCH,
            "TRACE" => Self::TRACE,
            _ => return None,
        })
    }
    pub fn allows(self, method: &str) -> bool {
        Self::bit(method).is_some_and(|b| self.0 & b != 0)
    }
}

/// One API, compiled.
#[derive(Debug, Clone)]
pub struct Api {
    /// `info.x-ibm-name` (or `info.title`).
    pub name: String,
    pub version: String,
    pub title: String,
    /// The file it was loaded from (for messages).
    pub file: PathBuf,
    /// Starts with `/`, never ends with `/` unless it is `/` itself.
    pub base_path: String,
    pub schemes: Schemes,
    pub operations: Vec<Operation>,
    /// Properties after catalog and command-line overrides: name → value.
    pub properties: Vec<(String, String)>,
    pub security: Security,
    pub cors: Cors,
    pub activity_log: ActivityLog,
    pub assembly: Assembly,
    /// Products (and their plans) that include this API.
    pub plans: Vec<PlanIdx>,
}

/// One path of the API with the methods defined on it.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The path template as written, e.g. `/things/{id}`.
    pub path: String,
    /// The template split on `/`; `None` for a `{param}` segment.
    pub segments: Vec<Option<String>>,
    pub methods: Methods,
    /// `operationId` per method, when given: (method bit, id).
    pub operation_ids: Vec<(u16, String)>,
}

/// Client identification, from `security` and `securityDefinitions`.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// OR of requirements; each requirement is an AND of API keys. Empty: keyless.
    pub requirements: Vec<SecurityRequirement>,
}

#[derive(Debug, Clone, Default)]
pub struct SecurityRequirement {
    pub client_id: Option<ApiKey>,
    pub client_secret: Option<ApiKey>,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub in_header: bool,
    /// Header name (lower-cased) or query parameter name.
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogContent {
    None,
    Activity,
    Header,
    Payload,
}

#[derive(Debug, Clone)]
pub struct ActivityLog {
    pub enabled: bool,
    pub success: LogContent,
    pub error: LogContent,
}

impl Default for ActivityLog {
    fn default() -> Self {
        ActivityLog {
            enabled: false,
            success: LogContent::Activity,
            error: LogContent::Payload,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Product {
    pub name: String,
    pub version: String,
    pub title: String,
    pub file: PathBuf,
    pub plans: Vec<PlanIdx>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// The key under `plans:`.
    pub name: String,
    pub title: String,
    pub product: u16,
    /// APIs of this plan.
    pub apis: Vec<ApiIdx>,
    /// `rate-limits` (plan-default), in order.
    pub rate_limits: Vec<LimitIdx>,
    /// `burst-limits` (plan-default), in order; checked before the rate limits.
    pub burst_limits: Vec<LimitIdx>,
    /// `assembly-*-limits` of this plan: (name, limits of that name).
    pub named: Vec<(String, Vec<LimitIdx>)>,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub name: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub plan: PlanIdx,
}

impl Model {
    /// The value of an API property after overrides.
    pub fn property<'a>(&'a self, api: &'a Api, name: &str) -> Option<&'a str> {
        api.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
