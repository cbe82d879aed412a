//! `validate` against an independent JSON Schema draft 4 implementation (Python's
//! `jsonschema`, pinned and installed by `tests/peers/setup.sh`): generated schemas over every
//! keyword wsgate checks apart from `format` (which `jsonschema` leaves unchecked by default),
//! and generated documents; the verdict on every document must be the same.
//!
//! The generator stays where both sides define the same thing: member names are unique (wsgate
//! refuses duplicates, Python keeps the last), strings under `pattern` are matched by patterns
//! without `.` or negated classes (wsgate's engine steps by byte, Python's by character), and
//! the numbers in schemas are ones YAML reads exactly. Numbers in documents are read by Python
//! as `Decimal`, so exact comparisons are compared with exact comparisons.

use crate::common::python::{peers_dir, python};
use std::io::Write as _;
use std::process::{Command, Stdio};

/// xorshift64*: the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const STRINGS: &[&str] = &[
    r#""""#,
    r#""a""#,
    r#""ab""#,
    r#""abc""#,
    r#""x-1""#,
    r#""IBM""#,
    r#""yz""#,
    r#""123""#,
    r#""é""#,
    r#""😀x""#,
    r#""a\"b""#,
    r#""\u0061""#,
    r#""xyzyz""#,
];
const DOC_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "1.0",
    "2",
    "1e1",
    "-1.5",
    "1.5",
    "9007199254740992",
    "9007199254740993",
    "0.1",
    "0.10000000000000001",
    "0.09999999999999999",
    "3",
    "-1",
];
const SCHEMA_NUMBERS: &[&str] = &["0", "1", "2", "-1", "1.5", "0.1", "9007199254740992"];
const KEYS: &[&str] = &["a", "b", "c", "x-1", "d"];
const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];
const PATTERNS: &[&str] = &["^[a-z]+$", "ab", "^(x|yz)*$", "[0-9]{2,3}", "^I", "c$"];

fn value(r: &mut Rng, depth: u32) -> String {
    let leaf = depth == 0 || r.chance(50);
    match r.below(if leaf { 4 } else { 6 }) {
        0 => r.pick(&["null", "true", "false"]).to_string(),
        1 => r.pick(DOC_NUMBERS).to_string(),
        2 | 3 => r.pick(STRINGS).to_string(),
        4 => {
            let items: Vec<String> = (0..r.below(4)).map(|_| value(r, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let mut keys: Vec<&str> = KEYS.to_vec();
            let n = r.below(4);
            let mut members = Vec::new();
            for _ in 0..n {
                let k = keys.remove(r.below(keys.len()));
                members.push(format!("\"{k}\":{}", value(r, depth - 1)));
            }
            format!("{{{}}}", members.join(","))
        }
    }
}

/// A schema of at most `depth` levels; `refs` names the definitions it may `$ref`.
fn schema(r: &mut Rng, depth: u32, refs: &[&str]) -> String {
    let mut kw: Vec<String> = Vec::new();
    let sub = |r: &mut Rng| schema(r, depth.saturating_sub(1), refs);
    if !refs.is_empty() && r.chance(10) {
        return format!(r##"{{"$ref":"#/definitions/{}"}}"##, r.pick(refs));
    }
    if r.chance(40) {
        let ty = if r.chance(70) {
            format!("\"{}\"", r.pick(TYPES))
        } else {
            format!("[\"{}\",\"{}\"]", r.pick(TYPES), r.pick(TYPES))
        };
        kw.push(format!("\"type\":{ty}"));
    }
    let rounds = 1 + r.below(3);
    for _ in 0..rounds {
        match r.below(if depth == 0 { 9 } else { 17 }) {
            0 => {
                let values: Vec<String> = (0..1 + r.below(3)).map(|_| value(r, 1)).collect();
                // Values that YAML reads exactly only.
                if values
                    .iter()
                    .all(|v| !v.contains("0000") && !v.contains("9999") && !v.contains("e1"))
                {
                    kw.push(format!("\"enum\":[{}]", values.join(",")));
                }
            }
            1 => {
                kw.push(format!("\"minimum\":{}", r.pick(SCHEMA_NUMBERS)));
                if r.chance(50) {
                    kw.push("\"exclusiveMinimum\":true".into());
                }
            }
            2 => {
                kw.push(format!("\"maximum\":{}", r.pick(SCHEMA_NUMBERS)));
                if r.chance(50) {
                    kw.push("\"exclusiveMaximum\":true".into());
                }
            }
            3 => kw.push(format!("\"minLength\":{}", r.below(4))),
            4 => kw.push(format!("\"maxLength\":{}", r.below(4))),
            5 => kw.push(format!("\"pattern\":\"{}\"", r.pick(PATTERNS))),
            6 => kw.push(format!("\"minItems\":{}", r.below(3))),
            7 => kw.push(format!("\"maxItems\":{}", r.below(3))),
            8 => kw.push(format!("\"uniqueItems\":{}", r.chance(80))),
            9 => kw.push(format!("\"minProperties\":{}", r.below(3))),
            10 => kw.push(format!("\"maxProperties\":{}", r.below(3))),
            11 => {
                let names: Vec<String> = (0..1 + r.below(2))
                    .map(|_| format!("\"{}\"", r.pick(KEYS)))
                    .collect();
                let mut unique = names.clone();
                unique.dedup();
                kw.push(format!("\"required\":[{}]", unique.join(",")));
            }
            12 => {
                if r.chance(60) {
                    kw.push(format!("\"items\":{}", sub(r)));
                } else {
                    let items: Vec<String> = (0..1 + r.below(2)).map(|_| sub(r)).collect();
                    kw.push(format!("\"items\":[{}]", items.join(",")));
                    match r.below(3) {
                        0 => kw.push("\"additionalItems\":false".into()),
                        1 => kw.push(format!("\"additionalItems\":{}", sub(r))),
                        _ => {}
                    }
                }
            }
            13 => {
                let mut keys: Vec<&str> = KEYS.to_vec();
                let props: Vec<String> = (0..1 + r.below(2))
                    .map(|_| {
                        let k = keys.remove(r.below(keys.len()));
                        format!("\"{k}\":{}", sub(r))
                    })
                    .collect();
                kw.push(format!("\"properties\":{{{}}}", props.join(",")));
                if r.chance(40) {
                    kw.push(format!("\"patternProperties\":{{\"^x-\":{}}}", sub(r)));
                }
                match r.below(3) {
                    0 => kw.push("\"additionalProperties\":false".into()),
                    1 => kw.push(format!("\"additionalProperties\":{}", sub(r))),
                    _ => {}
                }
            }
            14 => {
                let key = r.pick(&["allOf", "anyOf", "oneOf"]);
                let subs: Vec<String> = (0..1 + r.below(3)).map(|_| sub(r)).collect();
                kw.push(format!("\"{key}\":[{}]", subs.join(",")));
            }
            15 => kw.push(format!("\"not\":{}", sub(r))),
            _ => kw.push(format!("\"items\":{}", sub(r))),
        }
    }
    // A keyword may come twice from the rounds: keep the first of each.
    let mut seen = Vec::new();
    kw.retain(|k| {
        let name = k.split(':').next().unwrap_or_default().to_string();
        let fresh = !seen.contains(&name);
        seen.push(name);
        fresh
    });
    format!("{{{}}}", kw.join(","))
}

#[test]
fn verdicts_match_python_jsonschema_draft4() {
    let Some(py) = python() else { return };
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lines = String::new();
    let mut ours = Vec::new();
    for case in 0..400 {
        // D may recurse into itself through items or properties; S may use it.
        let d = schema(&mut r, 2, &["D"]);
        let s = schema(&mut r, 3, &["D"]);
        let definitions = format!("{{\"S\":{s},\"D\":{d}}}");
        let check = match wsgate::config::check_from_text(&definitions, "#/definitions/S") {
            Ok(c) => c,
            // A $ref loop without progress is a load error here and would recurse forever in
            // Python: not a document verdict to compare.
            Err(e) if e.iter().any(|x| x.message.contains("$ref cycle")) => continue,
            Err(e) => panic!("case {case}: {definitions}\n{e:?}"),
        };
        let docs: Vec<String> = (0..30).map(|_| value(&mut r, 3)).collect();
        let verdicts: String = docs
            .iter()
            .map(|doc| match check.check(doc.as_bytes(), true) {
                Ok(()) => '1',
                Err(_) => '0',
            })
            .collect();
        let quoted: Vec<String> = docs.iter().map(|d| json_string(d)).collect();
        lines.push_str(&format!(
            "{{\"definitions\":{definitions},\"docs\":[{}]}}\n",
            quoted.join(",")
        ));
        ours.push((definitions, docs, verdicts));
    }
    let mut child = Command::new(py)
        .arg(peers_dir().join("jsonschema_verdicts.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jsonschema_verdicts.py");
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let out = child
        .wait_with_output()
        .expect("jsonschema_verdicts.py output");
    feeder.join().expect("feeder").expect("write cases");
    assert!(
        out.status.success(),
        "jsonschema_verdicts.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    assert_eq!(theirs.len(), ours.len(), "one line of verdicts per case");
    let (mut valid, mut total, mut differ) = (0, 0, Vec::new());
    for ((defs, docs, mine), py) in ours.iter().zip(&theirs) {
        for ((doc, a), b) in docs.iter().zip(mine.chars()).zip(py.chars()) {
            total += 1;
            valid += usize::from(a == '1');
            if a != b {
                differ.push(format!("{defs}\n  {doc}: wsgate {a}, jsonschema {b}"));
            }
        }
    }
    println!("{total} documents, {valid} valid, {} cases", ours.len());
    assert!(
        differ.is_empty(),
        "{} of {total} verdicts differ:\n{}",
        differ.len(),
        differ[..differ.len().min(20)].join("\n")
    );
    // A corpus where everything passes or everything fails proves little.
    assert!(
        valid * 10 > total && valid * 10 < total * 9,
        "{valid} of {total} valid"
    );
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
