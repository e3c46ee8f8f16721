#!/usr/bin/env bash
# Start-latency benchmark (bench/start-latency.py) inside the cgroup v2 VM
# (tests/vm/run-in-vm.sh), xrun against crun and runc, with every runtime's
# binary, the shared libraries they load, the bundle, the RSS launcher and the
# floor's unshare/chroot copied onto a tmpfs in the guest first, so nothing the
# timed runs execute is read over 9p. A benchmark: it never fails on slow numbers.
#
# usage: bench/vm-start-latency.sh [OPTIONS] [-- START-LATENCY-OPTIONS...]
#   --xrun PATH       xrun binary (default $XRUN_BENCH_BIN, else target/x86_64-unknown-linux-gnu/release/xrun)
#   --runc PATH       runc binary (default /usr/sbin/runc)
#   --crun PATH       crun binary (default /usr/bin/crun); the ratios are to crun
#   --also NAME=PATH  one more runc-compatible binary (repeatable)
#   --runs N          measured rounds (default 40)
#   --warmup N        discarded warm-up rounds (default 5)
#   --json FILE       write start-latency.py's JSON (every sample) to FILE on the host
#   --timeout SECS    kill the VM after SECS (default 2400)
# Options after `--` go to start-latency.py as they are (e.g. --no-rss).
# Must run as root (the VM stage needs it). See bench/README.md.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(dirname "$HERE")
# The one place that knows where the release build puts xrun.
DEFAULT_XRUN=${XRUN_BENCH_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/xrun}

say() { echo "vm-start-latency: $*" >&2; }
die() {
    say "$*"
    exit 2
}

# ---------------------------------------------------------------------------
# Guest side: `vm-start-latency.sh --guest STAGE NAME=PATH... -- PY-ARGS...`,
# run by run-in-vm.sh as root in the VM. STAGE (shared with the host) holds
# the runtime binaries; every NAME=PATH names one of them.

# tmpfs_copy SRC DEST: copy SRC to DEST and check that DEST is on a tmpfs.
tmpfs_copy() {
    cp -L "$1" "$2"
    [ "$(stat -f -c %T "$2")" = tmpfs ] || die "$2 is not on a tmpfs"
}

# shared_libs BINARY...: real paths of the loader and libraries the binaries
# load, one per line (nothing for static binaries).
shared_libs() {
    local b
    for b in "$@"; do
        ldd "$b" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true
    done | xargs -r readlink -f | sort -u
}

GUEST_DIR=/tmp/xrun-vmbench-tmpfs
LIBS=()

# shellcheck disable=SC2317 # (the EXIT trap)
guest_cleanup() {
    local lib
    for lib in ${LIBS[@]+"${LIBS[@]}"}; do umount -l "$lib" 2>/dev/null || true; done
    rm -rf "$GUEST_DIR"
}

guest() {
    local stage=$1 b=$GUEST_DIR spec name path lib py_args=()
    shift
    # It bind-mounts over the system's libraries: only ever in the VM.
    grep -qw cgroup_no_v1=all /proc/cmdline || die "--guest is for the VM run-in-vm.sh boots, not this machine"
    [ "$(stat -f -c %T /tmp)" = tmpfs ] || die "guest /tmp is not a tmpfs"
    mkdir -p "$b/bin" "$b/lib" "$b/bundle"
    trap guest_cleanup EXIT

    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        spec=$1 name=${1%%=*}
        shift
        tmpfs_copy "$stage/$name" "$b/bin/$name"
        case $name in
        xrun | runc | crun) py_args+=("--$name" "$b/bin/$name") ;;
        *) py_args+=(--also "$name=$b/bin/$name") ;;
        esac
        say "guest: ${spec#*=} -> $b/bin/$name"
    done
    [ "${1:-}" = -- ] && shift

    # The floor's binaries, found first on PATH by start-latency.py.
    for name in unshare chroot; do
        path=$(command -v "$name") && tmpfs_copy "$path" "$b/bin/$name"
    done
    export PATH="$b/bin:$PATH"

    # Shared libraries (and the loader, and ld.so.cache): a tmpfs copy is
    # bind-mounted over each real file, so every dynamic binary started from
    # now on maps the tmpfs copy. (LD_LIBRARY_PATH would leave the loader on
    # 9p, and running binaries through the loader would change /proc/self/exe,
    # which the runtimes re-exec.)
    mapfile -t LIBS < <(shared_libs "$b"/bin/*; echo /etc/ld.so.cache)
    for lib in "${LIBS[@]}"; do
        [ -f "$lib" ] || continue
        tmpfs_copy "$lib" "$b/lib/$(basename "$lib")"
        mount --bind "$b/lib/$(basename "$lib")" "$lib"
        [ "$(stat -f -c %T "$lib")" = tmpfs ] || die "$lib is still not on a tmpfs"
    done
    say "guest: on tmpfs: $(cd "$b/bin" && echo *); libraries: $(cd "$b/lib" && echo *)"

    # The bundle: oci-bundles/true's config with a rootfs built on the tmpfs
    # (its static busybox is also start-latency.py's RSS launcher).
    cp "$REPO/oci-bundles/true/config.json" "$b/bundle/"
    "$REPO/oci-bundles/build-rootfs.sh" "$b/bundle/rootfs" >/dev/null
    cp "$HERE/start-latency.py" "$b/"

    # State roots: start-latency.py's temp dir, on the same tmpfs.
    TMPDIR=$b python3 -u "$b/start-latency.py" --bundle "$b/bundle" --baseline crun "${py_args[@]}" "$@"
}

if [ "${1:-}" = --guest ]; then
    shift
    guest "$@"
    exit
fi

# ---------------------------------------------------------------------------
# Host side: options, a snapshot of the binaries, the VM.

usage() {
    sed -n '8,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

XRUN=$DEFAULT_XRUN
RUNC=/usr/sbin/runc
CRUN=/usr/bin/crun
ALSO=()
RUNS=40
WARMUP=5
JSON=
TIMEOUT=2400
while [ $# -gt 0 ]; do
    case $1 in
    --xrun) XRUN=${2:?}; shift 2 ;;
    --runc) RUNC=${2:?}; shift 2 ;;
    --crun) CRUN=${2:?}; shift 2 ;;
    --also) ALSO+=("${2:?}"); shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --json) JSON=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) say "unknown option: $1"; usage ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root"

# A private copy of each binary (a rebuild on the host during the run cannot
# change what the guest copies), in a host dir the guest may write (the JSON).
STAGE=$(mktemp -d /tmp/xrun-vmbench.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"
SPECS=()
for spec in "xrun=$XRUN" "runc=$RUNC" "crun=$CRUN" ${ALSO[@]+"${ALSO[@]}"}; do
    name=${spec%%=*} path=${spec#*=}
    [[ $spec == *=* && $name =~ ^[A-Za-z0-9._-]+$ && -n $path ]] || die "--also wants NAME=PATH, got '$spec'"
    [[ " ${SPECS[*]+${SPECS[*]}} " != *" $name="* ]] || die "runtime name '$name' given twice"
    if [ ! -x "$path" ] || [ -d "$path" ]; then
        say "$name not found at $path, skipping"
        continue
    fi
    cp -L "$path" "$STAGE/$name"
    SPECS+=("$name=$(readlink -f "$path")")
done
[ ${#SPECS[@]} -gt 0 ] || die "no runtime to benchmark"

PY_ARGS=(--runs "$RUNS" --warmup "$WARMUP")
[ -z "$JSON" ] || PY_ARGS+=(--json "$STAGE/start-latency.json")

rc=0
"$REPO/tests/vm/run-in-vm.sh" --timeout "$TIMEOUT" --rwdir "$STAGE" -- \
    bash "$HERE/vm-start-latency.sh" --guest "$STAGE" "${SPECS[@]}" -- "${PY_ARGS[@]}" "$@" || rc=$?
if [ -n "$JSON" ]; then
    if [ -s "$STAGE/start-latency.json" ]; then
        cp "$STAGE/start-latency.json" "$JSON"
        say "JSON written to $JSON"
    else
        say "no JSON came back from the guest"
    fi
fi
exit "$rc"
