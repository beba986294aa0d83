//! Reading evaluation clips: 8 kHz mono WAV, 16-bit PCM or G.711 (µ-law / A-law, WAVE format
//! tags 7 / 6 — what a call carries, and how the greeting set is stored). hound reads only PCM
//! and float, so G.711 files are parsed here (RIFF chunks `fmt ` and `data`).

use std::path::Path;

use super::SttError;
use crate::media::g711::{G711Law, decode};

const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;

fn bad(path: &Path, msg: impl std::fmt::Display) -> SttError {
    SttError::BadInput(format!("{}: {msg}", path.display()))
}

/// Read an 8 kHz mono WAV (16-bit PCM, µ-law or A-law) as linear samples.
pub fn read_wav_8k(path: &Path) -> Result<Vec<i16>, SttError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
    match g711_format(&bytes) {
        Some((law, rate, channels, data)) => {
            if rate != 8000 || channels != 1 {
                return Err(bad(
                    path,
                    format!("need 8 kHz mono, got {rate} Hz {channels} ch"),
                ));
            }
            Ok(data.iter().map(|&b| decode(law, b)).collect())
        }
        None => read_pcm16(path),
    }
}

/// The law, rate, channels and data of a G.711 WAV; `None` for anything else.
fn g711_format(bytes: &[u8]) -> Option<(G711Law, u32, u16, &[u8])> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let (mut fmt, mut data) = (None, None);
    let mut at = 12;
    // Bounded: every step advances by at least the 8-byte chunk header.
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 16 => fmt = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let fmt = fmt?;
    let law = match u16::from_le_bytes([fmt[0], fmt[1]]) {
        FORMAT_ULAW => G711Law::Pcmu,
        FORMAT_ALAW => G711Law::Pcma,
        _ => return None,
    };
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    Some((law, rate, channels, data?))
}

fn read_pcm16(path: &Path) -> Result<Vec<i16>, SttError> {
    let r = hound::WavReader::open(path).map_err(|e| bad(path, e))?;
    let spec = r.spec();
    if spec.sample_rate != 8000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(bad(
            path,
            format!(
                "need 8 kHz mono 16-bit or G.711, got {} Hz {} ch {} bit",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            ),
        ));
    }
    r.into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A µ-law WAV as sox writes it (18-byte fmt chunk, a fact chunk), with the given bytes.
    fn ulaw_wav(rate: u32, data: &[u8]) -> Vec<u8> {
        let mut fmt = Vec::new();
        fmt.extend(FORMAT_ULAW.to_le_bytes());
        fmt.extend(1u16.to_le_bytes());
        fmt.extend(rate.to_le_bytes());
        fmt.extend(rate.to_le_bytes());
        fmt.extend(1u16.to_le_bytes());
        fmt.extend(8u16.to_le_bytes());
        fmt.extend(0u16.to_le_bytes());
        let mut body = b"WAVE".to_vec();
        for (id, chunk) in [
            (b"fmt ", &fmt[..]),
            (b"fact", &[0u8; 4][..]),
            (b"data", data),
        ] {
            body.extend(id);
            body.extend((chunk.len() as u32).to_le_bytes());
            body.extend(chunk);
        }
        let mut out = b"RIFF".to_vec();
        out.extend((body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn mulaw_wav_is_decoded_and_a_wrong_rate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 1. µ-law 0xFF is 0, 0x80 is the largest positive sample.
        let p = dir.path().join("u.wav");
        std::fs::write(&p, ulaw_wav(8000, &[0xFF, 0x80, 0x00])).expect("write");
        let s = read_wav_8k(&p).expect("read");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0], 0);
        assert!(s[1] > 30000 && s[2] < -30000, "{s:?}");
        // 2. 16 kHz is refused with the file named.
        std::fs::write(&p, ulaw_wav(16000, &[0xFF])).expect("write");
        let e = read_wav_8k(&p).expect_err("16 kHz");
        assert!(e.to_string().contains("u.wav"), "{e}");
        // 3. Not a WAV at all: a clear error.
        std::fs::write(&p, b"hello").expect("write");
        assert!(matches!(read_wav_8k(&p), Err(SttError::BadInput(_))));
    }
}
