//! The request the gateway sends a backend on a client's behalf, sans-I/O: the client's
//! request line and headers through the policy's `parameter-control` and `header-control`
//! (spec §2.2), without the hop-by-hop and gateway-owned headers, the client id and secret, or
//! credentials meant for another origin; with `X-Forwarded-*` (a trusted proxy's own values
//! kept, see [`super::forwarded`]) and the policy's Basic credentials. A plain call adds its
//! body framing here; an upgrade adds the RFC 6455 headers of `ws::handshake`.

use std::io::Write as _;
use std::net::IpAddr;

use base64::prelude::*;

use super::head::{BodyFraming, RequestHead, ResponseHead};
use super::response::write_header;
use super::url::TargetUrl;
use crate::model::Control;

/// What the request to the backend is made from.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    /// The client's request.
    pub client: &'a RequestHead,
    pub target: &'a TargetUrl,
    /// The client's query string (without `?`), filtered by `parameter_control` and appended.
    pub client_query: Option<&'a str>,
    /// Which client headers are copied (names compared case-insensitively).
    pub header_control: &'a Control,
    /// Which client query parameters are copied (names compared case-sensitively).
    pub parameter_control: &'a Control,
    pub inject_proxy_headers: bool,
    /// The peer is a trusted proxy: its own `X-Forwarded-Host/-Port/-Proto` stand. From any
    /// other peer they are only the client's claim, replaced by the gateway's values.
    pub peer_trusted: bool,
    pub client_ip: IpAddr,
    /// The client's `Host`, for `X-Forwarded-Host`.
    pub original_host: Option<&'a str>,
    /// The gateway port the client connected to, for `X-Forwarded-Port`.
    pub listener_port: u16,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: &'a str,
    /// Basic credentials (username, password) for the backend.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Lower-case names of the client id and secret headers and query parameters (and of the
    /// credential headers, after a redirect to another origin); never sent.
    pub strip: &'a [&'a str],
}

/// A plain call's part of the request to the backend.
#[derive(Debug, Clone, Copy)]
pub struct PlainRequest<'a> {
    pub method: &'a str,
    /// How the body is delimited, as the client framed it.
    pub framing: BodyFraming,
    /// The connection may carry later calls (`persistent-connection`); otherwise the request
    /// asks the backend to close it after answering.
    pub persistent: bool,
}

/// Headers the gateway writes itself (the WebSocket ones for an upgrade, in
/// `ws::handshake`) or that only concern the client connection.
const GATEWAY_OWNED: &[&str] = &[
    "connection",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "host",
    "content-length",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

const XFF: &str = "x-forwarded-for";
const PROXY_HEADERS: [&str; 3] = ["x-forwarded-host", "x-forwarded-port", "x-forwarded-proto"];

impl Forward<'_> {
    /// Whether a client header passes every filter (ownership, hop-by-hop, strip list,
    /// credentials and header-control).
    fn copies_header(&self, name: &str) -> bool {
        let is = |other: &str| name.eq_ignore_ascii_case(other);
        !(GATEWAY_OWNED.iter().any(|h| is(h))
            || name
                .as_bytes()
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
            // Hop-by-hop headers nominated by the client's Connection header (RFC 9110 §7.6.1).
            || self.client.has_token("connection", name)
            || self.strip.iter().any(|h| is(h))
            || (self.credentials.is_some() && is("authorization")))
            && self.header_control.copies(name, true)
    }

    fn copies_param(&self, name: &str) -> bool {
        !name.is_empty()
            && !self.strip.iter().any(|s| name.eq_ignore_ascii_case(s))
            && self.parameter_control.copies(name, false)
    }
}

/// Appends request-target text, percent-encoding any byte that cannot appear in a request
/// line (space, controls, `#`, non-ASCII). Parsed targets and client queries never have
/// such bytes; this keeps a hand-built value from breaking the request line.
fn push_target(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'#' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Writes the request to the backend: the request line with `method`, `Host`, what
/// `protocol_headers` writes (a plain call's framing, an upgrade's RFC 6455 headers), the
/// client's headers that are forwarded, and the empty line that ends the head.
pub fn write_request(
    out: &mut Vec<u8>,
    req: &Forward,
    method: &str,
    protocol_headers: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    push_target(out, &req.target.path_and_query);
    // Client parameters go after the target's own query.
    let mut sep: &[u8] = match req.target.query() {
        None => b"?",
        Some(q) if q.is_empty() || q.ends_with('&') => b"",
        Some(_) => b"&",
    };
    for param in req.client_query.unwrap_or("").split('&') {
        let name = param.split('=').next().unwrap_or("");
        if req.copies_param(name) {
            out.extend_from_slice(sep);
            push_target(out, param);
            sep = b"&";
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Through write_header: the fields of a TargetUrl are public, so not necessarily parsed.
    write_header(out, "Host", &req.target.host_header().to_string());
    protocol_headers(out);
    copied_headers(out, req);
}

/// Writes a plain call's request (the invoke policy): the forwarded request with its body
/// framed as the client framed it.
pub fn plain_request(out: &mut Vec<u8>, req: &Forward, plain: &PlainRequest) {
    write_request(out, req, plain.method, |out| {
        // HTTP/1.1 keeps the connection by default.
        if !plain.persistent {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        match plain.framing {
            BodyFraming::Length(n) => {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
            BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyFraming::None | BodyFraming::UntilClose => {}
        }
    });
}

/// The client's headers that pass the filters, the forwarded headers and credentials, and the
/// empty line that ends the head.
fn copied_headers(out: &mut Vec<u8>, req: &Forward) {
    let client = req.client;
    let inject = req.inject_proxy_headers;
    let mut present = [false; 3];
    for (name, value) in client.headers_iter() {
        if !req.copies_header(name) || (inject && name.eq_ignore_ascii_case(XFF)) {
            continue;
        }
        let claimed = PROXY_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h));
        if inject && claimed && !req.peer_trusted {
            continue;
        }
        for (seen, h) in present.iter_mut().zip(PROXY_HEADERS) {
            *seen |= name.eq_ignore_ascii_case(h);
        }
        write_header(out, name, value);
    }
    if inject {
        // One X-Forwarded-For: the copied values with the client's address appended.
        let copied = client
            .headers_iter()
            .filter(|(n, v)| n.eq_ignore_ascii_case(XFF) && !v.is_empty() && req.copies_header(n));
        out.extend_from_slice(b"X-Forwarded-For: ");
        for (_, v) in copied {
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b", ");
        }
        let _ = write!(out, "{}\r\n", req.client_ip);
        if !present[0]
            && let Some(host) = req.original_host
        {
            write_header(out, "X-Forwarded-Host", host);
        }
        if !present[1] {
            let _ = write!(out, "X-Forwarded-Port: {}\r\n", req.listener_port);
        }
        if !present[2] {
            write_header(out, "X-Forwarded-Proto", req.proto);
        }
    }
    if let Some((user, password)) = req.credentials {
        let mut plain = String::with_capacity(user.len() + 1 + password.len());
        plain.push_str(user);
        plain.push(':');
        plain.push_str(password);
        out.extend_from_slice(b"Authorization: Basic ");
        out.extend_from_slice(BASE64_STANDARD.encode(plain).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The target of a backend redirect (301, 302, 307, 308), for a websocket-upgrade's
/// `follow-redirects`.
pub fn redirect_location(resp: &ResponseHead) -> Option<&str> {
    match resp.status() {
        301 | 302 | 307 | 308 => resp.header("location").filter(|l| !l.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response};
    use crate::policy::pattern::Pattern;
    use std::net::Ipv4Addr;

    fn req(text: &str) -> RequestHead {
        parse_request(text.as_bytes()).unwrap().unwrap().0
    }

    fn resp(text: &str) -> ResponseHead {
        parse_response(text.as_bytes()).unwrap().unwrap().0
    }

    /// A client's upgrade request with `extra` header lines.
    fn upgrade(extra: &str) -> String {
        format!(
            "GET /chat?room=1 HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    fn control(allow: bool, names: &[&str]) -> Control {
        Control {
            allow,
            patterns: names.iter().map(|n| Pattern::compile(n).unwrap()).collect(),
        }
    }

    struct Fixture {
        head: RequestHead,
        target: TargetUrl,
        headers: Control,
        params: Control,
    }

    impl Fixture {
        fn new(client: &str, target: &str) -> Fixture {
            Fixture {
                head: req(client),
                target: TargetUrl::parse(target).unwrap(),
                headers: Control::copy_all(),
                params: Control::copy_none(),
            }
        }
        fn request(&self) -> Forward<'_> {
            Forward {
                client: &self.head,
                target: &self.target,
                client_query: self.head.query(),
                header_control: &self.headers,
                parameter_control: &self.params,
                inject_proxy_headers: false,
                peer_trusted: false,
                client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                original_host: self.head.header("host"),
                listener_port: 9443,
                proto: "https",
                credentials: None,
                strip: &["x-ibm-client-id", "x-ibm-client-secret", "client_id"],
            }
        }
    }

    /// The forwarded request alone, with no protocol headers, parsed back.
    fn write(r: &Forward) -> (RequestHead, String) {
        let mut out = Vec::new();
        write_request(&mut out, r, "GET", |_| {});
        let text = String::from_utf8(out).unwrap();
        let (head, n) = parse_request(text.as_bytes()).unwrap().unwrap();
        assert_eq!(n, text.len());
        (head, text)
    }

    fn names(h: &RequestHead) -> Vec<String> {
        h.headers_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    const CLIENT: &str = "GET /api/chat?room=1&client_id=abc&Client_Id=x&debug HTTP/1.1\r\n\
        Host: gw.example:9443\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Hop\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Protocol: graphql-ws\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\
        Origin: https://app.example\r\nX-IBM-Client-Id: abc\r\nx-ibm-client-secret: s\r\n\
        X-Hop: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic x\r\nTE: trailers\r\n\
        Authorization: Bearer t\r\nX-Block: 1\r\nCookie: a=b\r\n\r\n";

    #[test]
    fn forwarded_request_defaults() {
        let f = Fixture::new(CLIENT, "wss://backend.internal:8443/ws?v=2");
        let (h, text) = write(&f.request());
        // parameter-control missing means copy none: only the target's own query.
        assert_eq!(h.target(), "/ws?v=2");
        assert_eq!(h.header("host"), Some("backend.internal:8443"));
        // Hop-by-hop, gateway-owned (the client's WebSocket handshake headers included), the
        // client id and secret, and what Connection names stay behind.
        assert_eq!(
            names(&h),
            ["host", "origin", "authorization", "x-block", "cookie"]
        );
        assert!(text.starts_with("GET /ws?v=2 HTTP/1.1\r\nHost: backend.internal:8443\r\n"));
        assert!(!text.contains("X-Forwarded"));
    }

    #[test]
    fn plain_request_frames_the_body_as_the_client_did() {
        let f = Fixture::new(
            "POST /api/items HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
            "http://b/items",
        );
        let plain = |framing, persistent| {
            let mut out = Vec::new();
            let p = PlainRequest {
                method: "PUT",
                framing,
                persistent,
            };
            plain_request(&mut out, &f.request(), &p);
            let text = String::from_utf8(out).unwrap();
            let h = parse_request(text.as_bytes()).unwrap().unwrap().0;
            (h.method().to_string(), names(&h), text)
        };
        let (method, n, text) = plain(BodyFraming::Length(5), true);
        assert_eq!(method, "PUT");
        assert_eq!(n, ["host", "content-length", "x-a"]);
        assert!(text.contains("Content-Length: 5\r\n"));
        let (_, n, _) = plain(BodyFraming::Chunked, false);
        assert_eq!(n, ["host", "connection", "transfer-encoding", "x-a"]);
        let (_, n, text) = plain(BodyFraming::None, false);
        assert_eq!(n, ["host", "connection", "x-a"]);
        assert!(text.contains("Connection: close\r\n"));
    }

    #[test]
    fn query_filtering() {
        let mut f = Fixture::new(CLIENT, "http://b/ws");
        f.params = Control::copy_all();
        // client_id is stripped whatever its case; a valueless parameter is kept as sent.
        assert_eq!(write(&f.request()).0.target(), "/ws?room=1&debug");
        f.params = control(true, &["room"]);
        assert_eq!(write(&f.request()).0.target(), "/ws?room=1");
        f.params = control(false, &["room"]);
        assert_eq!(write(&f.request()).0.target(), "/ws?debug");
        f.params = control(false, &["Room"]);
        // Parameter names are case-sensitive.
        assert_eq!(write(&f.request()).0.target(), "/ws?room=1&debug");
        f.params = Control::copy_all();
        for (target, expected) in [
            ("http://b/ws?v=2", "/ws?v=2&room=1&debug"),
            ("http://b/ws?", "/ws?room=1&debug"),
            ("http://b/ws?v=2&", "/ws?v=2&room=1&debug"),
            ("http://b", "/?room=1&debug"),
        ] {
            f.target = TargetUrl::parse(target).unwrap();
            assert_eq!(write(&f.request()).0.target(), expected);
        }
        let mut r = f.request();
        r.client_query = None;
        assert_eq!(write(&r).0.target(), "/");
        r.client_query = Some("&&client_id=1&=x&");
        assert_eq!(write(&r).0.target(), "/");
        r.client_query = Some("a=1 HTTP/1.1\r\nX: y#");
        assert_eq!(write(&r).0.target(), "/?a=1%20HTTP/1.1%0D%0AX:%20y%23");
        let mut t = TargetUrl::parse("ws://b/x").unwrap();
        t.path_and_query = "/a b".into();
        t.host = "evil\r\nX: y".into();
        r.target = &t;
        r.client_query = None;
        let (h, _) = write(&r);
        assert_eq!(h.target(), "/a%20b");
        assert_eq!(h.header("host"), None);
        assert_eq!(h.header("x"), None);
    }

    #[test]
    fn header_control_allow_and_block() {
        let mut f = Fixture::new(CLIENT, "ws://b/ws");
        f.headers = control(false, &["x-block", "cookie"]);
        let (h, _) = write(&f.request());
        assert_eq!(h.header("x-block"), None);
        assert_eq!(h.header("cookie"), None);
        assert_eq!(h.header("origin"), Some("https://app.example"));
        f.headers = control(true, &["Origin"]);
        let (h, _) = write(&f.request());
        assert_eq!(names(&h), ["host", "origin"]);
        // An allowlist can never pull in a stripped or gateway-owned header.
        f.headers = control(true, &["x-ibm-client-id", "keep-alive", "host", "x-hop"]);
        let (h, _) = write(&f.request());
        assert_eq!(h.header("x-ibm-client-id"), None);
        assert_eq!(h.header("keep-alive"), None);
        assert_eq!(h.header("x-hop"), None);
        assert_eq!(h.headers("host").count(), 1);
    }

    #[test]
    fn proxy_headers_injected_when_absent() {
        let f = Fixture::new(CLIENT, "ws://b/ws");
        let mut r = f.request();
        r.inject_proxy_headers = true;
        let (h, _) = write(&r);
        assert_eq!(h.header("x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(h.header("x-forwarded-host"), Some("gw.example:9443"));
        assert_eq!(h.header("x-forwarded-port"), Some("9443"));
        assert_eq!(h.header("x-forwarded-proto"), Some("https"));
    }

    #[test]
    fn claimed_proxy_headers_of_an_untrusted_peer_are_replaced() {
        let client = upgrade(
            "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Host: evil.example\r\n\
             X-Forwarded-Port: 1\r\nX-Forwarded-Proto: http\r\n",
        );
        let f = Fixture::new(&client, "ws://b/ws");
        let mut r = f.request();
        r.inject_proxy_headers = true;
        let (h, _) = write(&r);
        assert_eq!(
            h.headers("x-forwarded-for").collect::<Vec<_>>(),
            ["203.0.113.1, 192.0.2.7"]
        );
        let one = |name| h.headers(name).collect::<Vec<_>>();
        assert_eq!(one("x-forwarded-host"), ["gw.example"]);
        assert_eq!(one("x-forwarded-port"), ["9443"]);
        assert_eq!(one("x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn proxy_headers_of_a_trusted_peer_kept_and_xff_appended() {
        let client = upgrade(
            "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Host: front.example\r\n\
             x-forwarded-for: 198.51.100.2, 198.51.100.3\r\nX-Forwarded-Proto: http\r\n",
        );
        let mut f = Fixture::new(&client, "ws://b/ws");
        let mut r = f.request();
        r.inject_proxy_headers = true;
        r.peer_trusted = true;
        r.client_ip = "2001:db8::9".parse().unwrap();
        let (h, _) = write(&r);
        assert_eq!(
            h.headers("x-forwarded-for").collect::<Vec<_>>(),
            ["203.0.113.1, 198.51.100.2, 198.51.100.3, 2001:db8::9"]
        );
        assert_eq!(
            h.headers("x-forwarded-host").collect::<Vec<_>>(),
            ["front.example"]
        );
        assert_eq!(h.headers("x-forwarded-proto").collect::<Vec<_>>(), ["http"]);
        assert_eq!(h.header("x-forwarded-port"), Some("9443"));
        // Without injection the client's headers pass untouched.
        let (h, _) = write(&f.request());
        assert_eq!(h.headers("x-forwarded-for").count(), 2);
        assert_eq!(h.header("x-forwarded-port"), None);
        // A blocked client header is not "already in the request": ours is injected.
        f.headers = control(false, &["x-forwarded-for", "x-forwarded-host"]);
        let mut r = f.request();
        r.inject_proxy_headers = true;
        let (h, _) = write(&r);
        assert_eq!(
            h.headers("x-forwarded-for").collect::<Vec<_>>(),
            ["192.0.2.7"]
        );
        assert_eq!(
            h.headers("x-forwarded-host").collect::<Vec<_>>(),
            ["gw.example"]
        );
    }

    #[test]
    fn basic_credentials_replace_client_authorization() {
        let f = Fixture::new(CLIENT, "ws://b/ws");
        let mut r = f.request();
        r.credentials = Some(("Aladdin", "open sesame"));
        let (h, _) = write(&r);
        assert_eq!(
            h.headers("authorization").collect::<Vec<_>>(),
            ["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
        );
    }

    #[test]
    fn ipv6_target_host() {
        let f = Fixture::new(CLIENT, "ws://[::1]:8080/x");
        assert_eq!(write(&f.request()).0.header("host"), Some("[::1]:8080"));
    }

    #[test]
    fn redirects() {
        for s in [301, 302, 307, 308] {
            let r = resp(&format!("HTTP/1.1 {s} X\r\nLocation: ws://other/x\r\n\r\n"));
            assert_eq!(redirect_location(&r), Some("ws://other/x"));
        }
        assert_eq!(
            redirect_location(&resp("HTTP/1.1 303 X\r\nLocation: /x\r\n\r\n")),
            None
        );
        assert_eq!(redirect_location(&resp("HTTP/1.1 302 X\r\n\r\n")), None);
    }
}
