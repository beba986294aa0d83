//! The text bot's player over real UDP sockets on loopback: what it sends is RTP that decodes
//! back to the queued audio, in order, paced no faster than real time, with continuous
//! sequence numbers and timestamps; abort cuts speech; events say what happened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialgate::media::AudioCodec;
use dialgate::media::g711::{self, G711Law};
use dialgate::tts::{Player, PlayerConfig, PlayerEvent, Prompt, PromptId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;

/// One received RTP packet.
#[derive(Debug, Clone)]
struct Rtp {
    at: Instant,
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

fn parse(buf: &[u8], at: Instant) -> Rtp {
    assert!(buf.len() >= 12 && buf[0] >> 6 == 2, "not RTP: {buf:?}");
    Rtp {
        at,
        marker: buf[1] & 0x80 != 0,
        pt: buf[1] & 0x7f,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: buf[12..].to_vec(),
    }
}

/// A tone as 8 kHz PCM.
fn tone(freq: f64, ms: usize, amp: f64) -> Vec<i16> {
    (0..ms * 8)
        .map(|n| (amp * (2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin()) as i16)
        .collect()
}

/// Receive packets until `stop` says so or 20 s have passed.
async fn receive(
    sock: &UdpSocket,
    events: &mut Receiver<PlayerEvent>,
    seen: &mut Vec<PlayerEvent>,
    stop: impl Fn(&[Rtp], &[PlayerEvent]) -> bool,
) -> Vec<Rtp> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !stop(&got, seen) {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let (n, _) = r.expect("recv");
                got.push(parse(&buf[..n], Instant::now()));
            }
            Some(ev) = events.recv() => seen.push(ev),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    got
}

fn decode(law: G711Law, payload: &[u8]) -> Vec<i16> {
    payload.iter().map(|b| g711::decode(law, *b)).collect()
}

fn g711_round_trip(law: G711Law, pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|s| g711::decode(law, g711::encode(law, *s)))
        .collect()
}

async fn player(remote: SocketAddr, codec: AudioCodec) -> (Player, Receiver<PlayerEvent>) {
    let mut cfg = PlayerConfig::new(remote);
    cfg.codec = codec;
    cfg.conversation_id = Some("test-player".into());
    let mut p = Player::start(cfg).await.expect("player starts");
    let ev = p.take_events().expect("events");
    (p, ev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_prompts_arrive_in_order_paced_and_continuous() {
    for (codec, law) in [
        (AudioCodec::PCMU, G711Law::Pcmu),
        (AudioCodec::PCMA, G711Law::Pcma),
    ] {
        // 1. The relay's bot-side port (a plain socket here) and a player sending to it.
        let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let t_start = Instant::now();
        let (player, mut events) = player(relay.local_addr().unwrap(), codec).await;
        // 2. Two prompts: 300 ms of 600 Hz, then 210 ms of 1400 Hz (not a whole number of
        //    frames: the last frame is padded with silence).
        let a = tone(600.0, 300, 8000.0);
        let b = tone(1400.0, 210, 6000.0);
        let id_a = player.enqueue(Prompt::pcm(a.clone())).unwrap();
        let id_b = player.enqueue(Prompt::pcm(b.clone())).unwrap();
        // 3. Receive until the queue has drained and a few silence frames followed.
        let mut seen = Vec::new();
        let packets = receive(&relay, &mut events, &mut seen, |p, ev| {
            ev.contains(&PlayerEvent::QueueDrained) && p.len() > 40
        })
        .await;
        assert!(seen.contains(&PlayerEvent::QueueDrained), "{seen:?}");
        // 4. One stream: one SSRC, the codec's payload type, marker on the first packet only,
        //    sequence +1 and timestamp +160 from packet to packet.
        let first = &packets[0];
        for (i, p) in packets.iter().enumerate() {
            assert_eq!((p.ssrc, p.pt), (first.ssrc, codec.pt));
            assert_eq!(p.marker, i == 0, "marker on packet {i}");
            assert_eq!(p.payload.len(), 160);
            assert_eq!(p.seq, first.seq.wrapping_add(i as u16), "seq at {i}");
            assert_eq!(p.ts, first.ts.wrapping_add(160 * i as u32), "ts at {i}");
        }
        // 5. Never faster than real time: packet k arrives no earlier than 20 ms × k after the
        //    player started (a lower bound: load can only make it later).
        for (k, p) in packets.iter().enumerate() {
            assert!(
                p.at.duration_since(t_start) >= Duration::from_millis(20 * k as u64),
                "packet {k} came {:?} after start",
                p.at.duration_since(t_start)
            );
        }
        // 6. The audio between the silence decodes to prompt A then prompt B.
        let audio: Vec<i16> = packets
            .iter()
            .flat_map(|p| decode(law, &p.payload))
            .collect();
        let silence = g711::decode(law, g711::encode(law, 0));
        let silent_byte = g711::encode(law, 0);
        let first_audio = packets
            .iter()
            .position(|p| p.payload.iter().any(|b| *b != silent_byte))
            .expect("audio");
        let start = first_audio * 160;
        let mut want = g711_round_trip(law, &a);
        want.extend(g711_round_trip(law, &b));
        assert_eq!(&audio[start..start + want.len()], &want[..]);
        // The padding of B's last frame and everything after is silence.
        let tail = start + want.len();
        assert!(audio[tail..].iter().all(|s| *s == silence));
        // 7. Events in order.
        assert_eq!(
            seen,
            vec![
                PlayerEvent::PromptStarted { id: id_a },
                PlayerEvent::PromptFinished {
                    id: id_a,
                    interrupted: false,
                    error: None
                },
                PlayerEvent::PromptStarted { id: id_b },
                PlayerEvent::PromptFinished {
                    id: id_b,
                    interrupted: false,
                    error: None
                },
                PlayerEvent::QueueDrained,
            ]
        );
        let counters = player.stop().await;
        assert_eq!(counters.audio_packets, 26);
        assert!(counters.packets >= packets.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_cuts_the_current_prompt_and_the_queue() {
    // 1. A 5 s prompt and another behind it.
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (player, mut events) = player(relay.local_addr().unwrap(), AudioCodec::PCMU).await;
    let long = player
        .enqueue(Prompt::pcm(tone(500.0, 5000, 8000.0)))
        .unwrap();
    let queued = player
        .enqueue(Prompt::pcm(tone(900.0, 1000, 8000.0)))
        .unwrap();
    // 2. Once it has started and a few frames of it came, abort.
    let mut seen = Vec::new();
    let before = receive(&relay, &mut events, &mut seen, |p, ev| {
        ev.contains(&PlayerEvent::PromptStarted { id: long }) && p.len() >= 10
    })
    .await;
    assert!(seen.contains(&PlayerEvent::PromptStarted { id: long }));
    player.abort().unwrap();
    // 3. Both prompts finish interrupted, then the queue is drained.
    let after = receive(&relay, &mut events, &mut seen, |p, ev| {
        ev.contains(&PlayerEvent::QueueDrained) && p.len() > 25
    })
    .await;
    assert_eq!(
        seen[1..],
        [
            PlayerEvent::PromptFinished {
                id: long,
                interrupted: true,
                error: None
            },
            PlayerEvent::PromptFinished {
                id: queued,
                interrupted: true,
                error: None
            },
            PlayerEvent::QueueDrained,
        ]
    );
    // 4. Speech stops within the frames already in flight: the last 20 packets are silence,
    //    and far fewer than the prompt's 250 audio frames were sent.
    let silent = |p: &Rtp| p.payload.iter().all(|b| *b == 0xff);
    assert!(after[after.len() - 20..].iter().all(silent));
    let audio = before.iter().chain(&after).filter(|p| !silent(p)).count();
    assert!(audio < 250, "{audio} audio packets");
    // 5. The stream itself went on without a gap in sequence numbers.
    let all: Vec<&Rtp> = before.iter().chain(&after).collect();
    for w in all.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    player.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wav_file_plays_resampled_to_8khz() {
    // 1. A 16 kHz stereo WAV of 250 ms.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for n in 0..4000 {
        let s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 16000.0).sin()) as i16;
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    // 2. Played: 250 ms at 8 kHz is 12.5 frames → 13 audio packets.
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (player, mut events) = player(relay.local_addr().unwrap(), AudioCodec::PCMU).await;
    let id = player.enqueue(Prompt::from_wav(&path).unwrap()).unwrap();
    let mut seen = Vec::new();
    receive(&relay, &mut events, &mut seen, |_, ev| {
        ev.contains(&PlayerEvent::QueueDrained)
    })
    .await;
    assert_eq!(seen[0], PlayerEvent::PromptStarted { id });
    assert_eq!(player.stop().await.audio_packets, 13);
    // 3. A file that is not a WAV is a clear error.
    std::fs::write(dir.path().join("bad.wav"), b"not audio").unwrap();
    let err = Prompt::from_wav(&dir.path().join("bad.wav")).unwrap_err();
    assert!(err.to_string().contains("bad.wav"), "{err}");
    let _: PromptId = id;
}
