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

/// Converts the spec's names to `caps` values; caps this kernel does not
/// know are left out (with a warning), as runc does.
fn convert(set: Option<&Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
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
            _ => crate::warn!("capability {name} is not supported by this kernel, ignored"),
        }
    }
    out
}

impl Sets {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Sets {
        let Some(c) = c else { return Sets::default() };
        let supported = caps::runtime::thread_all_supported();
        let mut sets = Sets {
            bounding: convert(c.bounding().as_ref(), &supported),
            effective: convert(c.effective().as_ref(), &supported),
            permitted: convert(c.permitted().as_ref(), &supported),
            inheritable: convert(c.inheritable().as_ref(), &supported),
            ambient: convert(c.ambient().as_ref(), &supported),
        };
        // The kernel only keeps an ambient cap that is also permitted and
        // inheritable; configs from `runc spec` list ambient caps without
        // inheritable ones, and runc drops them: so does xrun, aloud.
        let (inh, perm) = (&sets.inheritable, &sets.permitted);
        let dropped: Vec<String> = sets
            .ambient
            .iter()
            .filter(|c| !inh.contains(c) || !perm.contains(c))
            .map(|c| c.to_string())
            .collect();
        if !dropped.is_empty() {
            crate::warn!(
                "ambient capabilities not also inheritable and permitted are dropped: {}",
                dropped.join(", ")
            );
            sets.ambient
                .retain(|c| sets.inheritable.contains(c) && sets.permitted.contains(c));
        }
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
