//! Runs compiled programs through a small BPF interpreter, so the linking of
//! per-action filters is checked without loading anything.

use super::bpf::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32, X32_SYSCALL_BIT, X86, X86_64};
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

fn refused(json: serde_json::Value) -> String {
    match compile(&serde_json::from_value(json).unwrap()) {
        Ok(_) => panic!("compiled"),
        Err(e) => format!("{e:#}"),
    }
}

const ALLOW: u32 = RET_ALLOW;
const ERRNO: u32 = RET_ERRNO;
const X: u32 = AUDIT_ARCH_X86_64;

#[test]
fn tables_are_sorted_and_know_common_calls() {
    for t in [&X86_64, &X86, &X32] {
        assert!(t.entries().windows(2).all(|w| w[0].0 < w[1].0), "{}", t.name);
    }
    assert_eq!(syscall_number("read"), Some(0));
    assert_eq!(syscall_number("getcwd"), Some(79));
    assert_eq!(syscall_number("chown32"), None);
    assert_eq!(X86.number("read"), Some(3));
    assert_eq!(X86.number("chown32"), Some(212));
    assert_eq!(X86.number("socketcall"), Some(102));
    assert_eq!(X86.number("mseal"), Some(462));
    assert_eq!(X32.number("read"), Some(0x4000_0000));
    // x32's own numbers for calls whose arguments differ from x86_64's.
    assert_eq!(X32.number("rt_sigaction"), Some(0x4000_0000 + 512));
    assert_eq!(X32.number("mseal"), Some(0x4000_0000 + 462));
    assert_eq!(X32.number("map_shadow_stack"), None);
}

#[test]
fn default_allow_with_one_errno_rule() {
    let f = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(eval(&f.program, X, nr("getcwd"), [0; 6]), ERRNO | 1);
    assert_eq!(eval(&f.program, X, nr("getpid"), [0; 6]), ALLOW);
}

#[test]
fn every_action_has_its_return_value() {
    let names = [
        "read", "write", "getpid", "getcwd", "uname", "mkdir", "chdir", "kill", "mount",
    ];
    let actions = [
        ("SCMP_ACT_KILL", RET_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", RET_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS),
        ("SCMP_ACT_TRAP", RET_TRAP),
        ("SCMP_ACT_ERRNO", RET_ERRNO | 1),
        ("SCMP_ACT_TRACE", RET_TRACE | 1),
        ("SCMP_ACT_ALLOW", RET_ALLOW),
        ("SCMP_ACT_LOG", RET_LOG),
        ("SCMP_ACT_NOTIFY", RET_USER_NOTIF),
    ];
    assert_eq!(ACTIONS.len(), actions.len());
    let syscalls: Vec<_> = actions
        .iter()
        .zip(names)
        .map(|((a, _), n)| serde_json::json!({"names": [n], "action": a}))
        .collect();
    let f = profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "listenerPath": "/run/agent.sock", "syscalls": syscalls}),
    );
    for ((a, want), n) in actions.iter().zip(names) {
        assert!(ACTIONS.contains(a));
        assert_eq!(eval(&f.program, X, nr(n), [0; 6]), *want, "{a}");
    }
    assert_eq!(eval(&f.program, X, nr("close"), [0; 6]), ERRNO | 38);
    assert!(f.has_listener());
    // errnoRet is the data of ERRNO and TRACE.
    let f = profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}),
    );
    assert_eq!(eval(&f.program, X, nr("read"), [0; 6]), ERRNO | 13);
    assert_eq!(eval(&f.program, X, nr("write"), [0; 6]), RET_TRACE | 7);
    assert!(!f.has_listener());
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
            {"names": ["uname"], "action": "SCMP_ACT_LOG"},
            {"names": ["not_a_syscall"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    assert_eq!(eval(&f.program, X, nr("read"), [0; 6]), ALLOW);
    // Both ERRNO(13) and ALLOW match: the more restrictive wins.
    assert_eq!(eval(&f.program, X, nr("mkdir"), [0; 6]), ERRNO | 13);
    assert_eq!(eval(&f.program, X, nr("uname"), [0; 6]), RET_KILL_PROCESS);
    assert_eq!(eval(&f.program, X, nr("getpid"), [0; 6]), ERRNO | 38);
}

fn one_arg(op: &str, value: u64) -> serde_json::Value {
    serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": value, "op": op}]})
}

#[test]
fn every_operator_compares_64_bits_unsigned() {
    /// (operator, operand, [(argument, allowed)])
    type Case = (&'static str, u64, &'static [(u64, bool)]);
    let cases: &[Case] = &[
        (
            "SCMP_CMP_EQ",
            0xffff_ffff,
            &[(0xffff_ffff, true), (0x1_ffff_ffff, false), (0, false)],
        ),
        ("SCMP_CMP_NE", 8, &[(8, false), (0x1_0000_0008, true), (9, true)]),
        (
            "SCMP_CMP_LT",
            0x1_0000_0000,
            &[(0xffff_ffff, true), (0x1_0000_0000, false), (u64::MAX, false)],
        ),
        (
            "SCMP_CMP_LE",
            0x1_0000_0000,
            &[(0x1_0000_0000, true), (0x1_0000_0001, false), (0, true)],
        ),
        (
            "SCMP_CMP_GT",
            0x1_0000_0000,
            &[(0x1_0000_0001, true), (0x1_0000_0000, false), (0xffff_ffff, false)],
        ),
        (
            "SCMP_CMP_GE",
            5,
            &[(5, true), (4, false), (u64::MAX, true), (0x1_0000_0000, true)],
        ),
    ];
    assert_eq!(OPERATORS.len(), cases.len() + 1);
    for (op, value, calls) in cases {
        assert!(OPERATORS.contains(op));
        let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [one_arg(op, *value)]}));
        for (arg, allowed) in *calls {
            let got = eval(&f.program, X, nr("personality"), [*arg, 0, 0, 0, 0, 0]);
            assert_eq!(got == ALLOW, *allowed, "{op} {value:#x} with {arg:#x}");
        }
    }
}

#[test]
fn argument_rules_and_masks() {
    let f = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            one_arg("SCMP_CMP_EQ", 0xffff_ffff),
            one_arg("SCMP_CMP_EQ", 8),
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"}, {"index": 1, "value": 9, "op": "SCMP_CMP_NE"}]},
            // Two conditions on one argument: runc makes them two rules (ORed).
            {"names": ["tkill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let call = |name: &str, a0: u64, a1: u64| eval(&f.program, X, nr(name), [a0, a1, 0, 0, 0, 0]);
    assert_eq!(call("personality", 0xffff_ffff, 0), ALLOW);
    assert_eq!(call("personality", 8, 0), ALLOW);
    assert_eq!(call("personality", 0x1_ffff_ffff, 0), ERRNO | 1);
    assert_eq!(call("personality", 3, 0), ERRNO | 1);
    assert_eq!(call("clone", libc::SIGCHLD as u64, 0), ALLOW);
    assert_eq!(call("clone", libc::CLONE_NEWNS as u64, 0), ERRNO | 1);
    assert_eq!(
        call("clone", libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64, 0),
        ERRNO | 1
    );
    // Several args in one rule are ANDed.
    assert_eq!(call("kill", 5, 15), ALLOW);
    assert_eq!(call("kill", 5, 9), ERRNO | 1);
    assert_eq!(call("kill", 1, 15), ERRNO | 1);
    assert_eq!(call("tkill", 1, 9), ALLOW);
    assert_eq!(call("tkill", 1, 15), ALLOW);
    assert_eq!(call("tkill", 1, 2), ERRNO | 1);
}

fn arch_profile(arches: &[&str]) -> Filter {
    profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": arches,
        "syscalls": [
            {"names": ["read", "getpid", "rt_sigaction", "socketcall"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x1_0000_0008u64, "op": "SCMP_CMP_EQ"}]}
        ]
    }))
}

#[test]
fn only_native_x86_64_gets_bad_arch_for_compat_abis() {
    for arches in [&[][..], &["SCMP_ARCH_X86_64"], &["SCMP_ARCH_AARCH64"]] {
        let f = arch_profile(arches);
        let p = &f.program;
        assert_eq!(eval(p, X, nr("getpid"), [0; 6]), ALLOW);
        assert_eq!(eval(p, X, nr("mkdir"), [0; 6]), ERRNO | 13);
        assert_eq!(eval(p, X, nr("close"), [0; 6]), ERRNO | 38);
        // i386 (e.g. int 0x80) and x32 are killed: libseccomp's bad-arch action.
        assert_eq!(eval(p, AUDIT_ARCH_I386, 20, [0; 6]), RET_KILL_THREAD);
        assert_eq!(eval(p, X, X32_SYSCALL_BIT | 39, [0; 6]), RET_KILL_THREAD);
        assert_eq!(eval(p, 0xc000_00b7, 172, [0; 6]), RET_KILL_THREAD);
    }
}

#[test]
fn x86_is_filtered_with_its_own_numbers_and_32_bit_args() {
    let f = arch_profile(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    let p = &f.program;
    let i386 = |name: &str, a0: u64| {
        eval(
            p,
            AUDIT_ARCH_I386,
            X86.number(name).unwrap() as u32,
            [a0, 0, 0, 0, 0, 0],
        )
    };
    assert_eq!(i386("getpid", 0), ALLOW);
    assert_eq!(i386("read", 0), ALLOW);
    assert_eq!(i386("socketcall", 0), ALLOW);
    assert_eq!(i386("mkdir", 0), ERRNO | 13);
    assert_eq!(i386("close", 0), ERRNO | 38);
    // i386's 39 is mkdir, x86_64's 39 is getpid: each table applies to its ABI.
    assert_eq!(eval(p, X, 39, [0; 6]), ALLOW);
    assert_eq!(eval(p, AUDIT_ARCH_I386, 39, [0; 6]), ERRNO | 13);
    // 32-bit: only the low half of the operand counts.
    assert_eq!(i386("personality", 8), ALLOW);
    assert_eq!(i386("personality", 9), ERRNO | 38);
    assert_eq!(eval(p, X, nr("personality"), [8, 0, 0, 0, 0, 0]), ERRNO | 38);
    assert_eq!(eval(p, X, nr("personality"), [0x1_0000_0008, 0, 0, 0, 0, 0]), ALLOW);
    // x32 still not listed.
    assert_eq!(eval(p, X, X32_SYSCALL_BIT | 39, [0; 6]), RET_KILL_THREAD);
}

#[test]
fn x32_rides_on_x86_64_with_bit_30() {
    let f = arch_profile(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]);
    let p = &f.program;
    let x32 = |name: &str| eval(p, X, X32.number(name).unwrap() as u32, [0; 6]);
    assert_eq!(x32("getpid"), ALLOW);
    assert_eq!(x32("rt_sigaction"), ALLOW);
    assert_eq!(x32("mkdir"), ERRNO | 13);
    assert_eq!(x32("close"), ERRNO | 38);
    // x86_64's rt_sigaction number with the x32 bit is not x32's rt_sigaction.
    assert_eq!(eval(p, X, X32_SYSCALL_BIT | nr("rt_sigaction"), [0; 6]), ERRNO | 38);
    assert_eq!(eval(p, X, nr("rt_sigaction"), [0; 6]), ALLOW);
    assert_eq!(eval(p, X, nr("mkdir"), [0; 6]), ERRNO | 13);
    assert_eq!(eval(p, AUDIT_ARCH_I386, 20, [0; 6]), RET_KILL_THREAD);
    let all = arch_profile(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    assert_eq!(eval(&all.program, AUDIT_ARCH_I386, 20, [0; 6]), ALLOW);
    assert_eq!(eval(&all.program, X, X32_SYSCALL_BIT | 39, [0; 6]), ALLOW);
    assert_eq!(eval(&all.program, X, 39, [0; 6]), ALLOW);
    for a in ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"] {
        assert!(ARCHES.contains(&a));
    }
}

#[test]
fn calls_newer_than_the_profile_get_enosys_under_a_restrictive_default() {
    // runc's rule: above the highest number the profile names (per ABI),
    // -ENOSYS; below it, the default action.
    let with_default = |default: serde_json::Value| {
        let mut p = serde_json::json!({
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "mkdir", "mseal"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]
        });
        p.as_object_mut().unwrap().extend(default.as_object().unwrap().clone());
        profile(p).program
    };
    const ENOSYS: u32 = ERRNO | 38;
    let highest = nr("mseal");
    let p = with_default(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"}));
    assert_eq!(eval(&p, X, 1000, [0; 6]), ENOSYS);
    assert_eq!(eval(&p, X, highest + 1, [0; 6]), ENOSYS);
    assert_eq!(eval(&p, X, highest, [0; 6]), ALLOW);
    assert_eq!(eval(&p, X, nr("close"), [0; 6]), ERRNO | 1);
    assert_eq!(eval(&p, X, nr("getpid"), [0; 6]), ERRNO | 13);
    // Each compat ABI against its own highest number.
    let x86_highest = X86.number("mseal").unwrap() as u32;
    assert_eq!(eval(&p, AUDIT_ARCH_I386, x86_highest + 1, [0; 6]), ENOSYS);
    assert_eq!(eval(&p, AUDIT_ARCH_I386, x86_highest, [0; 6]), ALLOW);
    assert_eq!(eval(&p, AUDIT_ARCH_I386, 6, [0; 6]), ERRNO | 1);
    let x32_highest = X32.number("mseal").unwrap() as u32;
    assert_eq!(eval(&p, X, x32_highest + 1, [0; 6]), ENOSYS);
    assert_eq!(eval(&p, X, x32_highest, [0; 6]), ALLOW);
    for restrictive in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let p = with_default(serde_json::json!({"defaultAction": restrictive}));
        assert_eq!(eval(&p, X, 1000, [0; 6]), ENOSYS, "{restrictive}");
    }
    // Permissive defaults, and a default that already is ENOSYS: no stub.
    for (default, want) in [
        (serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}), ALLOW),
        (serde_json::json!({"defaultAction": "SCMP_ACT_LOG"}), RET_LOG),
        (serde_json::json!({"defaultAction": "SCMP_ACT_TRACE"}), RET_TRACE | 1),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}),
            ENOSYS,
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 6}),
            ENOSYS,
        ),
    ] {
        let p = with_default(default.clone());
        assert_eq!(eval(&p, X, 1000, [0; 6]), want, "{default}");
    }
    let p = with_default(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 6}));
    assert_eq!(eval(&p, X, nr("close"), [0; 6]), ERRNO | 6);
}

#[test]
fn flags() {
    let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}));
    // TSYNC is not passed; WAIT_KILLABLE_RECV only with a listener.
    assert_eq!(f.flags, 6);
    let f = profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert_eq!(f.flags, 8 | 32);
    // A listenerPath without any NOTIFY rule: no listener (as runc).
    let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "flags": []}));
    assert_eq!(f.flags, 0);
    // No flags at all: runc's default of SPEC_ALLOW, where the kernel has it.
    let f = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let spec_allow = crate::sys::seccomp_flags_known(FLAG_SPEC_ALLOW);
    assert_eq!(f.flags, if spec_allow { FLAG_SPEC_ALLOW } else { 0 });
    assert_eq!(FLAGS.len(), 3);
}

#[test]
fn refusals() {
    let notify = serde_json::json!({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"});
    let e = refused(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [notify]}));
    assert!(e.contains("listenerPath"), "{e}");
    let e = refused(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "",
        "syscalls": [notify]}),
    );
    assert!(e.contains("listenerPath"), "{e}");
    let e = refused(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}));
    assert!(e.contains("default action"), "{e}");
    let e = refused(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
        "syscalls": [{"names": ["mkdir", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(e.contains("write"), "{e}");
    let e = refused(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}));
    assert!(e.contains("errnoRet 70000"), "{e}");
    let e = refused(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(e.contains("index 6"), "{e}");
}

#[test]
fn process_state_for_the_agent() {
    let state = r#"{"ociVersion":"1.2.1","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
    let v = notify::process_state(42, Some("k=v"), state);
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["pid"], 42);
    assert_eq!(v["metadata"], "k=v");
    assert_eq!(v["state"]["id"], "c1");
    assert!(notify::process_state(42, None, state).get("metadata").is_none());
}

mod docker;
