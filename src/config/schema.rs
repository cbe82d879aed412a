//! The API's `definitions` compiled into [`Schema`] programs for `validate` (JSON Schema draft 4
//! as Swagger 2.0 writes it).
//!
//! Only what a `validate` policy reaches is compiled, so definitions no message flow uses may
//! hold anything. In what is reached, every keyword is either checked, an annotation that
//! cannot change a verdict (`title`, `example`, …), or a load error: a schema that silently
//! checks less than it says is worse than none.

use super::node::{Diags, Doc, Node, scalar_text};
use crate::json::parse::{Limits, Tape};
use crate::policy::pattern::Pattern;
use crate::validate::MessageCheck;
use crate::validate::format::Format;
use crate::validate::number::Num;
use crate::validate::schema::{Check, Extra, Node as SNode, Schema, types};
use serde_yaml::Value;

/// Keywords that describe and never constrain.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "example",
    "examples",
    "readOnly",
    "xml",
    "externalDocs",
    "$schema",
    "definitions",
];

const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "items",
    "additionalItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// One bit per pattern in the evaluator's match set.
const PATTERN_PROPERTIES_MAX: usize = 64;

struct Compiler<'a, 'd> {
    defs: Option<Node<'a>>,
    nodes: Vec<SNode>,
    /// Where each node was written, for cycle messages.
    at: Vec<Node<'a>>,
    /// Definitions compiled so far, by name.
    by_name: Vec<(String, u32)>,
    /// References to each node.
    refs: Vec<u32>,
    consts: Vec<String>,
    d: &'d mut Diags,
}

/// Compiles the definition `reference` (`#/definitions/Name`, or `Name`) of the API whose
/// `definitions` are `defs`; `at` is the policy's `definition` field, for messages.
pub fn compile(defs: Option<Node>, reference: &str, at: &Node, d: &mut Diags) -> Option<Schema> {
    let errors_before = d.list.len();
    let mut c = Compiler {
        defs,
        nodes: Vec::new(),
        at: Vec::new(),
        by_name: Vec::new(),
        refs: Vec::new(),
        consts: Vec::new(),
        d,
    };
    let name = reference
        .strip_prefix("#/definitions/")
        .unwrap_or(reference);
    let root = c.definition(&unescape_pointer(name), at)?;
    c.cycles();
    let failed = c.d.list[errors_before..]
        .iter()
        .any(|x| x.severity == super::Severity::Error);
    if failed {
        return None;
    }
    let mut nodes = c.nodes;
    for (n, &r) in nodes.iter_mut().zip(&c.refs) {
        n.shared = r > 1;
    }
    let consts_src = format!("[{}]", c.consts.join(","));
    let mut tape = Tape::new();
    let relaxed = Limits {
        document_size: u64::from(u32::MAX),
        nesting_depth: 512,
        width: u32::MAX,
        name_length: u32::MAX,
        value_length: u32::MAX,
        number_length: u32::MAX,
    };
    let consts = match tape.parse(consts_src.as_bytes(), &relaxed) {
        Ok(doc) => {
            // Enums named their values by position; the evaluator wants their tokens.
            let tokens: Vec<u32> = doc.children(0).map(|(_, v)| v).collect();
            for n in &mut nodes {
                for c in &mut n.checks {
                    if let Check::Enum(values) = c {
                        for v in values.iter_mut() {
                            *v = tokens.get(*v as usize).copied().unwrap_or(0);
                        }
                    }
                }
            }
            doc.tokens.to_vec()
        }
        Err(e) => {
            c.d.error(
                at,
                format!("the enum values do not form JSON ({:?})", e.fault),
            );
            return None;
        }
    };
    Some(Schema {
        nodes,
        root,
        consts_src,
        consts,
    })
}

/// A `validate` of the definition `reference` of a `definitions` mapping written as YAML (or
/// JSON) text, outside any API: for tests, fuzzing and the cross-check.
pub fn check_from_text(
    definitions: &str,
    reference: &str,
) -> Result<MessageCheck, Vec<super::Diagnostic>> {
    let mut d = Diags::default();
    let file = std::path::Path::new("definitions.yaml");
    let schema = Doc::parse(file, definitions.to_string(), &mut d).and_then(|doc| {
        let root = Node::root(&doc);
        compile(Some(root.clone()), reference, &root, &mut d)
    });
    match schema {
        Some(s) if !d.has_errors() => Ok(MessageCheck {
            limits: Limits::DEFAULT,
            schema: Some(Box::new(s)),
            definition: reference.to_string(),
        }),
        _ => Err(d.list),
    }
}

/// `~1` and `~0` of a JSON pointer segment.
fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

impl<'a> Compiler<'a, '_> {
    fn push(&mut self, at: &Node<'a>) -> u32 {
        self.nodes.push(SNode::default());
        self.at.push(at.clone());
        self.refs.push(0);
        (self.nodes.len() - 1) as u32
    }

    /// The node of definition `name`, compiled on first use.
    fn definition(&mut self, name: &str, at: &Node<'a>) -> Option<u32> {
        if let Some(&(_, i)) = self.by_name.iter().find(|(n, _)| n == name) {
            self.refs[i as usize] += 1;
            return Some(i);
        }
        let Some(def) = self.defs.as_ref().and_then(|d| d.get(name)) else {
            let known: Vec<String> = self
                .defs
                .as_ref()
                .and_then(|d| d.v.as_mapping())
                .map(|m| m.keys().filter_map(scalar_text).collect())
                .unwrap_or_default();
            self.d.error(
                at,
                format!(
                    "definition '{name}' is not in the API's definitions ({})",
                    if known.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has {}", known.join(", "))
                    }
                ),
            );
            return None;
        };
        let i = self.push(&def);
        self.refs[i as usize] = 1;
        self.by_name.push((name.to_string(), i));
        self.fill(i, &def);
        Some(i)
    }

    fn schema(&mut self, n: &Node<'a>) -> u32 {
        let i = self.push(n);
        self.fill(i, n);
        i
    }

    fn schemas(&mut self, n: &Node<'a>) -> Vec<u32> {
        let items = n.items(self.d);
        if items.is_empty() {
            self.d.error(n, "expected a non-empty list of schemas");
        }
        items.iter().map(|s| self.schema(s)).collect()
    }

    fn extra(&mut self, n: &Node<'a>) -> Extra {
        match n.v {
            Value::Bool(true) => Extra::Any,
            Value::Bool(false) => Extra::Nothing,
            _ => Extra::Schema(self.schema(n)),
        }
    }

    fn count(&mut self, n: &Node) -> u64 {
        n.u64(self.d).unwrap_or(0)
    }

    fn limit(&mut self, n: &Node) -> String {
        let text = match n.v {
            Value::Number(x) => x.to_string(),
            _ => String::new(),
        };
        if Num::read(&text).is_none() {
            self.d.error(n, "expected a number");
        }
        text
    }

    fn pattern(&mut self, n: &Node) -> Option<Pattern> {
        let text = n.text(self.d)?;
        match Pattern::compile(&text) {
            Ok(p) => Some(p),
            Err(e) => {
                self.d.error(n, format!("pattern: {e}"));
                None
            }
        }
    }

    /// Compiles the schema `n` into node `i`.
    fn fill(&mut self, i: u32, n: &Node<'a>) {
        let Some(map) = n.v.as_mapping() else {
            self.d.error(n, "expected a schema (a mapping)");
            return;
        };
        let keys: Vec<String> = map.keys().filter_map(scalar_text).collect();
        for k in &keys {
            if KEYWORDS.contains(&k.as_str())
                || ANNOTATIONS.contains(&k.as_str())
                || k.starts_with("x-")
            {
                continue;
            }
            if let Some(at) = n.get(k).or_else(|| Some(n.clone())) {
                let what = match k.as_str() {
                    "multipleOf" | "dependencies" | "discriminator" | "id" | "$id" | "const"
                    | "contains" | "propertyNames" | "if" => {
                        format!("schema keyword '{k}' is not supported by wsgate's validate")
                    }
                    _ => format!(
                        "'{k}' is not a JSON Schema draft 4 keyword that wsgate knows; a \
                         misspelt keyword would check nothing"
                    ),
                };
                self.d.error(&at, what);
            }
        }
        let mut node = SNode::default();
        if let Some(r) = n.get("$ref") {
            let others: Vec<&String> = keys
                .iter()
                .filter(|k| *k != "$ref" && KEYWORDS.contains(&k.as_str()))
                .collect();
            if !others.is_empty() {
                self.d.warn(
                    n,
                    format!(
                        "beside $ref, {} {} ignored (JSON Schema draft 4)",
                        others
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if others.len() == 1 { "is" } else { "are" }
                    ),
                );
            }
            let text = r.text(self.d).unwrap_or_default();
            match text.strip_prefix("#/definitions/") {
                Some(name) if !name.contains('/') => {
                    if let Some(t) = self.definition(&unescape_pointer(name), &r) {
                        node.checks.push(Check::Ref(t));
                    }
                }
                _ => self.d.error(
                    &r,
                    format!(
                        "$ref '{text}': expected '#/definitions/NAME', a definition of this API"
                    ),
                ),
            }
            self.nodes[i as usize] = node;
            return;
        }
        if let Some(t) = n.get("type") {
            let names = match t.v {
                Value::Sequence(_) => t.items(self.d),
                _ => vec![t.clone()],
            };
            for name in names {
                let text = name.text(self.d).unwrap_or_default();
                match types::by_name(&text) {
                    Some(bits) => node.types |= bits,
                    None => self.d.error(
                        &name,
                        format!(
                            "'{text}' is not a type: expected null, boolean, object, array, \
                             number, integer or string"
                        ),
                    ),
                }
            }
        }
        if let Some(e) = n.get("enum") {
            let mut values = Vec::new();
            for item in e.items(self.d) {
                match to_json(item.v) {
                    Some(json) => {
                        values.push(self.consts.len() as u32);
                        self.consts.push(json);
                    }
                    None => self.d.error(&item, "expected a value JSON can hold"),
                }
            }
            if values.is_empty() {
                self.d.error(&e, "expected a non-empty list of values");
            }
            node.checks.push(Check::Enum(values));
        }
        for (key, max) in [("minimum", false), ("maximum", true)] {
            let exclusive_key = if max {
                "exclusiveMaximum"
            } else {
                "exclusiveMinimum"
            };
            let exclusive = n.bool_at(exclusive_key, false, self.d);
            let Some(m) = n.get(key) else {
                if let Some(x) = n.get(exclusive_key) {
                    self.d
                        .warn(&x, format!("{exclusive_key} without {key} is ignored"));
                }
                continue;
            };
            let limit = self.limit(&m);
            node.checks.push(if max {
                Check::Maximum { limit, exclusive }
            } else {
                Check::Minimum { limit, exclusive }
            });
        }
        for (key, make) in [
            ("minLength", Check::MinLength as fn(u64) -> Check),
            ("maxLength", Check::MaxLength),
            ("minItems", Check::MinItems),
            ("maxItems", Check::MaxItems),
            ("minProperties", Check::MinProperties),
            ("maxProperties", Check::MaxProperties),
        ] {
            if let Some(v) = n.get(key) {
                let count = self.count(&v);
                node.checks.push(make(count));
            }
        }
        if let Some(p) = n.get("pattern")
            && let Some(p) = self.pattern(&p)
        {
            node.checks.push(Check::Pattern(Box::new(p)));
        }
        if let Some(f) = n.get("format") {
            let text = f.text(self.d).unwrap_or_default();
            match Format::by_name(&text) {
                Some(f) => node.checks.push(Check::Format(f)),
                None => self.d.warn(
                    &f,
                    format!("format '{text}' is not checked (checked: date-time, email, uuid)"),
                ),
            }
        }
        if n.bool_at("uniqueItems", false, self.d) {
            node.checks.push(Check::UniqueItems);
        }
        if let Some(items) = n.get("items") {
            if items.v.is_sequence() {
                let list: Vec<u32> = items.items(self.d).iter().map(|s| self.schema(s)).collect();
                let additional = match n.get("additionalItems") {
                    Some(a) => self.extra(&a),
                    None => Extra::Any,
                };
                node.checks.push(Check::Tuple {
                    items: list,
                    additional,
                });
            } else {
                let s = self.schema(&items);
                node.checks.push(Check::Items(s));
            }
        } else if let Some(a) = n.get("additionalItems") {
            self.d
                .warn(&a, "additionalItems without a list of items is ignored");
        }
        if let Some(r) = n.get("required") {
            let names: Vec<String> = r
                .items(self.d)
                .iter()
                .filter_map(|x| x.text(self.d))
                .collect();
            node.checks.push(Check::Required(names));
        }
        let mut named = Vec::new();
        if let Some(p) = n.get("properties") {
            for (name, s) in p.entries(self.d) {
                let idx = self.schema(&s);
                named.push((name, idx));
            }
            named.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut patterns = Vec::new();
        if let Some(pp) = n.get("patternProperties") {
            let entries = pp.entries(self.d);
            if entries.len() > PATTERN_PROPERTIES_MAX {
                self.d.error(
                    &pp,
                    format!("at most {PATTERN_PROPERTIES_MAX} patternProperties are supported"),
                );
            }
            for (text, s) in entries {
                let compiled = Pattern::compile(&text);
                let idx = self.schema(&s);
                match compiled {
                    Ok(p) => patterns.push((p, idx)),
                    Err(e) => self.d.error(&s, format!("patternProperties: {e}")),
                }
            }
        }
        let additional = match n.get("additionalProperties") {
            Some(a) => self.extra(&a),
            None => Extra::Any,
        };
        if !named.is_empty() || !patterns.is_empty() || additional != Extra::Any {
            node.checks.push(Check::Properties {
                named,
                patterns,
                additional,
            });
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(list) = n.get(key) {
                let subs = self.schemas(&list);
                node.checks.push(match key {
                    "allOf" => Check::AllOf(subs),
                    "anyOf" => Check::AnyOf(subs),
                    _ => Check::OneOf(subs),
                });
            }
        }
        if let Some(x) = n.get("not") {
            let s = self.schema(&x);
            node.checks.push(Check::Not(s));
        }
        self.nodes[i as usize] = node;
    }

    /// Refuses a cycle of `$ref`s that never steps into the value: `A: {$ref: B}` with
    /// `B: {allOf: [{$ref: A}]}` would check the same value forever.
    fn cycles(&mut self) {
        // Edges that stay on the same value.
        let same_value = |c: &Check| -> Vec<u32> {
            match c {
                Check::Ref(t) | Check::Not(t) => vec![*t],
                Check::AllOf(l) | Check::AnyOf(l) | Check::OneOf(l) => l.clone(),
                _ => Vec::new(),
            }
        };
        // 0 unseen, 1 on the current path, 2 done; iterative so a long chain cannot overflow.
        let mut state = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(u32, Vec<u32>)> = Vec::new();
            let first: Vec<u32> = self.nodes[start]
                .checks
                .iter()
                .flat_map(same_value)
                .collect();
            state[start] = 1;
            stack.push((start as u32, first));
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                let Some(t) = next.pop() else {
                    state[node as usize] = 2;
                    stack.pop();
                    continue;
                };
                match state[t as usize] {
                    0 => {
                        state[t as usize] = 1;
                        let out = self.nodes[t as usize]
                            .checks
                            .iter()
                            .flat_map(same_value)
                            .collect();
                        stack.push((t, out));
                    }
                    1 => {
                        let at = self.at[t as usize].clone();
                        self.d.error(
                            &at,
                            "$ref cycle that never steps into the value: this schema ends up \
                             checking the same value against itself again",
                        );
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A YAML value as JSON text; `None` for what JSON cannot hold (infinities, NaN).
fn to_json(v: &Value) -> Option<String> {
    let mut out = String::new();
    write_json(v, &mut out)?;
    Some(out)
}

fn write_json(v: &Value, out: &mut String) -> Option<()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let text = n.to_string();
            Num::read(&text)?;
            out.push_str(&text);
        }
        Value::String(s) => write_string(s, out),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out)?;
            }
            out.push(']');
        }
        Value::Mapping(m) => {
            out.push('{');
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(&scalar_text(k)?, out);
                out.push(':');
                write_json(val, out)?;
            }
            out.push('}');
        }
        Value::Tagged(t) => write_json(&t.value, out)?,
    }
    Some(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(defs: &str) -> MessageCheck {
        check_from_text(defs, "#/definitions/S").unwrap_or_else(|ds| {
            let all: Vec<String> = ds.iter().map(|d| d.to_string()).collect();
            panic!("{defs}\n{}", all.join("\n"))
        })
    }

    fn refused(defs: &str) -> String {
        match check_from_text(defs, "#/definitions/S") {
            Ok(_) => panic!("compiled: {defs}"),
            Err(ds) => ds
                .iter()
                .filter(|d| d.severity == super::super::Severity::Error)
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Each schema with documents that pass and documents that fail, and the keyword and
    /// pointer of the first failure.
    #[test]
    fn every_keyword_passes_and_fails() {
        type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                "{type: string}",
                &[r#""a""#, r#""""#],
                &[("1", "type", ""), ("null", "type", ""), ("{}", "type", "")],
            ),
            (
                "{type: [integer, 'null']}",
                &["1", "-0", "null", "123456789012345678901234567890"],
                &[
                    ("1.0", "type", ""),
                    ("1e2", "type", ""),
                    ("true", "type", ""),
                ],
            ),
            (
                "{type: number}",
                &["1", "1.5", "-2e-3"],
                &[(r#""1""#, "type", "")],
            ),
            (
                "{type: boolean}",
                &["true", "false"],
                &[("0", "type", ""), ("null", "type", "")],
            ),
            (
                "{enum: [a, 1, true, null, [1, {k: v}], {x: 1.5}]}",
                &[
                    r#""a""#,
                    "1",
                    "1.0",
                    "true",
                    "null",
                    r#"[1,{"k":"v"}]"#,
                    r#"{"x":15e-1}"#,
                    r#""\u0061""#,
                ],
                &[
                    (r#""b""#, "enum", ""),
                    ("false", "enum", ""),
                    ("[1]", "enum", ""),
                    (r#"{"x":1.5,"y":1}"#, "enum", ""),
                ],
            ),
            (
                "{minimum: 5, maximum: 10}",
                &["5", "10", "7.5", "5.0", r#""not a number""#],
                &[
                    ("4.999", "minimum", ""),
                    ("10.0000000000000000001", "maximum", ""),
                ],
            ),
            (
                "{minimum: 5, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: true}",
                &["5.000000000000000001", "9"],
                &[("5", "minimum", ""), ("10", "maximum", "")],
            ),
            (
                "{maximum: 9007199254740992}",
                &["9007199254740992", "-1e400"],
                &[("9007199254740993", "maximum", "")],
            ),
            (
                "{minimum: 0.1}",
                &["0.1", "0.10000000000000001"],
                &[("0.09999999999999999", "minimum", "")],
            ),
            (
                "{minLength: 2, maxLength: 3}",
                &[
                    r#""ab""#,
                    r#""abc""#,
                    r#""é😀""#,
                    r#""\ud83d\ude00xy""#,
                    "12",
                ],
                &[
                    (r#""a""#, "minLength", ""),
                    (r#""abcd""#, "maxLength", ""),
                    (r#""😀""#, "minLength", ""),
                ],
            ),
            (
                "{pattern: '^[A-Z]{1,5}$'}",
                &[r#""IBM""#, r#""A""#, "5"],
                &[
                    (r#""ibm""#, "pattern", ""),
                    (r#""TOOLONG""#, "pattern", ""),
                    (r#""""#, "pattern", ""),
                ],
            ),
            (
                "{pattern: 'b+'}",
                &[r#""abbc""#],
                &[(r#""ac""#, "pattern", "")],
            ),
            (
                "{format: date-time}",
                &[r#""2026-12-02T15:04:05Z""#, "3"],
                &[(r#""2026-12-02""#, "format", "")],
            ),
            (
                "{format: email}",
                &[r#""a@example.com""#],
                &[(r#""example.com""#, "format", "")],
            ),
            (
                "{format: uuid}",
                &[r#""123e4567-e89b-12d3-a456-426614174000""#],
                &[(r#""123e4567""#, "format", "")],
            ),
            (
                "{minItems: 1, maxItems: 2}",
                &["[1]", "[1,2]", "{}"],
                &[("[]", "minItems", ""), ("[1,2,3]", "maxItems", "")],
            ),
            (
                "{uniqueItems: true}",
                &[
                    "[]",
                    "[1,2]",
                    "[1,true]",
                    r#"[{"a":1},{"a":2}]"#,
                    "[[1],[1,1]]",
                    "[0,false]",
                ],
                &[
                    ("[1,1.0]", "uniqueItems", ""),
                    (r#"[{"a":1,"b":2},{"b":2,"a":1}]"#, "uniqueItems", ""),
                    (r#"["x","\u0078"]"#, "uniqueItems", ""),
                ],
            ),
            (
                "{items: {type: integer}}",
                &["[]", "[1,2]", "7"],
                &[("[1,\"2\"]", "type", "/1")],
            ),
            (
                "{items: [{type: integer}, {type: string}], additionalItems: false}",
                &["[1]", "[1,\"a\"]"],
                &[
                    ("[1,2]", "type", "/1"),
                    ("[1,\"a\",3]", "additionalItems", "/2"),
                ],
            ),
            (
                "{items: [{type: integer}], additionalItems: {type: boolean}}",
                &["[1,true,false]"],
                &[("[1,true,3]", "type", "/2")],
            ),
            (
                "{minProperties: 1, maxProperties: 2}",
                &[r#"{"a":1}"#, "[]"],
                &[
                    ("{}", "minProperties", ""),
                    (r#"{"a":1,"b":2,"c":3}"#, "maxProperties", ""),
                ],
            ),
            (
                "{required: [action, symbol]}",
                &[r#"{"action":1,"symbol":2,"x":3}"#, "[]"],
                &[(r#"{"action":1}"#, "required", ""), ("{}", "required", "")],
            ),
            (
                "{properties: {a: {type: string}, b: {type: integer}}, additionalProperties: false}",
                &["{}", r#"{"a":"x","b":1}"#],
                &[
                    (r#"{"a":1}"#, "type", "/a"),
                    (r#"{"a":"x","c":1}"#, "additionalProperties", "/c"),
                ],
            ),
            (
                "{properties: {a: {}}, additionalProperties: {type: integer}}",
                &[r#"{"a":"x","b":1}"#],
                &[(r#"{"b":"x"}"#, "type", "/b")],
            ),
            (
                "{patternProperties: {'^x-': {type: string}}, additionalProperties: false}",
                &[r#"{"x-a":"1"}"#],
                &[
                    (r#"{"x-a":1}"#, "type", "/x-a"),
                    (r#"{"y":"1"}"#, "additionalProperties", "/y"),
                ],
            ),
            (
                "{allOf: [{minimum: 1}, {maximum: 3}]}",
                &["1", "3"],
                &[("0", "minimum", ""), ("4", "maximum", "")],
            ),
            (
                "{anyOf: [{type: string}, {minimum: 10}]}",
                &[r#""a""#, "10"],
                &[("9", "anyOf", "")],
            ),
            (
                "{oneOf: [{type: integer}, {minimum: 2}]}",
                &["1", "2.5"],
                &[("3", "oneOf", ""), ("1.5", "oneOf", "")],
            ),
            (
                "{not: {type: 'null'}}",
                &["1", "{}"],
                &[("null", "not", "")],
            ),
            (
                "{properties: {a: {properties: {b: {items: {enum: [1]}}}}}}",
                &[r#"{"a":{"b":[1,1]}}"#],
                &[(r#"{"a":{"b":[1,2]}}"#, "enum", "/a/b/1")],
            ),
        ];
        for (schema, pass, fail) in cases {
            let c = compiled(&format!("S: {schema}"));
            for doc in *pass {
                assert_eq!(c.check(doc.as_bytes(), true), Ok(()), "{schema} on {doc}");
            }
            for (doc, keyword, pointer) in *fail {
                let f = c
                    .check(doc.as_bytes(), true)
                    .expect_err(&format!("{schema} passed {doc}"));
                assert_eq!(f.keyword, *keyword, "{schema} on {doc}");
                assert_eq!(
                    f.at,
                    crate::validate::Location::Pointer(pointer.to_string()),
                    "{schema} on {doc}"
                );
            }
        }
    }

    #[test]
    fn refs_reach_definitions_and_may_recurse() {
        let c = compiled(
            "S: {$ref: '#/definitions/Tree'}\n\
             Tree: {type: object, required: [v], properties: {v: {type: integer}, kids: {type: array, items: {$ref: '#/definitions/Tree'}}}}",
        );
        assert_eq!(
            c.check(br#"{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}"#, true),
            Ok(())
        );
        let f = c
            .check(br#"{"v":1,"kids":[{"v":2,"kids":[{"v":"x"}]}]}"#, true)
            .unwrap_err();
        assert_eq!(f.reason(), "validate: type at /kids/0/kids/0/v");
        // Deep documents follow the schema down to the parser's bound.
        let deep = format!(
            "{}{}{}",
            r#"{"v":1,"kids":["#.repeat(120),
            r#"{"v":0}"#,
            "]}".repeat(120)
        );
        assert_eq!(c.check(deep.as_bytes(), true), Ok(()));
    }

    #[test]
    fn shared_definitions_under_anyof_stay_linear() {
        // Each level tries the same definition twice; without the memo this is 2^depth.
        let c = compiled(
            "S: {$ref: '#/definitions/N'}\n\
             N: {type: array, anyOf: [{items: {$ref: '#/definitions/N'}}, {items: {$ref: '#/definitions/N'}}]}",
        );
        let doc = format!("{}0{}", "[".repeat(400), "]".repeat(400));
        let f = c.check(doc.as_bytes(), true).unwrap_err();
        assert_eq!(f.keyword, "anyOf");
    }

    #[test]
    fn load_errors_name_the_problem() {
        for (defs, words) in [
            (
                "S: {$ref: '#/definitions/Nope'}",
                "definition 'Nope' is not in the API's definitions",
            ),
            (
                "S: {$ref: 'other.yaml#/x'}",
                "expected '#/definitions/NAME'",
            ),
            (
                "S: {$ref: '#/definitions/T'}\nT: {allOf: [{$ref: '#/definitions/S'}]}",
                "$ref cycle",
            ),
            ("S: {anyOf: [{$ref: '#/definitions/S'}]}", "$ref cycle"),
            ("S: {multipleOf: 3}", "'multipleOf' is not supported"),
            (
                "S: {discriminator: kind}",
                "'discriminator' is not supported",
            ),
            (
                "S: {requried: [a]}",
                "'requried' is not a JSON Schema draft 4 keyword",
            ),
            ("S: {type: text}", "'text' is not a type"),
            ("S: {pattern: '(a'}", "pattern:"),
            ("S: {minLength: -1}", "expected a whole number"),
            ("S: {enum: []}", "non-empty"),
            ("S: {anyOf: []}", "non-empty"),
            ("S: {minimum: big}", "expected a number"),
            ("S: {properties: {a: {type: nope}}}", "'nope' is not a type"),
        ] {
            let e = refused(defs);
            assert!(e.contains(words), "{defs}: {e}");
        }
        // Progress through the value breaks no rule: a list of lists of ...
        compiled("S: {items: {$ref: '#/definitions/S'}}");
        // Annotations and vendor keys are fine.
        compiled("S: {title: t, description: d, example: 1, x-ibm-thing: 2, readOnly: true}");
    }

    #[test]
    fn literal_enum_values_keep_their_json_spelling() {
        let c = compiled("S: {enum: ['quote\"back\\slash', \"tab\\t\"]}");
        assert_eq!(c.check(br#""quote\"back\\slash""#, true), Ok(()));
        assert_eq!(c.check(b"\"tab\\t\"", true), Ok(()));
        assert!(c.check(br#""tab""#, true).is_err());
    }
}
