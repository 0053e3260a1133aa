#!/bin/bash
# rehome.sh - a driver domain restarted under a working guest (bulkhead
# restart, twice): fio with crc32c verify on a vbd the driver domain serves
# and a TCP stream (md5 on both ends) between two guests over vifs it
# serves keep running through both restarts; fio ends with no error, the
# md5s match, the guest's dom0-served disk is untouched, and block-list /
# network-list name the new backend domain.  Restarting dom0 or a guest is
# refused with one line and changes nothing.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in fio python3; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install fio python3)"
done
sim_begin rehome
plan 22

mkdir -p "$W/store" "$W/dom0"
truncate -s 64M "$W/store/a.img"
head -c 8M /dev/urandom >"$W/dom0/b.img"
b_md5=$(md5sum <"$W/dom0/b.img")
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\nbulkhead_uplink = "xenbr0"\n' \
    "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=rw, target=$W/dom0/b.img" ]
vif = [ "mac=00:16:3e:00:00:11, bridge=xenbr0, backend=drv, ip=10.9.0.11" ]
CFG
printf 'name = "h"\nvif = [ "mac=00:16:3e:00:00:12, bridge=xenbr0, backend=drv, ip=10.9.0.12" ]\n' \
    >"$W/h.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create guest g (vbd and vif on drv, a vbd on dom0)" "$B" create "$W/g.cfg"
ok "create guest h (a vif on drv)" "$B" create "$W/h.cfg"
domid() { "$B" list --json | sed -n "s/.*\"domid\": \\([0-9]*\\), \"name\": \"$1\".*/\\1/p"; }
drv0=$(domid drv)
gid=$(domid g)

# Refusals: one line each, and nothing changes.
fails "restart dom0 is refused" "$B" restart Domain-0
is "... with one line" "$("$B" restart 0 2>&1 | wc -l)" "1"
fails "restart a guest is refused" "$B" restart g
is "... saying why, in one line" "$("$B" restart g 2>&1 | grep -c 'not a driver domain')" "1"
fails "restart a domain that does not exist is refused" "$B" restart nosuch
is "... and the driver domain kept its id" "$(domid drv)" "$drv0"

ua=$(vbd_uri g xvda)
ub=$(vbd_uri g xvdb)
"$B" exec g -- ip addr add 10.9.0.11/24 dev eth0
"$B" exec h -- ip addr add 10.9.0.12/24 dev eth0
ok "g reaches h over the driver domain's bridge" "$B" exec g -- ping -c 2 -W 3 10.9.0.12

# The workloads run until told to stop (a file in the guest's own /tmp):
# whatever a restart costs them in time, both restarts happen while they run.
"$B" exec g -- sh -c 'while [ ! -e /tmp/stop ]; do echo pass; fio --ioengine=nbd --uri="$1" \
    --rw=randwrite --bs=16k --iodepth=16 --size=16M --verify=crc32c --verify_fatal=1 \
    --do_verify=1 --name=v >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; exit 1; }; done' sh "$ua" \
    >"$W/fio.log" 2>&1 &
fio_pid=$!
stream_start g h 10.9.0.12 5301
for i in $(seq 300); do grep -q pass "$W/fio.log" && break; sleep 0.1; done

ok "restart drv under the workloads" "$B" restart drv
drv1=$(domid drv)
ok "... it has a new id ($drv0 -> $drv1)" test -n "$drv1" -a "$drv1" != "$drv0"
ok "restart drv again" "$B" restart drv
drv2=$(domid drv)
ok "... and again a new id ($drv1 -> $drv2)" test -n "$drv2" -a "$drv2" != "$drv1"

"$B" exec g -- touch /tmp/stop
wait $fio_pid
ok "fio with crc32c verify ran through both restarts with no error" test $? -eq 0
stream_stop g 5301
ok "the TCP stream g -> h survived: same length and md5 on both ends" stream_same 5301
ok "... and carried data" grep -qx '[1-9][0-9]* [0-9a-f]\{32\}' "$W/stream-5301.recv"

is "block-list: xvda is Connected to the new drv, xvdb still to dom0" \
    "$("$B" block-list g --json | grep -o '"vdev": "xvd[ab]", "devid": [0-9]*, "backend": "[^"]*", "state": 4, "backend_state": 4\|"backend_id": [0-9]*' | tr '\n' ';')" \
    "\"vdev\": \"xvda\", \"devid\": 51712, \"backend\": \"drv\", \"state\": 4, \"backend_state\": 4;\"backend_id\": $drv2;\"vdev\": \"xvdb\", \"devid\": 51728, \"backend\": \"Domain-0\", \"state\": 4, \"backend_state\": 4;\"backend_id\": 0;"
is "network-list: both vifs Connected to the new drv" \
    "$(for d in g h; do "$B" network-list $d --json; done | grep -o '"state": 4, "backend_state": 4\|"backend_id": [0-9]*' | tr '\n' ';')" \
    "\"state\": 4, \"backend_state\": 4;\"backend_id\": $drv2;\"state\": 4, \"backend_state\": 4;\"backend_id\": $drv2;"
is "the dom0-served disk reads back as it was written" \
    "$("$B" exec g -- nbdcopy "$ub" - | md5sum)" "$b_md5"
is "nothing is left of the old driver domains in XenStore" \
    "$(xenstore-list /local/domain | grep -cx "$drv0\|$drv1")" "0"
