//! Turns serde-saphyr errors into messages for a telecom engineer, with the field path.

use super::error::{ConfigError, ErrorKind};
use super::index::PosIndex;
use serde_saphyr::Error as YamlError;
use std::path::Path;

/// Converts one deserialization error of `file` (whose index is `idx`).
pub(super) fn convert(err: &YamlError, file: &Path, idx: &PosIndex) -> ConfigError {
    let err = err.without_snippet();
    let (line, column) = err
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .filter(|(l, _)| *l > 0)
        .unwrap_or((1, 1));
    let at = idx.path_at((line, column)).unwrap_or("").to_string();
    let (kind, path, message) = classify(err, idx, at, (line, column));
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        path,
        message,
        kind,
    }
}

/// Kind, field path and message of one error found at `at` (`pos` in the file). One arm per
/// kind of mistake, so an operator reads what to fix rather than serde's type names.
fn classify(
    err: &YamlError,
    idx: &PosIndex,
    at: String,
    pos: (usize, usize),
) -> (ErrorKind, String, String) {
    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => (ErrorKind::UnknownField, at, unknown_field(field, expected)),
        YamlError::SerdeMissingField { field, .. } => (
            ErrorKind::MissingField,
            // The error sits on the mapping that lacks the field: name the field inside it.
            join(&idx.mapping_at(pos), field),
            format!("required field `{field}` is missing"),
        ),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            ErrorKind::InvalidValue,
            at,
            unknown_variant(variant, expected),
        ),
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let got = got(idx, &at).unwrap_or_else(|| unexpected.clone());
            let message = format!("expected {}, got {got}", expected_for(&at, expected));
            (ErrorKind::WrongType, at, message)
        }
        YamlError::InvalidScalar { .. }
        | YamlError::InvalidBooleanStrict { .. }
        | YamlError::NullIntoString { .. } => {
            let got = got(idx, &at).unwrap_or_else(|| "an empty value".into());
            let expected = expected_for(&at, "a valid value");
            (
                ErrorKind::WrongType,
                at,
                format!("expected {expected}, got {got}"),
            )
        }
        YamlError::DuplicateMappingKey { .. } => (ErrorKind::Duplicate, at, plain(err)),
        YamlError::IOError { .. } => (ErrorKind::Io, String::new(), plain(err)),
        YamlError::SerdeInvalidLength { .. } => (ErrorKind::WrongType, at, plain(err)),
        _ => (
            ErrorKind::Syntax,
            String::new(),
            format!("YAML syntax error: {}", plain(err)),
        ),
    }
}

/// An unknown key: the likely typo's correction, else the keys valid at that place.
fn unknown_field(field: &str, expected: &[&str]) -> String {
    let mut msg = format!("unknown field `{field}`");
    match closest(field, expected) {
        Some(best) => msg.push_str(&format!(", did you mean `{best}`?")),
        None if !expected.is_empty() => {
            msg.push_str(&format!("; valid fields here: {}", expected.join(", ")))
        }
        None => {}
    }
    msg
}

/// A value outside an enumeration: the allowed values, led by the closest one when it looks
/// like a typo.
fn unknown_variant(variant: &str, expected: &[&str]) -> String {
    match closest(variant, expected) {
        Some(best) => format!(
            "`{variant}` is not allowed here, did you mean `{best}`? (one of: {})",
            expected.join(", ")
        ),
        None => format!(
            "`{variant}` is not allowed here; use one of: {}",
            expected.join(", ")
        ),
    }
}

/// The message without serde-saphyr's own position suffix (we print the position first).
fn plain(err: &YamlError) -> String {
    let s = err.to_string();
    let s = s.lines().next().unwrap_or("").trim().to_string();
    // serde-saphyr appends " at line L, column C"; drop it, the prefix already says where.
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The offending value as written, quoted, when it is a scalar.
fn got(idx: &PosIndex, path: &str) -> Option<String> {
    idx.scalar(path).map(|s| format!("\"{s}\""))
}

/// Last field name of a path: `bots[1].outbound.max_cps` → `max_cps`, `groups[0]` → `groups`.
pub(super) fn leaf(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// What a field expects, in the configuration's own words rather than Rust type names.
pub(super) fn expected_for(path: &str, serde_expected: &str) -> String {
    let hint = match leaf(path) {
        "max_cps" => "a number > 0",
        "max_concurrent" | "max_queue" => "a whole number >= 1",
        "max_queue_wait_sec" => "a whole number of seconds >= 1",
        "answer_timeout_sec" => "a whole number of seconds in 1..=300",
        "port_min" | "port_max" => "a port number in 1024..=65535",
        "priority" => "a whole number (lower is tried first)",
        f if f.ends_with("_sec") || f.ends_with("_ms") => "a whole number",
        "enabled"
        | "start_recognition_on_connect"
        | "dialout_initiated_event"
        | "recording"
        | "require_recognition"
        | "send_metadata_info"
        | "speak_messages"
        | "barge_in"
        | "early_media_to_bot"
        | "plain_http"
        | "p_asserted_identity" => "true or false",
        "transport" => "one of udp, tcp, tls",
        "machine_detection" => "one of disabled, detect, disconnect",
        "on_limit" => "one of reject, queue, on_request",
        "transfer" => "one of refer, bridge",
        "caller_id_format" => "one of e164, national, as_is",
        "groups" => "a list of call_control / call_data_manager",
        "headers" => "a mapping of X- header names to text",
        "listen" if path.contains("sip") => "a list of {transport, address}",
        _ => "",
    };
    if !hint.is_empty() {
        return hint.to_string();
    }
    match serde_expected {
        "f64" | "f32" => "a number".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "a borrowed string" => "text".into(),
        "a sequence" => "a list".into(),
        e if e.starts_with("struct ") || e.starts_with("a map") => "a mapping (key: value)".into(),
        e => e.to_string(),
    }
}

/// Closest valid name by edit distance, if close enough to be a plausible typo.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.len() / 3).max(2);
    candidates
        .iter()
        .map(|c| (levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("max_cp", &["max_cps", "max_concurrent"]),
            Some("max_cps")
        );
        assert_eq!(closest("outbund", &["outbound", "amd"]), Some("outbound"));
        assert_eq!(closest("zzzzzz", &["id", "name"]), None);
        assert_eq!(leaf("bots[1].outbound.max_cps"), "max_cps");
        assert_eq!(leaf("api_clients[0].groups[1]"), "groups");
    }
}
