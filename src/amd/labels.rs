//! The corpus's `labels.csv` (`file,label[,notes]`, RFC 4180 quoting) and its `notes` column.
//!
//! Notes are parsed with the equivalents of the corpus README's regexes:
//! `(?:speech|greeting) ([\d.]+)-([\d.]+)s`, `beep (\d+)Hz ([\d.]+)s at ([\d.]+)s`,
//! `(CED|CNG|SIT|V21)(?: \d+Hz)? ([\d.]+)-([\d.]+)s`. Quoted transcripts inside the notes are
//! kept apart (as `texts`) so that words in them never look like items.

use super::detector::AmdResult;

/// Ground-truth class of a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// A person answered.
    Human,
    /// Answering machine / announcement.
    Machine,
    /// Fax.
    Fax,
    /// Nobody (line noise only); the expected result is `unknown`.
    Silence,
}

impl Label {
    /// All labels in report order.
    pub const ALL: [Label; 4] = [Label::Human, Label::Machine, Label::Fax, Label::Silence];

    /// Parses `human`, `machine`, `fax`, `silence` (case-insensitive).
    pub fn parse(s: &str) -> Option<Label> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" => Some(Label::Human),
            "machine" => Some(Label::Machine),
            "fax" => Some(Label::Fax),
            "silence" => Some(Label::Silence),
            _ => None,
        }
    }

    /// The label as written in `labels.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Human => "human",
            Label::Machine => "machine",
            Label::Fax => "fax",
            Label::Silence => "silence",
        }
    }

    /// The detector result that counts as correct.
    pub fn expected(self) -> AmdResult {
        match self {
            Label::Human => AmdResult::Human,
            Label::Machine => AmdResult::Machine,
            Label::Fax => AmdResult::Fax,
            Label::Silence => AmdResult::Unknown,
        }
    }
}

/// Timed events from a clip's notes (seconds from answer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipNotes {
    /// Human utterances (start, end).
    pub speech: Vec<(f64, f64)>,
    /// Machine greeting (first onset, last offset).
    pub greeting: Option<(f64, f64)>,
    /// Beep: (frequency Hz, duration s, start s).
    pub beep: Option<(f64, f64, f64)>,
    /// Tones: (kind CED/CNG/SIT/V21, start, end).
    pub tones: Vec<(String, f64, f64)>,
    /// The `hard: …` remark, if any.
    pub hard: Option<String>,
    /// Quoted texts (what was said), in order.
    pub texts: Vec<String>,
}

impl ClipNotes {
    /// End of the first human utterance.
    pub fn first_speech_end(&self) -> Option<f64> {
        self.speech.first().map(|s| s.1)
    }

    /// Onset of the first fax tone (CED, CNG or V.21).
    pub fn fax_onset(&self) -> Option<f64> {
        self.tones
            .iter()
            .filter(|t| t.0 != "SIT")
            .map(|t| t.1)
            .reduce(f64::min)
    }

    /// Parses a notes cell.
    pub fn parse(notes: &str) -> ClipNotes {
        let mut out = ClipNotes::default();
        // Separate quoted texts from the structured part.
        let mut plain = String::new();
        let mut text = String::new();
        let mut in_q = false;
        for c in notes.chars() {
            match (c, in_q) {
                ('"', false) => in_q = true,
                ('"', true) => {
                    out.texts.push(std::mem::take(&mut text));
                    in_q = false;
                    plain.push_str(" \"\" ");
                }
                (c, true) => text.push(c),
                (c, false) => plain.push(c),
            }
        }
        for item in plain.split(';').map(str::trim) {
            if let Some(h) = item.strip_prefix("hard:") {
                out.hard = Some(h.trim().to_owned());
            }
        }
        let toks: Vec<&str> = plain.split_whitespace().collect();
        for (i, t) in toks.iter().enumerate() {
            let next = toks.get(i + 1).copied().unwrap_or("");
            match *t {
                "speech" | "greeting" => {
                    if let Some(r) = range_s(next) {
                        if *t == "speech" {
                            out.speech.push(r);
                        } else if out.greeting.is_none() {
                            out.greeting = Some(r);
                        }
                    }
                }
                "beep" => {
                    let f = next.strip_suffix("Hz").and_then(|v| v.parse::<f64>().ok());
                    let d = toks.get(i + 2).and_then(|v| secs(v));
                    let at = (toks.get(i + 3) == Some(&"at"))
                        .then(|| toks.get(i + 4).and_then(|v| secs(v)))
                        .flatten();
                    if let (Some(f), Some(d), Some(at)) = (f, d, at) {
                        out.beep.get_or_insert((f, d, at));
                    }
                }
                "CED" | "CNG" | "SIT" | "V21" => {
                    let mut j = i + 1;
                    if next.ends_with("Hz") && next[..next.len() - 2].parse::<f64>().is_ok() {
                        j += 1;
                    }
                    if let Some((a, b)) = toks.get(j).and_then(|v| range_s(v)) {
                        out.tones.push(((*t).to_owned(), a, b));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// `1.23s` -> 1.23
fn secs(tok: &str) -> Option<f64> {
    tok.trim_end_matches(';').strip_suffix('s')?.parse().ok()
}

/// `0.72-1.06s` -> (0.72, 1.06)
fn range_s(tok: &str) -> Option<(f64, f64)> {
    let body = tok.trim_end_matches(';').strip_suffix('s')?;
    let (a, b) = body.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipLabel {
    /// WAV file name relative to the corpus directory.
    pub file: String,
    /// Ground truth.
    pub label: Label,
    /// The raw notes cell (may be empty).
    pub notes_raw: String,
    /// Parsed notes.
    pub notes: ClipNotes,
}

/// A malformed `labels.csv`: the 1-based line of the bad record and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct LabelsError {
    /// 1-based line where the bad record starts.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// One CSV record: the line it starts on and its fields.
pub type CsvRecord = (usize, Vec<String>);

/// Splits CSV text into records of fields (RFC 4180: quotes, doubled quotes, commas and
/// newlines inside quotes). Returns each record with the line number it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<CsvRecord>, LabelsError> {
    let mut records = Vec::new();
    let mut field = String::new();
    let mut rec: Vec<String> = Vec::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut in_q = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_q {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_q = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_q = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                if rec.iter().any(|f| !f.trim().is_empty()) {
                    records.push((start_line, std::mem::take(&mut rec)));
                }
                rec.clear();
                line += 1;
                start_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_q {
        return Err(LabelsError {
            line: start_line,
            msg: "unterminated quoted field".to_owned(),
        });
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        if rec.iter().any(|f| !f.trim().is_empty()) {
            records.push((start_line, rec));
        }
    }
    Ok(records)
}

/// Parses `labels.csv` text. A first record starting with `file` is a header.
pub fn parse_labels(text: &str) -> Result<Vec<ClipLabel>, LabelsError> {
    let mut out = Vec::new();
    for (n, (line, rec)) in parse_csv(text)?.into_iter().enumerate() {
        if n == 0 && rec.first().map(|f| f.trim()) == Some("file") {
            continue;
        }
        if rec.len() < 2 {
            return Err(LabelsError {
                line,
                msg: format!("expected file,label[,notes], got {} field(s)", rec.len()),
            });
        }
        let label = Label::parse(&rec[1]).ok_or_else(|| LabelsError {
            line,
            msg: format!("unknown label {:?}", rec[1]),
        })?;
        let file = rec[0].trim().to_owned();
        if file.is_empty() || file.contains("..") || file.starts_with('/') {
            return Err(LabelsError {
                line,
                msg: format!("bad file name {file:?}"),
            });
        }
        let notes_raw = rec.get(2).cloned().unwrap_or_default();
        out.push(ClipLabel {
            notes: ClipNotes::parse(&notes_raw),
            file,
            label,
            notes_raw,
        });
    }
    Ok(out)
}
