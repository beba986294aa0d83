//! dialgate: a SIP-native B2BUA that places outbound calls for voice bots.
//!
//! Data flows one way: [`api`] → [`call`] → legs/media → events. See
//! `DESIGN.md` for the contract and the README for operation.

pub mod amd;
pub mod api;
pub mod app;
pub mod call;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod core;
pub mod crypto;
pub mod demo;
pub mod limits;
pub mod loglimit;
pub mod media;
pub mod metrics;
pub mod netguard;
pub mod numbers;
pub mod overflow;
pub mod sim;
pub mod sip;
pub mod store;
pub mod stt;
pub mod tts;
pub mod webhook;
pub mod wsbot;
