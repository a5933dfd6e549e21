//! The merged session tree for every capture of the real CLI: golden trees,
//! the facts of expected.json, order independence, partial sources, resumed
//! sessions and restarts.

use crate::support::fixtures::{self, Sources};
use ccotel::config::MergeConfig;
use ccotel::merge::Engine;
use ccotel::model::span::{Attr, SpanKind, SpanRecord, SpanStatus};
use ccotel::model::Event;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

/// A time well after every capture: all grace periods have passed.
const LATER: u64 = 4_000_000_000_000_000_000;

pub fn config(scenario: &str, transcripts: bool) -> MergeConfig {
    let (from, to) = fixtures::transcript_map(scenario);
    MergeConfig {
        read_transcripts: transcripts,
        transcript_path_map: [(from, to)].into_iter().collect(),
        grace_period: Duration::from_secs(10),
        ..Default::default()
    }
}

/// Feeds events to a fresh engine, then lets time pass; returns every
/// exported span.
pub fn merge(scenario: &str, events: &[Event], transcripts: bool) -> Vec<SpanRecord> {
    let mut engine = Engine::new(config(scenario, transcripts), None);
    let mut out = Vec::new();
    for e in events {
        engine.ingest(std::slice::from_ref(e));
        out.extend(
            engine
                .tick(e.received_at, false)
                .into_iter()
                .flat_map(|x| x.spans),
        );
    }
    // Sessions without a SessionEnd close when idle; then the grace passes.
    out.extend(engine.tick(LATER, false).into_iter().flat_map(|x| x.spans));
    out.extend(
        engine
            .tick(LATER + 3_600_000_000_000, false)
            .into_iter()
            .flat_map(|x| x.spans),
    );
    out
}

fn attr(s: &SpanRecord, k: &str) -> String {
    match s.attr(k) {
        Some(Attr::Str(v)) => v.clone(),
        Some(Attr::Int(v)) => v.to_string(),
        Some(Attr::Double(v)) => format!("{v}"),
        Some(Attr::Bool(v)) => v.to_string(),
        Some(Attr::List(v)) => v.join(","),
        None => "-".into(),
    }
}

/// The tree as text: names, parent links and key attributes, no timestamps.
pub fn tree_text(spans: &[SpanRecord]) -> String {
    let mut children: BTreeMap<Option<[u8; 8]>, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        children.entry(s.parent_span_id).or_default().push(s);
    }
    for v in children.values_mut() {
        v.sort_by(|a, b| {
            (
                a.start_ns,
                &a.name,
                attr(a, "tool_use_id"),
                attr(a, "request_id"),
            )
                .cmp(&(
                    b.start_ns,
                    &b.name,
                    attr(b, "tool_use_id"),
                    attr(b, "request_id"),
                ))
        });
    }
    fn line(s: &SpanRecord) -> String {
        let status = match &s.status {
            SpanStatus::Error(_) => " ERROR",
            _ => "",
        };
        match s.kind {
            SpanKind::Session => format!(
                "{} turns={} llm={} tools={} tokens={}/{}/{}/{} cost={} errors={} end={}",
                s.name,
                attr(s, "totals.turns"),
                attr(s, "totals.llm_calls"),
                attr(s, "totals.tool_calls"),
                attr(s, "totals.input_tokens"),
                attr(s, "totals.output_tokens"),
                attr(s, "totals.cache_read_tokens"),
                attr(s, "totals.cache_creation_tokens"),
                attr(s, "totals.cost_usd"),
                attr(s, "totals.errors"),
                attr(s, "session.end_reason"),
            ),
            SpanKind::Turn => format!(
                "{} #{} prompt={} kind={} llm={} tools={}{status}",
                s.name,
                attr(s, "interaction.sequence"),
                attr(s, "prompt.id"),
                attr(s, "turn.kind"),
                attr(s, "totals.llm_calls"),
                attr(s, "totals.tool_calls"),
            ),
            SpanKind::Llm => format!(
                "{} {} model={} tokens={}/{}/{}/{} source={}{status}",
                s.name,
                attr(s, "request_id"),
                attr(s, "model"),
                attr(s, "input_tokens"),
                attr(s, "output_tokens"),
                attr(s, "cache_read_tokens"),
                attr(s, "cache_creation_tokens"),
                attr(s, "query_source"),
            ),
            SpanKind::Tool => format!(
                "{} {} {} status={}{status}",
                s.name,
                attr(s, "tool_name"),
                attr(s, "tool_use_id"),
                attr(s, "tool.status"),
            ),
        }
    }
    fn walk(
        out: &mut String,
        children: &BTreeMap<Option<[u8; 8]>, Vec<&SpanRecord>>,
        parent: Option<[u8; 8]>,
        depth: usize,
    ) {
        for s in children.get(&parent).into_iter().flatten() {
            out.push_str(&"  ".repeat(depth));
            out.push_str(&line(s));
            out.push('\n');
            walk(out, children, Some(s.span_id), depth + 1);
        }
    }
    let mut out = String::new();
    walk(&mut out, &children, None, 0);
    out
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"))
}

/// Compares with the checked-in tree; `UPDATE_GOLDEN=1` rewrites it.
fn check_golden(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert_eq!(text, want, "tree of {name} differs from {}", path.display());
}

/// Checks the tree against the facts of expected.json.
pub fn check_facts(scenario: &str, spans: &[SpanRecord], sources: &str) {
    let expected = fixtures::expected(scenario);
    let session = &expected["sessions"][0];
    let what = format!("{scenario} ({sources})");
    let by_id: HashMap<[u8; 8], &SpanRecord> = spans.iter().map(|s| (s.span_id, s)).collect();
    assert_eq!(
        by_id.len(),
        spans.len(),
        "{what}: a span was exported twice"
    );
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "{what}: one root");
    assert_eq!(roots[0].name, "claude_code.session");
    let trace = roots[0].trace_id;
    for s in spans {
        assert_eq!(s.trace_id, trace, "{what}: one trace");
        if let Some(p) = s.parent_span_id {
            assert!(
                by_id.contains_key(&p),
                "{what}: {} has a missing parent",
                s.name
            );
        }
        assert!(
            s.end_ns >= s.start_ns,
            "{what}: {} ends before it starts",
            s.name
        );
    }
    // Turns: one per prompt, in order.
    let mut turns: Vec<&SpanRecord> = spans.iter().filter(|s| s.kind == SpanKind::Turn).collect();
    turns.sort_by_key(|s| s.attr("interaction.sequence").and_then(Attr::as_i64));
    let prompts: Vec<&str> = session["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prompt_id"].as_str().unwrap())
        .collect();
    let turn_prompts: Vec<String> = turns.iter().map(|t| attr(t, "prompt.id")).collect();
    assert_eq!(
        turn_prompts, prompts,
        "{what}: one turn per prompt, in order"
    );
    for t in &turns {
        assert_eq!(t.parent_span_id, Some(roots[0].span_id));
    }
    let turn_of: HashMap<String, [u8; 8]> = turns
        .iter()
        .map(|t| (attr(t, "prompt.id"), t.span_id))
        .collect();
    // Tool calls: each once; failures are errors; subagent calls nested.
    let tools: HashMap<String, &SpanRecord> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Tool && s.name == "claude_code.tool")
        .map(|s| (attr(s, "tool_use_id"), s))
        .collect();
    let agent_call: HashMap<String, String> = session["subagents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().unwrap().to_string(),
                a["spawned_by_tool_use_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect_parent = |agent: &Value, prompt: &Value| -> [u8; 8] {
        match agent.as_str() {
            Some(a) => tools[&agent_call[a]].span_id,
            None => turn_of[prompt.as_str().unwrap()],
        }
    };
    let mut want_tools = BTreeSet::new();
    for t in session["tool_calls"].as_array().unwrap() {
        if t["status"] == "unavailable" {
            continue;
        }
        let id = t["tool_use_id"].as_str().unwrap();
        want_tools.insert(id.to_string());
        let span = tools
            .get(id)
            .unwrap_or_else(|| panic!("{what}: tool call {id} missing"));
        assert_eq!(attr(span, "tool_name"), t["tool_name"].as_str().unwrap());
        assert_eq!(
            matches!(span.status, SpanStatus::Error(_)),
            t["failed"].as_bool().unwrap(),
            "{what}: error status of {id}"
        );
        if t["denied"] == true {
            assert_eq!(attr(span, "tool.status"), "denied", "{what}: {id}");
        }
        assert_eq!(
            span.parent_span_id,
            Some(expect_parent(&t["agent_id"], &t["prompt_id"])),
            "{what}: parent of tool {id}"
        );
    }
    let got_tools: BTreeSet<String> = tools.keys().cloned().collect();
    assert_eq!(got_tools, want_tools, "{what}: tool calls");
    // Model calls: each once, with its tokens, in the right place.
    let llms: HashMap<String, &SpanRecord> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Llm)
        .map(|s| (attr(s, "request_id"), s))
        .collect();
    let mut want_llms = BTreeSet::new();
    for c in session["llm_calls"].as_array().unwrap() {
        let id = c["request_id"].as_str().unwrap();
        want_llms.insert(id.to_string());
        let span = llms
            .get(id)
            .unwrap_or_else(|| panic!("{what}: model call {id} missing"));
        let u = &c["usage"];
        for (ours, theirs) in [
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_tokens", "cache_read_input_tokens"),
            ("cache_creation_tokens", "cache_creation_input_tokens"),
        ] {
            assert_eq!(
                attr(span, ours),
                u[theirs].as_u64().unwrap().to_string(),
                "{what}: {ours} of {id}"
            );
        }
        assert_eq!(attr(span, "model"), c["model"].as_str().unwrap());
        assert_eq!(
            span.parent_span_id,
            Some(expect_parent(&c["agent_id"], &c["prompt_id"])),
            "{what}: parent of model call {id}"
        );
    }
    let got_llms: BTreeSet<String> = llms.keys().cloned().collect();
    assert_eq!(got_llms, want_llms, "{what}: model calls");
}

#[test]
fn golden_trees_match_and_show_the_expected_facts() {
    for scenario in fixtures::SCENARIOS {
        let spans = merge(scenario, &fixtures::events(scenario, Sources::ALL), true);
        check_facts(scenario, &spans, "all sources");
        check_golden(scenario, &tree_text(&spans));
    }
}

#[test]
fn partial_sources_still_give_a_correct_tree() {
    for scenario in fixtures::SCENARIOS {
        // OTLP only: no hooks, no transcripts.
        let otlp_only = fixtures::events(
            scenario,
            Sources {
                hooks: false,
                otlp: true,
            },
        );
        let spans = merge(scenario, &otlp_only, false);
        check_facts(scenario, &spans, "OTLP only");
        // Hooks and OTLP, transcripts unreadable.
        let spans = merge(scenario, &fixtures::events(scenario, Sources::ALL), false);
        check_facts(scenario, &spans, "no transcripts");
        // Hooks and transcripts, no OTLP: model calls come from transcripts.
        let hooks_only = fixtures::events(
            scenario,
            Sources {
                hooks: true,
                otlp: false,
            },
        );
        let spans = merge(scenario, &hooks_only, true);
        check_facts(scenario, &spans, "hooks and transcripts");
    }
}

#[test]
fn hooks_alone_give_turns_and_tool_calls() {
    for scenario in fixtures::SCENARIOS {
        let hooks_only = fixtures::events(
            scenario,
            Sources {
                hooks: true,
                otlp: false,
            },
        );
        let spans = merge(scenario, &hooks_only, false);
        let expected = fixtures::expected(scenario);
        let session = &expected["sessions"][0];
        let turns = spans.iter().filter(|s| s.kind == SpanKind::Turn).count();
        assert_eq!(
            turns,
            session["prompts"].as_array().unwrap().len(),
            "{scenario}"
        );
        let tools: BTreeSet<String> = spans
            .iter()
            .filter(|s| s.name == "claude_code.tool")
            .map(|s| attr(s, "tool_use_id"))
            .collect();
        // Denied by a rule before any hook could see a result, a call still
        // has its PreToolUse; every expected call is there.
        for t in session["tool_calls"].as_array().unwrap() {
            if t["status"] != "unavailable" {
                assert!(
                    tools.contains(t["tool_use_id"].as_str().unwrap()),
                    "{scenario}"
                );
            }
        }
    }
}

mod order {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Hooks come first and OTLP lags by up to one export interval in
        /// practice; any such interleaving gives the same tree.
        #[test]
        fn any_interleaving_within_skew_gives_the_same_tree(
            scenario_index in 0..fixtures::SCENARIOS.len(),
            delays in proptest::collection::vec(0u64..6_000, 400),
        ) {
            let scenario = fixtures::SCENARIOS[scenario_index];
            let mut events = fixtures::events(scenario, Sources::ALL);
            for (e, d) in events.iter_mut().zip(delays.iter().cycle()) {
                e.received_at += d * 1_000_000;
            }
            events.sort_by_key(|e| e.received_at);
            let spans = merge(scenario, &events, true);
            check_facts(scenario, &spans, "reordered");
            let want = std::fs::read_to_string(golden_path(scenario)).unwrap();
            prop_assert_eq!(tree_text(&spans), want);
        }

        /// An open session, its events interleaved as above and the engine
        /// ticking between them, leaves memory once it has been quiet for
        /// `evict_after`, whatever a tick saw midway (a call can be seen
        /// complete under one identity, then under another once more
        /// events arrive).
        #[test]
        fn an_open_session_leaves_memory_when_quiet_in_any_interleaving(
            scenario_index in 0..fixtures::SCENARIOS.len(),
            delays in proptest::collection::vec(0u64..6_000, 400),
        ) {
            let scenario = fixtures::SCENARIOS[scenario_index];
            let mut events: Vec<Event> = fixtures::events(scenario, Sources::ALL)
                .into_iter()
                .filter(|e| !matches!(&e.payload, ccotel::model::Payload::Hook(h)
                    if h.name.as_str() == "SessionEnd"))
                .collect();
            for (e, d) in events.iter_mut().zip(delays.iter().cycle()) {
                e.received_at += d * 1_000_000;
            }
            events.sort_by_key(|e| e.received_at);
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config(scenario, true);
            cfg.evict_after = Duration::from_secs(1);
            let store = ccotel::store::Store::open(dir.path()).unwrap();
            let mut engine = Engine::new(cfg, Some(store));
            let tick = |engine: &mut Engine, now: u64| {
                let due = engine.tick(now, false);
                engine.record(&due);
            };
            for e in &events {
                engine.ingest(std::slice::from_ref(e));
                tick(&mut engine, e.received_at);
            }
            let last = events.last().map_or(0, |e| e.received_at);
            tick(&mut engine, last + 11 * 1_000_000_000);
            tick(&mut engine, last + 13 * 1_000_000_000);
            prop_assert_eq!(engine.counts(), (0, 1), "{}: in memory, evicted", scenario);
        }
    }
}

/// A hook event made up for a test.
fn hook(session: &str, name: &str, at: u64, extra: Value) -> Event {
    let mut fields = serde_json::json!({"session_id": session, "hook_event_name": name});
    if let (Some(f), Value::Object(x)) = (fields.as_object_mut(), extra) {
        f.extend(x);
    }
    Event {
        received_at: at,
        transport: ccotel::model::Transport::HookHttp,
        payload: ccotel::model::Payload::Hook(
            ccotel::model::HookEvent::parse(fields.to_string().as_bytes()).unwrap(),
        ),
        wire: None,
    }
}

#[test]
fn a_resumed_session_continues_its_trace_without_duplicates() {
    let scenario = "multi-turn";
    let events = fixtures::events(scenario, Sources::ALL);
    let expected = fixtures::expected(scenario);
    let session_id = expected["session_ids"][0].as_str().unwrap();
    let second_prompt = expected["sessions"][0]["prompts"][1]["prompt_id"]
        .as_str()
        .unwrap();
    // The first run ends after the first turn; the resumed run brings the rest.
    let split = events
        .iter()
        .position(|e| {
            matches!(&e.payload, ccotel::model::Payload::Hook(h)
                if h.name == ccotel::model::HookEventName::UserPromptSubmit
                && h.str("prompt_id") == Some(second_prompt))
        })
        .unwrap();
    let cut = events[split].received_at - 1;
    // OTLP for the first turn may arrive late; keep it with the first run.
    let (mut first, mut second): (Vec<Event>, Vec<Event>) =
        events.into_iter().partition(|e| e.received_at <= cut);
    first.push(hook(
        session_id,
        "SessionEnd",
        cut,
        serde_json::json!({"reason": "prompt_input_exit"}),
    ));
    second.insert(
        0,
        hook(
            session_id,
            "SessionStart",
            cut + 1,
            serde_json::json!({"source": "resume"}),
        ),
    );

    // The capture's transcript already holds all three turns; without it,
    // each run brings only its own.
    let mut engine = Engine::new(config(scenario, false), None);
    let mut exported = Vec::new();
    engine.ingest(&first);
    exported.extend(engine.tick(cut, false).into_iter().flat_map(|x| x.spans));
    exported.extend(
        engine
            .tick(cut + 60_000_000_000, false)
            .into_iter()
            .flat_map(|x| x.spans),
    );
    assert!(
        engine.session_ids().is_empty(),
        "the first run is closed and finished"
    );
    let first_count = exported.len();
    assert!(exported.iter().any(|s| s.kind == SpanKind::Session));

    engine.ingest(&second);
    exported.extend(engine.tick(LATER, false).into_iter().flat_map(|x| x.spans));
    exported.extend(
        engine
            .tick(LATER + 3_600_000_000_000, false)
            .into_iter()
            .flat_map(|x| x.spans),
    );
    assert!(exported.len() > first_count, "the resumed run added spans");
    let ids: BTreeSet<[u8; 8]> = exported.iter().map(|s| s.span_id).collect();
    assert_eq!(ids.len(), exported.len(), "no span exported twice");
    check_facts(scenario, &exported, "resumed");
}

#[test]
fn a_restart_mid_session_rebuilds_it_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    for scenario in ["subagent", "tools-basic"] {
        let events = fixtures::events(scenario, Sources::ALL);
        let half = events.len() / 2;
        let mut exported = Vec::new();
        {
            let store = ccotel::store::Store::open(dir.path()).unwrap();
            let mut engine = Engine::new(config(scenario, true), Some(store));
            for e in &events[..half] {
                engine.ingest(std::slice::from_ref(e));
                let due = engine.tick(e.received_at, false);
                engine.record(&due);
                exported.extend(due.into_iter().flat_map(|x| x.spans));
            }
            // Killed: no flush, no goodbye.
        }
        let store = ccotel::store::Store::open(dir.path()).unwrap();
        let mut engine = Engine::new(config(scenario, true), Some(store));
        assert!(engine.restore() >= half, "{scenario}: events replayed");
        for e in &events[half..] {
            engine.ingest(std::slice::from_ref(e));
            let due = engine.tick(e.received_at, false);
            engine.record(&due);
            exported.extend(due.into_iter().flat_map(|x| x.spans));
        }
        let due = engine.tick(LATER, false);
        engine.record(&due);
        exported.extend(due.into_iter().flat_map(|x| x.spans));
        check_facts(scenario, &exported, "restarted");
        assert_eq!(
            tree_text(&exported),
            std::fs::read_to_string(golden_path(scenario)).unwrap()
        );
    }
}

/// Feeds events one at a time to an engine with a store, ticking and
/// recording after each as `serve` does (once as it arrives, once 1 ns
/// later), then lets the session close and the grace pass; returns every
/// exported span and how often a session left memory.
fn merge_stored(events: &[Event], cfg: MergeConfig) -> (Vec<SpanRecord>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = ccotel::store::Store::open(dir.path()).unwrap();
    let mut engine = Engine::new(cfg, Some(store));
    let mut out = Vec::new();
    let mut evictions = 0;
    let mut step = |engine: &mut Engine, now: u64| {
        let before = engine.counts().1;
        let due = engine.tick(now, false);
        engine.record(&due);
        out.extend(due.into_iter().flat_map(|x| x.spans));
        evictions += engine.counts().1.saturating_sub(before);
    };
    for e in events {
        engine.ingest(std::slice::from_ref(e));
        step(&mut engine, e.received_at);
        step(&mut engine, e.received_at + 1);
    }
    step(&mut engine, LATER);
    step(&mut engine, LATER + 3_600_000_000_000);
    (out, evictions)
}

/// Exported spans by id; fails when one was exported twice.
fn by_id(spans: &[SpanRecord], what: &str) -> BTreeMap<[u8; 8], SpanRecord> {
    let map: BTreeMap<[u8; 8], SpanRecord> = spans.iter().map(|s| (s.span_id, s.clone())).collect();
    assert_eq!(map.len(), spans.len(), "{what}: a span was exported twice");
    map
}

#[test]
fn sessions_that_leave_memory_when_quiet_export_the_same_spans() {
    for scenario in fixtures::SCENARIOS {
        let events = fixtures::events(scenario, Sources::ALL);
        // A 1 ms grace exports as soon as a span is complete, so the session
        // has nothing pending between most events: it leaves memory after
        // nearly every one and is rebuilt from the store by the next. The
        // default grace keeps the trees golden.
        for grace in [Duration::from_millis(1), Duration::from_secs(10)] {
            let what = format!("{scenario}, grace {grace:?}");
            let mut keep = config(scenario, true);
            keep.grace_period = grace;
            keep.evict_after = Duration::ZERO;
            let mut evict = keep.clone();
            evict.evict_after = Duration::from_nanos(1);
            let (kept, none) = merge_stored(&events, keep);
            let (rebuilt, evictions) = merge_stored(&events, evict);
            assert_eq!(none, 0, "{what}: evict_after = 0 keeps sessions");
            assert_eq!(
                by_id(&rebuilt, &what),
                by_id(&kept, &what),
                "{what}: same spans with and without eviction"
            );
            if grace == Duration::from_millis(1) {
                assert!(evictions > 0, "{what}: the session left memory");
            } else {
                check_facts(scenario, &rebuilt, "evicted when quiet");
                assert_eq!(
                    tree_text(&rebuilt),
                    std::fs::read_to_string(golden_path(scenario)).unwrap()
                );
            }
        }
    }
}

#[test]
fn what_was_exported_leaves_the_spans_still_to_come_unchanged() {
    use ccotel::merge::render::{render, render_pending, RenderOptions};
    use ccotel::merge::session::Session;
    for scenario in fixtures::SCENARIOS {
        let expected = fixtures::expected(scenario);
        let sid = expected["session_ids"][0].as_str().unwrap();
        let mut session = Session::new(sid);
        for e in fixtures::events(scenario, Sources::ALL) {
            ccotel::merge::route::apply(&mut session, &e);
        }
        let (from, to) = fixtures::transcript_map(scenario);
        let mut paths: Vec<String> = session.facts.transcript_path.iter().cloned().collect();
        paths.extend(
            session
                .agents
                .values()
                .filter_map(|a| a.transcript_path.clone()),
        );
        for p in paths {
            let local = p.replacen(&from, &to.display().to_string(), 1);
            ccotel::merge::transcript::read_new(&mut session, &local);
        }
        for opts in [
            RenderOptions {
                idle_closed_at: None,
                max_content: 64 * 1024,
            },
            RenderOptions {
                idle_closed_at: Some(LATER),
                max_content: 100,
            },
        ] {
            let full = render(&session, &opts);
            let spans = &full.spans;
            // Exported so far: every model and tool call; every other span;
            // everything but the root.
            let subsets: Vec<std::collections::HashSet<[u8; 8]>> = vec![
                spans
                    .iter()
                    .filter(|r| matches!(r.span.kind, SpanKind::Llm | SpanKind::Tool))
                    .map(|r| r.span.span_id)
                    .collect(),
                spans.iter().step_by(2).map(|r| r.span.span_id).collect(),
                spans
                    .iter()
                    .filter(|r| r.span.kind != SpanKind::Session)
                    .map(|r| r.span.span_id)
                    .collect(),
            ];
            for exported in subsets {
                let mut released = session.clone();
                released.release_exported(&exported);
                let after = render(&released, &opts);
                assert_eq!(after.resource, full.resource, "{scenario}");
                let ids = |t: &ccotel::merge::render::Tree| -> Vec<[u8; 8]> {
                    t.spans.iter().map(|r| r.span.span_id).collect()
                };
                assert_eq!(ids(&after), ids(&full), "{scenario}: the same spans");
                for (a, b) in after.spans.iter().zip(&full.spans) {
                    if !exported.contains(&b.span.span_id) {
                        assert_eq!(a, b, "{scenario}: {} changed", b.span.name);
                    }
                }
                // What a tick renders: the exported spans left out but the
                // root, everything else as the full tree has it.
                let pending = render_pending(&released, &opts, &exported);
                assert_eq!(pending.resource, full.resource, "{scenario}");
                let left_out = |r: &&ccotel::merge::render::Rendered| {
                    exported.contains(&r.span.span_id) && r.span.kind != SpanKind::Session
                };
                let kept: Vec<_> = full.spans.iter().filter(|r| !left_out(r)).collect();
                assert_eq!(
                    pending
                        .spans
                        .iter()
                        .map(|r| r.span.span_id)
                        .collect::<Vec<_>>(),
                    kept.iter().map(|r| r.span.span_id).collect::<Vec<_>>(),
                    "{scenario}: the spans a tick renders"
                );
                for (a, b) in pending.spans.iter().zip(kept) {
                    if !exported.contains(&b.span.span_id) {
                        assert_eq!(a, b, "{scenario}: {} changed in a tick", b.span.name);
                    }
                }
                // The content of the released calls is gone.
                let all_llms = spans
                    .iter()
                    .filter(|r| r.span.kind == SpanKind::Llm)
                    .all(|r| exported.contains(&r.span.span_id));
                if all_llms {
                    assert!(released.request_bodies.is_empty() || session.llms.is_empty());
                    assert!(released
                        .llms
                        .values()
                        .all(|l| l.output.is_none() && l.tx_blocks.is_empty()));
                }
            }
        }
    }
}

/// Steps of a made-up session: events at given times, and ticks.
enum Step {
    Event(Event),
    Tick(u64),
    /// ccotel is killed and started again on the same store.
    Restart,
}

/// Runs the steps on an engine with a store; returns the exported spans and
/// the engine's (in memory, evicted) counts after each tick.
fn run_steps(steps: &[Step], evict_after: Duration) -> (Vec<SpanRecord>, Vec<(usize, usize)>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MergeConfig {
        read_transcripts: false,
        grace_period: Duration::from_secs(1),
        evict_after,
        ..Default::default()
    };
    let open = || ccotel::store::Store::open(dir.path()).unwrap();
    let mut engine = Engine::new(cfg.clone(), Some(open()));
    let (mut out, mut counts) = (Vec::new(), Vec::new());
    for step in steps {
        match step {
            Step::Event(e) => engine.ingest(std::slice::from_ref(e)),
            Step::Tick(now) => {
                let due = engine.tick(*now, false);
                engine.record(&due);
                out.extend(due.into_iter().flat_map(|x| x.spans));
                counts.push(engine.counts());
            }
            Step::Restart => {
                drop(engine);
                engine = Engine::new(cfg.clone(), Some(open()));
                engine.restore();
            }
        }
    }
    (out, counts)
}

const S: u64 = 1_000_000_000;

/// A session with one turn and one tool call, all exported by `T0 + 10 s`,
/// then quiet.
fn first_turn(sid: &str) -> Vec<Step> {
    let t0 = 1_800_000_000 * S;
    vec![
        Step::Event(hook(
            sid,
            "SessionStart",
            t0,
            serde_json::json!({"source": "startup"}),
        )),
        Step::Event(hook(
            sid,
            "UserPromptSubmit",
            t0 + S,
            serde_json::json!({"prompt_id": "p1", "prompt": "list the files"}),
        )),
        Step::Event(hook(
            sid,
            "PreToolUse",
            t0 + 2 * S,
            serde_json::json!({"prompt_id": "p1", "tool_use_id": "toolu_1", "tool_name": "Bash", "tool_input": {"command": "ls"}}),
        )),
        Step::Event(hook(
            sid,
            "PostToolUse",
            t0 + 3 * S,
            serde_json::json!({"prompt_id": "p1", "tool_use_id": "toolu_1", "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_response": {"stdout": "a b"}}),
        )),
        Step::Event(hook(
            sid,
            "Stop",
            t0 + 4 * S,
            serde_json::json!({"prompt_id": "p1", "last_assistant_message": "a and b"}),
        )),
        Step::Tick(t0 + 4 * S),
        Step::Tick(t0 + 6 * S),
        // Quiet for 14 s, nothing pending.
        Step::Tick(t0 + 20 * S),
    ]
}

#[test]
fn a_quiet_session_leaves_memory_and_its_next_prompt_continues_the_same_trace() {
    let sid = "0b5e1a60-quiet";
    let t0 = 1_800_000_000 * S;
    let mut late = first_turn(sid);
    late.extend([
        // A late, different copy of the tool's result, for a span already out.
        Step::Event(hook(
            sid,
            "PostToolUse",
            t0 + 21 * S,
            serde_json::json!({"prompt_id": "p1", "tool_use_id": "toolu_1", "tool_name": "Bash", "tool_response": {"stdout": "a b c d e f"}}),
        )),
        Step::Tick(t0 + 21 * S),
        Step::Tick(t0 + 30 * S),
        Step::Tick(t0 + 45 * S),
        // The user comes back: a second turn.
        Step::Event(hook(
            sid,
            "UserPromptSubmit",
            t0 + 50 * S,
            serde_json::json!({"prompt_id": "p2", "prompt": "thanks"}),
        )),
        Step::Event(hook(
            sid,
            "Stop",
            t0 + 51 * S,
            serde_json::json!({"prompt_id": "p2", "last_assistant_message": "you are welcome"}),
        )),
        Step::Tick(t0 + 51 * S),
        Step::Tick(t0 + 53 * S),
        Step::Tick(t0 + 70 * S),
        Step::Event(hook(sid, "SessionEnd", t0 + 80 * S, serde_json::json!({"reason": "other"}))),
        Step::Tick(t0 + 80 * S),
        Step::Tick(t0 + 82 * S),
    ]);
    let (kept, kept_counts) = run_steps(&late, Duration::ZERO);
    let (evicted, counts) = run_steps(&late, Duration::from_secs(5));
    assert!(kept_counts.iter().all(|(_, e)| *e == 0));
    // Quiet at +20 s: out of memory; back for the late result, out again,
    // back for the second prompt; finished after SessionEnd.
    assert_eq!(counts[2], (0, 1), "evicted once quiet");
    assert_eq!(counts[3], (1, 0), "rebuilt by the late result");
    assert_eq!(counts[5], (0, 1), "evicted again");
    assert_eq!(counts[6], (1, 0), "rebuilt by the next prompt");
    assert_eq!(*counts.last().unwrap(), (0, 0), "finished");
    assert_eq!(
        by_id(&evicted, "evicted"),
        by_id(&kept, "kept"),
        "the same spans, ids and attributes"
    );
    let names: Vec<&str> = evicted.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "claude_code.tool").count(),
        1,
        "the late result did not export the tool call again"
    );
    let turn2 = evicted
        .iter()
        .find(|s| s.attr("prompt.id").and_then(Attr::as_str) == Some("p2"))
        .unwrap();
    assert_eq!(
        turn2.attr("interaction.sequence").and_then(Attr::as_i64),
        Some(2)
    );
    let root = evicted
        .iter()
        .find(|s| s.kind == SpanKind::Session)
        .unwrap();
    assert_eq!(root.attr("totals.turns").and_then(Attr::as_i64), Some(2));
    assert_eq!(
        root.attr("totals.tool_calls").and_then(Attr::as_i64),
        Some(1)
    );
    assert_eq!(
        root.attr("user_prompt").and_then(Attr::as_str),
        Some("list the files")
    );
}

#[test]
fn an_evicted_session_times_out_and_survives_a_restart() {
    // Longer than the ids Claude Code makes (UUIDs).
    let sid = "0b5e1a60-timeout-a-session-id-longer-than-forty-seven-bytes";
    let t0 = 1_800_000_000 * S;
    let idle = 30 * 60 * S;
    let mut steps = first_turn(sid);
    steps.extend([
        Step::Restart,
        Step::Tick(t0 + 25 * S),
        Step::Tick(t0 + 4 * S + idle),
        Step::Tick(t0 + 10 * S + idle),
    ]);
    let (kept, _) = run_steps(&steps, Duration::ZERO);
    let (evicted, counts) = run_steps(&steps, Duration::from_secs(5));
    assert_eq!(counts[2], (0, 1), "evicted once quiet");
    assert_eq!(
        counts[3],
        (0, 1),
        "rebuilt after the restart, evicted again"
    );
    assert_eq!(
        *counts.last().unwrap(),
        (0, 0),
        "closed by the idle timeout"
    );
    assert_eq!(by_id(&evicted, "evicted"), by_id(&kept, "kept"));
    let root = evicted
        .iter()
        .find(|s| s.kind == SpanKind::Session)
        .unwrap();
    assert_eq!(
        root.attr("session.end_reason").and_then(Attr::as_str),
        Some("idle_timeout")
    );
}

/// A turn of `calls` finished tool calls, its events `1 ms` apart from `at`.
fn busy_turn(sid: &str, prompt: &str, calls: usize, at: u64) -> Vec<Event> {
    const MS: u64 = 1_000_000;
    let mut out = vec![hook(
        sid,
        "UserPromptSubmit",
        at,
        serde_json::json!({"prompt_id": prompt, "prompt": "go on"}),
    )];
    for i in 0..calls {
        let call = serde_json::json!({
            "prompt_id": prompt,
            "tool_name": "Bash",
            "tool_use_id": format!("toolu_{prompt}_{i}"),
            "tool_input": {"command": "x".repeat(2000)},
        });
        let mut post = call.clone();
        post["tool_response"] = serde_json::json!({"stdout": "y".repeat(8000)});
        let t = at + (2 * i as u64 + 1) * MS;
        out.push(hook(sid, "PreToolUse", t, call));
        out.push(hook(sid, "PostToolUse", t + MS, post));
    }
    out.push(hook(
        sid,
        "Stop",
        at + (2 * calls as u64 + 2) * MS,
        serde_json::json!({"prompt_id": prompt}),
    ));
    out
}

#[test]
fn a_long_session_hands_back_the_memory_of_its_exported_calls() {
    use ccotel::telemetry::Stats;
    use std::sync::atomic::Ordering;
    const S: u64 = 1_000_000_000;
    let stats = std::sync::Arc::new(Stats::default());
    let cfg = MergeConfig {
        grace_period: Duration::from_secs(1),
        read_transcripts: false,
        ..Default::default()
    };
    let mut engine = Engine::new(cfg, None).with_stats(stats.clone());
    let trims = || stats.heap_trims.load(Ordering::Relaxed);
    let sid = "c0000000-0000-4000-8000-00000000001a";
    let t0 = 1_000 * S;
    engine.ingest(&[hook(sid, "SessionStart", t0, serde_json::json!({}))]);
    engine.ingest(&busy_turn(sid, "p1", 200, t0));
    engine.tick(t0 + S / 2, false);
    assert_eq!(trims(), 0, "nothing exported yet, nothing freed");
    // The first turn's calls are exported and their content dropped: the
    // freed memory goes back although the session stays open.
    let spans: usize = engine
        .tick(t0 + 3 * S, false)
        .iter()
        .map(|e| e.spans.len())
        .sum();
    assert!(spans >= 200, "{spans} spans exported");
    assert_eq!(trims(), 1);
    assert_eq!(engine.counts().0, 1, "the session stays in memory");
    // The next turn's calls are released within TRIM_EVERY of that trim:
    // no trim until it has passed, then one.
    engine.ingest(&busy_turn(sid, "p2", 200, t0 + 4 * S));
    engine.tick(t0 + 6 * S, false);
    assert_eq!(trims(), 1, "at most one trim per 5 s");
    engine.tick(t0 + 8 * S + S / 2, false);
    assert_eq!(trims(), 2);
    // Quiet since that turn's export: one last trim hands back what the
    // burst freed elsewhere; then, nothing more released, no more trims.
    engine.tick(t0 + 20 * S, false);
    assert_eq!(trims(), 3);
    engine.tick(t0 + 40 * S, false);
    assert_eq!(trims(), 3);
}

/// A session far longer than the fixtures, rebuilt after it left memory:
/// the rebuild drops exported content as it reads, and what it exports
/// next is what a session kept in memory exports.
#[test]
fn a_long_session_rebuilt_after_a_pause_exports_what_it_would_have() {
    let sid = "0b5e1a60-long-pause";
    let t0 = 1_800_000_000 * S;
    let mut steps = vec![Step::Event(hook(
        sid,
        "SessionStart",
        t0,
        serde_json::json!({"source": "startup"}),
    ))];
    // Three turns, 1 200 stored events in all: several rounds of release
    // while the rebuild reads them.
    for (i, prompt) in ["p1", "p2", "p3"].iter().enumerate() {
        let at = t0 + (1 + i as u64) * S;
        steps.extend(busy_turn(sid, prompt, 200, at).into_iter().map(Step::Event));
    }
    steps.extend([
        Step::Tick(t0 + 5 * S),
        Step::Tick(t0 + 7 * S),
        // The user reads the answer for a while.
        Step::Tick(t0 + 30 * S),
    ]);
    steps.extend(
        busy_turn(sid, "p4", 3, t0 + 40 * S)
            .into_iter()
            .map(Step::Event),
    );
    steps.extend([
        Step::Tick(t0 + 41 * S),
        Step::Tick(t0 + 43 * S),
        Step::Event(hook(
            sid,
            "SessionEnd",
            t0 + 50 * S,
            serde_json::json!({"reason": "other"}),
        )),
        Step::Tick(t0 + 50 * S),
        Step::Tick(t0 + 52 * S),
    ]);
    let (kept, _) = run_steps(&steps, Duration::ZERO);
    let (rebuilt, counts) = run_steps(&steps, Duration::from_secs(5));
    assert_eq!(counts[2], (0, 1), "left memory while the user read");
    assert_eq!(counts[3], (1, 0), "rebuilt by the next prompt");
    assert_eq!(
        by_id(&rebuilt, "rebuilt"),
        by_id(&kept, "kept"),
        "the same spans, ids and attributes"
    );
    let root = rebuilt
        .iter()
        .find(|s| s.kind == SpanKind::Session)
        .unwrap();
    assert_eq!(root.attr("totals.turns").and_then(Attr::as_i64), Some(4));
    assert_eq!(
        root.attr("totals.tool_calls").and_then(Attr::as_i64),
        Some(603)
    );
    let tools = rebuilt
        .iter()
        .filter(|s| s.name == "claude_code.tool")
        .count();
    assert_eq!(tools, 603, "every call exported once");
}
