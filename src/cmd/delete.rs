//! `xrun delete`: remove a stopped or created (or with --force any)
//! container and everything it owned, then run the poststop hooks.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use anyhow::{bail, Result};

use crate::state::{self, ContainerDir, Status};
use crate::{hooks, sys};

pub fn run(root: &Path, id: &str, force: bool) -> Result<i32> {
    let dir = match ContainerDir::open(root, id) {
        Ok(d) => d,
        // runc: deleting a missing container with --force is not an error.
        Err(_) if force && !root.join(id).join("state.json").exists() && state::validate_id(id).is_ok() => {
            let _ = std::fs::remove_dir_all(root.join(id));
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    destroy(dir, force)?;
    Ok(0)
}

/// Kills what is left (when allowed), runs poststop, removes the state.
pub fn destroy(dir: ContainerDir, force: bool) -> Result<()> {
    let saved = dir.load()?;
    if saved.creating {
        return remove_failed_create(dir, saved);
    }
    match dir.status(&saved) {
        Status::Stopped => {}
        // A created container's process never ran: runc, crun and youki
        // delete it without --force, and containerd's shim relies on that
        // (the spec's wording would refuse it).
        Status::Created => kill_and_wait(&saved)?,
        _ if force => kill_and_wait(&saved)?,
        status => bail!("cannot delete container {} that is not stopped: {status}", saved.id),
    }
    crate::container::processes::kill_leftovers(&saved);
    if saved.host_mounts {
        crate::rootfs::unmount_below(&saved.rootfs);
    }
    let json = saved.hook_json(Status::Stopped);
    hooks::run_all_warn(
        "poststop",
        saved.hooks.as_ref().and_then(|h| h.poststop().as_ref()),
        &json,
    );
    dir.remove()
}

/// A create that died midway (we hold the lock it held): kill its init if
/// it was cloned (by PID and start time), remove the part of its cgroup it
/// made and its mounts in our namespace. It never became a container, so
/// no poststop hook runs, as for a create that failed cleanly.
fn remove_failed_create(dir: ContainerDir, mut saved: state::Saved) -> Result<()> {
    // A cgroup that existed before the create may hold others' processes.
    saved.cgroup = saved.cgroup.as_ref().map(crate::cgroups::Record::only_created);
    kill_and_wait(&saved)?;
    crate::container::processes::kill_leftovers(&saved);
    if saved.host_mounts {
        crate::rootfs::unmount_below(&saved.rootfs);
    }
    dir.remove()
}

/// SIGKILL to the init (which takes its whole pid namespace with it) and
/// to the rest of its cgroup, thaw it if it was paused (a frozen process
/// dies only once thawed), and wait, bounded, until the init is gone.
fn kill_and_wait(saved: &state::Saved) -> Result<()> {
    let Ok(pidfd) = sys::pidfd_open(saved.pid) else {
        return Ok(());
    };
    if !state::init_alive(saved.pid, saved.init_start_time) {
        return Ok(());
    }
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    crate::container::processes::signal_all(saved, libc::SIGKILL);
    if let Some(record) = saved.cgroup.as_ref().filter(|r| crate::cgroups::is_frozen(r)) {
        crate::cgroups::set_frozen(record, false)?;
    }
    let mut pfd = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if sys::poll(&mut pfd, 10_000)? == 0 {
        bail!("container init {} did not exit after SIGKILL", saved.pid);
    }
    Ok(())
}
