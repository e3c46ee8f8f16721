//! rdma: per device → one rdma.max line "DEV hca_handle=N hca_object=M"
//! (v1 and v2 alike). Devices in name order; one with no limit is skipped.

use std::collections::BTreeMap;

use anyhow::Result;
use oci_spec::runtime::LinuxResources;

use super::{check_name, Write};

const RDMA: &str = "linux.resources.rdma";

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(rdma) = r.rdma() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (dev, limits) in rdma.iter().collect::<BTreeMap<_, _>>() {
        check_name("linux.resources.rdma device", dev)?;
        let mut line = dev.clone();
        if let Some(n) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={n}"));
        }
        if let Some(n) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={n}"));
        }
        if line.len() > dev.len() {
            out.push(Write::new(RDMA, "rdma.max", line));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn devices_in_name_order() {
        let r = res(json!({"rdma": {
            "mlx5_1": {"hcaHandles": 3},
            "mlx4_0": {"hcaHandles": 2, "hcaObjects": 100},
            "mlx5_0": {"hcaObjects": 10},
            "none": {}
        }}));
        assert_eq!(
            files(&writes(&r).unwrap()),
            pairs(&[
                ("rdma.max", "mlx4_0 hca_handle=2 hca_object=100"),
                ("rdma.max", "mlx5_0 hca_object=10"),
                ("rdma.max", "mlx5_1 hca_handle=3"),
            ])
        );
    }

    #[test]
    fn bad_device_name() {
        let e = writes(&res(json!({"rdma": {"mlx 0": {"hcaHandles": 1}}}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.rdma device \"mlx 0\" is not a valid name"
        );
    }
}
