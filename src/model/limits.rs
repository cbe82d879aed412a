//! Limit definitions: the plan's `rate-limits` / `burst-limits`, the plan's `assembly-*-limits`,
//! and catalog- and gateway-named limits from the gateway config, all in one flat list.

/// Index of a limit in [`crate::model::Model::limits`].
pub type LimitIdx = u32;

/// The largest maximum a rate, burst or count limit may have (2^40 - 2): a counter keeps its
/// count in 40 bits of one `u64` (see `policy::limits`). A larger value is a load error.
pub const LIMIT_MAX: u64 = (1 << 40) - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Rate,
    Burst,
    Count,
}

/// Where a limit is defined (part of its counter key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitLevel {
    /// The plan's own `rate-limits` / `burst-limits` (source `plan-default`).
    PlanDefault,
    /// The plan's `assembly-*-limits` (source `plan-named`).
    PlanNamed,
    CatalogNamed,
    GatewayNamed,
}

/// A parsed limit value (spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    /// `unlimited` or a count of 0: no counter, no headers.
    Unlimited,
    /// At most `max` per `period_secs` (fixed windows aligned to the epoch).
    Rate { max: u64, period_secs: u64 },
    /// At most `max` at once (count limits).
    Count { max: u64 },
}

#[derive(Debug, Clone)]
pub struct LimitDef {
    pub name: String,
    pub kind: LimitKind,
    pub level: LimitLevel,
    /// The plan it belongs to, for plan levels.
    pub plan: Option<super::PlanIdx>,
    pub value: LimitValue,
    /// The value as written, for messages and summaries.
    pub value_text: String,
    pub hard: bool,
    pub cache_only: bool,
    pub is_client: bool,
    pub use_api_name: bool,
    pub use_app_id: bool,
    pub use_client_id: bool,
    /// `dynamic-value`, added to the key when set.
    pub dynamic_value: Option<super::Template>,
    /// `weight` expression as written (`1` when absent).
    pub weight: String,
    /// Count limits: give back at the end of the transaction.
    pub auto_decrement: bool,
    /// File and line of the definition, for messages.
    pub origin: String,
}
