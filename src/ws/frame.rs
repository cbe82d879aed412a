//! WebSocket frame codec (RFC 6455 §5), sans-I/O.
//!
//! The [`Decoder`] never owns bytes. The caller holds whatever it has read and asks
//! [`Decoder::next`] what the bytes at the front are: a complete header, a run of payload, or
//! "need more". The caller consumes exactly what the answer says (`header_len` or `len`) and
//! keeps the rest. Payload is never collected, so a frame of any size costs the same few
//! bytes of state, and the relay can forward every run of payload as soon as it arrives.
//!
//! The encoding helpers write the few frames the gateway produces itself (closes, pongs,
//! echoed data) into fixed buffers, without allocating.

/// Frame opcodes used by RFC 6455. All others are reserved.
pub mod opcode {
    pub const CONTINUATION: u8 = 0;
    pub const TEXT: u8 = 1;
    pub const BINARY: u8 = 2;
    pub const CLOSE: u8 = 8;
    pub const PING: u8 = 9;
    pub const PONG: u8 = 10;
}

/// Close status sent for a protocol error.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close status sent for a message above the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;
/// Largest control-frame payload.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest close frame [`write_close`] can produce: masked header plus 125 bytes of payload.
pub const MAX_CLOSE_FRAME: usize = 6 + MAX_CONTROL_PAYLOAD;

/// Which side sent the frames a [`Decoder`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Frames from a client: every frame must be masked.
    Client,
    /// Frames from a server: no frame may be masked.
    Server,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    pub fin: bool,
    /// RSV1..RSV3 as three bits: `0b100` is RSV1.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Declared payload length of this frame.
    pub len: u64,
}

impl FrameHead {
    /// Close, ping and pong (opcodes 8..=15).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x08 != 0
    }
}

/// What the bytes at the front of the input are. Never borrows the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The input is empty or holds only part of a header (at most 13 bytes). Nothing was
    /// consumed: keep those bytes and call again with more appended.
    NeedMore,
    /// A complete, validated header of `header_len` bytes starts the input. `message_start`
    /// is true for the first frame of a text or binary message. A zero-length frame is
    /// complete with this step; no `Payload` step follows for it.
    Header {
        head: FrameHead,
        header_len: usize,
        message_start: bool,
    },
    /// The first `len` bytes of the input (`1 <= len <= input.len()`) are payload of the
    /// current frame.
    Payload { len: usize },
    /// The peer broke the protocol. `code` is 1002, or 1009 for a message above the limit.
    /// The decoder is dead: every later call returns the same violation.
    Violation { code: u16, reason: &'static str },
}

/// Why a stream was rejected. Stored as a small number in the decoder once it is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    Unmasked = 1,
    Masked,
    Rsv,
    RsvControl,
    RsvContinuation,
    Opcode,
    ControlLong,
    ControlFragmented,
    NoMessage,
    MessageOpen,
    LengthHighBit,
    TooBig,
}

impl Fault {
    const ALL: [Fault; 12] = [
        Fault::Unmasked,
        Fault::Masked,
        Fault::Rsv,
        Fault::RsvControl,
        Fault::RsvContinuation,
        Fault::Opcode,
        Fault::ControlLong,
        Fault::ControlFragmented,
        Fault::NoMessage,
        Fault::MessageOpen,
        Fault::LengthHighBit,
        Fault::TooBig,
    ];

    fn from_u8(v: u8) -> Fault {
        // Only `fail` writes the number, so the fallback is never taken; it avoids a panic path.
        Fault::ALL
            .iter()
            .copied()
            .find(|f| *f as u8 == v)
            .unwrap_or(Fault::Opcode)
    }

    fn next(self) -> Next {
        let (code, reason) = match self {
            Fault::Unmasked => (CLOSE_PROTOCOL_ERROR, "client frame not masked"),
            Fault::Masked => (CLOSE_PROTOCOL_ERROR, "server frame masked"),
            Fault::Rsv => (CLOSE_PROTOCOL_ERROR, "reserved bits set"),
            Fault::RsvControl => (CLOSE_PROTOCOL_ERROR, "reserved bits on control frame"),
            Fault::RsvContinuation => (CLOSE_PROTOCOL_ERROR, "RSV1 on a continuation frame"),
            Fault::Opcode => (CLOSE_PROTOCOL_ERROR, "reserved opcode"),
            Fault::ControlLong => (CLOSE_PROTOCOL_ERROR, "control frame too long"),
            Fault::ControlFragmented => (CLOSE_PROTOCOL_ERROR, "fragmented control frame"),
            Fault::NoMessage => (CLOSE_PROTOCOL_ERROR, "continuation without message"),
            Fault::MessageOpen => (CLOSE_PROTOCOL_ERROR, "new message inside message"),
            Fault::LengthHighBit => (CLOSE_PROTOCOL_ERROR, "length high bit set"),
            Fault::TooBig => (CLOSE_TOO_BIG, "message too big"),
        };
        Next::Violation { code, reason }
    }
}

// Bits of `Decoder::flags`.
const CLIENT: u8 = 0x01;
const IN_MESSAGE: u8 = 0x02;
const CLOSED: u8 = 0x04;
const HAS_CODE: u8 = 0x08;
/// permessage-deflate was negotiated: RSV1 may mark a message's first frame.
const DEFLATE: u8 = 0x10;
/// Messages have a size limit: the lengths are kept in 32-bit halves (see [`Decoder`]).
const LIMITED: u8 = 0x20;
const DEAD: u8 = 0x80;

/// The largest message limit a [`Decoder`] keeps; one above it means no limit.
pub const MAX_MESSAGE_LIMIT: u64 = u32::MAX as u64;

// Fields of the first header byte.
const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const RSV1: u8 = 0x40;
const OPCODE: u8 = 0x0F;

/// Incremental frame decoder for one direction of a connection. 24 bytes on 64-bit targets.
///
/// Contract for frames after a close frame: they are decoded and validated as usual, and
/// [`Decoder::closed`] is already true when their `Header` step is returned. So the caller
/// reads `closed()` *before* calling `next` to learn whether the coming frame follows a
/// close (for an empty close frame, `closed()` turns true during its own `Header` step).
/// The close code of the first close frame is kept.
///
/// After a `Violation` the accessors keep their last values, except that `current()` is
/// `None`.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// The declared length of the current (or last) frame, and the payload bytes of it not yet
    /// reported. Without a message limit they are whole `u64`s. With a limit (at most
    /// [`MAX_MESSAGE_LIMIT`]) no frame that gets this far is longer than the limit, so they
    /// take the low halves, and the high halves hold the sum of the declared lengths of the
    /// open data message's frames (`frame`) and the limit (`left`).
    frame: u64,
    left: u64,
    mask: [u8; 4],
    close_code: u16,
    /// First header byte of the current (or last) frame; after a violation, the fault number.
    b0: u8,
    flags: u8,
}

impl Decoder {
    /// `deflate`: permessage-deflate was negotiated (RFC 7692), so RSV1 may mark the first
    /// frame of a compressed message; no other RSV use is allowed. `max_message`: limit on the
    /// sum of a data message's frame lengths (compressed lengths when compressed: the gateway
    /// never inflates); above [`MAX_MESSAGE_LIMIT`] messages have no limit.
    pub fn new(role: Role, deflate: bool, max_message: u64) -> Decoder {
        let mut flags = 0;
        if role == Role::Client {
            flags |= CLIENT;
        }
        if deflate {
            flags |= DEFLATE;
        }
        let mut left = 0;
        if max_message <= MAX_MESSAGE_LIMIT {
            flags |= LIMITED;
            left = max_message << 32;
        }
        Decoder {
            frame: 0,
            left,
            mask: [0; 4],
            close_code: 0,
            b0: 0,
            flags,
        }
    }

    /// The bits of `frame` and `left` that hold the frame's lengths.
    fn low(&self) -> u64 {
        if self.flags & LIMITED != 0 {
            MAX_MESSAGE_LIMIT
        } else {
            u64::MAX
        }
    }

    /// Declared length of the current (or last) frame.
    fn len(&self) -> u64 {
        self.frame & self.low()
    }

    fn left(&self) -> u64 {
        self.left & self.low()
    }

    fn set_left(&mut self, n: u64) {
        let low = self.low();
        self.left = (self.left & !low) | (n & low);
    }

    /// Sum of the declared lengths of the open data message's frames (0 without a limit).
    fn msg_len(&self) -> u64 {
        if self.flags & LIMITED != 0 {
            self.frame >> 32
        } else {
            0
        }
    }

    /// Says what the bytes at the front of `input` are and advances the decoder past them,
    /// on the understanding that the caller consumes `header_len` or `len` bytes. Never
    /// consumes part of a header.
    pub fn next(&mut self, input: &[u8]) -> Next {
        if self.flags & DEAD != 0 {
            return Fault::from_u8(self.b0).next();
        }
        if self.left() > 0 {
            self.payload(input)
        } else {
            self.header(input)
        }
    }

    fn payload(&mut self, input: &[u8]) -> Next {
        if input.is_empty() {
            return Next::NeedMore;
        }
        let left = self.left();
        let n = usize::try_from(left).map_or(input.len(), |r| r.min(input.len()));
        if self.b0 & OPCODE == opcode::CLOSE && self.flags & CLOSED == 0 {
            self.capture_close_code(&input[..n]);
        }
        let left = left.saturating_sub(n as u64);
        self.set_left(left);
        if left == 0 {
            self.frame_done();
        }
        Next::Payload { len: n }
    }

    /// Picks the status code out of the first two payload bytes of a close frame, which may
    /// arrive in separate steps.
    fn capture_close_code(&mut self, bytes: &[u8]) {
        let pos = self.len().saturating_sub(self.left());
        for (i, &b) in bytes.iter().enumerate() {
            let p = pos.saturating_add(i as u64);
            if p >= 2 {
                break;
            }
            let b = if self.flags & CLIENT != 0 {
                b ^ self.mask[p as usize]
            } else {
                b
            };
            if p == 0 {
                self.close_code = u16::from(b) << 8;
            } else {
                self.close_code |= u16::from(b);
                self.flags |= HAS_CODE;
            }
        }
    }

    fn frame_done(&mut self) {
        let op = self.b0 & OPCODE;
        if op == opcode::CLOSE {
            self.flags |= CLOSED;
        } else if op & 0x08 == 0 && self.b0 & FIN != 0 {
            self.flags &= !IN_MESSAGE;
        }
    }

    fn fail(&mut self, fault: Fault) -> Next {
        self.flags |= DEAD;
        self.b0 = fault as u8;
        self.set_left(0);
        fault.next()
    }

    fn header(&mut self, input: &[u8]) -> Next {
        let [b0, b1, ..] = *input else {
            return Next::NeedMore;
        };
        // Everything decidable from the first two bytes is checked before waiting for the
        // rest, so a bad stream is rejected as early as possible and the same fault is found
        // however the input is split.
        let op = b0 & OPCODE;
        let rsv = b0 & RSV;
        let fin = b0 & FIN != 0;
        let control = op & 0x08 != 0;
        let client = self.flags & CLIENT != 0;
        let len7 = b1 & 0x7F;
        if !matches!(op, 0..=2 | 8..=10) {
            return self.fail(Fault::Opcode);
        }
        if control {
            if rsv != 0 {
                return self.fail(Fault::RsvControl);
            }
            if !fin {
                return self.fail(Fault::ControlFragmented);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return self.fail(Fault::ControlLong);
            }
        } else if rsv & !RSV1 != 0 || (rsv != 0 && self.flags & DEFLATE == 0) {
            return self.fail(Fault::Rsv);
        } else if rsv != 0 && op == opcode::CONTINUATION {
            // RFC 7692 §6.1: the "compressed" bit belongs to a message's first frame only.
            return self.fail(Fault::RsvContinuation);
        }
        match (client, b1 & 0x80 != 0) {
            (true, false) => return self.fail(Fault::Unmasked),
            (false, true) => return self.fail(Fault::Masked),
            _ => {}
        }
        let in_message = self.flags & IN_MESSAGE != 0;
        if op == opcode::CONTINUATION && !in_message {
            return self.fail(Fault::NoMessage);
        }
        if (op == opcode::TEXT || op == opcode::BINARY) && in_message {
            return self.fail(Fault::MessageOpen);
        }

        let (len, mut header_len) = match len7 {
            126 => match input.get(2..).and_then(<[u8]>::first_chunk::<2>) {
                Some(b) => (u64::from(u16::from_be_bytes(*b)), 4),
                None => return Next::NeedMore,
            },
            127 => match input.get(2..).and_then(<[u8]>::first_chunk::<8>) {
                Some(b) => (u64::from_be_bytes(*b), 10),
                None => return Next::NeedMore,
            },
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return self.fail(Fault::LengthHighBit);
        }
        let mut msg_len = self.msg_len();
        if !control && self.flags & LIMITED != 0 {
            // Checked at the header so that no payload past the limit is ever forwarded.
            // Both terms are below 2^63 and 2^32, so the sum cannot overflow.
            let base = if op == opcode::CONTINUATION {
                msg_len
            } else {
                0
            };
            msg_len = base + len;
            if msg_len > self.left >> 32 {
                return self.fail(Fault::TooBig);
            }
        }
        let mask = if client {
            match input.get(header_len..).and_then(<[u8]>::first_chunk::<4>) {
                Some(m) => {
                    header_len += 4;
                    *m
                }
                None => return Next::NeedMore,
            }
        } else {
            [0; 4]
        };

        self.b0 = b0;
        // With a limit, `len` and `msg_len` are at most the limit, which fits 32 bits.
        self.frame = if self.flags & LIMITED != 0 {
            msg_len << 32 | len
        } else {
            len
        };
        self.set_left(len);
        self.mask = mask;
        if !control {
            self.flags |= IN_MESSAGE;
        }
        if len == 0 {
            self.frame_done();
        }
        Next::Header {
            head: self.head(),
            header_len,
            message_start: op == opcode::TEXT || op == opcode::BINARY,
        }
    }

    fn head(&self) -> FrameHead {
        FrameHead {
            fin: self.b0 & FIN != 0,
            rsv: (self.b0 & RSV) >> 4,
            opcode: self.b0 & OPCODE,
            mask: (self.flags & CLIENT != 0).then_some(self.mask),
            len: self.len(),
        }
    }

    fn live_frame(&self) -> bool {
        self.flags & DEAD == 0 && self.left() > 0
    }

    /// A text or binary message is open: its first frame was seen, its final frame has not
    /// ended yet.
    pub fn in_message(&self) -> bool {
        self.flags & IN_MESSAGE != 0
    }

    /// The payload being read belongs to a control frame.
    pub fn in_control(&self) -> bool {
        self.live_frame() && self.b0 & 0x08 != 0
    }

    /// The frame whose payload is being read; `None` between frames (also right after the
    /// `Header` step of a zero-length frame).
    pub fn current(&self) -> Option<FrameHead> {
        self.live_frame().then(|| self.head())
    }

    /// Payload bytes of the current frame still to come.
    pub fn remaining(&self) -> u64 {
        if self.live_frame() { self.left() } else { 0 }
    }

    /// Payload bytes of the current frame already reported. Read it before `next` to get the
    /// `offset` for [`apply_mask`] on the bytes of the coming `Payload` step.
    pub fn payload_offset(&self) -> u64 {
        if self.live_frame() {
            self.len().saturating_sub(self.left())
        } else {
            0
        }
    }

    /// The last step (a `Header` of an empty frame or a `Payload`) ended the final frame of
    /// a text or binary message. Stays true until the next frame's header.
    pub fn message_done(&self) -> bool {
        self.flags & DEAD == 0 && self.left() == 0 && self.b0 & FIN != 0 && self.b0 & 0x08 == 0
    }

    /// Status code of the first close frame, once its payload has passed; `None` when that
    /// frame carried no code (or is not complete yet).
    pub fn close_code(&self) -> Option<u16> {
        (self.flags & (CLOSED | HAS_CODE) == CLOSED | HAS_CODE).then_some(self.close_code)
    }

    /// A complete close frame has passed.
    pub fn closed(&self) -> bool {
        self.flags & CLOSED != 0
    }
}

/// Writes a frame header with the shortest length encoding and no RSV bits; returns its
/// length. `len` must be below 2^63 (a peer rejects anything else).
pub fn write_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
) -> usize {
    out[0] = if fin { FIN } else { 0 } | (opcode & OPCODE);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        out[1] = mask_bit | len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    if let Some(m) = mask {
        out[n..n + 4].copy_from_slice(&m);
        n += 4;
    }
    n
}

/// Writes a complete close frame with `code` and as much of `reason` as fits in a control
/// frame (123 bytes, cut on a char boundary); returns its length. Pass a mask when the
/// gateway speaks to a backend, where it is the client.
pub fn write_close(
    out: &mut [u8; MAX_CLOSE_FRAME],
    code: u16,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> usize {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let payload_len = 2 + reason.len();
    let mut head = [0u8; MAX_HEADER_LEN];
    let h = write_header(&mut head, true, opcode::CLOSE, mask, payload_len as u64);
    out[..h].copy_from_slice(&head[..h]);
    out[h..h + 2].copy_from_slice(&code.to_be_bytes());
    out[h + 2..h + payload_len].copy_from_slice(reason);
    if let Some(m) = mask {
        apply_mask(&mut out[h..h + payload_len], m, 0);
    }
    h + payload_len
}

/// XORs `data` with the mask key. `offset` is the number of payload bytes of this frame
/// before `data`, so a payload split across reads is (un)masked correctly piece by piece.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let [a, b, c, d] = key;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let (words, tail) = data.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_ne_bytes(*w) ^ wide).to_ne_bytes();
    }
    // The tail starts at a multiple of 8, so the key phase is unchanged.
    for (byte, k) in tail.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [[u8; 4]; 3] = [
        [0x37, 0xfa, 0x21, 0x3d],
        [0x00, 0xff, 0x5a, 0xa5],
        [1, 2, 3, 4],
    ];

    /// Length encoding used by the test encoder: shortest, or forced 16-bit / 64-bit forms.
    #[derive(Clone, Copy, PartialEq)]
    enum Form {
        Min,
        Short,
        Long,
    }

    /// Test-side encoder, written independently of `write_header`.
    fn encode(b0: u8, mask: Option<[u8; 4]>, form: Form, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u64;
        let m = if mask.is_some() { 0x80 } else { 0 };
        let mut v = vec![b0];
        if form == Form::Min && len < 126 {
            v.push(m | len as u8);
        } else if form == Form::Short || (form == Form::Min && len < 65536) {
            v.push(m | 126);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            v.push(m | 127);
            v.extend_from_slice(&len.to_be_bytes());
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }

    /// A frame as the given role sends it, with a key that varies by `n`.
    fn fr(role: Role, b0: u8, payload: &[u8], n: usize) -> Vec<u8> {
        let mask = (role == Role::Client).then_some(KEYS[n % KEYS.len()]);
        encode(b0, mask, Form::Min, payload)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        head: FrameHead,
        header_len: usize,
        start: bool,
        after_close: bool,
        /// Unmasked payload, however many steps it came in.
        payload: Vec<u8>,
        /// `message_done()` after the frame's last step.
        msg_end: bool,
        /// `in_message()` after the frame's last step.
        in_msg: bool,
    }

    #[derive(Debug, Default, PartialEq, Eq)]
    struct Trace {
        frames: Vec<Seen>,
        violation: Option<(u16, &'static str)>,
        /// Bytes consumed when decoding stopped.
        consumed: usize,
        closed: bool,
        close_code: Option<u16>,
    }

    /// Plays the relay: appends reads of the sizes `chunk` yields, consumes what the
    /// decoder reports, and checks the step contract on the way.
    fn run(mut dec: Decoder, stream: &[u8], chunk: &mut dyn FnMut() -> usize) -> Trace {
        let (mut pos, mut fed) = (0usize, 0usize);
        let mut t = Trace::default();
        loop {
            let was_closed = dec.closed();
            let offset = dec.payload_offset();
            let input = &stream[pos..fed];
            match dec.next(input) {
                Next::NeedMore => {
                    assert!(input.len() < MAX_HEADER_LEN);
                    assert!(dec.current().is_none() || input.is_empty());
                    if fed == stream.len() {
                        break;
                    }
                    fed = fed.saturating_add(chunk().max(1)).min(stream.len());
                }
                Next::Header {
                    head,
                    header_len,
                    message_start,
                } => {
                    assert!((2..=MAX_HEADER_LEN).contains(&header_len));
                    assert!(header_len <= input.len());
                    pos += header_len;
                    assert_eq!(dec.current().is_some(), head.len > 0);
                    t.frames.push(Seen {
                        head,
                        header_len,
                        start: message_start,
                        after_close: was_closed,
                        payload: Vec::new(),
                        msg_end: dec.message_done(),
                        in_msg: dec.in_message(),
                    });
                }
                Next::Payload { len } => {
                    assert!(len >= 1 && len <= input.len());
                    let seen = t.frames.last_mut().expect("payload before any header");
                    let mut bytes = input[..len].to_vec();
                    if let Some(k) = seen.head.mask {
                        apply_mask(&mut bytes, k, offset as usize);
                    }
                    seen.payload.extend_from_slice(&bytes);
                    seen.msg_end = dec.message_done();
                    seen.in_msg = dec.in_message();
                    pos += len;
                }
                Next::Violation { code, reason } => {
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

    fn whole(dec: Decoder, stream: &[u8]) -> Trace {
        run(dec, stream, &mut || usize::MAX)
    }

    fn reads_of(dec: Decoder, stream: &[u8], n: usize) -> Trace {
        run(dec, stream, &mut || n)
    }

    /// xorshift64*, enough for deterministic test randomness.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn dec(role: Role) -> Decoder {
        Decoder::new(role, false, u64::MAX)
    }

    fn header_len_for(role: Role, len: u64) -> usize {
        let ext = match len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        2 + ext + if role == Role::Client { 4 } else { 0 }
    }

    #[test]
    fn every_length_class_both_roles() {
        for role in [Role::Client, Role::Server] {
            for len in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
                let payload = pattern(len);
                let stream = fr(role, 0x82, &payload, len);
                let reads: &[usize] = if len <= 65536 {
                    &[usize::MAX, 1, 7, 4096]
                } else {
                    &[usize::MAX, 4093]
                };
                for &r in reads {
                    let t = reads_of(dec(role), &stream, r);
                    assert_eq!(t.violation, None);
                    assert_eq!(t.consumed, stream.len());
                    assert_eq!(t.frames.len(), 1);
                    let f = &t.frames[0];
                    let mask = (role == Role::Client).then_some(KEYS[len % 3]);
                    assert_eq!(
                        f.head,
                        FrameHead {
                            fin: true,
                            rsv: 0,
                            opcode: opcode::BINARY,
                            mask,
                            len: len as u64
                        }
                    );
                    assert_eq!(f.header_len, header_len_for(role, len as u64));
                    assert!(f.start && f.msg_end && !f.in_msg);
                    assert!(
                        f.payload == payload,
                        "payload differs, len {len}, reads {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn huge_declared_lengths_stream_without_buffering() {
        for role in [Role::Client, Role::Server] {
            for len in [1u64 << 32, (1 << 63) - 1] {
                let mut d = dec(role);
                let mut hdr = encode(
                    0x02,
                    (role == Role::Client).then_some(KEYS[0]),
                    Form::Long,
                    &[],
                );
                // Patch the declared length; the payload itself is never built.
                hdr[2..10].copy_from_slice(&len.to_be_bytes());
                let Next::Header {
                    head,
                    header_len,
                    message_start,
                } = d.next(&hdr)
                else {
                    panic!("no header");
                };
                assert_eq!(
                    (head.len, head.fin, header_len, message_start),
                    (len, false, hdr.len(), true)
                );
                let buf = [0u8; 7];
                let mut total = 0u64;
                for _ in 0..150 {
                    assert_eq!(d.payload_offset(), total);
                    assert_eq!(d.next(&buf), Next::Payload { len: 7 });
                    total += 7;
                }
                assert_eq!(d.remaining(), len - total);
                assert_eq!(d.current().map(|h| h.len), Some(len));
                assert!(d.in_message() && !d.message_done() && !d.in_control());
            }
        }
        let mut d = dec(Role::Server);
        let bad = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(d.next(&bad[..9]), Next::NeedMore);
        assert_eq!(
            d.next(&bad),
            Next::Violation {
                code: 1002,
                reason: "length high bit set"
            }
        );
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        for role in [Role::Client, Role::Server] {
            let mask = (role == Role::Client).then_some(KEYS[1]);
            for (len, form, hl) in [
                (5, Form::Short, 4),
                (5, Form::Long, 10),
                (200, Form::Long, 10),
                (0, Form::Long, 10),
            ] {
                let payload = pattern(len);
                let t = whole(dec(role), &encode(0x81, mask, form, &payload));
                assert_eq!(t.violation, None);
                assert_eq!(
                    t.frames[0].header_len,
                    hl + if mask.is_some() { 4 } else { 0 }
                );
                assert_eq!(t.frames[0].payload, payload);
                assert!(t.frames[0].msg_end);
            }
        }
    }

    /// Fragmented text with a ping and an empty pong in between, empty and 16-bit-length
    /// binaries, a close with code, then two frames after the close.
    fn composite(role: Role) -> Vec<u8> {
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        let parts: [(u8, &[u8]); 10] = [
            (0x01, b"Hel"),
            (0x89, b"p"),
            (0x00, b"lo "),
            (0x8A, b""),
            (0x80, b"world"),
            (0x82, b""),
            (0x82, &[7u8; 300]),
            (0x88, &close),
            (0x81, b"late"),
            (0x89, b""),
        ];
        parts
            .iter()
            .enumerate()
            .flat_map(|(i, (b0, p))| fr(role, *b0, p, i))
            .collect()
    }

    #[test]
    fn composite_stream_events() {
        for role in [Role::Client, Role::Server] {
            let stream = composite(role);
            let t = whole(dec(role), &stream);
            assert_eq!(t.violation, None);
            assert_eq!(t.consumed, stream.len());
            let ops: Vec<u8> = t.frames.iter().map(|f| f.head.opcode).collect();
            assert_eq!(ops, [1, 9, 0, 10, 0, 2, 2, 8, 1, 9]);
            let col = |f: fn(&Seen) -> bool| t.frames.iter().map(f).collect::<Vec<_>>();
            let (y, n) = (true, false);
            assert_eq!(col(|f| f.start), [y, n, n, n, n, y, y, n, y, n]);
            assert_eq!(col(|f| f.msg_end), [n, n, n, n, y, y, y, n, y, n]);
            assert_eq!(col(|f| f.in_msg), [y, y, y, y, n, n, n, n, n, n]);
            assert_eq!(col(|f| f.after_close), [n, n, n, n, n, n, n, n, y, y]);
            assert_eq!(t.frames[4].payload, b"world");
            assert_eq!(t.frames[6].payload, [7u8; 300]);
            assert_eq!(t.frames[6].header_len, header_len_for(role, 300));
            assert_eq!(&t.frames[7].payload[2..], b"bye");
            assert!(t.closed);
            assert_eq!(t.close_code, Some(1000));
        }
    }

    #[test]
    fn every_split_gives_the_same_events() {
        for role in [Role::Client, Role::Server] {
            let stream = composite(role);
            let reference = whole(dec(role), &stream);
            for k in 0..=stream.len() {
                let mut first = true;
                let t = run(dec(role), &stream, &mut || {
                    if std::mem::take(&mut first) {
                        k
                    } else {
                        usize::MAX
                    }
                });
                assert_eq!(t, reference, "split at {k}");
            }
            for n in 1..=15 {
                assert_eq!(reads_of(dec(role), &stream, n), reference, "reads of {n}");
            }
            for seed in 1..=300u64 {
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                let t = run(dec(role), &stream, &mut || 1 + rng.below(20) as usize);
                assert_eq!(t, reference, "seed {seed}");
            }
        }
    }

    #[test]
    fn mutated_streams_never_panic_and_stay_split_invariant() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..3000 {
            let role = if round % 2 == 0 {
                Role::Client
            } else {
                Role::Server
            };
            let mut stream = composite(role);
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(stream.len() as u64) as usize;
                stream[i] = rng.next() as u8;
            }
            let d = Decoder::new(role, round % 2 == 1, 1 + rng.below(400));
            let reference = whole(d.clone(), &stream);
            let t = run(d, &stream, &mut || 1 + rng.below(9) as usize);
            assert_eq!(t, reference, "round {round}");
        }
    }

    #[test]
    fn close_code_split_across_reads() {
        let key = KEYS[0];
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going");
        let stream = encode(0x88, Some(key), Form::Min, &payload);
        let mut d = dec(Role::Client);
        assert!(matches!(
            d.next(&stream[..6]),
            Next::Header { header_len: 6, .. }
        ));
        assert!(d.in_control() && !d.closed());
        assert_eq!(d.next(&stream[6..7]), Next::Payload { len: 1 });
        assert_eq!(d.close_code(), None);
        assert_eq!(d.next(&stream[7..8]), Next::Payload { len: 1 });
        assert_eq!(d.close_code(), None, "frame not complete yet");
        assert!(!d.closed());
        assert_eq!(d.next(&stream[8..]), Next::Payload { len: 5 });
        assert!(d.closed() && !d.in_control() && d.current().is_none());
        assert_eq!(d.close_code(), Some(1001));
        // A second close does not replace the first code.
        let again = encode(0x88, Some(key), Form::Min, &3000u16.to_be_bytes());
        assert_eq!(whole(d, &again).close_code, Some(1001));
    }

    #[test]
    fn close_without_code() {
        for role in [Role::Client, Role::Server] {
            let mut d = dec(role);
            let stream = fr(role, 0x88, b"", 0);
            assert!(matches!(
                d.next(&stream),
                Next::Header {
                    message_start: false,
                    ..
                }
            ));
            assert!(d.closed());
            assert_eq!(d.close_code(), None);
            assert_eq!(d.current(), None);
            // A one-byte body is no code either; the gateway stays transparent to it.
            let t = whole(dec(role), &fr(role, 0x88, &[3], 1));
            assert!(t.closed && t.violation.is_none());
            assert_eq!(t.close_code, None);
        }
    }

    #[test]
    fn close_inside_a_message_keeps_the_message_open() {
        let role = Role::Server;
        let mut s = fr(role, 0x02, b"ab", 0);
        s.extend(fr(role, 0x88, &1000u16.to_be_bytes(), 0));
        s.extend(fr(role, 0x80, b"cd", 0));
        let t = whole(dec(role), &s);
        assert_eq!(t.violation, None);
        assert_eq!(t.frames[2].payload, b"cd");
        assert!(t.frames[2].after_close && t.frames[2].msg_end);
    }

    fn violation(role: Role, deflate: bool, stream: &[u8]) -> Option<(u16, &'static str)> {
        whole(Decoder::new(role, deflate, 1000), stream).violation
    }

    #[test]
    fn each_violation() {
        use Role::{Client as C, Server as S};
        let k = Some(KEYS[0]);
        let e = |b0| encode(b0, k, Form::Min, b"");
        let pe = (1002, "");
        let cases: Vec<(Role, bool, Vec<u8>, &str)> = vec![
            (C, false, vec![0x81, 0x00], "client frame not masked"),
            (C, false, vec![0x89, 0x00], "client frame not masked"),
            (S, false, e(0x81), "server frame masked"),
            (
                C,
                false,
                e(0x01).into_iter().chain(e(0xC0)).collect(),
                "reserved bits set",
            ),
            (S, false, vec![0x89, 126, 0, 126], "control frame too long"),
            (
                S,
                false,
                vec![0x88, 127, 0, 0, 0, 0, 0, 0, 0, 126],
                "control frame too long",
            ),
            (S, false, vec![0x09, 0x00], "fragmented control frame"),
            (C, false, e(0x80), "continuation without message"),
            (S, false, vec![0x00, 0x00], "continuation without message"),
            (
                S,
                false,
                vec![0x01, 0x00, 0x81, 0x00],
                "new message inside message",
            ),
            (
                S,
                false,
                vec![0x02, 0x00, 0x89, 0x00, 0x02, 0x00],
                "new message inside message",
            ),
            (
                S,
                false,
                vec![0x81, 0x00, 0x80, 0x00],
                "continuation without message",
            ),
            (
                S,
                false,
                vec![0x82, 127, 0xFF, 0, 0, 0, 0, 0, 0, 0],
                "length high bit set",
            ),
        ];
        let mut cases = cases;
        for op in (3..=7).chain(11..=15) {
            cases.push((S, true, vec![0x80 | op, 0x00], "reserved opcode"));
            cases.push((C, false, e(0x80 | op), "reserved opcode"));
        }
        for (role, deflate, stream, reason) in cases.into_iter().chain(rsv_violations()) {
            assert_eq!(
                violation(role, deflate, &stream),
                Some((pe.0, reason)),
                "{stream:02x?}"
            );
            // Decided from the first two bytes of the offending header when possible.
            if reason != "length high bit set" && reason != "control frame too long" {
                let start = stream.len() - if role == C && stream.len() >= 6 { 6 } else { 2 };
                let t = whole(Decoder::new(role, deflate, 1000), &stream[..start + 2]);
                assert_eq!(t.violation, Some((1002, reason)), "early, {stream:02x?}");
            }
        }
    }

    /// Every misuse of the RSV bits, with and without permessage-deflate, in both roles.
    fn rsv_violations() -> Vec<(Role, bool, Vec<u8>, &'static str)> {
        let mut out = Vec::new();
        for role in [Role::Client, Role::Server] {
            let mask = (role == Role::Client).then_some(KEYS[1]);
            let f = |b0| encode(b0, mask, Form::Min, b"");
            let then = |a: u8, b: u8| f(a).into_iter().chain(f(b)).collect::<Vec<u8>>();
            for deflate in [false, true] {
                // RSV2 and RSV3 have no meaning with any extension wsgate relays.
                for rsv in [0x20, 0x10, 0x30, 0x60, 0x70] {
                    for op in [0x81, 0x82] {
                        out.push((role, deflate, f(op | rsv), "reserved bits set"));
                    }
                    out.push((role, deflate, then(0x01, rsv), "reserved bits set"));
                }
                // No RSV bit on a control frame, whatever was negotiated.
                for op in [0x88, 0x89, 0x8A] {
                    for rsv in [0x40, 0x20, 0x10] {
                        let reason = "reserved bits on control frame";
                        out.push((role, deflate, f(op | rsv), reason));
                    }
                }
            }
            // RSV1 without permessage-deflate.
            out.push((role, false, f(0xC1), "reserved bits set"));
            out.push((role, false, f(0x42), "reserved bits set"));
            out.push((role, false, then(0x01, 0xC0), "reserved bits set"));
            // With it, RSV1 marks a message's first frame and never a continuation.
            let reason = "RSV1 on a continuation frame";
            out.push((role, true, then(0x01, 0xC0), reason));
            out.push((role, true, then(0x41, 0xC0), reason));
            out.push((role, true, then(0x42, 0x40), reason));
        }
        out
    }

    #[test]
    fn rsv1_passes_only_on_a_first_frame_with_permessage_deflate() {
        for role in [Role::Client, Role::Server] {
            let mask = (role == Role::Client).then_some(KEYS[2]);
            let f = |b0, p: &[u8]| encode(b0, mask, Form::Min, p);
            // A compressed message in one frame, a fragmented compressed message with a ping
            // between its frames, and an uncompressed message.
            let stream: Vec<u8> = [
                f(0xC1, b"one"),
                f(0x42, b"tw"),
                f(0x89, b""),
                f(0x80, b"o"),
                f(0x81, b"plain"),
            ]
            .concat();
            let t = whole(Decoder::new(role, true, 1000), &stream);
            assert_eq!(t.violation, None);
            let rsv: Vec<u8> = t.frames.iter().map(|f| f.head.rsv).collect();
            assert_eq!(rsv, [0b100, 0b100, 0, 0, 0]);
            // Without the extension the first frame already fails.
            let t = whole(Decoder::new(role, false, 1000), &stream);
            assert_eq!(t.violation, Some((1002, "reserved bits set")));
            assert!(t.frames.is_empty());
        }
    }

    #[test]
    fn dead_decoder_stays_dead() {
        let mut d = dec(Role::Server);
        let v = d.next(&[0x83, 0x00]);
        assert_eq!(
            v,
            Next::Violation {
                code: 1002,
                reason: "reserved opcode"
            }
        );
        for input in [&[][..], &[0x81, 0x00], &[0x82, 0x01, 0x00]] {
            assert_eq!(d.next(input), v);
        }
        assert!(d.current().is_none() && !d.in_control() && !d.message_done());
    }

    #[test]
    fn max_message_limit() {
        let role = Role::Client;
        let at = |parts: &[(u8, usize)]| {
            let s: Vec<u8> = parts
                .iter()
                .enumerate()
                .flat_map(|(i, &(b0, n))| fr(role, b0, &pattern(n), i))
                .collect();
            whole(Decoder::new(role, false, 10), &s)
        };
        let big = Some((1009, "message too big"));
        assert_eq!(at(&[(0x81, 10)]).violation, None);
        assert_eq!(at(&[(0x81, 11)]).violation, big);
        assert_eq!(at(&[(0x01, 4), (0x80, 6)]).violation, None);
        // Control frames between fragments do not count toward the message.
        assert_eq!(
            at(&[(0x01, 4), (0x89, 100), (0x00, 3), (0x80, 3)]).violation,
            None
        );
        // The limit is per message.
        assert_eq!(at(&[(0x81, 10), (0x02, 10), (0x80, 0)]).violation, None);
        // Rejected at the header: none of the offending frame's payload is reported.
        let t = at(&[(0x01, 4), (0x00, 5), (0x80, 2)]);
        assert_eq!(t.violation, big);
        assert_eq!(t.frames.len(), 2);
        assert_eq!(t.frames[1].payload.len(), 5);
        let mut d = Decoder::new(Role::Server, false, 10);
        assert_eq!(d.next(&[0x82, 126, 0x01]), Next::NeedMore);
        assert_eq!(
            d.next(&[0x82, 126, 0x01, 0x00]),
            big.map(|(code, reason)| Next::Violation { code, reason })
                .unwrap()
        );
        // Zero limit still allows empty messages.
        assert_eq!(
            whole(Decoder::new(Role::Server, false, 0), &[0x81, 0x00]).violation,
            None
        );
    }

    /// A limit is kept in 32 bits: the largest one still counts every byte of a message, and
    /// one above it is no limit at all.
    #[test]
    fn limits_up_to_four_gib() {
        let big = Some((1009, "message too big"));
        let header = |b0: u8, len: u64| {
            let mut h = vec![b0, 127];
            h.extend_from_slice(&len.to_be_bytes());
            h
        };
        // Reports a frame's whole payload in 1 MiB steps; the buffer is reused.
        let drain = |d: &mut Decoder, len: u64| {
            let chunk = vec![0u8; 1 << 20];
            let mut seen = 0u64;
            while seen < len {
                assert_eq!(d.payload_offset(), seen);
                let Next::Payload { len: n } = d.next(&chunk) else {
                    panic!("no payload at {seen}");
                };
                seen += n as u64;
            }
            assert_eq!((seen, d.remaining()), (len, 0));
        };
        let max = MAX_MESSAGE_LIMIT;
        let mut d = Decoder::new(Role::Server, false, max);
        let Next::Header { head, .. } = d.next(&header(0x02, max - 1)) else {
            panic!("first frame refused");
        };
        assert_eq!(head.len, max - 1);
        assert_eq!(d.current().map(|h| h.len), Some(max - 1));
        drain(&mut d, max - 1);
        assert!(d.in_message() && !d.message_done());
        // The last byte the limit allows, then a message one byte over it.
        assert!(matches!(d.next(&[0x80, 1]), Next::Header { .. }));
        assert_eq!(d.next(&[7]), Next::Payload { len: 1 });
        assert!(d.message_done());
        let over = d.next(&header(0x82, max + 1));
        assert_eq!(
            Some(over),
            big.map(|(code, reason)| Next::Violation { code, reason })
        );

        // Over the limit by a continuation, at its header.
        let mut d = Decoder::new(Role::Server, false, max);
        assert!(matches!(d.next(&header(0x02, max)), Next::Header { .. }));
        drain(&mut d, max);
        let over = d.next(&[0x80, 1]);
        assert_eq!(
            Some(over),
            big.map(|(code, reason)| Next::Violation { code, reason })
        );

        // Above the largest limit there is none: a 1 TiB frame is only streamed.
        let mut d = Decoder::new(Role::Server, false, max + 1);
        let Next::Header { head, .. } = d.next(&header(0x82, 1 << 40)) else {
            panic!("no limit refused a frame");
        };
        assert_eq!((head.len, d.remaining()), (1 << 40, 1 << 40));
        assert_eq!(d.next(&[0; 9]), Next::Payload { len: 9 });
        assert_eq!(d.payload_offset(), 9);
    }

    #[test]
    fn write_header_round_trips() {
        for role in [Role::Client, Role::Server] {
            let mask = (role == Role::Client).then_some(KEYS[2]);
            for len in [
                0u64,
                1,
                125,
                126,
                65535,
                65536,
                1 << 20,
                1 << 40,
                (1 << 63) - 1,
            ] {
                for (fin, op) in [
                    (true, opcode::TEXT),
                    (false, opcode::BINARY),
                    (true, opcode::PING),
                ] {
                    if op == opcode::PING && len > 125 {
                        continue;
                    }
                    let mut out = [0u8; MAX_HEADER_LEN];
                    let n = write_header(&mut out, fin, op, mask, len);
                    assert_eq!(n, header_len_for(role, len));
                    let mut d = dec(role);
                    assert_eq!(d.next(&out[..n - 1]), Next::NeedMore);
                    assert_eq!(
                        d.next(&out[..n]),
                        Next::Header {
                            head: FrameHead {
                                fin,
                                rsv: 0,
                                opcode: op,
                                mask,
                                len
                            },
                            header_len: n,
                            message_start: op != opcode::PING,
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn write_close_round_trips_and_truncates() {
        let long_ascii = "x".repeat(200);
        let two_byte = "é".repeat(100);
        let four_byte = "𝄞".repeat(40);
        let cases: [(&str, &str); 5] = [
            ("", ""),
            ("going away", "going away"),
            (&long_ascii, &long_ascii[..123]),
            (&two_byte, &two_byte[..122]),
            (&four_byte, &four_byte[..120]),
        ];
        for role in [Role::Client, Role::Server] {
            let mask = (role == Role::Client).then_some(KEYS[0]);
            for (reason, kept) in cases {
                for code in [1001, 1002, 1008, 1009, 1011, 1013] {
                    let mut out = [0u8; MAX_CLOSE_FRAME];
                    let n = write_close(&mut out, code, reason, mask);
                    let t = whole(dec(role), &out[..n]);
                    assert_eq!(t.violation, None);
                    assert_eq!(t.consumed, n);
                    assert_eq!(t.close_code, Some(code));
                    let f = &t.frames[0];
                    assert_eq!(
                        (f.head.opcode, f.head.fin, f.head.mask),
                        (opcode::CLOSE, true, mask)
                    );
                    assert_eq!(&f.payload[2..], kept.as_bytes());
                    assert!(f.payload.len() <= MAX_CONTROL_PAYLOAD);
                }
            }
        }
    }

    #[test]
    fn apply_mask_matches_bytewise() {
        let mut rng = Rng(77);
        for len in 0..=41 {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for offset in 0..=9 {
                let key = (rng.next() as u32).to_be_bytes();
                let mut fast = data.clone();
                apply_mask(&mut fast, key, offset);
                let slow: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
            // Masking in pieces with running offsets equals masking at once.
            let key = KEYS[0];
            let mut once = data.clone();
            apply_mask(&mut once, key, 0);
            let mut pieces = data.clone();
            let cut = len / 3;
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(pieces, once);
        }
    }

    #[test]
    fn decoder_is_small() {
        let size = std::mem::size_of::<Decoder>();
        println!("size_of::<Decoder>() = {size}");
        assert!(size <= 24, "Decoder grew to {size} bytes");
    }
}
