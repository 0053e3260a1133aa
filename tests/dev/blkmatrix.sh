#!/bin/bash
# blkmatrix.sh - the block path's data-integrity matrix: fio with crc32c
# verify over the nbd engine in a guest, through blkfront (nbdkit) and
# blkback, for both placements of the backend: in a driver domain
# (backend=drv, io_uring on the broker's fd) and in dom0 (no backend=,
# the stock-dom0 placement).  The matrix, per placement, in one fio run
# of twelve jobs (each on its own 8 MiB of the disk):
#     sequential and random  x  4 KiB, 64 KiB and 1 MiB  x  depth 1 and 32
# first written and read back (do_verify), then - a second fio run -
# read again and verified (verify_only: the same pattern in the same
# order, reads alone).  Small on purpose: the whole script moves about
# 400 MiB.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
sim_begin blkm
plan 8

JOB_MB=8
mkdir -p "$W/store" "$W/dom0"
truncate -s $((12 * JOB_MB))M "$W/store/a.img" "$W/dom0/c.img"
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
# Twelve fio jobs and two nbdkits (4 queues, 32 threads each; sanitized ones
# in a sanitizer build) need more than the default 128 MiB.
memory = 512
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdc, access=rw, target=$W/dom0/c.img" ]
CFG

ok "up" "$B" up
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create the guest with a disk in each placement" "$B" create "$W/g.cfg"
uri() { vbd_uri g "$1"; }
ua=$(uri xvda); uc=$(uri xvdc)
is "both disks have an NBD URI in the guest" "$(echo "$ua $uc" | grep -o 'nbd+unix://' | wc -l)" "2"

# The twelve jobs, as fio command-line sections; $1: extra options for every job.
jobs() {
    local i=0 rw bs depth
    for rw in write randwrite; do
        for bs in 4k 64k 1M; do
            for depth in 1 32; do
                echo "--name=$rw-$bs-d$depth --rw=$rw --bs=$bs --iodepth=$depth"
                echo "--offset=$((i * JOB_MB))M --size=${JOB_MB}M"
                i=$((i + 1))
            done
        done
    done
}
# fio in the guest over $1; each of the twelve jobs must report no error
# (terse field 5) and have read its whole region back (field 6, KiB).
matrix() {
    local out
    out=$("$B" exec g -- fio --ioengine=nbd --uri="$1" --verify=crc32c --verify_fatal=1 \
        --output-format=terse --terse-version=3 "${@:2}" $(jobs) 2>&1) || { echo "$out"; return 1; }
    echo "$out" | awk -F';' -v kib=$((JOB_MB * 1024)) \
        'NF > 5 { n++; if ($5 != 0 || $6 < kib) bad++ } END { exit !(n == 12 && !bad) }' ||
        { echo "$out"; return 1; }
}
for place in "driver domain:$ua" "dom0:$uc"; do
    ok "fio matrix on the ${place%%:*} disk: written and read back, verified" \
        matrix "${place#*:}" --do_verify=1
    ok "... and read again alone, verified" matrix "${place#*:}" --verify_only=1
done
exit $tap_failed
