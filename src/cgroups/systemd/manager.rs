//! The org.freedesktop.systemd1.Manager calls the systemd cgroup driver
//! makes: transient units started and stopped as jobs whose end is the
//! JobRemoved signal, unit properties set and read.
//!
//! No Subscribe call: systemd sends a job's JobRemoved to the client that
//! queued the job even when nobody is subscribed; the AddMatch is what the
//! bus daemon needs to route that broadcast to us.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::dbus::{error_name, Connection, Message, Value};
use crate::sys;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// How long a start or stop job may take (runc's figure).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// systemd's own socket, served without a bus daemon (root only).
const PRIVATE_SOCKET: &str = "unix:path=/run/systemd/private";

pub struct Manager {
    conn: Connection,
}

impl Manager {
    /// Connects to the system instance of systemd, or with `user` to the
    /// caller's user instance (rootless). As root, when the system bus is
    /// not there, systemd's private socket is used instead (as runc does).
    pub fn connect(user: bool) -> Result<Manager> {
        let mut conn = if user {
            Connection::user()?
        } else {
            match Connection::system() {
                Ok(conn) => conn,
                Err(e) if sys::geteuid() != 0 => return Err(e),
                Err(e) => Connection::connect_peer(PRIVATE_SOCKET).map_err(|private| anyhow!("{e:#}; {private:#}"))?,
            }
        };
        // On the private socket there is no bus: signals come unasked.
        if conn.unique_name().is_some() {
            conn.add_match(&format!(
                "type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'"
            ))?;
        }
        Ok(Manager { conn })
    }

    fn call(&mut self, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.conn.call(SYSTEMD, MANAGER_PATH, MANAGER, member, args)
    }

    /// StartTransientUnit(name, "replace", props, no aux units), then waits
    /// for the job. `props` values are plain; they are sent as variants.
    pub fn start_transient_unit(&mut self, name: &str, props: Vec<(String, Value)>) -> Result<()> {
        let args = [
            Value::str(name),
            Value::str("replace"),
            property_array(props),
            Value::array("(sa(sv))", Vec::new()),
        ];
        let reply = self.call("StartTransientUnit", &args)?;
        let result = self.wait_job(&reply, "start", name)?;
        if result != "done" {
            // A failed unit stays loaded; let systemd drop it (as runc does).
            let _ = self.reset_failed_unit(name);
            bail!("systemd failed to start unit {name}: {result}");
        }
        Ok(())
    }

    /// StopUnit(name, "replace") and waits for the job; a unit that does not
    /// exist is already stopped. A unit left failed is then reset.
    pub fn stop_unit(&mut self, name: &str) -> Result<()> {
        let reply = match self.call("StopUnit", &[Value::str(name), Value::str("replace")]) {
            Err(e) if error_name(&e) == Some(NO_SUCH_UNIT) => return Ok(()),
            other => other?,
        };
        let result = self.wait_job(&reply, "stop", name)?;
        let _ = self.reset_failed_unit(name);
        if result != "done" {
            bail!("systemd failed to stop unit {name}: {result}");
        }
        Ok(())
    }

    /// ResetFailedUnit(name); a unit that does not exist is fine.
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<()> {
        match self.call("ResetFailedUnit", &[Value::str(name)]) {
            Err(e) if error_name(&e) == Some(NO_SUCH_UNIT) => Ok(()),
            other => other.map(drop),
        }
    }

    /// SetUnitProperties(name, runtime, props); `props` values are plain.
    pub fn set_unit_properties(&mut self, name: &str, runtime: bool, props: Vec<(String, Value)>) -> Result<()> {
        let args = [Value::str(name), Value::Bool(runtime), property_array(props)];
        self.call("SetUnitProperties", &args)?;
        Ok(())
    }

    /// A property of a loaded unit, e.g. ("org.freedesktop.systemd1.Scope",
    /// "ControlGroup"), unwrapped from its variant.
    pub fn unit_property(&mut self, unit: &str, interface: &str, property: &str) -> Result<Value> {
        let reply = self.call("GetUnit", &[Value::str(unit)])?;
        let path = match reply.first() {
            Some(Value::ObjectPath(p)) => p.clone(),
            _ => bail!("systemd GetUnit({unit}) returned no object path"),
        };
        self.property(&path, interface, property)
            .with_context(|| format!("read {property} of unit {unit}"))
    }

    /// A property of the manager itself, e.g. "Version" or "ControlGroup".
    pub fn manager_property(&mut self, property: &str) -> Result<Value> {
        self.property(MANAGER_PATH, MANAGER, property)
            .with_context(|| format!("read systemd's {property}"))
    }

    fn property(&mut self, path: &str, interface: &str, property: &str) -> Result<Value> {
        let args = [Value::str(interface), Value::str(property)];
        let reply = self.conn.call(SYSTEMD, path, PROPERTIES, "Get", &args)?;
        match reply.into_iter().next() {
            Some(Value::Variant(v)) => Ok(*v),
            _ => bail!("Properties.Get returned no variant"),
        }
    }

    /// Waits for JobRemoved of the job in a StartUnit-like reply; its result.
    fn wait_job(&mut self, reply: &[Value], verb: &str, unit: &str) -> Result<String> {
        let job = match reply.first() {
            Some(Value::ObjectPath(p)) => p.clone(),
            _ => bail!("systemd returned no job to {verb} unit {unit}"),
        };
        // The signal may have come before the reply: then it is queued.
        let signal = self
            .conn
            .wait_signal(JOB_TIMEOUT, |m| is_job_removed(m, &job))
            .with_context(|| format!("wait for systemd to {verb} unit {unit}"))?;
        let result = signal.body().get(3).and_then(Value::as_str).unwrap_or_default();
        Ok(result.to_string())
    }
}

fn is_job_removed(m: &Message, job: &str) -> bool {
    m.interface() == Some(MANAGER) && m.member() == Some("JobRemoved") && m.body().get(1) == Some(&Value::path(job))
}

/// `a(sv)` of unit properties.
fn property_array(props: Vec<(String, Value)>) -> Value {
    let items = props
        .into_iter()
        .map(|(name, v)| Value::Struct(vec![Value::Str(name), Value::variant(v)]))
        .collect();
    Value::array("(sv)", items)
}
