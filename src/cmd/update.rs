//! `xrun update`: change a container's cgroup limits, from a
//! linux.resources JSON document (`--resources FILE`, `-` for stdin) or
//! runc's individual flags.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cgroups;
use crate::cli::UpdateArgs;
use crate::state::{ContainerDir, Status};

/// "512", "64k", "128m", "1g" → bytes (as runc's flags accept them).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num.trim().parse().with_context(|| format!("invalid size {s:?}"))?;
    if n == -1 {
        return Ok(-1);
    }
    n.checked_mul(mult)
        .filter(|v| *v >= 0)
        .with_context(|| format!("invalid size {s:?}"))
}

/// The resources document the flags describe.
fn from_flags(a: &UpdateArgs) -> Result<Value> {
    let mut memory = serde_json::Map::new();
    if let Some(m) = &a.memory {
        memory.insert("limit".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_reservation {
        memory.insert("reservation".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_swap {
        memory.insert("swap".into(), json!(parse_bytes(m)?));
    }
    let mut cpu = serde_json::Map::new();
    for (key, value) in [
        ("shares", a.cpu_shares.map(|v| json!(v))),
        ("period", a.cpu_period.map(|v| json!(v))),
        ("quota", a.cpu_quota.map(|v| json!(v))),
        ("burst", a.cpu_burst.map(|v| json!(v))),
        ("idle", a.cpu_idle.map(|v| json!(v))),
        ("realtimePeriod", a.cpu_rt_period.map(|v| json!(v))),
        ("realtimeRuntime", a.cpu_rt_runtime.map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            cpu.insert(key.into(), v);
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = &a.cpuset_mems {
        cpu.insert("mems".into(), json!(m));
    }
    let mut doc = serde_json::Map::new();
    if !memory.is_empty() {
        doc.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        doc.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        doc.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight {
        doc.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok(Value::Object(doc))
}

fn read_resources(a: &UpdateArgs) -> Result<LinuxResources> {
    let doc = match a.resources.as_deref() {
        Some(p) if p == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read resources from stdin")?;
            serde_json::from_str(&text).context("parse resources from stdin")?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))?
        }
        None => from_flags(a)?,
    };
    let mut doc: Value = doc;
    cgroups::v2::pids::drop_unset_limit(&mut doc);
    serde_json::from_value(doc).context("resources do not match linux.resources")
}

pub fn run(root: &Path, a: &UpdateArgs) -> Result<i32> {
    let resources = read_resources(a)?;
    let dir = ContainerDir::open(root, &a.id)?;
    let saved = dir.load()?;
    if dir.status(&saved) == Status::Stopped {
        bail!("container not running");
    }
    let Some(record) = saved.cgroup.as_ref() else {
        // Rootless without cgroups: any limit has nowhere to go (runc's
        // words); no limit at all is nothing to do.
        return match cgroups::v1::writes(&resources)?.first() {
            Some((controller, _)) => Err(anyhow::anyhow!(
                "cannot set {controller} limit: container could not join or create cgroup"
            )),
            None => Ok(0),
        };
    };
    cgroups::update(record, &resources)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Value {
        use clap::Parser;
        let argv = ["xrun", "update"].iter().chain(args).chain(&["ctr"]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Some(crate::cli::Command::Update(a)) => from_flags(&a).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runc_flag_spellings_fill_the_resources() {
        let doc = flags(&[
            "--cpu-share",
            "200",
            "--cpu-burst",
            "500000",
            "--cpu-idle",
            "1",
            "--cpu-rt-period",
            "1000000",
            "--cpu-rt-runtime",
            "-1",
            "--cpu-quota",
            "-1",
            "--memory-swap",
            "-1",
            "--memory",
            "-1",
            "--pids-limit",
            "0",
        ]);
        assert_eq!(
            doc,
            json!({
                "cpu": {"shares": 200, "burst": 500000, "idle": 1, "quota": -1,
                        "realtimePeriod": 1000000, "realtimeRuntime": -1},
                "memory": {"limit": -1, "swap": -1},
                "pids": {"limit": 0}
            })
        );
        // The spelling of older xrun releases still works.
        assert_eq!(flags(&["--cpu-shares", "5"]), json!({"cpu": {"shares": 5}}));
        assert_eq!(flags(&["--cpu-idle", "-1"]), json!({"cpu": {"idle": -1}}));
    }

    #[test]
    fn sizes_parse_like_runc_flags() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("128M").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-5").is_err());
    }
}
