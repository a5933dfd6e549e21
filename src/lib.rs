//! ccotel receives everything Claude Code reports about a session and delivers
//! it as one trace per session.
//!
//! A map of the crate, in the order data flows:
//! - [`receive`]: the wire. OTLP/gRPC, OTLP/HTTP and hook events become one
//!   internal [`model::Event`] on one bounded channel.
//! - [`merge`]: the session state machine. Owns all per-session state and
//!   builds the session → turn → llm/tool tree.
//! - [`export`]: the fan-out to each backend, with its own queue and retries.
//! - [`config`]: file → `CCOTEL_*` environment → flags.
//! - [`cli`]: the subcommands; [`app`] wires a running server together.

pub mod app;
pub mod cli;
pub mod config;
pub mod export;
pub mod heap;
pub mod merge;
pub mod model;
pub mod query;
pub mod receive;
pub mod redact;
pub mod sched;
pub mod self_metrics;
pub mod store;
pub mod telemetry;
