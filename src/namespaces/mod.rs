//! Namespaces: which ones clone3 creates, which are joined by path, in what
//! order, and the user-namespace id maps the parent writes.
//!
//! Ordering rules the kernel imposes, and how xrun meets them (with a
//! second fork only in the last case):
//! - pid and time namespaces apply to *children*: when the config names one
//!   by path, the parent joins it (setns changes only its `*_for_children`),
//!   clones, and goes back to its own.
//! - joining a namespace by path needs privileges over its owner, which a
//!   child inside a fresh user namespace no longer has: when anything besides
//!   the mount namespace is joined by path, clone3 creates only the pid/time
//!   namespaces and the child joins first and unshares the rest afterwards.
//! - joined namespaces are entered as runc does: every one but the user
//!   namespace first, skipping those we may not join yet (EPERM: owned by
//!   the joined user namespace, which grants us the right once in it); then
//!   the user namespace; then the rest. A namespace the host owns can then
//!   be joined together with a user namespace it does not belong to.
//! - a new pid namespace with a joined user namespace must belong to that
//!   user namespace (or its root cannot mount a proc for it): the child
//!   unshares it after joining, and forks the init into it (`fork_for_pid`),
//!   runc's second fork, only on that path.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::sync::{At, Failure, Step};
use crate::sys;

pub mod idmap;
pub mod userns;

/// A namespace to join by path, opened (and type-checked) in the parent.
pub struct Join {
    pub fd: OwnedFd,
    pub flag: i32,
    pub path: PathBuf,
}

pub struct Plan {
    /// CLONE_NEW* flags given to clone3.
    pub clone_flags: u64,
    /// Flags the child unshares after joining (only when joins are deferred).
    pub unshare_flags: i32,
    /// pid/time namespaces the parent joins around clone3.
    pub parent_joins: Vec<Join>,
    /// Namespaces the child joins, user first, mount last.
    pub child_joins: Vec<Join>,
    pub new_user: bool,
    pub new_pid: bool,
    /// A mount namespace of the container's own (else mounts are made in the
    /// runtime's or a joined one, and the root is entered with chroot).
    pub new_mount: bool,
    /// No mount namespace at all: the container's mounts land in the
    /// runtime's namespace and `delete` must take them down.
    pub host_mounts: bool,
    /// The cgroup namespace is unshared by the child once the parent has
    /// placed it in its cgroup (v1/hybrid placement happens after clone).
    pub late_cgroupns: bool,
    /// linux.timeOffsets as /proc/self/timens_offsets takes them. Then the
    /// new time namespace is made by the parent (see `enter_for_children`),
    /// not by clone3: offsets can only be set before any process is in it.
    pub time_offsets: Option<String>,
    /// The mappings of a user namespace joined by path.
    pub joined_user_maps: Option<userns::UserMaps>,
    /// A joined user namespace and a new pid namespace: the child unshares
    /// the pid namespace and forks the init into it (`unshare_flags` has
    /// CLONE_NEWPID), as only children enter a new pid namespace.
    pub fork_for_pid: bool,
    /// Rootless create/run (not root, a user namespace): the child stays
    /// dumpable, so that its /proc files are the user's: for writing its id
    /// maps (and newuidmap's check of their owner), and for `exec` while it
    /// waits in `created` (runc's init, re-executed inside the user
    /// namespace, is as open to the user).
    pub rootless: bool,
    /// Namespaces the child unshares once its id maps are written (rootless
    /// time namespace with offsets, with the new pid namespace): then it
    /// forks the init into them (`fork_for_pid`).
    pub unshare_after_maps: i32,
}

fn flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

pub fn name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The name of a namespace type under /proc/PID/ns.
fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// user first (in `for_exec` it is ours to join; `enter` takes it out of
/// order as needed), mount last, the rest in between.
fn sort_joins(joins: &mut [Join]) {
    joins.sort_by_key(|j| match j.flag {
        libc::CLONE_NEWUSER => 0,
        libc::CLONE_NEWNS => 2,
        _ => 1,
    });
}

/// Opens `path` and checks that it is a namespace of the wanted type.
fn open_namespace(path: &Path, t: LinuxNamespaceType) -> Result<OwnedFd> {
    let fd: OwnedFd = fs::File::open(path)
        .with_context(|| format!("open {} namespace {}", name(t), path.display()))?
        .into();
    match sys::ns_type(fd.as_raw_fd()) {
        Ok(actual) if actual == flag(t) => Ok(fd),
        Ok(_) => bail!("{} is not a {} namespace", path.display(), name(t)),
        Err(e) => Err(e).with_context(|| format!("{} is not a namespace file", path.display())),
    }
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut seen = 0i32;
        let mut new = 0i32;
        let mut parent_joins = Vec::new();
        let mut child_joins = Vec::new();
        for ns in &namespaces {
            let f = flag(ns.typ());
            if seen & f != 0 {
                bail!("namespace {} is listed twice in config.json", name(ns.typ()));
            }
            seen |= f;
            match ns.path() {
                None => new |= f,
                Some(p) => {
                    let join = Join {
                        fd: open_namespace(p, ns.typ())?,
                        flag: f,
                        path: p.clone(),
                    };
                    if f == libc::CLONE_NEWPID || f == libc::CLONE_NEWTIME {
                        parent_joins.push(join);
                    } else {
                        child_joins.push(join);
                    }
                }
            }
        }
        let time_offsets = time_offsets_text(spec)?;
        if time_offsets.is_some() {
            new &= !libc::CLONE_NEWTIME;
        }
        check_mappings_wanted(spec, seen & libc::CLONE_NEWUSER != 0, new & libc::CLONE_NEWUSER != 0)?;
        let mut joined_user_maps = None;
        if let Some(user) = child_joins.iter().find(|j| j.flag == libc::CLONE_NEWUSER) {
            let maps = userns::maps_of(user)?;
            userns::check_config_maps(spec, &maps)?;
            joined_user_maps = Some(maps);
        }
        let rootless = seen & libc::CLONE_NEWUSER != 0 && crate::rootless::euid();
        let mut fork_for_pid = joined_user_maps.is_some() && new & libc::CLONE_NEWPID != 0;
        if rootless && joined_user_maps.is_some() && !parent_joins.is_empty() {
            // Not root: pid and time namespaces owned by the joined user
            // namespace are only ours to join from inside it, so the child
            // joins them and forks the init in.
            child_joins.append(&mut parent_joins);
            fork_for_pid = true;
        }
        sort_joins(&mut child_joins);
        let for_children = if fork_for_pid {
            libc::CLONE_NEWTIME
        } else {
            libc::CLONE_NEWPID | libc::CLONE_NEWTIME
        };
        let defer = child_joins.iter().any(|j| j.flag != libc::CLONE_NEWNS);
        let (mut clone_flags, mut unshare_flags) = if defer {
            ((new & for_children) as u64, new & !for_children)
        } else {
            (new as u64, 0)
        };
        let mut unshare_after_maps = 0;
        if rootless && new & libc::CLONE_NEWUSER != 0 && time_offsets.is_some() {
            // Not root: a time namespace with offsets can only be made by
            // the child, inside its new user namespace once mapped; the init
            // it forks enters it, and a new pid namespace made with it.
            unshare_after_maps = libc::CLONE_NEWTIME | (new & libc::CLONE_NEWPID);
            clone_flags &= !(libc::CLONE_NEWPID as u64);
            unshare_flags &= !libc::CLONE_NEWPID;
            fork_for_pid = true;
        }
        Ok(Plan {
            clone_flags,
            unshare_flags,
            parent_joins,
            child_joins,
            new_user: new & libc::CLONE_NEWUSER != 0,
            new_pid: new & libc::CLONE_NEWPID != 0,
            new_mount: new & libc::CLONE_NEWNS != 0,
            host_mounts: seen & libc::CLONE_NEWNS == 0,
            late_cgroupns: false,
            time_offsets,
            joined_user_maps,
            fork_for_pid,
            rootless,
            unshare_after_maps,
        })
    }

    /// `exec`: join every namespace the container's init is in that differs
    /// from ours (setns into our own user namespace would fail). The
    /// container's config names which types it has; paths come from the
    /// init's /proc entry, so joined-by-path and new namespaces look alike.
    pub fn for_exec(init_pid: i32, spec: &Spec) -> Result<Plan> {
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut parent_joins = Vec::new();
        let mut child_joins = Vec::new();
        for ns in &namespaces {
            let t = ns.typ();
            let proc_name = proc_name(t);
            let theirs = PathBuf::from(format!("/proc/{init_pid}/ns/{proc_name}"));
            let ours = format!("/proc/self/ns/{proc_name}");
            let same = match (fs::metadata(&theirs), fs::metadata(&ours)) {
                (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                (Err(e), _) => return Err(e).with_context(|| format!("container init's {} namespace", name(t))),
                (_, Err(e)) => return Err(e).with_context(|| format!("open {ours}")),
            };
            if same {
                continue;
            }
            let join = Join {
                fd: open_namespace(&theirs, t)?,
                flag: flag(t),
                path: theirs,
            };
            if join.flag == libc::CLONE_NEWPID || join.flag == libc::CLONE_NEWTIME {
                parent_joins.push(join);
            } else {
                child_joins.push(join);
            }
        }
        // Not root, we may only join the container's pid and time
        // namespaces from inside its user namespace: the child joins them
        // all and forks the process in, as for a new pid namespace beside a
        // joined user namespace.
        let mut fork_for_pid = false;
        let user = child_joins.iter().any(|j| j.flag == libc::CLONE_NEWUSER);
        if user && !parent_joins.is_empty() && crate::rootless::euid() {
            child_joins.append(&mut parent_joins);
            fork_for_pid = true;
        }
        sort_joins(&mut child_joins);
        Ok(Plan {
            clone_flags: 0,
            unshare_flags: 0,
            parent_joins,
            child_joins,
            new_user: false,
            new_pid: false,
            new_mount: false,
            host_mounts: false,
            late_cgroupns: false,
            time_offsets: None,
            joined_user_maps: None,
            fork_for_pid,
            rootless: false,
            unshare_after_maps: 0,
        })
    }

    /// Whether the process ends up in a user namespace other than ours.
    pub fn in_user_ns(&self) -> bool {
        self.new_user || self.child_joins.iter().any(|j| j.flag == libc::CLONE_NEWUSER)
    }

    /// Whether the container gets a cgroup namespace of its own.
    pub fn new_cgroupns(&self) -> bool {
        let f = libc::CLONE_NEWCGROUP;
        self.late_cgroupns || self.clone_flags & f as u64 != 0 || self.unshare_flags & f != 0
    }

    /// Leaves every new namespace but pid and time (which only children
    /// enter) to the child, which unshares them first thing (`enter`)
    /// instead of clone3: making them (a network namespace above all, about
    /// a millisecond) then overlaps the parent's work after clone3. Not with
    /// a new user namespace, which must exist, mapped, before the others.
    pub fn unshare_in_child(&mut self) {
        if self.new_user {
            return;
        }
        let only_children = (libc::CLONE_NEWPID | libc::CLONE_NEWTIME) as u64;
        self.unshare_flags |= (self.clone_flags & !only_children) as i32;
        self.clone_flags &= only_children;
    }

    /// Creates the cgroup namespace in the child instead of in clone3, so
    /// that its root is the container's cgroup once the parent placed it.
    pub fn defer_cgroupns(&mut self) {
        let f = libc::CLONE_NEWCGROUP;
        if self.clone_flags & f as u64 != 0 || self.unshare_flags & f != 0 {
            self.clone_flags &= !(f as u64);
            self.unshare_flags &= !f;
            self.late_cgroupns = true;
        }
    }

    /// Child side, first thing after clone3: join by path, unshare what is
    /// new, and (with a new user namespace) let the parent write the id maps
    /// through `wait_for_maps`.
    pub fn enter(&self, wait_for_maps: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
        let mut joined = 0;
        if self.child_joins.iter().any(|j| j.flag == libc::CLONE_NEWUSER) {
            // Those the host owns, while we still are the host's root.
            joined |= self.join(!libc::CLONE_NEWUSER, true)?;
            joined |= self.join(libc::CLONE_NEWUSER, false)?;
        }
        self.join(!joined, false)?;
        if self.unshare_flags != 0 {
            sys::unshare(self.unshare_flags).at(Step::Unshare, "")?;
        }
        if self.new_user {
            wait_for_maps()?;
            // Become root of the new user namespace, so files we create are
            // owned by a mapped id.
            become_root()?;
        }
        if self.unshare_after_maps != 0 {
            sys::unshare(self.unshare_after_maps).at(Step::Unshare, "")?;
            if let Some(offsets) = self.time_offsets.as_deref() {
                let path = Path::new("/proc/self/timens_offsets");
                let fd = sys::openat(libc::AT_FDCWD, path, libc::O_WRONLY | libc::O_CLOEXEC, 0)
                    .at(Step::Unshare, path.display())?;
                sys::write_all(fd.as_raw_fd(), offsets.as_bytes()).at(Step::Unshare, path.display())?;
            }
        }
        if self.late_cgroupns {
            sys::unshare(libc::CLONE_NEWCGROUP).at(Step::Unshare, "cgroup")?;
        }
        Ok(())
    }

    /// Joins the namespaces whose type is in `types`, in `child_joins`
    /// order; with `skip_denied`, one we may not join (yet) is left for a
    /// later call. Returns the types joined.
    fn join(&self, types: i32, skip_denied: bool) -> Result<i32, Failure> {
        let mut joined = 0;
        for j in self.child_joins.iter().filter(|j| j.flag & types != 0) {
            match sys::setns(j.fd.as_raw_fd(), j.flag) {
                Err(e) if skip_denied && e.raw_os_error() == Some(libc::EPERM) => continue,
                other => other.at(Step::JoinNamespace, j.path.display())?,
            }
            joined |= j.flag;
            if j.flag == libc::CLONE_NEWUSER {
                // As for a new one (and runc): our host ids mean nothing in
                // there, and files we create need mapped ones.
                become_root()?;
            }
        }
        Ok(joined)
    }

    /// The host uid and gid of the container's root (0, 0 without a user
    /// namespace): from the joined namespace, or the config's mappings.
    pub fn host_root_ids(&self, spec: &Spec) -> (u32, u32) {
        match &self.joined_user_maps {
            Some(maps) => maps.host_root(),
            None => host_root_ids(spec),
        }
    }
}

fn become_root() -> Result<(), Failure> {
    sys::setresgid(0).at(Step::SetGid, "0")?;
    sys::setresuid(0).at(Step::SetUid, "0")
}

/// runc's validation: a new user namespace needs mappings, and mappings
/// need a user namespace (joined ones are checked by `userns`).
fn check_mappings_wanted(spec: &Spec, user_ns: bool, new_user_ns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| l.uid_mappings().is_some() || l.gid_mappings().is_some());
    if new_user_ns && !has_maps {
        bail!("user namespaces enabled, but no namespace path to join nor mappings to apply specified");
    }
    if !user_ns && has_maps {
        bail!("user namespace mappings specified, but user namespace isn't enabled in the config");
    }
    Ok(())
}

/// The clocks a time namespace may offset, as the kernel names them.
const TIME_CLOCKS: [&str; 2] = ["monotonic", "boottime"];

/// linux.timeOffsets as the lines of /proc/self/timens_offsets, or None.
fn time_offsets_text(spec: &Spec) -> Result<Option<String>> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref()) else {
        return Ok(None);
    };
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by_key(|(name, _)| name.as_str());
    let mut text = String::new();
    for (clock, offset) in clocks {
        if !TIME_CLOCKS.contains(&clock.as_str()) {
            bail!("linux.timeOffsets: unknown clock {clock:?} (a time namespace offsets monotonic and boottime)");
        }
        let nanos = offset.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            bail!("linux.timeOffsets: {clock} nanosecs {nanos} is not below one second");
        }
        text.push_str(&format!("{clock} {} {nanos}\n", offset.secs().unwrap_or(0)));
    }
    Ok(Some(text))
}

/// Parent side, around clone3: join the pid/time namespaces given by path,
/// or make the new time namespace with its offsets (unshare only changes
/// `time_for_children`, so the parent itself stays where it is); returns
/// the handles needed to come back.
pub fn enter_for_children(plan: &Plan) -> Result<Vec<(OwnedFd, i32)>> {
    let mut restore = Vec::new();
    // (Rootless, the child makes it: `unshare_after_maps`.)
    if let Some(offsets) = plan.time_offsets.as_ref().filter(|_| plan.unshare_after_maps == 0) {
        let fd: OwnedFd = fs::File::open("/proc/self/ns/time")
            .context("open /proc/self/ns/time")?
            .into();
        sys::unshare(libc::CLONE_NEWTIME).context("unshare the time namespace")?;
        restore.push((fd, libc::CLONE_NEWTIME));
        if let Err(e) = fs::write("/proc/self/timens_offsets", offsets) {
            let _ = leave_for_children(restore);
            return Err(e).with_context(|| format!("write time offsets {:?}", offsets.trim_end()));
        }
    }
    for j in &plan.parent_joins {
        let own = if j.flag == libc::CLONE_NEWPID {
            "/proc/self/ns/pid"
        } else {
            "/proc/self/ns/time"
        };
        let fd: OwnedFd = fs::File::open(own).with_context(|| format!("open {own}"))?.into();
        sys::setns(j.fd.as_raw_fd(), j.flag).with_context(|| format!("setns {}", j.path.display()))?;
        restore.push((fd, j.flag));
    }
    Ok(restore)
}

pub fn leave_for_children(restore: Vec<(OwnedFd, i32)>) -> Result<()> {
    for (fd, flag) in restore {
        sys::setns(fd.as_raw_fd(), flag).context("return to the runtime's own namespace")?;
    }
    Ok(())
}

/// The host uid and gid that the config's mappings give the container's
/// root (0, 0 without them).
fn host_root_ids(spec: &Spec) -> (u32, u32) {
    let linux = spec.linux().as_ref();
    let to_host = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map_or(0, |m| m.host_id())
    };
    (
        to_host(linux.and_then(|l| l.uid_mappings().as_ref())),
        to_host(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

/// Writes /proc/PID/{uid_map,gid_map} for a child in a new user namespace.
pub fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().as_ref());
    let gids = linux.and_then(|l| l.gid_mappings().as_ref());
    let (Some(uids), Some(gids)) = (uids, gids) else {
        bail!("a new user namespace needs linux.uidMappings and linux.gidMappings");
    };
    if crate::rootless::euid() {
        return idmap::write_rootless(pid, uids, gids);
    }
    write_map(pid, "uid_map", uids)?;
    write_map(pid, "gid_map", gids)
}

fn write_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    fs::write(&path, idmap::map_text(maps)).with_context(|| format!("write {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces}
        }))
        .unwrap()
    }

    fn with_maps(mut spec: Spec) -> Spec {
        let mut linux = spec.linux().clone().unwrap();
        let map: Vec<LinuxIdMapping> =
            serde_json::from_value(serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 10}])).unwrap();
        linux.set_uid_mappings(Some(map.clone())).set_gid_mappings(Some(map));
        spec.set_linux(Some(linux));
        spec
    }

    #[test]
    fn new_namespaces_all_go_to_clone3() {
        let spec = with_maps(spec_with(serde_json::json!([
            {"type": "pid"}, {"type": "network"}, {"type": "mount"}, {"type": "user"}
        ])));
        let p = Plan::from_spec(&spec).unwrap();
        let want = libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWUSER;
        assert_eq!(p.clone_flags, want as u64);
        assert_eq!(p.unshare_flags, 0);
        assert!(p.new_user && p.new_pid);
    }

    #[test]
    fn joining_by_path_defers_new_namespaces_to_the_child() {
        let spec = spec_with(serde_json::json!([
            {"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}, {"type": "mount"}
        ]));
        let p = Plan::from_spec(&spec).unwrap();
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID as u64);
        assert_eq!(p.unshare_flags, libc::CLONE_NEWNS);
        assert_eq!(p.child_joins.len(), 1);
    }

    #[test]
    fn mappings_and_user_namespaces_go_together() {
        let err = |spec: &Spec| Plan::from_spec(spec).err().unwrap().to_string();
        let no_maps = spec_with(serde_json::json!([{"type": "user"}]));
        assert!(err(&no_maps).contains("no namespace path to join nor mappings"));
        let no_userns = with_maps(spec_with(serde_json::json!([{"type": "pid"}])));
        assert!(err(&no_userns).contains("user namespace isn't enabled"));
    }

    // Our own user namespace stands in for a joined one (its maps are read
    // from /proc/self, no helper needed).
    #[test]
    fn joined_user_namespace_with_a_new_pid_namespace_forks_the_init() {
        let spec = spec_with(serde_json::json!([
            {"type": "user", "path": "/proc/self/ns/user"}, {"type": "pid"}, {"type": "mount"}
        ]));
        let p = Plan::from_spec(&spec).unwrap();
        assert!(p.fork_for_pid && p.new_pid);
        assert_eq!(p.clone_flags, 0);
        assert_eq!(p.unshare_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert!(p.joined_user_maps.is_some());
        let joined_pid = spec_with(serde_json::json!([
            {"type": "user", "path": "/proc/self/ns/user"}, {"type": "pid", "path": "/proc/self/ns/pid"}
        ]));
        let p = Plan::from_spec(&joined_pid).unwrap();
        assert!(!p.fork_for_pid && !p.new_pid);
        let no_user = spec_with(serde_json::json!([{"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}]));
        assert!(!Plan::from_spec(&no_user).unwrap().fork_for_pid);
    }

    #[test]
    fn duplicate_and_mistyped_namespaces_are_rejected() {
        let dup = spec_with(serde_json::json!([{"type": "pid"}, {"type": "pid"}]));
        assert!(Plan::from_spec(&dup).is_err());
        let wrong = spec_with(serde_json::json!([{"type": "uts", "path": "/proc/self/ns/net"}]));
        let err = Plan::from_spec(&wrong).err().unwrap().to_string();
        assert!(err.contains("not a uts namespace"), "{err}");
    }

    #[test]
    fn time_offsets_make_the_time_namespace_in_the_parent() {
        let mut spec = spec_with(serde_json::json!([{"type": "time"}, {"type": "pid"}]));
        let p = Plan::from_spec(&spec).unwrap();
        assert_eq!(p.clone_flags, (libc::CLONE_NEWTIME | libc::CLONE_NEWPID) as u64);
        assert!(p.time_offsets.is_none());
        let linux: oci_spec::runtime::Linux = serde_json::from_value(serde_json::json!({
            "namespaces": [{"type": "time"}, {"type": "pid"}],
            "timeOffsets": {"monotonic": {"secs": -5, "nanosecs": 7}, "boottime": {"secs": 86400}}
        }))
        .unwrap();
        spec.set_linux(Some(linux.clone()));
        let p = Plan::from_spec(&spec).unwrap();
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID as u64);
        assert_eq!(p.time_offsets.as_deref(), Some("boottime 86400 0\nmonotonic -5 7\n"));
        let mut bad = linux;
        bad.set_time_offsets(Some(
            [("realtime".to_string(), Default::default())].into_iter().collect(),
        ));
        spec.set_linux(Some(bad));
        let err = Plan::from_spec(&spec).err().unwrap().to_string();
        assert!(err.contains("unknown clock \"realtime\""), "{err}");
    }
}
