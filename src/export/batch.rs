//! What exporters carry, and how items of one signal are joined into one
//! request. Joining only concatenates the resource lists, so every record keeps
//! its resource and scope exactly as they arrived.

use crate::model::Signal;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use std::sync::Arc;

/// One unit of work for an exporter. Shared between exporters, never copied
/// until a batch is built.
#[derive(Debug, Clone)]
pub enum ExportItem {
    /// Merged session spans.
    Traces(Arc<ExportTraceServiceRequest>),
    /// Claude Code's own beta spans, unchanged.
    NativeTraces(Arc<ExportTraceServiceRequest>),
    Metrics(Arc<ExportMetricsServiceRequest>),
    Logs(Arc<ExportLogsServiceRequest>),
}

impl ExportItem {
    pub fn signal(&self) -> Signal {
        match self {
            ExportItem::Traces(_) => Signal::Traces,
            ExportItem::NativeTraces(_) => Signal::NativeTraces,
            ExportItem::Metrics(_) => Signal::Metrics,
            ExportItem::Logs(_) => Signal::Logs,
        }
    }

    /// Records in the item: spans, data points or log records.
    pub fn records(&self) -> u64 {
        use crate::receive::signal::OtlpRequest;
        match self {
            ExportItem::Traces(r) | ExportItem::NativeTraces(r) => r.records(),
            ExportItem::Metrics(r) => r.records(),
            ExportItem::Logs(r) => r.records(),
        }
    }
}

/// One request per signal, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    /// A request already in protobuf form (`signal` is traces, metrics or
    /// logs): sent as is over OTLP/HTTP protobuf, decoded for other protocols.
    Encoded {
        signal: Signal,
        body: Vec<u8>,
    },
}

impl Batch {
    /// Traces, metrics or logs.
    pub fn signal(&self) -> Signal {
        match self {
            Batch::Traces(_) => Signal::Traces,
            Batch::Metrics(_) => Signal::Metrics,
            Batch::Logs(_) => Signal::Logs,
            Batch::Encoded { signal, .. } => *signal,
        }
    }

    /// The OTLP/HTTP path for this batch.
    pub fn path(&self) -> &'static str {
        match self.signal() {
            Signal::Traces | Signal::NativeTraces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }

    /// The typed request (decoding an encoded batch); `None` if the bytes do
    /// not decode.
    pub fn decoded(self) -> Option<Batch> {
        use prost::Message;
        let Batch::Encoded { signal, body } = self else {
            return Some(self);
        };
        let b = &body[..];
        Some(match signal {
            Signal::Traces | Signal::NativeTraces => {
                Batch::Traces(ExportTraceServiceRequest::decode(b).ok()?)
            }
            Signal::Metrics => Batch::Metrics(ExportMetricsServiceRequest::decode(b).ok()?),
            Signal::Logs => Batch::Logs(ExportLogsServiceRequest::decode(b).ok()?),
        })
    }
}

/// Joins encoded items into at most one batch per signal, in first-seen
/// order, without decoding them: protobuf's encoding of a message with a
/// repeated field is the concatenation of the encodings of its parts, so
/// the joined bytes are exactly the request [`join`] would build.
pub fn concat(items: &[super::queue::Encoded]) -> Vec<(Batch, u64)> {
    let mut out: Vec<(Batch, u64)> = Vec::new();
    for item in items {
        let key = match item.signal {
            Signal::NativeTraces => Signal::Traces,
            s => s,
        };
        let slot = match out.iter().position(|(b, _)| b.signal() == key) {
            Some(i) => i,
            None => {
                out.push((
                    Batch::Encoded {
                        signal: key,
                        body: Vec::new(),
                    },
                    0,
                ));
                out.len() - 1
            }
        };
        let (batch, records) = &mut out[slot];
        if let Batch::Encoded { body, .. } = batch {
            body.extend_from_slice(&item.body);
        }
        *records += item.records;
    }
    out
}

/// Joins items into at most one batch per signal, in first-seen order. Merged
/// and native spans go to the same traces request.
pub fn join(items: &[ExportItem]) -> Vec<(Batch, u64)> {
    let mut traces = ExportTraceServiceRequest::default();
    let mut metrics = ExportMetricsServiceRequest::default();
    let mut logs = ExportLogsServiceRequest::default();
    let (mut nt, mut nm, mut nl) = (0u64, 0u64, 0u64);
    let mut order: Vec<Signal> = Vec::new();
    for item in items {
        let key = match item.signal() {
            Signal::NativeTraces => Signal::Traces,
            s => s,
        };
        if !order.contains(&key) {
            order.push(key);
        }
        match item {
            ExportItem::Traces(r) | ExportItem::NativeTraces(r) => {
                traces
                    .resource_spans
                    .extend(r.resource_spans.iter().cloned());
                nt += item.records();
            }
            ExportItem::Metrics(r) => {
                metrics
                    .resource_metrics
                    .extend(r.resource_metrics.iter().cloned());
                nm += item.records();
            }
            ExportItem::Logs(r) => {
                logs.resource_logs.extend(r.resource_logs.iter().cloned());
                nl += item.records();
            }
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for signal in order {
        match signal {
            Signal::Traces => out.push((Batch::Traces(std::mem::take(&mut traces)), nt)),
            Signal::Metrics => out.push((Batch::Metrics(std::mem::take(&mut metrics)), nm)),
            Signal::Logs => out.push((Batch::Logs(std::mem::take(&mut logs)), nl)),
            Signal::NativeTraces => {}
        }
    }
    out
}
