# docker stage of tests/e2e/run.sh (sourced; uses its helpers and $W).
# Debian's dockerd, private: own data root, exec root, pidfile, socket and
# config file; no bridge, no iptables; it drives the private containerd (own
# containerd namespace) and knows the runtime under test as `xrun`. Its
# cgroup driver is run.sh's: cgroupfs below /xrun-e2e-docker, or systemd
# with the slice xrune2e-docker.slice (units docker-<id>.scope).

DK_DIR="$W/docker"
DK_SOCK="$DK_DIR/docker.sock"
DK_IMG=xrun-e2e:latest
DK_STARTED=0
DK_MADE_KEY=0
DK_CGROUP_PARENT=/xrun-e2e-docker
sd && DK_CGROUP_PARENT=$SD_PREFIX-docker.slice
docker_() { T /usr/bin/docker -H "unix://$DK_SOCK" "$@"; }
dk_run() { docker_ run --runtime xrun --network none "$@"; }
dk_state() { docker_ inspect -f "{{.State.$2}}" "$1" 2>/dev/null; }
dk_status_is() { [ "$(dk_state "$1" Status)" = "$2" ]; }

start_dockerd() {
    start_containerd || return 1
    mkdir -p "$DK_DIR"
    [ -e /etc/docker/key.json ] || DK_MADE_KEY=1 # dockerd 20.10 writes its trust key there whatever the flags
    echo '{}' >"$DK_DIR/daemon.json" # keep /etc/docker/daemon.json out of it
    /usr/sbin/dockerd --config-file "$DK_DIR/daemon.json" \
        --data-root "$DK_DIR/data" --exec-root "$DK_DIR/exec" --pidfile "$DK_DIR/dockerd.pid" \
        -H "unix://$DK_SOCK" --containerd "$CD_SOCK" \
        --containerd-namespace "$NS-moby" --containerd-plugins-namespace "$NS-moby-plugins" \
        --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
        --userland-proxy=false --exec-opt "native.cgroupdriver=$CGROUP_DRIVER" --cgroup-parent "$DK_CGROUP_PARENT" \
        --storage-driver overlay2 --add-runtime "xrun=$DK_RT" >"$DK_DIR/log" 2>&1 &
    PIDS_TO_STOP+=("$!")
    if ! wait_for 30 /usr/bin/docker -H "unix://$DK_SOCK" version; then
        echo "dockerd did not come up; its log:" >&2
        tail -20 "$DK_DIR/log" >&2
        return 1
    fi
    DK_STARTED=1
}

dk_leftovers() {
    local id=$1 pid=${2:-}
    [ -n "$id" ] || return 0
    find "$W" -maxdepth 6 -path "*/$id" -path "*runtime*" 2>/dev/null | sed 's/^/runtime state /'
    local d
    for d in /sys/fs/cgroup/*"$DK_CGROUP_PARENT/$id"; do [ -d "$d" ] && echo "cgroup $d"; done
    if sd; then
        d=/sys/fs/cgroup$(sd_slice_cgroup "$DK_CGROUP_PARENT")/docker-$id.scope
        [ -d "$d" ] && echo "cgroup $d"
        local st
        st=$(sd_unit_active "docker-$id.scope")
        [ -z "$st" ] || echo "unit docker-$id.scope $st"
    fi
    grep -F "$id" /proc/self/mountinfo | awk '{ print "mount " $5 }'
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ -e "/proc/$pid" ] && echo "process $pid"
    true
}

dk_load() {
    start_dockerd || why "dockerd did not start: $(tail -1 "$DK_DIR/log")" || return 1
    docker_ load -i "$IMG_TAR" || why "docker load failed" || return 1
    docker_ image inspect "$DK_IMG" >/dev/null || why "image $DK_IMG not present after docker load"
}

dk_exit_code() {
    local out rc
    out=$(dk_run --rm "$DK_IMG" sh -c 'echo hello-from-docker; exit 7')
    rc=$?
    [ $rc = 7 ] || why "docker run exited $rc, want 7 (output: $out)" || return 1
    [[ $out == *hello-from-docker* ]] || why "output '$out' lacks the container's echo" || return 1
    dk_run --rm "$DK_IMG" true || why "docker run true exited $?, want 0"
}

dk_detached_exec() {
    docker_ run -d --name dk-det --runtime xrun --network none "$DK_IMG" sh -c "$CD_IDLE" ||
        why "docker run -d failed" || return 1
    wait_for 10 dk_status_is dk-det running || why "dk-det not running: $(dk_state dk-det Status)" || return 1
    local out rc pid want
    pid=$(dk_state dk-det Pid)
    out=$(docker_ exec dk-det sh -c 'for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done; exit 5' 2>"$W/err")
    rc=$?
    [ $rc = 5 ] || why "docker exec exited $rc, want 5 (output: $out; stderr: $(head -c 300 "$W/err"))" || return 1
    want=$(for n in pid mnt uts ipc net; do readlink "/proc/$pid/ns/$n"; done)
    [ "$out" = "$want" ] || why "exec namespaces '$(echo $out)' != container's '$(echo $want)'"
}

dk_exec_tty() {
    local out
    out=$(docker_ exec -t dk-det sh -c 'test -t 1 && echo TTY-YES' 2>&1)
    [[ $out == *TTY-YES* ]] || why "docker exec -t: no terminal in the container ($(echo $out | head -c 300))"
}

dk_ps_top() {
    local out pid
    docker_ ps --format '{{.Names}} {{.Status}}' | grep -q '^dk-det Up' || why "docker ps does not list dk-det as Up" || return 1
    out=$(docker_ top dk-det 2>&1) || why "docker top failed: $(echo $out | head -c 300)" || return 1
    echo "$out"
    pid=$(dk_state dk-det Pid)
    echo "$out" | awk 'NR > 1 { print $2 }' | grep -qx "$pid" || why "docker top lacks pid 1's host pid $pid" || return 1
    echo "$out" | grep -q 'sleep 1000' || why "docker top lacks the sleep child"
}

dk_pause() {
    local pid
    pid=$(dk_state dk-det Pid)
    docker_ pause dk-det || why "docker pause failed" || return 1
    dk_status_is dk-det paused || why "status after pause: $(dk_state dk-det Status)" || return 1
    [ "$(freezer_state "$pid")" = FROZEN ] || why "freezer of pid $pid is $(freezer_state "$pid") after pause" || return 1
    docker_ exec dk-det true 2>/dev/null && why "docker exec into a paused container succeeded" && return 1
    docker_ unpause dk-det || why "docker unpause failed" || return 1
    dk_status_is dk-det running || why "status after unpause: $(dk_state dk-det Status)" || return 1
    [ "$(freezer_state "$pid")" = THAWED ] || why "freezer of pid $pid is $(freezer_state "$pid") after unpause"
}

# docker stop: SIGTERM reaches pid 1 (it exits 3); one ignoring TERM is
# SIGKILLed after -t and reports 137.
dk_stop() {
    docker_ stop -t 10 dk-det || why "docker stop dk-det failed" || return 1
    [ "$(dk_state dk-det ExitCode)" = 3 ] || why "dk-det exit code $(dk_state dk-det ExitCode) after SIGTERM, want 3" || return 1
    docker_ run -d --name dk-stubborn --runtime xrun --network none "$DK_IMG" \
        sh -c 'trap "" TERM; while :; do sleep 0.2; done' || why "docker run -d dk-stubborn failed" || return 1
    wait_for 10 dk_status_is dk-stubborn running || why "dk-stubborn not running" || return 1
    local t0 t1
    t0=$(date +%s)
    docker_ stop -t 2 dk-stubborn || why "docker stop dk-stubborn failed" || return 1
    t1=$(date +%s)
    [ "$(dk_state dk-stubborn ExitCode)" = 137 ] || why "dk-stubborn exit code $(dk_state dk-stubborn ExitCode), want 137" || return 1
    [ $((t1 - t0)) -ge 2 ] || why "docker stop -t 2 returned after $((t1 - t0)) s: SIGTERM was not ignored"
}

dk_rm() {
    local n id left=""
    for n in dk-det dk-stubborn; do
        id=$(docker_ inspect -f '{{.Id}}' "$n" 2>/dev/null) || continue
        docker_ rm "$n" >/dev/null || why "docker rm $n failed" || return 1
        left+=$(dk_leftovers "$id")
    done
    [ -z "$(docker_ ps -aq)" ] || why "docker ps -a still lists: $(docker_ ps -a --format '{{.Names}}')" || return 1
    [ -z "$left" ] || why "left after docker rm: $(echo $left)"
}

# The by-hand path: export a container's filesystem, `RUNTIME spec`, run it.
dk_export_by_hand() {
    local b="$DK_DIR/bundle"
    mkdir -p "$b/rootfs"
    docker_ create --name dk-export "$DK_IMG" true >/dev/null || why "docker create failed" || return 1
    docker_ export dk-export | tar -x -C "$b/rootfs" || why "docker export | tar failed" || return 1
    docker_ rm dk-export >/dev/null
    (cd "$b" && T "$RUNTIME" spec) || why "$RUNTIME spec failed" || return 1
    python3 - "$b/config.json" <<'PY' || why "editing config.json failed" || return 1
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo by-hand:$(hostname); exit 9"]
json.dump(c, open(p, "w"), indent=2)
PY
    local out rc sdflag=()
    # systemd: the default unit of an empty cgroupsPath (in system.slice)
    sd && sdflag=(--systemd-cgroup)
    out=$(T "$RUNTIME" "${sdflag[@]}" --root "$DK_DIR/byhand-root" run -b "$b" e2e-by-hand </dev/null)
    rc=$?
    [ $rc = 9 ] || why "$RUNTIME run exited $rc, want 9 (output: $out)" || return 1
    [[ $out == by-hand:* ]] || why "output '$out' lacks the container's echo" || return 1
    [ -z "$(ls -A "$DK_DIR/byhand-root" 2>/dev/null)" ] || why "state left in $DK_DIR/byhand-root: $(ls "$DK_DIR/byhand-root")"
}

# With the systemd driver: docker run --memory makes the scope unit's
# MemoryMax, docker update changes it; unit and cgroup gone after docker rm.
dk_systemd_scope() {
    local mem=$((64 << 20)) id pid unit
    docker_ run -d --name dk-sd --memory "$mem" --runtime xrun --network none "$DK_IMG" sh -c "$CD_IDLE" >/dev/null ||
        why "docker run -d --memory failed" || return 1
    id=$(docker_ inspect -f '{{.Id}}' dk-sd) || why "docker inspect dk-sd failed" || return 1
    unit=docker-$id.scope
    sd_note_unit "$unit"
    wait_for 10 dk_status_is dk-sd running || why "dk-sd not running: $(dk_state dk-sd Status)" || return 1
    pid=$(dk_state dk-sd Pid)
    sd_check_scope "$unit" "$DK_CGROUP_PARENT" "$pid" "$mem" || return 1
    # docker update -> runtime update: the unit's property and the file follow
    mem=$((96 << 20))
    docker_ update --memory "$mem" --memory-swap $((2 * mem)) dk-sd >/dev/null || why "docker update --memory failed" || return 1
    sd_check_memory "$unit" "$DK_CGROUP_PARENT" "$mem" || return 1
    docker_ rm -f dk-sd >/dev/null || why "docker rm -f dk-sd failed" || return 1
    sd_check_gone "$unit" "$DK_CGROUP_PARENT"
}

docker_cleanup() {
    [ $DK_STARTED = 1 ] || return 0
    local ids id
    ids=$(/usr/bin/docker -H "unix://$DK_SOCK" ps -aq --no-trunc 2>/dev/null)
    if sd; then for id in $ids; do sd_note_unit "docker-$id.scope"; done; fi
    [ -z "$ids" ] || timeout 60 /usr/bin/docker -H "unix://$DK_SOCK" rm -f $ids >/dev/null 2>&1
    T "$RUNTIME" --root "$DK_DIR/byhand-root" delete --force e2e-by-hand >/dev/null 2>&1
}
# after dockerd has stopped
docker_cleanup_host() { [ $DK_MADE_KEY = 0 ] || rm -f /etc/docker/key.json; }

stage_docker() {
    DK_RT=$(make_wrapper docker)
    scenario dk-load dk_load || return 0
    [ $DK_STARTED = 1 ] || return 0
    scenario dk-exit-code dk_exit_code
    scenario dk-exec dk_detached_exec
    scenario dk-exec-tty dk_exec_tty
    scenario dk-ps-top dk_ps_top
    scenario dk-pause-unpause dk_pause
    scenario dk-stop dk_stop
    scenario dk-rm dk_rm
    scenario dk-export-spec-run dk_export_by_hand
    sd && scenario dk-systemd-scope dk_systemd_scope
    true
}
