//! Logging as runc does it (logrus): records go to `--log FILE`, else to
//! stderr, in logrus' text form (`time="..." level=error msg="..."`) or
//! (`--log-format json`) one `{"level","msg","time"}` object per line, which
//! is what containerd's go-runc reads back from the file to report errors.
//! With a log file an error is also printed plainly on stderr, one line.
//! `--debug` adds debug records, including the per-phase start-up timeline.

use std::fmt::Write as _;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<RawFd>,
    /// Set in a container's init once it closed `file` (see `close_file`).
    file_closed: AtomicBool,
    json: bool,
    debug: bool,
    start: Instant,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the logger up once, from the global flags. An unopenable log file is
/// an error the caller reports.
pub fn init(path: Option<&std::path::Path>, json: bool, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?
                .into_raw_fd(),
        ),
        None => None,
    };
    // The fd must not reach the container: it is close-on-exec (std sets it).
    let _ = LOGGER.set(Logger {
        file,
        file_closed: AtomicBool::new(false),
        json,
        debug,
        start: Instant::now(),
    });
    Ok(())
}

/// The `--log` file's fd, if one is open.
pub fn file_fd() -> Option<RawFd> {
    LOGGER.get().filter(|l| !l.file_closed.load(Ordering::Relaxed))?.file
}

/// Closes the `--log` file in a container's init before it waits for
/// `start`, so it holds no host file. Errors still go to stderr after this;
/// debug records are dropped.
pub fn close_file() {
    if let Some(fd) = file_fd() {
        if let Some(l) = LOGGER.get() {
            l.file_closed.store(true, Ordering::Relaxed);
        }
        sys::close(fd);
    }
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

/// Milliseconds since the runtime started, for the debug timeline.
pub fn elapsed_ms() -> f64 {
    LOGGER.get().map_or(0.0, |l| l.start.elapsed().as_secs_f64() * 1000.0)
}

pub fn log(level: Level, msg: &str) {
    let Some(l) = LOGGER.get() else {
        // Before the flags are read (or without them): stderr, text form.
        if level != Level::Debug {
            let _ = sys::write_all(2, format_record(level, msg, false).as_bytes());
        }
        return;
    };
    if level == Level::Debug && !l.debug {
        return;
    }
    let file = l.file.filter(|_| !l.file_closed.load(Ordering::Relaxed));
    match file {
        Some(fd) => {
            let _ = sys::write_all(fd, format_record(level, msg, l.json).as_bytes());
        }
        // A container's init that closed the file keeps only its errors.
        None if l.file.is_some() => {}
        None => {
            let _ = sys::write_all(2, format_record(level, msg, l.json).as_bytes());
            return;
        }
    }
    // The log is not stderr: the caller still sees the error itself there.
    if level == Level::Error {
        let _ = sys::write_all(2, format!("{msg}\n").as_bytes());
    }
}

/// One record as a line, in the chosen format; the time to the second, as
/// logrus' default.
fn format_record(level: Level, msg: &str, json: bool) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let time = rfc3339_seconds(now.as_secs() as i64);
    if json {
        let obj = serde_json::json!({ "level": level.name(), "msg": msg, "time": time });
        format!("{obj}\n")
    } else {
        let mut s = String::new();
        let _ = writeln!(s, "time=\"{time}\" level={} msg={}", level.name(), text_value(msg));
        s
    }
}

/// A value in logrus' text form: bare when it has only `[A-Za-z0-9-._/@^+]`,
/// else quoted.
fn text_value(v: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "-._/@^+".contains(c);
    if v.chars().all(bare) {
        v.to_string()
    } else {
        quote(v)
    }
}

/// `s` in double quotes, escaped as Go's `%q` does: `\"`, `\\`, the C
/// escapes, `\xNN` for other control bytes, `\u`/`\U` for unprintable runes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = match c as u32 {
                    v if v <= 0xffff => write!(out, "\\u{v:04x}"),
                    v => write!(out, "\\U{v:08x}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn rfc3339_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// A UTC timestamp as Go's RFC 3339, whole seconds (logrus' log records).
pub fn rfc3339_seconds(secs: i64) -> String {
    let full = rfc3339(secs, 0);
    format!("{}Z", &full[..19])
}

/// Formats a UTC timestamp as RFC 3339 with nanoseconds, as Go does.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::logging::debug_enabled() {
            $crate::logging::log($crate::logging::Level::Debug, &format!($($arg)*))
        }
    };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::logging::log($crate::logging::Level::Warn, &format!($($arg)*)) };
}

/// Records a start-up phase on the `--debug` timeline.
#[macro_export]
macro_rules! phase {
    ($name:expr) => {
        if $crate::logging::debug_enabled() {
            $crate::logging::log(
                $crate::logging::Level::Debug,
                &format!("phase {} at {:.3} ms", $name, $crate::logging::elapsed_ms()),
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn text_record_is_logrus_form() {
        let line = format_record(Level::Error, "container does not exist", false);
        let (time, rest) = line.strip_prefix("time=\"").unwrap().split_once('"').unwrap();
        assert_eq!(time.len(), "2026-12-07T15:20:00Z".len(), "{line}");
        assert!(time.ends_with('Z'), "{line}");
        assert_eq!(rest, " level=error msg=\"container does not exist\"\n");
        let bare = format_record(Level::Warn, "a-b.c/d", false);
        assert!(bare.ends_with(" level=warning msg=a-b.c/d\n"), "{bare}");
    }

    #[test]
    fn quote_escapes_as_go() {
        assert_eq!(quote("say \"hi\"\\"), r#""say \"hi\"\\""#);
        assert_eq!(quote("a\nb\tc\u{0}\u{1b}"), r#""a\nb\tc\x00\x1b""#);
        assert_eq!(quote("é \u{85}"), "\"é \\u0085\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn rfc3339_seconds_drops_the_fraction() {
        assert_eq!(rfc3339_seconds(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn json_record_has_level_msg_time() {
        let line = format_record(Level::Error, "boom \"x\"", true);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
