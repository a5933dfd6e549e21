//! ccotel's own span record: what the merge engine produces and exporters and
//! the store consume. Attributes are kept sorted so that the same inputs always
//! give byte-identical output.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Attr {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl From<&str> for Attr {
    fn from(v: &str) -> Attr {
        Attr::Str(v.to_string())
    }
}
impl From<String> for Attr {
    fn from(v: String) -> Attr {
        Attr::Str(v)
    }
}
impl From<i64> for Attr {
    fn from(v: i64) -> Attr {
        Attr::Int(v)
    }
}
impl From<u64> for Attr {
    fn from(v: u64) -> Attr {
        Attr::Int(v as i64)
    }
}
impl From<f64> for Attr {
    fn from(v: f64) -> Attr {
        Attr::Double(v)
    }
}
impl From<bool> for Attr {
    fn from(v: bool) -> Attr {
        Attr::Bool(v)
    }
}

impl Attr {
    pub fn to_any(&self) -> AnyValue {
        let value = match self {
            Attr::Bool(b) => any_value::Value::BoolValue(*b),
            Attr::Int(i) => any_value::Value::IntValue(*i),
            Attr::Double(d) => any_value::Value::DoubleValue(*d),
            Attr::Str(s) => any_value::Value::StringValue(s.clone()),
            Attr::List(items) => any_value::Value::ArrayValue(ArrayValue {
                values: items
                    .iter()
                    .map(|s| AnyValue {
                        value: Some(any_value::Value::StringValue(s.clone())),
                    })
                    .collect(),
            }),
        };
        AnyValue { value: Some(value) }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attr::Double(d) => Some(*d),
            Attr::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// The span's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error(String),
}

/// The kinds of span ccotel builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Session,
    Turn,
    Llm,
    Tool,
}

/// One merged span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    #[serde(with = "hex_bytes16")]
    pub trace_id: [u8; 16],
    #[serde(with = "hex_bytes8")]
    pub span_id: [u8; 8],
    #[serde(with = "hex_opt8")]
    pub parent_span_id: Option<[u8; 8]>,
    pub kind: SpanKind,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, Attr>,
    pub status: SpanStatus,
}

impl SpanRecord {
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.attributes.get(key)
    }

    /// The span as an OTLP span.
    pub fn to_otlp(&self) -> Span {
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: self.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            name: self.name.clone(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns.max(self.start_ns),
            attributes: self
                .attributes
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(v.to_any()),
                    ..Default::default()
                })
                .collect(),
            status: Some(match &self.status {
                SpanStatus::Unset => Status::default(),
                SpanStatus::Ok => Status {
                    code: status::StatusCode::Ok as i32,
                    message: String::new(),
                },
                SpanStatus::Error(m) => Status {
                    code: status::StatusCode::Error as i32,
                    message: m.clone(),
                },
            }),
            ..Default::default()
        }
    }
}

/// Builds one OTLP request for spans that share a resource.
pub fn to_request(
    resource: &BTreeMap<String, Attr>,
    spans: &[SpanRecord],
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: Some(v.to_any()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ccotel".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.iter().map(SpanRecord::to_otlp).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

macro_rules! hex_mod {
    ($name:ident, $n:expr) => {
        mod $name {
            use serde::{Deserialize, Deserializer, Serializer};
            pub fn serialize<S: Serializer>(v: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(v))
            }
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; $n], D::Error> {
                let s = String::deserialize(d)?;
                let mut out = [0u8; $n];
                hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
                Ok(out)
            }
        }
    };
}
hex_mod!(hex_bytes16, 16);
hex_mod!(hex_bytes8, 8);

mod hex_opt8 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<[u8; 8]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 8]>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            let mut out = [0u8; 8];
            hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
            Ok(out)
        })
        .transpose()
    }
}
