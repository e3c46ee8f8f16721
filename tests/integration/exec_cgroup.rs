//! `exec --cgroup`: the exec'd process runs in an existing sub-cgroup of the
//! container's (v1: per controller; v2: one path), as its own
//! /proc/self/cgroup shows; paths that climb out, unknown controllers and
//! missing sub-cgroups are refused in runc's words with no process left in
//! the container's cgroup. On v2 an exec without --cgroup follows the init
//! into a sub-cgroup once the container's cgroup delegates a controller.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::cgroups::RmdirGuard;
use crate::common::*;

fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A container with an absolute cgroupsPath unique to the test, running.
fn running(t: &mut TestEnv, guard: &mut RmdirGuard, stem: &str) -> (String, String) {
    let cg = format!("/xrun-it-{stem}-{}", std::process::id());
    t.config["linux"]["cgroupsPath"] = json!(cg);
    // A pids limit makes the pids controller available to the container's
    // cgroup on v2.
    t.config["linux"]["resources"] = json!({"pids": {"limit": 100}});
    let id = t.id.clone();
    t.start_sleeper(&id);
    guard.0.push(host_dir(&cg));
    (id, cg)
}

/// The container's directory in the pids hierarchy (v1) or the cgroup2 one.
fn host_dir(cg: &str) -> PathBuf {
    let mount = if unified() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/pids"
    };
    Path::new(mount).join(cg.trim_start_matches('/'))
}

#[track_caller]
fn make_sub(guard: &mut RmdirGuard, cg: &str, name: &str) -> PathBuf {
    let dir = host_dir(cg).join(name);
    fs::create_dir(&dir).unwrap();
    guard.0.push(dir.clone());
    dir
}

/// `exec [flags] ID cat /proc/self/cgroup`, its lines.
#[track_caller]
fn exec_cgroups(t: &TestEnv, id: &str, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "cat", "/proc/self/cgroup"]);
    let out = t.rt(&args);
    out.assert_ok();
    out.stdout.lines().map(String::from).collect()
}

/// Host pids in a cgroup directory.
fn procs(dir: &Path) -> Vec<i32> {
    let text = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[track_caller]
fn assert_refused(t: &TestEnv, id: &str, flags: &[&str], needles: &[&str]) {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "true"]);
    let out = t.rt(&args);
    out.assert_fails();
    let msgs = out.error_msgs().join("\n");
    for n in needles {
        assert!(msgs.contains(n), "exec {flags:?}: error {msgs:?} lacks {n:?}");
    }
}

#[test]
fn v1_per_controller_sub_cgroup_moves_only_that_hierarchy() {
    if unified() {
        return skip("cgroup v1 host needed");
    }
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let (id, cg) = running(&mut t, &mut guard, "execcg-v1");
    let sub = make_sub(&mut guard, &cg, "sub");
    let plain = exec_cgroups(&t, &id, &[]);
    let moved = exec_cgroups(&t, &id, &["--cgroup", "pids:sub"]);
    assert_eq!(plain.len(), moved.len());
    for (p, m) in plain.iter().zip(&moved) {
        let controllers = p.split(':').nth(1).unwrap_or("");
        if controllers.split(',').any(|c| c == "pids") {
            assert!(p.ends_with(&format!(":{cg}")), "{p}");
            assert!(m.ends_with(&format!(":{cg}/sub")), "pids not in the sub-cgroup: {m}");
        } else {
            assert_eq!(p, m, "another hierarchy moved");
        }
    }
    // "/" is the container's own cgroup, in every hierarchy.
    assert_eq!(exec_cgroups(&t, &id, &["--cgroup", "/"]), plain);
    assert!(procs(&sub).is_empty(), "exec'd process left in the sub-cgroup");
    fs::remove_dir(&sub).unwrap();
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn v2_sub_cgroup_path() {
    if !unified() {
        return skip("cgroup v2 host needed");
    }
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let (id, cg) = running(&mut t, &mut guard, "execcg-v2");
    let sub = make_sub(&mut guard, &cg, "sub");
    assert_eq!(exec_cgroups(&t, &id, &[]), [format!("0::{cg}")]);
    assert_eq!(exec_cgroups(&t, &id, &["--cgroup", "sub"]), [format!("0::{cg}/sub")]);
    assert_eq!(exec_cgroups(&t, &id, &["--cgroup", "/"]), [format!("0::{cg}")]);
    assert!(procs(&sub).is_empty(), "exec'd process left in the sub-cgroup");
    fs::remove_dir(&sub).unwrap();
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn bad_paths_unknown_controllers_and_missing_sub_cgroups_are_refused() {
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let (id, cg) = running(&mut t, &mut guard, "execcg-bad");
    let init = t.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    assert_refused(&t, &id, &["--cgroup", ".."], &["bad sub cgroup path: .."]);
    assert_refused(&t, &id, &["--cgroup", "a/../../x"], &["bad sub cgroup path"]);
    if unified() {
        assert_refused(
            &t,
            &id,
            &["--cgroup", "nonexistent"],
            &[" cgroup", "o such file or directory"],
        );
    } else {
        assert_refused(
            &t,
            &id,
            &["--cgroup", "nonexistent"],
            &[" adding pid ", "o such file or directory"],
        );
        assert_refused(
            &t,
            &id,
            &["--cgroup", "pids:nonexistent"],
            &[" adding pid ", "o such file or directory"],
        );
        assert_refused(&t, &id, &["--cgroup", "whaaat:/"], &["unknown controller whaaat"]);
        assert_refused(
            &t,
            &id,
            &["--cgroup", "pids:a", "--cgroup", "pids:b"],
            &["controller pids specified multiple times"],
        );
    }
    // Nothing of the refused execs stayed, and the container runs on.
    assert_eq!(procs(&host_dir(&cg)), [init]);
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn v2_exec_follows_the_init_when_the_container_cgroup_delegates() {
    if !unified() {
        return skip("cgroup v2 host needed");
    }
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let (id, cg) = running(&mut t, &mut guard, "execcg-fallback");
    let init = t.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    let dir = host_dir(&cg);
    let sub = make_sub(&mut guard, &cg, "moved");
    fs::write(sub.join("cgroup.procs"), init.to_string()).unwrap();
    // With a controller delegated, the container's cgroup takes no process.
    fs::write(dir.join("cgroup.subtree_control"), "+pids").unwrap();
    assert_eq!(exec_cgroups(&t, &id, &[]), [format!("0::{cg}/moved")]);
    // --cgroup / asks for exactly the container's cgroup: no fallback.
    assert_refused(
        &t,
        &id,
        &["--cgroup", "/"],
        &[" adding pid ", " to cgroups", "evice or resource busy"],
    );
    assert_eq!(procs(&sub), [init]);
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn v2_exec_follows_an_init_that_left_the_container_cgroup() {
    if !unified() {
        return skip("cgroup v2 host needed");
    }
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    let (id, cg) = running(&mut t, &mut guard, "execcg-left");
    let init = t.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    // The init moves itself elsewhere and its cgroup goes (runc #5089).
    let elsewhere = format!("{cg}-elsewhere");
    let other = host_dir(&elsewhere);
    fs::create_dir(&other).unwrap();
    guard.0.push(other.clone());
    fs::write(other.join("cgroup.procs"), init.to_string()).unwrap();
    fs::remove_dir(host_dir(&cg)).unwrap();
    assert_eq!(exec_cgroups(&t, &id, &[]), [format!("0::{elsewhere}")]);
    // A sub-cgroup asked for is never replaced by the init's.
    assert_refused(
        &t,
        &id,
        &["--cgroup", "/"],
        &["can't open cgroup", "o such file or directory"],
    );
    t.rt(&["delete", "--force", &id]).assert_ok();
}
