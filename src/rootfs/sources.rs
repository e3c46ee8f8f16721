//! Bind sources the container's init cannot open itself, prepared by the
//! parent: idmapped mounts (a mount's uidMappings/gidMappings, `idmap`,
//! `ridmap`), and plain bind sources out of the reach of a user namespace's
//! root.
//!
//! An idmapped mount of a host filesystem needs CAP_SYS_ADMIN in the initial
//! user namespace, which the init no longer has. So the init, reaching such
//! an entry in its mount order, asks the parent (sync `MountSource`); a
//! short-lived helper forked by the parent joins the init's mount namespace
//! (so earlier mounts of the container are seen, as a later entry's source
//! may lie on them), makes a detached copy of the source with
//! open_tree(OPEN_TREE_CLONE), idmaps it with mount_setattr(MOUNT_ATTR_IDMAP)
//! and passes it back; the init attaches it with move_mount. The mappings
//! come from a user namespace made once per distinct mapping by another
//! helper, which is killed as soon as its namespace is opened.
//!
//! Nothing here runs for a container without such mounts.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Mount, Spec};

use super::mounts;
use crate::namespaces;
use crate::sys;

/// Where an idmapped mount's mappings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userns {
    /// The mount's own uidMappings/gidMappings, as /proc/PID/{uid,gid}_map
    /// lines.
    Mappings { uid: String, gid: String },
    /// `idmap` without mappings: the container's new user namespace.
    Container,
    /// `idmap` without mappings, joining a user namespace by path: that one.
    Joined,
}

/// An idmapped bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmap {
    /// `ridmap`: every mount of an rbind is idmapped, not just the top one.
    pub recursive: bool,
    pub userns: Userns,
}

/// The idmapping of each config mount (by index), checked as runc checks
/// them; empty when no mount has one.
pub fn plan(spec: &Spec, ns: &namespaces::Plan) -> Result<Vec<Option<Idmap>>> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let opts = mounts::parse_options(m.options().as_deref().unwrap_or(&[]))
            .map_err(|e| anyhow!("mount {}: {e}", m.destination().display()))?;
        let Some(idmap) = idmap_of(m, &opts, ns).map_err(|why| invalid(m, why))? else {
            continue;
        };
        out.resize(i + 1, None);
        out[i] = Some(idmap);
    }
    Ok(out)
}

fn invalid(m: &Mount, why: &str) -> anyhow::Error {
    anyhow!("invalid mount {:?}: {why}", m.destination())
}

fn idmap_of(m: &Mount, opts: &mounts::Options, ns: &namespaces::Plan) -> Result<Option<Idmap>, &'static str> {
    let (uids, gids) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
    // Mappings without an option imply `idmap` (runtime spec).
    let recursive = match (opts.idmap, uids.is_some() || gids.is_some()) {
        (None, false) => return Ok(None),
        (None, true) => false,
        (Some(r), _) => r,
    };
    if !is_bind(m, opts) {
        return Err("id-mapped mounts are only supported for bind-mounts");
    }
    let joined = ns.child_joins.iter().any(|j| j.flag == libc::CLONE_NEWUSER);
    let userns = match (uids, gids) {
        (None, None) if joined => Userns::Joined,
        (None, None) if ns.new_user => Userns::Container,
        (Some(u), Some(g)) if !u.is_empty() && !g.is_empty() => Userns::Mappings {
            // The on-disk id (the mount's "container" side) shows as the
            // host id through the mount.
            uid: namespaces::idmap::map_text(u),
            gid: namespaces::idmap::map_text(g),
        },
        _ => return Err("id-mapped mounts must have both uid and gid mappings specified"),
    };
    Ok(Some(Idmap { recursive, userns }))
}

fn is_bind(m: &Mount, opts: &mounts::Options) -> bool {
    m.typ().as_deref() == Some("bind") || opts.is_bind()
}

/// The parent's side: answers the init's `MountSource` requests while it
/// sets up; the user namespaces made for the mappings live as long as it.
pub struct Server<'a> {
    spec: &'a Spec,
    bundle: &'a Path,
    idmaps: &'a [Option<Idmap>],
    /// The user namespace the container joins by path, if any.
    joined_userns: Option<RawFd>,
    made: Vec<((String, String), OwnedFd)>,
}

impl<'a> Server<'a> {
    pub fn new(spec: &'a Spec, bundle: &'a Path, idmaps: &'a [Option<Idmap>], ns: &namespaces::Plan) -> Server<'a> {
        let joined_userns = ns
            .child_joins
            .iter()
            .find(|j| j.flag == libc::CLONE_NEWUSER)
            .map(|j| j.fd.as_raw_fd());
        Server {
            spec,
            bundle,
            idmaps,
            joined_userns,
            made: Vec::new(),
        }
    }

    /// The source of mount `index` for the init `pid`: a detached idmapped
    /// tree, or an O_PATH fd of a plain bind source, opened in its mount
    /// namespace. Errors read as the init's mount errors do.
    pub fn source(&mut self, pid: i32, index: u32) -> Result<OwnedFd> {
        let m = self
            .spec
            .mounts()
            .as_deref()
            .and_then(|ms| ms.get(index as usize))
            .ok_or_else(|| anyhow!("container init asked for mount #{index}, which does not exist"))?;
        let opts = mounts::parse_options(m.options().as_deref().unwrap_or(&[])).map_err(|e| anyhow!(e))?;
        if !is_bind(m, &opts) {
            bail!("container init asked for the source of mount #{index}, which is not a bind mount");
        }
        let source = mounts::bind_source(self.bundle, m.source().as_deref());
        let name = mounts::entry_name(self.bundle, m);
        let csource = sys::cstring(&source)?;
        let mntns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
            .with_context(|| format!("error mounting {name}: open the container's mount namespace"))?
            .into();
        let shown = source.display().to_string();
        let fd = match self.idmaps.get(index as usize).and_then(Option::as_ref) {
            None => in_mount_ns(&mntns, || {
                sys::openat(libc::AT_FDCWD, &source, libc::O_PATH, 0).map_err(|e| (Op::Open, e))
            })
            .map_err(|(op, e)| op.error(&shown, e)),
            Some(idmap) => {
                let userns = self
                    .userns_for(pid, idmap)
                    .map_err(|e| e.context(format!("failed to create userns for {shown} id-mapping")))?;
                let tree_flags = open_tree_flags(opts.flags & libc::MS_REC != 0);
                in_mount_ns(&mntns, || {
                    let tree = sys::open_tree(libc::AT_FDCWD, &csource, tree_flags).map_err(|e| (Op::OpenTree, e))?;
                    sys::mount_setattr_idmap(tree.as_raw_fd(), idmap.recursive, userns.as_raw_fd())
                        .map_err(|e| (Op::SetIdmap, e))?;
                    Ok(tree)
                })
                .map_err(|(op, e)| op.error(&shown, e))
            }
        };
        fd.with_context(|| format!("error mounting {name}"))
    }

    /// A handle of the user namespace holding `idmap`'s mappings.
    fn userns_for(&mut self, pid: i32, idmap: &Idmap) -> Result<Borrowed> {
        match &idmap.userns {
            Userns::Container => {
                let fd: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .context("open the container's user namespace")?
                    .into();
                Ok(Borrowed::Owned(fd))
            }
            Userns::Joined => self
                .joined_userns
                .map(Borrowed::Raw)
                .ok_or_else(|| anyhow!("no user namespace to join")),
            Userns::Mappings { uid, gid } => {
                let key = (uid.clone(), gid.clone());
                if let Some((_, fd)) = self.made.iter().find(|(k, _)| *k == key) {
                    return Ok(Borrowed::Raw(fd.as_raw_fd()));
                }
                let fd = new_userns(uid, gid)?;
                let raw = fd.as_raw_fd();
                self.made.push((key, fd));
                Ok(Borrowed::Raw(raw))
            }
        }
    }
}

/// A user namespace fd, owned or held by the server.
enum Borrowed {
    Owned(OwnedFd),
    Raw(RawFd),
}

impl Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Borrowed::Owned(fd) => fd.as_raw_fd(),
            Borrowed::Raw(fd) => *fd,
        }
    }
}

fn open_tree_flags(recursive: bool) -> u32 {
    const OPEN_TREE_CLONE: u32 = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    flags
}

/// What the mount-namespace helper was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Op {
    Setns = 1,
    Open = 2,
    OpenTree = 3,
    SetIdmap = 4,
}

impl Op {
    fn from_u32(v: u32) -> Option<Op> {
        [Op::Setns, Op::Open, Op::OpenTree, Op::SetIdmap]
            .into_iter()
            .find(|op| *op as u32 == v)
    }

    /// runc's words for each failure.
    fn error(self, source: &str, e: std::io::Error) -> anyhow::Error {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        let text = sys::strerror(errno);
        match self {
            Op::Setns => anyhow!("join the container's mount namespace: {text}"),
            Op::Open => anyhow!("open {source}: {text}"),
            Op::OpenTree => anyhow!("open_tree(OPEN_TREE_CLONE) {source}: {text}"),
            Op::SetIdmap => {
                let hint = if errno == libc::EINVAL {
                    " (maybe the filesystem used doesn't support idmap mounts on this kernel?)"
                } else {
                    ""
                };
                anyhow!("failed to set MOUNT_ATTR_IDMAP on {source}: {text}{hint}")
            }
        }
    }
}

/// Runs `open` in a helper process that has joined the mount namespace
/// `mntns`, and returns the fd it opened. The helper is a plain fork of
/// this single-threaded process: it exits right after, and the parent's own
/// root, cwd and namespaces never change.
fn in_mount_ns(
    mntns: &OwnedFd,
    open: impl FnOnce() -> Result<OwnedFd, (Op, std::io::Error)>,
) -> Result<OwnedFd, (Op, std::io::Error)> {
    let io = |e: std::io::Error| (Op::Setns, e);
    let (ours, theirs) = sys::socketpair_seqpacket().map_err(io)?;
    match sys::clone3(0, None).map_err(io)? {
        sys::Forked::Child => {
            drop(ours);
            let result = sys::setns(mntns.as_raw_fd(), libc::CLONE_NEWNS)
                .map_err(io)
                .and_then(|()| open());
            let sent = match result {
                Ok(fd) => sys::send_with_fd(theirs.as_raw_fd(), &[0; 8], fd.as_raw_fd()),
                Err((op, e)) => {
                    let mut buf = [0u8; 8];
                    buf[..4].copy_from_slice(&(op as u32).to_le_bytes());
                    buf[4..].copy_from_slice(&e.raw_os_error().unwrap_or(libc::EIO).to_le_bytes());
                    sys::send_nosignal(theirs.as_raw_fd(), &buf)
                }
            };
            sys::exit_now(i32::from(sent.is_err()))
        }
        sys::Forked::Parent { pid, pidfd: _pidfd } => {
            drop(theirs);
            let mut buf = [0u8; 8];
            let got = sys::recv_with_fd(ours.as_raw_fd(), &mut buf);
            let _ = sys::waitpid(pid, 0);
            let (n, fd) = got.map_err(io)?;
            let op = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
            match (n, fd, Op::from_u32(op)) {
                (8, Some(fd), None) => Ok(fd),
                (8, None, Some(op)) => Err((op, std::io::Error::from_raw_os_error(errno))),
                _ => Err(io(std::io::Error::from_raw_os_error(libc::EPROTO))),
            }
        }
    }
}

/// A new user namespace with these uid_map/gid_map lines, held by the
/// returned fd only: the process made to own it is killed and reaped
/// before this returns.
fn new_userns(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let parent = sys::getpid();
    match sys::clone3(libc::CLONE_NEWUSER as u64, None).context("clone a user namespace")? {
        sys::Forked::Child => {
            // Never outlive the parent, even if it dies before the kill.
            if sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).is_err() || sys::getppid() != parent {
                sys::exit_now(1);
            }
            sys::pause_forever()
        }
        sys::Forked::Parent { pid, pidfd } => {
            let opened = (|| -> Result<OwnedFd> {
                let text_of = |e: std::io::Error| sys::strerror(e.raw_os_error().unwrap_or(libc::EIO));
                for (file, text) in [("uid_map", uid_map), ("gid_map", gid_map)] {
                    let path = format!("/proc/{pid}/{file}");
                    std::fs::write(&path, text).map_err(|e| anyhow!("write {path}: {}", text_of(e)))?;
                }
                let path = format!("/proc/{pid}/ns/user");
                let file = std::fs::File::open(&path).map_err(|e| anyhow!("open {path}: {}", text_of(e)))?;
                Ok(file.into())
            })();
            let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
            opened
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec with these mounts and namespaces; a new user namespace gets
    /// the container's mappings it needs.
    fn spec(mounts: serde_json::Value, namespaces: serde_json::Value) -> Spec {
        let new_userns = namespaces
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user" && n.get("path").is_none());
        let mut linux = serde_json::json!({"namespaces": namespaces});
        if new_userns {
            let maps = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            linux["uidMappings"] = maps.clone();
            linux["gidMappings"] = maps;
        }
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": mounts,
            "linux": linux
        }))
        .unwrap()
    }

    fn plan_of(mounts: serde_json::Value, namespaces: serde_json::Value) -> Result<Vec<Option<Idmap>>> {
        let s = spec(mounts, namespaces);
        plan(&s, &namespaces::Plan::from_spec(&s).unwrap())
    }

    #[test]
    fn mappings_imply_idmap_and_ridmap_is_recursive() {
        let maps = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let p = plan_of(
            serde_json::json!([
                {"destination": "/a", "source": "/tmp", "options": ["bind"]},
                {"destination": "/b", "source": "/tmp", "options": ["rbind"], "uidMappings": maps, "gidMappings": maps},
                {"destination": "/c", "source": "/tmp", "options": ["rbind", "ridmap"], "uidMappings": maps, "gidMappings": maps}
            ]),
            serde_json::json!([{"type": "mount"}]),
        )
        .unwrap();
        let want = Userns::Mappings {
            uid: "0 100000 65536\n".into(),
            gid: "0 100000 65536\n".into(),
        };
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], None);
        assert_eq!(
            p[1],
            Some(Idmap {
                recursive: false,
                userns: want.clone()
            })
        );
        assert_eq!(
            p[2],
            Some(Idmap {
                recursive: true,
                userns: want
            })
        );
    }

    #[test]
    fn no_idmapped_mount_plans_nothing() {
        let p = plan_of(
            serde_json::json!([{"destination": "/a", "source": "/tmp", "options": ["bind"]}]),
            serde_json::json!([{"type": "mount"}]),
        )
        .unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn the_option_alone_takes_the_container_user_namespace() {
        let m = serde_json::json!([{"destination": "/a", "source": "/tmp", "options": ["rbind", "idmap"]}]);
        let p = plan_of(m.clone(), serde_json::json!([{"type": "user"}, {"type": "mount"}])).unwrap();
        assert_eq!(p[0].as_ref().unwrap().userns, Userns::Container);
        let p = plan_of(
            m.clone(),
            serde_json::json!([{"type": "user", "path": "/proc/self/ns/user"}, {"type": "mount"}]),
        )
        .unwrap();
        assert_eq!(p[0].as_ref().unwrap().userns, Userns::Joined);
        // Without a user namespace there is no mapping to take.
        let err = plan_of(m, serde_json::json!([{"type": "mount"}]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid mount \"/a\": id-mapped mounts must have both uid and gid mappings specified"
        );
    }

    #[test]
    fn half_mappings_and_non_binds_are_refused() {
        let maps = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let err = plan_of(
            serde_json::json!([{"destination": "/a", "source": "/tmp", "options": ["bind"], "uidMappings": maps}]),
            serde_json::json!([{"type": "user"}, {"type": "mount"}]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("id-mapped mounts must have both uid and gid mappings specified"),
            "{err}"
        );
        let err = plan_of(
            serde_json::json!([{"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}]),
            serde_json::json!([{"type": "user"}, {"type": "mount"}]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("id-mapped mounts are only supported for bind-mounts"),
            "{err}"
        );
    }
}
