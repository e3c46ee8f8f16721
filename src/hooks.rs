//! OCI hooks: each runs with the state JSON on stdin, its own args and env,
//! and an optional timeout. Output is captured and shown only on failure.
//! Callers decide what a failure means (abort for the create-time hooks,
//! a warning for poststart/poststop).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::Hook;

use crate::sys;

/// A memfd holding `data`, rewound, to hand to a child as stdin.
fn memfd_with(data: &[u8]) -> Result<File> {
    let mut f = File::from(sys::memfd_create(c"xrun-hook", libc::MFD_CLOEXEC)?);
    f.write_all(data)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

/// Runs one hook to completion. `default_env` is for a hook that sets no
/// env (startContainer gets the process's, as in runc). Errors name the
/// hook's path and how it ended, in runc's words.
pub fn run(hook: &Hook, state_json: &str, default_env: Option<&[CString]>) -> Result<()> {
    let path = hook.path();
    let what = path.display();
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args().as_deref() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    // A hook without env of its own gets `default_env`, or else ours
    // (runc's, Go's exec, rule).
    match (hook.env().as_deref().filter(|e| !e.is_empty()), default_env) {
        (Some(env), _) => {
            cmd.env_clear();
            for e in env {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                cmd.env(k, v);
            }
        }
        (None, Some(env)) => {
            cmd.env_clear();
            for e in env {
                let (k, v) = split_env(OsStr::from_bytes(e.as_bytes()));
                cmd.env(k, v);
            }
        }
        (None, None) => {}
    }
    let mut output = File::from(sys::memfd_create(c"xrun-hook-out", libc::MFD_CLOEXEC)?);
    cmd.stdin(memfd_with(state_json.as_bytes())?)
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output.try_clone()?));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => match e.raw_os_error() {
            Some(errno) => bail!("{what}: {}", sys::strerror(errno)),
            None => bail!("{what}: {e}"),
        },
    };

    let timeout = hook.timeout().filter(|t| *t > 0);
    if let Some(secs) = timeout {
        let pidfd = sys::pidfd_open(child.id() as i32).with_context(|| format!("watch hook {what}"))?;
        let mut pfd = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = i32::try_from(secs.saturating_mul(1000)).unwrap_or(i32::MAX);
        if sys::poll(&mut pfd, ms)? == 0 {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = child.wait();
            bail!("{what}: hook ran past specified timeout of {secs}.0s");
        }
    }
    let status = child.wait().with_context(|| format!("wait for hook {what}"))?;
    if !status.success() {
        let mut text = String::new();
        output.seek(SeekFrom::Start(0))?;
        let _ = output.take(4096).read_to_string(&mut text);
        let text = text.trim().replace('\n', " ");
        let how = how_it_ended(status);
        if text.is_empty() {
            bail!("{what}: {how}");
        }
        bail!("{what}: {how}, output: {text}");
    }
    Ok(())
}

fn split_env(e: &OsStr) -> (&OsStr, &OsStr) {
    let b = e.as_bytes();
    match b.iter().position(|&c| c == b'=') {
        Some(i) => (OsStr::from_bytes(&b[..i]), OsStr::from_bytes(&b[i + 1..])),
        None => (e, OsStr::new("")),
    }
}

/// "exit status N" or "signal: NAME", as runc (Go) words a failed command.
fn how_it_ended(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    let sig = status.signal().unwrap_or(0);
    let core = if status.core_dumped() { " (core dumped)" } else { "" };
    format!("signal: {}{core}", signal_name(sig))
}

/// The lower-case description of a signal (strsignal's words).
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGILL => "illegal instruction",
        libc::SIGTRAP => "trace/breakpoint trap",
        libc::SIGABRT => "aborted",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "floating point exception",
        libc::SIGKILL => "killed",
        libc::SIGUSR1 => "user defined signal 1",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGUSR2 => "user defined signal 2",
        libc::SIGPIPE => "broken pipe",
        libc::SIGALRM => "alarm clock",
        libc::SIGTERM => "terminated",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "file size limit exceeded",
        libc::SIGSYS => "bad system call",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// Runs a list of hooks in order, stopping at the first failure, which is
/// reported as runc does: `error running KIND hook #N: ...` (N from 0).
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    run_all_with_env(kind, hooks, state_json, None)
}

/// `run_all`, with the env for hooks that set none.
pub fn run_all_with_env(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state_json: &str,
    default_env: Option<&[CString]>,
) -> Result<()> {
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        run(hook, state_json, default_env).map_err(|e| anyhow!("error running {kind} hook #{i}: {e:#}"))?;
    }
    Ok(())
}

/// Runs a list of hooks where failures are only warnings (poststart,
/// poststop: the spec lets the lifecycle go on).
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run(hook, state_json, None) {
            crate::warn!("error running {kind} hook #{i}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    /// Runs `script` as a hook with `env` (None: no "env" key) and the
    /// default env `default`; returns what it printed to `out`.
    fn env_seen(env: Option<&[&str]>, default: Option<&[CString]>) -> String {
        let dir = std::env::temp_dir().join(format!("xrun-hook-env-{}-{}", sys::getpid(), env.is_some()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let mut json = serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"${{FOO-unset}} ${{CARGO-unset}}\" > {}", out.display())],
        });
        if let Some(env) = env {
            json["env"] = serde_json::json!(env);
        }
        run(&hook(json), "{}", default).unwrap();
        let seen = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        seen.trim().to_string()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_its_env() {
        let dir = std::env::temp_dir().join(format!("xrun-hook-{}", sys::getpid()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$FOO\" >> {}", out.display(), out.display())],
            "env": ["FOO=bar"]
        }));
        run(&h, "{\"id\":\"x\"}", None).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}bar\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hook_env_its_own_else_the_default_else_ours() {
        // cargo sets CARGO for the test binary: it stands for our env.
        let default = [CString::new("FOO=from-process").unwrap()];
        assert_eq!(env_seen(Some(&["FOO=own"]), Some(&default)), "own unset");
        assert_eq!(env_seen(None, Some(&default)), "from-process unset");
        assert_eq!(env_seen(Some(&[]), Some(&default)), "from-process unset");
        let ours = env_seen(None, None);
        assert!(ours.starts_with("unset ") && !ours.ends_with(" unset"), "{ours}");
    }

    #[test]
    fn failures_are_worded_as_runc_words_them() {
        let h = |script: &str| hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}));
        let err = run(&h("echo oops >&2; exit 3"), "{}", None).unwrap_err().to_string();
        assert_eq!(err, "/bin/sh: exit status 3, output: oops");
        let err = run(&h("ulimit -c 0; kill -SYS $$"), "{}", None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/bin/sh: signal: bad system call"), "{err}");
        let missing = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        let err = run(&missing, "{}", None).unwrap_err().to_string();
        assert_eq!(err, "/nonexistent/hook: no such file or directory");
        let two = Some(vec![h("true"), h("exit 1")]);
        let err = run_all("prestart", two.as_ref(), "{}").unwrap_err().to_string();
        assert_eq!(err, "error running prestart hook #1: /bin/sh: exit status 1");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let slow = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}));
        let start = std::time::Instant::now();
        let err = run(&slow, "{}", None).unwrap_err().to_string();
        assert_eq!(err, "/bin/sh: hook ran past specified timeout of 1.0s");
        assert!(start.elapsed().as_secs() < 4);
    }
}
