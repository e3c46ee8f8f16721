//! OCI hooks: state on stdin, env/args, ordering, failures and timeouts.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ALL_HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A /bin/sh hook (the path exists on the host and in the rootfs) that
/// saves its stdin, args and env under `log` and appends its name to
/// `log/order`.
fn recording_hook(log: &Path, name: &str) -> Value {
    let d = log.display();
    let script = format!(
        "cat > {d}/{name}.state; printf '%s\\n' \"$@\" > {d}/{name}.args; \
         env > {d}/{name}.env; echo {name} >> {d}/order"
    );
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script, "hook", name, "two words"],
        "env": ["PATH=/usr/bin:/bin", format!("HOOK_NAME={name}"), "HOOK_VAR=some value"],
    })
}

fn shell_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Sets up `hooks` and bind-mounts the log dir at the same path inside the
/// container, so hooks run in either namespace can write there.
fn with_hook_log(t: &mut TestEnv, hooks: Value) -> PathBuf {
    let log = t.host_dir("hooklog");
    t.config["hooks"] = hooks;
    let m = bind_mount(&log, s(&log), &[]);
    t.config["mounts"].as_array_mut().unwrap().push(m);
    log
}

fn hook_state(log: &Path, name: &str) -> Value {
    let text =
        fs::read_to_string(log.join(format!("{name}.state"))).unwrap_or_else(|_| panic!("hook {name} did not run"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} state {text:?}: {e}"))
}

fn hook_ran(log: &Path, name: &str) -> bool {
    log.join(format!("{name}.state")).exists()
}

fn order(log: &Path) -> Vec<String> {
    let text = fs::read_to_string(log.join("order")).unwrap_or_default();
    text.lines().map(String::from).collect()
}

#[test]
fn hooks_get_state_env_and_args_in_order() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let hooks: serde_json::Map<String, Value> = ALL_HOOKS
        .iter()
        .map(|h| (h.to_string(), json!([recording_hook(&log, h)])))
        .collect();
    with_hook_log(&mut t, Value::Object(hooks));

    t.start_sleeper(&id);
    let pid = t.state(&id).unwrap()["pid"].as_i64().unwrap();
    assert!(
        hook_ran(&log, "poststart"),
        "poststart must have run before start returns"
    );
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    assert!(!hook_ran(&log, "poststop"), "poststop ran before delete");
    t.rt(&["delete", &id]).assert_ok();

    // prestart is part of create (runtime spec, and runc).
    let expected_status = [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        // poststart's "running" is checked by an xrun-only test below.
        ("poststart", ""),
        ("poststop", "stopped"),
    ];
    for (hook, status) in expected_status {
        let state = hook_state(&log, hook);
        if !status.is_empty() {
            assert_eq!(state["status"], status, "{hook}: {state}");
        }
        assert_eq!(state["id"], id.as_str(), "{hook}");
        assert_eq!(Path::new(state["bundle"].as_str().unwrap()), t.bundle, "{hook}");
        assert!(state["ociVersion"].is_string(), "{hook}: {state}");
        match hook {
            "poststop" => {}
            // Hooks run in the container's namespaces get the pid as the
            // container sees it (runtime spec, "State"): 1 in its own pid
            // namespace.
            "createContainer" | "startContainer" => assert_eq!(state["pid"], 1, "{hook}: {state}"),
            _ => assert_eq!(state["pid"], pid, "{hook}: {state}"),
        }
        let args = fs::read_to_string(log.join(format!("{hook}.args"))).unwrap();
        assert_eq!(args, format!("{hook}\ntwo words\n"), "{hook} args");
        let env = fs::read_to_string(log.join(format!("{hook}.env"))).unwrap();
        assert!(env.lines().any(|l| l == "HOOK_VAR=some value"), "{hook} env: {env}");
        assert!(
            env.lines().any(|l| l == format!("HOOK_NAME={hook}")),
            "{hook} env: {env}"
        );
    }

    let order = order(&log);
    let pos = |h: &str| order.iter().position(|o| o == h).unwrap();
    assert_eq!(order.len(), ALL_HOOKS.len(), "{order:?}");
    assert!(pos("prestart") < pos("createRuntime"), "{order:?}");
    assert!(pos("createRuntime") < pos("createContainer"), "{order:?}");
    assert!(pos("createContainer") < pos("startContainer"), "{order:?}");
    // startContainer before poststart: see the xrun-only test below.
    assert!(pos("createContainer") < pos("poststart"), "{order:?}");
    assert!(pos("startContainer") < pos("poststop"), "{order:?}");
    assert!(pos("poststart") < pos("poststop"), "{order:?}");
    t.assert_clean(&id);
}

// xrun-only: runc 1.1 runs poststart hooks at the end of `create`, before
// the user process starts, and passes them status "created". The spec calls
// them after the user process has started, before `start` returns.
#[test]
fn poststart_hook_runs_at_start_and_sees_running_status() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let hooks = json!({
        "startContainer": [recording_hook(&log, "startContainer")],
        "poststart": [recording_hook(&log, "poststart")],
    });
    with_hook_log(&mut t, hooks);
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    assert!(!hook_ran(&log, "poststart"), "poststart ran during create");
    t.rt(&["start", &id]).assert_ok();
    assert_eq!(order(&log), ["startContainer", "poststart"]);
    assert_eq!(hook_state(&log, "poststart")["status"], "running");
}

#[test]
fn start_container_hook_runs_inside_the_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    // The host's hostname differs from the container's.
    let script = format!("hostname > {}/hostname", log.display());
    with_hook_log(&mut t, json!({"startContainer": [shell_hook(&script)]}));
    t.start_sleeper(&id);
    let seen = fs::read_to_string(log.join("hostname")).expect("startContainer ran");
    assert_eq!(seen.trim(), "xrun-test");
}

// runc: a startContainer hook with no env of its own gets the process's
// (hooks.bats relies on it); one with env gets only that.
#[test]
fn start_container_hook_without_env_gets_the_process_env() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let bare = shell_hook(&format!("env > {}/bare.env", log.display()));
    let mut own = shell_hook(&format!("env > {}/own.env", log.display()));
    own["env"] = json!(["MINE=1"]);
    with_hook_log(&mut t, json!({"startContainer": [bare, own]}));
    t.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!("FROM_PROCESS=yes"));
    t.start_sleeper(&id);
    let bare = fs::read_to_string(log.join("bare.env")).expect("the first hook ran");
    assert!(bare.lines().any(|l| l == "FROM_PROCESS=yes"), "{bare}");
    assert!(bare.lines().any(|l| l == DEFAULT_PATH), "{bare}");
    let own = fs::read_to_string(log.join("own.env")).expect("the second hook ran");
    assert!(own.lines().any(|l| l == "MINE=1"), "{own}");
    assert!(!own.contains("FROM_PROCESS"), "{own}");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

// runc: createContainer hooks run with the container's rootfs as their cwd
// (hooks_so.bats mounts over ./lib from one).
#[test]
fn create_container_hook_runs_in_the_rootfs() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let script = format!("pwd -P > {d}/cwd; ls > {d}/ls", d = log.display());
    with_hook_log(&mut t, json!({"createContainer": [shell_hook(&script)]}));
    t.rootfs_mkdir("only-in-the-rootfs");
    t.start_sleeper(&id);
    let cwd = fs::read_to_string(log.join("cwd")).expect("the hook ran");
    let rootfs = fs::canonicalize(t.bundle.join("rootfs")).unwrap();
    assert_eq!(Path::new(cwd.trim()), rootfs);
    let ls = fs::read_to_string(log.join("ls")).unwrap();
    assert!(ls.lines().any(|l| l == "only-in-the-rootfs"), "{ls}");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

// runc (seccomp.bats): the startContainer hook runs under the process's
// seccomp filter, also with noNewPrivileges (the filter loaded last).
#[test]
fn start_container_hook_runs_under_the_seccomp_filter() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let script = format!("mkdir {d}/made 2> {d}/err; echo $? > {d}/rc", d = log.display());
    with_hook_log(&mut t, json!({"startContainer": [shell_hook(&script)]}));
    t.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    assert_eq!(t.config["process"]["noNewPrivileges"], true);
    t.start_sleeper(&id);
    let rc = fs::read_to_string(log.join("rc")).expect("the hook ran");
    assert_ne!(rc.trim(), "0", "mkdir succeeded under the filter");
    assert!(!log.join("made").exists());
    let err = fs::read_to_string(log.join("err")).unwrap();
    assert!(err.contains("not permitted"), "{err}");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

/// Shell that sets $pid to the init's, from the state on the hook's stdin.
const INIT_PID: &str = "pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p');";

/// The hook's log line: a copy of the init's mountinfo and where its root
/// is, as seen from the runtime's namespaces while the hook runs.
fn init_view_hook(log: &Path, name: &str) -> Value {
    let d = log.display();
    let script = format!(
        "{INIT_PID} cat /proc/$pid/mountinfo > {d}/{name}.mountinfo; readlink /proc/$pid/root > {d}/{name}.root; \
         echo {name} >> {d}/order"
    );
    shell_hook(&script)
}

// runtime spec: prestart hooks are part of create, after the runtime
// environment is made and before pivot_root, then createRuntime (runc's
// order and point too: the mounts are made, the root not yet changed).
#[test]
fn prestart_and_create_runtime_hooks_run_in_create_after_the_mounts_before_pivot() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let hooks = json!({
        "prestart": [init_view_hook(&log, "prestart")],
        "createRuntime": [init_view_hook(&log, "createRuntime")],
    });
    with_hook_log(&mut t, hooks);
    t.args(&["checker", "--sleep", "60"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    // Ran in create: done before `start`, and the process has not run.
    assert_eq!(order(&log), ["prestart", "createRuntime"]);
    assert_eq!(t.status(&id), "created");
    assert!(Checker::parse(&created.current_stdout()).is_none(), "the process ran");
    let mqueue = format!("{}/dev/mqueue", t.bundle.join("rootfs").display());
    for hook in ["prestart", "createRuntime"] {
        let mountinfo = fs::read_to_string(log.join(format!("{hook}.mountinfo"))).unwrap();
        let mounted = mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(mqueue.as_str()));
        assert!(mounted, "{hook}: the container's mounts are not made yet:\n{mountinfo}");
        let root = fs::read_to_string(log.join(format!("{hook}.root"))).unwrap();
        assert_eq!(root.trim(), "/", "{hook}: the init has already changed its root");
    }
    t.rt(&["start", &id]).assert_ok();
    assert_eq!(t.wait_checker(&created).str("hostname"), "xrun-test");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// Hooks such as NVIDIA's prestart find the container's cgroups (its devices
// cgroup on v1) through /proc/<init>/cgroup: the init must be in every one
// of them by the time they run, as runc's is.
#[test]
fn prestart_and_create_runtime_hooks_find_the_init_in_its_cgroups() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.dir.join("hooklog");
    let d = log.display();
    let copy_cgroup = |name: &str| shell_hook(&format!("{INIT_PID} cat /proc/$pid/cgroup > {d}/{name}.cgroup"));
    with_hook_log(
        &mut t,
        json!({"prestart": [copy_cgroup("prestart")], "createRuntime": [copy_cgroup("createRuntime")]}),
    );
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    let pid = t.state(&id).unwrap()["pid"].as_i64().unwrap();
    let placed = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        placed.lines().any(|l| l.contains(&id)),
        "the init is in no cgroup of its own:\n{placed}"
    );
    for hook in ["prestart", "createRuntime"] {
        let seen = fs::read_to_string(log.join(format!("{hook}.cgroup"))).unwrap();
        assert_eq!(seen, placed, "{hook} ran before the init was in all its cgroups");
    }
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

/// A failing hook of `kind` (the second of two) must make `create` fail,
/// say which one in runc's words, and leave nothing.
fn failing_hook_fails_create(kind: &str) {
    let Some(mut t) = TestEnv::new() else { return };
    let log = t.dir.join("hooklog");
    let marker = format!("touch {}/ran; echo oops >&2; exit 3", log.display());
    with_hook_log(&mut t, json!({ kind: [shell_hook("true"), shell_hook(&marker)] }));
    t.args(&["checker", "--sleep", "60"]);
    let out = t.create(&t.id, &[]);
    assert!(log.join("ran").exists(), "the {kind} hook never ran");
    out.assert_fails();
    // runc 1.4's words (1.1 leaves the kind out).
    let want = if runtime_is_runc() {
        "error running hook #1:".to_string()
    } else {
        format!("error running {kind} hook #1:")
    };
    assert!(out.stderr.contains(&want), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("exit status 3"), "stderr: {}", out.stderr);
    t.assert_clean(&t.id);
}

#[test]
fn failing_prestart_hook_fails_create() {
    failing_hook_fails_create("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    failing_hook_fails_create("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create() {
    failing_hook_fails_create("createContainer");
}

// xrun-only: runc 1.1 runs poststart during `create` and a failure there
// makes `create` fail; the spec says a failing poststart is only a warning.
#[test]
fn failing_poststart_hook_is_only_a_warning() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.config["hooks"] = json!({"poststart": [shell_hook("exit 1")]});
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    t.rt(&["start", &id]).assert_ok();
    assert_eq!(t.status(&id), "running");
}

#[test]
fn failing_poststop_hook_is_only_a_warning() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let marker = t.dir.join("poststop-ran");
    let script = format!("touch {}; exit 1", marker.display());
    t.config["hooks"] = json!({"poststop": [shell_hook(&script)]});
    t.args(&["true"]);
    t.run(&id, &[]).assert_ok();
    assert!(marker.exists(), "the poststop hook never ran");
    t.assert_clean(&id);
}

#[test]
fn hook_timeout_fails_create_quickly() {
    let Some(mut t) = TestEnv::new() else { return };
    // exec: runc 1.1 kills only the hook process and then waits for its
    // stdio to close, so a surviving grandchild would hold it up.
    let mut hook = shell_hook("exec sleep 10");
    hook["timeout"] = json!(1);
    t.config["hooks"] = json!({"createRuntime": [hook]});
    let out = t.create(&t.id, &[]);
    out.assert_fails();
    assert!(out.elapsed < Duration::from_secs(6), "took {:?}", out.elapsed);
    t.assert_clean(&t.id);
}
