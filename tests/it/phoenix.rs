//! Against a real trace backend: Arize Phoenix, started by the test (from
//! PyPI's `arize-phoenix`, offline). The session tree read back through its
//! API must be the tree ccotel built.

use crate::support::fixtures::{self, Sources};
use crate::support::ports::free_port;
use crate::support::{exporter, post_event, spawn_app};
use ccotel::config::{Config, Protocol};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `phoenix` executable, from `PHOENIX_BIN`; CI installs it.
fn phoenix_bin() -> Option<String> {
    match std::env::var("PHOENIX_BIN") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("PHOENIX_BIN is not set: .ci/run installs arize-phoenix and sets it")
        }
        _ => {
            eprintln!("skipping: set PHOENIX_BIN to a `phoenix` executable to run this test");
            None
        }
    }
}

struct Phoenix(std::process::Child);

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_read_back_from_phoenix_is_the_tree_ccotel_built() {
    let Some(bin) = phoenix_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg("serve")
        .env("PHOENIX_WORKING_DIR", dir.path())
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_GRPC_PORT", free_port().to_string())
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("phoenix.log")).unwrap())
        .spawn()
        .expect("phoenix starts");
    let _phoenix = Phoenix(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "phoenix did not start"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let scenario = "subagent";
    let mut config = Config::default();
    config.merge.grace_period = Duration::from_millis(200);
    let (from, to) = fixtures::transcript_map(scenario);
    config.merge.transcript_path_map.insert(from, to);
    let mut e = exporter("phoenix", base.clone(), Protocol::HttpProtobuf, "traces");
    e.resource
        .insert("openinference.project.name".into(), "ccotel-e2e".into());
    config.exporters.push(e);
    let app = spawn_app(config).await;
    let mut sent_tree = None;
    for ev in fixtures::events(scenario, Sources::ALL) {
        let r = post_event(&client, &app.base(), &ev).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    app.shutdown().await;
    if let Ok(golden) = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/subagent.txt"),
    ) {
        sent_tree = Some(golden);
    }

    // Phoenix stores asynchronously: poll until the whole session is there.
    let want = 1 + 1 + 4 + 2;
    let mut spans: Vec<Value> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let r = client
            .get(format!("{base}/v1/projects/ccotel-e2e/spans?limit=1000"))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            let body: Value = r.json().await.unwrap();
            spans = body["data"].as_array().cloned().unwrap_or_default();
            if spans.len() >= want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(spans.len(), want, "spans read back: {spans:#?}");

    // Rebuild the tree from what Phoenix returns and compare.
    let records = spans.iter().map(record).collect::<Vec<_>>();
    crate::merge::check_facts(scenario, &records, "read back from Phoenix");
    let tree = crate::merge::tree_text(&records);
    assert_eq!(Some(tree), sent_tree, "the tree in Phoenix");
}

/// A Phoenix span (`GET /v1/projects/{name}/spans`) as ccotel's record.
fn record(v: &Value) -> ccotel::model::span::SpanRecord {
    use ccotel::model::span::{Attr, SpanKind, SpanRecord, SpanStatus};
    let hex8 = |s: &str| -> [u8; 8] {
        let mut out = [0u8; 8];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    };
    let hex16 = |s: &str| -> [u8; 16] {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    };
    let time = |s: &Value| -> u64 {
        s.as_str()
            .and_then(|t| {
                humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('+').next().unwrap())
                    .ok()
            })
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64)
            .unwrap_or(0)
    };
    let mut attributes = BTreeMap::new();
    flatten("", &v["attributes"], &mut attributes);
    let attributes = attributes
        .into_iter()
        .map(|(k, v)| {
            let a = match v {
                Value::String(s) => Attr::Str(s),
                Value::Bool(b) => Attr::Bool(b),
                Value::Number(n) if n.is_i64() => Attr::Int(n.as_i64().unwrap()),
                Value::Number(n) => Attr::Double(n.as_f64().unwrap()),
                other => Attr::Str(other.to_string()),
            };
            (k, a)
        })
        .collect();
    let name = v["name"].as_str().unwrap().to_string();
    SpanRecord {
        trace_id: hex16(v["context"]["trace_id"].as_str().unwrap()),
        span_id: hex8(v["context"]["span_id"].as_str().unwrap()),
        parent_span_id: v["parent_id"].as_str().map(hex8),
        kind: match name.as_str() {
            "claude_code.session" => SpanKind::Session,
            "claude_code.interaction" => SpanKind::Turn,
            "claude_code.llm_request" => SpanKind::Llm,
            _ => SpanKind::Tool,
        },
        name,
        start_ns: time(&v["start_time"]),
        end_ns: time(&v["end_time"]),
        attributes,
        status: match v["status_code"].as_str() {
            Some("ERROR") => SpanStatus::Error(v["status_message"].as_str().unwrap_or("").into()),
            _ => SpanStatus::Unset,
        },
    }
}

/// Phoenix nests dotted attribute keys (`gen_ai.tool.name` → objects); join
/// them back into dotted keys.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}
