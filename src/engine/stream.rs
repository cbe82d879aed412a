//! One side of a connection: a non-blocking TCP socket, with TLS over it when the listener or
//! the backend's URL asks for it. Reads and writes look the same either way, so the head
//! parser, the relay and the close logic never know which they have.
//!
//! TLS uses rustls's unbuffered API: rustls keeps only the session (keys and handshake
//! state), and the record bytes pass through buffers of ours that exist only while bytes are in
//! flight (see [`spare`]). An idle TLS connection therefore holds no buffer at all. Two rules
//! keep it bounded and edge-trigger safe:
//! - a read reports `WouldBlock` only when no decrypted bytes are waiting and the socket is
//!   drained, so a caller that stops on `WouldBlock` never strands data;
//! - a write encrypts new bytes only when the previous records are all on the socket, so each
//!   direction holds at most one record's worth, and the caller pauses on `WouldBlock` exactly
//!   as for a full socket. Records left over are flushed on the next writable event
//!   ([`Stream::flush_tls`]), whether or not the caller has more to write.

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

pub struct Stream {
    tcp: TcpStream,
    /// Boxed: most connections are plain, and a TLS session is over a kilobyte.
    tls: Option<Box<Tls>>,
}

enum Session {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// Bytes in one of our TLS buffers: `buf[head..end]`. The buffer is empty (no allocation)
/// whenever nothing is in flight.
#[derive(Default)]
struct Bytes {
    buf: Vec<u8>,
    head: usize,
    end: usize,
}

impl Bytes {
    fn is_empty(&self) -> bool {
        self.head == self.end
    }
    fn pending(&self) -> &[u8] {
        &self.buf[self.head..self.end]
    }
    /// Free room after `end`, with at least `want` bytes (a buffer from the spares, grown if
    /// a record needs more).
    fn room(&mut self, want: usize) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = spare::take();
        }
        if self.head > 0 && self.buf.len() - self.end < want {
            self.buf.copy_within(self.head..self.end, 0);
            self.end -= self.head;
            self.head = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
        &mut self.buf[self.end..]
    }
    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.end {
            self.release();
        }
    }
    fn release(&mut self) {
        spare::give(std::mem::take(&mut self.buf));
        self.head = 0;
        self.end = 0;
    }
}

struct Tls {
    session: Session,
    /// Records read from the socket, not yet taken by rustls.
    input: Bytes,
    /// Records for the socket.
    output: Bytes,
    /// Decrypted bytes the caller has not read yet.
    plain: Bytes,
    /// Bytes written before the handshake finished; encrypted as soon as it has.
    early: Bytes,
    /// The socket's read side has ended.
    eof: bool,
    /// Our side should end: close_notify once the handshake allows, then the TCP write side.
    closing: bool,
    /// close_notify is queued; the TCP write side is shut once it is on the socket.
    close_queued: bool,
}

/// What running the TLS state machine led to.
enum Step {
    /// Decrypted bytes were put in the caller's buffer (and any rest in `plain`).
    Plain(usize),
    /// Nothing to do until more records arrive.
    NeedInput,
    /// Records are waiting for room on the socket.
    Blocked,
    /// The peer sent close_notify, or both sides have.
    Closed,
}

/// Most plaintext a single write encrypts: one TLS record.
const RECORD: usize = 16 * 1024;
/// Plaintext held while the handshake runs (a backend's upgrade request is well below it).
const EARLY_MAX: usize = 64 * 1024;

/// Caps the kernel's send and receive buffers of a proxied socket at `bytes` each (0 leaves
/// them to autotuning). When the gateway pauses a direction for a slow destination, the
/// socket it stops reading keeps taking bytes up to its receive buffer, which the kernel may
/// have grown to `net.ipv4.tcp_rmem`'s maximum (32 MiB on some hosts) while traffic flowed;
/// the cap bounds what queues behind a pause. Best effort: a refusal changes nothing else.
pub fn cap_kernel_buffers(tcp: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    if bytes == 0 {
        return;
    }
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid descriptor, and a c_int value of the size given.
        unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None }
    }

    /// The server side of a TLS listener; the handshake runs as the connection is read.
    pub fn server(tcp: TcpStream, config: &Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let conn = UnbufferedServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(Stream::with_tls(tcp, Session::Server(conn)))
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
        let conn =
            UnbufferedClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        Ok(Stream::with_tls(tcp, Session::Client(conn)))
    }

    fn with_tls(tcp: TcpStream, session: Session) -> Stream {
        Stream {
            tcp,
            tls: Some(Box::new(Tls {
                session,
                input: Bytes::default(),
                output: Bytes::default(),
                plain: Bytes::default(),
                early: Bytes::default(),
                eof: false,
                closing: false,
                close_queued: false,
            })),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A TLS handshake is still in progress.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.session.handshaking())
    }

    /// Writes the records waiting for the socket (handshake messages, alerts, encrypted data).
    /// `Ok(true)` when none are left; `Ok(false)` when the socket is full (a writable event
    /// will come). Once a queued close_notify is out, the TCP write side is shut.
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        match self.tls.as_mut() {
            None => Ok(true),
            Some(tls) => tls.flush(&mut self.tcp),
        }
    }

    /// Ends our direction: TLS sends close_notify first; the TCP write side follows once every
    /// record is out.
    pub fn shutdown_write(&mut self) {
        match self.tls.as_mut() {
            None => {
                let _ = self.tcp.shutdown(Shutdown::Write);
            }
            Some(tls) => {
                tls.closing = true;
                if tls.session.handshaking() {
                    // Nothing was exchanged that a close_notify would protect.
                    let _ = self.tcp.shutdown(Shutdown::Write);
                } else {
                    let _ = tls.advance(&mut self.tcp, &mut []);
                }
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

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// Bytes of heap this stream holds beyond its fixed state (TLS buffers in flight).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.tls.as_ref().map_or(0, |t| {
            t.input.buf.len() + t.output.buf.len() + t.plain.buf.len() + t.early.buf.len()
        })
    }
}

impl Session {
    fn handshaking(&self) -> bool {
        match self {
            Session::Server(c) => c.is_handshaking(),
            Session::Client(c) => c.is_handshaking(),
        }
    }
}

impl Tls {
    fn flush(&mut self, tcp: &mut TcpStream) -> io::Result<bool> {
        while !self.output.is_empty() {
            match tcp.write(self.output.pending()) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.output.consume(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.close_queued {
            self.close_queued = false;
            let _ = tcp.shutdown(Shutdown::Write);
        }
        Ok(true)
    }

    /// Runs the session on the records read so far until it needs more input, the socket is
    /// full, or decrypted bytes are ready (copied into `out`, the rest kept in `plain`).
    fn advance(&mut self, tcp: &mut TcpStream, out: &mut [u8]) -> io::Result<Step> {
        loop {
            let Tls {
                session,
                input,
                output,
                plain,
                early,
                closing,
                close_queued,
                ..
            } = self;
            let records = &mut input.buf[input.head..input.end];
            let mut flow = Flow {
                output,
                plain,
                early,
                out: &mut *out,
                closing,
                close_queued,
                delivered: 0,
            };
            let (discard, next) = match session {
                Session::Server(c) => flow.handle(c.process_tls_records(records)),
                Session::Client(c) => flow.handle(c.process_tls_records(records)),
            };
            if discard > 0 {
                input.consume(discard);
            } else if input.is_empty() && !input.buf.is_empty() {
                input.release();
            }
            match next {
                Err(e) => {
                    // rustls queues an alert saying why; send it if the socket takes it.
                    let _ = self.send_alert(tcp);
                    return Err(io::Error::new(ErrorKind::InvalidData, TlsError(e)));
                }
                Ok(Next::Again) => continue,
                Ok(Next::Transmit) => {
                    if !self.flush(tcp)? {
                        return Ok(Step::Blocked);
                    }
                    // Flushed: tell rustls, and go on.
                    self.transmitted();
                }
                Ok(Next::Done(step)) => {
                    if !self.output.is_empty() && !self.flush(tcp)? {
                        return Ok(Step::Blocked);
                    }
                    return Ok(step);
                }
            }
        }
    }

    /// The records of a `TransmitTlsData` state are on the socket: tell the session. A
    /// handshake record it queued meanwhile is encoded, never dropped.
    fn transmitted(&mut self) {
        let records: &mut [u8] = &mut [];
        let output = &mut self.output;
        match &mut self.session {
            Session::Server(c) => after_transmit(c.process_tls_records(records).state, output),
            Session::Client(c) => after_transmit(c.process_tls_records(records).state, output),
        }
    }

    fn send_alert(&mut self, tcp: &mut TcpStream) -> io::Result<bool> {
        let records: &mut [u8] = &mut [];
        let output = &mut self.output;
        let encoded = match &mut self.session {
            Session::Server(c) => match c.process_tls_records(records).state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, output),
                _ => false,
            },
            Session::Client(c) => match c.process_tls_records(records).state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, output),
                _ => false,
            },
        };
        if encoded { self.flush(tcp) } else { Ok(true) }
    }

    fn read(&mut self, tcp: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.plain.is_empty() {
                let p = self.plain.pending();
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                self.plain.consume(n);
                return Ok(n);
            }
            match self.advance(tcp, buf)? {
                // An empty record, or everything went to `plain` (checked above).
                Step::Plain(0) => continue,
                Step::Plain(n) => return Ok(n),
                Step::Closed => return Ok(0),
                Step::Blocked => return Err(ErrorKind::WouldBlock.into()),
                Step::NeedInput => {}
            }
            if self.eof {
                return Ok(0);
            }
            // A record is at most ~18 KiB; a handshake message split over records may need
            // more, and `room` grows the buffer for it.
            let room = self.input.room(4096);
            match tcp.read(room) {
                Ok(0) => self.eof = true,
                Ok(n) => self.input.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.input.is_empty() {
                        self.input.release();
                    }
                    return Err(e);
                }
            }
        }
    }

    fn write(&mut self, tcp: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
        if !self.flush(tcp)? {
            return Err(ErrorKind::WouldBlock.into());
        }
        if self.session.handshaking() || !self.early.is_empty() {
            // Held until the handshake is done; reads drive it, and the first chance to write
            // application data sends these bytes.
            let take = buf
                .len()
                .min(EARLY_MAX.saturating_sub(self.early.pending().len()));
            if take == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.early.room(take)[..take].copy_from_slice(&buf[..take]);
            self.early.end += take;
            // Starts the handshake of a client connection (its ClientHello).
            self.advance(tcp, &mut [])?;
            return Ok(take);
        }
        let take = buf.len().min(RECORD);
        // The session may have something to do first (a handshake record to send, a key
        // update); it runs, then the write is tried again.
        for _ in 0..3 {
            let records: &mut [u8] = &mut [];
            let output = &mut self.output;
            let wrote = match &mut self.session {
                Session::Server(c) => encrypt(c.process_tls_records(records), &buf[..take], output),
                Session::Client(c) => encrypt(c.process_tls_records(records), &buf[..take], output),
            };
            if let Some(r) = wrote {
                let n = r?;
                self.flush(tcp)?;
                return Ok(n);
            }
            if let Step::Blocked = self.advance(tcp, &mut [])? {
                break;
            }
        }
        Err(ErrorKind::WouldBlock.into())
    }
}

/// What one `process_tls_records` state asks of the caller.
enum Next {
    Again,
    Transmit,
    Done(Step),
}

/// The parts of [`Tls`] that a state of the session works on, borrowed apart from the
/// session itself.
struct Flow<'a> {
    output: &'a mut Bytes,
    plain: &'a mut Bytes,
    early: &'a mut Bytes,
    out: &'a mut [u8],
    closing: &'a mut bool,
    close_queued: &'a mut bool,
    delivered: usize,
}

impl Flow<'_> {
    fn handle<Data>(
        &mut self,
        status: UnbufferedStatus<'_, '_, Data>,
    ) -> (usize, Result<Next, rustls::Error>) {
        let discard = status.discard;
        let state = match status.state {
            Ok(s) => s,
            Err(e) => return (discard, Err(e)),
        };
        let next = match state {
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(record) = r.next_record() {
                    match record {
                        Ok(rec) => self.deliver(rec.payload),
                        Err(e) => return (discard, Err(e)),
                    }
                }
                Next::Done(Step::Plain(self.delivered))
            }
            ConnectionState::EncodeTlsData(mut e) => {
                encode(&mut e, self.output);
                Next::Again
            }
            ConnectionState::TransmitTlsData(mut t) => {
                // Application data held during the handshake rides along with its last flight.
                if let Some(mut w) = t.may_encrypt_app_data() {
                    self.send_early(&mut w);
                }
                Next::Transmit
            }
            ConnectionState::BlockedHandshake => Next::Done(Step::NeedInput),
            ConnectionState::WriteTraffic(mut w) => {
                let before = self.output.end;
                self.send_early(&mut w);
                if *self.closing && !*self.close_queued {
                    fill(self.output, |out| w.queue_close_notify(out));
                    *self.close_queued = true;
                }
                if self.output.end != before {
                    // Records to flush first; the next round finds nothing more to do.
                    Next::Transmit
                } else {
                    Next::Done(Step::NeedInput)
                }
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => Next::Done(Step::Closed),
            // Early data is never enabled, so a session does not offer it.
            _ => Next::Done(Step::NeedInput),
        };
        (discard, Ok(next))
    }

    fn deliver(&mut self, payload: &[u8]) {
        let direct = payload.len().min(self.out.len() - self.delivered);
        self.out[self.delivered..self.delivered + direct].copy_from_slice(&payload[..direct]);
        self.delivered += direct;
        let rest = &payload[direct..];
        if !rest.is_empty() {
            self.plain.room(rest.len())[..rest.len()].copy_from_slice(rest);
            self.plain.end += rest.len();
        }
    }

    fn send_early<Data>(&mut self, w: &mut rustls::unbuffered::WriteTraffic<'_, Data>) {
        while !self.early.is_empty() {
            let chunk = self.early.pending().len().min(RECORD);
            let data = &self.early.buf[self.early.head..self.early.head + chunk];
            match fill(self.output, |out| w.encrypt(data, out)) {
                Some(_) => self.early.consume(chunk),
                None => break,
            }
        }
    }
}

fn after_transmit<Data>(
    state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    output: &mut Bytes,
) {
    match state {
        Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
        Ok(ConnectionState::EncodeTlsData(mut e)) => {
            encode(&mut e, output);
        }
        _ => {}
    }
}

/// Encodes a handshake record into `output`, growing it as needed. True when encoded.
fn encode<Data>(e: &mut rustls::unbuffered::EncodeTlsData<'_, Data>, output: &mut Bytes) -> bool {
    let mut want = 4096;
    loop {
        match e.encode(output.room(want)) {
            Ok(n) => {
                output.end += n;
                return true;
            }
            Err(EncodeError::InsufficientSize(s)) => want = s.required_size,
            Err(_) => return false,
        }
    }
}

/// Runs an encryption into `output`'s free room, growing it once if rustls asks for more.
fn fill(
    output: &mut Bytes,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Option<usize> {
    let mut want = RECORD + 512;
    for _ in 0..2 {
        match f(output.room(want)) {
            Ok(n) => {
                output.end += n;
                return Some(n);
            }
            Err(EncryptError::InsufficientSize(s)) => want = s.required_size,
            Err(_) => return None,
        }
    }
    None
}

/// Encrypts `data` when the session is ready for application data. `None`: it is not (the
/// session has something else to do first).
fn encrypt<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    data: &[u8],
    output: &mut Bytes,
) -> Option<io::Result<usize>> {
    match status.state {
        Ok(ConnectionState::WriteTraffic(mut w)) => Some(
            fill(output, |out| w.encrypt(data, out))
                .map(|_| data.len())
                .ok_or_else(|| io::Error::other("TLS: cannot encrypt more on this session")),
        ),
        Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => {
            Some(Err(ErrorKind::BrokenPipe.into()))
        }
        Err(e) => Some(Err(io::Error::new(ErrorKind::InvalidData, TlsError(e)))),
        Ok(_) => None,
    }
}

/// Spare record buffers, shared by every TLS stream of the loop (one thread), so that bytes in
/// flight borrow a buffer and give it back instead of allocating per record.
mod spare {
    use std::cell::RefCell;

    /// Room for one TLS record on the wire (16 KiB of data, 2 KiB of expansion, the header).
    pub const SIZE: usize = 18 * 1024 + 5;
    const KEEP: usize = 64;

    thread_local! {
        static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take() -> Vec<u8> {
        SPARES
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| vec![0; SIZE])
    }

    pub fn give(buf: Vec<u8>) {
        // Buffers grown for a large handshake message are not kept.
        if buf.len() != SIZE {
            return;
        }
        SPARES.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < KEEP {
                s.push(buf);
            }
        });
    }
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
            Some(tls) => tls.read(&mut self.tcp, buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            None => self.tcp.write(buf),
            Some(tls) => tls.write(&mut self.tcp, buf),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TlsCert;
    use mio::{Events, Poll};
    use std::time::Duration;

    /// Waits for `f` to stop answering `WouldBlock`, polling the stream's socket.
    fn until_ready<T>(
        poll: &mut Poll,
        s: &mut Stream,
        mut f: impl FnMut(&mut Stream) -> io::Result<T>,
    ) -> T {
        let mut events = Events::with_capacity(4);
        for _ in 0..1000 {
            match f(s) {
                Ok(v) => return v,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    poll.poll(&mut events, Some(Duration::from_secs(5)))
                        .unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no progress");
    }

    /// A TLS connection that has exchanged data and gone quiet holds no buffer: only the
    /// session stays, which is what makes idle `wss` connections cheap.
    #[test]
    fn idle_tls_connection_holds_no_buffer() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("wsgate-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_file, key_file) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        let config = crate::tls::server_config(&[TlsCert {
            cert_chain: cert_file,
            private_key: key_file,
            server_names: Vec::new(),
        }])
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let der = cert.cert.der().clone();
        // An independent peer: rustls's own blocking client on a std socket.
        let peer = std::thread::spawn(move || {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der).unwrap();
            let cc = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(Arc::new(cc), name).unwrap();
            let sock = std::net::TcpStream::connect(addr).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(b"ping").unwrap();
            let mut answer = [0u8; 4];
            tls.read_exact(&mut answer).unwrap();
            answer
        });
        let (sock, _) = listener.accept().unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut s = Stream::server(TcpStream::from_std(sock), &config).unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)
            .unwrap();

        let mut got = Vec::new();
        while got.len() < 4 {
            let mut buf = [0u8; 64];
            let n = until_ready(&mut poll, &mut s, |s| s.read(&mut buf));
            assert!(n > 0, "peer ended early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"ping");
        assert!(!s.handshaking());
        until_ready(&mut poll, &mut s, |s| s.write(b"pong"));
        assert!(until_ready(&mut poll, &mut s, |s| s.flush_tls()));
        assert_eq!(&peer.join().unwrap(), b"pong");
        assert_eq!(s.buffered(), 0, "an idle TLS stream keeps a buffer");
    }
}
