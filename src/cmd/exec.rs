//! `xrun exec`: run a new process inside an existing container, from
//! `--process FILE` (what containerd's shim passes) or from the container's
//! own process with the command and flags given here, as runc does. In the
//! foreground signals are forwarded and xrun exits with the process's
//! status; `--detach` returns once it is executing.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};

use crate::cli::ExecArgs;
use crate::container::{self, exec};
use crate::state::{self, ContainerDir, Status};
use crate::{config, sys};

pub fn run(root: &Path, args: &ExecArgs) -> Result<i32> {
    let sub_cgroup = crate::cgroups::sub::parse(&args.cgroup)?;
    let dir = ContainerDir::open(root, &args.id)?;
    let saved = dir.load()?;
    match dir.status(&saved) {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => bail!("cannot exec in a paused container (use --ignore-paused to override)"),
        _ => bail!("cannot exec in a stopped container"),
    }
    let bundle = config::load(&saved.bundle).with_context(|| format!("container {}", saved.id))?;
    let process = process_for(args, &bundle.spec)?;
    let terminal = process.terminal().unwrap_or(false);
    crate::console::check_flags(terminal, args.detach, args.console_socket.as_deref())?;
    let console_socket = args
        .console_socket
        .as_deref()
        .map(crate::console::socket::connect)
        .transpose()?;
    let pidfd_socket = args
        .pidfd_socket
        .as_deref()
        .map(container::pidfd_socket::connect)
        .transpose()?;
    let signals = crate::cmd::run::forwarded_signals(args.detach)?;
    let started = exec::start(
        dir,
        &saved,
        &bundle,
        &process,
        args.preserve_fds,
        container::Sockets {
            console: console_socket.as_ref(),
            pidfd: pidfd_socket.as_ref(),
        },
        sub_cgroup.as_ref(),
    )?;
    if let Err(e) = container::release_over_sync(&started.sync, container::Mode::Exec) {
        let _ = sys::waitpid(started.pid, 0);
        return Err(e);
    }
    crate::phase!("exec'd");
    if let Some(p) = &args.pid_file {
        state::write_atomic(p, started.pid.to_string().as_bytes())?;
    }
    match signals {
        None => Ok(0),
        Some(signals) => crate::cmd::run::wait_foreground(started.pid, &started.pidfd, &signals, started.console),
    }
}

/// The process to run: `--process` as given, or the container's process
/// with this command line's changes (runc's rules).
fn process_for(args: &ExecArgs, spec: &Spec) -> Result<Process> {
    if let Some(path) = &args.process {
        let text = std::fs::read(path).with_context(|| format!("read process file {}", path.display()))?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&text).with_context(|| format!("parse process file {}", path.display()))?;
        if let Some(caps) = value.pointer_mut("/capabilities") {
            crate::process::caps::drop_unknown_names(caps);
        }
        crate::config::respell_sched_flags(value.pointer_mut("/scheduler"));
        // Without "user" the process runs as 0:0 (runc's zero value).
        if let Some(obj) = value.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        let mut p: Process =
            serde_json::from_value(value).with_context(|| format!("parse process file {}", path.display()))?;
        // The container's execCPUAffinity holds unless the file sets its own
        // (runc's rule).
        if p.exec_cpu_affinity().is_none() {
            p.set_exec_cpu_affinity(spec.process().as_ref().and_then(|c| c.exec_cpu_affinity().clone()));
        }
        return Ok(p);
    }
    if args.command.is_empty() {
        bail!("exec needs a command to run (or --process FILE)");
    }
    let mut p = spec
        .process()
        .clone()
        .context("config.json has no process to base the exec on")?;
    p.set_args(Some(args.command.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &args.user {
        let mut user = p.user().clone();
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
        p.set_user(user);
    }
    if !args.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(args.additional_gids.clone()));
        p.set_user(user);
    }
    if !args.cap.is_empty() {
        add_caps(&mut p, &args.cap)?;
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    p.set_terminal(Some(args.tty));
    if let Some(profile) = &args.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

/// `-u uid[:gid]`, numeric as in runc.
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let num = |v: &str| {
        v.parse::<u32>()
            .with_context(|| format!("invalid --user {s:?}: want uid[:gid]"))
    };
    Ok((num(uid)?, gid.map(num).transpose()?))
}

/// `--cap`: added to the bounding, effective and permitted sets (and the
/// ambient set when the process has inheritable ones), as runc does.
fn add_caps(p: &mut Process, names: &[String]) -> Result<()> {
    use oci_spec::runtime::{Capability, LinuxCapabilities};
    let mut caps: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
    for name in names {
        let full = if name.starts_with("CAP_") {
            name.clone()
        } else {
            format!("CAP_{}", name.to_uppercase())
        };
        let cap: Capability = serde_json::from_value(serde_json::json!(full))
            .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        if caps.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
            caps.set_ambient(add(caps.ambient()));
        }
    }
    p.set_capabilities(Some(caps));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_flag_is_numeric_uid_and_optional_gid() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("bob").is_err());
        assert!(parse_user("1:x").is_err());
    }
}
