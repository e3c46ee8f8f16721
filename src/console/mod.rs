//! process.terminal: the pty the container's process gets as its stdio and
//! controlling terminal.
//!
//! The child allocates it from the container's own devpts (`setup`, between
//! the finished rootfs and the user switch) and passes the master to the
//! parent over the sync socket. The parent then either hands the master to
//! whoever owns `--console-socket` (`socket`) or, for a foreground `run`,
//! relays it to its own stdio (`relay`). `exec -t` reuses the same code.

pub mod relay;
pub mod socket;

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{bail, Result};
use oci_spec::runtime::Process;

use crate::sync::{self, At, Failure, Kind, Step};
use crate::sys;

/// What the child needs to set the terminal up, computed before clone3.
#[derive(Clone, Debug)]
pub struct Plan {
    /// process.consoleSize as (rows, cols); None or a zero side = left as is.
    pub size: Option<(u16, u16)>,
    /// The process user, who is given the terminal (as runc does).
    pub uid: u32,
    /// Bind the terminal over /dev/console (the container's own mount
    /// namespace only; not for exec).
    pub mount_console: bool,
}

impl Plan {
    /// None when the process asks for no terminal.
    pub fn from_process(p: &Process, mount_console: bool) -> Option<Plan> {
        if !p.terminal().unwrap_or(false) {
            return None;
        }
        let size = p
            .console_size()
            .as_ref()
            .map(|b| (clamp(b.height()), clamp(b.width())))
            .filter(|&(h, w)| h != 0 && w != 0);
        Some(Plan {
            size,
            uid: p.user().uid(),
            mount_console,
        })
    }
}

fn clamp(v: u64) -> u16 {
    v.min(u16::MAX as u64) as u16
}

/// runc's rules for combining process.terminal, detaching and
/// --console-socket, with its reasons.
pub fn check_flags(terminal: bool, detached: bool, console_socket: Option<&Path>) -> Result<()> {
    if detached && terminal && console_socket.is_none() {
        bail!("cannot allocate tty if xrun will detach without setting console socket");
    }
    if (!detached || !terminal) && console_socket.is_some() {
        bail!("cannot use console socket if xrun will not detach or allocate tty");
    }
    Ok(())
}

/// Child side: opens a pty in the container's devpts, sends the master to
/// the parent, and makes the peer our stdio and controlling terminal in a
/// new session. Runs after pivot_root, before the user switch.
pub fn setup(plan: &Plan, sync_fd: RawFd) -> Result<(), Failure> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    let master = sys::openat(libc::AT_FDCWD, Path::new("/dev/ptmx"), flags, 0).at(Step::Console, "/dev/ptmx")?;
    sys::unlock_pty(master.as_raw_fd()).at(Step::Console, "unlock /dev/ptmx")?;
    let peer = sys::open_pty_peer(master.as_raw_fd(), flags).at(Step::Console, "open pty peer")?;
    if let Some((rows, cols)) = plan.size {
        sys::set_winsize(peer.as_raw_fd(), rows, cols).at(Step::Console, "consoleSize")?;
    }
    give_to_user(&peer, plan.uid)?;
    if plan.mount_console {
        mount_console(&master)?;
    }
    sync::send_with_fd(sync_fd, Kind::Console, master.as_raw_fd()).at(Step::Console, "send pty master")?;
    drop(master);
    sys::setsid().at(Step::Console, "setsid")?;
    sys::set_controlling_tty(peer.as_raw_fd()).at(Step::Console, "TIOCSCTTY")?;
    for fd in 0..3 {
        sys::dup_onto(peer.as_raw_fd(), fd).at(Step::Console, fd)?;
    }
    if peer.as_raw_fd() > 2 {
        drop(peer);
    } else {
        // It is one of 0-2 now: keep it open.
        let _ = peer.into_raw_fd();
    }
    Ok(())
}

/// Output NL stays NL on the container's pty (termios on a master sets
/// its peer's): runc clears ONLCR on every master it keeps for a
/// foreground relay (and its recvtty does for a console socket), so the
/// caller sees the container's bytes; our own terminal, left with OPOST,
/// does the NL to CRNL for display. A console-socket receiver decides for
/// itself, as with runc.
pub fn clear_onlcr(master: RawFd) -> std::io::Result<()> {
    let mut t = sys::tcgetattr(master)?;
    t.c_oflag &= !libc::ONLCR;
    sys::tcsetattr(master, &t)
}

/// The owner of the pty becomes the process user (uid only: the devpts
/// mount chose the group), as runc does for the init's stdio.
fn give_to_user(peer: &OwnedFd, uid: u32) -> Result<(), Failure> {
    let st = sys::fstat(peer.as_raw_fd()).at(Step::Console, "fstat pty")?;
    if st.st_uid == uid {
        return Ok(());
    }
    match sys::fchownat_empty(peer.as_raw_fd(), uid, u32::MAX) {
        // An unmapped uid, or no privilege for it (rootless): runc goes on.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) => Ok(()),
        other => other.at(Step::Console, "chown pty"),
    }
}

/// /dev/console becomes the pty, as in runc: a bind of /dev/pts/N over a
/// file created if missing.
fn mount_console(master: &OwnedFd) -> Result<(), Failure> {
    let n = sys::pty_number(master.as_raw_fd()).at(Step::Console, "TIOCGPTN")?;
    let target = Path::new("/dev/console");
    // Created only if missing: an existing node is never opened.
    let flags = libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NOCTTY;
    match sys::openat(libc::AT_FDCWD, target, flags, 0o666) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => drop(other.at(Step::Console, "/dev/console")?),
    }
    let source = std::ffi::CString::new(format!("/dev/pts/{n}")).expect("no NUL in a number");
    sys::mount(Some(&source), c"/dev/console", None, libc::MS_BIND, None).at(Step::Console, "/dev/console")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_runc() {
        let sock = Some(Path::new("/run/sock"));
        // terminal, detached, socket
        assert!(check_flags(true, true, sock).is_ok());
        assert!(check_flags(true, false, None).is_ok());
        assert!(check_flags(false, true, None).is_ok());
        assert!(check_flags(false, false, None).is_ok());
        let err = |t, d, s| check_flags(t, d, s).unwrap_err().to_string();
        assert!(err(true, true, None).starts_with("cannot allocate tty"));
        assert!(err(false, true, sock).starts_with("cannot use console socket"));
        assert!(err(true, false, sock).starts_with("cannot use console socket"));
    }

    #[test]
    fn console_size_needs_both_sides() {
        let p: Process = serde_json::from_str(
            r#"{"terminal": true, "consoleSize": {"height": 30, "width": 0}, "user": {"uid": 7, "gid": 7}, "cwd": "/"}"#,
        )
        .unwrap();
        let plan = Plan::from_process(&p, true).unwrap();
        assert_eq!((plan.size, plan.uid), (None, 7));
        let p: Process =
            serde_json::from_str(r#"{"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/"}"#).unwrap();
        assert!(Plan::from_process(&p, true).is_none());
    }
}
