//! Running the real Claude Code CLI: an isolated HOME and config dir, a small
//! git repository to work in, a settings.json with ccotel's hooks, and the
//! telemetry environment.

use crate::scenario::{Input, Scenario};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// The Claude Code version these tests are written against.
pub const VERSION: &str = "2.1.328";

/// Longest one Claude Code process may run before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// At most two Claude Code processes at a time, across all tests (CI has two
/// cores).
static SLOTS: Semaphore = Semaphore::const_new(2);

/// The Claude Code binary from `CLAUDE_BIN`. Without it the suite is skipped
/// on a developer machine and fails on CI (`CI` set), where `.ci/run`
/// installs it.
pub fn binary() -> Option<PathBuf> {
    match std::env::var_os("CLAUDE_BIN").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CLAUDE_BIN={} is not a file; install Claude Code {VERSION} with \
                 `npm install --prefix DIR @anthropic-ai/claude-code@{VERSION}` and point \
                 CLAUDE_BIN at DIR/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
                p.display()
            );
            Some(p)
        }
        None if std::env::var_os("CI").is_some() => panic!(
            "CLAUDE_BIN is not set, and CI is: the end-to-end tests need the real Claude Code \
             CLI. .ci/run installs @anthropic-ai/claude-code@{VERSION} and exports CLAUDE_BIN."
        ),
        None => {
            eprintln!(
                "skipping the end-to-end test: CLAUDE_BIN is not set (point it at Claude Code \
                 {VERSION}'s bin/claude.exe to run it)"
            );
            None
        }
    }
}

/// How hook events reach ccotel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hooks {
    /// `ccotel-hook` as a command hook for every event.
    Command,
    /// HTTP hooks straight to `/v1/hooks`; SessionStart stays a command hook
    /// (Claude Code sends no HTTP hook for it).
    Http,
    None,
}

/// Claude Code's OTLP export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Otlp {
    Grpc,
    HttpProtobuf,
    HttpJson,
    /// Telemetry off: hooks and transcripts only.
    Off,
}

/// Claude Code's export intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intervals {
    /// 1 s metrics, 0.5 s logs and traces.
    Fast,
    /// Claude Code's own: 60 s metrics, 5 s logs and traces (it flushes at
    /// exit).
    Default,
}

/// The hook events ccotel uses.
pub const HOOK_EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionDenied",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
];

/// The scratch space of one run.
pub struct Dirs {
    pub home: PathBuf,
    pub config: PathBuf,
    pub work: PathBuf,
    pub tmp: PathBuf,
    pub spool: PathBuf,
    pub store: PathBuf,
}

impl Dirs {
    pub fn create(root: &Path) -> Dirs {
        let d = Dirs {
            home: root.join("home"),
            config: root.join("home/.claude"),
            work: root.join("work"),
            tmp: root.join("tmp"),
            spool: root.join("spool"),
            store: root.join("store"),
        };
        for p in [&d.config, &d.work, &d.tmp, &d.spool, &d.store] {
            std::fs::create_dir_all(p).unwrap();
        }
        d
    }

    /// A small committed git repository.
    pub fn make_repo(&self) {
        std::fs::write(
            self.work.join("README.md"),
            "# e2e repo\nA throwaway repository for ccotel's end-to-end tests.\n",
        )
        .unwrap();
        std::fs::write(
            self.work.join("notes.txt"),
            "Shopping notes\n- apples\n- bananas\n",
        )
        .unwrap();
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &["commit", "-q", "-m", "initial"],
        ] {
            let status = std::process::Command::new("git")
                .arg("-c")
                .arg("init.defaultBranch=main")
                .args(args)
                .current_dir(&self.work)
                .env("HOME", &self.home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "e2e")
                .env("GIT_AUTHOR_EMAIL", "e2e@example.invalid")
                .env("GIT_COMMITTER_NAME", "e2e")
                .env("GIT_COMMITTER_EMAIL", "e2e@example.invalid")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("git must be installed");
            assert!(status.success(), "git {args:?} failed");
        }
    }

    /// The user settings.json: ccotel's hooks and the scenario's permissions.
    pub fn write_settings(&self, scenario: &Scenario, hooks: Hooks, ccotel_http: &str) {
        let endpoint = format!("http://{ccotel_http}/v1/hooks");
        // The hook binary, as `ccotel install` writes it (tests/it/hook_client.rs
        // checks that `ccotel hook` behaves the same).
        let command = format!(
            "'{}' --endpoint {endpoint} --spool-dir '{}' --timeout-ms 3000",
            env!("CARGO_BIN_EXE_ccotel-hook"),
            self.spool.display()
        );
        let command_hook = json!({"type": "command", "command": command, "timeout": 30});
        let http_hook = json!({"type": "http", "url": endpoint, "timeout": 10});
        let mut settings = json!({});
        if hooks != Hooks::None {
            let mut map = serde_json::Map::new();
            for ev in HOOK_EVENTS {
                let h = match hooks {
                    Hooks::Http if *ev != "SessionStart" => &http_hook,
                    _ => &command_hook,
                };
                map.insert(ev.to_string(), json!([{ "hooks": [h] }]));
            }
            settings["hooks"] = Value::Object(map);
        }
        if hooks == Hooks::Http {
            settings["allowedHttpHookUrls"] = json!([endpoint]);
        }
        if let Some(p) = &scenario.permissions {
            settings["permissions"] = p.clone();
        }
        std::fs::write(
            self.config.join("settings.json"),
            serde_json::to_vec_pretty(&settings).unwrap(),
        )
        .unwrap();
    }

    /// The main transcript of a session, as Claude Code wrote it.
    pub fn transcript(&self, session_id: &str) -> Option<PathBuf> {
        let projects = self.config.join("projects");
        std::fs::read_dir(projects)
            .ok()?
            .flatten()
            .map(|d| d.path().join(format!("{session_id}.jsonl")))
            .find(|p| p.is_file())
    }
}

/// The environment of a Claude Code process, nothing inherited but PATH.
pub fn environment(
    dirs: &Dirs,
    api: &str,
    otlp: Otlp,
    intervals: Intervals,
    ccotel_http: &str,
    ccotel_grpc: &str,
) -> Vec<(String, String)> {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for d in ["/usr/local/bin", "/usr/bin", "/bin"] {
        if !path.split(':').any(|p| p == d) {
            path = if path.is_empty() {
                d.to_string()
            } else {
                format!("{path}:{d}")
            };
        }
    }
    let mut env: Vec<(&str, String)> = vec![
        ("PATH", path),
        ("HOME", dirs.home.display().to_string()),
        ("CLAUDE_CONFIG_DIR", dirs.config.display().to_string()),
        ("TMPDIR", dirs.tmp.display().to_string()),
        ("LANG", "C.UTF-8".into()),
        ("TERM", "dumb".into()),
        ("SHELL", "/bin/bash".into()),
        // Lets --dangerously-skip-permissions run as root.
        ("IS_SANDBOX", "1".into()),
        ("ANTHROPIC_BASE_URL", api.into()),
        ("ANTHROPIC_API_KEY", "sk-ant-e2e-fake".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("NO_PROXY", "127.0.0.1,localhost".into()),
    ];
    let (protocol, endpoint) = match otlp {
        Otlp::Grpc => ("grpc", format!("http://{ccotel_grpc}")),
        Otlp::HttpProtobuf => ("http/protobuf", format!("http://{ccotel_http}")),
        Otlp::HttpJson => ("http/json", format!("http://{ccotel_http}")),
        Otlp::Off => ("", String::new()),
    };
    if otlp != Otlp::Off {
        env.extend([
            ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_string()),
            ("OTEL_METRICS_EXPORTER", "otlp".into()),
            ("OTEL_LOGS_EXPORTER", "otlp".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1".into()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_LOG_USER_PROMPTS", "1".into()),
            ("OTEL_LOG_TOOL_DETAILS", "1".into()),
            ("OTEL_LOG_TOOL_CONTENT", "1".into()),
            ("OTEL_LOG_RAW_API_BODIES", "1".into()),
        ]);
        if intervals == Intervals::Fast {
            env.extend([
                ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_string()),
                ("OTEL_LOGS_EXPORT_INTERVAL", "500".into()),
                ("OTEL_TRACES_EXPORT_INTERVAL", "500".into()),
            ]);
        }
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One Claude Code process and what it printed.
#[derive(Debug, Default)]
pub struct Process {
    pub argv: Vec<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// stdout, one stream-json message per line.
    pub messages: Vec<Value>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Process {
    pub fn session_id(&self) -> Option<String> {
        self.messages
            .iter()
            .find_map(|m| m["session_id"].as_str().filter(|s| !s.is_empty()))
            .map(str::to_string)
    }

    pub fn results(&self) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "result")
            .collect()
    }
}

/// Runs every prompt of the scenario, the way its [`Input`] says; for
/// `Resume`, `between` runs after each process but the last.
pub async fn run_scenario<F, Fut>(
    bin: &Path,
    scenario: &Scenario,
    dirs: &Dirs,
    env: &[(String, String)],
    mut between: F,
) -> Vec<Process>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut base = vec![
        "--output-format".to_string(),
        "stream-json".into(),
        "--verbose".into(),
    ];
    if scenario.bypass {
        base.push("--dangerously-skip-permissions".into());
    }
    let prompts = scenario.prompts();
    let mut out = Vec::new();
    match scenario.input {
        Input::Single => {
            let mut args = base.clone();
            args.extend(["-p".into(), prompts[0].clone()]);
            out.push(run(bin, &args, dirs, env, None).await);
        }
        Input::StreamJson => {
            let mut args = base.clone();
            args.extend(["-p".into(), "--input-format".into(), "stream-json".into()]);
            out.push(run(bin, &args, dirs, env, Some(prompts)).await);
        }
        Input::Resume => {
            let mut session: Option<String> = None;
            for (i, prompt) in prompts.iter().enumerate() {
                let mut args = base.clone();
                args.extend(["-p".into(), prompt.clone()]);
                if let Some(s) = &session {
                    args.extend(["--resume".into(), s.clone()]);
                }
                let p = run(bin, &args, dirs, env, None).await;
                session = session.or_else(|| p.session_id());
                let failed = p.exit_code != Some(0) || session.is_none();
                out.push(p);
                if failed {
                    break;
                }
                if i + 1 < prompts.len() {
                    between().await;
                }
            }
        }
    }
    out
}

/// One process. With `stdin_prompts`, each prompt is written as a stream-json
/// user message after the previous prompt's `result`, then stdin is closed.
async fn run(
    bin: &Path,
    args: &[String],
    dirs: &Dirs,
    env: &[(String, String)],
    stdin_prompts: Option<&[String]>,
) -> Process {
    let _slot = SLOTS.acquire().await.unwrap();
    let started = std::time::Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(&dirs.work)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin_prompts.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("cannot start Claude Code");
    let mut proc = Process {
        argv: args.to_vec(),
        ..Default::default()
    };
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut stdin = child.stdin.take();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prompts: Vec<String> = stdin_prompts.map(<[String]>::to_vec).unwrap_or_default();
    let conversation = async {
        let mut next = 0;
        let send = |stdin: &mut Option<tokio::process::ChildStdin>, text: Option<&String>| {
            let line = text.map(|t| {
                json!({"type": "user", "session_id": "", "parent_tool_use_id": null,
                       "message": {"role": "user", "content": [{"type": "text", "text": t}]}})
                .to_string()
                    + "\n"
            });
            let stdin = stdin.take();
            async move {
                let mut stdin = stdin?;
                match line {
                    Some(l) => {
                        stdin.write_all(l.as_bytes()).await.ok()?;
                        stdin.flush().await.ok()?;
                        Some(stdin)
                    }
                    // No prompt left: close stdin so Claude Code exits.
                    None => None,
                }
            }
        };
        if !prompts.is_empty() {
            stdin = send(&mut stdin, prompts.first()).await;
            next = 1;
        }
        while let Ok(Some(line)) = lines.next_line().await {
            let msg: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| json!({ "unparsed": line }));
            let is_result = msg["type"] == "result";
            proc.messages.push(msg);
            if is_result && stdin.is_some() {
                stdin = send(&mut stdin, prompts.get(next)).await;
                next += 1;
            }
        }
        child.wait().await
    };
    match tokio::time::timeout(RUN_TIMEOUT, conversation).await {
        Ok(status) => proc.exit_code = status.ok().and_then(|s| s.code()),
        Err(_) => {
            proc.timed_out = true;
            let _ = child.kill().await;
        }
    }
    proc.stderr = tokio::time::timeout(Duration::from_secs(5), stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    proc.elapsed = started.elapsed();
    proc
}
