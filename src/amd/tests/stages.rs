//! DSP, VAD, tone tracking and labels parsing.

use super::super::dsp::{analyse, goertzel_share};
use super::super::labels::{ClipNotes, Label, parse_csv, parse_labels};
use super::super::*;
use super::*;

// ---- DSP ---------------------------------------------------------------------------------

#[test]
fn goertzel_is_one_at_frequency_and_near_zero_off_it() {
    // 1. A 1000 Hz tone over one frame.
    let x: Vec<f32> = Sig::default().tone(1000.0, 0.02, -20.0).0;
    let e: f32 = x.iter().map(|v| v * v).sum();
    // 2. At frequency the share is ~1, 300 Hz away ~0, and it does not depend on level.
    assert!(goertzel_share(&x, 1000.0, e) > 0.98);
    assert!(goertzel_share(&x, 1300.0, e) < 0.01);
    let y: Vec<f32> = x.iter().map(|v| v * 0.01).collect();
    let ey: f32 = y.iter().map(|v| v * v).sum();
    assert!((goertzel_share(&y, 1000.0, ey) - goertzel_share(&x, 1000.0, e)).abs() < 1e-3);
}

#[test]
fn analyse_measures_frequency_purity_and_level() {
    for hz in [437.0, 1000.0, 1371.0, 1777.0, 2100.0] {
        // 1. A pure tone between bins.
        let pcm = Sig::default().tone(hz, 0.02, -20.0).pcm();
        let f = analyse(&pcm);
        // 2. Frequency within 3 Hz, purity ~1, level within 0.5 dB.
        assert!((f.peak_hz - hz).abs() < 3.0, "{hz}: {}", f.peak_hz);
        assert!(f.purity > 0.9, "{hz}: purity {}", f.purity);
        assert!((f.level_dbfs + 20.0).abs() < 0.5, "{hz}: {}", f.level_dbfs);
    }
    // 3. Silence and white noise are not tones.
    assert_eq!(analyse(&[0i16; 160]).level_dbfs, -120.0);
    let mut rng = Rng(1);
    let noise = Sig::default().noise(0.02, -30.0, &mut rng).pcm();
    assert!(analyse(&noise).purity < 0.3);
}

#[test]
fn speech_like_sound_is_not_a_tone_and_fsk_is_split() {
    // 1. Speech-like frames: purity stays well under the tone threshold on most frames.
    let mut rng = Rng(2);
    let pcm = Sig::default().speech(2.0, -20.0, &mut rng).pcm();
    let tonal = pcm
        .chunks_exact(160)
        .filter(|f| analyse(f).purity >= 0.7)
        .count();
    assert!(tonal * 10 < pcm.len() / 160, "{tonal} tonal frames");
    // 2. Alternating 1650/1850 Hz (V.21) puts energy in both bands.
    let fsk = Sig::default()
        .tone(1650.0, 0.01, -20.0)
        .tone(1850.0, 0.01, -20.0)
        .pcm();
    let f = analyse(&fsk);
    assert!(f.fsk_mark > 0.25 && f.fsk_space > 0.25, "{f:?}");
}

// ---- VAD ---------------------------------------------------------------------------------

#[test]
fn noise_floor_is_the_window_minimum() {
    let mut nf = NoiseFloor::new(3);
    assert_eq!(nf.floor_dbfs(), None);
    for v in [-50.0, -40.0, -45.0] {
        nf.push(v);
    }
    assert_eq!(nf.floor_dbfs(), Some(-50.0));
    nf.push(-42.0); // -50 leaves the window
    assert_eq!(nf.floor_dbfs(), Some(-45.0));
}

#[test]
fn vad_floor_adapts_to_a_louder_line() {
    // 1. 1 s of quiet noise, then the line noise rises by 15 dB for 3 s.
    let mut rng = Rng(3);
    let pcm = Sig::default()
        .noise(1.0, -55.0, &mut rng)
        .noise(3.0, -40.0, &mut rng)
        .pcm();
    let mut vad = Vad::new(75, 10.0, 3.0, -60.0);
    let flags: Vec<bool> = pcm
        .chunks_exact(160)
        .map(|f| vad.push(analyse(f).level_dbfs, false))
        .collect();
    // 2. The step is speech for at most one noise window (1.5 s), then noise again.
    assert!(
        flags[..50].iter().all(|s| !s),
        "quiet noise taken for speech"
    );
    assert!(
        flags[50..].iter().any(|s| *s),
        "the 15 dB step should register"
    );
    assert!(flags[50 + 80..].iter().all(|s| !s), "floor did not adapt");
    let floor = vad.floor_dbfs().unwrap_or(0.0);
    assert!((floor + 43.0).abs() < 3.0, "floor {floor}");
    // 3. Speech 20 dB above that noise is detected.
    let sp = Sig::default()
        .speech(1.0, -20.0, &mut rng)
        .plus_noise(-40.0, &mut rng)
        .pcm();
    let n = sp
        .chunks_exact(160)
        .filter(|f| vad.push(analyse(f).level_dbfs, false))
        .count();
    assert!(n > 20, "only {n} speech frames");
}

// ---- Tones -------------------------------------------------------------------------------

#[test]
fn tone_tracker_judges_beep_sit_and_speech_harmonics() {
    let p = AmdParams::default();
    // 1. 20 frames of a steady 1000 Hz tone, then silence: a beep, judged after the chain gap.
    let mut t = ToneTracker::new(&p);
    let mut verdicts = vec![];
    for i in 0..40u64 {
        let tone = (i < 20).then_some((1000.0 + (i % 2) as f32 * 0.5, 0.99));
        verdicts.extend(t.push(i, tone));
    }
    assert!(matches!(verdicts.as_slice(), [ToneVerdict::Beep(b)] if b.end_frame == 20));
    // 2. SIT: 914, 1371, 1777 Hz back to back is SIT, not a beep.
    let mut t = ToneTracker::new(&p);
    let mut verdicts = vec![];
    for i in 0..80u64 {
        let f = match i {
            0..=13 => Some(913.8),
            14..=27 => Some(1370.6),
            28..=46 => Some(1776.7),
            _ => None,
        };
        verdicts.extend(t.push(i, f.map(|f| (f, 0.99))));
    }
    assert!(
        matches!(verdicts.as_slice(), [ToneVerdict::Sit(s)] if s.len() == 3),
        "{verdicts:?}"
    );
    // 3. A wobbling "tone" (a voiced harmonic, +/-6 Hz) is dropped.
    let mut t = ToneTracker::new(&p);
    let mut verdicts = vec![];
    for i in 0..40u64 {
        let tone = (i < 12).then_some((450.0 + if i % 2 == 0 { 6.0 } else { -6.0 }, 0.8));
        verdicts.extend(t.push(i, tone));
    }
    assert!(verdicts.is_empty(), "{verdicts:?}");
}

// ---- Labels ---------------------------------------------------------------------------------

#[test]
fn labels_csv_with_quoted_notes() {
    let text = "file,label,notes\n\
        a.wav,human,\"speech 0.72-1.06s \"\"Yes, hello?\"\"; noise white -42dBFS; len 4.3s\"\n\
        b.wav,machine,\"greeting 0.77-11.60s (10.8s) \"\"x, y\"\"; beep 700Hz 0.42s at 12.49s (asterisk beep.wav); hard: short\"\n\
        c.wav,fax,CED 2100Hz 0.14-3.26s; V21 3.32-5.42s (flags+CSI+DIS)\n\
        d.wav,silence\n";
    let l = parse_labels(text).unwrap();
    assert_eq!(l.len(), 4);
    assert_eq!(l[0].notes.speech, vec![(0.72, 1.06)]);
    assert_eq!(l[0].notes.texts, vec!["Yes, hello?".to_owned()]);
    assert_eq!(l[1].notes.greeting, Some((0.77, 11.60)));
    assert_eq!(l[1].notes.beep, Some((700.0, 0.42, 12.49)));
    assert_eq!(l[1].notes.hard.as_deref(), Some("short"));
    assert_eq!(l[2].notes.fax_onset(), Some(0.14));
    assert_eq!(l[2].notes.tones.len(), 2);
    assert_eq!(l[3].label, Label::Silence);
    assert_eq!(l[3].notes, ClipNotes::default());
    // Errors name the line.
    assert_eq!(
        parse_labels("file,label\nx.wav,robot\n").unwrap_err().line,
        2
    );
    assert!(parse_csv("a,\"b\n").is_err());
    assert!(parse_labels("file,label\n../x.wav,human\n").is_err());
}

#[test]
fn transcript_hold_defers_the_long_greeting_rule() {
    // 1. A 4 s greeting with a 2 s transcript hold: no decision at the 2.5 s mark.
    let mut rng = Rng(14);
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .extend(
            Sig::default()
                .speech(4.0, -18.0, &mut rng)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(3.0, -44.0, &mut rng)
        .pcm();
    let p = AmdParams {
        transcript_hold_ms: 2000,
        ..AmdParams::default()
    };
    // 2. Fed by a recogniser but without a cue, the hold ends in machine, 2 s after the rule
    //    fired.
    let mut d = Detector::new(p.clone());
    d.expect_transcripts();
    let held = decision(
        &pcm.chunks_exact(160)
            .flat_map(|f| d.push_frame(f))
            .collect::<Vec<_>>(),
    );
    assert_eq!(held.result, AmdResult::Machine);
    assert!(held.cause.contains("no transcript cue"), "{held:?}");
    // 3. Without a recogniser the rule decides at once (the hold would only delay it).
    let (evs, _) = run(&pcm, p.clone());
    let direct = decision(&evs);
    assert_eq!(held.at_ms, direct.at_ms + 2000, "{held:?} vs {direct:?}");
    // 4. A person's phrase during the hold decides human.
    let mut d = Detector::new(p);
    d.expect_transcripts();
    let mut got = vec![];
    for (i, f) in pcm.chunks_exact(160).enumerate() {
        got.extend(d.push_frame(f));
        if i == 200 {
            got.extend(d.push_transcript("good afternoon, Parker Dental, how can I help you"));
        }
    }
    let dec = decision(&got);
    assert_eq!(dec.result, AmdResult::Human, "{dec:?}");
    assert_eq!(dec.at_ms, 201 * 20);
}
