//! What a run must show: the facts the fake API served, found exactly once in
//! the merged trace ccotel exported, in the right place; and Claude Code's own
//! metrics and logs forwarded.
//!
//! Model calls: every call the fake answered from the script is one
//! `claude_code.llm_request` with the `request_id` the fake sent and the
//! tokens it served. A scripted error answer that Claude Code retried is not a
//! call of its own. Side requests (outside the scripted loop; Claude Code
//! 2.1.328 sends none with non-essential traffic off) may appear, at most once
//! each, but are not required: whether a one-off auxiliary call is worth a span
//! is ccotel's choice.

use crate::claude::{Hooks, Otlp};
use crate::fake_api::{Kind, Outcome as ToolOutcome, Served, Usage};
use crate::run::Outcome;
use crate::scenario::{Input, Scenario};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, AnyValue, KeyValue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

/// A merged span as the backend received it.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent: Option<String>,
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub error: Option<String>,
    pub start: u64,
    pub end: u64,
}

impl Span {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

fn any_text(v: &Option<AnyValue>) -> Option<String> {
    Some(match v.as_ref()?.value.as_ref()? {
        V::StringValue(s) => s.clone(),
        V::IntValue(i) => i.to_string(),
        V::DoubleValue(d) => d.to_string(),
        V::BoolValue(b) => b.to_string(),
        V::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|x| any_text(&Some(x.clone())))
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    })
}

fn attr_map(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), any_text(&kv.value)?)))
        .collect()
}

/// Every span of every export, in arrival order.
pub fn spans(requests: &[ExportTraceServiceRequest]) -> Vec<Span> {
    let mut out = Vec::new();
    for r in requests {
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push(Span {
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent: (!s.parent_span_id.is_empty())
                            .then(|| hex::encode(&s.parent_span_id)),
                        name: s.name.clone(),
                        attrs: attr_map(&s.attributes),
                        error: s
                            .status
                            .as_ref()
                            .filter(|st| st.code == 2)
                            .map(|st| st.message.clone()),
                        start: s.start_time_unix_nano,
                        end: s.end_time_unix_nano,
                    });
                }
            }
        }
    }
    out
}

/// A model call the fake served from the script.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub queue: String,
    pub turn: usize,
    /// 1-based scenario prompt the request belongs to.
    pub prompt: usize,
    pub usage: Usage,
    pub model: String,
    /// Error answers served for the same turn before it (retried attempts).
    pub retried: u32,
}

/// A tool call the fake asked for.
#[derive(Debug, Clone)]
pub struct Tool {
    pub id: String,
    pub name: String,
    pub outcome: ToolOutcome,
    pub queue: String,
    pub prompt: usize,
    pub prompt_text: Option<String>,
}

/// The facts the trace must show, from what the fake API served.
#[derive(Debug, Default)]
pub struct Expected {
    pub prompts: Vec<String>,
    pub calls: Vec<Call>,
    pub tools: Vec<Tool>,
    /// Side requests' ids: may appear, at most once.
    pub side: BTreeSet<String>,
    /// Scripted error answers' ids: never a call of their own.
    pub errors: BTreeSet<String>,
    /// Queue → the Agent tool_use that started its subagent.
    pub agent_call: BTreeMap<String, String>,
    /// Queue → `x-claude-code-agent-id` seen on its requests.
    pub agent_ids: BTreeMap<String, BTreeSet<String>>,
    /// Tokens of every answered `/v1/messages`, side requests included.
    pub all_tokens: Usage,
    /// Problems with the run itself (script not followed).
    pub script_problems: Vec<String>,
}

impl Expected {
    pub fn from_served(scenario: &Scenario, served: &[Served]) -> Expected {
        let mut e = Expected {
            prompts: scenario.prompts().to_vec(),
            ..Default::default()
        };
        let mut tools_seen = BTreeSet::new();
        let mut played: BTreeSet<(String, usize)> = BTreeSet::new();
        let mut failed_attempts: BTreeMap<(String, usize), u32> = BTreeMap::new();
        for s in served {
            let Some(rid) = s.request_id.clone() else {
                continue;
            };
            match &s.kind {
                Kind::Scripted { queue, turn } => {
                    if s.exhausted {
                        e.script_problems.push(format!(
                            "request {rid} (queue {queue}, turn {turn}) is past the end of the script"
                        ));
                        continue;
                    }
                    played.insert((queue.clone(), *turn));
                    let usage = s.usage.unwrap();
                    e.all_tokens.add(&usage);
                    if let Some(a) = &s.agent_header {
                        e.agent_ids
                            .entry(queue.clone())
                            .or_default()
                            .insert(a.clone());
                    }
                    e.calls.push(Call {
                        request_id: rid,
                        queue: queue.clone(),
                        turn: *turn,
                        prompt: s.prompt,
                        usage,
                        model: s.model.clone().unwrap(),
                        retried: failed_attempts
                            .get(&(queue.clone(), *turn))
                            .copied()
                            .unwrap_or(0),
                    });
                    for t in &s.tools {
                        if tools_seen.insert(t.id.clone()) {
                            e.tools.push(Tool {
                                id: t.id.clone(),
                                name: t.name.clone(),
                                outcome: t.outcome,
                                queue: queue.clone(),
                                prompt: s.prompt,
                                prompt_text: t.input["prompt"].as_str().map(str::to_string),
                            });
                        }
                    }
                }
                Kind::Error { queue, turn, .. } => {
                    *failed_attempts.entry((queue.clone(), *turn)).or_default() += 1;
                    e.errors.insert(rid);
                }
                Kind::Side(_) => {
                    e.all_tokens.add(&s.usage.unwrap());
                    e.side.insert(rid);
                }
                Kind::Other => {}
            }
        }
        for (queue, turns) in &scenario.script.queues {
            for i in 0..turns.len() {
                if !played.contains(&(queue.clone(), i)) {
                    e.script_problems
                        .push(format!("turn {i} of queue {queue} was never requested"));
                }
            }
        }
        for (marker, queue) in &scenario.script.routes {
            if let Some(t) = e.tools.iter().find(|t| {
                t.name == "Agent"
                    && t.prompt_text
                        .as_deref()
                        .is_some_and(|p| p.contains(marker.as_str()))
            }) {
                e.agent_call.insert(queue.clone(), t.id.clone());
            }
        }
        e
    }

    /// The backend has every turn, model call and tool call.
    pub fn satisfied_by(&self, spans: &[Span]) -> bool {
        let have = |name: &str, key: &str| -> BTreeSet<String> {
            spans
                .iter()
                .filter(|s| s.name == name)
                .filter_map(|s| s.attr(key).map(str::to_string))
                .collect()
        };
        let turns = spans
            .iter()
            .filter(|s| s.name == "claude_code.interaction")
            .count();
        let llm = have("claude_code.llm_request", "request_id");
        let tools = have("claude_code.tool", "tool_use_id");
        turns >= self.prompts.len()
            && self.calls.iter().all(|c| llm.contains(&c.request_id))
            && self.tools.iter().all(|t| tools.contains(&t.id))
    }
}

/// Runs every check; panics with all problems and the tree.
pub fn all(o: &Outcome) {
    let mut p: Vec<String> = Vec::new();
    let expected = Expected::from_served(&o.scenario, &o.served);
    let spans = spans(&o.received.traces);

    // ---- Claude Code ran the script to its end.
    let mut sessions = BTreeSet::new();
    for (i, proc) in o.processes.iter().enumerate() {
        if proc.timed_out {
            p.push(format!("process {i} timed out and was killed"));
        }
        if proc.exit_code != Some(0) {
            p.push(format!("process {i} exited with {:?}", proc.exit_code));
        }
        let results = proc.results();
        let want = match o.scenario.input {
            Input::StreamJson => o.scenario.prompts().len(),
            _ => 1,
        };
        if results.len() != want || results.iter().any(|r| r["subtype"] != "success") {
            p.push(format!(
                "process {i}: want {want} successful results, got {:?}",
                results.iter().map(|r| &r["subtype"]).collect::<Vec<_>>()
            ));
        }
        sessions.extend(proc.session_id());
    }
    if o.scenario.input == Input::Resume && o.processes.len() != o.scenario.prompts().len() {
        p.push(format!("only {} processes ran", o.processes.len()));
    }
    p.extend(expected.script_problems.iter().cloned());
    if sessions.len() != 1 {
        p.push(format!(
            "want one session id in stream-json, got {sessions:?}"
        ));
    }
    for s in &o.served {
        if let Some(h) = &s.session_header {
            if !sessions.contains(h) {
                p.push(format!("API request {} from unknown session {h}", s.seq));
            }
        }
    }
    let sid = sessions.iter().next().cloned().unwrap_or_default();

    // ---- one trace, one root, no duplicate, no orphan.
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    if by_id.len() != spans.len() {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &spans {
            *count.entry(&s.span_id).or_default() += 1;
        }
        let dups: Vec<String> = count
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("{} x{n}", describe(by_id[id])))
            .collect();
        p.push(format!("spans exported more than once: {dups:?}"));
    }
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_none()).collect();
    let root = match roots.as_slice() {
        [r] if r.name == "claude_code.session" => Some(*r),
        _ => {
            p.push(format!(
                "want exactly one root claude_code.session, got {:?}",
                roots.iter().map(|r| describe(r)).collect::<Vec<_>>()
            ));
            None
        }
    };
    let want_trace = hex::encode(ccotel::merge::ids::trace_id(&sid));
    for s in &spans {
        if s.trace_id != want_trace {
            p.push(format!(
                "{} is in trace {}, not the session's {want_trace}",
                describe(s),
                s.trace_id
            ));
        }
        if let Some(parent) = &s.parent {
            if !by_id.contains_key(parent.as_str()) {
                p.push(format!("{} has a missing parent {parent}", describe(s)));
            }
        }
        if s.end < s.start {
            p.push(format!("{} ends before it starts", describe(s)));
        }
        if !matches!(
            s.name.as_str(),
            "claude_code.session"
                | "claude_code.interaction"
                | "claude_code.llm_request"
                | "claude_code.tool"
        ) {
            p.push(format!("unexpected span {}", describe(s)));
        }
    }
    if let Some(r) = root {
        if r.attr("session.id") != Some(sid.as_str()) {
            p.push(format!(
                "root session.id {:?} != {sid}",
                r.attr("session.id")
            ));
        }
        let reason = r.attr("session.end_reason");
        match o.case.hooks {
            Hooks::None if reason != Some("idle_timeout") => p.push(format!(
                "without hooks the session ends by idle timeout, got {reason:?}"
            )),
            Hooks::Command | Hooks::Http if reason.is_none_or(|r| r == "idle_timeout") => {
                p.push(format!("SessionEnd's reason missing: {reason:?}"))
            }
            _ => {}
        }
    }

    // ---- turns: one per prompt, in order, with the transcript's prompt ids.
    let mut turns: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "claude_code.interaction")
        .collect();
    turns.sort_by_key(|t| {
        t.attr("interaction.sequence")
            .and_then(|v| v.parse::<u64>().ok())
    });
    let texts: Vec<Option<&str>> = turns.iter().map(|t| t.attr("user_prompt")).collect();
    let want_texts: Vec<Option<&str>> = expected.prompts.iter().map(|s| Some(s.as_str())).collect();
    if texts != want_texts {
        p.push(format!(
            "turns: want one per prompt in order {want_texts:?}, got {texts:?}"
        ));
    }
    let transcript_prompts = o
        .dirs
        .transcript(&sid)
        .map(|path| transcript_prompt_ids(&path))
        .unwrap_or_default();
    let turn_ids: Vec<&str> = turns.iter().filter_map(|t| t.attr("prompt.id")).collect();
    if turn_ids
        != transcript_prompts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        p.push(format!(
            "turn prompt ids {turn_ids:?} differ from the transcript's {transcript_prompts:?}"
        ));
    }
    for t in &turns {
        if t.parent.as_deref() != root.map(|r| r.span_id.as_str()) {
            p.push(format!("{} is not under the root", describe(t)));
        }
    }
    let turn_span = |prompt: usize| -> Option<&str> {
        turns
            .iter()
            .find(|t| {
                t.attr("user_prompt")
                    == expected
                        .prompts
                        .get(prompt.wrapping_sub(1))
                        .map(|s| s.as_str())
            })
            .map(|t| t.span_id.as_str())
    };

    // ---- tool calls: each once, with its outcome, in its place.
    let mut tools: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in spans.iter().filter(|s| s.name == "claude_code.tool") {
        match s.attr("tool_use_id") {
            Some(id) => tools.entry(id).or_default().push(s),
            None => p.push(format!("{} has no tool_use_id", describe(s))),
        }
    }
    let agent_span = |queue: &str| -> Option<&str> {
        let call = expected.agent_call.get(queue)?;
        tools
            .get(call.as_str())?
            .first()
            .map(|s| s.span_id.as_str())
    };
    let parent_of = |queue: &str, prompt: usize| -> Option<&str> {
        if queue == "main" {
            turn_span(prompt)
        } else {
            agent_span(queue)
        }
    };
    let want_tools: BTreeSet<&str> = expected.tools.iter().map(|t| t.id.as_str()).collect();
    for (id, found) in &tools {
        if found.len() > 1 {
            p.push(format!("tool call {id} appears {} times", found.len()));
        }
        if !want_tools.contains(id) {
            p.push(format!("unexpected tool call {}", describe(found[0])));
        }
    }
    for t in &expected.tools {
        let Some(s) = tools.get(t.id.as_str()).and_then(|v| v.first()) else {
            p.push(format!(
                "tool call {} {} ({:?}) missing",
                t.name, t.id, t.outcome
            ));
            continue;
        };
        if s.attr("tool_name") != Some(t.name.as_str()) {
            p.push(format!("{}: tool_name should be {}", describe(s), t.name));
        }
        let status = s.attr("tool.status");
        let ok = match t.outcome {
            ToolOutcome::Ok => s.error.is_none() && status == Some("ok"),
            ToolOutcome::Failed => s.error.is_some() && status == Some("failed"),
            ToolOutcome::Denied => status == Some("denied"),
        };
        if !ok {
            p.push(format!(
                "{}: want {:?}, got tool.status {status:?}, error status {:?}",
                describe(s),
                t.outcome,
                s.error
            ));
        }
        let want_parent = parent_of(&t.queue, t.prompt);
        if want_parent.is_none() || s.parent.as_deref() != want_parent {
            p.push(format!(
                "{}: parent should be {} ({want_parent:?}), is {}",
                describe(s),
                where_(&t.queue, t.prompt),
                parent_name(&by_id, s)
            ));
        }
    }
    // The Agent calls name their subagents.
    for (queue, call) in &expected.agent_call {
        let Some(s) = tools.get(call.as_str()).and_then(|v| v.first()) else {
            continue;
        };
        let ids = expected.agent_ids.get(queue).cloned().unwrap_or_default();
        let got = s.attr("subagent.id").map(str::to_string);
        if ids.len() != 1 || got.as_ref().is_none_or(|g| !ids.contains(g)) {
            p.push(format!(
                "{}: subagent.id {got:?}, the API saw agent ids {ids:?} for {queue}",
                describe(s)
            ));
        }
    }

    // ---- model calls: each once, with its tokens, in its place.
    let mut llms: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in spans.iter().filter(|s| s.name == "claude_code.llm_request") {
        match s.attr("request_id") {
            Some(id) => llms.entry(id).or_default().push(s),
            None => p.push(format!("{} has no request_id", describe(s))),
        }
    }
    let want_llms: BTreeSet<&str> = expected
        .calls
        .iter()
        .map(|c| c.request_id.as_str())
        .collect();
    for (id, found) in &llms {
        if found.len() > 1 {
            p.push(format!("model call {id} appears {} times", found.len()));
        }
        if expected.errors.contains(*id) {
            p.push(format!(
                "the retried error answer {id} is a model call of its own: {}",
                describe(found[0])
            ));
        } else if !want_llms.contains(id) && !expected.side.contains(*id) {
            p.push(format!("unexpected model call {}", describe(found[0])));
        }
    }
    for c in &expected.calls {
        let Some(s) = llms.get(c.request_id.as_str()).and_then(|v| v.first()) else {
            p.push(format!(
                "model call {} ({} turn {}) missing",
                c.request_id, c.queue, c.turn
            ));
            continue;
        };
        for (k, v) in [
            ("input_tokens", c.usage.input),
            ("output_tokens", c.usage.output),
            ("cache_read_tokens", c.usage.cache_read),
            ("cache_creation_tokens", c.usage.cache_creation),
        ] {
            if s.attr(k) != Some(v.to_string().as_str()) {
                p.push(format!("{}: {k} {:?}, served {v}", describe(s), s.attr(k)));
            }
        }
        if s.attr("model") != Some(c.model.as_str()) {
            p.push(format!("{}: model should be {}", describe(s), c.model));
        }
        let want_parent = parent_of(&c.queue, c.prompt);
        if want_parent.is_none() || s.parent.as_deref() != want_parent {
            p.push(format!(
                "{}: parent should be {} ({want_parent:?}), is {}",
                describe(s),
                where_(&c.queue, c.prompt),
                parent_name(&by_id, s)
            ));
        }
        // A retried call is one span that counts its attempts.
        let attempts = (c.retried + 1).to_string();
        let got = (s.attr("attempts"), s.attr("retries"));
        let want = (Some(attempts.as_str()), Some(c.retried.to_string()));
        let required = o.case.otlp != Otlp::Off;
        if (required || got.0.is_some()) && (got.0, got.1.map(str::to_string)) != want {
            p.push(format!(
                "{}: attempts/retries {got:?}, the API answered {} error(s) first",
                describe(s),
                c.retried
            ));
        }
        let want_source = if c.queue == "main" {
            "main"
        } else {
            "subagent"
        };
        if let Some(src) = s.attr("query_source").filter(|v| *v != want_source) {
            p.push(format!(
                "{}: query_source {src}, want {want_source}",
                describe(s)
            ));
        }
    }

    // ---- the root's totals agree with its spans.
    if let Some(r) = root {
        let served: Usage = expected.calls.iter().fold(Usage::default(), |mut u, c| {
            u.add(&c.usage);
            u
        });
        let mut want = vec![
            ("totals.turns", expected.prompts.len() as u64),
            ("totals.tool_calls", expected.tools.len() as u64),
        ];
        // Side requests, when they show up, count too.
        if llms.keys().all(|k| want_llms.contains(k)) {
            want.extend([
                ("totals.llm_calls", expected.calls.len() as u64),
                ("totals.input_tokens", served.input),
                ("totals.output_tokens", served.output),
                ("totals.cache_read_tokens", served.cache_read),
                ("totals.cache_creation_tokens", served.cache_creation),
            ]);
        }
        // A resumed session's root went out with the first run.
        if o.processes.len() == 1 {
            for (k, v) in want {
                if r.attr(k) != Some(v.to_string().as_str()) {
                    p.push(format!("root {k} = {:?}, want {v}", r.attr(k)));
                }
            }
        }
    }

    // ---- Claude Code's own metrics and logs were forwarded.
    forwarded(o, &expected, &sid, &mut p);

    let report = report(o, &spans, &expected);
    println!("{report}");
    if !p.is_empty() {
        panic!(
            "{}: {} problem(s):\n  - {}\n\n{report}",
            o.label,
            p.len(),
            p.join("\n  - ")
        );
    }
}

fn forwarded(o: &Outcome, e: &Expected, sid: &str, p: &mut Vec<String>) {
    let got = &o.received;
    if o.case.otlp == Otlp::Off {
        if !got.metrics.is_empty() || !got.logs.is_empty() {
            p.push("telemetry off, yet metrics or logs were forwarded".into());
        }
        return;
    }
    let mut tokens: BTreeMap<String, f64> = BTreeMap::new();
    let mut cost = 0.0;
    let mut cost_points = 0;
    for r in &got.metrics {
        for rm in &r.resource_metrics {
            let resource = attr_map(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
            if resource.get("service.name").map(String::as_str) != Some("claude-code") {
                p.push(format!(
                    "forwarded metrics lost their resource: {resource:?}"
                ));
            }
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    use opentelemetry_proto::tonic::metrics::v1::{
                        metric::Data, number_data_point::Value as N,
                    };
                    let Some(Data::Sum(sum)) = &m.data else {
                        continue;
                    };
                    for dp in &sum.data_points {
                        let v = match dp.value {
                            Some(N::AsDouble(d)) => d,
                            Some(N::AsInt(i)) => i as f64,
                            None => 0.0,
                        };
                        let a = attr_map(&dp.attributes);
                        if a.get("session.id").map(String::as_str) != Some(sid) {
                            continue;
                        }
                        match m.name.as_str() {
                            "claude_code.token.usage" => {
                                *tokens
                                    .entry(a.get("type").cloned().unwrap_or_default())
                                    .or_default() += v
                            }
                            "claude_code.cost.usage" => {
                                cost += v;
                                cost_points += 1;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let t = &e.all_tokens;
    let want: BTreeMap<String, f64> = [
        ("cacheCreation", t.cache_creation),
        ("cacheRead", t.cache_read),
        ("input", t.input),
        ("output", t.output),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as f64))
    .collect();
    if tokens != want {
        p.push(format!(
            "forwarded claude_code.token.usage adds up to {tokens:?}, the API served {want:?}"
        ));
    }
    if cost_points == 0 || cost <= 0.0 {
        p.push(format!(
            "claude_code.cost.usage not forwarded ({cost_points} points, {cost} USD)"
        ));
    }
    let mut api_requests = BTreeSet::new();
    for r in &got.logs {
        for rl in &r.resource_logs {
            for sl in &rl.scope_logs {
                for lr in &sl.log_records {
                    let a = attr_map(&lr.attributes);
                    if a.get("event.name").map(String::as_str) == Some("api_request") {
                        api_requests.extend(a.get("request_id").cloned());
                    }
                }
            }
        }
    }
    let missing: Vec<&str> = e
        .calls
        .iter()
        .map(|c| c.request_id.as_str())
        .filter(|id| !api_requests.contains(*id))
        .collect();
    if !missing.is_empty() {
        p.push(format!(
            "api_request log events not forwarded for {missing:?}"
        ));
    }
}

/// The distinct prompt ids of the main transcript, in order.
fn transcript_prompt_ids(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "user" || v["isSidechain"] == true {
            continue;
        }
        if let Some(id) = v["promptId"].as_str() {
            if !out.iter().any(|x| x == id) {
                out.push(id.to_string());
            }
        }
    }
    out
}

fn where_(queue: &str, prompt: usize) -> String {
    if queue == "main" {
        format!("the turn of prompt {prompt}")
    } else {
        format!("the Agent call of {queue}")
    }
}

fn parent_name(by_id: &HashMap<&str, &Span>, s: &Span) -> String {
    match s.parent.as_deref() {
        None => "none".into(),
        Some(p) => by_id
            .get(p)
            .map_or_else(|| format!("missing {p}"), |x| describe(x)),
    }
}

fn describe(s: &Span) -> String {
    let key = s
        .attr("tool_use_id")
        .map(|t| format!("{} {t}", s.attr("tool_name").unwrap_or("?")))
        .or_else(|| s.attr("request_id").map(str::to_string))
        .or_else(|| {
            s.attr("interaction.sequence")
                .map(|n| format!("#{n} {}", s.attr("prompt.id").unwrap_or("-")))
        })
        .or_else(|| s.attr("session.id").map(str::to_string))
        .unwrap_or_default();
    format!("{} {key} [{}]", s.name, s.span_id)
}

/// The tree, the API log and the processes, for reading a failure.
fn report(o: &Outcome, spans: &[Span], e: &Expected) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {} ({:.1} s)", o.label, o.elapsed.as_secs_f64());
    for (i, proc) in o.processes.iter().enumerate() {
        let _ = writeln!(
            out,
            "process {i}: exit {:?}{} in {:.1} s, {} stdout messages; argv {:?}",
            proc.exit_code,
            if proc.timed_out { " (timed out)" } else { "" },
            proc.elapsed.as_secs_f64(),
            proc.messages.len(),
            proc.argv
        );
        if !proc.stderr.trim().is_empty() {
            let tail: String = proc
                .stderr
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let _ = writeln!(out, "  stderr: {tail}");
        }
    }
    let _ = writeln!(out, "API requests:");
    for s in &o.served {
        let _ = writeln!(
            out,
            "  #{} {} {} {:?} prompt={} rid={} agent={:?} tools={:?}",
            s.seq,
            s.method,
            s.path,
            s.kind,
            s.prompt,
            s.request_id.as_deref().unwrap_or("-"),
            s.agent_header,
            s.tools
                .iter()
                .map(|t| format!("{} {}", t.name, t.id))
                .collect::<Vec<_>>()
        );
    }
    let _ = writeln!(
        out,
        "backend: {} trace, {} metrics, {} logs requests; {} spans; agent calls {:?}",
        o.received.traces.len(),
        o.received.metrics.len(),
        o.received.logs.len(),
        spans.len(),
        e.agent_call
    );
    let mut children: BTreeMap<Option<&str>, Vec<&Span>> = BTreeMap::new();
    for s in spans {
        children.entry(s.parent.as_deref()).or_default().push(s);
    }
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    fn walk(
        out: &mut String,
        children: &BTreeMap<Option<&str>, Vec<&Span>>,
        parent: Option<&str>,
        depth: usize,
    ) {
        let mut kids = children.get(&parent).cloned().unwrap_or_default();
        kids.sort_by_key(|s| (s.start, s.span_id.clone()));
        for s in kids {
            let extra = match s.name.as_str() {
                "claude_code.llm_request" => format!(
                    " tokens={}/{}/{}/{} model={} source={} attempts={}",
                    s.attr("input_tokens").unwrap_or("-"),
                    s.attr("output_tokens").unwrap_or("-"),
                    s.attr("cache_read_tokens").unwrap_or("-"),
                    s.attr("cache_creation_tokens").unwrap_or("-"),
                    s.attr("model").unwrap_or("-"),
                    s.attr("query_source").unwrap_or("-"),
                    s.attr("attempts").unwrap_or("-"),
                ),
                "claude_code.tool" => format!(
                    " status={} subagent={}",
                    s.attr("tool.status").unwrap_or("-"),
                    s.attr("subagent.id").unwrap_or("-")
                ),
                "claude_code.session" => format!(
                    " turns={} llm={} tools={} end={}",
                    s.attr("totals.turns").unwrap_or("-"),
                    s.attr("totals.llm_calls").unwrap_or("-"),
                    s.attr("totals.tool_calls").unwrap_or("-"),
                    s.attr("session.end_reason").unwrap_or("-"),
                ),
                _ => String::new(),
            };
            let err = s
                .error
                .as_ref()
                .map_or(String::new(), |m| format!(" ERROR({m})"));
            let _ = writeln!(out, "{}{}{extra}{err}", "  ".repeat(depth + 1), describe(s));
            walk(out, children, Some(&s.span_id), depth + 1);
        }
    }
    walk(&mut out, &children, None, 0);
    for (parent, kids) in &children {
        if let Some(p) = parent.filter(|p| !ids.contains(p)) {
            let _ = writeln!(out, "  orphans of missing {p}:");
            for k in kids {
                let _ = writeln!(out, "    {}", describe(k));
            }
        }
    }
    out
}
