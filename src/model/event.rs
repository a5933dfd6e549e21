//! The one internal event type. Every receiver (gRPC, OTLP/HTTP, hooks, the
//! transcript import) turns its input into an [`Event`] and sends it on one
//! bounded channel, so the merge engine sees a single ordered stream.

use super::hook::HookEvent;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;
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
    /// The payload's encoding, when it is known to be exactly `payload`: the
    /// protobuf of an OTLP request (as received, or encoded once), or the
    /// JSON body of a hook as received. Forwarding, the exporter queues and
    /// the write-ahead store share these bytes instead of encoding the input
    /// again; whoever changes `payload` clears it.
    pub wire: Option<Bytes>,
}

impl Event {
    pub fn now(transport: Transport, payload: Payload) -> Event {
        Event {
            received_at: unix_nanos(SystemTime::now()),
            transport,
            payload,
            wire: None,
        }
    }

    /// Attaches the bytes `payload` was decoded from, unchanged.
    pub fn with_wire(mut self, wire: Bytes) -> Event {
        self.wire = Some(wire);
        self
    }

    /// The protobuf encoding of an OTLP payload, encoding it only if it is
    /// not known yet; `None` for hook events.
    pub fn encoded(&mut self) -> Option<Bytes> {
        let body = match &self.payload {
            Payload::Hook(_) => return None,
            _ if self.wire.is_some() => return self.wire.clone(),
            Payload::Logs(r) => r.encode_to_vec(),
            Payload::Metrics(r) => r.encode_to_vec(),
            Payload::Traces(r) => r.encode_to_vec(),
        };
        let body = Bytes::from(body);
        self.wire = Some(body.clone());
        Some(body)
    }
}

/// Unix nanoseconds of a system time, saturating at zero before the epoch.
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
