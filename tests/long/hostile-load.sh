#!/bin/bash
# hostile-load.sh - hostile frontends against the real bulkhead-drvdom while
# honest guests served by the same driver domain move data.  g1 runs fio with
# crc32c verify on its vbd, over and over, and iperf3 to g2 over their vifs,
# over and over; the evil guest runs tests/long/liar in bulkhead-guest's place
# (BULKHEAD_GUEST): its seven vbds and four vifs connect honestly, then each
# tells its lie at once (see liar.c): a garbage operation, a sector past the
# end, a bad grant reference, req_prod a ring and one ahead, an indirect
# request of 4096 segments, an indirect segment crossing its page, an event
# storm (XSA-391) on a vbd; on the vifs a TX chain that never ends, a TX
# req_prod overflow, an event storm, and one that never posts an RX buffer
# while g2 floods it with 200 MB of UDP.
# Each lying device ends Closing (or Closed) with an error node naming its
# lie.  The storming vbd stays Connected and still answers a read (the storm
# costs the liar its own CPU time, as on Xen); the vif that posts no RX
# buffer stays Connected too (Linux's netback stalls such a queue and drops
# its frames, XSA-392), and the driver domain's memory stays bounded while
# it is flooded: its RSS (every process of the domain) grows by less than
# 64 MiB.  Every fio run verifies, every iperf3 run completes,
# bulkhead-drvdom is the same process at the end, and the honest devices
# stay Connected with no error node.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in fio iperf3 python3; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install fio iperf3 python3)"
done
sim_begin hl
LIAR="$top/tests/long/liar"
plan 30

mkdir -p "$W/store"
truncate -s 64M "$W/store/g1.img"
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
cat >"$W/g1.cfg" <<CFG
name = "g1"
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/g1.img" ]
vif = [ "mac=00:16:3e:00:01:01, backend=drv, bridge=xenbr0" ]
CFG
cat >"$W/g2.cfg" <<CFG
name = "g2"
vif = [ "mac=00:16:3e:00:01:02, backend=drv, bridge=xenbr0" ]
CFG
# The liar's devices: xvda.. are vbds 51712, 51728, ...; vifs 0..3.
vbd_lies="garbage past-end bad-gref prod-overflow indirect-many indirect-seg storm"
vif_lies="tx-chain prod-overflow no-rx storm"
disks="" lies="" n=0
for l in $vbd_lies; do
    v=xvd$(printf "\\$(printf %o $((97 + n)))")
    truncate -s 8M "$W/store/e$n.img"
    disks="$disks${disks:+, }\"format=raw, vdev=$v, access=rw, backend=drv, target=$W/store/e$n.img\""
    lies="$lies${lies:+, }\"vbd:$((51712 + 16 * n)):$l\""
    n=$((n + 1))
done
vifs="" n=0
for l in $vif_lies; do
    vifs="$vifs${vifs:+, }\"mac=00:16:3e:00:02:0$n, backend=drv, bridge=xenbr0\""
    lies="$lies, \"vif:$n:$l\""
    n=$((n + 1))
done
printf 'name = "evil"\ndisk = [ %s ]\nvif = [ %s ]\nbulkhead_init = [ %s ]\n' \
    "$disks" "$vifs" "$lies" >"$W/evil.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create g1 (a vbd and a vif) and g2 (a vif)" sh -c '"$1" create "$2" && "$1" create "$3"' sh \
    "$B" "$W/g1.cfg" "$W/g2.cfg"
ok "create the evil guest: the liar connects its 11 devices honestly" \
    env BULKHEAD_GUEST="$LIAR" "$B" create "$W/evil.cfg"
domid() { "$B" list --json | sed -n "s/.*\"domid\": \\([0-9]*\\), \"name\": \"$1\".*/\\1/p"; }
dompid() { "$B" list --json | sed -n "s/.*\"name\": \"$1\".*\"pid\": \\([0-9]*\\).*/\\1/p"; }
evil=$(domid evil)
is "the liar says it is connected" "$(xenstore-read /local/domain/$evil/data/liar 2>&1)" "connected"
drvpid=$(dompid drv)
drvuid=$(stat -c %u /proc/"$drvpid")
drvdom() { ps -o pid=,comm= -u "$drvuid" | awk '$2 == "bulkhead-drvdom" {print $1}'; }
daemon=$(drvdom)
"$B" exec g1 -- ip addr add 10.9.0.11/24 dev eth0
"$B" exec g2 -- ip addr add 10.9.0.12/24 dev eth0
ua=$(vbd_uri g1 xvda)

# The honest load, in loops until $W/stop: each run must pass.
fio_run() {
    "$B" exec g1 -- fio --ioengine=nbd --uri="$ua" --name=v --rw=randrw --bs=4k --iodepth=16 \
        --size=16M --verify=crc32c --verify_fatal=1 --do_verify=1 >"$W/fio.out" 2>&1
}
iperf_run() {
    "$B" exec g2 -- iperf3 -s -1 >"$W/srv.out" 2>&1 &
    local srv=$! rc i
    for i in $(seq 100); do "$B" exec g1 -- iperf3 -c 10.9.0.12 -t 3 >"$W/iperf.out" 2>&1 && break; sleep 0.1; done
    rc=$?
    wait $srv
    return $rc
}
loop() { # name function
    local n=0
    while :; do
        "$2" || { echo "run $n failed" >"$W/$1.fail"; cat "$W/$1.out" >>"$W/$1.fail"; return 1; }
        n=$((n + 1))
        echo $n >"$W/$1.runs"
        [ -e "$W/stop" ] && return 0
    done
}
loop fio fio_run &
fio_pid=$!
loop iperf iperf_run &
iperf_pid=$!
bg="$fio_pid $iperf_pid"
wait_for() { # a bound against a hang only
    local i
    for i in $(seq 240); do eval "$1" && return 0; sleep 0.25; done
    echo "still not: $1"; return 1
}
ok "honest load runs: fio verified its vbd, iperf3 g1 -> g2 completed" \
    wait_for '[ -s "$W/fio.runs" ] && [ -s "$W/iperf.runs" ] || [ -e "$W/fio.fail" ] || [ -e "$W/iperf.fail" ]'
rss() { # KiB, every process of the driver domain
    ps -o rss= -u "$drvuid" | awk '{s += $1} END {print s + 0}'
}
rss_before=$(rss)

ok "dom0 tells the liar to lie" xenstore-write /local/domain/$evil/data/go 1
ok "the liar told every lie" wait_for '[ "$(xenstore-read /local/domain/$evil/data/liar)" = told ]'

# g2 floods the vif that posts no RX buffer: frames to its MAC, 200 MB.
cat >"$W/flood.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = b"x" * 1400
for _ in range(50000):
    try:
        s.sendto(b, ("10.9.0.66", 9))
    except OSError:
        pass
PY
"$B" exec g2 -- ip neigh replace 10.9.0.66 lladdr 00:16:3e:00:02:02 dev eth0
# What reached that vif's TAP in the driver domain, sent to netback or dropped.
tapframes() {
    nsenter --net=/proc/"$drvpid"/ns/net ip -s -j link show "vif$evil.2" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]["tx"]; print(s["packets"] + s["dropped"])'
}
# Rounds of 50000 frames until 50000 (70 MB, more than the RSS bound below)
# have reached the TAP: on a loaded machine g2's own stack drops some of
# each round (ENOBUFS), so a fixed count proved nothing; 40 rounds at most.
flood() {
    local r
    for r in $(seq 40); do
        "$B" exec g2 -- python3 - <"$W/flood.py" || return 1
        tapframes=$(tapframes)
        [ "${tapframes:-0}" -ge 50000 ] && { echo "$r rounds"; return 0; }
    done
    echo "only $tapframes frames reached the TAP after $r rounds"
    return 1
}
tapframes=0
ok "g2 floods the vif that never posts an RX buffer (rounds of 50000 x 1400 bytes)" flood
ok "the flood reached the vif's TAP: $tapframes frames, more than the RSS bound below" \
    test "${tapframes:-0}" -ge 50000

# Each lying device: Closing or Closed, and an error node naming the lie.
lost() { # kind devid expected-words
    local fe=/local/domain/$evil/device/$1/$2 be st err
    be=$(xenstore-read "$fe/backend") || return 1
    wait_for "st=\$(xenstore-read $be/state); [ \"\$st\" = 5 ] || [ \"\$st\" = 6 ]" || return 1
    err=$(xenstore-read "$be/error" 2>&1)
    echo "error node: $err"
    case "$err" in *"$3"*) return 0 ;; esac
    echo "does not say: $3"; return 1
}
n=0
for l in $vbd_lies; do
    d=$((51712 + 16 * n))
    case $l in
    garbage) ok "vbd $d, a garbage operation: lost, named" lost vbd $d "unknown operation 238" ;;
    past-end) ok "vbd $d, a sector past the end: lost, named" lost vbd $d "past the end of the disk" ;;
    bad-gref) ok "vbd $d, a bad grant reference: lost, named" lost vbd $d "cannot map its 1 grants" ;;
    prod-overflow) ok "vbd $d, req_prod a ring and one ahead: lost, named" lost vbd $d "request producer" ;;
    indirect-many) ok "vbd $d, 4096 indirect segments: lost, named" lost vbd $d "with 4096 segments" ;;
    indirect-seg) ok "vbd $d, an indirect segment crossing its page: lost, named" lost vbd $d \
        "segment 199: sectors 0..9 are not within one page" ;;
    storm)
        ok "vbd $d, after an event storm, still answers a read" \
            wait_for "[ \"\$(xenstore-read /local/domain/$evil/data/storm-vbd-$d)\" = answered ]"
        ;;
    esac
    n=$((n + 1))
done
ok "vif 0, a TX chain that never ends: lost, named" lost vif 0 "more than"
ok "vif 1, TX req_prod a ring and one ahead: lost, named" lost vif 1 "request producer"
is "vif 3's storm of 200000 notifications was sent" "$(xenstore-read /local/domain/$evil/data/storm-vif-3)" "sent"
rss_after=$(rss)
ok "the driver domain's memory stayed bounded under the flood: RSS $rss_before -> $rss_after KiB" \
    test $((rss_after - rss_before)) -lt 65536

touch "$W/stop"
wait $fio_pid
fio_rc=$?
wait $iperf_pid
iperf_rc=$?
bg=""
ok "every fio run verified during the lies ($(cat "$W/fio.runs" 2>/dev/null) runs)" \
    sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' sh $fio_rc "$W/fio.fail"
ok "every iperf3 run completed during the lies ($(cat "$W/iperf.runs" 2>/dev/null) runs)" \
    sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' sh $iperf_rc "$W/iperf.fail"
ok "fio verifies once more after the lies" fio_run
ok "iperf3 g1 -> g2 once more after the lies" iperf_run
is "the driver domain is the same domain" "$(dompid drv)" "$drvpid"
is "bulkhead-drvdom is the same process ($daemon)" "$(drvdom)" "$daemon"
honest() { # the honest devices: Connected on both sides, no error node
    local g=$1 kind=$2 devid=$3 gid fe be
    gid=$(domid "$g")
    fe=/local/domain/$gid/device/$kind/$devid
    be=$(xenstore-read "$fe/backend") || return 1
    [ "$(xenstore-read "$fe/state")" = 4 ] && [ "$(xenstore-read "$be/state")" = 4 ] &&
        ! xenstore-read "$fe/error" 2>/dev/null && ! xenstore-read "$be/error" 2>/dev/null
}
ok "g1's vbd: Connected, no error node" honest g1 vbd 51712
ok "g1's vif: Connected, no error node" honest g1 vif 0
ok "g2's vif: Connected, no error node" honest g2 vif 0
exit $tap_failed
