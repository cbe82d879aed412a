//! Switch conditions (spec decision 2, §2.4): the JSONata subset wsgate accepts, compiled when
//! the API loads and evaluated per request against a [`Context`].
//!
//! Supported: context paths (`request.verb`, ``message.headers.`x-foo` ``), string, number,
//! `true`/`false`/`null` literals, `= != < <= > >=`, `and`, `or`, `not(x)` / `$not(x)`,
//! parentheses, `x in [a, b]`, and the helpers `$header()`, `$httpVerb()`, `$queryParameter()`,
//! `$operationPath()`, `$operationID()`, `$statusCode()`, `$exists()` and `$isWebSocket()`.
//! Everything else JSONata has is refused at compile time with its character offset, so a
//! condition never silently means something else here than on DataPower.
//!
//! Values follow JSONata: a missing path is undefined; `=`/`!=` with an undefined side are
//! false; `<`-style comparisons with an undefined side are undefined (false) and between
//! different types are an evaluation error; `$not(undefined)` is undefined.

use std::borrow::Cow;
use std::fmt;

/// How deeply expressions may nest; parsing and evaluation recurse once per level.
const MAX_DEPTH: usize = 64;
/// Longest path; evaluation passes the steps to [`Context::path`] from a stack array.
const MAX_PATH_STEPS: usize = 16;

/// A JSONata value as far as conditions need one.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
}

impl Value<'_> {
    /// JSONata's boolean cast: undefined, null, false, "" and 0 are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::Str(s) => !s.is_empty(),
        }
    }
}

/// What a condition can read. The engine implements it over the request head and the
/// assembly's variables.
pub trait Context {
    /// A context variable by path, e.g. `["request", "verb"]`; [`Value::Undefined`] if absent.
    fn path(&self, path: &[&str]) -> Value<'_>;
    /// `message.headers`, by case-insensitive name (for `$header()`).
    fn header(&self, name: &str) -> Option<&str>;
    fn query_parameter(&self, name: &str) -> Option<&str>;
    fn operation_path(&self) -> Option<&str>;
    fn operation_id(&self) -> Option<&str>;
    fn status_code(&self) -> Option<u16>;
    fn is_websocket(&self) -> bool;
}

/// A runtime type error. The switch treats the case as false and logs it (spec §7 #22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// Character offset of the operator or function in the condition.
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.message, self.offset)
    }
}

impl std::error::Error for EvalError {}

/// A compiled switch condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    expr: Expr,
}

impl Condition {
    /// Compile a condition (after [`expand_refs`]); the error names the construct and its
    /// character offset.
    pub fn compile(source: &str) -> Result<Condition, String> {
        let tokens = lex(source)?;
        let mut parser = Parser {
            src: source,
            tokens,
            i: 0,
            depth: 0,
        };
        let expr = parser.parse_or()?;
        if !matches!(parser.peek(), Tok::Eof) {
            return Err(parser.unexpected(false));
        }
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate against `ctx` and cast the result to a boolean as JSONata does.
    pub fn eval(&self, ctx: &dyn Context) -> Result<bool, EvalError> {
        Ok(eval(&self.expr, ctx)?.is_truthy())
    }
}

/// Replace each `$(name)` in a condition with the value `lookup` gives (the empty string when
/// it gives none), before [`Condition::compile`] (spec §7 #8). Outside quotes the value becomes
/// a JSON string literal; inside a string literal it is inserted escaped for that string, so
/// `'v$(ver)'` stays one string. `$$(` stands for a literal `$(`.
pub fn expand_refs(src: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(src.len());
    let mut quote: Option<char> = None;
    let mut rest = src;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("$$(") {
            out.push_str("$(");
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix("$(")
            && let Some(close) = after.find(')')
        {
            let value = lookup(after[..close].trim()).unwrap_or_default();
            match quote {
                None => {
                    out.push('"');
                    push_escaped(&mut out, &value, '"');
                    out.push('"');
                }
                // Backquoted names have no escapes; a backquote would end the name.
                Some('`') => out.extend(value.chars().filter(|&ch| ch != '`')),
                Some(q) => push_escaped(&mut out, &value, q),
            }
            rest = &after[close + 1..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        out.push(c);
        match quote {
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            Some(q) if c == q => quote = None,
            // Copy an escaped character as is so that an escaped quote does not end the string.
            Some(q) if c == '\\' && q != '`' => {
                if let Some(next) = rest.chars().next()
                    && next != '$'
                {
                    out.push(next);
                    rest = &rest[next.len_utf8()..];
                }
            }
            _ => {}
        }
    }
    out
}

/// Escape `value` for a JSONata string literal quoted with `quote`.
fn push_escaped(out: &mut String, value: &str, quote: char) {
    // JSONata's escapes are JSON's, which has no `\'`: in a single-quoted literal the code
    // point escape stands for the quote.
    for (i, part) in value.split('\'').enumerate() {
        if i > 0 {
            out.push_str(if quote == '\'' { "\\u0027" } else { "'" });
        }
        crate::json::write::escaped(out, part);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Header,
    QueryParameter,
    HttpVerb,
    OperationPath,
    OperationId,
    StatusCode,
    Exists,
    Not,
    IsWebSocket,
}

/// The helpers by JSONata name, with their argument count.
const FUNCTIONS: &[(&str, Func, usize)] = &[
    ("header", Func::Header, 1),
    ("queryParameter", Func::QueryParameter, 1),
    ("httpVerb", Func::HttpVerb, 0),
    ("operationPath", Func::OperationPath, 0),
    ("operationID", Func::OperationId, 0),
    ("statusCode", Func::StatusCode, 0),
    ("exists", Func::Exists, 1),
    ("not", Func::Not, 1),
    ("isWebSocket", Func::IsWebSocket, 0),
];

#[derive(Debug, Clone)]
enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Path(Vec<String>),
    /// n-ary so that long `and`/`or` chains stay shallow.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare {
        op: CmpOp,
        at: usize,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    In {
        lhs: Box<Expr>,
        list: Vec<Expr>,
    },
    Call {
        func: Func,
        at: usize,
        arg: Option<Box<Expr>>,
    },
}

fn eval<'a>(expr: &'a Expr, ctx: &'a dyn Context) -> Result<Value<'a>, EvalError> {
    Ok(match expr {
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Number(n) => Value::Number(*n),
        Expr::Str(s) => Value::Str(Cow::Borrowed(s)),
        Expr::Path(steps) => {
            let mut buf = [""; MAX_PATH_STEPS];
            for (slot, step) in buf.iter_mut().zip(steps) {
                *slot = step.as_str();
            }
            ctx.path(&buf[..steps.len().min(MAX_PATH_STEPS)])
        }
        Expr::And(terms) => {
            for t in terms {
                if !eval(t, ctx)?.is_truthy() {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Expr::Or(terms) => {
            for t in terms {
                if eval(t, ctx)?.is_truthy() {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Expr::Compare { op, at, lhs, rhs } => compare(*op, *at, eval(lhs, ctx)?, eval(rhs, ctx)?)?,
        Expr::In { lhs, list } => {
            let needle = eval(lhs, ctx)?;
            if needle == Value::Undefined {
                return Ok(Value::Bool(false));
            }
            for item in list {
                if same(&needle, &eval(item, ctx)?) {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Expr::Call { func, at, arg } => {
            let arg = match arg {
                Some(a) => eval(a, ctx)?,
                None => Value::Undefined,
            };
            call(*func, *at, arg, ctx)?
        }
    })
}

fn call<'a>(
    func: Func,
    at: usize,
    arg: Value<'a>,
    ctx: &'a dyn Context,
) -> Result<Value<'a>, EvalError> {
    let text = |v: Option<&'a str>| v.map_or(Value::Undefined, |s| Value::Str(Cow::Borrowed(s)));
    let name = |arg: &Value<'a>, message| match arg {
        Value::Undefined => Ok(None),
        Value::Str(s) => Ok(Some(s.clone())),
        _ => Err(EvalError {
            offset: at,
            message,
        }),
    };
    Ok(match func {
        Func::Header => match name(&arg, "$header() needs a string argument")? {
            Some(n) => text(ctx.header(&n)),
            None => Value::Undefined,
        },
        Func::QueryParameter => match name(&arg, "$queryParameter() needs a string argument")? {
            Some(n) => text(ctx.query_parameter(&n)),
            None => Value::Undefined,
        },
        Func::HttpVerb => ctx.path(&["request", "verb"]),
        Func::OperationPath => text(ctx.operation_path()),
        Func::OperationId => text(ctx.operation_id()),
        Func::StatusCode => ctx
            .status_code()
            .map_or(Value::Undefined, |c| Value::Number(f64::from(c))),
        Func::Exists => Value::Bool(arg != Value::Undefined),
        Func::Not => match arg {
            Value::Undefined => Value::Undefined,
            v => Value::Bool(!v.is_truthy()),
        },
        Func::IsWebSocket => Value::Bool(ctx.is_websocket()),
    })
}

/// JSONata's strict equality for the value kinds conditions have.
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    }
}

fn compare<'a>(
    op: CmpOp,
    at: usize,
    lhs: Value<'a>,
    rhs: Value<'a>,
) -> Result<Value<'a>, EvalError> {
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        if lhs == Value::Undefined || rhs == Value::Undefined {
            return Ok(Value::Bool(false));
        }
        return Ok(Value::Bool(same(&lhs, &rhs) == (op == CmpOp::Eq)));
    }
    let orderable =
        |v: &Value<'_>| matches!(v, Value::Undefined | Value::Number(_) | Value::Str(_));
    if !orderable(&lhs) || !orderable(&rhs) {
        return Err(EvalError {
            offset: at,
            message: "only numbers and strings can be ordered",
        });
    }
    let ord = match (&lhs, &rhs) {
        (Value::Undefined, _) | (_, Value::Undefined) => return Ok(Value::Undefined),
        (Value::Number(a), Value::Number(b)) => a.partial_cmp(b),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        _ => {
            return Err(EvalError {
                offset: at,
                message: "cannot order a number against a string",
            });
        }
    };
    let Some(ord) = ord else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(match op {
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
        CmpOp::Eq | CmpOp::Ne => false,
    }))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A path step; the flag is set for a backquoted name, which is never a keyword.
    Name(String, bool),
    /// `$name`; empty for a bare `$`, `"$"` for `$$`.
    Var(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Cmp(CmpOp),
    Minus,
    /// Any other JSONata operator; none is supported, the parser names it.
    Other(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offsets into the source.
    start: usize,
    end: usize,
}

fn char_offset(src: &str, byte_pos: usize) -> usize {
    src.get(..byte_pos)
        .map_or(byte_pos, |prefix| prefix.chars().count())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn lex(src: &str) -> Result<Vec<Token>, String> {
    let bytes = src.as_bytes();
    let err = |what: &str, at: usize| format!("{what} at {}", char_offset(src, at));
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if next == Some(b'*') => {
                let Some(end) = src.get(i + 2..).and_then(|r| r.find("*/")) else {
                    return Err(err("unterminated comment", i));
                };
                i += end + 4;
                continue;
            }
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b',' => (Tok::Comma, 1),
            b'.' if next == Some(b'.') => (Tok::Other(".."), 2),
            b'.' => (Tok::Dot, 1),
            b'=' if next == Some(b'=') => (Tok::Other("=="), 2),
            b'=' => (Tok::Cmp(CmpOp::Eq), 1),
            b'!' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ne), 2),
            b'!' => (Tok::Other("!"), 1),
            b'<' if next == Some(b'=') => (Tok::Cmp(CmpOp::Le), 2),
            b'<' => (Tok::Cmp(CmpOp::Lt), 1),
            b'>' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ge), 2),
            b'>' => (Tok::Cmp(CmpOp::Gt), 1),
            b'-' => (Tok::Minus, 1),
            b'*' if next == Some(b'*') => (Tok::Other("**"), 2),
            b'&' if next == Some(b'&') => (Tok::Other("&&"), 2),
            b'|' if next == Some(b'|') => (Tok::Other("||"), 2),
            b'?' if next == Some(b'?') => (Tok::Other("??"), 2),
            b'?' if next == Some(b':') => (Tok::Other("?:"), 2),
            b':' if next == Some(b'=') => (Tok::Other(":="), 2),
            b'~' if next == Some(b'>') => (Tok::Other("~>"), 2),
            b'+' => (Tok::Other("+"), 1),
            b'*' => (Tok::Other("*"), 1),
            b'/' => (Tok::Other("/"), 1),
            b'%' => (Tok::Other("%"), 1),
            b'&' => (Tok::Other("&"), 1),
            b'|' => (Tok::Other("|"), 1),
            b'?' => (Tok::Other("?"), 1),
            b':' => (Tok::Other(":"), 1),
            b'~' => (Tok::Other("~"), 1),
            b'@' => (Tok::Other("@"), 1),
            b'#' => (Tok::Other("#"), 1),
            b'^' => (Tok::Other("^"), 1),
            b';' => (Tok::Other(";"), 1),
            b'{' => (Tok::Other("{"), 1),
            b'}' => (Tok::Other("}"), 1),
            b'\'' | b'"' => {
                let (s, len) = lex_string(src, i).map_err(|(what, at)| err(what, at))?;
                (Tok::Str(s), len)
            }
            b'`' => {
                let Some(end) = src.get(i + 1..).and_then(|r| r.find('`')) else {
                    return Err(err("unterminated backquoted name", i));
                };
                (
                    Tok::Name(src[i + 1..i + 1 + end].to_string(), true),
                    end + 2,
                )
            }
            b'$' => {
                if next == Some(b'$') {
                    (Tok::Var("$".to_string()), 2)
                } else {
                    let len = bytes[i + 1..]
                        .iter()
                        .take_while(|&&b| is_name_byte(b))
                        .count();
                    (Tok::Var(src[i + 1..i + 1 + len].to_string()), len + 1)
                }
            }
            b'0'..=b'9' => {
                let len = number_len(&bytes[i..]);
                let text = &src[i..i + len];
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => (Tok::Num(n), len),
                    _ => return Err(err(&format!("number out of range '{text}'"), i)),
                }
            }
            b if is_name_byte(b) => {
                let len = bytes[i..].iter().take_while(|&&b| is_name_byte(b)).count();
                (Tok::Name(src[i..i + len].to_string(), false), len)
            }
            _ => {
                let ch = src.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                return Err(err(
                    &format!("unexpected character '{}'", ch.escape_default()),
                    i,
                ));
            }
        };
        i += len;
        tokens.push(Token { tok, start, end: i });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        start: bytes.len(),
        end: bytes.len(),
    });
    Ok(tokens)
}

/// Length of the JSON-style number at the start of `b` (which starts with a digit).
fn number_len(b: &[u8]) -> usize {
    let digits = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|d| d.is_ascii_digit()).count())
    };
    let mut n = digits(0);
    if b.get(n) == Some(&b'.') && b.get(n + 1).is_some_and(u8::is_ascii_digit) {
        n += 1 + digits(n + 1);
    }
    if matches!(b.get(n), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(n + 1), Some(b'+' | b'-')));
        let exp = digits(n + 1 + sign);
        if exp > 0 {
            n += 1 + sign + exp;
        }
    }
    n
}

/// A quoted string starting at byte `open`; returns the value and the byte length.
fn lex_string(src: &str, open: usize) -> Result<(String, usize), (&'static str, usize)> {
    let bytes = src.as_bytes();
    let quote = bytes[open];
    let mut out = String::new();
    let mut i = open + 1;
    loop {
        let Some(rest) = src.get(i..) else {
            return Err(("unterminated string", open));
        };
        let Some(ch) = rest.chars().next() else {
            return Err(("unterminated string", open));
        };
        if u32::from(ch) == u32::from(quote) {
            return Ok((out, i + 1 - open));
        }
        if ch != '\\' {
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let esc_at = i;
        let Some(&e) = bytes.get(i + 1) else {
            return Err(("unterminated string", open));
        };
        i += 2;
        match e {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hex4 = |at: usize| {
                    src.get(at..at + 4)
                        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                let Some(hi) = hex4(i) else {
                    return Err(("invalid \\u escape", esc_at));
                };
                i += 4;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    // A surrogate pair written as two escapes, as JSON does.
                    let lo = src
                        .get(i..i + 2)
                        .filter(|p| *p == "\\u")
                        .and_then(|_| hex4(i + 2))
                        .filter(|lo| (0xdc00..0xe000).contains(lo));
                    let Some(lo) = lo else {
                        return Err(("unpaired surrogate in \\u escape", esc_at));
                    };
                    i += 6;
                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(c) => out.push(c),
                    None => return Err(("unpaired surrogate in \\u escape", esc_at)),
                }
            }
            _ => return Err(("unsupported escape sequence", esc_at)),
        }
    }
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.tokens
            .get(self.i + ahead)
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    /// Character offset of the current token.
    fn at(&self) -> usize {
        let byte = self.tokens.get(self.i).map_or(self.src.len(), |t| t.start);
        char_offset(self.src, byte)
    }

    fn bump(&mut self) {
        if self.i + 1 < self.tokens.len() {
            self.i += 1;
        }
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Name(n, false) if n == word)
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at {}", self.at())
    }

    /// Count one nesting level; the caller restores `depth` when it leaves.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(&format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.parse_and()?];
        while self.is_keyword("or") {
            self.bump();
            terms.push(self.parse_and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap_or(Expr::Null)
        } else {
            Expr::Or(terms)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.parse_cmp()?];
        while self.is_keyword("and") {
            self.bump();
            terms.push(self.parse_cmp()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap_or(Expr::Null)
        } else {
            Expr::And(terms)
        })
    }

    /// Comparisons are left-associative as in JSONata (`a = b = c` is `(a = b) = c`); each
    /// link deepens the tree, so each one counts against the depth limit.
    fn parse_cmp(&mut self) -> Result<Expr, String> {
        let saved = self.depth;
        let mut lhs = self.parse_operand()?;
        loop {
            if let Tok::Cmp(op) = *self.peek() {
                let at = self.at();
                self.bump();
                self.enter()?;
                let rhs = self.parse_operand()?;
                lhs = Expr::Compare {
                    op,
                    at,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                };
            } else if self.is_keyword("in") {
                self.bump();
                self.enter()?;
                let list = if *self.peek() == Tok::LBracket {
                    self.parse_list()?
                } else {
                    // JSONata treats a single value as a one-element array.
                    vec![self.parse_operand()?]
                };
                lhs = Expr::In {
                    lhs: Box::new(lhs),
                    list,
                };
            } else {
                break;
            }
        }
        self.depth = saved;
        Ok(lhs)
    }

    fn parse_list(&mut self) -> Result<Vec<Expr>, String> {
        self.bump(); // '['
        let mut items = Vec::new();
        if *self.peek() == Tok::RBracket {
            self.bump();
            return Ok(items);
        }
        loop {
            items.push(self.parse_or()?);
            match self.peek() {
                Tok::Comma => self.bump(),
                Tok::RBracket => {
                    self.bump();
                    return Ok(items);
                }
                _ => return Err(self.unexpected(false)),
            }
        }
    }

    fn parse_operand(&mut self) -> Result<Expr, String> {
        let tok = self.peek().clone();
        match tok {
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Str(s))
            }
            Tok::Num(n) => {
                self.bump();
                Ok(Expr::Number(n))
            }
            Tok::Minus => match *self.peek_at(1) {
                // A negative number literal; any other unary minus is arithmetic.
                Tok::Num(n) => {
                    self.bump();
                    self.bump();
                    Ok(Expr::Number(-n))
                }
                _ => Err(self.err("unsupported unary minus (arithmetic)")),
            },
            Tok::Name(name, false) if *self.peek_at(1) == Tok::LParen => match name.as_str() {
                "not" => {
                    let at = self.at();
                    self.bump();
                    self.parse_call(Func::Not, "not", 1, at)
                }
                "function" | "λ" => Err(self.err("unsupported lambda 'function(...)'")),
                _ => Err(self.err(&format!(
                    "unsupported function call '{name}(' (functions are written '$name(')"
                ))),
            },
            Tok::Name(name, backquoted) => {
                if !backquoted {
                    let literal = match name.as_str() {
                        "true" => Some(Expr::Bool(true)),
                        "false" => Some(Expr::Bool(false)),
                        "null" => Some(Expr::Null),
                        _ => None,
                    };
                    if let Some(lit) = literal {
                        self.bump();
                        return Ok(lit);
                    }
                }
                self.bump();
                self.parse_path(name)
            }
            Tok::Var(name) => self.parse_var(&name),
            Tok::LParen => {
                let saved = self.depth;
                self.bump();
                self.enter()?;
                if *self.peek() == Tok::RParen {
                    return Err(self.err("unsupported empty parentheses '()'"));
                }
                let inner = self.parse_or()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.unexpected(false));
                }
                self.bump();
                self.depth = saved;
                Ok(inner)
            }
            _ => Err(self.unexpected(true)),
        }
    }

    fn parse_var(&mut self, name: &str) -> Result<Expr, String> {
        let at = self.at();
        if *self.peek_at(1) != Tok::LParen {
            return Err(match name {
                "" => self.err("unsupported context reference '$'"),
                "$" => self.err("unsupported root reference '$$'"),
                _ => self.err(&format!("unsupported variable reference '${name}'")),
            });
        }
        if let Some(&(_, func, arity)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) {
            self.bump();
            return self.parse_call(func, &format!("${name}"), arity, at);
        }
        Err(match name {
            "" | "$" => self.err("unsupported call of a context reference"),
            "eval" => self.err("unsupported function '$eval()'"),
            "apiCtx" | "storageType" | "urlParameter" | "xpath" => self.err(&format!(
                "unsupported IBM extension '${name}()' (wsgate implements $header, $httpVerb, \
                 $queryParameter, $operationPath, $operationID, $statusCode, $exists, $not, \
                 $isWebSocket)"
            )),
            _ => self.err(&format!("unsupported function '${name}()'")),
        })
    }

    /// At the '(' after a function name.
    fn parse_call(
        &mut self,
        func: Func,
        name: &str,
        arity: usize,
        at: usize,
    ) -> Result<Expr, String> {
        let saved = self.depth;
        self.bump(); // '('
        self.enter()?;
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
        } else {
            loop {
                args.push(self.parse_or()?);
                match self.peek() {
                    Tok::Comma => self.bump(),
                    Tok::RParen => {
                        self.bump();
                        break;
                    }
                    _ => return Err(self.unexpected(false)),
                }
            }
        }
        self.depth = saved;
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            return Err(format!(
                "{name}() takes {arity} argument{plural}, not {} at {at}",
                args.len()
            ));
        }
        Ok(Expr::Call {
            func,
            at,
            arg: args.pop().map(Box::new),
        })
    }

    /// After the first step `first`.
    fn parse_path(&mut self, first: String) -> Result<Expr, String> {
        let mut steps = vec![first];
        while *self.peek() == Tok::Dot {
            self.bump();
            match self.peek().clone() {
                Tok::Name(n, _) => {
                    steps.push(n);
                    self.bump();
                }
                Tok::Other("*") => return Err(self.err("unsupported wildcard path step '*'")),
                Tok::Other("**") => return Err(self.err("unsupported descendant wildcard '**'")),
                Tok::Other("%") => return Err(self.err("unsupported parent operator '%'")),
                Tok::Var(_) => return Err(self.err("unsupported variable as a path step")),
                Tok::LParen | Tok::LBracket | Tok::Other("{") => {
                    return Err(self.err("unsupported expression as a path step"));
                }
                Tok::Str(_) => {
                    return Err(self.err("unsupported quoted path step (use `backquotes`)"));
                }
                _ => return Err(self.unexpected(true)),
            }
            if steps.len() > MAX_PATH_STEPS {
                return Err(self.err(&format!("path longer than {MAX_PATH_STEPS} steps")));
            }
        }
        Ok(Expr::Path(steps))
    }

    /// Describe the current token where it cannot stand. `operand` is true where an operand
    /// was expected, which decides between e.g. wildcard and multiplication for '*'.
    fn unexpected(&self, operand: bool) -> String {
        let what: String = match self.peek() {
            Tok::Eof if operand => "expected an operand, found the end".into(),
            Tok::Eof => "unexpected end of condition".into(),
            Tok::Other(op) => describe_op(op, operand).into(),
            Tok::Minus => {
                let mut s = String::from("unsupported operator '-' (arithmetic)");
                if self.minus_joins_names() {
                    s.push_str("; a name containing '-' must be backquoted, e.g. `x-foo`");
                }
                s
            }
            Tok::LBracket if operand => {
                "unsupported array constructor '[...]' (allowed only after 'in')".into()
            }
            Tok::LBracket => "unsupported array index or filter '[...]'".into(),
            Tok::LParen => "unsupported call of an expression '('".into(),
            Tok::Dot => "unsupported path step after a non-path '.'".into(),
            Tok::RParen | Tok::RBracket | Tok::Comma if operand => "expected an operand".into(),
            Tok::RParen => "unmatched ')'".into(),
            Tok::RBracket => "unmatched ']'".into(),
            Tok::Comma => "unexpected ','".into(),
            Tok::Cmp(_) if operand => "expected an operand before the comparison".into(),
            Tok::Cmp(_) => "unexpected comparison".into(),
            Tok::Name(n, _) => format!("unexpected name '{n}' (missing operator?)"),
            Tok::Var(v) => format!("unexpected '${v}' (missing operator?)"),
            Tok::Str(_) | Tok::Num(_) => "unexpected literal (missing operator?)".into(),
        };
        self.err(&what)
    }

    /// `x-foo` written without backquotes: a '-' with a name character right on each side.
    fn minus_joins_names(&self) -> bool {
        let Some(tok) = self.tokens.get(self.i) else {
            return false;
        };
        let bytes = self.src.as_bytes();
        let before = tok.start.checked_sub(1).and_then(|p| bytes.get(p));
        let after = bytes.get(tok.end);
        before.is_some_and(|&b| is_name_byte(b)) && after.is_some_and(|&b| is_name_byte(b))
    }
}

fn describe_op(op: &str, operand: bool) -> &'static str {
    match op {
        "*" if operand => "unsupported wildcard '*'",
        "*" | "+" | "%" => "unsupported arithmetic operator",
        "/" if operand => "unsupported regular expression literal '/.../'",
        "/" => "unsupported arithmetic operator '/'",
        "&" => "unsupported string concatenation '&'",
        "**" => "unsupported descendant wildcard '**'",
        ".." => "unsupported range operator '..'",
        "?" | ":" => "unsupported conditional operator '? :'",
        "??" | "?:" => "unsupported default operator '??'/'?:'",
        ":=" => "unsupported variable binding ':='",
        "~>" => "unsupported function chain '~>'",
        "~" => "unsupported operator '~'",
        "@" => "unsupported context binding '@'",
        "#" => "unsupported positional binding '#'",
        "^" => "unsupported sort '^(...)'",
        "{" if operand => "unsupported object constructor '{...}'",
        "{" => "unsupported grouping '{...}'",
        "}" => "unmatched '}'",
        "|" => "unsupported transform '|...|'",
        ";" => "unsupported expression block ';'",
        "==" => "unsupported operator '==' (JSONata equality is '=')",
        "!" => "unsupported operator '!' (use not(...))",
        "&&" => "unsupported operator '&&' (use 'and')",
        "||" => "unsupported operator '||' (use 'or')",
        _ => "unsupported operator",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mock {
        vars: HashMap<String, Value<'static>>,
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        op_path: Option<String>,
        op_id: Option<String>,
        status: Option<u16>,
        websocket: bool,
    }

    impl Mock {
        fn upgrade() -> Mock {
            let mut m = Mock {
                websocket: true,
                ..Mock::default()
            };
            m.set("request.verb", Value::Str("GET".into()));
            m.set("request.websocket", Value::Bool(true));
            m.headers.push(("Upgrade".into(), "websocket".into()));
            m.headers.push(("X-Custom".into(), "yes".into()));
            m
        }

        fn plain_post() -> Mock {
            let mut m = Mock::default();
            m.set("request.verb", Value::Str("POST".into()));
            m.set("request.websocket", Value::Bool(false));
            m
        }

        fn set(&mut self, path: &str, v: Value<'static>) {
            self.vars.insert(path.to_string(), v);
        }
    }

    impl Context for Mock {
        fn path(&self, path: &[&str]) -> Value<'_> {
            if let ["message", "headers", name] = path {
                return self
                    .header(name)
                    .map_or(Value::Undefined, |v| Value::Str(Cow::Borrowed(v)));
            }
            self.vars
                .get(&path.join("."))
                .cloned()
                .unwrap_or(Value::Undefined)
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn query_parameter(&self, name: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
        fn operation_path(&self) -> Option<&str> {
            self.op_path.as_deref()
        }
        fn operation_id(&self) -> Option<&str> {
            self.op_id.as_deref()
        }
        fn status_code(&self) -> Option<u16> {
            self.status
        }
        fn is_websocket(&self) -> bool {
            self.websocket
        }
    }

    fn compile(src: &str) -> Condition {
        match Condition::compile(src) {
            Ok(c) => c,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn check(src: &str, ctx: &Mock) -> bool {
        match compile(src).eval(ctx) {
            Ok(b) => b,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn eval_err(src: &str, ctx: &Mock) -> EvalError {
        match compile(src).eval(ctx) {
            Ok(b) => panic!("{src} evaluated to {b}"),
            Err(e) => e,
        }
    }

    fn compile_err(src: &str) -> String {
        match Condition::compile(src) {
            Ok(c) => panic!("{src} compiled: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn seed_recipe_conditions() {
        let ws = Mock::upgrade();
        let post = Mock::plain_post();
        for src in [
            "request.websocket",
            "request.websocket = true",
            "$isWebSocket()",
            "$httpVerb() = 'GET' and $header('Upgrade') = 'websocket'",
        ] {
            assert!(check(src, &ws), "{src}");
            assert!(!check(src, &post), "{src}");
        }
        assert_eq!(compile("request.websocket").source(), "request.websocket");
    }

    #[test]
    fn literals() {
        let ctx = Mock::default();
        assert!(check("'a' = \"a\"", &ctx));
        assert!(check(
            "\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\" = 'q\"\\\\/\\b\\f\\n\\r\\t'",
            &ctx
        ));
        assert!(check("'\\u00e9' = 'é'", &ctx));
        assert!(check("'\\ud83d\\ude00' = '😀'", &ctx));
        assert!(check("1 = 1.0", &ctx));
        assert!(check("1e3 = 1000", &ctx));
        assert!(check("2.5E-1 = 0.25", &ctx));
        assert!(check("-3 < 0", &ctx));
        assert!(check("true", &ctx));
        assert!(!check("false", &ctx));
        assert!(!check("null", &ctx));
        assert!(check("null = null", &ctx));
        assert!(check("true = true and false = false", &ctx));
        assert!(check("/* comment */ true", &ctx));
    }

    #[test]
    fn truthiness() {
        let mut ctx = Mock::default();
        ctx.set("v.empty", Value::Str("".into()));
        ctx.set("v.text", Value::Str("x".into()));
        ctx.set("v.zero", Value::Number(0.0));
        ctx.set("v.one", Value::Number(1.0));
        ctx.set("v.null", Value::Null);
        ctx.set("v.false", Value::Bool(false));
        ctx.set("v.true", Value::Bool(true));
        for (path, want) in [
            ("v.empty", false),
            ("v.text", true),
            ("v.zero", false),
            ("v.one", true),
            ("v.null", false),
            ("v.false", false),
            ("v.true", true),
            ("v.missing", false),
            ("'s'", true),
            ("''", false),
            ("0", false),
            ("-1", true),
        ] {
            assert_eq!(check(path, &ctx), want, "{path}");
        }
    }

    #[test]
    fn comparisons() {
        let mut ctx = Mock::upgrade();
        ctx.status = Some(404);
        let cases = [
            ("request.verb = 'GET'", true),
            ("request.verb != 'GET'", false),
            ("request.verb != 'POST'", true),
            ("$statusCode() = 404", true),
            ("$statusCode() < 500", true),
            ("$statusCode() <= 404", true),
            ("$statusCode() > 404", false),
            ("$statusCode() >= 404", true),
            ("'abc' < 'abd'", true),
            ("'b' > 'abc'", true),
            ("'a' <= 'a'", true),
            ("'a' >= 'b'", false),
            // Different types are never equal, and always unequal.
            ("1 = '1'", false),
            ("1 != '1'", true),
            ("true = 'true'", false),
            ("null = false", false),
            // Undefined on either side: '=' and '!=' are both false.
            ("request.missing = 'x'", false),
            ("request.missing != 'x'", false),
            ("request.missing = request.missing", false),
            // Ordering with undefined is undefined, hence false, not an error.
            ("request.missing < 3", false),
            ("3 >= request.missing", false),
        ];
        for (src, want) in cases {
            assert_eq!(check(src, &ctx), want, "{src}");
        }
    }

    #[test]
    fn ordering_type_mismatch_is_an_eval_error() {
        let ctx = Mock::upgrade();
        let e = eval_err("1 < 'a'", &ctx);
        assert_eq!(e.offset, 2);
        assert!(e.to_string().contains("number against a string"));
        assert!(
            eval_err("request.websocket > 0", &ctx)
                .message
                .contains("only numbers")
        );
        assert!(eval_err("null <= 1", &ctx).message.contains("only numbers"));
        // Short-circuiting skips the faulty side, as in JSONata.
        assert!(!check("false and 1 < 'a'", &ctx));
        assert!(check("true or 1 < 'a'", &ctx));
        let e = eval_err("$header(1)", &ctx);
        assert!(e.message.contains("$header()"));
        assert_eq!(e.offset, 0);
        assert!(
            eval_err("$queryParameter(true)", &ctx)
                .message
                .contains("string")
        );
    }

    #[test]
    fn and_or_precedence() {
        let ctx = Mock::default();
        // and binds tighter: true or (false and false)
        assert!(check("true or false and false", &ctx));
        // (false and true) or true
        assert!(check("false and true or true", &ctx));
        assert!(!check("(true or false) and false", &ctx));
        assert!(check("1 = 1 and 2 = 2", &ctx));
        assert!(check("1 = 2 or 2 = 2", &ctx));
        assert!(!check("1 = 2 or 2 = 3 or 3 = 4", &ctx));
        assert!(check("true and true and true", &ctx));
        // Comparisons chain left to right: (1 = 1) = true.
        assert!(check("1 = 1 = true", &ctx));
    }

    #[test]
    fn not_forms() {
        let ctx = Mock::upgrade();
        assert!(check("not(request.verb = 'POST')", &ctx));
        assert!(!check("$not(request.websocket)", &ctx));
        assert!(check("not(false) and not(0) and not('')", &ctx));
        assert!(check("not(not(true))", &ctx));
        // JSONata: $not(undefined) is undefined, which is false.
        assert!(!check("not(request.missing)", &ctx));
        assert!(check("not($exists(request.missing))", &ctx));
    }

    #[test]
    fn in_lists() {
        let ctx = Mock::upgrade();
        assert!(check("request.verb in ['GET', 'HEAD']", &ctx));
        assert!(!check("request.verb in ['POST', 'PUT']", &ctx));
        assert!(!check("request.verb in []", &ctx));
        assert!(check("$httpVerb() in ['PUT', $httpVerb()]", &ctx));
        assert!(check("2 in [1, 2, 3]", &ctx));
        assert!(!check("'2' in [1, 2, 3]", &ctx));
        assert!(check("null in [null]", &ctx));
        assert!(!check("request.missing in ['x', request.missing]", &ctx));
        assert!(check("request.verb in 'GET'", &ctx));
        assert!(check("request.verb in ['GET'] and true", &ctx));
    }

    #[test]
    fn helpers() {
        let mut ctx = Mock::upgrade();
        ctx.query.push(("id".into(), "42".into()));
        ctx.op_path = Some("/chat".into());
        ctx.op_id = Some("getChat".into());
        ctx.status = Some(200);
        let cases = [
            ("$header('upgrade') = 'websocket'", true),
            ("$header(\"X-CUSTOM\") = 'yes'", true),
            ("$exists($header('X-Missing'))", false),
            ("$exists($header('x-custom'))", true),
            ("$queryParameter('id') = '42'", true),
            ("$queryParameter('ID') = '42'", false),
            ("$operationPath() = '/chat'", true),
            ("$operationID() = 'getChat'", true),
            ("$statusCode() = 200", true),
            ("$httpVerb() = 'GET'", true),
            ("$exists(request.verb)", true),
            ("$exists(request.nothing)", false),
            ("$exists(null)", true),
            ("$exists($header(request.nothing))", false),
            ("message.headers.`x-custom` = 'yes'", true),
            ("message.headers.`X-Custom`", true),
            ("message.headers.Upgrade = 'websocket'", true),
        ];
        for (src, want) in cases {
            assert_eq!(check(src, &ctx), want, "{src}");
        }
        let empty = Mock::default();
        for src in [
            "$operationPath()",
            "$operationID()",
            "$statusCode()",
            "$httpVerb()",
            "$isWebSocket()",
            "$header('x')",
            "$queryParameter('x')",
        ] {
            assert!(!check(src, &empty), "{src}");
        }
    }

    #[test]
    fn unsupported_constructs_are_compile_errors() {
        let cases: &[(&str, &str, usize)] = &[
            ("request.verb & 'x'", "string concatenation '&'", 13),
            ("$statusCode() + 1 = 2", "arithmetic", 14),
            ("$statusCode() * 2", "arithmetic", 14),
            ("request.* = 'x'", "wildcard path step", 8),
            ("* = 1", "wildcard", 0),
            ("request.**", "descendant wildcard", 8),
            ("$eval('1')", "$eval()", 0),
            (
                "$lowercase(request.verb) = 'get'",
                "unsupported function '$lowercase()'",
                0,
            ),
            ("$xpath('/a')", "IBM extension", 0),
            ("function($x){$x}", "lambda", 0),
            ("request.headers[0]", "array index or filter", 15),
            ("request.verb ~> $uppercase()", "function chain", 13),
            ("request.verb = /GET/", "regular expression", 15),
            ("$statusCode() > 1 ? true : false", "conditional", 18),
            ("$x := 1", "variable reference '$x'", 0),
            ("$", "context reference '$'", 0),
            ("$$.request", "root reference '$$'", 0),
            ("{'a': 1}", "object constructor", 0),
            ("[1, 2]", "array constructor", 0),
            ("1 in [1..3]", "range", 7),
            (
                "request.verb == 'GET'",
                "'==' (JSONata equality is '=')",
                13,
            ),
            ("request.verb = 'GET' && true", "use 'and'", 21),
            ("!request.websocket", "use not", 0),
            ("message.headers.x-custom = 'a'", "must be backquoted", 17),
            ("-request.count", "unary minus", 0),
            ("request.verb; true", "block", 12),
            ("request.a@$x", "context binding", 9),
            ("request.a#$i", "positional binding", 9),
            (
                "lowercase(request.verb)",
                "functions are written '$name('",
                0,
            ),
            ("(request.verb)[0]", "array index", 14),
            ("('a').b", "non-path", 5),
            ("request.\"verb\"", "backquotes", 8),
            ("'abc", "unterminated string", 0),
            ("'\\q'", "unsupported escape", 1),
            ("'\\ud800'", "surrogate", 1),
            ("`abc", "unterminated backquoted", 0),
            ("/* x", "unterminated comment", 0),
            ("request.verb \\ 1", "unexpected character", 13),
            ("", "expected an operand", 0),
            ("request.verb =", "expected an operand", 14),
            ("(true", "unexpected end", 5),
            ("true)", "unmatched ')'", 4),
            ("true true", "unexpected name 'true'", 5),
            ("()", "empty parentheses", 1),
            ("$header()", "$header() takes 1 argument, not 0", 0),
            ("$httpVerb('x')", "takes 0 arguments, not 1", 0),
            ("$header('a', 'b')", "takes 1 argument, not 2", 0),
            ("1e999 = 1", "out of range", 0),
            ("é & 1", "string concatenation", 2),
        ];
        for (src, what, at) in cases {
            let e = compile_err(src);
            assert!(e.contains(what), "{src}: {e}");
            assert!(e.ends_with(&format!(" at {at}")), "{src}: {e}");
        }
    }

    #[test]
    fn depth_limit() {
        let deep = format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(compile_err(&deep).contains("nested deeper"));
        let nots = format!("{}true{}", "not(".repeat(100_000), ")".repeat(100_000));
        assert!(compile_err(&nots).contains("nested deeper"));
        let lists = format!("1 in {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Condition::compile(&lists).is_err());
        let chain = format!("1{}", " = 1".repeat(100_000));
        assert!(compile_err(&chain).contains("nested deeper"));
        // Long and/or chains stay flat and are fine.
        let ands = vec!["true"; 100_000].join(" and ");
        assert!(check(&ands, &Mock::default()));
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(check(&ok, &Mock::default()));
        let long_path = vec!["a"; MAX_PATH_STEPS + 1].join(".");
        assert!(compile_err(&long_path).contains("path longer"));
        let path = vec!["a"; MAX_PATH_STEPS].join(".");
        assert!(!check(&path, &Mock::default()));
    }

    #[test]
    fn keywords_and_names() {
        let mut ctx = Mock::default();
        ctx.set("request.and", Value::Bool(true));
        ctx.set("x.true", Value::Str("t".into()));
        ctx.set("x.or", Value::Str("o".into()));
        assert!(check("request.and", &ctx));
        assert!(check("x.`true` = 't'", &ctx));
        assert!(check("x.or = 'o' or false", &ctx));
        assert!(!check("`true`", &ctx), "a backquoted name is a path");
    }

    #[test]
    fn expand_refs_replaces_references() {
        let props = |name: &str| match name {
            "verb" => Some("GET".to_string()),
            "api.properties.q" => Some("a\"b\\c'd\n".to_string()),
            "tick" => Some("x`y".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_refs("request.verb = $(verb)", &props),
            "request.verb = \"GET\""
        );
        assert_eq!(expand_refs("$( verb )", &props), "\"GET\"");
        assert_eq!(expand_refs("$(missing) = ''", &props), "\"\" = ''");
        assert_eq!(
            expand_refs("x = $(api.properties.q)", &props),
            "x = \"a\\\"b\\\\c'd\\n\""
        );
        // Inside a string the value joins that string.
        assert_eq!(expand_refs("'v$(verb)!'", &props), "'vGET!'");
        assert_eq!(
            expand_refs("'$(api.properties.q)'", &props),
            "'a\\\"b\\\\c\\u0027d\\n'"
        );
        assert_eq!(
            expand_refs("\"$(api.properties.q)\"", &props),
            "\"a\\\"b\\\\c'd\\n\""
        );
        assert_eq!(expand_refs("x.`$(tick)`", &props), "x.`xy`");
        // An escaped quote does not end the string.
        assert_eq!(expand_refs("'a\\\"$(verb)'", &props), "'a\\\"GET'");
        // `$$(` is a literal `$(`; an unterminated reference stays as written.
        assert_eq!(expand_refs("'$$(verb)'", &props), "'$(verb)'");
        assert_eq!(expand_refs("$(verb", &props), "$(verb");
        assert_eq!(expand_refs("é$(verb)é", &props), "é\"GET\"é");

        let cond = |src: &str| compile(&expand_refs(src, &props));
        let ctx = Mock::upgrade();
        assert!(cond("request.verb = $(verb)").eval(&ctx).unwrap_or(false));
        assert!(
            cond("x = $(api.properties.q) or true")
                .eval(&ctx)
                .unwrap_or(false)
        );
        assert!(
            cond("'$(api.properties.q)' = $(api.properties.q)")
                .eval(&ctx)
                .unwrap_or(false)
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: &[&str] = &[
            "request",
            ".",
            "verb",
            "`x-y`",
            "'a'",
            "\"b\\u00e9\"",
            "1",
            "-",
            "2.5e3",
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            " and ",
            " or ",
            " in ",
            "[",
            "]",
            ",",
            "(",
            ")",
            "not",
            "$header",
            "$exists",
            "$httpVerb",
            "$",
            "true",
            "null",
            "&",
            "*",
            "/",
            "?",
            ":",
            "{",
            "}",
            "'",
            "\\",
            "é",
            "/*",
            "*/",
            "$statusCode()",
        ];
        let ctx = Mock::upgrade();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut compiled = 0;
        for _ in 0..50_000 {
            let mut src = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                src.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Ok(c) = Condition::compile(&src) {
                compiled += 1;
                let _ = c.eval(&ctx);
            }
            let _ = expand_refs(&src, &|_| Some("v'\"`".to_string()));
        }
        assert!(
            compiled > 100,
            "the generator should hit valid conditions too"
        );
    }
}
