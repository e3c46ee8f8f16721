#!/bin/bash
# Runs inside the VM (started by run-in-vm.sh through vng --exec): makes the
# guest a pure cgroup v2 host with every controller enabled, gives COMMAND a
# fresh /tmp and its tmpfs/writable dirs, then runs COMMAND as root.
# Usage: guest-init.sh RUNDIR   (RUNDIR/orders is written by run-in-vm.sh)
# Exit 125 when the environment cannot be set up; otherwise COMMAND's status.
set -uo pipefail

fail() {
    echo "run-in-vm (guest): $*" >&2
    exit 125
}

# shellcheck disable=SC1091
source "$1/orders" || fail "cannot read $1/orders"
if [ -n "${GUEST_TRACE:-}" ]; then PS4='+ [$(cut -d" " -f1 /proc/uptime)] '; set -x; fi

# /tmp: a fresh, writable tmpfs (virtme's is an overlay of the host's /tmp,
# and an overlayfs cannot be an overlay's upper layer, as containers need).
# --rwdir mounts below /tmp are moved aside and back on top of the new /tmp.
# No nosuid/nodev: bundles made under /tmp may hold device nodes, as on a host.
moved=()
for d in "${GUEST_RWDIRS[@]}"; do
    case $d in /tmp/*) ;; *) continue ;; esac
    aside=/run/xrun-vm-aside/${#moved[@]}
    mkdir -p "$aside" && mount --move "$d" "$aside" || fail "moving $d aside"
    moved+=("$d")
done
mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "mounting tmpfs on /tmp"
for i in "${!moved[@]}"; do
    mkdir -p "${moved[$i]}" && mount --move "/run/xrun-vm-aside/$i" "${moved[$i]}" || fail "moving ${moved[$i]} back"
done
for d in "${GUEST_TMPFS[@]}"; do
    mkdir -p "$d" && mount -t tmpfs -o mode=1777 tmpfs "$d" || fail "mounting tmpfs on $d"
done

# /proc, /dev, /dev/pts, /dev/shm, /run are mounted by virtme-ng-init; check.
for m in /proc:proc /dev:devtmpfs /dev/pts:devpts /dev/shm:tmpfs /run:tmpfs; do
    findmnt -n -t "${m#*:}" "${m%%:*}" >/dev/null || fail "${m%%:*} is not a ${m#*:} mount"
done

# cgroups: cgroup2 alone at /sys/fs/cgroup (the kernel runs with
# cgroup_no_v1=all), with the options systemd uses, and every controller
# enabled in the root's subtree_control, as on a systemd host.
cg=/sys/fs/cgroup
if [ "$(stat -f -c %T $cg)" != cgroup2fs ]; then
    mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $cg || fail "mounting cgroup2 on $cg"
else
    mount -o remount,nsdelegate,memory_recursiveprot $cg 2>/dev/null ||
        mount -o remount,nsdelegate $cg || fail "remounting $cg with nsdelegate"
fi
v1=$(awk '$3 == "cgroup" { print $2 }' /proc/self/mounts)
[ -z "$v1" ] || fail "cgroup v1 hierarchies are mounted at: ${v1//$'\n'/ }"
read -ra controllers <$cg/cgroup.controllers
for c in "${controllers[@]}"; do
    echo "+$c" >$cg/cgroup.subtree_control || fail "enabling the $c controller"
done
for c in cpu cpuset io memory pids hugetlb rdma misc; do
    grep -qw "$c" $cg/cgroup.subtree_control || fail "controller $c is not available (have: $(cat $cg/cgroup.controllers))"
done
if [ -n "$GUEST_CGROUP" ]; then
    mkdir -p "$cg/$GUEST_CGROUP" && echo $$ >"$cg/$GUEST_CGROUP/cgroup.procs" ||
        fail "moving COMMAND into cgroup $GUEST_CGROUP"
fi

# Namespaces a container runtime needs.
unshare --mount --uts --ipc --net --pid --fork --cgroup true || fail "unshare of mount/uts/ipc/net/pid/cgroup namespaces fails"
unshare --user --map-root-user true || fail "user namespaces do not work"

up=$(awk -v s="$GUEST_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
echo "run-in-vm: guest $(uname -r) ready ${up} s after start; cgroup2 controllers: $(cat $cg/cgroup.subtree_control)" >&2

cd "$GUEST_CWD" 2>/dev/null || cd "$GUEST_REPO" || fail "cannot cd to $GUEST_REPO"
exec env -i HOME=/root TERM="${TERM:-linux}" "${GUEST_ENV[@]}" "${GUEST_ARGS[@]}"
