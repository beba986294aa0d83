//! The session's delivery rules with a hand-driven "worker": jobs are taken from the queue and
//! completed by the test, frames are pushed one by one (session time = frames × 20 ms).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, sync_channel};

use super::{Job, SttSession};
use crate::stt::engine::SttStats;
use crate::stt::{FRAME_SAMPLES, Recognizer, SttResult, SttSessionConfig};

fn voiced() -> [i16; FRAME_SAMPLES] {
    std::array::from_fn(|i| ((i as f32 * 0.2).sin() * 6000.0) as i16)
}

fn session() -> (
    SttSession,
    Receiver<Job>,
    tokio::sync::mpsc::Receiver<SttResult>,
) {
    let (tx, jobs) = sync_channel(8);
    let mut cfg = SttSessionConfig::default();
    cfg.segmenter.pause_ms = 120;
    cfg.segmenter.final_pause_ms = 260;
    cfg.segmenter.end_ms = 500;
    let mut s = SttSession::new(
        cfg,
        tx,
        Arc::new(SttStats::default()),
        Arc::new(AtomicUsize::new(1)),
        2000,
    );
    let results = s.results().expect("results");
    (s, jobs, results)
}

/// Pushes silence until the session queues a job (bounded: 1 s); returns it.
fn silence_until_job(s: &mut SttSession, jobs: &Receiver<Job>) -> Job {
    for _ in 0..50 {
        if let Ok(j) = jobs.try_recv() {
            return j;
        }
        push(s, 1, false);
    }
    panic!("no job after 1 s of silence");
}

/// Pushes `n` frames of speech (or silence).
fn push(s: &mut SttSession, n: usize, speech: bool) {
    let f = if speech { voiced() } else { [0; FRAME_SAMPLES] };
    for _ in 0..n {
        s.push_frame(&f);
    }
}

#[test]
fn a_sentence_final_speculation_waits_for_the_final_pause() {
    let (mut s, jobs, mut results) = session();
    // 1. 0.5 s of silence, 0.6 s of speech, then silence until the pause queues a job.
    push(&mut s, 25, false);
    push(&mut s, 30, true);
    let job = silence_until_job(&mut s, &jobs);
    // 2. It comes back at once as "Hello?": the pause is shorter than 260 ms, so it is held.
    job.complete(Ok(("Hello?".into(), 0.9)), false);
    assert!(
        results.try_recv().is_err(),
        "delivered before the final pause"
    );
    // 3. Silence goes on: the result is delivered at exactly 260 ms of silence, not before.
    let mut r = None;
    for _ in 0..25 {
        push(&mut s, 1, false);
        if let Ok(x) = results.try_recv() {
            r = Some(x);
            break;
        }
    }
    let r = r.expect("delivered within 0.5 s");
    assert_eq!(
        (r.text.as_str(), r.is_final, r.latency_ms),
        ("Hello?", true, 260)
    );
    // 4. The end of speech (500 ms) adds nothing: one result per utterance.
    push(&mut s, 20, false);
    assert!(results.try_recv().is_err());
    assert!(
        jobs.try_recv().is_err(),
        "no second job for a delivered utterance"
    );
}

#[test]
fn speech_resuming_inside_the_final_pause_keeps_the_phrase_whole() {
    let (mut s, jobs, mut results) = session();
    // 1. "Hello," — a comma pause — the speculation says "Hello?" but is held.
    push(&mut s, 25, false);
    push(&mut s, 30, true);
    silence_until_job(&mut s, &jobs).complete(Ok(("Hello?".into(), 0.9)), false);
    push(&mut s, 2, false);
    // 2. "who is this?" — speech resumes: the held "Hello?" is stale, never delivered.
    push(&mut s, 40, true);
    assert!(results.try_recv().is_err(), "half a phrase was delivered");
    // 3. At the next pause the whole utterance (both parts) is recognised as one.
    let job = silence_until_job(&mut s, &jobs);
    assert!(
        job.audio.len() >= 70 * FRAME_SAMPLES,
        "the job holds the whole phrase: {} samples",
        job.audio.len()
    );
    job.complete(Ok(("Hello, who is this?".into(), 0.9)), false);
    push(&mut s, 15, false);
    let r = results.try_recv().expect("one result");
    assert_eq!(r.text, "Hello, who is this?");
    assert!(results.try_recv().is_err());
}

/// Pushes silence until a result is delivered (bounded: 1 s).
fn silence_until_result(
    s: &mut SttSession,
    results: &mut tokio::sync::mpsc::Receiver<SttResult>,
) -> SttResult {
    for _ in 0..50 {
        push(s, 1, false);
        if let Ok(r) = results.try_recv() {
            return r;
        }
    }
    panic!("no result after 1 s of silence");
}

#[test]
fn the_rest_of_a_phrase_cut_after_a_short_first_part_is_recognised_with_it() {
    let (mut s, jobs, mut results) = session();
    // 1. "Hi," (0.6 s) then a pause long enough for "Hi." to be delivered.
    push(&mut s, 25, false);
    push(&mut s, 30, true);
    silence_until_job(&mut s, &jobs).complete(Ok(("Hi.".into(), 0.9)), false);
    assert_eq!(silence_until_result(&mut s, &mut results).text, "Hi.");
    // 2. "who's calling?" follows within the utterance (before the 500 ms end).
    push(&mut s, 40, true);
    let job = silence_until_job(&mut s, &jobs);
    // 3. The job holds the whole phrase and knows what was delivered of it.
    assert_eq!(job.said.as_deref(), Some("Hi."));
    assert!(
        job.audio.len() >= 70 * FRAME_SAMPLES,
        "whole phrase expected: {} samples",
        job.audio.len()
    );
    // 4. Only the first words are rejoined, once: after the rest is delivered, a third part
    //    is recognised alone (digits read with pauses, rejoined part by part, looped).
    job.complete(Ok(("Who's calling?".into(), 0.9)), false);
    assert_eq!(
        silence_until_result(&mut s, &mut results).text,
        "Who's calling?"
    );
    push(&mut s, 20, true);
    assert_eq!(silence_until_job(&mut s, &jobs).said, None);
}

#[test]
fn the_rest_after_a_long_first_part_is_recognised_alone() {
    let (mut s, jobs, mut results) = session();
    // 1. A 2.4 s sentence (longer than the 2 s rejoin limit), delivered at its pause.
    push(&mut s, 25, false);
    push(&mut s, 120, true);
    silence_until_job(&mut s, &jobs).complete(Ok(("Nobody is available.".into(), 0.9)), false);
    silence_until_result(&mut s, &mut results);
    // 2. The next sentence follows: recognised alone, nothing to cut off.
    push(&mut s, 40, true);
    let job = silence_until_job(&mut s, &jobs);
    assert_eq!(job.said, None);
    assert!(
        job.audio.len() < 60 * FRAME_SAMPLES,
        "only the rest expected: {} samples",
        job.audio.len()
    );
}
