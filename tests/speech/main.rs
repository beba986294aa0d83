//! Speech: machine detection (the corpus and inside real calls, `amd-eval` against a call) and
//! recognition (Whisper on the fixtures and inside real calls). Needs the speech model
//! (`scripts/setup-model`).
//!
//! One test binary for the area. Relay RTP ranges are distinct per module: `amd_call_vs_eval`
//! 27400-27599 (PJSIP 45000), `call_amd` 28000-28799, `call_stt` 30000-31399, `call_greetings`
//! 31600-31799.

mod amd_call_vs_eval;
mod amd_corpus;
mod call_amd;
mod call_greetings;
mod call_stt;
#[path = "../common/mod.rs"]
mod common;
mod stt_greeting_bias;
mod stt_whisper;
