//! linux.seccomp: actions (ERRNO with and without errnoRet, the default
//! errno, KILL_PROCESS/KILL/TRAP, LOG, NOTIFY answered by a test agent),
//! argument conditions (EQ, MASKED_EQ), the compat ABIs (i386 through
//! `int $0x80`, x32 through the x32 bit), flags, the filter's presence in
//! /proc/self/status with and without no_new_privs, and what is refused or
//! skipped. The checker's `--try` makes single raw system calls and reports
//! their result.

use crate::common::*;
use serde_json::{json, Value};

/// The smallest allow list found by trial (dropping one name at a time, then
/// a few hundred runs for what runc's Go init needs only now and then) under
/// which the checker starts, reads /proc/self/status, prints its report and
/// exits, and the runtime gets from loading the filter to execve. Everything
/// else the checker probes just fails with the default errno, which it
/// tolerates.
const ALLOW_LIST: &[&str] = &[
    // the checker (static glibc): start-up (TLS needs brk or mmap), its
    // report, exit
    "arch_prctl",
    "brk",
    "mmap",
    "mprotect",
    "execve",
    "openat",
    "read",
    "write",
    "exit_group",
    // what the tests below assert succeeds
    "getpid",
    "uname",
    // runc 1.1's Go init between loading the filter and execve (xrun needs
    // nothing but execve there); the signal group is for Go's preemption
    // signal (SIGURG), whose handler cannot return without rt_sigreturn
    "close",
    "fstatfs",
    "getdents64",
    "futex",
    "nanosleep",
    "sched_yield",
    "epoll_ctl",
    "epoll_pwait",
    "rt_sigreturn",
    "rt_sigaction",
    "rt_sigprocmask",
    "sigaltstack",
    "gettid",
    "tgkill",
];

fn rule(names: &[&str], action: &str) -> Value {
    json!({"names": names, "action": action})
}

/// A profile allowing everything but `syscalls`.
fn allow_by_default(syscalls: Vec<Value>) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls})
}

/// A /tmp the checker may create directories in (the root is read-only).
fn writable_tmp(t: &mut TestEnv) {
    let m = mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]);
    t.config["mounts"].as_array_mut().unwrap().push(m);
}

/// Runs the checker with one `--try` per entry and returns its report.
#[track_caller]
fn run_tries(t: &mut TestEnv, tries: &[&str]) -> Checker {
    let mut args = vec!["checker"];
    for spec in tries {
        args.extend(["--try", spec]);
    }
    t.args(&args);
    t.run_checker(&t.id)
}

/// (return value, errno name) of a `--try`.
#[track_caller]
fn tried(report: &Checker, spec: &str) -> (i64, String) {
    let entry = &report.0["tries"][spec];
    let ret = entry["ret"]
        .as_i64()
        .unwrap_or_else(|| panic!("no --try {spec} in {}", report.0["tries"]));
    (ret, entry["errno_name"].as_str().unwrap_or("").to_string())
}

#[track_caller]
fn assert_succeeded(report: &Checker, spec: &str) {
    let (ret, errno) = tried(report, spec);
    assert!(ret >= 0 && errno == "ok", "{spec}: ret {ret}, {errno}");
}

#[track_caller]
fn assert_denied(report: &Checker, spec: &str, errno: &str) {
    assert_eq!(tried(report, spec), (-1, errno.to_string()), "{spec}");
}

const ALL_TRIES: &[&str] = &[
    "mkdir",
    "uname",
    "getcwd",
    "getpid",
    "chdir:/",
    "personality:0xffffffff",
];

#[test]
fn without_profile_every_try_succeeds_and_no_filter_is_loaded() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    let report = run_tries(&mut t, ALL_TRIES);
    for spec in ALL_TRIES {
        assert_succeeded(&report, spec);
    }
    assert_eq!(report.status("Seccomp"), "0");
    t.assert_clean(&t.id);
}

#[test]
fn errno_action_without_errno_ret_gives_eperm() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
    let report = run_tries(&mut t, ALL_TRIES);
    assert_denied(&report, "mkdir", "EPERM");
    for spec in ALL_TRIES.iter().filter(|s| **s != "mkdir") {
        assert_succeeded(&report, spec);
    }
    assert_eq!(tried(&report, "getpid").0, 1);
    t.assert_clean(&t.id);
}

#[test]
fn errno_ret_is_what_the_call_returns() {
    let Some(mut t) = TestEnv::new() else { return };
    let mut enosys = rule(&["uname"], "SCMP_ACT_ERRNO");
    enosys["errnoRet"] = json!(libc::ENOSYS);
    let mut erange = rule(&["getcwd"], "SCMP_ACT_ERRNO");
    erange["errnoRet"] = json!(libc::ERANGE);
    t.config["linux"]["seccomp"] = allow_by_default(vec![enosys, erange]);
    let report = run_tries(&mut t, &["uname", "getcwd", "getpid"]);
    assert_denied(&report, "uname", "ENOSYS");
    assert_denied(&report, "getcwd", "ERANGE");
    assert_succeeded(&report, "getpid");
    // The checker's own uname(2) for the hostname hit the same rule.
    let errors = strings(&report.0["errors"]);
    assert!(errors.contains(&"uname: ENOSYS".to_string()), "{errors:?}");
    t.assert_clean(&t.id);
}

/// A default-deny profile allowing ALLOW_LIST plus `extra` rules.
fn deny_by_default(extra: Vec<Value>) -> Value {
    let mut syscalls = vec![rule(ALLOW_LIST, "SCMP_ACT_ALLOW")];
    syscalls.extend(extra);
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

/// Allows personality(2) when its first argument equals `value`.
fn personality_if_eq(value: u64) -> Value {
    let arg = json!({"index": 0, "value": value, "op": "SCMP_CMP_EQ"});
    json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [arg]})
}

#[test]
fn default_deny_with_argument_conditions() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    // Two rules for one call: either condition lets it through.
    t.config["linux"]["seccomp"] = deny_by_default(vec![personality_if_eq(0xffff_ffff), personality_if_eq(0)]);
    let report = run_tries(
        &mut t,
        &[
            "personality:0xffffffff",
            "personality:0",
            "personality:8",
            "mkdir",
            "getpid",
            "uname",
        ],
    );
    assert_succeeded(&report, "personality:0xffffffff");
    assert_succeeded(&report, "personality:0");
    assert_denied(&report, "personality:8", "EPERM");
    assert_denied(&report, "mkdir", "EPERM");
    assert_eq!(tried(&report, "getpid").0, 1);
    assert_succeeded(&report, "uname");
    assert_eq!(report.status("Seccomp"), "2");
    t.assert_clean(&t.id);
}

#[test]
fn default_errno_ret_applies_to_unlisted_calls() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    let mut profile = deny_by_default(vec![]);
    profile["defaultErrnoRet"] = json!(libc::ENOSYS);
    t.config["linux"]["seccomp"] = profile;
    // create + start: the filter must also be in place (and let the init
    // through) when the process waits for `start` before its execve.
    t.args(&["checker", "--try", "mkdir", "--try", "chdir:/", "--try", "getpid"]);
    let created = t.create(&t.id, &[]);
    created.assert_ok();
    t.rt(&["start", &t.id]).assert_ok();
    let report = t.wait_checker(&created);
    assert_denied(&report, "mkdir", "ENOSYS");
    assert_denied(&report, "chdir:/", "ENOSYS");
    assert_eq!(tried(&report, "getpid").0, 1);
    t.wait_status(&t.id, "stopped");
    t.rt(&["delete", &t.id]).assert_ok();
    t.assert_clean(&t.id);
}

#[test]
fn calls_newer_than_the_profile_get_enosys() {
    // runc's rule for a restrictive default: a syscall numbered above every
    // call the profile names is one this profile cannot know, so the
    // process sees ENOSYS (and a libc falls back) instead of EPERM.
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    t.config["linux"]["seccomp"] = deny_by_default(vec![]);
    let report = run_tries(&mut t, &["nr:1000", "nr:4000", "mkdir", "getpid"]);
    assert_denied(&report, "nr:1000", "ENOSYS");
    assert_denied(&report, "nr:4000", "ENOSYS");
    assert_denied(&report, "mkdir", "EPERM");
    assert_eq!(tried(&report, "getpid").0, 1);
    // With a permissive default, the kernel itself answers ENOSYS.
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
    let report = run_tries(&mut t, &["nr:1000", "mkdir"]);
    assert_denied(&report, "nr:1000", "ENOSYS");
    assert_denied(&report, "mkdir", "EPERM");
}

// SCMP_CMP_MASKED_EQ: "value" is the mask, "valueTwo" the expected result.
#[test]
fn masked_eq_condition_uses_value_as_mask() {
    let Some(mut t) = TestEnv::new() else { return };
    let mut deny = rule(&["personality"], "SCMP_ACT_ERRNO");
    deny["args"] = json!([{"index": 0, "value": 0xff, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]);
    t.config["linux"]["seccomp"] = allow_by_default(vec![deny]);
    let report = run_tries(
        &mut t,
        &[
            "personality:8",
            "personality:0x108",
            "personality:0",
            "personality:0xffffffff",
        ],
    );
    assert_denied(&report, "personality:8", "EPERM");
    assert_denied(&report, "personality:0x108", "EPERM");
    assert_succeeded(&report, "personality:0");
    assert_succeeded(&report, "personality:0xffffffff");
    t.assert_clean(&t.id);
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let Some(mut t) = TestEnv::new() else { return };
    // SIGSYS dumps core by default; keep the dump out of it.
    t.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]);
    t.args(&["checker", "--try", "uname"]);
    // KILL (the thread: the checker has only one) and TRAP (SIGSYS without
    // a handler) end the same way.
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"] {
        let id = t.new_id(&action.to_lowercase().replace('_', "-"));
        t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["uname"], action)]);
        let out = t.run(&id, &[]);
        assert_eq!(out.code(), 128 + libc::SIGSYS, "{action}, stderr: {}", out.stderr);
        // The call is made before the checker prints anything.
        assert!(
            Checker::parse(&out.stdout).is_none(),
            "{action}, stdout: {}",
            out.stdout
        );
        t.assert_clean(&id);
    }
}

// xrun-only: runc 1.1.5 refuses any linux.seccomp.flags ("seccomp flags are
// not yet supported by runc").
#[test]
fn filter_flags_are_accepted() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    let mut profile = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
    // WAIT_KILLABLE_RECV needs a listener: without one it is not passed.
    profile["flags"] = json!([
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    ]);
    t.config["linux"]["seccomp"] = profile;
    let report = run_tries(&mut t, &["mkdir", "uname"]);
    assert_denied(&report, "mkdir", "EPERM");
    assert_succeeded(&report, "uname");
    t.assert_clean(&t.id);
}

// xrun-only: runc 1.1 takes no flags. The numbers are the seccomp(2) flags
// the filter is loaded with, in runc's debug line (seccomp.bats reads it);
// without `flags` runc (and xrun) add SPEC_ALLOW when the kernel has it.
#[test]
fn debug_names_the_filter_flags() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let out = t.rt(&["features"]);
    out.assert_ok();
    let spec_allow = out.stdout.contains("\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"");
    let unset = if spec_allow { 4 } else { 0 };
    let cases = [
        (
            "log",
            Some(json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"])),
            2,
        ),
        ("empty", Some(json!([])), 0),
        ("unset", None, unset),
    ];
    for (stem, flags, expected) in cases {
        let id = t.new_id(stem);
        let mut profile = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
        if let Some(flags) = flags {
            profile["flags"] = flags;
        }
        t.config["linux"]["seccomp"] = profile;
        t.args(&["checker", "--try", "mkdir"]);
        t.write_config();
        let out = t.rt(&["--debug", "run", "--bundle", s(&t.bundle), &id]);
        out.assert_ok();
        assert_denied(&out.checker(), "mkdir", "EPERM");
        let line = format!("seccomp filter flags: {expected}\"");
        assert!(out.stderr.contains(&line), "{stem}: no {line:?} in: {}", out.stderr);
        t.assert_clean(&id);
    }
}

#[test]
fn log_action_lets_the_call_through() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir", "getpid"], "SCMP_ACT_LOG")]);
    let report = run_tries(&mut t, &["mkdir", "getpid"]);
    assert_succeeded(&report, "mkdir");
    assert_eq!(tried(&report, "getpid").0, 1);
    assert_eq!(report.status("Seccomp"), "2");
    t.assert_clean(&t.id);
}

/// Seccomp and NoNewPrivs of a checker (run as `uid`) under a one-rule
/// profile.
fn filter_status(no_new_privileges: bool, uid: u32) {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    t.config["process"]["noNewPrivileges"] = json!(no_new_privileges);
    t.config["process"]["user"] = json!({"uid": uid, "gid": uid});
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
    let report = run_tries(&mut t, &["mkdir"]);
    assert_eq!(report.status("Seccomp"), "2");
    let nnp = if no_new_privileges { "1" } else { "0" };
    assert_eq!(report.status("NoNewPrivs"), nnp);
    assert_denied(&report, "mkdir", "EPERM");
    t.assert_clean(&t.id);
}

#[test]
fn filter_is_loaded_with_no_new_privileges() {
    filter_status(true, 0);
}

// Without no_new_privs only a process holding CAP_SYS_ADMIN may load a
// filter, and the configured capabilities lack it (a non-root user keeps
// none at all): the runtime has to load it before dropping them.
#[test]
fn filter_is_loaded_without_no_new_privileges() {
    filter_status(false, 0);
}

#[test]
fn filter_is_loaded_without_no_new_privileges_for_non_root() {
    filter_status(false, 1000);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    let names = ["not_a_syscall", "mkdir", "also_not_a_syscall"];
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&names, "SCMP_ACT_ERRNO")]);
    let report = run_tries(&mut t, &["mkdir", "uname"]);
    assert_denied(&report, "mkdir", "EPERM");
    assert_succeeded(&report, "uname");
    t.assert_clean(&t.id);
}

/// `create` must refuse the profile with a one-line error naming `what`.
#[track_caller]
fn create_refuses(t: &TestEnv, what: &str) {
    let out = t.create(&t.id, &[]);
    out.assert_fails();
    assert_eq!(out.stderr.trim().lines().count(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains(what), "stderr: {}", out.stderr);
    t.assert_clean(&t.id);
}

// ---------------------------------------------------------------------
// Compat ABIs: a 64-bit process reaches the i386 table with `int $0x80` and
// the x32 table with bit 30 of the syscall number (this kernel has no x32
// ABI: a call the filter lets through fails with ENOSYS).

/// SIGSYS without a core dump (KILL and TRAP end the checker that way).
fn no_core_dumps(t: &mut TestEnv) {
    t.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]);
}

/// A profile denying mkdir with EXDEV on every ABI in `arches`.
fn mkdir_denied_on(arches: &[&str]) -> Value {
    let mut deny = rule(&["mkdir"], "SCMP_ACT_ERRNO");
    deny["errnoRet"] = json!(libc::EXDEV);
    let mut p = allow_by_default(vec![deny]);
    p["architectures"] = json!(arches);
    p
}

#[test]
fn listed_compat_abis_are_filtered_with_their_own_tables() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    t.config["linux"]["seccomp"] = mkdir_denied_on(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let report = run_tries(
        &mut t,
        &[
            "mkdir",
            "int80:mkdir",
            "int80:getpid",
            "x32:mkdir",
            "x32:getpid",
            "getpid",
        ],
    );
    assert_denied(&report, "mkdir", "EXDEV");
    // i386's mkdir is 39 (x86_64's getpid): the i386 table was used.
    assert_denied(&report, "int80:mkdir", "EXDEV");
    assert_eq!(tried(&report, "int80:getpid").0, 1);
    assert_denied(&report, "x32:mkdir", "EXDEV");
    // Let through by the filter, refused by the kernel (no x32 ABI here).
    assert_denied(&report, "x32:getpid", "ENOSYS");
    assert_eq!(tried(&report, "getpid").0, 1);
    t.assert_clean(&t.id);
}

/// libseccomp's bad-architecture action, kept by runc: SCMP_ACT_KILL (the
/// thread; the checker's only one, so the process dies by SIGSYS).
#[test]
fn unlisted_compat_abis_are_killed() {
    let Some(mut t) = TestEnv::new() else { return };
    no_core_dumps(&mut t);
    writable_tmp(&mut t);
    for (arches, call) in [
        (&["SCMP_ARCH_X86_64"][..], "int80:getpid"),
        (&["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"][..], "int80:getpid"),
        (&["SCMP_ARCH_X86_64"][..], "x32:getpid"),
        (&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"][..], "x32:getpid"),
    ] {
        let id = t.new_id("badarch");
        t.config["linux"]["seccomp"] = mkdir_denied_on(arches);
        t.args(&["checker", "--try", call]);
        let out = t.run(&id, &[]);
        assert_eq!(
            out.code(),
            128 + libc::SIGSYS,
            "{arches:?} {call}, stderr: {}",
            out.stderr
        );
        assert!(Checker::parse(&out.stdout).is_none(), "stdout: {}", out.stdout);
        t.assert_clean(&id);
    }
    // The same calls pass when their ABI is listed (checked above) and the
    // native ones always do.
    let id = t.new_id("native");
    t.config["linux"]["seccomp"] = mkdir_denied_on(&[]);
    t.args(&["checker", "--try", "getpid", "--try", "mkdir"]);
    let report = t.run_checker(&id);
    assert_eq!(tried(&report, "getpid").0, 1);
    assert_denied(&report, "mkdir", "EXDEV");
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------
// SCMP_ACT_NOTIFY and the seccomp agent

mod agent {
    //! A seccomp agent for the tests: a thread listening on a unix socket
    //! that takes the container process state and the listener fd, then
    //! answers notifications: mkdir fails with EXDEV, getpid returns 4242.

    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::net::UnixListener;
    use std::path::Path;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    pub const GETPID_ANSWER: i64 = 4242;

    /// What the agent saw: the JSON it got and how many calls it answered.
    pub struct Seen {
        pub state: Value,
        pub answered: u32,
    }

    pub struct Agent {
        thread: JoinHandle<Result<Seen, String>>,
    }

    impl Agent {
        pub fn start(path: &Path) -> Agent {
            let listener = UnixListener::bind(path).unwrap();
            let thread = std::thread::spawn(move || serve(listener));
            Agent { thread }
        }

        pub fn finish(self) -> Seen {
            self.thread
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("seccomp agent: {e}"))
        }
    }

    #[repr(C)]
    #[derive(Default)]
    struct Notif {
        id: u64,
        pid: u32,
        flags: u32,
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }

    #[repr(C)]
    #[derive(Default)]
    struct NotifResp {
        id: u64,
        val: i64,
        error: i32,
        flags: u32,
    }

    // _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
    const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
    const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

    fn ioctl<T>(fd: RawFd, req: libc::c_ulong, arg: &mut T) -> std::io::Result<()> {
        // SAFETY: `arg` is the struct this request reads or fills, with the
        // kernel's layout (repr(C), sizes encoded in `req`).
        let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Receives the state JSON and the fd passed with it.
    fn receive(listener: &UnixListener) -> Result<(Value, OwnedFd), String> {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("no connection: {e}")),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut cmsg = nix::cmsg_space!([RawFd; 2]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: SCM_RIGHTS fds are new and ours alone.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let n = msg.bytes;
        let mut body = buf[..n].to_vec();
        // A stream: read on until the JSON is whole (runc keeps the
        // connection open, xrun closes it).
        let state = loop {
            match serde_json::from_slice::<Value>(&body) {
                Ok(v) => break v,
                Err(e) if !e.is_eof() => return Err(format!("state JSON: {e}")),
                Err(_) => {}
            }
            let mut more = [0u8; 4096];
            match conn.read(&mut more) {
                Ok(0) => return Err("state JSON cut short".to_string()),
                Ok(k) => body.extend_from_slice(&more[..k]),
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        if fds.len() != 1 {
            return Err(format!("{} fds passed, want 1", fds.len()));
        }
        Ok((state, fds.pop().unwrap()))
    }

    fn serve(listener: UnixListener) -> Result<Seen, String> {
        let (state, fd) = receive(&listener)?;
        let mut answered = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n <= 0 {
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                break; // POLLHUP: every task under the filter is gone.
            }
            let mut req = Notif::default();
            if ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut req).is_err() {
                continue; // the caller went away meanwhile
            }
            let mut resp = NotifResp {
                id: req.id,
                ..Default::default()
            };
            match req.nr as libc::c_long {
                libc::SYS_mkdir => resp.error = -libc::EXDEV,
                libc::SYS_getpid => resp.val = GETPID_ANSWER,
                _ => resp.error = -libc::ENOSYS,
            }
            if ioctl(fd.as_raw_fd(), NOTIF_SEND, &mut resp).is_ok() {
                answered += 1;
            }
        }
        Ok(Seen { state, answered })
    }
}

fn notify_profile(t: &TestEnv, sock: &std::path::Path) -> Value {
    let mut p = allow_by_default(vec![rule(&["mkdir", "getpid"], "SCMP_ACT_NOTIFY")]);
    p["listenerPath"] = json!(s(sock));
    p["listenerMetadata"] = json!(format!("agent-for-{}", t.id));
    p
}

#[test]
fn notify_reaches_the_agent_which_answers() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    // Loaded before the user switch (no no_new_privs, `run`) and just
    // before Ready (no_new_privs, `create` whose parent then leaves): both
    // hand the listener over.
    for nnp in [false, true] {
        let id = t.new_id(if nnp { "notify-nnp" } else { "notify" });
        let sock = t.sockets.join(format!("{id}.sock"));
        let agent = agent::Agent::start(&sock);
        t.config["process"]["noNewPrivileges"] = json!(nnp);
        t.config["linux"]["seccomp"] = notify_profile(&t, &sock);
        if nnp && !runtime_is_runc() {
            // runc 1.1 does not know this flag; the kernel takes it with a listener.
            t.config["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
        }
        t.args(&["checker", "--try", "mkdir", "--try", "getpid", "--try", "uname"]);
        let report = if nnp {
            let created = t.create(&id, &[]);
            created.assert_ok();
            t.rt(&["start", &id]).assert_ok();
            let report = t.wait_checker(&created);
            t.wait_status(&id, "stopped");
            t.rt(&["delete", &id]).assert_ok();
            report
        } else {
            t.run_checker(&id)
        };
        let seen = agent.finish();
        assert_denied(&report, "mkdir", "EXDEV");
        assert_eq!(tried(&report, "getpid"), (agent::GETPID_ANSWER, "ok".to_string()));
        assert_succeeded(&report, "uname");
        assert_eq!(report.status("Seccomp"), "2");
        assert!(seen.answered >= 2, "answered {}", seen.answered);
        let st = &seen.state;
        assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
        assert_eq!(st["metadata"], json!(format!("agent-for-{}", t.id)), "{st}");
        assert!(st["ociVersion"].as_str().is_some_and(|v| v.starts_with('1')), "{st}");
        let pid = st["pid"].as_i64().unwrap_or(0);
        assert!(pid > 0, "{st}");
        assert_eq!(st["state"]["id"], json!(id), "{st}");
        assert_eq!(st["state"]["pid"].as_i64(), Some(pid), "{st}");
        assert_eq!(st["state"]["status"], "creating", "{st}");
        assert_eq!(st["state"]["bundle"], json!(s(&t.bundle)), "{st}");
        t.assert_clean(&id);
    }
}

// xrun-only: the wording.
#[test]
fn notify_without_listener_path_is_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_NOTIFY")]);
    create_refuses(&t, "listenerPath");
}

// xrun-only: the wording.
#[test]
fn unreachable_agent_fails_create_cleanly() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let sock = t.sockets.join("nobody-listens.sock");
    t.config["linux"]["seccomp"] = notify_profile(&t, &sock);
    // runc's words (seccomp-notify.bats "no seccompagent").
    create_refuses(&t, "failed to connect with seccomp agent");
}

/// Docker's default profile for a default container (the unit tests' test
/// data): the kernel takes the program and the checker runs under it.
#[test]
fn docker_default_profile_runs_the_checker() {
    let Some(mut t) = TestEnv::new() else { return };
    writable_tmp(&mut t);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/seccomp/testdata/docker-default.json");
    t.config["linux"]["seccomp"] = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let report = run_tries(
        &mut t,
        &[
            "mkdir",
            "getpid",
            "uname",
            "personality:0xffffffff",
            "personality:8",
            "personality:0x400000",
            "int80:getpid",
            "int80:mkdir",
        ],
    );
    assert_succeeded(&report, "mkdir");
    assert_eq!(tried(&report, "getpid").0, 1);
    assert_succeeded(&report, "uname");
    assert_succeeded(&report, "personality:0xffffffff");
    assert_succeeded(&report, "personality:8");
    assert_denied(&report, "personality:0x400000", "EPERM");
    assert_eq!(tried(&report, "int80:getpid").0, 1);
    assert_succeeded(&report, "int80:mkdir");
    assert_eq!(report.status("Seccomp"), "2");
    t.assert_clean(&t.id);
}
