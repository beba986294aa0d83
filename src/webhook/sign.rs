//! `X-Dialgate-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs `body` at unix time `t` with `secret`; returns the header value.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Signs `body` at unix time `t` with each secret: one `v1` entry per secret (receivers accept
/// the header if any entry matches, so a key rotation while a call is live breaks nobody).
pub fn signature_multi(secrets: &[&[u8]], t: u64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for secret in secrets {
        let one = signature(secret, t, body);
        if let Some((_, v1)) = one.split_once(',') {
            out.push(',');
            out.push_str(v1);
        }
    }
    out
}

/// The `t` of a signature header and its `v1` entries (several during a key rotation).
fn parse(header: &str) -> Option<(&str, Vec<&str>)> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let t = t.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))?;
    Some((t, sigs))
}

/// Checks a signature header against the raw body, whatever its age (for
/// receivers that check the age themselves, and tests). Constant-time; any
/// `v1` entry may match.
pub fn verify_untimed(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some((t, sigs)) = parse(header) else {
        return false;
    };
    sigs.iter().any(|sig| {
        let (Ok(raw), Ok(mut mac)) = (hex::decode(sig), Hmac::<Sha256>::new_from_slice(secret))
        else {
            return false;
        };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&raw).is_ok()
    })
}

/// Checks a signature header (for receivers and tests); `tolerance_secs`
/// bounds the age of `t` against `now`, against replays.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance_secs: u64) -> bool {
    let Some(t) = parse(header).and_then(|(t, _)| t.parse::<u64>().ok()) else {
        return false;
    };
    now.abs_diff(t) <= tolerance_secs && verify_untimed(secret, header, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let h = signature(b"whsec", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify(b"whsec", &h, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify(b"other", &h, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify(b"whsec", &h, b"{\"a\":2}", 1_700_000_010, 300));
        assert!(!verify(b"whsec", &h, b"{\"a\":1}", 1_700_001_000, 300));
    }

    #[test]
    fn a_header_signed_with_two_keys_verifies_with_either() {
        let h = signature_multi(&[b"old", b"new"], 1_700_000_000, b"{}");
        assert_eq!(h.matches("v1=").count(), 2);
        assert!(verify_untimed(b"old", &h, b"{}"));
        assert!(verify_untimed(b"new", &h, b"{}"));
        assert!(!verify_untimed(b"other", &h, b"{}"));
        assert_eq!(signature_multi(&[b"k"], 5, b"x"), signature(b"k", 5, b"x"));
    }
}
