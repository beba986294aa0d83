//! The dialout as the rest of dialgate sees it once the API has validated it: the request, its
//! target and its machine-detection mode. Parsing and validation of the HTTP body stay in
//! `api::dialout`; everything else (routing, the call machine, the SIP legs, the store) reads
//! these types, so no arrow runs from the call engine back to the HTTP layer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How a dialout's target is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Target {
    /// An E.164 number (`tel:+1555…` or a bare `+1555…`), stored with its `+`.
    Tel(String),
    /// A SIP URI, used as the Request-URI as given.
    Sip(String),
}

impl Target {
    /// The user part used to match routing rules: the E.164 number, or the
    /// SIP URI's user part.
    pub fn routing_key(&self) -> &str {
        match self {
            Target::Tel(n) => n,
            Target::Sip(uri) => sip_user(uri).unwrap_or(uri),
        }
    }

    /// The target as it was meant (`tel:+…` or the SIP URI).
    pub fn display(&self) -> String {
        match self {
            Target::Tel(n) => format!("tel:{n}"),
            Target::Sip(u) => u.clone(),
        }
    }
}

/// The user part of `sip:user@host…`, if any.
pub fn sip_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let at = rest.find('@')?;
    Some(&rest[..at])
}

/// Answering-machine detection mode: of a bot (`outbound.machine_detection` in the YAML), of a
/// dialout (`machineDetection` in the request), and of the call that results. One type for all
/// three, so the request, the configuration and the state machine cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdMode {
    /// No detection (Live Hub default): no AMD tap is started.
    #[default]
    Disabled,
    /// The result (and a beep) is reported to the bot; the call goes on.
    Detect,
    /// As `Detect`, and a machine or fax ends the call with `machine-detected`.
    Disconnect,
}

impl AmdMode {
    /// The mode a call runs with: the request's when it names one, else the bot's.
    pub fn resolve(requested: Option<AmdMode>, bot_default: AmdMode) -> AmdMode {
        requested.unwrap_or(bot_default)
    }
}

/// A validated, normalised dialout request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DialoutRequest {
    pub bot: String,
    pub target: Target,
    pub caller: Option<String>,
    pub caller_host: Option<String>,
    pub caller_display_name: Option<String>,
    pub notify_url: Option<String>,
    pub machine_detection: Option<AmdMode>,
    pub answer_timeout_sec: Option<u32>,
    pub metadata: Option<Map<String, Value>>,
    pub headers: BTreeMap<String, String>,
    /// `"queue": true` asks for the dialout to be queued when the bot is at its limits (bots
    /// with `outbound.on_limit: on_request`); `false` refuses queueing on a `queue` bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<bool>,
}
