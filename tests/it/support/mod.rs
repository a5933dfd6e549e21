//! Test support: a running ccotel on port 0, fake OTLP backends, fixtures.

pub mod backend;
pub mod fixtures;
#[path = "../../../src/bin/ccotel-bench/ports.rs"]
pub mod ports;

use ccotel::config::{Config, ExporterConfig, Protocol};
use ccotel::model::{Event, Payload};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A ccotel serving on ephemeral ports.
pub struct App {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    pub client: reqwest::Client,
    _store: tempfile::TempDir,
}

/// Starts ccotel with `config` (its addresses are replaced by port 0 and its
/// store by a temporary directory).
pub async fn spawn_app(mut config: Config) -> App {
    let store = tempfile::tempdir().unwrap();
    config.store.path = store.path().to_path_buf();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(ccotel::app::run(config, http, grpc, async move {
        let _ = rx.await;
    }));
    App {
        http: http_addr,
        grpc: grpc_addr,
        stop: Some(tx),
        task,
        client: reqwest::Client::new(),
        _store: store,
    }
}

/// An input as Claude Code sends it over HTTP: path, content type and body
/// (hooks as JSON, OTLP as protobuf).
pub fn http_request(e: &Event) -> (&'static str, &'static str, Vec<u8>) {
    use prost::Message;
    match &e.payload {
        Payload::Hook(h) => (
            "/v1/hooks",
            "application/json",
            serde_json::to_vec(&h.fields).unwrap(),
        ),
        Payload::Logs(r) => ("/v1/logs", "application/x-protobuf", r.encode_to_vec()),
        Payload::Metrics(r) => ("/v1/metrics", "application/x-protobuf", r.encode_to_vec()),
        Payload::Traces(r) => ("/v1/traces", "application/x-protobuf", r.encode_to_vec()),
    }
}

/// Posts an input to the ccotel whose HTTP base is `base` (`http://host:port`).
pub async fn post_event(
    client: &reqwest::Client,
    base: &str,
    e: &Event,
) -> reqwest::Result<reqwest::Response> {
    let (path, ct, body) = http_request(e);
    client
        .post(format!("{base}{path}"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
}

impl App {
    /// `http://host:port` of the HTTP receiver.
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// The store directory (removed when the app is dropped).
    pub fn store_dir(&self) -> std::path::PathBuf {
        self._store.path().to_path_buf()
    }

    /// Shuts down and hands over the store directory to inspect.
    pub async fn shutdown_keeping_store(mut self) -> tempfile::TempDir {
        let store = std::mem::replace(&mut self._store, tempfile::tempdir().unwrap());
        self.shutdown().await;
        store
    }

    /// Sends SIGTERM's equivalent and waits for a clean exit.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("ccotel did not stop in time")
            .expect("ccotel task panicked")
            .expect("ccotel returned an error");
    }

    pub async fn health(&self) -> serde_json::Value {
        get_json(&self.client, &self.url("/healthz")).await
    }
}

/// GETs `url` and parses the JSON answer (`/healthz` of a ccotel the test
/// reaches its own way: as a process, over TLS).
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// An OTLP exporter block pointing at `endpoint`.
pub fn exporter(name: &str, endpoint: String, protocol: Protocol, signals: &str) -> ExporterConfig {
    let signals = signals
        .split(',')
        .map(|s| serde_json::from_value(serde_json::Value::from(s.trim())).unwrap())
        .collect();
    let mut e = ExporterConfig::otlp(name, &endpoint, protocol, signals);
    e.timeout = Duration::from_secs(30);
    e
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
