//! TLS over the non-blocking mio sockets, with rustls's buffered API. `Stream` reads and writes
//! plaintext with the same contract as a non-blocking `TcpStream` (WouldBlock when the socket
//! has nothing more or takes nothing more; Ok(0) at the end of the stream), so the frame loops
//! of the client and the echo backend work unchanged over either.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, Connection, DigitallySignedStruct, ServerConfig, SignatureScheme};

pub struct Stream {
    pub tcp: TcpStream,
    tls: Option<Box<Connection>>,
    /// The TCP stream ended (TLS only: what rustls has buffered may still be read).
    eof: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream {
            tcp,
            tls: None,
            eof: false,
        }
    }

    pub fn client(tcp: TcpStream, cfg: &Arc<ClientConfig>, name: &ServerName<'static>) -> Stream {
        // Creating a client connection fails only for configs rustls rejects at build time.
        let c = rustls::ClientConnection::new(cfg.clone(), name.clone())
            .expect("client config was checked when it was built");
        Stream {
            tcp,
            tls: Some(Box::new(Connection::Client(c))),
            eof: false,
        }
    }

    pub fn server(tcp: TcpStream, cfg: &Arc<ServerConfig>) -> Stream {
        // As for the client: only a config rustls rejects at build time makes this fail.
        let c = rustls::ServerConnection::new(cfg.clone())
            .expect("server config was checked when it was built");
        Stream {
            tcp,
            tls: Some(Box::new(Connection::Server(c))),
            eof: false,
        }
    }

    /// TLS records waiting for the socket to take them.
    pub fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Sends TLS close_notify (nothing for plain TCP), as far as the socket takes it now.
    pub fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = Stream::push(tls, &mut self.tcp);
        }
    }

    /// Writes pending TLS records until done or the socket would block (Ok: all written).
    fn push(tls: &mut Connection, tcp: &mut TcpStream) -> io::Result<bool> {
        while tls.wants_write() {
            match tls.write_tls(tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.tcp.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                // The TCP stream ended without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            match tls.read_tls(&mut self.tcp) {
                Ok(0) => self.eof = true,
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Send the alert rustls queued, if the socket takes it.
                        let _ = Stream::push(tls, &mut self.tcp);
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("tls: {e}"),
                        ));
                    }
                    // Handshake messages, or plaintext written before the handshake was done.
                    Stream::push(tls, &mut self.tcp)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.tcp.write(buf);
        };
        // Twice at most: a second try after the socket took what filled rustls's buffer.
        for _ in 0..2 {
            // Takes nothing while rustls's buffer is at its limit (64 KiB by default), or,
            // before the handshake is done, while its plaintext buffer is.
            let n = tls.writer().write(buf)?;
            let drained = Stream::push(tls, &mut self.tcp)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if !drained {
                break;
            }
        }
        // Either the socket is full (a writable event follows) or the plaintext waits for the
        // handshake (the reads that complete it push it).
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Pushes pending TLS records; WouldBlock if the socket took only part of them.
    fn flush(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            None => Ok(()),
            Some(tls) => match Stream::push(tls, &mut self.tcp)? {
                true => Ok(()),
                false => Err(io::ErrorKind::WouldBlock.into()),
            },
        }
    }
}

/// Client side TLS: what to trust and which name to send.
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl ClientTls {
    /// `ca`: PEM file of roots to trust; `insecure`: accept any certificate (signatures over
    /// the handshake are still checked, so the client does the same work); `sni`: the name to
    /// send and verify (an IP address sends none); `resume`: allow session resumption.
    pub fn new(
        ca: Option<&str>,
        insecure: bool,
        sni: &str,
        resume: bool,
    ) -> Result<ClientTls, String> {
        let name = ServerName::try_from(sni.to_string())
            .map_err(|_| format!("{sni:?} is not a valid server name"))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(
                    provider().signature_verification_algorithms,
                )))
                .with_no_client_auth()
        } else {
            let ca = ca.ok_or("wss:// needs --ca FILE or --insecure")?;
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("--ca {ca}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca {ca}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("--ca {ca}: no usable certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        if !resume {
            // Every connection does a full handshake, as distinct clients would.
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(ClientTls {
            config: Arc::new(config),
            name,
        })
    }
}

/// Accepts any server certificate; checks the handshake signatures with it all the same.
#[derive(Debug)]
struct AnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCert {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Server side TLS for the echo backend: one certificate chain and key from PEM files.
pub fn server_config(cert: &str, key: &str) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {cert}: no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {key}: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("echo TLS: {e}"))?;
    Ok(Arc::new(config))
}
