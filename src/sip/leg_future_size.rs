//! Pins the size of a leg task's future. Tokio keeps a task's whole future in one allocation for
//! the task's life, and a future is as large as the largest await it may reach; the leg's big,
//! short-lived steps (locating the trunk, TLS, the INVITE transaction) are boxed so what a leg
//! keeps while it is up is its own state. A new inline await that is large makes this fail:
//! box it (`Box::pin(...).await`) or raise the bound on purpose.

use super::*;

fn output_size<A, B, C, D, F>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn a_leg_task_future_stays_small() {
    let task = output_size(leg_task);
    let state = std::mem::size_of::<LegTask>();
    println!("leg task future: {task} bytes; LegTask: {state} bytes");
    assert!(task <= 3 * 1024, "leg task future is {task} bytes");
}
