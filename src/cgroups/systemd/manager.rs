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
        let conn = if user {
            Connection::user()?
        } else {
            match Connection::system() {
                Ok(conn) => conn,
                Err(e) if sys::geteuid() != 0 => return Err(e),
                Err(e) => Connection::connect_peer(PRIVATE_SOCKET).map_err(|private| anyhow!("{e:#}; {private:#}"))?,
            }
        };
        Manager::from_connection(conn)
    }

    /// A manager on an open connection (to a bus, or to systemd directly).
    pub fn from_connection(mut conn: Connection) -> Result<Manager> {
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
    #[cfg(test)]
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

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::cgroups::systemd::dbus::tests::TestBus;
    use crate::cgroups::systemd::dbus::MessageType;

    /// Stands in for systemd on a test bus: answers the Manager calls,
    /// sending each job's JobRemoved (after an unrelated one) before the
    /// reply that names the job. Returns the calls it saw.
    fn fake_systemd(address: &str, ready: mpsc::Sender<()>) -> Vec<String> {
        let mut c = Connection::connect(address).unwrap();
        let dbus = "org.freedesktop.DBus";
        let args = [Value::str(SYSTEMD), Value::U32(0)];
        c.call(dbus, "/org/freedesktop/DBus", dbus, "RequestName", &args)
            .unwrap();
        ready.send(()).unwrap();
        let (mut seen, mut job) = (Vec::new(), 0);
        while let Ok(m) = c.receive(Duration::from_secs(20)) {
            if m.kind() != MessageType::MethodCall {
                continue;
            }
            let member = m.member().unwrap_or_default().to_string();
            let body = m.body();
            let unit = body.first().and_then(Value::as_str).unwrap_or_default().to_string();
            let sig: String = body.iter().map(Value::signature).collect();
            seen.push(format!("{member} {unit} {sig}"));
            let reply = match member.as_str() {
                "StartTransientUnit" | "StopUnit" | "ResetFailedUnit" if unit == "gone.scope" => {
                    Message::error(&m, NO_SUCH_UNIT, "Unit gone.scope not loaded.")
                }
                "StartTransientUnit" | "StopUnit" => {
                    job += 1;
                    let path = format!("{MANAGER_PATH}/job/{job}");
                    let result = if unit == "fail.scope" { "failed" } else { "done" };
                    for (id, path, result) in [
                        (999, format!("{MANAGER_PATH}/job/999"), "failed"),
                        (job, path.clone(), result),
                    ] {
                        let body = vec![Value::U32(id), Value::path(path), Value::str(&unit), Value::str(result)];
                        c.send(Message::signal(MANAGER_PATH, MANAGER, "JobRemoved", body))
                            .unwrap();
                    }
                    Message::method_return(&m, vec![Value::path(path)])
                }
                "GetUnit" => Message::method_return(&m, vec![Value::path(format!("{MANAGER_PATH}/unit/x"))]),
                "Get" => {
                    let text = format!(
                        "{} {}.{}",
                        m.path().unwrap_or_default(),
                        unit,
                        body[1].as_str().unwrap()
                    );
                    Message::method_return(&m, vec![Value::variant(Value::str(text))])
                }
                _ => Message::method_return(&m, vec![]),
            };
            c.send(reply).unwrap();
            if member == "Exit" {
                break;
            }
        }
        seen
    }

    #[test]
    fn manager_calls_against_a_fake_systemd() {
        let bus = TestBus::start();
        let (ready, is_ready) = mpsc::channel();
        let address = bus.address.clone();
        let fake = thread::spawn(move || fake_systemd(&address, ready));
        is_ready.recv_timeout(Duration::from_secs(10)).unwrap();

        let mut mgr = Manager::from_connection(Connection::connect(&bus.address).unwrap()).unwrap();
        let props = vec![
            ("Delegate".to_string(), Value::Bool(true)),
            ("PIDs".to_string(), Value::array("u", vec![Value::U32(1)])),
        ];
        mgr.start_transient_unit("xrun-abc.scope", props).unwrap();
        let err = mgr.start_transient_unit("fail.scope", vec![]).unwrap_err();
        assert_eq!(format!("{err:#}"), "systemd failed to start unit fail.scope: failed");
        mgr.stop_unit("xrun-abc.scope").unwrap();
        mgr.stop_unit("gone.scope").unwrap();
        mgr.reset_failed_unit("gone.scope").unwrap();
        let err = mgr.start_transient_unit("gone.scope", vec![]).unwrap_err();
        assert_eq!(error_name(&err), Some(NO_SUCH_UNIT));
        let props = vec![("MemoryMax".to_string(), Value::U64(1 << 20))];
        mgr.set_unit_properties("xrun-abc.scope", true, props).unwrap();
        let version = mgr.manager_property("Version").unwrap();
        assert_eq!(version, Value::str(format!("{MANAGER_PATH} {MANAGER}.Version")));
        let cgroup = mgr.unit_property("xrun-abc.scope", "org.freedesktop.systemd1.Scope", "ControlGroup");
        assert_eq!(
            cgroup.unwrap(),
            Value::str(format!(
                "{MANAGER_PATH}/unit/x org.freedesktop.systemd1.Scope.ControlGroup"
            ))
        );
        mgr.call("Exit", &[]).unwrap();

        let seen = fake.join().unwrap();
        let expected = [
            "StartTransientUnit xrun-abc.scope ssa(sv)a(sa(sv))",
            "StartTransientUnit fail.scope ssa(sv)a(sa(sv))",
            "ResetFailedUnit fail.scope s",
            "StopUnit xrun-abc.scope ss",
            "ResetFailedUnit xrun-abc.scope s",
            "StopUnit gone.scope ss",
            "ResetFailedUnit gone.scope s",
            "StartTransientUnit gone.scope ssa(sv)a(sa(sv))",
            "SetUnitProperties xrun-abc.scope sba(sv)",
            "Get org.freedesktop.systemd1.Manager ss",
            "GetUnit xrun-abc.scope s",
            "Get org.freedesktop.systemd1.Scope ss",
            "Exit  ",
        ];
        assert_eq!(seen, expected);
    }

    /// Kills the test's `sleep` by PID on every path.
    struct Sleeper(Child);
    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Against the real systemd (PID 1, cgroup v2): run in the systemd VM as
    /// `target/x86_64-unknown-linux-gnu/debug/deps/xrun-* --ignored --exact cgroups::systemd::manager::tests::real_systemd_scope`.
    #[test]
    #[ignore]
    fn real_systemd_scope() {
        let mut mgr = Manager::connect(false).unwrap();
        let version = mgr.manager_property("Version").unwrap();
        eprintln!("systemd Version: {version:?}");
        assert!(version.as_str().is_some_and(|v| !v.is_empty()));

        let mut sleeper = Sleeper(Command::new("sleep").arg("120").spawn().unwrap());
        let pid = sleeper.0.id();
        let unit = format!("xrun-dbus-test-{pid}.scope");
        let props = vec![
            ("Description".to_string(), Value::str("xrun D-Bus client test")),
            ("Slice".to_string(), Value::str("system.slice")),
            ("Delegate".to_string(), Value::Bool(true)),
            ("PIDs".to_string(), Value::array("u", vec![Value::U32(pid)])),
        ];
        mgr.start_transient_unit(&unit, props).unwrap();
        let cgroup = mgr
            .unit_property(&unit, "org.freedesktop.systemd1.Scope", "ControlGroup")
            .unwrap();
        eprintln!("{unit} ControlGroup: {cgroup:?}");
        let cgroup = cgroup.as_str().unwrap().to_string();
        assert_eq!(cgroup, format!("/system.slice/{unit}"));
        let in_proc = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(in_proc.contains(&format!("0::{cgroup}\n")), "{in_proc}");
        let delegate = mgr
            .unit_property(&unit, "org.freedesktop.systemd1.Scope", "Delegate")
            .unwrap();
        assert_eq!(delegate, Value::Bool(true));

        let props = vec![("MemoryMax".to_string(), Value::U64(100 << 20))];
        mgr.set_unit_properties(&unit, true, props).unwrap();
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup{cgroup}/memory.max")).unwrap();
        assert_eq!(max.trim(), (100u64 << 20).to_string());

        let err = mgr.start_transient_unit(&unit, vec![]).unwrap_err();
        eprintln!("starting it again: {err:#}");
        assert_eq!(error_name(&err), Some("org.freedesktop.systemd1.UnitExists"));

        mgr.stop_unit(&unit).unwrap();
        let status = sleeper.0.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        mgr.stop_unit(&unit).unwrap(); // gone by now, or stopped again: fine either way

        let err = mgr
            .start_transient_unit("xrun-dbus-test-nopid.scope", vec![])
            .unwrap_err();
        eprintln!("a scope without PIDs: {err:#}");
        eprintln!("real_systemd_scope: all checks passed");
    }
}
