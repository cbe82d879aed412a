//! Moving frames between the client and the backend. Bytes are forwarded as they arrive (client
//! frames stay masked with the client's key); the decoder only watches them for frame and
//! message boundaries and protocol errors. A direction buffers at most one pool buffer; when it
//! is full the loop stops reading that direction's source until the destination drains.

use super::Gateway;
use super::conn::{Flow, MessageLimit, Phase, flag};
use super::pool::Pool;
use crate::model::OverLimitAction;
use crate::policy::limits::Counters;
use crate::ws::frame::{self, Next};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

pub(super) enum Io {
    Progress,
    Blocked,
    /// The buffer has no free space left.
    Full,
    Eof,
    Error(io::Error),
}

/// Reads once into the free space of the flow's buffer, taking a buffer from the pool if the
/// flow has none.
pub(super) fn read_once(pool: &mut Pool, flow: &mut Flow, src: &mut TcpStream) -> Io {
    read_leaving(pool, flow, src, 0)
}

/// Like [`read_once`], but leaves `reserve` bytes of the buffer free (room for the gateway's
/// own answer in front of what was read).
pub(super) fn read_leaving(
    pool: &mut Pool,
    flow: &mut Flow,
    src: &mut TcpStream,
    reserve: usize,
) -> Io {
    let id = match flow.buf {
        Some(id) => id,
        None => {
            let id = pool.take();
            flow.buf = Some(id);
            flow.head = 0;
            flow.out = 0;
            flow.end = 0;
            id
        }
    };
    let buf = pool.get(id);
    let cap = buf.len().saturating_sub(reserve);
    if flow.end as usize >= cap && flow.head > 0 {
        // Make room by moving what is left to the front.
        let (h, e) = (flow.head as usize, flow.end as usize);
        buf.copy_within(h..e, 0);
        flow.out -= flow.head;
        flow.end -= flow.head;
        flow.head = 0;
    }
    if flow.end as usize >= cap {
        return Io::Full;
    }
    loop {
        match src.read(&mut buf[flow.end as usize..cap]) {
            Ok(0) => {
                release_if_empty(pool, flow);
                return Io::Eof;
            }
            Ok(n) => {
                flow.end += n as u32;
                return Io::Progress;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                release_if_empty(pool, flow);
                return Io::Blocked;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                release_if_empty(pool, flow);
                return Io::Error(e);
            }
        }
    }
}

/// Writes the flow's ready bytes to `dst` until they are gone or `dst` blocks.
pub(super) fn write_out(pool: &mut Pool, flow: &mut Flow, dst: &mut TcpStream) -> Io {
    let Some(id) = flow.buf else {
        return Io::Progress;
    };
    let buf = pool.get(id);
    let mut wrote = false;
    while flow.head < flow.out {
        match dst.write(&buf[flow.head as usize..flow.out as usize]) {
            Ok(0) => return Io::Eof,
            Ok(n) => {
                flow.head += n as u32;
                wrote = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return if wrote { Io::Progress } else { Io::Blocked };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Io::Error(e),
        }
    }
    release_if_empty(pool, flow);
    Io::Progress
}

/// Gives the flow's buffer back when nothing is left in it.
pub(super) fn release_if_empty(pool: &mut Pool, flow: &mut Flow) {
    if flow.head == flow.end {
        if let Some(id) = flow.buf.take() {
            pool.give(id);
        }
        flow.head = 0;
        flow.out = 0;
        flow.end = 0;
    }
}

/// What decoding a flow's new bytes found.
#[derive(Default)]
pub(super) struct Seen {
    /// A complete close frame passed.
    pub close: bool,
    pub violation: Option<(u16, &'static str)>,
    /// A message over a hard limit, in `close` mode: the close code for the client.
    pub over_limit: Option<u16>,
}

/// What happens to a data message, decided at its first frame.
pub(super) enum Admit {
    Forward,
    /// Discard the whole message (all its frames); the connection stays.
    Drop,
    /// Forward nothing more and close with this code.
    Close(u16),
}

/// Decodes `flow.out..flow.end`, keeping the bytes to forward and dropping the rest in place.
/// `admit` is asked once per data message, at its first frame, before any of it is forwarded.
/// A partial frame header stays after `flow.out` until more bytes arrive.
pub(super) fn decode(
    pool: &mut Pool,
    flow: &mut Flow,
    seen: &mut Seen,
    admit: &mut dyn FnMut() -> Admit,
) {
    let Some(id) = flow.buf else { return };
    let buf = pool.get(id);
    let end = flow.end as usize;
    let (mut r, mut w) = (flow.out as usize, flow.out as usize);
    while r < end {
        if flow.dec.closed() {
            // Nothing may follow a close frame: whatever does is dropped.
            r = end;
            break;
        }
        let control_payload = flow.dec.in_control();
        let (n, keep) = match flow.dec.next(&buf[r..end]) {
            Next::NeedMore => break,
            Next::Header {
                head,
                header_len,
                message_start,
            } => {
                if message_start {
                    match admit() {
                        Admit::Forward => flow.dropping = false,
                        Admit::Drop => flow.dropping = true,
                        Admit::Close(code) => {
                            seen.over_limit = Some(code);
                            r = end;
                            break;
                        }
                    }
                }
                (header_len, !flow.dropping || head.is_control())
            }
            Next::Payload { len } => (len, !flow.dropping || control_payload),
            Next::Violation { code, reason } => {
                seen.violation = Some((code, reason));
                r = end;
                break;
            }
        };
        if keep {
            buf.copy_within(r..r + n, w);
            w += n;
        }
        r += n;
        if flow.dropping && flow.dec.message_done() {
            flow.dropping = false;
        }
        if flow.dec.closed() {
            seen.close = true;
        }
    }
    buf.copy_within(r..end, w);
    flow.out = w as u32;
    flow.end = (w + end - r) as u32;
}

/// Queues a frame made by the gateway at the end of the flow's ready bytes. Bytes not yet
/// decoded are dropped (the flow is being closed). Returns false when the destination is in
/// the middle of a frame, so that no frame can be put in without corrupting the stream, or
/// when there is no room.
pub(super) fn inject(pool: &mut Pool, flow: &mut Flow, frame: &[u8]) -> bool {
    if flow.dec.remaining() > 0 {
        return false;
    }
    let id = match flow.buf {
        Some(id) => id,
        None => {
            let id = pool.take();
            flow.buf = Some(id);
            flow.head = 0;
            flow.out = 0;
            flow.end = 0;
            id
        }
    };
    let buf = pool.get(id);
    flow.end = flow.out;
    if flow.out as usize + frame.len() > buf.len() {
        let (h, o) = (flow.head as usize, flow.out as usize);
        buf.copy_within(h..o, 0);
        flow.out -= flow.head;
        flow.end = flow.out;
        flow.head = 0;
        if flow.out as usize + frame.len() > buf.len() {
            return false;
        }
    }
    let o = flow.out as usize;
    buf[o..o + frame.len()].copy_from_slice(frame);
    flow.out += frame.len() as u32;
    flow.end = flow.out;
    true
}

impl Gateway {
    pub(super) fn drive_relay(&mut self, key: usize) {
        let mut moved = false;
        loop {
            let a = self.pump(key, true);
            let b = self.pump(key, false);
            if !(a || b) {
                break;
            }
            moved = true;
        }
        let Some(c) = self.conns.get(key) else { return };
        if c.phase != Phase::Open {
            return;
        }
        let flushed = !c.up.pending_out() && !c.down.pending_out();
        let both_closed = c.has(flag::CLIENT_CLOSED) && c.has(flag::BACKEND_CLOSED);
        if flushed && (c.has(flag::FAILING) || both_closed) {
            return self.finish(key);
        }
        if c.has(flag::FAILING) {
            return;
        }
        if c.has(flag::BACKEND_EOF) {
            if c.has(flag::BACKEND_CLOSED) {
                // The backend closed properly; once its close reached the client we are done.
                if flushed {
                    return self.finish(key);
                }
                return;
            }
            log::debug!("backend of {} went away without a close frame", c.peer);
            return self.fail(key, Some((1001, "backend went away")), None);
        }
        if c.has(flag::CLIENT_EOF) {
            if c.has(flag::CLIENT_CLOSED) {
                if flushed && c.has(flag::BACKEND_CLOSED) {
                    return self.finish(key);
                }
                return;
            }
            return self.fail(key, None, Some((1001, "client went away")));
        }
        if moved {
            let c = &self.conns[key];
            let t = if c.has(flag::CLIENT_CLOSED) || c.has(flag::BACKEND_CLOSED) {
                self.model.settings.bounds.close_grace
            } else {
                self.model.settings.bounds.idle_timeout
            };
            self.set_timeout(key, t);
        }
    }

    /// Moves bytes one way: client to backend when `up`. Returns whether anything moved.
    fn pump(&mut self, key: usize, up: bool) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let Some(backend) = c.backend.as_mut() else {
            return false;
        };
        let (flow, src, dst) = if up {
            (&mut c.up, &mut c.client, backend)
        } else {
            (&mut c.down, backend, &mut c.client)
        };
        let (src_readable, dst_writable, src_eof, dst_eof) = if up {
            (
                flag::CLIENT_READABLE,
                flag::BACKEND_WRITABLE,
                flag::CLIENT_EOF,
                flag::BACKEND_EOF,
            )
        } else {
            (
                flag::BACKEND_READABLE,
                flag::CLIENT_WRITABLE,
                flag::BACKEND_EOF,
                flag::CLIENT_EOF,
            )
        };
        let mut moved = false;
        if flow.pending_out() && c.flags & dst_writable != 0 {
            match write_out(&mut self.pool, flow, dst) {
                Io::Blocked => c.flags &= !dst_writable,
                Io::Progress | Io::Full => moved = true,
                Io::Eof | Io::Error(_) => {
                    // The destination is gone; what was meant for it is dropped.
                    c.flags |= dst_eof;
                    flow.head = flow.out;
                    release_if_empty(&mut self.pool, flow);
                    moved = true;
                }
            }
        }
        if c.flags & src_readable == 0 || c.flags & src_eof != 0 {
            return moved;
        }
        let failing = c.flags & flag::FAILING != 0;
        if failing {
            // Closing: what the source still sends is not forwarded.
            discard(src, &mut c.flags, src_readable, src_eof);
            return moved;
        }
        match read_once(&mut self.pool, flow, src) {
            Io::Blocked => {
                c.flags &= !src_readable;
                return moved;
            }
            // Full: wait until the destination drains (backpressure).
            Io::Full => return moved,
            Io::Eof | Io::Error(_) => {
                c.flags |= src_eof;
                return true;
            }
            Io::Progress => {}
        }
        let mut seen = Seen::default();
        let counters = &mut self.counters;
        let limits = c.limits.as_deref();
        let (now, drop_mode) = (
            self.now_secs,
            self.model.settings.bounds.over_limit == OverLimitAction::Drop,
        );
        let mut admit = || match limits {
            None => Admit::Forward,
            Some(l) => admit_message(counters, &l.messages, up, now, drop_mode),
        };
        decode(&mut self.pool, flow, &mut seen, &mut admit);
        release_if_empty(&mut self.pool, flow);
        if let Some(code) = seen.over_limit {
            log::info!(
                "{} message over a hard limit from {}: closing with {code}",
                if up { "client" } else { "backend" },
                c.peer
            );
            self.fail(key, Some((code, "Rate Limit exceeded")), Some((1001, "")));
            return false;
        }
        if seen.close {
            c.flags |= if up {
                flag::CLIENT_CLOSED
            } else {
                flag::BACKEND_CLOSED
            };
        }
        if let Some((code, reason)) = seen.violation {
            log::debug!(
                "protocol error from {}: {reason}",
                if up { "client" } else { "backend" }
            );
            let (to_client, to_backend) = if up {
                (Some((code, reason)), Some((1001, "")))
            } else {
                (Some((1001, "")), Some((code, reason)))
            };
            self.fail(key, to_client, to_backend);
            return false;
        }
        true
    }

    /// Ends a relay from the gateway's side: sends each side the given close frame (or nothing),
    /// discards further input, and closes both sockets once the frames are written.
    pub(super) fn fail(
        &mut self,
        key: usize,
        to_client: Option<(u16, &str)>,
        to_backend: Option<(u16, &str)>,
    ) {
        let mask = self.random().to_le_bytes();
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.set(flag::FAILING);
        let mut frame = [0u8; 131];
        if let Some((code, reason)) = to_client
            && !c.has(flag::BACKEND_CLOSED)
            && !c.has(flag::CLIENT_EOF)
        {
            let n = frame::write_close(&mut frame, code, reason, None);
            inject(&mut self.pool, &mut c.down, &frame[..n]);
        }
        if let Some((code, reason)) = to_backend
            && !c.has(flag::CLIENT_CLOSED)
            && !c.has(flag::BACKEND_EOF)
        {
            let m = [mask[0], mask[1], mask[2], mask[3]];
            let n = frame::write_close(&mut frame, code, reason, Some(m));
            inject(&mut self.pool, &mut c.up, &frame[..n]);
        }
        let grace = self.model.settings.bounds.close_grace;
        self.set_timeout(key, grace);
        // Write what can be written now; the rest waits for writable events or the grace timer.
        self.drive_relay(key);
    }
}

/// Counts one data message against the message limits of its direction (spec decisions 6, 7).
fn admit_message(
    counters: &mut Counters,
    limits: &[MessageLimit],
    upstream: bool,
    now: u64,
    drop_mode: bool,
) -> Admit {
    for m in limits.iter().filter(|m| m.upstream == upstream) {
        let v = counters.consume(m.slot, m.weight as u64, now);
        if !v.allowed {
            return if drop_mode {
                Admit::Drop
            } else {
                Admit::Close(if m.is_client { 1008 } else { 1013 })
            };
        }
        if v.exceeded && v.first_in_window {
            log::warn!("soft message limit exceeded; the message goes on");
        }
    }
    Admit::Forward
}

/// Reads and throws away what a source sends while its connection is being closed.
pub(super) fn discard(src: &mut TcpStream, flags: &mut u16, readable: u16, eof: u16) {
    let mut scratch = [0u8; 4096];
    loop {
        match src.read(&mut scratch) {
            Ok(0) => {
                *flags |= eof;
                return;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *flags &= !readable;
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                *flags |= eof;
                return;
            }
        }
    }
}
