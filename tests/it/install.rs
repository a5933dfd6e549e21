//! `ccotel install`, `uninstall` and `doctor` end to end: the real binary on
//! real settings files in a temporary directory.

use crate::support::ports::free_port;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ccotel");
/// The hook binary, which cargo builds next to `BIN`, so `install` picks it.
const HOOK_BIN: &str = env!("CARGO_BIN_EXE_ccotel-hook");

/// The binary with a clean environment: no telemetry or ccotel variables
/// from the developer's shell, and a home directory that is the test's own.
fn ccotel(home: &Path) -> Command {
    ccotel_at(Path::new(BIN), home)
}

/// Like [`ccotel`], for a copy of the binary elsewhere.
fn ccotel_at(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .current_dir(home)
        .stdin(Stdio::null());
    cmd
}

fn run(home: &Path, args: &[&str]) -> Output {
    ccotel(home).args(args).output().expect("run ccotel")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn install(home: &Path, settings: &Path, extra: &[&str]) -> Output {
    let s = settings.to_str().expect("utf-8 path");
    let mut args = vec!["install", "--settings", s];
    args.extend_from_slice(extra);
    let o = run(home, &args);
    assert!(o.status.success(), "{}", text(&o));
    o
}

fn uninstall(home: &Path, settings: &Path, extra: &[&str]) -> Output {
    let s = settings.to_str().expect("utf-8 path");
    let mut args = vec!["uninstall", "--settings", s];
    args.extend_from_slice(extra);
    let o = run(home, &args);
    assert!(o.status.success(), "{}", text(&o));
    o
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read settings"))
        .expect("settings are JSON")
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".bak-"))
        .collect()
}

/// Every file in `dir` (not recursive), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const EVENTS: &[&str] = &[
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

/// The single ccotel handler of an event (the last group, as install appends).
fn our_handler(settings: &Value, event: &str) -> Value {
    let groups = settings["hooks"][event]
        .as_array()
        .unwrap_or_else(|| panic!("no hooks for {event}: {settings}"));
    groups.last().expect("a group")["hooks"][0].clone()
}

/// Settings as another tool (and the user) left them.
fn others() -> Value {
    json!({
        "model": "claude-opus-4",
        "permissions": { "allow": ["Bash(git status)"] },
        "hooks": {
            "PreToolUse": [
                { "matcher": "Bash", "hooks": [{ "type": "command", "command": "/usr/local/bin/guard --strict", "timeout": 5 }] }
            ],
            "Notification": [
                { "hooks": [{ "type": "command", "command": "notify-send 'Claude needs you'" }] }
            ],
            "Stop": [
                { "hooks": [{ "type": "http", "url": "http://127.0.0.1:9000/done" }] }
            ]
        },
        "env": { "ANTHROPIC_MODEL": "claude-opus-4", "OTEL_RESOURCE_ATTRIBUTES": "team=infra" },
        "statusLine": { "type": "command", "command": "~/bin/status" }
    })
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("json") + "\n").expect("write");
}

#[test]
fn install_creates_a_missing_file_and_its_directory() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("deep/er/settings.json");
    let o = install(home.path(), &path, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("+++ ") && stdout.contains("+  \"hooks\": {"),
        "{}",
        text(&o)
    );
    let s = read_json(&path);
    // The hook binary sits next to ccotel, so the hooks run it.
    let command = HOOK_BIN;
    for event in EVENTS {
        let h = our_handler(&s, event);
        assert_eq!(h["type"], "command", "{event}");
        assert_eq!(h["command"], command, "{event}");
        assert!(s["hooks"][event][0].get("matcher").is_none());
    }
    let env = &s["env"];
    for (k, v) in [
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
    ] {
        assert_eq!(env[k], v, "{k}");
    }
    assert!(
        env.get("OTEL_LOG_USER_PROMPTS").is_none(),
        "content stays off"
    );
    assert!(
        backups(path.parent().expect("dir")).is_empty(),
        "nothing to back up"
    );
}

#[test]
fn an_empty_file_is_installed_into_with_a_backup() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    std::fs::write(&path, "").expect("write");
    install(home.path(), &path, &[]);
    assert_eq!(our_handler(&read_json(&path), "Stop")["type"], "command");
    let b = backups(home.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(std::fs::read(&b[0]).expect("backup"), b"");
}

#[test]
fn other_tools_entries_survive_install_and_uninstall() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    let original = others();
    write_json(&path, &original);
    let before = std::fs::read(&path).expect("read");

    install(home.path(), &path, &[]);
    let s = read_json(&path);
    // Others' hooks are still first, ours appended.
    let pre = s["hooks"]["PreToolUse"].as_array().expect("PreToolUse");
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[0], original["hooks"]["PreToolUse"][0]);
    assert_eq!(
        s["hooks"]["Notification"],
        original["hooks"]["Notification"]
    );
    assert_eq!(s["hooks"]["Stop"][0], original["hooks"]["Stop"][0]);
    assert_eq!(s["env"]["ANTHROPIC_MODEL"], "claude-opus-4");
    assert_eq!(s["statusLine"], original["statusLine"]);
    // Key order preserved: the file's own keys first, in their order.
    let keys: Vec<&String> = s.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "env", "statusLine"]);
    // The backup is the file as it was.
    let b = backups(home.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(std::fs::read(&b[0]).expect("backup"), before);

    let o = uninstall(home.path(), &path, &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("--- "),
        "{}",
        text(&o)
    );
    assert_eq!(
        read_json(&path),
        original,
        "uninstall restores the original"
    );
}

#[test]
fn a_second_install_changes_nothing_and_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    write_json(&path, &others());
    install(home.path(), &path, &["--http-hooks"]);
    let after_first = std::fs::read(&path).expect("read");
    let backups_first = backups(home.path());

    let o = install(home.path(), &path, &["--http-hooks"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("no change"), "{}", text(&o));
    assert!(!stdout.contains("+++"), "no diff on a no-op: {}", text(&o));
    assert_eq!(std::fs::read(&path).expect("read"), after_first);
    assert_eq!(backups(home.path()), backups_first, "no new backup");

    // Uninstalling twice is as quiet.
    uninstall(home.path(), &path, &[]);
    let o = uninstall(home.path(), &path, &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no change"),
        "{}",
        text(&o)
    );
    assert_eq!(read_json(&path), others());
}

#[test]
fn malformed_json_is_reported_and_left_alone() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    let broken = "{\n  \"model\": \"opus\",\n  \"hooks\": {\n    \"Stop\": [,]\n  }\n}\n";
    std::fs::write(&path, broken).expect("write");
    for cmd in ["install", "uninstall"] {
        let o = run(
            home.path(),
            &[cmd, "--settings", path.to_str().expect("utf-8")],
        );
        assert!(!o.status.success(), "{cmd}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let named = format!("{}:4:", path.display());
        assert!(
            stderr.contains(&named),
            "{cmd}: names file and line: {}",
            text(&o)
        );
        assert!(stderr.contains("invalid JSON"), "{}", text(&o));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), broken);
        assert_eq!(
            listing(home.path()),
            ["settings.json"],
            "no backup or temp file"
        );
    }
}

#[test]
fn http_hooks_everywhere_but_session_start() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    install(
        home.path(),
        &path,
        &["--http-hooks", "--endpoint", "http://127.0.0.1:14318/"],
    );
    let s = read_json(&path);
    assert_eq!(
        our_handler(&s, "PreToolUse"),
        json!({ "type": "http", "url": "http://127.0.0.1:14318/v1/hooks", "timeout": 5 })
    );
    let start = our_handler(&s, "SessionStart");
    assert_eq!(start["type"], "command");
    assert_eq!(
        start["command"],
        format!("{HOOK_BIN} --endpoint http://127.0.0.1:14318/v1/hooks").as_str()
    );
    assert_eq!(
        s["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://127.0.0.1:14318"
    );

    // Back to command hooks: the HTTP ones are replaced, not duplicated.
    install(
        home.path(),
        &path,
        &["--endpoint", "http://127.0.0.1:14318"],
    );
    let s = read_json(&path);
    let pre = s["hooks"]["PreToolUse"].as_array().expect("PreToolUse");
    assert_eq!(pre.len(), 1, "{s}");
    assert_eq!(pre[0]["hooks"][0]["type"], "command");

    uninstall(
        home.path(),
        &path,
        &["--endpoint", "http://127.0.0.1:14318"],
    );
    assert_eq!(read_json(&path), json!({}));
}

#[test]
fn dry_run_shows_the_diff_and_writes_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("sub/settings.json");
    let o = install(home.path(), &missing, &["--dry-run"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("+    \"SessionStart\": ["),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("--- /dev/null\n"),
        "{}",
        text(&o)
    );
    assert!(!missing.exists() && !home.path().join("sub").exists());

    let path = home.path().join("settings.json");
    write_json(&path, &others());
    let before = std::fs::read(&path).expect("read");
    let o = install(home.path(), &path, &["--dry-run", "--content"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("+    \"OTEL_LOG_USER_PROMPTS\": \"1\""),
        "{}",
        text(&o)
    );
    assert!(stdout.contains("dry run"), "{}", text(&o));
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(listing(home.path()), ["settings.json"]);
}

#[test]
fn content_flag_adds_and_removes_the_content_switches() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    install(home.path(), &path, &["--content"]);
    let s = read_json(&path);
    for k in [
        "OTEL_LOG_USER_PROMPTS",
        "OTEL_LOG_TOOL_DETAILS",
        "OTEL_LOG_ASSISTANT_RESPONSES",
    ] {
        assert_eq!(s["env"][k], "1", "{k}");
    }
    uninstall(home.path(), &path, &["--content"]);
    assert_eq!(read_json(&path), json!({}));
}

#[test]
fn project_scope_gets_hooks_and_a_warning_about_variables() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = ccotel(home.path())
        .args(["install", "--scope", "project"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("ignores telemetry variables in project settings")
            && stderr.contains("export CLAUDE_CODE_ENABLE_TELEMETRY=1"),
        "{}",
        text(&o)
    );
    let s = read_json(&home.path().join(".claude/settings.json"));
    assert_eq!(our_handler(&s, "SessionEnd")["type"], "command");
    assert!(s.get("env").is_none(), "{s}");
}

#[test]
fn user_scope_follows_claude_config_dir() {
    let home = tempfile::tempdir().expect("tempdir");
    let config_dir = home.path().join("cc-config");
    let o = ccotel(home.path())
        .env("CLAUDE_CONFIG_DIR", &config_dir)
        .args(["install"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let s = read_json(&config_dir.join("settings.json"));
    assert_eq!(s["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
    assert!(!home.path().join(".claude").exists());
}

#[test]
fn an_env_value_set_by_someone_else_is_kept_on_uninstall() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    let original = json!({ "env": {
        "OTEL_METRICS_EXPORTER": "prometheus,otlp",
        "CLAUDE_CODE_ENABLE_TELEMETRY": "true"
    } });
    write_json(&path, &original);
    install(home.path(), &path, &[]);
    let s = read_json(&path);
    assert_eq!(s["env"]["OTEL_METRICS_EXPORTER"], "prometheus,otlp");
    assert_eq!(s["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"], "true");
    uninstall(home.path(), &path, &[]);
    assert_eq!(read_json(&path), original);
}

/// Puts `from` at `to`: a hard link where the file system allows (the debug
/// binary is large), else a copy.
fn place(from: &str, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).expect("copy the binary");
    }
}

#[test]
fn without_the_hook_binary_hooks_run_ccotel_hook_and_doctor_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    let bin_dir = home.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir");
    let lone = bin_dir.join("ccotel");
    place(BIN, &lone);
    let path = home.path().join("settings.json");
    let settings = path.to_str().expect("utf-8");
    let run_lone = |args: &[&str]| {
        let o = ccotel_at(&lone, home.path())
            .args(args)
            .output()
            .expect("run ccotel");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            text(&o),
        )
    };
    let doctor = ["doctor", "--http", "127.0.0.1:1", "--settings", settings];

    let (code, _, all) = run_lone(&["install", "--settings", settings]);
    assert_eq!(code, Some(0), "{all}");
    let subcommand = format!("{} hook", lone.display());
    for event in EVENTS {
        assert_eq!(
            our_handler(&read_json(&path), event)["command"],
            subcommand.as_str()
        );
    }
    let (_, stdout, all) = run_lone(&doctor);
    assert!(
        stdout.contains(&format!(
            "✓ Claude Code command hooks run `{}` (14 event(s)); no `ccotel-hook` next to this ccotel",
            subcommand
        )),
        "{all}"
    );

    // The hook binary arrives next to ccotel: doctor suggests it, and a
    // second install switches every hook to it, without duplicates.
    let hook_bin = bin_dir.join("ccotel-hook");
    place(HOOK_BIN, &hook_bin);
    let (_, stdout, all) = run_lone(&doctor);
    assert!(
        stdout.contains(&format!(
            "! Claude Code command hooks run `{subcommand}`; `{}` next to this ccotel starts several times faster",
            hook_bin.display()
        )),
        "{all}"
    );
    assert!(stdout.contains("again to switch to it"), "{all}");
    let (code, _, all) = run_lone(&["install", "--settings", settings]);
    assert_eq!(code, Some(0), "{all}");
    let s = read_json(&path);
    for event in EVENTS {
        let groups = s["hooks"][event].as_array().expect("groups");
        assert_eq!(groups.len(), 1, "{event}: {s}");
        assert_eq!(
            our_handler(&s, event)["command"],
            hook_bin.to_str().expect("utf-8")
        );
    }
    let (_, stdout, all) = run_lone(&doctor);
    assert!(
        stdout.contains(&format!(
            "✓ Claude Code command hooks run `{}`, the hook binary (14 event(s))",
            hook_bin.display()
        )),
        "{all}"
    );

    // The hook binary goes away: doctor says the events are lost.
    std::fs::remove_file(&hook_bin).expect("rm");
    let (_, stdout, all) = run_lone(&doctor);
    assert!(
        stdout.contains(&format!("run `{}`, which is not there", hook_bin.display())),
        "{all}"
    );

    // Uninstall removes the hook binary's entries like ccotel hook's.
    let (code, _, all) = run_lone(&["uninstall", "--settings", settings]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(read_json(&path), json!({}));
}

/// `ccotel serve`, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(home: &Path, http: u16, grpc: u16) -> Server {
    let child = ccotel(home)
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--grpc",
            &format!("127.0.0.1:{grpc}"),
            "--store",
            home.join("store").to_str().expect("utf-8"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ccotel serve");
    let server = Server(child);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .new_agent();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = agent
            .get(format!("http://127.0.0.1:{http}/healthz"))
            .call()
            .is_ok_and(|r| r.status().as_u16() == 200);
        if up {
            return server;
        }
        assert!(Instant::now() < deadline, "ccotel serve did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn doctor_passes_against_a_running_ccotel_and_installed_settings() {
    let home = tempfile::tempdir().expect("tempdir");
    let (http, grpc) = (free_port(), free_port());
    let path = home.path().join("settings.json");
    install(
        home.path(),
        &path,
        &["--endpoint", &format!("http://127.0.0.1:{http}")],
    );
    let _server = serve(home.path(), http, grpc);
    let o = run(
        home.path(),
        &[
            "doctor",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--grpc",
            &format!("127.0.0.1:{grpc}"),
            "--settings",
            path.to_str().expect("utf-8"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains('✗'), "{}", text(&o));
    assert!(stdout.contains("All checks passed"), "{}", text(&o));
}

#[test]
fn doctor_names_the_dead_port_and_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let (http, grpc) = (free_port(), free_port());
    let path = home.path().join("settings.json");
    let o = run(
        home.path(),
        &[
            "doctor",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--grpc",
            &format!("127.0.0.1:{grpc}"),
            "--settings",
            path.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("✗ nothing answers on 127.0.0.1:{http}")),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains(&format!("127.0.0.1:{grpc}")),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains("fix: start ccotel with `ccotel serve`"),
        "{}",
        text(&o)
    );
    // The settings are missing too, and the fix says how to install.
    assert!(
        stdout.contains(&format!(
            "ccotel install --endpoint http://127.0.0.1:{http}"
        )),
        "{}",
        text(&o)
    );
}

#[test]
fn doctor_reports_an_exporter_that_refuses_the_key() {
    // A backend that answers every request with 401.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 9\r\nconnection: close\r\n\r\nbad token",
            );
        }
    });
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("ccotel.toml");
    std::fs::write(
        &config,
        format!(
            "[[exporters]]\nname = \"backend\"\ntype = \"otlp\"\nendpoint = \"http://{addr}\"\n"
        ),
    )
    .expect("write");
    let o = run(
        home.path(),
        &[
            "doctor",
            "--config",
            config.to_str().expect("utf-8"),
            "--http",
            &format!("127.0.0.1:{}", free_port()),
            "--settings",
            home.path().join("none.json").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("POST http://{addr}/v1/traces → 401")),
        "{}",
        text(&o)
    );
    assert!(stdout.contains("check the API key"), "{}", text(&o));
}

#[test]
fn doctor_checks_the_private_ca_the_hook_trusts() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("settings.json");
    let good = home.path().join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["ccotel.internal".into()]).expect("cert");
    std::fs::write(&good, cert.cert.pem()).expect("write");
    let bad = home.path().join("key-not-cert.pem");
    std::fs::write(&bad, cert.signing_key.serialize_pem()).expect("write");
    let doctor = |ca: &Path| {
        let o = ccotel(home.path())
            .env("CCOTEL_CA_CERT", ca)
            .args(["doctor", "--http", "127.0.0.1:1", "--grpc", "127.0.0.1:1"])
            .arg("--settings")
            .arg(&path)
            .output()
            .expect("run ccotel");
        (String::from_utf8_lossy(&o.stdout).to_string(), text(&o))
    };
    let (stdout, all) = doctor(&good);
    assert!(
        stdout.contains(&format!(
            "✓ Hook TLS: CCOTEL_CA_CERT {} holds 1 certificate(s)",
            good.display()
        )),
        "{all}"
    );
    let (stdout, all) = doctor(&bad);
    assert!(
        stdout.contains(&format!(
            "✗ Hook TLS: --ca-cert {}: no certificate in the file; the command hook spools every https:// event",
            bad.display()
        )),
        "{all}"
    );
    assert!(
        stdout.contains("fix: point CCOTEL_CA_CERT at a PEM file"),
        "{all}"
    );
}
