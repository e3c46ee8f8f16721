#!/bin/sh
# build-rootfs.sh - build a minimal busybox rootfs for the example OCI bundles.
#
# Usage:
#   oci-bundles/build-rootfs.sh          # build rootfs/ for every bundle in oci-bundles/
#   oci-bundles/build-rootfs.sh DEST     # build a rootfs at DEST
#
# The rootfs holds a statically linked busybox (from Debian's busybox-static,
# installed with apt-get when /bin/busybox is missing), symlinks for the applets
# the examples and benchmark use, a minimal /etc/passwd and /etc/group, and
# empty /proc, /sys, /dev and /tmp mount points. Running it again is harmless.
set -eu

BUNDLES_DIR=$(cd "$(dirname "$0")" && pwd)
BUSYBOX=/bin/busybox

APPLETS="sh ash ls cat echo printf sleep true false id hostname mount umount
ps env uname grep sed head tail wc cut tr sort mkdir rmdir rm cp mv ln touch
pwd test [ kill whoami date stat readlink realpath find xargs tee seq nproc"

# ensure_busybox: install Debian's busybox-static if /bin/busybox is missing.
ensure_busybox() {
    if [ -x "$BUSYBOX" ]; then
        return
    fi
    echo "build-rootfs: $BUSYBOX missing, installing busybox-static" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static
}

# check_static: refuse a dynamically linked busybox (it would not run in the rootfs).
check_static() {
    if command -v ldd >/dev/null 2>&1 && ldd "$BUSYBOX" >/dev/null 2>&1; then
        echo "build-rootfs: $BUSYBOX is dynamically linked; install busybox-static" >&2
        exit 1
    fi
}

# build_rootfs DEST: populate DEST with busybox, applet links, /etc files and mount points.
build_rootfs() {
    dest=$1
    mkdir -p "$dest/bin" "$dest/etc" "$dest/proc" "$dest/sys" "$dest/dev" "$dest/root"
    mkdir -p "$dest/tmp"
    chmod 1777 "$dest/tmp"

    # Copy via a temp file + rename so a busybox in use by a container is never
    # overwritten in place (that would fail with ETXTBSY).
    if ! cmp -s "$BUSYBOX" "$dest/bin/busybox"; then
        cp "$BUSYBOX" "$dest/bin/.busybox.tmp"
        chmod 0755 "$dest/bin/.busybox.tmp"
        mv -f "$dest/bin/.busybox.tmp" "$dest/bin/busybox"
    fi

    for applet in $APPLETS; do
        ln -sfn busybox "$dest/bin/$applet"
    done

    cat > "$dest/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
    cat > "$dest/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
GROUP
    echo "build-rootfs: $dest ready"
}

main() {
    ensure_busybox
    check_static
    if [ $# -ge 1 ]; then
        build_rootfs "$1"
        return
    fi
    found=0
    for config in "$BUNDLES_DIR"/*/config.json; do
        [ -f "$config" ] || continue
        build_rootfs "$(dirname "$config")/rootfs"
        found=1
    done
    if [ "$found" -eq 0 ]; then
        echo "build-rootfs: no bundles (*/config.json) under $BUNDLES_DIR" >&2
        exit 1
    fi
}

main "$@"
