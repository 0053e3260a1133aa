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
# After the table, the path's floors (tests/bench/tapfloor): the same
# iperf3 between two namespaces whose TAPs are joined through a bridge in
# userspace with nothing of ours - one relay process a side; the split
# model (two processes a side, a shared-memory ring between: our copies and
# hops, none of our checks); and the split model with io/netif.h's layout
# (each frame in 4 KiB pages, as a ring's slots carry it) - so that the
# ratio to veth can be read against what the model itself costs here.
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
F="${abs_top_builddir:-$PWD}/tests/bench/tapfloor"
FPIDS=()
floors_down() {
    local t s
    [ ${#FPIDS[@]} -gt 0 ] && kill "${FPIDS[@]}" 2>/dev/null && wait "${FPIDS[@]}" 2>/dev/null
    FPIDS=()
    for t in bhfr bhfs bhfp; do for s in a m b; do ip netns del $t-$s-$$ 2>/dev/null; done; done
    return 0
}
trap '"$B" down >/dev/null 2>&1; bl_veth_down $NA $NB; floors_down; rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT

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

# floor_up relay|split|pages TAG NET: namespaces TAG-a-PID and TAG-b-PID (10.NET.0.1
# and .2 on a TAP each) joined through a bridge in TAG-m-PID by tapfloor.
floor_up() {
    local mode=$1 t=$2 net=$3 s n i
    for s in a m b; do ip netns add $t-$s-$$ || return 1; ip -n $t-$s-$$ link set lo up; done
    ip -n $t-m-$$ link add br0 type bridge && ip -n $t-m-$$ link set br0 up || return 1
    n=1
    for s in a b; do
        "$F" "$mode" $t$s-g $t$s-h >"$W/$t$s.out" 2>&1 &
        FPIDS+=($!)
        for ((i = 0; i < 50; i++)); do grep -q ready "$W/$t$s.out" && break; sleep 0.1; done
        grep -q ready "$W/$t$s.out" || { cat "$W/$t$s.out"; return 1; }
        ip link set $t$s-g netns $t-$s-$$ && ip link set $t$s-h netns $t-m-$$ &&
            ip -n $t-m-$$ link set $t$s-h master br0 up &&
            ip -n $t-$s-$$ addr add 10.$net.0.$n/24 dev $t$s-g && ip -n $t-$s-$$ link set $t$s-g up || return 1
        n=$((n + 1))
    done
}
echo
if [ ! -x "$F" ]; then
    echo "(no floors: $F is not built - make bench builds it)"
elif ! floor_up relay bhfr 79 || ! floor_up split bhfs 80 || ! floor_up pages bhfp 81; then
    echo "(no floors: tapfloor's namespaces could not be made; the lines above say why)"
else
    vs=() rs=() ss=() ps=() qs=()
    for ((i = 0; i < RUNS; i++)); do
        vs+=("$(run "$VB" "$VA" 10.77.0.2)")
        rs+=("$(run "ip netns exec bhfr-b-$$" "ip netns exec bhfr-a-$$" 10.79.0.2)")
        ss+=("$(run "ip netns exec bhfs-b-$$" "ip netns exec bhfs-a-$$" 10.80.0.2)")
        ps+=("$(run "ip netns exec bhfp-b-$$" "ip netns exec bhfp-a-$$" 10.81.0.2)")
        qs+=("$(run "$(G b2)" "$(G a2)" 10.78.0.2)")
    done
    v=$(median "${vs[@]}") r=$(median "${rs[@]}") s=$(median "${ss[@]}") pg=$(median "${ps[@]}")
    q=$(median "${qs[@]}")
    echo "the path's floors, TCP with offloads: the same TAPs and bridge joined in userspace with"
    echo "nothing of ours - one relay process a side; the split model (two processes a side, a"
    echo "shared-memory ring between: our copies and hops, none of our checks); and the split model"
    echo "with io/netif.h's layout (each frame in 4 KiB pages, as the ring's slots carry it)"
    f="%-28s %10s %10s %10s %10s %10s\n"
    # shellcheck disable=SC2059
    {
        printf "$f" "" "veth" "relay" "split" "in pages" "2 queues"
        printf "$f" "TCP with offloads (Mbit/s)" "$v" "$r" "$s" "$pg" "$q"
        printf "$f" "  against veth" "1.00" "$(bl_ratio x "$r" "$v")" "$(bl_ratio x "$s" "$v")" \
            "$(bl_ratio x "$pg" "$v")" "$(bl_ratio x "$q" "$v")"
        printf "$f" "  against the split model" "" "" "1.00" "$(bl_ratio x "$pg" "$s")" "$(bl_ratio x "$q" "$s")"
        printf "$f" "  against it in pages" "" "" "" "1.00" "$(bl_ratio x "$q" "$pg")"
    }
    if [ "$RUNS" -gt 1 ]; then
        echo "    runs: veth ${vs[*]}; relay ${rs[*]}; split ${ss[*]}; in pages ${ps[*]}; 2 queues ${qs[*]}"
    fi
fi
