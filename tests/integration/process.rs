//! The container process: args, env, cwd, user, umask, capabilities,
//! no_new_privs, rlimits, oom_score_adj and file descriptors.

use crate::common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

#[test]
fn args_are_resolved_through_path() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["env"] = json!(["PATH=/nonexistent:/bin"]);
    t.args(&["checker", "first arg", ""]);
    let report = t.run_checker(&t.id);
    assert_eq!(report.0["args"], json!(["checker", "first arg", ""]));
}

#[test]
fn env_is_exactly_as_configured() {
    let Some(mut t) = TestEnv::new() else { return };
    let env = [
        DEFAULT_PATH,
        "TERM=xterm",
        "SPACED=a b  c",
        "EMPTY=",
        "UTF=\u{e9}t\u{e9}",
    ];
    t.config["process"]["env"] = json!(env);
    let report = t.run_checker(&t.id);
    let seen = report.env();
    for var in env.iter().filter(|v| !v.starts_with("UTF=")) {
        assert!(seen.contains(&var.to_string()), "{var} missing from {seen:?}");
    }
    // The checker escapes non-ASCII bytes one by one (Latin-1 view).
    assert!(seen.contains(&"UTF=\u{c3}\u{a9}t\u{c3}\u{a9}".to_string()), "{seen:?}");
    // The spec lets a runtime add HOME; nothing else may appear.
    let configured: Vec<&str> = env.iter().map(|v| v.split('=').next().unwrap()).collect();
    for var in &seen {
        let name = var.split('=').next().unwrap();
        assert!(
            configured.contains(&name) || name == "HOME",
            "unexpected variable {var}"
        );
    }
}

/// The variables named `name` in a report's env, in order.
fn values_of(report: &Checker, name: &str) -> Vec<String> {
    let prefix = format!("{name}=");
    report
        .env()
        .iter()
        .filter_map(|e| e.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn with_passwd(t: &TestEnv) {
    let etc = t.rootfs_mkdir("etc");
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

#[test]
fn empty_home_is_filled_from_passwd() {
    // runc: HOME= counts as unset, whichever entry of HOME comes last.
    let Some(mut t) = TestEnv::new() else { return };
    with_passwd(&t);
    for env in [
        json!([DEFAULT_PATH, "HOME="]),
        json!(["HOME=/override", DEFAULT_PATH, "HOME="]),
    ] {
        t.config["process"]["env"] = env.clone();
        let report = t.run_checker(&t.id);
        assert_eq!(values_of(&report, "HOME"), ["/root"], "env {env}: {:?}", report.env());
        t.assert_clean(&t.id);
    }
    // A non-empty HOME is kept as is.
    t.config["process"]["env"] = json!([DEFAULT_PATH, "HOME=/override"]);
    let report = t.run_checker(&t.id);
    assert_eq!(values_of(&report, "HOME"), ["/override"]);
}

#[test]
fn a_repeated_variable_keeps_its_last_value_once() {
    let Some(mut t) = TestEnv::new() else { return };
    with_passwd(&t);
    t.config["process"]["env"] = json!(["ONE=two", DEFAULT_PATH, "ONE=three", "TWO=a", "TWO="]);
    let report = t.run_checker(&t.id);
    assert_eq!(values_of(&report, "ONE"), ["three"]);
    assert_eq!(values_of(&report, "TWO"), [""]);
    // Nothing else doubled or lost: PATH, ONE, TWO and the added HOME.
    assert_eq!(report.env().len(), 4, "{:?}", report.env());
}

#[test]
fn malformed_env_entries_are_refused() {
    let Some(mut t) = TestEnv::new() else { return };
    for (entry, why) in [("NOEQUALS", "missing '='"), ("=value", "name cannot be empty")] {
        t.config["process"]["env"] = json!([DEFAULT_PATH, entry]);
        let out = t.create(&t.id, &[]);
        out.assert_fails();
        assert!(out.stderr.contains(why), "{entry}: {}", out.stderr);
        t.assert_clean(&t.id);
    }
}

#[test]
fn missing_cwd_is_created() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["cwd"] = json!("/work/deep/dir");
    let report = t.run_checker(&t.id);
    assert_eq!(report.str("cwd"), "/work/deep/dir");
}

#[test]
fn user_ids_and_additional_groups() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 2000]});
    let report = t.run_checker(&t.id);
    assert_eq!(report.int("uid"), 1000);
    assert_eq!(report.int("euid"), 1000);
    assert_eq!(report.int("gid"), 1001);
    assert_eq!(report.int("egid"), 1001);
    let mut groups = report.groups();
    groups.sort();
    assert_eq!(groups, [5, 2000]);
}

#[test]
fn root_user_has_no_supplementary_groups_by_default() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    assert_eq!((report.int("uid"), report.int("gid")), (0, 0));
    assert!(report.groups().iter().all(|g| *g == 0), "{:?}", report.groups());
}

#[test]
fn umask_is_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["user"]["umask"] = json!(0o027);
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Umask"), "0027");
}

#[test]
fn default_umask_is_0022() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Umask"), "0022");
}

#[test]
fn capabilities_are_exact_for_root() {
    let Some(mut t) = TestEnv::new() else { return };
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
    ];
    let inheritable = ["CAP_KILL", "CAP_SETUID"];
    let ambient = ["CAP_KILL"];
    // For uid 0, execve recomputes permitted/effective as bounding plus
    // inheritable, so only a consistent config can be checked exactly.
    t.config["process"]["capabilities"] = json!({
        "bounding": bounding, "permitted": bounding, "effective": bounding,
        "inheritable": inheritable, "ambient": ambient,
    });
    let report = t.run_checker(&t.id);
    assert_eq!(report.cap_set("CapBnd"), cap_mask(&bounding), "CapBnd");
    assert_eq!(report.cap_set("CapPrm"), cap_mask(&bounding), "CapPrm");
    assert_eq!(report.cap_set("CapEff"), cap_mask(&bounding), "CapEff");
    assert_eq!(report.cap_set("CapInh"), cap_mask(&inheritable), "CapInh");
    assert_eq!(report.cap_set("CapAmb"), cap_mask(&ambient), "CapAmb");
}

#[test]
fn capabilities_ambient_for_non_root() {
    let Some(mut t) = TestEnv::new() else { return };
    let bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
    let kept = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    t.config["process"]["capabilities"] = json!({
        "bounding": bounding, "permitted": kept, "effective": kept,
        "inheritable": kept, "ambient": kept,
    });
    let report = t.run_checker(&t.id);
    assert_eq!(report.cap_set("CapBnd"), cap_mask(&bounding), "CapBnd");
    // A non-root execve keeps exactly the ambient set.
    for set in ["CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(report.cap_set(set), cap_mask(&kept), "{set}");
    }
}

// runc 1.1 refuses unknown names; runc 1.4 warns and goes on.
#[test]
fn unknown_capability_names_are_ignored_with_a_warning() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_UNKNOWN", "UNKNOWN_CAP"]);
    let out = t.run(&t.id, &[]);
    out.assert_ok();
    assert!(
        out.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_UNKNOWN UNKNOWN_CAP]"),
        "stderr: {}",
        out.stderr
    );
    let report = out.checker();
    assert_eq!(report.cap_set("CapBnd"), cap_mask(&["CAP_KILL"]), "CapBnd");
    t.assert_clean(&t.id);
}

// The kernel raises only ambient caps that are also inheritable (and
// permitted); runc warns for the others in these words and goes on.
#[test]
fn ambient_cap_not_inheritable_is_warned_about_and_left_out() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let all = ["CAP_CHOWN", "CAP_KILL"];
    t.config["process"]["capabilities"] = json!({
        "bounding": all, "permitted": all, "effective": all,
        "inheritable": ["CAP_KILL"], "ambient": all,
    });
    let out = t.run(&t.id, &[]);
    out.assert_ok();
    assert!(
        out.stderr.contains("can't raise ambient capability CAP_CHOWN: "),
        "stderr: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("CAP_KILL"), "stderr: {}", out.stderr);
    assert_eq!(out.checker().cap_set("CapAmb"), cap_mask(&["CAP_KILL"]), "CapAmb");
    t.assert_clean(&t.id);
}

#[test]
fn default_capabilities_match_config() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(report.cap_set(set), cap_mask(DEFAULT_CAPS), "{set}");
    }
    assert_eq!(report.cap_set("CapInh"), 0);
    assert_eq!(report.cap_set("CapAmb"), 0);
}

#[test]
fn no_new_privileges_true_and_false() {
    let Some(mut t) = TestEnv::new() else { return };
    for (flag, expected) in [(true, "1"), (false, "0")] {
        t.config["process"]["noNewPrivileges"] = json!(flag);
        let id = t.new_id(&format!("nnp-{flag}"));
        let report = t.run_checker(&id);
        assert_eq!(report.status("NoNewPrivs"), expected, "noNewPrivileges {flag}");
        assert_eq!(report.status("Seccomp"), "0", "no seccomp configured");
    }
}

#[test]
fn rlimits_are_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    // All below the host's hard limits: raising needs CAP_SYS_RESOURCE.
    t.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]);
    let report = t.run_checker(&t.id);
    assert_eq!(report.rlimit("RLIMIT_NOFILE"), (json!(512), json!(1000)));
    assert_eq!(report.rlimit("RLIMIT_NPROC"), (json!(100), json!(200)));
    assert_eq!(report.rlimit("RLIMIT_CORE"), (json!(0), json!(4096)));
}

#[test]
fn unknown_rlimit_fails_create() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
    t.create(&t.id, &[]).assert_fails();
    t.assert_clean(&t.id);
}

#[test]
fn oom_score_adj_is_applied() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["oomScoreAdj"] = json!(500);
    let report = t.run_checker(&t.id);
    assert_eq!(report.int("oom_score_adj"), 500);
}

#[test]
fn only_stdio_fds_are_open() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    let fds: Vec<i64> = report.fds().iter().map(|f| f.0).collect();
    assert_eq!(fds, [0, 1, 2], "{:?}", report.fds());
}

#[test]
fn preserve_fds_passes_extra_fd() {
    let Some(t) = TestEnv::new() else { return };
    let shared = t.dir.join("passed-file");
    fs::write(&shared, "passed").unwrap();
    let file = fs::File::open(&shared).unwrap();
    let raw = file.as_raw_fd();
    t.write_config();
    let mut cmd = t.command(&["run", "--preserve-fds", "1", "--bundle", s(&t.bundle), &t.id]);
    // SAFETY: dup2/fcntl are async-signal-safe. dup2 onto another number
    // drops CLOEXEC; if the file already is fd 3, clear the flag directly.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(raw, 3) == 3
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = t.exec(cmd);
    out.assert_ok();
    let fds = out.checker().fds();
    let numbers: Vec<i64> = fds.iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "{fds:?}");
    assert!(fds[3].1.ends_with("passed-file"), "fd 3 is {}", fds[3].1);
    t.assert_clean(&t.id);
}

/// `sh -c SCRIPT` with the runtime as $1 and the test's --root as $2, so a
/// test can arrange fds and env the way a service manager would.
fn via_shell(t: &TestEnv, script: &str) -> CmdOutput {
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", script, "sh"])
        .arg(runtime_bin())
        .arg(&t.root)
        .current_dir(&t.dir)
        .stdin(std::process::Stdio::null());
    t.exec(cmd)
}

#[test]
fn socket_activation_fds_come_before_preserved_ones() {
    let Some(t) = TestEnv::new() else { return };
    for name in ["listen-a", "listen-b", "preserved"] {
        fs::write(t.dir.join(name), name).unwrap();
    }
    t.write_config();
    // LISTEN_PID is the shell's pid, which exec hands to the runtime.
    let script = format!(
        "export LISTEN_PID=$$ LISTEN_FDS=2; exec \"$1\" --root \"$2\" run --preserve-fds 1 --bundle {} {} \
         3<listen-a 4<listen-b 5<preserved",
        s(&t.bundle),
        t.id
    );
    let out = via_shell(&t, &script);
    out.assert_ok();
    let report = out.checker();
    let fds = report.fds();
    let names: Vec<(i64, &str)> = fds
        .iter()
        .map(|f| (f.0, f.1.rsplit('/').next().unwrap_or("")))
        .collect();
    assert_eq!(
        names[3..],
        [(3, "listen-a"), (4, "listen-b"), (5, "preserved")],
        "{fds:?}"
    );
    let env = report.env();
    assert!(
        env.contains(&"LISTEN_FDS=2".to_string()) && env.contains(&"LISTEN_PID=1".to_string()),
        "{env:?}"
    );
    t.assert_clean(&t.id);
}

#[test]
fn listen_fds_for_another_process_are_ignored() {
    let Some(t) = TestEnv::new() else { return };
    fs::write(t.dir.join("listen-a"), "x").unwrap();
    t.write_config();
    let script = format!(
        "export LISTEN_PID=1 LISTEN_FDS=1; exec \"$1\" --root \"$2\" run --bundle {} {} 3<listen-a",
        s(&t.bundle),
        t.id
    );
    let out = via_shell(&t, &script);
    out.assert_ok();
    let report = out.checker();
    let numbers: Vec<i64> = report.fds().iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2], "{:?}", report.fds());
    t.assert_clean(&t.id);
}

#[test]
fn init_leads_its_own_session() {
    let Some(mut t) = TestEnv::new() else { return };
    // `read` is a shell builtin: /proc/self/stat is the shell's own (pid 1).
    t.args(&[
        "sh",
        "-c",
        "read -r pid comm state ppid pgrp sid rest < /proc/self/stat; echo SID=$sid PGRP=$pgrp",
    ]);
    let out = t.run(&t.id, &[]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "SID=1 PGRP=1", "{out:?}");
    t.assert_clean(&t.id);
}
