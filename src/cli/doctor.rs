//! `ccotel doctor`: checks the set-up end to end and says how to fix what is
//! wrong, because every link in the chain (config, ports, Claude Code's
//! settings, each backend) fails silently from the user's point of view:
//! Claude Code never complains that its telemetry goes nowhere.
//!
//! Each check prints one `✓`/`✗` line (`!` for something that works but is
//! probably not what was meant), followed by a `fix:` line when it failed.
//! Colour only on a terminal. Any `✗` makes the command exit 1.

use super::install;
use super::settings::{self, HookKind, SettingsFile};
use super::DoctorArgs;
use crate::config::{self, Config, ExporterConfig, ExporterKind, Overrides, Protocol};
use crate::model::Signal;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a local port may take to answer; ccotel on loopback answers in
/// microseconds, so this only bounds a hung or firewalled port.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound per exporter test request, whatever the exporter's timeout.
const EXPORTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check; an error when anything is wrong (so the exit code is 1).
pub fn run(args: &DoctorArgs) -> anyhow::Result<()> {
    let mut out = Report::new();
    let config = check_config(args, &mut out);
    check_ports(&config.config, &mut out);
    check_claude_settings(args, &config.config, &mut out);
    if config.loaded {
        check_exporters(&config.config, &mut out);
    } else {
        out.skip("exporters: not checked, the config did not load");
    }
    match out.failures {
        0 => {
            settings::say("All checks passed.");
            Ok(())
        }
        1 => anyhow::bail!("1 problem found; see the fix above"),
        n => anyhow::bail!("{n} problems found; see the fixes above"),
    }
}

/// Collects and prints check results as they come.
struct Report {
    failures: usize,
    color: bool,
}

impl Report {
    fn new() -> Report {
        Report {
            failures: 0,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn line(&self, mark: &str, color: &str, text: &str) {
        if self.color {
            settings::say(&format!("{color}{mark}\x1b[0m {text}"));
        } else {
            settings::say(&format!("{mark} {text}"));
        }
    }

    fn ok(&mut self, text: impl AsRef<str>) {
        self.line("✓", "\x1b[32m", text.as_ref());
    }

    fn warn(&mut self, text: impl AsRef<str>, fix: impl AsRef<str>) {
        self.line("!", "\x1b[33m", text.as_ref());
        settings::say(&format!("  fix: {}", fix.as_ref()));
    }

    fn fail(&mut self, text: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failures += 1;
        self.line("✗", "\x1b[31m", text.as_ref());
        settings::say(&format!("  fix: {}", fix.as_ref()));
    }

    fn skip(&mut self, text: impl AsRef<str>) {
        self.line("-", "", text.as_ref());
    }
}

struct LoadedConfig {
    config: Config,
    /// False when the real config failed and `config` is the defaults.
    loaded: bool,
}

fn check_config(args: &DoctorArgs, out: &mut Report) -> LoadedConfig {
    let flags = Overrides {
        grpc: args.grpc.clone(),
        http: args.http.clone(),
        store_path: None,
    };
    match Config::load(args.config.as_deref(), &config::process_env, &flags) {
        Ok(config) => {
            let origin = match &args.config {
                Some(p) => p.display().to_string(),
                None => "no file, defaults and CCOTEL_* variables".into(),
            };
            out.ok(format!(
                "config loads ({origin}): {} exporter(s)",
                config.exporters.len()
            ));
            LoadedConfig {
                config,
                loaded: true,
            }
        }
        Err(e) => {
            out.fail(
                format!("config does not load: {e}"),
                "correct the file, key or variable named above; `ccotel serve` will not start until then",
            );
            let fallback = Config::load(None, &config::process_env, &flags)
                .or_else(|_| Config::load(None, &|_| None, &Overrides::default()))
                .unwrap_or_default();
            LoadedConfig {
                config: fallback,
                loaded: false,
            }
        }
    }
}

/// Where to connect to reach a listen address: a wildcard listener is
/// reached on loopback.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn check_ports(config: &Config, out: &mut Report) {
    let start = "start ccotel with `ccotel serve` (and run `ccotel doctor` with the same --config/--http/--grpc as `ccotel serve`)";
    let http = connect_addr(config.http_addr());
    let url = format!("http://{http}/healthz");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(LOCAL_TIMEOUT))
        .build()
        .new_agent();
    match agent.get(&url).call() {
        Ok(reply) if reply.status().as_u16() == 200 => {
            out.ok(format!("ccotel answers on {http} (server.http): GET {url} → 200"))
        }
        Ok(reply) => out.fail(
            format!(
                "port {http} (server.http) answers GET /healthz with {}: that is not ccotel",
                reply.status()
            ),
            format!("stop what listens on {http}, or run ccotel on another port (`ccotel serve --http 127.0.0.1:PORT` and `ccotel install --endpoint http://127.0.0.1:PORT`)"),
        ),
        Err(e) => out.fail(
            format!("nothing answers on {http} (server.http, OTLP/HTTP and hooks): {}", ureq_reason(&e)),
            start,
        ),
    }
    let grpc = connect_addr(config.grpc_addr());
    match TcpStream::connect_timeout(&grpc, LOCAL_TIMEOUT) {
        Ok(_) => out.ok(format!(
            "port {grpc} (server.grpc, OTLP/gRPC) accepts connections"
        )),
        Err(e) => out.fail(
            format!(
                "nothing answers on {grpc} (server.grpc, OTLP/gRPC): {}",
                io_reason(&e)
            ),
            start,
        ),
    }
}

fn ureq_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io_reason(io),
        ureq::Error::Timeout(_) => format!("no answer within {}s", LOCAL_TIMEOUT.as_secs()),
        other => other.to_string(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            format!("no answer within {}s", LOCAL_TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    }
}

/// `host:port` of a URL, with the default port for its scheme.
fn authority_of(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some((host.to_ascii_lowercase(), port))
}

/// Whether a URL reaches a listen address: same port, and the same host or
/// a loopback name for a loopback or wildcard listener.
fn reaches(url: &str, listen: SocketAddr) -> bool {
    let Some((host, port)) = authority_of(url) else {
        return false;
    };
    if port != listen.port() {
        return false;
    }
    let ip = listen.ip();
    if ip.is_unspecified() {
        // A wildcard listener is reached by any name of this machine.
        return true;
    }
    let loopback_name = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|h| h.is_loopback());
    host.parse::<std::net::IpAddr>().is_ok_and(|h| h == ip) || (ip.is_loopback() && loopback_name)
}

/// What `ccotel install` should be run with for this config.
fn install_hint(config: &Config) -> String {
    let endpoint = format!("http://{}", connect_addr(config.http_addr()));
    if endpoint == settings::DEFAULT_ENDPOINT {
        "run `ccotel install`".into()
    } else {
        format!("run `ccotel install --endpoint {endpoint}`")
    }
}

/// Which program ccotel's command hooks run (`ccotel-hook` or `ccotel
/// hook`), whether it is there, and whether the faster `ccotel-hook` could
/// replace `ccotel hook`: Claude Code waits for the hook on every tool call.
fn check_hook_programs(read: &[SettingsFile], hint: &str, out: &mut Report) {
    let mut programs: BTreeMap<(String, bool), Vec<&str>> = BTreeMap::new();
    for f in read {
        for &event in settings::HOOK_EVENTS {
            for (_, h) in settings::event_handlers(&f.root, event) {
                let Some(command) = h
                    .get("command")
                    .and_then(Value::as_str)
                    .filter(|_| h.get("type").and_then(Value::as_str) == Some("command"))
                else {
                    continue;
                };
                let Some(kind) = settings::hook_kind(command) else {
                    continue;
                };
                let program = settings::shell_words(command)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let events = programs
                    .entry((program, kind == HookKind::HookBinary))
                    .or_default();
                if !events.contains(&event) {
                    events.push(event);
                }
            }
        }
    }
    let faster = install::hook_program();
    for ((program, hook_binary), events) in &programs {
        let shown = if *hook_binary {
            format!("`{program}`")
        } else {
            format!("`{program} hook`")
        };
        let path = Path::new(program);
        if path.is_absolute() && !install::is_executable(path) {
            out.fail(
                format!(
                    "Claude Code command hooks ({}) run {shown}, which is not there: those events are lost",
                    events.join(", ")
                ),
                hint,
            );
        } else if *hook_binary {
            out.ok(format!(
                "Claude Code command hooks run {shown}, the hook binary ({} event(s))",
                events.len()
            ));
        } else if faster.kind == HookKind::HookBinary {
            out.warn(
                format!(
                    "Claude Code command hooks run {shown}; `{}` next to this ccotel starts several times faster, and Claude Code waits for it on every tool call",
                    faster.path
                ),
                format!("{hint} again to switch to it"),
            );
        } else {
            out.ok(format!(
                "Claude Code command hooks run {shown} ({} event(s)); no `{}` next to this ccotel",
                events.len(),
                settings::HOOK_BIN
            ));
        }
    }
}

fn check_claude_settings(args: &DoctorArgs, config: &Config, out: &mut Report) {
    // Hooks may come from any settings file; telemetry variables only from
    // user settings (project files can only turn telemetry off).
    let (env_file, hook_files): (Option<PathBuf>, Vec<PathBuf>) = match &args.settings {
        Some(p) => (Some(p.clone()), vec![p.clone()]),
        None => {
            let user = settings::user_settings_path().ok();
            let project = settings::project_settings_path();
            let local = project.with_file_name("settings.local.json");
            let mut files: Vec<PathBuf> = user.iter().cloned().collect();
            files.push(project);
            files.push(local);
            (user, files)
        }
    };
    let hint = install_hint(config);
    let mut read = Vec::new();
    for path in &hook_files {
        match SettingsFile::read(path) {
            Ok(f) => read.push(f),
            Err(e) => out.fail(
                format!("Claude Code settings: {e:#}"),
                "fix the JSON (Claude Code cannot read this file either)",
            ),
        }
    }
    let shown: Vec<String> = read
        .iter()
        .filter(|f| f.text.is_some())
        .map(|f| f.path.display().to_string())
        .collect();
    let where_ = if shown.is_empty() {
        format!(
            "{} (no such file)",
            hook_files
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    } else {
        shown.join(", ")
    };

    // Hooks: which events reach ccotel, and where they post.
    let http = config.http_addr();
    let mut missing_key = Vec::new();
    let mut missing_other = Vec::new();
    let mut wrong_target: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for &event in settings::HOOK_EVENTS {
        let targets: Vec<String> = read
            .iter()
            .flat_map(|f| settings::event_handlers(&f.root, event))
            .filter_map(|(_, h)| settings::handler_target(h))
            .collect();
        if targets.is_empty() {
            if settings::KEY_HOOK_EVENTS.contains(&event) {
                missing_key.push(event);
            } else {
                missing_other.push(event);
            }
        } else if !targets.iter().any(|t| reaches(t, http)) {
            wrong_target
                .entry(targets[0].clone())
                .or_default()
                .push(event);
        }
    }
    if !missing_key.is_empty() {
        out.fail(
            format!(
                "Claude Code hooks: no ccotel hook for {} in {where_}",
                missing_key.join(", ")
            ),
            &hint,
        );
    }
    for (target, events) in &wrong_target {
        out.fail(
            format!(
                "Claude Code hooks for {} post to {target}, but ccotel listens on {} (server.http)",
                events.join(", "),
                connect_addr(http)
            ),
            format!("{hint}, or run ccotel where the hooks point"),
        );
    }
    if missing_key.is_empty() && wrong_target.is_empty() {
        let found = settings::HOOK_EVENTS.len() - missing_other.len();
        out.ok(format!(
            "Claude Code hooks: {found} event(s) go to ccotel ({where_})"
        ));
    }
    if !missing_other.is_empty() && missing_key.is_empty() {
        out.warn(
            format!(
                "Claude Code hooks: none for {}; those details will be missing from traces",
                missing_other.join(", ")
            ),
            &hint,
        );
    }
    check_hook_programs(&read, &hint, out);

    // Telemetry variables: the shell's, overridden by user settings, and
    // turned off by any project file that turns them off.
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("OTEL_") || k.starts_with("CLAUDE_CODE_") || k == CA_CERT_VAR
        })
        .collect();
    let mut sources = vec!["the environment".to_string()];
    if let Some(f) = env_file
        .as_ref()
        .and_then(|p| read.iter().find(|f| &f.path == p))
    {
        if let Some(block) = f.root.get("env").and_then(Value::as_object) {
            overlay(&mut env, block, |_, _| true);
            sources.push(f.path.display().to_string());
        }
    }
    for f in read.iter().filter(|f| Some(&f.path) != env_file.as_ref()) {
        if let Some(block) = f.root.get("env").and_then(Value::as_object) {
            overlay(&mut env, block, turns_off);
        }
    }
    check_hook_ca_cert(&env, out);
    check_telemetry_env(&env, &sources.join(" + "), config, &hint, out);
}

/// The variable naming the private CA the command hook trusts.
const CA_CERT_VAR: &str = "CCOTEL_CA_CERT";

/// A CA file the hook cannot read makes it spool every event: say so here,
/// since the hook itself stays silent.
fn check_hook_ca_cert(env: &BTreeMap<String, String>, out: &mut Report) {
    let Some(path) = env.get(CA_CERT_VAR).filter(|v| !v.is_empty()) else {
        return;
    };
    let mut roots = rustls::RootCertStore::empty();
    match super::hook_http::add_ca_certs(&mut roots, Path::new(path)) {
        Ok(n) => out.ok(format!(
            "Hook TLS: {CA_CERT_VAR} {path} holds {n} certificate(s), trusted besides the public roots"
        )),
        Err(e) => out.fail(
            format!("Hook TLS: {e}; the command hook spools every https:// event"),
            format!("point {CA_CERT_VAR} at a PEM file of the CA that signed ccotel's certificate"),
        ),
    }
}

/// Copies `env` entries that `keep` accepts into `into`.
fn overlay(
    into: &mut BTreeMap<String, String>,
    block: &Map<String, Value>,
    keep: impl Fn(&str, &str) -> bool,
) {
    for (k, v) in block {
        if let Some(v) = settings::env_value_text(v) {
            if keep(k, &v) {
                into.insert(k.clone(), v);
            }
        }
    }
}

/// Whether a project-level value is one Claude Code honours: one that turns
/// something off.
fn turns_off(key: &str, value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    (key.starts_with("OTEL_") && key.ends_with("_EXPORTER") && v == "none")
        || (key == "CLAUDE_CODE_ENABLE_TELEMETRY"
            && matches!(v.as_str(), "0" | "false" | "no" | "off"))
}

fn check_telemetry_env(
    env: &BTreeMap<String, String>,
    sources: &str,
    config: &Config,
    hint: &str,
    out: &mut Report,
) {
    let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if !get("CLAUDE_CODE_ENABLE_TELEMETRY").is_some_and(settings::is_truthy) {
        out.fail(
            format!("Claude Code telemetry: CLAUDE_CODE_ENABLE_TELEMETRY is not on (in {sources})"),
            format!(
                "{hint}, or `export CLAUDE_CODE_ENABLE_TELEMETRY=1` before starting Claude Code"
            ),
        );
        return;
    }
    let exports_otlp = |signal: &str| {
        get(&format!("OTEL_{signal}_EXPORTER"))
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("otlp")))
    };
    let signals: Vec<&str> = ["LOGS", "METRICS", "TRACES"]
        .into_iter()
        .filter(|s| exports_otlp(s))
        .collect();
    if signals.is_empty() {
        out.fail(
            format!("Claude Code telemetry: none of OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER is `otlp` (in {sources})"),
            hint,
        );
        return;
    }
    let mut wrong = Vec::new();
    for signal in &signals {
        let protocol = get(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"))
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or("http/protobuf");
        let listen = if protocol.trim() == "grpc" {
            config.grpc_addr()
        } else {
            config.http_addr()
        };
        match get(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            Some(url) if reaches(url, listen) => {}
            Some(url) => wrong.push(format!(
                "{} goes to {url} ({protocol}), ccotel listens on {}",
                signal.to_ascii_lowercase(),
                connect_addr(listen)
            )),
            None => wrong.push(format!(
                "{}: OTEL_EXPORTER_OTLP_ENDPOINT is not set",
                signal.to_ascii_lowercase()
            )),
        }
    }
    if !wrong.is_empty() {
        out.fail(
            format!("Claude Code telemetry (in {sources}): {}", wrong.join("; ")),
            hint,
        );
        return;
    }
    out.ok(format!(
        "Claude Code telemetry: {} go to ccotel (in {sources})",
        signals
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !signals.contains(&"LOGS") {
        out.warn(
            "Claude Code telemetry: OTEL_LOGS_EXPORTER is not `otlp`, so tokens and cost per model call are missing",
            hint,
        );
    }
    if signals.contains(&"TRACES")
        && !get("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA")
            .or_else(|| get("ENABLE_ENHANCED_TELEMETRY_BETA"))
            .is_some_and(settings::is_truthy)
    {
        out.warn(
            "Claude Code telemetry: CLAUDE_CODE_ENHANCED_TELEMETRY_BETA is off, so Claude Code sends no spans (no time to first token, retries or blocked time)",
            hint,
        );
    }
}

fn check_exporters(config: &Config, out: &mut Report) {
    if config.exporters.is_empty() {
        out.skip("exporters: none configured; sessions stay in the local store");
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            out.fail(
                format!("exporters: cannot start an async runtime to test them: {e}"),
                "check the process limits (threads, file descriptors)",
            );
            return;
        }
    };
    for exporter in &config.exporters {
        let outcome = runtime.block_on(probe(exporter));
        let label = format!(
            "exporter {:?} ({}, {})",
            exporter.name,
            kind_name(exporter.kind),
            protocol_name(exporter.protocol())
        );
        match outcome {
            Probe::Accepted(what) => out.ok(format!("{label}: {what}")),
            Probe::Doubtful(what, fix) => out.warn(format!("{label}: {what}"), fix),
            Probe::Refused(what, fix) => out.fail(format!("{label}: {what}"), fix),
        }
    }
}

fn kind_name(k: ExporterKind) -> &'static str {
    match k {
        ExporterKind::Otlp => "otlp",
        ExporterKind::Braintrust => "braintrust",
        ExporterKind::Honeycomb => "honeycomb",
        ExporterKind::Datadog => "datadog",
        ExporterKind::Grafana => "grafana",
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
        Protocol::HttpJson => "http/json",
    }
}

/// The answer to one test export.
enum Probe {
    Accepted(String),
    /// Reachable and authenticated, but it refused the empty request.
    Doubtful(String, String),
    Refused(String, String),
}

const UNREACHABLE: &str = "is the backend reachable? Check the endpoint, DNS, proxy and firewall; ccotel queues data on disk meanwhile";
const BAD_KEY: &str = "check the API key (`api_key`, or its environment variable for presets) and that it may write to this project or dataset";

/// The signal to test: traces if the exporter takes them, else metrics,
/// else logs; with the path it is sent to.
fn probe_signal(exporter: &ExporterConfig) -> (Signal, &'static str) {
    let has = |s: Signal| exporter.signals.contains(&s);
    if has(Signal::Traces) || has(Signal::NativeTraces) || exporter.signals.is_empty() {
        (Signal::Traces, "/v1/traces")
    } else if has(Signal::Metrics) {
        (Signal::Metrics, "/v1/metrics")
    } else {
        (Signal::Logs, "/v1/logs")
    }
}

/// Sends an empty export request, as the exporter would send real data.
async fn probe(exporter: &ExporterConfig) -> Probe {
    let timeout = exporter.timeout.min(EXPORTER_TIMEOUT);
    let (signal, path) = probe_signal(exporter);
    let headers = exporter.headers_for(signal);
    let endpoint = exporter.endpoint.trim_end_matches('/');
    match exporter.protocol() {
        Protocol::Grpc => probe_grpc(endpoint, signal, &headers, timeout).await,
        protocol => {
            let url = format!("{endpoint}{path}");
            probe_http(&url, protocol == Protocol::HttpJson, &headers, timeout).await
        }
    }
}

async fn probe_http(
    url: &str,
    json: bool,
    headers: &[(String, String)],
    timeout: Duration,
) -> Probe {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("ccotel/", env!("CARGO_PKG_VERSION"), " doctor"))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return Probe::Refused(
                format!("cannot build an HTTP client: {e}"),
                "report this as a bug".into(),
            )
        }
    };
    // An empty Export*ServiceRequest encodes to zero bytes in protobuf.
    let (content_type, body): (&str, &[u8]) = if json {
        ("application/json", b"{}")
    } else {
        ("application/x-protobuf", b"")
    };
    let mut request = client
        .post(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Probe::Refused(
                format!("POST {url}: no answer within {}s", timeout.as_secs_f32()),
                UNREACHABLE.into(),
            )
        }
        Err(e) => {
            return Probe::Refused(
                format!("POST {url}: {}", error_chain(&e)),
                UNREACHABLE.into(),
            )
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let detail = snippet(&text);
    let said = if detail.is_empty() {
        format!("POST {url} → {status}")
    } else {
        format!("POST {url} → {status}: {detail}")
    };
    match status.as_u16() {
        200..=299 => Probe::Accepted(format!("POST {url} → {status}")),
        401 | 403 => Probe::Refused(said, BAD_KEY.into()),
        404 | 405 => Probe::Refused(
            said,
            format!("check the endpoint: ccotel appends {} to it", url.rsplit_once("/v1/").map(|(_, s)| format!("/v1/{s}")).unwrap_or_default()),
        ),
        400 | 415 | 422 => Probe::Doubtful(
            said,
            "the backend is reachable and took the credentials but refused an empty test request; watch `ccotel serve`'s log and /healthz for real exports".into(),
        ),
        _ => Probe::Refused(
            said,
            "the backend is failing or throttling; ccotel retries and queues meanwhile, try again later".into(),
        ),
    }
}

async fn probe_grpc(
    endpoint: &str,
    signal: Signal,
    headers: &[(String, String)],
    timeout: Duration,
) -> Probe {
    use opentelemetry_proto::tonic::collector::{
        logs::v1::{logs_service_client::LogsServiceClient, ExportLogsServiceRequest},
        metrics::v1::{metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest},
        trace::v1::{trace_service_client::TraceServiceClient, ExportTraceServiceRequest},
    };
    use tonic::metadata::{MetadataKey, MetadataValue};
    let channel = match tonic::transport::Endpoint::from_shared(endpoint.to_string()) {
        Ok(e) => e.timeout(timeout).connect_timeout(timeout),
        Err(e) => {
            return Probe::Refused(
                format!("invalid endpoint {endpoint:?}: {e}"),
                "fix `endpoint` in the config".into(),
            )
        }
    };
    let channel = match channel.connect().await {
        Ok(c) => c,
        Err(e) => {
            return Probe::Refused(
                format!("gRPC {endpoint}: cannot connect: {}", error_chain(&e)),
                UNREACHABLE.into(),
            )
        }
    };
    fn request<T>(body: T, headers: &[(String, String)], timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(body);
        r.set_timeout(timeout);
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                MetadataValue::try_from(v.as_str()),
            ) {
                r.metadata_mut().insert(k, v);
            }
        }
        r
    }
    let result = match signal {
        Signal::Metrics => MetricsServiceClient::new(channel)
            .export(request(
                ExportMetricsServiceRequest::default(),
                headers,
                timeout,
            ))
            .await
            .map(|_| ()),
        Signal::Logs => LogsServiceClient::new(channel)
            .export(request(
                ExportLogsServiceRequest::default(),
                headers,
                timeout,
            ))
            .await
            .map(|_| ()),
        _ => TraceServiceClient::new(channel)
            .export(request(
                ExportTraceServiceRequest::default(),
                headers,
                timeout,
            ))
            .await
            .map(|_| ()),
    };
    let service = match signal {
        Signal::Metrics => "MetricsService",
        Signal::Logs => "LogsService",
        _ => "TraceService",
    };
    match result {
        Ok(()) => Probe::Accepted(format!("gRPC {endpoint} {service}/Export → OK")),
        Err(status) => {
            let said = format!(
                "gRPC {endpoint} {service}/Export → {:?}: {}",
                status.code(),
                snippet(status.message())
            );
            match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Probe::Refused(said, BAD_KEY.into()),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => Probe::Refused(said, UNREACHABLE.into()),
                tonic::Code::Unimplemented => Probe::Refused(
                    said,
                    "this endpoint does not serve OTLP over gRPC; check `endpoint`, `protocol` and `signals`".into(),
                ),
                tonic::Code::InvalidArgument => Probe::Doubtful(
                    said,
                    "the backend is reachable but refused an empty test request; watch `ccotel serve`'s log and /healthz for real exports".into(),
                ),
                _ => Probe::Refused(said, "the backend is failing or throttling; ccotel retries and queues meanwhile, try again later".into()),
            }
        }
    }
}

/// An error with its causes, which is where "connection refused" lives.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// The first 200 characters of a reply body, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_reach_listeners_by_port_and_loopback_name() {
        let lo: SocketAddr = "127.0.0.1:4318".parse().unwrap();
        assert!(reaches("http://127.0.0.1:4318", lo));
        assert!(reaches("http://localhost:4318/v1/hooks", lo));
        assert!(!reaches("http://127.0.0.1:4317", lo));
        assert!(!reaches("http://collector:4318", lo));
        let any: SocketAddr = "0.0.0.0:4318".parse().unwrap();
        assert!(reaches("http://localhost:4318", any));
        assert!(!reaches("not a url", lo));
    }

    #[test]
    fn project_files_only_turn_things_off() {
        assert!(turns_off("OTEL_LOGS_EXPORTER", "none"));
        assert!(turns_off("CLAUDE_CODE_ENABLE_TELEMETRY", "0"));
        assert!(!turns_off("CLAUDE_CODE_ENABLE_TELEMETRY", "1"));
        assert!(!turns_off("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x"));
    }

    #[test]
    fn the_probe_prefers_traces() {
        let mut e = ExporterConfig::otlp(
            "x",
            "http://h",
            Protocol::HttpProtobuf,
            vec![Signal::Metrics, Signal::Logs],
        );
        assert_eq!(probe_signal(&e).1, "/v1/metrics");
        e.signals = vec![Signal::Logs, Signal::Traces];
        assert_eq!(probe_signal(&e).1, "/v1/traces");
    }
}
