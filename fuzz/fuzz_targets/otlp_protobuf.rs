//! OTLP protobuf bodies, as the HTTP and gRPC receivers decode them, then
//! through validation and the merge engine.
#![no_main]
use ccotel::receive::decode::{self, Encoding};
use ccotel::receive::signal::OtlpRequest;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};

fn feed<T: OtlpRequest>(data: &[u8]) {
    if let Ok(mut req) = decode::decode::<T>(data, Encoding::Protobuf) {
        req.validate();
        let _ = req.records();
        let event = ccotel::model::Event::now(ccotel::model::Transport::Grpc, req.into_payload());
        let mut engine = ccotel::merge::Engine::new(Default::default(), None);
        engine.ingest(std::slice::from_ref(&event));
        let _ = engine.tick(u64::MAX / 2, true);
    }
}

fuzz_target!(|data: &[u8]| {
    let (kind, body) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    match kind % 3 {
        0 => feed::<ExportLogsServiceRequest>(body),
        1 => feed::<ExportMetricsServiceRequest>(body),
        _ => feed::<ExportTraceServiceRequest>(body),
    }
    let _ = decode::gunzip(body, 1 << 20);
});
