use ccotel::cli::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The hook runs on every tool call: it skips clap (building the parser
    // for every subcommand costs more than the rest of the hook), and exits 0
    // whatever happens so Claude Code is never blocked. `ccotel-hook` runs
    // the same code.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "hook") {
        ccotel::cli::hook::main("ccotel hook", args);
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match cli.command {
        // `hook` is handled above; this arm only completes the match.
        Command::Hook(args) => {
            ccotel::cli::hook::run_silently(&args, "ccotel hook");
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
