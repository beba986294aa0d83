//! Packet-level tests of the media relay over loopback with real UDP sockets.
//! Each test uses its own port range so tests can run in parallel.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dialgate::media::g711::{self, G711Law};
use dialgate::media::{
    AudioCodec, Direction, LatchMode, Leg, MediaConfig, MediaEngine, MediaError, MediaEvent,
    MediaSession, RemoteMedia,
};
use tokio::sync::mpsc::Receiver;

use crate::common::udp_peer;
use udp_peer::{Peer, RelayCall, engine, remote};

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// `pcm` in G.711 `law`.
fn encode(law: G711Law, pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| g711::encode(law, s)).collect()
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}
fn ts_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}
fn ssrc_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

/// An engine with a 5 s inactivity timeout on ports `port_min..=port_min + 7`, a session of
/// it and the session's events.
fn timed_session(port_min: u16, name: &str) -> (MediaEngine, MediaSession, Receiver<MediaEvent>) {
    let engine = MediaEngine::new(MediaConfig {
        port_min,
        port_max: port_min + 7,
        inactivity_timeout: Some(Duration::from_secs(5)),
        ..MediaConfig::default()
    })
    .unwrap();
    let s = engine.create_session(name).unwrap();
    let events = s.events().unwrap();
    (engine, s, events)
}

/// Sets a PCMU peer as each leg's remote, the bot's with `bot_direction` (a bot on hold is not
/// expected to send); returns the (carrier, bot) peers.
fn set_remotes(s: &MediaSession, bot_direction: Direction) -> (Peer, Peer) {
    let (carrier, bot) = (Peer::new(), Peer::new());
    s.set_remote(Leg::Carrier, remote(carrier.addr(), AudioCodec::PCMU, None))
        .unwrap();
    let held = RemoteMedia {
        direction: bot_direction,
        ..remote(bot.addr(), AudioCodec::PCMU, None)
    };
    s.set_remote(Leg::Bot, held).unwrap();
    (carrier, bot)
}

/// Waits (at most `within`, on the simulated clock) for the carrier leg's inactivity event; it
/// must be the next event.
async fn carrier_times_out(events: &mut Receiver<MediaEvent>, within: Duration) {
    let ev = tokio::time::timeout(within, events.recv()).await.unwrap();
    assert_eq!(
        ev,
        Some(MediaEvent::InactivityTimeout { leg: Leg::Carrier })
    );
}

/// Engine + session + one peer per leg, remotes set (PCMU both sides).
type Call = RelayCall;

impl RelayCall {
    fn pcmu(port_min: u16) -> Call {
        Self::with(
            port_min,
            AudioCodec::PCMU,
            Some(101),
            AudioCodec::PCMU,
            Some(101),
        )
    }
    /// [`Call::pcmu`] recording to `rec.wav` in a temporary directory (kept while the test
    /// holds it).
    async fn recording(port_min: u16) -> (Call, tempfile::TempDir, std::path::PathBuf) {
        let c = Call::pcmu(port_min);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.wav");
        c.session.start_recording(&path).await.unwrap();
        (c, dir, path)
    }
    /// A re-INVITE from the carrier: its remote again (PCMU, telephone-event 101), with
    /// `direction`.
    fn carrier_direction(&self, direction: Direction) {
        let r = RemoteMedia {
            direction,
            ..remote(self.carrier.addr(), AudioCodec::PCMU, Some(101))
        };
        self.session.set_remote(Leg::Carrier, r).unwrap();
    }
    fn with(port_min: u16, cc: AudioCodec, cd: Option<u8>, bc: AudioCodec, bd: Option<u8>) -> Call {
        let c = RelayCall::new(engine(port_min, 4), "test");
        let carrier = remote(c.carrier.addr(), cc, cd);
        c.session.set_remote(Leg::Carrier, carrier).unwrap();
        c.session
            .set_remote(Leg::Bot, remote(c.bot.addr(), bc, bd))
            .unwrap();
        c
    }
}

#[tokio::test]
async fn forwards_both_ways_with_payload_and_header_unchanged() {
    // 1. a call with PCMU on both legs
    let c = Call::pcmu(21000);
    // 2. 50 carrier packets reach the bot byte for byte, from the relay's bot-side port
    for i in 0..50u16 {
        let p = rtp(0, 1000 + i, 160 * i as u32, 0xc0ffee, &[i as u8; 160]);
        c.carrier.send(c.carrier_side(), &p);
        let mut b = [0u8; 2048];
        let (n, from) = c.bot.sock.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], &p[..]);
        assert_eq!(from, c.bot_side());
    }
    // 3. and 50 bot packets reach the carrier unchanged
    for i in 0..50u16 {
        let p = rtp(0, i, 160 * i as u32, 0xb07, &[0x55; 160]);
        c.bot.send(c.bot_side(), &p);
        assert_eq!(c.carrier.recv(), p);
    }
    // 4. the counters agree
    let st = c.session.stats();
    assert_eq!(st.carrier.packets_received, 50);
    assert_eq!(st.carrier.packets_forwarded, 50);
    assert_eq!(st.bot.packets_forwarded, 50);
    assert_eq!(st.carrier.lost_estimate, 0);
}

#[tokio::test]
async fn packets_before_both_remotes_are_dropped_as_not_ready() {
    // 1. only the carrier's remote is known
    let engine = engine(21100, 4);
    let s = engine.create_session("nr").unwrap();
    let carrier = Peer::new();
    let bot = Peer::new();
    s.set_remote(Leg::Carrier, remote(carrier.addr(), AudioCodec::PCMU, None))
        .unwrap();
    // 2. its packets are dropped and counted, the bot gets nothing
    for i in 0..5 {
        carrier.send(s.local_rtp_addr(Leg::Carrier), &rtp(0, i, 0, 1, &[0; 160]));
    }
    assert!(bot.try_recv().is_none());
    assert_eq!(s.stats().carrier.dropped_not_ready, 5);
    // 3. once the bot's remote is set, forwarding starts
    s.set_remote(Leg::Bot, remote(bot.addr(), AudioCodec::PCMU, None))
        .unwrap();
    carrier.send(s.local_rtp_addr(Leg::Carrier), &rtp(0, 9, 0, 1, &[0; 160]));
    assert_eq!(seq_of(&bot.recv()), 9);
}

#[tokio::test]
async fn source_change_keeps_seq_ts_ssrc_continuous_and_relatches() {
    // 1. latching `off` (the mode that follows a source change without signalling;
    //    `tests/media/media_latching.rs` covers strict and learn); the carrier sends 10
    //    packets from its SDP address, SSRC 1, seq 100..
    let c = Call::pcmu(21200);
    c.session
        .set_latching(Leg::Carrier, LatchMode::Off)
        .unwrap();
    for i in 0..10u16 {
        c.carrier.send(
            c.carrier_side(),
            &rtp(0, 100 + i, 1000 + 160 * i as u32, 1, &[1; 160]),
        );
        c.bot.recv();
    }
    // 2. the media moves to a new address and SSRC (e.g. NAT rebinding / new media server)
    let moved = Peer::new();
    for i in 0..3u16 {
        moved.send(
            c.carrier_side(),
            &rtp(0, 7000 + i, 500_000 + 160 * i as u32, 2, &[2; 160]),
        );
    }
    // 3. two packets are held back by probation, the third latches and is forwarded
    //    continuing our stream: next seq, same SSRC, later timestamp, marker set
    let p = c.bot.recv();
    assert_eq!(seq_of(&p), 110);
    assert_eq!(ssrc_of(&p), 1);
    assert!(ts_of(&p) > 1000 + 160 * 9);
    assert_eq!(
        p[1] & 0x80,
        0x80,
        "marker on the first packet of the new source"
    );
    assert_eq!(&p[12..], &[2; 160]);
    let p = {
        moved.send(c.carrier_side(), &rtp(0, 7003, 500_000 + 480, 2, &[2; 160]));
        c.bot.recv()
    };
    assert_eq!(seq_of(&p), 111);
    assert_eq!(p[1] & 0x80, 0);
    let st = c.session.stats().carrier;
    assert_eq!(st.dropped_foreign_source, 2);
    assert_eq!(st.source_changes, 1);
    // 4. the bot's audio now goes to the latched address, not the SDP one
    c.bot.send(c.bot_side(), &rtp(0, 1, 0, 9, &[3; 160]));
    assert_eq!(&moved.recv()[12..], &[3; 160]);
    assert!(c.carrier.try_recv().is_none());
    // 5. the old address is now foreign
    c.carrier
        .send(c.carrier_side(), &rtp(0, 111, 0, 1, &[1; 160]));
    assert!(c.bot.try_recv().is_none());
}

#[tokio::test]
async fn payload_types_are_mapped_and_dtmf_passes_intact() {
    // 1. carrier: PCMU/0 + telephone-event/101; bot: PCMU as dynamic 110 + telephone-event/96
    let c = Call::with(
        21300,
        AudioCodec::PCMU,
        Some(101),
        AudioCodec {
            law: G711Law::Pcmu,
            pt: 110,
        },
        Some(96),
    );
    // 2. audio: PT 0 → 110, payload untouched
    c.carrier
        .send(c.carrier_side(), &rtp(0, 1, 160, 5, &[0x11; 160]));
    let p = c.bot.recv();
    assert_eq!(p[1] & 0x7f, 110);
    assert_eq!(&p[12..], &[0x11; 160]);
    // 3. an RFC 4733 event (digit 5, end bit, volume 10, duration 800) with marker: PT 101 → 96,
    //    marker kept, payload byte for byte
    let ev = [5u8, 0x80 | 10, 0x03, 0x20];
    let mut d = rtp(101, 2, 320, 5, &ev);
    d[1] |= 0x80;
    c.carrier.send(c.carrier_side(), &d);
    let p = c.bot.recv();
    assert_eq!(p[1], 0x80 | 96);
    assert_eq!(&p[12..], &ev);
    assert_eq!((seq_of(&p), ts_of(&p)), (2, 320));
    // 4. the reverse direction maps back
    c.bot.send(c.bot_side(), &rtp(96, 1, 0, 6, &ev));
    let p = c.carrier.recv();
    assert_eq!(p[1] & 0x7f, 101);
    assert_eq!(&p[12..], &ev);
    // 5. a payload type nobody negotiated is dropped and counted
    c.carrier
        .send(c.carrier_side(), &rtp(18, 3, 480, 5, &[0; 20]));
    assert!(c.bot.try_recv().is_none());
    assert_eq!(c.session.stats().carrier.dropped_unknown_pt, 1);
}

#[tokio::test]
async fn pcmu_and_pcma_legs_are_transcoded() {
    // 1. carrier speaks PCMA, bot PCMU
    let c = Call::with(21400, AudioCodec::PCMA, None, AudioCodec::PCMU, None);
    let samples: Vec<i16> = (0..160)
        .map(|i| ((i as f64 / 20.0 * std::f64::consts::TAU).sin() * 8000.0) as i16)
        .collect();
    let alaw = encode(G711Law::Pcma, &samples);
    // 2. A-law in → µ-law out with PT 0, same waveform within quantisation
    c.carrier.send(c.carrier_side(), &rtp(8, 1, 0, 7, &alaw));
    let p = c.bot.recv();
    assert_eq!(p[1] & 0x7f, 0);
    assert_eq!(p.len(), 12 + 160);
    for (i, &u) in p[12..].iter().enumerate() {
        let a = g711::decode(G711Law::Pcma, alaw[i]) as i32;
        let b = g711::decode(G711Law::Pcmu, u) as i32;
        assert!((a - b).abs() <= a.abs() / 16 + 16, "sample {i}: {a} vs {b}");
    }
    // 3. µ-law back → A-law with PT 8
    let ulaw = encode(G711Law::Pcmu, &samples);
    c.bot.send(c.bot_side(), &rtp(0, 1, 0, 8, &ulaw));
    let p = c.carrier.recv();
    assert_eq!(p[1] & 0x7f, 8);
    assert_ne!(&p[12..], &ulaw[..]);
}

#[tokio::test]
async fn malformed_packets_are_counted_and_never_forwarded() {
    // 1. junk: too short, wrong version, CSRC overrun, padding overrun, empty, RTCP type on RTP port
    let c = Call::pcmu(21500);
    let mut bad_version = rtp(0, 1, 0, 1, &[0; 10]);
    bad_version[0] = 0x40;
    let mut csrc = rtp(0, 1, 0, 1, &[0; 4]);
    csrc[0] = 0x8f;
    let mut pad = rtp(0, 1, 0, 1, &[0, 0, 0, 250]);
    pad[0] = 0xa0;
    let junk: Vec<Vec<u8>> = vec![
        vec![0x80, 0, 1],
        bad_version,
        csrc,
        pad,
        vec![],
        rtp(200, 1, 0, 1, &[0; 8]),
    ];
    for j in &junk {
        c.carrier.send(c.carrier_side(), j);
    }
    // 2. a valid packet afterwards is the only thing the bot sees
    c.carrier
        .send(c.carrier_side(), &rtp(0, 42, 0, 1, &[9; 160]));
    assert_eq!(seq_of(&c.bot.recv()), 42);
    assert!(c.bot.try_recv().is_none());
    // 3. each junk datagram was counted as malformed
    let st = c.session.stats().carrier;
    assert_eq!(st.dropped_malformed, junk.len() as u64);
    assert_eq!(st.packets_forwarded, 1);
    // 4. a malformed RTCP packet is dropped too, a valid RR is relayed to the bot's RTCP port
    let bot_rtcp = UdpSocket::bind(SocketAddr::new(c.bot.addr().ip(), 0)).unwrap();
    bot_rtcp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    c.session
        .set_remote(
            Leg::Bot,
            RemoteMedia {
                rtcp: Some(bot_rtcp.local_addr().unwrap()),
                ..remote(c.bot.addr(), AudioCodec::PCMU, Some(101))
            },
        )
        .unwrap();
    let rtcp_in = SocketAddr::new(c.carrier_side().ip(), c.carrier_side().port() + 1);
    c.carrier.send(rtcp_in, &[0x80, 201, 0, 9, 0, 0, 0, 1]);
    c.carrier.send(rtcp_in, &[0x80, 201, 0, 1, 0, 0, 0, 1]);
    let mut b = [0u8; 64];
    let (n, _) = bot_rtcp.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], &[0x80, 201, 0, 1, 0, 0, 0, 1]);
    let st = c.session.stats().carrier;
    assert_eq!((st.rtcp_received, st.rtcp_forwarded), (2, 1));
}

#[tokio::test]
async fn hold_and_resume_without_dropping_the_call() {
    // 1. the carrier puts the call on hold: re-INVITE with a=sendonly (it plays music)
    let c = Call::pcmu(21600);
    c.carrier_direction(Direction::SendOnly);
    // 2. music still reaches the bot; the bot's audio is not sent to the carrier
    c.carrier
        .send(c.carrier_side(), &rtp(0, 1, 0, 1, &[1; 160]));
    assert_eq!(seq_of(&c.bot.recv()), 1);
    c.bot.send(c.bot_side(), &rtp(0, 1, 0, 2, &[2; 160]));
    assert!(c.carrier.try_recv().is_none());
    assert_eq!(c.session.stats().bot.dropped_direction, 1);
    // 3. resume (sendrecv): both ways again, same session and ports
    c.carrier_direction(Direction::SendRecv);
    c.bot.send(c.bot_side(), &rtp(0, 2, 160, 2, &[2; 160]));
    assert_eq!(seq_of(&c.carrier.recv()), 2);
    // 4. inactive stops both directions
    c.carrier_direction(Direction::Inactive);
    c.carrier
        .send(c.carrier_side(), &rtp(0, 3, 320, 1, &[1; 160]));
    assert!(c.bot.try_recv().is_none());
}

#[tokio::test]
async fn a_stalled_tap_never_slows_forwarding() {
    // 1. a tap with room for 2 frames that nobody reads
    let c = Call::pcmu(21700);
    let mut tap = c.session.subscribe_tap(Leg::Carrier, 2).unwrap();
    c.session.start_taps().unwrap();
    // 2. 200 packets: all forwarded
    for i in 0..200u16 {
        c.carrier.send(
            c.carrier_side(),
            &rtp(0, i, 160 * i as u32, 1, &[0xff; 160]),
        );
        c.bot.recv();
    }
    let st = c.session.stats().carrier;
    assert_eq!(st.packets_forwarded, 200);
    // 3. the tap got 2 frames, the other 198 were dropped and counted
    assert_eq!(st.tap_drops, 198);
    let f = tap.recv().await.unwrap();
    assert_eq!((f.leg, f.seq), (Leg::Carrier, 0));
    assert_eq!(f.samples, [0i16; 160]); // µ-law 0xff is silence
    assert_eq!(tap.recv().await.unwrap().seq, 1);
    assert!(tap.try_recv().is_err());
}

#[tokio::test]
async fn taps_get_decoded_frames_only_after_start() {
    // 1. a PCMA carrier; a tap subscribed but not started sees nothing
    let c = Call::with(
        21800,
        AudioCodec::PCMA,
        Some(101),
        AudioCodec::PCMU,
        Some(101),
    );
    let mut tap = c.session.subscribe_tap(Leg::Carrier, 16).unwrap();
    c.carrier
        .send(c.carrier_side(), &rtp(8, 1, 0, 1, &[0xd5; 160]));
    c.bot.recv();
    assert!(tap.try_recv().is_err());
    // 2. after start: one 20 ms frame per packet, A-law decoded; DTMF ignored
    c.session.start_taps().unwrap();
    c.carrier
        .send(c.carrier_side(), &rtp(101, 2, 160, 1, &[1, 0x8a, 0, 160]));
    c.carrier
        .send(c.carrier_side(), &rtp(8, 3, 160, 1, &[0xd5; 160]));
    c.bot.recv();
    c.bot.recv();
    let f = tap.recv().await.unwrap();
    assert_eq!(f.seq, 0);
    assert_eq!(f.samples, [8i16; 160]);
    assert!(tap.try_recv().is_err());
    // 3. two 10 ms packets make one frame
    c.carrier
        .send(c.carrier_side(), &rtp(8, 4, 320, 1, &[0xd5; 80]));
    c.carrier
        .send(c.carrier_side(), &rtp(8, 5, 400, 1, &[0x55; 80]));
    c.bot.recv();
    c.bot.recv();
    let f = tap.recv().await.unwrap();
    assert_eq!((f.samples[0], f.samples[159]), (8, -8));
}

#[tokio::test]
async fn recording_is_a_stereo_wav_as_long_as_the_audio() {
    // 1. record while each side sends 50 packets (1 s of audio) of a distinct constant
    let (c, _dir, path) = Call::recording(21900).await;
    for i in 0..50u16 {
        c.carrier.send(
            c.carrier_side(),
            &rtp(
                0,
                i,
                160 * i as u32,
                1,
                &[g711::encode(G711Law::Pcmu, 1000); 160],
            ),
        );
        c.bot.recv();
        c.bot.send(
            c.bot_side(),
            &rtp(
                0,
                i,
                160 * i as u32,
                2,
                &[g711::encode(G711Law::Pcmu, -2000); 160],
            ),
        );
        c.carrier.recv();
    }
    // 2. stop: the file is finalised and holds at least the 1 s received on each channel
    let sum = c.session.stop_recording().await.unwrap().unwrap();
    assert_eq!(sum.frames, [50, 50]);
    assert!(sum.samples_per_channel >= 50 * 160);
    let mut r = hound::WavReader::open(&path).unwrap();
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(r.duration() as u64, sum.samples_per_channel);
    // 3. left is the callee, right the bot
    let s: Vec<i16> = r.samples::<i16>().map(|x| x.unwrap()).collect();
    let left = s
        .iter()
        .step_by(2)
        .filter(|&&v| (v - 1000).abs() < 64)
        .count();
    let right = s
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&v| (v + 2000).abs() < 128)
        .count();
    assert_eq!((left, right), (8000, 8000));
}

#[tokio::test]
async fn recording_fills_gaps_with_silence() {
    // 1. only the carrier talks, with a 300 ms pause between two bursts
    let (c, _dir, path) = Call::recording(22000).await;
    for i in 0..5u16 {
        c.carrier
            .send(c.carrier_side(), &rtp(0, i, 0, 1, &[0x80; 160]));
        c.bot.recv();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.carrier
        .send(c.carrier_side(), &rtp(0, 5, 0, 1, &[0x80; 160]));
    c.bot.recv();
    // 2. the file covers the pause (it is as long as the call, >= 300 ms), both channels
    let sum = c.session.stop_recording().await.unwrap().unwrap();
    assert!(sum.samples_per_channel >= 2400, "{sum:?}");
    assert_eq!(sum.frames, [6, 0]);
    let mut r = hound::WavReader::open(&path).unwrap();
    assert_eq!(r.duration() as u64, sum.samples_per_channel);
    // 3. left: the 6 frames of audio, the rest silence (the pause sits between them);
    //    right: the silent bot, all zeros
    let s: Vec<i16> = r.samples::<i16>().map(|x| x.unwrap()).collect();
    let loud = s.iter().step_by(2).filter(|&&v| v != 0).count();
    assert_eq!(loud, 6 * 160);
    let last_loud = s.iter().step_by(2).rposition(|&v| v != 0).unwrap();
    assert!(
        last_loud >= 2400 - 160,
        "last frame placed after the pause: {last_loud}"
    );
    assert!(s.iter().skip(1).step_by(2).all(|&v| v == 0));
}

#[tokio::test(start_paused = true)]
async fn inactivity_timeout_fires_exactly_once() {
    // 1. an engine with a 5 s timeout and a call whose legs never send
    let (_engine, s, mut events) = timed_session(22100, "idle");
    // 2. the bot leg is on hold (recvonly: it is not expected to send)
    let (_carrier, _bot) = set_remotes(&s, Direction::RecvOnly);
    // 3. after the timeout (simulated clock) the carrier leg fires once
    carrier_times_out(&mut events, Duration::from_secs(6)).await;
    // 4. a minute more brings no second event (and none for the held bot leg)
    let more = tokio::time::timeout(Duration::from_secs(60), events.recv()).await;
    assert!(more.is_err(), "unexpected {more:?}");
}

#[tokio::test]
async fn session_ports_are_released_and_exhaustion_is_an_error() {
    // 1. a range of two pairs holds exactly one session (two legs)
    let engine = engine(22200, 2);
    let s = engine.create_session("a").unwrap();
    let err = engine.create_session("b").err().unwrap();
    assert!(
        matches!(err, MediaError::PortsExhausted { pairs: 2 }),
        "{err}"
    );
    assert!(err.is_capacity());
    // 2. stop is idempotent; the ports come back once the relay closed the sockets
    s.stop();
    s.stop();
    drop(s);
    for _ in 0..200 {
        if engine.port_pool().free() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.port_pool().free(), 2);
    // 3. and a new session binds the same ports again
    let s = engine.create_session("c").unwrap();
    assert_eq!(s.local_rtp_addr(Leg::Carrier).port() % 2, 0);
}

#[tokio::test(start_paused = true)]
async fn traffic_keeps_the_inactivity_timer_from_firing() {
    // 1. a 5 s timeout; the carrier sends one packet per simulated second for 20 s
    let (_engine, s, mut events) = timed_session(22300, "busy");
    let (carrier, _bot) = set_remotes(&s, Direction::Inactive);
    for i in 0..20u16 {
        carrier.send(s.local_rtp_addr(Leg::Carrier), &rtp(0, i, 0, 1, &[0; 160]));
        // wait (real time, bounded) until the relay counted it; the simulated clock stands still
        for _ in 0..3000 {
            if s.stats().carrier.packets_received > i as u64 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(s.stats().carrier.packets_received, i as u64 + 1);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // 2. no event while packets flowed
    assert!(events.try_recv().is_err());
    // 3. silence: the event comes once the timeout has passed
    carrier_times_out(&mut events, Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_remote_after_a_timeout_is_watched_again() {
    // 1. Early media falls silent: the carrier leg times out once before the answer.
    let (_engine, s, mut events) = timed_session(22900, "early");
    let early = Peer::new();
    s.set_remote(Leg::Carrier, remote(early.addr(), AudioCodec::PCMU, None))
        .unwrap();
    carrier_times_out(&mut events, Duration::from_secs(6)).await;
    // 2. The answer names another address: the leg is watched afresh and a silent answered
    //    call still times out (once).
    let answer = Peer::new();
    s.set_remote(Leg::Carrier, remote(answer.addr(), AudioCodec::PCMU, None))
        .unwrap();
    carrier_times_out(&mut events, Duration::from_secs(7)).await;
    let more = tokio::time::timeout(Duration::from_secs(60), events.recv()).await;
    assert!(more.is_err(), "unexpected {more:?}");
}

#[tokio::test]
async fn injected_audio_and_key_presses_replace_the_bot_in_one_continuous_stream() {
    // 1. The person's leg negotiated telephone-event 96; the bot talks (SSRC 9, seq 10..15).
    let c = Call::with(
        30900,
        AudioCodec::PCMA,
        Some(96),
        AudioCodec::PCMU,
        Some(101),
    );
    let inject = Peer::new();
    c.session.set_inject_source(Some(inject.addr())).unwrap();
    for i in 0..5u16 {
        c.bot
            .send(c.bot_side(), &rtp(0, 10 + i, 1600 * i as u32, 9, &[1; 160]));
        assert_eq!(seq_of(&c.carrier.recv()), 10 + i);
    }
    // 2. dialgate's player (another SSRC and numbering) sends two audio frames and a key press
    //    (two packets of one event, one timestamp): the person gets them as the same stream.
    let sent = [
        rtp(0, 5000, 90_000, 77, &[g711::linear_to_ulaw(1000); 160]),
        rtp(0, 5001, 90_160, 77, &[g711::linear_to_ulaw(1000); 160]),
        rtp(101, 5002, 90_320, 77, &[5, 10, 0, 160]),
        rtp(101, 5003, 90_320, 77, &[5, 0x8a, 3, 32]),
    ];
    let mut got = Vec::new();
    for p in &sent {
        inject.send(c.bot_side(), p);
        got.push(c.carrier.recv());
    }
    let seqs: Vec<u16> = got.iter().map(|p| seq_of(p)).collect();
    assert_eq!(seqs, [15, 16, 17, 18], "no gap in the sequence");
    assert!(
        got.iter().all(|p| ssrc_of(p) == 9),
        "one SSRC toward the person"
    );
    assert_eq!(got[0][1] & 0x80, 0x80, "marker at the switch");
    assert!(ts_of(&got[0]) > 1600 * 4, "timestamps go on");
    assert_eq!(ts_of(&got[1]) - ts_of(&got[0]), 160);
    // Audio transcoded to the person's A-law; the key press in the person's payload type 96,
    // both packets with one timestamp, payload untouched.
    assert_eq!(
        got[0][12],
        g711::linear_to_alaw(g711::decode(G711Law::Pcmu, g711::linear_to_ulaw(1000)))
    );
    assert_eq!((got[2][1] & 0x7f, got[3][1] & 0x7f), (96, 96));
    assert_eq!(ts_of(&got[2]), ts_of(&got[3]));
    assert_eq!(&got[3][12..], &[5, 0x8a, 3, 32]);
    // 3. While the injected stream flows the bot is held back.
    c.bot
        .send(c.bot_side(), &rtp(0, 15, 1600 * 5, 9, &[1; 160]));
    assert!(c.carrier.try_recv().is_none());
    // 4. 100 ms after the last injected packet the bot is heard again, continuing the stream.
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.bot
        .send(c.bot_side(), &rtp(0, 16, 1600 * 6, 9, &[1; 160]));
    let p = c.carrier.recv();
    assert_eq!((seq_of(&p), ssrc_of(&p)), (19, 9));
    assert_eq!(p[1] & 0x80, 0x80);
    assert!(ts_of(&p) > ts_of(&got[3]));
    // 5. Injected packets are not the bot's: its receive statistics are untouched.
    assert_eq!(c.session.stats().bot.source_changes, 0);
}
