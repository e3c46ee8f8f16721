//! `--console-socket`: the pty master goes to whoever listens on that unix
//! socket, in the message runc sends (containerd's shim and conmon read it):
//! one sendmsg on a SOCK_STREAM connection whose data is the master's name
//! and whose control message is a single SCM_RIGHTS fd. The receiver checks
//! that the control part is exactly one fd and the name under 4096 bytes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};

use crate::sys;

/// The name runc gives the master (it opens it as /dev/ptmx).
const MASTER_NAME: &[u8] = b"/dev/ptmx";

/// Connected before anything is created, so a bad path fails early.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).with_context(|| format!("connect to console socket {}", path.display()))
}

/// Sends the master and drops our copy: from here the receiver owns it.
pub fn send_master(sock: &UnixStream, master: OwnedFd) -> Result<()> {
    sys::send_with_fd(sock.as_raw_fd(), MASTER_NAME, master.as_raw_fd()).context("send pty master to console socket")
}
