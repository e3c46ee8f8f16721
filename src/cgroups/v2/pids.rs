//! pids: limit → pids.max (v1 and v2 alike), as runc 1.4 writes it: a
//! positive limit as is, any negative one as "max", and 0 as "1" (systemd
//! cannot express 0 and runc keeps both drivers alike; a limit of one pid
//! behaves the same, since the init already counts).
//!
//! oci-spec reads a missing limit as 0, so a `pids` object without `limit`
//! ("unset" since runtime-spec 1.2) is removed from the JSON before it is
//! parsed: see `drop_unset_limit`.

use oci_spec::runtime::LinuxResources;

use super::Write;

const LIMIT: &str = "linux.resources.pids.limit";

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Vec<Write> {
    match r.pids().map(|p| p.limit()) {
        None => Vec::new(),
        Some(0) => vec![Write::new(LIMIT, "pids.max", 1)],
        Some(n) if n < 0 => vec![Write::new(LIMIT, "pids.max", "max")],
        Some(n) => vec![Write::new(LIMIT, "pids.max", n)],
    }
}

/// Removes `pids` from a linux.resources JSON object when it has no
/// `limit`, so that "no limit given" is not read as a limit of 0.
pub fn drop_unset_limit(resources: &mut serde_json::Value) {
    let Some(obj) = resources.as_object_mut() else { return };
    if obj
        .get("pids")
        .is_some_and(|p| p.get("limit").map_or(true, serde_json::Value::is_null))
    {
        obj.remove("pids");
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
        assert_eq!(pids(json!({"limit": 0})), pairs(&[("pids.max", "1")]));
        assert!(files(&writes(&res(json!({})))).is_empty());
    }

    #[test]
    fn a_pids_object_without_limit_is_unset() {
        for (doc, left) in [
            (json!({"pids": {}, "memory": {}}), json!({"memory": {}})),
            (json!({"pids": {"limit": null}}), json!({})),
            (json!({"pids": {"limit": 0}}), json!({"pids": {"limit": 0}})),
            (json!({}), json!({})),
        ] {
            let mut d = doc.clone();
            drop_unset_limit(&mut d);
            assert_eq!(d, left, "{doc}");
        }
        let mut not_an_object = json!([1]);
        drop_unset_limit(&mut not_an_object);
        assert_eq!(not_an_object, json!([1]));
    }
}
