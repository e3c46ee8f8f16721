//! unified: each key is a file in the container's cgroup, its value written
//! as is, keys in name order, after every typed field. As runc, a value of
//! several lines is written a line at a time (io.max for two devices).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::{Write, CONTROLLERS};

const FIELD: &str = "linux.resources.unified";

/// Files that act on processes, not resources: never from a config.
const REFUSED: [&str; 3] = ["cgroup.procs", "cgroup.threads", "cgroup.kill"];

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(unified) = r.unified() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in unified.iter().collect::<BTreeMap<_, _>>() {
        check_key(key)?;
        if value.contains('\0') {
            bail!("{FIELD}[{key:?}]: the value contains a NUL byte");
        }
        if value.contains('\n') {
            out.extend(
                value
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| Write::new(FIELD, key, l)),
            );
        } else {
            out.push(Write::new(FIELD, key, value));
        }
    }
    Ok(out)
}

fn check_key(key: &str) -> Result<()> {
    if key.contains('/') || key == "." || key == ".." {
        bail!("{FIELD} key {key:?} must be a file name (no slashes)");
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("{FIELD} key {key:?} contains a control or space character");
    }
    match key.split_once('.') {
        Some((c, p)) if !c.is_empty() && !p.is_empty() => {}
        _ => bail!("{FIELD} key {key:?} must be in the form CONTROLLER.PARAMETER"),
    }
    if REFUSED.contains(&key) {
        bail!("{FIELD} key {key:?} moves or kills processes; it is not a resource setting");
    }
    Ok(())
}

/// Controllers the keys name ("memory.high" → memory). "cgroup.*" and the
/// PSI files ("cpu.pressure", ...) are core files that need none; prefixes
/// that are not controllers are left for the write to fail on.
pub(super) fn controllers(r: &LinuxResources) -> Vec<&'static str> {
    let keys = r.unified().iter().flat_map(|u| u.keys());
    let named: Vec<&str> = keys
        .filter(|k| !k.ends_with(".pressure"))
        .filter_map(|k| k.split_once('.').map(|(c, _)| c))
        .collect();
    CONTROLLERS.into_iter().filter(|c| named.contains(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use serde_json::json;

    fn unified(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "unified": v }))).map(|w| files(&w))
    }

    #[test]
    fn keys_in_order_values_as_is() {
        assert_eq!(
            unified(json!({"memory.high": "max", "cgroup.max.depth": "2", "cpu.weight.nice": "-5"})).unwrap(),
            pairs(&[
                ("cgroup.max.depth", "2"),
                ("cpu.weight.nice", "-5"),
                ("memory.high", "max")
            ])
        );
    }

    #[test]
    fn multi_line_values_a_line_at_a_time() {
        assert_eq!(
            unified(json!({"io.max": "8:0 rbps=1\n8:16 wbps=2\n"})).unwrap(),
            pairs(&[("io.max", "8:0 rbps=1"), ("io.max", "8:16 wbps=2")])
        );
    }

    #[test]
    fn bad_keys() {
        let cases = [
            (
                "../memory.max",
                "linux.resources.unified key \"../memory.max\" must be a file name (no slashes)",
            ),
            (
                "..",
                "linux.resources.unified key \"..\" must be a file name (no slashes)",
            ),
            (
                "memory",
                "linux.resources.unified key \"memory\" must be in the form CONTROLLER.PARAMETER",
            ),
            (
                ".max",
                "linux.resources.unified key \".max\" must be in the form CONTROLLER.PARAMETER",
            ),
            (
                "memory.",
                "linux.resources.unified key \"memory.\" must be in the form CONTROLLER.PARAMETER",
            ),
            (
                "memory.m\0x",
                "linux.resources.unified key \"memory.m\\0x\" contains a control or space character",
            ),
            (
                "cgroup.procs",
                "linux.resources.unified key \"cgroup.procs\" moves or kills processes; it is not a resource setting",
            ),
            (
                "cgroup.kill",
                "linux.resources.unified key \"cgroup.kill\" moves or kills processes; it is not a resource setting",
            ),
        ];
        for (key, message) in cases {
            let e = unified(json!({ key: "1" })).unwrap_err();
            assert_eq!(e.to_string(), message);
        }
        let e = unified(json!({"memory.max": "1\u{0}"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.unified[\"memory.max\"]: the value contains a NUL byte"
        );
    }

    #[test]
    fn controllers_of_keys() {
        let r = res(json!({"unified": {
            "memory.high": "1", "memory.low": "1", "cpuset.cpus.partition": "root", "cgroup.freeze": "0",
            "cpu.pressure": "x", "perf_event.x": "1"
        }}));
        assert_eq!(controllers(&r), vec!["cpuset", "memory"]);
    }
}
