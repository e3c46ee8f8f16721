//! `xrun events`: the container's resource statistics as runc prints them,
//! once (`--stats`) or every `--interval` together with OOM-kill events
//! until the container stops. One JSON object per line:
//! `{"type":"stats","id":ID,"data":{...}}` and `{"type":"oom","id":ID}`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::cgroups::stats::{self, Stats};
use crate::cli::EventsArgs;
use crate::state::{self, ContainerDir, Status};

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

/// How often the container's liveness and OOM counter are checked between
/// stats reports.
const POLL: Duration = Duration::from_millis(200);

/// Writes one event line; false when stdout is gone (the reader quit).
fn emit(event: &Event) -> Result<bool> {
    let line = serde_json::to_string(event)?;
    let mut out = std::io::stdout().lock();
    Ok(writeln!(out, "{line}").and_then(|_| out.flush()).is_ok())
}

pub fn run(root: &Path, a: &EventsArgs) -> Result<i32> {
    let interval = parse_interval(&a.interval)?;
    let (dir, saved) = ContainerDir::load_unlocked(root, &a.id)?;
    if state::status_of(&dir, &saved) == Status::Stopped {
        bail!("container not running");
    }
    // Rootless without cgroups: runc reports empty statistics.
    let none = crate::cgroups::Record::empty(crate::cgroups::layout::Layout::detect()?.kind);
    let record = saved.cgroup.as_ref().unwrap_or(&none);
    let stats_event = || Event {
        kind: "stats",
        id: &a.id,
        data: Some(stats::collect(record)),
    };
    if a.stats {
        emit(&stats_event())?;
        return Ok(0);
    }
    let mut ooms = stats::oom_kills(record).unwrap_or(0);
    let mut next = Instant::now() + interval;
    loop {
        let now = Instant::now();
        std::thread::sleep(POLL.min(next.saturating_duration_since(now)));
        if state::status_of(&dir, &saved) == Status::Stopped {
            return Ok(0);
        }
        if let Some(n) = stats::oom_kills(record).filter(|&n| n > ooms) {
            ooms = n;
            let oom = Event {
                kind: "oom",
                id: &a.id,
                data: None,
            };
            if !emit(&oom)? {
                return Ok(0);
            }
        }
        if Instant::now() >= next {
            if !emit(&stats_event())? {
                return Ok(0);
            }
            next += interval;
        }
    }
}

/// A Go-style duration ("5s", "500ms", "1m30s", "1.5h"), which must be
/// positive.
pub fn parse_interval(text: &str) -> Result<Duration> {
    let bad = || anyhow!("invalid --interval {text:?}: expected a duration such as 5s or 500ms");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * secs;
    }
    if total <= 0.0 || !total.is_finite() {
        bail!("duration interval must be greater than 0");
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_interval("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "5", "s", "5x", "0s", "-1s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}
