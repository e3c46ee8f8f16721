#!/usr/bin/env python3
"""Start-latency benchmark: `RUNTIME run` of a /bin/true bundle, side by side.

Each round runs every runtime once (the order rotates each round so drift and
cache effects hit all runtimes equally), timing spawn -> exit of
`RUNTIME --root ROOT run --bundle BUNDLE ID` with time.perf_counter_ns.
A "floor" runner (unshare + chroot + /bin/true, no runtime at all) shows the
cost of the namespaces and the exec alone.

Peak RSS comes from os.wait4() (ru_maxrss, KiB) of a second, untimed run per
round. That run is started through a tiny busybox launcher and reaped by us as
child subreaper: a process exec'd straight from Python reports at least
Python's own peak RSS (the kernel folds the pre-exec memory's high-water mark
into ru_maxrss), which would hide anything smaller than ~13 MiB.

Python 3 standard library only; must run as root. See bench/README.md.
"""

import argparse
import contextlib
import ctypes
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BUNDLE = os.path.join(REPO_ROOT, "oci-bundles", "true")
BUILD_ROOTFS = os.path.join(REPO_ROOT, "oci-bundles", "build-rootfs.sh")
FLOOR_LABEL = "floor(unshare+chroot)"
PR_SET_CHILD_SUBREAPER = 36
# Launcher for RSS runs: start "$@" in the background, report its pid on fd 3, exit.
LAUNCH_SCRIPT = '"$@" 3>&- & echo $! >&3'


class Runner:
    """One thing to measure: an OCI runtime, or the unshare+chroot floor."""

    def __init__(self, name, path, bundle, state_root=None, floor_argv=None):
        self.name = name
        self.path = path
        self.bundle = bundle
        self.state_root = state_root  # None for the floor runner
        self.floor_argv = floor_argv
        self.samples = []       # timed runs
        self.rss_samples = []   # untimed runs measuring peak RSS
        self.first_error = None
        self.leftovers = 0

    @property
    def is_runtime(self):
        return self.state_root is not None

    def run_argv(self, container_id):
        """Command line of one run."""
        if not self.is_runtime:
            return self.floor_argv
        return [self.path, "--root", self.state_root, "run",
                "--bundle", self.bundle, container_id]

    def container_remains(self, container_id):
        """True if the runtime still keeps state for container_id."""
        return self.is_runtime and os.path.exists(
            os.path.join(self.state_root, container_id))

    def force_delete(self, container_id):
        """Best-effort `delete --force`; never raises."""
        try:
            subprocess.run([self.path, "--root", self.state_root, "delete",
                            "--force", container_id],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def version(self):
        """First line of `RUNTIME --version`, or '' if it has none."""
        if not self.is_runtime:
            return ""
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.splitlines()[0].strip() if out.strip() else ""


def parse_args():
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Compare `run` start latency of OCI runtimes on a /bin/true bundle.")
    p.add_argument("--runs", type=int, default=200,
                   help="measured runs per runtime (default 200)")
    p.add_argument("--warmup", type=int, default=5,
                   help="discarded warm-up rounds (default 5)")
    p.add_argument("--xrun", default=os.path.join(REPO_ROOT, "target", "x86_64-unknown-linux-gnu", "release", "xrun"),
                   help="xrun binary (default: target/x86_64-unknown-linux-gnu/release/xrun in the repo)")
    p.add_argument("--runc", default="/usr/sbin/runc", help="runc binary")
    p.add_argument("--crun", help="also benchmark crun at this path")
    p.add_argument("--youki", help="also benchmark youki at this path")
    p.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                   help="also benchmark another runc-compatible binary (e.g. an older "
                        "xrun build, for a before/after ratio in one run); repeatable")
    p.add_argument("--baseline", default="runc", metavar="NAME",
                   help="runtime the medians are divided by in the ratio lines (default runc)")
    p.add_argument("--bundle", default=DEFAULT_BUNDLE,
                   help="bundle to run (default oci-bundles/true)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds before a run is killed and counted as timed out")
    p.add_argument("--json", metavar="FILE", help="write raw samples to FILE")
    p.add_argument("--no-floor", action="store_true",
                   help="skip the unshare+chroot floor row")
    p.add_argument("--no-rss", action="store_true",
                   help="skip the extra untimed run per round that measures peak RSS")
    args = p.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.timeout <= 0:
        p.error("--runs must be >= 1, --warmup >= 0 and --timeout > 0")
    return args


def ensure_rootfs(bundle):
    """Build BUNDLE/rootfs with oci-bundles/build-rootfs.sh if it has no /bin/true."""
    rootfs = os.path.join(bundle, "rootfs")
    if os.path.lexists(os.path.join(rootfs, "bin", "true")):
        return rootfs
    print(f"rootfs missing in {bundle}, building it with {BUILD_ROOTFS}")
    subprocess.run([BUILD_ROOTFS, rootfs], check=True)
    return rootfs


def resolve_binary(path):
    """Absolute path of an executable given as a path or a command name, or None."""
    if os.sep in path:
        return os.path.abspath(path) if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(path)


def make_runners(args, bundle, rootfs, tmpdir):
    """Runners for the runtimes that exist (skipping missing ones) plus the floor."""
    wanted = [("xrun", args.xrun), ("runc", args.runc)]
    if args.crun:
        wanted.append(("crun", args.crun))
    if args.youki:
        wanted.append(("youki", args.youki))
    for spec in args.also:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--also wants NAME=PATH, got {spec!r}")
        wanted.append((name, path))
    runners = []
    for name, path in wanted:
        binary = resolve_binary(path)
        if binary is None:
            print(f"{name} not found at {path}, skipping")
            continue
        state_root = os.path.join(tmpdir, f"root-{name}")
        os.makedirs(state_root, mode=0o700)
        runners.append(Runner(name, binary, bundle, state_root=state_root))
    if not args.no_floor:
        unshare, chroot = shutil.which("unshare"), shutil.which("chroot")
        if unshare and chroot:
            argv = [unshare, "--fork", "--pid", "--mount", "--uts", "--ipc", "--net",
                    chroot, rootfs, "/bin/true"]
            runners.append(Runner(FLOOR_LABEL, unshare, bundle, floor_argv=argv))
        else:
            print("unshare or chroot not found, skipping the floor row")
    return runners


def find_busybox(rootfs):
    """A static busybox for the RSS launcher: the bundle's, else the host's."""
    candidate = os.path.join(rootfs, "bin", "busybox")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("busybox")


def stdio_actions(log_fd):
    """posix_spawn file actions: stdin from /dev/null, stdout+stderr to log_fd."""
    os.ftruncate(log_fd, 0)
    os.lseek(log_fd, 0, os.SEEK_SET)
    return [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2)]


def kill_quietly(kill, target):
    """SIGKILL target with kill (os.kill or os.killpg), ignoring a vanished target."""
    try:
        kill(target, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_or_kill(pid, pgid, timeout_s):
    """Reap child pid; SIGKILL process group pgid if pid outlives timeout_s.

    Returns (wait status, rusage, timed_out). The caller guarantees pgid
    stays allocated (pid, a member, is not reaped before we kill).
    """
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(int(timeout_s * 1000))
        if timed_out:
            kill_quietly(os.killpg, pgid)
            kill_quietly(os.kill, pid)  # in case it left the group
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(pidfd)
    return status, usage, timed_out


def timed_spawn(argv, log_fd, timeout_s):
    """Run argv in its own process group; return (ns, exit code, timed out).

    The wall time covers posix_spawn up to the reaping wait4().
    """
    actions = stdio_actions(log_fd)
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setpgroup=0)
    status, _, timed_out = wait_or_kill(pid, pid, timeout_s)
    elapsed = time.perf_counter_ns() - start
    return elapsed, os.waitstatus_to_exitcode(status), timed_out


@contextlib.contextmanager
def child_subreaper():
    """Make this process the child subreaper while the block runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def read_all(fd):
    """Read fd to EOF."""
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def rss_spawn(argv, log_fd, timeout_s, busybox):
    """Run argv via the busybox launcher; return (maxrss KiB, exit code, timed out).

    The launcher (a small static busybox sh) forks argv and exits at once; as
    child subreaper we inherit argv's process and reap it with wait4, so its
    ru_maxrss covers argv's tree with only busybox's ~1 MiB as a lower bound.
    """
    actions = stdio_actions(log_fd)
    read_end, write_end = os.pipe()
    try:
        with child_subreaper():
            launcher = os.posix_spawn(
                busybox, [busybox, "sh", "-c", LAUNCH_SCRIPT, "launch", *argv], os.environ,
                file_actions=actions + [(os.POSIX_SPAWN_DUP2, write_end, 3)], setpgroup=0)
            os.close(write_end)
            write_end = None
            os.waitpid(launcher, 0)
            pid = int(read_all(read_end) or 0)
            if pid <= 0:
                return None, 127, False
            # pid stays in the launcher's process group, which keeps that pgid alive.
            status, usage, timed_out = wait_or_kill(pid, launcher, timeout_s)
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
    reap_strays()
    return usage.ru_maxrss, os.waitstatus_to_exitcode(status), timed_out


def reap_strays():
    """Reap orphans a runtime left to us while we were subreaper."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def read_log(log_fd, limit=400):
    """The start of what the last run wrote to stdout/stderr."""
    os.lseek(log_fd, 0, os.SEEK_SET)
    return os.read(log_fd, limit).decode(errors="replace").strip()


def note_outcome(runner, container_id, log_fd, code, timed_out, warmup):
    """Remember the first failure and make sure the container is gone. Returns ok."""
    ok = code == 0 and not timed_out
    if not ok and runner.first_error is None and not warmup:
        reason = "timed out" if timed_out else f"exit {code}"
        runner.first_error = f"{reason}: {read_log(log_fd) or '(no output)'}"
    if runner.is_runtime and (not ok or runner.container_remains(container_id)):
        runner.force_delete(container_id)
        if runner.container_remains(container_id):
            runner.leftovers += 1
    return ok


def measure_latency(runner, container_id, log_fd, timeout_s, warmup):
    """One timed run of runner, appended to runner.samples."""
    ns, code, timed_out = timed_spawn(runner.run_argv(container_id), log_fd, timeout_s)
    note_outcome(runner, container_id, log_fd, code, timed_out, warmup)
    runner.samples.append({"id": container_id, "warmup": warmup, "ns": ns,
                           "exit": code, "timed_out": timed_out})


def measure_rss(runner, container_id, log_fd, timeout_s, warmup, busybox):
    """One untimed run of runner measuring peak RSS, appended to runner.rss_samples."""
    maxrss, code, timed_out = rss_spawn(runner.run_argv(container_id), log_fd,
                                        timeout_s, busybox)
    note_outcome(runner, container_id, log_fd, code, timed_out, warmup)
    runner.rss_samples.append({"id": container_id, "warmup": warmup, "maxrss_kib": maxrss,
                               "exit": code, "timed_out": timed_out})


def run_rounds(runners, args, log_fd, busybox):
    """Warm-up then measured rounds; each round runs every runner, order rotating."""
    total = args.warmup + args.runs
    tag = f"bench-{os.getpid()}"
    for rnd in range(total):
        warmup = rnd < args.warmup
        shift = rnd % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            cid = f"{tag}-{runner.name}-{rnd}"
            measure_latency(runner, cid, log_fd, args.timeout, warmup)
            if busybox:
                measure_rss(runner, cid + "-rss", log_fd, args.timeout, warmup, busybox)
        done = rnd + 1 - args.warmup
        if done > 0 and (done % 50 == 0 or done == args.runs):
            print(f"  {done}/{args.runs} rounds", flush=True)


def percentile(sorted_values, pct):
    """Linear-interpolated percentile of an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * pct / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def successful(samples):
    """Non-warm-up samples that exited 0 in time, and the count of measured ones."""
    measured = [s for s in samples if not s["warmup"]]
    good = [s for s in measured if s["exit"] == 0 and not s["timed_out"]]
    return good, measured


def summarize(runner):
    """Statistics over the measured (non-warm-up) runs of runner."""
    good, measured = successful(runner.samples)
    good_rss, measured_rss = successful(runner.rss_samples)
    summary = {"runs": len(measured),
               "failures": len(measured) - len(good),
               "timeouts": sum(s["timed_out"] for s in measured),
               "rss_runs": len(measured_rss),
               "rss_failures": len(measured_rss) - len(good_rss),
               "leftovers": runner.leftovers}
    if good:
        ms = sorted(s["ns"] / 1e6 for s in good)
        summary.update({"median_ms": statistics.median(ms),
                        "p95_ms": percentile(ms, 95),
                        "mean_ms": statistics.fmean(ms),
                        "min_ms": ms[0]})
    if good_rss:
        rss = sorted(s["maxrss_kib"] for s in good_rss)
        summary.update({"median_rss_kib": statistics.median(rss), "max_rss_kib": rss[-1]})
    return summary


def fmt(value, spec):
    """Format a number, or '-' when it is missing."""
    return "-" if value is None else format(value, spec)


def print_report(runners, summaries, baseline):
    """The results table, ratios to baseline and the first error of failing runtimes."""
    cols = [("runtime", 22, None, None), ("runs", 5, "d", "runs"),
            ("fail", 5, "d", "failures"), ("tmout", 5, "d", "timeouts"),
            ("median ms", 10, ".2f", "median_ms"), ("p95 ms", 9, ".2f", "p95_ms"),
            ("mean ms", 9, ".2f", "mean_ms"), ("min ms", 9, ".2f", "min_ms"),
            ("med RSS KiB", 12, ".0f", "median_rss_kib"),
            ("max RSS KiB", 12, "d", "max_rss_kib")]
    print()
    print(" ".join(f"{title:>{width}}" if spec else f"{title:<{width}}"
                   for title, width, spec, _ in cols))
    for runner in runners:
        s = summaries[runner.name]
        cells = [f"{runner.name:<22}"]
        cells += [f"{fmt(s.get(key), spec):>{width}}" for _, width, spec, key in cols[1:]]
        print(" ".join(cells))

    base = summaries.get(baseline, {}).get("median_ms")
    base_rss = summaries.get(baseline, {}).get("median_rss_kib")
    print()
    if base is None:
        print(f"no ratios: the baseline {baseline} has no successful run")
    for runner in runners:
        s = summaries[runner.name]
        median = s.get("median_ms")
        if runner.name == baseline or base is None or median is None:
            continue
        line = f"{runner.name}/{baseline} = {median / base:.2f}   (median start latency)"
        if base_rss and s.get("median_rss_kib") is not None:
            line += f";  peak RSS {s['median_rss_kib'] / base_rss:.2f}"
        print(line)
    for runner in runners:
        s = summaries[runner.name]
        if runner.first_error:
            print(f"{runner.name}: first failure: {runner.first_error}")
        if s["rss_failures"] and s["rss_failures"] != s["failures"]:
            print(f"{runner.name}: {s['rss_failures']} of {s['rss_runs']} RSS runs failed")
        if s["leftovers"]:
            print(f"{runner.name}: {s['leftovers']} container(s) survived delete --force")


def sweep_containers(runners):
    """Force-delete whatever container state is still left under each runtime root."""
    for runner in runners:
        if not runner.is_runtime or not os.path.isdir(runner.state_root):
            continue
        for name in os.listdir(runner.state_root):
            if os.path.isdir(os.path.join(runner.state_root, name)):
                runner.force_delete(name)


def cgroup_mode():
    """'v2', 'hybrid' or 'v1', from what is mounted at /sys/fs/cgroup."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    if os.path.isdir("/sys/fs/cgroup/unified"):
        return "hybrid"
    return "v1"


def host_info():
    """A few facts about the host that matter when comparing numbers."""
    return {"kernel": platform.release(), "cpus": os.cpu_count(),
            "cgroup": cgroup_mode(), "python": platform.python_version()}


def write_json(path, args, info, runners, summaries):
    """Dump host info, settings, summaries and every raw sample to path."""
    doc = {"host": info,
           "settings": {"runs": args.runs, "warmup": args.warmup,
                        "timeout_s": args.timeout, "bundle": os.path.abspath(args.bundle),
                        "baseline": args.baseline},
           "runtimes": {r.name: {"path": r.path, "version": r.version(),
                                 "argv_example": r.run_argv("ID"),
                                 "summary": summaries[r.name],
                                 "samples": r.samples, "rss_samples": r.rss_samples}
                        for r in runners}}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"raw samples written to {path}")


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("start-latency.py must run as root (the runtimes need it)")
    bundle = os.path.abspath(args.bundle)
    rootfs = ensure_rootfs(bundle)
    busybox = None if args.no_rss else find_busybox(rootfs)
    if not args.no_rss and busybox is None:
        print("busybox not found, peak RSS will not be measured")
    info = host_info()
    tmpdir = tempfile.mkdtemp(prefix="xrun-bench-")
    log_fd = os.open(os.path.join(tmpdir, "run.log"), os.O_RDWR | os.O_CREAT, 0o600)
    runners = []
    try:
        runners = make_runners(args, bundle, rootfs, tmpdir)
        if not runners:
            sys.exit("nothing to benchmark")
        print(f"host: kernel {info['kernel']}, {info['cpus']} cpus, cgroup {info['cgroup']}")
        for r in runners:
            print(f"  {r.name:<22} {r.path}  {r.version()}")
        print(f"{args.warmup} warm-up + {args.runs} measured rounds, bundle {bundle}")
        try:
            run_rounds(runners, args, log_fd, busybox)
        except KeyboardInterrupt:
            print("\ninterrupted; reporting the runs done so far")
        summaries = {r.name: summarize(r) for r in runners}
        print_report(runners, summaries, args.baseline)
        if args.json:
            write_json(args.json, args, info, runners, summaries)
    finally:
        sweep_containers(runners)
        os.close(log_fd)
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
