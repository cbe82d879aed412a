//! Client side helpers: a tungstenite WebSocket client and a raw TCP connection for requests a
//! WebSocket library would never send (malformed upgrades, oversized heads, byte-by-byte writes).
//!
//! Every socket gets read and write timeouts of `DEADLINE` as a guard so a broken gateway fails
//! a test instead of hanging it; tests never rely on those timeouts to order events.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderName;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error, HandshakeError, Message, WebSocket};

use super::DEADLINE;

pub type Ws = WebSocket<TcpStream>;

/// Connects a tungstenite client to `url` (`ws://host:port/path?query`) with extra headers.
/// The error of a refused upgrade is `Error::Http(response)`: see `http_error`.
pub fn ws_connect(url: &str, headers: &[(&str, &str)]) -> Result<(Ws, Response), Error> {
    ws_connect_with(url, headers, client_config())
}

/// The client config `ws_connect` uses: no size limits on what it receives, and a 16 KiB read
/// buffer so thousands of clients in one test stay small.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
        .read_buffer_size(16 * 1024)
}

pub fn ws_connect_with(
    url: &str,
    headers: &[(&str, &str)],
    config: WebSocketConfig,
) -> Result<(Ws, Response), Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        let name: HeaderName = name
            .parse()
            .unwrap_or_else(|e| panic!("bad header name {name:?}: {e}"));
        request.headers_mut().append(
            name,
            value
                .parse()
                .unwrap_or_else(|e| panic!("bad header value {value:?}: {e}")),
        );
    }
    let uri = request.uri();
    let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(80);
    let stream = connect_tcp((host, port))?;
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok(pair) => Ok(pair),
        Err(HandshakeError::Failure(e)) => Err(e),
        // A blocking socket only stops mid-handshake when the read timeout fired.
        Err(HandshakeError::Interrupted(_)) => Err(Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no handshake answer within {DEADLINE:?}"),
        ))),
    }
}

/// TCP connection with nodelay and the deadline guard on reads and writes.
pub fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    Ok(stream)
}

/// Status and body of a refused upgrade, or `None` for any other error.
pub fn http_error(err: &Error) -> Option<(u16, String)> {
    match err {
        Error::Http(resp) => Some((
            resp.status().as_u16(),
            resp.body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        _ => None,
    }
}

/// Expects a refused upgrade and returns its status and body; panics otherwise.
pub fn expect_refused<S>(result: Result<(WebSocket<S>, Response), Error>) -> (u16, String) {
    match result {
        Ok((_, resp)) => panic!("upgrade succeeded ({}), refusal expected", resp.status()),
        Err(e) => http_error(&e).unwrap_or_else(|| panic!("expected an HTTP refusal, got {e}")),
    }
}

/// Reads the next text or binary message, answering pings on the way (tungstenite does).
/// Works over any stream: plain TCP (`Ws`) or TLS (`tls::Wss`).
pub fn recv_data<S: Read + Write>(ws: &mut WebSocket<S>) -> Result<Message, Error> {
    loop {
        if let m @ (Message::Text(_) | Message::Binary(_) | Message::Close(_)) = ws.read()? {
            return Ok(m);
        }
    }
}

/// Sends `msg` and asserts that the same message comes back.
pub fn roundtrip<S: Read + Write>(ws: &mut WebSocket<S>, msg: Message) {
    ws.send(msg.clone()).expect("send");
    let got = recv_data(ws).expect("receive echo");
    assert!(
        got == msg,
        "echo differs: sent {} bytes ({}), got {} bytes ({})",
        msg.len(),
        kind(&msg),
        got.len(),
        kind(&got)
    );
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    }
}

/// How a connection ended, seen from the client.
#[derive(Debug)]
pub struct Closed {
    /// Data messages received before the end.
    pub messages: Vec<Message>,
    /// The peer's close frame: `Some(None)` for a close without code, `None` if none came.
    pub frame: Option<Option<(u16, String)>>,
    /// The error that ended reading, unless it was the normal end after a close handshake.
    pub error: Option<String>,
}

impl Closed {
    pub fn code(&self) -> Option<u16> {
        self.frame.clone().flatten().map(|(c, _)| c)
    }
}

/// Reads until the connection ends, collecting data messages and the peer's close frame.
pub fn read_until_closed<S: Read + Write>(ws: &mut WebSocket<S>) -> Closed {
    let mut out = Closed {
        messages: Vec::new(),
        frame: None,
        error: None,
    };
    loop {
        match ws.read() {
            Ok(Message::Close(f)) => {
                out.frame = Some(f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => out.messages.push(m),
            Ok(_) => {}
            Err(Error::ConnectionClosed) | Err(Error::AlreadyClosed) => return out,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        }
    }
}

/// Starts the close handshake with `code` and `reason` and reads until it completes.
pub fn close_and_wait<S: Read + Write>(ws: &mut WebSocket<S>, code: u16, reason: &str) -> Closed {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    };
    if let Err(e) = ws.close(Some(frame)) {
        return Closed {
            messages: Vec::new(),
            frame: None,
            error: Some(e.to_string()),
        };
    }
    read_until_closed(ws)
}

/// A parsed HTTP response head (and body, when read). Its `Debug` shows the body as text.
#[derive(Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head exactly as received.
    pub raw_head: String,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A frame read from the server side (unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    /// RSV1..3 as the low three bits.
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Encodes one frame. Clients must mask (`mask: Some(..)`); pass `None` to test the refusal.
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A valid client upgrade head for `path`, with `extra` header lines appended.
pub fn upgrade_request(host: &str, path: &str, extra: &[(&str, &str)]) -> String {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The `Sec-WebSocket-Accept` for the key `upgrade_request` sends.
pub const UPGRADE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A raw TCP connection that keeps what it has read beyond the last parsed item.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> io::Result<RawConn> {
        Ok(RawConn {
            stream: connect_tcp(addr)?,
            buf: Vec::new(),
        })
    }

    /// Wraps a connected stream (for example one of `load::connect_from`), with the deadline
    /// guard on reads and writes.
    pub fn from_stream(stream: TcpStream) -> io::Result<RawConn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_write_timeout(Some(DEADLINE))?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Gives the stream back, dropping what was read and not consumed.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sets the guard timeout for reads (default `DEADLINE`).
    pub fn set_read_guard(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a client frame, masked with a fixed key.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.send(&encode_frame(
            fin,
            opcode,
            payload,
            Some([0x37, 0xfa, 0x21, 0x3d]),
        ))
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn need(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(())
    }

    /// Reads and parses a response head; the body is left unread.
    pub fn read_head(&mut self) -> io::Result<HttpResponse> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let mut headers = [httparse::EMPTY_HEADER; 128];
                let mut resp = httparse::Response::new(&mut headers);
                resp.parse(&head).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "bad response head ({e}): {:?}",
                            String::from_utf8_lossy(&head)
                        ),
                    )
                })?;
                return Ok(HttpResponse {
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").to_string(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                    raw_head: String::from_utf8_lossy(&head).into_owned(),
                });
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    /// Reads a response head and its body (by Content-Length, else until the peer closes; a 101
    /// has no body).
    pub fn read_response(&mut self) -> io::Result<HttpResponse> {
        let mut resp = self.read_head()?;
        if resp.status == 101 || resp.status == 204 || resp.status == 304 {
            return Ok(resp);
        }
        match resp
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Some(len) => {
                self.need(len)?;
                resp.body = self.buf.drain(..len).collect();
            }
            None => resp.body = self.read_to_end()?,
        }
        Ok(resp)
    }

    /// Reads the response to a request made with `method`: a head only for HEAD and for 1xx,
    /// 204 and 304; otherwise the body by Content-Length, by chunked encoding (decoded into
    /// `body`) or until the peer closes. What follows the response stays buffered, so responses
    /// on a kept-alive connection are read one after the other.
    pub fn read_response_to(&mut self, method: &str) -> io::Result<HttpResponse> {
        let mut resp = self.read_head()?;
        if method.eq_ignore_ascii_case("HEAD")
            || resp.status < 200
            || resp.status == 204
            || resp.status == 304
        {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = self.read_chunked_body()?;
            return Ok(resp);
        }
        match resp.header("content-length") {
            Some(v) => {
                let len: usize = v.trim().parse().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad Content-Length {v:?}"),
                    )
                })?;
                self.need(len)?;
                resp.body = self.buf.drain(..len).collect();
            }
            None => resp.body = self.read_to_end()?,
        }
        Ok(resp)
    }

    /// One line up to CRLF (without it).
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    }

    /// A chunked body, decoded; trailer lines are read and dropped.
    fn read_chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {text:?}"),
                )
            })?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            self.need(size + 2)?;
            body.extend(self.buf.drain(..size + 2).take(size));
        }
    }

    /// Reads one server frame.
    pub fn read_frame(&mut self) -> io::Result<RawFrame> {
        self.need(2)?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                self.need(4)?;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                self.need(10)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        let mut key = None;
        if masked {
            self.need(at + 4)?;
            key = Some([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ]);
            at += 4;
        }
        self.need(at + len)?;
        let mut payload: Vec<u8> = self.buf.drain(..at + len).skip(at).collect();
        if let Some(k) = key {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b ^= k[i % 4]);
        }
        Ok(RawFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode: b0 & 0x0f,
            masked,
            payload,
        })
    }

    /// Everything until the peer closes (a reset counts as the end too).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// True when the peer closed (EOF or reset) before the read guard expired; bytes read on
    /// the way are kept and can be inspected with `buffered`.
    pub fn wait_closed(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Bytes read but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// One HTTP/1.1 request with `Connection: close` over raw TCP (for the admin listener).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut c = RawConn::connect(addr)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    c.send(head.as_bytes())?;
    c.send(body)?;
    c.read_response()
}
