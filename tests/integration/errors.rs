//! Failures before the container runs: bad config, bad rootfs, bad args,
//! and the JSON log format.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;

/// Writes a config.json cut off in the middle and runs `create`.
fn create_with_truncated_config(t: &TestEnv) -> CmdOutput {
    let text = serde_json::to_string_pretty(&t.config).unwrap();
    fs::write(t.bundle.join("config.json"), &text[..text.len() / 2]).unwrap();
    t.rt(&["create", "--bundle", s(&t.bundle), &t.id])
}

#[test]
fn malformed_config_fails_cleanly() {
    let Some(t) = TestEnv::new() else { return };
    let out = create_with_truncated_config(&t);
    out.assert_fails();
    assert!(!out.stderr.trim().is_empty(), "no error message");
    t.assert_clean(&t.id);
}

// xrun-only: runc 1.1 says just "unexpected EOF", without naming the file.
#[test]
fn malformed_config_error_is_one_line_naming_the_file() {
    if xrun_only() {
        return;
    }
    let Some(t) = TestEnv::new() else { return };
    let out = create_with_truncated_config(&t);
    out.assert_fails();
    assert_eq!(out.stderr.trim().lines().count(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("config.json"), "stderr: {}", out.stderr);
}

#[test]
fn missing_config_fails_cleanly() {
    let Some(t) = TestEnv::new() else { return };
    let out = t.rt(&["create", "--bundle", s(&t.bundle), &t.id]);
    out.assert_fails();
    assert!(out.stderr.contains("config.json"), "stderr: {}", out.stderr);
    t.assert_clean(&t.id);
}

#[test]
fn missing_rootfs_fails_cleanly() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["root"]["path"] = json!("no-such-rootfs");
    let out = t.create(&t.id, &[]);
    out.assert_fails();
    assert!(
        out.stderr.to_lowercase().contains("no such file or directory"),
        "stderr: {}",
        out.stderr
    );
    t.assert_clean(&t.id);
}

#[test]
fn missing_executable_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["no-such-binary"]);
    let out = t.create(&t.id, &[]);
    if out.success() {
        // Only runc may defer the error to `start`.
        assert!(runtime_is_runc(), "create must fail for a missing executable");
        t.rt(&["start", &t.id]).assert_fails();
        t.rt(&["delete", "--force", &t.id]).assert_ok();
    } else {
        let err = out.stderr.to_lowercase();
        assert!(
            err.contains("no such file or directory") || err.contains("not found"),
            "stderr: {}",
            out.stderr
        );
    }
    t.assert_clean(&t.id);
}

#[test]
fn missing_absolute_executable_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["/bin/no-such-binary"]);
    let out = t.run(&t.id, &[]);
    out.assert_fails();
    assert!(
        out.stderr.to_lowercase().contains("no such file or directory"),
        "stderr: {}",
        out.stderr
    );
    t.assert_clean(&t.id);
}

#[test]
fn log_json_records_the_error() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["root"]["path"] = json!("no-such-rootfs");
    t.write_config();
    let log = t.dir.join("runtime.log");
    let out = t.rt(&[
        "--log",
        s(&log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        s(&t.bundle),
        &t.id,
    ]);
    out.assert_fails();
    let text = fs::read_to_string(&log).expect("log file written");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    for entry in &entries {
        for key in ["level", "msg", "time"] {
            assert!(entry[key].is_string(), "{key} missing in {entry}");
        }
    }
    assert!(entries.iter().any(|e| e["level"] == "error"), "{text}");
    t.assert_clean(&t.id);
}
