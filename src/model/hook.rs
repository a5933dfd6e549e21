//! Hook events as Claude Code sends them: a closed set of event names, and the
//! JSON body kept whole so that fields this version of ccotel does not know
//! about still reach the merge engine and the store.

use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

macro_rules! hook_names {
    ($($variant:ident),* $(,)?) => {
        /// Every hook event Claude Code 2.1.328 can fire. A closed enum so that the
        /// merge engine matches on names in one place and a typo is a compile error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum HookEventName { $($variant),* }

        impl HookEventName {
            /// All names, in Claude Code's own order; used in error messages.
            pub const ALL: &'static [HookEventName] = &[$(HookEventName::$variant),*];

            /// The name exactly as Claude Code spells it in `hook_event_name`.
            pub fn as_str(self) -> &'static str {
                match self { $(HookEventName::$variant => stringify!($variant)),* }
            }
        }

        impl FromStr for HookEventName {
            type Err = UnknownHookEvent;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($variant) => Ok(HookEventName::$variant),)*
                    other => Err(UnknownHookEvent(other.to_string())),
                }
            }
        }
    };
}

hook_names!(
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PostToolBatch,
    Notification,
    UserPromptSubmit,
    UserPromptExpansion,
    SessionStart,
    SessionEnd,
    Stop,
    StopFailure,
    SubagentStart,
    SubagentStop,
    PreCompact,
    PostCompact,
    PreModelSwitch,
    PostModelSwitch,
    PermissionRequest,
    PermissionDenied,
    Setup,
    TeammateIdle,
    TaskCreated,
    TaskCompleted,
    Elicitation,
    ElicitationResult,
    ConfigChange,
    WorktreeCreate,
    WorktreeRemove,
    InstructionsLoaded,
    CwdChanged,
    FileChanged,
    DirectoryAdded,
    MessageDisplay,
);

impl fmt::Display for HookEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `hook_event_name` that is not one of Claude Code's 33 events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook_event_name {0:?}; expected one of Claude Code's 33 hook events (PreToolUse, PostToolUse, SessionStart, ...)")]
pub struct UnknownHookEvent(pub String);

/// Why a hook body was refused. Each variant maps to one HTTP 400 message.
#[derive(Debug, thiserror::Error)]
pub enum HookParseError {
    #[error("hook body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("hook body is not valid UTF-8 (after byte {0})")]
    NotUtf8(usize),
    #[error("hook body must be a JSON object")]
    NotObject,
    #[error("hook body lacks a string \"{0}\"")]
    Missing(&'static str),
    #[error(transparent)]
    UnknownEvent(#[from] UnknownHookEvent),
}

/// One hook invocation: the validated name and session, plus every field
/// Claude Code sent, unknown ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub name: HookEventName,
    pub session_id: String,
    pub fields: Map<String, Value>,
}

impl HookEvent {
    /// Parses and validates the JSON body of one hook invocation.
    pub fn parse(body: &[u8]) -> Result<HookEvent, HookParseError> {
        let value: Value = serde_json::from_slice(body)?;
        let Value::Object(fields) = value else {
            return Err(HookParseError::NotObject);
        };
        HookEvent::from_fields(fields)
    }

    /// Checks a body as [`HookEvent::parse`] would, without building it: the
    /// receiver answers Claude Code after this check and leaves the parse to
    /// the merge thread, off the hook's path. Every body this accepts,
    /// `parse` accepts too (a property test and the fuzz target hold it to
    /// that); it is stricter only about a repeated key.
    pub fn check(body: &[u8]) -> Result<HookEventName, HookParseError> {
        /// The two fields a hook must have; everything else is skipped.
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(borrow, default)]
            hook_event_name: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            session_id: Option<std::borrow::Cow<'a, str>>,
        }
        // Skipped strings are not checked for UTF-8; the whole body is, here.
        let text =
            std::str::from_utf8(body).map_err(|e| HookParseError::NotUtf8(e.valid_up_to()))?;
        if !text.trim_start().starts_with('{') {
            serde_json::from_str::<serde::de::IgnoredAny>(text)?;
            return Err(HookParseError::NotObject);
        }
        let head: Head = serde_json::from_str(text)?;
        let (name, _) = required(head.hook_event_name.as_deref(), head.session_id.as_deref())?;
        Ok(name)
    }

    /// Validates an already-parsed body (used by the transcript import too).
    pub fn from_fields(fields: Map<String, Value>) -> Result<HookEvent, HookParseError> {
        let field = |key| fields.get(key).and_then(Value::as_str);
        let (name, session_id) = required(field("hook_event_name"), field("session_id"))?;
        let session_id = session_id.to_string();
        Ok(HookEvent {
            name,
            session_id,
            fields,
        })
    }

    /// A string field, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// Any field, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }
}

/// The two fields every hook must have, checked the same way by the parse
/// and by the receiver's check: a known event name and a non-empty session.
fn required<'a>(
    name: Option<&str>,
    session_id: Option<&'a str>,
) -> Result<(HookEventName, &'a str), HookParseError> {
    let name = name
        .ok_or(HookParseError::Missing("hook_event_name"))?
        .parse::<HookEventName>()?;
    let session_id = session_id
        .filter(|s| !s.is_empty())
        .ok_or(HookParseError::Missing("session_id"))?;
    Ok((name, session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_33_names_round_trip() {
        assert_eq!(HookEventName::ALL.len(), 33);
        for name in HookEventName::ALL {
            assert_eq!(name.as_str().parse::<HookEventName>().unwrap(), *name);
        }
    }

    #[test]
    fn keeps_unknown_fields() {
        let ev =
            HookEvent::parse(br#"{"session_id":"s","hook_event_name":"Stop","brand_new":{"x":1}}"#)
                .unwrap();
        assert_eq!(ev.name, HookEventName::Stop);
        assert_eq!(ev.get("brand_new").unwrap()["x"], 1);
    }

    #[test]
    fn rejects_bad_bodies_with_reasons() {
        // The receiver answers with the check's message, the merge parses:
        // both refuse each of these, for the same reason.
        let parse = |b: &[u8]| HookEvent::parse(b).unwrap_err().to_string();
        let check = |b: &[u8]| HookEvent::check(b).unwrap_err().to_string();
        for msg in [parse, check] {
            assert!(msg(b"nope").contains("not valid JSON"));
            assert!(msg(b"{\"session_id\":").contains("not valid JSON"));
            assert!(msg(b"[1]").contains("JSON object"));
            assert!(msg(b" \"x\"").contains("JSON object"));
            assert!(msg(br#"{"hook_event_name":"Stop"}"#).contains("session_id"));
            assert!(msg(br#"{"session_id":"","hook_event_name":"Stop"}"#).contains("session_id"));
            assert!(msg(br#"{"session_id":"s"}"#).contains("hook_event_name"));
            assert!(msg(br#"{"session_id":"s","hook_event_name":"Nope"}"#).contains("\"Nope\""));
            assert!(
                msg(br#"{"session_id":"s","hook_event_name":"Stop"} x"#).contains("not valid JSON")
            );
        }
        assert!(
            check(b"{\"session_id\":\"s\",\"hook_event_name\":\"Stop\",\"x\":\"\xff\"}")
                .contains("UTF-8")
        );
        assert!(HookEvent::parse(
            b"{\"session_id\":\"s\",\"hook_event_name\":\"Stop\",\"x\":\"\xff\"}"
        )
        .is_err());
    }

    #[test]
    fn the_check_accepts_what_parse_accepts() {
        let body = br#" {"session_id":"s\u0031","x":{"deep":[1,2.5e3,null,true,"\n"]},"hook_event_name":"PreToolUse"} "#;
        assert_eq!(HookEvent::check(body).unwrap(), HookEventName::PreToolUse);
        let parsed = HookEvent::parse(body).unwrap();
        assert_eq!(
            (parsed.name, parsed.session_id.as_str()),
            (HookEventName::PreToolUse, "s1")
        );
    }

    proptest::proptest! {
        /// Whatever the receiver's check lets through, the merge thread can
        /// parse, to the same event name: an accepted hook is never lost.
        #[test]
        fn what_the_check_accepts_always_parses(
            cut in 0usize..200,
            insert in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            extra in "[ -~]{0,24}",
        ) {
            let mut body = format!(
                r#"{{"session_id":"s-1","hook_event_name":"PostToolUse","tool_input":{{"command":"ls"}},"note":"{extra}"}}"#
            )
            .into_bytes();
            let at = cut.min(body.len());
            body.splice(at..at, insert);
            if let Ok(name) = HookEvent::check(&body) {
                let parsed = HookEvent::parse(&body);
                proptest::prop_assert!(parsed.is_ok(), "{:?}", String::from_utf8_lossy(&body));
                proptest::prop_assert_eq!(parsed.unwrap().name, name);
            }
        }
    }
}
