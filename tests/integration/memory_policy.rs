//! linux.memoryPolicy: the NUMA policy of the container's process, read back
//! from inside (/proc/self/numa_maps prints it for every mapping), for every
//! mode and flag of the runtime spec, for the init and an exec'd process;
//! and runc's refusals, which leave nothing behind. Node 0 exists on any
//! host, NUMA or not.

use crate::common::*;
use serde_json::{json, Value};

/// Prints the first line of the shell's own numa_maps.
const READ_POLICY: &[&str] = &["sh", "-c", "read line < /proc/self/numa_maps; echo \"$line\""];

/// The policy column (after the address) of a numa_maps line, with the rest.
#[track_caller]
fn policy_of(out: &CmdOutput) -> String {
    let line = out.stdout.lines().next().unwrap_or("");
    let (_, rest) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no numa_maps line in {:?}", out.stdout));
    rest.to_string()
}

/// Whether this kernel takes `mode` (with flags) for node 0: tried on the
/// test's own thread, which then returns to the default policy.
fn kernel_takes(mode: i32) -> bool {
    let node0: u64 = 1;
    let set = |mode: i32, mask: *const u64, maxnode: u64| {
        // SAFETY: `mask` is null or points at one word, covering `maxnode` bits.
        unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, mask, maxnode) }
    };
    let ok = set(mode, &node0, 64) == 0;
    set(0, std::ptr::null(), 0);
    ok
}

#[test]
fn every_mode_and_flag_is_the_init_s_policy() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(READ_POLICY);
    // Without a policy the process keeps the default.
    let out = t.run(&t.id, &[]);
    out.assert_ok();
    assert!(policy_of(&out).starts_with("default "), "{}", out.stdout);
    // What the kernel shows for each (mm/mempolicy.c, mpol_to_str).
    let cases: &[(Value, &str)] = &[
        (json!({"mode": "MPOL_DEFAULT"}), "default "),
        (json!({"mode": "MPOL_LOCAL", "nodes": ""}), "local "),
        (json!({"mode": "MPOL_PREFERRED"}), "local "),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0 "),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}),
            "prefer=relative:0 ",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0 ",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "bind=balancing:0 ",
        ),
        (json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}), "interleave:0 "),
        (json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "0"}), "prefer (many):0 "),
        (
            json!({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"}),
            "weighted interleave:0 ",
        ),
    ];
    // Older kernels lack the newest modes (weighted interleave: 6.9).
    let too_new = [
        (json!("MPOL_WEIGHTED_INTERLEAVE"), 6),
        (json!("MPOL_PREFERRED_MANY"), 5),
    ];
    for (policy, want) in cases {
        if let Some((name, mode)) = too_new.iter().find(|(n, _)| policy["mode"] == *n) {
            if !kernel_takes(*mode) {
                skip(&format!("{name}: this kernel does not know it"));
                continue;
            }
        }
        t.config["linux"]["memoryPolicy"] = policy.clone();
        let out = t.run(&t.id, &[]);
        out.assert_ok();
        let got = policy_of(&out);
        assert!(
            got.starts_with(want),
            "{policy}: numa_maps shows {got:?}, want {want:?}"
        );
    }
    t.assert_clean(&t.id);
}

#[test]
fn exec_d_processes_get_the_policy_too() {
    let Some(mut t) = TestEnv::new() else { return };
    t.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    let id = t.id.clone();
    t.start_sleeper(&id);
    let mut args = vec!["exec", &id];
    args.extend_from_slice(READ_POLICY);
    let out = t.rt(&args);
    out.assert_ok();
    let got = policy_of(&out);
    assert!(got.starts_with("interleave:0 "), "exec'd process's policy: {got:?}");
    t.rt(&["delete", "--force", &id]).assert_ok();
    t.assert_clean(&id);
}

#[test]
fn invalid_policies_are_refused_in_runc_s_words_leaving_nothing() {
    let Some(mut t) = TestEnv::new() else { return };
    t.args(READ_POLICY);
    let cases: &[(Value, &str)] = &[
        (json!({}), "invalid memory policy mode \"\""),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "invalid memory policy mode \"INTERLEAVE\"",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "invalid memory policy flag \"badflag\"",
        ),
        (json!({"nodes": "0-7"}), "invalid memory policy mode"),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "memory policy mode requires 0 nodes but got 8",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": ""}),
            "memory policy mode requires at least one node but got 0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210", "flags": []}),
            "invalid memory policy nodes \"0-9876543210\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1024"}),
            "values larger than 1023 are not supported",
        ),
        // Valid for runc's checks; the kernel refuses it in the child.
        (
            json!({"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_STATIC_NODES"]}),
            "set_mempolicy: invalid argument",
        ),
    ];
    for (policy, want) in cases {
        t.config["linux"]["memoryPolicy"] = policy.clone();
        let out = t.run(&t.id, &[]);
        out.assert_fails();
        let msgs = out.error_msgs().join("\n");
        assert!(msgs.contains(want), "{policy}: error {msgs:?}, want {want:?}");
        t.assert_clean(&t.id);
    }
}
