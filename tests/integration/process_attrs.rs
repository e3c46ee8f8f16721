//! Process attributes of runtime-spec 1.2: process.scheduler,
//! process.ioPriority, process.execCPUAffinity and linux.personality.
//! runc 1.1 has none of them, so every test here is xrun-only.

use crate::common::*;
use serde_json::{json, Value};

/// Runs the checker with `--sched` and returns its "sched" object.
fn sched_report(t: &mut TestEnv) -> (Checker, Value) {
    t.args(&["checker", "--sched"]);
    let report = t.run_checker(&t.id);
    let sched = report.0["sched"].clone();
    assert!(sched.is_object(), "no sched report: {:?}", report.0);
    (report, sched)
}

/// Asserts `create` fails with a one-line error mentioning `needle` and
/// leaves nothing behind.
#[track_caller]
fn assert_refused(t: &TestEnv, needle: &str) {
    let out = t.create(&t.id, &[]);
    out.assert_fails();
    assert_eq!(out.stderr.trim().lines().count(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains(needle), "stderr: {}", out.stderr);
    t.assert_clean(&t.id);
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[test]
fn scheduler_batch_with_nice() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    let (_, sched) = sched_report(&mut t);
    assert_eq!(sched["policy"], 3, "{sched}");
    assert_eq!(sched["nice"], 5, "{sched}");
    assert_eq!(sched["priority"], 0, "{sched}");
}

#[test]
fn scheduler_idle_without_no_new_privileges() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["noNewPrivileges"] = json!(false);
    t.config["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"});
    let (_, sched) = sched_report(&mut t);
    assert_eq!(sched["policy"], 5, "{sched}");
}

#[test]
fn bad_scheduler_is_refused_before_create() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 40});
    assert_refused(&t, "process.scheduler");
}

#[test]
fn io_priority_best_effort() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let (_, sched) = sched_report(&mut t);
    assert_eq!(sched["ioprio"], (2 << 13) | 6, "{sched}");
}

#[test]
fn io_priority_out_of_range_is_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    assert_refused(&t, "process.ioPriority");
}

#[test]
fn exec_cpu_affinity_final() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"final": "0"});
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Cpus_allowed_list"), "0");
}

#[test]
fn exec_cpu_affinity_initial_stays_without_final() {
    if xrun_only() {
        return;
    }
    if cpus() < 2 {
        skip("needs two CPUs");
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1"});
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Cpus_allowed_list"), "1");
}

#[test]
fn exec_cpu_affinity_final_overrides_initial() {
    if xrun_only() {
        return;
    }
    if cpus() < 2 {
        skip("needs two CPUs");
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Cpus_allowed_list"), "0");
}

#[test]
fn malformed_cpu_list_is_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"final": "x"});
    assert_refused(&t, "execCPUAffinity");
}

#[test]
fn absent_cpu_fails_cleanly_in_one_line() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1000"});
    assert_refused(&t, "cpu affinity");
}

#[test]
fn personality_linux32() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let (_, sched) = sched_report(&mut t);
    assert_eq!(sched["personality"], 8, "{sched}");
}

#[test]
fn personality_is_set_before_a_filter_that_denies_it() {
    if xrun_only() {
        return;
    }
    for nnp in [true, false] {
        let Some(mut t) = TestEnv::new() else { return };
        t.config["process"]["noNewPrivileges"] = json!(nnp);
        t.config["linux"]["personality"] = json!({"domain": "LINUX32"});
        t.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        t.args(&["checker", "--sched"]);
        let report = t.run_checker(&t.id);
        // The filter denies the checker's own query, which proves it was
        // loaded; the persona itself was set before it.
        assert_eq!(
            report.0["sched"]["personality"], -1,
            "nnp {nnp}: {:?}",
            report.0["sched"]
        );
        drop(t);
    }
}

#[test]
fn personality_flags_are_refused() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    assert_refused(&t, "linux.personality");
}
