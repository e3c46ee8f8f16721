//! devices (v1): deny everything, then each rule in order to devices.allow
//! or devices.deny as "TYPE MAJ:MIN ACCESS", a missing or -1 number being
//! "*". This is what runc's emulator arrives at from a fresh cgroup: a deny
//! of "a" resets to deny-all, an allow of "a" to allow-all, and other rules
//! add or remove exceptions. Nothing is written without `devices`.
//!
//! Only `linux.resources.devices` is converted: the caller appends runc's
//! default devices to the list before calling, as runc does.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::Write;

const FIELD: &str = "linux.resources.devices";
const ALL: &str = "a *:* rwm";

pub(super) fn writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let Some(rules) = r.devices() else {
        return Ok(Vec::new());
    };
    let mut out = vec![Write::new(FIELD, "devices.deny", ALL)];
    for (i, rule) in rules.iter().enumerate() {
        let file = if rule.allow() { "devices.allow" } else { "devices.deny" };
        if let Some(line) = line(i, rule)? {
            out.push(Write::new(FIELD, file, line));
        }
    }
    Ok(out)
}

/// The rule's line, or None for a rule left with no access letters.
fn line(i: usize, rule: &LinuxDeviceCgroup) -> Result<Option<String>> {
    let letters = rule.access().as_deref().unwrap_or("");
    if letters.is_empty() {
        bail!("{FIELD}[{i}].access must not be empty");
    }
    // runc keeps only the letters it knows ("rwa" is "rw"); the kernel
    // would refuse the others.
    let access: String = letters.chars().filter(|c| matches!(c, 'r' | 'w' | 'm')).collect();
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok(Some(ALL.to_string())),
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C => 'c',
        other => bail!(
            "{FIELD}[{i}].type ({:?}) is not a cgroup device type (a, b or c)",
            other.as_str()
        ),
    };
    let number = |what: &str, n: Option<i64>| match n {
        None | Some(-1) => Ok("*".to_string()),
        Some(n) if n >= 0 => Ok(n.to_string()),
        Some(n) => bail!("{FIELD}[{i}].{what} ({n}) is not a device number"),
    };
    let line = format!(
        "{kind} {}:{} {access}",
        number("major", rule.major())?,
        number("minor", rule.minor())?
    );
    Ok((!access.is_empty()).then_some(line))
}

#[cfg(test)]
mod tests {
    use super::super::super::v2::test_util::*;
    use super::*;
    use serde_json::json;

    fn devices(v: serde_json::Value) -> Result<Vec<(String, String)>> {
        writes(&res(json!({ "devices": v }))).map(|w| files(&w))
    }

    #[test]
    fn deny_all_then_rules_in_order() {
        let w = devices(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"},
            {"allow": true, "type": "b", "minor": 0, "access": "m"},
            {"allow": false, "type": "c", "major": 1, "minor": -1, "access": "w"}
        ]))
        .unwrap();
        assert_eq!(
            w,
            pairs(&[
                ("devices.deny", "a *:* rwm"),
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c 136:* rw"),
                ("devices.allow", "b *:0 m"),
                ("devices.deny", "c 1:* w"),
            ])
        );
    }

    #[test]
    fn allow_all() {
        assert_eq!(
            devices(json!([{"allow": true, "type": "a", "access": "r"}])).unwrap(),
            pairs(&[("devices.deny", "a *:* rwm"), ("devices.allow", "a *:* rwm")])
        );
    }

    #[test]
    fn no_rules() {
        assert!(writes(&res(json!({}))).unwrap().is_empty());
        assert_eq!(devices(json!([])).unwrap(), pairs(&[("devices.deny", "a *:* rwm")]));
    }

    #[test]
    fn unknown_access_letters_are_left_out() {
        assert_eq!(
            devices(json!([
                {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "x"}
            ]))
            .unwrap(),
            pairs(&[("devices.deny", "a *:* rwm"), ("devices.deny", "c 1:11 rw")])
        );
    }

    #[test]
    fn bad_rules() {
        let cases = [
            (
                json!({"allow": true, "type": "c"}),
                "linux.resources.devices[0].access must not be empty",
            ),
            (
                json!({"allow": true, "type": "p", "access": "r"}),
                "linux.resources.devices[0].type (\"p\") is not a cgroup device type (a, b or c)",
            ),
            (
                json!({"allow": true, "type": "u", "access": "r"}),
                "linux.resources.devices[0].type (\"u\") is not a cgroup device type (a, b or c)",
            ),
            (
                json!({"allow": true, "type": "c", "major": -2, "access": "r"}),
                "linux.resources.devices[0].major (-2) is not a device number",
            ),
        ];
        for (rule, message) in cases {
            assert_eq!(devices(json!([rule])).unwrap_err().to_string(), message);
        }
    }
}
