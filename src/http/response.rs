//! The gateway's own HTTP answers: API Connect style JSON errors (spec §4.3) and the helpers
//! shared by every response the gateway writes.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};

use super::head::is_tchar;
use crate::json::write::{escaped, escaped_len};

/// The reason phrase of a status; a generic phrase per class for statuses not listed.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// Whether `name` is a valid header name (an RFC 9110 token).
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

/// Whether `value` can go into a header line: no CR, LF or other control bytes except tab.
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Appends `name: value\r\n`. A name or value that would break the head (CR/LF, control
/// bytes, a non-token name) is left out and logged, so that no caller can inject headers.
/// Returns whether the line was written.
pub fn write_header(out: &mut Vec<u8>, name: &str, value: &str) -> bool {
    if !is_token(name) || !is_field_value(value) {
        log::warn!("header {name:?} left out of a response: invalid name or value");
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    true
}

/// Writes a status line; a status outside 100..=999 is written as 500.
fn status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let reason = if is_field_value(reason) { reason } else { "" };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes a complete error response in the API Connect format (spec §4.3):
/// `{"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"..."}` with
/// `Content-Type`, `Content-Length`, `X-Global-Transaction-ID`, `Connection: close` and then
/// `extra_headers` (limit headers, `Retry-After`, `Sec-WebSocket-Version` for a 426, ...).
pub fn error(
    out: &mut Vec<u8>,
    status: u16,
    more_information: &str,
    txn_id: &str,
    extra_headers: &[(&str, &str)],
) {
    error_with_reason(
        out,
        status,
        reason(status),
        more_information,
        txn_id,
        extra_headers,
    );
}

/// [`error`] with an explicit reason phrase (a `throw` with `error-status-reason`); the phrase
/// is both the status line's reason and `httpMessage`.
pub fn error_with_reason(
    out: &mut Vec<u8>,
    status: u16,
    reason_phrase: &str,
    more_information: &str,
    txn_id: &str,
    extra_headers: &[(&str, &str)],
) {
    // A status that cannot be written is an internal error, with its standard phrase.
    let (status, reason_phrase) = if (100..=999).contains(&status) {
        (status, reason_phrase)
    } else {
        (500, reason(500))
    };
    let reason_phrase = if is_field_value(reason_phrase) {
        reason_phrase
    } else {
        reason(status)
    };
    const A: &str = "{\"httpCode\":\"";
    const B: &str = "\",\"httpMessage\":\"";
    const C: &str = "\",\"moreInformation\":\"";
    const D: &str = "\"}";
    let body_len = A.len()
        + 3
        + B.len()
        + escaped_len(reason_phrase)
        + C.len()
        + escaped_len(more_information)
        + D.len();

    status_line(out, status, reason_phrase);
    out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
    push_u64(out, body_len as u64);
    out.extend_from_slice(b"\r\n");
    write_header(out, "X-Global-Transaction-ID", txn_id);
    out.extend_from_slice(b"Connection: close\r\n");
    for (name, value) in extra_headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(A.as_bytes());
    push_u64(out, u64::from(status));
    out.extend_from_slice(B.as_bytes());
    escaped(out, reason_phrase);
    out.extend_from_slice(C.as_bytes());
    escaped(out, more_information);
    out.extend_from_slice(D.as_bytes());
}

/// Generator of `X-Global-Transaction-ID` values: a per-process random prefix and a counter,
/// 24 lower-case hex digits in all (the length of the ids API Connect shows).
#[derive(Debug, Clone)]
pub struct TxnIds {
    prefix: u32,
    counter: u64,
}

impl TxnIds {
    /// A generator with the given prefix (tests, or a driver that has its own randomness).
    pub fn new(prefix: u32) -> TxnIds {
        TxnIds { prefix, counter: 0 }
    }

    /// A generator with a random prefix, from the standard library's per-process hash keys
    /// mixed with the time and the process id.
    pub fn random() -> TxnIds {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        h.write_u32(std::process::id());
        let x = h.finish();
        TxnIds::new((x ^ (x >> 32)) as u32)
    }

    /// The next id; the returned `String` is the only allocation.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mut s = String::with_capacity(24);
        // Writing to a String cannot fail.
        let _ = write!(s, "{:08x}{:016x}", self.prefix, self.counter);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_response;

    fn split(out: &[u8]) -> (String, String) {
        let s = String::from_utf8(out.to_vec()).unwrap();
        let (h, b) = s.split_once("\r\n\r\n").unwrap();
        (h.to_owned(), b.to_owned())
    }

    #[test]
    fn error_401_exact_bytes() {
        let mut out = Vec::new();
        error(&mut out, 401, "Invalid client id or secret.", "abc123", &[]);
        let body = r#"{"httpCode":"401","httpMessage":"Unauthorized","moreInformation":"Invalid client id or secret."}"#;
        let expected = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-Global-Transaction-ID: abc123\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn error_parses_and_length_matches_with_escapes() {
        let text = "quote \" back \\ nl \n cr \r tab \t bell \u{7} é ☃";
        let mut out = b"prefix kept".to_vec();
        error(
            &mut out,
            429,
            text,
            "t1",
            &[
                ("X-RateLimit-Limit", "name=default,100;"),
                ("Retry-After", "3"),
            ],
        );
        let out = &out[b"prefix kept".len()..];
        let (head, n) = parse_response(out).unwrap().unwrap();
        assert_eq!(head.status(), 429);
        assert_eq!(head.reason(), "Too Many Requests");
        assert_eq!(head.header("content-type"), Some("application/json"));
        assert_eq!(head.header("connection"), Some("close"));
        assert_eq!(head.header("x-global-transaction-id"), Some("t1"));
        assert_eq!(head.header("x-ratelimit-limit"), Some("name=default,100;"));
        assert_eq!(head.header("retry-after"), Some("3"));
        let body = std::str::from_utf8(&out[n..]).unwrap();
        assert_eq!(
            head.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(
            body,
            "{\"httpCode\":\"429\",\"httpMessage\":\"Too Many Requests\",\"moreInformation\":\
             \"quote \\\" back \\\\ nl \\n cr \\r tab \\t bell \\u0007 é ☃\"}"
        );
    }

    #[test]
    fn status_426_carries_the_version() {
        let mut out = Vec::new();
        error(
            &mut out,
            426,
            "Unsupported WebSocket version",
            "t",
            &[("Sec-WebSocket-Version", "13")],
        );
        let (head, _) = parse_response(&out).unwrap().unwrap();
        assert_eq!(head.status(), 426);
        assert_eq!(head.reason(), "Upgrade Required");
        assert_eq!(head.header("sec-websocket-version"), Some("13"));
    }

    #[test]
    fn injected_headers_are_left_out() {
        let mut out = Vec::new();
        error(
            &mut out,
            400,
            "x",
            "t\r\nSet-Cookie: a=b",
            &[
                ("X-Ok", "1"),
                ("X-Bad", "a\r\nSet-Cookie: x"),
                ("Bad Name", "v"),
                ("", "v"),
            ],
        );
        let (h, b) = split(&out);
        assert!(!h.contains("Set-Cookie"));
        assert!(!h.contains("X-Global-Transaction-ID"));
        assert!(h.contains("\r\nX-Ok: 1"));
        assert!(!h.contains("X-Bad") && !h.contains("Bad Name"));
        assert!(b.starts_with("{\"httpCode\":\"400\""));
    }

    #[test]
    fn custom_reason_and_odd_statuses() {
        let mut out = Vec::new();
        error_with_reason(&mut out, 418, "Teapot \"here\"", "m", "t", &[]);
        let (h, b) = split(&out);
        assert!(h.starts_with("HTTP/1.1 418 Teapot \"here\"\r\n"));
        assert!(b.contains("\"httpMessage\":\"Teapot \\\"here\\\"\""));
        let mut out = Vec::new();
        error(&mut out, 7, "m", "t", &[]);
        assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        let mut out = Vec::new();
        error_with_reason(&mut out, 400, "a\r\nb", "m", "t", &[]);
        assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }

    #[test]
    fn reasons() {
        for (s, r) in [
            (101, "Switching Protocols"),
            (200, "OK"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (413, "Payload Too Large"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
            (499, "Client Error"),
            (599, "Server Error"),
        ] {
            assert_eq!(reason(s), r);
        }
    }

    #[test]
    fn txn_ids_are_unique_and_prefixed() {
        let mut ids = TxnIds::new(0xdead_beef);
        let a = ids.next();
        let b = ids.next();
        assert_eq!(a, "deadbeef0000000000000001");
        assert_eq!(b, "deadbeef0000000000000002");
        let mut r = TxnIds::random();
        let x = r.next();
        assert_eq!(x.len(), 24);
        assert!(x.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(x, r.next());
    }
}
