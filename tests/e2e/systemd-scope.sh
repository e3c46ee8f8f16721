# systemd-driver helpers of tests/e2e/run.sh (sourced; they use its W, T,
# why, wait_for, CGROUP_DRIVER, FAILED). With --cgroup-driver systemd every
# container of ours is a scope unit in a slice of ours, one per engine, all
# below SD_SLICE (a dash nests a slice: xrune2e-docker.slice is
# /xrune2e.slice/xrune2e-docker.slice).
SD_SLICE=xrune2e.slice
SD_PREFIX=xrune2e                 # ctr's scope units: xrune2e-<id>.scope
SD_ROOT=/sys/fs/cgroup/$SD_SLICE
sd() { [ "$CGROUP_DRIVER" = systemd ]; }
# sd_slice_cgroup NAME.slice: its cgroup path (/a.slice/a-b.slice for a-b.slice).
sd_slice_cgroup() {
    local name=${1%.slice} path="" part="" w
    local IFS=-
    for w in $name; do
        part=${part:+$part-}$w
        path="$path/$part.slice"
    done
    echo "$path"
}
# Units a scenario saw, checked (and stopped if still there) by the EXIT trap.
sd_note_unit() { echo "$1" >>"$W/units"; }
# sd_check_scope UNIT SLICE PID MEMORY: the container whose init is PID runs
# in the active scope UNIT of SLICE with Delegate=yes, and its memory limit of
# MEMORY bytes is the unit's MemoryMax and its cgroup's memory.max.
sd_check_scope() {
    local unit=$1 slice=$2 pid=$3 mem=$4 cg props
    sd_note_unit "$unit"
    cg=$(sd_slice_cgroup "$slice")/$unit
    echo "pid $pid: $(cat "/proc/$pid/cgroup")"
    grep -qx "0::$cg" "/proc/$pid/cgroup" ||
        why "init $pid is in cgroup '$(cat "/proc/$pid/cgroup" 2>/dev/null)', want 0::$cg" || return 1
    props=$(T systemctl show -p Id,Slice,ControlGroup,ActiveState,Delegate "$unit")
    echo "$props"
    local want
    for want in "Slice=$slice" "ControlGroup=$cg" ActiveState=active Delegate=yes; do
        grep -qx "$want" <<<"$props" || why "systemctl show $unit: no $want in: $(echo $props)" || return 1
    done
    sd_check_memory "$unit" "$slice" "$mem"
}
# sd_check_memory UNIT SLICE MEMORY: the unit's MemoryMax and its cgroup's
# memory.max are MEMORY bytes.
sd_check_memory() {
    local unit=$1 cg got
    cg=/sys/fs/cgroup$(sd_slice_cgroup "$2")/$unit
    got=$(T systemctl show -p MemoryMax --value "$unit")
    [ "$got" = "$3" ] || why "systemctl show $unit: MemoryMax=$got, want $3" || return 1
    got=$(cat "$cg/memory.max" 2>/dev/null)
    [ "$got" = "$3" ] || why "$cg/memory.max is '$got', want $3"
}
# sd_unit_active UNIT: prints its ActiveState unless the unit is gone
# (inactive, or not loaded at all).
sd_unit_active() {
    local st
    st=$(T systemctl show -p ActiveState --value "$1" 2>/dev/null)
    [ -z "$st" ] || [ "$st" = inactive ] || echo "$st"
}
# sd_check_gone UNIT SLICE: after the container's removal its unit is gone
# (not loaded or inactive) and its cgroup dir removed.
sd_check_gone() {
    local unit=$1 cg
    cg=/sys/fs/cgroup$(sd_slice_cgroup "$2")/$unit
    wait_for 10 sh -c "[ ! -d '$cg' ]" || why "$cg still exists after the container was removed" || return 1
    local st
    st=$(sd_unit_active "$unit")
    [ -z "$st" ] || why "unit $unit is still $st after the container was removed"
}
# Scope units of ours still there (noted ones, and any scope in our slices).
sd_units_left() {
    local u
    {
        cat "$W/units" 2>/dev/null
        [ -d "$SD_ROOT" ] && find "$SD_ROOT" -type d -name '*.scope' -printf '%f\n'
    } | sort -u | while read -r u; do
        [ -n "$u" ] && [ -n "$(sd_unit_active "$u")" ] && echo "$u"
    done
    true
}
# EXIT trap: stops the scope units of ours left (a failure), then our
# slices, which systemd made for them (not a failure: runtimes leave them).
sd_cleanup_units() {
    local left u
    left=$(sd_units_left)
    if [ -n "$left" ]; then
        echo "FAIL cleanup-units: $(echo $left | head -c 400)"
        FAILED=$((FAILED + 1))
        for u in $left; do
            T systemctl stop "$u" >/dev/null 2>&1
            T systemctl reset-failed "$u" >/dev/null 2>&1
        done
    fi
    for u in $SD_PREFIX-ctr.slice $SD_PREFIX-docker.slice $SD_PREFIX-podman.slice $SD_SLICE; do
        [ -n "$(sd_unit_active "$u")" ] && T systemctl stop "$u" >/dev/null 2>&1
    done
    true
}
