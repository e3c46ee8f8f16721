//! Root filesystem hardening, as an attacker inside (or an image) would test
//! it: /proc or /sys planted as a symlink, a fresh procfs mounted through a
//! user namespace under --no-pivot, and bind mount flags locked by the host
//! that the config asks to clear.

use crate::common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// A failure must be reported, not hung on.
const QUICK: Duration = Duration::from_secs(5);

fn user_namespace(t: &mut TestEnv) {
    set_namespace(&mut t.config, "user", None);
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    t.config["linux"]["uidMappings"] = mapping.clone();
    t.config["linux"]["gidMappings"] = mapping;
}

// ---------------------------------------------------------------------------
// /proc and /sys must be real directories

/// Replaces `/name` in the rootfs by a symlink to `/target` and runs; the
/// run must fail quickly with runc's words and mount nothing anywhere.
fn assert_symlink_refused(name: &str, fstype: &str, target: &str, create_target: bool) {
    let Some(t) = TestEnv::new() else { return };
    let link = t.rootfs.join(name);
    fs::remove_dir(&link).unwrap();
    let target_dir = t.rootfs.join(target.trim_start_matches('/'));
    if create_target {
        fs::create_dir(&target_dir).unwrap();
    }
    symlink(target, &link).unwrap();
    let out = t.run(&t.id, &[]);
    out.assert_fails();
    assert!(out.elapsed < QUICK, "refusing took {:?}", out.elapsed);
    // runc's log escapes the quotes around the type: match around them.
    let named = out.stderr.contains(&format!("filesystem \"{fstype}\""))
        || out.stderr.contains(&format!("filesystem \\\"{fstype}\\\""));
    assert!(named, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("must be mounted on ordinary directory"),
        "stderr: {}",
        out.stderr
    );
    // The link's target got nothing: not created, not mounted over.
    if create_target {
        assert_eq!(fs::read_dir(&target_dir).unwrap().count(), 0);
    } else {
        assert!(!target_dir.exists(), "{target} was created");
    }
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    t.assert_clean(&t.id);
}

// runc mounts.bats "runc run [/proc is a symlink]" (CVE-2019-19921): the
// symlink used to be followed and procfs mounted at /bad-proc.
#[test]
fn proc_symlink_is_refused_quickly() {
    assert_symlink_refused("proc", "proc", "/bad-proc", true);
}

#[test]
fn sys_symlink_is_refused_quickly() {
    assert_symlink_refused("sys", "sysfs", "/nowhere", false);
}

// ---------------------------------------------------------------------------
// --no-pivot: no host procfs/sysfs left for mount_too_revealing

fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| build_static_c("pseudofs_probe"))
}

/// Runs the probe under --no-pivot as an unprivileged user (uid 1000, no
/// capabilities); None when the host allows no user namespaces.
fn probe_no_pivot(t: &mut TestEnv) -> Option<Value> {
    fs::copy(probe(), t.rootfs.join("bin/pseudofs_probe")).unwrap();
    t.args(&["pseudofs_probe"]);
    t.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = t.run(&t.id, &["--no-pivot"]);
    let line = out.stdout.lines().find(|l| l.starts_with('{')).unwrap_or("");
    let report: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("no probe report: {out:#?}"));
    if let Some(err) = report["error"].as_str() {
        skip(&format!("no user namespace for the probe: {err}"));
        return None;
    }
    out.assert_ok();
    t.assert_clean(&t.id);
    Some(report)
}

/// runc no_pivot.bats: `unshare -mrpf sh -c 'mount -t proc none /proc'`
/// must fail, else the container gets a /proc without its maskedPaths.
#[test]
fn no_pivot_fresh_procfs_mount_is_denied() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let Some(report) = probe_no_pivot(&mut t) else { return };
    assert_eq!(report["proc"], "EPERM", "{report}");
    assert_eq!(report["sysfs"], "EPERM", "{report}");
    // The whole mount namespace, outside the root included, holds only the
    // container's own procfs and sysfs.
    if report["listmount"] == "ok" {
        assert_eq!(strings(&report["full"]), ["proc /proc", "sysfs /sys"], "{report}");
    } else {
        skip("listmount(2) unavailable: mount table not checked");
    }
}

/// In a user namespace the host's mounts are locked and cannot be
/// unmounted: covered instead, the fresh mount must fail all the same.
#[test]
fn no_pivot_in_user_namespace_fresh_procfs_mount_is_denied() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    user_namespace(&mut t);
    let Some(report) = probe_no_pivot(&mut t) else { return };
    assert_eq!(report["proc"], "EPERM", "{report}");
    assert_eq!(report["sysfs"], "EPERM", "{report}");
}

// ---------------------------------------------------------------------------
// Bind mount flags locked by a more privileged mount namespace

/// A tmpfs on a host dir with per-mount `flags` (set by a bind remount, so
/// they are the mount's and not the superblock's, as runc's sshfs tests do).
fn locked_source(t: &TestEnv, flags: libc::c_ulong) -> PathBuf {
    let dir = t.host_dir("locked-src");
    let c = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: plain mount(2) calls with valid NUL-terminated strings.
    unsafe {
        assert_eq!(
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"mode=755".as_ptr().cast()
            ),
            0
        );
        let remount = libc::MS_REMOUNT | libc::MS_BIND | flags;
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c.as_ptr(),
                std::ptr::null(),
                remount,
                std::ptr::null()
            ),
            0
        );
    }
    dir
}

fn unmount(dir: &Path) {
    let c = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: umount2 of the tmpfs this test mounted.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// Runs with `source` bound at /data with `options`, in a user namespace.
fn run_with_bind(t: &mut TestEnv, id: &str, source: &Path, options: &[&str]) -> CmdOutput {
    // Root of a user namespace may not create it in the host-owned rootfs.
    t.rootfs_mkdir("data");
    let mut mounts = default_config()["mounts"].clone();
    mounts
        .as_array_mut()
        .unwrap()
        .push(mount("/data", "bind", s(source), options));
    t.config["mounts"] = mounts;
    t.run(id, &[])
}

// runc mounts_sshfs.bats, with a tmpfs for the FUSE mount: in a user
// namespace, a locked flag the config clears is an error naming it.
#[test]
fn clearing_locked_flags_in_a_user_namespace_fails() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    user_namespace(&mut t);
    let locked = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME;
    let src = locked_source(&t, locked);
    let cases: &[(&[&str], &str)] = &[
        (
            &["bind", "dev", "suid", "exec", "atime"],
            "cannot clear locked flags MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_NOATIME",
        ),
        (&["bind", "exec"], "cannot clear locked flags MS_NOEXEC"),
        (&["bind", "relatime"], "cannot change locked atime flags MS_NOATIME"),
    ];
    let mut ids = Vec::new();
    for (i, (options, words)) in cases.iter().enumerate() {
        let id = t.new_id(&format!("clear{i}"));
        let out = run_with_bind(&mut t, &id, &src, options);
        out.assert_fails();
        assert!(out.elapsed < QUICK, "{options:?} took {:?}", out.elapsed);
        assert!(out.stderr.contains(words), "{options:?}: {}", out.stderr);
        assert!(out.stderr.contains("operation not permitted"), "{}", out.stderr);
        assert!(out.stderr.contains("/data"), "{}", out.stderr);
        ids.push(id);
    }
    // A read-only source: "rw" clears MS_RDONLY.
    unmount(&src);
    let src = locked_source(&t, libc::MS_RDONLY);
    let id = t.new_id("clear-ro");
    let out = run_with_bind(&mut t, &id, &src, &["bind", "rw", "nosuid"]);
    out.assert_fails();
    assert!(
        out.stderr.contains("cannot clear locked flags MS_RDONLY"),
        "{}",
        out.stderr
    );
    ids.push(id);
    // Our own source mount out of the way, nothing else may remain.
    unmount(&src);
    for id in ids {
        t.assert_clean(&id);
    }
}

/// Locked flags the config says nothing about are kept, and the ones it
/// sets are applied; without a user namespace the config's flags win.
#[test]
fn locked_flags_not_cleared_are_kept() {
    let Some(mut t) = TestEnv::new() else { return };
    let locked = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NOATIME;
    let src = locked_source(&t, locked);
    let flags_at_data = |out: &CmdOutput| {
        out.assert_ok();
        options(&out.checker().mount_at("/data")["options"])
    };

    let plain = t.new_id("plain");
    let flags = flags_at_data(&run_with_bind(&mut t, &plain, &src, &["bind", "nodev", "rw"]));
    assert!(
        flags.contains(&"rw".into()) && flags.contains(&"nodev".into()),
        "{flags:?}"
    );
    assert!(
        !flags.contains(&"nosuid".into()) && !flags.contains(&"noexec".into()),
        "{flags:?}"
    );

    // runc 1.1 fails here: it learnt locked flags in 1.2.
    if xrun_only() {
        unmount(&src);
        return;
    }
    user_namespace(&mut t);
    let id = t.new_id("userns");
    let flags = flags_at_data(&run_with_bind(&mut t, &id, &src, &["bind", "nodev"]));
    for f in ["ro", "nosuid", "noexec", "noatime", "nodev"] {
        assert!(flags.contains(&f.to_string()), "{f} missing: {flags:?}");
    }
    unmount(&src);
    t.assert_clean(&plain);
    t.assert_clean(&id);
}
