//! The Bot API `transfer` activity, validated: where the person goes (`transferTarget`, a `tel:`
//! or `sip:` URI), why (`handoverReason`) and which SIP headers go with it
//! (`transferSipHeaders`). Everything here is checked before any SIP message is built, so a bot
//! cannot inject a header line, an oversized value or a URI the trunk would choke on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a bot's transfers are carried out (`outbound.transfer` in the YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMethod {
    /// REFER on the carrier leg: the carrier (or the person's phone) calls the target.
    Refer,
    /// dialgate calls the target and bridges the person to it through its relay (the default:
    /// many trunks refuse REFER).
    #[default]
    Bridge,
}

/// The most headers one transfer may carry.
pub const MAX_TRANSFER_HEADERS: usize = 10;
/// The longest header value accepted.
pub const MAX_HEADER_VALUE: usize = 256;
/// The longest `transferTarget` accepted.
pub const MAX_TARGET_LEN: usize = 256;

/// Headers other than `X-…` that a transfer may carry (they describe the hand-over and cannot
/// change how the dialog is routed or authenticated).
const SAFE_HEADERS: [&str; 2] = ["User-to-User", "Diversion"];

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// `tel:+15551230002`: a number, routed like a dialout's target (digits, optional `+`).
    Tel(String),
    /// `sip:agent@pbx.example:5062`: a SIP URI, used as the request URI as it is.
    Sip(String),
}

impl TransferTarget {
    /// The target as a URI (`tel:+1555…` or `sip:…`), for `Refer-To` and the log.
    pub fn uri(&self) -> String {
        match self {
            TransferTarget::Tel(n) => format!("tel:{n}"),
            TransferTarget::Sip(u) => u.clone(),
        }
    }
}

/// A valid `transfer` activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    /// Where the person goes.
    pub target: TransferTarget,
    /// `handoverReason`, kept on the call record.
    pub reason: Option<String>,
    /// `transferSipHeaders`, checked: `X-…` or [`SAFE_HEADERS`] names, bounded values.
    pub headers: Vec<(String, String)>,
}

/// Reads and checks a transfer's `activityParams`. The error says what is wrong, in words the
/// bot's developer can act on.
pub fn parse_transfer(params: Option<&Map<String, Value>>) -> Result<TransferRequest, String> {
    let params = params.ok_or("activityParams is missing")?;
    let target = match params.get("transferTarget") {
        Some(Value::String(s)) => parse_target(s)?,
        Some(_) => return Err("activityParams.transferTarget must be a string".into()),
        None => return Err("activityParams.transferTarget is missing".into()),
    };
    let reason = match params.get("handoverReason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_HEADER_VALUE && printable(s) => Some(s.clone()),
        Some(_) => {
            return Err(format!(
                "activityParams.handoverReason must be printable text of at most \
                 {MAX_HEADER_VALUE} characters"
            ));
        }
    };
    let headers = match params.get("transferSipHeaders") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_headers(v)?,
    };
    Ok(TransferRequest {
        target,
        reason,
        headers,
    })
}

/// `tel:` with 1 to 32 digits (visual separators `-`, `.`, `(`, `)` and spaces dropped; an
/// optional leading `+`), or `sip:`/`sips:` `user@host[:port]` without spaces, angle brackets,
/// quotes or control characters.
pub fn parse_target(raw: &str) -> Result<TransferTarget, String> {
    let s = raw.trim();
    if s.len() > MAX_TARGET_LEN {
        return Err(format!(
            "transferTarget is longer than {MAX_TARGET_LEN} characters"
        ));
    }
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("tel:").map(|_| &s[4..]) {
        let number = rest.split(';').next().unwrap_or("");
        let (plus, digits) = match number.strip_prefix('+') {
            Some(d) => ("+", d),
            None => ("", number),
        };
        let digits: String = digits
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
            .collect();
        if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "transferTarget `{s}` is not a telephone number (tel: then up to 32 digits)"
            ));
        }
        return Ok(TransferTarget::Tel(format!("{plus}{digits}")));
    }
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let body = &s[s.find(':').map_or(0, |i| i + 1)..];
        let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"');
        let host = body.rsplit('@').next().unwrap_or("");
        let host = host.split([';', '?']).next().unwrap_or("");
        if body.is_empty() || body.chars().any(bad) || host.is_empty() || host.starts_with(':') {
            return Err(format!("transferTarget `{s}` is not a usable SIP URI"));
        }
        return Ok(TransferTarget::Sip(s.to_owned()));
    }
    Err(format!(
        "transferTarget `{s}` must be a tel: or sip: URI (e.g. tel:+15551230002)"
    ))
}

/// `transferSipHeaders`: a list of `{"name", "value"}` (the Bot API's form) or an object of
/// name → value.
fn parse_headers(v: &Value) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, &Value)> = match v {
        Value::Array(list) => list
            .iter()
            .map(|h| match (h.get("name"), h.get("value")) {
                (Some(Value::String(n)), Some(val)) => Ok((n.clone(), val)),
                _ => Err("each transferSipHeaders entry needs a `name` and a `value`".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => return Err("transferSipHeaders must be a list of {name, value}".into()),
    };
    if pairs.len() > MAX_TRANSFER_HEADERS {
        return Err(format!(
            "transferSipHeaders has {} headers; at most {MAX_TRANSFER_HEADERS}",
            pairs.len()
        ));
    }
    pairs
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("header `{name}`: the value must be text")),
            };
            check_header(&name, &value)?;
            Ok((name, value))
        })
        .collect()
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !token {
        return Err(format!("header name `{name}` is not a SIP header name"));
    }
    let x = name.len() > 2 && name[..2].eq_ignore_ascii_case("x-");
    if !x && !SAFE_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "header `{name}` may not be set by a bot: only X- headers, User-to-User and Diversion"
        ));
    }
    if value.len() > MAX_HEADER_VALUE || !printable(value) {
        return Err(format!(
            "header `{name}`: the value must be printable text of at most {MAX_HEADER_VALUE} \
             characters"
        ));
    }
    Ok(())
}

/// No control characters (a CR or LF would start a new header line).
fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<TransferRequest, String> {
        parse_transfer(v.as_object())
    }

    #[test]
    fn tel_and_sip_targets_are_read_and_normalised() {
        let r = parse(json!({"transferTarget": "tel:+1 (555) 123-0002"})).expect("valid");
        assert_eq!(r.target, TransferTarget::Tel("+15551230002".into()));
        assert_eq!(r.target.uri(), "tel:+15551230002");
        let r = parse(json!({"transferTarget": "sip:agent@127.0.0.1:5072",
            "handoverReason": "wants a human"}))
        .expect("valid");
        assert_eq!(
            r.target,
            TransferTarget::Sip("sip:agent@127.0.0.1:5072".into())
        );
        assert_eq!(r.reason.as_deref(), Some("wants a human"));
        assert!(parse(json!({"transferTarget": "SIPS:desk@pbx.example"})).is_ok());
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        for (t, says) in [
            (json!("+15551230002"), "tel: or sip:"),
            (json!("tel:"), "telephone number"),
            (json!("tel:+1555abc"), "telephone number"),
            (json!("tel:123456789012345678901234567890123"), "32 digits"),
            (json!("sip:agent@"), "SIP URI"),
            (json!("sip:a b@host"), "SIP URI"),
            (json!("sip:<a@host>"), "SIP URI"),
            (json!("sip:a@host\r\nVia: evil"), "SIP URI"),
            (json!(5), "must be a string"),
        ] {
            let e = parse(json!({"transferTarget": t})).expect_err("refused");
            assert!(e.contains(says), "{t}: {e}");
        }
        assert!(parse_transfer(None).is_err());
        assert!(parse(json!({})).unwrap_err().contains("missing"));
        let long = format!("sip:{}@h", "a".repeat(300));
        assert!(
            parse(json!({"transferTarget": long}))
                .unwrap_err()
                .contains("longer")
        );
    }

    #[test]
    fn headers_are_bounded_and_only_x_or_safe_names() {
        let r = parse(json!({"transferTarget": "tel:100", "transferSipHeaders": [
            {"name": "X-Queue", "value": "billing"}, {"name": "User-to-User", "value": "a1b2"}]}))
        .expect("valid");
        assert_eq!(r.headers.len(), 2);
        let r = parse(json!({"transferTarget": "tel:100",
            "transferSipHeaders": {"X-Priority": 3}}))
        .expect("valid");
        assert_eq!(r.headers, vec![("X-Priority".into(), "3".into())]);
        for h in [
            json!([{"name": "Via", "value": "x"}]),
            json!([{"name": "X-A", "value": "a\r\nVia: b"}]),
            json!([{"name": "X A", "value": "a"}]),
            json!([{"name": "X-A"}]),
            json!([{"name": "X-A", "value": "v".repeat(300)}]),
            json!("X-A: b"),
            Value::Array(
                (0..11)
                    .map(|i| json!({"name": format!("X-H{i}"), "value": "v"}))
                    .collect(),
            ),
        ] {
            assert!(
                parse(json!({"transferTarget": "tel:100", "transferSipHeaders": h})).is_err(),
                "{h}"
            );
        }
    }
}
