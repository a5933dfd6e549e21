//! `ccotel import`: backfill past sessions from Claude Code's transcripts.
//! Span ids come from the same natural keys as live merging, so importing
//! twice changes nothing, and a session both imported and seen live keeps one
//! copy of each span.

use super::ImportArgs;
use crate::config::{self, Config, Overrides};
use crate::export::{ExportItem, FanOut};
use crate::merge::render::{self, RenderOptions};
use crate::merge::session::Session;
use crate::merge::transcript;
use crate::model::span::to_request;
use crate::store::{SessionMeta, Store};
use crate::telemetry::Registry;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub transcripts: usize,
    pub sessions: usize,
    pub spans_added: usize,
    pub spans_already_stored: usize,
    pub exported: usize,
    pub unreadable: Vec<String>,
}

/// Where Claude Code keeps transcripts.
pub fn default_projects_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(d) => PathBuf::from(d).join("projects"),
        None => dirs::home_dir()
            .unwrap_or_default()
            .join(".claude")
            .join("projects"),
    }
}

/// Main-session transcripts under `root` (subagent files are read with their
/// session).
pub fn find_transcripts(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    if !root.is_dir() {
        anyhow::bail!("{}: no such file or directory", root.display());
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "subagents") {
                    stack.push(path);
                }
            } else if is_session_transcript(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Claude Code names each session's transcript `<session uuid>.jsonl`.
fn is_session_transcript(path: &Path) -> bool {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    path.extension().is_some_and(|e| e == "jsonl")
        && stem.len() == 36
        && stem.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Builds one session from its transcript and its subagents' transcripts.
pub fn session_from_transcript(path: &Path) -> Option<Session> {
    let sid = path.file_stem()?.to_str()?.to_string();
    let mut session = Session::new(&sid);
    if !transcript::read_new(&mut session, path.to_str()?) {
        return None;
    }
    let sub = path.with_extension("").join("subagents");
    if let Ok(entries) = std::fs::read_dir(&sub) {
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        for f in files {
            if let Some(p) = f.to_str() {
                transcript::read_new(&mut session, p);
            }
        }
    }
    Some(session)
}

/// The session's spans, all complete: a transcript is a finished record.
pub fn render_imported(session: &Session, max_content: usize) -> render::Tree {
    let last = session
        .llms
        .values()
        .filter_map(|l| l.tx_at)
        .chain(session.tools.values().filter_map(|t| t.tx_result_at))
        .chain(session.turns.values().filter_map(|t| t.tx_at))
        .max()
        .unwrap_or(1);
    render::render(
        session,
        &RenderOptions {
            idle_closed_at: Some(last),
            max_content,
        },
    )
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let config = Config::load(
        args.config.as_deref(),
        &config::process_env,
        &Overrides {
            store_path: args.store.clone(),
            ..Default::default()
        },
    )?;
    let root = args.path.clone().unwrap_or_else(default_projects_dir);
    let files = find_transcripts(&root)?;
    let mut store = Store::open(&config.store.path)?;
    let bar = if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing {pos}/{len} transcripts [{bar:30}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    };
    let mut summary = Summary {
        transcripts: files.len(),
        ..Default::default()
    };
    let redactor =
        crate::redact::Redactor::new(config.redaction.secrets, &config.redaction.patterns)?;
    let mut to_export = Vec::new();
    for f in &files {
        bar.inc(1);
        let Some(session) = session_from_transcript(f) else {
            summary.unreadable.push(f.display().to_string());
            continue;
        };
        if session.turns.is_empty() && session.llms.is_empty() {
            continue;
        }
        let tree = render_imported(&session, config.merge.max_content_bytes);
        let spans: Vec<_> = tree
            .spans
            .into_iter()
            .map(|r| {
                let mut span = r.span;
                redactor.span(&mut span);
                span
            })
            .collect();
        let added = store.add_new_spans(&session.id, &spans)?;
        let meta = SessionMeta {
            cwd: session.facts.cwd.clone(),
            git_branch: session.facts.git_branch.clone(),
            models: session.facts.models.iter().cloned().collect(),
            version: session.facts.version.clone(),
        }
        .redact(Some(&redactor));
        store.save_meta(&session.id, &meta)?;
        store.close_session(&session.id)?;
        summary.sessions += 1;
        summary.spans_already_stored += spans.len() - added.len();
        summary.spans_added += added.len();
        bar.set_message(format!("{} sessions", summary.sessions));
        if args.export && !added.is_empty() {
            to_export.push((tree.resource, added));
        }
    }
    bar.finish_and_clear();
    if args.export && !to_export.is_empty() {
        summary.exported = export(&config, to_export)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "imported {} sessions from {} transcripts: {} spans added, {} already stored{}",
            summary.sessions,
            summary.transcripts,
            summary.spans_added,
            summary.spans_already_stored,
            if args.export {
                format!(", {} sent to exporters", summary.exported)
            } else {
                String::new()
            }
        );
        for u in &summary.unreadable {
            eprintln!("could not read {u}");
        }
    }
    Ok(())
}

/// Sends newly imported spans through the configured exporters' queues and
/// waits for them to drain.
fn export(
    config: &Config,
    batches: Vec<(
        std::collections::BTreeMap<String, crate::model::span::Attr>,
        Vec<crate::model::span::SpanRecord>,
    )>,
) -> anyhow::Result<usize> {
    if config.exporters.is_empty() {
        anyhow::bail!("--export: no exporters are configured (pass --config)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let registry = Registry::default();
        let (fanout, exporters) = FanOut::start(
            &config.exporters,
            &registry,
            &config.store.path.join("queues"),
        )?;
        let mut n = 0;
        for (resource, spans) in batches {
            n += spans.len();
            fanout.send(ExportItem::Traces(Arc::new(to_request(&resource, &spans))));
        }
        drop(fanout);
        exporters.shutdown(Duration::from_secs(60)).await;
        Ok(n)
    })
}
