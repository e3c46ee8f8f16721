//! Which cgroup layout the host has, where each hierarchy is mounted, and
//! which cgroup xrun itself is in: read once per call, from statfs,
//! /proc/self/mountinfo and /proc/self/cgroup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
pub const ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// cgroup2 at /sys/fs/cgroup, every controller there.
    Unified,
    /// v1 controllers, plus a cgroup2 mount at /sys/fs/cgroup/unified.
    Hybrid,
    /// v1 controllers only.
    Legacy,
}

/// The host's hierarchies.
#[derive(Debug, Clone)]
pub struct Layout {
    pub kind: Kind,
    /// The cgroup2 mount point (unified or hybrid).
    pub unified: Option<PathBuf>,
    /// v1: controller (or "name=systemd") → mount point. A co-mounted pair
    /// (cpu,cpuacct) appears under both names with the same path.
    pub v1: BTreeMap<String, PathBuf>,
}

impl Layout {
    pub fn detect() -> Result<Layout> {
        if crate::sys::statfs_type(Path::new(ROOT)).ok() == Some(CGROUP2_SUPER_MAGIC) {
            return Ok(Layout {
                kind: Kind::Unified,
                unified: Some(PathBuf::from(ROOT)),
                v1: BTreeMap::new(),
            });
        }
        let text = std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
        let mut layout = Layout::from_mountinfo(&text);
        let hybrid = format!("{ROOT}/unified");
        if crate::sys::statfs_type(Path::new(&hybrid)).ok() == Some(CGROUP2_SUPER_MAGIC) {
            layout.kind = Kind::Hybrid;
            layout.unified = Some(PathBuf::from(hybrid));
        }
        crate::debug!(
            "cgroups: {:?} layout, v1 controllers {:?}",
            layout.kind,
            layout.v1.keys().collect::<Vec<_>>()
        );
        Ok(layout)
    }

    /// The v1 hierarchies below /sys/fs/cgroup, from mountinfo.
    pub fn from_mountinfo(text: &str) -> Layout {
        let mut v1 = BTreeMap::new();
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = left.split(' ').nth(4).unwrap_or("");
            let mut r = right.split(' ');
            if r.next() != Some("cgroup") || !mountpoint.starts_with(ROOT) {
                continue;
            }
            let superopts = r.nth(1).unwrap_or("");
            for opt in superopts.split(',') {
                if matches!(opt, "rw" | "ro" | "clone_children" | "noprefix" | "xattr") || opt.contains("release_agent")
                {
                    continue;
                }
                v1.entry(opt.to_string()).or_insert_with(|| PathBuf::from(mountpoint));
            }
        }
        Layout {
            kind: Kind::Legacy,
            unified: None,
            v1,
        }
    }

    /// Controllers available on the cgroup2 mount (read from its root).
    pub fn unified_controllers(&self) -> Vec<String> {
        let Some(u) = &self.unified else { return Vec::new() };
        std::fs::read_to_string(u.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }
}

/// xrun's own cgroup per hierarchy, from /proc/self/cgroup: "" is the
/// cgroup2 entry, otherwise the v1 controller list ("cpu,cpuacct").
pub fn own_cgroups() -> BTreeMap<String, PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    parse_proc_cgroup(&text)
}

pub fn parse_proc_cgroup(text: &str) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        if let (Some(c), Some(p)) = (controllers, path) {
            for name in c.split(',') {
                out.insert(name.to_string(), PathBuf::from(p));
            }
            if c.is_empty() {
                out.insert(String::new(), PathBuf::from(p));
            }
        }
    }
    out
}

/// Joins a cgroup path below a hierarchy's mount point, refusing any `..`
/// that would climb out of it.
pub fn below(mount: &Path, path: &Path) -> PathBuf {
    mount.join(crate::rootfs::resolve::clean(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_mounts_and_comounts_are_found() {
        let text = "\
30 29 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
31 29 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
32 29 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 1 0:29 / /mnt/other rw - cgroup cgroup rw,memory
";
        let l = Layout::from_mountinfo(text);
        assert_eq!(l.v1["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1["name=systemd"], PathBuf::from("/sys/fs/cgroup/systemd"));
        assert!(!l.v1.contains_key("memory"), "only hierarchies under /sys/fs/cgroup");
    }

    #[test]
    fn proc_cgroup_lines_map_each_controller() {
        let m = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/s\n0::/u\n");
        assert_eq!(m["memory"], PathBuf::from("/a/b"));
        assert_eq!(m["cpuacct"], PathBuf::from("/"));
        assert_eq!(m["name=systemd"], PathBuf::from("/s"));
        assert_eq!(m[""], PathBuf::from("/u"));
    }

    #[test]
    fn paths_never_climb_out_of_the_mount() {
        assert_eq!(
            below(Path::new("/sys/fs/cgroup/memory"), Path::new("/../../etc")),
            PathBuf::from("/sys/fs/cgroup/memory/etc")
        );
    }
}
