//! The gateway's own config file (`conf/gateway.yaml`): listeners, bounds, which products to
//! serve, the catalog and gateway-named limits, applications and TLS profiles.

use super::Overrides;
use super::limits::Sink;
use super::node::{Anchor, Diags, Doc, Node};
use super::units;
use crate::http::forwarded::Cidr;
use crate::model::{
    ActivityOutput, AdminToken, Bounds, LimitDef, LimitIdx, LimitKind, LimitLevel, Listener,
    OverLimitAction, TlsCert, TlsListener, TlsProfile,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// An application entry, resolved against products later.
pub struct AppSpec {
    pub name: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub product: String,
    pub plan: String,
    pub client_id_at: Anchor,
    pub product_at: Anchor,
    pub plan_at: Anchor,
}

pub struct GatewayConf {
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<AdminToken>,
    pub echo: Option<SocketAddr>,
    pub bounds: Bounds,
    pub products: Vec<(PathBuf, Anchor)>,
    pub api_files: Vec<(PathBuf, Anchor)>,
    pub catalog_name: String,
    pub catalog_props: Vec<(String, String)>,
    pub catalog_named: Vec<(String, Vec<LimitIdx>)>,
    pub gateway_named: Vec<(String, Vec<LimitIdx>)>,
    pub apps: Vec<AppSpec>,
    pub tls_profiles: Vec<TlsProfile>,
    pub activity_log: ActivityOutput,
    pub trusted_proxies: Vec<Cidr>,
}

const TOP_KEYS: &[&str] = &[
    "listeners",
    "admin",
    "echo-backend",
    "products",
    "apis",
    "catalog",
    "gateway",
    "applications",
    "tls-profiles",
    "bounds",
    "activity-log",
    "trusted-proxies",
];

/// Relative paths in the config are relative to the config file's folder.
pub fn relative_to(file: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    file.parent().unwrap_or(Path::new("")).join(p)
}

fn addr(n: &Node, d: &mut Diags) -> Option<SocketAddr> {
    let text = n.text(d)?;
    match text.trim().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.error(
                n,
                format!(
                    "'{text}' is not a socket address: expected IP:PORT such as 127.0.0.1:8080 \
                     or [::1]:8080"
                ),
            );
            None
        }
    }
}

/// A private key or the admin token is worth a warning when users other than its owner can
/// read or change it: any of them could impersonate the gateway or its operator.
fn others_can_read(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

fn private_file_warning(path: &Path, mode: u32) -> String {
    format!(
        "'{}' holds a secret but has mode {mode:03o}, so users other than its owner can read \
         or change it: chmod 600 it",
        path.display()
    )
}

fn warn_if_others_can_read(n: &Node, path: &Path, d: &mut Diags) {
    if let Some(mode) = others_can_read(path) {
        d.warn(n, private_file_warning(path, mode));
    }
}

/// `admin: IP:PORT`, or `admin: {address: IP:PORT, token-file: PATH}`. The token is the file's
/// content without surrounding whitespace, read at every load so a reload picks up a new one.
fn admin(doc: &Doc, n: &Node, d: &mut Diags) -> (Option<SocketAddr>, Option<AdminToken>) {
    if !n.v.is_mapping() {
        return (addr(n, d), None);
    }
    n.known(&["address", "token-file"], false, d);
    let address = match n.get("address") {
        Some(a) => addr(&a, d),
        None => {
            d.missing(
                n,
                "address",
                "missing: expected IP:PORT such as 127.0.0.1:9090",
            );
            None
        }
    };
    let token = n.get("token-file").and_then(|f| {
        let path = existing_file(doc, &f, d)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                d.error(&f, format!("cannot read '{}': {e}", path.display()));
                return None;
            }
        };
        let token = text.trim();
        if token.is_empty() {
            d.error(
                &f,
                format!("'{}' is empty: expected the admin token", path.display()),
            );
            return None;
        }
        // A token no `Authorization` header can carry would lock the admin listener.
        if !is_token68(token) {
            d.error(
                &f,
                format!(
                    "'{}' is not a usable admin token: expected one word of letters, digits \
                     and - . _ ~ + / (then = at the end only), without spaces or other lines",
                    path.display()
                ),
            );
            return None;
        }
        warn_if_others_can_read(&f, &path, d);
        Some(AdminToken(token.to_string()))
    });
    (address, token)
}

/// Whether `token` has the characters a credential in an `Authorization` header can have
/// (RFC 7235 token68): visible ASCII from a small set, `=` only as padding at the end.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A file named in the config: must exist.
fn existing_file(doc: &Doc, n: &Node, d: &mut Diags) -> Option<PathBuf> {
    let text = n.text(d)?;
    let p = relative_to(&doc.file, &text);
    if !p.is_file() {
        d.error(
            n,
            format!(
                "file '{}' does not exist (paths are relative to this config file)",
                p.display()
            ),
        );
    }
    Some(p)
}

fn cert(doc: &Doc, n: &Node, d: &mut Diags) -> Option<TlsCert> {
    n.known(&["cert", "key", "server-names"], false, d);
    let cert = match n.get("cert") {
        Some(c) => existing_file(doc, &c, d),
        None => {
            d.missing(
                n,
                "cert",
                "missing: expected the PEM certificate chain file",
            );
            None
        }
    };
    let key = match n.get("key") {
        Some(k) => existing_file(doc, &k, d).inspect(|p| warn_if_others_can_read(&k, p, d)),
        None => {
            d.missing(n, "key", "missing: expected the PEM private key file");
            None
        }
    };
    let server_names = n
        .get("server-names")
        .map(|s| s.items(d).iter().filter_map(|x| x.text(d)).collect())
        .unwrap_or_default();
    Some(TlsCert {
        cert_chain: cert?,
        private_key: key?,
        server_names,
    })
}

fn listener(doc: &Doc, n: &Node, d: &mut Diags) -> Option<Listener> {
    if !n.v.is_mapping() {
        d.error(n, "expected a listener like {address: 127.0.0.1:8080}");
        return None;
    }
    n.known(&["address", "tls-offloaded", "tls"], false, d);
    let address = match n.get("address") {
        Some(a) => addr(&a, d),
        None => {
            d.missing(
                n,
                "address",
                "missing: expected IP:PORT such as 127.0.0.1:8080",
            );
            None
        }
    };
    let tls_offloaded = n.bool_at("tls-offloaded", false, d);
    let tls = n.get("tls").and_then(|t| {
        t.known(&["certificates"], false, d);
        let items = t
            .get("certificates")
            .map(|c| c.items(d))
            .unwrap_or_default();
        if items.is_empty() {
            d.error(
                &t,
                "a TLS listener needs at least one entry in certificates",
            );
        }
        let certs: Vec<TlsCert> = items.iter().filter_map(|c| cert(doc, c, d)).collect();
        let config = if certs.len() == items.len() && certs.iter().all(TlsCert::files_exist) {
            crate::tls::server_config(&certs)
                .map_err(|(i, e)| d.error(&items[i], format!("TLS certificate: {e}")))
                .ok()
        } else {
            None
        };
        config.map(|config| TlsListener { certs, config })
    });
    if tls.is_some() && tls_offloaded {
        d.error(
            n,
            "a listener is either tls (it terminates TLS) or tls-offloaded (TLS ends before it), \
             not both",
        );
    }
    Some(Listener {
        addr: address?,
        tls,
        tls_offloaded,
    })
}

/// `trusted-proxies`: the address ranges whose `X-Forwarded-*` headers are believed.
fn trusted_proxies(n: &Node, d: &mut Diags) -> Vec<Cidr> {
    if !n.v.is_sequence() {
        d.error(
            n,
            "expected a list of address ranges such as [10.0.0.0/8, fd00::/8]",
        );
        return Vec::new();
    }
    n.items(d)
        .iter()
        .filter_map(|item| {
            let text = item.text(d)?;
            Cidr::parse(&text).map_err(|e| d.error(item, e)).ok()
        })
        .collect()
}

/// Below this the kernel would raise the value anyway.
const SOCKET_BUFFER_MIN: u64 = 4096;
/// The kernel takes the buffer size as an `int` and doubles it for its bookkeeping.
const MAX_SOCKET_BUFFER: u64 = 1 << 30;
/// Far above what one loop serves, and it keeps slab keys (timer entries hold them as u32, and
/// connection tokens are twice the key) well inside their types.
const MAX_CONNECTIONS: usize = 1 << 24;
/// Buffer offsets are u32; a bound this large is a typo long before it is a need.
const MAX_BUFFER_BOUND: u64 = 1 << 30;
/// Far above any message a gateway should hold open, and within the 32 bits in which the frame
/// decoder keeps its limit.
const MAX_MESSAGE_SIZE: u64 = 1 << 31;
const _: () = assert!(MAX_MESSAGE_SIZE <= crate::ws::frame::MAX_MESSAGE_LIMIT);
/// The longest idle WebSocket and the longest of the other waits (timeouts and graces).
const MAX_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The largest run-time key table (about 1.4 GiB at 92 bytes an entry).
const MAX_LIMIT_KEYS: u64 = 1 << 24;

fn bounds(n: &Node, d: &mut Diags) -> Bounds {
    let mut b = Bounds::default();
    n.known(
        &[
            "max-connections",
            "max-pending-per-address",
            "max-message-size",
            "idle-timeout",
            "header-timeout",
            "handshake-timeout",
            "close-grace",
            "shutdown-grace",
            "buffer-bound",
            "socket-buffer",
            "over-limit",
            "max-limit-keys",
            "max-control-frames",
        ],
        false,
        d,
    );
    let size = |key: &str, min: u64, max: u64, d: &mut Diags| -> Option<u64> {
        let v = n.get(key)?;
        let text = v.text(d)?;
        match units::size(&text) {
            Ok(s) if (min..=max).contains(&s) => Some(s),
            Ok(s) if s < min => {
                d.error(&v, format!("{key} must be at least {min} bytes"));
                None
            }
            Ok(_) => {
                d.error(
                    &v,
                    format!(
                        "{key} '{}' is too large: at most {}",
                        text.trim(),
                        units::show_size(max)
                    ),
                );
                None
            }
            Err(e) => {
                d.error(&v, format!("{key}: {e}"));
                None
            }
        }
    };
    let duration = |key: &str, zero_ok: bool, max: Duration, d: &mut Diags| -> Option<Duration> {
        let v = n.get(key)?;
        let text = v.text(d)?;
        match units::duration(&text) {
            Ok(t) if t > max => {
                d.error(
                    &v,
                    format!(
                        "{key} '{}' is too long: at most {}",
                        text.trim(),
                        units::show_duration(max)
                    ),
                );
                None
            }
            Ok(t) if zero_ok || !t.is_zero() => Some(t),
            Ok(_) => {
                d.error(&v, format!("{key} must be longer than 0"));
                None
            }
            Err(e) => {
                d.error(&v, format!("{key}: {e}"));
                None
            }
        }
    };
    if let Some(v) = n.get("max-connections") {
        match v.u64(d) {
            Some(0) => d.error(&v, "max-connections must be at least 1"),
            Some(x) if x > MAX_CONNECTIONS as u64 => d.error(
                &v,
                format!("max-connections {x} is too large: at most {MAX_CONNECTIONS}"),
            ),
            Some(x) => b.max_connections = x as usize,
            None => {}
        }
    }
    if let Some(v) = n.get("max-limit-keys") {
        match v.u64(d) {
            Some(0) => d.error(&v, "max-limit-keys must be at least 1"),
            Some(x) if x > MAX_LIMIT_KEYS => d.error(
                &v,
                format!("max-limit-keys {x} is too large: at most {MAX_LIMIT_KEYS}"),
            ),
            Some(x) => b.max_limit_keys = x as usize,
            None => {}
        }
    }
    if let Some(v) = n.get("max-control-frames") {
        match v.u64(d) {
            Some(0) => d.error(&v, "max-control-frames must be at least 1 (per second)"),
            Some(x) => match u16::try_from(x) {
                Ok(x) => b.max_control_frames = x,
                Err(_) => d.error(
                    &v,
                    format!(
                        "max-control-frames {x} is too large: at most {} per second",
                        u16::MAX
                    ),
                ),
            },
            None => {}
        }
    }
    if let Some(v) = n.get("max-pending-per-address") {
        match v.u64(d) {
            Some(0) => d.error(&v, "max-pending-per-address must be at least 1"),
            Some(x) if x > MAX_CONNECTIONS as u64 => d.error(
                &v,
                format!("max-pending-per-address {x} is too large: at most {MAX_CONNECTIONS}"),
            ),
            Some(x) => b.max_pending_per_address = x as usize,
            None => {}
        }
    }
    if let Some(s) = size("max-message-size", 1, MAX_MESSAGE_SIZE, d) {
        b.max_message_size = s;
    }
    if let Some(s) = size("buffer-bound", 1, MAX_BUFFER_BOUND, d) {
        b.buffer_bound = usize::try_from(s).unwrap_or(usize::MAX);
        // The engine needs a whole request head plus its 101 in one buffer.
        let min = crate::http::head::MIN_BUFFER;
        if b.buffer_bound < min
            && let Some(v) = n.get("buffer-bound")
        {
            d.warn(
                &v,
                format!(
                    "buffer-bound {} is below the {min} bytes one buffer needs (a whole 16KiB \
                     request head and the 101 answer); {min} is used",
                    b.buffer_bound
                ),
            );
            b.buffer_bound = min;
        }
    }
    if let Some(s) = size("socket-buffer", 0, MAX_SOCKET_BUFFER, d) {
        if s != 0 && s < SOCKET_BUFFER_MIN {
            if let Some(v) = n.get("socket-buffer") {
                d.error(
                    &v,
                    "socket-buffer must be 0 (the kernel's autotuning) or at least 4KiB",
                );
            }
        } else {
            b.socket_buffer = s as usize;
        }
    }
    if let Some(t) = duration("idle-timeout", false, MAX_IDLE, d) {
        b.idle_timeout = t;
    }
    if let Some(t) = duration("header-timeout", false, MAX_WAIT, d) {
        b.header_timeout = t;
    }
    if let Some(t) = duration("handshake-timeout", false, MAX_WAIT, d) {
        b.handshake_timeout = t;
    }
    if let Some(t) = duration("close-grace", true, MAX_WAIT, d) {
        b.close_grace = t;
    }
    if let Some(t) = duration("shutdown-grace", true, MAX_WAIT, d) {
        b.shutdown_grace = t;
    }
    if let Some(v) = n.get("over-limit") {
        match v.text(d).as_deref().map(str::trim) {
            Some("close") => b.over_limit = OverLimitAction::Close,
            Some("drop") => b.over_limit = OverLimitAction::Drop,
            Some(other) => d.error(
                &v,
                format!(
                    "'{other}' is not an over-limit action: expected close (close the \
                     connection) or drop (discard the message)"
                ),
            ),
            None => {}
        }
    }
    b
}

/// `activity-log: {output: stdout | file | off, file: PATH}`: where the APIs' activity records
/// go. The file's folder must exist; the file is created when the gateway starts.
fn activity_log(doc: &Doc, n: &Node, d: &mut Diags) -> ActivityOutput {
    if !n.v.is_mapping() {
        d.error(
            n,
            "expected a mapping like {output: file, file: /var/log/wsgate/activity.log}",
        );
        return ActivityOutput::default();
    }
    n.known(&["output", "file"], false, d);
    let file = n.get("file").and_then(|f| {
        let text = f.text(d)?;
        let p = relative_to(&doc.file, &text);
        let folder = p.parent().filter(|p| !p.as_os_str().is_empty());
        if text.trim().is_empty() {
            d.error(
                &f,
                "file is empty: expected the path of the activity log file",
            );
            return None;
        }
        if folder.is_some_and(|f| !f.is_dir()) {
            d.error(
                &f,
                format!(
                    "the folder of '{}' does not exist (paths are relative to this config file)",
                    p.display()
                ),
            );
        }
        Some((p, f))
    });
    let output = n.get("output");
    let word = output.as_ref().and_then(|o| o.text(d));
    match word.as_deref().map(str::trim) {
        None | Some("stdout") | Some("off") => {
            if let Some((_, f)) = &file {
                d.error(
                    f,
                    "file is only used with output: file (add output: file, or remove file)",
                );
            }
            if word.as_deref().map(str::trim) == Some("off") {
                ActivityOutput::Off
            } else {
                ActivityOutput::Stdout
            }
        }
        Some("file") => match file {
            Some((p, _)) => ActivityOutput::File(p),
            None => {
                d.missing(
                    n,
                    "file",
                    "missing: output: file needs the path of the log file",
                );
                ActivityOutput::default()
            }
        },
        Some(other) => {
            if let Some(o) = &output {
                d.error(
                    o,
                    format!(
                        "'{other}' is not an activity-log output: expected stdout, file or off"
                    ),
                );
            }
            ActivityOutput::default()
        }
    }
}

fn named_limits(
    n: &Node,
    keys: &[(&str, LimitKind)],
    level: LimitLevel,
    limits: &mut Vec<LimitDef>,
    d: &mut Diags,
) -> Vec<(String, Vec<LimitIdx>)> {
    let mut sink = Sink {
        limits,
        level,
        plan: None,
    };
    let mut out: Vec<(String, Vec<LimitIdx>)> = Vec::new();
    for (key, kind) in keys {
        if let Some(m) = n.get(key) {
            for (name, idx) in sink.named(&m, *kind, d) {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.extend(idx),
                    None => out.push((name, idx)),
                }
            }
        }
    }
    out
}

const NAMED_KEYS: &[(&str, LimitKind)] = &[
    ("assembly-rate-limits", LimitKind::Rate),
    ("assembly-burst-limits", LimitKind::Burst),
    ("assembly-count-limits", LimitKind::Count),
];

fn file_list(doc: &Rc<Doc>, n: Option<Node>, d: &mut Diags) -> Vec<(PathBuf, Anchor)> {
    let Some(n) = n else {
        return Vec::new();
    };
    n.items(d)
        .iter()
        .filter_map(|i| {
            let text = i.text(d)?;
            Some((relative_to(&doc.file, &text), i.anchor(doc)))
        })
        .collect()
}

fn application(doc: &Rc<Doc>, n: &Node, d: &mut Diags) -> Option<AppSpec> {
    if !n.v.is_mapping() {
        d.error(
            n,
            "expected an application like {name: app, client-id: ID, product: P, plan: PLAN}",
        );
        return None;
    }
    n.known(
        &["name", "client-id", "client-secret", "product", "plan"],
        false,
        d,
    );
    let client_id = n.required_text("client-id", "the client id the application sends", d);
    let product = n.required_text("product", "the product name, or name:version", d);
    let plan = n.required_text("plan", "the name of a plan of that product", d);
    let client_secret = n.text_at("client-secret", d);
    let client_id = client_id?;
    if client_id.is_empty() {
        d.error(&n.get("client-id")?, "client-id is empty");
        return None;
    }
    let at = |k: &str| n.get(k).map_or_else(|| n.anchor(doc), |x| x.anchor(doc));
    Some(AppSpec {
        name: n.text_at("name", d).unwrap_or_else(|| client_id.clone()),
        client_id_at: at("client-id"),
        product_at: at("product"),
        plan_at: at("plan"),
        client_id,
        client_secret,
        product: product?,
        plan: plan?,
    })
}

fn tls_profile(doc: &Doc, n: &Node, d: &mut Diags) -> Option<TlsProfile> {
    n.known(
        &["name", "ca-file", "client-cert", "insecure-skip-verify"],
        false,
        d,
    );
    let name = n.required_text(
        "name",
        "the profile name that policies use in tls-profile",
        d,
    );
    let ca_file = n.get("ca-file").and_then(|c| existing_file(doc, &c, d));
    let client_cert = n.get("client-cert").and_then(|c| cert(doc, &c, d));
    let insecure = n.bool_at("insecure-skip-verify", false, d);
    if insecure && let Some(i) = n.get("insecure-skip-verify") {
        d.warn(
            &i,
            "insecure-skip-verify: backend certificates are NOT verified for this profile",
        );
    }
    let files_exist = ca_file.as_ref().is_none_or(|f| f.is_file())
        && client_cert.as_ref().is_none_or(TlsCert::files_exist);
    let name = name?;
    if !files_exist {
        return None;
    }
    let config = crate::tls::client_config(ca_file.as_deref(), client_cert.as_ref(), insecure)
        .map_err(|e| d.error(n, format!("TLS profile '{name}': {e}")))
        .ok()?;
    let without_client_cert = match client_cert {
        None => config.clone(),
        Some(_) => crate::tls::client_config(ca_file.as_deref(), None, insecure)
            .map_err(|e| d.error(n, format!("TLS profile '{name}': {e}")))
            .ok()?,
    };
    Some(TlsProfile {
        name,
        ca_file,
        client_cert,
        insecure_skip_verify: insecure,
        config,
        without_client_cert,
    })
}

pub fn parse(
    doc: &Rc<Doc>,
    overrides: &Overrides,
    limits: &mut Vec<LimitDef>,
    d: &mut Diags,
) -> GatewayConf {
    let root = Node::root(doc);
    if !root.v.is_mapping() && !root.is_null() {
        d.error(
            &root,
            "expected a mapping with listeners, products, applications, ...",
        );
    }
    root.known(TOP_KEYS, false, d);

    let mut listeners = Vec::new();
    let mut written = 0;
    if let Some(ls) = root.get("listeners") {
        let items = ls.items(d);
        written = items.len();
        for item in items {
            if let Some(l) = listener(doc, &item, d) {
                if l.addr.port() != 0 && listeners.iter().any(|x: &Listener| x.addr == l.addr) {
                    d.error(
                        &item,
                        format!("listener address {} is listed twice", l.addr),
                    );
                } else {
                    listeners.push(l);
                }
            }
        }
    }
    if let Some(over) = &overrides.listen {
        // They replace the plain listeners and keep their tls-offloaded setting (true when the
        // file has none, as in the shipped config); TLS listeners stay.
        let offloaded = listeners
            .iter()
            .find(|l| l.tls.is_none())
            .is_none_or(|l| l.tls_offloaded);
        listeners.retain(|l| l.tls.is_some());
        listeners.extend(over.iter().map(|&addr| Listener {
            addr,
            tls: None,
            tls_offloaded: offloaded,
        }));
    }
    for (addr, cert, key) in &overrides.tls_listen {
        if let Some(mode) = others_can_read(key) {
            d.list.push(super::Diagnostic {
                severity: super::Severity::Warning,
                file: key.clone(),
                line: 0,
                column: 0,
                field: "--tls-key".to_string(),
                message: private_file_warning(key, mode),
            });
        }
        let certs = vec![TlsCert {
            cert_chain: cert.clone(),
            private_key: key.clone(),
            server_names: Vec::new(),
        }];
        match crate::tls::server_config(&certs) {
            Ok(config) => listeners.push(Listener {
                addr: *addr,
                tls: Some(TlsListener { certs, config }),
                tls_offloaded: false,
            }),
            Err((_, e)) => d.command_line("--tls-cert", cert, e),
        }
    }
    if overrides.listen.is_none() && overrides.tls_listen.is_empty() && written == 0 {
        let at = root.get("listeners").unwrap_or_else(|| root.clone());
        d.error(
            &at,
            "no listeners: expected at least one {address: IP:PORT}",
        );
    }

    let (admin, admin_token) = match root.get("admin") {
        Some(a) => admin(doc, &a, d),
        None => (None, None),
    };
    let admin = overrides.admin.or(admin);
    // Without a token the admin listener trusts whoever reaches it: only the host itself.
    if let Some(a) = admin
        && admin_token.is_none()
        && !a.ip().to_canonical().is_loopback()
    {
        let message = format!(
            "the admin listener on {a} is not a loopback address and has no token-file: anyone \
             who reaches it could reload the config and reset limits (use 127.0.0.1 or ::1, or \
             admin: {{address: {a}, token-file: PATH}})"
        );
        match root.get("admin") {
            Some(at) if overrides.admin.is_none() => {
                let at = at.get("address").unwrap_or(at);
                d.error(&at, message)
            }
            _ => d.command_line("--admin", &doc.file, message),
        }
    }
    let echo = root.get("echo-backend").and_then(|a| addr(&a, d));
    // One socket cannot serve two roles.
    for (key, a) in [("admin", admin), ("echo-backend", echo)] {
        let Some(a) = a else { continue };
        // Port 0 asks the system for a free port each time, so it never clashes.
        let clash = a.port() != 0
            && (listeners.iter().any(|l| l.addr == a)
                || (key == "echo-backend" && admin == Some(a)));
        if clash {
            let at = root.get(key).unwrap_or_else(|| root.clone());
            d.error(
                &at,
                format!("{a} is already used by a listener or the admin endpoint: {key} needs its own address"),
            );
        }
    }

    let products = file_list(doc, root.get("products"), d);
    let api_files = file_list(doc, root.get("apis"), d);
    if products.is_empty() && api_files.is_empty() {
        d.warn(&root, "no products and no apis: the gateway serves nothing");
    }

    let mut catalog_name = "sandbox".to_string();
    let mut catalog_props = Vec::new();
    let mut catalog_named = Vec::new();
    if let Some(c) = root.get("catalog") {
        let mut known = vec!["name", "properties"];
        known.extend(NAMED_KEYS.iter().map(|(k, _)| *k));
        c.known(&known, false, d);
        if let Some(name) = c.text_at("name", d) {
            catalog_name = name;
        }
        if let Some(p) = c.get("properties") {
            for (k, v) in p.entries(d) {
                if let Some(val) = v.text(d) {
                    catalog_props.push((k, val));
                }
            }
        }
        catalog_named = named_limits(&c, NAMED_KEYS, LimitLevel::CatalogNamed, limits, d);
    }
    let gateway_named = match root.get("gateway") {
        Some(g) => {
            let known: Vec<&str> = NAMED_KEYS.iter().map(|(k, _)| *k).collect();
            g.known(&known, false, d);
            named_limits(&g, NAMED_KEYS, LimitLevel::GatewayNamed, limits, d)
        }
        None => Vec::new(),
    };

    let apps = match root.get("applications") {
        Some(a) => a
            .items(d)
            .iter()
            .filter_map(|i| application(doc, i, d))
            .collect(),
        None => Vec::new(),
    };

    let mut tls_profiles: Vec<TlsProfile> = Vec::new();
    if let Some(t) = root.get("tls-profiles") {
        for item in t.items(d) {
            if let Some(p) = tls_profile(doc, &item, d) {
                if tls_profiles.iter().any(|x| x.name == p.name) {
                    d.error(&item, format!("TLS profile '{}' is defined twice", p.name));
                } else {
                    tls_profiles.push(p);
                }
            }
        }
    }

    let bounds = root
        .get("bounds")
        .map_or_else(Bounds::default, |b| bounds(&b, d));

    let activity_log = root
        .get("activity-log")
        .map_or_else(ActivityOutput::default, |a| activity_log(doc, &a, d));

    let trusted_proxies = root
        .get("trusted-proxies")
        .map(|t| trusted_proxies(&t, d))
        .unwrap_or_default();

    GatewayConf {
        activity_log,
        trusted_proxies,
        listeners,
        admin,
        admin_token,
        echo,
        bounds,
        products,
        api_files,
        catalog_name,
        catalog_props,
        catalog_named,
        gateway_named,
        apps,
        tls_profiles,
    }
}
