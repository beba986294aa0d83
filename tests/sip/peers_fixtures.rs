//! Checks the audio fixtures the peers play (tests/fixtures/audio, conf/greeting.wav) and the
//! audio helpers used to judge recordings.

use crate::common;
use common::audio::{clip_similarity, read_wav, rms_dbfs, tone_share};
use common::peers::{fixture_audio, repo_root};

const ALL: [&str; 5] = [
    "hello.wav",
    "machine.wav",
    "fax.wav",
    "silence.wav",
    "noise.wav",
];

#[test]
fn fixtures_are_small_8khz_mono_16bit() {
    // 1. Every fixture (and the demo greeting) is 8 kHz mono 16-bit PCM and under 250 KB.
    let mut paths: Vec<_> = ALL.iter().map(|n| fixture_audio(n)).collect();
    paths.push(repo_root().join("conf/greeting.wav"));
    for p in &paths {
        let spec = hound::WavReader::open(p).unwrap().spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16),
            "{}",
            p.display()
        );
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert!(
            std::fs::metadata(p).unwrap().len() < 250_000,
            "{}",
            p.display()
        );
    }
}

#[test]
fn fixtures_hold_what_their_names_say() {
    let load = |n: &str| read_wav(&fixture_audio(n)).unwrap().1;
    let sec = |s: f64| (s * 8000.0) as usize;

    // 1. fax.wav: 3 s of 2100 Hz CED, then silence.
    let fax = load("fax.wav");
    assert!(tone_share(&fax[..sec(3.0)], 8000, 2100.0) > 0.9);
    assert_eq!(rms_dbfs(&fax[sec(3.05)..]), f64::NEG_INFINITY);

    // 2. machine.wav: a spoken greeting (no dominant tone), then a 1000 Hz beep before the 1.5 s tail.
    let machine = load("machine.wav");
    let n = machine.len();
    let beep = &machine[n - sec(1.95)..n - sec(1.55)];
    assert!(tone_share(beep, 8000, 1000.0) > 0.9);
    assert!(tone_share(&machine[..sec(5.0)], 8000, 1000.0) < 0.1);
    assert!(rms_dbfs(&machine[..sec(5.0)]) > -30.0);

    // 3. hello.wav: speech, loud enough, no tone.
    let hello = load("hello.wav");
    assert!(rms_dbfs(&hello) > -30.0 && tone_share(&hello, 8000, 1000.0) < 0.1);

    // 4. silence.wav is digital silence; noise.wav is quiet (about -40 dBFS) but not silent.
    assert_eq!(rms_dbfs(&load("silence.wav")), f64::NEG_INFINITY);
    let noise = rms_dbfs(&load("noise.wav"));
    assert!((-46.0..-35.0).contains(&noise), "noise at {noise} dBFS");
}

#[test]
fn clip_similarity_tells_a_clip_from_another() {
    // 1. A clip found inside a recording that starts 0.25 s later, with silence before.
    let (_, hello) = read_wav(&fixture_audio("hello.wav")).unwrap();
    let mut rec = vec![0i16; 2000];
    rec.extend_from_slice(&hello);
    let al = clip_similarity(&hello, &rec, 8000).unwrap();
    assert!(al.corr > 0.99 && al.lag == 2000, "{al:?}");

    // 2. A 20 ms slip in the middle (a dropped frame) still matches.
    let mut slipped = rec.clone();
    slipped.drain(8000..8160);
    assert!(clip_similarity(&hello, &slipped, 8000).unwrap().corr > 0.95);

    // 3. Another clip does not.
    let (_, greeting) = read_wav(&repo_root().join("conf/greeting.wav")).unwrap();
    assert!(clip_similarity(&hello, &greeting, 8000).unwrap().corr < 0.5);
}
