//! The merge engine: one task that owns all session state. It forwards native
//! metrics and logs unchanged, and folds hooks, logs, native spans and
//! transcripts into one trace per session.
//!
//! - [`session`]: the facts of one session, filled by every source;
//! - [`transcript`]: transcripts as a source;
//! - [`render`]: facts → the session tree (pure);
//! - [`engine`]: when spans are complete and exported, idle sessions, restart;
//! - [`ids`]: deterministic trace and span ids;
//! - `finished`: the exported-span ids of recently finished sessions.

pub mod attrs;
pub mod engine;
mod finished;
pub mod ids;
pub mod render;
pub mod route;
pub mod session;
mod sid;
pub mod transcript;

pub use engine::{run, Engine};
