//! `xrun check` on the real host (and, in the VM stage, on pure cgroup v2):
//! every line is "verdict topic detail[; fix: ...]", the topics come in
//! order, what it says of cgroups matches the host, and the exit status is
//! 0 exactly when nothing a default container needs is missing.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::*;

const TOPICS: [&str; 12] = [
    "state root",
    "namespaces",
    "clone3, pidfd",
    "cgroups",
    "systemd",
    "user namespaces",
    "subordinate ids",
    "newuidmap",
    "idmapped mounts",
    "seccomp",
    "LSM",
    "time namespace",
];

/// `xrun [--root ROOT] check` as `uid`; (exit code, lines).
fn check(root: Option<&str>, uid: u32) -> (i32, Vec<String>) {
    let mut cmd = Command::new(runtime_bin());
    if let Some(root) = root {
        cmd.args(["--root", root]);
    }
    cmd.arg("check").uid(uid).gid(uid);
    let out = cmd.output().expect("running xrun check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        stdout.lines().map(str::to_string).collect(),
    )
}

/// (verdict, topic, rest) of one line, asserting its shape.
fn parse(line: &str) -> (&str, &str, &str) {
    let verdict = line.split(' ').next().unwrap();
    assert!(["ok", "no", "FAIL"].contains(&verdict), "verdict of {line:?}");
    let after = &line[5..];
    let topic = TOPICS
        .iter()
        .find(|t| after.starts_with(*t))
        .unwrap_or_else(|| panic!("no known topic in {line:?}"));
    let rest = after[18..].trim_end();
    assert!(!rest.is_empty(), "no detail in {line:?}");
    if verdict != "ok" && !rest.contains("; fix: ") {
        // Every shortfall comes with what to do about it.
        panic!("no fix in {line:?}");
    }
    (verdict, topic, rest)
}

#[test]
fn check_describes_this_host_and_passes_as_root() {
    if xrun_only() || !is_root() {
        return;
    }
    let (code, lines) = check(None, 0);
    let parsed: Vec<_> = lines.iter().map(|l| parse(l)).collect();
    let topics: Vec<&str> = parsed.iter().map(|p| p.1).collect();
    assert_eq!(topics, TOPICS, "{lines:#?}");
    assert_eq!(code, 0, "{lines:#?}");
    let verdict = |topic: &str| parsed.iter().find(|p| p.1 == topic).unwrap().0;
    for needed in ["state root", "namespaces", "clone3, pidfd", "cgroups"] {
        assert_eq!(verdict(needed), "ok", "{lines:#?}");
    }
    // What it says of cgroups is what the host has.
    let cgroups = parsed.iter().find(|p| p.1 == "cgroups").unwrap().2;
    let unified = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "));
    if unified {
        let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
        assert_eq!(
            cgroups,
            format!("v2 (unified) at /sys/fs/cgroup, controllers: {}", controllers.trim())
        );
    } else {
        assert!(cgroups.starts_with("v1 controllers: "), "{cgroups}");
        assert!(cgroups.contains(" memory"), "{cgroups}");
    }
    let time_ns = std::path::Path::new("/proc/self/ns/time").exists();
    assert_eq!(verdict("time namespace"), if time_ns { "ok" } else { "no" });
}

#[test]
fn check_fails_when_the_state_root_cannot_be_made() {
    if xrun_only() || !is_root() {
        return;
    }
    let (code, lines) = check(Some("/etc/passwd/xrun"), 0);
    assert_eq!(code, 1, "{lines:#?}");
    assert_eq!(
        lines[0],
        "FAIL state root        /etc/passwd/xrun cannot be made: /etc/passwd is not a directory; \
         fix: pass --root DIR naming a writable directory (a tmpfs, e.g. under /run)"
    );
    // Everything else is still reported.
    assert_eq!(lines.len(), TOPICS.len());
}

#[test]
fn check_as_a_user_names_the_unwritable_root() {
    if xrun_only() || !is_root() {
        return;
    }
    // Below /tmp, which any user can walk through (the test dir may not be).
    let dir = std::env::temp_dir().join(format!("xrun-check-root-only-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let state = dir.join("state");
    let (code, lines) = check(Some(state.to_str().unwrap()), 65534);
    assert_eq!(code, 1, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            "FAIL state root        {} is not writable by uid 65534: permission denied; \
             fix: set XDG_RUNTIME_DIR to a directory you own (xrun then keeps its state in $XDG_RUNTIME_DIR/xrun), or pass --root DIR",
            dir.display()
        )
    );
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
