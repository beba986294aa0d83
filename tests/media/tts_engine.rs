//! Speech synthesis with the installed Piper voice on ONNX Runtime (no mocks): a missing
//! installation is a clear error; what is spoken is recognised back by dialgate's Whisper
//! recogniser; sentences stream in order; the pool's queue is bounded; repeats come from the
//! cache. The synthesis tests SKIP (with a message) only when the voice is not installed
//! (`scripts/setup-model` installs it; `scripts/test` runs that); the recogniser must be.

use crate::common;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dialgate::stt::{SttEngine, SttEngineConfig, SttStatus};
use dialgate::tts::eval::{recognise, speak_all, spoken_words};
use dialgate::tts::piper::PiperVoice;
use dialgate::tts::stream::TryNext;
use dialgate::tts::{Synthesizer, TtsConfig, TtsEngine, TtsError, TtsStatus, Voice};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The installed voice at dialgate's speaking rate, without the model's random variation, so
/// that what is recognised back is the same on every run (with the noise, a sentence of ~17
/// words comes back word-perfect only about half the time: tts-eval measures that rate).
fn config() -> TtsConfig {
    TtsConfig {
        data_dir: root().join("data"),
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..Default::default()
    }
}

/// The installed voice, or `None` (with the reason printed) when it is not installed.
fn voice_or_skip(test: &str) -> Option<PiperVoice> {
    match PiperVoice::load(&config()) {
        Ok(v) => Some(v),
        Err(TtsError::Unavailable(reason)) => {
            eprintln!("SKIPPED {test}: speech synthesis not installed ({reason})");
            None
        }
        Err(e) => panic!("voice installed but broken: {e}"),
    }
}

fn stt() -> SttEngine {
    let e = SttEngine::new(SttEngineConfig {
        data_dir: root().join("data"),
        ..Default::default()
    });
    assert!(
        matches!(e.status(), SttStatus::Ready { .. }),
        "Whisper model missing: run scripts/setup-model ({:?})",
        e.status()
    );
    e
}

#[test]
fn a_missing_engine_is_a_clear_error() {
    // 1. An empty data directory: no voice, no runtime.
    let dir = tempfile::tempdir().unwrap();
    let cfg = TtsConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let engine = TtsEngine::new(cfg.clone());
    // 2. The status names the missing file and what to run.
    let TtsStatus::Unavailable { reason } = engine.status() else {
        panic!("expected unavailable");
    };
    assert!(reason.contains("en_US-joe-medium.onnx"), "{reason}");
    assert!(reason.contains("scripts/setup-model"), "{reason}");
    // 3. Speaking, the check hook and the status JSON say the same.
    let err = engine.speak("Hello there.").unwrap_err();
    assert!(matches!(err, TtsError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("scripts/setup-model"));
    let check = TtsEngine::check(&cfg).unwrap_err();
    assert!(check.to_string().contains("scripts/setup-model"), "{check}");
    let json = engine.status_json();
    assert_eq!(json["available"], false);
    assert!(json["reason"].as_str().unwrap().contains("setup-model"));
    // 4. The voice present but the runtime library missing: that is what the error names.
    if voice_or_skip("a_missing_engine_is_a_clear_error (runtime part)").is_some() {
        let piper = dir.path().join("models/piper");
        std::fs::create_dir_all(&piper).unwrap();
        for f in ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"] {
            std::os::unix::fs::symlink(root().join("data/models/piper").join(f), piper.join(f))
                .unwrap();
        }
        let err = TtsEngine::check(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("ONNX Runtime") && err.contains("setup-model"),
            "{err}"
        );
    }
}

#[test]
fn spoken_text_is_recognised_back() {
    let _cpu = common::cpu::exclusive_blocking();
    let Some(_) = voice_or_skip("spoken_text_is_recognised_back") else {
        return;
    };
    // 1. The engine and the recogniser, both installed.
    let engine = TtsEngine::new(config());
    assert!(matches!(engine.status(), TtsStatus::Ready { .. }));
    let stt = stt();
    // 2. Two sentences with a number and a time, spoken as a text bot's message would be.
    let text = "Thank you for calling the pharmacy. Your order will arrive at 10 am on Monday.";
    let spoken = speak_all(&engine, text).unwrap();
    assert!(spoken.pcm.len() > 8000 * 3, "{} samples", spoken.pcm.len());
    // 3. Through µ-law and Whisper, the same words come back ("10am" and "ten a m" agree:
    //    both sides are put in spoken form).
    let heard = recognise(&stt, &spoken.pcm).unwrap();
    let (want, got) = (spoken_words(text), spoken_words(&heard));
    let errors = dialgate::stt::eval::word_errors(&want, &got);
    eprintln!("heard {heard:?} ({errors} word errors)");
    assert_eq!(got, want, "heard {heard:?} for {text:?}");
}

/// A gate the test opens: sentences containing "wait" block in the worker until then.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

struct GatedVoice {
    inner: PiperVoice,
    gate: Arc<Gate>,
}

struct GatedSynth {
    inner: Box<dyn Synthesizer>,
    gate: Arc<Gate>,
}

impl Voice for GatedVoice {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
    fn synthesizer(&self) -> Result<Box<dyn Synthesizer>, TtsError> {
        Ok(Box::new(GatedSynth {
            inner: self.inner.synthesizer()?,
            gate: self.gate.clone(),
        }))
    }
}

impl Synthesizer for GatedSynth {
    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        if sentence.contains("wait") {
            let open = self.gate.open.lock().unwrap();
            let _ = self
                .gate
                .cv
                .wait_timeout_while(open, Duration::from_secs(60), |o| !*o)
                .unwrap();
        }
        self.inner.synthesize(sentence)
    }
}

fn next(stream: &mut dialgate::tts::SpeechStream) -> dialgate::tts::SpeechChunk {
    match stream.next_blocking(Duration::from_secs(60)) {
        TryNext::Chunk(c) => c,
        other => panic!("expected a chunk, got {other:?}"),
    }
}

#[test]
fn sentences_stream_in_order_the_queue_is_bounded_and_repeats_are_cached() {
    let _cpu = common::cpu::exclusive_blocking();
    let Some(voice) = voice_or_skip("sentences_stream_in_order…") else {
        return;
    };
    // 1. One worker, one queued job at most; the worker blocks on sentences with "wait".
    let gate = Arc::new(Gate::default());
    let cfg = TtsConfig {
        workers: 1,
        queue_bound: 1,
        ..config()
    };
    let engine = TtsEngine::with_voice(
        cfg,
        Arc::new(GatedVoice {
            inner: voice,
            gate: gate.clone(),
        }),
        Instant::now(),
    );
    // 2. The first sentence is delivered while the second is still being synthesised.
    let mut first = engine.speak("Good morning. Please wait a moment.").unwrap();
    assert_eq!(first.sentences(), 2);
    let c0 = next(&mut first);
    assert_eq!(
        (c0.index, c0.text.as_str(), c0.cached),
        (0, "Good morning.", false)
    );
    assert!(c0.pcm.len() > 4000, "8 kHz audio of the sentence");
    assert!(matches!(first.try_next(), TryNext::Pending));
    // 3. The worker is busy: one more utterance queues, the next is refused and counted.
    let mut second = engine.speak("Thank you for calling.").unwrap();
    let refused = engine.speak("One more thing.").unwrap_err();
    assert!(matches!(refused, TtsError::Capacity(1)), "{refused}");
    assert_eq!(engine.status_json()["jobsRefused"], 1);
    // 4. Open the gate: the rest arrives in order, then the queued utterance.
    {
        *gate.open.lock().unwrap() = true;
        gate.cv.notify_all();
    }
    let c1 = next(&mut first);
    assert_eq!((c1.index, c1.text.as_str()), (1, "Please wait a moment."));
    assert!(matches!(
        first.next_blocking(Duration::from_secs(60)),
        TryNext::Done
    ));
    assert_eq!(next(&mut second).text, "Thank you for calling.");
    // 5. A repeat comes from the cache at once, without synthesis.
    let synthesised = engine.status_json()["sentences"].as_u64().unwrap();
    let mut again = engine.speak("Good morning.").unwrap();
    let c = next(&mut again);
    assert!(c.cached && c.pcm == c0.pcm);
    assert_eq!(
        engine.status_json()["sentences"].as_u64().unwrap(),
        synthesised
    );
    assert!(engine.status_json()["cache"]["hits"].as_u64().unwrap() >= 1);
    // 6. A long first sentence is cut so its first piece is short; nothing to say is an error.
    let mut long = engine
        .speak("We are calling from Acme about the order you placed on our website last week.")
        .unwrap();
    assert_eq!(long.sentences(), 2);
    let head = next(&mut long);
    assert!(head.text.ends_with(','), "{:?}", head.text);
    assert!(head.text.split_whitespace().count() <= 5, "{:?}", head.text);
    assert!(matches!(engine.speak(" ... "), Err(TtsError::Empty)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_played_over_rtp_is_recognised_back() {
    let _cpu = common::cpu::exclusive().await;
    use dialgate::media::g711::{G711Law, decode};
    use dialgate::tts::{Player, PlayerConfig, PlayerEvent};
    let Some(_) = voice_or_skip("speech_played_over_rtp_is_recognised_back") else {
        return;
    };
    // 1. The engine (loaded off the runtime's threads) and a player sending to a socket that
    //    stands in for the relay's bot-side port.
    let engine = tokio::task::spawn_blocking(|| TtsEngine::new(config()))
        .await
        .unwrap();
    let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut player = Player::start(PlayerConfig::new(relay.local_addr().unwrap()))
        .await
        .unwrap();
    let mut events = player.take_events().unwrap();
    // 2. The bot's text is queued as speech: synthesis and playback overlap.
    let text = "Your package will be delivered on Friday at 3 pm.";
    let id = player.say(&engine, text).unwrap();
    // 3. Receive the RTP until the queue has drained (bounded).
    let (mut pcm, mut drained, mut buf) = (Vec::new(), false, [0u8; 2048]);
    let end = Instant::now() + Duration::from_secs(60);
    while !drained && Instant::now() < end {
        tokio::select! {
            r = relay.recv_from(&mut buf) => {
                let (n, _) = r.unwrap();
                pcm.extend(buf[12..n].iter().map(|b| decode(G711Law::Pcmu, *b)));
            }
            Some(ev) = events.recv() => drained = ev == PlayerEvent::QueueDrained,
        }
    }
    assert!(drained, "the prompt {id:?} never finished");
    // 4. What the relay got is the sentence.
    let heard = tokio::task::spawn_blocking(move || recognise(&stt(), &pcm))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spoken_words(&heard), spoken_words(text), "heard {heard:?}");
    player.stop().await;
}

#[test]
fn tts_eval_refuses_bad_input_clearly() {
    // 1. A missing sentence file: exit status 1 and the path in the message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .args(["tts-eval", "/nonexistent/sentences.txt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tts-eval: /nonexistent/sentences.txt"),
        "{err}"
    );
    // 2. A file without sentences.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# only a comment\n\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("tts-eval")
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sentences"));
    // 3. No voice in the data directory: the error says what to run.
    std::fs::write(&empty, "Hello there.\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("tts-eval")
        .arg(&empty)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scripts/setup-model"));
}
