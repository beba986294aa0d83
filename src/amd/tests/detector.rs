//! Whole calls on generated signals, transcripts, parameters and results.

use super::super::transcript::normalise;
use super::super::*;
use super::*;

// ---- Detector on generated calls -----------------------------------------------------------

#[test]
fn line_noise_only_is_unknown_not_human() {
    let mut rng = Rng(4);
    let pcm = Sig::default().noise(10.0, -42.0, &mut rng).pcm();
    let (evs, d) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Unknown);
    assert_eq!(dec.at_ms, 5000);
    assert!(d.is_done());
    // Digital silence too.
    let (evs, _) = run(&vec![0i16; 8000 * 8], AmdParams::default());
    assert_eq!(decision(&evs).result, AmdResult::Unknown);
}

#[test]
fn short_greeting_then_silence_is_human_at_any_level() {
    for (level, noise) in [(-30.0, -50.0), (-20.0, -42.0), (-8.0, -40.0)] {
        // 1. 0.8 s of quiet, "Hello?" for 0.6 s, then 4 s of line noise.
        let mut rng = Rng(5);
        let pcm = Sig::default()
            .noise(0.8, noise, &mut rng)
            .extend(
                Sig::default()
                    .speech(0.6, level, &mut rng)
                    .plus_noise(noise, &mut rng)
                    .0,
            )
            .noise(4.0, noise, &mut rng)
            .pcm();
        let (evs, _) = run(&pcm, AmdParams::default());
        let dec = decision(&evs);
        // 2. Human, about 1.2 s after the greeting ends (1.4 s), well within 2 s.
        assert_eq!(dec.result, AmdResult::Human, "level {level}: {dec:?}");
        assert!(
            dec.at_ms >= 2400 && dec.at_ms <= 3000,
            "level {level}: {dec:?}"
        );
        assert!(beeps(&evs).is_empty());
    }
}

#[test]
fn long_greeting_is_machine_and_the_beep_is_reported() {
    // 1. 0.5 s quiet, 5 s greeting, 0.4 s pause, 0.5 s beep at 850 Hz, then quiet.
    let mut rng = Rng(6);
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .extend(
            Sig::default()
                .speech(5.0, -18.0, &mut rng)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(0.4, -44.0, &mut rng)
        .extend(
            Sig::default()
                .tone(850.0, 0.5, -12.0)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(2.0, -44.0, &mut rng)
        .pcm();
    let (evs, d) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    // 2. Machine once the greeting passed 2.5 s (onset ~0.5 s), long before the beep.
    assert_eq!(dec.result, AmdResult::Machine, "{dec:?}");
    assert!(dec.cause.starts_with("long greeting"), "{dec:?}");
    assert!(dec.at_ms < 3600, "{dec:?}");
    // 3. Exactly one beep notice at the beep's end (5.9 + 0.5 = 6.4 s), 850 Hz.
    let b = beeps(&evs);
    assert_eq!(b.len(), 1, "{evs:?}");
    assert!((b[0].0 as i64 - 6400).abs() <= 60, "{b:?}");
    assert!((b[0].1 - 850.0).abs() < 3.0, "{b:?}");
    assert!(d.is_done());
}

#[test]
fn beep_listening_stops_after_the_timeout() {
    // 1. A long greeting and no beep, with a 2 s beep wait.
    let mut rng = Rng(7);
    let pcm = Sig::default()
        .extend(
            Sig::default()
                .speech(4.0, -18.0, &mut rng)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(3.0, -44.0, &mut rng)
        .pcm();
    let p = AmdParams {
        beep_timeout_ms: 2000,
        ..AmdParams::default()
    };
    let mut d = Detector::new(p);
    let mut decided_at = None;
    for (i, f) in pcm.chunks_exact(160).enumerate() {
        if !d.push_frame(f).is_empty() && decided_at.is_none() {
            decided_at = Some(i as u64 + 1);
        }
        // 2. Done exactly beep_timeout after the decision, not before.
        if let Some(at) = decided_at {
            assert_eq!(d.is_done(), i as u64 + 1 >= at + 100, "frame {i}");
        }
    }
    assert!(decided_at.is_some());
}

#[test]
fn beep_without_greeting_is_machine() {
    let mut rng = Rng(8);
    let pcm = Sig::default()
        .noise(1.0, -44.0, &mut rng)
        .extend(
            Sig::default()
                .tone(1400.0, 0.3, -15.0)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(2.0, -44.0, &mut rng)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Machine);
    assert!(dec.cause.contains("without greeting"), "{dec:?}");
    assert_eq!(beeps(&evs).len(), 1);
}

#[test]
fn ced_and_ansam_are_fax_within_a_second() {
    // 1. Plain CED at -8 dBFS from 0.3 s.
    let mut rng = Rng(9);
    let pcm = Sig::default()
        .noise(0.3, -42.0, &mut rng)
        .extend(
            Sig::default()
                .tone(2100.0, 3.3, -8.0)
                .plus_noise(-42.0, &mut rng)
                .0,
        )
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Fax, "{dec:?}");
    assert!(dec.cause.starts_with("CED"), "{dec:?}");
    assert!(dec.at_ms <= 300 + 1000, "{dec:?}");
    // 2. ANSam: 2100 Hz, 15 Hz amplitude modulation (20 %), phase reversal every 450 ms.
    let a = amp(-12.0) * std::f32::consts::SQRT_2;
    let ansam: Vec<f32> = (0..(3.0 * FS) as usize)
        .map(|i| {
            let t = i as f32 / FS;
            let rev = if ((t / 0.45) as u32) % 2 == 1 {
                std::f32::consts::PI
            } else {
                0.0
            };
            let env = 1.0 + 0.2 * (2.0 * std::f32::consts::PI * 15.0 * t).sin();
            a * env * (2.0 * std::f32::consts::PI * 2100.0 * t + rev).sin()
        })
        .collect();
    let pcm = Sig::default()
        .noise(0.2, -42.0, &mut rng)
        .extend(Sig(ansam).plus_noise(-42.0, &mut rng).0)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Fax, "{dec:?}");
    assert!(dec.cause.starts_with("CED"), "{dec:?}");
    assert!(dec.at_ms <= 200 + 1000, "{dec:?}");
}

#[test]
fn tone_from_the_first_frame_is_still_found() {
    // 1. CED starts with the very first sample: no noise frame precedes it to set a floor.
    let mut rng = Rng(15);
    let pcm = Sig::default()
        .tone(2100.0, 3.0, -10.0)
        .plus_noise(-42.0, &mut rng)
        .noise(1.0, -42.0, &mut rng)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    // 2. Fax within a second.
    assert_eq!(dec.result, AmdResult::Fax, "{dec:?}");
    assert!(dec.at_ms <= 1000, "{dec:?}");
}

#[test]
fn cng_burst_is_fax() {
    let mut rng = Rng(10);
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .extend(
            Sig::default()
                .tone(1100.0, 0.5, -14.0)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(3.0, -44.0, &mut rng)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Fax, "{dec:?}");
    assert!(dec.cause.starts_with("CNG"), "{dec:?}");
    assert!(dec.at_ms <= 500 + 1500, "{dec:?}");
}

#[test]
fn v21_fsk_alone_is_fax() {
    // 1. HDLC flags (0x7E) then pseudo-random bits, 300 bit/s, mark 1650 / space 1850 Hz,
    //    continuous phase, no CED before it.
    let mut rng = Rng(11);
    let mut bits = vec![];
    for _ in 0..40 {
        bits.extend([0, 1, 1, 1, 1, 1, 1, 0]);
    }
    bits.extend((0..300).map(|_| u8::from(rng.uniform() > 0.5)));
    let a = amp(-14.0) * std::f32::consts::SQRT_2;
    let mut phase = 0f32;
    let mut fsk = vec![];
    for b in bits {
        let f = if b == 1 { 1650.0 } else { 1850.0 };
        for _ in 0..(FS / 300.0) as usize {
            phase += 2.0 * std::f32::consts::PI * f / FS;
            fsk.push(a * phase.sin());
        }
    }
    let pcm = Sig::default()
        .noise(0.5, -42.0, &mut rng)
        .extend(Sig(fsk).plus_noise(-42.0, &mut rng).0)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    // 2. Fax from the FSK itself, within 1.5 s of its onset.
    assert_eq!(dec.result, AmdResult::Fax, "{dec:?}");
    assert!(dec.cause.starts_with("V.21"), "{dec:?}");
    assert!(dec.at_ms <= 500 + 1500, "{dec:?}");
}

#[test]
fn sit_tones_are_machine_not_beep_or_fax() {
    // 1. SIT (913.8 / 1370.6 / 1776.7 Hz, 276/276/380 ms) then an announcement.
    let mut rng = Rng(12);
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .extend(
            Sig::default()
                .tone(913.8, 0.276, -14.0)
                .tone(1370.6, 0.276, -14.0)
                .tone(1776.7, 0.380, -14.0)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .noise(0.3, -44.0, &mut rng)
        .extend(
            Sig::default()
                .speech(4.0, -18.0, &mut rng)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    let dec = decision(&evs);
    // 2. Machine because of the SIT, decided right after it, and no beep reported.
    assert_eq!(dec.result, AmdResult::Machine, "{dec:?}");
    assert!(dec.cause.starts_with("SIT"), "{dec:?}");
    assert!(dec.at_ms < 2000, "{dec:?}");
    assert!(beeps(&evs).is_empty(), "{evs:?}");
    // 3. The same SIT with 150 ms gaps between the segments is still SIT.
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .tone(913.8, 0.276, -14.0)
        .noise(0.15, -44.0, &mut rng)
        .tone(1370.6, 0.276, -14.0)
        .noise(0.15, -44.0, &mut rng)
        .tone(1776.7, 0.380, -14.0)
        .noise(3.0, -44.0, &mut rng)
        .pcm();
    let (evs, _) = run(&pcm, AmdParams::default());
    assert!(decision(&evs).cause.starts_with("SIT"), "{evs:?}");
    assert!(beeps(&evs).is_empty(), "{evs:?}");
}

#[test]
fn detector_is_deterministic() {
    let mut rng = Rng(13);
    let pcm = Sig::default()
        .noise(0.5, -44.0, &mut rng)
        .extend(
            Sig::default()
                .speech(3.0, -18.0, &mut rng)
                .plus_noise(-44.0, &mut rng)
                .0,
        )
        .tone(1000.0, 0.4, -12.0)
        .noise(1.0, -44.0, &mut rng)
        .pcm();
    let (a, _) = run(&pcm, AmdParams::default());
    let (b, _) = run(&pcm, AmdParams::default());
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

// ---- Transcript ----------------------------------------------------------------------------

#[test]
fn transcript_phrases_decide() {
    assert_eq!(
        normalise("Please, LEAVE a   message!"),
        " please leave a message "
    );
    assert_eq!(normalise("can\u{2019}t"), " can't ");
    // 1. A machine phrase decides machine at the current time.
    let mut d = Detector::new(AmdParams::default());
    for _ in 0..50 {
        d.push_frame(&[0i16; 160]);
    }
    let evs = d.push_transcript("Hi, you've reached Sam, please leave a message");
    let dec = decision(&evs);
    assert_eq!(dec.result, AmdResult::Machine);
    assert_eq!(dec.at_ms, 1000);
    // 2. Later text does not decide again.
    assert!(d.push_transcript("who's calling").is_empty());
    // 3. A person's phrase decides human; plain "Hello" decides nothing.
    let mut d = Detector::new(AmdParams::default());
    assert!(d.push_transcript("Hello").is_empty());
    assert_eq!(
        decision(&d.push_transcript("who's calling?")).result,
        AmdResult::Human
    );
    // 4. "message" alone is not a machine phrase; many words are.
    let mut d = Detector::new(AmdParams::default());
    assert!(d.push_transcript("got your message").is_empty());
    let dec = decision(&d.push_transcript(
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
    ));
    assert!(dec.cause.contains("words"), "{dec:?}");
}

// ---- Params and results ---------------------------------------------------------------------

#[test]
fn params_serde_defaults_and_unknown_fields() {
    let p: AmdParams = serde_json::from_str("{}").unwrap();
    assert_eq!(p, AmdParams::default());
    let p: AmdParams = serde_json::from_str(r#"{"max_greeting_ms": 3000}"#).unwrap();
    assert_eq!(p.max_greeting_ms, 3000);
    assert_eq!(
        p.after_greeting_silence_ms,
        AmdParams::default().after_greeting_silence_ms
    );
    assert!(serde_json::from_str::<AmdParams>(r#"{"max_greeting": 3000}"#).is_err());
    let back: AmdParams = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn result_wire_names() {
    for r in AmdResult::ALL {
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            format!("\"{}\"", r.as_str())
        );
    }
    assert_eq!(AmdResult::Fax.to_string(), "fax");
}
