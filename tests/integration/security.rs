//! Hostile images and host protection: symlinks in the rootfs that point
//! at host files, and the runtime binary's exposure (CVE-2019-5736).

mod exe_write;

use crate::common::*;
use serde_json::json;
use std::ffi::CString;
use std::fs;
use std::path::Path;

/// Host mounts whose mount point is `path`.
fn host_mounts_at(path: &Path) -> Vec<MountEntry> {
    host_mounts()
        .into_iter()
        .filter(|m| Path::new(&m.mount_point) == path)
        .collect()
}

#[test]
fn masked_path_symlink_to_host_file_leaves_it_alone() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let host_file = t.host_dir("host").join("sensitive");
    fs::write(&host_file, "precious").unwrap();
    std::os::unix::fs::symlink(&host_file, t.rootfs.join("etc/evil")).unwrap();
    let masked = t.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    masked.push(json!("/etc/evil"));

    t.start_sleeper(&id);
    assert!(
        host_mounts_at(&host_file).is_empty(),
        "host file was masked on the host"
    );
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "precious");
    fs::write(&host_file, "still writable").unwrap();
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn readonly_path_symlink_to_host_dir_leaves_it_writable() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let host = t.host_dir("host");
    std::os::unix::fs::symlink(&host, t.rootfs.join("etc/evil")).unwrap();
    let readonly = t.config["linux"]["readonlyPaths"].as_array_mut().unwrap();
    readonly.push(json!("/etc/evil"));

    t.start_sleeper(&id);
    assert!(host_mounts_at(&host).is_empty(), "host dir was remounted on the host");
    fs::write(host.join("new-file"), "ok").expect("host dir still writable");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn dev_null_symlink_in_image_cannot_reach_host() {
    let Some(mut t) = TestEnv::new() else { return };
    let host_file = t.host_dir("host").join("sensitive");
    fs::write(&host_file, "precious").unwrap();
    // No /dev tmpfs: the image's own /dev is used, and its "null" is a
    // symlink to a host path.
    let mounts = t.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    std::os::unix::fs::symlink(&host_file, t.rootfs.join("dev/null")).unwrap();
    t.config["root"]["readonly"] = json!(false);
    t.args(&["sh", "-c", "echo pwned > /dev/null"]);
    // Whether the runtime refuses or replaces the link does not matter.
    let _ = t.run(&t.id, &[]);
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "precious");
    assert!(host_mounts_at(&host_file).is_empty());
    t.assert_clean(&t.id);
}

/// True if the file system holding `path` is mounted read-only.
fn on_readonly_fs(path: &str) -> bool {
    let c = CString::new(path).unwrap();
    // SAFETY: statvfs fills a zeroed struct for a valid path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0
    }
}

/// errno of opening `path` for writing, or 0 if it opened.
fn open_for_write_errno(path: &str) -> i32 {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

// The init process of a created container still runs the runtime's own
// binary; the host file must not be writable through /proc/<pid>/exe.
#[test]
fn runtime_binary_is_read_only_while_created() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();
    let pid = t.state(&id).unwrap()["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    let errno = open_for_write_errno(&exe);
    assert!(
        on_readonly_fs(&exe) || errno == libc::EROFS,
        "{exe} is writable from the host (open errno {errno})"
    );
}
