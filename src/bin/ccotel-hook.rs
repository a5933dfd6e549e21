//! `ccotel-hook`: the command hook alone, the same code as `ccotel hook`
//! ([`ccotel::cli::hook`]) in a binary of its own.
//!
//! Claude Code runs the hook on every tool call and waits for it, and most
//! of an invocation's cost is starting the process. This binary links only
//! what the hook reaches (std, rustls for `https://` endpoints) and none of
//! the server (no clap, tokio, tracing, SQLite), so it starts in a fraction
//! of the time `ccotel` takes. `ccotel install` uses it when it sits next to
//! `ccotel`; figures in BENCHMARKS.md, "`ccotel hook` end to end".

use std::process::ExitCode;

fn main() -> ExitCode {
    ccotel::cli::hook::main("ccotel-hook", std::env::args_os().skip(1));
    ExitCode::SUCCESS
}
