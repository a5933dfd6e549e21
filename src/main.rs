use ccotel::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A hook must never fail Claude Code or print: bad flags or
        // CCOTEL_* values on the hook path exit 0 silently.
        Err(e)
            if std::env::args().nth(1).as_deref() == Some("hook")
                && !matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
        {
            return ExitCode::SUCCESS;
        }
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Hook(args) => {
            // The hook path runs on every tool call: no runtime, no logging set-up,
            // and exit 0 whatever happens so Claude Code is never blocked.
            let _ = std::panic::catch_unwind(|| ccotel::cli::hook::run(&args));
            ExitCode::SUCCESS
        }
        Command::Install(args) => report(ccotel::cli::install::install(&args)),
        Command::Uninstall(args) => report(ccotel::cli::install::uninstall(&args)),
        Command::Doctor(args) => report(ccotel::cli::doctor::run(&args)),
        Command::Sessions(args) => report(ccotel::cli::query::sessions(&args)),
        Command::Show(args) => report(ccotel::cli::query::show(&args)),
        Command::Stats(args) => report(ccotel::cli::query::stats(&args)),
        Command::Tail(args) => report(ccotel::cli::query::tail(&args)),
        Command::Import(args) => report(ccotel::cli::import::run(&args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "ccotel", &mut std::io::stdout());
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

/// Prints an error the way every subcommand does, and picks the exit code.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccotel: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
