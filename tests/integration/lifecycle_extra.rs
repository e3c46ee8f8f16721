//! Less common lifecycles: no mount namespace, a pid namespace joined by
//! path, user namespaces through create/start, a config without `process`,
//! `start` returning only once the program runs, and how a failing create
//! reports its error (one line; JSON log).

use crate::common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Host mount points at or below `dir`.
fn host_mount_points_under(dir: &Path) -> Vec<String> {
    host_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| Path::new(p).starts_with(dir))
        .collect()
}

// xrun-only: runc 1.1 refuses maskedPaths/readonlyPaths without a mount
// namespace ("unable to restrict sys entries without a private MNT
// namespace") and, without them, leaves every container mount on the host
// after `delete`.
#[test]
fn no_mount_namespace_mounts_on_the_host_until_delete() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    remove_namespace(&mut t.config, "mount");
    let created = t.start_sleeper(&id);
    let report = t.wait_checker(&created);
    assert_eq!(report.ns("mnt"), host_ns("mnt"));
    assert_eq!(report.int("pid"), 1);
    // chroot, not pivot_root: the host's mounts outside the root are hidden
    // from the container's mountinfo, its own appear relative to its root.
    assert_eq!(report.mount_at("/proc")["fstype"], "proc");
    assert_eq!(report.mount_at("/dev")["fstype"], "tmpfs");

    let points = host_mount_points_under(&t.rootfs);
    for dest in ["", "/proc", "/dev", "/dev/pts", "/sys"] {
        let p = format!("{}{dest}", t.rootfs.display());
        assert!(points.contains(&p), "{p} not mounted on the host: {points:#?}");
    }
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// xrun-only: see above.
#[test]
fn no_mount_namespace_run_leaves_no_mounts() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    remove_namespace(&mut t.config, "mount");
    fs::write(t.rootfs.join("etc/secret"), "top secret").unwrap();
    let masked = t.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    masked.push(json!("/etc/secret"));
    t.args(&[
        "checker",
        "--path",
        "/etc/secret",
        "--path",
        "/proc/sys/kernel/hostname",
    ]);
    let report = t.run_checker(&t.id);
    assert_eq!(report.ns("mnt"), host_ns("mnt"));
    // Masked and read-only paths still apply (in the host's mount table).
    let secret = report.path("/etc/secret");
    assert_eq!(secret["type"], "chr", "{secret}");
    assert_eq!(secret["content"], "", "{secret}");
    assert_eq!(report.path("/proc/sys/kernel/hostname")["write"], "EROFS");
    let sys_opts = options(&report.mount_at("/proc/sys")["options"]);
    assert!(sys_opts.contains(&"ro".to_string()), "{sys_opts:?}");
    t.assert_clean(&t.id);
}

/// `unshare --pid --fork --mount-proc --kill-child sleep 30`: its sleep is
/// pid 1 of a new pid namespace. Dropping it kills both by PID.
struct PidNsHolder {
    unshare: Child,
    init: i32,
}

impl PidNsHolder {
    fn start() -> PidNsHolder {
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child", "sleep", "30"])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting unshare");
        let mut holder = PidNsHolder { unshare, init: 0 };
        let parent = holder.unshare.id() as i32;
        // Its child, once it has become sleep (in the new namespace).
        let ready = poll_until(Duration::from_secs(5), || {
            holder.init = children_of(parent).first().copied().unwrap_or(0);
            holder.init > 0
                && fs::read_to_string(format!("/proc/{}/comm", holder.init)).is_ok_and(|c| c.trim() == "sleep")
        });
        assert!(ready, "unshare never started its sleep");
        holder
    }

    fn ns(&self) -> String {
        fs::read_link(format!("/proc/{}/ns/pid", self.init))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for PidNsHolder {
    fn drop(&mut self) {
        if self.init > 0 {
            // SAFETY: kill(2) of the sleep this holder started.
            unsafe { libc::kill(self.init, libc::SIGKILL) };
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// PIDs whose parent is `pid`, from /proc/*/stat.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .collect()
}

#[test]
fn pid_namespace_joined_by_path() {
    let Some(mut t) = TestEnv::new() else { return };
    let holder = PidNsHolder::start();
    assert_ne!(holder.ns(), host_ns("pid"));
    let path = format!("/proc/{}/ns/pid", holder.init);
    set_namespace(&mut t.config, "pid", Some(&path));
    let report = t.run_checker(&t.id);
    assert_eq!(report.ns("pid"), holder.ns());
    // The namespace's init is the sleep; the checker is just another member.
    assert_ne!(report.int("pid"), 1);
    t.assert_clean(&t.id);
}

#[test]
fn user_namespace_with_create_and_start() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
    let created = t.create(&id, &[]);
    created.assert_ok();
    assert_eq!(t.status(&id), "created");
    t.rt(&["start", &id]).assert_ok();
    let report = t.wait_checker(&created);
    assert_ne!(report.ns("user"), host_ns("user"));
    assert_eq!(report.int("uid"), 0);
    assert_eq!(report.int("gid"), 0);
    for map in ["uid_map", "gid_map"] {
        let fields: Vec<&str> = report.str(map).split_whitespace().collect();
        assert_eq!(fields, ["0", "100000", "65536"], "{map}");
    }
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

// xrun-only: runc 1.1 refuses to create a container without `process`
// ("process property must not be empty"); the spec only needs it at start.
#[test]
fn create_without_process_cannot_start() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.config.as_object_mut().unwrap().remove("process");
    t.create(&id, &[]).assert_ok();
    assert_eq!(t.status(&id), "created");
    let out = t.rt(&["start", &id]);
    out.assert_fails();
    assert!(out.stderr.contains("process"), "stderr: {}", out.stderr);
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

/// First line of a file, trimmed ("" if missing).
fn first_line(p: &Path) -> String {
    let text = fs::read_to_string(p).unwrap_or_default();
    text.lines().next().unwrap_or("").trim().to_string()
}

// xrun-only: runc 1.1 runs poststart hooks during `create`, while its init
// still waits to exec.
#[test]
fn poststart_hook_sees_the_container_program() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let log = t.host_dir("hooklog");
    // Runs on the host with the static busybox: pid from the state on stdin.
    let script = format!(
        "pid=$(busybox sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); \
         busybox cat /proc/$pid/comm > {d}/comm; busybox readlink /proc/$pid/exe > {d}/exe",
        d = log.display()
    );
    t.config["hooks"] = json!({"poststart": [{"path": "/bin/busybox", "args": ["sh", "-c", script]}]});
    t.start_sleeper(&id);
    assert!(log.join("exe").exists(), "the poststart hook did not run");
    assert_eq!(first_line(&log.join("comm")), "checker");
    let exe = first_line(&log.join("exe"));
    assert!(exe.ends_with("/bin/checker"), "poststart saw {exe:?}");
}

// xrun-only: runc 1.1's `start` returns once its init has read the go-ahead,
// possibly before the execve.
#[test]
fn start_returns_once_the_program_runs() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let pid = t.state(&id).unwrap()["pid"].as_i64().unwrap();
    assert_eq!(first_line(Path::new(&format!("/proc/{pid}/comm"))), "checker");
}

/// A config whose bind mount source does not exist.
fn with_missing_bind_source(t: &mut TestEnv) -> String {
    let missing = t.dir.join("no-such-source");
    t.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(bind_mount(&missing, "/mnt", &[]));
    s(&missing).to_string()
}

#[test]
fn mount_error_is_one_line_with_step_path_and_errno() {
    let Some(mut t) = TestEnv::new() else { return };
    let missing = with_missing_bind_source(&mut t);
    let out = t.create(&t.id, &[]);
    out.assert_fails();
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.contains(&missing), "stderr: {err}");
    // The test's name (in every path) says "mount" too: look outside them.
    let words = err.replace(s(&t.dir), "");
    assert!(words.contains("mount"), "stderr: {err}");
    assert!(
        err.to_lowercase().contains("no such file or directory"),
        "stderr: {err}"
    );
    t.assert_clean(&t.id);
}

#[test]
fn json_log_of_failed_create_has_exactly_one_error() {
    let Some(mut t) = TestEnv::new() else { return };
    let missing = with_missing_bind_source(&mut t);
    t.write_config();
    let log = t.dir.join("runtime.log");
    let bundle = s(&t.bundle).to_string();
    let args = [
        "--log",
        s(&log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        &bundle,
        &t.id,
    ];
    let out = t.rt(&args);
    out.assert_fails();
    let text = fs::read_to_string(&log).expect("log file written");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    for entry in &entries {
        for key in ["level", "msg", "time"] {
            assert!(entry[key].is_string(), "{key} missing in {entry}");
        }
    }
    let errors: Vec<&Value> = entries.iter().filter(|e| e["level"] == "error").collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0]["msg"].as_str().unwrap().contains(&missing), "{text}");
    t.assert_clean(&t.id);
}

/// Starts `sh` with two background checkers in a container of `t` whose
/// pid namespace is not its own; returns once all three run.
fn start_three_processes(t: &mut TestEnv, id: &str) {
    t.args(&["sh", "-c", "checker --sleep 60 & checker --sleep 60 & wait"]);
    t.create(id, &[]).assert_ok();
    t.rt(&["start", id]).assert_ok();
    let all_up = poll_until(Duration::from_secs(5), || t.leaked_processes().len() >= 3);
    assert!(all_up, "processes: {:?}", t.leaked_processes());
}

// Without its own pid namespace, `delete --force` must still kill every
// process of the container, not only the init (runc uses the cgroup; xrun,
// until cgroups land, the processes whose root is the container's rootfs).
#[test]
fn delete_force_without_own_pid_namespace_kills_every_process() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    remove_namespace(&mut t.config, "pid");
    start_three_processes(&mut t, &id);
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// As above, for a pid namespace joined by path.
#[test]
fn delete_force_in_joined_pid_namespace_kills_every_process() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let holder = PidNsHolder::start();
    set_namespace(&mut t.config, "pid", Some(&format!("/proc/{}/ns/pid", holder.init)));
    start_three_processes(&mut t, &id);
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// `kill --all` without the container's own pid namespace reaches every
// process of the container.
#[test]
fn kill_all_without_own_pid_namespace_kills_every_process() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    remove_namespace(&mut t.config, "pid");
    start_three_processes(&mut t, &id);
    t.rt(&["kill", "--all", &id, "KILL"]).assert_ok();
    t.wait_status(&id, "stopped");
    let gone = poll_until(Duration::from_secs(3), || t.leaked_processes().is_empty());
    assert!(gone, "processes left: {:?}", t.leaked_processes());
}

// When the init of a container without its own pid namespace exits, `run`
// must not leave its children behind.
#[test]
fn run_without_own_pid_namespace_leaves_no_processes() {
    let Some(mut t) = TestEnv::new() else { return };
    remove_namespace(&mut t.config, "pid");
    t.args(&[
        "sh",
        "-c",
        "checker --sleep 60 >/dev/null & checker --sleep 60 >/dev/null & exit 0",
    ]);
    t.run(&t.id, &[]).assert_ok();
    t.assert_clean(&t.id);
}
