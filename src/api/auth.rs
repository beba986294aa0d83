//! Authentication: HTTP Basic with client credentials, Bearer tokens from
//! `POST /oauth/token`, and the brake on repeated failures ([`super::brake`]).

use super::brake::{Admit, Brake};
use super::error::ApiError;
use crate::config::{Config, Group};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
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

/// Argon2 verifications running at once (on tokio's blocking pool): the
/// machine's cores, so a flood of wrong secrets queues here instead of
/// starving the async runtime (and every other request and SIP message).
const VERIFY_SLOTS: usize = 2;

/// Token issuance and verification, and the failure brake.
pub struct Authenticator {
    token_ttl: Duration,
    /// Keyed by SHA-256 of the token, so a timing leak on the map lookup
    /// reveals nothing about the token itself.
    tokens: Mutex<HashMap<[u8; 32], Token>>,
    brake: Mutex<Brake>,
    /// Successful secret verifications `(client, sha256(secret))`: argon2 is
    /// deliberately slow, and Basic auth runs it on every request.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
    verify_slots: Arc<Semaphore>,
    /// Attempts the brake delayed (for `/metrics`).
    pub delayed: AtomicU64,
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

/// An argon2 hash nobody's secret matches, verified for unknown client IDs so
/// they cost what a known one costs (client IDs are not enumerable by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crate::config::hash_secret("dialgate: no such client"))
}

impl Authenticator {
    /// A new authenticator issuing tokens valid for `token_ttl`.
    pub fn new(token_ttl: Duration) -> Self {
        Authenticator {
            token_ttl,
            tokens: Mutex::new(HashMap::new()),
            brake: Mutex::new(Brake::default()),
            verified: Mutex::new(HashMap::new()),
            verify_slots: Arc::new(Semaphore::new(VERIFY_SLOTS)),
            delayed: AtomicU64::new(0),
        }
    }

    /// Token lifetime in seconds, as announced in `expires_in`.
    pub fn ttl_secs(&self) -> u64 {
        self.token_ttl.as_secs()
    }

    /// Waits as long as the brake says for an attempt by `client` from `ip`
    /// (or refuses it when the queue is too long).
    async fn brake(&self, client: Option<&str>, ip: IpAddr) -> Result<(), ApiError> {
        let admit = self.brake.lock().unwrap_or_else(|p| p.into_inner()).admit(
            client,
            ip,
            Instant::now().into_std(),
        );
        match admit {
            Admit::Now => Ok(()),
            Admit::After(wait) => {
                self.delayed.fetch_add(1, Relaxed);
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Admit::Refuse(wait) => Err(ApiError::AuthThrottled(wait.as_secs().max(1))),
        }
    }

    fn failure(&self, client: Option<&str>, ip: IpAddr) {
        self.brake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failure(client, ip, Instant::now().into_std());
    }

    /// The cached verdict: true when this exact secret verified before
    /// against the client's current secret.
    fn known_good(&self, cfg: &Config, client_id: &str, secret: &str) -> bool {
        let Some(client) = cfg.api_client(client_id) else {
            return false;
        };
        let v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        v.get(&(client_id.to_owned(), digest(secret))) == Some(&secret_fingerprint(&client.secret))
    }

    /// Checks client credentials: a secret verified before passes at once;
    /// anything else goes through the brake, then argon2 on the blocking pool
    /// (an unknown client against a dummy hash).
    pub async fn check_secret(
        &self,
        cfg: &Config,
        ip: IpAddr,
        client_id: &str,
        secret: &str,
    ) -> Result<(), ApiError> {
        if self.known_good(cfg, client_id, secret) {
            return Ok(());
        }
        self.brake(Some(client_id), ip).await?;
        if self.verify_slow(cfg, client_id, secret).await {
            self.brake
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .success(client_id, ip);
            Ok(())
        } else {
            self.failure(Some(client_id), ip);
            Err(ApiError::BadCredentials)
        }
    }

    async fn verify_slow(&self, cfg: &Config, client_id: &str, secret: &str) -> bool {
        let client = cfg.api_client(client_id).cloned();
        let Ok(_slot) = self.verify_slots.clone().acquire_owned().await else {
            return false;
        };
        let candidate = secret.to_owned();
        let check = client.clone();
        let ok = tokio::task::spawn_blocking(move || match check {
            Some(c) => c.verify_secret(&candidate),
            None => {
                let dummy = crate::config::ApiClient {
                    client_id: String::new(),
                    secret: crate::config::ClientSecret::Hash(dummy_hash().to_owned()),
                    groups: Vec::new(),
                    webhook_secret: None,
                    all_calls: false,
                };
                let _ = dummy.verify_secret(&candidate);
                false
            }
        })
        .await
        .unwrap_or(false);
        if let (true, Some(c)) = (ok, client) {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() > 10_000 {
                v.clear();
            }
            v.insert(
                (client_id.to_owned(), digest(secret)),
                secret_fingerprint(&c.secret),
            );
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
    pub async fn authenticate(
        &self,
        cfg: &Config,
        ip: IpAddr,
        authorization: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let Some(h) = authorization else {
            return Err(ApiError::Unauthenticated);
        };
        if let Some(b64) = strip_scheme(h, "Basic") {
            let Some((id, secret)) = parse_basic(b64) else {
                self.brake(None, ip).await?;
                self.failure(None, ip);
                return Err(ApiError::BadCredentials);
            };
            self.check_secret(cfg, ip, &id, &secret).await?;
            return Ok(Principal { client_id: id });
        }
        if let Some(token) = strip_scheme(h, "Bearer") {
            // A token lookup is cheap and a token unguessable (256 random
            // bits); only known-bad addresses are slowed.
            return match self.lookup_token(token.trim()) {
                // A token outlives a reload only while its client still exists.
                Some(id) if cfg.api_client(&id).is_some() => Ok(Principal { client_id: id }),
                _ => {
                    self.brake(None, ip).await?;
                    self.failure(None, ip);
                    Err(ApiError::BadToken)
                }
            };
        }
        Err(ApiError::Unauthenticated)
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
    async fn tokens_expire() {
        let a = Authenticator::new(Duration::from_secs(900));
        let t = a.issue("dialer");
        assert_eq!(a.lookup_token(&t).as_deref(), Some("dialer"));
        assert_eq!(a.lookup_token("forged"), None);
        tokio::time::advance(Duration::from_secs(901)).await;
        assert_eq!(a.lookup_token(&t), None);
    }
}
