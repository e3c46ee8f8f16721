//! cgroups: placing the container and applying `linux.resources`.
//!
//! This is the seam the cgroups work fills in (v2, v1 and hybrid hosts,
//! CLONE_INTO_CGROUP placement, pause/resume/update/events). Until then the
//! container stays in the runtime's own cgroup and no limit is applied; that
//! is said at debug level, never silently pretended otherwise.

use oci_spec::runtime::Spec;

/// Where the container's init will be placed. `None` for now: clone3 gets no
/// CLONE_INTO_CGROUP and the child inherits the caller's cgroup.
pub struct Placement {
    pub clone_into: Option<std::os::fd::RawFd>,
}

pub fn prepare(spec: &Spec) -> Placement {
    let linux = spec.linux().as_ref();
    if linux.and_then(|l| l.resources().as_ref()).is_some() {
        crate::debug!("cgroups: linux.resources present but not applied (cgroup support not built yet)");
    }
    if let Some(path) = linux.and_then(|l| l.cgroups_path().as_ref()) {
        crate::debug!(
            "cgroups: cgroupsPath {} not used yet; the container stays in the runtime's cgroup",
            path.display()
        );
    }
    Placement { clone_into: None }
}
