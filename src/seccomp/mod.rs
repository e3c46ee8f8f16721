//! seccomp: turns `linux.seccomp` into one classic-BPF program and loads it
//! in the container's init (see `container::init` for when).
//!
//! Compilation (`bpf.rs`). seccompiler builds a filter with one match
//! action for one architecture, and no SCMP_ACT_NOTIFY
//! (SECCOMP_RET_USER_NOTIF); its per-syscall layout also takes about four
//! instructions per syscall, too many for Docker's profile on three ABIs
//! (over the kernel's 4096). So xrun uses seccompiler only for the argument
//! comparisons (`SeccompRule` → BPF) and emits the rest itself: the
//! architecture dispatch, then per ABI one group per action in the kernel's
//! precedence order (the most restrictive first, so a syscall listed under
//! two actions gets the stricter), each group a run of `jeq nr` sharing one
//! `ret`, plus the argument-checked syscalls; the last group falls through
//! to `defaultAction`. Docker's default profile is about 1,100 instructions.
//!
//! Architectures, as libseccomp builds them for runc on an x86_64 host:
//! - native x86_64 is always filtered; `SCMP_ARCH_X86` (i386, also reached
//!   by `int 0x80` from a 64-bit process) and `SCMP_ARCH_X32` are filtered
//!   when listed, each with its own syscall table (`syscalls_*.rs`);
//!   other architectures cannot run here and are ignored;
//! - x32 shares AUDIT_ARCH_X86_64 and is told apart by bit 30 of the syscall
//!   number: the x86_64 section sends numbers >= 0x40000000 to the x32
//!   section when x32 is listed, else to the bad-architecture action;
//! - a call from an ABI not listed gets libseccomp's default bad-architecture
//!   action, SCMP_ACT_KILL (SECCOMP_RET_KILL_THREAD), which runc keeps: the
//!   calling thread dies by SIGSYS (the process, if it was its only thread);
//! - arguments are compared as 64-bit values (two 32-bit halves) on x86_64
//!   and x32, and on their low 32 bits only on i386 (libseccomp truncates
//!   the operands of 32-bit architectures the same way);
//! - i386 socket calls are matched by their direct numbers and `socketcall`
//!   by its own name (libseccomp also rewrites one into the other; not done).
//!
//! Rules follow runc: a rule with the default's action is dropped; several
//! args in one rule are ANDed, except when two of them test the same
//! argument, in which case each is a rule of its own (ORed), as runc does;
//! names no table knows are skipped with a debug line. SCMP_ACT_NOTIFY needs
//! `listenerPath`, may not be the default action nor apply to `write` or
//! `sendmsg` (the init needs those to hand the listener fd over); a profile
//! with NOTIFY is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER and the fd
//! goes to the agent (`notify.rs`). Flags: TSYNC is accepted and not passed
//! (the init has one thread; the kernel refuses it next to NEW_LISTENER),
//! no `flags` at all means SPEC_ALLOW when the kernel has it (runc's
//! default), WAIT_KILLABLE_RECV is passed only with a listener (the kernel refuses it
//! without one); a flag the kernel refuses fails the load, as in runc.

mod bpf;
pub mod notify;
mod syscalls_x32;
mod syscalls_x86;
mod syscalls_x86_64;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use seccompiler::sock_filter;

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

const FLAG_TSYNC: u32 = 1 << 0;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// A compiled filter, ready for `load`.
pub struct Filter {
    pub program: Vec<sock_filter>,
    /// seccomp(2) flags, SECCOMP_FILTER_FLAG_NEW_LISTENER included when the
    /// profile uses SCMP_ACT_NOTIFY.
    pub flags: u32,
}

impl Filter {
    /// Whether loading yields a listener fd for the seccomp agent.
    pub fn has_listener(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }
}

/// The syscall number of `name` on x86_64, if this table knows it.
#[cfg(test)]
pub fn syscall_number(name: &str) -> Option<i64> {
    bpf::X86_64.number(name)
}

/// One comparison of a syscall argument, as the profile gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: LinuxSeccompOperator,
    pub value: u64,
    pub value_two: u64,
}

/// A profile entry: the return value for `names` when any of `alternatives`
/// (each a list of ANDed conditions) holds; no alternatives = always.
pub struct Rule<'a> {
    pub ret: u32,
    pub names: &'a [String],
    pub alternatives: Vec<Vec<Cond>>,
}

fn errno_data(errno_ret: Option<u32>) -> Result<u32> {
    let e = errno_ret.unwrap_or(libc::EPERM as u32);
    if e > 0xffff {
        bail!("seccomp errnoRet {e} does not fit the 16-bit data of a seccomp return value");
    }
    Ok(e)
}

/// The seccomp return value of an action.
fn ret_value(a: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<u32> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | errno_data(errno_ret)?,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | errno_data(errno_ret)?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
    })
}

fn cond(arg: &LinuxSeccompArg) -> Result<Cond> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| anyhow!("seccomp arg index {} out of range (0-5)", arg.index()))?;
    Ok(Cond {
        index,
        op: arg.op(),
        value: arg.value(),
        value_two: arg.value_two().unwrap_or(0),
    })
}

/// runc's grouping: one ANDed rule, unless two conditions test the same
/// argument; then every condition is a rule of its own.
fn alternatives(args: &[LinuxSeccompArg]) -> Result<Vec<Vec<Cond>>> {
    let conds = args.iter().map(cond).collect::<Result<Vec<_>>>()?;
    let mut seen = [false; 6];
    let repeated = conds
        .iter()
        .any(|c| std::mem::replace(&mut seen[c.index as usize], true));
    Ok(match (conds.is_empty(), repeated) {
        (true, _) => Vec::new(),
        (false, true) => conds.into_iter().map(|c| vec![c]).collect(),
        (false, false) => vec![conds],
    })
}

/// Which compat ABIs the profile lists (native x86_64 is always filtered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arches {
    pub x86: bool,
    pub x32: bool,
}

fn arches(s: &LinuxSeccomp) -> Arches {
    let listed = s.architectures().as_deref().unwrap_or(&[]);
    Arches {
        x86: listed.contains(&Arch::ScmpArchX86),
        x32: listed.contains(&Arch::ScmpArchX32),
    }
}

/// Syscalls the init itself makes to hand the listener fd to the parent;
/// notifying them would deadlock before the agent has the fd.
const NEVER_NOTIFIED: &[&str] = &["write", "sendmsg"];

pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default = ret_value(s.default_action(), s.default_errno_ret())?;
    if default == RET_USER_NOTIF {
        bail!("seccomp: SCMP_ACT_NOTIFY cannot be the default action");
    }
    let mut rules = Vec::new();
    let mut notify = false;
    for entry in s.syscalls().as_deref().unwrap_or(&[]) {
        let ret = ret_value(entry.action(), entry.errno_ret())?;
        let alternatives = alternatives(entry.args().as_deref().unwrap_or(&[]))?;
        if ret == default {
            continue; // the default does this already
        }
        if ret == RET_USER_NOTIF {
            if let Some(n) = entry.names().iter().find(|n| NEVER_NOTIFIED.contains(&n.as_str())) {
                bail!("seccomp: SCMP_ACT_NOTIFY cannot be used for the {n} syscall");
            }
            notify = true;
        }
        rules.push(Rule {
            ret,
            names: entry.names(),
            alternatives,
        });
    }
    if notify && s.listener_path().as_deref().map_or(true, |p| p.as_os_str().is_empty()) {
        bail!("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the seccomp agent's socket)");
    }
    let program = bpf::program(&rules, default, arches(s))?;
    let flags = flags(s, notify);
    // runc's words: its seccomp.bats reads this line.
    crate::debug!("seccomp filter flags: {flags}");
    Ok(Filter { program, flags })
}

fn flags(s: &LinuxSeccomp, listener: bool) -> u32 {
    let mut flags = if listener { FLAG_NEW_LISTENER } else { 0 };
    // No `flags` at all (not even an empty list): SPEC_ALLOW when the kernel
    // has it, as runc does.
    if s.flags().is_none() && crate::sys::seccomp_flags_known(FLAG_SPEC_ALLOW) {
        flags |= FLAG_SPEC_ALLOW;
    }
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if listener => FLAG_WAIT_KILLABLE_RECV,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                crate::debug!("seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without a listener, not passed");
                0
            }
        };
    }
    flags
}

/// The filter the config asks for, compiled in the parent before clone.
pub fn from_spec(spec: &Spec) -> Result<Option<Filter>> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    compile(s).map(Some)
}

/// Loads the filter into the calling process (child side); returns the
/// listener fd when the filter has one.
pub fn load(f: &Filter) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    crate::sys::seccomp_set_filter(f.flags, &f.program)
}

// What `xrun features` lists: exactly what `compile` accepts (checked by a
// unit test).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const ARCHES: &[&str] = &["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"];
/// The flags runc 1.4 lists, in its order: tools (runc's own tests among
/// them) stop at a flag they do not know. `compile` also accepts
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which is left unlisted.
pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
];

/// The seccomp(2) flag bits that ask the kernel for flag `name` (for
/// probing which it supports); WAIT_KILLABLE_RECV is only valid together
/// with NEW_LISTENER.
pub fn flag_probe_bits(name: &str) -> Option<u32> {
    Some(match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
        "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => FLAG_WAIT_KILLABLE_RECV | FLAG_NEW_LISTENER,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
