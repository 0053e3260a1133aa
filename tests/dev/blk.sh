#!/bin/bash
# blk.sh - data through the split block driver, as a user pushes it: fio in
# a guest over the NBD export of its vbd (blkfront in nbdkit), served by
# blkback in a driver domain (io_uring on the broker's fd) and by dom0;
# fio's crc32c verify for random and sequential I/O, 4 KiB to 1 MiB,
# depths 1 and 32, over 4 queues (io/blkif.h multi-queue), four fio jobs at
# once spread over them; discard punching holes; a read-only disk refusing
# writes; an image grown in dom0 seen by a new NBD connection in the guest
# with no I/O; a disk with 4096-byte sectors (a losetup -b 4096 loop device).
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
lo=""
sim_undo() { [ -z "$lo" ] || losetup -d "$lo"; }
sim_begin blk
plan 25

mkdir -p "$W/store" "$W/dom0"
truncate -s 64M "$W/store/a.img" "$W/dom0/c.img"
head -c 4M /dev/urandom >"$W/store/ro.img"
# The 4 KiB-sector disk: a loop device, its node in the driver domain's storage.
xvdd=""
if [ -e /dev/loop-control ]; then
    truncate -s 32M "$W/l4k.img"
    lo=$(losetup -b 4096 --show -f "$W/l4k.img" 2>"$W/losetup.err") || lo=""
fi
if [ -n "$lo" ]; then
    mknod "$W/store/l4k" b $((0x$(stat -c %t "$lo"))) $((0x$(stat -c %T "$lo")))
    xvdd=",
         \"format=raw, vdev=xvdd, access=rw, backend=drv, target=$W/store/l4k\""
fi
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
bulkhead_vbd_queues = 4
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=ro, backend=drv, target=$W/store/ro.img",
         "format=raw, vdev=xvdc, access=rw, target=$W/dom0/c.img"$xvdd ]
CFG

ok "up" "$B" up
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create the guest with three disks" "$B" create "$W/g.cfg"
uri() { vbd_uri g "$1"; }
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

# Online resize: an image grown in dom0 is seen by the guest's next NBD
# connection, with no I/O from the guest (the driver checks by itself).
guest_size() { "$B" exec g -- nbdinfo --size "$1" 2>/dev/null; }
wait_size() { # a bound against a hang only
    for _ in $(seq 1 300); do [ "$(guest_size "$1")" = "$2" ] && return 0; sleep 0.2; done
    echo "size still $(guest_size "$1"), not $2"; return 1
}
is "xvda's size in the guest before" "$(guest_size "$ua")" "67108864"
truncate -s 96M "$W/store/a.img"
ok "xvda grown to 96 MiB in dom0: the guest's new connection sees it" wait_size "$ua" 100663296
truncate -s 80M "$W/dom0/c.img"
ok "xvdc (dom0's backend) grown to 80 MiB: seen too" wait_size "$uc" 83886080

# 4096-byte logical sectors end to end.
if [ -n "$lo" ]; then
    ud=$(uri xvdd)
    gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
    export XENSTORED_PATH="$BULKHEAD_STATE_DIR/xenstored.sock"
    be=$(xenstore-read /local/domain/$gid/device/vbd/51760/backend 2>&1)
    is "xvdd on the loop device: sector-size 4096" "$(xenstore-read $be/sector-size 2>&1)" "4096"
    is "... sectors in 512-byte units" "$(xenstore-read $be/sectors)" "65536"
    is "... NBD clients are told to align to 4096" \
        "$("$B" exec g -- nbdinfo --json "$ud" | grep -o '"block_size_minimum": [0-9]*')" '"block_size_minimum": 4096'
    ok "fio verify on xvdd (4096-byte sectors): randwrite bs=4k depth=32" fio_in_g "$ud" --rw=randwrite --bs=4k --iodepth=32
else
    for t in 1 2 3 4; do
        tap_n=$((tap_n + 1))
        echo "ok $tap_n # SKIP no loop device for a 4096-byte-sector disk: $(cat "$W/losetup.err" 2>/dev/null || echo /dev/loop-control missing)"
    done
fi
exit $tap_failed
