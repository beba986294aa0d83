//! The SIP layer's view of its legs' dialogs, against real SIPp peers on loopback
//! (ports 16900-16909):
//! - the dialog state journaled for a leg: cancellable once its INVITE is sent, up with the
//!   peer's tag and Contact once its 2xx is ACKed, forgotten when the leg is gone;
//! - a 200 OK for a dialog nobody here owns (a callee answering an INVITE of a process that
//!   crashed) is ACKed and ended with BYE.

use crate::common;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::legs::{self, endpoint};
use common::peers::Sipp;
use common::sipp::Sipp as SippUas;
use dialgate::core::{LegDialog, LegDialogState};
use dialgate::sip::{DialogJournal, LegEvent, OutboundCall, Transport};

/// A journal that remembers what it was told, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<Result<LegDialog, String>>>);

impl DialogJournal for Recorded {
    fn save(&self, leg: LegDialog) {
        self.0.lock().unwrap().push(Ok(leg));
    }
    fn forget(&self, call_id: &str) {
        self.0.lock().unwrap().push(Err(call_id.to_owned()));
    }
}

#[tokio::test]
async fn a_legs_dialog_state_is_journaled_from_invite_to_bye() {
    // 1. A SIPp callee that answers and waits for our BYE; an endpoint with a journal.
    let uas = SippUas::uas("uas_answer_wait_bye.xml", 16900);
    let ep = endpoint(None).await;
    let journal = Arc::new(Recorded::default());
    ep.set_journal(journal.clone());
    // 2. The leg is placed and answered.
    let (leg, mut rx) = ep
        .place_call(OutboundCall {
            request_uri: "sip:callee@127.0.0.1:16900".into(),
            from_user: "+15550001111".into(),
            from_host: "127.0.0.1".into(),
            sdp_offer: legs::offer(20000, 1),
            conversation_id: "conv-journal".into(),
            ..Default::default()
        })
        .await
        .expect("leg placed");
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("leg event in time")
            .expect("leg open");
        if matches!(ev, LegEvent::Answered { .. }) {
            break;
        }
        assert!(matches!(ev, LegEvent::Provisional { .. }), "{ev:?}");
    }
    // 3. The journal has the leg cancellable (the INVITE as sent), then up (the ACK as sent).
    let seen = journal.0.lock().unwrap().clone();
    let saved: Vec<&LegDialog> = seen.iter().filter_map(|e| e.as_ref().ok()).collect();
    assert!(
        seen.iter().all(|e| e.is_ok()),
        "nothing forgotten yet: {seen:?}"
    );
    let calling = saved.first().expect("INVITE journaled");
    assert_eq!(calling.state, LegDialogState::Calling);
    assert_eq!(calling.call_id, leg.call_id());
    assert_eq!(calling.conversation_id, "conv-journal");
    assert_eq!(calling.remote_tag, None);
    assert_eq!(calling.destination, "127.0.0.1:16900");
    assert!(
        calling
            .request
            .starts_with("INVITE sip:callee@127.0.0.1:16900")
    );
    assert!(calling.local_contact.is_some());
    let up = saved.last().expect("ACK journaled");
    assert_eq!(up.state, LegDialogState::Up);
    assert_eq!(up.local_tag, calling.local_tag);
    assert!(
        up.remote_tag
            .as_deref()
            .is_some_and(|t| t.contains("SIPpTag01"))
    );
    assert_eq!(up.cseq, calling.cseq);
    assert!(up.request.starts_with("ACK "), "{}", up.request);
    // 4. We hang up: after the BYE the leg is forgotten.
    leg.hangup();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("leg ends in time")
    {
        if matches!(ev, LegEvent::Terminated) {
            break;
        }
    }
    let last = journal.0.lock().unwrap().last().cloned();
    assert_eq!(last, Some(Err(leg.call_id().to_owned())));
    assert_eq!(uas.finish().await.0, 0, "SIPp saw INVITE, ACK, BYE");
    ep.shutdown();
}

#[tokio::test]
async fn a_200_for_an_unknown_dialog_is_acked_and_ended_with_bye() {
    // 1. dialgate's endpoint, knowing no dialog at all.
    let ep = endpoint(None).await;
    let addr = ep.local_addr(Transport::Udp).expect("udp bound");
    // 2. A callee sends a 200 OK (retransmitted until ACKed) for an INVITE this process never
    //    sent, then expects the ACK and a BYE, which it answers.
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/orphan_late_200.xml");
    let remote = addr.to_string();
    let callee = Sipp::spawn(
        &scenario,
        &[
            &remote,
            "-p",
            "16902",
            "-m",
            "1",
            "-timeout",
            "20s",
            "-timeout_error",
        ],
    )
    .expect("sipp starts");
    let out = callee
        .wait(Duration::from_secs(30))
        .await
        .expect("sipp ends");
    // 3. SIPp got its ACK and BYE: the scenario passed.
    assert_eq!(
        out.status.code(),
        Some(0),
        "errors:\n{}\nmessages:\n{}",
        out.errors,
        out.messages
    );
    let acks = out
        .messages
        .matches("ACK sip:callee@127.0.0.1:16902")
        .count();
    let byes = out
        .messages
        .matches("BYE sip:callee@127.0.0.1:16902")
        .count();
    assert!(acks >= 1, "{}", out.messages);
    assert_eq!(byes, 1, "one BYE: {}", out.messages);
    // 4. Nothing of it stays in rsipstack.
    assert_eq!(ep.dialog_count(), 0);
    ep.shutdown();
}
