//! Bot health before a person is called: each bot's `events_url` gets the Bot API's validation
//! request (`GET` with `Authorization: Bearer <token>`, which a Bot API bot answers 200), and the
//! answer is classified — accepted, token refused (401/403), no bot at that URL (404), another
//! answer, or unreachable (refused, reset, no answer within the bound).
//!
//! Used by `dialgate check --probe` (printed, exit status) and at start-up and after every
//! reload (a warning per unhealthy bot, and `botProbe` in `GET /api/v1/status`); it never
//! blocks the start, a reload or a call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::HttpClient;
use crate::config::{Config, ConfigStore};

/// How long one probe may take in all (connect included).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a bot's `events_url` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// A 2xx: the bot is there and takes the token.
    Healthy(u16),
    /// 401 or 403: the bot refuses the token.
    TokenRefused(u16),
    /// 404: nothing at that URL.
    NotFound,
    /// Any other HTTP answer.
    Answered(u16),
    /// No HTTP answer: refused, reset, TLS failure, or none within [`PROBE_TIMEOUT`].
    Unreachable(String),
}

impl ProbeOutcome {
    /// Whether calls to this bot can be expected to work.
    pub fn healthy(&self) -> bool {
        matches!(self, ProbeOutcome::Healthy(_))
    }

    /// A short machine-readable word (`ok`, `unauthorized`, `not-found`, `http-error`,
    /// `unreachable`) for the status endpoint.
    pub fn code(&self) -> &'static str {
        match self {
            ProbeOutcome::Healthy(_) => "ok",
            ProbeOutcome::TokenRefused(_) => "unauthorized",
            ProbeOutcome::NotFound => "not-found",
            ProbeOutcome::Answered(_) => "http-error",
            ProbeOutcome::Unreachable(_) => "unreachable",
        }
    }

    /// What happened, in words that say what to fix.
    pub fn describe(&self) -> String {
        match self {
            ProbeOutcome::Healthy(s) => format!("OK (the bot answered {s})"),
            ProbeOutcome::TokenRefused(s) => format!(
                "the bot answered {s}: it refuses the token (check bots[].token / token_env)"
            ),
            ProbeOutcome::NotFound => {
                "the bot answered 404: no bot at this URL (check bots[].events_url)".to_owned()
            }
            ProbeOutcome::Answered(s) => format!("the bot answered {s}"),
            ProbeOutcome::Unreachable(e) => format!("unreachable: {e}"),
        }
    }
}

/// One bot's probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotProbe {
    /// The bot's ID.
    pub bot: String,
    /// The URL probed.
    pub url: String,
    /// What it answered.
    pub outcome: ProbeOutcome,
}

impl BotProbe {
    /// `{"bot","url","result","detail"}` for `GET /api/v1/status`.
    pub fn to_json(&self) -> Value {
        json!({"bot": self.bot, "url": self.url, "result": self.outcome.code(),
               "detail": self.outcome.describe()})
    }
}

/// Probes one URL with `token`, within `timeout`.
pub async fn probe(client: &HttpClient, url: &str, token: Option<&str>) -> ProbeOutcome {
    let auth = token.map(|t| format!("Bearer {t}"));
    match client.get_status(url, auth.as_deref()).await {
        Ok(s) if (200..300).contains(&s) => ProbeOutcome::Healthy(s),
        Ok(s @ (401 | 403)) => ProbeOutcome::TokenRefused(s),
        Ok(404) => ProbeOutcome::NotFound,
        Ok(s) => ProbeOutcome::Answered(s),
        Err(e) => ProbeOutcome::Unreachable(e),
    }
}

/// Probes every bot with an `events_url`, all at once (bounded by `timeout` each), in the
/// configuration's order.
pub async fn probe_bots(cfg: &Config, timeout: Duration) -> Vec<BotProbe> {
    let client = HttpClient::new(timeout, timeout);
    let jobs = cfg.bots.iter().filter_map(|b| {
        let url = b.events_url.clone()?;
        let client = client.clone();
        let token = b.token.clone();
        let bot = b.id.clone();
        Some(async move {
            let outcome = probe(&client, &url, token.as_deref()).await;
            BotProbe { bot, url, outcome }
        })
    });
    futures_util::future::join_all(jobs).await
}

/// The latest probe results, shared with the status endpoint.
#[derive(Clone, Default)]
pub struct ProbeBoard(Arc<Mutex<Vec<BotProbe>>>);

impl ProbeBoard {
    /// The results as a JSON list (empty until the first probe has finished).
    pub fn to_json(&self) -> Value {
        let list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Value::Array(list.iter().map(BotProbe::to_json).collect())
    }

    fn set(&self, results: Vec<BotProbe>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = results;
    }
}

/// Probes the bots now and after every accepted reload, in the background, until `shutdown`:
/// a warning per unhealthy bot, the results on `board`.
pub fn spawn_prober(
    config: Arc<ConfigStore>,
    board: ProbeBoard,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut versions = config.subscribe();
    tokio::spawn(async move {
        loop {
            let snap = config.current();
            let results = tokio::select! {
                r = probe_bots(&snap.config, PROBE_TIMEOUT) => r,
                _ = shutdown.cancelled() => return,
            };
            for p in &results {
                if p.outcome.healthy() {
                    tracing::info!(bot = %p.bot, url = %p.url, "bot probe: {}", p.outcome.describe());
                } else {
                    tracing::warn!(bot = %p.bot, url = %p.url, "bot probe: {}", p.outcome.describe());
                }
            }
            board.set(results);
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
