//! hugetlb: each hugepageLimits entry → hugetlb.<size>.limit_in_bytes, and
//! the same value to hugetlb.<size>.rsvd.limit_in_bytes, the reservation
//! limit (kernel 5.7+; optional, as runc skips it where it does not exist).

use anyhow::Result;
use oci_spec::runtime::LinuxResources;

use super::v2::hugetlb::{limits, FIELD};
use super::Write;

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    for (size, limit) in limits(r)? {
        out.push(Write::new(FIELD, format!("hugetlb.{size}.limit_in_bytes"), limit));
        out.push(Write::new(FIELD, format!("hugetlb.{size}.rsvd.limit_in_bytes"), limit).optional());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_and_reservation() {
        let r =
            res(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": 0}]}));
        assert_eq!(
            files(&writes(&r).unwrap()),
            pairs(&[
                ("hugetlb.2MB.limit_in_bytes", "4194304"),
                ("?hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
                ("hugetlb.1GB.limit_in_bytes", "0"),
                ("?hugetlb.1GB.rsvd.limit_in_bytes", "0"),
            ])
        );
    }

    #[test]
    fn bad_page_size() {
        let e = writes(&res(json!({"hugepageLimits": [{"pageSize": "2MB/x", "limit": 1}]}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.hugepageLimits[0].pageSize (\"2MB/x\") is not a page size such as 2MB or 1GB"
        );
    }
}
