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
    /// Bytes buffered between the receivers and the merge engine. Default 256 MiB.
    pub queue_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc: "127.0.0.1:4317".into(),
            http: "127.0.0.1:4318".into(),
            max_body_bytes: 8 * 1024 * 1024,
            queue_events: 4096,
            queue_bytes: 256 * 1024 * 1024,
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
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

/// The closed set of exporter kinds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExporterKind {
    Otlp,
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

/// One `[[exporters]]` block.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    /// Shown in logs and counters. Must be unique.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ExporterKind,
    /// Base URL (`http://host:4318`; `/v1/<signal>` is appended) or, for gRPC,
    /// `http://host:4317`.
    pub endpoint: String,
    /// Default `http/protobuf`.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// Which signals this backend receives. Default traces, metrics and logs.
    #[serde(default = "default_signals")]
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
    /// Items buffered for this backend alone; when full, new items for it are
    /// dropped and counted. Default 1024.
    #[serde(default = "default_queue_items")]
    pub queue_items: usize,
}

fn default_protocol() -> Protocol {
    Protocol::HttpProtobuf
}
fn default_signals() -> Vec<Signal> {
    vec![Signal::Traces, Signal::Metrics, Signal::Logs]
}
fn default_compression() -> Compression {
    Compression::None
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_queue_items() -> usize {
    1024
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
        let mut names = std::collections::BTreeSet::new();
        for (i, exporter) in self.exporters.iter_mut().enumerate() {
            let key = |k: &str| format!("exporters[{i}].{k}");
            if !names.insert(exporter.name.clone()) {
                return Err(invalid(
                    &key("name"),
                    format!("duplicate exporter name {:?}", exporter.name),
                ));
            }
            if exporter.signals.is_empty() {
                return Err(invalid(
                    &key("signals"),
                    "select at least one signal".into(),
                ));
            }
            exporter.endpoint =
                expand_env(&exporter.endpoint, env).map_err(|m| invalid(&key("endpoint"), m))?;
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
            for (name, value) in exporter.headers.iter_mut() {
                *value = expand_env(value, env)
                    .map_err(|m| invalid(&key(&format!("headers.{name}")), m))?;
            }
            if exporter.queue_items == 0 {
                return Err(invalid(&key("queue_items"), "must be > 0".into()));
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
        assert_eq!(c.exporters[0].protocol, Protocol::HttpJson);
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
}
