//! The one integration-test binary.

mod cli;
mod delivery;
mod hook_client;
mod merge;
mod phoenix;
mod receive;
mod support;
