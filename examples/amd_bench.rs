//! CPU cost of the detector: frames per second on one core (runs each frame through a fresh
//! detector's analysis path without early exit).
use dialgate::amd::{AmdParams, Detector};

fn main() {
    let mut x = 1u64;
    let frame: Vec<i16> = (0..160)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((x >> 50) as i16) - 8192
        })
        .collect();
    let n = 200_000u64;
    let t = std::time::Instant::now();
    let mut events = 0;
    // max_analysis/no_speech raised so the detector keeps analysing every frame.
    let p = AmdParams {
        no_speech_timeout_ms: u32::MAX / 2,
        max_analysis_ms: u32::MAX / 2,
        ..AmdParams::default()
    };
    let mut d = Detector::new(p);
    for _ in 0..n {
        events += d.push_frame(&frame).len();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} frames in {s:.2} s: {:.1} us/frame, {:.0} concurrent calls per core ({events} events)",
        s * 1e6 / n as f64,
        n as f64 / s / 50.0
    );
}
