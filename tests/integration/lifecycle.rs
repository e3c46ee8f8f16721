//! create/start/kill/delete/run and the state machine between them.

use crate::common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::Duration;

#[test]
fn create_start_kill_delete() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);

    let created = t.create(&id, &[]);
    created.assert_ok();
    let state = t.state(&id).expect("state after create");
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0, "pid in {state}");
    assert!(state["ociVersion"].is_string(), "ociVersion in {state}");
    let bundle = state["bundle"].as_str().unwrap();
    assert!(Path::new(bundle).is_absolute(), "bundle {bundle} not absolute");
    assert_eq!(Path::new(bundle), t.bundle);
    // The process must not run the user's program before `start`.
    assert!(Checker::parse(&created.current_stdout()).is_none());

    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    assert_eq!(report.int("pid"), 1);
    assert_eq!(t.status(&id), "running");

    t.rt(&["kill", &id]).assert_ok();
    t.wait_status(&id, "stopped");

    t.rt(&["delete", &id]).assert_ok();
    assert!(t.state(&id).is_none(), "state still works after delete");
    t.assert_clean(&id);
}

#[test]
fn created_container_runs_nothing_until_start() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let marker = t.host_dir("marker");
    t.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(bind_mount(&marker, "/marker", &[]));
    t.args(&["touch", "/marker/started"]);
    t.create(&id, &[]).assert_ok();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.join("started").exists());
    t.rt(&["start", &id]).assert_ok();
    assert!(poll_until(Duration::from_secs(5), || marker.join("started").exists()));
}

#[test]
fn run_returns_container_exit_status() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--exit", "7"]);
    let out = t.run(&id, &[]);
    assert_eq!(out.code(), 7, "stderr: {}", out.stderr);
    // The container's stdout is the runtime's stdout.
    assert_eq!(out.checker().0["args"], json!(["checker", "--exit", "7"]));
    t.assert_clean(&id);
}

#[test]
fn run_success_returns_zero_and_output() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    assert_eq!(report.int("pid"), 1);
    t.assert_clean(&t.id);
}

#[test]
fn run_killed_by_fault_returns_128_plus_signal() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--kill-self", "SEGV"]);
    let out = t.run(&id, &[]);
    assert_eq!(out.code(), 128 + libc::SIGSEGV, "stderr: {}", out.stderr);
    t.assert_clean(&id);
}

#[test]
fn run_without_pid_namespace_killed_by_own_sigkill() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    // Outside a new pid namespace the checker is not an init, so raise()
    // of SIGKILL works.
    remove_namespace(&mut t.config, "pid");
    t.args(&["checker", "--kill-self", "9"]);
    let out = t.run(&id, &[]);
    assert_eq!(out.code(), 137, "stderr: {}", out.stderr);
    t.assert_clean(&id);
}

#[test]
fn run_killed_via_kill_verb_returns_137() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    t.write_config();
    let bundle = t.bundle.to_string_lossy().into_owned();
    let run = t.spawn(&["run", "--bundle", &bundle, &id]);
    t.wait_status(&id, "running");
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    let out = run.wait(Duration::from_secs(10));
    assert_eq!(out.code(), 137, "stderr: {}", out.stderr);
    t.assert_clean(&id);
}

#[test]
fn run_detach_returns_with_container_running() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    let out = t.run(&id, &["--detach"]);
    out.assert_ok();
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn run_keep_leaves_stopped_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--exit", "3"]);
    let out = t.run(&id, &["--keep"]);
    assert_eq!(out.code(), 3);
    assert_eq!(t.status(&id), "stopped");
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn pid_file_matches_state_pid() {
    let Some(mut t) = TestEnv::new() else { return };
    let created_id = t.id.clone();
    let run_id = t.new_id("pidfile-run");
    t.args(&["checker", "--sleep", "60"]);

    let create_pid_file = t.dir.join("create.pid");
    t.create(&created_id, &["--pid-file", s(&create_pid_file)]).assert_ok();
    let run_pid_file = t.dir.join("run.pid");
    t.run(&run_id, &["--detach", "--pid-file", s(&run_pid_file)])
        .assert_ok();

    for (id, file) in [(&created_id, &create_pid_file), (&run_id, &run_pid_file)] {
        let written = fs::read_to_string(file).expect("pid file");
        let state_pid = t.state(id).unwrap()["pid"].as_i64().unwrap();
        assert_eq!(written.trim().parse::<i64>().unwrap(), state_pid, "{id}");
    }
}

#[test]
fn kill_accepts_signal_spellings() {
    let Some(mut t) = TestEnv::new() else { return };
    for (n, signal) in ["KILL", "SIGKILL", "9"].iter().enumerate() {
        let id = t.new_id(&format!("spelling{n}"));
        t.start_sleeper(&id);
        t.rt(&["kill", &id, signal]).assert_ok();
        t.wait_status(&id, "stopped");
        t.rt(&["delete", &id]).assert_ok();
        t.assert_clean(&id);
    }
}

#[test]
fn kill_term_by_name_stops_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    t.rt(&["kill", &id, "SIGTERM"]).assert_ok();
    t.wait_status(&id, "stopped");
}

#[test]
fn kill_all_stops_every_process() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["sh", "-c", "checker --sleep 60 & checker --sleep 60 & wait"]);
    t.create(&id, &[]).assert_ok();
    t.rt(&["start", &id]).assert_ok();
    t.wait_status(&id, "running");
    let rooted = || t.leaked_processes().len();
    assert!(poll_until(Duration::from_secs(5), || rooted() >= 3));
    t.rt(&["kill", "--all", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    assert!(poll_until(Duration::from_secs(5), || rooted() == 0));
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn start_of_running_container_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    t.rt(&["start", &id]).assert_fails();
    assert_eq!(t.status(&id), "running");
}

#[test]
fn delete_of_running_container_needs_force() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    t.rt(&["delete", &id]).assert_fails();
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert!(t.state(&id).is_none());
    t.assert_clean(&id);
}

#[test]
fn delete_force_of_created_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    assert_eq!(t.status(&id), "created");
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert!(t.state(&id).is_none());
    t.assert_clean(&id);
}

#[test]
fn kill_of_stopped_container_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["true"]);
    t.run(&id, &["--keep"]).assert_ok();
    assert_eq!(t.status(&id), "stopped");
    let out = t.rt(&["kill", &id, "KILL"]);
    out.assert_fails();
    assert!(out.stderr.contains("not running"), "stderr: {}", out.stderr);
}

#[test]
fn start_of_stopped_container_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["true"]);
    t.run(&id, &["--keep"]).assert_ok();
    t.rt(&["start", &id]).assert_fails();
    assert_eq!(t.status(&id), "stopped");
}

#[test]
fn create_with_existing_id_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let first_pid = t.state(&id).unwrap()["pid"].clone();
    t.create(&id, &[]).assert_fails();
    let state = t.state(&id).expect("first container still there");
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], first_pid);
}

// As runc (and containerd's shim, which deletes a created task without
// --force): a created container is deleted, its process never runs. The
// runtime spec's wording, checked by runtime-tools' delete test, would
// refuse it; runc's behaviour is the reference here.
#[test]
fn delete_of_created_container_kills_it() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    assert_eq!(t.status(&id), "created");
    t.rt(&["delete", &id]).assert_ok();
    assert!(t.state(&id).is_none());
    assert!(Checker::parse(&created.current_stdout()).is_none(), "the process ran");
    t.assert_clean(&id);
}

#[test]
fn kill_with_unknown_signal_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let out = t.rt(&["kill", &id, "SIGFOO"]);
    out.assert_fails();
    assert!(out.stderr.contains("unknown signal"), "stderr: {}", out.stderr);
    assert_eq!(t.status(&id), "running");
}

#[test]
fn bundle_defaults_to_current_directory() {
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let mut cmd = t.command(&["run", &t.id]);
    cmd.current_dir(&t.bundle);
    let out = t.exec(cmd);
    out.assert_ok();
    assert_eq!(out.checker().int("pid"), 1);
    t.assert_clean(&t.id);
}

#[test]
fn missing_root_directory_is_created() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.root = t.dir.join("new/nested/root");
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    assert!(t.root.join(&id).is_dir());
    assert_eq!(t.status(&id), "created");
}
