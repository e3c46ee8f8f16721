//! seccomp: turning `linux.seccomp` into a BPF filter and loading it as the
//! last step before execve. The filter compiler lands with its own work item;
//! until then a config that asks for a filter is refused, because running the
//! container without the restriction it asked for would silently weaken it.

use anyhow::{bail, Result};
use oci_spec::runtime::Spec;

/// Checks, before anything is created, that the requested filter can be
/// honoured.
pub fn check_supported(spec: &Spec) -> Result<()> {
    if spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).is_some() {
        bail!(
            "linux.seccomp is not supported by this xrun build yet; remove it from config.json to run without a filter"
        );
    }
    Ok(())
}
