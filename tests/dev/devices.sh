#!/bin/bash
# devices.sh - a driver domain and a guest with disks and vifs, made from xl
# configs as a user makes them: both sides Connected, block-list and
# network-list, libxl's layout and permissions, dom0's network, bad
# configs refused in one line with nothing left, destroy cleaning up.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
sim_begin dev
plan 49

mkdir -p "$W/store" "$W/other"
truncate -s 16M "$W/store/a.img" "$W/store/b.img" "$W/other/x.img"
cat >"$W/drv.cfg" <<CFG
name = "drv"
driver_domain = 1
memory = 256
bulkhead_storage = [ "$W/store" ]
bulkhead_uplink = "xenbr0"
CFG
cat >"$W/g.cfg" <<CFG
name = "g"
memory = 256
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=ro, backend=drv, target=$W/store/b.img",
         "format=raw, vdev=xvdc, access=rw, target=$W/other/x.img" ]
vif = [ "mac=00:16:3e:00:00:01, bridge=xenbr0, backend=drv", "mac=00:16:3e:00:00:02, bridge=br0" ]
bulkhead_init = "sleep 100000"
CFG
sed -e 's/^name = "g"/name = "bad"/' -e "s|$W/store/a.img|$W/other/x.img|" "$W/g.cfg" >"$W/outside.cfg"
sed -e 's/^name = "g"/name = "lost"/' -e 's/backend=drv/backend=nosuch/' "$W/g.cfg" >"$W/nosuch.cfg"

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
# A dry run beside the running driver domain (id 1, create -n's old
# default) plans the guest under an id that no domain holds.
did=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "drv".*/\1/p')
pl=$("$B" create -n "$W/g.cfg" 2>&1 | sed -n 's|.*"path": "/libxl/\([0-9]*\)/device/vbd/51712/backend", "value": "/local/domain/\([0-9]*\)/backend/vbd/\1/51712".*|\1 \2|p')
is "create -n with the driver domain up: the guest's plan takes a free id, its disk the driver domain's" \
   "$([ -n "$pl" ] && [ "${pl% *}" != "$did" ] && ! "$B" list --json | grep -q "\"domid\": ${pl% *},"; echo "$? ${pl#* }")" "0 $did"
out=$("$B" create "$W/g.cfg" 2>&1)
is "create returns with every device connected" "$(echo "$out" | tail -1 | sed 's/(id [0-9]*)/(id N)/')" "Created domain g (id N), 5 devices connected"
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
did=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "drv".*/\1/p')
dpid=$("$B" list --json | sed -n 's/.*"name": "drv", "state": "running", "pid": \([0-9]*\).*/\1/p')
duid=$(stat -c %u /proc/"$dpid")

bl=$("$B" block-list g --json)
is "block-list --json: three disks, Connected on both sides" \
   "$(echo "$bl" | grep -o '"vdev": "[a-z]*", "devid": [0-9]*, "backend": "[^"]*", "state": [0-9], "backend_state": [0-9]' | tr '\n' ';')" \
   '"vdev": "xvda", "devid": 51712, "backend": "drv", "state": 4, "backend_state": 4;"vdev": "xvdb", "devid": 51728, "backend": "drv", "state": 4, "backend_state": 4;"vdev": "xvdc", "devid": 51744, "backend": "Domain-0", "state": 4, "backend_state": 4;'
wpid=$(echo "$bl" | sed -n 's/.*"vdev": "xvda".*"worker_pid": \([0-9-]*\).*/\1/p')
is "... worker_pid is the serving worker, as dom0 sees it" "$(cat /proc/"$wpid"/comm 2>&1)" "bhw-$gid-51712"
wpid0=$(echo "$bl" | sed -n 's/.*"vdev": "xvdc".*"worker_pid": \([0-9-]*\).*/\1/p')
is "... also for a disk dom0 serves" "$(cat /proc/"$wpid0"/comm 2>&1)" "bhw-$gid-51744"
is "network-list --json: the vif, Connected, with its mac" \
   "$("$B" network-list g --json | grep -o '"backend": "drv", "state": 4, "backend_state": 4, "worker_pid": [0-9]*, "mac": "00:16:3e:00:00:01"' | sed 's/"worker_pid": [0-9]*/W/')" \
   '"backend": "drv", "state": 4, "backend_state": 4, W, "mac": "00:16:3e:00:00:01"'
is "block-list's table names the backends" "$("$B" block-list g | awk 'NR>1{print $1, $2, $3, $4}' | tr '\n' ';')" "xvda drv 4 4;xvdb drv 4 4;xvdc Domain-0 4 4;"

# The layout, as libxl writes it, and ours on top.
be=/local/domain/$did/backend/vbd/$gid/51712
fe=/local/domain/$gid/device/vbd/51712
is "backend params is the target" "$(xenstore-read $be/params)" "$W/store/a.img"
is "a read-only disk's mode is r" "$(xenstore-read /local/domain/$did/backend/vbd/$gid/51728/mode)" "r"
is "the backend directory: the driver domain's, readable by the guest" "$(xenstore-ls -p $be | grep '^params ' | sed 's/.*(//')" "n$did,r$gid)"
is "the frontend directory: the guest's, readable by the driver domain" "$(xenstore-ls -p $fe | grep '^virtual-device ' | sed 's/.*(//')" "n$gid,r$did)"
is "trusted=0 when a driver domain serves" "$(xenstore-read $fe/trusted)" "0"
is "trusted=1 when dom0 serves" "$(xenstore-read /local/domain/$gid/device/vbd/51744/trusted)" "1"
is "the toolstack keeps its own copy" "$(xenstore-read /libxl/$gid/device/vbd/51712/backend)" "$be"
is "the disk's size, from the fd dom0's broker handed the driver domain" "$(xenstore-read $be/sectors)" "32768"
is "a read-only disk says so (VDISK_READONLY)" "$(xenstore-read /local/domain/$did/backend/vbd/$gid/51728/info)" "4"
is "a file dom0 serves is a qdisk, as libxl makes it: aio:TARGET" "$(xenstore-read /local/domain/0/backend/qdisk/$gid/51744/params)" "aio:$W/other/x.img"
is "a disk dom0 serves: its size too" "$(xenstore-read /local/domain/0/backend/qdisk/$gid/51744/sectors)" "32768"
is "hotplug-status written by the driver domain itself" "$(xenstore-read $be/hotplug-status)" "connected"
fails "the guest cannot write its backend's state" "$B" exec g -- xenstore-write $be/state 1
fails "the guest cannot read the toolstack's copy" "$B" exec g -- xenstore-read /libxl/$gid/device/vbd/51712/backend

# The network: the uplink bridge in the driver domain, its other end in dom0's namespace.
is "the driver domain's bridge holds the uplink" "$(nsenter --net=/proc/$dpid/ns/net ip -o link show master xenbr0 | awk '{print $2}' | sed 's/@.*//' | grep -c '^uplink$')" "1"
is "the vif's TAP, made by the broker in the driver domain, is on its bridge" "$(nsenter --net=/proc/$dpid/ns/net ip -o link show master xenbr0 | awk '{print $2}' | sed 's/@.*//; s/:$//' | sort | tr '\n' ' ')" "uplink vif$gid.0 "
is "... with vnet headers and a queue per guest vcpu" "$(nsenter --net=/proc/$dpid/ns/net ip -d link show vif$gid.0 | grep -o 'vnet_hdr on multi_queue numqueues [0-9]*')" "vnet_hdr on multi_queue numqueues 2"
is "the guest's eth0 and eth1, made by the broker in the guest's namespace" "$("$B" exec g -- ip -o link | awk '{print $2}' | sed 's/@.*//; s/:$//' | sort | tr '\n' ' ')" "eth0 eth1 lo "
is "... with the macs of its vifs" "$("$B" exec g -- ip -o link | grep -o 'eth[01]: .*link/ether [0-9a-f:]*' | sed 's/: .*link\/ether / /' | sort | tr '\n' ' ')" "eth0 00:16:3e:00:00:01 eth1 00:16:3e:00:00:02 "
is "a vif dom0 serves: its TAP on its bridge in dom0's namespace" "$(nsenter --net="$BULKHEAD_DOM0_NETNS" ip -o link show master br0 | awk '{print $2}' | sed 's/@.*//; s/:$//')" "vif$gid.1"
is "dom0's end is up, in dom0's namespace" "$(nsenter --net="$BULKHEAD_DOM0_NETNS" ip -br link show up-drv | awk '{print $2}')" "UP"
fails "... and not in the host's" ip link show up-drv

# Bad configs: one line naming the fix, nothing made.
out=$("$B" create "$W/outside.cfg" 2>&1)
is "a target outside the driver domain's storage is refused in one line" "$(echo "$out" | wc -l) $(echo "$out" | grep -c 'bulkhead_storage')" "1 1"
out=$("$B" create "$W/nosuch.cfg" 2>&1)
is "an unknown backend domain is refused in one line naming the fix" "$(echo "$out" | wc -l) $(echo "$out" | grep -c 'no domain nosuch: create the driver domain first')" "1 1"
is "... and neither left a domain" "$("$B" list | awk 'NR>1{print $1}' | sort | tr '\n' ' ')" "Domain-0 drv g "

# A backend that never answers: create gives up, naming the device and its states.
printf 'name = "mute"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/store" >"$W/mute-drv.cfg"
sed -e 's/^name = "g"/name = "mute-guest"/' -e 's/backend=drv/backend=mute/g' "$W/g.cfg" >"$W/mute.cfg"
BULKHEAD_DRVDOM=${abs_top_builddir:-$PWD}/frontend/common/bulkhead-guest \
    ok "a driver domain whose program serves nothing" "$B" create "$W/mute-drv.cfg"
out=$(BULKHEAD_CONNECT_TIMEOUT=2 "$B" create "$W/mute.cfg" 2>&1)
is "a backend that never answers: create fails after its timeout, in one line" "$(echo "$out" | wc -l)" "1"
is "... naming each device and its states" "$(echo "$out" | grep -o 'xvda (vbd 51712, backend mute): frontend [A-Za-z]*, backend [A-Za-z]*')" "xvda (vbd 51712, backend mute): frontend Initialising, backend Initialising"
is "... and leaves no domain behind" "$("$B" list | awk 'NR>1{print $1}' | grep -c '^mute-guest\|^mute$' )" "1"

# Storage and targets named through a symlink: what reaches the broker is the real path.
mkdir -p "$W/real" && ln -s "$W/real" "$W/via" && truncate -s 1M "$W/real/s.img"
printf 'name = "drv2"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\n' "$W/via" >"$W/drv2.cfg"
printf 'name = "g2"\ndisk = [ "format=raw, vdev=xvda, backend=drv2, target=%s" ]\n' "$W/via/s.img" >"$W/g2.cfg"
ok "a driver domain whose storage is a symlink" "$B" create "$W/drv2.cfg"
ok "... serves a disk named through it" "$B" create "$W/g2.cfg"
ok "destroy them" sh -c '"$1" destroy g2 && "$1" destroy drv2' sh "$B"

# destroy: devices closed and gone, workers gone.
ok "destroy the guest" "$B" destroy g
is "the backends are gone" "$(xenstore-list /local/domain/$did/backend 2>/dev/null | tr '\n' ' ')" ""
fails "the frontends are gone" xenstore-read /local/domain/$gid/name
fails "the toolstack's copy is gone" xenstore-read /libxl/$gid/device/vbd/51712/backend
is "no worker or keeper is left" "$( (ps -u "$duid" -o comm=; ps --ppid "$(cat "$BULKHEAD_STATE_DIR/drvdom.pid")" -o comm=) | grep -c "^bh[kw]-$gid-")" "0"
is "the vif's TAP went with its device" "$(nsenter --net=/proc/$dpid/ns/net ip -o link show master xenbr0 | awk '{print $2}' | sed 's/@.*//' | tr '\n' ' ')" "uplink "
ok "destroy the driver domain" "$B" destroy drv
ok "down" "$B" down
exit $tap_failed
