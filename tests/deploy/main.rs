//! Deployment: the Claude Code plugin in `deploy/claude-plugin/` works with the
//! real Claude Code CLI (2.1.328, `CLAUDE_BIN`).
//!
//! The test adds the repository's plugin directory as a local marketplace,
//! installs `ccotel@ccotel` into an isolated HOME and config dir, and runs
//! `claude -p` against a tiny fake of the Anthropic Messages API. The plugin's
//! hooks run `ccotel-hook` (the built binaries, put on the CLI's PATH) with
//! `CCOTEL_HOOK_ENDPOINT` and `CCOTEL_TOKEN` pointing at an in-process ccotel
//! that requires the token, as a gateway does; its `/healthz` and store must
//! then show the session's hook events.
//!
//! Without `CLAUDE_BIN` that test is skipped, unless `CI` is set, where it
//! fails. The other tests check that the plugin's hooks are the ones ccotel
//! uses and that the shipped configurations (compose, Kubernetes) load, as
//! they are and with every commented example turned on. The schema checks of
//! the deployment files (Dockerfile, compose, Kubernetes, plugin manifests)
//! are in `deploy/check.sh`.

use axum::body::{Body, Bytes};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;

/// The Claude Code version the plugin is written against.
const CLAUDE_CODE_VERSION: &str = "2.1.328";

/// The whole test, Claude Code processes included.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One `claude plugin ...` command.
const PLUGIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The marketplace name in `deploy/claude-plugin/.claude-plugin/marketplace.json`.
const MARKETPLACE: &str = "ccotel";

/// The plugin's hook command: the hook binary when it is on `PATH`, else
/// `ccotel hook` (tests/it/hook_client.rs runs it both ways).
const PLUGIN_COMMAND: &str =
    "if command -v ccotel-hook >/dev/null 2>&1; then exec ccotel-hook; else exec ccotel hook; fi";

/// The in-process ccotel's `server.token`.
const TOKEN: &str = "deploy-test-token";

/// What the fake API answers to every model call.
const REPLY: &str = "Hello from the fake Anthropic API.";

/// A file of the repository.
fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn plugin_hooks_are_the_events_ccotel_uses() {
    let hooks = read_json("deploy/claude-plugin/ccotel/hooks/hooks.json");
    let events: Vec<&str> = hooks["hooks"]
        .as_object()
        .expect("hooks.json has a hooks object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        events,
        ccotel::cli::settings::HOOK_EVENTS,
        "the plugin must hook exactly the events `ccotel install` does, in its order"
    );
    for (event, groups) in hooks["hooks"].as_object().unwrap() {
        let handlers = groups[0]["hooks"].as_array().unwrap();
        assert_eq!(groups.as_array().unwrap().len(), 1, "{event}");
        assert_eq!(handlers.len(), 1, "{event}");
        assert_eq!(handlers[0]["type"], "command", "{event}");
        assert_eq!(handlers[0]["command"], PLUGIN_COMMAND, "{event}");
        // Like `ccotel install`: should ccotel ever hang, Claude Code moves on.
        assert!(
            handlers[0]["timeout"].as_u64().is_some_and(|t| t <= 10),
            "{event}"
        );
    }

    // The marketplace lists the plugin directory, under the same name and
    // version as the plugin's manifest.
    let marketplace = read_json("deploy/claude-plugin/.claude-plugin/marketplace.json");
    let manifest = read_json("deploy/claude-plugin/ccotel/.claude-plugin/plugin.json");
    assert_eq!(marketplace["name"], MARKETPLACE);
    let entry = &marketplace["plugins"][0];
    assert_eq!(entry["name"], "ccotel");
    assert_eq!(entry["name"], manifest["name"]);
    assert_eq!(entry["version"], manifest["version"]);
    let source = entry["source"].as_str().expect("a relative source");
    assert!(
        repo_file("deploy/claude-plugin")
            .join(source)
            .join(".claude-plugin/plugin.json")
            .is_file(),
        "the marketplace's source {source} is not the plugin directory"
    );
}

/// Turns on the commented examples of a config file: a `#` directly followed
/// by something other than blank or `#` is removed.
fn uncomment_examples(text: &str) -> String {
    text.lines()
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            match body.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| !c.is_whitespace() && c != '#') => {
                    format!("{indent}{rest}\n")
                }
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// The value of `key: |` in a YAML mapping: the block below it, dedented.
fn yaml_block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}: |` block"));
    let outer = header.len() - header.trim_start().len();
    let block: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > outer)
        .collect();
    let indent = block
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .iter()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect()
}

/// A variable the Dockerfile sets with `ENV NAME=value`.
fn dockerfile_env(name: &str) -> String {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    let at = dockerfile
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("the Dockerfile sets no {name}"));
    dockerfile[at + name.len() + 1..]
        .split(|c: char| c.is_whitespace() || c == '\\')
        .next()
        .unwrap()
        .to_string()
}

/// Loads a config text the way `ccotel serve --config` does in the image:
/// its listen addresses from the Dockerfile (beyond loopback), the API keys
/// set, and `CCOTEL_TOKEN` when `token` is given.
fn load_config(text: &str, token: Option<&str>) -> Result<ccotel::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ccotel.toml");
    std::fs::write(&path, text).unwrap();
    let grpc = dockerfile_env("CCOTEL_SERVER_GRPC");
    let http = dockerfile_env("CCOTEL_SERVER_HTTP");
    assert!(grpc.starts_with("0.0.0.0:") && http.starts_with("0.0.0.0:"));
    let env = |k: &str| match k {
        "CCOTEL_SERVER_GRPC" => Some(grpc.clone()),
        "CCOTEL_SERVER_HTTP" => Some(http.clone()),
        "CCOTEL_TOKEN" => token.map(str::to_string),
        k if k.ends_with("_API_KEY") || k == "COLLECTOR_TOKEN" => Some(format!("test-{k}")),
        _ => None,
    };
    ccotel::config::Config::load(Some(&path), &env, &Default::default()).map_err(|e| e.to_string())
}

fn exporter_names(c: &ccotel::config::Config) -> Vec<&str> {
    c.exporters.iter().map(|e| e.name.as_str()).collect()
}

fn signal_names(signals: &[ccotel::model::Signal]) -> Vec<&'static str> {
    signals.iter().map(|s| s.as_str()).collect()
}

#[test]
fn compose_config_loads_with_and_without_its_examples() {
    use ccotel::config::Protocol;
    let text = std::fs::read_to_string(repo_file("deploy/compose/ccotel.toml")).unwrap();
    // Published on the host's loopback only: no token needed.
    let c = load_config(&text, None).unwrap();
    assert!(c.server.allow_unauthenticated);
    assert_eq!(exporter_names(&c), ["jaeger"]);
    let jaeger = &c.exporters[0];
    assert_eq!(jaeger.endpoint, "http://jaeger:4317");
    assert_eq!(jaeger.protocol(), Protocol::Grpc);
    assert_eq!(signal_names(&jaeger.signals), ["traces"]);

    let all = uncomment_examples(&text);
    let c = load_config(&all, None).unwrap_or_else(|e| panic!("{e}\n{all}"));
    assert_eq!(
        exporter_names(&c),
        [
            "jaeger",
            "braintrust",
            "honeycomb",
            "datadog",
            "datadog-metrics-logs"
        ]
    );
    assert_eq!(signal_names(&c.exporters[4].signals), ["metrics", "logs"]);
    assert!(!c.merge.transcript_path_map.is_empty());
}

#[test]
fn kubernetes_config_loads_with_and_without_its_examples() {
    let yaml = std::fs::read_to_string(repo_file("deploy/kubernetes/configmap.yaml")).unwrap();
    let text = yaml_block_scalar(&yaml, "ccotel.toml");
    // A gateway listens beyond loopback: without the Secret's token ccotel
    // refuses to start, with it it loads.
    let err = load_config(&text, None).unwrap_err();
    assert!(err.contains("token"), "{err}");
    let c = load_config(&text, Some("team-token")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.server.token.as_deref(), Some("team-token"));
    assert_eq!(exporter_names(&c), ["braintrust"]);
    assert!(!c.merge.read_transcripts, "a gateway reads no transcripts");
    // The key comes from the Secret through ${BRAINTRUST_API_KEY}.
    assert_eq!(
        c.exporters[0].headers["authorization"],
        "Bearer test-BRAINTRUST_API_KEY"
    );

    let all = uncomment_examples(&text);
    let c = load_config(&all, Some("team-token")).unwrap_or_else(|e| panic!("{e}\n{all}"));
    assert_eq!(
        exporter_names(&c),
        ["braintrust", "honeycomb", "datadog", "collector"]
    );
    assert_eq!(
        c.exporters[3].headers["authorization"],
        "Bearer test-COLLECTOR_TOKEN"
    );
}

/// The Claude Code binary from `CLAUDE_BIN`; `None` (skip) on a developer
/// machine without it, a failure when `CI` is set.
fn claude_binary() -> Option<PathBuf> {
    match std::env::var_os("CLAUDE_BIN").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CLAUDE_BIN={} is not a file; install Claude Code {CLAUDE_CODE_VERSION} with \
                 `npm install --prefix DIR @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}` and \
                 point CLAUDE_BIN at DIR/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
                p.display()
            );
            Some(p)
        }
        None if std::env::var_os("CI").is_some() => panic!(
            "CLAUDE_BIN is not set, and CI is: the plugin test needs the real Claude Code CLI \
             {CLAUDE_CODE_VERSION}. .ci/run installs it and exports CLAUDE_BIN."
        ),
        None => {
            eprintln!(
                "skipping the Claude Code plugin test: CLAUDE_BIN is not set (point it at Claude \
                 Code {CLAUDE_CODE_VERSION}'s bin/claude.exe to run it)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_plugin_hooks_reach_ccotel() {
    let Some(claude) = claude_binary() else {
        return;
    };
    match tokio::time::timeout(TEST_TIMEOUT, plugin_hooks_reach_ccotel(&claude)).await {
        Ok(()) => {}
        // Dropping the future killed any Claude Code process still running
        // (`kill_on_drop`).
        Err(_) => panic!("the plugin test did not finish within {TEST_TIMEOUT:?}"),
    }
}

async fn plugin_hooks_reach_ccotel(claude: &Path) {
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs::create(root.path());

    // ccotel, in process, on ephemeral ports, with its own store.
    let ccotel = Ccotel::start(&dirs.store).await;
    let api = start_fake_api().await;

    // Only the built binaries on PATH ahead of the system directories: the
    // plugin's `ccotel-hook` must resolve to them.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ccotel"), dirs.bin.join("ccotel")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_ccotel-hook"),
        dirs.bin.join("ccotel-hook"),
    )
    .unwrap();
    let env = environment(&dirs, &format!("http://{api}"), ccotel.http);

    // A team's roll-out: add the marketplace, install the plugin.
    let marketplace = repo_file("deploy/claude-plugin");
    let add = run(
        claude,
        &[
            "plugin".into(),
            "marketplace".into(),
            "add".into(),
            marketplace.display().to_string(),
        ],
        &dirs,
        &env,
        PLUGIN_COMMAND_TIMEOUT,
    )
    .await;
    add.assert_success("claude plugin marketplace add");
    let install = run(
        claude,
        &[
            "plugin".into(),
            "install".into(),
            format!("ccotel@{MARKETPLACE}"),
        ],
        &dirs,
        &env,
        PLUGIN_COMMAND_TIMEOUT,
    )
    .await;
    install.assert_success("claude plugin install");
    let list = run(
        claude,
        &["plugin".into(), "list".into(), "--json".into()],
        &dirs,
        &env,
        PLUGIN_COMMAND_TIMEOUT,
    )
    .await;
    list.assert_success("claude plugin list");
    assert!(
        list.stdout.contains(&format!("ccotel@{MARKETPLACE}")),
        "ccotel@{MARKETPLACE} is not among the installed plugins:\n{}",
        list.stdout
    );

    // One session: a prompt, a text answer.
    let session = run(
        claude,
        &[
            "-p".into(),
            "hello".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
        ],
        &dirs,
        &env,
        Duration::from_secs(90),
    )
    .await;
    session.assert_success("claude -p");
    let messages: Vec<Value> = session
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let result = messages
        .iter()
        .find(|m| m["type"] == "result")
        .unwrap_or_else(|| panic!("no result message from claude -p:\n{}", session.stdout));
    assert_eq!(
        result["result"], REPLY,
        "claude -p did not answer with the fake API's reply:\n{}",
        session.stdout
    );
    let session_id = result["session_id"]
        .as_str()
        .expect("the result message names its session")
        .to_string();
    let init = messages
        .iter()
        .find(|m| m["type"] == "system" && m["subtype"] == "init")
        .unwrap_or_else(|| panic!("no init message from claude -p:\n{}", session.stdout));
    assert!(
        init["plugins"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "ccotel")),
        "the session did not load the ccotel plugin; init message: {init}"
    );

    // The hooks reached ccotel: its counter, then the events themselves.
    let health = ccotel.health().await;
    let hook_events = health["receive"]["hook_events"].as_u64().unwrap_or(0);
    assert!(
        hook_events > 0,
        "ccotel received no hook event; /healthz: {health}\nclaude stderr:\n{}",
        session.stderr
    );
    ccotel.shutdown().await;
    let stored = stored_hook_events(&dirs.store);
    for expected in ["SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"] {
        assert!(
            stored.iter().any(|(name, sid, transport)| name == expected
                && sid == &session_id
                && transport == "hook_command"),
            "no {expected} hook event of session {session_id} arrived through `ccotel-hook`; \
             stored hook events (name, session, transport): {stored:?}; /healthz: {health}"
        );
    }
    eprintln!(
        "plugin test: {hook_events} hook events through the plugin ({:?}); claude -p took {:?}",
        stored
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>(),
        session.elapsed
    );
}

/// The scratch space: HOME (with the config dir inside), a working directory,
/// a directory for PATH, TMPDIR, ccotel's store.
struct Dirs {
    home: PathBuf,
    config: PathBuf,
    work: PathBuf,
    bin: PathBuf,
    tmp: PathBuf,
    store: PathBuf,
}

impl Dirs {
    fn create(root: &Path) -> Dirs {
        let d = Dirs {
            home: root.join("home"),
            config: root.join("home/.claude"),
            work: root.join("work"),
            bin: root.join("bin"),
            tmp: root.join("tmp"),
            store: root.join("store"),
        };
        for p in [&d.config, &d.work, &d.bin, &d.tmp, &d.store] {
            std::fs::create_dir_all(p).unwrap();
        }
        d
    }
}

/// The environment of every Claude Code process: nothing inherited.
fn environment(dirs: &Dirs, api: &str, ccotel_http: std::net::SocketAddr) -> Vec<(String, String)> {
    [
        (
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", dirs.bin.display()),
        ),
        ("HOME", dirs.home.display().to_string()),
        ("CLAUDE_CONFIG_DIR", dirs.config.display().to_string()),
        ("TMPDIR", dirs.tmp.display().to_string()),
        ("LANG", "C.UTF-8".into()),
        ("TERM", "dumb".into()),
        ("SHELL", "/bin/bash".into()),
        ("ANTHROPIC_BASE_URL", api.into()),
        ("ANTHROPIC_API_KEY", "sk-ant-fake".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("NO_PROXY", "127.0.0.1,localhost".into()),
        // Read by `ccotel-hook` (Claude Code passes its environment to hooks,
        // less OTEL_*).
        (
            "CCOTEL_HOOK_ENDPOINT",
            format!("http://{ccotel_http}/v1/hooks"),
        ),
        // Sent by `ccotel-hook` as a bearer token.
        ("CCOTEL_TOKEN", TOKEN.into()),
        // A loaded CI machine gets more than the default 300 ms.
        ("CCOTEL_HOOK_TIMEOUT_MS", "3000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What one Claude Code process did.
struct Output {
    what: String,
    status: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Output {
    fn assert_success(&self, step: &str) {
        assert!(
            !self.timed_out && self.status == Some(0),
            "{step} failed ({}): status {:?}, timed out: {}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.timed_out,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs Claude Code with `args`, killing it after `timeout`.
async fn run(
    claude: &Path,
    args: &[String],
    dirs: &Dirs,
    env: &[(String, String)],
    timeout: Duration,
) -> Output {
    let started = Instant::now();
    let mut child = Command::new(claude)
        .args(args)
        .current_dir(&dirs.work)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start Claude Code");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        (out, err)
    };
    let waited = tokio::time::timeout(timeout, async {
        let (out, err) = read.await;
        (child.wait().await, out, err)
    })
    .await;
    let (status, timed_out, out, err) = match waited {
        Ok((status, out, err)) => (status.ok().and_then(|s| s.code()), false, out, err),
        Err(_) => {
            let _ = child.kill().await;
            (None, true, Vec::new(), Vec::new())
        }
    };
    Output {
        what: format!("claude {}", args.join(" ")),
        status,
        timed_out,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// ccotel serving on ephemeral ports, as `ccotel serve` would.
struct Ccotel {
    http: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Ccotel {
    async fn start(store: &Path) -> Ccotel {
        let mut config = ccotel::config::Config::default();
        config.store.path = store.to_path_buf();
        // As a team gateway would: every hook must carry the token.
        config.server.token = Some(TOKEN.into());
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = http.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ccotel::app::run(config, http, grpc, async move {
            let _ = rx.await;
        }));
        Ccotel {
            http: addr,
            stop,
            task,
        }
    }

    async fn health(&self) -> Value {
        reqwest::get(format!("http://{}/healthz", self.http))
            .await
            .expect("GET /healthz")
            .json()
            .await
            .expect("/healthz answers JSON")
    }

    /// Stops ccotel the way SIGTERM does; it processes what it accepted first.
    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("ccotel did not stop in time")
            .expect("ccotel panicked")
            .expect("ccotel returned an error");
    }
}

/// The hook events in ccotel's store (`ccotel.db`, table `events`), as
/// (hook_event_name, session_id, transport).
fn stored_hook_events(store: &Path) -> Vec<(String, String, String)> {
    let db = store.join("ccotel.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.display()));
    let mut stmt = conn
        .prepare("SELECT transport, body FROM events WHERE kind = 'hook' ORDER BY id")
        .unwrap_or_else(|e| {
            panic!("the store's events table changed shape ({e}); update this test's query")
        });
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })
    .unwrap()
    .map(|row| {
        let (transport, body) = row.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        (field("hook_event_name"), field("session_id"), transport)
    })
    .collect()
}

/// A fake Anthropic Messages API on 127.0.0.1: every model call gets
/// [`REPLY`], streamed as server-sent events when asked.
async fn start_fake_api() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(fake_api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn fake_api(method: Method, uri: Uri, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (method, uri.path()) {
        (Method::POST, "/v1/messages") => messages(&request),
        (Method::POST, "/v1/messages/count_tokens") => {
            json_response(StatusCode::OK, json!({"input_tokens": body.len() / 4 + 1}))
        }
        (Method::GET, "/v1/models") => json_response(
            StatusCode::OK,
            json!({"data": [], "has_more": false, "first_id": null, "last_id": null}),
        ),
        (Method::HEAD, _) => StatusCode::OK.into_response(),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "fake API: no such path"}}),
        ),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("request-id"), "req_fake_0"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// One assistant message with [`REPLY`], as JSON or as an SSE stream.
fn messages(request: &Value) -> Response {
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5-20250929");
    let usage = json!({"input_tokens": 12, "output_tokens": 8,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0});
    let message = json!({
        "id": "msg_01fakefakefakefakefake", "type": "message", "role": "assistant",
        "model": model, "content": [{"type": "text", "text": REPLY}],
        "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
    });
    if request["stream"] != true {
        return json_response(StatusCode::OK, message);
    }
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": start}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": REPLY}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": usage}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let sse: String = events
        .iter()
        .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
        .collect();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("request-id"), "req_fake_0"),
        ],
        Body::from(sse),
    )
        .into_response()
}
