//! The endpoint's listeners: UDP sockets handed to rsipstack's transport layer, TCP/TLS
//! listeners accepted by dialgate (`stream_accept`), and the order in which rsipstack must
//! learn of each.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::transaction::Endpoint;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::tls::{TlsConfig, TlsListenerConnection};
use rsipstack::transport::udp::UdpConnection;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::endpoint::{SipSettings, Transport};
use super::error::SipError;
use super::family::PublicAddrs;
use super::stream_accept::{Slots, StreamListener};

/// The listeners' PEM material: the TLS listeners' certificate and key, the CAs that verify
/// TLS peers dialgate connects to.
pub(crate) fn read_tls(settings: &SipSettings) -> Result<TlsConfig, SipError> {
    let read = |path: &String| {
        std::fs::read(path).map_err(|source| SipError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let mut tls_config = TlsConfig::default();
    if let Some((cert, key)) = &settings.tls {
        tls_config.cert = Some(read(cert)?);
        tls_config.key = Some(read(key)?);
    }
    if let Some(ca) = &settings.tls_ca {
        tls_config.ca_certs = Some(read(ca)?);
    }
    Ok(tls_config)
}

/// What binding gave: the stream listeners (not yet accepting) and every bound address.
pub(crate) struct Bound {
    pub(crate) streams: Vec<StreamListener>,
    pub(crate) addrs: Vec<(Transport, SocketAddr)>,
}

/// Binds every listener: UDP sockets become rsipstack transports at once (an IPv4 and an
/// IPv6 one together, see `dual_udp`); TCP/TLS listeners are bound and kept for
/// [`serve_streams`].
pub(crate) async fn bind_all(
    listen: &[(Transport, SocketAddr)],
    public: &PublicAddrs,
    layer: &TransportLayer,
    cancel: &CancellationToken,
    has_cert: bool,
) -> Result<Bound, SipError> {
    let mut bound = Bound {
        streams: Vec::new(),
        addrs: Vec::new(),
    };
    let first_v4 = listen
        .iter()
        .position(|l| l.0 == Transport::Udp && l.1.is_ipv4());
    let first_v6 = listen
        .iter()
        .position(|l| l.0 == Transport::Udp && l.1.is_ipv6());
    let paired = first_v4.zip(first_v6).map(|(a, b)| (a.min(b), a.max(b)));
    if let Some((i, j)) = paired {
        let (l1, l2) = bind_udp_pair(listen[i].1, listen[j].1, public, layer, cancel).await?;
        bound.addrs.push((Transport::Udp, l1));
        bound.addrs.push((Transport::Udp, l2));
    }
    for (n, &(transport, addr)) in listen.iter().enumerate() {
        if paired.is_some_and(|(i, j)| n == i || n == j) {
            continue;
        }
        let advertised = public.for_peer(Some(addr.ip()));
        let external = |local: SocketAddr| {
            (advertised != local.ip()).then(|| SocketAddr::new(advertised, local.port()))
        };
        match transport {
            Transport::Udp => {
                let bind_err = |source| SipError::Bind {
                    addr,
                    transport: transport.as_str(),
                    source,
                };
                let sock = tokio::net::UdpSocket::bind(addr).await.map_err(bind_err)?;
                let local = sock.local_addr().map_err(bind_err)?;
                let conn = UdpConnection::from_socket(
                    Arc::new(sock),
                    external(local),
                    Some(cancel.child_token()),
                )
                .await
                .map_err(|e| SipError::Stack(e.to_string()))?;
                layer.add_transport(conn.into());
                bound.addrs.push((transport, local));
            }
            Transport::Tcp | Transport::Tls => {
                if transport == Transport::Tls && !has_cert {
                    return Err(SipError::TlsMissing);
                }
                // Bound here (the port is known at once, even for port 0), accepted by
                // dialgate: see `stream_accept`.
                let (l, local) = StreamListener::bind(transport, addr, external).await?;
                bound.streams.push(l);
                bound.addrs.push((transport, local));
            }
        }
    }
    Ok(bound)
}

/// An IPv4 and an IPv6 UDP socket as one rsipstack transport; their bound addresses.
async fn bind_udp_pair(
    a: SocketAddr,
    b: SocketAddr,
    public: &PublicAddrs,
    layer: &TransportLayer,
    cancel: &CancellationToken,
) -> Result<(SocketAddr, SocketAddr), SipError> {
    let bind = |addr: SocketAddr| async move {
        let bind_err = |source| SipError::Bind {
            addr,
            transport: "udp",
            source,
        };
        let sock = tokio::net::UdpSocket::bind(addr).await.map_err(bind_err)?;
        let local = sock.local_addr().map_err(bind_err)?;
        Ok::<_, SipError>((sock, local))
    };
    let (first, l1) = bind(a).await?;
    let (second, l2) = bind(b).await?;
    let advertised = public.for_peer(Some(l1.ip()));
    let external = (advertised != l1.ip()).then(|| SocketAddr::new(advertised, l1.port()));
    let dual = super::dual_udp::DualUdp {
        first,
        second,
        second_first: Default::default(),
    };
    let conn = UdpConnection::from_socket(Arc::new(dual), external, Some(cancel.child_token()))
        .await
        .map_err(|e| SipError::Stack(e.to_string()))?;
    layer.add_transport(conn.into());
    Ok((l1, l2))
}

/// Starts rsipstack's endpoint task.
///
/// rsipstack starts the listeners it knows in the first poll of `serve` (binding and spawning
/// only, nothing it waits for). Polled once here, it has started them before the stream
/// listeners are registered ([`serve_streams`]): it then lists those (Via, Contact) but never
/// binds or accepts on them — dialgate's accept loop does. (Were a later version to start them
/// later, its bind would fail on the port already bound: the listener stays dialgate's.)
pub(crate) fn serve(endpoint: &Endpoint) {
    let inner = endpoint.inner.clone();
    let mut serving = Box::pin(async move {
        if let Err(e) = inner.serve().await {
            warn!(error = %e, "sip endpoint stopped");
        }
    });
    let _ = serving
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    tokio::spawn(serving);
}

/// The TLS listeners' server side, when there are any (checked before anything starts: a
/// certificate that cannot be used fails the start, not the first handshake).
pub(crate) fn tls_acceptor(
    listen: &[(Transport, SocketAddr)],
    tls_config: &TlsConfig,
) -> Result<Option<TlsAcceptor>, SipError> {
    if !listen.iter().any(|l| l.0 == Transport::Tls) {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (tls_config.cert.as_deref(), tls_config.key.as_deref()) else {
        return Err(SipError::TlsMissing);
    };
    super::stream_accept::tls_acceptor(cert, key).map(Some)
}

/// Registers each stream listener with rsipstack (for the addresses it writes) and starts
/// dialgate's accept loop on it; call after [`serve`].
pub(crate) async fn serve_streams(
    endpoint: &Endpoint,
    streams: Vec<StreamListener>,
    tls: Option<&TlsAcceptor>,
    slots: &Slots,
    cancel: &CancellationToken,
) -> Result<(), SipError> {
    let layer = &endpoint.inner.transport_layer;
    let stack = |e: rsipstack::Error| SipError::Stack(e.to_string());
    for l in streams {
        let addr = l.advertised().get_socketaddr().map_err(stack)?;
        let tls = if l.transport == Transport::Tls {
            // rsipstack never serves this entry (see `serve`): its TLS settings are unused.
            let entry = TlsListenerConnection::new(addr, None, TlsConfig::default())
                .await
                .map_err(stack)?;
            layer.add_transport(entry.into());
            Some(tls.ok_or(SipError::TlsMissing)?.clone())
        } else {
            let entry = TcpListenerConnection::new(addr, None)
                .await
                .map_err(stack)?;
            layer.add_transport(entry.into());
            None
        };
        super::stream_accept::spawn(
            l,
            tls,
            endpoint.inner.clone(),
            slots.clone(),
            cancel.clone(),
        );
    }
    Ok(())
}
