#!/bin/bash
# hotplug.sh - block-attach, block-detach, network-attach, network-detach on
# a running guest, as xl has them, while the guest does I/O on another
# device: fio verifies disk A (through its NBD export) throughout; disk B is
# attached, written and read back through its own export, and detached; a
# vif is attached, pinged through the driver domain's uplink, and detached.
# The guest's runtime picks up each new device and drops each removed one;
# disk A's fio must end without error.  Bad attaches are refused in one
# line and change nothing.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in fio ping nbdcopy; do
    command -v $p >/dev/null || skip_all "needs $p (apt-get install fio iputils-ping libnbd-bin)"
done
. "${srcdir:-.}/tests/dev/lib.sh"
fiopid=
sim_undo() { [ -z "$fiopid" ] || kill "$fiopid" 2>/dev/null; }
sim_begin hp
stop=$$
plan 37

mkdir -p "$W/store"
truncate -s 256M "$W/store/a.img"
truncate -s 16M "$W/store/b.img"
printf 'name = "drv"\ndriver_domain = 1\nmemory = 256\nbulkhead_storage = [ "%s" ]\nbulkhead_uplink = "xenbr0"\n' \
    "$W/store" >"$W/drv.cfg"
printf 'name = "g"\nmemory = 256\nvcpus = 2\ndisk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=%s" ]\n' \
    "$W/store/a.img" >"$W/g.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create the guest with disk A only" "$B" create "$W/g.cfg"
ua=$(vbd_uri g xvda)
ok "disk A has an NBD export" test -n "$ua"
"$B" exec g -- rm -f "/tmp/hp-stop-$stop"

# fio verify on disk A for as long as the hotplugs take: it writes, then reads
# back every block it wrote; loops until the work below is done (a marker file).
"$B" exec g -- sh -c 'i=0; while [ ! -e "$2" ] || [ $i -eq 0 ]; do i=$((i+1));
    fio --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth=8 --size=64M \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --name=a --output="/tmp/fio-a.$i" || exit 1;
    done; echo "$i rounds"' sh "$ua" "/tmp/hp-stop-$stop" >"$W/fio-a.out" 2>&1 &
fiopid=$!

# Disk B: attached with xl's syntax (the spec in several arguments), used, detached.
ok "block-attach disk B while A is busy" "$B" block-attach g "format=raw" "vdev=xvdb" \
    "access=rw" "backend=drv" "target=$W/store/b.img"
is "block-list shows both disks Connected" \
    "$("$B" block-list g --json | grep -o '"state": 4' | wc -l)" "2"
ub=$(vbd_uri g xvdb)
ok "disk B has an NBD export in the guest" test -n "$ub"
head -c 4M /dev/urandom >"$W/pattern"
ok "write a pattern to disk B through its export" \
    sh -c '"$1" exec g -- nbdcopy - "$2" <"$3"' sh "$B" "$ub" "$W/pattern"
ok "read it back through the export: the same bytes" \
    sh -c '"$1" exec g -- nbdcopy "$2" - | head -c 4194304 | cmp - "$3"' sh "$B" "$ub" "$W/pattern"
ok "... and the image holds it" sh -c 'head -c 4194304 "$1" | cmp - "$2"' sh "$W/store/b.img" "$W/pattern"
out=$("$B" block-attach g "format=raw, vdev=xvdb, backend=drv, target=$W/store/b.img" 2>&1)
is "attaching xvdb again is refused in one line naming the fix" \
    "$(echo "$out" | wc -l)/$(echo "$out" | grep -c 'block-detach g xvdb')" "1/1"
ok "nbdinfo reaches disk B's export before its detach" "$B" exec g -- nbdinfo --size "$ub"
ok "block-detach disk B" "$B" block-detach g xvdb
is "block-list shows disk A only" "$("$B" block-list g --json | grep -o '"vdev": "[a-z]*"' | tr '\n' ' ')" '"vdev": "xvda" '
# The device's nodes go with the detach; the guest's own note of its export
# (data/bulkhead, written by the guest) goes when its runtime drops the
# device, a moment later: waited for.
for i in $(seq 100); do
    left=$(xenstore-ls -f /local/domain 2>/dev/null | grep '51728')
    [ -z "$left" ] && break
    case "$left" in *device/vbd/51728*|*backend/vbd/*/51728*) break ;; esac
    sleep 0.1
done
[ -z "$left" ] || echo "$left" | sed 's/^/# left: /'
is "disk B's nodes are gone: backend, frontend, the toolstack's copy" \
    "$(printf '%s' "$left" | grep -c '51728')/$(xenstore-read /libxl/$("$B" list | awk '$1=="g"{print $2}')/device/vbd/51728/backend 2>/dev/null | wc -l)" "0/0"
gone=1
for i in $(seq 100); do
    "$B" exec g -- nbdinfo --size "$ub" >/dev/null 2>&1 || { gone=0; break; }
    sleep 0.1
done
is "disk B's NBD export went with it" "$gone" "0"
ok "attach disk B again: the same vdev, after its detach" "$B" block-attach g \
    "format=raw, vdev=xvdb, access=ro, backend=drv, target=$W/store/b.img"
ok "... read-only, and it reads back the pattern" \
    sh -c '"$1" exec g -- nbdcopy "$2" - | head -c 4194304 | cmp - "$3"' sh "$B" "$(vbd_uri g xvdb)" "$W/pattern"
ok "block-detach it again" "$B" block-detach g xvdb

# A vif, hotplugged: eth0 appears in the guest, pings dom0 through the uplink, goes away.
ok "network-attach a vif (backend drv)" "$B" network-attach g "mac=00:16:3e:00:77:01" "backend=drv" "bridge=xenbr0"
is "network-list shows it Connected, devid 0" "$("$B" network-list g --json | grep -o '"devid": 0\|"state": 4' | tr '\n' ' ')" '"devid": 0 "state": 4 '
up=0
for i in $(seq 100); do "$B" exec g -- ip link show eth0 >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
is "the guest has eth0" "$up" "1"
"$B" exec g -- ip addr add 10.77.0.2/24 dev eth0
nsenter --net="$BULKHEAD_DOM0_NETNS" ip addr add 10.77.0.1/24 dev up-drv
ok "the guest pings dom0 through it" "$B" exec g -- ping -c 3 -W 3 10.77.0.1
out=$("$B" network-attach g "mac=00:16:3e:00:77:01, backend=drv" 2>&1)
is "a second vif with the same mac is refused in one line" \
    "$(echo "$out" | wc -l)/$(echo "$out" | grep -c 'has the mac 00:16:3e:00:77:01 already')" "1/1"
ok "network-detach it by its mac" "$B" network-detach g 00:16:3e:00:77:01
gone=0
for i in $(seq 100); do "$B" exec g -- ip link show eth0 >/dev/null 2>&1 || { gone=1; break; }; sleep 0.1; done
is "eth0 went away in the guest" "$gone" "1"
is "network-list is empty" "$("$B" network-list g --json | grep -c devid)" "0"

# Bad attaches change nothing.
out=$("$B" block-attach g "format=raw, vdev=xvdc, backend=drv, target=$W/store/missing.img" 2>&1)
is "a missing target is refused in one line naming the fix, nothing added" \
    "$(echo "$out" | wc -l)/$(echo "$out" | grep -c 'create the image')/$("$B" block-list g --json | grep -c vdev)" "1/1/1"

# Bad guests, xl and libvirt XML, refused by a real create: no domain, node or file left.
cat >"$W/bad-outside.xml" <<XML
<domain type='xen'>
  <name>bad1</name>
  <memory unit='MiB'>128</memory>
  <os><type>linux</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='$W/b-outside.img'/>
      <target dev='xvda'/>
      <backenddomain name='drv'/>
    </disk>
  </devices>
</domain>
XML
truncate -s 1M "$W/b-outside.img"
sed -e 's/bad1/bad2/' -e "s|$W/b-outside.img|$W/store/missing.img|" "$W/bad-outside.xml" >"$W/bad-missing.xml"
printf 'name = "bad3"\ndisk = [ "format=raw, vdev=xvda, backend=nosuch, target=%s" ]\n' "$W/store/a.img" >"$W/bad-backend.cfg"
printf 'name = "bad4"\nvif = [ "mac=00:16:3e:00:01, backend=drv" ]\n' >"$W/bad-mac.cfg"
before="$("$B" list | awk 'NR>1{print $1}' | sort | tr '\n' ' ')/$(xenstore-ls /libxl | wc -l)/$(ls "$BULKHEAD_STATE_DIR"/console | wc -l)"
for f in bad-outside.xml bad-missing.xml bad-backend.cfg bad-mac.cfg; do
    out=$("$B" create "$W/$f" 2>&1)
    is "create $f is refused in one line" "$(echo "$out" | wc -l)/$(echo "$out" | grep -c "^bulkhead: $W/$f")" "1/1"
done
is "... and none left a domain, a node or a file" \
    "$("$B" list | awk 'NR>1{print $1}' | sort | tr '\n' ' ')/$(xenstore-ls /libxl | wc -l)/$(ls "$BULKHEAD_STATE_DIR"/console | wc -l)" "$before"

"$B" exec g -- touch /tmp/hp-stop-$stop
wait $fiopid
is "disk A's fio, run throughout, ends without error" "$?" "0"
sed 's/^/# /' "$W/fio-a.out"
ok "... after at least one full write-and-verify round" grep -q '^[1-9][0-9]* rounds$' "$W/fio-a.out"
fiopid=
ok "destroy the guest" "$B" destroy g
ok "down" "$B" down
exit $tap_failed
