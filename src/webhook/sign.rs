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

/// Checks a signature header (for receivers and tests); `tolerance_secs`
/// bounds the age of `t` against `now`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance_secs: u64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if now.abs_diff(t) > tolerance_secs {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
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
}
