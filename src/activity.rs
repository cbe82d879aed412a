//! The activity log (spec §1.9): one JSON line per transaction of an API whose `activity-log`
//! is enabled. A plain call or a refused request is one transaction; a WebSocket connection is
//! one transaction from its upgrade request to its close, written when it closes.
//!
//! [`Record`] collects what a transaction did while it runs and writes itself as one line at
//! its end. It never holds a body or a frame payload: `payload` content logs what `header`
//! logs. "In" is always what came from the client, "out" what went to the client.

use crate::http::head::{RequestHead, parse_response};
use crate::model::{ApiIdx, AppIdx, LogContent, Model, PlanIdx};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

/// Who ended a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    Client,
    Backend,
    Gateway,
}

impl Closer {
    fn name(self) -> &'static str {
        match self {
            Closer::Client => "client",
            Closer::Backend => "backend",
            Closer::Gateway => "gateway",
        }
    }
}

/// How a WebSocket connection ended: the first close, by whom, with which code (1006 when a
/// side went away without a close frame), and the limit that made the gateway close it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub by: Closer,
    pub code: u16,
    pub limit: Option<Box<str>>,
}

/// Request and response headers, kept only when the API logs headers.
#[derive(Debug, Default)]
struct Headers {
    request: Vec<(String, String)>,
    response: Vec<(String, String)>,
}

/// One transaction in progress.
#[derive(Debug)]
pub struct Record {
    pub api: ApiIdx,
    app: Option<AppIdx>,
    plan: Option<PlanIdx>,
    txn: [u8; 24],
    txn_len: u8,
    /// The status of the answer the client got (0: none yet).
    pub status: u16,
    /// When the request came, in milliseconds since the Unix epoch (what the log shows).
    wall_ms: u64,
    started: Instant,
    /// From the request to the answer's head, in microseconds (`NO_LATENCY`: no answer yet).
    /// A record lives as long as its WebSocket, so its fields are kept narrow.
    latency_us: u32,
    /// `METHOD path` (without the query, which may carry credentials).
    request: Text,
    /// The address `X-Forwarded-For` names when the peer is a trusted proxy; otherwise the
    /// peer is the client and this is `None`. Boxed: most gateways trust no proxy, and their
    /// records stay 8 bytes larger, not 24.
    forwarded_for: Option<Box<IpAddr>>,
    /// Bytes from the client, bytes to the client.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// WebSocket data messages from the client, to the client.
    pub messages_in: u64,
    pub messages_out: u64,
    pub websocket: bool,
    close: Option<Close>,
    /// Kept until the answer's status tells whether this record will log them.
    headers: Option<Box<Headers>>,
    /// Whether the success and the error content log headers.
    headers_on: [bool; 2],
}

/// `METHOD path`, inside the record when it fits, as the paths of most WebSocket APIs do, so
/// that a record that lives as long as its connection is one allocation; boxed otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<str>),
}

/// What fits beside the tag in the room of the boxed form and the record's padding.
const INLINE: usize = 38;

impl Text {
    fn new(method: &str, path: &str) -> Text {
        let len = method.len() + 1 + path.len();
        if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..method.len()].copy_from_slice(method.as_bytes());
            bytes[method.len()] = b' ';
            bytes[method.len() + 1..len].copy_from_slice(path.as_bytes());
            return Text::Inline {
                len: len as u8,
                bytes,
            };
        }
        let mut s = String::with_capacity(len);
        s.push_str(method);
        s.push(' ');
        s.push_str(path);
        Text::Boxed(s.into_boxed_str())
    }

    fn as_str(&self) -> &str {
        match self {
            // Whole `str`s went in, so the bytes are UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Text::Boxed(s) => s,
        }
    }
}

/// Header values that are secrets: logged as `[redacted]`.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// `Record::latency_us` before the answer's head.
const NO_LATENCY: u32 = u32::MAX;

impl Record {
    /// Starts the record of a request routed to `api`, whose head (`raw().len()` bytes) has
    /// just been read. Headers are kept when the API may log them. `forwarded_for` is the
    /// client a trusted proxy named (see [`crate::http::forwarded::client_address`]).
    pub fn new(
        model: &Model,
        api: ApiIdx,
        head: &RequestHead,
        forwarded_for: Option<IpAddr>,
        now: Instant,
    ) -> Record {
        let a = &model.apis[api as usize];
        let headers_on = [a.activity_log.success, a.activity_log.error]
            .map(|c| matches!(c, LogContent::Header | LogContent::Payload));
        let headers = headers_on.contains(&true).then(|| {
            let secret = |name: &str| {
                SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s))
                    || a.security.requirements.iter().any(|r| {
                        r.client_secret
                            .as_ref()
                            .is_some_and(|k| k.in_header && name.eq_ignore_ascii_case(&k.name))
                    })
            };
            Box::new(Headers {
                request: head
                    .headers_iter()
                    .map(|(n, v)| {
                        let v = if secret(n) { "[redacted]" } else { v };
                        (n.to_string(), v.to_string())
                    })
                    .collect(),
                response: Vec::new(),
            })
        });
        Record {
            api,
            app: None,
            plan: None,
            txn: [0; 24],
            txn_len: 0,
            status: 0,
            wall_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            started: now,
            latency_us: NO_LATENCY,
            request: Text::new(head.method(), head.path()),
            forwarded_for: forwarded_for.map(Box::new),
            bytes_in: head.raw().len() as u64,
            bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            websocket: false,
            close: None,
            headers,
            headers_on,
        }
    }

    /// The client's application and plan, once identified.
    pub fn caller(&mut self, app: Option<AppIdx>, plan: Option<PlanIdx>) {
        self.app = app;
        self.plan = plan;
    }

    pub fn set_txn(&mut self, txn: &str) {
        let n = txn.len().min(self.txn.len());
        self.txn[..n].copy_from_slice(&txn.as_bytes()[..n]);
        self.txn_len = n as u8;
    }

    /// The head of the answer that goes to the client (the gateway's own, a backend's
    /// rewritten one, or a 101): its status, its transaction id and, when kept, its headers.
    pub fn response_head(&mut self, head: &[u8], now: Instant) {
        let Ok(Some((resp, _))) = parse_response(head) else {
            return;
        };
        if resp.status() < 200 && resp.status() != 101 {
            return; // an interim answer (100 Continue); the final one follows
        }
        self.status = resp.status();
        self.websocket = self.status == 101;
        let us = now.saturating_duration_since(self.started).as_micros();
        self.latency_us = us.min(u128::from(NO_LATENCY - 1)) as u32;
        if let Some(txn) = resp.header("x-global-transaction-id") {
            self.set_txn(txn);
        }
        // The status decides the content: a WebSocket that logs no headers on success does
        // not keep them for its whole life.
        if !self.headers_on[usize::from(self.status >= 400)] {
            self.headers = None;
        }
        if let Some(h) = self.headers.as_mut() {
            h.response = resp
                .headers_iter()
                .map(|(n, v)| {
                    let secret = SECRET_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s));
                    let v = if secret { "[redacted]" } else { v };
                    (n.to_string(), v.to_string())
                })
                .collect();
        }
    }

    /// The head of an answer the gateway built itself, with the status and transaction id it
    /// wrote into it: the same as [`Record::response_head`], but the head is only parsed when
    /// this record keeps its headers.
    pub fn own_head(&mut self, status: u16, txn: &str, head: &[u8], now: Instant) {
        let keeps = self.headers.is_some() && self.headers_on[usize::from(status >= 400)];
        if keeps || (status < 200 && status != 101) {
            return self.response_head(head, now);
        }
        self.status = status;
        self.websocket = status == 101;
        let us = now.saturating_duration_since(self.started).as_micros();
        self.latency_us = us.min(u128::from(NO_LATENCY - 1)) as u32;
        self.set_txn(txn);
        self.headers = None;
    }

    /// Notes how the connection ends; only the first close counts.
    pub fn closing(&mut self, by: Closer, code: u16, limit: Option<&str>) {
        if self.close.is_none() {
            self.close = Some(Close {
                by,
                code,
                limit: limit.map(Into::into),
            });
        }
    }

    /// What the API logs of this transaction: its success content below 400, its error
    /// content otherwise (and when no answer was sent).
    pub fn content(&self, model: &Model) -> LogContent {
        let log = &model.apis[self.api as usize].activity_log;
        if !log.enabled {
            LogContent::None
        } else if self.status != 0 && self.status < 400 {
            log.success
        } else {
            log.error
        }
    }

    /// Appends the record as one JSON line.
    pub fn write(&self, model: &Model, peer: SocketAddr, now: Instant, out: &mut Vec<u8>) {
        use std::io::Write;
        let api = &model.apis[self.api as usize];
        let content = self.content(model);
        let (method, path) = self.request.as_str().split_once(' ').unwrap_or(("", ""));
        out.extend_from_slice(b"{\"timestamp\":\"");
        rfc3339(
            out,
            SystemTime::UNIX_EPOCH + Duration::from_millis(self.wall_ms),
        );
        out.extend_from_slice(b"\",\"transaction_id\":");
        json_str(
            out,
            std::str::from_utf8(&self.txn[..self.txn_len as usize]).unwrap_or(""),
        );
        out.extend_from_slice(b",\"api\":");
        json_str(out, &format!("{}:{}", api.name, api.version));
        out.extend_from_slice(b",\"method\":");
        json_str(out, method);
        out.extend_from_slice(b",\"path\":");
        json_str(out, path);
        out.extend_from_slice(b",\"application\":");
        match self.app.and_then(|a| model.applications.get(a as usize)) {
            Some(a) => json_str(out, &a.name),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"plan\":");
        match self.plan.and_then(|p| model.plans.get(p as usize)) {
            Some(p) => json_str(out, &p.name),
            None => out.extend_from_slice(b"null"),
        }
        match &self.forwarded_for {
            Some(client) => {
                let _ = write!(out, ",\"client\":\"{client}\",\"status\":");
            }
            None => {
                let _ = write!(out, ",\"client\":\"{peer}\",\"status\":");
            }
        }
        if self.status == 0 {
            out.extend_from_slice(b"null");
        } else {
            let _ = write!(out, "{}", self.status);
        }
        out.extend_from_slice(b",\"latency_ms\":");
        match self.latency_us {
            NO_LATENCY => out.extend_from_slice(b"null"),
            us => millis(out, Duration::from_micros(u64::from(us))),
        }
        out.extend_from_slice(b",\"duration_ms\":");
        millis(out, now.saturating_duration_since(self.started));
        let _ = write!(
            out,
            ",\"bytes_in\":{},\"bytes_out\":{}",
            self.bytes_in, self.bytes_out
        );
        if self.websocket {
            let _ = write!(
                out,
                ",\"messages_in\":{},\"messages_out\":{}",
                self.messages_in, self.messages_out
            );
            let gone = Close {
                by: Closer::Gateway,
                code: 1006,
                limit: None,
            };
            let close = self.close.as_ref().unwrap_or(&gone);
            let _ = write!(
                out,
                ",\"close_code\":{},\"closed_by\":\"{}\",\"closed_by_limit\":",
                close.code,
                close.by.name()
            );
            match &close.limit {
                Some(l) => json_str(out, l),
                None => out.extend_from_slice(b"null"),
            }
        }
        if matches!(content, LogContent::Header | LogContent::Payload)
            && let Some(h) = &self.headers
        {
            out.extend_from_slice(b",\"request_headers\":");
            json_pairs(out, &h.request);
            out.extend_from_slice(b",\"response_headers\":");
            json_pairs(out, &h.response);
        }
        out.extend_from_slice(b"}\n");
    }
}

fn millis(out: &mut Vec<u8>, d: Duration) {
    use std::io::Write;
    let _ = write!(out, "{}.{:03}", d.as_millis(), d.as_micros() % 1000);
}

fn json_pairs(out: &mut Vec<u8>, pairs: &[(String, String)]) {
    out.push(b'[');
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        json_str(out, n);
        out.push(b',');
        json_str(out, v);
        out.push(b']');
    }
    out.push(b']');
}

/// A JSON string literal.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    use std::io::Write;
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    use std::io::Write;
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_date(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        d.subsec_millis()
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01. Works in 400-year eras
/// (146,097 days each) that start on March 1st, so that the leap day ends a year.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: SystemTime) -> String {
        let mut out = Vec::new();
        rfc3339(&mut out, t);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(text(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(text(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(text(at(4_102_444_800, 0)), "2100-01-01T00:00:00.000Z");
        assert_eq!(
            text(at(1_795_737_600 + 3_723, 42)),
            "2026-11-27T01:02:03.042Z"
        );
    }

    fn record(headers: bool, now: Instant) -> Record {
        Record {
            api: 0,
            app: None,
            plan: None,
            txn: [0; 24],
            txn_len: 0,
            status: 0,
            wall_ms: 0,
            started: now,
            latency_us: NO_LATENCY,
            request: Text::new("GET", "/chat"),
            forwarded_for: None,
            bytes_in: 0,
            bytes_out: 0,
            messages_in: 0,
            messages_out: 0,
            websocket: false,
            close: None,
            headers: headers.then(Box::default),
            headers_on: [headers, headers],
        }
    }

    /// A head the gateway built gives the record the same fields whether it is parsed or its
    /// status and transaction id are taken as given.
    #[test]
    fn own_heads_are_recorded_like_parsed_ones() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(3);
        let heads: [(u16, &[u8]); 2] = [
            (
                101,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Global-Transaction-ID: t-42\r\n\r\n",
            ),
            (
                429,
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nSet-Cookie: a=b\r\n\
                  X-Global-Transaction-ID: t-42\r\n\r\n",
            ),
        ];
        for headers in [false, true] {
            for (status, head) in heads {
                let (mut given, mut parsed) = (record(headers, t0), record(headers, t0));
                given.own_head(status, "t-42", head, now);
                parsed.response_head(head, now);
                assert_eq!(given.status, status);
                assert_eq!(&given.txn[..usize::from(given.txn_len)], b"t-42");
                assert_eq!(
                    format!("{given:?}"),
                    format!("{parsed:?}"),
                    "status {status}, headers kept: {headers}"
                );
            }
        }
    }

    #[test]
    fn request_text_is_inline_when_short_and_whole_either_way() {
        let short = Text::new("GET", "/test-yahel-websocket-https-api/");
        assert!(matches!(short, Text::Inline { .. }));
        assert_eq!(short.as_str(), "GET /test-yahel-websocket-https-api/");
        let edge = "/".repeat(INLINE - 4);
        assert!(matches!(Text::new("GET", &edge), Text::Inline { .. }));
        let long = format!("/{edge}é");
        let t = Text::new("OPTIONS", &long);
        assert!(matches!(t, Text::Boxed(_)));
        assert_eq!(t.as_str(), format!("OPTIONS {long}"));
        assert_eq!(Text::new("", "").as_str(), " ");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\u000ad\u0001é""#
        );
    }
}
