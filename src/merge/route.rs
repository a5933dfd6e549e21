//! Splitting an input by session: one OTLP request can carry records of
//! several sessions, and each record lands in its own session's facts.

use super::attrs::Attrs;
use super::session::Session;
use crate::model::{Event, Payload};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use std::collections::BTreeSet;

/// Metrics whose points are kept to cross-check session totals.
const KEPT_METRICS: &[&str] = &["claude_code.cost.usage", "claude_code.token.usage"];

/// The sessions an event touches (records without a session are ignored).
pub fn sessions_of(event: &Event) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match &event.payload {
        Payload::Hook(h) => {
            out.insert(h.session_id.clone());
        }
        Payload::Logs(r) => {
            for rl in &r.resource_logs {
                for sl in &rl.scope_logs {
                    for rec in &sl.log_records {
                        if let Some(s) = Attrs::new(&rec.attributes).text("session.id") {
                            out.insert(s.to_string());
                        }
                    }
                }
            }
        }
        Payload::Traces(r) => {
            for rs in &r.resource_spans {
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        if let Some(s) = Attrs::new(&span.attributes).text("session.id") {
                            out.insert(s.to_string());
                        }
                    }
                }
            }
        }
        Payload::Metrics(r) => {
            for rm in &r.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        if !KEPT_METRICS.contains(&m.name.as_str()) {
                            continue;
                        }
                        if let Some(Data::Sum(sum)) = &m.data {
                            for p in &sum.data_points {
                                if let Some(s) = Attrs::new(&p.attributes).text("session.id") {
                                    out.insert(s.to_string());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Applies the parts of `event` that belong to `session`.
pub fn apply(session: &mut Session, event: &Event) {
    let sid = session.id.clone();
    let mine = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        Attrs::new(attrs).text("session.id") == Some(sid.as_str())
    };
    match &event.payload {
        Payload::Hook(h) => {
            if h.session_id == sid {
                session.apply_hook(h, event.received_at);
            }
        }
        Payload::Logs(r) => {
            for rl in &r.resource_logs {
                let resource = rl
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    for rec in sl.log_records.iter().filter(|r| mine(&r.attributes)) {
                        session.apply_log(rec, resource);
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
                    for span in ss.spans.iter().filter(|s| mine(&s.attributes)) {
                        session.apply_span(span, resource);
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
                        for p in sum.data_points.iter().filter(|p| mine(&p.attributes)) {
                            let v = match p.value {
                                Some(number_data_point::Value::AsDouble(d)) => d,
                                Some(number_data_point::Value::AsInt(i)) => i as f64,
                                None => continue,
                            };
                            session.apply_metric_point(&m.name, &p.attributes, p.time_unix_nano, v);
                        }
                    }
                }
            }
        }
    }
}
