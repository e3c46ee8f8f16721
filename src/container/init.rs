//! The child side: runs in the clone3 child, in xrun's own image, from the
//! namespaces to execve. Every failure goes back to the parent as a
//! `sync::Failure` frame; nothing here panics or formats big strings.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{Launch, Mode, Root};
use crate::rootfs;
use crate::sync::{self, At, Failure, Kind, Step};
use crate::sys;

/// The child's whole life. Never returns: it execs or exits.
pub fn run(launch: &mut Launch) -> ! {
    let sync_fd = launch.child_sync;
    let err = match setup(launch) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    // Before Ready the parent is listening; after the release (create mode)
    // only the caller's stderr is left.
    if sync::send_failure(sync_fd, &err).is_err() {
        let _ = sys::write_all(2, format!("{err}\n").as_bytes());
    }
    sys::exit_now(1)
}

/// execve itself failed: the container's process is ours to report, as
/// runc's init does once set-up is over: the plain error on its own stderr
/// and exit status 255, which `run` and `exec` pass on as the process's.
fn exec_failed(f: &Failure) -> ! {
    let _ = sys::write_all(2, format!("{f}\n").as_bytes());
    sys::exit_now(255)
}

fn wait_for(fd: RawFd, want: Kind) -> Result<(), Failure> {
    match sync::recv(fd) {
        Ok(Some(m)) if m.kind == want => Ok(()),
        // The parent gave up (or died): leave quietly.
        Ok(None) => sys::exit_now(1),
        Ok(Some(_)) => Err(Failure::errno(Step::Protocol, "unexpected message", libc::EPROTO)),
        Err(e) => Err(Failure::new(Step::WaitParent, "", &e)),
    }
}

enum Never {}

fn setup(l: &mut Launch) -> Result<Never, Failure> {
    let sync_fd = l.child_sync;
    // Before anything else: what the caller and the parent had open (a host
    // directory, the state-dir lock, a cgroup fd) must not stay open here,
    // neither while we wait in `created` nor for the container.
    close_unneeded_fds(l)?;
    sys::reset_signals();
    // Nobody may open /proc/<us>/... (fds, exe) while we run xrun's code
    // (but the user of a rootless container, see `rootless`).
    if !l.ns.rootless {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).at(Step::None, "dumpable")?;
    }

    let mut cgroups = SelfJoin::default();
    if !l.cgroups_after_clone {
        cgroups.join(l)?;
    }
    if super::waits_for_placed(l) {
        // Our cgroup namespace must be rooted at the container's cgroup,
        // or our mounts will be in the runtime's namespace and the parent
        // must have recorded us first. If it died instead, we leave here
        // having made nothing.
        wait_for(sync_fd, Kind::Placed)?;
    }
    crate::phase!("namespaces");
    l.ns.enter(|| {
        sync::send(sync_fd, Kind::NeedIdMaps).at(Step::Protocol, "")?;
        wait_for(sync_fd, Kind::Continue)
    })?;
    if l.ns.fork_for_pid {
        fork_init(sync_fd)?;
    }
    // Joined: their fds must not stay open in a created init.
    let in_user_ns = l.ns.in_user_ns();
    l.ns.child_joins.clear();
    if let Some(cpus) = l.process.as_ref().and_then(|p| p.cpus_initial.as_deref()) {
        sys::sched_setaffinity(cpus).at(Step::CpuAffinity, "initial")?;
    }
    match &l.root {
        Root::Build(plan) => build_root(l, plan, &mut cgroups)?,
        Root::Join(root) => join_root(l, root)?,
    }

    crate::phase!("process");
    // Opened now: once a seccomp filter is loaded, openat2 may be denied.
    let proc = match l.mode {
        Mode::Create => Some(rootfs::procfs::Proc::open().at(Step::ExecFifo, "/proc")?),
        Mode::Run | Mode::Exec => None,
    };
    let Some(p) = l.process.as_mut() else {
        // runtime spec: create works without a process; start must fail.
        let release = release(l, proc.as_ref(), sync_fd)?;
        let f = Failure::errno(Step::Exec, "config.json has no process to start", libc::EINVAL);
        if let Some(fifo) = &release {
            fail_through_fifo(fifo, &f);
        }
        return Err(f);
    };
    if let Some(console) = &l.console {
        crate::console::setup(console, sync_fd)?;
    } else if l.mode != Mode::Exec {
        // A session of its own, as runc gives every init: a terminal's
        // Ctrl-C then reaches only xrun, which forwards it once.
        sys::setsid().at(Step::Console, "setsid")?;
    }
    if let Root::Build(plan) = &l.root {
        rootfs::finish_readonly_mounts(plan)?;
    }
    p.enter_cwd()?;
    p.apply_rlimits()?;
    p.add_home();
    let exe = p.lookup()?;
    keep_only_stdio_and_preserved(l.preserve_fds)?;
    p.apply_scheduling()?;
    set_memory_policy(l.bundle.memory_policy.as_ref())?;
    p.caps.apply_bounding()?;
    // Labels for the execve, set before the seccomp filter and the user
    // switch (runc's order).
    l.lsm.apply()?;
    let nnp = p.no_new_privileges;
    // A filter with a listener goes in before Ready: its fd must reach the
    // agent while the parent still follows us. Others as late as possible.
    let late_seccomp = nnp && !l.seccomp.as_ref().is_some_and(|f| f.has_listener());
    if !nnp {
        // The filter may deny personality(2): set it first.
        set_personality(l.personality)?;
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
        // the user switch below may drop: load it now (runc's order).
        load_seccomp(l.seccomp.as_ref(), sync_fd)?;
    }
    p.switch_user(in_user_ns)?;
    p.caps.apply()?;
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).at(Step::NoNewPrivileges, "")?;
        if !late_seccomp {
            set_personality(l.personality)?;
            load_seccomp(l.seccomp.as_ref(), sync_fd)?;
        }
    }
    sys::umask(p.umask);

    let release = release(l, proc.as_ref(), sync_fd)?;
    // After the release, a failure is reported through the fifo `start` reads.
    let fail = |f: Failure| -> Failure {
        if let Some(fifo) = &release {
            fail_through_fifo(fifo, &f);
        }
        f
    };
    let p = l.process.as_ref().expect("checked above");
    let start_hooks = l.hooks().and_then(|h| h.start_container().as_ref());
    let start_hooks = start_hooks.filter(|h| l.mode != Mode::Exec && !h.is_empty());
    let mut seccomp_pending = late_seccomp;
    if let Some(hooks) = start_hooks {
        // The hooks run as the process will: under its seccomp filter (as
        // in runc), with its env when they set none.
        if seccomp_pending {
            set_personality(l.personality).map_err(fail)?;
            load_seccomp(l.seccomp.as_ref(), sync_fd).map_err(fail)?;
            seccomp_pending = false;
        }
        let state = container_hook_state(l, crate::state::Status::Created);
        crate::hooks::run_all_with_env("startContainer", Some(hooks), &state, Some(&p.env))
            .map_err(|e| fail(hook_failure(Step::StartContainerHook, &e)))?;
    }
    last_process_attrs(p, if seccomp_pending { l.personality } else { None }).map_err(fail)?;
    if let Some(fifo) = &release {
        sys::write_all(fifo.as_raw_fd(), &[0]).at(Step::ExecFifo, "exec.fifo")?;
    }
    if seccomp_pending {
        load_seccomp(l.seccomp.as_ref(), sync_fd)?;
    }
    crate::phase!("exec");
    let err = sys::execve(&exe, &p.args, &p.env);
    exec_failed(&Failure::new(Step::Exec, exe.to_string_lossy(), &err))
}

/// We unshared a pid namespace, which only our children enter: fork the
/// init into it, as a child of the parent (CLONE_PARENT), tell the parent
/// its pid and leave. The init goes on once the parent has recorded it.
fn fork_init(sync_fd: RawFd) -> Result<(), Failure> {
    match sys::clone3(libc::CLONE_PARENT as u64, None).at(Step::Unshare, "fork into the pid namespace")? {
        sys::Forked::Child => wait_for(sync_fd, Kind::Continue),
        sys::Forked::Parent { pid, .. } => {
            sync::send_arg(sync_fd, Kind::Forked, pid).at(Step::Protocol, "")?;
            sys::exit_now(0)
        }
    }
}

/// create/run: hostname, keyring, the mounts, prestart and createRuntime
/// hooks (run by the parent), createContainer hooks (in the rootfs), then
/// pivot into the new root: the runtime spec's order, and runc's.
fn build_root(l: &Launch, plan: &rootfs::Plan, cgroups: &mut SelfJoin) -> Result<(), Failure> {
    let sync_fd = l.child_sync;
    if let Some(h) = l.bundle.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys::sethostname(h).at(Step::SetHostname, h)?;
    }
    if let Some(d) = l.bundle.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(d).at(Step::SetDomainname, d)?;
    }
    if !l.no_new_keyring {
        join_keyring(&l.id)?;
    }
    sys::umask(0);

    crate::phase!("mounts");
    // prepare joins them at the latest once its mounts are made.
    let root = rootfs::prepare(plan, sync_fd, &mut || cgroups.join(l))?;
    // The device nodes are made: the devices cgroup may bind us now, before
    // any hook looks for our cgroups.
    cgroups.join_late(l)?;
    if l.has_runtime_hooks {
        sync::send(sync_fd, Kind::RuntimeHooks).at(Step::Protocol, "")?;
        wait_for(sync_fd, Kind::Continue)?;
    }
    if let Some(hooks) = l.hooks().and_then(|h| h.create_container().as_ref()) {
        // Their cwd is the container's rootfs (runc's), not yet our root.
        sys::fchdir(root.as_raw_fd()).at(Step::CreateContainerHook, plan.rootfs.display())?;
        let state = container_hook_state(l, crate::state::Status::Creating);
        crate::hooks::run_all("createContainer", Some(hooks), &state)
            .map_err(|e| hook_failure(Step::CreateContainerHook, &e))?;
    }
    if let Some(p) = &l.process {
        p.create_cwd(root.as_raw_fd())?;
    }
    crate::phase!("pivot");
    rootfs::enter(plan, &root)?;
    drop(root);
    rootfs::finish(plan)
}

/// exec: a session keyring of its own (as runc), then the init's root.
/// After joining the mount namespace our root is that namespace's root;
/// chroot to the init's own root also covers `--no-pivot` and containers
/// without a mount namespace.
fn join_root(l: &Launch, root: &OwnedFd) -> Result<(), Failure> {
    join_keyring(&l.id)?;
    sys::fchdir(root.as_raw_fd()).at(Step::Chroot, "container root")?;
    sys::chroot(c".").at(Step::Chroot, "container root")
}

/// Tells the parent we are ready, then waits to be released: by `xrun start`
/// through exec.fifo (returned, for the go-ahead byte) or by `run` over the
/// sync socket.
fn release(
    l: &Launch,
    proc: Option<&rootfs::procfs::Proc>,
    sync_fd: RawFd,
) -> Result<Option<std::os::fd::OwnedFd>, Failure> {
    // The --log file is the host's: not kept while we wait.
    crate::logging::close_file();
    sync::send(sync_fd, Kind::Ready).at(Step::Protocol, "")?;
    match proc {
        None => wait_for(sync_fd, Kind::Start).map(|()| None),
        Some(proc) => {
            // The container exists once `create` has recorded it; if it
            // died first, we leave rather than wait for a `start`.
            wait_for(sync_fd, Kind::Continue)?;
            // A created container dies of the signals runc's waiting init
            // dies of (`kill ID TERM`, a pidfd's holder), until its execve.
            sys::exit_on_signals(&[libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM]);
            wait_on_fifo(proc, l.fifo_fd).map(Some)
        }
    }
}

/// After `xrun start` released us, the failure is its to report: tell it
/// through the fifo it is reading, and leave.
fn fail_through_fifo(fifo: &std::os::fd::OwnedFd, f: &Failure) -> ! {
    let _ = sys::write_all(fifo.as_raw_fd(), f.to_string().as_bytes());
    sys::exit_now(1)
}

/// linux.memoryPolicy, for the init and exec'd processes alike (runc's).
fn set_memory_policy(policy: Option<&crate::process::mempolicy::MemPolicy>) -> Result<(), Failure> {
    match policy {
        Some(p) => sys::set_mempolicy(p.mode, p.nodes.as_ref()).at(Step::MemoryPolicy, ""),
        None => Ok(()),
    }
}

fn set_personality(persona: Option<libc::c_ulong>) -> Result<(), Failure> {
    match persona {
        Some(v) => sys::personality(v).map(drop).at(Step::Personality, format!("{v:#x}")),
        None => Ok(()),
    }
}

/// The last changes before execve: the personality (when the seccomp filter
/// is still to come) and the final CPU affinity.
fn last_process_attrs(p: &crate::process::Plan, persona: Option<libc::c_ulong>) -> Result<(), Failure> {
    set_personality(persona)?;
    if let Some(cpus) = p.cpus_final.as_deref() {
        sys::sched_setaffinity(cpus).at(Step::CpuAffinity, "final")?;
    }
    Ok(())
}

/// Loads the filter; a listener fd goes to the parent (for the seccomp
/// agent), and we wait until it has passed it on.
fn load_seccomp(filter: Option<&crate::seccomp::Filter>, sync_fd: RawFd) -> Result<(), Failure> {
    let Some(f) = filter else { return Ok(()) };
    let Some(listener) = crate::seccomp::load(f).at(Step::Seccomp, "")? else {
        return Ok(());
    };
    sync::send_with_fd(sync_fd, Kind::SeccompListener, listener.as_raw_fd()).at(Step::SeccompListener, "")?;
    drop(listener);
    wait_for(sync_fd, Kind::Continue)
}

/// A hook's error already names what failed (`error running KIND hook #N:
/// ...`).
fn hook_failure(step: Step, e: &anyhow::Error) -> Failure {
    Failure::message(step, format!("{e:#}"))
}

/// The state for hooks run in the container's namespaces: the pid is as
/// the container sees it (runtime spec, "State").
fn container_hook_state(l: &Launch, status: crate::state::Status) -> String {
    let mut state = l.hook_state.clone();
    state.pid = sys::getpid();
    state.hook_json(status)
}

/// A new session keyring per container, so containers never share keys.
fn join_keyring(id: &str) -> Result<(), Failure> {
    let name = CString::new(format!("_ses.{id}")).map_err(|_| Failure::errno(Step::Keyring, id, libc::EINVAL))?;
    match sys::keyctl_join_session_keyring(&name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        other => other.at(Step::Keyring, id),
    }
}

/// The v1 cgroups the parent named for us to join (`self_joins`): "0" in
/// `tasks` moves this single-threaded process without the kernel's global
/// lock.
#[derive(Default)]
struct SelfJoin {
    joined: bool,
    /// The late hierarchy's `tasks` (devices), opened while the host's
    /// /sys/fs/cgroup is still in reach.
    late: Option<OwnedFd>,
}

impl SelfJoin {
    /// Joins all but the late hierarchy, once. With `cgroups_after_clone`,
    /// first waits for the parent to have made them (Placed).
    fn join(&mut self, l: &Launch) -> Result<(), Failure> {
        if self.joined {
            return Ok(());
        }
        self.joined = true;
        if l.cgroups_after_clone {
            wait_for(l.child_sync, Kind::Placed)?;
        }
        for path in &l.self_join {
            let fd =
                sys::open_cstr(path, libc::O_WRONLY | libc::O_CLOEXEC).at(Step::JoinCgroup, path.to_string_lossy())?;
            sys::write_all(fd.as_raw_fd(), b"0").at(Step::JoinCgroup, path.to_string_lossy())?;
        }
        if let Some(p) = &l.self_join_late {
            self.late = Some(sys::open_cstr(p, libc::O_WRONLY).at(Step::JoinCgroup, p.to_string_lossy())?);
        }
        Ok(())
    }

    /// The late hierarchy (devices), once the device nodes exist.
    fn join_late(&mut self, l: &Launch) -> Result<(), Failure> {
        if let (Some(fd), Some(p)) = (self.late.take(), &l.self_join_late) {
            sys::write_all(fd.as_raw_fd(), b"0").at(Step::JoinCgroup, p.to_string_lossy())?;
        }
        Ok(())
    }
}

/// Closes every fd but stdio, the preserved ones and what this process still
/// needs: the sync socket, exec.fifo's O_PATH fd, the --log file (closed
/// before Ready), and for exec the init's root and the namespaces to join
/// (their numbers are ours: the parent's survey made sure no fd of xrun's
/// sits among the preserved ones).
fn close_unneeded_fds(l: &Launch) -> Result<(), Failure> {
    let mut keep = vec![l.child_sync, l.fifo_fd, crate::logging::file_fd().unwrap_or(-1)];
    if let Root::Join(root) = &l.root {
        keep.push(root.as_raw_fd());
    }
    keep.extend(l.ns.child_joins.iter().map(|j| j.fd.as_raw_fd()));
    crate::process::fds::close_all_except(l.preserve_fds, &mut keep).at(Step::CloseFds, "")
}

/// The fds we opened since are close-on-exec; the preserved ones are made
/// inheritable.
fn keep_only_stdio_and_preserved(preserve: u32) -> Result<(), Failure> {
    for fd in 3..3 + preserve as RawFd {
        match sys::set_cloexec(fd, false) {
            Err(e) if e.raw_os_error() != Some(libc::EBADF) => return Err(Failure::new(Step::CloseFds, fd, &e)),
            _ => {}
        }
    }
    sys::cloexec_from(3 + preserve).at(Step::CloseFds, "")
}

/// Blocks until `xrun start` opens the fifo for reading; returns the write
/// end. The fifo is reached through our O_PATH fd via the container's
/// verified /proc, never by a path the container controls.
fn wait_on_fifo(proc: &rootfs::procfs::Proc, fifo_fd: RawFd) -> Result<std::os::fd::OwnedFd, Failure> {
    crate::phase!("created: waiting for start");
    proc.reopen_fd(fifo_fd, libc::O_WRONLY).at(Step::ExecFifo, "exec.fifo")
}
