//! End to end: the real Claude Code CLI (2.1.328, `CLAUDE_BIN`), fully
//! offline against a scripted fake of the Anthropic API, sends its telemetry
//! and hooks to an in-process ccotel, which exports to a fake OTLP backend.
//! Each test is one run of the matrix; the checks are in [`check`].
//!
//! Without `CLAUDE_BIN` each test is skipped, unless `CI` is set, where it
//! fails. At most two Claude Code processes run at a time.
//! `CCOTEL_E2E_KEEP=1` keeps each run's scratch directory (HOME, config dir
//! with transcripts, working repository, ccotel's store).
//!
//! The matrix covers every scenario, every hook transport (command, HTTP,
//! none), every OTLP protocol of Claude Code (gRPC, http/protobuf, http/json,
//! and telemetry off), Claude Code's default export intervals, and every
//! protocol from ccotel to the backend, without the full cross product.

#[path = "../it/support/backend.rs"]
#[allow(dead_code)]
mod backend;
mod check;
mod claude;
mod fake_api;
mod run;
mod scenario;

use claude::{Hooks, Intervals, Otlp};
use run::{run_and_check, Case, Export};

macro_rules! e2e {
    ($name:ident, $scenario:path, $hooks:ident, $otlp:ident, $intervals:ident, $export:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_and_check(
                stringify!($name),
                Case {
                    scenario: $scenario,
                    hooks: Hooks::$hooks,
                    otlp: Otlp::$otlp,
                    intervals: Intervals::$intervals,
                    export: Export::$export,
                },
            )
            .await;
        }
    };
}

// name, scenario, hooks, Claude Code's OTLP, its intervals, ccotel → backend
e2e!(
    tools_command_hooks_http_json,
    scenario::tools,
    Command,
    HttpJson,
    Fast,
    HttpProtobuf
);
e2e!(
    tools_http_hooks_grpc,
    scenario::tools,
    Http,
    Grpc,
    Fast,
    HttpJson
);
e2e!(
    tools_no_hooks_http_protobuf,
    scenario::tools,
    None,
    HttpProtobuf,
    Fast,
    Grpc
);
e2e!(
    failure_command_hooks_http_protobuf,
    scenario::failure,
    Command,
    HttpProtobuf,
    Fast,
    HttpProtobuf
);
e2e!(
    subagent_command_hooks_grpc_default_intervals,
    scenario::subagent,
    Command,
    Grpc,
    Default,
    Grpc
);
e2e!(
    subagent_http_hooks_no_otlp,
    scenario::subagent,
    Http,
    Off,
    Fast,
    HttpJson
);
e2e!(
    parallel_subagents_command_hooks_http_json,
    scenario::parallel_subagents,
    Command,
    HttpJson,
    Fast,
    HttpProtobuf
);
e2e!(
    parallel_subagents_no_hooks_grpc,
    scenario::parallel_subagents,
    None,
    Grpc,
    Fast,
    HttpJson
);
e2e!(
    multi_turn_http_hooks_http_protobuf_default_intervals,
    scenario::multi_turn,
    Http,
    HttpProtobuf,
    Default,
    Grpc
);
e2e!(
    resume_command_hooks_grpc,
    scenario::resume,
    Command,
    Grpc,
    Fast,
    HttpProtobuf
);
e2e!(
    denied_command_hooks_http_json,
    scenario::denied,
    Command,
    HttpJson,
    Fast,
    HttpJson
);
e2e!(
    api_retry_http_hooks_http_json,
    scenario::api_retry,
    Http,
    HttpJson,
    Fast,
    Grpc
);
