//! One function a topic of `xrun check`, each reading through `Host`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Finding, Host, Verdict};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn state_root(host: &Host) -> Finding {
    const TOPIC: &str = "state root";
    let dir = &host.state_root;
    let Some(existing) = dir.ancestors().find(|a| a.symlink_metadata().is_ok()) else {
        return Finding::new(
            TOPIC,
            Verdict::Fail,
            format!("{} has no existing ancestor", dir.display()),
        );
    };
    let fix = if host.uid == 0 {
        "pass --root DIR naming a writable directory (a tmpfs, e.g. under /run)".to_string()
    } else {
        "set XDG_RUNTIME_DIR to a directory you own (xrun then keeps its state in $XDG_RUNTIME_DIR/xrun), or pass --root DIR".to_string()
    };
    if !existing.is_dir() {
        let detail = format!(
            "{} cannot be made: {} is not a directory",
            dir.display(),
            existing.display()
        );
        return Finding::new(TOPIC, Verdict::Fail, detail).fix(fix);
    }
    match crate::sys::access_writable(existing) {
        Ok(()) if existing == dir.as_path() => {
            Finding::new(TOPIC, Verdict::Ok, format!("{} is writable", dir.display()))
        }
        Ok(()) => Finding::new(
            TOPIC,
            Verdict::Ok,
            format!("{} can be made (in {})", dir.display(), existing.display()),
        ),
        Err(e) => {
            let why = crate::sys::strerror(e.raw_os_error().unwrap_or(libc::EACCES));
            let detail = format!("{} is not writable by uid {}: {why}", existing.display(), host.uid);
            Finding::new(TOPIC, Verdict::Fail, detail).fix(fix)
        }
    }
}

pub fn namespaces(host: &Host) -> Finding {
    const TOPIC: &str = "namespaces";
    let wanted = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| !host.exists(&format!("/proc/self/ns/{n}")))
        .collect();
    if missing.is_empty() {
        return Finding::new(TOPIC, Verdict::Ok, wanted.join(" "));
    }
    let detail = format!("missing: {} (a default container uses each)", missing.join(" "));
    Finding::new(TOPIC, Verdict::Fail, detail).fix("a kernel built with CONFIG_NAMESPACES and every CONFIG_*_NS")
}

pub fn clone3_and_pidfd(host: &Host) -> Finding {
    const TOPIC: &str = "clone3, pidfd";
    let k = &host.kernel;
    if k.clone3 && k.pidfd {
        return Finding::new(TOPIC, Verdict::Ok, "clone3 and pidfd_open work");
    }
    let missing: Vec<&str> = [("clone3", k.clone3), ("pidfd_open", k.pidfd)]
        .iter()
        .filter(|(_, have)| !have)
        .map(|(name, _)| *name)
        .collect();
    let detail = format!(
        "{} unavailable (kernel {}): xrun needs both",
        missing.join(" and "),
        k.release
    );
    Finding::new(TOPIC, Verdict::Fail, detail).fix("Linux 5.3 or newer, without a seccomp filter denying them")
}

/// Mount points of the cgroup2 filesystems below /sys/fs/cgroup.
fn cgroup2_mounts(mountinfo: &str) -> Vec<&str> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            (right.starts_with("cgroup2 ") && point.starts_with(CGROUP_ROOT)).then_some(point)
        })
        .collect()
}

fn words(text: Option<String>) -> String {
    let w: Vec<String> = text
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if w.is_empty() {
        "none".to_string()
    } else {
        w.join(" ")
    }
}

pub fn cgroups(host: &Host) -> Finding {
    const TOPIC: &str = "cgroups";
    let mountinfo = host.read("/proc/self/mountinfo").unwrap_or_default();
    let v2 = cgroup2_mounts(&mountinfo);
    let v2_at = |point: &str| v2.contains(&point);
    // The v1 controllers as the runtime itself finds them (named
    // hierarchies such as name=systemd are not controllers).
    let layout = crate::cgroups::layout::Layout::from_mountinfo(&mountinfo);
    let v1: Vec<&str> = layout
        .v1
        .keys()
        .map(String::as_str)
        .filter(|k| !k.contains('='))
        .collect();
    let hybrid = format!("{CGROUP_ROOT}/unified");
    let detail = if v2_at(CGROUP_ROOT) {
        let controllers = words(host.read(&format!("{CGROUP_ROOT}/cgroup.controllers")));
        format!("v2 (unified) at {CGROUP_ROOT}, controllers: {controllers}")
    } else if !v1.is_empty() {
        let unified = if v2_at(&hybrid) {
            let controllers = words(host.read(&format!("{hybrid}/cgroup.controllers")));
            format!(", and cgroup2 at {hybrid} (hybrid), controllers: {controllers}")
        } else {
            String::new()
        };
        format!("v1 controllers: {}{unified}", v1.join(" "))
    } else {
        return Finding::new(
            TOPIC,
            Verdict::Fail,
            format!("no cgroup hierarchy mounted at {CGROUP_ROOT}"),
        )
        .fix(format!("mount -t cgroup2 none {CGROUP_ROOT}"));
    };
    if host.uid == 0 {
        return Finding::new(TOPIC, Verdict::Ok, detail);
    }
    match delegated_v2(host) {
        Some((dir, controllers)) if v2_at(CGROUP_ROOT) => Finding::new(
            TOPIC,
            Verdict::Ok,
            format!(
                "{detail}; delegated to uid {}: {} ({controllers})",
                host.uid,
                dir.display()
            ),
        ),
        _ => Finding::new(
            TOPIC,
            Verdict::No,
            format!("{detail}; nothing delegated to uid {}: limits can't be set", host.uid),
        )
        .fix("on cgroup v2 with systemd, run in a delegated scope: systemd-run --user --scope -p Delegate=yes"),
    }
}

/// The topmost cgroup on the way from the root to our own that this user
/// owns (its cgroup.procs), with its controllers: the delegated subtree.
fn delegated_v2(host: &Host) -> Option<(PathBuf, String)> {
    let own = crate::cgroups::layout::parse_proc_cgroup(&host.read("/proc/self/cgroup")?);
    let own = own.get("")?;
    let mut dir = PathBuf::from(CGROUP_ROOT);
    for part in own.components().skip(1) {
        dir.push(part);
        let procs = host.path(&format!("{}/cgroup.procs", dir.display()));
        if std::fs::metadata(procs).is_ok_and(|m| m.uid() == host.uid) {
            let controllers = words(host.read(&format!("{}/cgroup.controllers", dir.display())));
            return Some((dir, controllers));
        }
    }
    None
}

pub fn systemd(host: &Host) -> Finding {
    const TOPIC: &str = "systemd";
    if !host.exists("/run/systemd/system") {
        return Finding::new(
            TOPIC,
            Verdict::No,
            "not the init system here (/run/systemd/system absent)",
        )
        .fix("none needed: cgroups are written directly (the default cgroup driver)");
    }
    let bus = if host.uid == 0 {
        host.path("/run/dbus/system_bus_socket")
    } else {
        host.runtime_dir.clone().unwrap_or_default().join("bus")
    };
    if !bus.exists() {
        return Finding::new(
            TOPIC,
            Verdict::No,
            format!("systemd runs, but no D-Bus socket at {}", bus.display()),
        )
        .fix(if host.uid == 0 {
            "systemctl start dbus.socket"
        } else {
            "log in through a session that starts the systemd user instance (systemctl --user start dbus.socket)"
        });
    }
    Finding::new(
        TOPIC,
        Verdict::Ok,
        format!(
            "systemd and D-Bus ({}) are there: --systemd-cgroup can start scope units",
            bus.display()
        ),
    )
}

fn sysctl(host: &Host, name: &str) -> Option<i64> {
    host.read(&format!("/proc/sys/{}", name.replace('.', "/")))?
        .trim()
        .parse()
        .ok()
}

pub fn user_namespaces(host: &Host) -> Finding {
    const TOPIC: &str = "user namespaces";
    // Needed by a rootless container, not by root's default one.
    let missing = if host.uid == 0 { Verdict::No } else { Verdict::Fail };
    if !host.exists("/proc/self/ns/user") {
        return Finding::new(TOPIC, missing, "not built into this kernel").fix("a kernel with CONFIG_USER_NS");
    }
    if sysctl(host, "user.max_user_namespaces") == Some(0) {
        return Finding::new(TOPIC, missing, "disabled: user.max_user_namespaces is 0")
            .fix("sysctl -w user.max_user_namespaces=15000");
    }
    if host.uid != 0 {
        if sysctl(host, "kernel.unprivileged_userns_clone") == Some(0) {
            return Finding::new(
                TOPIC,
                missing,
                "not for unprivileged users: kernel.unprivileged_userns_clone is 0",
            )
            .fix("sysctl -w kernel.unprivileged_userns_clone=1");
        }
        if sysctl(host, "kernel.apparmor_restrict_unprivileged_userns") == Some(1) {
            return Finding::new(TOPIC, missing, "restricted by AppArmor for unprivileged users").fix(
                "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile allowing userns",
            );
        }
    }
    let max = sysctl(host, "user.max_user_namespaces").map_or("unknown".into(), |n| n.to_string());
    Finding::new(
        TOPIC,
        Verdict::Ok,
        format!("available (user.max_user_namespaces {max})"),
    )
}

/// This user's login name, from /etc/passwd.
fn user_name(host: &Host) -> Option<String> {
    let passwd = host.read("/etc/passwd")?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse() == Ok(host.uid)).then(|| f[0].to_string())
    })
}

/// The ranges /etc/subuid or /etc/subgid give this user ("start-end").
fn ranges(host: &Host, file: &str, name: Option<&str>) -> Vec<String> {
    let text = host.read(file).unwrap_or_default();
    let uid = host.uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (
                f.next()?,
                f.next()?.parse::<u64>().ok()?,
                f.next()?.parse::<u64>().ok()?,
            );
            (count > 0 && (who == uid || Some(who) == name)).then(|| format!("{start}-{}", start + count - 1))
        })
        .collect()
}

pub fn subordinate_ids(host: &Host) -> Finding {
    const TOPIC: &str = "subordinate ids";
    let name = user_name(host);
    let who = name.clone().unwrap_or_else(|| host.uid.to_string());
    let uids = ranges(host, "/etc/subuid", name.as_deref());
    let gids = ranges(host, "/etc/subgid", name.as_deref());
    if uids.is_empty() || gids.is_empty() {
        return Finding::new(
            TOPIC,
            Verdict::No,
            format!("none for {who} in /etc/subuid and /etc/subgid: a user namespace maps one id only"),
        )
        .fix(format!(
            "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
        ));
    }
    Finding::new(
        TOPIC,
        Verdict::Ok,
        format!("{who}: uids {}, gids {}", uids.join(","), gids.join(",")),
    )
}

pub fn uidmap_tools(host: &Host) -> Finding {
    const TOPIC: &str = "newuidmap";
    let find = |tool: &str| {
        host.path_env
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| host.path(&format!("{d}/{tool}")))
            .find(|p| p.is_file())
    };
    let mut found = Vec::new();
    for tool in ["newuidmap", "newgidmap"] {
        let Some(path) = find(tool) else {
            return Finding::new(
                TOPIC,
                Verdict::No,
                format!("{tool} not found in PATH: several-range mappings can't be written"),
            )
            .fix("apt-get install uidmap");
        };
        let setuid = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o4000 != 0 && m.uid() == 0);
        let has_caps = xattr_present(&path, "security.capability");
        if !setuid && !has_caps {
            return Finding::new(
                TOPIC,
                Verdict::No,
                format!("{} is neither setuid root nor has file capabilities", path.display()),
            )
            .fix("reinstall it: apt-get install --reinstall uidmap");
        }
        found.push(path);
    }
    let shown: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    Finding::new(TOPIC, Verdict::Ok, shown.join(", "))
}

fn xattr_present(path: &Path, name: &str) -> bool {
    crate::sys::getxattr_size(path, name).is_ok_and(|n| n > 0)
}

/// (major, minor) of a release string like "6.1.0-57-amd64".
pub(super) fn version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub fn idmapped_mounts(host: &Host) -> Finding {
    const TOPIC: &str = "idmapped mounts";
    let release = &host.kernel.release;
    match version(release) {
        Some(v) if v >= (5, 12) => Finding::new(
            TOPIC,
            Verdict::Ok,
            format!("kernel {release} has mount_setattr(MOUNT_ATTR_IDMAP); the source filesystem must support it too"),
        ),
        _ => Finding::new(
            TOPIC,
            Verdict::No,
            format!("kernel {release} predates idmapped mounts (5.12)"),
        )
        .fix("Linux 5.12 or newer, for mounts with uidMappings/gidMappings"),
    }
}

pub fn seccomp(host: &Host) -> Finding {
    const TOPIC: &str = "seccomp";
    if let Some(actions) = host.read("/proc/sys/kernel/seccomp/actions_avail") {
        let actions = actions.split_whitespace().collect::<Vec<_>>();
        let detail = format!("filters with actions: {}", actions.join(" "));
        if !actions.contains(&"user_notif") {
            return Finding::new(
                TOPIC,
                Verdict::No,
                format!("{detail} (no user_notif: SCMP_ACT_NOTIFY refused)"),
            )
            .fix("Linux 5.0 or newer for SCMP_ACT_NOTIFY");
        }
        return Finding::new(TOPIC, Verdict::Ok, detail);
    }
    let has_field = host.read("/proc/self/status").is_some_and(|s| s.contains("\nSeccomp:"));
    if has_field {
        return Finding::new(TOPIC, Verdict::No, "filters, but the kernel does not list its actions")
            .fix("Linux 4.14 or newer");
    }
    Finding::new(
        TOPIC,
        Verdict::No,
        "not built into this kernel: linux.seccomp is refused",
    )
    .fix("a kernel with CONFIG_SECCOMP_FILTER")
}

pub fn lsm(host: &Host) -> Finding {
    const TOPIC: &str = "LSM";
    let lsm = crate::process::lsm::Host::at(&host.root);
    let mut on = Vec::new();
    if lsm.apparmor_enabled() {
        on.push("AppArmor".to_string());
    }
    if lsm.selinux_enabled() {
        let mode = match host.read("/sys/fs/selinux/enforce").as_deref().map(str::trim) {
            Some("1") => "enforcing",
            _ => "permissive",
        };
        on.push(format!("SELinux ({mode})"));
    }
    if on.is_empty() {
        return Finding::new(
            TOPIC,
            Verdict::No,
            "neither AppArmor nor SELinux: apparmorProfile is ignored, selinuxLabel refused",
        )
        .fix("none needed unless configs ask for labels; else boot with the LSM enabled");
    }
    Finding::new(TOPIC, Verdict::Ok, format!("{} enabled", on.join(" and ")))
}

pub fn time_namespace(host: &Host) -> Finding {
    const TOPIC: &str = "time namespace";
    if host.exists("/proc/self/ns/time") {
        return Finding::new(TOPIC, Verdict::Ok, "available (linux.timeOffsets)");
    }
    Finding::new(TOPIC, Verdict::No, "not in this kernel: linux.timeOffsets is refused")
        .fix("Linux 5.6 or newer with CONFIG_TIME_NS")
}
