//! memory: limit → memory.max, reservation → memory.low, swap →
//! memory.swap.max. 0 is "unset" and -1 "unlimited" for all three (runc).
//!
//! Ignored on v2, as runc does: kernel and kernelTCP (no such limits),
//! swappiness and disableOOMKiller (no such files), checkBeforeUpdate (an
//! update-time check against current usage, the caller's business).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::Write;

pub(in crate::cgroups) const LIMIT: &str = "linux.resources.memory.limit";
pub(in crate::cgroups) const RESERVATION: &str = "linux.resources.memory.reservation";
pub(in crate::cgroups) const SWAP: &str = "linux.resources.memory.swap";

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(m) = r.memory() else { return Ok(Vec::new()) };
    let limit = bytes(LIMIT, m.limit())?;
    let reservation = bytes(RESERVATION, m.reservation())?;
    let swap = bytes(SWAP, m.swap())?;

    let mut out = Vec::new();
    if limit != 0 {
        out.push(Write::new(LIMIT, "memory.max", max_or(limit)));
    }
    if let Some(w) = swap_max(swap, limit)? {
        out.push(w);
    }
    if reservation != 0 {
        out.push(Write::new(RESERVATION, "memory.low", max_or(reservation)));
    }
    Ok(out)
}

/// A byte count: 0 (unset), -1 (unlimited) or positive.
pub(in crate::cgroups) fn bytes(field: &str, v: Option<i64>) -> Result<i64> {
    let v = v.unwrap_or(0);
    if v < -1 {
        bail!("{field} ({v}) must be -1 (unlimited) or a number of bytes");
    }
    Ok(v)
}

fn max_or(v: i64) -> String {
    if v == -1 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// OCI swap is memory+swap; memory.swap.max is swap alone, so it is
/// swap - limit (runc's `ConvertMemorySwapToCgroupV2Value`):
///   - swap unset, limit -1 → "max" (unlimited memory means unlimited swap);
///   - swap -1 → "max"; limit -1 → swap as is (nothing to subtract);
///   - swap set without a limit, or smaller than it → error;
///   - swap == limit → "0" (no swap).
///
/// "max" and "0" are optional: without swap accounting the file is missing
/// and there is nothing to allow or forbid (runc ignores ENOENT for them).
fn swap_max(swap: i64, limit: i64) -> Result<Option<Write>> {
    let (field, value) = match (swap, limit) {
        (0, -1) => (LIMIT, -1),
        (0, _) => return Ok(None),
        (-1, _) => (SWAP, -1),
        (s, -1) => (SWAP, s),
        (s, 0) => bail!("{SWAP} ({s}) needs {LIMIT}: on cgroup v2 the swap limit is swap minus limit"),
        (s, l) if s < l => bail!("{SWAP} ({s}) is smaller than {LIMIT} ({l})"),
        (s, l) => (SWAP, s - l),
    };
    let w = Write::new(field, "memory.swap.max", max_or(value));
    Ok(Some(if value <= 0 { w.optional() } else { w }))
}

/// `update` of the limit alone keeps the memory+swap total the cgroup has
/// (memory.max plus memory.swap.max), as runc keeps the swap of its saved
/// config: on cgroup v2 the swap file then moves with the limit. Nothing is
/// kept when either file says "max" (or is missing).
pub(in crate::cgroups) fn keep_swap_total(
    r: &LinuxResources,
    max: Option<&str>,
    swap_max: Option<&str>,
) -> LinuxResources {
    let mut r = r.clone();
    let Some(mut m) = *r.memory() else { return r };
    let number = |v: Option<&str>| v.and_then(|v| v.trim().parse::<i64>().ok());
    if m.limit().is_some_and(|l| l > 0) && m.swap().is_none() {
        if let (Some(max), Some(swap)) = (number(max), number(swap_max)) {
            m.set_swap(Some(max + swap));
            r.set_memory(Some(m));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn an_updated_limit_keeps_the_total() {
        let kept = |v, max, swap| {
            let r = keep_swap_total(&res(v), max, swap);
            r.memory().as_ref().and_then(|m| m.swap())
        };
        assert_eq!(
            kept(json!({"memory": {"limit": 100}}), Some("128\n"), Some("64\n")),
            Some(192)
        );
        assert_eq!(kept(json!({"memory": {"limit": 100}}), Some("max"), Some("64")), None);
        assert_eq!(kept(json!({"memory": {"limit": 100}}), Some("128"), Some("max")), None);
        assert_eq!(
            kept(json!({"memory": {"limit": 100, "swap": 300}}), Some("128"), Some("64")),
            Some(300)
        );
        assert_eq!(
            kept(json!({"memory": {"reservation": 100}}), Some("128"), Some("64")),
            None
        );
        assert_eq!(kept(json!({"memory": {"limit": 100}}), Some("128"), None), None);
    }

    fn mem(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "memory": v }))).map(|w| files(&w))
    }

    #[test]
    fn limit_and_reservation() {
        assert_eq!(
            mem(json!({"limit": 1048576, "reservation": 524288})).unwrap(),
            pairs(&[("memory.max", "1048576"), ("memory.low", "524288")])
        );
        assert_eq!(
            mem(json!({"reservation": -1})).unwrap(),
            pairs(&[("memory.low", "max")])
        );
        assert!(mem(json!({"limit": 0, "reservation": 0, "swap": 0}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn unlimited_memory_means_unlimited_swap() {
        assert_eq!(
            mem(json!({"limit": -1})).unwrap(),
            pairs(&[("memory.max", "max"), ("?memory.swap.max", "max")])
        );
        let w = writes(&res(json!({"memory": {"limit": -1}}))).unwrap();
        assert_eq!(w[1].field, LIMIT);
    }

    #[test]
    fn swap_is_memory_plus_swap() {
        assert_eq!(
            mem(json!({"limit": 200, "swap": 500})).unwrap(),
            pairs(&[("memory.max", "200"), ("memory.swap.max", "300")])
        );
        assert_eq!(
            mem(json!({"limit": 1000, "swap": 1000})).unwrap(),
            pairs(&[("memory.max", "1000"), ("?memory.swap.max", "0")])
        );
        assert_eq!(
            mem(json!({"limit": 1000, "swap": -1})).unwrap(),
            pairs(&[("memory.max", "1000"), ("?memory.swap.max", "max")])
        );
        assert_eq!(mem(json!({"swap": -1})).unwrap(), pairs(&[("?memory.swap.max", "max")]));
        assert_eq!(
            mem(json!({"limit": -1, "swap": 300})).unwrap(),
            pairs(&[("memory.max", "max"), ("memory.swap.max", "300")])
        );
    }

    #[test]
    fn swap_errors() {
        let e = mem(json!({"limit": 200, "swap": 100})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swap (100) is smaller than linux.resources.memory.limit (200)"
        );
        let e = mem(json!({"swap": 100})).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("linux.resources.memory.swap (100) needs linux.resources.memory.limit"));
        let e = mem(json!({"swap": -2})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.swap (-2) must be -1 (unlimited) or a number of bytes"
        );
        assert!(mem(json!({"limit": -5})).is_err());
        assert!(mem(json!({"reservation": -5})).is_err());
    }

    #[test]
    fn v1_only_settings_are_ignored() {
        let r = json!({"kernel": 1 << 20, "kernelTCP": 1 << 20, "swappiness": 60, "disableOOMKiller": true,
                       "checkBeforeUpdate": true});
        assert!(mem(r).unwrap().is_empty());
    }
}
