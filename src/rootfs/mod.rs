//! The container's root filesystem, set up by the child inside its new mount
//! namespace: propagation, the rootfs bind, every config mount, devices,
//! pivot_root, then sysctls, masked/read-only paths and a read-only root.

pub mod copyup;
pub mod devices;
pub mod mounts;
pub mod no_pivot;
pub mod paths;
pub mod procfs;
pub mod resolve;
pub mod sources;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::sync::{At, Failure, Step};
use crate::sys;

/// What the rootfs steps need, computed by the parent before clone.
pub struct Plan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub no_pivot: bool,
    /// The mount namespace is the container's own: only then may "/" be
    /// re-propagated and pivot_root used.
    pub own_mount_ns: bool,
    pub in_user_ns: bool,
    pub devices: Vec<devices::Node>,
    /// Whether xrun populates /dev (false when /dev is bind mounted in).
    pub setup_dev: bool,
    pub cgroups: mounts::CgroupLayout,
    /// Propagation applied to "/" once the root is in place.
    pub root_propagation: libc::c_ulong,
    /// linux.mountLabel, for the mounts runc labels.
    pub mount_label: Option<crate::process::lsm::MountLabel>,
    /// The idmapping of each mount, by index (empty when none has one).
    pub idmaps: Vec<Option<sources::Idmap>>,
}

const RPRIVATE: libc::c_ulong = libc::MS_PRIVATE | libc::MS_REC;

/// Mounts everything while the host's view is still around; returns an fd of
/// the rootfs mount. Sources only the parent can open are asked for over
/// `sync_fd`.
/// `join_cgroups` runs before the first cgroup mount (the container's
/// cgroup directories must exist and hold us by then), and at the latest
/// once the mounts are made.
pub fn prepare(
    plan: &Plan,
    sync_fd: std::os::fd::RawFd,
    join_cgroups: &mut dyn FnMut() -> Result<(), Failure>,
) -> Result<OwnedFd, Failure> {
    if plan.own_mount_ns {
        // Nothing we mount may propagate back to the host. A private root
        // (the default) is made so now rather than at the end, as runc
        // does, so that a mount's own `shared`/`slave` option holds.
        let flags = match plan.root_propagation {
            RPRIVATE => RPRIVATE,
            _ => libc::MS_SLAVE | libc::MS_REC,
        };
        sys::mount(None, c"/", None, flags, None).at(Step::RootPropagation, "/")?;
    }
    let rootfs = sys::cstring(plan.rootfs).at(Step::BindRootfs, plan.rootfs.display())?;
    sys::mount(Some(&rootfs), &rootfs, None, libc::MS_BIND | libc::MS_REC, None)
        .at(Step::BindRootfs, plan.rootfs.display())?;
    let root = sys::openat(libc::AT_FDCWD, plan.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .at(Step::BindRootfs, plan.rootfs.display())?;

    let ctx = mounts::Context {
        root: root.as_raw_fd(),
        rootfs: plan.rootfs,
        bundle: plan.bundle,
        idmaps: &plan.idmaps,
        sync_fd,
        cgroups: &plan.cgroups,
        mount_context: plan.mount_label.as_ref().map(|m| m.option.as_str()),
    };
    for (i, m) in plan.spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        if m.typ().as_deref() == Some("cgroup") {
            join_cgroups()?;
        }
        mounts::mount_entry(&ctx, i, m)?;
        crate::debug!("mounted {}", m.destination().display());
    }
    join_cgroups()?;
    if plan.setup_dev {
        for node in &plan.devices {
            devices::create(root.as_raw_fd(), node, plan.in_user_ns)?;
        }
        devices::create_symlinks(root.as_raw_fd())?;
    }
    Ok(root)
}

/// Makes the rootfs the process's root: pivot_root, or with `--no-pivot`
/// a move over "/" and chroot.
pub fn enter(plan: &Plan, root: &OwnedFd) -> Result<(), Failure> {
    sys::fchdir(root.as_raw_fd()).at(Step::PivotRoot, plan.rootfs.display())?;
    if !plan.own_mount_ns {
        // A shared mount namespace: pivot_root or a move over "/" would
        // change every other process's root too.
        sys::chroot(c".").at(Step::Chroot, plan.rootfs.display())?;
    } else if plan.no_pivot {
        no_pivot::hide_host_pseudo_fs(plan.rootfs)?;
        sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None).at(Step::Chroot, plan.rootfs.display())?;
        sys::chroot(c".").at(Step::Chroot, plan.rootfs.display())?;
    } else {
        let old_root = sys::openat(libc::AT_FDCWD, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
            .at(Step::PivotRoot, "/")?;
        // Both "." arguments: the old root ends up stacked on the new one,
        // and is then detached, without needing a directory for it.
        sys::pivot_root(c".", c".").at(Step::PivotRoot, plan.rootfs.display())?;
        sys::fchdir(old_root.as_raw_fd()).at(Step::PivotRoot, "old root")?;
        sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None).at(Step::PivotRoot, "old root")?;
        sys::umount2(c".", libc::MNT_DETACH).at(Step::PivotRoot, "old root")?;
    }
    sys::chdir(c"/").at(Step::PivotRoot, "/")
}

/// The steps that need the final root: sysctls, masks, read-only paths and
/// root, and the configured propagation.
pub fn finish(plan: &Plan) -> Result<(), Failure> {
    let linux = plan.spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut entries: Vec<_> = sysctl.iter().collect();
        entries.sort();
        procfs::write_sysctls(entries.into_iter())?;
    }
    let root =
        sys::openat(libc::AT_FDCWD, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).at(Step::MaskPath, "/")?;
    if let Some(masked) = linux.and_then(|l| l.masked_paths().as_ref()) {
        paths::mask(
            root.as_raw_fd(),
            masked,
            plan.mount_label.as_ref().map(|m| m.label.as_c_str()),
        )?;
    }
    if let Some(ro) = linux.and_then(|l| l.readonly_paths().as_ref()) {
        paths::make_readonly(root.as_raw_fd(), ro)?;
    }
    if plan.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        sys::mount_setattr(libc::AT_FDCWD, c"/", 0, 0x1, 0, 0).at(Step::RootReadonly, "/")?;
    }
    if plan.own_mount_ns && plan.root_propagation != RPRIVATE {
        sys::mount(None, c"/", None, plan.root_propagation, None).at(Step::RootPropagation, "/")?;
    }
    Ok(())
}

/// Makes the read-only tmpfs and /dev mounts read-only, once the console
/// and everything else inside them is in place (runc's finalizeRootfs).
pub fn finish_readonly_mounts(plan: &Plan) -> Result<(), Failure> {
    let root = sys::openat(libc::AT_FDCWD, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).at(Step::Mount, "/")?;
    for m in plan.spec.mounts().as_deref().unwrap_or(&[]) {
        mounts::finish_readonly(root.as_raw_fd(), plan.rootfs, m)?;
    }
    Ok(())
}

/// Takes down every mount at or below `rootfs` in the runtime's mount
/// namespace, deepest first: what a container without its own mount
/// namespace leaves behind.
pub fn unmount_below(rootfs: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        if let Ok(c) = sys::cstring(&p) {
            let _ = sys::umount2(&c, libc::MNT_DETACH);
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Whether the config bind mounts /dev itself (then xrun leaves it alone).
pub fn binds_dev(spec: &Spec, rootfs: &Path) -> bool {
    spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
        mounts::destination(rootfs, m) == Path::new("dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
    }
}
