#!/usr/bin/env bash
# Regenerates bench/hot-functions.txt: the functions a container's life runs
# in xrun (run; create, state, start, exec, kill, delete; list), in the order
# of their first call. build.rs hands the list to lld
# (--symbol-ordering-file), which lays them out together at the start of
# .text. A process maps its binary's text in 64 KiB windows around each page
# it touches (the kernel's fault-around), so start-up code spread over the
# whole 3.8 MB text makes most of it resident; packed, it is a few hundred
# KiB: lower peak RSS, fewer page faults.
#
# How: the release build, plus a linker map, runs from a small read-only ext4
# image on a loop device whose readahead is 0, freshly mounted (nothing of
# the binary cached). A page then comes into the page cache only when a
# process touches it, so fault-around maps nothing untouched, and perf's
# exceptions:page_fault_user sees every page of text the processes execute
# (each the first time any of them does). The functions on those pages, in
# first-touch order, are the list. It describes the layout it was measured
# on: run it again after a rebuild with the new list to refine the order.
#
# Needs root, perf (linux-perf), losetup, mkfs.ext4, blockdev, python3 and
# the bundle oci-bundles/true. Rerun after changing the start path or the
# toolchain: the names carry rustc's hashes, and a stale list costs only the
# packing (lld skips names it does not find), never the build.
#
#   bench/hot-functions.sh    # ~5 min: builds target/hot, measures, writes the list
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/bench/hot-functions.txt
BUNDLE=$REPO/oci-bundles/true
TRIPLE=x86_64-unknown-linux-gnu

for tool in perf losetup mkfs.ext4 blockdev python3; do
    command -v $tool >/dev/null || { echo "hot-functions.sh: needs $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "hot-functions.sh: run as root" >&2; exit 1; }
[ -x "$BUNDLE/rootfs/bin/busybox" ] || oci-bundles/build-rootfs.sh >/dev/null

W=$(mktemp -d /tmp/xrun-hot.XXXXXX)
LOOP=
cleanup() {
    mountpoint -q "$W/mnt" && umount "$W/mnt"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W"
}
trap cleanup EXIT

# The release build as cargo makes it (RUSTFLAGS do not change symbol
# names), with a map of where each function went.
RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-Map=$W/xrun.map" \
    cargo build --release --quiet --target-dir target/hot
BIN=$REPO/target/hot/$TRIPLE/release/xrun

mkdir -p "$W/mnt" "$W/root"
truncate -s 32M "$W/img"
mkfs.ext4 -q -F "$W/img"
LOOP=$(losetup -f --show "$W/img")
mount "$LOOP" "$W/mnt"
cp "$BIN" "$W/mnt/xrun"
umount "$W/mnt"
blockdev --setra 0 "$LOOP"
# Read-only: xrun needs no protected re-exec there (src/protect.rs).
mount -o ro "$LOOP" "$W/mnt"
X=$W/mnt/xrun

cat >"$W/life.sh" <<EOF
#!/bin/sh
R="--root $W/root"
$X \$R run --bundle $BUNDLE hot-run
$X \$R create --bundle $BUNDLE hot-c
$X \$R state hot-c >/dev/null
$X \$R start hot-c
$X \$R create --bundle $BUNDLE hot-e
$X \$R exec hot-e /bin/true
$X \$R kill hot-e KILL
$X \$R list >/dev/null
$X \$R delete --force hot-e
$X \$R delete hot-c
EOF
chmod +x "$W/life.sh"
perf record -q -e exceptions:page_fault_user -o "$W/perf.data" -- "$W/life.sh" >/dev/null
perf script -i "$W/perf.data" --show-mmap-events -F pid,trace >"$W/faults.txt" 2>/dev/null

python3 - "$W/faults.txt" "$W/xrun.map" "$X" "$BIN" "$W/list" <<'EOF'
import bisect, re, subprocess, sys
faults, mapfile, binpath, elf, out = sys.argv[1:6]
# The text segment's vaddr - file offset.
delta = 0
for line in subprocess.run(["readelf", "-lW", elf], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD" and "E" in f[6:-1]:
        delta = int(f[2], 16) - int(f[1], 16)
# lld's map: the input sections of .text, each followed by its symbols. A
# Rust function's section is named after it; C objects' sections (glibc)
# take the first symbol in them.
sec = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S*:\((\.text[^)]*)\)$")
sym = re.compile(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+\s+(\S+)$")
secs, pending = [], None
for line in open(mapfile):
    m = sec.match(line)
    if m:
        n = re.match(r"\.text\.(?:unlikely\.|hot\.|startup\.|exit\.|split\.)?(.+)$", m.group(3))
        name = n.group(1) if n else ""
        pending = [int(m.group(1), 16), int(m.group(2), 16), name if name.startswith(("_ZN", "_R")) else None]
        secs.append(pending)
        continue
    m = sym.match(line)
    if m and pending is not None and pending[2] is None:
        pending[2] = m.group(1)
    elif not m:
        pending = None
secs = sorted(s for s in secs if s[2] and s[1] > 0)
starts = [s[0] for s in secs]
mmap = re.compile(r"PERF_RECORD_MMAP2 (\d+)/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+) .*\]: r-xp (\S+)")
event = re.compile(r"^\s*(\d+)\s+address=0x([0-9a-f]+) ip=0x[0-9a-f]+ error_code=0x([0-9a-f]+)")
maps, order, seen, pages = {}, [], set(), set()
for line in open(faults):
    m = mmap.search(line)
    if m:
        if m.group(5) == binpath:
            maps.setdefault(int(m.group(1)), []).append(tuple(int(m.group(i), 16) for i in (2, 3, 4)))
        continue
    m = event.match(line)
    # Instruction fetches only (error_code bit 4).
    if not m or not int(m.group(3), 16) & 0x10:
        continue
    addr = int(m.group(2), 16)
    for start, length, pgoff in maps.get(int(m.group(1)), []):
        if start <= addr < start + length:
            page = (addr - start + pgoff + delta) & ~0xFFF
            pages.add(page)
            i = max(bisect.bisect_right(starts, page) - 1, 0)
            while i < len(secs) and secs[i][0] < page + 4096:
                if secs[i][0] + secs[i][1] > page and secs[i][2] not in seen:
                    seen.add(secs[i][2])
                    order.append(secs[i][2])
                i += 1
print(f"{len(pages)} pages of text touched ({len(pages) * 4} KiB), {len(order)} functions on them", file=sys.stderr)
open(out, "w").write("".join(name + "\n" for name in order))
EOF
n=$(wc -l <"$W/list")
[ "$n" -gt 100 ] || { echo "hot-functions.sh: only $n functions found; did perf's output change?" >&2; exit 1; }
mv "$W/list" "$OUT"
echo "hot-functions.sh: $n functions -> $OUT (rebuild to use them)"
