//! The `events` verb: resource statistics (runc's `types.Stats` JSON, as
//! containerd's shim parses it) and the event stream.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

fn one_event(out: &CmdOutput) -> Value {
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {:?}", out.stdout);
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", lines[0]))
}

#[test]
fn events_stats_reports_usage_of_a_running_container() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let out = t.rt(&["events", "--stats", &id]);
    out.assert_ok();
    let ev = one_event(&out);
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    let data = &ev["data"];
    assert!(data["pids"]["current"].as_u64().is_some_and(|n| n >= 1), "{data}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().is_some_and(|n| n > 0),
        "{data}"
    );
    assert!(
        data["memory"]["usage"]["limit"].as_u64().is_some_and(|n| n > 0),
        "{data}"
    );
    assert!(data["memory"]["raw"].is_object(), "{data}");
    assert!(data["cpu"]["usage"]["total"].as_u64().is_some_and(|n| n > 0), "{data}");
    assert!(data["cpu"]["usage"]["kernel"].is_u64(), "{data}");
    assert!(data["cpu"]["usage"]["user"].is_u64(), "{data}");
    assert!(data["cpu"]["throttling"].is_object(), "{data}");
    assert!(data["hugetlb"].is_object() || data["hugetlb"].is_null(), "{data}");
}

#[test]
fn events_stats_reports_the_pids_limit() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.config["linux"]["resources"]["pids"] = serde_json::json!({"limit": 42});
    t.start_sleeper(&id);
    let out = t.rt(&["events", "--stats", &id]);
    out.assert_ok();
    let ev = one_event(&out);
    assert_eq!(ev["data"]["pids"]["limit"], 42, "{ev}");
}

#[test]
fn events_stats_of_unknown_id_fails() {
    let Some(t) = TestEnv::new() else { return };
    let out = t.rt(&["events", "--stats", "no-such-container"]);
    out.assert_fails();
    assert!(out.stdout.trim().is_empty(), "stdout: {}", out.stdout);
    assert!(out.stderr.contains("does not exist"), "stderr: {}", out.stderr);
}

#[test]
fn events_of_a_stopped_container_fails() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.args(&["true"]);
    t.run(&id, &["--keep"]).assert_ok();
    let out = t.rt(&["events", "--stats", &id]);
    out.assert_fails();
    assert!(out.stdout.trim().is_empty(), "stdout: {}", out.stdout);
    assert!(out.stderr.contains("not running"), "stderr: {}", out.stderr);
}

#[test]
fn events_stream_reports_every_interval_until_the_container_stops() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    t.start_sleeper(&id);
    let out_path = t.dir.join("events.stdout");
    let mut cmd = t.command(&["events", "--interval", "200ms", &id]);
    cmd.stdout(std::fs::File::create(&out_path).unwrap());
    let mut child = cmd.spawn().expect("spawning events");
    let read_events = || -> Vec<Value> {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let seen = poll_until(Duration::from_secs(10), || read_events().len() >= 2);
    let early_exit = child.try_wait().ok().flatten();
    if !seen || early_exit.is_some() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "expected a stream of stats events, exit {early_exit:?}: {:?}",
            read_events()
        );
    }
    for ev in read_events() {
        assert_eq!(ev["type"], "stats", "{ev}");
        assert_eq!(ev["id"], id.as_str(), "{ev}");
        assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().is_some(), "{ev}");
    }
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    let ended = poll_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("events did not exit after the container stopped");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "events exited with {status:?}");
}

#[test]
fn events_stream_reports_an_oom_kill() {
    let Some(mut t) = TestEnv::new() else { return };
    let id = t.id.clone();
    const LIMIT: i64 = 32 << 20;
    // swap == limit: no swap, so the allocation cannot escape to it.
    t.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": LIMIT, "swap": LIMIT});
    // The shell survives its child's OOM kill, so the container keeps running.
    t.args(&["sh", "-c", "checker --alloc 100; sleep 60"]);
    t.create(&id, &[]).assert_ok();
    let out_path = t.dir.join("events.stdout");
    let mut cmd = t.command(&["events", "--interval", "10s", &id]);
    cmd.stdout(std::fs::File::create(&out_path).unwrap());
    let mut child = cmd.spawn().expect("spawning events");
    // Let events read the initial OOM counter before the allocation starts.
    std::thread::sleep(Duration::from_millis(500));
    t.rt(&["start", &id]).assert_ok();
    let read = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let seen = poll_until(Duration::from_secs(10), || read().contains("\"oom\""));
    t.rt(&["kill", &id, "KILL"]).assert_ok();
    let ended = poll_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(seen, "no oom event: {:?}", read());
    let line = read().lines().find(|l| l.contains("\"oom\"")).unwrap().to_string();
    let ev: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["type"], "oom", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    assert!(ev.get("data").is_none(), "{ev}");
    assert!(ended, "events did not exit after the container stopped");
}
