#!/usr/bin/env bash
# Wall time of 20 containers run to completion through containerd
# (ctr run --rm, io.containerd.runc.v2 shim) with xrun and with runc, in one
# run, side by side. A benchmark: it never fails on slow numbers.
#
#   bench/containerd-20.sh [--xrun PATH] [--runc PATH] [--count N]
#
# A private containerd (own config, root, state, socket; no CRI) under a temp
# dir, stopped by PID at the end; the image is tests/e2e/mkimage.py's busybox
# image. Containers alternate xrun, runc, xrun, ... so drift hits both; two
# warm-up runs each are not counted. Each container runs `true`; the time is
# the whole `ctr run --rm` (shim start, create, start, wait, delete).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
XRUN=target/x86_64-unknown-linux-gnu/release/xrun
RUNC=/usr/sbin/runc
COUNT=20
while [ $# -gt 0 ]; do
    case "$1" in
    --xrun) XRUN=$2; shift 2 ;;
    --runc) RUNC=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    *) echo "containerd-20.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
XRUN=$(readlink -f "$XRUN")
for b in "$XRUN" "$RUNC"; do [ -x "$b" ] || { echo "containerd-20.sh: $b is not executable" >&2; exit 2; }; done
command -v containerd >/dev/null && command -v ctr >/dev/null || { echo "containerd-20.sh: needs containerd (apt-get install containerd)" >&2; exit 2; }

W=$(mktemp -d /tmp/xrun-bench-cd.XXXXXX)
NS=xrun-e2e-bench
SOCK="$W/containerd.sock"
CD_PID=""
IMG=docker.io/library/xrun-e2e:latest
ctr_() { timeout 60 ctr --address "$SOCK" -n "$NS" "$@"; }
cleanup() {
    set +e
    if [ -n "$CD_PID" ]; then
        for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task rm -f "$id" >/dev/null 2>&1; done
        for id in $(ctr_ c ls -q 2>/dev/null); do ctr_ c rm "$id" >/dev/null 2>&1; done
        kill -TERM "$CD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$CD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CD_PID" 2>/dev/null
        wait "$CD_PID" 2>/dev/null
    fi
    awk -v w="$W" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/"$NS"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf --one-file-system "$W"
}
trap cleanup EXIT

cat >"$W/config.toml" <<CFG
version = 2
root = "$W/root"
state = "$W/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$W/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/opt"
CFG
containerd --config "$W/config.toml" >"$W/containerd.log" 2>&1 &
CD_PID=$!
for _ in $(seq 200); do ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
timeout 60 python3 tests/e2e/mkimage.py "$W/image.tar" >/dev/null || exit 1
ctr_ images import "$W/image.tar" >/dev/null || { echo "image import failed" >&2; exit 1; }

# one NAME BINARY ID: prints the wall time of one `ctr run --rm` in ns.
one() {
    local t0 t1 rc
    t0=$(date +%s%N)
    ctr_ run --rm --runc-binary "$2" --runc-root "$W/rt-$1" "$IMG" "$3" true >/dev/null 2>&1
    rc=$?
    t1=$(date +%s%N)
    [ $rc = 0 ] || echo "warning: $1 container $3 exited $rc" >&2
    echo $((t1 - t0))
}
for i in 1 2; do one xrun "$XRUN" warm-x$i >/dev/null; one runc "$RUNC" warm-r$i >/dev/null; done
xt=(); rt=()
for i in $(seq "$COUNT"); do
    xt+=("$(one xrun "$XRUN" x$i)")
    rt+=("$(one runc "$RUNC" r$i)")
done
python3 - "$COUNT" "${xt[*]}" "${rt[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
x = [int(v) / 1e6 for v in sys.argv[2].split()]
r = [int(v) / 1e6 for v in sys.argv[3].split()]
print(f"{n} containers each through containerd 1.6 (ctr run --rm ... true), alternating runtimes")
print(f"{'':12}{'xrun':>12}{'runc':>12}")
print(f"{'total s':12}{sum(x)/1e3:12.2f}{sum(r)/1e3:12.2f}")
print(f"{'median ms':12}{statistics.median(x):12.1f}{statistics.median(r):12.1f}")
print(f"{'min ms':12}{min(x):12.1f}{min(r):12.1f}")
print(f"{'max ms':12}{max(x):12.1f}{max(r):12.1f}")
print(f"xrun/runc total = {sum(x)/sum(r):.2f}")
PY
