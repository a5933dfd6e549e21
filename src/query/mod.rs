//! The query API (`proto/ccotel/v1/query.proto`): served on the gRPC port by
//! `ccotel serve`, and used by the CLI, which reads either the local store or
//! a remote ccotel through the same interface.

pub mod server;
pub mod source;

/// Types and stubs generated from `proto/ccotel/v1/query.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ccotel.v1");
}

use crate::model::span::{SpanRecord, SpanStatus};

/// A span record on the wire.
pub fn span_to_pb(session: &str, s: &SpanRecord) -> pb::Span {
    let (status, message) = match &s.status {
        SpanStatus::Unset => ("unset", String::new()),
        SpanStatus::Ok => ("ok", String::new()),
        SpanStatus::Error(m) => ("error", m.clone()),
    };
    pb::Span {
        session_id: session.to_string(),
        trace_id: hex::encode(s.trace_id),
        span_id: hex::encode(s.span_id),
        parent_span_id: s.parent_span_id.map(hex::encode).unwrap_or_default(),
        name: s.name.clone(),
        kind: crate::store::kind_name(s.kind).to_string(),
        start_unix_nano: s.start_ns as i64,
        end_unix_nano: s.end_ns as i64,
        status: status.to_string(),
        status_message: message,
        attributes_json: serde_json::to_string(&s.attributes).unwrap_or_else(|_| "{}".into()),
    }
}

/// A span from the wire, back as a record.
pub fn span_from_pb(p: &pb::Span) -> Option<SpanRecord> {
    use crate::model::span::SpanKind;
    let mut trace_id = [0u8; 16];
    hex::decode_to_slice(&p.trace_id, &mut trace_id).ok()?;
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(&p.span_id, &mut span_id).ok()?;
    let parent_span_id = if p.parent_span_id.is_empty() {
        None
    } else {
        let mut id = [0u8; 8];
        hex::decode_to_slice(&p.parent_span_id, &mut id).ok()?;
        Some(id)
    };
    Some(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        kind: match p.kind.as_str() {
            "session" => SpanKind::Session,
            "turn" => SpanKind::Turn,
            "llm" => SpanKind::Llm,
            _ => SpanKind::Tool,
        },
        name: p.name.clone(),
        start_ns: p.start_unix_nano as u64,
        end_ns: p.end_unix_nano as u64,
        attributes: serde_json::from_str(&p.attributes_json).unwrap_or_default(),
        status: match p.status.as_str() {
            "error" => SpanStatus::Error(p.status_message.clone()),
            "ok" => SpanStatus::Ok,
            _ => SpanStatus::Unset,
        },
    })
}
