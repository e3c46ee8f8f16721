#!/bin/bash
# Runs inside the VM: the integration tests matching FILTERs, one process per
# test, each bounded by a timeout, so that a test stuck in the guest (a
# process in uninterruptible sleep, a lost wakeup under TCG) becomes a named
# failure with a diagnosis instead of a silent stall of the whole stage.
#
# usage: each-test.sh TEST-BINARY [FILTER...]
#   XRUN_VM_TEST_TIMEOUT  seconds one test may take (default 300)
# Prints libtest-like lines ("test NAME ... ok"), the output of each failed
# test, and for a timeout the processes with their wait channels, the kernel
# stacks of those in D state and the kernel log's tail. Exit 1 if any failed.
set -uo pipefail

bin=${1:?usage: each-test.sh TEST-BINARY [FILTER...]}
shift
limit=${XRUN_VM_TEST_TIMEOUT:-300}
out=$(mktemp -d)

mapfile -t tests < <("$bin" --list --format terse "$@" | sed -n 's/: test$//p')
[ ${#tests[@]} -gt 0 ] || { echo "each-test.sh: no test matches: $*" >&2; exit 1; }
echo "running ${#tests[@]} tests, one at a time, ${limit} s each at most"

diagnose() {
    echo "---- processes (pid ppid stat wchan elapsed args)"
    ps -eo pid,ppid,stat,wchan:32,etime,args --sort=pid | grep -v ' \[.*\]$'
    for stat in /proc/[0-9]*/stat; do
        read -r pid _ state _ <"$stat" 2>/dev/null || continue
        [ "$state" = D ] || continue
        echo "---- kernel stack of $pid (D): $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)"
        cat /proc/"$pid"/stack 2>/dev/null
    done
    echo "---- kernel log tail"
    dmesg 2>/dev/null | tail -n 40
}

failed=()
start=$SECONDS
for name in "${tests[@]}"; do
    log=$out/log
    t0=$SECONDS
    # timeout signals the test's whole process group: the runtimes it started
    # go too (container inits, in their own sessions, die with the VM).
    timeout -k 10 "$limit" "$bin" --exact "$name" --test-threads=1 >"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    if [ $rc -eq 0 ] && grep -q '^test result: ok. 1 passed' "$log"; then
        echo "test $name ... ok (${took} s)"
        continue
    fi
    failed+=("$name")
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "test $name ... TIMEOUT after ${took} s"
        cat "$log"
        diagnose
    else
        echo "test $name ... FAILED (exit $rc, ${took} s)"
        cat "$log"
    fi
done

passed=$((${#tests[@]} - ${#failed[@]}))
echo
echo "vm tests: ${passed} passed, ${#failed[@]} failed in $((SECONDS - start)) s"
for name in "${failed[@]}"; do echo "  failed: $name"; done
rm -rf "$out"
[ ${#failed[@]} -eq 0 ]
