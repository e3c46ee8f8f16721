//! The caller's file descriptors never reach a container, and no path into
//! the container leaves it: `--cwd /proc/self/fd/N` with a host directory
//! open as fd N (CVE-2024-21626) is refused or lands inside the container
//! for run, create+start and exec alike; a created init holds only stdio,
//! the preserved fds and its own few (runc's create.bats "detect fd leak");
//! a runtime process that outlives its command keeps none of the caller's.

use crate::common::*;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// fd numbers tried as `/proc/self/fd/N`.
const TRIED: std::ops::RangeInclusive<RawFd> = 3..=20;

/// The host side of an escape attempt: a directory outside the bundle with
/// a marker file, two levels of subdirectories, and fds of all three plus
/// the marker itself, as a caller might have them open.
struct HostFiles {
    dir: PathBuf,
    secret: String,
    /// Sources of the fds handed to the runtime, opened close-on-exec here.
    dirs: Vec<OwnedFd>,
    marker: OwnedFd,
    lock: OwnedFd,
    lock_path: PathBuf,
    /// A pipe's write end (the read end is kept so it stays a live pipe).
    pipe_w: OwnedFd,
    _pipe_r: OwnedFd,
}

fn open_fd(path: &Path, write: bool) -> OwnedFd {
    let f = if write {
        fs::OpenOptions::new().create(true).append(true).open(path)
    } else {
        fs::File::open(path)
    };
    f.unwrap_or_else(|e| panic!("open {}: {e}", path.display())).into()
}

impl HostFiles {
    fn new(t: &TestEnv) -> HostFiles {
        let dir = t.host_dir("host-secret");
        fs::create_dir_all(dir.join("a/b")).unwrap();
        let secret = format!("HOST-MARKER-{}-{}", std::process::id(), t.id);
        fs::write(dir.join("marker"), &secret).unwrap();
        let lock_path = t.dir.join("caller.lock");
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds were just created and are owned by nobody else.
        let (pipe_r, pipe_w) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        HostFiles {
            dirs: [".", "a", "a/b"].iter().map(|d| open_fd(&dir.join(d), false)).collect(),
            marker: open_fd(&dir.join("marker"), false),
            lock: open_fd(&lock_path, true),
            lock_path,
            secret,
            dir,
            pipe_w,
            _pipe_r: pipe_r,
        }
    }

    /// Every number in TRIED gets a host fd: mostly the three directories
    /// in turn, with the marker file at 6, the lock file at 9 and the pipe
    /// at 10 (runc's report: fd 4 output, fd 9 a lock, fd 10).
    fn everywhere(&self) -> Vec<(RawFd, RawFd)> {
        TRIED
            .map(|n| {
                let src = match n {
                    6 => &self.marker,
                    9 => &self.lock,
                    10 => &self.pipe_w,
                    _ => &self.dirs[(n as usize) % 3],
                };
                (n, src.as_raw_fd())
            })
            .collect()
    }

    /// Text that means the secret leaked.
    fn leaked(&self, out: &CmdOutput) -> bool {
        out.stdout.contains(&self.secret) || out.stderr.contains(&self.secret)
    }

    /// True when `target` (an fd's link) is one of the caller's files.
    fn is_callers(&self, target: &str) -> bool {
        let pipe = format!("pipe:[{}]", inode(&self.pipe_w));
        target.starts_with(self.dir.to_str().unwrap()) || target == s(&self.lock_path) || target == pipe
    }
}

fn inode(fd: &OwnedFd) -> u64 {
    // SAFETY: fstat fills the zeroed struct for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    st.st_ino
}

/// Makes the runtime inherit `source` as fd `target` for every pair, the
/// way a careless caller leaves fds open. Copies go above 100 first, so a
/// source that sits on another pair's target is not lost.
fn hand_fds(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) {
    assert!(pairs.len() <= 32);
    // SAFETY: only fcntl/dup2 on a stack array between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut tmp = [0; 32];
            for (i, &(_, src)) in pairs.iter().enumerate() {
                tmp[i] = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 100);
                if tmp[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &(target, _)) in pairs.iter().enumerate() {
                // dup2 leaves the new fd without close-on-exec.
                if libc::dup2(tmp[i], target) != target {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Reads the secret by every relative way up from a cwd below the host dir.
const PEEK: &str = "pwd; cat marker ../marker ../../marker ../../../marker 2>&1; true";

/// Asserts the attempt with cwd /proc/self/fd/N was refused, or ran inside
/// the container, and never showed the secret.
#[track_caller]
fn assert_contained(host: &HostFiles, n: RawFd, out: &CmdOutput) {
    assert!(
        !host.leaked(out),
        "cwd /proc/self/fd/{n} reached the host: {:?}\nstdout: {}\nstderr: {}",
        out.args,
        out.stdout,
        out.stderr
    );
    if out.success() {
        let pwd = out.stdout.lines().next().unwrap_or("");
        assert!(
            pwd.starts_with('/') && !pwd.starts_with(s(&host.dir)),
            "cwd /proc/self/fd/{n} ran in {pwd:?}"
        );
    }
}

#[test]
fn run_cwd_through_an_inherited_fd_stays_inside() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    t.args(&["sh", "-c", PEEK]);
    for n in TRIED {
        t.config["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        t.write_config();
        let id = t.new_id(&format!("run{n}"));
        let mut cmd = t.command(&["run", "--bundle", s(&t.bundle), &id]);
        hand_fds(&mut cmd, host.everywhere());
        let out = t.exec(cmd);
        assert_contained(&host, n, &out);
        t.rt(&["delete", "--force", &id]);
        t.assert_clean(&id);
    }
}

#[test]
fn create_start_cwd_through_an_inherited_fd_stays_inside() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    t.args(&["sh", "-c", PEEK]);
    for n in TRIED {
        t.config["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        t.write_config();
        let id = t.new_id(&format!("cs{n}"));
        let mut cmd = t.command(&["create", "--bundle", s(&t.bundle), &id]);
        hand_fds(&mut cmd, host.everywhere());
        let created = t.exec(cmd);
        if created.success() {
            let mut start = t.command(&["start", &id]);
            hand_fds(&mut start, host.everywhere());
            t.exec(start);
            poll_until(Duration::from_secs(10), || t.status(&id) == "stopped");
        }
        // The container's output went to create's stdout.
        let out = CmdOutput {
            stdout: created.current_stdout(),
            ..created
        };
        assert_contained(&host, n, &out);
        t.rt(&["delete", "--force", &id]);
        t.assert_clean(&id);
    }
}

#[test]
fn exec_cwd_through_an_inherited_fd_stays_inside() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    let id = t.id.clone();
    t.start_sleeper(&id);
    for n in TRIED {
        let cwd = format!("/proc/self/fd/{n}");
        let mut cmd = t.command(&["exec", "--cwd", &cwd, &id, "sh", "-c", PEEK]);
        hand_fds(&mut cmd, host.everywhere());
        let out = t.exec(cmd);
        assert_contained(&host, n, &out);
    }
    // The container is unharmed and a plain exec still works.
    let out = t.rt(&["exec", &id, "sh", "-c", "pwd"]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "/");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_cwd_symlink_to_proc_self_fd_stays_inside() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    std::os::unix::fs::symlink("/proc/self/fd/4", t.rootfs.join("escape")).unwrap();
    let id = t.id.clone();
    t.start_sleeper(&id);
    let mut cmd = t.command(&["exec", "--cwd", "/escape", &id, "sh", "-c", PEEK]);
    hand_fds(&mut cmd, host.everywhere());
    let out = t.exec(cmd);
    assert_contained(&host, 4, &out);
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

/// (fd, link target) of every fd of `pid`.
fn fds_of(pid: i64) -> Vec<(RawFd, String)> {
    let mut fds: Vec<(RawFd, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some((n, target.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    fds
}

/// The fds a runtime may hold in a created init above stdio and the
/// preserved ones: its sync socket, exec.fifo, a /proc handle (the
/// whitelist of runc's create.bats, less what xrun never holds).
fn runtime_own(target: &str) -> bool {
    target.starts_with("socket:[")
        || target.starts_with("anon_inode:")
        || target.starts_with("pipe:[")
        || target == "/proc"
        || target.ends_with("/exec.fifo")
        || target == "/runc"
        || target.starts_with("/memfd:runc_cloned")
}

/// Processes other than this test that hold `path` open.
fn holders_of(path: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|fds| fds.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|t| t == path)))
                .unwrap_or(false)
        })
        .collect()
}

fn init_pid(t: &TestEnv, id: &str) -> i64 {
    t.state(id).expect("state")["pid"].as_i64().unwrap()
}

#[test]
fn created_init_holds_none_of_the_callers_fds() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    t.args(&["checker"]);
    t.write_config();
    let id = t.id.clone();
    // The --log file is the host's too.
    let log = t.dir.join("runtime.log");
    let mut cmd = t.command(&["--log", s(&log), "create", "--bundle", s(&t.bundle), &id]);
    hand_fds(&mut cmd, host.everywhere());
    let created = t.exec(cmd);
    created.assert_ok();
    let fds = fds_of(init_pid(&t, &id));
    let extra: Vec<_> = fds.iter().filter(|(n, _)| *n > 2).collect();
    for (n, target) in &extra {
        assert!(
            !host.is_callers(target),
            "created init holds the caller's fd {n} -> {target}: {fds:?}"
        );
        assert!(runtime_own(target), "created init holds fd {n} -> {target}: {fds:?}");
    }
    assert!(extra.len() <= 4, "created init holds {fds:?}");
    // Nothing (a leftover runtime process) keeps the caller's lock file.
    assert_eq!(holders_of(&host.lock_path), Vec::<i32>::new());
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    let numbers: Vec<i64> = report.fds().iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2], "{:?}", report.fds());
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn created_init_keeps_exactly_the_preserved_fds() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    for name in ["passed-a", "passed-b"] {
        fs::write(t.dir.join(name), name).unwrap();
    }
    let a = open_fd(&t.dir.join("passed-a"), false);
    let b = open_fd(&t.dir.join("passed-b"), false);
    t.args(&["checker"]);
    t.write_config();
    let id = t.id.clone();
    let mut cmd = t.command(&["create", "--preserve-fds", "2", "--bundle", s(&t.bundle), &id]);
    let mut pairs = host.everywhere();
    pairs.retain(|(n, _)| *n > 4);
    pairs.extend([(3, a.as_raw_fd()), (4, b.as_raw_fd())]);
    hand_fds(&mut cmd, pairs);
    let created = t.exec(cmd);
    created.assert_ok();
    let fds = fds_of(init_pid(&t, &id));
    assert!(fds.iter().any(|f| f.0 == 3 && f.1.ends_with("passed-a")), "{fds:?}");
    assert!(fds.iter().any(|f| f.0 == 4 && f.1.ends_with("passed-b")), "{fds:?}");
    for (n, target) in fds.iter().filter(|(n, _)| *n > 4) {
        assert!(
            !host.is_callers(target),
            "created init holds the caller's fd {n} -> {target}: {fds:?}"
        );
        assert!(runtime_own(target), "created init holds fd {n} -> {target}: {fds:?}");
    }
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    let fds = report.fds();
    let got: Vec<(i64, &str)> = fds
        .iter()
        .map(|f| (f.0, f.1.rsplit('/').next().unwrap_or("")))
        .collect();
    assert_eq!(got.len(), 5, "{fds:?}");
    assert_eq!(got[3..], [(3, "passed-a"), (4, "passed-b")], "{fds:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn a_preserved_fd_that_is_not_open_is_refused() {
    // runc 1.1.5 runs it, and hands its own /sys/fs/cgroup fd over as fd 4
    // (runc 1.4 refuses, as here).
    if xrun_only() {
        return;
    }
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let a = open_fd(&t.bundle.join("config.json"), false);
    // fd 3 is handed over, fd 4 is not open: xrun's own fds (sync socket,
    // cgroup dir) must not be passed on in its place.
    let mut cmd = t.command(&["run", "--preserve-fds", "2", "--bundle", s(&t.bundle), &t.id]);
    hand_fds(&mut cmd, vec![(3, a.as_raw_fd())]);
    // Whatever this test process inherited as fd 4 (a harness's pipe).
    // SAFETY: close(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(4);
            Ok(())
        });
    }
    let out = t.exec(cmd);
    out.assert_fails();
    assert!(out.stderr.contains("preserved-fd"), "{}", out.stderr);
    t.assert_clean(&t.id);
}

#[test]
fn exec_process_gets_only_stdio_and_preserved_fds() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    let id = t.id.clone();
    t.start_sleeper(&id);
    let mut cmd = t.command(&["exec", &id, "checker"]);
    hand_fds(&mut cmd, host.everywhere());
    let out = t.exec(cmd);
    out.assert_ok();
    let numbers: Vec<i64> = out.checker().fds().iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2], "{:?}", out.checker().fds());

    let mut cmd = t.command(&["exec", "--preserve-fds", "1", &id, "checker"]);
    let mut pairs = host.everywhere();
    pairs.retain(|(n, _)| *n != 3);
    pairs.push((3, host.marker.as_raw_fd()));
    hand_fds(&mut cmd, pairs);
    let out = t.exec(cmd);
    out.assert_ok();
    let fds = out.checker().fds();
    let numbers: Vec<i64> = fds.iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "{fds:?}");
    assert!(fds[3].1.ends_with("marker"), "{fds:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

/// Waits until `runtime` (a foreground run or exec) has a child that is
/// the container's process, then returns its own fds.
fn fds_once_started(runtime: u32, program: &str) -> Vec<(RawFd, String)> {
    let started = poll_until(Duration::from_secs(10), || {
        let children = fs::read_to_string(format!("/proc/{runtime}/task/{runtime}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .any(|c| fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| comm.trim() == program))
    });
    assert!(started, "{program} never started under {runtime}");
    fds_of(runtime as i64)
}

#[test]
fn foreground_runtime_keeps_none_of_the_callers_fds() {
    // runc 1.1 keeps its caller's fds open while it waits.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let host = HostFiles::new(&t);
    // A foreground exec...
    let id = t.id.clone();
    t.start_sleeper(&id);
    let mut cmd = t.command(&["exec", &id, "sleep", "30"]);
    hand_fds(&mut cmd, host.everywhere());
    let exec = t.spawn_cmd(cmd);
    let mut callers = Vec::new();
    poll_until(Duration::from_secs(5), || {
        callers = fds_once_started(exec.pid(), "sleep");
        callers.retain(|(_, target)| host.is_callers(target));
        callers.is_empty()
    });
    assert_eq!(callers, [], "a foreground exec holds the caller's fds");
    drop(exec);
    // ...and a foreground run.
    t.args(&["sleep", "30"]);
    t.write_config();
    let run_id = t.new_id("fg-run");
    let mut cmd = t.command(&["run", "--bundle", s(&t.bundle), &run_id]);
    hand_fds(&mut cmd, host.everywhere());
    let run = t.spawn_cmd(cmd);
    poll_until(Duration::from_secs(5), || {
        callers = fds_once_started(run.pid(), "sleep");
        callers.retain(|(_, target)| host.is_callers(target));
        callers.is_empty()
    });
    assert_eq!(callers, [], "a foreground run holds the caller's fds");
    t.rt(&["kill", &run_id, "KILL"]);
    run.wait(Duration::from_secs(10));
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.rt(&["delete", "--force", &run_id]);
    t.assert_clean(&id);
    t.assert_clean(&run_id);
}
