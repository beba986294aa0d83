//! The dialout's recognition check: a bot that needs speech recognition while no speech model
//! is installed is refused (503) or placed with a warning on the call record, as its
//! `outbound.require_recognition` chooses. Availability is what the call engine reports for
//! `GET /api/v1/status` (`recognition.available`), so the two never disagree.

use super::ApiState;
use super::dialout::{AmdMode, DialoutRequest};
use super::error::ApiError;
use crate::config::{Bot, MachineDetectionMode, model_file};
use serde_json::Value;

/// `Err(reason)` when the engine has no speech model loaded.
pub(super) fn availability(state: &ApiState) -> Result<(), String> {
    let extra = (state.status_extra)();
    let rec = &extra["recognition"];
    match rec["available"].as_bool() {
        Some(false) => Err(rec["reason"]
            .as_str()
            .unwrap_or("no speech model loaded")
            .to_owned()),
        // Absent (an engine that does not report it) counts as available: nothing to warn about.
        _ => Ok(()),
    }
}

/// The machine detection mode the call will run with.
fn amd_mode(bot: &Bot, request: &DialoutRequest) -> MachineDetectionMode {
    match request.machine_detection {
        Some(AmdMode::Disabled) => MachineDetectionMode::Disabled,
        Some(AmdMode::Detect) => MachineDetectionMode::Detect,
        Some(AmdMode::Disconnect) => MachineDetectionMode::Disconnect,
        None => bot.outbound.machine_detection,
    }
}

/// `Ok(None)`: nothing to say; `Ok(Some(warning))`: place the call, put the warning on its
/// record; `Err`: refuse it (503) because the bot requires recognition.
pub(super) fn check(
    state: &ApiState,
    bot: &Bot,
    request: &DialoutRequest,
) -> Result<Option<String>, ApiError> {
    let uses = bot.recognition_uses(amd_mode(bot, request));
    if uses.is_empty() {
        return Ok(None);
    }
    let Err(reason) = availability(state) else {
        return Ok(None);
    };
    let uses: Vec<&str> = uses.iter().map(|u| u.as_str()).collect();
    let model = model_file(&state.config.current().config.server);
    if bot.outbound.require_recognition {
        return Err(ApiError::RecognitionUnavailable {
            bot: bot.id.clone(),
            uses: uses.join(", "),
            model: model.display().to_string(),
            reason,
        });
    }
    Ok(Some(format!(
        "speech recognition unavailable ({reason}): this call runs without it although the bot uses it for {}; install the model {} with {}",
        uses.join(", "),
        model.display(),
        crate::config::INSTALL_MODEL
    )))
}

/// The bots that lack recognition now, for `GET /api/v1/status` (empty when a model is loaded).
pub(super) fn status_gaps(state: &ApiState) -> Value {
    let model_available = availability(state).is_ok();
    let snap = state.config.current();
    let gaps = crate::config::recognition_gaps(&snap.config, model_available);
    Value::Array(
        gaps.iter()
            .map(|g| {
                serde_json::json!({
                    "bot": g.bot,
                    "needs": g.uses.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                    "dialouts": if g.refused { "refused" } else { "placed-with-warning" },
                })
            })
            .collect(),
    )
}
