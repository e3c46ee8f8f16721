//! The unit properties a container's scope is started (or updated) with:
//! the fixed ones runc sets, the resource limits systemd understands (so it
//! keeps them when it re-applies the unit), and `org.systemd.property.*`
//! annotations. Limits come from the same file writes the cgroupfs driver
//! makes, so both drivers convert and validate alike.

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::LinuxResources;

use super::dbus::Value;
use super::unit::Unit;
use super::variant;

pub type Property = (String, Value);

/// systemd's "infinity" for limits and USec values.
const INFINITY: u64 = u64::MAX;

fn prop(name: &str, value: Value) -> Property {
    (name.to_string(), value)
}

/// The scope's process: the container's init.
pub fn pids(pid: i32) -> Property {
    prop("PIDs", Value::Array("u".into(), vec![Value::U32(pid as u32)]))
}

/// What StartTransientUnit gets besides the limits.
pub fn base(unit: &Unit, id: &str, pid: Option<i32>, legacy: bool) -> Vec<Property> {
    let mut out = vec![prop("Description", Value::Str(format!("xrun container {id}")))];
    if unit.is_slice() {
        // A slice's parent is given by Wants=, a scope's by Slice= (runc).
        out.push(prop(
            "Wants",
            Value::Array("s".into(), vec![Value::Str(unit.slice.clone())]),
        ));
    } else {
        out.push(prop("Slice", Value::Str(unit.slice.clone())));
        out.push(prop("Delegate", Value::Bool(true)));
    }
    out.extend(pid.map(pids));
    let io = if legacy { "BlockIOAccounting" } else { "IOAccounting" };
    for name in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        out.push(prop(name, Value::Bool(true)));
    }
    out.push(prop("DefaultDependencies", Value::Bool(false)));
    out
}

/// systemd keeps CPU quota as a percentage of a CPU, i.e. in steps of 10 ms
/// per second: a quota between steps is rounded up, here and in the file
/// written later, so that systemd and cgroupfs agree (as runc does).
pub fn round_quota(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    let Some(mut cpu) = r.cpu().clone() else { return r };
    if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
        let period = cpu.period().filter(|p| *p != 0).unwrap_or(100_000);
        let per_sec = quota_per_sec(quota as u64, period);
        if per_sec * period / 1_000_000 != quota as u64 {
            cpu.set_quota(Some((per_sec * period / 1_000_000) as i64));
            r.set_cpu(Some(cpu));
        }
    }
    r
}

/// CPUQuotaPerSecUSec for a quota per period, rounded up to 10 ms.
fn quota_per_sec(quota: u64, period: u64) -> u64 {
    let per_sec = quota.saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// The limits among `writes` (file, value) that systemd has properties for;
/// `r` gives the CPU quota and period, which are one property on both
/// hierarchies. The files are written afterwards all the same.
pub fn limits<'a>(r: &LinuxResources, writes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    for (file, value) in writes {
        let name = match file {
            "memory.max" => "MemoryMax",
            "memory.low" => "MemoryLow",
            "memory.swap.max" => "MemorySwapMax",
            "memory.limit_in_bytes" => "MemoryLimit",
            "cpu.weight" => "CPUWeight",
            "cpu.shares" => "CPUShares",
            "pids.max" => "TasksMax",
            "blkio.weight" => "BlockIOWeight",
            "cpuset.cpus" | "cpuset.mems" => {
                let name = if file == "cpuset.cpus" {
                    "AllowedCPUs"
                } else {
                    "AllowedMemoryNodes"
                };
                let bits = list_to_bits(value).map_err(|e| anyhow!("{file} {value:?}: {e}"))?;
                out.push(prop(
                    name,
                    Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect()),
                ));
                continue;
            }
            _ => continue,
        };
        let n = match value.trim() {
            "max" | "-1" => INFINITY,
            v => v.parse::<u64>().map_err(|_| anyhow!("{file}: {v:?} is not a number"))?,
        };
        out.push(prop(name, Value::U64(n)));
    }
    if let Some(cpu) = r.cpu() {
        let quota = cpu.quota().unwrap_or(0);
        let period = cpu.period().unwrap_or(0);
        if period != 0 {
            out.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if quota != 0 || period != 0 {
            let per_sec = if quota > 0 {
                quota_per_sec(quota as u64, if period == 0 { 100_000 } else { period })
            } else {
                INFINITY
            };
            out.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
        }
    }
    Ok(out)
}

/// The device rules as systemd's DevicePolicy and DeviceAllow (runc sends
/// them too, so systemd's view of the unit matches): `entries` None is
/// "auto", no device program of systemd's.
pub fn devices(entries: Option<Vec<(String, String)>>) -> Vec<Property> {
    let Some(entries) = entries else {
        return vec![prop("DevicePolicy", Value::Str("auto".into()))];
    };
    let allow = entries
        .into_iter()
        .map(|(path, access)| Value::Struct(vec![Value::Str(path), Value::Str(access)]))
        .collect();
    vec![
        prop("DevicePolicy", Value::Str("strict".into())),
        prop("DeviceAllow", Value::Array("(ss)".into(), allow)),
    ]
}

/// A cpu/node list ("0-3,8") as systemd's byte mask: bit i of byte j is
/// number 8j+i.
fn list_to_bits(list: &str) -> Result<Vec<u8>> {
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| anyhow!("invalid range {part:?}"));
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi || hi >= 8192 {
            bail!("invalid range {part:?}");
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

/// `org.systemd.property.NAME` annotations as properties: NAME is letters
/// only, the value a GVariant text ("uint64 123", "'str'", "true"); a
/// lowercase "...Sec" name is converted to "...USec", as runc does.
pub fn from_annotations<'a>(annotations: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<Vec<Property>> {
    const PREFIX: &str = "org.systemd.property.";
    let mut out = Vec::new();
    for (key, text) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else { continue };
        if name.len() < 3 {
            bail!("annotation {key} name incorrect: too short");
        }
        if !name.bytes().all(|c| c.is_ascii_alphabetic()) {
            bail!("annotation {key} name incorrect: contains non-alphabetic character");
        }
        let value = variant::parse(text).map_err(|e| anyhow!("annotation {key}={text} value parse error: {e}"))?;
        match name.strip_suffix("Sec") {
            Some(stem) if stem.ends_with(|c: char| c.is_ascii_lowercase()) => {
                let secs = seconds(&value)
                    .ok_or_else(|| anyhow!("annotation {key}={text} value parse error: not a number"))?;
                out.push(prop(&format!("{stem}USec"), Value::U64(secs)));
            }
            _ => out.push(prop(name, value)),
        }
    }
    Ok(out)
}

/// A number of seconds as microseconds.
fn seconds(v: &Value) -> Option<u64> {
    const M: u64 = 1_000_000;
    Some(match *v {
        Value::Byte(n) => n as u64 * M,
        Value::I32(n) => (n as u64).wrapping_mul(M),
        Value::U32(n) => n as u64 * M,
        Value::I64(n) => (n as u64).wrapping_mul(M),
        Value::U64(n) => n.wrapping_mul(M),
        Value::Double(d) => (d * M as f64) as u64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::v2::test_util::res;
    use serde_json::json;

    fn find<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    #[test]
    fn a_scope_is_delegated_into_its_slice_with_its_pid() {
        let unit = Unit::from_cgroups_path("system.slice:p:n", "c1", false).unwrap();
        let props = base(&unit, "c1", Some(42), false);
        assert_eq!(find(&props, "Slice"), Some(&Value::Str("system.slice".into())));
        assert_eq!(find(&props, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(
            find(&props, "PIDs"),
            Some(&Value::Array("u".into(), vec![Value::U32(42)]))
        );
        assert_eq!(find(&props, "DefaultDependencies"), Some(&Value::Bool(false)));
        assert_eq!(find(&props, "IOAccounting"), Some(&Value::Bool(true)));
        let legacy = base(&unit, "c1", Some(42), true);
        assert!(find(&legacy, "BlockIOAccounting").is_some() && find(&legacy, "IOAccounting").is_none());
        let slice = Unit::from_cgroups_path("system.slice::x.slice", "c1", false).unwrap();
        let props = base(&slice, "c1", None, false);
        assert!(find(&props, "Delegate").is_none() && find(&props, "PIDs").is_none());
        assert!(find(&props, "Wants").is_some());
    }

    #[test]
    fn quota_is_rounded_up_to_ten_milliseconds_per_second() {
        assert_eq!(quota_per_sec(50_000, 100_000), 500_000);
        assert_eq!(quota_per_sec(12_345, 100_000), 130_000);
        let r = round_quota(&res(json!({"cpu": {"quota": 12345, "period": 100000}})));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(13_000));
        let r = round_quota(&res(json!({"cpu": {"quota": 20000}})));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(20_000));
        let props = limits(&r, []).unwrap();
        assert_eq!(find(&props, "CPUQuotaPerSecUSec"), Some(&Value::U64(200_000)));
        assert!(find(&props, "CPUQuotaPeriodUSec").is_none());
        let unlimited = res(json!({"cpu": {"quota": -1, "period": 50000}}));
        let props = limits(&unlimited, []).unwrap();
        assert_eq!(find(&props, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&props, "CPUQuotaPeriodUSec"), Some(&Value::U64(50_000)));
    }

    #[test]
    fn limits_follow_the_files() {
        let r = res(json!({}));
        let writes = [
            ("memory.max", "1048576"),
            ("memory.swap.max", "max"),
            ("cpu.weight", "39"),
            ("pids.max", "max"),
            ("cpuset.cpus", "0-2,9"),
            ("cpuset.mems", "0"),
            ("io.weight", "100"),
        ];
        let props = limits(&r, writes).unwrap();
        assert_eq!(find(&props, "MemoryMax"), Some(&Value::U64(1_048_576)));
        assert_eq!(find(&props, "MemorySwapMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&props, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(find(&props, "TasksMax"), Some(&Value::U64(u64::MAX)));
        let bytes = |v: &[u8]| Value::Array("y".into(), v.iter().map(|b| Value::Byte(*b)).collect());
        assert_eq!(find(&props, "AllowedCPUs"), Some(&bytes(&[0b0000_0111, 0b0000_0010])));
        assert_eq!(find(&props, "AllowedMemoryNodes"), Some(&bytes(&[1])));
        assert_eq!(props.len(), 6, "io.weight has no property: {props:?}");
        assert!(limits(&r, [("cpuset.cpus", "3-1")]).is_err());
    }

    #[test]
    fn annotations_become_properties() {
        let a = |k: &str, v: &str| (format!("org.systemd.property.{k}"), v.to_string());
        let given = [
            a("TimeoutStopUSec", "uint64 123456789"),
            a("CollectMode", "'inactive-or-failed'"),
            a("TimeoutStopSec", "2"),
            ("other".to_string(), "x".to_string()),
        ];
        let props = from_annotations(given.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(props.len(), 3);
        assert_eq!(props[0], prop("TimeoutStopUSec", Value::U64(123_456_789)));
        assert_eq!(props[1], prop("CollectMode", Value::Str("inactive-or-failed".into())));
        assert_eq!(props[2], prop("TimeoutStopUSec", Value::U64(2_000_000)));
        for (bad, why) in [
            (
                a("Ab", "1"),
                "annotation org.systemd.property.Ab name incorrect: too short",
            ),
            (
                a("Foo1", "1"),
                "annotation org.systemd.property.Foo1 name incorrect: contains non-alphabetic character",
            ),
        ] {
            let e = from_annotations([(&bad.0, &bad.1)]).unwrap_err().to_string();
            assert_eq!(e, why);
        }
        let bad = a("CollectMode", "'unterminated");
        let e = from_annotations([(&bad.0, &bad.1)]).unwrap_err().to_string();
        assert!(
            e.starts_with("annotation org.systemd.property.CollectMode='unterminated value parse error: "),
            "{e}"
        );
    }
}
