//! The one integration-test binary.

mod delivery;
mod hook_client;
mod merge;
mod receive;
mod support;
