//! Reader for CTranslate2's `model.bin` (binary format version ≥ 4, as written by
//! `ct2-transformers-converter` / faster-whisper): a header, the spec name, then named
//! variables with dtype and shape, then aliases.

use std::collections::HashMap;

use super::SttError;

/// One tensor of a CTranslate2 model, converted to f32 (row-major, CTranslate2's shape order).
#[derive(Debug, Clone)]
pub struct Ct2Tensor {
    /// Shape as stored (outermost dimension first, like PyTorch).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// The variables of a CTranslate2 model, aliases resolved.
#[derive(Debug, Default)]
pub struct Ct2Model {
    /// Spec name, e.g. `WhisperSpec`.
    pub spec: String,
    /// Binary format version.
    pub version: u32,
    /// Variables by name (`encoder/layer_0/self_attention/linear_0/weight`, ...).
    pub vars: HashMap<String, Ct2Tensor>,
    /// Stored dtype of the largest weight (for the import report).
    pub weight_dtype: &'static str,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SttError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(SttError::BadModel(format!(
                "model.bin truncated at byte {} (wanted {n} more)",
                self.pos
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, SttError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SttError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SttError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// CTranslate2 strings: u16 length including the trailing NUL, then the bytes.
    fn string(&mut self) -> Result<String, SttError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if frac == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (frac << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (frac << 13)
    };
    f32::from_bits(bits)
}

/// Convert f32 to IEEE half (round to nearest even), for writing ggml f16 tensors.
pub fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mut mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        mant |= 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = mant & ((1 << shift) - 1);
        let mut r = mant >> shift;
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let rem = mant & 0x1fff;
    let mut r = ((e as u32) << 10) | (mant >> 13);
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent, which is the correct rounding
    }
    sign | r as u16
}

/// Parse a CTranslate2 `model.bin`. int8 weights are dequantised with their `weight_scale`.
pub fn parse(buf: &[u8]) -> Result<Ct2Model, SttError> {
    let mut c = Cursor { buf, pos: 0 };
    let (version, spec) = header(&mut c)?;
    let n = c.u32()? as usize;
    let mut vars = HashMap::with_capacity(n);
    let mut int8 = Vec::new();
    let mut weight_dtype = "float32";
    let mut biggest = 0usize;
    for _ in 0..n {
        let v = variable(&mut c)?;
        // The largest variable is a weight matrix: its dtype is the model's (for the report).
        if v.nbytes > biggest {
            biggest = v.nbytes;
            weight_dtype = v.dtype;
        }
        if v.dtype == "int8" && v.name.ends_with("/weight") {
            int8.push(v.name.clone());
        }
        vars.insert(v.name, v.tensor);
    }
    aliases(&mut c, &mut vars)?;
    dequantize_int8(&mut vars, int8)?;
    Ok(Ct2Model {
        spec,
        version,
        vars,
        weight_dtype,
    })
}

/// The header: binary version (only 4..=6 share the layout read here), spec name, revision.
fn header(c: &mut Cursor<'_>) -> Result<(u32, String), SttError> {
    let version = c.u32()?;
    if !(4..=6).contains(&version) {
        return Err(SttError::BadModel(format!(
            "unsupported CTranslate2 binary version {version} (expected 4..6)"
        )));
    }
    let spec = c.string()?;
    let _revision = c.u32()?;
    Ok((version, spec))
}

/// One variable as read from the file.
struct Variable {
    name: String,
    tensor: Ct2Tensor,
    /// Stored dtype name (`float16`, `int8`, ...).
    dtype: &'static str,
    /// Stored size in bytes.
    nbytes: usize,
}

/// One variable: name, rank and shape, dtype id, byte length, values. The shape is checked
/// against the value count so the importer can slice rows without bounds surprises.
fn variable(c: &mut Cursor<'_>) -> Result<Variable, SttError> {
    let name = c.string()?;
    let rank = c.u8()? as usize;
    let mut shape = Vec::with_capacity(rank);
    for _ in 0..rank {
        shape.push(c.u32()? as usize);
    }
    // A zero dimension would reach the importer as a divisor (rows per quantization block).
    if shape.contains(&0) {
        return Err(SttError::BadModel(format!(
            "variable {name}: shape {shape:?} has a zero dimension"
        )));
    }
    let dtype = c.u8()?;
    let nbytes = c.u32()? as usize;
    let raw = c.take(nbytes)?;
    let (data, dtype) = decode(&name, dtype, raw)?;
    let expected: usize = shape.iter().product();
    if data.len() != expected.max(1) {
        return Err(SttError::BadModel(format!(
            "variable {name}: {} values for shape {shape:?}",
            data.len()
        )));
    }
    Ok(Variable {
        name,
        tensor: Ct2Tensor { shape, data },
        dtype,
        nbytes,
    })
}

/// Values of dtype id `dtype` widened to f32, with the dtype's name.
fn decode(name: &str, dtype: u8, raw: &[u8]) -> Result<(Vec<f32>, &'static str), SttError> {
    // CTranslate2 DataType enum: FLOAT32, INT8, INT16, INT32, FLOAT16, BFLOAT16.
    Ok(match dtype {
        0 => (
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "float32",
        ),
        1 => (raw.iter().map(|b| *b as i8 as f32).collect(), "int8"),
        2 => (
            raw.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
            "int16",
        ),
        3 => (
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            "int32",
        ),
        4 => (
            raw.chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            "float16",
        ),
        5 => (
            raw.chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            "bfloat16",
        ),
        other => {
            return Err(SttError::BadModel(format!(
                "variable {name}: unknown dtype id {other}"
            )));
        }
    })
}

/// The alias table: extra names for shared variables (e.g. tied embeddings). An alias of a
/// variable the file lacks is skipped; the importer reports what it then misses by name.
fn aliases(c: &mut Cursor<'_>, vars: &mut HashMap<String, Ct2Tensor>) -> Result<(), SttError> {
    let n_alias = c.u32()? as usize;
    for _ in 0..n_alias {
        let alias = c.string()?;
        let target = c.string()?;
        if let Some(t) = vars.get(&target).cloned() {
            vars.insert(alias, t);
        }
    }
    Ok(())
}

/// int8 weights: CTranslate2 stores one scale per output row; value = q / scale.
fn dequantize_int8(
    vars: &mut HashMap<String, Ct2Tensor>,
    int8: Vec<String>,
) -> Result<(), SttError> {
    for name in int8 {
        let scale_name = format!("{name}_scale");
        let Some(scale) = vars.get(&scale_name).map(|s| s.data.clone()) else {
            return Err(SttError::BadModel(format!(
                "{name} is int8 but has no {scale_name}"
            )));
        };
        if let Some(w) = vars.get_mut(&name) {
            let cols = w.shape.get(1).copied().unwrap_or(1).max(1);
            for (row, chunk) in w.data.chunks_mut(cols).enumerate() {
                let s = scale.get(row).copied().unwrap_or(1.0);
                chunk.iter_mut().for_each(|v| *v /= s);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_trip_is_exact_for_representable_values() {
        for v in [0.0f32, 1.0, -2.5, 0.000_061_035_156, 65504.0, 1.0e-7] {
            let h = f32_to_f16(v);
            let back = f16_to_f32(h);
            assert!((back - v).abs() <= v.abs() * 1e-3 + 1e-7, "{v} -> {back}");
        }
    }

    /// A model file with one float32 variable of the given shape and one value.
    fn one_variable(shape: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(6u32.to_le_bytes());
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend(((s.len() + 1) as u16).to_le_bytes());
            b.extend(s.as_bytes());
            b.push(0);
        };
        string(&mut b, "WhisperSpec");
        b.extend(1u32.to_le_bytes()); // revision
        b.extend(1u32.to_le_bytes()); // one variable
        string(&mut b, "encoder/w");
        b.push(shape.len() as u8);
        for d in shape {
            b.extend(d.to_le_bytes());
        }
        b.push(0); // float32
        b.extend(4u32.to_le_bytes());
        b.extend(1.0f32.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // no aliases
        b
    }

    #[test]
    fn a_zero_dimension_is_a_bad_model_error_not_a_division_by_zero() {
        // 1. A well-formed one-value variable parses.
        assert!(parse(&one_variable(&[1, 1])).is_ok());
        // 2. The same with a zero dimension is refused with a clear message.
        let err = parse(&one_variable(&[1, 0])).unwrap_err();
        assert!(
            matches!(&err, SttError::BadModel(m) if m.contains("zero dimension")),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_is_a_bad_model_error() {
        let err = parse(&[6, 0, 0, 0, 12, 0, b'W']).unwrap_err();
        assert!(matches!(err, SttError::BadModel(_)));
    }
}
