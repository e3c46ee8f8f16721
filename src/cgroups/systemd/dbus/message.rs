//! D-Bus messages: header fields, serials, bodies; and error replies as Rust errors.

use std::fmt;

use anyhow::{anyhow, bail, Result};

use super::value::*;

// ---- messages ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    MethodCall,
    MethodReturn,
    Error,
    Signal,
    /// A type this client does not know: ignored, as the spec asks.
    Other(u8),
}

impl MessageType {
    fn code(self) -> u8 {
        match self {
            MessageType::MethodCall => 1,
            MessageType::MethodReturn => 2,
            MessageType::Error => 3,
            MessageType::Signal => 4,
            MessageType::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> MessageType {
        match c {
            1 => MessageType::MethodCall,
            2 => MessageType::MethodReturn,
            3 => MessageType::Error,
            4 => MessageType::Signal,
            c => MessageType::Other(c),
        }
    }
}

// Header field codes.
pub(super) const FIELD_PATH: u8 = 1;
pub(super) const FIELD_INTERFACE: u8 = 2;
pub(super) const FIELD_MEMBER: u8 = 3;
pub(super) const FIELD_ERROR_NAME: u8 = 4;
pub(super) const FIELD_REPLY_SERIAL: u8 = 5;
pub(super) const FIELD_DESTINATION: u8 = 6;
pub(super) const FIELD_SENDER: u8 = 7;
pub(super) const FIELD_SIGNATURE: u8 = 8;

/// The fixed part of a header: endianness, type, flags, version, body
/// length, serial, and the length of the header field array.
pub(super) const FIXED_HEADER_LEN: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub(super) kind: MessageType,
    pub(super) flags: u8,
    pub(super) serial: u32,
    pub(super) path: Option<String>,
    pub(super) interface: Option<String>,
    pub(super) member: Option<String>,
    pub(super) error_name: Option<String>,
    pub(super) reply_serial: Option<u32>,
    pub(super) destination: Option<String>,
    pub(super) sender: Option<String>,
    pub(super) body: Vec<Value>,
}

impl Message {
    fn new(kind: MessageType) -> Message {
        Message {
            kind,
            flags: 0,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
        }
    }

    pub fn method_call(destination: &str, path: &str, interface: &str, member: &str, body: Vec<Value>) -> Message {
        Message {
            destination: Some(destination.to_string()),
            path: Some(path.to_string()),
            interface: Some(interface.to_string()),
            member: Some(member.to_string()),
            body,
            ..Message::new(MessageType::MethodCall)
        }
    }

    #[cfg(test)]
    pub fn signal(path: &str, interface: &str, member: &str, body: Vec<Value>) -> Message {
        Message {
            path: Some(path.to_string()),
            interface: Some(interface.to_string()),
            member: Some(member.to_string()),
            body,
            ..Message::new(MessageType::Signal)
        }
    }

    /// The reply to `call`.
    #[cfg(test)]
    pub fn method_return(call: &Message, body: Vec<Value>) -> Message {
        Message {
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            body,
            ..Message::new(MessageType::MethodReturn)
        }
    }

    /// An error reply to `call`.
    #[cfg(test)]
    pub fn error(call: &Message, name: &str, text: &str) -> Message {
        Message {
            kind: MessageType::Error,
            error_name: Some(name.to_string()),
            body: vec![Value::str(text)],
            ..Message::method_return(call, Vec::new())
        }
    }

    #[cfg(test)]
    pub fn kind(&self) -> MessageType {
        self.kind
    }
    #[cfg(test)]
    pub fn serial(&self) -> u32 {
        self.serial
    }
    #[cfg(test)]
    pub fn reply_serial(&self) -> Option<u32> {
        self.reply_serial
    }
    #[cfg(test)]
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }
    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }
    #[cfg(test)]
    pub fn error_name(&self) -> Option<&str> {
        self.error_name.as_deref()
    }
    #[cfg(test)]
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }
    pub fn body(&self) -> &[Value] {
        &self.body
    }

    /// The wire form (little-endian) with serial `self.serial`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.serial == 0 {
            bail!("D-Bus message serial must not be 0");
        }
        let (body, sig) = marshal(&self.body)?;
        let text = |code: u8, v: &Option<String>, wrap: fn(String) -> Value| {
            v.as_ref()
                .map(|s| Value::Struct(vec![Value::Byte(code), Value::variant(wrap(s.clone()))]))
        };
        let fields: Vec<Value> = [
            text(FIELD_PATH, &self.path, Value::ObjectPath),
            text(FIELD_INTERFACE, &self.interface, Value::Str),
            text(FIELD_MEMBER, &self.member, Value::Str),
            text(FIELD_ERROR_NAME, &self.error_name, Value::Str),
            self.reply_serial
                .map(|s| Value::Struct(vec![Value::Byte(FIELD_REPLY_SERIAL), Value::variant(Value::U32(s))])),
            text(FIELD_DESTINATION, &self.destination, Value::Str),
            text(FIELD_SENDER, &self.sender, Value::Str),
            (!sig.is_empty()).then(|| {
                Value::Struct(vec![
                    Value::Byte(FIELD_SIGNATURE),
                    Value::variant(Value::Signature(sig)),
                ])
            }),
        ]
        .into_iter()
        .flatten()
        .collect();

        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', self.kind.code(), self.flags, 1]);
        w.put(4, &(body.len() as u32).to_le_bytes());
        w.put(4, &self.serial.to_le_bytes());
        w.value(&Value::array("(yv)", fields))?;
        w.pad(8);
        w.buf.extend_from_slice(&body);
        if w.buf.len() > MAX_MESSAGE_LEN {
            bail!("D-Bus message of {} bytes is over the limit", w.buf.len());
        }
        Ok(w.buf)
    }

    /// The total length of the message whose first 16 bytes are `fixed`.
    pub fn wire_len(fixed: &[u8]) -> Result<usize> {
        let Some(fixed) = fixed.get(..FIXED_HEADER_LEN) else {
            bail!("truncated D-Bus message header");
        };
        let big_endian = endianness(fixed[0])?;
        if fixed[3] != 1 {
            bail!("D-Bus protocol version {} is not 1", fixed[3]);
        }
        let word = |at: usize| {
            let b: [u8; 4] = fixed[at..at + 4].try_into().unwrap_or_default();
            (if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }) as usize
        };
        let (body_len, fields_len) = (word(4), word(12));
        if body_len > MAX_MESSAGE_LEN || fields_len > MAX_ARRAY_LEN {
            bail!("D-Bus message lengths {fields_len}/{body_len} are over the limit");
        }
        let total = (FIXED_HEADER_LEN + fields_len).div_ceil(8) * 8 + body_len;
        if total > MAX_MESSAGE_LEN {
            bail!("D-Bus message of {total} bytes is over the limit");
        }
        Ok(total)
    }

    /// Parses exactly one whole message.
    pub fn decode(buf: &[u8]) -> Result<Message> {
        let total = Message::wire_len(buf)?;
        if buf.len() != total {
            bail!("D-Bus message is {} bytes, its header says {total}", buf.len());
        }
        let big_endian = endianness(buf[0])?;
        let mut r = Reader {
            buf,
            pos: 4,
            big_endian,
        };
        let body_len = r.u32()? as usize;
        let mut m = Message::new(MessageType::from_code(buf[1]));
        m.flags = buf[2];
        m.serial = r.u32()?;
        if m.serial == 0 {
            bail!("D-Bus message serial is 0");
        }
        let Value::Array(_, fields) = r.value(b"a(yv)", 0)? else {
            bail!("bad D-Bus header fields");
        };
        r.align(8)?;
        let mut sig = String::new();
        for field in fields {
            let Value::Struct(f) = field else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
                continue;
            };
            let bad = || anyhow!("D-Bus header field {code} has the wrong type {}", v.signature());
            let text = || v.as_str().map(str::to_string).ok_or_else(bad);
            match (*code, v.as_ref()) {
                (FIELD_PATH, Value::ObjectPath(p)) => m.path = Some(p.clone()),
                (FIELD_INTERFACE, Value::Str(_)) => m.interface = Some(text()?),
                (FIELD_MEMBER, Value::Str(_)) => m.member = Some(text()?),
                (FIELD_ERROR_NAME, Value::Str(_)) => m.error_name = Some(text()?),
                (FIELD_REPLY_SERIAL, Value::U32(s)) => m.reply_serial = Some(*s),
                (FIELD_DESTINATION, Value::Str(_)) => m.destination = Some(text()?),
                (FIELD_SENDER, Value::Str(_)) => m.sender = Some(text()?),
                (FIELD_SIGNATURE, Value::Signature(s)) => sig = s.clone(),
                (FIELD_PATH..=FIELD_SIGNATURE, _) => return Err(bad()),
                _ => {} // unknown fields (and UNIX_FDS) are ignored
            }
        }
        let required: &[(&str, bool)] = match m.kind {
            MessageType::MethodCall => &[("PATH", m.path.is_some()), ("MEMBER", m.member.is_some())],
            MessageType::Signal => &[
                ("PATH", m.path.is_some()),
                ("INTERFACE", m.interface.is_some()),
                ("MEMBER", m.member.is_some()),
            ],
            MessageType::Error => &[
                ("ERROR_NAME", m.error_name.is_some()),
                ("REPLY_SERIAL", m.reply_serial.is_some()),
            ],
            MessageType::MethodReturn => &[("REPLY_SERIAL", m.reply_serial.is_some())],
            MessageType::Other(_) => &[],
        };
        if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
            bail!("D-Bus {:?} message lacks the {name} header field", m.kind);
        }
        if body_len > 0 && sig.is_empty() {
            bail!("D-Bus message has a body but no signature");
        }
        m.body = unmarshal(&buf[r.pos..], &sig, big_endian)?;
        Ok(m)
    }
}

pub(super) fn endianness(b: u8) -> Result<bool> {
    match b {
        b'l' => Ok(false),
        b'B' => Ok(true),
        _ => bail!("bad D-Bus endianness byte {b:#04x}"),
    }
}

// ---- errors ----

/// An error reply: `<name>: <message>`. Callers recover the name with
/// `error_name(&err)` or `err.downcast_ref::<DbusError>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbusError {
    pub name: String,
    pub message: String,
}

impl fmt::Display for DbusError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}: {}", self.name, self.message)
        }
    }
}

impl std::error::Error for DbusError {}

/// The D-Bus error name somewhere in `err`'s chain, if it came from an error reply.
pub fn error_name(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .find_map(|e| e.downcast_ref::<DbusError>())
        .map(|e| e.name.as_str())
}
