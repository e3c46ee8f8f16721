//! `xrun exec`, parent side: a new process in an existing container. It is
//! cloned and set up by the same child code as the container's init
//! (`init::run`), with a plan that joins what create made: the init's
//! namespaces (pid and time by the parent around clone3, user first and
//! mount last by the child), its cgroup, and its root.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Process;

use super::{spawn, Launch, Mode, Root, Sockets};
use crate::config::Bundle;
use crate::state::{self, ContainerDir, Saved};
use crate::{cgroups, console, namespaces, process, seccomp, sys};

/// An exec'd process, set up and waiting for `release_over_sync`.
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub sync: OwnedFd,
    /// The pty master (process.terminal) when no console socket took it.
    pub console: Option<OwnedFd>,
}

/// Takes the container's lock (`dir`) only while it opens the init's
/// namespaces, root and cgroup: once those handles are held, the process
/// may sit frozen in a paused container until `resume`, which needs the
/// lock.
pub fn start(
    dir: ContainerDir,
    saved: &Saved,
    bundle: &Bundle,
    spec_process: &Process,
    preserve_fds: u32,
    sockets: Sockets,
    sub_cgroup: Option<&cgroups::sub::Sub>,
) -> Result<Started> {
    crate::phase!("parse");
    let plan = process::Plan::from_spec(spec_process)?;
    crate::rootless::check_process(&plan.additional_gids)?;
    let spec = &bundle.spec;
    let ns = namespaces::Plan::for_exec(saved.pid, spec)?;
    let root_path = PathBuf::from(format!("/proc/{}/root", saved.pid));
    let root = open_root(&root_path)?;
    // The init may have died, and its pid been reused, since the status
    // check: what was opened above must belong to the container.
    if !state::init_alive(saved.pid, saved.init_start_time) {
        bail!("cannot exec in a stopped container");
    }
    // --cgroup: a sub-cgroup of the container's; without it, on v2, the
    // init's current cgroup if the container's cannot take the process.
    let sub_record = match (&saved.cgroup, sub_cgroup) {
        (Some(record), Some(sub)) => Some(cgroups::sub::target(record, sub, cgroups::layout::Layout::detect)?),
        _ => None,
    };
    let record = sub_record.as_ref().or(saved.cgroup.as_ref());
    let cgroup_fallback_init = sub_cgroup.is_none().then_some(saved.pid);
    let clone_into = match record {
        Some(record) => cgroups::sub::open_for_clone(record, cgroup_fallback_init)?,
        None => None,
    };
    drop(dir);
    let personality = process::attrs::personality_of(spec)?;
    let mut launch = Launch {
        id: saved.id.clone(),
        mode: Mode::Exec,
        bundle,
        ns,
        process: Some(plan),
        root: Root::Join(root),
        child_sync: -1,
        fifo_fd: -1,
        preserve_fds,
        cgroup_fallback_init,
        no_new_keyring: false,
        has_runtime_hooks: false,
        hook_state: saved.clone(),
        seccomp: seccomp::from_spec(spec)?,
        personality,
        oom_score_adj: spec_process.oom_score_adj(),
        // The container's /dev/console stays the init's.
        console: console::Plan::from_process(spec_process, false),
        systemd: None,
        self_join: Vec::new(),
        self_join_late: None,
        cgroups_after_clone: false,
        lsm: process::lsm::ExecLabels::new(
            spec_process.apparmor_profile().as_deref(),
            spec_process.selinux_label().as_deref(),
            &process::lsm::Host::real(),
        ),
    };
    let (pid, pidfd, sync, console) = spawn(&mut launch, record, clone_into, sockets, None, None)?;
    Ok(Started {
        pid,
        pidfd,
        sync,
        console,
    })
}

fn open_root(path: &Path) -> Result<OwnedFd> {
    sys::openat(libc::AT_FDCWD, path, libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open the container's root {}", path.display()))
}
