//! `xrun ps`: the container's processes. `--format json` prints the JSON
//! array of their host pids (what containerd's shim reads); the table runs
//! ps(1) with the given arguments (default `-ef`) and keeps its header and
//! the lines whose PID column is one of the container's, as runc does.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::container::processes;
use crate::state::ContainerDir;

pub fn run(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    if format != "table" && format != "json" {
        bail!("invalid format option");
    }
    let (_, saved) = ContainerDir::load_unlocked(root, id)?;
    let mut pids = processes::list(&saved);
    pids.sort_unstable();
    if format == "json" {
        crate::output::print(&format!("{}\n", pids_json(&pids)))?;
        return Ok(0);
    }
    let default = ["-ef".to_string()];
    let args = if ps_args.is_empty() { &default[..] } else { ps_args };
    let out = std::process::Command::new("ps").args(args).output().context("run ps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("ps {}: {}{}", out.status, text, String::from_utf8_lossy(&out.stderr));
    }
    crate::output::print(&filter_table(&text, &pids)?)?;
    Ok(0)
}

/// runc prints Go's encoding of a nil slice, `null`, when there are none.
fn pids_json(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "null".to_string();
    }
    serde_json::to_string(pids).unwrap_or_default()
}

/// The header and the lines of `pids`, found by the header's PID column.
fn filter_table(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let Some(col) = header.split_whitespace().position(|t| t == "PID") else {
        bail!("couldn't find PID field in ps output");
    };
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let field = line.split_whitespace().nth(col).unwrap_or("");
        let pid: i32 = field
            .parse()
            .with_context(|| format!("unable to parse pid {field:?} in {line:?}"))?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 20:00 ?        00:00:01 /sbin/init
root         812       1  0 20:01 ?        00:00:00 sleep 100
root         813     812  0 20:01 ?        00:00:00 sleep 812
";

    #[test]
    fn lines_are_kept_by_the_pid_column_only() {
        let t = filter_table(PS, &[812]).unwrap();
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.starts_with("UID"));
        assert!(t.contains(" 812       1 "));
        assert!(!t.contains("sleep 812"));
    }

    #[test]
    fn the_pid_column_is_found_wherever_it_is() {
        let t = filter_table("COMMAND PID\nsleep 5\nsh 6\n", &[6]).unwrap();
        assert_eq!(t, "COMMAND PID\nsh 6\n");
        assert!(filter_table("COMMAND\nsleep\n", &[6]).is_err());
    }

    #[test]
    fn no_pids_is_null_as_in_runc() {
        assert_eq!(pids_json(&[]), "null");
        assert_eq!(pids_json(&[3, 4]), "[3,4]");
    }
}
