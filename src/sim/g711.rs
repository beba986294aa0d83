//! G.711 µ-law / A-law (ITU-T G.711), sample by sample. Small and table-free: the sims move a
//! few hundred packets per second, so speed is not a concern here.

/// The two G.711 codecs, with their static RTP payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Codec for a static payload type, if it is G.711.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// `rtpmap` encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Encode one linear sample.
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => linear_to_ulaw(s),
            Codec::Pcma => linear_to_alaw(s),
        }
    }

    /// Decode one byte.
    pub fn decode(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_to_linear(b),
            Codec::Pcma => alaw_to_linear(b),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Linear 16-bit → µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && pcm & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// µ-law → linear 16-bit.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// Linear 16-bit → A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let mut seg = 0;
    let mut end = 0x1F;
    while seg < 8 && pcm > end {
        seg += 1;
        end = (end << 1) | 1;
    }
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let aval = (seg << 4) | ((pcm >> shift) & 0x0F);
    (aval ^ mask) as u8
}

/// A-law → linear 16-bit.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = i32::from(byte ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_encodes_to_the_usual_bytes() {
        // 1. Zero is 0xFF in µ-law and 0xD5 in A-law (what every capture shows).
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
    }

    #[test]
    fn round_trip_error_is_within_quantisation() {
        // 1. Every 16th sample value survives encode+decode within G.711's step size (≤ 1/16 of
        //    the magnitude, plus a small floor near zero).
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for s in (i16::MIN as i32 + 8..=i16::MAX as i32).step_by(16) {
                let s = s as i16;
                let back = codec.decode(codec.encode(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                let allowed = (i32::from(s).abs() / 16).max(40);
                assert!(err <= allowed, "{codec:?} {s} -> {back} (err {err})");
            }
        }
    }

    #[test]
    fn decode_then_encode_is_identity() {
        // 1. Every code word maps back to itself (except µ-law's negative zero 0x7F → 0xFF).
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
            if b != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(b)), b, "ulaw {b:#x}");
            }
        }
    }
}
