//! Compiles strings with `$(…)` references (spec §1.6) into [`Template`]s: API properties are
//! resolved now, context variables stay for the engine.

use crate::model::{Part, Template};

/// What a template may refer to while it is being compiled.
pub struct Scope<'a> {
    /// Effective API property value, after catalog and command-line overrides.
    pub property: &'a dyn Fn(&str) -> Option<String>,
    /// Short names that `set-variable` sets somewhere in the API: these stay run-time variables.
    pub runtime: &'a dyn Fn(&str) -> bool,
}

/// Compiles `text`. The strings returned are warnings (unresolved or malformed references).
pub fn compile(text: &str, scope: &Scope) -> (Template, Vec<String>) {
    let mut parts: Vec<Part> = Vec::new();
    let mut warnings = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        lit.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$$(") {
            lit.push_str("$(");
            rest = tail;
            continue;
        }
        let Some(inner_start) = after.strip_prefix("$(") else {
            lit.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner_start.find(')') else {
            warnings.push(format!(
                "'$(' without a closing ')' in '{text}' is kept as written; write $$( for a \
                 literal $("
            ));
            lit.push_str(after);
            rest = "";
            break;
        };
        let name = inner_start[..end].trim();
        rest = &inner_start[end + 1..];
        if let Some(prop) = name.strip_prefix("api.properties.") {
            match (scope.property)(prop) {
                Some(v) => lit.push_str(&v),
                None => warnings.push(format!(
                    "API property '{prop}' is not defined; $({name}) expands to an empty string"
                )),
            }
        } else if name.contains('.') {
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(name.to_string()));
        } else if name.is_empty() {
            warnings.push(format!(
                "empty reference $() in '{text}' expands to nothing"
            ));
        } else if let Some(v) = (scope.property)(name) {
            lit.push_str(&v);
        } else if (scope.runtime)(name) {
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(name.to_string()));
        } else {
            warnings.push(format!(
                "'{name}' is neither an API property nor a variable set by set-variable; \
                 $({name}) expands to an empty string"
            ));
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    (Template { parts }, warnings)
}

/// A template shown as written-like text (variables as `$(name)`), for summaries.
pub fn show(t: &Template) -> String {
    let mut out = String::new();
    for p in &t.parts {
        match p {
            Part::Literal(s) => out.push_str(&s.replace("$(", "$$(")),
            Part::Var(v) => {
                out.push_str("$(");
                out.push_str(v);
                out.push(')');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(name: &str) -> Option<String> {
        match name {
            "target-url" => Some("ws://127.0.0.1:8081/".into()),
            "empty" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> (Template, Vec<String>) {
        let runtime = |n: &str| n == "myvar";
        compile(
            text,
            &Scope {
                property: &props,
                runtime: &runtime,
            },
        )
    }

    fn lit(s: &str) -> Part {
        Part::Literal(s.into())
    }
    fn var(s: &str) -> Part {
        Part::Var(s.into())
    }

    #[test]
    fn static_properties_resolve() {
        let (t, w) = run("$(target-url)");
        assert_eq!(t.as_static(), Some("ws://127.0.0.1:8081/"));
        assert!(w.is_empty());
        let (t, _) = run("$(api.properties.target-url)x");
        assert_eq!(t.as_static(), Some("ws://127.0.0.1:8081/x"));
        let (t, w) = run("a$( target-url )b$(empty)c");
        assert_eq!(t.parts, vec![lit("aws://127.0.0.1:8081/bc")]);
        assert!(w.is_empty());
    }

    #[test]
    fn context_variables_stay() {
        let (t, w) = run("$(target-url)$(request.path)$(request.search)");
        assert_eq!(
            t.parts,
            vec![
                lit("ws://127.0.0.1:8081/"),
                var("request.path"),
                var("request.search")
            ]
        );
        assert!(w.is_empty());
        let (t, _) = run("x-$(myvar)-y");
        assert_eq!(t.parts, vec![lit("x-"), var("myvar"), lit("-y")]);
        assert_eq!(show(&t), "x-$(myvar)-y");
    }

    #[test]
    fn escapes_and_plain_dollars() {
        let (t, w) = run("cost $5 $$(not-a-ref)");
        assert_eq!(t.as_static(), Some("cost $5 $(not-a-ref)"));
        assert!(w.is_empty());
        assert_eq!(show(&t), "cost $5 $$(not-a-ref)");
        let (t, _) = run("");
        assert_eq!(t.as_static(), Some(""));
    }

    #[test]
    fn unresolved_and_malformed_warn() {
        let (t, w) = run("http://$(backend-host)/x");
        assert_eq!(t.as_static(), Some("http:///x"));
        assert!(
            w[0].contains("'backend-host' is neither an API property"),
            "{w:?}"
        );
        let (t, w) = run("$(api.properties.nope)");
        assert_eq!(t.as_static(), Some(""));
        assert!(w[0].contains("API property 'nope' is not defined"), "{w:?}");
        let (t, w) = run("a$(b");
        assert_eq!(t.as_static(), Some("a$(b"));
        assert!(w[0].contains("without a closing"), "{w:?}");
        let (_, w) = run("$()");
        assert!(w[0].contains("empty reference"), "{w:?}");
    }
}
