//! The JSON parser ([`crate::json::parse`]) and the `validate` schemas run on its tapes
//! ([`crate::validate`]).

use crate::json::parse::{Doc, Kind, Limits, Tape};
use crate::validate::{MessageCheck, Scratch};

/// Schemas the fuzzer picks from: every keyword, recursion through `$ref`, and shared
/// definitions under `anyOf` and `oneOf` (the memo's case).
const SCHEMAS: &[&str] = &[
    "S: {type: object, required: [action, symbol], additionalProperties: false, properties: \
     {action: {type: string, enum: [subscribe, unsubscribe]}, symbol: {type: string, \
     pattern: '^[A-Z]{1,5}$'}}}",
    "S: {$ref: '#/definitions/T'}\nT: {anyOf: [{type: [number, string, boolean, 'null']}, \
     {type: array, items: {$ref: '#/definitions/T'}, uniqueItems: true}, {type: object, \
     additionalProperties: {$ref: '#/definitions/T'}, maxProperties: 8}]}",
    "S: {oneOf: [{$ref: '#/definitions/N'}, {$ref: '#/definitions/N'}, {not: {type: array}}]}\n\
     N: {type: array, anyOf: [{items: {$ref: '#/definitions/N'}}, {items: [{$ref: \
     '#/definitions/N'}], additionalItems: false}]}",
    "S: {type: array, minItems: 1, maxItems: 64, items: [{type: integer, minimum: -5, \
     maximum: 9007199254740993, exclusiveMaximum: true}, {type: string, minLength: 1, \
     maxLength: 4, format: date-time}], additionalItems: {enum: [1, 1.5, 'x', [1, {a: null}], \
     {k: [true]}]}}",
    "S: {type: object, minProperties: 1, patternProperties: {'^x-': {format: uuid}, \
     '[0-9]$': {format: email}}, properties: {id: {allOf: [{type: integer}, {minimum: 0}]}}}",
];

/// Bounds the fuzzer picks from: the defaults, and small ones that each bound trips.
const LIMITS: [Limits; 2] = [
    Limits::DEFAULT,
    Limits {
        document_size: 200,
        nesting_depth: 4,
        width: 5,
        name_length: 6,
        value_length: 7,
        number_length: 8,
    },
];

/// The `json` target. The first byte picks a schema and a bound, the rest is a message. The
/// parse must not panic, and a tape it writes must be well formed: every token inside the
/// text, containers holding exactly `len` children that end at `next`. A text accepted within
/// the small bounds is accepted within the defaults with the same tape. Every schema's verdict
/// must be the same on a second run with the same scratch memory (nothing of one message
/// leaks into the next), and `parse` must agree with the parser.
pub fn parse_and_validate(data: &[u8]) {
    let Some((&pick, msg)) = data.split_first() else {
        return;
    };
    let limits = &LIMITS[usize::from(pick >> 7)];
    let mut tape = Tape::new();
    let parsed = match tape.parse(msg, limits) {
        Ok(doc) => {
            well_formed(&doc);
            Some(doc.tokens.to_vec())
        }
        Err(e) => {
            assert!(e.at <= msg.len(), "fault offset past the end");
            None
        }
    };
    if let Some(small) = &parsed
        && pick >> 7 == 1
    {
        let mut again = Tape::new();
        let doc = again
            .parse(msg, &Limits::DEFAULT)
            .expect("accepted within small bounds but not within the defaults");
        assert_eq!(doc.tokens, small.as_slice());
    }

    let parse = MessageCheck {
        limits: *limits,
        schema: None,
        definition: String::new(),
    };
    let mut scratch = Scratch::default();
    assert_eq!(
        parse.check_in(&mut scratch, msg, true).is_ok(),
        parsed.is_some()
    );
    assert!(parse.check_in(&mut scratch, msg, false).is_err());

    CHECKS.with(|checks| {
        let check = &checks[usize::from(pick & 0x7f) % checks.len()];
        verdicts(check, &mut scratch, msg);
    });
}

thread_local! {
    /// The schemas, compiled once per thread.
    static CHECKS: Vec<MessageCheck> = SCHEMAS
        .iter()
        .map(|text| {
            crate::config::check_from_text(text, "#/definitions/S")
                .unwrap_or_else(|e| panic!("fuzz schema does not compile: {e:?}"))
        })
        .collect();
}

fn verdicts(check: &MessageCheck, scratch: &mut Scratch, msg: &[u8]) {
    let first = check.check_in(scratch, msg, true);
    if let Err(f) = &first {
        assert!(f.reason().len() <= crate::validate::MAX_REASON);
    }
    assert_eq!(first, check.check_in(scratch, msg, true));
    assert_eq!(first, check.check_in(&mut Scratch::default(), msg, true));
}

fn well_formed(doc: &Doc) {
    let n = doc.tokens.len() as u32;
    assert!(n > 0 && doc.tokens[0].next == n, "the root spans the tape");
    let mut buf = String::new();
    for (i, t) in doc.tokens.iter().enumerate() {
        let i = i as u32;
        assert!(t.start <= t.end && t.end as usize <= doc.src.len());
        assert!(t.next > i && t.next <= n);
        match t.kind {
            Kind::Array | Kind::Object => {
                let kids: Vec<(u32, u32)> = doc.children(i).collect();
                assert_eq!(kids.len() as u32, t.len);
                let end = kids.last().map_or(i + 1, |&(_, v)| doc.token(v).next);
                assert_eq!(end, t.next);
                if t.kind == Kind::Object {
                    for (k, _) in kids {
                        assert_eq!(doc.token(k).kind, Kind::String);
                    }
                }
            }
            Kind::String => {
                let _ = doc.text(i, &mut buf);
                if !t.escaped {
                    assert!(!doc.raw(i).contains('\\'));
                }
            }
            _ => assert_eq!(t.next, i + 1),
        }
    }
}
