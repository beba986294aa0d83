//! Bounded queues between dialgate's tasks, full: what matters still gets through. A SIP leg
//! flooded with commands still sends its CANCEL or BYE (real SIPp peers on loopback, ports
//! 15300-15303); a text bot's player whose events nobody reads keeps its RTP pace, refuses new
//! prompts instead of queueing without end, and loses no event once they are read.

use crate::common;
use common::legs::{
    after_ringing as next_final, answered, call_sipp, call_to, failed, passed, ringing,
};
use common::sipp::Sipp;

use std::time::Duration;

use dialgate::overflow::{self, Queue};
use dialgate::sip::{FailureKind, LegEvent, LegEvents, OutboundCall, SipEndpoint};
use dialgate::tts::{Player, PlayerConfig, PlayerEvent, Prompt, PromptId};
use tokio::net::UdpSocket;

fn call(uri: &str) -> OutboundCall {
    call_to(uri, "conv-bounded")
}

/// The leg ends (Terminated), SIPp's scenario passed and its log holds `what`; shuts the
/// endpoint down.
async fn terminated_and_sipp_saw(rx: &mut LegEvents, uas: Sipp, ep: SipEndpoint, what: &str) {
    assert!(matches!(next_final(rx).await, LegEvent::Terminated));
    let log = passed(uas).await;
    assert!(log.contains(what), "{log}");
    ep.shutdown();
}

/// Sends far more commands than the leg's queue holds, without yielding (the test runs on one
/// thread, so the leg's task cannot take any meanwhile): the queue fills and the rest are
/// dropped and counted.
fn flood(leg: &dialgate::sip::LegHandle) {
    let before = overflow::count(Queue::LegCommands);
    for _ in 0..500 {
        leg.refresh_session();
    }
    assert!(
        overflow::count(Queue::LegCommands) > before,
        "the flood overflowed the leg's queue"
    );
}

#[tokio::test]
async fn a_flood_of_commands_on_an_answered_leg_does_not_crowd_out_its_bye() {
    // 1. SIPp answers and waits for our BYE.
    let (uas, ep, leg, mut rx) = call_sipp("uas_answer_wait_bye.xml", 15300, call).await;
    answered(&mut rx).await;
    // 2. The leg's queue overflows (refreshes without a session timer send nothing).
    flood(&leg);
    // 3. The hang-up still ends the leg with a BYE: SIPp saw the BYE it waits for.
    leg.hangup();
    terminated_and_sipp_saw(&mut rx, uas, ep, "BYE sip:").await;
}

#[tokio::test]
async fn a_flood_of_commands_on_a_ringing_leg_does_not_crowd_out_its_cancel() {
    // 1. SIPp rings until we CANCEL.
    let (uas, ep, leg, mut rx) = call_sipp("uas_ring_forever.xml", 15302, call).await;
    ringing(&mut rx).await;
    // 2. The queue overflows while ringing; then the call ends the leg.
    flood(&leg);
    leg.cancel();
    // 3. CANCEL went out: the INVITE ends 487, reported as cancelled.
    assert_eq!(
        failed(next_final(&mut rx).await),
        (Some(487), FailureKind::Cancelled)
    );
    terminated_and_sipp_saw(&mut rx, uas, ep, "CANCEL sip:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_whose_events_are_not_read_keeps_its_pace_and_loses_no_event() {
    // 1. A player sending to a plain socket (the relay's bot side); its events are not read.
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = PlayerConfig::new(relay.local_addr().unwrap());
    cfg.silence_between_prompts = true;
    let mut player = Player::start(cfg).await.expect("player starts");
    let mut events = player.take_events().expect("events");
    // 2. Short prompts (one frame each) faster than they play, until the player refuses one:
    //    with nobody reading, its event channel fills (prompts started and finished, those over
    //    its queue refused), it stops taking commands, and its command queue fills.
    let mut accepted: Vec<PromptId> = Vec::new();
    let refused = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match player.enqueue(Prompt::pcm(vec![0i16; 160])) {
                Ok(id) => accepted.push(id),
                Err(e) => return e,
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the player refuses prompts while its events wait unread");
    assert!(refused.to_string().contains("full"), "{refused}");
    assert!(
        accepted.len() >= Player::EVENT_BOUND / 3,
        "{}",
        accepted.len()
    );
    // 3. Meanwhile the RTP kept coming (the sending never waits for the event reader).
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf))
            .await
            .expect("RTP while events wait")
            .expect("recv");
    }
    // 4. Read: every accepted prompt finishes (played, or refused by the full prompt queue),
    //    each exactly once.
    let mut finished: Vec<PromptId> = Vec::new();
    while finished.len() < accepted.len() {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(PlayerEvent::PromptFinished { id, .. })) => finished.push(id),
            Ok(Some(_)) => {}
            other => panic!(
                "events ended after {} of {} prompts: {other:?}",
                finished.len(),
                accepted.len()
            ),
        }
    }
    finished.sort();
    assert_eq!(finished, accepted);
    // 5. Once read, the player takes prompts again.
    assert!(player.enqueue(Prompt::pcm(vec![0i16; 160])).is_ok());
    let _ = player.stop().await;
}
