//! `--pidfd-socket PATH` (create, run, exec): a pidfd of the container's
//! process (the init, or the exec'd process) goes to whoever listens on
//! that unix socket, as runc sends it: one sendmsg on a SOCK_STREAM
//! connection, the data naming the kind of process ("standard" for an
//! init, "setns" for an exec'd one) and one SCM_RIGHTS fd. It is sent once
//! the process is set up, before it is released to exec.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};

use super::Mode;
use crate::sys;

/// Connected before anything is created, so a bad path leaves nothing
/// behind. The words are runc's, its spelling included.
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).with_context(|| {
        let p = path.display();
        format!("failed to dail {p}: dial unix {p}: connect")
    })
}

/// Sends (a duplicate of) `pidfd`: the receiver gets its own.
pub fn send(sock: &UnixStream, pidfd: &OwnedFd, mode: Mode) -> Result<()> {
    let kind: &[u8] = match mode {
        Mode::Create | Mode::Run => b"standard",
        Mode::Exec => b"setns",
    };
    sys::send_with_fd(sock.as_raw_fd(), kind, pidfd.as_raw_fd()).context("failed to send pidfd on socket")
}
