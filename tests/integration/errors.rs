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

// ---------------------------------------------------------------------------
// The error line's form, as runc 1.4 prints it (logrus' text formatter on
// stderr), and the words runc's bats tests match.

/// The name the runtime under test was invoked as: "xrun run failed: ...".
fn program() -> String {
    runtime_bin().file_name().unwrap().to_string_lossy().into_owned()
}

/// The one stderr line of a failed command, as `time="RFC3339" level=error
/// msg=...`; returns the message.
#[track_caller]
fn only_error_msg(out: &CmdOutput) -> String {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {}", out.stderr);
    let time = lines[0]
        .strip_prefix("time=\"")
        .and_then(|r| r.split_once('"'))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("not a logrus line: {}", lines[0]));
    // 2026-12-07T15:20:00Z, or with a zone offset.
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T' && time[..4].parse::<u32>().is_ok(),
        "time {time:?} in {}",
        lines[0]
    );
    logrus_error_msg(lines[0]).unwrap_or_else(|| panic!("no level=error msg in {}", lines[0]))
}

#[test]
fn errors_are_logrus_lines_on_stderr() {
    let Some(t) = TestEnv::new() else { return };
    let out = t.rt(&["state", "no-such-container"]);
    out.assert_fails();
    let msg = only_error_msg(&out);
    assert!(msg.contains("does not exist"), "msg {msg:?}");
    assert!(
        out.stderr.contains(" level=error msg=\"container "),
        "the message is quoted: {}",
        out.stderr
    );
}

#[test]
fn with_a_log_file_the_record_goes_there_and_stderr_gets_the_plain_error() {
    let Some(t) = TestEnv::new() else { return };
    for (format, json) in [("text", false), ("json", true)] {
        let log = t.dir.join(format!("runtime-{format}.log"));
        let out = t.rt(&["--log", s(&log), "--log-format", format, "state", "no-such-container"]);
        out.assert_fails();
        let plain = out.stderr.trim_end();
        assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
        assert!(
            plain.contains("does not exist") && !plain.contains("level="),
            "stderr: {}",
            out.stderr
        );
        let text = fs::read_to_string(&log).expect("log file written");
        let line = text.lines().last().unwrap_or_default();
        let msg = if json {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(v["level"], "error", "{line}");
            v["msg"].as_str().unwrap().to_string()
        } else {
            logrus_error_msg(line).unwrap_or_else(|| panic!("not a logrus error line: {line:?}"))
        };
        assert_eq!(msg, plain, "{format} log: {text}");
    }
}

#[test]
fn run_and_create_failures_name_the_verb() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["root"]["path"] = json!("no-such-rootfs");
    let run = t.run(&t.id, &[]);
    run.assert_fails();
    let msg = only_error_msg(&run);
    assert!(msg.starts_with(&format!("{} run failed: ", program())), "msg {msg:?}");
    assert!(msg.to_lowercase().contains("no such file or directory"), "msg {msg:?}");
    let create = t.create(&t.id, &[]);
    create.assert_fails();
    let msg = only_error_msg(&create);
    assert!(
        msg.starts_with(&format!("{} create failed: ", program())),
        "msg {msg:?}"
    );
    t.assert_clean(&t.id);
}

// As runc's mounts_sshfs.bats expects for a refused bind: the init's
// failure, wrapped in the words runc wraps it in.
#[test]
fn a_failed_mount_reads_as_runcs_error_mounting() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(mount("/mnt", "no-such-fstype", "nosrc", &[]));
    let out = t.run(&t.id, &[]);
    out.assert_fails();
    let msg = only_error_msg(&out);
    let want = format!(
        "{} run failed: unable to start container process: error during container init: \
         error mounting \"nosrc\" to rootfs at \"/mnt\": ",
        program()
    );
    assert!(msg.starts_with(&want), "msg {msg:?}\nwant {want:?}");
    assert!(msg.ends_with("no such device"), "msg {msg:?}");
    t.assert_clean(&t.id);
}

// runc's run.bats "runc run [execve error]": once set up, the init reports
// its own execve failure, one plain line, and `run` exits with its 255.
#[test]
fn an_execve_error_is_the_one_plain_line_of_the_init() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let script = t.rootfs.join("run.sh");
    fs::write(&script, "#!/mmnnttbb foo bar\nsh\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.args(&["/run.sh"]);
    let out = t.run(&t.id, &[]);
    assert_eq!(out.stderr, "exec /run.sh: no such file or directory\n");
    assert_eq!(out.code(), 255, "{out:?}");
    t.assert_clean(&t.id);
    // With a terminal (run.bats' bundle has one) the line comes through the
    // relayed pty, to our stdout, with no "\r" added.
    t.config["process"]["terminal"] = json!(true);
    let id = t.new_id("tty");
    let out = t.run(&id, &[]);
    assert_eq!(out.stdout, "exec /run.sh: no such file or directory\n", "{out:?}");
    assert_eq!(out.stderr, "");
    assert_eq!(out.code(), 255, "{out:?}");
    t.assert_clean(&id);
}

// runc's exec.bats "runc exec [exit codes]": a runtime failure of exec
// exits 255, the process's own status passes through.
#[test]
fn exec_runtime_failures_exit_255() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    assert_eq!(t.rt(&["exec", &id, "sh", "-c", "exit 1"]).code(), 1);
    let missing = t.rt(&["exec", &id, "no-such-binary"]);
    assert_eq!(missing.code(), 255, "{missing:?}");
    let msg = only_error_msg(&missing);
    assert!(
        msg.starts_with("exec failed: unable to start container process: ") && msg.contains("no-such-binary"),
        "msg {msg:?}"
    );
    let pid_file = t.rt(&["exec", "--pid-file", "/non-existent/directory", &id, "true"]);
    assert_eq!(pid_file.code(), 255, "{pid_file:?}");
    let unknown = t.rt(&["exec", "no-such-container", "true"]);
    assert_eq!(unknown.code(), 255, "{unknown:?}");
    assert!(only_error_msg(&unknown).starts_with("exec failed: "), "{unknown:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}
