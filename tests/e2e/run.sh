#!/usr/bin/env bash
# End-to-end stage: xrun as the runtime behind containerd, Docker and podman.
#
#   tests/e2e/run.sh [--runtime PATH] [--cgroup-driver cgroupfs|systemd] [--keep]
#                    [--install-only] [containerd|docker|podman ...]
#
# Default runtime: target/x86_64-unknown-linux-gnu/release/xrun of this repository (`--runtime
# /usr/sbin/runc` validates the scenarios themselves). Default stages: all
# three. Installs containerd, docker.io, podman and busybox-static from Debian
# if missing (no daemon is started by the install). Everything the stage makes
# lives under one temp dir: a private containerd, dockerd and podman storage,
# an image built offline from busybox-static. One `PASS name` or
# `FAIL name: why` line per scenario, then `e2e: N passed, M failed`; the exit
# status is non-zero when anything failed. Every step is bounded by `timeout`;
# the EXIT trap stops the daemons by PID, removes containers, unmounts, removes
# the temp dir and fails the run if a mount, cgroup or process of ours remains.
# Every runtime call is logged (tests/e2e/log-argv.sh) to $W/argv-*.log;
# --keep leaves the temp dir (and prints those logs' flags) for inspection.
# --cgroup-driver systemd (needs systemd as PID 1: tests/vm/systemd.sh runs
# it in a VM) gives each engine its systemd cgroup driver, so the runtime
# gets --systemd-cgroup and slice:prefix:name cgroup paths, and adds the
# *-systemd-scope scenarios (scope unit, its slice, limits, unit gone after
# removal); the EXIT trap stops any scope unit of ours left and fails the run.
# --install-only installs the packages and exits.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

RUNTIME="$REPO/target/x86_64-unknown-linux-gnu/release/xrun"
KEEP=0
INSTALL_ONLY=0
CGROUP_DRIVER=cgroupfs
STAGES=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runtime) RUNTIME=$2; shift 2 ;;
    --runtime=*) RUNTIME=${1#--runtime=}; shift ;;
    --cgroup-driver) CGROUP_DRIVER=${2:?--cgroup-driver wants cgroupfs or systemd}; shift 2 ;;
    --cgroup-driver=*) CGROUP_DRIVER=${1#--cgroup-driver=}; shift ;;
    --keep) KEEP=1; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    containerd | docker | podman) STAGES+=("$1"); shift ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ ${#STAGES[@]} -gt 0 ] || STAGES=(containerd docker podman)
if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: the e2e stage starts daemons and containers and needs root" >&2
    exit 2
fi
case $CGROUP_DRIVER in
cgroupfs) ;;
systemd)
    if [ ! -d /run/systemd/system ] || [ "$(cat /proc/1/comm)" != systemd ]; then
        echo "run.sh: --cgroup-driver systemd needs systemd as PID 1 (tests/vm/systemd.sh runs it in a VM)" >&2
        exit 2
    fi
    ;;
*) echo "run.sh: --cgroup-driver wants cgroupfs or systemd, not '$CGROUP_DRIVER'" >&2; exit 2 ;;
esac
RUNTIME=$(readlink -f "$RUNTIME" 2>/dev/null || echo "$RUNTIME")
if [ $INSTALL_ONLY = 0 ] && [ ! -x "$RUNTIME" ]; then
    echo "run.sh: runtime '$RUNTIME' is not an executable (cargo build --release first?)" >&2
    exit 2
fi

STEP=${E2E_STEP_TIMEOUT:-60}  # seconds, any single command
T() { timeout --kill-after=5 "$STEP" "$@"; }

# ---------------------------------------------------------------- install
install_missing() {
    local pkgs=()
    command -v containerd >/dev/null && command -v ctr >/dev/null || pkgs+=(containerd)
    [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || pkgs+=(docker.io)
    command -v podman >/dev/null || pkgs+=(podman)
    [ -x /bin/busybox ] || pkgs+=(busybox-static)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    echo "== installing from Debian: ${pkgs[*]}"
    # A policy-rc.d that says 101 keeps the packages' postinst scripts from
    # starting containerd/docker on this host; ours is removed afterwards.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq || rc=$?
    [ $rc -ne 0 ] || timeout 1200 apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null || rc=$?
    [ $made_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
    if [ $rc -ne 0 ]; then
        echo "run.sh: apt-get failed ($rc) installing ${pkgs[*]}" >&2
        exit 2
    fi
}
install_missing
[ $INSTALL_ONLY = 0 ] || exit 0

# ---------------------------------------------------------------- workspace
W=$(mktemp -d /tmp/xrun-e2e.XXXXXX)
NS=xrun-e2e                     # containerd namespace, cgroup parent of ctr's containers
IMG_TAR="$W/image.tar"
PIDS_TO_STOP=()                 # daemons we started, stopped in reverse order
PASSED=0
FAILED=0
FAILED_NAMES=()

pass() { echo "PASS $1${2:+ ($2)}"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); }
# why MSG: records why the running scenario failed, returns 1.
why() { printf '%s\n' "$*" >"$W/why"; return 1; }
# scenario NAME FUNC ARGS...: runs FUNC, prints PASS/FAIL; its output goes to
# $W/log/NAME.log, the reason is the last `why`, else the output's last line.
scenario() {
    local name=$1
    shift
    rm -f "$W/why"
    mkdir -p "$W/log"
    local t0=$SECONDS
    if "$@" >"$W/log/$name.log" 2>&1; then
        pass "$name" "$((SECONDS - t0)) s"
    else
        local r
        if [ -s "$W/why" ]; then r=$(cat "$W/why"); else r=$(tail -n 1 "$W/log/$name.log"); fi
        fail "$name" "${r:-exit status non-zero, no output} ($((SECONDS - t0)) s)"
    fi
}
# A wrapper per daemon: logs argv to $W/argv-NAME.log, then execs the runtime.
make_wrapper() {
    local name=$1 out="$W/rt-$1"
    printf '#!/bin/sh\nLOG_ARGV_FILE=%q LOG_ARGV_REAL=%q exec %q "$@"\n' \
        "$W/argv-$name.log" "$RUNTIME" "$HERE/log-argv.sh" >"$out"
    chmod 755 "$out"
    echo "$out"
}
# wait_for SECONDS CMD...: polls CMD every 0.1 s.
wait_for() {
    local n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
stop_pid() {
    local pid=$1 n=100
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
# Our processes: anything whose command line names the workspace. One grep
# over every /proc/PID/cmdline (a fork per process costs seconds in a TCG
# VM); the pattern comes on stdin so that grep's own argv does not match.
our_pids() {
    printf '%s\n' "$W" | grep -laFf - /proc/[0-9]*/cmdline 2>/dev/null |
        awk -F/ -v self=$$ '$3 != self { print $3 }'
    true
}
# freezer_state PID: FROZEN or THAWED, from the freezer cgroup holding PID
# (v1 freezer.state; on cgroup v2 cgroup.freeze 1/0).
freezer_state() {
    local p
    p=$(awk -F: '$2 ~ /(^|,)freezer(,|$)/ { print $3 }' "/proc/$1/cgroup" 2>/dev/null)
    if [ -n "$p" ]; then
        cat "/sys/fs/cgroup/freezer$p/freezer.state"
        return
    fi
    p=$(awk -F: '$1 == 0 { print $3 }' "/proc/$1/cgroup" 2>/dev/null)
    case "$(cat "/sys/fs/cgroup$p/cgroup.freeze" 2>/dev/null)" in
    1) echo FROZEN ;;
    0) echo THAWED ;;
    *) echo "unknown" ;;
    esac
}
our_mounts() { awk -v w="$W" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo; }
# systemd driver: slices, scope unit checks, the EXIT trap's unit cleanup
. "$HERE/systemd-scope.sh"

# Cgroup dirs of our containers in every hierarchy.
our_cgroups() {
    local d
    if sd; then
        [ -d "$SD_ROOT" ] && find "$SD_ROOT" -mindepth 1 -type d -name '*.scope'
        return 0
    fi
    for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/*/xrun-e2e-docker /sys/fs/cgroup/*/xrun-e2e-podman \
        /sys/fs/cgroup/*/"$NS"-bench; do
        # podman's empty conmon cgroup is its own, not a container's
        [ -d "$d" ] && find "$d" -mindepth 1 -type d ! -name conmon
    done
    true
}
cleanup_cgroups() {
    local d
    if sd; then
        [ -d "$SD_ROOT" ] && find "$SD_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
        return 0
    fi
    for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/*/xrun-e2e-docker /sys/fs/cgroup/*/xrun-e2e-podman \
        /sys/fs/cgroup/*/"$NS"-bench; do
        [ -d "$d" ] || continue
        # conmon makes its cgroup dirs, with a "tasks" file, even where no
        # hierarchy is mounted: plain dirs on /sys/fs/cgroup's tmpfs.
        if [ "$(stat -f -c %T "$d")" = tmpfs ]; then
            rm -rf -- "$d"
            continue
        fi
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    echo "== cleanup"
    [ "$(type -t docker_cleanup)" = function ] && docker_cleanup
    [ "$(type -t podman_cleanup)" = function ] && podman_cleanup
    [ "$(type -t containerd_cleanup)" = function ] && containerd_cleanup
    local i
    for ((i = ${#PIDS_TO_STOP[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS_TO_STOP[$i]}"; done
    [ "$(type -t docker_cleanup_host)" = function ] && docker_cleanup_host
    # Shims outlive containerd by design; ours name the workspace in argv.
    local left
    left=$(our_pids)
    if [ -n "$left" ]; then
        echo "leftover processes: $(echo $left)" >&2
        ps -o pid,args -p "$(echo $left | tr ' ' ,)" >&2
        for i in $left; do kill -KILL "$i" 2>/dev/null; done
        FAILED=$((FAILED + 1))
        echo "FAIL cleanup-processes: $(echo $left)"
    fi
    local m mounts
    mounts=$(our_mounts | sort -r)
    for m in $mounts; do umount -l "$m" 2>/dev/null; done
    [ -z "$mounts" ] || echo "note: unmounted $(echo "$mounts" | wc -l) leftover mounts (daemon storage)"
    left=$(our_cgroups)
    if [ -n "$left" ]; then
        echo "FAIL cleanup-cgroups: $(echo $left | head -c 400)"
        FAILED=$((FAILED + 1))
    fi
    sd && sd_cleanup_units
    cleanup_cgroups
    if [ $KEEP = 1 ]; then
        echo "kept $W"
    else
        rm -rf --one-file-system "$W"
    fi
    echo "e2e: $PASSED passed, $FAILED failed"
    [ ${#FAILED_NAMES[@]} -eq 0 ] || echo "failed: ${FAILED_NAMES[*]}"
    if [ $FAILED -gt 0 ]; then exit 1; fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

echo "== runtime: $RUNTIME"
echo "== cgroup driver: $CGROUP_DRIVER"
echo "== workspace: $W"
T python3 "$HERE/mkimage.py" "$IMG_TAR" --name xrun-e2e --tag latest || { fail image "mkimage.py failed"; exit 1; }

# ---------------------------------------------------------------- containerd
CD_SOCK="$W/containerd/containerd.sock"
CD_STARTED=0
start_containerd() {
    [ $CD_STARTED = 1 ] && return 0
    mkdir -p "$W/containerd"
    cat >"$W/containerd/config.toml" <<EOF
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CD_SOCK"
[ttrpc]
  address = "$CD_SOCK.ttrpc"
[debug]
  address = "$W/containerd/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
EOF
    containerd --config "$W/containerd/config.toml" >"$W/containerd/log" 2>&1 &
    local pid=$!
    PIDS_TO_STOP+=("$pid")
    if ! wait_for 20 ctr --address "$CD_SOCK" version; then
        echo "containerd did not come up; its log:" >&2
        tail -20 "$W/containerd/log" >&2
        return 1
    fi
    CD_STARTED=1
}
. "$HERE/stage-containerd.sh"
. "$HERE/stage-docker.sh"
. "$HERE/stage-podman.sh"

for s in "${STAGES[@]}"; do
    echo "== stage $s"
    "stage_$s"
done

echo "== runtime flags seen (argv logs)"
for f in "$W"/argv-*.log; do
    [ -e "$f" ] || continue
    echo "-- $(basename "$f" .log): $(wc -l <"$f") calls"
    # verb and flags only: drop values that are paths or ids
    awk '{ line = ""; for (i = 2; i <= NF; i++) if ($i ~ /^-/ || $i ~ /^(create|start|delete|kill|exec|ps|pause|resume|state|update|events|run|features|list|spec|checkpoint|restore)$/) line = line " " $i; print line }' "$f" | sort | uniq -c | sort -rn
done
