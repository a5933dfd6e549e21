//! Sending one batch to one OTLP backend over gRPC, HTTP/protobuf or HTTP/JSON,
//! and turning the answer into a [`SendResult`] the worker can act on.

use super::batch::Batch;
use super::retry::{self, Verdict};
use crate::config::{Compression, ExporterConfig, Protocol};
use crate::model::Signal;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{logs_service_client::LogsServiceClient, ExportLogsServiceResponse},
    metrics::v1::{metrics_service_client::MetricsServiceClient, ExportMetricsServiceResponse},
    trace::v1::{trace_service_client::TraceServiceClient, ExportTraceServiceResponse},
};
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    /// Accepted; `rejected` records were refused by `partial_success`.
    Ok { rejected: i64, message: String },
    /// Not accepted.
    Err { verdict: Verdict, message: String },
}

/// A configured OTLP destination.
pub struct OtlpClient {
    protocol: Protocol,
    endpoint: String,
    headers: [Vec<(String, String)>; 3],
    compression: Compression,
    timeout: Duration,
    http: reqwest::Client,
    channel: Option<Channel>,
}

impl OtlpClient {
    /// Builds the client; gRPC channels connect lazily, so a backend that is
    /// down at start-up is only an error when a send fails.
    pub fn new(config: &ExporterConfig) -> anyhow::Result<OtlpClient> {
        let channel = match config.protocol() {
            Protocol::Grpc => {
                let mut endpoint =
                    tonic::transport::Endpoint::from_shared(config.endpoint.clone())?
                        .timeout(config.timeout)
                        .connect_timeout(config.timeout)
                        .tcp_nodelay(true);
                if config.endpoint.starts_with("https://") {
                    endpoint = endpoint
                        .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())?;
                }
                Some(endpoint.connect_lazy())
            }
            _ => None,
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("ccotel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OtlpClient {
            protocol: config.protocol(),
            endpoint: config.endpoint.trim_end_matches('/').to_string(),
            headers: [
                config.headers_for(Signal::Traces),
                config.headers_for(Signal::Metrics),
                config.headers_for(Signal::Logs),
            ],
            compression: config.compression,
            timeout: config.timeout,
            http,
            channel,
        })
    }

    fn headers_for(&self, batch: &Batch) -> &[(String, String)] {
        match batch.signal() {
            Signal::Traces | Signal::NativeTraces => &self.headers[0],
            Signal::Metrics => &self.headers[1],
            Signal::Logs => &self.headers[2],
        }
    }

    /// Whether this backend takes protobuf bytes as they are, so that
    /// encoded batches need no decoding.
    pub fn sends_protobuf_bytes(&self) -> bool {
        self.channel.is_none() && self.protocol != Protocol::HttpJson
    }

    /// One attempt to deliver `batch`.
    pub async fn send(&self, batch: &Batch) -> SendResult {
        if matches!(batch, Batch::Encoded { .. }) && !self.sends_protobuf_bytes() {
            return match batch.clone().decoded() {
                Some(typed) => Box::pin(self.send(&typed)).await,
                None => final_err("a queued item no longer decodes".into()),
            };
        }
        match (&self.channel, self.protocol) {
            (Some(channel), _) => self.send_grpc(channel.clone(), batch).await,
            (None, Protocol::HttpJson) => self.send_http(batch, true).await,
            (None, _) => self.send_http(batch, false).await,
        }
    }

    async fn send_http(&self, batch: &Batch, json: bool) -> SendResult {
        let body = match (batch, json) {
            (Batch::Encoded { body, .. }, false) => Ok(body.clone()),
            (Batch::Encoded { .. }, true) => {
                return final_err("an encoded batch reached the JSON encoder".into())
            }
            (Batch::Traces(r), true) => serde_json::to_vec(r),
            (Batch::Metrics(r), true) => serde_json::to_vec(r),
            (Batch::Logs(r), true) => serde_json::to_vec(r),
            (Batch::Traces(r), false) => Ok(r.encode_to_vec()),
            (Batch::Metrics(r), false) => Ok(r.encode_to_vec()),
            (Batch::Logs(r), false) => Ok(r.encode_to_vec()),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return final_err(format!("cannot encode batch as JSON: {e}")),
        };
        let content_type = if json {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        let url = format!("{}{}", self.endpoint, batch.path());
        let mut request = self
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, content_type);
        for (k, v) in self.headers_for(batch) {
            request = request.header(k, v);
        }
        let body = match self.compression {
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                if let Err(e) = enc.write_all(&body) {
                    return final_err(format!("gzip failed: {e}"));
                }
                request = request.header(http::header::CONTENT_ENCODING, "gzip");
                match enc.finish() {
                    Ok(b) => b,
                    Err(e) => return final_err(format!("gzip failed: {e}")),
                }
            }
            Compression::None => body,
        };
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                return SendResult::Err {
                    verdict: Verdict::Retry(None),
                    message: format!("POST {url}: {}", error_chain(&e)),
                }
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            let (rejected, message) = partial_success(batch, &bytes, is_json);
            return SendResult::Ok { rejected, message };
        }
        SendResult::Err {
            verdict: retry::classify_http(status.as_u16(), retry_after.as_deref()),
            message: format!("POST {url}: HTTP {status}: {}", error_message(&bytes)),
        }
    }

    async fn send_grpc(&self, channel: Channel, batch: &Batch) -> SendResult {
        macro_rules! call {
            ($client:ident, $req:expr, $rejected:ident) => {{
                let mut client = $client::new(channel);
                if self.compression == Compression::Gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                let mut request = tonic::Request::new($req.clone());
                request.set_timeout(self.timeout);
                for (k, v) in self.headers_for(batch) {
                    if let (Ok(k), Ok(v)) = (
                        MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        MetadataValue::try_from(v.as_str()),
                    ) {
                        request.metadata_mut().insert(k, v);
                    }
                }
                match client.export(request).await {
                    Ok(r) => {
                        let p = r.into_inner().partial_success.unwrap_or_default();
                        SendResult::Ok {
                            rejected: p.$rejected,
                            message: p.error_message,
                        }
                    }
                    Err(status) => grpc_error(&self.endpoint, status),
                }
            }};
        }
        match batch {
            Batch::Traces(r) => call!(TraceServiceClient, r, rejected_spans),
            Batch::Metrics(r) => call!(MetricsServiceClient, r, rejected_data_points),
            Batch::Logs(r) => call!(LogsServiceClient, r, rejected_log_records),
            Batch::Encoded { .. } => final_err("an encoded batch reached the gRPC client".into()),
        }
    }
}

fn grpc_error(endpoint: &str, status: tonic::Status) -> SendResult {
    use tonic_types::StatusExt;
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    SendResult::Err {
        verdict: retry::classify_grpc(status.code(), delay),
        message: format!("gRPC {endpoint}: {:?}: {}", status.code(), status.message()),
    }
}

fn final_err(message: String) -> SendResult {
    SendResult::Err {
        verdict: Verdict::Final,
        message,
    }
}

/// Reads `partial_success` from a 2xx answer; an empty body means none.
fn partial_success(batch: &Batch, body: &[u8], json: bool) -> (i64, String) {
    if body.is_empty() {
        return (0, String::new());
    }
    macro_rules! read {
        ($ty:ty, $field:ident) => {{
            let r: Option<$ty> = if json {
                serde_json::from_slice(body).ok()
            } else {
                <$ty>::decode(body).ok()
            };
            r.and_then(|r| r.partial_success)
                .map(|p| (p.$field, p.error_message))
                .unwrap_or_default()
        }};
    }
    match batch.signal() {
        Signal::Traces | Signal::NativeTraces => read!(ExportTraceServiceResponse, rejected_spans),
        Signal::Metrics => read!(ExportMetricsServiceResponse, rejected_data_points),
        Signal::Logs => read!(ExportLogsServiceResponse, rejected_log_records),
    }
}

/// The backend's own words: a `google.rpc.Status` message, or the body text.
fn error_message(body: &[u8]) -> String {
    if let Ok(status) = tonic_types::Status::decode(body) {
        if !status.message.is_empty() {
            return status.message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() > 512 {
        format!("{}…", &text[..text.floor_char_boundary(512)])
    } else {
        text.to_string()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
