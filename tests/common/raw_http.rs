//! A raw HTTP/1.1 backend on std sockets, for answers no ordinary server sends: it reads each
//! request head (and a `Content-Length` body), records the head, and writes the bytes the test
//! chose exactly as they are, on a connection of its own thread. Requests on a kept-alive
//! connection are answered one after the other until the gateway closes it, or the answer asks
//! the backend to close.

use super::DEADLINE;
use super::sync::Watch;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// What the backend writes for one request, and whether it closes the connection after it.
pub struct Reply {
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl Reply {
    /// `bytes` as the answer; the connection stays open for another request.
    pub fn keep(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            close: false,
        }
    }

    /// `bytes` as the answer, then the backend closes.
    pub fn close(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            close: true,
        }
    }
}

type Answer = dyn Fn(&str) -> Reply + Send + Sync;

pub struct RawHttpBackend {
    addr: SocketAddr,
    /// Every request head received, in order (request line to the blank line).
    heads: Arc<Watch<Vec<String>>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl RawHttpBackend {
    /// Answers every request with what `answer` makes of its head.
    pub fn start(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> RawHttpBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw backend");
        let addr = listener.local_addr().expect("raw backend address");
        let heads = Arc::new(Watch::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let acceptor = {
            let (heads, stopping) = (heads.clone(), stopping.clone());
            thread::spawn(move || {
                for s in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(s) = s else { continue };
                    let (heads, answer) = (heads.clone(), answer.clone());
                    thread::spawn(move || serve(s, &heads, &*answer));
                }
            })
        };
        RawHttpBackend {
            addr,
            heads,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// Answers every request with the same bytes and keeps the connection.
    pub fn fixed(bytes: &'static [u8]) -> RawHttpBackend {
        RawHttpBackend::start(move |_| Reply::keep(bytes))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.read(|h| h.clone())
    }

    /// Waits for at least `n` requests; returns their heads.
    pub fn wait_heads(&self, n: usize) -> Vec<String> {
        assert!(
            self.heads.wait_until(DEADLINE, |h| h.len() >= n),
            "the raw backend got {} of {n} requests",
            self.heads.read(|h| h.len())
        );
        self.heads()
    }
}

impl Drop for RawHttpBackend {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, heads: &Watch<Vec<String>>, answer: &Answer) {
    let _ = s.set_read_timeout(Some(DEADLINE));
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut s, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let length = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < end + length {
            if !fill(&mut s, &mut buf) {
                return;
            }
        }
        buf.drain(..end + length);
        let reply = answer(&head);
        heads.update(|h| h.push(head));
        if s.write_all(&reply.bytes).is_err() {
            return;
        }
        if reply.close {
            let _ = s.shutdown(Shutdown::Write);
            // Until the gateway closes too, so that it never sees a reset.
            while fill(&mut s, &mut buf) {}
            return;
        }
    }
}

/// Reads until `buf` holds a whole head; returns where it ends (after the blank line).
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !fill(s, buf) {
            return None;
        }
    }
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
