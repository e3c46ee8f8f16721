//! The time namespace and linux.timeOffsets (runtime-spec 1.2; runc 1.1
//! knows neither, so these tests are xrun-only).

use crate::common::*;
use serde_json::{json, Value};

const MONOTONIC_OFFSET: i64 = 1_000_000;
const BOOTTIME_OFFSET: i64 = 2_000_000;

/// Whole seconds of a host clock.
fn host_clock(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    assert_eq!(unsafe { libc::clock_gettime(id, &mut ts) }, 0);
    ts.tv_sec
}

fn offsets() -> Value {
    json!({"monotonic": {"secs": MONOTONIC_OFFSET, "nanosecs": 0}, "boottime": {"secs": BOOTTIME_OFFSET}})
}

#[track_caller]
fn assert_shifted(seen: i64, before: i64, after: i64, offset: i64, what: &str) {
    assert!(
        seen >= before + offset && seen <= after + offset + 1,
        "{what} inside is {seen}, host was {before}..{after}, offset {offset}"
    );
}

#[test]
fn time_offsets_shift_the_clocks_inside() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", None);
    env.config["linux"]["timeOffsets"] = offsets();
    env.args(&["checker", "--clocks"]);
    let id = env.id.clone();
    let (mono0, boot0) = (host_clock(libc::CLOCK_MONOTONIC), host_clock(libc::CLOCK_BOOTTIME));
    let report = env.run_checker(&id);
    let (mono1, boot1) = (host_clock(libc::CLOCK_MONOTONIC), host_clock(libc::CLOCK_BOOTTIME));
    let clocks = &report.0["clocks"];
    assert_shifted(
        clocks["monotonic"].as_i64().unwrap(),
        mono0,
        mono1,
        MONOTONIC_OFFSET,
        "monotonic",
    );
    assert_shifted(
        clocks["boottime"].as_i64().unwrap(),
        boot0,
        boot1,
        BOOTTIME_OFFSET,
        "boottime",
    );
    // /proc/uptime follows the boot time of the reader's time namespace.
    let uptime: f64 = clocks["uptime"]
        .as_str()
        .and_then(|u| u.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("bad uptime {}", clocks["uptime"]));
    assert_shifted(uptime as i64, boot0, boot1, BOOTTIME_OFFSET, "/proc/uptime");
    assert_ne!(
        report.ns("time"),
        host_ns("time"),
        "the container shares the host's time namespace"
    );
    assert!(report.ns("time").starts_with("time:["), "{}", report.ns("time"));
    env.assert_clean(&id);
}

#[test]
fn new_time_namespace_without_offsets_keeps_the_host_clocks() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", None);
    env.args(&["checker", "--clocks"]);
    let id = env.id.clone();
    let mono0 = host_clock(libc::CLOCK_MONOTONIC);
    let report = env.run_checker(&id);
    let mono1 = host_clock(libc::CLOCK_MONOTONIC);
    assert_shifted(
        report.0["clocks"]["monotonic"].as_i64().unwrap(),
        mono0,
        mono1,
        0,
        "monotonic",
    );
    assert_ne!(report.ns("time"), host_ns("time"));
    env.assert_clean(&id);
}

#[test]
fn time_offsets_without_a_time_namespace_are_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    env.config["linux"]["timeOffsets"] = offsets();
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    out.assert_fails();
    assert!(
        out.stderr
            .contains("time namespace offsets specified, but time namespace isn't enabled"),
        "{}",
        out.stderr
    );
    env.assert_clean(&id);
}

#[test]
fn time_offsets_on_a_joined_time_namespace_are_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", Some("/proc/self/ns/time"));
    env.config["linux"]["timeOffsets"] = offsets();
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    out.assert_fails();
    assert!(
        out.stderr.contains("both namespace path and time offsets"),
        "{}",
        out.stderr
    );
    env.assert_clean(&id);
}

#[test]
fn an_unknown_clock_is_refused_by_name() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", None);
    env.config["linux"]["timeOffsets"] = json!({"realtime": {"secs": 5}});
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert!(
        msgs.iter().any(|m| m.contains("unknown clock \"realtime\"")),
        "{}",
        out.stderr
    );
    env.assert_clean(&id);
}

#[test]
fn time_offsets_with_a_new_user_namespace() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "user", None);
    set_namespace(&mut env.config, "time", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.config["linux"]["uidMappings"] = mapping.clone();
    env.config["linux"]["gidMappings"] = mapping;
    env.config["linux"]["timeOffsets"] = offsets();
    env.args(&["checker", "--clocks"]);
    let id = env.id.clone();
    let boot0 = host_clock(libc::CLOCK_BOOTTIME);
    let report = env.run_checker(&id);
    let boot1 = host_clock(libc::CLOCK_BOOTTIME);
    let boottime = report.0["clocks"]["boottime"].as_i64().unwrap();
    assert_shifted(boottime, boot0, boot1, BOOTTIME_OFFSET, "boottime");
    assert_ne!(report.ns("user"), host_ns("user"));
    env.assert_clean(&id);
}

#[test]
fn an_offset_the_kernel_refuses_fails_cleanly() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", None);
    // A monotonic clock would go far below zero: the kernel says no.
    env.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": -1_000_000_000_000i64}});
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    out.assert_fails();
    assert!(out.stderr.contains("time offsets"), "{}", out.stderr);
    env.assert_clean(&id);
    // Nothing of the failed attempt is left: the same id runs again, and
    // without offsets the new time namespace keeps the host's clock.
    env.config["linux"].as_object_mut().unwrap().remove("timeOffsets");
    env.args(&["checker", "--clocks"]);
    let mono0 = host_clock(libc::CLOCK_MONOTONIC);
    let report = env.run_checker(&id);
    let mono1 = host_clock(libc::CLOCK_MONOTONIC);
    assert_shifted(
        report.0["clocks"]["monotonic"].as_i64().unwrap(),
        mono0,
        mono1,
        0,
        "monotonic",
    );
    env.assert_clean(&id);
}

#[test]
fn exec_joins_the_offset_time_namespace() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "time", None);
    env.config["linux"]["timeOffsets"] = offsets();
    let id = env.id.clone();
    let created = env.start_sleeper(&id);
    let init = env.wait_checker(&created);
    let mono0 = host_clock(libc::CLOCK_MONOTONIC);
    let out = env.rt(&["exec", &id, "checker", "--clocks"]);
    out.assert_ok();
    let mono1 = host_clock(libc::CLOCK_MONOTONIC);
    let exec = out.checker();
    assert_eq!(exec.ns("time"), init.ns("time"));
    let mono = exec.0["clocks"]["monotonic"].as_i64().unwrap();
    assert_shifted(mono, mono0, mono1, MONOTONIC_OFFSET, "monotonic in exec");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}

// A new time namespace with offsets next to a joined user namespace and a
// new pid namespace (whose init is forked by the child): the init still
// lives in the offset time namespace.
#[test]
fn time_offsets_with_a_joined_user_namespace() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    set_namespace(&mut env.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.config["linux"]["uidMappings"] = mapping.clone();
    env.config["linux"]["gidMappings"] = mapping;
    let target = env.id.clone();
    env.start_sleeper(&target);
    let pid = env.state(&target).unwrap()["pid"].as_i64().unwrap();
    let linux = env.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    set_namespace(&mut env.config, "user", Some(&format!("/proc/{pid}/ns/user")));
    set_namespace(&mut env.config, "time", None);
    env.config["linux"]["timeOffsets"] = offsets();
    env.args(&["checker", "--clocks"]);
    let id = env.new_id("timens-joiner");
    let boot0 = host_clock(libc::CLOCK_BOOTTIME);
    let report = env.run_checker(&id);
    let boot1 = host_clock(libc::CLOCK_BOOTTIME);
    let boottime = report.0["clocks"]["boottime"].as_i64().unwrap();
    assert_shifted(boottime, boot0, boot1, BOOTTIME_OFFSET, "boottime");
    assert_eq!(report.int("pid"), 1);
    assert_ne!(report.ns("time"), host_ns("time"));
    env.rt(&["delete", "--force", &target]).assert_ok();
    env.assert_clean(&id);
    env.assert_clean(&target);
}
