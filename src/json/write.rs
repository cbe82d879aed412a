//! Writing JSON text: the one string escaper behind every JSON answer, record and page the
//! gateway writes (and the string literals it puts into switch conditions, whose escapes are
//! JSON's).

/// Where JSON text goes: a `String` or a byte buffer.
pub trait Out {
    fn put(&mut self, s: &str);
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// `\u00XX` for each control character; the short forms replace some below.
const CONTROL: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

/// The escape of one character inside a JSON string (RFC 8259 §7), when it needs one: the
/// quote, the backslash and the control characters; DEL too, so that no terminal a record is
/// shown on takes it as a command.
fn escape(c: char) -> Option<&'static str> {
    match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '\u{7f}' => Some("\\u007f"),
        c => CONTROL.get(c as usize).copied(),
    }
}

/// Writes `s` as the inside of a JSON string, without the quotes. Runs that need no escape are
/// written whole.
pub fn escaped(out: &mut impl Out, s: &str) {
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        if let Some(e) = escape(c) {
            out.put(&s[plain..i]);
            out.put(e);
            plain = i + c.len_utf8();
        }
    }
    out.put(&s[plain..]);
}

/// Writes `s` as a JSON string, quotes included.
pub fn string(out: &mut impl Out, s: &str) {
    out.put("\"");
    escaped(out, s);
    out.put("\"");
}

/// `s` as a JSON string, quotes included.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    string(&mut out, s);
    out
}

/// How many bytes [`escaped`] writes for `s`.
pub fn escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| escape(c).map_or(c.len_utf8(), str::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_needs_and_nothing_else() {
        let s = "quote \" back \\ nl \n cr \r tab \t bs \u{8} ff \u{c} bell \u{7} del \u{7f} é ☃ /";
        let want = "\"quote \\\" back \\\\ nl \\n cr \\r tab \\t bs \\b ff \\f bell \\u0007 del \\u007f é ☃ /\"";
        assert_eq!(quoted(s), want);
        let mut bytes = Vec::new();
        string(&mut bytes, s);
        assert_eq!(bytes, want.as_bytes());
        assert_eq!(escaped_len(s), want.len() - 2);
        assert_eq!(quoted(""), "\"\"");
    }

    /// Every character below 0x20 comes out as an escape that a JSON reader turns back into it.
    #[test]
    fn every_control_character_round_trips() {
        for b in 0u8..0x20 {
            let c = char::from(b);
            let q = quoted(&c.to_string());
            let back: String = serde_yaml::from_str(&q).expect("JSON is YAML");
            assert_eq!(back, c.to_string(), "{q}");
        }
    }
}
