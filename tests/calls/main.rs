//! Whole calls over real SIP/RTP on loopback: PJSIP, SIPp and Kamailio peers, the simulated
//! callee and bot, Bot API and WebSocket bots, the dialer's notification sink.
//!
//! One test binary for the area: its tests run in parallel threads, so no two modules may share
//! a fixed port. The port plan (relay RTP = dialgate's `rtp.port_min..port_max`; peer media =
//! PJSIP or SIPp RTP; SIP = SIPp/Kamailio listeners; others pick free ports):
//!
//! | module | relay RTP | peer media | SIP |
//! |---|---|---|---|
//! | `call_flows_transfer` | 23000-24199 | 46000-46599 | free |
//! | `call_flows_sipp` | 26000-26699 | | 16010-16079 |
//! | `call_flows_kamailio` | 26700-26999 | | 16100-16139 |
//! | `call_restart` | 27000-27499 | | 16200-16239 |
//! | `call_numbers` | 27600-27799 | | 16300-16303 |
//! | `call_metrics` | 28100-28199 | | 16940-16943 |
//! | `call_media` | 29000-29799 | 29900, 29950 | free |
//! | `carrier_interop` | 31000-31989 | 31790, 31890 | 16520-16559 |
//! | `call_metadata` | 37800-38199 | 32620, 32640 | free |
//! | `call_tls_srtp` | 33400-33999 | 48400-48699 | free |
//! | `call_wsbot` | 35000-36999, 44600-44799 | 49000-49999, 44800-44899 | free |
//! | `ipv6_call` | 37000-37599 | 47400-47599 | free |
//! | `call_recording` | 37600-37799 | | free |
//! | `call_prompts` | 38400-39999 | 51000-51799 | free |
//! | `call_flows_pjsip` | 53000-55799 | 40000-41399 | free |
//! | `call_queue` | 56000-56599 | | free |
//! | `call_early_media_bot` | 42000-42599 | 50000-50299 | free |
//! | `call_srtp_reinvite` | 42600-42799 | 50400-50499 | free |
//! | `bot_session_timer` | 42800-42999 | | 16640-16649 |
//! | `carrier_pjsip` | 57000-58399 | 58400-59099 | free |
//! | `call_leak` | 28300-28399 | | 16960-16961 |
//! | `wsbot_backpressure` | 44400-44479 | free | |
//! | `wsbot_direct` | 43000-43039, 44480-44599, 44900-44999 | free | |
//!
//! `wsbot_ac` and `wsbot_media_stream` use free ports only.

mod bot_session_timer;
mod call_early_media_bot;
mod call_flows_kamailio;
mod call_flows_pjsip;
mod call_flows_sipp;
mod call_flows_transfer;
mod call_leak;
mod call_media;
mod call_metadata;
mod call_metrics;
mod call_numbers;
mod call_prompts;
mod call_queue;
mod call_recording;
mod call_restart;
mod call_srtp_reinvite;
mod call_tls_srtp;
mod call_wsbot;
mod carrier_interop;
mod carrier_pjsip;
#[path = "../common/mod.rs"]
mod common;
mod ipv6_call;
mod wsbot_ac;
mod wsbot_backpressure;
mod wsbot_direct;
mod wsbot_media_stream;
