//! Test support shared by dialgate's integration tests: real, independent SIP peers (PJSIP through
//! `tests/peers/pjsua_peer.py`, Kamailio, SIPp) and HTTP peers (a Bot API bot, a dialer's notify
//! sink), plus an in-process dialgate with an HTTPS client. Everything binds 127.0.0.1, waits are
//! bounded, and every process or server is stopped when its handle is dropped.
//!
//! The SIP peers need `scripts/install-peers` to have run (Debian packages and `.venv-peers`).

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod api;
pub mod audio;
pub mod binary;
pub mod cluster;
pub mod cpu;
pub mod env;
pub mod flows;
pub mod http_peers;
pub mod legs;
pub mod mediaflows;
pub mod peers;
pub mod postgres;
pub mod redis;
pub mod simcall;
pub mod simside;
pub mod sipp;
pub mod sippflows;
pub mod sttflows;
pub mod udp_peer;
pub mod wsbot;
