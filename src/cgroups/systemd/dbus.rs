//! A minimal, blocking D-Bus client: values and their wire format (driven by
//! signatures), messages, and a connection that authenticates with EXTERNAL,
//! calls methods and waits for signals. Just what the systemd cgroup driver
//! needs: no unix fds, no object serving, no introspection.
//!
//! Everything read from the socket is checked (lengths, alignment, nesting,
//! UTF-8) and turns into an error, never a panic.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::sys;

/// Limits from the D-Bus specification.
const MAX_ARRAY_LEN: usize = 1 << 26;
const MAX_MESSAGE_LEN: usize = 1 << 27;
const MAX_SIGNATURE_LEN: usize = 255;
/// Arrays, structs and variants nested in one another.
const MAX_DEPTH: usize = 64;
/// Signals kept while nobody waits for them; the oldest go first.
const MAX_QUEUED: usize = 256;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A D-Bus value. Signed/unsigned 16-bit integers are there because replies
/// may carry them; unix fds (`h`) are not supported.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// The element signature, so that an empty array still has a type.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn path(s: impl Into<String>) -> Value {
        Value::ObjectPath(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn array(element_signature: &str, items: Vec<Value>) -> Value {
        Value::Array(element_signature.to_string(), items)
    }

    /// The signature of this one value, e.g. `a(sv)`.
    pub fn signature(&self) -> String {
        let mut out = String::new();
        self.push_signature(&mut out);
        out
    }

    fn push_signature(&self, out: &mut String) {
        match self {
            Value::Byte(_) => out.push('y'),
            Value::Bool(_) => out.push('b'),
            Value::I16(_) => out.push('n'),
            Value::U16(_) => out.push('q'),
            Value::I32(_) => out.push('i'),
            Value::U32(_) => out.push('u'),
            Value::I64(_) => out.push('x'),
            Value::U64(_) => out.push('t'),
            Value::Double(_) => out.push('d'),
            Value::Str(_) => out.push('s'),
            Value::ObjectPath(_) => out.push('o'),
            Value::Signature(_) => out.push('g'),
            Value::Array(element, _) => {
                out.push('a');
                out.push_str(element);
            }
            Value::Struct(fields) => {
                out.push('(');
                fields.iter().for_each(|f| f.push_signature(out));
                out.push(')');
            }
            Value::DictEntry(key, value) => {
                out.push('{');
                key.push_signature(out);
                value.push_signature(out);
                out.push('}');
            }
            Value::Variant(_) => out.push('v'),
        }
    }

    /// The text of a string, object path or signature.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    /// Any unsigned integer, widened.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Byte(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            _ => None,
        }
    }

    /// Any signed integer, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The items of an array, or the fields of a struct.
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) | Value::Struct(items) => Some(items),
            _ => None,
        }
    }

    /// The value inside any number of variants.
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner.unwrap_variant(),
            other => other,
        }
    }
}

// ---- signatures ----

fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1, // y g v
    }
}

fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdsog".contains(&code)
}

/// The length of the complete type at the start of `sig`.
fn complete_type_len(sig: &[u8], depth: usize, in_array: bool) -> Result<usize> {
    if depth > MAX_DEPTH {
        bail!("nested too deeply");
    }
    match sig.first() {
        None => bail!("incomplete type"),
        Some(&c) if is_basic(c) || c == b'v' => Ok(1),
        Some(b'h') => bail!("unix fds ('h') are not supported"),
        Some(b'a') => Ok(1 + complete_type_len(&sig[1..], depth + 1, true)?),
        Some(b'(') => {
            let mut i = 1;
            loop {
                match sig.get(i) {
                    Some(b')') if i > 1 => return Ok(i + 1),
                    Some(b')') => bail!("empty struct"),
                    None => bail!("unterminated struct"),
                    _ => i += complete_type_len(&sig[i..], depth + 1, false)?,
                }
            }
        }
        Some(b'{') => {
            if !in_array {
                bail!("dict entry outside an array");
            }
            match sig.get(1) {
                Some(&k) if is_basic(k) => {}
                _ => bail!("dict entry key is not a basic type"),
            }
            let end = 2 + complete_type_len(&sig[2..], depth + 1, false)?;
            match sig.get(end) {
                Some(b'}') => Ok(end + 1),
                _ => bail!("dict entry needs exactly one key and one value"),
            }
        }
        Some(&c) => bail!("unknown type code {:?}", c as char),
    }
}

/// Checks a signature (any number of complete types, at most 255 bytes).
pub fn validate_signature(sig: &str) -> Result<()> {
    let check = || -> Result<()> {
        if sig.len() > MAX_SIGNATURE_LEN {
            bail!("longer than {MAX_SIGNATURE_LEN} bytes");
        }
        let mut rest = sig.as_bytes();
        while !rest.is_empty() {
            rest = &rest[complete_type_len(rest, 0, false)?..];
        }
        Ok(())
    };
    check().with_context(|| format!("bad D-Bus signature {sig:?}"))
}

/// The complete types of a valid signature, one by one.
fn split_types(sig: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = sig;
    std::iter::from_fn(move || {
        let len = complete_type_len(rest, 0, true).ok()?;
        let (first, tail) = rest.split_at(len);
        rest = tail;
        Some(first)
    })
}

fn is_object_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && p[1..]
                .split('/')
                .all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')))
}

// ---- marshalling ----

/// Little-endian output; offsets are relative to the message start (the
/// body starts 8-aligned, so a body written on its own aligns the same).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    fn put(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }

    fn string(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            bail!("string {s:?} contains a NUL byte");
        }
        self.put(4, &(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn signature(&mut self, s: &str) -> Result<()> {
        validate_signature(s)?;
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn value(&mut self, v: &Value) -> Result<()> {
        match v {
            Value::Byte(x) => self.put(1, &[*x]),
            Value::Bool(x) => self.put(4, &u32::from(*x).to_le_bytes()),
            Value::I16(x) => self.put(2, &x.to_le_bytes()),
            Value::U16(x) => self.put(2, &x.to_le_bytes()),
            Value::I32(x) => self.put(4, &x.to_le_bytes()),
            Value::U32(x) => self.put(4, &x.to_le_bytes()),
            Value::I64(x) => self.put(8, &x.to_le_bytes()),
            Value::U64(x) => self.put(8, &x.to_le_bytes()),
            Value::Double(x) => self.put(8, &x.to_le_bytes()),
            Value::Str(s) => self.string(s)?,
            Value::ObjectPath(p) => {
                if !is_object_path(p) {
                    bail!("bad D-Bus object path {p:?}");
                }
                self.string(p)?
            }
            Value::Signature(s) => self.signature(s)?,
            Value::Array(element, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // The padding to the first element is there even when the
                // array is empty, and is not counted in the length.
                self.pad(alignment(element.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for item in items {
                    let sig = item.signature();
                    if sig != *element {
                        bail!("array of {element:?} holds a value of type {sig:?}");
                    }
                    self.value(item)?;
                }
                let len = self.buf.len() - start;
                if len > MAX_ARRAY_LEN {
                    bail!("array of {len} bytes is longer than D-Bus allows");
                }
                self.buf[len_at..len_at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f)?;
                }
            }
            Value::DictEntry(key, value) => {
                self.pad(8);
                self.value(key)?;
                self.value(value)?;
            }
            Value::Variant(inner) => {
                self.signature(&inner.signature())?;
                self.value(inner)?;
            }
        }
        Ok(())
    }
}

/// The wire form of `values` (a message body), and its signature.
pub fn marshal(values: &[Value]) -> Result<(Vec<u8>, String)> {
    let sig: String = values.iter().map(Value::signature).collect();
    validate_signature(&sig)?;
    let mut w = Writer::default();
    for v in values {
        w.value(v)?;
    }
    Ok((w.buf, sig))
}

// ---- unmarshalling ----

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn align(&mut self, align: usize) -> Result<()> {
        let pos = self.pos.div_ceil(align) * align;
        if pos > self.buf.len() {
            bail!("truncated D-Bus data (padding at offset {})", self.pos);
        }
        self.pos = pos;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            bail!("truncated D-Bus data ({n} bytes wanted at offset {})", self.pos);
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut b: [u8; N] = self.take(N)?.try_into()?;
        if self.big_endian {
            b.reverse(); // to little-endian
        }
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            bail!("D-Bus string not NUL-terminated at offset {}", self.pos - 1);
        }
        if bytes.contains(&0) {
            bail!("D-Bus string contains a NUL byte");
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("D-Bus string is not UTF-8"))
    }

    fn signature(&mut self) -> Result<String> {
        let len = self.take(1)?[0] as usize;
        let sig = self.text(len)?;
        validate_signature(&sig)?;
        Ok(sig)
    }

    /// One value of the complete type `sig`.
    fn value(&mut self, sig: &[u8], depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            bail!("D-Bus value nested too deeply");
        }
        let code = sig.first().copied().unwrap_or(0);
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => bail!("D-Bus boolean is {n}, not 0 or 1"),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if code == b'o' && !is_object_path(&s) {
                    bail!("bad D-Bus object path {s:?}");
                }
                if code == b'o' {
                    Value::ObjectPath(s)
                } else {
                    Value::Str(s)
                }
            }
            b'g' => Value::Signature(self.signature()?),
            b'v' => {
                let inner = self.signature()?;
                let types: Vec<&[u8]> = split_types(inner.as_bytes()).collect();
                if types.len() != 1 {
                    bail!("D-Bus variant signature {inner:?} is not one complete type");
                }
                Value::Variant(Box::new(self.value(types[0], depth + 1)?))
            }
            b'a' => {
                let element = &sig[1..];
                let len = self.u32()? as usize;
                if len > MAX_ARRAY_LEN {
                    bail!("D-Bus array length {len} is over the limit");
                }
                self.align(alignment(element.first().copied().unwrap_or(b'y')))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    bail!("truncated D-Bus data (array of {len} bytes at offset {})", self.pos);
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(element, depth + 1)?);
                }
                if self.pos != end {
                    bail!("D-Bus array elements overrun its length {len}");
                }
                Value::Array(String::from_utf8_lossy(element).into_owned(), items)
            }
            b'(' => {
                self.align(8)?;
                let inner = sig.get(1..sig.len() - 1).unwrap_or_default();
                let fields = split_types(inner).map(|t| self.value(t, depth + 1));
                Value::Struct(fields.collect::<Result<_>>()?)
            }
            b'{' => {
                self.align(8)?;
                let mut types = split_types(sig.get(1..sig.len() - 1).unwrap_or_default());
                let (Some(k), Some(v)) = (types.next(), types.next()) else {
                    bail!("bad D-Bus dict entry signature");
                };
                let key = self.value(k, depth + 1)?;
                Value::DictEntry(Box::new(key), Box::new(self.value(v, depth + 1)?))
            }
            _ => bail!("unsupported D-Bus type {:?}", code as char),
        })
    }
}

/// The values of a message body of signature `sig`, which must use all of `buf`.
pub fn unmarshal(buf: &[u8], sig: &str, big_endian: bool) -> Result<Vec<Value>> {
    validate_signature(sig)?;
    let mut r = Reader {
        buf,
        pos: 0,
        big_endian,
    };
    let values = split_types(sig.as_bytes())
        .map(|t| r.value(t, 0))
        .collect::<Result<Vec<_>>>()?;
    if r.pos != buf.len() {
        bail!(
            "{} trailing bytes after a D-Bus body of signature {sig:?}",
            buf.len() - r.pos
        );
    }
    Ok(values)
}

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
const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SENDER: u8 = 7;
const FIELD_SIGNATURE: u8 = 8;

/// The fixed part of a header: endianness, type, flags, version, body
/// length, serial, and the length of the header field array.
const FIXED_HEADER_LEN: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    kind: MessageType,
    flags: u8,
    serial: u32,
    path: Option<String>,
    interface: Option<String>,
    member: Option<String>,
    error_name: Option<String>,
    reply_serial: Option<u32>,
    destination: Option<String>,
    sender: Option<String>,
    body: Vec<Value>,
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
    pub fn method_return(call: &Message, body: Vec<Value>) -> Message {
        Message {
            reply_serial: Some(call.serial),
            destination: call.sender.clone(),
            body,
            ..Message::new(MessageType::MethodReturn)
        }
    }

    /// An error reply to `call`.
    pub fn error(call: &Message, name: &str, text: &str) -> Message {
        Message {
            kind: MessageType::Error,
            error_name: Some(name.to_string()),
            body: vec![Value::str(text)],
            ..Message::method_return(call, Vec::new())
        }
    }

    pub fn kind(&self) -> MessageType {
        self.kind
    }
    pub fn serial(&self) -> u32 {
        self.serial
    }
    pub fn reply_serial(&self) -> Option<u32> {
        self.reply_serial
    }
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }
    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }
    pub fn error_name(&self) -> Option<&str> {
        self.error_name.as_deref()
    }
    pub fn destination(&self) -> Option<&str> {
        self.destination.as_deref()
    }
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

fn endianness(b: u8) -> Result<bool> {
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

// ---- addresses ----

/// The unescaped value of `key` in one address entry, e.g. `unix:path=/x,guid=..`.
fn address_value(entry: &str, key: &str) -> Result<Option<String>> {
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

fn unescape(v: &str) -> Result<String> {
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
fn escape(v: &str) -> String {
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

enum Target {
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
fn targets(address: &str) -> Result<Vec<Target>> {
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

fn open(target: &Target) -> io::Result<UnixStream> {
    match target {
        Target::Path(p) => UnixStream::connect(p),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            UnixStream::connect_addr(&addr)
        }
    }
}

fn io_text(err: &io::Error) -> String {
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

    /// How long a call waits for its reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
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

#[cfg(test)]
pub(super) mod tests;
