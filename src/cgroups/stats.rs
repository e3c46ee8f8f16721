//! Resource statistics of a container's cgroup, for `xrun events`.
//!
//! The types serialise to the JSON runc prints in `runc events` (its
//! `types.Stats`), which containerd's runc shim parses: the same field
//! names, the same units (CPU time in nanoseconds) and the same choice of
//! which zero values are left out. Files are read from cgroup v2 (unified)
//! or from the v1 hierarchy of each controller (legacy, and hybrid, where a
//! controller missing from v1 may be found on the unified mount). A file the
//! kernel does not offer leaves its fields at zero, as it does for runc.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::layout::{Kind, ROOT};
use super::Record;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

// -- parsers -------------------------------------------------------------------

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events,
/// memory.oom_control); lines that do not parse are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (k, v) = (f.next()?, f.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A single value; "max" (unlimited) reads as u64::MAX.
pub fn parse_value(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        s => s.parse().ok(),
    }
}

/// cpuacct.usage_percpu: one value per CPU on a single line.
pub fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

/// cpuacct.usage_all: a "cpu user system" header, then one line per CPU.
/// Returns (kernel, user) per CPU.
pub fn parse_usage_all(text: &str) -> (Vec<u64>, Vec<u64>) {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<u64> = line.split_whitespace().filter_map(|s| s.parse().ok()).collect();
        if let [_, u, s] = f[..] {
            user.push(u);
            kernel.push(s);
        }
    }
    (kernel, user)
}

fn major_minor(dev: &str) -> Option<(u64, u64)> {
    let (a, b) = dev.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v1 blkio.*_recursive: "MAJ:MIN Op value" lines plus a "Total value".
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (major, minor) = major_minor(dev)?;
            Some(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v2 io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..",
/// as (service bytes, serviced) entries with runc's op names.
pub fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(major_minor) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "dbytes" => (&mut bytes, "Discard"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                "dios" => (&mut ios, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

// -- where each controller's files are ---------------------------------------

#[derive(Clone, Copy)]
enum Src<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// The v1 directory of a controller: the one under /sys/fs/cgroup/<mount>
/// whose mount name lists it ("cpu,cpuacct" holds both).
fn v1_dir<'a>(rec: &'a Record, controller: &str) -> Option<&'a Path> {
    rec.v1
        .iter()
        .find(|d| {
            d.strip_prefix(ROOT)
                .ok()
                .and_then(|rel| rel.components().next())
                .is_some_and(|c| c.as_os_str().to_string_lossy().split(',').any(|n| n == controller))
        })
        .map(|d| d.as_path())
}

/// Where to read a controller's statistics from; `probe` is a file the
/// cgroup2 directory has when the controller is usable there.
fn source<'a>(rec: &'a Record, controller: &str, probe: &str) -> Option<Src<'a>> {
    let unified = rec.unified.as_deref();
    if rec.kind == Kind::Unified {
        return unified.map(Src::V2);
    }
    v1_dir(rec, controller)
        .map(Src::V1)
        .or_else(|| unified.filter(|u| u.join(probe).exists()).map(Src::V2))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file).as_deref().and_then(parse_value)
}

fn read_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file).as_deref().map(parse_flat_keyed).unwrap_or_default()
}

// -- collection ------------------------------------------------------------------

/// Reads every statistic available for the container's cgroup.
pub fn collect(rec: &Record) -> Stats {
    let mut s = Stats::default();
    cpu(rec, &mut s.cpu);
    memory(rec, &mut s.memory);
    pids(rec, &mut s.pids);
    blkio(rec, &mut s.blkio);
    hugetlb(rec, &mut s.hugetlb);
    s
}

fn cpu(rec: &Record, cpu: &mut Cpu) {
    match source(rec, "cpuacct", "cpu.stat") {
        Some(Src::V2(d)) => {
            let st = read_keyed(d, "cpu.stat");
            let g = |k: &str| st.get(k).copied().unwrap_or(0);
            cpu.usage.total = g("usage_usec") * 1000;
            cpu.usage.user = g("user_usec") * 1000;
            cpu.usage.kernel = g("system_usec") * 1000;
            cpu.throttling.periods = g("nr_periods");
            cpu.throttling.throttled_periods = g("nr_throttled");
            cpu.throttling.throttled_time = g("throttled_usec") * 1000;
            return;
        }
        Some(Src::V1(d)) => {
            cpu.usage.total = read_u64(d, "cpuacct.usage").unwrap_or(0);
            cpu.usage.percpu = read(d, "cpuacct.usage_percpu")
                .as_deref()
                .map(parse_percpu)
                .unwrap_or_default();
            if let Some(all) = read(d, "cpuacct.usage_all") {
                (cpu.usage.percpu_kernel, cpu.usage.percpu_user) = parse_usage_all(&all);
            }
            let st = read_keyed(d, "cpuacct.stat");
            let ns_per_tick = 1_000_000_000 / crate::sys::clock_ticks();
            cpu.usage.user = st.get("user").copied().unwrap_or(0) * ns_per_tick;
            cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * ns_per_tick;
        }
        None => {}
    }
    if let Some(Src::V1(d)) = source(rec, "cpu", "cpu.stat") {
        let st = read_keyed(d, "cpu.stat");
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        cpu.throttling.periods = g("nr_periods");
        cpu.throttling.throttled_periods = g("nr_throttled");
        cpu.throttling.throttled_time = g("throttled_time");
    }
}

fn v1_entry(d: &Path, prefix: &str) -> MemoryEntry {
    let f = |name: &str| read_u64(d, &format!("{prefix}.{name}")).unwrap_or(0);
    MemoryEntry {
        limit: f("limit_in_bytes"),
        usage: f("usage_in_bytes"),
        max: f("max_usage_in_bytes"),
        failcnt: f("failcnt"),
    }
}

fn memory(rec: &Record, mem: &mut Memory) {
    match source(rec, "memory", "memory.current") {
        Some(Src::V2(d)) => {
            let events = read_keyed(d, "memory.events");
            mem.usage = MemoryEntry {
                usage: read_u64(d, "memory.current").unwrap_or(0),
                limit: read_u64(d, "memory.max").unwrap_or(u64::MAX),
                max: read_u64(d, "memory.peak").unwrap_or(0),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            // v2 counts swap alone; v1 (and runc's report) memory plus swap.
            if let Some(swap) = read_u64(d, "memory.swap.current") {
                let limit = read_u64(d, "memory.swap.max").unwrap_or(u64::MAX);
                mem.swap = MemoryEntry {
                    usage: swap + mem.usage.usage,
                    limit: if limit == u64::MAX {
                        limit
                    } else {
                        limit.saturating_add(mem.usage.limit)
                    },
                    max: read_u64(d, "memory.swap.peak").unwrap_or(0),
                    failcnt: read_keyed(d, "memory.swap.events").get("fail").copied().unwrap_or(0),
                };
            }
            mem.raw = read_keyed(d, "memory.stat");
            mem.cache = mem.raw.get("file").copied().unwrap_or(0);
        }
        Some(Src::V1(d)) => {
            mem.usage = v1_entry(d, "memory");
            if d.join("memory.memsw.usage_in_bytes").exists() {
                mem.swap = v1_entry(d, "memory.memsw");
            }
            mem.kernel = v1_entry(d, "memory.kmem");
            mem.kernel_tcp = v1_entry(d, "memory.kmem.tcp");
            mem.raw = read_keyed(d, "memory.stat");
            mem.cache = mem.raw.get("cache").copied().unwrap_or(0);
        }
        None => {}
    }
}

fn pids(rec: &Record, pids: &mut Pids) {
    let d = match source(rec, "pids", "pids.current") {
        Some(Src::V1(d) | Src::V2(d)) => d,
        None => return,
    };
    pids.current = read_u64(d, "pids.current").unwrap_or(0);
    pids.limit = match read_u64(d, "pids.max") {
        Some(u64::MAX) | None => 0,
        Some(n) => n,
    };
}

fn blkio(rec: &Record, b: &mut Blkio) {
    match source(rec, "blkio", "io.stat") {
        Some(Src::V2(d)) => {
            if let Some(text) = read(d, "io.stat") {
                (b.io_service_bytes_recursive, b.io_serviced_recursive) = parse_io_stat(&text);
            }
        }
        Some(Src::V1(d)) => {
            // The CFQ/BFQ files when that scheduler is in use, else the
            // throttle ones (which count every request).
            let pick = |names: &[&str]| {
                names
                    .iter()
                    .filter_map(|n| read(d, n))
                    .map(|t| parse_blkio_v1(&t))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default()
            };
            b.io_service_bytes_recursive = pick(&[
                "blkio.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ]);
            b.io_serviced_recursive = pick(&[
                "blkio.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.throttle.io_serviced_recursive",
            ]);
        }
        None => {}
    }
}

/// The page sizes ("2MB") for which `dir` has hugetlb.<size>.<suffix>.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    sizes.sort();
    sizes
}

fn hugetlb(rec: &Record, out: &mut BTreeMap<String, Hugetlb>) {
    let unified_has = rec.kind == Kind::Unified
        || rec
            .unified
            .as_deref()
            .and_then(|u| read(u, "cgroup.controllers"))
            .is_some_and(|c| c.split_whitespace().any(|n| n == "hugetlb"));
    let src = match v1_dir(rec, "hugetlb").filter(|_| rec.kind != Kind::Unified) {
        Some(d) => Some(Src::V1(d)),
        None => rec.unified.as_deref().filter(|_| unified_has).map(Src::V2),
    };
    match src {
        Some(Src::V2(d)) => {
            // v2 keeps no high-water mark (hugetlb.<size>.max is the
            // limit, not runc's "max"); the reservation counters, which
            // include pages reserved but not yet faulted, are preferred
            // when the kernel has them, as runc does.
            for size in hugetlb_sizes(d, ".current") {
                let rsvd = format!("hugetlb.{size}.rsvd");
                let prefix = if d.join(format!("{rsvd}.current")).exists() {
                    rsvd
                } else {
                    format!("hugetlb.{size}")
                };
                let entry = Hugetlb {
                    usage: read_u64(d, &format!("{prefix}.current")).unwrap_or(0),
                    max: 0,
                    failcnt: read_keyed(d, &format!("{prefix}.events"))
                        .get("max")
                        .copied()
                        .unwrap_or(0),
                };
                out.insert(size, entry);
            }
        }
        Some(Src::V1(d)) => {
            for size in hugetlb_sizes(d, ".usage_in_bytes") {
                let f = |n: &str| read_u64(d, &format!("hugetlb.{size}.{n}")).unwrap_or(0);
                let entry = Hugetlb {
                    usage: f("usage_in_bytes"),
                    max: f("max_usage_in_bytes"),
                    failcnt: f("failcnt"),
                };
                out.insert(size, entry);
            }
        }
        None => {}
    }
}

/// How many processes of the cgroup the kernel's OOM killer has killed
/// (v2 memory.events, v1 memory.oom_control); None if not reported.
pub fn oom_kills(rec: &Record) -> Option<u64> {
    let (d, file) = match source(rec, "memory", "memory.events")? {
        Src::V2(d) => (d, "memory.events"),
        Src::V1(d) => (d, "memory.oom_control"),
    };
    read_keyed(d, file).get("oom_kill").copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn stats_memory_stat_is_parsed() {
        let m = parse_flat_keyed("cache 4096\nrss 8192\nbogus\nhierarchical_memory_limit 9223372036854771712\nx y\n");
        assert_eq!(m.len(), 3);
        assert_eq!(m["cache"], 4096);
        assert_eq!(m["rss"], 8192);
        assert_eq!(m["hierarchical_memory_limit"], 9223372036854771712);
    }

    #[test]
    fn stats_cpu_stat_is_parsed() {
        let m = parse_flat_keyed(
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n",
        );
        assert_eq!(m["usage_usec"], 1500);
        assert_eq!(m["nr_throttled"], 2);
        assert_eq!(m["throttled_usec"], 30);
    }

    #[test]
    fn stats_percpu_lines_are_parsed() {
        assert_eq!(parse_percpu("123 456 0 \n"), vec![123, 456, 0]);
        assert!(parse_percpu("\n").is_empty());
        let (kernel, user) = parse_usage_all("cpu user system\n0 100 20\n1 300 40\n");
        assert_eq!(user, vec![100, 300]);
        assert_eq!(kernel, vec![20, 40]);
    }

    #[test]
    fn stats_values_and_max() {
        assert_eq!(parse_value("max\n"), Some(u64::MAX));
        assert_eq!(parse_value(" 42\n"), Some(42));
        assert_eq!(parse_value("x"), None);
    }

    #[test]
    fn stats_blkio_and_io_stat_are_parsed() {
        let v1 = parse_blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(
            (v1[0].major, v1[0].minor, v1[0].op.as_str(), v1[0].value),
            (8, 0, "Read", 4096)
        );
        let (bytes, ios) = parse_io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(bytes.len(), 3);
        assert_eq!((bytes[1].op.as_str(), bytes[1].value), ("Write", 20));
        assert_eq!((ios[0].major, ios[0].minor, ios[0].value), (259, 0, 1));
    }

    #[test]
    fn stats_v1_dirs_are_matched_by_controller() {
        let rec = Record {
            kind: Kind::Hybrid,
            unified: Some(PathBuf::from("/sys/fs/cgroup/unified/x")),
            v1: vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"),
                PathBuf::from("/sys/fs/cgroup/memory/x"),
                PathBuf::from("/sys/fs/cgroup/pids/x"),
            ],
            freezer: None,
            created: Vec::new(),
            systemd: None,
        };
        assert_eq!(v1_dir(&rec, "cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/x")));
        assert_eq!(v1_dir(&rec, "cpu"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/x")));
        assert_eq!(v1_dir(&rec, "memory"), Some(Path::new("/sys/fs/cgroup/memory/x")));
        assert_eq!(v1_dir(&rec, "mem"), None);
        assert_eq!(v1_dir(&rec, "hugetlb"), None);
    }

    #[test]
    fn stats_json_uses_runc_names() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.memory.usage.usage = 7;
        s.memory.raw.insert("cache".into(), 1);
        s.pids.current = 1;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 5);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("percpu").is_none());
        assert!(v["cpu"]["throttling"].is_object());
        assert_eq!(v["memory"]["usage"]["usage"], 7);
        assert_eq!(v["memory"]["usage"]["limit"], 0);
        assert!(v["memory"]["kernelTCP"].is_object());
        assert_eq!(v["memory"]["raw"]["cache"], 1);
        assert_eq!(v["pids"]["current"], 1);
        assert!(v["pids"].get("limit").is_none());
        assert!(v["hugetlb"].is_object());
    }
}
