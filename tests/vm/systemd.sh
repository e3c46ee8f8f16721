#!/usr/bin/env bash
# The systemd stage: the systemd cgroup driver under systemd as PID 1 on pure
# cgroup v2, in one VM boot (tests/vm/run-in-systemd-vm.sh). Builds xrun
# (debug) and the integration test binary on the host, then in the guest
# runs the integration tests matching FILTERs (default `systemd::`), one
# process per test (tests/vm/each-test.sh), and the e2e stage with the
# engines' systemd cgroup drivers (tests/e2e/run.sh --cgroup-driver systemd:
# containerd, Docker, podman), both against the same runtime.
#
# usage: tests/vm/systemd.sh [OPTIONS] [FILTER...]
#   --runtime PATH   the runtime under test (default: the freshly built
#                    target/x86_64-unknown-linux-gnu/debug/xrun); e.g. /tmp/runc-1.4.2 validates the
#                    stage itself
#   --e2e STAGE      e2e stage to run: containerd, docker or podman
#                    (repeatable; default all three)
#   --no-e2e         integration tests only
#   --no-tests       e2e only
#   --verbose        show the guest's console (run-in-systemd-vm.sh --verbose)
# Environment: XRUN_VM_TIMEOUT (whole VM, default 2400 s),
# XRUN_VM_TEST_TIMEOUT (one test, default 300 s), E2E_STEP_TIMEOUT (one e2e
# command in the guest, default 300 s).
# Prints each part's results, then `systemd stage: tests ... e2e ...` with
# each part's status and time; the last line, on stderr, is
# `vm-stage: <seconds> s`. Exit status: 0 if every part passed, 1 if a part
# failed, 124 on timeout, 125 when the stage itself failed.
set -euo pipefail
[ -e /proc/self/fd/0 ] || exec </dev/null
HERE=$(cd "$(dirname "$0")" && pwd -P)
cd "$HERE/../.."

RUNTIME=
E2E=()
NO_E2E=0
NO_TESTS=0
VM_OPTS=()
FILTERS=()
usage() {
    sed -n '10,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}
while [ $# -gt 0 ]; do
    case $1 in
    --runtime) RUNTIME=${2:?}; shift 2 ;;
    --e2e) E2E+=("${2:?}"); shift 2 ;;
    --no-e2e) NO_E2E=1; shift ;;
    --no-tests) NO_TESTS=1; shift ;;
    --verbose | -v) VM_OPTS+=(--verbose); shift ;;
    -h | --help) usage 0 ;;
    -*) echo "systemd.sh: unknown option: $1" >&2; usage ;;
    *) FILTERS+=("$1"); shift ;;
    esac
done
[ ${#FILTERS[@]} -gt 0 ] || FILTERS=(systemd::)
[ ${#E2E[@]} -gt 0 ] || E2E=(containerd docker podman)
for s in "${E2E[@]}"; do
    case $s in containerd | docker | podman) ;; *) echo "systemd.sh: unknown e2e stage '$s'" >&2; usage ;; esac
done
[ $NO_E2E = 1 ] && E2E=(none)
[ $NO_TESTS = 1 ] && FILTERS=(none)
[ "${E2E[*]}" != none ] || [ "${FILTERS[*]}" != none ] || { echo "systemd.sh: --no-e2e and --no-tests: nothing to run" >&2; exit 2; }

cargo build --quiet
[ -n "$RUNTIME" ] || RUNTIME=$PWD/target/x86_64-unknown-linux-gnu/debug/xrun
[ -x "$RUNTIME" ] || { echo "systemd.sh: runtime '$RUNTIME' is not an executable" >&2; exit 125; }
test_bin=$(cargo test --quiet --test integration --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "integration":
        print(m["executable"])
')
[ -x "$test_bin" ] || { echo "systemd.sh: no integration test binary found" >&2; exit 125; }
# The engines come from the host's root (the guest has no network).
[ "${E2E[*]}" = none ] || tests/e2e/run.sh --install-only || exit 125

# A private snapshot of both binaries where the guest sees it (the host's
# /tmp is not visible there); the guest copies it to its tmpfs.
mkdir -p target
SNAP=$(mktemp -d "$PWD/target/vm-systemd.XXXXXX")
trap 'rm -rf "$SNAP"' EXIT
# The runtime keeps its name: it shows in its messages, which tests read.
mkdir "$SNAP/runtime"
cp "$RUNTIME" "$SNAP/runtime/$(basename "$RUNTIME")"
cp "$test_bin" "$SNAP/integration"
echo "systemd.sh: runtime $RUNTIME; tests: ${FILTERS[*]}; e2e: ${E2E[*]}" >&2

rc=0
"$HERE/run-in-systemd-vm.sh" --timeout "${XRUN_VM_TIMEOUT:-2400}" "${VM_OPTS[@]}" -- \
    "$HERE/systemd-guest.sh" "$SNAP" "$(
        IFS=,
        echo "${E2E[*]}"
    )" "${FILTERS[@]}" || rc=$?
exit $rc
