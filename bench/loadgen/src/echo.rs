//! `echo --listen ADDR`: a WebSocket echo backend on one mio loop. Frames are echoed as they
//! arrive (header rewritten unmasked, payload unmasked in passing), so it never collects a
//! message. It is a fast flood backend, not a conformance reference: it checks only masking,
//! opcodes and control frame shape. With a certificate it serves TLS (wss://) instead.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};

use crate::frame::{self, Decoder, OP_CLOSE, OP_PING, OP_PONG, Piece};
use crate::tls::Stream;

const LISTENER: Token = Token(usize::MAX);
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Above this many unsent bytes a connection stops reading until its peer catches up.
const OUT_HIGH: usize = 1 << 20;

struct Conn {
    stream: Stream,
    upgraded: bool,
    carry: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    dec: Decoder,
    /// A close was echoed: drop the socket once it is written.
    closing: bool,
}

enum Next {
    Keep,
    Drop,
}

pub fn run(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let kind = if tls.is_some() { "echo tls" } else { "echo" };
    eprintln!("listening on {} ({kind})", listener.local_addr()?);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 256 * 1024];
    // Set when accept failed for lack of descriptors: retry on a timer, as no new edge comes.
    let mut accept_stalled = false;
    while !crate::sys::stop_requested() {
        let timeout = accept_stalled.then_some(Duration::from_millis(50));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut accept = accept_stalled;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept = true;
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i).and_then(|c| c.as_mut()) else {
                continue;
            };
            if let Next::Drop = c.ready(ev.is_writable(), &mut scratch) {
                let mut c = conns[i].take().unwrap();
                let _ = poll.registry().deregister(&mut c.stream.tcp);
                free.push(i);
            }
        }
        if accept {
            accept_stalled = false;
            loop {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let i = free.pop().unwrap_or_else(|| {
                            conns.push(None);
                            conns.len() - 1
                        });
                        if poll
                            .registry()
                            .register(
                                &mut stream,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .is_err()
                        {
                            free.push(i);
                            continue;
                        }
                        let stream = match &tls {
                            Some(cfg) => Stream::server(stream, cfg),
                            None => Stream::plain(stream),
                        };
                        conns[i] = Some(Conn {
                            stream,
                            upgraded: false,
                            carry: Vec::new(),
                            out: Vec::new(),
                            out_pos: 0,
                            dec: Decoder::new(true),
                            closing: false,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("echo: accept: {e}");
                        accept_stalled = true;
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

impl Conn {
    fn flush(&mut self) -> io::Result<()> {
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

    /// Bytes not yet written (plus one while TLS records wait for the socket).
    fn backlog(&self) -> usize {
        self.out.len() - self.out_pos + usize::from(self.stream.tls_pending())
    }

    /// Reads (unless paused by a full output), echoes, writes. Edge-triggered: every path
    /// either reads until WouldBlock or leaves a backlog whose drain brings a writable edge.
    fn ready(&mut self, writable: bool, scratch: &mut [u8]) -> Next {
        if writable && self.flush().is_err() {
            return Next::Drop;
        }
        while self.backlog() < OUT_HIGH && !self.closing {
            match self.stream.read(scratch) {
                Ok(0) => return Next::Drop,
                Ok(n) => {
                    if self.input(&mut scratch[..n]).is_err() {
                        return Next::Drop;
                    }
                    if self.flush().is_err() {
                        return Next::Drop;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Drop,
            }
        }
        if self.closing && self.backlog() == 0 {
            // The server ends the TCP stream first after a close, as RFC 6455 asks.
            self.stream.close_notify();
            return Next::Drop;
        }
        Next::Keep
    }

    fn input(&mut self, data: &mut [u8]) -> Result<(), ()> {
        if !self.upgraded {
            self.carry.extend_from_slice(data);
            let Some(end) = self.carry.windows(4).position(|w| w == b"\r\n\r\n") else {
                return if self.carry.len() > 16 * 1024 {
                    Err(())
                } else {
                    Ok(())
                };
            };
            let head = String::from_utf8_lossy(&self.carry[..end]).into_owned();
            let key = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            });
            let Some(key) = key else {
                self.out
                    .extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                self.closing = true;
                return Ok(());
            };
            let accept = base64::engine::general_purpose::STANDARD
                .encode(Sha1::digest(format!("{key}{GUID}").as_bytes()));
            self.out.extend_from_slice(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .as_bytes(),
            );
            self.upgraded = true;
            let mut rest = self.carry.split_off(end + 4);
            self.carry.clear();
            return self.frames(&mut rest);
        }
        if self.carry.is_empty() {
            self.frames(data)
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            self.frames(&mut buf)
        }
    }

    fn frames(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        let mut pos = 0;
        while let Some(piece) = self.dec.next(buf, &mut pos).map_err(|_| ())? {
            match piece {
                Piece::Start { opcode, fin, len } => {
                    frame::header(&mut self.out, fin, opcode, len, None)
                }
                Piece::Data(d) => self.out.extend_from_slice(d),
                Piece::End { .. } => {}
                Piece::Control { opcode, payload } => match opcode {
                    OP_PING => frame::frame(&mut self.out, OP_PONG, payload, None),
                    OP_CLOSE => {
                        let code = payload.get(..2).unwrap_or(&[]);
                        frame::frame(&mut self.out, OP_CLOSE, code, None);
                        self.closing = true;
                        return Ok(());
                    }
                    _ => {}
                },
            }
        }
        if pos < buf.len() {
            self.carry.extend_from_slice(&buf[pos..]);
        }
        Ok(())
    }
}
