//! `xrun kill`: deliver a signal to the container's init (or, with --all,
//! to every process of its pid namespace).

use std::os::fd::AsFd;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use crate::cli::KillArgs;
use crate::container::processes;
use crate::state::{self, ContainerDir, Saved, Status};
use crate::sys;

/// Parses `KILL`, `SIGKILL`, `kill`, or `9`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if n > 0 && n <= libc::SIGRTMAX() {
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
    match state::status_of(&dir, &saved) {
        Status::Created | Status::Running | Status::Paused => {}
        _ => bail!("container not running"),
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
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
    }
}
