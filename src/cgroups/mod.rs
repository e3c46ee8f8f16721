//! cgroups: where the container's cgroup is, creating it with its limits
//! before the init exists (or joins it: container::cgroups_after_clone),
//! placing the init (CLONE_INTO_CGROUP on cgroup v2;
//! on v1/hybrid the init joins by itself, see container::self_joins, or
//! through cgroup.procs), freezing, and removing it on delete.
//!
//! Three host layouts: unified v2, hybrid (v1 controllers plus a cgroup2
//! mount at /sys/fs/cgroup/unified, where some controllers such as hugetlb
//! may live), and legacy v1. The conversion of `linux.resources` into files
//! is in `v1` and `v2`; this module decides where they are written.

pub mod layout;
pub mod stats;
pub mod sub;
pub mod systemd;
pub mod v1;
pub mod v2;

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use layout::{Kind, Layout};

/// What a container's state records about its cgroup.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub kind: Kind,
    /// The cgroup2 directory (unified, or the hybrid's unified mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<PathBuf>,
    /// The v1 directories, one per mounted hierarchy.
    #[serde(default)]
    pub v1: Vec<PathBuf>,
    /// The v1 freezer directory, when that hierarchy is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freezer: Option<PathBuf>,
    /// Directories xrun created, parents first; removed in reverse.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// The systemd unit the cgroup belongs to (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::unit::Unit>,
}

impl Record {
    /// A record of no directories yet, for a host of `kind`.
    pub fn empty(kind: Kind) -> Record {
        Record {
            kind,
            unified: None,
            v1: Vec::new(),
            freezer: None,
            created: Vec::new(),
            systemd: None,
        }
    }

    /// Every directory the container's processes are placed in.
    pub fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.v1.iter().chain(self.unified.iter())
    }

    /// The part of the cgroup xrun made itself: what a failed create may
    /// empty and remove without touching a cgroup that existed before it.
    pub fn only_created(&self) -> Record {
        let ours = |d: &PathBuf| self.created.contains(d);
        Record {
            kind: self.kind,
            unified: self.unified.clone().filter(ours),
            v1: self.v1.iter().filter(|d| ours(d)).cloned().collect(),
            freezer: self.freezer.clone().filter(ours),
            created: self.created.clone(),
            systemd: self.systemd.clone(),
        }
    }
}

/// The Record `prepare` will produce, computed without creating anything,
/// so `create` can write it down before the first directory exists.
/// `created` lists every directory missing now, parents first.
pub fn plan(spec: &Spec, id: &str, layout: &Layout) -> Record {
    let path = configured_path(spec, id);
    let own = layout::own_cgroups();
    let mut record = Record::empty(layout.kind);
    if layout.kind == Kind::Unified {
        let dir = dir_in(Path::new(layout::ROOT), own.get("").map(PathBuf::as_path), &path, true);
        missing_dirs(&dir, &mut record.created);
        record.unified = Some(dir);
        return record;
    }
    for (name, mount) in &layout.v1 {
        let dir = dir_in(mount, own.get(name.as_str()).map(PathBuf::as_path), &path, false);
        if name == "freezer" {
            record.freezer = Some(dir.clone());
        }
        if !record.v1.contains(&dir) {
            missing_dirs(&dir, &mut record.created);
            record.v1.push(dir);
        }
    }
    if let Some(mount) = &layout.unified {
        let dir = dir_in(mount, own.get("").map(PathBuf::as_path), &path, false);
        missing_dirs(&dir, &mut record.created);
        record.unified = Some(dir);
    }
    record
}

/// Appends `dir` and its missing ancestors (parents first) to `out`.
fn missing_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let at = out.len();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.exists()) {
        if !out.iter().any(|o| o == d) {
            out.insert(at, d.to_path_buf());
        }
        cur = d.parent();
    }
}

/// A cgroup made ready before clone3.
pub struct Prepared {
    pub record: Record,
    /// cgroup v2: the directory for CLONE_INTO_CGROUP.
    pub clone_into: Option<OwnedFd>,
    /// Rootless: some hierarchies were skipped, not permitted to us.
    pub skipped: bool,
}

/// Rootless (runc's rules): a cgroup directory we are not permitted to
/// make, or join, is skipped when no cgroupsPath was configured; a limit
/// that needs it then fails. Decided only once something is refused, so
/// root's path never asks.
struct Denied {
    explicit_path: bool,
    /// Not root: a cgroup we did not make must also be ours to join.
    unprivileged: bool,
    rootless: Option<bool>,
    skipped: bool,
}

impl Denied {
    fn new(spec: &Spec) -> Denied {
        let configured = spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref());
        Denied {
            explicit_path: configured.is_some_and(|p| !p.as_os_str().is_empty()),
            unprivileged: crate::rootless::euid(),
            rootless: None,
            skipped: false,
        }
    }

    fn rootless(&mut self) -> bool {
        *self.rootless.get_or_insert_with(crate::rootless::cgroups)
    }

    fn is_denied(&self, e: &anyhow::Error) -> bool {
        matches!(io_errno(e), Some(libc::EACCES | libc::EPERM | libc::EROFS))
    }

    /// Whether `e` (making or entering a cgroup) may be skipped.
    fn may_skip(&mut self, e: &anyhow::Error) -> bool {
        self.is_denied(e) && !self.explicit_path && self.rootless()
    }

    /// Makes `dir` (recording it) and checks we may join it. A refusal that
    /// may be skipped is returned as Ok(Some(why)), with whatever part of
    /// `dir` was made removed again and `skipped` set.
    fn mkdir(&mut self, dir: &Path, created: &mut Vec<PathBuf>) -> Result<Option<anyhow::Error>> {
        let before = created.len();
        let made = mkdir_all(dir, created).and_then(|()| self.check_joinable(dir));
        match made {
            Ok(()) => Ok(None),
            // A configured cgroupsPath is never skipped: runc's words.
            Err(e) if self.is_denied(&e) && self.explicit_path && self.rootless() => {
                Err(anyhow!("unable to apply cgroup configuration: {}", go_style(&e, dir)))
            }
            Err(e) if self.may_skip(&e) => {
                crate::debug!("cgroups: rootless, {} skipped: {e:#}", dir.display());
                for d in created.drain(before..).rev() {
                    let _ = std::fs::remove_dir(d);
                }
                self.skipped = true;
                Ok(Some(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Not root: a cgroup that existed before must let us write its
    /// cgroup.procs (checked here, before anything is cloned).
    fn check_joinable(&self, dir: &Path) -> Result<()> {
        if !self.unprivileged {
            return Ok(());
        }
        let procs = dir.join("cgroup.procs");
        crate::sys::access_writable(&procs).with_context(|| format!("join cgroup {}", dir.display()))
    }
}

/// The cgroupsPath to use: the config's, or the container id (relative,
/// as runc's cgroupfs driver does).
fn configured_path(spec: &Spec, id: &str) -> PathBuf {
    match spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()) {
        Some(p) if !p.as_os_str().is_empty() => p.clone(),
        _ => PathBuf::from(id),
    }
}

/// Where a hierarchy's directory for the container is: an absolute
/// cgroupsPath is taken from the hierarchy's root; a relative one from our
/// own cgroup there (on cgroup v2, its parent: a cgroup with processes in it
/// cannot enable controllers for its children).
pub fn dir_in(mount: &Path, own: Option<&Path>, path: &Path, v2_unified: bool) -> PathBuf {
    if path.is_absolute() {
        return layout::below(mount, path);
    }
    let own = own.unwrap_or(Path::new("/"));
    let base = if v2_unified {
        own.parent().unwrap_or(Path::new("/"))
    } else {
        own
    };
    layout::below(mount, &base.join(path))
}

/// "mkdir DIR: permission denied", as Go words a failed mkdir (runc's
/// callers match on it); joining an existing one reads "access".
fn go_style(e: &anyhow::Error, dir: &Path) -> String {
    let errno = io_errno(e).unwrap_or(libc::EACCES);
    let what = if dir.is_dir() { "access" } else { "mkdir" };
    format!(
        "{what} {}: {}",
        dir.display(),
        crate::sys::strerror(errno).to_lowercase()
    )
}

/// The cgroup this process is in, one directory per hierarchy (v1 mounts,
/// then cgroup2): what a container without its own cgroup is in.
pub fn current_dirs(layout: &Layout) -> Vec<PathBuf> {
    let own = layout::own_cgroups();
    let in_own = |mount: &Path, key: &str| layout::below(mount, own.get(key).map_or(Path::new("/"), PathBuf::as_path));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (name, mount) in &layout.v1 {
        let dir = in_own(mount, name);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.extend(layout.unified.as_deref().map(|u| in_own(u, "")));
    dirs
}

/// mkdir -p that records which directories it made.
fn mkdir_all(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create cgroup {}", d.display())),
        }
    }
    Ok(())
}

/// Writes one cgroup file, naming the config field, file and value on error.
fn write_file(dir: &Path, w: &v2::Write) -> Result<()> {
    let mut path = dir.join(&w.file);
    let mut value = &w.value;
    if let Some((file, alt)) = w.fallback.as_ref().filter(|_| !path.exists()) {
        // The kernel offers this setting under another name (e.g. BFQ's).
        path = dir.join(file);
        value = alt;
    }
    if w.optional && !path.exists() {
        crate::debug!(
            "cgroups: {} not available on this kernel, {} not applied",
            path.display(),
            w.field
        );
        return Ok(());
    }
    // Never O_CREAT: a file the kernel does not offer (a page size it lacks,
    // a controller not enabled here) is ENOENT, not a confusing EACCES.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
    written.with_context(|| format!("{} = {value:?}: write {}", w.field, path.display()))
}

/// Writes a list of cgroup files in order, holding back the `retry_later`
/// ones the kernel refuses with EINVAL until `finish`, when they are tried
/// once more (after the writes that were to make them acceptable).
#[derive(Default)]
struct Writer {
    held: Vec<(PathBuf, v2::Write)>,
}

impl Writer {
    fn write(&mut self, dir: &Path, w: &v2::Write) -> Result<()> {
        match write_file(dir, w) {
            Err(e) if w.retry_later && io_errno(&e) == Some(libc::EINVAL) => {
                crate::debug!("cgroups: {} refused for now, retried last: {e:#}", w.file);
                self.held.push((dir.to_path_buf(), w.clone()));
                Ok(())
            }
            other => other,
        }
    }

    fn finish(self) -> Result<()> {
        for (dir, w) in &self.held {
            write_file(dir, w)?;
        }
        Ok(())
    }
}

fn io_errno(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
}

fn controllers_of(dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Enables every available controller from the cgroup2 root down to the
/// leaf's parent, so the leaf can use them. Controllers a limit needs must
/// succeed; the others are best effort (as runc does).
fn enable_controllers(mount: &Path, leaf: &Path, needed: &[&str]) -> Result<()> {
    let Ok(rel) = leaf.strip_prefix(mount) else {
        return Ok(());
    };
    let mut dir = mount.to_path_buf();
    for comp in rel.components() {
        let enabled: BTreeSet<String> = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        for c in controllers_of(&dir) {
            if enabled.contains(&c) {
                continue;
            }
            let res = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
            if let Err(e) = res {
                if needed.contains(&c.as_str()) {
                    return Err(e).with_context(|| format!("enable controller {c} in {}", dir.display()));
                }
                crate::debug!("cgroups: controller {c} not enabled in {}: {e}", dir.display());
            }
        }
        dir.push(comp);
    }
    for c in needed {
        if !controllers_of(leaf).contains(*c) {
            bail!("cgroup controller {c} is not available in {}", leaf.display());
        }
    }
    Ok(())
}

/// v1 cpuset refuses tasks until cpus and mems are set: copy them down from
/// the nearest ancestor that has them.
fn init_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let value = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
                std::fs::write(cur.join(file), value.trim())
                    .with_context(|| format!("initialise {}", cur.join(file).display()))?;
            }
        }
    }
    Ok(())
}

/// Which of a v1/hybrid host's hierarchies `prepare` makes. On cgroup v2
/// there is only the one, made by `All`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchies {
    All,
    /// A hybrid's cgroup2 half, which CLONE_INTO_CGROUP needs to exist
    /// before clone3 (nothing on a v1-only host).
    Cgroup2Only,
    /// The v1 hierarchies, made while a self-joining init sets up its mounts
    /// (container::cgroups_after_clone).
    V1Only,
}

/// Creates the container's cgroup and applies `linux.resources`, before
/// the init exists (or, `V1Only`, before it joins). On error, what was
/// created is removed again.
pub fn prepare(spec: &Spec, id: &str, layout: &Layout, planned: &Record, which: Hierarchies) -> Result<Prepared> {
    let path = configured_path(spec, id);
    let default_resources = LinuxResources::default();
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .unwrap_or(&default_resources);
    let mut record = Record::empty(layout.kind);
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or(&[]);
    // Checked before anything is made (V1Only comes second).
    if which != Hierarchies::V1Only {
        refuse_busy(planned)?;
    }
    let own = layout::own_cgroups();
    let mut denied = Denied::new(spec);
    match build(layout, &own, &path, resources, devices, &mut record, &mut denied, which) {
        Ok(clone_into) => {
            crate::debug!("cgroups: container cgroup {:?}", record.dirs().collect::<Vec<_>>());
            Ok(Prepared {
                record,
                clone_into,
                skipped: denied.skipped,
            })
        }
        Err(e) => {
            remove_dirs(&record);
            Err(e)
        }
    }
}

/// Writes `r` (and the device rules) into a cgroup that systemd made at
/// `path` (relative to each hierarchy's root), making the directories of
/// the hierarchies it does not manage; on error those are removed again.
pub fn fill(spec: &Spec, layout: &Layout, path: &Path, r: &LinuxResources) -> Result<()> {
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or(&[]);
    let mut record = Record::empty(layout.kind);
    let mut denied = Denied::new(spec);
    match build(
        layout,
        &BTreeMap::new(),
        path,
        r,
        devices,
        &mut record,
        &mut denied,
        Hierarchies::All,
    ) {
        Ok(_) => Ok(()),
        Err(e) => {
            remove_dirs(&record);
            Err(e)
        }
    }
}

/// Refuses a cgroup that already exists and has processes in it (anywhere
/// below) or is frozen, with runc's words: the init would join strangers, or
/// freeze on arrival and never report back. Checked before anything is
/// created, so a refusal leaves nothing behind; the existing cgroup is not
/// touched. Every hierarchy is checked (runc looks only at "devices").
fn refuse_busy(planned: &Record) -> Result<()> {
    // Not root, a cgroup we may not join is never ours (rootless skips it).
    let unprivileged = crate::rootless::euid();
    let ours = |d: &PathBuf| !unprivileged || crate::sys::access_writable(&d.join("cgroup.procs")).is_ok();
    for dir in planned.dirs().filter(|d| d.is_dir() && ours(d)) {
        let n = count_procs(dir);
        if n > 0 {
            bail!("container's cgroup is not empty: {n} process(es) found");
        }
    }
    // The v1 freezer, and cgroup2's own freeze (v2, or hybrid's unified).
    let freezers = planned.freezer.iter().chain(planned.unified.iter());
    // A cgroup yet to be made freezes with its parent: check the nearest
    // existing directory.
    let existing = |d: &PathBuf| d.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf);
    if freezers.filter_map(existing).any(|d| ours(&d) && is_dir_frozen(&d)) {
        bail!("container's cgroup unexpectedly frozen");
    }
    Ok(())
}

/// Processes in a cgroup and every cgroup below it.
fn count_procs(dir: &Path) -> usize {
    procs_below(dir).len()
}

/// Host pids in a cgroup and every cgroup below it.
fn procs_below(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default();
    let subdirs = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for e in subdirs.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        out.extend(procs_below(&e.path()));
    }
    out
}

/// Whether an existing cgroup directory is frozen or freezing, by itself or
/// through an ancestor: v1 freezer.state, v2 cgroup.freeze or cgroup.events.
fn is_dir_frozen(dir: &Path) -> bool {
    if let Ok(state) = std::fs::read_to_string(dir.join("freezer.state")) {
        return matches!(state.trim(), "FROZEN" | "FREEZING");
    }
    let freeze = std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
    let events =
        std::fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"));
    freeze || events
}

/// Device nodes every container may use (runc's AllowedDevices), in the
/// device cgroup's rule form: type, major, minor (-1 = any), access, and the
/// node's path when it is one a `linux.devices` entry can replace.
const DEFAULT_DEVICE_RULES: [(&str, i64, i64, &str, Option<&str>); 11] = [
    ("c", -1, -1, "m", None),
    ("b", -1, -1, "m", None),
    ("c", 1, 3, "rwm", Some("/dev/null")),
    ("c", 1, 8, "rwm", Some("/dev/random")),
    ("c", 1, 7, "rwm", Some("/dev/full")),
    ("c", 5, 0, "rwm", Some("/dev/tty")),
    ("c", 1, 5, "rwm", Some("/dev/zero")),
    ("c", 1, 9, "rwm", Some("/dev/urandom")),
    ("c", 136, -1, "rwm", None), // pts
    ("c", 5, 2, "rwm", None),    // ptmx
    ("c", 10, 200, "rwm", None), // net/tun, kept by runc for compatibility
];

/// The device rules to enforce, as runc 1.4 builds them: deny everything,
/// then `linux.resources.devices` in order, then the default devices. A
/// `linux.devices` entry only creates the node: it adds no allow rule, so a
/// deny in the config is never overridden by it, and a default whose path
/// it names is dropped (the config's node replaces it).
pub(crate) fn with_default_devices(r: &LinuxResources, devices: &[oci_spec::runtime::LinuxDevice]) -> LinuxResources {
    let mut r = r.clone();
    let deny_all = serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"}));
    let mut rules: Vec<LinuxDeviceCgroup> = deny_all.into_iter().collect();
    rules.extend(r.devices().iter().flatten().cloned());
    for (typ, major, minor, access, path) in DEFAULT_DEVICE_RULES {
        if path.is_some_and(|p| devices.iter().any(|d| d.path() == Path::new(p))) {
            continue;
        }
        let rule = serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access});
        if let Ok(rule) = serde_json::from_value(rule) {
            rules.push(rule);
        }
    }
    r.set_devices(Some(rules));
    r
}

// The one place every hierarchy is made: its inputs are just that many.
#[allow(clippy::too_many_arguments)]
fn build(
    layout: &Layout,
    own: &BTreeMap<String, PathBuf>,
    path: &Path,
    r: &LinuxResources,
    devices: &[oci_spec::runtime::LinuxDevice],
    record: &mut Record,
    denied: &mut Denied,
    which: Hierarchies,
) -> Result<Option<OwnedFd>> {
    let (v1_too, cgroup2_too) = (which != Hierarchies::Cgroup2Only, which != Hierarchies::V1Only);
    if layout.kind == Kind::Unified {
        let mount = Path::new(layout::ROOT);
        let dir = dir_in(mount, own.get("").map(PathBuf::as_path), path, true);
        let needed = v2::controllers_needed(r);
        if let Some(why) = denied.mkdir(&dir, &mut record.created)? {
            if needed.is_empty() {
                return Ok(None);
            }
            // runc's words.
            return Err(
                why.context("rootless needs no limits + no cgrouppath when no permission is granted for cgroups")
            );
        }
        enable_controllers(mount, &dir, &needed)?;
        let mut writer = Writer::default();
        for w in v2::writes(r)? {
            writer.write(&dir, &w)?;
        }
        writer.finish()?;
        let fd = crate::sys::openat(libc::AT_FDCWD, &dir, libc::O_PATH | libc::O_DIRECTORY, 0)
            .with_context(|| format!("open cgroup {}", dir.display()))?;
        // cgroup v2 has no devices controller: the rules become an eBPF
        // program, attached before the init is cloned into the cgroup.
        if let Some(rules) = with_default_devices(r, devices).devices() {
            let prog = v2::devices::program(rules)?;
            let attached = v2::devices::load_and_attach(fd.as_fd(), &prog)
                .with_context(|| format!("apply the device rules to cgroup {}", dir.display()));
            match attached {
                // Not expected to work unprivileged (runc ignores it too).
                Err(e) if denied.rootless() => crate::debug!("cgroups: rootless, device rules not applied: {e:#}"),
                other => other?,
            }
        }
        record.unified = Some(dir);
        return Ok(Some(fd));
    }

    // v1 (and the v1 half of hybrid): one directory per mounted hierarchy.
    let mut mounts: Vec<(&String, &PathBuf)> = layout.v1.iter().collect();
    mounts.dedup_by(|a, b| a.1 == b.1);
    for (name, mount) in mounts.iter().filter(|_| v1_too) {
        let dir = dir_in(mount, own.get(name.as_str()).map(PathBuf::as_path), path, false);
        if record.v1.contains(&dir) {
            continue;
        }
        if denied.mkdir(&dir, &mut record.created)?.is_some() {
            continue;
        }
        if layout.v1.get("cpuset") == Some(mount) {
            init_cpuset(mount, &dir)?;
        }
        if layout.v1.get("freezer") == Some(mount) {
            record.freezer = Some(dir.clone());
        }
        record.v1.push(dir);
    }
    let unified_controllers = layout.unified_controllers();
    let mut on_unified = Vec::new();
    let mut writer = Writer::default();
    for (controller, w) in v1::writes(&with_default_devices(r, devices))? {
        match layout.v1.get(controller) {
            Some(_) if !v1_too => {}
            Some(mount) => {
                let dir = dir_in(mount, own.get(controller).map(PathBuf::as_path), path, false);
                // Device rules are not expected to work unprivileged: runc
                // ignores them; any other limit needs its cgroup.
                let devices = controller == "devices";
                if denied.skipped && !record.v1.contains(&dir) {
                    if devices {
                        continue;
                    }
                    return Err(crate::rootless::no_cgroup_for(controller, &dir));
                }
                match writer.write(&dir, &w) {
                    Err(e) if devices && denied.rootless() => {
                        crate::debug!("cgroups: rootless, device rules not applied: {e:#}")
                    }
                    other => other?,
                }
            }
            // Hybrid hosts may bind a controller (hugetlb, here) to cgroup2.
            None if unified_controllers.iter().any(|c| c == controller) => on_unified.push(controller),
            None if w.optional => {}
            None => bail!(
                "{}: the {controller} cgroup controller is not available on this host",
                w.field
            ),
        }
    }
    if let Some(mount) = layout.unified.as_ref().filter(|_| cgroup2_too) {
        let dir = dir_in(mount, own.get("").map(PathBuf::as_path), path, false);
        if denied.mkdir(&dir, &mut record.created)?.is_some() {
            if let Some(controller) = on_unified.first() {
                return Err(crate::rootless::no_cgroup_for(controller, &dir));
            }
            writer.finish()?;
            return Ok(None);
        }
        if !on_unified.is_empty() {
            enable_controllers(mount, &dir, &on_unified)?;
            for controller in &on_unified {
                for w in v2::writes_for(r, controller)? {
                    writer.write(&dir, &w)?;
                }
            }
        }
        record.unified = Some(dir);
    }
    writer.finish()?;
    Ok(None)
}

/// Applies new limits to a running container's cgroup (`xrun update`).
pub fn update(record: &Record, r: &LinuxResources) -> Result<()> {
    if record.kind == Kind::Unified {
        let dir = record
            .unified
            .as_ref()
            .ok_or_else(|| anyhow!("container has no cgroup v2 directory"))?;
        // Quota or period alone keeps the other as it is (cpu.max has both),
        // a memory limit alone the memory+swap total.
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let r = v2::cpu::keep_current_max(r, read("cpu.max").as_deref());
        let mut r = v2::memory::keep_swap_total(&r, read("memory.max").as_deref(), read("memory.swap.max").as_deref());
        if let Some(unit) = &record.systemd {
            r = systemd::update(unit, record.kind, &r)?;
        }
        let mut writer = Writer::default();
        for w in v2::writes(&r)? {
            writer.write(dir, &w)?;
        }
        return writer.finish();
    }
    let rounded;
    let r = match &record.systemd {
        Some(unit) => {
            rounded = systemd::update(unit, record.kind, r)?;
            &rounded
        }
        None => r,
    };
    let layout = Layout::detect()?;
    let unified_controllers = layout.unified_controllers();
    let mut writer = Writer::default();
    for (controller, w) in v1::writes(r)? {
        let dir = layout
            .v1
            .get(controller)
            .and_then(|mount| record.v1.iter().find(|d| d.starts_with(mount)));
        match (dir, &record.unified) {
            (Some(dir), _) => writer.write(dir, &w)?,
            (None, Some(u)) if unified_controllers.iter().any(|c| c == controller) => {
                for w in v2::writes_for(r, controller)? {
                    writer.write(u, &w)?;
                }
            }
            _ if w.optional => {}
            _ => bail!(
                "{}: the {controller} cgroup controller is not available on this host",
                w.field
            ),
        }
    }
    writer.finish()
}

/// Moves `pid` into every directory of the container's cgroup (v1/hybrid,
/// or v2 when CLONE_INTO_CGROUP was refused).
pub fn place(record: &Record, pid: i32) -> Result<()> {
    for dir in record.dirs() {
        let procs = dir.join("cgroup.procs");
        match std::fs::write(&procs, pid.to_string()) {
            // Not root, the hybrid's cgroup2 half also needs the source
            // cgroup's procs (cgroup2 delegation): like name=systemd, joined
            // when we can, as runc joins them.
            Err(e) if is_joined_if_possible(record, dir) && crate::rootless::euid() => {
                crate::debug!("cgroups: rootless, {} not joined: {e}", dir.display());
            }
            other => other.with_context(|| format!("join cgroup {}", dir.display()))?,
        }
    }
    Ok(())
}

/// The hierarchies without limits of their own on a v1 host: the hybrid's
/// cgroup2 mount and name=systemd.
fn is_joined_if_possible(record: &Record, dir: &Path) -> bool {
    let hybrid_unified = record.kind == Kind::Hybrid && record.unified.as_deref() == Some(dir);
    hybrid_unified || dir.starts_with(Path::new(layout::ROOT).join("systemd"))
}

/// Writes `pid` to cgroup.procs of each of `record`'s directories, in
/// runc's words on failure.
fn write_procs(record: &Record, pid: i32) -> Result<()> {
    for dir in record.dirs() {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("failed to write {pid} to {}", procs.display()))?;
    }
    Ok(())
}

/// Host pids of every process in the container's cgroup.
pub fn pids(record: &Record) -> Vec<i32> {
    // Sub-cgroups the container made itself count too (runc's GetAllPids).
    let Some(dir) = record.dirs().next() else {
        return Vec::new();
    };
    procs_below(dir)
}

/// Whether the container's cgroup is frozen (the `paused` status).
pub fn is_frozen(record: &Record) -> bool {
    if let Some(f) = &record.freezer {
        return std::fs::read_to_string(f.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN");
    }
    match &record.unified {
        Some(u) if record.kind != Kind::Legacy => {
            std::fs::read_to_string(u.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        }
        _ => false,
    }
}

/// Freezes (pause) or thaws (resume) the container, waiting until the
/// kernel reports it done.
pub fn set_frozen(record: &Record, frozen: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(f) = &record.freezer {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        loop {
            std::fs::write(f.join("freezer.state"), want)
                .with_context(|| format!("write {want} to {}", f.display()))?;
            let now = std::fs::read_to_string(f.join("freezer.state")).unwrap_or_default();
            if now.trim() == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("cgroup {} did not reach {want} (now {})", f.display(), now.trim());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let dir = record
        .unified
        .as_ref()
        .ok_or_else(|| anyhow!("no freezer available for this container"))?;
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
        .with_context(|| format!("write cgroup.freeze in {}", dir.display()))?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    loop {
        let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if events.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("cgroup {} did not reach {want}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGKILLs every process of the container's cgroup and the cgroups below
/// it, the init or not, so that none can fork away meanwhile: by
/// cgroup.kill where the kernel has it (cgroup v2, or the hybrid's cgroup2
/// half), else frozen, killed, then thawed (a frozen v1 task only dies once
/// thawed, so a paused container is thawed too, as runc does). Returns how
/// many processes there were; None when the cgroup no longer exists.
pub fn kill_all(record: &Record) -> Result<Option<usize>> {
    let Some(dir) = record.freezer.iter().chain(record.dirs()).find(|d| d.is_dir()) else {
        return Ok(None);
    };
    let found = procs_below(dir).len();
    if let Some(kill) = record
        .unified
        .as_ref()
        .map(|u| u.join("cgroup.kill"))
        .filter(|k| k.exists())
    {
        std::fs::write(&kill, "1").with_context(|| format!("write 1 to {}", kill.display()))?;
        return Ok(Some(found));
    }
    if let Err(e) = set_frozen(record, true) {
        crate::debug!("kill: cgroup not frozen first: {e:#}");
    }
    let pids = procs_below(dir);
    for &pid in &pids {
        let _ = crate::sys::kill(pid, libc::SIGKILL);
    }
    if let Err(e) = set_frozen(record, false) {
        crate::warn!("kill: thaw the container's cgroup: {e:#}");
    }
    Ok(Some(found.max(pids.len())))
}

fn remove_dirs(record: &Record) {
    for dir in record.created.iter().rev() {
        if let Err(e) = remove_tree(dir) {
            if e.kind() != ErrorKind::NotFound {
                crate::warn!("remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// Removes a cgroup made by xrun. EBUSY means sub-cgroups the container
/// made in it (removed, deepest first) or a task that died a moment ago
/// (retried for up to ~0.2 s); an empty cgroup costs one rmdir.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 20 => {
                if tries == 0 {
                    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
                    for sub in entries.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                        let _ = remove_tree(&sub.path());
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Kills whatever is still in the cgroup (and the sub-cgroups the container
/// made) and removes the directories xrun created, with those sub-cgroups.
pub fn destroy(record: &Record) {
    if is_frozen(record) {
        let _ = set_frozen(record, false);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // One hierarchy's subtree holds every process of the container.
        let left = pids(record);
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in left {
            let _ = crate::sys::kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Empty by now, a scope is stopped at once (not after TimeoutStopSec).
    if let Some(unit) = &record.systemd {
        if let Err(e) = systemd::stop(unit) {
            crate::warn!("stop systemd unit {}: {e:#}", unit.name);
        }
    }
    remove_dirs(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_semantics() {
        let m = Path::new("/sys/fs/cgroup/memory");
        let own = Some(Path::new("/user.slice/me"));
        assert_eq!(
            dir_in(m, own, Path::new("/abs/x"), false),
            PathBuf::from("/sys/fs/cgroup/memory/abs/x")
        );
        assert_eq!(
            dir_in(m, own, Path::new("rel/x"), false),
            PathBuf::from("/sys/fs/cgroup/memory/user.slice/me/rel/x")
        );
        let u = Path::new("/sys/fs/cgroup");
        assert_eq!(
            dir_in(u, own, Path::new("rel"), true),
            PathBuf::from("/sys/fs/cgroup/user.slice/rel")
        );
        assert_eq!(
            dir_in(u, None, Path::new("id"), true),
            PathBuf::from("/sys/fs/cgroup/id")
        );
        assert_eq!(
            dir_in(u, own, Path::new("/../../x"), true),
            PathBuf::from("/sys/fs/cgroup/x")
        );
    }

    fn device_rules(resources: serde_json::Value, devices: serde_json::Value) -> Vec<String> {
        let r: LinuxResources = serde_json::from_value(resources).unwrap();
        let d: Vec<oci_spec::runtime::LinuxDevice> = serde_json::from_value(devices).unwrap();
        v1::writes(&with_default_devices(&r, &d))
            .unwrap()
            .into_iter()
            .map(|(_, w)| format!("{} {}", w.file, w.value))
            .collect()
    }

    #[test]
    fn linux_devices_add_no_allow_rule() {
        let kmsg = serde_json::json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
        let rules = device_rules(
            serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}),
            kmsg,
        );
        assert!(!rules.iter().any(|r| r.contains("1:11")), "{rules:?}");
        assert_eq!(rules[..2], ["devices.deny a *:* rwm", "devices.deny a *:* rwm"]);
        assert!(rules.contains(&"devices.allow c 1:3 rwm".to_string()), "{rules:?}");
        assert_eq!(rules.last().map(String::as_str), Some("devices.allow c 10:200 rwm"));
    }

    #[test]
    fn a_linux_device_replaces_the_default_of_its_path() {
        let tty = serde_json::json!([{"path": "/dev/tty", "type": "c", "major": 5, "minor": 0}]);
        let rules = device_rules(serde_json::json!({}), tty);
        assert!(!rules.iter().any(|r| r.contains("5:0")), "{rules:?}");
        assert!(rules.contains(&"devices.allow c 5:2 rwm".to_string()), "{rules:?}");
    }

    #[test]
    fn busy_cgroup_checks_read_the_kernel_files() {
        let base = std::env::temp_dir().join(format!("xrun-cg-busy-{}", crate::sys::getpid()));
        std::fs::create_dir_all(base.join("child")).unwrap();
        assert_eq!(count_procs(&base), 0);
        std::fs::write(base.join("cgroup.procs"), "12\n").unwrap();
        std::fs::write(base.join("child/cgroup.procs"), "13\n14\n").unwrap();
        assert_eq!(count_procs(&base), 3);
        assert!(!is_dir_frozen(&base));
        for (file, text, frozen) in [
            ("freezer.state", "FREEZING\n", true),
            ("freezer.state", "THAWED\n", false),
        ] {
            std::fs::write(base.join(file), text).unwrap();
            assert_eq!(is_dir_frozen(&base), frozen, "{file} {text}");
        }
        std::fs::remove_file(base.join("freezer.state")).unwrap();
        std::fs::write(base.join("cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
        assert!(is_dir_frozen(&base));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_plan_lists_what_is_missing_and_a_failed_create_owns_only_that() {
        let base = std::env::temp_dir().join(format!("xrun-cg-plan-{}", crate::sys::getpid()));
        std::fs::create_dir_all(base.join("old")).unwrap();
        let mut created = Vec::new();
        missing_dirs(&base.join("new/leaf"), &mut created);
        missing_dirs(&base.join("new/other"), &mut created);
        missing_dirs(&base.join("old"), &mut created);
        assert_eq!(
            created,
            vec![base.join("new"), base.join("new/leaf"), base.join("new/other")]
        );
        let record = Record {
            kind: Kind::Legacy,
            unified: Some(base.join("old")),
            v1: vec![base.join("new/leaf"), base.join("old")],
            freezer: Some(base.join("old")),
            created,
            systemd: None,
        };
        let ours = record.only_created();
        assert_eq!(ours.dirs().collect::<Vec<_>>(), vec![&base.join("new/leaf")]);
        assert_eq!(ours.freezer, None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn mkdir_all_records_what_it_made() {
        let base = std::env::temp_dir().join(format!("xrun-cg-{}", crate::sys::getpid()));
        let mut created = Vec::new();
        mkdir_all(&base.join("a/b"), &mut created).unwrap();
        assert_eq!(created, vec![base.clone(), base.join("a"), base.join("a/b")]);
        let record = Record {
            kind: Kind::Legacy,
            unified: None,
            v1: vec![],
            freezer: None,
            created,
            systemd: None,
        };
        remove_dirs(&record);
        assert!(!base.exists());
    }
}
