//! The player's decisions, without I/O: which 20 ms frame goes out next and when, the prompt
//! queue, abort, and the events. Fed `now`; the async shell ([`super::Player`]) only sleeps
//! until [`PlayerCore::poll_timeout`] and sends what [`PlayerCore::on_tick`] returns.
//!
//! Pacing: frame k is due at deadline dₖ, never sent before it, and dₖ₊₁ ≥ dₖ + 20 ms, so the
//! stream never runs faster than real time. A shell woken late sends what is due (catching up
//! small delays); after a stall of more than [`MAX_CATCH_UP`] the schedule restarts from now
//! instead of bursting the backlog.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::AudioCodec;
use crate::media::g711;
use crate::media::inject::{DtmfFrame, INJECT_DTMF_PT};
use crate::tts::stream::{SpeechStream, TryNext};
use crate::tts::{FRAME_SAMPLES, TtsError};

/// One frame's duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Lateness beyond which the schedule restarts rather than catching up.
pub const MAX_CATCH_UP: Duration = Duration::from_millis(60);
/// RTP header length (no CSRC, no extension).
pub const RTP_HEADER: usize = 12;

/// Identifies a queued prompt in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub u64);

/// What the player reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerEvent {
    /// The prompt's first audio frame was sent.
    PromptStarted {
        /// Which prompt.
        id: PromptId,
    },
    /// The prompt is over: played to its end, cut by `abort` (`interrupted`, also for queued
    /// prompts that never started), or failed (`error`). Exactly one per queued prompt.
    PromptFinished {
        /// Which prompt.
        id: PromptId,
        /// Cut short by `abort`.
        interrupted: bool,
        /// Synthesis failed (the reason); the audio before the failure was played.
        error: Option<String>,
    },
    /// The last queued prompt finished (or was aborted): nothing left to play.
    QueueDrained,
}

/// Where a prompt's audio comes from.
#[derive(Debug)]
pub enum PromptSource {
    /// Synthesised speech, arriving sentence by sentence.
    Speech(SpeechStream),
    /// 8 kHz PCM (e.g. from a file).
    Pcm(Arc<[i16]>),
    /// Audio still being fetched (`playUrl`): it keeps its place in the queue; while it is not
    /// there the player sends silence (and so holds a SIP bot back), a failure ends the prompt
    /// with the reason.
    Later(tokio::sync::oneshot::Receiver<Result<Arc<[i16]>, String>>),
    /// Key presses (`sendDtmf`): RFC 4733 telephone-events, frame by frame
    /// ([`crate::media::inject::dtmf_frames`]).
    Dtmf(VecDeque<DtmfFrame>),
}

/// What the next pull from a source gave.
enum Pull {
    Samples(Arc<[i16]>),
    Pending,
    Done,
    Failed(TtsError),
}

impl PromptSource {
    fn pull(&mut self) -> Pull {
        match self {
            PromptSource::Speech(s) => match s.try_next() {
                TryNext::Chunk(c) => Pull::Samples(c.pcm),
                TryNext::Pending => Pull::Pending,
                TryNext::Done => Pull::Done,
                TryNext::Failed(e) => Pull::Failed(e),
            },
            PromptSource::Later(rx) => {
                use tokio::sync::oneshot::error::TryRecvError;
                let pulled = match rx.try_recv() {
                    Ok(Ok(pcm)) => Pull::Samples(pcm),
                    Ok(Err(e)) => Pull::Failed(TtsError::Unplayable(e)),
                    Err(TryRecvError::Empty) => return Pull::Pending,
                    Err(TryRecvError::Closed) => {
                        Pull::Failed(TtsError::Unplayable("the audio never came".into()))
                    }
                };
                // Delivered once: what follows is the end of the prompt.
                *self = PromptSource::Pcm(Arc::from(Vec::new()));
                pulled
            }
            // Key presses are sent by `PlayerCore::next_dtmf`, never pulled as audio.
            PromptSource::Dtmf(_) => Pull::Done,
            PromptSource::Pcm(p) => {
                let pcm = std::mem::replace(p, Arc::from(Vec::new()));
                if pcm.is_empty() {
                    Pull::Done
                } else {
                    Pull::Samples(pcm)
                }
            }
        }
    }
}

struct Playing {
    id: PromptId,
    source: PromptSource,
    buffer: VecDeque<i16>,
    source_done: bool,
    error: Option<String>,
    started: bool,
}

impl Playing {
    /// Pull everything the source has ready into the buffer.
    fn refill(&mut self) {
        while !self.source_done && self.buffer.len() < FRAME_SAMPLES {
            match self.source.pull() {
                Pull::Samples(s) => self.buffer.extend(s.iter()),
                Pull::Pending => break,
                Pull::Done => self.source_done = true,
                Pull::Failed(e) => {
                    self.error = Some(e.to_string());
                    self.source_done = true;
                }
            }
        }
    }

    /// The next frame if one is ready (a short tail is padded with silence); `None` while the
    /// source is still synthesising.
    fn frame(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        self.refill();
        if self.buffer.len() < FRAME_SAMPLES && !self.source_done || self.buffer.is_empty() {
            return None;
        }
        let mut f = [0i16; FRAME_SAMPLES];
        for s in f.iter_mut() {
            match self.buffer.pop_front() {
                Some(v) => *s = v,
                None => break,
            }
        }
        Some(f)
    }

    fn finished(&self) -> bool {
        self.source_done && self.buffer.is_empty()
    }
}

/// Errors the core reports to its callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayerError {
    /// Too many prompts queued (the bound is in the message).
    #[error("player queue full ({0} prompts)")]
    QueueFull(usize),
    /// The player has stopped (call ended).
    #[error("player stopped")]
    Stopped,
    /// The UDP socket could not be opened or used.
    #[error("player socket: {0}")]
    Socket(String),
}

/// Counters of one player.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerCounters {
    /// RTP packets produced.
    pub packets: u64,
    /// Of which carried prompt audio (the rest silence).
    pub audio_packets: u64,
    /// Times the schedule restarted after a stall.
    pub reanchors: u64,
}

/// The sans-IO player.
pub struct PlayerCore {
    codec: AudioCodec,
    ssrc: u32,
    seq: u16,
    ts: u32,
    first_packet: bool,
    deadline: Instant,
    send_silence: bool,
    max_queued: usize,
    queue: VecDeque<(PromptId, PromptSource)>,
    playing: Option<Playing>,
    /// Payload type of telephone-events.
    dtmf_pt: u8,
    /// Timestamp of the key press being sent (all its packets carry it).
    event_ts: u32,
    events: VecDeque<PlayerEvent>,
    counters: PlayerCounters,
}

impl PlayerCore {
    /// A player starting at `now` (first frame due then), with the RTP identity given (random
    /// in production), sending silence between prompts when `send_silence`.
    pub fn new(
        now: Instant,
        codec: AudioCodec,
        (ssrc, seq, ts): (u32, u16, u32),
        send_silence: bool,
        max_queued: usize,
    ) -> PlayerCore {
        PlayerCore {
            codec,
            ssrc,
            seq,
            ts,
            first_packet: true,
            deadline: now,
            send_silence,
            max_queued: max_queued.max(1),
            queue: VecDeque::new(),
            playing: None,
            dtmf_pt: INJECT_DTMF_PT,
            event_ts: 0,
            events: VecDeque::new(),
            counters: PlayerCounters::default(),
        }
    }

    /// Queue a prompt (played after those before it).
    pub fn enqueue(&mut self, id: PromptId, source: PromptSource) -> Result<(), PlayerError> {
        if self.queue.len() >= self.max_queued {
            return Err(PlayerError::QueueFull(self.max_queued));
        }
        self.queue.push_back((id, source));
        Ok(())
    }

    /// Cut the current prompt and drop the queued ones (each gets `PromptFinished{interrupted}`;
    /// their synthesis is cancelled), then `QueueDrained` if anything was there.
    pub fn abort(&mut self) {
        let had_any = self.playing.is_some() || !self.queue.is_empty();
        let ids = self
            .playing
            .take()
            .map(|p| p.id)
            .into_iter()
            .chain(self.queue.drain(..).map(|(id, _)| id));
        let finished: Vec<PlayerEvent> = ids
            .map(|id| PlayerEvent::PromptFinished {
                id,
                interrupted: true,
                error: None,
            })
            .collect();
        self.events.extend(finished);
        if had_any {
            self.events.push_back(PlayerEvent::QueueDrained);
        }
    }

    /// The payload type of the telephone-events it sends (default
    /// [`INJECT_DTMF_PT`]).
    pub fn set_dtmf_pt(&mut self, pt: u8) {
        self.dtmf_pt = pt;
    }

    /// The codec in use.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Change the codec (re-negotiation); timing and sequence continue.
    pub fn set_codec(&mut self, codec: AudioCodec) {
        self.codec = codec;
    }

    /// True while a prompt is playing or queued.
    pub fn busy(&self) -> bool {
        self.playing.is_some() || !self.queue.is_empty()
    }

    /// When [`PlayerCore::on_tick`] next has something to send.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<PlayerEvent> {
        self.events.pop_front()
    }

    /// Counters so far.
    pub fn counters(&self) -> PlayerCounters {
        self.counters
    }

    /// At or after the deadline: the next RTP packet (prompt audio, or silence between prompts
    /// when configured). Before it: nothing.
    pub fn on_tick(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.deadline {
            return None;
        }
        self.deadline += FRAME;
        if now > self.deadline + MAX_CATCH_UP {
            self.deadline = now + FRAME;
            self.counters.reanchors += 1;
        }
        if let Some(packet) = self.next_dtmf() {
            self.counters.packets += 1;
            return Some(packet);
        }
        let frame = self.next_audio();
        // While a prompt is under way (e.g. waiting for its next sentence) silence keeps the
        // stream going even without `send_silence`: an injected prompt holds the bot back.
        let busy = self.busy();
        let payload = match (&frame, self.send_silence || busy) {
            (Some(f), _) => f.as_slice(),
            (None, true) => &[0i16; FRAME_SAMPLES][..],
            (None, false) => {
                // Nothing to send, but the clock runs on: the timestamp keeps real time.
                self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
                return None;
            }
        };
        let packet = self.packet(payload);
        self.counters.packets += 1;
        if frame.is_some() {
            self.counters.audio_packets += 1;
        }
        Some(packet)
    }

    /// When the current (or next) prompt is key presses: its next packet (a telephone-event,
    /// or silence between presses); `None` for any other prompt.
    fn next_dtmf(&mut self) -> Option<Vec<u8>> {
        if self.playing.is_none() && matches!(self.queue.front(), Some((_, PromptSource::Dtmf(_))))
        {
            self.start_next()?;
        }
        let p = self.playing.as_mut()?;
        let PromptSource::Dtmf(frames) = &mut p.source else {
            return None;
        };
        let Some(frame) = frames.pop_front() else {
            let done = self.playing.take()?;
            self.events.push_back(PlayerEvent::PromptFinished {
                id: done.id,
                interrupted: false,
                error: None,
            });
            if self.queue.is_empty() {
                self.events.push_back(PlayerEvent::QueueDrained);
            }
            // This frame's slot goes to whatever follows (audio, silence or nothing).
            return None;
        };
        if !p.started {
            p.started = true;
            self.events
                .push_back(PlayerEvent::PromptStarted { id: p.id });
        }
        Some(match frame {
            DtmfFrame::Silence => self.packet(&[0i16; FRAME_SAMPLES]),
            DtmfFrame::Event {
                event,
                start,
                end,
                duration,
            } => {
                if start {
                    self.event_ts = self.ts;
                }
                self.event_packet(&DtmfFrame::payload(event, end, duration), start)
            }
        })
    }

    /// A telephone-event packet: the press's timestamp, the next sequence number; the media
    /// clock runs on (the next audio frame's timestamp follows real time).
    fn event_packet(&mut self, payload: &[u8; 4], start: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(RTP_HEADER + 4);
        let marker = if start || self.first_packet { 0x80 } else { 0 };
        self.first_packet = false;
        p.push(0x80);
        p.push(marker | (self.dtmf_pt & 0x7f));
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.event_ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
        p
    }

    /// Takes the queue's head as the prompt now playing; `None` when the queue is empty.
    fn start_next(&mut self) -> Option<()> {
        let (id, source) = self.queue.pop_front()?;
        self.playing = Some(Playing {
            id,
            source,
            buffer: VecDeque::new(),
            source_done: false,
            error: None,
            started: false,
        });
        Some(())
    }

    /// The next frame of prompt audio, moving through the queue and emitting events.
    fn next_audio(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        loop {
            if self.playing.is_none() {
                if matches!(self.queue.front(), Some((_, PromptSource::Dtmf(_)))) {
                    // Key presses start on the next frame (`next_dtmf`).
                    return None;
                }
                self.start_next()?;
            }
            let p = self.playing.as_mut()?;
            if let Some(f) = p.frame() {
                if !p.started {
                    p.started = true;
                    self.events
                        .push_back(PlayerEvent::PromptStarted { id: p.id });
                }
                return Some(f);
            }
            if !p.finished() {
                // Still synthesising: silence for now, the prompt continues when audio comes.
                return None;
            }
            let done = self.playing.take()?;
            self.events.push_back(PlayerEvent::PromptFinished {
                id: done.id,
                interrupted: false,
                error: done.error,
            });
            if self.queue.is_empty() {
                self.events.push_back(PlayerEvent::QueueDrained);
                return None;
            }
        }
    }

    fn packet(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut p = Vec::with_capacity(RTP_HEADER + pcm.len());
        let marker = if self.first_packet { 0x80 } else { 0 };
        self.first_packet = false;
        p.push(0x80);
        p.push(marker | (self.codec.pt & 0x7f));
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend(pcm.iter().map(|s| g711::encode(self.codec.law, *s)));
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(n: usize, v: i16) -> PromptSource {
        PromptSource::Pcm(vec![v; n].into())
    }

    fn events(c: &mut PlayerCore) -> Vec<PlayerEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn frames_are_paced_and_numbered() {
        // 1. A player at t0 with a 50 ms prompt (3 frames, the last padded).
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMU, (7, 65535, 1000), true, 4);
        c.enqueue(PromptId(1), pcm(400, 1000)).unwrap();
        // 2. Nothing before the deadline; one packet at it, the next 20 ms later.
        let p0 = c.on_tick(t0).expect("first packet");
        assert!(c.on_tick(t0 + Duration::from_millis(19)).is_none());
        let p1 = c.on_tick(t0 + FRAME).expect("second");
        // 3. Sequence wraps, timestamp +160, marker only on the first, PT 0, SSRC kept.
        assert_eq!((p0[1], p1[1]), (0x80, 0x00));
        assert_eq!(u16::from_be_bytes([p0[2], p0[3]]), 65535);
        assert_eq!(u16::from_be_bytes([p1[2], p1[3]]), 0);
        assert_eq!(u32::from_be_bytes([p1[4], p1[5], p1[6], p1[7]]), 1160);
        assert_eq!(u32::from_be_bytes([p1[8], p1[9], p1[10], p1[11]]), 7);
        assert_eq!(p0.len(), RTP_HEADER + FRAME_SAMPLES);
        // 4. Third frame: 80 samples of audio then silence; then the prompt is over.
        let p2 = c.on_tick(t0 + 2 * FRAME).unwrap();
        let silence = g711::encode(g711::G711Law::Pcmu, 0);
        assert_ne!(p2[RTP_HEADER + 79], silence);
        assert_eq!(p2[RTP_HEADER + 80], silence);
        let _ = c.on_tick(t0 + 3 * FRAME).unwrap();
        assert_eq!(
            events(&mut c),
            vec![
                PlayerEvent::PromptStarted { id: PromptId(1) },
                PlayerEvent::PromptFinished {
                    id: PromptId(1),
                    interrupted: false,
                    error: None
                },
                PlayerEvent::QueueDrained
            ]
        );
        assert_eq!(c.counters().audio_packets, 3);
    }

    #[test]
    fn late_ticks_catch_up_small_delays_and_restart_after_stalls() {
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMA, (1, 0, 0), true, 4);
        // 1. Woken 30 ms late: the due frame goes, the next is still due at t0 + 20 ms.
        c.on_tick(t0 + Duration::from_millis(30)).unwrap();
        assert_eq!(c.poll_timeout(), t0 + FRAME);
        // 2. A 200 ms stall: one frame, then the schedule restarts 20 ms after now.
        let late = t0 + Duration::from_millis(230);
        c.on_tick(late).unwrap();
        assert!(c.on_tick(late).is_none());
        assert_eq!(c.poll_timeout(), late + FRAME);
        assert_eq!(c.counters().reanchors, 1);
    }

    #[test]
    fn abort_cuts_current_and_queued() {
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMU, (1, 0, 0), true, 4);
        c.enqueue(PromptId(1), pcm(8000, 500)).unwrap();
        c.enqueue(PromptId(2), pcm(8000, 500)).unwrap();
        c.on_tick(t0).unwrap();
        c.abort();
        assert_eq!(
            events(&mut c),
            vec![
                PlayerEvent::PromptStarted { id: PromptId(1) },
                PlayerEvent::PromptFinished {
                    id: PromptId(1),
                    interrupted: true,
                    error: None
                },
                PlayerEvent::PromptFinished {
                    id: PromptId(2),
                    interrupted: true,
                    error: None
                },
                PlayerEvent::QueueDrained
            ]
        );
        // The next frame is silence; an abort with nothing queued says nothing.
        let p = c.on_tick(t0 + FRAME).unwrap();
        assert!(p[RTP_HEADER..].iter().all(|b| *b == 0xff));
        c.abort();
        assert!(c.poll_event().is_none());
    }

    #[test]
    fn key_presses_are_telephone_events_between_audio_frames() {
        use crate::media::inject::{DtmfStep, dtmf_frames};
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMU, (9, 100, 8000), false, 4);
        // 1. One audio frame, the key "5", then another audio frame.
        c.enqueue(PromptId(1), pcm(160, 700)).unwrap();
        let keys = dtmf_frames(&[DtmfStep::Key(5)]).into_iter().collect();
        c.enqueue(PromptId(2), PromptSource::Dtmf(keys)).unwrap();
        c.enqueue(PromptId(3), pcm(160, 700)).unwrap();
        let mut packets = Vec::new();
        for i in 0..14 {
            packets.extend(c.on_tick(t0 + FRAME * i));
        }
        let hdr = |p: &Vec<u8>| {
            (
                p[1] & 0x7f,
                p[1] & 0x80 != 0,
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            )
        };
        // 2. audio, one silent frame, 8 events (5 tone + 3 end), one silent gap frame, audio.
        let kinds: Vec<u8> = packets.iter().map(|p| hdr(p).0).collect();
        assert_eq!(kinds, [0, 0, 101, 101, 101, 101, 101, 101, 101, 101, 0, 0]);
        // 3. Sequence numbers without a gap; the events share the press's timestamp (frame 2),
        //    marker on the first event only; the audio after resumes at real time.
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(hdr(p).2, 100 + i as u16);
        }
        let press_ts = 8000 + 2 * 160;
        assert!(packets[2..10].iter().all(|p| hdr(p).3 == press_ts));
        assert!(hdr(&packets[2]).1 && !hdr(&packets[3]).1);
        assert_eq!(hdr(&packets[11]).3, 8000 + 11 * 160);
        // 4. Payloads: durations 160..800, then three end packets.
        assert_eq!(&packets[2][RTP_HEADER..], &[5, 10, 0, 160]);
        assert_eq!(&packets[6][RTP_HEADER..], &[5, 10, 3, 32]);
        assert!(
            packets[7..10]
                .iter()
                .all(|p| p[RTP_HEADER..] == [5, 0x8a, 3, 32])
        );
        // 5. Each prompt finishes once, in order, then the queue drains.
        let finished: Vec<PromptId> = events(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                PlayerEvent::PromptFinished { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(finished, [PromptId(1), PromptId(2), PromptId(3)]);
    }

    #[test]
    fn audio_fetched_later_keeps_its_place_and_a_failure_ends_it_with_the_reason() {
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMU, (1, 0, 0), false, 4);
        // 1. A file still being fetched, then a PCM prompt behind it.
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.enqueue(PromptId(1), PromptSource::Later(rx)).unwrap();
        c.enqueue(PromptId(2), pcm(160, 900)).unwrap();
        // 2. Meanwhile: silence (it holds the place), nothing started.
        let p = c.on_tick(t0).expect("silence while fetching");
        assert!(p[RTP_HEADER..].iter().all(|b| *b == 0xff));
        assert!(events(&mut c).is_empty());
        // 3. The fetch fails: prompt 1 ends with the reason, prompt 2 plays.
        tx.send(Err("answered 404".into())).unwrap();
        let p = c.on_tick(t0 + FRAME).unwrap();
        assert_ne!(p[RTP_HEADER], 0xff);
        assert_eq!(
            events(&mut c),
            vec![
                PlayerEvent::PromptFinished {
                    id: PromptId(1),
                    interrupted: false,
                    error: Some("answered 404".into())
                },
                PlayerEvent::PromptStarted { id: PromptId(2) },
            ]
        );
    }

    #[test]
    fn queue_is_bounded_and_silence_can_be_off() {
        let t0 = Instant::now();
        let mut c = PlayerCore::new(t0, AudioCodec::PCMU, (1, 0, 0), false, 1);
        c.enqueue(PromptId(1), pcm(160, 1)).unwrap();
        assert_eq!(
            c.enqueue(PromptId(2), pcm(160, 1)),
            Err(PlayerError::QueueFull(1))
        );
        assert!(c.on_tick(t0).is_some());
        // 1. Idle without silence: no packet, but the timestamp advances with the clock.
        assert!(c.on_tick(t0 + FRAME).is_none());
        c.enqueue(PromptId(3), pcm(160, 1)).unwrap();
        let p = c.on_tick(t0 + 2 * FRAME).unwrap();
        assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), 320);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 1);
    }
}
