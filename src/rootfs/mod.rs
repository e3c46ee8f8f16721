//! The container's root filesystem, set up by the child inside its new mount
//! namespace: propagation, the rootfs bind, every config mount, devices,
//! pivot_root, then sysctls, masked/read-only paths and a read-only root.

pub mod devices;
pub mod mounts;
pub mod paths;
pub mod procfs;
pub mod resolve;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::sync::{At, Failure, Step};
use crate::sys;

/// What the rootfs steps need, computed by the parent before clone.
pub struct Plan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub no_pivot: bool,
    pub in_user_ns: bool,
    pub devices: Vec<devices::Node>,
    /// Whether xrun populates /dev (false when /dev is bind mounted in).
    pub setup_dev: bool,
    pub cgroups: mounts::CgroupLayout,
    /// Propagation applied to "/" once the root is in place.
    pub root_propagation: libc::c_ulong,
}

/// Mounts everything while the host's view is still around; returns an fd of
/// the rootfs mount.
pub fn prepare(plan: &Plan) -> Result<OwnedFd, Failure> {
    // Nothing we mount may propagate back to the host.
    sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None).at(Step::RootPropagation, "/")?;
    let rootfs = sys::cstring(plan.rootfs).at(Step::BindRootfs, plan.rootfs.display())?;
    sys::mount(Some(&rootfs), &rootfs, None, libc::MS_BIND | libc::MS_REC, None)
        .at(Step::BindRootfs, plan.rootfs.display())?;
    let root = sys::openat(libc::AT_FDCWD, plan.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .at(Step::BindRootfs, plan.rootfs.display())?;

    let ctx = mounts::Context {
        root: root.as_raw_fd(),
        bundle: plan.bundle,
        cgroups: &plan.cgroups,
        in_user_ns: plan.in_user_ns,
    };
    for m in plan.spec.mounts().as_deref().unwrap_or(&[]) {
        mounts::mount_entry(&ctx, m)?;
        crate::debug!("mounted {}", m.destination().display());
    }
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
    if plan.no_pivot {
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
        paths::mask(root.as_raw_fd(), masked)?;
    }
    if let Some(ro) = linux.and_then(|l| l.readonly_paths().as_ref()) {
        paths::make_readonly(root.as_raw_fd(), ro)?;
    }
    if plan.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        sys::mount_setattr(libc::AT_FDCWD, c"/", 0, 0x1, 0, 0).at(Step::RootReadonly, "/")?;
    }
    sys::mount(None, c"/", None, plan.root_propagation, None).at(Step::RootPropagation, "/")
}

/// Whether the config bind mounts /dev itself (then xrun leaves it alone).
pub fn binds_dev(spec: &Spec) -> bool {
    spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
        resolve::clean(m.destination()) == Path::new("dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}
