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
