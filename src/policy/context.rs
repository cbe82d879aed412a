//! The context variables of spec §1.7 for one transaction, as seen by `$(…)` references and
//! switch conditions.

use super::condition::{self, Value};
use crate::http::head::RequestHead;
use crate::model::{Api, Application, Methods, Model, Operation, Plan};
use std::borrow::Cow;

pub struct Vars<'a> {
    pub head: &'a RequestHead,
    pub model: &'a Model,
    pub api: &'a Api,
    pub operation: Option<&'a Operation>,
    pub app: Option<&'a Application>,
    pub plan: Option<&'a Plan>,
    pub plan_idx: Option<crate::model::PlanIdx>,
    /// `request.websocket`: a valid RFC 6455 upgrade request (spec decision 3).
    pub websocket: bool,
    /// The listener speaks TLS or sits behind a TLS terminator.
    pub secure: bool,
    /// Variables written by `set-variable`, newest last.
    pub set: Vec<(String, String)>,
    /// `message.status.code` once something set it.
    pub status: Option<u16>,
    /// `message` is the invoke's answer: its headers are the `message.headers.*` entries of
    /// `set`, no longer the request's.
    pub answered: bool,
}

/// Whether two variable names are the same variable: header names ignore case.
pub fn same_variable(a: &str, b: &str) -> bool {
    let header = |n: &str| n.starts_with("message.headers.") || n.starts_with("request.headers.");
    if header(a) && header(b) {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl<'a> Vars<'a> {
    /// The variables of one request by an identified caller, before any policy has run.
    pub fn new(
        head: &'a RequestHead,
        model: &'a Model,
        api: &'a Api,
        operation: Option<&'a Operation>,
        caller: &crate::policy::preflow::Caller,
        websocket: bool,
        secure: bool,
    ) -> Vars<'a> {
        Vars {
            head,
            model,
            api,
            operation,
            app: caller.app.map(|a| &model.applications[a as usize]),
            plan: caller.plan.map(|p| &model.plans[p as usize]),
            plan_idx: caller.plan,
            websocket,
            secure,
            set: Vec::new(),
            status: None,
            answered: false,
        }
    }

    /// Makes `message` the invoke's answer (spec §2.3): its status, reason and end-to-end
    /// headers. Variables the flow set on the request's `message` do not carry over.
    pub fn answer<'h>(
        &mut self,
        status: u16,
        reason: &str,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
    ) {
        self.set.retain(|(n, _)| !n.starts_with("message."));
        self.status = Some(status);
        self.set
            .push(("message.status.reason".to_string(), reason.to_string()));
        for (name, value) in headers {
            self.set
                .push((format!("message.headers.{name}"), value.to_string()));
        }
        self.answered = true;
    }

    /// The answer's headers as the flow left them, in order.
    pub fn answer_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.set
            .iter()
            .filter_map(|(n, v)| n.strip_prefix("message.headers.").map(|h| (h, v.as_str())))
    }

    /// A variable by its dotted name, or `None` when it has no value.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some((_, v)) = self.set.iter().rev().find(|(n, _)| same_variable(n, name)) {
            return Some(Cow::Borrowed(v));
        }
        if self.answered && name.starts_with("message.headers.") {
            return None;
        }
        let head = self.head;
        let s: Cow<'_, str> = match name {
            "request.verb" => head.method().into(),
            "request.path" => head.path().into(),
            "request.search" => match head.query() {
                Some(q) => format!("?{q}").into(),
                None => "".into(),
            },
            "request.querystring" => head.query().unwrap_or("").into(),
            "request.uri" => {
                let scheme = if self.secure { "https" } else { "http" };
                format!(
                    "{scheme}://{}{}",
                    head.header("host").unwrap_or(""),
                    head.target()
                )
                .into()
            }
            "request.websocket" => if self.websocket { "true" } else { "false" }.into(),
            "api.root" => self.api.base_path.as_str().into(),
            "api.name" => self.api.name.as_str().into(),
            "api.version" => self.api.version.as_str().into(),
            "api.operation.path" => self.operation.map(|o| o.path.as_str())?.into(),
            "client.app.id" | "client.app.name" => self.app.map(|a| a.name.as_str())?.into(),
            "plan.name" | "plan.id" => self.plan.map(|p| p.name.as_str())?.into(),
            "message.status.code" => self.status?.to_string().into(),
            _ => {
                if let Some(h) = name
                    .strip_prefix("request.headers.")
                    .or_else(|| name.strip_prefix("message.headers."))
                {
                    return head.header(h).map(Cow::Borrowed);
                }
                if let Some(p) = name.strip_prefix("api.properties.") {
                    return self.model.property(self.api, p).map(Cow::Borrowed);
                }
                if let Some(p) = name.strip_prefix("request.parameters.") {
                    return self.head.query_param(p).map(Cow::Borrowed);
                }
                return None;
            }
        };
        Some(s)
    }

    /// Expands a template against these variables (unknown references expand to nothing).
    pub fn expand(&self, t: &crate::model::Template) -> String {
        t.expand(&|name| self.get(name).map(Cow::into_owned))
    }
}

impl condition::Context for Vars<'_> {
    fn path(&self, path: &[&str]) -> Value<'_> {
        if path == ["request", "websocket"] {
            return Value::Bool(self.websocket);
        }
        let name = path.join(".");
        match self.get(&name) {
            Some(v) => Value::Str(Cow::Owned(v.into_owned())),
            None => Value::Undefined,
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        if self.answered {
            return self
                .answer_headers()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v);
        }
        self.head.header(name)
    }
    fn query_parameter(&self, name: &str) -> Option<&str> {
        self.head.query_param(name)
    }
    fn operation_path(&self) -> Option<&str> {
        self.operation.map(|o| o.path.as_str())
    }
    fn operation_id(&self) -> Option<&str> {
        let op = self.operation?;
        let bit = Methods::bit(self.head.method())?;
        op.operation_ids
            .iter()
            .find(|(b, _)| *b == bit)
            .map(|(_, id)| id.as_str())
    }
    fn status_code(&self) -> Option<u16> {
        self.status
    }
    fn is_websocket(&self) -> bool {
        self.websocket
    }
}
