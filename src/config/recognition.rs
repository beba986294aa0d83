//! Which bots need speech recognition, and what happens to their dialouts when no speech model
//! is installed. Plain functions of the configuration and one fact (is a model there?), so
//! `dialgate check`, the start-up log, `GET /api/v1/status` and the dialout check all say the
//! same thing.

use super::{Bot, Config, MachineDetectionMode, Server};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a bot uses the recogniser for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecognitionUse {
    /// `outbound.start_recognition_on_connect`: the person's words go to the bot as text.
    BotText,
    /// Machine detection (`outbound.machine_detection` or the request's `machineDetection`)
    /// reads the greeting's transcript; without it the decision is made on audio only.
    AmdTranscripts,
}

impl RecognitionUse {
    /// The setting that causes it, as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            RecognitionUse::BotText => "start_recognition_on_connect",
            RecognitionUse::AmdTranscripts => "machine_detection transcripts",
        }
    }
}

impl fmt::Display for RecognitionUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Bot {
    /// What this bot's dialouts use the recogniser for; `amd` is the machine detection mode in
    /// force for the call (the bot's, or the request's override).
    pub fn recognition_uses(&self, amd: MachineDetectionMode) -> Vec<RecognitionUse> {
        let mut uses = Vec::new();
        if self.outbound.start_recognition_on_connect {
            uses.push(RecognitionUse::BotText);
        }
        if amd != MachineDetectionMode::Disabled {
            uses.push(RecognitionUse::AmdTranscripts);
        }
        uses
    }
}

/// A bot that will lack recognition because no model is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecognitionGap {
    /// Bot ID.
    pub bot: String,
    /// What it would use the recogniser for.
    pub uses: Vec<RecognitionUse>,
    /// `outbound.require_recognition`: its dialouts are refused (else placed with a warning).
    pub refused: bool,
}

impl RecognitionGap {
    /// `start_recognition_on_connect, machine_detection transcripts`.
    pub fn uses_text(&self) -> String {
        self.uses
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What happens to its dialouts, in words.
    pub fn consequence(&self) -> &'static str {
        if self.refused {
            "its dialouts are refused (outbound.require_recognition: true)"
        } else {
            "its dialouts run without it, with a warning on the call record"
        }
    }
}

/// The command that installs the speech model.
pub const INSTALL_MODEL: &str = "scripts/setup-model";

/// The speech model file dialgate loads (`server.stt.model` under `server.data_dir`).
pub fn model_file(server: &Server) -> PathBuf {
    server.stt.engine_config(&server.data_dir).model_file()
}

/// Whether a (non-empty) model file is installed: what `dialgate check` can tell without
/// loading it.
pub fn model_installed(server: &Server) -> bool {
    is_installed(&model_file(server))
}

/// Whether `path` is a non-empty file: the one test of an installed model, for the model the
/// engine loads and for a model named in `server.stt.model`.
pub(super) fn is_installed(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// Bots allowed to dial out that need recognition, when `model_available` is false; none
/// otherwise.
pub fn recognition_gaps(config: &Config, model_available: bool) -> Vec<RecognitionGap> {
    if model_available {
        return Vec::new();
    }
    config
        .bots
        .iter()
        .filter(|b| b.outbound.enabled)
        .filter_map(|b| {
            let uses = b.recognition_uses(b.outbound.machine_detection);
            (!uses.is_empty()).then(|| RecognitionGap {
                bot: b.id.clone(),
                uses,
                refused: b.outbound.require_recognition,
            })
        })
        .collect()
}

/// One line per gap, for `dialgate check` and the start-up log.
pub fn gap_lines(gaps: &[RecognitionGap], model: &Path) -> Vec<String> {
    // `server.stt.model: base` is installed by its own argument of the script.
    let install = match model
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("ggml-")?.strip_suffix(".bin"))
    {
        Some(name) => super::install_command(name),
        None => INSTALL_MODEL.to_owned(),
    };
    gaps.iter()
        .map(|g| {
            format!(
                "bot `{}` needs speech recognition ({}) but no speech model is installed ({}): {}; run {install} to install it",
                g.bot,
                g.uses_text(),
                model.display(),
                g.consequence()
            )
        })
        .collect()
}
