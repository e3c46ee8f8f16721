//! Parent side of SCMP_ACT_NOTIFY: hands the init's listener fd to the
//! seccomp agent at `linux.seccomp.listenerPath`, as the runtime spec
//! describes: one message on a SOCK_STREAM unix socket carrying the
//! container process state JSON, with the fd as SCM_RIGHTS.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

/// The container process state (runtime spec, "Container process state").
pub fn process_state(pid: i32, metadata: Option<&str>, state_json: &str) -> Value {
    let state: Value = serde_json::from_str(state_json).unwrap_or(Value::Null);
    let mut v = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        v["metadata"] = json!(m);
    }
    v
}

/// Connects to the agent and sends the state with `listener`; the agent
/// owns the listener from then on (our copy is closed on return).
pub fn send_to_agent(profile: &LinuxSeccomp, pid: i32, state_json: &str, listener: OwnedFd) -> Result<()> {
    let path = profile.listener_path().as_deref().unwrap_or(Path::new(""));
    let msg = process_state(pid, profile.listener_metadata().as_deref(), state_json);
    let body = serde_json::to_vec(&msg)?;
    let sock = UnixStream::connect(path).with_context(|| {
        format!(
            "failed to connect with seccomp agent specified in the seccomp profile ({})",
            path.display()
        )
    })?;
    crate::sys::send_with_fd(sock.as_raw_fd(), &body, listener.as_raw_fd())
        .with_context(|| format!("send the seccomp listener to {}", path.display()))?;
    crate::debug!("seccomp listener of pid {pid} sent to {}", path.display());
    Ok(())
}
