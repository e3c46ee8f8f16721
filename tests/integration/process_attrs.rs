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

/// The CPUs this test may use (`Cpus_allowed_list`): what "every CPU"
/// means for a process the runtime started on its behalf.
fn own_cpus() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// Needs two CPUs to tell a reset mask from an inherited one.
fn two_cpus() -> bool {
    if cpus() < 2 || own_cpus() == "0" {
        skip("needs two CPUs");
        return false;
    }
    true
}

/// The runtime with `args`, started as `taskset -c 0` would.
fn on_cpu0(t: &TestEnv, args: &[&str]) -> CmdOutput {
    use std::os::unix::process::CommandExt;
    let mut cmd = t.command(args);
    // SAFETY: the closure only calls sched_setaffinity, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    t.exec(cmd)
}

/// `exec <id> checker` (with `extra` flags); the process' CPU list.
fn exec_cpus(t: &TestEnv, id: &str, extra: &[&str]) -> String {
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[id, "checker"]);
    let out = t.rt(&args);
    out.assert_ok();
    out.checker().status("Cpus_allowed_list").to_string()
}

fn set_cpuset(t: &mut TestEnv, cpus: &str) {
    t.config["linux"]["resources"] = json!({"cpu": {"cpus": cpus, "mems": "0"}});
}

#[test]
fn run_resets_the_callers_cpu_affinity() {
    // runc >= 1.3: the container does not inherit `taskset -c 0 runc run`.
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(t) = TestEnv::new() else { return };
    t.write_config();
    let out = on_cpu0(&t, &["run", "--bundle", s(&t.bundle), &t.id]);
    out.assert_ok();
    assert_eq!(out.checker().status("Cpus_allowed_list"), own_cpus());
    t.assert_clean(&t.id);
}

#[test]
fn run_resets_cpu_affinity_to_the_cpuset() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    // Overlapping the caller's CPU 0, then not at all.
    for cpus in ["0-1", "1"] {
        set_cpuset(&mut t, cpus);
        t.write_config();
        let out = on_cpu0(&t, &["run", "--bundle", s(&t.bundle), &t.id]);
        out.assert_ok();
        assert_eq!(out.checker().status("Cpus_allowed_list"), cpus, "cpuset {cpus}");
        t.assert_clean(&t.id);
    }
}

#[test]
fn exec_resets_the_callers_cpu_affinity() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let out = on_cpu0(&t, &["exec", &id, "checker"]);
    out.assert_ok();
    assert_eq!(out.checker().status("Cpus_allowed_list"), own_cpus());
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_resets_cpu_affinity_to_the_cpuset() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    for cpus in ["0-1", "1"] {
        let id = t.new_id("cpuset");
        set_cpuset(&mut t, cpus);
        t.start_sleeper(&id);
        let out = on_cpu0(&t, &["exec", &id, "checker"]);
        out.assert_ok();
        assert_eq!(out.checker().status("Cpus_allowed_list"), cpus, "cpuset {cpus}");
        t.rt(&["delete", "--force", &id]).assert_ok();
        t.assert_clean(&id);
    }
}

#[test]
fn exec_cpu_affinity_is_not_for_the_init() {
    // runtime spec: "not applicable to the container's init process".
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "1"});
    let report = t.run_checker(&t.id);
    assert_eq!(report.status("Cpus_allowed_list"), own_cpus());
}

#[test]
fn exec_cpu_affinity_final() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"final": "0"});
    let id = t.id.clone();
    t.start_sleeper(&id);
    assert_eq!(exec_cpus(&t, &id, &[]), "0");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_cpu_affinity_initial_stays_without_final() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1"});
    let id = t.id.clone();
    t.start_sleeper(&id);
    assert_eq!(exec_cpus(&t, &id, &[]), "1");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_cpu_affinity_final_overrides_initial() {
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    let id = t.id.clone();
    t.start_sleeper(&id);
    assert_eq!(exec_cpus(&t, &id, &[]), "0");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn exec_process_file_without_cpu_affinity_takes_the_configs() {
    // runc: the container's execCPUAffinity unless the process sets one.
    if xrun_only() || !two_cpus() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["process"]["execCPUAffinity"] = json!({"final": "1"});
    let id = t.id.clone();
    t.start_sleeper(&id);
    let mut process = json!({"user": {"uid": 0, "gid": 0}, "args": ["checker"], "cwd": "/"});
    let file = t.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    assert_eq!(exec_cpus(&t, &id, &["--process", s(&file)]), "1");
    process["execCPUAffinity"] = json!({"final": "0"});
    std::fs::write(&file, process.to_string()).unwrap();
    assert_eq!(exec_cpus(&t, &id, &["--process", s(&file)]), "0");
    t.rt(&["delete", "--force", &id]).assert_ok();
}

#[test]
fn scheduler_flags_in_the_spec_spelling_for_run_and_exec() {
    // The runtime spec names the flag SCHED_FLAG_RESET_ON_FORK (oci-spec
    // knows it as SCHED_RESET_ON_FORK); runc takes it in config.json and in
    // an exec --process file.
    if xrun_only() {
        return;
    }
    const RESET_ON_FORK: i64 = 1;
    let Some(mut t) = TestEnv::new() else { return };
    let scheduler = json!({"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    t.config["process"]["scheduler"] = scheduler.clone();
    let (_, sched) = sched_report(&mut t);
    assert_eq!(
        (sched["policy"].as_i64(), sched["flags"].as_i64()),
        (Some(3), Some(RESET_ON_FORK)),
        "{sched}"
    );

    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let process = json!({"user": {"uid": 0, "gid": 0}, "args": ["checker", "--sched"], "cwd": "/",
        "env": t.config["process"]["env"].clone(),
        "scheduler": {"policy": "SCHED_IDLE", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}});
    let file = t.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = t.rt(&["exec", "--process", s(&file), &id]);
    out.assert_ok();
    let sched = out.checker().0["sched"].clone();
    assert_eq!(
        (sched["policy"].as_i64(), sched["flags"].as_i64()),
        (Some(5), Some(RESET_ON_FORK)),
        "{sched}"
    );
    t.rt(&["delete", "--force", &id]).assert_ok();
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
fn absent_cpu_fails_the_exec_cleanly_in_one_line() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let process = json!({"user": {"uid": 0, "gid": 0}, "args": ["checker"], "cwd": "/",
                         "execCPUAffinity": {"initial": "1000"}});
    let file = t.dir.join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = t.rt(&["exec", "--process", s(&file), &id]);
    out.assert_fails();
    assert_eq!(out.stderr.trim().lines().count(), 1, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("cpu affinity"), "stderr: {}", out.stderr);
    assert_eq!(t.status(&id), "running");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
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
