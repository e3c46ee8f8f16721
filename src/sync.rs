//! The parent/child protocol over a SOCK_SEQPACKET socketpair.
//!
//! ```text
//!   parent (xrun create/run)                 child (future container init)
//!   clone3 ───────────────────────────────▶
//!   records its pid in state.json (create/run)
//!   places it in its cgroup (v1/hybrid)
//!          Placed ───────────────────────▶    (for a late cgroup namespace,
//!                                            or mounts in the runtime's)
//!                                            joins/creates namespaces
//!          ◀──────────────── Forked(pid)      (only with a joined user namespace
//!   records the forked init in its place,     and a new pid namespace: the
//!   reaps the first child                     child forks the init into it)
//!          Continue ─────────────────────▶
//!          ◀──────────────── NeedIdMaps       (only with a new user namespace)
//!   writes uid_map/gid_map
//!          Continue ─────────────────────▶
//!                                            mounts
//!          ◀──────────────── MountSource(i)   (per idmapped bind, or a bind
//!   opens mount i's source in the            source the child cannot reach)
//!   child's mount namespace
//!          MountSource + fd ─────────────▶    mounts it
//!          ◀──────────────── RuntimeHooks     (only if prestart/createRuntime hooks)
//!   runs prestart + createRuntime hooks
//!          Continue ─────────────────────▶    createContainer hooks, pivot_root,
//!                                            process setup
//!          ◀──────────────── Ready            (pid is final, exec is next)
//!   run:    Start ───────────────────────▶    startContainer hooks, execve;
//!           EOF on the socket = execve done (the child's end is CLOEXEC)
//!   create: writes state.json,
//!           Continue ────────────────────▶    waits on exec.fifo; `xrun start`
//!           and exits                         releases it
//! ```
//! EOF where the child waits for the parent means the parent died (or gave
//! up): the child exits at once, so a killed `xrun create` leaves no init.
//! Any step may instead send `Failed { step, errno, path }`: a fixed binary
//! frame, no formatted string crosses the boundary. The parent turns it into
//! one line naming the step, the path and the errno.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use crate::sys;

/// Room for a mount entry's `"SRC" to rootfs at "DEST": why` with long paths.
const PATH_MAX_LEN: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    NeedIdMaps = 1,
    RuntimeHooks = 2,
    Ready = 3,
    Continue = 4,
    Start = 5,
    Failed = 6,
    Placed = 7,
    /// Carries the pty master (process.terminal) as SCM_RIGHTS.
    Console = 8,
    /// Carries the seccomp listener fd (SCMP_ACT_NOTIFY) as SCM_RIGHTS.
    SeccompListener = 9,
    /// Carries (as `arg`) the pid of the init the child forked into its
    /// new pid namespace.
    Forked = 10,
    /// Child: "open the source of mount `arg`" (idmapped, or out of the
    /// child's reach); parent: the answer, the source as SCM_RIGHTS.
    MountSource = 11,
}

/// A step of the child's setup; named in error messages and the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    None = 0,
    JoinNamespace,
    Unshare,
    WaitParent,
    SetHostname,
    SetDomainname,
    RootPropagation,
    BindRootfs,
    Mount,
    MountPropagation,
    CreateMountpoint,
    CreateDevice,
    Symlink,
    PivotRoot,
    Chroot,
    Sysctl,
    MaskPath,
    ReadonlyPath,
    RootReadonly,
    Chdir,
    Rlimit,
    Umask,
    SetGroups,
    SetGid,
    SetUid,
    Capabilities,
    NoNewPrivileges,
    Seccomp,
    ExecFifo,
    LookupExecutable,
    Exec,
    CreateContainerHook,
    StartContainerHook,
    CloseFds,
    Keyring,
    Protocol,
    Scheduler,
    IoPriority,
    CpuAffinity,
    Personality,
    Console,
    Lsm,
    SeccompListener,
    VerifyCwd,
    MemoryPolicy,
    JoinCgroup,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::None => "setup",
            Step::JoinNamespace => "setns",
            Step::Unshare => "unshare namespaces",
            Step::WaitParent => "wait for parent",
            Step::SetHostname => "sethostname",
            Step::SetDomainname => "setdomainname",
            Step::RootPropagation => "set rootfs propagation",
            Step::BindRootfs => "bind mount rootfs",
            Step::Mount => "mount",
            Step::MountPropagation => "set mount propagation",
            Step::CreateMountpoint => "create mount point",
            Step::CreateDevice => "create device",
            Step::Symlink => "create symlink",
            Step::PivotRoot => "pivot_root",
            Step::Chroot => "chroot",
            Step::Sysctl => "write sysctl",
            Step::MaskPath => "mask path",
            Step::ReadonlyPath => "make path read-only",
            Step::RootReadonly => "remount rootfs read-only",
            Step::Chdir => "chdir to cwd",
            Step::Rlimit => "setrlimit",
            Step::Umask => "umask",
            Step::SetGroups => "setgroups",
            Step::SetGid => "setgid",
            Step::SetUid => "setuid",
            Step::Capabilities => "set capabilities",
            Step::NoNewPrivileges => "set no_new_privs",
            Step::Seccomp => "load seccomp filter",
            Step::ExecFifo => "wait on exec fifo",
            Step::LookupExecutable => "exec",
            Step::Exec => "exec",
            Step::CreateContainerHook => "createContainer hook",
            Step::StartContainerHook => "startContainer hook",
            Step::CloseFds => "close fds",
            Step::Keyring => "create session keyring",
            Step::Protocol => "talk to parent",
            Step::Scheduler => "set scheduler",
            Step::IoPriority => "set io priority",
            Step::CpuAffinity => "set cpu affinity",
            Step::Personality => "set personality",
            Step::Console => "set up console",
            Step::Lsm => "set LSM label",
            Step::SeccompListener => "send seccomp listener",
            Step::VerifyCwd => "cwd is outside the container's root (possible breakout)",
            Step::MemoryPolicy => "set_mempolicy",
            Step::JoinCgroup => "join cgroup",
        }
    }

    fn from_u32(v: u32) -> Step {
        const ALL: [Step; 46] = [
            Step::None,
            Step::JoinNamespace,
            Step::Unshare,
            Step::WaitParent,
            Step::SetHostname,
            Step::SetDomainname,
            Step::RootPropagation,
            Step::BindRootfs,
            Step::Mount,
            Step::MountPropagation,
            Step::CreateMountpoint,
            Step::CreateDevice,
            Step::Symlink,
            Step::PivotRoot,
            Step::Chroot,
            Step::Sysctl,
            Step::MaskPath,
            Step::ReadonlyPath,
            Step::RootReadonly,
            Step::Chdir,
            Step::Rlimit,
            Step::Umask,
            Step::SetGroups,
            Step::SetGid,
            Step::SetUid,
            Step::Capabilities,
            Step::NoNewPrivileges,
            Step::Seccomp,
            Step::ExecFifo,
            Step::LookupExecutable,
            Step::Exec,
            Step::CreateContainerHook,
            Step::StartContainerHook,
            Step::CloseFds,
            Step::Keyring,
            Step::Protocol,
            Step::Scheduler,
            Step::IoPriority,
            Step::CpuAffinity,
            Step::Personality,
            Step::Console,
            Step::Lsm,
            Step::SeccompListener,
            Step::VerifyCwd,
            Step::MemoryPolicy,
            Step::JoinCgroup,
        ];
        ALL.get(v as usize).copied().unwrap_or(Step::None)
    }
}

/// A failure in the child: which step, which path, which errno.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: Step,
    pub errno: i32,
    pub path: String,
}

impl Failure {
    pub fn new(step: Step, path: impl std::fmt::Display, err: &io::Error) -> Failure {
        Failure {
            step,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
            path: path.to_string(),
        }
    }

    pub fn errno(step: Step, path: impl std::fmt::Display, errno: i32) -> Failure {
        Failure {
            step,
            errno,
            path: path.to_string(),
        }
    }

    /// A failure whose text is complete (a hook's error), shown as is.
    pub fn message(step: Step, text: impl std::fmt::Display) -> Failure {
        Failure::errno(step, text, 0)
    }
}

/// "STEP PATH: errno text"; a mount entry's steps read as runc's
/// `error mounting "SRC" to rootfs at "DEST": ...` (their path is that
/// `"SRC" to rootfs at "DEST"`). With errno 0 the path is the whole message
/// (a hook's error, which names the hook).
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            _ if self.errno == 0 && !self.path.is_empty() => return write!(f, "{}", self.path),
            Step::Mount => write!(f, "error mounting {}", self.path)?,
            Step::CreateMountpoint | Step::MountPropagation => {
                write!(f, "error mounting {}: {}", self.path, self.step.name())?
            }
            step if self.path.is_empty() => write!(f, "{}", step.name())?,
            step => write!(f, "{} {}", step.name(), self.path)?,
        }
        if self.errno != 0 {
            write!(f, ": {}", sys::strerror(self.errno))?;
        }
        Ok(())
    }
}

/// Shorthand for mapping an io::Error to a Failure at a step.
pub trait At<T> {
    fn at(self, step: Step, path: impl std::fmt::Display) -> Result<T, Failure>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, step: Step, path: impl std::fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(step, path, &e))
    }
}

/// One message: a fixed-size frame, and the fd it carried (Console,
/// SeccompListener).
#[derive(Debug)]
pub struct Message {
    pub kind: Kind,
    pub failure: Option<Failure>,
    pub fd: Option<OwnedFd>,
    /// A number the frame carries (Forked's pid, MountSource's mount index).
    pub arg: i32,
}

const FRAME_LEN: usize = 4 + 4 + 4 + 2 + PATH_MAX_LEN;

pub fn send(fd: RawFd, kind: Kind) -> io::Result<()> {
    send_frame(fd, kind, Step::None, 0, "")
}

/// A frame carrying a number (`Message::arg`).
pub fn send_arg(fd: RawFd, kind: Kind, arg: i32) -> io::Result<()> {
    send_frame(fd, kind, Step::None, arg, "")
}

/// A frame that passes `passed` to the peer (SCM_RIGHTS).
pub fn send_with_fd(fd: RawFd, kind: Kind, passed: RawFd) -> io::Result<()> {
    let buf = frame(kind, Step::None, 0, "");
    sys::send_with_fd(fd, &buf, passed)
}

pub fn send_failure(fd: RawFd, f: &Failure) -> io::Result<()> {
    send_frame(fd, Kind::Failed, f.step, f.errno, &f.path)
}

fn send_frame(fd: RawFd, kind: Kind, step: Step, errno: i32, path: &str) -> io::Result<()> {
    sys::send_nosignal(fd, &frame(kind, step, errno, path))
}

fn frame(kind: Kind, step: Step, errno: i32, path: &str) -> [u8; FRAME_LEN] {
    let mut buf = [0u8; FRAME_LEN];
    buf[0..4].copy_from_slice(&(kind as u32).to_le_bytes());
    buf[4..8].copy_from_slice(&(step as u32).to_le_bytes());
    buf[8..12].copy_from_slice(&errno.to_le_bytes());
    let bytes = truncate_utf8(path, PATH_MAX_LEN);
    buf[12..14].copy_from_slice(&(bytes.len() as u16).to_le_bytes());
    buf[14..14 + bytes.len()].copy_from_slice(bytes);
    buf
}

fn truncate_utf8(s: &str, max: usize) -> &[u8] {
    if s.len() <= max {
        return s.as_bytes();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// Receives one frame; `Ok(None)` on EOF (the peer closed or exec'd).
pub fn recv(fd: RawFd) -> io::Result<Option<Message>> {
    let mut buf = [0u8; FRAME_LEN];
    let (n, passed) = sys::recv_with_fd(fd, &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n != FRAME_LEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "short sync frame"));
    }
    let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let kind = match word(0) {
        1 => Kind::NeedIdMaps,
        2 => Kind::RuntimeHooks,
        3 => Kind::Ready,
        4 => Kind::Continue,
        5 => Kind::Start,
        6 => Kind::Failed,
        7 => Kind::Placed,
        8 => Kind::Console,
        9 => Kind::SeccompListener,
        10 => Kind::Forked,
        11 => Kind::MountSource,
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unknown sync frame")),
    };
    let failure = (kind == Kind::Failed).then(|| {
        let len = (u16::from_le_bytes([buf[12], buf[13]]) as usize).min(PATH_MAX_LEN);
        Failure {
            step: Step::from_u32(word(4)),
            errno: word(8) as i32,
            path: String::from_utf8_lossy(&buf[14..14 + len]).into_owned(),
        }
    });
    Ok(Some(Message {
        kind,
        failure,
        fd: passed,
        arg: word(8) as i32,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_message_failure_is_shown_as_is() {
        let f = Failure::message(
            Step::StartContainerHook,
            "error running startContainer hook #0: /x: exit status 1",
        );
        assert_eq!(f.to_string(), "error running startContainer hook #0: /x: exit status 1");
    }

    #[test]
    fn failure_frame_round_trips() {
        let (a, b) = sys::socketpair_seqpacket().unwrap();
        let f = Failure::errno(Step::Mount, "/proc", libc::EPERM);
        send_failure(a.as_raw_fd(), &f).unwrap();
        send(a.as_raw_fd(), Kind::Ready).unwrap();
        let got = recv(b.as_raw_fd()).unwrap().unwrap();
        let gf = got.failure.unwrap();
        assert_eq!(
            (gf.step, gf.errno, gf.path.as_str()),
            (Step::Mount, libc::EPERM, "/proc")
        );
        assert_eq!(gf.to_string(), "error mounting /proc: operation not permitted");
        assert_eq!(recv(b.as_raw_fd()).unwrap().unwrap().kind, Kind::Ready);
        drop(a);
        assert!(recv(b.as_raw_fd()).unwrap().is_none());
    }

    #[test]
    fn failures_read_as_runc_words_them() {
        let at = r#""/src" to rootfs at "/mnt""#;
        let mount = Failure::errno(Step::Mount, at, libc::EPERM);
        assert_eq!(
            mount.to_string(),
            r#"error mounting "/src" to rootfs at "/mnt": operation not permitted"#
        );
        let point = Failure::errno(Step::CreateMountpoint, at, libc::ENOTDIR);
        assert_eq!(
            point.to_string(),
            r#"error mounting "/src" to rootfs at "/mnt": create mount point: not a directory"#
        );
        let exec = Failure::errno(Step::Exec, "/run.sh", libc::ENOENT);
        assert_eq!(exec.to_string(), "exec /run.sh: no such file or directory");
        let why = "createContainer hook /x failed: exit status 1";
        assert_eq!(Failure::errno(Step::CreateContainerHook, why, 0).to_string(), why);
        assert_eq!(
            Failure::errno(Step::Seccomp, "", libc::EINVAL).to_string(),
            "load seccomp filter: invalid argument"
        );
    }

    #[test]
    fn fds_cross_with_their_frame() {
        let (a, b) = sys::socketpair_seqpacket().unwrap();
        let (x, _y) = sys::socketpair_seqpacket().unwrap();
        send_with_fd(a.as_raw_fd(), Kind::Console, x.as_raw_fd()).unwrap();
        send(a.as_raw_fd(), Kind::Ready).unwrap();
        let got = recv(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(got.kind, Kind::Console);
        let passed = got.fd.expect("the fd arrives");
        let (st_x, st_p) = (
            sys::fstat(x.as_raw_fd()).unwrap(),
            sys::fstat(passed.as_raw_fd()).unwrap(),
        );
        assert_eq!((st_x.st_dev, st_x.st_ino), (st_p.st_dev, st_p.st_ino));
        assert!(recv(b.as_raw_fd()).unwrap().unwrap().fd.is_none());
    }

    #[test]
    fn a_request_carries_its_argument() {
        let (a, b) = sys::socketpair_seqpacket().unwrap();
        send_arg(a.as_raw_fd(), Kind::MountSource, 17).unwrap();
        let got = recv(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!((got.kind, got.arg), (Kind::MountSource, 17));
        assert!(got.failure.is_none() && got.fd.is_none());
    }

    #[test]
    fn every_step_round_trips_by_number() {
        for v in 0..46 {
            assert_eq!(Step::from_u32(v) as u32, v);
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_char_boundary() {
        let s = "é".repeat(PATH_MAX_LEN);
        let cut = truncate_utf8(&s, PATH_MAX_LEN);
        assert!(cut.len() <= PATH_MAX_LEN && std::str::from_utf8(cut).is_ok());
    }
}
