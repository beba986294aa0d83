//! WebSocket bots: a call's bot leg over one WebSocket per call, in either of two protocols.
//!
//! * **AudioCodes Bot API, WebSocket mode** ([`WsProtocol::AcBotApi`]): `session.initiate` →
//!   `session.accepted` / `session.error`, `activities` both ways, the person's audio as
//!   `userStream.*`, the bot's as `playStream.*`, `session.resume` after a dropped socket,
//!   `session.end` at hang-up.
//! * **Media stream** ([`WsProtocol::MediaStream`]): the Twilio Media Streams framing.
//!
//! The call gives the person's audio as 8 kHz PCM frames ([`WsBot::send_audio`]) and pulls
//! the bot's audio one 20 ms frame per call of [`WsBot::next_frame`] from a bounded playout
//! buffer — or, once it has media, hands the session the relay's bot leg
//! ([`WsBot::start_media`]). Protocol logic lives in sans-IO cores (`ac`, `media_stream`,
//! `jitter`, `pacer`, `wire`); `session` is the handle and `task` the async shell that owns
//! the socket — until, for a `ws://` bot with media, the relay thread serves it (`served`).

mod ac;
mod codec;
pub mod config;
mod error;
mod io;
mod jitter;
mod link;
mod media_side;
mod media_stream;
pub mod metrics;
mod pacer;
mod plain;
mod prompts;
mod protocol;
pub mod resample;
mod served;
mod served_link;
mod session;
mod shared_core;
mod task;
mod types;
mod wakeups;
mod wire;

pub use codec::{Decoder, Encoder};
pub use config::{MediaFormat, WebSocketBot, WebSocketBotYaml, WsConfigIssue, WsProtocol};
pub use error::{FrameError, WsBotError};
pub use jitter::{FRAME_SAMPLES, JitterBuffer, JitterStats};
pub use media_side::MediaSide;
pub use metrics::WsBotMetrics;
pub use prompts::Prompts;
pub use session::WsBot;
pub use types::{CallInfo, WsBotEvent, WsBotOptions, WsBotStats};
