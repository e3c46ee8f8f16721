//! CVE-2019-5736 from the attacker's side: a process inside the container
//! tries to get write access to the runtime's binary through /proc/PID/exe,
//! with `checker exe-write` (tests/checker/checker.c): open it O_WRONLY, or
//! open it O_PATH or O_RDONLY and re-open /proc/self/fd/N O_WRONLY, while
//! the runtime's image runs and again once it has exec'd or exited (the
//! 2019 exploit's shape). An open that works is followed by a write of the
//! ELF magic's first byte over itself.
//!
//! The runtime run here is a private copy of the binary under test, so a
//! failed protection can only damage that copy; each test checks the copy
//! is unchanged. Each attack path has a control in the same run: the same
//! attacker against a binary on a writable bind mount must get its write.

use crate::common::*;
use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::ffi::CString;
use std::fs;
use std::hash::Hasher;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Errnos that count as a refused write while the target image runs: a
/// read-only mount (EROFS), a non-dumpable process or a file without write
/// permission (EACCES), a sealed memfd (EPERM), an executing file (ETXTBSY).
const REFUSED_LIVE: &[&str] = &["EROFS", "EACCES", "EPERM", "ETXTBSY"];
/// Once no process runs the runtime's binary, ETXTBSY cannot come any more:
/// what is left must be a lasting protection (the exploit waited ETXTBSY out).
const REFUSED_AFTER: &[&str] = &["EROFS", "EACCES", "EPERM"];

/// Executables of the test rootfs and of the writable control mount; any
/// other image the attacker sees is the runtime's own.
const ROOTFS_EXES: &[&str] = &["/bin/busybox", "/bin/checker", "/attack/checker"];
const CONTROL_EXE: &str = "/attack/checker";

/// Length, content hash and mtime of a file: a successful write of even
/// an unchanged byte moves the mtime.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    len: usize,
    hash: u64,
    modified: SystemTime,
}

fn fingerprint(path: &Path) -> Fingerprint {
    let bytes = fs::read(path).unwrap();
    let mut h = DefaultHasher::new();
    h.write(&bytes);
    Fingerprint {
        len: bytes.len(),
        hash: h.finish(),
        modified: fs::metadata(path).unwrap().modified().unwrap(),
    }
}

/// One write attempt as `checker exe-write` reports it.
#[derive(Debug, Clone)]
struct Attempt {
    pid: i64,
    /// readlink of the target's /proc/PID/exe ("" when refused).
    link: String,
    link_errno: String,
    how: String,
    when: String,
    stage: String,
    errno_name: String,
}

impl Attempt {
    fn from_json(v: &Value) -> Attempt {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Attempt {
            pid: v["pid"].as_i64().unwrap(),
            link: s("link"),
            link_errno: s("link_errno"),
            how: s("how"),
            when: s("when"),
            stage: s("stage"),
            errno_name: s("errno_name"),
        }
    }

    /// The target ran the runtime's binary: not a rootfs executable (a
    /// process whose exe can't even be read is a non-dumpable runtime one).
    fn on_runtime(&self) -> bool {
        !ROOTFS_EXES.contains(&self.link.as_str())
    }

    /// The target exited between being listed and being opened.
    fn target_gone(&self) -> bool {
        self.stage == "open" && ["ENOENT", "ESRCH"].contains(&self.errno_name.as_str())
    }

    fn wrote(&self) -> bool {
        self.errno_name == "ok"
    }
}

/// An attacker's report: its attempts; its own errors must be none.
#[track_caller]
fn report(text: &str, who: &str) -> Vec<Attempt> {
    let v: Value = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{who}: no exe-write report in {text:?}"));
    let errors = strings(&v["errors"]);
    assert!(errors.is_empty(), "{who}: attacker errors {errors:?}");
    let attempts = v["attempts"].as_array().cloned().unwrap_or_default();
    attempts.iter().map(Attempt::from_json).collect()
}

/// Waits for the report an attacker writes to `out`'s stdout.
#[track_caller]
fn wait_report(out: &CmdOutput, who: &str) -> Vec<Attempt> {
    let ok = poll_until(Duration::from_secs(20), || {
        out.current_stdout().lines().any(|l| l.starts_with('{'))
    });
    assert!(ok, "{who}: no report; stdout {:?}", out.current_stdout());
    report(&out.current_stdout(), who)
}

/// "when how errno ×count" for each kind of attempt (shown with --nocapture).
fn summary(attempts: &[Attempt]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for a in attempts {
        *counts.entry((&a.when, &a.how, &a.errno_name)).or_insert(0) += 1;
    }
    let kinds: Vec<String> = counts
        .iter()
        .map(|((when, how, errno), n)| format!("{when} {how} {errno} x{n}"))
        .collect();
    kinds.join(", ")
}

/// Every attempt on a runtime image was refused, with an accepted errno,
/// and at least `min_targets` runtime images were attacked. Returns them.
#[track_caller]
fn assert_runtime_refused(attempts: &[Attempt], who: &str, min_targets: usize) -> Vec<Attempt> {
    let on_runtime: Vec<Attempt> = attempts
        .iter()
        .filter(|a| a.on_runtime() && !a.target_gone())
        .cloned()
        .collect();
    for a in &on_runtime {
        let accepted = if a.when == "live" { REFUSED_LIVE } else { REFUSED_AFTER };
        assert!(
            accepted.contains(&a.errno_name.as_str()),
            "{who}: write to the runtime's binary not refused as expected ({accepted:?}): {a:?}"
        );
    }
    eprintln!("{who}: {}", summary(&on_runtime));
    let mut pids: Vec<i64> = on_runtime.iter().map(|a| a.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(
        pids.len() >= min_targets,
        "{who}: attacked {} runtime image(s), want at least {min_targets}; attempts: {attempts:#?}",
        pids.len()
    );
    on_runtime
}

/// The control: the same attacker got its write through a kept fd once the
/// writable binary no longer ran.
#[track_caller]
fn assert_control_written(attempts: &[Attempt], who: &str) {
    let control: Vec<&Attempt> = attempts.iter().filter(|a| a.link == CONTROL_EXE).collect();
    assert!(
        control.iter().any(|a| a.when != "live" && a.wrote()),
        "{who}: the control attack on a writable binary failed, so a refusal proves nothing: {control:#?}"
    );
}

/// /attack in the container: a writable bind mount of a host directory
/// holding a copy of the checker (the control's writable binary), and the
/// files the test drops there to pace the attackers.
fn attack_dir(t: &mut TestEnv) -> PathBuf {
    let dir = t.host_dir("attack");
    fs::copy(t.rootfs.join("bin/checker"), dir.join("checker")).unwrap();
    let mounts = t.config["mounts"].as_array_mut().unwrap();
    mounts.push(bind_mount(&dir, "/attack", &["rw"]));
    dir
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// Copies the shared libraries `bin` needs, as ldd lists them, into the
/// rootfs at the same paths: an image that ships glibc lets a dynamically
/// linked runtime run inside the container. A static binary needs none.
fn install_libraries(rootfs: &Path, bin: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("running ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    for lib in text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
    {
        let dest = rootfs.join(lib.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(lib, &dest).unwrap();
    }
}

/// How many readable runtime images a scanner has attacked so far (its
/// "attacked PID ok LINK" lines): the runtime's binary run as a container's
/// own process, not one of the runtime's non-dumpable helpers.
fn runtime_images_attacked(scanner: &CmdOutput) -> usize {
    let stdout = scanner.current_stdout();
    let is_image = |line: &&str| {
        let mut words = line.splitn(4, ' ');
        words.next() == Some("attacked")
            && words.nth(1) == Some("ok")
            && words.next().is_some_and(|link| !ROOTFS_EXES.contains(&link))
    };
    stdout.lines().filter(is_image).count()
}

/// Waits until the scanner has attacked image number `before + 1`, which
/// opens its `--log` FIFO, then opens the FIFO's read end, which lets that
/// open(2) return; the image goes on while the returned reader is open.
#[track_caller]
fn release_after_attack(scanner: &CmdOutput, before: usize, fifo: &Path, what: &str) -> fs::File {
    let attacked = poll_until(Duration::from_secs(10), || runtime_images_attacked(scanner) > before);
    assert!(
        attacked,
        "{what}: the runtime's binary never ran as the container's process; scanner: {}",
        scanner.current_stdout()
    );
    let mut reader = fs::OpenOptions::new();
    reader.read(true).custom_flags(libc::O_NONBLOCK);
    reader.open(fifo).unwrap()
}

fn pid_of(t: &TestEnv, id: &str) -> i64 {
    t.state(id).unwrap()["pid"].as_i64().unwrap()
}

fn touch(path: &Path) {
    fs::write(path, "").unwrap();
}

// The primitive works: a process whose binary sits on a writable mount
// keeps /proc/self/exe open O_PATH, execs another binary, and re-opens it
// for writing. This is what every test below must fail to do to the runtime.
#[test]
fn writable_exe_can_be_reopened_for_writing_after_exec() {
    let Some(mut t) = TestEnv::new() else { return };
    let attack = attack_dir(&mut t);
    let before = fs::read(attack.join("checker")).unwrap();
    t.args(&[CONTROL_EXE, "exe-write", "self", "/bin/checker"]);
    let out = t.run(&t.id, &[]);
    out.assert_ok();
    let attempts = report(&out.stdout, "control");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let a = &attempts[0];
    assert_eq!(
        (a.link.as_str(), a.how.as_str(), a.when.as_str()),
        (CONTROL_EXE, "path-reopen", "after-exec")
    );
    assert!(a.wrote(), "re-opening a writable exe after exec failed: {a:?}");
    assert_eq!(
        fs::read(attack.join("checker")).unwrap(),
        before,
        "the probe write changed bytes"
    );
    t.assert_clean(&t.id);
}

// create: the init waits in the runtime's image. Processes exec'd into the
// created container attack /proc/1/exe, without and with CAP_SYS_PTRACE
// (which gets past a non-dumpable init to the binary's own protection),
// keep their fds across `start` and retry once the init has exec'd; a
// third attacker scans for the exec helpers of further execs.
#[test]
fn created_init_binary_is_not_writable_from_exec_processes() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let bin = t.use_runtime_copy();
    let print = fingerprint(&bin);
    let attack = attack_dir(&mut t);
    t.args(&["checker", "--sleep", "60"]);
    t.create(&id, &[]).assert_ok();

    let exec_d = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["exec", "-d"];
        args.extend_from_slice(extra);
        args.push(&id);
        args.extend_from_slice(cmd);
        let out = t.rt(&args);
        out.assert_ok();
        out
    };
    let scan = exec_d(
        &["--cap", "CAP_SYS_PTRACE"],
        &["checker", "exe-write", "scan", "--until", "/attack/stop"],
    );
    let pid_attack = ["checker", "exe-write", "pid", "1", "--until", "/attack/go"];
    let plain = exec_d(&[], &pid_attack);
    let ptrace = exec_d(&["--cap", "CAP_SYS_PTRACE"], &pid_attack);
    for out in [&plain, &ptrace] {
        let ready = poll_until(Duration::from_secs(10), || out.current_stdout().starts_with("ready"));
        assert!(ready, "attacker not ready: {:?}", out.current_stdout());
    }
    for _ in 0..3 {
        t.rt(&["exec", &id, "true"]).assert_ok();
    }
    t.rt(&["start", &id]).assert_ok();
    t.wait_status(&id, "running");
    // The init has exec'd the checker and no runtime process is left.
    touch(&attack.join("go"));
    touch(&attack.join("stop"));

    let plain = wait_report(&plain, "pid 1 attacker");
    let ptrace = wait_report(&ptrace, "pid 1 attacker with CAP_SYS_PTRACE");
    let scan = wait_report(&scan, "exec helper scanner");
    assert_runtime_refused(&plain, "pid 1 attacker", 1);
    let held = assert_runtime_refused(&ptrace, "pid 1 attacker with CAP_SYS_PTRACE", 1);
    assert!(
        held.iter().filter(|a| a.when == "after-exec").count() >= 2,
        "with CAP_SYS_PTRACE the init's exe opens, so the kept fds must have been retried: {held:#?}"
    );
    // The init (pid 1) and the helpers of the execs after the scanner.
    assert_runtime_refused(&scan, "exec helper scanner", 2);
    assert_eq!(fingerprint(&bin), print, "the runtime binary changed");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// exec into a running container: while `exec` sets up, its helper runs the
// runtime's image inside the container. Two attackers (pid 1 without,
// an exec'd one with CAP_SYS_PTRACE) scan /proc during repeated execs,
// keep what they could open and retry once every exec is over. The
// control is an exec of the writable /attack/checker.
#[test]
fn exec_helpers_binary_is_not_writable_from_the_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    let bin = t.use_runtime_copy();
    let print = fingerprint(&bin);
    let attack = attack_dir(&mut t);
    t.args(&["checker", "exe-write", "scan", "--until", "/attack/stop"]);
    let created = t.create(&id, &[]);
    created.assert_ok();
    t.rt(&["start", &id]).assert_ok();
    let scan_args = ["checker", "exe-write", "scan", "--until", "/attack/stop"];
    let mut args = vec!["exec", "-d", "--cap", "CAP_SYS_PTRACE", &id];
    args.extend_from_slice(&scan_args);
    let ptrace = t.rt(&args);
    ptrace.assert_ok();
    for _ in 0..5 {
        t.rt(&["exec", &id, "true"]).assert_ok();
    }
    t.rt(&["exec", &id, CONTROL_EXE, "--sleep", "0.3"]).assert_ok();
    touch(&attack.join("stop"));

    let attackers = [
        (&created, "pid 1 scanner", false),
        (&ptrace, "scanner with CAP_SYS_PTRACE", true),
    ];
    for (out, who, opens_helpers) in attackers {
        let attempts = wait_report(out, who);
        let on_runtime = assert_runtime_refused(&attempts, who, 1);
        assert_control_written(&attempts, who);
        if opens_helpers {
            assert!(
                on_runtime.iter().any(|a| a.when == "final"),
                "{who}: no exec helper's exe was kept to retry: {on_runtime:#?}"
            );
        }
    }
    assert_eq!(fingerprint(&bin), print, "the runtime binary changed");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

// start and run with the 2019 exploit's entrypoint: the init execs
// /proc/self/exe, directly or as a `#!/proc/self/exe` script's interpreter,
// so the runtime's own binary runs as the container's process (the rootfs
// gets the runtime's shared libraries, as a glibc image would have them).
// The attacker is pid 1 of a container whose pid namespace these containers
// join, so it outlives them: it opens their exe, retries once they exited.
// Each runtime image is held up on a FIFO (`--log`) until it was attacked:
// no race decides whether the attack happens.
#[test]
fn proc_self_exe_entrypoint_cannot_write_the_runtime_binary() {
    let Some(mut t) = TestEnv::new() else { return };
    let bin = t.use_runtime_copy();
    let print = fingerprint(&bin);
    install_libraries(&t.rootfs, &bin);
    let attack = attack_dir(&mut t);
    let fifo = attack.join("fifo");
    mkfifo(&fifo);
    let script = attack.join("evil");
    fs::write(&script, "#!/proc/self/exe --log=/attack/fifo\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

    let scanner = t.id.clone();
    t.args(&["checker", "exe-write", "scan", "--until", "/attack/stop"]);
    let scan = t.create(&scanner, &[]);
    scan.assert_ok();
    t.rt(&["start", &scanner]).assert_ok();
    let ns = format!("/proc/{}/ns/pid", pid_of(&t, &scanner));
    set_namespace(&mut t.config, "pid", Some(&ns));
    let bundle = s(&t.bundle).to_string();

    t.args(&["/proc/self/exe", "--log", "/attack/fifo", "state", "none"]);
    t.write_config();
    let run_id = t.new_id("exe-write-run");
    let run = t.spawn(&["run", "--bundle", &bundle, &run_id]);
    let reader = release_after_attack(&scan, 0, &fifo, "run");
    run.wait(CMD_TIMEOUT);
    drop(reader);

    let start_id = t.new_id("exe-write-start");
    t.create(&start_id, &[]).assert_ok();
    t.rt(&["start", &start_id]).assert_ok();
    let reader = release_after_attack(&scan, 1, &fifo, "start");
    t.wait_status(&start_id, "stopped");
    drop(reader);
    t.rt(&["delete", &start_id]).assert_ok();

    t.args(&["/attack/evil", "state", "none"]);
    t.write_config();
    let script_id = t.new_id("exe-write-script");
    let run = t.spawn(&["run", "--bundle", &bundle, &script_id]);
    let reader = release_after_attack(&scan, 2, &fifo, "run of a #!/proc/self/exe script");
    run.wait(CMD_TIMEOUT);
    drop(reader);

    t.args(&[CONTROL_EXE, "--sleep", "0.3"]);
    let control_id = t.new_id("exe-write-control");
    t.run(&control_id, &[]).assert_ok();
    touch(&attack.join("stop"));

    let attempts = wait_report(&scan, "pid namespace scanner");
    let on_runtime = assert_runtime_refused(&attempts, "pid namespace scanner", 3);
    // Each of the three images was opened and retried after it exited.
    let mut retried: Vec<i64> = on_runtime
        .iter()
        .filter(|a| a.link_errno == "ok" && a.when == "final")
        .map(|a| a.pid)
        .collect();
    retried.sort_unstable();
    retried.dedup();
    assert_eq!(
        retried.len(),
        3,
        "want the images of run, start and script retried: {on_runtime:#?}"
    );
    assert_control_written(&attempts, "pid namespace scanner");
    assert_eq!(fingerprint(&bin), print, "the runtime binary changed");
    t.rt(&["delete", "--force", &scanner]).assert_ok();
    for id in [&scanner, &run_id, &start_id, &script_id, &control_id] {
        t.assert_clean(id);
    }
}
