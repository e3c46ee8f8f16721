//! Shared test machinery: the runtime under test, bundles with a busybox
//! rootfs and the checker, command execution with timeouts, cleanup guards
//! and the "nothing left behind" assertion.

use serde_json::{json, Value};
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest any single runtime invocation may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Busybox applets linked into every rootfs's /bin.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "mount", "hostname", "env", "printf", "test", "grep",
    "touch", "mkdir", "readlink", "stat", "kill", "wc",
];

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// runc's default capability set.
pub const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

// ---------------------------------------------------------------------------
// Runtime selection and skipping

/// The runtime binary under test: `$XRUN_BIN`, or the xrun built by cargo.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("XRUN_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_xrun")),
    }
}

pub fn runtime_is_runc() -> bool {
    runtime_bin().file_name() == Some(OsStr::new("runc"))
}

/// Guard for tests of xrun behaviour that runc 1.1.x does not have.
/// Returns true (and reports the skip) when the test must not run.
pub fn xrun_only() -> bool {
    if runtime_is_runc() {
        skip("xrun-only behaviour, not implemented by runc 1.1.x");
        return true;
    }
    false
}

/// Reports a skipped test on the real stderr, bypassing libtest's capture so
/// a skip never looks like a silent pass.
pub fn skip(reason: &str) {
    let msg = format!("SKIPPED {}: {}\n", current_test_name(), reason);
    // SAFETY: writing a valid buffer to fd 2.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

fn current_test_name() -> String {
    std::thread::current().name().unwrap_or("unnamed").to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------
// One-time setup: busybox-static and the checker binary

fn busybox() -> &'static Path {
    static BUSYBOX: OnceLock<PathBuf> = OnceLock::new();
    BUSYBOX.get_or_init(|| {
        let path = PathBuf::from("/bin/busybox");
        if !is_static_elf(&path) {
            // A fresh machine may need the package lists first.
            if !apt_get(&["install", "-y", "-q", "busybox-static"]) {
                apt_get(&["update", "-q"]);
                apt_get(&["install", "-y", "-q", "busybox-static"]);
            }
            assert!(is_static_elf(&path), "/bin/busybox (busybox-static) is not installed");
        }
        path
    })
}

fn apt_get(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True if `path` is an ELF64 file without a PT_INTERP program header.
fn is_static_elf(path: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let Ok(data) = fs::read(path) else {
        return false;
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let off = phoff + i * phentsize;
        data.get(off..off + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) != PT_INTERP)
    })
}

fn checker() -> &'static Path {
    static CHECKER: OnceLock<PathBuf> = OnceLock::new();
    CHECKER.get_or_init(|| build_static_c("checker"))
}

/// Compiles `tests/checker/NAME.c` into a static binary under cargo's test
/// tmpdir and returns its path. Built under a private name, then renamed:
/// concurrent test runs never see a half-written binary. A binary newer than
/// its source is reused, so a run of one test at a time (the VM stage)
/// compiles each program once.
pub fn build_static_c(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/checker/{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checker");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (mtime(&out), mtime(&src)) {
        if built > source {
            return out;
        }
    }
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let result = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("running gcc");
    assert!(
        result.status.success(),
        "compiling {name} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    fs::rename(&tmp, &out).unwrap();
    out
}

// ---------------------------------------------------------------------------
// Command results

/// The message of one logrus text line at level error
/// (`time="..." level=error msg="..."`): bare, or Go-quoted.
pub fn logrus_error_msg(line: &str) -> Option<String> {
    let rest = line.strip_prefix("time=\"")?;
    let (_, rest) = rest.split_once("\" level=error msg=")?;
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(rest.to_string());
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                e @ ('x' | 'u' | 'U') => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.by_ref().take(n).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Outcome of one runtime invocation. Stdout/stderr go to files so that a
/// container that inherits them (create, run --detach) cannot block us.
#[derive(Debug)]
pub struct CmdOutput {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub elapsed: Duration,
}

impl CmdOutput {
    /// Exit code; a runtime killed by a signal is always a test failure.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("{:?} died from a signal: {:?}", self.args, self.status))
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.success(),
            "{:?} failed with {:?}\nstdout: {}\nstderr: {}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_fails(&self) -> &Self {
        assert!(
            !self.success(),
            "{:?} unexpectedly succeeded\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        let _ = self.code();
        self
    }

    /// The `msg` of each logrus `level=error` line on stderr (runc's and
    /// xrun's error form), unquoted; one per line.
    pub fn error_msgs(&self) -> Vec<String> {
        self.stderr.lines().filter_map(logrus_error_msg).collect()
    }

    /// Stdout as written so far: a created container keeps writing to it.
    pub fn current_stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// The checker's report printed on this command's stdout.
    #[track_caller]
    pub fn checker(&self) -> Checker {
        Checker::parse(&self.stdout)
            .unwrap_or_else(|| panic!("no checker JSON in output of {:?}: {:#?}", self.args, self))
    }
}

/// A runtime invocation still running in the background.
pub struct BgCmd {
    child: Option<Child>,
    args: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    started: Instant,
}

impl BgCmd {
    #[track_caller]
    /// The runtime process's pid (0 once waited for).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn wait(mut self, timeout: Duration) -> CmdOutput {
        let mut child = self.child.take().unwrap();
        let status = wait_with_timeout(&mut child, timeout)
            .unwrap_or_else(|| panic!("{:?} did not finish within {timeout:?}", self.args));
        CmdOutput {
            args: std::mem::take(&mut self.args),
            status,
            stdout: fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path.clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Waits without panicking (for use in Drop); kills the command on timeout.
    pub fn wait_quietly(mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_with_timeout(self.child.as_mut()?, timeout)
    }
}

impl Drop for BgCmd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child`; on timeout kills it (by PID) and returns None.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for runtime") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(25));
    }
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The checker's report

/// Parsed JSON printed by tests/checker/checker.c inside the container.
#[derive(Debug, Clone)]
pub struct Checker(pub Value);

impl Checker {
    /// Finds the first line of `text` that parses as a JSON object.
    pub fn parse(text: &str) -> Option<Checker> {
        text.lines()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())
            .map(Checker)
    }

    pub fn int(&self, key: &str) -> i64 {
        self.0[key]
            .as_i64()
            .unwrap_or_else(|| panic!("checker field {key} missing"))
    }

    pub fn str(&self, key: &str) -> &str {
        self.0[key].as_str().unwrap_or("")
    }

    pub fn env(&self) -> Vec<String> {
        strings(&self.0["env"])
    }

    pub fn groups(&self) -> Vec<i64> {
        let groups = self.0["groups"].as_array().cloned().unwrap_or_default();
        groups.iter().filter_map(Value::as_i64).collect()
    }

    /// A field of /proc/self/status such as "CapEff" or "NoNewPrivs".
    pub fn status(&self, field: &str) -> &str {
        self.0["status"][field].as_str().unwrap_or("")
    }

    /// A capability set from /proc/self/status as a number.
    pub fn cap_set(&self, field: &str) -> u64 {
        u64::from_str_radix(self.status(field), 16).unwrap_or_else(|_| panic!("bad {field}: {:?}", self.status(field)))
    }

    /// readlink of /proc/self/ns/<name>, e.g. "net:[4026531840]".
    pub fn ns(&self, name: &str) -> &str {
        self.0["namespaces"][name].as_str().unwrap_or("")
    }

    /// [soft, hard] of an rlimit, numbers or "unlimited".
    pub fn rlimit(&self, name: &str) -> (Value, Value) {
        let pair = &self.0["rlimits"][name];
        (pair[0].clone(), pair[1].clone())
    }

    pub fn fds(&self) -> Vec<(i64, String)> {
        let fds = self.0["fds"].as_array().cloned().unwrap_or_default();
        fds.iter()
            .map(|f| (f["fd"].as_i64().unwrap(), f["target"].as_str().unwrap_or("").into()))
            .collect()
    }

    pub fn mounts(&self) -> Vec<Value> {
        self.0["mounts"].as_array().cloned().unwrap_or_default()
    }

    /// The topmost mountinfo entry for `mount_point`.
    #[track_caller]
    pub fn mount_at(&self, mount_point: &str) -> Value {
        self.mounts()
            .into_iter()
            .rev()
            .find(|m| m["mount_point"] == mount_point)
            .unwrap_or_else(|| panic!("no mount at {mount_point} in the container"))
    }

    /// The report for `--path p`.
    #[track_caller]
    pub fn path(&self, p: &str) -> Value {
        let paths = self.0["paths"].as_array().cloned().unwrap_or_default();
        paths
            .into_iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("checker did not report path {p}"))
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    let items = v.as_array().cloned().unwrap_or_default();
    items.iter().filter_map(|s| s.as_str().map(String::from)).collect()
}

/// Comma-separated mount options as a list.
pub fn options(v: &Value) -> Vec<String> {
    v.as_str().unwrap_or("").split(',').map(String::from).collect()
}

// ---------------------------------------------------------------------------
// Capabilities

/// Bit number of a capability name (only the ones tests use).
pub fn cap_bit(name: &str) -> u32 {
    const CAPS: &[(&str, u32)] = &[
        ("CAP_CHOWN", 0),
        ("CAP_DAC_OVERRIDE", 1),
        ("CAP_FOWNER", 3),
        ("CAP_KILL", 5),
        ("CAP_SETGID", 6),
        ("CAP_SETUID", 7),
        ("CAP_SETPCAP", 8),
        ("CAP_NET_BIND_SERVICE", 10),
        ("CAP_NET_RAW", 13),
        ("CAP_SYS_CHROOT", 18),
        ("CAP_SYS_ADMIN", 21),
        ("CAP_MKNOD", 27),
        ("CAP_AUDIT_WRITE", 29),
        ("CAP_SETFCAP", 31),
    ];
    CAPS.iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("unknown capability {name}"))
        .1
}

pub fn cap_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |mask, n| mask | 1 << cap_bit(n))
}

// ---------------------------------------------------------------------------
// Host-side inspection

/// One parsed line of a mountinfo file.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub root: String,
    pub mount_point: String,
    pub source: String,
}

pub fn host_mounts() -> Vec<MountEntry> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(MountEntry {
                root: unescape_mountinfo(fields.get(3)?),
                mount_point: unescape_mountinfo(fields.get(4)?),
                source: unescape_mountinfo(fields.get(dash + 2)?),
            })
        })
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// readlink of /proc/self/ns/<name> on the host (the test process).
pub fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_under(path: &str, dir: &Path) -> bool {
    Path::new(path).starts_with(dir)
}

/// (device, inode) of a directory, following symlinks.
fn dir_identity(p: &Path) -> Option<(u64, u64)> {
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// PIDs of host processes whose root or cwd lies under `dir` or is one of
/// the `anchors` directories. A process in another mount namespace shows
/// "/" as its root link, so container processes are recognised by the
/// identity of the directory the link leads to.
pub fn processes_under(dir: &Path, anchors: &[(u64, u64)]) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let in_test_dir = |link: &str| {
        fs::read_link(link).is_ok_and(|target| target.starts_with(dir))
            || dir_identity(Path::new(link)).is_some_and(|id| anchors.contains(&id))
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| in_test_dir(&format!("/proc/{pid}/root")) || in_test_dir(&format!("/proc/{pid}/cwd")))
        .collect()
}

// ---------------------------------------------------------------------------
// Test environment: temp dir, bundle, state root, cleanup

static OUTPUT_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Everything one test needs. Dropping it force-deletes every container the
/// test registered, kills helper processes, and removes the temp dir.
pub struct TestEnv {
    /// Unique directory holding everything below.
    pub dir: PathBuf,
    /// The runtime's `--root`.
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// config.json to write; tests edit it before creating containers.
    pub config: Value,
    /// Default container id (unique across concurrently running tests).
    pub id: String,
    ids: Vec<String>,
    helpers: Vec<Child>,
    /// Identities of dir, bundle and rootfs, to spot container processes.
    anchors: Vec<(u64, u64)>,
    /// The runtime binary this test runs: runtime_bin(), or a private copy.
    bin: PathBuf,
    /// A short directory under /tmp for unix sockets: a socket path must fit
    /// in sun_path (108 bytes), which `dir` may not in a deep checkout.
    pub sockets: PathBuf,
}

impl TestEnv {
    /// A fresh environment with a default bundle, or None (skipped) when not
    /// running as root.
    pub fn new() -> Option<TestEnv> {
        if !is_root() {
            skip("integration tests need root");
            return None;
        }
        let name = current_test_name().replace("::", "__");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("it")
            .join(format!("{name}-{}", std::process::id()));
        if dir.exists() {
            remove_tree(&dir);
        }
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        let root = dir.join("state");
        fs::create_dir_all(&root).unwrap();
        populate_rootfs(&rootfs);
        let short = name.rsplit("__").next().unwrap().replace('_', "-");
        let anchors = [&dir, &bundle, &rootfs]
            .iter()
            .filter_map(|p| dir_identity(p))
            .collect();
        let sockets = Path::new("/tmp").join(format!(
            "xrun-it.{}.{}",
            std::process::id(),
            OUTPUT_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&sockets).unwrap();
        let mut env = TestEnv {
            sockets,
            id: String::new(),
            dir,
            root,
            bundle,
            rootfs,
            config: default_config(),
            ids: Vec::new(),
            helpers: Vec::new(),
            anchors,
            bin: runtime_bin(),
        };
        env.id = env.new_id(&short);
        Some(env)
    }

    /// Registers (for cleanup) and returns a container id unique to this run.
    pub fn new_id(&mut self, stem: &str) -> String {
        let id = format!("{stem}-{}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    /// Keeps `child` running until the test ends, then kills it by PID.
    pub fn add_helper(&mut self, child: Child) {
        self.helpers.push(child);
    }

    pub fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.bundle.join("config.json"), text).unwrap();
    }

    /// Sets process.args.
    pub fn args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    /// Creates a directory (and parents) inside the rootfs.
    pub fn rootfs_mkdir(&self, rel: &str) -> PathBuf {
        let p = self.rootfs.join(rel.trim_start_matches('/'));
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Creates a directory under the test's temp dir, outside the bundle.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    // -- running the runtime ------------------------------------------------

    /// Runs a copy of the runtime binary (same file name, under the test
    /// dir) from now on, cleanup included, and returns its path: a test that
    /// attacks the binary can then only damage its own copy.
    pub fn use_runtime_copy(&mut self) -> PathBuf {
        let original = runtime_bin();
        let copy = self.host_dir("runtime").join(original.file_name().unwrap());
        fs::copy(&original, &copy).unwrap();
        self.bin = copy.clone();
        copy
    }

    /// `$XRUN_BIN --root <root> <args>`, ready to run from the test dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the runtime with `args` (after `--root`) and waits for it.
    #[track_caller]
    pub fn rt(&self, args: &[&str]) -> CmdOutput {
        self.exec(self.command(args))
    }

    /// Runs a prepared command with captured output and the global timeout.
    #[track_caller]
    pub fn exec(&self, cmd: Command) -> CmdOutput {
        self.spawn_cmd(cmd).wait(CMD_TIMEOUT)
    }

    /// Starts the runtime with `args` without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> BgCmd {
        self.spawn_cmd(self.command(args))
    }

    pub fn spawn_cmd(&self, mut cmd: Command) -> BgCmd {
        let n = OUTPUT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let out_dir = self.dir.join("out");
        fs::create_dir_all(&out_dir).unwrap();
        let stdout_path = out_dir.join(format!("{n}.stdout"));
        let stderr_path = out_dir.join(format!("{n}.stderr"));
        cmd.stdout(fs::File::create(&stdout_path).unwrap());
        cmd.stderr(fs::File::create(&stderr_path).unwrap());
        let args = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let child = cmd.spawn().expect("spawning the runtime");
        BgCmd {
            child: Some(child),
            args,
            stdout_path,
            stderr_path,
            started: Instant::now(),
        }
    }

    // -- common verbs ----------------------------------------------------------

    fn bundle_str(&self) -> String {
        self.bundle.to_string_lossy().into_owned()
    }

    /// Writes config.json and runs `run --bundle <bundle> [extra] <id>`.
    #[track_caller]
    pub fn run(&self, id: &str, extra: &[&str]) -> CmdOutput {
        self.write_config();
        let bundle = self.bundle_str();
        let mut args = vec!["run", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.rt(&args)
    }

    /// Writes config.json and runs `create --bundle <bundle> [extra] <id>`.
    #[track_caller]
    pub fn create(&self, id: &str, extra: &[&str]) -> CmdOutput {
        self.write_config();
        let bundle = self.bundle_str();
        let mut args = vec!["create", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.rt(&args)
    }

    /// Runs the container in the foreground and returns the checker report.
    #[track_caller]
    pub fn run_checker(&self, id: &str) -> Checker {
        let out = self.run(id, &[]);
        out.assert_ok();
        out.checker()
    }

    /// `state <id>` parsed, or None if the runtime reports an error.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.rt(&["state", id]);
        if !out.success() {
            return None;
        }
        Some(
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", out.stdout)),
        )
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)
            .map(|s| s["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// Waits (briefly) until `state` reports `status`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        let ok = poll_until(Duration::from_secs(10), || self.status(id) == status);
        assert!(
            ok,
            "container {id} never reached {status:?} (now {:?})",
            self.status(id)
        );
    }

    /// Waits until the create command's stdout holds the checker's report.
    #[track_caller]
    pub fn wait_checker(&self, out: &CmdOutput) -> Checker {
        let mut report = None;
        poll_until(Duration::from_secs(10), || {
            report = Checker::parse(&out.current_stdout());
            report.is_some()
        });
        report.unwrap_or_else(|| panic!("no checker report in {}", out.current_stdout()))
    }

    /// create + start with a long-sleeping checker; returns the create output.
    #[track_caller]
    pub fn start_sleeper(&mut self, id: &str) -> CmdOutput {
        self.args(&["checker", "--sleep", "60"]);
        let created = self.create(id, &[]);
        created.assert_ok();
        self.rt(&["start", id]).assert_ok();
        self.wait_status(id, "running");
        created
    }

    // -- leak checks -----------------------------------------------------------

    /// Processes whose root or cwd is inside this test's directories.
    pub fn leaked_processes(&self) -> Vec<i32> {
        processes_under(&self.dir, &self.anchors)
    }

    /// Asserts the runtime left nothing behind for `id`: no state entry, no
    /// host mount from the test dir, no process rooted in it.
    #[track_caller]
    pub fn assert_clean(&self, id: &str) {
        let state_dir = self.root.join(id);
        assert!(!state_dir.exists(), "state dir {} left behind", state_dir.display());
        let leaked: Vec<_> = host_mounts()
            .into_iter()
            .filter(|m| {
                [&m.mount_point, &m.root, &m.source]
                    .iter()
                    .any(|p| is_under(p, &self.dir))
            })
            .collect();
        assert!(leaked.is_empty(), "host mounts left behind: {leaked:#?}");
        // An exiting container can take a moment to disappear from /proc.
        let gone = poll_until(Duration::from_secs(3), || self.leaked_processes().is_empty());
        assert!(gone, "processes left behind: {:?}", self.leaked_processes());
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            if self.root.join(&id).exists() {
                self.spawn(&["delete", "--force", &id]).wait_quietly(CMD_TIMEOUT);
            }
        }
        for mut helper in self.helpers.drain(..) {
            let _ = helper.kill();
            let _ = helper.wait();
        }
        // Last resort for a broken runtime: kill what it leaked, by PID.
        for pid in self.leaked_processes() {
            // SAFETY: plain kill(2) of a process rooted in our temp dir.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unmount_under(&self.dir);
        remove_tree(&self.dir);
        remove_tree(&self.sockets);
    }
}

/// Detaches any host mount below `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let mut points: Vec<String> = host_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| is_under(p, dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = CString::new(p.as_bytes()).unwrap();
        // SAFETY: umount2 with a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Removes a tree without ever crossing into another filesystem, so a
/// mount leaked by a buggy runtime cannot make us delete host files.
fn remove_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    remove_tree_on(path, meta.dev());
}

fn remove_tree_on(path: &Path, dev: u64) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let _ = fs::remove_file(path);
        return;
    }
    if meta.dev() != dev {
        eprintln!("not removing {}: another filesystem is mounted there", path.display());
        return;
    }
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            remove_tree_on(&entry.path(), dev);
        }
    }
    let _ = fs::remove_dir(path);
}

fn populate_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    fs::copy(checker(), rootfs.join("bin/checker")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
}

// ---------------------------------------------------------------------------
// config.json pieces

pub fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": destination, "type": typ, "source": source, "options": options})
}

pub fn bind_mount(source: &Path, destination: &str, options: &[&str]) -> Value {
    let mut opts = vec!["rbind"];
    opts.extend_from_slice(options);
    mount(destination, "bind", &source.to_string_lossy(), &opts)
}

/// A runc-like default config running the checker.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["checker"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "xrun-test",
        "mounts": [
            mount("/proc", "proc", "proc", &[]),
            mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", "devpts", "devpts",
                &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Removes the namespace of `typ` from linux.namespaces.
pub fn remove_namespace(config: &mut Value, typ: &str) {
    let list = config["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|ns| ns["type"] != typ);
}

/// Adds (or replaces) a namespace entry, optionally joining `path`.
pub fn set_namespace(config: &mut Value, typ: &str, path: Option<&str>) {
    remove_namespace(config, typ);
    let mut ns = json!({"type": typ});
    if let Some(p) = path {
        ns["path"] = json!(p);
    }
    config["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

/// Reads an octal mode as the checker reports it (st_mode & 07777).
pub fn mode_of(v: &Value) -> u32 {
    v["mode"].as_u64().unwrap_or(u64::MAX) as u32
}

/// Path as &str for building config values.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
