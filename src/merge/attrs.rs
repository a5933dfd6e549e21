//! Reading OTLP attributes the way Claude Code writes them: numbers and
//! booleans sometimes arrive as strings ("73", "true"), so every getter accepts
//! both.

use crate::model::span::Attr;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::collections::BTreeMap;

/// A borrowed view of an attribute list. Lookups scan the list (from the
/// end, so a repeated key's last value wins): Claude Code's lists are a few
/// dozen entries, and building an index for each record cost more than the
/// handful of lookups it served.
pub struct Attrs<'a>(pub &'a [KeyValue]);

impl<'a> Attrs<'a> {
    pub fn new(list: &'a [KeyValue]) -> Attrs<'a> {
        Attrs(list)
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.0
            .iter()
            .rev()
            .find(|kv| kv.key == key && kv.value.is_some())
            .and_then(|kv| kv.value.as_ref())
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A non-empty string, not Claude Code's `<REDACTED>` placeholder.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        self.str(key)
            .filter(|s| !s.is_empty() && *s != "<REDACTED>")
    }

    pub fn i64(&self, key: &str) -> Option<i64> {
        match self.get(key)?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            Value::DoubleValue(d) => Some(*d as i64),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key)?.value.as_ref()? {
            Value::IntValue(i) => Some(*i as f64),
            Value::DoubleValue(d) => Some(*d),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.value.as_ref()? {
            Value::BoolValue(b) => Some(*b),
            Value::StringValue(s) => match s.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            Value::IntValue(i) => Some(*i != 0),
            _ => None,
        }
    }

    /// All attributes converted to ccotel's own values.
    pub fn to_map(&self) -> BTreeMap<String, Attr> {
        self.0
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), to_attr(kv.value.as_ref()?)?)))
            .collect()
    }
}

/// Converts a scalar or string-array OTLP value.
pub fn to_attr(v: &AnyValue) -> Option<Attr> {
    Some(match v.value.as_ref()? {
        Value::StringValue(s) => Attr::Str(s.clone()),
        Value::BoolValue(b) => Attr::Bool(*b),
        Value::IntValue(i) => Attr::Int(*i),
        Value::DoubleValue(d) => Attr::Double(*d),
        Value::ArrayValue(a) => Attr::List(
            a.values
                .iter()
                .filter_map(|v| match v.value.as_ref() {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => return None,
    })
}

/// Unix nanoseconds from an RFC 3339 timestamp such as `2026-11-21T22:58:40.897Z`.
pub fn parse_time(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    Some(crate::model::event::unix_nanos(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_claude_code_timestamps() {
        assert_eq!(
            parse_time("2026-11-21T22:58:40.897Z"),
            Some(1_795_301_920_897_000_000)
        );
    }
}
