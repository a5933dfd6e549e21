//! Secret redaction, applied before anything is written to the store or
//! leaves the machine: prompts, tool input and output, model messages and
//! every other string attribute. Built-in patterns cover the credentials
//! that turn up in coding sessions; config adds more.

use crate::model::{Event, Payload};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, AnyValue, KeyValue};
use regex::{Regex, RegexSet};
use serde_json::Value;

/// The built-in patterns: (kind, regex). Order matters where they overlap
/// (Anthropic keys also look like OpenAI keys). Word boundaries are ASCII
/// (`(?-u:\b)`): secrets are ASCII, and Unicode boundaries made every string
/// attribute several times slower to scan.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "private_key",
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    ),
    ("anthropic_key", r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{16,}"),
    (
        "openai_key",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
    ),
    (
        "aws_secret_key",
        r#"(?i)(?:aws_secret_access_key|aws_secret_key|secret_access_key)["']?\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}"#,
    ),
    (
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
    ),
    ("slack_token", r"(?-u:\b)xox[abposr]-[A-Za-z0-9\-]{10,}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9_/\-]+",
    ),
    (
        "bearer_token",
        r"(?i)(?-u:\b)bearer\s+[A-Za-z0-9\-._~+/]{16,}=*",
    ),
];

/// Passwords in URLs (`scheme://user:password@host`): only the password goes.
const URL_PASSWORD: &str = r"(?i)(?-u:\b)([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@";

/// What the private-key pattern looks for first: enough to tell that a key
/// may be present, without the `\z` of the full pattern.
const PRIVATE_KEY_HEADER: &str = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----";

/// A set of patterns and what to replace them with.
pub struct Redactor {
    set: RegexSet,
    patterns: Vec<(String, Regex)>,
    url_password: Option<Regex>,
    /// The patterns loosened so that they can run over a whole protobuf
    /// message at once: a message with no hit has no secret in any of its
    /// strings. `None` when a custom pattern cannot be loosened that way.
    whole: Option<regex::bytes::RegexSet>,
}

/// A pattern that matches wherever `pattern` matches inside any string of a
/// protobuf message, when run over the encoded message; `None` if the
/// pattern depends on where a string starts or ends (anchors, boundaries).
///
/// Protobuf stores strings as contiguous UTF-8, so a match inside a string
/// is also a match in the message, except where the pattern looks at the
/// string's edges: word boundaries (the byte before a string is its length)
/// and anchors. Built-in boundaries are dropped (that only adds matches);
/// custom patterns with anchors or boundaries disable the shortcut.
fn loosened(pattern: &str) -> Option<String> {
    if pattern == BUILTIN[0].1 {
        return Some(PRIVATE_KEY_HEADER.to_string());
    }
    let p = pattern.replace(r"(?-u:\b)", "");
    let anchored = ["\\b", "\\B", "\\A", "\\z", "\\Z", "$"]
        .iter()
        .any(|a| p.contains(a))
        || p.char_indices()
            .any(|(i, c)| c == '^' && !p[..i].ends_with('['));
    (!anchored).then_some(p)
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Redactor {
    /// Built-in patterns (when `builtin`) plus `extra` regexes.
    pub fn new(builtin: bool, extra: &[String]) -> Result<Redactor, regex::Error> {
        let mut patterns: Vec<(String, Regex)> = Vec::new();
        if builtin {
            for (kind, re) in BUILTIN {
                patterns.push((kind.to_string(), Regex::new(re)?));
            }
        }
        for re in extra {
            patterns.push(("custom".into(), Regex::new(re)?));
        }
        let mut all: Vec<String> = patterns
            .iter()
            .map(|(_, r)| r.as_str().to_string())
            .collect();
        let url_password = if builtin {
            all.push(URL_PASSWORD.into());
            Some(Regex::new(URL_PASSWORD)?)
        } else {
            None
        };
        let whole = all
            .iter()
            .map(|p| loosened(p))
            .collect::<Option<Vec<String>>>()
            .and_then(|ps| regex::bytes::RegexSet::new(ps).ok());
        Ok(Redactor {
            set: RegexSet::new(&all)?,
            patterns,
            url_password,
            whole,
        })
    }

    /// Whether there is anything to do at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.url_password.is_none()
    }

    /// The text with secrets replaced by `[REDACTED:<kind>]`; `None` when
    /// nothing matched (the common case, and allocation-free).
    pub fn redact(&self, text: &str) -> Option<String> {
        let hits = self.set.matches(text);
        if !hits.matched_any() {
            return None;
        }
        let mut out = text.to_string();
        for (i, (kind, re)) in self.patterns.iter().enumerate() {
            if hits.matched(i) {
                out = re
                    .replace_all(&out, format!("[REDACTED:{kind}]").as_str())
                    .into_owned();
            }
        }
        if let Some(re) = &self.url_password {
            out = re.replace_all(&out, "${1}[REDACTED]@").into_owned();
        }
        Some(out)
    }

    fn string(&self, s: &mut String) -> u64 {
        match self.redact(s) {
            Some(r) => {
                *s = r;
                1
            }
            None => 0,
        }
    }

    /// Redacts every string inside a JSON value.
    pub fn json(&self, v: &mut Value) -> u64 {
        match v {
            Value::String(s) => self.string(s),
            Value::Array(items) => items.iter_mut().map(|i| self.json(i)).sum(),
            Value::Object(map) => map.values_mut().map(|i| self.json(i)).sum(),
            _ => 0,
        }
    }

    fn any(&self, v: &mut AnyValue) -> u64 {
        match v.value.as_mut() {
            Some(V::StringValue(s)) => self.string(s),
            Some(V::ArrayValue(a)) => a.values.iter_mut().map(|x| self.any(x)).sum(),
            Some(V::KvlistValue(l)) => self.attrs(&mut l.values),
            _ => 0,
        }
    }

    /// Redacts every string attribute value.
    pub fn attrs(&self, list: &mut [KeyValue]) -> u64 {
        list.iter_mut()
            .filter_map(|kv| kv.value.as_mut())
            .map(|v| self.any(v))
            .sum()
    }

    /// Whether an encoded protobuf message certainly holds no secret, from
    /// one scan of its bytes (much cheaper than visiting every string).
    pub fn clean_protobuf(&self, encoded: &[u8]) -> bool {
        self.whole.as_ref().is_some_and(|w| !w.is_match(encoded))
    }

    /// Redacts an input in place; returns how many strings changed. When the
    /// event carries its protobuf encoding, one scan of it settles the common
    /// case (a hook's JSON is scanned string by string: its escapes could hide
    /// a secret from a scan of the bytes); a change clears the encoding,
    /// which no longer matches.
    pub fn event(&self, event: &mut Event) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let protobuf = !matches!(event.payload, Payload::Hook(_));
        if let Some(wire) = &event.wire {
            if protobuf && self.clean_protobuf(wire) {
                return 0;
            }
        }
        let n = self.payload(&mut event.payload);
        if n > 0 {
            event.wire = None;
        }
        n
    }

    fn payload(&self, payload: &mut Payload) -> u64 {
        match payload {
            Payload::Hook(h) => h.fields.values_mut().map(|v| self.json(v)).sum(),
            Payload::Logs(r) => {
                let mut n = 0;
                for rl in &mut r.resource_logs {
                    for sl in &mut rl.scope_logs {
                        for rec in &mut sl.log_records {
                            n += self.attrs(&mut rec.attributes);
                            if let Some(b) = rec.body.as_mut() {
                                n += self.any(b);
                            }
                        }
                    }
                }
                n
            }
            Payload::Traces(r) => {
                let mut n = 0;
                for rs in &mut r.resource_spans {
                    for ss in &mut rs.scope_spans {
                        for span in &mut ss.spans {
                            n += self.attrs(&mut span.attributes);
                            for e in &mut span.events {
                                n += self.attrs(&mut e.attributes);
                            }
                            if let Some(st) = span.status.as_mut() {
                                n += self.string(&mut st.message);
                            }
                        }
                    }
                }
                n
            }
            Payload::Metrics(_) => 0,
        }
    }

    /// Redacts a merged span's string attributes and status message.
    pub fn span(&self, span: &mut crate::model::span::SpanRecord) -> u64 {
        use crate::model::span::{Attr, SpanStatus};
        if self.is_empty() {
            return 0;
        }
        let mut n = 0;
        for v in span.attributes.values_mut() {
            match v {
                Attr::Str(s) => n += self.string(s),
                Attr::List(items) => n += items.iter_mut().map(|s| self.string(s)).sum::<u64>(),
                _ => {}
            }
        }
        if let SpanStatus::Error(m) = &mut span.status {
            n += self.string(m);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_builtin_kind_is_caught_and_ordinary_text_is_not() {
        let r = Redactor::new(true, &[]).unwrap();
        let cases = [
            (
                "key sk-ant-api03-AbCdEf0123456789_xyzXYZ-0123456789 here",
                "anthropic_key",
            ),
            (
                "OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123",
                "openai_key",
            ),
            ("id AKIAIOSFODNN7EXAMPLE ok", "aws_access_key"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_key",
            ),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "github_token",
            ),
            ("xoxb-123456789012-abcdefghijkl", "slack_token"),
            (
                "Authorization: Bearer abcdef0123456789abcdef",
                "bearer_token",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
                "private_key",
            ),
        ];
        for (text, kind) in cases {
            let out = r
                .redact(text)
                .unwrap_or_else(|| panic!("{kind} not caught"));
            assert!(out.contains(&format!("[REDACTED:{kind}]")), "{kind}: {out}");
        }
        let url = r
            .redact("git clone https://bob:hunter2@example.com/repo")
            .unwrap();
        assert_eq!(url, "git clone https://bob:[REDACTED]@example.com/repo");
        for plain in [
            "ls -la",
            "the task-ant colony",
            "skip this",
            "https://example.com/a:b",
        ] {
            assert_eq!(r.redact(plain), None, "{plain}");
        }
    }

    #[test]
    fn custom_patterns_add_to_the_builtins() {
        let r = Redactor::new(true, &["ACME-[0-9]{6}".into()]).unwrap();
        assert_eq!(
            r.redact("ticket ACME-123456").unwrap(),
            "ticket [REDACTED:custom]"
        );
        assert!(Redactor::new(true, &["(".into()]).is_err());
    }

    /// A log export holding `text` as one string attribute.
    fn encoded_log(text: &str) -> Vec<u8> {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        attributes: vec![KeyValue {
                            key: "prompt".into(),
                            value: Some(AnyValue {
                                value: Some(V::StringValue(text.into())),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn one_scan_of_the_encoded_message_never_misses_a_secret() {
        let r = Redactor::new(true, &[]).unwrap();
        let corpus = include_str!("../tests/fixtures/secrets/corpus.tsv");
        let mut checked = 0;
        for line in corpus
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            let text = cols[1];
            // The secret at the very start and end of a string, for every
            // string length up to 200: the byte before a string is its
            // length, which is often a word character.
            for pad in 0..200 {
                for s in [
                    format!("{text}{}", " ".repeat(pad)),
                    format!("{}{text}", " ".repeat(pad)),
                ] {
                    assert!(r.redact(&s).is_some(), "{line}");
                    assert!(!r.clean_protobuf(&encoded_log(&s)), "missed: {s:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 2000);
        assert!(r.clean_protobuf(&encoded_log("cargo test -- --nocapture; ls -la")));
    }

    #[test]
    fn anchored_custom_patterns_turn_the_shortcut_off() {
        for anchored in [r"^ACME-[0-9]{6}$", r"\bACME-[0-9]{6}", r"(?m)^token"] {
            let r = Redactor::new(true, &[anchored.into()]).unwrap();
            assert!(
                !r.clean_protobuf(&encoded_log("nothing here")),
                "{anchored}"
            );
        }
        let r = Redactor::new(true, &["ACME-[^ ]{6}".into()]).unwrap();
        assert!(r.clean_protobuf(&encoded_log("nothing here")));
        assert!(!r.clean_protobuf(&encoded_log("id ACME-123456")));
    }

    /// A hook keeps its received JSON only while nothing in it changed: the
    /// store writes those bytes, so a redacted hook must drop them.
    #[test]
    fn a_hook_keeps_its_received_bytes_only_when_nothing_was_redacted() {
        use crate::model::{HookEvent, Transport};
        let r = Redactor::new(true, &[]).unwrap();
        let hook = |body: &str| {
            let b = bytes::Bytes::from(body.to_string());
            Event::now(
                Transport::HookHttp,
                Payload::Hook(HookEvent::parse(&b).unwrap()),
            )
            .with_wire(b)
        };
        let mut clean =
            hook(r#"{"session_id":"s","hook_event_name":"Stop","last_assistant_message":"done"}"#);
        assert_eq!(r.event(&mut clean), 0);
        assert!(clean.wire.is_some());
        // The newline escape sits inside the key: a scan of the raw bytes
        // would not see the key the parsed string holds.
        let mut secret = hook(
            r#"{"session_id":"s","hook_event_name":"Stop","last_assistant_message":"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qPqBmuNf0Ab\n-----END RSA PRIVATE KEY-----"}"#,
        );
        assert_eq!(r.event(&mut secret), 1);
        assert!(secret.wire.is_none());
        let Payload::Hook(h) = &secret.payload else {
            unreachable!()
        };
        assert!(h.fields["last_assistant_message"]
            .as_str()
            .is_some_and(|m| m.contains("[REDACTED:")));
    }
}
