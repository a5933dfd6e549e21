//! What one exporter changes before sending: content kept, masked or dropped,
//! attributes filtered out, and for Braintrust the span shape its OTLP intake
//! reads (`braintrust.*` attributes). Applied at send time to a copy, so each
//! backend gets its own view of the same queued data.

use super::batch::ExportItem;
use crate::config::{ContentPolicy, ExporterConfig, ExporterKind};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Attributes that carry what the user typed, what the model said, or what a
/// tool read or wrote.
pub const CONTENT_KEYS: &[&str] = &[
    "user_prompt",
    "prompt",
    "prompt_text",
    "last_assistant_message",
    "response",
    "body",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "tool_input",
    "tool_parameters",
    "denial.reason",
    "compact_summary",
    "full_command",
    "file_path",
    "content",
    "output",
    "diff",
    "error",
];

const MASK: &str = "<REDACTED>";

/// One exporter's changes.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    content: ContentPolicy,
    drop: Vec<String>,
    /// `braintrust.parent` for every span, when shaping for Braintrust.
    braintrust_parent: Option<String>,
    /// Resource attributes to set.
    resource: Vec<(String, String)>,
    /// This backend's own extra redaction.
    redactor: Option<Arc<crate::redact::Redactor>>,
}

impl Transform {
    pub fn from_config(c: &ExporterConfig) -> Transform {
        Transform {
            content: c.content,
            drop: c.drop_attributes.clone(),
            resource: c
                .resource
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            braintrust_parent: (c.kind == ExporterKind::Braintrust)
                .then(|| c.headers.get("x-bt-parent").cloned())
                .flatten(),
            // Patterns were validated when the config loaded.
            redactor: (!c.redact_patterns.is_empty())
                .then(|| crate::redact::Redactor::new(false, &c.redact_patterns).ok())
                .flatten()
                .map(Arc::new),
        }
    }

    /// Whether this exporter sends items exactly as they are.
    pub fn is_identity(&self) -> bool {
        self.content == ContentPolicy::Keep
            && self.drop.is_empty()
            && self.braintrust_parent.is_none()
            && self.resource.is_empty()
            && self.redactor.is_none()
    }

    fn dropped(&self, key: &str) -> bool {
        self.drop.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == p,
        })
    }

    /// Filters a resource's attributes and sets the configured ones.
    fn resource(&self, res: &mut Option<opentelemetry_proto::tonic::resource::v1::Resource>) {
        let res = res.get_or_insert_with(Default::default);
        self.attrs(&mut res.attributes);
        for (k, v) in &self.resource {
            res.attributes.retain(|a| &a.key != k);
            res.attributes.push(kv(k, v.clone()));
        }
    }

    /// Filters one attribute list in place.
    fn attrs(&self, list: &mut Vec<KeyValue>) {
        list.retain(|kv| !self.dropped(&kv.key));
        if let Some(r) = &self.redactor {
            r.attrs(list);
        }
        if self.content == ContentPolicy::Keep {
            return;
        }
        list.retain_mut(|kv| {
            if !CONTENT_KEYS.contains(&kv.key.as_str()) {
                return true;
            }
            match self.content {
                ContentPolicy::Drop => false,
                _ => {
                    kv.value = Some(AnyValue {
                        value: Some(V::StringValue(MASK.into())),
                    });
                    true
                }
            }
        });
    }

    /// Applies the changes, copying only when there is something to change.
    pub fn apply(&self, item: ExportItem) -> ExportItem {
        if self.is_identity() {
            return item;
        }
        match item {
            ExportItem::Traces(r) => {
                let mut r = Arc::unwrap_or_clone(r);
                self.traces(&mut r);
                if let Some(parent) = &self.braintrust_parent {
                    braintrust_shape(&mut r, parent);
                }
                ExportItem::Traces(Arc::new(r))
            }
            ExportItem::NativeTraces(r) => {
                let mut r = Arc::unwrap_or_clone(r);
                self.traces(&mut r);
                ExportItem::NativeTraces(Arc::new(r))
            }
            ExportItem::Logs(r) => {
                let mut r = Arc::unwrap_or_clone(r);
                for rl in &mut r.resource_logs {
                    self.resource(&mut rl.resource);
                    for sl in &mut rl.scope_logs {
                        for rec in &mut sl.log_records {
                            self.attrs(&mut rec.attributes);
                        }
                    }
                }
                ExportItem::Logs(Arc::new(r))
            }
            ExportItem::Metrics(r) => {
                use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                let mut r = Arc::unwrap_or_clone(r);
                for rm in &mut r.resource_metrics {
                    self.resource(&mut rm.resource);
                    for sm in &mut rm.scope_metrics {
                        for m in &mut sm.metrics {
                            match &mut m.data {
                                Some(Data::Sum(d)) => d
                                    .data_points
                                    .iter_mut()
                                    .for_each(|p| self.attrs(&mut p.attributes)),
                                Some(Data::Gauge(d)) => d
                                    .data_points
                                    .iter_mut()
                                    .for_each(|p| self.attrs(&mut p.attributes)),
                                Some(Data::Histogram(d)) => d
                                    .data_points
                                    .iter_mut()
                                    .for_each(|p| self.attrs(&mut p.attributes)),
                                Some(Data::ExponentialHistogram(d)) => d
                                    .data_points
                                    .iter_mut()
                                    .for_each(|p| self.attrs(&mut p.attributes)),
                                Some(Data::Summary(d)) => d
                                    .data_points
                                    .iter_mut()
                                    .for_each(|p| self.attrs(&mut p.attributes)),
                                None => {}
                            }
                        }
                    }
                }
                ExportItem::Metrics(Arc::new(r))
            }
        }
    }

    fn traces(&self, r: &mut ExportTraceServiceRequest) {
        for rs in &mut r.resource_spans {
            self.resource(&mut rs.resource);
            for ss in &mut rs.scope_spans {
                for span in &mut ss.spans {
                    self.attrs(&mut span.attributes);
                    for ev in &mut span.events {
                        self.attrs(&mut ev.attributes);
                    }
                    if self.content != ContentPolicy::Keep {
                        if let Some(st) = &mut span.status {
                            if !st.message.is_empty() {
                                st.message = MASK.into();
                            }
                        }
                    }
                }
            }
        }
    }
}

fn get<'a>(span: &'a Span, key: &str) -> Option<&'a V> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn as_json(v: &V) -> Value {
    match v {
        V::StringValue(s) => Value::String(s.clone()),
        V::BoolValue(b) => Value::Bool(*b),
        V::IntValue(i) => Value::from(*i),
        V::DoubleValue(d) => Value::from(*d),
        V::ArrayValue(a) => Value::Array(
            a.values
                .iter()
                .filter_map(|v| v.value.as_ref().map(as_json))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A string attribute holding JSON, parsed; plain text stays a string.
fn json_or_text(v: Option<&V>) -> Option<Value> {
    match v? {
        V::StringValue(s) => {
            Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())))
        }
        other => Some(as_json(other)),
    }
}

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(V::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// Rewrites merged spans into what Braintrust's OTLP intake reads: span type
/// (task for session and turn, llm, tool), input and output as JSON, the rest
/// as metadata, and token metrics on LLM spans only — Braintrust adds cost up
/// over a trace, so totals on parents would count twice (they stay metadata).
pub fn braintrust_shape(r: &mut ExportTraceServiceRequest, parent: &str) {
    for rs in &mut r.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                let (kind, name, input, output) = match span.name.as_str() {
                    "claude_code.session" => {
                        let cwd = get(span, "cwd").map(as_json);
                        let dir = cwd
                            .as_ref()
                            .and_then(Value::as_str)
                            .and_then(|c| c.rsplit('/').find(|p| !p.is_empty()))
                            .unwrap_or("session")
                            .to_string();
                        (
                            "task",
                            format!("Claude Code: {dir}"),
                            json_or_text(get(span, "user_prompt")),
                            json_or_text(get(span, "last_assistant_message")),
                        )
                    }
                    "claude_code.interaction" => {
                        let n = get(span, "interaction.sequence")
                            .map(as_json)
                            .unwrap_or(Value::Null);
                        (
                            "task",
                            format!("Turn {n}"),
                            get(span, "user_prompt").map(as_json),
                            get(span, "last_assistant_message").map(as_json),
                        )
                    }
                    "claude_code.llm_request" => (
                        "llm",
                        get(span, "model")
                            .map(as_json)
                            .and_then(|m| m.as_str().map(str::to_string))
                            .unwrap_or_else(|| "model call".into()),
                        json_or_text(get(span, "gen_ai.input.messages")),
                        json_or_text(get(span, "gen_ai.output.messages")),
                    ),
                    other => (
                        "tool",
                        get(span, "tool_name")
                            .map(as_json)
                            .and_then(|m| m.as_str().map(str::to_string))
                            .unwrap_or_else(|| {
                                other.trim_start_matches("claude_code.").to_string()
                            }),
                        json_or_text(get(span, "gen_ai.tool.call.arguments")),
                        json_or_text(get(span, "gen_ai.tool.call.result").or(get(span, "error"))),
                    ),
                };
                let mut metadata = Map::new();
                let mut metrics = Map::new();
                const MOVED: &[&str] = &[
                    "user_prompt",
                    "last_assistant_message",
                    "gen_ai.input.messages",
                    "gen_ai.output.messages",
                    "gen_ai.tool.call.arguments",
                    "gen_ai.tool.call.result",
                ];
                for a in &span.attributes {
                    let Some(v) = a.value.as_ref().and_then(|v| v.value.as_ref()) else {
                        continue;
                    };
                    if MOVED.contains(&a.key.as_str()) || a.key.starts_with("gen_ai.usage.") {
                        continue;
                    }
                    metadata.insert(a.key.clone(), as_json(v));
                }
                if kind == "llm" {
                    let n = |k: &str| metadata.get(k).and_then(Value::as_i64).unwrap_or(0);
                    let (input, out, read, create) = (
                        n("input_tokens"),
                        n("output_tokens"),
                        n("cache_read_tokens"),
                        n("cache_creation_tokens"),
                    );
                    let prompt = input + read + create;
                    metrics.insert("prompt_tokens".into(), prompt.into());
                    metrics.insert("completion_tokens".into(), out.into());
                    metrics.insert("tokens".into(), (prompt + out).into());
                    metrics.insert("prompt_cached_tokens".into(), read.into());
                    metrics.insert("prompt_cache_creation_tokens".into(), create.into());
                    if let Some(t) = metadata.get("ttft_ms").and_then(Value::as_f64) {
                        metrics.insert("time_to_first_token".into(), (t / 1000.0).into());
                    }
                    for k in [
                        "input_tokens",
                        "output_tokens",
                        "cache_read_tokens",
                        "cache_creation_tokens",
                    ] {
                        metadata.remove(k);
                    }
                }
                let mut attrs = vec![
                    kv(
                        "braintrust.span_attributes",
                        serde_json::json!({"type": kind, "name": name}).to_string(),
                    ),
                    kv("braintrust.metadata", Value::Object(metadata).to_string()),
                    kv("braintrust.parent", parent.to_string()),
                ];
                if let Some(i) = input {
                    attrs.push(kv("braintrust.input_json", i.to_string()));
                }
                if let Some(o) = output {
                    attrs.push(kv("braintrust.output_json", o.to_string()));
                }
                if !metrics.is_empty() {
                    attrs.push(kv("braintrust.metrics", Value::Object(metrics).to_string()));
                }
                span.attributes = attrs;
            }
        }
    }
}
