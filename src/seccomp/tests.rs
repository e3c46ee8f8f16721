//! Runs compiled programs through a small BPF interpreter, so the linking of
//! per-action filters is checked without loading anything.

use super::*;

/// Evaluates a seccomp program for one call: (arch, nr, args) → return value.
fn eval(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => arch,
            16..=63 => {
                let i = ((off - 16) / 8) as usize;
                let v = args[i];
                if (off - 16) % 8 == 0 {
                    v as u32
                } else {
                    (v >> 32) as u32
                }
            }
            _ => panic!("load at unexpected offset {off}"),
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            0x20 => acc = word(i.k),
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x06 => return i.k,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    0x35 => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            c => panic!("unexpected BPF opcode {c:#x}"),
        }
    }
}

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap() as u32
}

fn profile(json: serde_json::Value) -> Filter {
    compile(&serde_json::from_value(json).unwrap()).unwrap()
}

const ALLOW: u32 = 0x7fff_0000;
const ERRNO: u32 = 0x0005_0000;

#[test]
fn table_is_sorted_and_knows_common_calls() {
    let t = syscalls_x86_64::X86_64;
    assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(syscall_number("read"), Some(0));
    assert_eq!(syscall_number("getcwd"), Some(79));
    assert_eq!(syscall_number("chown32"), None);
}

#[test]
fn default_allow_with_one_errno_rule() {
    let f = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(eval(&f.program, AUDIT_ARCH_X86_64, nr("getcwd"), [0; 6]), ERRNO | 1);
    assert_eq!(eval(&f.program, AUDIT_ARCH_X86_64, nr("getpid"), [0; 6]), ALLOW);
}

#[test]
fn mixed_actions_link_in_precedence_order() {
    let f = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["read", "write", "mkdir"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["not_a_syscall"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let x = AUDIT_ARCH_X86_64;
    assert_eq!(eval(&f.program, x, nr("read"), [0; 6]), ALLOW);
    // Both ERRNO(13) and ALLOW match: the more restrictive wins.
    assert_eq!(eval(&f.program, x, nr("mkdir"), [0; 6]), ERRNO | 13);
    assert_eq!(eval(&f.program, x, nr("uname"), [0; 6]), RET_KILL_PROCESS);
    assert_eq!(eval(&f.program, x, nr("getpid"), [0; 6]), ERRNO | 38);
}

#[test]
fn argument_rules_compare_64_bits_and_masks() {
    let f = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"}, {"index": 1, "value": 9, "op": "SCMP_CMP_NE"}]}
        ]
    }));
    let x = AUDIT_ARCH_X86_64;
    let call = |name: &str, a0: u64, a1: u64| eval(&f.program, x, nr(name), [a0, a1, 0, 0, 0, 0]);
    assert_eq!(call("personality", 0xffff_ffff, 0), ALLOW);
    assert_eq!(call("personality", 8, 0), ALLOW);
    assert_eq!(call("personality", 0x1_ffff_ffff, 0), ERRNO | 1);
    assert_eq!(call("personality", 3, 0), ERRNO | 1);
    assert_eq!(call("clone", libc::SIGCHLD as u64, 0), ALLOW);
    assert_eq!(call("clone", libc::CLONE_NEWNS as u64, 0), ERRNO | 1);
    // Several args in one rule are ANDed.
    assert_eq!(call("kill", 5, 15), ALLOW);
    assert_eq!(call("kill", 5, 9), ERRNO | 1);
    assert_eq!(call("kill", 1, 15), ERRNO | 1);
}

#[test]
fn foreign_abis_are_killed() {
    let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(eval(&f.program, 0x4000_0003, 183, [0; 6]), RET_KILL_PROCESS);
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 79, [0; 6]),
        RET_KILL_PROCESS
    );
}

#[test]
fn flags_and_unsupported_parts() {
    let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}));
    assert_eq!(f.flags, 6);
    let notify: LinuxSeccomp = serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
    .unwrap();
    assert!(compile(&notify).is_err());
}
