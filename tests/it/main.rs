//! The one integration-test binary.

mod hook_client;
mod receive;
mod support;
