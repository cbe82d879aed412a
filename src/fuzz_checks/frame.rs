//! The WebSocket frame codec ([`crate::ws::frame`]), in both directions.

use super::Reads;
use crate::ws::frame::{
    Decoder, FrameHead, MAX_CLOSE_FRAME, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, Next, Role,
    apply_mask, opcode, write_close, write_header,
};

/// Message limits the fuzzer picks from: none, tiny, at the control-frame bound, and the
/// 16-bit length boundary.
const LIMITS: [u64; 6] = [u64::MAX, 0, 1, 125, 1000, 65536];

/// The `ws_frame` target. After the read sizes, one byte picks the role (client frames masked
/// or server frames unmasked), whether permessage-deflate was negotiated and the message
/// limit; the rest is the stream. Decoded whole and read by read, the events must be the same; the payload
/// unmasked piece by piece must match a byte-by-byte unmasking; re-encoding the decoded
/// frames with [`write_header`] must decode to the same frames; and a close frame written with
/// [`write_close`] from the input's bytes must decode to its code and reason.
pub fn frames(data: &[u8]) {
    let (reads, rest) = Reads::split(data);
    let Some((&pick, stream)) = rest.split_first() else {
        return;
    };
    let role = if pick & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let deflate = pick & 0b10 != 0;
    let limit = LIMITS[usize::from(pick >> 4) % LIMITS.len()];
    let decoder = Decoder::new(role, deflate, limit);

    let whole = decode(decoder.clone(), stream, &mut Reads::split(&[]).0);
    let split = decode(decoder.clone(), stream, &mut reads.clone());
    assert_eq!(whole, split, "decoded events depend on the reads");
    trace_holds(&whole, role, stream);

    // The encoder and the decoder agree: the frames written again, each header in its shortest
    // form, decode to the same frames.
    let again = reencode(&whole);
    let replay = decode(decoder, &again, &mut reads.clone());
    assert_eq!(replay.frames.len(), whole.frames.len());
    for (a, b) in replay.frames.iter().zip(&whole.frames) {
        assert_eq!((a.head, &a.raw, a.start), (b.head, &b.raw, b.start));
    }
    assert_eq!(
        (replay.closed, replay.close_code),
        (whole.closed, whole.close_code)
    );

    close_round_trip(role, stream);
}

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    head: FrameHead,
    header_len: usize,
    start: bool,
    /// Closed before this frame's header.
    after_close: bool,
    /// Payload as it arrived.
    raw: Vec<u8>,
    /// Payload unmasked one step at a time with [`apply_mask`].
    payload: Vec<u8>,
    message_done: bool,
    in_message: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Trace {
    frames: Vec<Frame>,
    violation: Option<(u16, &'static str)>,
    consumed: usize,
    closed: bool,
    close_code: Option<u16>,
}

/// Plays the relay: appends reads of the sizes `reads` gives, consumes exactly what each step
/// reports and checks the step contract on the way.
fn decode(mut dec: Decoder, stream: &[u8], reads: &mut Reads) -> Trace {
    let (mut pos, mut fed) = (0usize, 0usize);
    let mut t = Trace::default();
    loop {
        let was_closed = dec.closed();
        let offset = dec.payload_offset();
        let input = &stream[pos..fed];
        match dec.next(input) {
            Next::NeedMore => {
                assert!(
                    input.len() < MAX_HEADER_LEN,
                    "need more with a whole header"
                );
                assert!(dec.current().is_none() || input.is_empty());
                if fed == stream.len() {
                    break;
                }
                fed = fed.saturating_add(reads.next_len()).min(stream.len());
            }
            Next::Header {
                head,
                header_len,
                message_start,
            } => {
                assert!((2..=MAX_HEADER_LEN).contains(&header_len));
                assert!(header_len <= input.len());
                assert_eq!(dec.current().is_some(), head.len > 0);
                assert_eq!(dec.remaining(), head.len);
                if head.is_control() {
                    assert!(head.fin && head.len <= MAX_CONTROL_PAYLOAD as u64);
                }
                pos += header_len;
                t.frames.push(Frame {
                    head,
                    header_len,
                    start: message_start,
                    after_close: was_closed,
                    raw: Vec::new(),
                    payload: Vec::new(),
                    message_done: dec.message_done(),
                    in_message: dec.in_message(),
                });
            }
            Next::Payload { len } => {
                assert!(len >= 1 && len <= input.len());
                let f = t.frames.last_mut().expect("payload before any header");
                let mut bytes = input[..len].to_vec();
                f.raw.extend_from_slice(&bytes);
                if let Some(key) = f.head.mask {
                    apply_mask(&mut bytes, key, offset as usize);
                }
                f.payload.extend_from_slice(&bytes);
                assert!(f.raw.len() as u64 <= f.head.len);
                f.message_done = dec.message_done();
                f.in_message = dec.in_message();
                pos += len;
            }
            Next::Violation { code, reason } => {
                assert!(code == 1002 || code == 1009);
                t.violation = Some((code, reason));
                assert_eq!(dec.next(&stream[pos..]), Next::Violation { code, reason });
                assert_eq!(dec.current(), None);
                break;
            }
        }
    }
    t.consumed = pos;
    t.closed = dec.closed();
    t.close_code = dec.close_code();
    t
}

/// What a decoded stream guarantees whatever the bytes were.
fn trace_holds(t: &Trace, role: Role, stream: &[u8]) {
    assert!(t.consumed <= stream.len());
    let mut first_close = None;
    for f in &t.frames {
        assert_eq!(f.head.mask.is_some(), role == Role::Client);
        let key = f.head.mask.unwrap_or([0; 4]);
        for (i, (&raw, &plain)) in f.raw.iter().zip(&f.payload).enumerate() {
            assert_eq!(
                raw ^ key[i % 4],
                plain,
                "unmasking differs at payload byte {i}"
            );
        }
        if f.head.opcode == opcode::CLOSE && first_close.is_none() {
            first_close = Some(f);
        }
    }
    // The close code is the first close frame's first two payload bytes, once it is complete.
    match first_close {
        Some(f) if f.payload.len() as u64 == f.head.len => {
            assert!(t.closed);
            let code =
                (f.payload.len() >= 2).then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
            assert_eq!(t.close_code, code);
        }
        _ => assert!(!t.closed && t.close_code.is_none()),
    }
}

/// The decoded frames written again: headers by [`write_header`] (RSV bits added, as it writes
/// none), payload as it arrived.
fn reencode(t: &Trace) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &t.frames {
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = write_header(
            &mut head,
            f.head.fin,
            f.head.opcode,
            f.head.mask,
            f.head.len,
        );
        head[0] |= f.head.rsv << 4;
        let shortest = match f.head.len {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        } + if f.head.mask.is_some() { 4 } else { 0 };
        assert_eq!(n, shortest);
        out.extend_from_slice(&head[..n]);
        out.extend_from_slice(&f.raw);
    }
    out
}

/// A close frame written from the input's bytes decodes to its code and reason: the reason
/// cut to what fits, on a character boundary.
fn close_round_trip(role: Role, stream: &[u8]) {
    let code = match stream {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1000,
    };
    let reason = String::from_utf8_lossy(stream.get(2..).unwrap_or(&[]));
    let mask = match (role, stream) {
        (Role::Client, [a, b, c, d, ..]) => Some([*d, *c, *b, *a]),
        (Role::Client, _) => Some([1, 2, 3, 4]),
        (Role::Server, _) => None,
    };
    let mut out = [0u8; MAX_CLOSE_FRAME];
    let n = write_close(&mut out, code, &reason, mask);
    let t = decode(
        Decoder::new(role, false, 0),
        &out[..n],
        &mut Reads::split(&[]).0,
    );
    assert_eq!(t.violation, None);
    assert_eq!(t.consumed, n);
    assert_eq!(t.frames.len(), 1);
    assert!(t.closed);
    assert_eq!(t.close_code, Some(code));
    let sent = std::str::from_utf8(&t.frames[0].payload[2..]).expect("reason cut inside a char");
    assert!(reason.starts_with(sent));
    assert!(sent.len() + 2 <= MAX_CONTROL_PAYLOAD);
    assert!(sent.len() == reason.len() || sent.len() + 2 + 4 > MAX_CONTROL_PAYLOAD);
}
