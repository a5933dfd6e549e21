//! Joining the sources into the session tree: session → turn → llm/tool, with
//! a subagent's spans under the Agent call that started it. A pure function of
//! the session's facts, so the same facts always give the same tree.
//!
//! Precedence when sources disagree (documented in the README):
//! - timing: native span > hook wall clock > log event time > transcript time;
//! - tokens and cost: `api_request` log > native span > transcript;
//! - tool input/output: hook > transcript > log / native span event;
//! - status: a failure reported by any source marks the span as an error; a
//!   denial (rule, user, or hook) marks it denied.

use super::ids;
use super::session::{attr_of, is_agent_tool, LlmFacts, NativeSpan, Session, ToolFacts, Usage};
use crate::model::span::{Attr, SpanKind, SpanRecord, SpanStatus};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A rendered span and whether it may be exported yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub span: SpanRecord,
    /// No source will end or change this span any more in the normal course.
    pub complete: bool,
    /// Its parent is known for sure (a subagent span waits for its Agent call).
    pub ready: bool,
}

/// The session's tree and the resource to export it under.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub spans: Vec<Rendered>,
    pub resource: BTreeMap<String, Attr>,
}

/// How the session stands from the engine's point of view.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// The session was closed by the idle timeout at this time (unix ns).
    pub idle_closed_at: Option<u64>,
    /// Longest content attribute (prompts, tool input/output, messages).
    pub max_content: usize,
}

const NS_PER_MS: u64 = 1_000_000;

/// Maps Claude Code's raw query source to main / subagent / auxiliary.
pub fn query_source_class(raw: &str) -> &'static str {
    if raw.starts_with("repl_main_thread") || raw.starts_with("sdk") || raw == "main" {
        "main"
    } else if raw.starts_with("agent") || raw == "hook_agent" || raw == "subagent" {
        "subagent"
    } else {
        "auxiliary"
    }
}

fn truncate(s: String, max: usize) -> String {
    if max == 0 || s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[truncated by ccotel: {} bytes]", &s[..cut], s.len())
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Indexes of the native spans by what they describe. (A native attribute
/// read here must be listed in [`super::session::NATIVE_ATTRS`]: the others
/// are not kept.)
#[derive(Default)]
struct Natives<'a> {
    tool: BTreeMap<String, &'a NativeSpan>,
    exec: BTreeMap<String, &'a NativeSpan>,
    blocked: BTreeMap<String, &'a NativeSpan>,
    llm: BTreeMap<String, &'a NativeSpan>,
    interaction: BTreeMap<[u8; 16], &'a NativeSpan>,
    /// tool and tool.execution span ids → tool_use_id
    span_tool: BTreeMap<[u8; 8], String>,
}

impl<'a> Natives<'a> {
    fn index(session: &'a Session) -> Natives<'a> {
        let mut n = Natives::default();
        for (id, span) in &session.natives {
            match span.name.as_str() {
                "claude_code.tool" | "claude_code.tool.execution" => {
                    if let Some(t) = span.str("tool_use_id").or(span.str("gen_ai.tool.call.id")) {
                        n.span_tool.insert(*id, t.to_string());
                        let slot = if span.name == "claude_code.tool" {
                            &mut n.tool
                        } else {
                            &mut n.exec
                        };
                        slot.insert(t.to_string(), span);
                    }
                }
                "claude_code.llm_request" => {
                    n.llm.insert(llm_key(id, span), span);
                }
                "claude_code.interaction" => {
                    n.interaction.insert(span.trace_id, span);
                }
                _ => {}
            }
        }
        for span in session.natives.values() {
            if span.name == "claude_code.tool.blocked_on_user" {
                if let Some(t) = span.parent.and_then(|p| n.span_tool.get(&p)) {
                    n.blocked.insert(t.clone(), span);
                }
            }
        }
        n
    }
}

/// The key of a native model call: its request id when it has one.
fn llm_key(id: &[u8; 8], span: &NativeSpan) -> String {
    span.str("request_id")
        .or(span.str("gen_ai.response.id"))
        .or(span.str("client_request_id"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("span:{}", hex::encode(id)))
}

/// The prompt a native trace belongs to; a synthetic key when no log said.
fn prompt_of_trace(session: &Session, trace: &[u8; 16]) -> String {
    session
        .trace_prompt
        .get(trace)
        .cloned()
        .unwrap_or_else(|| format!("trace:{}", hex::encode(trace)))
}

/// Which Agent call spawned each subagent, from the strongest evidence.
fn agent_tools(session: &Session, natives: &Natives) -> BTreeMap<String, String> {
    // (agent, rank) → candidate tool ids; the highest rank wins, then the
    // smallest id, so the choice never depends on arrival order.
    let mut evidence: BTreeMap<String, (u8, String)> = BTreeMap::new();
    let mut offer = |agent: &str, rank: u8, tool: &str| {
        let e = evidence
            .entry(agent.to_string())
            .or_insert((rank, tool.to_string()));
        if (rank, std::cmp::Reverse(tool)) > (e.0, std::cmp::Reverse(e.1.as_str())) {
            *e = (rank, tool.to_string());
        }
    };
    for (tool_id, t) in &session.tools {
        if let Some(agent) = &t.spawned_agent {
            offer(agent, 4, tool_id);
        }
    }
    for (agent_id, a) in &session.agents {
        if let Some(t) = &a.meta_tool_use_id {
            offer(agent_id, 3, t);
        }
    }
    for span in session.natives.values() {
        if let (Some(agent), Some(parent)) = (span.str("agent_id"), span.parent) {
            if let Some(t) = natives.span_tool.get(&parent) {
                offer(agent, 2, t);
            }
        }
    }
    for llm in session.llms.values() {
        if let (Some(agent), Some(span)) = (&llm.agent_id, llm.log_span) {
            if let Some(t) = natives.span_tool.get(&span) {
                offer(agent, 2, t);
            }
        }
    }
    // Last resort: one unexplained subagent and one unexplained Agent call
    // in the same prompt belong together.
    let mut open_agents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (agent_id, a) in &session.agents {
        if !evidence.contains_key(agent_id) {
            if let Some(p) = &a.prompt_id {
                open_agents
                    .entry(p.clone())
                    .or_default()
                    .push(agent_id.clone());
            }
        }
    }
    let claimed: BTreeSet<&String> = evidence.values().map(|(_, t)| t).collect();
    let mut open_calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tool_id, t) in &session.tools {
        let is_agent = t.name.as_deref().is_some_and(is_agent_tool)
            || natives
                .tool
                .get(tool_id)
                .and_then(|n| n.str("tool_name"))
                .is_some_and(is_agent_tool);
        if is_agent && !claimed.contains(tool_id) && t.agent_id.is_none() {
            if let Some(p) = &t.prompt_id {
                open_calls
                    .entry(p.clone())
                    .or_default()
                    .push(tool_id.clone());
            }
        }
    }
    let mut out: BTreeMap<String, String> =
        evidence.into_iter().map(|(a, (_, t))| (a, t)).collect();
    for (prompt, agents) in open_agents {
        if let (1, Some(calls)) = (agents.len(), open_calls.get(&prompt)) {
            if calls.len() == 1 {
                out.insert(agents[0].clone(), calls[0].clone());
            }
        }
    }
    out
}

/// The prompt and the subagent a call belongs to: its own facts first, then
/// its native span, then the trace of its log records.
fn owner<'a>(
    session: &'a Session,
    prompt_id: &'a Option<String>,
    agent_id: &'a Option<String>,
    log_trace: Option<[u8; 16]>,
    native: Option<&'a NativeSpan>,
) -> (Option<Cow<'a, str>>, Option<&'a str>) {
    let prompt = prompt_id
        .as_deref()
        .map(Cow::Borrowed)
        .or_else(|| native.map(|n| Cow::Owned(prompt_of_trace(session, &n.trace_id))))
        .or_else(|| log_trace.map(|t| Cow::Owned(prompt_of_trace(session, &t))));
    let agent = agent_id
        .as_deref()
        .or_else(|| native.and_then(|n| n.str("agent_id")));
    (prompt, agent)
}

/// The keys of two sorted maps, in order, each once (a tick walks every
/// call of the session: no set is built for it).
fn sorted_union<'a>(
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
) -> Vec<&'a String> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::with_capacity(a.size_hint().0.max(b.size_hint().0));
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => {
                b.next();
                a.next()
            }
            (Some(x), Some(y)) if x < y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// One entity placed in the tree, before its span is built. (Borrowed from
/// the session: a tick places every call of the session, exported or not.)
struct Placed<'a> {
    prompt: Option<Cow<'a, str>>,
    agent: Option<&'a str>,
    start: Option<u64>,
    end: Option<u64>,
}

struct Totals {
    llm_calls: u64,
    tool_calls: u64,
    usage: Usage,
    cost: f64,
    errors: u64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            llm_calls: 0,
            tool_calls: 0,
            usage: Usage::default(),
            cost: 0.0,
            errors: 0,
        }
    }
    fn write(&self, attrs: &mut BTreeMap<String, Attr>) {
        attrs.insert("totals.llm_calls".into(), self.llm_calls.into());
        attrs.insert("totals.tool_calls".into(), self.tool_calls.into());
        attrs.insert("totals.input_tokens".into(), self.usage.input.into());
        attrs.insert("totals.output_tokens".into(), self.usage.output.into());
        attrs.insert(
            "totals.cache_read_tokens".into(),
            self.usage.cache_read.into(),
        );
        attrs.insert(
            "totals.cache_creation_tokens".into(),
            self.usage.cache_creation.into(),
        );
        attrs.insert("totals.cost_usd".into(), Attr::Double(round_usd(self.cost)));
        attrs.insert("totals.errors".into(), self.errors.into());
    }
}

fn round_usd(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// Builds the session's tree.
pub fn render(session: &Session, opts: &RenderOptions) -> Tree {
    build(session, opts, None)
}

/// Builds the session's tree without the spans in `exported`, but for the
/// root. A long session is rendered every tick while it is active, and
/// nearly all of it has been exported already: its exported calls and turns
/// still count in the totals, bounds and texts of the spans still to come,
/// but building their attributes again would make every tick cost as much
/// as the whole session. Every span it does return is the one [`render`]
/// returns. A call released by [`Session::release_exported`] was in
/// `exported` then, and counts as exported.
pub fn render_pending(
    session: &Session,
    opts: &RenderOptions,
    exported: &HashSet<[u8; 8]>,
) -> Tree {
    build(session, opts, Some(exported))
}

/// The tree, without the spans in `skip` (and the released calls) when
/// given.
fn build(session: &Session, opts: &RenderOptions, skip: Option<&HashSet<[u8; 8]>>) -> Tree {
    let no_skip = HashSet::new();
    let exported = skip.unwrap_or(&no_skip);
    let skip_released = skip.is_some();
    // The span id of a call still to render, or none for an exported one
    // (a released call was exported: its span id is not even hashed).
    let pending = |released: bool, id: &dyn Fn() -> [u8; 8]| {
        (!(skip_released && released))
            .then(id)
            .filter(|id| !exported.contains(id))
    };
    let sid = session.id.as_str();
    let trace_id = ids::trace_id(sid);
    let natives = Natives::index(session);
    let agent_tool = agent_tools(session, &natives);
    let max = opts.max_content;

    let turn_span = |prompt: &str| ids::span_id(sid, "turn", prompt);
    let tool_span = |tool: &str| ids::span_id(sid, "tool", tool);
    let root_span = ids::span_id(sid, "session", "");

    // ---- model calls
    let llm_keys = sorted_union(session.llms.keys(), natives.llm.keys());
    let empty_llm = LlmFacts::default();
    let mut llms: Vec<(Placed, Option<SpanRecord>, Usage, f64, bool)> = Vec::new();
    for key in llm_keys {
        let f = session.llms.get(key).map_or(&empty_llm, |f| f);
        let native = natives.llm.get(key).copied();
        // A call known only from a response body or assistant text is not a
        // call of its own (the request id joins it to one that is).
        if native.is_none() && f.log_end.is_none() && f.tx_at.is_none() {
            continue;
        }
        let (prompt, agent) = owner(session, &f.prompt_id, &f.agent_id, f.log_trace, native);
        let duration = f.duration_ms.map(|d| d * NS_PER_MS);
        let start = native
            .map(|n| n.start)
            .or_else(|| f.log_end.zip(duration).map(|(e, d)| e.saturating_sub(d)))
            .or(f.log_end)
            .or(f.tx_at);
        let end = native.map(|n| n.end).or(f.log_end).or(f.tx_at);
        let usage = f
            .usage
            .map(|(_, u)| u)
            .or_else(|| {
                native.map(|n| Usage {
                    input: n.i64("input_tokens").unwrap_or(0) as u64,
                    output: n.i64("output_tokens").unwrap_or(0) as u64,
                    cache_read: n.i64("cache_read_tokens").unwrap_or(0) as u64,
                    cache_creation: n.i64("cache_creation_tokens").unwrap_or(0) as u64,
                })
            })
            .unwrap_or_default();
        let cost = f.cost_usd.unwrap_or(0.0);
        let error = f
            .error
            .clone()
            .or_else(|| native.and_then(|n| n.error.clone()));
        let placed = Placed {
            prompt,
            agent,
            start,
            end,
        };
        let Some(span_id) = pending(f.released, &|| ids::span_id(sid, "llm", key)) else {
            llms.push((placed, None, usage, cost, error.is_some()));
            continue;
        };
        let model = f
            .model
            .clone()
            .or_else(|| native.and_then(|n| n.str("model")).map(str::to_string));
        let raw_source = f
            .query_source
            .clone()
            .or_else(|| {
                native
                    .and_then(|n| n.str("query_source"))
                    .map(str::to_string)
            })
            .or_else(|| {
                native
                    .and_then(|n| n.str("query_source_safe"))
                    .map(str::to_string)
            });
        let mut a: BTreeMap<String, Attr> = BTreeMap::new();
        a.insert("session.id".into(), sid.into());
        a.insert("gen_ai.operation.name".into(), "chat".into());
        a.insert("gen_ai.system".into(), "anthropic".into());
        a.insert("gen_ai.provider.name".into(), "anthropic".into());
        if !key.starts_with("span:") {
            a.insert("request_id".into(), key.as_str().into());
        }
        if let Some(m) = &model {
            a.insert("model".into(), m.as_str().into());
            a.insert("gen_ai.request.model".into(), m.as_str().into());
            a.insert("gen_ai.response.model".into(), m.as_str().into());
        }
        if let Some(m) = &f.message_id {
            a.insert("gen_ai.response.id".into(), m.as_str().into());
        }
        for (k, v) in [
            ("input_tokens", usage.input),
            ("output_tokens", usage.output),
            ("cache_read_tokens", usage.cache_read),
            ("cache_creation_tokens", usage.cache_creation),
            ("gen_ai.usage.input_tokens", usage.input),
            ("gen_ai.usage.output_tokens", usage.output),
            ("gen_ai.usage.cache_read.input_tokens", usage.cache_read),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                usage.cache_creation,
            ),
        ] {
            a.insert(k.into(), v.into());
        }
        if let Some(c) = f.cost_usd {
            a.insert("cost_usd".into(), Attr::Double(c));
        }
        if let (Some(s), Some(e)) = (start, end) {
            a.insert(
                "duration_ms".into(),
                (e.saturating_sub(s) / NS_PER_MS).into(),
            );
        }
        if let Some(t) = f
            .ttft_ms
            .or_else(|| native.and_then(|n| n.i64("ttft_ms")).map(|v| v as u64))
        {
            a.insert("ttft_ms".into(), t.into());
        }
        if let Some(raw) = &raw_source {
            a.insert("query_source".into(), query_source_class(raw).into());
            a.insert("query_source.raw".into(), raw.as_str().into());
        } else if placed.agent.is_some() {
            a.insert("query_source".into(), "subagent".into());
        }
        let attempts = f
            .attempts
            .or_else(|| native.and_then(|n| n.i64("attempt")))
            .or_else(|| native.and_then(|n| n.i64("ccotel.attempts")))
            .unwrap_or(1)
            .max(1);
        a.insert("attempts".into(), attempts.into());
        a.insert("retries".into(), (attempts - 1).into());
        if let Some(sc) = f
            .status_code
            .or_else(|| native.and_then(|n| n.i64("status_code")))
        {
            a.insert("status_code".into(), sc.into());
        }
        if let Some(r) = f.stop_reason.clone().or_else(|| {
            native
                .and_then(|n| n.str("stop_reason"))
                .map(str::to_string)
        }) {
            a.insert("stop_reason".into(), r.into());
        }
        if let Some(e) = &error {
            a.insert("error".into(), e.as_str().into());
        }
        if let Some(agent) = placed.agent {
            a.insert("agent_id".into(), agent.into());
        }
        if let Some(p) = &placed.prompt {
            if !p.starts_with("trace:") {
                a.insert("prompt.id".into(), p.as_ref().into());
            }
        }
        let input = f
            .request_body_id
            .as_ref()
            .and_then(|id| session.request_bodies.get(id));
        if let Some(messages) = input {
            a.insert(
                "gen_ai.input.messages".into(),
                truncate(messages.clone(), max).into(),
            );
        }
        let output = f
            .output
            .clone()
            .or_else(|| (!f.tx_blocks.is_empty()).then(|| Value::Array(f.tx_blocks.clone())));
        let output = output.or_else(|| {
            f.response_text
                .as_ref()
                .map(|t| serde_json::json!([{"type": "text", "text": t}]))
        });
        if let Some(content) = output {
            let message = serde_json::json!([{"role": "assistant", "content": content}]);
            a.insert(
                "gen_ai.output.messages".into(),
                truncate(message.to_string(), max).into(),
            );
        }
        let failed = error.is_some();
        let span = SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            kind: SpanKind::Llm,
            name: "claude_code.llm_request".into(),
            start_ns: start.unwrap_or(0),
            end_ns: end.unwrap_or(0),
            attributes: a,
            status: error.map(SpanStatus::Error).unwrap_or_default(),
        };
        llms.push((placed, Some(span), usage, cost, failed));
    }

    // ---- tool calls
    let tool_keys = sorted_union(session.tools.keys(), natives.tool.keys());
    let empty_tool = ToolFacts::default();
    let mut tools: Vec<(Placed, Option<SpanRecord>, ToolState)> = Vec::new();
    for key in tool_keys {
        let f = session.tools.get(key).map_or(&empty_tool, |f| f);
        let native = natives.tool.get(key).copied();
        let exec = natives.exec.get(key).copied();
        let blocked = natives.blocked.get(key).copied();
        let (prompt, agent) = owner(session, &f.prompt_id, &f.agent_id, f.log_trace, native);
        let result_start = f
            .result_at
            .zip(f.result_duration_ms)
            .map(|(e, d)| e.saturating_sub(d * NS_PER_MS));
        let start = native
            .map(|n| n.start)
            .or(f.pre_at)
            .or(f.decision_at)
            .or(f.tx_use_at)
            .or(result_start)
            .or(f.result_at)
            .or(f.tx_result_at);
        let decision = f
            .decision
            .as_deref()
            .or_else(|| blocked.and_then(|b| b.str("decision")));
        let denied =
            decision == Some("reject") || f.denial_kind.is_some() || f.denied_reason.is_some();
        let end = native
            .map(|n| n.end)
            .or(f.post_at)
            .or(f.result_at)
            .or(f.tx_result_at)
            .or(if denied {
                f.decision_at.or(f.pre_at)
            } else {
                None
            });
        let exec_error = exec.and_then(|e| e.error.clone());
        let tx_error = (f.tx_is_error == Some(true) && !denied)
            .then(|| f.tx_result.as_ref().map(json_text))
            .flatten();
        let failure =
            f.failure.clone().or(exec_error).or(tx_error).or_else(|| {
                (f.result_success == Some(false)).then(|| "the tool failed".to_string())
            });
        let state = if denied {
            ToolState::Denied
        } else if failure.is_some() {
            ToolState::Failed
        } else if end.is_some() {
            ToolState::Ok
        } else {
            ToolState::Unfinished
        };
        let placed = Placed {
            prompt,
            agent,
            start,
            end,
        };
        let Some(span_id) = pending(f.released, &|| tool_span(key)) else {
            tools.push((placed, None, state));
            continue;
        };
        let name = f
            .name
            .clone()
            .or_else(|| native.and_then(|n| n.str("tool_name")).map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let mut a: BTreeMap<String, Attr> = BTreeMap::new();
        a.insert("session.id".into(), sid.into());
        a.insert("tool_name".into(), name.as_str().into());
        a.insert("gen_ai.tool.name".into(), name.as_str().into());
        a.insert("gen_ai.operation.name".into(), "execute_tool".into());
        a.insert("gen_ai.tool.call.id".into(), key.as_str().into());
        a.insert("tool_use_id".into(), key.as_str().into());
        a.insert("tool.status".into(), state.as_str().into());
        a.insert("success".into(), (state == ToolState::Ok).into());
        if let Some(rest) = name.strip_prefix("mcp__") {
            let mut parts = rest.splitn(2, "__");
            if let (Some(server), Some(tool)) = (parts.next(), parts.next()) {
                a.insert("mcp.server.name".into(), server.into());
                a.insert("mcp.tool.name".into(), tool.into());
            }
        }
        if let Some(server) = f.mcp_server.clone().or_else(|| {
            native
                .and_then(|n| n.str("anthropic.mcp.server.name"))
                .map(str::to_string)
        }) {
            a.insert("mcp.server.name".into(), server.into());
        }
        if let Some(d) = decision {
            a.insert("decision".into(), d.into());
        }
        if let Some(s) = f
            .decision_source
            .clone()
            .or_else(|| blocked.and_then(|b| b.str("source")).map(str::to_string))
        {
            a.insert("decision.source".into(), s.into());
        }
        if let Some(b) = blocked {
            a.insert(
                "blocked_on_user_ms".into(),
                (b.end.saturating_sub(b.start) / NS_PER_MS).into(),
            );
        }
        if let Some(e) = exec {
            a.insert(
                "execution_ms".into(),
                (e.end.saturating_sub(e.start) / NS_PER_MS).into(),
            );
        } else if let Some(d) = f.hook_duration_ms.or(f.result_duration_ms) {
            a.insert("execution_ms".into(), d.into());
        }
        if let (Some(s), Some(e)) = (start, end) {
            a.insert(
                "duration_ms".into(),
                (e.saturating_sub(s) / NS_PER_MS).into(),
            );
        }
        if let Some(input) = &f.input {
            a.insert(
                "gen_ai.tool.call.arguments".into(),
                truncate(input.to_string(), max).into(),
            );
        }
        let output = f
            .response
            .as_ref()
            .map(json_text)
            .or_else(|| f.tx_result.as_ref().map(json_text))
            .or_else(|| {
                native.and_then(|n| n.output.as_ref()).and_then(|o| {
                    ["output", "content", "diff"]
                        .iter()
                        .find_map(|k| attr_of(o, k).and_then(Attr::as_str).map(str::to_string))
                })
            });
        if let Some(out) = output {
            a.insert("gen_ai.tool.call.result".into(), truncate(out, max).into());
        }
        if denied {
            let reason = f
                .denied_reason
                .clone()
                .or_else(|| f.tx_result.as_ref().map(json_text));
            if let Some(r) = reason {
                a.insert("denial.reason".into(), truncate(r, max).into());
            }
            if let Some(k) = &f.denial_kind {
                a.insert("denial.kind".into(), k.as_str().into());
            }
        }
        if let Some(e) = &failure {
            a.insert("error".into(), truncate(e.clone(), max).into());
        }
        if f.interrupted {
            a.insert("interrupted".into(), true.into());
        }
        if let Some(r) = &f.request_id {
            a.insert("request_id".into(), r.as_str().into());
        }
        if let Some(agent) = placed.agent {
            a.insert("agent_id".into(), agent.into());
        }
        if let Some(p) = &placed.prompt {
            if !p.starts_with("trace:") {
                a.insert("prompt.id".into(), p.as_ref().into());
            }
        }
        if is_agent_tool(&name) {
            let spawned = agent_tool.iter().find(|(_, t)| *t == key).map(|(a, _)| a);
            if let Some(spawned) = spawned {
                a.insert("subagent.id".into(), spawned.as_str().into());
                if let Some(info) = session.agents.get(spawned) {
                    if let Some(t) = &info.agent_type {
                        a.insert("subagent.type".into(), t.as_str().into());
                    }
                    if let Some(d) = &info.description {
                        a.insert("subagent.description".into(), d.as_str().into());
                    }
                }
            }
        }
        let status = match (&state, &failure) {
            (ToolState::Failed, Some(e)) => SpanStatus::Error(truncate(e.clone(), 1024)),
            _ => SpanStatus::Unset,
        };
        let span = SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            kind: SpanKind::Tool,
            name: "claude_code.tool".into(),
            start_ns: start.unwrap_or(0),
            end_ns: end.unwrap_or(0),
            attributes: a,
            status,
        };
        tools.push((placed, Some(span), state));
    }

    // ---- totals and time bounds of the calls, per turn and overall, in one
    // pass over the calls (one lookup of its turn per call: a long session
    // walks thousands of them on every tick)
    struct Calls<'a> {
        prompt: Cow<'a, str>,
        /// Earliest start and latest end of the turn's calls.
        first: u64,
        last: u64,
        totals: Totals,
    }
    /// The totals of `p`'s turn, its time bounds widened by `p`.
    fn turn_of<'c, 'b, 'a>(
        calls: &'c mut BTreeMap<&'b str, Calls<'a>>,
        p: &'b Placed<'a>,
    ) -> Option<&'c mut Totals> {
        let prompt = p.prompt.as_ref()?;
        let c = calls.entry(prompt.as_ref()).or_insert_with(|| Calls {
            prompt: prompt.clone(),
            first: u64::MAX,
            last: 0,
            totals: Totals::new(),
        });
        if let Some(s) = p.start {
            c.first = c.first.min(s);
        }
        if let Some(e) = p.end.or(p.start) {
            c.last = c.last.max(e);
        }
        Some(&mut c.totals)
    }
    let mut session_totals = Totals::new();
    let mut calls: BTreeMap<&str, Calls> = BTreeMap::new();
    for (p, _, usage, cost, failed) in &llms {
        let add = |t: &mut Totals| {
            t.llm_calls += 1;
            t.usage.input += usage.input;
            t.usage.output += usage.output;
            t.usage.cache_read += usage.cache_read;
            t.usage.cache_creation += usage.cache_creation;
            t.cost += cost;
            t.errors += *failed as u64;
        };
        add(&mut session_totals);
        if let Some(t) = turn_of(&mut calls, p) {
            add(t);
        }
    }
    for (p, _, state) in &tools {
        let add = |t: &mut Totals| {
            t.tool_calls += 1;
            t.errors += (*state == ToolState::Failed) as u64;
        };
        add(&mut session_totals);
        if let Some(t) = turn_of(&mut calls, p) {
            add(t);
        }
    }

    // ---- turns
    let mut prompts: BTreeSet<Cow<str>> = session
        .turns
        .keys()
        .map(|k| Cow::Borrowed(k.as_str()))
        .collect();
    prompts.extend(calls.values().map(|c| c.prompt.clone()));
    for t in natives.interaction.keys() {
        prompts.insert(Cow::Owned(prompt_of_trace(session, t)));
    }
    let interaction_of: BTreeMap<String, &NativeSpan> = natives
        .interaction
        .iter()
        .map(|(t, n)| (prompt_of_trace(session, t), *n))
        .collect();

    struct TurnRow<'a> {
        prompt: Cow<'a, str>,
        start: Option<u64>,
        end: Option<u64>,
        explicit_end: bool,
        totals: Totals,
    }
    let mut rows: Vec<TurnRow> = prompts
        .into_iter()
        .map(|p| {
            let f = session.turns.get(p.as_ref());
            let native = interaction_of.get(p.as_ref()).copied();
            let mut start = native
                .map(|n| n.start)
                .or(f.and_then(|f| f.submit_at))
                .or(f.and_then(|f| f.log_at))
                .or(f.and_then(|f| f.tx_at));
            let mut end = native.map(|n| n.end).or(f.and_then(|f| f.stop_at));
            let explicit_end = end.is_some();
            // Children widen their turn: a turn spans everything in it.
            let mut totals = Totals::new();
            if let Some(c) = calls.remove(p.as_ref()) {
                if c.first != u64::MAX {
                    start = Some(start.map_or(c.first, |x| x.min(c.first)));
                }
                if c.last > 0 {
                    end = Some(end.map_or(c.last, |x| x.max(c.last)));
                }
                totals = c.totals;
            }
            TurnRow {
                explicit_end,
                prompt: p,
                start,
                end,
                totals,
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.start, &a.prompt).cmp(&(b.start, &b.prompt)));

    // ---- session bounds
    let session_closed = session.facts.end_at.or(opts.idle_closed_at);
    let first = [session.facts.start_at]
        .into_iter()
        .chain(rows.iter().map(|r| r.start))
        .flatten()
        .min();
    let last_known = rows
        .iter()
        .filter_map(|r| r.end.or(r.start))
        .chain(session.facts.end_at)
        .max();

    let mut out: Vec<Rendered> = Vec::new();
    let n_rows = rows.len();
    let mut turn_complete: BTreeMap<Cow<str>, (bool, Option<u64>)> = BTreeMap::new();
    // The root shows the first prompt and the last answer of the session,
    // whether or not their turns were exported.
    let (mut first_prompt, mut last_message): (Option<&str>, Option<&str>) = (None, None);
    for (i, row) in rows.iter().enumerate() {
        let f = session.turns.get(row.prompt.as_ref());
        let native = interaction_of.get(row.prompt.as_ref()).copied();
        let later_turn = i + 1 < n_rows;
        let complete = row.explicit_end || later_turn || session_closed.is_some();
        let end = row.end.or(row.start);
        turn_complete.insert(row.prompt.clone(), (complete, end));
        let prompt_text = f
            .and_then(|f| f.prompt.as_deref())
            .or_else(|| native.and_then(|n| n.str("user_prompt")))
            .filter(|t| *t != "<REDACTED>");
        let last = f.and_then(|f| {
            f.last_message
                .as_deref()
                .or_else(|| f.last_response.as_ref().map(|(_, t)| t.as_str()))
        });
        if first_prompt.is_none() {
            first_prompt = prompt_text;
        }
        if last.is_some() {
            last_message = last;
        }
        let turn_id = turn_span(row.prompt.as_ref());
        if !exported.contains(&turn_id) {
            let mut a: BTreeMap<String, Attr> = BTreeMap::new();
            a.insert("session.id".into(), sid.into());
            a.insert("interaction.sequence".into(), ((i + 1) as i64).into());
            a.insert("gen_ai.operation.name".into(), "invoke_agent".into());
            if !row.prompt.starts_with("trace:") {
                a.insert("prompt.id".into(), row.prompt.as_ref().into());
            }
            let command = f.and_then(|f| f.command.clone()).or_else(|| {
                prompt_text.and_then(|t| {
                    t.strip_prefix('/')
                        .and_then(|c| c.split_whitespace().next())
                        .map(str::to_string)
                })
            });
            let kind = match command.as_deref() {
                Some("compact") => "compaction",
                Some(_) => "slash_command",
                None => "prompt",
            };
            a.insert("turn.kind".into(), kind.into());
            if let Some(c) = &command {
                a.insert("command_name".into(), c.as_str().into());
            }
            if let Some(t) = prompt_text {
                a.insert(
                    "user_prompt_length".into(),
                    (t.chars().count() as i64).into(),
                );
                a.insert("user_prompt".into(), truncate(t.to_string(), max).into());
            }
            if let Some(m) = last {
                a.insert(
                    "last_assistant_message".into(),
                    truncate(m.to_string(), max).into(),
                );
            }
            let stop_error = f.and_then(|f| f.stop_error.clone());
            row.totals.write(&mut a);
            let errors = row.totals.errors + stop_error.is_some() as u64;
            a.insert("totals.errors".into(), errors.into());
            if let Some(e) = &stop_error {
                a.insert("error".into(), e.as_str().into());
            }
            let start = row.start.or(first).unwrap_or(0);
            out.push(Rendered {
                span: SpanRecord {
                    trace_id,
                    span_id: turn_id,
                    parent_span_id: Some(root_span),
                    kind: SpanKind::Turn,
                    name: "claude_code.interaction".into(),
                    start_ns: start,
                    end_ns: end.unwrap_or(start),
                    attributes: a,
                    status: stop_error.map(SpanStatus::Error).unwrap_or_default(),
                },
                complete,
                ready: true,
            });
        }
        // Compactions inside the turn.
        if let Some(f) = f {
            for (at, c) in &f.compactions {
                let span_id = ids::span_id(sid, "compaction", &format!("{}:{at}", row.prompt));
                if exported.contains(&span_id) {
                    continue;
                }
                let mut a: BTreeMap<String, Attr> = BTreeMap::new();
                a.insert("session.id".into(), sid.into());
                a.insert("prompt.id".into(), row.prompt.as_ref().into());
                if let Some(t) = &c.trigger {
                    a.insert("trigger".into(), t.as_str().into());
                }
                if let Some(v) = c.pre_tokens {
                    a.insert("pre_tokens".into(), v.into());
                }
                if let Some(v) = c.post_tokens {
                    a.insert("post_tokens".into(), v.into());
                }
                if let Some(s) = &c.summary {
                    a.insert("compact_summary".into(), truncate(s.clone(), max).into());
                }
                out.push(Rendered {
                    span: SpanRecord {
                        trace_id,
                        span_id,
                        parent_span_id: Some(turn_id),
                        kind: SpanKind::Tool,
                        name: "claude_code.compaction".into(),
                        start_ns: *at,
                        end_ns: c.end_at.unwrap_or(*at),
                        attributes: a,
                        status: SpanStatus::Unset,
                    },
                    complete: c.end_at.is_some() || complete,
                    ready: true,
                });
            }
        }
    }

    // ---- place model and tool calls under their turn or Agent call
    let place = |p: &Placed| -> (Option<[u8; 8]>, bool) {
        let turn = p.prompt.as_deref().map(turn_span);
        match p.agent {
            Some(agent) => match agent_tool.get(agent) {
                Some(tool) => (Some(tool_span(tool)), true),
                // Wait for evidence; fall back to the turn once it is over.
                None => (
                    turn.or(Some(root_span)),
                    p.prompt
                        .as_deref()
                        .and_then(|x| turn_complete.get(x))
                        .is_some_and(|(c, _)| *c),
                ),
            },
            None => (turn.or(Some(root_span)), p.prompt.is_some()),
        }
    };
    let turn_done = |p: &Placed| -> (bool, Option<u64>) {
        p.prompt
            .as_deref()
            .and_then(|x| turn_complete.get(x).copied())
            .unwrap_or((session_closed.is_some(), last_known))
    };
    for (p, span, _, _, _) in llms {
        let Some(mut span) = span else { continue };
        let (parent, ready) = place(&p);
        let (turn_over, turn_end) = turn_done(&p);
        span.parent_span_id = parent;
        fill_times(&mut span, &p, turn_end.or(first));
        out.push(Rendered {
            complete: p.end.is_some() || turn_over,
            ready: ready || session_closed.is_some(),
            span,
        });
    }
    for (p, span, state) in tools {
        let Some(mut span) = span else { continue };
        let (parent, ready) = place(&p);
        let (turn_over, turn_end) = turn_done(&p);
        span.parent_span_id = parent;
        fill_times(&mut span, &p, turn_end.or(first));
        out.push(Rendered {
            complete: state != ToolState::Unfinished || turn_over,
            ready: ready || session_closed.is_some(),
            span,
        });
    }

    // ---- the root
    let f = &session.facts;
    let mut a: BTreeMap<String, Attr> = BTreeMap::new();
    a.insert("session.id".into(), sid.into());
    a.insert("gen_ai.conversation.id".into(), sid.into());
    a.insert("totals.turns".into(), (n_rows as i64).into());
    session_totals.write(&mut a);
    let stop_failures = session
        .turns
        .values()
        .filter(|t| t.stop_error.is_some())
        .count() as u64;
    a.insert(
        "totals.errors".into(),
        (session_totals.errors + stop_failures).into(),
    );
    for (k, v) in [
        ("cwd", &f.cwd),
        ("git.branch", &f.git_branch),
        ("claude_code.version", &f.version),
        ("app.entrypoint", &f.entrypoint),
        ("user.id", &f.user_id),
        ("organization.id", &f.organization_id),
        ("user.email", &f.user_email),
        ("user.account_uuid", &f.account_uuid),
        ("permission_mode", &f.permission_mode),
        ("session.start_source", &f.start_source),
    ] {
        if let Some(v) = v {
            a.insert(k.into(), v.as_str().into());
        }
    }
    if let Some(p) = first_prompt {
        a.insert("user_prompt".into(), truncate(p.to_string(), max).into());
    }
    if let Some(m) = last_message {
        a.insert(
            "last_assistant_message".into(),
            truncate(m.to_string(), max).into(),
        );
    }
    if !f.models.is_empty() {
        a.insert(
            "models".into(),
            Attr::List(f.models.iter().cloned().collect()),
        );
    }
    let end_reason = match (&f.end_at, opts.idle_closed_at) {
        (Some(_), _) => f.end_reason.clone().or(Some("session_end".into())),
        (None, Some(_)) => Some("idle_timeout".into()),
        _ => None,
    };
    if let Some(r) = &end_reason {
        a.insert("session.end_reason".into(), r.as_str().into());
    }
    let (mut m_cost, mut m_tokens) = (0.0, 0.0);
    let mut have_metrics = false;
    for ((metric, _, _), v) in &f.metric_points {
        have_metrics = true;
        match metric.as_str() {
            "claude_code.cost.usage" => m_cost += v,
            "claude_code.token.usage" => m_tokens += v,
            _ => {}
        }
    }
    if have_metrics {
        a.insert("metrics.cost_usd".into(), Attr::Double(round_usd(m_cost)));
        a.insert("metrics.tokens".into(), Attr::Int(m_tokens as i64));
    }
    let start = first.unwrap_or(0);
    let end = f
        .end_at
        .or(opts.idle_closed_at.map(|_| last_known.unwrap_or(start)))
        .or(last_known)
        .unwrap_or(start)
        .max(last_known.unwrap_or(start));
    out.push(Rendered {
        span: SpanRecord {
            trace_id,
            span_id: root_span,
            parent_span_id: None,
            kind: SpanKind::Session,
            name: "claude_code.session".into(),
            start_ns: start,
            end_ns: end,
            attributes: a,
            status: SpanStatus::Unset,
        },
        complete: session_closed.is_some(),
        ready: true,
    });

    let mut resource = f.resource.clone();
    resource
        .entry("service.name".into())
        .or_insert_with(|| "claude-code".into());
    Tree {
        spans: out,
        resource,
    }
}

/// Gives a span without its own times the best times there are.
fn fill_times(span: &mut SpanRecord, p: &Placed, fallback: Option<u64>) {
    let start = p.start.or(p.end).or(fallback).unwrap_or(0);
    let end = p.end.unwrap_or(start).max(start);
    span.start_ns = start;
    span.end_ns = end;
}

/// Where a tool call ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolState {
    Ok,
    Failed,
    Denied,
    Unfinished,
}

impl ToolState {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolState::Ok => "ok",
            ToolState::Failed => "failed",
            ToolState::Denied => "denied",
            ToolState::Unfinished => "unfinished",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sorted_union;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn sorted_union_is_the_set_union_in_order(
            a in proptest::collection::btree_set("[a-d]{0,3}", 0..12),
            b in proptest::collection::btree_set("[a-d]{0,3}", 0..12),
        ) {
            let want: Vec<&String> = a.union(&b).collect::<BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(sorted_union(a.iter(), b.iter()), want);
        }
    }
}
