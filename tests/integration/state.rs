//! The `state` verb, the on-disk state directory and container ids.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

#[test]
fn state_reports_spec_fields() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.config["annotations"] = json!({"org.example.key": "value"});
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    let state = t.state(&id).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "created");
    assert!(
        state["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    assert_eq!(Path::new(state["bundle"].as_str().unwrap()), t.bundle);
    assert_eq!(state["annotations"]["org.example.key"], "value", "{state}");
    // runc extras that tools (e.g. containerd) read.
    assert_eq!(Path::new(state["rootfs"].as_str().unwrap()), t.rootfs, "{state}");
    assert!(state["created"].as_str().is_some_and(|c| c.contains('T')), "{state}");
}

#[test]
fn state_of_stopped_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["true"]);
    t.run(&id, &["--keep"]).assert_ok();
    let state = t.state(&id).unwrap();
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["id"], id.as_str());
}

#[test]
fn state_json_is_written_under_root_and_id() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    let text = fs::read_to_string(t.root.join(&id).join("state.json")).expect("state.json");
    let _: Value = serde_json::from_str(&text).expect("state.json is JSON");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn verbs_on_unknown_id_fail() {
    let Some(t) = TestEnv::new() else { return };
    for verb in ["state", "start", "kill", "delete"] {
        let out = t.rt(&[verb, "no-such-container"]);
        out.assert_fails();
        assert!(out.stdout.trim().is_empty(), "{verb} stdout: {}", out.stdout);
        // Callers such as containerd match runc's wording.
        assert!(out.stderr.contains("does not exist"), "{verb} stderr: {}", out.stderr);
    }
}

#[test]
fn invalid_container_ids_are_rejected() {
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let long = "a".repeat(1025);
    for id in ["a/b", "..", ".", "", "../escape", &long] {
        let out = t.rt(&["create", "--bundle", s(&t.bundle), id]);
        out.assert_fails();
        let entries: Vec<_> = fs::read_dir(&t.root).unwrap().flatten().map(|e| e.path()).collect();
        assert!(entries.is_empty(), "id {id:?} left {entries:?}");
        assert!(!t.dir.join("escape").exists(), "id {id:?} escaped the root");
    }
    assert!(t.leaked_processes().is_empty());
}

#[test]
fn delete_force_of_unknown_id_succeeds() {
    let Some(t) = TestEnv::new() else { return };
    // runc treats this as already deleted; cleanup paths rely on it.
    t.rt(&["delete", "--force", "no-such-container"]).assert_ok();
    assert!(!t.root.join("no-such-container").exists());
}
