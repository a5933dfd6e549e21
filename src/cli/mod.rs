//! The command line: one file per subcommand.

pub mod doctor;
pub mod hook;
pub mod hook_http;
pub mod hook_spool;
pub mod import;
pub mod install;
pub mod output;
pub mod query;
pub mod serve;
pub mod settings;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// ccotel: one trace per Claude Code session, delivered to Braintrust and any
/// OTLP backend.
#[derive(Debug, Parser)]
#[command(name = "ccotel", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive Claude Code's OTLP metrics, logs, traces and hook events; merge
    /// them into one trace per session and forward everything to the
    /// configured exporters.
    Serve(ServeArgs),
    /// Forward one hook event (JSON on stdin) to a running `ccotel serve`.
    /// Meant to be called by Claude Code as a command hook: prints nothing and
    /// always exits 0 within the timeout; undeliverable events are spooled and
    /// sent first by the next invocation that reaches the server. The
    /// `ccotel-hook` binary does the same and starts faster.
    Hook(HookArgs),
    /// Add ccotel's hooks and telemetry settings to Claude Code's
    /// settings.json (merged with what is there, with a backup and a diff).
    Install(InstallArgs),
    /// Remove exactly what `ccotel install` added.
    Uninstall(InstallArgs),
    /// Check the config, the ports, Claude Code's settings and each exporter,
    /// and say how to fix what is wrong.
    Doctor(DoctorArgs),
    /// Recent sessions: start, duration, project, turns, tool calls, tokens,
    /// cost and errors.
    Sessions(SessionsArgs),
    /// One session as a tree: turns, model and tool calls with durations,
    /// tokens, cost and errors, subagents under their Agent call.
    Show(ShowArgs),
    /// Cost, tokens, tool calls and error rates, by day, model, project or tool.
    Stats(StatsArgs),
    /// Spans as they complete, live (needs a running `ccotel serve`).
    Tail(TailArgs),
    /// Backfill past sessions from Claude Code transcripts into the store.
    Import(ImportArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

/// Where queries are answered.
#[derive(Debug, Args, Clone, Default)]
pub struct QueryArgs {
    /// Ask a ccotel's query API (its gRPC port, e.g. http://gateway:4317)
    /// instead of the local store.
    #[arg(long, env = "CCOTEL_SERVER")]
    pub server: Option<String>,
    /// The server's token (server.token), for `--server`.
    #[arg(long, env = "CCOTEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for an https:// server, besides the public
    /// roots (a gateway with a private CA).
    #[arg(long, env = "CCOTEL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The local store directory [default: the user's data dir].
    #[arg(long, env = "CCOTEL_STORE_PATH")]
    pub store: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Filters shared by the query commands.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only sessions active since this long ago (`2h`, `7d`) or this date
    /// (`2026-11-01`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only sessions whose project directory contains this text.
    #[arg(long)]
    pub project: Option<String>,
    /// Only sessions that used a model containing this text.
    #[arg(long)]
    pub model: Option<String>,
}

/// Flags of `ccotel sessions`.
#[derive(Debug, Args, Clone, Default)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many sessions.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Flags of `ccotel show`.
#[derive(Debug, Args, Clone, Default)]
pub struct ShowArgs {
    /// The session id, or a unique prefix of it.
    pub session: String,
    #[command(flatten)]
    pub query: QueryArgs,
}

/// Flags of `ccotel stats`.
#[derive(Debug, Args, Clone, Default)]
pub struct StatsArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Group by day, model, project or tool.
    #[arg(long, default_value = "day", value_parser = ["day", "model", "project", "tool"])]
    pub by: String,
}

/// Flags of `ccotel tail`.
#[derive(Debug, Args, Clone, Default)]
pub struct TailArgs {
    /// Only this session (id or prefix).
    #[arg(long)]
    pub session: Option<String>,
    /// The ccotel to watch (its gRPC port).
    #[arg(long, env = "CCOTEL_SERVER", default_value = "http://127.0.0.1:4317")]
    pub server: String,
    /// The server's token (server.token).
    #[arg(long, env = "CCOTEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for an https:// server, besides the public
    /// roots (a gateway with a private CA).
    #[arg(long, env = "CCOTEL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Print one JSON object per span.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ccotel import`.
#[derive(Debug, Args, Clone, Default)]
pub struct ImportArgs {
    /// A transcript file or a directory of them [default: ~/.claude/projects].
    pub path: Option<PathBuf>,
    /// Also send the imported sessions to the configured exporters.
    #[arg(long)]
    pub export: bool,
    /// Config file (for `--export` and the store path).
    #[arg(long, short, env = "CCOTEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store directory [default: the config's, or the user's data dir].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Print a JSON summary instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ccotel install` and `ccotel uninstall`. `uninstall` takes the
/// same flags so that it removes exactly what the matching `install` added:
/// the same `--endpoint` (HTTP hooks and `OTEL_EXPORTER_OTLP_ENDPOINT` are
/// recognised by it) and `--content` to remove the content switches.
#[derive(Debug, Args, Clone)]
pub struct InstallArgs {
    /// Which settings file: `user` ($CLAUDE_CONFIG_DIR/settings.json, else
    /// ~/.claude/settings.json) or `project` (.claude/settings.json in the
    /// current directory; hooks only, since Claude Code ignores telemetry
    /// variables there except to turn telemetry off).
    #[arg(long, value_enum, default_value_t = Scope::User)]
    pub scope: Scope,
    /// Use HTTP hooks where Claude Code sends them, which saves a process
    /// start per event (SessionStart keeps a command hook: Claude Code sends
    /// no HTTP hook for it).
    #[arg(long)]
    pub http_hooks: bool,
    /// Where ccotel listens for OTLP/HTTP and hooks.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub endpoint: String,
    /// Also turn on Claude Code's content switches (OTEL_LOG_USER_PROMPTS,
    /// OTEL_LOG_TOOL_DETAILS, OTEL_LOG_ASSISTANT_RESPONSES). Off by default
    /// because prompts and tool input can be private.
    #[arg(long)]
    pub content: bool,
    /// Settings file to edit instead of the one `--scope` picks.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Show the change as a diff without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Which Claude Code settings file to edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    User,
    Project,
}

/// Flags of `ccotel doctor`. The address flags mirror `ccotel serve`'s, so
/// the check looks where that server listens.
#[derive(Debug, Args, Clone, Default)]
pub struct DoctorArgs {
    /// Path to the config file `ccotel serve` uses.
    #[arg(long, short, env = "CCOTEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// OTLP/gRPC address `ccotel serve` was given with --grpc.
    #[arg(long)]
    pub grpc: Option<String>,
    /// OTLP/HTTP and hooks address `ccotel serve` was given with --http.
    #[arg(long)]
    pub http: Option<String>,
    /// Claude Code settings file to check [default: the user settings,
    /// $CLAUDE_CONFIG_DIR/settings.json or ~/.claude/settings.json, plus the
    /// project's .claude/settings.json and .claude/settings.local.json].
    #[arg(long)]
    pub settings: Option<PathBuf>,
}

/// Flags of `ccotel serve`. Each overrides the config file and `CCOTEL_*`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Path to a TOML config file.
    #[arg(long, short, env = "CCOTEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long)]
    pub grpc: Option<String>,
    /// OTLP/HTTP and hooks listen address [default: 127.0.0.1:4318].
    #[arg(long)]
    pub http: Option<String>,
    /// Directory for the store and the queues [default: the user's data dir].
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// Flags of `ccotel hook` and `ccotel-hook`. Claude Code strips `OTEL_*`
/// variables from hook processes, so these read `CCOTEL_*` variables instead.
///
/// The hook parses them by hand ([`hook::parse_args`]) to start fast; this
/// clap definition is what `ccotel help hook` and the completions show, and
/// a test keeps the two in step.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
pub struct HookArgs {
    /// Where `ccotel serve` takes hook events.
    #[arg(long, env = "CCOTEL_HOOK_ENDPOINT", default_value = hook::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Total time budget for this invocation, in milliseconds; the command
    /// exits 0 by then whatever happens.
    #[arg(long, env = "CCOTEL_HOOK_TIMEOUT_MS", default_value_t = hook::DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
    /// Where undeliverable events wait [default: <data dir>/ccotel/spool].
    #[arg(long, env = "CCOTEL_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// The token ccotel was given (server.token), sent as a bearer token.
    #[arg(long, env = "CCOTEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for an https:// endpoint, besides the
    /// public roots (a gateway with a private CA).
    #[arg(long, env = "CCOTEL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}
