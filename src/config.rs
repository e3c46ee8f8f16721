//! Loading a bundle's config.json (as oci-spec types, no second model) and
//! the checks that must pass before anything is created.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::process::mempolicy::MemPolicy;

/// A loaded bundle: absolute paths and the parsed spec.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// linux.memoryPolicy, checked (oci-spec's reading of it is not used).
    pub memory_policy: Option<MemPolicy>,
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let file = dir.join("config.json");
    let data = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let (mut spec, memory_policy) =
        parse_config(&data).map_err(|e| anyhow::anyhow!("parse {}: {e}", file.display()))?;
    let memory_policy = memory_policy
        .map(|v| MemPolicy::from_json(&v))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    new_namespace_for_empty_path(&mut spec);
    let root = spec.root().as_ref().context("config.json has no root")?;
    let rootfs = dir.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    validate(&spec)?;
    Ok(Bundle {
        dir,
        rootfs,
        spec,
        memory_policy,
    })
}

/// A namespace with `"path": ""` is a new one, not one to join (runc's
/// reading; run.bats relies on it).
fn new_namespace_for_empty_path(spec: &mut Spec) {
    let Some(list) = spec.linux_mut().as_mut().and_then(|l| l.namespaces_mut().as_mut()) else {
        return;
    };
    for ns in list.iter_mut() {
        if ns.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            ns.set_path(None);
        }
    }
}

/// The runtime spec's names for the scheduler flags oci-spec 0.10 only
/// accepts in its own spelling, with that spelling.
const SCHED_FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
];

/// Rewrites the spec's scheduler flag names in a process's `scheduler`
/// object (config.json's, or an exec --process file's) to oci-spec's.
pub fn respell_sched_flags(scheduler: Option<&mut serde_json::Value>) {
    let Some(flags) = scheduler
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags.iter_mut() {
        if let Some((_, ours)) = SCHED_FLAG_SPELLINGS.iter().find(|(spec, _)| f.as_str() == Some(spec)) {
            *f = serde_json::Value::from(*ours);
        }
    }
}

#[cfg(test)]
fn parse_spec(data: &[u8]) -> serde_json::Result<Spec> {
    parse_config(data).map(|(spec, _)| spec)
}

/// Parses config.json; the JSON is edited first only where oci-spec would
/// misread it (a flag spelling, a `pids` object without a limit) or refuse
/// it (a capability name it does not know, which runc ignores).
/// linux.memoryPolicy is taken out and returned as is: it is checked with
/// runc's rules and words (`MemPolicy::from_json`), which oci-spec's parse
/// would pre-empt.
fn parse_config(data: &[u8]) -> serde_json::Result<(Spec, Option<serde_json::Value>)> {
    let has = |word: &str| data.windows(word.len()).any(|w| w == word.as_bytes());
    let mut first_error = None;
    if !SCHED_FLAG_SPELLINGS.iter().any(|(spec, _)| has(spec)) && !has("\"pids\"") && !has("\"memoryPolicy\"") {
        match serde_json::from_slice(data) {
            Ok(spec) => return Ok((spec, None)),
            Err(e) => first_error = Some(e),
        }
    }
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    let memory_policy = v
        .pointer_mut("/linux")
        .and_then(|l| l.as_object_mut())
        .and_then(|l| l.remove("memoryPolicy"))
        .filter(|p| !p.is_null());
    if let Some(caps) = v.pointer_mut("/process/capabilities") {
        crate::process::caps::drop_unknown_names(caps);
    }
    if let Some(r) = v.pointer_mut("/linux/resources") {
        crate::cgroups::v2::pids::drop_unset_limit(r);
    }
    respell_sched_flags(v.pointer_mut("/process/scheduler"));
    // When the edits did not help, the first error has the line and column.
    let spec = serde_json::from_value(v).map_err(|e| first_error.unwrap_or(e))?;
    Ok((spec, memory_policy))
}

fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// Checks the combinations runc refuses, with the same reasons.
pub fn validate(spec: &Spec) -> Result<()> {
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
    check_time_namespace(spec)?;
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok();
    check_deadline_cpus(spec, online.as_deref())?;
    let selinux_label = spec.process().as_ref().and_then(|p| p.selinux_label().as_deref());
    if selinux_label.is_some_and(|l| !l.is_empty()) && !crate::process::lsm::Host::real().selinux_enabled() {
        // runc's words: without SELinux the label is refused up front.
        bail!("selinux label is specified in config, but selinux is disabled or not supported");
    }
    if let Some(field) = unsupported_field(spec) {
        bail!("{field} is set in config.json but not supported by this xrun build yet; remove it to run without it");
    }
    Ok(())
}

/// The first field xrun cannot honour yet. Running without it would
/// silently weaken or change what the config asked for, so it is refused.
fn unsupported_field(spec: &Spec) -> Option<&'static str> {
    let l = spec.linux().as_ref()?;
    let set = [
        (l.intel_rdt().is_some(), "linux.intelRdt"),
        (
            l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.netDevices",
        ),
    ];
    set.into_iter().find(|(on, _)| *on).map(|(_, name)| name)
}

/// SCHED_DEADLINE needs an affinity spanning every CPU (sched_setattr(2):
/// EPERM otherwise), so with linux.resources.cpu.cpus narrower than the
/// online CPUs it can never be set: refused before anything is created, in
/// runc's words (runc says it when the init's sched_setattr fails).
fn check_deadline_cpus(spec: &Spec, online: Option<&str>) -> Result<()> {
    use oci_spec::runtime::LinuxSchedulerPolicy;
    let deadline = spec
        .process()
        .as_ref()
        .and_then(|p| p.scheduler().as_ref())
        .is_some_and(|s| *s.policy() == LinuxSchedulerPolicy::SchedDeadline);
    let cpus = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| c.cpus().as_deref())
        .filter(|c| !c.trim().is_empty());
    let (Some(cpus), Some(online), true) = (cpus, online, deadline) else {
        return Ok(());
    };
    // A list that does not parse is the cgroup's to report.
    let (Ok(cpus), Ok(online)) = (
        crate::process::attrs::cpu_list(cpus),
        crate::process::attrs::cpu_list(online),
    ) else {
        return Ok(());
    };
    let covered = online
        .iter()
        .enumerate()
        .all(|(i, w)| cpus.get(i).copied().unwrap_or(0) & w == *w);
    if !covered {
        bail!("process scheduler can't be used together with AllowedCPUs");
    }
    Ok(())
}

/// runc's rules for the time namespace and linux.timeOffsets.
fn check_time_namespace(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let offsets = linux.is_some_and(|l| l.time_offsets().is_some());
    let time_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Time));
    match time_ns {
        None if offsets => bail!("time namespace offsets specified, but time namespace isn't enabled in the config"),
        None => Ok(()),
        Some(_) if !Path::new("/proc/self/timens_offsets").exists() => {
            bail!("time namespaces aren't enabled in the kernel")
        }
        Some(ns) if ns.path().is_some() && offsets => bail!(
            "time namespace enabled, but both namespace path and time offsets specified -- you may only provide one"
        ),
        Some(_) => Ok(()),
    }
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
    fn an_empty_namespace_path_is_a_new_namespace() {
        let ns = serde_json::json!({"namespaces": [{"type": "mount", "path": ""}, {"type": "network", "path": "/x"}]});
        let mut s = spec(serde_json::json!({ "linux": ns }));
        new_namespace_for_empty_path(&mut s);
        let list = s.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert_eq!(list[0].path(), &None);
        assert_eq!(list[1].path().as_deref(), Some(Path::new("/x")));
    }

    #[test]
    fn fields_not_built_yet_are_refused_by_name() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}], "intelRdt": {}}}));
        assert!(validate(&s).unwrap_err().to_string().contains("linux.intelRdt"));
    }

    #[test]
    fn lsm_labels_are_accepted_but_selinux_needs_selinux() {
        let s = spec(
            serde_json::json!({"process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
            "apparmorProfile": "p"}, "linux": {"namespaces": [{"type": "mount"}], "mountLabel": "x"}}),
        );
        assert!(validate(&s).is_ok());
        let s = spec(
            serde_json::json!({"process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
            "selinuxLabel": "system_u:system_r:container_t:s0"}}),
        );
        let enabled = crate::process::lsm::Host::real().selinux_enabled();
        assert_eq!(validate(&s).is_ok(), enabled);
    }

    #[test]
    fn process_attributes_are_accepted() {
        let s = spec(
            serde_json::json!({"process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
            "scheduler": {"policy": "SCHED_BATCH"}, "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 1},
            "execCPUAffinity": {"initial": "0", "final": "0-1"}},
            "linux": {"namespaces": [{"type": "mount"}], "personality": {"domain": "LINUX32"}}}),
        );
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn scheduler_flags_use_the_spec_spelling() {
        let text = br#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"user": {"uid": 0, "gid": 0},
            "args": ["sh"], "cwd": "/", "scheduler": {"policy": "SCHED_DEADLINE",
            "flags": ["SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"]}}}"#;
        let s = parse_spec(text).unwrap();
        let flags = s
            .process()
            .as_ref()
            .unwrap()
            .scheduler()
            .as_ref()
            .unwrap()
            .flags()
            .clone()
            .unwrap();
        let bits: Vec<u64> = flags.into_iter().map(crate::process::attrs::sched_flag).collect();
        assert_eq!(bits, [4, 1, 1]);
    }

    #[test]
    fn deadline_scheduler_needs_every_cpu() {
        let with = |policy: &str, cpus: &str| {
            spec(serde_json::json!({
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                    "scheduler": {"policy": policy, "runtime": 42000, "deadline": 1000000, "period": 1000000}},
                "linux": {"namespaces": [{"type": "mount"}], "resources": {"cpu": {"cpus": cpus}}}}))
        };
        let e = check_deadline_cpus(&with("SCHED_DEADLINE", "0"), Some("0-3\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process scheduler can't be used together with AllowedCPUs"
        );
        assert!(check_deadline_cpus(&with("SCHED_DEADLINE", "0-1,3"), Some("0-3")).is_err());
        assert!(check_deadline_cpus(&with("SCHED_DEADLINE", "0-3"), Some("0-3")).is_ok());
        assert!(check_deadline_cpus(&with("SCHED_DEADLINE", "0-7"), Some("0-3")).is_ok());
        assert!(check_deadline_cpus(&with("SCHED_DEADLINE", ""), Some("0-3")).is_ok());
        assert!(check_deadline_cpus(&with("SCHED_DEADLINE", "0"), None).is_ok());
        assert!(check_deadline_cpus(&with("SCHED_BATCH", "0"), Some("0-3")).is_ok());
    }

    #[test]
    fn a_pids_object_without_limit_sets_no_limit() {
        let limit = |pids: &str| {
            let text = format!(r#"{{"ociVersion": "1.2.0", "linux": {{"resources": {{"pids": {pids}}}}}}}"#);
            let s = parse_spec(text.as_bytes()).unwrap();
            let r = s.linux().as_ref().unwrap().resources().clone().unwrap();
            r.pids().map(|p| p.limit())
        };
        assert_eq!(limit("{}"), None);
        assert_eq!(limit(r#"{"limit": 0}"#), Some(0));
        assert_eq!(limit(r#"{"limit": 7}"#), Some(7));
    }

    #[test]
    fn time_offsets_need_a_new_time_namespace() {
        let offsets = serde_json::json!({"monotonic": {"secs": 1}});
        let none = spec(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}], "timeOffsets": offsets}}));
        let err = validate(&none).unwrap_err().to_string();
        assert!(err.contains("time namespace isn't enabled in the config"), "{err}");
        let joined = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "time", "path": "/proc/1/ns/time"}],
            "timeOffsets": offsets}}),
        );
        let err = validate(&joined).unwrap_err().to_string();
        assert!(err.contains("both namespace path and time offsets"), "{err}");
        let new = spec(serde_json::json!({"linux": {"namespaces": [{"type": "time"}], "timeOffsets": offsets}}));
        assert!(validate(&new).is_ok());
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
