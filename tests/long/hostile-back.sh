#!/bin/bash
# hostile-back.sh - a hostile backend against the guest's blkfront and
# netfront (trusted=0, as for any driver domain), while an honest driver
# domain serves the same guest a vbd that fio verifies over and over.  The
# evil driver domain runs tests/long/liar in bulkhead-drvdom's place
# (BULKHEAD_DRVDOM): it connects five vbds and three vifs honestly, then
# answers with lies (see liar.c): a duplicate id, an id never issued, a
# status no blkif has, rsp_prod a ring and one past, an event storm before
# an honest answer; an RX response longer than its page, a TX response
# given twice, an event storm.  Each device whose backend lied about ids,
# lengths or indices is lost in the guest (Closing, an error node); a bad
# status fails its I/O or the device; after a storm the device still works.
# bulkhead-guest is the same process at the end, its honest vbd Connected
# with no error, and every fio run verified.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
sim_begin hb
LIAR="$top/tests/long/liar"
plan 19

mkdir -p "$W/store"
truncate -s 64M "$W/store/g.img"
for n in 0 1 2 3 4; do truncate -s 8M "$W/store/e$n.img"; done
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/drv.cfg"
printf 'name = "evilback"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/evil.cfg"
e() { echo "\"format=raw, vdev=$1, access=rw, backend=evilback, untrusted, target=$W/store/$2.img\""; }
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/g.img",
         $(e xvdb e0), $(e xvdc e1), $(e xvdd e2), $(e xvde e3), $(e xvdf e4) ]
vif = [ "mac=00:16:3e:00:03:00, backend=evilback", "mac=00:16:3e:00:03:01, backend=evilback",
        "mac=00:16:3e:00:03:02, backend=evilback" ]
CFG

ok "up" "$B" up
eval "$("$B" env)"
ok "create the honest driver domain" "$B" create "$W/drv.cfg"
ok "create the lying driver domain (the liar as its first program)" \
    env BULKHEAD_DRVDOM="$LIAR" "$B" create "$W/evil.cfg"
ok "create the guest: its 6 vbds and 3 vifs connect" "$B" create "$W/g.cfg"
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
gpid=$("$B" list --json | sed -n 's/.*"name": "g".*"pid": \([0-9]*\).*/\1/p')
guid=$(stat -c %u /proc/"$gpid")
gworker() { ps -o pid=,comm= -u "$guid" | awk '$2 == "bulkhead-guest" {print $1}'; }
worker=$(gworker)
is "trusted=0 on the lying backend's devices" \
    "$(xenstore-read /local/domain/$gid/device/vbd/51728/trusted)$(xenstore-read /local/domain/$gid/device/vif/0/trusted)" "00"
ua=$(vbd_uri g xvda)

fio_run() {
    "$B" exec g -- fio --ioengine=nbd --uri="$ua" --name=v --rw=randrw --bs=4k --iodepth=16 \
        --size=16M --verify=crc32c --verify_fatal=1 --do_verify=1 >"$W/fio.out" 2>&1
}
(
    n=0
    while :; do
        fio_run || { echo "run $n failed" >"$W/fio.fail"; cat "$W/fio.out" >>"$W/fio.fail"; exit 1; }
        n=$((n + 1))
        echo $n >"$W/fio.runs"
        [ -e "$W/stop" ] && exit 0
    done
) &
fio_pid=$!
bg=$fio_pid
wait_for() { # a bound against a hang only
    local i
    for i in $(seq 240); do eval "$1" && return 0; sleep 0.25; done
    echo "still not: $1"; return 1
}
ok "fio verified the honest vbd once" wait_for '[ -s "$W/fio.runs" ] || [ -e "$W/fio.fail" ]'

# I/O on each lying vbd: whatever it returns, it returns.
read_vbd() { # vdev
    local u
    u=$(vbd_uri g "$1")
    [ -n "$u" ] || { echo "no URI for $1"; return 0; }
    timeout 120 "$B" exec g -- nbdcopy "$u" - >/dev/null 2>"$W/read.$1"
    echo $? >"$W/read.$1.rc"
}
for v in xvdb xvdc xvdd xvde xvdf; do read_vbd $v; done
"$B" exec g -- sh -c 'ip link set eth1 up && ip addr add 10.98.0.1/24 dev eth1 && ping -c 2 -W 1 10.98.0.2' >/dev/null 2>&1

lost() { # kind devid: Closing or Closed in the guest, with an error node
    local fe=/local/domain/$gid/device/$1/$2
    wait_for "st=\$(xenstore-read $fe/state); [ \"\$st\" = 5 ] || [ \"\$st\" = 6 ]" || return 1
    echo "error node: $(xenstore-read "$fe/error" 2>&1)"
    xenstore-read "$fe/error" >/dev/null
}
ok "vbd 51728 (xvdb), a duplicate id: lost in the guest" lost vbd 51728
ok "vbd 51744 (xvdc), an id never issued: lost in the guest" lost vbd 51744
badstatus() {
    [ "$(cat "$W/read.xvdd.rc")" != 0 ] && return 0
    lost vbd 51760
}
ok "vbd 51760 (xvdd), an impossible status: its read failed" badstatus
ok "vbd 51776 (xvde), rsp_prod a ring and one past: lost in the guest" lost vbd 51776
is "vbd 51792 (xvdf), after an event storm: read whole" "$(cat "$W/read.xvdf.rc")" "0"
is "... and still Connected" "$(xenstore-read /local/domain/$gid/device/vbd/51792/state)" "4"
ok "vif 0, an RX response longer than its page: lost in the guest" lost vif 0
ok "vif 1, a TX response given twice: lost in the guest" lost vif 1
is "vif 2, after an event storm: still Connected" "$(xenstore-read /local/domain/$gid/device/vif/2/state)" "4"

touch "$W/stop"
wait $fio_pid
fio_rc=$?
bg=""
ok "every fio run on the honest vbd verified ($(cat "$W/fio.runs" 2>/dev/null) runs)" \
    sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' sh $fio_rc "$W/fio.fail"
ok "fio verifies the honest vbd once more" fio_run
is "bulkhead-guest is the same process" "$(gworker)" "$worker"
fe=/local/domain/$gid/device/vbd/51712
is "the honest vbd: Connected, no error node" \
    "$(xenstore-read $fe/state)$(xenstore-read $fe/error 2>/dev/null)" "4"
exit $tap_failed
