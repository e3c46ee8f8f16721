//! Access to the container's /proc that cannot be redirected: the handle is
//! opened without following symlinks and checked to be procfs before
//! anything is written through it (CVE-2025-52881 class).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sync::{At, Failure, Step};
use crate::sys;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const NO_WALKOUT: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV;

fn is_procfs(fd: &OwnedFd) -> io::Result<bool> {
    Ok(sys::fstatfs(fd.as_raw_fd())?.f_type as i64 == PROC_SUPER_MAGIC)
}

/// A verified handle on a procfs mount.
pub struct Proc(OwnedFd);

impl Proc {
    /// Opens `/proc` of the current root and checks it really is procfs.
    pub fn open() -> io::Result<Proc> {
        let fd = sys::openat2(
            libc::AT_FDCWD,
            Path::new("/proc"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            libc::RESOLVE_NO_SYMLINKS,
        )?;
        if !is_procfs(&fd)? {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(Proc(fd))
    }

    /// Opens a file below /proc for writing, refusing symlinks, mount
    /// crossings, and anything that is not procfs.
    pub fn open_write(&self, rel: &Path) -> io::Result<OwnedFd> {
        let fd = sys::openat2(self.0.as_raw_fd(), rel, libc::O_WRONLY, 0, NO_WALKOUT)?;
        if !is_procfs(&fd)? {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(fd)
    }

    /// Opens a file of our own thread's directory (`attr/exec`) for writing.
    /// "thread-self" is a symlink, so it is read and checked to be
    /// "PID/task/TID" here, and the file is then opened without symlinks.
    pub fn open_own_attr(&self, rel: &Path) -> io::Result<OwnedFd> {
        let me = sys::readlinkat(self.0.as_raw_fd(), Path::new("thread-self"))?;
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = me.to_str().unwrap_or("").split('/').collect();
        if !matches!(parts.as_slice(), [pid, "task", tid] if numeric(pid) && numeric(tid)) {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        self.open_write(&me.join(rel))
    }

    /// Re-opens one of our own fds through /proc/self/fd (magic link). Plain
    /// openat: a seccomp profile loaded by then may not allow openat2.
    pub fn reopen_fd(&self, fd: i32, flags: i32) -> io::Result<OwnedFd> {
        sys::openat(self.0.as_raw_fd(), &PathBuf::from(format!("self/fd/{fd}")), flags, 0)
    }
}

/// `net.ipv4.ip_forward` → `sys/net/ipv4/ip_forward`; refuses keys that
/// would name anything outside /proc/sys.
pub fn sysctl_path(key: &str) -> Option<PathBuf> {
    if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty()) {
        return None;
    }
    Some(PathBuf::from("sys").join(key.replace('.', "/")))
}

/// Writes every `linux.sysctl` entry through the verified /proc.
pub fn write_sysctls<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>) -> Result<(), Failure> {
    let mut proc = None;
    for (key, value) in entries {
        let rel = sysctl_path(key).ok_or_else(|| Failure::errno(Step::Sysctl, key, libc::EINVAL))?;
        if proc.is_none() {
            proc = Some(Proc::open().at(Step::Sysctl, "/proc")?);
        }
        let p = proc.as_ref().expect("opened above");
        let fd = p.open_write(&rel).at(Step::Sysctl, key)?;
        sys::write_all(fd.as_raw_fd(), value.as_bytes()).at(Step::Sysctl, key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_map_below_proc_sys_only() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            Some(PathBuf::from("sys/net/ipv4/ip_forward"))
        );
        assert_eq!(sysctl_path("kernel/../x"), None);
        assert_eq!(sysctl_path("a..b"), None);
        assert_eq!(sysctl_path(""), None);
    }

    #[test]
    fn host_proc_is_recognised() {
        let p = Proc::open().expect("/proc is procfs here");
        // A regular procfs file opens; a path that walks out is refused.
        assert!(p
            .open_write(&PathBuf::from(format!("{}/oom_score_adj", sys::getpid())))
            .is_ok());
        // "self" is a symlink: refused.
        assert!(p.open_write(Path::new("self/oom_score_adj")).is_err());
        assert!(p.open_write(Path::new("../etc/passwd")).is_err());
    }

    #[test]
    fn own_attr_files_are_reached_through_thread_self() {
        let p = Proc::open().unwrap();
        // attr/exec exists on every kernel with /proc/PID/attr.
        assert!(p.open_own_attr(Path::new("attr/exec")).is_ok());
        assert!(p.open_own_attr(Path::new("../../../self/attr/exec")).is_err());
    }
}
