//! pids: limit → pids.max (v1 and v2 alike).
//!
//! oci-spec reads a missing limit as 0, so 0 is "unset" (no write), as in
//! the runtime-spec before limit became optional and in runc until then;
//! any negative value is "max".

use oci_spec::runtime::LinuxResources;

use super::Write;

const LIMIT: &str = "linux.resources.pids.limit";

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Vec<Write> {
    match r.pids().map(|p| p.limit()) {
        None | Some(0) => Vec::new(),
        Some(n) if n < 0 => vec![Write::new(LIMIT, "pids.max", "max")],
        Some(n) => vec![Write::new(LIMIT, "pids.max", n)],
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn limits() {
        let pids = |v| files(&writes(&res(json!({ "pids": v }))));
        assert_eq!(pids(json!({"limit": 100})), pairs(&[("pids.max", "100")]));
        assert_eq!(pids(json!({"limit": -1})), pairs(&[("pids.max", "max")]));
        assert_eq!(pids(json!({"limit": -7})), pairs(&[("pids.max", "max")]));
        assert!(pids(json!({"limit": 0})).is_empty());
        assert!(pids(json!({})).is_empty());
    }
}
