//! The container process: what it runs (args, env, cwd), as whom (user,
//! groups, umask, capabilities, no_new_privs), with which rlimits. The
//! parent turns the config into a `Plan` before clone; the child applies it.

pub mod attrs;
pub mod caps;
pub mod env;
pub mod fds;
pub mod lsm;
pub mod mempolicy;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::sync::{At, Failure, Step};
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Plan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    pub caps: caps::Sets,
    pub no_new_privileges: bool,
    /// process.scheduler, for sched_setattr.
    pub sched: Option<sys::SchedAttr>,
    /// process.ioPriority, for ioprio_set.
    pub ioprio: Option<i32>,
    /// process.execCPUAffinity: masks applied early and just before execve.
    pub cpus_initial: Option<Vec<u64>>,
    pub cpus_final: Option<Vec<u64>>,
    /// PATH from the process env, for the executable lookup.
    path_var: String,
}

fn cstrings(list: &[String], what: &str) -> Result<Vec<CString>> {
    list.iter()
        .map(|s| CString::new(s.as_str()).with_context(|| format!("{what} {s:?} contains a NUL byte")))
        .collect()
}

pub fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

impl Plan {
    pub fn from_spec(p: &Process) -> Result<Plan> {
        let args = p.args().as_deref().unwrap_or(&[]);
        if args.is_empty() {
            bail!("process.args must name the program to run");
        }
        if !p.cwd().is_absolute() {
            bail!("process.cwd {:?} must be an absolute path", p.cwd());
        }
        let env = env::prepare(p.env().as_deref().unwrap_or(&[]))?;
        let path_var = env::get(&env, "PATH").unwrap_or(DEFAULT_PATH).to_string();
        let mut rlimits = Vec::new();
        for r in p.rlimits().as_deref().unwrap_or(&[]) {
            if r.soft() > r.hard() {
                bail!(
                    "rlimit {:?}: soft limit {} exceeds hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                );
            }
            rlimits.push((rlimit_resource(r.typ()), r.soft(), r.hard()));
        }
        let user = p.user();
        let (cpus_initial, cpus_final) = match p.exec_cpu_affinity() {
            Some(a) => attrs::affinity(a)?,
            None => (None, None),
        };
        Ok(Plan {
            args: cstrings(args, "process.args entry")?,
            env: cstrings(&env, "process.env entry")?,
            cwd: p.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            rlimits,
            caps: caps::Sets::from_spec(p.capabilities().as_ref()),
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            sched: p.scheduler().as_ref().map(attrs::scheduler).transpose()?,
            ioprio: p.io_priority().as_ref().map(attrs::io_priority).transpose()?,
            cpus_initial,
            cpus_final,
            path_var,
        })
    }

    /// Limits are set while still privileged (raising a hard limit needs
    /// CAP_SYS_RESOURCE).
    pub fn apply_rlimits(&self) -> Result<(), Failure> {
        for &(res, soft, hard) in &self.rlimits {
            sys::setrlimit(res, soft, hard).at(Step::Rlimit, res)?;
        }
        Ok(())
    }

    /// Scheduler policy and I/O priority, set while still privileged
    /// (real-time classes need CAP_SYS_NICE / CAP_SYS_ADMIN).
    pub fn apply_scheduling(&self) -> Result<(), Failure> {
        if let Some(attr) = &self.sched {
            sys::sched_setattr(attr).at(Step::Scheduler, format!("policy {}", attr.policy))?;
        }
        if let Some(prio) = self.ioprio {
            sys::ioprio_set(prio).at(Step::IoPriority, format!("class {} priority {}", prio >> 13, prio & 7))?;
        }
        Ok(())
    }

    /// Switches to the configured user, keeping capabilities across setuid
    /// so that `caps.apply()` can then set exactly the configured ones.
    pub fn switch_user(&self, in_user_ns: bool) -> Result<(), Failure> {
        sys::prctl(libc::PR_SET_KEEPCAPS, 1).at(Step::SetUid, "keepcaps")?;
        match sys::setgroups(&self.additional_gids) {
            // setgroups may be denied inside a user namespace; only an
            // explicit request for supplementary groups makes that fatal.
            Err(e) if in_user_ns && self.additional_gids.is_empty() && e.raw_os_error() == Some(libc::EPERM) => {}
            other => other.at(Step::SetGroups, format!("{:?}", self.additional_gids))?,
        }
        sys::setresgid(self.gid).at(Step::SetGid, self.gid)?;
        sys::setresuid(self.uid).at(Step::SetUid, self.uid)?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 0).at(Step::SetUid, "keepcaps")
    }

    /// Creates the cwd inside the rootfs if the image lacks it (as runc
    /// does), while the root is still writable.
    pub fn create_cwd(&self, root: std::os::fd::RawFd) -> Result<(), Failure> {
        let rel = crate::rootfs::resolve::clean(&self.cwd);
        crate::rootfs::resolve::mkdir_all(root, &rel, 0o755).at(Step::Chdir, self.cwd.display())?;
        Ok(())
    }

    /// Changes into the cwd, inside our root (the container's, for create,
    /// run and exec alike): resolved by openat2 from the root, never through
    /// a magic link such as /proc/self/fd/N (CVE-2024-21626), then checked
    /// once more where the kernel says we landed.
    pub fn enter_cwd(&self) -> Result<(), Failure> {
        use std::os::fd::AsRawFd;
        let shown = self.cwd.display();
        let root =
            sys::openat(libc::AT_FDCWD, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0).at(Step::Chdir, "/")?;
        let rel = crate::rootfs::resolve::clean(&self.cwd);
        let dir = crate::rootfs::resolve::open(root.as_raw_fd(), &rel, libc::O_DIRECTORY).at(Step::Chdir, &shown)?;
        sys::fchdir(dir.as_raw_fd()).at(Step::Chdir, &shown)?;
        cwd_is_below(root.as_raw_fd(), &dir).map_err(|errno| Failure::errno(Step::VerifyCwd, &shown, errno))
    }

    /// Finds the executable as execvp would, in the container's PATH.
    pub fn lookup(&self) -> Result<CString, Failure> {
        let arg0 = &self.args[0];
        let name = Path::new(std::ffi::OsStr::from_bytes(arg0.as_bytes()));
        let shown = name.display();
        if arg0.as_bytes().contains(&b'/') {
            return check_executable(name)
                .map(|_| arg0.clone())
                .map_err(|e| Failure::errno(Step::LookupExecutable, shown, e));
        }
        let mut last = libc::ENOENT;
        for dir in self.path_var.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = Path::new(dir).join(name);
            match check_executable(&candidate) {
                Ok(()) => return sys::cstring(&candidate).at(Step::LookupExecutable, shown),
                Err(libc::ENOENT) | Err(libc::ENOTDIR) => {}
                Err(e) => last = e,
            }
        }
        Err(Failure::errno(
            Step::LookupExecutable,
            format!("{shown} (not found in $PATH)"),
            last,
        ))
    }

    /// Sets NAME=value, replacing NAME's entry if the config has one (an
    /// entry with a NUL inside is dropped).
    pub fn add_env(&mut self, entry: &str) {
        let key = entry.split_once('=').map_or(entry, |(k, _)| k);
        self.env.retain(|e| {
            !e.to_bytes()
                .split(|&b| b == b'=')
                .next()
                .is_some_and(|k| k == key.as_bytes())
        });
        if let Ok(c) = CString::new(entry) {
            self.env.push(c);
        }
    }

    /// HOME from the container's /etc/passwd when the config sets none (an
    /// empty HOME was dropped by `env::prepare`).
    pub fn add_home(&mut self) {
        if self.env.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
            return;
        }
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|text| home_of(&text, self.uid))
            .unwrap_or_else(|| "/".to_string());
        if let Ok(c) = CString::new(format!("HOME={home}")) {
            self.env.push(c);
        }
    }
}

/// Ok when our cwd (`dir`) is reachable from our root: getcwd(2) must give
/// an absolute path, not "(unreachable)/...", and that path, resolved from
/// the root, must be the same directory. Else the errno to report.
fn cwd_is_below(root: std::os::fd::RawFd, dir: &std::os::fd::OwnedFd) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let wd = sys::getcwd_raw().map_err(errno)?;
    if wd.first() != Some(&b'/') {
        return Err(libc::ENOENT);
    }
    let rel = crate::rootfs::resolve::clean(Path::new(std::ffi::OsStr::from_bytes(&wd)));
    let again = crate::rootfs::resolve::open(root, &rel, libc::O_DIRECTORY).map_err(errno)?;
    let here = sys::fstat(dir.as_raw_fd()).map_err(errno)?;
    let there = sys::fstat(again.as_raw_fd()).map_err(errno)?;
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino) {
        return Err(libc::ENOENT);
    }
    Ok(())
}

fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd_field(passwd, uid, 5).map(str::to_string)
}

/// Field `index` (0 name, 5 home) of the /etc/passwd line for `uid`.
pub fn passwd_field(passwd: &str, uid: u32, index: usize) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > index.max(2) && f[2].parse() == Ok(uid)).then(|| f[index])
    })
}

/// Ok when `path` is a regular file this process may execute; else errno.
fn check_executable(path: &Path) -> Result<(), i32> {
    let meta = std::fs::metadata(path).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    if !meta.is_file() {
        return Err(libc::EACCES);
    }
    sys::access_executable(path).map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: serde_json::Value) -> Process {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn plan_reads_user_rlimits_and_path() {
        let p = Plan::from_spec(&process(serde_json::json!({
            "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 63},
            "args": ["sh"], "cwd": "/work",
            "env": ["PATH=/bin:/usr/bin", "A=b"],
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
        })))
        .unwrap();
        assert_eq!((p.uid, p.gid, p.umask), (1000, 100, 63));
        assert_eq!(p.additional_gids, vec![5, 6]);
        assert_eq!(p.rlimits, vec![(libc::RLIMIT_NOFILE as i32, 10, 20)]);
        assert_eq!(p.path_var, "/bin:/usr/bin");
    }

    #[test]
    fn bad_processes_are_rejected() {
        let no_args = process(serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"}));
        assert!(Plan::from_spec(&no_args).is_err());
        let rel_cwd = process(serde_json::json!({"user": {"uid": 0, "gid": 0}, "args": ["x"], "cwd": "rel"}));
        assert!(Plan::from_spec(&rel_cwd).is_err());
        let soft_over_hard = process(
            serde_json::json!({"user": {"uid": 0, "gid": 0}, "args": ["x"], "cwd": "/",
            "rlimits": [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]}),
        );
        assert!(Plan::from_spec(&soft_over_hard).is_err());
    }

    #[test]
    fn unknown_rlimit_names_fail_to_parse() {
        let r: Result<Process, _> = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "args": ["x"], "cwd": "/",
            "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
        }));
        assert!(r.is_err());
    }

    #[test]
    fn lookup_searches_path() {
        let mut p = Plan::from_spec(&process(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/", "env": ["PATH=/nonexistent:/bin"]
        })))
        .unwrap();
        assert_eq!(p.lookup().unwrap().to_str().unwrap(), "/bin/sh");
        p.args[0] = CString::new("no-such-program-xrun").unwrap();
        let err = p.lookup().unwrap_err();
        assert_eq!(err.errno, libc::ENOENT);
        assert!(err.to_string().contains("no such file or directory"));
    }

    #[test]
    fn home_comes_from_passwd() {
        let text = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n";
        assert_eq!(home_of(text, 1000).as_deref(), Some("/home/bob"));
        assert_eq!(home_of(text, 5), None);
    }
}
