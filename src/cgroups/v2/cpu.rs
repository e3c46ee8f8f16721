//! cpu: shares → cpu.weight, quota/period → cpu.max, burst → cpu.max.burst,
//! idle → cpu.idle. Realtime scheduling has no cgroup v2 interface.

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::Write;

const SHARES: &str = "linux.resources.cpu.shares";
const QUOTA: &str = "linux.resources.cpu.quota";
const PERIOD: &str = "linux.resources.cpu.period";
const BURST: &str = "linux.resources.cpu.burst";
const IDLE: &str = "linux.resources.cpu.idle";

/// The CFS period the kernel uses when none is given (µs).
const DEFAULT_PERIOD: u64 = 100_000;

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(cpu) = r.cpu() else { return Ok(Vec::new()) };
    // runc silently drops these on v2; saying so is better than pretending.
    // 0 is "unset" for both, as in runc.
    if let Some(v) = cpu.realtime_runtime().filter(|v| *v != 0) {
        bail!("linux.resources.cpu.realtimeRuntime ({v}) is not supported on cgroup v2");
    }
    if let Some(v) = cpu.realtime_period().filter(|v| *v != 0) {
        bail!("linux.resources.cpu.realtimePeriod ({v}) is not supported on cgroup v2");
    }

    let mut out = Vec::new();
    let weight = match cpu.shares().map(shares_to_weight) {
        Some(w) if w != 0 => Some(Write::new(SHARES, "cpu.weight", w)),
        _ => None,
    };
    let (before, after) = idle_around_weight(cpu.idle())?;
    out.extend(before);
    out.extend(weight);
    out.extend(after);

    let quota = cpu.quota().unwrap_or(0);
    let period = cpu.period().unwrap_or(0);
    if let Some(burst) = cpu.burst() {
        if quota > 0 && burst > quota as u64 {
            bail!("{BURST} ({burst}) is larger than {QUOTA} ({quota})");
        }
        // Before cpu.max, as runc does: the kernel wants burst <= quota, so
        // a burst that only fits the new quota is retried after it, and a
        // quota below the old burst only fits after the new burst.
        let w = Write::new(BURST, "cpu.max.burst", burst);
        out.push(if quota != 0 || period != 0 { w.retry_later() } else { w });
    }
    if quota != 0 || period != 0 {
        // Any negative quota is "no limit"; a missing period is the default.
        let limit = if quota > 0 {
            quota.to_string()
        } else {
            "max".to_string()
        };
        let period = if period == 0 { DEFAULT_PERIOD } else { period };
        let field = if quota != 0 { QUOTA } else { PERIOD };
        out.push(Write::new(field, "cpu.max", format!("{limit} {period}")));
    }
    Ok(out)
}

/// `update` with only a quota or only a period keeps the other one as the
/// cgroup has it (`current` is cpu.max, "max 100000"), as runc keeps the
/// other from its saved config: cpu.max cannot be written by halves.
pub(in crate::cgroups) fn keep_current_max(r: &LinuxResources, current: Option<&str>) -> LinuxResources {
    let mut r = r.clone();
    let Some(mut cpu) = r.cpu().clone() else { return r };
    let quota = cpu.quota().unwrap_or(0);
    let period = cpu.period().unwrap_or(0);
    let mut words = current.unwrap_or("").split_whitespace();
    let (old_quota, old_period) = (words.next(), words.next().and_then(|p| p.parse::<u64>().ok()));
    if quota != 0 && period == 0 {
        cpu.set_period(old_period);
    } else if period != 0 && quota == 0 {
        cpu.set_quota(old_quota.and_then(|q| q.parse::<i64>().ok()).or(Some(-1)));
    }
    r.set_cpu(Some(cpu));
    r
}

/// The cpu.idle write (v1 and v2; a boolean, 0 or 1), split by where it
/// goes: the kernel refuses shares/weight while the group is idle, so
/// leaving idle comes before them and entering it after.
pub(in crate::cgroups) fn idle_around_weight(idle: Option<i64>) -> Result<(Option<Write>, Option<Write>)> {
    let Some(v) = idle else { return Ok((None, None)) };
    if !(0..=1).contains(&v) {
        bail!("{IDLE} ({v}) must be 0 or 1");
    }
    let w = Write::new(IDLE, "cpu.idle", v);
    Ok(if v == 0 { (Some(w), None) } else { (None, Some(w)) })
}

/// cgroup v1 cpu.shares [2, 262144] (default 1024) → cgroup v2 cpu.weight
/// [1, 10000] (default 100); 0 stays 0 ("unset"). Same as runc's
/// `ConvertCPUSharesToCgroupV2Value` (and crun): with l = log2(shares),
///     weight = ceil(10^((l² + 125·l) / 612 − 7/34))
/// a quadratic in log space through (2 → 1), (1024 → 100), (262144 → 10000),
/// so the default maps to the default. Out-of-range shares are clamped.
pub(in crate::cgroups) fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    fn cpu(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "cpu": v }))).map(|w| files(&w))
    }

    #[test]
    fn shares_conversion_matches_runc() {
        let cases = [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (10, 4),
            (100, 17),
            (512, 59),
            (1024, 100),
        ];
        for (shares, weight) in cases {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        let cases = [
            (2048, 174),
            (4096, 303),
            (262_143, 10_000),
            (262_144, 10_000),
            (u64::MAX, 10_000),
        ];
        for (shares, weight) in cases {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        // Monotonic over the whole range, and always within [1, 10000].
        let mut last = 1;
        for shares in 2..=262_144 {
            let w = shares_to_weight(shares);
            assert!(w >= last && w <= 10_000, "shares {shares} → {w}");
            last = w;
        }
    }

    #[test]
    fn shares_write_weight() {
        assert_eq!(cpu(json!({"shares": 1024})).unwrap(), pairs(&[("cpu.weight", "100")]));
        assert!(cpu(json!({"shares": 0})).unwrap().is_empty());
    }

    #[test]
    fn quota_and_period() {
        assert_eq!(
            cpu(json!({"quota": 50000, "period": 200000})).unwrap(),
            pairs(&[("cpu.max", "50000 200000")])
        );
        assert_eq!(
            cpu(json!({"quota": 50000})).unwrap(),
            pairs(&[("cpu.max", "50000 100000")])
        );
        assert_eq!(
            cpu(json!({"period": 50000})).unwrap(),
            pairs(&[("cpu.max", "max 50000")])
        );
        assert_eq!(cpu(json!({"quota": -1})).unwrap(), pairs(&[("cpu.max", "max 100000")]));
        assert_eq!(
            cpu(json!({"quota": -1, "period": 10000})).unwrap(),
            pairs(&[("cpu.max", "max 10000")])
        );
        assert!(cpu(json!({"quota": 0, "period": 0})).unwrap().is_empty());
    }

    #[test]
    fn burst_before_max_retried_after_it() {
        let w = writes(&res(json!({"cpu": {"quota": 50000, "burst": 10000}}))).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[("cpu.max.burst", "10000"), ("cpu.max", "50000 100000")])
        );
        assert!(w[0].retry_later && !w[1].retry_later);
        assert_eq!(cpu(json!({"burst": 0})).unwrap(), pairs(&[("cpu.max.burst", "0")]));
        let e = cpu(json!({"quota": 1000, "burst": 2000})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.burst (2000) is larger than linux.resources.cpu.quota (1000)"
        );
    }

    #[test]
    fn update_of_quota_or_period_alone_keeps_the_other() {
        let kept = |update: serde_json::Value, current: Option<&str>| {
            let r = keep_current_max(&res(json!({ "cpu": update })), current);
            files(&writes(&r).unwrap())
        };
        let max = |v: &str| pairs(&[("cpu.max", v)]);
        assert_eq!(
            kept(json!({"period": 900000}), Some("500000 1000000\n")),
            max("500000 900000")
        );
        assert_eq!(kept(json!({"period": 50000}), Some("max 100000\n")), max("max 50000"));
        assert_eq!(
            kept(json!({"quota": 600000}), Some("500000 900000\n")),
            max("600000 900000")
        );
        assert_eq!(kept(json!({"quota": -1}), Some("500000 900000")), max("max 900000"));
        assert_eq!(kept(json!({"quota": 30000}), None), max("30000 100000"));
        assert_eq!(kept(json!({"period": 50000}), None), max("max 50000"));
        // Both given, or neither: nothing is taken from the cgroup.
        assert_eq!(
            kept(json!({"quota": 3000, "period": 10000}), Some("1 2")),
            max("3000 10000")
        );
        assert_eq!(
            kept(json!({"shares": 1024}), Some("1 2")),
            pairs(&[("cpu.weight", "100")])
        );
    }

    #[test]
    fn idle_order_around_weight() {
        assert_eq!(
            cpu(json!({"shares": 1024, "idle": 1})).unwrap(),
            pairs(&[("cpu.weight", "100"), ("cpu.idle", "1")])
        );
        assert_eq!(
            cpu(json!({"shares": 1024, "idle": 0})).unwrap(),
            pairs(&[("cpu.idle", "0"), ("cpu.weight", "100")])
        );
        let e = cpu(json!({"idle": 2})).unwrap_err();
        assert_eq!(e.to_string(), "linux.resources.cpu.idle (2) must be 0 or 1");
    }

    #[test]
    fn realtime_is_refused() {
        let e = cpu(json!({"realtimeRuntime": 950000})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.realtimeRuntime (950000) is not supported on cgroup v2"
        );
        let e = cpu(json!({"realtimePeriod": 1000000})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.cpu.realtimePeriod (1000000) is not supported on cgroup v2"
        );
        assert!(cpu(json!({"realtimeRuntime": 0, "realtimePeriod": 0}))
            .unwrap()
            .is_empty());
    }
}
