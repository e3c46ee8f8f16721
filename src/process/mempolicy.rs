//! linux.memoryPolicy: the NUMA policy set_mempolicy(2) gives the
//! container's process (init and exec'd ones alike, as runc does). Read from
//! the raw config JSON, because oci-spec refuses what runc reports in its
//! own words (an empty object, an unknown mode or flag), and checked with
//! runc's rules before anything is created.

use serde_json::Value;

/// Node numbers go up to this bound (exclusive): runc's limit, the size of
/// its mask (a cpu_set_t).
pub const MAX_NODES: usize = 1024;

/// The modes of the runtime spec, with their <linux/mempolicy.h> numbers.
pub const MODES: &[(&str, i32)] = &[
    ("MPOL_BIND", 2),
    ("MPOL_DEFAULT", 0),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED", 1),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];

/// The mode flags of the runtime spec.
pub const FLAGS: &[(&str, i32)] = &[
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_LOCAL: i32 = 4;

/// What set_mempolicy(2) is called with: no allocation is needed in the
/// child to use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemPolicy {
    /// The mode or'ed with its flags.
    pub mode: i32,
    /// The node mask; None for an empty "nodes".
    pub nodes: Option<[u64; MAX_NODES / 64]>,
}

impl MemPolicy {
    /// Reads `linux.memoryPolicy` as runc's spec conversion and validator
    /// do, with their messages.
    pub fn from_json(v: &Value) -> Result<MemPolicy, String> {
        let mode_name = match v.get("mode") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let mode = MODES
            .iter()
            .find(|(n, _)| *n == mode_name)
            .map(|(_, m)| *m)
            .ok_or_else(|| format!("invalid memory policy mode {mode_name:?}"))?;
        let nodes_text = match v.get("nodes") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(format!("invalid memory policy nodes {other}: not a string")),
        };
        let nodes = parse_nodes(nodes_text).map_err(|e| format!("invalid memory policy nodes {nodes_text:?}: {e}"))?;
        let mut flags = 0;
        let flag_list = match v.get("flags") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(other) => return Err(format!("invalid memory policy flags {other}: not a list")),
        };
        for f in flag_list {
            let name = f.as_str().map_or_else(|| f.to_string(), str::to_string);
            let bit = FLAGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| *b)
                .ok_or_else(|| format!("invalid memory policy flag {name:?}"))?;
            flags |= bit;
        }
        let count = nodes.map_or(0, |n| n.iter().map(|w| w.count_ones()).sum::<u32>());
        match mode {
            MPOL_DEFAULT | MPOL_LOCAL if count != 0 => {
                return Err(format!("memory policy mode requires 0 nodes but got {count}"));
            }
            MPOL_DEFAULT | MPOL_LOCAL | MPOL_PREFERRED => {}
            _ if count == 0 => return Err("memory policy mode requires at least one node but got 0".to_string()),
            _ => {}
        }
        Ok(MemPolicy {
            mode: mode | flags,
            nodes,
        })
    }
}

/// A node list such as "0-3,7" (spaces and empty elements allowed, as in
/// runc); "" is no nodes.
fn parse_nodes(text: &str) -> Result<Option<[u64; MAX_NODES / 64]>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let num = |s: &str| -> Result<usize, String> {
        let n: u64 = s.trim().parse().map_err(|_| format!("{s:?} is not a node number"))?;
        if n >= MAX_NODES as u64 {
            return Err(format!("values larger than {} are not supported", MAX_NODES - 1));
        }
        Ok(n as usize)
    };
    let mut mask = [0u64; MAX_NODES / 64];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if first > last {
            return Err(format!("invalid range: {part}"));
        }
        for n in first..=last {
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    if mask.iter().all(|w| *w == 0) {
        return Err(format!("no members found in set {text:?}"));
    }
    Ok(Some(mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<MemPolicy, String> {
        MemPolicy::from_json(&v)
    }

    #[test]
    fn modes_flags_and_nodes_become_the_syscall_arguments() {
        let p = parse(json!({"mode": "MPOL_BIND", "nodes": "0-2, 5,,", "flags": ["MPOL_F_STATIC_NODES"]})).unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.nodes.unwrap()[0], 0b100111);
        let p = parse(json!({"mode": "MPOL_INTERLEAVE", "nodes": "1023"})).unwrap();
        assert_eq!(p.nodes.unwrap()[15], 1 << 63);
        assert_eq!(parse(json!({"mode": "MPOL_DEFAULT"})).unwrap().nodes, None);
        assert_eq!(parse(json!({"mode": "MPOL_PREFERRED", "flags": []})).unwrap().mode, 1);
        let all = FLAGS.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        let p = parse(json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": all})).unwrap();
        assert_eq!(p.mode, 5 | 7 << 13);
    }

    #[test]
    fn runc_words_for_what_it_refuses() {
        let err = |v| parse(v).unwrap_err();
        assert_eq!(err(json!({})), "invalid memory policy mode \"\"");
        assert_eq!(
            err(json!({"mode": "INTERLEAVE", "nodes": "0"})),
            "invalid memory policy mode \"INTERLEAVE\""
        );
        assert_eq!(
            err(json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]})),
            "invalid memory policy flag \"badflag\""
        );
        assert_eq!(
            err(json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"})),
            "memory policy mode requires 0 nodes but got 8"
        );
        assert_eq!(
            err(json!({"mode": "MPOL_BIND"})),
            "memory policy mode requires at least one node but got 0"
        );
        assert!(err(json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"})).starts_with("invalid memory policy nodes"));
        assert!(
            err(json!({"mode": "MPOL_BIND", "nodes": "1024"})).ends_with("values larger than 1023 are not supported")
        );
        assert!(err(json!({"mode": "MPOL_BIND", "nodes": "3-1"})).ends_with("invalid range: 3-1"));
        assert!(err(json!({"mode": "MPOL_BIND", "nodes": ","})).contains("no members found"));
        assert!(err(json!({"mode": "MPOL_BIND", "nodes": "x"})).starts_with("invalid memory policy nodes"));
    }
}
