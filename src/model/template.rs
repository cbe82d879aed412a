//! Strings with `$(…)` references (spec §1.6). Static references (API properties) are resolved
//! at load; what remains refers to context variables and is expanded per call.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    /// A context variable path such as `request.path`.
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn literal(s: &str) -> Template {
        Template {
            parts: vec![Part::Literal(s.to_string())],
        }
    }

    /// The text when nothing is left to expand at run time.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Expand with a lookup for context variables (unknown ones expand to nothing).
    pub fn expand(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v) => {
                    if let Some(x) = lookup(v) {
                        out.push_str(&x)
                    }
                }
            }
        }
        out
    }
}
