//! `xrun run`: create and start in one go. In the foreground the caller's
//! stdio is the container's, signals are forwarded to it, and xrun exits
//! with its status (128+N when killed by signal N), deleting it unless
//! --keep.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::container::{self, Created, Mode};
use crate::state::{ContainerDir, Status};
use crate::{hooks, sys};

/// Signals a foreground `run` passes on to the container.
const FORWARDED: [libc::c_int; 11] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGALRM,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGPWR,
    libc::SIGURG,
];

pub fn run(root: &Path, args: &RunArgs) -> Result<i32> {
    let signals = forwarded_signals(args.detach)?;
    let created = container::create_as(root, &args.create, Mode::Run, args.detach)?;
    if let Err(e) = container::release_over_sync(&created.sync, Mode::Run) {
        let _ = crate::cmd::delete::destroy(created.dir, true);
        return Err(e);
    }
    let Created {
        dir,
        saved,
        pidfd,
        sync,
        console,
    } = created;
    drop(sync);
    let json = saved.hook_json(Status::Running);
    hooks::run_all_warn(
        "poststart",
        saved.hooks.as_ref().and_then(|h| h.poststart().as_ref()),
        &json,
    );
    // Let `state`, `kill` and `delete` from other callers proceed meanwhile.
    drop(dir);
    let Some(signals) = signals else { return Ok(0) };

    let code = wait_foreground(saved.pid, &pidfd, &signals, console)?;
    if !args.keep {
        if let Ok(dir) = ContainerDir::open(root, &saved.id) {
            crate::cmd::delete::destroy(dir, true)?;
        }
    }
    Ok(code)
}

/// The signalfd a foreground `run` or `exec` forwards from, made before
/// clone so no signal is lost (the child unblocks its copy); None when
/// detached.
pub fn forwarded_signals(detach: bool) -> Result<Option<OwnedFd>> {
    if detach {
        return Ok(None);
    }
    Ok(Some(sys::signalfd_for(&FORWARDED)?))
}

/// Waits for the foreground process `pid`, relaying its pty when it has one
/// (process.terminal without --console-socket), else forwarding signals;
/// returns its exit code.
pub fn wait_foreground(pid: i32, pidfd: &OwnedFd, signals: &OwnedFd, console: Option<OwnedFd>) -> Result<i32> {
    // We stay as long as the container: hold none of the caller's fds (a
    // lock, a pipe it waits on) meanwhile; stdio stays for the relay.
    crate::process::fds::close_inherited();
    match console {
        Some(master) => crate::console::relay::relay(master, pid, pidfd, signals),
        None => wait_forwarding(pid, pidfd, signals),
    }
}

/// Forwards signals until the process exits; returns its exit code.
fn wait_forwarding(pid: i32, pidfd: &OwnedFd, signals: &OwnedFd) -> Result<i32> {
    let mut fds = [
        libc::pollfd {
            fd: signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        sys::poll(&mut fds, -1)?;
        if fds[0].revents & libc::POLLIN != 0 {
            let sig = sys::read_signalfd(signals.as_raw_fd())?;
            crate::debug!("forwarding signal {sig} to {pid}");
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
        }
        if fds[1].revents != 0 {
            let status = sys::waitpid(pid, 0)?.unwrap_or(0);
            return Ok(sys::exit_code(status));
        }
    }
}
