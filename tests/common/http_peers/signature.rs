//! `X-Dialgate-Signature` helpers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` for `secret`, as dialgate signs notifications.
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks an `X-Dialgate-Signature` header against the raw body and the webhook secret
/// (constant-time comparison; any `v1=` entry may match, as with key rotation).
pub fn verify_signature(header: &str, body: &[u8], secret: &str) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())) else {
        return false;
    };
    sigs.iter().any(|sig| {
        let Ok(raw) = hex::decode(sig) else {
            return false;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&raw).is_ok()
    })
}
