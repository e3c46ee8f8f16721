//! OCI hooks: each runs with the state JSON on stdin, its own args and env,
//! and an optional timeout. Output is captured and shown only on failure.
//! Callers decide what a failure means (abort for the create-time hooks,
//! a warning for poststart/poststop).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;

use crate::sys;

/// A memfd holding `data`, rewound, to hand to a child as stdin.
fn memfd_with(data: &[u8]) -> Result<File> {
    let mut f = File::from(sys::memfd_create(c"xrun-hook", libc::MFD_CLOEXEC)?);
    f.write_all(data)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

/// Runs one hook to completion.
pub fn run(kind: &str, hook: &Hook, state_json: &str) -> Result<()> {
    let path = hook.path();
    let what = format!("{kind} hook {}", path.display());
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args().as_deref() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for e in hook.env().as_deref().unwrap_or(&[]) {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        cmd.env(k, v);
    }
    let mut output = File::from(sys::memfd_create(c"xrun-hook-out", libc::MFD_CLOEXEC)?);
    cmd.stdin(memfd_with(state_json.as_bytes())?)
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output.try_clone()?));
    let mut child = cmd.spawn().with_context(|| format!("start {what}"))?;

    let timeout = hook.timeout().filter(|t| *t > 0);
    if let Some(secs) = timeout {
        let pidfd = sys::pidfd_open(child.id() as i32).with_context(|| format!("watch {what}"))?;
        let mut pfd = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = i32::try_from(secs.saturating_mul(1000)).unwrap_or(i32::MAX);
        if sys::poll(&mut pfd, ms)? == 0 {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = child.wait();
            bail!("{what} timed out after {secs}s");
        }
    }
    let status = child.wait().with_context(|| format!("wait for {what}"))?;
    if !status.success() {
        let mut text = String::new();
        output.seek(SeekFrom::Start(0))?;
        let _ = output.take(4096).read_to_string(&mut text);
        let text = text.trim().replace('\n', " ");
        let code = status
            .code()
            .map_or_else(|| format!("{status}"), |c| format!("exit status {c}"));
        if text.is_empty() {
            bail!("{what} failed: {code}");
        }
        bail!("{what} failed: {code}: {text}");
    }
    Ok(())
}

/// Runs a list of hooks in order, stopping at the first failure.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<()> {
    for hook in hooks.into_iter().flatten() {
        run(kind, hook, state_json)?;
    }
    Ok(())
}

/// Runs a list of hooks where failures are only warnings (poststart, poststop).
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for hook in hooks.into_iter().flatten() {
        if let Err(e) = run(kind, hook, state_json) {
            crate::warn!("{e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
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
        run("test", &h, "{\"id\":\"x\"}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}bar\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_and_timeout_are_errors_with_output() {
        let failing = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 3"]}));
        let err = run("prestart", &failing, "{}").unwrap_err().to_string();
        assert!(err.contains("exit status 3") && err.contains("oops"), "{err}");
        let slow = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}));
        let start = std::time::Instant::now();
        let err = run("prestart", &slow, "{}").unwrap_err().to_string();
        assert!(err.contains("timed out"), "{err}");
        assert!(start.elapsed().as_secs() < 4);
    }
}
