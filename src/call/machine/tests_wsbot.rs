//! A WebSocket bot on a simulated clock: the session gates the call, refusal means nobody is
//! called, a socket lost for good ends the call `bot-disconnected`, the session is told the end.

use super::tests::Sim;
use super::*;

fn ws(ac_mode: bool) -> MachineConfig {
    MachineConfig {
        ws_bot: true,
        bot_api: true,
        text_bot: ac_mode,
        ..MachineConfig::default()
    }
}

/// Start, the session accepted, 180, 200 OK, the socket's media side ready.
fn connected(s: &mut Sim) {
    let st = s.ev(Input::Start);
    assert_eq!(st.acts, vec![Output::OpenBotConversation]);
    let st = s.at(50).ev(Input::BotSessionOpened { expires: None });
    assert_eq!(st.acts, vec![Output::SendCarrierInvite]);
    s.at(300).ev(Input::CarrierProvisional {
        code: 180,
        has_sdp: false,
    });
    let st = s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert!(st.acts.contains(&Output::SendBotInvite), "{st:?}");
    let st = s.at(5_010).ev(Input::BotAnswered);
    assert!(
        st.acts.contains(&Output::BotEvent(BotEvent::Start)),
        "{st:?}"
    );
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn the_person_is_called_only_after_the_session_is_accepted() {
    // 1. Start: only the session is opened, the BotOpen bound armed, no INVITE.
    let mut s = Sim::new(ws(true));
    let st = s.ev(Input::Start);
    assert_eq!(st.acts, vec![Output::OpenBotConversation]);
    assert!(s.armed(TimerKind::BotOpen).is_some());
    // 2. session.accepted: the INVITE goes out, the bound is disarmed.
    let st = s.at(80).ev(Input::BotSessionOpened { expires: None });
    assert_eq!(st.acts, vec![Output::SendCarrierInvite]);
    assert_eq!(s.armed(TimerKind::BotOpen), None);
}

#[test]
fn session_error_fails_the_call_without_calling_the_person() {
    // 1. Start, then session.error.
    let mut s = Sim::new(ws(true));
    s.ev(Input::Start);
    let st = s.at(30).ev(Input::BotUnreachable {
        reason: "session.error: busy".into(),
    });
    // 2. No INVITE; failed/error naming the bot's answer; the session is told the end.
    assert!(!st.acts.contains(&Output::SendCarrierInvite));
    assert!(
        st.acts
            .iter()
            .any(|a| matches!(a, Output::BotDisconnect { .. }))
    );
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::Error)
    );
    assert!(r.reason.contains("session.error") && r.reason.contains("not called"));
}

#[test]
fn a_socket_lost_for_good_ends_the_call_bot_disconnected() {
    // 1. A connected call.
    let mut s = Sim::new(ws(false));
    connected(&mut s);
    // 2. The socket is gone after its resumes: BYE to the person, no BYE to a bot leg.
    let st = s.at(9_000).ev(Input::BotSocketLost {
        reason: "the bot closed the connection".into(),
    });
    assert!(st.acts.contains(&Output::ByeCarrier));
    assert!(!st.acts.contains(&Output::ByeBot));
    // 3. The session hears the end with the same code; one terminal, completed/bot-disconnected.
    assert!(st.acts.iter().any(|a| matches!(
        a,
        Output::BotDisconnect {
            reason_code: ReasonCode::BotDisconnected,
            ..
        }
    )));
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::BotDisconnected)
    );
    // 4. A late loss is ignored.
    s.assert_ignores(Input::BotSocketLost {
        reason: "again".into(),
    });
}

#[test]
fn text_in_ac_mode_is_spoken_and_the_person_hanging_up_ends_the_session() {
    // 1. AC mode: a message activity becomes a prompt.
    let mut s = Sim::new(ws(true));
    connected(&mut s);
    let v = serde_json::json!({"type": "message", "text": "hello there"});
    let st = s.ev(Input::BotActivity(crate::core::activity::parse(&v)));
    assert!(
        st.acts
            .contains(&Output::Play(Prompt::Speak("hello there".into())))
    );
    // 2. The person hangs up: the session gets session.end with client-disconnected.
    let st = s.at(12_000).ev(Input::CarrierBye);
    assert!(st.acts.iter().any(|a| matches!(
        a,
        Output::BotDisconnect {
            reason_code: ReasonCode::ClientDisconnected,
            ..
        }
    )));
    assert_eq!(
        st.terminal.map(|r| r.reason_code),
        Some(ReasonCode::ClientDisconnected)
    );
}
