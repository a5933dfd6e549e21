//! A fake OTLP backend on a real port: records every export it gets, over
//! OTLP/HTTP (protobuf or JSON) and OTLP/gRPC, and can be told to hang or fail.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
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
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// How the backend answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Ok,
    /// Accept the request, never answer.
    Hang,
    /// Answer with this HTTP status.
    Status(u16),
    /// Answer 413 to bodies over this many bytes, take the others.
    MaxBody(usize),
}

/// Everything the backend received, decoded.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub requests: usize,
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub headers: Vec<HeaderMap>,
}

/// Scripted answers: (status, Retry-After).
pub type Script = std::collections::VecDeque<(u16, Option<String>)>;

#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Received>>,
    pub mode: Arc<Mutex<Mode>>,
    /// Answers to give first, in order: (status, Retry-After).
    pub script: Arc<Mutex<Script>>,
    /// When each request arrived, scripted ones included.
    pub arrivals: Arc<Mutex<Vec<std::time::Instant>>>,
}

impl Backend {
    /// Starts an OTLP/HTTP backend.
    pub async fn http(mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Backend::http_on(listener, mode)
    }

    /// Starts an OTLP/HTTP backend on a given listener (a port that was down).
    pub fn http_on(listener: TcpListener, mode: Mode) -> Backend {
        let backend = Backend {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            script: Arc::default(),
            arrivals: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/traces", post(http_export))
            .route("/v1/metrics", post(http_export))
            .route("/v1/logs", post(http_export))
            .with_state(backend.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        backend
    }

    /// Starts an OTLP/gRPC backend.
    pub async fn grpc() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            script: Arc::default(),
            arrivals: Arc::default(),
        };
        let svc = GrpcSink(backend.clone());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogsServiceServer::new(svc.clone()))
                .add_service(MetricsServiceServer::new(svc.clone()))
                .add_service(TraceServiceServer::new(svc))
                .serve_with_incoming(incoming),
        );
        backend
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Received {
        self.got.lock().unwrap().clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

async fn http_export(
    State(backend): State<Backend>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    backend
        .arrivals
        .lock()
        .unwrap()
        .push(std::time::Instant::now());
    let scripted = backend.script.lock().unwrap().pop_front();
    if let Some((code, retry_after)) = scripted {
        let mut r = (StatusCode::from_u16(code).unwrap(), "scripted answer").into_response();
        if let Some(v) = retry_after {
            r.headers_mut().insert("retry-after", v.parse().unwrap());
        }
        return r;
    }
    let mode = *backend.mode.lock().unwrap();
    match mode {
        Mode::Hang => {
            std::future::pending::<()>().await;
        }
        Mode::Status(code) => {
            return (StatusCode::from_u16(code).unwrap(), "backend says no").into_response();
        }
        Mode::MaxBody(limit) if body.len() > limit => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response();
        }
        Mode::Ok | Mode::MaxBody(_) => {}
    }
    let body = if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        Bytes::from(out)
    } else {
        body
    };
    let json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut got = backend.got.lock().unwrap();
    got.requests += 1;
    got.headers.push(headers.clone());
    macro_rules! decode {
        ($ty:ty) => {
            if json {
                serde_json::from_slice::<$ty>(&body).expect("backend got invalid OTLP/JSON")
            } else {
                <$ty>::decode(&body[..]).expect("backend got invalid OTLP protobuf")
            }
        };
    }
    match uri.path() {
        "/v1/traces" => got.traces.push(decode!(ExportTraceServiceRequest)),
        "/v1/metrics" => got.metrics.push(decode!(ExportMetricsServiceRequest)),
        _ => got.logs.push(decode!(ExportLogsServiceRequest)),
    }
    if json {
        (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
    } else {
        (
            StatusCode::OK,
            [("content-type", "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    }
}

#[derive(Clone)]
struct GrpcSink(Backend);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.got.lock().unwrap();
        got.requests += 1;
        got.traces.push(r.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcSink {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut got = self.0.got.lock().unwrap();
        got.requests += 1;
        got.metrics.push(r.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcSink {
    async fn export(
        &self,
        r: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut got = self.0.got.lock().unwrap();
        got.requests += 1;
        got.logs.push(r.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}
