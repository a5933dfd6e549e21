//! Types shared by every stage: the internal event, hook events, and ids.

pub mod event;
pub mod hook;
pub mod span;

pub use event::{Event, Payload, Signal, Transport};
pub use hook::{HookEvent, HookEventName};
