#!/usr/bin/env bash
# Runs COMMAND as root inside a throw-away QEMU VM whose /sys/fs/cgroup is
# pure cgroup v2 with every controller enabled: the cgroup v2 test stage.
#
# usage: tests/vm/run-in-vm.sh [OPTIONS] -- COMMAND [ARGS...]
#
#   --timeout SECS   kill the VM (its qemu, by PID) after SECS; exit 124 (default 1200)
#   --memory SIZE    guest memory, qemu syntax (default 4G)
#   --cpus N         guest CPUs (default 2)
#   --kernel PATH    kernel image (default: newest Debian /boot/vmlinuz-* that is
#                    not the running kernel)
#   --rwdir PATH     host directory writable from the guest, writes reach the
#                    host (repeatable; default none)
#   --tmpfs PATH     mount a fresh tmpfs at PATH in the guest (repeatable;
#                    default: <repo>/target/x86_64-unknown-linux-gnu/tmp, cargo's CARGO_TARGET_TMPDIR)
#   --cgroup PATH    run COMMAND in /sys/fs/cgroup/PATH instead of the root cgroup
#   --env NAME=VAL   set NAME in COMMAND's environment (repeatable); PATH and
#                    XRUN_* / RUST_* variables are passed through by default
#   --verbose        show the vng command line and the kernel's boot log
#
# The guest is virtme-ng's snapshot of this host's own root filesystem: read
# only, with copy-on-write overlays (discarded at exit) on /etc /usr /var
# /home /root and on the repository, a fresh tmpfs on /tmp, tmpfs /run, and
# /proc, /sys, /dev, /dev/pts, /dev/shm. COMMAND runs in the repository (or
# the caller's working directory when that is visible in the guest); its
# stdout and stderr reach the caller, its exit status is this script's.
# Exit 124: timeout. Exit 125: the stage itself failed (set-up, or the guest
# could not be given a proper cgroup v2 hierarchy). The last line, on stderr,
# is "vm-stage: <seconds> s".
#
# TCG only (--disable-kvm): nested KVM does not work on these machines, so
# expect ~20 s to boot and everything inside to be 10-30x slower than native.
# Installs (once, quietly) qemu-system-x86, linux-image-amd64, busybox-static,
# kmod and python3-venv from Debian, and virtme-ng from PyPI into a venv under
# $XRUN_VM_CACHE (default /var/cache/xrun-vm), never into the repository.
set -euo pipefail

START=$(date +%s.%N)
[ -e /proc/self/fd/0 ] || exec </dev/null # CI may start us with stdin closed
SELF=$(basename "$0")
HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh" # options, messages, packages, kernel, COMMAND's environment
VENV=$CACHE/venv
VNG_VERSION=${XRUN_VM_VNG_VERSION:-1.42}
DEB_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static kmod python3-venv)
CGROUP=

usage() {
    sed -n '4,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    if vm_option "$@"; then shift "$SHIFT"; continue; fi
    case $1 in
    --cgroup) CGROUP=${2:?}; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) say "unknown option: $1"; usage ;;
    esac
done
[ $# -gt 0 ] || { say "no COMMAND given"; usage; }
vm_check_options

# vng passes most of its options through a shell unquoted: keep paths plain.
safe_path() {
    [[ $1 =~ ^/[A-Za-z0-9._/+@:,=-]*$ ]] || die "path '$1' must be absolute and use only [A-Za-z0-9._/+@:,=-]"
}

# ---------------------------------------------------------------------------
# Host side: packages, virtme-ng, kernel

# shellcheck disable=SC2317 # (called by vm_prepare_host)
install_deps() {
    install_debs
    if [ "$(cat "$VENV/.xrun-vng-version" 2>/dev/null)" != "$VNG_VERSION" ] || [ ! -x "$VENV/bin/vng" ]; then
        say "installing virtme-ng $VNG_VERSION into $VENV (once)"
        rm -rf "$VENV"
        /usr/bin/python3 -m venv "$VENV" >"$CACHE/pip.log" 2>&1 || die "python3 -m venv failed; see $CACHE/pip.log"
        "$VENV/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION" >>"$CACHE/pip.log" 2>&1 ||
            die "pip install virtme-ng failed; see $CACHE/pip.log"
        echo "$VNG_VERSION" >"$VENV/.xrun-vng-version"
    fi
}

vm_prepare_host install_deps
for p in "$REPO" "$KERNEL" "${RWDIRS[@]}"; do safe_path "$p"; done
# These are fresh tmpfs mounts in the guest: a repository there is not seen.
# Below /tmp (where a CI clone may live) it is shared writable instead, and
# guest-init.sh puts it back on top of the guest's new /tmp.
REPO_OVERLAY=(--overlay-rwdir "$REPO")
case $REPO/ in
/tmp/*) RWDIRS+=("$REPO"); REPO_OVERLAY=() ;;
/var/tmp/* | /var/cache/* | /var/log/* | /run/*) die "the repository ($REPO) is hidden in the guest: move it out of /var/tmp, /var/cache, /var/log, /run" ;;
esac

# ---------------------------------------------------------------------------
# The run: a private directory the guest reads its orders from (host /tmp is
# visible in the guest until guest-init.sh mounts a fresh tmpfs over it).

RUN=$(mktemp -d /tmp/xrun-vm.XXXXXX)
VNG_PID=
CAT_PIDS=()
SLEEP_PID=

stop_vm() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}
qemu_pid() { if [ -s "$RUN/qemu.pid" ]; then tr -dc 0-9 <"$RUN/qemu.pid"; fi; }
# shellcheck disable=SC2317 # (called from traps)
cleanup() {
    [ -n "$SLEEP_PID" ] && kill "$SLEEP_PID" 2>/dev/null || true
    [ -n "$VNG_PID" ] && kill -0 "$VNG_PID" 2>/dev/null && stop_vm "$(qemu_pid)"
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'say "interrupted: stopping the VM"; cleanup; stage_time; exit 130' INT TERM

vm_guest_env

GUEST_ARGS=("$@")
GUEST_CWD=$PWD
GUEST_TMPFS=("${TMPFS[@]}")
GUEST_RWDIRS=("${RWDIRS[@]}")
GUEST_CGROUP=$CGROUP
GUEST_REPO=$REPO
GUEST_START=$START
GUEST_TRACE=${XRUN_VM_TRACE:-}
declare -p GUEST_ARGS GUEST_ENV GUEST_CWD GUEST_TMPFS GUEST_RWDIRS GUEST_CGROUP GUEST_REPO GUEST_START GUEST_TRACE >"$RUN/orders"
chmod 755 "$RUN"

VNG=(
    "$VENV/bin/vng" --run "$KERNEL"
    --disable-kvm --force-9p
    --name xrun-vm --cpus "$CPUS" --memory "$MEMORY"
    "${REPO_OVERLAY[@]}" --overlay-rwdir /root
    --append "cgroup_no_v1=all"
    --qemu-opts="-pidfile $RUN/qemu.pid"
)
for d in "${RWDIRS[@]}"; do VNG+=(--rwdir "$d"); done
[ "$VERBOSE" = 1 ] && VNG+=(--verbose)
VNG+=(--exec "/bin/bash $HERE/guest-init.sh $RUN")
[ "$VERBOSE" = 1 ] && say "$(printf '%q ' "${VNG[@]}")"
say "booting $(basename "$KERNEL") in TCG (no KVM), $CPUS CPUs, $MEMORY, timeout ${TIMEOUT}s"

# qemu re-opens /proc/self/fd/1 and /2 for the guest's stdout and stderr,
# which on a regular file means a new offset (and truncation): clobbered
# logs. Pipes, relayed by cat, keep the caller's files intact.
mkfifo "$RUN/stdout" "$RUN/stderr"
cat <"$RUN/stdout" &
CAT_PIDS=($!)
cat <"$RUN/stderr" >&2 &
CAT_PIDS+=($!)
# vng needs virtme-run (same venv) on PATH; qemu writes its PID to $RUN/qemu.pid.
PATH="$VENV/bin:$PATH" "${VNG[@]}" <&0 >"$RUN/stdout" 2>"$RUN/stderr" &
VNG_PID=$!
sleep "$TIMEOUT" &
SLEEP_PID=$!

set +e
wait -n -p DONE "$VNG_PID" "$SLEEP_PID"
rc=$?
set -e
if [ "$DONE" = "$SLEEP_PID" ]; then
    SLEEP_PID=
    pid=$(qemu_pid)
    say "TIMEOUT: COMMAND did not finish within ${TIMEOUT}s; killing the VM (qemu pid ${pid:-not started yet})"
    stop_vm "$pid"
    # qemu gone, vng returns; if qemu never started, stop vng itself.
    for _ in $(seq 50); do kill -0 "$VNG_PID" 2>/dev/null || break; sleep 0.2; done
    stop_vm "$VNG_PID"
    wait "$VNG_PID" 2>/dev/null || true
    VNG_PID=
    wait "${CAT_PIDS[@]}" 2>/dev/null || true
    stage_time
    exit 124
fi
VNG_PID=
kill "$SLEEP_PID" 2>/dev/null || true
wait "$SLEEP_PID" 2>/dev/null || true
SLEEP_PID=
wait "${CAT_PIDS[@]}" 2>/dev/null || true # all of the guest's output is out

case $rc in
0) ;;
125) say "the VM stage failed (set-up inside the guest, or COMMAND exited 125)" ;;
255) say "the VM exited without COMMAND's status (kernel panic, qemu or vng error?), or COMMAND exited 255" ;;
*) say "COMMAND exited with status $rc" ;;
esac
stage_time
exit "$rc"
