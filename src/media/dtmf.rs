//! Key presses in the callee's RTP (RFC 4733 telephone-events), read by the relay.
//!
//! One key press is a run of packets with the same RTP timestamp: updates while the key is down,
//! then the end packet, usually sent three times. The detector reports each press once, on its
//! first packet (so a press whose end packets are lost is still reported), and ignores the
//! packets that repeat it. Some senders (PJSIP among them) give consecutive presses of one dialled
//! string the same timestamp, so a different event, or a key-down packet after the end of the
//! press, is a new press too. Sans-IO: fed payloads, returns digits.

/// The digits of events 0..=15 (RFC 4733 §3.2); other events (flash, tones) are not keys.
const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

/// Reports each key press of one RTP stream once.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// `(ssrc, timestamp, event)` of the last press reported.
    last: Option<(u32, u32, u8)>,
    /// Its end packet was seen.
    ended: bool,
}

impl DtmfDetector {
    /// Reads one telephone-event payload with its packet's SSRC and RTP timestamp; returns the
    /// digit when this packet starts a press not yet reported. Malformed payloads are ignored.
    pub fn observe(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = *payload.first()?;
        if payload.len() < 4 {
            return None;
        }
        let digit = *DIGITS.get(event as usize)? as char;
        let end = payload[1] & 0x80 != 0;
        let same = self.last == Some((ssrc, timestamp, event));
        // A repeat of the press; a key-down packet after its end is a new press.
        let new_after_end = self.ended && !end;
        if same && !new_after_end {
            self.ended |= end;
            return None;
        }
        self.last = Some((ssrc, timestamp, event));
        self.ended = end;
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RFC 4733 payload: event, end bit, volume 10, duration.
    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn each_press_is_reported_once_in_order() {
        let mut d = DtmfDetector::default();
        // 1. "5": three updates and three end packets at timestamp 1000.
        let mut got = Vec::new();
        for (end, dur) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ] {
            got.extend(d.observe(7, 1000, &ev(5, end, dur)));
        }
        // 2. "#" then "5" again: new timestamps, new presses.
        got.extend(d.observe(7, 3000, &ev(11, false, 160)));
        got.extend(d.observe(7, 3000, &ev(11, true, 800)));
        got.extend(d.observe(7, 5000, &ev(5, true, 800)));
        assert_eq!(got, vec!['5', '#', '5']);
    }

    #[test]
    fn presses_sharing_a_timestamp_are_told_apart() {
        let mut d = DtmfDetector::default();
        let mut got = Vec::new();
        // 1. "#" then "5" with the same timestamp (as PJSIP sends a dialled string).
        for p in [ev(11, false, 160), ev(11, true, 640), ev(11, true, 640)] {
            got.extend(d.observe(9, 8000, &p));
        }
        for p in [ev(5, false, 160), ev(5, true, 640), ev(5, true, 640)] {
            got.extend(d.observe(9, 8000, &p));
        }
        // 2. "5" again, same timestamp: key-down after the end is a new press.
        for p in [ev(5, false, 160), ev(5, true, 640)] {
            got.extend(d.observe(9, 8000, &p));
        }
        assert_eq!(got, vec!['#', '5', '5']);
    }

    #[test]
    fn non_key_events_and_malformed_payloads_are_ignored() {
        let mut d = DtmfDetector::default();
        assert_eq!(d.observe(1, 10, &ev(16, false, 160)), None); // flash
        assert_eq!(d.observe(1, 20, &[5, 0x80]), None); // too short
        assert_eq!(d.observe(1, 30, &[]), None);
        assert_eq!(d.observe(1, 40, &ev(15, true, 160)), Some('D'));
        // 3. A new SSRC with a reused timestamp is a new press.
        assert_eq!(d.observe(2, 40, &ev(1, false, 160)), Some('1'));
    }
}
