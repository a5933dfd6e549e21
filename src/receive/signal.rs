//! What the gRPC and HTTP receivers share about each OTLP signal: how to count
//! and validate a request, how to answer it, and which counters it moves.

use super::validate::{self, Rejected};
use crate::model::Payload;
use crate::telemetry::Stats;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::AtomicU64;

/// One OTLP export request type.
pub trait OtlpRequest: prost::Message + Default + DeserializeOwned + Sized + 'static {
    type Response: prost::Message + Serialize + Default;
    /// Records (log records, data points, spans) in the request.
    fn records(&self) -> u64;
    /// Removes records that cannot be used, reporting how many.
    fn validate(&mut self) -> Rejected;
    fn response(rejected: Rejected) -> Self::Response;
    fn into_payload(self) -> Payload;
    fn counters(stats: &Stats) -> (&AtomicU64, &AtomicU64);
}

impl OtlpRequest for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    fn records(&self) -> u64 {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum()
    }
    fn validate(&mut self) -> Rejected {
        validate::logs(self)
    }
    fn response(rejected: Rejected) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected.count,
                error_message: rejected.message,
            }),
        }
    }
    fn into_payload(self) -> Payload {
        Payload::Logs(self)
    }
    fn counters(stats: &Stats) -> (&AtomicU64, &AtomicU64) {
        (&stats.log_requests, &stats.log_records)
    }
}

impl OtlpRequest for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    fn records(&self) -> u64 {
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Sum(d)) => d.data_points.len(),
                Some(Data::Gauge(d)) => d.data_points.len(),
                Some(Data::Histogram(d)) => d.data_points.len(),
                Some(Data::ExponentialHistogram(d)) => d.data_points.len(),
                Some(Data::Summary(d)) => d.data_points.len(),
                None => 0,
            } as u64)
            .sum()
    }
    fn validate(&mut self) -> Rejected {
        Rejected::default()
    }
    fn response(rejected: Rejected) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected.count,
                error_message: rejected.message,
            }),
        }
    }
    fn into_payload(self) -> Payload {
        Payload::Metrics(self)
    }
    fn counters(stats: &Stats) -> (&AtomicU64, &AtomicU64) {
        (&stats.metric_requests, &stats.metric_points)
    }
}

impl OtlpRequest for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    fn records(&self) -> u64 {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum()
    }
    fn validate(&mut self) -> Rejected {
        validate::spans(self)
    }
    fn response(rejected: Rejected) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected.count,
                error_message: rejected.message,
            }),
        }
    }
    fn into_payload(self) -> Payload {
        Payload::Traces(self)
    }
    fn counters(stats: &Stats) -> (&AtomicU64, &AtomicU64) {
        (&stats.trace_requests, &stats.native_spans)
    }
}
