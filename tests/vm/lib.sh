# shellcheck shell=bash disable=SC2034 # (variables the sourcing scripts use)
# Shared by run-in-vm.sh and run-in-systemd-vm.sh (sourced, not run): the
# options both take, messages and the stage timer, Debian packages, the
# kernel, and COMMAND's environment. The sourcing script sets SELF, HERE, REPO
# and START first, and DEB_PKGS before calling vm_prepare_host.

CACHE=${XRUN_VM_CACHE:-/var/cache/xrun-vm}
TIMEOUT=${XRUN_VM_TIMEOUT:-1200}
MEMORY=4G
CPUS=2
KERNEL=${XRUN_VM_KERNEL:-}
VERBOSE=0
RWDIRS=()
TMPFS=()
TMPFS_SET=0
ENVS=()

say() { echo "$SELF: $*" >&2; }
die() {
    say "$*"
    stage_time
    exit 125
}
stage_time() { echo "vm-stage: $(elapsed) s" >&2; }
elapsed() { echo "$(date +%s.%N) $START" | awk '{ printf "%.1f", $1 - $2 }'; }
posint() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }

# vm_option ARGS...: takes one option both scripts know from the front of
# ARGS and sets SHIFT to the number of words it used; returns 1 when $1 is
# not one of them (the caller handles its own options, `--` and errors).
vm_option() {
    SHIFT=2
    case $1 in
    --timeout) TIMEOUT=${2:?} ;;
    --memory) MEMORY=${2:?} ;;
    --cpus) CPUS=${2:?} ;;
    --kernel) KERNEL=${2:?} ;;
    --rwdir) RWDIRS+=("${2:?}") ;;
    --tmpfs) TMPFS+=("${2:?}"); TMPFS_SET=1 ;;
    --env) ENVS+=("${2:?}") ;;
    --verbose | -v) VERBOSE=1; SHIFT=1 ;;
    *) return 1 ;;
    esac
}

# vm_check_options: after parsing; also defaults --tmpfs to cargo's
# CARGO_TARGET_TMPDIR, <repo>/target/x86_64-unknown-linux-gnu/tmp.
vm_check_options() {
    posint "$TIMEOUT" || die "--timeout wants a positive number of seconds"
    posint "$CPUS" || die "--cpus wants a positive number"
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and boots the host's root filesystem)"
    # cargo's CARGO_TARGET_TMPDIR: below the target triple, which
    # .cargo/config.toml names.
    [ "$TMPFS_SET" = 1 ] || TMPFS=("$REPO/target/x86_64-unknown-linux-gnu/tmp")
}

# install_debs: installs the missing ones of DEB_PKGS, quietly (log in $CACHE).
install_debs() {
    local missing=() p
    for p in "${DEB_PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    say "installing ${missing[*]} (once)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$CACHE/apt.log" 2>&1; then
        apt-get update -qq >>"$CACHE/apt.log" 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$CACHE/apt.log" 2>&1 ||
            die "apt-get install ${missing[*]} failed; see $CACHE/apt.log"
    fi
}

# find_kernel: the newest Debian kernel in /boot that is not the running one.
find_kernel() {
    local running k v best=
    running=$(uname -r)
    for k in /boot/vmlinuz-*; do
        [ -f "$k" ] || continue
        v=${k#/boot/vmlinuz-}
        [ "$v" != "$running" ] && [ -d "/lib/modules/$v/kernel" ] || continue
        dpkg-query -S "$k" >/dev/null 2>&1 || continue # a Debian package's kernel
        best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n1)
    done
    [ -n "$best" ] || die "no Debian kernel in /boot (is linux-image-amd64 installed?)"
    echo "/boot/vmlinuz-$best"
}

# vm_prepare_host INSTALL-FUNCTION: runs INSTALL-FUNCTION (install_debs, or
# the script's own that calls it) under a lock shared by every stage on this machine, then sets
# KERNEL (if not given) and checks it.
vm_prepare_host() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.install.lock"
    flock 9
    "$1"
    flock -u 9
    exec 9>&-
    [ -n "$KERNEL" ] || KERNEL=$(find_kernel)
    [ -r "$KERNEL" ] || die "kernel image $KERNEL not readable"
}

# vm_guest_env: sets GUEST_ENV, COMMAND's environment: PATH with the sbin
# dirs, this environment's XRUN_* (not XRUN_VM_*) and RUST_* variables, --env.
vm_guest_env() {
    local name
    GUEST_ENV=("PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin")
    while IFS= read -r name; do
        GUEST_ENV+=("$name=${!name}")
    done < <(compgen -e | grep -E '^(XRUN|RUST)_' | grep -vE '^XRUN_VM_' || true)
    GUEST_ENV+=("${ENVS[@]}")
}
