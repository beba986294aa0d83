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
    assert!(run <= actor + 2 * 1024, "actor future is {run} bytes");
    assert!(supervisor <= 512, "supervisor future is {supervisor} bytes");
}
