//! The built-in echo backend, served on the same loop with the same codec: every data message
//! comes back as it was sent, pings get pongs, a close is answered with the same close. Plain
//! HTTP requests get their request line and headers back as text. It makes the shipped config
//! work end to end on its own, and gives tests and benchmarks a backend without extra programs.

use super::Gateway;
use super::conn::{Flow, Phase, flag};
use super::pool::Pool;
use super::relay::{Io, discard, inject, read_once, release_if_empty, write_out};
use crate::http::head::RequestHead;
use crate::ws::frame::{self, Next, opcode};
use crate::ws::handshake::{self, Negotiated};

impl Gateway {
    pub(super) fn echo_request(&mut self, key: usize, head: RequestHead) {
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
            return self.answer(key, reply.as_bytes());
        }
        let upgrade = match handshake::validate_client(&head) {
            Ok(u) => u,
            Err(handshake::UpgradeError::Version) => {
                return self.respond(
                    key,
                    426,
                    "Unsupported WebSocket version",
                    &[("Sec-WebSocket-Version", "13")],
                );
            }
            Err(handshake::UpgradeError::BadRequest(why)) => {
                return self.respond(key, 400, why, &[]);
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
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !inject(&mut self.pool, &mut c.down, &reply) {
            return self.finish(key);
        }
        c.phase = Phase::Echo;
        let idle = self.model.settings.bounds.idle_timeout;
        self.set_timeout(key, idle);
        self.drive_echo(key);
    }

    /// The 101 goes out through the backward flow; after that, echoed frames go out through the
    /// forward flow's buffer, rewritten in place.
    pub(super) fn drive_echo(&mut self, key: usize) {
        let mut moved = false;
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
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
                return self.finish(key);
            }
            let flushed = !c.up.pending_out() && !c.down.pending_out();
            if c.has(flag::FAILING) {
                if c.has(flag::CLIENT_EOF) {
                    return self.finish(key);
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
                        return self.finish(key);
                    }
                }
                return;
            }
            if c.has(flag::CLIENT_READABLE) && !c.down.pending_out() {
                match read_once(&mut self.pool, &mut c.up, &mut c.client) {
                    Io::Blocked => c.clear(flag::CLIENT_READABLE),
                    Io::Full => {}
                    Io::Eof | Io::Error(_) => return self.finish(key),
                    io @ (Io::Progress | Io::Drained) => {
                        if matches!(io, Io::Drained) {
                            flag::drained(&mut c.flags, flag::CLIENT_READABLE);
                        }
                        progress = true;
                        let mut verdict = Echoed::default();
                        echo_frames(&mut self.pool, &mut c.up, &mut verdict);
                        release_if_empty(&mut self.pool, &mut c.up);
                        if let Some((code, reason)) = verdict.violation {
                            return self.echo_close(key, code, reason);
                        }
                        if verdict.closed {
                            // Our close reply is queued: send it, then close.
                            c.set(flag::FAILING);
                            let grace = self.model.settings.bounds.close_grace;
                            self.set_timeout(key, grace);
                        }
                    }
                }
            }
            if !progress {
                break;
            }
            moved = true;
        }
        if moved {
            let idle = self.model.settings.bounds.idle_timeout;
            if self.conns.get(key).is_some_and(|c| !c.has(flag::FAILING)) {
                self.set_timeout(key, idle);
            }
        }
    }

    pub(super) fn echo_close(&mut self, key: usize, code: u16, reason: &str) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut frame_bytes = [0u8; 131];
        let n = frame::write_close(&mut frame_bytes, code, reason, None);
        c.up.dec = frame::Decoder::new(frame::Role::Client, false, 0);
        inject(&mut self.pool, &mut c.up, &frame_bytes[..n]);
        c.set(flag::FAILING);
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, grace);
        self.drive_echo(key);
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
    let Some(id) = flow.buf else { return };
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
            Next::NeedMore => break,
            Next::Violation { code, reason } => {
                verdict.violation = Some((code, reason));
                r = end;
                break;
            }
            Next::Header {
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
            Next::Payload { len } => {
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
