//! cpuset: `linux.resources.cpu.cpus` / `.mems` → cpuset.cpus / cpuset.mems,
//! written as given (the kernel parses the list syntax). v1 has the same
//! files in its cpuset hierarchy.

use anyhow::Result;
use oci_spec::runtime::LinuxResources;

use super::Write;

const CPUS: &str = "linux.resources.cpu.cpus";
const MEMS: &str = "linux.resources.cpu.mems";

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(cpu) = r.cpu() else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    // Empty means "unset" (runc), not "no CPU at all".
    if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        out.push(Write::new(CPUS, "cpuset.cpus", cpus));
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        out.push(Write::new(MEMS, "cpuset.mems", mems));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn cpus_and_mems() {
        let r = res(json!({"cpu": {"cpus": "0-3,6", "mems": "0"}}));
        assert_eq!(
            files(&writes(&r).unwrap()),
            pairs(&[("cpuset.cpus", "0-3,6"), ("cpuset.mems", "0")])
        );
    }

    #[test]
    fn empty_strings_are_unset() {
        let r = res(json!({"cpu": {"cpus": "", "mems": "", "shares": 2}}));
        assert!(writes(&r).unwrap().is_empty());
    }
}
