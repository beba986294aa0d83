//! Verified TLS connections to trunks, one rustls client configuration per trunk.
//!
//! rsipstack 0.7.14 dials TLS with one process-wide `TlsConfig` (one CA bundle, one client
//! certificate) and, when the handshake fails, does not fail the INVITE: the transaction retries
//! until Timer B (32 s). So dialgate dials a trunk's TLS connection itself, before the INVITE,
//! with that trunk's settings (its CA file or the Mozilla roots, its client certificate, SNI from
//! its host name — for a domain located through NAPTR/SRV, the domain itself: see
//! `TlsDialer::ensure`), and hands the established stream to rsipstack's transport layer, which
//! then finds it for the INVITE and everything after it in the dialog. A refused connection or a
//! failed handshake is known at once and fails the attempt with its reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

/// How one trunk's TLS server is checked (from its `sip_connections[]` entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrunkTlsSettings {
    /// Verify the certificate chain and host name (`tls_verify`, default true).
    pub verify: bool,
    /// PEM bundle of trusted CAs; `None` = the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM), when the trunk asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TrunkTlsSettings {
    fn default() -> Self {
        TrunkTlsSettings {
            verify: true,
            ca_file: None,
            client_cert: None,
        }
    }
}

/// Why a TLS connection to a trunk could not be opened; the text goes on the call record.
#[derive(Debug, thiserror::Error)]
pub enum TlsDialError {
    /// A CA, certificate or key file could not be read or parsed.
    #[error("TLS material {path}: {reason}")]
    Material {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The trunk's host is not a valid TLS server name.
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
    /// The TCP connection failed (refused, unreachable, timed out).
    #[error("TLS connect to {addr}: {reason}")]
    Connect {
        /// Where.
        addr: String,
        /// The OS error or "timed out".
        reason: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, alert from the peer).
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// Where.
        addr: String,
        /// rustls' error (e.g. "invalid peer certificate: UnknownIssuer").
        reason: String,
    },
    /// rsipstack refused the established stream.
    #[error("TLS connection to {addr}: {reason}")]
    Stack {
        /// Where.
        addr: String,
        /// rsipstack's error.
        reason: String,
    },
}

/// Bound on the TCP connect and on the handshake, each: a trunk that does not answer fails
/// the attempt (and lets the backup address be tried) long before Timer B.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

fn material(path: &std::path::Path, reason: impl ToString) -> TlsDialError {
    TlsDialError::Material {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsDialError> {
    let pem = std::fs::read(path).map_err(|e| material(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| material(path, e))?;
    if certs.is_empty() {
        return Err(material(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The rustls client configuration for one trunk's settings.
pub fn client_config(s: &TrunkTlsSettings) -> Result<ClientConfig, TlsDialError> {
    crate::crypto::install_crypto_provider();
    let mut roots = RootCertStore::empty();
    match &s.ca_file {
        Some(path) => {
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| material(path, e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match &s.client_cert {
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let pem = std::fs::read(key).map_err(|e| material(key, e))?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| material(key, e))?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| material(cert, e))?
        }
        None => builder.with_no_client_auth(),
    };
    if !s.verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerification::new()));
    }
    Ok(config)
}

/// `tls_verify: false`: any certificate is accepted (the handshake's signatures are still
/// checked, so the channel is encrypted — to whoever answers).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl NoVerification {
    fn new() -> Self {
        NoVerification(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

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

/// One dialled connection's slot (shared by concurrent calls to the same server).
type Slot = Arc<tokio::sync::Mutex<Option<SipConnection>>>;

/// The TLS connections dialgate opened to trunks, one per remote address and verified name,
/// reused by later calls while rsipstack keeps them (a closed connection's token is cancelled
/// by rsipstack).
#[derive(Default)]
pub(crate) struct TlsDialer {
    slots: Mutex<HashMap<(SocketAddr, String), Slot>>,
}

fn alive(c: &SipConnection) -> bool {
    c.cancel_token().is_some_and(|t| !t.is_cancelled())
}

impl TlsDialer {
    /// Makes sure a verified TLS connection to `host_port` exists in rsipstack's transport
    /// layer, dialling it with `settings` if there is none. `host_port` is where to connect
    /// (a located target's `ip:port`, or the trunk's address as written); `tls_name` is the SNI
    /// and the name the certificate must carry: the trunk's host as configured. For a domain
    /// located through NAPTR/SRV that is the domain, not the SRV target's name (RFC 3263 §4,
    /// RFC 5922 §4); for an IP address, the address (no SNI is sent, the certificate must name
    /// the IP).
    pub(crate) async fn ensure(
        &self,
        layer: &rsipstack::transport::TransportLayer,
        cancel: &tokio_util::sync::CancellationToken,
        host_port: &str,
        tls_name: &str,
        settings: &TrunkTlsSettings,
    ) -> Result<(), TlsDialError> {
        let (written, remote) = resolve(host_port).await?;
        // A fully qualified name's final dot is not part of the name a certificate carries.
        let host = match tls_name.trim_end_matches('.') {
            "" => written,
            name => name.to_owned(),
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry((remote, host.clone())).or_default().clone()
        };
        // One dial per trunk at a time: concurrent calls wait for it and share the result.
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(alive) {
            return Ok(());
        }
        let config = client_config(settings)?;
        if !settings.verify {
            warn!(trunk = %host_port, "tls_verify is false: the trunk's certificate is NOT checked");
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|_| TlsDialError::ServerName(host.clone()))?;
        let addr = remote.to_string();
        let tcp = match tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(remote))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(TlsDialError::Connect {
                    addr,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(TlsDialError::Connect {
                    addr,
                    reason: "timed out".into(),
                });
            }
        };
        let connector = TlsConnector::from(Arc::new(config));
        let stream = match tokio::time::timeout(DIAL_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(TlsDialError::Handshake {
                    addr,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(TlsDialError::Handshake {
                    addr,
                    reason: "timed out".into(),
                });
            }
        };
        let sip_addr = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Tls),
            addr: remote.into(),
        };
        let conn = TlsConnection::from_client_stream(stream, sip_addr, Some(cancel.child_token()))
            .await
            .map_err(|e| TlsDialError::Stack {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let conn = SipConnection::Tls(conn);
        layer.add_connection(conn.clone());
        info!(trunk = %host_port, name = %host, verified = settings.verify, "TLS connection to the trunk established");
        *guard = Some(conn);
        Ok(())
    }
}

/// `host:port` (or `[v6]:port`) → the host name as written and the first address it has.
async fn resolve(host_port: &str) -> Result<(String, SocketAddr), TlsDialError> {
    let connect_err = |reason: String| TlsDialError::Connect {
        addr: host_port.to_owned(),
        reason,
    };
    let with_port = if host_port.parse::<SocketAddr>().is_ok() || has_port(host_port) {
        host_port.to_owned()
    } else {
        format!("{host_port}:5061")
    };
    let host = match with_port.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        None => with_port.clone(),
    };
    let mut addrs = tokio::net::lookup_host(with_port.as_str())
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let remote = addrs
        .next()
        .ok_or_else(|| connect_err("no address".into()))?;
    Ok((host, remote))
}

fn has_port(host_port: &str) -> bool {
    match host_port.rsplit_once(':') {
        // `[v6]:port` or `name:port`; a bare IPv6 address has more than one colon.
        Some((h, p)) => p.parse::<u16>().is_ok() && (h.ends_with(']') || !h.contains(':')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_recognised() {
        assert!(has_port("trunk.example:5061"));
        assert!(has_port("[::1]:5061"));
        assert!(!has_port("trunk.example"));
        assert!(!has_port("::1"));
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let s = TrunkTlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = client_config(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
