//! Audio between the call's 8 kHz linear PCM and a WebSocket media format.

use super::config::MediaFormat;
use super::resample::{Downsampler, Upsampler};
use crate::media::g711::{linear_to_ulaw, ulaw_to_linear};

/// 8 kHz PCM → wire bytes (little-endian 16-bit PCM at 16/24 kHz, or µ-law at 8 kHz).
#[derive(Debug, Clone)]
pub struct Encoder {
    format: MediaFormat,
    up: Upsampler,
    scratch: Vec<i16>,
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: MediaFormat) -> Encoder {
        Encoder {
            format,
            up: Upsampler::new((format.sample_rate() / 8000) as usize),
            scratch: Vec::new(),
        }
    }

    /// Appends the wire bytes for `pcm8k` to `out`.
    pub fn encode(&mut self, pcm8k: &[i16], out: &mut Vec<u8>) {
        match self.format {
            MediaFormat::Mulaw => out.extend(pcm8k.iter().map(|&s| linear_to_ulaw(s))),
            MediaFormat::Lpcm16 | MediaFormat::Lpcm16At24k => {
                self.scratch.clear();
                self.up.process(pcm8k, &mut self.scratch);
                out.extend(self.scratch.iter().flat_map(|s| s.to_le_bytes()));
            }
        }
    }

    /// Wire bytes per 8 kHz input sample.
    pub fn bytes_per_input_sample(&self) -> usize {
        match self.format {
            MediaFormat::Mulaw => 1,
            f => 2 * (f.sample_rate() / 8000) as usize,
        }
    }
}

/// Wire bytes → 8 kHz PCM. An odd trailing byte of 16-bit PCM waits for the next chunk.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: MediaFormat,
    down: Downsampler,
    carry: Option<u8>,
    scratch: Vec<i16>,
}

impl Decoder {
    /// A decoder for `format`.
    pub fn new(format: MediaFormat) -> Decoder {
        Decoder {
            format,
            down: Downsampler::new((format.sample_rate() / 8000) as usize),
            carry: None,
            scratch: Vec::new(),
        }
    }

    /// The format decoded.
    pub fn format(&self) -> MediaFormat {
        self.format
    }

    /// Appends the 8 kHz samples for `bytes` to `out`.
    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<i16>) {
        match self.format {
            MediaFormat::Mulaw => out.extend(bytes.iter().map(|&b| ulaw_to_linear(b))),
            MediaFormat::Lpcm16 | MediaFormat::Lpcm16At24k => {
                self.scratch.clear();
                let mut rest = bytes;
                if let (Some(lo), Some((&hi, tail))) = (self.carry, rest.split_first()) {
                    self.scratch.push(i16::from_le_bytes([lo, hi]));
                    self.carry = None;
                    rest = tail;
                }
                let pairs = rest.chunks_exact(2);
                if let [odd] = pairs.remainder() {
                    self.carry = Some(*odd);
                }
                self.scratch
                    .extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
                self.down.process(&self.scratch, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpcm_round_trip_keeps_the_signal_and_odd_chunks_lose_no_byte() {
        for format in [MediaFormat::Lpcm16, MediaFormat::Lpcm16At24k] {
            // 1. A 500 Hz tone encoded in 20 ms frames.
            let input: Vec<i16> = (0..8000)
                .map(|i| {
                    (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 8000.0).sin()) as i16
                })
                .collect();
            let mut enc = Encoder::new(format);
            let mut wire = Vec::new();
            for f in input.chunks(160) {
                enc.encode(f, &mut wire);
            }
            assert_eq!(wire.len(), input.len() * enc.bytes_per_input_sample());
            // 2. Decoded from chunks of odd sizes: every sample comes back.
            let mut dec = Decoder::new(format);
            let mut back = Vec::new();
            for c in wire.chunks(333) {
                dec.decode(c, &mut back);
            }
            assert_eq!(back.len(), input.len());
            // 3. After the two filters' delay (16 samples at 8 kHz each) it is the same tone.
            let delay = 32.0;
            for (i, v) in back.iter().enumerate().skip(1000) {
                let want = 8000.0
                    * (2.0 * std::f64::consts::PI * 500.0 * (i as f64 - delay) / 8000.0).sin();
                assert!(
                    (*v as f64 - want).abs() < 150.0,
                    "{format} i {i}: {v} vs {want}"
                );
            }
        }
    }

    #[test]
    fn mulaw_is_one_byte_per_sample() {
        let mut enc = Encoder::new(MediaFormat::Mulaw);
        let mut wire = Vec::new();
        enc.encode(&[0, 1000, -1000], &mut wire);
        assert_eq!(wire.len(), 3);
        let mut dec = Decoder::new(MediaFormat::Mulaw);
        let mut back = Vec::new();
        dec.decode(&wire, &mut back);
        assert!(
            back.iter()
                .zip([0i16, 1000, -1000])
                .all(|(a, b)| (a - b).abs() < 40),
            "{back:?}"
        );
    }
}
