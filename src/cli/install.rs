//! `ccotel install` / `ccotel uninstall`: edit Claude Code's settings.json so
//! that it sends its hooks and OpenTelemetry to ccotel, and take exactly
//! that back out again.
//!
//! Settings files are hand-edited and shared with other tools, so every edit
//! is a merge: other keys, hooks and variables stay where they are (in their
//! order), the file's indentation is kept, a second run changes nothing, the
//! old file is copied to `settings.json.bak-<UTC time>` before anything is
//! written, and the new one replaces it atomically (temporary file + rename)
//! so a crash never leaves half a file. A file that does not parse is never
//! touched. How ccotel recognises its own entries is described in
//! [`super::settings`].

use super::settings::{self, HookKind, SettingsFile};
use super::{InstallArgs, Scope};
use anyhow::Context;
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Seconds Claude Code waits for one of ccotel's hooks.
const HOOK_TIMEOUT_SECS: u64 = 5;

/// Adds ccotel's hooks and telemetry variables to the settings file `args`
/// pick, showing the change as a diff.
pub fn install(args: &InstallArgs) -> anyhow::Result<()> {
    run(args, Action::Install)
}

/// Removes what [`install`] added with the same flags, and nothing else.
pub fn uninstall(args: &InstallArgs) -> anyhow::Result<()> {
    run(args, Action::Uninstall)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Install,
    Uninstall,
}

/// What `install` wants in the file, worked out once from the flags so that
/// `uninstall` with the same flags removes the same things.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One handler per event, in [`settings::HOOK_EVENTS`] order.
    pub hooks: Vec<(&'static str, Value)>,
    /// The URL ccotel's HTTP hooks post to; recognises them on removal.
    pub hook_url: String,
    /// Variables for the `env` block (none for project scope, where Claude
    /// Code would ignore them).
    pub env: Vec<(&'static str, String)>,
}

/// The program command hooks run: `ccotel-hook`, or `ccotel` with the
/// `hook` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookProgram {
    /// The absolute path of the binary (or a bare name, to be found on
    /// `PATH`).
    pub path: String,
    pub kind: HookKind,
}

impl HookProgram {
    /// The command line without flags, quoted for the shell Claude Code
    /// runs it with.
    pub fn command(&self) -> String {
        let program = settings::shell_quote(&self.path);
        match self.kind {
            HookKind::Subcommand => format!("{program} hook"),
            HookKind::HookBinary => program,
        }
    }
}

impl Plan {
    /// The plan for `endpoint`, with `program` running the command hooks.
    pub fn new(
        endpoint: &str,
        program: &HookProgram,
        http_hooks: bool,
        with_env: bool,
        content: bool,
    ) -> Plan {
        let hook_url = settings::hook_url(endpoint);
        let mut command = program.command();
        if settings::normalize_endpoint(endpoint) != settings::DEFAULT_ENDPOINT {
            command.push_str(" --endpoint ");
            command.push_str(&settings::shell_quote(&hook_url));
        }
        let hooks = settings::HOOK_EVENTS
            .iter()
            .map(|&event| {
                // A short timeout: should ccotel ever hang, Claude Code moves
                // on after seconds instead of its 600 s default.
                let handler = if http_hooks && !settings::HTTP_UNSUPPORTED_EVENTS.contains(&event) {
                    json!({ "type": "http", "url": hook_url, "timeout": HOOK_TIMEOUT_SECS })
                } else {
                    json!({ "type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECS })
                };
                (event, handler)
            })
            .collect();
        let env = if with_env {
            settings::telemetry_env(endpoint, content)
        } else {
            Vec::new()
        };
        Plan {
            hooks,
            hook_url,
            env,
        }
    }
}

fn run(args: &InstallArgs, action: Action) -> anyhow::Result<()> {
    let endpoint = check_endpoint(&args.endpoint)?;
    let path = match &args.settings {
        Some(p) => p.clone(),
        None => match args.scope {
            Scope::User => settings::user_settings_path()?,
            Scope::Project => settings::project_settings_path(),
        },
    };
    let with_env = args.scope == Scope::User;
    let program = hook_program();
    let plan = Plan::new(&endpoint, &program, args.http_hooks, with_env, args.content);

    let file = SettingsFile::read(&path)?;
    let mut root = file.root.clone();
    let notes = match action {
        Action::Install => apply_install(&mut root, &plan),
        Action::Uninstall => apply_uninstall(&mut root, &plan),
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was changed", path.display()))?;
    for note in &notes {
        eprintln!("ccotel: warning: {note}");
    }
    if action == Action::Install && !with_env {
        eprintln!("{}", project_env_warning(&path, &endpoint, args.content));
    }

    if root == file.root {
        match action {
            Action::Install => settings::say(&format!(
                "{}: no change, ccotel is already installed there.",
                path.display()
            )),
            Action::Uninstall => settings::say(&format!(
                "{}: no change, nothing of ccotel's is there.",
                path.display()
            )),
        }
        return Ok(());
    }

    let old_text = file.text.clone().unwrap_or_default();
    let new_text = render(&root, file.text.as_deref());
    settings::say(&unified_diff(
        &path,
        file.text.is_some(),
        &old_text,
        &new_text,
        color_stdout(),
    ));
    if args.dry_run {
        settings::say(&format!("dry run: {} was not changed.", path.display()));
        return Ok(());
    }
    let backup = write_with_backup(&path, file.text.is_some(), &new_text)?;
    match backup {
        Some(b) => settings::say(&format!(
            "Wrote {} (backup: {}).",
            path.display(),
            b.display()
        )),
        None => settings::say(&format!("Wrote {}.", path.display())),
    }
    match action {
        Action::Install => settings::say(
            "New Claude Code sessions will send to ccotel; check the set-up with `ccotel doctor`.",
        ),
        Action::Uninstall => {
            settings::say("New Claude Code sessions will no longer send to ccotel.")
        }
    }
    Ok(())
}

/// The endpoint without a trailing slash, after checking it is an
/// `http(s)://host:port` URL, because it ends up verbatim in a hook URL and
/// in `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn check_endpoint(endpoint: &str) -> anyhow::Result<String> {
    let endpoint = settings::normalize_endpoint(endpoint);
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| anyhow::anyhow!("--endpoint {endpoint:?}: invalid URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        anyhow::bail!(
            "--endpoint {endpoint:?}: expected http://HOST:PORT, such as {}",
            settings::DEFAULT_ENDPOINT
        );
    }
    Ok(endpoint)
}

/// What command hooks run: `ccotel-hook` when it sits next to the running
/// `ccotel` (it starts several times faster, and every tool call waits for
/// it), else `ccotel hook`.
///
/// The path is the running binary's, but reached the way the user reached
/// it when that is a symlink on `PATH` (Homebrew, `~/.local/bin`): the link
/// survives upgrades, the versioned file it points to does not. So
/// `ccotel-hook` is looked for next to that link first, then next to the
/// file it points to.
pub fn hook_program() -> HookProgram {
    let subcommand = |path: String| HookProgram {
        path,
        kind: HookKind::Subcommand,
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "ccotel: warning: cannot find the running binary ({e}); hooks will run `ccotel` from PATH"
            );
            return subcommand("ccotel".into());
        }
    };
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    let invoked = std::env::args_os().next().map(PathBuf::from);
    let candidate = invoked.and_then(|arg0| {
        if arg0.components().count() > 1 {
            std::path::absolute(&arg0).ok()
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(&arg0))
                    .find(|p| p.is_file())
                    .and_then(|p| std::path::absolute(p).ok())
            })
        }
    });
    let chosen = candidate
        .filter(|c| std::fs::canonicalize(c).is_ok_and(|r| r == real))
        .unwrap_or(exe);
    let hook_bin = format!("{}{}", settings::HOOK_BIN, std::env::consts::EXE_SUFFIX);
    let sibling = [&chosen, &real]
        .into_iter()
        .map(|p| p.with_file_name(&hook_bin))
        .find(|p| is_executable(p));
    match sibling {
        Some(path) => HookProgram {
            path: path.to_string_lossy().into_owned(),
            kind: HookKind::HookBinary,
        },
        None => subcommand(chosen.to_string_lossy().into_owned()),
    }
}

/// Whether `path` is a file this user can run (on Unix: has an execute
/// bit; elsewhere: exists).
pub fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Adds the plan's hooks and variables to `root`. Returns warnings for
/// values of other tools it had to replace. Errors (a `hooks` or `env` that
/// is not an object, an event that is not a list) leave the caller free to
/// abandon `root`.
pub fn apply_install(root: &mut Map<String, Value>, plan: &Plan) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if !plan.hooks.is_empty() {
        let hooks = object_entry(root, "hooks", "\"hooks\"")?;
        for (event, wanted) in &plan.hooks {
            let groups = match hooks
                .entry(event.to_string())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(a) => a,
                other => {
                    return Err(format!(
                        "\"hooks.{event}\" is {}, expected a list",
                        settings::kind_of(other)
                    ))
                }
            };
            if already_installed(groups, wanted, &plan.hook_url) {
                continue;
            }
            remove_ours(groups, &plan.hook_url);
            groups.push(json!({ "hooks": [wanted] }));
        }
    }
    if !plan.env.is_empty() {
        let env = object_entry(root, "env", "\"env\"")?;
        for (key, wanted) in &plan.env {
            match env.get(*key) {
                Some(v) => match settings::env_value_text(v) {
                    Some(existing) if settings::env_satisfied(key, &existing, wanted) => {}
                    existing => {
                        notes.push(format!(
                            "{key} was {}; now {wanted:?} (the backup keeps the old value, and uninstall will not restore it)",
                            existing
                                .map(|e| format!("{e:?}"))
                                .unwrap_or_else(|| settings::kind_of(v).to_string())
                        ));
                        env.insert(key.to_string(), Value::String(wanted.clone()));
                    }
                },
                None => {
                    env.insert(key.to_string(), Value::String(wanted.clone()));
                }
            }
        }
    }
    Ok(notes)
}

/// Removes ccotel's hooks, and the plan's variables where they still have
/// the plan's value, from `root`. Lists and objects emptied by the removal
/// go too; ones that were empty before stay.
pub fn apply_uninstall(root: &mut Map<String, Value>, plan: &Plan) -> Result<Vec<String>, String> {
    if let Some(hooks_value) = root.get_mut("hooks") {
        let Value::Object(hooks) = hooks_value else {
            return Err(format!(
                "\"hooks\" is {}, expected an object",
                settings::kind_of(hooks_value)
            ));
        };
        let mut removed_any = false;
        let events: Vec<String> = hooks.keys().cloned().collect();
        for event in events {
            let Some(Value::Array(groups)) = hooks.get_mut(&event) else {
                continue;
            };
            if remove_ours(groups, &plan.hook_url) {
                removed_any = true;
                if groups.is_empty() {
                    hooks.shift_remove(&event);
                }
            }
        }
        if removed_any && hooks.is_empty() {
            root.shift_remove("hooks");
        }
    }
    if let Some(Value::Object(env)) = root.get_mut("env") {
        let mut removed_any = false;
        for (key, wanted) in &plan.env {
            if env.get(*key).and_then(Value::as_str) == Some(wanted.as_str()) {
                env.shift_remove(*key);
                removed_any = true;
            }
        }
        if removed_any && env.is_empty() {
            root.shift_remove("env");
        }
    }
    Ok(Vec::new())
}

/// `root[key]` as an object, created at the end if missing.
fn object_entry<'a>(
    root: &'a mut Map<String, Value>,
    key: &str,
    name: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    match root
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "{name} is {}, expected an object",
            settings::kind_of(other)
        )),
    }
}

/// Whether an event already has exactly one ccotel handler, the wanted one,
/// in a group that sees every occurrence of the event. Only the fields that
/// decide where events go are compared, so a `timeout` the user added to
/// ccotel's handler survives a re-install.
fn already_installed(groups: &[Value], wanted: &Value, hook_url: &str) -> bool {
    let mut ours = groups.iter().flat_map(|g| {
        let matcher = g.get("matcher").and_then(Value::as_str);
        g.get("hooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|h| settings::is_ccotel_handler(h, hook_url))
            .map(move |h| (matcher, h))
    });
    let (Some((matcher, handler)), None) = (ours.next(), ours.next()) else {
        return false;
    };
    let same = |k: &str| handler.get(k) == wanted.get(k);
    settings::matches_everything(matcher)
        && same("type")
        && same("command")
        && same("url")
        && same("timeout")
}

/// Removes ccotel's handlers from an event's groups, and the groups left
/// with no handler by that. Returns whether anything was removed.
fn remove_ours(groups: &mut Vec<Value>, hook_url: &str) -> bool {
    let mut removed = false;
    groups.retain_mut(|group| {
        let Some(Value::Array(handlers)) = group.get_mut("hooks") else {
            return true;
        };
        let before = handlers.len();
        handlers.retain(|h| !settings::is_ccotel_handler(h, hook_url));
        if handlers.len() == before {
            return true;
        }
        removed = true;
        !handlers.is_empty()
    });
    removed
}

/// Pretty JSON with the file's own indentation (two spaces for a new file)
/// and a final newline, so the diff shows only what changed.
fn render(root: &Map<String, Value>, old_text: Option<&str>) -> String {
    let indent = old_text
        .and_then(detect_indent)
        .unwrap_or_else(|| "  ".into());
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // A map of JSON values always serialises.
    let _ = serde::Serialize::serialize(root, &mut ser);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

/// The indentation of the first indented line: one level, in the file's
/// own characters.
fn detect_indent(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let ws: String = line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        (!ws.is_empty() && ws.len() < line.len()).then_some(ws)
    })
}

/// Copies the current file aside (when there is one), then writes the new
/// text atomically. Returns the backup's path.
fn write_with_backup(path: &Path, exists: bool, text: &str) -> anyhow::Result<Option<PathBuf>> {
    // Write through a symlink (dotfile managers link settings.json) instead
    // of replacing the link with a plain file.
    let target = if exists {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let backup = if exists {
        let b = backup_path(path);
        std::fs::copy(path, &b)
            .with_context(|| format!("cannot back up {} to {}", path.display(), b.display()))?;
        Some(b)
    } else {
        None
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "settings.json".into());
    let tmp = dir.join(format!(".{name}.ccotel-{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(&target) {
            // Keep the file's mode: settings can hold API keys.
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("cannot write {}: {e}", target.display()));
    }
    Ok(backup)
}

/// `settings.json.bak-20250101T120000Z`, with a counter if that exists.
fn backup_path(path: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "settings.json".into());
    let base = path.with_file_name(format!("{name}.bak-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    candidate
}

/// The export lines for a shell, since project settings cannot carry them.
fn project_env_warning(path: &Path, endpoint: &str, content: bool) -> String {
    let mut s = format!(
        "ccotel: warning: Claude Code ignores telemetry variables in project settings ({}) except to turn telemetry off, so only the hooks go there. Put the variables in your user settings (`ccotel install --scope user`) or in your shell:",
        path.display()
    );
    for (k, v) in settings::telemetry_env(endpoint, content) {
        s.push_str(&format!("\n  export {k}={}", settings::shell_quote(&v)));
    }
    s
}

fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A unified diff (3 lines of context) of two texts, labelled with `path`
/// (the old side is `/dev/null` for a file that does not exist yet).
pub fn unified_diff(path: &Path, existed: bool, old: &str, new: &str, color: bool) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_lines(&a, &b);
    let (red, green, cyan, reset) = if color {
        ("\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    let old_label = if existed {
        path.display().to_string()
    } else {
        "/dev/null".to_string()
    };
    let mut out = format!("--- {old_label}\n+++ {}\n", path.display());
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        // Extend the hunk while the next change is within 2*CONTEXT lines.
        let start = changed[i].saturating_sub(CONTEXT);
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] - changed[j] <= 2 * CONTEXT {
            j += 1;
        }
        let end = (changed[j] + CONTEXT + 1).min(ops.len());
        let (mut a_start, mut b_start) = (None, None);
        let (mut a_len, mut b_len) = (0, 0);
        let mut body = String::new();
        for op in &ops[start..end] {
            match op {
                Op::Same(ai, bi) => {
                    a_start.get_or_insert(*ai);
                    b_start.get_or_insert(*bi);
                    a_len += 1;
                    b_len += 1;
                    body.push_str(&format!(" {}\n", a[*ai]));
                }
                Op::Del(ai, bi) => {
                    a_start.get_or_insert(*ai);
                    b_start.get_or_insert(*bi);
                    a_len += 1;
                    body.push_str(&format!("{red}-{}{reset}\n", a[*ai]));
                }
                Op::Add(ai, bi) => {
                    a_start.get_or_insert(*ai);
                    b_start.get_or_insert(*bi);
                    b_len += 1;
                    body.push_str(&format!("{green}+{}{reset}\n", b[*bi]));
                }
            }
        }
        // Unified-diff convention: an empty side is numbered from the line
        // before it.
        let num = |start: Option<usize>, len: usize| {
            let s = start.unwrap_or(0);
            if len == 0 {
                s
            } else {
                s + 1
            }
        };
        out.push_str(&format!(
            "{cyan}@@ -{},{} +{},{} @@{reset}\n",
            num(a_start, a_len),
            a_len,
            num(b_start, b_len),
            b_len
        ));
        out.push_str(&body);
        i = j + 1;
    }
    out
}

/// One line of an edit script, with the line's position in the old and new
/// text (for deletions and additions: where it would be in the other).
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize, usize),
    Del(usize, usize),
    Add(usize, usize),
}

/// A shortest edit script by longest common subsequence, after trimming the
/// common head and tail. Settings files are small; a pathological middle
/// larger than a few million cells is shown as removed and re-added.
fn diff_lines(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op> = (0..head).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > 4_000_000 {
        ops.extend((0..n).map(|i| Op::Del(head + i, head)));
        ops.extend((0..m).map(|j| Op::Add(head + n, head + j)));
    } else {
        // lcs[i][j] = LCS length of am[i..] and bm[j..].
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[at(i, j)] = if am[i] == bm[j] {
                    lcs[at(i + 1, j + 1)] + 1
                } else {
                    lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Same(head + i, head + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) {
                // Deletions first on a tie: `-old` then `+new` reads best.
                ops.push(Op::Del(head + i, head + j));
                i += 1;
            } else {
                ops.push(Op::Add(head + i, head + j));
                j += 1;
            }
        }
    }
    let (a_tail, b_tail) = (a.len() - tail, b.len() - tail);
    ops.extend((0..tail).map(|k| Op::Same(a_tail + k, b_tail + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(path: &str, kind: HookKind) -> HookProgram {
        HookProgram {
            path: path.into(),
            kind,
        }
    }

    fn plan(http: bool) -> Plan {
        Plan::new(
            settings::DEFAULT_ENDPOINT,
            &program("/usr/bin/ccotel", HookKind::Subcommand),
            http,
            true,
            false,
        )
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn install_then_uninstall_is_identity_and_keeps_others() {
        let original = obj(json!({
            "model": "opus",
            "hooks": {
                "PreToolUse": [{ "matcher": "Bash", "hooks": [{ "type": "command", "command": "lint.sh" }] }],
                "Notification": [{ "hooks": [{ "type": "command", "command": "notify-send hi" }] }]
            },
            "env": { "FOO": "bar", "OTEL_METRICS_EXPORTER": "prometheus,otlp" }
        }));
        let mut root = original.clone();
        apply_install(&mut root, &plan(false)).unwrap();
        let once = root.clone();
        apply_install(&mut root, &plan(false)).unwrap();
        assert_eq!(root, once, "second install changes nothing");
        assert_eq!(root["env"]["OTEL_METRICS_EXPORTER"], "prometheus,otlp");
        let pre = root["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["matcher"], "Bash");
        apply_uninstall(&mut root, &plan(false)).unwrap();
        assert_eq!(root, original);
        let keys: Vec<&String> = root.keys().collect();
        assert_eq!(keys, ["model", "hooks", "env"]);
    }

    #[test]
    fn switching_to_http_hooks_replaces_command_hooks() {
        let mut root = Map::new();
        apply_install(&mut root, &plan(false)).unwrap();
        apply_install(&mut root, &plan(true)).unwrap();
        let pre = root["hooks"]["PreToolUse"].as_array().unwrap();
        assert_eq!(pre.len(), 1);
        assert_eq!(pre[0]["hooks"][0]["type"], "http");
        assert_eq!(
            root["hooks"]["SessionStart"][0]["hooks"][0]["type"],
            "command"
        );
        apply_uninstall(&mut root, &plan(false)).unwrap();
        assert!(root.get("hooks").is_none(), "{root:?}");
        assert!(root.get("env").is_none(), "{root:?}");
    }

    #[test]
    fn the_hook_binary_replaces_the_subcommand() {
        let mut root = Map::new();
        apply_install(&mut root, &plan(false)).unwrap();
        let fast = Plan::new(
            settings::DEFAULT_ENDPOINT,
            &program("/usr/bin/ccotel-hook", HookKind::HookBinary),
            false,
            true,
            false,
        );
        apply_install(&mut root, &fast).unwrap();
        for event in settings::HOOK_EVENTS {
            let groups = root["hooks"][*event].as_array().unwrap();
            assert_eq!(groups.len(), 1, "{event}");
            assert_eq!(groups[0]["hooks"][0]["command"], "/usr/bin/ccotel-hook");
        }
        // Uninstall recognises either, whichever binary runs it.
        apply_uninstall(&mut root, &plan(false)).unwrap();
        assert!(root.is_empty(), "{root:?}");
    }

    #[test]
    fn a_shared_group_loses_only_our_handler() {
        let mut root = obj(json!({ "hooks": { "Stop": [{ "hooks": [
            { "type": "command", "command": "ccotel hook" },
            { "type": "command", "command": "say done" }
        ] }] } }));
        apply_uninstall(&mut root, &plan(false)).unwrap();
        assert_eq!(
            Value::Object(root),
            json!({ "hooks": { "Stop": [{ "hooks": [{ "type": "command", "command": "say done" }] }] } })
        );
    }

    #[test]
    fn preexisting_empty_containers_stay() {
        let original = obj(json!({ "hooks": {}, "env": {} }));
        let mut root = original.clone();
        apply_uninstall(&mut root, &plan(false)).unwrap();
        assert_eq!(root, original);
    }

    #[test]
    fn env_values_of_others_are_replaced_with_a_note_and_kept_on_uninstall() {
        let mut root =
            obj(json!({ "env": { "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318" } }));
        let notes = apply_install(&mut root, &plan(false)).unwrap();
        assert!(
            notes.iter().any(|n| n.contains("http://collector:4318")),
            "{notes:?}"
        );
        assert_eq!(
            root["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "http://127.0.0.1:4318"
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let mut root = obj(json!({ "hooks": [] }));
        assert!(apply_install(&mut root, &plan(false)).is_err());
        let mut root = obj(json!({ "hooks": { "Stop": {} } }));
        assert!(apply_install(&mut root, &plan(false))
            .unwrap_err()
            .contains("hooks.Stop"));
    }

    #[test]
    fn non_default_endpoint_goes_on_the_command() {
        let p = Plan::new(
            "http://10.0.0.5:9999/",
            &program("/opt/my apps/ccotel", HookKind::Subcommand),
            false,
            true,
            true,
        );
        assert_eq!(
            p.hooks[0].1["command"],
            "'/opt/my apps/ccotel' hook --endpoint http://10.0.0.5:9999/v1/hooks"
        );
        let p = Plan::new(
            "http://10.0.0.5:9999/",
            &program("/opt/my apps/ccotel-hook", HookKind::HookBinary),
            false,
            true,
            true,
        );
        assert_eq!(
            p.hooks[0].1["command"],
            "'/opt/my apps/ccotel-hook' --endpoint http://10.0.0.5:9999/v1/hooks"
        );
        assert!(p
            .env
            .iter()
            .any(|(k, v)| *k == "OTEL_EXPORTER_OTLP_ENDPOINT" && v == "http://10.0.0.5:9999"));
        assert!(p.env.iter().any(|(k, _)| *k == "OTEL_LOG_USER_PROMPTS"));
    }

    #[test]
    fn diff_shows_changes_with_context() {
        let old = "{\n  \"a\": 1,\n  \"b\": 2\n}\n";
        let new = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}\n";
        let d = unified_diff(Path::new("s.json"), true, old, new, false);
        assert_eq!(
            d,
            "--- s.json\n+++ s.json\n@@ -1,4 +1,5 @@\n {\n   \"a\": 1,\n-  \"b\": 2\n+  \"b\": 2,\n+  \"c\": 3\n }\n"
        );
        let d = unified_diff(Path::new("s.json"), false, "", "{}\n", false);
        assert!(d.starts_with("--- /dev/null\n+++ s.json\n"), "{d}");
        assert!(d.ends_with("@@ -0,0 +1,1 @@\n+{}\n"), "{d}");
    }

    #[test]
    fn indentation_is_kept() {
        let root = obj(json!({ "a": { "b": 1 } }));
        assert_eq!(
            render(&root, Some("{\n    \"x\": 1\n}")),
            "{\n    \"a\": {\n        \"b\": 1\n    }\n}\n"
        );
        assert_eq!(render(&root, None), "{\n  \"a\": {\n    \"b\": 1\n  }\n}\n");
    }
}
