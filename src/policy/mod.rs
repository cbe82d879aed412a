//! The policy engine's sans-I/O pieces: what runs before the assembly ([`preflow`]), the
//! assembly itself ([`assembly`]) over the context variables ([`context`]), the limit counters
//! ([`limits`]), switch conditions ([`condition`]) and header patterns ([`pattern`]).

pub mod assembly;
pub mod condition;
pub mod context;
pub mod limits;
pub mod pattern;
pub mod preflow;
