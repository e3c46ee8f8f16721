//! Command-line surface: version, help, unknown verbs/flags, `spec`.

use crate::common::*;
use serde_json::Value;
use std::fs;

const VERBS: &[&str] = &[
    "create", "start", "state", "kill", "delete", "run", "spec", "exec", "ps", "list", "features", "pause", "resume",
    "update", "events",
];

/// The state root must hold nothing after a command that should not create.
#[track_caller]
fn assert_root_empty(t: &TestEnv) {
    let entries: Vec<_> = fs::read_dir(&t.root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "state root not empty: {entries:?}");
}

#[test]
fn version_mentions_spec() {
    let Some(t) = TestEnv::new() else { return };
    let out = t.rt(&["--version"]);
    out.assert_ok();
    assert!(out.stdout.contains("spec"), "stdout: {}", out.stdout);
}

#[test]
fn help_works_for_every_verb() {
    let Some(t) = TestEnv::new() else { return };
    t.rt(&["--help"]).assert_ok();
    for verb in VERBS {
        let out = t.rt(&[verb, "--help"]);
        out.assert_ok();
        assert!(out.stdout.contains(verb), "help of {verb}: {}", out.stdout);
    }
}

#[test]
fn unknown_verb_fails_and_creates_nothing() {
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    t.rt(&["frobnicate", &t.id]).assert_fails();
    assert_root_empty(&t);
}

#[test]
fn unknown_flag_fails_and_creates_nothing() {
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let bundle = s(&t.bundle);
    for verb in ["run", "create"] {
        t.rt(&[verb, "--no-such-flag", "--bundle", bundle, &t.id])
            .assert_fails();
        assert_root_empty(&t);
    }
    t.rt(&["--no-such-global-flag", "state", &t.id]).assert_fails();
    t.assert_clean(&t.id);
}

#[test]
fn refused_command_line_reaches_the_json_log() {
    if xrun_only() {
        return;
    }
    let Some(t) = TestEnv::new() else { return };
    let log = t.dir.join("log.json");
    let out = t.rt(&[
        "--log",
        s(&log),
        "--log-format",
        "json",
        "exec",
        "--no-such-flag",
        &t.id,
    ]);
    assert_eq!(out.code(), 1, "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or("")).unwrap_or_default();
    assert_eq!(record["level"], "error", "{text}");
    assert!(
        record["msg"].as_str().unwrap_or("").contains("--no-such-flag"),
        "{text}"
    );
}

#[test]
fn spec_writes_config_json() {
    let Some(t) = TestEnv::new() else { return };
    let dir = t.host_dir("spec");
    t.rt(&["spec", "--bundle", s(&dir)]).assert_ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("config.json written");
    let config: Value = serde_json::from_str(&text).expect("config.json is JSON");
    for key in ["ociVersion", "process", "root", "linux"] {
        assert!(!config[key].is_null(), "{key} missing in {config}");
    }
    assert!(config["process"]["args"].is_array());
    assert_eq!(config["root"]["path"], "rootfs");
    // As runc 1.4: a cgroup namespace only where /sys/fs/cgroup is cgroup v2.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2 = mountinfo.lines().any(|l| {
        l.split(' ').nth(4) == Some("/sys/fs/cgroup")
            && l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup2 "))
    });
    let mut want = vec!["pid", "network", "ipc", "uts", "mount"];
    if v2 {
        want.push("cgroup");
    }
    let namespaces: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, want);
}

#[test]
fn spec_refuses_to_overwrite() {
    let Some(t) = TestEnv::new() else { return };
    let dir = t.host_dir("spec");
    let existing = dir.join("config.json");
    fs::write(&existing, "{\"mine\": true}").unwrap();
    t.rt(&["spec", "--bundle", s(&dir)]).assert_fails();
    assert_eq!(fs::read_to_string(&existing).unwrap(), "{\"mine\": true}");
}

#[test]
fn spec_rootless_adds_user_namespace() {
    let Some(t) = TestEnv::new() else { return };
    let dir = t.host_dir("spec");
    t.rt(&["spec", "--rootless", "--bundle", s(&dir)]).assert_ok();
    let config: Value = serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let namespaces = config["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.iter().any(|ns| ns["type"] == "user"), "{namespaces:?}");
    for key in ["uidMappings", "gidMappings"] {
        let mappings = config["linux"][key].as_array().expect(key);
        assert!(!mappings.is_empty(), "{key} empty");
        assert!(mappings[0]["size"].as_u64().unwrap() >= 1);
    }
}

// xrun-only: runc has no per-phase timing output.
#[test]
fn debug_prints_phase_timeline() {
    if xrun_only() {
        return;
    }
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let out = t.rt(&["--debug", "run", "--bundle", s(&t.bundle), &t.id]);
    out.assert_ok();
    for phase in ["clone", "pivot"] {
        assert!(out.stderr.contains(phase), "no {phase:?} in: {}", out.stderr);
    }
    t.assert_clean(&t.id);
}

/// stdout as a pipe nobody reads any more (`xrun list | head` once head
/// has exited).
fn closed_pipe() -> std::process::Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two valid fds on success.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is ours and used nowhere else.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open fd we own from here on.
    std::process::Stdio::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) })
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let verbs: [&[&str]; 6] = [
        &["state", &id],
        &["list"],
        &["list", "-q"],
        &["ps", "--format", "json", &id],
        &["features"],
        &["--version"],
    ];
    for verb in verbs {
        let mut cmd = t.command(verb);
        cmd.stdout(closed_pipe()).stderr(std::process::Stdio::piped());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // runc dies of SIGPIPE; xrun stops writing and exits 0. Neither
        // may panic or print an error about it.
        let quiet = out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE);
        assert!(
            quiet && stderr.is_empty(),
            "{verb:?}: {:?}, stderr: {stderr}",
            out.status
        );
    }
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}
