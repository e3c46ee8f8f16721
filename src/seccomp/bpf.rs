//! Assembles the program: the architecture dispatch, then per architecture
//! the syscall checks of each action in precedence order. xrun emits all of
//! it but the argument comparisons, which are seccompiler's `SeccompRule`
//! code (64-bit comparisons on two 32-bit halves, as libseccomp).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::LinuxSeccompOperator;
use seccompiler::{sock_filter, BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::{
    syscalls_x32, syscalls_x86, syscalls_x86_64, Arches, Cond, Rule, RET_ALLOW, RET_ERRNO, RET_KILL_THREAD, RET_LOG,
    RET_TRACE,
};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JGT_K: u16 = 0x25;
const BPF_RET_K: u16 = 0x06;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// libseccomp's default SCMP_FLTATR_ACT_BADARCH, which runc keeps.
pub const RET_BAD_ARCH: u32 = RET_KILL_THREAD;
/// The kernel's BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;

/// One architecture's syscall table.
pub struct Table {
    pub name: &'static str,
    entries: &'static [(&'static str, i64)],
    /// Added to every number (x32's bit 30).
    base: i64,
    /// Arguments compared on 64 bits (else on their low 32).
    wide_args: bool,
}

impl Table {
    pub fn number(&self, name: &str) -> Option<i64> {
        let t = self.entries;
        t.binary_search_by(|(n, _)| n.cmp(&name))
            .ok()
            .map(|i| t[i].1 + self.base)
    }

    #[cfg(test)]
    pub fn entries(&self) -> &'static [(&'static str, i64)] {
        self.entries
    }
}

pub const X86_64: Table = Table {
    name: "x86_64",
    entries: syscalls_x86_64::X86_64,
    base: 0,
    wide_args: true,
};
pub const X86: Table = Table {
    name: "x86",
    entries: syscalls_x86::X86,
    base: 0,
    wide_args: false,
};
pub const X32: Table = Table {
    name: "x32",
    entries: syscalls_x32::X32,
    base: X32_SYSCALL_BIT as i64,
    wide_args: true,
};

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(k: u32) -> sock_filter {
    stmt(BPF_RET_K, k)
}

fn ja(over: usize) -> sock_filter {
    stmt(BPF_JMP_JA, over as u32)
}

fn condition(c: &Cond, wide: bool) -> Result<SeccompCondition> {
    // 32-bit architectures compare the low halves only, as libseccomp.
    let narrow = |v: u64| if wide { v } else { v & 0xffff_ffff };
    let len = if wide {
        SeccompCmpArgLen::Qword
    } else {
        SeccompCmpArgLen::Dword
    };
    let (op, value) = match c.op {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, c.value),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, c.value),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, c.value),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, c.value),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, c.value),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, c.value),
        // OCI (as libseccomp): value is the mask, valueTwo the expected result.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(narrow(c.value)), c.value_two),
    };
    SeccompCondition::new(c.index, len, op, narrow(value)).map_err(|e| anyhow!("seccomp condition: {e}"))
}

/// syscall number → alternatives; None means "always matches".
type Chains = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Most `jeq`s sharing one `ret` (a conditional jump reaches 255 ahead).
const CHUNK: usize = 250;

/// One action's checks: each syscall with argument rules as `jeq`, its
/// rules (seccompiler's code, each followed by `ret value`) and a reload of
/// the syscall number; then the unconditional syscalls as runs of `jeq nr`
/// sharing one `ret value`. Falls through when nothing matched. (The few
/// argument-checked calls go first: they run the filter on every call,
/// while since Linux 5.11 a call allowed whatever its arguments is answered
/// from the kernel's per-syscall action cache without running it.)
fn group(chains: Chains, value: u32, out: &mut Vec<sock_filter>) {
    let (always, conditional): (Vec<_>, Vec<_>) = chains.into_iter().partition(|(_, r)| r.is_none());
    for (nr, rules) in conditional {
        let mut block = Vec::new();
        for rule in rules.unwrap_or_default() {
            // A rule falls through on a match and skips one more on a mismatch.
            let prog: BpfProgram = rule.into();
            block.extend(prog);
            block.push(ret(value));
        }
        block.push(stmt(BPF_LD_W_ABS, OFFSET_NR));
        out.push(jump(BPF_JEQ_K, nr as u32, 1, 0));
        out.push(ja(block.len()));
        out.extend(block);
    }
    for chunk in always.chunks(CHUNK) {
        for (i, (nr, _)) in chunk.iter().enumerate() {
            out.push(jump(BPF_JEQ_K, *nr as u32, (chunk.len() - i) as u8, 0));
        }
        out.push(ja(1));
        out.push(ret(value));
    }
}

/// Whether syscalls newer than any the profile names get -ENOSYS rather than
/// the default action (runc's rule): glibc and others fall back from a
/// syscall the kernel "lacks", never from the EPERM of a restrictive
/// default. Not for a permissive default (allow, log, trace: a tracer copes
/// with new calls itself), nor when the default already is ENOSYS.
fn wants_enosys(default: u32) -> bool {
    let action = default & 0xffff_0000;
    ![RET_ALLOW, RET_LOG, RET_TRACE].contains(&action) && default != RET_ERRNO | libc::ENOSYS as u32
}

/// One architecture's section: loads the syscall number, answers -ENOSYS
/// above the highest number the profile names (see `wants_enosys`), then
/// the action groups, most restrictive first, then `ret default`.
fn section(rules: &[Rule], default: u32, table: &Table) -> Result<Vec<sock_filter>> {
    // Keyed by (kernel precedence, return value): lower i32 wins.
    let mut groups: BTreeMap<(i32, u32), Chains> = BTreeMap::new();
    for rule in rules {
        let alternatives = rule
            .alternatives
            .iter()
            .map(|conds| {
                let conds = conds
                    .iter()
                    .map(|c| condition(c, table.wide_args))
                    .collect::<Result<Vec<_>>>()?;
                SeccompRule::new(conds).map_err(|e| anyhow!("seccomp rule: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let chains = groups.entry(((rule.ret & 0xffff_0000) as i32, rule.ret)).or_default();
        for name in rule.names {
            let Some(nr) = table.number(name) else {
                crate::debug!("seccomp: syscall {name:?} unknown on {}, skipped", table.name);
                continue;
            };
            let slot = chains.entry(nr).or_insert_with(|| Some(Vec::new()));
            match slot {
                Some(_) if alternatives.is_empty() => *slot = None,
                Some(list) => list.extend(alternatives.iter().cloned()),
                None => {}
            }
        }
    }
    let mut out = vec![stmt(BPF_LD_W_ABS, OFFSET_NR)];
    let highest = groups.values().flat_map(|chains| chains.keys()).max();
    if let Some(&highest) = highest.filter(|_| wants_enosys(default)) {
        out.push(jump(BPF_JGT_K, highest as u32, 0, 1));
        out.push(ret(RET_ERRNO | libc::ENOSYS as u32));
    }
    for ((_, value), chains) in groups {
        group(chains, value, &mut out);
    }
    out.push(ret(default));
    Ok(out)
}

/// The whole program for `rules` on x86_64 and the listed compat ABIs.
pub fn program(rules: &[Rule], default: u32, arches: Arches) -> Result<Vec<sock_filter>> {
    let native = section(rules, default, &X86_64)?;
    let x32 = if arches.x32 {
        section(rules, default, &X32)?
    } else {
        Vec::new()
    };
    let x86 = if arches.x86 {
        section(rules, default, &X86)?
    } else {
        Vec::new()
    };

    // Dispatch on the architecture; anything unlisted gets the bad-arch action.
    let head_len = if arches.x86 { 6 } else { 4 };
    let mut out = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 1),
        ja(head_len - 3),
    ];
    // x86_64's section: `native` with 2 instructions splitting off x32
    // after its first (the load of the syscall number).
    let x86_64_len = 2 + native.len();
    if arches.x86 {
        out.push(jump(BPF_JEQ_K, AUDIT_ARCH_I386, 0, 1));
        out.push(ja(head_len - 5 + x86_64_len + x32.len()));
    }
    out.push(ret(RET_BAD_ARCH));

    out.push(stmt(BPF_LD_W_ABS, OFFSET_NR));
    out.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
    out.push(if arches.x32 {
        ja(native.len() - 1)
    } else {
        ret(RET_BAD_ARCH)
    });
    out.extend(native.into_iter().skip(1));
    out.extend(x32);
    out.extend(x86);
    if out.len() > MAX_INSNS {
        bail!(
            "seccomp profile compiles to {} BPF instructions, over the kernel's limit of {MAX_INSNS}",
            out.len()
        );
    }
    Ok(out)
}
