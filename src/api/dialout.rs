//! `POST /api/v1/actions/dialout`: the request body, its validation and the
//! normalised form handed to the call engine and stored on the call record.

use super::error::ApiError;
pub use crate::core::dialout::{AmdMode, DialoutRequest, Target, sip_user};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The largest dialout body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// At most this many dialer `headers` per request.
pub const MAX_HEADERS: usize = 10;
/// At most this many bytes of dialer `headers` (names and values) per request.
/// With the other dialer-controlled fields bounded too (a SIP target of at
/// most [`MAX_SIP_TARGET`] characters, a display name of
/// [`MAX_DISPLAY_NAME`], a caller of [`MAX_CALLER`]), the carrier INVITE stays
/// under the 1,300 bytes RFC 3261 §18.1.1 allows over UDP (measured by
/// `tests/call_numbers.rs` with every field at its limit).
pub const MAX_HEADER_BYTES: usize = 256;
/// Longest `sip:` target accepted.
pub const MAX_SIP_TARGET: usize = 96;
/// Longest `callerDisplayName` accepted.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Longest `caller` accepted (it appears in From and Contact).
pub const MAX_CALLER: usize = 32;

/// Digits, at most 17 (a national number with its trunk prefix).
fn is_unprefixed_number(s: &str) -> bool {
    (2..=17).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// RFC 3261 `token` characters, for header names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// A conservative SIP URI check: scheme, a host, no whitespace or controls.
pub fn is_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")) else {
        return false;
    };
    // A user part, when there is one, is not empty (`sip:@host`) and holds no
    // unescaped `@` (RFC 3261 escapes it as %40).
    if let Some((user, _)) = rest.split_once('@')
        && (user.is_empty() || rest.matches('@').count() > 1)
    {
        return false;
    }
    let host = rest.rsplit('@').next().unwrap_or("");
    let host = host.split([';', '?']).next().unwrap_or("");
    !host.is_empty()
        && !host.starts_with(':')
        && s.len() <= 512
        && !s.bytes().any(|b| {
            b.is_ascii_whitespace() || b.is_ascii_control() || b == b'<' || b == b'>' || b == b'"'
        })
}

fn is_user_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CALLER
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/#".contains(&b))
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn opt_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::field(
            field,
            format!("`{field}` must be a string, got {}", type_name(other)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a target as a dialer may write it. A number without `+`
/// (`15550100`, `tel:15550100`) comes back as `Target::Tel` *without* its `+`:
/// [`normalise_target`] must give it a country before it is routed.
pub fn parse_target(raw: &str) -> Result<Target, ApiError> {
    let t = raw.trim();
    if let Some(num) = t.strip_prefix("tel:") {
        // Parameters such as `;phone-context` are not used for E.164 numbers
        // (and never reach the INVITE).
        let num = num.split(';').next().unwrap_or("");
        return if is_e164(num) || is_unprefixed_number(num) {
            Ok(Target::Tel(num.to_owned()))
        } else {
            Err(ApiError::field(
                "target",
                format!(
                    "`target` `{raw}` is not an E.164 number: expected tel:+<country code><number>, up to 15 digits"
                ),
            ))
        };
    }
    if t.starts_with("sip:") || t.starts_with("sips:") {
        // The Request-URI is the dialer's, but nothing else of the INVITE:
        // URI headers (`?Route=…`) would become header fields and parameters
        // (`;transport=tcp`, `;maddr=`) would steer dialgate's own transport.
        if t.contains(['?', ';']) {
            return Err(ApiError::field(
                "target",
                format!(
                    "`target` `{raw}` carries URI parameters (`;…`) or headers (`?…`); give a plain sip:user@host[:port]"
                ),
            ));
        }
        if t.len() > MAX_SIP_TARGET {
            return Err(ApiError::field(
                "target",
                format!("`target` is longer than {MAX_SIP_TARGET} characters"),
            ));
        }
        return if is_sip_uri(t) {
            Ok(Target::Sip(t.to_owned()))
        } else {
            Err(ApiError::field(
                "target",
                format!("`target` `{raw}` is not a valid SIP URI"),
            ))
        };
    }
    if is_e164(t) || is_unprefixed_number(t) {
        return Ok(Target::Tel(t.to_owned()));
    }
    Err(ApiError::field(
        "target",
        format!(
            "`target` `{raw}` must be tel:+E164, a bare +E164 number, a number without `+` (with default_country set), or a sip: URI"
        ),
    ))
}

/// Gives a telephone target its E.164 form, checked against the numbering
/// plan: a number without `+` is read in `default_country` (the bot's, else
/// its trunk's) and refused with a clear error when there is none.
pub fn normalise_target(target: &Target, default_country: Option<u16>) -> Result<Target, ApiError> {
    match target {
        Target::Tel(n) => crate::numbers::to_e164(n, default_country)
            .map(Target::Tel)
            .map_err(|e| ApiError::field("target", e.to_string())),
        Target::Sip(_) => Ok(target.clone()),
    }
}

/// Whether a telephone target still lacks its country code.
pub fn needs_country(target: &Target) -> bool {
    matches!(target, Target::Tel(n) if !n.starts_with('+'))
}

/// Parses and validates a dialout body (already size- and type-checked).
pub fn parse(body: &[u8]) -> Result<DialoutRequest, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object, got {}",
            type_name(&value)
        )));
    };
    let bot = opt_string(&obj, "bot")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::field("bot", "`bot` is required: the bot's ID or name"))?;
    let target_raw = opt_string(&obj, "target")?.ok_or_else(|| {
        ApiError::field(
            "target",
            "`target` is required: tel:+E164, +E164 or a sip: URI",
        )
    })?;
    let target = parse_target(&target_raw)?;
    let (caller, caller_host, caller_display_name) = caller_fields(&obj)?;
    let notify_url = notify_url(&obj)?;
    let machine_detection = machine_detection(&obj)?;
    let answer_timeout_sec = answer_timeout(&obj)?;
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            return Err(ApiError::field(
                "metadata",
                format!("`metadata` must be a JSON object, got {}", type_name(other)),
            ));
        }
    };
    let queue = match obj.get("queue") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ApiError::field(
                "queue",
                format!("`queue` must be true or false, got {}", type_name(other)),
            ));
        }
    };
    let headers = headers(&obj)?;
    Ok(DialoutRequest {
        bot,
        target,
        caller,
        caller_host,
        caller_display_name,
        notify_url,
        machine_detection,
        answer_timeout_sec,
        metadata,
        headers,
        queue,
    })
}

/// `caller`, `callerHost` and `callerDisplayName`.
type CallerFields = (Option<String>, Option<String>, Option<String>);

/// `caller`, `callerHost` and `callerDisplayName`, each checked for what SIP can carry.
fn caller_fields(obj: &Map<String, Value>) -> Result<CallerFields, ApiError> {
    let caller = opt_string(obj, "caller")?;
    if let Some(c) = &caller
        && !is_user_part(c)
    {
        return Err(ApiError::field(
            "caller",
            format!("`caller` `{c}` is not a valid SIP user part"),
        ));
    }
    let caller_host = opt_string(obj, "callerHost")?;
    if let Some(h) = &caller_host
        && !is_host(h)
    {
        return Err(ApiError::field(
            "callerHost",
            format!("`callerHost` `{h}` is not a host name or IP address"),
        ));
    }
    let caller_display_name = opt_string(obj, "callerDisplayName")?;
    if let Some(d) = &caller_display_name
        && (d.len() > MAX_DISPLAY_NAME || d.chars().any(|c| c.is_control()))
    {
        return Err(ApiError::field(
            "callerDisplayName",
            format!(
                "`callerDisplayName` must be at most {MAX_DISPLAY_NAME} characters without control characters"
            ),
        ));
    }
    Ok((caller, caller_host, caller_display_name))
}

/// `notifyUrl`: an absolute http(s) URL (where it may point is checked at accept and connect).
fn notify_url(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let notify_url = opt_string(obj, "notifyUrl")?;
    if let Some(u) = &notify_url {
        match url::Url::parse(u) {
            Ok(p) if (p.scheme() == "http" || p.scheme() == "https") && p.host().is_some() => {}
            _ => {
                return Err(ApiError::field(
                    "notifyUrl",
                    format!("`notifyUrl` `{u}` must be an absolute http:// or https:// URL"),
                ));
            }
        }
    }
    Ok(notify_url)
}

/// `machineDetection`: disabled, detect or disconnect.
fn machine_detection(obj: &Map<String, Value>) -> Result<Option<AmdMode>, ApiError> {
    let Some(m) = opt_string(obj, "machineDetection")? else {
        return Ok(None);
    };
    match m.as_str() {
        "disabled" => Ok(Some(AmdMode::Disabled)),
        "detect" => Ok(Some(AmdMode::Detect)),
        "disconnect" => Ok(Some(AmdMode::Disconnect)),
        other => Err(ApiError::field(
            "machineDetection",
            format!("`machineDetection` `{other}` must be one of disabled, detect, disconnect"),
        )),
    }
}

/// `answerTimeoutSec`: whole seconds from 1 to 300.
fn answer_timeout(obj: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    match obj.get("answerTimeoutSec") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v @ 1..=300) => Ok(Some(v as u32)),
            _ => Err(ApiError::field(
                "answerTimeoutSec",
                format!(
                    "`answerTimeoutSec` must be a whole number of seconds from 1 to 300, got {n}"
                ),
            )),
        },
        Some(other) => Err(ApiError::field(
            "answerTimeoutSec",
            format!(
                "`answerTimeoutSec` must be a number, got {}",
                type_name(other)
            ),
        )),
    }
}

/// `headers`: X- headers with token names and short printable values, bounded in count and
/// size so the INVITE stays within one UDP datagram.
fn headers(obj: &Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut headers = BTreeMap::new();
    let h = match obj.get("headers") {
        None | Some(Value::Null) => return Ok(headers),
        Some(Value::Object(h)) => h,
        Some(other) => {
            return Err(ApiError::field(
                "headers",
                format!(
                    "`headers` must be an object of X- header names to strings, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    if h.len() > MAX_HEADERS {
        return Err(ApiError::field(
            "headers",
            format!(
                "at most {MAX_HEADERS} headers may be added, got {}",
                h.len()
            ),
        ));
    }
    let bytes: usize = h
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::field(
            "headers",
            format!(
                "the headers hold {bytes} bytes; at most {MAX_HEADER_BYTES} (names and values) keep the INVITE within one UDP datagram"
            ),
        ));
    }
    for (name, value) in h {
        let field = format!("headers.{name}");
        // `get`, not `[..2]`: a name whose second character is not ASCII must be refused,
        // not panic the connection's task on a char boundary.
        let x_prefix = name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"));
        if !(name.len() > 2 && x_prefix && is_token(name)) {
            return Err(ApiError::field(
                field,
                format!(
                    "header `{name}` is not allowed: only X- headers with token characters may be added"
                ),
            ));
        }
        let Value::String(v) = value else {
            return Err(ApiError::field(
                field,
                format!("header `{name}` must have a string value"),
            ));
        };
        if v.len() > 1024 || v.chars().any(|c| c.is_control()) {
            return Err(ApiError::field(
                field,
                format!(
                    "header `{name}` value must be at most 1024 characters without control characters"
                ),
            ));
        }
        headers.insert(name.clone(), v.clone());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn targets_in_every_accepted_form() {
        assert_eq!(
            parse_target("tel:+15551234567").unwrap(),
            Target::Tel("+15551234567".into())
        );
        assert_eq!(
            parse_target("+15551234567").unwrap(),
            Target::Tel("+15551234567".into())
        );
        assert_eq!(
            parse_target("sip:alice@example.com").unwrap(),
            Target::Sip("sip:alice@example.com".into())
        );
        // Without `+`: kept as written until a default country gives it one.
        assert_eq!(
            parse_target("15550100").unwrap(),
            Target::Tel("15550100".into())
        );
        assert_eq!(
            parse_target("tel:15550100").unwrap(),
            Target::Tel("15550100".into())
        );
        assert!(parse_target("1-555").is_err());
        assert!(parse_target("tel:+0123").is_err());
        assert!(parse_target("tel:+1234567890123456").is_err());
        assert!(parse_target("sip:").is_err());
        assert!(parse_target("sip:a b@host").is_err());
        // Found by tests/fuzz_parsers.rs: an empty user part left nothing to route on.
        assert!(parse_target("sip:@host").is_err());
    }

    #[test]
    fn dialer_content_cannot_reach_other_parts_of_the_invite() {
        // 1. URI headers and parameters in a SIP target are refused, not forwarded
        for t in [
            "sip:alice@example.com?Route=%3Csip:evil.example%3E",
            "sip:alice@example.com;transport=tcp",
            "sip:alice@example.com;maddr=10.0.0.1",
            "sip:alice;x=1@example.com",
        ] {
            let e = parse_target(t).unwrap_err();
            assert!(e.to_string().contains("URI parameters"), "{t}: {e}");
        }
        // 2. headers are bounded in number and size
        let many: serde_json::Map<String, Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("X-H{i}"), Value::String("v".into())))
            .collect();
        let body = serde_json::json!({"bot":"b","target":"+15551234567","headers":many});
        assert_eq!(field_of(&body.to_string()), "headers");
        let big = serde_json::json!({"bot":"b","target":"+15551234567","headers":{"X-Big":"v".repeat(MAX_HEADER_BYTES)}});
        assert_eq!(field_of(&big.to_string()), "headers");
    }

    #[test]
    fn numbers_without_plus_need_a_country() {
        // 1. with a default country the number gets its E.164 form
        let t = parse_target("15550100").unwrap();
        assert!(needs_country(&t));
        assert_eq!(
            normalise_target(&t, Some(1)).unwrap(),
            Target::Tel("+15550100".into())
        );
        // 2. without one: a clear 400 naming the field
        let e = normalise_target(&t, None).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(e.to_string().contains("default_country"), "{e}");
    }

    #[test]
    fn a_non_ascii_header_name_is_refused_not_a_panic() {
        // 'é' is two bytes: byte 2 is inside it, where slicing `[..2]` used to panic.
        for name in ["xé-y", "é", "X-é", "日本"] {
            let body =
                serde_json::json!({"bot": "b", "target": "+15551234567", "headers": {name: "v"}});
            let e = parse(body.to_string().as_bytes()).expect_err("refused");
            assert_eq!(e.status(), hyper::StatusCode::BAD_REQUEST, "{name}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(r#"{"target":"+15551234567"}"#), "bot");
        assert_eq!(field_of(r#"{"bot":"b"}"#), "target");
        assert_eq!(field_of(r#"{"bot":"b","target":"nope"}"#), "target");
        assert_eq!(field_of(r#"{"bot":1,"target":"+15551234567"}"#), "bot");
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","notifyUrl":"ftp://x"}"#),
            "notifyUrl"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","answerTimeoutSec":0}"#),
            "answerTimeoutSec"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","answerTimeoutSec":301}"#),
            "answerTimeoutSec"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","machineDetection":"maybe"}"#),
            "machineDetection"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","metadata":[1]}"#),
            "metadata"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","headers":{"Via":"x"}}"#),
            "headers.Via"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","caller":"a b"}"#),
            "caller"
        );
        assert_eq!(
            field_of(r#"{"bot":"b","target":"+15551234567","callerHost":"a/b"}"#),
            "callerHost"
        );
    }

    #[test]
    fn full_request_is_normalised() {
        let r = parse(br#"{"bot":"b","target":"tel:+15551234567","caller":"+15550001111","callerHost":"example.com",
            "callerDisplayName":"Acme","notifyUrl":"https://dialer.example/notify","machineDetection":"detect",
            "answerTimeoutSec":20,"metadata":{"k":1},"headers":{"X-Campaign":"7"}}"#)
        .unwrap();
        assert_eq!(r.target, Target::Tel("+15551234567".into()));
        assert_eq!(r.machine_detection, Some(AmdMode::Detect));
        assert_eq!(r.answer_timeout_sec, Some(20));
        assert_eq!(r.headers.get("X-Campaign").map(String::as_str), Some("7"));
    }

    #[test]
    fn not_json_and_not_object() {
        assert!(matches!(parse(b"{"), Err(ApiError::BadJson(_))));
        assert!(matches!(parse(b"[1]"), Err(ApiError::BadRequest(_))));
    }
}
