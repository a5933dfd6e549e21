//! Configuration: a TOML file, then `CCOTEL_*` environment variables, then
//! command-line flags, each layer overriding the one before. Every default works
//! with no file at all. Unknown keys, bad addresses and unset `${ENV}` references
//! are errors that name the file and the key, because a silently ignored typo in
//! an exporter block means data quietly going nowhere.

use crate::model::Signal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, always naming where it was found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub merge: MergeConfig,
    pub exporters: Vec<ExporterConfig>,
    pub self_metrics: SelfMetricsConfig,
    pub redaction: RedactionConfig,
}

/// `[redaction]`: secrets removed before anything is stored or sent.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// The built-in patterns: Anthropic, OpenAI, AWS, GitHub and Slack keys
    /// and tokens, bearer tokens, private-key blocks, passwords in URLs.
    /// Default `true`.
    pub secrets: bool,
    /// Extra regular expressions to redact everywhere. Default none.
    pub patterns: Vec<String>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            secrets: true,
            patterns: Vec::new(),
        }
    }
}

/// `[self_metrics]`: ccotel's own counters as OTLP metrics.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMetricsConfig {
    /// OTLP/HTTP base URL (`/v1/metrics` is appended). Default: off.
    pub endpoint: Option<String>,
    /// Request headers; values may reference `${ENV_VAR}`. Default none.
    pub headers: BTreeMap<String, String>,
    /// How often to export. Default `60s`.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
}

impl Default for SelfMetricsConfig {
    fn default() -> Self {
        SelfMetricsConfig {
            endpoint: None,
            headers: BTreeMap::new(),
            interval: Duration::from_secs(60),
        }
    }
}

/// `[server]`: where ccotel listens and how much it buffers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// OTLP/gRPC and the query API. Default `127.0.0.1:4317`.
    pub grpc: String,
    /// OTLP/HTTP and hooks. Default `127.0.0.1:4318`.
    pub http: String,
    /// Largest accepted request body after decompression, in bytes. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Events buffered between the receivers and the merge engine; when full,
    /// receivers answer 503 / UNAVAILABLE. Default 4096.
    pub queue_events: usize,
    /// Memory held by the events buffered between the receivers and the
    /// merge engine: a decoded OTLP request counts 5× its protobuf size,
    /// plus the bytes kept with it; a hook its body. Bounds memory under
    /// overload; a request that finds no room is refused before it is
    /// decoded. Default 16 MiB.
    pub queue_bytes: usize,
    /// How long an HTTP hook's event waits for room in a full buffer before
    /// it is refused with 503. Claude Code does not retry HTTP hooks, so a
    /// burst is slowed down rather than lost (the command hook spools what
    /// is refused instead); `0s` refuses at once. Default 5 s.
    #[serde(with = "humantime_serde_compat")]
    pub hook_wait: Duration,
    /// A shared secret every client must send as `Authorization: Bearer
    /// <token>` (OTLP, hooks and the query API; `/healthz` stays open).
    /// Required to listen beyond loopback. May reference `${ENV}`; env
    /// `CCOTEL_TOKEN` overrides. Default none.
    pub token: Option<String>,
    /// Listen beyond loopback without a token. Default `false`: anyone who
    /// can reach the port could then read sessions and send data.
    pub allow_unauthenticated: bool,
    /// TLS for both receivers. Default off.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: certificate and key in PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc: "127.0.0.1:4317".into(),
            http: "127.0.0.1:4318".into(),
            max_body_bytes: 8 * 1024 * 1024,
            queue_events: 4096,
            queue_bytes: 16 * 1024 * 1024,
            hook_wait: Duration::from_secs(5),
            token: None,
            allow_unauthenticated: false,
            tls: None,
        }
    }
}

/// `[store]`: local durability.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory for the store and the queues. Default: the user's data dir
    /// (`~/.local/share/ccotel` on Linux).
    pub path: PathBuf,
    /// How long sessions are kept; `0s` keeps them forever. Default `30d`.
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The per-user data directory ccotel uses when no path is configured.
pub fn default_store_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("ccotel")
}

/// `[merge]`: when merged spans are considered complete.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MergeConfig {
    /// How long a finished span waits for late sources (Claude Code batches logs
    /// and spans every 5 s) before it is exported. Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub grace_period: Duration,
    /// A session with no new event for this long is closed and marked as timed
    /// out. Default `30m`.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// An open session with nothing left to export and no new event for this
    /// long leaves memory; its next event (or its idle timeout) rebuilds it
    /// from the events written ahead to the store. `0s` keeps every open
    /// session in memory. Default `10s`.
    #[serde(with = "humantime_serde_compat")]
    pub evict_after: Duration,
    /// Read transcripts named by hook events for message content and usage.
    /// Default `true`.
    pub read_transcripts: bool,
    /// Rewrites transcript path prefixes, for when ccotel sees Claude Code's
    /// files under another path (a container mount). Default none.
    pub transcript_path_map: BTreeMap<String, PathBuf>,
    /// Longest content attribute (prompt, tool input/output, messages) in
    /// bytes; longer content is cut and marked. Default 65536.
    pub max_content_bytes: usize,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            grace_period: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30 * 60),
            evict_after: Duration::from_secs(10),
            read_transcripts: true,
            transcript_path_map: BTreeMap::new(),
            max_content_bytes: 64 * 1024,
        }
    }
}

/// Durations written as `"500ms"`, `"10s"`, `"5m"`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// The closed set of exporter kinds. Everything but `otlp` is a preset that
/// fills in the endpoint, protocol and headers a backend needs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExporterKind {
    Otlp,
    Braintrust,
    Honeycomb,
    Datadog,
    Grafana,
}

/// OTLP transport protocols.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

/// Request body compression towards a backend.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
}

/// What an exporter does with content: prompts, messages, tool input and
/// output.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContentPolicy {
    /// Send it as received.
    #[default]
    Keep,
    /// Replace each value with `<REDACTED>`, keeping the attribute.
    Mask,
    /// Remove the attributes.
    Drop,
}

/// One `[[exporters]]` block.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    /// Shown in logs and counters. Must be unique.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ExporterKind,
    /// Base URL (`http://host:4318`; `/v1/<signal>` is appended) or, for gRPC,
    /// `http://host:4317`. Required for `otlp` and `grafana`; the other
    /// presets know theirs.
    #[serde(default)]
    pub endpoint: String,
    /// Default `http/protobuf`.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Which signals this backend receives. Default traces, metrics and logs
    /// (traces only for `braintrust`).
    #[serde(default)]
    pub signals: Vec<Signal>,
    /// Extra request headers; values may reference `${ENV_VAR}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Default `none`.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Per-request timeout. Default `10s`.
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Bytes this backend may have waiting on disk; beyond that the oldest
    /// items are dropped and counted. Default 256 MiB.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: u64,
    /// Content towards this backend: `keep` (default), `mask` or `drop`.
    #[serde(default)]
    pub content: ContentPolicy,
    /// Attribute keys never sent to this backend; `*` at the end matches a
    /// prefix (`user.*`). Default none.
    #[serde(default)]
    pub drop_attributes: Vec<String>,
    /// Extra regular expressions redacted for this backend only. Default none.
    #[serde(default)]
    pub redact_patterns: Vec<String>,
    /// Resource attributes added (or replaced) on everything sent to this
    /// backend, such as `deployment.environment` or Phoenix's
    /// `openinference.project.name`. Default none.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// API key for presets (`braintrust`, `honeycomb`, `datadog`, `grafana`);
    /// default from `BRAINTRUST_API_KEY`, `HONEYCOMB_API_KEY`, `DD_API_KEY`,
    /// `GRAFANA_CLOUD_API_KEY`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// `braintrust`: the project, by name or id.
    #[serde(default)]
    pub project: Option<String>,
    /// `braintrust`: the API URL. Default `https://api.braintrust.dev`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// `honeycomb`: the dataset for metrics. Default `claude-code-metrics`.
    #[serde(default)]
    pub dataset: Option<String>,
    /// `datadog`: the site. Default `datadoghq.com`.
    #[serde(default)]
    pub site: Option<String>,
    /// `grafana`: the Grafana Cloud instance id (the Basic-auth user).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Headers for one signal only (filled in by presets).
    #[serde(skip)]
    pub signal_headers: BTreeMap<Signal, BTreeMap<String, String>>,
}

impl ExporterConfig {
    /// A plain OTLP exporter.
    pub fn otlp(name: &str, endpoint: &str, protocol: Protocol, signals: Vec<Signal>) -> Self {
        ExporterConfig {
            name: name.into(),
            kind: ExporterKind::Otlp,
            endpoint: endpoint.into(),
            protocol: Some(protocol),
            signals,
            headers: BTreeMap::new(),
            compression: Compression::None,
            timeout: default_timeout(),
            queue_bytes: default_queue_bytes(),
            content: ContentPolicy::Keep,
            drop_attributes: Vec::new(),
            resource: BTreeMap::new(),
            redact_patterns: Vec::new(),
            api_key: None,
            project: None,
            api_url: None,
            dataset: None,
            site: None,
            instance_id: None,
            signal_headers: BTreeMap::new(),
        }
    }

    /// The protocol in effect.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::HttpProtobuf)
    }

    /// Headers for one signal: the common ones plus the signal's own.
    pub fn headers_for(&self, signal: Signal) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let key = match signal {
            Signal::NativeTraces => Signal::Traces,
            s => s,
        };
        if let Some(extra) = self.signal_headers.get(&key) {
            h.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        h
    }
}

fn default_compression() -> Compression {
    Compression::None
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_bytes() -> u64 {
    256 * 1024 * 1024
}

/// Fills in a preset's endpoint, protocol and headers; checks that each key
/// belongs to the exporter's type.
fn resolve_preset(
    e: &mut ExporterConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    let only = |key: &str, set: bool, kinds: &str| -> Result<(), (String, String)> {
        if set {
            Err((key.to_string(), format!("only for type = {kinds}")))
        } else {
            Ok(())
        }
    };
    let kind = e.kind;
    use ExporterKind::*;
    if kind != Braintrust {
        only("project", e.project.is_some(), "\"braintrust\"")?;
        only("api_url", e.api_url.is_some(), "\"braintrust\"")?;
    }
    if kind != Honeycomb {
        only("dataset", e.dataset.is_some(), "\"honeycomb\"")?;
    }
    if kind != Datadog {
        only("site", e.site.is_some(), "\"datadog\"")?;
    }
    if kind != Grafana {
        only("instance_id", e.instance_id.is_some(), "\"grafana\"")?;
    }
    if kind == Otlp {
        only(
            "api_key",
            e.api_key.is_some(),
            "a preset (braintrust, honeycomb, datadog, grafana)",
        )?;
        if e.endpoint.is_empty() {
            return Err(("endpoint".into(), "is required for type = \"otlp\"".into()));
        }
        if e.signals.is_empty() {
            e.signals = vec![Signal::Traces, Signal::Metrics, Signal::Logs];
        }
        return Ok(());
    }
    let key_var = match kind {
        Braintrust => "BRAINTRUST_API_KEY",
        Honeycomb => "HONEYCOMB_API_KEY",
        Datadog => "DD_API_KEY",
        _ => "GRAFANA_CLOUD_API_KEY",
    };
    let api_key = match &e.api_key {
        Some(k) => expand_env(k, env).map_err(|m| ("api_key".to_string(), m))?,
        None => env(key_var).ok_or_else(|| {
            (
                "api_key".to_string(),
                format!("not set, and environment variable {key_var} is not set either"),
            )
        })?,
    };
    e.api_key = Some(api_key.clone());
    let http_only = |e: &ExporterConfig, what: &str| -> Result<(), (String, String)> {
        if e.protocol == Some(Protocol::Grpc) {
            Err((
                "protocol".into(),
                format!("{what} takes OTLP over HTTP only"),
            ))
        } else {
            Ok(())
        }
    };
    match kind {
        Braintrust => {
            http_only(e, "Braintrust")?;
            let project = e.project.clone().ok_or_else(|| {
                (
                    "project".to_string(),
                    "is required (a project name or id)".to_string(),
                )
            })?;
            let api_url = e
                .api_url
                .clone()
                .unwrap_or_else(|| "https://api.braintrust.dev".into());
            if e.endpoint.is_empty() {
                e.endpoint = format!("{}/otel", api_url.trim_end_matches('/'));
            }
            if e.signals.is_empty() {
                e.signals = vec![Signal::Traces];
            }
            if let Some(s) = e.signals.iter().find(|s| **s != Signal::Traces) {
                return Err((
                    "signals".into(),
                    format!(
                        "Braintrust takes traces only, not {:?}; send metrics and logs to another exporter",
                        s.as_str()
                    ),
                ));
            }
            e.headers
                .insert("authorization".into(), format!("Bearer {api_key}"));
            e.headers
                .insert("x-bt-parent".into(), braintrust_parent(&project));
        }
        Honeycomb => {
            if e.endpoint.is_empty() {
                e.endpoint = "https://api.honeycomb.io".into();
            }
            e.headers.insert("x-honeycomb-team".into(), api_key);
            let dataset = e
                .dataset
                .clone()
                .unwrap_or_else(|| "claude-code-metrics".into());
            e.signal_headers
                .entry(Signal::Metrics)
                .or_default()
                .insert("x-honeycomb-dataset".into(), dataset);
        }
        Datadog => {
            http_only(e, "Datadog's agentless intake")?;
            let site = e.site.clone().unwrap_or_else(|| "datadoghq.com".into());
            if e.endpoint.is_empty() {
                e.endpoint = format!("https://otlp.{site}");
            }
            e.headers.insert("dd-api-key".into(), api_key);
            e.signal_headers
                .entry(Signal::Logs)
                .or_default()
                .insert("dd-protocol".into(), "otlp".into());
        }
        Grafana => {
            http_only(e, "Grafana Cloud's OTLP gateway")?;
            if e.endpoint.is_empty() {
                return Err((
                    "endpoint".into(),
                    "is required: your stack's OTLP gateway, such as https://otlp-gateway-prod-eu-west-2.grafana.net/otlp".into(),
                ));
            }
            let user = e.instance_id.clone().ok_or_else(|| {
                (
                    "instance_id".to_string(),
                    "is required (the stack's instance id)".to_string(),
                )
            })?;
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{api_key}"));
            e.headers
                .insert("authorization".into(), format!("Basic {token}"));
        }
        Otlp => {}
    }
    if e.signals.is_empty() {
        e.signals = vec![Signal::Traces, Signal::Metrics, Signal::Logs];
    }
    Ok(())
}

/// `x-bt-parent` for a project given by id (a UUID) or by name.
pub fn braintrust_parent(project: &str) -> String {
    let is_uuid = project.len() == 36
        && project.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if is_uuid {
        format!("project_id:{project}")
    } else {
        format!("project_name:{project}")
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub grpc: Option<String>,
    pub http: Option<String>,
    pub store_path: Option<PathBuf>,
}

impl Config {
    /// Loads `path` (if any), applies `CCOTEL_*` variables from `env`, then the
    /// flags, and validates the result.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (mut config, origin) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                (Config::parse(&text, path)?, path.display().to_string())
            }
            None => (Config::default(), "defaults".to_string()),
        };
        if let Some(v) = env("CCOTEL_SERVER_GRPC") {
            config.server.grpc = v;
        }
        if let Some(v) = env("CCOTEL_SERVER_HTTP") {
            config.server.http = v;
        }
        if let Some(v) = env("CCOTEL_STORE_PATH") {
            config.store.path = PathBuf::from(v);
        }
        if let Some(v) = env("CCOTEL_TOKEN") {
            config.server.token = Some(v);
        }
        if let Some(v) = &flags.grpc {
            config.server.grpc = v.clone();
        }
        if let Some(v) = &flags.http {
            config.server.http = v.clone();
        }
        if let Some(v) = &flags.store_path {
            config.store.path = v.clone();
        }
        config.resolve(&origin, env)?;
        Ok(config)
    }

    /// Parses TOML text; errors name the file and the offending key.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })
    }

    /// Validates addresses and names, and expands `${ENV}` in exporter headers.
    fn resolve(
        &mut self,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        parse_addr(&self.server.grpc).map_err(|m| invalid("server.grpc", m))?;
        parse_addr(&self.server.http).map_err(|m| invalid("server.http", m))?;
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be > 0".into()));
        }
        if let Some(t) = &self.server.token {
            let t = expand_env(t, env).map_err(|m| invalid("server.token", m))?;
            if t.trim().is_empty() {
                return Err(invalid("server.token", "is empty".into()));
            }
            self.server.token = Some(t);
        }
        if self.server.token.is_none() && !self.server.allow_unauthenticated {
            for (key, addr) in [
                ("server.http", &self.server.http),
                ("server.grpc", &self.server.grpc),
            ] {
                let a = parse_addr(addr).map_err(|m| invalid(key, m))?;
                if !a.ip().is_loopback() {
                    return Err(invalid(
                        key,
                        format!(
                            "{a} is reachable from other machines, so ccotel needs a token: set server.token \
                             (or CCOTEL_TOKEN) and have clients send `Authorization: Bearer <token>`, \
                             or set server.allow_unauthenticated = true if the network is trusted"
                        ),
                    ));
                }
            }
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                std::fs::metadata(path)
                    .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
            }
        }
        for (name, value) in self.self_metrics.headers.iter_mut() {
            *value = expand_env(value, env)
                .map_err(|m| invalid(&format!("self_metrics.headers.{name}"), m))?;
        }
        for (i, p) in self.redaction.patterns.iter().enumerate() {
            regex::Regex::new(p)
                .map_err(|e| invalid(&format!("redaction.patterns[{i}]"), e.to_string()))?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, exporter) in self.exporters.iter_mut().enumerate() {
            let key = |k: &str| format!("exporters[{i}].{k}");
            if !names.insert(exporter.name.clone()) {
                return Err(invalid(
                    &key("name"),
                    format!("duplicate exporter name {:?}", exporter.name),
                ));
            }
            exporter.endpoint =
                expand_env(&exporter.endpoint, env).map_err(|m| invalid(&key("endpoint"), m))?;
            for (name, value) in exporter.headers.iter_mut() {
                *value = expand_env(value, env)
                    .map_err(|m| invalid(&key(&format!("headers.{name}")), m))?;
            }
            resolve_preset(exporter, env).map_err(|(k, m)| invalid(&key(&k), m))?;
            let url: http::Uri = exporter
                .endpoint
                .parse()
                .map_err(|e| invalid(&key("endpoint"), format!("invalid URL: {e}")))?;
            if !matches!(url.scheme_str(), Some("http" | "https")) {
                return Err(invalid(
                    &key("endpoint"),
                    format!(
                        "{:?} must start with http:// or https://",
                        exporter.endpoint
                    ),
                ));
            }
            for (j, p) in exporter.redact_patterns.iter().enumerate() {
                regex::Regex::new(p)
                    .map_err(|e| invalid(&key(&format!("redact_patterns[{j}]")), e.to_string()))?;
            }
            if exporter.queue_bytes == 0 {
                return Err(invalid(&key("queue_bytes"), "must be > 0".into()));
            }
        }
        Ok(())
    }

    /// The parsed gRPC listen address (validated at load).
    pub fn grpc_addr(&self) -> SocketAddr {
        parse_addr(&self.server.grpc).unwrap_or_else(|_| ([127, 0, 0, 1], 4317).into())
    }

    /// The parsed HTTP listen address (validated at load).
    pub fn http_addr(&self) -> SocketAddr {
        parse_addr(&self.server.http).unwrap_or_else(|_| ([127, 0, 0, 1], 4318).into())
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let normalized = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_string(),
    };
    normalized.parse::<SocketAddr>().map_err(|e| {
        format!("invalid address {s:?} ({e}); expected IP:PORT such as 127.0.0.1:4318")
    })
}

/// Expands `${NAME}` references; an unset variable is an error naming it.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated \"${{\" in {value:?}"))?;
        let name = &after[..end];
        let v = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the real process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_text(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ccotel.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), env, &Overrides::default())
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, &no_env, &Overrides::default()).unwrap();
        assert_eq!(c.grpc_addr().to_string(), "127.0.0.1:4317");
        assert_eq!(c.http_addr().to_string(), "127.0.0.1:4318");
        assert!(c.exporters.is_empty());
    }

    #[test]
    fn the_documented_shape_parses() {
        let env = |k: &str| (k == "HONEYCOMB_API_KEY").then(|| "hc-key".to_string());
        let c = load_text(
            r#"
[server]
grpc = "127.0.0.1:4317"
http = "127.0.0.1:4318"
[store]
path = "/var/lib/ccotel"
[[exporters]]
name = "sink"
type = "otlp"
endpoint = "http://127.0.0.1:14318"
protocol = "http/json"
signals = ["traces", "metrics", "logs"]
headers = { "x-honeycomb-team" = "${HONEYCOMB_API_KEY}" }
"#,
            &env,
        )
        .unwrap();
        assert_eq!(c.exporters[0].headers["x-honeycomb-team"], "hc-key");
        assert_eq!(c.exporters[0].protocol(), Protocol::HttpJson);
        assert_eq!(c.store.path, PathBuf::from("/var/lib/ccotel"));
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = load_text("[server]\ngrcp = \"127.0.0.1:1\"\n", &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ccotel.toml"), "{err}");
        assert!(err.contains("grcp"), "{err}");
    }

    #[test]
    fn bad_address_names_key_and_file() {
        let err = load_text("[server]\nhttp = \"nowhere\"\n", &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ccotel.toml") && err.contains("server.http"),
            "{err}"
        );
    }

    #[test]
    fn unset_env_var_names_variable_and_key() {
        let err = load_text(
            "[[exporters]]\nname = \"hc\"\ntype = \"otlp\"\nendpoint = \"http://x\"\nheaders = { k = \"${MISSING_KEY}\" }\n",
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MISSING_KEY") && err.contains("exporters[0].headers.k"),
            "{err}"
        );
    }

    #[test]
    fn env_then_flags_override_the_file() {
        let env = |k: &str| (k == "CCOTEL_SERVER_HTTP").then(|| "127.0.0.1:9000".to_string());
        let c = load_text(
            "[server]\nhttp = \"127.0.0.1:1\"\ngrpc = \"127.0.0.1:2\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(c.http_addr().port(), 9000);
        let flags = Overrides {
            grpc: Some("127.0.0.1:7".into()),
            ..Default::default()
        };
        let c = Config::load(None, &env, &flags).unwrap();
        assert_eq!(c.grpc_addr().port(), 7);
        assert_eq!(c.http_addr().port(), 9000);
    }

    #[test]
    fn presets_fill_in_endpoints_and_headers() {
        let env = |k: &str| match k {
            "BRAINTRUST_API_KEY" => Some("bt-key".to_string()),
            "HONEYCOMB_API_KEY" => Some("hc-key".to_string()),
            "DD_API_KEY" => Some("dd-key".to_string()),
            "GRAFANA_CLOUD_API_KEY" => Some("gc-key".to_string()),
            _ => None,
        };
        let c = load_text(
            r#"
[[exporters]]
name = "bt"
type = "braintrust"
project = "claude-code"
[[exporters]]
name = "bt-eu"
type = "braintrust"
project = "2b2c5e4c-8f0a-4c7e-9a55-3e6f0b1d2a77"
api_url = "https://api-eu.braintrust.dev"
[[exporters]]
name = "hc"
type = "honeycomb"
dataset = "cc-metrics"
[[exporters]]
name = "dd"
type = "datadog"
site = "datadoghq.eu"
[[exporters]]
name = "gc"
type = "grafana"
endpoint = "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp"
instance_id = "123456"
"#,
            &env,
        )
        .unwrap();
        let bt = &c.exporters[0];
        assert_eq!(bt.endpoint, "https://api.braintrust.dev/otel");
        assert_eq!(bt.headers["authorization"], "Bearer bt-key");
        assert_eq!(bt.headers["x-bt-parent"], "project_name:claude-code");
        assert_eq!(bt.signals, vec![Signal::Traces]);
        let eu = &c.exporters[1];
        assert_eq!(eu.endpoint, "https://api-eu.braintrust.dev/otel");
        assert_eq!(
            eu.headers["x-bt-parent"],
            "project_id:2b2c5e4c-8f0a-4c7e-9a55-3e6f0b1d2a77"
        );
        let hc = &c.exporters[2];
        assert_eq!(hc.endpoint, "https://api.honeycomb.io");
        assert_eq!(hc.headers["x-honeycomb-team"], "hc-key");
        let metrics_headers = hc.headers_for(Signal::Metrics);
        assert!(metrics_headers.contains(&("x-honeycomb-dataset".into(), "cc-metrics".into())));
        assert!(!hc
            .headers_for(Signal::Traces)
            .iter()
            .any(|(k, _)| k == "x-honeycomb-dataset"));
        let dd = &c.exporters[3];
        assert_eq!(dd.endpoint, "https://otlp.datadoghq.eu");
        assert_eq!(dd.headers["dd-api-key"], "dd-key");
        let gc = &c.exporters[4];
        assert_eq!(gc.headers["authorization"], "Basic MTIzNDU2OmdjLWtleQ==");
    }

    #[test]
    fn preset_mistakes_name_the_key() {
        let env = |k: &str| (k == "BRAINTRUST_API_KEY").then(|| "k".to_string());
        let cases = [
            (
                "type = \"braintrust\"\nproject = \"p\"\nsignals = [\"metrics\"]",
                "signals",
            ),
            ("type = \"braintrust\"", "project"),
            (
                "type = \"braintrust\"\nproject = \"p\"\nprotocol = \"grpc\"",
                "protocol",
            ),
            (
                "type = \"otlp\"\nendpoint = \"http://x\"\nproject = \"p\"",
                "project",
            ),
            ("type = \"honeycomb\"", "HONEYCOMB_API_KEY"),
            ("type = \"otlp\"", "endpoint"),
        ];
        for (body, words) in cases {
            let err = load_text(&format!("[[exporters]]\nname = \"e\"\n{body}\n"), &env)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(words) && err.contains("exporters[0]"),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn listening_beyond_loopback_needs_a_token() {
        let env = |k: &str| (k == "T").then(|| "from-env".to_string());
        let err = load_text("[server]\nhttp = \"0.0.0.0:4318\"\n", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.http") && err.contains("token"),
            "{err}"
        );
        let c = load_text(
            "[server]\nhttp = \"0.0.0.0:4318\"\ntoken = \"${T}\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(c.server.token.as_deref(), Some("from-env"));
        load_text(
            "[server]\nhttp = \"0.0.0.0:4318\"\nallow_unauthenticated = true\n",
            &env,
        )
        .unwrap();
        let err = load_text(
            "[server.tls]\ncert = \"/nope/cert.pem\"\nkey = \"/nope/key.pem\"\n",
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.tls.cert"), "{err}");
    }
}
