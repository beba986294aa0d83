//! WAV in and out (8 kHz mono 16-bit, what G.711 carries).

use std::path::Path;

use super::error::SimError;

/// Sample rate of everything the sims play and record.
pub const SAMPLE_RATE: u32 = 8000;

fn wav_err(path: &Path, reason: impl ToString) -> SimError {
    SimError::Wav {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Load an 8 kHz mono 16-bit WAV. Other formats are refused (convert with
/// `sox in.wav -r 8000 -c 1 -b 16 out.wav`) rather than resampled badly.
pub fn load_wav(path: impl AsRef<Path>) -> Result<Vec<i16>, SimError> {
    let path = path.as_ref();
    let reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(wav_err(
            path,
            format!(
                "need 8000 Hz mono 16-bit PCM, got {} Hz, {} ch, {} bit",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            ),
        ));
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| wav_err(path, e))
}

/// Write samples as an 8 kHz mono 16-bit WAV.
pub fn save_wav(path: impl AsRef<Path>, samples: &[i16]) -> Result<(), SimError> {
    let path = path.as_ref();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| wav_err(path, e))?;
    for &s in samples {
        w.write_sample(s).map_err(|e| wav_err(path, e))?;
    }
    w.finalize().map_err(|e| wav_err(path, e))
}
