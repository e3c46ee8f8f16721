//! D-Bus values and their wire format, driven by signatures.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Limits from the D-Bus specification.
pub(super) const MAX_ARRAY_LEN: usize = 1 << 26;
pub(super) const MAX_MESSAGE_LEN: usize = 1 << 27;
pub(super) const MAX_SIGNATURE_LEN: usize = 255;
/// Arrays, structs and variants nested in one another.
pub(super) const MAX_DEPTH: usize = 64;
/// Signals kept while nobody waits for them; the oldest go first.
pub(super) const MAX_QUEUED: usize = 256;

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
    #[cfg(test)]
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
    #[cfg(test)]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The items of an array, or the fields of a struct.
    #[cfg(test)]
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) | Value::Struct(items) => Some(items),
            _ => None,
        }
    }

    /// The value inside any number of variants.
    #[cfg(test)]
    pub fn unwrap_variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner.unwrap_variant(),
            other => other,
        }
    }
}

// ---- signatures ----

pub(super) fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1, // y g v
    }
}

pub(super) fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdsog".contains(&code)
}

/// The length of the complete type at the start of `sig`.
pub(super) fn complete_type_len(sig: &[u8], depth: usize, in_array: bool) -> Result<usize> {
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
pub(super) fn split_types(sig: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = sig;
    std::iter::from_fn(move || {
        let len = complete_type_len(rest, 0, true).ok()?;
        let (first, tail) = rest.split_at(len);
        rest = tail;
        Some(first)
    })
}

pub(super) fn is_object_path(p: &str) -> bool {
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
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    pub(super) fn put(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }

    pub(super) fn string(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            bail!("string {s:?} contains a NUL byte");
        }
        self.put(4, &(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    pub(super) fn signature(&mut self, s: &str) -> Result<()> {
        validate_signature(s)?;
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    pub(super) fn value(&mut self, v: &Value) -> Result<()> {
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

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) big_endian: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn align(&mut self, align: usize) -> Result<()> {
        let pos = self.pos.div_ceil(align) * align;
        if pos > self.buf.len() {
            bail!("truncated D-Bus data (padding at offset {})", self.pos);
        }
        self.pos = pos;
        Ok(())
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            bail!("truncated D-Bus data ({n} bytes wanted at offset {})", self.pos);
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut b: [u8; N] = self.take(N)?.try_into()?;
        if self.big_endian {
            b.reverse(); // to little-endian
        }
        Ok(b)
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    pub(super) fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            bail!("D-Bus string not NUL-terminated at offset {}", self.pos - 1);
        }
        if bytes.contains(&0) {
            bail!("D-Bus string contains a NUL byte");
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("D-Bus string is not UTF-8"))
    }

    pub(super) fn signature(&mut self) -> Result<String> {
        let len = self.take(1)?[0] as usize;
        let sig = self.text(len)?;
        validate_signature(&sig)?;
        Ok(sig)
    }

    /// One value of the complete type `sig`.
    pub(super) fn value(&mut self, sig: &[u8], depth: usize) -> Result<Value> {
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
