#!/bin/bash
# bench_net.sh - the split network driver against a veth pair, in one run
# (make bench; root).  iperf3 between two guests whose vifs a driver domain
# serves (netfront -> netback -> the driver domain's bridge -> netback ->
# netfront), beside iperf3 between two network namespaces joined by a plain
# veth pair: TCP with the offloads (GSO/TSO, checksum) and without, with 2
# queues (guests of 2 vcpus: the TAP's queues) and 1, and 64-byte UDP
# packets per second.  BENCH_NET_SECONDS per run (5), BENCH_NET_RUNS runs
# of each cell (3), taken in turn (veth, 2 queues, 1 queue, veth, ...) so
# that a burst of load elsewhere falls on every column alike: each column
# gives its median and the ratio is the medians'.  BENCH_NET_POLL_US=N
# sets the driver domain's bulkhead_net_poll_us (its workers poll N us after
# each burst before they sleep; unset: the default, no polling).
# The measurements are benchlib.sh's, which bulkhead bench uses too.
set -u
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
# shellcheck source=../../toolstack/benchlib.sh
. "$(dirname "$0")/../../toolstack/benchlib.sh"
T=${BENCH_NET_SECONDS:-5}
RUNS=${BENCH_NET_RUNS:-3}
case $RUNS in ''|*[!0-9]*|0) echo "bench_net: BENCH_NET_RUNS must be a number of runs (1 or more)"; exit 1 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "bench_net: needs root (namespaces)"; exit 1; }
for p in iperf3 ethtool ss; do
    command -v $p >/dev/null || { echo "bench_net: needs $p (apt-get install iperf3 ethtool)"; exit 1; }
done
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-benchn-XXXXXX)
W=$(mktemp -d /tmp/bh-benchnw-XXXXXX)
NA=bhbench-a-$$ NB=bhbench-b-$$
trap '"$B" down >/dev/null 2>&1; bl_veth_down $NA $NB; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT

# The baseline: two namespaces, one veth pair.
bl_veth_up $NA $NB || { echo "bench_net: cannot make the veth pair"; exit 1; }

"$B" up >/dev/null
printf 'name = "drv"\ndriver_domain = 1\n%s' \
    "${BENCH_NET_POLL_US:+bulkhead_net_poll_us = $BENCH_NET_POLL_US
}" >"$W/drv.cfg"
guest() { # name vcpus last-octet
    printf 'name = "%s"\nvcpus = %s\nvif = [ "mac=00:16:3e:00:01:%02x, bridge=xenbr0, backend=drv, ip=10.78.0.%s" ]\n' \
        "$1" "$2" "$3" "$3"
}
guest a2 2 1 >"$W/a2.cfg"; guest b2 2 2 >"$W/b2.cfg"
guest a1 1 3 >"$W/a1.cfg"; guest b1 1 4 >"$W/b1.cfg"
for c in drv a2 b2 a1 b1; do
    "$B" create "$W/$c.cfg" >/dev/null || { echo "bench_net: cannot create $c"; exit 1; }
done
n=1
for g in a2 b2 a1 b1; do
    "$B" exec $g -- ip addr add 10.78.0.$n/24 dev eth0
    n=$((n + 1))
done
nq() { "$B" exec "$1" -- xenstore-read device/vif/0/multi-queue-num-queues 2>/dev/null || echo 1; }
echo "negotiated: a2/b2 $(nq a2)/$(nq b2) queue(s), a1/b1 $(nq a1)/$(nq b1) queue(s)${BENCH_NET_POLL_US:+; the driver domain polls $BENCH_NET_POLL_US us}"

# One iperf3 run (bl_iperf, as bulkhead bench runs it): Mbit/s, or pkt/s received.
run() { # server-cmd-prefix client-cmd-prefix server-ip [iperf3 client args]
    bl_iperf "$1" "$2" "$3" "$T" "${@:4}"
}
VA="ip netns exec $NA" VB="ip netns exec $NB"
G() { echo "$B exec $1 --"; }
offloads() { bl_offloads "$1" $NA $NB "$B" a2 b2 a1 b1; }

printf "%-36s %12s %12s %12s %8s %8s\n" "job" "veth" "2 queues" "1 queue" "2q/veth" "1q/veth"
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
row() { # label [iperf3 client args]
    local v q2 q1 i vs=() q2s=() q1s=()
    for ((i = 0; i < RUNS; i++)); do
        vs+=("$(run "$VB" "$VA" 10.77.0.2 "${@:2}")")
        q2s+=("$(run "$(G b2)" "$(G a2)" 10.78.0.2 "${@:2}")")
        q1s+=("$(run "$(G b1)" "$(G a1)" 10.78.0.4 "${@:2}")")
    done
    v=$(median "${vs[@]}") q2=$(median "${q2s[@]}") q1=$(median "${q1s[@]}")
    printf "%-36s %12s %12s %12s %8s %8s\n" "$1" "$v" "$q2" "$q1" \
        "$(bl_ratio x "$q2" "$v")" "$(bl_ratio x "$q1" "$v")"
    if [ "$RUNS" -gt 1 ]; then echo "    runs: veth ${vs[*]}; 2 queues ${q2s[*]}; 1 queue ${q1s[*]}"; fi
}
row "TCP with offloads (Mbit/s)"
row "TCP, 4 streams, offloads (Mbit/s)" -P 4
offloads off
row "TCP without GSO/TSO (Mbit/s)"
offloads on
row "UDP 64-byte packets (pkt/s received)" -u -b 0 -l 64
echo "(guest to guest through the driver domain against the same iperf3 over a veth pair,"
echo " measured in this run, medians of $RUNS runs each; the goal for TCP with offloads is >= 0.5x veth)"
