//! The one integration-test binary.

mod cli;
pub mod delivery;
mod hardening;
mod hook_client;
mod install;
mod merge;
mod phoenix;
mod receive;
mod support;
