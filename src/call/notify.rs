//! The dialer's status notification body (DESIGN.md §2).

use crate::store::{now_ms, rfc3339};
use serde_json::{Value, json};

/// What one notification says.
#[derive(Debug, Clone)]
pub struct StatusNote<'a> {
    pub conversation_id: &'a str,
    /// `answered`, `failed` or `completed`.
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub reason_code: Option<&'a str>,
    pub sip_code: Option<u16>,
    /// `human`, `machine`, `fax` or `unknown`, when detection ran.
    pub machine_detection: Option<&'a str>,
    /// Seconds from answer to end, for `completed`.
    pub duration_seconds: Option<u64>,
}

impl StatusNote<'_> {
    /// The JSON body sent to `notifyUrl`.
    pub fn body(&self) -> Value {
        json!({
            "conversationId": self.conversation_id,
            "status": self.status,
            "reason": self.reason,
            "reasonCode": self.reason_code,
            "sipCode": self.sip_code,
            "machineDetection": self.machine_detection,
            "timestamp": rfc3339(now_ms()),
            "durationSeconds": self.duration_seconds,
        })
    }
}
