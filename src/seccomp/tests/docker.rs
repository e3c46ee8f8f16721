//! Docker's default seccomp profile, as dockerd writes it into config.json
//! for a default container on amd64 (testdata/docker-default.json: moby's
//! profiles/seccomp/default.json with its includes/excludes resolved for
//! the default capability set, kernel >= 4.8 and arch amd64, and its archMap
//! turned into `architectures`), compiled and run through the interpreter.

use super::*;

const PROFILE: &str = include_str!("../testdata/docker-default.json");

fn docker() -> Filter {
    compile(&serde_json::from_str(PROFILE).unwrap()).unwrap()
}

const EPERM: u32 = ERRNO | libc::EPERM as u32;

#[test]
fn docker_default_profile() {
    let f = docker();
    let p = &f.program;
    let call = |name: &str, args: [u64; 6]| eval(p, X, nr(name), args);
    let plain = |name: &str| call(name, [0; 6]);
    for name in [
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "execve",
        "exit_group",
        "arch_prctl",
        "chroot",
    ] {
        assert_eq!(plain(name), ALLOW, "{name}");
    }
    for name in [
        "mount",
        "umount2",
        "reboot",
        "kexec_load",
        "init_module",
        "setns",
        "unshare",
        "bpf",
        "swapon",
        "acct",
    ] {
        assert_eq!(plain(name), EPERM, "{name}");
    }
    // clone without namespace flags, as fork() and pthread_create() make it.
    let thread =
        (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;
    assert_eq!(call("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
    for ns in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
    ] {
        assert_eq!(
            call("clone", [ns as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            EPERM,
            "{ns:#x}"
        );
    }
    // clone3 cannot be filtered on its flags: ENOSYS makes libc fall back.
    assert_eq!(plain("clone3"), ERRNO | libc::ENOSYS as u32);
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call("personality", [persona, 0, 0, 0, 0, 0]), ALLOW, "{persona:#x}");
    }
    assert_eq!(call("personality", [0x0040_0000, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call("personality", [0x1_0000_0000, 0, 0, 0, 0, 0]), EPERM);
    // socket(AF_VSOCK...) is the one family refused.
    assert_eq!(call("socket", [libc::AF_INET as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("socket", [libc::AF_VSOCK as u64, 0, 0, 0, 0, 0]), EPERM);
    // The compat ABIs are listed: filtered with their own numbers.
    assert_eq!(
        eval(p, AUDIT_ARCH_I386, X86.number("socketcall").unwrap() as u32, [0; 6]),
        ALLOW
    );
    assert_eq!(
        eval(p, AUDIT_ARCH_I386, X86.number("chown32").unwrap() as u32, [0; 6]),
        ALLOW
    );
    assert_eq!(
        eval(p, AUDIT_ARCH_I386, X86.number("mount").unwrap() as u32, [0; 6]),
        EPERM
    );
    assert_eq!(eval(p, X, X32.number("rt_sigaction").unwrap() as u32, [0; 6]), ALLOW);
    assert_eq!(eval(p, X, X32.number("reboot").unwrap() as u32, [0; 6]), EPERM);
    assert_eq!(eval(p, 0xc000_00b7, 0, [0; 6]), RET_KILL_THREAD);
    assert!(p.len() <= 4096, "{} instructions", p.len());
}

/// `cargo test --release --bins bench_compile_docker_default -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_compile_docker_default() {
    let runs: usize = std::env::var("XRUN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Parsing config.json is part of create too, but timed apart.
    let t = std::time::Instant::now();
    let parsed: LinuxSeccomp = serde_json::from_str(PROFILE).unwrap();
    let parse = t.elapsed();
    let mut times: Vec<std::time::Duration> = (0..runs)
        .map(|_| {
            let t = std::time::Instant::now();
            let f = compile(&parsed).unwrap();
            let d = t.elapsed();
            std::hint::black_box(f);
            d
        })
        .collect();
    times.sort();
    let len = docker().program.len();
    println!(
        "xrun: docker default profile -> {len} BPF instructions; compile median {:.1} us over {runs} runs \
         (min {:.1} us, JSON parse {:.1} us)",
        times[runs / 2].as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6,
        parse.as_secs_f64() * 1e6
    );
}
