//! `xrun list`: every container under --root, as runc lists them: a
//! tab-aligned table (ID PID STATUS BUNDLE CREATED OWNER; a stopped
//! container shows pid 0), the JSON array of their states, or (-q) ids.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Result};

use crate::state::{self, ContainerDir, Saved};

struct Entry {
    saved: Saved,
    status: state::Status,
    owner: String,
}

pub fn run(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let entries = load_all(root);
    if quiet {
        let ids: String = entries.iter().map(|e| format!("{}\n", e.saved.id)).collect();
        crate::output::print(&ids)?;
        return Ok(0);
    }
    match format {
        "table" => crate::output::print(&table(&entries))?,
        "json" => crate::output::print(&format!("{}\n", json(&entries)?))?,
        _ => bail!("invalid format option"),
    }
    Ok(0)
}

/// The containers in `root`, by id; one that cannot be read is reported on
/// stderr and skipped. A missing root lists nothing.
fn load_all(root: &Path) -> Vec<Entry> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut entries = Vec::new();
    for name in names {
        let (path, saved) = match ContainerDir::load_unlocked(root, &name) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("load container {name}: {e:#}");
                continue;
            }
        };
        let uid = std::fs::metadata(&path).map(|m| m.uid()).unwrap_or(0);
        entries.push(Entry {
            status: state::status_of(&path, &saved),
            owner: user_name(&passwd, uid),
            saved,
        });
    }
    entries
}

/// The user name of `uid` in `passwd`, or "#uid" as runc writes it.
fn user_name(passwd: &str, uid: u32) -> String {
    crate::process::passwd_field(passwd, uid, 0).map_or_else(|| format!("#{uid}"), str::to_string)
}

fn json(entries: &[Entry]) -> Result<String> {
    if entries.is_empty() {
        // Go's encoding of runc's nil slice.
        return Ok("null".to_string());
    }
    let reports: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut r = e.saved.report(e.status);
            r.owner = &e.owner;
            r
        })
        .collect();
    Ok(serde_json::to_string(&reports)?)
}

fn table(entries: &[Entry]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for e in entries {
        let pid = if e.status == state::Status::Stopped {
            0
        } else {
            e.saved.pid
        };
        rows.push([
            e.saved.id.clone(),
            pid.to_string(),
            e.status.to_string(),
            e.saved.bundle.display().to_string(),
            e.saved.created.clone(),
            e.owner.clone(),
        ]);
    }
    align(&rows)
}

/// Go's tabwriter as runc sets it up (minwidth 12, padding 3, spaces): each
/// column but the last is as wide as its longest cell plus 3, at least 12.
fn align(rows: &[[String; 6]]) -> String {
    let mut widths = [12usize; 5];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (w, cell) in widths.iter().zip(row.iter()) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_runcs_header() {
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
    }

    #[test]
    fn columns_grow_with_their_longest_cell() {
        let row = |id: &str, bundle: &str| {
            [id, "4285", "running", bundle, "2026-11-23T20:25:57.964350063Z", "root"].map(String::from)
        };
        let rows = [
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            row("psr", "/tmp/lsmt/bundle"),
        ];
        // As runc 1.1.5 printed it on this host.
        assert_eq!(
            align(&rows),
            "ID          PID         STATUS      BUNDLE             CREATED                          OWNER\n\
             psr         4285        running     /tmp/lsmt/bundle   2026-11-23T20:25:57.964350063Z   root\n"
        );
    }

    #[test]
    fn unknown_uids_are_shown_by_number() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        assert_eq!(user_name(&passwd, 0), "root");
        assert_eq!(user_name(&passwd, 4_000_000_000), "#4000000000");
    }
}
