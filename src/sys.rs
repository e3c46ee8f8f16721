//! Raw syscall wrappers: every `unsafe` call into the kernel that the rest of
//! xrun needs lives here, each behind a small safe function returning
//! `io::Result`. Nothing else in the crate calls `libc::syscall` directly.

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Turns a `-1` return into the thread's errno.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

pub fn cstring(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: callers pass a freshly returned, valid fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// clone3 flag (libc's constant is deprecated for overflowing its type).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The result of `clone3` as seen by the caller.
pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// clone3 with fork semantics (no new stack, no shared memory) plus the given
/// CLONE_NEW* flags and a pidfd for the parent.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: clone_args is plain old data; all-zero is a valid value.
    let mut args: libc::clone_args = unsafe { mem::zeroed() };
    args.flags = flags | libc::CLONE_PIDFD as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    // With CLONE_PARENT the kernel wants 0 here and gives the child our own
    // exit signal (SIGCHLD).
    if flags & libc::CLONE_PARENT as u64 == 0 {
        args.exit_signal = libc::SIGCHLD as u64;
    }
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: without CLONE_VM the child gets a private copy of our address
    // space and stack, exactly like fork(); the runtime is single-threaded.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            mem::size_of::<libc::clone_args>(),
        )
    })?;
    if ret == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent {
            pid: ret as libc::pid_t,
            pidfd: owned(pidfd as libc::c_long),
        })
    }
}

/// Whether the kernel has clone3: asked with arguments too short to be
/// valid, which fail with EINVAL where it exists and ENOSYS where not.
pub fn clone3_available() -> bool {
    // SAFETY: a null argument block of size 0 is rejected before any use.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<libc::clone_args>(), 0usize) };
    ret == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(owned)
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed and means "as kill()".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// openat2 with the given resolve flags; returns an owned fd.
pub fn openat2(dirfd: RawFd, path: &Path, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: open_how is plain old data; all-zero is valid.
    let mut how: libc::open_how = unsafe { mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    // SAFETY: `c` and `how` outlive the call; the kernel copies both.
    check(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const libc::open_how,
            mem::size_of::<libc::open_how>(),
        )
    })
    .map(owned)
}

pub fn openat(dirfd: RawFd, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    check_int(unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode) })
        .map(|fd| owned(fd as libc::c_long))
}

/// open(2) of a path already made a C string (no allocation: for the
/// child after clone).
pub fn open_cstr(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
    check_int(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) }).map(|fd| owned(fd as libc::c_long))
}

pub fn mkdirat(dirfd: RawFd, name: &Path, mode: u32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: valid C string, integer arguments.
    check_int(unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dirfd: RawFd, name: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: valid C string, integer arguments.
    check_int(unsafe { libc::mknodat(dirfd, c.as_ptr(), mode, dev) }).map(drop)
}

pub fn unlinkat(dirfd: RawFd, name: &Path, flags: i32) -> io::Result<()> {
    let c = cstring(name)?;
    // SAFETY: valid C string, integer arguments.
    check_int(unsafe { libc::unlinkat(dirfd, c.as_ptr(), flags) }).map(drop)
}

pub fn symlinkat(target: &Path, dirfd: RawFd, name: &Path) -> io::Result<()> {
    let t = cstring(target)?;
    let n = cstring(name)?;
    // SAFETY: valid C strings, integer arguments.
    check_int(unsafe { libc::symlinkat(t.as_ptr(), dirfd, n.as_ptr()) }).map(drop)
}

pub fn fchownat_empty(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: empty path with AT_EMPTY_PATH operates on fd itself.
    check_int(unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }).map(drop)
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data and fully written by the kernel on success.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check_int(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn fstatfs(fd: RawFd) -> io::Result<libc::statfs> {
    // SAFETY: statfs is plain old data.
    let mut st: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check_int(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st)
}

pub fn fstatvfs(fd: RawFd) -> io::Result<libc::statvfs> {
    // SAFETY: statvfs is plain old data.
    let mut st: libc::statvfs = unsafe { mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check_int(unsafe { libc::fstatvfs(fd, &mut st) })?;
    Ok(st)
}

/// mount(2). `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a valid C string for the call.
    check_int(unsafe { libc::mount(ptr(source), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) }).map(drop)
}

pub fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C string.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `mount_setattr` attribute change on the mount at `dirfd`/`path`.
pub fn mount_setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: u32,
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
) -> io::Result<()> {
    mount_setattr_raw(dirfd, path, flags, attr_set, attr_clr, propagation, 0)
}

/// Makes the detached mount `fd` (and, `recursive`, every mount below it)
/// idmapped with the mappings of the user namespace `userns`.
pub fn mount_setattr_idmap(fd: RawFd, recursive: bool, userns: RawFd) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    mount_setattr_raw(fd, c"", flags, MOUNT_ATTR_IDMAP, 0, 0, userns as u64)
}

fn mount_setattr_raw(
    dirfd: RawFd,
    path: &CStr,
    flags: u32,
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation,
        userns_fd,
    };
    // SAFETY: `attr` matches the kernel's struct mount_attr (v0, 32 bytes).
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn open_tree(dirfd: RawFd, path: &CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid C string, integer arguments.
    check(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) }).map(owned)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(drop)
}

pub fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: valid C string.
    check_int(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: valid C string.
    check_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

pub fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer argument.
    check_int(unsafe { libc::fchdir(fd) }).map(drop)
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`.
    check_int(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// Marks every fd from `first` upwards close-on-exec (so the runtime's own
/// fds stay usable until execve and vanish with it).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) }).map(drop)
}

/// close_range(2): closes every fd from `first` to `last` (inclusive).
/// ENOSYS on kernels before 5.9; the caller falls back to `close`.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: integer arguments; the caller owns nothing in the range.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// True when `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The soft RLIMIT_NOFILE: no fd of this process is numbered at or above it
/// unless the limit was lowered after it was opened.
pub fn nofile_limit() -> u64 {
    // SAFETY: rlimit is plain old data, written by the kernel on success.
    let mut r: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_cur
    } else {
        1024
    }
}

/// The raw getcwd(2) syscall, which (unlike glibc's getcwd) returns a path
/// starting with "(unreachable)" when the cwd is outside our root.
pub fn getcwd_raw() -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the kernel writes at most buf.len() bytes, NUL included.
    let n = check(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })? as usize;
    buf.truncate(n.saturating_sub(1));
    Ok(buf)
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: integer arguments.
    let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: integer arguments.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }).map(drop)
}

pub fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) };
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used by xrun take integer arguments only.
    check_int(unsafe { libc::prctl(option, arg, 0, 0, 0) }).map(drop)
}

pub fn setgroups(gids: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: pointer and length describe `gids`.
    check_int(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) }).map(drop)
}

pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setresgid(gid, gid, gid) }).map(drop)
}

pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit; prlimit on ourselves (pid 0).
    check_int(unsafe { libc::prlimit(0, resource as libc::__rlimit_resource_t, &lim, std::ptr::null_mut()) }).map(drop)
}

/// Puts every signal back to its default action and unblocks all of them,
/// so the container starts from a clean slate (Rust ignores SIGPIPE, and the
/// runtime blocks the signals it forwards).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound; errors for reserved
        // signals are irrelevant.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialised set.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Makes `signals` end the process with status 128+N. A container's init
/// is its pid namespace's pid 1, for which the kernel drops signals left at
/// SIG_DFL; execve resets these handlers to the default.
pub fn exit_on_signals(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        unsafe { libc::signal(sig, exit_on_signal as *const () as libc::sighandler_t) };
    }
}

/// Blocks `signals` and returns a signalfd that reports them.
pub fn signalfd_for(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        check_int(libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()))?;
        check_int(libc::signalfd(-1, &set, libc::SFD_CLOEXEC)).map(|fd| owned(fd as libc::c_long))
    }
}

/// Reads one signal number from a signalfd.
pub fn read_signalfd(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: signalfd_siginfo is plain old data.
    let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of `size` bytes.
    let n = check(unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) } as libc::c_long)?;
    if n as usize != size {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(info.ssi_signo as libc::c_int)
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `fds`.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// waitpid that retries on EINTR; returns the raw wait status.
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        match ret {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(status)),
            _ => {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
    }
}

/// Converts a raw wait status into a shell-style exit code (128+N for a signal).
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and their strings outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// execveat(fd, "", ..., AT_EMPTY_PATH): runs the file an fd refers to.
pub fn execveat_fd(fd: RawFd, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and their strings outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

pub fn memfd_create(name: &CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid C string, integer flags.
    check_int(unsafe { libc::memfd_create(name.as_ptr(), flags) }).map(|fd| owned(fd as libc::c_long))
}

pub fn fcntl_int(fd: RawFd, cmd: libc::c_int, arg: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: the commands used take an integer argument.
    check_int(unsafe { libc::fcntl(fd, cmd, arg) })
}

pub fn sendfile(out_fd: RawFd, in_fd: RawFd, count: usize) -> io::Result<usize> {
    // SAFETY: null offset means "use and advance the file position".
    check(unsafe { libc::sendfile(out_fd, in_fd, std::ptr::null_mut(), count) } as libc::c_long).map(|n| n as usize)
}

pub fn mkfifo(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid C string.
    check_int(unsafe { libc::mkfifo(path.as_ptr(), mode) }).map(drop)
}

pub fn flock(fd: RawFd, op: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::flock(fd, op) }).map(drop)
}

pub fn socketpair_seqpacket() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element out-array.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok((owned(fds[0] as libc::c_long), owned(fds[1] as libc::c_long)))
}

pub fn write_all(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: pointer and length describe the slice passed in.
    all_of(buf, |b| unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) })
}

/// Calls `op` on what is left of `buf` until all of it is taken, retrying
/// EINTR; `op` returns a count or -1 with errno, as write(2) and send(2).
fn all_of(mut buf: &[u8], mut op: impl FnMut(&[u8]) -> isize) -> io::Result<()> {
    while !buf.is_empty() {
        let n = op(buf);
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// One datagram on a socket; a closed peer is EPIPE, never SIGPIPE.
pub fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// All of `buf` on a stream socket, however many sends that takes; a closed
/// peer is EPIPE, never SIGPIPE; a send timeout (SO_SNDTIMEO) is WouldBlock.
pub fn send_all_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: pointer and length describe the slice passed in.
    all_of(buf, |b| unsafe {
        libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL)
    })
}

/// One datagram carrying `passed` as SCM_RIGHTS; a closed peer is EPIPE.
pub fn send_with_fd(sock: RawFd, buf: &[u8], passed: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `control`, large enough for one header
    // and one fd (space <= 32 bytes), so CMSG_FIRSTHDR is non-null and in bounds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), passed);
    }
    loop {
        // SAFETY: `msg` describes valid buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 && n as usize == buf.len() {
            return Ok(());
        }
        if n >= 0 {
            // A stream peer took part of it (the fd went with the first byte).
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// One datagram into `buf`, and the fd it carried as SCM_RIGHTS, if any
/// (received close-on-exec).
pub fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: `msg` describes valid buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    };
    let mut fd = None;
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG macros
    // walk only within them, and an SCM_RIGHTS payload holds whole fds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    // Keep the first; close any extras a confused peer sent.
                    if fd.is_none() {
                        fd = Some(OwnedFd::from_raw_fd(raw));
                    } else {
                        libc::close(raw);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fd))
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// One write(2); returns how much was taken (EINTR retried).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Closes a raw fd this process does not own as an OwnedFd (an inherited copy).
pub fn close(fd: RawFd) {
    // SAFETY: the caller names an fd it no longer uses; errors are moot.
    unsafe { libc::close(fd) };
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// Sleeps until a signal ends the process (a helper that only holds a
/// namespace open).
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause has no arguments and no memory effects.
        unsafe { libc::pause() };
    }
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid has no arguments and cannot fail.
    unsafe { libc::getppid() }
}

/// Ends the process at once: no atexit handlers, no destructors (in a
/// clone3 child they belong to the parent's copy of the address space).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// USER_HZ, the unit of clock ticks in /proc and cpuacct.stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The filesystem type (f_type) of a path.
pub fn statfs_type(path: &Path) -> io::Result<i64> {
    let c = cstring(path)?;
    // SAFETY: statfs is plain old data, fully written on success.
    let mut st: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    check_int(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// access(path, X_OK) with the real ids: Ok, or the errno.
pub fn access_executable(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::access(c.as_ptr(), libc::X_OK) }).map(drop)
}

/// access(path, W_OK) with the real ids: Ok, or the errno.
pub fn access_writable(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::access(c.as_ptr(), libc::W_OK) }).map(drop)
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { mem::zeroed() };
    // SAFETY: valid out-pointer; uname cannot fail with one.
    unsafe { libc::uname(&mut u) };
    // SAFETY: the kernel NUL-terminates every field.
    unsafe { CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The size of extended attribute `name` of `path` (following symlinks).
pub fn getxattr_size(path: &Path, name: &str) -> io::Result<usize> {
    let c = cstring(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C strings; a null buffer of size 0 asks for the size only.
    check(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) } as libc::c_long)
        .map(|s| s as usize)
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The description of an errno value in Go's (and so runc's) spelling, e.g.
/// "no such file or directory": callers such as podman match these words.
pub fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {errno}"),
    }
}

/// The CLONE_NEW* type of a namespace file (ioctl NS_GET_NSTYPE).
pub fn ns_type(fd: RawFd) -> io::Result<i32> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
    check_int(unsafe { libc::ioctl(fd, NS_GET_NSTYPE) })
}

/// Attaches the detached mount `from` on top of whatever `to` refers to.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: empty paths with the EMPTY_PATH flags operate on the fds.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// A new, detached, read-only (when asked) tmpfs mount, ready for move_mount,
/// with an LSM `context` when given.
pub fn detached_tmpfs(readonly: bool, context: Option<&CStr>) -> io::Result<OwnedFd> {
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const MOUNT_ATTR_RDONLY: u32 = 1;
    // SAFETY: valid C string, integer flags.
    let fs = owned(check(unsafe {
        libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC)
    })?);
    if let Some(value) = context {
        // SAFETY: key and value are valid C strings that outlive the call.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                c"context".as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    let attrs = if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    // SAFETY: integer arguments on a configured fs context.
    check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) }).map(owned)
}

/// Reads a symlink relative to a directory fd.
pub fn readlinkat(dirfd: RawFd, path: &Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let c = cstring(path)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: pointer and length describe `buf`.
    let n = check(unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf).into())
}

/// Whether the kernel knows seccomp filter `flags`: a filter call with no
/// program fails with EFAULT once the flags have passed the kernel's check
/// (EINVAL when they have not), so nothing is ever loaded.
pub fn seccomp_flags_known(flags: u32) -> bool {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // SAFETY: a NULL program is never dereferenced: the kernel fails the
    // call with EFAULT when it tries to copy it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
        )
    };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, program); with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER, the listener fd it returns.
pub fn seccomp_set_filter(flags: u32, program: &[seccompiler::sock_filter]) -> io::Result<Option<OwnedFd>> {
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const seccompiler::sock_filter,
    }
    let prog = SockFprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; sock_filter
    // has the kernel's layout (repr(C)).
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const SockFprog,
        )
    })?;
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returned a new fd that nothing
    // else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
}

pub fn keyctl_join_session_keyring(name: &CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: valid C string.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) }).map(drop)
}

pub fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`:
/// opcode, then dst_reg:4 and src_reg:4 sharing a byte (C bitfields, so
/// their order follows the target's endianness), offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        let regs = if cfg!(target_endian = "little") {
            (dst & 0xf) | (src & 0xf) << 4
        } else {
            (dst & 0xf) << 4 | (src & 0xf)
        };
        BpfInsn { code, regs, off, imm }
    }

    #[cfg(test)]
    pub const fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }

    #[cfg(test)]
    pub const fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;

/// bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_CGROUP_DEVICE program. A non-empty
/// `log` (at least 128 bytes) receives the verifier's log (level 1); the
/// kernel fails the load with ENOSPC if the log does not fit, so pass one
/// only to explain a failure.
pub fn bpf_prog_load_cgroup_device(insns: &[BpfInsn], license: &CStr, log: &mut [u8]) -> io::Result<OwnedFd> {
    // The head of `union bpf_attr` for BPF_PROG_LOAD; the kernel reads the
    // fields after it as zero when given this size.
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
    }
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let log_size = u32::try_from(log.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size,
        log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: `attr` matches the head of the kernel's union bpf_attr for
    // BPF_PROG_LOAD; `insns` (BpfInsn is repr(C) struct bpf_insn), `license`
    // and `log` outlive the call, and the kernel writes at most `log_size`
    // bytes into `log`. The returned fd is close-on-exec.
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            mem::size_of::<ProgLoad>(),
        )
    })
    .map(owned)
}

/// bpf(BPF_PROG_ATTACH): attaches `prog` to `target` (for cgroup attach
/// types, a cgroup2 directory fd; O_PATH is enough).
pub fn bpf_prog_attach(target: BorrowedFd, prog: BorrowedFd, attach_type: u32, flags: u32) -> io::Result<()> {
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    let attr = ProgAttach {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` matches the kernel's BPF_PROG_ATTACH member of union
    // bpf_attr and outlives the call; both fds are borrowed, hence open.
    check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            mem::size_of::<ProgAttach>(),
        )
    })
    .map(drop)
}

/// `struct sched_attr` as sched_setattr(2) takes it (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// sched_setattr(0, attr, 0) on the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    let mut a = *attr;
    a.size = mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a fully initialised sched_attr whose size field matches
    // its length; the kernel only reads it.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) }).map(drop)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, prio) on the calling process.
pub fn ioprio_set(prio: i32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) }).map(drop)
}

/// sched_setaffinity(0, ...) with the CPUs whose bits are set in `words`
/// (bit n of word n/64 is CPU n, as in a kernel cpumask).
pub fn sched_setaffinity(words: &[u64]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bitmask; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for (i, w) in words.iter().enumerate() {
        for bit in 0..64 {
            let cpu = i * 64 + bit;
            if w & (1 << bit) != 0 && cpu < libc::CPU_SETSIZE as usize {
                // SAFETY: `cpu` is below CPU_SETSIZE, inside `set`.
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
        }
    }
    // SAFETY: pointer and size describe `set`.
    check_int(unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

/// sched_setaffinity(pid, every CPU): the kernel keeps of the mask only
/// the CPUs that exist and that pid's cpuset allows, and remembers the
/// request, so CPUs later added to the cpuset are used too. The mask is as
/// wide as runc's (65536 CPUs), past any kernel's NR_CPUS.
pub fn reset_affinity(pid: i32) -> io::Result<()> {
    let all = vec![u64::MAX; 65536 / 64];
    let len = all.len() * mem::size_of::<u64>();
    // SAFETY: pointer and length describe `all`, which the call only reads.
    check(unsafe { libc::syscall(libc::SYS_sched_setaffinity, pid, len, all.as_ptr()) }).map(drop)
}

/// personality(persona); returns the previous persona.
/// set_mempolicy(2) for the calling thread: `mode` with its flags, and the
/// node mask (`None`: no nodes). The mask is as wide as runc passes it.
pub fn set_mempolicy(mode: i32, nodes: Option<&[u64; 16]>) -> io::Result<()> {
    let (ptr, maxnode) = match nodes {
        Some(n) => (n.as_ptr(), 1024 as libc::c_ulong),
        None => (std::ptr::null(), 0),
    };
    loop {
        // SAFETY: `ptr` is null or points at 16 words, covering maxnode bits.
        let r = check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

pub fn personality(persona: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: integer argument.
    check_int(unsafe { libc::personality(persona) })
}

// ---- terminals (process.terminal, the console socket, the run relay) ----

/// Unlocks a pty master so its peer can be opened (unlockpt).
pub fn unlock_pty(master: RawFd) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which outlives the call.
    check_int(unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) }).map(drop)
}

/// Opens the pty peer of `master` without a path lookup (TIOCGPTPEER).
pub fn open_pty_peer(master: RawFd, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes its open flags by value and returns a new fd.
    let fd = check_int(unsafe { libc::ioctl(master, libc::TIOCGPTPEER, flags as libc::c_ulong) })?;
    Ok(owned(fd as libc::c_long))
}

/// The window size of a terminal, as (rows, cols).
pub fn get_winsize(fd: RawFd) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which outlives the call.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Makes `fd` the controlling terminal of this session (TIOCSCTTY, no steal).
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0 as libc::c_ulong) }).map(drop)
}

pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments; fails only for a process group leader.
    check_int(unsafe { libc::setsid() }).map(drop)
}

/// dup2 without the close-on-exec flag on `new`.
pub fn dup_onto(old: RawFd, new: RawFd) -> io::Result<()> {
    if old == new {
        return set_cloexec(new, false);
    }
    // SAFETY: integer arguments; `new` is replaced atomically.
    check_int(unsafe { libc::dup3(old, new, 0) }).map(drop)
}

/// The terminal attributes of `fd`; ENOTTY when it is not a terminal.
pub fn tcgetattr(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data.
    let mut t: libc::termios = unsafe { mem::zeroed() };
    // SAFETY: tcgetattr writes one termios into `t`.
    check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
    Ok(t)
}

pub fn tcsetattr(fd: RawFd, t: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr reads one termios from `t`.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) }).map(drop)
}

/// `t` changed to raw mode (cfmakeraw).
pub fn make_raw(mut t: libc::termios) -> libc::termios {
    // SAFETY: cfmakeraw only edits the struct it is given.
    unsafe { libc::cfmakeraw(&mut t) };
    t
}

/// The index N of a pty master's peer, /dev/pts/N (TIOCGPTN).
pub fn pty_number(master: RawFd) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into `n`.
    check_int(unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}
