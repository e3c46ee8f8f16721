//! Loading a bundle's config.json (as oci-spec types, no second model) and
//! the checks that must pass before anything is created.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// A loaded bundle: absolute paths and the parsed spec.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let file = dir.join("config.json");
    let data = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| anyhow::anyhow!("parse {}: {e}", file.display()))?;
    let root = spec.root().as_ref().context("config.json has no root")?;
    let rootfs = dir.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// Checks the combinations runc refuses, with the same reasons.
pub fn validate(spec: &Spec) -> Result<()> {
    if spec.process().as_ref().is_some_and(|p| p.terminal().unwrap_or(false)) {
        bail!("process.terminal is not supported by this xrun build yet: set it to false");
    }
    let uts = has_namespace(spec, LinuxNamespaceType::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        bail!("unable to set hostname without a private UTS namespace");
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !uts {
        bail!("unable to set domainname without a private UTS namespace");
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for key in sysctl.keys() {
            check_sysctl_namespace(spec, key)?;
        }
    }
    if let Some(field) = unsupported_field(spec) {
        bail!("{field} is set in config.json but not supported by this xrun build yet; remove it to run without it");
    }
    Ok(())
}

/// The first field xrun cannot honour yet. Running without it would
/// silently weaken or change what the config asked for, so it is refused.
fn unsupported_field(spec: &Spec) -> Option<&'static str> {
    if let Some(p) = spec.process().as_ref() {
        let set = [
            (
                p.apparmor_profile().as_deref().is_some_and(|s| !s.is_empty()),
                "process.apparmorProfile",
            ),
            (
                p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()),
                "process.selinuxLabel",
            ),
            (p.scheduler().is_some(), "process.scheduler"),
            (p.io_priority().is_some(), "process.ioPriority"),
            (p.exec_cpu_affinity().is_some(), "process.execCPUAffinity"),
        ];
        if let Some((_, name)) = set.into_iter().find(|(on, _)| *on) {
            return Some(name);
        }
    }
    let l = spec.linux().as_ref()?;
    let set = [
        (
            l.mount_label().as_deref().is_some_and(|s| !s.is_empty()),
            "linux.mountLabel",
        ),
        (l.intel_rdt().is_some(), "linux.intelRdt"),
        (l.personality().is_some(), "linux.personality"),
        (
            l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
            "linux.timeOffsets",
        ),
        (l.memory_policy().is_some(), "linux.memoryPolicy"),
        (
            l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.netDevices",
        ),
    ];
    set.into_iter().find(|(on, _)| *on).map(|(_, name)| name)
}

/// A sysctl may only be set when its namespace is the container's own.
fn check_sysctl_namespace(spec: &Spec, key: &str) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    };
    match needs {
        Some(t) if has_namespace(spec, t) => Ok(()),
        Some(_) => bail!("sysctl {key:?} is not in a separate kernel namespace"),
        None => bail!("sysctl {key:?} is not whitelisted: it is not namespaced and would change the host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "network"}]}
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn fields_not_built_yet_are_refused_by_name() {
        let s = spec(
            serde_json::json!({"process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
            "apparmorProfile": "p"}}),
        );
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("process.apparmorProfile"));
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}], "mountLabel": "x"}}));
        assert!(validate(&s).unwrap_err().to_string().contains("linux.mountLabel"));
    }

    #[test]
    fn hostname_needs_uts_namespace() {
        let err = validate(&spec(serde_json::json!({"hostname": "x"}))).unwrap_err();
        assert!(err.to_string().contains("UTS"));
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let ok = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "network"}],
            "sysctl": {"net.ipv4.ip_forward": "1"}}}),
        );
        assert!(validate(&ok).is_ok());
        let ipc = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}],
            "sysctl": {"kernel.shmmax": "1"}}}));
        assert!(validate(&ipc).is_err());
        let host = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}],
            "sysctl": {"vm.swappiness": "1"}}}));
        assert!(validate(&host).is_err());
    }
}
