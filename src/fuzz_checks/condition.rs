//! The JSONata-subset compiler for switch conditions ([`crate::policy::condition`]).

use crate::policy::condition::{Condition, Context, Value, expand_refs};
use std::borrow::Cow;

/// The `condition` target. The input, as text, is compiled; a compiled condition is evaluated
/// against a WebSocket upgrade, a plain POST and an empty request, where a type error is an
/// answer and a panic or a stack overflow is not. The text also goes through [`expand_refs`]:
/// without a `$(` it is unchanged, and as the value of a `$(name)` reference, in or out of
/// quotes, it must stay one string literal equal to itself.
pub fn compile(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    if let Ok(cond) = Condition::compile(&src) {
        assert_eq!(cond.source(), src);
        for ctx in [Request::UPGRADE, Request::POST, Request::EMPTY] {
            let first = cond.eval(&ctx);
            assert_eq!(first, cond.eval(&ctx), "evaluation is not repeatable");
        }
    }
    let lookup = |name: &str| (name == "v").then(|| src.to_string());
    let expanded = expand_refs(&src, &lookup);
    let _ = Condition::compile(&expanded);
    if !src.contains("$(") {
        assert_eq!(expanded, src, "text without a reference changed");
    }
    for form in [
        "$(v) = $(v)",
        "'$(v)' = $(v)",
        "\"$(v)\" = $(v)",
        "$(v) = '$(v)'",
    ] {
        let text = expand_refs(form, &lookup);
        let cond = Condition::compile(&text)
            .unwrap_or_else(|e| panic!("{form} with v = {src:?} gave {text:?}: {e}"));
        assert_eq!(cond.eval(&Request::EMPTY), Ok(true), "{form} gave {text:?}");
    }
}

/// A request as conditions see it.
struct Request {
    verb: &'static str,
    websocket: bool,
    headers: &'static [(&'static str, &'static str)],
    query: &'static [(&'static str, &'static str)],
    status: Option<u16>,
}

impl Request {
    const UPGRADE: Request = Request {
        verb: "GET",
        websocket: true,
        headers: &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("X-Mode", "throw"),
            ("X-Number", "42"),
        ],
        query: &[("client_id", "abc"), ("n", "1")],
        status: None,
    };
    const POST: Request = Request {
        verb: "POST",
        websocket: false,
        headers: &[("Content-Type", "application/json")],
        query: &[],
        status: Some(404),
    };
    const EMPTY: Request = Request {
        verb: "",
        websocket: false,
        headers: &[],
        query: &[],
        status: None,
    };
}

impl Context for Request {
    fn path(&self, path: &[&str]) -> Value<'_> {
        match path {
            ["request", "verb"] => Value::Str(Cow::Borrowed(self.verb)),
            ["request", "websocket"] => Value::Bool(self.websocket),
            ["message", "status", "code"] => self
                .status
                .map_or(Value::Undefined, |s| Value::Number(f64::from(s))),
            ["message", "headers", name] | ["request", "headers", name] => self
                .header(name)
                .map_or(Value::Undefined, |v| Value::Str(Cow::Borrowed(v))),
            ["api", "version"] => Value::Null,
            _ => Value::Undefined,
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
    fn query_parameter(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn operation_path(&self) -> Option<&str> {
        self.websocket.then_some("/chat")
    }
    fn operation_id(&self) -> Option<&str> {
        None
    }
    fn status_code(&self) -> Option<u16> {
        self.status
    }
    fn is_websocket(&self) -> bool {
        self.websocket
    }
}
