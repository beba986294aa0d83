//! G.711 µ-law / A-law codecs (ITU-T G.711), table driven.
//!
//! Decoding is a 256-entry table lookup; transcoding between the two laws is a
//! second 256-entry byte table so that it can be applied in place on a payload
//! without allocating (payload length is unchanged: one byte per sample).

/// Which G.711 law a leg negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

/// Encodes one 16-bit linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    // The segment is the position of the highest set bit above bit 7 (the bias sets bit 7,
    // and the clip keeps `s` under bit 15): one `lzcnt`, not a loop over the segments — this
    // runs per sample of every frame played to a WebSocket bot's callee.
    let exponent = 24 - (s as u32).leading_zeros() as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample to A-law (the Sun reference algorithm).
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = (sample as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|&end| v <= end).unwrap_or(8);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg as u8) << 4;
    if seg < 2 {
        aval |= ((v >> 1) & 0x0f) as u8;
    } else {
        aval |= ((v >> seg) & 0x0f) as u8;
    }
    aval ^ mask
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let seg = ((a & 0x70) >> 4) as i32;
    let mut t = ((a & 0x0f) as i32) << 4;
    if seg == 0 {
        t += 8;
    } else {
        t += 0x108;
        t <<= seg - 1;
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

/// µ-law byte → linear sample.
pub static ULAW_DECODE: [i16; 256] = build_ulaw_table();
/// A-law byte → linear sample.
pub static ALAW_DECODE: [i16; 256] = build_alaw_table();

fn build_transcode(decode: &[i16; 256], encode: fn(i16) -> u8) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (i, out) in t.iter_mut().enumerate() {
        *out = encode(decode[i]);
    }
    t
}

/// Tables that turn one law's byte into the other law's byte in place.
pub struct Transcoder {
    ulaw_to_alaw: [u8; 256],
    alaw_to_ulaw: [u8; 256],
}

impl Transcoder {
    /// Builds both direction tables (done once per relay thread, not per packet).
    pub fn new() -> Self {
        Transcoder {
            ulaw_to_alaw: build_transcode(&ULAW_DECODE, linear_to_alaw),
            alaw_to_ulaw: build_transcode(&ALAW_DECODE, linear_to_ulaw),
        }
    }

    /// Rewrites `payload` from law `from` to law `to` in place.
    pub fn transcode_in_place(&self, from: G711Law, to: G711Law, payload: &mut [u8]) {
        let table = match (from, to) {
            (G711Law::Pcmu, G711Law::Pcma) => &self.ulaw_to_alaw,
            (G711Law::Pcma, G711Law::Pcmu) => &self.alaw_to_ulaw,
            _ => return,
        };
        for b in payload.iter_mut() {
            *b = table[*b as usize];
        }
    }
}

impl Default for Transcoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes one G.711 byte of the given law.
#[inline]
pub fn decode(law: G711Law, byte: u8) -> i16 {
    match law {
        G711Law::Pcmu => ULAW_DECODE[byte as usize],
        G711Law::Pcma => ALAW_DECODE[byte as usize],
    }
}

/// Encodes one linear sample in the given law.
pub fn encode(law: G711Law, sample: i16) -> u8 {
    match law {
        G711Law::Pcmu => linear_to_ulaw(sample),
        G711Law::Pcma => linear_to_alaw(sample),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_round_trips_every_code() {
        // 1. every µ-law code except the duplicate zero (0x7f) decodes and re-encodes to itself
        for b in 0u16..=255 {
            let b = b as u8;
            if b == 0x7f {
                continue;
            }
            assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), b, "code {b:#x}");
        }
    }

    #[test]
    fn every_sample_encodes_as_the_simulators_independent_encoder_does() {
        // 1. All 65,536 samples: the segment found with one `lzcnt` is the reference loop's.
        for s in i16::MIN..=i16::MAX {
            assert_eq!(
                linear_to_ulaw(s),
                crate::sim::g711::linear_to_ulaw(s),
                "{s}"
            );
        }
    }

    #[test]
    fn alaw_round_trips_every_code() {
        // 1. every A-law code decodes and re-encodes to itself
        for b in 0u16..=255 {
            let b = b as u8;
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "code {b:#x}");
        }
    }

    #[test]
    fn known_values() {
        // 1. reference points from G.711: µ-law 0xff is +0, 0x00 is -32124; A-law 0xd5 is +8
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn transcoding_keeps_the_waveform_close() {
        // 1. a sine through µ-law → A-law stays within one quantisation step of the µ-law value
        let tc = Transcoder::new();
        for i in 0..160 {
            let s = ((i as f64 / 160.0 * std::f64::consts::TAU).sin() * 12000.0) as i16;
            let u = linear_to_ulaw(s);
            let mut p = [u];
            tc.transcode_in_place(G711Law::Pcmu, G711Law::Pcma, &mut p);
            let a = alaw_to_linear(p[0]) as i32;
            let lu = ulaw_to_linear(u) as i32;
            assert!(
                (a - lu).abs() <= (lu.abs() / 16).max(16),
                "{s}: {lu} vs {a}"
            );
        }
    }
}
