//! Delivery under faults: a backend down then up, throttling with
//! Retry-After, a 400, ccotel killed mid-delivery; and the Braintrust shape.

use crate::support::backend::{Backend, Mode};
use crate::support::fixtures::{self, Sources};
use crate::support::ports::free_port;
use crate::support::{eventually, exporter, post_event, spawn_app, App};
use ccotel::config::{Config, Protocol};
use ccotel::model::Payload;
use prost::Message;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Replays a scenario's hooks and OTLP into a running ccotel over HTTP.
async fn replay(client: &reqwest::Client, base: &str, scenario: &str) {
    for e in fixtures::events(scenario, Sources::ALL) {
        let r = post_event(client, base, &e).await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

fn span_ids(backend: &Backend) -> BTreeSet<Vec<u8>> {
    backend
        .received()
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect()
}

fn fast_merge(config: &mut Config) {
    config.merge.grace_period = Duration::from_millis(200);
    config.merge.read_transcripts = false;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_for_a_while_then_up_gets_every_span() {
    // Reserve a port, then leave it closed: the backend is down.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let mut config = Config::default();
    fast_merge(&mut config);
    config.exporters.push(exporter(
        "late",
        format!("http://{addr}"),
        Protocol::HttpProtobuf,
        "traces,logs",
    ));
    let app = spawn_app(config).await;
    replay(&app.client, &format!("http://{}", app.http), "subagent").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = app.health().await;
    assert!(
        health["exporters"]["late"]["queued"].as_u64().unwrap() > 0,
        "{health}"
    );
    assert!(
        health["exporters"]["late"]["retries"].as_u64().unwrap() > 0,
        "{health}"
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let backend = Backend::http_on(listener, Mode::Ok);
    // Every merged span of the session arrives, each id at least once.
    let mut want = fixtures::expected("subagent")["sessions"][0]["counts"].clone();
    let want_spans = 1
        + want["prompts"].take().as_u64().unwrap()
        + want["llm_calls"].take().as_u64().unwrap()
        + want["tool_calls"].take().as_u64().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || span_ids(&backend).len() as u64
            == want_spans)
        .await,
        "got {} of {want_spans} spans",
        span_ids(&backend).len()
    );
    app.shutdown().await;
    let spans = fixtures::spans_from_otlp(&backend.received().traces);
    crate::merge::check_facts("subagent", &dedupe(spans), "after an outage");
}

fn dedupe(spans: Vec<ccotel::model::span::SpanRecord>) -> Vec<ccotel::model::span::SpanRecord> {
    let mut seen = BTreeSet::new();
    spans
        .into_iter()
        .filter(|s| seen.insert(s.span_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_retry_after_is_honoured() {
    let backend = Backend::http(Mode::Ok).await;
    backend
        .script
        .lock()
        .unwrap()
        .push_back((429, Some("2".into())));
    let mut config = Config::default();
    config.exporters.push(exporter(
        "throttled",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "logs",
    ));
    let app = spawn_app(config).await;
    let c = fixtures::otlp("denied")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap();
    let r = app
        .client
        .post(app.url("/v1/logs"))
        .header("content-type", "application/json")
        .body(c.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(eventually(Duration::from_secs(10), || backend.received().requests == 1).await);
    let arrivals = backend.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2, "one throttled try, one accepted");
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= Duration::from_millis(1900),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    app.shutdown().await;
}

/// A `ccotel serve` process, for the tests that kill it.
pub struct Serve {
    child: Child,
    pub http: String,
}

impl Serve {
    pub async fn start(config: &str, dir: &std::path::Path) -> Serve {
        Serve::start_limited(config, dir, None).await
    }

    /// Starts under a file-size limit (KiB) when given: writes beyond it
    /// fail as they would on a full disk.
    pub async fn start_limited(
        config: &str,
        dir: &std::path::Path,
        file_limit_kib: Option<u64>,
    ) -> Serve {
        let http = free_port();
        let grpc = free_port();
        let path = dir.join("ccotel.toml");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "[server]\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:{grpc}\"\n[store]\npath = \"{}\"\n{config}",
            dir.join("store").display()
        )
        .unwrap();
        let mut command = match file_limit_kib {
            // SIGXFSZ ignored: writes past the limit fail with EFBIG instead
            // of killing the process, like ENOSPC on a full disk.
            Some(kib) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!(
                        "trap '' XFSZ; ulimit -f {kib}; exec \"$0\" serve --config \"$1\""
                    ))
                    .arg(env!("CARGO_BIN_EXE_ccotel"))
                    .arg(&path);
                c
            }
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ccotel"));
                c.args(["serve", "--config"]).arg(&path);
                c
            }
        };
        let child = command
            .env("CCOTEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("stderr-{http}.log"))).unwrap())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            http: format!("http://127.0.0.1:{http}"),
        };
        let client = reqwest::Client::new();
        let up = Instant::now();
        loop {
            if client
                .get(format!("{}/healthz", serve.http))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                up.elapsed() < Duration::from_secs(10),
                "ccotel serve did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serve
    }

    pub fn kill(mut self) {
        // SIGKILL: no flush, no goodbye.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let done = Instant::now();
        while done.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "ccotel exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ccotel did not stop on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend_port = free_port();
    let config = format!(
        "[merge]\ngrace_period = \"200ms\"\nread_transcripts = false\n\
         [[exporters]]\nname = \"sink\"\ntype = \"otlp\"\nendpoint = \"http://127.0.0.1:{backend_port}\"\n\
         signals = [\"traces\", \"logs\", \"metrics\"]\n"
    );
    let client = reqwest::Client::new();
    let serve = Serve::start(&config, dir.path()).await;
    // The backend is down: everything waits on disk. Send half a session...
    let events = fixtures::events("tools-basic", Sources::ALL);
    let half = events.len() / 2;
    for e in &events[..half] {
        assert_eq!(
            post_event(&client, &serve.http, e).await.unwrap().status(),
            200
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.kill();
    // ...restart, send the rest, then bring the backend up.
    let serve = Serve::start(&config, dir.path()).await;
    for e in &events[half..] {
        assert_eq!(
            post_event(&client, &serve.http, e).await.unwrap().status(),
            200
        );
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", backend_port))
        .await
        .unwrap();
    let backend = Backend::http_on(listener, Mode::Ok);
    let logs_sent: usize = events
        .iter()
        .map(|e| match &e.payload {
            Payload::Logs(r) => r.resource_logs.len(),
            _ => 0,
        })
        .sum();
    let want = fixtures::expected("tools-basic")["sessions"][0]["counts"].clone();
    let want_spans = 1
        + want["prompts"].as_u64().unwrap()
        + want["llm_calls"].as_u64().unwrap()
        + want["tool_calls"].as_u64().unwrap();
    let done = eventually(Duration::from_secs(30), || {
        let got = backend.received();
        let logs: BTreeSet<Vec<u8>> = got
            .logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .map(|r| r.encode_to_vec())
            .collect();
        logs.len() >= logs_sent.min(1) && span_ids(&backend).len() as u64 >= want_spans
    })
    .await;
    serve.terminate();
    assert!(
        done,
        "got {} of {want_spans} spans",
        span_ids(&backend).len()
    );
    let got = backend.received();
    let blocks: Vec<Vec<u8>> = got
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .map(|r| r.encode_to_vec())
        .collect();
    let mut sent_blocks: Vec<Vec<u8>> = events
        .iter()
        .flat_map(|e| match &e.payload {
            Payload::Logs(r) => r.resource_logs.iter().map(|b| b.encode_to_vec()).collect(),
            _ => vec![],
        })
        .collect();
    sent_blocks.sort();
    let unique: BTreeSet<Vec<u8>> = blocks.into_iter().collect();
    let sent_unique: BTreeSet<Vec<u8>> = sent_blocks.into_iter().collect();
    assert_eq!(unique, sent_unique, "every log block delivered");
    let spans = fixtures::spans_from_otlp(&got.traces);
    crate::merge::check_facts("tools-basic", &dedupe(spans), "killed and restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_logged_with_the_backends_message_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::http(Mode::Status(400)).await;
    let config = format!(
        "[[exporters]]\nname = \"strict\"\ntype = \"otlp\"\nendpoint = \"{}\"\nsignals = [\"logs\"]\n",
        backend.endpoint()
    );
    let serve = Serve::start(&config, dir.path()).await;
    let c = fixtures::otlp("denied")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/logs", serve.http))
        .header("content-type", "application/json")
        .body(c.body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || !backend
            .arrivals
            .lock()
            .unwrap()
            .is_empty())
        .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = reqwest::get(format!("{}/metrics", serve.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serve.terminate();
    assert_eq!(backend.arrivals.lock().unwrap().len(), 1, "not retried");
    assert!(
        metrics.contains("ccotel_exporter_failed_requests_total{exporter=\"strict\"} 1"),
        "{metrics}"
    );
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("stderr-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        log.contains("backend says no") && log.contains("400"),
        "{log}"
    );
}

/// A fake Braintrust API: its OTLP intake, recording headers and spans.
async fn fake_braintrust() -> (String, Backend) {
    let backend = Backend::http(Mode::Ok).await;
    (format!("http://{}/bt", backend.addr), backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn braintrust_gets_tasks_llm_and_tool_spans_with_json_and_metrics_on_llm_only() {
    let (api_url, bt) = fake_braintrust().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ccotel.toml");
    std::fs::write(
        &path,
        format!(
            "[[exporters]]\nname = \"bt\"\ntype = \"braintrust\"\nproject = \"claude-code\"\napi_url = \"{api_url}\"\n"
        ),
    )
    .unwrap();
    let env = |k: &str| (k == "BRAINTRUST_API_KEY").then(|| "sk-bt-test".to_string());
    let mut config = Config::load(Some(&path), &env, &Default::default()).unwrap();
    // The fake serves OTLP at /v1/traces; Braintrust's is {api_url}/otel/v1/traces.
    assert_eq!(config.exporters[0].endpoint, format!("{api_url}/otel"));
    config.exporters[0].endpoint = format!("http://{}", bt.addr);
    fast_merge(&mut config);
    config.merge.read_transcripts = true;
    let app: App = spawn_app(config).await;
    for scenario in fixtures::SCENARIOS {
        replay(&app.client, &format!("http://{}", app.http), scenario).await;
    }
    app.shutdown().await;
    let got = bt.received();
    assert!(got.requests > 0);
    for h in &got.headers {
        assert_eq!(h["authorization"], "Bearer sk-bt-test");
        assert_eq!(h["x-bt-parent"], "project_name:claude-code");
        assert_eq!(h["content-type"], "application/x-protobuf");
    }
    let spans: Vec<_> = got
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| -> Option<String> {
        s.attributes.iter().find(|a| a.key == k).and_then(|a| {
            match a.value.as_ref()?.value.as_ref()? {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v) => {
                    Some(v.clone())
                }
                _ => None,
            }
        })
    };
    let mut kinds = BTreeSet::new();
    let mut llm_with_input = 0;
    for s in &spans {
        let sa: serde_json::Value =
            serde_json::from_str(&attr(s, "braintrust.span_attributes").expect("span type"))
                .unwrap();
        let kind = sa["type"].as_str().unwrap().to_string();
        let want = match s.name.as_str() {
            "claude_code.session" | "claude_code.interaction" => "task",
            "claude_code.llm_request" => "llm",
            _ => "tool",
        };
        assert_eq!(kind, want, "{}", s.name);
        kinds.insert(kind.clone());
        assert_eq!(
            attr(s, "braintrust.parent").as_deref(),
            Some("project_name:claude-code")
        );
        let metadata: serde_json::Value =
            serde_json::from_str(&attr(s, "braintrust.metadata").unwrap())
                .expect("metadata is JSON");
        assert!(metadata.get("session.id").is_some());
        for k in ["braintrust.input_json", "braintrust.output_json"] {
            if let Some(v) = attr(s, k) {
                serde_json::from_str::<serde_json::Value>(&v)
                    .unwrap_or_else(|e| panic!("{k} of {} is not JSON: {e}", s.name));
            }
        }
        let metrics = attr(s, "braintrust.metrics");
        if kind == "llm" {
            let m: serde_json::Value =
                serde_json::from_str(&metrics.expect("llm metrics")).unwrap();
            assert!(m["prompt_tokens"].as_u64().unwrap() > 0);
            assert!(m["completion_tokens"].as_u64().unwrap() > 0);
            assert!(
                metadata.get("model").is_some(),
                "model for Braintrust's cost"
            );
            llm_with_input += attr(s, "braintrust.input_json").is_some() as usize;
            assert!(attr(s, "braintrust.output_json").is_some());
        } else {
            assert!(
                metrics.is_none(),
                "{} carries metrics: cost would count twice",
                s.name
            );
            assert!(
                !s.attributes
                    .iter()
                    .any(|a| a.key.starts_with("gen_ai.usage")),
                "no token usage outside LLM spans"
            );
        }
        if s.name == "claude_code.tool" {
            assert!(attr(s, "braintrust.input_json").is_some(), "tool input");
        }
        if s.name == "claude_code.interaction" {
            assert!(
                attr(s, "braintrust.input_json").is_some(),
                "turn input is the prompt"
            );
        }
    }
    assert_eq!(kinds.len(), 3);
    assert!(llm_with_input > 0, "LLM spans carry their input messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_can_be_dropped_for_one_backend_and_kept_for_another() {
    let keep = Backend::http(Mode::Ok).await;
    let drop_it = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    fast_merge(&mut config);
    config.exporters.push(exporter(
        "keep",
        keep.endpoint(),
        Protocol::HttpProtobuf,
        "traces,logs",
    ));
    let mut e = exporter(
        "private",
        drop_it.endpoint(),
        Protocol::HttpProtobuf,
        "traces,logs",
    );
    e.content = ccotel::config::ContentPolicy::Drop;
    e.drop_attributes = vec!["user.*".into()];
    config.exporters.push(e);
    let app = spawn_app(config).await;
    replay(&app.client, &format!("http://{}", app.http), "tools-basic").await;
    app.shutdown().await;
    let has = |b: &Backend, key: &str| {
        let got = b.received();
        got.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .any(|s| s.attributes.iter().any(|a| a.key == key))
            || got
                .logs
                .iter()
                .flat_map(|r| &r.resource_logs)
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .any(|r| r.attributes.iter().any(|a| a.key == key))
    };
    for key in [
        "user_prompt",
        "gen_ai.tool.call.arguments",
        "prompt",
        "tool_input",
        "user.id",
    ] {
        assert!(has(&keep, key), "kept backend lacks {key}");
        assert!(!has(&drop_it, key), "private backend got {key}");
    }
    assert!(has(&drop_it, "tool_name") && has(&drop_it, "session.id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccotels_own_counters_reach_an_otlp_backend() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.self_metrics.endpoint = Some(backend.endpoint());
    config.self_metrics.interval = Duration::from_millis(200);
    config.exporters.push(exporter(
        "sink",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "logs",
    ));
    let app = spawn_app(config).await;
    let r = app
        .client
        .post(app.url("/v1/hooks"))
        .header("content-type", "application/json")
        .body(r#"{"session_id":"s","hook_event_name":"Stop"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    // Whether the metric arrived, and if so whether as a gauge.
    let gauge = |name: &str| {
        backend
            .received()
            .metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == name)
            .map(|m| matches!(m.data, Some(Data::Gauge(_))))
    };
    assert!(
        eventually(Duration::from_secs(10), || gauge("ccotel.hook_events")
            .is_some())
        .await
    );
    assert_eq!(gauge("ccotel.hook_events"), Some(false));
    assert_eq!(gauge("ccotel.exporter.sent_items"), Some(false));
    assert_eq!(gauge("ccotel.exporter.queued"), Some(true));
    assert_eq!(gauge("ccotel.sessions_in_memory"), Some(true));
    app.shutdown().await;
}

/// An operator sees how many sessions ccotel holds in memory and how many
/// it let go of while they are quiet, at `/healthz` and as gauges at
/// `/metrics`: the figures that explain its memory.
#[tokio::test]
async fn healthz_and_metrics_show_sessions_in_memory_and_evicted() {
    let mut config = Config::default();
    config.merge.grace_period = Duration::from_millis(100);
    config.merge.evict_after = Duration::from_secs(1);
    let app = spawn_app(config).await;
    let hook = |event: &str| {
        app.client
            .post(app.url("/v1/hooks"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"session_id":"g1","hook_event_name":"{event}","prompt":"hi","cwd":"/w"}}"#
            ))
            .send()
    };
    let levels = || async {
        let h = app.health().await;
        let level = |k: &str| h["receive"][k].as_u64().unwrap();
        (level("sessions_in_memory"), level("sessions_evicted"))
    };
    let until = |want: (u64, u64)| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = levels().await;
        while got != want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            got = levels().await;
        }
        got
    };
    assert_eq!(levels().await, (0, 0));
    assert_eq!(hook("SessionStart").await.unwrap().status(), 200);
    assert_eq!(hook("UserPromptSubmit").await.unwrap().status(), 200);
    assert_eq!(until((1, 0)).await, (1, 0), "the open session is in memory");
    assert_eq!(until((0, 1)).await, (0, 1), "quiet, it left memory");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE ccotel_sessions_evicted gauge\nccotel_sessions_evicted 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE ccotel_sessions_in_memory gauge\n"));
    assert_eq!(hook("SessionEnd").await.unwrap().status(), 200);
    assert_eq!(until((0, 0)).await, (0, 0), "ended, it is gone");
}
