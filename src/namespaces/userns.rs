//! Joining an existing user namespace: its id mappings, which the config
//! may only repeat, never change (runc's rule), and which give the host ids
//! of the container's root.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::Join;
use crate::sys;

/// One line of uid_map or gid_map: container id, host id, size.
pub type IdMap = (u32, u32, u32);

/// The mappings of a joined user namespace, as the host sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMaps {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
}

impl UserMaps {
    /// The host ids of the namespace's root (0 where root is unmapped).
    pub fn host_root(&self) -> (u32, u32) {
        let root = |maps: &[IdMap]| maps.iter().find(|m| m.0 == 0).map_or(0, |m| m.1);
        (root(&self.uids), root(&self.gids))
    }
}

/// The mappings of the user namespace `user`: read from the process its
/// path names, or else from a helper that joins it.
pub fn maps_of(user: &Join) -> Result<UserMaps> {
    if let Some(maps) = maps_of_owner(user) {
        return Ok(maps);
    }
    let parked = Parked::start(user)?;
    let read = |file| -> Result<Vec<IdMap>> {
        let path = format!("/proc/{}/{file}", parked.pid);
        let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        parse_map(&text).with_context(|| format!("{file} of user namespace {}", user.path.display()))
    };
    let maps = UserMaps {
        uids: read("uid_map")?,
        gids: read("gid_map")?,
    };
    parked.finish()?;
    Ok(maps)
}

/// The fast path (runc's too): a path of the form /proc/PID/ns/user names
/// a process whose maps can be read directly, if it is still in the
/// namespace we opened.
/// Our own namespace (which no helper could join) is read from /proc/self.
fn maps_of_owner(user: &Join) -> Option<UserMaps> {
    let opened = sys::fstat(user.fd.as_raw_fd()).ok()?;
    let is = |ns: &str| fs::metadata(ns).is_ok_and(|now| (now.dev(), now.ino()) == (opened.st_dev, opened.st_ino));
    let pid = match proc_pid_of(&user.path) {
        _ if is("/proc/self/ns/user") => "self".to_string(),
        Some(pid) if is(&format!("/proc/{pid}/ns/user")) => pid.to_string(),
        _ => return None,
    };
    let read = |file| parse_map(&fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?).ok();
    Some(UserMaps {
        uids: read("uid_map")?,
        gids: read("gid_map")?,
    })
}

fn proc_pid_of(path: &Path) -> Option<u32> {
    let rest = path.to_str()?.strip_prefix("/proc/")?.strip_suffix("/ns/user")?;
    rest.parse().ok().filter(|&pid| pid > 0)
}

fn parse_map(text: &str) -> Result<Vec<IdMap>> {
    text.lines()
        .map(|line| {
            let n: Vec<u32> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
            match n[..] {
                [c, h, s] => Ok((c, h, s)),
                _ => Err(anyhow!("invalid line {line:?}")),
            }
        })
        .collect::<Result<_>>()
        .map_err(|e| anyhow!("parsing id map failed: {e}"))
}

/// runc's rule: a config that joins a user namespace may leave the mappings
/// out, or repeat them exactly (containerd and CRI-O do); anything else is
/// refused.
pub fn check_config_maps(spec: &Spec, joined: &UserMaps) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().as_ref());
    let gids = linux.and_then(|l| l.gid_mappings().as_ref());
    if uids.is_none() && gids.is_none() {
        return Ok(());
    }
    let as_maps = |m: Option<&Vec<LinuxIdMapping>>| -> Vec<IdMap> {
        m.into_iter()
            .flatten()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    if as_maps(uids) != joined.uids || as_maps(gids) != joined.gids {
        bail!(
            "user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one"
        );
    }
    crate::warn!(
        "config.json has both a user namespace path to join and its mappings: only one is needed, the mappings are ignored"
    );
    Ok(())
}

/// A child of ours waiting in the joined user namespace until `finish` (or
/// our death) closes the socket: the host reads its maps through /proc.
struct Parked {
    pid: libc::pid_t,
    sock: OwnedFd,
}

impl Parked {
    fn start(user: &Join) -> Result<Parked> {
        let (ours, theirs) = sys::socketpair_seqpacket().context("socketpair")?;
        match sys::clone3(0, None).context("fork a helper for the joined user namespace")? {
            sys::Forked::Child => {
                drop(ours);
                park(user.fd.as_raw_fd(), theirs.as_raw_fd())
            }
            sys::Forked::Parent { pid, .. } => {
                drop(theirs);
                let parked = Parked { pid, sock: ours };
                let mut word = [0u8; 4];
                let n = sys::read(parked.sock.as_raw_fd(), &mut word).unwrap_or(0);
                let errno = if n == 4 { i32::from_le_bytes(word) } else { libc::EIO };
                if errno == 0 {
                    return Ok(parked);
                }
                let _ = parked.finish();
                Err(std::io::Error::from_raw_os_error(errno))
                    .with_context(|| format!("failed to cache mappings for userns {}", user.path.display()))
            }
        }
    }

    fn finish(self) -> Result<()> {
        drop(self.sock);
        sys::waitpid(self.pid, 0).context("wait for the user namespace helper")?;
        Ok(())
    }
}

/// The helper's whole life: join, report, wait for EOF, exit.
fn park(user: RawFd, sock: RawFd) -> ! {
    let entered = sys::setns(user, libc::CLONE_NEWUSER);
    let errno = entered.err().map_or(0, |e| e.raw_os_error().unwrap_or(libc::EIO));
    let _ = sys::write(sock, &errno.to_le_bytes());
    let _ = sys::read(sock, &mut [0u8; 1]);
    sys::exit_now(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_parse_as_the_kernel_prints_them() {
        let text = "         0     100000      65536\n     65536          0          1\n";
        assert_eq!(parse_map(text).unwrap(), [(0, 100000, 65536), (65536, 0, 1)]);
        assert!(parse_map("0 1\n").is_err());
        assert!(parse_map("0 x 1\n").is_err());
        let maps = UserMaps {
            uids: vec![(0, 100000, 65536)],
            gids: vec![(1, 5, 1), (0, 200000, 10)],
        };
        assert_eq!(maps.host_root(), (100000, 200000));
    }

    #[test]
    fn only_proc_pid_paths_take_the_fast_path() {
        assert_eq!(proc_pid_of(Path::new("/proc/42/ns/user")), Some(42));
        assert_eq!(proc_pid_of(Path::new("/proc/42/ns/user2")), None);
        assert_eq!(proc_pid_of(Path::new("/proc/self/ns/user")), None);
        assert_eq!(proc_pid_of(Path::new("/run/userns")), None);
        assert_eq!(proc_pid_of(Path::new("/proc/0/ns/user")), None);
    }

    #[test]
    fn config_maps_must_match_a_joined_namespace() {
        let joined = UserMaps {
            uids: vec![(0, 100000, 65536)],
            gids: vec![(0, 200000, 65536)],
        };
        let spec = |linux: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": linux
            }))
            .unwrap()
        };
        assert!(check_config_maps(&spec(serde_json::json!({})), &joined).is_ok());
        let same = spec(serde_json::json!({
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]
        }));
        assert!(check_config_maps(&same, &joined).is_ok());
        let other = spec(serde_json::json!({
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
        }));
        let err = check_config_maps(&other, &joined).unwrap_err().to_string();
        assert!(err.contains("non-matching mapping specified"), "{err}");
    }
}
