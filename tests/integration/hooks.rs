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

    // prestart runs when the container is released, as the validation
    // suite requires (runc runs it during create and says "creating").
    let prestart_status = if runtime_is_runc() { "creating" } else { "created" };
    let expected_status = [
        ("prestart", prestart_status),
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
            // runc reports the pid as seen inside the container (1) for
            // hooks run in its namespaces; the host pid is also accepted.
            "createContainer" | "startContainer" => {
                assert!(state["pid"] == pid || state["pid"] == 1, "{hook}: {state}");
            }
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
    if runtime_is_runc() {
        assert!(pos("prestart") < pos("createContainer"), "{order:?}");
    } else {
        // Released by start: after everything create does, before the process.
        assert!(pos("createContainer") < pos("prestart"), "{order:?}");
        assert!(pos("prestart") < pos("startContainer"), "{order:?}");
    }
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

/// A failing hook of `kind` must make `create` fail and leave nothing.
fn failing_hook_fails_create(kind: &str) {
    let Some(mut t) = TestEnv::new() else { return };
    let log = t.dir.join("hooklog");
    let marker = format!("touch {}/ran; exit 3", log.display());
    with_hook_log(&mut t, json!({ kind: [shell_hook(&marker)] }));
    t.args(&["checker", "--sleep", "60"]);
    let out = t.create(&t.id, &[]);
    assert!(log.join("ran").exists(), "the {kind} hook never ran");
    out.assert_fails();
    t.assert_clean(&t.id);
}

// xrun-only: runc runs prestart during create; xrun runs it when the
// container is released (the point runtime-tools' prestart test checks), so
// a failing prestart fails `start`, which must then delete the container.
#[test]
fn failing_prestart_hook_fails_start_and_deletes() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let log = t.dir.join("hooklog");
    let marker = format!("touch {}/ran; exit 3", log.display());
    with_hook_log(&mut t, json!({ "prestart": [shell_hook(&marker)] }));
    t.args(&["checker", "--sleep", "60"]);
    let created = t.create(&t.id, &[]);
    created.assert_ok();
    assert!(!log.join("ran").exists(), "prestart ran during create");
    let out = t.rt(&["start", &t.id]);
    out.assert_fails();
    assert!(log.join("ran").exists(), "the prestart hook never ran");
    assert!(out.stderr.contains("prestart"), "stderr: {}", out.stderr);
    assert!(Checker::parse(&created.current_stdout()).is_none(), "the process ran");
    t.assert_clean(&t.id);
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
