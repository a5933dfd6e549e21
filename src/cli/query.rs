//! `ccotel sessions`, `show`, `stats` and `tail`: the questions people ask
//! about their Claude Code use, from the local store or a remote ccotel.

use super::output::{clip, cost, duration, time, tokens, Style, Table};
use super::{FilterArgs, QueryArgs, SessionsArgs, ShowArgs, StatsArgs, TailArgs};
use crate::model::span::{Attr, SpanKind, SpanRecord, SpanStatus};
use crate::query::pb::{Filter, SessionSummary, StatsRow};
use crate::query::source::Source;
use crate::store::query::GroupBy;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn source(q: &QueryArgs) -> anyhow::Result<Source> {
    let store = q
        .store
        .clone()
        .unwrap_or_else(crate::config::default_store_path);
    Source::open(
        q.server.as_deref(),
        q.token.as_deref(),
        q.ca_cert.as_deref(),
        &store,
    )
    .await
}

/// `--since 2h` / `--since 7d` / `--since 2026-11-01` as unix ns.
pub fn parse_since(s: &str) -> anyhow::Result<i64> {
    let now = SystemTime::now();
    let t = if let Ok(d) = humantime::parse_duration(s) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")) {
        t
    } else if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else {
        anyhow::bail!(
            "--since {s:?}: use a duration such as 2h or 7d, or a date such as 2026-11-01"
        );
    };
    Ok(crate::model::event::unix_nanos(t) as i64)
}

fn filter(f: &FilterArgs) -> anyhow::Result<Filter> {
    Ok(Filter {
        since_unix_nano: f
            .since
            .as_deref()
            .map(parse_since)
            .transpose()?
            .unwrap_or(0),
        project: f.project.clone().unwrap_or_default(),
        model: f.model.clone().unwrap_or_default(),
    })
}

fn summary_json(s: &SessionSummary) -> Value {
    json!({
        "session_id": s.session_id,
        "start": time(s.start_unix_nano),
        "start_unix_nano": s.start_unix_nano,
        "end_unix_nano": s.end_unix_nano,
        "duration_ms": (s.end_unix_nano - s.start_unix_nano).max(0) / 1_000_000,
        "project_dir": s.project_dir,
        "git_branch": s.git_branch,
        "models": s.models,
        "turns": s.turns,
        "llm_calls": s.llm_calls,
        "tool_calls": s.tool_calls,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cache_read_tokens": s.cache_read_tokens,
        "cache_creation_tokens": s.cache_creation_tokens,
        "cost_usd": s.cost_usd,
        "errors": s.errors,
        "open": s.open,
    })
}

/// `ccotel sessions`.
pub fn sessions(args: &SessionsArgs) -> anyhow::Result<()> {
    let f = filter(&args.filter)?;
    let list = runtime()?.block_on(async {
        let mut src = source(&args.query).await?;
        src.sessions(f, args.limit).await
    })?;
    if args.query.json {
        let v: Vec<Value> = list.iter().map(summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let style = Style::detect();
    if list.is_empty() {
        println!("no sessions yet");
        return Ok(());
    }
    let mut t = Table::new(
        &[
            "SESSION",
            "START",
            "DURATION",
            "PROJECT",
            "TURNS",
            "TOOLS",
            "TOKENS IN/OUT",
            "COST",
            "ERRORS",
        ],
        &[4, 5, 6, 7, 8],
    );
    for s in &list {
        let id: String = s.session_id.chars().take(8).collect();
        let errors = if s.errors > 0 {
            style.red(&s.errors.to_string())
        } else {
            "0".into()
        };
        t.row(vec![
            if s.open { format!("{id}*") } else { id },
            time(s.start_unix_nano),
            duration((s.end_unix_nano - s.start_unix_nano).max(0) as u64),
            clip(&s.project_dir, 40),
            s.turns.to_string(),
            s.tool_calls.to_string(),
            format!(
                "{}/{}",
                tokens(s.input_tokens + s.cache_read_tokens + s.cache_creation_tokens),
                tokens(s.output_tokens)
            ),
            cost(s.cost_usd),
            errors,
        ]);
    }
    print!("{}", t.render(style));
    if list.iter().any(|s| s.open) {
        println!("{}", style.dim("* still open"));
    }
    Ok(())
}

/// A span with its children, for `show`.
struct Node<'a> {
    span: &'a SpanRecord,
    children: Vec<Node<'a>>,
}

fn tree(spans: &[SpanRecord]) -> Vec<Node<'_>> {
    let ids: std::collections::HashSet<[u8; 8]> = spans.iter().map(|s| s.span_id).collect();
    let mut by_parent: BTreeMap<Option<[u8; 8]>, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        // A span whose parent was not stored (yet) shows at the top.
        let parent = s.parent_span_id.filter(|p| ids.contains(p));
        by_parent.entry(parent).or_default().push(s);
    }
    fn build<'a>(
        parent: Option<[u8; 8]>,
        by_parent: &BTreeMap<Option<[u8; 8]>, Vec<&'a SpanRecord>>,
    ) -> Vec<Node<'a>> {
        let mut kids: Vec<&SpanRecord> = by_parent.get(&parent).cloned().unwrap_or_default();
        kids.sort_by_key(|s| (s.start_ns, s.name.clone()));
        kids.into_iter()
            .map(|s| Node {
                span: s,
                children: build(Some(s.span_id), by_parent),
            })
            .collect()
    }
    build(None, &by_parent)
}

fn attr_str(s: &SpanRecord, k: &str) -> Option<String> {
    match s.attr(k)? {
        Attr::Str(v) => Some(v.clone()),
        Attr::Int(v) => Some(v.to_string()),
        Attr::Double(v) => Some(v.to_string()),
        Attr::Bool(v) => Some(v.to_string()),
        Attr::List(v) => Some(v.join(",")),
    }
}

fn int(s: &SpanRecord, k: &str) -> u64 {
    s.attr(k).and_then(Attr::as_i64).unwrap_or(0).max(0) as u64
}

fn describe(s: &SpanRecord, style: Style) -> String {
    let d = duration(s.end_ns.saturating_sub(s.start_ns));
    let err = match &s.status {
        SpanStatus::Error(m) => format!("  {}", style.red(&format!("✗ {}", clip(m, 60)))),
        _ => String::new(),
    };
    match s.kind {
        SpanKind::Session => format!(
            "{} {}  {}  {}",
            style.bold("session"),
            attr_str(s, "session.id").unwrap_or_default(),
            attr_str(s, "cwd").unwrap_or_default(),
            d
        ),
        SpanKind::Turn => {
            let prompt = attr_str(s, "user_prompt")
                .map(|p| format!(" \"{}\"", clip(&p, 60)))
                .unwrap_or_default();
            let kind = attr_str(s, "turn.kind").unwrap_or_default();
            let kind = if kind == "prompt" {
                String::new()
            } else {
                format!(" [{kind}]")
            };
            format!(
                "{}{}{}  {}  {}{}",
                style.bold(&format!(
                    "turn {}",
                    attr_str(s, "interaction.sequence").unwrap_or_default()
                )),
                kind,
                prompt,
                d,
                style.dim(&cost(
                    s.attr("totals.cost_usd")
                        .and_then(Attr::as_f64)
                        .unwrap_or(0.0)
                )),
                err
            )
        }
        SpanKind::Llm => {
            let input = int(s, "input_tokens")
                + int(s, "cache_read_tokens")
                + int(s, "cache_creation_tokens");
            format!(
                "{} {}  {}  {} in / {} out  {}{}",
                style.cyan("llm"),
                attr_str(s, "model").unwrap_or_else(|| "?".into()),
                d,
                tokens(input),
                tokens(int(s, "output_tokens")),
                style.dim(&cost(
                    s.attr("cost_usd").and_then(Attr::as_f64).unwrap_or(0.0)
                )),
                err
            )
        }
        SpanKind::Tool => {
            let name = attr_str(s, "tool_name")
                .unwrap_or_else(|| s.name.trim_start_matches("claude_code.").into());
            let status = attr_str(s, "tool.status").unwrap_or_default();
            let status = match status.as_str() {
                "ok" => style.green("ok"),
                "denied" => style.yellow("denied"),
                "" => String::new(),
                other => style.red(other),
            };
            let detail = s
                .attr("gen_ai.tool.call.arguments")
                .and_then(Attr::as_str)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .and_then(|v| {
                    ["command", "file_path", "pattern", "description", "url"]
                        .iter()
                        .find_map(|k| v.get(*k).and_then(Value::as_str).map(|x| clip(x, 50)))
                })
                .map(|d| format!(" {}", style.dim(&d)))
                .unwrap_or_default();
            let err = if matches!(s.status, SpanStatus::Error(_)) {
                err
            } else {
                String::new()
            };
            format!(
                "{} {}{}  {}  {}{}",
                style.cyan("tool"),
                name,
                detail,
                d,
                status,
                err
            )
        }
    }
}

fn print_tree(nodes: &[Node], prefix: &str, style: Style, out: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        out.push_str(prefix);
        out.push_str(if last { "└─ " } else { "├─ " });
        out.push_str(&describe(n.span, style));
        out.push('\n');
        let next = format!("{prefix}{}", if last { "   " } else { "│  " });
        print_tree(&n.children, &next, style, out);
    }
}

fn node_json(n: &Node) -> Value {
    let s = n.span;
    json!({
        "name": s.name,
        "kind": crate::store::kind_name(s.kind),
        "span_id": hex::encode(s.span_id),
        "parent_span_id": s.parent_span_id.map(hex::encode),
        "start_unix_nano": s.start_ns,
        "end_unix_nano": s.end_ns,
        "duration_ms": s.end_ns.saturating_sub(s.start_ns) / 1_000_000,
        "status": match &s.status { SpanStatus::Error(_) => "error", SpanStatus::Ok => "ok", SpanStatus::Unset => "unset" },
        "error": match &s.status { SpanStatus::Error(m) => Some(m.clone()), _ => None },
        "attributes": s.attributes,
        "children": n.children.iter().map(node_json).collect::<Vec<_>>(),
    })
}

/// `ccotel show`.
pub fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let (summary, spans) = runtime()?.block_on(async {
        let mut src = source(&args.query).await?;
        src.session(&args.session).await
    })?;
    let nodes = tree(&spans);
    if args.query.json {
        let v = json!({
            "session": summary_json(&summary),
            "trace_id": spans.first().map(|s| hex::encode(s.trace_id)),
            "spans": nodes.iter().map(node_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let style = Style::detect();
    println!(
        "{}  {}  {} turns  {} model calls  {} tool calls  {} in / {} out  {}{}",
        style.bold(&summary.session_id),
        clip(&summary.project_dir, 50),
        summary.turns,
        summary.llm_calls,
        summary.tool_calls,
        tokens(summary.input_tokens + summary.cache_read_tokens + summary.cache_creation_tokens),
        tokens(summary.output_tokens),
        cost(summary.cost_usd),
        if summary.errors > 0 {
            format!("  {}", style.red(&format!("{} errors", summary.errors)))
        } else {
            String::new()
        }
    );
    let mut out = String::new();
    print_tree(&nodes, "", style, &mut out);
    print!("{out}");
    if summary.open {
        println!(
            "{}",
            style.dim("(session still open: spans appear as they complete)")
        );
    }
    Ok(())
}

fn stats_json(r: &StatsRow) -> Value {
    json!({
        "key": r.key,
        "sessions": r.sessions,
        "llm_calls": r.llm_calls,
        "llm_errors": r.llm_errors,
        "tool_calls": r.tool_calls,
        "tool_errors": r.tool_errors,
        "tool_error_rate": if r.tool_calls > 0 { r.tool_errors as f64 / r.tool_calls as f64 } else { 0.0 },
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cache_read_tokens": r.cache_read_tokens,
        "cache_creation_tokens": r.cache_creation_tokens,
        "cost_usd": r.cost_usd,
    })
}

/// `ccotel stats`.
pub fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let group = GroupBy::parse(&args.by)
        .ok_or_else(|| anyhow::anyhow!("--by {:?}: use day, model, project or tool", args.by))?;
    let f = filter(&args.filter)?;
    let rows = runtime()?.block_on(async {
        let mut src = source(&args.query).await?;
        src.stats(f, group, &args.by).await
    })?;
    if args.query.json {
        let v: Vec<Value> = rows.iter().map(stats_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let style = Style::detect();
    let mut t = Table::new(
        &[
            &args.by.to_uppercase(),
            "SESSIONS",
            "MODEL CALLS",
            "TOOL CALLS",
            "TOOL ERRORS",
            "TOKENS IN",
            "TOKENS OUT",
            "COST",
        ],
        &[1, 2, 3, 4, 5, 6, 7],
    );
    let pct = |e: u64, n: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{e} ({:.0}%)", 100.0 * e as f64 / n as f64)
        }
    };
    let mut total = StatsRow {
        key: "total".into(),
        ..Default::default()
    };
    for r in &rows {
        t.row(vec![
            if r.key.is_empty() {
                "(unknown)".into()
            } else {
                clip(&r.key, 40)
            },
            r.sessions.to_string(),
            r.llm_calls.to_string(),
            r.tool_calls.to_string(),
            pct(r.tool_errors, r.tool_calls),
            tokens(r.input_tokens + r.cache_read_tokens + r.cache_creation_tokens),
            tokens(r.output_tokens),
            cost(r.cost_usd),
        ]);
        total.llm_calls += r.llm_calls;
        total.tool_calls += r.tool_calls;
        total.tool_errors += r.tool_errors;
        total.input_tokens += r.input_tokens + r.cache_read_tokens + r.cache_creation_tokens;
        total.output_tokens += r.output_tokens;
        total.cost_usd += r.cost_usd;
    }
    if rows.is_empty() {
        println!("nothing recorded yet");
        return Ok(());
    }
    t.row(vec![
        style.bold("total"),
        String::new(),
        total.llm_calls.to_string(),
        total.tool_calls.to_string(),
        pct(total.tool_errors, total.tool_calls),
        tokens(total.input_tokens),
        tokens(total.output_tokens),
        style.bold(&cost(total.cost_usd)),
    ]);
    print!("{}", t.render(style));
    Ok(())
}

/// `ccotel tail`.
pub fn tail(args: &TailArgs) -> anyhow::Result<()> {
    use crate::query::pb::TailRequest;
    let style = Style::detect();
    runtime()?.block_on(async {
        let mut client = crate::query::source::connect(
            &args.server,
            args.token.as_deref(),
            args.ca_cert.as_deref(),
        )
        .await
        .context("is `ccotel serve` running?")?;
        let mut stream = client
            .tail(TailRequest {
                session_id_prefix: args.session.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        while let Some(span) = stream.message().await? {
            let Some(rec) = crate::query::span_from_pb(&span) else {
                continue;
            };
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&json!({
                        "session_id": span.session_id,
                        "name": rec.name,
                        "kind": span.kind,
                        "span_id": span.span_id,
                        "parent_span_id": span.parent_span_id,
                        "start_unix_nano": rec.start_ns,
                        "end_unix_nano": rec.end_ns,
                        "status": span.status,
                        "attributes": rec.attributes,
                    }))?
                );
            } else {
                let sid: String = span.session_id.chars().take(8).collect();
                println!(
                    "{} {}  {}",
                    style.dim(&time(rec.end_ns as i64)),
                    style.dim(&sid),
                    describe(&rec, style)
                );
            }
        }
        Ok(())
    })
}
