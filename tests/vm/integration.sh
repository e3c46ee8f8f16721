#!/usr/bin/env bash
# The cgroup v2 stage: builds xrun and its integration suite on the host, then
# runs the suite as root inside a pure cgroup v2 VM (tests/vm/run-in-vm.sh).
#
# usage: tests/vm/integration.sh [TEST-BINARY-ARGS...]
#   e.g. tests/vm/integration.sh lifecycle::      (a filter, as for cargo test)
# Default test args: --test-threads=1. XRUN_VM_TIMEOUT sets the VM's timeout
# (default 1800 s). Exit status: the suite's (124: timeout, 125: stage failure).
#
# Both binaries are copied into the guest's tmpfs before they run: the guest
# sees the host's files live over 9p, so a rebuild on the host during the run
# would otherwise replace them under the suite (seen as SIGSEGVs).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet
test_bin=$(cargo test --quiet --test integration --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "integration":
        print(m["executable"])
')
[ -x "$test_bin" ] || { echo "integration.sh: no integration test binary found" >&2; exit 125; }

args=("$@")
printf '%s\n' "${args[@]}" | grep -q -- '^--test-threads' || args=(--test-threads=1 "${args[@]}")

exec "$(dirname "$0")/run-in-vm.sh" --timeout "${XRUN_VM_TIMEOUT:-1800}" -- \
    sh -c 'mkdir -p /tmp/xrun-under-test &&
        cp "$1" /tmp/xrun-under-test/xrun && cp "$2" /tmp/xrun-under-test/integration &&
        shift 2 && XRUN_BIN=/tmp/xrun-under-test/xrun exec /tmp/xrun-under-test/integration "$@"' \
    sh "$PWD/target/debug/xrun" "$test_bin" "${args[@]}"
