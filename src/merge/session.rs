//! What ccotel knows about one session: facts from every source, each kept in
//! its own slot. Applying an input only fills slots, and a slot set twice keeps
//! a deterministic choice (earliest start, latest end, longest text), so the
//! same inputs give the same state in any order and replays change nothing.
//! Joining the sources into a tree happens later, in [`super::render`].

use super::attrs::{parse_time, to_attr, Attrs};
use super::ids;
use crate::model::span::Attr;
use crate::model::{HookEvent, HookEventName};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Keeps the smaller value.
pub fn set_min(slot: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v.filter(|v| *v > 0) {
        *slot = Some(slot.map_or(v, |s| s.min(v)));
    }
}

/// Keeps the larger value.
pub fn set_max(slot: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v.filter(|v| *v > 0) {
        *slot = Some(slot.map_or(v, |s| s.max(v)));
    }
}

/// Keeps the longer text (ties broken by content), ignoring placeholders.
pub fn set_text(slot: &mut Option<String>, v: Option<&str>) {
    let Some(v) = v.filter(|v| !v.is_empty() && *v != "<REDACTED>") else {
        return;
    };
    let better = match slot {
        None => true,
        Some(s) => (v.len(), v) > (s.len(), s.as_str()),
    };
    if better {
        *slot = Some(v.to_string());
    }
}

/// Keeps the first-set value unless the new one sorts lower: any fixed rule
/// works, as long as it does not depend on arrival order.
pub fn set_key(slot: &mut Option<String>, v: Option<&str>) {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return;
    };
    if slot.as_deref().is_none_or(|s| v < s) {
        *slot = Some(v.to_string());
    }
}

/// Keeps the JSON value with the longer serialisation (ties by content).
pub fn set_json(slot: &mut Option<Value>, v: Option<&Value>) {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return;
    };
    let better = match slot {
        None => true,
        // The same value again, as when a PostToolUse repeats its
        // PreToolUse's input: nothing to serialize and compare.
        Some(s) if same_json(s, v) => false,
        Some(s) => {
            let (a, b) = (v.to_string(), s.to_string());
            (a.len(), &a) > (b.len(), &b)
        }
    };
    if better {
        *slot = Some(v.clone());
    }
}

/// Whether two values serialize the same: equal, with object keys in the
/// same order (`Value`'s own equality ignores their order, and
/// serialization does not).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, v), (l, w))| k == l && same_json(v, w))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w))
        }
        _ => a == b,
    }
}

/// Token counts of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

/// A prompt and its turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnFacts {
    /// UserPromptSubmit hook time.
    pub submit_at: Option<u64>,
    /// `user_prompt` log time.
    pub log_at: Option<u64>,
    /// Transcript time of the prompt record.
    pub tx_at: Option<u64>,
    pub prompt: Option<String>,
    /// Stop / StopFailure hook time.
    pub stop_at: Option<u64>,
    pub stop_error: Option<String>,
    pub last_message: Option<String>,
    /// Slash command name, when the prompt was one.
    pub command: Option<String>,
    /// Latest main-thread assistant text seen in logs: (time, text).
    pub last_response: Option<(u64, String)>,
    pub compactions: BTreeMap<u64, CompactionFacts>,
}

/// A compaction inside a turn, keyed by its start time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactionFacts {
    pub trigger: Option<String>,
    pub end_at: Option<u64>,
    pub pre_tokens: Option<u64>,
    pub post_tokens: Option<u64>,
    pub summary: Option<String>,
}

/// One model call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmFacts {
    pub prompt_id: Option<String>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    pub query_source: Option<String>,
    /// Usage and its source rank (3 log, 2 native span, 1 transcript).
    pub usage: Option<(u8, Usage)>,
    pub cost_usd: Option<f64>,
    /// `api_request` / `api_error` log time (the call's end).
    pub log_end: Option<u64>,
    pub duration_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub error: Option<String>,
    pub status_code: Option<i64>,
    pub attempts: Option<i64>,
    /// Transcript time of the assistant record.
    pub tx_at: Option<u64>,
    pub message_id: Option<String>,
    pub stop_reason: Option<String>,
    /// Output content blocks from the response body.
    pub output: Option<Value>,
    /// Output content blocks from the transcript, one record per block.
    pub tx_blocks: Vec<Value>,
    /// Assistant text from `assistant_response`.
    pub response_text: Option<String>,
    pub request_body_id: Option<String>,
    /// Trace and span of the log records (interaction or Agent execution).
    pub log_trace: Option<[u8; 16]>,
    pub log_span: Option<[u8; 8]>,
    /// Its span was exported: the content above only it shows (output,
    /// transcript blocks, response text) is no longer kept.
    pub released: bool,
}

/// One tool call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolFacts {
    pub name: Option<String>,
    pub prompt_id: Option<String>,
    pub agent_id: Option<String>,
    pub mcp_server: Option<String>,
    /// PreToolUse hook time.
    pub pre_at: Option<u64>,
    pub input: Option<Value>,
    /// PostToolUse / PostToolUseFailure / PermissionDenied hook time.
    pub post_at: Option<u64>,
    pub response: Option<Value>,
    pub failure: Option<String>,
    pub interrupted: bool,
    pub hook_duration_ms: Option<u64>,
    pub decision: Option<String>,
    pub decision_source: Option<String>,
    pub decision_at: Option<u64>,
    pub result_at: Option<u64>,
    pub result_success: Option<bool>,
    pub result_duration_ms: Option<u64>,
    pub denied_reason: Option<String>,
    pub denial_kind: Option<String>,
    pub tx_use_at: Option<u64>,
    pub tx_result_at: Option<u64>,
    pub tx_is_error: Option<bool>,
    pub tx_result: Option<Value>,
    /// The model call that asked for this tool.
    pub request_id: Option<String>,
    /// For Agent calls: the subagent it started.
    pub spawned_agent: Option<String>,
    pub log_trace: Option<[u8; 16]>,
    /// Its span was exported: its input and output are no longer kept.
    pub released: bool,
}

/// A subagent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentFacts {
    pub agent_type: Option<String>,
    /// Agent tool call that spawned it, from the transcript meta file.
    pub meta_tool_use_id: Option<String>,
    pub description: Option<String>,
    pub prompt_id: Option<String>,
    pub start_at: Option<u64>,
    pub stop_at: Option<u64>,
    pub last_message: Option<String>,
    pub transcript_path: Option<String>,
}

/// The attributes of native spans that the merge reads; the others are not
/// kept (they reach exporters that asked for native spans unchanged).
pub const NATIVE_ATTRS: &[&str] = &[
    "agent_id",
    "anthropic.mcp.server.name",
    "attempt",
    "cache_creation_tokens",
    "cache_read_tokens",
    "client_request_id",
    "decision",
    "gen_ai.response.id",
    "gen_ai.tool.call.id",
    "input_tokens",
    "model",
    "output_tokens",
    "query_source",
    "query_source_safe",
    "request_id",
    "source",
    "status_code",
    "stop_reason",
    "tool_name",
    "tool_use_id",
    "ttft_ms",
    "user_prompt",
];

/// The attributes of a `claude_code.tool` span's `tool.output` event that
/// the merge reads.
pub const NATIVE_OUTPUT_ATTRS: &[&str] = &["content", "diff", "output"];

/// Set on a native model call from its `gen_ai.request.attempt` events.
pub const NATIVE_ATTEMPTS: &str = "ccotel.attempts";

/// A native beta span as received (the attributes the merge reads).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeSpan {
    pub name: String,
    pub trace_id: [u8; 16],
    pub parent: Option<[u8; 8]>,
    pub start: u64,
    pub end: u64,
    pub error: Option<String>,
    /// Sorted by name.
    pub attrs: Box<[(&'static str, Attr)]>,
    /// Attributes of the `tool.output` event of a `claude_code.tool` span,
    /// when content logging is on; sorted by name.
    pub output: Option<Box<[(&'static str, Attr)]>>,
}

/// The attributes of `list` named in `keep` (sorted), under their static
/// names, sorted.
fn kept_attrs(list: &[KeyValue], keep: &[&'static str]) -> Vec<(&'static str, Attr)> {
    let attrs = Attrs::new(list);
    keep.iter()
        .filter_map(|k| attrs.get(k).and_then(to_attr).map(|v| (*k, v)))
        .collect()
}

/// The value of `key` in attributes sorted by name.
pub fn attr_of<'a>(attrs: &'a [(&'static str, Attr)], key: &str) -> Option<&'a Attr> {
    attrs
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| &attrs[i].1)
}

impl NativeSpan {
    pub fn str(&self, key: &str) -> Option<&str> {
        attr_of(&self.attrs, key).and_then(Attr::as_str)
    }
    pub fn i64(&self, key: &str) -> Option<i64> {
        attr_of(&self.attrs, key).and_then(|a| match a {
            Attr::Str(s) => s.parse().ok(),
            other => other.as_i64().or_else(|| other.as_f64().map(|f| f as i64)),
        })
    }
}

/// Facts about the session as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFacts {
    pub start_at: Option<u64>,
    pub start_source: Option<String>,
    pub end_at: Option<u64>,
    pub end_reason: Option<String>,
    pub cwd: Option<String>,
    pub git_branch: Option<String>,
    pub version: Option<String>,
    pub entrypoint: Option<String>,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub user_email: Option<String>,
    pub account_uuid: Option<String>,
    pub permission_mode: Option<String>,
    pub transcript_path: Option<String>,
    pub models: BTreeSet<String>,
    pub resource: BTreeMap<String, Attr>,
    /// Native metric points, keyed so that a replayed export counts once.
    pub metric_points: BTreeMap<(String, String, u64), f64>,
}

/// Everything known about one session. (Entities are boxed: a B-tree node
/// holds room for eleven values, most of it empty in a small session.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    pub id: String,
    pub facts: SessionFacts,
    pub turns: BTreeMap<String, Box<TurnFacts>>,
    pub llms: BTreeMap<String, Box<LlmFacts>>,
    pub tools: BTreeMap<String, Box<ToolFacts>>,
    pub agents: BTreeMap<String, Box<AgentFacts>>,
    pub natives: BTreeMap<[u8; 8], Box<NativeSpan>>,
    /// Native trace id → prompt id, from log records carrying both.
    pub trace_prompt: BTreeMap<[u8; 16], String>,
    /// request_body_id → input messages of that request, as JSON text.
    pub request_bodies: BTreeMap<String, String>,
    /// Bytes read so far of each transcript file.
    pub transcript_offsets: BTreeMap<String, u64>,
    /// The prompt id in force at that offset of each transcript file: only
    /// user lines carry `promptId`, the assistant lines after them do not,
    /// and a read may stop between the two.
    pub transcript_prompts: BTreeMap<String, String>,
}

fn id8(v: &[u8]) -> Option<[u8; 8]> {
    <[u8; 8]>::try_from(v).ok().filter(|b| *b != [0; 8])
}

fn id16(v: &[u8]) -> Option<[u8; 16]> {
    <[u8; 16]>::try_from(v).ok().filter(|b| *b != [0; 16])
}

/// The Agent tool's name (stream-json still calls it Task).
pub fn is_agent_tool(name: &str) -> bool {
    name == "Agent" || name == "Task"
}

impl Session {
    pub fn new(id: &str) -> Session {
        Session {
            id: id.to_string(),
            ..Default::default()
        }
    }

    /// Applies one hook event received at `at` (unix ns).
    pub fn apply_hook(&mut self, ev: &HookEvent, at: u64) {
        use HookEventName::*;
        let f = &mut self.facts;
        set_key(&mut f.cwd, ev.str("cwd"));
        set_key(&mut f.transcript_path, ev.str("transcript_path"));
        set_key(&mut f.permission_mode, ev.str("permission_mode"));
        let prompt_id = ev.str("prompt_id");
        let agent_id = ev.str("agent_id");
        let tool_use_id = ev.str("tool_use_id");
        if let Some(a) = agent_id {
            let agent = self.agents.entry(a.to_string()).or_default();
            set_key(&mut agent.agent_type, ev.str("agent_type"));
            set_key(&mut agent.prompt_id, prompt_id);
        }
        match ev.name {
            SessionStart => {
                set_min(&mut self.facts.start_at, Some(at));
                set_key(&mut self.facts.start_source, ev.str("source"));
                if let Some(m) = ev.str("model") {
                    self.facts.models.insert(m.to_string());
                }
            }
            SessionEnd => {
                set_max(&mut self.facts.end_at, Some(at));
                set_key(&mut self.facts.end_reason, ev.str("reason"));
            }
            UserPromptSubmit | UserPromptExpansion => {
                if let Some(p) = prompt_id {
                    let turn = self.turns.entry(p.to_string()).or_default();
                    set_min(&mut turn.submit_at, Some(at));
                    set_text(&mut turn.prompt, ev.str("prompt"));
                    if ev.name == UserPromptExpansion {
                        set_key(&mut turn.command, ev.str("command_name"));
                    }
                }
            }
            Stop | StopFailure => {
                if let Some(p) = prompt_id {
                    let turn = self.turns.entry(p.to_string()).or_default();
                    set_max(&mut turn.stop_at, Some(at));
                    set_text(&mut turn.last_message, ev.str("last_assistant_message"));
                    if ev.name == StopFailure {
                        let detail = ev.str("error_details").or(ev.str("error"));
                        set_text(
                            &mut turn.stop_error,
                            Some(detail.unwrap_or("the turn failed")),
                        );
                    }
                }
            }
            SubagentStart | SubagentStop => {
                if let Some(a) = agent_id {
                    let agent = self.agents.entry(a.to_string()).or_default();
                    if ev.name == SubagentStart {
                        set_min(&mut agent.start_at, Some(at));
                    } else {
                        set_max(&mut agent.stop_at, Some(at));
                        set_text(&mut agent.last_message, ev.str("last_assistant_message"));
                        set_key(&mut agent.transcript_path, ev.str("agent_transcript_path"));
                    }
                }
            }
            PreCompact | PostCompact => {
                if let Some(p) = prompt_id {
                    let turn = self.turns.entry(p.to_string()).or_default();
                    if ev.name == PreCompact {
                        let c = turn.compactions.entry(at).or_default();
                        set_key(&mut c.trigger, ev.str("trigger"));
                    } else if let Some((_, c)) = turn.compactions.range_mut(..=at).next_back() {
                        set_max(&mut c.end_at, Some(at));
                        set_text(&mut c.summary, ev.str("compact_summary"));
                    }
                }
            }
            PreToolUse | PostToolUse | PostToolUseFailure | PermissionDenied => {
                let Some(id) = tool_use_id else { return };
                let tool = self.tools.entry(id.to_string()).or_default();
                set_key(&mut tool.name, ev.str("tool_name"));
                set_key(&mut tool.prompt_id, prompt_id);
                set_key(&mut tool.agent_id, agent_id);
                set_key(
                    &mut tool.mcp_server,
                    ev.get("mcp_server")
                        .and_then(|m| m.get("name"))
                        .and_then(Value::as_str),
                );
                set_json(&mut tool.input, ev.get("tool_input"));
                match ev.name {
                    PreToolUse => set_min(&mut tool.pre_at, Some(at)),
                    PostToolUse => {
                        set_max(&mut tool.post_at, Some(at));
                        set_json(&mut tool.response, ev.get("tool_response"));
                        set_max(
                            &mut tool.hook_duration_ms,
                            ev.get("duration_ms").and_then(Value::as_u64),
                        );
                        if let Some(agent) = ev
                            .get("tool_response")
                            .and_then(|r| r.get("agentId"))
                            .and_then(Value::as_str)
                        {
                            set_key(&mut tool.spawned_agent, Some(agent));
                        }
                    }
                    PostToolUseFailure => {
                        set_max(&mut tool.post_at, Some(at));
                        set_text(
                            &mut tool.failure,
                            Some(ev.str("error").unwrap_or("the tool failed")),
                        );
                        tool.interrupted |=
                            ev.get("is_interrupt").and_then(Value::as_bool) == Some(true);
                        set_max(
                            &mut tool.hook_duration_ms,
                            ev.get("duration_ms").and_then(Value::as_u64),
                        );
                    }
                    _ => {
                        set_max(&mut tool.post_at, Some(at));
                        set_text(&mut tool.denied_reason, ev.str("reason"));
                        set_key(&mut tool.decision, Some("reject"));
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies one Claude Code log record.
    pub fn apply_log(&mut self, record: &LogRecord, resource: &[KeyValue]) {
        let a = Attrs::new(&record.attributes);
        let Some(name) = a.str("event.name") else {
            return;
        };
        let at = a
            .str("event.timestamp")
            .and_then(parse_time)
            .or(Some(record.time_unix_nano).filter(|t| *t > 0))
            .or(Some(record.observed_time_unix_nano).filter(|t| *t > 0));
        self.apply_common(&a, resource);
        let prompt_id = a.str("prompt.id");
        let agent_id = a.str("agent_id");
        let trace = id16(&record.trace_id);
        if let (Some(t), Some(p)) = (trace, prompt_id) {
            // Every event carries the active interaction's trace: one prompt each.
            self.trace_prompt.entry(t).or_insert_with(|| p.to_string());
        }
        match name {
            "user_prompt" => {
                if let Some(p) = prompt_id {
                    let turn = self.turns.entry(p.to_string()).or_default();
                    set_min(&mut turn.log_at, at);
                    set_text(&mut turn.prompt, a.text("prompt").or(a.text("prompt_text")));
                    set_key(&mut turn.command, a.text("command_name"));
                }
            }
            "api_request" | "api_error" => {
                let key = a
                    .text("request_id")
                    .or(a.text("client_request_id"))
                    .map(str::to_string);
                let Some(key) = key else { return };
                let llm = self.llms.entry(key).or_default();
                set_key(&mut llm.prompt_id, prompt_id);
                set_key(&mut llm.agent_id, agent_id);
                set_key(&mut llm.model, a.text("model"));
                set_key(&mut llm.query_source, a.text("query_source"));
                set_max(&mut llm.log_end, at);
                set_max(&mut llm.duration_ms, a.i64("duration_ms").map(|v| v as u64));
                set_max(&mut llm.ttft_ms, a.i64("ttft_ms").map(|v| v as u64));
                if llm.log_trace.is_none() {
                    llm.log_trace = trace;
                }
                if llm.log_span.is_none() {
                    llm.log_span = id8(&record.span_id);
                }
                if let Some(m) = a.text("model") {
                    self.facts.models.insert(m.to_string());
                }
                if name == "api_request" {
                    let usage = Usage {
                        input: a.i64("input_tokens").unwrap_or(0).max(0) as u64,
                        output: a.i64("output_tokens").unwrap_or(0).max(0) as u64,
                        cache_read: a.i64("cache_read_tokens").unwrap_or(0).max(0) as u64,
                        cache_creation: a.i64("cache_creation_tokens").unwrap_or(0).max(0) as u64,
                    };
                    if llm.usage.is_none_or(|(r, u)| (3, usage) > (r, u)) {
                        llm.usage = Some((3, usage));
                    }
                    if let Some(c) = a.f64("cost_usd") {
                        llm.cost_usd = Some(llm.cost_usd.map_or(c, |x| x.max(c)));
                    }
                } else {
                    set_text(&mut llm.error, Some(a.text("error").unwrap_or("API error")));
                    if let Some(s) = a.i64("status_code") {
                        llm.status_code = Some(llm.status_code.map_or(s, |x| x.max(s)));
                    }
                    if let Some(n) = a.i64("attempt") {
                        llm.attempts = Some(llm.attempts.map_or(n, |x| x.max(n)));
                    }
                }
            }
            "api_request_body" => {
                if let (Some(id), Some(body)) = (a.text("request_body_id"), a.text("body")) {
                    // Only the messages are kept: the rest of a raw body (tools,
                    // system prompt) is skipped by the parser, not built.
                    if !self.request_bodies.contains_key(id) {
                        if let Ok(RequestBody {
                            messages: Some(messages),
                        }) = serde_json::from_str(body)
                        {
                            self.request_bodies
                                .insert(id.to_string(), messages.to_string());
                        }
                    }
                }
            }
            "api_response_body" => {
                let Some(rid) = a.text("request_id") else {
                    return;
                };
                let llm = self.llms.entry(rid.to_string()).or_default();
                set_key(&mut llm.request_body_id, a.text("request_body_id"));
                set_key(&mut llm.message_id, a.text("message.id"));
                set_key(&mut llm.agent_id, agent_id);
                set_key(&mut llm.prompt_id, prompt_id);
                if let Some(body) = a.text("body") {
                    if let Ok(v) = serde_json::from_str::<ResponseBody>(body) {
                        set_json(&mut llm.output, v.content.as_ref());
                        set_key(
                            &mut llm.stop_reason,
                            v.stop_reason.as_ref().and_then(Value::as_str),
                        );
                    }
                }
            }
            "assistant_response" => {
                let Some(rid) = a.text("request_id") else {
                    return;
                };
                let text = a.text("response");
                let llm = self.llms.entry(rid.to_string()).or_default();
                set_text(&mut llm.response_text, text);
                set_key(&mut llm.agent_id, agent_id);
                set_key(&mut llm.prompt_id, prompt_id);
                if let (Some(p), Some(t), Some(at), None) = (prompt_id, text, at, agent_id) {
                    let turn = self.turns.entry(p.to_string()).or_default();
                    if turn
                        .last_response
                        .as_ref()
                        .is_none_or(|(when, old)| (at, t) > (*when, old.as_str()))
                    {
                        turn.last_response = Some((at, t.to_string()));
                    }
                }
            }
            "tool_decision" | "tool_result" => {
                let Some(id) = a.text("tool_use_id") else {
                    return;
                };
                let tool = self.tools.entry(id.to_string()).or_default();
                set_key(
                    &mut tool.name,
                    a.text("tool_name").filter(|n| *n != "mcp_tool"),
                );
                set_key(&mut tool.prompt_id, prompt_id);
                set_key(&mut tool.agent_id, agent_id);
                set_key(&mut tool.request_id, a.text("request_id"));
                if tool.log_trace.is_none() {
                    tool.log_trace = trace;
                }
                if name == "tool_decision" {
                    set_key(&mut tool.decision, a.text("decision"));
                    set_key(&mut tool.decision_source, a.text("source"));
                    set_min(&mut tool.decision_at, at);
                } else {
                    set_max(&mut tool.result_at, at);
                    if let Some(ok) = a.bool("success") {
                        // A failure anywhere wins over a success elsewhere.
                        tool.result_success = Some(tool.result_success.unwrap_or(true) && ok);
                    }
                    set_max(
                        &mut tool.result_duration_ms,
                        a.i64("duration_ms").map(|v| v as u64),
                    );
                    if a.bool("success") == Some(false) {
                        set_text(
                            &mut tool.failure,
                            Some(
                                a.text("error")
                                    .or(a.text("error_type"))
                                    .unwrap_or("the tool failed"),
                            ),
                        );
                    }
                    if let Some(input) = a.text("tool_input") {
                        if let Ok(v) = serde_json::from_str::<Value>(input) {
                            if tool.input.is_none() {
                                tool.input = Some(v);
                            }
                        }
                    }
                    set_key(&mut self.facts.git_branch, a.text("git_branch"));
                }
            }
            "compaction" => {
                if let (Some(p), Some(at)) = (prompt_id, at) {
                    let start = at.saturating_sub(
                        a.i64("duration_ms").unwrap_or(0).max(0) as u64 * 1_000_000,
                    );
                    let turn = self.turns.entry(p.to_string()).or_default();
                    // Join a compaction already opened by PreCompact within 5 s.
                    let key = turn
                        .compactions
                        .range(start.saturating_sub(5_000_000_000)..=at)
                        .map(|(k, _)| *k)
                        .next()
                        .unwrap_or(start);
                    let c = turn.compactions.entry(key).or_default();
                    set_key(&mut c.trigger, a.text("trigger"));
                    set_max(&mut c.end_at, Some(at));
                    set_max(&mut c.pre_tokens, a.i64("pre_tokens").map(|v| v as u64));
                    set_max(&mut c.post_tokens, a.i64("post_tokens").map(|v| v as u64));
                }
            }
            "subagent_completed" => {
                if let Some(agent) = agent_id {
                    let ag = self.agents.entry(agent.to_string()).or_default();
                    set_key(&mut ag.agent_type, a.text("agent_type"));
                    set_max(&mut ag.stop_at, at);
                }
            }
            _ => {}
        }
    }

    /// Session-wide attributes every Claude Code record carries.
    fn apply_common(&mut self, a: &Attrs, resource: &[KeyValue]) {
        let f = &mut self.facts;
        set_key(&mut f.user_id, a.text("user.id"));
        set_key(&mut f.organization_id, a.text("organization.id"));
        set_key(&mut f.user_email, a.text("user.email"));
        set_key(&mut f.account_uuid, a.text("user.account_uuid"));
        set_key(&mut f.entrypoint, a.text("app.entrypoint"));
        let r = Attrs::new(resource);
        set_key(&mut f.version, r.text("service.version"));
        for (k, v) in r.to_map() {
            f.resource.entry(k).or_insert(v);
        }
    }

    /// Applies one native beta span.
    pub fn apply_span(&mut self, span: &Span, resource: &[KeyValue]) {
        let a = Attrs::new(&span.attributes);
        self.apply_common(&a, resource);
        let (Some(id), Some(trace)) = (id8(&span.span_id), id16(&span.trace_id)) else {
            return;
        };
        if let Some(m) = a.text("model") {
            self.facts.models.insert(m.to_string());
        }
        let error = span
            .status
            .as_ref()
            .filter(|s| s.code == 2)
            .map(|s| {
                a.text("error")
                    .map(str::to_string)
                    .unwrap_or_else(|| s.message.clone())
            })
            .map(|m| if m.is_empty() { "error".to_string() } else { m });
        let output = span
            .events
            .iter()
            .find(|e| e.name == "tool.output")
            .filter(|_| span.name == "claude_code.tool")
            .map(|e| kept_attrs(&e.attributes, NATIVE_OUTPUT_ATTRS).into_boxed_slice());
        let mut attrs = kept_attrs(&span.attributes, NATIVE_ATTRS);
        let attempts = span
            .events
            .iter()
            .filter(|e| e.name == "gen_ai.request.attempt")
            .count() as i64;
        if attempts > 0 {
            attrs.push((NATIVE_ATTEMPTS, Attr::Int(attempts)));
            attrs.sort_by_key(|(k, _)| *k);
        }
        self.natives.insert(
            id,
            Box::new(NativeSpan {
                name: span.name.clone(),
                trace_id: trace,
                parent: id8(&span.parent_span_id),
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano,
                error,
                attrs: attrs.into_boxed_slice(),
                output,
            }),
        );
    }

    /// Applies the data points of native metrics (cost and tokens), keyed by
    /// metric, attributes and time so that a replayed export counts once.
    pub fn apply_metric_point(&mut self, metric: &str, attrs: &[KeyValue], time: u64, value: f64) {
        let a = Attrs::new(attrs);
        let key = format!(
            "{}|{}|{}",
            a.str("type").unwrap_or(""),
            a.str("model").unwrap_or(""),
            a.str("query_source").unwrap_or("")
        );
        self.facts
            .metric_points
            .insert((metric.to_string(), key, time), value);
    }

    /// Drops the content that only spans already exported show: a model
    /// call's output and input messages, a tool call's input and output.
    /// Everything another span reads (ids, times, usage, cost, errors, turn
    /// texts for the root) stays, so the spans still to come are the same as
    /// if nothing had been dropped. Content arriving later for a released
    /// call is dropped again by the next call. Returns how many calls were
    /// released by this call (what freed memory the heap could hand back).
    pub fn release_exported(&mut self, exported: &HashSet<[u8; 8]>) -> usize {
        let sid = self.id.as_str();
        let mut newly = 0;
        for (key, llm) in &mut self.llms {
            if !llm.released && exported.contains(&ids::span_id(sid, "llm", key)) {
                llm.released = true;
                newly += 1;
            }
            if llm.released {
                llm.output = None;
                llm.tx_blocks = Vec::new();
                llm.response_text = None;
            }
        }
        if !self.request_bodies.is_empty() {
            let mut used: BTreeMap<&str, bool> = BTreeMap::new();
            for llm in self.llms.values() {
                if let Some(id) = &llm.request_body_id {
                    *used.entry(id.as_str()).or_insert(true) &= llm.released;
                }
            }
            // Bodies no call names yet may still be claimed by a late response.
            self.request_bodies
                .retain(|id, _| !used.get(id.as_str()).copied().unwrap_or(false));
        }
        for (key, tool) in &mut self.tools {
            if !tool.released && exported.contains(&ids::span_id(sid, "tool", key)) {
                tool.released = true;
                newly += 1;
            }
            if tool.released {
                tool.input = None;
                tool.response = None;
                // Whether there is a result still decides the call's state
                // (its errors count on the turn and the session).
                if let Some(r) = &mut tool.tx_result {
                    if !r.is_null() {
                        *r = Value::Null;
                    }
                }
            }
        }
        for span in self.natives.values_mut() {
            if span.output.is_none() {
                continue;
            }
            let tool = span.str("tool_use_id").or(span.str("gen_ai.tool.call.id"));
            if tool.is_some_and(|t| exported.contains(&ids::span_id(sid, "tool", t))) {
                span.output = None;
            }
        }
        newly
    }
}

/// The part of a raw API request body the merge uses.
#[derive(serde::Deserialize)]
struct RequestBody {
    #[serde(default)]
    messages: Option<Value>,
}

/// The parts of a raw API response body the merge uses.
#[derive(serde::Deserialize)]
struct ResponseBody {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON slot keeps the same value whichever copy came first, also
    /// when two copies differ only in the order of their keys.
    #[test]
    fn a_json_slot_does_not_depend_on_arrival_order() {
        let a = serde_json::json!({"command": "ls", "timeout": 5});
        let b: Value = serde_json::from_str(r#"{"timeout": 5, "command": "ls"}"#).unwrap();
        let longer = serde_json::json!({"command": "ls -la", "timeout": 5});
        for (x, y) in [(&a, &b), (&b, &a), (&a, &longer), (&longer, &a), (&a, &a)] {
            let (mut one, mut two) = (None, None);
            set_json(&mut one, Some(x));
            set_json(&mut one, Some(y));
            set_json(&mut two, Some(y));
            set_json(&mut two, Some(x));
            assert_eq!(
                one.as_ref().map(Value::to_string),
                two.as_ref().map(Value::to_string),
                "{x} then {y}"
            );
        }
        assert!(same_json(&a, &a.clone()));
        assert!(!same_json(&a, &b), "the same entries in another order");
        assert!(!same_json(&serde_json::json!(1), &serde_json::json!(1.0)));
    }

    /// The kept attributes are looked up by binary search.
    #[test]
    fn kept_native_attribute_names_are_sorted_and_unique() {
        for list in [NATIVE_ATTRS, NATIVE_OUTPUT_ATTRS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }
}
