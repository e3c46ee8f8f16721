//! cgroup v1: which files `linux.resources` becomes, per controller
//! hierarchy, one controller per module (cpuset, pids and rdma files are
//! the same as v2's and come from there). Semantics follow runc's fs driver.

mod blkio;
mod cpu;
mod devices;
mod hugetlb;
mod memory;
mod net;

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::v2::{self, Write};

/// Every cgroup v1 file to write for `linux.resources`, each with the
/// controller (hierarchy) it belongs to, in runc's subsystem order.
pub fn writes(r: &LinuxResources) -> Result<Vec<(&'static str, Write)>> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("invalid configuration: linux.resources.unified needs cgroup v2, and this host uses cgroup v1");
    }
    let mut out = Vec::new();
    let mut add = |controller: &'static str, writes: Vec<Write>| {
        out.extend(writes.into_iter().map(|w| (controller, w)));
    };
    add("cpuset", v2::cpuset::writes(r)?);
    add("devices", devices::writes(r)?);
    add("memory", memory::writes(r)?);
    add("cpu", cpu::writes(r)?);
    add("pids", v2::pids::writes(r));
    add("blkio", blkio::writes(r)?);
    add("hugetlb", hugetlb::writes(r)?);
    add("net_cls", net::classid(r));
    add("net_prio", net::priorities(r)?);
    add("rdma", v2::rdma::writes(r)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    fn all(r: serde_json::Value) -> Result<Vec<(&'static str, String, String)>> {
        let w = writes(&res(r))?;
        Ok(w.into_iter().map(|(c, w)| (c, w.file, w.value)).collect())
    }

    #[test]
    fn empty_resources_write_nothing() {
        assert!(all(json!({})).unwrap().is_empty());
    }

    #[test]
    fn controllers_and_order() {
        let w = all(json!({
            "rdma": {"mlx4_0": {"hcaHandles": 1}},
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
            "blockIO": {"weight": 100},
            "pids": {"limit": 64},
            "cpu": {"shares": 512, "mems": "0"},
            "memory": {"limit": 4096},
            "devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
        }))
        .unwrap();
        let controllers: Vec<&str> = w.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(
            controllers,
            [
                "cpuset", "devices", "devices", "memory", "cpu", "pids", "blkio", "hugetlb", "hugetlb", "net_cls",
                "net_prio", "rdma"
            ]
        );
        assert_eq!(w[0], ("cpuset", "cpuset.mems".to_string(), "0".to_string()));
        assert_eq!(w[5], ("pids", "pids.max".to_string(), "64".to_string()));
        assert_eq!(
            w[11],
            ("rdma", "rdma.max".to_string(), "mlx4_0 hca_handle=1".to_string())
        );
    }

    #[test]
    fn unified_is_refused() {
        let e = all(json!({"unified": {"memory.high": "1"}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: linux.resources.unified needs cgroup v2, and this host uses cgroup v1"
        );
        assert!(all(json!({"unified": {}})).unwrap().is_empty());
    }

    #[test]
    fn network_and_leaf_weight_are_v1_only() {
        let w = all(json!({"network": {"classID": 16}, "blockIO": {"leafWeight": 300}})).unwrap();
        assert_eq!(
            w,
            [
                ("blkio", "blkio.leaf_weight".to_string(), "300".to_string()),
                ("net_cls", "net_cls.classid".to_string(), "16".to_string()),
            ]
        );
    }
}
