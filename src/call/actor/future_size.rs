//! Pins the size of a call's task futures (its actor and its supervisor). Tokio keeps a task's
//! whole future in one allocation for the task's life, and a future is as large as the largest
//! await it may reach; the actor's handlers are boxed so a call keeps only its own state and
//! the wait between events. A new inline await that is large makes this fail: box it
//! (`Box::pin(...).await`) or raise the bound on purpose.

use super::Actor;

fn output_size<A, F>(_: impl FnOnce(A) -> F) -> usize {
    std::mem::size_of::<F>()
}

fn output_size3<A, B, C, F>(_: impl FnOnce(A, B, C) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn a_call_task_future_stays_small() {
    let run = output_size(Actor::run);
    let actor = std::mem::size_of::<Actor>();
    let supervisor = output_size3(crate::call::supervise::supervise);
    println!("actor run future: {run} bytes; Actor: {actor} bytes; supervisor: {supervisor} bytes");
    // What each per-call channel's first block (32 slots) costs.
    println!(
        "channel items: LegEvent {} ActorCmd {} MediaEvent {} PcmFrame {} bytes",
        std::mem::size_of::<crate::sip::LegEvent>(),
        std::mem::size_of::<super::ActorCmd>(),
        std::mem::size_of::<crate::media::MediaEvent>(),
        std::mem::size_of::<crate::media::PcmFrame>(),
    );
    use std::mem::size_of;
    println!(
        "actor fields: machine {} call {} bot {} slot {} media {} amd {} early {} stt {} vad {} ws {} player {} drain {} sdes {} srtp {}",
        size_of::<crate::call::machine::CallMachine>(),
        size_of::<crate::call::AcceptedDialout>(),
        size_of::<crate::config::Bot>(),
        size_of::<super::LegSlot>(),
        size_of::<Option<crate::media::MediaSession>>(),
        size_of::<Option<crate::amd::Detector>>(),
        size_of::<Option<crate::amd::EarlyDetector>>(),
        size_of::<Option<crate::stt::SttSession>>(),
        size_of::<crate::stt::segmenter::Segmenter>(),
        size_of::<Option<crate::call::wsbridge::WsBridge>>(),
        size_of::<Option<crate::tts::Player>>(),
        size_of::<super::voice::DrainTracker>(),
        size_of::<Option<crate::sip::sdes::SdesOffer>>(),
        size_of::<Option<crate::media::srtp::SrtpKeys>>(),
    );
    assert!(run <= actor + 2 * 1024, "actor future is {run} bytes");
    assert!(actor <= 4 * 1024, "Actor is {actor} bytes");
    assert!(supervisor <= 512, "supervisor future is {supervisor} bytes");
}
