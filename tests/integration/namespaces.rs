//! linux.namespaces: new, joined by path, absent, and user namespaces.

use crate::common::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn new_namespaces_differ_from_host() {
    let Some(mut t) = TestEnv::new() else { return };
    set_namespace(&mut t.config, "cgroup", None);
    let report = t.run_checker(&t.id);
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert!(!report.ns(ns).is_empty(), "no {ns} namespace reported");
        assert_ne!(report.ns(ns), host_ns(ns), "{ns} namespace is the host's");
    }
    // Not requested, so shared with the host.
    assert_eq!(report.ns("user"), host_ns("user"));
    assert_eq!(report.int("pid"), 1);
    assert_eq!(report.int("ppid"), 0);
    t.assert_clean(&t.id);
}

#[test]
fn missing_namespace_entries_share_the_host_namespace() {
    let Some(mut t) = TestEnv::new() else { return };
    for ns in ["network", "ipc", "uts"] {
        remove_namespace(&mut t.config, ns);
    }
    t.config.as_object_mut().unwrap().remove("hostname");
    let report = t.run_checker(&t.id);
    for ns in ["net", "ipc", "uts"] {
        assert_eq!(report.ns(ns), host_ns(ns), "{ns} should be the host's");
    }
    assert_ne!(report.ns("mnt"), host_ns("mnt"));
    t.assert_clean(&t.id);
}

// runc (run.bats): `"path": ""` asks for a new namespace, like no path.
#[test]
fn empty_namespace_path_means_a_new_namespace() {
    let Some(mut t) = TestEnv::new() else { return };
    for ns in ["mount", "network", "uts", "ipc", "pid"] {
        set_namespace(&mut t.config, ns, Some(""));
    }
    let report = t.run_checker(&t.id);
    for ns in ["mnt", "net", "uts", "ipc", "pid"] {
        assert!(!report.ns(ns).is_empty(), "no {ns} namespace reported");
        assert_ne!(report.ns(ns), host_ns(ns), "{ns} namespace is the host's");
    }
    assert_eq!(report.int("pid"), 1);
    assert_eq!(report.str("hostname"), "xrun-test");
    t.assert_clean(&t.id);
}

#[test]
fn namespace_path_joins_existing_namespace() {
    let Some(mut t) = TestEnv::new() else { return };
    let helper = Command::new("unshare")
        .args(["--net", "--uts", "sleep", "100"])
        .stdin(Stdio::null())
        .spawn()
        .expect("starting unshare");
    let pid = helper.id();
    t.add_helper(helper);
    let helper_ns = |ns: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // unshare execs sleep in place once the namespaces exist.
    let ready = poll_until(Duration::from_secs(5), || {
        helper_ns("net") != host_ns("net") && helper_ns("uts") != host_ns("uts")
    });
    assert!(ready, "unshare never entered its namespaces");

    set_namespace(&mut t.config, "network", Some(&format!("/proc/{pid}/ns/net")));
    set_namespace(&mut t.config, "uts", Some(&format!("/proc/{pid}/ns/uts")));
    let report = t.run_checker(&t.id);
    assert_eq!(report.ns("net"), helper_ns("net"));
    assert_eq!(report.ns("uts"), helper_ns("uts"));
    assert_ne!(report.ns("ipc"), host_ns("ipc"));
    assert_eq!(report.str("hostname"), "xrun-test");
    t.assert_clean(&t.id);
}

#[test]
fn user_namespace_maps_ids() {
    let Some(mut t) = TestEnv::new() else { return };
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
    let report = t.run_checker(&t.id);
    assert_ne!(report.ns("user"), host_ns("user"));
    assert_eq!(report.int("uid"), 0);
    assert_eq!(report.int("gid"), 0);
    for map in ["uid_map", "gid_map"] {
        let fields: Vec<&str> = report.str(map).split_whitespace().collect();
        assert_eq!(fields, ["0", "100000", "65536"], "{map}");
    }
    t.assert_clean(&t.id);
}

// runc (run.bats, joining existing container namespaces): a joined user
// namespace is entered as its root, so the new mount namespace's mount
// points can be made (an unmapped host root gets EOVERFLOW).
#[test]
fn joined_user_namespace_is_entered_as_its_root() {
    // xrun-only: runc 1.1 wants uidMappings even for a joined user namespace.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
    t.start_sleeper(&target);
    let pid = t.state(&target).unwrap()["pid"].as_i64().unwrap();
    let target_user = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();

    let linux = t.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    // Its pid namespace too: a new one would belong to the host's user
    // namespace, where the joiner cannot mount a proc for it.
    for (typ, file) in [
        ("user", "user"),
        ("pid", "pid"),
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
    ] {
        set_namespace(&mut t.config, typ, Some(&format!("/proc/{pid}/ns/{file}")));
    }
    t.args(&["checker"]);
    let joiner = t.new_id("joiner");
    let report = t.run_checker(&joiner);
    assert_eq!(report.ns("user"), target_user.to_string_lossy());
    assert_eq!((report.int("uid"), report.int("gid")), (0, 0));
    assert_ne!(report.ns("mnt"), host_ns("mnt"));
    assert!(!report.mount_at("/dev/pts").is_null(), "no /dev/pts in the joiner");
    t.rt(&["delete", "--force", &target]).assert_ok();
    t.assert_clean(&joiner);
    t.assert_clean(&target);
}

/// Starts `id` as a sleeping checker in a new user namespace mapping 0 to
/// host 100000 (uids) and 200000 (gids); returns its pid.
fn start_mapped_sleeper(t: &mut TestEnv, id: &str) -> i64 {
    set_namespace(&mut t.config, "user", None);
    t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    t.start_sleeper(id);
    t.state(id).unwrap()["pid"].as_i64().unwrap()
}

/// The joiner's config: no mappings of its own, a plain checker.
fn as_joiner(t: &mut TestEnv) {
    let linux = t.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    t.args(&["checker", "--path", "/proc/1/cmdline"]);
}

/// Keeps the user namespace of `pid` alive at a file of the test's (the
/// path runc cannot read mappings from directly); `unbind` removes it.
fn bind_user_ns(t: &TestEnv, pid: i64) -> std::path::PathBuf {
    let path = t.dir.join("userns");
    std::fs::write(&path, "").unwrap();
    let bound = Command::new("mount")
        .args(["--bind", &format!("/proc/{pid}/ns/user"), s(&path)])
        .status()
        .unwrap();
    assert!(bound.success());
    path
}

fn unbind(path: &std::path::Path) {
    assert!(Command::new("umount").arg(path).status().unwrap().success());
}

fn ns_of(pid: i64, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn assert_first_containers_maps(report: &Checker) {
    for (map, host) in [("uid_map", "100000"), ("gid_map", "200000")] {
        let fields: Vec<&str> = report.str(map).split_whitespace().collect();
        assert_eq!(fields, ["0", host, "65536"], "{map}");
    }
}

// userns.bats "join other container userns": a new pid namespace next to a
// joined user namespace must belong to the joined one, or its root cannot
// mount /proc (the init is forked into it after joining, as runc does).
#[test]
fn joined_user_namespace_with_a_new_pid_namespace() {
    // runc 1.1 wants uidMappings even for a joined user namespace.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    let pid = start_mapped_sleeper(&mut t, &target);
    as_joiner(&mut t);
    set_namespace(&mut t.config, "user", Some(&format!("/proc/{pid}/ns/user")));
    set_namespace(&mut t.config, "network", Some(&format!("/proc/{pid}/ns/net")));
    let joiner = t.new_id("joiner-newpid");
    let report = t.run_checker(&joiner);
    assert_eq!(report.ns("user"), ns_of(pid, "user"));
    assert_eq!(report.ns("net"), ns_of(pid, "net"));
    assert_ne!(report.ns("pid"), ns_of(pid, "pid"));
    assert_ne!(report.ns("pid"), host_ns("pid"));
    // pid 1 of its own pid namespace, whose proc is mounted.
    assert_eq!(report.int("pid"), 1);
    let cmdline = report.0["paths"][0]["content"].as_str().unwrap_or("");
    assert_eq!(cmdline.split('\0').next(), Some("checker"), "{cmdline:?}");
    assert!(!cmdline.contains("--sleep"), "{cmdline:?}");
    assert_eq!((report.int("uid"), report.int("gid")), (0, 0));
    assert_first_containers_maps(&report);
    t.rt(&["delete", "--force", &target]).assert_ok();
    t.assert_clean(&joiner);
    t.assert_clean(&target);
}

// Joining the first container's user, pid and network namespaces: the same
// namespaces from inside, its processes in /proc, its mappings.
#[test]
fn joiner_sees_the_first_containers_namespaces_and_processes() {
    // runc 1.1 wants uidMappings even for a joined user namespace.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    let pid = start_mapped_sleeper(&mut t, &target);
    as_joiner(&mut t);
    for (typ, file) in [("user", "user"), ("pid", "pid"), ("network", "net")] {
        set_namespace(&mut t.config, typ, Some(&format!("/proc/{pid}/ns/{file}")));
    }
    let joiner = t.new_id("joiner-all");
    // create + start: the joiner waits on exec.fifo as the joined
    // namespace's root.
    let created = t.create(&joiner, &[]);
    created.assert_ok();
    t.rt(&["start", &joiner]).assert_ok();
    let report = t.wait_checker(&created);
    for name in ["user", "pid", "net"] {
        assert_eq!(report.ns(name), ns_of(pid, name), "{name}");
    }
    assert_ne!(report.ns("mnt"), ns_of(pid, "mnt"));
    let cmdline = report.0["paths"][0]["content"].as_str().unwrap_or("");
    assert!(
        cmdline.contains("--sleep"),
        "/proc/1 is not the first container's init: {cmdline:?}"
    );
    assert_first_containers_maps(&report);
    t.rt(&["delete", "--force", &joiner]).assert_ok();
    t.rt(&["delete", "--force", &target]).assert_ok();
    t.assert_clean(&joiner);
    t.assert_clean(&target);
}

// userns.bats "join external namespaces [wrong userns owner]": a user
// namespace kept by a bind mount (its container gone) together with a
// network namespace the host owns: the host's is joined before the user
// namespace takes our rights over it away.
#[test]
fn host_owned_namespace_joined_with_a_foreign_user_namespace() {
    // runc 1.1 wants uidMappings even for a joined user namespace.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    let pid = start_mapped_sleeper(&mut t, &target);
    let user_path = bind_user_ns(&t, pid);
    let user_ns = ns_of(pid, "user");
    t.rt(&["delete", "--force", &target]).assert_ok();

    let helper = Command::new("unshare")
        .args(["--net", "sleep", "100"])
        .stdin(Stdio::null())
        .spawn()
        .expect("starting unshare");
    let net_pid = helper.id() as i64;
    t.add_helper(helper);
    let ready = poll_until(Duration::from_secs(5), || ns_of(net_pid, "net") != host_ns("net"));
    assert!(ready, "unshare never entered its network namespace");

    as_joiner(&mut t);
    set_namespace(&mut t.config, "user", Some(s(&user_path)));
    set_namespace(&mut t.config, "network", Some(&format!("/proc/{net_pid}/ns/net")));
    // sysfs needs the network namespace's owner: bind the host's instead.
    let mounts = t.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["type"] != "sysfs");
    mounts.push(mount("/sys", "bind", "/sys", &["rbind", "ro"]));
    let joiner = t.new_id("joiner-hostnet");
    let report = t.run_checker(&joiner);
    assert_eq!(report.ns("user"), user_ns);
    assert_eq!(report.ns("net"), ns_of(net_pid, "net"));
    assert_eq!(report.int("pid"), 1);
    assert_first_containers_maps(&report);
    unbind(&user_path);
    t.assert_clean(&joiner);
}

// runc's rule: mappings next to a joined user namespace must be its own
// (containerd and CRI-O repeat them); others are refused, nothing made.
#[test]
fn mappings_must_match_a_joined_user_namespace() {
    // runc 1.1 requires the mappings and never compares them.
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    let pid = start_mapped_sleeper(&mut t, &target);
    // By a bind mount: the mappings are read from inside the namespace.
    let user_path = bind_user_ns(&t, pid);
    let user_ns = ns_of(pid, "user");
    t.rt(&["delete", "--force", &target]).assert_ok();
    as_joiner(&mut t);
    set_namespace(&mut t.config, "user", Some(s(&user_path)));
    let joiner = t.new_id("joiner-maps");

    // The same mappings are accepted.
    t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let report = t.run_checker(&joiner);
    assert_eq!(report.ns("user"), user_ns);
    assert_first_containers_maps(&report);

    t.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    let out = t.run(&joiner, &[]);
    out.assert_fails();
    let want = "user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one";
    assert!(out.stderr.contains(want), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "the container ran: {}", out.stdout);
    unbind(&user_path);
    t.assert_clean(&joiner);
}

// userns.bats "userns with 2 inaccessible mounts": a bind source below a
// directory only the host's root may enter is opened for the container by
// the runtime, so its root (host uid 100000) can still bind it.
#[test]
fn bind_sources_the_user_namespace_cannot_reach() {
    let Some(mut t) = TestEnv::new() else { return };
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
    let mut probes = vec!["checker".to_string()];
    for n in 1..=2 {
        let private = t.host_dir(&format!("private-{n}"));
        let dir = private.join("dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("foo.txt"), format!("file {n}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let dest = format!("/tmp/mount-{n}");
        t.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(mount(&dest, "bind", s(&dir), &["bind"]));
        probes.extend(["--path".to_string(), format!("{dest}/foo.txt")]);
    }
    let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
    t.args(&probes);
    let report = t.run_checker(&t.id);
    for n in 1..=2 {
        let file = &report.0["paths"][n - 1];
        assert_eq!(file["content"], json!(format!("file {n}")), "{file}");
    }
    t.assert_clean(&t.id);
}
