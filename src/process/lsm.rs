//! Linux security modules: whether AppArmor and SELinux are enabled on the
//! host (the tests runc makes), and the labels a container gets from them:
//! `process.apparmorProfile` and `process.selinuxLabel` are written to the
//! init's own /proc attr files just before execve (they take effect at the
//! exec), `linux.mountLabel` becomes a `context=` option on mounts.
//!
//! Where a label is set but its LSM is absent, xrun does what runc 1.1 does:
//! an SELinux process label is refused before anything is created; an
//! AppArmor profile is still written, and the kernel's refusal (EINVAL when
//! no LSM owns the attr file) fails the container; a mount label is passed
//! to the filesystems, which refuse the unknown option.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::rootfs::procfs::Proc;
use crate::sync::{Failure, Step};
use crate::sys;

/// The host's LSM state, read below `root` ("/" except in tests).
pub struct Host<'a> {
    root: &'a Path,
}

impl Host<'static> {
    pub fn real() -> Host<'static> {
        Host { root: Path::new("/") }
    }
}

impl<'a> Host<'a> {
    /// The LSM state of a tree mounted at `root` (`xrun check`'s tests).
    pub fn at(root: &'a Path) -> Host<'a> {
        Host { root }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.root.join(rel)
    }

    /// runc's test: securityfs shows apparmor and the module says it is on.
    pub fn apparmor_enabled(&self) -> bool {
        if !self.path("sys/kernel/security/apparmor").exists() {
            return false;
        }
        fs::read(self.path("sys/module/apparmor/parameters/enabled")).is_ok_and(|b| b.len() > 1 && b[0] == b'Y')
    }

    /// go-selinux's test: selinuxfs is mounted and our own context can be
    /// read and is not the kernel's placeholder.
    pub fn selinux_enabled(&self) -> bool {
        if !self.path("sys/fs/selinux/enforce").exists() {
            return false;
        }
        fs::read_to_string(self.path("proc/self/attr/current"))
            .is_ok_and(|c| !matches!(c.trim_end_matches(['\0', '\n']), "" | "kernel"))
    }
}

/// runc's spelling of the mount option (a Go %q of the label).
pub fn mount_context(label: &str) -> String {
    let mut quoted = String::with_capacity(label.len() + 2);
    quoted.push('"');
    for c in label.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    format!("context={quoted}")
}

/// `linux.mountLabel`, ready for both ways of mounting.
#[derive(Debug)]
pub struct MountLabel {
    /// The label alone, for fsconfig(FSCONFIG_SET_STRING, "context").
    pub label: std::ffi::CString,
    /// `context="<label>"`, appended to mount(2) data.
    pub option: String,
}

/// `linux.mountLabel`, if set (a label with a NUL byte is refused).
pub fn mount_label_of(spec: &Spec) -> anyhow::Result<Option<MountLabel>> {
    let Some(label) = spec.linux().as_ref().and_then(|l| l.mount_label().as_deref()) else {
        return Ok(None);
    };
    if label.is_empty() {
        return Ok(None);
    }
    let c = std::ffi::CString::new(label).map_err(|_| anyhow::anyhow!("linux.mountLabel contains a NUL byte"))?;
    Ok(Some(MountLabel {
        label: c,
        option: mount_context(label),
    }))
}

/// One label for the next execve.
#[derive(Debug, PartialEq, Eq)]
struct ExecLabel {
    /// What is written to the attr file.
    value: String,
    /// Files under /proc/thread-self/ tried in order (the first that exists).
    files: &'static [&'static str],
    /// How an error names it.
    shown: String,
}

/// The process labels of a container, computed in the parent.
#[derive(Debug, Default)]
pub struct ExecLabels {
    labels: Vec<ExecLabel>,
}

impl ExecLabels {
    pub fn new(apparmor_profile: Option<&str>, selinux_label: Option<&str>, host: &Host) -> ExecLabels {
        let mut labels = Vec::new();
        if let Some(p) = apparmor_profile.filter(|p| !p.is_empty()) {
            let note = if host.apparmor_enabled() {
                ""
            } else {
                ", AppArmor is not enabled on this host"
            };
            labels.push(ExecLabel {
                value: format!("exec {p}"),
                // attr/apparmor/ since Linux 5.8; the shared file before.
                files: &["attr/apparmor/exec", "attr/exec"],
                shown: format!("apparmor profile {p:?} (attr/exec{note})"),
            });
        }
        if let Some(l) = selinux_label.filter(|l| !l.is_empty()) {
            labels.push(ExecLabel {
                value: l.to_string(),
                files: &["attr/exec"],
                shown: format!("selinux label {l:?} (attr/exec)"),
            });
        }
        ExecLabels { labels }
    }

    pub fn from_spec(spec: &Spec, host: &Host) -> ExecLabels {
        let p = spec.process().as_ref();
        ExecLabels::new(
            p.and_then(|p| p.apparmor_profile().as_deref()),
            p.and_then(|p| p.selinux_label().as_deref()),
            host,
        )
    }

    /// Child side: writes each label through the container's verified /proc.
    pub fn apply(&self) -> Result<(), Failure> {
        if self.labels.is_empty() {
            return Ok(());
        }
        let proc = Proc::open().map_err(|e| Failure::new(Step::Lsm, "/proc", &e))?;
        for label in &self.labels {
            write_label(&proc, label)?;
        }
        Ok(())
    }
}

fn write_label(proc: &Proc, label: &ExecLabel) -> Result<(), Failure> {
    let fail = |e: &std::io::Error| Failure::new(Step::Lsm, &label.shown, e);
    let mut files = label.files.iter().peekable();
    while let Some(file) = files.next() {
        let fd = match proc.open_own_attr(Path::new(file)) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && files.peek().is_some() => continue,
            Err(e) => return Err(fail(&e)),
        };
        return sys::write_all(fd.as_raw_fd(), label.value.as_bytes()).map_err(|e| fail(&e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(files: &[(&str, &str)]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xrun-lsm-{}-{n}", sys::getpid()));
        let _ = fs::remove_dir_all(&dir);
        for (rel, content) in files {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            if rel.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::write(&p, content).unwrap();
            }
        }
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn apparmor_needs_securityfs_and_the_module_switch() {
        let on = fake_root(&[
            ("sys/kernel/security/apparmor/", ""),
            ("sys/module/apparmor/parameters/enabled", "Y\n"),
        ]);
        assert!(Host::at(&on).apparmor_enabled());
        let off = fake_root(&[
            ("sys/kernel/security/apparmor/", ""),
            ("sys/module/apparmor/parameters/enabled", "N\n"),
        ]);
        assert!(!Host::at(&off).apparmor_enabled());
        let no_fs = fake_root(&[("sys/module/apparmor/parameters/enabled", "Y\n")]);
        assert!(!Host::at(&no_fs).apparmor_enabled());
        for d in [on, off, no_fs] {
            fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn selinux_needs_selinuxfs_and_a_real_context() {
        let on = fake_root(&[
            ("sys/fs/selinux/enforce", "1"),
            ("proc/self/attr/current", "system_u:system_r:unconfined_t:s0\0"),
        ]);
        assert!(Host::at(&on).selinux_enabled());
        let kernel = fake_root(&[("sys/fs/selinux/enforce", "1"), ("proc/self/attr/current", "kernel\0")]);
        assert!(!Host::at(&kernel).selinux_enabled());
        let no_fs = fake_root(&[("proc/self/attr/current", "system_u:system_r:unconfined_t:s0")]);
        assert!(!Host::at(&no_fs).selinux_enabled());
        for d in [on, kernel, no_fs] {
            fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn this_host_has_neither() {
        // The development and CI machines run without AppArmor and SELinux;
        // if that changes, the LSM integration tests must be revisited.
        let host = Host::real();
        if Path::new("/sys/kernel/security/lsm").exists() {
            return;
        }
        assert!(!host.apparmor_enabled());
        assert!(!host.selinux_enabled());
    }

    #[test]
    fn labels_are_formatted_as_the_kernel_wants_them() {
        let off = fake_root(&[]);
        let l = ExecLabels::new(
            Some("docker-default"),
            Some("system_u:system_r:container_t:s0"),
            &Host::at(&off),
        );
        assert_eq!(l.labels.len(), 2);
        assert_eq!(l.labels[0].value, "exec docker-default");
        assert_eq!(l.labels[0].files, ["attr/apparmor/exec", "attr/exec"]);
        assert!(l.labels[0].shown.contains("AppArmor is not enabled"));
        assert_eq!(l.labels[1].value, "system_u:system_r:container_t:s0");
        assert_eq!(l.labels[1].files, ["attr/exec"]);
        assert!(ExecLabels::new(Some(""), None, &Host::at(&off)).labels.is_empty());
        fs::remove_dir_all(off).unwrap();
    }

    #[test]
    fn mount_label_is_quoted_like_runc() {
        assert_eq!(
            mount_context("system_u:object_r:container_file_t:s0:c1,c2"),
            r#"context="system_u:object_r:container_file_t:s0:c1,c2""#
        );
        assert_eq!(mount_context(r#"a"b"#), r#"context="a\"b""#);
    }
}
