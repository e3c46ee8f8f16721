#!/bin/bash
# Runs inside the VM as xrun-ci.service (started by systemd, PID 1, as part of
# xrun-ci.target; written by run-in-systemd-vm.sh): waits for the boot to
# finish, checks the environment is the one promised, runs COMMAND as root and
# leaves its exit status in RUNDIR/status for the host. The unit powers the VM
# off when this script ends.
# Usage: guest-systemd.sh RUNDIR   (RUNDIR/orders is written by the host)
set -uo pipefail
R=$1

# COMMAND's stdout and stderr: the virtio-serial ports the host relays.
port() {
    local p
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${p##*/}"; return 0; }
    done
    return 1
}
out=$(port xrun.stdout) && err=$(port xrun.stderr) && exec >"$out" 2>"$err" ||
    echo "run-in-systemd-vm (guest): no xrun.stdout/xrun.stderr ports; output goes to the journal" >&2

fail() {
    echo "run-in-systemd-vm (guest): $*" >&2
    echo 125 >"$R/status"
    exit 0
}

# shellcheck disable=SC1091
source "$R/orders" || fail "cannot read $R/orders"
if [ -n "${GUEST_TRACE:-}" ]; then PS4='+ [$(cut -d" " -f1 /proc/uptime)] '; set -x; fi

# The boot is over once no job is left (this unit is of type simple, so it is
# not one of them): "running", or "degraded" if some unit failed.
state=$(systemctl is-system-running --wait 2>/dev/null)
case $state in
running) ;;
degraded)
    echo "run-in-systemd-vm (guest): system degraded; failed units: $(systemctl list-units --failed --plain --no-legend | awk '{ printf "%s ", $1 }')" >&2
    ;;
*) fail "systemd reports '$state' after boot, not running or degraded" ;;
esac

# What the stage promises: systemd is PID 1 on pure cgroup v2, the system bus
# answers, and systemd makes delegated transient scopes.
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is $(cat /proc/1/comm), not systemd"
cg=/sys/fs/cgroup
if grep -qw xrun.cgroup=hybrid /proc/cmdline; then
    # XRUN_VM_CGROUP=hybrid: v1 controllers, systemd's cgroup2 beside them.
    cg=/sys/fs/cgroup/unified
    [ "$(stat -f -c %T $cg)" = cgroup2fs ] || fail "$cg is not cgroup2 (hybrid layout asked)"
    [ -d /sys/fs/cgroup/memory ] || fail "no v1 memory hierarchy (hybrid layout asked)"
else
    [ "$(stat -f -c %T $cg)" = cgroup2fs ] || fail "$cg is not cgroup2"
    v1=$(awk '$3 == "cgroup" { print $2 }' /proc/self/mounts)
    [ -z "$v1" ] || fail "cgroup v1 hierarchies are mounted at: ${v1//$'\n'/ }"
    [ -n "$(cat $cg/cgroup.controllers)" ] || fail "no controllers in $cg/cgroup.controllers"
fi
[ -S /run/dbus/system_bus_socket ] || fail "no D-Bus system bus socket at /run/dbus/system_bus_socket"
busctl status org.freedesktop.systemd1 >/dev/null 2>&1 || fail "busctl status org.freedesktop.systemd1 fails: the system bus does not answer"
systemd-run --quiet --scope -p Delegate=yes true || fail "systemd-run --scope -p Delegate=yes true fails"

up=$(awk -v s="$GUEST_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
echo "run-in-systemd-vm: guest $(uname -r), $(systemctl --version | head -n1), system $state ${up} s after start (uptime $(cut -d' ' -f1 /proc/uptime) s); cgroup2 controllers: $(cat $cg/cgroup.subtree_control)" >&2

date +%s.%N >"$R/ready" # the host's --boot-timeout ends here
cd "$GUEST_CWD" 2>/dev/null || cd "$GUEST_REPO" || fail "cannot cd to $GUEST_REPO"
env -i HOME=/root TERM="${TERM:-linux}" "${GUEST_ENV[@]}" "${GUEST_ARGS[@]}" </dev/null
echo $? >"$R/status"
