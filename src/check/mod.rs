//! `xrun check`: what this host gives a container runtime and what it
//! refuses, one line a topic, each shortfall with its fix. Everything is
//! read below a root directory (the real "/" or, in tests, a fake tree of
//! proc/, sys/, etc/ and run/); the few answers only a live kernel gives
//! (clone3, pidfd, the release) come in as `Kernel`.

mod probes;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// How a topic stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Present and usable.
    Ok,
    /// Absent or limited, but a default container does not need it.
    No,
    /// A default container (`xrun spec` + `xrun run`) cannot run without it.
    Fail,
}

#[derive(Debug)]
pub struct Finding {
    pub topic: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    fn new(topic: &'static str, verdict: Verdict, detail: impl Into<String>) -> Finding {
        Finding {
            topic,
            verdict,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::No => "no",
            Verdict::Fail => "FAIL",
        };
        write!(f, "{verdict:<5}{:<18}{}", self.topic, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// What only the running kernel can answer.
pub struct Kernel {
    pub release: String,
    pub clone3: bool,
    pub pidfd: bool,
}

impl Kernel {
    pub fn live() -> Kernel {
        Kernel {
            release: crate::sys::kernel_release(),
            clone3: crate::sys::clone3_available(),
            pidfd: crate::sys::pidfd_open(std::process::id() as i32).is_ok(),
        }
    }
}

/// The host as `check` sees it.
pub struct Host {
    /// "/" or a fake tree.
    pub root: PathBuf,
    pub uid: u32,
    /// The state directory (`--root`), a real path even for a fake tree.
    pub state_root: PathBuf,
    /// $PATH, searched (below `root`) for newuidmap and newgidmap.
    pub path_env: String,
    /// $XDG_RUNTIME_DIR, where the user's D-Bus socket lives.
    pub runtime_dir: Option<PathBuf>,
    pub kernel: Kernel,
}

impl Host {
    pub fn real(state_root: &Path) -> Host {
        Host {
            root: PathBuf::from("/"),
            uid: crate::sys::geteuid(),
            state_root: state_root.to_path_buf(),
            path_env: std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            kernel: Kernel::live(),
        }
    }

    /// `abs` ("/proc/self/cgroup") below the root.
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn read(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.path(abs)).ok()
    }

    fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }
}

/// Every topic, in the order printed.
pub fn run(host: &Host) -> Vec<Finding> {
    vec![
        probes::state_root(host),
        probes::namespaces(host),
        probes::clone3_and_pidfd(host),
        probes::cgroups(host),
        probes::systemd(host),
        probes::user_namespaces(host),
        probes::subordinate_ids(host),
        probes::uidmap_tools(host),
        probes::idmapped_mounts(host),
        probes::seccomp(host),
        probes::lsm(host),
        probes::time_namespace(host),
    ]
}

/// The exit status: 0 unless something a default container needs is missing.
pub fn exit_code(findings: &[Finding]) -> i32 {
    i32::from(findings.iter().any(|f| f.verdict == Verdict::Fail))
}
