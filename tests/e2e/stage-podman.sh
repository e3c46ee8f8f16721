# podman stage of tests/e2e/run.sh (sourced; uses its helpers and $W).
# podman with all its storage in $W/podman (vfs driver, file events);
# conmon drives the runtime given by --runtime. Cgroup manager: run.sh's
# driver, cgroupfs below /xrun-e2e-podman or systemd with the slice
# xrune2e-podman.slice (units libpod-<id>.scope).

PM_DIR="$W/podman"
PM_IMG=docker.io/library/xrun-e2e:latest
PM_CGROUP_PARENT=/xrun-e2e-podman
sd && PM_CGROUP_PARENT=$SD_PREFIX-podman.slice
PM_STARTED=0
PM_MADE_VARLIB=0
podman_() {
    T podman --root "$PM_DIR/root" --runroot "$PM_DIR/runroot" --tmpdir "$PM_DIR/tmp" --storage-driver vfs \
        --cgroup-manager "$CGROUP_DRIVER" --events-backend file --runtime "$PM_RT" "$@"
}
# Without CAP_SYS_RESOURCE (this host's root lacks it) podman's default
# rlimits (nofile 1048576, nproc above conmon's 32768) cannot be set by the
# runtime: ask for limits below them.
PM_RUN_FLAGS=(--network none --cgroup-parent "$PM_CGROUP_PARENT" --ulimit nofile=1024:1024 --ulimit nproc=16384:16384)
pm_run() { podman_ run "${PM_RUN_FLAGS[@]}" "$@"; }
pm_state() { podman_ inspect -f "{{.State.$2}}" "$1" 2>/dev/null; }
pm_status_is() { [ "$(pm_state "$1" Status)" = "$2" ]; }

pm_leftovers() {
    local id=$1 pid=${2:-}
    [ -n "$id" ] || return 0
    local d
    for d in /sys/fs/cgroup/*"$PM_CGROUP_PARENT"/*"$id"*; do [ -d "$d" ] && echo "cgroup $d"; done
    if sd; then
        for d in "/sys/fs/cgroup$(sd_slice_cgroup "$PM_CGROUP_PARENT")"/*"$id"*; do [ -d "$d" ] && echo "cgroup $d"; done
        local st
        st=$(sd_unit_active "libpod-$id.scope")
        [ -z "$st" ] || echo "unit libpod-$id.scope $st"
    fi
    grep -F "$id" /proc/self/mountinfo | awk '{ print "mount " $5 }'
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ -e "/proc/$pid" ] && echo "process $pid"
    local p
    for p in $(our_pids); do
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$id" && echo "process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" | head -c 60))"
    done
    true
}

pm_load() {
    [ -e /var/lib/containers ] || PM_MADE_VARLIB=1 # podman's blob-info cache lands there whatever --root says
    mkdir -p "$PM_DIR"
    PM_STARTED=1
    podman_ load -i "$IMG_TAR" || why "podman load failed" || return 1
    podman_ image exists "$PM_IMG" || why "image $PM_IMG not present after podman load"
}

pm_exit_code() {
    local out rc
    out=$(pm_run --rm "$PM_IMG" sh -c 'echo hello-from-podman; exit 7')
    rc=$?
    [ $rc = 7 ] || why "podman run exited $rc, want 7 (output: $out)" || return 1
    [[ $out == *hello-from-podman* ]] || why "output '$out' lacks the container's echo" || return 1
    pm_run --rm "$PM_IMG" true || why "podman run true exited $?, want 0"
}

pm_exec() {
    pm_run -d --name pm-det "$PM_IMG" sh -c "$CD_IDLE" >/dev/null || why "podman run -d failed" || return 1
    wait_for 10 pm_status_is pm-det running || why "pm-det not running: $(pm_state pm-det Status)" || return 1
    local out rc pid want
    pid=$(pm_state pm-det Pid)
    out=$(podman_ exec pm-det sh -c 'for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done; exit 5' 2>"$W/err")
    rc=$?
    [ $rc = 5 ] || why "podman exec exited $rc, want 5 (output: $out; stderr: $(head -c 300 "$W/err"))" || return 1
    want=$(for n in pid mnt uts ipc net; do readlink "/proc/$pid/ns/$n"; done)
    [ "$out" = "$want" ] || why "exec namespaces '$(echo $out)' != container's '$(echo $want)'"
}

pm_exec_tty() {
    local out
    out=$(podman_ exec -t pm-det sh -c 'test -t 1 && echo TTY-YES' 2>&1)
    [[ $out == *TTY-YES* ]] || why "podman exec -t: no terminal in the container ($(echo $out | head -c 300))"
}

pm_ps_top() {
    podman_ ps --format '{{.Names}} {{.Status}}' | grep -q '^pm-det Up' || why "podman ps does not list pm-det as Up" || return 1
    local out
    out=$(podman_ top pm-det 2>&1) || why "podman top failed: $(echo $out | head -c 300)" || return 1
    echo "$out"
    echo "$out" | grep -q 'sleep 1000' || why "podman top lacks the sleep child"
}

pm_pause() {
    local pid
    pid=$(pm_state pm-det Pid)
    podman_ pause pm-det >/dev/null || why "podman pause failed" || return 1
    pm_status_is pm-det paused || why "status after pause: $(pm_state pm-det Status)" || return 1
    [ "$(freezer_state "$pid")" = FROZEN ] || why "freezer of pid $pid is $(freezer_state "$pid") after pause" || return 1
    podman_ unpause pm-det >/dev/null || why "podman unpause failed" || return 1
    pm_status_is pm-det running || why "status after unpause: $(pm_state pm-det Status)" || return 1
    [ "$(freezer_state "$pid")" = THAWED ] || why "freezer of pid $pid is $(freezer_state "$pid") after unpause"
}

pm_stop() {
    podman_ stop -t 10 pm-det >/dev/null || why "podman stop pm-det failed" || return 1
    [ "$(pm_state pm-det ExitCode)" = 3 ] || why "pm-det exit code $(pm_state pm-det ExitCode) after SIGTERM, want 3" || return 1
    pm_run -d --name pm-stubborn "$PM_IMG" sh -c 'trap "" TERM; while :; do sleep 0.2; done' >/dev/null ||
        why "podman run -d pm-stubborn failed" || return 1
    wait_for 10 pm_status_is pm-stubborn running || why "pm-stubborn not running" || return 1
    local t0 t1
    t0=$(date +%s)
    podman_ stop -t 2 pm-stubborn >/dev/null || why "podman stop pm-stubborn failed" || return 1
    t1=$(date +%s)
    [ "$(pm_state pm-stubborn ExitCode)" = 137 ] || why "pm-stubborn exit code $(pm_state pm-stubborn ExitCode), want 137" || return 1
    [ $((t1 - t0)) -ge 2 ] || why "podman stop -t 2 returned after $((t1 - t0)) s: SIGTERM was not ignored"
}

pm_tty() {
    local out rc
    out=$(T python3 "$HERE/pty-run.py" podman --root "$PM_DIR/root" --runroot "$PM_DIR/runroot" --tmpdir "$PM_DIR/tmp" \
        --storage-driver vfs --cgroup-manager "$CGROUP_DRIVER" --events-backend file --runtime "$PM_RT" \
        run --rm -it "${PM_RUN_FLAGS[@]}" "$PM_IMG" sh -c 'test -t 0 && test -t 1 && echo TTY-YES; read line; echo "got:$line"; exit 4')
    rc=$?
    echo "$out"
    [ $rc = 4 ] || why "podman run -it exited $rc, want 4 (output: $(echo $out | head -c 200))" || return 1
    [[ $out == *TTY-YES* ]] || why "stdin/stdout in the container are not a terminal" || return 1
    [[ $out == *got:ping* ]] || why "input typed on the pty did not reach the container"
}

pm_rm() {
    local n id left=""
    for n in pm-det pm-stubborn; do
        id=$(podman_ inspect -f '{{.Id}}' "$n" 2>/dev/null) || continue
        podman_ rm "$n" >/dev/null || why "podman rm $n failed" || return 1
        left+=$(pm_leftovers "$id")
    done
    [ -z "$(podman_ ps -aq)" ] || why "podman ps -a still lists: $(podman_ ps -a --format '{{.Names}}')" || return 1
    [ -z "$left" ] || why "left after podman rm: $(echo $left)"
}

pm_missing_entrypoint() {
    local err rc
    err=$(pm_run --rm "$PM_IMG" /no/such/binary 2>&1)
    rc=$?
    echo "$err"
    [ $rc = 127 ] || [ $rc = 126 ] || why "podman run of a missing entrypoint exited $rc, want 127 or 126" || return 1
    [[ $err == *"/no/such/binary"* ]] || why "error does not name the entrypoint: $err"
}

# With the systemd driver: podman run --memory makes the scope unit's
# MemoryMax; unit and cgroup gone after podman rm.
pm_systemd_scope() {
    local mem=$((64 << 20)) id pid unit
    pm_run -d --name pm-sd --memory "$mem" "$PM_IMG" sh -c "$CD_IDLE" >/dev/null || why "podman run -d --memory failed" || return 1
    id=$(podman_ inspect -f '{{.Id}}' pm-sd) || why "podman inspect pm-sd failed" || return 1
    unit=libpod-$id.scope
    sd_note_unit "$unit"
    wait_for 10 pm_status_is pm-sd running || why "pm-sd not running: $(pm_state pm-sd Status)" || return 1
    pid=$(pm_state pm-sd Pid)
    sd_check_scope "$unit" "$PM_CGROUP_PARENT" "$pid" "$mem" || return 1
    podman_ rm -f -t 0 pm-sd >/dev/null || why "podman rm -f pm-sd failed" || return 1
    sd_check_gone "$unit" "$PM_CGROUP_PARENT"
}

podman_cleanup() {
    [ $PM_STARTED = 1 ] || return 0
    local id
    if sd; then
        for id in $(podman_ ps -aq --no-trunc 2>/dev/null); do sd_note_unit "libpod-$id.scope"; done
    fi
    podman_ rm -af -t 0 >/dev/null 2>&1
    [ $PM_MADE_VARLIB = 0 ] || rm -rf /var/lib/containers
}

stage_podman() {
    PM_RT=$(make_wrapper podman)
    scenario pm-load pm_load
    scenario pm-exit-code pm_exit_code
    scenario pm-exec pm_exec
    scenario pm-exec-tty pm_exec_tty
    scenario pm-ps-top pm_ps_top
    scenario pm-pause-unpause pm_pause
    scenario pm-stop pm_stop
    scenario pm-tty pm_tty
    scenario pm-rm pm_rm
    scenario pm-missing-entrypoint pm_missing_entrypoint
    sd && scenario pm-systemd-scope pm_systemd_scope
    true
}
