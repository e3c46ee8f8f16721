//! xrun: an OCI container runtime, drop-in compatible with runc.
//! main only parses the command line and dispatches to `cmd::*`.

mod cgroups;
mod check;
mod cli;
mod cmd;
mod config;
mod console;
mod container;
mod hooks;
mod logging;
mod namespaces;
mod output;
mod process;
mod protect;
mod rootfs;
mod rootless;
mod seccomp;
mod state;
mod sync;
mod sys;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, LogFormat};

/// How a verb's failure reads and exits, as runc's: `run` and `create`
/// name the program ("runc run failed: ..."), `exec` fails with 255 so its
/// caller can tell a runtime error from the process's own status.
fn failure_of(command: Option<&Command>) -> (Option<String>, i32) {
    match command {
        Some(Command::Run(_)) => (Some(format!("{} run failed", cli::program_name())), 1),
        Some(Command::Create(_)) => (Some(format!("{} create failed", cli::program_name())), 1),
        Some(Command::Exec(_)) => (Some("exec failed".to_string()), 255),
        _ => (None, 1),
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(0);
    };
    let enters_container = matches!(command, Command::Create(_) | Command::Run(_) | Command::Exec(_));
    if enters_container {
        cgroups::systemd::set_requested(cli.systemd_cgroup);
        rootless::set_flag(&cli.rootless)?;
        protect::ensure_protected_binary()?;
        process::fds::check_passed()?;
        process::fds::hide_inherited();
    }
    let root = &rootless::state_root(cli.root.as_deref())?;
    match command {
        Command::Spec(a) => cmd::spec::run(&a.bundle, a.rootless),
        Command::Create(a) => cmd::create::run(root, &a),
        Command::Start(a) => cmd::start::run(root, &a.id),
        Command::State(a) => cmd::state::run(root, &a.id),
        Command::Kill(a) => cmd::kill::run(root, &a),
        Command::Delete(a) => cmd::delete::run(root, &a.id, a.force),
        Command::Run(a) => cmd::run::run(root, &a),
        Command::Pause(a) => cmd::pause::pause(root, &a.id),
        Command::Resume(a) => cmd::pause::resume(root, &a.id),
        Command::Update(a) => cmd::update::run(root, &a),
        Command::Events(a) => cmd::events::run(root, &a),
        Command::Features => cmd::features::run(),
        Command::Check => cmd::check::run(root),
        Command::Ps(a) => cmd::ps::run(root, &a.id, &a.format, &a.ps_args),
        Command::List(a) => cmd::list::run(root, &a.format, a.quiet),
        Command::Exec(a) => cmd::exec::run(root, &a),
    }
}

/// How many fds after stdio a verb that starts a container process passes
/// on to it (LISTEN_FDS for create/run, then --preserve-fds); None for the
/// other verbs.
fn fds_to_pass(cli: &Cli) -> Option<u32> {
    let listen = || process::fds::socket_activation_fds().unwrap_or(0);
    match cli.command.as_ref()? {
        Command::Create(a) => Some(listen() + a.preserve_fds),
        Command::Run(a) => Some(listen() + a.create.preserve_fds),
        Command::Exec(a) => Some(a.preserve_fds),
        _ => None,
    }
}

/// A command line clap refuses: written to the `--log` file when one is
/// named (that file is all a caller like containerd's shim shows its user),
/// else printed as clap formats it, with usage. Exit 1, as runc.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        let eq = format!("{name}=");
        args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix(&eq) {
            Some(v) => Some(v.to_string()),
            None if a == name => args.get(i + 1).cloned(),
            None => None,
        })
    };
    let logged = flag("--log").is_some_and(|log| {
        let json = flag("--log-format").as_deref() == Some("json");
        logging::init(Some(std::path::Path::new(&log)), json, false).is_ok()
    });
    if logged {
        // One line to the file and to stderr, as every other error.
        logging::log(logging::Level::Error, &first_line(&e));
    } else {
        let _ = e.print();
    }
    std::process::exit(1);
}

/// clap's message without its "error: " prefix and usage lines.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

fn main() {
    protect::reexec_early();
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(e));
    if cli.version {
        let _ = output::print(&format!("{}\n", cli::VERSION_TEXT));
        return;
    }
    // Before the log file or anything else of ours is opened.
    if let Some(passed) = fds_to_pass(&cli) {
        process::fds::survey(passed);
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format == LogFormat::Json, cli.debug) {
        logging::log(logging::Level::Error, &format!("open log file: {e}"));
        std::process::exit(1);
    }
    let (prefix, failed) = failure_of(cli.command.as_ref());
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = match prefix {
                Some(p) => format!("{p}: {e:#}"),
                None => format!("{e:#}"),
            };
            logging::log(logging::Level::Error, &msg);
            failed
        }
    };
    std::process::exit(code);
}
