//! linux.seccomp: actions (ERRNO with and without errnoRet, the default
//! errno, KILL_PROCESS/KILL/TRAP, LOG), argument conditions (EQ, MASKED_EQ),
//! flags, the filter's presence in /proc/self/status with and without
//! no_new_privs, and what is refused or skipped. The checker's `--try` makes
//! single raw system calls and reports their result.

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
    profile["flags"] = json!([
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC"
    ]);
    t.config["linux"]["seccomp"] = profile;
    let report = run_tries(&mut t, &["mkdir", "uname"]);
    assert_denied(&report, "mkdir", "EPERM");
    assert_succeeded(&report, "uname");
    t.assert_clean(&t.id);
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

// xrun-only: runc 1.1 implements seccomp user notification (it refuses
// SCMP_ACT_NOTIFY only without a listenerPath, and in other words).
#[test]
fn notify_action_is_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["seccomp"] = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_NOTIFY")]);
    create_refuses(&t, "SCMP_ACT_NOTIFY");
}

// xrun-only: runc 1.1 implements seccomp user notification.
#[test]
fn listener_path_is_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let mut profile = allow_by_default(vec![rule(&["mkdir"], "SCMP_ACT_ERRNO")]);
    profile["listenerPath"] = json!(s(&t.dir.join("seccomp.sock")));
    t.config["linux"]["seccomp"] = profile;
    create_refuses(&t, "listenerPath");
}
