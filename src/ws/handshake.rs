//! The WebSocket opening handshake (RFC 6455 §4) on both sides of the gateway: checking the
//! client's upgrade request, the RFC 6455 headers of the upgrade request to the backend (the
//! rest of that request is forwarded as `http::forward` writes it), checking the backend's
//! 101 with the subprotocol and extensions it chose, and writing the client's 101. Everything
//! works on parsed heads and output buffers.

use std::fmt;

use base64::prelude::*;
use sha1::{Digest, Sha1};

use crate::http::forward::{self, Forward};
use crate::http::head::{RequestHead, ResponseHead};
use crate::http::response::write_header;

/// The fixed GUID of RFC 6455 §1.3 that the accept key is derived with.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Writes the accept value for `key` into `buf` (SHA-1 is 20 bytes, so always 28 base64 chars).
fn accept_into<'b>(key: &str, buf: &'b mut [u8; 28]) -> &'b str {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID);
    let digest = sha.finalize();
    let n = BASE64_STANDARD.encode_slice(&digest[..], buf).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let mut buf = [0u8; 28];
    accept_into(client_key, &mut buf).to_owned()
}

/// A `Sec-WebSocket-Key` from 16 random bytes supplied by the driver's PRNG.
pub fn new_key(random: [u8; 16]) -> String {
    BASE64_STANDARD.encode(random)
}

/// Whether a key is base64 of exactly 16 bytes (RFC 6455 §4.1).
fn key_is_valid(key: &str) -> bool {
    let mut out = [0u8; 24];
    key.len() == 24 && BASE64_STANDARD.decode_slice(key, &mut out) == Ok(16)
}

/// `request.websocket` (spec decision 3 and §2.4): GET, `Upgrade: websocket`, `Connection`
/// containing `upgrade`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`. This is the
/// routing test; [`validate_client`] does the full check when the upgrade policy runs.
pub fn is_websocket_request(head: &RequestHead) -> bool {
    head.method() == "GET"
        && head.has_token("upgrade", "websocket")
        && head.has_token("connection", "upgrade")
        && head.header("sec-websocket-version") == Some("13")
        && head
            .header("sec-websocket-key")
            .is_some_and(|k| !k.is_empty())
}

/// Why a client's upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeError {
    /// Answer 400 with this text.
    BadRequest(&'static str),
    /// A `Sec-WebSocket-Version` other than 13: answer 426 with `Sec-WebSocket-Version: 13`.
    Version,
}

impl UpgradeError {
    pub fn status(self) -> u16 {
        match self {
            UpgradeError::BadRequest(_) => 400,
            UpgradeError::Version => 426,
        }
    }
    /// The text for `moreInformation`.
    pub fn message(self) -> &'static str {
        match self {
            UpgradeError::BadRequest(m) => m,
            UpgradeError::Version => "Unsupported WebSocket version; 13 is supported",
        }
    }
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for UpgradeError {}

/// What the client asked for, for the backend request and the final 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUpgrade {
    pub key: String,
    /// `Sec-WebSocket-Protocol` values, comma-joined when repeated.
    pub protocols: Option<String>,
    /// `Sec-WebSocket-Extensions` values, comma-joined when repeated.
    pub extensions: Option<String>,
}

/// The non-empty values of a header joined with `, `; `None` when there are none.
fn joined(values: impl Iterator<Item = impl AsRef<str>>) -> Option<String> {
    let mut out: Option<String> = None;
    for v in values {
        let v = v.as_ref();
        if v.is_empty() {
            continue;
        }
        match &mut out {
            Some(s) => {
                s.push_str(", ");
                s.push_str(v);
            }
            None => out = Some(v.to_owned()),
        }
    }
    out
}

/// The server-side checks of RFC 6455 §4.2.1 on a client's request.
pub fn validate_client(head: &RequestHead) -> Result<ClientUpgrade, UpgradeError> {
    use UpgradeError::BadRequest;
    if head.method() != "GET" {
        return Err(BadRequest("WebSocket upgrade requires GET"));
    }
    if head.minor_version() < 1 {
        return Err(BadRequest("WebSocket upgrade requires HTTP/1.1"));
    }
    match head.headers("host").count() {
        0 => return Err(BadRequest("missing Host header")),
        1 => {}
        _ => return Err(BadRequest("more than one Host header")),
    }
    if !head.has_token("upgrade", "websocket") {
        return Err(BadRequest("missing Upgrade: websocket"));
    }
    if !head.has_token("connection", "upgrade") {
        return Err(BadRequest("missing Connection: Upgrade"));
    }
    // Bytes after the head are WebSocket frames; a request body would be misread as frames.
    if head.header("transfer-encoding").is_some()
        || head.headers("content-length").any(|v| v != "0")
    {
        return Err(BadRequest("WebSocket upgrade request must not have a body"));
    }
    let mut versions = head.headers("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (None, _) => return Err(BadRequest("missing Sec-WebSocket-Version")),
        (Some("13"), None) => {}
        _ => return Err(UpgradeError::Version),
    }
    let mut keys = head.headers("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(BadRequest("missing Sec-WebSocket-Key")),
        (Some(k), None) if key_is_valid(k) => k,
        (Some(_), None) => return Err(BadRequest("invalid Sec-WebSocket-Key")),
        (Some(_), Some(_)) => return Err(BadRequest("more than one Sec-WebSocket-Key")),
    };
    Ok(ClientUpgrade {
        key: key.to_owned(),
        protocols: joined(head.headers("sec-websocket-protocol")),
        extensions: joined(head.headers("sec-websocket-extensions")),
    })
}

/// Writes `name: v1, v2` from the non-empty values, or nothing.
fn write_joined<'v>(out: &mut Vec<u8>, name: &str, values: impl Iterator<Item = &'v str>) {
    let mut first = true;
    for v in values.filter(|v| !v.is_empty()) {
        out.extend_from_slice(if first { name.as_bytes() } else { b", " });
        if first {
            out.extend_from_slice(b": ");
        }
        out.extend_from_slice(v.as_bytes());
        first = false;
    }
    if !first {
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes the upgrade request to the backend: the client's request as forwarded, with the
/// RFC 6455 headers for a fresh `key` from [`new_key`] and the subprotocols and extensions the
/// client offered.
pub fn upgrade_request(out: &mut Vec<u8>, req: &Forward, key: &str) {
    forward::write_request(out, req, "GET", |out| {
        let client = req.client;
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        write_header(out, "Sec-WebSocket-Key", key);
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        write_joined(
            out,
            "Sec-WebSocket-Protocol",
            client.headers("sec-websocket-protocol"),
        );
        write_joined(
            out,
            "Sec-WebSocket-Extensions",
            client.headers("sec-websocket-extensions"),
        );
    });
}

/// What the backend agreed to in its 101.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiated {
    pub protocol: Option<String>,
    pub extensions: Option<String>,
}

impl Negotiated {
    /// permessage-deflate (RFC 7692) is in effect: its frames carry RSV1, which the relay
    /// passes on a message's first frame. The gateway never inflates; both ends do.
    pub fn deflate(&self) -> bool {
        self.extensions
            .as_deref()
            .into_iter()
            .flat_map(extension_names)
            .any(|n| n.eq_ignore_ascii_case("permessage-deflate"))
    }
}

/// Why the backend's answer is not a usable upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendAnswer {
    /// Not a 101: relay the response to the client.
    NotUpgraded,
    /// A 101 that breaks RFC 6455 §4.1: answer the client 502.
    Invalid(&'static str),
}

/// Splits a header list on commas outside quoted strings (extension parameters may be
/// quoted), trimming each element.
fn list_elements(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in r.bytes().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&r[i + 1..]);
                    return Some(r[..i].trim_matches([' ', '\t']));
                }
                _ => {}
            }
        }
        rest = None;
        Some(r.trim_matches([' ', '\t']))
    })
}

/// The extension names of a `Sec-WebSocket-Extensions` list.
fn extension_names(s: &str) -> impl Iterator<Item = &str> {
    list_elements(s)
        .filter(|e| !e.is_empty())
        .map(|e| e.split(';').next().unwrap_or("").trim_matches([' ', '\t']))
}

/// The client-side checks of RFC 6455 §4.1 on the backend's answer. `offered_*` are what the
/// backend request carried (the client's values, see [`ClientUpgrade`]).
pub fn check_backend_response(
    resp: &ResponseHead,
    sent_key: &str,
    offered_protocols: Option<&str>,
    offered_extensions: Option<&str>,
) -> Result<Negotiated, BackendAnswer> {
    use BackendAnswer::Invalid;
    if resp.status() != 101 {
        return Err(BackendAnswer::NotUpgraded);
    }
    if !resp.has_token("upgrade", "websocket") {
        return Err(Invalid("backend 101 without Upgrade: websocket"));
    }
    if !resp.has_token("connection", "upgrade") {
        return Err(Invalid("backend 101 without Connection: Upgrade"));
    }
    let mut buf = [0u8; 28];
    let expected = accept_into(sent_key, &mut buf);
    let mut accepts = resp.headers("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(a), None) if a == expected => {}
        (None, _) => return Err(Invalid("backend 101 without Sec-WebSocket-Accept")),
        _ => return Err(Invalid("backend 101 with a wrong Sec-WebSocket-Accept")),
    }

    let mut protocols = resp
        .headers("sec-websocket-protocol")
        .filter(|p| !p.is_empty());
    let protocol = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(p), None) => {
            // Subprotocol names are compared exactly; the backend must pick one offered.
            let offered =
                offered_protocols.is_some_and(|o| list_elements(o).any(|candidate| candidate == p));
            if p.contains(',') || !offered {
                return Err(Invalid(
                    "backend chose a subprotocol the client did not offer",
                ));
            }
            Some(p.to_owned())
        }
        (Some(_), Some(_)) => return Err(Invalid("backend 101 with several subprotocols")),
    };

    // Checked as the one list that is relayed: a quote left open in one field would otherwise
    // take the comma that joins it to the next, and the client would read other extensions.
    let extensions = joined(resp.headers("sec-websocket-extensions"));
    for name in extensions.as_deref().into_iter().flat_map(extension_names) {
        let offered = offered_extensions
            .is_some_and(|o| extension_names(o).any(|n| n.eq_ignore_ascii_case(name)));
        if name.is_empty() || !offered {
            return Err(Invalid(
                "backend chose an extension the client did not offer",
            ));
        }
    }
    Ok(Negotiated {
        protocol,
        extensions,
    })
}

/// Writes the gateway's 101 to the client. `extra_headers` carries limit headers and the like.
pub fn client_101(
    out: &mut Vec<u8>,
    client_key: &str,
    negotiated: &Negotiated,
    txn_id: &str,
    extra_headers: &[(&str, &str)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    let mut buf = [0u8; 28];
    write_header(
        out,
        "Sec-WebSocket-Accept",
        accept_into(client_key, &mut buf),
    );
    if let Some(p) = &negotiated.protocol {
        write_header(out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = &negotiated.extensions {
        write_header(out, "Sec-WebSocket-Extensions", e);
    }
    write_header(out, "X-Global-Transaction-ID", txn_id);
    for (name, value) in extra_headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response};
    use crate::http::url::TargetUrl;
    use crate::model::Control;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn req(text: &str) -> RequestHead {
        parse_request(text.as_bytes()).unwrap().unwrap().0
    }

    fn resp(text: &str) -> ResponseHead {
        parse_response(text.as_bytes()).unwrap().unwrap().0
    }

    fn upgrade(extra: &str) -> String {
        format!(
            "GET /chat?room=1 HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn rfc_accept_example() {
        assert_eq!(accept_key(KEY), ACCEPT);
    }

    #[test]
    fn new_keys_are_valid() {
        let k = new_key([7; 16]);
        assert_eq!(k, "BwcHBwcHBwcHBwcHBwcHBw==");
        assert!(key_is_valid(&k));
        assert!(key_is_valid(KEY));
        assert!(!key_is_valid("dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!key_is_valid("dGhlIHNhbXBsZSBub25jZXg="));
        assert!(!key_is_valid("not base64 at all!!!!!!!"));
    }

    #[test]
    fn request_websocket_flag() {
        assert!(is_websocket_request(&req(&upgrade(""))));
        let plain = req("GET /chat HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!is_websocket_request(&plain));
        let post = upgrade("").replacen("GET", "POST", 1);
        assert!(!is_websocket_request(&req(&post)));
        let v8 = upgrade("").replace("Version: 13", "Version: 8");
        assert!(!is_websocket_request(&req(&v8)));
        let mixed = upgrade("")
            .replace("Upgrade: websocket", "Upgrade: WebSocket")
            .replace("Connection: Upgrade", "Connection: keep-alive, upgrade");
        assert!(is_websocket_request(&req(&mixed)));
    }

    #[test]
    fn valid_client_upgrade() {
        let h = req(&upgrade(
            "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        ));
        let c = validate_client(&h).unwrap();
        assert_eq!(c.key, KEY);
        assert_eq!(c.protocols.as_deref(), Some("chat, superchat"));
        assert_eq!(
            c.extensions.as_deref(),
            Some("permessage-deflate; client_max_window_bits")
        );
        let bare = validate_client(&req(&upgrade(""))).unwrap();
        assert_eq!((bare.protocols, bare.extensions), (None, None));
        let zero_body = upgrade("Content-Length: 0\r\n");
        assert!(validate_client(&req(&zero_body)).is_ok());
    }

    #[test]
    fn each_client_failure() {
        use UpgradeError::*;
        let base = upgrade("");
        let cases: Vec<(String, UpgradeError)> = vec![
            (
                base.replacen("GET", "POST", 1),
                BadRequest("WebSocket upgrade requires GET"),
            ),
            (
                base.replacen("HTTP/1.1", "HTTP/1.0", 1),
                BadRequest("WebSocket upgrade requires HTTP/1.1"),
            ),
            (
                base.replace("Host: gw.example\r\n", ""),
                BadRequest("missing Host header"),
            ),
            (
                upgrade("Host: other\r\n"),
                BadRequest("more than one Host header"),
            ),
            (
                base.replace("Upgrade: websocket", "Upgrade: h2c"),
                BadRequest("missing Upgrade: websocket"),
            ),
            (
                base.replace("Connection: Upgrade", "Connection: keep-alive"),
                BadRequest("missing Connection: Upgrade"),
            ),
            (
                upgrade("Content-Length: 5\r\n"),
                BadRequest("WebSocket upgrade request must not have a body"),
            ),
            (
                upgrade("Transfer-Encoding: chunked\r\n"),
                BadRequest("WebSocket upgrade request must not have a body"),
            ),
            (
                base.replace("Sec-WebSocket-Version: 13\r\n", ""),
                BadRequest("missing Sec-WebSocket-Version"),
            ),
            (base.replace("Version: 13", "Version: 8"), Version),
            (upgrade("Sec-WebSocket-Version: 8\r\n"), Version),
            (
                base.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
                BadRequest("missing Sec-WebSocket-Key"),
            ),
            (
                base.replace(KEY, "c2hvcnQ="),
                BadRequest("invalid Sec-WebSocket-Key"),
            ),
            (
                base.replace(KEY, "dGhlIHNhbXBsZSBub25jZXg="),
                BadRequest("invalid Sec-WebSocket-Key"),
            ),
            (
                upgrade(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
                BadRequest("more than one Sec-WebSocket-Key"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(validate_client(&req(&text)), Err(expected), "{text}");
        }
        assert_eq!(UpgradeError::Version.status(), 426);
        assert_eq!(BadRequest("x").status(), 400);
    }

    /// The client's request as forwarded to `target` with the defaults of a policy.
    fn forward<'a>(
        client: &'a RequestHead,
        target: &'a TargetUrl,
        copy: &'a Control,
    ) -> Forward<'a> {
        Forward {
            client,
            target,
            client_query: client.query(),
            header_control: copy,
            parameter_control: copy,
            inject_proxy_headers: false,
            peer_trusted: false,
            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            original_host: client.header("host"),
            listener_port: 9443,
            proto: "http",
            credentials: None,
            strip: &[],
        }
    }

    fn upgrade_to(client: &str, target: &str) -> (RequestHead, String) {
        let head = req(client);
        let target = TargetUrl::parse(target).unwrap();
        let copy = Control::copy_all();
        let mut out = Vec::new();
        upgrade_request(
            &mut out,
            &forward(&head, &target, &copy),
            "AQIDBAUGBwgJCgsMDQ4PEA==",
        );
        let text = String::from_utf8(out).unwrap();
        let (h, n) = parse_request(text.as_bytes()).unwrap().unwrap();
        assert_eq!(n, text.len());
        (h, text)
    }

    #[test]
    fn upgrade_request_is_the_forwarded_request_with_fresh_rfc6455_headers() {
        let client = upgrade(
            "Sec-WebSocket-Protocol: graphql-ws\r\nSec-WebSocket-Protocol: v2\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\nOrigin: https://app.example\r\n",
        );
        let (h, text) = upgrade_to(&client, "wss://backend.internal:8443/ws?v=2");
        assert!(text.starts_with("GET /ws?v=2&room=1 HTTP/1.1\r\nHost: backend.internal:8443\r\n"));
        // The gateway's own key, not the client's; the offers joined into one field each.
        assert_eq!(
            h.header("sec-websocket-key"),
            Some("AQIDBAUGBwgJCgsMDQ4PEA==")
        );
        assert_eq!(h.header("sec-websocket-version"), Some("13"));
        assert_eq!(h.header("sec-websocket-protocol"), Some("graphql-ws, v2"));
        assert_eq!(
            h.header("sec-websocket-extensions"),
            Some("permessage-deflate")
        );
        let names: Vec<String> = h
            .headers_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        assert_eq!(
            names,
            [
                "host",
                "upgrade",
                "connection",
                "sec-websocket-key",
                "sec-websocket-version",
                "sec-websocket-protocol",
                "sec-websocket-extensions",
                "origin",
            ]
        );
        assert!(is_websocket_request(&h));
        assert!(validate_client(&h).is_ok());
        // A client that offers nothing gets no empty offer headers.
        let (h, _) = upgrade_to(&upgrade(""), "ws://b/");
        assert_eq!(h.header("sec-websocket-protocol"), None);
        assert_eq!(h.header("sec-websocket-extensions"), None);
    }

    fn ok101(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn backend_101_accepted() {
        let n = check_backend_response(&resp(&ok101("")), KEY, None, None).unwrap();
        assert_eq!(n, Negotiated::default());
        let n = check_backend_response(
            &resp(&ok101(
                "Sec-WebSocket-Protocol: superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
            )),
            KEY,
            Some("chat, superchat"),
            Some("permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"),
        )
        .unwrap();
        assert_eq!(n.protocol.as_deref(), Some("superchat"));
        assert_eq!(
            n.extensions.as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
        let lenient = ok101("").replace("Upgrade: websocket", "Upgrade: WebSocket");
        assert!(check_backend_response(&resp(&lenient), KEY, None, None).is_ok());
    }

    #[test]
    fn deflate_only_when_permessage_deflate_was_agreed() {
        let with = |e: Option<&str>| Negotiated {
            protocol: None,
            extensions: e.map(str::to_owned),
        };
        assert!(with(Some("permessage-deflate")).deflate());
        assert!(
            with(Some(
                "x-foo; a=\"b, c\", PerMessage-Deflate; client_max_window_bits"
            ))
            .deflate()
        );
        assert!(!with(None).deflate());
        assert!(!with(Some("x-webkit-deflate-frame")).deflate());
        // A parameter value is not an extension name.
        assert!(!with(Some("x-foo; a=\"permessage-deflate\"")).deflate());
    }

    #[test]
    fn backend_101_rejected() {
        use BackendAnswer::*;
        let check = |text: &str, p: Option<&str>, e: Option<&str>| {
            check_backend_response(&resp(text), KEY, p, e)
        };
        assert_eq!(
            check(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                None,
                None
            ),
            Err(NotUpgraded)
        );
        assert!(matches!(
            check(
                &ok101("").replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                None,
                None
            ),
            Err(Invalid(_))
        ));
        let no_accept = ok101("").replace(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"), "");
        assert!(matches!(check(&no_accept, None, None), Err(Invalid(_))));
        let twice = ok101(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"));
        assert!(matches!(check(&twice, None, None), Err(Invalid(_))));
        assert!(matches!(
            check(&ok101("").replace("Upgrade: websocket\r\n", ""), None, None),
            Err(Invalid(_))
        ));
        assert!(matches!(
            check(
                &ok101("").replace("Connection: Upgrade", "Connection: close"),
                None,
                None
            ),
            Err(Invalid(_))
        ));
        let proto = ok101("Sec-WebSocket-Protocol: other\r\n");
        assert!(matches!(check(&proto, None, None), Err(Invalid(_))));
        assert!(matches!(
            check(&proto, Some("chat, superchat"), None),
            Err(Invalid(_))
        ));
        // Subprotocols are compared exactly.
        let case = ok101("Sec-WebSocket-Protocol: Chat\r\n");
        assert!(matches!(check(&case, Some("chat"), None), Err(Invalid(_))));
        let two = ok101("Sec-WebSocket-Protocol: chat, superchat\r\n");
        assert!(matches!(
            check(&two, Some("chat, superchat"), None),
            Err(Invalid(_))
        ));
        let ext = ok101("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(matches!(check(&ext, None, None), Err(Invalid(_))));
        assert!(matches!(
            check(&ext, None, Some("x-other")),
            Err(Invalid(_))
        ));
        let ext2 = ok101("Sec-WebSocket-Extensions: permessage-deflate, x-foo; a=\"1,2\"\r\n");
        assert!(matches!(
            check(&ext2, None, Some("permessage-deflate")),
            Err(Invalid(_))
        ));
        assert!(check(&ext2, None, Some("x-foo; a=\"3,4\", permessage-deflate")).is_ok());
        // Two fields that each open a quote: alone each names only permessage-deflate, joined
        // (as they reach the client) the second quote closes the first and `x-bar` is named
        // (found by fuzzing).
        let open = ok101(
            "Sec-WebSocket-Extensions: permessage-deflate; a=\"1\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; b=\"2, x-bar\r\n",
        );
        assert_eq!(
            check(&open, None, Some("permessage-deflate")),
            Err(Invalid(
                "backend chose an extension the client did not offer"
            ))
        );
        // Separate fields are still one list.
        let split = ok101(
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\
             Sec-WebSocket-Extensions: x-foo; a=\"1,2\"\r\n",
        );
        let n = check(&split, None, Some("x-foo, permessage-deflate")).unwrap();
        assert_eq!(
            n.extensions.as_deref(),
            Some("permessage-deflate, x-foo; a=\"1,2\"")
        );
    }

    #[test]
    fn client_101_bytes() {
        let mut out = Vec::new();
        client_101(
            &mut out,
            KEY,
            &Negotiated {
                protocol: Some("chat".into()),
                extensions: None,
            },
            "t1",
            &[("x-countlimit-remaining", "name=conn,1;")],
        );
        let expected = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\n\
             X-Global-Transaction-ID: t1\r\nx-countlimit-remaining: name=conn,1;\r\n\r\n"
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        // The gateway's own 101 passes its own backend check.
        let h = parse_response(&out).unwrap().unwrap().0;
        assert!(check_backend_response(&h, KEY, Some("chat"), None).is_ok());
    }

    /// An in-memory stream for tungstenite: reads what was queued, then would block.
    #[derive(Default)]
    struct Pipe {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl std::io::Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.input.read(buf)? {
                0 if !buf.is_empty() => Err(std::io::ErrorKind::WouldBlock.into()),
                n => Ok(n),
            }
        }
    }

    impl std::io::Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn interop_backend_request_with_tungstenite_server() {
        let client = upgrade(
            "Sec-WebSocket-Protocol: graphql-ws\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
        );
        let (_, request) = upgrade_to(&client, "ws://b/ws");
        let pipe = Pipe {
            input: std::io::Cursor::new(request.into_bytes()),
            output: Vec::new(),
        };
        // tungstenite's callback signature fixes the error type.
        #[allow(clippy::result_large_err)]
        fn pick(
            _: &tungstenite::handshake::server::Request,
            mut r: tungstenite::handshake::server::Response,
        ) -> Result<
            tungstenite::handshake::server::Response,
            tungstenite::handshake::server::ErrorResponse,
        > {
            r.headers_mut()
                .insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
            Ok(r)
        }
        let ws = tungstenite::accept_hdr(pipe, pick).unwrap();
        let (answer, _) = parse_response(&ws.get_ref().output).unwrap().unwrap();
        let n = check_backend_response(
            &answer,
            "AQIDBAUGBwgJCgsMDQ4PEA==",
            Some("graphql-ws"),
            Some("permessage-deflate"),
        )
        .unwrap();
        assert_eq!(n.protocol.as_deref(), Some("graphql-ws"));
    }

    #[test]
    fn interop_client_101_with_tungstenite_client() {
        use tungstenite::client::IntoClientRequest;
        use tungstenite::handshake::{HandshakeError, client::ClientHandshake};
        let mut request = "ws://gw.example/chat".into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v2.chat, v1.chat".parse().unwrap(),
        );
        let mid = ClientHandshake::start(Pipe::default(), request, None).unwrap();
        let Err(HandshakeError::Interrupted(mut mid)) = mid.handshake() else {
            panic!("the handshake should wait for the 101");
        };
        let sent = mid.get_mut().get_mut().output.clone();
        let head = parse_request(&sent).unwrap().unwrap().0;
        assert!(is_websocket_request(&head));
        let client = validate_client(&head).unwrap();
        assert_eq!(client.protocols.as_deref(), Some("v2.chat, v1.chat"));
        let mut answer = Vec::new();
        let negotiated = Negotiated {
            protocol: Some("v1.chat".into()),
            extensions: None,
        };
        client_101(&mut answer, &client.key, &negotiated, "t", &[]);
        mid.get_mut().get_mut().input = std::io::Cursor::new(answer);
        let (_, response) = mid.handshake().unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "v1.chat"
        );
    }
}
