//! Splitting an input by session: one OTLP request can carry records of
//! several sessions, and each record lands in its own session's facts.

use super::attrs::Attrs;
use super::session::Session;
use crate::model::{Event, HookEvent, Payload};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{number_data_point, NumberDataPoint};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::BTreeSet;

/// Metrics whose points are kept to cross-check session totals.
const KEPT_METRICS: &[&str] = &["claude_code.cost.usage", "claude_code.token.usage"];

/// The session a record belongs to: its `session.id` attribute.
fn session_id(attrs: &[KeyValue]) -> Option<&str> {
    Attrs::new(attrs).text("session.id")
}

/// One part of an input that belongs to one session.
pub enum Part<'a> {
    Hook(&'a HookEvent),
    Log(&'a LogRecord, &'a [KeyValue]),
    Span(&'a Span, &'a [KeyValue]),
    Metric(&'a str, &'a NumberDataPoint),
}

/// Calls `f` with each part of `event` and the session it belongs to, in one
/// pass over the input (records without a session are skipped).
pub fn parts<'a>(event: &'a Event, mut f: impl FnMut(&'a str, Part<'a>)) {
    match &event.payload {
        Payload::Hook(h) => f(&h.session_id, Part::Hook(h)),
        Payload::Logs(r) => {
            for rl in &r.resource_logs {
                let resource = rl
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    for rec in &sl.log_records {
                        if let Some(sid) = session_id(&rec.attributes) {
                            f(sid, Part::Log(rec, resource));
                        }
                    }
                }
            }
        }
        Payload::Traces(r) => {
            for rs in &r.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        if let Some(sid) = session_id(&span.attributes) {
                            f(sid, Part::Span(span, resource));
                        }
                    }
                }
            }
        }
        Payload::Metrics(r) => {
            for rm in &r.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in sm
                        .metrics
                        .iter()
                        .filter(|m| KEPT_METRICS.contains(&m.name.as_str()))
                    {
                        let Some(Data::Sum(sum)) = &m.data else {
                            continue;
                        };
                        for p in &sum.data_points {
                            if let Some(sid) = session_id(&p.attributes) {
                                f(sid, Part::Metric(&m.name, p));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The sessions an event touches (records without a session are ignored).
pub fn sessions_of(event: &Event) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut last: Option<&str> = None;
    parts(event, |sid, _| {
        if last != Some(sid) {
            last = Some(sid);
            if !out.contains(sid) {
                out.insert(sid.to_string());
            }
        }
    });
    out
}

/// Applies one part to its session's facts.
pub fn apply_part(session: &mut Session, part: Part<'_>, received_at: u64) {
    match part {
        Part::Hook(h) => session.apply_hook(h, received_at),
        Part::Log(rec, resource) => session.apply_log(rec, resource),
        Part::Span(span, resource) => session.apply_span(span, resource),
        Part::Metric(name, p) => {
            let v = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => return,
            };
            session.apply_metric_point(name, &p.attributes, p.time_unix_nano, v);
        }
    }
}

/// Applies the parts of `event` that belong to `session`.
pub fn apply(session: &mut Session, event: &Event) {
    let sid = session.id.clone();
    parts(event, |s, part| {
        if s == sid {
            apply_part(session, part, event.received_at);
        }
    });
}
