//! Resolved configuration types (what the rest of dialgate reads). Secrets from `*_env` are
//! already read, relative paths are resolved against the config file's directory.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// SIP transport of a listener or trunk (the core type; `udp`, `tcp`, `tls` in the YAML).
pub use crate::core::Transport as SipTransport;

/// Answering machine detection mode of a bot's dialouts (the core type; Live Hub
/// `machineDetection`: `disabled`, `detect`, `disconnect`).
pub use crate::core::AmdMode as MachineDetectionMode;
pub use crate::core::transfer::TransferMethod;

/// How the calling number is written in the From/PAI user part towards a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdFormat {
    /// `+15551234567`.
    #[default]
    E164,
    /// Without the leading `+`.
    National,
    /// Exactly as the dialout request gave it.
    AsIs,
}

/// API permission group (Live Hub API client groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// May place and control calls.
    CallControl,
    /// May read call records.
    CallDataManager,
}

/// Type of a routing rule; only outbound calls exist today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleType {
    /// Outbound call routing.
    #[default]
    Call,
}

/// How a media leg accepts RTP from an address other than its SDP one
/// (`server.rtp.latching`, `sip_connections[].rtp_latching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpLatching {
    /// Only the SDP address.
    Strict,
    /// A new source only at the start of a stream or after a re-INVITE (NAT).
    #[default]
    Learn,
    /// Any source after probation, at any time (hijackable; legacy peers only).
    Off,
}

/// A certificate chain and private key (PEM), absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// One SIP listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipListen {
    /// Transport.
    pub transport: SipTransport,
    /// Local address and port.
    pub address: SocketAddr,
}

/// `server.sip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipServer {
    /// At least one listener.
    pub listen: Vec<SipListen>,
    /// Certificates for TLS listeners.
    pub tls: Option<TlsFiles>,
    /// Host/IP written into Via, Contact and SDP (default: IP of the first listener).
    pub public_address: String,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// Address written for IPv6 peers when `public_address` is IPv4 (default: the first IPv6
    /// listener's specific address).
    pub public_address_v6: Option<std::net::IpAddr>,
    /// Accepted TCP/TLS connections open at once; one more is closed at accept.
    pub max_connections: u32,
}

/// `server.http` (the Live Hub compatible REST API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServer {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificates; `None` only when `plain_http` is true.
    pub tls: Option<TlsFiles>,
    /// Explicit opt-in to plain HTTP.
    pub plain_http: bool,
    /// A connection that has not sent a request's headers this long after
    /// connecting (or after its last answer) is closed.
    pub header_timeout_sec: u32,
    /// A request body not received in full this long after its headers gets 408.
    pub body_timeout_sec: u32,
    /// Connections served at once; more are closed at accept.
    pub max_connections: u32,
}

/// `server.rtp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpConfig {
    /// First RTP port (even).
    pub port_min: u16,
    /// Last usable port (inclusive).
    pub port_max: u16,
    /// Hang up after this many seconds without RTP; 0 disables.
    pub inactivity_timeout_sec: u32,
    /// Default latching policy (bot legs, and trunks without their own).
    pub latching: RtpLatching,
}

/// `server.outbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Deliveries in flight at once, all destinations together (≥ 1).
    pub max_concurrent: u32,
    /// Deliveries in flight at once to one `scheme://host:port` (≥ 1).
    pub max_per_destination: u32,
    /// TCP connect timeout of one delivery, milliseconds (≥ 1; read at start).
    pub connect_timeout_ms: u32,
}

/// `server.stt`: the speech recogniser. Read at start (a change needs a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttSettings {
    /// Installed model name: `tiny.en` (default) or `base` (`scripts/setup-model base`); the
    /// file is `<data_dir>/models/ggml-<model>.bin`.
    pub model: String,
    /// Recognition worker threads (each holds one Whisper state).
    pub workers: u32,
    /// Compute threads per recognition.
    pub threads_per_job: u32,
    /// Utterances waiting for a worker beyond which new ones are refused (counted).
    pub queue_bound: u32,
    /// Concurrent recognition sessions (calls) beyond which new ones are refused.
    pub max_sessions: u32,
    /// How utterances are decoded (prompts, padding, window, junk thresholds).
    pub decoder: super::stt::SttDecoder,
}

impl Default for SttSettings {
    fn default() -> Self {
        SttSettings {
            model: "tiny.en".into(),
            workers: 1,
            threads_per_job: 2,
            queue_bound: 8,
            max_sessions: 16,
            decoder: super::stt::SttDecoder::default(),
        }
    }
}

impl SttSettings {
    /// The recogniser's engine configuration for `data_dir`.
    pub fn engine_config(&self, data_dir: &std::path::Path) -> crate::stt::SttEngineConfig {
        let mut e = crate::stt::SttEngineConfig {
            data_dir: data_dir.to_path_buf(),
            model: self.model.clone(),
            workers: self.workers as usize,
            threads_per_job: self.threads_per_job as usize,
            queue_bound: self.queue_bound as usize,
            max_sessions: self.max_sessions as usize,
            ..Default::default()
        };
        self.decoder.apply(&mut e);
        e
    }
}

/// `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// SIP side.
    pub sip: SipServer,
    /// REST API side.
    pub http: HttpServer,
    /// Media ports.
    pub rtp: RtpConfig,
    /// SQLite store, recordings, models (absolute).
    pub data_dir: PathBuf,
    /// Calls are hung up after this many seconds.
    pub max_call_duration_sec: u32,
    /// Bot leg INVITE without final answer is cancelled after this many seconds.
    pub bot_answer_timeout_sec: u32,
    /// Call records, timelines and delivered outbox items older than this many days are
    /// deleted; 0 keeps them forever.
    pub retention_days: u32,
    /// Delivery concurrency of the outbox.
    pub outbox: OutboxConfig,
    /// The speech recogniser.
    pub stt: SttSettings,
    /// Include directory (absolute), if configured.
    pub include: Option<PathBuf>,
    /// Networks `notifyUrl` may reach although they are loopback, private,
    /// link-local, … (refused by default).
    pub notify_allow: Vec<ipnet::IpNet>,
    /// The resolver of trunks given by domain name (`server.dns`).
    pub dns: crate::sip::dns::DnsSettings,
}

/// `bots[].outbound` (Live Hub outbound-calling settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// Outbound calling allowed (default false).
    pub enabled: bool,
    /// Start speech recognition as soon as the call connects (default false).
    pub start_recognition_on_connect: bool,
    /// Send the `dialoutInitiated` event (default false).
    pub dialout_initiated_event: bool,
    /// Machine detection mode (default disabled).
    pub machine_detection: MachineDetectionMode,
    /// Ring time before giving up, seconds, 1..=300 (default 30).
    pub answer_timeout_sec: u32,
    /// Calls per second (token bucket), > 0 (default 1.0).
    pub max_cps: f64,
    /// Simultaneous outbound calls, >= 1 (default 3).
    pub max_concurrent: u32,
    /// When the bot needs speech recognition ([`Bot::recognition_uses`]) and no speech model is
    /// installed: refuse its dialouts (503) instead of placing them with a warning on the call
    /// record (default false).
    pub require_recognition: bool,
    /// How `transfer` activities are carried out (default `bridge`).
    pub transfer: TransferMethod,
    /// Forward the bot's `sendMetaData` activities to the person's leg as SIP INFO
    /// (`Content-Type: application/json`); off, they are noted on the timeline and ignored
    /// (default false).
    pub send_metadata_info: bool,
    /// A SIP bot's `message` activities are spoken by dialgate in place of its audio (its own
    /// RTP held back meanwhile). Text bots are always spoken. Default false.
    pub speak_messages: bool,
    /// The person speaking cuts dialgate's prompts (`playFinished` with `interrupted: true`);
    /// the `config` activity's `bargeIn` changes it during a call. Default false.
    pub barge_in: bool,
    /// What a dialout over `max_cps` / `max_concurrent` gets (default reject: 429).
    pub on_limit: OnLimit,
    /// Queued dialouts beyond which new ones are refused (429), >= 1 (default 1000).
    pub max_queue: u32,
    /// A queued dialout not dialled within this many seconds ends `failed/queue-timeout`,
    /// >= 1 (default 600).
    pub max_queue_wait_sec: u32,
    /// A SIP bot's leg is placed at the carrier's first provisional with SDP (183/180), so the
    /// bot hears the early media (ringback, announcements) one way; `start` still waits for the
    /// answer. SIP bots only (refused for text and WebSocket bots). Default false.
    pub early_media_to_bot: bool,
}

/// `bots[].outbound.on_limit`: a dialout over the bot's limits is refused (Live Hub's
/// behaviour), queued and dialled at the bot's pace, or queued only when the request asks
/// (`"queue": true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// 429 with `Retry-After`.
    #[default]
    Reject,
    /// Accepted (`"queued": true`) and dialled in order.
    Queue,
    /// Queued when the request says `"queue": true`, else refused.
    OnRequest,
}

impl OnLimit {
    /// Whether a dialout over the limits is queued, given the request's `queue` field.
    pub fn queues(self, requested: Option<bool>) -> bool {
        match self {
            OnLimit::Reject => false,
            OnLimit::Queue => requested != Some(false),
            OnLimit::OnRequest => requested == Some(true),
        }
    }
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            enabled: false,
            start_recognition_on_connect: false,
            dialout_initiated_event: false,
            machine_detection: MachineDetectionMode::Disabled,
            answer_timeout_sec: 30,
            max_cps: 1.0,
            max_concurrent: 3,
            require_recognition: false,
            on_limit: OnLimit::Reject,
            max_queue: 1000,
            max_queue_wait_sec: 600,
            transfer: TransferMethod::Bridge,
            send_metadata_info: false,
            speak_messages: false,
            barge_in: false,
            early_media_to_bot: false,
        }
    }
}

/// One voice bot.
#[derive(Clone, PartialEq)]
pub struct Bot {
    /// Unique ID (`[A-Za-z0-9._-]+`).
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// Bot media endpoint SIP URI; none for a text bot (dialgate speaks its `message` replies
    /// with speech synthesis and is itself the bot's media side).
    pub sip_uri: Option<String>,
    /// Bot API URL for events, if any.
    pub events_url: Option<String>,
    /// Bearer token sent to `events_url` (resolved from `token_env` if used).
    pub token: Option<String>,
    /// Recognition language (default `en-US`).
    pub language: String,
    /// Record calls as stereo WAV.
    pub recording: bool,
    /// Outbound-calling settings.
    pub outbound: Outbound,
    /// AMD tuning overrides.
    pub amd: crate::amd::AmdParams,
    /// Country calling code for targets written without `+`.
    pub default_country: Option<u16>,
    /// A WebSocket bot's media side (AC Bot API WebSocket mode or a media stream); exclusive
    /// with `sip_uri`.
    pub websocket: Option<crate::wsbot::WebSocketBot>,
    /// `Session-Expires` asked for on a SIP bot's leg (RFC 4028); 0 = no session timers.
    pub session_expires_sec: u32,
    /// `Min-SE` sent on a SIP bot's leg.
    pub min_se: u32,
}

impl Bot {
    /// A text bot: no media endpoint of its own (neither `sip_uri` nor `websocket`); dialgate
    /// speaks for it.
    pub fn is_text_bot(&self) -> bool {
        self.sip_uri.is_none() && self.websocket.is_none()
    }
}

impl fmt::Debug for Bot {
    // The token is a credential: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bot")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("sip_uri", &self.sip_uri)
            .field("events_url", &self.events_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("language", &self.language)
            .field("recording", &self.recording)
            .field("outbound", &self.outbound)
            .field("amd", &self.amd)
            .field("default_country", &self.default_country)
            .field("websocket", &self.websocket)
            .field("session_expires_sec", &self.session_expires_sec)
            .field("min_se", &self.min_se)
            .finish()
    }
}

/// A host with optional port (`sip:` prefix stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// One SIP trunk.
#[derive(Clone, PartialEq)]
pub struct SipConnection {
    /// Unique ID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Where INVITEs go.
    pub address: HostPort,
    /// Failover destination.
    pub backup_address: Option<HostPort>,
    /// Transport.
    pub transport: SipTransport,
    /// Digest user name.
    pub username: Option<String>,
    /// Digest password (resolved from `password_env` if used).
    pub password: Option<String>,
    /// Add P-Asserted-Identity with the caller.
    pub p_asserted_identity: bool,
    /// Calling number format.
    pub caller_id_format: CallerIdFormat,
    /// Extra `X-` headers on every INVITE.
    pub headers: BTreeMap<String, String>,
    /// Latching policy of this trunk's media (default `server.rtp.latching`).
    pub rtp_latching: Option<RtpLatching>,
    /// Country calling code for targets written without `+` (before the bot's).
    pub default_country: Option<u16>,
    /// RFC 4028 session interval asked for in the INVITE, seconds; `0` = no session timers.
    pub session_expires_sec: u32,
    /// RFC 4028 `Min-SE` (≥ 90 s).
    pub min_se: u32,
    /// Send `Require: 100rel` (the trunk demands reliable provisionals); else `Supported`.
    pub require_100rel: bool,
    /// `transport` was written: a domain address is not looked up by NAPTR (RFC 3263 §4.1),
    /// only by SRV of that transport and A/AAAA.
    pub transport_explicit: bool,
    /// TLS client settings (`transport: tls`): verification, CA file, client certificate.
    pub tls: super::trunk_security::TrunkTls,
    /// SDES-SRTP on the carrier leg (`srtp`).
    pub srtp: super::trunk_security::SrtpMode,
}

impl fmt::Debug for SipConnection {
    // The password is a credential: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipConnection")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("address", &self.address)
            .field("backup_address", &self.backup_address)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("p_asserted_identity", &self.p_asserted_identity)
            .field("caller_id_format", &self.caller_id_format)
            .field("headers", &self.headers)
            .field("rtp_latching", &self.rtp_latching)
            .field("default_country", &self.default_country)
            .field("session_expires_sec", &self.session_expires_sec)
            .field("min_se", &self.min_se)
            .field("require_100rel", &self.require_100rel)
            .field("transport_explicit", &self.transport_explicit)
            .field("tls", &self.tls)
            .field("srtp", &self.srtp)
            .finish()
    }
}

/// A phone number owned by a bot, reachable through a SIP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// E.164 number.
    pub number: String,
    /// Owning bot ID (names in the file are resolved to IDs).
    pub bot: String,
    /// SIP connection ID used for this number.
    pub sip_connection: String,
}

/// Where a routing rule sends a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// Directly over this SIP connection ID.
    SipConnection(String),
    /// Use this phone number as calling number (and its SIP connection).
    PhoneNumber(String),
}

/// One routing rule; [`super::Config::routing_rules`] is sorted by priority (stable).
#[derive(Debug, Clone)]
pub struct RoutingRule {
    /// Unique name.
    pub name: String,
    /// Rule type.
    pub rule_type: RuleType,
    /// Bot ID this rule applies to; `None` = any bot (`"*"`).
    pub origin_bot: Option<String>,
    /// Regex on the target's E.164 number / user part.
    pub destination_pattern: Option<regex_lite::Regex>,
    /// Target.
    pub route: RouteTarget,
    /// Lower = tried first.
    pub priority: u32,
}

impl RoutingRule {
    /// Whether this rule applies to a call from `bot_id` to `destination`.
    pub fn matches(&self, bot_id: &str, destination: &str) -> bool {
        self.origin_bot.as_deref().is_none_or(|b| b == bot_id)
            && self
                .destination_pattern
                .as_ref()
                .is_none_or(|r| r.is_match(destination))
    }
}
