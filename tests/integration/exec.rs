//! `exec`: a new process joins the container's namespaces, cgroup and root,
//! with its own user, cwd, env, capabilities and seccomp filter; exit codes,
//! detach and pid file, signal forwarding, and refusals (paused, stopped,
//! unknown container, missing program) that leave the container intact.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const CONTAINER_NS: [&str; 5] = ["pid", "net", "ipc", "uts", "mnt"];

/// exec's report, from `exec [flags] <id> checker [args]`.
#[track_caller]
fn exec_checker(t: &TestEnv, id: &str, flags: &[&str], checker_args: &[&str]) -> Checker {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.push(id);
    args.push("checker");
    args.extend_from_slice(checker_args);
    let out = t.rt(&args);
    out.assert_ok();
    out.checker()
}

#[test]
fn exec_joins_every_namespace_of_the_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let created = t.start_sleeper(&id);
    let init = t.wait_checker(&created);
    let exec = exec_checker(&t, &id, &[], &[]);
    for ns in CONTAINER_NS {
        assert_eq!(
            exec.ns(ns),
            init.ns(ns),
            "exec is not in the container's {ns} namespace"
        );
        assert_ne!(exec.ns(ns), host_ns(ns), "exec is in the host's {ns} namespace");
    }
    assert_eq!(exec.ns("user"), host_ns("user"));
    // A second process in the container's pid namespace, not its init.
    assert!(exec.int("pid") > 1, "exec pid {}", exec.int("pid"));
    assert_eq!(exec.str("hostname"), "xrun-test");
    // The container's root and mount table, not the host's.
    assert_eq!(exec.mounts(), init.mounts());
    assert_eq!(exec.str("cwd"), "/");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_joins_the_user_namespace_first() {
    let Some(mut t) = TestEnv::new() else { return };
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
    let id = t.id.clone();
    let created = t.start_sleeper(&id);
    let init = t.wait_checker(&created);
    let exec = exec_checker(&t, &id, &["--user", "1000:1000"], &[]);
    assert_eq!(exec.ns("user"), init.ns("user"));
    assert_ne!(exec.ns("user"), host_ns("user"));
    assert_eq!(exec.ns("mnt"), init.ns("mnt"));
    assert_eq!((exec.int("uid"), exec.int("gid")), (1000, 1000));
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_flags_set_user_cwd_env_groups_and_caps() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let flags = [
        "--cwd",
        "/tmp",
        "-e",
        "XRUN_EXEC=yes",
        "--user",
        "1000:1000",
        "--additional-gids",
        "5",
        "--cap",
        "CAP_NET_RAW",
    ];
    let exec = exec_checker(&t, &id, &flags, &[]);
    assert_eq!(exec.str("cwd"), "/tmp");
    let env = exec.env();
    assert!(env.contains(&"XRUN_EXEC=yes".to_string()), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "the container's env is kept: {env:?}"
    );
    assert_eq!((exec.int("uid"), exec.int("gid")), (1000, 1000));
    assert_eq!(exec.groups(), vec![5]);
    let mut want = DEFAULT_CAPS.to_vec();
    want.push("CAP_NET_RAW");
    assert_eq!(exec.cap_set("CapBnd"), cap_mask(&want));
    // A non-root process keeps no effective caps across execve (no
    // ambient ones here); as root it has what --cap added.
    assert_eq!(exec.cap_set("CapEff"), 0);
    let root = exec_checker(&t, &id, &["--cap", "CAP_NET_RAW"], &[]);
    assert_eq!(root.cap_set("CapEff"), cap_mask(&want));
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_env_flag_overrides_the_containers_variable() {
    // runc appends -e to the process env and keeps a key's last value.
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["env"] = json!([DEFAULT_PATH, "ONE=config", "TWO=config"]);
    let id = t.id.clone();
    t.start_sleeper(&id);
    let exec = exec_checker(&t, &id, &["-e", "ONE=cli", "-e", "THREE=cli"], &[]);
    let env = exec.env();
    let ones: Vec<&String> = env.iter().filter(|e| e.starts_with("ONE=")).collect();
    assert_eq!(ones, ["ONE=cli"], "{env:?}");
    assert!(env.contains(&"TWO=config".to_string()), "{env:?}");
    assert!(env.contains(&"THREE=cli".to_string()), "{env:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_process_file_without_user_runs_as_root() {
    // runc's bats write process files with only terminal, args and cwd.
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let file = t.dir.join("process.json");
    std::fs::write(&file, json!({"args": ["checker"], "cwd": "/tmp"}).to_string()).unwrap();
    let out = t.rt(&["exec", "--process", s(&file), &id]);
    out.assert_ok();
    let exec = out.checker();
    assert_eq!((exec.int("uid"), exec.int("gid")), (0, 0));
    assert_eq!(exec.str("cwd"), "/tmp");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_process_file_is_taken_as_given() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let process = json!({
        "user": {"uid": 2000, "gid": 3000},
        "args": ["checker"],
        "env": ["PATH=/bin", "ONLY=this"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
        "noNewPrivileges": true
    });
    let file = t.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = t.rt(&["exec", "--process", s(&file), &id]);
    out.assert_ok();
    let exec = out.checker();
    assert_eq!((exec.int("uid"), exec.int("gid")), (2000, 3000));
    let env = exec.env();
    assert!(
        env.contains(&"ONLY=this".to_string()) && !env.contains(&"TERM=xterm".to_string()),
        "{env:?}"
    );
    assert_eq!(exec.cap_set("CapBnd"), cap_mask(&["CAP_KILL"]));
    assert_eq!(exec.status("NoNewPrivs"), "1");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_exits_with_the_process_status() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    assert_eq!(t.rt(&["exec", &id, "sh", "-c", "exit 7"]).code(), 7);
    assert_eq!(
        t.rt(&["exec", &id, "sh", "-c", "kill -TERM $$"]).code(),
        128 + libc::SIGTERM
    );
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_forwards_signals_to_the_process() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let bg = t.spawn(&["exec", &id, "checker", "--sleep", "30"]);
    let pid = bg.pid();
    // Wait until the exec'd checker runs: a child of `xrun exec`.
    let seen = poll_until(Duration::from_secs(10), || {
        let stat = |p: &str| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let st = stat(&e.file_name().to_string_lossy());
            st.contains("(checker)") && st.split(' ').nth(3) == Some(&pid.to_string())
        })
    });
    assert!(seen, "exec'd checker never appeared");
    // SAFETY: signalling the runtime process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = bg.wait(Duration::from_secs(10));
    assert_eq!(out.code(), 128 + libc::SIGTERM, "{out:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_detach_writes_the_pid_file_and_joins_the_cgroup() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let init_pid = t.state(&id).unwrap()["pid"].as_i64().unwrap();
    let pid_file = t.dir.join("exec.pid");
    t.rt(&["exec", "--detach", "--pid-file", s(&pid_file), &id, "sleep", "30"])
        .assert_ok();
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_ne!(pid, init_pid);
    let host = |p: i64, what: &str| std::fs::read_to_string(format!("/proc/{p}/{what}")).unwrap_or_default();
    let link = |p: i64, ns: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).ok();
    assert!(
        host(pid, "cmdline").starts_with("sleep"),
        "pid file names {:?}",
        host(pid, "cmdline")
    );
    assert_eq!(
        host(pid, "cgroup"),
        host(init_pid, "cgroup"),
        "exec is not in the container's cgroup"
    );
    for ns in ["pid", "mnt", "net"] {
        assert_eq!(link(pid, ns), link(init_pid, ns), "{ns}");
    }
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "exec'd process outlived delete"
    );
}

#[test]
fn exec_applies_the_container_seccomp_filter() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let id = t.id.clone();
    t.start_sleeper(&id);
    let exec = exec_checker(&t, &id, &[], &["--try", "mkdir"]);
    assert_eq!(exec.status("Seccomp"), "2");
    assert_eq!(exec.0["tries"]["mkdir"]["errno_name"], "EPERM", "{}", exec.0["tries"]);
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_refusals_leave_the_container_running() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let missing = t.rt(&["exec", &id, "no-such-program"]);
    missing.assert_fails();
    assert!(missing.stderr.contains("no-such-program"), "{}", missing.stderr);
    let unknown = t.rt(&["exec", "no-such-container", "true"]);
    unknown.assert_fails();
    assert!(unknown.stderr.contains("does not exist"), "{}", unknown.stderr);
    t.rt(&["pause", &id]).assert_ok();
    let paused = t.rt(&["exec", &id, "true"]);
    paused.assert_fails();
    assert!(paused.stderr.contains("paused"), "{}", paused.stderr);
    t.rt(&["resume", &id]).assert_ok();
    assert_eq!(t.status(&id), "running");
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    let stopped = t.rt(&["exec", &id, "true"]);
    stopped.assert_fails();
    assert!(stopped.stderr.contains("stopped"), "{}", stopped.stderr);
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

// As runc's cgroups.bats "runc exec --ignore-paused": the process joins the
// frozen container and runs once it is resumed; `resume` must not wait on
// the exec (which once held the container's lock while its child sat
// frozen: a deadlock only SIGKILL ended).
#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    t.rt(&["pause", &id]).assert_ok();
    assert_eq!(t.status(&id), "paused");
    let exec = t.spawn(&[
        "exec",
        "--ignore-paused",
        &id,
        "sh",
        "-c",
        "echo ok; cat /proc/self/cgroup",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    // Still frozen with the container; `state` answers meanwhile.
    assert_eq!(t.status(&id), "paused");
    let resume = t.spawn(&["resume", &id]).wait(Duration::from_secs(5));
    resume.assert_ok();
    let out = exec.wait(Duration::from_secs(10));
    out.assert_ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("ok"), "{out:?}");
    // It ran inside the container's cgroup (the frozen one).
    assert!(
        lines.any(|l| l.contains(&id)),
        "exec not in the container's cgroup: {out:?}"
    );
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_preserve_fds_passes_extra_fds() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    std::fs::write(t.dir.join("passed"), "x").unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "exec \"$1\" --root \"$2\" exec --preserve-fds 1 \"$3\" checker 3<passed",
        "sh",
    ])
    .arg(runtime_bin())
    .arg(&t.root)
    .arg(&id)
    .current_dir(&t.dir);
    let out = t.exec(cmd);
    out.assert_ok();
    let fds = out.checker().fds();
    let numbers: Vec<i64> = fds.iter().map(|f| f.0).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "{fds:?}");
    assert!(fds[3].1.ends_with("/passed"), "fd 3 is {}", fds[3].1);
    t.rt(&["delete", "--force", &id]).assert_ok();
}
