//! Turning OTLP/HTTP request bodies into `opentelemetry-proto` types: content
//! type, gzip with a hard cap on inflation, protobuf or OTLP/JSON. Every failure
//! is a [`DecodeError`] whose HTTP status lives here, in one place.

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Read;

/// The two OTLP/HTTP body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type {0:?}; send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}; send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body is not valid gzip: {0}")]
    BadGzip(std::io::Error),
    #[error("request body is not a valid OTLP protobuf message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("request body is not valid OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl DecodeError {
    /// The OTLP/HTTP status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            DecodeError::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DecodeError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DecodeError::BadGzip(_) | DecodeError::Protobuf(_) | DecodeError::Json(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// Picks the encoding from `Content-Type`, ignoring parameters such as charset.
pub fn encoding_of(headers: &HeaderMap) -> Result<Encoding, DecodeError> {
    let raw = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(DecodeError::UnsupportedContentType(raw)),
    }
}

/// Undoes `Content-Encoding`, never producing more than `limit` bytes, so a
/// small gzip bomb cannot inflate into gigabytes of memory.
pub fn inflate(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => gunzip(&body, limit),
        other => Err(DecodeError::UnsupportedEncoding(other.to_string())),
    }
}

/// Inflates gzip data, failing as soon as the output would pass `limit`.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(DecodeError::BadGzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Decodes an OTLP message in the given encoding.
pub fn decode<T>(body: &[u8], encoding: Encoding) -> Result<T, DecodeError>
where
    T: prost::Message + Default + DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => Ok(T::decode(body)?),
        Encoding::Json => decode_json(body),
    }
}

/// OTLP/JSON with the strict `opentelemetry-proto` decoder first; on failure,
/// once more after normalising what the proto3 JSON mapping allows but the
/// generated serde code does not take (numbers sent as strings, enum names).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
                return Err(first.into());
            };
            if !normalize(&mut value) {
                return Err(first.into());
            }
            serde_json::from_value(value).map_err(|_| first.into())
        }
    }
}

/// Keys whose value is a double in OTLP; proto3 JSON lets senders quote them.
const DOUBLE_KEYS: &[&str] = &["doubleValue", "asDouble", "sum", "min", "max", "value"];
/// Keys whose value is an enum in OTLP; proto3 JSON lets senders use the name.
const ENUM_KEYS: &[(&str, &[&str])] = &[
    (
        "kind",
        &[
            "SPAN_KIND_UNSPECIFIED",
            "SPAN_KIND_INTERNAL",
            "SPAN_KIND_SERVER",
            "SPAN_KIND_CLIENT",
            "SPAN_KIND_PRODUCER",
            "SPAN_KIND_CONSUMER",
        ],
    ),
    (
        "aggregationTemporality",
        &[
            "AGGREGATION_TEMPORALITY_UNSPECIFIED",
            "AGGREGATION_TEMPORALITY_DELTA",
            "AGGREGATION_TEMPORALITY_CUMULATIVE",
        ],
    ),
    (
        "code",
        &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"],
    ),
];

/// Rewrites quoted doubles and enum names in place; returns whether anything
/// changed.
fn normalize(value: &mut Value) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if let Value::String(s) = v {
                    if DOUBLE_KEYS.contains(&key.as_str()) {
                        let parsed = match s.as_str() {
                            "NaN" | "Infinity" | "-Infinity" => None,
                            other => other.parse::<f64>().ok(),
                        };
                        if let Some(n) = parsed.and_then(serde_json::Number::from_f64) {
                            *v = Value::Number(n);
                            changed = true;
                        }
                        continue;
                    }
                    if key == "severityNumber" {
                        if let Some(n) = severity_number(s) {
                            *v = Value::from(n);
                            changed = true;
                        }
                        continue;
                    }
                    if let Some((_, names)) = ENUM_KEYS.iter().find(|(k, _)| k == key) {
                        if let Some(i) = names.iter().position(|n| n == s) {
                            *v = Value::from(i);
                            changed = true;
                        }
                        continue;
                    }
                }
                changed |= normalize(v);
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= normalize(item);
            }
        }
        _ => {}
    }
    changed
}

fn severity_number(name: &str) -> Option<i32> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    let level = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    let step: i32 = match &rest[level.len()..] {
        "" => 1,
        digits => digits.parse().ok()?,
    };
    let base = NAMES.iter().position(|n| *n == level)? as i32;
    (1..=4).contains(&step).then_some(base * 4 + step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use std::io::Write;

    #[test]
    fn quoted_doubles_and_enum_names_decode() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN2","attributes":[{"key":"d","value":{"doubleValue":"1.5"}},{"key":"i","value":{"intValue":"7"}},{"key":"j","value":{"intValue":7}}]}]}]}]}"#;
        let req: ExportLogsServiceRequest = decode_json(body).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 14);
        assert_eq!(rec.attributes.len(), 3);
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 64 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 128 * 1024);
        assert!(matches!(
            gunzip(&bomb, 8 * 1024 * 1024),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn severity_names_map_to_numbers() {
        assert_eq!(severity_number("SEVERITY_NUMBER_TRACE"), Some(1));
        assert_eq!(severity_number("SEVERITY_NUMBER_INFO"), Some(9));
        assert_eq!(severity_number("SEVERITY_NUMBER_FATAL4"), Some(24));
        assert_eq!(severity_number("SEVERITY_NUMBER_LOUD"), None);
    }
}
