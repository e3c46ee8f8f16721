//! `exec --cgroup`: the exec'd process goes into an existing sub-cgroup of
//! the container's, as runc puts it: on cgroup v2 one path below the
//! container's cgroup; on v1 (and hybrid) either one path for every
//! hierarchy or `ctrl[,ctrl]:path` per controller. Also where an exec
//! without --cgroup goes on v2 when the container's cgroup cannot take it
//! (runc's fallback to the init's current cgroup).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::layout::{self, Kind, Layout};
use super::Record;

/// The parsed --cgroup arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sub {
    /// One path, for every hierarchy (the only form on v2).
    All(String),
    /// controller → path (v1).
    PerController(BTreeMap<String, String>),
}

/// Reads the --cgroup arguments with runc's rules and words; None when
/// there are none.
pub fn parse(args: &[String]) -> Result<Option<Sub>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut per = BTreeMap::new();
    for arg in args {
        let Some((ctrls, path)) = arg.split_once(':') else {
            if args.len() != 1 {
                bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)");
            }
            return Ok(Some(Sub::All(arg.clone())));
        };
        for ctrl in ctrls.split(',') {
            if ctrl.is_empty() {
                bail!("invalid --cgroup argument: {arg} (empty <controller> prefix)");
            }
            if per.insert(ctrl.to_string(), path.to_string()).is_some() {
                bail!("invalid --cgroup argument(s): controller {ctrl} specified multiple times");
            }
        }
    }
    Ok(Some(Sub::PerController(per)))
}

/// `base` joined with `sub`, which may not climb above `base` ("/" is
/// `base` itself).
fn below(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(sub).components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop().ok_or_else(|| anyhow!("bad sub cgroup path: {sub}"))?;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(parts.iter().fold(base.to_path_buf(), |p, c| p.join(c)))
}

/// The container's cgroup record with the exec'd process's directories in
/// place of the container's. `layout` is read only for the per-controller
/// form.
pub fn target(record: &Record, sub: &Sub, layout: impl FnOnce() -> Result<Layout>) -> Result<Record> {
    let mut out = record.clone();
    match sub {
        Sub::All(path) => {
            for dir in out
                .v1
                .iter_mut()
                .chain(out.unified.iter_mut())
                .chain(out.freezer.iter_mut())
            {
                *dir = below(dir, path)?;
            }
        }
        Sub::PerController(_) if record.kind == Kind::Unified => {
            bail!("cgroup v2 takes one --cgroup path, without a <controller>: prefix");
        }
        Sub::PerController(per) => {
            let layout = layout()?;
            // Co-mounted controllers share a directory: one move each.
            let mut moved: BTreeMap<PathBuf, (PathBuf, &str)> = BTreeMap::new();
            for (ctrl, path) in per {
                let unknown = || anyhow!("unknown controller {ctrl} in SubCgroupPaths");
                let mount = layout.v1.get(ctrl).ok_or_else(unknown)?;
                let base = record.v1.iter().find(|d| d.starts_with(mount)).ok_or_else(unknown)?;
                let dir = below(base, path)?;
                match moved.get(base) {
                    Some((other, by)) if *other != dir => {
                        bail!("invalid --cgroup argument(s): controllers {by} and {ctrl} share a hierarchy but were given different paths")
                    }
                    _ => moved.insert(base.clone(), (dir, ctrl)),
                };
            }
            for dir in out.v1.iter_mut().chain(out.freezer.iter_mut()) {
                if let Some((to, _)) = moved.get(dir) {
                    *dir = to.clone();
                }
            }
        }
    }
    Ok(out)
}

/// cgroup v2: the init's current cgroup directory (it may have moved
/// itself, or the container's cgroup may refuse processes once it
/// delegates domain controllers). None elsewhere or when unreadable.
pub fn init_cgroup(kind: Kind, init_pid: i32) -> Option<PathBuf> {
    if kind != Kind::Unified {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).ok()?;
    let path = layout::parse_proc_cgroup(&text).remove("")?;
    Some(layout::below(Path::new(layout::ROOT), &path))
}

/// cgroup v2: the exec'd process's directory, for CLONE_INTO_CGROUP, or
/// (no --cgroup given: `fallback_init`) the init's current one when that
/// cannot be opened. None on v1/hybrid, where it is placed by cgroup.procs.
pub fn open_for_clone(record: &Record, fallback_init: Option<i32>) -> Result<Option<OwnedFd>> {
    let (Some(dir), Kind::Unified) = (&record.unified, record.kind) else {
        return Ok(None);
    };
    let open = |dir: &Path| crate::sys::openat(libc::AT_FDCWD, dir, libc::O_PATH | libc::O_DIRECTORY, 0);
    let err = match open(dir) {
        Ok(fd) => return Ok(Some(fd)),
        Err(e) => e,
    };
    if let Some(init_dir) = fallback_init.and_then(|init| init_cgroup(record.kind, init)) {
        crate::debug!("open cgroup {dir:?} failed ({err}); using the init's {init_dir:?}");
        if let Ok(fd) = open(&init_dir) {
            return Ok(Some(fd));
        }
    }
    Err(anyhow!("can't open cgroup: {}: {err}", dir.display()))
}

/// Moves the exec'd `pid` into `record`'s directories, or (v2, no
/// --cgroup given: `fallback_init`) into the init's current cgroup when
/// that fails; runc's words on failure.
pub fn place(record: &Record, pid: i32, fallback_init: Option<i32>) -> Result<()> {
    let err = match super::write_procs(record, pid) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let fallback = fallback_init.and_then(|init| init_cgroup(record.kind, init));
    if let Some(dir) = fallback {
        crate::debug!("adding pid {pid} to the configured cgroup failed ({err:#}); joining the init's {dir:?}");
        let at = Record {
            unified: Some(dir),
            ..Record::empty(record.kind)
        };
        if super::write_procs(&at, pid).is_ok() {
            return Ok(());
        }
    }
    Err(err.context(format!("error adding pid {pid} to cgroups")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_read_as_runc_reads_them() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&args(&["foo"])).unwrap(), Some(Sub::All("foo".into())));
        let per = parse(&args(&["memory:a", "cpu,cpuacct:b"])).unwrap().unwrap();
        let Sub::PerController(m) = per else { panic!() };
        assert_eq!(
            (m["memory"].as_str(), m["cpu"].as_str(), m["cpuacct"].as_str()),
            ("a", "b", "b")
        );
        let e = |a: &[&str]| parse(&args(a)).unwrap_err().to_string();
        assert!(e(&["foo", "memory:a"]).contains("missing <controller>: prefix"));
        assert!(e(&[":a"]).contains("empty <controller> prefix"));
        assert!(e(&["cpu:a", "cpu,memory:b"]).contains("controller cpu specified multiple times"));
    }

    fn record(kind: Kind) -> Record {
        Record {
            v1: vec![
                PathBuf::from("/sys/fs/cgroup/memory/c"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c"),
            ],
            unified: Some(PathBuf::from("/sys/fs/cgroup/unified/c")),
            freezer: None,
            ..Record::empty(kind)
        }
    }

    fn layout() -> Result<Layout> {
        Ok(Layout::from_mountinfo(
            "1 0 0:1 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             2 0 0:2 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
        ))
    }

    #[test]
    fn one_path_moves_every_hierarchy_and_never_climbs_out() {
        let r = record(Kind::Hybrid);
        let t = target(&r, &Sub::All("x/../y".into()), layout).unwrap();
        assert_eq!(t.v1[0], PathBuf::from("/sys/fs/cgroup/memory/c/y"));
        assert_eq!(t.unified, Some(PathBuf::from("/sys/fs/cgroup/unified/c/y")));
        let t = target(&r, &Sub::All("/".into()), layout).unwrap();
        assert_eq!(t.v1, r.v1);
        for bad in ["..", "a/../..", "/../c"] {
            let e = target(&r, &Sub::All(bad.into()), layout).unwrap_err().to_string();
            assert_eq!(e, format!("bad sub cgroup path: {bad}"));
        }
    }

    #[test]
    fn per_controller_paths_move_only_their_hierarchy() {
        let r = record(Kind::Hybrid);
        let sub = |a: &[&str]| parse(&args(a)).unwrap().unwrap();
        let t = target(&r, &sub(&["cpu:s"]), layout).unwrap();
        assert_eq!(t.v1[0], r.v1[0]);
        assert_eq!(t.v1[1], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c/s"));
        assert_eq!(t.unified, r.unified);
        let e = |a: &[&str]| target(&r, &sub(a), layout).unwrap_err().to_string();
        assert_eq!(e(&["whaaat:/"]), "unknown controller whaaat in SubCgroupPaths");
        assert_eq!(e(&["memory:.."]), "bad sub cgroup path: ..");
        assert!(e(&["cpu:a", "cpuacct:b"]).contains("share a hierarchy"));
        assert!(target(&record(Kind::Unified), &sub(&["memory:a"]), layout).is_err());
    }
}
