//! `xrun spec`: write the default config.json runc 1.4 writes, field for
//! field (refusing to overwrite one). Only ociVersion differs: it is the
//! spec version xrun declares (state, features).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// runc's example spec; `cgroup_v2`: a cgroup namespace too, as runc adds
/// on a unified hierarchy only.
fn default_spec(cgroup_v2: bool) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if cgroup_v2 {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("a list")
            .push(json!({"type": "cgroup"}));
    }
    spec
}

/// Whether /sys/fs/cgroup is a cgroup v2 (unified) hierarchy.
fn host_is_cgroup_v2() -> bool {
    crate::sys::statfs_type(Path::new("/sys/fs/cgroup")).ok() == Some(libc::CGROUP2_SUPER_MAGIC as _)
}

/// The rootless variant, as runc makes it: a user namespace mapping the
/// caller to root, no network namespace, no resources, /sys bound instead
/// of mounted, no uid=/gid= mount options.
fn make_rootless(spec: &mut Value) {
    let uid = crate::sys::geteuid();
    let gid = crate::sys::getegid();
    let linux = &mut spec["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            continue;
        }
        let Some(m) = m.as_object_mut() else { continue };
        if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
            opts.retain(|o| {
                o.as_str()
                    .is_some_and(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
            });
            if opts.is_empty() {
                m.remove("options");
            }
        }
    }
}

pub fn run(bundle: &Path, rootless: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = default_spec(host_is_cgroup_v2());
    if rootless {
        make_rootless(&mut spec);
    }
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_as_an_oci_spec() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(default_spec(false)).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("runc"));
    }

    fn namespaces(v: &Value) -> Vec<&str> {
        let list = v["linux"]["namespaces"].as_array().unwrap();
        list.iter().map(|n| n["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_cgroup_namespace_only_on_cgroup_v2() {
        assert_eq!(
            namespaces(&default_spec(false)),
            ["pid", "network", "ipc", "uts", "mount"]
        );
        assert_eq!(
            namespaces(&default_spec(true)),
            ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        );
    }

    #[test]
    fn rootless_spec_maps_the_caller_and_parses() {
        let mut v = default_spec(true);
        make_rootless(&mut v);
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap().len(), 1);
        assert!(linux.resources().is_none());
        assert_eq!(namespaces(&v), ["pid", "ipc", "uts", "mount", "cgroup", "user"]);
        let mounts = v["mounts"].as_array().unwrap();
        // As runc: the cgroup mount stays, /proc keeps no options at all.
        assert!(mounts.iter().any(|m| m["type"] == "cgroup"));
        let proc = mounts.iter().find(|m| m["destination"] == "/proc").unwrap();
        assert!(proc.get("options").is_none(), "{proc}");
        let pts = mounts.iter().find(|m| m["destination"] == "/dev/pts").unwrap();
        assert!(
            !pts["options"].as_array().unwrap().iter().any(|o| o == "gid=5"),
            "{pts}"
        );
    }
}
