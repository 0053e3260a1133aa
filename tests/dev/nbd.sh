#!/bin/bash
# nbd.sh - qcow2 disks as a user gives them (format=qcow2): dom0 runs a
# qemu-nbd per disk, blkback serves it over NBD (through the broker's
# socket in a driver domain, the socket's path in dom0); fio's crc32c
# verify in the guest, flushes and discard reaching the image, a read-only
# image refusing writes; after destroy no qemu-nbd is left, qemu-img check
# passes and the image holds what the guest wrote; a broken image or a
# missing qemu-nbd refused in one line with nothing left behind.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
command -v qemu-nbd >/dev/null && command -v qemu-img >/dev/null ||
    skip_all "needs qemu-nbd and qemu-img (apt-get install qemu-utils)"
sim_begin nbd
plan 44

mkdir -p "$W/store" "$W/dom0" "$W/other"
qemu-img create -q -f qcow2 "$W/store/a.qcow2" 64M
qemu-img create -q -f qcow2 "$W/dom0/c.qcow2" 64M
qemu-img create -q -f qcow2 "$W/store/doomed.qcow2" 16M
head -c 4M /dev/urandom >"$W/ro.raw"
qemu-img convert -f raw -O qcow2 "$W/ro.raw" "$W/store/ro.qcow2"
head -c 8M /dev/urandom >"$W/pattern"
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
disk = [ "format=qcow2, vdev=xvda, access=rw, backend=drv, target=$W/store/a.qcow2",
         "format=qcow2, vdev=xvdb, access=ro, backend=drv, target=$W/store/ro.qcow2",
         "format=qcow2, vdev=xvdc, access=rw, target=$W/dom0/c.qcow2",
         "format=qcow2, vdev=xvdd, access=rw, backend=drv, target=$W/store/doomed.qcow2" ]
CFG
servers() { pgrep -f -- "--socket=$BULKHEAD_STATE_DIR/nbd/" | wc -l; }

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create the guest with four qcow2 disks" "$B" create "$W/g.cfg"
is "a qemu-nbd serves each disk" "$(servers)" "4"
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
did=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "drv".*/\1/p')
be=/local/domain/$did/backend/qdisk/$gid/51712
is "the backend kind is qdisk and its key names the server's socket" \
   "$(xenstore-read "$be/bulkhead-nbd")" "$BULKHEAD_STATE_DIR/nbd/$gid-51712.sock"
is "flush, barrier and discard follow the server (qemu-nbd offers them)" \
   "$(xenstore-read "$be/feature-flush-cache" "$be/feature-barrier" "$be/feature-discard" | tr '\n' ' ')" "1 1 1 "
is "the read-only disk has no discard" \
   "$(xenstore-read "/local/domain/$did/backend/qdisk/$gid/51728/feature-discard")" "0"
is "the guest sees the image's virtual size" \
   "$(xenstore-read "$be/sectors")" "$((64 * 1024 * 2))"

uri() { vbd_uri g "$1"; }
ua=$(uri xvda); ub=$(uri xvdb); uc=$(uri xvdc)
fio_in_g() {
    "$B" exec g -- fio --output-format=terse --terse-version=3 --ioengine=nbd --uri="$1" \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --size=16M --name=v "${@:2}" >"$W/fio.out" 2>&1
}
for spec in "randwrite 4k 1" "randwrite 4k 32" "write 1M 1" "randwrite 64k 32"; do
    set -- $spec
    ok "fio verify on xvda (driver domain): $1 bs=$2 depth=$3" fio_in_g "$ua" --rw="$1" --bs="$2" --iodepth="$3"
done
ok "fio verify on xvdc (dom0): randwrite bs=4k depth=32" fio_in_g "$uc" --rw=randwrite --bs=4k --iodepth=32
ok "fio verify with a flush every 4 writes (each one to qemu-nbd and back)" \
    fio_in_g "$ua" --rw=randwrite --bs=16k --iodepth=8 --fsync=4
is "the guest's export offers flush" "$("$B" exec g -- nbdinfo --can flush "$ua" && echo yes)" "yes"

# What the guest writes is in the image after it is gone.
ok "the guest writes 8 MiB of random data to xvdc" sh -c \
    'cat "$3" | "$1" exec g -- nbdcopy - "$2"' sh "$B" "$uc" "$W/pattern"
ok "... and reads it back" sh -c \
    '"$1" exec g -- nbdcopy "$2" - | head -c 8M | cmp - "$3"' sh "$B" "$uc" "$W/pattern"

ok "the read-only disk reads what its image holds" sh -c \
    '"$1" exec g -- nbdcopy "$2" - | cmp - "$3"' sh "$B" "$ub" "$W/ro.raw"
fails "... and refuses a write" "$B" exec g -- fio --ioengine=nbd --uri="$ub" --rw=write --bs=4k --size=64k --name=w

before=$(stat -c %b "$W/store/a.qcow2")
ok "fio trims 8 MiB of xvda" "$B" exec g -- fio --ioengine=nbd --uri="$ua" --rw=trim --bs=1M --size=8M --name=t
after=$(stat -c %b "$W/store/a.qcow2")
ok "... and qemu-nbd gives the clusters back ($before -> $after blocks)" test "$after" -lt "$before"

# A worker that dies: the next one connects again (through the broker) and serves on.
wpid=$("$B" block-list g --json | sed -n 's/.*"vdev": "xvda".*"worker_pid": \([0-9-]*\).*/\1/p')
kill -KILL "$wpid"
ok "xvda's worker killed: fio verify through the next one" \
    fio_in_g "$ua" --rw=randwrite --bs=4k --iodepth=32
is "... which is another process" "$("$B" block-list g --json | grep -c "\"vdev\": \"xvda\".*\"worker_pid\": $wpid,")" "0"

# The server that dies: xvdd's requests fail, its error node says why, the rest is served.
ud=$(uri xvdd)
ok "xvdd serves before its server dies" fio_in_g "$ud" --rw=randwrite --bs=4k --iodepth=8 --size=4M
kill -KILL "$(pgrep -f -- "--socket=$BULKHEAD_STATE_DIR/nbd/$gid-51760.sock")"
fails "xvdd's qemu-nbd killed: a read in the guest fails" \
    "$B" exec g -- nbdcopy "$ud" /dev/null
is "... the backend's error node names the lost server" \
   "$(xenstore-read "/local/domain/$did/backend/qdisk/$gid/51760/error" | grep -c 'the NBD server is gone')" "1"
ok "... the driver domain serves on (xvdb reads its image)" sh -c \
    '"$1" exec g -- nbdcopy "$2" - | cmp - "$3"' sh "$B" "$ub" "$W/ro.raw"

ok "destroy the guest" "$B" destroy g
is "no qemu-nbd is left" "$(servers)" "0"
is "... nor its socket, pid file or log" "$(ls "$BULKHEAD_STATE_DIR/nbd" | wc -l)" "0"
ok "qemu-img check passes on the driver domain's image" qemu-img check -q "$W/store/a.qcow2"
ok "... and on dom0's" qemu-img check -q "$W/dom0/c.qcow2"
ok "... which holds what the guest wrote" sh -c \
    'qemu-img convert -f qcow2 -O raw "$1" "$2/c.raw" && head -c 8M "$2/c.raw" | cmp - "$3"' \
    sh "$W/dom0/c.qcow2" "$W" "$W/pattern"
ok "the read-only image is unchanged" sh -c \
    'qemu-img convert -f qcow2 -O raw "$1" "$2/ro2.raw" && cmp "$2/ro2.raw" "$2/ro.raw"' sh "$W/store/ro.qcow2" "$W"

# Refusals: one line, naming the fix; no domain, server or file left.
head -c 1M /dev/urandom >"$W/store/bad.qcow2"
sed -e 's/^name = "g"/name = "bad"/' -e "s|$W/store/a.qcow2|$W/store/bad.qcow2|" "$W/g.cfg" >"$W/bad.cfg"
out=$("$B" create "$W/bad.cfg" 2>&1)
is "a broken image: one line naming qemu-img check" \
   "$(echo "$out" | grep -c 'qemu-nbd cannot serve .*bad.qcow2 as qcow2: .*check the image (qemu-img check)')/$(echo "$out" | wc -l)" "1/1"
is "... and nothing is left" "$("$B" list | grep -c '^bad ')/$(servers)/$(ls "$BULKHEAD_STATE_DIR/nbd" | wc -l)" "0/0/0"
out=$(PATH=/nonexistent "$B" create "$W/g.cfg" 2>&1)
is "no qemu-nbd installed: one line naming qemu-utils" \
   "$(echo "$out" | grep -c 'needs qemu-nbd, which is not installed: install qemu-utils')/$(echo "$out" | wc -l)" "1/1"
is "... and nothing is left" "$("$B" list | grep -c '^g ')/$(servers)/$(ls "$BULKHEAD_STATE_DIR/nbd" | wc -l)" "0/0/0"
qemu-img create -q -f qcow2 "$W/other/x.qcow2" 16M
sed -e 's/^name = "g"/name = "out"/' -e "s|$W/store/a.qcow2|$W/other/x.qcow2|" "$W/g.cfg" >"$W/out.cfg"
out=$("$B" create "$W/out.cfg" 2>&1)
is "an image outside the driver domain's storage is refused, as a raw one" \
   "$(echo "$out" | grep -c 'x.qcow2 is outside drv.s storage')/$(servers)" "1/0"
# The other formats qemu-nbd serves for us: vhd (qemu's vpc) and qed.
qemu-img create -q -f vpc "$W/store/v.vhd" 32M
qemu-img create -q -f qed "$W/store/e.qed" 32M
printf 'name = "f"\ndisk = [ "format=vhd, vdev=xvda, backend=drv, target=%s", "format=qed, vdev=xvdb, backend=drv, target=%s" ]\n' \
    "$W/store/v.vhd" "$W/store/e.qed" >"$W/f.cfg"
ok "create a guest with a vhd and a qed disk" "$B" create "$W/f.cfg"
furi() { vbd_uri f "$1"; }
ok "fio verify on the vhd disk" "$B" exec f -- fio --ioengine=nbd --uri="$(furi xvda)" --rw=randwrite \
    --bs=4k --iodepth=8 --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 --name=v
ok "fio verify on the qed disk" "$B" exec f -- fio --ioengine=nbd --uri="$(furi xvdb)" --rw=randwrite \
    --bs=4k --iodepth=8 --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 --name=v
ok "destroy it" "$B" destroy f
is "... no qemu-nbd left, and qemu-img check passes on the qed image" \
   "$(servers)/$(qemu-img check -q "$W/store/e.qed" && echo clean)" "0/clean"
exit $tap_failed
