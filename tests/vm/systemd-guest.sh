#!/bin/bash
# Runs inside the systemd VM for tests/vm/systemd.sh: copies the runtime
# (SNAPSHOT-DIR/runtime/NAME) and the integration test binary
# (SNAPSHOT-DIR/integration) to tmpfs, runs the tests
# matching FILTERs (one process per test, each-test.sh) and the e2e stages
# with the systemd cgroup driver, both against that runtime, then prints a
# summary line per part. FILTER `none` skips the tests; E2E-STAGES is a
# comma-separated list of e2e stages, or `none`.
# usage: systemd-guest.sh SNAPSHOT-DIR E2E-STAGES FILTER...
set -uo pipefail
snap=${1:?usage: systemd-guest.sh SNAPSHOT-DIR E2E-STAGES FILTER...}
stages=${2:?}
shift 2
here=$(cd "$(dirname "$0")" && pwd -P)
d=/tmp/xrun-under-test
rt=$(find "$snap/runtime" -maxdepth 1 -type f | head -n 1)
if ! { [ -n "$rt" ] && mkdir -p "$d" && cp "$rt" "$d/" && cp "$snap/integration" "$d/integration"; }; then
    echo "systemd-guest.sh: cannot copy the binaries from $snap" >&2
    exit 125
fi
rt=$d/$(basename "$rt")

summary=()
failed=0
t0=$SECONDS
if [ "$*" != none ]; then
    echo "== integration tests: $*"
    rc=0
    XRUN_BIN=$rt "$here/each-test.sh" "$d/integration" "$@" || rc=$?
    if [ $rc = 0 ]; then r=ok; else r="FAILED ($rc)"; failed=1; fi
    summary+=("tests $r in $((SECONDS - t0)) s")
fi
t1=$SECONDS
if [ "$stages" != none ]; then
    echo "== e2e with the systemd cgroup driver: ${stages//,/ }"
    rc=0
    # shellcheck disable=SC2086 # (the stage names, split on purpose)
    E2E_STEP_TIMEOUT=${E2E_STEP_TIMEOUT:-300} "$here/../e2e/run.sh" --cgroup-driver systemd \
        --runtime "$rt" ${stages//,/ } || rc=$?
    if [ $rc = 0 ]; then r=ok; else r="FAILED ($rc)"; failed=1; fi
    summary+=("e2e $r in $((SECONDS - t1)) s")
fi
echo
line=$(IFS=';'; echo "${summary[*]}")
echo "systemd stage: ${line//;/; } (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"
exit $failed
