//! Hostile and unlucky conditions: secrets in every field, clock skew, a
//! session with 10k tool calls, a truncated 60 KB body.

use crate::support::backend::{Backend, Mode};
use crate::support::fixtures::{self, Sources};
use crate::support::{exporter, get_json, post_event, spawn_app};
use ccotel::config::{Config, Protocol};
use ccotel::model::{Event, Payload};
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The secrets corpus: (kind, text, the part that must never leave).
fn corpus() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/secrets/corpus.tsv"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            let kind = p.next().unwrap().to_string();
            let text = p.next().unwrap().replace("\\n", "\n");
            let needle = p.next().unwrap().to_string();
            (kind, text, needle)
        })
        .collect()
}

fn all_secrets() -> String {
    corpus()
        .iter()
        .map(|(_, t, _)| t.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Appends the secrets to every string inside a JSON value.
fn salt_json(v: &mut Value, secrets: &str) {
    match v {
        Value::String(s) => {
            s.push(' ');
            s.push_str(secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(|i| salt_json(i, secrets)),
        Value::Object(map) => map.values_mut().for_each(|i| salt_json(i, secrets)),
        _ => {}
    }
}

const CONTENT: &[&str] = &[
    "prompt",
    "prompt_text",
    "response",
    "tool_input",
    "tool_parameters",
    "error",
    "user_prompt",
    "full_command",
];

fn salt_attrs(list: &mut [opentelemetry_proto::tonic::common::v1::KeyValue], secrets: &str) {
    for kv in list {
        let Some(V::StringValue(s)) = kv.value.as_mut().and_then(|v| v.value.as_mut()) else {
            continue;
        };
        if kv.key == "body" {
            // Inside the JSON of API bodies, so it stays JSON.
            if let Ok(mut v) = serde_json::from_str::<Value>(s) {
                salt_json(&mut v, secrets);
                *s = v.to_string();
            }
        } else if CONTENT.contains(&kv.key.as_str()) || kv.key.starts_with("tool.output") {
            s.push(' ');
            s.push_str(secrets);
        }
    }
}

/// A scenario's inputs with the corpus planted in prompts, tool input and
/// output, model messages, log attributes and span events.
fn salted_events(scenario: &str, secrets: &str) -> Vec<Event> {
    let mut events = fixtures::events(scenario, Sources::ALL);
    for e in &mut events {
        match &mut e.payload {
            Payload::Hook(h) => {
                for key in [
                    "prompt",
                    "tool_input",
                    "tool_response",
                    "last_assistant_message",
                    "error",
                ] {
                    if let Some(v) = h.fields.get_mut(key) {
                        salt_json(v, secrets);
                    }
                }
            }
            Payload::Logs(r) => {
                for rec in r
                    .resource_logs
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_logs)
                    .flat_map(|s| &mut s.log_records)
                {
                    salt_attrs(&mut rec.attributes, secrets);
                }
            }
            Payload::Traces(r) => {
                for span in r
                    .resource_spans
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_spans)
                    .flat_map(|s| &mut s.spans)
                {
                    salt_attrs(&mut span.attributes, secrets);
                    for ev in &mut span.events {
                        for kv in &mut ev.attributes {
                            if let Some(V::StringValue(s)) =
                                kv.value.as_mut().and_then(|v| v.value.as_mut())
                            {
                                s.push(' ');
                                s.push_str(secrets);
                            }
                        }
                    }
                }
            }
            Payload::Metrics(_) => {}
        }
    }
    events
}

/// Copies a scenario's transcripts with the corpus planted in every message.
fn salted_transcripts(scenario: &str, secrets: &str, into: &Path) -> PathBuf {
    let from = fixtures::dir(scenario).join("transcripts");
    let mut stack = vec![from.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            let target = into.join(p.strip_prefix(&from).unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&p).unwrap();
                let salted: Vec<String> = text
                    .lines()
                    .map(|l| {
                        let mut v: Value = serde_json::from_str(l).unwrap();
                        if let Some(m) = v.get_mut("message") {
                            salt_json(m, secrets);
                        }
                        v.to_string()
                    })
                    .collect();
                std::fs::write(&target, salted.join("\n") + "\n").unwrap();
            } else {
                std::fs::copy(&p, &target).unwrap();
            }
        }
    }
    into.to_path_buf()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_an_exporter_or_the_store() {
    let secrets = all_secrets();
    let transcripts = tempfile::tempdir().unwrap();
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.merge.grace_period = Duration::from_millis(100);
    for scenario in ["tools-basic", "subagent"] {
        let dir = transcripts.path().join(scenario);
        std::fs::create_dir_all(&dir).unwrap();
        salted_transcripts(scenario, &secrets, &dir);
    }
    // Both sessions' transcripts live under one project folder each.
    config.merge.transcript_path_map.insert(
        "/home/dev/.claude/projects".into(),
        transcripts.path().join("tools-basic"),
    );
    config.exporters.push(exporter(
        "everything",
        backend.endpoint(),
        Protocol::HttpJson,
        "traces,metrics,logs,native_traces",
    ));
    let app = spawn_app(config).await;
    let store_dir = app.store_dir();
    for scenario in ["tools-basic", "subagent"] {
        for e in salted_events(scenario, &secrets) {
            let r = post_event(&app.client, &app.base(), &e).await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let _store = app.shutdown_keeping_store().await;

    let got = backend.received();
    assert!(!got.traces.is_empty() && !got.logs.is_empty());
    let mut sent = String::new();
    for r in &got.traces {
        sent.push_str(&serde_json::to_string(r).unwrap());
    }
    for r in &got.logs {
        sent.push_str(&serde_json::to_string(r).unwrap());
    }
    for r in &got.metrics {
        sent.push_str(&serde_json::to_string(r).unwrap());
    }
    assert!(
        sent.contains("[REDACTED:"),
        "the corpus was planted and caught"
    );
    let store_bytes: Vec<(PathBuf, Vec<u8>)> = files_under(&store_dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert!(!store_bytes.is_empty());
    for (kind, _, needle) in corpus() {
        assert!(!sent.contains(&needle), "{kind} reached the exporter");
        for (path, bytes) in &store_bytes {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{kind} written to {}",
                path.display()
            );
        }
    }
}

#[test]
fn clock_skew_between_sources_still_gives_the_right_tree() {
    for skew in [-600_i64, 600] {
        for scenario in ["subagent", "multi-turn", "denied"] {
            let mut events = fixtures::events(scenario, Sources::ALL);
            // Claude Code's clock (OTLP times) is off by ten minutes from
            // ccotel's (hook arrival times).
            let shift = |t: &mut u64| *t = (*t as i64 + skew * 1_000_000_000) as u64;
            for e in &mut events {
                match &mut e.payload {
                    Payload::Traces(r) => {
                        for s in r
                            .resource_spans
                            .iter_mut()
                            .flat_map(|r| &mut r.scope_spans)
                            .flat_map(|s| &mut s.spans)
                        {
                            shift(&mut s.start_time_unix_nano);
                            shift(&mut s.end_time_unix_nano);
                        }
                    }
                    Payload::Logs(r) => {
                        for rec in r
                            .resource_logs
                            .iter_mut()
                            .flat_map(|r| &mut r.scope_logs)
                            .flat_map(|s| &mut s.log_records)
                        {
                            shift(&mut rec.time_unix_nano);
                            rec.attributes.retain(|a| a.key != "event.timestamp");
                        }
                    }
                    _ => {}
                }
            }
            let spans = crate::merge::merge(scenario, &events, false);
            crate::merge::check_facts(scenario, &spans, &format!("clock skew {skew}s"));
        }
    }
}

fn hook(session: &str, name: &str, at: u64, extra: Value) -> Event {
    let mut fields =
        serde_json::json!({"session_id": session, "hook_event_name": name, "cwd": "/w"});
    if let (Some(f), Value::Object(x)) = (fields.as_object_mut(), extra) {
        f.extend(x);
    }
    Event {
        received_at: at,
        transport: ccotel::model::Transport::HookHttp,
        payload: Payload::Hook(
            ccotel::model::HookEvent::parse(fields.to_string().as_bytes()).unwrap(),
        ),
        wire: None,
    }
}

#[test]
fn a_session_with_ten_thousand_tool_calls_is_whole() {
    let sid = "long-session";
    let mut events = vec![hook(
        sid,
        "UserPromptSubmit",
        1_000,
        serde_json::json!({"prompt_id": "p", "prompt": "go"}),
    )];
    let n = 10_000u64;
    for i in 0..n {
        let at = 2_000 + i * 1_000_000;
        let id = format!("toolu_{i:06}");
        events.push(hook(
            sid,
            "PreToolUse",
            at,
            serde_json::json!({"prompt_id": "p", "tool_use_id": id, "tool_name": "Read", "tool_input": {"file_path": format!("/w/{i}")}}),
        ));
        events.push(hook(
            sid,
            "PostToolUse",
            at + 500_000,
            serde_json::json!({"prompt_id": "p", "tool_use_id": id, "tool_name": "Read", "tool_response": "ok"}),
        ));
    }
    let end = 2_000 + n * 1_000_000;
    events.push(hook(
        sid,
        "Stop",
        end,
        serde_json::json!({"prompt_id": "p"}),
    ));
    events.push(hook(
        sid,
        "SessionEnd",
        end + 1,
        serde_json::json!({"reason": "other"}),
    ));
    let mut engine = ccotel::merge::Engine::new(ccotel::config::MergeConfig::default(), None);
    let mut spans = Vec::new();
    for chunk in events.chunks(512) {
        engine.ingest(chunk);
        spans.extend(
            engine
                .tick(chunk[0].received_at, false)
                .into_iter()
                .flat_map(|x| x.spans),
        );
    }
    spans.extend(
        engine
            .tick(end + 60_000_000_000, false)
            .into_iter()
            .flat_map(|x| x.spans),
    );
    let tools = spans
        .iter()
        .filter(|s| s.name == "claude_code.tool")
        .count();
    assert_eq!(tools as u64, n);
    let ids: std::collections::BTreeSet<_> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(ids.len(), spans.len(), "each span once");
    let root = spans
        .iter()
        .find(|s| s.name == "claude_code.session")
        .unwrap();
    assert_eq!(
        root.attr("totals.tool_calls").and_then(|a| a.as_i64()),
        Some(n as i64)
    );
    assert!(engine.session_ids().is_empty(), "finished and released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_60kb_body_is_accepted_and_the_call_still_merged() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.merge.grace_period = Duration::from_millis(100);
    config.merge.read_transcripts = false;
    config.exporters.push(exporter(
        "sink",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "traces",
    ));
    let app = spawn_app(config).await;
    let scenario = "tools-basic";
    let mut events = fixtures::events(scenario, Sources::ALL);
    // Claude Code cuts content at 60 KB and appends a marker: no longer JSON.
    let cut = format!(
        "{{\"model\":\"claude-opus-5-5\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}[TRUNCATED - Content exceeds 60KB limit]",
        "x".repeat(61_400)
    );
    for e in &mut events {
        if let Payload::Logs(r) = &mut e.payload {
            for rec in r
                .resource_logs
                .iter_mut()
                .flat_map(|r| &mut r.scope_logs)
                .flat_map(|s| &mut s.log_records)
            {
                for kv in &mut rec.attributes {
                    if kv.key == "body" {
                        kv.value = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                            value: Some(V::StringValue(cut.clone())),
                        });
                    }
                }
            }
        }
    }
    for e in &events {
        let r = post_event(&app.client, &app.base(), e).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    app.shutdown().await;
    let spans = fixtures::spans_from_otlp(&backend.received().traces);
    crate::merge::check_facts(scenario, &spans, "truncated bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_door_but_healthz_is_locked() {
    let mut config = Config::default();
    config.server.token = Some("t0ken-for-tests".into());
    let app = spawn_app(config).await;
    let hook = r#"{"session_id":"s","hook_event_name":"Stop"}"#;
    let post = |auth: Option<&'static str>| {
        let mut r = app
            .client
            .post(app.url("/v1/hooks"))
            .header("content-type", "application/json")
            .body(hook);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Authorization: Bearer"));
    assert_eq!(post(Some("Bearer wrong")).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("Bearer t0ken-for-tests")).await.unwrap().status(),
        200
    );
    let r = app
        .client
        .post(app.url("/v1/logs"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // gRPC: OTLP and the query API.
    use opentelemetry_proto::tonic::collector::logs::v1::{
        logs_service_client::LogsServiceClient, ExportLogsServiceRequest,
    };
    let mut client = LogsServiceClient::connect(format!("http://{}", app.grpc))
        .await
        .unwrap();
    let err = client
        .export(ExportLogsServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(ExportLogsServiceRequest::default());
    req.metadata_mut()
        .insert("authorization", "Bearer t0ken-for-tests".parse().unwrap());
    client.export(req).await.unwrap();

    // The hook command and the CLI pass the token along.
    let endpoint = app.url("/v1/hooks");
    let spool = tempfile::tempdir().unwrap();
    let grpc = format!("http://{}", app.grpc);
    let (with, without_cli, with_cli) = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ccotel"))
            .args(["hook", "--endpoint", &endpoint, "--spool-dir"])
            .arg(spool.path())
            .env("CCOTEL_TOKEN", "t0ken-for-tests")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(hook.as_bytes())
            .unwrap();
        let with = child.wait().unwrap();
        let run = |token: Option<&str>| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ccotel"));
            c.args(["sessions", "--json", "--server", &grpc]);
            match token {
                Some(t) => c.env("CCOTEL_TOKEN", t),
                None => c.env_remove("CCOTEL_TOKEN"),
            };
            c.output().unwrap()
        };
        (with, run(None), run(Some("t0ken-for-tests")))
    })
    .await
    .unwrap();
    assert!(with.success());
    assert!(!without_cli.status.success());
    assert!(String::from_utf8_lossy(&without_cli.stderr).contains("token"));
    assert!(
        with_cli.status.success(),
        "{}",
        String::from_utf8_lossy(&with_cli.stderr)
    );
    let health = app.health().await;
    assert_eq!(health["receive"]["hook_events"], 2);
    assert!(health["receive"]["unauthorized"].as_u64().unwrap() >= 4);
    app.shutdown().await;
}

/// A ccotel serving TLS on both ports with a self-signed certificate for
/// localhost (a certificate no public root vouches for), its PEM file, and
/// a client that trusts it.
struct TlsApp {
    app: crate::support::App,
    cert_pem: String,
    cert_path: PathBuf,
    https: reqwest::Client,
    dir: tempfile::TempDir,
}

async fn tls_app() -> TlsApp {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let cert_pem = cert.cert.pem();
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut config = Config::default();
    config.server.tls = Some(ccotel::config::TlsConfig {
        cert: cert_path.clone(),
        key: key_path,
    });
    let app = spawn_app(config).await;
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    TlsApp {
        app,
        cert_pem,
        cert_path,
        https,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_receivers_speak_tls() {
    // (ccotel reads the certificate as it starts, which may be after
    // `tls_app` returns: keep its files.)
    let TlsApp {
        app,
        cert_pem,
        https: client,
        dir: _dir,
        ..
    } = tls_app().await;
    let url = format!("https://localhost:{}/v1/hooks", app.http.port());
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"session_id":"s","hook_event_name":"Stop"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to the TLS port gets nowhere.
    assert!(app.client.get(app.url("/healthz")).send().await.is_err());

    use opentelemetry_proto::tonic::collector::logs::v1::{
        logs_service_client::LogsServiceClient, ExportLogsServiceRequest,
    };
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", app.grpc.port()))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
    LogsServiceClient::new(channel)
        .export(ExportLogsServiceRequest::default())
        .await
        .unwrap();
    app.shutdown().await;
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("stderr-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_counted_and_receiving_goes_on() {
    use crate::delivery::Serve;
    use crate::support::ports::free_port;
    let dir = tempfile::tempdir().unwrap();
    // The exporter's backend is down, so its queue has to grow on disk.
    let config = format!(
        "[merge]\ngrace_period = \"100ms\"\nread_transcripts = false\n\
         [[exporters]]\nname = \"down\"\ntype = \"otlp\"\nendpoint = \"http://127.0.0.1:{}\"\n",
        free_port()
    );
    let serve = Serve::start_limited(&config, dir.path(), Some(256)).await;
    let client = reqwest::Client::new();
    let logs: Vec<Vec<u8>> = fixtures::otlp("tools-basic")
        .into_iter()
        .filter(|c| c.path == "/v1/logs")
        .map(|c| c.body)
        .collect();
    let mut accepted = 0;
    for round in 0..6 {
        for body in &logs {
            let r = client
                .post(format!("{}/v1/logs", serve.http))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}: receiving goes on");
            accepted += 1;
        }
    }
    // Every accepted request is either queued or counted as dropped, once the
    // merge engine has worked through them (failing writes are slow).
    let mut health = Value::Null;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until {
        health = get_json(&client, &format!("{}/healthz", serve.http)).await;
        let e = &health["exporters"]["down"];
        if e["enqueued"].as_u64().unwrap() + e["queue_write_errors"].as_u64().unwrap() >= accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    serve.terminate();
    let log = stderr_of(dir.path());
    assert!(accepted > 10);
    let store_errors = health["receive"]["store_errors"].as_u64().unwrap();
    let queue_errors = health["exporters"]["down"]["queue_write_errors"]
        .as_u64()
        .unwrap();
    assert!(store_errors + queue_errors > 0, "{health}\n{log}");
    assert!(
        log.contains("ccotel.db") || log.contains("down.db"),
        "the errors name the file: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_store_is_moved_aside_and_ccotel_starts() {
    use crate::delivery::Serve;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("queues")).unwrap();
    std::fs::write(store.join("ccotel.db"), vec![0xA5u8; 64 * 1024]).unwrap();
    std::fs::write(
        store.join("queues/sink.db"),
        b"this is not a database, not at all",
    )
    .unwrap();
    let config =
        "[[exporters]]\nname = \"sink\"\ntype = \"otlp\"\nendpoint = \"http://127.0.0.1:9\"\n";
    let serve = Serve::start(config, dir.path()).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/hooks", serve.http))
        .header("content-type", "application/json")
        .body(r#"{"session_id":"s","hook_event_name":"Stop"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serve.terminate();
    let names: Vec<String> = files_under(&store)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("ccotel.db.corrupt-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("sink.db.corrupt-")),
        "{names:?}"
    );
    let log = stderr_of(dir.path());
    assert!(log.contains("damaged") && log.contains("moved"), "{log}");
}

/// A team gateway whose certificate a private CA signed: the command hook
/// trusts it with `--ca-cert` (or `CCOTEL_CA_CERT`), and without it spools
/// the event rather than send it to a server it cannot verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_hook_trusts_a_private_ca_when_told() {
    let TlsApp {
        app,
        cert_path,
        https,
        dir,
        ..
    } = tls_app().await;
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let health = format!("https://localhost:{}/healthz", app.http.port());
    let received = || async {
        get_json(&https, &health).await["receive"]["hook_events"]
            .as_u64()
            .unwrap()
    };
    let endpoint = format!("https://localhost:{}/v1/hooks", app.http.port());
    let event = r#"{"hook_event_name":"Stop","session_id":"s-private-ca"}"#;
    let mut sent = 0;
    for bin in [
        env!("CARGO_BIN_EXE_ccotel-hook"),
        env!("CARGO_BIN_EXE_ccotel"),
    ] {
        // (trust: flag, variable), and whether the event gets through.
        let cases: [(Option<&Path>, Option<&Path>, bool); 4] = [
            (None, None, false),
            (Some(&cert_path), None, true),
            (None, Some(&cert_path), true),
            (Some(&not_pem), None, false),
        ];
        for (flag, var, delivered) in cases {
            let spool = tempfile::tempdir().unwrap();
            let mut cmd = std::process::Command::new(bin);
            if bin.ends_with("/ccotel") {
                cmd.arg("hook");
            }
            cmd.args(["--endpoint", &endpoint, "--spool-dir"])
                .arg(spool.path())
                .env_remove("CCOTEL_CA_CERT")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(f) = flag {
                cmd.arg("--ca-cert").arg(f);
            }
            if let Some(v) = var {
                cmd.env("CCOTEL_CA_CERT", v);
            }
            let out = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = cmd.spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(event.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap();
            let what = format!("{bin} --ca-cert {flag:?} CCOTEL_CA_CERT {var:?}");
            assert!(out.status.success(), "{what}: {:?}", out.status);
            assert!(out.stderr.is_empty(), "{what}: silent");
            let spooled = std::fs::read_dir(spool.path()).unwrap().count();
            sent += delivered as u64;
            assert_eq!(received().await, sent, "{what}: delivered");
            assert_eq!(spooled, (!delivered) as usize, "{what}: spooled");
        }
    }
    app.shutdown().await;
}

/// The query commands against a gateway whose certificate a private CA
/// signed: `--ca-cert` (or `CCOTEL_CA_CERT`) makes them trust it; without
/// it, or with a file that holds no certificate, they fail and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_commands_trust_a_private_ca_when_told() {
    let TlsApp {
        app,
        cert_path,
        dir,
        ..
    } = tls_app().await;
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let server = format!("https://localhost:{}", app.grpc.port());
    let run = move |flag: Option<&Path>, var: Option<&Path>, command: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ccotel"));
        cmd.args(command)
            .args(["--server", &server])
            .env_remove("CCOTEL_CA_CERT")
            .env_remove("CCOTEL_TOKEN");
        if let Some(f) = flag {
            cmd.arg("--ca-cert").arg(f);
        }
        if let Some(v) = var {
            cmd.env("CCOTEL_CA_CERT", v);
        }
        cmd.output().unwrap()
    };
    let (with_flag, with_var, without, not_a_cert, tail_without) =
        tokio::task::spawn_blocking(move || {
            let list = ["sessions", "--json"];
            (
                run(Some(&cert_path), None, &list),
                run(None, Some(&cert_path), &list),
                run(None, None, &list),
                run(Some(&not_pem), None, &list),
                run(None, None, &["tail"]),
            )
        })
        .await
        .unwrap();
    for (what, out) in [("--ca-cert", &with_flag), ("CCOTEL_CA_CERT", &with_var)] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Value = serde_json::from_str(&stdout).expect("a JSON answer");
        assert!(listed.is_array(), "{what}: {stdout}");
    }
    for (what, out) in [("no CA", &without), ("tail, no CA", &tail_without)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}");
        assert!(
            stderr.contains("cannot reach") && stderr.contains("--ca-cert"),
            "{what}: {stderr}"
        );
    }
    let stderr = String::from_utf8_lossy(&not_a_cert.stderr);
    assert!(!not_a_cert.status.success());
    assert!(
        stderr.contains("not.pem") && stderr.contains("no certificate"),
        "{stderr}"
    );
    app.shutdown().await;
}
