//! Listing and resetting counters for the admin listener (`GET /limits`, `DELETE /limits/...`;
//! spec §5, DataPower's "view and delete enforcement keys"). These allocate; they are never on the
//! message path.

use super::table::{Who, live};
use super::{Cell, Counters};
use crate::model::{LimitIdx, LimitKind};
use std::fmt::Write;

/// One live counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterView {
    /// The limit's name.
    pub limit: String,
    pub kind: LimitKind,
    /// E.g. `plan:default-plan:websocket-connections:app=demo-app`: the level (`plan:<plan>`,
    /// `catalog`, `gateway`), the name, then `app=` or `ip=`, `api=` and `dv=` as the key has
    /// them (`ip=` an IPv4 address, or an IPv6 /64 as `ip=2001:db8:1:2::/64`). A key that was
    /// re-created after an eviction shows as `key=#<hash>`.
    pub key: String,
    /// Start of the current window in seconds since the epoch; `None` for counts.
    pub window_start: Option<u64>,
    pub value: u64,
    pub max: u64,
}

/// The consumer part of a key as printed.
enum Part {
    Nobody,
    App(u32),
    Ip(std::net::IpAddr),
    Hash(u64),
}

impl Counters {
    /// Every counter that holds something at `now`: counts above 0 and rate windows that are
    /// current and non-zero.
    pub fn snapshot(&self, now_secs: u64) -> Vec<CounterView> {
        let mut out = Vec::new();
        self.each_live(now_secs, None, |c, limit, i, key| {
            let (Some(l), Some(cell)) = (c.layouts.get(limit as usize), c.cells.get(i)) else {
                return;
            };
            out.push(CounterView {
                limit: c.limit_names[limit as usize].to_string(),
                kind: c.kinds[limit as usize],
                key,
                window_start: l
                    .windowed()
                    .then(|| (now_secs / l.period).saturating_mul(l.period)),
                value: cell.value(),
                max: l.max,
            });
        });
        out
    }

    /// Resets to 0 every live counter of the limits named `limit_name` (there can be one per plan),
    /// or only the one whose key text is `key_text`. Returns how many counters were reset. Rate
    /// windows are judged live at the latest time passed to any other call. A connection that
    /// held part of a reset count still gives it back when it ends, which can take back a count
    /// made after the reset (never below 0), as deleting a key does in DataPower.
    pub fn reset(&mut self, limit_name: &str, key_text: Option<&str>) -> usize {
        let mut hits: Vec<usize> = Vec::new();
        let now = self.last_now;
        self.each_live(now, Some(limit_name), |_, _, i, key| {
            if key_text.is_none_or(|k| k == key) {
                hits.push(i);
            }
        });
        for &i in &hits {
            if i < self.dense_len as usize {
                if let Some(c) = self.cells.get_mut(i) {
                    *c = Cell::default();
                }
            } else {
                self.table_free(i - self.dense_len as usize);
            }
        }
        hits.len()
    }

    /// Calls `f` with every live counter (optionally only of the limits with one name): its limit,
    /// its index in `cells` and its key text.
    fn each_live(
        &self,
        now: u64,
        name: Option<&str>,
        mut f: impl FnMut(&Counters, LimitIdx, usize, String),
    ) {
        for (li, l) in self.layouts.iter().enumerate() {
            let limit = li as LimitIdx;
            if !l.counted || !l.dense || name.is_some_and(|n| *self.limit_names[li] != *n) {
                continue;
            }
            for k in 0..l.size() {
                let Some(cell) = self.cells.get((l.base + k) as usize) else {
                    break;
                };
                if !live(l, cell, now) {
                    continue;
                }
                let (row, col) = (k / l.cols.max(1), k % l.cols.max(1));
                let who = if l.is_client {
                    self.index.row_app(l, row).map_or(Part::Nobody, Part::App)
                } else {
                    Part::Nobody
                };
                let api = if l.use_api {
                    self.index.col_api(l, col).unwrap_or(u32::MAX)
                } else {
                    u32::MAX
                };
                let dv = self.static_dv[li].as_deref().map(|s| (s, false));
                f(
                    self,
                    limit,
                    (l.base + k) as usize,
                    self.key_text(limit, who, api, dv),
                );
            }
        }
        for (e, entry) in self.entries.iter().enumerate() {
            let Some(l) = self.layouts.get(entry.limit as usize) else {
                continue;
            };
            let li = entry.limit as usize;
            if name.is_some_and(|n| *self.limit_names[li] != *n) {
                continue;
            }
            let Some(cell) = self.cells.get(self.dense_len as usize + e) else {
                continue;
            };
            if !live(l, cell, now) {
                continue;
            }
            let d = &self.descs[e];
            let who = match d.who {
                Who::Nobody => Part::Nobody,
                Who::App(a) => Part::App(a),
                Who::Ip(ip) => Part::Ip(ip),
                Who::Unknown => Part::Hash(entry.h1),
            };
            let dv = match d.dynamic() {
                Some(s) => Some((s, d.dyn_cut)),
                None => self.static_dv[li].as_deref().map(|s| (s, false)),
            };
            let i = self.dense_len as usize + e;
            f(
                self,
                entry.limit,
                i,
                self.key_text(entry.limit, who, d.api, dv),
            );
        }
    }

    fn key_text(&self, limit: LimitIdx, who: Part, api: u32, dv: Option<(&str, bool)>) -> String {
        let li = limit as usize;
        let mut s = String::from(self.key_prefix.get(li).map_or("?", |p| &**p));
        match who {
            Part::Nobody => {}
            Part::App(a) => match self.index.app_names.get(a as usize) {
                Some(n) => {
                    let _ = write!(s, ":app={n}");
                }
                None => {
                    let _ = write!(s, ":app=#{a}");
                }
            },
            Part::Ip(ip) => {
                // IPv6 callers are keyed by their /64.
                let bits = if ip.is_ipv6() { "/64" } else { "" };
                let _ = write!(s, ":ip={ip}{bits}");
            }
            Part::Hash(h) => {
                // Only the hash of this key is known.
                let _ = write!(s, ":key=#{h:016x}");
                return s;
            }
        }
        if api != u32::MAX {
            if api & (1 << 31) != 0 {
                let _ = write!(s, ":api=#{}", api & !(1 << 31));
            } else if let Some(n) = self.index.api_names.get(api as usize) {
                let _ = write!(s, ":api={n}");
            }
        }
        if let Some((text, cut)) = dv {
            let _ = write!(s, ":dv={text}{}", if cut { "…" } else { "" });
        }
        s
    }
}
