//! Configuration: YAML schema, loading with positioned errors, and hot reload.
//!
//! [`load`] parses the main file and its `include` directory, validates every value and the
//! references between sections, and returns either a resolved [`Config`] or *all* problems found
//! ([`ConfigErrors`], each naming file, line, column and field path). [`ConfigStore`] keeps the
//! running configuration and swaps in a new one only when it loads cleanly.

mod check;
mod cluster;
mod dns;
mod early_media;
mod error;
mod index;
mod ipv6;
mod lists;
mod raw;
mod recognition;
mod routes;
mod schema;
mod secret;
mod serde_err;
mod store;
mod structure;
mod stt;
mod trunk_security;
mod types;
mod validate;

pub use cluster::{ClusterConfig, redact_url};
pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use recognition::{
    INSTALL_MODEL, RecognitionGap, RecognitionUse, gap_lines, model_file, model_installed,
    recognition_gaps,
};
pub use secret::{ApiClient, ClientSecret, hash_secret};
pub use store::{ConfigStore, Snapshot, spawn_watcher};
pub use stt::{SttDecoder, install_command};
pub use trunk_security::{SrtpMode, TrunkTls};
pub use types::*;

use index::PosIndex;
use lists::Lists;
use raw::{RawLists, RawRoot};
use std::path::{Path, PathBuf};
use validate::{Ctx, Source};

/// The whole resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, RTP ports, directories, global timers.
    pub server: Server,
    /// Voice bots.
    pub bots: Vec<Bot>,
    /// SIP trunks.
    pub sip_connections: Vec<SipConnection>,
    /// Phone numbers and their owning bots.
    pub phone_numbers: Vec<PhoneNumber>,
    /// Routing rules, sorted by priority (lowest first, file order on ties).
    pub routing_rules: Vec<RoutingRule>,
    /// REST API clients.
    pub api_clients: Vec<ApiClient>,
    /// Cluster mode (shared PostgreSQL / Redis); `None`: one instance on its own SQLite file.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Bot by ID, or else by name.
    pub fn bot(&self, id_or_name: &str) -> Option<&Bot> {
        self.bots
            .iter()
            .find(|b| b.id == id_or_name)
            .or_else(|| self.bots.iter().find(|b| b.name == id_or_name))
    }

    /// SIP connection by ID.
    pub fn sip_connection(&self, id: &str) -> Option<&SipConnection> {
        self.sip_connections.iter().find(|c| c.id == id)
    }

    /// Phone number entry by E.164 number.
    pub fn phone_number(&self, number: &str) -> Option<&PhoneNumber> {
        self.phone_numbers.iter().find(|n| n.number == number)
    }

    /// API client by client ID.
    pub fn api_client(&self, client_id: &str) -> Option<&ApiClient> {
        self.api_clients.iter().find(|c| c.client_id == client_id)
    }

    /// Routing rules applying to a call from `bot_id` to `destination`, in the order to try them.
    pub fn routes_for<'a>(
        &'a self,
        bot_id: &'a str,
        destination: &'a str,
    ) -> impl Iterator<Item = &'a RoutingRule> {
        self.routing_rules
            .iter()
            .filter(move |r| r.matches(bot_id, destination))
    }
}

fn io_error(file: &Path, path: &str, pos: (usize, usize), message: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: pos.0,
        column: pos.1,
        path: path.into(),
        message,
        kind: ErrorKind::Io,
    }
}

/// Problems found while reading the files.
#[derive(Default)]
struct Found {
    errors: Vec<ConfigError>,
    /// (file, field path) whose semantic errors would only repeat a structural one.
    shadowed: Vec<(PathBuf, String)>,
    /// A file could not be read, parsed or repaired: cross-checks would only add noise.
    fatal: bool,
}

impl Found {
    /// Whether a semantic error is about something a structural error already reported.
    fn shadows(&self, e: &ConfigError) -> bool {
        self.shadowed.iter().any(|(file, s)| {
            *file == e.file
                && e.path
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// Reads and deserializes one file; the index is kept for later semantic errors.
///
/// The structural pass runs first and reports every unknown field, wrong type and missing
/// field of the file at once; the value then comes from its repaired tree (flagged entries left
/// out), so the semantic checks can run too. Without structural problems serde deserialises the
/// text (and reports what the pass let through). The index is returned even on failure, so the
/// caller can find `server.include`.
fn parse<T: serde::de::DeserializeOwned + Default>(
    file: &Path,
    found: &mut Found,
) -> (Option<T>, Option<PosIndex>) {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            found.fatal = true;
            found.errors.push(io_error(
                file,
                "",
                (1, 1),
                format!("cannot read the file: {e}"),
            ));
            return (None, None);
        }
    };
    let idx = PosIndex::build(&text);
    // A file with only comments is an empty document; treat it as "nothing configured here".
    if !idx.has("") {
        return (Some(T::default()), Some(idx));
    }
    if let Some(tree) = structure::parse_tree(&text) {
        let f = structure::check(&tree, &schema::schema_of::<T>(), file);
        if !f.errors.is_empty() {
            found.errors.extend(f.errors);
            found
                .shadowed
                .extend(f.shadowed.into_iter().map(|p| (file.to_path_buf(), p)));
            let value = f.repaired.and_then(|v| serde_json::from_value::<T>(v).ok());
            found.fatal |= value.is_none();
            return (value, Some(idx));
        }
    }
    match serde_saphyr::from_str::<T>(&text) {
        Ok(v) => (Some(v), Some(idx)),
        Err(e) => {
            found.fatal = true;
            found.errors.push(serde_err::convert(&e, file, &idx));
            (None, Some(idx))
        }
    }
}

/// Errors in file order, like a compiler.
fn sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    ConfigErrors(errors)
}

/// Loads, validates and cross-checks the configuration at `path` (and its include directory).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut found = Found::default();
    let (root, idx) = parse::<Option<RawRoot>>(path, &mut found);
    let Some(idx) = idx else {
        return Err(sorted(found.errors));
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    // The include directory is read even when the main file has errors, so one run reports
    // the problems of every file.
    let include = match &root {
        Some(Some(r)) => r.server.include.clone(),
        _ => idx.scalar("server.include").map(str::to_string),
    };
    let mut sources = vec![Source {
        file: path.to_path_buf(),
        idx,
    }];
    let mut lists = Lists::default();
    let included = match &include {
        Some(inc) => read_includes(path, &base_dir, inc, &sources[0].idx, &mut found),
        None => Vec::new(),
    };
    let root = match root {
        Some(Some(root)) => root,
        Some(None) => {
            found.errors.push(io_error(
                path,
                "",
                (1, 1),
                "the file is empty; at least `server.sip.listen` is required".into(),
            ));
            return Err(sorted(found.errors));
        }
        None => return Err(sorted(found.errors)),
    };
    if found.fatal {
        return Err(sorted(found.errors));
    }
    let mut root = root;
    let raw_cluster = root.cluster.take();
    let (server, main_lists) = root.split();
    lists.add(0, main_lists);
    for (source, raw) in included {
        sources.push(source);
        lists.add(sources.len() - 1, raw);
    }

    let mut ctx = Ctx {
        sources: &sources,
        base_dir,
        errors: Vec::new(),
    };
    let server = ctx.server(&server);
    let cluster = raw_cluster.as_ref().map(|c| ctx.cluster(c));
    let l = lists::resolve(&mut ctx, &lists);
    // Semantic errors join the structural ones, except those repeating a structural error.
    let semantic = std::mem::take(&mut ctx.errors);
    let mut errors = found.errors.clone();
    errors.extend(semantic.into_iter().filter(|e| !found.shadows(e)));
    if !errors.is_empty() {
        return Err(sorted(errors));
    }
    Ok(Config {
        server,
        bots: l.bots,
        sip_connections: l.sip_connections,
        phone_numbers: l.phone_numbers,
        routing_rules: l.routing_rules,
        api_clients: l.api_clients,
        cluster,
    })
}

/// Parses every file of the include directory `inc` (relative to `base_dir`); problems go to
/// `found`, positioned at `server.include` of the main file (`main`, indexed by `main_idx`).
fn read_includes(
    main: &Path,
    base_dir: &Path,
    inc: &str,
    main_idx: &PosIndex,
    found: &mut Found,
) -> Vec<(Source, RawLists)> {
    let dir = if Path::new(inc).is_absolute() {
        PathBuf::from(inc)
    } else {
        base_dir.join(inc)
    };
    match include_files(&dir) {
        Ok(files) => files
            .into_iter()
            .filter_map(|file| match parse::<RawLists>(&file, found) {
                (Some(raw), Some(idx)) => Some((Source { file, idx }, raw)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            found.fatal = true;
            found.errors.push(io_error(
                main,
                "server.include",
                main_idx.pos("server.include"),
                format!("cannot read include directory {}: {e}", dir.display()),
            ));
            Vec::new()
        }
    }
}

/// `*.yaml` / `*.yml` files of the include directory, sorted by name (load order is predictable).
fn include_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Human summary for `dialgate check`: listeners, counts, the bots allowed to dial out, and
/// (looking at `server.data_dir`) the bots that will lack speech recognition. Every line ends
/// with a newline.
pub fn summary(config: &Config) -> String {
    let s = &config.server;
    let mut out = String::new();
    for l in &s.sip.listen {
        out.push_str(&format!("SIP listener: {} {}\n", l.transport, l.address));
    }
    let scheme = if s.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    out.push_str(&format!("REST API: {scheme}://{}\n", s.http.listen));
    out.push_str(&format!(
        "RTP ports: {}-{}\n",
        s.rtp.port_min, s.rtp.port_max
    ));
    out.push_str(&format!(
        "{} bots, {} SIP connections, {} phone numbers, {} routing rules, {} API clients\n",
        config.bots.len(),
        config.sip_connections.len(),
        config.phone_numbers.len(),
        config.routing_rules.len(),
        config.api_clients.len()
    ));
    let enabled: Vec<&Bot> = config.bots.iter().filter(|b| b.outbound.enabled).collect();
    if enabled.is_empty() {
        out.push_str("Outbound calling enabled for: no bot\n");
    }
    for b in enabled {
        let o = &b.outbound;
        out.push_str(&format!(
            "Outbound enabled: {} ({}) max_cps {} max_concurrent {} machine_detection {:?}\n",
            b.id, b.name, o.max_cps, o.max_concurrent, o.machine_detection
        ));
    }
    let model = model_file(&config.server);
    let installed = model_installed(&config.server);
    out.push_str(&format!(
        "Speech recognition: model {} ({}, {}); {}\n",
        s.stt.model,
        model.display(),
        if installed {
            "installed".to_owned()
        } else {
            format!("NOT INSTALLED: run {}", install_command(&s.stt.model))
        },
        s.stt.decoder.summary()
    ));
    let gaps = recognition_gaps(config, installed);
    for line in gap_lines(&gaps, &model) {
        out.push_str(&format!("WARNING: {line}\n"));
    }
    out
}
