//! Per-container state: one directory under `--root` holding `state.json`
//! (written atomically), the `exec.fifo` of a created container, and a lock
//! that serialises concurrent xrun calls on the same container.
//!
//! The status is never trusted from the file: it is derived from the kernel
//! (is the init process, identified by PID *and* start time, still alive; is
//! the create fifo still there).
//!
//! `create` writes state.json ahead of every resource it makes (status
//! `creating`, the cgroup it will make, whether it mounts in the runtime's
//! namespace, then the init's PID), so a create killed at any point leaves a
//! container that `state` and `list` show as stopped and `delete` removes
//! whole. The lock is waited on for a bounded time only.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

use crate::sys;

pub const OCI_VERSION: &str = "1.2.1";
const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
const MAX_ID_LEN: usize = 1024;
/// How long a verb waits for another one to release a container's lock.
/// No verb holds it while it waits on the container's own process (exec
/// drops it before its child may meet a frozen cgroup); the long holders
/// are create, start and run while OCI hooks run, bounded by the hooks'
/// timeouts. Past this, the waiting verb says the container is busy.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        };
        f.write_str(s)
    }
}

/// What `state.json` holds: the spec's state plus what later verbs need
/// without re-reading config.json (which may have changed since create).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Start time of the init process (field 22 of /proc/PID/stat), so a
    /// recycled PID is never mistaken for the container.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Whether the init has its own pid namespace (then killing it ends all).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// The container has no mount namespace: its mounts are in the
    /// runtime's and `delete` takes them down.
    #[serde(default)]
    pub host_mounts: bool,
    /// The init's own pid / mount namespace, recorded at create, so its
    /// other processes can be found after it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<String>,
    /// The container's cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroups::Record>,
    /// Written ahead by `create` while it is still making the container:
    /// if it dies, the container is a failed create (stopped) and what is
    /// recorded here is what `delete` must remove.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

/// The JSON `xrun state` prints and hooks receive on stdin (runc's fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: Status,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

impl Saved {
    pub fn report(&self, status: Status) -> Report<'_> {
        Report {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: self.annotations.as_ref(),
        }
    }

    /// The state JSON given to hooks: status as the caller says, pid as is.
    pub fn hook_json(&self, status: Status) -> String {
        let mut r = self.report(status);
        r.pid = self.pid;
        serde_json::to_string(&r).unwrap_or_default()
    }
}

/// Rejects ids that could escape the state root or confuse callers.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if id.is_empty() || id == "." || id == ".." || !ok_chars || id.len() > MAX_ID_LEN {
        bail!("invalid container id {id:?}: must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_+.-] and not . or ..");
    }
    Ok(())
}

/// An open, locked container directory.
pub struct ContainerDir {
    pub path: PathBuf,
    // Held for the lifetime of the value: flock is released on close.
    _lock: OwnedFd,
}

impl ContainerDir {
    /// Creates `root/id` exclusively; fails if the container exists.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        if !root.exists() {
            // Private to root, as runc makes it: state holds pids and paths.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .with_context(|| format!("create state root {}", root.display()))?;
        }
        let path = root.join(id);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id {id:?} already exists")
            }
            Err(e) => return Err(e).with_context(|| format!("create state dir {}", path.display())),
        }
        let lock = lock_dir(&path)?;
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Opens and locks an existing container's directory (start, delete).
    pub fn open(root: &Path, id: &str) -> Result<Self> {
        let path = existing(root, id)?;
        let lock = lock_dir(&path)?;
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Reads an existing container's state without taking the lock (state,
    /// kill): the file is replaced atomically, so a read is always whole.
    pub fn load_unlocked(root: &Path, id: &str) -> Result<(PathBuf, Saved)> {
        let path = existing(root, id)?;
        let saved = read_saved(&path)?;
        Ok((path, saved))
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<Saved> {
        read_saved(&self.path)
    }

    pub fn save(&self, saved: &Saved) -> Result<()> {
        let data = serde_json::to_vec(saved)?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    /// The status as the kernel sees it. We hold the lock, so a create
    /// that never finished is not running any more: it failed.
    pub fn status(&self, saved: &Saved) -> Status {
        if saved.creating {
            return Status::Stopped;
        }
        status_of(&self.path, saved)
    }

    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.path).with_context(|| format!("remove {}", self.path.display()))
    }
}

/// The status as the kernel sees it, for a container directory. An
/// unfinished create is `creating` while its `xrun create` still holds the
/// lock, and stopped (a failed create) once it died.
pub fn status_of(dir: &Path, saved: &Saved) -> Status {
    if saved.creating {
        return if locked_by_another(dir) {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !init_alive(saved.pid, saved.init_start_time) {
        Status::Stopped
    } else if saved.cgroup.as_ref().is_some_and(crate::cgroups::is_frozen) {
        Status::Paused
    } else if dir.join(EXEC_FIFO).exists() {
        Status::Created
    } else {
        Status::Running
    }
}

fn existing(root: &Path, id: &str) -> Result<PathBuf> {
    validate_id(id)?;
    let path = root.join(id);
    if !path.join(STATE_FILE).exists() {
        bail!("container {id:?} does not exist");
    }
    Ok(path)
}

fn read_saved(dir: &Path) -> Result<Saved> {
    let file = dir.join(STATE_FILE);
    let data = fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parse {}", file.display()))
}

/// Takes the container's lock, waiting at most LOCK_WAIT for its holder.
fn lock_dir(path: &Path) -> Result<OwnedFd> {
    lock_dir_within(path, LOCK_WAIT)
}

fn lock_dir_within(path: &Path, wait: Duration) -> Result<OwnedFd> {
    let fd: OwnedFd = fs::File::open(path)
        .with_context(|| format!("open state dir {}", path.display()))?
        .into();
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        match sys::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                let id = path.file_name().unwrap_or_default().to_string_lossy();
                bail!(
                    "container {id} is busy: another xrun command has held its lock for {:?}",
                    wait
                )
            }
            Err(e) => return Err(e).with_context(|| format!("lock {}", path.display())),
        }
    }
}

/// Whether another process holds the container's lock right now.
fn locked_by_another(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    // Our own open file description: it conflicts with any holder's.
    let held = sys::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB);
    held.is_err_and(|e| e.raw_os_error() == Some(libc::EWOULDBLOCK))
}

/// Writes `data` to a temp file beside `path` and renames it into place, so
/// readers see the old or the new content, never a torn one.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", sys::getpid()));
    let mut f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    // No fsync: the state root lives on tmpfs (/run), as runc's does.
    f.write_all(data).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("rename {} to {}", tmp.display(), path.display())
    })
}

/// Start time (clock ticks since boot) of a process, from /proc/PID/stat.
/// None when the process is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); starttime is field 22.
    fields.nth(22 - 4)?.parse().ok()
}

pub fn init_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for good in ["a", "abc-1.2_3+x", &"x".repeat(MAX_ID_LEN)] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\0b", &"x".repeat(MAX_ID_LEN + 1)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_start_time_is_read() {
        let me = sys::getpid();
        let t = process_start_time(me).expect("own stat");
        assert!(init_alive(me, t));
        assert!(!init_alive(me, t + 1));
    }

    #[test]
    fn a_held_lock_is_waited_for_with_a_bound() {
        let dir = std::env::temp_dir().join(format!("xrun-lock-test-{}", sys::getpid()));
        fs::create_dir_all(&dir).unwrap();
        let holder = lock_dir_within(&dir, Duration::ZERO).unwrap();
        assert!(locked_by_another(&dir));
        let started = Instant::now();
        let err = lock_dir_within(&dir, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        let text = format!("{err:#}");
        assert!(text.contains("is busy") && text.contains("xrun-lock-test"), "{text}");
        drop(holder);
        assert!(!locked_by_another(&dir));
        assert!(lock_dir_within(&dir, Duration::from_millis(100)).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unfinished_create_is_stopped_once_its_creator_is_gone() {
        let dir = std::env::temp_dir().join(format!("xrun-creating-test-{}", sys::getpid()));
        fs::create_dir_all(&dir).unwrap();
        let me = sys::getpid();
        let saved = Saved {
            oci_version: OCI_VERSION.into(),
            id: "c".into(),
            // A live process: only the lock tells a running create apart.
            pid: me,
            init_start_time: process_start_time(me).unwrap(),
            bundle: dir.clone(),
            rootfs: dir.clone(),
            created: String::new(),
            owner: String::new(),
            annotations: None,
            hooks: None,
            own_pid_ns: false,
            host_mounts: false,
            pid_ns: None,
            mnt_ns: None,
            cgroup: None,
            creating: true,
        };
        let holder = lock_dir_within(&dir, Duration::ZERO).unwrap();
        assert_eq!(status_of(&dir, &saved), Status::Creating);
        drop(holder);
        assert_eq!(status_of(&dir, &saved), Status::Stopped);
        assert_eq!(saved.report(Status::Stopped).pid, 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = std::env::temp_dir().join(format!("xrun-state-test-{}", sys::getpid()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
