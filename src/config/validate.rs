//! Validation context and the `server` section.

use super::error::{ConfigError, ErrorKind};
use super::index::PosIndex;
use super::raw::{RawServer, RawTls};
use super::serde_err::expected_for;
use super::types::{HttpServer, RtpConfig, Server, SipListen, SipServer, SipTransport, TlsFiles};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One parsed file and its position index.
pub(super) struct Source {
    pub file: PathBuf,
    pub idx: PosIndex,
}

/// Collects semantic errors; every error points at a node of a source file.
pub(super) struct Ctx<'a> {
    pub sources: &'a [Source],
    /// Directory of the main config file: relative paths resolve against it.
    pub base_dir: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    /// Error at the value node `path` of source `src`.
    pub fn err(&mut self, src: usize, path: &str, kind: ErrorKind, message: impl Into<String>) {
        let (line, column) = self
            .sources
            .get(src)
            .map(|s| s.idx.pos(path))
            .unwrap_or((1, 1));
        self.push(src, path, line, column, kind, message.into());
    }

    /// Error at the key of mapping entry `path` (e.g. a header name).
    pub fn err_key(&mut self, src: usize, path: &str, kind: ErrorKind, message: impl Into<String>) {
        let (line, column) = self
            .sources
            .get(src)
            .map(|s| s.idx.key_pos(path))
            .unwrap_or((1, 1));
        self.push(src, path, line, column, kind, message.into());
    }

    fn push(
        &mut self,
        src: usize,
        path: &str,
        line: usize,
        column: usize,
        kind: ErrorKind,
        message: String,
    ) {
        let file = self
            .sources
            .get(src)
            .map(|s| s.file.clone())
            .unwrap_or_default();
        self.errors.push(ConfigError {
            file,
            line,
            column,
            path: path.to_string(),
            message,
            kind,
        });
    }

    /// `file:line` of a node, for "first defined at" notes.
    pub fn where_is(&self, src: usize, path: &str) -> String {
        match self.sources.get(src) {
            Some(s) => {
                let (l, _) = s.idx.pos(path);
                format!("{}:{l}", s.file.display())
            }
            None => "?".into(),
        }
    }

    /// Resolves a path from the file against the config directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Reads a `*_env` variable; a missing or empty variable is an error at `path`.
    pub fn env(&mut self, src: usize, path: &str, var: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) => {
                self.err(
                    src,
                    path,
                    ErrorKind::MissingEnv,
                    format!("environment variable {var} is empty"),
                );
                None
            }
            Err(std::env::VarError::NotPresent) => {
                self.err(
                    src,
                    path,
                    ErrorKind::MissingEnv,
                    format!("environment variable {var} is not set"),
                );
                None
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                self.err(
                    src,
                    path,
                    ErrorKind::MissingEnv,
                    format!("environment variable {var} is not valid UTF-8"),
                );
                None
            }
        }
    }

    /// Exactly-one-of for a clear value and its `_env` twin; returns the resolved value.
    pub fn clear_or_env(
        &mut self,
        src: usize,
        base: &str,
        (name, clear): (&str, Option<&String>),
        (env_name, env): (&str, Option<&String>),
    ) -> Option<String> {
        match (clear, env) {
            (Some(_), Some(_)) => {
                self.err_key(
                    src,
                    &format!("{base}.{env_name}"),
                    ErrorKind::Conflict,
                    format!("set either `{name}` or `{env_name}`, not both"),
                );
                None
            }
            (Some(v), None) => Some(v.clone()),
            (None, Some(var)) => self.env(src, &format!("{base}.{env_name}"), var),
            (None, None) => None,
        }
    }

    /// "expected …, got …" for a value that parsed but is out of range.
    pub fn range(&mut self, src: usize, path: &str, got: impl std::fmt::Display) {
        let msg = format!("expected {}, got {got}", expected_for(path, ""));
        self.err(src, path, ErrorKind::InvalidValue, msg);
    }

    fn socket(&mut self, src: usize, path: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    src,
                    path,
                    ErrorKind::InvalidValue,
                    format!("`{s}` is not an IP:port address (e.g. 127.0.0.1:5060 or [::1]:5060)"),
                );
                None
            }
        }
    }

    fn tls(&mut self, src: usize, path: &str, raw: &RawTls) -> TlsFiles {
        let cert = self.resolve(&raw.cert);
        let key = self.resolve(&raw.key);
        for (field, p) in [("cert", &cert), ("key", &key)] {
            if !p.is_file() {
                self.err(
                    src,
                    &format!("{path}.{field}"),
                    ErrorKind::MissingFile,
                    format!("file {} does not exist (relative paths start at the config file's directory)", p.display()),
                );
            }
        }
        TlsFiles { cert, key }
    }

    /// `server.stt`: a model name that is a plain file-name part, and bounded pool sizes.
    fn stt_settings(
        &mut self,
        raw: &super::raw::RawStt,
        data_dir: &Path,
    ) -> super::types::SttSettings {
        let plain = !raw.model.is_empty()
            && raw
                .model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !raw.model.starts_with('.');
        if !plain {
            self.err(
                0,
                "server.stt.model",
                ErrorKind::InvalidValue,
                format!(
                    "expected an installed model name such as `tiny.en` or `base` \
                     (the file data_dir/models/ggml-<model>.bin), got {:?}",
                    raw.model
                ),
            );
        }
        for (f, v, max) in [
            ("workers", raw.workers, 16),
            ("threads_per_job", raw.threads_per_job, 64),
            ("queue_bound", raw.queue_bound, 10_000),
            ("max_sessions", raw.max_sessions, 100_000),
        ] {
            if v == 0 || v > max {
                self.err(
                    0,
                    &format!("server.stt.{f}"),
                    ErrorKind::InvalidValue,
                    format!("expected a whole number from 1 to {max}, got {v}"),
                );
            }
        }
        if plain {
            self.stt_model_installed(&raw.model, data_dir);
        }
        super::types::SttSettings {
            model: raw.model.clone(),
            workers: raw.workers,
            threads_per_job: raw.threads_per_job,
            queue_bound: raw.queue_bound,
            max_sessions: raw.max_sessions,
            decoder: self.stt_decoder(raw),
        }
    }

    /// `server.notify_allow`: CIDR networks (`127.0.0.0/8`) or single addresses.
    fn networks(&mut self, path: &str, raw: &[String]) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let parsed = s
                .parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(n) => out.push(n),
                Err(_) => self.err(
                    0,
                    &format!("{path}[{i}]"),
                    ErrorKind::InvalidValue,
                    format!("`{s}` is not a network; write an address or a CIDR block such as 127.0.0.0/8 or fd00::/8"),
                ),
            }
        }
        out
    }

    /// Validates `server` (always in source 0).
    pub fn server(&mut self, raw: &RawServer) -> Server {
        let sip = self.sip_server(raw);
        let http = self.http_server(raw);
        let rtp = self.rtp_config(raw);
        self.positive(
            "server",
            "expected a whole number of seconds > 0, got 0",
            &[
                ("max_call_duration_sec", raw.max_call_duration_sec),
                ("bot_answer_timeout_sec", raw.bot_answer_timeout_sec),
            ],
        );
        self.positive(
            "server.outbox",
            "expected a whole number > 0, got 0",
            &[
                ("max_concurrent", raw.outbox.max_concurrent),
                ("max_per_destination", raw.outbox.max_per_destination),
                ("connect_timeout_ms", raw.outbox.connect_timeout_ms),
            ],
        );
        let data_dir = self.resolve(&raw.data_dir);
        let stt = self.stt_settings(&raw.stt, &data_dir);
        Server {
            sip,
            http,
            rtp,
            data_dir,
            max_call_duration_sec: raw.max_call_duration_sec,
            bot_answer_timeout_sec: raw.bot_answer_timeout_sec,
            retention_days: raw.retention_days,
            outbox: super::types::OutboxConfig {
                max_concurrent: raw.outbox.max_concurrent,
                max_per_destination: raw.outbox.max_per_destination,
                connect_timeout_ms: raw.outbox.connect_timeout_ms,
            },
            stt,
            include: raw.include.as_deref().map(|p| self.resolve(p)),
            notify_allow: self.networks("server.notify_allow", &raw.notify_allow),
            dns: self.dns(&raw.dns),
        }
    }

    /// `server.sip`: the listeners (a TLS one needs certificates), the addresses written in
    /// Via/Contact/SDP, the connection cap.
    fn sip_server(&mut self, raw: &RawServer) -> SipServer {
        let mut listen = Vec::new();
        if raw.sip.listen.is_empty() {
            self.err(
                0,
                "server.sip.listen",
                ErrorKind::InvalidValue,
                "at least one SIP listener is required",
            );
        }
        for (i, l) in raw.sip.listen.iter().enumerate() {
            let p = format!("server.sip.listen[{i}]");
            if let Some(address) = self.socket(0, &format!("{p}.address"), &l.address) {
                listen.push(SipListen {
                    transport: l.transport,
                    address,
                });
            }
            if l.transport == SipTransport::Tls && raw.sip.tls.is_none() {
                self.err(
                    0,
                    &format!("{p}.transport"),
                    ErrorKind::Conflict,
                    "a TLS listener needs certificates: add server.sip.tls { cert, key }",
                );
            }
        }
        let sip_tls = raw
            .sip
            .tls
            .as_ref()
            .map(|t| self.tls(0, "server.sip.tls", t));
        // A wildcard bind address cannot be put into Via/Contact/SDP: the peer could not reach it.
        if raw.sip.public_address.is_none()
            && listen
                .first()
                .is_some_and(|l| l.address.ip().is_unspecified())
        {
            self.err(
                0,
                "server.sip.listen[0].address",
                ErrorKind::InvalidValue,
                "the first listener binds a wildcard address; set server.sip.public_address to the IP peers should send to",
            );
        }
        let public_address = match &raw.sip.public_address {
            Some(a) => a.clone(),
            None => listen
                .first()
                .map(|l| l.address.ip().to_string())
                .unwrap_or_default(),
        };
        let public_address_v6 = self.public_address_v6(raw, &listen, &public_address);
        let user_agent = raw
            .sip
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("dialgate/{}", env!("CARGO_PKG_VERSION")));
        self.positive(
            "server.sip",
            "expected a whole number > 0, got 0",
            &[("max_connections", raw.sip.max_connections)],
        );
        SipServer {
            listen,
            tls: sip_tls,
            public_address,
            user_agent,
            public_address_v6,
            max_connections: raw.sip.max_connections,
        }
    }

    /// `server.http`: the API's listener, TLS (or the explicit opt-out), its time limits and
    /// connection cap.
    fn http_server(&mut self, raw: &RawServer) -> HttpServer {
        let http_listen = self.socket(0, "server.http.listen", &raw.http.listen);
        let http_tls = raw
            .http
            .tls
            .as_ref()
            .map(|t| self.tls(0, "server.http.tls", t));
        if http_tls.is_none() && !raw.http.plain_http {
            self.err(
                0,
                "server.http",
                ErrorKind::Conflict,
                "the REST API needs TLS: add server.http.tls { cert, key }, or set plain_http: true to allow plain HTTP (tests only)",
            );
        }
        self.positive(
            "server.http",
            "expected a whole number > 0, got 0",
            &[
                ("header_timeout_sec", raw.http.header_timeout_sec),
                ("body_timeout_sec", raw.http.body_timeout_sec),
                ("max_connections", raw.http.max_connections),
            ],
        );
        HttpServer {
            listen: http_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            tls: http_tls,
            plain_http: raw.http.plain_http,
            header_timeout_sec: raw.http.header_timeout_sec,
            body_timeout_sec: raw.http.body_timeout_sec,
            max_connections: raw.http.max_connections,
        }
    }

    /// `server.rtp`: a non-empty range of unprivileged ports starting on an even one.
    fn rtp_config(&mut self, raw: &RawServer) -> RtpConfig {
        let rtp = &raw.rtp;
        for (f, v) in [("port_min", rtp.port_min), ("port_max", rtp.port_max)] {
            if v < 1024 {
                self.range(0, &format!("server.rtp.{f}"), v);
            }
        }
        if rtp.port_min % 2 == 1 {
            self.err(
                0,
                "server.rtp.port_min",
                ErrorKind::InvalidValue,
                format!(
                    "RTP ports start on an even number (RTCP uses the next odd one), got {}",
                    rtp.port_min
                ),
            );
        }
        if rtp.port_max <= rtp.port_min {
            self.err(
                0,
                "server.rtp.port_max",
                ErrorKind::InvalidValue,
                format!(
                    "the RTP port range {}..={} is empty; port_max must be above port_min so at least one RTP/RTCP pair fits",
                    rtp.port_min, rtp.port_max
                ),
            );
        }
        RtpConfig {
            port_min: rtp.port_min,
            port_max: rtp.port_max,
            inactivity_timeout_sec: rtp.inactivity_timeout_sec,
            latching: rtp.latching,
        }
    }

    /// An error at `{prefix}.{field}` for each field that is 0.
    fn positive(&mut self, prefix: &str, message: &str, fields: &[(&str, u32)]) {
        for (f, v) in fields {
            if *v == 0 {
                self.err(
                    0,
                    &format!("{prefix}.{f}"),
                    ErrorKind::InvalidValue,
                    message,
                );
            }
        }
    }
}
