//! `xrun check`: prints what this host gives a container runtime, a line a
//! topic with the fix for each shortfall; exit 1 when a default container
//! cannot run here.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

pub fn run(root: &Path) -> Result<i32> {
    let findings = crate::check::run(&crate::check::Host::real(root));
    let mut out = std::io::stdout().lock();
    for f in &findings {
        // A reader that went away (`| head`) ends the listing, quietly.
        if writeln!(out, "{f}").is_err() {
            break;
        }
    }
    Ok(crate::check::exit_code(&findings))
}
