#!/bin/bash
# restart.sh - hitless worker restart and upgrade, as a user sees them: a
# TCP stream from g1 to g2 (both vifs served by one driver domain) and fio's
# crc32c verify over g1's vbd run on while g1's vif and vbd workers are
# SIGKILLed three times each, upgraded by `bulkhead upgrade` (a new
# bulkhead-drvdom takes each device over from its keeper), refused by a
# binary of another kept-state layout (the old workers serve on), and the
# upgraded workers SIGKILLed too (their keepers fork their own again).  What
# g2 received has the md5 of what g1 sent; fio ends with no error; and a
# watch on both devices' backend and frontend directories saw no state
# change and no error node.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in fio python3 xenstore-watch xenstore-read; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install fio python3 xenstore-utils)"
done
COPY=""
sim_undo() { [ -z "$COPY" ] || rm -f "$COPY"; }
sim_begin rst
OTHER="$top/tests/bulkhead-drvdom-layout2"
NEW="$top/driverdom/bulkhead-drvdom"
plan 30

mkdir -p "$W/store" "$W/dom0"
truncate -s 64M "$W/store/a.img" "$W/dom0/b.img"
# Tunables in the config: bulkhead-drvdom's options at create and after an upgrade.
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\nbulkhead_net_poll_us = 40\nbulkhead_rx_stall_ms = 30000\n' \
    "$W/store" >"$W/drv.cfg"
cat >"$W/g1.cfg" <<CFG
name = "g1"
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=rw, target=$W/dom0/b.img" ]
vif = [ "mac=00:16:3e:00:01:01, backend=drv, bridge=br0, ip=10.9.2.1" ]
CFG
printf 'name = "g2"\nvif = [ "mac=00:16:3e:00:01:02, backend=drv, bridge=br0, ip=10.9.2.2" ]\n' >"$W/g2.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create g1 (a vif, a vbd and a vbd served by dom0) and g2 (a vif)" sh -c '"$1" create "$2" && "$1" create "$3"' \
    sh "$B" "$W/g1.cfg" "$W/g2.cfg"
"$B" exec g1 -- ip addr add 10.9.2.1/24 dev eth0
"$B" exec g2 -- ip addr add 10.9.2.2/24 dev eth0
ok "g1 pings g2" "$B" exec g1 -- ping -c 2 -W 3 10.9.2.2
uri=$(vbd_uri g1 xvda)
domid() { "$B" list --json | sed -n "s/.*\"domid\": \([0-9]*\), \"name\": \"$1\".*/\1/p"; }
drv=$(domid drv); g1=$(domid g1)
vbd_be=/local/domain/$drv/backend/vbd/$g1/51712
vif_be=/local/domain/$drv/backend/vif/$g1/0
vbd_fe=/local/domain/$g1/device/vbd/51712
vif_fe=/local/domain/$g1/device/vif/0
is "both of g1's devices Connected, both ends" \
    "$(for p in $vbd_be $vif_be $vbd_fe $vif_fe; do xenstore-read $p/state; done | tr '\n' ' ')" "4 4 4 4 "

# Every change under the four directories from now on, one path a line.
for p in $vbd_be $vif_be $vbd_fe $vif_fe; do
    xenstore-watch "$p" >>"$W/watch.log" 2>&1 &
    bg="$bg $!"
done

# The TCP stream: g1 sends until told to stop, then both ends say what they saw.
stream_start g1 g2 10.9.2.2 5202
# fio's crc32c verify over the vbd, one 16 MiB run after another until told to stop.
"$B" exec g1 -- sh -c 'n=0; while [ ! -e /tmp/stop-fio ]; do
    fio --output-format=terse --terse-version=3 --ioengine=nbd --uri="$1" --rw=randwrite \
        --bs=4k --iodepth=16 --size=16M --verify=crc32c --verify_fatal=1 --do_verify=1 \
        --name=v >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; exit 1; }; n=$((n + 1)); done
    echo "fio runs: $n"' sh "$uri" >"$W/fio.out" 2>&1 &
fio_pid=$!

worker() { # vbd|vif: the pid of g1's worker, as dom0 sees it
    if [ "$1" = vbd ]; then "$B" block-list g1 --json | grep '"vdev": "xvda"'
    elif [ "$1" = dom0vbd ]; then "$B" block-list g1 --json | grep '"vdev": "xvdb"'
    else "$B" network-list g1 --json; fi |
        sed -n 's/.*"worker_pid": \([0-9-]*\).*/\1/p'
}
# Waits (a bound against a hang only) for g1's $1 worker to be another than $2.
new_worker() {
    local p
    for _ in $(seq 300); do
        p=$(worker "$1")
        [ -n "$p" ] && [ "$p" != "-1" ] && [ "$p" != "$2" ] && kill -0 "$p" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "g1's $1 worker is still '$p' (was $2)"
    return 1
}
kill_worker() { # vbd|vif: SIGKILL it, and wait for the keeper's next
    local p
    p=$(worker "$1")
    [ -n "$p" ] && [ "$p" != "-1" ] || { echo "no $1 worker"; return 1; }
    kill -KILL "$p" && new_worker "$1" "$p"
}
# A worker's command line is its bulkhead-drvdom's (it forks, it does not exec).
opts() { tr '\0' ' ' </proc/"$(worker "$1")"/cmdline | grep -o -e '--net-poll-us 40 --rx-stall-ms 30000'; }
is "the driver domain's bulkhead-drvdom runs with the config's tunables" "$(opts vif)" \
    "--net-poll-us 40 --rx-stall-ms 30000"
sleep 2 # the workloads under way
for i in 1 2 3; do
    ok "SIGKILL g1's vbd worker ($i of 3): its keeper starts another" kill_worker vbd
    ok "SIGKILL g1's vif worker ($i of 3): its keeper starts another" kill_worker vif
    sleep 1
done
before="$(worker vbd) $(worker vif)"
"$B" upgrade drv --binary "$OTHER" >"$W/refused.out" 2>&1
rc=$?
is "a binary of another kept-state layout refuses the upgrade (exit status)" "$rc" "1"
ok "... with one line per device saying why" \
    test "$(grep -c 'refused: kept-state layout 1 .* is not this binary.s 2' "$W/refused.out")" -eq 3
is "... and the old workers serve on" "$(worker vbd) $(worker vif)" "$before"
# The new binary: a copy, so that the workers' /proc/PID/exe tells them apart; in
# the build tree, which the driver domain sees (its /tmp is its own).
COPY="$top/tests/restart-new-drvdom.$$"
cp "$NEW" "$COPY"
ok "bulkhead upgrade: a new bulkhead-drvdom takes every device over" \
    sh -c '"$1" upgrade drv --binary "$2" | grep -x "3 of 3 devices taken over"' sh "$B" \
    "$COPY"
ok "... g1's vbd served by a new worker" new_worker vbd "${before% *}"
ok "... g1's vif served by a new worker" new_worker vif "${before#* }"
is "... which keeps the config's tunables" "$(opts vif)" "--net-poll-us 40 --rx-stall-ms 30000"
is "... both running the new binary" \
    "$(readlink /proc/$(worker vbd)/exe) $(readlink /proc/$(worker vif)/exe)" \
    "$COPY $COPY"
sleep 1
# Upgraded workers are handed over in turn (they answer their keeper with EXIT).
up1="$(worker vbd) $(worker vif)"
again() {
    "$B" upgrade drv --binary "$COPY" | grep -x "3 of 3 devices taken over" &&
        new_worker vbd "${up1% *}" && new_worker vif "${up1#* }"
}
ok "a second upgrade takes the devices over from the upgraded workers" again
sleep 1
ok "SIGKILL the upgraded vbd worker: its keeper forks its own" kill_worker vbd
ok "SIGKILL the upgraded vif worker: its keeper forks its own" kill_worker vif
sleep 1

# dom0's own bulkhead-drvdom (devices with no backend=) is upgraded the same way.
d0=$(worker dom0vbd)
ok "bulkhead upgrade 0: dom0's device daemon's one device taken over" \
    sh -c '"$1" upgrade 0 --binary "$2" | grep -x "1 of 1 device taken over"' sh "$B" "$COPY"
dom0_served() {
    new_worker dom0vbd "$d0" && "$B" exec g1 -- fio --ioengine=nbd --uri="$(vbd_uri g1 xvdb)" \
        --rw=randwrite --bs=64k --iodepth=8 --size=8M --verify=crc32c --verify_fatal=1 --name=d0
}
ok "... served by a new worker, which fio's verify goes through" dom0_served

"$B" exec g1 -- touch /tmp/stop-fio
wait $fio_pid
rc=$?
ok "fio's crc32c verify ran through it all with no error ($(tail -1 "$W/fio.out"))" test "$rc" -eq 0
stream_stop g1 5202
ok "the TCP stream g1 -> g2: same length and md5 on both ends ($(grep -x '[0-9]* [0-9a-f]\{32\}' "$W/stream-5202.send" | cut -d' ' -f1) bytes)" \
    stream_same 5202
kill $bg 2>/dev/null
wait $bg 2>/dev/null
bg=""
is "the four watches were set (each fired once for its directory)" \
    "$(grep -cxE "$vbd_be|$vif_be|$vbd_fe|$vif_fe" "$W/watch.log")" "4"
is "the watches saw no state or error node change on either end" \
    "$(grep -E '/(state|error)$' "$W/watch.log")" ""
is "both devices still Connected, both ends, no error node" \
    "$(for p in $vbd_be $vif_be $vbd_fe $vif_fe; do xenstore-read $p/state; xenstore-read $p/error 2>/dev/null; done | tr '\n' ' ')" \
    "4 4 4 4 "
exit $tap_failed
