//! `xrun pause` / `xrun resume`: freeze and thaw every process of the
//! container through its cgroup.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cgroups;
use crate::state::{ContainerDir, Status};

/// runc's words for a container without a cgroup (rootless, not delegated).
const NO_FREEZER: &str = "cannot toggle freezer: cgroups not configured for container";

pub fn pause(root: &Path, id: &str) -> Result<i32> {
    let dir = ContainerDir::open(root, id)?;
    let saved = dir.load()?;
    match dir.status(&saved) {
        Status::Running | Status::Created => {}
        Status::Paused => bail!("container already paused"),
        _ => bail!("container not running"),
    }
    let record = saved.cgroup.as_ref().context(NO_FREEZER)?;
    cgroups::set_frozen(record, true)?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32> {
    let dir = ContainerDir::open(root, id)?;
    let saved = dir.load()?;
    if dir.status(&saved) != Status::Paused {
        bail!("container not paused");
    }
    let record = saved.cgroup.as_ref().context(NO_FREEZER)?;
    cgroups::set_frozen(record, false)?;
    Ok(0)
}
