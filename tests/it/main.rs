//! The one integration-test binary.

mod hook_client;
mod merge;
mod receive;
mod support;
