//! The SIP endpoint: listeners (UDP, TCP, TLS), the rsipstack transaction/dialog layers and the
//! dispatcher of incoming requests.
//!
//! Policy for requests nobody asked for: dialgate only *originates* calls, so an out-of-dialog
//! INVITE is refused with 403 (never an open relay: toll fraud), an out-of-dialog OPTIONS is
//! answered 200 (trunk keep-alive), and any other request for an unknown dialog gets 481.
//! Requests inside a leg's dialog are handed to rsipstack's dialog, which reports them on the
//! leg's own state channel (see `leg.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::{Endpoint, EndpointBuilder, TransactionReceiver};
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::error::SipError;
use super::stream_accept::StreamLimits;

pub use crate::core::Transport;

/// The rsipstack spelling of a transport.
pub(crate) fn to_rsip(t: Transport) -> rsipstack::sip::Transport {
    match t {
        Transport::Udp => rsipstack::sip::Transport::Udp,
        Transport::Tcp => rsipstack::sip::Transport::Tcp,
        Transport::Tls => rsipstack::sip::Transport::Tls,
    }
}

/// Everything the endpoint needs; built by the caller from its configuration.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Listeners. Port 0 picks a free port (see [`SipEndpoint::local_addr`]).
    pub listen: Vec<(Transport, SocketAddr)>,
    /// `(cert_path, key_path)` PEM files; required when a TLS listener is configured.
    pub tls: Option<(String, String)>,
    /// Address advertised in Via/Contact when it differs from the listen address.
    pub public_address: IpAddr,
    /// The address advertised to peers of the other family than `public_address` (IPv6 beside
    /// IPv4); `None`: the first listener of that family with a specific address, if any.
    pub public_address_v6: Option<IpAddr>,
    /// PEM bundle of CAs that verify TLS peers (trunks, bots) we connect to, e.g.
    /// `/etc/ssl/certs/ca-certificates.crt`. rsipstack has no built-in roots: without this,
    /// every outbound TLS handshake fails verification.
    pub tls_ca: Option<String>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// RFC 3261 timer T1; `None` = 500 ms. Timer B (INVITE timeout) is 64*T1. Tests shorten it.
    pub t1: Option<Duration>,
}

/// Idle timeout of SIP TCP/TLS connections (no bytes in either direction's read side).
pub const SIP_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// Shared state the legs need.
pub(crate) struct EndpointCore {
    pub(crate) endpoint: Endpoint,
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) listen: Vec<(Transport, SocketAddr)>,
    /// dialgate's address per family (a leg advertises the one of its next hop's family).
    pub(crate) public: super::family::PublicAddrs,
    pub(crate) next_leg_id: AtomicU64,
    pub(crate) cancel: CancellationToken,
    /// Sees every message: keeps the legs' dialog state and finds orphan answers.
    pub(crate) hook: Arc<super::journal::WireHook>,
    /// Locates trunks given by domain name; set once (`set_dns`), else the system's resolver.
    pub(crate) dns: std::sync::OnceLock<Arc<super::dns::TrunkResolver>>,
    /// TLS connections to trunks, dialled and verified per trunk (see `tls_client.rs`).
    pub(crate) tls_dialer: super::tls_client::TlsDialer,
    /// Accepted TCP/TLS connections open, against `server.sip.max_connections`.
    pub(crate) stream_slots: super::stream_accept::Slots,
    /// Every leg's dialog states on one channel, routed to the legs by Call-ID.
    pub(crate) router: super::dialog_router::DialogRouter,
}

/// A running SIP endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SipEndpoint {
    pub(crate) core: Arc<EndpointCore>,
}

static CRYPTO: Once = Once::new();

/// rustls needs a process-wide crypto provider before the first TLS socket, or it panics when
/// more than one backend is linked. Installing twice is harmless (the second install fails
/// quietly), so every entry point may call this.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        crate::crypto::install_crypto_provider();
    });
}

/// rsipstack's timers: RFC 3261's, or a shorter T1 (tests).
fn endpoint_option(t1: Option<Duration>) -> EndpointOption {
    let mut option = EndpointOption::default();
    if let Some(t1) = t1 {
        option.t1 = t1;
        option.t1x64 = t1 * 64;
    }
    option
}

/// rsipstack's transaction layer over `transport_layer`: each listener advertised with its
/// public address for the peer's family (`FamilyInspector`), the wire watched by `hook` for
/// the leg journal.
fn transaction_layer(
    settings: &SipSettings,
    transport_layer: TransportLayer,
    bound: &[(Transport, SocketAddr)],
    public: &super::family::PublicAddrs,
    hook: &Arc<super::journal::WireHook>,
    cancel: &CancellationToken,
) -> Endpoint {
    EndpointBuilder::new()
        .with_inspector(Box::new(FamilyInspector {
            journal: super::journal::Inspector(hook.clone()),
            advertised: bound
                .iter()
                .map(|&(t, l)| (t, SocketAddr::new(public.for_peer(Some(l.ip())), l.port())))
                .collect(),
        }))
        .with_cancel_token(cancel.clone())
        .with_transport_layer(transport_layer)
        .with_user_agent(&settings.user_agent)
        .with_option(endpoint_option(settings.t1))
        .build()
}

impl SipEndpoint {
    /// Bind every listener and start serving, with the default [`StreamLimits`]. Must run
    /// inside a tokio runtime.
    pub async fn start(settings: SipSettings) -> Result<SipEndpoint, SipError> {
        Self::start_limited(settings, StreamLimits::default()).await
    }

    /// Bind every listener and start serving; at most `limits.max_connections` accepted
    /// TCP/TLS connections are open at once. Must run inside a tokio runtime.
    pub async fn start_limited(
        settings: SipSettings,
        limits: StreamLimits,
    ) -> Result<SipEndpoint, SipError> {
        install_crypto_provider();
        let cancel = CancellationToken::new();
        let transport_layer = TransportLayer::new(cancel.clone());
        // A TCP/TLS connection that sends nothing (not even a keep-alive) for this long is
        // closed: idle or half-open connections otherwise hold a descriptor each forever. How
        // many peers may open at once is capped by dialgate's own accept loop (`streams`).
        transport_layer.set_stream_idle_timeout(SIP_STREAM_IDLE_TIMEOUT);
        let tls_config = super::listen::read_tls(&settings)?;
        let tls_acceptor = super::listen::tls_acceptor(&settings.listen, &tls_config)?;
        let listen_ips: Vec<SocketAddr> = settings.listen.iter().map(|l| l.1).collect();
        let public = super::family::PublicAddrs::new(
            settings.public_address,
            settings.public_address_v6,
            &listen_ips,
        );
        let super::listen::Bound {
            streams,
            addrs: bound,
        } = super::listen::bind_all(
            &settings.listen,
            &public,
            &transport_layer,
            &cancel,
            tls_config.cert.is_some(),
        )
        .await?;
        if settings.tls.is_some() || settings.tls_ca.is_some() {
            // Client-side TLS (sips: trunks, bots) reads the CAs from the same holder.
            transport_layer.set_tls_config(tls_config);
        }

        let (hook, orphans) = super::journal::WireHook::new();
        let endpoint =
            transaction_layer(&settings, transport_layer, &bound, &public, &hook, &cancel);
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Stack(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        hook.attach(&endpoint.inner, &dialogs);

        super::listen::serve(&endpoint);
        let slots = super::stream_accept::Slots::new(limits);
        let acceptor = tls_acceptor.as_ref();
        if let Err(e) =
            super::listen::serve_streams(&endpoint, streams, acceptor, &slots, &cancel).await
        {
            cancel.cancel();
            return Err(e);
        }
        tokio::spawn(dispatch(incoming, dialogs.clone(), cancel.clone()));
        info!(listen = ?bound, "sip endpoint started");

        let router = super::dialog_router::DialogRouter::start(cancel.clone());
        let ep = SipEndpoint {
            core: Arc::new(EndpointCore {
                endpoint,
                dialogs,
                listen: bound,
                public,
                next_leg_id: AtomicU64::new(1),
                cancel,
                hook,
                dns: std::sync::OnceLock::new(),
                tls_dialer: Default::default(),
                stream_slots: slots,
                router,
            }),
        };
        tokio::spawn(ep.clone().clean_orphans(orphans));
        Ok(ep)
    }

    /// Where each leg's dialog state is reported (set once, before the first call).
    pub fn set_journal(&self, journal: Arc<dyn super::journal::DialogJournal>) {
        self.core.hook.set_journal(journal);
    }

    /// The address actually bound for `transport` (first listener of that kind).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.core
            .listen
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Accepted SIP TCP/TLS connections open now (the ones `StreamLimits` caps).
    pub fn stream_connections(&self) -> usize {
        self.core.stream_slots.open()
    }

    /// Number of dialogs rsipstack still tracks (leak check: 0 when no call is up).
    pub fn dialog_count(&self) -> usize {
        self.core.dialogs.len()
    }

    /// Stop listeners and timers. Live legs are not hung up: end them first.
    pub fn shutdown(&self) {
        self.core.cancel.cancel();
        self.core.endpoint.shutdown();
    }

    pub(crate) fn next_leg_id(&self) -> u64 {
        self.core.next_leg_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Listener address for Contact/Via of a given transport (public address, bound port).
    /// Uses `resolver` to locate trunks given by domain name (RFC 3263). Only the first call
    /// counts, and only before the first leg: the resolver and its cache then stay.
    pub fn set_dns(&self, resolver: super::dns::TrunkResolver) {
        let _ = self.core.dns.set(Arc::new(resolver));
    }

    /// The trunk resolver: the one set with [`SipEndpoint::set_dns`], else the system's.
    pub fn dns(&self) -> Arc<super::dns::TrunkResolver> {
        self.core
            .dns
            .get_or_init(|| {
                Arc::new(super::dns::TrunkResolver::new(
                    &super::dns::DnsSettings::default(),
                ))
            })
            .clone()
    }

    pub(crate) fn contact_addr(&self, transport: Transport) -> Option<SipAddr> {
        self.contact_addr_for(transport, None)
    }

    /// [`Self::contact_addr`] for a peer at `peer` (`None`: a name): dialgate's address of the
    /// peer's family, with the port of a listener of that family when there is one.
    pub(crate) fn contact_addr_for(
        &self,
        transport: Transport,
        peer: Option<IpAddr>,
    ) -> Option<SipAddr> {
        let ip = self.core.public.for_peer(peer);
        let of = |t: Transport| {
            let mut of_t = self.core.listen.iter().filter(|(lt, _)| *lt == t);
            let same = of_t.clone().find(|(_, a)| a.is_ipv4() == ip.is_ipv4());
            same.or_else(|| of_t.next()).map(|(_, a)| *a)
        };
        let local = of(transport).or_else(|| of(Transport::Udp))?;
        Some(SipAddr {
            r#type: Some(to_rsip(transport)),
            addr: SocketAddr::new(ip, local.port()).into(),
        })
    }

    /// dialgate's advertised address for a peer at `peer` (`None`: a name).
    pub fn public_ip_for(&self, peer: Option<IpAddr>) -> IpAddr {
        self.core.public.for_peer(peer)
    }
}

/// The journal's inspector, plus the Via of requests to a peer of the other family.
struct FamilyInspector {
    journal: super::journal::Inspector,
    /// Every listener as advertised: (transport, public address of its family, bound port).
    advertised: Vec<(Transport, SocketAddr)>,
}

impl rsipstack::transaction::endpoint::MessageInspector for FamilyInspector {
    fn before_send(
        &self,
        msg: rsipstack::sip::SipMessage,
        dest: Option<&SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        let msg = super::family::fix_via(msg, dest, |t, v6| {
            self.advertised
                .iter()
                .find(|(lt, a)| *lt == t && a.is_ipv6() == v6)
                .map(|(_, a)| *a)
        });
        self.journal.before_send(msg, dest)
    }

    fn after_received(
        &self,
        msg: rsipstack::sip::SipMessage,
        from: Option<&SipAddr>,
    ) -> rsipstack::sip::SipMessage {
        self.journal.after_received(msg, from)
    }
}

/// Route every incoming server transaction: to its dialog, or answer it by policy.
async fn dispatch(
    mut incoming: TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    cancel: CancellationToken,
) {
    loop {
        let mut tx = tokio::select! {
            _ = cancel.cancelled() => break,
            tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
        };
        if let Some(mut dialog) = dialogs.match_dialog(&tx) {
            tokio::spawn(async move {
                if let Err(e) = dialog.handle(&mut tx).await {
                    debug!(error = %e, "in-dialog request failed");
                }
            });
            continue;
        }
        let has_to_tag = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        let status = match tx.original.method {
            Method::Ack => continue,
            Method::Options if !has_to_tag => StatusCode::OK,
            Method::Invite if !has_to_tag => StatusCode::Forbidden,
            // Requests that may start something new (REGISTER, MESSAGE, SUBSCRIBE, PUBLISH):
            // we are no registrar or presence server.
            Method::Register | Method::Message | Method::Subscribe | Method::Publish
                if !has_to_tag =>
            {
                StatusCode::MethodNotAllowed
            }
            // BYE, INFO, UPDATE, PRACK, NOTIFY, REFER, re-INVITE ...: a dialog we do not have.
            _ => StatusCode::CallTransactionDoesNotExist,
        };
        debug!(method = %tx.original.method, %status, "answering request outside any leg");
        tokio::spawn(async move {
            if let Err(e) = tx.reply(status).await {
                debug!(error = %e, "reply failed");
            }
        });
    }
}

use rsipstack::sip::prelude::HeadersExt as _;
