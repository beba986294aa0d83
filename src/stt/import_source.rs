//! Reading a faster-whisper model's files from a wheel (zip) or an unpacked directory.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::SttError;

/// Source files found in a wheel or directory.
pub(crate) struct Source {
    pub(crate) model_bin: Vec<u8>,
    pub(crate) vocab: Vec<String>,
}

pub(crate) fn io(p: &Path, e: impl std::fmt::Display) -> SttError {
    SttError::Io(format!("{}: {e}", p.display()))
}

fn parse_vocab(name: &str, bytes: &[u8]) -> Result<Vec<String>, SttError> {
    let text = String::from_utf8_lossy(bytes);
    if name.ends_with(".json") {
        serde_json::from_str::<Vec<String>>(&text)
            .map_err(|e| SttError::BadModel(format!("{name}: {e}")))
    } else {
        Ok(text.lines().map(str::to_owned).collect())
    }
}

pub(crate) fn read_dir_source(dir: &Path) -> Result<Source, SttError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let name_of = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut model_bin = Vec::new();
    let whole: Vec<&PathBuf> = files
        .iter()
        .filter(|p| name_of(p).as_deref() == Some("model.bin"))
        .collect();
    let parts: Vec<&PathBuf> = if whole.is_empty() {
        files
            .iter()
            .filter(|p| name_of(p).is_some_and(|n| n.starts_with("model.bin.")))
            .collect()
    } else {
        whole[..1].to_vec()
    };
    if parts.is_empty() {
        return Err(SttError::BadModel(format!(
            "no model.bin under {}",
            dir.display()
        )));
    }
    for p in parts {
        model_bin.extend(fs::read(p).map_err(|e| io(p, e))?);
    }
    let vocab_file = files
        .iter()
        .find(|p| {
            matches!(
                name_of(p).as_deref(),
                Some("vocabulary.txt" | "vocabulary.json")
            )
        })
        .ok_or_else(|| SttError::BadModel(format!("no vocabulary under {}", dir.display())))?;
    let vname = name_of(vocab_file).unwrap_or_default();
    let vocab = parse_vocab(
        &vname,
        &fs::read(vocab_file).map_err(|e| io(vocab_file, e))?,
    )?;
    Ok(Source { model_bin, vocab })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SttError> {
    for e in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let p = e.map_err(|e| io(dir, e))?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

pub(crate) fn read_wheel_source(whl: &Path) -> Result<Source, SttError> {
    let f = fs::File::open(whl).map_err(|e| io(whl, e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| io(whl, e))?;
    let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    names.sort();
    let base = |n: &str| n.rsplit('/').next().unwrap_or(n).to_owned();
    let mut read = |name: &str| -> Result<Vec<u8>, SttError> {
        let mut e = zip.by_name(name).map_err(|e| io(whl, e))?;
        let mut v = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut v).map_err(|e| io(whl, e))?;
        Ok(v)
    };
    let mut bins: Vec<&String> = names.iter().filter(|n| base(n) == "model.bin").collect();
    if bins.is_empty() {
        bins = names
            .iter()
            .filter(|n| base(n).starts_with("model.bin."))
            .collect();
    }
    if bins.is_empty() {
        return Err(SttError::BadModel(format!(
            "{}: no model.bin in the wheel",
            whl.display()
        )));
    }
    let mut model_bin = Vec::new();
    for n in bins.iter().take(if base(bins[0]) == "model.bin" {
        1
    } else {
        usize::MAX
    }) {
        model_bin.extend(read(n)?);
    }
    let vname = names
        .iter()
        .find(|n| matches!(base(n).as_str(), "vocabulary.txt" | "vocabulary.json"))
        .cloned()
        .ok_or_else(|| SttError::BadModel(format!("{}: no vocabulary", whl.display())))?;
    let vocab = parse_vocab(&vname, &read(&vname)?)?;
    Ok(Source { model_bin, vocab })
}
