//! The gateway's own config file (`conf/gateway.yaml`): listeners, bounds, which products to
//! serve, the catalog and gateway-named limits, applications and TLS profiles.

use super::Overrides;
use super::limits::Sink;
use super::node::{Anchor, Diags, Doc, Node};
use super::units;
use crate::model::{
    ActivityOutput, Bounds, LimitDef, LimitIdx, LimitKind, LimitLevel, Listener, OverLimitAction,
    TlsCert, TlsListener, TlsProfile,
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
        Some(k) => existing_file(doc, &k, d),
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

/// Below this the kernel would raise the value anyway.
const SOCKET_BUFFER_MIN: u64 = 4096;

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
        ],
        false,
        d,
    );
    let size = |key: &str, min: u64, d: &mut Diags| -> Option<u64> {
        let v = n.get(key)?;
        let text = v.text(d)?;
        match units::size(&text) {
            Ok(s) if s >= min => Some(s),
            Ok(_) => {
                d.error(&v, format!("{key} must be at least {min} bytes"));
                None
            }
            Err(e) => {
                d.error(&v, format!("{key}: {e}"));
                None
            }
        }
    };
    let duration = |key: &str, zero_ok: bool, d: &mut Diags| -> Option<Duration> {
        let v = n.get(key)?;
        let text = v.text(d)?;
        match units::duration(&text) {
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
            Some(x) => b.max_connections = usize::try_from(x).unwrap_or(usize::MAX),
            None => {}
        }
    }
    if let Some(v) = n.get("max-pending-per-address") {
        match v.u64(d) {
            Some(0) => d.error(&v, "max-pending-per-address must be at least 1"),
            Some(x) => b.max_pending_per_address = usize::try_from(x).unwrap_or(usize::MAX),
            None => {}
        }
    }
    if let Some(s) = size("max-message-size", 1, d) {
        b.max_message_size = s;
    }
    if let Some(s) = size("buffer-bound", 1, d) {
        b.buffer_bound = usize::try_from(s).unwrap_or(usize::MAX);
        // The engine needs a whole request head plus its 101 in one buffer.
        let min = crate::engine::MIN_BUFFER;
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
    if let Some(s) = size("socket-buffer", 0, d) {
        if s != 0 && s < SOCKET_BUFFER_MIN {
            if let Some(v) = n.get("socket-buffer") {
                d.error(
                    &v,
                    "socket-buffer must be 0 (the kernel's autotuning) or at least 4KiB",
                );
            }
        } else {
            b.socket_buffer = usize::try_from(s.min(i32::MAX as u64 / 2)).unwrap_or(0);
        }
    }
    if let Some(t) = duration("idle-timeout", false, d) {
        b.idle_timeout = t;
    }
    if let Some(t) = duration("header-timeout", false, d) {
        b.header_timeout = t;
    }
    if let Some(t) = duration("handshake-timeout", false, d) {
        b.handshake_timeout = t;
    }
    if let Some(t) = duration("close-grace", true, d) {
        b.close_grace = t;
    }
    if let Some(t) = duration("shutdown-grace", true, d) {
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
    Some(TlsProfile {
        name,
        ca_file,
        client_cert,
        insecure_skip_verify: insecure,
        config,
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

    let admin = root.get("admin").and_then(|a| addr(&a, d));
    let admin = overrides.admin.or(admin);
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

    GatewayConf {
        activity_log,
        listeners,
        admin,
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
