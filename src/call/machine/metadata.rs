//! `sendMetaData`: the bot's metadata for the person's leg. Forwarded as an in-dialog SIP INFO
//! (`Content-Type: application/json`, the body the activity's `value`) only when the bot's
//! config enables it (`outbound.send_metadata_info`) and the person's leg is up; otherwise a
//! line on the timeline records it, and nothing is sent.

use super::core::{CallMachine, Leg};
use super::types::Output;
use serde_json::Value;

/// The most of a value written on the timeline (a bot must not flood the record).
const NOTE_MAX: usize = 200;

impl CallMachine {
    pub(super) fn on_send_metadata(&mut self, value: Value) {
        let body = value.to_string();
        let shown = shorten(&body);
        let (kind, note) = if !self.cfg.send_metadata_info {
            (
                "activity",
                format!(
                    "sendMetaData {shown} recorded, not sent (outbound.send_metadata_info is off)"
                ),
            )
        } else if self.carrier != Leg::Up {
            (
                "activity",
                format!("sendMetaData {shown} not sent: the person's leg is not answered"),
            )
        } else {
            self.emit(Output::CarrierInfo {
                content_type: "application/json",
                body,
            });
            ("info", format!("sendMetaData {shown} sent as SIP INFO"))
        };
        self.emit(Output::Timeline { kind, note });
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= NOTE_MAX {
        return s.to_owned();
    }
    let mut end = NOTE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::super::tests::Sim;
    use super::super::*;
    use crate::core::activity::parse;
    use serde_json::json;

    fn metadata() -> Input {
        Input::BotActivity(parse(&json!({"type": "event", "name": "sendMetaData",
            "value": {"orderId": "A-1"}})))
    }

    #[test]
    fn metadata_goes_to_the_person_only_when_the_bot_enables_it() {
        // 1. Off (the default): recorded on the timeline, nothing sent.
        let mut s = Sim::new(MachineConfig::default());
        s.connected();
        let st = s.at(6_000).ev(metadata());
        assert!(matches!(&st.acts[..], [Output::Timeline { note, .. }]
            if note.contains(r#"{"orderId":"A-1"}"#) && note.contains("not sent")));
        // 2. On: an INFO with the JSON value on the carrier leg, and a timeline line.
        let mut s = Sim::new(MachineConfig {
            send_metadata_info: true,
            ..MachineConfig::default()
        });
        s.ringing();
        // While ringing there is no dialog to send it on.
        let st = s.at(1_000).ev(metadata());
        assert!(
            !st.acts
                .iter()
                .any(|a| matches!(a, Output::CarrierInfo { .. }))
        );
        s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
        let st = s.at(6_000).ev(metadata());
        assert_eq!(
            st.acts[0],
            Output::CarrierInfo {
                content_type: "application/json",
                body: r#"{"orderId":"A-1"}"#.into()
            }
        );
        // 3. After the end: ignored like every activity.
        s.ev(Input::CarrierBye);
        assert!(s.ev(metadata()).acts.is_empty());
    }

    #[test]
    fn a_long_value_is_shortened_on_the_timeline() {
        let long = "x".repeat(1000);
        assert!(super::shorten(&long).chars().count() <= super::NOTE_MAX + 1);
    }
}
