//! memory: limit → memory.limit_in_bytes, swap → memory.memsw.limit_in_bytes
//! (OCI and v1 agree: memory+swap), reservation →
//! memory.soft_limit_in_bytes, kernelTCP → memory.kmem.tcp.limit_in_bytes,
//! swappiness → memory.swappiness, disableOOMKiller → memory.oom_control.
//! 0 is "unset", -1 "unlimited" (v1 takes -1 as is).
//!
//! `kernel` is ignored, as runc does: since 5.16 the kernel refuses or
//! ignores memory.kmem.limit_in_bytes (6.x: "writing any value to this file
//! has no effect"), so it could only fail containers runc runs.
//! checkBeforeUpdate is an update-time check, the caller's business.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::v2::memory::{bytes, LIMIT, RESERVATION, SWAP};
use super::Write;

const KERNEL_TCP: &str = "linux.resources.memory.kernelTCP";
const SWAPPINESS: &str = "linux.resources.memory.swappiness";
const DISABLE_OOM_KILLER: &str = "linux.resources.memory.disableOOMKiller";

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(m) = r.memory() else { return Ok(Vec::new()) };
    let limit = bytes(LIMIT, m.limit())?;
    let reservation = bytes(RESERVATION, m.reservation())?;
    let swap = bytes(SWAP, m.swap())?;
    let kernel_tcp = bytes(KERNEL_TCP, m.kernel_tcp())?;
    if limit > 0 && swap > 0 && swap < limit {
        bail!("{SWAP} ({swap}) is smaller than {LIMIT} ({limit})");
    }

    let mut out = Vec::new();
    let limit_w = (limit != 0).then(|| Write::new(LIMIT, "memory.limit_in_bytes", limit));
    // Unlimited memory with swap unset means unlimited swap too (runc),
    // where swap accounting exists. An unlimited memsw may likewise be
    // skipped where it does not: there is nothing to lift.
    let memsw = match (swap, limit) {
        (0, -1) => Some(Write::new(LIMIT, "memory.memsw.limit_in_bytes", -1).optional()),
        (0, _) => None,
        (-1, _) => Some(Write::new(SWAP, "memory.memsw.limit_in_bytes", -1).optional()),
        (s, _) => Some(Write::new(SWAP, "memory.memsw.limit_in_bytes", s)),
    };
    // The kernel keeps limit <= memsw at every step. Unlimited memsw goes
    // first; otherwise the limit does, which is right for a new cgroup (both
    // unlimited) and for updates that lower the limits; a limit raised above
    // the old memsw is refused until the new memsw is in, and retried then.
    if swap == -1 || (swap == 0 && limit == -1) {
        out.extend(memsw);
        out.extend(limit_w);
    } else {
        let raise_later = memsw.is_some();
        out.extend(limit_w.map(|w| if raise_later { w.retry_later() } else { w }));
        out.extend(memsw);
    }
    if reservation != 0 {
        out.push(Write::new(RESERVATION, "memory.soft_limit_in_bytes", reservation));
    }
    if kernel_tcp != 0 {
        // Not in every kernel's v1 memory controller: optional.
        out.push(Write::new(KERNEL_TCP, "memory.kmem.tcp.limit_in_bytes", kernel_tcp).optional());
    }
    if m.disable_oom_killer() == Some(true) {
        out.push(Write::new(DISABLE_OOM_KILLER, "memory.oom_control", 1));
    }
    // u64::MAX is a -1 that went through an unsigned type: unset (runc).
    match m.swappiness() {
        None | Some(u64::MAX) => {}
        Some(v) if v > 100 => bail!("{SWAPPINESS} ({v}) is out of range [0, 100]"),
        Some(v) => out.push(Write::new(SWAPPINESS, "memory.swappiness", v)),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    fn mem(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "memory": v }))).map(|w| files(&w))
    }

    #[test]
    fn limit_then_memsw() {
        assert_eq!(
            mem(json!({"limit": 1000, "swap": 3000, "reservation": 500})).unwrap(),
            pairs(&[
                ("memory.limit_in_bytes", "1000"),
                ("memory.memsw.limit_in_bytes", "3000"),
                ("memory.soft_limit_in_bytes", "500"),
            ])
        );
        assert_eq!(
            mem(json!({"limit": 1000})).unwrap(),
            pairs(&[("memory.limit_in_bytes", "1000")])
        );
        assert_eq!(
            mem(json!({"swap": 3000})).unwrap(),
            pairs(&[("memory.memsw.limit_in_bytes", "3000")])
        );
        assert_eq!(
            mem(json!({"limit": 1000, "swap": 1000})).unwrap(),
            pairs(&[
                ("memory.limit_in_bytes", "1000"),
                ("memory.memsw.limit_in_bytes", "1000")
            ])
        );
        let w = writes(&res(json!({"memory": {"limit": 1000, "swap": 3000}}))).unwrap();
        assert!(w[0].retry_later, "a raised limit waits for the new memsw");
        let w = writes(&res(json!({"memory": {"limit": 1000}}))).unwrap();
        assert!(!w[0].retry_later);
    }

    #[test]
    fn unlimited_memsw_first() {
        assert_eq!(
            mem(json!({"limit": -1})).unwrap(),
            pairs(&[("?memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")])
        );
        assert_eq!(
            mem(json!({"limit": 1000, "swap": -1})).unwrap(),
            pairs(&[
                ("?memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "1000")
            ])
        );
        assert_eq!(
            mem(json!({"reservation": -1})).unwrap(),
            pairs(&[("memory.soft_limit_in_bytes", "-1")])
        );
    }

    #[test]
    fn swap_errors() {
        let e = mem(json!({"limit": 200, "swap": 100})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swap (100) is smaller than linux.resources.memory.limit (200)"
        );
        assert!(mem(json!({"swap": -3})).is_err());
        assert!(mem(json!({"limit": -3})).is_err());
    }

    #[test]
    fn kernel_memory() {
        assert!(mem(json!({"kernel": 1048576})).unwrap().is_empty());
        assert_eq!(
            mem(json!({"kernel": 1048576, "kernelTCP": 2097152})).unwrap(),
            pairs(&[("?memory.kmem.tcp.limit_in_bytes", "2097152")])
        );
        assert_eq!(
            mem(json!({"kernelTCP": -1})).unwrap(),
            pairs(&[("?memory.kmem.tcp.limit_in_bytes", "-1")])
        );
        let e = mem(json!({"kernelTCP": -2})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.kernelTCP (-2) must be -1 (unlimited) or a number of bytes"
        );
    }

    #[test]
    fn oom_killer_and_swappiness() {
        assert_eq!(
            mem(json!({"disableOOMKiller": true, "swappiness": 0})).unwrap(),
            pairs(&[("memory.oom_control", "1"), ("memory.swappiness", "0")])
        );
        assert!(mem(json!({"disableOOMKiller": false})).unwrap().is_empty());
        assert_eq!(
            mem(json!({"swappiness": 100})).unwrap(),
            pairs(&[("memory.swappiness", "100")])
        );
        assert!(mem(json!({"swappiness": u64::MAX})).unwrap().is_empty());
        let e = mem(json!({"swappiness": 101})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swappiness (101) is out of range [0, 100]"
        );
    }
}
