# containerd stage of tests/e2e/run.sh (sourced; uses its helpers and $W).
# A private containerd (no CRI) drives the runtime through the
# io.containerd.runc.v2 shim: ctr run --runc-binary WRAPPER --runc-root DIR.
# With the systemd driver, ctr also passes --runc-systemd-cgroup (the shim's
# runtime option SystemdCgroup = true) and --cgroup SLICE:PREFIX:ID.

CD_IMG=docker.io/library/xrun-e2e:latest
CD_RT_ROOT="$W/cd-runtime-root"     # the shim appends /<namespace>
ctr_() { T ctr --address "$CD_SOCK" -n "$NS" "$@"; }
CD_SLICE=$SD_PREFIX-ctr.slice
# cd_cgroup_flags ID: sets CD_CG_FLAGS, ctr run's cgroup flags for container ID.
cd_cgroup_flags() {
    CD_CG_FLAGS=()
    sd && CD_CG_FLAGS=(--runc-systemd-cgroup --cgroup "$CD_SLICE:$SD_PREFIX:$1")
    true
}
# ctr_run OPTIONS... IMAGE ID ARGS...
ctr_run() {
    local a prev="" id=""
    for a in "$@"; do
        [ "$prev" = "$CD_IMG" ] && { id=$a; break; }
        prev=$a
    done
    cd_cgroup_flags "$id"
    ctr_ run --runc-binary "$CD_RT" --runc-root "$CD_RT_ROOT" "${CD_CG_FLAGS[@]}" "$@"
}
cd_unit() { echo "$SD_PREFIX-$1.scope"; }
# task_field ID COLUMN: PID (2) or STATUS (3) of a task from `ctr task ls`.
task_field() { ctr_ task ls 2>/dev/null | awk -v id="$1" -v c="$2" '$1 == id { print $c }'; }
task_status_is() { [ "$(task_field "$1" 3)" = "$2" ]; }
# A pid-1 shell that exits 3 on SIGTERM and has a child to list.
CD_IDLE='trap "kill \$! 2>/dev/null; exit 3" TERM; sleep 1000 & wait'

# leftovers ID [PID]: prints what of container ID remains: runtime state,
# cgroups, mounts, the process, the shim. Empty output = nothing left.
cd_leftovers() {
    local id=$1 pid=${2:-}
    [ -e "$CD_RT_ROOT/$NS/$id" ] && echo "runtime state $CD_RT_ROOT/$NS/$id"
    local d
    for d in /sys/fs/cgroup/*/"$NS/$id" /sys/fs/cgroup/unified/"$NS/$id"; do
        [ -d "$d" ] && echo "cgroup $d"
    done
    if sd; then
        d=/sys/fs/cgroup$(sd_slice_cgroup "$CD_SLICE")/$(cd_unit "$id")
        [ -d "$d" ] && echo "cgroup $d"
        local st
        st=$(sd_unit_active "$(cd_unit "$id")")
        [ -z "$st" ] || echo "unit $(cd_unit "$id") $st"
    fi
    grep -F "/$NS/$id/" /proc/self/mountinfo | awk '{ print "mount " $5 }'
    [ -n "$pid" ] && [ -e "/proc/$pid" ] && echo "process $pid"
    local p
    for p in $(our_pids); do
        tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "-id $id " && echo "shim $p"
    done
    ctr_ c ls -q 2>/dev/null | grep -qx "$id" && echo "container record $id"
    true
}

cd_import() {
    start_containerd || why "containerd did not start: $(tail -1 "$W/containerd/log")" || return 1
    ctr_ images import "$IMG_TAR" || why "ctr images import failed" || return 1
    ctr_ images ls -q | grep -qx "$CD_IMG" || why "image $CD_IMG not listed after import"
}

cd_exit_code() {
    local out rc
    out=$(ctr_run --rm "$CD_IMG" cd-exit sh -c 'echo hello-from-container; exit 7')
    rc=$?
    [ $rc = 7 ] || why "ctr run exited $rc, want 7 (output: $out)" || return 1
    [[ $out == *hello-from-container* ]] || why "output '$out' lacks the container's echo" || return 1
    out=$(ctr_run --rm "$CD_IMG" cd-exit0 true)
    rc=$?
    [ $rc = 0 ] || why "ctr run true exited $rc, want 0"
}

cd_detached() {
    ctr_run -d "$CD_IMG" cd-det sh -c "$CD_IDLE" || why "ctr run -d failed" || return 1
    wait_for 10 task_status_is cd-det RUNNING || why "task not RUNNING: $(ctr_ task ls)" || return 1
    local pid
    pid=$(task_field cd-det 2)
    [ -n "$pid" ] && [ -e "/proc/$pid" ] || why "task pid '$pid' is not a live host process" || return 1
    # pid 1 of the container is the shell we asked for, in its own pid namespace
    [ "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || why "task shares the host pid namespace"
}

cd_exec() {
    local pid out rc
    pid=$(task_field cd-det 2)
    [ -n "$pid" ] || why "no detached task to exec into" || return 1
    out=$(ctr_ task exec --exec-id e1 cd-det sh -c 'for n in pid mnt uts ipc; do readlink /proc/self/ns/$n; done; exit 5' 2>"$W/err")
    rc=$?
    [ $rc = 5 ] || why "ctr task exec exited $rc, want 5 (output: $out; stderr: $(head -c 300 "$W/err"))" || return 1
    local want
    want=$(for n in pid mnt uts ipc; do readlink "/proc/$pid/ns/$n"; done)
    [ "$(echo "$out" | tr -d '\r')" = "$want" ] || why "exec namespaces '$(echo $out)' != task's '$(echo $want)'" || return 1
    # a detached exec: the runtime writes its pid file and returns; SIGTERM ends it
    local sd="$W/containerd/state/io.containerd.runtime.v2.task/$NS/cd-det"
    ctr_ task exec -d --exec-id e2 cd-det sleep 1000 || why "ctr task exec -d failed" || return 1
    local epid
    epid=$(cat "$sd/e2.pid" 2>/dev/null)
    [ -n "$epid" ] && [ -e "/proc/$epid" ] || why "detached exec: no live pid in $sd/e2.pid" || return 1
    ctr_ task kill --exec-id e2 -s SIGTERM cd-det || why "ctr task kill --exec-id e2 failed" || return 1
    wait_for 10 sh -c "! kill -0 $epid" || why "detached exec $epid survived SIGTERM" || return 1
    # foreground execs ended by a signal report 128+N (they are not pid 1, so the default action applies)
    cd_exec_signal e3 SIGTERM 143 || return 1
    cd_exec_signal e4 SIGKILL 137
}

# cd_exec_signal EXEC_ID SIGNAL WANT: a foreground `ctr task exec` of sleep,
# signalled through ctr once its pid file exists, must exit WANT.
cd_exec_signal() {
    local sd="$W/containerd/state/io.containerd.runtime.v2.task/$NS/cd-det"
    (
        ctr_ task exec --exec-id "$1" cd-det sleep 1000
        echo $? >"$W/cd-$1.rc"
    ) &
    local bg=$!
    wait_for 10 test -s "$sd/$1.pid" || why "exec $1 never wrote $sd/$1.pid" || { kill $bg 2>/dev/null; return 1; }
    ctr_ task kill --exec-id "$1" -s "$2" cd-det || why "ctr task kill --exec-id $1 -s $2 failed" || return 1
    wait $bg
    [ "$(cat "$W/cd-$1.rc" 2>/dev/null)" = "$3" ] || why "exec killed by $2: ctr exited $(cat "$W/cd-$1.rc" 2>/dev/null), want $3"
}

cd_ps() {
    local pid out
    pid=$(task_field cd-det 2)
    out=$(ctr_ task ps cd-det 2>&1) || why "ctr task ps failed: $(echo $out | head -c 300)" || return 1
    echo "$out"
    echo "$out" | awk 'NR > 1 { print $1 }' | grep -qx "$pid" || why "ctr task ps lacks pid 1's host pid $pid" || return 1
    local n
    n=$(echo "$out" | awk 'NR > 1' | wc -l)
    [ "$n" -ge 2 ] || why "ctr task ps lists $n processes, want sh and sleep" || return 1
    # every listed pid is in the task's pid namespace
    local p
    for p in $(echo "$out" | awk 'NR > 1 { print $1 }'); do
        [ "$(readlink "/proc/$p/ns/pid")" = "$(readlink "/proc/$pid/ns/pid")" ] || why "pid $p listed but not in the container" || return 1
    done
}

cd_pause_resume() {
    local pid
    pid=$(task_field cd-det 2)
    ctr_ task pause cd-det || why "ctr task pause failed" || return 1
    task_status_is cd-det PAUSED || why "status after pause: $(task_field cd-det 3), want PAUSED" || return 1
    [ "$(freezer_state "$pid")" = FROZEN ] || why "freezer of pid $pid is $(freezer_state "$pid") after pause" || return 1
    ctr_ task resume cd-det || why "ctr task resume failed" || return 1
    task_status_is cd-det RUNNING || why "status after resume: $(task_field cd-det 3), want RUNNING" || return 1
    [ "$(freezer_state "$pid")" = THAWED ] || why "freezer of pid $pid is $(freezer_state "$pid") after resume"
}

cd_metrics() {
    local out
    out=$(ctr_ task metrics cd-det) || why "ctr task metrics failed: $out" || return 1
    echo "$out"
    echo "$out" | grep -q 'pids.current *[1-9]' || why "metrics lack a non-zero pids.current" || return 1
    echo "$out" | grep -q 'memory.usage_in_bytes *[1-9]' || echo "$out" | grep -q 'memory.usage *[1-9]' ||
        why "metrics lack memory usage"
}

cd_kill_term() {
    local pid
    pid=$(task_field cd-det 2)
    ctr_ task kill -s SIGTERM cd-det || why "ctr task kill SIGTERM failed" || return 1
    wait_for 10 task_status_is cd-det STOPPED || why "task not STOPPED after SIGTERM: $(task_field cd-det 3)" || return 1
    local err
    err=$(ctr_ task rm cd-det 2>&1)
    # pid 1 traps TERM and exits 3: the signal reached it
    [[ $err == *"exit code 3"* ]] || why "task rm after SIGTERM said '$err', want exit code 3" || return 1
    ctr_ c rm cd-det || why "ctr c rm failed" || return 1
    local left
    left=$(cd_leftovers cd-det "$pid")
    [ -z "$left" ] || why "left after delete: $(echo $left)"
}

cd_kill_kill() {
    (
        ctr_run --rm "$CD_IMG" cd-kill sleep 1000
        echo $? >"$W/cd-kill.rc"
    ) &
    local bg=$! pid
    wait_for 15 task_status_is cd-kill RUNNING || why "task cd-kill never RUNNING" || { kill $bg; return 1; }
    pid=$(task_field cd-kill 2)
    ctr_ task kill -s SIGKILL cd-kill || why "ctr task kill SIGKILL failed" || return 1
    wait $bg
    [ "$(cat "$W/cd-kill.rc" 2>/dev/null)" = 137 ] || why "ctr run after SIGKILL exited $(cat "$W/cd-kill.rc" 2>/dev/null), want 137" || return 1
    local left
    left=$(cd_leftovers cd-kill "$pid")
    [ -z "$left" ] || why "left after --rm: $(echo $left)"
}

cd_tty() {
    local out
    cd_cgroup_flags cd-tty
    out=$(T python3 "$HERE/pty-run.py" ctr --address "$CD_SOCK" -n "$NS" run --rm -t --runc-binary "$CD_RT" \
        --runc-root "$CD_RT_ROOT" "${CD_CG_FLAGS[@]}" "$CD_IMG" cd-tty sh -c 'test -t 0 && test -t 1 && echo TTY-YES; read line; echo "got:$line"; exit 4')
    local rc=$?
    echo "$out"
    [ $rc = 4 ] || why "ctr run -t exited $rc, want 4 (output: $(echo $out | head -c 200))" || return 1
    [[ $out == *TTY-YES* ]] || why "stdin/stdout in the container are not a terminal" || return 1
    [[ $out == *got:ping* ]] || why "input typed on the pty did not reach the container"
}

cd_exec_tty() {
    local out rc
    out=$(T python3 "$HERE/pty-run.py" ctr --address "$CD_SOCK" -n "$NS" task exec -t --exec-id et cd-det \
        sh -c 'test -t 0 && test -t 1 && echo TTY-YES; read line; echo "got:$line"; exit 4')
    rc=$?
    echo "$out"
    [ $rc = 4 ] || why "ctr task exec -t exited $rc, want 4 (output: $(echo $out | head -c 200))" || return 1
    [[ $out == *TTY-YES* ]] || why "stdin/stdout of the exec are not a terminal" || return 1
    [[ $out == *got:ping* ]] || why "input typed on the pty did not reach the exec"
}

cd_missing_entrypoint() {
    local err rc
    err=$(ctr_run --rm "$CD_IMG" cd-noent /no/such/binary 2>&1)
    rc=$?
    echo "$err"
    [ $rc != 0 ] || why "ctr run of a missing entrypoint exited 0" || return 1
    [[ $err == *"/no/such/binary"* ]] || why "error does not name the entrypoint: $err" || return 1
    echo "$err" | grep -qiE 'no such file|not found' || why "error does not say why: $err" || return 1
    # no 'exit status 1' alone: the runtime's own message must have come through the log
    local left
    left=$(cd_leftovers cd-noent)
    [ -z "$left" ] || why "left after failed create: $(echo $left)"
}

# With the systemd driver: the scope unit of a container with a memory limit,
# then the unit and its cgroup gone once the container is deleted.
cd_systemd_scope() {
    local mem=$((64 << 20)) pid unit
    unit=$(cd_unit cd-sd)
    sd_note_unit "$unit"
    ctr_run -d --memory-limit "$mem" "$CD_IMG" cd-sd sh -c "$CD_IDLE" || why "ctr run -d --memory-limit failed" || return 1
    wait_for 10 task_status_is cd-sd RUNNING || why "task cd-sd not RUNNING: $(ctr_ task ls)" || return 1
    pid=$(task_field cd-sd 2)
    sd_check_scope "$unit" "$CD_SLICE" "$pid" "$mem" || return 1
    ctr_ task kill -s SIGKILL cd-sd || why "ctr task kill cd-sd failed" || return 1
    wait_for 10 task_status_is cd-sd STOPPED || why "task cd-sd not STOPPED after SIGKILL" || return 1
    ctr_ task rm cd-sd >/dev/null || why "ctr task rm cd-sd failed" || return 1
    ctr_ c rm cd-sd || why "ctr c rm cd-sd failed" || return 1
    sd_check_gone "$unit" "$CD_SLICE"
}

containerd_cleanup() {
    [ $CD_STARTED = 1 ] || return 0
    local id
    if sd; then
        for id in $(ctr_ c ls -q 2>/dev/null); do sd_note_unit "$(cd_unit "$id")"; done
    fi
    for id in $(ctr_ task ls -q 2>/dev/null); do
        ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1
        ctr_ task rm -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr_ c ls -q 2>/dev/null); do ctr_ c rm "$id" >/dev/null 2>&1; done
}

stage_containerd() {
    CD_RT=$(make_wrapper containerd)
    scenario cd-import cd_import || return 0
    [ $CD_STARTED = 1 ] || return 0
    scenario cd-exit-code cd_exit_code
    scenario cd-detached cd_detached
    scenario cd-exec cd_exec
    scenario cd-exec-tty cd_exec_tty
    scenario cd-ps cd_ps
    scenario cd-pause-resume cd_pause_resume
    scenario cd-metrics cd_metrics
    scenario cd-kill-term-delete cd_kill_term
    scenario cd-kill-sigkill cd_kill_kill
    scenario cd-tty cd_tty
    scenario cd-missing-entrypoint cd_missing_entrypoint
    sd && scenario cd-systemd-scope cd_systemd_scope
    true
}
