//! Path resolution that can never leave the container's root: every lookup
//! goes through openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from an fd
//! of the root, so a symlink or `..` planted by the image resolves inside it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;

const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// Lexically cleans an absolute container path into one relative to the
/// root: `/a/./b/../c` → `a/c`; `..` never climbs above the root.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn rel_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Opens `rel` (already cleaned) inside `root` with O_PATH plus `flags`.
pub fn open(root: RawFd, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    sys::openat2(root, rel_or_dot(rel), libc::O_PATH | flags, 0, IN_ROOT)
}

/// Opens `rel` inside `root` for real I/O (flags such as O_WRONLY).
pub fn open_io(root: RawFd, rel: &Path, flags: i32, resolve_extra: u64) -> io::Result<OwnedFd> {
    sys::openat2(root, rel_or_dot(rel), flags, 0, IN_ROOT | resolve_extra)
}

/// Creates every missing directory of `rel` inside `root` and returns an
/// O_PATH fd of the last one. A dangling symlink on the way is followed
/// inside the root, and its target created there.
pub fn mkdir_all(root: RawFd, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, rel, mode, 0)
}

fn mkdir_all_depth(root: RawFd, rel: &Path, mode: u32, depth: u32) -> io::Result<OwnedFd> {
    if depth > 40 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let comps: Vec<Component> = rel.components().collect();
    let mut cur = open(root, Path::new(""), libc::O_DIRECTORY)?;
    let mut prefix = PathBuf::new();
    for (i, comp) in comps.iter().enumerate() {
        prefix.push(comp);
        match open(root, &prefix, libc::O_DIRECTORY) {
            Ok(fd) => {
                cur = fd;
                continue;
            }
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
        let name = Path::new(comp.as_os_str());
        match sys::mkdirat(cur.as_raw_fd(), name, mode) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        // Reopen through the root: a racing symlink still resolves inside.
        match open(root, &prefix, libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // `name` exists but leads nowhere: a dangling symlink.
                let mut next = link_target(cur.as_raw_fd(), name, &prefix)?;
                next.extend(&comps[i + 1..]);
                return mkdir_all_depth(root, &next, mode, depth + 1);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Makes sure `rel` exists inside `root` (a directory, or an empty file when
/// `file` is set) and returns an O_PATH fd of it.
/// A dangling symlink as the last component is followed inside the root and
/// its target created there, as runc does.
pub fn ensure(root: RawFd, rel: &Path, file: bool) -> io::Result<OwnedFd> {
    ensure_depth(root, rel, file, 0)
}

fn ensure_depth(root: RawFd, rel: &Path, file: bool, depth: u32) -> io::Result<OwnedFd> {
    if depth > 40 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    match open(root, rel, 0) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
        Err(_) => {}
    }
    if !file {
        return mkdir_all(root, rel, 0o755);
    }
    let (parent, name) = split(rel)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    match sys::openat(
        dir.as_raw_fd(),
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o644,
    ) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    match open(root, rel, 0) {
        // Something exists there yet leads nowhere: a dangling symlink.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let next = link_target(dir.as_raw_fd(), name, rel)?;
            ensure_depth(root, &next, file, depth + 1)
        }
        other => other,
    }
}

/// Where the symlink `name` (in `dir`, at `rel` in the root) points, as a
/// cleaned path relative to the root: an absolute target counts from the
/// root, a relative one from the link's directory; `..` stops at the root.
fn link_target(dir: RawFd, name: &Path, rel: &Path) -> io::Result<PathBuf> {
    let target = sys::readlinkat(dir, name)?;
    let base = if target.is_absolute() {
        PathBuf::new()
    } else {
        rel.parent().unwrap_or(Path::new("")).to_path_buf()
    };
    Ok(clean(&Path::new("/").join(base).join(target)))
}

/// An O_PATH fd of the directory `rel` inside `root`, created if missing.
/// Unlike [`ensure`], the last component is not followed: a symlink (or
/// anything else that is not a directory) there is refused with ENOTDIR.
pub fn ensure_real_dir(root: RawFd, rel: &Path) -> io::Result<OwnedFd> {
    let (parent, name) = split(rel)?;
    let dir = mkdir_all(root, parent, 0o755)?;
    let open_last = || sys::openat(dir.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0);
    let fd = match open_last() {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match sys::mkdirat(dir.as_raw_fd(), name, 0o755) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
            _ => open_last()?,
        },
        other => other?,
    };
    if sys::fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(fd)
}

/// Splits a cleaned relative path into (parent, file name).
pub fn split(rel: &Path) -> io::Result<(&Path, &Path)> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, Path::new(n))),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// `/proc/self/fd/N`: the path the mount syscalls use to reach an fd.
pub fn fd_path(fd: RawFd) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_never_climbs_above_root() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(clean(Path::new("/../../etc/passwd")), PathBuf::from("etc/passwd"));
        assert_eq!(clean(Path::new("/")), PathBuf::from(""));
    }

    #[test]
    fn real_dir_refuses_a_final_symlink() {
        let base = std::env::temp_dir().join(format!("xrun-realdir-{}", sys::getpid()));
        let root = base.join("root");
        fs::create_dir_all(root.join("target")).unwrap();
        symlink("/target", root.join("link")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        fs::write(root.join("file"), "").unwrap();
        let rootfd: OwnedFd = fs::File::open(&root).unwrap().into();
        let r = rootfd.as_raw_fd();
        for bad in ["link", "dangling", "file"] {
            let err = ensure_real_dir(r, Path::new(bad)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{bad}");
        }
        assert!(!root.join("nowhere").exists());
        // Missing: created; a symlink in the parent resolves inside the root.
        ensure_real_dir(r, Path::new("made")).unwrap();
        ensure_real_dir(r, Path::new("link/sub")).unwrap();
        assert!(root.join("made").is_dir() && root.join("target/sub").is_dir());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let base = std::env::temp_dir().join(format!("xrun-resolve-{}", sys::getpid()));
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("evil")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        let rootfd: OwnedFd = fs::File::open(&root).unwrap().into();

        mkdir_all(rootfd.as_raw_fd(), Path::new("evil/made"), 0o755).unwrap();
        ensure(rootfd.as_raw_fd(), Path::new("up/file"), true).unwrap();
        // Both landed inside the root, nothing outside it.
        assert!(root.join(outside.strip_prefix("/").unwrap()).join("made").is_dir());
        assert!(root.join("file").is_file());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn ensure_follows_a_trailing_dangling_symlink_inside_the_root() {
        let base = std::env::temp_dir().join(format!("xrun-dangling-{}", sys::getpid()));
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(outside.join("f"), root.join("etc/file")).unwrap();
        symlink("../../../x/y", root.join("etc/dir")).unwrap();
        symlink("/etc/loop", root.join("etc/loop")).unwrap();
        let rootfd: OwnedFd = fs::File::open(&root).unwrap().into();
        let r = rootfd.as_raw_fd();
        ensure(r, Path::new("etc/file"), true).unwrap();
        ensure(r, Path::new("etc/dir"), false).unwrap();
        assert!(root.join(outside.strip_prefix("/").unwrap()).join("f").is_file());
        assert!(root.join("x/y").is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let err = ensure(r, Path::new("etc/loop"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        fs::remove_dir_all(&base).unwrap();
    }
}
