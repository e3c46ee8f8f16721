//! `xrun check`: prints what this host gives a container runtime, a line a
//! topic with the fix for each shortfall; exit 1 when a default container
//! cannot run here.

use std::path::Path;

use anyhow::Result;

pub fn run(root: &Path) -> Result<i32> {
    let findings = crate::check::run(&crate::check::Host::real(root));
    let text: String = findings.iter().map(|f| format!("{f}\n")).collect();
    crate::output::print(&text)?;
    Ok(crate::check::exit_code(&findings))
}
