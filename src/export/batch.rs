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
}

impl Batch {
    /// The OTLP/HTTP path for this batch.
    pub fn path(&self) -> &'static str {
        match self {
            Batch::Traces(_) => "/v1/traces",
            Batch::Metrics(_) => "/v1/metrics",
            Batch::Logs(_) => "/v1/logs",
        }
    }
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
