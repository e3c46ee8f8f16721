#!/usr/bin/env bash
# Runtime wrapper that records how it was called, then becomes the real runtime.
# Appends one line per call: the argv, each word shell-quoted, to
# $LOG_ARGV_FILE (default /tmp/xrun-e2e-argv.log), then execs $LOG_ARGV_REAL
# (default /usr/sbin/runc) with the same arguments, stdio and environment.
# Daemons do not always pass the caller's environment down to the runtime, so
# run.sh points each daemon at a two-line script that sets both variables and
# execs this one.
log=${LOG_ARGV_FILE:-/tmp/xrun-e2e-argv.log}
real=${LOG_ARGV_REAL:-/usr/sbin/runc}
{
    printf '%q' "$real"
    for a in "$@"; do printf ' %q' "$a"; done
    printf '\n'
} >>"$log" 2>/dev/null || true
exec "$real" "$@"
