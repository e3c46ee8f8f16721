#!/usr/bin/env bash
# Runs COMMAND as root inside a throw-away QEMU VM where systemd is PID 1 on
# pure cgroup v2, with the D-Bus system bus up: the stage for systemd cgroup
# driver tests (transient scope units over D-Bus).
#
# usage: tests/vm/run-in-systemd-vm.sh [OPTIONS] -- COMMAND [ARGS...]
#
#   --timeout SECS       kill the VM (its qemu, by PID) after SECS; exit 124
#                        (default 1200)
#   --boot-timeout SECS  give up when systemd has not finished booting after
#                        SECS; exit 125 (default 600)
#   --memory SIZE        guest memory, qemu syntax (default 4G)
#   --cpus N             guest CPUs (default 2)
#   --kernel PATH        kernel image (default: newest Debian /boot/vmlinuz-*
#                        that is not the running kernel)
#   --rwdir PATH         host directory writable from the guest, writes reach
#                        the host (repeatable; default none)
#   --tmpfs PATH         mount a fresh tmpfs at PATH in the guest (repeatable;
#                        default: <repo>/target/x86_64-unknown-linux-gnu/tmp, cargo's CARGO_TARGET_TMPDIR)
#   --env NAME=VAL       set NAME in COMMAND's environment (repeatable); PATH
#                        and XRUN_* / RUST_* variables are passed by default
#   --verbose            show the qemu command line and the guest's console
#
# Unlike run-in-vm.sh (virtme-ng, COMMAND as the child of virtme-ng's init),
# this boots qemu directly: a small initramfs (busybox-static, the kernel's
# 9p/overlay/virtio modules, systemd-initramfs-init.sh) makes the root an
# overlay of this host's own / (read-only 9p) under a tmpfs that takes and
# discards every write, then hands over to /sbin/init. systemd boots
# xrun-ci.target: basic.target, D-Bus, and xrun-ci.service, which runs
# guest-systemd.sh: it waits for `systemctl is-system-running --wait`,
# checks cgroup2, D-Bus and `systemd-run --scope -p Delegate=yes`, then runs
# COMMAND (as root, in system.slice/xrun-ci.service, in the caller's
# directory or the repository) and the VM powers off. /tmp and
# <repo>/target/x86_64-unknown-linux-gnu/tmp are fresh tmpfs. COMMAND's stdout and stderr reach the
# caller (through virtio-serial ports); its exit status is this script's.
# Exit 124: timeout. Exit 125: the stage failed (set-up, boot, or the checks;
# the tail of the guest's console is shown). The last line, on stderr, is
# "vm-stage: <seconds> s".
#
# Why not virtme-ng's --systemd: this host's root has /.dockerenv, so the
# guest's systemd thinks it runs in a Docker container; it then reads its
# options from PID 1's argv instead of the kernel command line and starts
# console-getty instead of the serial getty virtme-ng overrides to run its
# command, which therefore never runs. Here the overlay hides /.dockerenv.
#
# TCG only (nested KVM does not work on these machines). Installs (once,
# quietly) qemu-system-x86, linux-image-amd64, busybox-static, kmod and cpio.
set -euo pipefail

START=$(date +%s.%N)
[ -e /proc/self/fd/0 ] || exec </dev/null # CI may start us with stdin closed
SELF=$(basename "$0")
HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh" # options, messages, packages, kernel, COMMAND's environment
DEB_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static kmod cpio)
# What the initramfs needs to mount the root (their dependencies come along).
MODULES=(virtio_pci virtio_console 9pnet_virtio 9p overlay)
MASKS=(systemd-timesyncd.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
    systemd-pstore.service modprobe@efi_pstore.service modprobe@dm_mod.service)
BOOT_TIMEOUT=${XRUN_VM_BOOT_TIMEOUT:-600}

usage() {
    sed -n '6,23p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    if vm_option "$@"; then shift "$SHIFT"; continue; fi
    case $1 in
    --boot-timeout) BOOT_TIMEOUT=${2:?}; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) say "unknown option: $1"; usage ;;
    esac
done
[ $# -gt 0 ] || { say "no COMMAND given"; usage; }
vm_check_options
posint "$BOOT_TIMEOUT" || die "--boot-timeout wants a positive number of seconds"

# Paths go into qemu options (comma-separated) and unit files: keep them plain.
safe_path() {
    [[ $1 =~ ^/[A-Za-z0-9._/+@:=-]*$ ]] || die "path '$1' must be absolute and use only [A-Za-z0-9._/+@:=-]"
}

# ---------------------------------------------------------------------------
# Host side: the initramfs (packages and kernel: lib.sh)

# An uncompressed cpio: /init, busybox and the modules in load order.
make_initramfs() {
    local kver=$1 out=$2 dir=$RUN/initramfs m ko name
    mkdir -p "$dir/bin" "$dir/modules"
    cp /bin/busybox "$dir/bin/busybox"
    cp "$HERE/systemd-initramfs-init.sh" "$dir/init"
    chmod 755 "$dir/init"
    for m in "${MODULES[@]}"; do
        modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }' ||
            die "modprobe cannot resolve module $m of kernel $kver"
    done | awk '!seen[$0]++' | while read -r ko; do
        name=$(basename "$ko")
        case $ko in
        *.ko) cp "$ko" "$dir/modules/$name" ;;
        *.ko.xz) name=${name%.xz}; xz -dc "$ko" >"$dir/modules/$name" ;;
        *.ko.zst) name=${name%.zst}; zstd -qdc "$ko" >"$dir/modules/$name" ;;
        *.ko.gz) name=${name%.gz}; gzip -dc "$ko" >"$dir/modules/$name" ;;
        *) die "module $ko: unknown compression" ;;
        esac
        echo "$name" >>"$dir/modules/order"
    done
    [ -s "$dir/modules/order" ] || die "no modules found for kernel $kver"
    (cd "$dir" && find . | cpio -o -H newc --quiet) >"$out" || die "cpio failed"
}

vm_prepare_host install_debs
KVER=${KERNEL##*/vmlinuz-}
[ -d "/lib/modules/$KVER" ] || die "no /lib/modules/$KVER for kernel $KERNEL"
for p in "$REPO" "$KERNEL" "${RWDIRS[@]}" "${TMPFS[@]}"; do safe_path "$p"; done
for d in "${RWDIRS[@]}"; do [ -d "$d" ] || die "--rwdir $d is not a directory"; done
# The guest's /tmp is a fresh tmpfs: a repository below it (where a CI clone
# may live) is shared writable instead, mounted on top of the new /tmp.
case $REPO/ in
/tmp/*) RWDIRS+=("$REPO") ;;
/run/* | /proc/* | /sys/* | /dev/*) die "the repository ($REPO) is hidden in the guest: move it out of /run" ;;
esac

# ---------------------------------------------------------------------------
# The run: a private directory, shared with the guest at /run/xrun-ci.

RUN=$(mktemp -d /tmp/xrun-sdvm.XXXXXX)
QEMU_PID=
CAT_PIDS=()
TAIL_PID=

stop_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317 # (called from traps)
cleanup() {
    stop_pid "$QEMU_PID"
    [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'say "interrupted: stopping the VM"; cleanup; stage_time; exit 130' INT TERM

make_initramfs "$KVER" "$RUN/initramfs.cpio"
rm -rf "$RUN/initramfs"

# Mounts the initramfs makes below the new root, in order: /tmp first, then
# what lives below it.
QEMU_SHARES=()
{
    echo "tmpfs /tmp"
    for i in "${!RWDIRS[@]}"; do
        echo "9p xrun.rw$i ${RWDIRS[$i]}"
        QEMU_SHARES+=(-fsdev "local,id=rw$i,path=${RWDIRS[$i]},security_model=none,multidevs=remap"
            -device "virtio-9p-pci,fsdev=rw$i,mount_tag=xrun.rw$i")
    done
    for d in "${TMPFS[@]}"; do echo "tmpfs $d"; done
} >"$RUN/mounts"

# The units: a target with basic.target (sysinit, sockets, timers...) and
# D-Bus, and the service that runs COMMAND and powers off when it ends.
mkdir "$RUN/units"
cat >"$RUN/units/xrun-ci.target" <<EOF
[Unit]
Description=xrun CI: run one command under systemd
Requires=basic.target xrun-ci.service
After=basic.target
AllowIsolate=yes
EOF
cat >"$RUN/units/xrun-ci.service" <<EOF
[Unit]
Description=xrun CI command (run-in-systemd-vm.sh)
Wants=dbus.service
After=basic.target dbus.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=simple
ExecStart=/bin/bash $HERE/guest-systemd.sh /run/xrun-ci
StandardInput=null
StandardOutput=journal+console
StandardError=journal+console
EOF

# Units that only cost boot time here (no network, no EFI, no binfmt users).
for u in "${MASKS[@]}"; do ln -s /dev/null "$RUN/units/$u"; done

vm_guest_env
GUEST_ARGS=("$@")
GUEST_CWD=$PWD
GUEST_REPO=$REPO
GUEST_START=$START
GUEST_TRACE=${XRUN_VM_TRACE:-}
declare -p GUEST_ARGS GUEST_ENV GUEST_CWD GUEST_REPO GUEST_START GUEST_TRACE >"$RUN/orders"

# apparmor=0: as on the build hosts (no LSM); loading Debian's profiles alone
# took half a minute of the boot.
# XRUN_VM_CGROUP=hybrid: systemd's hybrid layout (v1 controllers, its own
# cgroup2 at /sys/fs/cgroup/unified), as on this kind of build host.
if [ "${XRUN_VM_CGROUP:-unified}" = hybrid ]; then
    APPEND="console=ttyS0 panic=-1 tsc=reliable apparmor=0 systemd.unified_cgroup_hierarchy=0 xrun.cgroup=hybrid"
else
    APPEND="console=ttyS0 panic=-1 tsc=reliable apparmor=0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
fi
APPEND+=" systemd.unit=xrun-ci.target systemd.hostname=xrun-sdvm"
[ "$VERBOSE" = 1 ] || APPEND+=" quiet"
QEMU=(
    qemu-system-x86_64 -name xrun-sdvm
    -machine "q35,accel=tcg" -cpu max -smp "$CPUS" -m "$MEMORY"
    -nodefaults -no-user-config -no-reboot -display none
    -kernel "$KERNEL" -initrd "$RUN/initramfs.cpio" -append "$APPEND"
    -chardev "file,id=con,path=$RUN/console.log" -serial chardev:con
    -device virtio-serial-pci
    -chardev "file,id=out,path=$RUN/stdout" -device "virtserialport,chardev=out,name=xrun.stdout"
    -chardev "file,id=err,path=$RUN/stderr" -device "virtserialport,chardev=err,name=xrun.stderr"
    -fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"
    -device "virtio-9p-pci,fsdev=root,mount_tag=xrun.root"
    -fsdev "local,id=run,path=$RUN,security_model=none,multidevs=remap"
    -device "virtio-9p-pci,fsdev=run,mount_tag=xrun.run"
    "${QEMU_SHARES[@]}"
    -device virtio-rng-pci
)
[ "$VERBOSE" = 1 ] && say "$(printf '%q ' "${QEMU[@]}")"
say "booting $(basename "$KERNEL") with systemd in TCG (no KVM), $CPUS CPUs, $MEMORY, timeout ${TIMEOUT}s"

# Pipes, relayed by cat, keep the caller's stdout and stderr intact (qemu
# would re-open them and, on a regular file, write from offset 0).
mkfifo "$RUN/stdout" "$RUN/stderr"
cat <"$RUN/stdout" &
CAT_PIDS=($!)
cat <"$RUN/stderr" >&2 &
CAT_PIDS+=($!)
: >"$RUN/console.log"
if [ "$VERBOSE" = 1 ]; then
    tail -n +1 -f "$RUN/console.log" >&2 &
    TAIL_PID=$!
fi
"${QEMU[@]}" </dev/null >"$RUN/qemu.log" 2>&1 &
QEMU_PID=$!

why=
while kill -0 "$QEMU_PID" 2>/dev/null; do
    t=$(elapsed)
    if awk -v t="$t" -v m="$TIMEOUT" 'BEGIN { exit !(t >= m) }'; then
        why=timeout
        break
    fi
    if [ ! -e "$RUN/ready" ] && awk -v t="$t" -v m="$BOOT_TIMEOUT" 'BEGIN { exit !(t >= m) }'; then
        why=boot
        break
    fi
    sleep 1
done
if [ -n "$why" ]; then
    stop_pid "$QEMU_PID"
fi
qrc=0
wait "$QEMU_PID" 2>/dev/null || qrc=$?
QEMU_PID=
# All of the guest's output is out once qemu closed the pipes; a cat still
# waiting for a writer (qemu died before opening its pipe) is stopped.
alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
for _ in $(seq 25); do
    alive "${CAT_PIDS[@]}" || break
    sleep 0.2
done
for pid in "${CAT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait "${CAT_PIDS[@]}" 2>/dev/null || true
if [ -n "$TAIL_PID" ]; then
    sleep 0.5
    kill "$TAIL_PID" 2>/dev/null || true
    wait "$TAIL_PID" 2>/dev/null || true
    TAIL_PID=
fi

console_tail() {
    [ "$VERBOSE" = 1 ] && return 0
    say "last lines of the guest's console:"
    tail -n 40 "$RUN/console.log" | sed 's/^/  | /' >&2
    if [ -s "$RUN/qemu.log" ]; then
        say "qemu said:"
        sed 's/^/  | /' "$RUN/qemu.log" >&2
    fi
}

case $why in
timeout)
    say "TIMEOUT: COMMAND did not finish within ${TIMEOUT}s; killed the VM"
    stage_time
    exit 124
    ;;
boot)
    say "systemd did not finish booting (or the checks did not pass) within ${BOOT_TIMEOUT}s; killed the VM"
    console_tail
    stage_time
    exit 125
    ;;
esac
rc=$(cat "$RUN/status" 2>/dev/null || true)
if ! [[ $rc =~ ^[0-9]+$ ]]; then
    say "the VM ended (qemu status $qrc) without COMMAND's status: the stage failed"
    console_tail
    stage_time
    exit 125
fi
case $rc in
0) ;;
125)
    say "the VM stage failed (set-up inside the guest, or COMMAND exited 125)"
    [ -e "$RUN/ready" ] || console_tail
    ;;
*) say "COMMAND exited with status $rc" ;;
esac
stage_time
exit "$rc"
