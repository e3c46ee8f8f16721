//! `xrun kill`: deliver a signal to the container's init (or, with --all,
//! to every process of the container). SIGKILL to a container without a
//! pid namespace of its own goes to every process of its cgroup, even once
//! the init is gone: nothing else would end them (runc 1.4 does the same).

use std::os::fd::AsFd;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::cli::KillArgs;
use crate::container::processes;
use crate::state::{self, ContainerDir, Saved, Status};
use crate::sys;

/// Parses `KILL`, `SIGKILL`, `kill`, or `9`; `0` checks the init exists
/// (as kill(2) does) and fails on a stopped container.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|sig| sig as i32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

pub fn run(root: &Path, args: &KillArgs) -> Result<i32> {
    let sig = parse_signal(args.signal.as_deref().unwrap_or("SIGTERM"))?;
    let (dir, saved) = ContainerDir::load_unlocked(root, &args.id)?;
    let status = state::status_of(&dir, &saved);
    let alive = matches!(status, Status::Created | Status::Running | Status::Paused);
    if sig == libc::SIGKILL && !saved.own_pid_ns && status != Status::Creating {
        if let Some(record) = &saved.cgroup {
            let found = crate::cgroups::kill_all(record)?;
            if found.is_none() && !alive && !args.all {
                bail!("container not running");
            }
            return Ok(0);
        }
    }
    if !alive {
        // --all (runc: "obsoleted") makes a stopped container no error.
        if args.all {
            processes::signal_all(&saved, sig);
            return Ok(0);
        }
        bail!("container not running");
    }
    if args.all {
        signal_all(&saved, sig)?;
    } else {
        signal_init(&saved, sig)?;
    }
    Ok(0)
}

/// Signals the init through a pidfd taken after checking its start time,
/// so a recycled PID can never receive it.
pub fn signal_init(saved: &Saved, sig: i32) -> Result<()> {
    let pidfd = match sys::pidfd_open(saved.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("container not running"),
        Err(e) => return Err(e).context("pidfd_open"),
    };
    if !state::init_alive(saved.pid, saved.init_start_time) {
        bail!("container not running");
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), sig) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => bail!("container not running"),
        other => other.with_context(|| format!("send signal {sig} to {}", saved.pid)),
    }
}

/// The init first (so a pid-namespaced container ends as a whole), then
/// every other process of the container.
fn signal_all(saved: &Saved, sig: i32) -> Result<()> {
    signal_init(saved, sig)?;
    processes::signal_all(saved, sig);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("999").is_err());
    }
}
