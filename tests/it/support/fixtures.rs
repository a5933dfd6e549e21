//! The captures of the real Claude Code CLI under tests/fixtures.

use base64::Engine;
use serde_json::Value;
use std::path::PathBuf;

pub const SCENARIOS: &[&str] = &[
    "tools-basic",
    "tool-failure",
    "subagent",
    "multi-turn",
    "http-hooks",
    "protobuf",
    "denied",
];

pub fn dir(scenario: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code-2.1.328")
        .join(scenario)
}

fn lines(scenario: &str, file: &str) -> Vec<Value> {
    let path = dir(scenario).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One OTLP export request as Claude Code sent it.
#[derive(Debug, Clone)]
pub struct OtlpCapture {
    /// `/v1/logs`, `/v1/metrics` or `/v1/traces`.
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub ts: f64,
}

/// Every OTLP request of a scenario, in arrival order.
pub fn otlp(scenario: &str) -> Vec<OtlpCapture> {
    let mut out = Vec::new();
    for file in ["otlp-metrics.jsonl", "otlp-logs.jsonl", "otlp-traces.jsonl"] {
        for line in lines(scenario, file) {
            let body = if let Some(b64) = line["body_b64"].as_str() {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            } else {
                serde_json::to_vec(&line["body"]).unwrap()
            };
            out.push(OtlpCapture {
                path: line["path"].as_str().unwrap().to_string(),
                content_type: line["content_type"].as_str().unwrap().to_string(),
                body,
                ts: line["ts"].as_f64().unwrap(),
            });
        }
    }
    out.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    out
}

/// One hook invocation: the exact JSON Claude Code sent, and when.
#[derive(Debug, Clone)]
pub struct HookCapture {
    pub body: Vec<u8>,
    pub ts: f64,
}

/// Every hook invocation of a scenario, in the order it fired.
pub fn hooks(scenario: &str) -> Vec<HookCapture> {
    let mut out: Vec<HookCapture> = lines(scenario, "hooks.jsonl")
        .into_iter()
        .map(|line| HookCapture {
            body: serde_json::to_vec(&line["input"]).unwrap(),
            ts: line["shell_ts"]
                .as_f64()
                .or_else(|| line["ts"].as_f64())
                .unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    out
}

/// The raw HTTP hook requests of the `http-hooks` scenario, byte for byte.
pub fn http_hook_bodies(scenario: &str) -> Vec<Vec<u8>> {
    lines(scenario, "http-hook-requests.jsonl")
        .into_iter()
        .map(|l| l["body_text"].as_str().unwrap().as_bytes().to_vec())
        .collect()
}

pub fn expected(scenario: &str) -> Value {
    let text = std::fs::read_to_string(dir(scenario).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Which sources of a capture to feed.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    pub hooks: bool,
    pub otlp: bool,
}

impl Sources {
    pub const ALL: Sources = Sources {
        hooks: true,
        otlp: true,
    };
}

/// The inputs of a scenario as ccotel's internal events, stamped with the
/// time they reached the capture server, in arrival order.
pub fn events(scenario: &str, sources: Sources) -> Vec<ccotel::model::Event> {
    use ccotel::model::{Event, HookEvent, Payload, Transport};
    use prost::Message;
    let mut out = Vec::new();
    let ns = |ts: f64| (ts * 1e9) as u64;
    if sources.hooks {
        for h in hooks(scenario) {
            out.push(Event {
                received_at: ns(h.ts),
                transport: Transport::HookCommand,
                payload: Payload::Hook(HookEvent::parse(&h.body).unwrap()),
                wire: None,
            });
        }
    }
    if sources.otlp {
        for c in otlp(scenario) {
            let json = c.content_type.contains("json");
            macro_rules! dec {
                ($ty:ty) => {
                    if json {
                        serde_json::from_slice::<$ty>(&c.body).unwrap()
                    } else {
                        <$ty>::decode(&c.body[..]).unwrap()
                    }
                };
            }
            use opentelemetry_proto::tonic::collector::{
                logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
                trace::v1::ExportTraceServiceRequest,
            };
            let payload = match c.path.as_str() {
                "/v1/logs" => Payload::Logs(dec!(ExportLogsServiceRequest)),
                "/v1/metrics" => Payload::Metrics(dec!(ExportMetricsServiceRequest)),
                _ => Payload::Traces(dec!(ExportTraceServiceRequest)),
            };
            out.push(Event {
                received_at: ns(c.ts),
                transport: Transport::HttpJson,
                payload,
                wire: None,
            });
        }
    }
    out.sort_by_key(|e| e.received_at);
    out
}

/// Where the scenario's transcripts are, for `[merge].transcript_path_map`.
pub fn transcript_map(scenario: &str) -> (String, std::path::PathBuf) {
    (
        "/home/dev/.claude/projects".to_string(),
        dir(scenario).join("transcripts"),
    )
}

/// Merged spans as an OTLP backend received them, back in ccotel's record
/// type so the same checks apply.
pub fn spans_from_otlp(
    requests: &[opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest],
) -> Vec<ccotel::model::span::SpanRecord> {
    use ccotel::model::span::{Attr, SpanKind, SpanRecord, SpanStatus};
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    let mut out = Vec::new();
    for r in requests {
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let attributes = s
                        .attributes
                        .iter()
                        .filter_map(|kv| {
                            let v = match kv.value.as_ref()?.value.as_ref()? {
                                V::StringValue(x) => Attr::Str(x.clone()),
                                V::IntValue(x) => Attr::Int(*x),
                                V::DoubleValue(x) => Attr::Double(*x),
                                V::BoolValue(x) => Attr::Bool(*x),
                                _ => return None,
                            };
                            Some((kv.key.clone(), v))
                        })
                        .collect();
                    let kind = match s.name.as_str() {
                        "claude_code.session" => SpanKind::Session,
                        "claude_code.interaction" => SpanKind::Turn,
                        "claude_code.llm_request" => SpanKind::Llm,
                        _ => SpanKind::Tool,
                    };
                    let status = match &s.status {
                        Some(st) if st.code == 2 => SpanStatus::Error(st.message.clone()),
                        _ => SpanStatus::Unset,
                    };
                    out.push(SpanRecord {
                        trace_id: s.trace_id.clone().try_into().unwrap(),
                        span_id: s.span_id.clone().try_into().unwrap(),
                        parent_span_id: (!s.parent_span_id.is_empty())
                            .then(|| s.parent_span_id.clone().try_into().unwrap()),
                        kind,
                        name: s.name.clone(),
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        attributes,
                        status,
                    });
                }
            }
        }
    }
    out
}
