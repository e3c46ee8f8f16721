//! Idmapped bind mounts (a mount's uidMappings/gidMappings, the `idmap` and
//! `ridmap` options) and bind sources made by earlier mounts of the
//! container (runc's idmap.bats and mounts.bats "mount order" cases).

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::Path;

use serde_json::{json, Value};

use crate::common::*;

const MAP: &str = r#"[{"containerID": 0, "hostID": 100000, "size": 65536}]"#;

fn map() -> Value {
    serde_json::from_str(MAP).unwrap()
}

/// A container user namespace mapping 0 to host 100000 (65536 ids).
fn with_userns(t: &mut TestEnv) {
    set_namespace(&mut t.config, "user", None);
    t.config["linux"]["uidMappings"] = map();
    t.config["linux"]["gidMappings"] = map();
}

/// A bind mount of `source` carrying the 0→100000 mapping.
fn idmapped(source: &Path, destination: &str, options: &[&str]) -> Value {
    let mut m = mount(destination, "bind", s(source), options);
    m["uidMappings"] = map();
    m["gidMappings"] = map();
    m
}

/// Adds `m`, with its mount point made ahead: a user namespace's root
/// cannot create it in this root-owned rootfs.
fn add_mount(t: &mut TestEnv, m: Value) {
    let dest = m["destination"].as_str().unwrap();
    if !Path::new(dest).starts_with(&t.rootfs) {
        t.rootfs_mkdir(dest);
    }
    t.config["mounts"].as_array_mut().unwrap().push(m);
}

/// A host directory holding `files` (name, uid, gid).
fn owned_files(t: &TestEnv, name: &str, files: &[(&str, u32, u32)]) -> std::path::PathBuf {
    let dir = t.host_dir(name);
    for (f, uid, gid) in files {
        let p = dir.join(f);
        fs::write(&p, f.as_bytes()).unwrap();
        chown(&p, Some(*uid), Some(*gid)).unwrap();
    }
    dir
}

fn owner(report: &Checker, path: &str) -> (i64, i64) {
    let p = report.path(path);
    assert_eq!(p["exists"], true, "{path}: {p}");
    (p["uid"].as_i64().unwrap(), p["gid"].as_i64().unwrap())
}

fn overflow_id() -> i64 {
    fs::read_to_string("/proc/sys/kernel/overflowuid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Bind-mounts `src` onto `dst` on the host (cleaned up by TestEnv's drop).
fn host_bind(src: &Path, dst: &Path) {
    let ok = std::process::Command::new("mount")
        .arg("--bind")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount --bind {} {}", src.display(), dst.display());
}

// With the container's root at host 100000, the mount's 0→100000 mapping
// shows host-root files as the container's root; a plain bind of the same
// directory shows them as the overflow id. A file the container writes
// through the mount is root's on the host. No fd of the mount work reaches
// the container.
#[test]
fn idmapped_bind_maps_ownership_both_ways() {
    let Some(mut t) = TestEnv::new() else { return };
    with_userns(&mut t);
    let src = owned_files(&t, "src", &[("root-file", 0, 0), ("user-file", 5, 6)]);
    add_mount(&mut t, idmapped(&src, "/mapped", &["bind"]));
    add_mount(&mut t, bind_mount(&src, "/plain", &[]));
    t.args(&[
        "checker",
        "--path",
        "/mapped/root-file",
        "--path",
        "/mapped/user-file",
        "--path",
        "/plain/root-file",
    ]);
    let report = t.run_checker(&t.id);
    assert_eq!(owner(&report, "/mapped/root-file"), (0, 0));
    assert_eq!(owner(&report, "/mapped/user-file"), (5, 6));
    let overflow = overflow_id();
    assert_eq!(owner(&report, "/plain/root-file"), (overflow, overflow));
    let fds: Vec<i64> = report.fds().into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(fds, [0, 1, 2], "{:?}", report.fds());
    t.assert_clean(&t.id);

    // The reverse: written from inside, owned by host root.
    t.args(&["sh", "-c", "touch /mapped/new && stat -c %u:%g /mapped/new"]);
    let writer = t.new_id("mapped-writer");
    let out = t.run(&writer, &[]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "0:0");
    let meta = fs::metadata(src.join("new")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    t.assert_clean(&writer);
}

// Without a user namespace the same mount shows host root's files as
// 100000, and the container's root (host 0, unmapped in the mount) cannot
// create files there: EOVERFLOW, as runc's idmap.bats expects.
#[test]
fn idmapped_bind_without_user_namespace_shows_mapped_ids() {
    let Some(mut t) = TestEnv::new() else { return };
    let src = owned_files(&t, "src", &[("root-file", 0, 0), ("user-file", 1000, 1001)]);
    add_mount(&mut t, idmapped(&src, "/mapped", &["bind"]));
    t.args(&["checker", "--path", "/mapped/root-file", "--path", "/mapped/user-file"]);
    let report = t.run_checker(&t.id);
    assert_eq!(owner(&report, "/mapped/root-file"), (100000, 100000));
    assert_eq!(owner(&report, "/mapped/user-file"), (101000, 101001));
    t.assert_clean(&t.id);

    t.args(&["sh", "-c", "touch /mapped/new"]);
    let writer = t.new_id("unmapped-writer");
    let out = t.run(&writer, &[]);
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("Value too large"), "{}", out.stderr);
    assert!(!src.join("new").exists());
    t.assert_clean(&writer);
}

// An rbind with `idmap` maps only its top mount; with `ridmap` the
// submounts too (the submount here is a host bind inside the source).
#[test]
fn ridmap_maps_submounts_and_idmap_only_the_top() {
    let Some(mut t) = TestEnv::new() else { return };
    let tree = owned_files(&t, "tree", &[("top", 0, 0)]);
    let sub_src = owned_files(&t, "sub-src", &[("below", 0, 0)]);
    fs::create_dir(tree.join("sub")).unwrap();
    host_bind(&sub_src, &tree.join("sub"));
    add_mount(&mut t, idmapped(&tree, "/idmap", &["rbind", "idmap"]));
    add_mount(&mut t, idmapped(&tree, "/ridmap", &["rbind", "ridmap"]));
    t.args(&[
        "checker",
        "--path",
        "/idmap/top",
        "--path",
        "/idmap/sub/below",
        "--path",
        "/ridmap/top",
        "--path",
        "/ridmap/sub/below",
    ]);
    let report = t.run_checker(&t.id);
    assert_eq!(owner(&report, "/idmap/top"), (100000, 100000));
    assert_eq!(owner(&report, "/idmap/sub/below"), (0, 0));
    assert_eq!(owner(&report, "/ridmap/top"), (100000, 100000));
    assert_eq!(owner(&report, "/ridmap/sub/below"), (100000, 100000));
    unmount_under(&tree);
    t.assert_clean(&t.id);
}

// `idmap` without mappings takes the container's user namespace: host root
// shows as the container's root (not the overflow id).
#[test]
fn implied_mapping_is_the_container_user_namespace() {
    let Some(mut t) = TestEnv::new() else { return };
    with_userns(&mut t);
    let src = owned_files(&t, "src", &[("root-file", 0, 0), ("user-file", 7, 8)]);
    add_mount(&mut t, mount("/implied", "bind", s(&src), &["rbind", "idmap"]));
    t.args(&[
        "checker",
        "--path",
        "/implied/root-file",
        "--path",
        "/implied/user-file",
    ]);
    let report = t.run_checker(&t.id);
    assert_eq!(owner(&report, "/implied/root-file"), (0, 0));
    assert_eq!(owner(&report, "/implied/user-file"), (7, 8));
    t.assert_clean(&t.id);
}

// ... and of a user namespace joined by path: the joined one's mappings.
#[test]
fn implied_mapping_of_a_joined_user_namespace() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    let target = t.id.clone();
    with_userns(&mut t);
    t.start_sleeper(&target);
    let pid = t.state(&target).unwrap()["pid"].as_i64().unwrap();

    let linux = t.config["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    // The pid namespace too: a new one would belong to the host's user
    // namespace, where the joiner cannot mount a proc for it.
    for (typ, file) in [("user", "user"), ("pid", "pid")] {
        set_namespace(&mut t.config, typ, Some(&format!("/proc/{pid}/ns/{file}")));
    }
    let src = owned_files(&t, "src", &[("root-file", 0, 0)]);
    add_mount(&mut t, mount("/implied", "bind", s(&src), &["rbind", "idmap"]));
    t.args(&["checker", "--path", "/implied/root-file"]);
    let joiner = t.new_id("idmap-joiner");
    let report = t.run_checker(&joiner);
    assert_eq!(owner(&report, "/implied/root-file"), (0, 0));
    t.rt(&["delete", "--force", &target]).assert_ok();
    t.assert_clean(&joiner);
    t.assert_clean(&target);
}

/// Runs the container expecting a refusal; returns runc's error message.
fn refused(t: &TestEnv) -> String {
    let out = t.run(&t.id, &[]);
    out.assert_fails();
    t.assert_clean(&t.id);
    let msgs = out.error_msgs();
    assert_eq!(msgs.len(), 1, "one error line: {}", out.stderr);
    msgs[0].clone()
}

// Mappings the kernel refuses (overlapping ranges) fail create with one
// line naming the mount; the helper that held the user namespace is gone
// (assert_clean: no process left with its cwd in the test dir).
#[test]
fn a_bad_mapping_is_refused_with_nothing_left() {
    let Some(mut t) = TestEnv::new() else { return };
    let src = owned_files(&t, "src", &[("f", 0, 0)]);
    let mut m = idmapped(&src, "/mapped", &["bind"]);
    m["uidMappings"] = json!([
        {"containerID": 0, "hostID": 100000, "size": 10},
        {"containerID": 5, "hostID": 200000, "size": 10}
    ]);
    add_mount(&mut t, m);
    let msg = refused(&t);
    assert!(
        msg.contains(&format!("failed to create userns for {} id-mapping", s(&src)))
            && msg.contains("invalid argument"),
        "{msg}"
    );
}

// runc's validation: the option without any mapping to take, and an
// idmapped mount that is not a bind.
#[test]
fn idmap_without_mappings_or_on_a_non_bind_is_refused() {
    let Some(mut t) = TestEnv::new() else { return };
    let src = t.host_dir("src");
    add_mount(&mut t, mount("/implied", "bind", s(&src), &["bind", "idmap"]));
    let msg = refused(&t);
    assert!(
        msg.ends_with("id-mapped mounts must have both uid and gid mappings specified"),
        "{msg}"
    );

    let Some(mut t) = TestEnv::new() else { return };
    with_userns(&mut t);
    add_mount(&mut t, mount("/tmpfs", "tmpfs", "tmpfs", &["ridmap"]));
    let msg = refused(&t);
    assert!(
        msg.ends_with("id-mapped mounts are only supported for bind-mounts"),
        "{msg}"
    );
}

// A source on a filesystem that cannot be idmapped (procfs) is refused with
// runc's words, never mounted without its mapping.
#[test]
fn a_filesystem_without_idmap_support_is_refused() {
    let Some(mut t) = TestEnv::new() else { return };
    add_mount(&mut t, idmapped(Path::new("/proc/driver"), "/mapped", &["bind"]));
    let msg = refused(&t);
    assert!(
        msg.contains("failed to set MOUNT_ATTR_IDMAP on /proc/driver: invalid argument (maybe the filesystem used doesn't support idmap mounts on this kernel?)"),
        "{msg}"
    );
}

// mounts.bats "mount order": a source inside the rootfs (spelled with the
// rootfs path, as is the destination) is what earlier mounts of the
// container put there, for a plain bind and an idmapped one alike.
#[test]
fn mount_order_with_a_container_internal_source() {
    let Some(mut t) = TestEnv::new() else { return };
    let a = owned_files(&t, "a", &[("file", 0, 0)]);
    fs::write(a.join("file"), "from a").unwrap();
    t.rootfs_mkdir("/mnt");
    let rootfs = t.rootfs.to_string_lossy().into_owned();
    add_mount(&mut t, bind_mount(&a, "/mnt", &[]));
    let inside = format!("{rootfs}/mnt");
    add_mount(&mut t, mount(&format!("{rootfs}/plain"), "bind", &inside, &["rbind"]));
    add_mount(
        &mut t,
        idmapped(Path::new(&inside), &format!("{rootfs}/mapped"), &["rbind", "idmap"]),
    );
    t.args(&["checker", "--path", "/plain/file", "--path", "/mapped/file"]);
    let report = t.run_checker(&t.id);
    for (path, ids) in [("/plain/file", (0, 0)), ("/mapped/file", (100000, 100000))] {
        let p = report.path(path);
        assert_eq!(p["content"], "from a", "{path}: {p}");
        assert_eq!(owner(&report, path), ids, "{path}");
    }
    assert!(!t.rootfs.join(rootfs.trim_start_matches('/')).exists());
    t.assert_clean(&t.id);
}

// A mount's own propagation option holds on an idmapped mount (runc's
// idmap.bats "propagation flag"): the root's default private propagation
// does not undo it.
#[test]
fn idmapped_mount_keeps_its_propagation_option() {
    let Some(mut t) = TestEnv::new() else { return };
    with_userns(&mut t);
    let src = owned_files(&t, "src", &[("f", 0, 0)]);
    add_mount(&mut t, idmapped(&src, "/shared", &["bind", "shared"]));
    add_mount(&mut t, idmapped(&src, "/private", &["bind"]));
    let report = t.run_checker(&t.id);
    let optional = |at: &str| strings(&report.mount_at(at)["optional"]);
    assert!(
        optional("/shared").iter().any(|f| f.starts_with("shared:")),
        "{:?}",
        optional("/shared")
    );
    assert!(optional("/private").is_empty(), "{:?}", optional("/private"));
    t.assert_clean(&t.id);
}

#[test]
fn features_report_idmap() {
    let Some(t) = TestEnv::new() else { return };
    let out = t.rt(&["features"]);
    out.assert_ok();
    let f: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
}

// Without a mount namespace the mounts land in the runtime's: the source is
// still idmapped, and nothing stays mounted once the container is gone.
// xrun-only: runc (1.4.2 too) leaves the rootfs bind mounted in that case.
#[test]
fn idmapped_bind_without_a_mount_namespace() {
    if xrun_only() {
        return;
    }
    let Some(mut t) = TestEnv::new() else { return };
    remove_namespace(&mut t.config, "mount");
    // runc refuses masks without a mount namespace of the container's own.
    t.config["linux"]["maskedPaths"] = json!([]);
    t.config["linux"]["readonlyPaths"] = json!([]);
    let src = owned_files(&t, "src", &[("root-file", 0, 0)]);
    add_mount(&mut t, idmapped(&src, "/mapped", &["bind"]));
    t.args(&["checker", "--path", "/mapped/root-file"]);
    let report = t.run_checker(&t.id);
    assert_eq!(owner(&report, "/mapped/root-file"), (100000, 100000));
    t.assert_clean(&t.id);
}

// A bind source whose parent directory a user namespace's root may not
// search is opened by the runtime and mounted through its fd (userns.bats
// "userns with 2 inaccessible mounts").
#[test]
fn a_bind_source_out_of_the_user_namespace_reach_is_mounted() {
    let Some(mut t) = TestEnv::new() else { return };
    with_userns(&mut t);
    let closed = t.host_dir("closed");
    fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let inner = closed.join("dir");
    fs::create_dir(&inner).unwrap();
    fs::write(inner.join("file"), "reached").unwrap();
    add_mount(&mut t, bind_mount(&inner, "/reached", &[]));
    t.args(&["checker", "--path", "/reached/file"]);
    let report = t.run_checker(&t.id);
    assert_eq!(report.path("/reached/file")["content"], "reached");
    let fds: Vec<i64> = report.fds().into_iter().map(|(fd, _)| fd).collect();
    assert_eq!(fds, [0, 1, 2], "{:?}", report.fds());
    t.assert_clean(&t.id);
}
