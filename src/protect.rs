//! CVE-2019-5736: a container process must never be able to open xrun's own
//! binary for writing through /proc/PID/exe. Before a verb that enters a
//! container, xrun re-executes itself once from a handle nobody can write:
//! a detached read-only bind mount of its binary (open_tree + mount_setattr,
//! invisible in every mount table), or, where that is refused, a sealed memfd
//! copy. Nothing is done when the binary already sits on a read-only mount or
//! is a sealed memfd (which is also how the re-executed process knows).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use anyhow::{Context, Result};

use crate::sys;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

fn already_protected(exe: &File) -> bool {
    let fd = exe.as_raw_fd();
    if sys::fstatvfs(fd).is_ok_and(|st| st.f_flag & libc::ST_RDONLY != 0) {
        return true;
    }
    sys::fcntl_int(fd, libc::F_GET_SEALS, 0).is_ok_and(|seals| seals & libc::F_SEAL_WRITE != 0)
}

/// A detached, read-only bind mount of the running binary.
fn readonly_bind() -> std::io::Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    let tree = sys::open_tree(libc::AT_FDCWD, c"/proc/self/exe", flags)?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    sys::mount_setattr(tree.as_raw_fd(), c"", libc::AT_EMPTY_PATH as u32, attrs, 0, 0)?;
    Ok(tree)
}

/// A sealed memfd copy of the running binary (the slow fallback).
fn sealed_copy(exe: &File) -> std::io::Result<OwnedFd> {
    let memfd = sys::memfd_create(c"xrun", libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)?;
    let size = exe.metadata()?.len() as usize;
    let mut done = 0;
    while done < size {
        let n = sys::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), size - done)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    sys::fcntl_int(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals)?;
    Ok(memfd)
}

/// The verbs whose processes enter a container.
const ENTERING_VERBS: [&str; 3] = ["create", "run", "exec"];

/// Re-executes xrun from its protected handle before the command line is
/// parsed, when a word of it is a verb that enters a container: clap's
/// parser is then built once, in the re-executed image, instead of twice. A
/// word that only looks like the verb (an id "run") costs a re-exec and
/// nothing else; any failure is left to `ensure_protected_binary`, which
/// runs again after parsing and decides.
pub fn reexec_early() {
    let enters = std::env::args_os()
        .skip(1)
        .any(|a| ENTERING_VERBS.iter().any(|v| a == *v));
    if enters {
        let _ = ensure_protected_binary();
    }
}

/// Re-executes xrun from a protected handle unless it already runs from one.
/// Returns only when no re-exec was needed.
pub fn ensure_protected_binary() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if already_protected(&exe) {
        crate::debug!("binary already on a read-only mount or sealed: no re-exec");
        return Ok(());
    }
    let handle = match readonly_bind() {
        Ok(fd) => fd,
        Err(e) => {
            crate::debug!("read-only bind of the binary failed ({e}); using a sealed memfd copy");
            sealed_copy(&exe).context("make a sealed copy of the xrun binary")?
        }
    };
    let to_c = |s: std::ffi::OsString| CString::new(s.into_vec()).ok();
    let argv: Vec<CString> = std::env::args_os().filter_map(to_c).collect();
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    crate::phase!("re-exec from protected binary");
    let err = sys::execveat_fd(handle.as_raw_fd(), &argv, &envp);
    Err(err).context("re-execute xrun from its protected copy")
}
