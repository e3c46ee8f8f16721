//! A connection to a bus: addresses, EXTERNAL authentication, method calls
//! and signals (queued while a call waits for its reply).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::message::*;
use super::value::*;
use crate::sys;

// ---- addresses ----

/// The unescaped value of `key` in one address entry, e.g. `unix:path=/x,guid=..`.
pub(super) fn address_value(entry: &str, key: &str) -> Result<Option<String>> {
    let params = entry.split_once(':').map_or("", |(_, p)| p);
    for pair in params.split(',') {
        if let Some((k, v)) = pair.split_once('=') {
            if k == key {
                return unescape(v).map(Some);
            }
        }
    }
    Ok(None)
}

pub(super) fn unescape(v: &str) -> Result<String> {
    let (bytes, mut out) = (v.as_bytes(), Vec::new());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| anyhow!("bad escape in D-Bus address value {v:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("D-Bus address value {v:?} is not UTF-8"))
}

/// `v` escaped for use as an address value.
pub(super) fn escape(v: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_/.*".contains(&b);
    v.bytes()
        .map(|b| {
            if plain(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

pub(super) enum Target {
    Path(String),
    Abstract(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Target::Path(p) => write!(f, "{p}"),
            Target::Abstract(name) => write!(f, "@{name}"),
        }
    }
}

/// The unix sockets of a `;`-separated address list, in order.
pub(super) fn targets(address: &str) -> Result<Vec<Target>> {
    let mut found = Vec::new();
    for entry in address.split(';').filter(|e| e.starts_with("unix:")) {
        if let Some(path) = address_value(entry, "path")? {
            found.push(Target::Path(path));
        } else if let Some(name) = address_value(entry, "abstract")? {
            found.push(Target::Abstract(name));
        }
    }
    if found.is_empty() {
        bail!("no usable unix:path= or unix:abstract= entry in D-Bus address {address:?}");
    }
    Ok(found)
}

pub(super) fn open(target: &Target) -> io::Result<UnixStream> {
    match target {
        Target::Path(p) => UnixStream::connect(p),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            UnixStream::connect_addr(&addr)
        }
    }
}

pub(super) fn io_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => sys::strerror(errno),
        None => err.to_string(),
    }
}

// ---- connection ----

/// One blocking connection to a bus (or directly to a peer such as systemd's
/// private socket). Signals that arrive while a call waits for its reply are
/// queued for `wait_signal`.
pub struct Connection {
    stream: UnixStream,
    /// The socket, for error messages.
    target: String,
    rbuf: Vec<u8>,
    last_serial: u32,
    unique_name: Option<String>,
    queue: VecDeque<Message>,
    timeout: Duration,
    /// Set after a failed write or unparseable input: the stream is out of step.
    broken: bool,
}

impl Connection {
    /// Connects to a message bus, authenticates and says Hello.
    pub fn connect(address: &str) -> Result<Connection> {
        let mut conn = Connection::connect_peer(address)?;
        let reply = conn.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )?;
        let name = reply.first().and_then(Value::as_str);
        conn.unique_name = Some(name.ok_or_else(|| anyhow!("D-Bus Hello returned no name"))?.to_string());
        Ok(conn)
    }

    /// Connects and authenticates without Hello: for a peer that is not a
    /// bus daemon (systemd's /run/systemd/private).
    pub fn connect_peer(address: &str) -> Result<Connection> {
        let mut last_err = None;
        for target in targets(address)? {
            match open(&target) {
                Ok(stream) => {
                    let mut conn = Connection {
                        stream,
                        target: target.to_string(),
                        rbuf: Vec::new(),
                        last_serial: 0,
                        unique_name: None,
                        queue: VecDeque::new(),
                        timeout: DEFAULT_TIMEOUT,
                        broken: false,
                    };
                    conn.authenticate()
                        .with_context(|| format!("authenticate to D-Bus at {target}"))?;
                    return Ok(conn);
                }
                Err(e) => last_err = Some(anyhow!("connect to D-Bus at {target}: {}", io_text(&e))),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("no D-Bus address in {address:?}")))
    }

    /// The system bus: $DBUS_SYSTEM_BUS_ADDRESS or the standard socket.
    pub fn system() -> Result<Connection> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".to_string());
        Connection::connect(&address)
    }

    /// The user's bus: $DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus.
    pub fn user() -> Result<Connection> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let address = match (var("DBUS_SESSION_BUS_ADDRESS"), var("XDG_RUNTIME_DIR")) {
            (Some(address), _) => address,
            (None, Some(dir)) => format!("unix:path={}", escape(&format!("{dir}/bus"))),
            (None, None) => bail!("no user D-Bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set"),
        };
        Connection::connect(&address)
    }

    /// Our unique name on the bus (None on a peer connection).
    pub fn unique_name(&self) -> Option<&str> {
        self.unique_name.as_deref()
    }

    /// SASL EXTERNAL with our euid; if the server rejects that identity (we
    /// may be in a user namespace), EXTERNAL with none, so that the server
    /// takes the one it sees on the socket.
    fn authenticate(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let uid_hex: String = sys::geteuid().to_string().bytes().map(|b| format!("{b:02x}")).collect();
        self.send_raw(format!("\0AUTH EXTERNAL {uid_hex}\r\n").as_bytes())?;
        let mut line = self.read_line(deadline)?;
        if line.starts_with("REJECTED") {
            self.send_raw(b"AUTH EXTERNAL\r\n")?;
            line = self.read_line(deadline)?;
            if line == "DATA" {
                self.send_raw(b"DATA\r\n")?;
                line = self.read_line(deadline)?;
            }
        }
        if line != "OK" && !line.starts_with("OK ") {
            bail!("server answered {line:?}");
        }
        self.send_raw(b"BEGIN\r\n")
    }

    fn read_line(&mut self, deadline: Instant) -> Result<String> {
        loop {
            if let Some(end) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.rbuf[..end]).into_owned();
                self.rbuf.drain(..end + 2);
                return Ok(line);
            }
            if self.rbuf.len() > 16 * 1024 {
                bail!("authentication line too long");
            }
            self.fill(deadline)?;
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        if self.broken {
            bail!("connection to D-Bus at {} is broken", self.target);
        }
        let sent = self
            .stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|_| sys::send_all_nosignal(self.stream.as_raw_fd(), bytes));
        sent.map_err(|e| {
            self.broken = true;
            anyhow!("write to D-Bus at {}: {}", self.target, io_text(&e))
        })
    }

    /// Reads what the socket has, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for D-Bus at {}", self.target);
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.broken = true;
                bail!("D-Bus at {} closed the connection", self.target)
            }
            Ok(n) => {
                self.rbuf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                bail!("timed out waiting for D-Bus at {}", self.target)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => {
                self.broken = true;
                bail!("read from D-Bus at {}: {}", self.target, io_text(&e))
            }
        }
    }

    /// The next whole message, waiting until `deadline` at most.
    fn next_message(&mut self, deadline: Instant) -> Result<Message> {
        loop {
            if self.broken {
                bail!("connection to D-Bus at {} is broken", self.target);
            }
            if let Some(m) = self.take_message()? {
                return Ok(m);
            }
            self.fill(deadline)?;
        }
    }

    /// A whole message from the read buffer, if one is there.
    fn take_message(&mut self) -> Result<Option<Message>> {
        if self.rbuf.len() < FIXED_HEADER_LEN {
            return Ok(None);
        }
        let len = Message::wire_len(&self.rbuf).inspect_err(|_| self.broken = true);
        let len = len.with_context(|| format!("bad message from D-Bus at {}", self.target))?;
        if self.rbuf.len() < len {
            return Ok(None);
        }
        // A message that does not parse is dropped; the stream stays in step.
        let m = Message::decode(&self.rbuf[..len]);
        self.rbuf.drain(..len);
        m.map(Some)
            .with_context(|| format!("bad message from D-Bus at {}", self.target))
    }

    /// Sends `m` with the next serial, which it returns.
    pub fn send(&mut self, mut m: Message) -> Result<u32> {
        self.last_serial = self.last_serial.checked_add(1).unwrap_or(1);
        m.serial = self.last_serial;
        let bytes = m.encode()?;
        self.send_raw(&bytes)?;
        Ok(m.serial)
    }

    fn enqueue(&mut self, m: Message) {
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(m);
    }

    /// Calls a method and waits for its reply body. An error reply is a
    /// `DbusError`; signals that arrive meanwhile are queued.
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>> {
        let what = || format!("call {interface}.{member} on D-Bus");
        let serial = self
            .send(Message::method_call(
                destination,
                path,
                interface,
                member,
                args.to_vec(),
            ))
            .with_context(what)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.next_message(deadline).with_context(what)?;
            match m.kind {
                MessageType::Signal => self.enqueue(m),
                _ if m.reply_serial != Some(serial) => {} // a stale reply, or a call to us: not served
                MessageType::MethodReturn => return Ok(m.body),
                MessageType::Error => {
                    let message = m.body.first().and_then(Value::as_str).unwrap_or_default();
                    return Err(DbusError {
                        name: m.error_name.unwrap_or_default(),
                        message: message.to_string(),
                    }
                    .into());
                }
                _ => {}
            }
        }
    }

    /// The next message of any kind, queued signals first (for a peer
    /// that serves calls, such as a test's stand-in for systemd).
    #[cfg(test)]
    pub fn receive(&mut self, timeout: Duration) -> Result<Message> {
        if let Some(m) = self.queue.pop_front() {
            return Ok(m);
        }
        self.next_message(Instant::now() + timeout)
    }

    /// Asks the bus to send us the signals that match `rule`.
    pub fn add_match(&mut self, rule: &str) -> Result<()> {
        self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Value::str(rule)],
        )
        .with_context(|| format!("add D-Bus match rule {rule:?}"))?;
        Ok(())
    }

    /// The first signal (queued, or arriving within `timeout`) for which
    /// `pred` is true; the others stay queued.
    pub fn wait_signal(&mut self, timeout: Duration, mut pred: impl FnMut(&Message) -> bool) -> Result<Message> {
        let queued = self.queue.iter().position(&mut pred);
        if let Some(m) = queued.and_then(|i| self.queue.remove(i)) {
            return Ok(m);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.next_message(deadline)?;
            if m.kind == MessageType::Signal {
                if pred(&m) {
                    return Ok(m);
                }
                self.enqueue(m);
            }
        }
    }
}
