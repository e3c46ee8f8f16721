//! process.env as the process gets it (runc's rules): every entry NAME=value
//! with a name, a key given twice keeps its last value (so `exec -e`, which
//! appends, wins over the config), and an empty HOME counts as unset (HOME
//! is then filled from the container's /etc/passwd, `Plan::add_home`).

use anyhow::{bail, Result};

/// The environment to exec with, in the order of each key's last entry.
pub fn prepare(entries: &[String]) -> Result<Vec<String>> {
    let mut kept: Vec<&String> = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for entry in entries.iter().rev() {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("invalid environment variable {entry:?}: missing '='");
        };
        if key.is_empty() {
            bail!("invalid environment variable {entry:?}: name cannot be empty");
        }
        if !seen.insert(key) {
            continue;
        }
        if entry.contains('\0') {
            bail!("invalid environment variable {key:?}: contains nul byte (\\x00)");
        }
        if key == "HOME" && value.is_empty() {
            continue;
        }
        kept.push(entry);
    }
    Ok(kept.into_iter().rev().cloned().collect())
}

/// The value of `key` in a prepared environment.
pub fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|e| e.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep(list: &[&str]) -> Vec<String> {
        prepare(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_last_value_of_a_key_wins_in_its_place() {
        assert_eq!(prep(&["ONE=two", "A=1", "ONE=three"]), ["A=1", "ONE=three"]);
        assert_eq!(prep(&["ONE=two", "ONE=", "PATH=/bin"]), ["ONE=", "PATH=/bin"]);
        // Only the name before the first '=' is the key.
        assert_eq!(prep(&["X=a=b", "X=c"]), ["X=c"]);
    }

    #[test]
    fn an_empty_home_is_unset() {
        assert_eq!(prep(&["HOME=", "PATH=/bin"]), ["PATH=/bin"]);
        assert!(prep(&["HOME=/override", "HOME="]).is_empty());
        assert_eq!(prep(&["HOME=", "HOME=/h"]), ["HOME=/h"]);
    }

    #[test]
    fn malformed_entries_are_refused() {
        let err = |e: &str| prepare(&[e.to_string()]).unwrap_err().to_string();
        assert!(err("NOEQUALS").contains("missing '='"));
        assert!(err("=value").contains("name cannot be empty"));
        assert!(err("A=b\0c").contains("contains nul byte"));
    }

    #[test]
    fn get_reads_one_key() {
        let env = prep(&["PATH=/a", "PATHX=/b"]);
        assert_eq!(get(&env, "PATH"), Some("/a"));
        assert_eq!(get(&env, "PATHX"), Some("/b"));
        assert_eq!(get(&env, "HOME"), None);
    }
}
