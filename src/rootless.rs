//! Rootless containers, as runc decides and checks them: `--rootless`
//! (true, false or auto: not root, or in a user namespace) says whether
//! cgroup permission errors are ignored; an effective uid other than 0 says
//! the config must give the container a user namespace of its own ids, and
//! which state root is the default ($XDG_RUNTIME_DIR/xrun).
//!
//! Nothing here runs on root's path unless asked: the flag is only parsed,
//! and the user namespace probe only read when a cgroup cannot be made.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::namespaces::userns::{IdMap, UserMaps};
use crate::sys;

/// `--rootless`: Some(bool) when forced, None for auto.
static FLAG: OnceLock<Option<bool>> = OnceLock::new();

/// The state root when --root is not given, as runc's /run/runc.
pub const DEFAULT_ROOT: &str = "/run/xrun";

/// Parses `--rootless` as runc does (Go's ParseBool, or "auto"/empty).
pub fn parse_flag(value: &str) -> Result<Option<bool>> {
    match value {
        "" => Ok(None),
        v if v.eq_ignore_ascii_case("auto") => Ok(None),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
        v => bail!("invalid --rootless value {v:?}: want true, false or auto"),
    }
}

/// Records `--rootless` for this process (main, once).
pub fn set_flag(value: &str) -> Result<()> {
    let parsed = parse_flag(value)?;
    let _ = FLAG.set(parsed);
    Ok(())
}

/// runc's RootlessEUID: not root in our own user namespace.
pub fn euid() -> bool {
    sys::geteuid() != 0
}

/// runc's RootlessCgroups: cgroups we cannot make are skipped (unless the
/// config needs them for limits or names a cgroupsPath).
pub fn cgroups() -> bool {
    match FLAG.get().copied().flatten() {
        Some(forced) => forced,
        None => euid() || in_user_ns(),
    }
}

/// Whether we run inside a user namespace (not the host's initial one, whose
/// uid_map maps all ids to themselves).
pub fn in_user_ns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_map(&m))
}

fn is_initial_map(text: &str) -> bool {
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// The state root: `--root` when given; else, for a user whose
/// $XDG_RUNTIME_DIR runc would honour, `$XDG_RUNTIME_DIR/xrun` (made 0700
/// and sticky, as runc does); else /run/xrun.
pub fn state_root(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(root) = given {
        return Ok(root.to_path_buf());
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let Some(xdg) = xdg.filter(|_| honours_xdg_runtime_dir()) else {
        return Ok(PathBuf::from(DEFAULT_ROOT));
    };
    let root = Path::new(&xdg).join("xrun");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .with_context(|| {
            format!(
                "the path in $XDG_RUNTIME_DIR must be writable by the user: mkdir {}",
                root.display()
            )
        })?;
    // The sticky bit keeps the XDG cleaner from pruning it.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700)).with_context(|| {
        format!(
            "you should check permission of the path in $XDG_RUNTIME_DIR: chmod {}",
            root.display()
        )
    })?;
    Ok(root)
}

/// runc's rule: a user that is not root honours $XDG_RUNTIME_DIR; so does
/// root in a user namespace unless $USER says "root"; the host's real root
/// keeps /run/xrun.
fn honours_xdg_runtime_dir() -> bool {
    if euid() {
        return true;
    }
    if !in_user_ns() {
        return false;
    }
    std::env::var("USER").map_or(true, |u| u != "root")
}

/// A rootless user (no XDG_RUNTIME_DIR) about to make state under the
/// default root it cannot write: one line saying what to do.
pub fn check_state_root(root: &Path) -> Result<()> {
    if !euid() || root != Path::new(DEFAULT_ROOT) {
        return Ok(());
    }
    let existing = root.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    if sys::access_writable(existing).is_err() {
        bail!(
            "state root {DEFAULT_ROOT} is not writable by uid {}: set XDG_RUNTIME_DIR to a directory of yours, or pass --root",
            sys::geteuid()
        );
    }
    Ok(())
}

/// runc's checks of a config run by a user that is not root: a user
/// namespace, mappings for it (unless joined), and uid=/gid= mount options
/// that name mapped ids.
pub fn validate(spec: &Spec, joined: Option<&UserMaps>) -> Result<()> {
    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]);
    let Some(user) = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User) else {
        bail!("rootless container requires user namespaces");
    };
    let uids = linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or(&[]);
    let gids = linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or(&[]);
    if user.path().is_none() {
        if uids.is_empty() {
            bail!("rootless containers requires at least one UID mapping");
        }
        if gids.is_empty() {
            bail!("rootless containers requires at least one GID mapping");
        }
    }
    // A joined namespace's own maps count, not the config's (runc's too).
    let ranges = |config: &[LinuxIdMapping], joined: Option<&Vec<IdMap>>| -> Vec<(u32, u32)> {
        match joined {
            Some(maps) => maps.iter().map(|&(c, _, n)| (c, n)).collect(),
            None => config.iter().map(|m| (m.container_id(), m.size())).collect(),
        }
    };
    let uid_ranges = ranges(uids, joined.map(|j| &j.uids));
    let gid_ranges = ranges(gids, joined.map(|j| &j.gids));
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        for opt in m.options().as_deref().unwrap_or(&[]) {
            let (maps, value) = match opt.split_once('=') {
                Some(("uid", v)) => (&uid_ranges, v),
                Some(("gid", v)) => (&gid_ranges, v),
                _ => continue,
            };
            let Ok(id) = value.parse::<u32>() else { continue };
            if !is_mapped(maps, id) {
                bail!("cannot specify {opt} mount option for rootless container: id {id} is not mapped in the user namespace");
            }
        }
    }
    Ok(())
}

/// Whether `id` falls in one of the (first container id, size) ranges.
fn is_mapped(ranges: &[(u32, u32)], id: u32) -> bool {
    ranges
        .iter()
        .any(|&(first, size)| id >= first && u64::from(id) < u64::from(first) + u64::from(size))
}

/// runc's rule for every process of a rootless container: supplementary
/// groups cannot be set by a user that is not root.
pub fn check_process(additional_gids: &[u32]) -> Result<()> {
    if euid() && !additional_gids.is_empty() {
        bail!("cannot set any additional groups in a rootless container");
    }
    Ok(())
}

/// The error for a limit whose cgroup `dir` could not be made or joined
/// (runc's words, then which delegation is missing).
pub fn no_cgroup_for(controller: &str, dir: &Path) -> anyhow::Error {
    anyhow!(
        "cannot set {controller} limit: container could not join or create cgroup: {} is not delegated to uid {} (rootless)",
        dir.display(),
        sys::geteuid()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_parses_as_runcs() {
        assert_eq!(parse_flag("auto").unwrap(), None);
        assert_eq!(parse_flag("").unwrap(), None);
        assert_eq!(parse_flag("true").unwrap(), Some(true));
        assert_eq!(parse_flag("1").unwrap(), Some(true));
        assert_eq!(parse_flag("False").unwrap(), Some(false));
        assert!(parse_flag("yes").is_err());
    }

    #[test]
    fn only_the_identity_map_is_the_host() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("         0       1000          1\n"));
        assert!(!is_initial_map(""));
    }

    fn spec(v: serde_json::Value) -> Spec {
        let mut doc = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        doc.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn a_rootless_config_needs_a_mapped_user_namespace() {
        let err = |v| validate(&spec(v), None).unwrap_err().to_string();
        assert_eq!(
            err(serde_json::json!({"linux": {"namespaces": [{"type": "mount"}]}})),
            "rootless container requires user namespaces"
        );
        assert_eq!(
            err(serde_json::json!({"linux": {"namespaces": [{"type": "user"}]}})),
            "rootless containers requires at least one UID mapping"
        );
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let ok = serde_json::json!({
            "linux": {"namespaces": [{"type": "user"}], "uidMappings": map, "gidMappings": map},
            "mounts": [{"destination": "/dev/pts", "type": "devpts", "options": ["gid=0", "mode=620"]}]
        });
        assert!(validate(&spec(ok.clone()), None).is_ok());
        let mut bad = ok;
        bad["mounts"][0]["options"] = serde_json::json!(["gid=5"]);
        assert!(err(bad).starts_with("cannot specify gid=5 mount option for rootless container"));
        let joined = serde_json::json!({"linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}});
        assert!(validate(&spec(joined.clone()), None).is_ok());
        // Joined, the namespace's maps decide.
        let mut devpts = joined;
        devpts["mounts"] = serde_json::json!([{"destination": "/dev/pts", "type": "devpts", "options": ["gid=5"]}]);
        let maps = UserMaps {
            uids: vec![(0, 1000, 1)],
            gids: vec![(0, 1000, 1), (1, 200010, 20)],
        };
        assert!(validate(&spec(devpts.clone()), Some(&maps)).is_ok());
        let only_root = UserMaps {
            uids: vec![(0, 1000, 1)],
            gids: vec![(0, 1000, 1)],
        };
        assert!(validate(&spec(devpts), Some(&only_root)).is_err());
    }
}
