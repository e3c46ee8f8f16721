//! The systemd cgroup driver (`--systemd-cgroup`): a cgroupsPath
//! `slice:prefix:name` becomes the transient scope unit `prefix-name.scope`
//! in that slice. The tests assert what systemd reports for the unit
//! (`systemctl show`), the files of its cgroup, and what the container sees,
//! through the whole lifecycle; they were validated against runc 1.4.2.
//!
//! They need systemd as PID 1 on cgroup v2 and are skipped elsewhere: they
//! run in the systemd VM stage (tests/vm/run-in-systemd-vm.sh). Each test
//! names its units after its own container ids and fails if one of them is
//! still loaded when it ends (after stopping it).

use crate::common::*;
use crate::rootless::{is_runc, Rootless};
use serde_json::{json, Value};
use std::fs;
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The prefix part of every cgroupsPath these tests use.
const PREFIX: &str = "xrun-test";

// ---------------------------------------------------------------------------
// systemctl

/// `systemctl show -p ... UNIT`: the properties in systemd's order, a
/// property that is a list (DeviceAllow) once per entry.
struct Props(Vec<(String, String)>);

impl Props {
    #[track_caller]
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("systemctl show has no {name}: {:?}", self.0))
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn systemctl(args: &[&str]) -> std::process::Output {
    Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running systemctl")
}

impl Props {
    #[track_caller]
    fn parse(unit: &str, out: std::process::Output) -> Props {
        assert!(out.status.success(), "systemctl show {unit}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        Props(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Whether `systemctl show -p LoadState` output says loaded (no panic:
/// used from Drop).
fn says_loaded(out: &std::process::Output) -> bool {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "LoadState=loaded")
}

#[track_caller]
fn show(unit: &str, props: &[&str]) -> Props {
    Props::parse(unit, systemctl(&["show", "-p", &props.join(","), unit]))
}

fn load_state(unit: &str) -> String {
    show(unit, &["LoadState"]).get("LoadState").to_string()
}

/// A transient scope that stopped is garbage-collected: systemd no longer
/// knows it. Allows systemd a moment to collect it.
#[track_caller]
fn assert_unit_gone(unit: &str) {
    poll_until(Duration::from_secs(10), || load_state(unit) == "not-found");
    let p = show(unit, &["LoadState", "ActiveState"]);
    assert_eq!(
        (p.get("LoadState"), p.get("ActiveState")),
        ("not-found", "inactive"),
        "unit {unit} is still known to systemd"
    );
}

// ---------------------------------------------------------------------------
// cgroup files

fn cgroup_dir(control_group: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(control_group.trim_start_matches('/'))
}

#[track_caller]
fn read_cg(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[track_caller]
fn assert_dir_gone(dir: &Path) {
    let gone = poll_until(Duration::from_secs(5), || !dir.exists());
    assert!(gone, "cgroup {} left behind", dir.display());
}

fn proc_cgroup(pid: i64) -> String {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn cgroup_procs(dir: &Path) -> Vec<i64> {
    let text = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

// ---------------------------------------------------------------------------
// The test environment

/// A TestEnv for the systemd driver. Dropping it deletes the containers
/// (TestEnv's Drop) first, then stops any unit of the test that systemd
/// still has loaded and fails the test for it.
struct Sd {
    t: Option<TestEnv>,
    /// Scope units that must be gone when the test ends.
    units: Vec<String>,
    /// Units the test makes on the way (slices): stopped at the end.
    slices: Vec<String>,
}

impl Deref for Sd {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        self.t.as_ref().unwrap()
    }
}

impl DerefMut for Sd {
    fn deref_mut(&mut self) -> &mut TestEnv {
        self.t.as_mut().unwrap()
    }
}

impl Drop for Sd {
    fn drop(&mut self) {
        drop(self.t.take());
        let left: Vec<String> = self
            .units
            .iter()
            .filter(|u| says_loaded(&systemctl(&["show", "-p", "LoadState", u])))
            .cloned()
            .collect();
        for unit in left.iter().chain(&self.slices) {
            systemctl(&["stop", unit]);
            systemctl(&["reset-failed", unit]);
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!("units still loaded at the end of the test (now stopped): {left:?}");
        }
    }
}

/// Whether systemd is PID 1 on cgroup v2 (else reports the skip).
fn systemd_v2_host() -> bool {
    if !Path::new("/run/systemd/system").is_dir() {
        skip("systemd is not PID 1 (no /run/systemd/system): runs in the systemd VM stage");
        return false;
    }
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        skip("needs cgroup v2 at /sys/fs/cgroup");
        return false;
    }
    true
}

/// Whether systemd is PID 1 on its hybrid layout: v1 controllers under
/// /sys/fs/cgroup and its own cgroup2 at /sys/fs/cgroup/unified (else
/// reports the skip). The systemd stage boots such a guest too
/// (XRUN_VM_CGROUP=hybrid).
fn systemd_hybrid_host() -> bool {
    if !Path::new("/run/systemd/system").is_dir() {
        skip("systemd is not PID 1 (no /run/systemd/system): runs in the systemd VM stage");
        return false;
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() || !Path::new("/sys/fs/cgroup/memory").is_dir() {
        skip("needs systemd's hybrid cgroup layout");
        return false;
    }
    true
}

impl Sd {
    /// None (skipped) unless systemd is PID 1 on a cgroup v2 host.
    fn new() -> Option<Sd> {
        if !systemd_v2_host() {
            return None;
        }
        Self::any_layout()
    }

    fn any_layout() -> Option<Sd> {
        Some(Sd {
            t: Some(TestEnv::new()?),
            units: Vec::new(),
            slices: Vec::new(),
        })
    }

    /// Sets linux.cgroupsPath to `slice:xrun-test:<id>` and returns the
    /// scope unit's name, registered for the end-of-test check.
    fn use_scope(&mut self, slice: &str, id: &str) -> String {
        self.config["linux"]["cgroupsPath"] = json!(format!("{slice}:{PREFIX}:{id}"));
        self.expect_unit(&format!("{PREFIX}-{id}.scope"))
    }

    fn expect_unit(&mut self, unit: &str) -> String {
        self.units.push(unit.to_string());
        unit.to_string()
    }

    /// The runtime with `--systemd-cgroup` before the verb.
    #[track_caller]
    fn sd(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["--systemd-cgroup"];
        all.extend_from_slice(args);
        self.rt(&all)
    }

    /// Writes config.json and runs `--systemd-cgroup VERB --bundle B ID`.
    #[track_caller]
    fn sd_bundle(&self, verb: &str, id: &str) -> CmdOutput {
        self.write_config();
        self.sd(&[verb, "--bundle", s(&self.bundle), id])
    }

    /// create + start of `args`; returns the create output (the
    /// container's stdout).
    #[track_caller]
    fn sd_start(&mut self, id: &str, args: &[&str]) -> CmdOutput {
        self.args(args);
        let created = self.sd_bundle("create", id);
        created.assert_ok();
        self.sd(&["start", id]).assert_ok();
        self.wait_status(id, "running");
        created
    }

    #[track_caller]
    fn init_pid(&self, id: &str) -> i64 {
        let state = self.state(id).unwrap_or_else(|| panic!("no state for {id}"));
        state["pid"].as_i64().unwrap()
    }

    /// A refused create: it fails with an error naming `needle`, and leaves
    /// no state, process, mount, unit or cgroup behind.
    #[track_caller]
    fn assert_create_fails_cleanly(&self, id: &str, unit: &str, needle: &str) {
        let out = self.sd_bundle("create", id);
        out.assert_fails();
        let errors = out.error_msgs();
        assert_eq!(errors.len(), 1, "expected one error line: {}", out.stderr);
        assert!(
            errors[0].contains(needle),
            "error does not say {needle:?}: {}",
            errors[0]
        );
        assert!(self.state(id).is_none(), "state of {id} exists after a failed create");
        self.assert_clean(id);
        assert_unit_gone(unit);
        assert_dir_gone(&cgroup_dir(&format!("system.slice/{unit}")));
    }
}

/// A cgroup namespace and the cgroup mount at /sys/fs/cgroup.
fn add_cgroup_ns_and_mount(config: &mut Value) {
    set_namespace(config, "cgroup", None);
    let m = mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", "ro"],
    );
    config["mounts"].as_array_mut().unwrap().push(m);
}

/// Polls the container's stdout until it holds `marker`.
#[track_caller]
fn wait_output(out: &CmdOutput, marker: &str) -> String {
    let mut text = String::new();
    poll_until(Duration::from_secs(20), || {
        text = out.current_stdout();
        text.contains(marker)
    });
    assert!(
        text.contains(marker),
        "no {marker:?} in the container's output: {text:?}"
    );
    text
}

// ---------------------------------------------------------------------------
// The unit and its resources

/// runc's conversions: shares 512 -> CPUWeight 59 (its quadratic fit of
/// [2, 262144] onto [1, 10000] through 1024 -> 100); quota 12345 per 50 ms
/// is 246.9 ms per second, rounded up to systemd's 10 ms steps (250 ms),
/// and cpu.max is written with the rounded quota (12500); MemorySwapMax is
/// memory.swap minus memory; blockIO weight 300 is not a unit property but
/// io.bfq.weight 300, or io.weight 1 + (300 - 10) * 9999 / 990 = 2930.
#[test]
fn scope_unit_has_the_resources_and_the_container_sees_its_cgroup() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.config["linux"]["resources"] = json!({
        "memory": {"limit": 134217728, "reservation": 67108864, "swap": 201326592},
        "cpu": {"shares": 512, "quota": 12345, "period": 50000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 77},
        "blockIO": {"weight": 300}
    });
    add_cgroup_ns_and_mount(&mut t.config);
    let created = t.sd_start(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup /sys/fs/cgroup/memory.max; echo END; exec sleep 60",
        ],
    );

    let p = show(
        &unit,
        &[
            "LoadState",
            "ActiveState",
            "Delegate",
            "Slice",
            "ControlGroup",
            "MemoryMax",
            "MemoryLow",
            "MemorySwapMax",
            "CPUWeight",
            "CPUQuotaPerSecUSec",
            "CPUQuotaPeriodUSec",
            "TasksMax",
            "AllowedCPUs",
            "AllowedMemoryNodes",
            "IOWeight",
            "DefaultDependencies",
            "DevicePolicy",
        ],
    );
    let control_group = format!("/system.slice/{unit}");
    let expected = [
        ("LoadState", "loaded"),
        ("ActiveState", "active"),
        ("Delegate", "yes"),
        ("Slice", "system.slice"),
        ("ControlGroup", control_group.as_str()),
        ("MemoryMax", "134217728"),
        ("MemoryLow", "67108864"),
        ("MemorySwapMax", "67108864"),
        ("CPUWeight", "59"),
        ("CPUQuotaPerSecUSec", "250ms"),
        ("CPUQuotaPeriodUSec", "50ms"),
        ("TasksMax", "77"),
        ("AllowedCPUs", "0"),
        ("AllowedMemoryNodes", "0"),
        ("DefaultDependencies", "no"),
        ("DevicePolicy", "strict"),
    ];
    for (name, value) in expected {
        assert_eq!(p.get(name), value, "{unit}: {name}");
    }
    // runc leaves IOWeight unset and writes the weight to the file; the
    // property, if a runtime sets it, must be the file's value.
    assert!(
        ["[not set]", "2930"].contains(&p.get("IOWeight")),
        "IOWeight={}",
        p.get("IOWeight")
    );

    let pid = t.init_pid(&id);
    assert_eq!(proc_cgroup(pid), format!("0::{control_group}"), "the init's cgroup");
    let dir = cgroup_dir(&control_group);
    let files = [
        ("memory.max", "134217728"),
        ("memory.low", "67108864"),
        ("memory.swap.max", "67108864"),
        ("cpu.max", "12500 50000"),
        ("cpu.weight", "59"),
        ("pids.max", "77"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
    ];
    for (file, value) in files {
        assert_eq!(read_cg(&dir, file), value, "{}/{file}", dir.display());
    }
    if dir.join("io.bfq.weight").exists() {
        assert_eq!(read_cg(&dir, "io.bfq.weight").lines().next(), Some("default 300"));
    } else {
        assert_eq!(read_cg(&dir, "io.weight").lines().next(), Some("default 2930"));
    }

    let inside = wait_output(&created, "END");
    assert_eq!(inside, "0::/\n134217728\nEND\n", "what the container sees");

    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
    assert_dir_gone(&dir);
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Slices and unit names

/// `a-b.slice` nests as a.slice/a-b.slice; an empty slice is system.slice;
/// `-.slice` is the root.
#[test]
fn slice_forms_place_the_scope() {
    let Some(mut t) = Sd::new() else { return };
    // A slice family of this test's own, stopped at the end.
    let top = format!("xrun{}", std::process::id());
    t.slices.push(format!("{top}.slice"));
    let nested_slice = format!("{top}-a-b.slice");
    let nested_cg = format!("/{top}.slice/{top}-a.slice/{top}-a-b.slice");
    let cases = [
        (
            "nested",
            nested_slice.as_str(),
            nested_slice.as_str(),
            nested_cg.as_str(),
        ),
        ("empty-slice", "", "system.slice", "/system.slice"),
        ("root-slice", "-.slice", "-.slice", ""),
    ];
    for (stem, slice, expected_slice, parent_cg) in cases {
        let id = t.new_id(stem);
        let unit = t.use_scope(slice, &id);
        t.sd_start(&id, &["sleep", "60"]);
        let p = show(&unit, &["ActiveState", "Slice", "ControlGroup"]);
        let control_group = format!("{parent_cg}/{unit}");
        assert_eq!(p.get("ActiveState"), "active", "{unit}");
        assert_eq!(p.get("Slice"), expected_slice, "{unit}");
        assert_eq!(p.get("ControlGroup"), control_group, "{unit}");
        assert_eq!(proc_cgroup(t.init_pid(&id)), format!("0::{control_group}"));
        t.sd(&["delete", "--force", &id]).assert_ok();
        assert_unit_gone(&unit);
        assert_dir_gone(&cgroup_dir(&control_group));
        t.assert_clean(&id);
    }
}

#[test]
fn invalid_slice_or_cgroups_path_fails_cleanly() {
    let Some(mut t) = Sd::new() else { return };
    for (n, slice) in ["bad", "a--b.slice", "-a.slice", "a/b.slice", ".slice"]
        .iter()
        .enumerate()
    {
        let id = t.new_id(&format!("slice{n}"));
        let unit = t.use_scope(slice, &id);
        t.assert_create_fails_cleanly(&id, &unit, &format!("invalid slice name: {slice}"));
    }
    for (n, stem) in ["system.slice:{id}", "system.slice:{p}:{id}:x"].iter().enumerate() {
        let id = t.new_id(&format!("parts{n}"));
        let path = stem.replace("{id}", &id).replace("{p}", PREFIX);
        t.config["linux"]["cgroupsPath"] = json!(path);
        let unit = t.expect_unit(&format!("{PREFIX}-{id}.scope"));
        let words = format!(
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"{path}\" instead"
        );
        t.assert_create_fails_cleanly(&id, &unit, &words);
    }
}

/// Without a cgroupsPath the unit is `<runtime>-<id>.scope` in system.slice:
/// runc names it runc-<id>.scope, xrun uses its own name.
#[test]
fn empty_cgroups_path_makes_a_scope_named_after_the_runtime_and_id() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let runtime = if is_runc() { "runc" } else { "xrun" };
    let unit = t.expect_unit(&format!("{runtime}-{id}.scope"));
    t.sd_start(&id, &["sleep", "60"]);
    let p = show(&unit, &["ActiveState", "Slice", "ControlGroup", "Delegate"]);
    let control_group = format!("/system.slice/{unit}");
    assert_eq!(p.get("ActiveState"), "active");
    assert_eq!(p.get("Slice"), "system.slice");
    assert_eq!(p.get("Delegate"), "yes");
    assert_eq!(p.get("ControlGroup"), control_group);
    assert_eq!(proc_cgroup(t.init_pid(&id)), format!("0::{control_group}"));
    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
    assert_dir_gone(&cgroup_dir(&control_group));
}

// ---------------------------------------------------------------------------
// org.systemd.property.* annotations

/// Values in GVariant text form; a `...Sec` name is turned into `...USec`
/// with the value in microseconds.
#[test]
fn systemd_property_annotations_reach_the_unit() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.config["annotations"] = json!({
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.RuntimeMaxSec": "uint64 7200",
        "org.example.unrelated": "ignored"
    });
    t.sd_start(&id, &["sleep", "60"]);
    let p = show(
        &unit,
        &["ActiveState", "TimeoutStopUSec", "CollectMode", "RuntimeMaxUSec"],
    );
    assert_eq!(p.get("ActiveState"), "active");
    assert_eq!(p.get("TimeoutStopUSec"), "2min 3.456789s");
    assert_eq!(p.get("CollectMode"), "inactive-or-failed");
    assert_eq!(p.get("RuntimeMaxUSec"), "2h");
    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
}

/// runc checks names (letters only, at least 3) and parses values before
/// anything starts; systemd refuses unknown properties and bad values.
#[test]
fn invalid_systemd_property_annotations_fail_cleanly() {
    let Some(mut t) = Sd::new() else { return };
    let cases = [
        (
            "Ab",
            "uint64 1",
            "annotation org.systemd.property.Ab name incorrect: too short",
        ),
        (
            "Foo_Bar",
            "uint64 1",
            "annotation org.systemd.property.Foo_Bar name incorrect: contains non-alphabetic character",
        ),
        (
            "TimeoutStopUSec",
            "notavariant",
            "annotation org.systemd.property.TimeoutStopUSec=notavariant value parse error",
        ),
        (
            "TimeoutStopSec",
            "'str'",
            "annotation org.systemd.property.TimeoutStopSec='str' value parse error: not a number",
        ),
        ("FooBar", "uint64 1", "Cannot set property FooBar, or unknown property"),
        ("CollectMode", "'bogus'", "Invalid CollectMode setting: bogus"),
    ];
    for (n, (name, value, words)) in cases.iter().enumerate() {
        let id = t.new_id(&format!("ann{n}"));
        let unit = t.use_scope("system.slice", &id);
        t.config["annotations"] = json!({ format!("org.systemd.property.{name}"): value });
        t.assert_create_fails_cleanly(&id, &unit, words);
    }
}

// ---------------------------------------------------------------------------
// update

/// The unit's properties and the files change together. The quota is
/// rounded as on create (234.56 ms/s -> 240 ms/s, cpu.max 24000); memory
/// plus swap stays 192 MiB, so the swap limit grows to 96 MiB.
#[test]
fn update_changes_the_unit_and_the_cgroup_files() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.config["linux"]["resources"] = json!({
        "memory": {"limit": 134217728, "swap": 201326592},
        "cpu": {"quota": 50000, "period": 100000},
        "pids": {"limit": 77}
    });
    t.sd_start(&id, &["sleep", "60"]);
    let props = ["MemoryMax", "MemorySwapMax", "CPUQuotaPerSecUSec", "TasksMax"];
    let dir = cgroup_dir(&format!("/system.slice/{unit}"));
    let p = show(&unit, &props);
    assert_eq!(p.get("CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(read_cg(&dir, "cpu.max"), "50000 100000");

    t.sd(&[
        "update",
        "--memory",
        "100663296",
        "--cpu-quota",
        "23456",
        "--pids-limit",
        "55",
        &id,
    ])
    .assert_ok();
    let p = show(&unit, &props);
    assert_eq!(p.get("MemoryMax"), "100663296");
    assert_eq!(p.get("MemorySwapMax"), "100663296");
    assert_eq!(p.get("CPUQuotaPerSecUSec"), "240ms");
    assert_eq!(p.get("TasksMax"), "55");
    assert_eq!(read_cg(&dir, "memory.max"), "100663296");
    assert_eq!(read_cg(&dir, "memory.swap.max"), "100663296");
    assert_eq!(read_cg(&dir, "cpu.max"), "24000 100000");
    assert_eq!(read_cg(&dir, "pids.max"), "55");
    assert_eq!(t.status(&id), "running");
    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
}

// ---------------------------------------------------------------------------
// The verbs that work on the cgroup

#[test]
fn pause_exec_ps_events_and_kill_all_use_the_scope_cgroup() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.sd_start(&id, &["sleep", "60"]);
    let control_group = format!("/system.slice/{unit}");
    let dir = cgroup_dir(&control_group);
    let init = t.init_pid(&id);

    t.sd(&["pause", &id]).assert_ok();
    assert_eq!(t.status(&id), "paused");
    assert_eq!(read_cg(&dir, "cgroup.freeze"), "1");
    assert_eq!(show(&unit, &["ActiveState"]).get("ActiveState"), "active");
    t.sd(&["resume", &id]).assert_ok();
    assert_eq!(t.status(&id), "running");
    assert_eq!(read_cg(&dir, "cgroup.freeze"), "0");

    // No cgroup namespace: the container sees the host's path.
    let out = t.sd(&["exec", &id, "cat", "/proc/self/cgroup"]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), format!("0::{control_group}"));
    let pid_file = t.dir.join("exec.pid");
    t.sd(&["exec", "--detach", "--pid-file", s(&pid_file), &id, "sleep", "60"])
        .assert_ok();
    let exec_pid: i64 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(
        proc_cgroup(exec_pid),
        format!("0::{control_group}"),
        "the exec'd process"
    );
    let mut procs = cgroup_procs(&dir);
    procs.sort();
    let mut expected = vec![init, exec_pid];
    expected.sort();
    assert_eq!(procs, expected, "{}/cgroup.procs", dir.display());

    let ps = t.sd(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    let mut listed: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    listed.sort();
    assert_eq!(listed, expected, "ps");

    let events = t.sd(&["events", "--stats", &id]);
    events.assert_ok();
    let stats: Value = serde_json::from_str(events.stdout.trim()).unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(stats["data"]["memory"]["usage"]["usage"].as_u64() > Some(0), "{stats}");
    assert_eq!(stats["data"]["pids"]["current"], 2, "{stats}");

    t.sd(&["kill", "--all", &id, "KILL"]).assert_ok();
    let empty = poll_until(Duration::from_secs(10), || cgroup_procs(&dir).is_empty());
    assert!(empty, "processes left in {}: {:?}", dir.display(), cgroup_procs(&dir));
    t.wait_status(&id, "stopped");
    t.sd(&["delete", &id]).assert_ok();
    assert_unit_gone(&unit);
    assert_dir_gone(&dir);
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// delete

/// Once the container's last process is gone systemd collects the scope
/// by itself; delete then has nothing left to stop, and leaves nothing.
#[test]
fn delete_after_the_init_exits_leaves_no_unit_or_cgroup() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    // The init exits by itself once the test creates /tmp/go in the rootfs.
    t.sd_start(&id, &["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 1; done"]);
    let dir = cgroup_dir(&format!("/system.slice/{unit}"));
    assert!(dir.is_dir(), "{} missing while running", dir.display());
    fs::write(t.rootfs.join("tmp/go"), "").unwrap();
    t.wait_status(&id, "stopped");
    t.sd(&["delete", &id]).assert_ok();
    assert!(t.state(&id).is_none());
    assert_unit_gone(&unit);
    assert_dir_gone(&dir);
    t.assert_clean(&id);
}

/// The state records the driver: a plain `delete --force` (no
/// --systemd-cgroup) of a running container stops its unit.
#[test]
fn force_delete_without_the_flag_stops_the_running_unit() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.sd_start(&id, &["sleep", "60"]);
    let dir = cgroup_dir(&format!("/system.slice/{unit}"));
    let init = t.init_pid(&id);
    assert_eq!(cgroup_procs(&dir), vec![init]);
    t.rt(&["delete", "--force", &id]).assert_ok();
    assert!(t.state(&id).is_none());
    assert_unit_gone(&unit);
    assert_dir_gone(&dir);
    t.assert_clean(&id);
}

/// On systemd's hybrid layout the init is in its scope in every hierarchy:
/// the v1 controllers systemd manages, those it does not (freezer, cpuset,
/// ...: joined by the runtime, as runc does), name=systemd and the unified
/// one. The v1 limits reach the unit and the files, pause freezes the init,
/// and delete leaves no directory in any hierarchy.
#[test]
fn hybrid_scope_joins_every_hierarchy() {
    if !systemd_hybrid_host() {
        return;
    }
    let Some(mut t) = Sd::any_layout() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.config["linux"]["resources"] = json!({
        "memory": {"limit": 104857600},
        "cpu": {"shares": 512, "quota": 12345, "period": 100000, "cpus": "0"},
        "pids": {"limit": 50}
    });
    t.sd_start(&id, &["sleep", "60"]);
    let pid = t.init_pid(&id);
    let own = proc_cgroup(pid);
    let scope = format!("/system.slice/{unit}");
    let lines: Vec<&str> = own.lines().collect();
    assert!(lines.len() > 3, "{own}");
    for line in &lines {
        assert!(
            line.ends_with(&format!(":{scope}")),
            "not in the scope: {line} (all: {own})"
        );
    }
    let p = show(
        &unit,
        &["Delegate", "MemoryLimit", "CPUShares", "CPUQuotaPerSecUSec", "TasksMax"],
    );
    assert_eq!(p.get("Delegate"), "yes");
    assert_eq!(p.get("MemoryLimit"), "104857600");
    assert_eq!(p.get("CPUShares"), "512");
    assert_eq!(p.get("CPUQuotaPerSecUSec"), "130ms");
    assert_eq!(p.get("TasksMax"), "50");
    let v1 = |ctl: &str, file: &str| read_cg(&Path::new("/sys/fs/cgroup").join(ctl).join(&scope[1..]), file);
    assert_eq!(v1("memory", "memory.limit_in_bytes"), "104857600");
    assert_eq!(v1("cpu", "cpu.cfs_quota_us"), "13000");
    assert_eq!(v1("pids", "pids.max"), "50");
    assert_eq!(v1("cpuset", "cpuset.cpus"), "0");
    t.sd(&["pause", &id]).assert_ok();
    assert_eq!(v1("freezer", "freezer.state"), "FROZEN");
    t.sd(&["resume", &id]).assert_ok();
    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = entry.path().join(&scope[1..]);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    t.assert_clean(&id);
}

/// An init that fails at once (a missing entrypoint) is still put in its
/// unit first: the error names the entrypoint, and nothing is left. The
/// config has no cgroup namespace, so nothing else makes the init wait for
/// its cgroup (found by the containerd e2e scenario).
#[test]
fn a_missing_entrypoint_is_reported_and_leaves_no_unit() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    let namespaces = t.config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|n| n["type"] != "cgroup");
    t.args(&["/no-such-entrypoint"]);
    for verb in ["create", "run"] {
        let out = t.sd_bundle(verb, &id);
        out.assert_fails();
        assert!(out.stderr.contains("/no-such-entrypoint"), "{verb}: {}", out.stderr);
        assert!(t.state(&id).is_none(), "{verb}: state left");
        t.assert_clean(&id);
        assert_unit_gone(&unit);
    }
}

#[test]
fn run_of_an_exiting_process_leaves_no_unit() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    t.args(&["sh", "-c", "cat /proc/self/cgroup"]);
    let out = t.sd_bundle("run", &id);
    out.assert_ok();
    assert_eq!(
        out.stdout.trim(),
        format!("0::/system.slice/{unit}"),
        "the process ran in the scope"
    );
    assert!(t.state(&id).is_none());
    assert_unit_gone(&unit);
    assert_dir_gone(&cgroup_dir(&format!("/system.slice/{unit}")));
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// A unit name in use

/// runc refuses to share the scope: its cgroup is not empty.
#[test]
fn a_unit_name_in_use_is_refused_and_the_first_container_is_unaffected() {
    let Some(mut t) = Sd::new() else { return };
    let first = t.id.clone();
    let unit = t.use_scope("system.slice", &first);
    t.sd_start(&first, &["sleep", "60"]);
    let dir = cgroup_dir(&format!("/system.slice/{unit}"));
    let init = t.init_pid(&first);

    let second = t.new_id("second");
    let out = t.sd_bundle("create", &second);
    out.assert_fails();
    let errors = out.error_msgs();
    assert_eq!(errors.len(), 1, "expected one error line: {}", out.stderr);
    assert!(
        errors[0].contains("cgroup is not empty") || errors[0].contains(&unit),
        "the error names neither the unit nor its cgroup: {}",
        errors[0]
    );
    assert!(t.state(&second).is_none(), "state of {second} after a failed create");
    assert!(!t.root.join(&second).exists());

    assert_eq!(t.status(&first), "running");
    assert_eq!(cgroup_procs(&dir), vec![init], "the first container's cgroup");
    assert_eq!(show(&unit, &["ActiveState"]).get("ActiveState"), "active");
    t.sd(&["delete", "--force", &first]).assert_ok();
    assert_unit_gone(&unit);
    t.assert_clean(&first);
    t.assert_clean(&second);
}

// ---------------------------------------------------------------------------
// Devices

/// runc's default device rules as DeviceAllow entries (DevicePolicy=strict):
/// mknod of any char or block device, the standard nodes, /dev/pts/*,
/// /dev/ptmx and /dev/net/tun.
const DEFAULT_DEVICE_ALLOW: &[&str] = &[
    "/dev/char/1:3 rwm",
    "/dev/char/1:5 rwm",
    "/dev/char/1:7 rwm",
    "/dev/char/1:8 rwm",
    "/dev/char/1:9 rwm",
    "/dev/char/10:200 rwm",
    "/dev/char/5:0 rwm",
    "/dev/char/5:2 rwm",
    "block-* m",
    "char-* m",
    "char-136 rwm",
];

#[test]
fn default_devices_are_a_strict_device_policy() {
    let Some(mut t) = Sd::new() else { return };
    let id = t.id.clone();
    let unit = t.use_scope("system.slice", &id);
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_MKNOD"];
    for set in ["bounding", "effective", "permitted"] {
        t.config["process"]["capabilities"][set] = json!(caps);
    }
    // /dev/xkmsg (1:11, the kernel log) and /dev/xloop (block 7:0) are not
    // on the default list: only the device cgroup can refuse them (EPERM).
    let created = t.sd_start(
        &id,
        &[
            "sh",
            "-c",
            "busybox mknod /dev/xkmsg c 1 11 && busybox mknod /dev/xloop b 7 0 && \
             checker --path /dev/xkmsg --path /dev/xloop --path /dev/null; exec sleep 60",
        ],
    );
    let report = t.wait_checker(&created);
    assert_eq!(report.path("/dev/null")["write"], "ok", "{}", report.path("/dev/null"));
    let kmsg = report.path("/dev/xkmsg");
    assert_eq!(
        (&kmsg["type"], &kmsg["write"]),
        (&json!("chr"), &json!("EPERM")),
        "{kmsg}"
    );
    let xloop = report.path("/dev/xloop");
    assert_eq!(
        (&xloop["type"], &xloop["write"]),
        (&json!("blk"), &json!("EPERM")),
        "{xloop}"
    );

    let p = show(&unit, &["DevicePolicy", "DeviceAllow"]);
    assert_eq!(p.get("DevicePolicy"), "strict");
    let (mut allow, mut expected) = (p.all("DeviceAllow"), DEFAULT_DEVICE_ALLOW.to_vec());
    allow.sort();
    expected.sort();
    assert_eq!(allow, expected);
    t.sd(&["delete", "--force", &id]).assert_ok();
    assert_unit_gone(&unit);
    t.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// Rootless, with the user's own systemd instance

/// A rootless test (rootless::Rootless, run as the test user) whose
/// `--systemd-cgroup` runtime talks to the user's systemd instance
/// (user@UID.service, started for it). Dropping it deletes the containers,
/// then stops any of its units still loaded in that instance, and the
/// instance if the test started it.
struct UserSd {
    rl: Option<Rootless>,
    uid: u32,
    gid: u32,
    units: Vec<String>,
    started_manager: bool,
}

impl Deref for UserSd {
    type Target = Rootless;
    fn deref(&self) -> &Rootless {
        self.rl.as_ref().unwrap()
    }
}

impl DerefMut for UserSd {
    fn deref_mut(&mut self) -> &mut Rootless {
        self.rl.as_mut().unwrap()
    }
}

impl Drop for UserSd {
    fn drop(&mut self) {
        drop(self.rl.take());
        let left: Vec<String> = self
            .units
            .iter()
            .filter(|u| says_loaded(&self.user_systemctl(&["show", "-p", "LoadState", u])))
            .cloned()
            .collect();
        for unit in &left {
            self.user_systemctl(&["stop", unit]);
        }
        if self.started_manager {
            systemctl(&["stop", &self.manager()]);
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!("user units still loaded at the end of the test (now stopped): {left:?}");
        }
    }
}

impl UserSd {
    fn new() -> Option<UserSd> {
        if !systemd_v2_host() {
            return None;
        }
        let rl = Rootless::new()?;
        let (uid, gid) = (rl.user.uid, rl.user.gid);
        let mut sd = UserSd {
            rl: Some(rl),
            uid,
            gid,
            units: Vec::new(),
            started_manager: false,
        };
        let manager = sd.manager();
        sd.started_manager = show(&manager, &["ActiveState"]).get("ActiveState") != "active";
        let out = systemctl(&["start", &manager]);
        assert!(out.status.success(), "systemctl start {manager}: {out:?}");
        let bus = sd.bus();
        assert!(
            poll_until(Duration::from_secs(20), || Path::new(&bus).exists()),
            "no user bus at {bus}"
        );
        Some(sd)
    }

    fn manager(&self) -> String {
        format!("user@{}.service", self.uid)
    }

    fn bus(&self) -> String {
        format!("/run/user/{}/bus", self.uid)
    }

    /// `systemctl --user ARGS` as the user, against its instance.
    fn user_systemctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .env_clear()
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", self.uid))
            .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", self.bus()))
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .output()
            .expect("running systemctl --user")
    }

    #[track_caller]
    fn user_show(&self, unit: &str, props: &[&str]) -> Props {
        Props::parse(unit, self.user_systemctl(&["show", "-p", &props.join(","), unit]))
    }

    fn load_state(&self, unit: &str) -> String {
        self.user_show(unit, &["LoadState"]).get("LoadState").to_string()
    }

    /// The runtime as the user with `--systemd-cgroup`, told the user bus.
    #[track_caller]
    fn sd(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["--systemd-cgroup"];
        all.extend_from_slice(args);
        let mut cmd = self.command(&all);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", self.bus()));
        self.env.exec(cmd)
    }
}

/// runc puts the scope in the slice of the cgroupsPath under the user
/// manager's own cgroup (user@UID.service/user.slice/...), with the limits
/// the user's delegation allows (pids, memory).
#[test]
fn rootless_scope_lives_under_the_user_manager() {
    let Some(mut sd) = UserSd::new() else { return };
    let id = sd.new_id("rl-sd");
    let unit = format!("{PREFIX}-{id}.scope");
    sd.units.push(unit.clone());
    sd.write_spec(|s| {
        s["process"]["args"] = json!(["sleep", "60"]);
        s["linux"]["cgroupsPath"] = json!(format!("user.slice:{PREFIX}:{id}"));
        s["linux"]["resources"] = json!({"pids": {"limit": 10}, "memory": {"limit": 67108864}});
    });
    sd.sd(&["run", "--detach", &id]).assert_ok();
    let state: Value = serde_json::from_str(&sd.sd(&["state", &id]).assert_ok().stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();

    let manager_cg = show(&sd.manager(), &["ControlGroup"]).get("ControlGroup").to_string();
    let control_group = format!("{manager_cg}/user.slice/{unit}");
    assert_eq!(proc_cgroup(pid), format!("0::{control_group}"), "the init's cgroup");
    let p = sd.user_show(
        &unit,
        &[
            "LoadState",
            "ActiveState",
            "Delegate",
            "Slice",
            "ControlGroup",
            "TasksMax",
            "MemoryMax",
        ],
    );
    let expected = [
        ("LoadState", "loaded"),
        ("ActiveState", "active"),
        ("Delegate", "yes"),
        ("Slice", "user.slice"),
        ("ControlGroup", control_group.as_str()),
        ("TasksMax", "10"),
        ("MemoryMax", "67108864"),
    ];
    for (name, value) in expected {
        assert_eq!(p.get(name), value, "{unit}: {name}");
    }
    let dir = cgroup_dir(&control_group);
    assert_eq!(read_cg(&dir, "pids.max"), "10");
    assert_eq!(read_cg(&dir, "memory.max"), "67108864");

    sd.sd(&["delete", "--force", &id]).assert_ok();
    poll_until(Duration::from_secs(10), || sd.load_state(&unit) == "not-found");
    assert_eq!(sd.load_state(&unit), "not-found", "{unit} in the user's instance");
    assert_dir_gone(&dir);
    sd.assert_clean(&id);
}

/// Where systemd is not the init system, `--systemd-cgroup` is refused in
/// runc's words before anything is made; a malformed cgroupsPath is named
/// first, as runc checks it first.
#[test]
fn refused_where_systemd_is_not_running() {
    let Some(mut env) = TestEnv::new() else { return };
    if Path::new("/run/systemd/system").exists() {
        return skip("systemd runs here: the systemd:: tests cover the driver");
    }
    let id = env.id.clone();
    let bundle = env.bundle.to_string_lossy().into_owned();
    for (path, words) in [
        (
            "bad".to_string(),
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"bad\" instead",
        ),
        (
            format!("system.slice:xrun-test:{id}"),
            "systemd not running on this host, cannot use systemd cgroups manager",
        ),
    ] {
        env.config["linux"]["cgroupsPath"] = json!(path);
        env.write_config();
        for verb in ["create", "run"] {
            let out = env.rt(&["--systemd-cgroup", verb, "--bundle", &bundle, &id]);
            out.assert_fails();
            assert!(
                out.error_msgs().iter().any(|m| m.ends_with(words)),
                "{verb} {path}: {}",
                out.stderr
            );
            env.assert_clean(&id);
        }
    }
}
