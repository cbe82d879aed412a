//! A WebSocket backend on tungstenite (not our code), one thread per connection, that records
//! what the gateway sent it: the raw request head of every accepted connection, the close frames
//! it received, and how many connections are open.
//!
//! `EchoBackend::start_tls` serves the same modes over TLS (rustls, not our code): every
//! connection's handshake is recorded too (SNI name, ALPN, client certificates, or the error).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error, Message, WebSocket};

use super::sync::Watch;

/// How the backend treats connections accepted from now on (see `EchoBackend::set_mode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Upgrade (selecting the first offered subprotocol, if any), echo text and binary
    /// messages, answer pings and closes.
    Echo,
    /// Answer the upgrade with this HTTP status and a short text body, then close.
    Reject(u16),
    /// Accept TCP, read whatever comes (the head is still recorded), never answer.
    Silent,
    /// Upgrade, then send binary messages of `size` bytes as fast as possible: `count` of them,
    /// or with `count: None` until the socket would block. Then echo like `Echo`. The first 8
    /// bytes of each message (when `size >= 8`) are its sequence number, little endian.
    Flood { size: usize, count: Option<u64> },
    /// Upgrade, echo the first data message, then close with this code and reason
    /// `backend closes`, and wait for the close reply.
    CloseAfterFirst(u16),
    /// Upgrade, write this many text messages (`message 0`, `message 1`, ...) and the end of
    /// the stream (FIN) right after them, without a close frame; then read until the peer
    /// closes.
    SendThenFin(u32),
}

pub const REJECT_BODY: &str = "rejected by the test backend";
pub const CLOSE_REASON: &str = "backend closes";

/// One accepted connection's request, as read from the socket.
#[derive(Clone, Debug, Default)]
pub struct SeenRequest {
    /// Sequence number of the accepted connection, from 0.
    pub conn: usize,
    /// The request head exactly as received, up to and including the blank line.
    pub raw_head: String,
    pub method: String,
    /// Path and query as sent in the request line.
    pub path: String,
    /// Headers in order, names in the case they were sent.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// First value of a header, name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn parse(conn: usize, raw: &[u8]) -> SeenRequest {
        let mut seen = SeenRequest {
            conn,
            raw_head: String::from_utf8_lossy(raw).into_owned(),
            ..Default::default()
        };
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(raw).is_ok() {
            seen.method = req.method.unwrap_or_default().to_string();
            seen.path = req.path.unwrap_or_default().to_string();
            seen.headers = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
        }
        seen
    }
}

/// Everything the backend observed. Read with `EchoBackend::state` or wait with `wait_until`.
#[derive(Default)]
pub struct State {
    /// TCP connections accepted.
    pub accepted: usize,
    /// Connections currently open (accepted and not yet closed by either side).
    pub open: usize,
    /// Request heads, one per accepted connection that sent one, in arrival order.
    pub requests: Vec<SeenRequest>,
    /// Upgrades that tungstenite refused (not counting `Mode::Reject`): (conn, error).
    pub handshake_errors: Vec<(usize, String)>,
    /// Connections upgraded to WebSocket.
    pub upgraded: usize,
    /// Text and binary messages received.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Close frames received from the gateway: (conn, code and reason; `None` for an empty close).
    pub closes: Vec<(usize, Option<(u16, String)>)>,
    /// Connections that ended without a close handshake or with an error: (conn, error).
    pub errors: Vec<(usize, String)>,
    /// Flood messages written or queued for writing. With `count: None` this is the final
    /// number once `flood_blocked` is set (the message that blocked is included).
    pub flood_sent: u64,
    /// Flood connections whose socket would block.
    pub flood_blocked: usize,
    /// Bytes read on `Mode::Silent` connections.
    pub silent_bytes: u64,
    /// TLS handshakes of a `start_tls` backend, one per accepted connection that got that far.
    pub tls: Vec<TlsSeen>,
    stopping: bool,
    /// The sockets, shared with their threads (no dup: a test process has 20,000 descriptors).
    streams: Vec<(usize, Arc<TcpStream>)>,
}

/// One TLS handshake as the backend saw it.
#[derive(Clone, Debug, Default)]
pub struct TlsSeen {
    pub conn: usize,
    /// The SNI name the client sent (`ServerConnection::server_name`).
    pub server_name: Option<String>,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// `TLSv1_3`, `TLSv1_2`, ... (Debug of the negotiated version).
    pub version: Option<String>,
    /// Certificates the client presented (0 without client authentication).
    pub client_certs: usize,
    /// Why the handshake failed; `None` when it completed.
    pub error: Option<String>,
}

/// The shared socket as a stream rustls can own, so `sever` and `stop` can still shut it down.
struct SharedTcp(Arc<TcpStream>);

impl Read for SharedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// A connection's byte stream: the socket itself, or TLS over it.
enum Inner {
    Plain(Arc<TcpStream>),
    Tls(Box<StreamOwned<ServerConnection, SharedTcp>>),
}

impl Inner {
    fn tcp(&self) -> &TcpStream {
        match self {
            Inner::Plain(s) => s,
            Inner::Tls(t) => &t.sock.0,
        }
    }
}

/// Wraps the socket to record the request head as it is read, before tungstenite parses it, so
/// heads that tungstenite refuses are recorded too.
struct HeadTap {
    inner: Inner,
    head: Vec<u8>,
    done: bool,
    conn: usize,
    state: Arc<Watch<State>>,
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

impl Read for HeadTap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Inner::Plain(s) => (&**s).read(buf)?,
            Inner::Tls(t) => t.read(buf)?,
        };
        if !self.done {
            self.head.extend_from_slice(&buf[..n]);
            if let Some(end) = head_end(&self.head) {
                self.head.truncate(end);
                self.done = true;
                let seen = SeenRequest::parse(self.conn, &self.head);
                self.state.update(|s| s.requests.push(seen));
            }
        }
        Ok(n)
    }
}

impl Write for HeadTap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(s) => (&**s).write(buf),
            Inner::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(s) => (&**s).flush(),
            Inner::Tls(t) => t.flush(),
        }
    }
}

pub struct EchoBackend {
    addr: SocketAddr,
    /// Set for a TLS backend (`start_tls`).
    tls: Option<Arc<ServerConfig>>,
    mode: Arc<Mutex<Mode>>,
    state: Arc<Watch<State>>,
    acceptor: Option<JoinHandle<()>>,
    /// `SO_SNDBUF` for connections accepted from now on (0: the kernel's autotuning).
    send_buffer: Arc<AtomicUsize>,
}

fn ws_config() -> WebSocketConfig {
    // No size limits (the gateway enforces those) and small buffers, so thousands of idle
    // backend connections stay cheap.
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

impl EchoBackend {
    /// An echo backend on 127.0.0.1 with an ephemeral port.
    pub fn start() -> EchoBackend {
        EchoBackend::start_with(Mode::Echo)
    }

    pub fn start_with(mode: Mode) -> EchoBackend {
        EchoBackend::spawn(mode, None)
    }

    /// The same backend over TLS with `config` (its certificate, and client authentication if
    /// the config asks for it). `target_url` is then `wss://localhost:PORT/`.
    pub fn start_tls(mode: Mode, config: Arc<ServerConfig>) -> EchoBackend {
        EchoBackend::spawn(mode, Some(config))
    }

    fn spawn(mode: Mode, tls: Option<Arc<ServerConfig>>) -> EchoBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo backend");
        let addr = listener.local_addr().expect("backend local addr");
        let mode = Arc::new(Mutex::new(mode));
        let state = Arc::new(Watch::new(State::default()));
        let send_buffer = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let mode = mode.clone();
            let state = state.clone();
            let tls = tls.clone();
            let send_buffer = send_buffer.clone();
            thread::Builder::new()
                .name("backend-accept".into())
                .spawn(move || accept_loop(listener, mode, state, tls, send_buffer))
                .expect("spawn backend acceptor")
        };
        EchoBackend {
            addr,
            tls,
            mode,
            state,
            acceptor: Some(acceptor),
            send_buffer,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/`, the form of a `target-url`; for a TLS backend
    /// `wss://localhost:PORT/` (a host name, so that SNI and the name check mean something).
    pub fn target_url(&self) -> String {
        self.url("/")
    }

    /// `ws://127.0.0.1:PORT<path>`, or `wss://localhost:PORT<path>` for a TLS backend.
    pub fn url(&self, path: &str) -> String {
        match self.tls {
            None => format!("ws://{}{}", self.addr, path),
            Some(_) => format!("wss://localhost:{}{}", self.addr.port(), path),
        }
    }

    /// The TLS handshakes seen so far (empty for a plain backend).
    pub fn tls_seen(&self) -> Vec<TlsSeen> {
        self.state(|s| s.tls.clone())
    }

    /// Changes the mode for connections accepted from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    pub fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.state.read(f)
    }

    /// Waits until `pred` holds for the backend state; false after `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl FnMut(&State) -> bool) -> bool {
        self.state.wait_until(timeout, pred)
    }

    pub fn accepted(&self) -> usize {
        self.state(|s| s.accepted)
    }

    pub fn open(&self) -> usize {
        self.state(|s| s.open)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state(|s| s.requests.clone())
    }

    pub fn last_request(&self) -> Option<SeenRequest> {
        self.state(|s| s.requests.last().cloned())
    }

    pub fn closes(&self) -> Vec<(usize, Option<(u16, String)>)> {
        self.state(|s| s.closes.clone())
    }

    pub fn messages(&self) -> u64 {
        self.state(|s| s.messages)
    }

    /// Waits until exactly `n` connections are open.
    pub fn wait_open(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.open == n)
    }

    /// Waits until at least `n` request heads were received.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.requests.len() >= n)
    }

    /// Gives connections accepted from now on a fixed kernel send buffer of `bytes` (`SO_SNDBUF`)
    /// instead of the kernel's autotuning, which lets a flooding loopback connection park
    /// megabytes in the kernel: a test with a thousand floods stays light on the machine.
    pub fn set_send_buffer(&self, bytes: usize) {
        self.send_buffer.store(bytes, Ordering::Relaxed);
    }

    /// Cuts every connection open now at the TCP level (no close frame), as a backend process
    /// that crashes would, while the listener keeps accepting new ones. Returns how many.
    pub fn sever(&self) -> usize {
        self.state.update(|s| {
            for (_, st) in &s.streams {
                let _ = st.shutdown(Shutdown::Both);
            }
            s.streams.len()
        })
    }

    /// Closes the listener and every connection, and waits (bounded) for their threads to see it.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.state.update(|s| s.stopping = true);
        // Wake the blocking accept; the loop sees `stopping` and drops the listener.
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        self.state.update(|s| {
            for (_, st) in &s.streams {
                let _ = st.shutdown(Shutdown::Both);
            }
        });
        self.state
            .wait_until(Duration::from_secs(10), |s| s.open == 0);
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    mode: Arc<Mutex<Mode>>,
    state: Arc<Watch<State>>,
    tls: Option<Arc<ServerConfig>>,
    send_buffer: Arc<AtomicUsize>,
) {
    let mut next_id = 0usize;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Out of descriptors or similar: keep serving the connections already open, and
            // back off a little instead of spinning on the failing accept.
            Err(_) if !state.read(|s| s.stopping) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => return,
        };
        if state.read(|s| s.stopping) {
            return;
        }
        let sndbuf = send_buffer.load(Ordering::Relaxed);
        if sndbuf > 0 {
            let _ = super::load::set_send_buffer(&stream, sndbuf);
        }
        let id = next_id;
        next_id += 1;
        let stream = Arc::new(stream);
        let clone = stream.clone();
        state.update(|s| {
            s.accepted += 1;
            s.open += 1;
            s.streams.push((id, clone));
        });
        let m = mode.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let st = state.clone();
        let tls = tls.clone();
        let spawned = thread::Builder::new()
            .name(format!("backend-conn-{id}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                serve(id, stream, m, st.clone(), tls);
                st.update(|s| {
                    s.open -= 1;
                    s.streams.retain(|(i, _)| *i != id);
                });
            });
        if spawned.is_err() {
            state.update(|s| {
                s.open -= 1;
                s.streams.retain(|(i, _)| *i != id);
                s.errors.push((id, "could not spawn a thread".into()));
            });
        }
    }
}

// The callback's error type is tungstenite's `ErrorResponse`; its size is not ours to choose.
#[allow(clippy::result_large_err)]
fn serve(
    id: usize,
    stream: Arc<TcpStream>,
    mode: Mode,
    shared: Arc<Watch<State>>,
    tls: Option<Arc<ServerConfig>>,
) {
    let _ = stream.set_nodelay(true);
    let state: &Watch<State> = &shared;
    let inner = match tls {
        None => Inner::Plain(stream),
        Some(config) => match tls_accept(id, stream, config, state) {
            Some(t) => Inner::Tls(Box::new(t)),
            None => return,
        },
    };
    let tap = HeadTap {
        inner,
        head: Vec::new(),
        done: false,
        conn: id,
        state: shared.clone(),
    };
    if mode == Mode::Silent {
        return silent(tap, state);
    }
    let reject = match mode {
        Mode::Reject(code) => Some(code),
        _ => None,
    };
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        match reject {
            None => {
                // Select the first offered subprotocol, as a typical backend would, so tests can
                // check that the gateway forwards the offer and relays the choice.
                let first = req
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .map(|p| p.trim().to_string());
                if let Some(p) = first.filter(|p| !p.is_empty())
                    && let Ok(v) = p.parse()
                {
                    resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
                }
                Ok(resp)
            }
            Some(code) => {
                let mut r = ErrorResponse::new(Some(REJECT_BODY.to_string()));
                *r.status_mut() = tungstenite::http::StatusCode::from_u16(code)
                    .unwrap_or(tungstenite::http::StatusCode::FORBIDDEN);
                let h = r.headers_mut();
                h.insert("Content-Type", "text/plain".parse().unwrap());
                h.insert("Content-Length", REJECT_BODY.len().into());
                h.insert("Connection", "close".parse().unwrap());
                Err(r)
            }
        }
    };
    let result = tungstenite::accept_hdr_with_config(tap, callback, Some(ws_config()));
    let mut ws = match result {
        Ok(ws) => ws,
        Err(e) => {
            if reject.is_none() {
                let msg = match e {
                    tungstenite::HandshakeError::Failure(err) => err.to_string(),
                    tungstenite::HandshakeError::Interrupted(_) => "interrupted".to_string(),
                };
                state.update(|s| s.handshake_errors.push((id, msg)));
            }
            return;
        }
    };
    state.update(|s| s.upgraded += 1);
    if let Mode::SendThenFin(n) = mode {
        return send_then_fin(&mut ws, n);
    }
    if let Mode::Flood { size, count } = mode
        && let Err(e) = flood(&mut ws, size, count, state)
    {
        state.update(|s| s.errors.push((id, e.to_string())));
        return;
    }
    let close_after_first = match mode {
        Mode::CloseAfterFirst(code) => Some(code),
        _ => None,
    };
    echo(id, &mut ws, close_after_first, state);
}

fn send_then_fin(ws: &mut WebSocket<HeadTap>, n: u32) {
    for i in 0..n {
        if ws.write(Message::text(format!("message {i}"))).is_err() {
            return;
        }
    }
    // One flush, so the messages and the FIN leave back to back.
    let _ = ws.flush();
    let tcp = ws.get_ref().inner.tcp();
    let _ = tcp.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!((&*tcp).read(&mut sink), Ok(n) if n > 0) {}
}

/// The server side of a TLS handshake, recorded in `state.tls` whether it completes or not.
fn tls_accept(
    id: usize,
    stream: Arc<TcpStream>,
    config: Arc<ServerConfig>,
    state: &Watch<State>,
) -> Option<StreamOwned<ServerConnection, SharedTcp>> {
    let mut seen = TlsSeen {
        conn: id,
        ..Default::default()
    };
    let mut sock = SharedTcp(stream);
    let mut conn = match ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => {
            seen.error = Some(e.to_string());
            state.update(|s| s.tls.push(seen));
            return None;
        }
    };
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => {
                seen.error = Some("the peer closed during the handshake".into());
                break;
            }
            Ok(_) => {}
            Err(e) => {
                // Send the alert rustls queued, if the socket still takes it.
                let _ = conn.write_tls(&mut sock);
                seen.error = Some(e.to_string());
                break;
            }
        }
    }
    seen.server_name = conn.server_name().map(str::to_string);
    seen.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    seen.version = conn.protocol_version().map(|v| format!("{v:?}"));
    seen.client_certs = conn.peer_certificates().map_or(0, |c| c.len());
    let ok = seen.error.is_none();
    state.update(|s| s.tls.push(seen));
    ok.then(|| StreamOwned::new(conn, sock))
}

fn silent(mut tap: HeadTap, state: &Watch<State>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tap.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => state.update(|s| s.silent_bytes += n as u64),
        }
    }
}

fn flood(
    ws: &mut WebSocket<HeadTap>,
    size: usize,
    count: Option<u64>,
    state: &Watch<State>,
) -> Result<(), Error> {
    ws.get_ref().inner.tcp().set_nonblocking(true)?;
    let mut seq: u64 = 0;
    let mut blocked = false;
    while count.is_none_or(|c| seq < c) {
        let mut payload = vec![0x5a; size];
        if size >= 8 {
            payload[..8].copy_from_slice(&seq.to_le_bytes());
        }
        let r = ws.send(Message::binary(payload));
        seq += 1;
        match r {
            Ok(()) => state.update(|s| s.flood_sent += 1),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // The message sits in tungstenite's write buffer and goes out with the flush
                // below: count it now, so `flood_sent` is final once `flood_blocked` is seen.
                state.update(|s| {
                    s.flood_sent += 1;
                    if !blocked {
                        s.flood_blocked += 1;
                    }
                });
                blocked = true;
                ws.get_ref().inner.tcp().set_nonblocking(false)?;
                ws.flush()?;
                if count.is_none() {
                    break;
                }
                ws.get_ref().inner.tcp().set_nonblocking(true)?;
            }
            Err(e) => return Err(e),
        }
    }
    ws.get_ref().inner.tcp().set_nonblocking(false)?;
    Ok(())
}

fn echo(
    id: usize,
    ws: &mut WebSocket<HeadTap>,
    close_after_first: Option<u16>,
    state: &Watch<State>,
) {
    let mut closing = false;
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                let len = msg.len() as u64;
                state.update(|s| {
                    s.messages += 1;
                    s.bytes += len;
                });
                if closing {
                    continue;
                }
                if let Err(e) = ws.send(msg) {
                    state.update(|s| s.errors.push((id, e.to_string())));
                    return;
                }
                if let Some(code) = close_after_first {
                    closing = true;
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: CLOSE_REASON.into(),
                    };
                    if let Err(e) = ws.close(Some(frame)) {
                        state.update(|s| s.errors.push((id, e.to_string())));
                        return;
                    }
                }
            }
            Ok(Message::Close(frame)) => {
                let got = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                state.update(|s| s.closes.push((id, got)));
                // tungstenite queued the reply; the next read flushes it and reports the end.
            }
            Ok(_) => {}
            Err(Error::ConnectionClosed) | Err(Error::AlreadyClosed) => return,
            Err(e) => {
                state.update(|s| s.errors.push((id, e.to_string())));
                return;
            }
        }
    }
}
