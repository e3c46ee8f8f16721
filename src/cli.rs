//! The command line, flag for flag as runc spells it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const VERSION_TEXT: &str = concat!(
    "xrun version ",
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("XRUN_COMMIT"),
    "\nspec: ",
    "1.2.1"
);

/// The name this binary was invoked as (argv[0]'s last component): runc's
/// error texts name "runc", ours the name we run under.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "xrun".to_string())
}

#[derive(Parser, Debug)]
#[command(
    name = "xrun",
    about = "xrun: an OCI container runtime, drop-in compatible with runc",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for storage of container state (should be on tmpfs)
    /// [default: /run/xrun, or $XDG_RUNTIME_DIR/xrun when rootless]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,

    /// Set the log file to write xrun logs to (default is stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,

    /// Set the log format
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Enable debug logging, including the start-up timeline
    #[arg(long, global = true)]
    pub debug: bool,

    /// Enable systemd cgroup support: cgroupsPath "slice:prefix:name" becomes a systemd scope unit
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,

    /// Ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(long, num_args = 0..=1, default_value = "auto", default_missing_value = "true")]
    pub rootless: String,

    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new specification file (config.json)
    Spec(SpecArgs),
    /// Create a container
    Create(CreateArgs),
    /// Start a created container: execute its user process
    Start(IdArg),
    /// Output the state of a container
    State(IdArg),
    /// Send a signal to the container's init process
    Kill(KillArgs),
    /// Delete a container and everything it owned
    Delete(DeleteArgs),
    /// Create and start a container, and wait for it
    Run(RunArgs),
    /// Suspend every process of the container (cgroup freezer)
    Pause(IdArg),
    /// Resume a paused container
    Resume(IdArg),
    /// Change the cgroup limits of a running container
    Update(UpdateArgs),
    /// Display container events (OOM kills) and resource usage statistics
    Events(EventsArgs),
    /// Execute a new process inside a container
    Exec(ExecArgs),
    /// Show what this build of xrun implements (runtime-spec features.json)
    Features,
    /// Check what this host gives a container runtime, with a fix for each shortfall
    Check,
    /// Display the processes running inside a container
    Ps(PsArgs),
    /// List the containers under --root
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Select one of: table or json
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// The container id
    pub id: String,
    /// Arguments for ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Select one of: table or json
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Display only container IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug)]
pub struct IdArg {
    /// The container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket that receives the console's master fd
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Path to an AF_UNIX socket that receives a pidfd of the init process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container's init process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root to jail the process inside the rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Path to a linux.resources JSON file, or - for stdin
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix); -1 for unlimited
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation", allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    /// Total memory usage, memory plus swap; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds; -1 for no limit
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds, on top of the quota
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// SCHED_IDLE for the cgroup: 1, or 0 for the default
    #[arg(long = "cpu-idle", allow_negative_numbers = true)]
    pub cpu_idle: Option<i64>,
    /// CPU realtime period in microseconds
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds; -1 for no limit
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of pids; -1 for unlimited
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// The container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Display the container's stats once, then exit
    #[arg(long)]
    pub stats: bool,
    /// Set the stats collection interval
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to all processes in the container
    #[arg(short, long)]
    pub all: bool,
    /// The container id
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; default SIGTERM
    pub signal: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Forcibly delete the container if it is still running (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// The container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to an AF_UNIX socket that receives the console's master fd
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Path to an AF_UNIX socket that receives a pidfd of the process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set environment variables (NAME=value)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to the process.json
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the bounding set for the process
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors (3..3+N) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run the process in an existing sub-cgroup: [<controller>[,...]:]<path>
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// The container id
    pub id: String,
    /// The command to run, and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
