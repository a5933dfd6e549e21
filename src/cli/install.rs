//! `ccotel install` / `ccotel uninstall`: placeholder, implemented separately.
use super::InstallArgs;

/// Adds ccotel's hooks and telemetry settings.
pub fn install(_args: &InstallArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Removes what `install` added.
pub fn uninstall(_args: &InstallArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
