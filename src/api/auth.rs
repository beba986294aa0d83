//! Authentication: HTTP Basic with client credentials, Bearer tokens from
//! `POST /oauth/token`, and a per-address brake on repeated failures.

use super::error::ApiError;
use crate::config::{Config, Group};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Who made a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: String,
}

struct Token {
    client_id: String,
    expires: Instant,
}

/// Failures allowed from one address within [`FAILURE_WINDOW`] before it is slowed.
pub const MAX_FAILURES: u32 = 5;
/// The window over which authentication failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Token issuance and verification, and the failure brake.
pub struct Authenticator {
    token_ttl: Duration,
    /// Keyed by SHA-256 of the token, so a timing leak on the map lookup
    /// reveals nothing about the token itself.
    tokens: Mutex<HashMap<[u8; 32], Token>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Successful secret verifications `(client, sha256(secret))`: argon2 is
    /// deliberately slow, and Basic auth runs it on every request.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
}

/// Identifies the configured secret, so a reload that changes it invalidates
/// cached verifications.
fn secret_fingerprint(s: &crate::config::ClientSecret) -> String {
    match s {
        crate::config::ClientSecret::Hash(h) => format!("hash:{h}"),
        crate::config::ClientSecret::Env(v) => format!("env:{}", hex::encode(digest(v))),
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Authenticator {
    /// A new authenticator issuing tokens valid for `token_ttl`.
    pub fn new(token_ttl: Duration) -> Self {
        Authenticator {
            token_ttl,
            tokens: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Token lifetime in seconds, as announced in `expires_in`.
    pub fn ttl_secs(&self) -> u64 {
        self.token_ttl.as_secs()
    }

    /// Refuses a request from an address that failed too often recently.
    pub fn check_throttle(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((count, since)) = f.get(&ip).copied() {
            let elapsed = since.elapsed();
            if elapsed >= FAILURE_WINDOW {
                f.remove(&ip);
            } else if count >= MAX_FAILURES {
                let wait = (FAILURE_WINDOW - elapsed).as_secs().max(1);
                return Err(ApiError::AuthThrottled(wait));
            }
        }
        Ok(())
    }

    /// Counts one failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let e = f.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FAILURE_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        if e.0 == MAX_FAILURES {
            tracing::warn!(%ip, "authentication failures from this address are now throttled");
        }
    }

    /// Checks client credentials against the configuration.
    pub fn verify_client(&self, cfg: &Config, client_id: &str, secret: &str) -> bool {
        let Some(client) = cfg.api_client(client_id) else {
            // Burn comparable time so unknown clients are not distinguishable.
            let _ = digest(secret).ct_eq(&[0u8; 32]);
            return false;
        };
        let key = (client_id.to_owned(), digest(secret));
        let fingerprint = secret_fingerprint(&client.secret);
        {
            let v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.get(&key) == Some(&fingerprint) {
                return true;
            }
        }
        let ok = client.verify_secret(secret);
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() > 10_000 {
                v.clear();
            }
            v.insert(key, fingerprint);
        }
        ok
    }

    /// Issues a Bearer token for an authenticated client.
    pub fn issue(&self, client_id: &str) -> String {
        let mut raw = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut raw[..]);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        t.retain(|_, v| v.expires > now);
        t.insert(
            digest(&token),
            Token {
                client_id: client_id.to_owned(),
                expires: now + self.token_ttl,
            },
        );
        token
    }

    fn lookup_token(&self, token: &str) -> Option<String> {
        let t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let tok = t.get(&digest(token))?;
        (tok.expires > Instant::now()).then(|| tok.client_id.clone())
    }

    /// Authenticates a request from its `Authorization` header.
    pub fn authenticate(
        &self,
        cfg: &Config,
        ip: IpAddr,
        authorization: Option<&str>,
    ) -> Result<Principal, ApiError> {
        self.check_throttle(ip)?;
        let Some(h) = authorization else {
            return Err(ApiError::Unauthenticated);
        };
        let result = if let Some(b64) = strip_scheme(h, "Basic") {
            match parse_basic(b64) {
                Some((id, secret)) if self.verify_client(cfg, &id, &secret) => {
                    Ok(Principal { client_id: id })
                }
                _ => Err(ApiError::BadCredentials),
            }
        } else if let Some(token) = strip_scheme(h, "Bearer") {
            match self.lookup_token(token.trim()) {
                // A token outlives a reload only while its client still exists.
                Some(id) if cfg.api_client(&id).is_some() => Ok(Principal { client_id: id }),
                _ => Err(ApiError::BadToken),
            }
        } else {
            Err(ApiError::Unauthenticated)
        };
        if result.is_err() {
            self.record_failure(ip);
        }
        result
    }

    /// Checks that the client is in `group`.
    pub fn require(cfg: &Config, who: &Principal, group: Group) -> Result<(), ApiError> {
        let ok = cfg
            .api_client(&who.client_id)
            .map(|c| c.has_group(group))
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                client: who.client_id.clone(),
                group: match group {
                    Group::CallControl => "call_control",
                    Group::CallDataManager => "call_data_manager",
                },
            })
        }
    }
}

fn strip_scheme<'a>(h: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = h.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

/// Decodes `base64(id:secret)`.
pub fn parse_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let b = base64::engine::general_purpose::STANDARD.encode("dialer:s3:cret");
        assert_eq!(parse_basic(&b), Some(("dialer".into(), "s3:cret".into())));
        assert_eq!(parse_basic("!!"), None);
        assert_eq!(strip_scheme("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(strip_scheme("Basic", "Basic"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_throttle_one_address_only() {
        let a = Authenticator::new(Duration::from_secs(900));
        let bad: IpAddr = "127.0.0.2".parse().unwrap();
        let good: IpAddr = "127.0.0.3".parse().unwrap();
        // 1. Five failures from one address.
        for _ in 0..MAX_FAILURES {
            assert!(a.check_throttle(bad).is_ok());
            a.record_failure(bad);
        }
        // 2. That address is now refused; another is not.
        assert!(matches!(
            a.check_throttle(bad),
            Err(ApiError::AuthThrottled(_))
        ));
        assert!(a.check_throttle(good).is_ok());
        // 3. After the window the brake is released.
        tokio::time::advance(FAILURE_WINDOW).await;
        assert!(a.check_throttle(bad).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_expire() {
        let a = Authenticator::new(Duration::from_secs(900));
        let t = a.issue("dialer");
        assert_eq!(a.lookup_token(&t).as_deref(), Some("dialer"));
        assert_eq!(a.lookup_token("forged"), None);
        tokio::time::advance(Duration::from_secs(901)).await;
        assert_eq!(a.lookup_token(&t), None);
    }
}
