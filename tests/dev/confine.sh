#!/bin/bash
# confine.sh - the confined driver domain, seen from dom0 while a guest does
# I/O through it (fio on a vbd, ping over a vif): every process of
# bulkhead-drvdom (main, keepers, workers) has no_new_privs, seccomp mode 2
# and all five capability sets empty; its root holds only /proc and
# /run/bulkhead, so that it cannot open a file, its storage's included
# (that comes from the broker as fds); a denied call (a test-only trigger)
# kills with a line naming it; exec is refused; a guest can neither read nor
# write the driver domain's or dom0's XenStore nodes.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
. "${srcdir:-.}/tests/dev/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
command -v fio >/dev/null || skip_all "needs fio (apt-get install fio)"
command -v python3 >/dev/null || skip_all "needs python3 (apt-get install python3)"
DD="${abs_top_builddir:-$PWD}/driverdom/bulkhead-drvdom"
HV="${abs_top_builddir:-$PWD}/hv/bulkhead-hv"
fiopid=""
sim_undo() { [ -z "$fiopid" ] || kill "$fiopid" 2>/dev/null; }
sim_begin conf
plan 31

mkdir -p "$W/store"
truncate -s 64M "$W/store/a.img"
printf 'name = "drv"\ndriver_domain = 1\nbulkhead_storage = [ "%s" ]\nbulkhead_uplink = "xenbr0"\n' \
    "$W/store" >"$W/drv.cfg"
cat >"$W/g.cfg" <<CFG
name = "g"
vcpus = 2
disk = [ "format=raw, vdev=xvda, access=rw, backend=drv, target=$W/store/a.img" ]
vif = [ "mac=00:16:3e:00:00:31, bridge=xenbr0, backend=drv" ]
CFG

ok "up" "$B" up
eval "$("$B" env)"
ok "create the driver domain" "$B" create "$W/drv.cfg"
ok "create a guest with a disk and a vif it serves" "$B" create "$W/g.cfg"
did=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "drv".*/\1/p')
gid=$("$B" list --json | sed -n 's/.*"domid": \([0-9]*\), "name": "g".*/\1/p')
dpid=$("$B" list --json | sed -n 's/.*"name": "drv", "state": "running", "pid": \([0-9]*\).*/\1/p')
duid=$(stat -c %u /proc/"$dpid")
ua=$(vbd_uri g xvda)

# I/O while we look: fio through blkback (verify on), frames through netback.
"$B" exec g -- fio --ioengine=nbd --uri="$ua" --rw=randrw --bs=4k --iodepth=8 --size=16M \
    --time_based --runtime=600 --name=bg >"$W/fio.out" 2>&1 &
fiopid=$!
"$B" exec g -- ip addr add 10.9.3.2/24 dev eth0
"$B" exec g -- ip link set eth0 up
nsenter --net="$BULKHEAD_DOM0_NETNS" ip addr add 10.9.3.1/24 dev up-drv
nsenter --net="$BULKHEAD_DOM0_NETNS" ip link set up-drv up
ok "the guest pings dom0 through the driver domain" "$B" exec g -- ping -c 2 -W 5 10.9.3.1
# The workers are up once the guest's devices are; fio runs until we kill it.
procs=$(ps -u "$duid" -o pid=,comm= | awk '$2 ~ /^(bulkhead-drvdo|bhk-|bhw-)/ {print $1}')
is "main, two keepers and two workers run" "$(echo "$procs" | wc -w)" "5"
is "fio is still running (the checks below see I/O in flight)" "$(kill -0 "$fiopid" 2>&1 && echo yes)" "yes"
status_of() { # pid field
    sed -n "s/^$2:[[:space:]]*//p" /proc/"$1"/status
}
# Every process of the driver domain: whatever shares its init's pid
# namespace, the init included (as dom0 sees them, whatever their comm).
dns=$(readlink /proc/"$dpid"/ns/pid)
all=$(for d in /proc/[0-9]*; do
    [ "$(readlink "$d"/ns/pid 2>/dev/null)" = "$dns" ] && echo "${d#/proc/}"
done)
is "its pid namespace holds its init and the five" \
    "$(for p in $all; do cat /proc/"$p"/comm; done | sed 's/^bh\([kw]\)-.*/bh\1-/' | sort | tr '\n' ' ')" \
    "bhk- bhk- bhw- bhw- bulkhead-drvdom domain-init "
bad=""
for p in $all; do
    s="$(status_of "$p" NoNewPrivs) $(status_of "$p" Seccomp)"
    for c in CapInh CapPrm CapEff CapBnd CapAmb; do s="$s $(status_of "$p" $c)"; done
    [ "$s" = "1 2 0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000" ] ||
        bad="$bad $p($(cat /proc/"$p"/comm): $s)"
done
is "every process of the domain, init included: NoNewPrivs 1, Seccomp 2, all five capability sets 0" \
    "$bad" ""
gpid=$("$B" list --json | sed -n 's/.*"name": "g", "state": "running", "pid": \([0-9]*\).*/\1/p')
# (no_new_privs is every domain's, from its builder; capabilities are its
# user namespace's, over the guest's own namespaces only.)
is "a guest's init is not confined (only the driver domain is: README): no filter, capabilities" \
    "$(status_of "$gpid" Seccomp) $(status_of "$gpid" NoNewPrivs) $([ "$(status_of "$gpid" CapEff)" != 0000000000000000 ] && echo held)" \
    "0 1 held"
is "the init's allowlist is within bulkhead-drvdom's (tcb's count holds for both)" \
    "$("$HV" --domain-init --print-policy | sed -n 's/^syscall \([a-z0-9_]*\).*/\1/p' |
        while read -r c; do "$DD" --print-policy | grep -q "^syscall $c\b" || echo "$c"; done)" ""
main=$(for p in $procs; do [ "$(cat /proc/"$p"/comm)" = bulkhead-drvdom ] && echo "$p"; done)
is "the main process's root holds only proc and run" "$(ls /proc/"$main"/root | tr '\n' ' ')" "proc run "
is "... and run only the two daemons' sockets" "$(ls /proc/"$main"/root/run/bulkhead | tr '\n' ' ')" \
    "hv.sock xenstored.sock "
links=$(nsenter -t "$dpid" -n ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort | tr '\n' ' ')
is "its network namespace holds its loopback, bridge, vif TAP and uplink only" "$links" \
    "lo uplink vif$gid.0 xenbr0 "
# bulkhead tcb, as `bulkhead bench` reads it, while both placements run.
"$B" tcb --json >"$W/tcb.json"
is "tcb --json: the driver domain holds no capability, nnp and seccomp on all its processes" \
    "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["placements"][0]; print(p["name"], p["running_processes"], p["capabilities"]["held"], p["no_new_privs"], p["seccomp_mode2"])' "$W/tcb.json")" \
    "driver-domain 6 0 True True"
is "... and lists the syscalls and io_uring ops --print-policy gives" \
    "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["placements"][0]; print(p["syscalls_allowed"], len(p["syscalls"]), p["io_uring_ops"])' "$W/tcb.json")" \
    "$("$DD" --print-policy | grep -c '^syscall ') $("$DD" --print-policy | grep -c '^syscall ') $("$DD" --print-policy | sed -n "s/^io_uring \(.*\)/'\1'/p" | paste -sd, | sed 's/,/, /g; s/^/[/; s/$/]/')"
is "... stock dom0's devd: capabilities held, no filter, more of our code beside it" \
    "$(python3 -c 'import json,sys; d,z=json.load(open(sys.argv[1]))["placements"]; print(z["name"], z["capabilities"]["held"] > 0, z["seccomp"], z["lines_of_code"] > d["lines_of_code"] > 0, len(d["libraries"]) > 0)' "$W/tcb.json")" \
    "stock-dom0 True False True True"
kill "$fiopid" 2>/dev/null
wait "$fiopid" 2>/dev/null
fiopid=""
is "fio saw no error while we looked" "$(grep -ci 'err=[^0 ]\|verify' "$W/fio.out")" "0"

# From inside: the same confinement, then try (a test-only trigger).  `bulkhead
# exec` refuses a driver domain (no exec there): enter the namespaces of its
# first process (the domain's init: confined, but its mounts are the
# domain's) as its root with nsenter, as `bulkhead exec` would a guest's.
selftest() {
    nsenter -t "$dpid" -U -m -n -i -u -p -S 0 -G 0 -- "$DD" --confine-selftest "$@" 2>&1
}
is "inside, /etc/passwd cannot be opened" "$(selftest open:/etc/passwd)" \
    "open /etc/passwd: No such file or directory"
is "... nor a disk of its own storage (those come from the broker)" \
    "$(selftest open:"$W/store/a.img")" "open $W/store/a.img: No such file or directory"
out=$(selftest denied); rc=$?
is "a denied call kills, and the line names it" \
    "$rc $(echo "$out" | grep -c 'seccomp: denied system call unshare ([0-9]*): killed')" "159 1"
if "$DD" --print-policy | grep -q "sanitizer build"; then
    # The sanitizer build turns execve into EPERM, so that a report's symbolizer fails quietly.
    is "exec is refused (sanitizer build: EPERM)" "$(selftest exec)" "exec: Operation not permitted"
else
    is "exec is refused: it kills" "$(selftest exec | grep -c 'denied system call execve')" "1"
fi

# XenStore: the guest sees its own home only.  dom0 reads the same nodes
# first, so that a refusal is a permission and not a missing node.
gx() { "$B" exec g -- "$@" 2>&1; }
is "dom0 reads the driver domain's name and its own" \
    "$(xenstore-read /local/domain/"$did"/name /local/domain/0/name | tr '\n' ' ')" "drv Domain-0 "
is "the guest cannot read the driver domain's nodes" "$(gx xenstore-read /local/domain/"$did"/name)" \
    "xenstore-read: couldn't read path /local/domain/$did/name"
is "... nor write them" "$(gx xenstore-write /local/domain/"$did"/backend/x y)" \
    "xenstore-write: could not write path /local/domain/$did/backend/x"
is "... nor read dom0's, nor write them" \
    "$(gx xenstore-read /local/domain/0/name; gx xenstore-write /local/domain/0/x y)" \
    "xenstore-read: couldn't read path /local/domain/0/name
xenstore-write: could not write path /local/domain/0/x"
is "no node was written" "$( (xenstore-read /local/domain/"$did"/backend/x; xenstore-read /local/domain/0/x) 2>&1 | grep -c "couldn't read")" "2"

# Teardown runs confined too (workers close their devices and libxenstore's
# thread; the main process exits, and a sanitizer build's leak check runs
# there):
# nothing in it may be a call the filter denies.
ok "destroy the guest" "$B" destroy g
for i in $(seq 300); do
    [ "$(ps -u "$duid" -o comm= | grep -c '^bh[kw]-')" = 0 ] && break
    sleep 0.1
done
con="$BULKHEAD_STATE_DIR/console/drv.log"
is "both keepers ended with their devices" "$(grep -c 'keeper [0-9]* ended with its device' "$con")" "2"
# SIGTERM, as a shutdown sends it: the main process exits by returning from main.
kill -TERM "$main"
for i in $(seq 300); do
    grep -q 'every device closed: exiting' "$con" && [ ! -d /proc/"$main"/fd ] && break
    sleep 0.1
done
is "on SIGTERM its main process closed and exited" "$(grep -c 'every device closed: exiting' "$con")" "1"
# Its confined init reaps it and leaves, ending the domain: that exit too
# runs under the filter (a sanitizer build's exit hooks included).
for i in $(seq 300); do
    [ "$("$B" list --json | sed -n 's/.*"name": "drv", "state": "\([a-z]*\)".*/\1/p')" = shutdown ] && break
    sleep 0.1
done
is "... and its init then ended the domain" \
    "$("$B" list --json | sed -n 's/.*"name": "drv", "state": "\([a-z]*\)".*/\1/p')" "shutdown"
"$B" destroy drv >/dev/null 2>&1
is "no process of the driver domain met a denied call" "$(grep -c 'seccomp: denied' "$con")" "0"
