//! Which file descriptors reach a container: stdio, systemd's socket
//! activation fds (LISTEN_FDS), then the `--preserve-fds` ones, all numbered
//! from 3 up; nothing else. Close-on-exec alone is not enough: a created
//! init holds every fd it has until `start`, and the caller's fds (a host
//! directory, a lock file) must never be open in a process the container
//! can reach (CVE-2024-21626).
//!
//! The verbs that start a container process survey what they inherited
//! before opening anything (`survey`), so an fd to preserve that the caller
//! did not open is refused instead of being taken over by one of xrun's own
//! (a cgroup directory, the sync socket). The clone3 child closes all but
//! what it still needs (`close_all_except`); a foreground `run`/`exec`, which
//! lives as long as the container, closes what it inherited once the
//! container has its copies (`close_inherited`).

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::sys;

/// What the caller handed us, as found before xrun opened anything.
struct Survey {
    /// Fds to pass on after stdio: LISTEN_FDS plus --preserve-fds.
    passed: u32,
    /// The first of 3.. that was not open, if any of them was not.
    missing: Option<RawFd>,
    /// Every inherited fd above stdio.
    inherited: Vec<RawFd>,
}

static SURVEY: OnceLock<Survey> = OnceLock::new();

/// Records the inherited fds and checks that the `passed` fds from 3 on
/// are open. Call it before the process opens any fd of its own.
pub fn survey(passed: u32) {
    let missing = (3..3 + passed as RawFd).find(|&fd| !sys::fd_is_open(fd));
    let _ = SURVEY.set(Survey {
        passed,
        missing,
        inherited: list_open_from(3),
    });
}

/// Refuses to go on when an fd to pass on was not open at start-up (runc
/// refuses the same, "unable to stat preserved-fd").
pub fn check_passed() -> Result<()> {
    if let Some(s) = SURVEY.get() {
        if let Some(fd) = s.missing {
            bail!(
                "unable to stat preserved-fd {} (of {}): fd {fd} is not open: {}",
                fd - 3,
                s.passed,
                sys::strerror(libc::EBADF)
            );
        }
    }
    Ok(())
}

/// Marks the inherited fds close-on-exec, so the hooks xrun runs get only
/// stdio (the child makes the passed ones inheritable again before execve).
pub fn hide_inherited() {
    for &fd in SURVEY.get().map_or(&[][..], |s| &s.inherited) {
        let _ = sys::set_cloexec(fd, true);
    }
}

/// Closes every fd xrun inherited above stdio. Only for a process that
/// stays around while the container runs (a foreground run or exec), once
/// the container has its copies: these numbers were never closed, so they
/// still name what the caller handed us, never one of xrun's own.
pub fn close_inherited() {
    for &fd in SURVEY.get().map_or(&[][..], |s| &s.inherited) {
        sys::close(fd);
    }
}

/// The fds systemd passed us for socket activation (LISTEN_FDS, when
/// LISTEN_PID names this process), which start at fd 3.
pub fn socket_activation_fds() -> Option<u32> {
    let pid: i32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (pid == sys::getpid() && n > 0).then_some(n)
}

/// Child side: closes every fd except stdio, the `passed` ones from 3 on,
/// and `keep` (negative entries are ignored). Everything else, inherited or
/// the parent's own, is closed for good, not just marked close-on-exec.
pub fn close_all_except(passed: u32, keep: &mut [RawFd]) -> io::Result<()> {
    keep.sort_unstable();
    let mut first = 3 + passed as RawFd;
    for &k in keep.iter().filter(|&&k| k >= 3) {
        if k > first {
            close_between(first, k - 1, keep)?;
        }
        first = first.max(k + 1);
    }
    close_between(first, RawFd::MAX, keep)
}

/// Closes `first..=last`: one close_range(2), or where the kernel lacks it
/// (before 5.9) one close per open fd below the RLIMIT_NOFILE limit.
fn close_between(first: RawFd, last: RawFd, keep: &[RawFd]) -> io::Result<()> {
    match sys::close_range(first as u32, last as u32) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            let limit = sys::nofile_limit().min(RawFd::MAX as u64) as RawFd;
            for fd in first..=last.min(limit) {
                if !keep.contains(&fd) {
                    sys::close(fd);
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Open fds numbered `from` and up, from /proc/self/fd (or, without /proc,
/// by asking for each number below the fd limit).
fn list_open_from(from: RawFd) -> Vec<RawFd> {
    let listed: Option<Vec<RawFd>> = std::fs::read_dir("/proc/self/fd").ok().map(|dir| {
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= from)
            .collect()
    });
    // The directory's own fd was among them; it is closed now.
    match listed {
        Some(fds) => fds.into_iter().filter(|&fd| sys::fd_is_open(fd)).collect(),
        None => {
            let limit = sys::nofile_limit().min(65536) as RawFd;
            (from..limit).filter(|&fd| sys::fd_is_open(fd)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn null_fd() -> RawFd {
        std::fs::File::open("/dev/null").unwrap().into_raw_fd()
    }

    #[test]
    fn open_fds_are_listed_without_the_listing_fd() {
        let fd = null_fd();
        let listed = list_open_from(3);
        assert!(listed.contains(&fd), "{listed:?} lacks {fd}");
        assert!(listed.iter().all(|&f| sys::fd_is_open(f)), "{listed:?}");
        sys::close(fd);
    }

    #[test]
    fn close_all_except_keeps_only_what_is_named() {
        // A forked child, so closing every other fd harms no test thread.
        // SAFETY: the child only makes raw syscalls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let a = null_fd();
            let b = null_fd();
            let c = null_fd();
            let d = null_fd();
            let ok = close_all_except(0, &mut [d, -1, b]).is_ok()
                && !sys::fd_is_open(a)
                && sys::fd_is_open(b)
                && !sys::fd_is_open(c)
                && sys::fd_is_open(d)
                && (0..3).all(sys::fd_is_open);
            sys::exit_now(if ok { 0 } else { 1 });
        }
        let status = sys::waitpid(pid, 0).unwrap().unwrap();
        assert_eq!(sys::exit_code(status), 0);
    }

    #[test]
    fn passed_fds_are_kept() {
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // Make 3..=6 open, then pass 3 and 4 on and keep nothing else.
            let null = null_fd();
            let ok = (3..=6).all(|fd| sys::dup_onto(null, fd).is_ok())
                && close_all_except(2, &mut []).is_ok()
                && sys::fd_is_open(3)
                && sys::fd_is_open(4)
                && !sys::fd_is_open(5)
                && !sys::fd_is_open(6)
                && (null < 7 || !sys::fd_is_open(null));
            sys::exit_now(if ok { 0 } else { 1 });
        }
        let status = sys::waitpid(pid, 0).unwrap().unwrap();
        assert_eq!(sys::exit_code(status), 0);
    }
}
