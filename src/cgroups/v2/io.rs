//! io (OCI blockIO): weight → io.bfq.weight, or io.weight when BFQ is not
//! there; weightDevice → io.bfq.weight "MAJ:MIN W"; throttle lists → io.max
//! "MAJ:MIN rbps=N" (wbps, riops, wiops). leafWeight (CFQ only) is ignored.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxResources, LinuxThrottleDevice};

use super::{device, Write};

const WEIGHT: &str = "linux.resources.blockIO.weight";
const WEIGHT_DEVICE: &str = "linux.resources.blockIO.weightDevice";

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(b) = r.block_io() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if w > 1000 {
            bail!("{WEIGHT} ({w}) is out of range [1, 1000]");
        }
        // BFQ takes the blkio weight as is; io.weight (1..10000) needs it
        // converted. Which one exists is known only at write time.
        out.push(Write::new(WEIGHT, "io.bfq.weight", w).or_else("io.weight", blkio_to_io_weight(w)));
    }
    for (i, wd) in b.weight_device().iter().flatten().enumerate() {
        let dev = device(WEIGHT_DEVICE, i, wd.major(), wd.minor())?;
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            if w > 1000 {
                bail!("{WEIGHT_DEVICE}[{i}].weight ({w}) is out of range [1, 1000]");
            }
            // Per-device weights exist only with BFQ: without it runc skips
            // them, and so does an optional write.
            out.push(Write::new(WEIGHT_DEVICE, "io.bfq.weight", format!("{dev} {w}")).optional());
        }
    }
    let throttles: [(&'static str, &Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            "linux.resources.blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "rbps",
        ),
        (
            "linux.resources.blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "wbps",
        ),
        (
            "linux.resources.blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "riops",
        ),
        (
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "wiops",
        ),
    ];
    for (field, list, key) in throttles {
        for (i, td) in list.iter().flatten().enumerate() {
            let dev = device(field, i, td.major(), td.minor())?;
            out.push(Write::new(field, "io.max", format!("{dev} {key}={}", td.rate())));
        }
    }
    Ok(out)
}

/// blkio weight [10, 1000] → io.weight [1, 10000], linearly, as runc's
/// `ConvertBlkIOToIOWeightValue`: 1 + (w - 10) * 9999 / 990 (integer
/// division), so 10 → 1, 500 → 4950, 1000 → 10000. Below 10 (valid for BFQ
/// only) gives 1.
fn blkio_to_io_weight(w: u16) -> u64 {
    1 + u64::from(w).saturating_sub(10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    fn io(v: serde_json::Value) -> Result<Vec<Write>> {
        writes(&res(json!({ "blockIO": v })))
    }

    #[test]
    fn weight_conversion() {
        let cases = [(1, 1), (10, 1), (100, 910), (500, 4950), (1000, 10_000)];
        for (w, expected) in cases {
            assert_eq!(blkio_to_io_weight(w), expected, "weight {w}");
        }
    }

    #[test]
    fn weight_prefers_bfq() {
        let w = io(json!({"weight": 500, "leafWeight": 300})).unwrap();
        assert_eq!(files(&w), pairs(&[("io.bfq.weight", "500")]));
        assert_eq!(w[0].fallback, Some(("io.weight".to_string(), "4950".to_string())));
        assert!(io(json!({"weight": 0})).unwrap().is_empty());
        let e = io(json!({"weight": 1001})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.blockIO.weight (1001) is out of range [1, 1000]"
        );
    }

    #[test]
    fn weight_devices() {
        let w = io(json!({"weightDevice": [
            {"major": 8, "minor": 0, "weight": 200, "leafWeight": 10},
            {"major": 8, "minor": 16, "leafWeight": 10}
        ]}))
        .unwrap();
        assert_eq!(files(&w), pairs(&[("?io.bfq.weight", "8:0 200")]));
        assert_eq!(w[0].fallback, None);
        let e = io(json!({"weightDevice": [{"major": -8, "minor": 0, "weight": 1}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.blockIO.weightDevice[0]: -8:0 is not a device number"
        );
    }

    #[test]
    fn throttles() {
        let w = io(json!({
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}, {"major": 8, "minor": 32, "rate": 0}]
        }))
        .unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("io.max", "8:0 rbps=1048576"),
                ("io.max", "8:0 wbps=2097152"),
                ("io.max", "8:16 riops=100"),
                ("io.max", "8:16 wiops=200"),
                ("io.max", "8:32 wiops=0"),
            ])
        );
        assert_eq!(w[3].field, "linux.resources.blockIO.throttleWriteIOPSDevice");
        let e =
            io(json!({"throttleReadIOPSDevice": [{"major": 8, "minor": 0}, {"major": 8, "minor": -1}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.blockIO.throttleReadIOPSDevice[1]: 8:-1 is not a device number"
        );
    }
}
