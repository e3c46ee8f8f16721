//! `xrun features`: what this build of xrun implements, as the runtime
//! spec's features.json (the same shape `runc features` prints). Apart from
//! `seccomp.supportedFlags`, which asks the kernel, it describes xrun, not
//! the host.

use anyhow::Result;
use serde::Serialize;

use crate::process::mempolicy::{FLAGS, MODES};
use crate::sys;

// The seccomp names are crate::seccomp's (ACTIONS, OPERATORS, ARCHES, FLAGS).
use crate::seccomp::{ACTIONS as SECCOMP_ACTIONS, ARCHES as SECCOMP_ARCHES, OPERATORS as SECCOMP_OPERATORS};

/// Every option `rootfs::mounts::parse_options` turns into a flag, a
/// propagation or a recursive attribute (anything else goes to the
/// filesystem as data). `tmpcopyup` is parsed but not implemented, so it is
/// not listed; neither are `idmap`/`ridmap` (runc 1.4 reports them as
/// `mountExtensions.idmap`).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

const NAMESPACES: &[&str] = &["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: &'static [&'static str],
    mount_options: &'static [&'static str],
    linux: Linux,
    annotations: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    namespaces: &'static [&'static str],
    capabilities: Vec<String>,
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Enabled,
    selinux: Enabled,
    intel_rdt: Enabled,
    memory_policy: MemoryPolicy,
    mount_extensions: MountExtensions,
}

#[derive(Serialize)]
struct MemoryPolicy {
    modes: Vec<&'static str>,
    flags: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
    rdma: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    enabled: bool,
    actions: &'static [&'static str],
    operators: &'static [&'static str],
    archs: &'static [&'static str],
    known_flags: Vec<&'static str>,
    supported_flags: Vec<&'static str>,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
struct MountExtensions {
    idmap: Enabled,
}

/// Capability names the caps crate knows, in kernel bit order.
fn capabilities() -> Vec<String> {
    let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(|c| c.to_string()).collect()
}

fn features() -> Features {
    let annotations = [
        ("org.xrun.version", env!("CARGO_PKG_VERSION").to_string()),
        ("org.xrun.commit", env!("XRUN_COMMIT").to_string()),
        ("org.xrun.seccomp.compiler", "seccompiler".to_string()),
    ]
    .into_iter()
    .collect();
    Features {
        oci_version_min: "1.0.0",
        oci_version_max: crate::state::OCI_VERSION,
        hooks: HOOKS,
        mount_options: MOUNT_OPTIONS,
        linux: Linux {
            namespaces: NAMESPACES,
            capabilities: capabilities(),
            cgroup: Cgroup {
                v1: true,
                v2: true,
                systemd: true,
                systemd_user: true,
                rdma: true,
            },
            seccomp: Seccomp {
                enabled: true,
                actions: SECCOMP_ACTIONS,
                operators: SECCOMP_OPERATORS,
                archs: SECCOMP_ARCHES,
                known_flags: crate::seccomp::FLAGS.to_vec(),
                supported_flags: crate::seccomp::FLAGS
                    .iter()
                    .copied()
                    .filter(|f| crate::seccomp::flag_probe_bits(f).is_some_and(sys::seccomp_flags_known))
                    .collect(),
            },
            apparmor: Enabled { enabled: true },
            selinux: Enabled { enabled: true },
            intel_rdt: Enabled { enabled: false },
            memory_policy: MemoryPolicy {
                modes: MODES.iter().map(|(n, _)| *n).collect(),
                flags: FLAGS.iter().map(|(n, _)| *n).collect(),
            },
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: true },
            },
        },
        annotations,
    }
}

pub fn run() -> Result<i32> {
    // runc indents with four spaces.
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    features().serialize(&mut ser)?;
    out.push(b'\n');
    crate::output::print(&String::from_utf8_lossy(&out))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::mounts::parse_options;

    #[test]
    fn every_listed_mount_option_is_parsed_not_passed_as_data() {
        for opt in MOUNT_OPTIONS {
            let o = parse_options(&[opt.to_string()]).unwrap_or_else(|e| panic!("{opt}: {e}"));
            assert!(o.data.is_empty(), "{opt} would be passed to the filesystem as data");
        }
        let mut sorted = MOUNT_OPTIONS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, MOUNT_OPTIONS, "keep the list sorted and unique");
    }

    #[test]
    fn listed_namespaces_are_the_spec_types() {
        for ns in NAMESPACES {
            let t: oci_spec::runtime::LinuxNamespaceType =
                serde_json::from_value(serde_json::json!(ns)).unwrap_or_else(|e| panic!("{ns}: {e}"));
            assert_eq!(crate::namespaces::name(t), *ns);
        }
    }

    #[test]
    fn seccomp_names_are_what_the_config_parser_accepts() {
        for a in SECCOMP_ACTIONS {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompAction>(serde_json::json!(a)).unwrap();
        }
        for o in SECCOMP_OPERATORS {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompOperator>(serde_json::json!(o)).unwrap();
        }
        for f in crate::seccomp::FLAGS {
            serde_json::from_value::<oci_spec::runtime::LinuxSeccompFilterFlag>(serde_json::json!(f)).unwrap();
            assert!(crate::seccomp::flag_probe_bits(f).is_some(), "{f} has no probe");
        }
        for a in SECCOMP_ARCHES {
            serde_json::from_value::<oci_spec::runtime::Arch>(serde_json::json!(a)).unwrap();
        }
    }

    #[test]
    fn capabilities_start_with_chown_and_are_in_bit_order() {
        let caps = capabilities();
        assert_eq!(caps[0], "CAP_CHOWN");
        assert!(caps.iter().any(|c| c == "CAP_CHECKPOINT_RESTORE"));
        assert!(caps.len() >= 41);
    }

    #[test]
    fn this_kernel_supports_the_log_flag() {
        // Linux 4.14+; the probe must never load anything.
        let f = features();
        assert!(f.linux.seccomp.supported_flags.contains(&"SECCOMP_FILTER_FLAG_LOG"));
        assert!(!sys::seccomp_flags_known(1 << 30));
    }
}
