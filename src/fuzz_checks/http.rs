//! Request and response heads ([`crate::http::head`]), body framing ([`crate::http::body`])
//! and the upgrade checks on both ([`crate::ws::handshake`]).

use super::Reads;
use crate::http::body::{Body, BodyError};
use crate::http::forward::redirect_location;
use crate::http::head::{
    BodyFraming, HeadError, MAX_HEAD, MAX_HEADERS, RequestHead, ResponseHead, parse_request,
    parse_request_more, parse_response, parse_response_more,
};
use crate::ws::handshake::{Negotiated, check_backend_response, client_101, validate_client};

/// The `http_head` target: the input, after its read sizes, parsed as a request head and as a
/// response head, whole and read by read as the engine does (the whole buffer so far, after
/// each read). The answer must not depend on the reads, and an accepted head must be what its
/// bytes say. The bytes after an accepted head go through the body tracker its framing asks
/// for, and the head through the upgrade checks: the 101 the gateway writes for an accepted
/// upgrade must pass a client's checks of RFC 6455 §4.1.
pub fn head(data: &[u8]) {
    let (reads, stream) = Reads::split(data);
    let whole = parse_request(stream);
    assert_same(
        &whole,
        &incremental(reads.clone(), stream, parse_request),
        |h| h.raw(),
    );
    assert_resumed(
        &whole,
        resumed(reads.clone(), stream, parse_request_more),
        |h| h.raw(),
    );
    if let Ok(Some((h, n))) = &whole {
        request_holds(h, *n, stream);
    }
    let whole = parse_response(stream);
    assert_same(
        &whole,
        &incremental(reads.clone(), stream, parse_response),
        |h| h.raw(),
    );
    assert_resumed(&whole, resumed(reads, stream, parse_response_more), |h| {
        h.raw()
    });
    if let Ok(Some((h, n))) = &whole {
        response_holds(h, *n, stream);
    }
}

type Parsed<H> = Result<Option<(H, usize)>, HeadError>;

/// The first answer other than "read more", parsing the stream received so far after each
/// read; or the answer for the whole stream.
fn incremental<H>(mut reads: Reads, stream: &[u8], parse: fn(&[u8]) -> Parsed<H>) -> Parsed<H> {
    let mut fed: usize = 0;
    loop {
        fed = fed.saturating_add(reads.next_len()).min(stream.len());
        let answer = parse(&stream[..fed]);
        if fed == stream.len() || !matches!(answer, Ok(None)) {
            return answer;
        }
    }
}

/// As [`incremental`], with the parser that the engine uses on a head arriving in pieces, which
/// parses only when the new bytes may have ended the head.
fn resumed<H>(mut reads: Reads, stream: &[u8], more: fn(&[u8], usize) -> Parsed<H>) -> Parsed<H> {
    let mut fed: usize = 0;
    loop {
        let seen = fed;
        fed = fed.saturating_add(reads.next_len()).min(stream.len());
        let answer = more(&stream[..fed], seen);
        if fed == stream.len() || !matches!(answer, Ok(None)) {
            return answer;
        }
    }
}

/// The resumed parser answers as the whole input does, except that a head refused before its
/// end may still be waiting for more when the input runs out.
fn assert_resumed<H>(whole: &Parsed<H>, resumed: Parsed<H>, raw: fn(&H) -> &str) {
    if matches!((whole, &resumed), (Err(_), Ok(None))) {
        return;
    }
    assert_same(whole, &resumed, raw);
}

fn assert_same<H>(whole: &Parsed<H>, split: &Parsed<H>, raw: fn(&H) -> &str) {
    match (whole, split) {
        (Ok(None), Ok(None)) => {}
        (Ok(Some((a, n))), Ok(Some((b, m)))) => {
            assert_eq!(n, m, "head length depends on the reads");
            assert_eq!(raw(a), raw(b));
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "refusal depends on the reads"),
        _ => panic!(
            "whole input and reads disagree: {:?} / {:?}",
            whole.as_ref().map(|o| o.as_ref().map(|x| x.1)),
            split.as_ref().map(|o| o.as_ref().map(|x| x.1))
        ),
    }
}

/// What every accepted head guarantees, whichever kind it is.
fn fields_hold<'h>(
    raw: &str,
    n: usize,
    stream: &[u8],
    fields: impl Iterator<Item = (&'h str, &'h str)>,
    first: impl Fn(&str) -> Option<&'h str>,
) {
    assert!(n <= stream.len() && n <= MAX_HEAD);
    assert_eq!(raw.as_bytes(), &stream[..n]);
    assert!(
        raw.ends_with("\r\n\r\n"),
        "head does not end with CRLF CRLF"
    );
    let bytes = raw.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && bytes[i - 1] == b'\r',
                "bare LF in an accepted head"
            );
        }
    }
    let mut count = 0;
    for (name, value) in fields {
        count += 1;
        assert!(!name.is_empty() && name.bytes().all(crate::http::head::is_tchar));
        assert!(!value.contains(['\r', '\n']), "line end inside a value");
        assert!(!value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']));
        assert!(first(name).is_some(), "a header that cannot be looked up");
    }
    assert!(count <= MAX_HEADERS);
}

fn request_holds(h: &RequestHead, n: usize, stream: &[u8]) {
    fields_hold(h.raw(), n, stream, h.headers_iter(), |name| h.header(name));
    assert!(!h.method().is_empty() && !h.target().is_empty());
    assert!(h.minor_version() <= 1);
    let target = h.target();
    assert!(h.path() == "/" || target.contains(h.path()));
    if let Some(q) = h.query() {
        assert!(target.contains('?') && target.contains(q));
    }
    let te = h.headers("transfer-encoding").next().is_some();
    let cl = h.headers("content-length").next().is_some();
    let framing = h.body_framing();
    match framing {
        Ok(BodyFraming::None) => assert!(!te && !cl),
        Ok(BodyFraming::Length(_)) => assert!(cl && !te),
        Ok(BodyFraming::Chunked) => assert!(te && !cl && h.minor_version() == 1),
        // A request never ends at close: that would be request smuggling.
        Ok(BodyFraming::UntilClose) => panic!("a request body framed until close"),
        Err(HeadError::Malformed(_)) => assert!(te || cl),
        Err(HeadError::TooLarge) => panic!("framing said too large"),
    }
    if let Ok(framing) = framing {
        body_after(framing, &stream[n..]);
    }
    if let Ok(upgrade) = validate_client(h) {
        let offered = (upgrade.protocols.as_deref(), upgrade.extensions.as_deref());
        // The gateway's 101 names no subprotocol or extension the backend did not choose.
        let mut reply = Vec::new();
        client_101(
            &mut reply,
            &upgrade.key,
            &Negotiated::default(),
            "txn-1",
            &[],
        );
        let (resp, used) = parse_response(&reply)
            .expect("the gateway's 101 parses")
            .expect("the gateway's 101 is complete");
        assert_eq!(used, reply.len());
        assert_eq!(
            check_backend_response(&resp, &upgrade.key, offered.0, offered.1),
            Ok(Negotiated::default())
        );
    }
}

/// A fixed client upgrade that backend answers are checked against.
const SENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const OFFERED_PROTOCOLS: &str = "chat, superchat";
const OFFERED_EXTENSIONS: &str = "permessage-deflate; client_max_window_bits";

/// A backend's answer to the fixed upgrade: what it negotiates must have been offered, and the
/// 101 the gateway then writes to the client must negotiate the same again.
fn upgrade_answer_holds(resp: &ResponseHead) {
    let _ = redirect_location(resp);
    let offered = (Some(OFFERED_PROTOCOLS), Some(OFFERED_EXTENSIONS));
    let Ok(negotiated) = check_backend_response(resp, SENT_KEY, offered.0, offered.1) else {
        return;
    };
    assert_eq!(resp.status(), 101);
    if let Some(p) = &negotiated.protocol {
        assert!(OFFERED_PROTOCOLS.split(", ").any(|o| o == p));
    }
    let mut reply = Vec::new();
    client_101(&mut reply, SENT_KEY, &negotiated, "txn-1", &[]);
    let (again, _) = parse_response(&reply)
        .expect("the gateway's 101 parses")
        .expect("the gateway's 101 is complete");
    assert_eq!(
        check_backend_response(&again, SENT_KEY, offered.0, offered.1),
        Ok(negotiated)
    );
}

fn response_holds(h: &ResponseHead, n: usize, stream: &[u8]) {
    fields_hold(h.raw(), n, stream, h.headers_iter(), |name| h.header(name));
    assert!((100..=599).contains(&h.status()));
    assert!(h.minor_version() <= 1);
    let status = h.status();
    match h.body_framing() {
        Ok(framing) => {
            if status < 200 || status == 204 || status == 304 {
                assert_eq!(framing, BodyFraming::None);
            }
            body_after(framing, &stream[n..]);
        }
        Err(e) => assert!(matches!(e, HeadError::Malformed(_))),
    }
    upgrade_answer_holds(h);
}

/// Feeds the bytes after a head to the tracker its framing asks for.
fn body_after(framing: BodyFraming, rest: &[u8]) {
    let mut body = Body::new(framing);
    if let Ok(taken) = body.feed(rest) {
        assert!(taken <= rest.len());
        match framing {
            BodyFraming::None => assert_eq!(taken, 0),
            BodyFraming::Length(l) => assert_eq!(taken as u64, l.min(rest.len() as u64)),
            BodyFraming::UntilClose => assert_eq!(taken, rest.len()),
            BodyFraming::Chunked => {}
        }
    }
}

/// Where one feeding of a body stopped.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    taken: Result<usize, BodyError>,
    done: bool,
    until_close: bool,
    payload: u64,
}

/// The `http_body` target. After the read sizes, one byte picks the framing (mostly chunked;
/// a length takes two more bytes); the rest is the body and whatever follows it. Fed whole and
/// read by read, the tracker must take the same bytes, end at the same place and fail with the
/// same error; a body is only ever taken short once it is done, and an error is sticky.
pub fn body(data: &[u8]) {
    let (reads, rest) = Reads::split(data);
    let Some((&pick, rest)) = rest.split_first() else {
        return;
    };
    let (framing, stream) = match pick % 8 {
        0 => (BodyFraming::None, rest),
        1 => (BodyFraming::UntilClose, rest),
        2 | 3 if rest.len() >= 2 => (
            BodyFraming::Length(u64::from(u16::from_be_bytes([rest[0], rest[1]]))),
            &rest[2..],
        ),
        _ => (BodyFraming::Chunked, rest),
    };
    let whole = feed(framing, stream, &mut Reads::split(&[]).0);
    let split = feed(framing, stream, &mut reads.clone());
    assert_eq!(whole, split, "body framing depends on the reads");
    match whole.taken {
        Ok(n) => {
            assert!(n <= stream.len());
            if n < stream.len() {
                assert!(whole.done, "a body taken short before its end");
            }
            if let BodyFraming::Length(l) = framing {
                assert_eq!(whole.payload, l.min(stream.len() as u64));
            }
            if whole.done {
                assert!(whole.payload <= n as u64);
            }
        }
        Err(_) => assert_eq!(framing, BodyFraming::Chunked),
    }
    assert_eq!(whole.until_close, framing == BodyFraming::UntilClose);
}

fn feed(framing: BodyFraming, stream: &[u8], reads: &mut Reads) -> Outcome {
    let mut body = Body::new(framing);
    let (mut at, mut taken) = (0usize, 0);
    let result = loop {
        let end = at.saturating_add(reads.next_len()).min(stream.len());
        let piece = &stream[at..end];
        match body.feed(piece) {
            Ok(n) => {
                assert!(n <= piece.len());
                if taken < at {
                    assert_eq!(n, 0, "bytes taken after the body's end");
                } else if n < piece.len() {
                    assert!(body.done(), "a read taken short before the body's end");
                }
                taken += n;
            }
            Err(e) => {
                assert_eq!(body.feed(b"more"), Err(e), "an error that is not sticky");
                break Err(e);
            }
        }
        at = end;
        if at == stream.len() {
            break Ok(taken);
        }
    };
    Outcome {
        taken: result,
        done: body.done(),
        until_close: body.until_close(),
        payload: body.payload(),
    }
}
