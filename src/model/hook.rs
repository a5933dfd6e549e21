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

    /// Validates an already-parsed body (used by the transcript import too).
    pub fn from_fields(fields: Map<String, Value>) -> Result<HookEvent, HookParseError> {
        let name = fields
            .get("hook_event_name")
            .and_then(Value::as_str)
            .ok_or(HookParseError::Missing("hook_event_name"))?
            .parse::<HookEventName>()?;
        let session_id = fields
            .get("session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(HookParseError::Missing("session_id"))?
            .to_string();
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
        let msg = |b: &[u8]| HookEvent::parse(b).unwrap_err().to_string();
        assert!(msg(b"nope").contains("not valid JSON"));
        assert!(msg(b"[1]").contains("JSON object"));
        assert!(msg(br#"{"hook_event_name":"Stop"}"#).contains("session_id"));
        assert!(msg(br#"{"session_id":"s","hook_event_name":"Nope"}"#).contains("\"Nope\""));
    }
}
