//! A thin typed view over `serde_yaml::Value` that knows its file and field path, and the
//! diagnostics collector that turns a path into a file, line and column.

use super::locate::{Seg, dotted, locate};
use super::{Diagnostic, Severity};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One loaded YAML file.
pub struct Doc {
    pub file: PathBuf,
    pub text: String,
    pub root: Value,
}

/// A place in a document, kept after parsing for diagnostics found later.
#[derive(Clone)]
pub struct Anchor {
    pub doc: Rc<Doc>,
    pub path: Vec<Seg>,
}

#[derive(Default)]
pub struct Diags {
    pub list: Vec<Diagnostic>,
}

impl Diags {
    pub fn push(&mut self, severity: Severity, doc: &Doc, path: &[Seg], message: String) {
        let (line, column) = locate(&doc.text, path);
        self.list.push(Diagnostic {
            severity,
            file: doc.file.clone(),
            line,
            column,
            field: dotted(path),
            message,
        });
    }
    pub fn error(&mut self, n: &Node, message: impl Into<String>) {
        self.push(Severity::Error, n.doc, &n.path, message.into());
    }
    pub fn warn(&mut self, n: &Node, message: impl Into<String>) {
        self.push(Severity::Warning, n.doc, &n.path, message.into());
    }
    /// A problem with a file named on the command line rather than in a config file.
    pub fn command_line(&mut self, option: &str, file: &std::path::Path, message: String) {
        self.list.push(Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: option.to_string(),
            message,
        });
    }
    pub fn error_at(&mut self, a: &Anchor, message: impl Into<String>) {
        self.push(Severity::Error, &a.doc, &a.path, message.into());
    }
    /// A required field that is missing: named by its full path, located at its parent.
    pub fn missing(&mut self, parent: &Node, key: &str, message: impl Into<String>) {
        let (line, column) = locate(&parent.doc.text, &parent.path);
        let mut path = parent.path.clone();
        path.push(Seg::Key(key.to_string()));
        self.list.push(Diagnostic {
            severity: Severity::Error,
            file: parent.doc.file.clone(),
            line,
            column,
            field: dotted(&path),
            message: message.into(),
        });
    }
    /// An error about a whole file (unreadable, not YAML).
    pub fn file_error(&mut self, file: &Path, line: usize, column: usize, message: String) {
        self.list.push(Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            field: String::new(),
            message,
        });
    }
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }
}

impl Doc {
    /// Reads and parses a YAML file. A read error is reported at `from` (the place that named
    /// the file) when given.
    pub fn load(file: &Path, from: Option<&Anchor>, d: &mut Diags) -> Option<Rc<Doc>> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                let msg = if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "file '{}' does not exist (a relative path is relative to the file that \
                         names it)",
                        file.display()
                    )
                } else {
                    format!("cannot read '{}': {e}", file.display())
                };
                match from {
                    Some(a) => d.error_at(a, msg),
                    None => d.file_error(file, 0, 0, msg),
                }
                return None;
            }
        };
        Doc::parse(file, text, d)
    }

    pub fn parse(file: &Path, text: String, d: &mut Diags) -> Option<Rc<Doc>> {
        match serde_yaml::from_str::<Value>(&text) {
            Ok(root) => Some(Rc::new(Doc {
                file: file.to_path_buf(),
                text,
                root,
            })),
            Err(e) => {
                let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                let msg = strip_position(&e.to_string());
                d.file_error(file, line, col, format!("not valid YAML: {msg}"));
                None
            }
        }
    }
}

/// Drops serde_yaml's " at line N column M" from a message: the diagnostic says it already.
fn strip_position(msg: &str) -> String {
    let Some(i) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[i + " at line ".len()..];
    let skip_num = |s: &str| {
        s.trim_start_matches(|c: char| c.is_ascii_digit())
            .to_string()
    };
    let rest = skip_num(rest);
    let rest = match rest.strip_prefix(" column ") {
        Some(r) => skip_num(r),
        None => rest,
    };
    format!("{}{rest}", &msg[..i])
}

/// Edit distance, for "did you mean" hints on short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (distance(&key.to_ascii_lowercase().replace('_', "-"), k), *k))
        .min();
    match best {
        Some((dist, k)) if dist <= 2 => {
            format!("unknown key '{key}' is ignored; did you mean '{k}'?")
        }
        _ if known.len() <= 12 => {
            format!(
                "unknown key '{key}' is ignored (known here: {})",
                known.join(", ")
            )
        }
        _ => format!("unknown key '{key}' is ignored"),
    }
}

/// A value with its document and path.
#[derive(Clone)]
pub struct Node<'a> {
    pub doc: &'a Doc,
    pub path: Vec<Seg>,
    pub v: &'a Value,
}

/// A scalar as text (strings, numbers, booleans).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl<'a> Node<'a> {
    pub fn root(doc: &'a Doc) -> Node<'a> {
        Node {
            doc,
            path: Vec::new(),
            v: &doc.root,
        }
    }

    pub fn anchor(&self, doc: &Rc<Doc>) -> Anchor {
        Anchor {
            doc: doc.clone(),
            path: self.path.clone(),
        }
    }

    /// `file:line` of this node, for `origin` fields.
    pub fn origin(&self) -> String {
        let (line, _) = locate(&self.doc.text, &self.path);
        format!("{}:{line}", self.doc.file.display())
    }

    pub fn is_null(&self) -> bool {
        matches!(self.v, Value::Null)
    }

    /// The key's value; `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let m = self.v.as_mapping()?;
        let (k, v) = m
            .iter()
            .find(|(k, _)| scalar_text(k).as_deref() == Some(key))?;
        if v.is_null() {
            return None;
        }
        let mut path = self.path.clone();
        path.push(Seg::Key(scalar_text(k).unwrap_or_default()));
        Some(Node {
            doc: self.doc,
            path,
            v,
        })
    }

    pub fn has(&self, key: &str) -> bool {
        self.v.as_mapping().is_some_and(|m| {
            m.iter()
                .any(|(k, _)| scalar_text(k).as_deref() == Some(key))
        })
    }

    /// Entries of a mapping (null is empty); anything else is an error.
    pub fn entries(&self, d: &mut Diags) -> Vec<(String, Node<'a>)> {
        match self.v {
            Value::Null => Vec::new(),
            Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    let key = scalar_text(k).unwrap_or_else(|| format!("{k:?}"));
                    let mut path = self.path.clone();
                    path.push(Seg::Key(key.clone()));
                    (
                        key,
                        Node {
                            doc: self.doc,
                            path,
                            v,
                        },
                    )
                })
                .collect(),
            other => {
                d.error(
                    self,
                    format!("expected a mapping, found {}", kind_name(other)),
                );
                Vec::new()
            }
        }
    }

    /// Items of a sequence (null is empty); anything else is an error.
    pub fn items(&self, d: &mut Diags) -> Vec<Node<'a>> {
        match self.v {
            Value::Null => Vec::new(),
            Value::Sequence(s) => s
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut path = self.path.clone();
                    path.push(Seg::Idx(i));
                    Node {
                        doc: self.doc,
                        path,
                        v,
                    }
                })
                .collect(),
            other => {
                d.error(self, format!("expected a list, found {}", kind_name(other)));
                Vec::new()
            }
        }
    }

    /// A scalar as text; an error for lists and mappings.
    pub fn text(&self, d: &mut Diags) -> Option<String> {
        let t = scalar_text(self.v);
        if t.is_none() {
            d.error(
                self,
                format!("expected a single value, found {}", kind_name(self.v)),
            );
        }
        t
    }

    pub fn bool(&self, d: &mut Diags) -> Option<bool> {
        match self.v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            Value::Tagged(t) => Node {
                v: &t.value,
                ..self.clone()
            }
            .bool(d),
            other => {
                d.error(
                    self,
                    format!("expected true or false, found {}", kind_name(other)),
                );
                None
            }
        }
    }

    /// A whole number, written as a number or as a string of digits.
    pub fn u64(&self, d: &mut Diags) -> Option<u64> {
        let n = match self.v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if n.is_none() {
            d.error(
                self,
                format!(
                    "expected a whole number, found {}",
                    scalar_text(self.v)
                        .map_or_else(|| kind_name(self.v).to_string(), |t| { format!("'{t}'") })
                ),
            );
        }
        n
    }

    // Shorthands for optional keys.

    pub fn text_at(&self, key: &str, d: &mut Diags) -> Option<String> {
        self.get(key).and_then(|n| n.text(d))
    }

    pub fn bool_at(&self, key: &str, default: bool, d: &mut Diags) -> bool {
        self.get(key).and_then(|n| n.bool(d)).unwrap_or(default)
    }

    /// A required text field; reports it missing.
    pub fn required_text(&self, key: &str, what: &str, d: &mut Diags) -> Option<String> {
        match self.get(key) {
            Some(n) => n.text(d),
            None => {
                d.missing(self, key, format!("missing: expected {what}"));
                None
            }
        }
    }

    /// Warns about keys that are not in `known` (keys starting with `x-` are vendor extensions
    /// when `allow_x` is set).
    pub fn known(&self, known: &[&str], allow_x: bool, d: &mut Diags) {
        let Some(m) = self.v.as_mapping() else {
            return;
        };
        for (k, _) in m {
            let key = scalar_text(k).unwrap_or_default();
            if known.contains(&key.as_str()) || (allow_x && key.starts_with("x-")) {
                continue;
            }
            let mut path = self.path.clone();
            path.push(Seg::Key(key.clone()));
            d.push(
                Severity::Warning,
                self.doc,
                &path,
                unknown_key_message(&key, known),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_keys_get_a_suggestion() {
        let known = ["hard-limit", "is-client", "value"];
        assert_eq!(
            super::unknown_key_message("hard_limit", &known),
            "unknown key 'hard_limit' is ignored; did you mean 'hard-limit'?"
        );
        assert_eq!(
            super::unknown_key_message("vaule", &known),
            "unknown key 'vaule' is ignored; did you mean 'value'?"
        );
        assert_eq!(
            super::unknown_key_message("colour", &known),
            "unknown key 'colour' is ignored (known here: hard-limit, is-client, value)"
        );
        assert_eq!(super::distance("", "abc"), 3);
        assert_eq!(super::distance("kitten", "sitting"), 3);
    }

    #[test]
    fn yaml_messages_lose_their_position() {
        assert_eq!(
            super::strip_position("did not find ',' at line 10 column 12, while parsing"),
            "did not find ',', while parsing"
        );
        assert_eq!(super::strip_position("bad at line 3"), "bad");
        assert_eq!(super::strip_position("plain"), "plain");
    }
}
