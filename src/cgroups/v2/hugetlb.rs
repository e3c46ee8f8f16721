//! hugetlb: each hugepageLimits entry → hugetlb.<size>.max, and the same
//! value to hugetlb.<size>.rsvd.max, the reservation limit (kernel 5.7+;
//! optional, as runc skips it where it does not exist).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::Write;

pub(in crate::cgroups) const FIELD: &str = "linux.resources.hugepageLimits";

pub(in crate::cgroups) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for (size, limit) in limits(r)? {
        out.push(Write::new(FIELD, format!("hugetlb.{size}.max"), limit));
        out.push(Write::new(FIELD, format!("hugetlb.{size}.rsvd.max"), limit).optional());
    }
    Ok(out)
}

/// The (page size, limit) pairs, checked: the size becomes part of a file
/// name, so it is only letters and digits ("2MB", "1GB", "64KB"); the limit
/// is a byte count (runc reads it as unsigned).
pub(in crate::cgroups) fn limits(r: &LinuxResources) -> Result<Vec<(&str, i64)>> {
    let mut out = Vec::new();
    for (i, l) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = l.page_size().as_str();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("{FIELD}[{i}].pageSize ({size:?}) is not a page size such as 2MB or 1GB");
        }
        if l.limit() < 0 {
            bail!("{FIELD}[{i}].limit ({}) must not be negative", l.limit());
        }
        out.push((size, l.limit()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn max_and_reservation() {
        let r = res(json!({"hugepageLimits": [
            {"pageSize": "2MB", "limit": 209715200},
            {"pageSize": "1GB", "limit": 0}
        ]}));
        assert_eq!(
            files(&writes(&r).unwrap()),
            pairs(&[
                ("hugetlb.2MB.max", "209715200"),
                ("?hugetlb.2MB.rsvd.max", "209715200"),
                ("hugetlb.1GB.max", "0"),
                ("?hugetlb.1GB.rsvd.max", "0"),
            ])
        );
    }

    #[test]
    fn bad_entries() {
        let e = writes(&res(json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.hugepageLimits[0].pageSize (\"../2MB\") is not a page size such as 2MB or 1GB"
        );
        assert!(writes(&res(json!({"hugepageLimits": [{"limit": 1}]}))).is_err());
        let e = writes(&res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": -1}]}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.hugepageLimits[0].limit (-1) must not be negative"
        );
    }
}
