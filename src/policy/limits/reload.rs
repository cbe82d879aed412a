//! Carrying the counters over to a new config (reload).
//!
//! A counter is the same counter in two configs when its limit has the same identity (level,
//! plan, name, kind, window and key shape; see `identity`) and its key names the same
//! application, API, address and dynamic value. Its value and window carry over; everything else
//! starts empty, as at start-up.
//!
//! Connections opened before the reload keep the definitions they started with: each limit one
//! of them uses becomes a *retired* definition appended to the new layouts, with its old maximum
//! and hardness, counting in the cells of the current limit of its identity. A limit that has no
//! successor keeps its counters (in the run-time table) for as long as a connection uses it, and
//! drops them when the last one ends ([`Counters::unpin`]).
//!
//! Slots are rewritten once, at the reload ([`Reload::slot`]); the message path stays as it was.

use super::table::{Desc, Probe, Who};
use super::{Cell, Consumer, Counters, Layout, Slot, table::live};
use crate::model::{ApiIdx, AppIdx, LimitIdx, Model, PlanIdx};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// The old counters and where their slots go in the new ones.
pub struct Reload {
    old: Counters,
    /// Old layout → the retired layout that old connections' slots now name.
    retired: HashMap<LimitIdx, LimitIdx>,
    /// Old limit (one that owns cells) → the new limit that owns them now.
    stores: Vec<Option<LimitIdx>>,
    /// Old dense cell → its counter in the new layout (under the new owner).
    cells: HashMap<u32, Slot>,
    /// Old table entry → its counter in the new layout.
    entries: HashMap<usize, Slot>,
    apps: HashMap<Box<str>, AppIdx>,
    apis: HashMap<Box<str>, ApiIdx>,
    /// Counters that moved to the new layout, and counters dropped with their limit.
    pub carried: usize,
    pub dropped: usize,
}

/// The parts of an old counter's key, in new indices.
enum Parts {
    Consumer(Consumer<'static>),
    /// Known only by its hashes (a re-created entry, or a dynamic value longer than what the
    /// description keeps): they are the same in the new layout.
    Hashes {
        h1: u64,
        h2: u64,
        desc: Desc,
    },
}

impl Counters {
    /// Replaces the counters with the layout of `model`, carrying over every live counter whose
    /// limit still exists. `in_use`: the limits named by the slots of open connections; each
    /// gets a retired definition, which [`Reload::slot`] then points those slots at.
    pub fn reload(
        &mut self,
        model: &Model,
        now: u64,
        in_use: impl IntoIterator<Item = LimitIdx>,
    ) -> Reload {
        let fresh = Counters::with_hashers(
            model,
            self.entries.len(),
            self.hash1.clone(),
            self.hash2.clone(),
        );
        let old = std::mem::replace(self, fresh);
        self.carry_rejections(&old);
        self.last_now = now;
        // A limit that now counts nothing (`unlimited`, 0) is no successor: the connections
        // from before keep counting in their own counters.
        let by_identity: HashMap<&str, LimitIdx> = self
            .identity
            .iter()
            .zip(&self.layouts)
            .enumerate()
            .filter(|(_, (_, l))| l.counted)
            .map(|(i, (id, _))| (&**id, i as LimitIdx))
            .collect();
        let stores: Vec<Option<LimitIdx>> = (0..old.layouts.len())
            .map(|i| by_identity.get(&*old.identity[i]).copied())
            .collect();
        drop(by_identity);
        let mut r = Reload {
            stores,
            retired: HashMap::new(),
            cells: HashMap::new(),
            entries: HashMap::new(),
            apps: self
                .index
                .app_names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as AppIdx))
                .collect(),
            apis: HashMap::new(),
            old,
            carried: 0,
            dropped: 0,
        };
        for (api, &id) in self.index.api_name_id.iter().enumerate() {
            if let Some(n) = self.index.api_names.get(id as usize) {
                r.apis.entry(n.clone()).or_insert(api as ApiIdx);
            }
        }
        let mut used: Vec<LimitIdx> = in_use.into_iter().collect();
        used.extend(r.old.profiles.limits());
        used.sort_unstable();
        used.dedup();
        for i in used {
            r.retire(self, i);
        }
        r.carry(self, now);
        let profiles = std::mem::take(&mut r.old.profiles);
        self.take_profiles(profiles, &mut r);
        r
    }

    /// Marks a retired definition as used by one more connection.
    pub fn pin(&mut self, limit: LimitIdx) {
        self.add_users(limit, 1);
    }

    /// One connection fewer uses a retired definition. A retired limit without a current one
    /// of its identity drops its counters when its last connection ends.
    pub fn unpin(&mut self, limit: LimitIdx) {
        self.add_users(limit, -1);
    }

    /// Whether a slot's limit is a retired definition (kept for connections older than the
    /// config).
    pub fn is_retired(&self, limit: LimitIdx) -> bool {
        limit >= self.current && (limit as usize) < self.layouts.len()
    }

    fn add_users(&mut self, limit: LimitIdx, by: i32) {
        if !self.is_retired(limit) {
            return;
        }
        let store = self.layouts[limit as usize].store;
        let targets = if store == limit {
            [Some(limit), None]
        } else {
            [Some(limit), Some(store)]
        };
        for t in targets.into_iter().flatten() {
            if !self.is_retired(t) {
                continue;
            }
            let l = &mut self.layouts[t as usize];
            l.users = l.users.saturating_add_signed(by);
            if l.users == 0 && l.store == t && l.counted {
                l.counted = false;
                let freed: Vec<usize> = (0..self.entries.len())
                    .filter(|&e| self.entries[e].limit == t)
                    .collect();
                for e in freed {
                    self.table_free(e);
                }
                log::info!(
                    "limit {}: its last connection from before the reload ended; counters dropped",
                    self.key_prefix[t as usize]
                );
            }
        }
    }

    /// Appends a layout copied from `old`'s limit `i`, its counters owned by `store` (itself
    /// when `None`); keys always go to the table.
    fn append_retired(&mut self, old: &Counters, i: LimitIdx, store: Option<LimitIdx>) -> LimitIdx {
        let idx = self.layouts.len() as LimitIdx;
        let src = &old.layouts[i as usize];
        let ident = match store {
            Some(s) => self.layouts[s as usize].ident,
            None => src.ident,
        };
        // Its slots name cells of the store's dense block, if the store has one.
        let (cells_start, cells_end) = match store.map(|s| &self.layouts[s as usize]) {
            Some(s) => (s.cells_start, s.cells_end),
            None => (0, 0),
        };
        self.layouts.push(Layout {
            plan: None::<PlanIdx>,
            dense: false,
            base: 0,
            cells_start,
            cells_end,
            store: store.unwrap_or(idx),
            ident,
            users: 0,
            // What it keeps in the table comes from the shared part.
            keys: 0,
            reserve: 0,
            ..src.clone()
        });
        let i = i as usize;
        self.identity.push(old.identity[i].clone());
        self.limit_names.push(old.limit_names[i].clone());
        self.kinds.push(old.kinds[i]);
        self.key_prefix.push(old.key_prefix[i].clone());
        self.static_dv.push(old.static_dv[i].clone());
        idx
    }

    /// The application called `name` in this layout; one that the config no longer has is
    /// added, in no plan, so that its counters live in the table.
    fn app_named(&mut self, names: &mut HashMap<Box<str>, AppIdx>, name: &str) -> AppIdx {
        if let Some(&a) = names.get(name) {
            return a;
        }
        let ix = &mut self.index;
        let a = ix.app_names.len() as AppIdx;
        ix.app_names.push(name.into());
        ix.app_hash.push(super::stable_hash(name));
        ix.app_plan.push(PlanIdx::MAX);
        ix.app_rank.push(u32::MAX);
        names.insert(name.into(), a);
        a
    }

    /// An API index named `name` in this layout; a name the config no longer has is added as
    /// an API that no limit has a column for.
    fn api_named(&mut self, names: &mut HashMap<Box<str>, ApiIdx>, name: &str) -> ApiIdx {
        if let Some(&a) = names.get(name) {
            return a;
        }
        let ix = &mut self.index;
        let id = ix.api_names.len() as u32;
        ix.api_names.push(name.into());
        ix.api_hash.push(super::stable_hash(name));
        let a = ApiIdx::try_from(ix.api_name_id.len()).unwrap_or(ApiIdx::MAX);
        ix.api_name_id.push(id);
        names.insert(name.into(), a);
        a
    }
}

impl Reload {
    /// The slot of an open connection, rewritten for the new layout. Call once per slot held.
    pub fn slot(&mut self, new: &mut Counters, s: Slot) -> Slot {
        let Some(&r) = self.retired.get(&s.limit) else {
            return Slot::NONE;
        };
        let Some(store) = self.owner(s.limit) else {
            return Slot::NONE;
        };
        let new_store = new.layouts[r as usize].store;
        let found = if s.cell < self.old.dense_len {
            match self.cells.get(&s.cell) {
                Some(&x) => Some(x),
                None => {
                    let x = self
                        .dense_parts(new, store, s.cell)
                        .and_then(|p| self.place(new, new_store, p));
                    if let Some(x) = x {
                        self.cells.insert(s.cell, x);
                    }
                    x
                }
            }
        } else {
            let e = (s.cell - self.old.dense_len) as usize;
            self.entries.get(&e).copied()
        };
        match found {
            Some(x) => Slot { limit: r, ..x },
            // Not counted yet (or evicted): the first use finds or makes its entry by the
            // key's hash, which is the same in the new layout. Dense keys always have a cell.
            None => Slot {
                cell: new.dense_len,
                limit: r,
                h1: s.h1,
            },
        }
    }

    /// The retired layout of old limit `i`, if it was in use (`u32::MAX`, no counter, if not).
    pub fn limit(&self, i: LimitIdx) -> LimitIdx {
        self.retired.get(&i).copied().unwrap_or(u32::MAX)
    }

    /// The old limit that owns the cells of old limit `i`.
    fn owner(&self, i: LimitIdx) -> Option<LimitIdx> {
        self.old.layouts.get(i as usize).map(|l| l.store)
    }

    /// Gives old limit `i` (used by open connections) its retired definition in `new`.
    fn retire(&mut self, new: &mut Counters, i: LimitIdx) {
        let Some(store) = self.owner(i) else { return };
        if !self.old.layouts[store as usize].counted {
            return;
        }
        let new_store = match self.stores[store as usize] {
            Some(s) => s,
            None => {
                // No current limit of its identity: it keeps its own counters while used.
                let o = new.append_retired(&self.old, store, None);
                self.stores[store as usize] = Some(o);
                if i == store {
                    self.retired.insert(i, o);
                    return;
                }
                o
            }
        };
        let r = new.append_retired(&self.old, i, Some(new_store));
        self.retired.insert(i, r);
    }

    /// Moves every live counter of the old layout whose limit has an owner in the new one.
    fn carry(&mut self, new: &mut Counters, now: u64) {
        let old_dense = self.old.dense_len;
        for s in 0..self.old.layouts.len() {
            let l = &self.old.layouts[s];
            if !l.counted || !l.dense || l.store != s as LimitIdx {
                continue;
            }
            let (base, size) = (l.base, l.size());
            for cell in base..base + size {
                let c = self.old.cells[cell as usize];
                if !live(&self.old.layouts[s], &c, now) {
                    continue;
                }
                let Some(to) = self.stores[s] else {
                    self.dropped += 1;
                    continue;
                };
                let placed = self
                    .dense_parts(new, s as LimitIdx, cell)
                    .and_then(|p| self.place(new, to, p));
                if let Some(x) = placed {
                    new.write(x, c, now);
                    self.cells.insert(cell, x);
                    self.carried += 1;
                }
            }
        }
        for e in 0..self.old.entries.len() {
            let entry = self.old.entries[e];
            let Some(l) = self.old.layouts.get(entry.limit as usize) else {
                continue;
            };
            let c = self.old.cells[old_dense as usize + e];
            if !live(l, &c, now) {
                continue;
            }
            let Some(to) = self.stores.get(entry.limit as usize).copied().flatten() else {
                self.dropped += 1;
                continue;
            };
            let parts = self.table_parts(new, e);
            if let Some(x) = self.place(new, to, parts) {
                new.write(x, c, now);
                self.entries.insert(e, x);
                self.carried += 1;
            }
        }
    }

    /// The key parts of an old dense cell of limit `s`.
    fn dense_parts(&mut self, new: &mut Counters, s: LimitIdx, cell: u32) -> Option<Parts> {
        let l = self.old.layouts.get(s as usize)?;
        let k = cell.checked_sub(l.base)?;
        let (row, col) = (k / l.cols.max(1), k % l.cols.max(1));
        let app = if l.is_client {
            Some(self.old.index.row_app(l, row)?)
        } else {
            None
        };
        let api_id = if l.use_api {
            Some(self.old.index.col_api(l, col)?)
        } else {
            None
        };
        Some(Parts::Consumer(self.consumer(new, app, api_id)))
    }

    /// The key parts of an old table entry. Keys hash the same in both layouts, so most are
    /// moved by their hashes; an application's key without a dynamic value is placed by its
    /// names instead, since the new layout may have a dense cell for it.
    fn table_parts(&mut self, new: &mut Counters, e: usize) -> Parts {
        let entry = self.old.entries[e];
        let d = self.old.descs[e];
        let api_id = (d.api != u32::MAX && d.api & (1 << 31) == 0).then_some(d.api);
        let sparse = self
            .old
            .layouts
            .get(entry.limit as usize)
            .is_none_or(|l| l.dyn_sparse);
        if let Who::App(a) = d.who
            && !sparse
            && (d.api == u32::MAX || api_id.is_some())
        {
            return Parts::Consumer(self.consumer(new, Some(a), api_id));
        }
        // The description is renumbered for the new layout.
        let mut desc = d;
        if let Who::App(a) = d.who {
            desc.who = match self.old.index.app_names.get(a as usize).cloned() {
                Some(n) => Who::App(new.app_named(&mut self.apps, &n)),
                None => Who::Unknown,
            };
        }
        if let Some(id) = api_id {
            desc.api = match self.old.index.api_names.get(id as usize).cloned() {
                Some(n) => {
                    let a = new.api_named(&mut self.apis, &n);
                    new.index
                        .api_name_id
                        .get(a as usize)
                        .copied()
                        .unwrap_or(u32::MAX)
                }
                None => u32::MAX,
            };
        }
        Parts::Hashes {
            h1: entry.h1,
            h2: entry.h2,
            desc,
        }
    }

    /// A consumer in the new layout's indices.
    /// Only application keys are placed this way; the address is never part of them.
    fn consumer(
        &mut self,
        new: &mut Counters,
        app: Option<AppIdx>,
        api_id: Option<u32>,
    ) -> Consumer<'static> {
        let app = app.and_then(|a| {
            let n = self.old.index.app_names.get(a as usize)?.clone();
            Some(new.app_named(&mut self.apps, &n))
        });
        let api = api_id
            .and_then(|id| {
                let n = self.old.index.api_names.get(id as usize)?.clone();
                Some(new.api_named(&mut self.apis, &n))
            })
            .unwrap_or(0);
        Consumer {
            app,
            remote_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            api,
            dynamic: None,
        }
    }

    /// The counter of `parts` under new limit `to`, made if needed.
    fn place(&mut self, new: &mut Counters, to: LimitIdx, parts: Parts) -> Option<Slot> {
        let now = new.last_now;
        match parts {
            Parts::Consumer(who) => new.slot(to, &who, now).slot(),
            Parts::Hashes { h1, h2, desc } => match new.probe(to, h1, Some(h2), now, Some(desc)) {
                Probe::Found(e) | Probe::Inserted(e) => Some(Slot {
                    cell: new.dense_len + e as u32,
                    limit: to,
                    h1,
                }),
                Probe::Absent | Probe::Full => {
                    log::warn!(
                        "limit {}: the table of run-time keys is full; a counter was not carried over",
                        new.key_prefix[to as usize]
                    );
                    None
                }
            },
        }
    }
}

impl Counters {
    /// Sets the counter of `slot` to what an old counter held.
    fn write(&mut self, slot: Slot, cell: Cell, now: u64) {
        if let Some(i) = self.cell_for(slot, now, true)
            && let Some(c) = self.cells.get_mut(i)
        {
            *c = cell;
        }
    }
}
