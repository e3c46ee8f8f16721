//! LSM labels (process.apparmorProfile, process.selinuxLabel,
//! linux.mountLabel) on a host without AppArmor and SELinux: each must
//! behave as runc 1.1 does there (checked with XRUN_BIN=/usr/sbin/runc).

use crate::common::*;
use serde_json::json;
use std::path::Path;

fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Runs the default config with `edit` applied; asserts it fails naming
/// `words` (case-insensitive) and leaves nothing behind.
#[track_caller]
fn fails_cleanly(env: &mut TestEnv, words: &[&str]) {
    let id = env.id.clone();
    let out = env.run(&id, &[]);
    out.assert_fails();
    let err = out.stderr.to_lowercase();
    for w in words {
        assert!(err.contains(&w.to_lowercase()), "{w:?} not in stderr: {}", out.stderr);
    }
    assert!(Checker::parse(&out.stdout).is_none(), "the process ran: {}", out.stdout);
    env.assert_clean(&id);
}

#[test]
fn apparmor_profile_without_apparmor_fails_at_the_write() {
    let Some(mut env) = TestEnv::new() else { return };
    if apparmor_enabled() {
        return skip("AppArmor is enabled here: the profile would need to exist");
    }
    env.config["process"]["apparmorProfile"] = json!("xrun-test-profile");
    // runc: "apparmor failed to apply profile: write /proc/self/attr/exec:
    // invalid argument" (the kernel's EINVAL: no LSM owns attr/exec).
    fails_cleanly(&mut env, &["apparmor", "attr/exec", "invalid argument"]);
}

#[test]
fn apparmor_profile_fails_in_create_too() {
    let Some(mut env) = TestEnv::new() else { return };
    if apparmor_enabled() {
        return skip("AppArmor is enabled here");
    }
    env.config["process"]["apparmorProfile"] = json!("xrun-test-profile");
    let id = env.id.clone();
    let out = env.create(&id, &[]);
    out.assert_fails();
    assert!(out.stderr.to_lowercase().contains("apparmor"), "{}", out.stderr);
    assert!(env.state(&id).is_none(), "a failed create left a container");
    env.assert_clean(&id);
}

#[test]
fn selinux_label_without_selinux_is_refused_up_front() {
    let Some(mut env) = TestEnv::new() else { return };
    if selinux_enabled() {
        return skip("SELinux is enabled here");
    }
    env.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
    fails_cleanly(
        &mut env,
        &["selinux label is specified in config, but selinux is disabled or not supported"],
    );
}

#[test]
fn mount_label_without_selinux_fails_on_the_first_labelled_mount() {
    let Some(mut env) = TestEnv::new() else { return };
    if selinux_enabled() {
        return skip("SELinux is enabled here");
    }
    env.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    // The /dev tmpfs is the first mount that carries context="...", which
    // tmpfs without SELinux refuses.
    fails_cleanly(&mut env, &["/dev", "invalid argument"]);
}

#[test]
fn mount_label_on_a_masked_directory_fails_the_mask() {
    let Some(mut env) = TestEnv::new() else { return };
    if selinux_enabled() {
        return skip("SELinux is enabled here");
    }
    env.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    // Only the mounts runc never labels: the masked directory's tmpfs is
    // the first labelled one.
    env.config["mounts"] = json!([mount("/proc", "proc", "proc", &[])]);
    env.config["linux"]["maskedPaths"] = json!(["/proc/kcore", "/proc/driver"]);
    fails_cleanly(&mut env, &["/proc/driver", "invalid argument"]);
}

#[test]
fn mount_label_is_not_put_on_proc_sysfs_or_mqueue() {
    let Some(mut env) = TestEnv::new() else { return };
    if selinux_enabled() {
        return skip("SELinux is enabled here");
    }
    env.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    env.config["mounts"] = json!([
        mount("/proc", "proc", "proc", &[]),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ]);
    // Masked files are covered by /dev/null binds, which carry no label.
    env.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    env.rootfs_mkdir("dev/mqueue");
    let id = env.id.clone();
    let report = env.run_checker(&id);
    let mq = report.mount_at("/dev/mqueue");
    assert_eq!(mq["fstype"], "mqueue", "{mq}");
    env.assert_clean(&id);
}

#[test]
fn exec_with_an_apparmor_profile_fails_and_leaves_the_container_running() {
    let Some(mut env) = TestEnv::new() else { return };
    if apparmor_enabled() {
        return skip("AppArmor is enabled here");
    }
    let id = env.id.clone();
    env.start_sleeper(&id);
    let out = env.rt(&["exec", "--apparmor", "xrun-test-profile", &id, "checker"]);
    out.assert_fails();
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("apparmor") && err.contains("invalid argument"),
        "{}",
        out.stderr
    );
    assert!(Checker::parse(&out.stdout).is_none(), "the process ran: {}", out.stdout);
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}
