#!/bin/bash
# bench_blk.sh - the split block driver against its baselines, in one run
# on the same image (make bench; root).  Three paths, same fio jobs:
#   direct   fio with io_uring, O_DIRECT, straight on the image (dom0);
#   nbdkit   fio's nbd engine against nbdkit's own file plugin on the image
#            (the same NBD front, without the split driver);
#   bulkhead fio's nbd engine in a guest, against its vbd's NBD export
#            (blkfront in nbdkit), served by blkback in a driver domain.
# Then a qcow2 copy of the image (format=qcow2: dom0's qemu-nbd, blkback over
# libnbd), against fio's nbd engine on that same qemu-nbd's socket.
# Jobs: 4 KiB random read at depth 1 (latency) and 32 (IOPS), 1 MiB
# sequential read and write (bandwidth).  BENCH_BLK_SECONDS per job (5).
set -u
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
T=${BENCH_BLK_SECONDS:-5}
SIZE=${BENCH_BLK_SIZE:-512M}
[ "$(id -u)" -eq 0 ] || { echo "bench_blk: needs root (namespaces)"; exit 1; }
for p in fio nbdkit qemu-img; do command -v $p >/dev/null || { echo "bench_blk: needs $p (apt-get install $p)"; exit 1; }; done
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-bench-XXXXXX)
W=$(mktemp -d /var/tmp/bh-benchw-XXXXXX)   # a disk-backed directory, not tmpfs
trap '"$B" down >/dev/null 2>&1; kill $nbdpid 2>/dev/null; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT
nbdpid=
mkdir -p "$W/store"
IMG=$W/store/disk.img
fio --name=fill --filename="$IMG" --size="$SIZE" --rw=write --bs=1M --ioengine=psync >/dev/null 2>&1

"$B" up >/dev/null
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
QIMG=$W/store/disk.qcow2
qemu-img convert -f raw -O qcow2 "$IMG" "$QIMG"
printf 'name = "g"\nvcpus = 2\ndisk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=%s",
  "format=qcow2, vdev=xvdb, access=rw, backend=drv, target=%s" ]\n' "$IMG" "$QIMG" >"$W/g.cfg"
"$B" create "$W/drv.cfg" >/dev/null && "$B" create "$W/g.cfg" >/dev/null || exit 1
uri() { "$B" block-list g --json | sed -n "s/.*\"vdev\": \"$1\".*\"uri\": \"\([^\"]*\)\".*/\1/p"; }
URI=$(uri xvda); URIQ=$(uri xvdb)
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
QSOCK=$BULKHEAD_STATE_DIR/nbd/$gid-51728.sock   # dom0's qemu-nbd serves more than one client
nbdkit -f -U "$W/nbdkit.sock" file "$IMG" & nbdpid=$!
for i in $(seq 50); do [ -S "$W/nbdkit.sock" ] && break; sleep 0.1; done

# One fio job; prints "iops lat_us bw_MBps" of its read or write side.
job() { # where rw bs depth
    local where=$1 rw=$2 bs=$3 qd=$4 out
    local common=(--name=b --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$SIZE" --time_based
                  --runtime="$T" --output-format=json)
    case $where in
    direct) out=$(fio "${common[@]}" --ioengine=io_uring --direct=1 --filename="$IMG") ;;
    nbdkit) out=$(fio "${common[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$W/nbdkit.sock") ;;
    bulkhead) out=$("$B" exec g -- fio "${common[@]}" --ioengine=nbd --uri="$URI") ;;
    qemunbd) out=$(fio "${common[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$QSOCK") ;;
    bulkheadq) out=$("$B" exec g -- fio "${common[@]}" --ioengine=nbd --uri="$URIQ") ;;
    esac
    local side=read; case $rw in *write) side=write ;; esac
    echo "$out" | awk -v side="$side" '
        $0 ~ "\"" side "\" : \\{" {in_side = 1}
        in_side && /"iops" :/ && iops == "" {gsub(/[ ,]/, ""); split($0, a, ":"); iops = a[2]}
        in_side && /"bw_bytes" :/ && bw == "" {gsub(/[ ,]/, ""); split($0, a, ":"); bw = a[2]}
        in_side && /"clat_ns" : \{/ {in_clat = 1}
        in_clat && /"mean" :/ && lat == "" {gsub(/[ ,]/, ""); split($0, a, ":"); lat = a[2]; in_clat = 0}
        END {printf "%.0f %.1f %.1f\n", iops, lat / 1000, bw / 1e6}'
}

printf "%-34s %12s %12s %12s %8s %8s\n" "job" "direct" "nbdkit-file" "bulkhead" "vs dir" "vs nbd"
div() { awk -v a="$1" -v b="$2" 'BEGIN {print (b > 0 ? a / b : 0)}'; }
row() { # label metric(1=iops,2=lat,3=bw) rw bs depth
    local label=$1 m=$2 d n b
    d=$(job direct "$3" "$4" "$5" | cut -d' ' -f"$m")
    n=$(job nbdkit "$3" "$4" "$5" | cut -d' ' -f"$m")
    b=$(job bulkhead "$3" "$4" "$5" | cut -d' ' -f"$m")
    if [ "$m" = 2 ]; then  # latency: lower is better, the ratio is baseline/ours
        printf "%-34s %12s %12s %12s %8.2f %8.2f\n" "$label" "$d" "$n" "$b" \
            "$(div "$d" "$b")" "$(div "$n" "$b")"
    else
        printf "%-34s %12s %12s %12s %8.2f %8.2f\n" "$label" "$d" "$n" "$b" \
            "$(div "$b" "$d")" "$(div "$b" "$n")"
    fi
}
row "4K randread QD1 latency (us)" 2 randread 4k 1
row "4K randread QD32 (IOPS)" 1 randread 4k 32
row "1M seq read (MB/s)" 3 read 1M 8
row "1M seq write (MB/s)" 3 write 1M 8
echo "(ratios: bulkhead against each baseline measured in this run; latency as baseline/bulkhead)"
echo
printf "%-34s %12s %12s %8s\n" "qcow2 job" "qemu-nbd" "bulkhead" "vs q-nbd"
rowq() { # label metric rw bs depth
    local label=$1 m=$2 q b
    q=$(job qemunbd "$3" "$4" "$5" | cut -d' ' -f"$m")
    b=$(job bulkheadq "$3" "$4" "$5" | cut -d' ' -f"$m")
    if [ "$m" = 2 ]; then
        printf "%-34s %12s %12s %8.2f\n" "$label" "$q" "$b" "$(div "$q" "$b")"
    else
        printf "%-34s %12s %12s %8.2f\n" "$label" "$q" "$b" "$(div "$b" "$q")"
    fi
}
rowq "4K randread QD1 latency (us)" 2 randread 4k 1
rowq "4K randread QD32 (IOPS)" 1 randread 4k 32
rowq "1M seq read (MB/s)" 3 read 1M 8
rowq "1M seq write (MB/s)" 3 write 1M 8
echo "(qcow2: fio in the guest through blkfront, blkback and libnbd, against fio on qemu-nbd's socket)"
