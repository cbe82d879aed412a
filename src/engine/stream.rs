//! One side of a connection: a non-blocking TCP socket, with TLS over it when the listener or
//! the backend's URL asks for it. Reads and writes look the same either way, so the head
//! parser, the relay and the close logic never know which they have.
//!
//! TLS is rustls's sans-I/O connection: records read from the socket are fed to it, plaintext
//! comes out; plaintext written goes in, records come out for the socket. Two rules keep it
//! bounded and edge-trigger safe:
//! - a read only reports `WouldBlock` when rustls holds no plaintext and the socket is drained,
//!   so a caller that stops on `WouldBlock` never strands decrypted bytes;
//! - a write takes new plaintext only when rustls's queue of records is empty, so each
//!   direction holds at most one write's worth of records, and the caller pauses on
//!   `WouldBlock` exactly as it does for a full socket. Records left queued are flushed on the
//!   next writable event ([`Stream::flush_tls`]), whether or not the caller has more to write.

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

pub struct Stream {
    tcp: TcpStream,
    /// Boxed: most connections are plain, and a TLS connection's state is large.
    tls: Option<Box<Tls>>,
}

struct Tls {
    conn: rustls::Connection,
    /// A close_notify is queued; the TCP write side is shut once it is flushed.
    closing: bool,
    /// The peer's end of data (close_notify or TCP end) has been seen.
    eof: bool,
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None }
    }

    /// The server side of a TLS listener; the handshake runs as the connection is read.
    pub fn server(tcp: TcpStream, config: &Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(Stream::with_tls(tcp, conn.into()))
    }

    /// The client side towards a TLS backend, checking its certificate against `host`.
    pub fn client(
        tcp: TcpStream,
        config: &Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<Stream> {
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?
            .to_owned();
        let conn = rustls::ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        Ok(Stream::with_tls(tcp, conn.into()))
    }

    fn with_tls(tcp: TcpStream, conn: rustls::Connection) -> Stream {
        Stream {
            tcp,
            tls: Some(Box::new(Tls {
                conn,
                closing: false,
                eof: false,
            })),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A TLS handshake is still in progress.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.conn.is_handshaking())
    }

    /// Writes the records rustls has queued (handshake messages, alerts, encrypted data).
    /// `Ok(true)` when none are left; `Ok(false)` when the socket is full (a writable event
    /// will come). Once a queued close_notify is out, the TCP write side is shut.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        match self.tls.as_mut() {
            None => Ok(true),
            Some(tls) => flush(tls, &mut self.tcp),
        }
    }

    /// Ends our direction: TLS sends close_notify first; the TCP write side follows once every
    /// queued record is out.
    pub fn shutdown_write(&mut self) {
        match self.tls.as_mut() {
            None => {
                let _ = self.tcp.shutdown(Shutdown::Write);
            }
            Some(tls) => {
                tls.conn.send_close_notify();
                tls.closing = true;
                let _ = self.flush_tls();
            }
        }
    }

    /// The error of a connect in progress, as `TcpStream::take_error`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.tcp.take_error()
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp.peer_addr()
    }
}

fn flush(tls: &mut Tls, tcp: &mut TcpStream) -> io::Result<bool> {
    while tls.conn.wants_write() {
        match tls.conn.write_tls(tcp) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if tls.closing {
        tls.closing = false;
        let _ = tcp.shutdown(Shutdown::Write);
    }
    Ok(true)
}

fn read_tls(tls: &mut Tls, tcp: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match tls.conn.reader().read(buf) {
            Ok(n) => return Ok(n),
            // The TCP connection ended without close_notify. A WebSocket ends with its own close
            // frame, so this is an ordinary end of input here.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if tls.eof {
            return Ok(0);
        }
        match tls.conn.read_tls(tcp) {
            Ok(0) => tls.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = tls.conn.process_new_packets() {
            // rustls has queued an alert saying why; send it if the socket takes it.
            let _ = flush(tls, tcp);
            return Err(io::Error::new(ErrorKind::InvalidData, TlsError(e)));
        }
        // Handshake replies and key updates go out at once.
        flush(tls, tcp)?;
    }
}

fn write_tls(tls: &mut Tls, tcp: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    if !flush(tls, tcp)? {
        return Err(ErrorKind::WouldBlock.into());
    }
    let n = tls.conn.writer().write(buf)?;
    if n == 0 && !buf.is_empty() {
        // Only before the handshake completes: rustls holds what it may, and the rest waits
        // until the handshake (driven by reads) lets it go.
        return Err(ErrorKind::WouldBlock.into());
    }
    // Records that do not fit the socket now go on the next writable event.
    flush(tls, tcp)?;
    Ok(n)
}

/// A rustls error carried inside an `io::Error`, so the log line names the TLS reason.
#[derive(Debug)]
pub struct TlsError(pub rustls::Error);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsError {}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            None => self.tcp.read(buf),
            Some(tls) => read_tls(tls, &mut self.tcp, buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            None => self.tcp.write(buf),
            Some(tls) => write_tls(tls, &mut self.tcp, buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().map(|_| ())
    }
}

impl mio::event::Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}
