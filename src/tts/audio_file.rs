//! Audio files for `playUrl`: WAV (16-bit PCM, µ-law or A-law; mono or stereo, mixed down) or
//! headerless raw audio named by the bot's `playUrlMediaFormat`, decoded to 8 kHz PCM
//! (resampled when the file's rate differs). Pure: bytes in, samples out.

use super::OUTPUT_RATE;
use super::resample::{Resampler, to_i16};
use crate::media::g711::{self, G711Law};

/// The longest prompt decoded (10 minutes at 8 kHz): a bounded amount of memory per call.
pub const MAX_SECONDS: usize = 600;

/// How the bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Pcm16,
    G711(G711Law),
}

/// Why a file cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioFileError {
    /// `playUrlMediaFormat` names no format dialgate plays.
    #[error(
        "playUrlMediaFormat `{0}` is not played (wav, wav/lpcm16, wav/mulaw, wav/alaw, raw/lpcm16, raw/lpcm16-16k, raw/mulaw, raw/alaw)"
    )]
    UnknownFormat(String),
    /// Not a RIFF/WAVE file, or its chunks are cut short.
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    /// A WAV encoding other than 16-bit PCM, µ-law or A-law.
    #[error("WAV format tag {tag} with {bits} bits is not played (16-bit PCM, µ-law, A-law)")]
    Unsupported {
        /// The `fmt ` chunk's format tag.
        tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// A sample rate outside 8–48 kHz, or no channel.
    #[error("WAV with {channels} channels at {rate} Hz is not played (8000–48000 Hz)")]
    BadShape {
        /// Channels.
        channels: u16,
        /// Sample rate.
        rate: u32,
    },
    /// The file announces another encoding than `playUrlMediaFormat`.
    #[error("the file is {found}, playUrlMediaFormat says {said}")]
    FormatMismatch {
        /// What the header says.
        found: &'static str,
        /// What the bot said.
        said: String,
    },
    /// No audio in it, or longer than [`MAX_SECONDS`].
    #[error("{0}")]
    Length(String),
}

fn name(e: Encoding) -> &'static str {
    match e {
        Encoding::Pcm16 => "16-bit PCM",
        Encoding::G711(G711Law::Pcmu) => "µ-law",
        Encoding::G711(G711Law::Pcma) => "A-law",
    }
}

/// Decodes a prompt to 8 kHz mono PCM. `format` is the bot's `playUrlMediaFormat` (`None` =
/// a WAV file).
pub fn decode(bytes: &[u8], format: Option<&str>) -> Result<Vec<i16>, AudioFileError> {
    let f = format.map(|f| f.trim().to_ascii_lowercase());
    let (enc, channels, rate, data) = match f.as_deref() {
        None | Some("wav") => wav(bytes)?,
        Some(w @ ("wav/lpcm16" | "wav/mulaw" | "wav/alaw")) => {
            let said = match w {
                "wav/lpcm16" => Encoding::Pcm16,
                "wav/mulaw" => Encoding::G711(G711Law::Pcmu),
                _ => Encoding::G711(G711Law::Pcma),
            };
            let parsed = wav(bytes)?;
            if parsed.0 != said {
                return Err(AudioFileError::FormatMismatch {
                    found: name(parsed.0),
                    said: w.to_owned(),
                });
            }
            parsed
        }
        Some("raw/lpcm16") => (Encoding::Pcm16, 1, 8000, bytes),
        Some("raw/lpcm16-16k") => (Encoding::Pcm16, 1, 16000, bytes),
        Some("raw/mulaw") => (Encoding::G711(G711Law::Pcmu), 1, 8000, bytes),
        Some("raw/alaw") => (Encoding::G711(G711Law::Pcma), 1, 8000, bytes),
        Some(_) => {
            return Err(AudioFileError::UnknownFormat(
                format.unwrap_or_default().to_owned(),
            ));
        }
    };
    let samples: Vec<i16> = match enc {
        Encoding::Pcm16 => data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
        Encoding::G711(law) => data.iter().map(|b| g711::decode(law, *b)).collect(),
    };
    let ch = usize::from(channels);
    let frames = samples.len() / ch;
    if frames == 0 {
        return Err(AudioFileError::Length("the file holds no audio".into()));
    }
    if frames / rate as usize > MAX_SECONDS {
        return Err(AudioFileError::Length(format!(
            "the file lasts {} s; at most {MAX_SECONDS} s are played",
            frames / rate as usize
        )));
    }
    if ch == 1 && rate == OUTPUT_RATE {
        return Ok(samples);
    }
    let mono: Vec<f32> = samples
        .chunks_exact(ch)
        .map(|c| c.iter().map(|s| f32::from(*s) / 32768.0).sum::<f32>() / ch as f32)
        .collect();
    Ok(to_i16(&Resampler::new(rate, OUTPUT_RATE).process(&mono)))
}

type Wav<'a> = (Encoding, u16, u32, &'a [u8]);

/// Reads a RIFF/WAVE file's `fmt ` and `data` chunks.
fn wav(b: &[u8]) -> Result<Wav<'_>, AudioFileError> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(AudioFileError::NotWav("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut fmt: Option<(Encoding, u16, u32)> = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        let body_start = at + 8;
        // A data chunk's length may be a placeholder (streamed writers): take what is there.
        let body_end = body_start.saturating_add(len).min(b.len());
        let body = &b[body_start..body_end];
        if id == b"fmt " {
            if body.len() < 16 {
                return Err(AudioFileError::NotWav("short fmt chunk"));
            }
            let mut tag = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if tag == 0xfffe && body.len() >= 26 {
                // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag.
                tag = u16::from_le_bytes([body[24], body[25]]);
            }
            let enc = match (tag, bits) {
                (1, 16) => Encoding::Pcm16,
                (7, 8) => Encoding::G711(G711Law::Pcmu),
                (6, 8) => Encoding::G711(G711Law::Pcma),
                _ => return Err(AudioFileError::Unsupported { tag, bits }),
            };
            if channels == 0 || !(8000..=48000).contains(&rate) {
                return Err(AudioFileError::BadShape { channels, rate });
            }
            fmt = Some((enc, channels, rate));
        } else if id == b"data" {
            let (enc, channels, rate) = fmt.ok_or(AudioFileError::NotWav("data before fmt"))?;
            return Ok((enc, channels, rate, body));
        }
        at = body_start.saturating_add(len + (len & 1));
    }
    Err(AudioFileError::NotWav("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV file: format tag, channels, rate, bits, data bytes.
    pub(crate) fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn pcm_le(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn wav_pcm_and_g711_at_8_khz_decode_as_is() {
        // 1. 16-bit PCM, 8 kHz mono: the samples themselves.
        let s = [0i16, 1000, -1000, 32767];
        assert_eq!(
            decode(&wav_bytes(1, 1, 8000, 16, &pcm_le(&s)), None).unwrap(),
            s
        );
        // 2. µ-law and A-law: decoded with the G.711 tables (formats named or not).
        let mu = [g711::encode(G711Law::Pcmu, 1000); 4];
        let got = decode(&wav_bytes(7, 1, 8000, 8, &mu), Some("wav/mulaw")).unwrap();
        assert_eq!(got, vec![g711::decode(G711Law::Pcmu, mu[0]); 4]);
        let a = [g711::encode(G711Law::Pcma, -500); 3];
        let got = decode(&wav_bytes(6, 1, 8000, 8, &a), None).unwrap();
        assert_eq!(got.len(), 3);
        // 3. Raw formats.
        assert_eq!(decode(&pcm_le(&s), Some("raw/lpcm16")).unwrap(), s);
        assert_eq!(decode(&mu, Some("RAW/MULAW")).unwrap().len(), 4);
    }

    #[test]
    fn sixteen_khz_and_stereo_are_resampled_and_mixed_down() {
        // 1. One second at 16 kHz becomes one second at 8 kHz.
        let s: Vec<i16> = (0..16000)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let got = decode(&wav_bytes(1, 1, 16000, 16, &pcm_le(&s)), None).unwrap();
        assert!((7990..=8010).contains(&got.len()), "{}", got.len());
        let got = decode(&pcm_le(&s), Some("raw/lpcm16-16k")).unwrap();
        assert!((7990..=8010).contains(&got.len()));
        // 2. Stereo with opposite channels mixes to silence.
        let st: Vec<i16> = (0..1600).flat_map(|_| [4000i16, -4000]).collect();
        let got = decode(&wav_bytes(1, 2, 8000, 16, &pcm_le(&st)), None).unwrap();
        assert_eq!(got.len(), 1600);
        assert!(got.iter().all(|v| v.abs() <= 1));
    }

    #[test]
    fn bad_files_and_formats_say_why() {
        let ok = wav_bytes(1, 1, 8000, 16, &pcm_le(&[1, 2]));
        assert!(matches!(
            decode(b"hello", None),
            Err(AudioFileError::NotWav(_))
        ));
        assert!(matches!(
            decode(&ok, Some("mp3")),
            Err(AudioFileError::UnknownFormat(f)) if f == "mp3"
        ));
        assert!(matches!(
            decode(&ok, Some("wav/mulaw")),
            Err(AudioFileError::FormatMismatch { .. })
        ));
        assert!(matches!(
            decode(&wav_bytes(3, 1, 8000, 32, &[0; 8]), None),
            Err(AudioFileError::Unsupported { tag: 3, bits: 32 })
        ));
        assert!(matches!(
            decode(&wav_bytes(1, 1, 4000, 16, &[0; 8]), None),
            Err(AudioFileError::BadShape { .. })
        ));
        assert!(matches!(
            decode(&wav_bytes(1, 1, 8000, 16, &[]), None),
            Err(AudioFileError::Length(_))
        ));
        // A cut file: what is there plays.
        let mut cut = ok.clone();
        cut.truncate(cut.len() - 2);
        assert_eq!(decode(&cut, None).unwrap(), vec![1]);
    }
}
