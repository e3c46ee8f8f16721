//! blkio: weight → blkio.weight (blkio.bfq.weight where CFQ is gone),
//! leafWeight → blkio.leaf_weight, weightDevice → blkio.weight_device /
//! blkio.leaf_weight_device "MAJ:MIN W", throttle lists →
//! blkio.throttle.{read,write}_{bps,iops}_device "MAJ:MIN RATE".
//! Values as given: the kernel checks the ranges (CFQ 10..1000, BFQ 1..1000).

use anyhow::Result;
use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::v2::device;
use super::Write;

const WEIGHT: &str = "linux.resources.blockIO.weight";
const LEAF_WEIGHT: &str = "linux.resources.blockIO.leafWeight";
const WEIGHT_DEVICE: &str = "linux.resources.blockIO.weightDevice";

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(b) = r.block_io() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    // runc uses blkio.weight when it exists, else the BFQ file.
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        out.push(Write::new(WEIGHT, "blkio.weight", w).or_else("blkio.bfq.weight", w));
    }
    // Leaf weights were CFQ's, removed in kernel 5.0: optional.
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        out.push(Write::new(LEAF_WEIGHT, "blkio.leaf_weight", w).optional());
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        let dev = device(WEIGHT_DEVICE, i, wd.major(), wd.minor())?;
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let line = format!("{dev} {w}");
            out.push(Write::new(WEIGHT_DEVICE, "blkio.weight_device", &line).or_else("blkio.bfq.weight_device", line));
        }
        if let Some(w) = wd.leaf_weight().filter(|w| *w != 0) {
            out.push(Write::new(WEIGHT_DEVICE, "blkio.leaf_weight_device", format!("{dev} {w}")).optional());
        }
    }
    let throttles: [(&'static str, &Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            "linux.resources.blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "read_bps",
        ),
        (
            "linux.resources.blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "write_bps",
        ),
        (
            "linux.resources.blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "read_iops",
        ),
        (
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "write_iops",
        ),
    ];
    for (field, list, kind) in throttles {
        for (i, td) in list.iter().flatten().enumerate() {
            let dev = device(field, i, td.major(), td.minor())?;
            out.push(Write::new(
                field,
                format!("blkio.throttle.{kind}_device"),
                format!("{dev} {}", td.rate()),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    fn blkio(v: serde_json::Value) -> Result<Vec<Write>> {
        writes(&res(json!({ "blockIO": v })))
    }

    #[test]
    fn weights() {
        let w = blkio(json!({"weight": 500, "leafWeight": 300, "weightDevice": [
            {"major": 8, "minor": 0, "weight": 600, "leafWeight": 200},
            {"major": 8, "minor": 16, "leafWeight": 100}
        ]}))
        .unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("blkio.weight", "500"),
                ("?blkio.leaf_weight", "300"),
                ("blkio.weight_device", "8:0 600"),
                ("?blkio.leaf_weight_device", "8:0 200"),
                ("?blkio.leaf_weight_device", "8:16 100"),
            ])
        );
        assert_eq!(w[0].fallback, Some(("blkio.bfq.weight".to_string(), "500".to_string())));
        assert_eq!(
            w[2].fallback,
            Some(("blkio.bfq.weight_device".to_string(), "8:0 600".to_string()))
        );
        assert_eq!(w[1].fallback, None);
        assert!(blkio(json!({"weight": 0, "leafWeight": 0})).unwrap().is_empty());
    }

    #[test]
    fn throttles() {
        let w = blkio(json!({
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 0}]
        }))
        .unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("blkio.throttle.read_bps_device", "8:0 1048576"),
                ("blkio.throttle.write_bps_device", "8:0 2097152"),
                ("blkio.throttle.read_iops_device", "8:0 100"),
                ("blkio.throttle.write_iops_device", "8:0 0"),
            ])
        );
        let e = blkio(json!({"throttleWriteBpsDevice": [{"major": 8, "minor": -2, "rate": 1}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.blockIO.throttleWriteBpsDevice[0]: 8:-2 is not a device number"
        );
    }
}
