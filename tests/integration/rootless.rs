//! Rootless containers: the runtime run by an unprivileged user (made here,
//! with /etc/subuid and /etc/subgid ranges), as runc's rootless CI runs it.
//! The harness is root; each runtime call switches to the user, with
//! $XDG_RUNTIME_DIR a directory of the user's and no --root. What the
//! container sees comes from inside (/proc/self/uid_map, gid_map, cgroup);
//! what the host keeps from the state root and the init's cgroups.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::common::*;

const USER: &str = "xrun-rootless";
/// The size of the subordinate ranges the user is given (runc's CI's).
const RANGE: u32 = 65536;

/// The unprivileged user and its subordinate ranges.
pub(crate) struct User {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    subuid: u32,
    subgid: u32,
}

/// Creates the user (once; reused when it exists) and its /etc/subuid and
/// /etc/subgid ranges (kept, or added after every range there).
fn user() -> &'static User {
    static USER_ONCE: OnceLock<User> = OnceLock::new();
    USER_ONCE.get_or_init(|| {
        if id_of("-u").is_none() {
            let made = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/bin/sh",
                    "--user-group",
                ])
                .arg(USER)
                .status()
                .is_ok_and(|s| s.success());
            assert!(made || id_of("-u").is_some(), "useradd {USER} failed");
        }
        User {
            uid: id_of("-u").expect("uid of the test user"),
            gid: id_of("-g").expect("gid of the test user"),
            subuid: ensure_range("/etc/subuid"),
            subgid: ensure_range("/etc/subgid"),
        }
    })
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id")
        .args([flag, USER])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|_| out.status.success())
}

/// The start of USER's range in `file`, added if missing (after the last
/// range anyone has, from 100000).
fn ensure_range(file: &str) -> u32 {
    let text = fs::read_to_string(file).unwrap_or_default();
    let ranges: Vec<(&str, u32, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    if let Some(&(_, start, count)) = ranges.iter().find(|r| r.0 == USER) {
        if count >= RANGE {
            return start;
        }
    }
    let start = ranges.iter().map(|r| r.1 + r.2).max().unwrap_or(0).max(100_000);
    let mut new = text.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{USER}:{start}:{RANGE}\n"));
    fs::write(file, new).unwrap();
    start
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A test's bundle and XDG_RUNTIME_DIR, owned by the user under /tmp (the
/// checkout may not be open to other users), with the runtime copied there
/// when the user cannot run it where it is.
pub(crate) struct Rootless {
    pub(crate) env: TestEnv,
    pub(crate) user: &'static User,
    base: PathBuf,
    bundle: PathBuf,
    xdg: PathBuf,
    bin: PathBuf,
    ids: Vec<String>,
}

impl Rootless {
    pub(crate) fn new() -> Option<Rootless> {
        let env = TestEnv::new()?;
        let user = user();
        let base = Path::new("/tmp").join(format!(
            "xrun-rootless-it.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let bundle = base.join("bundle");
        let xdg = base.join("xdg");
        fs::create_dir_all(&bundle).unwrap();
        fs::create_dir_all(&xdg).unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&env.rootfs)
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(copied.success(), "copy the rootfs");
        let bin = runtime_bin();
        let bin = if runnable_by_others(&bin) {
            bin
        } else {
            let local = base.join(bin.file_name().unwrap());
            fs::copy(&bin, &local).unwrap();
            local
        };
        let chowned = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&base)
            .status()
            .unwrap();
        assert!(chowned.success(), "chown the test dir");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        let rl = Rootless {
            env,
            user,
            base,
            bundle,
            xdg,
            bin,
            ids: Vec::new(),
        };
        Some(rl)
    }

    pub(crate) fn new_id(&mut self, stem: &str) -> String {
        let id = self.env.new_id(stem);
        self.ids.push(id.clone());
        id
    }

    /// The runtime as the user: no --root, $XDG_RUNTIME_DIR its own.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.bundle)
            .env_clear()
            .env("PATH", DEFAULT_PATH.trim_start_matches("PATH="))
            .env("HOME", &self.base)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .uid(self.user.uid)
            .gid(self.user.gid)
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    fn rt(&self, args: &[&str]) -> CmdOutput {
        self.env.exec(self.command(args))
    }

    /// `spec --rootless` as the user, then `edit` on it.
    pub(crate) fn write_spec(&self, edit: impl FnOnce(&mut Value)) {
        let _ = fs::remove_file(self.bundle.join("config.json"));
        self.rt(&["spec", "--rootless"]).assert_ok();
        let path = self.bundle.join("config.json");
        let mut spec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = json!(false);
        edit(&mut spec);
        fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    }

    /// The state root the runtime should default to.
    fn state_root(&self) -> PathBuf {
        let name = if is_runc() { "runc" } else { "xrun" };
        self.xdg.join(name)
    }

    /// Nothing of `id` left: no state, no process in the bundle's rootfs.
    #[track_caller]
    pub(crate) fn assert_clean(&self, id: &str) {
        let left: Vec<_> = fs::read_dir(self.state_root())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", self.state_root().display());
        let rootfs = fs::metadata(self.bundle.join("rootfs")).unwrap();
        let anchor = [(rootfs.dev(), rootfs.ino())];
        let gone = poll_until(std::time::Duration::from_secs(3), || {
            processes_under(&self.bundle, &anchor).is_empty()
        });
        assert!(gone, "processes of {id} left behind");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            if self.state_root().join(&id).exists() {
                let _ = self.command(&["delete", "--force", &id]).output();
            }
        }
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// runc (any version) under test: its own words and state root name.
pub(crate) fn is_runc() -> bool {
    runtime_bin()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("runc"))
}

/// Whether every directory above `bin` lets others in and `bin` lets them run it.
fn runnable_by_others(bin: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.mode()).unwrap_or(0);
    mode(bin) & 0o001 != 0 && bin.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0)
}

/// The map lines of /proc/self/{uid,gid}_map as (container, host, size).
fn map_lines(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let n: Vec<u64> = l.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            (n.len() == 3).then(|| (n[0], n[1], n[2]))
        })
        .collect()
}

/// The sections of a `sh -c 'cat A; echo --; cat B ...'` output.
fn sections(out: &str) -> Vec<String> {
    out.split("--\n").map(str::to_string).collect()
}

const SHOW_MAPS: &str = "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g";

#[test]
fn default_rootless_run_maps_root_to_the_user() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-run");
    rl.write_spec(|s| s["process"]["args"] = json!(["sh", "-c", SHOW_MAPS]));
    let out = rl.rt(&["run", &id]);
    out.assert_ok();
    let parts = sections(&out.stdout);
    assert_eq!(parts.len(), 3, "{out:?}");
    let (uid, gid) = (u64::from(rl.user.uid), u64::from(rl.user.gid));
    assert_eq!(map_lines(&parts[0]), [(0, uid, 1)], "uid_map: {out:?}");
    assert_eq!(map_lines(&parts[1]), [(0, gid, 1)], "gid_map: {out:?}");
    assert_eq!(parts[2].split_whitespace().collect::<Vec<_>>(), ["0", "0"], "{out:?}");
    rl.assert_clean(&id);
}

#[test]
fn several_ranges_are_mapped_through_newuidmap() {
    if !Path::new("/usr/bin/newuidmap").exists() || !Path::new("/usr/bin/newgidmap").exists() {
        skip("newuidmap/newgidmap missing: apt-get install uidmap");
        return;
    }
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-ranges");
    let (uid, gid) = (rl.user.uid, rl.user.gid);
    let (subuid, subgid) = (rl.user.subuid, rl.user.subgid);
    rl.write_spec(|s| {
        s["process"]["args"] = json!(["sh", "-c", format!("{SHOW_MAPS}; echo --; stat -c %u:%g /bin/busybox")]);
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": subuid, "size": RANGE}
        ]);
        s["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": gid, "size": 1},
            {"containerID": 1, "hostID": subgid, "size": RANGE}
        ]);
    });
    // A file of the first subordinate ids shows as 1:1 inside.
    let busybox = rl.bundle.join("rootfs/bin/busybox");
    std::os::unix::fs::chown(&busybox, Some(subuid), Some(subgid)).unwrap();
    let out = rl.rt(&["run", &id]);
    out.assert_ok();
    let parts = sections(&out.stdout);
    assert_eq!(parts.len(), 4, "{out:?}");
    let (uid, gid, subuid, subgid, size) = (
        u64::from(uid),
        u64::from(gid),
        u64::from(subuid),
        u64::from(subgid),
        u64::from(RANGE),
    );
    assert_eq!(
        map_lines(&parts[0]),
        [(0, uid, 1), (1, subuid, size)],
        "uid_map: {out:?}"
    );
    assert_eq!(
        map_lines(&parts[1]),
        [(0, gid, 1), (1, subgid, size)],
        "gid_map: {out:?}"
    );
    assert_eq!(parts[3].trim(), "1:1", "{out:?}");
    rl.assert_clean(&id);
}

#[test]
fn state_lives_under_xdg_runtime_dir_and_no_cgroup_is_made() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-state");
    rl.write_spec(|s| s["process"]["args"] = json!(["sleep", "60"]));
    rl.rt(&["create", &id]).assert_ok();
    let state_dir = rl.state_root().join(&id);
    let meta = fs::metadata(&state_dir).unwrap_or_else(|e| panic!("{}: {e}", state_dir.display()));
    assert_eq!(meta.uid(), rl.user.uid, "state dir owner");
    let state: Value = serde_json::from_str(&rl.rt(&["state", &id]).assert_ok().stdout).unwrap();
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap();
    // The init stays in the cgroups it was started in: nothing was made
    // for it, on a host that delegates nothing to this user.
    let ours = fs::read_to_string("/proc/self/cgroup").unwrap();
    let init = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(init, ours, "the init's cgroups");
    assert!(!init.lines().any(|l| l.ends_with(&format!("/{id}"))), "{init}");
    // exec reaches an init still waiting to start (runc: "create exec").
    let exec = rl.rt(&["exec", &id, "id", "-u"]);
    assert_eq!(exec.assert_ok().stdout.trim(), "0");
    rl.rt(&["start", &id]).assert_ok();
    // The verbs that need no cgroup work on one without.
    let exec = rl.rt(&["exec", &id, "sh", "-c", "readlink /proc/self/ns/pid; id -u"]);
    let lines: Vec<&str> = exec.assert_ok().stdout.lines().collect();
    let init_pidns = fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_eq!(
        lines,
        [init_pidns.to_str().unwrap(), "0"],
        "exec'd in the init's pid namespace"
    );
    // runc fails here ("lstat : no such file or directory"); xrun finds
    // the processes by their root and namespaces.
    if !is_runc() {
        let ps = rl.rt(&["ps", "--format", "json", &id]);
        let ps: Value = serde_json::from_str(&ps.assert_ok().stdout).unwrap();
        assert!(ps.as_array().is_some_and(|p| p.contains(&json!(pid))), "ps: {ps}");
    }
    let pause = rl.rt(&["pause", &id]);
    pause.assert_fails();
    assert_eq!(
        pause.error_msgs(),
        ["cannot toggle freezer: cgroups not configured for container"]
    );
    rl.rt(&["kill", &id, "KILL"]).assert_ok();
    assert!(poll_until(std::time::Duration::from_secs(5), || {
        rl.rt(&["state", &id]).stdout.contains("\"stopped\"")
    }));
    rl.rt(&["delete", &id]).assert_ok();
    assert!(!state_dir.exists());
    rl.assert_clean(&id);
}

#[test]
fn limits_without_a_delegated_cgroup_fail_in_one_line() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-limits");
    rl.write_spec(|s| {
        s["process"]["args"] = json!(["true"]);
        s["linux"]["resources"] = json!({"pids": {"limit": 10}});
    });
    let out = rl.rt(&["run", &id]);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "{out:?}");
    // runc's two wordings: cgroup v1, cgroup v2.
    let v1 = "cannot set pids limit: container could not join or create cgroup";
    let v2 = "rootless needs no limits + no cgrouppath when no permission is granted for cgroups";
    assert!(msgs[0].contains(v1) || msgs[0].contains(v2), "{msgs:?}");
    rl.assert_clean(&id);
}

#[test]
fn rootless_false_makes_cgroup_permission_errors_fatal() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-false");
    rl.write_spec(|s| s["process"]["args"] = json!(["true"]));
    let out = rl.rt(&["--rootless", "false", "run", &id]);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "{out:?}");
    assert!(msgs[0].to_lowercase().contains("permission denied"), "{msgs:?}");
    rl.assert_clean(&id);
    // And auto, said out loud, is the default.
    rl.write_spec(|s| s["process"]["args"] = json!(["true"]));
    rl.rt(&["--rootless", "auto", "run", &id]).assert_ok();
    rl.assert_clean(&id);
}

#[test]
fn without_xdg_runtime_dir_the_error_says_what_to_do() {
    if is_runc() {
        skip("xrun's own message");
        return;
    }
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-noxdg");
    rl.write_spec(|s| s["process"]["args"] = json!(["true"]));
    let mut cmd = rl.command(&["run", &id]);
    cmd.env_remove("XDG_RUNTIME_DIR");
    let out = rl.env.exec(cmd);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "{out:?}");
    assert!(
        msgs[0].contains("/run/xrun") && msgs[0].contains("XDG_RUNTIME_DIR") && msgs[0].contains("--root"),
        "{msgs:?}"
    );
}

#[test]
fn supplementary_groups_are_refused_in_one_line() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-groups");
    rl.write_spec(|s| {
        s["process"]["args"] = json!(["true"]);
        s["process"]["user"]["additionalGids"] = json!([5]);
    });
    let out = rl.rt(&["run", &id]);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "{out:?}");
    assert!(
        msgs[0].contains("cannot set any additional groups in a rootless container"),
        "{msgs:?}"
    );
    rl.assert_clean(&id);
}

#[test]
fn a_configured_cgroups_path_without_permission_is_an_error() {
    let Some(mut rl) = Rootless::new() else { return };
    let id = rl.new_id("rl-cgpath");
    let path = format!("/xrun-rootless-it-{id}");
    rl.write_spec(|s| {
        s["process"]["args"] = json!(["true"]);
        s["linux"]["cgroupsPath"] = json!(path);
    });
    let out = rl.rt(&["run", &id]);
    out.assert_fails();
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "{out:?}");
    // runc's words (its bats test matches these two).
    assert!(msgs[0].contains("unable to apply cgroup configuration"), "{msgs:?}");
    assert!(msgs[0].contains("permission denied"), "{msgs:?}");
    rl.assert_clean(&id);
}

/// Cgroup directories an administrator made for the user (group-writable,
/// as runc's rootless CI makes them), one in every v1 hierarchy and the
/// hybrid's cgroup2 mount; removed on drop.
struct Delegated {
    name: String,
    dirs: Vec<PathBuf>,
}

impl Delegated {
    fn new(user: &User) -> Delegated {
        let name = format!(
            "xrun-rl-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut dirs = Vec::new();
        let hierarchies = fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path());
        for mount in hierarchies.filter(|p| !p.is_symlink() && p.join("cgroup.procs").exists()) {
            let dir = mount.join(&name);
            fs::create_dir(&dir).unwrap();
            dirs.push(dir.clone());
            for file in ["cpuset.cpus", "cpuset.mems"] {
                // v1 cpuset takes no task until these are set: the admin's part.
                if let Ok(parent) = fs::read_to_string(mount.join(file)) {
                    fs::write(dir.join(file), parent.trim()).unwrap();
                }
            }
            for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
                if !p.exists() {
                    continue;
                }
                std::os::unix::fs::chown(&p, None, Some(user.gid)).unwrap();
                let mode = fs::metadata(&p).unwrap().mode() | 0o060 | if p.is_dir() { 0o010 } else { 0 };
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Delegated { name, dirs }
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for sub in fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
            {
                let _ = fs::remove_dir(sub.path());
            }
            let _ = fs::remove_dir(dir);
        }
    }
}

#[test]
fn cgroups_an_administrator_delegated_are_used_with_their_limits() {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup2 delegation also needs the source cgroup's procs: the
        // systemd user instance's job, not this test's.
        skip("needs a cgroup v1 or hybrid host (directories delegated by chown)");
        return;
    }
    let Some(mut rl) = Rootless::new() else { return };
    let delegated = Delegated::new(rl.user);
    let id = rl.new_id("rl-deleg");
    let cgroups_path = format!("/{}/{id}", delegated.name);
    rl.write_spec(|s| {
        s["process"]["args"] = json!(["sleep", "60"]);
        s["linux"]["cgroupsPath"] = json!(cgroups_path);
        s["linux"]["resources"] = json!({"pids": {"limit": 10}});
    });
    rl.rt(&["create", &id]).assert_ok();
    let state: Value = serde_json::from_str(&rl.rt(&["state", &id]).assert_ok().stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let leaf = Path::new("/sys/fs/cgroup/pids").join(cgroups_path.trim_start_matches('/'));
    assert_eq!(fs::read_to_string(leaf.join("pids.max")).unwrap().trim(), "10");
    let procs = fs::read_to_string(leaf.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    let init = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(init.contains(&format!(":pids:{cgroups_path}\n")), "{init}");
    // Its freezer is the user's: pause works.
    rl.rt(&["pause", &id]).assert_ok();
    let paused = rl.rt(&["state", &id]);
    assert!(paused.stdout.contains("\"paused\""), "{paused:?}");
    rl.rt(&["delete", "--force", &id]).assert_ok();
    assert!(!leaf.exists(), "{} left behind", leaf.display());
    rl.assert_clean(&id);
}
