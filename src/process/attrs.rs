//! Scheduling attributes of the container process: scheduler policy,
//! I/O priority, CPU affinity (process.*) and the execution domain
//! (linux.personality). Parsed and checked in the parent; the child only
//! makes the syscalls.

use anyhow::{bail, Result};
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use crate::sys::SchedAttr;

/// The largest CPU number a cpu_set_t can hold, plus one.
const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

pub fn sched_flag(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// process.scheduler as a sched_attr, with the checks the kernel would
/// otherwise answer with a bare EINVAL.
pub fn scheduler(s: &Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
        LinuxSchedulerPolicy::SchedIso => bail!("process.scheduler: policy SCHED_ISO is not supported by Linux"),
    } as u32;
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler: nice {nice} is out of range -20..19");
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(
        s.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if realtime && !(1..=99).contains(&priority) {
        bail!(
            "process.scheduler: priority {priority} is out of range 1..99 for {}",
            s.policy()
        );
    }
    if !realtime && priority != 0 {
        bail!(
            "process.scheduler: priority must be 0 for {}, got {priority}",
            s.policy()
        );
    }
    let deadline = *s.policy() == LinuxSchedulerPolicy::SchedDeadline;
    let (runtime, dl, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if deadline {
        let period_or_dl = if period == 0 { dl } else { period };
        if runtime == 0 || runtime > dl || dl > period_or_dl {
            bail!("process.scheduler: SCHED_DEADLINE needs 0 < runtime <= deadline <= period (got runtime {runtime}, deadline {dl}, period {period})");
        }
    } else if runtime != 0 || dl != 0 || period != 0 {
        bail!(
            "process.scheduler: runtime, deadline and period only apply to SCHED_DEADLINE, not {}",
            s.policy()
        );
    }
    let flags = s
        .flags()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .fold(0, |acc, f| acc | sched_flag(*f));
    Ok(SchedAttr {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline: dl,
        period,
        ..SchedAttr::default()
    })
}

/// process.ioPriority as the value ioprio_set takes.
pub fn io_priority(p: &LinuxIOPriority) -> Result<i32> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let prio = p.priority();
    if !(0..=7).contains(&prio) {
        bail!("process.ioPriority: priority {prio} is out of range 0..7");
    }
    Ok((class << 13) | prio as i32)
}

/// A CPU list such as "0-3,7" as cpumask words (bit n of word n/64 = CPU n).
pub fn cpu_list(s: &str) -> Result<Vec<u64>> {
    let mut words = Vec::new();
    if s.trim().is_empty() {
        bail!("empty CPU list");
    }
    let num = |t: &str| -> Result<usize> {
        let t = t.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            bail!("{t:?} is not a CPU number");
        }
        match t.parse::<usize>() {
            Ok(n) if n < MAX_CPUS => Ok(n),
            _ => bail!("CPU {t} is beyond the limit of {MAX_CPUS} CPUs"),
        }
    };
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            bail!("CPU range {part:?} runs backwards");
        }
        for cpu in lo..=hi {
            if words.len() <= cpu / 64 {
                words.resize(cpu / 64 + 1, 0);
            }
            words[cpu / 64] |= 1u64 << (cpu % 64);
        }
    }
    Ok(words)
}

/// A CPU mask as cpumask words; None when not configured.
pub type CpuMask = Option<Vec<u64>>;

/// process.execCPUAffinity: (initial, final) masks.
pub fn affinity(a: &ExecCPUAffinity) -> Result<(CpuMask, CpuMask)> {
    let parse = |which: &str, v: &Option<String>| -> Result<CpuMask> {
        v.as_deref()
            .map(|s| cpu_list(s).map_err(|e| anyhow::anyhow!("process.execCPUAffinity.{which} {s:?}: {e}")))
            .transpose()
    };
    Ok((parse("initial", a.initial())?, parse("final", a.cpu_affinity_final())?))
}

/// The config's linux.personality, if any, as personality(2) takes it.
pub fn personality_of(spec: &oci_spec::runtime::Spec) -> Result<Option<libc::c_ulong>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.personality().as_ref())
        .map(personality)
        .transpose()
}

/// linux.personality as the persona personality(2) takes.
pub fn personality(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    const PER_LINUX: libc::c_ulong = 0x0000;
    const PER_LINUX32: libc::c_ulong = 0x0008;
    if let Some(flag) = p.flags().as_deref().unwrap_or(&[]).first() {
        bail!("linux.personality: flag {flag:?} is not supported (no flags are defined by the runtime spec)");
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(v: serde_json::Value) -> Result<SchedAttr> {
        scheduler(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn cpu_lists_parse_to_masks() {
        assert_eq!(cpu_list("0").unwrap(), vec![1]);
        assert_eq!(cpu_list("0-3,7").unwrap(), vec![0x8f]);
        assert_eq!(cpu_list("64").unwrap(), vec![0, 1]);
        assert_eq!(cpu_list("1,1-2").unwrap(), vec![0b110]);
        for bad in [
            "",
            "x",
            "1-",
            "-1",
            "3-1",
            "1,,2",
            "1 2",
            "+1",
            "1024",
            "99999999999999999999",
        ] {
            assert!(cpu_list(bad).is_err(), "{bad:?} accepted");
        }
        assert!(cpu_list("1023").is_ok());
    }

    #[test]
    fn io_priority_range_and_class() {
        let p = |v| io_priority(&serde_json::from_value(v).unwrap());
        assert_eq!(
            p(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 6})).unwrap(),
            (2 << 13) | 6
        );
        assert_eq!(
            p(serde_json::json!({"class": "IOPRIO_CLASS_RT", "priority": 0})).unwrap(),
            1 << 13
        );
        assert_eq!(
            p(serde_json::json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7})).unwrap(),
            (3 << 13) | 7
        );
        assert!(p(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 8})).is_err());
        assert!(p(serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": -1})).is_err());
    }

    #[test]
    fn scheduler_flags_and_checks() {
        let all = serde_json::json!([
            "SCHED_RESET_ON_FORK",
            "SCHED_FLAG_RECLAIM",
            "SCHED_FLAG_D_L_OVERRUN",
            "SCHED_FLAG_KEEP_POLICY",
            "SCHED_FLAG_KEEP_PARAMS",
            "SCHED_FLAG_UTIL_CLAMP_MIN",
            "SCHED_FLAG_UTIL_CLAMP_MAX"
        ]);
        let flags: Vec<LinuxSchedulerFlag> = serde_json::from_value(all).unwrap();
        let got: Vec<u64> = flags.into_iter().map(sched_flag).collect();
        assert_eq!(got, [1, 2, 4, 8, 0x10, 0x20, 0x40]);

        let a =
            sched(serde_json::json!({"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_RESET_ON_FORK"]})).unwrap();
        assert_eq!((a.policy, a.nice, a.priority, a.flags), (3, 5, 0, 1));
        let a = sched(serde_json::json!({"policy": "SCHED_FIFO", "priority": 10})).unwrap();
        assert_eq!((a.policy, a.priority), (1, 10));
        let a = sched(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30}))
            .unwrap();
        assert_eq!((a.policy, a.runtime, a.deadline, a.period), (6, 10, 20, 30));
        assert!(sched(serde_json::json!({"policy": "SCHED_FIFO"})).is_err());
        assert!(sched(serde_json::json!({"policy": "SCHED_OTHER", "priority": 3})).is_err());
        assert!(sched(serde_json::json!({"policy": "SCHED_OTHER", "nice": 20})).is_err());
        assert!(sched(serde_json::json!({"policy": "SCHED_ISO"})).is_err());
        assert!(sched(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 30, "deadline": 20})).is_err());
        assert!(sched(serde_json::json!({"policy": "SCHED_BATCH", "runtime": 1})).is_err());
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn personality_domains_and_flags() {
        let p = |v| personality(&serde_json::from_value(v).unwrap());
        assert_eq!(p(serde_json::json!({"domain": "LINUX"})).unwrap(), 0);
        assert_eq!(p(serde_json::json!({"domain": "LINUX32"})).unwrap(), 8);
        assert!(p(serde_json::json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).is_err());
    }
}
