//! Client connections: non-blocking connect (optionally from a chosen source address), the
//! HTTP upgrade, and a frame loop. Every mode drives a `Pool` of these from one mio loop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use base64::Engine;
use mio::{Interest, Poll, Token};
use sha1::{Digest, Sha1};

use crate::frame::{self, Decoder, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, Piece};
use crate::tls::{ClientTls, Stream};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HEAD: usize = 16 * 1024;

/// Where to connect and what to send in the upgrade request.
pub struct Target {
    pub addr: SocketAddr,
    host: String,
    path: String,
    headers: String,
    pub sources: Vec<SocketAddr>,
    /// Set for wss:// URLs.
    tls: Option<ClientTls>,
}

/// TLS options of the client modes (used with wss:// URLs only).
#[derive(Default)]
pub struct TlsOpts {
    pub ca: Option<String>,
    pub insecure: bool,
    pub sni: Option<String>,
    pub resume: bool,
}

impl Target {
    /// Parses `ws://HOST:PORT/PATH` or `wss://...`; the host is resolved once, here.
    pub fn new(
        url: &str,
        headers: &[String],
        sources: &[String],
        tls: &TlsOpts,
    ) -> Result<Target, String> {
        let (rest, secure) = if let Some(r) = url.strip_prefix("ws://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (r, true)
        } else {
            return Err(format!("{url}: expected a ws:// or wss:// URL"));
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let has_port = host
            .rsplit(':')
            .next()
            .is_some_and(|p| p.parse::<u16>().is_ok())
            && !host.ends_with(']');
        let with_port = if has_port {
            host.to_string()
        } else {
            format!("{host}:{}", if secure { 443 } else { 80 })
        };
        let tls = if secure {
            // The name to send: --sni, else the URL's host without port or brackets.
            let bare = if has_port {
                &host[..host.rfind(':').unwrap_or(host.len())]
            } else {
                host
            };
            let bare = bare.trim_start_matches('[').trim_end_matches(']');
            let sni = tls.sni.as_deref().unwrap_or(bare);
            Some(ClientTls::new(
                tls.ca.as_deref(),
                tls.insecure,
                sni,
                tls.resume,
            )?)
        } else {
            if tls.ca.is_some() || tls.insecure || tls.sni.is_some() {
                return Err("--ca, --insecure and --sni apply to wss:// URLs only".into());
            }
            None
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let mut h = String::new();
        for x in headers {
            if !x.contains(':') {
                return Err(format!("--header {x:?}: expected 'Name: value'"));
            }
            h.push_str(x);
            h.push_str("\r\n");
        }
        let sources = sources
            .iter()
            .map(|s| {
                s.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .map_err(|_| format!("--sources: {s:?} is not an IP address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
            headers: h,
            sources,
            tls,
        })
    }
}

/// A cheap PRNG (xorshift64*) for handshake keys and frame masks; not for secrets.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ ((std::process::id() as u64) << 32)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Connecting,
    Upgrading,
    Open,
    /// We sent a close frame; waiting for the peer's close and its end of the TCP stream.
    Closing,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Close handshake we started is done.
    Clean,
    /// The peer started the close handshake with this code (0: none given); false when the
    /// stream then ended with an error (a reset) rather than a plain end of file.
    PeerClosed(u16, bool),
    /// Connect failed (refused, no route, ...).
    Connect(String),
    /// The server answered the upgrade with another status.
    Status(u16),
    /// Stream ended or reset without a close handshake.
    Dropped(String),
    /// The peer broke the protocol.
    Protocol(&'static str),
}

impl End {
    /// A short name for counting failures by kind.
    pub fn kind(&self) -> String {
        match self {
            End::Clean => "clean".into(),
            End::PeerClosed(c, true) => format!("closed by peer {c}"),
            End::PeerClosed(c, false) => format!("closed by peer {c}, then reset"),
            End::Connect(e) => format!("connect: {e}"),
            End::Status(s) => format!("status {s}"),
            End::Dropped(e) => format!("dropped: {e}"),
            End::Protocol(e) => format!("protocol: {e}"),
        }
    }
}

/// What one readiness event did to a connection.
#[derive(Default)]
pub struct Step {
    pub upgraded: bool,
    /// Data messages completed.
    pub msgs: u32,
    pub end: Option<End>,
}

pub struct Conn {
    stream: Stream,
    pub phase: Phase,
    pub started: Instant,
    /// Deadline for the close handshake once we started it.
    pub closing_since: Option<Instant>,
    accept: String,
    carry: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    dec: Decoder,
    close_received: bool,
    /// Close code when the peer closed first.
    peer_close: Option<u16>,
    prefix: [u8; 8],
    prefix_len: usize,
}

/// Closes with code 1000, masked.
fn close_frame(out: &mut Vec<u8>, mask: [u8; 4]) {
    frame::frame(out, OP_CLOSE, &1000u16.to_be_bytes(), Some(mask));
}

impl Conn {
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes queued but not yet written (plus one while TLS records wait for the socket).
    pub fn backlog(&self) -> usize {
        self.out.len() - self.out_pos + usize::from(self.stream.tls_pending())
    }

    /// Writes what is queued until the socket would block.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match self.stream.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Starts the close handshake (code 1000).
    pub fn start_close(&mut self, rng: &mut Rng, now: Instant) {
        if self.phase == Phase::Open {
            let mut f = Vec::with_capacity(8);
            close_frame(&mut f, (rng.next() as u32).to_ne_bytes());
            self.queue(&f);
            self.phase = Phase::Closing;
            self.closing_since = Some(now);
            let _ = self.flush();
        }
    }

    /// Handles one readiness event. `on_msg` gets the first (up to) 8 payload bytes of each
    /// completed data message.
    pub fn ready(
        &mut self,
        readable: bool,
        writable: bool,
        scratch: &mut [u8],
        rng: &mut Rng,
        on_msg: &mut impl FnMut(&[u8]),
    ) -> Step {
        let mut step = Step::default();
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.tcp.take_error() {
                step.end = Some(End::Connect(short_err(&e)));
                return step;
            }
            match self.stream.tcp.peer_addr() {
                Ok(_) => self.phase = Phase::Upgrading,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return step,
                Err(e) => {
                    step.end = Some(End::Connect(short_err(&e)));
                    return step;
                }
            }
            let _ = self.stream.tcp.set_nodelay(true);
        }
        if (writable || self.backlog() > 0)
            && let Err(e) = self.flush()
        {
            step.end = Some(End::Dropped(short_err(&e)));
            return step;
        }
        if readable {
            loop {
                match self.stream.read(scratch) {
                    Ok(0) => {
                        step.end = Some(match (self.close_received, self.peer_close) {
                            (true, Some(code)) => End::PeerClosed(code, true),
                            (true, None) => End::Clean,
                            _ => End::Dropped("eof".into()),
                        });
                        return step;
                    }
                    Ok(n) => {
                        if let Err(e) = self.input(&mut scratch[..n], rng, on_msg, &mut step) {
                            step.end = Some(e);
                            return step;
                        }
                        if step.end.is_some() {
                            return step;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Keep the close code if one came before the error.
                        step.end = Some(match self.peer_close {
                            Some(code) => End::PeerClosed(code, false),
                            None => End::Dropped(short_err(&e)),
                        });
                        return step;
                    }
                }
            }
            if self.backlog() > 0
                && let Err(e) = self.flush()
            {
                step.end = Some(End::Dropped(short_err(&e)));
            }
        }
        step
    }

    fn input(
        &mut self,
        data: &mut [u8],
        rng: &mut Rng,
        on_msg: &mut impl FnMut(&[u8]),
        step: &mut Step,
    ) -> Result<(), End> {
        if self.phase == Phase::Upgrading {
            self.carry.extend_from_slice(data);
            let Some(end) = find(&self.carry, b"\r\n\r\n") else {
                if self.carry.len() > MAX_HEAD {
                    return Err(End::Protocol("response head too large"));
                }
                return Ok(());
            };
            let head = std::str::from_utf8(&self.carry[..end])
                .map_err(|_| End::Protocol("response head not UTF-8"))?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or(End::Protocol("bad status line"))?;
            if status != 101 {
                return Err(End::Status(status));
            }
            let accept = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("sec-websocket-accept")
                    .then(|| v.trim())
            });
            if accept != Some(self.accept.as_str()) {
                return Err(End::Protocol("wrong Sec-WebSocket-Accept"));
            }
            self.phase = Phase::Open;
            step.upgraded = true;
            let mut rest = self.carry.split_off(end + 4);
            self.carry.clear();
            if rest.is_empty() {
                return Ok(());
            }
            return self.frames(&mut rest, rng, on_msg, step);
        }
        if self.carry.is_empty() {
            self.frames(data, rng, on_msg, step)
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            self.frames(&mut buf, rng, on_msg, step)
        }
    }

    /// Decodes frames; keeps an incomplete header or control frame for the next read.
    fn frames(
        &mut self,
        buf: &mut [u8],
        rng: &mut Rng,
        on_msg: &mut impl FnMut(&[u8]),
        step: &mut Step,
    ) -> Result<(), End> {
        let mut pos = 0;
        let mut reply: Option<(u8, Vec<u8>)> = None;
        loop {
            let piece = self.dec.next(buf, &mut pos).map_err(End::Protocol)?;
            let Some(piece) = piece else { break };
            match piece {
                Piece::Start { opcode, .. } => {
                    if opcode != OP_CONT {
                        self.prefix_len = 0;
                    }
                }
                Piece::Data(d) => {
                    let k = d.len().min(8 - self.prefix_len);
                    self.prefix[self.prefix_len..self.prefix_len + k].copy_from_slice(&d[..k]);
                    self.prefix_len += k;
                }
                Piece::End { fin: true } => {
                    step.msgs += 1;
                    on_msg(&self.prefix[..self.prefix_len]);
                }
                Piece::End { fin: false } => {}
                Piece::Control { opcode, payload } => match opcode {
                    OP_PING => reply = Some((OP_PONG, payload.to_vec())),
                    OP_CLOSE => {
                        self.close_received = true;
                        if self.phase == Phase::Open {
                            // Echo the peer's code, as RFC 6455 asks.
                            let code = payload.get(..2).unwrap_or(&[]).to_vec();
                            self.peer_close = Some(
                                code.get(..2)
                                    .map_or(0, |c| u16::from_be_bytes([c[0], c[1]])),
                            );
                            reply = Some((OP_CLOSE, code));
                            self.phase = Phase::Closing;
                        }
                    }
                    _ => {}
                },
            }
            if let Some((op, p)) = reply.take() {
                let mut f = Vec::with_capacity(p.len() + 8);
                frame::frame(&mut f, op, &p, Some((rng.next() as u32).to_ne_bytes()));
                self.queue(&f);
            }
        }
        if pos < buf.len() {
            self.carry.extend_from_slice(&buf[pos..]);
        }
        Ok(())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn short_err(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::AddrNotAvailable => "no free port".into(),
        _ => e.to_string(),
    }
}

/// Connections indexed by token, with slot reuse.
pub struct Pool {
    pub poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pub target: Target,
    pub rng: Rng,
    next_source: usize,
    live: usize,
}

impl Pool {
    pub fn new(target: Target) -> io::Result<Pool> {
        Ok(Pool {
            poll: Poll::new()?,
            conns: Vec::new(),
            free: Vec::new(),
            target,
            rng: Rng::seeded(),
            next_source: 0,
            live: 0,
        })
    }

    pub fn live(&self) -> usize {
        self.live
    }

    /// Starts a connection; its upgrade request is sent once the connect completes.
    pub fn open(&mut self, now: Instant) -> Result<usize, End> {
        let src = if self.target.sources.is_empty() {
            None
        } else {
            self.next_source = (self.next_source + 1) % self.target.sources.len();
            Some(self.target.sources[self.next_source])
        };
        let mut stream = crate::sys::connect_from(self.target.addr, src)
            .map_err(|e| End::Connect(short_err(&e)))?;
        let key_bytes: [u8; 16] = {
            let (a, b) = (self.rng.next(), self.rng.next());
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&a.to_ne_bytes());
            k[8..].copy_from_slice(&b.to_ne_bytes());
            k
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.encode(key_bytes);
        let accept = b64.encode(Sha1::digest(format!("{key}{GUID}").as_bytes()));
        let t = &self.target;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
            t.path, t.host, t.headers
        );
        let idx = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(idx),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(idx);
            return Err(End::Connect(short_err(&e)));
        }
        let stream = match &self.target.tls {
            Some(t) => Stream::client(stream, &t.config, &t.name),
            None => Stream::plain(stream),
        };
        self.conns[idx] = Some(Conn {
            stream,
            phase: Phase::Connecting,
            started: now,
            closing_since: None,
            accept,
            carry: Vec::new(),
            out: req.into_bytes(),
            out_pos: 0,
            dec: Decoder::new(false),
            close_received: false,
            peer_close: None,
            prefix: [0; 8],
            prefix_len: 0,
        });
        self.live += 1;
        Ok(idx)
    }

    pub fn get(&mut self, idx: usize) -> Option<&mut Conn> {
        self.conns.get_mut(idx).and_then(|c| c.as_mut())
    }

    /// Starts the close handshake on one connection.
    pub fn start_close(&mut self, idx: usize, now: Instant) {
        if let Some(c) = self.conns.get_mut(idx).and_then(|c| c.as_mut()) {
            c.start_close(&mut self.rng, now);
        }
    }

    /// Drops a connection (closing its socket).
    pub fn remove(&mut self, idx: usize) {
        if let Some(mut c) = self.conns.get_mut(idx).and_then(|c| c.take()) {
            let _ = self.poll.registry().deregister(&mut c.stream.tcp);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    /// Tokens of live connections (for sweeps: timeouts, closing all).
    pub fn tokens(&self) -> Vec<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|_| i))
            .collect()
    }

    /// Handles an event for `idx`; see `Conn::ready`.
    pub fn ready(
        &mut self,
        idx: usize,
        readable: bool,
        writable: bool,
        scratch: &mut [u8],
        on_msg: &mut impl FnMut(&[u8]),
    ) -> Option<Step> {
        let c = self.conns.get_mut(idx)?.as_mut()?;
        Some(c.ready(readable, writable, scratch, &mut self.rng, on_msg))
    }

    /// Sends a close frame on every open connection and waits up to `grace` for the close
    /// handshakes; returns how many completed cleanly.
    pub fn close_all(&mut self, grace: std::time::Duration, scratch: &mut [u8]) -> usize {
        let now = Instant::now();
        for i in self.tokens() {
            let c = self.conns[i].as_mut().unwrap();
            match c.phase {
                Phase::Open => c.start_close(&mut self.rng, now),
                Phase::Closing => {}
                _ => self.remove(i),
            }
        }
        let deadline = now + grace;
        let mut clean = 0;
        let mut events = mio::Events::with_capacity(1024);
        while self.live > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(deadline - now))
                && e.kind() != io::ErrorKind::Interrupted
            {
                break;
            }
            for ev in events.iter() {
                let i = ev.token().0;
                let r = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                if let Some(step) = self.ready(i, r, ev.is_writable(), scratch, &mut |_| {})
                    && let Some(end) = step.end
                {
                    if end == End::Clean {
                        clean += 1;
                    }
                    self.remove(i);
                }
            }
        }
        for i in self.tokens() {
            self.remove(i);
        }
        clean
    }
}
