//! The media relay (latching, forwarding, injection), speech synthesis and its player, and the
//! parsers' fuzzing: real UDP on loopback, no SIP.
//!
//! One test binary for the area. Fixed ports are distinct per module: `media_relay`
//! 21000-22999 and 30900 and `media_latching` 27600-27907.

#[path = "../common/mod.rs"]
mod common;
mod fuzz_parsers;
mod media_latching;
mod media_relay;
mod tts_engine;
mod tts_player;
