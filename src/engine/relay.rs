//! Moving frames between the client and the backend. Bytes are forwarded as they arrive (client
//! frames stay masked with the client's key); the decoder only watches them for frame and
//! message boundaries and protocol errors. A direction buffers at most one pool buffer; when it
//! is full the loop stops reading that direction's source until the destination drains.

use super::activity::closing;
use super::conn::{Conn, Flow, Phase, flag};
use super::cx::{Cx, Next};
use super::pool::Pool;
use super::stream::Stream;
use crate::activity::Closer;
use crate::model::{LimitIdx, OverLimitAction};
use crate::policy::limits::{Counters, Profile};
use crate::ws::frame::{self, Role, opcode};
use std::io::{self, Read, Write};

pub(super) enum Io {
    Progress,
    /// Read something, and less than there was room for: a plain socket had nothing more
    /// at that moment (see `flag::drained`).
    Drained,
    Blocked,
    /// The buffer has no free space left.
    Full,
    Eof,
    Error(io::Error),
}

/// Reads once into the free space of the flow's buffer, taking a buffer from the pool if the
/// flow has none.
pub(super) fn read_once(pool: &mut Pool, flow: &mut Flow, src: &mut Stream) -> Io {
    read_leaving(pool, flow, src, 0)
}

/// Like [`read_once`], but leaves `reserve` bytes of the buffer free (room for the gateway's
/// own answer in front of what was read).
pub(super) fn read_leaving(
    pool: &mut Pool,
    flow: &mut Flow,
    src: &mut Stream,
    reserve: usize,
) -> Io {
    let id = flow.buffer(pool);
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
    let room = cap - flow.end as usize;
    loop {
        match src.read(&mut buf[flow.end as usize..cap]) {
            Ok(0) => {
                release_if_empty(pool, flow);
                return Io::Eof;
            }
            Ok(n) => {
                flow.end += n as u32;
                // A TLS stream may hold decrypted bytes beyond what one read returns.
                return if n < room && !src.is_tls() {
                    Io::Drained
                } else {
                    Io::Progress
                };
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
pub(super) fn write_out(pool: &mut Pool, flow: &mut Flow, dst: &mut Stream) -> Io {
    let Some(id) = &flow.buf else {
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

/// Replaces the `used` bytes of a backend head at `start` of the flow's buffer with `head`
/// (the client's version of it), moving the bytes after it, and marks the new head ready to
/// send. False when the buffer has no room for it.
pub(super) fn splice_head(
    pool: &mut Pool,
    flow: &mut Flow,
    start: usize,
    used: usize,
    head: &[u8],
) -> bool {
    let Some(id) = &flow.buf else { return false };
    let buf = pool.get(id);
    let (rest, end, n) = (start + used, flow.end as usize, head.len());
    if start + n + (end - rest) > buf.len() {
        return false;
    }
    buf.copy_within(rest..end, start + n);
    buf[start..start + n].copy_from_slice(head);
    flow.end = (start + n + end - rest) as u32;
    flow.out = (start + n) as u32;
    true
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
    /// A message over a hard limit, in `close` mode: the close code for the client and the
    /// limit.
    pub over_limit: Option<(u16, LimitIdx)>,
    /// The source sent more control frames in a second than `bounds.max-control-frames`;
    /// decoding stopped in front of the one too many.
    pub control_flood: bool,
}

/// What a flow's control frames are checked against: the time and `bounds.max-control-frames`.
#[derive(Clone, Copy)]
pub(super) struct ControlBound {
    pub now_secs: u64,
    pub max: u16,
}

/// What happens to a data message, decided at its first frame.
pub(super) enum Admit {
    Forward,
    /// Discard the whole message (all its frames); the connection stays.
    Drop,
    /// Forward nothing more and close with this code, because of this limit.
    Close(u16, LimitIdx),
}

/// Decodes `flow.out..flow.end`, keeping the bytes to forward and dropping the rest in place.
/// `admit` is asked once per data message, at its first frame, before any of it is forwarded.
/// Every control frame counts against `control`; a ping or pong over it stops decoding in front
/// of itself, while a close frame always passes (it is its side's last frame, and its code is
/// the peer's to give). A partial frame header stays after `flow.out` until more bytes arrive.
pub(super) fn decode(
    pool: &mut Pool,
    flow: &mut Flow,
    seen: &mut Seen,
    control: ControlBound,
    admit: &mut dyn FnMut() -> Admit,
) {
    let Some(id) = &flow.buf else { return };
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
            frame::Next::NeedMore => break,
            frame::Next::Header {
                head,
                header_len,
                message_start,
            } => {
                if head.is_control()
                    && !flow.control.admit(control.now_secs, control.max)
                    && head.opcode != opcode::CLOSE
                {
                    seen.control_flood = true;
                    r = end;
                    break;
                }
                if message_start {
                    match admit() {
                        Admit::Forward => flow.dropping = false,
                        Admit::Drop => flow.dropping = true,
                        Admit::Close(code, limit) => {
                            seen.over_limit = Some((code, limit));
                            r = end;
                            break;
                        }
                    }
                }
                (header_len, !flow.dropping || head.is_control())
            }
            frame::Next::Payload { len } => (len, !flow.dropping || control_payload),
            frame::Next::Violation { code, reason } => {
                seen.violation = Some((code, reason));
                r = end;
                break;
            }
        };
        if keep {
            // Bytes move only once something before them was dropped.
            if w != r {
                buf.copy_within(r..r + n, w);
            }
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
    if w != r {
        buf.copy_within(r..end, w);
    }
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
    let id = flow.buffer(pool);
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

impl Cx {
    pub(super) fn drive_relay(&mut self, key: usize, c: &mut Conn) -> Next {
        let mut moved = false;
        // A pump that failed the relay has driven it already; what is left of this round then
        // finds nothing to do, unless the connection is over.
        let pumped = |p: Result<bool, Next>| match p {
            Ok(moved) => Ok(moved),
            Err(Next::Stay) => Ok(false),
            Err(next) => Err(next),
        };
        loop {
            let a = match pumped(self.pump(key, c, true)) {
                Ok(a) => a,
                Err(next) => return next,
            };
            let b = match pumped(self.pump(key, c, false)) {
                Ok(b) => b,
                Err(next) => return next,
            };
            if !(a || b) {
                break;
            }
            moved = true;
        }
        if c.phase != Phase::Open {
            return Next::Stay;
        }
        let flushed = !c.up.pending_out() && !c.down.pending_out();
        let both_closed = c.has(flag::CLIENT_CLOSED) && c.has(flag::BACKEND_CLOSED);
        if flushed && (c.has(flag::FAILING) || both_closed) {
            return self.wind_down(key, c);
        }
        if c.has(flag::FAILING) {
            return Next::Stay;
        }
        if c.has(flag::BACKEND_EOF) {
            if c.has(flag::BACKEND_CLOSED) || c.has(flag::CLIENT_CLOSED) {
                // The backend closed properly, or answered the client's close by closing the
                // connection: once what it sent reached the client we are done.
                if flushed {
                    return self.wind_down(key, c);
                }
                return Next::Stay;
            }
            // Gone without a close frame (FIN or reset, perhaps inside a frame): the client
            // sees the same, once what was relayed has reached it. A close frame of ours would
            // tell it of a clean close that never happened.
            log::debug!("backend of {} went away without a close frame", c.peer);
            super::activity::note_close(c, Closer::Backend, 1006);
            return self.fail(key, c, None, None);
        }
        if c.has(flag::CLIENT_EOF) {
            if c.has(flag::CLIENT_CLOSED) || c.has(flag::BACKEND_CLOSED) {
                if flushed {
                    return self.wind_down(key, c);
                }
                return Next::Stay;
            }
            log::debug!("client {} went away without a close frame", c.peer);
            super::activity::note_close(c, Closer::Client, 1006);
            return self.fail(key, c, None, None);
        }
        if moved {
            let t = if c.has(flag::CLIENT_CLOSED) || c.has(flag::BACKEND_CLOSED) {
                self.model.settings.bounds.close_grace
            } else {
                self.model.settings.bounds.idle_timeout
            };
            self.set_timeout(key, c, t);
        }
        Next::Stay
    }

    /// Everything is said and written. Our write side of both sockets is shut and what the
    /// peers still send is read and dropped until each has closed its side or sent its close
    /// frame (or `close-grace` passes): closing a socket with unread bytes would reset the
    /// connection, and a reset can destroy our last frames before the peer reads them.
    fn wind_down(&mut self, key: usize, c: &mut Conn) -> Next {
        if !c.has(flag::SHUT) {
            // The WebSocket is over: this is where its transaction ends.
            self.release_limits(c);
            self.activity_end(c);
            c.set(flag::SHUT | flag::FAILING);
            c.client.shutdown_write();
            if let Some(b) = c.backend.as_mut() {
                b.shutdown_write();
            }
            let grace = self.model.settings.bounds.close_grace;
            self.set_timeout(key, c, grace);
        }
        if c.has(flag::CLIENT_READABLE) && !c.has(flag::CLIENT_EOF) {
            discard(
                &mut c.client,
                &mut c.flags,
                flag::CLIENT_READABLE,
                flag::CLIENT_EOF,
            );
        }
        if let Some(b) = c.backend.as_mut()
            && c.flags & flag::BACKEND_READABLE != 0
            && c.flags & flag::BACKEND_EOF == 0
        {
            discard(b, &mut c.flags, flag::BACKEND_READABLE, flag::BACKEND_EOF);
        }
        // A side that sent its close frame sends nothing more: its socket can go once drained.
        let client_done = c.has(flag::CLIENT_EOF) || c.has(flag::CLIENT_CLOSED);
        let backend_done = c.has(flag::BACKEND_EOF) || c.has(flag::BACKEND_CLOSED);
        if client_done && backend_done {
            return Next::Finish;
        }
        Next::Stay
    }

    /// Moves bytes one way: client to backend when `up`. Returns whether anything moved, or
    /// what failing the relay led to.
    fn pump(&mut self, key: usize, c: &mut Conn, up: bool) -> Result<bool, Next> {
        let Some(backend) = c.backend.as_mut() else {
            return Ok(false);
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
                Io::Progress | Io::Drained | Io::Full => moved = true,
                Io::Eof | Io::Error(_) => {
                    // The destination is gone; what was meant for it is dropped.
                    c.flags |= dst_eof;
                    flow.head = flow.out;
                    release_if_empty(&mut self.pool, flow);
                    moved = true;
                }
            }
        }
        // Closing: what the source still sends is not forwarded.
        if c.flags & flag::FAILING != 0 {
            if c.flags & src_readable != 0 && c.flags & src_eof == 0 {
                discard(src, &mut c.flags, src_readable, src_eof);
            }
            return Ok(moved);
        }
        if c.flags & src_readable != 0 && c.flags & src_eof == 0 {
            match read_once(&mut self.pool, flow, src) {
                Io::Blocked => c.flags &= !src_readable,
                // Full: wait until the destination drains (backpressure).
                Io::Full => {}
                Io::Eof | Io::Error(_) => {
                    c.flags |= src_eof;
                    moved = true;
                }
                Io::Progress => moved = true,
                Io::Drained => {
                    moved = true;
                    flag::drained(&mut c.flags, src_readable);
                }
            }
        }
        // Decode what is new, and what came along with the handshake before it.
        if flow.out == flow.end {
            return Ok(moved);
        }
        let before = flow.out;
        let mut seen = Seen::default();
        let counters = &mut self.counters;
        let limits = c.limits.as_deref();
        let (now, drop_mode) = (
            self.now_secs,
            self.model.settings.bounds.over_limit == OverLimitAction::Drop,
        );
        let mut messages = 0u64;
        let mut admit = || {
            let a = match limits {
                None => Admit::Forward,
                Some(l) => match &l.profile {
                    Some(p) => admit_message(counters, p, up, now, drop_mode),
                    None => Admit::Forward,
                },
            };
            messages += u64::from(matches!(a, Admit::Forward));
            a
        };
        let control = ControlBound {
            now_secs: now,
            max: self.model.settings.bounds.max_control_frames,
        };
        decode(&mut self.pool, flow, &mut seen, control, &mut admit);
        let relayed = u64::from(flow.out - before);
        moved |= relayed != 0;
        let close_code = flow.dec.close_code();
        release_if_empty(&mut self.pool, flow);
        self.metrics
            .relayed(c.metrics_row, &c.model, c.api, up, messages, relayed);
        if let Some(r) = c.activity.as_deref_mut() {
            if up {
                r.messages_in += messages;
                r.bytes_in += relayed;
            } else {
                r.messages_out += messages;
                r.bytes_out += relayed;
            }
        }
        if let Some((code, limit)) = seen.over_limit {
            let name = self.counters.limit_name(limit).unwrap_or("");
            self.metrics.limit_closed(name);
            closing(&mut c.activity, Closer::Gateway, code, Some(name));
            // The refused message's header was read but not forwarded, so the destination sits
            // exactly between frames; the decoder starts afresh so the close can be queued there.
            // Nothing more is decoded on this flow.
            let role = if up { Role::Client } else { Role::Server };
            flow.dec = frame::Decoder::new(role, false, 0);
            log::info!(
                "{} message over a hard limit from {}: closing with {code}",
                if up { "client" } else { "backend" },
                c.peer
            );
            return Err(self.fail(
                key,
                c,
                Some((code, "Rate Limit exceeded")),
                Some((1001, "")),
            ));
        }
        if seen.control_flood {
            self.metrics.control_flood_closed(up);
            closing(
                &mut c.activity,
                Closer::Gateway,
                1008,
                Some(CONTROL_FLOOD_BOUND),
            );
            // As for a message over a limit: the frame refused was not forwarded, so the
            // destination sits between frames, and nothing more is decoded on this flow.
            let role = if up { Role::Client } else { Role::Server };
            flow.dec = frame::Decoder::new(role, false, 0);
            log::info!(
                "{} {} sent more than {} control frames in a second: closing it with 1008",
                if up { "client" } else { "backend of" },
                c.peer,
                self.model.settings.bounds.max_control_frames
            );
            let (flooder, other) = ((1008, CONTROL_FLOOD_REASON), (1001, ""));
            return Err(if up {
                self.fail(key, c, Some(flooder), Some(other))
            } else {
                self.fail(key, c, Some(other), Some(flooder))
            });
        }
        if seen.close {
            let by = if up { Closer::Client } else { Closer::Backend };
            // 1005: a close frame without a code.
            closing(&mut c.activity, by, close_code.unwrap_or(1005), None);
            c.flags |= if up {
                flag::CLIENT_CLOSED
            } else {
                flag::BACKEND_CLOSED
            };
        }
        if let Some((code, reason)) = seen.violation {
            closing(&mut c.activity, Closer::Gateway, code, None);
            log::debug!(
                "protocol error from {}: {reason}",
                if up { "client" } else { "backend" }
            );
            // The connection fails at once (RFC 6455 §7.1.7): what the other side sends from
            // now on is not relayed, not even answers to messages before the fault.
            return Err(if up {
                self.fail(key, c, Some((code, close_reason(code))), Some((1001, "")))
            } else {
                self.fail(key, c, Some((1001, "")), Some((code, reason)))
            });
        }
        Ok(moved)
    }

    /// Ends a relay from the gateway's side: sends each side the given close frame (or nothing),
    /// discards further input, and closes both sockets once the frames are written.
    pub(super) fn fail(
        &mut self,
        key: usize,
        c: &mut Conn,
        to_client: Option<(u16, &str)>,
        to_backend: Option<(u16, &str)>,
    ) -> Next {
        let mask = self.random().to_le_bytes();
        c.set(flag::FAILING);
        let mut frame = [0u8; 131];
        if let Some((code, reason)) = to_client
            && !c.has(flag::BACKEND_CLOSED)
            && !c.has(flag::CLIENT_EOF)
        {
            let n = frame::write_close(&mut frame, code, reason, None);
            inject(&mut self.pool, &mut c.down, &frame[..n]);
            if !matches!(code, 1000 | 1001) {
                self.metrics.refused(code);
            }
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
        self.set_timeout(key, c, grace);
        // Write what can be written now; the rest waits for writable events or the grace timer.
        self.drive_relay(key, c)
    }
}

/// What the activity log names as the cause of a close for too many control frames.
const CONTROL_FLOOD_BOUND: &str = "bounds.max-control-frames";
const CONTROL_FLOOD_REASON: &str = "too many control frames";

/// Counts one data message against the message limits of its direction (spec decisions 6, 7).
fn admit_message(
    counters: &mut Counters,
    profile: &Profile,
    upstream: bool,
    now: u64,
    drop_mode: bool,
) -> Admit {
    for i in 0..counters.profile_limits(profile).len() {
        let m = counters.profile_limits(profile)[i];
        if m.upstream != upstream {
            continue;
        }
        let v = counters.consume(m.slot, m.weight as u64, now);
        if !v.allowed {
            return if drop_mode {
                Admit::Drop
            } else {
                Admit::Close(if m.is_client { 1008 } else { 1013 }, m.slot.limit())
            };
        }
        if v.exceeded && v.first_in_window {
            log::warn!("soft message limit exceeded; the message goes on");
        }
    }
    Admit::Forward
}

/// Reads and throws away what a source sends while its connection is being closed.
pub(super) fn discard(src: &mut Stream, flags: &mut u16, readable: u16, eof: u16) {
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

/// The reason text sent with a close code the gateway chose.
fn close_reason(code: u16) -> &'static str {
    match code {
        1002 => "protocol error",
        1009 => "message too big",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backend frames (unmasked): `n` pings of one byte each, then `tail`.
    fn pings(n: usize, tail: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = (0..n).flat_map(|i| [0x89, 1, i as u8]).collect();
        v.extend_from_slice(tail);
        v
    }

    /// Decodes `bytes` as one read of a backend flow; returns what is forwarded and what was seen.
    fn run(flow: &mut Flow, pool: &mut Pool, bytes: &[u8], now_secs: u64) -> (Vec<u8>, Seen) {
        flow.buffer(pool);
        let start = flow.end as usize;
        held(pool, flow)[start..start + bytes.len()].copy_from_slice(bytes);
        flow.end += bytes.len() as u32;
        let mut seen = Seen::default();
        let bound = ControlBound { now_secs, max: 3 };
        decode(pool, flow, &mut seen, bound, &mut || Admit::Forward);
        let out = held(pool, flow)[flow.head as usize..flow.out as usize].to_vec();
        flow.head = flow.out;
        (out, seen)
    }

    /// The bytes of the flow's buffer (which it must hold).
    fn held<'p>(pool: &'p mut Pool, flow: &Flow) -> &'p mut [u8] {
        pool.get(flow.buf.as_ref().expect("the flow holds a buffer"))
    }

    #[test]
    fn control_frames_over_the_bound_stop_decoding_in_front_of_the_one_too_many() {
        let mut pool = Pool::new(4096, 1);
        let mut flow = Flow::new(frame::Decoder::new(Role::Server, false, 1 << 20));
        let (out, seen) = run(&mut flow, &mut pool, &pings(5, &[]), 100);
        assert!(seen.control_flood);
        assert_eq!(out, pings(3, &[]), "exactly the bound's worth is forwarded");

        // A new second on a fresh flow: the bound's worth passes, and a pong is counted too.
        let mut flow = Flow::new(frame::Decoder::new(Role::Server, false, 1 << 20));
        let (out, seen) = run(&mut flow, &mut pool, &pings(3, &[]), 100);
        assert!(!seen.control_flood);
        assert_eq!(out.len(), 9);
        let (_, seen) = run(&mut flow, &mut pool, &[0x8a, 0], 100);
        assert!(seen.control_flood, "a pong over the bound");
        let (out, seen) = run(&mut flow, &mut pool, &[0x8a, 0], 101);
        assert!(!seen.control_flood, "the next second starts afresh");
        assert_eq!(out, [0x8a, 0]);

        // Data frames do not count; a close over the bound still passes.
        let mut flow = Flow::new(frame::Decoder::new(Role::Server, false, 1 << 20));
        let text = [0x81, 2, b'h', b'i'];
        let close = [0x88, 2, 0x03, 0xe8];
        let mut bytes = pings(3, &text);
        bytes.extend_from_slice(&text);
        bytes.extend_from_slice(&close);
        let (out, seen) = run(&mut flow, &mut pool, &bytes, 100);
        assert!(!seen.control_flood && seen.close);
        assert_eq!(out, bytes);
    }

    /// Messages forwarded before a dropped one stay in place, the ones after it move up to
    /// close the gap, and the start of a frame not complete yet moves with them.
    #[test]
    fn a_dropped_message_is_cut_out_and_what_follows_moves_up() {
        let mut pool = Pool::new(4096, 1);
        let mut flow = Flow::new(frame::Decoder::new(Role::Server, false, 1 << 20));
        flow.buffer(&mut pool);
        let (a, b, c) = ([0x81, 1, b'a'], [0x81, 2, b'b', b'b'], [0x82, 1, b'c']);
        // A fragmented message (text, then a ping inside it, then its continuation) is dropped
        // whole except for the ping.
        let frag = [0x01, 1, b'x', 0x89, 0, 0x80, 1, b'y'];
        let mut bytes = [&a[..], &b, &frag, &c, &[0x81]].concat();
        let len = bytes.len();
        held(&mut pool, &flow)[..len].copy_from_slice(&bytes);
        flow.end = len as u32;
        let mut verdicts = [Admit::Forward, Admit::Drop, Admit::Drop, Admit::Forward].into_iter();
        let mut seen = Seen::default();
        let bound = ControlBound {
            now_secs: 100,
            max: 10,
        };
        let mut admit = || verdicts.next().expect("one verdict per message");
        decode(&mut pool, &mut flow, &mut seen, bound, &mut admit);
        let buf = held(&mut pool, &flow);
        let want = [&a[..], &[0x89, 0], &c].concat();
        assert_eq!(&buf[..flow.out as usize], &want[..]);
        assert_eq!(&buf[flow.out as usize..flow.end as usize], &[0x81]);
        // The rest of the last frame completes it where it now starts.
        bytes.clear();
        bytes.extend_from_slice(&[1, b'd']);
        let end = flow.end as usize;
        buf[end..end + 2].copy_from_slice(&bytes);
        flow.end += 2;
        let mut more = || Admit::Forward;
        decode(&mut pool, &mut flow, &mut seen, bound, &mut more);
        let tail = &held(&mut pool, &flow)[want.len()..flow.out as usize];
        assert_eq!(tail, [0x81, 1, b'd']);
        assert_eq!(flow.out, flow.end);
    }
}
