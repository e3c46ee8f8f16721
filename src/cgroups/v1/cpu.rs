//! cpu: shares → cpu.shares, period/quota → cpu.cfs_period_us /
//! cpu.cfs_quota_us, burst → cpu.cfs_burst_us, idle → cpu.idle,
//! realtimePeriod/realtimeRuntime → cpu.rt_period_us / cpu.rt_runtime_us.
//! 0 is "unset" for all but burst and idle (runc).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::v2::cpu::idle_around_weight;
use super::Write;

const SHARES: &str = "linux.resources.cpu.shares";
const QUOTA: &str = "linux.resources.cpu.quota";
const PERIOD: &str = "linux.resources.cpu.period";
const BURST: &str = "linux.resources.cpu.burst";
const RT_RUNTIME: &str = "linux.resources.cpu.realtimeRuntime";
const RT_PERIOD: &str = "linux.resources.cpu.realtimePeriod";

/// What the kernel accepts for cpu.shares; runc writes, reads back and
/// fails on a clamped value, so outside this range is an error up front.
const SHARES_RANGE: std::ops::RangeInclusive<u64> = 2..=262_144;

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(cpu) = r.cpu() else { return Ok(Vec::new()) };
    let mut out = Vec::new();

    let shares = match cpu.shares() {
        None | Some(0) => None,
        Some(s) if !SHARES_RANGE.contains(&s) => bail!("{SHARES} ({s}) is out of range [2, 262144]"),
        Some(s) => Some(Write::new(SHARES, "cpu.shares", s)),
    };
    let (before, after) = idle_around_weight(cpu.idle())?;
    out.extend(before);
    out.extend(shares);

    // runc's order: period, burst, then quota. The kernel checks each
    // against the current quota (and the parent's limit), so a period or
    // burst that only fits the new quota is refused at first and retried
    // after it (a pod lowering its period and quota together).
    let quota = cpu.quota().unwrap_or(0);
    let after_quota = |w: Write| if quota != 0 { w.retry_later() } else { w };
    if let Some(p) = cpu.period().filter(|p| *p != 0) {
        out.push(after_quota(Write::new(PERIOD, "cpu.cfs_period_us", p)));
    }
    if let Some(burst) = cpu.burst() {
        if quota > 0 && burst > quota as u64 {
            bail!("{BURST} ({burst}) is larger than {QUOTA} ({quota})");
        }
        // Kernel 5.14+; runc skips it where it does not exist.
        out.push(after_quota(Write::new(BURST, "cpu.cfs_burst_us", burst).optional()));
    }
    if quota != 0 {
        out.push(Write::new(QUOTA, "cpu.cfs_quota_us", quota));
    }
    out.extend(after);

    // The same for the realtime pair: a period shorter than the current
    // runtime is retried after the new runtime.
    let rt_runtime = cpu.realtime_runtime().unwrap_or(0);
    if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
        let w = Write::new(RT_PERIOD, "cpu.rt_period_us", p);
        out.push(if rt_runtime != 0 { w.retry_later() } else { w });
    }
    if let Some(rt) = Some(rt_runtime).filter(|v| *v != 0) {
        if rt < -1 {
            bail!("{RT_RUNTIME} ({rt}) must be -1 (unlimited) or a number of microseconds");
        }
        out.push(Write::new(RT_RUNTIME, "cpu.rt_runtime_us", rt));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    fn cpu(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "cpu": v }))).map(|w| files(&w))
    }

    #[test]
    fn shares() {
        assert_eq!(cpu(json!({"shares": 1024})).unwrap(), pairs(&[("cpu.shares", "1024")]));
        assert_eq!(cpu(json!({"shares": 2})).unwrap(), pairs(&[("cpu.shares", "2")]));
        assert!(cpu(json!({"shares": 0})).unwrap().is_empty());
        let e = cpu(json!({"shares": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.shares (1) is out of range [2, 262144]"
        );
        assert!(cpu(json!({"shares": 262_145})).is_err());
    }

    #[test]
    fn period_quota_burst() {
        assert_eq!(
            cpu(json!({"quota": 50000, "period": 100000, "burst": 20000})).unwrap(),
            pairs(&[
                ("cpu.cfs_period_us", "100000"),
                ("?cpu.cfs_burst_us", "20000"),
                ("cpu.cfs_quota_us", "50000")
            ])
        );
        let w = writes(&res(json!({"cpu": {"quota": 3000, "period": 10000}}))).unwrap();
        let retried: Vec<bool> = w.iter().map(|w| w.retry_later).collect();
        assert_eq!(retried, [true, false], "period retried after the quota");
        let w = writes(&res(json!({"cpu": {"period": 10000}}))).unwrap();
        assert!(!w[0].retry_later, "nothing to wait for without a quota");
        assert_eq!(cpu(json!({"quota": -1})).unwrap(), pairs(&[("cpu.cfs_quota_us", "-1")]));
        assert_eq!(
            cpu(json!({"period": 250000})).unwrap(),
            pairs(&[("cpu.cfs_period_us", "250000")])
        );
        let e = cpu(json!({"quota": 10000, "burst": 20000})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.burst (20000) is larger than linux.resources.cpu.quota (10000)"
        );
    }

    #[test]
    fn idle_around_shares() {
        assert_eq!(
            cpu(json!({"shares": 100, "quota": 1000, "idle": 1})).unwrap(),
            pairs(&[("cpu.shares", "100"), ("cpu.cfs_quota_us", "1000"), ("cpu.idle", "1")])
        );
        assert_eq!(
            cpu(json!({"shares": 100, "idle": 0})).unwrap(),
            pairs(&[("cpu.idle", "0"), ("cpu.shares", "100")])
        );
        assert!(cpu(json!({"idle": -1})).is_err());
    }

    #[test]
    fn realtime() {
        assert_eq!(
            cpu(json!({"realtimeRuntime": 950000, "realtimePeriod": 1000000})).unwrap(),
            pairs(&[("cpu.rt_period_us", "1000000"), ("cpu.rt_runtime_us", "950000")])
        );
        assert_eq!(
            cpu(json!({"realtimeRuntime": -1})).unwrap(),
            pairs(&[("cpu.rt_runtime_us", "-1")])
        );
        assert!(cpu(json!({"realtimeRuntime": 0, "realtimePeriod": 0}))
            .unwrap()
            .is_empty());
        let e = cpu(json!({"realtimeRuntime": -2})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.realtimeRuntime (-2) must be -1 (unlimited) or a number of microseconds"
        );
    }
}
