#!/bin/bash
# routed.sh - routed vifs (script=vif-route), as a Xen user writes them: no
# bridge; the vif takes the driver domain's uplink address (gatewaydev,
# default its bulkhead_uplink bridge, bulkhead_uplink_address) as a /32, proxy ARP on, a host route
# per ip= address through it.  Two routed guests in a network driver
# domain ping each other and dom0's namespace through the uplink; TCP
# carries 64 MiB whose md5 both ends agree on; a forged source IP reaches
# nobody; configs vif-route cannot serve are refused in one line, leaving
# nothing behind; bulkhead restart of the driver domain keeps them routed.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in ping python3 nsenter; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install iputils-ping python3 util-linux)"
done
sim_begin routed
plan 27

# The host's uplink has an address, as dom0's eth0 has one on Xen: here the driver domain's bridge.
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_uplink = "xenbr0"\nbulkhead_uplink_address = "10.9.2.1/24"\n' >"$W/drv.cfg"
guest() { # name vif-spec
    printf 'name = "%s"\nvif = [ "%s" ]\n' "$1" "$2"
}
guest r1 "mac=00:16:3e:00:02:0b, backend=drv, script=vif-route, ip=10.9.2.11" >"$W/r1.cfg"
guest r2 "mac=00:16:3e:00:02:0c, backend=drv, script=/etc/xen/scripts/vif-route, ip=10.9.2.12, vifname=r2.route" >"$W/r2.cfg"
guest bad1 "backend=drv, script=vif-route" >"$W/bad1.cfg"
guest bad2 "backend=drv, script=vif-nat, ip=10.9.2.13" >"$W/bad2.cfg"
guest bad3 "backend=drv, script=vif-route, bridge=xenbr0, ip=10.9.2.13" >"$W/bad3.cfg"
guest bad4 "backend=drv2, script=vif-route, ip=10.9.2.14" >"$W/bad4.cfg"
printf 'name = "drv2"\ndriver_domain = 1\n' >"$W/drv2.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the network driver domain, its uplink to dom0" "$B" create "$W/drv.cfg"
drvpid=$("$B" list --json | sed -n 's/.*"name": "drv".*"pid": \([0-9]*\).*/\1/p')
nsenter --net="$BULKHEAD_DOM0_NETNS" ip addr add 10.9.2.100/24 dev up-drv

is "bulkhead_uplink_address is on the driver domain's uplink bridge" \
    "$(nsenter -t "$drvpid" -n ip -o -4 addr show dev xenbr0 | awk '{print $4}')" "10.9.2.1/24"

# Refusals first: each one line, naming the fix, and no domain or link left.
links() { nsenter -t "$drvpid" -n ip -o link show | grep -c .; }
before=$(links)
out=$("$B" create "$W/bad1.cfg" 2>&1)
ok "script=vif-route without ip= is refused in one line naming ip=" \
    test "$(printf '%s\n' "$out" | grep -c .)" -eq 1 -a -n "$(printf '%s' "$out" | grep 'vif-route needs ip=')"
out=$("$B" create "$W/bad2.cfg" 2>&1)
ok "script=vif-nat is refused in one line naming the scripts that exist" \
    test "$(printf '%s\n' "$out" | grep -c .)" -eq 1 -a -n "$(printf '%s' "$out" | grep 'script=vif-bridge (the default) or script=vif-route')"
out=$("$B" create "$W/bad3.cfg" 2>&1)
ok "a routed vif with bridge= is refused in one line" \
    test "$(printf '%s\n' "$out" | grep -c .)" -eq 1 -a -n "$(printf '%s' "$out" | grep 'remove bridge=')"
"$B" create "$W/drv2.cfg" >/dev/null || echo "create drv2 failed"
out=$("$B" create "$W/bad4.cfg" 2>&1)
ok "a routed vif whose driver domain has no uplink is refused in one line naming gatewaydev=" \
    test "$(printf '%s\n' "$out" | grep -c .)" -eq 1 -a -n "$(printf '%s' "$out" | grep 'drv2 has no bulkhead_uplink.*gatewaydev=')"
ok "... and drv2 can be destroyed" "$B" destroy drv2
is "... and none of them left a domain" "$("$B" list --json | grep -c '"name": "bad')" "0"
is "... nor a link in the driver domain" "$(links)" "$before"

for g in r1 r2; do "$B" create "$W/$g.cfg" >/dev/null || echo "create $g failed"; done
is "two routed guests, each vif Connected" \
    "$(for g in r1 r2; do "$B" network-list "$g" --json; done | grep -o '"state": 4' | wc -l)" "2"
r1id=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "r1".*/\1/p')
dn() { nsenter -t "$drvpid" -n "$@"; }
is "r1's vif is on no bridge and has the uplink's address as a /32" \
    "$(dn ip -o -4 addr show dev "vif$r1id.0" | awk '{print $4}'; dn ip -o link show "vif$r1id.0" | grep -c master)" \
    "10.9.2.1/32
0"
is "... proxy ARP on" "$(dn cat /proc/sys/net/ipv4/conf/vif$r1id.0/proxy_arp)" "1"
is "... a host route to its ip= through it" "$(dn ip -4 route show 10.9.2.11 | awk '{print $1, $2, $3}')" \
    "10.9.2.11 dev vif$r1id.0"
ok "vifname= names r2's vif, routed too" dn ip -o -4 route show 10.9.2.12 dev r2.route

addr() { "$B" exec "$1" -- ip addr add "$2" dev eth0; }
addr r1 10.9.2.11/24; addr r2 10.9.2.12/24
ok "r1 pings dom0's namespace through the driver domain's uplink" "$B" exec r1 -- ping -c 3 -W 3 10.9.2.100
ok "r1 pings r2 (routed through the driver domain)" "$B" exec r1 -- ping -c 3 -W 3 10.9.2.12

# 64 MiB over TCP r1 -> r2: what r2 receives has the md5 of what r1 sent.
stream_start r1 r2 10.9.2.12 5201 $((64 << 20)) && stream_wait 5201 300
ok "64 MiB over TCP r1 -> r2: same length and md5 on both ends" stream_same 5201
is "... all of it" "$(cut -d' ' -f1 "$W/stream-5201.recv")" "67108864"

# Anti-spoofing still holds: r1 as 10.9.2.99 reaches neither r2 nor dom0.
"$B" exec r1 -- ip addr add 10.9.2.99/24 dev eth0
fails "a forged source IP reaches nobody (r1 as 10.9.2.99 pings r2)" \
    "$B" exec r1 -- ping -c 3 -W 2 -I 10.9.2.99 10.9.2.12
fails "... nor dom0's namespace" "$B" exec r1 -- ping -c 3 -W 2 -I 10.9.2.99 10.9.2.100
"$B" exec r1 -- ip addr del 10.9.2.99/24 dev eth0
# The worker logs each queue's counters when they change: the last line of each, summed.
spoofed() { grep -h "vif $1/0: queue" "$BULKHEAD_STATE_DIR/console/drv.log" |
    sed -n 's/.*queue \([0-9]*\):.*spoofed \([0-9]*\),.*/\1 \2/p' |
    awk '{last[$1] = $2} END {for (q in last) n += last[q]; print n + 0}'; }
ok "r1 with its own address still reaches r2" "$B" exec r1 -- ping -c 2 -W 3 10.9.2.12
# The worker logs its counters once a second: wait for them, 30 s at most.
for _ in $(seq 60); do n=$(spoofed "$r1id"); [ "$n" -ge 6 ] && break; sleep 0.5; done
ok "... and the driver domain dropped the forged frames, counted ($n)" test "$n" -ge 6

# bulkhead restart moves the routed vifs routed: the new driver domain has the
# uplink address again (from its config), the routes, and the guests reach each other.
ok "restart drv" "$B" restart drv
drvpid=$("$B" list --json | sed -n 's/.*"name": "drv".*"pid": \([0-9]*\).*/\1/p')
is "... both vifs Connected to the new drv" \
    "$(for g in r1 r2; do "$B" network-list "$g" --json; done | grep -o '"state": 4, "backend_state": 4' | wc -l)" "2"
is "... r1's route is in the new driver domain" \
    "$(dn ip -4 route show 10.9.2.11 | awk '{print $1, $2, $3}')" "10.9.2.11 dev vif$r1id.0"
# dom0's end of the uplink is a new veth, whose address is dom0's to give, as before.
nsenter --net="$BULKHEAD_DOM0_NETNS" ip addr add 10.9.2.100/24 dev up-drv
ok "... and r1 reaches r2 and dom0 again" sh -c "'$B' exec r1 -- ping -c 3 -W 3 10.9.2.12 && '$B' exec r1 -- ping -c 3 -W 3 10.9.2.100"
