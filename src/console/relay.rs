//! A foreground `run` or `exec` with a terminal and no console socket:
//! the caller's stdio is relayed to the pty master. Our terminal, if stdin
//! is one, is put in raw mode (the container's pty does the line editing)
//! and restored on every way out; SIGWINCH resizes the pty to our window;
//! other signals go to the container; the container's status is returned.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{Context, Result};

use crate::sys;

/// Our stdin's terminal settings, put back when dropped.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// None when stdin is not a terminal (a pipe, /dev/null): nothing to do.
    fn enter(fd: RawFd) -> Option<RawMode> {
        let saved = sys::tcgetattr(fd).ok()?;
        let mut raw = sys::make_raw(saved);
        // Output processing stays (as runc's raw mode keeps it): the
        // container's pty sends bare NLs (`console::clear_onlcr`).
        raw.c_oflag |= libc::OPOST;
        if let Err(e) = sys::tcsetattr(fd, &raw) {
            crate::debug!("cannot set stdin raw: {e}");
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = sys::tcsetattr(self.fd, &self.saved);
    }
}

/// The pty gets the window size of the first of our stdio that is a
/// terminal; without one it keeps its own (process.consoleSize).
fn resize_from_ours(master: RawFd) {
    if let Some((rows, cols)) = (0..3).find_map(|fd| sys::get_winsize(fd).ok()) {
        let _ = sys::set_winsize(master, rows, cols);
    }
}

fn would_block(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

/// Relays until the process `pid` exits; returns its exit code (128+N for
/// signal N). `signals` is the signalfd of the signals a foreground run
/// handles.
pub fn relay(master: OwnedFd, pid: i32, pidfd: &OwnedFd, signals: &OwnedFd) -> Result<i32> {
    let m = master.as_raw_fd();
    let flags = sys::fcntl_int(m, libc::F_GETFL, 0).context("pty master flags")?;
    sys::fcntl_int(m, libc::F_SETFL, flags | libc::O_NONBLOCK).context("pty master non-blocking")?;
    resize_from_ours(m);
    let _raw = RawMode::enter(0);

    let mut buf = [0u8; 8192];
    // Input read from our stdin and not yet taken by the pty.
    let mut pending: Vec<u8> = Vec::new();
    let mut stdin_open = true;
    let mut master_open = true;
    loop {
        let poll_stdin = stdin_open && pending.is_empty();
        let mut master_events = 0;
        if master_open {
            master_events |= libc::POLLIN;
            if !pending.is_empty() {
                master_events |= libc::POLLOUT;
            }
        }
        let mut fds = [
            pollfd(signals.as_raw_fd(), libc::POLLIN),
            pollfd(pidfd.as_raw_fd(), libc::POLLIN),
            pollfd(if poll_stdin { 0 } else { -1 }, libc::POLLIN),
            pollfd(if master_open { m } else { -1 }, master_events),
        ];
        sys::poll(&mut fds, -1)?;
        if fds[0].revents & libc::POLLIN != 0 {
            let sig = sys::read_signalfd(signals.as_raw_fd())?;
            if sig == libc::SIGWINCH {
                resize_from_ours(m);
            } else {
                crate::debug!("forwarding signal {sig} to {pid}");
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
            }
        }
        if fds[2].revents != 0 {
            match sys::read(0, &mut buf) {
                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                // EOF or an error: stop reading; the container's input
                // stays open, as with runc.
                _ => stdin_open = false,
            }
        }
        if fds[3].revents & libc::POLLOUT != 0 {
            match sys::write(m, &pending) {
                Ok(n) => drop(pending.drain(..n)),
                Err(e) if would_block(&e) => {}
                Err(_) => pending.clear(),
            }
        }
        if fds[3].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            master_open = copy_out(m, &mut buf);
        }
        if fds[1].revents != 0 {
            // Whatever it wrote before exiting is still in the pty.
            if master_open {
                copy_out(m, &mut buf);
            }
            let status = sys::waitpid(pid, 0)?.unwrap_or(0);
            return Ok(sys::exit_code(status));
        }
    }
}

/// Copies what the master has to our stdout. Returns false once the master
/// is done (EIO: no process has the pty open any more) and true while it
/// may have more; stops at EAGAIN.
fn copy_out(master: RawFd, buf: &mut [u8]) -> bool {
    loop {
        match sys::read(master, buf) {
            Ok(0) => return false,
            Ok(n) => {
                if sys::write_all(1, &buf[..n]).is_err() {
                    // Our stdout is gone: keep draining so the container
                    // never blocks on a full pty.
                    continue;
                }
            }
            Err(e) if would_block(&e) => return true,
            Err(_) => return false,
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}
