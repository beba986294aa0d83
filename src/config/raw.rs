//! The file as written (serde targets). Validation turns these into the types in `types.rs`.

use super::types::{
    CallerIdFormat, Group, MachineDetectionMode, OnLimit, RtpLatching, RuleType, SipTransport,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoot {
    pub server: RawServer,
    #[serde(default)]
    pub bots: Vec<RawBot>,
    #[serde(default)]
    pub sip_connections: Vec<RawSipConnection>,
    #[serde(default)]
    pub phone_numbers: Vec<RawPhoneNumber>,
    #[serde(default)]
    pub routing_rules: Vec<RawRoutingRule>,
    #[serde(default)]
    pub api_clients: Vec<RawApiClient>,
    /// `cluster`: several instances sharing PostgreSQL and Redis (absent: one instance).
    pub cluster: Option<super::cluster::RawCluster>,
}

impl RawRoot {
    /// Splits off the lists so include files can be appended to them.
    pub(super) fn split(self) -> (RawServer, RawLists) {
        let lists = RawLists {
            bots: self.bots,
            sip_connections: self.sip_connections,
            phone_numbers: self.phone_numbers,
            routing_rules: self.routing_rules,
            api_clients: self.api_clients,
        };
        (self.server, lists)
    }
}

/// The lists that the main file and include files (the whole of an include file) carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLists {
    #[serde(default)]
    pub bots: Vec<RawBot>,
    #[serde(default)]
    pub sip_connections: Vec<RawSipConnection>,
    #[serde(default)]
    pub phone_numbers: Vec<RawPhoneNumber>,
    #[serde(default)]
    pub routing_rules: Vec<RawRoutingRule>,
    #[serde(default)]
    pub api_clients: Vec<RawApiClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub sip: RawSip,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub rtp: RawRtp,
    #[serde(default = "d_data_dir")]
    pub data_dir: String,
    #[serde(default = "d_max_call")]
    pub max_call_duration_sec: u32,
    #[serde(default = "d_bot_answer")]
    pub bot_answer_timeout_sec: u32,
    #[serde(default = "d_retention_days")]
    pub retention_days: u32,
    #[serde(default)]
    pub outbox: RawOutbox,
    #[serde(default)]
    pub stt: RawStt,
    pub include: Option<String>,
    #[serde(default)]
    pub notify_allow: Vec<String>,
    #[serde(default)]
    pub dns: RawDns,
}

/// `server.dns`: the resolver of trunks given by domain name (read at start).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    /// `ip[:port]` of DNS servers; empty = the system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Bound on one resolution of a trunk address; `None` = 5000.
    pub timeout_ms: Option<u32>,
}

/// `server.outbox`: delivery concurrency of notifications and Bot API requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbox {
    #[serde(default = "d_outbox_max_concurrent")]
    pub max_concurrent: u32,
    #[serde(default = "d_outbox_max_per_destination")]
    pub max_per_destination: u32,
    #[serde(default = "d_outbox_connect_timeout_ms")]
    pub connect_timeout_ms: u32,
}

/// `server.stt`: the speech recogniser (read at start).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStt {
    #[serde(default = "d_stt_model")]
    pub model: String,
    #[serde(default = "d_one")]
    pub workers: u32,
    #[serde(default = "d_stt_threads")]
    pub threads_per_job: u32,
    #[serde(default = "d_stt_queue")]
    pub queue_bound: u32,
    #[serde(default = "d_stt_sessions")]
    pub max_sessions: u32,
    // Decoder settings (`SttEngineConfig`'s fields); absent = the engine's default, so the
    // defaults live in one place (`stt::SttEngineConfig::default`). Checked in `config/stt.rs`.
    pub short_utterance_ms: Option<u32>,
    pub greeting_utterance_ms: Option<u32>,
    pub short_prompt: Option<String>,
    pub initial_prompt: Option<String>,
    pub pad_ms: Option<u32>,
    pub temperature_inc: Option<f32>,
    pub beam_size: Option<u32>,
    pub min_confidence: Option<f32>,
    pub max_no_speech: Option<f32>,
    pub audio_ctx: Option<u32>,
    pub audio_ctx_min: Option<u32>,
    pub audio_ctx_margin: Option<u32>,
    pub rejoin_ms: Option<u32>,
    pub greeting_bias_margin: Option<f32>,
}

impl Default for RawStt {
    fn default() -> Self {
        RawStt {
            model: d_stt_model(),
            workers: d_one(),
            threads_per_job: d_stt_threads(),
            queue_bound: d_stt_queue(),
            max_sessions: d_stt_sessions(),
            short_utterance_ms: None,
            greeting_utterance_ms: None,
            short_prompt: None,
            initial_prompt: None,
            pad_ms: None,
            temperature_inc: None,
            beam_size: None,
            min_confidence: None,
            max_no_speech: None,
            audio_ctx: None,
            audio_ctx_min: None,
            audio_ctx_margin: None,
            rejoin_ms: None,
            greeting_bias_margin: None,
        }
    }
}

fn d_stt_model() -> String {
    "tiny.en".into()
}
fn d_one() -> u32 {
    1
}
fn d_stt_threads() -> u32 {
    2
}
fn d_stt_queue() -> u32 {
    8
}
fn d_stt_sessions() -> u32 {
    16
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_concurrent: d_outbox_max_concurrent(),
            max_per_destination: d_outbox_max_per_destination(),
            connect_timeout_ms: d_outbox_connect_timeout_ms(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSip {
    pub listen: Vec<RawListen>,
    pub tls: Option<RawTls>,
    pub public_address: Option<String>,
    pub user_agent: Option<String>,
    /// dialgate's IPv6 address beside an IPv4 `public_address` (see `config/ipv6.rs`).
    #[serde(default)]
    pub public_address_v6: Option<String>,
    /// Accepted SIP TCP/TLS connections open at once (see `sip/stream_accept.rs`).
    #[serde(default = "d_sip_max_connections")]
    pub max_connections: u32,
}

fn d_sip_max_connections() -> u32 {
    crate::sip::stream_accept::DEFAULT_MAX_CONNECTIONS as u32
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub transport: SipTransport,
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "d_http_listen")]
    pub listen: String,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub plain_http: bool,
    #[serde(default = "d_header_timeout")]
    pub header_timeout_sec: u32,
    #[serde(default = "d_body_timeout")]
    pub body_timeout_sec: u32,
    #[serde(default = "d_max_connections")]
    pub max_connections: u32,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: d_http_listen(),
            tls: None,
            plain_http: false,
            header_timeout_sec: d_header_timeout(),
            body_timeout_sec: d_body_timeout(),
            max_connections: d_max_connections(),
        }
    }
}

fn d_header_timeout() -> u32 {
    10
}
fn d_body_timeout() -> u32 {
    30
}
fn d_max_connections() -> u32 {
    512
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRtp {
    #[serde(default = "d_port_min")]
    pub port_min: u16,
    #[serde(default = "d_port_max")]
    pub port_max: u16,
    #[serde(default = "d_inactivity")]
    pub inactivity_timeout_sec: u32,
    #[serde(default)]
    pub latching: RtpLatching,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            port_min: d_port_min(),
            port_max: d_port_max(),
            inactivity_timeout_sec: d_inactivity(),
            latching: RtpLatching::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    pub id: String,
    pub name: String,
    pub sip_uri: Option<String>,
    pub events_url: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    #[serde(default = "d_language")]
    pub language: String,
    #[serde(default)]
    pub recording: bool,
    #[serde(default)]
    pub outbound: RawOutbound,
    #[serde(default)]
    pub amd: crate::amd::AmdParams,
    pub default_country: Option<u16>,
    /// A WebSocket bot's media side (`websocket: {url, protocol, …}`), instead of `sip_uri`.
    pub websocket: Option<crate::wsbot::WebSocketBotYaml>,
    /// Session timers (RFC 4028) on a SIP bot's leg; 0 = off (the default).
    #[serde(default)]
    pub session_expires_sec: u32,
    #[serde(default = "d_min_se")]
    pub min_se: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub start_recognition_on_connect: bool,
    #[serde(default)]
    pub dialout_initiated_event: bool,
    #[serde(default)]
    pub machine_detection: MachineDetectionMode,
    #[serde(default = "d_answer_timeout")]
    pub answer_timeout_sec: u32,
    #[serde(default = "d_max_cps")]
    pub max_cps: f64,
    #[serde(default = "d_max_concurrent")]
    pub max_concurrent: u32,
    #[serde(default)]
    pub require_recognition: bool,
    #[serde(default)]
    pub transfer: super::TransferMethod,
    #[serde(default)]
    pub send_metadata_info: bool,
    #[serde(default)]
    pub speak_messages: bool,
    #[serde(default)]
    pub barge_in: bool,
    #[serde(default)]
    pub on_limit: OnLimit,
    #[serde(default = "d_max_queue")]
    pub max_queue: u32,
    #[serde(default = "d_max_queue_wait")]
    pub max_queue_wait_sec: u32,
    #[serde(default)]
    pub early_media_to_bot: bool,
}

fn d_max_queue() -> u32 {
    1000
}
fn d_max_queue_wait() -> u32 {
    600
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            enabled: false,
            start_recognition_on_connect: false,
            dialout_initiated_event: false,
            machine_detection: MachineDetectionMode::Disabled,
            answer_timeout_sec: d_answer_timeout(),
            max_cps: d_max_cps(),
            max_concurrent: d_max_concurrent(),
            require_recognition: false,
            on_limit: OnLimit::Reject,
            max_queue: d_max_queue(),
            max_queue_wait_sec: d_max_queue_wait(),
            transfer: super::TransferMethod::Bridge,
            send_metadata_info: false,
            speak_messages: false,
            barge_in: false,
            early_media_to_bot: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSipConnection {
    pub id: String,
    pub name: String,
    pub address: String,
    pub backup_address: Option<String>,
    /// `None`: not written; UDP, and RFC 3263 NAPTR may choose another for a domain name.
    pub transport: Option<SipTransport>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    #[serde(default)]
    pub p_asserted_identity: bool,
    #[serde(default)]
    pub caller_id_format: CallerIdFormat,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub rtp_latching: Option<RtpLatching>,
    pub default_country: Option<u16>,
    #[serde(default = "d_session_expires")]
    pub session_expires_sec: u32,
    #[serde(default = "d_min_se")]
    pub min_se: u32,
    #[serde(default)]
    pub require_100rel: bool,
    pub tls_verify: Option<bool>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub srtp: Option<super::trunk_security::SrtpMode>,
}

fn d_session_expires() -> u32 {
    1800
}
fn d_min_se() -> u32 {
    90
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPhoneNumber {
    pub number: String,
    pub bot: String,
    pub sip_connection: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutingRule {
    pub name: String,
    #[serde(rename = "type", default)]
    pub rule_type: RuleType,
    #[serde(default = "d_any")]
    pub origin_bot: String,
    pub destination_pattern: Option<String>,
    pub route: RawRoute,
    #[serde(default = "d_priority")]
    pub priority: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub sip_connection: Option<String>,
    pub phone_number: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiClient {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub secret_env: Option<String>,
    #[serde(default)]
    pub groups: Vec<Group>,
    pub webhook_secret: Option<String>,
    pub webhook_secret_env: Option<String>,
    #[serde(default)]
    pub all_calls: bool,
}

fn d_data_dir() -> String {
    "data".into()
}
fn d_max_call() -> u32 {
    3600
}
fn d_bot_answer() -> u32 {
    10
}
fn d_retention_days() -> u32 {
    30
}
fn d_outbox_max_concurrent() -> u32 {
    64
}
fn d_outbox_max_per_destination() -> u32 {
    8
}
fn d_outbox_connect_timeout_ms() -> u32 {
    3000
}
fn d_http_listen() -> String {
    "127.0.0.1:8443".into()
}
fn d_port_min() -> u16 {
    20000
}
fn d_port_max() -> u16 {
    29999
}
fn d_inactivity() -> u32 {
    30
}
fn d_language() -> String {
    "en-US".into()
}
fn d_answer_timeout() -> u32 {
    30
}
fn d_max_cps() -> f64 {
    1.0
}
fn d_max_concurrent() -> u32 {
    3
}
pub(super) fn d_transport() -> SipTransport {
    SipTransport::Udp
}
fn d_any() -> String {
    "*".into()
}
fn d_priority() -> u32 {
    100
}
