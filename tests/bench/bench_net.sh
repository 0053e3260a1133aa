#!/bin/bash
# bench_net.sh - the split network driver against a veth pair, in one run
# (make bench; root).  iperf3 between two guests whose vifs a driver domain
# serves (netfront -> netback -> the driver domain's bridge -> netback ->
# netfront), beside iperf3 between two network namespaces joined by a plain
# veth pair: TCP with the offloads (GSO/TSO, checksum) and without, with 2
# queues (guests of 2 vcpus: the TAP's queues) and 1, and 64-byte UDP
# packets per second.  BENCH_NET_SECONDS per run (5).
set -u
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
T=${BENCH_NET_SECONDS:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench_net: needs root (namespaces)"; exit 1; }
for p in iperf3 ethtool python3; do
    command -v $p >/dev/null || { echo "bench_net: needs $p (apt-get install iperf3 ethtool)"; exit 1; }
done
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-benchn-XXXXXX)
W=$(mktemp -d /tmp/bh-benchnw-XXXXXX)
NA=bhbench-a-$$ NB=bhbench-b-$$
trap '"$B" down >/dev/null 2>&1; ip netns del $NA 2>/dev/null; ip netns del $NB 2>/dev/null;
      rm -rf "$BULKHEAD_STATE_DIR" "$W"' EXIT

# The baseline: two namespaces, one veth pair.
ip netns add $NA && ip netns add $NB &&
    ip link add bhv-a netns $NA type veth peer name bhv-b netns $NB &&
    ip -n $NA addr add 10.77.0.1/24 dev bhv-a && ip -n $NB addr add 10.77.0.2/24 dev bhv-b &&
    ip -n $NA link set bhv-a up && ip -n $NB link set bhv-b up &&
    ip -n $NA link set lo up && ip -n $NB link set lo up || { echo "bench_net: cannot make the veth pair"; exit 1; }

"$B" up >/dev/null
printf 'name = "drv"\ndriver_domain = 1\n' >"$W/drv.cfg"
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
echo "negotiated: a2/b2 $(nq a2)/$(nq b2) queue(s), a1/b1 $(nq a1)/$(nq b1) queue(s)"

# Runs a client against a one-shot server; prints Mbit/s (TCP) or packets/s received (UDP).
run() { # server-cmd-prefix client-cmd-prefix server-ip [iperf3 client args]
    local srv=$1 cl=$2 ip=$3
    $srv iperf3 -s -1 >/dev/null 2>&1 &
    sleep 1
    $cl iperf3 -c "$ip" -t "$T" -J "${@:4}" >"$W/out.json" 2>/dev/null
    wait
    python3 - "$W/out.json" "$*" <<'PY'
import json, sys
try:
    e = json.load(open(sys.argv[1]))["end"]
except Exception:
    print(0); sys.exit()
if " -u" not in " " + sys.argv[2]:
    print("%.0f" % (e["sum_received"]["bits_per_second"] / 1e6))
else:  # UDP: what arrived, per second
    s = e["sum"]; print("%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"]))
PY
}
VA="ip netns exec $NA" VB="ip netns exec $NB"
G() { echo "$B exec $1 --"; }
offloads() { # on|off: in both namespaces, and in the four guests
    ip netns exec $NA ethtool -K bhv-a tso "$1" gso "$1" >/dev/null 2>&1
    ip netns exec $NB ethtool -K bhv-b tso "$1" gso "$1" >/dev/null 2>&1
    for g in a2 b2 a1 b1; do "$B" exec $g -- ethtool -K eth0 tso "$1" gso "$1" >/dev/null 2>&1; done
}

printf "%-36s %12s %12s %12s %8s\n" "job" "veth" "2 queues" "1 queue" "2q/veth"
row() { # label [iperf3 client args]
    local v q2 q1
    v=$(run "$VB" "$VA" 10.77.0.2 "${@:2}")
    q2=$(run "$(G b2)" "$(G a2)" 10.78.0.2 "${@:2}")
    q1=$(run "$(G b1)" "$(G a1)" 10.78.0.4 "${@:2}")
    printf "%-36s %12s %12s %12s %8s\n" "$1" "$v" "$q2" "$q1" \
        "$(awk -v a="$q2" -v b="$v" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')"
}
row "TCP with offloads (Mbit/s)"
row "TCP, 4 streams, offloads (Mbit/s)" -P 4
offloads off
row "TCP without GSO/TSO (Mbit/s)"
offloads on
row "UDP 64-byte packets (pkt/s received)" -u -b 0 -l 64
echo "(guest to guest through the driver domain against the same iperf3 over a veth pair,"
echo " measured in this run; the goal for TCP with offloads is >= 0.5x veth)"
