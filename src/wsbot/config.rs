//! `bots[].websocket` in YAML: the serde type and its validation.
//!
//! The lead plugs [`WebSocketBotYaml`] into the bot's raw type and turns each
//! [`WsConfigIssue`] into a positioned `ConfigError` (the issue's `field` is relative to
//! `bots[i].websocket`).

use crate::config::ErrorKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which WebSocket protocol the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WsProtocol {
    /// AudioCodes Bot API, WebSocket mode (`session.initiate`, `activities`, `userStream.*`, `playStream.*`).
    AcBotApi,
    /// Twilio Media Streams framing (`connected`, `start`, `media`, `mark`, `clear`, `dtmf`, `stop`).
    MediaStream,
}

/// Audio format on the WebSocket (AC Bot API names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
pub enum MediaFormat {
    /// 16-bit little-endian linear PCM, 16 kHz, mono.
    #[default]
    #[serde(rename = "raw/lpcm16")]
    Lpcm16,
    /// 16-bit little-endian linear PCM, 24 kHz, mono.
    #[serde(rename = "raw/lpcm16_24")]
    Lpcm16At24k,
    /// G.711 µ-law, 8 kHz, mono.
    #[serde(rename = "raw/mulaw")]
    Mulaw,
}

impl MediaFormat {
    /// Every format dialgate can send and receive, in order of preference.
    pub const ALL: [MediaFormat; 3] = [
        MediaFormat::Lpcm16,
        MediaFormat::Lpcm16At24k,
        MediaFormat::Mulaw,
    ];

    /// The protocol's name (`raw/lpcm16`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaFormat::Lpcm16 => "raw/lpcm16",
            MediaFormat::Lpcm16At24k => "raw/lpcm16_24",
            MediaFormat::Mulaw => "raw/mulaw",
        }
    }

    /// Parses a protocol name; `None` for a format dialgate does not handle.
    pub fn parse(name: &str) -> Option<MediaFormat> {
        MediaFormat::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Sample rate on the wire.
    pub fn sample_rate(self) -> u32 {
        match self {
            MediaFormat::Lpcm16 => 16_000,
            MediaFormat::Lpcm16At24k => 24_000,
            MediaFormat::Mulaw => 8_000,
        }
    }
}

impl fmt::Display for MediaFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `bots[].websocket` exactly as written in YAML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketBotYaml {
    /// `ws://` or `wss://` URL dialgate connects to, once per call.
    pub url: String,
    /// `ac-bot-api` or `media-stream`.
    pub protocol: WsProtocol,
    /// Bearer token sent in the upgrade request (`Authorization: Bearer …`).
    #[serde(default)]
    pub token: Option<String>,
    /// Environment variable holding the bearer token (instead of `token`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Preferred audio format (`ac-bot-api` only; `media-stream` is always µ-law 8 kHz).
    #[serde(default)]
    pub media_format: Option<MediaFormat>,
    /// The person's audio per `userStream.chunk`, in ms (`ac-bot-api`: 20–100, a multiple of
    /// 20; `media-stream` messages are always 20 ms, as Twilio's).
    #[serde(default)]
    pub chunk_ms: Option<u32>,
}

/// A validated `websocket` section, token resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSocketBot {
    /// Parsed `ws://` / `wss://` URL.
    pub url: url::Url,
    /// Protocol spoken.
    pub protocol: WsProtocol,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// Preferred format (offered first in `supportedMediaFormats`).
    pub media_format: MediaFormat,
    /// The person's audio per message to the bot, in ms (20 unless an AC bot asks for more).
    pub chunk_ms: u32,
}

impl fmt::Debug for WebSocketBot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketBot")
            .field("url", &self.url.as_str())
            .field("protocol", &self.protocol)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("media_format", &self.media_format)
            .field("chunk_ms", &self.chunk_ms)
            .finish()
    }
}

/// One problem in a `websocket` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfigIssue {
    /// Field inside `websocket` (`url`, `token_env`, `media_format`, ...).
    pub field: &'static str,
    /// Classification, as for every configuration error.
    pub kind: ErrorKind,
    /// Explanation without position.
    pub message: String,
}

impl fmt::Display for WsConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket.{}: {}", self.field, self.message)
    }
}

impl WebSocketBotYaml {
    /// Checks the section and resolves `token_env` through `env` (pass
    /// `|v| std::env::var(v).ok()` in production). Returns every problem found, not only the first.
    pub fn validate(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<WebSocketBot, Vec<WsConfigIssue>> {
        let mut issues = Vec::new();
        let url = check_url(&self.url, &mut issues);
        let token = self.resolve_token(env, &mut issues);
        let media_format = self.check_format(&mut issues);
        let chunk_ms = self.check_chunk(&mut issues);
        match (url, issues.is_empty()) {
            (Some(url), true) => Ok(WebSocketBot {
                url,
                protocol: self.protocol,
                token,
                media_format,
                chunk_ms,
            }),
            _ => Err(issues),
        }
    }

    fn resolve_token(
        &self,
        env: impl Fn(&str) -> Option<String>,
        issues: &mut Vec<WsConfigIssue>,
    ) -> Option<String> {
        match (&self.token, &self.token_env) {
            (Some(_), Some(_)) => {
                issues.push(issue(
                    "token_env",
                    ErrorKind::Conflict,
                    "give either token or token_env, not both",
                ));
                None
            }
            (Some(t), None) if t.is_empty() => {
                issues.push(issue("token", ErrorKind::InvalidValue, "token is empty"));
                None
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(var)) => match env(var) {
                Some(v) if !v.is_empty() => Some(v),
                Some(_) => {
                    issues.push(issue(
                        "token_env",
                        ErrorKind::MissingEnv,
                        format!("environment variable {var} is empty"),
                    ));
                    None
                }
                None => {
                    issues.push(issue(
                        "token_env",
                        ErrorKind::MissingEnv,
                        format!("environment variable {var} is not set"),
                    ));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn check_format(&self, issues: &mut Vec<WsConfigIssue>) -> MediaFormat {
        match (self.protocol, self.media_format) {
            (WsProtocol::MediaStream, Some(f)) if f != MediaFormat::Mulaw => {
                issues.push(issue(
                    "media_format",
                    ErrorKind::InvalidValue,
                    format!("media-stream bots always use raw/mulaw (8 kHz µ-law), not {f}"),
                ));
                MediaFormat::Mulaw
            }
            (WsProtocol::MediaStream, _) => MediaFormat::Mulaw,
            (WsProtocol::AcBotApi, f) => f.unwrap_or_default(),
        }
    }

    /// Larger chunks mean fewer messages and wake-ups (less CPU per call: about 2.1× a SIP
    /// bot's at 40 ms against 2.9–3.3× at 20 ms at 250 calls in `scripts/bench-wsbot`) but the
    /// first 20 ms of each chunk reach the bot a frame later per extra 20 ms.
    fn check_chunk(&self, issues: &mut Vec<WsConfigIssue>) -> u32 {
        let Some(ms) = self.chunk_ms else {
            return DEFAULT_CHUNK_MS;
        };
        let problem = match self.protocol {
            WsProtocol::MediaStream if ms != DEFAULT_CHUNK_MS => Some(format!(
                "media-stream bots get 20 ms per media message, as Twilio sends them, not {ms}"
            )),
            WsProtocol::AcBotApi if !(20..=100).contains(&ms) || ms % 20 != 0 => Some(format!(
                "chunk_ms must be 20, 40, 60, 80 or 100 (whole 20 ms frames), not {ms}"
            )),
            _ => None,
        };
        match problem {
            Some(message) => {
                issues.push(issue("chunk_ms", ErrorKind::InvalidValue, message));
                DEFAULT_CHUNK_MS
            }
            None => ms,
        }
    }
}

/// The person's audio per message when the section does not say.
pub const DEFAULT_CHUNK_MS: u32 = 20;

fn check_url(text: &str, issues: &mut Vec<WsConfigIssue>) -> Option<url::Url> {
    let url = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            issues.push(issue(
                "url",
                ErrorKind::InvalidValue,
                format!("not a URL ({e}): {text:?}"),
            ));
            return None;
        }
    };
    if !matches!(url.scheme(), "ws" | "wss") {
        issues.push(issue(
            "url",
            ErrorKind::InvalidValue,
            format!("scheme must be ws or wss, not {}", url.scheme()),
        ));
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        issues.push(issue("url", ErrorKind::InvalidValue, "URL has no host"));
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in the URL would end up in logs; the token belongs in `token`/`token_env`.
        issues.push(issue(
            "url",
            ErrorKind::InvalidValue,
            "credentials in the URL are not allowed; use token or token_env",
        ));
        return None;
    }
    Some(url)
}

fn issue(field: &'static str, kind: ErrorKind, message: impl Into<String>) -> WsConfigIssue {
    WsConfigIssue {
        field,
        kind,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> WebSocketBotYaml {
        match serde_saphyr::from_str(yaml) {
            Ok(v) => v,
            Err(e) => panic!("yaml did not parse: {e}"),
        }
    }

    #[test]
    fn a_full_section_parses_and_validates() {
        // 1. Every key given, the token from the environment.
        let y = parse(
            "url: wss://bot.example/ws\nprotocol: ac-bot-api\ntoken_env: BOT_TOKEN\nmedia_format: raw/lpcm16_24\n",
        );
        let bot = y
            .validate(|v| (v == "BOT_TOKEN").then(|| "s3cret".to_string()))
            .map_err(|e| format!("{e:?}"));
        // 2. The validated value holds the resolved token and the chosen format.
        let bot = bot.as_ref().map_err(String::as_str);
        assert_eq!(bot.map(|b| b.token.clone()), Ok(Some("s3cret".into())));
        assert_eq!(bot.map(|b| b.media_format), Ok(MediaFormat::Lpcm16At24k));
        assert_eq!(bot.map(|b| b.protocol), Ok(WsProtocol::AcBotApi));
        // 3. Debug output never shows the token.
        assert!(!format!("{bot:?}").contains("s3cret"));
    }

    #[test]
    fn unknown_keys_and_protocols_are_rejected_by_serde() {
        assert!(
            serde_saphyr::from_str::<WebSocketBotYaml>("url: ws://a\nprotocol: sip\n").is_err()
        );
        assert!(
            serde_saphyr::from_str::<WebSocketBotYaml>(
                "url: ws://a\nprotocol: media-stream\nbogus: 1\n"
            )
            .is_err()
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        // 1. Wrong scheme, both token kinds, a non-µ-law media-stream format, 40 ms chunks for
        //    a media stream.
        let y = WebSocketBotYaml {
            url: "http://bot".into(),
            protocol: WsProtocol::MediaStream,
            token: Some("a".into()),
            token_env: Some("B".into()),
            media_format: Some(MediaFormat::Lpcm16),
            chunk_ms: Some(40),
        };
        let issues = y.validate(|_| None).err().unwrap_or_default();
        let fields: Vec<_> = issues.iter().map(|i| (i.field, i.kind)).collect();
        assert_eq!(
            fields,
            vec![
                ("url", ErrorKind::InvalidValue),
                ("token_env", ErrorKind::Conflict),
                ("media_format", ErrorKind::InvalidValue),
                ("chunk_ms", ErrorKind::InvalidValue),
            ]
        );
        // 2. A missing environment variable is named.
        let y = WebSocketBotYaml {
            url: "ws://127.0.0.1:9/x".into(),
            protocol: WsProtocol::AcBotApi,
            token: None,
            token_env: Some("NOPE".into()),
            media_format: None,
            chunk_ms: None,
        };
        let issues = y.validate(|_| None).err().unwrap_or_default();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].kind, ErrorKind::MissingEnv);
        assert!(issues[0].to_string().contains("NOPE"), "{}", issues[0]);
    }

    #[test]
    fn chunk_ms_is_whole_frames_from_20_to_100_for_ac_bots() {
        let with = |chunk_ms| WebSocketBotYaml {
            url: "ws://127.0.0.1:1/".into(),
            protocol: WsProtocol::AcBotApi,
            token: None,
            token_env: None,
            media_format: None,
            chunk_ms,
        };
        // 1. Unset: 20 ms; 20..100 in whole frames: taken.
        assert_eq!(with(None).validate(|_| None).map(|b| b.chunk_ms), Ok(20));
        for ms in [20, 40, 60, 80, 100] {
            assert_eq!(
                with(Some(ms)).validate(|_| None).map(|b| b.chunk_ms),
                Ok(ms)
            );
        }
        // 2. Anything else: refused at the field, saying what is allowed.
        for ms in [0, 10, 30, 120] {
            let issues = with(Some(ms)).validate(|_| None).err().unwrap_or_default();
            assert_eq!(issues.len(), 1, "{ms}");
            assert_eq!(
                (issues[0].field, issues[0].kind),
                ("chunk_ms", ErrorKind::InvalidValue)
            );
            assert!(
                issues[0].to_string().contains("20, 40, 60, 80 or 100"),
                "{}",
                issues[0]
            );
        }
    }

    #[test]
    fn defaults_lpcm16_for_ac_and_mulaw_for_media_stream() {
        let ac = WebSocketBotYaml {
            url: "ws://127.0.0.1:1/".into(),
            protocol: WsProtocol::AcBotApi,
            token: None,
            token_env: None,
            media_format: None,
            chunk_ms: None,
        };
        assert_eq!(
            ac.validate(|_| None).map(|b| b.media_format),
            Ok(MediaFormat::Lpcm16)
        );
        let ms = WebSocketBotYaml {
            protocol: WsProtocol::MediaStream,
            ..ac
        };
        assert_eq!(
            ms.validate(|_| None).map(|b| b.media_format),
            Ok(MediaFormat::Mulaw)
        );
    }
}
