//! `ccotel doctor`: placeholder, implemented separately.
use super::DoctorArgs;

/// Checks the set-up and says what to fix.
pub fn run(_args: &DoctorArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
