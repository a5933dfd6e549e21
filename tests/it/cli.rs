//! The query CLI as a process: against a store filled by `ccotel import` from
//! the fixtures, and through a live `serve` with `--server`.

use crate::support::fixtures::{self, Sources};
use crate::support::spawn_app;
use ccotel::config::Config;
use ccotel::model::span::SpanRecord;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ccotel(args: &[&str], store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccotel"))
        .args(args)
        .env("CCOTEL_STORE_PATH", store)
        .env_remove("CCOTEL_SERVER")
        .env_remove("CCOTEL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

fn fixtures_root() -> String {
    fixtures::dir("tools-basic")
        .parent()
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn import_fills_the_store_once_and_the_queries_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let first = json(ccotel(&["import", &fixtures_root(), "--json"], store));
    assert_eq!(first["sessions"], 7);
    assert!(first["spans_added"].as_u64().unwrap() > 50);
    let second = json(ccotel(&["import", &fixtures_root(), "--json"], store));
    assert_eq!(second["spans_added"], 0, "importing twice changes nothing");
    assert_eq!(second["spans_already_stored"], first["spans_added"]);

    let sessions = json(ccotel(&["sessions", "--json"], store));
    assert_eq!(sessions.as_array().unwrap().len(), 7);
    let failing = fixtures::expected("tool-failure")["session_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let row = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == failing.as_str())
        .unwrap();
    assert_eq!(row["tool_calls"], 3);
    assert_eq!(row["errors"], 3);
    assert_eq!(row["project_dir"], "/home/dev/project");

    // Tables for people, plain when piped.
    let table = ok(ccotel(&["sessions"], store));
    assert!(table.starts_with("SESSION"));
    assert!(table.contains(&failing[..8]));
    assert!(!table.contains('\x1b'), "no colour codes when piped");

    // show: by prefix, tree and JSON.
    let sub = fixtures::expected("subagent")["session_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let shown = ok(ccotel(&["show", &sub[..6]], store));
    assert!(shown.contains("tool Agent"));
    assert!(shown.contains("tool Bash ls"));
    let agent_line = shown
        .lines()
        .position(|l| l.contains("tool Agent"))
        .unwrap();
    let bash_line = shown.lines().position(|l| l.contains("tool Bash")).unwrap();
    let indent = |l: &str| l.chars().take_while(|c| !c.is_alphanumeric()).count();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        bash_line > agent_line && indent(lines[bash_line]) > indent(lines[agent_line]),
        "{shown}"
    );
    let tree = json(ccotel(&["show", &sub, "--json"], store));
    let root = &tree["spans"][0];
    assert_eq!(root["name"], "claude_code.session");
    let turn = &root["children"][0];
    let agent = turn["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["attributes"]["tool_name"] == "Agent")
        .unwrap();
    assert_eq!(
        agent["children"].as_array().unwrap().len(),
        3,
        "subagent spans nested"
    );

    // An ambiguous or unknown prefix is a clear error.
    let out = ccotel(&["show", ""], store);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches"));
    let out = ccotel(&["show", "ffffffff"], store);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session matches"));

    // stats by tool: the failing tools show.
    let stats = json(ccotel(&["stats", "--by", "tool", "--json"], store));
    let bash = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "Bash")
        .unwrap();
    assert_eq!(bash["tool_errors"], 2);
    let by_day = json(ccotel(&["stats", "--json", "--since", "2026-11-01"], store));
    assert_eq!(by_day[0]["key"], "2026-11-21");
    let none = json(ccotel(
        &["stats", "--json", "--project", "elsewhere"],
        store,
    ));
    assert!(none.as_array().unwrap().is_empty());
    let bad = ccotel(&["stats", "--since", "yesterdayish"], store);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

/// (span id, parent id, name) of every span.
fn shape(spans: &[SpanRecord]) -> BTreeSet<(String, Option<String>, String)> {
    spans
        .iter()
        .map(|s| {
            (
                hex::encode(s.span_id),
                s.parent_span_id.map(hex::encode),
                s.name.clone(),
            )
        })
        .collect()
}

#[test]
fn an_imported_transcript_gives_the_same_tree_and_ids_as_live() {
    for scenario in fixtures::SCENARIOS {
        let sid = fixtures::expected(scenario)["session_ids"][0]
            .as_str()
            .unwrap()
            .to_string();
        let path = fixtures::dir(scenario)
            .join("transcripts/-home-dev-project")
            .join(format!("{sid}.jsonl"));
        let session = ccotel::cli::import::session_from_transcript(&path).unwrap();
        let imported: Vec<SpanRecord> = ccotel::cli::import::render_imported(&session, 65536)
            .spans
            .into_iter()
            .map(|r| r.span)
            .collect();
        let live = crate::merge::merge(scenario, &fixtures::events(scenario, Sources::ALL), true);
        assert_eq!(shape(&imported), shape(&live), "{scenario}");
        crate::merge::check_facts(scenario, &imported, "imported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_a_live_serve_through_the_query_api() {
    let mut config = Config::default();
    config.merge.grace_period = std::time::Duration::from_millis(100);
    let app = spawn_app(config).await;
    let server = format!("http://{}", app.grpc);
    // tail first, then the session arrives.
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccotel"))
        .args(["tail", "--json", "--server", &server])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let scenario = "denied";
    for e in fixtures::events(scenario, Sources::ALL) {
        let (path, body) = match &e.payload {
            ccotel::model::Payload::Hook(h) => {
                ("/v1/hooks", serde_json::to_vec(&h.fields).unwrap())
            }
            ccotel::model::Payload::Logs(r) => ("/v1/logs", serde_json::to_vec(r).unwrap()),
            ccotel::model::Payload::Metrics(r) => ("/v1/metrics", serde_json::to_vec(r).unwrap()),
            ccotel::model::Payload::Traces(r) => ("/v1/traces", serde_json::to_vec(r).unwrap()),
        };
        let r = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let sid = fixtures::expected(scenario)["session_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    // Spans stream out of tail as they complete.
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut names = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while names.len() < 4 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("tail printed the session's spans")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["session_id"], sid.as_str());
        names.insert(v["name"].as_str().unwrap().to_string());
    }
    let _ = tail.kill().await;
    let dir = tempfile::tempdir().unwrap();
    let server2 = server.clone();
    let sid2 = sid.clone();
    let store = dir.path().to_path_buf();
    let (sessions, shown) = tokio::task::spawn_blocking(move || {
        let sessions = json(ccotel(
            &["sessions", "--json", "--server", &server2],
            &store,
        ));
        let shown = json(ccotel(
            &["show", &sid2[..8], "--json", "--server", &server2],
            &store,
        ));
        (sessions, shown)
    })
    .await
    .unwrap();
    assert!(sessions
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == sid.as_str()));
    assert_eq!(shown["session"]["session_id"], sid.as_str());
    assert!(shown["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "claude_code.interaction"
            || s["children"].as_array().is_some_and(|c| !c.is_empty())));
    app.shutdown().await;
}

/// `ccotel hook` and `ccotel-hook` parse their flags by hand, to start fast;
/// the clap definition of the same flags is what `ccotel help hook` and the
/// completions show. The two must agree: the same flags, variables and
/// defaults, and the same result for the same command line.
#[test]
fn the_hook_parser_agrees_with_its_clap_definition() {
    use ccotel::cli::hook::{self, Invocation};
    use ccotel::cli::{Cli, Command as Sub};
    use clap::{CommandFactory, Parser};

    let cli = Cli::command();
    let clap_hook = cli.find_subcommand("hook").expect("a hook subcommand");
    let mut clap_flags: Vec<(String, String)> = clap_hook
        .get_arguments()
        .filter_map(|a| {
            Some((
                format!("--{}", a.get_long()?),
                a.get_env()?.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    clap_flags.sort();
    let mut hand_flags: Vec<(String, String)> = hook::FLAGS
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    hand_flags.sort();
    assert_eq!(clap_flags, hand_flags);

    // Clap reads the process environment; compare only when none of the
    // hook's variables is set here.
    if hook::FLAGS
        .iter()
        .any(|(_, var)| std::env::var_os(var).is_some())
    {
        return;
    }
    for line in [
        &[][..],
        &["--endpoint", "http://h:1/v1/hooks"],
        &["--endpoint=http://h:1/v1/hooks", "--timeout-ms", "20"],
        &["--spool-dir", "/tmp/s", "--token=t", "--timeout-ms=5"],
    ] {
        let by_clap = match Cli::try_parse_from(["ccotel", "hook"].iter().chain(line)) {
            Ok(Cli {
                command: Sub::Hook(args),
            }) => args,
            other => panic!("{line:?}: {other:?}"),
        };
        let by_hand = match hook::parse_args(line.iter().map(Into::into), |_| None) {
            Ok(Invocation::Run(args)) => args,
            other => panic!("{line:?}: {other:?}"),
        };
        assert_eq!(by_hand, by_clap, "{line:?}");
    }
    for bad in [&["--nope"][..], &["--timeout-ms", "x"], &["extra"]] {
        assert!(Cli::try_parse_from(["ccotel", "hook"].iter().chain(bad)).is_err());
        assert!(hook::parse_args(bad.iter().map(Into::into), |_| None).is_err());
    }
}
