//! TLS for the tests, with rustls and rcgen only (never the gateway's code): a test CA and leaf
//! certificates generated at test time and written as PEM into a `TempConf` dir, client and
//! server configs, a `wss://` tungstenite client over `rustls::StreamOwned`, and raw
//! ClientHello bytes for clients that misbehave during the handshake.
//!
//! The TLS echo backend is `EchoBackend::start_tls(mode, leaf.server_config())`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, StreamOwned,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderName;
use tungstenite::{Error, HandshakeError, WebSocket};

use super::DEADLINE;
use super::client::{client_config as ws_config, connect_tcp};
use super::conf::{TempConf, TlsCertConf};

/// A client TLS stream over TCP, and a WebSocket over it.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
pub type Wss = WebSocket<TlsStream>;

/// The only crypto provider the tests use (ring; the build has no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority made for one test: its certificate is written to `<name>-ca.pem`.
pub struct TestCa {
    pub name: String,
    pub cert: CertificateDer<'static>,
    /// PEM of the CA certificate (for a `tls-profile`'s `ca-file`).
    pub pem_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate signed by a `TestCa`, with its key, as files and as rustls objects.
pub struct Leaf {
    pub names: Vec<String>,
    /// PEM chain: the leaf, then its CA.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8).
    pub key_path: PathBuf,
    pub cert: CertificateDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TestCa {
    /// A new CA named `name`; `<name>-ca.pem` is written into `conf`.
    pub fn new(conf: &TempConf, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wsgate test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let pem_path = conf.write(&format!("{name}-ca.pem"), &cert.pem());
        TestCa {
            name: name.into(),
            cert: cert.der().clone(),
            pem_path,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses), usable as server and as client
    /// certificate; written as `<stem>.pem` (leaf then CA) and `<stem>.key`.
    pub fn leaf(&self, conf: &TempConf, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("generate leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| stem.to_string()),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        let ca_pem = std::fs::read_to_string(&self.pem_path).expect("read the CA PEM");
        let cert_path = conf.write(&format!("{stem}.pem"), &format!("{}{ca_pem}", cert.pem()));
        let key_path = conf.write(&format!("{stem}.key"), &key.serialize_pem());
        Leaf {
            names,
            cert_path,
            key_path,
            cert: cert.der().clone(),
            chain: vec![cert.der().clone(), self.cert.clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// A root store holding only this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("add the test CA");
        roots
    }
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The listener entry for this certificate, without `server-names`.
    pub fn conf(&self) -> TlsCertConf {
        TlsCertConf::new(&self.cert_path, &self.key_path)
    }

    /// A server config presenting this certificate, ALPN http/1.1, no client authentication.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let mut c = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key())
            .expect("server certificate");
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }

    /// Like `server_config`, but every client must present a certificate signed by `ca`.
    pub fn server_config_requiring_client_cert(&self, ca: &TestCa) -> Arc<ServerConfig> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider())
                .build()
                .expect("client verifier");
        let mut c = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key())
            .expect("server certificate");
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

/// A client config trusting `roots`, ALPN http/1.1, TLS 1.2 and 1.3.
pub fn client_config(roots: &RootCertStore) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A client config that accepts any server certificate (signatures are still checked), for
/// tests where a verification failure must not be mistaken for the server's refusal.
pub fn client_config_accepting_any(sni: bool) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.enable_sni = sni;
    Arc::new(c)
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn server_name(sni: &str) -> ServerName<'static> {
    ServerName::try_from(sni.to_string()).unwrap_or_else(|e| panic!("bad server name {sni}: {e}"))
}

/// TCP to `addr`, then a complete TLS handshake naming `sni`. Handshake failures (an alert
/// from the server, a certificate the config rejects, the server closing) are `Err`.
pub fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream> {
    let mut tcp = connect_tcp(addr)?;
    let mut conn = ClientConnection::new(config, server_name(sni))
        .map_err(|e| io::Error::other(format!("client connection: {e}")))?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed during the TLS handshake",
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// A `wss://` WebSocket to the gateway: TLS to `addr` with SNI `sni`, trusting `roots`, then the
/// upgrade for `path` (Host `sni:port`) with extra headers. A refused upgrade is
/// `Error::Http(response)` (see `http_error`); a failed TLS handshake is `Error::Io`.
pub fn wss_connect(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    roots: &RootCertStore,
) -> Result<(Wss, Response), Error> {
    wss_connect_with(addr, sni, path, headers, client_config(roots))
}

/// `wss_connect` with a chosen client config.
pub fn wss_connect_with(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    headers: &[(&str, &str)],
    config: Arc<ClientConfig>,
) -> Result<(Wss, Response), Error> {
    let stream = tls_connect(addr, sni, config)?;
    wss_upgrade(
        stream,
        &format!("wss://{sni}:{}{path}", addr.port()),
        headers,
    )
}

/// The WebSocket upgrade over an established TLS stream.
pub fn wss_upgrade(
    stream: TlsStream,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Wss, Response), Error> {
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
    match tungstenite::client::client_with_config(request, stream, Some(ws_config())) {
        Ok(pair) => Ok(pair),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => Err(Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no handshake answer within {DEADLINE:?}"),
        ))),
    }
}

/// The certificate the server presented first (the leaf) on a connected TLS WebSocket.
pub fn peer_leaf(stream: &TlsStream) -> Option<CertificateDer<'static>> {
    stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
}

/// The bytes a real client sends first: a ClientHello naming `sni` (from rustls).
pub fn client_hello(sni: &str) -> Vec<u8> {
    let mut conn = ClientConnection::new(client_config_accepting_any(true), server_name(sni))
        .expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write the ClientHello");
    }
    assert!(
        out.len() > 40 && out[0] == 0x16,
        "not a TLS handshake record: {out:?}"
    );
    out
}

/// Reads until the peer closes (EOF, reset, or a TLS alert then EOF); true when that happened
/// before the socket's read timeout. Bytes received on the way (an alert) are ignored.
pub fn wait_tcp_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Sends `bytes` on a new TCP connection to `addr` (write errors ignored: the server may have
/// closed already) and returns the socket.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<TcpStream> {
    let mut s = connect_tcp(addr)?;
    let _ = s.write_all(bytes);
    Ok(s)
}

/// A client config trusting `roots` that offers only one TLS version.
pub fn client_config_version(
    roots: &RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}
