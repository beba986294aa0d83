//! `X-Dialgate-Signature` helpers.

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` for `secret`, as dialgate signs notifications.
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    dialgate::webhook::sign::signature(secret.as_bytes(), t, body)
}

/// Checks an `X-Dialgate-Signature` header against the raw body and the webhook secret
/// (constant-time comparison; any `v1=` entry may match, as with key rotation).
pub fn verify_signature(header: &str, body: &[u8], secret: &str) -> bool {
    dialgate::webhook::sign::verify_untimed(secret.as_bytes(), header, body)
}
