//! The built-in echo backend, served on the same loop with the same codec: every data message
//! comes back as it was sent, pings get pongs, a close is answered with the same close. Plain
//! HTTP requests get their request line and headers back as text. It makes the shipped config
//! work end to end on its own, and gives tests and benchmarks a backend without extra programs.

use super::conn::{Conn, Flow, Phase, flag};
use super::cx::{Cx, Next};
use super::pool::Pool;
use super::relay::{Io, discard, inject, read_once, release_if_empty, write_out};
use crate::http::head::RequestHead;
use crate::ws::frame::{self, opcode};
use crate::ws::handshake::{self, Negotiated};

impl Cx {
    pub(super) fn echo_request(&mut self, key: usize, c: &mut Conn, head: RequestHead) -> Next {
        let txn = self.txn.next();
        if !handshake::is_websocket_request(&head) {
            let mut body = format!(
                "{} {} HTTP/1.{}\r\n",
                head.method(),
                head.target(),
                head.minor_version()
            );
            for (name, value) in head.headers_iter() {
                body.push_str(name);
                body.push_str(": ");
                body.push_str(value);
                body.push_str("\r\n");
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nX-Global-Transaction-ID: {txn}\r\n\r\n{body}",
                body.len()
            );
            let reply = if head.method() == "HEAD" {
                reply[..reply.len() - body.len()].to_string()
            } else {
                reply
            };
            return self.answer(key, c, reply.as_bytes());
        }
        let upgrade = match handshake::validate_client(&head) {
            Ok(u) => u,
            Err(handshake::UpgradeError::Version) => {
                return self.respond(
                    key,
                    c,
                    426,
                    "Unsupported WebSocket version",
                    &[("Sec-WebSocket-Version", "13")],
                );
            }
            Err(handshake::UpgradeError::BadRequest(why)) => {
                return self.respond(key, c, 400, why, &[]);
            }
        };
        // Choose the first subprotocol offered, so that negotiation can be tested end to end.
        let protocol = upgrade
            .protocols
            .as_deref()
            .and_then(|p| p.split(',').map(str::trim).find(|p| !p.is_empty()))
            .map(str::to_string);
        let neg = Negotiated {
            protocol,
            extensions: None,
        };
        let mut reply = Vec::with_capacity(200);
        handshake::client_101(&mut reply, &upgrade.key, &neg, &txn, &[]);
        if !inject(&mut self.pool, &mut c.down, &reply) {
            return Next::Finish;
        }
        c.phase = Phase::Echo;
        let idle = self.model.settings.bounds.idle_timeout;
        self.set_timeout(key, c, idle);
        self.drive_echo(key, c)
    }

    /// The 101 goes out through the backward flow; after that, echoed frames go out through the
    /// forward flow's buffer, rewritten in place.
    pub(super) fn drive_echo(&mut self, key: usize, c: &mut Conn) -> Next {
        let mut moved = false;
        loop {
            let mut progress = false;
            for flow in [&mut c.down, &mut c.up] {
                if flow.pending_out() && c.flags & flag::CLIENT_WRITABLE != 0 {
                    match write_out(&mut self.pool, flow, &mut c.client) {
                        Io::Blocked => c.flags &= !flag::CLIENT_WRITABLE,
                        Io::Eof | Io::Error(_) => c.flags |= flag::CLIENT_EOF | flag::FAILING,
                        _ => progress = true,
                    }
                }
            }
            if c.has(flag::CLIENT_EOF) && c.has(flag::FAILING) {
                return Next::Finish;
            }
            let flushed = !c.up.pending_out() && !c.down.pending_out();
            if c.has(flag::FAILING) {
                if c.has(flag::CLIENT_EOF) {
                    return Next::Finish;
                }
                if flushed && !c.has(flag::SHUT) {
                    // Our close is out: shut our side and drop what the client still sends
                    // until it closes, so that closing cannot reset the connection first.
                    c.set(flag::SHUT);
                    c.client.shutdown_write();
                }
                if c.has(flag::CLIENT_READABLE) {
                    discard(
                        &mut c.client,
                        &mut c.flags,
                        flag::CLIENT_READABLE,
                        flag::CLIENT_EOF,
                    );
                    if c.has(flag::CLIENT_EOF) {
                        return Next::Finish;
                    }
                }
                return Next::Stay;
            }
            if c.has(flag::CLIENT_READABLE) && !c.down.pending_out() {
                match read_once(&mut self.pool, &mut c.up, &mut c.client) {
                    Io::Blocked => c.clear(flag::CLIENT_READABLE),
                    Io::Full => {}
                    Io::Eof | Io::Error(_) => return Next::Finish,
                    io @ (Io::Progress | Io::Drained) => {
                        if matches!(io, Io::Drained) {
                            flag::drained(&mut c.flags, flag::CLIENT_READABLE);
                        }
                        progress = true;
                        let mut verdict = Echoed::default();
                        echo_frames(&mut self.pool, &mut c.up, &mut verdict);
                        release_if_empty(&mut self.pool, &mut c.up);
                        if let Some((code, reason)) = verdict.violation {
                            return self.echo_close(key, c, code, reason);
                        }
                        if verdict.closed {
                            // Our close reply is queued: send it, then close.
                            c.set(flag::FAILING);
                            let grace = self.model.settings.bounds.close_grace;
                            self.set_timeout(key, c, grace);
                        }
                    }
                }
            }
            if !progress {
                break;
            }
            moved = true;
        }
        if moved && !c.has(flag::FAILING) {
            let idle = self.model.settings.bounds.idle_timeout;
            self.set_timeout(key, c, idle);
        }
        Next::Stay
    }

    pub(super) fn echo_close(&mut self, key: usize, c: &mut Conn, code: u16, reason: &str) -> Next {
        let mut frame_bytes = [0u8; 131];
        let n = frame::write_close(&mut frame_bytes, code, reason, None);
        c.up.dec = frame::Decoder::new(frame::Role::Client, false, 0);
        inject(&mut self.pool, &mut c.up, &frame_bytes[..n]);
        c.set(flag::FAILING);
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, c, grace);
        self.drive_echo(key, c)
    }
}

#[derive(Default)]
struct Echoed {
    closed: bool,
    violation: Option<(u16, &'static str)>,
}

/// Rewrites the client's frames in place into the frames the echo sends back: unmasked, pings
/// turned into pongs, pongs left out. The output is never longer than the input (a header
/// loses its 4-byte mask), so the rewrite needs no second buffer.
fn echo_frames(pool: &mut Pool, flow: &mut Flow, verdict: &mut Echoed) {
    let Some(id) = &flow.buf else { return };
    let buf = pool.get(id);
    let end = flow.end as usize;
    let (mut r, mut w) = (flow.out as usize, flow.out as usize);
    while r < end {
        if flow.dec.closed() {
            r = end;
            break;
        }
        // Where the coming payload bytes sit in their frame, for unmasking.
        let offset = flow.dec.payload_offset() as usize;
        let mask = flow.dec.current().and_then(|h| h.mask);
        match flow.dec.next(&buf[r..end]) {
            frame::Next::NeedMore => break,
            frame::Next::Violation { code, reason } => {
                verdict.violation = Some((code, reason));
                r = end;
                break;
            }
            frame::Next::Header {
                head, header_len, ..
            } => {
                flow.dropping = head.opcode == opcode::PONG;
                if !flow.dropping {
                    let op = if head.opcode == opcode::PING {
                        opcode::PONG
                    } else {
                        head.opcode
                    };
                    let mut h = [0u8; 14];
                    let n = frame::write_header(&mut h, head.fin, op, None, head.len);
                    buf[w..w + n].copy_from_slice(&h[..n]);
                    w += n;
                }
                r += header_len;
            }
            frame::Next::Payload { len } => {
                if !flow.dropping {
                    if let Some(mask) = mask {
                        frame::apply_mask(&mut buf[r..r + len], mask, offset);
                    }
                    buf.copy_within(r..r + len, w);
                    w += len;
                }
                r += len;
            }
        }
        if flow.dec.closed() {
            verdict.closed = true;
        }
    }
    buf.copy_within(r..end, w);
    flow.out = w as u32;
    flow.end = (w + end - r) as u32;
}
