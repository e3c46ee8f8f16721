//! `--pidfd-socket`: a pidfd of the container's init (create, run) or of the
//! exec'd process (exec) arrives on a unix socket as runc sends it (the kind
//! of process as data, one SCM_RIGHTS fd), and is usable: signalled through
//! it, that process and no other dies. An unreachable socket is refused
//! before anything is made.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use crate::terminal::receive_master;

fn listen(t: &TestEnv) -> (UnixListener, PathBuf) {
    let path = t.sockets.join("pidfd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    (listener, path)
}

/// The host pid a pidfd refers to (its fdinfo's `Pid:` line).
#[track_caller]
fn pid_of(pidfd: &OwnedFd) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
        .trim()
        .parse()
        .unwrap()
}

#[track_caller]
fn signal(pidfd: &OwnedFd, sig: i32) {
    // SAFETY: plain syscall; a null siginfo means "as kill()".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, 0, "pidfd_send_signal: {}", std::io::Error::last_os_error());
}

/// Gone, or a zombie nobody reaps yet.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn state_pid(t: &TestEnv, id: &str) -> i32 {
    t.state(id).expect("state")["pid"].as_i64().unwrap() as i32
}

#[test]
fn create_sends_the_init_and_sigterm_through_it_stops_the_created_container() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["sleep", "60"]);
    let (listener, path) = listen(&t);
    let id = t.id.clone();
    t.create(&id, &["--pidfd-socket", s(&path)]).assert_ok();
    let (kind, pidfd) = receive_master(&listener);
    assert_eq!(kind, "standard");
    assert_eq!(pid_of(&pidfd), state_pid(&t, &id));
    assert_eq!(t.status(&id), "created");
    // What runc's pidfd-kill helper does: a waiting init dies of SIGTERM.
    signal(&pidfd, libc::SIGTERM);
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn detached_run_sends_the_running_init() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["sleep", "60"]);
    let (listener, path) = listen(&t);
    let id = t.id.clone();
    t.run(&id, &["-d", "--pidfd-socket", s(&path)]).assert_ok();
    let (kind, pidfd) = receive_master(&listener);
    assert_eq!(kind, "standard");
    assert_eq!(pid_of(&pidfd), state_pid(&t, &id));
    assert_eq!(t.status(&id), "running");
    signal(&pidfd, libc::SIGKILL);
    t.wait_status(&id, "stopped");
    t.rt(&["delete", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn exec_sends_the_exec_d_process_not_the_init() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let (listener, path) = listen(&t);
    let pid_file = t.dir.join("exec.pid");
    t.rt(&[
        "exec",
        "-d",
        "--pid-file",
        s(&pid_file),
        "--pidfd-socket",
        s(&path),
        &id,
        "sleep",
        "60",
    ])
    .assert_ok();
    let (kind, pidfd) = receive_master(&listener);
    assert_eq!(kind, "setns");
    let exec_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(pid_of(&pidfd), exec_pid);
    assert_ne!(exec_pid, state_pid(&t, &id));
    signal(&pidfd, libc::SIGKILL);
    assert!(
        poll_until(Duration::from_secs(5), || exited(exec_pid)),
        "exec'd process survived"
    );
    assert_eq!(t.status(&id), "running", "the init must not be touched");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn an_unreachable_socket_is_refused_in_runc_s_words() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(&["sleep", "60"]);
    let path = t.sockets.join("nobody-listens.sock");
    let id = t.id.clone();
    let out = t.run(&id, &["-d", "--pidfd-socket", s(&path)]);
    out.assert_fails();
    let msgs = out.error_msgs().join("\n");
    assert!(
        msgs.contains(&format!("failed to dail {}", path.display())) && msgs.contains("o such file or directory"),
        "{msgs:?}"
    );
    // runc 1.4.2 has made the container by then and leaves it behind.
    let runc = runtime_bin()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("runc"));
    if !runc {
        t.assert_clean(&id);
    }
}
