//! Where a message body ends, sans-I/O.
//!
//! A [`Body`] is fed the bytes that follow a head, in slices split anywhere, and says how many
//! of them belong to the body; whatever follows is the next message on the connection. Chunked
//! framing is checked as it passes but not decoded: the engine relays it unchanged, so the
//! chunk-size lines, the CRLFs and the trailers count as body bytes. Only for a client that
//! cannot read chunked framing (HTTP/1.0) does [`Body::feed_decoded`] take it off in place.
//! Data is skipped in whole runs; only framing bytes are looked at one by one.

use std::fmt;

use super::head::{BodyFraming, is_tchar};

/// Longest chunk-size line: digits, extensions and whitespace, the CRLF not included.
/// Extensions are not used by anything the gateway serves, so this only has to be generous.
pub const MAX_CHUNK_LINE: u32 = 4096;
/// Largest trailer section: its field lines and the final CRLF.
pub const MAX_TRAILERS: u32 = 8 * 1024;

/// Why a chunked body is malformed. Requests get a 400, responses a 502; either way the
/// connection cannot be reused since the message's end is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// A chunk-size line without hex digits, or with other bytes than an extension after them.
    ChunkSize,
    /// A chunk size that does not fit in 64 bits.
    ChunkSizeOverflow,
    /// A control byte in a chunk extension.
    ChunkExtension,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`].
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF.
    ChunkDataEnd,
    /// A LF without the CR before it.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// A trailer line that is not `name:value`.
    Trailer,
    /// A trailer line starting with a space or a tab.
    TrailerFolded,
    /// A trailer section larger than [`MAX_TRAILERS`].
    TrailersTooLarge,
}

impl BodyError {
    pub fn reason(self) -> &'static str {
        match self {
            BodyError::ChunkSize => "invalid chunk size",
            BodyError::ChunkSizeOverflow => "chunk size too large",
            BodyError::ChunkExtension => "invalid chunk extension",
            BodyError::ChunkLineTooLong => "chunk-size line too long",
            BodyError::ChunkDataEnd => "chunk data not followed by CRLF",
            BodyError::BareLf => "bare LF in chunked framing",
            BodyError::BareCr => "CR not followed by LF in chunked framing",
            BodyError::Trailer => "invalid trailer field",
            BodyError::TrailerFolded => "obsolete line folding in trailer",
            BodyError::TrailersTooLarge => "trailer section too large",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for BodyError {}

/// Where the tracker is. The chunked states follow RFC 9112 §7.1:
/// `chunk-size [chunk-ext] CRLF chunk-data CRLF`, then `0 [chunk-ext] CRLF`, trailer field
/// lines and the final CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `Content-Length`: `left` bytes to go.
    Length,
    UntilClose,
    /// At the start of a chunk-size line, no digit yet.
    SizeStart,
    /// After at least one digit; `left` holds the size so far.
    Size,
    /// Whitespace after the digits, which only an extension may follow (BWS).
    SizeSpace,
    /// After `;`, up to the CR.
    Ext,
    /// After the CR of a chunk-size line.
    SizeLf,
    /// Chunk data: `left` bytes to go.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// After the final CR.
    EndLf,
    Done,
    /// Sticky: a malformed body cannot be resynchronised.
    Failed(BodyError),
}

/// Tracks one message body as its bytes pass: 24 bytes of state, no allocation.
#[derive(Debug, Clone)]
pub struct Body {
    state: State,
    /// Bytes of `Content-Length` or of the current chunk still to come; the chunk size while
    /// its digits are read.
    left: u64,
    /// Payload bytes seen: the body without chunked framing.
    payload: u64,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line: u32,
}

impl Body {
    /// The body ends only when the connection does (a response without length or chunking).
    pub fn until_close(&self) -> bool {
        matches!(self.state, State::UntilClose)
    }

    pub fn new(framing: BodyFraming) -> Body {
        let (state, left) = match framing {
            BodyFraming::None | BodyFraming::Length(0) => (State::Done, 0),
            BodyFraming::Length(n) => (State::Length, n),
            BodyFraming::Chunked => (State::SizeStart, 0),
            BodyFraming::UntilClose => (State::UntilClose, 0),
        };
        Body {
            state,
            left,
            payload: 0,
            line: 0,
        }
    }

    /// How many bytes from the start of `input` belong to the body. Fewer than `input.len()`
    /// only once the body is [`done`](Body::done): the rest is the next message. After an
    /// error every call returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::UntilClose => {
                    self.payload = self.payload.saturating_add((input.len() - i) as u64);
                    i = input.len();
                }
                State::Length | State::Data => {
                    let n = self.left.min((input.len() - i) as u64);
                    self.left -= n;
                    self.payload = self.payload.saturating_add(n);
                    i += n as usize;
                    if self.left == 0 {
                        self.state = match self.state {
                            State::Length => State::Done,
                            _ => State::DataCr,
                        };
                    }
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    if let Err(e) = self.step(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        Ok(i)
    }

    /// Like [`feed`](Body::feed), but also decodes: the payload bytes of the body's part of
    /// `buf` are moved to its front, without chunk-size lines, CRLFs or trailers. Returns how
    /// many bytes belong to the body and how many payload bytes are now at the front. For a
    /// body that is not chunked every byte taken is payload.
    pub fn feed_decoded(&mut self, buf: &mut [u8]) -> Result<(usize, usize), BodyError> {
        let (mut read, mut kept) = (0, 0);
        while read < buf.len() && !self.done() {
            let rest = buf.len() - read;
            // A run of payload goes whole; framing one byte at a time, so that no call to
            // `feed` crosses from payload into framing.
            let (run, payload) = match self.state {
                State::Length | State::Data => (self.left.min(rest as u64) as usize, true),
                State::UntilClose => (rest, true),
                _ => (1, false),
            };
            let took = self.feed(&buf[read..read + run])?;
            if payload {
                buf.copy_within(read..read + took, kept);
                kept += took;
            }
            read += took;
            if took == 0 {
                break;
            }
        }
        Ok((read, kept))
    }

    /// Whether the whole body has passed. Never true for a body that ends at close.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes seen so far, chunked framing not included.
    pub fn payload(&self) -> u64 {
        self.payload
    }

    /// One framing byte of a chunked body.
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        use BodyError as E;
        use State as S;
        self.state = match self.state {
            S::SizeStart | S::Size => match (self.state, b) {
                (_, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    // Leading zeros do not overflow, so the line bound is what stops them.
                    self.count_line()?;
                    if self.left > u64::MAX >> 4 {
                        return Err(E::ChunkSizeOverflow);
                    }
                    self.left = self.left << 4 | hex(b);
                    S::Size
                }
                (S::Size, b'\r') => S::SizeLf,
                (S::Size, b';') => {
                    self.count_line()?;
                    S::Ext
                }
                (S::Size, b' ' | b'\t') => {
                    self.count_line()?;
                    S::SizeSpace
                }
                (S::Size, b'\n') => return Err(E::BareLf),
                _ => return Err(E::ChunkSize),
            },
            S::SizeSpace => match b {
                b' ' | b'\t' => {
                    self.count_line()?;
                    S::SizeSpace
                }
                b';' => {
                    self.count_line()?;
                    S::Ext
                }
                _ => return Err(E::ChunkSize),
            },
            // The extension's grammar (token, `=`, token or quoted string) is not checked:
            // none of it can hold a CR or LF, so the line's end is certain either way.
            S::Ext => match b {
                b'\r' => S::SizeLf,
                b'\n' => return Err(E::BareLf),
                b'\t' | b' '..=b'~' | 0x80..=0xff => {
                    self.count_line()?;
                    S::Ext
                }
                _ => return Err(E::ChunkExtension),
            },
            S::SizeLf => match b {
                b'\n' => {
                    self.line = 0;
                    if self.left == 0 {
                        S::TrailerStart
                    } else {
                        S::Data
                    }
                }
                _ => return Err(E::BareCr),
            },
            S::DataCr => match b {
                b'\r' => S::DataLf,
                b'\n' => return Err(E::BareLf),
                _ => return Err(E::ChunkDataEnd),
            },
            S::DataLf => match b {
                b'\n' => S::SizeStart,
                _ => return Err(E::BareCr),
            },
            S::TrailerStart | S::TrailerName | S::TrailerValue | S::TrailerLf | S::EndLf => {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return Err(E::TrailersTooLarge);
                }
                self.trailer(b)?
            }
            S::Length | S::UntilClose | S::Data | S::Done | S::Failed(_) => self.state,
        };
        Ok(())
    }

    /// One byte of the trailer section: field lines as in a head, then CRLF.
    fn trailer(&self, b: u8) -> Result<State, BodyError> {
        use BodyError as E;
        use State as S;
        Ok(match (self.state, b) {
            (S::TrailerStart, b'\r') => S::EndLf,
            (S::TrailerStart, b' ' | b'\t') => return Err(E::TrailerFolded),
            (S::TrailerStart | S::TrailerName, b) if is_tchar(b) => S::TrailerName,
            (S::TrailerName, b':') => S::TrailerValue,
            (S::TrailerValue, b'\r') => S::TrailerLf,
            (S::TrailerValue, b'\t' | b' '..=b'~' | 0x80..=0xff) => S::TrailerValue,
            (S::TrailerLf, b'\n') => S::TrailerStart,
            (S::EndLf, b'\n') => S::Done,
            (S::TrailerLf | S::EndLf, _) => return Err(E::BareCr),
            (_, b'\n') => return Err(E::BareLf),
            _ => return Err(E::Trailer),
        })
    }

    fn count_line(&mut self) -> Result<(), BodyError> {
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(BodyError::ChunkLineTooLong);
        }
        Ok(())
    }
}

fn hex(b: u8) -> u64 {
    u64::from(match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a pipelining client sends after the message under test.
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\n\r\n";

    /// Feeds `input` cut at the ascending offsets `cuts` and returns the bytes taken, checking
    /// that a piece is taken short only once the body is done, and nothing after that.
    fn feed_cut(body: &mut Body, input: &[u8], cuts: &[usize]) -> Result<usize, BodyError> {
        let (mut taken, mut at, mut short) = (0, 0, false);
        for end in cuts.iter().copied().chain([input.len()]) {
            let piece = &input[at..end];
            let n = body.feed(piece)?;
            if short {
                assert_eq!(n, 0, "bytes taken after the end");
            } else if n < piece.len() {
                assert!(body.done(), "short count before the end");
                short = true;
            }
            taken += n;
            at = end;
        }
        Ok(taken)
    }

    /// Valid chunked messages and their payload sizes.
    const CHUNKED: [(&[u8], u64); 6] = [
        (b"0\r\n\r\n", 0),
        (b"5\r\nhello\r\n0\r\n\r\n", 5),
        (b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", 26),
        // Extensions, whitespace before them, leading zeros, data that looks like framing,
        // trailers with empty values.
        (
            b"3;name=value\r\nabc\r\n00004 \t;q=\"a;b\"\t\r\n\r\n\r\n\r\n\
              0;last\r\nExpires: never\r\nX-Sum:\r\nX-Empty: \t\r\n\r\n",
            7,
        ),
        (b"a\r\n0\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", 10),
        (b"2\r\n\xff\x00\r\n000\r\n\r\n", 2),
    ];

    /// Every valid message with the next one behind it, and how it must be taken.
    fn valid() -> Vec<(BodyFraming, Vec<u8>, usize, u64)> {
        let mut all: Vec<_> = CHUNKED
            .iter()
            .map(|&(m, p)| (BodyFraming::Chunked, m, p))
            .chain([
                (BodyFraming::Length(5), &b"hello"[..], 5),
                (BodyFraming::Length(1), b"\r", 1),
                (BodyFraming::Length(0), b"", 0),
                (BodyFraming::None, b"", 0),
            ])
            .map(|(f, m, p)| (f, [m, NEXT].concat(), m.len(), p))
            .collect();
        // A message split right before its end must not take the next one's bytes.
        all.push((BodyFraming::Length(3), b"abcdef".to_vec(), 3, 3));
        all
    }

    fn check(framing: BodyFraming, input: &[u8], cuts: &[usize], len: usize, payload: u64) {
        let mut body = Body::new(framing);
        let taken = feed_cut(&mut body, input, cuts);
        let what = format!(
            "{framing:?} {:?} cut at {cuts:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(taken, Ok(len), "{what}");
        assert!(body.done(), "{what}");
        assert_eq!(body.payload(), payload, "{what}");
        assert_eq!(body.feed(NEXT), Ok(0), "{what}");
    }

    /// `feed_decoded` over `input` cut at `cuts`: the bytes taken and the payload decoded.
    fn decode_cut(framing: BodyFraming, input: &[u8], cuts: &[usize]) -> (usize, Vec<u8>) {
        let mut body = Body::new(framing);
        let (mut taken, mut at, mut out) = (0, 0, Vec::new());
        for end in cuts.iter().copied().chain([input.len()]) {
            let mut piece = input[at..end].to_vec();
            let (n, kept) = body.feed_decoded(&mut piece).expect("valid body");
            out.extend_from_slice(&piece[..kept]);
            taken += n;
            at = end;
        }
        (taken, out)
    }

    #[test]
    fn decoding_yields_the_payload_however_the_input_is_cut() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", b"abcde"),
            (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
            (b"0\r\n\r\n", b""),
        ];
        for &(message, payload) in cases {
            let input = [message, NEXT].concat();
            for a in 0..=input.len() {
                for b in a..=input.len() {
                    let (taken, out) = decode_cut(BodyFraming::Chunked, &input, &[a, b]);
                    let what = format!("{:?} cut at {a}, {b}", String::from_utf8_lossy(message));
                    assert_eq!(taken, message.len(), "{what}");
                    assert_eq!(out, payload, "{what}");
                }
            }
        }
        let (taken, out) = decode_cut(BodyFraming::Length(3), b"abcdef", &[1]);
        assert_eq!((taken, out.as_slice()), (3, &b"abc"[..]));
        let (taken, out) = decode_cut(BodyFraming::UntilClose, b"abcdef", &[2, 4]);
        assert_eq!((taken, out.as_slice()), (6, &b"abcdef"[..]));
    }

    #[test]
    fn decoding_a_malformed_body_fails_as_feeding_does() {
        let mut body = Body::new(BodyFraming::Chunked);
        let mut input = *b"5\r\nhello\r\nzz\r\n";
        assert_eq!(body.feed_decoded(&mut input), Err(BodyError::ChunkSize));
    }

    #[test]
    fn every_single_and_double_cut() {
        for (framing, input, len, payload) in valid() {
            check(framing, &input, &[], len, payload);
            for a in 0..=input.len() {
                check(framing, &input, &[a], len, payload);
                for b in a..=input.len() {
                    check(framing, &input, &[a, b], len, payload);
                }
            }
        }
    }

    #[test]
    fn byte_by_byte_and_scattered_cuts() {
        let mut x: u32 = 7;
        for (framing, input, len, payload) in valid() {
            let every: Vec<usize> = (1..input.len()).collect();
            check(framing, &input, &every, len, payload);
            for _ in 0..200 {
                let mut cuts = Vec::new();
                let mut at = 0;
                loop {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    at += (x >> 16) as usize % 9;
                    if at > input.len() {
                        break;
                    }
                    cuts.push(at);
                }
                check(framing, &input, &cuts, len, payload);
            }
        }
    }

    #[test]
    fn pipelined_messages_follow_each_other() {
        let first = &b"5\r\nhello\r\n0\r\nX: 1\r\n\r\n"[..];
        let second = &b"3\r\nabc\r\n0\r\n\r\n"[..];
        let stream = [first, second, b"garbage".as_slice()].concat();
        let mut body = Body::new(BodyFraming::Chunked);
        assert_eq!(body.feed(&stream), Ok(first.len()));
        assert!(body.done());
        let rest = &stream[first.len()..];
        let mut body = Body::new(BodyFraming::Chunked);
        assert_eq!(body.feed(rest), Ok(second.len()));
        assert!(body.done());
        assert_eq!(body.payload(), 3);
        // What follows the final CRLF is the next message's business, however it looks.
        assert_eq!(&rest[second.len()..], b"garbage");
        let mut body = Body::new(BodyFraming::Length(4));
        assert_eq!(body.feed(b"abcdGET"), Ok(4));
        assert_eq!(body.feed(b"GET"), Ok(0));
    }

    #[test]
    fn until_close_takes_everything_and_never_ends() {
        let mut body = Body::new(BodyFraming::UntilClose);
        assert_eq!(body.feed(b""), Ok(0));
        assert_eq!(body.feed(b"0\r\n\r\n"), Ok(5));
        assert_eq!(body.feed(NEXT), Ok(NEXT.len()));
        assert!(!body.done());
        assert_eq!(body.payload(), (5 + NEXT.len()) as u64);
    }

    #[test]
    fn no_body_takes_nothing() {
        for framing in [BodyFraming::None, BodyFraming::Length(0)] {
            let mut body = Body::new(framing);
            assert!(body.done());
            assert_eq!(body.feed(NEXT), Ok(0));
            assert_eq!(body.payload(), 0);
        }
    }

    #[test]
    fn large_sizes() {
        let mut body = Body::new(BodyFraming::Length(u64::MAX));
        assert_eq!(body.feed(&[0; 100]), Ok(100));
        assert!(!body.done());
        // The largest chunk size that fits, and leading zeros that do not overflow.
        let mut body = Body::new(BodyFraming::Chunked);
        assert_eq!(body.feed(b"FFFFFFFFFFFFFFFF\r\nab"), Ok(20));
        assert_eq!(body.payload(), 2);
        assert!(!body.done());
        let mut body = Body::new(BodyFraming::Chunked);
        let zeros = [&[b'0'; 40][..], b"1\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(body.feed(&zeros), Ok(zeros.len()));
        assert!(body.done());
    }

    /// Chunked inputs whose last byte is the first wrong one, and the error it must give.
    fn malformed() -> Vec<(Vec<u8>, BodyError)> {
        use BodyError as E;
        let line = MAX_CHUNK_LINE as usize;
        let mut cases: Vec<(Vec<u8>, BodyError)> = [
            (&b"x"[..], E::ChunkSize),
            (b"\r", E::ChunkSize),
            (b"\n", E::ChunkSize),
            (b"-", E::ChunkSize),
            (b"+", E::ChunkSize),
            (b" ", E::ChunkSize),
            (b";", E::ChunkSize),
            (b"0x", E::ChunkSize),
            (b"5 \r", E::ChunkSize),
            (b"5 x", E::ChunkSize),
            (b"5g", E::ChunkSize),
            (b"5\r\nhello\r\n\r", E::ChunkSize),
            (b"10000000000000000", E::ChunkSizeOverflow),
            (b"FFFFFFFFFFFFFFFF0", E::ChunkSizeOverflow),
            (b"5;a\x01", E::ChunkExtension),
            (b"5;a\x7f", E::ChunkExtension),
            (b"5;\x00", E::ChunkExtension),
            (b"5\r\nhelloX", E::ChunkDataEnd),
            (b"5\r\nhello\r\n3\r\nabcd", E::ChunkDataEnd),
            (b"5\n", E::BareLf),
            (b"5;a=b\n", E::BareLf),
            (b"5 \n", E::ChunkSize),
            (b"5\r\nhello\n", E::BareLf),
            (b"0\r\n\n", E::BareLf),
            (b"0\r\nX: a\n", E::BareLf),
            (b"0\r\nX\n", E::BareLf),
            (b"5\rh", E::BareCr),
            (b"5\r\nhello\rX", E::BareCr),
            (b"0\r\n\rX", E::BareCr),
            (b"0\r\n\r\r", E::BareCr),
            (b"0\r\nX: a\rX", E::BareCr),
            (b"0\r\n ", E::TrailerFolded),
            (b"0\r\nX: a\r\n\t", E::TrailerFolded),
            (b"0\r\nNoColon\r", E::Trailer),
            (b"0\r\nX ", E::Trailer),
            (b"0\r\n:", E::Trailer),
            (b"0\r\nX: a\x01", E::Trailer),
            // A request sent right after the last chunk, before the final CRLF, is no trailer.
            (b"0\r\nGET ", E::Trailer),
        ]
        .iter()
        .map(|&(m, e)| (m.to_vec(), e))
        .collect();
        // One byte over the chunk-size line bound: extension, whitespace, leading zeros.
        let mut ext = b"1;".to_vec();
        ext.resize(line + 1, b'a');
        cases.push((ext, E::ChunkLineTooLong));
        let mut ws = b"1".to_vec();
        ws.resize(line + 1, b' ');
        cases.push((ws, E::ChunkLineTooLong));
        cases.push((vec![b'0'; line + 1], E::ChunkLineTooLong));
        // The final LF is the byte over the trailer bound.
        cases.push((trailers(MAX_TRAILERS as usize + 1), E::TrailersTooLarge));
        cases
    }

    /// A last chunk with one trailer field, the section `size` bytes long.
    fn trailers(size: usize) -> Vec<u8> {
        let mut v = b"0\r\nX: ".to_vec();
        v.resize(size - 4 + 3, b'v');
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    #[test]
    fn malformed_chunked_is_refused_at_the_first_wrong_byte() {
        for (input, error) in malformed() {
            let text = String::from_utf8_lossy(&input).into_owned();
            let (good, last) = input.split_at(input.len() - 1);
            let mut body = Body::new(BodyFraming::Chunked);
            assert_eq!(body.feed(good), Ok(good.len()), "{text:?}");
            assert!(!body.done(), "{text:?}");
            assert_eq!(body.feed(last), Err(error), "{text:?}");
            // Sticky: nothing after it is taken.
            assert_eq!(body.feed(b""), Err(error), "{text:?}");
            assert_eq!(body.feed(b"0\r\n\r\n"), Err(error), "{text:?}");
            // The same error whole and byte by byte, and with the rest of a message after.
            let whole = [&input[..], b"\r\n0\r\n\r\n"].concat();
            assert_eq!(Body::new(BodyFraming::Chunked).feed(&whole), Err(error));
            let mut body = Body::new(BodyFraming::Chunked);
            let first_err = whole.iter().find_map(|b| body.feed(&[*b]).err());
            assert_eq!(first_err, Some(error), "{text:?}");
            assert!(!error.reason().is_empty());
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let line = MAX_CHUNK_LINE as usize;
        let mut ext = b"1;".to_vec();
        ext.resize(line, b'a');
        ext.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        let mut zeros = vec![b'0'; line - 1];
        zeros.extend_from_slice(b"1\r\nx\r\n0\r\n\r\n");
        let full = trailers(MAX_TRAILERS as usize);
        for input in [ext, zeros, full] {
            let mut body = Body::new(BodyFraming::Chunked);
            assert_eq!(body.feed(&input), Ok(input.len()));
            assert!(body.done());
        }
    }

    #[test]
    fn reasons_are_distinct() {
        use BodyError as E;
        let all = [
            E::ChunkSize,
            E::ChunkSizeOverflow,
            E::ChunkExtension,
            E::ChunkLineTooLong,
            E::ChunkDataEnd,
            E::BareLf,
            E::BareCr,
            E::Trailer,
            E::TrailerFolded,
            E::TrailersTooLarge,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.to_string(), a.reason());
            for b in &all[i + 1..] {
                assert_ne!(a.reason(), b.reason());
            }
        }
    }

    #[test]
    fn state_stays_small() {
        assert_eq!(std::mem::size_of::<Body>(), 24);
    }
}
