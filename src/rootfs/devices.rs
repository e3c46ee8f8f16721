//! Device nodes in the container's /dev: the defaults every container gets,
//! `linux.devices`, and the standard /dev symlinks.

use std::os::fd::AsRawFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve;
use crate::sync::{At, Failure, Step};
use crate::sys;

/// A device to create: path inside the container, type bits, numbers, owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub kind: u32,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// null, zero, full, random, urandom, tty: what runc gives every container.
pub fn defaults() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: format!("/dev/{name}"),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Result<Node, String> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => return Err(format!("device {}: type \"a\" is not a node", d.path().display())),
    };
    if d.major() < 0 || d.minor() < 0 {
        return Err(format!("device {}: negative major/minor", d.path().display()));
    }
    Ok(Node {
        path: d.path().to_string_lossy().into_owned(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// All devices to create: the defaults, then the config's (which win).
pub fn plan(config: &[LinuxDevice]) -> Result<Vec<Node>, String> {
    let mut nodes = defaults();
    for d in config {
        let n = from_spec(d)?;
        if Path::new(&n.path) == Path::new("/dev/ptmx") {
            // Always the devpts instance's (`create_symlinks`), as runc: a
            // node, or in a user namespace a bind of the host's, would not be.
            continue;
        }
        nodes.retain(|existing| existing.path != n.path);
        nodes.push(n);
    }
    Ok(nodes)
}

/// Creates one node with mknod, or (inside a user namespace, where mknod is
/// not allowed) bind mounts the host's node of the same path.
pub fn create(root: i32, node: &Node, in_user_ns: bool) -> Result<(), Failure> {
    let rel = resolve::clean(Path::new(&node.path));
    let (parent, name) = resolve::split(&rel).at(Step::CreateDevice, &node.path)?;
    let dir = resolve::mkdir_all(root, parent, 0o755).at(Step::CreateDevice, &node.path)?;
    let dirfd = dir.as_raw_fd();
    // Whatever the image has there (a file, a planted symlink) goes away;
    // unlinkat never follows a symlink.
    match sys::unlinkat(dirfd, name, 0) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Failure::new(Step::CreateDevice, &node.path, &e)),
    }
    if in_user_ns {
        let target = resolve::ensure(root, &rel, true).at(Step::CreateDevice, &node.path)?;
        let host = sys::cstring(Path::new(&node.path)).at(Step::CreateDevice, &node.path)?;
        return sys::mount(
            Some(&host),
            &resolve::fd_path(target.as_raw_fd()),
            None,
            libc::MS_BIND,
            None,
        )
        .at(Step::CreateDevice, &node.path);
    }
    let dev = sys::makedev(node.major, node.minor);
    sys::mknodat(dirfd, name, node.kind | node.mode, dev).at(Step::CreateDevice, &node.path)?;
    let fd = sys::openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0).at(Step::CreateDevice, &node.path)?;
    sys::fchownat_empty(fd.as_raw_fd(), node.uid, node.gid).at(Step::CreateDevice, &node.path)
}

/// /dev/fd, /dev/std{in,out,err} and /dev/ptmx, where the image lacks them.
pub fn create_symlinks(root: i32) -> Result<(), Failure> {
    let links = [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
        ("pts/ptmx", "dev/ptmx"),
    ];
    let dev = resolve::mkdir_all(root, Path::new("dev"), 0o755).at(Step::Symlink, "/dev")?;
    for (target, link) in links {
        let name = Path::new(link).file_name().map(Path::new).unwrap_or(Path::new(link));
        if link == "dev/ptmx" {
            // A real ptmx node in the image would bypass the devpts instance.
            let _ = sys::unlinkat(dev.as_raw_fd(), name, 0);
        }
        match sys::symlinkat(Path::new(target), dev.as_raw_fd(), name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(Failure::new(Step::Symlink, format!("/{link}"), &e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(json: serde_json::Value) -> LinuxDevice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn dev_ptmx_is_never_a_node() {
        let nodes = plan(&[dev(
            serde_json::json!({"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2}),
        )])
        .unwrap();
        assert!(nodes.iter().all(|n| n.path != "/dev/ptmx"));
    }

    #[test]
    fn config_devices_override_defaults() {
        let nodes = plan(&[
            dev(serde_json::json!({"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600})),
            dev(serde_json::json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "uid": 5, "gid": 6})),
        ])
        .unwrap();
        assert_eq!(nodes.len(), 7);
        let null = nodes.iter().find(|n| n.path == "/dev/null").unwrap();
        assert_eq!(null.mode, 0o600);
        let fuse = nodes.iter().find(|n| n.path == "/dev/fuse").unwrap();
        assert_eq!(
            (fuse.kind, fuse.major, fuse.minor, fuse.uid, fuse.gid),
            (libc::S_IFCHR, 10, 229, 5, 6)
        );
    }

    #[test]
    fn block_and_fifo_types_map_to_mode_bits() {
        let b = from_spec(&dev(
            serde_json::json!({"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}),
        ))
        .unwrap();
        assert_eq!(b.kind, libc::S_IFBLK);
        let p = from_spec(&dev(serde_json::json!({"path": "/dev/p", "type": "p"}))).unwrap();
        assert_eq!(p.kind, libc::S_IFIFO);
    }
}
