//! `--no-pivot` moves the rootfs over "/" and chroots: the host's mounts stay
//! in the container's mount namespace, below its root. The kernel lets a
//! user namespace mount a fresh procfs or sysfs only where one is already
//! fully visible in the mount namespace (mount_too_revealing), and the
//! host's whole /proc and /sys would count, unmasked. So before the move,
//! every full procfs and sysfs mount outside the rootfs is taken away, or
//! covered where it cannot be (a mount locked by a user namespace).

use std::path::{Path, PathBuf};

use crate::sync::{At, Failure, Step};
use crate::sys;

/// Detaches (or covers) every full procfs/sysfs mount outside `rootfs`.
/// Nothing propagates to the host: "/" was made rslave in `prepare`.
pub fn hide_host_pseudo_fs(rootfs: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").at(Step::Chroot, "/proc/self/mountinfo")?;
    for point in full_pseudo_mounts(&text, rootfs) {
        let c = sys::cstring(&point).at(Step::Chroot, point.display())?;
        let err = match sys::umount2(&c, libc::MNT_DETACH) {
            Ok(()) => continue,
            Err(e) => e,
        };
        match err.raw_os_error() {
            // Already gone with a mount above it.
            Some(libc::ENOENT) => continue,
            // Locked (inherited into a user namespace): an empty read-only
            // tmpfs on top hides it just as well.
            Some(libc::EINVAL) | Some(libc::EPERM) => {
                let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                sys::mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), flags, None).at(Step::Chroot, point.display())?;
            }
            _ => return Err(Failure::new(Step::Chroot, point.display(), &err)),
        }
    }
    Ok(())
}

/// Mount points of procfs/sysfs mounts of a filesystem's root (the ones
/// mount_too_revealing accepts) outside `rootfs`, deepest first so a parent
/// detached earlier never hides a child still to do.
fn full_pseudo_mounts(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            let (left, right) = line.split_once(" - ")?;
            let mut f = left.split(' ');
            let root = f.nth(3)?;
            let point = super::unescape_mountinfo(f.next()?);
            let fstype = right.split(' ').next()?;
            let full = root == "/" && matches!(fstype, "proc" | "sysfs");
            (full && !point.starts_with(rootfs)).then_some(point)
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_proc_and_sysfs_outside_the_rootfs_are_chosen() {
        let text = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
23 1 0:22 / /sys rw,nosuid shared:6 master:1 - sysfs sysfs rw
24 23 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro
25 1 0:21 /sys /bind/proc-sys rw - proc proc rw
26 1 0:22 / /run/a\\040b/sys rw - sysfs sysfs rw
30 1 0:40 / /bundle/rootfs/proc rw - proc proc rw
31 1 0:41 / /bundle/rootfs/sys ro - sysfs sysfs ro
32 1 0:42 / /bundle/rootfs2/proc rw - proc proc rw
";
        let got = full_pseudo_mounts(text, Path::new("/bundle/rootfs"));
        let want: Vec<PathBuf> = ["/run/a b/sys", "/bundle/rootfs2/proc", "/proc", "/sys"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }
}
