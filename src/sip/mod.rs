//! SIP layer: rsipstack endpoint, outbound legs (carrier and bot), digest, SDP.
//!
//! This module makes SIP legs; call policy (what to do when a leg answers, fails or hangs up)
//! belongs to `crate::call`.

mod cleanup;
mod dialog_router;
pub mod dns;
mod dual_udp;
pub mod endpoint;
pub mod error;
pub mod extensions;
pub mod family;
mod journal;
pub mod leg;
mod leg_types;
mod listen;
pub mod sdes;
pub mod sdp;
pub mod stream_accept;
pub mod tables;
pub mod tls_client;

pub use endpoint::{SipEndpoint, SipSettings, Transport};
pub use error::SipError;
pub use journal::DialogJournal;
pub use leg::{FailureKind, LegEvent, LegEvents, LegHandle, OutboundCall};
pub use stream_accept::StreamLimits;
pub use tables::SipTables;
