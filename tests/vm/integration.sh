#!/usr/bin/env bash
# The cgroup v2 stage: builds xrun and its integration suite on the host, then
# runs the suite as root inside a pure cgroup v2 VM (tests/vm/run-in-vm.sh).
#
# usage: tests/vm/integration.sh [FILTER...]
#   e.g. tests/vm/integration.sh lifecycle::      (filters, as for cargo test)
# Each matching test runs alone, bounded by XRUN_VM_TEST_TIMEOUT (default
# 300 s; see each-test.sh). XRUN_VM_TIMEOUT sets the whole VM's timeout
# (default 2700 s). Exit status: the suite's (124: timeout, 125: stage failure).
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

# One process per test, each with a timeout (tests/vm/each-test.sh); the
# filters are passed as for cargo test.
exec "$(dirname "$0")/run-in-vm.sh" --timeout "${XRUN_VM_TIMEOUT:-2700}" -- \
    sh -c 'mkdir -p /tmp/xrun-under-test &&
        cp "$1" /tmp/xrun-under-test/xrun && cp "$2" /tmp/xrun-under-test/integration &&
        shift 2 && XRUN_BIN=/tmp/xrun-under-test/xrun exec "$0" /tmp/xrun-under-test/integration "$@"' \
    "$PWD/tests/vm/each-test.sh" "$PWD/target/x86_64-unknown-linux-gnu/debug/xrun" "$test_bin" "$@"
