//! Cross-checks `ws::frame` against tungstenite, an independent RFC 6455 implementation:
//! frames tungstenite encodes must decode to exactly those frames, and frames our helpers
//! write must be accepted by tungstenite's parser and its WebSocket reader.

use std::io::{self, Cursor, Read, Write};

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};
use tungstenite::protocol::{Role as TRole, WebSocket};
use tungstenite::{Bytes, Message};
use wsgate::ws::frame::{
    Decoder, FrameHead, MAX_CLOSE_FRAME, MAX_HEADER_LEN, Next, Role, apply_mask, opcode,
    write_close, write_header,
};

const KEYS: [[u8; 4]; 3] = [
    [0x9a, 0x01, 0x7e, 0xc4],
    [0xff, 0xff, 0xff, 0xff],
    [0, 0, 0, 1],
];

/// In-memory duplex stream for tungstenite's WebSocket.
struct Pipe {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Pipe {
    fn new(input: Vec<u8>) -> Pipe {
        Pipe {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Decoded {
    head: FrameHead,
    header_len: usize,
    message_start: bool,
    payload: Vec<u8>,
}

/// Decodes a whole stream in reads of `read` bytes; every byte must be consumed.
fn decode(dec: &mut Decoder, stream: &[u8], read: usize) -> Vec<Decoded> {
    let (mut pos, mut fed) = (0, 0);
    let mut out: Vec<Decoded> = Vec::new();
    loop {
        let offset = dec.payload_offset() as usize;
        match dec.next(&stream[pos..fed]) {
            Next::NeedMore if fed == stream.len() => break,
            Next::NeedMore => fed = (fed + read).min(stream.len()),
            Next::Header {
                head,
                header_len,
                message_start,
            } => {
                pos += header_len;
                out.push(Decoded {
                    head,
                    header_len,
                    message_start,
                    payload: Vec::new(),
                });
            }
            Next::Payload { len } => {
                let frame = out.last_mut().expect("payload without header");
                let mut bytes = stream[pos..pos + len].to_vec();
                if let Some(key) = frame.head.mask {
                    apply_mask(&mut bytes, key, offset);
                }
                frame.payload.extend_from_slice(&bytes);
                pos += len;
            }
            v @ Next::Violation { .. } => panic!("{v:?} at byte {pos}"),
        }
    }
    assert_eq!(pos, stream.len(), "bytes left over");
    out
}

fn rsv_bits(h: &FrameHeader) -> u8 {
    (u8::from(h.rsv1) << 2) | (u8::from(h.rsv2) << 1) | u8::from(h.rsv3)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn tungstenite_frames(role: Role) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, len) in [0usize, 1, 125, 126, 65535, 65536, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let data = if i % 2 == 0 { Data::Binary } else { Data::Text };
        frames.push(Frame::message(pattern(len), OpCode::Data(data), true));
    }
    // A fragmented message with control frames between its fragments.
    frames.push(Frame::message(pattern(10), OpCode::Data(Data::Text), false));
    frames.push(Frame::ping(Bytes::from_static(b"are you there")));
    frames.push(Frame::message(
        pattern(0),
        OpCode::Data(Data::Continue),
        false,
    ));
    frames.push(Frame::pong(Bytes::new()));
    frames.push(Frame::message(
        pattern(300),
        OpCode::Data(Data::Continue),
        true,
    ));
    // RSV1 as permessage-deflate sets it on a message's first frame.
    let mut deflated = Frame::message(pattern(20), OpCode::Data(Data::Binary), true);
    deflated.header_mut().rsv1 = true;
    frames.push(deflated);
    frames.push(Frame::close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "shutting down".into(),
    })));
    frames.push(Frame::close(None));
    for (i, f) in frames.iter_mut().enumerate() {
        if role == Role::Client {
            f.header_mut().mask = Some(KEYS[i % KEYS.len()]);
        }
    }
    frames
}

#[test]
fn frames_encoded_by_tungstenite_decode_exactly() {
    for role in [Role::Client, Role::Server] {
        let frames = tungstenite_frames(role);
        let mut stream = Vec::new();
        for f in frames.clone() {
            f.format(&mut stream).expect("tungstenite format");
        }
        for read in [usize::MAX, 1, 13, 4096] {
            let mut dec = Decoder::new(role, true, u64::MAX);
            let got = decode(&mut dec, &stream, read);
            assert_eq!(got.len(), frames.len());
            for (g, f) in got.iter().zip(&frames) {
                let h = f.header();
                let want = FrameHead {
                    fin: h.is_final,
                    rsv: rsv_bits(h),
                    opcode: u8::from(h.opcode),
                    mask: h.mask,
                    len: f.payload().len() as u64,
                };
                assert_eq!(g.head, want);
                assert_eq!(g.header_len, h.len(want.len));
                assert_eq!(
                    g.message_start,
                    matches!(h.opcode, OpCode::Data(Data::Text | Data::Binary))
                );
                assert!(g.payload == f.payload(), "payload of {want:?}");
            }
            assert!(dec.closed());
            assert_eq!(dec.close_code(), Some(1001));
            assert!(!dec.in_message());
        }
    }
}

#[test]
fn messages_sent_by_tungstenite_websocket_decode() {
    let fragments = [
        Frame::message(
            Bytes::from_static(b"frag-"),
            OpCode::Data(Data::Text),
            false,
        ),
        Frame::message(
            Bytes::from_static(b"mented"),
            OpCode::Data(Data::Continue),
            true,
        ),
    ];
    for (trole, role) in [(TRole::Client, Role::Client), (TRole::Server, Role::Server)] {
        let mut ws = WebSocket::from_raw_socket(Pipe::new(Vec::new()), trole, None);
        ws.send(Message::text("hello")).expect("send");
        ws.send(Message::binary(pattern(70_000))).expect("send");
        ws.send(Message::Ping(Bytes::from_static(b"p")))
            .expect("send");
        for f in fragments.clone() {
            ws.send(Message::Frame(f)).expect("send");
        }
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "quota".into(),
        })))
        .expect("send");
        let stream = std::mem::take(&mut ws.get_mut().output);

        let mut dec = Decoder::new(role, false, 1 << 20);
        let got = decode(&mut dec, &stream, 977);
        let ops: Vec<u8> = got.iter().map(|g| g.head.opcode).collect();
        assert_eq!(ops, [1, 2, 9, 1, 0, 8]);
        assert!(
            got.iter()
                .all(|g| g.head.mask.is_some() == (role == Role::Client))
        );
        assert_eq!(got[0].payload, b"hello");
        assert_eq!(got[1].payload, pattern(70_000));
        assert_eq!(got[2].payload, b"p");
        assert_eq!(
            [&got[3].payload[..], &got[4].payload[..]].concat(),
            b"frag-mented"
        );
        assert!(!got[3].head.fin && got[4].head.fin);
        assert_eq!(&got[5].payload[2..], b"quota");
        assert_eq!(dec.close_code(), Some(1008));
    }
}

#[test]
fn headers_we_write_parse_in_tungstenite() {
    for mask in [None, Some(KEYS[0])] {
        for len in [0u64, 1, 125, 126, 65535, 65536, 1 << 20, 1 << 40] {
            for (fin, op) in [
                (true, opcode::TEXT),
                (false, opcode::BINARY),
                (true, opcode::CONTINUATION),
            ] {
                let mut out = [0u8; MAX_HEADER_LEN];
                let n = write_header(&mut out, fin, op, mask, len);
                let mut cur = Cursor::new(&out[..n]);
                let (h, parsed_len) = FrameHeader::parse(&mut cur)
                    .expect("valid header")
                    .expect("complete header");
                assert_eq!(cur.position() as usize, n);
                assert_eq!(parsed_len, len);
                assert_eq!(
                    (h.is_final, u8::from(h.opcode), h.mask, rsv_bits(&h)),
                    (fin, op, mask, 0)
                );
                assert_eq!(h.len(len), n);
            }
        }
    }
}

/// What the gateway itself sends: an echoed text masked in two pieces, a pong and a close.
fn gateway_frames(mask: Option<[u8; 4]>, reason: &str) -> Vec<u8> {
    let text = "echo: ünïcode".repeat(20);
    let mut out = Vec::new();
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = write_header(&mut head, true, opcode::TEXT, mask, text.len() as u64);
    out.extend_from_slice(&head[..n]);
    let mut payload = text.into_bytes();
    if let Some(key) = mask {
        let (a, b) = payload.split_at_mut(5);
        apply_mask(a, key, 0);
        apply_mask(b, key, 5);
    }
    out.extend_from_slice(&payload);
    let n = write_header(&mut head, true, opcode::PONG, mask, 0);
    out.extend_from_slice(&head[..n]);
    let mut close = [0u8; MAX_CLOSE_FRAME];
    let n = write_close(&mut close, 1013, reason, mask);
    out.extend_from_slice(&close[..n]);
    out
}

#[test]
fn frames_we_write_are_read_by_tungstenite_websocket() {
    let reason = "try again later, ".repeat(10);
    // Masked toward a backend (tungstenite as server), unmasked toward a client.
    for (mask, trole) in [(Some(KEYS[2]), TRole::Server), (None, TRole::Client)] {
        let mut ws =
            WebSocket::from_raw_socket(Pipe::new(gateway_frames(mask, &reason)), trole, None);
        match ws.read().expect("text") {
            Message::Text(t) => assert_eq!(t.as_str(), "echo: ünïcode".repeat(20)),
            m => panic!("expected text, got {m:?}"),
        }
        assert_eq!(ws.read().expect("pong"), Message::Pong(Bytes::new()));
        match ws.read().expect("close") {
            Message::Close(Some(cf)) => {
                assert_eq!(u16::from(cf.code), 1013);
                assert_eq!(cf.reason.as_str(), &reason[..123]);
            }
            m => panic!("expected close, got {m:?}"),
        }
    }
    // The reader is strict: our unmasked frames are refused by a server, as they must be.
    let mut ws =
        WebSocket::from_raw_socket(Pipe::new(gateway_frames(None, "")), TRole::Server, None);
    assert!(ws.read().is_err());
}

#[test]
fn close_code_ours_and_theirs_agree() {
    for code in [1000u16, 1001, 1002, 1008, 1009, 1011, 1013, 3000, 4999] {
        let mut ours = [0u8; MAX_CLOSE_FRAME];
        let n = write_close(&mut ours, code, "r", Some(KEYS[1]));
        let mut theirs = Vec::new();
        let mut f = Frame::close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "r".into(),
        }));
        f.header_mut().mask = Some(KEYS[1]);
        f.format(&mut theirs).expect("format");
        assert_eq!(&ours[..n], &theirs[..]);
        let mut dec = Decoder::new(Role::Client, false, 0);
        decode(&mut dec, &theirs, 3);
        assert_eq!(dec.close_code(), Some(code));
        assert_eq!(u8::from(OpCode::Control(Control::Close)), opcode::CLOSE);
    }
}
