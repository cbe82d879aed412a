//! The assembly of an API as a tree of typed policies (spec decision 1).

use super::{LimitIdx, PlanIdx, Template};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Assembly {
    pub execute: Vec<Policy>,
    pub catch: Vec<Catch>,
    pub finally: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Catch {
    /// Error names this entry handles; empty for `default`.
    pub errors: Vec<String>,
    pub execute: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub title: String,
    /// `file:line` of the policy, for messages.
    pub origin: String,
    pub kind: PolicyKind,
}

#[derive(Debug, Clone)]
pub enum PolicyKind {
    RateLimit(RateLimit),
    WebSocketUpgrade(Box<WebSocketUpgrade>),
    Invoke(Box<Invoke>),
    Switch(Switch),
    SetVariable(Vec<SetAction>),
    Throw(Throw),
    Log(Log),
    /// `parse`: a WebSocket message must be JSON within the parse limits (message flows only).
    Parse(Box<crate::validate::MessageCheck>),
    /// `validate`: a WebSocket message must match a definition of the API (message flows
    /// only).
    Validate(Box<crate::validate::MessageCheck>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    PlanDefault,
    PlanNamed,
    CatalogNamed,
    GatewayNamed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOp {
    Consume,
    Replenish,
    Inc,
    Dec,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub source: LimitSource,
    pub entries: Vec<LimitRef>,
}

/// One `{name, operation}` entry of a `ratelimit` policy, resolved to limit indices.
#[derive(Debug, Clone)]
pub struct LimitRef {
    pub name: String,
    pub kind: super::LimitKind,
    pub op: LimitOp,
    /// For catalog- and gateway-named sources: the limits of that name.
    pub fixed: Vec<LimitIdx>,
    /// For plan sources: (plan, limits of that name in that plan). A plan missing here does not
    /// define the name; the entry is skipped for its callers (spec §7 #25).
    pub per_plan: Vec<(PlanIdx, Vec<LimitIdx>)>,
}

/// Which headers or query parameters are copied (spec §2.2).
#[derive(Debug, Clone)]
pub struct Control {
    pub allow: bool,
    pub patterns: Vec<crate::policy::pattern::Pattern>,
}

impl Control {
    /// `blocklist []`: copy everything.
    pub fn copy_all() -> Control {
        Control {
            allow: false,
            patterns: Vec::new(),
        }
    }
    /// `allowlist []`: copy nothing.
    pub fn copy_none() -> Control {
        Control {
            allow: true,
            patterns: Vec::new(),
        }
    }
    pub fn copies(&self, name: &str, case_insensitive: bool) -> bool {
        let hit = self
            .patterns
            .iter()
            .any(|p| p.matches(name, case_insensitive));
        hit == self.allow
    }
}

/// The backend call that websocket-upgrade and invoke describe alike: where it goes and what
/// of the client's request it carries.
#[derive(Debug, Clone)]
pub struct BackendTarget {
    pub target_url: Template,
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub header_control: Control,
    pub parameter_control: Control,
    pub inject_proxy_headers: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls_profile: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct WebSocketUpgrade {
    pub backend: BackendTarget,
    /// `verb: keep` (the default); `GET` is the only other verb an upgrade can use.
    pub verb_keep: bool,
    pub request_assembly: Vec<Policy>,
    pub response_assembly: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct Invoke {
    pub backend: BackendTarget,
    /// `None` keeps the request's method.
    pub verb: Option<String>,
    /// `stop-on-error`: the errors of the call that go to the assembly's `catch`.
    pub stop_on: StopOn,
    pub persistent_connection: bool,
}

/// The errors an invoke raises that its `stop-on-error` can list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopOn {
    /// `ConnectionError`: the backend cannot be reached, times out, fails TLS, or closes before
    /// answering.
    pub connection: bool,
    /// `OperationError`: the backend answers 4xx or 5xx.
    pub operation: bool,
}

#[derive(Debug, Clone)]
pub struct Switch {
    pub cases: Vec<SwitchCase>,
    pub otherwise: Option<Vec<Policy>>,
}

#[derive(Debug, Clone)]
pub struct SwitchCase {
    /// The condition as written.
    pub source: String,
    pub condition: crate::policy::condition::Condition,
    pub execute: Vec<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Set,
    Add,
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Any,
    String,
    Number,
    Boolean,
}

#[derive(Debug, Clone)]
pub struct SetAction {
    pub op: SetOp,
    pub variable: String,
    pub value: Template,
    pub value_type: ValueType,
}

#[derive(Debug, Clone)]
pub struct Throw {
    pub name: String,
    pub message: Template,
    pub status: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub mode: String,
    pub level: Option<super::LogContent>,
}
