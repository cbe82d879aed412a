//! Header-control and parameter-control patterns (spec §2.2): the subset of PCRE that API
//! Connect YAML uses to select header and query-parameter names.
//!
//! A pattern compiles once into a small instruction list. Matching simulates the automaton over
//! all its states at once (Thompson's construction) instead of backtracking: the time is
//! linear in `name.len() * program length`, so there is no catastrophic case and no step budget
//! that could make a blocklist pattern silently miss. Matching uses fixed arrays on the stack
//! and never allocates.
//!
//! Supported: literals, `.`, `^`, `$`, `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}` (lazy forms too,
//! since without captures they match the same names), classes `[...]` and `[^...]`, the escapes
//! `\d \D \w \W \s \S \t \n \r \f` and escaped punctuation, alternation and groups `(...)` /
//! `(?:...)`. Matching works on bytes: `.` and classes see one byte, which is exact for HTTP
//! header names (ASCII tokens).

use std::fmt;

/// Upper bound on the compiled program; keeps the matcher's stack arrays fixed and small.
const MAX_INSTS: usize = 1024;
/// How deeply groups may nest; parsing and compiling recurse once per level.
const MAX_DEPTH: usize = 64;
/// Largest count in `{m,n}`; larger counts would only exceed `MAX_INSTS` anyway.
const MAX_REPEAT: u32 = 1000;

/// A set of bytes, one bit each.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    fn union(&mut self, other: &ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    fn complement(mut self) -> ByteSet {
        for w in self.0.iter_mut() {
            *w = !*w;
        }
        self
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn digits() -> ByteSet {
        let mut s = ByteSet::EMPTY;
        s.insert_range(b'0', b'9');
        s
    }

    fn word() -> ByteSet {
        let mut s = ByteSet::digits();
        s.insert_range(b'a', b'z');
        s.insert_range(b'A', b'Z');
        s.insert(b'_');
        s
    }

    fn space() -> ByteSet {
        let mut s = ByteSet::EMPTY;
        // PCRE's \s: space, \t, \n, \v, \f, \r.
        for b in [b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r'] {
            s.insert(b);
        }
        s
    }
}

impl fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}{:016x}{:016x}{:016x}",
            self.0[3], self.0[2], self.0[1], self.0[0]
        )
    }
}

#[derive(Debug, Clone)]
enum Inst {
    Byte(u8),
    /// A class; `negated` is kept apart from the set so that case folding applies before the
    /// negation, as in PCRE (`[^a]` must not match `A` case-insensitively).
    Set {
        set: ByteSet,
        negated: bool,
    },
    /// `.`: any byte but `\n` (PCRE without DOTALL).
    Any,
    Bol,
    Eol,
    Split(u16, u16),
    Jmp(u16),
    Match,
}

/// A compiled header/parameter name pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    insts: Vec<Inst>,
    /// The pattern starts with `^`, so only position 0 can start a match.
    anchored: bool,
}

impl Pattern {
    /// Compile a pattern; the error names the unsupported construct and its character offset.
    pub fn compile(source: &str) -> Result<Pattern, String> {
        let mut parser = Parser {
            src: source,
            bytes: source.as_bytes(),
            pos: 0,
            depth: 0,
        };
        let ast = parser.parse_alt()?;
        if parser.pos < parser.bytes.len() {
            // parse_alt stops only at the end or at a ')' it did not open.
            return Err(parser.err("unmatched ')'", parser.pos));
        }
        let mut insts = Vec::new();
        emit(&ast, &mut insts, source)?;
        push(&mut insts, Inst::Match, source)?;
        let anchored = matches!(insts.first(), Some(Inst::Bol));
        Ok(Pattern {
            source: source.to_string(),
            insts,
            anchored,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Unanchored search of `name`, as PCRE does; `case_insensitive` folds ASCII letters.
    pub fn matches(&self, name: &str, case_insensitive: bool) -> bool {
        let text = name.as_bytes();
        let mut cur = StateSet::new();
        let mut next = StateSet::new();
        let mut stack = [0u16; MAX_INSTS];
        for pos in 0..=text.len() {
            if (pos == 0 || !self.anchored) && self.add(&mut cur, &mut stack, 0, text, pos) {
                return true;
            }
            let Some(&b) = text.get(pos) else { break };
            if cur.len == 0 && self.anchored {
                return false;
            }
            next.clear();
            for i in 0..cur.len {
                let pc = usize::from(cur.dense[i]);
                let step = match self.insts.get(pc) {
                    Some(Inst::Byte(c)) => {
                        *c == b || (case_insensitive && c.eq_ignore_ascii_case(&b))
                    }
                    Some(Inst::Set { set, negated }) => {
                        let hit =
                            set.contains(b) || (case_insensitive && set.contains(swap_case(b)));
                        hit != *negated
                    }
                    Some(Inst::Any) => b != b'\n',
                    _ => false,
                };
                if step && self.add(&mut next, &mut stack, pc + 1, text, pos + 1) {
                    return true;
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        false
    }

    /// Add `start` and every state reachable from it without consuming input at `pos`.
    /// Returns true when the match state is reached.
    fn add(
        &self,
        set: &mut StateSet,
        stack: &mut [u16; MAX_INSTS],
        start: usize,
        text: &[u8],
        pos: usize,
    ) -> bool {
        let mut sp = 0;
        self.visit(start, set, stack, &mut sp);
        while sp > 0 {
            sp -= 1;
            let pc = usize::from(stack[sp]);
            let Some(inst) = self.insts.get(pc) else {
                continue;
            };
            match *inst {
                Inst::Match => return true,
                Inst::Jmp(t) => self.visit(usize::from(t), set, stack, &mut sp),
                Inst::Split(a, b) => {
                    self.visit(usize::from(a), set, stack, &mut sp);
                    self.visit(usize::from(b), set, stack, &mut sp);
                }
                Inst::Bol => {
                    if pos == 0 {
                        self.visit(pc + 1, set, stack, &mut sp);
                    }
                }
                Inst::Eol => {
                    // PCRE's `$` without multiline: the end, or before a final newline.
                    let rest = text.get(pos..).unwrap_or_default();
                    if rest.is_empty() || rest == b"\n" {
                        self.visit(pc + 1, set, stack, &mut sp);
                    }
                }
                Inst::Byte(_) | Inst::Set { .. } | Inst::Any => {}
            }
        }
        false
    }

    /// Push `pc` for the closure walk unless the set already has it; each state enters a set
    /// once, so the stack never needs more than `MAX_INSTS` slots.
    fn visit(&self, pc: usize, set: &mut StateSet, stack: &mut [u16; MAX_INSTS], sp: &mut usize) {
        if pc < self.insts.len()
            && set.insert(pc)
            && let Some(slot) = stack.get_mut(*sp)
        {
            *slot = pc as u16;
            *sp += 1;
        }
    }
}

fn swap_case(b: u8) -> u8 {
    if b.is_ascii_lowercase() {
        b.to_ascii_uppercase()
    } else {
        b.to_ascii_lowercase()
    }
}

/// A set of program counters with insertion order, sized for the largest program.
struct StateSet {
    dense: [u16; MAX_INSTS],
    len: usize,
    bits: [u64; MAX_INSTS / 64],
}

impl StateSet {
    fn new() -> StateSet {
        StateSet {
            dense: [0; MAX_INSTS],
            len: 0,
            bits: [0; MAX_INSTS / 64],
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.bits = [0; MAX_INSTS / 64];
    }

    /// Insert `pc`; false when it was already there.
    fn insert(&mut self, pc: usize) -> bool {
        let (word, bit) = (pc / 64, 1u64 << (pc % 64));
        match self.bits.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                if let Some(slot) = self.dense.get_mut(self.len) {
                    *slot = pc as u16;
                    self.len += 1;
                }
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
enum Node {
    Empty,
    Byte(u8),
    Set { set: ByteSet, negated: bool },
    Any,
    Bol,
    Eol,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

struct Parser<'s> {
    src: &'s str,
    bytes: &'s [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str, byte_pos: usize) -> String {
        format!(
            "{what} at {} in pattern '{}'",
            char_offset(self.src, byte_pos),
            self.src
        )
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn parse_alt(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.parse_concat()?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            alts.push(self.parse_concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    fn parse_concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let atom = self.parse_atom()?;
            let atom = self.parse_quantifier(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn parse_atom(&mut self) -> Result<Node, String> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Node::Empty);
        };
        match c {
            b'(' => self.parse_group(),
            b'[' => self.parse_class(),
            b'.' => {
                self.pos += 1;
                Ok(Node::Any)
            }
            b'^' => {
                self.pos += 1;
                Ok(Node::Bol)
            }
            b'$' => {
                self.pos += 1;
                Ok(Node::Eol)
            }
            b'\\' => {
                self.pos += 1;
                match self.parse_escape(start, false)? {
                    Escaped::Byte(b) => Ok(Node::Byte(b)),
                    Escaped::Set(set) => Ok(Node::Set {
                        set,
                        negated: false,
                    }),
                }
            }
            b'*' | b'+' | b'?' => Err(self.err("quantifier with nothing to repeat", start)),
            b'{' if self.quantifier_ahead() => {
                Err(self.err("quantifier with nothing to repeat", start))
            }
            _ => self.parse_literal_char(),
        }
    }

    /// One literal character; a multi-byte UTF-8 character becomes one unit so that a
    /// quantifier after it repeats the whole character.
    fn parse_literal_char(&mut self) -> Result<Node, String> {
        let start = self.pos;
        let len = self
            .src
            .get(start..)
            .and_then(|rest| rest.chars().next())
            .map_or(1, char::len_utf8);
        self.pos = (start + len).min(self.bytes.len());
        let bytes = &self.bytes[start..self.pos];
        Ok(match bytes {
            [b] => Node::Byte(*b),
            _ => Node::Concat(bytes.iter().map(|b| Node::Byte(*b)).collect()),
        })
    }

    fn parse_group(&mut self) -> Result<Node, String> {
        let open = self.pos;
        self.pos += 1;
        if self.peek() == Some(b'?') {
            if self.peek_at(1) == Some(b':') {
                self.pos += 2;
            } else {
                return Err(self.err(group_construct(&self.bytes[open..]), open));
            }
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                &format!("groups nested deeper than {MAX_DEPTH} levels"),
                open,
            ));
        }
        let inner = self.parse_alt()?;
        self.depth -= 1;
        if self.peek() != Some(b')') {
            return Err(self.err("missing ')' for the group opened", open));
        }
        self.pos += 1;
        Ok(inner)
    }

    fn parse_class(&mut self) -> Result<Node, String> {
        let open = self.pos;
        self.pos += 1;
        let negated = self.peek() == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let mut set = ByteSet::EMPTY;
        let mut first = true;
        loop {
            let item_start = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.err("missing ']' for the class opened", open));
            };
            // PCRE: a ']' right after '[' or '[^' is a literal.
            if c == b']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            // `[:alpha:]`, `[.x.]`, `[=x=]` only when closed; else '[' is a plain member.
            if c == b'['
                && let Some(kind @ (b':' | b'.' | b'=')) = self.peek_at(1)
                && self.bytes[self.pos + 2..]
                    .windows(2)
                    .any(|w| w == [kind, b']'])
            {
                return Err(self.err("unsupported POSIX class '[:...:]'", item_start));
            }
            let lo = self.parse_class_item()?;
            let is_range =
                self.peek() == Some(b'-') && !matches!(self.peek_at(1), Some(b']') | None);
            match lo {
                Escaped::Byte(lo) if is_range => {
                    self.pos += 1;
                    let hi_start = self.pos;
                    match self.parse_class_item()? {
                        Escaped::Byte(hi) if hi >= lo => set.insert_range(lo, hi),
                        Escaped::Byte(_) => {
                            return Err(self.err("class range out of order", item_start));
                        }
                        Escaped::Set(_) => {
                            return Err(self.err("class escape as the end of a range", hi_start));
                        }
                    }
                }
                Escaped::Byte(b) => set.insert(b),
                // PCRE reads '-' after a class escape such as \d as a literal; the loop does.
                Escaped::Set(s) => set.union(&s),
            }
        }
        Ok(Node::Set { set, negated })
    }

    fn parse_class_item(&mut self) -> Result<Escaped, String> {
        let start = self.pos;
        match self.peek() {
            Some(b'\\') => {
                self.pos += 1;
                self.parse_escape(start, true)
            }
            Some(c) if c.is_ascii() => {
                self.pos += 1;
                Ok(Escaped::Byte(c))
            }
            Some(_) => Err(self.err("non-ASCII character in a class", start)),
            None => Err(self.err("unterminated class", start)),
        }
    }

    /// After a backslash at `start`.
    fn parse_escape(&mut self, start: usize, in_class: bool) -> Result<Escaped, String> {
        let Some(c) = self.peek() else {
            return Err(self.err("trailing backslash", start));
        };
        if !c.is_ascii_alphanumeric() {
            if !c.is_ascii() {
                return Err(self.err("escaped non-ASCII character", start));
            }
            self.pos += 1;
            return Ok(Escaped::Byte(c));
        }
        self.pos += 1;
        Ok(match c {
            b'd' => Escaped::Set(ByteSet::digits()),
            b'D' => Escaped::Set(ByteSet::digits().complement()),
            b'w' => Escaped::Set(ByteSet::word()),
            b'W' => Escaped::Set(ByteSet::word().complement()),
            b's' => Escaped::Set(ByteSet::space()),
            b'S' => Escaped::Set(ByteSet::space().complement()),
            b't' => Escaped::Byte(b'\t'),
            b'n' => Escaped::Byte(b'\n'),
            b'r' => Escaped::Byte(b'\r'),
            b'f' => Escaped::Byte(0x0c),
            _ => {
                let what = match c {
                    b'b' if in_class => "backspace escape '\\b' in a class",
                    b'b' | b'B' => "word boundary '\\b'/'\\B'",
                    b'A' | b'z' | b'Z' | b'G' => "anchor escape '\\A'/'\\z'/'\\Z'/'\\G'",
                    b'0'..=b'9' => "backreference or octal escape '\\N'",
                    b'k' | b'g' => "backreference '\\k'/'\\g'",
                    b'p' | b'P' | b'X' => "Unicode property '\\p'",
                    b'Q' | b'E' => "quoting '\\Q...\\E'",
                    b'K' => "match reset '\\K'",
                    b'x' | b'o' | b'c' | b'N' | b'u' => "character code escape",
                    b'h' | b'H' | b'v' | b'V' | b'R' => "PCRE space class '\\h'/'\\v'/'\\R'",
                    _ => "unknown escape",
                };
                return Err(self.err(&format!("unsupported {what}"), start));
            }
        })
    }

    /// Does a valid `{m}`, `{m,}` or `{m,n}` start here? PCRE treats any other '{' as a
    /// literal; `{,n}` changed meaning between PCRE versions, so it is refused.
    fn quantifier_ahead(&self) -> bool {
        self.read_braces().is_some()
    }

    /// Parse `{m}`, `{m,}`, `{m,n}` at `pos` without moving; returns (min, max, length).
    fn read_braces(&self) -> Option<(Option<u64>, Option<Option<u64>>, usize)> {
        let rest = self.bytes.get(self.pos..)?;
        if rest.first() != Some(&b'{') {
            return None;
        }
        let close = rest.iter().position(|&b| b == b'}')?;
        let body = &rest[1..close];
        let number = |s: &[u8]| -> Option<u64> {
            if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse().ok()
        };
        match body.iter().position(|&b| b == b',') {
            None => Some((Some(number(body)?), None, close + 1)),
            Some(comma) => {
                let (lo, hi) = (&body[..comma], &body[comma + 1..]);
                let max = if hi.is_empty() {
                    None
                } else {
                    Some(number(hi)?)
                };
                if lo.is_empty() {
                    // `{,n}`: report it rather than guess.
                    max?;
                    return Some((None, Some(max), close + 1));
                }
                Some((Some(number(lo)?), Some(max), close + 1))
            }
        }
    }

    fn parse_quantifier(&mut self, atom: Node) -> Result<Node, String> {
        let q_start = self.pos;
        let (min, max) = match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                (0, None)
            }
            Some(b'+') => {
                self.pos += 1;
                (1, None)
            }
            Some(b'?') => {
                self.pos += 1;
                (0, Some(1))
            }
            Some(b'{') => match self.read_braces() {
                None => return Ok(atom),
                Some((None, _, _)) => {
                    return Err(self.err("ambiguous quantifier '{,n}' (write '{0,n}')", q_start));
                }
                Some((Some(min), max, len)) => {
                    let max = match max {
                        None => Some(min),
                        Some(m) => m,
                    };
                    if min > u64::from(MAX_REPEAT) || max.unwrap_or(0) > u64::from(MAX_REPEAT) {
                        return Err(self.err(&format!("repeat count above {MAX_REPEAT}"), q_start));
                    }
                    if max.is_some_and(|m| m < min) {
                        return Err(self.err("quantifier range out of order", q_start));
                    }
                    self.pos += len;
                    (min as u32, max.map(|m| m as u32))
                }
            },
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Bol | Node::Eol) {
            return Err(self.err("quantifier after an anchor", q_start));
        }
        match self.peek() {
            // Lazy: without captures it accepts exactly the same names as greedy.
            Some(b'?') => self.pos += 1,
            Some(b'+') => {
                return Err(self.err("unsupported possessive quantifier", self.pos));
            }
            _ => {}
        }
        if matches!(self.peek(), Some(b'*' | b'+' | b'?')) || self.quantifier_ahead() {
            return Err(self.err("quantifier after a quantifier (use a group)", self.pos));
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }
}

enum Escaped {
    Byte(u8),
    Set(ByteSet),
}

/// Name the `(?...)` construct that `rest` (starting at '(') begins.
fn group_construct(rest: &[u8]) -> &'static str {
    match rest.get(2..).unwrap_or_default() {
        [b'=', ..] => "unsupported lookahead '(?='",
        [b'!', ..] => "unsupported negative lookahead '(?!'",
        [b'<', b'=', ..] => "unsupported lookbehind '(?<='",
        [b'<', b'!', ..] => "unsupported negative lookbehind '(?<!'",
        [b'<' | b'P' | b'\'', ..] => "unsupported named group '(?<name>' (use '(?:')",
        [b'>', ..] => "unsupported atomic group '(?>'",
        [b'#', ..] => "unsupported comment '(?#'",
        [b'(', ..] => "unsupported conditional group '(?('",
        [b'|', ..] => "unsupported branch reset group '(?|'",
        [b'R' | b'0'..=b'9' | b'+' | b'-' | b'&', ..] => "unsupported recursion '(?R'",
        [c, ..] if c.is_ascii_alphabetic() || *c == b'^' => "unsupported inline option '(?i)'",
        _ => "unsupported group syntax '(?'",
    }
}

fn char_offset(src: &str, byte_pos: usize) -> usize {
    src.get(..byte_pos)
        .map_or(byte_pos, |prefix| prefix.chars().count())
}

fn push(insts: &mut Vec<Inst>, inst: Inst, src: &str) -> Result<usize, String> {
    if insts.len() >= MAX_INSTS {
        return Err(format!(
            "pattern '{src}' is too large (more than {MAX_INSTS} steps once repeats are expanded)"
        ));
    }
    insts.push(inst);
    Ok(insts.len() - 1)
}

/// Point a placeholder `Split`/`Jmp` at `pc` (the placeholders are emitted pointing at 0).
fn patch(insts: &mut [Inst], at: usize, first: Option<usize>, second: Option<usize>) {
    let to16 = |x: usize| x as u16;
    if let Some(inst) = insts.get_mut(at) {
        match inst {
            Inst::Split(a, b) => {
                if let Some(f) = first {
                    *a = to16(f);
                }
                if let Some(s) = second {
                    *b = to16(s);
                }
            }
            Inst::Jmp(a) => {
                if let Some(f) = first {
                    *a = to16(f);
                }
            }
            _ => {}
        }
    }
}

/// Recursion here follows the node tree, whose depth the parser bounded.
fn emit(node: &Node, insts: &mut Vec<Inst>, src: &str) -> Result<(), String> {
    match node {
        Node::Empty => {}
        Node::Byte(b) => {
            push(insts, Inst::Byte(*b), src)?;
        }
        Node::Set { set, negated } => {
            push(
                insts,
                Inst::Set {
                    set: *set,
                    negated: *negated,
                },
                src,
            )?;
        }
        Node::Any => {
            push(insts, Inst::Any, src)?;
        }
        Node::Bol => {
            push(insts, Inst::Bol, src)?;
        }
        Node::Eol => {
            push(insts, Inst::Eol, src)?;
        }
        Node::Concat(items) => {
            for item in items {
                emit(item, insts, src)?;
            }
        }
        Node::Alt(alts) => {
            // split L1, next; L1: alt0; jmp end; next: split L2, next2; ... last alt; end:
            let mut jumps = Vec::new();
            for (i, alt) in alts.iter().enumerate() {
                if i + 1 < alts.len() {
                    let split = push(insts, Inst::Split(0, 0), src)?;
                    patch(insts, split, Some(split + 1), None);
                    emit(alt, insts, src)?;
                    jumps.push(push(insts, Inst::Jmp(0), src)?);
                    let next = insts.len();
                    patch(insts, split, None, Some(next));
                } else {
                    emit(alt, insts, src)?;
                }
            }
            let end = insts.len();
            for j in jumps {
                patch(insts, j, Some(end), None);
            }
        }
        Node::Repeat(inner, min, max) => {
            for _ in 0..*min {
                emit(inner, insts, src)?;
            }
            match max {
                None => {
                    // loop: split body, end; body; jmp loop; end:
                    let split = push(insts, Inst::Split(0, 0), src)?;
                    emit(inner, insts, src)?;
                    push(insts, Inst::Jmp(split as u16), src)?;
                    let end = insts.len();
                    patch(insts, split, Some(split + 1), Some(end));
                }
                Some(max) => {
                    // Each optional copy may be skipped straight to the end.
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        let split = push(insts, Inst::Split(0, 0), src)?;
                        patch(insts, split, Some(split + 1), None);
                        splits.push(split);
                        emit(inner, insts, src)?;
                    }
                    let end = insts.len();
                    for s in splits {
                        patch(insts, s, None, Some(end));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, name: &str) -> bool {
        match Pattern::compile(p) {
            Ok(pat) => pat.matches(name, false),
            Err(e) => panic!("{p}: {e}"),
        }
    }

    fn mi(p: &str, name: &str) -> bool {
        match Pattern::compile(p) {
            Ok(pat) => pat.matches(name, true),
            Err(e) => panic!("{p}: {e}"),
        }
    }

    fn err(p: &str) -> String {
        match Pattern::compile(p) {
            Ok(pat) => panic!("{p} compiled: {pat:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals_search_unanchored() {
        assert!(m("foo", "foo"));
        assert!(m("foo", "xfooy"));
        assert!(!m("foo", "fo"));
        assert!(!m("foo", "FOO"));
        assert!(m("", "anything"));
        assert!(m("", ""));
        assert_eq!(
            Pattern::compile("^a$").map(|p| p.source().to_string()),
            Ok("^a$".into())
        );
    }

    #[test]
    fn anchors() {
        assert!(m("^X-Client-ID$", "X-Client-ID"));
        assert!(!m("^X-Client-ID$", "X-Client-IDs"));
        assert!(!m("^X-Client-ID$", "AX-Client-ID"));
        assert!(m("^foo", "foobar"));
        assert!(!m("^foo", "barfoo"));
        assert!(m("bar$", "foobar"));
        assert!(!m("bar$", "barfoo"));
        assert!(
            m("bar$", "foobar\n"),
            "PCRE $ matches before a final newline"
        );
        assert!(m("^$", ""));
        assert!(!m("^$", "a"));
        assert!(m("a|^b", "xa"));
        assert!(!m("x^a", "xa"));
    }

    #[test]
    fn dot() {
        assert!(m(".*", ""));
        assert!(m(".*", "anything"));
        assert!(m("^a.c$", "abc"));
        assert!(!m("^a.c$", "ac"));
        assert!(!m("^a.c$", "a\nc"));
    }

    #[test]
    fn star_plus_question() {
        assert!(m("^ab*c$", "ac"));
        assert!(m("^ab*c$", "abbbc"));
        assert!(!m("^ab+c$", "ac"));
        assert!(m("^ab+c$", "abbc"));
        assert!(m("^ab?c$", "ac"));
        assert!(m("^ab?c$", "abc"));
        assert!(!m("^ab?c$", "abbc"));
        // Lazy forms accept the same names.
        assert!(m("^ab*?c$", "abbc"));
        assert!(m("^ab+?c$", "abbc"));
        assert!(m("^ab??c$", "abc"));
    }

    #[test]
    fn counted_repeats() {
        assert!(m("^a{3}$", "aaa"));
        assert!(!m("^a{3}$", "aa"));
        assert!(!m("^a{3}$", "aaaa"));
        assert!(m("^a{2,}$", "aa"));
        assert!(m("^a{2,}$", "aaaaaaa"));
        assert!(!m("^a{2,}$", "a"));
        assert!(m("^a{1,3}$", "a"));
        assert!(m("^a{1,3}$", "aaa"));
        assert!(!m("^a{1,3}$", "aaaa"));
        assert!(!m("^a{1,3}$", ""));
        assert!(m("^a{0,2}$", ""));
        assert!(m("^(ab){2}$", "abab"));
        assert!(m("^a{2}?$", "aa"));
        // A '{' that does not start a quantifier is a literal, as in PCRE.
        assert!(m("^a{x}$", "a{x}"));
        assert!(m("^a{$", "a{"));
        assert!(m("}", "a}"));
    }

    #[test]
    fn classes() {
        assert!(m("^[a-z0-9_-]+$", "x-ibm_client9"));
        assert!(!m("^[a-z0-9_-]+$", "X-IBM"));
        assert!(m("^[^a-z]+$", "ABC-1"));
        assert!(!m("^[^a-z]+$", "AbC"));
        assert!(m("^[]a]+$", "]a]"));
        assert!(m("^[^]]$", "x"));
        assert!(!m("^[^]]$", "]"));
        assert!(m("^[-a]+$", "-a-"));
        assert!(m("^[a-]+$", "-a-"));
        assert!(
            m("^[\\d-z]+$", "1-z"),
            "'-' after a class escape is literal"
        );
        assert!(m("^[\\]\\\\]+$", "]\\"));
        assert!(m("^[.]$", "."));
        assert!(!m("^[.]$", "a"));
        assert!(m("^[\\w.]+$", "a_b.c"));
        assert!(
            m("^[[.]+$", "[.["),
            "'[' without a closing ':]' is a member"
        );
        assert!(m("^[^\\s]+$", "ab"));
        assert!(!m("^[^\\s]+$", "a b"));
    }

    #[test]
    fn escapes() {
        assert!(m("^a\\.b$", "a.b"));
        assert!(!m("^a\\.b$", "axb"));
        assert!(m("^a\\-b$", "a-b"));
        assert!(m("^\\d+$", "0123456789"));
        assert!(!m("^\\d+$", "12a"));
        assert!(m("^\\w+$", "Az_09"));
        assert!(!m("^\\w+$", "a-b"));
        assert!(m("^a\\sb$", "a b"));
        assert!(m("^a\\sb$", "a\tb"));
        assert!(m("^\\D\\W\\S$", "a-x"));
        assert!(!m("^\\D$", "1"));
        assert!(m("^\\*\\+\\?\\(\\)\\[\\{\\|\\^\\$$", "*+?()[{|^$"));
        assert!(m("^a\\tb$", "a\tb"));
    }

    #[test]
    fn alternation_and_groups() {
        assert!(m("^(foo|bar)$", "foo"));
        assert!(m("^(foo|bar)$", "bar"));
        assert!(!m("^(foo|bar)$", "baz"));
        assert!(m("^(?:x-ibm-|x-api-)", "x-api-key"));
        assert!(m("^foo$|^bar$", "bar"));
        assert!(!m("^foo$|^bar$", "foobar"));
        assert!(m("^(a|b)*c$", "ababc"));
        assert!(m("^(a|)$", ""));
        assert!(m("^()$", ""));
        assert!(m("^((a|b)(c|d))+$", "acbdad"));
        assert!(!m("^((a|b)(c|d))+$", "acb"));
        assert!(m("^(a*)*b$", "aaab"), "empty loops terminate");
        assert!(m("^(a?){3}$", "a"));
    }

    #[test]
    fn case_insensitive() {
        assert!(mi("^X-Client-ID$", "x-client-id"));
        assert!(mi("^x-ibm-", "X-IBM-Client-Id"));
        assert!(!m("^x-ibm-", "X-IBM-Client-Id"));
        assert!(mi("^[a-z]+$", "ABC"));
        assert!(!mi("^[^a]$", "A"), "folding happens before negation");
        assert!(mi("^[^a]$", "b"));
        assert!(mi("^(FOO|bar)$", "Bar"));
        assert!(!mi("^x$", "y"));
    }

    #[test]
    fn multibyte_literal_repeats_as_a_unit() {
        assert!(m("^é+$", "ééé"));
        assert!(!m("^é+$", "é\u{a9}"));
        assert!(m("^.+$", "ü"));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let cases: &[(&str, &str, usize)] = &[
            ("^(a)\\1$", "backreference", 4),
            ("^(?=a)", "lookahead", 1),
            ("^(?!a)", "negative lookahead", 1),
            ("(?<=a)b", "lookbehind", 0),
            ("(?<!a)b", "negative lookbehind", 0),
            ("(?<n>a)", "named group", 0),
            ("(?>a)", "atomic group", 0),
            ("(?i)abc", "inline option", 0),
            ("(?#c)", "comment", 0),
            ("a*+", "possessive", 2),
            ("a++", "possessive", 2),
            ("\\bfoo", "word boundary", 0),
            ("\\Afoo", "anchor escape", 0),
            ("\\p{L}", "Unicode property", 0),
            ("\\x41", "character code", 0),
            ("\\Qa\\E", "quoting", 0),
            ("[[:alpha:]]", "POSIX class", 1),
            ("*a", "nothing to repeat", 0),
            ("a|+", "nothing to repeat", 2),
            ("a**", "quantifier after a quantifier", 2),
            ("^*", "quantifier after an anchor", 1),
            ("(ab", "missing ')'", 0),
            ("ab)", "unmatched ')'", 2),
            ("[ab", "missing ']'", 0),
            ("[z-a]", "range out of order", 1),
            ("a{3,1}", "range out of order", 1),
            ("a{,3}", "ambiguous", 1),
            ("a{1001}", "repeat count", 1),
            ("abc\\", "trailing backslash", 3),
            ("[é]", "non-ASCII", 1),
        ];
        for (p, what, at) in cases {
            let e = err(p);
            assert!(e.contains(what), "{p}: {e}");
            assert!(e.contains(&format!(" at {at} ")), "{p}: {e}");
        }
        // Offsets count characters, not bytes.
        assert!(err("é(?=x)").contains(" at 1 "));
    }

    #[test]
    fn size_and_depth_limits() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(err(&deep).contains("nested deeper"));
        let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(m(&ok, "a"));
        assert!(err("(a{1000}){1000}").contains("too large"));
        assert!(err(&"a".repeat(MAX_INSTS)).contains("too large"));
        assert!(m(&"a".repeat(MAX_INSTS - 1), &"a".repeat(MAX_INSTS - 1)));
    }

    #[test]
    fn no_catastrophic_backtracking() {
        // Exponential for a backtracking matcher; linear here.
        let p = "^(a|a)*(a*)*(a|aa)*b$";
        let name = "a".repeat(5_000);
        assert!(!m(p, &name));
        assert!(m(p, &format!("{name}b")));
        assert!(!m("^(a+)+$", &format!("{name}!")));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A small deterministic generator over the pattern alphabet.
        let alphabet = b"ab()[]{}^$.*+?|\\-,0123:=!<dws\xc3\xa9";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let src = String::from_utf8_lossy(&bytes);
            if let Ok(p) = Pattern::compile(&src) {
                let _ = p.matches("ab-A{1}\n", true);
                let _ = p.matches("", false);
            }
        }
    }
}
