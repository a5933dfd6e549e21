//! Per-record checks that decide OTLP `partial_success`: a record whose ids
//! have the wrong length cannot be correlated or re-exported, so it is dropped,
//! counted and reported back, while the rest of the request is accepted.

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest,
};

/// What was rejected from one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub count: i64,
    pub message: String,
}

fn id_ok(id: &[u8], len: usize, optional: bool) -> bool {
    (optional && id.is_empty()) || (id.len() == len && id.iter().any(|b| *b != 0))
}

/// Drops spans without a valid 16-byte trace id and 8-byte span id.
pub fn spans(req: &mut ExportTraceServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(|s| {
                id_ok(&s.trace_id, 16, false)
                    && id_ok(&s.span_id, 8, false)
                    && id_ok(&s.parent_span_id, 8, true)
            });
            rejected.count += (before - ss.spans.len()) as i64;
        }
    }
    if rejected.count > 0 {
        rejected.message = format!(
            "{} span(s) rejected: trace_id must be 16 bytes, span_id and parent_span_id 8 bytes, not all zero",
            rejected.count
        );
    }
    rejected
}

/// Drops log records whose trace context, when present, has the wrong length.
pub fn logs(req: &mut ExportLogsServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            let before = sl.log_records.len();
            sl.log_records
                .retain(|r| id_ok(&r.trace_id, 16, true) && id_ok(&r.span_id, 8, true));
            rejected.count += (before - sl.log_records.len()) as i64;
        }
    }
    if rejected.count > 0 {
        rejected.message = format!(
            "{} log record(s) rejected: trace_id must be empty or 16 bytes, span_id empty or 8 bytes",
            rejected.count
        );
    }
    rejected
}
