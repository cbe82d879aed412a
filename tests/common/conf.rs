//! Temporary config directories: `gateway.yaml` from a template, the seed API and Product YAML,
//! or small keyless API/Product YAML without limits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::repo_root;

/// The seed files, as shipped in `conf/`.
pub const SEED_API: &str = "test-yahel-websocket-api_1.0.0.yaml";
pub const SEED_PRODUCT: &str = "test-yahel-websocket-product_1.0.0.yaml";
pub const SEED_BASE_PATH: &str = "/test-yahel-websocket-api";
pub const SEED_PRODUCT_NAME: &str = "test-yahel-websocket-product";
pub const SEED_PLAN: &str = "default-plan";
pub const CLIENT_ID_HEADER: &str = "X-IBM-Client-Id";
/// The client id of the application `SeedGateway` configures.
pub const DEMO_CLIENT_ID: &str = "demo-client-id";

/// File names `write_open_api` uses.
pub const OPEN_API: &str = "open-api_1.0.0.yaml";
pub const OPEN_PRODUCT: &str = "open-product_1.0.0.yaml";
pub const OPEN_PRODUCT_NAME: &str = "open-product";

/// A directory under the system temp dir, removed on drop unless `WSGATE_KEEP_TEMP` is set
/// (then its path is printed, for looking at a failed test's config).
pub struct TempConf {
    dir: PathBuf,
}

impl TempConf {
    pub fn new() -> TempConf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "wsgate-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempConf { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path of a file in the directory (it need not exist).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `contents` to `name` and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.file(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Writes `name` from `template` with every `{{KEY}}` replaced; panics if a placeholder is
    /// left, so a typo fails loudly instead of reaching the gateway.
    pub fn write_template(&self, name: &str, template: &str, vars: &[(&str, &str)]) -> PathBuf {
        self.write(name, &fill(template, vars))
    }

    /// `gateway.yaml` from a template (see `write_template`).
    pub fn write_gateway(&self, template: &str, vars: &[(&str, &str)]) -> PathBuf {
        self.write_template("gateway.yaml", template, vars)
    }

    /// Copies the seed API and Product YAML from `conf/` unchanged.
    pub fn copy_seed(&self) -> &Self {
        for f in [SEED_API, SEED_PRODUCT] {
            let from = repo_root().join("conf").join(f);
            std::fs::copy(&from, self.file(f))
                .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        self
    }

    /// Writes a keyless API (`OPEN_API`) with `base_path`, schemes ws and wss, only a
    /// `websocket-upgrade` to `$(target-url)`, and its product (`OPEN_PRODUCT`, plan
    /// `default-plan`) without any limit.
    pub fn write_open_api(&self, base_path: &str) -> &Self {
        self.write_template(OPEN_API, OPEN_API_YAML, &[("BASE_PATH", base_path)]);
        self.write(OPEN_PRODUCT, OPEN_PRODUCT_YAML);
        self
    }

    /// Writes several keyless APIs like `write_open_api`'s, each with its own name, base path,
    /// schemes, `tls-profile` and target, all in one product (`OPEN_PRODUCT`, so
    /// `GatewayYaml::open` serves them). API files are `<name>_1.0.0.yaml`.
    pub fn write_open_apis(&self, apis: &[OpenApi]) -> &Self {
        for api in apis {
            self.write(&api.file_name(), &api.render());
        }
        let mut plan = String::new();
        let mut refs = String::new();
        for api in apis {
            plan.push_str(&format!("      {}1.0.0: {{}}\n", api.name));
            refs.push_str(&format!(
                "  {}1.0.0:\n    $ref: {}\n",
                api.name,
                api.file_name()
            ));
        }
        let product = OPEN_PRODUCT_YAML
            .replace("      open-api1.0.0: {}\n", &plan)
            .replace("  open-api1.0.0:\n    $ref: open-api_1.0.0.yaml\n", &refs);
        assert!(
            !product.contains("open-api1.0.0") || apis.iter().any(|a| a.name == "open-api"),
            "the product template changed: {product}"
        );
        self.write(OPEN_PRODUCT, &product);
        self
    }
}

/// One keyless API of `TempConf::write_open_apis`: the `OPEN_API_YAML` template with edits.
#[derive(Clone, Debug)]
pub struct OpenApi {
    /// `x-ibm-name` and title; the file is `<name>_1.0.0.yaml`.
    pub name: String,
    pub base_path: String,
    /// The API's `schemes` (default ws and wss).
    pub schemes: Vec<String>,
    /// `tls-profile` of the websocket-upgrade policy.
    pub tls_profile: Option<String>,
    /// A literal `target-url` instead of `$(target-url)` (the catalog property).
    pub target_url: Option<String>,
}

impl OpenApi {
    pub fn new(name: &str, base_path: &str) -> OpenApi {
        OpenApi {
            name: name.into(),
            base_path: base_path.into(),
            schemes: vec!["ws".into(), "wss".into()],
            tls_profile: None,
            target_url: None,
        }
    }

    pub fn schemes(mut self, schemes: &[&str]) -> Self {
        self.schemes = schemes.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn tls_profile(mut self, profile: &str) -> Self {
        self.tls_profile = Some(profile.into());
        self
    }

    pub fn target_url(mut self, url: &str) -> Self {
        self.target_url = Some(url.into());
        self
    }

    pub fn file_name(&self) -> String {
        format!("{}_1.0.0.yaml", self.name)
    }

    pub fn render(&self) -> String {
        let mut y = fill(OPEN_API_YAML, &[("BASE_PATH", &self.base_path)]);
        let mut edit = |from: &str, to: &str| {
            assert_eq!(y.matches(from).count(), 1, "{from:?} in OPEN_API_YAML");
            y = y.replacen(from, to, 1);
        };
        edit(
            "  title: open-api\n  x-ibm-name: open-api\n",
            &format!("  title: {0}\n  x-ibm-name: {0}\n", self.name),
        );
        let target = self.target_url.as_deref().unwrap_or("$(target-url)");
        let mut upgrade = format!("          target-url: {}\n", quote(target));
        if let Some(p) = &self.tls_profile {
            upgrade.push_str(&format!("          tls-profile: {}\n", quote(p)));
        }
        edit("          target-url: $(target-url)\n", &upgrade);
        let mut schemes = String::from("schemes:\n");
        for s in &self.schemes {
            schemes.push_str(&format!("  - {s}\n"));
        }
        edit("schemes:\n  - ws\n  - wss\n", &schemes);
        y
    }
}

impl Default for TempConf {
    fn default() -> Self {
        TempConf::new()
    }
}

impl Drop for TempConf {
    fn drop(&mut self) {
        if std::env::var_os("WSGATE_KEEP_TEMP").is_some() || std::thread::panicking() {
            eprintln!("config kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Replaces `{{KEY}}` placeholders; panics on one without a value.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    if let Some(i) = out.find("{{") {
        let end = out[i..].find("}}").map(|j| i + j + 2).unwrap_or(out.len());
        panic!("template placeholder {} has no value", &out[i..end]);
    }
    out
}

/// One certificate of a TLS listener (`tls.certificates[]`).
#[derive(Clone, Debug)]
pub struct TlsCertConf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `server-names`; empty leaves the key out (names then come from the certificate).
    pub server_names: Vec<String>,
}

impl TlsCertConf {
    pub fn new(cert: &Path, key: &Path) -> TlsCertConf {
        TlsCertConf {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            server_names: Vec::new(),
        }
    }

    pub fn server_names(mut self, names: &[&str]) -> Self {
        self.server_names = names.iter().map(|n| n.to_string()).collect();
        self
    }
}

/// One entry of `tls-profiles`.
#[derive(Clone, Debug)]
pub struct TlsProfileConf {
    pub name: String,
    pub ca_file: Option<PathBuf>,
    /// (cert, key) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub insecure_skip_verify: bool,
}

/// Builds a `gateway.yaml`. Defaults: one plain listener on 127.0.0.1:0 that is TLS-offloaded
/// (so the seed's `https`/`wss` API is served), an admin listener on 127.0.0.1:0, no echo
/// backend, the bounds of the spec's example.
#[derive(Clone, Debug)]
pub struct GatewayYaml {
    /// Plain listeners (each `tls-offloaded` when `tls_offloaded`).
    pub listeners: Vec<String>,
    pub tls_offloaded: bool,
    /// TLS listeners on 127.0.0.1:0, after the plain ones: each a list of certificates.
    pub tls_listeners: Vec<Vec<TlsCertConf>>,
    pub tls_profiles: Vec<TlsProfileConf>,
    pub admin: bool,
    pub echo_backend: bool,
    pub products: Vec<String>,
    pub catalog_name: String,
    pub properties: Vec<(String, String)>,
    /// (name, client-id, product, plan)
    pub applications: Vec<(String, String, String, String)>,
    pub bounds: Vec<(String, String)>,
    /// Extra top-level YAML appended verbatim.
    pub extra: String,
}

impl GatewayYaml {
    fn base(products: Vec<String>, target_url: &str) -> GatewayYaml {
        GatewayYaml {
            listeners: vec!["127.0.0.1:0".into()],
            tls_offloaded: true,
            tls_listeners: Vec::new(),
            tls_profiles: Vec::new(),
            admin: true,
            echo_backend: false,
            products,
            catalog_name: "sandbox".into(),
            properties: vec![("target-url".into(), target_url.into())],
            applications: Vec::new(),
            bounds: [
                ("max-connections", "9000"),
                ("max-message-size", "16MiB"),
                ("idle-timeout", "1h"),
                ("header-timeout", "10s"),
                ("handshake-timeout", "10s"),
                ("close-grace", "5s"),
                ("shutdown-grace", "10s"),
                ("buffer-bound", "64KiB"),
                ("over-limit", "close"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            extra: String::new(),
        }
    }

    /// The seed product with the demo application (`DEMO_CLIENT_ID`) on `default-plan`.
    pub fn seed(target_url: &str) -> GatewayYaml {
        let mut g = GatewayYaml::base(vec![SEED_PRODUCT.into()], target_url);
        g.applications.push((
            "demo-app".into(),
            DEMO_CLIENT_ID.into(),
            SEED_PRODUCT_NAME.into(),
            SEED_PLAN.into(),
        ));
        g
    }

    /// The keyless product of `TempConf::write_open_api`.
    pub fn open(target_url: &str) -> GatewayYaml {
        GatewayYaml::base(vec![OPEN_PRODUCT.into()], target_url)
    }

    /// Sets (or adds) one bound, e.g. `bound("max-message-size", "1KiB")`.
    pub fn bound(mut self, name: &str, value: &str) -> Self {
        match self.bounds.iter_mut().find(|(k, _)| k == name) {
            Some(b) => b.1 = value.into(),
            None => self.bounds.push((name.into(), value.into())),
        }
        self
    }

    pub fn property(mut self, name: &str, value: &str) -> Self {
        match self.properties.iter_mut().find(|(k, _)| k == name) {
            Some(p) => p.1 = value.into(),
            None => self.properties.push((name.into(), value.into())),
        }
        self
    }

    pub fn application(mut self, name: &str, client_id: &str, product: &str, plan: &str) -> Self {
        self.applications
            .push((name.into(), client_id.into(), product.into(), plan.into()));
        self
    }

    /// Whether the plain listeners are `tls-offloaded` (default true).
    pub fn tls_offloaded(mut self, on: bool) -> Self {
        self.tls_offloaded = on;
        self
    }

    /// Removes the plain listeners (a TLS listener must then be added).
    pub fn no_plain_listeners(mut self) -> Self {
        self.listeners.clear();
        self
    }

    /// Adds a TLS listener on 127.0.0.1:0 with these certificates (`gw.addr("tls")`).
    pub fn tls_listener(mut self, certs: &[TlsCertConf]) -> Self {
        self.tls_listeners.push(certs.to_vec());
        self
    }

    /// Adds a `tls-profiles` entry trusting `ca_file` (system roots when `None`), with a client
    /// certificate (cert, key) for mutual TLS when given.
    pub fn tls_profile(
        mut self,
        name: &str,
        ca_file: Option<&Path>,
        client_cert: Option<(&Path, &Path)>,
    ) -> Self {
        self.tls_profiles.push(TlsProfileConf {
            name: name.into(),
            ca_file: ca_file.map(Path::to_path_buf),
            client_cert: client_cert.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
            insecure_skip_verify: false,
        });
        self
    }

    /// Adds a `tls-profiles` entry with `insecure-skip-verify: true` and nothing else.
    pub fn tls_profile_insecure(mut self, name: &str) -> Self {
        self.tls_profiles.push(TlsProfileConf {
            name: name.into(),
            ca_file: None,
            client_cert: None,
            insecure_skip_verify: true,
        });
        self
    }

    pub fn echo_backend(mut self, on: bool) -> Self {
        self.echo_backend = on;
        self
    }

    pub fn admin(mut self, on: bool) -> Self {
        self.admin = on;
        self
    }

    pub fn render(&self) -> String {
        let mut y = String::from("listeners:\n");
        for l in &self.listeners {
            y.push_str(&format!("  - address: {l}\n"));
            if self.tls_offloaded {
                y.push_str("    tls-offloaded: true\n");
            }
        }
        for certs in &self.tls_listeners {
            y.push_str("  - address: 127.0.0.1:0\n    tls:\n      certificates:\n");
            for c in certs {
                y.push_str(&format!(
                    "        - cert: {}\n          key: {}\n",
                    quote_path(&c.cert),
                    quote_path(&c.key)
                ));
                if !c.server_names.is_empty() {
                    let names: Vec<String> = c.server_names.iter().map(|n| quote(n)).collect();
                    y.push_str(&format!("          server-names: [{}]\n", names.join(", ")));
                }
            }
        }
        if !self.tls_profiles.is_empty() {
            y.push_str("tls-profiles:\n");
            for p in &self.tls_profiles {
                y.push_str(&format!("  - name: {}\n", quote(&p.name)));
                if let Some(ca) = &p.ca_file {
                    y.push_str(&format!("    ca-file: {}\n", quote_path(ca)));
                }
                if let Some((c, k)) = &p.client_cert {
                    y.push_str(&format!(
                        "    client-cert: {{cert: {}, key: {}}}\n",
                        quote_path(c),
                        quote_path(k)
                    ));
                }
                if p.insecure_skip_verify {
                    y.push_str("    insecure-skip-verify: true\n");
                }
            }
        }
        if self.admin {
            y.push_str("admin: 127.0.0.1:0\n");
        }
        if self.echo_backend {
            y.push_str("echo-backend: 127.0.0.1:0\n");
        }
        y.push_str(&format!("products: [{}]\n", self.products.join(", ")));
        y.push_str(&format!(
            "catalog:\n  name: {}\n  properties:\n",
            self.catalog_name
        ));
        for (k, v) in &self.properties {
            y.push_str(&format!("    {k}: {}\n", quote(v)));
        }
        if self.applications.is_empty() {
            y.push_str("applications: []\n");
        } else {
            y.push_str("applications:\n");
            for (name, id, product, plan) in &self.applications {
                y.push_str(&format!(
                    "  - {{ name: {}, client-id: {}, product: {}, plan: {} }}\n",
                    quote(name),
                    quote(id),
                    quote(product),
                    quote(plan)
                ));
            }
        }
        y.push_str("bounds:\n");
        for (k, v) in &self.bounds {
            y.push_str(&format!("  {k}: {v}\n"));
        }
        y.push_str(&self.extra);
        y
    }

    /// Renders into `conf` as `gateway.yaml` and returns its path.
    pub fn write(&self, conf: &TempConf) -> PathBuf {
        conf.write("gateway.yaml", &self.render())
    }
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn quote_path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// A keyless API: no security, no limits, one `websocket-upgrade` to `$(target-url)`.
pub const OPEN_API_YAML: &str = r#"swagger: '2.0'
info:
  version: 1.0.0
  title: open-api
  x-ibm-name: open-api
basePath: {{BASE_PATH}}
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
      - websocket-upgrade:
          title: websocket-upgrade
          version: 2.0.0
          verb: keep
          target-url: $(target-url)
          follow-redirects: false
          timeout: 60
          parameter-control:
            type: blocklist
            values: []
          header-control:
            type: blocklist
            values: []
          inject-proxy-headers: true
paths:
  /:
    get:
      responses:
        '200':
          description: success
security: []
schemes:
  - ws
  - wss
"#;

pub const OPEN_PRODUCT_YAML: &str = r#"info:
  version: 1.0.0
  title: open-product
  name: open-product
gateways:
  - datapower-api-gateway
plans:
  default-plan:
    title: Default Plan
    description: No limits
    apis:
      open-api1.0.0: {}
apis:
  open-api1.0.0:
    $ref: open-api_1.0.0.yaml
visibility:
  view:
    type: public
    orgs: []
    tags: []
    enabled: true
  subscribe:
    type: authenticated
    orgs: []
    tags: []
    enabled: true
product: 1.0.0
"#;
