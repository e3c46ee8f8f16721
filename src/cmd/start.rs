//! `xrun start`: release a created container's process through exec.fifo,
//! then run the poststart hooks.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::state::{self, ContainerDir, Status};
use crate::{hooks, sys};

pub fn run(root: &Path, id: &str) -> Result<i32> {
    let dir = ContainerDir::open(root, id)?;
    let saved = dir.load()?;
    match dir.status(&saved) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running => bail!("cannot start an already running container"),
        other => bail!("cannot start a container in the {other} state"),
    }
    let pidfd = sys::pidfd_open(saved.pid).context("container process is already dead")?;
    if !state::init_alive(saved.pid, saved.init_start_time) {
        bail!("container process is already dead");
    }
    let fifo_path = dir.fifo_path();
    let fifo: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .with_context(|| format!("open {}", fifo_path.display()))?
        .into();
    let reply = wait_for_release(&fifo, &pidfd, &saved)?;
    std::fs::remove_file(&fifo_path).with_context(|| format!("remove {}", fifo_path.display()))?;
    match reply.first() {
        Some(0) => {}
        Some(_) => bail!("{}", String::from_utf8_lossy(&reply)),
        None => bail!("container process exited before it could start"),
    }
    let json = saved.hook_json(Status::Running);
    hooks::run_all_warn(
        "poststart",
        saved.hooks.as_ref().and_then(|h| h.poststart().as_ref()),
        &json,
    );
    Ok(0)
}

use std::os::unix::fs::OpenOptionsExt;

/// Collects what the init writes into the fifo: its go-ahead (or an error),
/// then EOF when its end closes at execve. So `start` returns, and poststart
/// runs, only once the user process really is executing. A dead init is
/// reported, and a frozen one (paused meanwhile) refused, never waited on
/// forever while we hold the lock `resume` needs.
fn wait_for_release(fifo: &OwnedFd, pidfd: &OwnedFd, saved: &state::Saved) -> Result<Vec<u8>> {
    let mut fds = [
        libc::pollfd {
            fd: fifo.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut reply = Vec::new();
    loop {
        if sys::poll(&mut fds, 100)? == 0 {
            if saved.cgroup.as_ref().is_some_and(crate::cgroups::is_frozen) {
                bail!("cannot start a container in the paused state");
            }
            continue;
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let mut buf = [0u8; 4096];
            match sys::read(fifo.as_raw_fd(), &mut buf) {
                Ok(0) => return Ok(reply),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => return Err(e).context("read exec.fifo"),
            }
        } else if fds[1].revents != 0 {
            // Exited without ever opening the fifo.
            return Ok(reply);
        }
    }
}
