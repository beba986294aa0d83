//! TEMPORARY stub of the configuration types (replaced by the real module at integration).
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub server: Server,
    #[serde(default)]
    pub bots: Vec<Bot>,
    #[serde(default)]
    pub sip_connections: Vec<SipConnection>,
    #[serde(default)]
    pub phone_numbers: Vec<PhoneNumber>,
    #[serde(default)]
    pub routing_rules: Vec<RoutingRule>,
    #[serde(default)]
    pub api_clients: Vec<ApiClient>,
}
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub http: Http,
    pub data_dir: PathBuf,
}
#[derive(Debug, Clone, Deserialize)]
pub struct Http {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub plain_http: bool,
}
#[derive(Debug, Clone, Deserialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
#[derive(Debug, Clone, Deserialize)]
pub struct Bot {
    pub id: String,
    pub name: String,
    pub sip_uri: String,
    pub events_url: Option<String>,
    pub token: Option<String>,
    #[serde(default)]
    pub outbound: Outbound,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MachineDetectionMode {
    #[default]
    Disabled,
    Detect,
    Disconnect,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Outbound {
    pub enabled: bool,
    pub start_recognition_on_connect: bool,
    pub dialout_initiated_event: bool,
    pub machine_detection: MachineDetectionMode,
    pub answer_timeout_sec: u32,
    pub max_cps: f64,
    pub max_concurrent: u32,
}
impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            enabled: false,
            start_recognition_on_connect: false,
            dialout_initiated_event: false,
            machine_detection: MachineDetectionMode::Disabled,
            answer_timeout_sec: 30,
            max_cps: 1.0,
            max_concurrent: 3,
        }
    }
}
#[derive(Debug, Clone, Deserialize)]
pub struct SipConnection {
    pub id: String,
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumber {
    pub number: String,
    pub bot: String,
    pub sip_connection: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    SipConnection(String),
    PhoneNumber(String),
}
#[derive(Debug, Clone, Deserialize)]
pub struct RoutingRule {
    pub name: String,
    pub origin_bot: String,
    pub destination_pattern: Option<String>,
    pub route: RouteTarget,
    #[serde(default)]
    pub priority: i32,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    CallControl,
    CallDataManager,
}
#[derive(Debug, Clone, Deserialize)]
pub struct ApiClient {
    pub client_id: String,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub groups: Vec<Group>,
    pub webhook_secret: Option<String>,
    pub webhook_secret_env: Option<String>,
}
impl ApiClient {
    pub fn verify_secret(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.secret
            .clone()
            .or_else(|| self.secret_env.as_ref().and_then(|v| std::env::var(v).ok()))
            .as_deref()
            .map(|s| bool::from(s.as_bytes().ct_eq(candidate.as_bytes())))
            .unwrap_or(false)
    }
    pub fn has_group(&self, g: Group) -> bool {
        self.groups.contains(&g)
    }
}
impl Config {
    pub fn bot(&self, id_or_name: &str) -> Option<&Bot> {
        self.bots
            .iter()
            .find(|b| b.id == id_or_name)
            .or_else(|| self.bots.iter().find(|b| b.name == id_or_name))
    }
    pub fn api_client(&self, id: &str) -> Option<&ApiClient> {
        self.api_clients.iter().find(|c| c.client_id == id)
    }
}
pub struct Snapshot {
    pub config: Config,
    pub version: u64,
    pub loaded_at: SystemTime,
}
pub struct ConfigStore {
    cur: arc_swap::ArcSwap<Snapshot>,
    path: PathBuf,
}
impl ConfigStore {
    pub fn open(path: &Path) -> Result<Self, String> {
        let config = load(path)?;
        Ok(ConfigStore {
            cur: arc_swap::ArcSwap::from_pointee(Snapshot {
                config,
                version: 1,
                loaded_at: SystemTime::now(),
            }),
            path: path.to_owned(),
        })
    }
    pub fn current(&self) -> Arc<Snapshot> {
        self.cur.load_full()
    }
    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        None
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}
pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_saphyr::from_str(&text).map_err(|e| e.to_string())
}
impl Config {
    pub fn sip_connection(&self, id: &str) -> Option<&SipConnection> {
        self.sip_connections.iter().find(|c| c.id == id)
    }
    pub fn phone_number(&self, n: &str) -> Option<&PhoneNumber> {
        self.phone_numbers.iter().find(|p| p.number == n)
    }
}
impl RoutingRule {
    pub fn matches_destination(&self, key: &str) -> bool {
        self.destination_pattern
            .as_deref()
            .map(|p| key.starts_with(&p.trim_start_matches('^').replace('\\', "")))
            .unwrap_or(true)
    }
}
impl ApiClient {
    pub fn secret_fingerprint(&self) -> String {
        self.secret.clone().unwrap_or_default()
    }
}
impl ApiClient {
    pub fn webhook_secret_value(&self) -> Option<String> {
        self.webhook_secret.clone().or_else(|| {
            self.webhook_secret_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}
impl Bot {
    pub fn bearer_token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}
pub fn spawn_watcher(
    _store: Arc<ConfigStore>,
    _metrics: Arc<crate::metrics::Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { shutdown.cancelled().await })
}
pub fn summary(c: &Config) -> String {
    format!("{} bots", c.bots.len())
}
pub fn hash_secret(s: &str) -> String {
    s.to_owned()
}
