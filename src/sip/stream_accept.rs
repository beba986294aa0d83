//! SIP over TCP and TLS, accepted by dialgate: a cap on the connections peers hold open.
//!
//! rsipstack 0.7.14 accepts every TCP/TLS connection its listeners are offered (and runs TLS
//! handshakes without a time limit), so a peer opening connections and sending nothing holds a
//! descriptor each until the idle timeout, as many as it likes. So dialgate binds its stream
//! listeners itself and runs the accept loop: a connection over `server.sip.max_connections`
//! is closed at once (counted as `queue_full{queue="sip_connections"}`, logged once per 10 s),
//! a TLS handshake has [`HANDSHAKE_TIMEOUT`] and holds its slot meanwhile, and every accepted
//! stream is handed to rsipstack's transport layer as its own listener would hand it
//! (`TcpConnection::from_stream` / `TlsConnection::from_server_stream` + `add_connection`), so
//! from there on rsipstack reads it, answers on it, and closes it after its idle timeout. The
//! slot is freed when rsipstack retires the connection (it cancels the connection's token).
//!
//! rsipstack must still know the listeners, for the Via and Contact it writes: they are
//! registered with its transport layer after it started the listeners it knows, so it lists
//! them but never binds or accepts on them (see [`crate::sip::SipEndpoint::start`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::endpoint::{Transport, to_rsip};
use super::error::SipError;

/// Default of `server.sip.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// A TLS client that has not finished its handshake this long after connecting is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits on the SIP TCP/TLS connections peers open to dialgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Accepted connections open at once, over all TCP and TLS listeners; one more is closed
    /// at accept. Connections dialgate opens to trunks do not count.
    pub max_connections: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A bound TCP or TLS listener, not yet accepting.
pub(crate) struct StreamListener {
    pub(crate) transport: Transport,
    listener: TcpListener,
    /// What rsipstack writes for this listener (the public address when it differs).
    advertised: SipAddr,
}

impl StreamListener {
    /// Binds `addr` (port 0: a free port, known at once).
    pub(crate) async fn bind(
        transport: Transport,
        addr: SocketAddr,
        external: impl FnOnce(SocketAddr) -> Option<SocketAddr>,
    ) -> Result<(StreamListener, SocketAddr), SipError> {
        let bind_err = |source| SipError::Bind {
            addr,
            transport: transport.as_str(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let advertised = SipAddr {
            r#type: Some(to_rsip(transport)),
            addr: external(local).unwrap_or(local).into(),
        };
        Ok((
            StreamListener {
                transport,
                listener,
                advertised,
            },
            local,
        ))
    }

    /// The address rsipstack advertises for this listener.
    pub(crate) fn advertised(&self) -> &SipAddr {
        &self.advertised
    }
}

/// The server side of SIP over TLS from the listener's PEM certificate chain and key.
pub(crate) fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, SipError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        SipError::Stack(format!("TLS listener {what}: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("key", &e))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections accepted so far and still open, shared by every stream listener.
#[derive(Clone)]
pub(crate) struct Slots {
    free: Arc<Semaphore>,
    max: usize,
}

impl Slots {
    pub(crate) fn new(limits: StreamLimits) -> Slots {
        let max = limits.max_connections.max(1);
        Slots {
            free: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Accepted connections open now.
    pub(crate) fn open(&self) -> usize {
        self.max - self.free.available_permits()
    }
}

/// Accepts on `l` until `cancel`: each connection takes a slot or is closed, then goes to
/// rsipstack (after its handshake, for TLS).
pub(crate) fn spawn(
    l: StreamListener,
    tls: Option<TlsAcceptor>,
    endpoint: EndpointInnerRef,
    slots: Slots,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let mut errors = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = l.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning on the error.
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!(error = %e, errors, transport = l.transport.as_str(), "SIP accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.free.clone().try_acquire_owned() else {
                drop(stream);
                crate::overflow::dropped(
                    crate::overflow::Queue::SipConnections,
                    "a SIP connection over server.sip.max_connections",
                );
                continue;
            };
            let conn = Accepted {
                endpoint: endpoint.clone(),
                local: l.advertised.clone(),
                token: cancel.child_token(),
                slot,
            };
            match &tls {
                None => conn.tcp(stream, peer),
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(conn.tls(acceptor, stream, peer));
                }
            }
        }
        debug!(listener = %l.advertised, "SIP stream listener stopped");
    });
}

/// One accepted connection holding its slot.
struct Accepted {
    endpoint: EndpointInnerRef,
    local: SipAddr,
    /// The connection's token: rsipstack cancels it when it retires the connection.
    token: CancellationToken,
    slot: OwnedSemaphorePermit,
}

impl Accepted {
    fn tcp(self, stream: TcpStream, peer: SocketAddr) {
        match TcpConnection::from_stream(stream, self.local.clone(), Some(self.token.clone())) {
            Ok(c) => self.hand_over(SipConnection::Tcp(c), peer),
            Err(e) => debug!(%peer, error = %e, "SIP TCP connection dropped"),
        }
    }

    async fn tls(self, acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr) {
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "SIP TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "SIP TLS handshake timed out");
                return;
            }
        };
        let remote = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Tls),
            addr: peer.into(),
        };
        match TlsConnection::from_server_stream(
            stream,
            self.local.clone(),
            remote,
            Some(self.token.clone()),
        )
        .await
        {
            Ok(c) => self.hand_over(SipConnection::Tls(c), peer),
            Err(e) => debug!(%peer, error = %e, "SIP TLS connection dropped"),
        }
    }

    /// rsipstack serves the connection from now on; the slot is freed when it retires it (idle
    /// timeout, the peer closed, a write failed) or the endpoint stops.
    fn hand_over(self, conn: SipConnection, peer: SocketAddr) {
        debug!(%peer, local = %self.local, "SIP stream connection accepted");
        self.endpoint.transport_layer.add_connection(conn);
        let Accepted { token, slot, .. } = self;
        tokio::spawn(async move {
            token.cancelled().await;
            drop(slot);
        });
    }
}
