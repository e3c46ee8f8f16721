//! A `create` killed (SIGKILL) at any point of its work: `state` and `list`
//! still answer, showing the container stopped (or created, if it got that
//! far), and `delete` removes everything create made: the state dir, the
//! cgroup in every hierarchy (nested parents included), the mounts a
//! container without a mount namespace makes in the host's, and the init.

use crate::cgroups::{absolute_dirs, RmdirGuard};
use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Kill points: 20 steps from 0, 2.5 ms apart (0 to 47.5 ms after `create`
/// is spawned), stretched to span a whole create when one takes longer
/// (a debug build on a loaded host).
const POINTS: u32 = 20;
const MIN_STEP: Duration = Duration::from_micros(2500);

/// What a killed create had left before `delete`.
#[derive(Debug, Default)]
struct Seen {
    /// Nothing at all (killed before the state dir existed).
    nothing: u32,
    /// A state dir without state.json.
    bare_dir: u32,
    /// A state.json of a container that is stopped (a failed create).
    stopped: u32,
    /// A finished create.
    created: u32,
    /// Cgroup directories existed.
    cgroups: u32,
    /// Mounts below the rootfs existed in the host's mount table.
    host_mounts: u32,
}

#[track_caller]
fn status_in_list(t: &TestEnv, id: &str) -> Option<String> {
    let out = t.rt(&["list", "--format", "json"]);
    out.assert_ok();
    let list: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("list JSON ({e}): {out:?}"));
    let entry = list.as_array()?.iter().find(|c| c["id"] == id)?;
    Some(entry["status"].as_str().unwrap_or("").to_string())
}

/// Kills `create` at each point, checks what `state`/`list` say, deletes
/// (plain `delete` for every other stopped one, as for a stopped
/// container) and asserts nothing is left.
/// The host's load varies, so a round whose points all missed the window
/// (every create finished, or none began) is run again with a new timing,
/// up to three rounds.
fn kill_create_at_every_point(t: &mut TestEnv, guard: &mut RmdirGuard, stem: &str) -> Seen {
    let mut seen = Seen::default();
    for round in 0..3 {
        kill_round(t, guard, &format!("{stem}{round}-"), &mut seen);
        if seen.stopped > 0 && seen.cgroups > 0 {
            break;
        }
    }
    seen
}

fn kill_round(t: &mut TestEnv, guard: &mut RmdirGuard, stem: &str, seen: &mut Seen) {
    let bundle = t.bundle.to_string_lossy().into_owned();
    let step = MIN_STEP.max(time_one_create(t, guard, stem) / (POINTS - 4));
    for k in 0..POINTS {
        let id = t.new_id(&format!("{stem}{k}"));
        // Nested, so the parent create made is checked too.
        let parent = format!("/xrun-it-{id}");
        let cg_path = format!("{parent}/ct");
        t.config["linux"]["cgroupsPath"] = json!(cg_path);
        t.write_config();
        let mut cg_dirs = absolute_dirs(&cg_path);
        cg_dirs.extend(absolute_dirs(&parent));
        guard.0.extend(cg_dirs.iter().cloned());

        let create = t.spawn(&["create", "--bundle", &bundle, &id]);
        std::thread::sleep(step * k);
        // SAFETY: kill(2) of the runtime process this test spawned.
        unsafe { libc::kill(create.pid() as i32, libc::SIGKILL) };
        create.wait_quietly(CMD_TIMEOUT);

        let state_dir = t.root.join(&id);
        let has_state = state_dir.join("state.json").exists();
        if cg_dirs.iter().any(|d| d.exists()) {
            seen.cgroups += 1;
        }
        let rootfs = t.rootfs.to_string_lossy().into_owned();
        if host_mounts().iter().any(|m| m.mount_point.starts_with(&rootfs)) {
            seen.host_mounts += 1;
        }
        let status = if has_state {
            // The orphaned init may still be between two steps (holding
            // the lock it inherited, or about to read EOF): it leaves at
            // once, and `creating` (or `created`) turns into `stopped`.
            let mut state = Value::Null;
            let mut in_list = None;
            poll_until(Duration::from_secs(3), || {
                state = t
                    .state(&id)
                    .unwrap_or_else(|| panic!("state {id} failed after create was killed"));
                in_list = status_in_list(t, &id);
                state["status"] != "creating" && in_list.as_deref() == state["status"].as_str()
            });
            let status = state["status"].as_str().unwrap_or("").to_string();
            assert!(
                status == "stopped" || status == "created",
                "killed create at {k}: state {state}"
            );
            if status == "stopped" {
                assert_eq!(state["pid"], 0, "{state}");
            }
            assert_eq!(state["id"], id.as_str(), "{state}");
            assert_eq!(in_list.as_deref(), Some(status.as_str()), "list disagrees with state");
            status
        } else {
            let in_list = status_in_list(t, &id);
            assert_eq!(in_list, None, "list shows {id} without its state.json");
            String::new()
        };
        match status.as_str() {
            "stopped" => seen.stopped += 1,
            "created" => seen.created += 1,
            _ if state_dir.exists() => seen.bare_dir += 1,
            _ => seen.nothing += 1,
        }

        let plain = status == "stopped" && k % 2 == 1;
        let verb: &[&str] = if plain { &["delete"] } else { &["delete", "--force"] };
        let mut args = verb.to_vec();
        args.push(&id);
        t.rt(&args).assert_ok();

        let left: Vec<&PathBuf> = cg_dirs.iter().filter(|d| d.exists()).collect();
        assert!(
            left.is_empty(),
            "create killed at point {k} ({status:?}): cgroups left: {left:?}"
        );
        t.assert_clean(&id);
    }
    eprintln!("{stem}: {seen:?} (step {step:?})");
}

/// How long one whole `create` takes here (then deleted).
fn time_one_create(t: &mut TestEnv, guard: &mut RmdirGuard, stem: &str) -> Duration {
    let id = t.new_id(&format!("{stem}probe"));
    let cg_path = format!("/xrun-it-{id}");
    guard.0.extend(absolute_dirs(&cg_path));
    t.config["linux"]["cgroupsPath"] = json!(cg_path);
    let out = t.create(&id, &[]);
    out.assert_ok();
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
    out.elapsed
}

#[track_caller]
fn assert_some_were_half_made(seen: &Seen) {
    // Otherwise every kill missed the window this test is about.
    assert!(
        seen.stopped > 0 && seen.cgroups > 0,
        "no create was caught half-way: {seen:?}"
    );
}

// xrun-only: runc leaks the cgroups of a create killed midway.
#[test]
fn create_killed_at_any_point_leaves_nothing_after_delete() {
    if xrun_only() {
        return;
    }
    // Declared first: dropped after the TestEnv deleted its containers.
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["checker", "--sleep", "60"]);
    let seen = kill_create_at_every_point(&mut t, &mut guard, "k");
    assert_some_were_half_made(&seen);
}

// xrun-only: as above; without a mount namespace the container's mounts
// are made in the runtime's (the host's) mount namespace.
#[test]
fn create_killed_without_mount_namespace_leaves_no_host_mounts() {
    if xrun_only() {
        return;
    }
    let mut guard = RmdirGuard::default();
    let Some(mut t) = TestEnv::new() else { return };
    remove_namespace(&mut t.config, "mount");
    t.args(&["checker", "--sleep", "60"]);
    let seen = kill_create_at_every_point(&mut t, &mut guard, "m");
    assert_some_were_half_made(&seen);
    assert!(seen.host_mounts > 0, "no create got as far as mounting: {seen:?}");
}

// The narrowest window: create made the state dir and died before writing
// state.json into it.
#[test]
fn a_state_dir_without_state_json_is_not_listed_and_delete_force_removes_it() {
    let Some(t) = TestEnv::new() else { return };
    let id = t.id.clone();
    std::fs::create_dir_all(t.root.join(&id)).unwrap();
    let quiet = t.rt(&["list", "-q"]);
    quiet.assert_ok();
    assert!(!quiet.stdout.lines().any(|l| l == id), "{quiet:?}");
    assert_eq!(status_in_list(&t, &id), None);
    let state = t.rt(&["state", &id]);
    state.assert_fails();
    assert!(state.stderr.contains("does not exist"), "{state:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}
