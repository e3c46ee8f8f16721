//! cgroup v2: which files `linux.resources` becomes, one controller per
//! module. Pure conversions: nothing here touches the filesystem, so whether
//! a file exists on this kernel is left to the caller (see `Write::optional`
//! and `Write::fallback`). Semantics follow runc's fs2 driver.

pub(in crate::cgroups) mod cpu;
pub(in crate::cgroups) mod cpuset;
pub(in crate::cgroups) mod devices;
pub(in crate::cgroups) mod hugetlb;
mod io;
pub(in crate::cgroups) mod memory;
pub mod pids;
pub(in crate::cgroups) mod rdma;
mod unified;

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

/// One file write into a cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The config field that asked for it, for error messages
    /// (e.g. "linux.resources.memory.limit").
    pub field: &'static str,
    /// File name relative to the controller's cgroup directory.
    pub file: String,
    pub value: String,
    /// The file may legitimately be missing on some kernels or setups (swap
    /// accounting off, no hugetlb reservations, an old kernel): skip the
    /// write when it does not exist. A missing non-optional file is an error.
    pub optional: bool,
    /// When `file` does not exist, write this `(file, value)` instead; that
    /// one is then required unless `optional`. Only the block IO weight uses
    /// it (runc: "io.bfq.weight" when BFQ is there, else "io.weight" with a
    /// converted value; on v1 "blkio.weight" else "blkio.bfq.weight").
    pub fallback: Option<(String, String)>,
    /// The kernel may refuse this value (EINVAL) until a later write of the
    /// same list has landed: a CFS period or burst checked against the old
    /// quota and the parent's limit, a memory limit above the old
    /// memory+swap. Such a refusal is retried once after all the others
    /// (runc's order for these pairs).
    pub retry_later: bool,
}

impl Write {
    pub(in crate::cgroups) fn new(field: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
        Write {
            field,
            file: file.into(),
            value: value.to_string(),
            optional: false,
            fallback: None,
            retry_later: false,
        }
    }

    pub(in crate::cgroups) fn retry_later(mut self) -> Write {
        self.retry_later = true;
        self
    }

    pub(in crate::cgroups) fn optional(mut self) -> Write {
        self.optional = true;
        self
    }

    pub(in crate::cgroups) fn or_else(mut self, file: impl Into<String>, value: impl ToString) -> Write {
        self.fallback = Some((file.into(), value.to_string()));
        self
    }
}

/// Controllers with a converter, in the order their files are written:
/// cpuset first (a placement constraint), then the limits.
const ORDER: [&str; 7] = ["cpuset", "cpu", "memory", "pids", "io", "hugetlb", "rdma"];

/// Controllers a `unified` key may name; anything else is left to the kernel.
const CONTROLLERS: [&str; 8] = ["cpuset", "cpu", "memory", "pids", "io", "hugetlb", "rdma", "misc"];

/// Every cgroup v2 file to write for `linux.resources`, in order; `unified`
/// keys come last, so they override what the typed fields wrote.
pub fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for controller in ORDER {
        out.extend(writes_for(r, controller)?);
    }
    out.extend(unified::writes(r)?);
    Ok(out)
}

/// The files one controller gets from the typed fields (no `unified` keys):
/// for hybrid hosts, where only some controllers are on cgroup2.
pub fn writes_for(r: &LinuxResources, controller: &str) -> Result<Vec<Write>> {
    match controller {
        "cpuset" => cpuset::writes(r),
        "cpu" => cpu::writes(r),
        "memory" => memory::writes(r),
        "pids" => Ok(pids::writes(r)),
        "io" => io::writes(r),
        "hugetlb" => hugetlb::writes(r),
        "rdma" => rdma::writes(r),
        _ => Ok(Vec::new()),
    }
}

/// Controllers that must be enabled in the parent's cgroup.subtree_control
/// for `writes(r)`: those with at least one write, plus those named by
/// `unified` keys. A config `writes` rejects contributes what it can.
pub fn controllers_needed(r: &LinuxResources) -> Vec<&'static str> {
    let from_unified = unified::controllers(r);
    CONTROLLERS
        .into_iter()
        .filter(|c| from_unified.contains(c) || writes_for(r, c).is_ok_and(|w| !w.is_empty()))
        .collect()
}

/// "MAJ:MIN" for a device in a list field, refusing negative numbers.
pub(in crate::cgroups) fn device(field: &str, index: usize, major: i64, minor: i64) -> Result<String> {
    if major < 0 || minor < 0 {
        bail!("{field}[{index}]: {major}:{minor} is not a device number");
    }
    Ok(format!("{major}:{minor}"))
}

/// A name written as the first word of a line (network interface, RDMA
/// device): non-empty, no whitespace or control characters.
pub(in crate::cgroups) fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{what} {name:?} is not a valid name");
    }
    Ok(())
}

#[cfg(test)]
pub(in crate::cgroups) mod test_util {
    use super::Write;
    use oci_spec::runtime::LinuxResources;

    pub fn res(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    /// (file, value) of each write, optional ones marked with a leading '?'.
    pub fn files(writes: &[Write]) -> Vec<(String, String)> {
        writes
            .iter()
            .map(|w| {
                (
                    format!("{}{}", if w.optional { "?" } else { "" }, w.file),
                    w.value.clone(),
                )
            })
            .collect()
    }

    pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_resources_write_nothing() {
        assert!(writes(&res(json!({}))).unwrap().is_empty());
        assert!(controllers_needed(&res(json!({}))).is_empty());
    }

    #[test]
    fn order_is_cpuset_first_unified_last() {
        let r = res(json!({
            "pids": {"limit": 10},
            "memory": {"limit": 1024},
            "cpu": {"shares": 1024, "cpus": "0-1"},
            "unified": {"memory.high": "512"}
        }));
        assert_eq!(
            files(&writes(&r).unwrap()),
            pairs(&[
                ("cpuset.cpus", "0-1"),
                ("cpu.weight", "100"),
                ("memory.max", "1024"),
                ("pids.max", "10"),
                ("memory.high", "512"),
            ])
        );
    }

    #[test]
    fn controllers_from_fields_and_unified_keys() {
        let r = res(json!({
            "cpu": {"cpus": "0"},
            "pids": {"limit": 5},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "unified": {"misc.max": "res_a 1", "cgroup.max.depth": "3", "io.pressure": "x", "foo.bar": "1"}
        }));
        assert_eq!(controllers_needed(&r), vec!["cpuset", "pids", "hugetlb", "misc"]);
    }

    #[test]
    fn ignored_fields_need_no_controller() {
        // v2 ignores swappiness, disableOOMKiller, leafWeight, network and
        // device rules (those are an eBPF program, not files).
        let r = res(json!({
            "memory": {"swappiness": 10, "disableOOMKiller": true, "kernel": 1, "kernelTCP": 1},
            "blockIO": {"leafWeight": 300},
            "network": {"classID": 1},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        assert!(writes(&r).unwrap().is_empty());
        assert!(controllers_needed(&r).is_empty());
    }

    #[test]
    fn rejected_config_still_reports_other_controllers() {
        let r = res(json!({"cpu": {"realtimeRuntime": 5}, "pids": {"limit": 3}}));
        assert!(writes(&r).is_err());
        assert_eq!(controllers_needed(&r), vec!["pids"]);
    }

    #[test]
    fn writes_for_one_controller() {
        let r = res(json!({"pids": {"limit": 3}, "hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}]}));
        assert_eq!(
            files(&writes_for(&r, "hugetlb").unwrap()),
            pairs(&[
                ("hugetlb.1GB.max", "1073741824"),
                ("?hugetlb.1GB.rsvd.max", "1073741824")
            ])
        );
        assert!(writes_for(&r, "nonesuch").unwrap().is_empty());
    }

    #[test]
    fn device_numbers() {
        assert_eq!(device("f", 0, 8, 16).unwrap(), "8:16");
        let e = device("linux.resources.blockIO.weightDevice", 2, -1, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.blockIO.weightDevice[2]: -1:0 is not a device number"
        );
    }
}
