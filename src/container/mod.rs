//! Creating a container, as an ordered list of named steps (the same names
//! appear in errors and on the `--debug` timeline):
//!
//! 1. parse: load and check config.json, plan namespaces/process/rootfs
//! 2. state: create the state directory and write state.json ahead (status
//!    creating, the cgroup about to be made, where the mounts will be), and
//!    exec.fifo for `create`
//! 3. cgroup: create it with its limits
//! 4. clone: clone3 into the new namespaces; the child runs `init::run`; the
//!    parent records its PID at once (and a child that will mount in the
//!    runtime's namespace waits for that)
//! 5. id maps, then (the mounts made, before pivot_root) the prestart and
//!    createRuntime hooks, as the child asks for them
//! 6. ready: the child has set everything up and waits for `start`
//! 7. record: the final state.json and --pid-file
//!
//! Any failure kills the child and removes what was made, so nothing is
//! left behind; mounts die with the child's mount namespace (or are
//! unmounted, without one). If xrun itself is killed, state.json names all
//! of it for `delete`, and the child, reading EOF on the sync socket at its
//! next step, exits.

pub mod exec;
pub mod init;
pub mod pidfd_socket;
pub mod processes;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Hooks, LinuxNamespaceType};

use crate::cli::CreateArgs;
use crate::config::{self, Bundle};
use crate::rootfs::{self, devices, mounts};
use crate::state::{self, ContainerDir, Saved};
use crate::sync::{self, Kind};
use crate::{cgroups, console, namespaces, process, seccomp, sys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `xrun create`: the child waits on exec.fifo for `xrun start`.
    Create,
    /// `xrun run`: the parent releases the child over the sync socket.
    Run,
    /// `xrun exec`: joins a running container; released like `Run`.
    Exec,
}

/// Where the process's root comes from.
pub enum Root<'a> {
    /// create/run: mount the rootfs and pivot into it.
    Build(rootfs::Plan<'a>),
    /// exec: the container init's root (/proc/PID/root), entered with
    /// chroot after joining its mount namespace.
    Join(OwnedFd),
}

/// Everything the child needs, computed before clone3 and inherited through
/// the copied address space (nothing is serialised).
pub struct Launch<'a> {
    pub id: String,
    pub mode: Mode,
    pub bundle: &'a Bundle,
    pub ns: namespaces::Plan,
    /// None when config.json has no process (create works, start fails).
    pub process: Option<process::Plan>,
    pub root: Root<'a>,
    pub child_sync: RawFd,
    pub fifo_fd: RawFd,
    pub preserve_fds: u32,
    /// exec without --cgroup: the init's pid, whose current cgroup takes
    /// the process when the container's cannot (cgroup v2, as runc).
    pub cgroup_fallback_init: Option<i32>,
    pub no_new_keyring: bool,
    /// prestart or createRuntime hooks: the child asks the parent to run
    /// them once its mounts are made.
    pub has_runtime_hooks: bool,
    pub hook_state: Saved,
    pub seccomp: Option<seccomp::Filter>,
    /// linux.personality, as personality(2) takes it.
    pub personality: Option<libc::c_ulong>,
    /// process.apparmorProfile / selinuxLabel, written just before execve.
    pub lsm: process::lsm::ExecLabels,
    /// process.oomScoreAdj, written by the parent.
    pub oom_score_adj: Option<i32>,
    /// process.terminal: the pty to set up.
    pub console: Option<console::Plan>,
    /// `--systemd-cgroup`: the unit the init is started in once cloned.
    pub systemd: Option<cgroups::systemd::Scope>,
    /// v1 hierarchies' `tasks` files the child joins itself, by writing
    /// "0" (see `self_joins`): first thing, and (`self_join_late`) once its
    /// root is built.
    pub self_join: Vec<std::ffi::CString>,
    pub self_join_late: Option<std::ffi::CString>,
    /// The parent makes the v1 hierarchies after clone3 and sends Placed;
    /// the child joins them when its mounts reach the cgroup (see
    /// `cgroups_after_clone`).
    pub cgroups_after_clone: bool,
}

impl Launch<'_> {
    pub fn hooks(&self) -> Option<&Hooks> {
        self.bundle.spec.hooks().as_ref()
    }
}

/// Where the container's process is announced: its pty master goes to
/// `console` (--console-socket), a pidfd of it to `pidfd` (--pidfd-socket).
#[derive(Clone, Copy, Default)]
pub struct Sockets<'a> {
    pub console: Option<&'a UnixStream>,
    pub pidfd: Option<&'a UnixStream>,
}

/// A container whose init is set up and waiting.
pub struct Created {
    pub dir: ContainerDir,
    pub saved: Saved,
    pub pidfd: OwnedFd,
    pub sync: OwnedFd,
    /// The pty master (process.terminal) when no --console-socket took it:
    /// a foreground run relays it.
    pub console: Option<OwnedFd>,
}

/// `create`, or a detached `run`.
pub fn create(root: &Path, args: &CreateArgs, mode: Mode) -> Result<Created> {
    create_as(root, args, mode, mode == Mode::Create)
}

/// `detached`: nobody stays to relay a terminal, so process.terminal needs
/// --console-socket (runc's rules, `console::check_flags`).
pub fn create_as(root: &Path, args: &CreateArgs, mode: Mode, detached: bool) -> Result<Created> {
    crate::phase!("parse");
    state::validate_id(&args.id)?;
    let bundle = config::load(&args.bundle)?;
    let spec = &bundle.spec;
    let terminal = spec.process().as_ref().is_some_and(|p| p.terminal().unwrap_or(false));
    console::check_flags(terminal, detached, args.console_socket.as_deref())?;
    let ns = namespaces::Plan::from_spec(spec)?;
    let console_plan = spec
        .process()
        .as_ref()
        .and_then(|p| console::Plan::from_process(p, ns.new_mount));
    let mut process = spec.process().as_ref().map(process::Plan::from_spec).transpose()?;
    if crate::rootless::euid() {
        crate::rootless::validate(spec, ns.joined_user_maps.as_ref())?;
        crate::rootless::check_process(process.as_ref().map_or(&[][..], |p| &p.additional_gids))?;
        crate::rootless::check_state_root(root)?;
    }
    // process.execCPUAffinity is not for the init (runtime spec): its mask
    // is reset once it is placed (`reset_affinity`).
    if let Some(p) = process.as_mut() {
        (p.cpus_initial, p.cpus_final) = (None, None);
    }
    // systemd socket activation passes through, after which --preserve-fds
    // counts, as in runc.
    let listen_fds = process::fds::socket_activation_fds();
    if let (Some(n), Some(p)) = (listen_fds, process.as_mut()) {
        p.add_env(&format!("LISTEN_FDS={n}"));
        p.add_env("LISTEN_PID=1");
    }
    // Read once: the cgroup mount inside and the container's cgroup need it.
    let cgroup_layout = cgroups::layout::Layout::detect()?;
    let rootfs = rootfs_plan(&bundle, args, &ns, &cgroup_layout)?;
    let systemd = if cgroups::systemd::requested() {
        Some(cgroups::systemd::Scope::new(spec, &args.id, &cgroup_layout)?)
    } else {
        None
    };
    let seccomp = seccomp::from_spec(spec)?;
    let personality = process::attrs::personality_of(spec)?;
    // Connected before anything exists, so a bad path leaves nothing behind.
    let console_socket = args
        .console_socket
        .as_deref()
        .map(console::socket::connect)
        .transpose()?;
    let pidfd_socket = args.pidfd_socket.as_deref().map(pidfd_socket::connect).transpose()?;
    let sockets = Sockets {
        console: console_socket.as_ref(),
        pidfd: pidfd_socket.as_ref(),
    };

    crate::phase!("state");
    let dir = ContainerDir::create(root, &args.id)?;
    let mut hook_state = initial_state(&bundle, &args.id, &ns);
    hook_state.cgroup = Some(match &systemd {
        Some(scope) => scope.plan(&cgroup_layout),
        None => cgroups::plan(spec, &args.id, &cgroup_layout),
    });
    if let Err(e) = dir.save(&hook_state) {
        let _ = dir.remove();
        return Err(e);
    }
    let hooks = spec.hooks().as_ref();
    let mut launch = Launch {
        id: args.id.clone(),
        mode,
        bundle: &bundle,
        hook_state,
        root: Root::Build(rootfs),
        ns,
        process,
        child_sync: -1,
        fifo_fd: -1,
        preserve_fds: listen_fds.unwrap_or(0) + args.preserve_fds,
        cgroup_fallback_init: None,
        no_new_keyring: args.no_new_keyring,
        has_runtime_hooks: hooks.is_some_and(|h| {
            let any = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v| !v.is_empty());
            any(h.prestart()) || any(h.create_runtime())
        }),
        seccomp,
        personality,
        lsm: process::lsm::ExecLabels::from_spec(spec, &process::lsm::Host::real()),
        oom_score_adj: spec.process().as_ref().and_then(|p| p.oom_score_adj()),
        console: console_plan,
        systemd,
        self_join: Vec::new(),
        self_join_late: None,
        cgroups_after_clone: false,
    };
    let pid_file = args.pid_file.as_deref();
    match start_init(&dir, &mut launch, &cgroup_layout, pid_file, sockets) {
        Ok((saved, pidfd, sync, console)) => Ok(Created {
            dir,
            saved,
            pidfd,
            sync,
            console,
        }),
        Err(e) => {
            // Planned or made: only what this create made is removed.
            if let Some(record) = &launch.hook_state.cgroup {
                cgroups::destroy(&record.only_created());
            }
            if launch.hook_state.host_mounts {
                rootfs::unmount_below(&bundle.rootfs);
            }
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Everything the rootfs steps need, checked before anything is created.
fn rootfs_plan<'a>(
    bundle: &'a Bundle,
    args: &CreateArgs,
    ns: &namespaces::Plan,
    cgroup_layout: &cgroups::layout::Layout,
) -> Result<rootfs::Plan<'a>> {
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    for m in mounts {
        mounts::parse_options(m.options().as_deref().unwrap_or(&[]))
            .map_err(|e| anyhow!("mount {}: {e}", m.destination().display()))?;
    }
    let devices = devices::plan(linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[])).map_err(|e| anyhow!(e))?;
    let cgroups = if mounts.iter().any(|m| m.typ().as_deref() == Some("cgroup")) {
        let cgroupns = linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::Cgroup));
        mounts::CgroupLayout::from_layout(cgroup_layout, cgroupns)
    } else {
        mounts::CgroupLayout::default()
    };
    let root_propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => libc::MS_PRIVATE | libc::MS_REC,
        Some(p) => mounts::propagation_flag(p).ok_or_else(|| anyhow!("unknown rootfsPropagation {p:?}"))?,
    };
    Ok(rootfs::Plan {
        spec,
        rootfs: &bundle.rootfs,
        bundle: &bundle.dir,
        no_pivot: args.no_pivot,
        own_mount_ns: ns.new_mount,
        in_user_ns: ns.in_user_ns(),
        devices,
        setup_dev: !rootfs::binds_dev(spec, &bundle.rootfs),
        cgroups,
        root_propagation,
        mount_label: process::lsm::mount_label_of(spec)?,
        idmaps: rootfs::sources::plan(spec, ns)?,
    })
}

/// The state as it will be recorded; pid and start time come at Ready.
fn initial_state(bundle: &Bundle, id: &str, ns: &namespaces::Plan) -> Saved {
    Saved {
        oci_version: state::OCI_VERSION.to_string(),
        id: id.to_string(),
        pid: 0,
        init_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        owner: String::new(),
        annotations: bundle.spec.annotations().clone(),
        hooks: bundle.spec.hooks().clone(),
        own_pid_ns: ns.new_pid,
        host_mounts: ns.host_mounts,
        pid_ns: None,
        mnt_ns: None,
        cgroup: None,
        creating: true,
    }
}

/// Steps 2-6 once the state directory exists; on error the caller removes it.
fn start_init(
    dir: &ContainerDir,
    launch: &mut Launch,
    cgroup_layout: &cgroups::layout::Layout,
    pid_file: Option<&Path>,
    sockets: Sockets,
) -> Result<(Saved, OwnedFd, OwnedFd, Option<OwnedFd>)> {
    let fifo = match launch.mode {
        Mode::Create => {
            let path = dir.fifo_path();
            sys::mkfifo(&sys::cstring(&path)?, 0o622).with_context(|| format!("mkfifo {}", path.display()))?;
            // The init may be a user namespace's root (an unprivileged host
            // id): let it open the fifo despite our umask.
            let (uid, gid) = launch.ns.host_root_ids(&launch.bundle.spec);
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622))?;
            Some(sys::openat(libc::AT_FDCWD, &path, libc::O_PATH, 0)?)
        }
        Mode::Run | Mode::Exec => None,
    };
    launch.fifo_fd = fifo.as_ref().map_or(-1, |f| f.as_raw_fd());
    crate::phase!("cgroup");
    // create wrote this plan down before anything existed; prepare makes it.
    let planned = match &launch.hook_state.cgroup {
        Some(r) => r.clone(),
        None => cgroups::plan(&launch.bundle.spec, &launch.id, cgroup_layout),
    };
    launch.cgroups_after_clone = cgroups_after_clone(launch, cgroup_layout);
    if launch.cgroups_after_clone {
        // The child's namespaces, too, are made while the parent works.
        launch.ns.unshare_in_child();
    }
    let which = match launch.cgroups_after_clone {
        true => cgroups::Hierarchies::Cgroup2Only,
        false => cgroups::Hierarchies::All,
    };
    let prepared = match &launch.systemd {
        // systemd makes the cgroup when the init is there to put in it.
        Some(_) => Ok(cgroups::Prepared {
            record: planned.clone(),
            clone_into: None,
            skipped: false,
        }),
        None => cgroups::prepare(&launch.bundle.spec, &launch.id, cgroup_layout, &planned, which),
    };
    let mut cgroup = match prepared {
        Ok(c) => c,
        Err(e) => {
            // prepare removed what it made; the rest of the plan may be
            // another container's (a cgroup that appeared since), never ours
            // to empty.
            launch.hook_state.cgroup = None;
            return Err(e);
        }
    };
    if launch.cgroups_after_clone {
        // Recorded as planned until they exist (`make_v1_after_clone`).
        cgroup.record.v1.clone_from(&planned.v1);
        cgroup.record.freezer.clone_from(&planned.freezer);
        cgroup.record.created.clone_from(&planned.created);
    }
    let record = cgroup.record.clone();
    if let Root::Build(plan) = &mut launch.root {
        // The cgroup mount binds these in (see mounts::mount_cgroup); a
        // hierarchy skipped (rootless) shows the cgroup we are in, as runc's.
        plan.cgroups.set_own_dirs(record.dirs())?;
        if cgroup.skipped {
            plan.cgroups.set_own_dirs(cgroups::current_dirs(cgroup_layout).iter())?;
        }
    }
    if cgroup.skipped && !launch.ns.new_pid {
        crate::warn!(
            "rootless container without a cgroup or a pid namespace of its own. Such configuration is strongly discouraged: nothing can then be sure to kill all of its processes"
        );
    }
    // Rootless without any cgroup: the state says so, and the verbs find
    // the container's processes as for a state without one.
    let has_cgroup = record.dirs().next().is_some();
    launch.hook_state.cgroup = Some(cgroup.record).filter(|_| has_cgroup);
    let record = Some(&record).filter(|_| has_cgroup);
    let mut clone_into = cgroup.clone_into;
    if let Some(r) = record.filter(|_| self_joins(launch, cgroup.skipped)) {
        // The devices cgroup is joined once the device nodes exist (without
        // a cgroup namespace, whose root must be the container's cgroup in
        // every hierarchy): its rules apply to the container, not to the
        // mknod of linux.devices, as with runc, which writes them late.
        let devices = cgroup_layout.v1.get("devices").filter(|_| !launch.ns.new_cgroupns());
        let (late, early): (Vec<PathBuf>, Vec<PathBuf>) =
            r.v1.iter()
                .cloned()
                .partition(|d| devices.is_some_and(|m| d.starts_with(m)));
        launch.self_join = tasks_paths(&early)?;
        launch.self_join_late = tasks_paths(&late)?.into_iter().next();
        // Hybrid: the cgroup2 half by CLONE_INTO_CGROUP (no threadgroup
        // migration either).
        if let Some(u) = &r.unified {
            let fd = sys::openat(libc::AT_FDCWD, u, libc::O_PATH | libc::O_DIRECTORY, 0);
            clone_into = Some(fd.with_context(|| format!("open cgroup {}", u.display()))?);
        }
    }
    let later = Some(cgroup_layout).filter(|_| launch.cgroups_after_clone);
    let (pid, pidfd, parent_sync, console) = spawn(launch, record, clone_into, sockets, Some(dir), later)?;
    match record_created(dir, launch, pid, &parent_sync, pid_file) {
        Ok(saved) => Ok((saved, pidfd, parent_sync, console)),
        Err(e) => {
            // The caller removes the cgroup and the state: the init must be
            // gone first.
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
            Err(e)
        }
    }
}

/// Whether the init joins its v1 cgroups itself. Moving a whole process
/// (cgroup.procs, or another's pid) takes the kernel's global threadgroup
/// lock for writing, which waits for an RCU grace period (measured: ~7 ms
/// after a quiet moment, the slow mode of start latency on v1/hybrid
/// hosts); a single-threaded process writing "0" to `tasks` moves only
/// itself and needs no such lock. Only as root and outside any user
/// namespace (the files are the host root's), and never for systemd, which
/// places the init.
fn self_joins(launch: &Launch, skipped: bool) -> bool {
    launch.mode != Mode::Exec
        && launch.systemd.is_none()
        && !skipped
        && !crate::rootless::euid()
        && !launch.ns.in_user_ns()
}

/// Whether the parent makes the v1 hierarchies after clone3, while the
/// child enters its namespaces and mounts its filesystems, instead of
/// before: the child joins them (by itself) only when its mounts reach the
/// cgroup, or else once they are done. The mkdirs and limits (~1.4 ms on a
/// hybrid host) then overlap the child's work rather than delay it. Only for
/// a self-joining init (`self_joins`) of its own mount namespace, that
/// makes no cgroup namespace (made after the join, before the mounts) and
/// forks no init into a pid namespace; a hybrid's cgroup2 half is made
/// first, for CLONE_INTO_CGROUP.
fn cgroups_after_clone(launch: &Launch, layout: &cgroups::layout::Layout) -> bool {
    layout.kind != cgroups::layout::Kind::Unified
        && matches!(launch.root, Root::Build(_))
        && self_joins(launch, false)
        && !launch.ns.new_cgroupns()
        && !launch.ns.fork_for_pid
        && !launch.ns.host_mounts
        && !needs_mount_sources(launch)
}

/// Idmapped mounts ask the parent for their sources while the child mounts
/// (MountSource): a Placed sent meanwhile would answer the wrong question.
fn needs_mount_sources(launch: &Launch) -> bool {
    match &launch.root {
        Root::Build(plan) => plan.idmaps.iter().any(Option::is_some),
        Root::Join(_) => false,
    }
}

/// The v1 half of `cgroups_after_clone`: made once the init exists, then the
/// init is told (Placed). The state records what was made.
fn make_v1_after_clone(launch: &mut Launch, layout: &cgroups::layout::Layout) -> Result<()> {
    let Some(planned) = launch.hook_state.cgroup.clone() else {
        return Ok(());
    };
    let v1 = cgroups::prepare(
        &launch.bundle.spec,
        &launch.id,
        layout,
        &planned,
        cgroups::Hierarchies::V1Only,
    )?;
    let mut made = planned;
    let cgroup2_half = |d: &PathBuf| layout.unified.as_ref().is_some_and(|u| d.starts_with(u));
    made.created.retain(cgroup2_half);
    made.created.extend(v1.record.created);
    made.v1 = v1.record.v1;
    made.freezer = v1.record.freezer;
    launch.hook_state.cgroup = Some(made);
    Ok(())
}

/// `<dir>/tasks` of each of `dirs`.
fn tasks_paths(dirs: &[PathBuf]) -> Result<Vec<std::ffi::CString>> {
    let paths = dirs.iter().map(|d| sys::cstring(&d.join("tasks")));
    paths.collect::<std::io::Result<_>>().context("cgroup path")
}

/// Step 6: the final state.json and --pid-file; a created init is then
/// told it may wait for `start`.
fn record_created(
    dir: &ContainerDir,
    launch: &Launch,
    pid: i32,
    parent_sync: &OwnedFd,
    pid_file: Option<&Path>,
) -> Result<Saved> {
    let mut saved = launch.hook_state.clone();
    saved.creating = false;
    if launch.ns.new_pid {
        saved.pid_ns = processes::namespace_of(pid, "pid");
    }
    if launch.ns.new_mount {
        saved.mnt_ns = processes::namespace_of(pid, "mnt");
    }
    dir.save(&saved)?;
    if let Some(p) = pid_file {
        state::write_atomic(p, pid.to_string().as_bytes())?;
    }
    if launch.mode == Mode::Create {
        // Recorded: the init may now wait for `start`.
        sync::send(parent_sync.as_raw_fd(), Kind::Continue).context("container init exited during setup")?;
    }
    crate::phase!("created");
    Ok(saved)
}

/// clone3s the child (straight into its cgroup when `clone_into` is given),
/// records it in `journal` (create/run), places it (v1/hybrid), lets it go
/// on and serves its requests until it is Ready; its pty master and a
/// pidfd of it go to `sockets`. On error the child is killed and reaped.
/// Returns its pid, pidfd, our end of the sync socket, and the pty master
/// when no socket took it.
fn spawn(
    launch: &mut Launch,
    record: Option<&cgroups::Record>,
    clone_into: Option<OwnedFd>,
    sockets: Sockets,
    journal: Option<&ContainerDir>,
    cgroups_later: Option<&cgroups::layout::Layout>,
) -> Result<(i32, OwnedFd, OwnedFd, Option<OwnedFd>)> {
    let (parent_sync, child_sync) = sys::socketpair_seqpacket()?;
    launch.child_sync = child_sync.as_raw_fd();
    let mut into = clone_into.as_ref().map(|f| f.as_raw_fd());
    // A cgroup namespace is made once the child is in every hierarchy.
    if into.is_none() || !launch.self_join.is_empty() {
        launch.ns.defer_cgroupns();
    }

    crate::phase!("clone");
    let restore = namespaces::enter_for_children(&launch.ns)?;
    let mut forked = sys::clone3(launch.ns.clone_flags, into);
    if into.is_some() && forked.is_err() {
        // A kernel without CLONE_INTO_CGROUP (or refusing this cgroup):
        // place the child through cgroup.procs instead.
        crate::debug!(
            "clone3 into the cgroup failed ({:?}); placing by cgroup.procs",
            forked.as_ref().err()
        );
        into = None;
        launch.ns.defer_cgroupns();
        forked = sys::clone3(launch.ns.clone_flags, None);
    }
    let (mut pid, mut pidfd) = match forked {
        Ok(sys::Forked::Child) => {
            // The child already lives in the joined namespaces: only the
            // parent goes back.
            drop(restore);
            drop(parent_sync);
            init::run(launch)
        }
        Ok(sys::Forked::Parent { pid, pidfd }) => {
            namespaces::leave_for_children(restore)?;
            (pid, pidfd)
        }
        Err(e) => {
            namespaces::leave_for_children(restore)?;
            return Err(e).context("clone3");
        }
    };
    drop(child_sync);
    crate::debug!("process {pid} cloned with flags {:#x}", launch.ns.clone_flags);

    let recorded = match journal {
        Some(dir) => record_child(dir, launch, pid, &pidfd, parent_sync.as_raw_fd()),
        None => Ok(()),
    };
    let made = recorded.and_then(|()| match cgroups_later {
        Some(layout) => make_v1_after_clone(launch, layout),
        None => Ok(()),
    });
    let mut result = made.and_then(|()| place(launch, record.filter(|_| into.is_none()), pid, parent_sync.as_raw_fd()));
    if launch.ns.fork_for_pid && result.is_ok() {
        match adopt_forked_init(launch, journal, pid, parent_sync.as_raw_fd()) {
            Ok((init, init_fd)) => (pid, pidfd) = (init, init_fd),
            Err(e) => result = Err(e),
        }
    }
    let result = result
        .map(|()| reset_affinity(launch, pid))
        .and_then(|()| follow_child(launch, pid, parent_sync.as_raw_fd()))
        .and_then(|master| hand_over_console(launch, master, sockets.console))
        .and_then(|console| match sockets.pidfd {
            Some(sock) => pidfd_socket::send(sock, &pidfd, launch.mode).map(|()| console),
            None => Ok(console),
        });
    match result {
        Ok(console) => Ok((pid, pidfd, parent_sync, console)),
        Err(e) => {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
            Err(e.context(NOT_STARTED))
        }
    }
}

/// The child forked the init into its new pid namespace (`fork_for_pid`)
/// and is exiting: reap it, record the init in its place and let the init
/// go on. Returns the init's pid and pidfd; on error the init is gone and
/// the first child is the caller's to reap.
fn adopt_forked_init(
    launch: &mut Launch,
    journal: Option<&ContainerDir>,
    first: i32,
    sync_fd: RawFd,
) -> Result<(i32, OwnedFd)> {
    let mut msg = sync::recv(sync_fd).context("read from container init")?;
    if msg.as_ref().is_some_and(|m| m.kind == Kind::NeedIdMaps) {
        // Rootless: the child forks only once mapped (`unshare_after_maps`).
        namespaces::write_id_maps(first, &launch.bundle.spec)?;
        sync::send(sync_fd, Kind::Continue)?;
        msg = sync::recv(sync_fd).context("read from container init")?;
    }
    let init = match msg {
        Some(m) if m.kind == Kind::Forked => m.arg,
        Some(m) if m.kind == Kind::Failed => {
            let f = m.failure.expect("Failed frames carry a failure");
            return Err(child_failure(launch.mode, &f));
        }
        Some(_) => bail!("unexpected message from container init"),
        None => bail!("container init exited during setup"),
    };
    // CLONE_PARENT made it our child: its pid cannot be reused before we
    // reap it.
    let init_fd = sys::pidfd_open(init).with_context(|| format!("pidfd_open {init}"))?;
    let adopted = (|| {
        sys::waitpid(first, 0).context("wait for the first child")?;
        if let Some(dir) = journal {
            record_child(dir, launch, init, &init_fd, sync_fd)?;
        }
        sync::send(sync_fd, Kind::Continue).context("container init exited during setup")
    })();
    match adopted {
        Ok(()) => Ok((init, init_fd)),
        Err(e) => {
            let _ = sys::pidfd_send_signal(init_fd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(init, 0);
            Err(e)
        }
    }
}

/// How runc words a failure to get the container's process going, and
/// (create/run) one the init itself reported.
const NOT_STARTED: &str = "unable to start container process";

/// A failure the child reported, in runc's words.
fn child_failure(mode: Mode, f: &sync::Failure) -> anyhow::Error {
    match mode {
        Mode::Create | Mode::Run => anyhow!("error during container init: {f}"),
        Mode::Exec => anyhow!("{f}"),
    }
}

/// The pty master goes to --console-socket if there is one; otherwise it is
/// kept for the caller (a foreground run or exec relays it).
fn hand_over_console(launch: &Launch, master: Option<OwnedFd>, socket: Option<&UnixStream>) -> Result<Option<OwnedFd>> {
    if launch.console.is_some() && master.is_none() {
        bail!("container init set up no terminal");
    }
    match (master, socket) {
        (Some(m), Some(s)) => console::socket::send_master(s, m).map(|()| None),
        // Before the process is released: its first line is already plain.
        (Some(m), None) => {
            console::clear_onlcr(m.as_raw_fd()).context("clear onlcr on the pty master")?;
            Ok(Some(m))
        }
        (None, _) => Ok(None),
    }
}

/// Writes the just-cloned init's PID and start time into state.json
/// before it makes anything, so `delete` can kill it if we die.
fn record_child(dir: &ContainerDir, launch: &mut Launch, pid: i32, pidfd: &OwnedFd, sync_fd: RawFd) -> Result<()> {
    launch.hook_state.pid = pid;
    let Some(start) = state::process_start_time(pid) else {
        // Already dead: it found bad input at its first step, and said so.
        // (Alive but unreadable, its frames are not all queued: no reading.)
        if !has_exited(pidfd) {
            bail!("cannot read the start time of container init {pid}");
        }
        let failure = early_failure(sync_fd).map(|f| child_failure(launch.mode, &f));
        return Err(failure.unwrap_or_else(|| anyhow!("init process vanished")));
    };
    launch.hook_state.init_start_time = start;
    dir.save(&launch.hook_state)
}

/// Whether the process behind `pidfd` has exited (its pidfd is readable).
fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    sys::poll(&mut fds, 0).is_ok_and(|n| n == 1)
}

/// The failure a child that is already dead reported: every frame it sent
/// is queued before the EOF, so reading cannot block. Worded as when it is
/// read later (`child_failure`), whichever is first.
fn early_failure(sync_fd: RawFd) -> Option<sync::Failure> {
    while let Ok(Some(m)) = sync::recv(sync_fd) {
        if m.failure.is_some() {
            return m.failure;
        }
    }
    None
}

/// Puts the child into its cgroup when `record` is given (v1/hybrid, or v2
/// without CLONE_INTO_CGROUP), then lets it go on: an init waits for that
/// before it makes anything (it is recorded by now), and so does a child
/// that creates its cgroup namespace once placed.
fn place(launch: &mut Launch, record: Option<&cgroups::Record>, pid: i32, sync_fd: RawFd) -> Result<()> {
    match record {
        Some(record) if launch.mode == Mode::Exec => cgroups::sub::place(record, pid, launch.cgroup_fallback_init)?,
        Some(_) if launch.systemd.is_some() => {
            let scope = launch.systemd.as_mut().expect("checked");
            if let Err(e) = scope.start(pid, &launch.bundle.spec) {
                if !scope.started {
                    // Not ours (a unit of that name exists): never stopped.
                    launch.hook_state.cgroup = None;
                }
                return Err(e);
            }
        }
        // The child joins its v1 hierarchies itself; only a hybrid's cgroup2
        // half is left when CLONE_INTO_CGROUP was refused.
        Some(record) if !launch.self_join.is_empty() || launch.self_join_late.is_some() => {
            let rest = cgroups::Record {
                unified: record.unified.clone(),
                ..cgroups::Record::empty(record.kind)
            };
            cgroups::place(&rest, pid)?
        }
        Some(record) => cgroups::place(record, pid)?,
        None => {}
    }
    if waits_for_placed(launch) {
        sync::send(sync_fd, Kind::Placed)?;
    } else if launch.cgroups_after_clone {
        // Its mounts come first: a child that failed at one has exited, its
        // failure queued for follow_child to read.
        match sync::send(sync_fd, Kind::Placed) {
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Once the child is in its cgroup: an init, and an exec without
/// process.execCPUAffinity, may use every CPU its cpuset allows rather than
/// inherit the caller's mask (`taskset -c 0 xrun run`), as in runc. A
/// failure leaves the inherited mask, with a warning, as runc does.
fn reset_affinity(launch: &Launch, pid: i32) {
    let exec_affinity = launch
        .process
        .as_ref()
        .is_some_and(|p| p.cpus_initial.is_some() || p.cpus_final.is_some());
    if launch.mode == Mode::Exec && exec_affinity {
        return;
    }
    if let Err(e) = sys::reset_affinity(pid) {
        crate::warn!("resetting the CPU affinity of pid {pid} failed: {e}");
    }
}

/// Whether the child waits for `Placed` before its first step: to root its
/// cgroup namespace, or (create/run without a mount namespace) because its
/// mounts outlive it in ours, so `delete` must be able to kill it before
/// unmounting them. Other inits go on at once (no extra wake-up on the
/// start path): all they make dies with them, and a parent killed before
/// recording them makes them exit at their next step, Ready at the latest.
fn waits_for_placed(launch: &Launch) -> bool {
    // fork_for_pid: the init it forks must start in the cgroup too.
    // systemd: the init must be in its unit before it does anything, or a
    // quick failure (a missing entrypoint) would leave it dead, unmoved.
    launch.ns.late_cgroupns
        || launch.ns.fork_for_pid
        || launch.systemd.is_some()
        || (launch.mode != Mode::Exec && launch.ns.host_mounts)
}

/// Serves the child's requests until it reports Ready (or fails); returns
/// the pty master it sent, if any.
fn follow_child(launch: &mut Launch, pid: i32, sync_fd: RawFd) -> Result<Option<OwnedFd>> {
    let mut console = None;
    // Made at the first MountSource request only.
    let mut sources: Option<rootfs::sources::Server> = None;
    launch.hook_state.pid = pid;
    if let Some(adj) = launch.oom_score_adj {
        let proc = rootfs::procfs::Proc::open().context("open /proc")?;
        let fd = proc
            .open_write(&PathBuf::from(format!("{pid}/oom_score_adj")))
            .context("open oom_score_adj")?;
        sys::write_all(fd.as_raw_fd(), adj.to_string().as_bytes()).with_context(|| format!("set oomScoreAdj {adj}"))?;
    }
    loop {
        let msg = sync::recv(sync_fd).context("read from container init")?;
        let Some(msg) = msg else {
            let status = sys::waitpid(pid, 0).ok().flatten().map_or(-1, sys::exit_code);
            bail!("container init exited during setup (exit code {status})");
        };
        match msg.kind {
            Kind::NeedIdMaps => {
                namespaces::write_id_maps(pid, &launch.bundle.spec)?;
                sync::send(sync_fd, Kind::Continue)?;
            }
            Kind::RuntimeHooks => {
                run_runtime_hooks(launch)?;
                sync::send(sync_fd, Kind::Continue)?;
            }
            Kind::SeccompListener => {
                let fd = msg
                    .fd
                    .ok_or_else(|| anyhow!("seccomp listener message without its fd"))?;
                let profile = launch.bundle.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
                let profile = profile.ok_or_else(|| anyhow!("seccomp listener without a seccomp profile"))?;
                let status = match launch.mode {
                    Mode::Exec => state::Status::Running,
                    Mode::Create | Mode::Run => state::Status::Creating,
                };
                let json = launch.hook_state.hook_json(status);
                seccomp::notify::send_to_agent(profile, pid, &json, fd)?;
                sync::send(sync_fd, Kind::Continue)?;
            }
            Kind::MountSource => {
                let Root::Build(plan) = &launch.root else {
                    bail!("unexpected mount request from container init");
                };
                let server = sources.get_or_insert_with(|| {
                    rootfs::sources::Server::new(&launch.bundle.spec, plan.bundle, &plan.idmaps, &launch.ns)
                });
                let index = u32::try_from(msg.arg).context("mount index from container init")?;
                let fd = server.source(pid, index)?;
                sync::send_with_fd(sync_fd, Kind::MountSource, fd.as_raw_fd())
                    .with_context(|| format!("send the source of mount #{} to container init", msg.arg))?;
            }
            Kind::Console if msg.fd.is_some() && console.is_none() => console = msg.fd,
            Kind::Ready => return Ok(console),
            Kind::Failed => {
                let f = msg.failure.expect("Failed frames carry a failure");
                let _ = sys::waitpid(pid, 0);
                return Err(child_failure(launch.mode, &f));
            }
            Kind::Continue | Kind::Start | Kind::Placed | Kind::Console | Kind::Forked => {
                bail!("unexpected message from container init")
            }
        }
    }
}

/// prestart, then createRuntime hooks, in the runtime's namespaces, while
/// the child waits with its mounts made, before pivot_root (runtime spec;
/// runc's point too). A failure fails create.
fn run_runtime_hooks(launch: &Launch) -> Result<()> {
    let json = launch.hook_state.hook_json(state::Status::Creating);
    let hooks = launch.hooks();
    crate::hooks::run_all("prestart", hooks.and_then(|h| h.prestart().as_ref()), &json)?;
    crate::hooks::run_all("createRuntime", hooks.and_then(|h| h.create_runtime().as_ref()), &json)
}

/// `run` and `exec` (`mode`): lets the child go on to exec, and waits until
/// it has (EOF on the sync socket) or reports why it could not.
pub fn release_over_sync(sync: &OwnedFd, mode: Mode) -> Result<()> {
    let released = (|| {
        sync::send(sync.as_raw_fd(), Kind::Start).context("start container init")?;
        match sync::recv(sync.as_raw_fd())? {
            None => Ok(()),
            Some(m) => match m.failure {
                Some(f) => Err(child_failure(mode, &f)),
                None => bail!("unexpected message from container init"),
            },
        }
    })();
    released.context(NOT_STARTED)
}
