//! OTLP/HTTP (`/v1/logs`, `/v1/metrics`, `/v1/traces`) and hook events
//! (`/v1/hooks`) on one port, answered the way the OTLP spec says: 200 with an
//! Export*ServiceResponse, 400 for bodies that don't decode, 413 above the size
//! limit, 415 for unknown content types, and 503 when ccotel is full.

use super::decode::{self, DecodeError, Encoding};
use super::signal::OtlpRequest;
use super::{held_bytes, Full, Ingest, Input};
use crate::model::event::unix_nanos;
use crate::model::{Event, HookEvent, Transport};
use crate::telemetry::Registry;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Marks hook events forwarded by the command hook (`ccotel-hook` or `ccotel
/// hook`) rather than sent by Claude Code's own HTTP hooks.
pub const TRANSPORT_HEADER: &str = "x-ccotel-transport";

/// Shared by every HTTP handler.
#[derive(Clone)]
pub struct HttpState {
    pub ingest: Ingest,
    pub max_body: usize,
    pub registry: Arc<Registry>,
    pub auth: super::auth::Auth,
}

/// The HTTP routes.
pub fn router(state: HttpState) -> Router {
    // One reference count per request, not one per field per extractor.
    let state = Arc::new(state);
    let guarded = Router::new()
        .route("/v1/logs", post(otlp::<ExportLogsServiceRequest>))
        .route("/v1/metrics", post(otlp::<ExportMetricsServiceRequest>))
        .route("/v1/traces", post(otlp::<ExportTraceServiceRequest>))
        .route("/v1/hooks", post(hook))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .merge(guarded)
        .route("/healthz", get(health))
        .fallback(not_found)
        .with_state(state)
}

/// Refuses requests without the configured token (`/healthz` stays open for
/// probes and holds no data).
async fn require_token(
    State(state): State<Arc<HttpState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if state.auth.check(header) {
        return next.run(request).await;
    }
    state.ingest.stats.inc(&state.ingest.stats.unauthorized);
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({ "code": tonic::Code::Unauthenticated as i32, "message": super::auth::REFUSED }).to_string(),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Serves HTTP on an already-bound listener until `shutdown` resolves, then
/// finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, state, None, shutdown).await
}

/// As [`serve`], over TLS when a server config is given.
pub async fn serve_tls(
    listener: TcpListener,
    state: HttpState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    match tls {
        Some(config) => {
            let listener = super::tls::TlsListener::new(listener, config)?;
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn health(State(state): State<Arc<HttpState>>) -> Response {
    json_response(StatusCode::OK, state.registry.snapshot().to_string())
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.registry.prometheus(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        None,
        StatusCode::NOT_FOUND,
        "not found; ccotel serves POST /v1/logs, /v1/metrics, /v1/traces, /v1/hooks, GET /healthz and GET /metrics",
    )
}

async fn otlp<T: OtlpRequest>(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let stats = &state.ingest.stats;
    let encoding = match decode::encoding_of(&headers) {
        Ok(e) => e,
        Err(e) => return refuse(&state, None, e),
    };
    let raw = match read_body(body, state.max_body).await {
        Ok(b) => b,
        Err(e) => return refuse(&state, Some(encoding), e),
    };
    let read_buffer = raw.as_ptr();
    let bytes = match decode::inflate(&headers, raw, state.max_body) {
        Ok(b) => b,
        Err(e) => return refuse(&state, Some(encoding), e),
    };
    // Room for the decoded request and the protobuf body kept with it,
    // estimated from the body: a JSON body is 1.5-2.1x the request's
    // protobuf (measured on Claude Code's requests), and is not kept.
    let held = match encoding {
        Encoding::Protobuf => held_bytes(bytes.len(), bytes.len()),
        Encoding::Json => held_bytes(bytes.len() / 2, 0),
    };
    let room = match state.ingest.room(held) {
        Ok(room) => room,
        Err(Full) => return unavailable(Some(encoding)),
    };
    let mut request: T = match decode::decode(&bytes, encoding) {
        Ok(r) => r,
        Err(e) => return refuse(&state, Some(encoding), e),
    };
    let rejected = request.validate();
    stats.add(&stats.rejected_records, rejected.count as u64);
    let records = request.records();
    let transport = match encoding {
        Encoding::Protobuf => Transport::HttpProtobuf,
        Encoding::Json => Transport::HttpJson,
    };
    let mut event = Event::now(transport, request.into_payload());
    if encoding == Encoding::Protobuf && rejected.count == 0 {
        // Nothing was removed: the received bytes are the request.
        // Inflating them already made an allocation of their own.
        let wire = if bytes.as_ptr() == read_buffer {
            detached(&bytes)
        } else {
            bytes
        };
        event = event.with_wire(wire);
    }
    if let Err(Full) = state.ingest.submit_in(room, event) {
        return unavailable(Some(encoding));
    }
    let (requests, items) = T::counters(stats);
    stats.inc(requests);
    stats.add(items, records);
    let response = T::response(rejected);
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, Encoding::Protobuf.content_type())],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => json_response(
            StatusCode::OK,
            serde_json::to_string(&response).unwrap_or_else(|_| "{}".into()),
        ),
    }
}

async fn hook(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Body) -> Response {
    let stats = &state.ingest.stats;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        const JSON: &[u8] = b"application/json";
        let ct = ct.as_bytes();
        if !ct
            .get(..JSON.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(JSON))
        {
            stats.inc(&stats.bad_requests);
            let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
            return hook_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported content type {ct:?}; hook events are application/json"),
            );
        }
    }
    let bytes = match read_body(body, state.max_body).await {
        Ok(b) => b,
        Err(e) => {
            stats.inc(&stats.bad_requests);
            return hook_error(e.status(), &e.to_string());
        }
    };
    // Checked here, parsed on the merge thread: the answer to Claude Code
    // waits only for the check.
    if let Err(e) = HookEvent::check(&bytes) {
        stats.inc(&stats.bad_requests);
        return hook_error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let transport = match headers.get(TRANSPORT_HEADER).map(HeaderValue::as_bytes) {
        Some(b"command") => Transport::HookCommand,
        _ => Transport::HookHttp,
    };
    let now = unix_nanos(std::time::SystemTime::now());
    let size = bytes.len();
    let input = Input::Hook {
        body: detached(&bytes),
        transport,
        received_at: hook_time(&headers, now).unwrap_or(now),
    };
    // The command hook spools what is refused and sends it again; were it
    // to wait, it could give up while its event is still queued here.
    let queued = match transport {
        Transport::HookCommand => state.ingest.submit(input, size),
        _ => state.ingest.submit_hook(input, size).await,
    };
    if queued.is_err() {
        return hook_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ccotel is overloaded: its internal queue is full; retry later",
        );
    }
    stats.inc(&stats.hook_events);
    json_response(StatusCode::OK, "{}")
}

/// When the command hook says Claude Code ran the hook: spooled events arrive
/// late but keep their time. Ignored when it is in the future or more than a
/// day old (a wrong clock, not a delay).
fn hook_time(headers: &HeaderMap, now: u64) -> Option<u64> {
    let at: u64 = headers
        .get(crate::cli::hook::HOOK_TIME_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    const DAY: u64 = 86_400_000_000_000;
    (at <= now && now - at < DAY).then_some(at)
}

/// A body to keep while its event waits in the ingest queue, in an
/// allocation of its own: what [`read_body`] returns for a body read in one
/// piece is a slice of the connection's read buffer, and holding it would
/// keep that whole buffer alive meanwhile.
fn detached(body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(body)
}

/// Reads at most `limit` bytes of body.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, DecodeError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(DecodeError::TooLarge { limit })
        }
        Err(e) => Err(DecodeError::BadGzip(std::io::Error::other(format!(
            "request body could not be read: {e}"
        )))),
    }
}

fn refuse(state: &HttpState, encoding: Option<Encoding>, e: DecodeError) -> Response {
    let stats = &state.ingest.stats;
    stats.inc(&stats.bad_requests);
    tracing::debug!(error = %e, "refused OTLP request");
    error(encoding, e.status(), &e.to_string())
}

fn unavailable(encoding: Option<Encoding>) -> Response {
    let mut r = error(
        encoding,
        StatusCode::SERVICE_UNAVAILABLE,
        "ccotel is overloaded: its internal queue is full; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// An OTLP error answer: a `google.rpc.Status` in the request's encoding.
fn error(encoding: Option<Encoding>, status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => tonic::Code::Unimplemented,
        _ => tonic::Code::InvalidArgument,
    } as i32;
    match encoding {
        Some(Encoding::Protobuf) => {
            let body = tonic_types::Status {
                code,
                message: message.to_string(),
                details: vec![],
            }
            .encode_to_vec();
            (
                status,
                [(header::CONTENT_TYPE, Encoding::Protobuf.content_type())],
                body,
            )
                .into_response()
        }
        _ => json_response(
            status,
            serde_json::json!({ "code": code, "message": message }).to_string(),
        ),
    }
}

fn hook_error(status: StatusCode, message: &str) -> Response {
    let mut r = json_response(status, serde_json::json!({ "error": message }).to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn json_response(status: StatusCode, body: impl IntoResponse) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
