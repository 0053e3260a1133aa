# shellcheck shell=bash
# benchlib.sh - the measurements `bulkhead bench` and `make bench`
# (tests/bench/bench_blk.sh, bench_net.sh) share, so that the two cannot
# disagree: one fio job, one iperf3 run, a ratio, the veth baseline and the
# offload switch.  Sourced by bash; defines bl_* functions and nothing else.
# Installed in $(pkgdatadir) beside bench.sh.

# bl_fio WRAPPER RW BS DEPTH SECONDS SIZE [FIO ARGS...]: one time-based fio
# job; prints "iops lat_us bw_MBps" of its read or write side (0 0 0 if fio
# failed).  WRAPPER is the command prefix fio runs under ("" in dom0,
# "bulkhead exec GUEST --" in a guest), word-split on purpose; the engine and
# the target come in the fio args.
bl_fio() {
    local wrap=$1 rw=$2 bs=$3 qd=$4 secs=$5 size=$6 out side=read
    shift 6
    # timeout, where fio runs: a disk that stops answering gives 0, not a
    # hung run.
    # shellcheck disable=SC2086
    out=$($wrap timeout $((secs + 120)) fio --name=b --rw="$rw" --bs="$bs" --iodepth="$qd" --size="$size" \
        --time_based --runtime="$secs" --output-format=json --group_reporting "$@" 2>/dev/null)
    case $rw in *write) side="write" ;; esac
    # fio's JSON, read by its layout ("read" : {, then iops, bw_bytes and
    # clat_ns's mean): no JSON parser is needed in a guest or in dom0.
    echo "$out" | awk -v side="$side" '
        $0 ~ "\"" side "\" : \\{" {in_side = 1}
        in_side && /"iops" :/ && iops == "" {gsub(/[ ,]/, ""); split($0, a, ":"); iops = a[2]}
        in_side && /"bw_bytes" :/ && bw == "" {gsub(/[ ,]/, ""); split($0, a, ":"); bw = a[2]}
        in_side && /"clat_ns" : \{/ {in_clat = 1}
        in_clat && /"mean" :/ && lat == "" {gsub(/[ ,]/, ""); split($0, a, ":"); lat = a[2]; in_clat = 0}
        END {printf "%.0f %.1f %.1f\n", iops, lat / 1000, bw / 1e6}'
}

# bl_ratio METRIC OURS BASE: a ratio where higher is better, two decimals (two
# significant digits under 0.005, so that what was measured never shows as 0):
# ours/base, or base/ours for latency (METRIC lat); 0 if either is missing.
bl_ratio() {
    awk -v m="$1" -v o="$2" -v b="$3" 'BEGIN {
        if (o <= 0 || b <= 0) r = 0; else if (m == "lat") r = b / o; else r = o / b
        # (a measured ratio under 0.005 keeps two significant digits: never "0.00")
        if (r > 0 && r < 0.005) printf "%.2g", r; else printf "%.2f", r }'
}

# bl_wait_port WRAPPER PORT: until something listens on TCP PORT where
# WRAPPER runs (ss), up to 30 s (a loaded machine starts a guest's program
# slowly); 0 once it does.
bl_wait_port() {
    local _
    for _ in $(seq 300); do
        # shellcheck disable=SC2086
        $1 ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# bl_iperf SERVER-WRAPPER CLIENT-WRAPPER SERVER-IP SECONDS [IPERF3 ARGS...]:
# a client against a one-shot server; prints Mbit/s received (TCP), or
# packets per second received (with -u); 0 if the run failed.
bl_iperf() {
    local srv=$1 cl=$2 ip=$3 secs=$4 out spid
    shift 4
    # The one-shot server waits for a client for ever, and the client for a
    # peer that is gone: timeout, run where each runs, bounds both, so that a
    # broken path gives 0 and not a hung run.
    # shellcheck disable=SC2086
    $srv timeout $((secs + 60)) iperf3 -s -1 >/dev/null 2>&1 &
    spid=$!
    bl_wait_port "$srv" 5201 || { kill $spid 2>/dev/null; wait $spid 2>/dev/null; echo 0; return; }
    # shellcheck disable=SC2086
    out=$($cl timeout $((secs + 60)) iperf3 -c "$ip" -t "$secs" -J "$@" 2>/dev/null)
    wait $spid 2>/dev/null
    # iperf3's JSON by its layout, as bl_fio reads fio's (cJSON indents with
    # tabs): the "end" section's sum_received (TCP) or sum (UDP).
    local udp=0 a
    for a in "$@"; do [ "$a" = -u ] && udp=1; done
    echo "$out" | awk -v udp=$udp '
        function num() {gsub(/[ \t,]/, ""); split($0, a, ":"); return a[2]}
        /"end":[ \t]*\{/ {in_end = 1}
        in_end && /"sum_received":[ \t]*\{/ {in_recv = 1}
        in_end && /"sum":[ \t]*\{/ {in_sum = 1}
        in_recv && /"bits_per_second":/ && bps == "" {bps = num()}
        in_sum && /"seconds":/ && secs == "" {secs = num()}
        in_sum && /"packets":/ && pk == "" {pk = num()}
        in_sum && /"lost_packets":/ && lost == "" {lost = num()}
        END {
            if (udp) printf "%.0f\n", (secs > 0 ? (pk - lost) / secs : 0)
            else printf "%.0f\n", bps / 1e6
        }'
}

# bl_veth_up NS-A NS-B: the network baseline, two namespaces joined by one
# veth pair, 10.77.0.1 and .2; 0, or 1 with the namespaces removed.
bl_veth_up() {
    ip netns add "$1" && ip netns add "$2" &&
        ip link add bhv-a netns "$1" type veth peer name bhv-b netns "$2" &&
        ip -n "$1" addr add 10.77.0.1/24 dev bhv-a && ip -n "$2" addr add 10.77.0.2/24 dev bhv-b &&
        ip -n "$1" link set bhv-a up && ip -n "$2" link set bhv-b up &&
        ip -n "$1" link set lo up && ip -n "$2" link set lo up && return 0
    bl_veth_down "$1" "$2"
    return 1
}

bl_veth_down() {
    ip netns del "$1" 2>/dev/null
    ip netns del "$2" 2>/dev/null
    return 0
}

# bl_offloads on|off NS-A NS-B BULKHEAD GUEST...: GSO and TSO on or off on
# the veth pair and on every guest's eth0.
bl_offloads() {
    local state=$1 na=$2 nb=$3 b=$4 g
    shift 4
    ip netns exec "$na" ethtool -K bhv-a tso "$state" gso "$state" >/dev/null 2>&1
    ip netns exec "$nb" ethtool -K bhv-b tso "$state" gso "$state" >/dev/null 2>&1
    for g in "$@"; do "$b" exec "$g" -- ethtool -K eth0 tso "$state" gso "$state" >/dev/null 2>&1; done
    return 0
}

# bl_vbd_uri GUEST VDEV: the NBD URI of GUEST's vbd VDEV, as `$B block-list`
# shows it.  The guest publishes it once its nbdkit serves the vbd, just
# after Connected: wait for it, up to 30 s; empty if it never came.
bl_vbd_uri() {
    local u
    for _ in $(seq 300); do
        u=$("$B" block-list "$1" --json |
            sed -n "s/.*\"vdev\": \"$2\".*\"uri\": \"\\([^\"]*\\)\".*/\\1/p")
        [ -n "$u" ] && break
        sleep 0.1
    done
    echo "$u"
}
