use super::*;
use crate::json::parse::Limits;

fn parse_only() -> MessageCheck {
    MessageCheck {
        limits: Limits::DEFAULT,
        schema: None,
        definition: String::new(),
    }
}

#[test]
fn parse_takes_well_formed_text_only() {
    let p = parse_only();
    assert_eq!(p.check(b"{\"a\":[1,2]}", true), Ok(()));
    let binary = p.check(b"{}", false).unwrap_err();
    assert_eq!(binary.reason(), "parse: binary");
    let bad = p.check(b"{\"a\":}", true).unwrap_err();
    assert_eq!(bad.at, Location::Byte(5));
    assert_eq!(bad.reason(), "parse: syntax at byte 5");
    let deep = p.check("[".repeat(600).as_bytes(), true).unwrap_err();
    assert_eq!(deep.keyword, "nesting-depth");
}

#[test]
fn pointers_escape_names_and_count_items() {
    let mut tape = crate::json::parse::Tape::new();
    let src = br#"{"a/b":[0,{"m~n":{"x":1}}],"c":2}"#;
    let doc = tape.parse(src, &Limits::DEFAULT).unwrap();
    let pointers: Vec<String> = (0..doc.tokens.len() as u32)
        .map(|i| pointer(&doc, i))
        .collect();
    assert_eq!(pointers[0], "");
    // The value of "x": /a~1b/1/m~0n/x.
    let x = doc.tokens.len() as u32 - 3;
    assert_eq!(pointers[x as usize], "/a~1b/1/m~0n/x");
    assert_eq!(pointers[doc.tokens.len() - 1], "/c");
}

#[test]
fn reasons_fit_a_close_frame() {
    let long = Failure {
        policy: "validate",
        keyword: "additionalProperties",
        at: Location::Pointer(format!("/{}", "é".repeat(200))),
    };
    let r = long.reason();
    assert!(r.len() <= MAX_REASON, "{} bytes", r.len());
    assert!(r.starts_with("validate: additionalProperties at /é"));
    assert!(r.ends_with("..."));
    let root = Failure {
        policy: "validate",
        keyword: "type",
        at: Location::Pointer(String::new()),
    };
    assert_eq!(root.reason(), "validate: type at (root)");
}
