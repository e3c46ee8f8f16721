//! process.terminal: the pty inside the container, --console-socket (the
//! master arrives as runc sends it: the name as data, one SCM_RIGHTS fd) and
//! a foreground `run` relaying the pty to the caller's terminal.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A terminal config running busybox sh, with `tty` and `stty` applets.
fn terminal_env(args: &[&str]) -> Option<TestEnv> {
    let mut env = TestEnv::new()?;
    for applet in ["tty", "stty"] {
        std::os::unix::fs::symlink("busybox", env.rootfs.join("bin").join(applet)).unwrap();
    }
    env.args(args);
    env.config["process"]["terminal"] = json!(true);
    Some(env)
}

fn listen(env: &TestEnv) -> (UnixListener, PathBuf) {
    let path = env.sockets.join("console.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    (listener, path)
}

/// Accepts the runtime's connection (already made: create has returned) and
/// receives the master as a console-socket client does: the data is a name,
/// the control part exactly one SCM_RIGHTS fd.
pub(crate) fn receive_master(listener: &UnixListener) -> (String, OwnedFd) {
    let (stream, _) = listener.accept().expect("the runtime connected to the console socket");
    let mut name = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: name.as_mut_ptr().cast(),
        iov_len: name.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; the pointers set below outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` describes valid buffers for the call.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: CMSG_SPACE is a size computation.
    let one_fd = unsafe { libc::CMSG_SPACE(4) } as usize;
    assert_eq!(msg.msg_controllen, one_fd, "exactly one fd, as the shim checks");
    // SAFETY: the kernel filled msg_control with one header holding one fd.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert_eq!(
            ((*cmsg).cmsg_level, (*cmsg).cmsg_type),
            (libc::SOL_SOCKET, libc::SCM_RIGHTS)
        );
        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>())
    };
    // SAFETY: SCM_RIGHTS installed a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    (String::from_utf8_lossy(&name[..n as usize]).into_owned(), fd)
}

fn write_all(fd: &OwnedFd, text: &str) {
    let mut f = File::from(fd.try_clone().unwrap());
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// Reads `fd` (a pty master) until `done(text)` holds, EOF/EIO, or the
/// timeout; returns everything read.
fn read_until(fd: &OwnedFd, done: impl FnMut(&str) -> bool) -> String {
    read_for(fd, IO_TIMEOUT, done)
}

fn read_for(fd: &OwnedFd, timeout: Duration, mut done: impl FnMut(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !done(&text) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) } <= 0 {
            continue;
        }
        // SAFETY: pointer and length describe `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
    }
    text
}

fn read_to_end(fd: &OwnedFd) -> String {
    read_until(fd, |_| false)
}

/// Commands whose output never equals their echoed text: `$((..))` is
/// expanded only in the output.
const PROBE: &str = "tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo STDIO$((1+1)); \
                     echo >/dev/tty && echo CTTY$((1+2)); stat -c OWNER%u:%g $(tty); \
                     stat -L -c CONSOLE%t:%T /dev/console; exit\n";

#[test]
fn console_socket_gets_the_master_of_create() {
    let Some(mut env) = terminal_env(&["sh"]) else { return };
    env.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    let (listener, sock) = listen(&env);
    let id = env.id.clone();
    env.create(&id, &["--console-socket", s(&sock)]).assert_ok();
    let (name, master) = receive_master(&listener);
    assert_eq!(name, "/dev/ptmx");
    env.rt(&["start", &id]).assert_ok();
    write_all(&master, PROBE);
    let out = read_to_end(&master);
    assert!(out.contains("/dev/pts/0\r\n"), "tty: {out:?}");
    assert!(out.contains("30 100\r\n"), "consoleSize: {out:?}");
    assert!(out.contains("STDIO2"), "stdin/stdout/stderr are the tty: {out:?}");
    assert!(out.contains("CTTY3"), "the tty is the controlling terminal: {out:?}");
    assert!(out.contains("OWNER0:5"), "owner of the tty: {out:?}");
    // /dev/console is the pty too (devpts major 136 = 0x88).
    assert!(out.contains("CONSOLE88:0"), "/dev/console: {out:?}");
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn the_tty_belongs_to_the_process_user() {
    let Some(mut env) = terminal_env(&["sh"]) else { return };
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let (listener, sock) = listen(&env);
    let id = env.id.clone();
    env.create(&id, &["--console-socket", s(&sock)]).assert_ok();
    let (_, master) = receive_master(&listener);
    env.rt(&["start", &id]).assert_ok();
    write_all(&master, PROBE);
    let out = read_to_end(&master);
    assert!(out.contains("STDIO2") && out.contains("CTTY3"), "{out:?}");
    // uid of the process user; the group stays devpts' gid=5.
    assert!(out.contains("OWNER1000:5"), "owner of the tty: {out:?}");
    env.wait_status(&id, "stopped");
}

#[test]
fn detached_run_sends_the_master() {
    let Some(env) = terminal_env(&["sh", "-c", "echo X$((4+5)); sleep 100"]) else {
        return;
    };
    let (listener, sock) = listen(&env);
    let id = env.id.clone();
    env.run(&id, &["-d", "--console-socket", s(&sock)]).assert_ok();
    let (_, master) = receive_master(&listener);
    let out = read_until(&master, |t| t.contains("X9"));
    assert!(out.contains("X9\r\n"), "{out:?}");
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn terminal_without_console_socket_fails_on_create() {
    let Some(env) = terminal_env(&["sh"]) else { return };
    let id = env.id.clone();
    let out = env.create(&id, &[]);
    out.assert_fails();
    assert!(out.stderr.contains("cannot allocate tty if"), "{}", out.stderr);
    assert!(env.state(&id).is_none(), "nothing left behind");
    env.assert_clean(&id);
    // The same for a detached run.
    let out = env.run(&id, &["-d"]);
    out.assert_fails();
    assert!(out.stderr.contains("cannot allocate tty if"), "{}", out.stderr);
    env.assert_clean(&id);
}

#[test]
fn console_socket_without_terminal_fails() {
    let Some(mut env) = terminal_env(&["sh"]) else { return };
    env.config["process"]["terminal"] = json!(false);
    let (_listener, sock) = listen(&env);
    let id = env.id.clone();
    let out = env.create(&id, &["--console-socket", s(&sock)]);
    out.assert_fails();
    assert!(out.stderr.contains("cannot use console socket if"), "{}", out.stderr);
    env.assert_clean(&id);
    // A foreground run has no use for one either, terminal or not.
    env.config["process"]["terminal"] = json!(true);
    let out = env.run(&id, &["--console-socket", s(&sock)]);
    out.assert_fails();
    assert!(out.stderr.contains("cannot use console socket if"), "{}", out.stderr);
    env.assert_clean(&id);
}

/// A pty the test owns: (master, slave).
fn openpty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to two ints; name and termios may be null.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two new fds owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: termios is plain data, filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t
}

fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
    termios(fd).c_lflag
}

#[test]
fn foreground_run_relays_the_pty() {
    let Some(env) = terminal_env(&["sh"]) else { return };
    env.write_config();
    let (master, slave) = openpty(40, 120);
    let before = lflag(&slave);
    assert!(before & libc::ICANON != 0, "the test's pty starts cooked");
    let mut cmd = env.command(&["run", "--bundle", s(&env.bundle), &env.id]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let xrun_pid = child.id() as i32;
    let raw = poll_until(IO_TIMEOUT, || lflag(&slave) & (libc::ICANON | libc::ECHO) == 0);
    // Raw input, but our terminal still does the output's NL -> CRNL: the
    // container's pty sends bare NLs.
    let oflag = termios(&slave).c_oflag;
    // Our window size reached the container's pty.
    write_all(&master, "stty size; echo A$((1+1))\n");
    let first = read_until(&master, |t| t.contains("A2"));
    // SIGWINCH: the new size is passed on.
    let ws = libc::winsize {
        ws_row: 50,
        ws_col: 132,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid fd and a winsize that outlives the call.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    // SAFETY: the runtime we spawned, by PID.
    unsafe { libc::kill(xrun_pid, libc::SIGWINCH) };
    std::thread::sleep(Duration::from_millis(300));
    write_all(&master, "stty size; [ -t 0 ] && echo B$((2+2)); exit 3\n");
    let second = read_until(&master, |t| t.contains("B4"));
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        // Keep the pty drained while the runtime finishes.
        let _ = read_for(&master, Duration::from_millis(100), |_| false);
    };
    let after = lflag(&slave);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(raw, "stdin was set raw while the container ran");
    assert!(
        oflag & libc::OPOST != 0 && oflag & libc::ONLCR != 0,
        "output processing kept: {oflag:#o}"
    );
    assert!(!second.contains("\r\r"), "one CR per line: {second:?}");
    // runc 1.1.5 resizes concurrently with the start: sometimes too late.
    assert!(
        runtime_is_runc() || first.contains("40 120\r\n"),
        "initial size: {first:?}"
    );
    assert!(second.contains("50 132\r\n"), "size after SIGWINCH: {second:?}");
    assert!(second.contains("B4"), "{second:?}");
    assert_eq!(status.and_then(|s| s.code()), Some(3), "the container's exit code");
    assert_eq!(after, before, "termios restored");
    env.assert_clean(&env.id);
}

#[test]
fn foreground_run_without_a_terminal_of_ours_still_relays() {
    // runc refuses this (it wants a terminal on our side); xrun relays the
    // pty to whatever its stdio is, so a pipe or /dev/null is fine.
    if xrun_only() {
        return;
    }
    let Some(env) = terminal_env(&["sh", "-c", "[ -t 1 ] && echo T$((3+4)); exit 5"]) else {
        return;
    };
    let out = env.run(&env.id, &[]);
    assert_eq!(out.code(), 5, "the container's exit code: {}", out.stderr);
    // The container's pty does not turn NL into CRNL (runc clears ONLCR).
    assert_eq!(out.stdout, "T7\n");
    env.assert_clean(&env.id);
}

#[test]
fn foreground_run_relays_newlines_unchanged() {
    // What the container writes is what the caller reads: no CR added
    // (runc's bats read `runc run` output line by line, $HOME, mount modes).
    if xrun_only() {
        return;
    }
    let Some(env) = terminal_env(&["sh", "-c", "[ -t 1 ] && printf 'a\\nb\\n'"]) else {
        return;
    };
    let out = env.run(&env.id, &[]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout.as_bytes(), b"a\nb\n");
    env.assert_clean(&env.id);
}

#[test]
fn foreground_exec_tty_relays_newlines_unchanged() {
    if xrun_only() {
        return;
    }
    let Some(mut env) = terminal_env(&["sleep", "100"]) else {
        return;
    };
    env.config["process"]["terminal"] = json!(false);
    let id = env.id.clone();
    env.run(&id, &["--detach"]).assert_ok();
    env.wait_status(&id, "running");
    let out = env.rt(&["exec", "--tty", &id, "sh", "-c", "[ -t 1 ] && printf 'a\\nb\\n'"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(out.stdout.as_bytes(), b"a\nb\n");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn console_socket_receiver_sets_onlcr_itself() {
    // As with runc, the pty arrives with the kernel's default ONLCR; a
    // receiver that clears it (as runc's recvtty and conmon do) gets the
    // container's bytes unchanged from the first line on.
    let Some(env) = terminal_env(&["sh", "-c", "printf 'a\\nb\\n'"]) else {
        return;
    };
    let (listener, sock) = listen(&env);
    let id = env.id.clone();
    env.create(&id, &["--console-socket", s(&sock)]).assert_ok();
    let (_, master) = receive_master(&listener);
    let mut t = termios(&master);
    assert!(t.c_oflag & libc::ONLCR != 0, "the runtime left ONLCR to the receiver");
    t.c_oflag &= !libc::ONLCR;
    // SAFETY: valid fd and termios.
    assert_eq!(unsafe { libc::tcsetattr(master.as_raw_fd(), libc::TCSANOW, &t) }, 0);
    env.rt(&["start", &id]).assert_ok();
    assert_eq!(read_to_end(&master), "a\nb\n");
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn foreground_run_reports_a_signal_as_128_plus_n() {
    let Some(env) = terminal_env(&["sh", "-c", "echo U$((1+1)); sleep 100"]) else {
        return;
    };
    env.write_config();
    let (master, slave) = openpty(24, 80);
    let mut cmd = env.command(&["run", "--bundle", s(&env.bundle), &env.id]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let out = read_until(&master, |t| t.contains("U2"));
    assert!(out.contains("U2"), "{out:?}");
    env.rt(&["kill", &env.id, "KILL"]).assert_ok();
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        let _ = read_for(&master, Duration::from_millis(100), |_| false);
    };
    assert_eq!(status.and_then(|s| s.code()), Some(137));
    env.assert_clean(&env.id);
}

#[test]
fn exec_tty_sends_its_own_master_to_the_console_socket() {
    // The container itself has no terminal; the exec'd shell gets one, as
    // `ctr task exec -t` / `docker exec -t` ask for it.
    let Some(mut env) = terminal_env(&["sleep", "100"]) else {
        return;
    };
    env.config["process"]["terminal"] = json!(false);
    let id = env.id.clone();
    env.run(&id, &["--detach"]).assert_ok();
    env.wait_status(&id, "running");
    let (listener, sock) = listen(&env);
    env.rt(&["exec", "--tty", "--detach", "--console-socket", s(&sock), &id, "sh"])
        .assert_ok();
    let (name, master) = receive_master(&listener);
    assert_eq!(name, "/dev/ptmx");
    write_all(
        &master,
        "tty; [ -t 0 ] && [ -t 1 ] && echo STDIO$((1+1)); echo >/dev/tty && echo CTTY$((1+2)); exit\n",
    );
    let out = read_to_end(&master);
    assert!(out.contains("/dev/pts/0\r\n"), "tty: {out:?}");
    assert!(out.contains("STDIO2") && out.contains("CTTY3"), "{out:?}");
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}

#[test]
fn exec_tty_flags_follow_runc_rules() {
    let Some(mut env) = terminal_env(&["sleep", "100"]) else {
        return;
    };
    env.config["process"]["terminal"] = json!(false);
    let id = env.id.clone();
    env.run(&id, &["--detach"]).assert_ok();
    env.wait_status(&id, "running");
    let (_listener, sock) = listen(&env);
    // A detached exec with a tty needs a socket; a socket needs a tty.
    let no_socket = env.rt(&["exec", "--tty", "--detach", &id, "true"]);
    no_socket.assert_fails();
    assert!(no_socket.stderr.contains("cannot allocate tty"), "{}", no_socket.stderr);
    let no_tty = env.rt(&["exec", "--detach", "--console-socket", s(&sock), &id, "true"]);
    no_tty.assert_fails();
    assert!(no_tty.stderr.contains("cannot use console socket"), "{}", no_tty.stderr);
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}

/// A read-only /dev still gets its /dev/console: it is made read-only only
/// after the console is set up (runc's order).
#[test]
fn read_only_dev_gets_the_console_first() {
    let args = [
        "sh",
        "-c",
        "grep '^tmpfs /dev ' /proc/mounts; stat -L -c CONSOLE%t:%T /dev/console; sleep 100",
    ];
    let Some(mut env) = terminal_env(&args) else { return };
    for m in env.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let (listener, sock) = listen(&env);
    let id = env.id.clone();
    env.run(&id, &["-d", "--console-socket", s(&sock)]).assert_ok();
    let (_, master) = receive_master(&listener);
    let out = read_until(&master, |t| t.contains("CONSOLE") && t.ends_with('\n'));
    assert!(out.contains("tmpfs /dev tmpfs ro,"), "/dev is read-only: {out:?}");
    assert!(out.contains("CONSOLE88:0"), "/dev/console: {out:?}");
    env.rt(&["delete", "--force", &id]).assert_ok();
    env.assert_clean(&id);
}
