//! Claude Code's `settings.json`, as `ccotel install`, `uninstall` and
//! `doctor` see it: where it lives, how to read it without losing anything,
//! and how to tell ccotel's own entries from everybody else's.
//!
//! # How ccotel recognises its entries
//!
//! Claude Code validates settings files, so ccotel cannot tag its entries
//! with a key of its own; the marker has to be the entry itself:
//!
//! - a **command hook** is ccotel's when its command, split into words the
//!   way a POSIX shell would, starts with a program whose file name is
//!   `ccotel-hook` (the hook binary) or `ccotel` followed by the word `hook`
//!   (`.exe` allowed). That holds whatever the binary's directory, so
//!   entries written by an older install from another path, or typed by hand
//!   from the README (`ccotel hook`), are recognised too, and nothing else
//!   plausibly runs `ccotel hook` or `ccotel-hook`.
//! - an **HTTP hook** is ccotel's when its `url` is exactly
//!   `<endpoint>/v1/hooks` for the endpoint given to the command (the
//!   default `http://127.0.0.1:4318` unless `--endpoint` says otherwise).
//! - an **env variable** is ccotel's when it has exactly the value `install`
//!   would set. A value someone else chose is never removed.

use anyhow::Context;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Writes to stdout, ignoring a closed pipe (`ccotel install | head` must
/// not panic halfway; the outcome is decided by then anyway).
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Where `ccotel serve` listens for OTLP/HTTP and hooks unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";

/// The hook events ccotel merges into the session trace, in the order they
/// are written to settings.json.
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

/// Without these the trace lacks its root, its turns or its tool calls, so
/// `doctor` fails when any is missing (the others only earn a warning).
pub const KEY_HOOK_EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Stop",
    "SessionEnd",
];

/// Claude Code skips HTTP hooks for these events ("HTTP hooks are not
/// supported for …"), so they always get a command hook.
pub const HTTP_UNSUPPORTED_EVENTS: &[&str] = &["SessionStart", "Setup"];

/// Content switches Claude Code leaves off by default; `install --content`
/// turns them on.
pub const CONTENT_ENV: &[&str] = &[
    "OTEL_LOG_USER_PROMPTS",
    "OTEL_LOG_TOOL_DETAILS",
    "OTEL_LOG_ASSISTANT_RESPONSES",
];

/// The endpoint without a trailing slash, so `http://h:1/` and `http://h:1`
/// produce the same hook URL and the same env value.
pub fn normalize_endpoint(endpoint: &str) -> String {
    endpoint.trim().trim_end_matches('/').to_string()
}

/// Where ccotel takes hook events for a given OTLP/HTTP endpoint.
pub fn hook_url(endpoint: &str) -> String {
    format!("{}/v1/hooks", normalize_endpoint(endpoint))
}

/// The telemetry variables `install` puts in the `env` block, in order.
/// Content switches only with `content`, because prompts and tool input are
/// private by default in Claude Code and that choice is the user's.
pub fn telemetry_env(endpoint: &str, content: bool) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_string()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_string()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_string()),
        ("OTEL_TRACES_EXPORTER", "otlp".to_string()),
        ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1".to_string()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", normalize_endpoint(endpoint)),
    ];
    if content {
        env.extend(CONTENT_ENV.iter().map(|k| (*k, "1".to_string())));
    }
    env
}

/// Claude Code's reading of a boolean variable (`1`, `true`, `yes`, `on`).
pub fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The value of an `env` entry as Claude Code would see it: strings as they
/// are, numbers and booleans as their JSON text.
pub fn env_value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `existing` already does what `wanted` would for `key`, so install
/// can leave a value someone else wrote alone (`otlp,prometheus` already
/// exports OTLP; `true` is as good as `1`).
pub fn env_satisfied(key: &str, existing: &str, wanted: &str) -> bool {
    if key.ends_with("_EXPORTER") && key.starts_with("OTEL_") {
        return existing
            .split(',')
            .any(|part| part.trim().eq_ignore_ascii_case("otlp"));
    }
    if wanted == "1" {
        return is_truthy(existing);
    }
    if key == "OTEL_EXPORTER_OTLP_ENDPOINT" {
        return normalize_endpoint(existing) == normalize_endpoint(wanted);
    }
    existing.trim() == wanted
}

/// `user` scope: `$CLAUDE_CONFIG_DIR/settings.json` when Claude Code is told
/// to keep its config elsewhere, else `~/.claude/settings.json`.
pub fn user_settings_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("settings.json"));
    }
    let home = dirs::home_dir()
        .context("cannot find the home directory; pass --settings PATH or set CLAUDE_CONFIG_DIR")?;
    Ok(home.join(".claude").join("settings.json"))
}

/// `project` scope: the shared project settings in the current directory.
pub fn project_settings_path() -> PathBuf {
    PathBuf::from(".claude").join("settings.json")
}

/// A settings file as read: its text (none if it does not exist yet) and
/// its top-level object.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    pub path: PathBuf,
    pub text: Option<String>,
    pub root: Map<String, Value>,
}

impl SettingsFile {
    /// Reads and parses `path`. A missing file reads as `{}`; anything that
    /// is not a JSON object is an error naming the file (and, for bad JSON,
    /// the line and column), so the caller never overwrites what it could
    /// not understand.
    pub fn read(path: &Path) -> anyhow::Result<SettingsFile> {
        let text = match std::fs::read(path) {
            Ok(bytes) => Some(String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not UTF-8 text (byte {}); nothing was changed",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(anyhow::anyhow!("{}: cannot read: {e}", path.display()));
            }
        };
        let root = match text.as_deref() {
            None => Map::new(),
            Some(t) if t.trim().is_empty() => Map::new(),
            Some(t) => parse_object(t, path)?,
        };
        Ok(SettingsFile {
            path: path.to_path_buf(),
            text,
            root,
        })
    }
}

/// Parses settings text into its top-level object.
pub fn parse_object(text: &str, path: &Path) -> anyhow::Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: invalid JSON: {}; nothing was changed, fix the file and run again",
            path.display(),
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(anyhow::anyhow!(
            "{}: expected a JSON object at the top level, found {}; nothing was changed",
            path.display(),
            kind_of(&other)
        )),
    }
}

/// serde_json appends " at line L column C", which the caller already put
/// in front in the conventional `file:line:col` form.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// A JSON type's name, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a command line into words like a POSIX shell would for the simple
/// cases hooks use: whitespace separates, single quotes are literal, double
/// quotes and backslashes escape. Good enough to find the program and its
/// first arguments; it expands nothing.
pub fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                if !matches!(n, '"' | '\\' | '$' | '`') {
                                    word.push('\\');
                                }
                                word.push(n);
                            }
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Quotes a word for a POSIX shell, only when it needs it, so the common
/// path stays readable in settings.json.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The file name of the hook binary, which `ccotel install` prefers to
/// `ccotel hook` when it sits next to `ccotel`: it starts several times
/// faster (BENCHMARKS.md, "`ccotel hook` end to end").
pub const HOOK_BIN: &str = "ccotel-hook";

/// Which of ccotel's two hook commands a command hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `ccotel hook`: the subcommand of the full binary.
    Subcommand,
    /// `ccotel-hook`: the hook binary.
    HookBinary,
}

impl HookKind {
    /// How many leading words of the command name the program.
    fn words(self) -> usize {
        match self {
            HookKind::Subcommand => 2,
            HookKind::HookBinary => 1,
        }
    }
}

/// A program path's file name, lower case, without `.exe`, whatever its
/// directory.
fn program_name(program: &str) -> String {
    let name = program.rsplit(['/', '\\']).next().unwrap_or(program);
    let name = name.to_ascii_lowercase();
    match name.strip_suffix(".exe") {
        Some(stem) => stem.to_string(),
        None => name,
    }
}

/// Which ccotel hook a hook command runs, if it runs one (see the module
/// docs).
pub fn hook_kind(command: &str) -> Option<HookKind> {
    let kind = |words: &[&str]| match words {
        [program, ..] if program_name(program) == HOOK_BIN => Some(HookKind::HookBinary),
        [program, "hook", ..] if program_name(program) == "ccotel" => Some(HookKind::Subcommand),
        _ => None,
    };
    let parsed = shell_words(command);
    let parsed: Vec<&str> = parsed.iter().map(String::as_str).collect();
    // Also the raw words: a hand-written Windows path (`C:\tools\ccotel.exe
    // hook`) loses its backslashes to shell unescaping.
    let raw: Vec<&str> = command.split_whitespace().collect();
    kind(&parsed).or_else(|| kind(&raw))
}

/// Whether a hook command runs `ccotel hook` or `ccotel-hook` (see the
/// module docs).
pub fn is_ccotel_command(command: &str) -> bool {
    hook_kind(command).is_some()
}

/// The `--endpoint` a ccotel hook command posts to, if it names one.
pub fn command_endpoint(command: &str) -> Option<String> {
    let skip = hook_kind(command).map_or(2, HookKind::words);
    let words = shell_words(command);
    let mut it = words.iter().skip(skip);
    while let Some(w) = it.next() {
        if w == "--endpoint" {
            return it.next().cloned();
        }
        if let Some(v) = w.strip_prefix("--endpoint=") {
            return Some(v.to_string());
        }
    }
    None
}

/// Whether one hook handler (`{"type": …}`) is ccotel's, for hooks that post
/// to `hook_url` (see the module docs).
pub fn is_ccotel_handler(handler: &Value, hook_url: &str) -> bool {
    let Some(h) = handler.as_object() else {
        return false;
    };
    match h.get("type").and_then(Value::as_str) {
        Some("command") => h
            .get("command")
            .and_then(Value::as_str)
            .is_some_and(is_ccotel_command),
        Some("http") => h
            .get("url")
            .and_then(Value::as_str)
            .is_some_and(|u| u.trim_end_matches('/') == hook_url),
        _ => false,
    }
}

/// Where a ccotel handler sends events: the URL of an HTTP hook, or the
/// `--endpoint` of a command hook (else `CCOTEL_HOOK_ENDPOINT`, else the
/// default). `None` for a handler that does not look like ccotel's at all.
pub fn handler_target(handler: &Value) -> Option<String> {
    let h = handler.as_object()?;
    match h.get("type").and_then(Value::as_str)? {
        "command" => {
            let command = h.get("command").and_then(Value::as_str)?;
            if !is_ccotel_command(command) {
                return None;
            }
            Some(
                command_endpoint(command)
                    .or_else(|| {
                        std::env::var("CCOTEL_HOOK_ENDPOINT")
                            .ok()
                            .filter(|s| !s.is_empty())
                    })
                    .unwrap_or_else(|| hook_url(DEFAULT_ENDPOINT)),
            )
        }
        "http" => {
            let url = h.get("url").and_then(Value::as_str)?;
            url.trim_end_matches('/')
                .ends_with("/v1/hooks")
                .then(|| url.to_string())
        }
        _ => None,
    }
}

/// Every handler of one event in a settings object, with the matcher of its
/// group. Shapes that are not what Claude Code expects yield nothing.
pub fn event_handlers<'a>(
    root: &'a Map<String, Value>,
    event: &str,
) -> Vec<(Option<&'a str>, &'a Value)> {
    let Some(groups) = root
        .get("hooks")
        .and_then(Value::as_object)
        .and_then(|h| h.get(event))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in groups {
        let matcher = group.get("matcher").and_then(Value::as_str);
        if let Some(handlers) = group.get("hooks").and_then(Value::as_array) {
            out.extend(handlers.iter().map(|h| (matcher, h)));
        }
    }
    out
}

/// Whether a group's matcher lets every occurrence of an event through.
pub fn matches_everything(matcher: Option<&str>) -> bool {
    matches!(matcher.map(str::trim), None | Some("") | Some("*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(shell_words("ccotel hook"), vec!["ccotel", "hook"]);
        assert_eq!(
            shell_words("'/opt/my apps/ccotel' hook --endpoint \"http://h:1/v1/hooks\""),
            vec![
                "/opt/my apps/ccotel",
                "hook",
                "--endpoint",
                "http://h:1/v1/hooks"
            ]
        );
        assert_eq!(
            shell_words(r"/a\ b/ccotel hook"),
            vec!["/a b/ccotel", "hook"]
        );
        assert_eq!(shell_words("  "), Vec::<String>::new());
    }

    #[test]
    fn quoting_round_trips() {
        for w in ["/usr/bin/ccotel", "/opt/my apps/ccotel", "it's", "", "a\"b"] {
            let q = shell_quote(w);
            assert_eq!(shell_words(&q), vec![w.to_string()], "{q}");
        }
        assert_eq!(
            shell_quote("/usr/local/bin/ccotel"),
            "/usr/local/bin/ccotel"
        );
    }

    #[test]
    fn the_marker_finds_ccotel_commands_only() {
        assert_eq!(hook_kind("ccotel hook"), Some(HookKind::Subcommand));
        assert_eq!(
            hook_kind("'/opt/my apps/ccotel-hook' --endpoint x"),
            Some(HookKind::HookBinary)
        );
        assert_eq!(
            hook_kind(r"C:\tools\CCOTEL-HOOK.EXE"),
            Some(HookKind::HookBinary)
        );
        assert!(!is_ccotel_command("ccotel-hooks"));
        assert!(!is_ccotel_command("ccotel hooked"));
        assert_eq!(
            command_endpoint("/bin/ccotel-hook --endpoint http://h:9/v1/hooks").as_deref(),
            Some("http://h:9/v1/hooks")
        );
        assert_eq!(
            command_endpoint("ccotel-hook --endpoint=http://h:9/v1/hooks").as_deref(),
            Some("http://h:9/v1/hooks")
        );
        assert!(is_ccotel_command("ccotel hook"));
        assert!(is_ccotel_command("/home/u/.cargo/bin/ccotel hook"));
        assert!(is_ccotel_command(r"C:\tools\ccotel.exe hook --endpoint x"));
        assert!(is_ccotel_command("'/opt/my apps/ccotel' hook"));
        assert!(!is_ccotel_command("ccotel serve"));
        assert!(!is_ccotel_command("my-ccotel hook"));
        assert!(!is_ccotel_command("echo ccotel hook"));
        assert!(!is_ccotel_command("/usr/bin/other-tool --ccotel hook"));
        assert_eq!(
            command_endpoint("ccotel hook --endpoint http://h:9/v1/hooks").as_deref(),
            Some("http://h:9/v1/hooks")
        );
        assert_eq!(command_endpoint("ccotel hook"), None);
    }

    #[test]
    fn env_values_others_chose_can_satisfy_ours() {
        assert!(env_satisfied(
            "OTEL_METRICS_EXPORTER",
            "prometheus, otlp",
            "otlp"
        ));
        assert!(!env_satisfied("OTEL_LOGS_EXPORTER", "console", "otlp"));
        assert!(env_satisfied("CLAUDE_CODE_ENABLE_TELEMETRY", "true", "1"));
        assert!(!env_satisfied("CLAUDE_CODE_ENABLE_TELEMETRY", "0", "1"));
        assert!(env_satisfied(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318/",
            "http://127.0.0.1:4318"
        ));
        assert!(!env_satisfied(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            "http/protobuf"
        ));
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let err = parse_object("{\n  \"a\": 1,\n  oops\n}", Path::new("/x/settings.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/x/settings.json:3:3: invalid JSON"),
            "{err}"
        );
        let err = parse_object("[1]", Path::new("s.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("an array"), "{err}");
    }
}
