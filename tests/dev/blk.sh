#!/bin/bash
# blk.sh - data through the split block driver, as a user pushes it: fio in
# a guest over the NBD export of its vbd (blkfront in nbdkit), served by
# blkback in a driver domain (io_uring on the broker's fd) and by dom0;
# fio's crc32c verify for random and sequential I/O, 4 KiB to 1 MiB,
# depths 1 and 32, over 4 queues (io/blkif.h multi-queue), four fio jobs at
# once spread over them; discard punching holes; a read-only disk refusing
# writes.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-blk-XXXXXX)
W=$(mktemp -d /tmp/bh-blkw-XXXXXX)
trap '"$B" down >/dev/null 2>&1; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT
plan 18

mkdir -p "$W/store" "$W/dom0"
truncate -s 64M "$W/store/a.img" "$W/dom0/c.img"
head -c 4M /dev/urandom >"$W/store/ro.img"
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
bulkhead_vbd_queues = 4
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=ro, backend=drv, target=$W/store/ro.img",
         "format=raw, vdev=xvdc, access=rw, target=$W/dom0/c.img" ]
CFG

ok "up" "$B" up
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create the guest with three disks" "$B" create "$W/g.cfg"
uri() { "$B" block-list g --json | sed -n "s/.*\"vdev\": \"$1\".*\"uri\": \"\\([^\"]*\\)\".*/\\1/p"; }
ua=$(uri xvda); ub=$(uri xvdb); uc=$(uri xvdc)
is "each disk has an NBD URI in the guest" "$(echo "$ua $ub $uc" | grep -o 'nbd+unix://' | wc -l)" "3"
# 51712 is xvda, 51744 xvdc: blkfront asked for 4 queues, both backends offer 4.
is "xvda (driver domain) runs 4 queues" "$("$B" exec g -- xenstore-read device/vbd/51712/multi-queue-num-queues)" "4"
is "xvdc (dom0) runs 4 queues" "$("$B" exec g -- xenstore-read device/vbd/51744/multi-queue-num-queues)" "4"

# fio inside the guest, through the nbd engine, with crc32c verify.
fio_in_g() {
    "$B" exec g -- fio --output-format=terse --terse-version=3 --ioengine=nbd --uri="$1" \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --size=16M --name=v "${@:2}" >"$W/fio.out" 2>&1
}
for spec in "randwrite 4k 1" "randwrite 4k 32" "write 1M 1" "randwrite 64k 32" "write 128k 32"; do
    set -- $spec
    ok "fio verify on xvda (driver domain): $1 bs=$2 depth=$3" fio_in_g "$ua" --rw="$1" --bs="$2" --iodepth="$3"
done
ok "fio verify on xvda: 4 jobs at once (4 MiB each), randwrite bs=4k depth=32" fio_in_g "$ua" \
    --rw=randwrite --bs=4k --iodepth=32 --numjobs=4 --size=4M --offset_increment=4M
ok "fio verify on xvdc (dom0): randwrite bs=4k depth=32" fio_in_g "$uc" --rw=randwrite --bs=4k --iodepth=32
ok "fio verify on xvdc (dom0): write bs=1M depth=1" fio_in_g "$uc" --rw=write --bs=1M --iodepth=1

# The read-only disk reads what the image holds, and refuses writes.
ok "the read-only disk reads what its image holds" sh -c \
    '"$1" exec g -- nbdcopy "$2" - | cmp - "$3"' sh "$B" "$ub" "$W/store/ro.img"
fails "... and refuses a write" "$B" exec g -- fio --ioengine=nbd --uri="$ub" --rw=write --bs=4k --size=64k --name=w

# Discard punches holes in the image.
before=$(stat -c %b "$W/store/a.img")
ok "fio trims 8 MiB of xvda" "$B" exec g -- fio --ioengine=nbd --uri="$ua" --rw=trim --bs=1M --size=8M --name=t
after=$(stat -c %b "$W/store/a.img")
ok "... and the image holds fewer blocks ($before -> $after)" test "$after" -lt "$before"
exit $tap_failed
