//! Dialgate's own audio toward the person: what it plays *in place of* the bot's RTP (a SIP
//! bot's `playUrl` prompts, its `message` text when it opted in to `speak_messages`, and the
//! `sendDtmf` key presses of every bot kind).
//!
//! The injected stream is ordinary paced RTP from dialgate's player (`crate::tts::Player`: one
//! socket, its own SSRC, PCMU audio and RFC 4733 telephone-events) sent to the relay's bot-side
//! port. The relay accepts it from that one address only (set with
//! [`crate::media::MediaSession::set_inject_source`], never latched, never counted as the bot's),
//! and while it flows the bot's own packets toward the person are held back
//! ([`INJECT_HOLD`]). Both sources go through the same outgoing sequence/timestamp map
//! (`leg::SeqMap`), so the person receives one continuous stream: one SSRC, sequence numbers
//! without gaps, timestamps that follow real time, the marker bit at each switch.
//!
//! Also here: the `sendDtmf` digit string and its tone schedule ([`dtmf_plan`]), shared by the
//! call machine (which refuses a bad string before anything is sent) and the player (which paces
//! the packets).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::types::{AudioCodec, Direction, RemoteMedia};

/// Payload type of injected audio (PCMU); the relay transcodes to the person's law.
pub const INJECT_AUDIO_PT: u8 = 0;
/// Payload type of injected telephone-events; the relay rewrites it to the person's.
pub const INJECT_DTMF_PT: u8 = 101;
/// After the last injected packet, the bot's own audio stays held back this long, so a
/// prompt's stream and the bot's never interleave packet by packet.
pub const INJECT_HOLD: Duration = Duration::from_millis(100);

/// The most digits one `sendDtmf` may carry (pauses `w` not counted).
pub const MAX_DTMF_DIGITS: usize = 20;
/// Tone length of one key press: 5 frames of 20 ms.
pub const TONE_FRAMES: u32 = 5;
/// Gap after a press before the next: 70 ms asked, rounded up to whole 20 ms frames (80 ms).
/// The three end packets go out in the first three frames of the gap.
pub const GAP_FRAMES: u32 = 4;
/// End-of-event packets per press (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: u32 = 3;
/// A `w` in the digit string: 0.5 s of silence.
pub const PAUSE_FRAMES: u32 = 25;
/// Volume field of generated events (−10 dBm0).
pub const DTMF_VOLUME: u8 = 10;

/// The relay's view of the injection source of one session.
#[derive(Debug, Default)]
pub(crate) struct InjectSource {
    addr: Option<SocketAddr>,
    last: Option<Instant>,
    /// Injected packets went out since the bot's last one.
    owed_return: bool,
}

impl InjectSource {
    /// Sets (or clears) the one address injected packets come from.
    pub(crate) fn set(&mut self, addr: Option<SocketAddr>) {
        self.addr = addr;
        self.last = None;
    }

    /// True when a packet from `from` is injected (and notes that it flows).
    #[inline]
    pub(crate) fn accept(&mut self, from: SocketAddr, now: Instant) -> bool {
        if self.addr == Some(from) {
            self.last = Some(now);
            self.owed_return = true;
            true
        } else {
            false
        }
    }

    /// True once for the bot's first packet forwarded after injected ones (the stream switches
    /// back to the bot).
    pub(crate) fn take_return(&mut self) -> bool {
        std::mem::take(&mut self.owed_return)
    }

    /// True while injected audio flows: the bot's own packets are held back.
    #[inline]
    pub(crate) fn holds_bot(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|t| now.saturating_duration_since(t) < INJECT_HOLD)
    }

    /// How the relay reads injected packets: PCMU and telephone-events at fixed types.
    pub(crate) fn remote(from: SocketAddr) -> RemoteMedia {
        RemoteMedia {
            rtp: from,
            rtcp: None,
            codec: AudioCodec::PCMU,
            dtmf_pt: Some(INJECT_DTMF_PT),
            direction: Direction::SendRecv,
        }
    }
}

/// Why a `sendDtmf` digit string is refused (nothing is sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// No digit at all.
    #[error("dtmfDigits holds no digit")]
    Empty,
    /// More than [`MAX_DTMF_DIGITS`] digits.
    #[error("dtmfDigits holds {0} digits; at most {MAX_DTMF_DIGITS} are sent")]
    TooLong(usize),
    /// A character that is neither a key (`0-9 * # A-D`) nor a pause (`w`).
    #[error("dtmfDigits: `{0}` is not a key (0-9, *, #, A-D) nor a pause (w)")]
    BadChar(char),
}

/// One step of a digit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfStep {
    /// A key press: its RFC 4733 event code (0–15).
    Key(u8),
    /// A 0.5 s pause.
    Pause,
}

/// Checks a `sendDtmf` string and turns it into steps. Keys `0-9 * # A-D` (letters in either
/// case), `w`/`W` a 0.5 s pause.
pub fn dtmf_plan(digits: &str) -> Result<Vec<DtmfStep>, DtmfError> {
    let mut steps = Vec::with_capacity(digits.len());
    let mut keys = 0;
    for c in digits.chars() {
        let step = match c.to_ascii_uppercase() {
            d @ '0'..='9' => DtmfStep::Key(d as u8 - b'0'),
            '*' => DtmfStep::Key(10),
            '#' => DtmfStep::Key(11),
            l @ 'A'..='D' => DtmfStep::Key(12 + (l as u8 - b'A')),
            'W' => DtmfStep::Pause,
            _ => return Err(DtmfError::BadChar(c)),
        };
        if matches!(step, DtmfStep::Key(_)) {
            keys += 1;
        }
        steps.push(step);
    }
    match keys {
        0 => Err(DtmfError::Empty),
        n if n > MAX_DTMF_DIGITS => Err(DtmfError::TooLong(n)),
        _ => Ok(steps),
    }
}

/// What one 20 ms frame of a digit string carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfFrame {
    /// A telephone-event packet (RFC 4733 §2.3): `start` = first packet of the press (marker
    /// bit, and the event's timestamp is this frame's); `duration` in 8 kHz units since start.
    Event {
        /// Event code.
        event: u8,
        /// First packet of the press.
        start: bool,
        /// End bit.
        end: bool,
        /// Duration so far, 8 kHz units.
        duration: u16,
    },
    /// Silence (audio), between presses and in pauses.
    Silence,
}

impl DtmfFrame {
    /// The 4-byte RFC 4733 payload of an event frame.
    pub fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [
            event,
            if end { 0x80 | DTMF_VOLUME } else { DTMF_VOLUME },
            d[0],
            d[1],
        ]
    }
}

/// The frame-by-frame schedule of a digit string: per press 5 tone frames (durations 160 …
/// 800), then 4 gap frames of which the first three repeat the end packet (duration 800);
/// per pause 25 silent frames.
pub fn dtmf_frames(steps: &[DtmfStep]) -> Vec<DtmfFrame> {
    let mut out = Vec::new();
    for step in steps {
        match *step {
            DtmfStep::Key(event) => {
                for i in 0..TONE_FRAMES {
                    out.push(DtmfFrame::Event {
                        event,
                        start: i == 0,
                        end: false,
                        duration: ((i + 1) * 160) as u16,
                    });
                }
                for i in 0..GAP_FRAMES {
                    out.push(if i < END_PACKETS {
                        DtmfFrame::Event {
                            event,
                            start: false,
                            end: true,
                            duration: (TONE_FRAMES * 160) as u16,
                        }
                    } else {
                        DtmfFrame::Silence
                    });
                }
            }
            DtmfStep::Pause => out.extend(std::iter::repeat_n(
                DtmfFrame::Silence,
                PAUSE_FRAMES as usize,
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_strings_are_checked() {
        // 1. Every key and the pause, letters in either case.
        let plan = dtmf_plan("0123456789*#ABCDabcdw").unwrap();
        assert_eq!(plan.len(), 21);
        assert_eq!(plan[10], DtmfStep::Key(10));
        assert_eq!(plan[11], DtmfStep::Key(11));
        assert_eq!(plan[15], DtmfStep::Key(15));
        assert_eq!(plan[16], DtmfStep::Key(12));
        assert_eq!(plan[20], DtmfStep::Pause);
        // 2. Refusals say why.
        assert_eq!(dtmf_plan(""), Err(DtmfError::Empty));
        assert_eq!(dtmf_plan("ww"), Err(DtmfError::Empty));
        assert_eq!(dtmf_plan("12x"), Err(DtmfError::BadChar('x')));
        assert_eq!(dtmf_plan("1 2"), Err(DtmfError::BadChar(' ')));
        assert_eq!(dtmf_plan(&"1".repeat(21)), Err(DtmfError::TooLong(21)));
        // 3. Twenty keys plus pauses are fine.
        assert!(dtmf_plan(&format!("{}w", "9".repeat(20))).is_ok());
    }

    #[test]
    fn a_press_is_a_100_ms_tone_three_end_packets_and_an_80_ms_gap() {
        let f = dtmf_frames(&[DtmfStep::Key(5), DtmfStep::Pause, DtmfStep::Key(11)]);
        // 1. 9 frames per press, 25 per pause.
        assert_eq!(f.len(), 9 + 25 + 9);
        // 2. The first press: start marker, durations growing by 160, three ends at 800.
        assert_eq!(
            f[0],
            DtmfFrame::Event {
                event: 5,
                start: true,
                end: false,
                duration: 160
            }
        );
        assert_eq!(
            f[4],
            DtmfFrame::Event {
                event: 5,
                start: false,
                end: false,
                duration: 800
            }
        );
        for e in &f[5..8] {
            assert_eq!(
                *e,
                DtmfFrame::Event {
                    event: 5,
                    start: false,
                    end: true,
                    duration: 800
                }
            );
        }
        assert_eq!(f[8], DtmfFrame::Silence);
        assert!(f[9..34].iter().all(|x| *x == DtmfFrame::Silence));
        assert!(matches!(
            f[34],
            DtmfFrame::Event {
                event: 11,
                start: true,
                ..
            }
        ));
        // 3. The payload: event, end bit + volume, duration big-endian.
        assert_eq!(DtmfFrame::payload(11, true, 800), [11, 0x8a, 3, 0x20]);
    }

    #[test]
    fn the_bot_is_held_back_only_while_injected_audio_flows() {
        let me: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let t0 = Instant::now();
        let mut s = InjectSource::default();
        // 1. No source: nothing is injected, nothing held.
        assert!(!s.accept(me, t0));
        assert!(!s.holds_bot(t0));
        // 2. Packets from the source are injected and hold the bot back for INJECT_HOLD.
        s.set(Some(me));
        assert!(!s.accept(other, t0));
        assert!(!s.holds_bot(t0));
        assert!(s.accept(me, t0));
        assert!(s.holds_bot(t0 + Duration::from_millis(99)));
        assert!(!s.holds_bot(t0 + INJECT_HOLD));
    }
}
