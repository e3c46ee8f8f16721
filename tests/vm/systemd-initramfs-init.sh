#!/bin/busybox sh
# /init of the initramfs that run-in-systemd-vm.sh builds (busybox-static, the
# kernel's 9p/overlay/virtio modules and this script): makes the root file
# system systemd boots from, then hands over to /sbin/init (systemd) as PID 1.
#
# The root is an overlay: the host's / exported read-only over 9p (tag
# xrun.root) below a tmpfs that takes, and discards, every write. The run's
# directory (tag xrun.run) is mounted at /run/xrun-ci; its file "mounts" lists
# more to set up, one a line: "9p TAG PATH" (a writable host directory) or
# "tmpfs PATH"; its directory "units" is copied to /etc/systemd/system.
/bin/busybox mkdir -p /bin /sbin /proc /sys /dev /lower /rw /newroot
/bin/busybox --install -s /bin

fail() {
    echo "xrun-ci initramfs: $*" >/dev/console
    # No systemd, so nothing for the host to wait for: power off (qemu exits
    # without a status and the host reports a set-up failure).
    sleep 1
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -e /dev/console ] || mknod /dev/console c 5 1

while read -r mod; do
    insmod "/modules/$mod" || fail "insmod $mod failed"
done </modules/order

p9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "ro,$p9,cache=loose" xrun.root /lower || fail "mounting the host's root (9p) failed"
mount -t tmpfs -o mode=755 tmpfs /rw || fail "tmpfs for the overlay failed"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
    fail "overlay on the root failed"
# /run (systemd keeps a tmpfs it finds there) holds the run's directory.
mkdir -p /newroot/run
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /newroot/run || fail "tmpfs on /run failed"
mkdir -p /newroot/run/xrun-ci
mount -t 9p -o "rw,$p9" xrun.run /newroot/run/xrun-ci || fail "mounting the run directory (9p) failed"
R=/newroot/run/xrun-ci

# The host's root is a Docker-style image: with /.dockerenv present, systemd
# believes it runs in a container (it then ignores the kernel command line and
# starts a console getty instead of a VM's units).
rm -f /newroot/.dockerenv /newroot/run/.containerenv

# The host's /etc/fstab describes the host's disks, not this guest's.
echo "# xrun-ci: no file systems beyond those systemd mounts itself" >/newroot/etc/fstab

if [ -f "$R/mounts" ]; then
    while read -r kind a b; do
        case $kind in
        9p)
            mkdir -p "/newroot$b" && mount -t 9p -o "rw,$p9" "$a" "/newroot$b" || fail "mounting $b (9p $a) failed"
            ;;
        tmpfs)
            mkdir -p "/newroot$a" && mount -t tmpfs -o mode=1777 tmpfs "/newroot$a" || fail "mounting tmpfs on $a failed"
            ;;
        esac
    done <"$R/mounts"
fi
if [ -d "$R/units" ]; then
    mkdir -p /newroot/etc/systemd/system
    cp -a "$R/units/." /newroot/etc/systemd/system/ || fail "copying the units failed"
fi

mount --move /dev /newroot/dev || fail "moving /dev failed"
umount /sys
umount /proc
exec switch_root /newroot /sbin/init
