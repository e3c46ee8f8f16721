//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup
//! is a transient unit that systemd makes, started over D-Bus with the
//! init's pid and the limits systemd understands; the cgroup files are then
//! written as the cgroupfs driver writes them.

pub mod dbus;
pub mod manager;
pub mod props;
pub mod unit;
mod variant;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxResources, Spec};

use super::layout::{self, Kind, Layout};
use super::Record;
use dbus::Value;
use manager::Manager;
use props::Property;
use unit::Unit;

/// `--systemd-cgroup` was given.
static REQUESTED: AtomicBool = AtomicBool::new(false);

pub fn set_requested(on: bool) {
    REQUESTED.store(on, Ordering::Relaxed);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// A container's unit between create's first step and the init's start:
/// named and connected before anything exists (so a bad cgroupsPath or an
/// unreachable systemd leaves nothing behind), started once the init is
/// cloned, since a scope needs a process.
pub struct Scope {
    pub unit: Unit,
    manager: Manager,
    /// The unit's cgroup, relative to each hierarchy's root.
    cgroup: PathBuf,
    /// Everything StartTransientUnit gets but the init's pid, worked out
    /// (and checked) before anything exists.
    properties: Vec<Property>,
    layout: Layout,
    /// Whether StartTransientUnit made the unit: only then is it ours to
    /// stop when create fails.
    pub started: bool,
}

impl Scope {
    pub fn new(spec: &Spec, id: &str, layout: &Layout) -> Result<Scope> {
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Rootless: the caller's own systemd instance (runc's rule).
        let user = crate::rootless::cgroups();
        let unit = Unit::from_cgroups_path(&path, id, user)?;
        // sd_booted(3), as runc checks it.
        if !Path::new("/run/systemd/system").is_dir() {
            bail!("systemd not running on this host, cannot use systemd cgroups manager");
        }
        let empty = Default::default();
        let annotations = props::from_annotations(spec.annotations().as_ref().unwrap_or(&empty))?;
        let legacy = layout.kind != Kind::Unified;
        let mut properties = props::base(&unit, id, None, legacy);
        properties.extend(limits(&resources(spec), legacy)?);
        properties.extend(device_properties(spec)?);
        properties.extend(annotations);
        let mut manager = Manager::connect(user)?;
        // A user instance's units live below its own cgroup.
        let base = if user {
            match manager.manager_property("ControlGroup")? {
                Value::Str(s) => s,
                other => return Err(anyhow!("systemd's ControlGroup is {other:?}, not a path")),
            }
        } else {
            "/".to_string()
        };
        let cgroup = PathBuf::from(unit.cgroup(&base)?);
        crate::debug!("cgroups: systemd unit {} in {}", unit.name, cgroup.display());
        Ok(Scope {
            unit,
            manager,
            cgroup,
            properties,
            layout: layout.clone(),
            started: false,
        })
    }

    /// The Record of the unit's cgroup: one directory per hierarchy, as
    /// `cgroups::plan` gives for an absolute cgroupsPath. Only the unit's
    /// own directories count as created: its slices are systemd's.
    pub fn plan(&self, layout: &Layout) -> Record {
        let mut record = Record::empty(layout.kind);
        let missing = |d: &PathBuf, created: &mut Vec<PathBuf>| {
            if !d.exists() && !created.contains(d) {
                created.push(d.clone());
            }
        };
        if layout.kind == Kind::Unified {
            let dir = layout::below(Path::new(layout::ROOT), &self.cgroup);
            missing(&dir, &mut record.created);
            record.unified = Some(dir);
        } else {
            for (name, mount) in &layout.v1 {
                let dir = layout::below(mount, &self.cgroup);
                if name == "freezer" {
                    record.freezer = Some(dir.clone());
                }
                if !record.v1.contains(&dir) {
                    missing(&dir, &mut record.created);
                    record.v1.push(dir);
                }
            }
            if let Some(mount) = &layout.unified {
                let dir = layout::below(mount, &self.cgroup);
                missing(&dir, &mut record.created);
                record.unified = Some(dir);
            }
        }
        record.systemd = Some(self.unit.clone());
        record
    }

    /// Starts the unit with `pid` in it and the limits systemd knows, then
    /// fills its cgroup as the cgroupfs driver would (the other limits, the
    /// device rules, the hierarchies systemd does not manage).
    pub fn start(&mut self, pid: i32, spec: &Spec) -> Result<()> {
        let mut properties = self.properties.clone();
        properties.push(props::pids(pid));
        self.start_unit(properties)?;
        super::fill(spec, &self.layout, &self.cgroup, &resources(spec))?;
        if self.layout.kind != Kind::Unified {
            // systemd joins only the v1 controllers it manages (memory,
            // cpu, pids, devices, ...): the rest (freezer, cpuset, ...) are
            // joined here, as runc does.
            super::place(&self.plan(&self.layout), pid)?;
        }
        check_placed(pid, &self.layout, &self.cgroup)
    }

    /// StartTransientUnit; a unit of that name left failed is reset and
    /// tried once more (runc does the same).
    fn start_unit(&mut self, properties: Vec<Property>) -> Result<()> {
        let name = self.unit.name.clone();
        let first = self.manager.start_transient_unit(&name, properties.clone());
        let result = match first {
            Err(e) if is_dbus_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                let _ = self.manager.reset_failed_unit(&name);
                self.manager.start_transient_unit(&name, properties)
            }
            other => other,
        };
        match result {
            Err(e) if is_dbus_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                Err(e).with_context(|| format!("unable to start unit {name:?}"))
            }
            Err(e) => {
                // Made, then failed: ours to stop.
                self.started = true;
                let _ = self.manager.reset_failed_unit(&name);
                Err(e).with_context(|| format!("unable to start unit {name:?}"))
            }
            Ok(()) => {
                self.started = true;
                Ok(())
            }
        }
    }
}

/// The device rules (with the default devices) as systemd's properties.
fn device_properties(spec: &Spec) -> Result<Vec<Property>> {
    let linux = spec.linux().as_ref();
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    let default = LinuxResources::default();
    let r = linux.and_then(|l| l.resources().as_ref()).unwrap_or(&default);
    let rules = super::with_default_devices(r, devices);
    let entries = super::v2::devices::systemd_allow_list(rules.devices().as_deref().unwrap_or(&[]))?;
    Ok(props::devices(entries))
}

/// linux.resources with the CPU quota systemd can express.
fn resources(spec: &Spec) -> LinuxResources {
    let default = LinuxResources::default();
    let linux = spec.linux().as_ref();
    props::round_quota(linux.and_then(|l| l.resources().as_ref()).unwrap_or(&default))
}

/// The limits systemd has properties for, from the writes the cgroupfs
/// driver would make.
fn limits(r: &LinuxResources, legacy: bool) -> Result<Vec<Property>> {
    if legacy {
        let writes = super::v1::writes(r)?;
        props::limits(r, writes.iter().map(|(_, w)| (w.file.as_str(), w.value.as_str())))
    } else {
        let writes = super::v2::writes(r)?;
        props::limits(r, writes.iter().map(|w| (w.file.as_str(), w.value.as_str())))
    }
}

/// The init must now be in the unit's cgroup (a wrong slice expansion, or a
/// unit systemd put elsewhere, would otherwise go unnoticed).
fn check_placed(pid: i32, layout: &Layout, cgroup: &Path) -> Result<()> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("read the init's cgroup")?;
    let own = layout::parse_proc_cgroup(&text);
    let key = if layout.kind == Kind::Unified {
        ""
    } else {
        "name=systemd"
    };
    match own.get(key) {
        Some(at) if at == cgroup => Ok(()),
        // Hybrid hosts without name=systemd: nothing to compare with.
        None if !key.is_empty() => Ok(()),
        other => Err(anyhow!(
            "systemd put the container's init in cgroup {:?}, not {}",
            other,
            cgroup.display()
        )),
    }
}

fn is_dbus_error(e: &anyhow::Error, name: &str) -> bool {
    dbus::error_name(e) == Some(name)
}

/// Applies new limits to a running container's unit (`update`): systemd's
/// properties first (runtime only, as runc), then the files.
pub fn update(unit: &Unit, layout_kind: Kind, r: &LinuxResources) -> Result<LinuxResources> {
    let r = props::round_quota(r);
    let properties = limits(&r, layout_kind != Kind::Unified)?;
    if !properties.is_empty() {
        let mut manager = Manager::connect(unit.user)?;
        manager
            .set_unit_properties(&unit.name, true, properties)
            .with_context(|| format!("unable to set unit properties of {}", unit.name))?;
    }
    Ok(r)
}

/// Stops the unit (delete, or a failed create), after its processes are
/// gone; one that no longer exists is fine.
pub fn stop(unit: &Unit) -> Result<()> {
    let mut manager = Manager::connect(unit.user)?;
    manager.stop_unit(&unit.name)?;
    let _ = manager.reset_failed_unit(&unit.name);
    Ok(())
}
