#!/usr/bin/env bash
# Runs every xrun test on this machine: formatting, lints, unit tests, the
# integration suite (which starts real containers, so it needs root), the
# end-to-end stage (containerd, Docker, podman), and in QEMU VMs the cgroup v2
# stage and the systemd stage (systemd cgroup driver).
# Installs what it needs from Debian, crates.io and PyPI (the stages' scripts
# install their own: engines, qemu, a kernel, virtme-ng); safe to run
# repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run-all.sh: the integration tests start containers and need root" >&2
    exit 1
fi

need_pkgs=()
command -v gcc >/dev/null || need_pkgs+=(gcc)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
command -v newuidmap >/dev/null || need_pkgs+=(uidmap) # rootless tests: several-range id maps
command -v dbus-daemon >/dev/null || need_pkgs+=(dbus-daemon) # D-Bus client unit tests: a private bus
if [ ${#need_pkgs[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The lints need rustup's rustfmt and clippy components; a toolchain
# without them still runs every test, and says what it skipped.
if cargo fmt --version >/dev/null 2>&1; then
    echo "== cargo fmt --check"
    cargo fmt --all -- --check
else
    echo "== cargo fmt not installed: formatting check skipped"
fi
if cargo clippy --version >/dev/null 2>&1; then
    echo "== cargo clippy -D warnings"
    cargo clippy --all-targets -- -D warnings
else
    echo "== cargo clippy not installed: lint skipped"
fi
echo "== unit tests"
cargo test --bins
echo "== integration tests (this host's cgroup layout)"
cargo test --test integration -- --test-threads=2

# xrun as the runtime of containerd, Docker and podman (private daemons,
# an image built offline). XRUN_SKIP_E2E=1 skips the stage.
if [ "${XRUN_SKIP_E2E:-0}" = 1 ]; then
    echo "== end-to-end stage skipped (XRUN_SKIP_E2E=1)"
else
    echo "== end-to-end stage: containerd, Docker, podman"
    cargo build --quiet
    tests/e2e/run.sh --runtime "$PWD/target/x86_64-unknown-linux-gnu/debug/xrun"
fi

# Pure cgroup v2 lives in a VM (this host may be hybrid or v1): the cgroup,
# events and lifecycle tests run again there. XRUN_SKIP_VM=1 skips the stage.
if [ "${XRUN_SKIP_VM:-0}" = 1 ]; then
    echo "== cgroup v2 VM stage skipped (XRUN_SKIP_VM=1)"
else
    echo "== cgroup v2 VM stage"
    tests/vm/integration.sh cgroups:: events:: lifecycle:: exec:: hardening_fds:: rootfs_hardening:: interrupted:: check:: memory_policy:: pidfd_socket:: exec_cgroup:: namespaces::joined time_ns::time_offsets_with_a_joined rootless::
fi

# The systemd cgroup driver needs systemd as PID 1: a second VM (systemd on
# pure cgroup v2) runs the systemd:: integration tests and the e2e stage with
# the engines' systemd drivers. XRUN_SKIP_SYSTEMD_VM=1 skips the stage.
if [ "${XRUN_SKIP_SYSTEMD_VM:-0}" = 1 ]; then
    echo "== systemd VM stage skipped (XRUN_SKIP_SYSTEMD_VM=1)"
else
    echo "== systemd VM stage: systemd cgroup driver (tests, containerd, Docker, podman)"
    tests/vm/systemd.sh systemd::
    echo "== systemd VM stage on systemd's hybrid cgroup layout (v1 controllers, cgroup2 beside them)"
    XRUN_VM_CGROUP=hybrid tests/vm/systemd.sh --no-e2e systemd::hybrid
fi
