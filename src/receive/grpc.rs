//! OTLP/gRPC for logs, metrics and traces. Decode, validate, count, hand to the
//! merge engine; a full queue answers `UNAVAILABLE` so the client backs off.

use super::signal::OtlpRequest;
use super::{held_bytes, Ingest};
use crate::model::Event;
use crate::model::Transport;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{
        logs_service_server::{LogsService, LogsServiceServer},
        ExportLogsServiceRequest, ExportLogsServiceResponse,
    },
    metrics::v1::{
        metrics_service_server::{MetricsService, MetricsServiceServer},
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
};
use std::future::Future;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The three OTLP services over one [`Ingest`].
#[derive(Clone)]
pub struct OtlpGrpc {
    ingest: Ingest,
}

impl OtlpGrpc {
    pub fn new(ingest: Ingest) -> OtlpGrpc {
        OtlpGrpc { ingest }
    }

    fn accept<T: OtlpRequest>(&self, mut request: T) -> Result<T::Response, Status> {
        let stats = &self.ingest.stats;
        let rejected = request.validate();
        stats.add(&stats.rejected_records, rejected.count as u64);
        let records = request.records();
        let size = held_bytes(request.encoded_len(), 0);
        self.ingest
            .submit(Event::now(Transport::Grpc, request.into_payload()), size)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let (requests, items) = T::counters(stats);
        stats.inc(requests);
        stats.add(items, records);
        Ok(T::response(rejected))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.accept(request.into_inner()).map(Response::new)
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.accept(request.into_inner()).map(Response::new)
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.accept(request.into_inner()).map(Response::new)
    }
}

/// Access and transport security of the gRPC port.
#[derive(Default)]
pub struct GrpcOptions {
    pub auth: super::auth::Auth,
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

/// Serves OTLP/gRPC on an already-bound listener until `shutdown` resolves.
/// TCP_NODELAY is set on every accepted connection: without it, small
/// responses on concurrent streams wait for delayed ACKs (tens of ms at p99).
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    max_body: usize,
    routes: tonic::service::Routes,
    options: GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Refused before the request is decoded when the buffer is full.
    let room = {
        let ingest = ingest.clone();
        move |request: Request<()>| match ingest.expect_room() {
            Ok(()) => Ok(request),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    };
    let svc = OtlpGrpc::new(ingest);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .layer(tonic::service::InterceptorLayer::new(
            options.auth.interceptor(),
        ))
        .add_routes(routes)
        .add_service(InterceptedService::new(
            LogsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_body),
            room.clone(),
        ))
        .add_service(InterceptedService::new(
            MetricsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_body),
            room.clone(),
        ))
        .add_service(InterceptedService::new(
            TraceServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_body),
            room.clone(),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
