//! The command line: one file per subcommand.

pub mod doctor;
pub mod hook;
pub mod hook_spool;
pub mod install;
pub mod serve;

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
    /// sent first by the next invocation that reaches the server.
    Hook(HookArgs),
    /// Add ccotel's hooks and telemetry settings to Claude Code's
    /// settings.json (merged with what is there, with a backup and a diff).
    Install(InstallArgs),
    /// Remove exactly what `ccotel install` added.
    Uninstall(InstallArgs),
    /// Check the config, the ports, Claude Code's settings and each exporter,
    /// and say how to fix what is wrong.
    Doctor(DoctorArgs),
}

/// Flags of `ccotel install` and `ccotel uninstall`.
#[derive(Debug, Args, Clone)]
pub struct InstallArgs {
    /// Which settings file: `user` (~/.claude/settings.json) or `project`
    /// (.claude/settings.json in the current directory).
    #[arg(long, value_enum, default_value_t = Scope::User)]
    pub scope: Scope,
    /// Use HTTP hooks where Claude Code sends them (command hooks elsewhere,
    /// such as SessionStart).
    #[arg(long)]
    pub http_hooks: bool,
    /// Where ccotel listens for OTLP/HTTP and hooks.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub endpoint: String,
    /// Settings file to edit instead of the one `--scope` picks.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Show the change without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Which Claude Code settings file to edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    User,
    Project,
}

/// Flags of `ccotel doctor`.
#[derive(Debug, Args, Clone, Default)]
pub struct DoctorArgs {
    /// Path to the config file `ccotel serve` uses.
    #[arg(long, short, env = "CCOTEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Claude Code settings file to check [default: ~/.claude/settings.json].
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

/// Flags of `ccotel hook`. Claude Code strips `OTEL_*` variables from hook
/// processes, so these read `CCOTEL_*` variables instead.
#[derive(Debug, Args, Clone)]
pub struct HookArgs {
    /// Where `ccotel serve` takes hook events.
    #[arg(
        long,
        env = "CCOTEL_HOOK_ENDPOINT",
        default_value = "http://127.0.0.1:4318/v1/hooks"
    )]
    pub endpoint: String,
    /// Total time budget for this invocation, in milliseconds; the command
    /// exits 0 by then whatever happens.
    #[arg(long, env = "CCOTEL_HOOK_TIMEOUT_MS", default_value_t = 300)]
    pub timeout_ms: u64,
    /// Where undeliverable events wait [default: <data dir>/ccotel/spool].
    #[arg(long, env = "CCOTEL_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
}
