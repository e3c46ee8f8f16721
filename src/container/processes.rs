//! Every process of a container: the members of its cgroup. For a state
//! recorded without a cgroup, a process belongs to the container when its
//! root directory is the container's rootfs and, where the container has its
//! own pid or mount namespace, it lives in that namespace (recorded at
//! create). Needed for `kill --all` and `delete` when the container shares
//! the host's pid namespace; with its own, the kernel ends everything with
//! its init.

use std::os::unix::fs::MetadataExt;

use crate::state::Saved;
use crate::sys;

/// The identity of a namespace of `pid` ("pid:[4026531836]").
pub fn namespace_of(pid: i32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn belongs(pid: i32, root: (u64, u64), saved: &Saved) -> bool {
    let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/root")) else {
        return false;
    };
    if (meta.dev(), meta.ino()) != root {
        return false;
    }
    let same = |kind, recorded: &Option<String>| recorded.is_none() || namespace_of(pid, kind) == *recorded;
    same("pid", &saved.pid_ns) && same("mnt", &saved.mnt_ns)
}

/// Host pids of the container's processes (the init included, if alive):
/// its cgroup's, or (for state from before cgroups) found by root and
/// namespaces.
pub fn list(saved: &Saved) -> Vec<i32> {
    if let Some(record) = &saved.cgroup {
        return crate::cgroups::pids(record);
    }
    let Ok(rootfs) = std::fs::metadata(&saved.rootfs) else {
        return Vec::new();
    };
    let root = (rootfs.dev(), rootfs.ino());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = sys::getpid();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && belongs(pid, root, saved))
        .collect()
}

/// Sends `sig` to every process of the container; returns how many.
pub fn signal_all(saved: &Saved, sig: i32) -> usize {
    let pids = list(saved);
    for &pid in &pids {
        let _ = sys::kill(pid, sig);
    }
    pids.len()
}

/// SIGKILLs what is left of a container whose init may be gone, until
/// nothing is left (bounded: 5 s), and removes its cgroup.
pub fn kill_leftovers(saved: &Saved) {
    if let Some(record) = &saved.cgroup {
        return crate::cgroups::destroy(record);
    }
    if saved.own_pid_ns {
        return; // the kernel killed the namespace with its init
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while signal_all(saved, libc::SIGKILL) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
