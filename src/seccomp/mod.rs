//! seccomp: turns `linux.seccomp` into one BPF program and loads it as the
//! last step before execve (or, without noNewPrivileges, the last step while
//! CAP_SYS_ADMIN is still held).
//!
//! seccompiler compiles a filter with a single match action; OCI profiles
//! mix actions (ALLOW here, ERRNO there, KILL elsewhere). So xrun compiles
//! one seccompiler filter per action, in the kernel's precedence order (the
//! most restrictive action first), and links them: where a filter would fall
//! through to its default, it jumps to the next one; the last falls through
//! to the profile's defaultAction. Beyond seccompiler: syscall names are
//! looked up in xrun's own table, filter flags are passed to seccomp(2), and
//! syscalls from any ABI other than native x86_64 are killed (compat x86/x32
//! filtering is not built yet, so those never pass a filter unchecked).

mod syscalls_x86_64;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const MAX_INSNS: usize = 4096;

/// A compiled filter, ready for `load`.
pub struct Filter {
    pub program: Vec<sock_filter>,
    pub flags: u32,
}

/// The syscall number of `name` on x86_64, if this table knows it.
pub fn syscall_number(name: &str) -> Option<i64> {
    let table = syscalls_x86_64::X86_64;
    table.binary_search_by(|(n, _)| n.cmp(&name)).ok().map(|i| table[i].1)
}

fn action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<SeccompAction> {
    let errno = errno_ret.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => SeccompAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActNotify => bail!("seccomp action SCMP_ACT_NOTIFY is not supported yet"),
    })
}

/// Kernel precedence: a lower value (as i32) wins when filters disagree.
fn precedence(a: &SeccompAction) -> i32 {
    u32::from(a.clone()) as i32
}

fn condition(arg: &oci_spec::runtime::LinuxSeccompArg) -> Result<SeccompCondition> {
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // OCI (as libseccomp): value is the mask, valueTwo the expected result.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(arg.value()), arg.value_two().unwrap_or(0)),
    };
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| anyhow!("seccomp arg index {} out of range", arg.index()))?;
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|e| anyhow!("seccomp condition: {e}"))
}

/// syscall number → rules; an empty rule list means "always matches".
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut groups: Vec<(SeccompAction, Chains)> = Vec::new();
    for entry in s.syscalls().as_deref().unwrap_or(&[]) {
        let act = action(entry.action(), entry.errno_ret())?;
        if act == default {
            continue; // the default does this already
        }
        let rule = match entry.args().as_deref() {
            None | Some([]) => None,
            Some(args) => {
                let conds = args.iter().map(condition).collect::<Result<Vec<_>>>()?;
                Some(SeccompRule::new(conds).map_err(|e| anyhow!("seccomp rule: {e}"))?)
            }
        };
        let chains = match groups.iter_mut().find(|(a, _)| *a == act) {
            Some((_, c)) => c,
            None => {
                groups.push((act, Chains::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        for name in entry.names() {
            let Some(nr) = syscall_number(name) else {
                crate::debug!("seccomp: syscall {name:?} unknown on x86_64, skipped");
                continue;
            };
            let slot = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
            match (&rule, slot.as_mut()) {
                (None, _) => *slot = None,
                (Some(r), Some(rules)) => rules.push(r.clone()),
                (Some(_), None) => {}
            }
        }
    }
    groups.sort_by_key(|(a, _)| precedence(a));
    let program = link(groups, default)?;
    Ok(Filter {
        program,
        flags: flags(s),
    })
}

fn flags(s: &LinuxSeccomp) -> u32 {
    s.flags().as_deref().unwrap_or(&[]).iter().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        }
    })
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A Trace value no group uses, marking "no match here, try the next group".
fn sentinel(groups: &[(SeccompAction, Chains)]) -> SeccompAction {
    (0..=0xffff_u32)
        .rev()
        .map(SeccompAction::Trace)
        .find(|t| groups.iter().all(|(a, _)| a != t))
        .expect("fewer groups than trace values")
}

fn link(groups: Vec<(SeccompAction, Chains)>, default: SeccompAction) -> Result<Vec<sock_filter>> {
    // Native x86_64 only; the x32 ABI shares the arch value, flagged by a bit.
    let mut out = vec![
        stmt(BPF_LD_W_ABS, 4),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, 0),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
    ];
    let next = sentinel(&groups);
    let next_k = u32::from(next.clone());
    for (act, chains) in groups {
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            chains.into_iter().map(|(nr, r)| (nr, r.unwrap_or_default())).collect();
        let filter = SeccompFilter::new(rules, next.clone(), act, TargetArch::x86_64)
            .map_err(|e| anyhow!("seccomp filter: {e}"))?;
        let mut prog: BpfProgram = filter.try_into().map_err(|e| anyhow!("seccomp filter: {e}"))?;
        // Drop seccompiler's own arch check: ours above covers it once.
        prog.drain(..3);
        let len = prog.len();
        for (i, insn) in prog.iter_mut().enumerate() {
            if insn.code == BPF_RET_K && insn.k == next_k {
                *insn = stmt(BPF_JMP_JA, (len - i - 1) as u32);
            }
        }
        out.extend(prog);
    }
    out.push(stmt(BPF_RET_K, u32::from(default)));
    if out.len() > MAX_INSNS {
        bail!(
            "seccomp profile compiles to {} BPF instructions, over the kernel's limit of {MAX_INSNS}",
            out.len()
        );
    }
    Ok(out)
}

/// The filter the config asks for, compiled in the parent before clone.
pub fn from_spec(spec: &Spec) -> Result<Option<Filter>> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    if s.listener_path().is_some() {
        bail!("linux.seccomp.listenerPath (user notification) is not supported yet");
    }
    compile(s).map(Some)
}

/// Loads the filter into the calling process (child side).
pub fn load(f: &Filter) -> std::io::Result<()> {
    crate::sys::seccomp_set_filter(f.flags, &f.program)
}

#[cfg(test)]
mod tests;
