//! The `cluster` section: several dialgate instances sharing PostgreSQL (records, outbox, queue)
//! and Redis (limits, messages). Absent, the instance runs alone on its SQLite file.

use super::error::ErrorKind;
use super::validate::Ctx;
use serde::Deserialize;
use std::fmt;

/// `cluster` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub instance_id: String,
    pub postgres_url: Option<String>,
    pub postgres_url_env: Option<String>,
    pub redis_url: Option<String>,
    pub redis_url_env: Option<String>,
    /// PEM file of the CA(s) trusted for a `rediss://` URL instead of the system's roots.
    pub redis_ca_file: Option<String>,
    #[serde(default = "d_lease_sec")]
    pub lease_sec: u32,
}

fn d_lease_sec() -> u32 {
    10
}

/// Bounds of `cluster.lease_sec`: below 2 s a busy instance could lose its leases between two
/// renewals; above 300 s a dead instance's permits and calls would wait too long for takeover.
pub const LEASE_SEC_RANGE: std::ops::RangeInclusive<u32> = 2..=300;

/// Longest `cluster.instance_id`: it becomes part of Redis keys and stored owner columns.
const INSTANCE_ID_MAX: usize = 64;

/// Cluster mode, validated. URLs are resolved (from the environment for `*_env`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This instance's name, unique in the cluster (letters, digits, `-`, `_`).
    pub instance_id: String,
    /// PostgreSQL connection URL (`postgres://…`); `None`: the store stays on SQLite.
    pub postgres_url: Option<String>,
    /// Redis URL (`redis://…`); `None`: limits stay local to the instance.
    pub redis_url: Option<String>,
    /// Lifetime of this instance's leases (permits, liveness), renewed well before it ends.
    pub lease_sec: u32,
    /// CA certificate(s) (PEM) that a `rediss://` server's certificate must chain to; `None`:
    /// the system's roots.
    pub redis_ca_file: Option<std::path::PathBuf>,
}

impl fmt::Debug for ClusterConfig {
    // URLs may carry passwords: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("instance_id", &self.instance_id)
            .field(
                "postgres_url",
                &self.postgres_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("lease_sec", &self.lease_sec)
            .field("redis_ca_file", &self.redis_ca_file)
            .finish()
    }
}

/// `url` with the password of its user part (`scheme://user:password@host`) replaced, for logs
/// and error messages. A URL without a user part is returned as is.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL (e.g. a key=value connection string): it may hold anything.
        return "<redacted>".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:<redacted>@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Whether `id` is a safe instance name: 1–64 of `A-Z a-z 0-9 - _`, starting with a letter or
/// digit (it ends up in Redis keys, SQL values and log lines).
fn safe_identifier(id: &str) -> bool {
    id.len() <= INSTANCE_ID_MAX
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl Ctx<'_> {
    /// Validates `cluster` (always in source 0).
    pub(super) fn cluster(&mut self, raw: &RawCluster) -> ClusterConfig {
        if !safe_identifier(&raw.instance_id) {
            self.err(
                0,
                "cluster.instance_id",
                ErrorKind::InvalidValue,
                format!(
                    "expected 1 to {INSTANCE_ID_MAX} letters, digits, `-` or `_` starting with a letter or digit, got {:?}",
                    raw.instance_id
                ),
            );
        }
        if !LEASE_SEC_RANGE.contains(&raw.lease_sec) {
            self.err(
                0,
                "cluster.lease_sec",
                ErrorKind::InvalidValue,
                format!(
                    "expected a whole number of seconds from {} to {}, got {}",
                    LEASE_SEC_RANGE.start(),
                    LEASE_SEC_RANGE.end(),
                    raw.lease_sec
                ),
            );
        }
        let postgres_url = self.cluster_url(
            "postgres_url",
            raw.postgres_url.as_ref(),
            raw.postgres_url_env.as_ref(),
            &["postgres://", "postgresql://"],
        );
        let redis_url = self.cluster_url(
            "redis_url",
            raw.redis_url.as_ref(),
            raw.redis_url_env.as_ref(),
            &["redis://", "rediss://", "redis+unix://", "unix://"],
        );
        let any_url = raw.postgres_url.is_some()
            || raw.postgres_url_env.is_some()
            || raw.redis_url.is_some()
            || raw.redis_url_env.is_some();
        if !any_url {
            self.err_key(
                0,
                "cluster",
                ErrorKind::MissingField,
                "a cluster needs what its instances share: set postgres_url (or postgres_url_env) and redis_url (or redis_url_env)",
            );
        }
        let redis_ca_file = self.redis_ca_file(raw.redis_ca_file.as_deref(), redis_url.as_deref());
        ClusterConfig {
            instance_id: raw.instance_id.clone(),
            postgres_url,
            redis_url,
            lease_sec: raw.lease_sec,
            redis_ca_file,
        }
    }

    /// `cluster.redis_ca_file`: an existing file, and only with a `rediss://` URL (a CA for a
    /// connection without TLS would be silently ignored).
    fn redis_ca_file(
        &mut self,
        value: Option<&str>,
        redis_url: Option<&str>,
    ) -> Option<std::path::PathBuf> {
        let p = self.resolve(value?);
        if !p.is_file() {
            self.err(
                0,
                "cluster.redis_ca_file",
                ErrorKind::MissingFile,
                format!(
                    "file {} does not exist (relative paths start at the config file's directory)",
                    p.display()
                ),
            );
        }
        if redis_url.is_some_and(|u| !u.starts_with("rediss://")) {
            self.err(
                0,
                "cluster.redis_ca_file",
                ErrorKind::InvalidValue,
                "a CA file is used only with TLS: the Redis URL must start with rediss://",
            );
        }
        Some(p)
    }

    /// One of `name` / `name_env` (not both), resolved, with a scheme from `schemes`.
    fn cluster_url(
        &mut self,
        name: &str,
        clear: Option<&String>,
        env: Option<&String>,
        schemes: &[&str],
    ) -> Option<String> {
        let env_name = format!("{name}_env");
        let url = self.clear_or_env(0, "cluster", (name, clear), (&env_name, env))?;
        if !schemes.iter().any(|s| url.starts_with(s)) {
            // Where the bad value came from: the clear key, or the key naming the variable.
            let (path, origin) = match env {
                Some(var) if clear.is_none() => {
                    (format!("cluster.{env_name}"), format!(" (from {var})"))
                }
                _ => (format!("cluster.{name}"), String::new()),
            };
            self.err(
                0,
                &path,
                ErrorKind::InvalidValue,
                format!(
                    "expected a URL starting with {}{origin}, got {}",
                    schemes.join(" or "),
                    redact_url(&url)
                ),
            );
            return None;
        }
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://dg:s3cret@db:5432/dialgate?sslmode=disable"),
            "postgres://dg:<redacted>@db:5432/dialgate?sslmode=disable"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:<redacted>@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("host=db password=x"), "<redacted>");
    }

    #[test]
    fn instance_ids() {
        for ok in ["a", "dg-1", "node_02", "A9"] {
            assert!(safe_identifier(ok), "{ok}");
        }
        for bad in ["", "-a", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!safe_identifier(bad), "{bad}");
        }
    }
}
