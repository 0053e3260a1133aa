#!/bin/bash
# bench_blk.sh - the split block driver against its baselines, in one run
# on the same image (make bench; root).  Three paths, same fio jobs:
#   direct   fio with io_uring, O_DIRECT, straight on the image (dom0);
#   nbdkit   fio's nbd engine against nbdkit's own file plugin on the image
#            (the same NBD front, without the split driver);
#   bulkhead fio's nbd engine in a guest, against its vbd's NBD export
#            (blkfront in nbdkit), served by blkback in a driver domain.
# Jobs: 4 KiB random read at depth 1 (latency) and 32 (IOPS), 1 MiB
# sequential read and write (bandwidth).  BENCH_BLK_SECONDS per job (5).
# Then the queues: 4 KiB random read at depth 32 (one fio job, and four at
# once) through a vbd of 1 queue (guest g1, bulkhead_vbd_queues = 1) and
# one of 4 (guest g, the default), on images of the same size.
set -u
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
T=${BENCH_BLK_SECONDS:-5}
SIZE=${BENCH_BLK_SIZE:-512M}
[ "$(id -u)" -eq 0 ] || { echo "bench_blk: needs root (namespaces)"; exit 1; }
for p in fio nbdkit; do command -v $p >/dev/null || { echo "bench_blk: needs $p (apt-get install $p)"; exit 1; }; done
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-bench-XXXXXX)
W=$(mktemp -d /var/tmp/bh-benchw-XXXXXX)   # a disk-backed directory, not tmpfs
trap '"$B" down >/dev/null 2>&1; kill $nbdpid 2>/dev/null; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT
nbdpid=
mkdir -p "$W/store"
IMG=$W/store/disk.img
IMG1=$W/store/disk1.img
fio --name=fill --filename="$IMG" --size="$SIZE" --rw=write --bs=1M --ioengine=psync >/dev/null 2>&1
fio --name=fill --filename="$IMG1" --size="$SIZE" --rw=write --bs=1M --ioengine=psync >/dev/null 2>&1

"$B" up >/dev/null
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
printf 'name = "g"\nvcpus = 2\ndisk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=%s" ]\n' "$IMG" >"$W/g.cfg"
printf 'name = "g1"\nvcpus = 2\nbulkhead_vbd_queues = 1\ndisk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=%s" ]\n' "$IMG1" >"$W/g1.cfg"
"$B" create "$W/drv.cfg" >/dev/null && "$B" create "$W/g.cfg" >/dev/null &&
    "$B" create "$W/g1.cfg" >/dev/null || exit 1
URI=$("$B" block-list g --json | sed -n 's/.*"uri": "\([^"]*\)".*/\1/p')
URI1=$("$B" block-list g1 --json | sed -n 's/.*"uri": "\([^"]*\)".*/\1/p')
Q4=$("$B" exec g -- xenstore-read device/vbd/51712/multi-queue-num-queues 2>/dev/null || echo 1)
Q1=$("$B" exec g1 -- xenstore-read device/vbd/51712/multi-queue-num-queues 2>/dev/null || echo 1)
nbdkit -f -U "$W/nbdkit.sock" file "$IMG" & nbdpid=$!
for i in $(seq 50); do [ -S "$W/nbdkit.sock" ] && break; sleep 0.1; done

# One fio job; prints "iops lat_us bw_MBps" of its read or write side.
job() { # where rw bs depth [fio args...]
    local where=$1 rw=$2 bs=$3 qd=$4 out
    local common=(--name=b --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$SIZE" --time_based
                  --runtime="$T" --output-format=json --group_reporting "${@:5}")
    case $where in
    direct) out=$(fio "${common[@]}" --ioengine=io_uring --direct=1 --filename="$IMG") ;;
    nbdkit) out=$(fio "${common[@]}" --ioengine=nbd --uri="nbd+unix:///?socket=$W/nbdkit.sock") ;;
    bulkhead) out=$("$B" exec g -- fio "${common[@]}" --ioengine=nbd --uri="$URI") ;;
    bulkhead1) out=$("$B" exec g1 -- fio "${common[@]}" --ioengine=nbd --uri="$URI1") ;;
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

# Queues: the same vbd path with 1 and with 4 rings (what each negotiated is shown).
printf "\n%-34s %12s %12s %8s\n" "job" "${Q1} queue(s)" "${Q4} queue(s)" "ratio"
qrow() { # label [fio args...]
    local label=$1 one four
    one=$(job bulkhead1 randread 4k 32 "${@:2}" | cut -d' ' -f1)
    four=$(job bulkhead randread 4k 32 "${@:2}" | cut -d' ' -f1)
    printf "%-34s %12s %12s %8.2f\n" "$label" "$one" "$four" "$(div "$four" "$one")"
}
qrow "4K randread QD32 (IOPS)"
qrow "4K randread 4 jobs x QD32 (IOPS)" --numjobs=4
echo "(ratio: the vbd of ${Q4} queues against the one of ${Q1}, measured in this run)"
