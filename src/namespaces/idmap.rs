//! The id maps of a new user namespace written by a parent that is not
//! root (rootless), as runc writes them: a map of only our own id is
//! written directly (gid_map after "deny" to setgroups, which the kernel
//! requires of an unprivileged writer); any other is refused to us, and
//! goes through the setuid helpers newuidmap/newgidmap (Debian's uidmap),
//! which allow the ranges /etc/subuid and /etc/subgid give the user.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxIdMapping;

use crate::sys;

/// uid_map / gid_map text: one "container host size" line a mapping.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes the maps of `pid`'s new user namespace as a user that is not root.
pub fn write_rootless(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    if only_own(gids, sys::getegid()) {
        let path = format!("/proc/{pid}/setgroups");
        fs::write(&path, "deny").with_context(|| format!("write {path}"))?;
    }
    write_one(pid, "uid_map", "newuidmap", "/etc/subuid", uids)?;
    write_one(pid, "gid_map", "newgidmap", "/etc/subgid", gids)
}

/// Whether `maps` maps only `own` (the one map the kernel lets us write).
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

fn write_one(pid: i32, file: &str, helper: &str, ranges: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    let direct = fs::write(&path, map_text(maps));
    let Err(e) = direct else { return Ok(()) };
    if e.raw_os_error() != Some(libc::EPERM) {
        return Err(e).with_context(|| format!("write {path}"));
    }
    let Some(tool) = find_in_path(helper) else {
        bail!(
            "write {path}: {e}: mapping more than one's own id needs {helper} (Debian package uidmap) and a range in {ranges}"
        );
    };
    let mut cmd = Command::new(&tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id(), m.host_id(), m.size()].map(|n| n.to_string()));
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {}", tool.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "{helper} {pid} failed ({}): {why} (the ranges allowed to this user are in {ranges})",
            out.status
        );
    }
    Ok(())
}

/// `name` looked up in $PATH as exec would, by the parent (as runc does).
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| sys::access_executable(p).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(v: serde_json::Value) -> Vec<LinuxIdMapping> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_a_single_map_of_our_own_id_is_ours_to_write() {
        let own = maps(serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]));
        assert!(only_own(&own, 1000));
        assert!(!only_own(&own, 1001));
        let ranges = maps(serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 1},
            {"containerID": 1, "hostID": 100000, "size": 65536}
        ]));
        assert!(!only_own(&ranges, 1000));
        assert_eq!(map_text(&ranges), "0 1000 1\n1 100000 65536\n");
    }
}
