//! `ccotel hook`: placeholder, implemented separately.
use super::HookArgs;

/// Forwards one hook event from stdin. Never fails.
pub fn run(_args: &HookArgs) {}
