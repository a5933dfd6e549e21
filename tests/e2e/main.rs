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
    ($($name:ident: $scenario:ident, $hooks:ident, $otlp:ident, $intervals:ident, $export:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run_and_check(
                stringify!($name),
                Case {
                    scenario: scenario::$scenario,
                    hooks: Hooks::$hooks,
                    otlp: Otlp::$otlp,
                    intervals: Intervals::$intervals,
                    export: Export::$export,
                },
            )
            .await;
        }
    )*};
}

e2e! {
    // name: scenario, hooks, Claude Code's OTLP, its export intervals, ccotel → backend
    tools_command_hooks_http_json: tools, Command, HttpJson, Fast, HttpProtobuf;
    tools_http_hooks_grpc: tools, Http, Grpc, Fast, HttpJson;
    tools_no_hooks_http_protobuf: tools, None, HttpProtobuf, Fast, Grpc;
    failure_command_hooks_http_protobuf: failure, Command, HttpProtobuf, Fast, HttpProtobuf;
    failure_no_hooks_http_json: failure, None, HttpJson, Fast, HttpJson;
    subagent_command_hooks_grpc_default_intervals: subagent, Command, Grpc, Default, Grpc;
    subagent_http_hooks_no_otlp: subagent, Http, Off, Fast, HttpJson;
    parallel_subagents_command_hooks_http_json: parallel_subagents, Command, HttpJson, Fast, HttpProtobuf;
    parallel_subagents_no_hooks_grpc: parallel_subagents, None, Grpc, Fast, HttpJson;
    multi_turn_http_hooks_http_protobuf_default_intervals: multi_turn, Http, HttpProtobuf, Default, Grpc;
    resume_command_hooks_grpc: resume, Command, Grpc, Fast, HttpProtobuf;
    denied_command_hooks_http_json: denied, Command, HttpJson, Fast, HttpJson;
    denied_no_hooks_http_protobuf: denied, None, HttpProtobuf, Fast, Grpc;
    api_retry_http_hooks_http_json: api_retry, Http, HttpJson, Fast, Grpc;
}
