//! The config's `mounts`: option parsing and mounting each entry inside the
//! rootfs, by file descriptor, before pivot_root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use libc::c_ulong;
use oci_spec::runtime::Mount;

use super::resolve;
use crate::logging::quote;
use crate::sync::{At, Failure, Step};
use crate::sys;

// mount_setattr attributes (linux/mount.h).
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const ATTR_RELATIME: u64 = 0x0;
const ATTR_NOATIME: u64 = 0x10;
const ATTR_STRICTATIME: u64 = 0x20;
const ATTR_ATIME_MASK: u64 = 0x70;
const ATTR_NODIRATIME: u64 = 0x80;
const ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// A parsed `options` list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2).
    pub flags: c_ulong,
    /// Flags the options explicitly clear (e.g. "rw", "suid").
    pub cleared: c_ulong,
    /// Propagation changes, applied in order after mounting.
    pub propagation: Vec<c_ulong>,
    /// Recursive attributes (rro, rnosuid, ...) set/cleared with mount_setattr.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Everything else, passed to the filesystem as its data string.
    pub data: Vec<String>,
    /// `tmpcopyup`: a tmpfs starts with a copy of the directory it covers.
    pub copyup: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true)); the last one wins.
    pub idmap: Option<bool>,
}

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

pub fn parse_options(opts: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear): (c_ulong, c_ulong) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "nosymfollow" => (libc::MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, libc::MS_NOSYMFOLLOW),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                o.propagation.push(propagation_flag(opt).unwrap_or(0));
                continue;
            }
            "tmpcopyup" => {
                o.copyup = true;
                continue;
            }
            "idmap" | "ridmap" => {
                o.idmap = Some(opt == "ridmap");
                continue;
            }
            other => {
                if let Some((set, clr)) = recursive_attr(other) {
                    o.rec_set |= set;
                    o.rec_clr |= clr;
                } else {
                    o.data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
        o.cleared = (o.cleared | clear) & !set;
    }
    Ok(o)
}

/// The MS_* propagation flags of a propagation keyword.
pub fn propagation_flag(name: &str) -> Option<c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// (attributes to set, attributes to clear) for the "r"-prefixed options.
fn recursive_attr(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "rro" => (ATTR_RDONLY, 0),
        "rrw" => (0, ATTR_RDONLY),
        "rnosuid" => (ATTR_NOSUID, 0),
        "rsuid" => (0, ATTR_NOSUID),
        "rnodev" => (ATTR_NODEV, 0),
        "rdev" => (0, ATTR_NODEV),
        "rnoexec" => (ATTR_NOEXEC, 0),
        "rexec" => (0, ATTR_NOEXEC),
        "rnodiratime" => (ATTR_NODIRATIME, 0),
        "rdiratime" => (0, ATTR_NODIRATIME),
        "rrelatime" => (ATTR_RELATIME, ATTR_ATIME_MASK),
        "rnorelatime" => (0, 0),
        "rnoatime" => (ATTR_NOATIME, ATTR_ATIME_MASK),
        // Clearing noatime must clear the whole atime field: back to relatime.
        "ratime" => (ATTR_RELATIME, ATTR_ATIME_MASK),
        "rstrictatime" => (ATTR_STRICTATIME, ATTR_ATIME_MASK),
        "rnostrictatime" => (0, 0),
        "rnosymfollow" => (ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Host-side facts a `cgroup` mount needs, gathered before clone.
#[derive(Debug, Default, Clone)]
pub struct CgroupLayout {
    /// v1 hierarchies: (directory name under /sys/fs/cgroup, mount options).
    pub v1: Vec<(String, String)>,
    /// A cgroup2 mount exists (unified, or hybrid at /sys/fs/cgroup/unified).
    pub unified_only: bool,
    pub hybrid: bool,
    /// The container has a cgroup namespace: a fresh mount shows only its
    /// own cgroup (the namespace's root).
    pub cgroupns: bool,
    /// The container's cgroup directories on the host, by hierarchy (the
    /// directory name under /sys/fs/cgroup; "" for cgroup2 on a unified
    /// host), bound in where a fresh mount would show the host's tree.
    pub own_dirs: Vec<(String, CString)>,
}

impl CgroupLayout {
    /// The host's hierarchies as the cgroup module found them: each v1
    /// mount once, named by its directory, with its controllers as options.
    pub fn from_layout(l: &crate::cgroups::layout::Layout, cgroupns: bool) -> CgroupLayout {
        let mut v1: Vec<(String, String)> = Vec::new();
        for (controller, mount) in &l.v1 {
            let Some(name) = mount
                .strip_prefix(crate::cgroups::layout::ROOT)
                .ok()
                .and_then(|n| n.to_str())
            else {
                continue;
            };
            match v1.iter_mut().find(|(n, _)| n == name) {
                Some((_, opts)) => {
                    opts.push(',');
                    opts.push_str(controller);
                }
                None => v1.push((name.to_string(), controller.clone())),
            }
        }
        CgroupLayout {
            v1,
            unified_only: l.kind == crate::cgroups::layout::Kind::Unified,
            hybrid: l.kind == crate::cgroups::layout::Kind::Hybrid,
            cgroupns,
            own_dirs: Vec::new(),
        }
    }

    /// Records the container's cgroup directories (known once the parent
    /// has made them), each under the hierarchy it belongs to.
    pub fn set_own_dirs<'p>(&mut self, dirs: impl Iterator<Item = &'p PathBuf>) -> io::Result<()> {
        let root = Path::new(crate::cgroups::layout::ROOT);
        for dir in dirs {
            let Ok(rel) = dir.strip_prefix(root) else { continue };
            let name = match rel.components().next() {
                Some(first) if !self.unified_only => first.as_os_str().to_string_lossy().into_owned(),
                _ => String::new(),
            };
            self.own_dirs.push((name, sys::cstring(dir)?));
        }
        Ok(())
    }

    fn own_dir(&self, name: &str) -> io::Result<&CString> {
        self.own_dirs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// Everything mounting needs that is not in the Mount itself.
pub struct Context<'a> {
    pub root: RawFd,
    /// The rootfs path: a destination spelled with it is taken as inside.
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// The idmapping of each mount, by index (see `sources`).
    pub idmaps: &'a [Option<super::sources::Idmap>],
    /// Where to ask the parent for a source (`sources`).
    pub sync_fd: RawFd,
    pub cgroups: &'a CgroupLayout,
    /// `context="..."` from linux.mountLabel.
    pub mount_context: Option<&'a str>,
}

/// How errors name a mount entry, as runc's do: `"SRC" to rootfs at "DEST"`
/// (a bind's source as resolved against the bundle).
pub fn entry_name(bundle: &Path, m: &Mount) -> String {
    let is_bind = m.typ().as_deref() == Some("bind")
        || parse_options(m.options().as_deref().unwrap_or(&[])).is_ok_and(|o| o.is_bind());
    let bind_src = is_bind.then(|| bind_source(bundle, m.source().as_deref()));
    let shown_src = bind_src.as_deref().or(m.source().as_deref()).unwrap_or(Path::new(""));
    format!(
        "{} to rootfs at {}",
        quote(&shown_src.to_string_lossy()),
        quote(&m.destination().to_string_lossy())
    )
}

/// A destination as a path relative to the root. One spelled with the
/// rootfs path in front is taken as inside it (runc strips it too).
pub fn destination(rootfs: &Path, m: &Mount) -> PathBuf {
    let dest = resolve::clean(m.destination());
    let root = resolve::clean(rootfs);
    match dest.strip_prefix(&root) {
        Ok(inside) if !root.as_os_str().is_empty() => inside.to_path_buf(),
        _ => dest,
    }
}

/// Mounts config entry number `index` inside the rootfs. Its failures name
/// the entry as runc's do: `"SRC" to rootfs at "DEST"`.
pub fn mount_entry(ctx: &Context, index: usize, m: &Mount) -> Result<(), Failure> {
    let dest = destination(ctx.rootfs, m);
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or(match &opts {
        Ok(o) if o.is_bind() => "bind",
        _ => "none",
    });
    let is_bind = typ == "bind" || opts.as_ref().is_ok_and(|o| o.is_bind());
    let bind_src = is_bind.then(|| bind_source(ctx.bundle, m.source().as_deref()));
    let at = entry_name(ctx.bundle, m);
    let opts = opts.map_err(|_| Failure::errno(Step::Mount, &at, libc::EINVAL))?;

    if let Some(source) = &bind_src {
        let (source, is_dir) = open_bind_source(ctx, index, source, &at)?;
        let target = resolve::ensure(ctx.root, &dest, !is_dir).at(Step::CreateMountpoint, &at)?;
        bind(ctx, &source, &target, &dest, &at, &opts)?;
    } else if matches!(typ, "proc" | "sysfs") {
        // A symlink here would put procfs or sysfs wherever the image
        // points it (CVE-2019-19921): the destination must be a directory.
        let target = resolve::ensure_real_dir(ctx.root, &dest).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR) {
                let why = format!("{at}: filesystem {typ:?} must be mounted on ordinary directory");
                Failure::errno(Step::Mount, why, libc::ENOTDIR)
            } else {
                Failure::new(Step::CreateMountpoint, &at, &e)
            }
        })?;
        mount_fs(&target, typ, m, &opts, None).at(Step::Mount, &at)?;
    } else if typ == "cgroup" {
        let target = resolve::ensure(ctx.root, &dest, false).at(Step::CreateMountpoint, &at)?;
        mount_cgroup(ctx, &target, &dest, &opts).at(Step::Mount, &at)?;
    } else {
        let covered = if typ == "tmpfs" {
            resolve::open(ctx.root, &dest, 0).ok()
        } else {
            None
        };
        let target = resolve::ensure(ctx.root, &dest, false).at(Step::CreateMountpoint, &at)?;
        let mut opts = opts.clone();
        if delays_readonly(typ, &dest) {
            // Remounted read-only by `finish_readonly` once devices and
            // submounts are in place.
            opts.flags &= !libc::MS_RDONLY;
        }
        if let Some(fd) = &covered {
            // Like runc, a tmpfs takes the mode of the directory it covers;
            // an explicit mode= later in the list still wins.
            let mode = sys::fstat(fd.as_raw_fd()).at(Step::Mount, &at)?.st_mode & 0o7777;
            opts.data.insert(0, format!("mode={mode:04o}"));
        }
        // runc labels every filesystem it mounts itself except proc, sysfs
        // and mqueue (and binds, where the kernel ignores mount data).
        let context = ctx.mount_context.filter(|_| typ != "mqueue");
        mount_fs(&target, typ, m, &opts, context).at(Step::Mount, &at)?;
        if let (true, Some(old)) = (typ == "tmpfs" && opts.copyup, &covered) {
            // `old` still names the directory under the new mount.
            let new = resolve::open(ctx.root, &dest, 0).at(Step::Mount, &at)?;
            let why = format!("{at}: tmpcopyup");
            super::copyup::copy_tree(&fd_dir(old.as_raw_fd()), &fd_dir(new.as_raw_fd())).at(Step::Mount, why)?;
        }
    }
    finish(ctx.root, &dest, &opts).at(Step::MountPropagation, &at)
}

/// Whether a mount is made read-write first and read-only only at the end
/// (as runc does): /dev gets device nodes and submounts, a tmpfs its mode.
fn delays_readonly(typ: &str, dest: &Path) -> bool {
    typ == "tmpfs" || (typ != "bind" && dest == Path::new("dev"))
}

fn fd_dir(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The source of bind mount `index` and whether it is a directory: the
/// path itself, or what the parent opened for us (an idmapped tree, or a
/// source out of reach of a user namespace's root).
fn open_bind_source(ctx: &Context, index: usize, source: &Path, at: &str) -> Result<(BindSource, bool), Failure> {
    let is_dir = |fd: &OwnedFd| -> Result<bool, Failure> {
        Ok(sys::fstat(fd.as_raw_fd()).at(Step::Mount, at)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
    };
    if ctx.idmaps.get(index).is_some_and(Option::is_some) {
        let tree = fetch_source(ctx, index, at)?;
        let dir = is_dir(&tree)?;
        return Ok((BindSource::Tree(tree), dir));
    }
    match std::fs::metadata(source) {
        Ok(md) => Ok((BindSource::Path(sys::cstring(source).at(Step::Mount, at)?), md.is_dir())),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let fd = fetch_source(ctx, index, at)?;
            let dir = is_dir(&fd)?;
            Ok((BindSource::Fd(fd), dir))
        }
        Err(e) => Err(Failure::new(Step::Mount, at, &e)),
    }
}

/// Asks the parent for the source of mount `index` (see `sources`): a
/// detached idmapped tree or an O_PATH fd. If the parent cannot make it, it
/// reports why and ends us: EOF here.
fn fetch_source(ctx: &Context, index: usize, at: &str) -> Result<OwnedFd, Failure> {
    crate::sync::send_arg(ctx.sync_fd, crate::sync::Kind::MountSource, index as i32).at(Step::Protocol, "")?;
    match crate::sync::recv(ctx.sync_fd) {
        Ok(Some(crate::sync::Message {
            kind: crate::sync::Kind::MountSource,
            fd: Some(fd),
            ..
        })) => Ok(fd),
        Ok(None) => sys::exit_now(1),
        Ok(Some(_)) => Err(Failure::errno(Step::Protocol, "unexpected message", libc::EPROTO)),
        Err(e) => Err(Failure::new(Step::Mount, at, &e)),
    }
}

/// Makes a mount that `mount_entry` left read-write for later work
/// read-only, as its options asked.
pub fn finish_readonly(root: RawFd, rootfs: &Path, m: &Mount) -> Result<(), Failure> {
    let Ok(opts) = parse_options(m.options().as_deref().unwrap_or(&[])) else {
        return Ok(());
    };
    let typ = m.typ().as_deref().unwrap_or("none");
    let dest = destination(rootfs, m);
    if opts.flags & libc::MS_RDONLY == 0 || opts.is_bind() || !delays_readonly(typ, &dest) {
        return Ok(());
    }
    let at = format!("{}: remount read-only", quote(&m.destination().to_string_lossy()));
    let fd = resolve::open(root, &dest, 0).at(Step::Mount, &at)?;
    // MS_BIND with MS_REMOUNT changes only the per-mount flags, which a
    // user namespace may do too.
    let flags = (opts.flags & !libc::MS_REMOUNT) | libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    sys::mount(None, &resolve::fd_path(fd.as_raw_fd()), None, flags, None).at(Step::Mount, &at)
}

/// A mount of a filesystem (not a bind) onto the target fd.
fn mount_fs(target: &OwnedFd, typ: &str, m: &Mount, opts: &Options, context: Option<&str>) -> io::Result<()> {
    let source = m.source().as_ref().map(|s| s.to_string_lossy().into_owned());
    let source = source.unwrap_or_else(|| typ.to_string());
    let mut data = opts.data.join(",");
    if let Some(context) = context {
        if !data.is_empty() {
            data.push(',');
        }
        data.push_str(context);
    }
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let (src_c, typ_c, data_c) = (c(&source)?, c(typ)?, c(&data)?);
    sys::mount(
        Some(&src_c),
        &resolve::fd_path(target.as_raw_fd()),
        Some(&typ_c),
        opts.flags & !libc::MS_REMOUNT,
        Some(&data_c),
    )
}

/// Relative bind sources are relative to the bundle, as runc resolves them.
pub fn bind_source(bundle: &Path, source: Option<&Path>) -> PathBuf {
    match source {
        Some(s) if s.is_absolute() => s.to_path_buf(),
        Some(s) => bundle.join(s),
        None => PathBuf::from("/"),
    }
}

/// What a bind mounts.
enum BindSource {
    /// A path the init reaches itself.
    Path(CString),
    /// An O_PATH fd of a source the parent opened for us.
    Fd(OwnedFd),
    /// A detached (idmapped) mount tree the parent made, attached with
    /// move_mount.
    Tree(OwnedFd),
}

/// Bind mounts `source` onto the target fd, then applies the per-mount flags
/// (a bind ignores them on the first call: the kernel needs a remount).
/// `at` names the entry in errors.
fn bind(
    ctx: &Context,
    source: &BindSource,
    target: &OwnedFd,
    dest: &Path,
    at: &str,
    opts: &Options,
) -> Result<(), Failure> {
    let tpath = resolve::fd_path(target.as_raw_fd());
    let flags = opts.flags & (libc::MS_BIND | libc::MS_REC);
    match source {
        BindSource::Path(src) => sys::mount(Some(src), &tpath, None, flags, None),
        BindSource::Fd(fd) => sys::mount(Some(&resolve::fd_path(fd.as_raw_fd())), &tpath, None, flags, None),
        BindSource::Tree(tree) => sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()),
    }
    .at(Step::Mount, at)?;
    let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    if extra == 0 && opts.cleared == 0 {
        return Ok(());
    }
    // The target fd still names the covered directory: reach the new mount
    // by resolving the destination again.
    let reopened = resolve::open(ctx.root, dest, 0).at(Step::Mount, at)?;
    let rpath = resolve::fd_path(reopened.as_raw_fd());
    let flags = libc::MS_REMOUNT | libc::MS_BIND | extra;
    match sys::mount(None, &rpath, None, flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        other => return other.at(Step::Mount, at),
    }
    // EPERM: the source mount's flags are locked (it came from a more
    // privileged mount namespace). Keep them, unless the config asked for
    // one of them to be cleared: that is an error, never silently ignored.
    let source_flags = mount_flags(reopened.as_raw_fd()).at(Step::Mount, at)?;
    let locked = relock(extra, opts.cleared, source_flags)
        .map_err(|why| Failure::errno(Step::Mount, format!("{at}: {why}"), libc::EPERM))?;
    sys::mount(None, &rpath, None, flags | locked, None).map_err(|e| {
        let why = format!("{at}: remount with locked flags {} re-applied", flag_names(locked));
        Failure::new(Step::Mount, why, &e)
    })
}

/// The atime flags: one of the three modes, plus nodiratime.
const ATIME_MODES: c_ulong = libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;
const ATIME_FLAGS: c_ulong = ATIME_MODES | libc::MS_NODIRATIME;
/// What the kernel locks (MNT_LOCK_*) on mounts a less privileged mount
/// namespace inherits.
const LOCKABLE: c_ulong = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | ATIME_FLAGS;

/// The flags a remount must carry over from a source mount with locked
/// flags `source`, or why the request (`set`, `cleared`) cannot be met:
/// a locked flag the config clears, or a different atime mode asked for.
/// A locked flag the config says nothing about is kept, as runc does.
pub fn relock(set: c_ulong, cleared: c_ulong, source: c_ulong) -> Result<c_ulong, String> {
    let conflict = source & cleared & LOCKABLE;
    if conflict != 0 {
        return Err(format!("cannot clear locked flags {}", flag_names(conflict)));
    }
    if set & ATIME_FLAGS != 0 && set & ATIME_FLAGS != source & ATIME_FLAGS {
        return Err(format!(
            "cannot change locked atime flags {}",
            flag_names(source & ATIME_FLAGS)
        ));
    }
    Ok(source & LOCKABLE)
}

/// `MS_RDONLY|MS_NOSUID`: the kernel's names, as runc prints them.
fn flag_names(flags: c_ulong) -> String {
    const NAMES: [(c_ulong, &str); 8] = [
        (libc::MS_RDONLY, "MS_RDONLY"),
        (libc::MS_NOSUID, "MS_NOSUID"),
        (libc::MS_NODEV, "MS_NODEV"),
        (libc::MS_NOEXEC, "MS_NOEXEC"),
        (libc::MS_NOATIME, "MS_NOATIME"),
        (libc::MS_NODIRATIME, "MS_NODIRATIME"),
        (libc::MS_RELATIME, "MS_RELATIME"),
        (libc::MS_STRICTATIME, "MS_STRICTATIME"),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let rest = NAMES.iter().fold(flags, |f, (bit, _)| f & !bit);
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join("|")
}

/// The per-mount flags of the mount `fd` is on, as MS_* flags. statvfs has
/// no "strictatime": a mount with no other atime mode is strictatime.
fn mount_flags(fd: RawFd) -> io::Result<c_ulong> {
    let st = sys::fstatvfs(fd)?;
    let mut f = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms_flag;
        }
    }
    if f & ATIME_MODES == 0 {
        f |= libc::MS_STRICTATIME;
    }
    Ok(f)
}

/// After the mount: recursive attributes and propagation, on a fresh fd of
/// the destination (which now names the new mount's root).
fn finish(root: RawFd, dest: &Path, opts: &Options) -> io::Result<()> {
    if opts.rec_set == 0 && opts.rec_clr == 0 && opts.propagation.is_empty() {
        return Ok(());
    }
    let fd = resolve::open(root, dest, 0)?;
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32;
        sys::mount_setattr(fd.as_raw_fd(), c"", flags, opts.rec_set, opts.rec_clr, 0)?;
    }
    let path = resolve::fd_path(fd.as_raw_fd());
    for &p in &opts.propagation {
        sys::mount(None, &path, None, p, None)?;
    }
    Ok(())
}

/// A `cgroup` mount: cgroup2 on a unified host; on v1/hybrid a tmpfs with one
/// mount per host hierarchy (plus `unified` on hybrid), as runc lays it out.
/// Each hierarchy shows only the container's own cgroup (see
/// `mount_hierarchy`).
fn mount_cgroup(ctx: &Context, target: &OwnedFd, dest: &Path, opts: &Options) -> io::Result<()> {
    let cg = ctx.cgroups;
    let tpath = resolve::fd_path(target.as_raw_fd());
    let flags = opts.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
    if cg.unified_only || cg.v1.is_empty() {
        let reopen = || resolve::open(ctx.root, dest, libc::O_DIRECTORY);
        return mount_hierarchy(cg, "", None, &tpath, flags, reopen);
    }
    let tmpfs_flags = (flags & !libc::MS_RDONLY) | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let tmpfs_data = match ctx.mount_context {
        Some(context) => CString::new(format!("mode=755,{context}")),
        None => CString::new("mode=755"),
    }
    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    sys::mount(Some(c"tmpfs"), &tpath, Some(c"tmpfs"), tmpfs_flags, Some(&tmpfs_data))?;
    let dir = resolve::open(ctx.root, dest, libc::O_DIRECTORY)?;
    let mut subs: Vec<(&str, Option<&str>)> = cg.v1.iter().map(|(n, o)| (n.as_str(), Some(o.as_str()))).collect();
    if cg.hybrid {
        subs.push(("unified", None));
    }
    for (name, controllers) in subs {
        sys::mkdirat(dir.as_raw_fd(), Path::new(name), 0o755)?;
        let open_sub = || sys::openat(dir.as_raw_fd(), Path::new(name), libc::O_PATH | libc::O_DIRECTORY, 0);
        let sub = open_sub()?;
        let spath = resolve::fd_path(sub.as_raw_fd());
        let data = controllers
            .map(CString::new)
            .transpose()
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        mount_hierarchy(cg, name, data.as_deref(), &spath, flags, open_sub)?;
    }
    // Controllers mounted together (cpu,cpuacct) get the usual symlinks.
    for (name, _) in &cg.v1 {
        if name.contains(',') {
            for part in name.split(',') {
                let _ = sys::symlinkat(Path::new(name), dir.as_raw_fd(), Path::new(part));
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        let path = resolve::fd_path(dir.as_raw_fd());
        sys::mount(
            None,
            &path,
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | tmpfs_flags,
            None,
        )?;
    }
    Ok(())
}

/// One hierarchy at `at`: v1 with `controllers` as its options, else
/// cgroup2. With a cgroup namespace a fresh mount, which the kernel roots at
/// the namespace's (the container's) cgroup; without one — or where the
/// kernel refuses a fresh mount, in a user namespace — a bind of the
/// container's own cgroup directory, so the host's tree is never shown.
/// `reopen` names the new mount for the remount that applies `flags`.
fn mount_hierarchy(
    cg: &CgroupLayout,
    name: &str,
    controllers: Option<&std::ffi::CStr>,
    at: &std::ffi::CStr,
    flags: c_ulong,
    reopen: impl Fn() -> io::Result<OwnedFd>,
) -> io::Result<()> {
    if cg.cgroupns {
        let fresh = match controllers {
            Some(c) => sys::mount(Some(c"cgroup"), at, Some(c"cgroup"), flags, Some(c)),
            None => sys::mount(Some(c"cgroup2"), at, Some(c"cgroup2"), flags, None),
        };
        match fresh {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY)) => {}
            other => return other,
        }
    }
    sys::mount(Some(cg.own_dir(name)?), at, None, libc::MS_BIND | libc::MS_REC, None)?;
    if flags == 0 {
        return Ok(());
    }
    let mount = reopen()?;
    let path = resolve::fd_path(mount.as_raw_fd());
    let remount = libc::MS_REMOUNT | libc::MS_BIND | flags;
    match sys::mount(None, &path, None, remount, None) {
        // In a user namespace the host's nosuid/nodev/noexec stay locked.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let locked = relock(flags, 0, mount_flags(mount.as_raw_fd())?).map_err(|_| e)?;
            sys::mount(None, &path, None, remount | locked, None)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Options {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
    }

    #[test]
    fn tmpcopyup_is_an_option_not_data() {
        let o = parse(&["tmpcopyup", "size=1m"]);
        assert!(o.copyup);
        assert_eq!(o.data, vec!["size=1m"]);
        assert!(!parse(&["size=1m"]).copyup);
    }

    #[test]
    fn later_options_win_and_rbind_is_recursive() {
        let o = parse(&["ro", "rw", "rbind"]);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(o.cleared, libc::MS_RDONLY);
        assert!(o.is_bind());
    }

    #[test]
    fn recursive_attributes_use_mount_setattr() {
        let o = parse(&["rro", "rnosuid"]);
        assert_eq!(o.rec_set, ATTR_RDONLY | ATTR_NOSUID);
        assert_eq!(o.flags, 0);
    }

    #[test]
    fn locked_flags_are_kept_unless_cleared() {
        let src = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_RELATIME;
        // Nothing said about ro/nosuid: both kept, as is the atime mode.
        assert_eq!(relock(libc::MS_NODEV, 0, src), Ok(src));
        // "rw" on a locked ro source: refused, naming the flag.
        assert_eq!(
            relock(libc::MS_NOSUID, libc::MS_RDONLY, src),
            Err("cannot clear locked flags MS_RDONLY".to_string())
        );
        let o = parse(&["bind", "dev", "suid", "exec", "atime"]);
        let src = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME;
        assert_eq!(
            relock(o.flags, o.cleared, src),
            Err("cannot clear locked flags MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_NOATIME".to_string())
        );
        // Clearing a flag the source doesn't have is no conflict.
        assert_eq!(relock(0, libc::MS_RDONLY, libc::MS_NODEV), Ok(libc::MS_NODEV));
    }

    #[test]
    fn a_different_locked_atime_mode_is_refused() {
        let strict = libc::MS_STRICTATIME;
        assert!(relock(libc::MS_RELATIME, 0, strict).is_err());
        assert!(relock(libc::MS_NOATIME, 0, libc::MS_RELATIME).is_err());
        assert!(relock(libc::MS_NODIRATIME, 0, libc::MS_RELATIME).is_err());
        assert_eq!(
            relock(libc::MS_STRICTATIME, 0, libc::MS_NODIRATIME | libc::MS_RELATIME),
            Err("cannot change locked atime flags MS_NODIRATIME|MS_RELATIME".to_string())
        );
        // The same mode asked for again is fine.
        assert_eq!(relock(libc::MS_NOATIME, 0, libc::MS_NOATIME), Ok(libc::MS_NOATIME));
    }

    #[test]
    fn idmap_and_ridmap_are_options_the_last_one_wins() {
        assert_eq!(parse(&["bind", "idmap"]).idmap, Some(false));
        assert_eq!(parse(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(parse(&["ridmap", "idmap"]).idmap, Some(false));
        assert_eq!(parse(&["rbind"]).idmap, None);
        assert!(parse(&["idmap"]).data.is_empty());
    }

    fn mount_at(dest: &str) -> Mount {
        serde_json::from_value(serde_json::json!({"destination": dest, "type": "tmpfs"})).unwrap()
    }

    #[test]
    fn a_destination_spelled_with_the_rootfs_is_inside_it() {
        let root = Path::new("/b/rootfs");
        assert_eq!(destination(root, &mount_at("/b/rootfs/mnt/x")), PathBuf::from("mnt/x"));
        assert_eq!(
            destination(root, &mount_at("/b/rootfs/../rootfs/a")),
            PathBuf::from("a")
        );
        assert_eq!(destination(root, &mount_at("/mnt")), PathBuf::from("mnt"));
        assert_eq!(destination(root, &mount_at("/b/rootfsx")), PathBuf::from("b/rootfsx"));
        assert_eq!(destination(root, &mount_at("tmp/a")), PathBuf::from("tmp/a"));
    }

    #[test]
    fn hybrid_layout_groups_comounted_controllers() {
        let text = "\
30 29 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
31 29 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
";
        let mut layout = crate::cgroups::layout::Layout::from_mountinfo(text);
        layout.kind = crate::cgroups::layout::Kind::Hybrid;
        let mut l = CgroupLayout::from_layout(&layout, false);
        assert!(l.hybrid && !l.unified_only && !l.cgroupns);
        assert_eq!(
            l.v1,
            vec![
                ("cpu,cpuacct".into(), "cpu,cpuacct".into()),
                ("systemd".into(), "name=systemd".into())
            ]
        );
        let dirs = [
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/id"),
            PathBuf::from("/sys/fs/cgroup/unified/a/id"),
        ];
        l.set_own_dirs(dirs.iter()).unwrap();
        assert_eq!(
            l.own_dir("cpu,cpuacct").unwrap().as_c_str(),
            c"/sys/fs/cgroup/cpu,cpuacct/a/id"
        );
        assert_eq!(l.own_dir("unified").unwrap().as_c_str(), c"/sys/fs/cgroup/unified/a/id");
        assert!(l.own_dir("systemd").is_err());
    }

    #[test]
    fn unified_host_binds_its_one_dir_as_the_whole_mount() {
        let mut l = CgroupLayout {
            unified_only: true,
            ..CgroupLayout::default()
        };
        l.set_own_dirs([PathBuf::from("/sys/fs/cgroup/user.slice/id")].iter())
            .unwrap();
        assert_eq!(l.own_dir("").unwrap().as_c_str(), c"/sys/fs/cgroup/user.slice/id");
    }
}
