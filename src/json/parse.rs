//! A JSON parser (RFC 8259) over a byte slice that holds one whole message.
//!
//! Parsing writes a tape: one [`Token`] per value and per member name, in document order. A
//! container is followed by its children and knows where its subtree ends ([`Token::next`]), so
//! a reader can walk, skip or count children without parsing anything again. Strings and
//! numbers are not converted: a token holds the byte range of its text, and readers decode only
//! what they look at ([`text`], [`Doc::text`]).
//!
//! Hostile input costs bounded work. Nesting lives on an explicit stack, never on the call
//! stack, and every bound of DataPower's default parse settings is checked as the bytes are
//! read: document size, nesting depth, width (children of one container), name, string and
//! number length. A member name that appears twice in one object is refused too: readers
//! disagree on which of the two counts, and a check that reads one while the backend reads the
//! other checks nothing. The tape, the stack and the duplicate check's table are kept by the
//! caller's [`Tape`], so once they have grown to the size of the messages seen, parsing
//! allocates nothing.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bounds on one document, named as DataPower's parse settings name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the whole document.
    pub document_size: u64,
    /// Containers open at once.
    pub nesting_depth: u32,
    /// Items of one array, or members of one object.
    pub width: u32,
    /// Bytes of a member name as written, without its quotes.
    pub name_length: u32,
    /// Bytes of a string value as written, without its quotes.
    pub value_length: u32,
    /// Bytes of a number.
    pub number_length: u32,
}

impl Limits {
    /// DataPower's defaults (the ParseSettings object's own defaults).
    pub const DEFAULT: Limits = Limits {
        document_size: 4_194_304,
        nesting_depth: 512,
        width: 4096,
        name_length: 256,
        value_length: 8192,
        number_length: 128,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    False,
    True,
    Number,
    String,
    Array,
    Object,
}

/// One value, or one member name, of a parsed document.
///
/// An object's children are its members in order, each a name (a [`Kind::String`] token)
/// followed by its value; an array's children are its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// A string whose text holds a backslash escape, so its bytes are not its value.
    pub escaped: bool,
    /// A number written without a fraction or an exponent (draft 4's integer).
    pub integer: bool,
    /// Byte range of the token: a string's between its quotes, a container's from its opening
    /// to after its closing bracket.
    pub start: u32,
    pub end: u32,
    /// Items of an array, members of an object; 0 otherwise.
    pub len: u32,
    /// Index of the first token after this one's subtree.
    pub next: u32,
}

/// What made a document unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Syntax,
    /// Not UTF-8, or a `\u` escape of half a surrogate pair.
    Unicode,
    DocumentSize,
    NestingDepth,
    Width,
    NameLength,
    ValueLength,
    NumberLength,
    DuplicateName,
}

impl Fault {
    /// The name a close reason uses.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Syntax => "syntax",
            Fault::Unicode => "unicode",
            Fault::DocumentSize => "document-size",
            Fault::NestingDepth => "nesting-depth",
            Fault::Width => "width",
            Fault::NameLength => "name-length",
            Fault::ValueLength => "value-length",
            Fault::NumberLength => "number-length",
            Fault::DuplicateName => "duplicate-name",
        }
    }
}

/// A refused document: the fault and the byte offset where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub at: usize,
    pub fault: Fault,
}

/// A parsed document: the source text and its tape. Token 0 is the root value.
#[derive(Clone, Copy, Debug)]
pub struct Doc<'a> {
    pub src: &'a str,
    pub tokens: &'a [Token],
}

impl<'a> Doc<'a> {
    pub fn token(&self, i: u32) -> Token {
        self.tokens[i as usize]
    }

    /// The raw text of token `i`: a string's between its quotes, a number as written.
    pub fn raw(&self, i: u32) -> &'a str {
        let t = self.token(i);
        self.src.get(t.start as usize..t.end as usize).unwrap_or("")
    }

    /// The value of string token `i`: borrowed when it holds no escape, else decoded into `buf`.
    pub fn text<'b>(&self, i: u32, buf: &'b mut String) -> &'b str
    where
        'a: 'b,
    {
        let t = self.token(i);
        text(self.raw(i), t.escaped, buf)
    }

    /// The children of container `i`: for an object, (name, value) token pairs; for an array,
    /// (value, value) with the item twice.
    pub fn children(&self, i: u32) -> Children<'a> {
        let t = self.token(i);
        Children {
            tokens: self.tokens,
            at: i + 1,
            end: t.next,
            object: t.kind == Kind::Object,
        }
    }
}

pub struct Children<'a> {
    tokens: &'a [Token],
    at: u32,
    end: u32,
    object: bool,
}

impl Iterator for Children<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        if self.at >= self.end {
            return None;
        }
        let first = self.at;
        let value = if self.object { first + 1 } else { first };
        self.at = self.tokens.get(value as usize)?.next;
        Some((first, value))
    }
}

/// The value of a string's text: `raw` itself without escapes, else decoded into `buf`. The
/// text must come from a successful parse; anything else decodes to what can be read of it.
pub fn text<'b>(raw: &'b str, escaped: bool, buf: &'b mut String) -> &'b str {
    if !escaped {
        return raw;
    }
    buf.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        buf.push_str(raw.get(run..i).unwrap_or(""));
        let Some(&e) = b.get(i + 1) else { break };
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let hi = hex4(b, i).unwrap_or(0xfffd);
                i += 4;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    let lo = hex4(b, i + 2).unwrap_or(0);
                    i += 6;
                    0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                } else {
                    hi
                };
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
        };
        buf.push(c);
        run = i;
    }
    buf.push_str(raw.get(run.min(raw.len())..).unwrap_or(""));
    buf
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// The parser's reusable memory. One per thread of parsing; each [`Tape::parse`] overwrites
/// the last document.
pub struct Tape {
    tokens: Vec<Token>,
    /// Containers open at the current position.
    stack: Vec<u32>,
    /// (hash, token) of one object's member names, for the duplicate check.
    names: Vec<(u64, u32)>,
    buf: String,
    other: String,
    /// Keyed at random per tape, so no one can choose names that collide.
    hasher: RandomState,
}

impl Default for Tape {
    fn default() -> Tape {
        Tape::new()
    }
}

impl Tape {
    pub fn new() -> Tape {
        Tape {
            tokens: Vec::new(),
            stack: Vec::new(),
            names: Vec::new(),
            buf: String::new(),
            other: String::new(),
            hasher: RandomState::new(),
        }
    }

    /// Parses `src` as one JSON text within `limits`.
    pub fn parse<'a>(&'a mut self, src: &'a [u8], limits: &Limits) -> Result<Doc<'a>, Error> {
        self.tokens.clear();
        self.stack.clear();
        let max = limits.document_size.min(u64::from(u32::MAX));
        if src.len() as u64 > max {
            return Err(Error {
                at: max as usize,
                fault: Fault::DocumentSize,
            });
        }
        let text = std::str::from_utf8(src).map_err(|e| Error {
            at: e.valid_up_to(),
            fault: Fault::Unicode,
        })?;
        self.run(text, limits)?;
        Ok(Doc {
            src: text,
            tokens: &self.tokens,
        })
    }

    fn run(&mut self, text: &str, limits: &Limits) -> Result<(), Error> {
        let b = text.as_bytes();
        let err = |at: usize, fault: Fault| Err(Error { at, fault });
        let mut pos = ws(b, 0);
        loop {
            // A value starts at `pos`.
            let Some(&c) = b.get(pos) else {
                return err(pos, Fault::Syntax);
            };
            let index = self.tokens.len() as u32;
            let mut token = Token {
                kind: Kind::Null,
                escaped: false,
                integer: false,
                start: pos as u32,
                end: 0,
                len: 0,
                next: index + 1,
            };
            match c {
                b'{' | b'[' => {
                    if self.stack.len() as u32 >= limits.nesting_depth {
                        return err(pos, Fault::NestingDepth);
                    }
                    token.kind = if c == b'{' { Kind::Object } else { Kind::Array };
                    self.tokens.push(token);
                    self.stack.push(index);
                    pos = ws(b, pos + 1);
                    let close = if c == b'{' { b'}' } else { b']' };
                    if b.get(pos) != Some(&close) {
                        if c == b'{' {
                            pos = self.member_name(b, pos, limits)?;
                        } else {
                            self.count_child(pos, limits)?;
                        }
                        continue;
                    }
                    // An empty container closes below.
                }
                b'"' => {
                    let (end, escaped) = string(b, pos + 1)?;
                    if (end - pos - 1) as u64 > u64::from(limits.value_length) {
                        return err(pos, Fault::ValueLength);
                    }
                    token.kind = Kind::String;
                    token.escaped = escaped;
                    token.start = pos as u32 + 1;
                    token.end = end as u32;
                    self.tokens.push(token);
                    pos = end + 1;
                }
                b'-' | b'0'..=b'9' => {
                    let (end, integer) = number(b, pos)?;
                    if (end - pos) as u64 > u64::from(limits.number_length) {
                        return err(pos, Fault::NumberLength);
                    }
                    token.kind = Kind::Number;
                    token.integer = integer;
                    token.end = end as u32;
                    self.tokens.push(token);
                    pos = end;
                }
                _ => {
                    let (word, kind): (&[u8], Kind) = match c {
                        b't' => (b"true", Kind::True),
                        b'f' => (b"false", Kind::False),
                        b'n' => (b"null", Kind::Null),
                        _ => return err(pos, Fault::Syntax),
                    };
                    if !b[pos..].starts_with(word) {
                        return err(pos, Fault::Syntax);
                    }
                    token.kind = kind;
                    token.end = (pos + word.len()) as u32;
                    self.tokens.push(token);
                    pos += word.len();
                }
            }
            // After a value: close what ends here, then find where the next value starts.
            loop {
                pos = ws(b, pos);
                let Some(&top) = self.stack.last() else {
                    return if pos == b.len() {
                        Ok(())
                    } else {
                        err(pos, Fault::Syntax)
                    };
                };
                let object = self.tokens[top as usize].kind == Kind::Object;
                let close = if object { b'}' } else { b']' };
                match b.get(pos) {
                    Some(&c) if c == close => {
                        let next = self.tokens.len() as u32;
                        let t = &mut self.tokens[top as usize];
                        t.end = pos as u32 + 1;
                        t.next = next;
                        self.stack.pop();
                        if object {
                            self.unique_names(text, top)?;
                        }
                        pos += 1;
                    }
                    Some(b',') => {
                        pos = ws(b, pos + 1);
                        if object {
                            pos = self.member_name(b, pos, limits)?;
                        } else {
                            self.count_child(pos, limits)?;
                        }
                        break;
                    }
                    _ => return err(pos, Fault::Syntax),
                }
            }
        }
    }

    /// Counts one more child of the innermost container, at `pos`.
    fn count_child(&mut self, pos: usize, limits: &Limits) -> Result<(), Error> {
        let Some(&top) = self.stack.last() else {
            return Ok(());
        };
        let t = &mut self.tokens[top as usize];
        if t.len >= limits.width {
            return Err(Error {
                at: pos,
                fault: Fault::Width,
            });
        }
        t.len += 1;
        Ok(())
    }

    /// Reads a member name and its colon at `pos`; returns where the value starts.
    fn member_name(&mut self, b: &[u8], pos: usize, limits: &Limits) -> Result<usize, Error> {
        self.count_child(pos, limits)?;
        if b.get(pos) != Some(&b'"') {
            return Err(Error {
                at: pos,
                fault: Fault::Syntax,
            });
        }
        let (end, escaped) = string(b, pos + 1)?;
        if (end - pos - 1) as u64 > u64::from(limits.name_length) {
            return Err(Error {
                at: pos,
                fault: Fault::NameLength,
            });
        }
        let index = self.tokens.len() as u32;
        self.tokens.push(Token {
            kind: Kind::String,
            escaped,
            integer: false,
            start: pos as u32 + 1,
            end: end as u32,
            len: 0,
            next: index + 1,
        });
        let after = ws(b, end + 1);
        if b.get(after) != Some(&b':') {
            return Err(Error {
                at: after,
                fault: Fault::Syntax,
            });
        }
        Ok(ws(b, after + 1))
    }

    /// Refuses an object, just closed, that names a member twice. Names are compared by value
    /// (`"a"` and `"\u0061"` are one name). A wide object's names are hashed and sorted, so it
    /// costs n log n and only names with equal hashes are compared.
    fn unique_names(&mut self, text: &str, obj: u32) -> Result<(), Error> {
        let o = self.tokens[obj as usize];
        if o.len < 2 {
            return Ok(());
        }
        let Tape {
            tokens,
            names,
            buf,
            other,
            hasher,
            ..
        } = self;
        let dup = |at: u32| Error {
            at: tokens[at as usize].start as usize,
            fault: Fault::DuplicateName,
        };
        names.clear();
        let mut i = obj + 1;
        while i < o.next {
            names.push((0, i));
            i = tokens[(i + 1) as usize].next;
        }
        if names.len() <= 8 {
            for x in 0..names.len() {
                for y in x + 1..names.len() {
                    if same_name(text, tokens, names[x].1, names[y].1, buf, other) {
                        return Err(dup(names[y].1));
                    }
                }
            }
            return Ok(());
        }
        for entry in names.iter_mut() {
            let (raw, escaped) = raw_text(text, tokens, entry.1);
            entry.0 = hasher.hash_one(self::text(raw, escaped, buf));
        }
        names.sort_unstable();
        for x in 0..names.len() {
            let mut y = x + 1;
            while y < names.len() && names[y].0 == names[x].0 {
                if same_name(text, tokens, names[x].1, names[y].1, buf, other) {
                    return Err(dup(names[x].1.max(names[y].1)));
                }
                y += 1;
            }
        }
        Ok(())
    }
}

fn raw_text<'t>(text: &'t str, tokens: &[Token], i: u32) -> (&'t str, bool) {
    let t = tokens[i as usize];
    let raw = text.get(t.start as usize..t.end as usize).unwrap_or("");
    (raw, t.escaped)
}

/// Whether string tokens `a` and `b` hold the same value.
fn same_name(
    text: &str,
    tokens: &[Token],
    a: u32,
    b: u32,
    buf: &mut String,
    other: &mut String,
) -> bool {
    let ((ra, ea), (rb, eb)) = (raw_text(text, tokens, a), raw_text(text, tokens, b));
    if !ea && !eb {
        return ra == rb;
    }
    self::text(ra, ea, buf) == self::text(rb, eb, other)
}

/// Skips JSON whitespace from `pos`.
fn ws(b: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(pos) {
        pos += 1;
    }
    pos
}

/// Scans a string's text from `pos` (after its opening quote); returns the offset of the
/// closing quote and whether the text holds an escape.
fn string(b: &[u8], mut pos: usize) -> Result<(usize, bool), Error> {
    let fail = |at: usize, fault: Fault| Err(Error { at, fault });
    let mut escaped = false;
    loop {
        let Some(&c) = b.get(pos) else {
            return fail(pos, Fault::Syntax);
        };
        match c {
            b'"' => return Ok((pos, escaped)),
            b'\\' => {
                escaped = true;
                match b.get(pos + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                    Some(b'u') => {
                        let Some(code) = hex4(b, pos + 2) else {
                            return fail(pos, Fault::Syntax);
                        };
                        match code {
                            0xd800..=0xdbff => {
                                let low = match (b.get(pos + 6..pos + 8), hex4(b, pos + 8)) {
                                    (Some(b"\\u"), Some(low)) => low,
                                    _ => return fail(pos, Fault::Unicode),
                                };
                                if !(0xdc00..=0xdfff).contains(&low) {
                                    return fail(pos, Fault::Unicode);
                                }
                                pos += 12;
                            }
                            0xdc00..=0xdfff => return fail(pos, Fault::Unicode),
                            _ => pos += 6,
                        }
                    }
                    _ => return fail(pos, Fault::Syntax),
                }
            }
            0..=0x1f => return fail(pos, Fault::Syntax),
            _ => pos += 1,
        }
    }
}

/// Scans a number at `pos`; returns its end and whether it is written as an integer.
fn number(b: &[u8], start: usize) -> Result<(usize, bool), Error> {
    let fail = |at: usize| {
        Err(Error {
            at,
            fault: Fault::Syntax,
        })
    };
    let digits = |mut p: usize| {
        while b.get(p).is_some_and(u8::is_ascii_digit) {
            p += 1;
        }
        p
    };
    let mut pos = start;
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match b.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = digits(pos),
        _ => return fail(pos),
    }
    let mut integer = true;
    if b.get(pos) == Some(&b'.') {
        integer = false;
        let end = digits(pos + 1);
        if end == pos + 1 {
            return fail(end);
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = b.get(pos) {
        integer = false;
        pos += 1;
        if let Some(b'+' | b'-') = b.get(pos) {
            pos += 1;
        }
        let end = digits(pos);
        if end == pos {
            return fail(end);
        }
        pos = end;
    }
    Ok((pos, integer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Vec<Token>, Error> {
        let mut tape = Tape::new();
        tape.parse(src.as_bytes(), &Limits::DEFAULT)
            .map(|d| d.tokens.to_vec())
    }

    fn fault(src: &str, limits: &Limits) -> Option<Fault> {
        let mut tape = Tape::new();
        tape.parse(src.as_bytes(), limits).err().map(|e| e.fault)
    }

    #[test]
    fn accepts_rfc_8259_texts() {
        for ok in [
            "0",
            "-0",
            "-1.5e+10",
            "1E-2",
            "\"\"",
            "\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"",
            " true ",
            "false",
            "null",
            "[]",
            "{}",
            "[1,[2,[3]],{\"a\":{}}]",
            "{\"a\" : 1 , \"b\":[true,false,null]}",
            "\t\r\n[\n]\n",
            "\"é ✓ 😀\"",
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}: {:?}", parse(ok));
        }
    }

    #[test]
    fn refuses_what_rfc_8259_does_not_allow() {
        for bad in [
            "",
            " ",
            "01",
            "1.",
            ".1",
            "+1",
            "1e",
            "-",
            "0x1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "{'a':1}",
            "[1 2]",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a",
            "[",
            "{",
            "]",
            "1 2",
            "\"\u{1}\"",
            "[1]]",
            "{\"a\":1}}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let mut tape = Tape::new();
        let e = tape.parse(b"[\"\xff\"]", &Limits::DEFAULT).unwrap_err();
        assert_eq!((e.fault, e.at), (Fault::Unicode, 2));
    }

    #[test]
    fn the_tape_links_containers_and_children() {
        let src = "{\"a\":[1,{\"b\":null}],\"c\":\"x\\ny\"}";
        let mut tape = Tape::new();
        let doc = tape.parse(src.as_bytes(), &Limits::DEFAULT).unwrap();
        let kinds: Vec<Kind> = doc.tokens.iter().map(|t| t.kind).collect();
        let (o, s, a, n) = (Kind::Object, Kind::String, Kind::Array, Kind::Number);
        assert_eq!(kinds, [o, s, a, n, o, s, Kind::Null, s, s]);
        assert_eq!(doc.token(0).len, 2);
        assert_eq!(doc.token(0).next, 9);
        assert_eq!(doc.token(2).len, 2);
        assert_eq!(doc.token(2).next, 7);
        let members: Vec<(u32, u32)> = doc.children(0).collect();
        assert_eq!(members, [(1, 2), (7, 8)]);
        let items: Vec<(u32, u32)> = doc.children(2).collect();
        assert_eq!(items, [(3, 3), (4, 4)]);
        let mut buf = String::new();
        assert_eq!(doc.text(8, &mut buf), "x\ny");
        assert_eq!(doc.raw(3), "1");
        assert!(doc.token(3).integer);
    }

    #[test]
    fn escapes_decode() {
        let mut buf = String::new();
        assert_eq!(text("a\\u0041\\ud83d\\ude00\\/b", true, &mut buf), "aA😀/b");
        assert_eq!(text("plain", false, &mut buf), "plain");
    }

    #[test]
    fn every_bound_is_enforced_at_its_edge() {
        let l = Limits {
            document_size: 64,
            nesting_depth: 3,
            width: 3,
            name_length: 3,
            value_length: 4,
            number_length: 5,
        };
        let cases: &[(&str, Option<Fault>)] = &[
            ("[[[]]]", None),
            ("[[[[]]]]", Some(Fault::NestingDepth)),
            ("[1,2,3]", None),
            ("[1,2,3,4]", Some(Fault::Width)),
            ("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", Some(Fault::Width)),
            ("{\"abc\":1}", None),
            ("{\"abcd\":1}", Some(Fault::NameLength)),
            ("\"abcd\"", None),
            ("\"abcde\"", Some(Fault::ValueLength)),
            ("-1234", None),
            ("123456", Some(Fault::NumberLength)),
            ("[1]            ", None),
        ];
        for (src, want) in cases {
            assert_eq!(fault(src, &l), *want, "{src}");
        }
        let big = format!("[{}]", " ".repeat(63));
        assert_eq!(fault(&big, &l), Some(Fault::DocumentSize));
    }

    #[test]
    fn deep_nesting_costs_no_call_stack() {
        // Far deeper than any call stack could follow, refused at the bound.
        let deep = "[".repeat(1_000_000);
        assert_eq!(fault(&deep, &Limits::DEFAULT), Some(Fault::NestingDepth));
        let unbounded = Limits {
            nesting_depth: u32::MAX,
            ..Limits::DEFAULT
        };
        let ok = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let mut tape = Tape::new();
        assert!(tape.parse(ok.as_bytes(), &unbounded).is_ok());
    }

    #[test]
    fn a_name_twice_in_one_object_is_refused() {
        let l = Limits::DEFAULT;
        assert_eq!(fault("{\"a\":1,\"a\":2}", &l), Some(Fault::DuplicateName));
        assert_eq!(
            fault("{\"a\":1,\"\\u0061\":2}", &l),
            Some(Fault::DuplicateName)
        );
        assert_eq!(fault("[{\"a\":1},{\"a\":2}]", &l), None);
        assert_eq!(fault("{\"a\":{\"a\":1}}", &l), None);
        // Wide objects take the hashed path.
        let wide: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        assert_eq!(fault(&format!("{{{}}}", wide.join(",")), &l), None);
        let dup = format!("{{{},\"k\\u0037\":0}}", wide.join(","));
        assert_eq!(fault(&dup, &l), Some(Fault::DuplicateName));
    }

    #[test]
    fn a_tape_is_reused() {
        let mut tape = Tape::new();
        assert!(tape.parse(b"[1,2,3,4,5,6,7,8]", &Limits::DEFAULT).is_ok());
        let cap = tape.tokens.capacity();
        let doc = tape.parse(b"{\"x\":true}", &Limits::DEFAULT).unwrap();
        assert_eq!(doc.tokens.len(), 3);
        assert_eq!(tape.tokens.capacity(), cap);
    }
}
