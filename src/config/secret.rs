//! API client secrets: argon2id PHC hashes, or clear values taken from the environment.

use super::types::Group;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::fmt;

/// Hashes `secret` with argon2id (default parameters, random salt) into a PHC string for
/// `api_clients[].secret_hash` (`dialgate hash-secret`).
pub fn hash_secret(secret: &str) -> String {
    match Argon2::default().hash_password(secret.as_bytes()) {
        Ok(h) => h.to_string(),
        // Only fails if the OS random source fails; an empty string never verifies anything.
        Err(e) => {
            tracing::error!(error = %e, "argon2 hashing failed");
            String::new()
        }
    }
}

/// Checks that `phc` is an argon2 PHC string; returns why not.
pub(super) fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "expected an argon2 hash, got algorithm {}",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// How an API client's secret is known.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientSecret {
    /// argon2 PHC string.
    Hash(String),
    /// Clear secret read from the environment at load time.
    Env(String),
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSecret::Hash(h) => f.debug_tuple("Hash").field(h).finish(),
            ClientSecret::Env(_) => f.write_str("Env(<redacted>)"),
        }
    }
}

/// One REST API client (OAuth client-credentials style).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiClient {
    /// Unique client ID.
    pub client_id: String,
    /// Secret to check presented credentials against.
    pub secret: ClientSecret,
    /// Permission groups.
    pub groups: Vec<Group>,
    /// Key used to sign webhook notifications, if any.
    pub webhook_secret: Option<String>,
    /// May read and hang up every client's calls (`all_calls: true`);
    /// otherwise only its own.
    pub all_calls: bool,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("groups", &self.groups)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("all_calls", &self.all_calls)
            .finish()
    }
}

impl ApiClient {
    /// Whether `candidate` is this client's secret (argon2 verify, or constant-time compare).
    pub fn verify_secret(&self, candidate: &str) -> bool {
        match &self.secret {
            ClientSecret::Hash(phc) => match PasswordHash::new(phc) {
                Ok(parsed) => Argon2::default()
                    .verify_password(candidate.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            },
            ClientSecret::Env(clear) => constant_time_eq(clear.as_bytes(), candidate.as_bytes()),
        }
    }

    /// Whether the client belongs to `group`.
    pub fn has_group(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }
}

/// Compares without an early exit so timing does not reveal the matching prefix length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: ClientSecret) -> ApiClient {
        ApiClient {
            client_id: "c".into(),
            secret,
            groups: vec![Group::CallControl],
            webhook_secret: None,
            all_calls: false,
        }
    }

    #[test]
    fn hash_then_verify() {
        // 1. Hash a secret: argon2id PHC string that passes the load-time check.
        let phc = hash_secret("s3cret");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert_eq!(check_phc(&phc), Ok(()));
        // 2. The right secret verifies, a wrong one does not.
        let c = client(ClientSecret::Hash(phc));
        assert!(c.verify_secret("s3cret"));
        assert!(!c.verify_secret("s3cret "));
        // 3. Groups.
        assert!(c.has_group(Group::CallControl));
        assert!(!c.has_group(Group::CallDataManager));
    }

    #[test]
    fn env_secret_compare() {
        // 1. Exact match only, including length differences and a prefix.
        let c = client(ClientSecret::Env("abc".into()));
        assert!(c.verify_secret("abc"));
        assert!(!c.verify_secret("ab"));
        assert!(!c.verify_secret("abcd"));
        assert!(!c.verify_secret(""));
        // 2. Debug never prints the clear value.
        assert!(!format!("{c:?}").contains("abc\""));
    }

    #[test]
    fn bad_phc_rejected() {
        assert!(check_phc("plaintext").is_err());
        assert!(check_phc("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }
}
