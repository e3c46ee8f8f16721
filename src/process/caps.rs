//! Capability sets: parsed from the config by the parent, applied by the
//! child after it switched user (through the `caps` crate).

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::sync::{Failure, Step};

#[derive(Debug, Default, Clone)]
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// runc's warning for capability names it leaves out (unknown ones, or
/// ones this kernel lacks), all in one line, sorted: `[A B]`.
fn warn_ignored(names: &std::collections::BTreeSet<String>) {
    if !names.is_empty() {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        crate::warn!("ignoring unknown or unavailable capabilities: [{}]", list.join(" "));
    }
}

/// Removes from a `capabilities` object (config.json's or a process
/// file's) the names oci-spec cannot parse, which it would refuse whole;
/// runc goes on without them, with a warning.
pub fn drop_unknown_names(caps: &mut serde_json::Value) {
    let Some(obj) = caps.as_object_mut() else { return };
    let mut unknown = std::collections::BTreeSet::new();
    for list in obj.values_mut().filter_map(|v| v.as_array_mut()) {
        list.retain(|name| {
            let known = serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known {
                if let Some(n) = name.as_str() {
                    unknown.insert(n.to_string());
                }
            }
            known || !name.is_string()
        });
    }
    warn_ignored(&unknown);
}

/// Converts the spec's names to `caps` values; caps this kernel does not
/// know are left out and named in `missing`, as runc does.
fn convert(
    set: Option<&Capabilities>,
    supported: &CapsHashSet,
    missing: &mut std::collections::BTreeSet<String>,
) -> CapsHashSet {
    let mut out = CapsHashSet::new();
    for cap in set.into_iter().flatten() {
        let name = cap.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match name.parse::<Capability>() {
            Ok(c) if supported.contains(&c) => {
                out.insert(c);
            }
            _ => {
                missing.insert(name);
            }
        }
    }
    out
}

impl Sets {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Sets {
        let Some(c) = c else { return Sets::default() };
        let supported = caps::runtime::thread_all_supported();
        let mut missing = std::collections::BTreeSet::new();
        let mut sets = Sets {
            bounding: convert(c.bounding().as_ref(), &supported, &mut missing),
            effective: convert(c.effective().as_ref(), &supported, &mut missing),
            permitted: convert(c.permitted().as_ref(), &supported, &mut missing),
            inheritable: convert(c.inheritable().as_ref(), &supported, &mut missing),
            ambient: convert(c.ambient().as_ref(), &supported, &mut missing),
        };
        warn_ignored(&missing);
        // The kernel only raises an ambient cap that is also permitted and
        // inheritable; configs from `runc spec` list ambient caps without
        // inheritable ones. runc tries each, warns for those the kernel
        // refuses and goes on: xrun knows the answer up front, and says it
        // in runc's words.
        let (inh, perm) = (&sets.inheritable, &sets.permitted);
        let mut dropped: Vec<String> = sets
            .ambient
            .iter()
            .filter(|c| !inh.contains(c) || !perm.contains(c))
            .map(|c| c.to_string())
            .collect();
        dropped.sort();
        for name in &dropped {
            crate::warn!("can't raise ambient capability {name}: operation not permitted");
        }
        sets.ambient
            .retain(|c| sets.inheritable.contains(c) && sets.permitted.contains(c));
        sets
    }

    /// Drops from the bounding set everything not listed; needs CAP_SETPCAP,
    /// so it runs before the user switch.
    pub fn apply_bounding(&self) -> Result<(), Failure> {
        for cap in caps::runtime::thread_all_supported() {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|_| fail(cap))?;
            }
        }
        Ok(())
    }

    /// Sets effective, inheritable, permitted (in that order, so effective
    /// never exceeds permitted mid-way), then raises the ambient set.
    pub fn apply(&self) -> Result<(), Failure> {
        let err = |_| Failure::errno(Step::Capabilities, "", libc::EPERM);
        caps::set(None, CapSet::Effective, &self.effective).map_err(err)?;
        caps::set(None, CapSet::Inheritable, &self.inheritable).map_err(err)?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(err)?;
        if caps::runtime::ambient_set_supported().is_ok() {
            caps::clear(None, CapSet::Ambient).map_err(err)?;
            for cap in &self.ambient {
                caps::raise(None, CapSet::Ambient, *cap).map_err(|_| fail(*cap))?;
            }
        }
        Ok(())
    }
}

fn fail(cap: Capability) -> Failure {
    Failure::errno(Step::Capabilities, cap, libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_to_sets() {
        let c: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"]
        }))
        .unwrap();
        let s = Sets::from_spec(Some(&c));
        assert_eq!(s.bounding.len(), 2);
        assert!(s.effective.contains(&Capability::CAP_KILL));
        assert!(s.ambient.is_empty());
    }

    #[test]
    fn ambient_needs_inheritable_and_permitted() {
        let c: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL", "CAP_CHOWN"]
        }))
        .unwrap();
        let s = Sets::from_spec(Some(&c));
        assert_eq!(s.ambient.len(), 1);
        assert!(s.ambient.contains(&Capability::CAP_KILL));
    }
}
