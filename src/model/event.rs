//! The one internal event type. Every receiver (gRPC, OTLP/HTTP, hooks, the
//! transcript import) turns its input into an [`Event`] and sends it on one
//! bounded channel, so the merge engine sees a single ordered stream.

use super::hook::HookEvent;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The three OTLP signals. Exporters select any subset of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// ccotel's merged session traces.
    Traces,
    Metrics,
    Logs,
    /// Claude Code's own beta spans, forwarded unchanged (one trace per prompt).
    NativeTraces,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::NativeTraces => "native_traces",
        }
    }
}

/// Where an event came in. Kept for diagnostics and for source precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
    HookHttp,
    HookCommand,
    Import,
}

/// What arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Hook(HookEvent),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Traces(ExportTraceServiceRequest),
}

/// One accepted input with its arrival time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix nanoseconds at which ccotel accepted the input.
    pub received_at: u64,
    pub transport: Transport,
    pub payload: Payload,
}

impl Event {
    pub fn now(transport: Transport, payload: Payload) -> Event {
        Event {
            received_at: unix_nanos(SystemTime::now()),
            transport,
            payload,
        }
    }
}

/// Unix nanoseconds of a system time, saturating at zero before the epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
