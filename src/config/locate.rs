//! Maps a field path to a line and column in YAML text.
//!
//! `serde_yaml::Value` keeps no positions, so diagnostics find them here by scanning the text:
//! block mappings and sequences by indentation, flow collections (`{a: 1}`, `[x, y]`) by
//! brackets. When a segment cannot be found the answer is the nearest ancestor that was found,
//! so a message always points somewhere near the cause.

use std::fmt::Write as _;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Idx(usize),
}

/// The dotted form of a path: `plans.gold.assembly-count-limits.conns[0].value`.
pub fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Idx(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Where a node's content starts.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// Block content at (line index, byte column).
    Block(usize, usize),
    /// A flow collection starting at this byte offset (`{` or `[`).
    Flow(usize),
    /// A scalar: nothing below it can be found.
    Leaf,
}

struct Text<'a> {
    s: &'a str,
    /// Byte range of each line, without the line break.
    lines: Vec<(usize, usize)>,
}

/// 1-based line and column of the value (or of its key, for block values) at `path`.
pub fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    let t = Text::new(text);
    let Some(root_line) = t.first_content() else {
        return (1, 1);
    };
    let indent = t.indent(root_line);
    let mut node = t.node_at(root_line, indent);
    let mut at = t.offset(root_line, indent);
    for seg in path {
        match t.child(node, seg) {
            Some((child, report)) => {
                node = child;
                at = report;
            }
            None => break,
        }
    }
    t.line_col(at)
}

impl<'a> Text<'a> {
    fn new(s: &'a str) -> Text<'a> {
        let mut lines = Vec::new();
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            if b == b'\n' {
                let end = if i > start && s.as_bytes()[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                lines.push((start, end));
                start = i + 1;
            }
        }
        if start < s.len() {
            lines.push((start, s.len()));
        }
        Text { s, lines }
    }

    fn line(&self, i: usize) -> &'a str {
        let (a, b) = self.lines[i];
        &self.s[a..b]
    }

    fn offset(&self, line: usize, col: usize) -> usize {
        self.lines.get(line).map_or(self.s.len(), |(a, _)| a + col)
    }

    fn indent(&self, i: usize) -> usize {
        self.line(i).bytes().take_while(|&b| b == b' ').count()
    }

    fn is_content(&self, i: usize) -> bool {
        let l = self.line(i).trim_start();
        !(l.is_empty() || l.starts_with('#'))
    }

    fn first_content(&self) -> Option<usize> {
        (0..self.lines.len()).find(|&i| {
            let l = self.line(i).trim();
            self.is_content(i) && l != "---" && !l.starts_with('%')
        })
    }

    fn next_content(&self, after: usize) -> Option<usize> {
        (after + 1..self.lines.len()).find(|&i| self.is_content(i))
    }

    fn line_col(&self, off: usize) -> (usize, usize) {
        let idx = match self.lines.binary_search_by(|(a, _)| a.cmp(&off)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let Some(&(a, b)) = self.lines.get(idx) else {
            return (1, 1);
        };
        let upto = off.clamp(a, b);
        let col = self.s.get(a..upto).map_or(0, |t| t.chars().count());
        (idx + 1, col + 1)
    }

    fn node_at(&self, line: usize, col: usize) -> Node {
        match self.line(line)[col..].bytes().next() {
            Some(b'{') | Some(b'[') => Node::Flow(self.offset(line, col)),
            _ => Node::Block(line, col),
        }
    }

    /// The child node and the offset to report for it.
    fn child(&self, node: Node, seg: &Seg) -> Option<(Node, usize)> {
        match node {
            Node::Leaf => None,
            Node::Flow(off) => flow_child(self.s, off, seg),
            Node::Block(line, col) => match seg {
                Seg::Key(k) => self.block_key(line, col, k),
                Seg::Idx(n) => self.block_item(line, col, *n),
            },
        }
    }

    /// Lines at exactly `col` that belong to the block starting at (line, col).
    fn siblings(&self, line: usize, col: usize) -> impl Iterator<Item = usize> + '_ {
        let mut done = false;
        (line..self.lines.len()).filter(move |&i| {
            if done || !self.is_content(i) {
                return false;
            }
            if i == line {
                return true;
            }
            let ind = self.indent(i);
            if ind < col {
                done = true;
            }
            ind == col
        })
    }

    fn block_key(&self, line: usize, col: usize, key: &str) -> Option<(Node, usize)> {
        for i in self.siblings(line, col) {
            let text = &self.line(i)[col..];
            let Some((k, vcol)) = block_key_at(text) else {
                if i != line && !is_item(text) {
                    // Something at this indent that is neither a key nor an item ends the map.
                    return None;
                }
                continue;
            };
            if k != key {
                continue;
            }
            return Some(self.value_after_key(i, col, col + vcol));
        }
        None
    }

    /// The value of a key at (line, kcol) whose inline text starts at vcol.
    fn value_after_key(&self, line: usize, kcol: usize, vcol: usize) -> (Node, usize) {
        let text = self.line(line);
        let vcol = vcol + skip_props(&text[vcol.min(text.len())..]);
        let rest = text.get(vcol..).unwrap_or("");
        if !rest.is_empty() && !rest.starts_with('#') {
            let node = match rest.as_bytes()[0] {
                b'{' | b'[' => Node::Flow(self.offset(line, vcol)),
                b'-' if is_item(rest) => Node::Block(line, vcol),
                b'|' | b'>' => Node::Leaf,
                _ if block_key_at(rest).is_some() => Node::Block(line, vcol),
                _ => Node::Leaf,
            };
            return (node, self.offset(line, vcol));
        }
        let key_at = self.offset(line, kcol);
        match self.next_content(line) {
            Some(j) => {
                let ind = self.indent(j);
                if ind > kcol || (ind == kcol && is_item(&self.line(j)[ind..])) {
                    (self.node_at(j, ind), key_at)
                } else {
                    (Node::Leaf, key_at)
                }
            }
            None => (Node::Leaf, key_at),
        }
    }

    fn block_item(&self, line: usize, col: usize, n: usize) -> Option<(Node, usize)> {
        let mut count = 0;
        for i in self.siblings(line, col) {
            let text = &self.line(i)[col..];
            if !is_item(text) {
                return None;
            }
            if count < n {
                count += 1;
                continue;
            }
            let after = &text[1..];
            let spaces = after.bytes().take_while(|&b| b == b' ').count();
            let ccol = col + 1 + spaces;
            let rest = &self.line(i)[ccol..];
            if !rest.is_empty() && !rest.starts_with('#') {
                return Some((self.node_at(i, ccol), self.offset(i, ccol)));
            }
            let dash = self.offset(i, col);
            return match self.next_content(i) {
                Some(j) if self.indent(j) > col => Some((self.node_at(j, self.indent(j)), dash)),
                _ => Some((Node::Leaf, dash)),
            };
        }
        None
    }
}

/// `- ` or a lone `-` starts a sequence item.
fn is_item(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty() && b[0] == b'-' && (b.len() == 1 || b[1] == b' ' || b[1] == b'\t')
}

/// Length of leading anchors and tags (`&a `, `!tag `) before a value.
fn skip_props(text: &str) -> usize {
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if !(rest.starts_with('&') || rest.starts_with('!')) {
            return at;
        }
        let word = rest.find([' ', '\t']).unwrap_or(rest.len());
        let spaces = rest[word..].bytes().take_while(|&b| b == b' ').count();
        at += word + spaces;
    }
}

/// A block key at the start of `text`: its unquoted name and where its value starts.
fn block_key_at(text: &str) -> Option<(String, usize)> {
    let b = text.as_bytes();
    let (key, after) = match b.first()? {
        b'"' | b'\'' => {
            let (k, end) = read_quoted(text, 0)?;
            (k, end)
        }
        b'#' | b'{' | b'[' | b'?' => return None,
        b'-' if is_item(text) => return None,
        _ => {
            let mut i = 0;
            loop {
                let c = text[i..].find(':')? + i;
                let next = b.get(c + 1);
                if next.is_none() || next == Some(&b' ') || next == Some(&b'\t') {
                    break (text[..c].trim_end().to_string(), c);
                }
                i = c + 1;
            }
        }
    };
    let rest = &text[after..];
    let sp = rest
        .bytes()
        .take_while(|&c| c == b' ' || c == b'\t')
        .count();
    let rest = &rest[sp..];
    if !rest.starts_with(':') {
        return None;
    }
    let after_colon = &rest[1..];
    if !(after_colon.is_empty() || after_colon.starts_with([' ', '\t'])) {
        return None;
    }
    let vsp = after_colon
        .bytes()
        .take_while(|&c| c == b' ' || c == b'\t')
        .count();
    Some((key, after + sp + 1 + vsp))
}

/// A quoted scalar starting at `at`: its text and the offset just past the closing quote.
fn read_quoted(s: &str, at: usize) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let q = b[at];
    let mut out = String::new();
    let mut i = at + 1;
    while i < b.len() {
        let c = b[i];
        if c == q {
            if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            return Some((out, i + 1));
        }
        if q == b'"' && c == b'\\' && i + 1 < b.len() {
            // The escaped character may be multi-byte: step over it whole.
            let ch = s[i + 1..].chars().next()?;
            out.push(ch);
            i += 1 + ch.len_utf8();
            continue;
        }
        let ch = s[i..].chars().next()?;
        out.push(ch);
        i += ch.len_utf8();
    }
    None
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Offset of the `,` or closing bracket that ends the flow value starting at `i`.
fn skip_flow_value(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => match read_quoted(s, i) {
                Some((_, end)) => {
                    i = end;
                    continue;
                }
                None => return b.len(),
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return i,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

fn flow_node(s: &str, at: usize) -> Node {
    match s.as_bytes().get(at) {
        Some(b'{') | Some(b'[') => Node::Flow(at),
        _ => Node::Leaf,
    }
}

/// Child `seg` of the flow collection at `off`.
fn flow_child(s: &str, off: usize, seg: &Seg) -> Option<(Node, usize)> {
    let b = s.as_bytes();
    let open = *b.get(off)?;
    let mut i = off + 1;
    let mut idx = 0;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' | b']' => return None,
            _ => {}
        }
        let start = i;
        if open == b'{' {
            let (key, after) = if matches!(b[i], b'"' | b'\'') {
                read_quoted(s, i)?
            } else {
                let mut j = i;
                while j < b.len() {
                    let c = b[j];
                    if c == b',' || c == b'}' {
                        break;
                    }
                    if c == b':'
                        && matches!(
                            b.get(j + 1),
                            None | Some(b' ' | b'\t' | b'\n' | b',' | b'}')
                        )
                    {
                        break;
                    }
                    j += 1;
                }
                (s[i..j].trim_end().to_string(), j)
            };
            let mut j = skip_ws(b, after);
            let has_value = b.get(j) == Some(&b':');
            if has_value {
                j = skip_ws(b, j + 1);
            }
            if Seg::Key(key) == *seg {
                let at_value = has_value && !matches!(b.get(j), Some(b',' | b'}'));
                let report = if at_value { j } else { start };
                let node = if at_value {
                    flow_node(s, j)
                } else {
                    Node::Leaf
                };
                return Some((node, report));
            }
            i = skip_flow_value(s, j);
        } else {
            if Seg::Idx(idx) == *seg {
                return Some((flow_node(s, start), start));
            }
            idx += 1;
            i = skip_flow_value(s, i);
        }
        match b.get(i)? {
            b',' => i += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> Vec<Seg> {
        // "a.b[2].c" → segments (keys must not contain dots here).
        let mut out = Vec::new();
        for part in spec.split('.') {
            let mut rest = part;
            if let Some(i) = rest.find('[') {
                if i > 0 {
                    out.push(Seg::Key(rest[..i].to_string()));
                }
                rest = &rest[i..];
                while let Some(end) = rest.find(']') {
                    out.push(Seg::Idx(rest[1..end].parse().unwrap()));
                    rest = &rest[end + 1..];
                }
            } else {
                out.push(Seg::Key(rest.to_string()));
            }
        }
        out
    }

    const DOC: &str = "\
# a comment
top: 1
plans:
  gold:
    title: Gold

    assembly-count-limits:
      conns:
        - hard-limit: true
          value: 2
        - value: 'x'
    apis: {a: {}, 'b c': [1, 2, {k: v}]}
list:
- one
- two: 2
  three: 3
-
  four: 4
\"quoted key\": yes
nested:
  - - a
    - b
";

    #[test]
    fn block_paths() {
        assert_eq!(locate(DOC, &p("top")), (2, 6));
        assert_eq!(locate(DOC, &p("plans")), (3, 1));
        assert_eq!(locate(DOC, &p("plans.gold.title")), (5, 12));
        assert_eq!(
            locate(DOC, &p("plans.gold.assembly-count-limits.conns[0].value")),
            (10, 18)
        );
        assert_eq!(
            locate(
                DOC,
                &p("plans.gold.assembly-count-limits.conns[0].hard-limit")
            ),
            (9, 23)
        );
        assert_eq!(
            locate(DOC, &p("plans.gold.assembly-count-limits.conns[1].value")),
            (11, 18)
        );
        assert_eq!(
            locate(DOC, &p("plans.gold.assembly-count-limits.conns[1]")),
            (11, 11)
        );
    }

    #[test]
    fn same_indent_sequences_and_empty_items() {
        assert_eq!(locate(DOC, &p("list[0]")), (14, 3));
        assert_eq!(locate(DOC, &p("list[1].three")), (16, 10));
        assert_eq!(locate(DOC, &p("list[2].four")), (18, 9));
        assert_eq!(locate(DOC, &p("quoted key")), (19, 15));
        assert_eq!(locate(DOC, &p("nested[0][1]")), (22, 7));
    }

    #[test]
    fn flow_collections() {
        assert_eq!(locate(DOC, &p("plans.gold.apis.a")), (12, 15));
        assert_eq!(
            locate(
                DOC,
                &[
                    Seg::Key("plans".into()),
                    Seg::Key("gold".into()),
                    Seg::Key("apis".into()),
                    Seg::Key("b c".into()),
                    Seg::Idx(2),
                    Seg::Key("k".into()),
                ]
            ),
            (12, 37)
        );
        let multi = "tls: {certificates: [\n  {cert: a.pem, key: b.key},\n  {cert: c.pem}]}\n";
        assert_eq!(locate(multi, &p("tls.certificates[1].cert")), (3, 10));
        assert_eq!(locate(multi, &p("tls.certificates[0].key")), (2, 22));
    }

    #[test]
    fn falls_back_to_nearest_ancestor() {
        assert_eq!(locate(DOC, &p("plans.gold.missing.deeper")), (4, 3));
        assert_eq!(
            locate(DOC, &p("plans.gold.assembly-count-limits.conns[7]")),
            (8, 7)
        );
        assert_eq!(locate(DOC, &p("nope")), (2, 1));
        assert_eq!(locate("", &p("a.b")), (1, 1));
        // A key path into a scalar stops at the scalar.
        assert_eq!(locate(DOC, &p("top.x")), (2, 6));
    }

    #[test]
    fn keys_with_colons_comments_and_documents() {
        let t = "---\n# c\nurl: http://x:80/a  # note\nmap:   # c\n  k: v\n";
        assert_eq!(locate(t, &p("url")), (3, 6));
        assert_eq!(locate(t, &p("map.k")), (5, 6));
        // Nested map after a lower-indented sibling ends the search.
        let t2 = "a:\n  b: 1\nc:\n  b: 2\n";
        assert_eq!(locate(t2, &p("c.b")), (4, 6));
        assert_eq!(locate(t2, &p("a.c")), (1, 1));
    }

    #[test]
    fn never_panics_on_truncated_or_odd_text() {
        let odd = "k: \"a\\é\"\n\"q\\é\": {x: [1, 'it''s', \"\\\"\"]}\n- - é: ü\n  ? complex\n";
        let paths = [
            p("plans.gold.assembly-count-limits.conns[1].value"),
            p("plans.gold.apis.a"),
            p("list[2].four"),
            p("nested[0][1]"),
            vec![Seg::Key("qé".into()), Seg::Key("x".into()), Seg::Idx(2)],
            vec![Seg::Idx(0), Seg::Idx(0), Seg::Key("é".into())],
        ];
        for text in [DOC, odd] {
            for (i, _) in text.char_indices() {
                for path in &paths {
                    let (line, col) = locate(&text[..i], path);
                    assert!(line >= 1 && col >= 1);
                }
            }
        }
    }

    #[test]
    fn json_documents() {
        let json = "{\n  \"info\": {\"x-ibm-name\": \"a\"},\n  \"paths\": {\n    \"/\": {\n      \"get\": {}\n    }\n  },\n  \"schemes\": [\"https\", \"wss\"]\n}\n";
        assert_eq!(locate(json, &p("info.x-ibm-name")), (2, 26));
        assert_eq!(
            locate(
                json,
                &[
                    Seg::Key("paths".into()),
                    Seg::Key("/".into()),
                    Seg::Key("get".into())
                ]
            ),
            (5, 14)
        );
        assert_eq!(locate(json, &p("schemes[1]")), (8, 24));
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted(&p("a.b[0].c")), "a.b[0].c");
        assert_eq!(dotted(&[Seg::Idx(3)]), "[3]");
    }
}
