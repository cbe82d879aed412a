//! A WebSocket backend that redirects before it upgrades, on tungstenite (and rustls for TLS),
//! never the gateway's code. Connection `i` is answered `302 Found` with `Location:
//! locations[i]` while there are locations left; the ones after are upgraded and echoed. Every
//! request is recorded with its headers and, over TLS, how many certificates the client showed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::{Message, WebSocket};

use super::DEADLINE;
use super::sync::Watch;

/// One request as the backend got it.
#[derive(Clone, Debug, Default)]
pub struct Hop {
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Certificates the client presented in the TLS handshake (0 for plain TCP).
    pub client_certs: usize,
}

impl Hop {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct WsRedirector {
    addr: SocketAddr,
    tls: bool,
    hops: Arc<Watch<Vec<Hop>>>,
    locations: Arc<Mutex<Vec<String>>>,
}

impl WsRedirector {
    /// A plain backend on 127.0.0.1.
    pub fn start(locations: &[&str]) -> WsRedirector {
        WsRedirector::spawn(locations, None)
    }

    /// The same over TLS with `config` (which may ask for a client certificate).
    pub fn start_tls(locations: &[&str], config: Arc<ServerConfig>) -> WsRedirector {
        WsRedirector::spawn(locations, Some(config))
    }

    fn spawn(locations: &[&str], tls: Option<Arc<ServerConfig>>) -> WsRedirector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the redirecting backend");
        let addr = listener.local_addr().expect("local addr");
        let hops = Arc::new(Watch::new(Vec::new()));
        let locations = Arc::new(Mutex::new(
            locations.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        ));
        let state = hops.clone();
        let is_tls = tls.is_some();
        let shared = locations.clone();
        thread::spawn(move || {
            for (i, tcp) in listener.incoming().enumerate() {
                let Ok(tcp) = tcp else { return };
                let location = shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(i)
                    .cloned();
                let (tls, state) = (tls.clone(), state.clone());
                thread::spawn(move || serve(tcp, tls, location, &state));
            }
        });
        WsRedirector {
            addr,
            tls: is_tls,
            hops,
            locations,
        }
    }

    /// One more redirect, for the first connection that has none yet.
    pub fn add_location(&self, location: &str) {
        self.locations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(location.to_string());
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://127.0.0.1:PORT<path>`, or `wss://localhost:PORT<path>` over TLS.
    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("wss://localhost:{}{path}", self.addr.port())
        } else {
            format!("ws://{}{path}", self.addr)
        }
    }

    pub fn hops(&self) -> Vec<Hop> {
        self.hops.read(|h| h.clone())
    }

    /// The first `n` requests, once they have come (panics after `DEADLINE`).
    pub fn hops_at_least(&self, n: usize) -> Vec<Hop> {
        assert!(
            self.hops.wait_until(DEADLINE, |h| h.len() >= n),
            "expected {n} requests, got {:?}",
            self.hops()
        );
        self.hops()
    }
}

fn serve(
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    location: Option<String>,
    hops: &Watch<Vec<Hop>>,
) {
    let _ = tcp.set_read_timeout(Some(DEADLINE));
    match tls {
        None => exchange(tcp, 0, location, hops),
        Some(config) => {
            let Ok(conn) = ServerConnection::new(config) else {
                return;
            };
            let mut s = StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                if s.conn.complete_io(&mut s.sock).is_err() {
                    return;
                }
            }
            let certs = s.conn.peer_certificates().map_or(0, |c| c.len());
            exchange(s, certs, location, hops);
        }
    }
}

// The callback's error type is tungstenite's `ErrorResponse`; its size is not ours to choose.
#[allow(clippy::result_large_err)]
fn exchange<S: std::io::Read + std::io::Write>(
    stream: S,
    client_certs: usize,
    location: Option<String>,
    hops: &Watch<Vec<Hop>>,
) {
    let record = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let hop = Hop {
            path: req.uri().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            client_certs,
        };
        hops.update(|h| h.push(hop));
        match &location {
            None => Ok(resp),
            Some(to) => {
                let mut redirect = ErrorResponse::new(None);
                *redirect.status_mut() = StatusCode::FOUND;
                redirect
                    .headers_mut()
                    .insert("location", to.parse().expect("a header value"));
                Err(redirect)
            }
        }
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, record) else {
        return;
    };
    echo(&mut ws);
}

fn echo<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) {
    while let Ok(m) = ws.read() {
        if matches!(m, Message::Text(_) | Message::Binary(_)) && ws.send(m).is_err() {
            return;
        }
    }
}

/// A server config presenting `leaf` that asks for a client certificate signed by `ca` but
/// also lets clients in without one, so that the test sees which clients showed one.
pub fn asking_for_client_cert(
    leaf: &super::tls::Leaf,
    ca: &super::tls::TestCa,
) -> Arc<ServerConfig> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(ca.roots()),
        super::tls::provider(),
    )
    .allow_unauthenticated()
    .build()
    .expect("client verifier");
    let mut c = ServerConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .expect("server certificate");
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}
