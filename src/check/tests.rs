//! `check` over fake /proc, /sys and /etc trees.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

struct Tree {
    dir: PathBuf,
}

impl Tree {
    /// A v2 host: every namespace, cgroup2 at /sys/fs/cgroup, user
    /// namespaces on, seccomp with every action, newuidmap setuid.
    fn v2() -> Tree {
        let dir = std::env::temp_dir().join(format!(
            "xrun-check-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        let t = Tree { dir };
        for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user", "time"] {
            t.write(&format!("proc/self/ns/{ns}"), "");
        }
        t.write(
            "proc/self/mountinfo",
            "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        t.write("proc/self/cgroup", "0::/init.scope\n");
        t.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
        t.write("proc/sys/user/max_user_namespaces", "1000\n");
        t.write(
            "proc/sys/kernel/seccomp/actions_avail",
            "kill_process errno user_notif allow\n",
        );
        t.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n",
        );
        t.write("etc/subuid", "ann:100000:65536\n");
        t.write("etc/subgid", "1000:200000:65536\n");
        for tool in ["newuidmap", "newgidmap"] {
            t.write(&format!("usr/bin/{tool}"), "");
            fs::set_permissions(t.dir.join("usr/bin").join(tool), fs::Permissions::from_mode(0o4755)).unwrap();
        }
        t
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn host(&self, uid: u32) -> Host {
        Host {
            root: self.dir.clone(),
            uid,
            state_root: self.dir.join("run/xrun"),
            path_env: "/usr/sbin:/usr/bin".into(),
            runtime_dir: None,
            kernel: Kernel {
                release: "6.1.0-57-amd64".into(),
                clone3: true,
                pidfd: true,
            },
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn topic<'a>(findings: &'a [Finding], name: &str) -> &'a Finding {
    findings.iter().find(|f| f.topic == name).unwrap()
}

fn is_root() -> bool {
    crate::sys::geteuid() == 0
}

#[test]
fn a_v2_host_passes_and_says_what_it_has() {
    let t = Tree::v2();
    let f = run(&t.host(0));
    assert_eq!(exit_code(&f), 0, "{f:#?}");
    let cg = topic(&f, "cgroups");
    assert_eq!(cg.verdict, Verdict::Ok);
    assert_eq!(
        cg.detail,
        "v2 (unified) at /sys/fs/cgroup, controllers: cpuset cpu io memory pids"
    );
    assert_eq!(
        topic(&f, "state root").detail,
        format!(
            "{} can be made (in {})",
            t.dir.join("run/xrun").display(),
            t.dir.display()
        )
    );
    assert_eq!(
        topic(&f, "user namespaces").detail,
        "available (user.max_user_namespaces 1000)"
    );
    assert_eq!(topic(&f, "seccomp").verdict, Verdict::Ok);
    assert_eq!(topic(&f, "time namespace").verdict, Verdict::Ok);
    assert_eq!(topic(&f, "systemd").verdict, Verdict::No);
    // root has no subordinate ids here; ann has both, by name and by uid.
    assert_eq!(topic(&f, "subordinate ids").verdict, Verdict::No);
    let ann = run(&t.host(1000));
    assert_eq!(
        topic(&ann, "subordinate ids").detail,
        "ann: uids 100000-165535, gids 200000-265535"
    );
    if is_root() {
        assert_eq!(topic(&f, "newuidmap").verdict, Verdict::Ok, "{f:#?}");
    }
}

#[test]
fn hybrid_and_legacy_layouts_are_told_apart() {
    let t = Tree::v2();
    t.write(
        "proc/self/mountinfo",
        "30 1 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
         31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
         32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n",
    );
    t.write("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
    let f = run(&t.host(0));
    assert_eq!(
        topic(&f, "cgroups").detail,
        "v1 controllers: cpu cpuacct memory, and cgroup2 at /sys/fs/cgroup/unified (hybrid), controllers: hugetlb"
    );
    t.write(
        "proc/self/mountinfo",
        "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    );
    assert_eq!(topic(&run(&t.host(0)), "cgroups").detail, "v1 controllers: memory");
}

#[test]
fn what_a_default_container_needs_fails_the_check() {
    let t = Tree::v2();
    t.write("proc/self/mountinfo", "");
    let f = run(&t.host(0));
    let cg = topic(&f, "cgroups");
    assert_eq!(cg.verdict, Verdict::Fail);
    assert_eq!(cg.fix.as_deref(), Some("mount -t cgroup2 none /sys/fs/cgroup"));
    assert_eq!(exit_code(&f), 1);

    let t = Tree::v2();
    fs::remove_file(t.dir.join("proc/self/ns/ipc")).unwrap();
    let f = run(&t.host(0));
    assert_eq!(topic(&f, "namespaces").verdict, Verdict::Fail);
    assert!(topic(&f, "namespaces").detail.starts_with("missing: ipc"));

    let t = Tree::v2();
    let mut host = t.host(0);
    host.kernel.clone3 = false;
    let f = run(&host);
    assert_eq!(topic(&f, "clone3, pidfd").verdict, Verdict::Fail);
    assert_eq!(exit_code(&f), 1);

    let t = Tree::v2();
    t.write("run", "a file where the state root's parent should be");
    let f = run(&t.host(0));
    assert_eq!(topic(&f, "state root").verdict, Verdict::Fail, "{f:#?}");
}

#[test]
fn user_namespaces_matter_for_users_not_root() {
    let t = Tree::v2();
    t.write("proc/sys/user/max_user_namespaces", "0\n");
    assert_eq!(topic(&run(&t.host(0)), "user namespaces").verdict, Verdict::No);
    let f = run(&t.host(1000));
    let userns = topic(&f, "user namespaces");
    assert_eq!(userns.verdict, Verdict::Fail);
    assert_eq!(userns.fix.as_deref(), Some("sysctl -w user.max_user_namespaces=15000"));

    let t = Tree::v2();
    t.write("proc/sys/kernel/unprivileged_userns_clone", "0\n");
    assert_eq!(topic(&run(&t.host(0)), "user namespaces").verdict, Verdict::Ok);
    assert_eq!(topic(&run(&t.host(1000)), "user namespaces").verdict, Verdict::Fail);
}

#[test]
fn a_delegated_v2_subtree_is_found_for_a_user() {
    if !is_root() {
        return; // needs chown
    }
    let t = Tree::v2();
    let svc = "sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
    t.write(
        "proc/self/cgroup",
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n",
    );
    t.write(&format!("{svc}/cgroup.procs"), "");
    t.write(&format!("{svc}/cgroup.controllers"), "cpu memory pids\n");
    t.write(&format!("{svc}/app.slice/cgroup.procs"), "");
    let f = run(&t.host(1000));
    assert_eq!(topic(&f, "cgroups").verdict, Verdict::No, "not delegated yet");
    for dir in [svc.to_string(), format!("{svc}/app.slice")] {
        std::os::unix::fs::chown(t.dir.join(dir).join("cgroup.procs"), Some(1000), None).unwrap();
    }
    let f = run(&t.host(1000));
    let cg = topic(&f, "cgroups");
    assert_eq!(cg.verdict, Verdict::Ok);
    assert!(
        cg.detail.ends_with(
            "delegated to uid 1000: /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service (cpu memory pids)"
        ),
        "{}",
        cg.detail
    );
}

#[test]
fn optional_features_say_what_is_refused_without_them() {
    let t = Tree::v2();
    t.write("proc/sys/kernel/seccomp/actions_avail", "kill_process errno allow\n");
    fs::remove_file(t.dir.join("proc/self/ns/time")).unwrap();
    let mut host = t.host(0);
    host.kernel.release = "5.4.0".into();
    let f = run(&host);
    assert_eq!(exit_code(&f), 0);
    assert!(topic(&f, "seccomp").detail.contains("no user_notif"));
    assert_eq!(topic(&f, "time namespace").verdict, Verdict::No);
    assert_eq!(topic(&f, "idmapped mounts").verdict, Verdict::No);
    fs::remove_file(t.dir.join("usr/bin/newgidmap")).unwrap();
    let tools = run(&t.host(0));
    assert_eq!(
        topic(&tools, "newuidmap").fix.as_deref(),
        Some("apt-get install uidmap")
    );
}

#[test]
fn a_line_is_verdict_topic_detail_and_fix() {
    let f = Finding::new("seccomp", Verdict::No, "absent").fix("rebuild");
    assert_eq!(f.to_string(), "no   seccomp           absent; fix: rebuild");
    assert_eq!(
        Finding::new("LSM", Verdict::Fail, "x").to_string(),
        "FAIL LSM               x"
    );
}

#[test]
fn kernel_versions_parse() {
    assert_eq!(probes::version("6.1.0-57-amd64"), Some((6, 1)));
    assert_eq!(probes::version("5.12"), Some((5, 12)));
    assert_eq!(probes::version("x"), None);
    let t = Tree::v2();
    let mut host = t.host(0);
    host.kernel.release = "5.11.22".into();
    assert_eq!(probes::idmapped_mounts(&host).verdict, Verdict::No);
    host.kernel.release = "5.12.0".into();
    assert_eq!(probes::idmapped_mounts(&host).verdict, Verdict::Ok);
}
