#!/bin/bash
# net.sh - frames through the split network driver, as a user pushes them:
# guests whose vifs a driver domain serves (netfront over eth<devid> in the
# guest, netback on the vif's TAP on a bridge in the driver domain, the
# bridge's uplink to dom0's namespace).  ping between guests and to dom0;
# MTU 1500 and 9000; iperf3 TCP guest to guest and guest to dom0; the md5 of
# 1 GiB sent over TCP; a forged source IP or MAC reaching nobody (and
# counted); rate= bounding what iperf3 measures from above; netfront
# choosing Toeplitz hashing over the control ring.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in ping iperf3 python3; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install iputils-ping iperf3 python3)"
done
sim_begin net
plan 22

printf 'name = "drv"\ndriver_domain = 1\nbulkhead_uplink = "xenbr0"\n' >"$W/drv.cfg"
guest() { # name last-octet extra-vif-settings
    printf 'name = "%s"\nvcpus = 2\nvif = [ "mac=00:16:3e:00:00:%02x, backend=drv, ip=10.9.%s%s" ]\n' \
        "$1" "$2" "$([ "$2" -ge 100 ] && echo "1.$2" || echo "0.$2")" "$3"
}
guest g1 11 ", bridge=xenbr0" >"$W/g1.cfg"
guest g2 12 ", bridge=xenbr0" >"$W/g2.cfg"
guest g3 13 ", bridge=xenbr0, rate=10Mb/s" >"$W/g3.cfg"
guest j1 101 ", bridge=br9k, mtu=9000" >"$W/j1.cfg"
guest j2 102 ", bridge=br9k, mtu=9000" >"$W/j2.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the network driver domain, its uplink to dom0" "$B" create "$W/drv.cfg"
for g in g1 g2 g3 j1 j2; do "$B" create "$W/$g.cfg" >/dev/null || echo "create $g failed"; done
is "five guests, each vif Connected" \
    "$(for g in g1 g2 g3 j1 j2; do "$B" network-list "$g" --json; done | grep -o '"state": 4' | wc -l)" "5"
addr() { "$B" exec "$1" -- ip addr add "$2" dev eth0; }
addr g1 10.9.0.11/24; addr g2 10.9.0.12/24; addr g3 10.9.0.13/24
addr j1 10.9.1.101/24; addr j2 10.9.1.102/24
nsenter --net="$BULKHEAD_DOM0_NETNS" ip addr add 10.9.0.1/24 dev up-drv
# IPv6 duplicate address detection and the like are not under test: no waiting on them.
ok "g1 pings g2 (through the driver domain's bridge)" "$B" exec g1 -- ping -c 3 -W 3 10.9.0.12
ok "g2 pings g1" "$B" exec g2 -- ping -c 3 -W 3 10.9.0.11
ok "g1 pings dom0's namespace through the uplink" "$B" exec g1 -- ping -c 3 -W 3 10.9.0.1
g1id=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g1".*/\1/p')
ok "g1's netfront chose Toeplitz hashing on the control ring (5 requests, none refused)" \
    grep -q "vif $g1id/0: control ring: 5 requests, 0 refused; hash algorithm 1" \
    "$BULKHEAD_STATE_DIR/console/drv.log"
is "eth0 carries the vif's mtu (1500)" "$("$B" exec g1 -- ip -o link show eth0 | grep -o 'mtu [0-9]*')" "mtu 1500"
is "... and 9000 where the vif says mtu=9000" "$("$B" exec j1 -- ip -o link show eth0 | grep -o 'mtu [0-9]*')" "mtu 9000"
ok "a 9000-byte frame crosses unfragmented (ping -M do -s 8972)" \
    "$B" exec j1 -- ping -c 3 -W 3 -M do -s 8972 10.9.1.102

# iperf3 TCP: a server that serves one test, then the client.
iperf() { # server-where client-guest server-ip [client args]
    local where=$1 cl=$2 ip=$3
    if [ "$where" = dom0 ]; then
        nsenter --net="$BULKHEAD_DOM0_NETNS" iperf3 -s -1 >"$W/srv.out" 2>&1 &
    else
        "$B" exec "$where" -- iperf3 -s -1 >"$W/srv.out" 2>&1 &
    fi
    sleep 1
    timeout 120 "$B" exec "$cl" -- iperf3 -c "$ip" -J "${@:4}" >"$W/cl.json" 2>&1
    local rc=$?
    wait
    return $rc
}
bps() { python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$W/cl.json"; }
ok "iperf3 TCP g1 -> g2 completes" iperf g2 g1 10.9.0.12 -t 3
ok "... having moved bytes" test "$(bps)" -gt 0
ok "iperf3 TCP g1 -> dom0 completes" iperf dom0 g1 10.9.0.1 -t 3
ok "iperf3 TCP g2 -> g1, the reverse direction, completes" iperf g1 g2 10.9.0.11 -t 3 -R

# 1 GiB over TCP: what g2 receives has the md5 of what g1 sent.
stream_start g1 g2 10.9.0.12 5201 $((1 << 30)) && stream_wait 5201 300
ok "1 GiB over TCP g1 -> g2: same length and md5 on both ends" stream_same 5201
is "... all of it" "$(cut -d' ' -f1 "$W/stream-5201.recv")" "1073741824"

# Anti-spoofing: the vif's ip= and mac= are all g1 may send from.
# The worker logs each queue's counters when they change: the last line of each, summed.
spoofed() { grep -h "vif $1/0: queue" "$BULKHEAD_STATE_DIR/console/drv.log" |
    sed -n 's/.*queue \([0-9]*\):.*spoofed \([0-9]*\),.*/\1 \2/p' |
    awk '{last[$1] = $2} END {for (q in last) n += last[q]; print n + 0}'; }
"$B" exec g1 -- ip addr add 10.9.0.99/24 dev eth0
fails "a forged source IP reaches nobody (g1 as 10.9.0.99 pings g2)" \
    "$B" exec g1 -- ping -c 3 -W 2 -I 10.9.0.99 10.9.0.12
"$B" exec g1 -- ip addr del 10.9.0.99/24 dev eth0
"$B" exec g1 -- ip link set eth0 address 00:16:3e:00:00:99
fails "a forged source MAC reaches nobody" "$B" exec g1 -- ping -c 3 -W 2 10.9.0.12
"$B" exec g1 -- ip link set eth0 address 00:16:3e:00:00:0b
sleep 1.5 # the worker logs its counters once a second
n=$(spoofed "$g1id")
ok "... and the driver domain counted them ($n frames)" test "$n" -ge 6
ok "g1 with its own addresses still reaches g2" "$B" exec g1 -- ping -c 2 -W 3 10.9.0.12

# rate=10Mb/s on g3: what iperf3 measures stays under a generous bound above it.
ok "iperf3 TCP from g3 (rate=10Mb/s) completes" iperf g2 g3 10.9.0.12 -t 4
r=$(bps)
ok "... at no more than 15 Mbit/s (measured $((r / 1000000)) Mbit/s)" test "$r" -le 15000000
