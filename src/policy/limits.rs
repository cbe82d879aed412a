//! The limit state of the whole gateway: every rate, burst and count counter (spec §2.1, §3.6–§3.8,
//! §5; decisions 4, 5, 7 and 8).
//!
//! Layout. Each counter is an 8-byte [`Cell`]. Every counter whose key can be computed from load
//! time integers (application, API) lives in one dense array: each limit owns a block at `base`
//! with `rows × cols` cells, `index = base + row * cols + col`, where `row` is the application
//! (its rank among the applications of the limit's plan for plan limits; a single row when
//! `is-client` is false) and `col` is the API name (its rank among the plan's API names for plan
//! limits; a single column without `use-api-name`). Keys that only exist at run time (remote IPs
//! of keyless calls, expanded `dynamic-value`s, an application outside the limit's plan) go to a
//! bounded open-addressing table whose cells follow the dense ones in the same array, so that the
//! per-message path is the same for both.
//!
//! Time is always passed in as whole seconds since the Unix epoch; windows are
//! `floor(now / period)` (decision 5), so day windows start at 00:00 UTC and week windows on
//! Thursday 00:00 UTC.

mod admin;
mod headers;
mod held;
mod profile;
mod reload;
mod table;
#[cfg(test)]
mod tests;

use crate::model::{AppIdx, LimitIdx, LimitKind, LimitLevel, LimitValue, Model, PlanIdx};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::net::IpAddr;

pub use admin::CounterView;
pub use headers::{write_limit_headers, write_retry_headers};
pub use held::{Held, HeldDrain};
pub use profile::{MessageLimit, Profile};
pub use reload::Reload;

use table::{Desc, Entry};

/// At most this many dense cells (8 bytes each, so 128 MiB); a limit whose block would not fit
/// keeps all its keys in the bounded table instead, which fails closed when full.
const DENSE_MAX_CELLS: u64 = 1 << 24;
/// Upper bound on the table capacity, whatever the caller asks for.
const TABLE_MAX: usize = 1 << 24;

/// Who a counter belongs to (decision 4, §3.6).
#[derive(Debug, Clone, Copy)]
pub struct Consumer<'a> {
    /// The application identified by the client id (in this model an application has exactly one
    /// client id, so `use-app-id` and `use-client-id` give the same key); `None` for a keyless
    /// call, which is then keyed by `remote_ip`.
    pub app: Option<AppIdx>,
    pub remote_ip: IpAddr,
    pub api: crate::model::ApiIdx,
    /// The expanded `dynamic-value` of this limit. Only read when the limit has a
    /// `dynamic-value`; `None` then counts as the empty expansion.
    pub dynamic: Option<&'a str>,
}

/// A resolved counter: computed once per (limit, consumer), then used per message.
///
/// A slot into the bounded table carries the key's hash, so that a slot whose entry was evicted
/// in the meantime (expired window, count at 0, admin reset) is noticed and re-resolved instead
/// of touching another key's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    cell: u32,
    limit: LimitIdx,
    h1: u64,
}

impl Slot {
    /// The limit this counter belongs to.
    pub fn limit(self) -> LimitIdx {
        self.limit
    }
    /// A slot that matches no counter: every operation on it fails closed or does nothing.
    const NONE: Slot = Slot {
        cell: u32::MAX,
        limit: u32::MAX,
        h1: 0,
    };
}

/// Result of [`Counters::slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Counter(Slot),
    /// The limit is `unlimited` (or 0, or not a limit of this model): no counter, no headers.
    Unlimited,
    /// The bounded table has no free or evictable entry for this key: the caller rejects (fail
    /// closed) and logs.
    Full,
}

impl Lookup {
    pub fn slot(self) -> Option<Slot> {
        match self {
            Lookup::Counter(s) => Some(s),
            _ => None,
        }
    }
}

/// Outcome of one consume or inc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// Over the limit: hard → not allowed; soft → allowed, warn.
    pub exceeded: bool,
    /// The first exceeded call of this window and key (for counts: since the count was last
    /// lowered), so a warning is logged once.
    pub first_in_window: bool,
    pub limit: u64,
    /// 0 when exceeded, soft limits included.
    pub remaining: u64,
    /// Seconds until the window ends; 0 for counts.
    pub reset_in_secs: u64,
}

/// One counter in one `u64`, so that it can become an atomic: bit 63 records that an exceeded
/// call was already reported, bits 40..63 hold the low 23 bits of the window number (rate and
/// burst limits; 0 for counts), bits 0..40 the count. Window tags are compared for equality
/// only: a cell left untouched for exactly 2^23 windows and used again reads as current with
/// its old count, which can only refuse more, never less. Counts saturate at [`COUNT_FULL`],
/// which is above every maximum the config accepts ([`crate::model::LIMIT_MAX`]), so a
/// saturated count is still over its maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cell(u64);

const COUNT_BITS: u32 = 40;
const COUNT_FULL: u64 = (1 << COUNT_BITS) - 1;
const TAG_BITS: u32 = 23;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const WARNED: u64 = 1 << 63;
const _: () = assert!(COUNT_BITS + TAG_BITS + 1 == 64);
const _: () = assert!(crate::model::LIMIT_MAX < COUNT_FULL);

impl Cell {
    /// An empty counter of window `tag`.
    fn fresh(tag: u32) -> Cell {
        Cell((u64::from(tag) & TAG_MASK) << COUNT_BITS)
    }
    fn value(&self) -> u64 {
        self.0 & COUNT_FULL
    }
    /// Sets the count, saturating at [`COUNT_FULL`].
    fn set_value(&mut self, v: u64) {
        self.0 = (self.0 & !COUNT_FULL) | v.min(COUNT_FULL);
    }
    fn window(&self) -> u32 {
        ((self.0 >> COUNT_BITS) & TAG_MASK) as u32
    }
    fn warned(&self) -> bool {
        self.0 & WARNED != 0
    }
    fn set_warned(&mut self, on: bool) {
        if on {
            self.0 |= WARNED;
        } else {
            self.0 &= !WARNED;
        }
    }
}

/// What one consume checks a cell against: the limit's maximum and hardness, and for windowed
/// limits the current window's tag and the seconds left in it (0 for counts, which have none).
#[derive(Debug, Clone, Copy)]
struct Rule {
    max: u64,
    hard: bool,
    windowed: bool,
    window: u32,
    reset_in_secs: u64,
}

/// What makes a limit of one config the same limit in the next: its key prefix (level, plan,
/// name), kind and window, and what its keys are made of. Its maximum and hardness may change:
/// the counters carry over and each connection checks the maximum of the config it started on.
fn identity(prefix: &str, def: &crate::model::LimitDef, period: u64) -> String {
    format!(
        "{prefix}|{:?}|{period}|{}|{}|{:?}",
        def.kind,
        def.is_client,
        def.use_api_name,
        def.dynamic_value.as_ref().map(|t| &t.parts)
    )
}

/// A hash that is the same in every run and config (unkeyed SipHash): it only feeds the keyed
/// table hashes, which are what an attacker would have to predict.
fn stable_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The window number of `now` for `period` (≥ 1) seconds.
fn window_of(now: u64, period: u64) -> u64 {
    now / period.max(1)
}

/// The bits of a window number kept in a cell.
fn window_tag(window: u64) -> u32 {
    (window & TAG_MASK) as u32
}

/// What the counters need of one limit definition, fixed at load.
#[derive(Debug, Clone)]
struct Layout {
    /// False for `unlimited` (and 0): no counter at all.
    counted: bool,
    /// Window length in seconds; 0 for count limits (no window).
    period: u64,
    max: u64,
    hard: bool,
    is_client: bool,
    use_api: bool,
    /// The `dynamic-value` needs expanding per call: every key goes to the table.
    dyn_sparse: bool,
    /// Plan limits are laid out over that plan's applications and API names only.
    plan: Option<PlanIdx>,
    /// The dense block exists (false when it would not fit [`DENSE_MAX_CELLS`]).
    dense: bool,
    base: u32,
    rows: u32,
    cols: u32,
    /// The dense cells this limit's slots may name: its store's block, `start..end` (empty when
    /// the store has none). A dense slot outside it is stale and fails closed.
    cells_start: u32,
    cells_end: u32,
    /// The window of the last time seen, `start..end` in seconds, and its number as kept in
    /// cells: the message path compares against it and divides only when a boundary is crossed.
    window: Window,
    /// The limit whose cells hold this one's counters: itself, except for a definition kept
    /// for connections opened before a reload, which counts in the cells of the current limit
    /// of the same identity with its own maximum.
    store: LimitIdx,
    /// Hash of the limit's identity (see [`identity`]): part of every table key, so that a key
    /// hashes the same in the layouts of two configs.
    ident: u64,
    /// Retired definitions only: connections that still use it. A retired limit without a
    /// current one of its identity drops its counters when this comes back to 0.
    users: u32,
    /// Table entries this limit holds, and how many of them are kept for it whatever the other
    /// limits hold (see `table`'s share rule).
    keys: u32,
    reserve: u32,
}

/// A window cached by a layout (see [`Layout::window`]); empty until a time is first seen.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: u64,
    end: u64,
    tag: u32,
}

impl Layout {
    fn windowed(&self) -> bool {
        self.period != 0
    }

    /// The tag of the window of `now` and the seconds to its end; (0, 0) without a window.
    fn window_at(&mut self, now: u64) -> (u32, u64) {
        if self.period == 0 {
            return (0, 0);
        }
        let w = &mut self.window;
        if now < w.start || now >= w.end {
            // A boundary was crossed (or the clock went back): the only division.
            let n = window_of(now, self.period);
            *w = Window {
                start: n.saturating_mul(self.period),
                end: n.saturating_add(1).saturating_mul(self.period),
                tag: window_tag(n),
            };
        }
        (w.tag, w.end.saturating_sub(now))
    }
    fn size(&self) -> u32 {
        self.rows.saturating_mul(self.cols)
    }
    /// Whether keys of this limit can go to the run-time table: dynamic values, a block too big
    /// for the dense array, keyless callers of a limit outside plans.
    fn uses_table(&self) -> bool {
        self.counted && (self.dyn_sparse || !self.dense || (self.is_client && self.plan.is_none()))
    }
}

/// Load-time integer maps between model indices and dense rows and columns, plus the names
/// needed to print keys.
#[derive(Debug, Default)]
struct Index {
    app_names: Vec<Box<str>>,
    app_plan: Vec<PlanIdx>,
    /// Rank of the application among the applications of its plan.
    app_rank: Vec<u32>,
    /// Applications of each plan, by rank.
    plan_apps: Vec<Vec<AppIdx>>,
    /// API index → API name id (two versions of one API share the name, as `use-api-name` says).
    api_name_id: Vec<u32>,
    api_names: Vec<Box<str>>,
    /// Sorted API name ids of each plan.
    plan_api_names: Vec<Vec<u32>>,
    /// Stable hashes of the application and API names, for table keys (see [`stable_hash`]).
    app_hash: Vec<u64>,
    api_hash: Vec<u64>,
}

impl Index {
    fn new(model: &Model) -> Index {
        let n_plans = model.plans.len();
        let mut ix = Index {
            plan_apps: vec![Vec::new(); n_plans],
            ..Index::default()
        };
        for (i, app) in model.applications.iter().enumerate() {
            let Ok(i) = AppIdx::try_from(i) else { break };
            ix.app_names.push(app.name.as_str().into());
            ix.app_hash.push(stable_hash(&app.name));
            ix.app_plan.push(app.plan);
            let rank = match ix.plan_apps.get_mut(usize::from(app.plan)) {
                Some(apps) => {
                    apps.push(i);
                    u32::try_from(apps.len() - 1).unwrap_or(u32::MAX)
                }
                None => u32::MAX,
            };
            ix.app_rank.push(rank);
        }
        let mut ids: HashMap<&str, u32> = HashMap::new();
        for api in &model.apis {
            let next = u32::try_from(ix.api_names.len()).unwrap_or(u32::MAX);
            let id = *ids.entry(api.name.as_str()).or_insert_with(|| {
                ix.api_names.push(api.name.as_str().into());
                ix.api_hash.push(stable_hash(&api.name));
                next
            });
            ix.api_name_id.push(id);
        }
        ix.plan_api_names = model
            .plans
            .iter()
            .map(|p| {
                let mut v: Vec<u32> = p
                    .apis
                    .iter()
                    .filter_map(|&a| ix.api_name_id.get(usize::from(a)).copied())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        ix
    }

    /// Dense row of a consumer, `None` when it has no row (keyless call, or an application
    /// outside the limit's plan).
    fn row(&self, l: &Layout, app: Option<AppIdx>) -> Option<u32> {
        if !l.is_client {
            return Some(0);
        }
        let app = app?;
        let a = usize::try_from(app).ok()?;
        match l.plan {
            Some(p) => {
                if *self.app_plan.get(a)? == p {
                    self.app_rank.get(a).copied().filter(|&r| r < l.rows)
                } else {
                    None
                }
            }
            None => (app < l.rows).then_some(app),
        }
    }

    /// Dense column of an API, `None` when the API is not one of the limit's.
    fn col(&self, l: &Layout, api: crate::model::ApiIdx) -> Option<u32> {
        if !l.use_api {
            return Some(0);
        }
        let id = *self.api_name_id.get(usize::from(api))?;
        match l.plan {
            Some(p) => {
                let names = self.plan_api_names.get(usize::from(p))?;
                u32::try_from(names.binary_search(&id).ok()?).ok()
            }
            None => Some(id),
        }
    }

    /// The application of a dense row.
    fn row_app(&self, l: &Layout, row: u32) -> Option<AppIdx> {
        match l.plan {
            Some(p) => self
                .plan_apps
                .get(usize::from(p))?
                .get(row as usize)
                .copied(),
            None => Some(row),
        }
    }

    /// The API name id of a dense column.
    fn col_api(&self, l: &Layout, col: u32) -> Option<u32> {
        match l.plan {
            Some(p) => self
                .plan_api_names
                .get(usize::from(p))?
                .get(col as usize)
                .copied(),
            None => Some(col),
        }
    }
}

/// The limit state of the whole gateway.
pub struct Counters {
    /// The model's limits, in its order, then retired definitions that connections opened
    /// before a reload still use.
    layouts: Vec<Layout>,
    /// How many of `layouts` are the model's.
    current: u32,
    /// What identifies each limit across configs (see [`identity`]).
    identity: Vec<Box<str>>,
    /// `name` of each limit definition.
    limit_names: Vec<Box<str>>,
    kinds: Vec<LimitKind>,
    /// Key text before the consumer: `plan:<plan>:<name>`, `catalog:<name>`, `gateway:<name>`.
    key_prefix: Vec<Box<str>>,
    /// A `dynamic-value` without run-time references, shown in keys.
    static_dv: Vec<Option<Box<str>>>,
    index: Index,
    /// Dense cells, then one cell per table entry.
    cells: Vec<Cell>,
    dense_len: u32,
    /// The bounded table for run-time keys, parallel to `cells[dense_len..]`.
    entries: Vec<Entry>,
    /// What each table entry's key was, for `snapshot` and `reset`.
    descs: Vec<Desc>,
    /// Table entries beyond the limits' reserves, taken first come, and how many are taken.
    shared: u32,
    shared_used: u32,
    /// Where the next sweep for expired entries starts, and the limit-clock second of the last
    /// one: a sweep runs at most once a second, so callers who keep a limit over its share cannot
    /// make every message pay for one.
    sweep_at: usize,
    last_sweep: Option<u64>,
    hash1: RandomState,
    hash2: RandomState,
    /// The latest time passed in, for `inc`/`dec`, which take none.
    last_now: u64,
    /// How many times each limit said no (a call refused or a message dropped or closing), by
    /// layout, and the totals by name of the counters this one replaced at a reload.
    rejections: Vec<u64>,
    earlier_rejections: Vec<(Box<str>, u64)>,
    /// The limit that said no last, until taken: tells a refusal's cause to the activity log.
    last_rejected: Option<LimitIdx>,
    /// Keys that found no room in the table (a request refused, or a message failing closed),
    /// since start: reloads carry it over.
    keys_full: u64,
    /// The message limits of open WebSockets, one entry per distinct set.
    profiles: profile::Profiles,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("limits", &self.layouts.len())
            .field("dense_cells", &self.dense_len)
            .field("table_capacity", &self.entries.len())
            .finish()
    }
}

impl Counters {
    /// Lays out the flat arrays for every limit of the model. `dynamic_slots`: capacity of the
    /// bounded table for run-time consumers (at most 2^24).
    pub fn new(model: &Model, dynamic_slots: usize) -> Counters {
        Counters::with_hashers(model, dynamic_slots, RandomState::new(), RandomState::new())
    }

    /// [`Counters::new`] with given hash keys: a reload keeps them, so that a run-time key
    /// lands on the same hashes in the new layout.
    fn with_hashers(
        model: &Model,
        dynamic_slots: usize,
        hash1: RandomState,
        hash2: RandomState,
    ) -> Counters {
        let index = Index::new(model);
        let n_apps = u32::try_from(index.app_names.len()).unwrap_or(u32::MAX);
        let n_api_names = u32::try_from(index.api_names.len()).unwrap_or(u32::MAX);
        let mut used: u64 = 0;
        let mut layouts = Vec::with_capacity(model.limits.len());
        let mut key_prefix = Vec::with_capacity(model.limits.len());
        let mut static_dv = Vec::with_capacity(model.limits.len());
        let mut identities = Vec::with_capacity(model.limits.len());
        for (i, def) in model.limits.iter().enumerate() {
            let (counted, period, max) = match def.value {
                LimitValue::Unlimited => (false, 0, 0),
                LimitValue::Rate { max, period_secs } => (max > 0, period_secs.max(1), max),
                LimitValue::Count { max } => (max > 0, 0, max),
            };
            let plan_level = matches!(def.level, LimitLevel::PlanDefault | LimitLevel::PlanNamed);
            let plan = def
                .plan
                .filter(|&p| plan_level && usize::from(p) < model.plans.len());
            let (dyn_sparse, dv) = match &def.dynamic_value {
                None => (false, None),
                Some(t) => match t.as_static() {
                    Some(s) => (false, Some(Box::<str>::from(s))),
                    None => (true, None),
                },
            };
            let rows = if !def.is_client {
                1
            } else if let Some(p) = plan {
                let n = index.plan_apps.get(usize::from(p)).map_or(0, Vec::len);
                u32::try_from(n).unwrap_or(u32::MAX)
            } else {
                n_apps
            };
            let cols = if !def.use_api_name {
                1
            } else if let Some(p) = plan {
                let n = index.plan_api_names.get(usize::from(p)).map_or(0, Vec::len);
                u32::try_from(n).unwrap_or(u32::MAX)
            } else {
                n_api_names
            };
            let size = u64::from(rows) * u64::from(cols);
            let dense = counted && !dyn_sparse && used.saturating_add(size) <= DENSE_MAX_CELLS;
            if counted && !dyn_sparse && !dense {
                log::warn!(
                    "limit {} ({}): {} counters do not fit the dense array; its keys use the bounded table",
                    def.name,
                    def.origin,
                    size
                );
            }
            let base = used as u32;
            if dense {
                used += size;
            }
            let prefix: Box<str> = match def.level {
                LimitLevel::PlanDefault | LimitLevel::PlanNamed => {
                    let plan_name = def
                        .plan
                        .and_then(|p| model.plans.get(usize::from(p)))
                        .map_or("?", |p| p.name.as_str());
                    format!("plan:{}:{}", plan_name, def.name).into()
                }
                LimitLevel::CatalogNamed => format!("catalog:{}", def.name).into(),
                LimitLevel::GatewayNamed => format!("gateway:{}", def.name).into(),
            };
            let ident = identity(&prefix, def, period);
            let cells_end = if dense { base + size as u32 } else { base };
            layouts.push(Layout {
                counted,
                period,
                max,
                hard: def.hard || def.kind == LimitKind::Burst,
                is_client: def.is_client,
                use_api: def.use_api_name,
                dyn_sparse,
                plan,
                dense,
                base,
                rows,
                cols,
                cells_start: base,
                cells_end,
                window: Window::default(),
                store: i as LimitIdx,
                ident: stable_hash(&ident),
                users: 0,
                keys: 0,
                reserve: 0,
            });
            key_prefix.push(prefix);
            identities.push(ident.into_boxed_str());
            static_dv.push(dv);
        }
        let capacity = dynamic_slots.min(TABLE_MAX);
        let shared = table::share_out(&mut layouts, capacity);
        let dense_len = used as u32;
        let mut cells = Vec::with_capacity(dense_len as usize + capacity);
        cells.resize(dense_len as usize + capacity, Cell::default());
        Counters {
            current: layouts.len() as u32,
            layouts,
            identity: identities,
            limit_names: model
                .limits
                .iter()
                .map(|d| d.name.as_str().into())
                .collect(),
            kinds: model.limits.iter().map(|d| d.kind).collect(),
            key_prefix,
            static_dv,
            index,
            cells,
            dense_len,
            entries: vec![Entry::EMPTY; capacity],
            descs: vec![Desc::default(); capacity],
            shared,
            shared_used: 0,
            sweep_at: 0,
            last_sweep: None,
            hash1,
            hash2,
            last_now: 0,
            rejections: vec![0; model.limits.len()],
            earlier_rejections: Vec::new(),
            last_rejected: None,
            keys_full: 0,
            // At most one profile per connection.
            profiles: profile::Profiles::new(model.settings.bounds.max_connections),
        }
    }

    /// Resolves the counter of `limit` of the current config for `who`; call once per (limit,
    /// consumer), e.g. at the handshake, and keep the slot for the connection's life.
    pub fn slot(&mut self, limit: LimitIdx, who: &Consumer, now_secs: u64) -> Lookup {
        self.slot_in(None, limit, who, now_secs)
    }

    /// [`Counters::slot`] for a limit index of the config `view` names: `None` is the current
    /// config; `Some(map)` an earlier one that a call in flight began on, whose limit `i` is the
    /// retired definition `map[i]` (see [`Reload::limit`]).
    pub fn slot_in(
        &mut self,
        view: Option<&[LimitIdx]>,
        limit: LimitIdx,
        who: &Consumer,
        now_secs: u64,
    ) -> Lookup {
        self.last_now = now_secs;
        let limit = match view {
            None => limit,
            Some(v) => match v.get(limit as usize) {
                Some(&l) => l,
                None => return Lookup::Unlimited,
            },
        };
        let Some(store) = self.layouts.get(limit as usize).map(|l| l.store) else {
            return Lookup::Unlimited;
        };
        let Some(l) = self.layouts.get(store as usize) else {
            return Lookup::Unlimited;
        };
        if !l.counted {
            return Lookup::Unlimited;
        }
        if l.dense
            && let Some(row) = self.index.row(l, who.app)
            && let Some(col) = self.index.col(l, who.api)
            && row < l.rows
            && col < l.cols
        {
            // The whole block fits below DENSE_MAX_CELLS, so this cannot overflow.
            let cell = l.base + row * l.cols + col;
            return Lookup::Counter(Slot { cell, limit, h1: 0 });
        }
        match self.table_slot(store, who, now_secs) {
            Lookup::Counter(s) => Lookup::Counter(Slot { limit, ..s }),
            Lookup::Full => {
                // The caller refuses: a refusal of this limit, like one over its maximum.
                self.keys_full += 1;
                self.rejected(limit);
                Lookup::Full
            }
            other => other,
        }
    }

    /// Rate and burst: adds `weight` (0 counts as 1, spec §3.4) to the current window. Over a
    /// hard limit the call is rejected and nothing is added (decision 5); over a soft limit it is
    /// added, allowed, and reported exceeded. On a count slot this is `inc`.
    pub fn consume(&mut self, slot: Slot, weight: u64, now_secs: u64) -> Verdict {
        self.last_now = now_secs;
        let dense = slot.cell < self.dense_len;
        let Some(l) = self.layouts.get_mut(slot.limit as usize) else {
            return Verdict::default();
        };
        let (max, hard, windowed) = (l.max, l.hard, l.windowed());
        let (window, reset_in_secs) = l.window_at(now_secs);
        // A dense slot is a cell of its limit's block, checked against the block's bounds: the
        // message path of most limits. Table slots check that their entry still holds the key.
        let cell = if dense {
            (slot.cell >= l.cells_start && slot.cell < l.cells_end).then_some(slot.cell as usize)
        } else {
            self.cell_for(slot, now_secs, true)
        };
        let v = match cell {
            Some(i) => {
                let rule = Rule {
                    max,
                    hard,
                    windowed,
                    window,
                    reset_in_secs,
                };
                self.add(i, rule, weight.max(1))
            }
            // The key's entry was evicted and the table is full of live keys: fail closed.
            None => {
                if slot.cell >= self.dense_len {
                    self.keys_full += 1;
                }
                Verdict {
                    allowed: !hard,
                    exceeded: true,
                    first_in_window: false,
                    limit: max,
                    remaining: 0,
                    reset_in_secs,
                }
            }
        };
        if !v.allowed {
            self.rejected(slot.limit);
        }
        v
    }

    fn rejected(&mut self, limit: LimitIdx) {
        let i = limit as usize;
        if i >= self.rejections.len() && i < self.layouts.len() {
            // A definition retired by a reload: once per definition.
            self.rejections.resize(self.layouts.len(), 0);
        }
        if let Some(r) = self.rejections.get_mut(i) {
            *r += 1;
        }
        self.last_rejected = Some(limit);
    }

    /// How many keys found no room in the run-time table since start.
    pub fn keys_full(&self) -> u64 {
        self.keys_full
    }

    /// Rejections so far by limit name, in the order names first appear; counters replaced at
    /// a reload are included, so the totals never go back.
    pub fn rejections_by_name(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = Vec::new();
        let mine = self
            .limit_names
            .iter()
            .enumerate()
            .map(|(i, n)| (&**n, self.rejections.get(i).copied().unwrap_or(0)));
        let earlier = self.earlier_rejections.iter().map(|(n, v)| (&**n, *v));
        for (name, v) in mine.chain(earlier) {
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += v,
                None => out.push((name, v)),
            }
        }
        out
    }

    /// At a reload: keeps the rejection totals of the counters being replaced.
    pub(crate) fn carry_rejections(&mut self, old: &Counters) {
        self.keys_full = old.keys_full;
        self.earlier_rejections = old
            .rejections_by_name()
            .into_iter()
            .map(|(n, v)| (n.into(), v))
            .collect();
    }

    /// The name of a limit by its index in these counters (retired definitions included).
    pub fn limit_name(&self, limit: LimitIdx) -> Option<&str> {
        self.limit_names.get(limit as usize).map(|n| &**n)
    }

    /// The limit that rejected something since the last call, if any.
    pub fn take_last_rejected(&mut self) -> Option<LimitIdx> {
        self.last_rejected.take()
    }

    /// Gives back `weight` in the current window, clamped at 0. The caller passes at most what
    /// its own transaction consumed in this window (§2.1, replenish). A window that already ended
    /// has nothing to give back. On a count slot this is `dec`.
    pub fn replenish(&mut self, slot: Slot, weight: u64, now_secs: u64) {
        self.last_now = now_secs;
        if let Some(i) = self.cell_for(slot, now_secs, false) {
            self.sub(i, slot.limit, weight.max(1), now_secs);
        }
    }

    /// Count: adds `weight`; over a hard maximum the call is rejected and nothing is added.
    pub fn inc(&mut self, slot: Slot, weight: u64) -> Verdict {
        self.consume(slot, weight, self.last_now)
    }

    /// Count: takes back `weight`, never below 0.
    pub fn dec(&mut self, slot: Slot, weight: u64) {
        self.replenish(slot, weight, self.last_now)
    }

    /// The cell of a slot: a dense cell as is; a table entry after checking it still holds the
    /// slot's key, else re-resolved (and, with `insert`, re-created).
    fn cell_for(&mut self, slot: Slot, now: u64, insert: bool) -> Option<usize> {
        let store = self.layouts.get(slot.limit as usize)?.store;
        let l = self.layouts.get(store as usize)?;
        if !l.counted {
            return None;
        }
        if slot.cell < self.dense_len {
            let inside = l.dense && slot.cell >= l.base && slot.cell - l.base < l.size();
            return inside.then_some(slot.cell as usize);
        }
        let e = (slot.cell - self.dense_len) as usize;
        let entry = self.entries.get(e)?;
        if entry.limit == store && entry.h1 == slot.h1 {
            Some(self.dense_len as usize + e)
        } else {
            self.table_refind(
                Slot {
                    limit: store,
                    ..slot
                },
                now,
                insert,
            )
        }
    }

    fn add(&mut self, i: usize, rule: Rule, weight: u64) -> Verdict {
        let Rule {
            max,
            hard,
            windowed,
            window,
            reset_in_secs,
        } = rule;
        let Some(c) = self.cells.get_mut(i) else {
            return Verdict::default();
        };
        if windowed && c.window() != window {
            *c = Cell::fresh(window);
        }
        let new = c.value().saturating_add(weight);
        let exceeded = new > max;
        let first_in_window = exceeded && !c.warned();
        if exceeded {
            c.set_warned(true);
        }
        let allowed = !exceeded || !hard;
        if allowed {
            c.set_value(new);
        }
        Verdict {
            allowed,
            exceeded,
            first_in_window,
            limit: max,
            remaining: if exceeded { 0 } else { max - new },
            reset_in_secs,
        }
    }

    fn sub(&mut self, i: usize, limit: LimitIdx, weight: u64, now: u64) {
        let Some(l) = self.layouts.get(limit as usize) else {
            return;
        };
        let (max, period) = (l.max, l.period);
        let Some(c) = self.cells.get_mut(i) else {
            return;
        };
        if period != 0 {
            // An older window reads as 0: nothing to give back.
            if c.window() == window_tag(window_of(now, period)) {
                c.set_value(c.value().saturating_sub(weight));
            }
        } else {
            let v = c.value().saturating_sub(weight);
            c.set_value(v);
            if v <= max {
                // Back under the maximum: the next exceeded inc is reported again.
                c.set_warned(false);
            }
        }
    }
}
