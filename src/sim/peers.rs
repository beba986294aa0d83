//! All four simulated peers of `dialgate demo`, started together.

use std::path::Path;

use super::bot_api::{BotApiOptions, SimBotApi};
use super::callee::{SimBot, SimCallee};
use super::dialer::{DialerOptions, SimDialer};
use super::error::SimError;
use super::options::SimCalleeOptions;

/// Options of [`SimPeers`].
#[derive(Debug, Clone)]
pub struct SimPeersOptions {
    /// The person behind the carrier trunk.
    pub callee: SimCalleeOptions,
    /// The bot's SIP media endpoint.
    pub bot: SimCalleeOptions,
    /// The bot's events endpoint.
    pub bot_api: BotApiOptions,
    /// The dialer's notification receiver.
    pub dialer: DialerOptions,
}

impl SimPeersOptions {
    /// Demo defaults: the callee plays `<conf_dir>/greeting.wav` and hangs up 8 s after it, the
    /// bot plays
    /// `<conf_dir>/bot-prompt.wav`; the Bot API checks `bot_token` and the dialer checks
    /// `webhook_secret` when given.
    pub fn demo(
        conf_dir: impl AsRef<Path>,
        bot_token: Option<String>,
        webhook_secret: Option<String>,
    ) -> Result<Self, SimError> {
        let dir = conf_dir.as_ref();
        Ok(SimPeersOptions {
            // The person waits for an answer after their greeting (8 s, then hangs up): long
            // enough for their words to be recognised and reach the bot even on a busy machine
            // (2 s was shorter than one recognition under load, and the bot got nothing).
            callee: SimCalleeOptions::callee()
                .with_wav(dir.join("greeting.wav"))?
                .with_hangup(crate::sim::Hangup::AfterAudio(
                    std::time::Duration::from_secs(8),
                )),
            bot: SimCalleeOptions::bot().with_wav(dir.join("bot-prompt.wav"))?,
            bot_api: BotApiOptions {
                token: bot_token,
                ..Default::default()
            },
            dialer: DialerOptions {
                secret: webhook_secret,
                ..Default::default()
            },
        })
    }
}

/// The running peers. Dropping it stops them all.
pub struct SimPeers {
    /// Carrier-side callee: dial `callee.uri()` / `callee.local_addr()` as the trunk.
    pub callee: SimCallee,
    /// Bot media endpoint: the bot's `sip_uri` is `bot.uri()`.
    pub bot: SimBot,
    /// The bot's `events_url` is `bot_api.events_url()`.
    pub bot_api: SimBotApi,
    /// A `notifyUrl` is `dialer.notify_url()`.
    pub dialer: SimDialer,
}

impl SimPeers {
    /// Start all four (each on its own loopback port).
    pub async fn start(opts: SimPeersOptions) -> Result<SimPeers, SimError> {
        Ok(SimPeers {
            callee: SimCallee::start(opts.callee).await?,
            bot: SimCallee::start(opts.bot).await?,
            bot_api: SimBotApi::start(opts.bot_api).await?,
            dialer: SimDialer::start(opts.dialer).await?,
        })
    }

    /// Stop everything at once (see [`SimCallee::shutdown`]).
    pub fn shutdown(&self) {
        self.callee.shutdown();
        self.bot.shutdown();
        self.bot_api.shutdown();
        self.dialer.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_peers_start_on_distinct_loopback_ports() {
        // 1. Start the demo set from the repository's conf/ directory.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");
        let p = SimPeers::start(SimPeersOptions::demo(dir, Some("t".into()), None).unwrap())
            .await
            .unwrap();
        // 2. Both WAVs loaded, four distinct loopback addresses.
        assert!(p.callee.uri().starts_with("sip:callee@127.0.0.1:"));
        assert!(p.bot.uri().starts_with("sip:bot@127.0.0.1:"));
        let addrs = [
            p.callee.local_addr(),
            p.bot.local_addr(),
            p.bot_api.local_addr(),
            p.dialer.local_addr(),
        ];
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() != 0));
        assert_ne!(addrs[0], addrs[1]);
        p.shutdown();
    }

    #[tokio::test]
    async fn refuses_non_loopback_and_bad_wavs() {
        // 1. A public bind address is refused before anything is bound.
        let opts = SimCalleeOptions::callee().with_bind("0.0.0.0:0".parse().unwrap());
        let err = SimCallee::start(opts).await.err().unwrap();
        assert!(matches!(err, SimError::NotLoopback(_)) && err.is_caller_error());
        // 2. A missing WAV is a caller error naming the file.
        let err = SimCalleeOptions::callee()
            .with_wav("/nonexistent.wav")
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent.wav") && err.is_caller_error());
    }
}
