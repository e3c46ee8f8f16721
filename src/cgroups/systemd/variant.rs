//! The part of GVariant's text format that `org.systemd.property.*`
//! annotations use: "true", "uint64 123", "@t 123", "'a string'", "5",
//! "[ 'a', 'b' ]", "@as []". Anything else is refused, not guessed.

use anyhow::{anyhow, bail, Result};

use super::dbus::Value;

pub fn parse(text: &str) -> Result<Value> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let v = p.value(None)?;
    p.skip_space();
    if p.at != p.s.len() {
        bail!("unexpected {:?} at offset {}", &text[p.at..], p.at);
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

/// Type keywords and their D-Bus signatures.
const KEYWORDS: &[(&str, &str)] = &[
    ("boolean", "b"),
    ("byte", "y"),
    ("int32", "i"),
    ("uint32", "u"),
    ("int64", "x"),
    ("uint64", "t"),
    ("double", "d"),
    ("string", "s"),
    ("objectpath", "o"),
    ("signature", "g"),
];

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn word(&mut self) -> &str {
        let start = self.at;
        while self
            .s
            .get(self.at)
            .is_some_and(|c| !c.is_ascii_whitespace() && !b",]".contains(c))
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at]).unwrap_or("")
    }

    /// One value, of signature `want` when the context fixes it.
    fn value(&mut self, want: Option<&str>) -> Result<Value> {
        self.skip_space();
        let start = self.at;
        let word = self.word().to_string();
        if let Some(sig) = word.strip_prefix('@') {
            return self.value(Some(sig));
        }
        if let Some((_, sig)) = KEYWORDS.iter().find(|(k, _)| *k == word) {
            return self.value(Some(sig));
        }
        self.at = start;
        match self.s.get(self.at) {
            Some(b'\'' | b'"') => {
                let s = self.string()?;
                match want.unwrap_or("s") {
                    "s" => Ok(Value::Str(s)),
                    "o" => Ok(Value::ObjectPath(s)),
                    "g" => Ok(Value::Signature(s)),
                    other => bail!("a string where {other:?} was wanted"),
                }
            }
            Some(b'[') => self.array(want),
            Some(_) => {
                let word = self.word().to_string();
                scalar(&word, want)
            }
            None => bail!("missing value"),
        }
    }

    fn string(&mut self) -> Result<String> {
        let quote = self.s[self.at];
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.at).ok_or_else(|| anyhow!("unterminated string"))?;
            self.at += 1;
            match c {
                b'\\' => {
                    let e = *self.s.get(self.at).ok_or_else(|| anyhow!("unterminated string"))?;
                    self.at += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                c if c == quote => break,
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| anyhow!("string is not UTF-8"))
    }

    fn array(&mut self, want: Option<&str>) -> Result<Value> {
        let elem = match want {
            Some(sig) => Some(
                sig.strip_prefix('a')
                    .ok_or_else(|| anyhow!("an array where {sig:?} was wanted"))?,
            ),
            None => None,
        };
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.s.get(self.at) == Some(&b']') {
                self.at += 1;
                break;
            }
            if !items.is_empty() {
                if self.s.get(self.at) != Some(&b',') {
                    bail!("expected ',' or ']' at offset {}", self.at);
                }
                self.at += 1;
            }
            let fixed = elem.map(str::to_string).or_else(|| items.first().map(signature));
            items.push(self.value(fixed.as_deref())?);
        }
        let sig = match (elem, items.first()) {
            (Some(e), _) => e.to_string(),
            (None, Some(first)) => signature(first),
            (None, None) => bail!("an empty array needs a type, e.g. \"@as []\""),
        };
        if items.iter().any(|v| signature(v) != sig) {
            bail!("array elements of different types");
        }
        Ok(Value::Array(sig, items))
    }
}

/// The signature of the values this parser makes.
fn signature(v: &Value) -> String {
    match v {
        Value::Bool(_) => "b".into(),
        Value::Byte(_) => "y".into(),
        Value::I32(_) => "i".into(),
        Value::U32(_) => "u".into(),
        Value::I64(_) => "x".into(),
        Value::U64(_) => "t".into(),
        Value::Double(_) => "d".into(),
        Value::Str(_) => "s".into(),
        Value::ObjectPath(_) => "o".into(),
        Value::Signature(_) => "g".into(),
        Value::Array(e, _) => format!("a{e}"),
        _ => "?".into(),
    }
}

/// A boolean or number, typed by `want` (untyped: int32, or a double when it
/// has a fraction or exponent, as GVariant reads them).
fn scalar(word: &str, want: Option<&str>) -> Result<Value> {
    let bad = || anyhow!("{word:?} is not a valid {}", want.unwrap_or("value"));
    let int = |w: &str| -> Option<i128> {
        match w.strip_prefix("0x") {
            Some(hex) => i128::from_str_radix(hex, 16).ok(),
            None => w.parse().ok(),
        }
    };
    let is_float = word.contains(['.', 'e', 'E']) && !word.starts_with("0x");
    Ok(match (want, word) {
        (None | Some("b"), "true") => Value::Bool(true),
        (None | Some("b"), "false") => Value::Bool(false),
        (None, w) if is_float => Value::Double(w.parse().map_err(|_| bad())?),
        (None | Some("i"), w) => Value::I32(int(w).and_then(|n| n.try_into().ok()).ok_or_else(bad)?),
        (Some("y"), w) => Value::Byte(int(w).and_then(|n| n.try_into().ok()).ok_or_else(bad)?),
        (Some("u"), w) => Value::U32(int(w).and_then(|n| n.try_into().ok()).ok_or_else(bad)?),
        (Some("x"), w) => Value::I64(int(w).and_then(|n| n.try_into().ok()).ok_or_else(bad)?),
        (Some("t"), w) => Value::U64(int(w).and_then(|n| n.try_into().ok()).ok_or_else(bad)?),
        (Some("d"), w) => Value::Double(w.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_typed_and_untyped() {
        assert_eq!(parse("true").unwrap(), Value::Bool(true));
        assert_eq!(parse(" uint64 123456789 ").unwrap(), Value::U64(123_456_789));
        assert_eq!(parse("@t 5").unwrap(), Value::U64(5));
        assert_eq!(parse("uint32 0x10").unwrap(), Value::U32(16));
        assert_eq!(parse("42").unwrap(), Value::I32(42));
        assert_eq!(parse("-1").unwrap(), Value::I32(-1));
        assert_eq!(parse("1.5").unwrap(), Value::Double(1.5));
        assert_eq!(parse("boolean false").unwrap(), Value::Bool(false));
        assert_eq!(parse("byte 255").unwrap(), Value::Byte(255));
    }

    #[test]
    fn strings_and_arrays() {
        assert_eq!(
            parse("'inactive-or-failed'").unwrap(),
            Value::Str("inactive-or-failed".into())
        );
        assert_eq!(parse(r#""it's""#).unwrap(), Value::Str("it's".into()));
        assert_eq!(parse(r"'a\'b'").unwrap(), Value::Str("a'b".into()));
        assert_eq!(parse("objectpath '/x'").unwrap(), Value::ObjectPath("/x".into()));
        assert_eq!(
            parse("['a', 'b']").unwrap(),
            Value::Array("s".into(), vec![Value::Str("a".into()), Value::Str("b".into())])
        );
        assert_eq!(parse("@as []").unwrap(), Value::Array("s".into(), vec![]));
        assert_eq!(
            parse("@au [1, 2]").unwrap(),
            Value::Array("u".into(), vec![Value::U32(1), Value::U32(2)])
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "",
            "'open",
            "uint64 -1",
            "byte 256",
            "int32 3000000000",
            "yes",
            "[1, 'a']",
            "[]",
            "['a' 'b']",
            "5 6",
            "uint64 'x'",
            "@as 5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted: {:?}", parse(bad));
        }
    }
}
