//! maskedPaths and readonlyPaths, applied inside the new root by fd with the
//! new mount API, so no path is re-resolved between check and mount.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::resolve;
use crate::sync::{At, Failure, Step};
use crate::sys;

/// Opens the container's /dev/null and checks it is the real device (an
/// image may plant a symlink there: CVE-2025-31133).
fn open_dev_null(root: RawFd) -> Result<OwnedFd, Failure> {
    let fd = resolve::open_io(root, Path::new("dev/null"), libc::O_PATH, libc::RESOLVE_NO_SYMLINKS)
        .at(Step::MaskPath, "/dev/null")?;
    let st = sys::fstat(fd.as_raw_fd()).at(Step::MaskPath, "/dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != sys::makedev(1, 3) {
        return Err(Failure::errno(
            Step::MaskPath,
            "/dev/null (not the null device)",
            libc::EINVAL,
        ));
    }
    Ok(fd)
}

/// Opens a path to mask or protect; None when the image doesn't have it.
fn open_existing(root: RawFd, path: &str, step: Step) -> Result<Option<OwnedFd>, Failure> {
    match resolve::open(root, &resolve::clean(Path::new(path)), 0) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Failure::new(step, path, &e)),
    }
}

/// Hides each path: a directory under an empty read-only tmpfs, anything
/// else under /dev/null. The tmpfs carries the mount label's `context=`.
pub fn mask(root: RawFd, paths: &[String], mount_label: Option<&std::ffi::CStr>) -> Result<(), Failure> {
    let mut dev_null = None;
    for path in paths {
        let Some(target) = open_existing(root, path, Step::MaskPath)? else {
            continue;
        };
        let st = sys::fstat(target.as_raw_fd()).at(Step::MaskPath, path)?;
        let cover = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            sys::detached_tmpfs(true, mount_label).at(Step::MaskPath, path)?
        } else {
            if dev_null.is_none() {
                dev_null = Some(open_dev_null(root)?);
            }
            let null = dev_null.as_ref().expect("opened above");
            let flags = (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) | libc::AT_EMPTY_PATH as u32;
            sys::open_tree(null.as_raw_fd(), c"", flags).at(Step::MaskPath, path)?
        };
        sys::move_mount_fd(cover.as_raw_fd(), target.as_raw_fd()).at(Step::MaskPath, path)?;
    }
    Ok(())
}

/// Re-binds each path over itself, recursively read-only.
pub fn make_readonly(root: RawFd, paths: &[String]) -> Result<(), Failure> {
    for path in paths {
        let Some(target) = open_existing(root, path, Step::ReadonlyPath)? else {
            continue;
        };
        let flags =
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) | (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32;
        let tree = sys::open_tree(target.as_raw_fd(), c"", flags).at(Step::ReadonlyPath, path)?;
        let attr_flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32;
        sys::mount_setattr(tree.as_raw_fd(), c"", attr_flags, 0x1, 0, 0).at(Step::ReadonlyPath, path)?;
        sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).at(Step::ReadonlyPath, path)?;
    }
    Ok(())
}
