//! Simulated peers for `dialgate demo` and tests, loopback only:
//!
//! - [`SimCallee`]: the person behind the carrier trunk (SIP UAS with RTP from a WAV);
//! - [`SimBot`]: the bot's SIP media endpoint (the same UAS with [`SimCalleeOptions::bot`]);
//! - [`SimBotApi`]: the bot's AudioCodes Bot API (HTTP mode) events endpoint;
//! - [`SimDialer`]: the dialer's status-notification receiver (checks signatures).
//!
//! Every peer binds 127.0.0.1 (port 0 by default), bounds every wait, and stops all its tasks on
//! `shutdown()` or drop.

pub mod audio;
mod bot_api;
mod call;
mod callee;
mod dialer;
pub mod endpoint;
mod error;
pub mod g711;
mod http;
mod options;
mod peers;
pub mod rtp;
pub mod sdp;

pub use bot_api::{BotApiOptions, RecordedRequest, SimBotApi};
pub use callee::{SimBot, SimCallee};
pub use dialer::{DialerOptions, Notification, SimDialer, sign, verify_signature};
pub use error::SimError;
pub use options::{Answer, Hangup, SimCall, SimCalleeOptions, SimEvent, SimEventKind};
pub use peers::{SimPeers, SimPeersOptions};
