//! What must survive a crash of dialgate to end a SIP leg it left behind: the leg's dialog
//! state, as the SIP layer saw it on the wire and the store keeps it.

use super::Transport;

/// How far a leg's dialog got, which decides how a restart ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegDialogState {
    /// INVITE sent, no final answer yet: a CANCEL ends it.
    Calling,
    /// 2xx received and ACKed: a BYE ends it.
    Up,
}

impl LegDialogState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            LegDialogState::Calling => "calling",
            LegDialogState::Up => "up",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<LegDialogState> {
        match s {
            "calling" => Some(LegDialogState::Calling),
            "up" => Some(LegDialogState::Up),
            _ => None,
        }
    }
}

/// One outbound leg's dialog state (RFC 3261 §12): enough to send a CANCEL while it is
/// `Calling` or a BYE once it is `Up`, from a process that never saw the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegDialog {
    /// The leg's Call-ID (unique per leg).
    pub call_id: String,
    /// The call the leg belongs to.
    pub conversation_id: String,
    pub state: LegDialogState,
    /// Our From tag.
    pub local_tag: String,
    /// The peer's To tag (`None` while calling).
    pub remote_tag: Option<String>,
    /// CSeq number of the last request we sent that matters (the INVITE, or the ACK).
    pub cseq: u32,
    /// Request-URI of the next request: the INVITE's while calling, the peer's Contact once up.
    pub remote_target: String,
    /// Route headers the next request carries, in order.
    pub route_set: Vec<String>,
    pub transport: Transport,
    /// `host:port` the last request was sent to.
    pub destination: String,
    /// Our Contact in the INVITE.
    pub local_contact: Option<String>,
    /// The request as sent (the INVITE while calling, the ACK once up): the CANCEL copies the
    /// INVITE's Via, From, To and CSeq number (§9.1); the BYE is built from the ACK.
    pub request: String,
}
