//! Loads API Connect API and Product YAML and the gateway's own config into the compiled
//! [`Model`]. Every problem found is reported with its file, line, column and field path, and
//! one run reports all of them. After this, nothing looks at YAML again.

mod api;
mod assembly;
mod gateway;
pub mod limit_value;
mod limits;
pub mod locate;
mod node;
mod product;
mod schema;
pub use schema::check_from_text;
mod summary;
pub mod template;
pub mod units;

pub use summary::summary;

use crate::model::{ApiIdx, AppIdx, Application, Model, PlanIdx, Settings};
use api::{ApiSrc, Env};
use node::{Anchor, Diags, Doc, Node};
use product::ApiRef;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Settings from the command line that win over the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--property NAME=VALUE`: wins over every other source of an API property.
    pub properties: Vec<(String, String)>,
    /// `--listen`: replaces the file's plain listeners; they keep the first plain listener's
    /// `tls-offloaded` (true when the file has no plain listener). TLS listeners stay.
    pub listen: Option<Vec<SocketAddr>>,
    /// `--tls-listen ADDR --tls-cert FILE --tls-key FILE`: TLS listeners added to the file's,
    /// each serving its one certificate for every server name.
    pub tls_listen: Vec<(SocketAddr, PathBuf, PathBuf)>,
    /// `--admin`: replaces the file's admin address.
    pub admin: Option<SocketAddr>,
}

#[derive(Debug)]
pub struct Loaded {
    pub model: Model,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file itself (it cannot be read).
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `plans.gold.assembly-count-limits.conns[0].value`.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, " {sev}: ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Loads the gateway config at `path` and everything it names. `Err` holds every error found
/// (and the warnings); `Ok` holds the model and the warnings.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Loaded, Vec<Diagnostic>> {
    let mut d = Diags::default();
    let Some(gw_doc) = Doc::load(path, None, &mut d) else {
        return Err(d.list);
    };
    let mut limits = Vec::new();
    let gw = gateway::parse(&gw_doc, overrides, &mut limits, &mut d);

    let mut products = Vec::new();
    let mut plans = Vec::new();
    let mut srcs = Vec::new();
    let mut product_failed = false;
    for (file, at) in &gw.products {
        if let Some(doc) = Doc::load(file, Some(at), &mut d)
            && let Some(p) = product::parse(&doc, &mut products, &mut plans, &mut limits, &mut d)
        {
            srcs.push(p);
        } else {
            product_failed = true;
        }
    }

    // Every API file once, in the order products name them, then the gateway's own list.
    let mut apis: Vec<ApiSrc> = Vec::new();
    let mut api_files: Vec<PathBuf> = Vec::new();
    let mut load_api = |file: &Path, at: &Anchor, d: &mut Diags| -> Option<usize> {
        let canon = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        if let Some(i) = api_files.iter().position(|f| *f == canon) {
            return Some(i);
        }
        let doc = Doc::load(file, Some(at), d)?;
        let src = api::identify(doc, at.clone(), d)?;
        if let Some(other) = apis
            .iter()
            .find(|a| a.name == src.name && a.version == src.version)
        {
            d.error_at(
                at,
                format!(
                    "API {}:{} is already loaded from '{}'",
                    src.name,
                    src.version,
                    other.doc.file.display()
                ),
            );
            return None;
        }
        api_files.push(canon);
        apis.push(src);
        Some(apis.len() - 1)
    };
    let mut keyed: Vec<Vec<(String, Option<usize>)>> = Vec::new();
    for p in &srcs {
        let mut keys = Vec::new();
        for (key, r, at) in &p.apis {
            if let ApiRef::File(f) = r {
                keys.push((key.clone(), load_api(f, at, &mut d)));
            }
        }
        keyed.push(keys);
    }
    for (file, at) in &gw.api_files {
        load_api(file, at, &mut d);
    }
    for (p, keys) in srcs.iter().zip(keyed.iter_mut()) {
        for (key, r, at) in &p.apis {
            let ApiRef::Name { name, version } = r else {
                continue;
            };
            let found = apis
                .iter()
                .position(|a| a.name == *name && version.as_ref().is_none_or(|v| *v == a.version));
            if found.is_none() {
                d.error_at(
                    at,
                    format!(
                        "no loaded API is named {name}{}: reference it with $ref to its file",
                        version.as_ref().map_or(String::new(), |v| format!(":{v}"))
                    ),
                );
            }
            keys.push((key.clone(), found));
        }
    }

    // Plans ↔ APIs.
    let mut plan_srcs: Vec<Vec<usize>> = vec![Vec::new(); plans.len()];
    for (p, keys) in srcs.iter().zip(&keyed) {
        for (pi, listed) in &p.plan_apis {
            let chosen: Vec<usize> = match listed {
                None => keys.iter().filter_map(|(_, i)| *i).collect(),
                Some(list) => list
                    .iter()
                    .filter_map(|(key, at)| match keys.iter().find(|(k, _)| k == key) {
                        Some((_, i)) => *i,
                        None => {
                            d.error_at(
                                at,
                                format!(
                                    "the plan lists API '{key}', which is not in the product's \
                                     apis"
                                ),
                            );
                            None
                        }
                    })
                    .collect(),
            };
            for s in chosen {
                if !plan_srcs[*pi as usize].contains(&s) {
                    plan_srcs[*pi as usize].push(s);
                    apis[s].plans.push(*pi);
                }
            }
        }
    }

    // Non-enforced APIs are not served at all.
    let mut api_idx: Vec<Option<ApiIdx>> = Vec::new();
    let mut next: usize = 0;
    for a in &apis {
        if a.enforced {
            match ApiIdx::try_from(next) {
                Ok(i) => {
                    api_idx.push(Some(i));
                    next += 1;
                }
                Err(_) => {
                    d.error_at(&a.from, "too many APIs");
                    api_idx.push(None);
                }
            }
        } else {
            let root = Node::root(&a.doc);
            let at = root
                .get("x-ibm-configuration")
                .and_then(|c| c.get("enforced"))
                .unwrap_or(root);
            d.warn(&at, "enforced is false: this API is not served");
            api_idx.push(None);
        }
    }
    for (plan, list) in plans.iter_mut().zip(&plan_srcs) {
        plan.apis = list.iter().filter_map(|&s| api_idx[s]).collect();
    }

    let env = Env {
        catalog: &gw.catalog_name,
        catalog_props: &gw.catalog_props,
        overrides: &overrides.properties,
        plans: &plans,
        limits: &limits,
        catalog_named: &gw.catalog_named,
        gateway_named: &gw.gateway_named,
        tls_profiles: &gw.tls_profiles,
        listeners: &gw.listeners,
    };
    let mut model_apis = Vec::new();
    for (src, idx) in apis.iter().zip(&api_idx) {
        if idx.is_none() {
            continue;
        }
        let (api, base_at) = api::compile(src, &env, &mut d);
        if let Some(other) = model_apis
            .iter()
            .find(|o: &&crate::model::Api| o.base_path == api.base_path)
        {
            d.error_at(
                &base_at,
                format!(
                    "base path '{}' is already used by API {}:{} in '{}'; base paths must be \
                     unique",
                    api.base_path,
                    other.name,
                    other.version,
                    other.file.display()
                ),
            );
        }
        model_apis.push(api);
    }

    let applications = applications(&gw.apps, &products, &plans, product_failed, &mut d);

    if d.has_errors() {
        return Err(d.list);
    }
    Ok(Loaded {
        model: Model {
            settings: Settings {
                source: path.to_path_buf(),
                listeners: gw.listeners,
                admin: gw.admin,
                admin_token: gw.admin_token,
                echo: gw.echo,
                bounds: gw.bounds,
                activity_log: gw.activity_log,
                trusted_proxies: gw.trusted_proxies,
            },
            apis: model_apis,
            products,
            plans,
            limits,
            applications,
            tls_profiles: gw.tls_profiles,
        },
        warnings: d.list,
    })
}

fn applications(
    specs: &[gateway::AppSpec],
    products: &[crate::model::Product],
    plans: &[crate::model::Plan],
    product_failed: bool,
    d: &mut Diags,
) -> Vec<Application> {
    let mut out: Vec<Application> = Vec::new();
    for a in specs {
        if let Some(other) = out.iter().find(|o| o.client_id == a.client_id) {
            d.error_at(
                &a.client_id_at,
                format!(
                    "client id '{}' is already used by application '{}'; client ids must be unique",
                    a.client_id, other.name
                ),
            );
            continue;
        }
        let (pname, pver) = match a.product.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (a.product.as_str(), None),
        };
        let found: Vec<&crate::model::Product> = products
            .iter()
            .filter(|p| p.name == pname && pver.is_none_or(|v| v == p.version))
            .collect();
        let product = match found.as_slice() {
            [p] => *p,
            // The product may be in a file that failed to load; that error is already there.
            [] if product_failed => continue,
            [] => {
                let known: Vec<String> = products
                    .iter()
                    .map(|p| format!("{}:{}", p.name, p.version))
                    .collect();
                d.error_at(
                    &a.product_at,
                    format!(
                        "no product '{}' is loaded (loaded: {})",
                        a.product,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            }
            _ => {
                d.error_at(
                    &a.product_at,
                    format!(
                        "several versions of product '{}' are loaded: write name:version",
                        a.product
                    ),
                );
                continue;
            }
        };
        let plan: Option<PlanIdx> = product
            .plans
            .iter()
            .copied()
            .find(|&pi| plans.get(pi as usize).is_some_and(|p| p.name == a.plan));
        let Some(plan) = plan else {
            let names: Vec<&str> = product
                .plans
                .iter()
                .filter_map(|&pi| plans.get(pi as usize).map(|p| p.name.as_str()))
                .collect();
            d.error_at(
                &a.plan_at,
                format!(
                    "application '{}' is subscribed to plan '{}', which does not exist in \
                     product {}:{} (plans: {})",
                    a.name,
                    a.plan,
                    product.name,
                    product.version,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            );
            continue;
        };
        if AppIdx::try_from(out.len()).is_err() {
            d.error_at(&a.client_id_at, "too many applications");
            break;
        }
        out.push(Application {
            name: a.name.clone(),
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.clone(),
            plan,
        });
    }
    out
}
