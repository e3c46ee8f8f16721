//! cgroups: where the container's cgroup is created (cgroupsPath), the
//! limits of linux.resources as the host and the container see them, OOM,
//! pids, cpu and cpuset, the freezer (pause/resume), killing every process
//! of the cgroup, device rules, and removal on delete.
//!
//! The tests adapt to the host's layout: pure cgroup v2 (/sys/fs/cgroup is
//! cgroup2), hybrid (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified)
//! or legacy v1. Container cgroups are found from the host through
//! /proc/<init pid>/cgroup, since the state JSON does not name them.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Host layout and cgroup directories

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// cgroup2 at /sys/fs/cgroup with every controller.
    Unified,
    /// v1 controllers, cgroup2 at /sys/fs/cgroup/unified.
    Hybrid,
    /// v1 only.
    Legacy,
}

fn fs_magic(path: &str) -> Option<i64> {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: statfs fills a plain-old-data struct from a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn layout() -> Layout {
    if fs_magic(CGROUP_ROOT) == Some(CGROUP2_SUPER_MAGIC) {
        Layout::Unified
    } else if fs_magic(&format!("{CGROUP_ROOT}/unified")) == Some(CGROUP2_SUPER_MAGIC) {
        Layout::Hybrid
    } else {
        Layout::Legacy
    }
}

/// A cgroup filesystem mounted below /sys/fs/cgroup on the host.
#[derive(Debug, Clone)]
struct CgroupMount {
    /// v1 controllers (and "name=..."), empty for cgroup2.
    controllers: Vec<String>,
    /// The cgroup the mount shows at its mount point.
    root: String,
    mount_point: PathBuf,
}

fn cgroup_mounts() -> Vec<CgroupMount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) = (left.get(3), left.get(4), right.first()) else {
            continue;
        };
        if !mount_point.starts_with(CGROUP_ROOT) || !matches!(*fstype, "cgroup" | "cgroup2") {
            continue;
        }
        let controllers = if *fstype == "cgroup" {
            let superopts = right.get(2).copied().unwrap_or("");
            superopts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr"))
                .filter(|o| !o.starts_with("release_agent"))
                .map(String::from)
                .collect()
        } else {
            Vec::new()
        };
        out.push(CgroupMount {
            controllers,
            root: root.to_string(),
            mount_point: PathBuf::from(mount_point),
        });
    }
    out
}

/// One line of /proc/<pid>/cgroup with the host directory it names.
#[derive(Debug, Clone)]
struct Hierarchy {
    /// "cpu,cpuacct", "name=systemd", or "" for cgroup2.
    controllers: String,
    /// The cgroup path as /proc/<pid>/cgroup shows it.
    path: String,
    mount: CgroupMount,
}

impl Hierarchy {
    /// The host directory of cgroup `path` in this hierarchy.
    fn host_dir(&self, path: &str) -> PathBuf {
        let rel = path
            .strip_prefix(self.mount.root.trim_end_matches('/'))
            .unwrap_or_else(|| panic!("cgroup {path} is outside the mount of {:?}", self.mount));
        self.mount.mount_point.join(rel.trim_start_matches('/'))
    }

    fn dir(&self) -> PathBuf {
        self.host_dir(&self.path)
    }

    fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.split(',').any(|c| c == controller)
    }
}

/// The hierarchies of `/proc/<pid>/cgroup` (pid "self" for the test) that
/// are mounted below /sys/fs/cgroup, i.e. the ones a runtime can use.
fn hierarchies(pid: &str) -> Vec<Hierarchy> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mounts = cgroup_mounts();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let mount = mounts.iter().find(|m| {
            if wanted.is_empty() {
                m.controllers.is_empty()
            } else {
                wanted.iter().all(|w| m.controllers.iter().any(|c| c == w))
            }
        });
        match mount {
            Some(m) => out.push(Hierarchy {
                controllers: controllers.to_string(),
                path: path.to_string(),
                mount: m.clone(),
            }),
            None => eprintln!("cgroup hierarchy {controllers:?} of {pid} is not mounted; not checked"),
        }
    }
    out
}

/// A container's cgroup as the host sees it, from its init's
/// /proc/<pid>/cgroup.
struct ContainerCgroup {
    pid: i32,
    hierarchies: Vec<Hierarchy>,
}

impl ContainerCgroup {
    #[track_caller]
    fn of(t: &TestEnv, id: &str) -> ContainerCgroup {
        let state = t.state(id).unwrap_or_else(|| panic!("no state for {id}"));
        let pid = state["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {state}")) as i32;
        let hierarchies = hierarchies(&pid.to_string());
        assert!(!hierarchies.is_empty(), "no cgroup hierarchy for pid {pid}");
        ContainerCgroup { pid, hierarchies }
    }

    /// Directory holding `controller`'s files: its v1 hierarchy, else the
    /// cgroup2 one (unified hosts; controllers such as hugetlb on hybrid).
    /// "" names the cgroup2 hierarchy itself (cgroup.events, memory.high).
    #[track_caller]
    fn dir(&self, controller: &str) -> PathBuf {
        let v1 = self.hierarchies.iter().find(|h| h.has(controller));
        let h = v1.or_else(|| self.hierarchies.iter().find(|h| h.is_v2()));
        h.unwrap_or_else(|| panic!("no hierarchy for {controller} in {:?}", self.hierarchies))
            .dir()
    }

    /// Contents of a controller's file, trimmed.
    #[track_caller]
    fn read(&self, controller: &str, file: &str) -> String {
        let path = self.dir(controller).join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// Every host directory of the container's cgroup.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.hierarchies.iter().map(Hierarchy::dir).collect();
        dirs.dedup();
        dirs
    }

    /// Host pids in the cgroup (the hierarchy that has the pids controller
    /// or the cgroup2 one, else any).
    fn procs(&self) -> Vec<i32> {
        let h = self
            .hierarchies
            .iter()
            .find(|h| h.has("pids") || (layout() == Layout::Unified && h.is_v2()))
            .unwrap_or(&self.hierarchies[0]);
        let text = fs::read_to_string(h.dir().join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

/// Where a relative cgroupsPath lands in each hierarchy: below the cgroup
/// of the runtime (this test process's, which it inherits); on pure v2
/// below that cgroup's parent.
fn relative_dirs(rel: &str) -> Vec<PathBuf> {
    let unified = layout() == Layout::Unified;
    let mut dirs: Vec<PathBuf> = hierarchies("self")
        .iter()
        .map(|h| {
            let own = Path::new(&h.path);
            let base = if unified {
                own.parent().unwrap_or(Path::new("/"))
            } else {
                own
            };
            h.host_dir(&base.join(rel).to_string_lossy())
        })
        .collect();
    dirs.dedup();
    dirs
}

/// Where an absolute cgroupsPath lands: below each hierarchy's root.
pub(crate) fn absolute_dirs(abs: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = hierarchies("self").iter().map(|h| h.host_dir(abs)).collect();
    dirs.dedup();
    dirs
}

#[track_caller]
fn assert_no_dirs(dirs: &[PathBuf]) {
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup directories left behind: {left:?}");
}

/// Removes (rmdir only, deepest first) cgroup directories named after a
/// test's container ids that a runtime may legitimately leave behind, such
/// as the parents of a nested cgroupsPath. Declare it before the TestEnv so
/// it runs after the containers are deleted.
#[derive(Default)]
pub(crate) struct RmdirGuard(pub(crate) Vec<PathBuf>);

impl Drop for RmdirGuard {
    fn drop(&mut self) {
        let mut dirs = std::mem::take(&mut self.0);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = fs::remove_dir(&d);
        }
    }
}

/// True if `pid` no longer runs (gone, or a zombie waiting for its parent).
fn process_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(true),
    }
}

/// linux.resources, created if missing.
fn resources(t: &mut TestEnv) -> &mut Value {
    let linux = &mut t.config["linux"];
    if linux.get("resources").is_none() {
        linux["resources"] = json!({});
    }
    &mut linux["resources"]
}

fn add_mount(t: &mut TestEnv, m: Value) {
    t.config["mounts"].as_array_mut().unwrap().push(m);
}

/// A cgroup namespace and the `cgroup` mount at /sys/fs/cgroup, as
/// `runc spec` writes them.
fn add_cgroup_ns_and_mount(t: &mut TestEnv) {
    set_namespace(&mut t.config, "cgroup", None);
    add_mount(
        t,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    );
}

/// Asserts a refused create: it fails with a one-line message containing
/// one of `needles`, and leaves nothing behind (state, mounts, processes,
/// cgroup directories).
#[track_caller]
fn assert_create_fails_cleanly(t: &TestEnv, id: &str, needles: &[&str], cgroup_dirs: &[PathBuf]) {
    let out = t.create(id, &[]);
    out.assert_fails();
    let msg = out.stderr.trim();
    // runc adds warnings (e.g. about OOM counters of the cgroup it removed).
    let errors = msg
        .lines()
        .filter(|l| !(runtime_is_runc() && l.contains("level=warning")))
        .count();
    assert_eq!(errors, 1, "expected one line of error, got:\n{msg}");
    assert!(
        needles.iter().any(|n| msg.contains(n)),
        "error does not name any of {needles:?}: {msg}"
    );
    assert!(t.state(id).is_none(), "state of {id} exists after a failed create");
    t.assert_clean(id);
    assert_no_dirs(cgroup_dirs);
}

fn int_of(s: &str) -> i64 {
    s.trim().parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

// ---------------------------------------------------------------------------
// Where the cgroup is

#[test]
fn default_cgroup_is_named_after_the_id_and_removed_on_delete() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    let suffix = format!("/{id}");
    for h in &cg.hierarchies {
        assert!(
            h.path.ends_with(&suffix),
            "hierarchy {:?}: cgroup {} does not end with the id",
            h.controllers,
            h.path
        );
        let procs = fs::read_to_string(h.dir().join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == cg.pid.to_string()),
            "init {} not in {}: {procs}",
            cg.pid,
            h.dir().display()
        );
    }
    if layout() != Layout::Legacy {
        assert!(
            cg.hierarchies.iter().any(Hierarchy::is_v2),
            "init is not in a cgroup2 cgroup: {:?}",
            cg.hierarchies
        );
    }
    // Each directory is where a relative cgroupsPath puts it.
    let expected = relative_dirs(&id);
    for dir in cg.dirs() {
        assert!(expected.contains(&dir), "{} is not one of {expected:?}", dir.display());
    }

    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

#[test]
fn absolute_cgroups_path_is_below_each_hierarchy_root() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let path = format!("/xrun-test-{id}");
    t.config["linux"]["cgroupsPath"] = json!(path);
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    for h in &cg.hierarchies {
        assert_eq!(h.path, path, "hierarchy {:?}", h.controllers);
        assert_eq!(
            h.dir(),
            h.mount.mount_point.join(path.trim_start_matches('/')),
            "hierarchy {:?}",
            h.controllers
        );
        assert!(h.dir().is_dir(), "{} missing", h.dir().display());
    }
    assert_eq!(cg.dirs().len(), absolute_dirs(&path).len(), "{:?}", cg.hierarchies);

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&absolute_dirs(&path));
    t.assert_clean(&id);
}

#[test]
fn relative_cgroups_path_is_below_the_runtime_cgroup() {
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let parent = format!("xrun-rel-{id}");
    let path = format!("{parent}/c");
    let leaves = relative_dirs(&path);
    let parents = relative_dirs(&parent);
    guard.0.extend(leaves.iter().chain(&parents).cloned());
    t.config["linux"]["cgroupsPath"] = json!(path);
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    for h in &cg.hierarchies {
        assert!(
            h.path.ends_with(&format!("/{path}")),
            "hierarchy {:?}: {}",
            h.controllers,
            h.path
        );
    }
    let mut dirs = cg.dirs();
    dirs.sort();
    let mut expected = leaves.clone();
    expected.sort();
    assert_eq!(dirs, expected, "cgroup directories of the container");

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&leaves);
    t.assert_clean(&id);
    // runc removes only the leaf; xrun also removes the parents it made.
    if !runtime_is_runc() {
        assert_no_dirs(&parents);
    }
}

// ---------------------------------------------------------------------------
// Memory

#[test]
fn memory_limit_is_visible_on_host_and_in_cgroup_namespace() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    const LIMIT: i64 = 64 << 20;
    resources(&mut t)["memory"] = json!({"limit": LIMIT});
    add_cgroup_ns_and_mount(&mut t);
    let inside = if layout() == Layout::Unified {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    t.args(&[
        "checker",
        "--path",
        inside,
        "--path",
        "/proc/self/cgroup",
        "--sleep",
        "60",
    ]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);

    let cg = ContainerCgroup::of(&t, &id);
    let file = if layout() == Layout::Unified {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(int_of(&cg.read("memory", file)), LIMIT, "host {file}");

    let seen = report.path(inside);
    assert_eq!(seen["read"], "ok", "{seen}");
    assert_eq!(int_of(seen["content"].as_str().unwrap_or("")), LIMIT, "{inside} inside");
    assert_ne!(report.ns("cgroup"), host_ns("cgroup"), "no cgroup namespace");
    // The namespace is rooted at the container's cgroup in every hierarchy.
    let own = report.path("/proc/self/cgroup");
    let text = own["content"].as_str().unwrap_or("");
    assert!(!text.is_empty(), "{own}");
    for line in text.lines() {
        assert!(line.ends_with(":/"), "/proc/self/cgroup inside: {line:?} in\n{text}");
    }
    // The cgroup mount is read-only as configured.
    // (On v1 the tmpfs holding the hierarchies may stay writable: runc
    // leaves it so.)
    let m = if layout() == Layout::Unified {
        report.mount_at("/sys/fs/cgroup")
    } else {
        report.mount_at("/sys/fs/cgroup/memory")
    };
    assert!(options(&m["options"]).contains(&"ro".to_string()), "{m}");

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

#[test]
fn exceeding_memory_limit_is_an_oom_kill() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    const LIMIT: i64 = 32 << 20;
    // swap == limit: no swap, so the allocation cannot escape to it.
    resources(&mut t)["memory"] = json!({"limit": LIMIT, "swap": LIMIT});
    t.args(&["checker", "--alloc", "100"]);
    // --keep leaves the stopped container, and its cgroup, for inspection.
    let out = t.run(&id, &["--keep"]);
    assert_eq!(
        out.code(),
        137,
        "expected SIGKILL by the OOM killer\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        Checker::parse(&out.stdout).is_none(),
        "the allocation succeeded: {}",
        out.stdout
    );
    assert_eq!(t.status(&id), "stopped");

    let dirs = relative_dirs(&id);
    let memory_dir = if layout() == Layout::Unified {
        dirs.iter().find(|d| d.join("memory.events").exists())
    } else {
        dirs.iter().find(|d| d.join("memory.failcnt").exists())
    };
    let memory_dir = memory_dir.unwrap_or_else(|| panic!("no memory cgroup among {dirs:?}"));
    let read = |f: &str| fs::read_to_string(memory_dir.join(f)).unwrap_or_default();
    let counter = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<i64>().ok())
    };
    if layout() == Layout::Unified {
        let events = read("memory.events");
        let kills = counter(&events, "oom_kill ").unwrap_or_else(|| panic!("memory.events: {events}"));
        assert!(kills >= 1, "memory.events: {events}");
        assert_eq!(int_of(&read("memory.max")), LIMIT);
    } else {
        assert_eq!(int_of(&read("memory.limit_in_bytes")), LIMIT);
        let oom = read("memory.oom_control");
        match counter(&oom, "oom_kill ") {
            Some(kills) => assert!(kills >= 1, "memory.oom_control: {oom}"),
            None => assert!(int_of(&read("memory.failcnt")) > 0, "memory.failcnt is 0"),
        }
    }

    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&dirs);
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// pids and cpu

#[test]
fn pids_limit_caps_forks() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    resources(&mut t)["pids"] = json!({"limit": 10});
    t.args(&["checker", "--fork", "20", "--sleep", "60"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    let cg = ContainerCgroup::of(&t, &id);
    assert_eq!(cg.read("pids", "pids.max"), "10");

    let fork = &report.0["fork"];
    let ok = fork["ok"].as_i64().unwrap_or_else(|| panic!("no fork report: {fork}"));
    // The init counts against the limit, and nothing else is in the cgroup.
    assert_eq!(ok, 9, "forks that succeeded under pids.max 10: {fork}");
    assert_eq!(fork["errno_name"], "EAGAIN", "{fork}");
    // Once the children are gone the container can fork again.
    assert_eq!(fork["again"], "ok", "{fork}");
    assert_eq!(t.status(&id), "running");

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

/// cpu.weight runc 1.1 and xrun give 1024 shares (the default both ways).
const DEFAULT_WEIGHT: i64 = 100;

#[test]
fn cpu_shares_quota_and_cpuset_are_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    resources(&mut t)["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"});
    t.args(&["checker", "--sleep", "60"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    let cg = ContainerCgroup::of(&t, &id);

    if layout() == Layout::Unified {
        // Shares are converted to a weight; runc 1.1 and newer runtimes use
        // different formulas, but half the default is below the default.
        let weight = int_of(&cg.read("cpu", "cpu.weight"));
        assert!(
            (1..DEFAULT_WEIGHT).contains(&weight),
            "cpu.weight {weight} for 512 shares"
        );
        assert_eq!(cg.read("cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(cg.read("cpu", "cpu.shares"), "512");
        assert_eq!(cg.read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg.read("cpu", "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(cg.read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(report.status("Cpus_allowed_list"), "0", "affinity inside");

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Freezer

fn read_counter(file: &Path) -> u64 {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.trim().parse().unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let out = t.host_dir("out");
    add_mount(&mut t, bind_mount(&out, "/out", &[]));
    t.args(&["checker", "--count-to", "/out/count"]);
    let counter = out.join("count");
    t.create(&id, &[]).assert_ok();
    t.rt(&["start", &id]).assert_ok();
    assert!(
        poll_until(Duration::from_secs(10), || read_counter(&counter) > 2),
        "the counter never advanced"
    );
    // Only a paused container can be resumed.
    t.rt(&["resume", &id]).assert_fails();
    assert_eq!(t.status(&id), "running");

    let cg = ContainerCgroup::of(&t, &id);
    t.rt(&["pause", &id]).assert_ok();
    assert_eq!(t.status(&id), "paused");
    if layout() == Layout::Unified {
        let events = cg.read("", "cgroup.events");
        assert!(events.lines().any(|l| l == "frozen 1"), "cgroup.events: {events}");
    } else {
        assert_eq!(cg.read("freezer", "freezer.state"), "FROZEN");
    }
    let frozen_at = read_counter(&counter);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_counter(&counter), frozen_at, "the counter advanced while paused");
    // A second pause is refused.
    t.rt(&["pause", &id]).assert_fails();

    t.rt(&["resume", &id]).assert_ok();
    assert_eq!(t.status(&id), "running");
    assert!(
        poll_until(Duration::from_secs(5), || read_counter(&counter) > frozen_at),
        "the counter did not advance after resume"
    );

    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    t.rt(&["pause", &id]).assert_fails();
    t.rt(&["resume", &id]).assert_fails();
    assert_eq!(t.status(&id), "stopped");
    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

#[test]
fn paused_container_can_be_force_deleted() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    t.rt(&["pause", &id]).assert_ok();
    assert_eq!(t.status(&id), "paused");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert!(
        poll_until(Duration::from_secs(5), || process_gone(cg.pid)),
        "init {} survived",
        cg.pid
    );
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Every process of the cgroup

/// Starts `sh` with two background sleeps in the host pid namespace (so
/// killing the init does not take the others with it) and returns the
/// cgroup and the pids in it once all three are there.
fn start_with_children(t: &mut TestEnv, id: &str) -> (ContainerCgroup, Vec<i32>) {
    remove_namespace(&mut t.config, "pid");
    t.args(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    t.create(id, &[]).assert_ok();
    t.rt(&["start", id]).assert_ok();
    t.wait_status(id, "running");
    let cg = ContainerCgroup::of(t, id);
    let mut procs = Vec::new();
    let all_there = poll_until(Duration::from_secs(10), || {
        procs = cg.procs();
        procs.len() >= 3
    });
    assert!(all_there, "expected sh and two sleeps in the cgroup, got {procs:?}");
    assert!(procs.contains(&cg.pid), "init {} not in {procs:?}", cg.pid);
    (cg, procs)
}

#[track_caller]
fn assert_all_gone(pids: &[i32]) {
    let gone = poll_until(Duration::from_secs(5), || pids.iter().all(|p| process_gone(*p)));
    let left: Vec<&i32> = pids.iter().filter(|p| !process_gone(**p)).collect();
    assert!(gone, "container processes survived: {left:?}");
}

#[test]
fn kill_all_ends_every_process_of_the_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let (cg, pids) = start_with_children(&mut t, &id);
    t.rt(&["kill", "--all", &id, "KILL"]).assert_ok();
    assert_all_gone(&pids);
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// runc 1.4: SIGKILL to a container without its own pid namespace reaches
// every process of its cgroup, --all or not (runc 1.1 signals the init only).
#[test]
fn sigkill_without_a_pid_namespace_ends_every_process_of_the_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    let (cg, pids) = start_with_children(&mut t, &id);
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    assert_all_gone(&pids);
    t.wait_status(&id, "stopped");
    assert!(cg.procs().is_empty(), "cgroup.procs after kill: {:?}", cg.procs());
    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// The init of a container in the host's pid namespace can die and leave
// the others running: kill still ends them (runc 1.4, its issue 4047).
#[test]
fn sigkill_after_the_init_is_gone_ends_the_rest() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    let (cg, pids) = start_with_children(&mut t, &id);
    // SAFETY: kill(2) of the container's init, a process this test started.
    assert_eq!(unsafe { libc::kill(cg.pid, libc::SIGKILL) }, 0);
    assert!(
        poll_until(Duration::from_secs(5), || process_gone(cg.pid)),
        "init {} survived",
        cg.pid
    );
    t.wait_status(&id, "stopped");
    let rest: Vec<i32> = pids.iter().copied().filter(|p| *p != cg.pid).collect();
    assert!(rest.iter().all(|p| !process_gone(*p)), "the sleeps died with the init");
    // Any other signal needs the init.
    let out = t.rt(&["kill", &id, "TERM"]);
    out.assert_fails();
    assert!(out.stderr.contains("container not running"), "{}", out.stderr);
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    assert_all_gone(&rest);
    assert!(cg.procs().is_empty(), "cgroup.procs after kill: {:?}", cg.procs());
    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// Signal 0 checks that the container runs; --all makes a stopped one no
// error (runc 1.4, where -a is otherwise obsolete).
#[test]
fn signal_zero_checks_the_container_runs() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    t.start_sleeper(&id);
    t.rt(&["kill", &id, "0"]).assert_ok();
    assert_eq!(t.status(&id), "running");
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    let out = t.rt(&["kill", &id, "0"]);
    out.assert_fails();
    assert!(out.stderr.contains("container not running"), "{}", out.stderr);
    t.rt(&["kill", "--all", &id, "0"]).assert_ok();
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn delete_force_ends_every_process_of_the_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let (cg, pids) = start_with_children(&mut t, &id);
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_all_gone(&pids);
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// Software in a container that manages cgroups (systemd, a nested runtime)
// makes cgroups below the container's own: delete ends their processes and
// removes them with it (delete.bats' "with subcgroups"; on v2 the container's
// directory used to be left behind, busy).
#[test]
fn delete_removes_the_sub_cgroups_the_container_made() {
    // The sub-cgroups are the test's own: gone on every path, whatever the
    // runtime does (declared first, so it runs after the container's delete).
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    let pid_file = t.dir.join("exec.pid");
    t.rt(&["exec", "--detach", "--pid-file", s(&pid_file), &id, "sleep", "100"])
        .assert_ok();
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let mut subs = Vec::new();
    for dir in cg.dirs() {
        let deeper = dir.join("sub").join("deeper");
        fs::create_dir_all(&deeper).unwrap();
        // A new v1 cpuset takes no task until it has cpus and mems (on v2
        // the sub-cgroups have no cpuset files: no controller is enabled).
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let Ok(value) = fs::read_to_string(dir.join(file)) else {
                continue;
            };
            for sub in [dir.join("sub"), deeper.clone()] {
                if sub.join(file).exists() {
                    fs::write(sub.join(file), &value).unwrap();
                }
            }
        }
        guard.0.extend([dir.clone(), dir.join("sub"), deeper.clone()]);
        fs::write(deeper.join("cgroup.procs"), pid.to_string()).unwrap();
        subs.push(deeper);
    }
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains("/sub/deeper"), "{cgroup}");
    // ps sees the process in the sub-cgroup too.
    let ps = t.rt(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    assert!(ps.stdout.contains(&pid.to_string()), "ps: {}", ps.stdout);

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_all_gone(&[pid, cg.pid]);
    assert_no_dirs(&subs);
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Refused limits

#[test]
fn nonexistent_cpu_fails_create_cleanly() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    resources(&mut t)["cpu"] = json!({"cpus": "9999"});
    t.args(&["checker", "--sleep", "60"]);
    assert_create_fails_cleanly(&t, &id, &["cpuset.cpus", "cpu.cpus"], &relative_dirs(&id));
}

#[test]
fn unified_key_with_a_slash_fails_create_cleanly() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    // On v1/hybrid any unified key is refused; on v2 this one must be.
    resources(&mut t)["unified"] = json!({"../memory.max": "1"});
    t.args(&["checker", "--sleep", "60"]);
    assert_create_fails_cleanly(&t, &id, &["unified", "../memory.max"], &relative_dirs(&id));
}

// A hugetlb limit xrun cannot apply (a page size this kernel lacks, or no
// hugetlb controller at all) refuses the container, as runc does.
#[test]
fn hugetlb_limit_that_cannot_be_applied_fails_create_cleanly() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    if Path::new("/sys/kernel/mm/hugepages/hugepages-4096kB").exists() {
        return skip("this kernel has 4 MB huge pages");
    }
    resources(&mut t)["hugepageLimits"] = json!([{"pageSize": "4MB", "limit": 4 << 20}]);
    t.args(&["checker", "--sleep", "60"]);
    assert_create_fails_cleanly(&t, &id, &["hugepageLimits", "hugetlb"], &relative_dirs(&id));
}

// SCHED_DEADLINE needs every CPU in the affinity: with a narrower cpuset it
// can never be set, and runc 1.4 says so.
#[test]
fn deadline_scheduler_with_a_narrower_cpuset_fails_create_cleanly() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if online.trim() == "0" {
        return skip("one CPU: every cpuset is all of them");
    }
    let id = t.id.clone();
    resources(&mut t)["cpu"] = json!({"cpus": "0"});
    t.config["process"]["scheduler"] =
        json!({"policy": "SCHED_DEADLINE", "nice": 19, "runtime": 42000, "deadline": 1000000, "period": 1000000});
    t.args(&["checker", "--sleep", "60"]);
    assert_create_fails_cleanly(
        &t,
        &id,
        &["process scheduler can't be used together with AllowedCPUs"],
        &relative_dirs(&id),
    );
}

#[test]
fn unified_resources_on_cgroup_v1_are_an_invalid_configuration() {
    let Some(mut t) = TestEnv::new() else { return };
    if layout() == Layout::Unified {
        return skip("cgroup v2 host: unified resources are applied");
    }
    let id = t.id.clone();
    resources(&mut t)["unified"] = json!({"memory.min": "131072"});
    t.args(&["checker", "--sleep", "60"]);
    assert_create_fails_cleanly(&t, &id, &["invalid configuration"], &relative_dirs(&id));
}

// ---------------------------------------------------------------------------
// Layout-specific

#[test]
fn hugetlb_limit_is_written_to_cgroup2() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let unified = match layout() {
        Layout::Unified => PathBuf::from(CGROUP_ROOT),
        Layout::Hybrid => PathBuf::from(CGROUP_ROOT).join("unified"),
        Layout::Legacy => return skip("legacy cgroup v1 host: no cgroup2 hugetlb"),
    };
    let controllers = fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "hugetlb") {
        return skip(&format!(
            "hugetlb is not a cgroup2 controller here ({})",
            controllers.trim()
        ));
    }
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir() {
        return skip("no 2 MB huge pages on this kernel");
    }
    // runc 1.1 writes hugetlb only to a v1 hierarchy on hybrid hosts.
    if layout() == Layout::Hybrid && xrun_only() {
        return;
    }
    const LIMIT: i64 = 4 << 20;
    resources(&mut t)["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": LIMIT}]);
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    let v2 = cg.hierarchies.iter().find(|h| h.is_v2()).expect("no cgroup2 hierarchy");
    let value = fs::read_to_string(v2.dir().join("hugetlb.2MB.max")).unwrap();
    assert_eq!(int_of(&value), LIMIT, "hugetlb.2MB.max in {}", v2.dir().display());

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

#[test]
fn unified_resources_are_written_on_cgroup_v2() {
    if layout() != Layout::Unified {
        return skip("linux.resources.unified needs a pure cgroup v2 host");
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    // memory.high is kept in pages: use a multiple of the page size.
    const HIGH: i64 = 50 << 20;
    resources(&mut t)["unified"] = json!({"memory.high": HIGH.to_string()});
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    assert_eq!(int_of(&cg.read("", "memory.high")), HIGH);

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

/// A config that mknods /dev/xkmsg (1:11, the kernel log: any root process
/// may open it for writing, so EPERM can only come from the device cgroup)
/// and /dev/xnull (1:3, on the default allow list), then probes them.
fn device_probe(t: &mut TestEnv) {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_MKNOD"];
    for set in ["bounding", "effective", "permitted"] {
        t.config["process"]["capabilities"][set] = json!(caps);
    }
    t.args(&[
        "sh",
        "-c",
        "busybox mknod /dev/xkmsg c 1 11 && busybox mknod /dev/xnull c 1 3 && \
         exec checker --path /dev/xkmsg --path /dev/xnull --path /dev/null",
    ]);
}

#[test]
fn device_rules_deny_unlisted_devices() {
    let Some(mut t) = TestEnv::new() else { return };
    device_probe(&mut t);
    let id = t.id.clone();
    resources(&mut t)["devices"] = json!([{"allow": false, "access": "rwm"}]);
    let report = t.run_checker(&id);
    let (kmsg, xnull) = (report.path("/dev/xkmsg"), report.path("/dev/xnull"));
    assert_eq!(kmsg["write"], "EPERM", "{kmsg}");
    assert_eq!(kmsg["read"], "EPERM", "{kmsg}");
    assert_eq!(xnull["write"], "ok", "{xnull}");
    assert_eq!(report.path("/dev/null")["write"], "ok", "{}", report.path("/dev/null"));
    t.assert_clean(&id);
    assert_no_dirs(&relative_dirs(&id));

    // The same node opens once a rule allows it.
    let allowed = t.new_id("devices-allowed");
    resources(&mut t)["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]);
    let report = t.run_checker(&allowed);
    assert_eq!(
        report.path("/dev/xkmsg")["write"],
        "ok",
        "{}",
        report.path("/dev/xkmsg")
    );
    t.assert_clean(&allowed);
}

/// runc keeps the access letters it knows and drops the others: "rwa" is
/// "rw" (update.bats "minimal transition rules" uses it), so mknod stays
/// allowed and read and write are denied.
#[test]
fn unknown_device_access_letters_are_left_out() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    device_probe(&mut t);
    let id = t.id.clone();
    resources(&mut t)["devices"] = json!([
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]);
    let report = t.run_checker(&id);
    let kmsg = report.path("/dev/xkmsg");
    assert_eq!(kmsg["type"], "chr", "mknod is still allowed: {kmsg}");
    assert_eq!(kmsg["write"], "EPERM", "{kmsg}");
    assert_eq!(kmsg["read"], "EPERM", "{kmsg}");
    assert_eq!(
        report.path("/dev/xnull")["write"],
        "ok",
        "{}",
        report.path("/dev/xnull")
    );
    t.assert_clean(&id);
}

/// runc 1.1 denies every device not on its default list (or in
/// linux.devices) even when the config has no linux.resources.devices.
#[test]
fn devices_are_denied_by_default_without_rules() {
    let Some(mut t) = TestEnv::new() else { return };
    device_probe(&mut t);
    let id = t.id.clone();
    let report = t.run_checker(&id);
    let (kmsg, xnull) = (report.path("/dev/xkmsg"), report.path("/dev/xnull"));
    assert_eq!(kmsg["write"], "EPERM", "{kmsg}");
    assert_eq!(xnull["write"], "ok", "{xnull}");
    t.assert_clean(&id);
}

/// linux.devices only creates nodes: the config's device rules decide who
/// may open them (runc's dev.bats "device cgroup deny"), whether the deny
/// is the list's start or a rule after an allow-all.
#[test]
fn linux_devices_do_not_override_a_device_deny() {
    let Some(mut t) = TestEnv::new() else { return };
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYSLOG"];
    for set in ["bounding", "effective", "permitted"] {
        t.config["process"]["capabilities"][set] = json!(caps);
    }
    t.config["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    t.args(&["checker", "--path", "/dev/kmsg", "--sleep", "60"]);
    let deny_all = json!([{"allow": false, "access": "rwm"}]);
    let deny_after_allow_all = json!([
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwm"}
    ]);
    for (stem, rules) in [("deny-all", deny_all), ("deny-kmsg", deny_after_allow_all)] {
        let id = t.new_id(stem);
        resources(&mut t)["devices"] = rules;
        let created = t.create(&id, &[]);
        created.assert_ok();
        t.rt(&["start", &id]).assert_ok();
        let report = t.wait_checker(&created);
        let kmsg = report.path("/dev/kmsg");
        assert_eq!(kmsg["type"], "chr", "{stem}: {kmsg}");
        assert_eq!(kmsg["write"], "EPERM", "{stem}: {kmsg}");
        assert_eq!(kmsg["read"], "EPERM", "{stem}: {kmsg}");
        if layout() != Layout::Unified {
            // What the kernel enforces, as the host sees it.
            let list = ContainerCgroup::of(&t, &id).read("devices", "devices.list");
            assert!(
                !list.lines().any(|l| l.starts_with("c 1:11 ")),
                "{stem}: devices.list:\n{list}"
            );
        }
        t.rt(&["delete", "--force", &id]).assert_ok();
        t.assert_clean(&id);
    }
}

// ---------------------------------------------------------------------------
// A cgroup that already exists

/// The host directory of absolute cgroup `path` in the hierarchy holding
/// `controller` (v1), or the cgroup2 one on a unified host.
fn existing_cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let hs = hierarchies("self");
    let h = if layout() == Layout::Unified {
        hs.iter().find(|h| h.is_v2())
    } else {
        hs.iter().find(|h| h.has(controller))
    };
    h.unwrap_or_else(|| panic!("no {controller} hierarchy in {hs:?}"))
        .host_dir(path)
}

/// runc refuses a cgroup that is frozen before the container starts; the
/// init would freeze on arrival and never report back.
#[test]
fn frozen_existing_cgroup_is_refused() {
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let path = format!("/xrun-test-frozen-{id}");
    t.config["linux"]["cgroupsPath"] = json!(path);
    let dir = existing_cgroup_dir("freezer", &path);
    let (file, frozen, thawed) = if layout() == Layout::Unified {
        ("cgroup.freeze", "1", "0")
    } else {
        ("freezer.state", "FROZEN", "THAWED")
    };
    fs::create_dir(&dir).unwrap();
    guard.0.push(dir.clone());
    fs::write(dir.join(file), frozen).unwrap();
    // Every other directory is one the runtime would have to make.
    let made: Vec<PathBuf> = absolute_dirs(&path).into_iter().filter(|d| *d != dir).collect();

    assert_create_fails_cleanly(&t, &id, &["container's cgroup unexpectedly frozen"], &made);
    t.write_config();
    let bundle = t.bundle.to_string_lossy().into_owned();
    let out = t
        .spawn(&["run", "-d", "--bundle", &bundle, &id])
        .wait(Duration::from_secs(10));
    out.assert_fails();
    assert!(
        out.stderr.contains("container's cgroup unexpectedly frozen"),
        "{}",
        out.stderr
    );
    // Well below the 10 s wait (a hang); the cgroup v2 VM is many times
    // slower than the host, so not much tighter.
    assert!(out.elapsed < Duration::from_secs(8), "refusal took {:?}", out.elapsed);
    t.assert_clean(&id);
    assert_no_dirs(&made);
    assert!(dir.is_dir(), "the existing cgroup {} was removed", dir.display());
    assert_eq!(fs::read_to_string(dir.join(file)).unwrap().trim(), frozen);
    fs::write(dir.join(file), thawed).unwrap();
}

/// runc (1.2 on; 1.1 only warns) refuses a cgroup that already has
/// processes in it.
#[test]
fn non_empty_existing_cgroup_is_refused() {
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    let path = format!("/xrun-test-busy-{id}");
    t.config["linux"]["cgroupsPath"] = json!(path);
    // runc looks at the devices hierarchy on v1.
    let dir = existing_cgroup_dir("devices", &path);
    fs::create_dir(&dir).unwrap();
    guard.0.push(dir.clone());
    let sleeper = std::process::Command::new("sleep").arg("100").spawn().unwrap();
    let pid = sleeper.id();
    t.add_helper(sleeper);
    fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
    let made: Vec<PathBuf> = absolute_dirs(&path).into_iter().filter(|d| *d != dir).collect();

    assert_create_fails_cleanly(&t, &id, &["container's cgroup is not empty"], &made);
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string(), "the cgroup's process was disturbed");
    // The test's TestEnv kills the sleep (by PID) before the guard removes
    // the cgroup.
}

// ---------------------------------------------------------------------------
// The cgroup mount inside the container

/// Subdirectories of a host hierarchy's root: cgroups a container must not
/// see.
fn host_cgroups(mount_point: &Path) -> Vec<String> {
    fs::read_dir(mount_point)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs a container with a 64 MiB memory limit and the `cgroup` mount
/// (read-only, as `runc spec` writes it) and checks that each hierarchy
/// inside shows the container's own cgroup, not the host's tree.
fn assert_cgroup_mount_shows_only_own_cgroup(t: &mut TestEnv, id: &str) {
    const LIMIT: i64 = 64 << 20;
    resources(t)["memory"] = json!({"limit": LIMIT});
    add_mount(
        t,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    );
    let host = cgroup_mounts();
    // (path inside, host mount point, a file only a non-root cgroup has)
    let mut views: Vec<(String, PathBuf, &str)> = Vec::new();
    for m in &host {
        if m.controllers.is_empty() && layout() == Layout::Hybrid && runtime_is_runc() {
            continue; // runc mounts no `unified` inside
        }
        let name = m.mount_point.strip_prefix(CGROUP_ROOT).unwrap();
        let inside = Path::new(CGROUP_ROOT).join(name).to_string_lossy().into_owned();
        // v1 has release_agent only at the root; cgroup2 has cgroup.type
        // only below it.
        let marker = if m.controllers.is_empty() {
            "cgroup.type"
        } else {
            "tasks"
        };
        views.push((inside, m.mount_point.clone(), marker));
    }
    let limit_file = if layout() == Layout::Unified {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let mut args = vec!["checker", "--path", limit_file];
    for (inside, _, _) in &views {
        args.extend(["--path", inside.as_str()]);
    }
    t.args(&args);
    let report = t.run_checker(id);

    let seen = report.path(limit_file);
    assert_eq!(int_of(seen["content"].as_str().unwrap_or("")), LIMIT, "{seen}");
    for (inside, mount_point, marker) in &views {
        let dir = report.path(inside);
        let entries = strings(&dir["entries"]);
        assert_eq!(dir["read"], "ok", "{dir}");
        assert!(
            entries.iter().any(|e| e == marker),
            "{inside} lacks {marker}: {entries:?}"
        );
        assert!(
            !entries.iter().any(|e| e == "release_agent"),
            "{inside} is a hierarchy root: {entries:?}"
        );
        let leaked: Vec<&String> = host_cgroups(mount_point)
            .iter()
            .filter_map(|h| entries.iter().find(|e| *e == h))
            .collect();
        assert!(leaked.is_empty(), "{inside} shows host cgroups {leaked:?}");
        assert_eq!(dir["write"], "EROFS", "{inside} is not read-only: {dir}");
    }
    t.assert_clean(id);
}

/// Without a cgroup namespace (runc 1.1's `spec`, Docker and containerd on
/// cgroup v1) a fresh cgroup mount would show the host's whole tree: each
/// hierarchy must show only the container's cgroup, as runc binds it.
#[test]
fn cgroup_mount_without_cgroupns_shows_only_own_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    assert_cgroup_mount_shows_only_own_cgroup(&mut t, &id);
}

/// With a cgroup namespace the mount is rooted at the container's cgroup.
#[test]
fn cgroup_mount_in_cgroupns_shows_only_own_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    set_namespace(&mut t.config, "cgroup", None);
    assert_cgroup_mount_shows_only_own_cgroup(&mut t, &id);
}

// ---------------------------------------------------------------------------
// update

/// `update --resources - <id>` with `doc` written to the runtime's stdin
/// through a pipe. Returns the exit status and stderr.
fn update_from_stdin(t: &TestEnv, id: &str, doc: &Value) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut cmd = t.command(&["update", "--resources", "-", id]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning the runtime");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(doc.to_string().as_bytes()).unwrap();
    drop(stdin);
    let mut status = None;
    poll_until(CMD_TIMEOUT, || {
        status = child.try_wait().expect("waiting for the runtime");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("update --resources - {id} did not finish within {CMD_TIMEOUT:?}");
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

/// (controller, file) of the memory limit on this host.
fn memory_limit_file() -> (&'static str, &'static str) {
    match layout() {
        Layout::Unified => ("memory", "memory.max"),
        _ => ("memory", "memory.limit_in_bytes"),
    }
}

#[test]
fn update_changes_the_limits() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    resources(&mut t)["memory"] = json!({"limit": 64 << 20});
    resources(&mut t)["pids"] = json!({"limit": 20});
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    let (mem_ctl, mem_file) = memory_limit_file();
    assert_eq!(
        int_of(&cg.read(mem_ctl, mem_file)),
        64 << 20,
        "{mem_file} before update"
    );
    assert_eq!(cg.read("pids", "pids.max"), "20");

    // runc's individual flags.
    t.rt(&["update", "--memory", "128m", "--pids-limit", "30", &id])
        .assert_ok();
    assert_eq!(
        int_of(&cg.read(mem_ctl, mem_file)),
        128 << 20,
        "{mem_file} after update"
    );
    assert_eq!(cg.read("pids", "pids.max"), "30");
    assert_eq!(t.status(&id), "running");

    // A linux.resources document on stdin.
    let (status, stderr) = update_from_stdin(&t, &id, &json!({"cpu": {"quota": 20000, "period": 100000}}));
    assert!(status.success(), "update --resources - failed ({status:?}): {stderr}");
    if layout() == Layout::Unified {
        assert_eq!(cg.read("cpu", "cpu.max"), "20000 100000");
    } else {
        assert_eq!(cg.read("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(cg.read("cpu", "cpu.cfs_period_us"), "100000");
    }
    // The limits set before are kept.
    assert_eq!(
        int_of(&cg.read(mem_ctl, mem_file)),
        128 << 20,
        "{mem_file} after the cpu update"
    );
    assert_eq!(cg.read("pids", "pids.max"), "30");

    // An invalid value is refused and changes nothing.
    let out = t.rt(&["update", "--memory", "lots", "--pids-limit", "40", &id]);
    out.assert_fails();
    assert!(!out.stderr.trim().is_empty(), "no error message for --memory lots");
    assert_eq!(
        int_of(&cg.read(mem_ctl, mem_file)),
        128 << 20,
        "{mem_file} after a refused update"
    );
    assert_eq!(cg.read("pids", "pids.max"), "30", "pids.max after a refused update");
    assert_eq!(t.status(&id), "running");

    // A stopped container cannot be updated.
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    t.rt(&["update", "--memory", "256m", &id]).assert_fails();
    assert_eq!(t.status(&id), "stopped");

    t.rt(&["delete", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

/// cpu.max, or "quota period" from the v1 files.
fn cpu_max(cg: &ContainerCgroup) -> String {
    if layout() == Layout::Unified {
        cg.read("cpu", "cpu.max")
    } else {
        let quota = cg.read("cpu", "cpu.cfs_quota_us");
        let quota = if quota == "-1" { "max".to_string() } else { quota };
        format!("{quota} {}", cg.read("cpu", "cpu.cfs_period_us"))
    }
}

#[test]
fn pids_limit_zero_is_one_and_a_missing_limit_is_none() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    // runc 1.4 writes 0 as 1 (what systemd can express; the init counts).
    resources(&mut t)["pids"] = json!({"limit": 0});
    t.args(&["checker", "--fork", "3", "--sleep", "60"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    let cg = ContainerCgroup::of(&t, &id);
    assert_eq!(cg.read("pids", "pids.max"), "1");
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    let fork = &report.0["fork"];
    assert_eq!(fork["ok"], 0, "forks under pids.max 1: {fork}");
    assert_eq!(fork["errno_name"], "EAGAIN", "{fork}");
    t.rt(&["update", "--pids-limit", "5", &id]).assert_ok();
    assert_eq!(cg.read("pids", "pids.max"), "5");
    t.rt(&["update", "--pids-limit", "0", &id]).assert_ok();
    assert_eq!(cg.read("pids", "pids.max"), "1");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());

    // A pids object without a limit sets none.
    resources(&mut t)["pids"] = json!({});
    let id2 = t.new_id("pids-unset");
    t.start_sleeper(&id2);
    let cg = ContainerCgroup::of(&t, &id2);
    assert_eq!(cg.read("pids", "pids.max"), "max");
    t.rt(&["delete", "--force", &id2]).assert_ok();
    t.assert_clean(&id2);
}

// runc 1.4's flag spellings, and writes in an order the kernel accepts.
#[test]
fn update_takes_runc_flags() {
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    resources(&mut t)["cpu"] = json!({"shares": 100, "quota": 500000, "period": 1000000});
    resources(&mut t)["memory"] = json!({"limit": 32 << 20});
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    assert_eq!(cpu_max(&cg), "500000 1000000");

    // Quota or period alone keeps the other (v2: cpu.max holds both).
    t.rt(&["update", &id, "--cpu-period", "900000"]).assert_ok();
    assert_eq!(cpu_max(&cg), "500000 900000");
    t.rt(&["update", &id, "--cpu-quota", "-1"]).assert_ok();
    assert_eq!(cpu_max(&cg), "max 900000");
    t.rt(&["update", &id, "--cpu-quota", "600000"]).assert_ok();
    assert_eq!(cpu_max(&cg), "600000 900000");

    t.rt(&["update", &id, "--cpu-share", "2048"]).assert_ok();
    if layout() == Layout::Unified {
        assert_eq!(cg.read("cpu", "cpu.weight"), "174");
    } else {
        assert_eq!(cg.read("cpu", "cpu.shares"), "2048");
    }

    let burst = if layout() == Layout::Unified {
        "cpu.max.burst"
    } else {
        "cpu.cfs_burst_us"
    };
    if cg.dir("cpu").join(burst).exists() {
        t.rt(&["update", &id, "--cpu-period", "900000", "--cpu-burst", "500000"])
            .assert_ok();
        assert_eq!(cg.read("cpu", burst), "500000");
        // Lowering the quota below the old burst works with the new burst.
        t.rt(&["update", &id, "--cpu-quota", "100000", "--cpu-burst", "50000"])
            .assert_ok();
        assert_eq!(
            (cpu_max(&cg), cg.read("cpu", burst)),
            ("100000 900000".into(), "50000".into())
        );
        // And raising both, the burst above the old quota.
        t.rt(&["update", &id, "--cpu-quota", "400000", "--cpu-burst", "300000"])
            .assert_ok();
        assert_eq!(
            (cpu_max(&cg), cg.read("cpu", burst)),
            ("400000 900000".into(), "300000".into())
        );
    }

    if cg.dir("cpu").join("cpu.idle").exists() {
        t.rt(&["update", &id, "--cpu-idle", "1"]).assert_ok();
        assert_eq!(cg.read("cpu", "cpu.idle"), "1");
        for bad in ["2", "-1"] {
            t.rt(&["update", &id, "--cpu-idle", bad]).assert_fails();
            assert_eq!(cg.read("cpu", "cpu.idle"), "1", "after --cpu-idle {bad}");
        }
        t.rt(&["update", &id, "--cpu-idle", "0"]).assert_ok();
        assert_eq!(cg.read("cpu", "cpu.idle"), "0");
    }

    // Memory: -1 is a value, not a flag; raising limit and swap together.
    let swap = if layout() == Layout::Unified {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if cg.dir("memory").join(swap).exists() {
        t.rt(&["update", &id, "--memory", "30m", "--memory-swap", "50m"])
            .assert_ok();
        t.rt(&["update", &id, "--memory", "60m", "--memory-swap", "80m"])
            .assert_ok();
        let (mem_ctl, mem_file) = memory_limit_file();
        assert_eq!(int_of(&cg.read(mem_ctl, mem_file)), 60 << 20);
        let want_swap = if layout() == Layout::Unified {
            20 << 20
        } else {
            80 << 20
        };
        assert_eq!(int_of(&cg.read("memory", swap)), want_swap);
        t.rt(&["update", &id, "--memory-swap", "-1"]).assert_ok();
        let unlimited = cg.read("memory", swap);
        assert!(
            unlimited == "max" || int_of(&unlimited) > 1 << 50,
            "{swap} after --memory-swap -1: {unlimited}"
        );
        t.rt(&["update", &id, "--memory", "-1"]).assert_ok();
        let unlimited = cg.read(mem_ctl, mem_file);
        assert!(
            unlimited == "max" || int_of(&unlimited) > 1 << 50,
            "{mem_file} after --memory -1: {unlimited}"
        );
    }
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// A pod's parent cgroup limits the CPU: lowering period and quota together
// only fits when the quota goes first (runc's order; v1 checks every write
// against the parent, v2 writes both in one cpu.max).
#[test]
fn update_of_period_and_quota_fits_a_parent_limit() {
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    if xrun_only() {
        return;
    }
    let id = t.id.clone();
    let pod = format!("/xrun-test-pod-{id}");
    t.config["linux"]["cgroupsPath"] = json!(format!("{pod}/c"));
    let parent = existing_cgroup_dir("cpu", &pod);
    fs::create_dir(&parent).unwrap();
    guard.0.push(parent.clone());
    let v1 = layout() != Layout::Unified;
    if v1 {
        fs::write(parent.join("cpu.cfs_quota_us"), "50000").unwrap();
        assert_eq!(
            fs::read_to_string(parent.join("cpu.cfs_period_us")).unwrap().trim(),
            "100000"
        );
    }
    resources(&mut t)["cpu"] = json!({"quota": 500000, "period": 1000000});
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    assert_eq!(cpu_max(&cg), "500000 1000000");
    if v1 {
        // 60% of a CPU is more than the pod's 50%.
        let out = t.rt(&["update", "--cpu-quota", "600000", &id]);
        out.assert_fails();
        assert!(out.stderr.contains("cpu.cfs_quota_us"), "{}", out.stderr);
    }
    t.rt(&["update", "--cpu-period", "10000", "--cpu-quota", "3000", &id])
        .assert_ok();
    assert_eq!(cpu_max(&cg), "3000 10000");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Block IO

/// A loop device over a sparse file in the test directory, detached on drop.
struct LoopDevice {
    path: String,
    major: u32,
    minor: u32,
}

impl LoopDevice {
    /// Err(reason) if the host cannot set one up.
    fn new(dir: &Path) -> Result<LoopDevice, String> {
        use std::os::unix::fs::MetadataExt;
        use std::process::{Command, Stdio};
        // A kernel with loop as a module (the VM stage's) may not have
        // loaded it yet; losetup alone does not.
        if !Path::new("/dev/loop-control").exists() {
            let _ = Command::new("modprobe")
                .arg("loop")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let image = dir.join("disk.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .map_err(|e| format!("creating {}: {e}", image.display()))?;
        let out = Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(&image)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup --find --show failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // From here on Drop detaches it.
        let mut dev = LoopDevice {
            path,
            major: 0,
            minor: 0,
        };
        let rdev = fs::metadata(&dev.path)
            .map_err(|e| format!("stat {}: {e}", dev.path))?
            .rdev();
        dev.major = libc::major(rdev);
        dev.minor = libc::minor(rdev);
        Ok(dev)
    }

    fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let detached = std::process::Command::new("losetup")
            .args(["-d", &self.path])
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !detached {
            eprintln!("could not detach {}", self.path);
        }
    }
}

#[test]
fn io_throttle_is_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    // Declared after the TestEnv: detached before the test dir is removed.
    let disk = match LoopDevice::new(&t.host_dir("disk")) {
        Ok(d) => d,
        Err(reason) => return skip(&format!("no loop device: {reason}")),
    };
    let id = t.id.clone();
    let (major, minor) = (disk.major, disk.minor);
    resources(&mut t)["blockIO"] = json!({
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1_048_576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
    });
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    let dev = disk.dev();

    if layout() == Layout::Unified {
        // "MAJ:MIN rbps=1048576 wbps=max riops=max wiops=100"
        let io_max = cg.read("io", "io.max");
        let line = io_max
            .lines()
            .find(|l| l.split_whitespace().next() == Some(dev.as_str()))
            .unwrap_or_else(|| panic!("no {dev} in io.max: {io_max:?}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.contains(&"rbps=1048576"), "io.max: {line}");
        assert!(fields.contains(&"wiops=100"), "io.max: {line}");
        assert!(fields.contains(&"wbps=max"), "io.max: {line}");
        assert!(fields.contains(&"riops=max"), "io.max: {line}");
    } else {
        let read_bps = cg.read("blkio", "blkio.throttle.read_bps_device");
        assert!(
            read_bps.lines().any(|l| l.trim() == format!("{dev} 1048576")),
            "blkio.throttle.read_bps_device: {read_bps:?}"
        );
        let write_iops = cg.read("blkio", "blkio.throttle.write_iops_device");
        assert!(
            write_iops.lines().any(|l| l.trim() == format!("{dev} 100")),
            "blkio.throttle.write_iops_device: {write_iops:?}"
        );
        // Nothing else was throttled.
        for file in ["blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device"] {
            let text = cg.read("blkio", file);
            assert!(!text.contains(&dev), "{file}: {text:?}");
        }
    }

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}

/// The files a blkio weight may land in, for this host's layout, with the
/// value 500 becomes in each (runc writes BFQ's weight as is and converts
/// it for io.weight: 1 + (500 - 10) * 9999 / 990).
fn weight_files() -> &'static [(&'static str, &'static str)] {
    if layout() == Layout::Unified {
        &[("io.bfq.weight", "500"), ("io.weight", "4950")]
    } else {
        &[("blkio.weight", "500"), ("blkio.bfq.weight", "500")]
    }
}

#[test]
fn io_weight_is_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    let controller = if layout() == Layout::Unified { "io" } else { "blkio" };

    // Which weight files a container cgroup has here (they are not on the
    // root cgroup, and depend on the kernel's I/O schedulers).
    let probe = t.new_id("io-weight-probe");
    t.start_sleeper(&probe);
    let cg = ContainerCgroup::of(&t, &probe);
    let dir = cg.dir(controller);
    let present: Vec<(&str, &str)> = weight_files()
        .iter()
        .copied()
        .filter(|(f, _)| dir.join(f).exists())
        .collect();
    t.rt(&["delete", "--force", &probe]).assert_ok();
    t.assert_clean(&probe);
    let Some(&(file, expected)) = present.first() else {
        return skip(&format!("no blkio/io weight file in {}", dir.display()));
    };

    let id = t.id.clone();
    resources(&mut t)["blockIO"] = json!({"weight": 500});
    t.start_sleeper(&id);
    let cg = ContainerCgroup::of(&t, &id);
    // "500" (blkio.weight), "default 500" (the BFQ files, io.weight).
    let text = cg.read(controller, file);
    let value = text
        .lines()
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [v] | ["default", v] => Some(v.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no default weight in {file}: {text:?}"));
    assert_eq!(value, expected, "{file}: {text:?}");

    t.rt(&["delete", "--force", &id]).assert_ok();
    assert_no_dirs(&cg.dirs());
    t.assert_clean(&id);
}
