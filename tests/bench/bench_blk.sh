#!/bin/bash
# bench_blk.sh - the split block driver against its baselines, in one run
# on images of one size in one directory (make bench; root).  Same fio jobs
# on every path:
#   direct    fio with io_uring, O_DIRECT, straight on the image (dom0);
#   nbdkit    fio's nbd engine against nbdkit's own file plugin on the image
#             (the same NBD front, without the split driver);
#   nbdfwd    nbdkit's own nbd plugin forwarding to that file plugin over a
#             unix socket: the same NBD front with its I/O completed in
#             another process, as ours is - nbdkit calls a plugin on one
#             thread per request, which such a plugin must park and have
#             woken for each (no nbdkit has an asynchronous plugin API);
#   drv       fio's nbd engine in a guest against its vbd's NBD export
#             (blkfront in nbdkit), served by blkback in a driver domain:
#             4 queues and persistent grants (the defaults);
#   drv-1q    the same with one queue (bulkhead_vbd_queues = 1);
#   drv-nopg  the same without persistent grants (bulkhead_vbd_persistent = 0);
#   dom0      the same served by blkback in dom0 (stock-dom0 placement).
# Then a qcow2 copy of the image (format=qcow2: dom0's qemu-nbd, blkback over
# libnbd), against fio's nbd engine on that same qemu-nbd's socket.
# Jobs: 4 KiB random read at depth 1 (latency) and 32 (IOPS), 1 MiB
# sequential read and write (bandwidth).  BENCH_BLK_SECONDS per job (5),
# BENCH_BLK_SIZE per image (512M).  Files go through dom0's page cache both
# in nbdkit's file plugin and in blkback (as QEMU's qdisk without
# direct-io-safe); "direct" alone bypasses it.
# The measurements are benchlib.sh's, which bulkhead bench uses too.
set -u
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
# shellcheck source=../../toolstack/benchlib.sh
. "$(dirname "$0")/../../toolstack/benchlib.sh"
T=${BENCH_BLK_SECONDS:-5}
SIZE=${BENCH_BLK_SIZE:-512M}
[ "$(id -u)" -eq 0 ] || { echo "bench_blk: needs root (namespaces)"; exit 1; }
for p in fio nbdkit qemu-img; do command -v $p >/dev/null || { echo "bench_blk: needs $p (apt-get install $p)"; exit 1; }; done
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-bench-XXXXXX)
W=$(mktemp -d /var/tmp/bh-benchw-XXXXXX)   # a disk-backed directory, not tmpfs
trap '"$B" down >/dev/null 2>&1; kill $nbdpid $fwdpid 2>/dev/null; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT
nbdpid= fwdpid=
mkdir -p "$W/store"
for n in disk disk1 disknp disk0; do
    fio --name=fill --filename="$W/store/$n.img" --size="$SIZE" --rw=write --bs=1M \
        --ioengine=psync >/dev/null 2>&1
done
IMG=$W/store/disk.img
QIMG=$W/store/disk.qcow2
qemu-img convert -f raw -O qcow2 "$IMG" "$QIMG"

"$B" up >/dev/null
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
guest() { # name image backend [extra config line]
    printf 'name = "%s"\nvcpus = 2\n%s\ndisk = [ "format=raw, vdev=xvda, access=rw, %s target=%s" ]\n' \
        "$1" "${4:-}" "$3" "$2"
}
printf 'name = "g"\nvcpus = 2\ndisk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=%s",
  "format=qcow2, vdev=xvdb, access=rw, backend=drv, target=%s" ]\n' "$IMG" "$QIMG" >"$W/g.cfg"
guest g1 "$W/store/disk1.img" "backend=drv," "bulkhead_vbd_queues = 1" >"$W/g1.cfg"
guest gnp "$W/store/disknp.img" "backend=drv," "bulkhead_vbd_persistent = 0" >"$W/gnp.cfg"
guest g0 "$W/store/disk0.img" "" >"$W/g0.cfg"
for c in drv g g1 gnp g0; do
    "$B" create "$W/$c.cfg" >/dev/null || { echo "bench_blk: cannot create $c"; exit 1; }
done
uri() { # guest vdev
    local u
    u=$(bl_vbd_uri "$1" "$2")
    [ -n "$u" ] || echo "bench_blk: $1's $2 has no NBD URI after 30 s" >&2
    echo "$u"
}
U_g=$(uri g xvda) U_q=$(uri g xvdb) U_g1=$(uri g1 xvda) U_gnp=$(uri gnp xvda) U_g0=$(uri g0 xvda)
[ -n "$U_g" ] && [ -n "$U_q" ] && [ -n "$U_g1" ] && [ -n "$U_gnp" ] && [ -n "$U_g0" ] || exit 1
nq() { "$B" exec "$1" -- xenstore-read device/vbd/51712/multi-queue-num-queues 2>/dev/null || echo 1; }
pg() { "$B" exec "$1" -- xenstore-read device/vbd/51712/feature-persistent 2>/dev/null || echo 0; }
echo "negotiated: drv $(nq g) queue(s) persistent=$(pg g); drv-1q $(nq g1) queue(s);" \
    "drv-nopg persistent=$(pg gnp); dom0 $(nq g0) queue(s)"
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
QSOCK=$BULKHEAD_STATE_DIR/nbd/$gid-51728.sock   # dom0's qemu-nbd serves more than one client
nbdkit -f -U "$W/nbdkit.sock" file "$IMG" & nbdpid=$!
for i in $(seq 50); do [ -S "$W/nbdkit.sock" ] && break; sleep 0.1; done
nbdkit -f -U "$W/fwd.sock" nbd socket="$W/nbdkit.sock" & fwdpid=$!
for i in $(seq 50); do [ -S "$W/fwd.sock" ] && break; sleep 0.1; done

# One fio job (bl_fio, as bulkhead bench runs it); prints "iops lat_us bw_MBps".
job() { # where rw bs depth
    local args=("$2" "$3" "$4" "$T" "$SIZE")
    case $1 in
    direct) bl_fio "" "${args[@]}" --ioengine=io_uring --direct=1 --filename="$IMG" ;;
    nbdkit) bl_fio "" "${args[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$W/nbdkit.sock" ;;
    nbdfwd) bl_fio "" "${args[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$W/fwd.sock" ;;
    drv) bl_fio "$B exec g --" "${args[@]}" --ioengine=nbd --uri="$U_g" ;;
    drv-1q) bl_fio "$B exec g1 --" "${args[@]}" --ioengine=nbd --uri="$U_g1" ;;
    drv-nopg) bl_fio "$B exec gnp --" "${args[@]}" --ioengine=nbd --uri="$U_gnp" ;;
    dom0) bl_fio "$B exec g0 --" "${args[@]}" --ioengine=nbd --uri="$U_g0" ;;
    qemunbd) bl_fio "" "${args[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$QSOCK" ;;
    drv-qcow2) bl_fio "$B exec g --" "${args[@]}" --ioengine=nbd --uri="$U_q" ;;
    esac
}

# A ratio where higher is better (bl_ratio): metric 2 is latency.
ratio() { # metric ours base
    local m=x
    [ "$1" = 2 ] && m=lat
    bl_ratio "$m" "$2" "$3"
}

PATHS="direct nbdkit nbdfwd drv drv-1q drv-nopg dom0"
printf "%-30s" "job"; for p in $PATHS; do printf " %10s" "$p"; done
printf " %8s %8s %8s %8s\n" "drv/dir" "drv/nbd" "drv/fwd" "drv/dom0"
row() { # label metric(1=iops,2=lat,3=bw) rw bs depth
    local label=$1 m=$2 p v
    declare -A r
    for p in $PATHS; do r[$p]=$(job "$p" "$3" "$4" "$5" | cut -d' ' -f"$m"); done
    printf "%-30s" "$label"; for p in $PATHS; do printf " %10s" "${r[$p]}"; done
    printf " %8s %8s %8s %8s\n" "$(ratio "$m" "${r[drv]}" "${r[direct]}")" \
        "$(ratio "$m" "${r[drv]}" "${r[nbdkit]}")" "$(ratio "$m" "${r[drv]}" "${r[nbdfwd]}")" \
        "$(ratio "$m" "${r[drv]}" "${r[dom0]}")"
}
row "4K randread QD1 lat (us)" 2 randread 4k 1
row "4K randread QD32 (IOPS)" 1 randread 4k 32
row "1M seq read (MB/s)" 3 read 1M 8
row "1M seq write (MB/s)" 3 write 1M 8
echo "(ratios: drv against each baseline measured in this run, higher is better; latency as"
echo " baseline/drv.  drv-1q and drv-nopg show what 4 queues and persistent grants buy.)"

# What the requests cost in the driver domain's workers over all the jobs
# above: the last stats lines of each device and queue (bulkhead-drvdom(8)).
echo
echo "blkback's counts (the drv domain's log; vbd DOMID/DEVID per guest disk):"
grep -rh "stats:" "$BULKHEAD_STATE_DIR" 2>/dev/null |
    awk '{k = $3 " " ($5 == "queue" ? $6 : $5); last[k] = $0} END {for (k in last) print last[k]}' |
    sed 's/^[^:]*: //' | sort

echo
printf "%-30s %10s %10s %8s\n" "qcow2 job" "qemu-nbd" "drv-qcow2" "vs q-nbd"
rowq() { # label metric rw bs depth
    local label=$1 m=$2 q b
    q=$(job qemunbd "$3" "$4" "$5" | cut -d' ' -f"$m")
    b=$(job drv-qcow2 "$3" "$4" "$5" | cut -d' ' -f"$m")
    printf "%-30s %10s %10s %8s\n" "$label" "$q" "$b" "$(ratio "$m" "$b" "$q")"
}
rowq "4K randread QD1 lat (us)" 2 randread 4k 1
rowq "4K randread QD32 (IOPS)" 1 randread 4k 32
rowq "1M seq read (MB/s)" 3 read 1M 8
rowq "1M seq write (MB/s)" 3 write 1M 8
echo "(qcow2: fio in the guest through blkfront, blkback and libnbd, against fio on qemu-nbd's socket)"
