//! A UDP rsipstack endpoint on loopback, shared by the simulated UAS and by tests that need a
//! UAC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::{Endpoint, EndpointBuilder, TransactionReceiver};
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use tokio_util::sync::CancellationToken;

use super::error::{SimError, check_loopback};

/// A running SIP endpoint (UDP, loopback). Stops when `cancel` fires or on [`SimEndpoint::shutdown`].
pub struct SimEndpoint {
    /// rsipstack endpoint.
    pub endpoint: Endpoint,
    /// Dialog layer on top of it.
    pub dialogs: Arc<DialogLayer>,
    /// Bound address (port 0 resolved).
    pub local: SocketAddr,
    /// Stops the listener and the transaction timers.
    pub cancel: CancellationToken,
}

impl SimEndpoint {
    /// Bind `bind` (loopback only) and start serving; returns the endpoint and its incoming
    /// transactions. `t1` shortens RFC 3261 timers (None = 500 ms).
    pub async fn start(
        bind: SocketAddr,
        user_agent: &str,
        t1: Option<Duration>,
    ) -> Result<(SimEndpoint, TransactionReceiver), SimError> {
        check_loopback(bind)?;
        let cancel = CancellationToken::new();
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let local = sock
            .local_addr()
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let transport_layer = TransportLayer::new(cancel.clone());
        let conn = UdpConnection::from_socket(Arc::new(sock), None, Some(cancel.child_token()))
            .await
            .map_err(|e| SimError::Stack(e.to_string()))?;
        transport_layer.add_transport(conn.into());
        let mut option = EndpointOption::default();
        if let Some(t1) = t1 {
            option.t1 = t1;
            option.t1x64 = t1 * 64;
        }
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport_layer)
            .with_user_agent(user_agent)
            .with_option(option)
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SimError::Stack(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let serve = endpoint.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = serve.serve().await {
                tracing::debug!(error = %e, "sim sip endpoint stopped");
            }
        });
        Ok((
            SimEndpoint {
                endpoint,
                dialogs,
                local,
                cancel,
            },
            incoming,
        ))
    }

    /// `sip:user@<local>` for Contact headers.
    pub fn contact(&self, user: &str) -> Result<rsipstack::sip::Uri, SimError> {
        let text = format!("sip:{user}@{}", self.local);
        rsipstack::sip::Uri::try_from(text.as_str()).map_err(|e| SimError::Stack(e.to_string()))
    }

    /// Stop listening and all timers.
    pub fn shutdown(&self) {
        self.cancel.cancel();
        self.endpoint.shutdown();
    }
}
