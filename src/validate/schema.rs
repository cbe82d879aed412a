//! A JSON Schema (draft 4, as Swagger 2.0 uses it) compiled into a flat program, and its
//! evaluation over a parsed document.
//!
//! A schema is a list of [`Node`]s addressed by index; a node is its allowed types and a list
//! of [`Check`]s, and sub-schemas (`properties`, `items`, `allOf`, `$ref`, …) are indices. The
//! program is built once at load (see `config::schema`), so a message costs a walk of its tape
//! and nothing else.
//!
//! Work per message is bounded. Inline schemas form a tree, so each (node, value) pair is
//! visited at most once along each path of `$ref`s; a node that more than one `$ref` reaches
//! remembers its verdict per value in the scratch memo, so `anyOf` over shared definitions
//! cannot take exponential time. The loader refuses `$ref` cycles that do not step into the
//! value, so recursion follows the document's depth (itself bounded by the parser), and a
//! counter bounds it again.

use super::format::Format;
use super::number::Num;
use crate::json::parse::{Doc, Kind, Token};
use crate::policy::pattern::Pattern;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Type bits of `type`.
pub mod types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const OBJECT: u8 = 4;
    pub const ARRAY: u8 = 8;
    pub const NUMBER: u8 = 16;
    pub const INTEGER: u8 = 32;
    pub const STRING: u8 = 64;

    pub fn by_name(name: &str) -> Option<u8> {
        Some(match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "object" => OBJECT,
            "array" => ARRAY,
            "number" => NUMBER | INTEGER,
            "integer" => INTEGER,
            "string" => STRING,
            _ => return None,
        })
    }
}

/// Calls of the evaluator open at once; far above what the parser's nesting bound and a
/// refused cycle leave possible, it only guards the stack.
const MAX_DEPTH: u32 = 4096;

/// What a schema allows beyond what it lists (`additionalProperties`, `additionalItems`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    Any,
    Nothing,
    Schema(u32),
}

#[derive(Clone, Debug)]
pub enum Check {
    /// An index into the schema's constants per allowed value.
    Enum(Vec<u32>),
    Minimum {
        limit: String,
        exclusive: bool,
    },
    Maximum {
        limit: String,
        exclusive: bool,
    },
    MinLength(u64),
    MaxLength(u64),
    Pattern(Box<Pattern>),
    Format(Format),
    MinItems(u64),
    MaxItems(u64),
    UniqueItems,
    /// `items` as one schema for every item.
    Items(u32),
    /// `items` as a list, one schema per position, and `additionalItems` for the rest.
    Tuple {
        items: Vec<u32>,
        additional: Extra,
    },
    MinProperties(u64),
    MaxProperties(u64),
    Required(Vec<String>),
    /// `properties` sorted by name, `patternProperties`, and `additionalProperties`.
    Properties {
        named: Vec<(String, u32)>,
        patterns: Vec<(Pattern, u32)>,
        additional: Extra,
    },
    AllOf(Vec<u32>),
    AnyOf(Vec<u32>),
    OneOf(Vec<u32>),
    Not(u32),
    /// `$ref`: the definition's node (draft 4: the other keywords beside it do not apply).
    Ref(u32),
}

impl Check {
    pub fn keyword(&self) -> &'static str {
        match self {
            Check::Enum(_) => "enum",
            Check::Minimum { .. } => "minimum",
            Check::Maximum { .. } => "maximum",
            Check::MinLength(_) => "minLength",
            Check::MaxLength(_) => "maxLength",
            Check::Pattern(_) => "pattern",
            Check::Format(_) => "format",
            Check::MinItems(_) => "minItems",
            Check::MaxItems(_) => "maxItems",
            Check::UniqueItems => "uniqueItems",
            Check::Items(_) | Check::Tuple { .. } => "items",
            Check::MinProperties(_) => "minProperties",
            Check::MaxProperties(_) => "maxProperties",
            Check::Required(_) => "required",
            Check::Properties { .. } => "properties",
            Check::AllOf(_) => "allOf",
            Check::AnyOf(_) => "anyOf",
            Check::OneOf(_) => "oneOf",
            Check::Not(_) => "not",
            Check::Ref(_) => "$ref",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Allowed types as [`types`] bits; 0 allows every type.
    pub types: u8,
    pub checks: Vec<Check>,
    /// Reached from more than one place: its verdicts are remembered per message.
    pub shared: bool,
}

/// A compiled schema: its nodes, the root, and the constants its `enum`s compare with (one
/// parsed JSON array, one item per constant).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub nodes: Vec<Node>,
    pub root: u32,
    pub consts_src: String,
    pub consts: Vec<Token>,
}

/// Where a value failed: its token and the keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail {
    pub token: u32,
    pub keyword: &'static str,
}

/// Per-message memory of the evaluator, reused from message to message.
pub struct Scratch {
    memo: HashMap<u64, Option<Fail>>,
    hashes: Vec<(u64, u32)>,
    a: String,
    b: String,
    random: RandomState,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            memo: HashMap::new(),
            hashes: Vec::new(),
            a: String::new(),
            b: String::new(),
            random: RandomState::new(),
        }
    }
}

struct Cx<'d, 's> {
    doc: Doc<'d>,
    consts: Doc<'s>,
    s: &'s mut Scratch,
    depth: u32,
}

impl Schema {
    /// Checks `doc` against the schema; the first failure found, depth first in schema order.
    pub fn check(&self, doc: Doc<'_>, scratch: &mut Scratch) -> Result<(), Fail> {
        scratch.memo.clear();
        let consts = Doc {
            src: &self.consts_src,
            tokens: &self.consts,
        };
        let mut cx = Cx {
            doc,
            consts,
            s: scratch,
            depth: 0,
        };
        self.eval(&mut cx, self.root, 0)
    }

    fn eval(&self, cx: &mut Cx, node: u32, tok: u32) -> Result<(), Fail> {
        let n = &self.nodes[node as usize];
        let key = (u64::from(node) << 32) | u64::from(tok);
        if n.shared
            && let Some(&verdict) = cx.s.memo.get(&key)
        {
            return verdict.map_or(Ok(()), Err);
        }
        cx.depth += 1;
        let verdict = if cx.depth > MAX_DEPTH {
            Err(Fail {
                token: tok,
                keyword: "depth",
            })
        } else {
            self.node(cx, n, tok)
        };
        cx.depth -= 1;
        if n.shared {
            cx.s.memo.insert(key, verdict.err());
        }
        verdict
    }

    fn node(&self, cx: &mut Cx, n: &Node, tok: u32) -> Result<(), Fail> {
        let t = cx.doc.token(tok);
        let fail = |keyword| {
            Err(Fail {
                token: tok,
                keyword,
            })
        };
        if n.types != 0 && n.types & type_bits(&t) == 0 {
            return fail("type");
        }
        for c in &n.checks {
            let ok = match c {
                Check::Ref(target) => {
                    self.eval(cx, *target, tok)?;
                    true
                }
                Check::Enum(values) => values
                    .iter()
                    .any(|&v| equal(&cx.doc, tok, &cx.consts, v, cx.s)),
                Check::Minimum { limit, exclusive } => number_ok(cx, &t, tok, limit, |o| {
                    o.is_gt() || (!exclusive && o.is_eq())
                }),
                Check::Maximum { limit, exclusive } => number_ok(cx, &t, tok, limit, |o| {
                    o.is_lt() || (!exclusive && o.is_eq())
                }),
                Check::MinLength(min) => t.kind != Kind::String || code_points(cx, tok) >= *min,
                Check::MaxLength(max) => t.kind != Kind::String || code_points(cx, tok) <= *max,
                Check::Pattern(p) => {
                    t.kind != Kind::String || p.matches(cx.doc.text(tok, &mut cx.s.a), false)
                }
                Check::Format(f) => {
                    t.kind != Kind::String || f.holds(cx.doc.text(tok, &mut cx.s.a))
                }
                Check::MinItems(min) => t.kind != Kind::Array || u64::from(t.len) >= *min,
                Check::MaxItems(max) => t.kind != Kind::Array || u64::from(t.len) <= *max,
                Check::MinProperties(min) => t.kind != Kind::Object || u64::from(t.len) >= *min,
                Check::MaxProperties(max) => t.kind != Kind::Object || u64::from(t.len) <= *max,
                Check::UniqueItems => t.kind != Kind::Array || unique(cx, tok),
                Check::Items(item) => {
                    if t.kind == Kind::Array {
                        for (_, v) in cx.doc.children(tok) {
                            self.eval(cx, *item, v)?;
                        }
                    }
                    true
                }
                Check::Tuple { items, additional } => {
                    if t.kind == Kind::Array {
                        for (i, (_, v)) in cx.doc.children(tok).enumerate() {
                            match (items.get(i), additional) {
                                (Some(&s), _) | (None, &Extra::Schema(s)) => self.eval(cx, s, v)?,
                                (None, Extra::Any) => break,
                                (None, Extra::Nothing) => {
                                    return Err(Fail {
                                        token: v,
                                        keyword: "additionalItems",
                                    });
                                }
                            }
                        }
                    }
                    true
                }
                Check::Required(names) => {
                    t.kind != Kind::Object
                        || names.iter().all(|name| member(cx, tok, name).is_some())
                }
                Check::Properties {
                    named,
                    patterns,
                    additional,
                } => {
                    if t.kind == Kind::Object {
                        self.properties(cx, tok, named, patterns, additional)?;
                    }
                    true
                }
                Check::AllOf(list) => {
                    for &s in list {
                        self.eval(cx, s, tok)?;
                    }
                    true
                }
                Check::AnyOf(list) => list.iter().any(|&s| self.eval(cx, s, tok).is_ok()),
                Check::OneOf(list) => {
                    let mut passed = 0;
                    for &s in list {
                        if self.eval(cx, s, tok).is_ok() {
                            passed += 1;
                            if passed > 1 {
                                break;
                            }
                        }
                    }
                    passed == 1
                }
                Check::Not(s) => self.eval(cx, *s, tok).is_err(),
            };
            if !ok {
                return fail(c.keyword());
            }
        }
        Ok(())
    }

    fn properties(
        &self,
        cx: &mut Cx,
        obj: u32,
        named: &[(String, u32)],
        patterns: &[(Pattern, u32)],
        additional: &Extra,
    ) -> Result<(), Fail> {
        for (name_tok, value) in cx.doc.children(obj) {
            let name = cx.doc.text(name_tok, &mut cx.s.a);
            let listed = named
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()
                .map(|i| named[i].1);
            // Pattern matches are found before any sub-schema runs: the name's buffer is
            // reused below.
            let mut matched = 0usize;
            for (i, (p, _)) in patterns.iter().enumerate().take(usize::BITS as usize) {
                if p.matches(name, false) {
                    matched |= 1 << i;
                }
            }
            if let Some(s) = listed {
                self.eval(cx, s, value)?;
            }
            for (i, (_, s)) in patterns.iter().enumerate() {
                if matched & (1 << i) != 0 {
                    self.eval(cx, *s, value)?;
                }
            }
            if listed.is_none() && matched == 0 {
                match additional {
                    Extra::Any => {}
                    Extra::Nothing => {
                        return Err(Fail {
                            token: value,
                            keyword: "additionalProperties",
                        });
                    }
                    Extra::Schema(s) => self.eval(cx, *s, value)?,
                }
            }
        }
        Ok(())
    }
}

fn type_bits(t: &Token) -> u8 {
    match t.kind {
        Kind::Null => types::NULL,
        Kind::True | Kind::False => types::BOOLEAN,
        Kind::Object => types::OBJECT,
        Kind::Array => types::ARRAY,
        Kind::String => types::STRING,
        Kind::Number if t.integer => types::NUMBER | types::INTEGER,
        Kind::Number => types::NUMBER,
    }
}

fn number_ok(
    cx: &Cx,
    t: &Token,
    tok: u32,
    limit: &str,
    ok: impl Fn(std::cmp::Ordering) -> bool,
) -> bool {
    if t.kind != Kind::Number {
        return true;
    }
    match (Num::read(cx.doc.raw(tok)), Num::read(limit)) {
        (Some(v), Some(l)) => ok(v.cmp(&l)),
        _ => false,
    }
}

fn code_points(cx: &mut Cx, tok: u32) -> u64 {
    cx.doc.text(tok, &mut cx.s.a).chars().count() as u64
}

/// The value of member `name` of object `obj`.
fn member(cx: &mut Cx, obj: u32, name: &str) -> Option<u32> {
    let doc = cx.doc;
    doc.children(obj)
        .find(|&(n, _)| doc.text(n, &mut cx.s.a) == name)
        .map(|(_, v)| v)
}

/// Whether the items of array `arr` are pairwise unequal: hashed by value, sorted, and only
/// items with equal hashes compared.
fn unique(cx: &mut Cx, arr: u32) -> bool {
    let doc = cx.doc;
    let mut hashes = std::mem::take(&mut cx.s.hashes);
    hashes.clear();
    for (_, v) in doc.children(arr) {
        let mut h = cx.s.random.build_hasher();
        hash_value(&doc, v, &mut h, &cx.s.random, &mut cx.s.a);
        hashes.push((h.finish(), v));
    }
    hashes.sort_unstable();
    let mut ok = true;
    'outer: for x in 0..hashes.len() {
        let mut y = x + 1;
        while y < hashes.len() && hashes[y].0 == hashes[x].0 {
            if equal(&doc, hashes[x].1, &doc, hashes[y].1, cx.s) {
                ok = false;
                break 'outer;
            }
            y += 1;
        }
    }
    cx.s.hashes = hashes;
    ok
}

/// Feeds the value of token `i` to `h` so that equal values (by [`equal`]) hash alike: numbers
/// by value, strings decoded, object members in any order.
fn hash_value(doc: &Doc, i: u32, h: &mut impl Hasher, random: &RandomState, buf: &mut String) {
    let t = doc.token(i);
    h.write_u8(t.kind as u8);
    match t.kind {
        Kind::Null | Kind::True | Kind::False => {}
        Kind::Number => {
            if let Some(n) = Num::read(doc.raw(i)) {
                std::hash::Hash::hash(&n, h);
            }
        }
        Kind::String => h.write(doc.text(i, buf).as_bytes()),
        Kind::Array => {
            h.write_u32(t.len);
            for (_, v) in doc.children(i) {
                hash_value(doc, v, h, random, buf);
            }
        }
        Kind::Object => {
            // Order-free: the sum of each member's own hash.
            let mut sum: u64 = 0;
            for (n, v) in doc.children(i) {
                let mut m = random.build_hasher();
                m.write(doc.text(n, buf).as_bytes());
                hash_value(doc, v, &mut m, random, buf);
                sum = sum.wrapping_add(m.finish());
            }
            h.write_u32(t.len);
            h.write_u64(sum);
        }
    }
}

/// JSON equality of token `i` of `a` and token `j` of `b`: numbers by value, strings by their
/// decoded text, arrays item by item, objects member by member in any order; `true` is not `1`.
pub fn equal(a: &Doc, i: u32, b: &Doc, j: u32, s: &mut Scratch) -> bool {
    let (x, y) = (a.token(i), b.token(j));
    if x.kind != y.kind {
        return false;
    }
    match x.kind {
        Kind::Null | Kind::True | Kind::False => true,
        Kind::Number => match (Num::read(a.raw(i)), Num::read(b.raw(j))) {
            (Some(p), Some(q)) => p == q,
            _ => false,
        },
        Kind::String => same_text(a, i, b, j, s),
        Kind::Array => {
            x.len == y.len
                && a.children(i)
                    .zip(b.children(j))
                    .all(|((_, p), (_, q))| equal(a, p, b, q, s))
        }
        Kind::Object => {
            // Names are unique within an object (the parser refuses repeats).
            x.len == y.len
                && a.children(i).all(|(n, v)| {
                    let found = b.children(j).find(|&(m, _)| same_text(a, n, b, m, s));
                    found.is_some_and(|(_, w)| equal(a, v, b, w, s))
                })
        }
    }
}

/// Whether string token `i` of `a` and string token `j` of `b` hold the same text.
fn same_text(a: &Doc, i: u32, b: &Doc, j: u32, s: &mut Scratch) -> bool {
    if !a.token(i).escaped && !b.token(j).escaped {
        return a.raw(i) == b.raw(j);
    }
    a.text(i, &mut s.a) == b.text(j, &mut s.b)
}
