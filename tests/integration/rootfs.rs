//! Root filesystem: hostname, mounts, propagation, devices, masked and
//! read-only paths, sysctls.

use crate::common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::path::Path;

fn add_mount(t: &mut TestEnv, m: Value) {
    t.config["mounts"].as_array_mut().unwrap().push(m);
}

/// Runs the checker with `--path` for each of `paths`.
fn check_paths(t: &mut TestEnv, paths: &[&str]) -> Checker {
    let mut args = vec!["checker"];
    for p in paths {
        args.extend(["--path", p]);
    }
    t.args(&args);
    let id = t.id.clone();
    let report = t.run_checker(&id);
    t.assert_clean(&id);
    report
}

/// Names in a host directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn hostname_is_set() {
    let Some(t) = TestEnv::new() else { return };
    let report = t.run_checker(&t.id);
    assert_eq!(report.str("hostname"), "xrun-test");
}

// xrun-only: runc 1.1.5 ignores the spec's `domainname` field.
#[test]
fn domainname_is_set() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["domainname"] = json!("example.test");
    let report = t.run_checker(&t.id);
    assert_eq!(report.str("domainname"), "example.test");
}

#[test]
fn default_mounts_have_their_types_and_options() {
    let Some(mut t) = TestEnv::new() else { return };
    let report = check_paths(&mut t, &[]);
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(report.mount_at(point)["fstype"], fstype, "{point}");
    }
    let sys = options(&report.mount_at("/sys")["options"]);
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(sys.contains(&opt.to_string()), "/sys options {sys:?}");
    }
    let shm = report.mount_at("/dev/shm");
    assert!(options(&shm["super_options"]).contains(&"size=65536k".to_string()));
}

#[test]
fn tmpfs_mount_gets_size_and_flags() {
    let Some(mut t) = TestEnv::new() else { return };
    add_mount(
        &mut t,
        mount(
            "/scratch",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "noexec", "size=1m", "mode=700"],
        ),
    );
    let report = check_paths(&mut t, &["/scratch"]);
    let m = report.mount_at("/scratch");
    assert_eq!(m["fstype"], "tmpfs");
    let opts = options(&m["options"]);
    for opt in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&opt.to_string()), "options {opts:?} lack {opt}");
    }
    let super_opts = options(&m["super_options"]);
    assert!(super_opts.contains(&"size=1024k".to_string()), "{super_opts:?}");
    assert!(super_opts.contains(&"mode=700".to_string()), "{super_opts:?}");
    let dir = report.path("/scratch");
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(dir["write"], "ok");
}

#[test]
fn bind_mount_shows_host_files() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = t.host_dir("data");
    fs::write(host.join("hello.txt"), "from the host").unwrap();
    add_mount(&mut t, bind_mount(&host, "/data", &[]));
    let report = check_paths(&mut t, &["/data", "/data/hello.txt"]);
    assert_eq!(report.path("/data")["entries"], json!(["hello.txt"]));
    assert_eq!(report.path("/data")["write"], "ok");
    assert_eq!(report.path("/data/hello.txt")["content"], "from the host");
    assert_eq!(listing(&host), ["hello.txt"], "write probe left something behind");
}

#[test]
fn read_only_bind_mount_rejects_writes() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = t.host_dir("data");
    fs::write(host.join("file"), "x").unwrap();
    add_mount(&mut t, bind_mount(&host, "/data", &["ro", "nosuid", "nodev", "noexec"]));
    let report = check_paths(&mut t, &["/data", "/data/file"]);
    let opts = options(&report.mount_at("/data")["options"]);
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&opt.to_string()), "options {opts:?} lack {opt}");
    }
    assert_eq!(report.path("/data")["write"], "EROFS");
    assert_eq!(report.path("/data/file")["write"], "EROFS");
    // The host side stays writable.
    fs::write(host.join("file"), "y").unwrap();
}

#[test]
fn symlink_mount_destination_cannot_escape_rootfs() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = t.host_dir("hostdir");
    fs::write(host.join("keep"), "host file").unwrap();
    std::os::unix::fs::symlink(&host, t.rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink(&host, t.rootfs.join("evil2")).unwrap();
    // A mount on the link itself, and one that needs a directory created
    // below it.
    add_mount(&mut t, mount("/evil", "tmpfs", "tmpfs", &["size=1m"]));
    add_mount(&mut t, mount("/evil2/sub", "tmpfs", "tmpfs", &["size=1m"]));
    // Either outcome is acceptable: resolved inside the rootfs, or refused.
    let out = t.run(&t.id, &[]);
    assert_eq!(listing(&host), ["keep"], "the runtime wrote through the symlink");
    assert_eq!(fs::read_to_string(host.join("keep")).unwrap(), "host file");
    if out.success() {
        // The links were followed inside the rootfs.
        let report = out.checker();
        assert_eq!(report.mount_at(s(&host))["fstype"], "tmpfs");
        assert_eq!(report.mount_at(&format!("{}/sub", host.display()))["fstype"], "tmpfs");
    }
    // Also checks that no host mount appeared at the link's target.
    t.assert_clean(&t.id);
}

#[test]
fn dotdot_mount_destination_cannot_escape_rootfs() {
    let Some(mut t) = TestEnv::new() else { return };
    let host = t.host_dir("hostdir");
    fs::write(host.join("keep"), "host file").unwrap();
    let escape = format!("/{}{}/sub", "../".repeat(40), host.display());
    add_mount(&mut t, mount(&escape, "tmpfs", "tmpfs", &["size=1m"]));
    let out = t.run(&t.id, &[]);
    assert_eq!(listing(&host), ["keep"], "the runtime wrote outside the rootfs");
    if out.success() {
        // Clamped to the rootfs: the mount is at the path without the `..`.
        let inside = format!("{}/sub", host.display());
        assert_eq!(out.checker().mount_at(&inside)["fstype"], "tmpfs");
    }
    t.assert_clean(&t.id);
}

#[test]
fn bind_through_dangling_symlink_component_creates_inside_rootfs() {
    let Some(mut t) = TestEnv::new() else { return };
    let outside = t.host_dir("outside");
    let src = t.dir.join("hosts-src");
    fs::write(&src, "bound file").unwrap();
    // /etc/hosts -> /jump/baz/hosts, /jump -> /../../<outside>/bar: both
    // missing, and the second aims above the root at a real host directory.
    let jump = format!("/../..{}/bar", outside.display());
    std::os::unix::fs::symlink(&jump, t.rootfs.join("jump")).unwrap();
    std::os::unix::fs::symlink("/jump/baz/hosts", t.rootfs.join("etc/hosts")).unwrap();
    add_mount(&mut t, bind_mount(&src, "/etc/hosts", &[]));
    let real = format!("{}/bar/baz/hosts", outside.display());
    let report = check_paths(&mut t, &["/etc/hosts", &real]);
    assert_eq!(listing(&outside), Vec::<String>::new(), "created outside the rootfs");
    let inside = t.rootfs.join(outside.strip_prefix("/").unwrap()).join("bar/baz/hosts");
    assert!(inside.is_file(), "{} was not created", inside.display());
    assert_eq!(report.path("/etc/hosts")["type"], "link");
    assert_eq!(report.path(&real)["content"], "bound file");
    assert_eq!(report.mount_at(&real)["mount_point"], real.as_str());
}

#[test]
fn bind_onto_trailing_dangling_symlink_creates_inside_rootfs() {
    let Some(mut t) = TestEnv::new() else { return };
    let outside = t.host_dir("outside");
    let src_file = t.dir.join("hosts-src");
    fs::write(&src_file, "bound file").unwrap();
    let src_dir = t.host_dir("dir-src");
    fs::write(src_dir.join("inner"), "in dir").unwrap();
    // A file bind on an absolute dangling link, a directory bind on a
    // relative one that climbs above the root towards a host directory.
    std::os::unix::fs::symlink("/tmp/hosts", t.rootfs.join("etc/hosts")).unwrap();
    let up = format!("../../../..{}/made", outside.display());
    std::os::unix::fs::symlink(&up, t.rootfs.join("etc/dirlink")).unwrap();
    add_mount(&mut t, bind_mount(&src_file, "/etc/hosts", &[]));
    add_mount(&mut t, bind_mount(&src_dir, "/etc/dirlink", &[]));
    let made = format!("{}/made", outside.display());
    let report = check_paths(&mut t, &["/tmp/hosts", &format!("{made}/inner")]);
    assert_eq!(listing(&outside), Vec::<String>::new(), "created outside the rootfs");
    assert!(t.rootfs.join("tmp/hosts").is_file());
    assert!(t.rootfs.join(made.strip_prefix('/').unwrap()).is_dir());
    assert_eq!(report.path("/tmp/hosts")["content"], "bound file");
    assert_eq!(report.path(&format!("{made}/inner"))["content"], "in dir");
    assert_eq!(report.mount_at("/tmp/hosts")["mount_point"], "/tmp/hosts");
    assert_eq!(report.mount_at(&made)["mount_point"], made.as_str());
}

/// Bind-mounts `dir` onto itself on the host as a shared mount (its own
/// peer group), so propagation into the container becomes observable.
fn make_shared_mount(dir: &Path) {
    let path = CString::new(s(dir)).unwrap();
    // SAFETY: mount(2) with valid NUL-terminated strings.
    unsafe {
        let (no_str, no_data) = (std::ptr::null(), std::ptr::null());
        let bind = libc::mount(path.as_ptr(), path.as_ptr(), no_str, libc::MS_BIND, no_data);
        assert_eq!(bind, 0, "bind mount of {}", dir.display());
        let shared = libc::mount(no_str, path.as_ptr(), no_str, libc::MS_SHARED, no_data);
        assert_eq!(shared, 0, "making {} shared", dir.display());
    }
}

/// Optional mountinfo fields of the container's bind mount of a shared
/// host mount, under the given rootfsPropagation (None: skipped).
fn propagation_fields(propagation: &str) -> Option<Vec<String>> {
    let mut t = TestEnv::new()?;
    let shared = t.host_dir("shared");
    make_shared_mount(&shared);
    add_mount(&mut t, bind_mount(&shared, "/shared", &[]));
    t.config["linux"]["rootfsPropagation"] = json!(propagation);
    let report = t.run_checker(&t.id);
    unmount_under(&shared);
    t.assert_clean(&t.id);
    Some(strings(&report.mount_at("/shared")["optional"]))
}

fn has_tag(fields: &[String], tag: &str) -> bool {
    fields.iter().any(|f| f.starts_with(tag))
}

// runc 1.1 always leaves the container's "/" private (it binds the rootfs
// from a private parent), so propagation is observed on a bind mount below.
#[test]
fn rootfs_propagation_rshared() {
    let Some(fields) = propagation_fields("rshared") else {
        return;
    };
    assert!(has_tag(&fields, "shared:"), "{fields:?}");
}

#[test]
fn rootfs_propagation_rslave() {
    let Some(fields) = propagation_fields("rslave") else {
        return;
    };
    assert!(has_tag(&fields, "master:"), "{fields:?}");
    assert!(!has_tag(&fields, "shared:"), "{fields:?}");
}

#[test]
fn rootfs_propagation_rprivate() {
    let Some(fields) = propagation_fields("rprivate") else {
        return;
    };
    assert!(
        !has_tag(&fields, "shared:") && !has_tag(&fields, "master:"),
        "{fields:?}"
    );
}

// xrun-only: runc 1.1 never applies rootfsPropagation to the "/" mount
// itself (see above); the spec says it sets the rootfs mount's propagation.
#[test]
fn rootfs_propagation_shared_applies_to_root_mount() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["rootfsPropagation"] = json!("shared");
    let report = t.run_checker(&t.id);
    let fields = strings(&report.mount_at("/")["optional"]);
    assert!(has_tag(&fields, "shared:"), "{fields:?}");
}

#[test]
fn readonly_root_rejects_writes() {
    let Some(mut t) = TestEnv::new() else { return };
    let report = check_paths(&mut t, &["/", "/bin/busybox"]);
    assert_eq!(report.path("/")["write"], "EROFS");
    assert_eq!(report.path("/bin/busybox")["write"], "EROFS");
    assert!(options(&report.mount_at("/")["options"]).contains(&"ro".to_string()));
}

#[test]
fn writable_root_accepts_writes() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["root"]["readonly"] = json!(false);
    let report = check_paths(&mut t, &["/", "/bin/busybox"]);
    assert_eq!(report.path("/")["write"], "ok");
    assert_eq!(report.path("/bin/busybox")["write"], "ok");
}

#[test]
fn default_devices_exist() {
    let Some(mut t) = TestEnv::new() else { return };
    let devices = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let paths: Vec<&str> = devices.iter().map(|d| d.0).collect();
    let report = check_paths(&mut t, &paths);
    for (path, major, minor) in devices {
        let dev = report.path(path);
        assert_eq!(dev["type"], "chr", "{path}: {dev}");
        assert_eq!(
            (dev["major"].as_i64(), dev["minor"].as_i64()),
            (Some(major), Some(minor)),
            "{path}"
        );
        assert_eq!(mode_of(&dev), 0o666, "{path}");
    }
    assert_eq!(report.path("/dev/null")["content"], "");
}

#[test]
fn dev_symlinks_exist() {
    let Some(mut t) = TestEnv::new() else { return };
    let links = [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let paths: Vec<&str> = links.iter().map(|l| l.0).collect();
    let report = check_paths(&mut t, &paths);
    for (path, target) in links {
        let link = report.path(path);
        assert_eq!(link["type"], "link", "{path}: {link}");
        assert_eq!(link["link_target"], target, "{path}");
    }
}

#[test]
fn linux_devices_are_created() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/extra/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001},
    ]);
    let report = check_paths(&mut t, &["/dev/fuse", "/dev/extra/null2"]);
    let fuse = report.path("/dev/fuse");
    assert_eq!(fuse["type"], "chr");
    assert_eq!((fuse["major"].as_i64(), fuse["minor"].as_i64()), (Some(10), Some(229)));
    assert_eq!(mode_of(&fuse), 0o666);
    assert_eq!((fuse["uid"].as_i64(), fuse["gid"].as_i64()), (Some(0), Some(0)));
    let null2 = report.path("/dev/extra/null2");
    assert_eq!(null2["type"], "chr");
    assert_eq!((null2["major"].as_i64(), null2["minor"].as_i64()), (Some(1), Some(3)));
    assert_eq!(mode_of(&null2), 0o640);
    assert_eq!((null2["uid"].as_i64(), null2["gid"].as_i64()), (Some(1000), Some(1001)));
}

#[test]
fn masked_paths_hide_files_and_dirs() {
    let Some(mut t) = TestEnv::new() else { return };
    fs::write(t.rootfs.join("etc/secret"), "top secret").unwrap();
    let dir = t.rootfs_mkdir("etc/secretdir");
    fs::write(dir.join("inner"), "also secret").unwrap();
    let masked = t.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    masked.extend([json!("/etc/secret"), json!("/etc/secretdir"), json!("/etc/missing")]);
    // Which of the default masked /proc files exist depends on the kernel.
    let proc_file = ["/proc/kcore", "/proc/keys", "/proc/timer_list"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no maskable /proc file on this kernel");
    let report = check_paths(&mut t, &["/etc/secret", "/etc/secretdir", proc_file]);
    for file in ["/etc/secret", proc_file] {
        let f = report.path(file);
        assert_eq!(f["type"], "chr", "{file}: {f}");
        assert_eq!((f["major"].as_i64(), f["minor"].as_i64()), (Some(1), Some(3)), "{file}");
        assert_eq!(f["content"], "", "{file}");
    }
    let d = report.path("/etc/secretdir");
    assert_eq!(d["type"], "dir");
    assert_eq!(d["entries"], json!([]));
    assert_eq!(d["write"], "EROFS");
}

#[test]
fn readonly_paths_are_not_writable() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["root"]["readonly"] = json!(false);
    t.rootfs_mkdir("etc/rodir");
    let ro = t.config["linux"]["readonlyPaths"].as_array_mut().unwrap();
    ro.push(json!("/etc/rodir"));
    let report = check_paths(
        &mut t,
        &[
            "/proc/sys",
            "/proc/sys/kernel/hostname",
            "/proc/fs",
            "/etc/rodir",
            "/etc",
        ],
    );
    for path in ["/proc/sys/kernel/hostname", "/etc/rodir"] {
        assert_eq!(report.path(path)["write"], "EROFS", "{path}");
    }
    // Probing procfs dirs says ENOENT/EACCES before EROFS; check the mounts.
    for path in ["/proc/sys", "/proc/fs", "/etc/rodir"] {
        let opts = options(&report.mount_at(path)["options"]);
        assert!(opts.contains(&"ro".to_string()), "{path}: {opts:?}");
    }
    assert_eq!(report.path("/etc")["write"], "ok");
}

#[test]
fn sysctls_are_applied_inside_only() {
    let Some(mut t) = TestEnv::new() else { return };
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_rmid = fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    t.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shm_rmid_forced": "1",
    });
    let report = check_paths(
        &mut t,
        &["/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shm_rmid_forced"],
    );
    assert_eq!(report.path("/proc/sys/net/ipv4/ip_forward")["content"], "1\n");
    assert_eq!(report.path("/proc/sys/kernel/shm_rmid_forced")["content"], "1\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_rmid
    );
}

#[test]
fn container_mounts_stay_out_of_host_mountinfo() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let host = t.host_dir("data");
    add_mount(&mut t, bind_mount(&host, "/data", &[]));
    add_mount(&mut t, mount("/scratch", "tmpfs", "tmpfs", &[]));
    t.start_sleeper(&id);
    let visible: Vec<_> = host_mounts()
        .into_iter()
        .filter(|m| Path::new(&m.mount_point).starts_with(&t.dir))
        .collect();
    assert!(visible.is_empty(), "container mounts on the host: {visible:#?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

/// Like runc, a tmpfs without `mode=` takes the mode of the directory it
/// covers; an explicit `mode=` wins, and a new directory keeps tmpfs's 1777.
#[test]
fn tmpfs_takes_the_mode_of_the_directory_it_covers() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut t) = TestEnv::new() else { return };
    for dir in ["/inherit", "/explicit"] {
        let p = t.rootfs_mkdir(dir);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o710)).unwrap();
    }
    add_mount(&mut t, mount("/inherit", "tmpfs", "tmpfs", &["nodev", "nosuid"]));
    add_mount(&mut t, mount("/explicit", "tmpfs", "tmpfs", &["mode=0410"]));
    add_mount(&mut t, mount("/fresh", "tmpfs", "tmpfs", &[]));
    let report = check_paths(&mut t, &["/inherit", "/explicit", "/fresh"]);
    assert_eq!(report.mount_at("/inherit")["fstype"], "tmpfs");
    assert_eq!(format!("{:o}", mode_of(&report.path("/inherit"))), "710");
    assert_eq!(format!("{:o}", mode_of(&report.path("/explicit"))), "410");
    assert_eq!(format!("{:o}", mode_of(&report.path("/fresh"))), "1777");
}

/// `tmpcopyup`: the new tmpfs starts with a copy of what it covers.
#[test]
fn tmpcopyup_copies_the_covered_directory_into_the_tmpfs() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut t) = TestEnv::new() else { return };
    let seed = t.rootfs_mkdir("/seed/sub");
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(t.rootfs.join("seed/hello"), "hi").unwrap();
    std::os::unix::fs::symlink("hello", t.rootfs.join("seed/link")).unwrap();
    add_mount(&mut t, mount("/seed", "tmpfs", "tmpfs", &["tmpcopyup"]));
    let report = check_paths(&mut t, &["/seed/sub", "/seed/hello", "/seed/link"]);
    assert_eq!(report.mount_at("/seed")["fstype"], "tmpfs");
    assert_eq!(format!("{:o}", mode_of(&report.path("/seed/sub"))), "777");
    assert_eq!(report.path("/seed/hello")["exists"], true);
    assert_eq!(report.path("/seed/hello")["type"], "file");
    assert_eq!(report.path("/seed/link")["type"], "link");
}

/// A read-only /dev (and tmpfs) is made read-only only after its device
/// nodes and submounts are in place, as runc does.
#[test]
fn read_only_dev_and_tmpfs_are_mounted_read_only_after_setup() {
    let Some(mut t) = TestEnv::new() else { return };
    for m in t.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    add_mount(
        &mut t,
        mount("/rotmp", "tmpfs", "tmpfs", &["ro", "nosuid", "mode=0700"]),
    );
    let report = check_paths(&mut t, &["/dev/null", "/rotmp"]);
    let dev = options(&report.mount_at("/dev")["options"]);
    assert!(dev.contains(&"ro".to_string()), "/dev options {dev:?}");
    assert_eq!(report.mount_at("/dev/pts")["fstype"], "devpts");
    assert_eq!(report.path("/dev/null")["type"], "chr");
    let rotmp = options(&report.mount_at("/rotmp")["options"]);
    assert!(rotmp.contains(&"ro".to_string()), "/rotmp options {rotmp:?}");
    assert!(rotmp.contains(&"nosuid".to_string()), "/rotmp options {rotmp:?}");
    assert_eq!(format!("{:o}", mode_of(&report.path("/rotmp"))), "700");
}
