//! devices (v2): cgroup2 has no devices controller; the allow/deny list is an
//! eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the container's
//! cgroup directory, which the kernel runs on every open and mknod of a
//! device node. Its context is `struct bpf_cgroup_dev_ctx { u32 access_type;
//! u32 major; u32 minor; }`, access_type being `access << 16 | type`; it
//! returns 1 to allow, 0 to deny.
//!
//! Semantics are the devices controller's (v1), as the v1 driver writes them:
//! the list starts from "deny all"; a rule of type "a" resets everything
//! before it to deny-all or allow-all (whatever its numbers and access, as
//! the kernel and runc read "a"); every other rule overrides, for the
//! devices it matches and the access letters it names, what the rules
//! before it decided. A request is allowed when each of its access bits is.
//! So the program walks the rules newest first, keeping the requested bits
//! nobody has decided yet: a matching deny rule naming one of them denies,
//! a matching allow rule settles the ones it names and allows once none is
//! left; the bits that remain get the default.
//!
//! Where this differs from v1 (and runc's emulator of it): a rule may punch
//! a hole into an earlier wildcard ("c 1:* rwm" then deny "c 1:3 w" denies
//! writing /dev/null; v1 ignores such a deny and runc refuses the config),
//! and a request's bits may be allowed by different rules ("c 1:3 r" plus
//! "c 1:3 w" allows opening it read-write, as v1 does only for one rule).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One eBPF instruction (`struct bpf_insn`).
pub type Insn = crate::sys::BpfInsn;

const FIELD: &str = "linux.resources.devices";
const LICENSE: &std::ffi::CStr = c"Apache-2.0";

// Device types and access bits of `bpf_cgroup_dev_ctx`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Attach type BPF_CGROUP_DEVICE and flag BPF_F_ALLOW_MULTI.
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// Opcodes (class | operation | source) of the instructions emitted.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0x04 | 0xb0; // BPF_ALU | BPF_MOV | BPF_K
const JMP_JEQ_K: u8 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JSET_K: u8 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// Registers: r0 the verdict, r1 the context, then the request's fields.
const R0: u8 = 0;
const R_CTX: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// A rule other than a reset, in the program's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    allow: bool,
    typ: i32,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
}

enum Rule {
    /// Type "a": everything before it is replaced by allow-all (true) or
    /// deny-all (false).
    Reset(bool),
    Exception(Exception),
}

fn parse(i: usize, rule: &LinuxDeviceCgroup) -> Result<Rule> {
    let letters = rule.access().as_deref().unwrap_or("");
    if letters.is_empty() {
        bail!("{FIELD}[{i}].access must not be empty");
    }
    // runc keeps only the letters it knows ("rwa" is "rw").
    let mut access = 0;
    for c in letters.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        };
    }
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok(Rule::Reset(rule.allow())),
        LinuxDeviceType::B => DEV_BLOCK,
        // "u" (unbuffered character device) only comes from linux.devices.
        LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
        other => bail!(
            "{FIELD}[{i}].type ({:?}) is not a cgroup device type (a, b, c or u)",
            other.as_str()
        ),
    };
    let number = |what: &str, n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        Some(n) => match u32::try_from(n) {
            Ok(n) => Ok(Some(n)),
            Err(_) => bail!("{FIELD}[{i}].{what} ({n}) is not a device number"),
        },
    };
    Ok(Rule::Exception(Exception {
        allow: rule.allow(),
        typ,
        major: number("major", rule.major())?,
        minor: number("minor", rule.minor())?,
        access,
    }))
}

/// The rules as systemd's DevicePolicy=strict with DeviceAllow entries
/// (path, access), or None when they start from allow-all (DevicePolicy
/// auto). systemd cannot express every rule (denies inside an allowed range,
/// "*:n"): it then gets a wider allow than the rules, never a narrower one,
/// since the kernel lets a device through only when every attached program
/// does, and this module's program is attached too.
pub(in crate::cgroups) fn systemd_allow_list(rules: &[LinuxDeviceCgroup]) -> Result<Option<Vec<(String, String)>>> {
    let (default_allow, exceptions) = effective(rules)?;
    if default_allow {
        return Ok(None);
    }
    let mut out = Vec::new();
    for e in exceptions.iter().filter(|e| e.allow) {
        let group = if e.typ == DEV_BLOCK { "block" } else { "char" };
        let path = match (e.major, e.minor) {
            (Some(major), Some(minor)) => format!("/dev/{group}/{major}:{minor}"),
            (Some(major), None) => format!("{group}-{major}"),
            (None, _) => format!("{group}-*"),
        };
        let access: String = [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| e.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        out.push((path, access));
    }
    Ok(Some(out))
}

/// The default verdict and the rules that still matter, oldest first.
fn effective(rules: &[LinuxDeviceCgroup]) -> Result<(bool, Vec<Exception>)> {
    let mut default_allow = false;
    let mut exceptions = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        match parse(i, rule)? {
            Rule::Reset(allow) => {
                default_allow = allow;
                exceptions.clear();
            }
            // No access left: the rule decides nothing (and as an allow
            // rule would otherwise match every access).
            Rule::Exception(e) if e.access == 0 => {}
            Rule::Exception(e) => exceptions.push(e),
        }
    }
    // Rules giving the default verdict before any rule giving the other one
    // only decide what the default would.
    let first_other = exceptions.iter().position(|e| e.allow != default_allow);
    exceptions.drain(..first_other.unwrap_or(exceptions.len()));
    Ok((default_allow, exceptions))
}

fn ldx_w(dst: u8, off: i16) -> Insn {
    Insn::new(LDX_MEM_W, dst, R_CTX, off, 0)
}

fn alu(code: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(code, dst, 0, 0, imm)
}

/// A conditional jump whose offset is filled in later.
fn jump(code: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(code, dst, 0, 0, imm)
}

fn exit() -> Insn {
    Insn::new(JMP_EXIT, 0, 0, 0, 0)
}

/// Points the jump at `at` to `target`.
fn link(prog: &mut [Insn], at: usize, target: usize) -> Result<()> {
    prog[at].off = i16::try_from(target - at - 1).context("too many device rules for one eBPF program")?;
    Ok(())
}

/// Builds the program for an ordered list of OCI device cgroup rules
/// (linux.resources.devices, with the runtime's defaults already appended).
/// Rules are checked in the order given; see the module comment for the
/// semantics.
///
/// Per rule, newest first (`next` = the following rule's first instruction):
/// `JNE r2, type, next`; `JNE r4, major, next` unless any major; `JNE r5,
/// minor, next` unless any minor; then for an allow rule `AND32 r3, !access`
/// and `JEQ r3, 0, allow`, for a deny rule `JSET r3, access, deny`.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let (default_allow, exceptions) = effective(rules)?;
    let mut prog = Vec::new();
    if !exceptions.is_empty() {
        prog.extend([
            ldx_w(R_TYPE, 0),
            alu(ALU32_AND_K, R_TYPE, 0xffff),
            ldx_w(R_ACCESS, 0),
            alu(ALU32_RSH_K, R_ACCESS, 16),
            ldx_w(R_MAJOR, 4),
            ldx_w(R_MINOR, 8),
        ]);
    }
    // Jumps to a verdict: (instruction, verdict).
    let mut verdicts = Vec::new();
    for e in exceptions.iter().rev() {
        let mut next = vec![prog.len()];
        prog.push(jump(JMP_JNE_K, R_TYPE, e.typ));
        // A number above i32::MAX is sign-extended by the 64-bit compare and
        // so matches nothing, which is right: no device has one (majors have
        // 12 bits, minors 20).
        for (reg, n) in [(R_MAJOR, e.major), (R_MINOR, e.minor)] {
            if let Some(n) = n {
                next.push(prog.len());
                prog.push(jump(JMP_JNE_K, reg, n as i32));
            }
        }
        if e.allow {
            prog.push(alu(ALU32_AND_K, R_ACCESS, !e.access));
            verdicts.push((prog.len(), true));
            prog.push(jump(JMP_JEQ_K, R_ACCESS, 0));
        } else {
            verdicts.push((prog.len(), false));
            prog.push(jump(JMP_JSET_K, R_ACCESS, e.access));
        }
        let end = prog.len();
        for at in next {
            link(&mut prog, at, end)?;
        }
    }
    // The default verdict, then the other one if some rule jumps to it (the
    // verifier refuses unreachable instructions).
    let default_at = prog.len();
    prog.extend([alu(ALU32_MOV_K, R0, i32::from(default_allow)), exit()]);
    let other_at = prog.len();
    if verdicts.iter().any(|&(_, v)| v != default_allow) {
        prog.extend([alu(ALU32_MOV_K, R0, i32::from(!default_allow)), exit()]);
    }
    for (at, verdict) in verdicts {
        let target = if verdict == default_allow { default_at } else { other_at };
        link(&mut prog, at, target)?;
    }
    Ok(prog)
}

/// Loads the program and attaches it to the cgroup directory fd (an O_PATH
/// fd will do) with BPF_F_ALLOW_MULTI. The attachment keeps the program
/// alive after its fd, closed on return, is gone, until the cgroup is
/// removed.
pub fn load_and_attach(cgroup_dir: BorrowedFd, insns: &[Insn]) -> Result<()> {
    let prog = load(insns)?;
    crate::sys::bpf_prog_attach(cgroup_dir, prog.as_fd(), BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        .context("attach the device cgroup eBPF program (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)")
}

fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let e = match crate::sys::bpf_prog_load_cgroup_device(insns, LICENSE, &mut []) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Again with the verifier's log, to say why.
    let mut log = vec![0u8; 1 << 16];
    if let Ok(fd) = crate::sys::bpf_prog_load_cgroup_device(insns, LICENSE, &mut log) {
        return Ok(fd);
    }
    let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..len]);
    let log = log.trim();
    Err(e).with_context(|| {
        format!(
            "load the device cgroup eBPF program ({} instructions){}{log}",
            insns.len(),
            if log.is_empty() { "" } else { ": " },
        )
    })
}

#[cfg(test)]
mod systemd_tests {
    use super::*;
    use serde_json::json;

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_as_systemd_device_entries() {
        let r = rules(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
            {"allow": true, "type": "c", "minor": 5, "access": "r"}
        ]));
        let entries = systemd_allow_list(&r).unwrap().unwrap();
        let e = |p: &str, a: &str| (p.to_string(), a.to_string());
        assert_eq!(
            entries,
            vec![
                e("/dev/char/1:3", "rwm"),
                e("char-136", "rw"),
                e("block-*", "m"),
                e("char-*", "r")
            ]
        );
        let open = rules(
            json!([{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]),
        );
        assert_eq!(systemd_allow_list(&open).unwrap(), None);
        let none = rules(json!([{"allow": false, "access": "rwm"}]));
        assert_eq!(systemd_allow_list(&none).unwrap(), Some(vec![]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rules(v: Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    const DENY_ALL: &str = r#"{"allow": false, "access": "rwm"}"#;

    fn deny_all_then(more: Value) -> Vec<LinuxDeviceCgroup> {
        let mut v = vec![serde_json::from_str::<Value>(DENY_ALL).unwrap()];
        v.extend(more.as_array().unwrap().iter().cloned());
        rules(Value::Array(v))
    }

    fn c(major: i64, minor: i64, access: &str) -> Value {
        json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": access})
    }

    /// What the kernel's verifier would refuse of what `program` emits:
    /// unknown opcodes, backward or out-of-range jumps, unreachable
    /// instructions, falling off the end.
    fn verify(prog: &[Insn]) {
        assert!(!prog.is_empty());
        let mut reachable = vec![false; prog.len()];
        reachable[0] = true;
        for (i, insn) in prog.iter().enumerate() {
            let known = [
                LDX_MEM_W,
                ALU32_AND_K,
                ALU32_RSH_K,
                ALU32_MOV_K,
                JMP_JEQ_K,
                JMP_JSET_K,
                JMP_JNE_K,
                JMP_EXIT,
            ];
            assert!(known.contains(&insn.code), "insn {i}: opcode {:#x}", insn.code);
            if !reachable[i] {
                panic!("insn {i} is unreachable in {prog:?}");
            }
            if insn.code == JMP_EXIT {
                continue;
            }
            assert!(i + 1 < prog.len(), "insn {i} falls off the end");
            reachable[i + 1] = true;
            if matches!(insn.code, JMP_JEQ_K | JMP_JSET_K | JMP_JNE_K) {
                assert!(insn.off >= 0, "insn {i} jumps backwards");
                let target = i + 1 + insn.off as usize;
                assert!(target < prog.len(), "insn {i} jumps out of the program");
                reachable[target] = true;
            } else if insn.code != LDX_MEM_W {
                assert_eq!(insn.off, 0, "insn {i}");
            }
        }
    }

    /// Runs the program on one request the way the kernel would, refusing
    /// reads of registers nothing has written.
    fn run(prog: &[Insn], typ: char, major: u32, minor: u32, access: &str) -> bool {
        let typ = match typ {
            'b' => DEV_BLOCK,
            'c' => DEV_CHAR,
            _ => unreachable!(),
        } as u32;
        let mut bits = 0;
        for a in access.chars() {
            bits |= match a {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => unreachable!(),
            } as u32;
        }
        let ctx = [bits << 16 | typ, major, minor];
        let mut regs: [Option<u64>; 11] = [None; 11];
        let mut pc = 0;
        loop {
            let insn = prog[pc];
            let dst = insn.dst() as usize;
            let imm = insn.imm as i64 as u64;
            let at = pc;
            let read = |regs: &[Option<u64>; 11], r: usize| regs[r].unwrap_or_else(|| panic!("insn {at}: r{r} unset"));
            pc += 1;
            match insn.code {
                LDX_MEM_W => {
                    assert_eq!(insn.src(), R_CTX);
                    assert_eq!(insn.off % 4, 0);
                    regs[dst] = Some(ctx[insn.off as usize / 4] as u64);
                }
                ALU32_AND_K => regs[dst] = Some((read(&regs, dst) as u32 & insn.imm as u32) as u64),
                ALU32_RSH_K => regs[dst] = Some(((read(&regs, dst) as u32) >> insn.imm) as u64),
                ALU32_MOV_K => regs[dst] = Some(insn.imm as u32 as u64),
                JMP_JEQ_K | JMP_JNE_K | JMP_JSET_K => {
                    let v = read(&regs, dst);
                    let taken = match insn.code {
                        JMP_JEQ_K => v == imm,
                        JMP_JNE_K => v != imm,
                        _ => v & imm != 0,
                    };
                    if taken {
                        pc += insn.off as usize;
                    }
                }
                JMP_EXIT => {
                    return match read(&regs, 0) {
                        0 => false,
                        1 => true,
                        r => panic!("returns {r}"),
                    }
                }
                code => panic!("opcode {code:#x}"),
            }
        }
    }

    type Request = (char, u32, u32, &'static str, bool);

    /// (name, rules, requests with their expected verdict).
    fn cases() -> Vec<(&'static str, Vec<LinuxDeviceCgroup>, Vec<Request>)> {
        let defaults = json!([
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "major": -1, "minor": -1, "access": "m"},
            c(1, 3, "rwm"), c(1, 5, "rwm"), c(1, 7, "rwm"), c(1, 8, "rwm"), c(1, 9, "rwm"),
            c(5, 0, "rwm"), c(5, 1, "rwm"), c(5, 2, "rwm"), c(136, -1, "rwm"),
        ]);
        vec![
            (
                "empty list denies",
                rules(json!([])),
                vec![('c', 1, 3, "r", false), ('b', 8, 0, "m", false)],
            ),
            (
                "deny all",
                rules(json!([{"allow": false, "access": "rwm"}])),
                vec![('c', 1, 3, "r", false), ('b', 8, 0, "rwm", false)],
            ),
            (
                "deny all, then null and zero",
                deny_all_then(json!([c(1, 3, "rwm"), c(1, 5, "rwm")])),
                vec![
                    ('c', 1, 3, "r", true),
                    ('c', 1, 3, "m", true),
                    ('c', 1, 3, "rwm", true),
                    ('c', 1, 5, "w", true),
                    ('c', 1, 7, "r", false),
                    ('c', 1, 4, "r", false),
                    ('c', 2, 3, "r", false),
                    ('b', 1, 3, "r", false),
                    ('b', 8, 0, "r", false),
                ],
            ),
            (
                "allow all",
                rules(json!([{"allow": true, "type": "a", "major": -1, "minor": -1, "access": "rwm"}])),
                vec![
                    ('c', 1, 3, "rwm", true),
                    ('b', 8, 0, "rw", true),
                    ('c', 4095, 1048575, "m", true),
                ],
            ),
            (
                "allow all (no type, no numbers)",
                rules(json!([DENY_ALL.parse::<Value>().unwrap(), {"allow": true, "access": "rwm"}])),
                vec![('c', 10, 200, "rw", true), ('b', 8, 0, "m", true)],
            ),
            (
                "allow all, then deny writing null",
                rules(json!([
                    {"allow": true, "access": "rwm"},
                    {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
                ])),
                vec![
                    ('c', 1, 3, "w", false),
                    ('c', 1, 3, "rw", false),
                    ('c', 1, 3, "r", true),
                    ('c', 1, 3, "rm", true),
                    ('c', 1, 5, "w", true),
                    ('b', 1, 3, "w", true),
                ],
            ),
            (
                "wildcard minor",
                deny_all_then(json!([c(136, -1, "rwm")])),
                vec![
                    ('c', 136, 0, "rw", true),
                    ('c', 136, 4711, "rwm", true),
                    ('c', 137, 0, "r", false),
                    ('b', 136, 0, "r", false),
                ],
            ),
            (
                "wildcard major",
                deny_all_then(json!([{"allow": true, "type": "b", "minor": 0, "access": "m"}])),
                vec![
                    ('b', 8, 0, "m", true),
                    ('b', 259, 0, "m", true),
                    ('b', 8, 1, "m", false),
                    ('b', 8, 0, "r", false),
                    ('c', 8, 0, "m", false),
                ],
            ),
            (
                "access is a subset",
                deny_all_then(json!([c(1, 3, "r")])),
                vec![
                    ('c', 1, 3, "r", true),
                    ('c', 1, 3, "rw", false),
                    ('c', 1, 3, "w", false),
                    ('c', 1, 3, "m", false),
                ],
            ),
            (
                "access bits from different rules",
                deny_all_then(json!([c(1, 3, "r"), c(1, -1, "w")])),
                vec![
                    ('c', 1, 3, "rw", true),
                    ('c', 1, 3, "rwm", false),
                    ('c', 1, 4, "rw", false),
                    ('c', 1, 4, "w", true),
                ],
            ),
            (
                "a later allow overrides a deny",
                rules(json!([
                    {"allow": true, "access": "rwm"},
                    {"allow": false, "type": "c", "major": 1, "access": "rwm"},
                    c(1, 3, "rw")
                ])),
                vec![
                    ('c', 1, 3, "rw", true),
                    ('c', 1, 3, "m", false),
                    ('c', 1, 3, "rm", false),
                    ('c', 1, 4, "r", false),
                    ('c', 2, 0, "r", true),
                ],
            ),
            (
                "a later deny overrides part of an allow",
                deny_all_then(json!([
                    c(1, -1, "rwm"),
                    {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
                ])),
                vec![
                    ('c', 1, 3, "r", true),
                    ('c', 1, 3, "m", true),
                    ('c', 1, 3, "rw", false),
                    ('c', 1, 4, "rw", true),
                ],
            ),
            (
                "type a with a major resets to allow-all",
                deny_all_then(json!([
                    {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": true, "type": "a", "major": 8, "access": "r"},
                    {"allow": false, "type": "b", "major": 8, "access": "w"}
                ])),
                vec![
                    ('c', 1, 3, "rwm", true),
                    ('b', 8, 0, "r", true),
                    ('b', 8, 0, "w", false),
                    ('c', 8, 0, "w", true),
                    ('b', 9, 0, "w", true),
                ],
            ),
            (
                "type a with a major resets to deny-all",
                rules(json!([
                    {"allow": true, "access": "rwm"},
                    {"allow": false, "type": "a", "major": 1, "minor": 3, "access": "w"},
                    c(1, 5, "r")
                ])),
                vec![
                    ('c', 1, 5, "r", true),
                    ('c', 1, 5, "w", false),
                    ('c', 1, 3, "r", false),
                    ('b', 8, 0, "r", false),
                ],
            ),
            (
                "u is a character device",
                deny_all_then(json!([{"allow": true, "type": "u", "major": 4, "minor": 5, "access": "rw"}])),
                vec![('c', 4, 5, "rw", true), ('b', 4, 5, "r", false)],
            ),
            (
                "runc's default devices",
                deny_all_then(defaults),
                vec![
                    ('c', 1, 3, "rwm", true),
                    ('c', 1, 5, "rw", true),
                    ('c', 1, 7, "w", true),
                    ('c', 1, 8, "r", true),
                    ('c', 1, 9, "r", true),
                    ('c', 5, 0, "rw", true),
                    ('c', 5, 1, "rw", true),
                    ('c', 5, 2, "rw", true),
                    ('c', 136, 0, "rw", true),
                    ('c', 136, 99, "rwm", true),
                    ('c', 10, 200, "m", true),
                    ('b', 8, 0, "m", true),
                    ('c', 10, 200, "r", false),
                    ('c', 10, 200, "rm", false),
                    ('b', 8, 0, "r", false),
                    ('c', 1, 1, "r", false),
                    ('c', 4, 0, "rw", false),
                    ('c', 5, 3, "r", false),
                    ('c', 137, 0, "r", false),
                ],
            ),
        ]
    }

    #[test]
    fn verdicts() {
        for (name, rules, requests) in cases() {
            let prog = program(&rules).unwrap();
            verify(&prog);
            for (typ, major, minor, access, allowed) in requests {
                assert_eq!(
                    run(&prog, typ, major, minor, access),
                    allowed,
                    "{name}: {typ} {major}:{minor} {access}"
                );
            }
        }
    }

    #[test]
    fn instruction_sequence() {
        let insn = Insn::new;
        let prog = program(&deny_all_then(json!([c(1, 3, "rwm")]))).unwrap();
        assert_eq!(
            prog,
            vec![
                insn(LDX_MEM_W, R_TYPE, R_CTX, 0, 0),
                insn(ALU32_AND_K, R_TYPE, 0, 0, 0xffff),
                insn(LDX_MEM_W, R_ACCESS, R_CTX, 0, 0),
                insn(ALU32_RSH_K, R_ACCESS, 0, 0, 16),
                insn(LDX_MEM_W, R_MAJOR, R_CTX, 4, 0),
                insn(LDX_MEM_W, R_MINOR, R_CTX, 8, 0),
                insn(JMP_JNE_K, R_TYPE, 0, 4, DEV_CHAR),
                insn(JMP_JNE_K, R_MAJOR, 0, 3, 1),
                insn(JMP_JNE_K, R_MINOR, 0, 2, 3),
                insn(ALU32_AND_K, R_ACCESS, 0, 0, !7),
                insn(JMP_JEQ_K, R_ACCESS, 0, 2, 0),
                insn(ALU32_MOV_K, R0, 0, 0, 0),
                insn(JMP_EXIT, 0, 0, 0, 0),
                insn(ALU32_MOV_K, R0, 0, 0, 1),
                insn(JMP_EXIT, 0, 0, 0, 0),
            ]
        );
        // A deny rule: one JSET to the deny verdict.
        let prog = program(&rules(json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "access": "w"}
        ])))
        .unwrap();
        assert_eq!(
            prog[6..],
            [
                insn(JMP_JNE_K, R_TYPE, 0, 2, DEV_BLOCK),
                insn(JMP_JNE_K, R_MAJOR, 0, 1, 8),
                insn(JMP_JSET_K, R_ACCESS, 0, 2, ACC_WRITE),
                insn(ALU32_MOV_K, R0, 0, 0, 1),
                insn(JMP_EXIT, 0, 0, 0, 0),
                insn(ALU32_MOV_K, R0, 0, 0, 0),
                insn(JMP_EXIT, 0, 0, 0, 0),
            ]
        );
    }

    #[test]
    fn resets_and_overridden_rules_are_dropped() {
        let two = |allow| vec![Insn::new(ALU32_MOV_K, R0, 0, 0, allow), Insn::new(JMP_EXIT, 0, 0, 0, 0)];
        assert_eq!(program(&[]).unwrap(), two(0));
        assert_eq!(
            program(&rules(json!([{"allow": true, "access": "rwm"}]))).unwrap(),
            two(1)
        );
        // Deny rules before the first allow only say what the default says.
        let prog = program(&deny_all_then(json!([
            c(1, 3, "rwm"),
            {"allow": true, "type": "a", "access": "rwm"},
            {"allow": false, "access": "m"},
            {"allow": false, "type": "c", "major": 1, "access": "w"}
        ])))
        .unwrap();
        assert_eq!(prog, two(0));
        let prog = program(&deny_all_then(json!([
            {"allow": false, "type": "c", "major": 1, "access": "w"},
            c(1, 5, "r")
        ])))
        .unwrap();
        assert_eq!(prog.len(), 6 + 5 + 4);
    }

    #[test]
    fn unknown_access_letters_are_left_out() {
        let prog = |v: Value| program(&deny_all_then(v)).unwrap();
        assert_eq!(prog(json!([c(1, 3, "rwa")])), prog(json!([c(1, 3, "rw")])));
        // An allow rule left with no access allows nothing.
        assert_eq!(prog(json!([c(1, 3, "x"), c(1, 5, "r")])), prog(json!([c(1, 5, "r")])));
    }

    #[test]
    fn invalid_rules() {
        let cases = [
            (
                json!({"allow": true, "type": "c", "access": ""}),
                "linux.resources.devices[1].access must not be empty",
            ),
            (
                json!({"allow": true, "type": "c"}),
                "linux.resources.devices[1].access must not be empty",
            ),
            (
                json!({"allow": false}),
                "linux.resources.devices[1].access must not be empty",
            ),
            (
                json!({"allow": true, "type": "p", "access": "r"}),
                "linux.resources.devices[1].type (\"p\") is not a cgroup device type (a, b, c or u)",
            ),
            (
                json!({"allow": true, "type": "c", "major": -2, "access": "r"}),
                "linux.resources.devices[1].major (-2) is not a device number",
            ),
            (
                json!({"allow": true, "type": "b", "major": 8, "minor": 4294967296_i64, "access": "r"}),
                "linux.resources.devices[1].minor (4294967296) is not a device number",
            ),
        ];
        for (rule, message) in cases {
            let err = program(&deny_all_then(json!([rule]))).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    /// A cgroup2 mount to make a child cgroup in: the unified hierarchy, or
    /// its hybrid-mode mount.
    fn cgroup2_mount() -> Option<std::path::PathBuf> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
        ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|p| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC))
    }

    /// A cgroup of the test's own, removed (after killing `child`, if still
    /// there) on every path out of the test.
    struct TestCgroup {
        dir: std::path::PathBuf,
        child: Option<std::process::Child>,
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            // The kernel may take a moment to notice the cgroup is empty.
            for _ in 0..200 {
                match std::fs::remove_dir(&self.dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => return,
                }
            }
        }
    }

    #[test]
    fn root_enforced_in_a_cgroup2_cgroup() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: not root");
            return;
        }
        let Some(mount) = cgroup2_mount() else {
            println!("skipped: no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
            return;
        };
        // The kernel's verifier accepts every program of the table.
        for (name, rules, _) in cases() {
            load(&program(&rules).unwrap()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        // A refused program is explained by the verifier's log.
        let err = format!("{:#}", load(&[Insn::new(JMP_EXIT, 0, 0, 0, 0)]).unwrap_err());
        assert!(
            err.starts_with("load the device cgroup eBPF program (1 instructions): "),
            "{err}"
        );
        assert!(err.contains("R0"), "{err}");

        let dir = mount.join(format!("xrun-devtest-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let mut cgroup = TestCgroup { dir, child: None };
        let fd = crate::sys::openat(libc::AT_FDCWD, &cgroup.dir, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let prog = program(&rules(json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ])))
        .unwrap();
        load_and_attach(fd.as_fd(), &prog).unwrap();

        let child = Command::new("/bin/sh")
            .args([
                "-c",
                "read x; cat /dev/null && echo null-opened; head -c 3 /dev/zero | wc -c",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let child = cgroup.child.insert(child);
        std::fs::write(cgroup.dir.join("cgroup.procs"), pid.to_string()).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = cgroup.child.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.trim(), "3", "stderr: {stderr}");
        assert!(stderr.contains("Operation not permitted"), "stderr: {stderr}");
        // Outside the cgroup, /dev/null opens.
        std::fs::File::open("/dev/null").unwrap();
    }
}
