//! The message policies `parse` and `validate` (issue 18): a whole WebSocket message checked
//! as JSON, and against a schema of the API's `definitions`, sans-I/O.
//!
//! The relay collects a message of a direction whose flow holds one of these policies and asks
//! [`MessageCheck::check`]; a [`Failure`] is closed with 1007 and its [`Failure::reason`].
//! Every other message is never collected or looked at.

pub mod format;
pub mod number;
pub mod schema;

use crate::json::parse::{Doc, Kind, Limits, Tape};
use schema::Schema;
use std::cell::RefCell;
use std::fmt::Write as _;

/// Close code of a message that fails `parse` or `validate` (RFC 6455 §7.4.1: invalid
/// payload data).
pub const CLOSE_INVALID: u16 = 1007;

/// The longest close reason: a close frame's payload is 125 bytes, two of them the code.
pub const MAX_REASON: usize = 123;

/// One `parse` or `validate` policy, compiled.
#[derive(Clone, Debug)]
pub struct MessageCheck {
    /// The bounds of the parse.
    pub limits: Limits,
    /// `validate`'s schema; `None` for `parse`.
    pub schema: Option<Box<Schema>>,
    /// What the schema is, as written (`#/definitions/Subscribe`), for messages.
    pub definition: String,
}

/// Where in a message a check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The message as a whole (a binary message).
    Message,
    /// A byte offset: the message is not acceptable JSON.
    Byte(usize),
    /// A JSON pointer (RFC 6901) to the value that failed the schema.
    Pointer(String),
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `parse` or `validate`.
    pub policy: &'static str,
    /// The parse fault (`syntax`, `nesting-depth`, …), the schema keyword (`required`,
    /// `pattern`, …), or `binary`.
    pub keyword: &'static str,
    pub at: Location,
}

impl Failure {
    /// The close frame's reason: `validate: /symbol: pattern`, cut to [`MAX_REASON`] bytes at
    /// a character boundary.
    pub fn reason(&self) -> String {
        let mut r = String::with_capacity(MAX_REASON);
        let _ = match &self.at {
            Location::Message => write!(r, "{}: {}", self.policy, self.keyword),
            Location::Byte(at) => write!(r, "{}: {} at byte {at}", self.policy, self.keyword),
            Location::Pointer(p) => {
                // The keyword goes first so that a cut pointer never hides it.
                let p = if p.is_empty() { "(root)" } else { p };
                write!(r, "{}: {} at {p}", self.policy, self.keyword)
            }
        };
        if r.len() > MAX_REASON {
            let mut end = MAX_REASON - 3;
            while !r.is_char_boundary(end) {
                end -= 1;
            }
            r.truncate(end);
            r.push_str("...");
        }
        r
    }
}

/// Memory one thread reuses for every message it checks.
#[derive(Default)]
pub struct Scratch {
    tape: Tape,
    schema: schema::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl MessageCheck {
    pub fn policy(&self) -> &'static str {
        if self.schema.is_some() {
            "validate"
        } else {
            "parse"
        }
    }

    /// Checks one whole message with this thread's scratch memory.
    pub fn check(&self, msg: &[u8], is_text: bool) -> Result<(), Failure> {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.check_in(&mut s, msg, is_text),
            // Only a check inside a check could find it borrowed; it gets memory of its own.
            Err(_) => self.check_in(&mut Scratch::default(), msg, is_text),
        })
    }

    /// Checks one whole message: a text message must be JSON within the limits and, for
    /// `validate`, match the schema. A binary message fails either policy.
    pub fn check_in(&self, s: &mut Scratch, msg: &[u8], is_text: bool) -> Result<(), Failure> {
        let policy = self.policy();
        if !is_text {
            return Err(Failure {
                policy,
                keyword: "binary",
                at: Location::Message,
            });
        }
        let doc = s.tape.parse(msg, &self.limits).map_err(|e| Failure {
            policy,
            keyword: e.fault.name(),
            at: Location::Byte(e.at),
        })?;
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        schema.check(doc, &mut s.schema).map_err(|f| Failure {
            policy,
            keyword: f.keyword,
            at: Location::Pointer(pointer(&doc, f.token)),
        })
    }
}

/// The JSON pointer of token `target`: the path of names and indices from the root.
pub fn pointer(doc: &Doc, target: u32) -> String {
    let mut out = String::new();
    let mut buf = String::new();
    let mut at = 0;
    while at != target {
        let t = doc.token(at);
        if !matches!(t.kind, Kind::Array | Kind::Object) {
            break;
        }
        let Some((i, (name, value))) = doc
            .children(at)
            .enumerate()
            .find(|(_, (_, v))| *v <= target && target < doc.token(*v).next)
        else {
            break;
        };
        out.push('/');
        if t.kind == Kind::Object {
            for c in doc.text(name, &mut buf).chars() {
                match c {
                    '~' => out.push_str("~0"),
                    '/' => out.push_str("~1"),
                    c => out.push(c),
                }
            }
        } else {
            let _ = write!(out, "{i}");
        }
        at = value;
    }
    out
}

#[cfg(test)]
mod tests;
