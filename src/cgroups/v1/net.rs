//! net_cls and net_prio (v1 only; cgroup v2 has neither and runc ignores
//! them there): classID → net_cls.classid, each priority →
//! net_prio.ifpriomap "IFACE PRIO".

use anyhow::Result;
use oci_spec::runtime::LinuxResources;

use super::v2::check_name;
use super::Write;

const CLASS_ID: &str = "linux.resources.network.classID";
const PRIORITIES: &str = "linux.resources.network.priorities";

/// 0 is "unset" (runc).
pub(super) fn classid(r: &LinuxResources) -> Vec<Write> {
    match r.network().as_ref().and_then(|n| n.class_id()) {
        Some(id) if id != 0 => vec![Write::new(CLASS_ID, "net_cls.classid", id)],
        _ => Vec::new(),
    }
}

pub(super) fn priorities(r: &LinuxResources) -> Result<Vec<Write>> {
    let prios = r.network().as_ref().and_then(|n| n.priorities().as_ref());
    let mut out = Vec::new();
    for (i, p) in prios.into_iter().flatten().enumerate() {
        check_name(&format!("{PRIORITIES}[{i}].name"), p.name())?;
        out.push(Write::new(
            PRIORITIES,
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn class_id() {
        assert_eq!(
            files(&classid(&res(json!({"network": {"classID": 1048577}})))),
            pairs(&[("net_cls.classid", "1048577")])
        );
        assert!(classid(&res(json!({"network": {"classID": 0}}))).is_empty());
        assert!(classid(&res(json!({"network": {}}))).is_empty());
    }

    #[test]
    fn ifpriomap_one_write_per_interface() {
        let r =
            res(json!({"network": {"priorities": [{"name": "eth0", "priority": 500}, {"name": "lo", "priority": 0}]}}));
        assert_eq!(
            files(&priorities(&r).unwrap()),
            pairs(&[("net_prio.ifpriomap", "eth0 500"), ("net_prio.ifpriomap", "lo 0")])
        );
        let e = priorities(&res(json!({"network": {"priorities": [{"name": "", "priority": 1}]}}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.network.priorities[0].name \"\" is not a valid name"
        );
    }
}
