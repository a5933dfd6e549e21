use ccotel::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Hook(args) => {
            // The hook path runs on every tool call: no runtime, no logging set-up,
            // and exit 0 whatever happens so Claude Code is never blocked.
            let _ = std::panic::catch_unwind(|| ccotel::cli::hook::run(&args));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            ccotel::telemetry::init_logging();
            match ccotel::cli::serve::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ccotel: error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
