//! A small streaming RFC 6455 frame codec. Payload is handed out as it arrives, so a large
//! message never has to be collected; only a split header or a control frame is buffered.

pub const OP_CONT: u8 = 0;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// One step of decoding.
pub enum Piece<'a> {
    /// A data frame begins (opcode 0 continues a message).
    Start { opcode: u8, fin: bool, len: u64 },
    /// Payload bytes of the current data frame, already unmasked.
    Data(&'a [u8]),
    /// The current data frame is complete.
    End { fin: bool },
    /// A whole control frame, unmasked.
    Control { opcode: u8, payload: &'a [u8] },
}

pub struct Decoder {
    /// Clients must mask, servers must not.
    want_masked: bool,
    in_payload: bool,
    remaining: u64,
    fin: bool,
    mask: Option<[u8; 4]>,
    moff: usize,
}

impl Decoder {
    pub fn new(want_masked: bool) -> Decoder {
        Decoder {
            want_masked,
            in_payload: false,
            remaining: 0,
            fin: false,
            mask: None,
            moff: 0,
        }
    }

    /// Decodes the next piece of `buf` at `*pos`. `Ok(None)` means more bytes are needed: the
    /// caller keeps `buf[*pos..]` and calls again with it in front of the next read.
    pub fn next<'a>(
        &mut self,
        buf: &'a mut [u8],
        pos: &mut usize,
    ) -> Result<Option<Piece<'a>>, &'static str> {
        if self.in_payload {
            if self.remaining == 0 {
                self.in_payload = false;
                return Ok(Some(Piece::End { fin: self.fin }));
            }
            let avail = buf.len() - *pos;
            if avail == 0 {
                return Ok(None);
            }
            let k = (self.remaining.min(avail as u64)) as usize;
            let chunk = &mut buf[*pos..*pos + k];
            if let Some(m) = self.mask {
                apply_mask(chunk, m, self.moff);
                self.moff = (self.moff + k) % 4;
            }
            self.remaining -= k as u64;
            *pos += k;
            return Ok(Some(Piece::Data(chunk)));
        }
        let b = &buf[*pos..];
        if b.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (b[0], b[1]);
        if b0 & 0x70 != 0 {
            return Err("reserved bits set");
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        if masked != self.want_masked {
            return Err(if masked {
                "masked frame from server"
            } else {
                "unmasked frame from client"
            });
        }
        let (len, mut hlen) = match b1 & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        let mask = if masked {
            if b.len() < hlen + 4 {
                return Ok(None);
            }
            let m = [b[hlen], b[hlen + 1], b[hlen + 2], b[hlen + 3]];
            hlen += 4;
            Some(m)
        } else {
            None
        };
        if opcode >= 8 {
            if !fin || len > 125 || opcode > OP_PONG {
                return Err("bad control frame");
            }
            let end = *pos + hlen + len as usize;
            if buf.len() < end {
                return Ok(None);
            }
            let payload = &mut buf[*pos + hlen..end];
            if let Some(m) = mask {
                apply_mask(payload, m, 0);
            }
            *pos = end;
            return Ok(Some(Piece::Control { opcode, payload }));
        }
        if opcode > OP_BINARY {
            return Err("reserved opcode");
        }
        *pos += hlen;
        self.in_payload = true;
        self.remaining = len;
        self.fin = fin;
        self.mask = mask;
        self.moff = 0;
        Ok(Some(Piece::Start { opcode, fin, len }))
    }
}

/// XORs `buf` with `mask`, where `buf[0]` is payload byte number `off` (mod 4) of its frame.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], off: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(off + i) % 4]);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().unwrap()) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Appends a frame header.
pub fn header(out: &mut Vec<u8>, fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mbit | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(mbit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
}

/// Appends a whole frame, masked when `mask` is given.
pub fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    header(out, true, opcode, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(want_masked: bool, bytes: &[u8], step: usize) -> Vec<(u8, Vec<u8>)> {
        let mut d = Decoder::new(want_masked);
        let mut carry = Vec::new();
        let mut msgs = Vec::new();
        let mut cur = (0u8, Vec::new());
        for chunk in bytes.chunks(step) {
            carry.extend_from_slice(chunk);
            let mut pos = 0;
            while let Some(p) = d.next(&mut carry, &mut pos).unwrap() {
                match p {
                    Piece::Start { opcode, .. } if opcode != OP_CONT => cur = (opcode, Vec::new()),
                    Piece::Start { .. } => {}
                    Piece::Data(b) => cur.1.extend_from_slice(b),
                    Piece::End { fin: true } => msgs.push(std::mem::take(&mut cur)),
                    Piece::End { .. } => {}
                    Piece::Control { opcode, payload } => msgs.push((opcode, payload.to_vec())),
                }
            }
            carry.drain(..pos);
        }
        msgs
    }

    #[test]
    fn round_trip_any_split() {
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        frame(&mut wire, OP_BINARY, b"hello", Some([1, 2, 3, 4]));
        frame(&mut wire, OP_PING, b"p", Some([9, 8, 7, 6]));
        frame(&mut wire, OP_BINARY, &big, Some([0xaa, 0x55, 0x0f, 0xf0]));
        frame(&mut wire, OP_BINARY, &big[..300], Some([5, 6, 7, 8]));
        for step in [1, 3, 7, 1000, 100_000] {
            let m = decode_all(true, &wire, step);
            assert_eq!(m.len(), 4, "step {step}");
            assert_eq!(m[0], (OP_BINARY, b"hello".to_vec()));
            assert_eq!(m[1], (OP_PING, b"p".to_vec()));
            assert_eq!(m[2].1, big);
            assert_eq!(m[3].1, big[..300].to_vec());
        }
    }

    #[test]
    fn masking_rules() {
        let mut wire = Vec::new();
        frame(&mut wire, OP_BINARY, b"x", None);
        let mut d = Decoder::new(true);
        assert!(d.next(&mut wire.clone(), &mut 0).is_err());
        let mut d = Decoder::new(false);
        assert!(d.next(&mut wire, &mut 0).unwrap().is_some());
    }

    #[test]
    fn mask_offsets() {
        let data: Vec<u8> = (0..37).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, [1, 2, 3, 4], 0);
        let mut parts = data.clone();
        let (a, b) = parts.split_at_mut(11);
        apply_mask(a, [1, 2, 3, 4], 0);
        apply_mask(b, [1, 2, 3, 4], 11);
        assert_eq!(whole, parts);
    }
}
