#!/bin/bash
# cycles.sh - create and destroy a guest with disks and vifs, served by a
# driver domain and by dom0 (one a qcow2 image behind dom0's qemu-nbd), many
# times (BULKHEAD_CYCLES, default 100): afterwards no process, fd, mount,
# namespace, network link, hypervisor object, NBD server or XenStore node is
# left that was not there before.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v qemu-img >/dev/null || skip_all "needs qemu-img and qemu-nbd (apt-get install qemu-utils)"
N=${BULKHEAD_CYCLES:-100}
sim_begin cyc
plan 18

mkdir -p "$W/store" "$W/dom0"
truncate -s 1M "$W/store/a.img" "$W/store/b.img" "$W/dom0/c.img"
qemu-img create -q -f qcow2 "$W/store/q.qcow2" 1M
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\nbulkhead_uplink = "xenbr0"\n' \
    "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img",
         "format=raw, vdev=xvdb, access=ro, backend=drv, target=$W/store/b.img",
         "format=raw, vdev=xvdc, access=rw, target=$W/dom0/c.img",
         "format=qcow2, vdev=xvdd, access=rw, backend=drv, target=$W/store/q.qcow2" ]
vif = [ "bridge=xenbr0, backend=drv", "bridge=xenbr1, backend=drv" ]
CFG

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
dpid=$("$B" list --json | sed -n 's/.*"name": "drv", "state": "running", "pid": \([0-9]*\).*/\1/p')
duid=$(stat -c %u /proc/"$dpid")

# Everything that a cycle could leave behind, in one line per kind.
snapshot() {
    echo "hv: $("$B" info --json | sed 's/, "rss_kb".*//')"
    echo "driver domain processes: $(ps -u "$duid" -o comm= | sort | tr '\n' ' ')"
    echo "guest uids: $(ps -e -o uid= | awk -v lo="$((duid + 1))" -v hi="$((duid + 32767))" '$1 >= lo && $1 <= hi' | wc -l)"
    for d in hv xenstored drvdom; do
        echo "$d fds: $(ls /proc/"$(cat "$BULKHEAD_STATE_DIR/$d.pid")"/fd | wc -l)"
    done
    echo "dom0 drvdom children: $(pgrep -c -P "$(cat "$BULKHEAD_STATE_DIR/drvdom.pid")")"
    # (only this simulation's: other tests may mount and unmount beside us)
    echo "host mounts: $(grep -c -e "$BULKHEAD_STATE_DIR" -e "$W" /proc/self/mountinfo)"
    echo "driver domain links: $(nsenter --net=/proc/"$dpid"/ns/net ip -o link | awk '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')"
    echo "dom0 links: $(nsenter --net="$BULKHEAD_DOM0_NETNS" ip -o link | awk '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')"
    echo "qemu-nbd servers: $(pgrep -f -- "--socket=$BULKHEAD_STATE_DIR/nbd/" | wc -l) files: $(ls "$BULKHEAD_STATE_DIR/nbd" 2>/dev/null | wc -l)"
    echo "xenstore nodes: $(xenstore-ls -f / | grep -v '^/vm/' | sed 's/ = .*//' | sort | md5sum | cut -c1-12) $(xenstore-ls -f / | wc -l)"
}

# One cycle first, so that what the first device makes for good (the bridge
# xenbr1, dom0's idle worker slots) is in the baseline.
"$B" create "$W/g.cfg" >/dev/null && "$B" destroy g
before=$(snapshot)
echo "$before" | sed "s/^/# before: /"
failed=0
failed_domids=""
start=$(date +%s)
for i in $(seq "$N"); do
    if ! out=$("$B" create "$W/g.cfg" 2>&1); then
        echo "# cycle $i: create: $(echo "$out" | tr '\n' ' ')" | tee -a "$W/failures"
        failed=$((failed + 1))
        # (the domain id that cycle had: the create said it, or it was rolled back)
        failed_domids="$failed_domids $((i + 2))"
        # What is left of that domain's devices: where each thread waits, and
        # what XenStore said of its connections.
        for p in $(pgrep "^bh[kw]-$((i + 2))-"); do
            echo "# cycle $i: left: $p $(cat /proc/"$p"/comm) $(for t in /proc/"$p"/task/*; do
                echo "[task ${t##*/} $(cat "$t"/wchan) syscall $(cut -d' ' -f1 "$t"/syscall)]"; done)"
            grep "(pid $p)" "$BULKHEAD_STATE_DIR/xenstored.log" | sed 's/^/#   xenstored: /'
        done >>"$W/failures"
    fi
    if ! out=$("$B" destroy g 2>&1); then echo "# cycle $i: destroy: $out"; failed=$((failed + 1)); fi
done
echo "# $N cycles in $(( $(date +%s) - start )) s"
is "$N create/destroy cycles, each with 6 devices, all succeeded" "$failed" "0"
after=$(snapshot)
for kind in "hv:" "driver domain processes:" "guest uids:" "hv fds:" "xenstored fds:" \
            "drvdom fds:" "dom0 drvdom children:" "host mounts:" "driver domain links:" \
            "dom0 links:" "qemu-nbd servers:" "xenstore nodes:"; do
    is "no leak: $kind" "$(echo "$after" | grep "^$kind")" "$(echo "$before" | grep "^$kind")"
done
# A keeper never execs: forked from a process of several threads, it could
# find a lock a vanished thread held (the sanitizers' allocator) and hang.
is "every keeper was forked from one thread" \
    "$(cat "$BULKHEAD_STATE_DIR/console/drv.log" "$BULKHEAD_STATE_DIR/drvdom.out" | grep -c 'forking its keeper from')" "0"
# A worker stuck where nothing it reads can reach it (stopped here) does not
# outlive its device: once the directory has been gone 15 s the driver domain
# stops its keeper, which kills the worker 10 s later.
gout=$("$B" create "$W/g.cfg" 2>&1)
gid=$(echo "$gout" | sed -n 's/.*(id \([0-9]*\)).*/\1/p')
stuck=$(pgrep -x "bhw-$gid-51712")
kill -STOP $stuck
"$B" destroy g >/dev/null 2>&1 # (its backend does not close: removed after 10 s)
left=$(pgrep "^bh[kw]-$gid-" | wc -l)
for _ in $(seq 60); do
    left=$(pgrep "^bh[kw]-$gid-" | wc -l)
    [ "$left" -eq 0 ] && break
    sleep 1
done
is "a stopped worker does not outlive its device (its processes left)" "$left" "0"
is "... the driver domain stopped its keeper and the keeper killed it" \
    "$(grep -c -E -e "vbd $gid/51712: its directory was removed 15 s ago" \
                   -e "vbd $gid/51712: keeper: worker [0-9]+ did not end within" \
                "$BULKHEAD_STATE_DIR/console/drv.log")" "2"
# Last, where a truncated log still shows it: what failed, and what the
# driver domain's devices of those domains said.
if [ -s "$W/failures" ]; then
    cat "$W/failures"
    for d in $failed_domids; do
        grep -E ": (vbd|vif) $d/" "$BULKHEAD_STATE_DIR/console/drv.log" | tail -n 40 | sed 's/^/# drv: /'
    done
fi
exit $tap_failed
