//! The query verbs: `features` checked against what create really accepts,
//! `ps` against the processes the checker reports, `list` against the
//! containers of the state root. Runs against runc too (XRUN_BIN).

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;

fn features(env: &TestEnv) -> Value {
    let out = env.rt(&["features"]);
    out.assert_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("features is not JSON ({e}): {}", out.stdout))
}

/// The checker's name for a namespace type of config.json.
fn checker_ns_name(typ: &str) -> &str {
    match typ {
        "mount" => "mnt",
        "network" => "net",
        other => other,
    }
}

#[test]
fn features_has_the_spec_fields() {
    let Some(env) = TestEnv::new() else { return };
    let f = features(&env);
    assert!(f["ociVersionMin"].as_str().is_some_and(|v| v.starts_with("1.")), "{f}");
    assert!(f["ociVersionMax"].as_str().is_some_and(|v| v.starts_with("1.")), "{f}");
    let hooks = strings(&f["hooks"]);
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h.to_string()), "hook {h} missing: {hooks:?}");
    }
    let seccomp = &f["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    for key in ["actions", "operators", "archs"] {
        assert!(!strings(&seccomp[key]).is_empty(), "seccomp.{key} empty");
    }
    assert!(strings(&seccomp["archs"]).contains(&"SCMP_ARCH_X86_64".to_string()));
    if xrun_only() {
        return;
    }
    // runc 1.1 has neither list.
    let known = strings(&seccomp["knownFlags"]);
    let supported = strings(&seccomp["supportedFlags"]);
    // Only runc 1.4's flags: its seccomp.bats stops at one it does not know.
    let runc_flags = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_LOG",
    ];
    assert!(known.iter().all(|k| runc_flags.contains(&k.as_str())), "{known:?}");
    assert!(
        supported.iter().all(|s| known.contains(s)),
        "{supported:?} not within {known:?}"
    );
    assert!(
        supported.contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()),
        "{supported:?}"
    );
    for section in ["apparmor", "selinux", "intelRdt"] {
        assert!(f["linux"][section]["enabled"].is_boolean(), "linux.{section}: {f}");
    }
    assert!(f["linux"]["mountExtensions"]["idmap"]["enabled"].is_boolean());
    assert!(f["linux"]["cgroup"]["rdma"].is_boolean());
}

#[test]
fn every_listed_mount_option_is_accepted_by_create() {
    // runc 1.1.5 fails it: it lists "defaults" but hands it to tmpfs as
    // data, which tmpfs refuses (EINVAL).
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    let f = features(&env);
    let options = strings(&f["mountOptions"]);
    assert!(options.len() > 20, "{options:?}");
    let host = env.host_dir("bind-source");
    let mut mounts = env.config["mounts"].as_array().unwrap().clone();
    let mut expected = Vec::new();
    for (i, opt) in options.iter().enumerate() {
        let dest = format!("/mnt/o{i}");
        if opt == "bind" || opt == "rbind" {
            mounts.push(mount(&dest, "bind", s(&host), &[opt.as_str()]));
        } else {
            mounts.push(mount(&dest, "tmpfs", "tmpfs", &[opt.as_str()]));
        }
        expected.push((dest, opt.clone()));
    }
    env.config["mounts"] = Value::Array(mounts);
    env.rootfs_mkdir("mnt");
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    assert!(out.success(), "mount options refused: {}", out.stderr);
    let report = out.checker();
    for (dest, opt) in &expected {
        let m = report.mounts().into_iter().find(|m| m["mount_point"] == dest.as_str());
        assert!(m.is_some(), "no mount at {dest} (option {opt})");
    }
    env.assert_clean(&id);
}

#[test]
fn every_listed_namespace_is_created() {
    let Some(mut env) = TestEnv::new() else { return };
    let f = features(&env);
    let namespaces = strings(&f["linux"]["namespaces"]);
    for ns in &namespaces {
        set_namespace(&mut env.config, ns, None);
    }
    if namespaces.iter().any(|n| n == "user") {
        let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        env.config["linux"]["uidMappings"] = mapping.clone();
        env.config["linux"]["gidMappings"] = mapping;
    }
    let id = env.id.clone();
    let report = env.run_checker(&id);
    for ns in &namespaces {
        let name = checker_ns_name(ns);
        assert_ne!(report.ns(name), host_ns(name), "namespace {ns} is the host's");
    }
    env.assert_clean(&id);
}

/// This process's capability set `field` from /proc/self/status.
fn own_caps(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn every_listed_capability_is_granted() {
    let Some(mut env) = TestEnv::new() else { return };
    let f = features(&env);
    let caps = strings(&f["linux"]["capabilities"]);
    let last: usize = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The list is in bit order, CAP_CHOWN = 0, and covers this kernel.
    assert_eq!(caps[0], "CAP_CHOWN");
    assert_eq!(caps.len(), last + 1, "{caps:?}");
    // A cap this test runs without (a restricted bounding set) can be
    // named in the bounding set but never raised.
    let own = own_caps("CapBnd:");
    let available: Vec<&String> = caps
        .iter()
        .enumerate()
        .filter(|(i, _)| own & 1 << i != 0)
        .map(|(_, c)| c)
        .collect();
    env.config["process"]["capabilities"]["bounding"] = json!(caps);
    env.config["process"]["capabilities"]["effective"] = json!(available);
    env.config["process"]["capabilities"]["permitted"] = json!(available);
    let id = env.id.clone();
    let report = env.run_checker(&id);
    let all = (1u64 << (last + 1)) - 1;
    assert_eq!(report.cap_set("CapBnd"), own & all, "listed: {caps:?}");
    assert_eq!(report.cap_set("CapEff"), own & all);
    env.assert_clean(&id);
}

#[test]
fn features_marked_unsupported_are_refused() {
    let Some(mut env) = TestEnv::new() else { return };
    let f = features(&env);
    let id = env.id.clone();
    if f["linux"]["cgroup"]["systemd"] == false {
        env.write_config();
        let bundle = env.bundle.to_string_lossy().into_owned();
        let out = env.rt(&["--systemd-cgroup", "create", "--bundle", &bundle, &id]);
        out.assert_fails();
        assert!(out.stderr.contains("systemd"), "{}", out.stderr);
        env.assert_clean(&id);
    }
    if f["linux"]["intelRdt"]["enabled"] == false {
        env.config["linux"]["intelRdt"] = json!({"closID": "xrun-test"});
        env.create(&id, &[]).assert_fails();
        env.assert_clean(&id);
        env.config["linux"].as_object_mut().unwrap().remove("intelRdt");
    }
    if f["linux"]["mountExtensions"]["idmap"]["enabled"] == false {
        let host = env.host_dir("idmap-source");
        env.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(bind_mount(&host, "/mnt", &["idmap"]));
        env.rootfs_mkdir("mnt");
        env.create(&id, &[]).assert_fails();
        env.assert_clean(&id);
    }
}

#[test]
fn supported_seccomp_flags_load() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = TestEnv::new() else { return };
    let f = features(&env);
    // Every supported flag at once (WAIT_KILLABLE_RECV only takes effect
    // with a notify listener, and is accepted without one).
    let flags = strings(&f["linux"]["seccomp"]["supportedFlags"]);
    env.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "flags": flags,
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    env.args(&["checker", "--try", "mkdir"]);
    let id = env.id.clone();
    let report = env.run_checker(&id);
    assert_eq!(report.status("Seccomp"), "2");
    assert_eq!(
        report.0["tries"]["mkdir"]["errno_name"], "EPERM",
        "{}",
        report.0["tries"]
    );
    env.assert_clean(&id);
}

// ---------------------------------------------------------------------------
// ps

/// The pid a host process has in its innermost pid namespace.
fn inner_pid(host_pid: i64) -> i64 {
    let status = fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap_or("");
    line.split_whitespace()
        .last()
        .and_then(|p| p.parse().ok())
        .unwrap_or(-1)
}

/// Starts a checker with two children; returns its report.
fn start_with_children(env: &mut TestEnv, id: &str) -> Checker {
    env.args(&["checker", "--children", "2", "--sleep", "60"]);
    let created = env.create(id, &[]);
    created.assert_ok();
    env.rt(&["start", id]).assert_ok();
    let report = env.wait_checker(&created);
    assert_eq!(strings(&report.0["errors"]), Vec::<String>::new());
    report
}

fn ps_json(env: &TestEnv, id: &str) -> Vec<i64> {
    let out = env.rt(&["ps", "--format", "json", id]);
    out.assert_ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("ps json ({e}): {}", out.stdout));
    v.as_array()
        .map_or_else(Vec::new, |a| a.iter().map(|p| p.as_i64().unwrap()).collect())
}

#[test]
fn ps_json_lists_exactly_the_container_processes() {
    let Some(mut env) = TestEnv::new() else { return };
    let id = env.id.clone();
    let report = start_with_children(&mut env, &id);
    let pids = ps_json(&env, &id);
    let seen: BTreeSet<i64> = pids.iter().map(|&p| inner_pid(p)).collect();
    let mut expected: BTreeSet<i64> = report.0["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert_eq!(expected.len(), 2);
    expected.insert(report.int("pid"));
    assert_eq!(seen, expected, "host pids {pids:?}");
    let init = env.state(&id).unwrap()["pid"].as_i64().unwrap();
    assert!(pids.contains(&init), "init {init} not in {pids:?}");
    env.rt(&["kill", &id, "KILL"]).assert_ok();
    env.wait_status(&id, "stopped");
    let out = env.rt(&["ps", "-f", "json", &id]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "null", "a stopped container has no processes");
    env.rt(&["delete", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn ps_table_keeps_the_header_and_the_container_lines() {
    let Some(mut env) = TestEnv::new() else { return };
    let id = env.id.clone();
    start_with_children(&mut env, &id);
    let pids = ps_json(&env, &id);
    let out = env.rt(&["ps", &id]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    let col = lines[0]
        .split_whitespace()
        .position(|t| t == "PID")
        .expect("PID column");
    assert_eq!(lines.len(), 1 + pids.len(), "{}", out.stdout);
    for line in &lines[1..] {
        let pid: i64 = line.split_whitespace().nth(col).unwrap().parse().unwrap();
        assert!(pids.contains(&pid), "{line}");
        assert!(line.contains("checker"), "{line}");
    }
    // ps arguments after the id go to ps(1).
    let out = env.rt(&["ps", &id, "-o", "pid,comm"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["PID", "COMMAND"]);
    assert_eq!(lines.len(), 1 + pids.len(), "{}", out.stdout);
    // Without a PID column nothing can be matched.
    let out = env.rt(&["ps", &id, "-o", "comm"]);
    out.assert_fails();
    assert!(out.stderr.contains("couldn't find PID field"), "{}", out.stderr);
    let out = env.rt(&["ps", "--format", "xml", &id]);
    out.assert_fails();
    assert!(out.stderr.contains("invalid format option"), "{}", out.stderr);
}

#[test]
fn ps_of_an_unknown_container_fails() {
    let Some(env) = TestEnv::new() else { return };
    let out = env.rt(&["ps", "no-such-container"]);
    out.assert_fails();
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// list

fn list_json(env: &TestEnv) -> Value {
    let out = env.rt(&["list", "--format", "json"]);
    out.assert_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("list json ({e}): {}", out.stdout))
}

#[test]
fn list_shows_every_container_with_its_status() {
    let Some(mut env) = TestEnv::new() else { return };
    let created = env.new_id("a-created");
    let running = env.new_id("b-running");
    let stopped = env.new_id("c-stopped");
    env.args(&["checker", "--sleep", "60"]);
    env.create(&created, &[]).assert_ok();
    env.start_sleeper(&running);
    env.args(&["checker"]);
    env.create(&stopped, &[]).assert_ok();
    env.rt(&["start", &stopped]).assert_ok();
    env.wait_status(&stopped, "stopped");

    let all = list_json(&env);
    let all = all.as_array().expect("an array");
    assert_eq!(all.len(), 3, "{all:?}");
    let bundle = fs::canonicalize(&env.bundle).unwrap();
    for (id, status) in [(&created, "created"), (&running, "running"), (&stopped, "stopped")] {
        let st = all
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed"));
        let state = env.state(id).unwrap();
        assert_eq!(st["status"], status, "{st}");
        assert_eq!(st["pid"], state["pid"], "{st}");
        assert_eq!(st["bundle"], s(&bundle), "{st}");
        assert_eq!(st["created"], state["created"]);
        assert_eq!(st["owner"], "root");
        assert!(st["ociVersion"].is_string());
    }
    assert_eq!(all.iter().find(|s| s["id"] == stopped.as_str()).unwrap()["pid"], 0);

    let out = env.rt(&["list"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    // Columns are aligned: every row's PID starts where the header's does.
    let pid_at = lines[0].find("PID").unwrap();
    for (line, id) in lines[1..].iter().zip([&created, &running, &stopped]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], id.as_str(), "{}", out.stdout);
        assert!(line[pid_at..].starts_with(fields[1]), "misaligned: {}", out.stdout);
    }
    assert!(lines[3].split_whitespace().nth(1) == Some("0") && lines[3].contains("stopped"));

    let out = env.rt(&["list", "-q"]);
    out.assert_ok();
    assert_eq!(out.stdout, format!("{created}\n{running}\n{stopped}\n"));
}

#[test]
fn list_of_an_empty_or_missing_root() {
    let Some(env) = TestEnv::new() else { return };
    const HEADER: &str = "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n";
    let missing = env.dir.join("no-state-here");
    for root in [env.root.clone(), missing] {
        let run = |args: &[&str]| {
            let mut cmd = std::process::Command::new(runtime_bin());
            cmd.arg("--root").arg(&root).args(args);
            let out = env.exec(cmd);
            out.assert_ok();
            out.stdout
        };
        assert_eq!(run(&["list"]), HEADER);
        assert_eq!(run(&["list", "--format", "json"]), "null\n");
        assert_eq!(run(&["list", "-q"]), "");
    }
}
