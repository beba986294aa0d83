//! Early media before the answer, on the simulated clock.

use super::tests::Sim;
use super::*;

fn early_183() -> Input {
    Input::CarrierProvisional {
        code: 183,
        has_sdp: true,
    }
}

#[test]
fn a_sit_in_early_media_fails_the_attempt_at_once_as_rejected() {
    let mut s = Sim::new(MachineConfig::default());
    s.ev(Input::Start);
    // 1. 183 with SDP: the relay listens before the answer (once).
    let st = s.at(300).ev(early_183());
    assert_eq!(st.acts, vec![Output::StartEarlyMedia]);
    assert_eq!(s.m.state(), CallState::Ringing);
    assert!(s.at(500).ev(early_183()).acts.is_empty());
    // 2. SIT tones heard 2 s later: CANCEL, stop the relay; the 487 completes it.
    let st = s.at(2_300).ev(Input::EarlyIntercept {
        sit: true,
        heard: "SIT tones 914/1371/1777 Hz".into(),
    });
    assert_eq!(st.acts[1..], [Output::CancelCarrier, Output::StopMedia]);
    assert!(st.terminal.is_none());
    let st = s.at(2_400).ev(tests::failed(
        Some(487),
        FailureKind::Response,
        "Request Terminated",
    ));
    // 3. failed / rejected, the reason names the intercept and what was heard.
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::Rejected)
    );
    assert!(r.reason.contains("number not in service"), "{}", r.reason);
    assert!(
        r.reason.contains("SIT tones 914/1371/1777 Hz"),
        "{}",
        r.reason
    );
}

#[test]
fn an_intercept_announcement_names_the_words_and_the_answer_takes_over_early_media() {
    let mut s = Sim::new(MachineConfig::default());
    s.ev(Input::Start);
    s.at(300).ev(early_183());
    // 1. Words are an intercept too.
    let st = s.at(3_000).ev(Input::EarlyIntercept {
        sit: false,
        heard: "the number you have dialed is not in service".into(),
    });
    assert_eq!(st.acts[1], Output::CancelCarrier);
    let r = s
        .at(3_100)
        .ev(tests::failed(Some(487), FailureKind::Response, ""))
        .terminal
        .expect("terminal");
    assert!(r.reason.contains("announcement"), "{}", r.reason);
    assert!(r.reason.contains("is not in service"), "{}", r.reason);
    // 2. Another call: plain ringback, then the answer: media as always; an intercept after
    //    the answer is ignored (AMD's business then).
    let mut s = Sim::new(MachineConfig::default());
    s.ev(Input::Start);
    s.at(300).ev(early_183());
    let st = s.at(4_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(st.acts[0], Output::StartMedia);
    s.assert_ignores(Input::EarlyIntercept {
        sit: true,
        heard: String::new(),
    });
    // 3. The end stops the relay once.
    let st = s.at(9_000).ev(Input::CarrierBye);
    assert_eq!(
        st.acts.iter().filter(|a| **a == Output::StopMedia).count(),
        1
    );
}
