//! TLS settings built once at load: the server side of TLS listeners (certificates chosen by
//! SNI) and the client side of backend connections (trusted roots, an optional client
//! certificate, verification). The handshakes and records themselves are rustls's; the engine
//! moves their bytes in `engine/stream.rs`.

use crate::model::TlsCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The one crypto provider (ring): built-in, no C toolchain beyond what `ring` compiles.
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Reads a PEM certificate chain and private key into a key ready for handshakes.
pub fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "{}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM expected): {e}",
            key.display()
        )
    })?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        format!(
            "{} and {}: the key does not fit the certificate or is not supported: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// One certificate of a TLS listener and the names it answers for.
#[derive(Debug)]
struct Named {
    /// From the config's `server-names`, or else the DNS names of the certificate's subject
    /// alternative names, read once at load so that a handshake only compares strings.
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// Chooses a listener's certificate by the SNI name of the ClientHello. One certificate serves
/// every name; with several, a client without SNI (one that connects by address) gets the first,
/// and a name that none of them covers is refused, so a client never gets a certificate for
/// another site.
#[derive(Debug)]
struct BySni {
    certs: Vec<Named>,
}

impl Named {
    fn covers(&self, sni: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, sni))
    }
}

/// The DNS names (wildcards included) a leaf certificate is issued for; none when it cannot be
/// parsed, as rustls would then fail its handshakes anyway.
fn certificate_names(key: &CertifiedKey) -> Vec<String> {
    let Some(der) = key.cert.first() else {
        return Vec::new();
    };
    match webpki::EndEntityCert::try_from(der) {
        Ok(cert) => cert
            .valid_dns_names()
            .map(|n| n.trim_end_matches('.').to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let first = &self.certs.first()?.key;
        if self.certs.len() == 1 {
            return Some(first.clone());
        }
        let Some(sni) = hello.server_name() else {
            return Some(first.clone());
        };
        let hit = self.certs.iter().find(|c| c.covers(sni));
        if hit.is_none() {
            log::debug!("TLS: no certificate for server name {sni:?}; handshake refused");
        }
        hit.map(|c| c.key.clone())
    }
}

/// A configured server name against the SNI name: exact (ASCII case-insensitive), or a
/// `*.example.com` wildcard covering exactly one more label.
fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => sni
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(sni),
    }
}

/// The server side of a TLS listener: TLS 1.2 and 1.3, ALPN `http/1.1`, certificates by SNI.
/// On error, the index of the certificate entry at fault and the reason.
pub fn server_config(certs: &[TlsCert]) -> Result<Arc<ServerConfig>, (usize, String)> {
    let mut named = Vec::with_capacity(certs.len());
    for (i, c) in certs.iter().enumerate() {
        let key = certified_key(&c.cert_chain, &c.private_key).map_err(|e| (i, e))?;
        let names = if c.server_names.is_empty() {
            certificate_names(&key)
        } else {
            c.server_names.clone()
        };
        named.push(Named {
            names,
            key: Arc::new(key),
        });
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| (0, e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { certs: named }));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    // No TLS 1.3 session tickets: they cost a write per handshake and clients of a WebSocket
    // gateway hold long connections rather than resume many short ones.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client side for backends: the CA file's roots or the system's, a client certificate
/// for mutual TLS, or no verification at all when a profile says so explicitly.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&TlsCert>,
    insecure_skip_verify: bool,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let roots = match ca_file {
        Some(ca) => Arc::new(ca_roots(ca)?),
        None => system_roots(),
    };
    let builder = builder.with_root_certificates(roots);
    let mut config = match client_cert {
        Some(c) => {
            let key = certified_key(&c.cert_chain, &c.private_key)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
        }
        None => builder.with_no_client_auth(),
    };
    if insecure_skip_verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerification(provider())));
    }
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The client side for backends reached without a profile: the system's roots, shared.
pub fn default_client_config() -> Arc<ClientConfig> {
    static C: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    C.get_or_init(|| client_config(None, None, false).expect("the default TLS client settings"))
        .clone()
}

fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let iter =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in iter {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", path.display()));
    }
    Ok(roots)
}

/// The operating system's trusted roots, read once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("TLS: reading the system's root certificates: {e}");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                log::warn!(
                    "TLS: no system root certificates found; https/wss backends need a tls-profile with a ca-file"
                );
            }
            log::debug!("TLS: {added} system root certificates ({ignored} unusable)");
            Arc::new(roots)
        })
        .clone()
}

/// Accepts any backend certificate (a profile's `insecure-skip-verify: true`), while still
/// checking that the handshake is signed by the key of the certificate presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("api.example.com", "API.example.com"));
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(!name_matches("a.example.com", "b.example.com"));
    }

    /// The names read from a certificate at load choose it for exactly the SNI names that
    /// webpki's own check of the certificate accepts.
    #[test]
    fn certificate_names_read_at_load_cover_what_the_certificate_covers() {
        let made = rcgen::generate_simple_self_signed(vec![
            "api.example.com".to_string(),
            "*.apps.example.com".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("a test certificate");
        let der = made.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let key = CertifiedKey::from_der(vec![der.clone()], key, &provider()).expect("key");
        let named = Named {
            names: certificate_names(&key),
            key: Arc::new(key),
        };
        assert_eq!(named.names, ["api.example.com", "*.apps.example.com"]);
        let cert = webpki::EndEntityCert::try_from(&der).expect("parse");
        for sni in [
            "api.example.com",
            "API.Example.com",
            "x.apps.example.com",
            "apps.example.com",
            "a.b.apps.example.com",
            "example.com",
            "other.example.com",
            "api.example.org",
        ] {
            let name = ServerName::try_from(sni).expect("a DNS name");
            let webpki_says = cert.verify_is_valid_for_subject_name(&name).is_ok();
            assert_eq!(named.covers(sni), webpki_says, "SNI {sni}");
        }
    }
}
