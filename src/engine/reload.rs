//! Reload (SIGHUP, `POST /reload`): load the config again from the files and arguments the
//! process started with and, if it is valid, serve new connections with it at once.
//!
//! Open connections keep the `Arc<Model>` they started with, and their limit slots are rewritten
//! to the new counter layout once, here ([`crate::policy::limits::Reload`]): they keep counting
//! in the same counters, against the maxima they started with. A plain call in flight also
//! keeps the routes, applications and limit indices of its config ([`Past`]) for the rest of its
//! flow. An invalid config changes nothing. Listeners are bound once: a config that changes them (or the buffer size, which
//! the buffer pool is made of) is served with the old ones, and the log says a restart is needed.

use super::Gateway;
use crate::config::{Diagnostic, Loaded};
use crate::model::Model;
use crate::model::{LimitIdx, Settings};
use crate::policy::preflow::ClientIndex;
use crate::route::RouteTable;
use std::sync::{Arc, Weak};

/// An earlier config that a plain call in flight began on: the flow after its backend call (or
/// its `catch`) runs on these routes, applications and limits.
pub(super) struct Past {
    model: Weak<Model>,
    pub routes: Arc<RouteTable>,
    pub clients: ClientIndex,
    /// The config's limit indices → their retired definitions in the current counters.
    pub limits: Vec<LimitIdx>,
}

/// Which config `model` is: `Some(None)` the current one, `Some(Some(p))` an earlier one that
/// calls still use, `None` one that is gone.
pub(super) fn config_of<'a>(
    past: &'a [Past],
    current: &Arc<Model>,
    model: &Arc<Model>,
) -> Option<Option<&'a Past>> {
    if Arc::ptr_eq(current, model) {
        return Some(None);
    }
    past.iter().find(|p| p.is(model)).map(Some)
}

impl Past {
    fn is(&self, model: &Arc<Model>) -> bool {
        std::ptr::eq(self.model.as_ptr(), Arc::as_ptr(model))
    }
}

/// Loads the config again; set by whoever started the gateway.
pub type Loader = Box<dyn FnMut() -> Result<Loaded, Vec<Diagnostic>> + Send>;

/// What a reload did.
#[derive(Debug)]
pub struct Outcome {
    pub applied: bool,
    /// Errors (and warnings) of a config that was not applied; warnings of one that was.
    pub diagnostics: Vec<String>,
    /// What stayed as it was because it needs a restart.
    pub restart_needed: Vec<String>,
    /// Counters that moved to the new layout.
    pub carried: usize,
    /// Open connections that keep the config they started with.
    pub connections: usize,
}

impl Gateway {
    /// How to load the config again; without one, a reload is refused.
    pub fn set_loader(&mut self, loader: Loader) {
        self.loader = Some(loader);
    }

    pub(super) fn reload(&mut self) -> Outcome {
        let mut out = Outcome {
            applied: false,
            diagnostics: Vec::new(),
            restart_needed: Vec::new(),
            carried: 0,
            connections: 0,
        };
        let Some(loader) = self.loader.as_mut() else {
            let why = "this gateway was not started from a config file".to_string();
            log::error!("reload refused: {why}");
            out.diagnostics.push(why.clone());
            self.status.reloaded(super::unix_now(), Err(&why));
            return out;
        };
        log::info!(
            "reloading the config from {}",
            self.cx.model.settings.source.display()
        );
        let mut model = match loader() {
            Ok(Loaded { model, warnings }) => {
                for w in &warnings {
                    log::warn!("{w}");
                    out.diagnostics.push(w.to_string());
                }
                model
            }
            Err(diags) => {
                for d in &diags {
                    log::error!("{d}");
                    out.diagnostics.push(d.to_string());
                }
                log::error!(
                    "reload failed with {} problem(s): the running config stays",
                    diags.len()
                );
                let first = out.diagnostics.first().map_or("", String::as_str);
                self.status.reloaded(super::unix_now(), Err(first));
                return out;
            }
        };
        out.restart_needed = keep_bound(&self.cx.model.settings, &mut model.settings);
        for what in &out.restart_needed {
            log::warn!("reload: {what} changed; that takes a restart, the old value stays");
        }

        let mut flows = self.calls_in_flight();
        let mut in_use = self.limits_in_use();
        in_use.extend(flows.iter().flat_map(|f| f.limits.iter().copied()));
        let mut carry = self.cx.counters.reload(&model, self.cx.now_secs, in_use);
        for f in &mut flows {
            for l in &mut f.limits {
                *l = carry.limit(*l);
            }
        }
        self.cx.past = flows;
        self.cx.routes = Arc::new(RouteTable::new(&model.apis));
        self.cx.clients = crate::policy::preflow::client_index(&model);
        self.cx.model = Arc::new(model);
        out.connections = self.move_connections(&mut carry);
        out.carried = carry.carried;
        out.applied = true;
        self.status.reloaded(super::unix_now(), Ok(()));
        log::info!(
            "config reloaded: {} APIs, {} limits; {} counters carried over, {} dropped; {} open connections keep the limits they started with",
            self.cx.model.apis.len(),
            self.cx.model.limits.len(),
            carry.carried,
            carry.dropped,
            out.connections
        );
        out
    }

    /// The configs that plain calls in flight began on, each with its limits in the outgoing
    /// counters' indices: they may still run the rest of their flow.
    fn calls_in_flight(&self) -> Vec<Past> {
        let mut flows: Vec<Past> = Vec::new();
        for (_, c) in self.conns.iter() {
            let call = c.hs.as_ref().is_some_and(|h| h.call.is_some());
            if !call || flows.iter().any(|f| f.is(&c.model)) {
                continue;
            }
            let (routes, clients, limits) = match config_of(&self.cx.past, &self.cx.model, &c.model)
            {
                Some(None) => (
                    self.cx.routes.clone(),
                    self.cx.clients.clone(),
                    (0..self.cx.model.limits.len() as LimitIdx).collect(),
                ),
                Some(Some(p)) => (p.routes.clone(), p.clients.clone(), p.limits.clone()),
                None => continue,
            };
            flows.push(Past {
                model: Arc::downgrade(&c.model),
                routes,
                clients,
                limits,
            });
        }
        flows
    }

    /// The limits that open connections' slots name (their message limits are the counters'
    /// own profiles, which a reload carries by itself).
    fn limits_in_use(&self) -> Vec<LimitIdx> {
        let mut v = Vec::new();
        for l in self.conns.iter().filter_map(|(_, c)| c.limits.as_deref()) {
            let mut held = l.held.clone();
            held.slots_mut(|s| v.push(s.limit()));
        }
        v
    }

    /// Points every open connection's slots at the new layout and pins the retired definitions
    /// it uses (a call in flight: every limit its flow may still resolve). Returns how many
    /// connections hold limits.
    fn move_connections(&mut self, carry: &mut crate::policy::limits::Reload) -> usize {
        let mut moved = 0;
        for (_, c) in self.conns.iter_mut() {
            let flow = match c.hs.as_ref().is_some_and(|h| h.call.is_some()) {
                true => config_of(&self.cx.past, &self.cx.model, &c.model).flatten(),
                false => None,
            };
            if flow.is_some() {
                c.limits.get_or_insert_with(Default::default);
            }
            let Some(l) = c.limits.as_deref_mut() else {
                continue;
            };
            moved += 1;
            l.held
                .slots_mut(|s| *s = carry.slot(&mut self.cx.counters, *s));
            // The pins of the old layout went with it; these are the new layout's.
            l.retired.clear();
            let mut note = |limit: LimitIdx| {
                if self.cx.counters.is_retired(limit) && !l.retired.contains(&limit) {
                    l.retired.push(limit);
                }
            };
            l.held.slots_mut(|s| note(s.limit()));
            for &r in flow.map_or(&[][..], |p| &p.limits) {
                note(r);
            }
            for &r in &l.retired {
                self.cx.counters.pin(r);
            }
        }
        moved
    }
}

/// Puts back into `new` what is bound at start and cannot change without a restart, and names
/// what differed.
fn keep_bound(old: &Settings, new: &mut Settings) -> Vec<String> {
    let mut changed = Vec::new();
    let shape = |s: &Settings| {
        s.listeners
            .iter()
            .map(|l| {
                let certs: Vec<_> = l.tls.iter().flat_map(|t| t.certs.iter()).collect();
                format!("{} {} {:?}", l.addr, l.tls_offloaded, certs)
            })
            .collect::<Vec<_>>()
    };
    if shape(old) != shape(new) {
        changed.push("the listeners".to_string());
    }
    if old.admin != new.admin {
        changed.push("the admin listener".to_string());
    }
    if old.echo != new.echo {
        changed.push("the echo listener".to_string());
    }
    new.listeners = old.listeners.clone();
    new.admin = old.admin;
    new.echo = old.echo;
    if old.bounds.buffer_bound != new.bounds.buffer_bound {
        changed.push("buffer-bound".to_string());
        new.bounds.buffer_bound = old.bounds.buffer_bound;
    }
    // The key table is one allocation, sized at start.
    if old.bounds.max_limit_keys != new.bounds.max_limit_keys {
        changed.push("max-limit-keys".to_string());
        new.bounds.max_limit_keys = old.bounds.max_limit_keys;
    }
    // The activity log's output is opened at start (SIGUSR1 reopens the same file).
    if old.activity_log != new.activity_log {
        changed.push("activity-log".to_string());
        new.activity_log = old.activity_log.clone();
    }
    changed
}

/// The JSON answer of `POST /reload`.
pub(super) fn outcome_json(o: &Outcome) -> String {
    let list = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|s| crate::json::write::quoted(s)).collect();
        format!("[{}]", items.join(","))
    };
    let key = if o.applied { "warnings" } else { "errors" };
    format!(
        "{{\"applied\":{},\"{key}\":{},\"restart_needed\":{},\"carried\":{},\"connections\":{}}}\n",
        o.applied,
        list(&o.diagnostics),
        list(&o.restart_needed),
        o.carried,
        o.connections
    )
}
