#!/bin/sh
# init.sh - PID 1 of the Xen tier's dom0, and of its driver domain (the same
# image; "role=driverdomain" on the kernel command line).  dom0 runs the
# scenarios with the real xl and reports each on the serial console:
#   @@ <step> <uptime>   progress       @@PASS <name>   a scenario's check passed
#   @@FAIL <name> <why>  a product failure
#   @@ENV <why>          an environment failure (Xen, xl, the image; not Bulkhead)
# The driver domain runs bulkhead-drvdom on the Xen platform and answers
# dom0's questions about its disks through XenStore (data/bh-cmd, bh-res).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
# devtmpfs has no /dev/stdin (udev makes it): Xen's hotplug locking.sh loops on it.
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xenstored /var/lib/bulkhead
ldconfig
up() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "@@ $1 $(up) ${2:-}"; }
pass() { echo "@@PASS $1"; }
fail() { echo "@@FAIL $1 $2"; }
envfail() { echo "@@ENV $1"; finish; }
finish() { mark finish; sync; busybox poweroff -f 2>/dev/null || poweroff -f; }
XB=/usr/lib/xen-4.17/bin
MIB=1048576

load() { for m in "$@"; do modprobe "$m" || echo "@@ENV modprobe $m failed"; done; }

if grep -q role=driverdomain /proc/cmdline; then
    hostname drvdom
    mark drvdom-up "$(uname -r)"
    # Kernel backends stay out: bulkhead-drvdom is this domain's only backend.
    load xen-evtchn xen-gntdev xen-gntalloc xenfs xen-privcmd loop
    mount -t xenfs xenfs /proc/xen
    # Three 64 MiB disks, each starting with a pattern only this boot knows, on
    # a tmpfs of their own: the initramfs' own is half the memory, mostly taken.
    mount -t tmpfs -o size=240m tmpfs /var/lib/bulkhead || echo "@@ENV no tmpfs for the disks"
    for n in 1 2 9; do
        f=/var/lib/bulkhead/disk$n.img
        dd if=/dev/zero of=$f bs=1M count=64 2>/dev/null || echo "@@ENV cannot make $f"
        p="DRVDOM-DISK$n-$(date +%s%N | tail -c 13)"
        printf '%s' "$p" | dd of=$f conv=notrunc 2>/dev/null
        xenstore-write data/bh-pattern$n "$p"
    done
    # Disk 9 is served over NBD (scenario 9): nbdkit's file plugin on a unix
    # socket, which the guest's disk names (params); bulkhead-drvdom's opener
    # connects to it for the confined worker, once per queue.
    if [ -x /usr/local/bin/nbdkit ]; then
        nbdkit -U /run/nbd9.sock /usr/local/lib/nbdkit/plugins/nbdkit-file-plugin.so \
            file=/var/lib/bulkhead/disk9.img || echo "@@ENV nbdkit did not start for disk 9"
    fi
    # Disk 1 is a block device, which the engine opens O_DIRECT too: the test of
    # io_uring's O_DIRECT I/O straight into gntdev mappings in a PV domain.
    losetup /dev/loop0 /var/lib/bulkhead/disk1.img || echo "@@ENV losetup failed"
    # The uplink (scenario 3): eth0, this domain's netfront to dom0's kernel
    # netback (drvdom.cfg's vif), on a bridge xenbr0 of this domain's own;
    # bulkhead-drvdom's opener puts each guest's vif<domid>.<devid> on it.
    load xen-netfront tun bridge
    i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
    if [ -e /sys/class/net/eth0 ] && ip link add xenbr0 type bridge &&
       ip link set eth0 master xenbr0 && ip link set eth0 up && ip link set xenbr0 up; then
        mark drvdom-uplink
    else
        echo "@@ENV the driver domain has no eth0 on xenbr0 (dom0's xen-netback, drvdom.cfg's vif)"
    fi
    # bhtrace=1 (check-xen with BH_XEN_TRACE=1): blkback's trace in the log.
    # Off by default: the console is slow under emulation, and a worker
    # blocked on its log would skew the ratio and libxl's 10 s bounds.
    grep -q bhtrace=1 /proc/cmdline && export BULKHEAD_BLK_TRACE=1
    BULKHEAD_PLATFORM=xen bulkhead-drvdom --ready-fd 3 3>/run/drvdom.ready 2>&1 |
        sed -u 's/^/[drvdom] /' &
    i=0; while [ ! -s /run/drvdom.ready ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
    if [ "$(cat /run/drvdom.ready)" = ok ]; then
        xenstore-write data/bh-serving 1
        mark drvdom-ready
    else
        xenstore-write data/bh-serving 0
        mark drvdom-daemon-failed "$(cat /run/drvdom.ready)"
    fi
    # dom0's questions: "<n> md5 <file> <offset MiB> <MiB>", "<n> head <file>" (what a
# guest's read of the first sector shows), ... -> data/bh-res "<n> <answer>".
    named() { for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = "$1" ] && echo ${p#/proc/}; done | head -1; }
    last=""
    while :; do
        c=$(xenstore-read data/bh-cmd 2>/dev/null)
        if [ -n "$c" ] && [ "$c" != "$last" ]; then
            last=$c
            set -- $c
            case $2 in
            md5) r=$(dd if="$3" bs=1M skip="$4" count="$5" 2>/dev/null | md5sum | cut -d' ' -f1) ;;
            head) r=$(dd if="$3" bs=512 count=1 2>/dev/null | tr -dc 'A-Za-z0-9-' | head -c 40) ;;
            alive) r=$(pidof bulkhead-drvdom >/dev/null && echo yes || echo no) ;;
            netdiag) # the links, their counters and the bridge's table, on the console
                ip -s link; bridge fdb show 2>/dev/null | grep -v 33:33; r=printed ;;
            iface) # is link $3 still there (up to 20 s for it to go)?
                r=present; i=0
                while [ $i -lt 40 ]; do
                    [ -e "/sys/class/net/$3" ] || { r=absent; break; }
                    sleep 0.5; i=$((i + 1))
                done ;;
            pid) r=$(named "$3") ;; # the process named $3 (a worker: bhw-<frontend>-<devid>)
            kill) r=$(named "$3"); [ -n "$r" ] && kill -KILL $r ;;
            upgrade) # a new bulkhead-drvdom takes every device over (upgrade.c): its last line
                r=$(BULKHEAD_PLATFORM=xen timeout -k 5 150 bulkhead-drvdom --upgrade 2>&1 |
                    sed 's/^/[upgrade] /' | tee /dev/console | tail -1 | cut -d' ' -f2-) ;;
            stop) printf 'S5-STOP' | dd of="$3" bs=1M seek="$4" conv=notrunc 2>/dev/null && r=ok ;;
            odirect) # does some process have $3 open with O_DIRECT (040000)?
                r=no
                for f in /proc/[0-9]*/fd/*; do
                    [ "$(readlink "$f" 2>/dev/null)" = "$3" ] || continue
                    fl=$(sed -n 's/^flags:[[:space:]]*//p' "${f%/fd/*}/fdinfo/${f##*/}" 2>/dev/null)
                    [ -n "$fl" ] && [ $((fl & 040000)) != 0 ] && r=yes
                done ;;
            *) r=unknown ;;
            esac
            xenstore-write data/bh-res "$1 $r"
        fi
        sleep 0.3
    done
fi

# ---------------- dom0 ----------------
hostname dom0
# bhscen=all or a list like 1,4 (check-xen's BH_XEN_SCENARIOS): which scenarios run.
SCEN=$(sed -n 's/.*bhscen=\([0-9,a-z]*\).*/\1/p' /proc/cmdline); SCEN=${SCEN:-all}
want() { case ",$SCEN," in *,all,*|*,$1,*) return 0;; esac; return 1; }
mark dom0-up "$(uname -r)"
load xen-evtchn xen-gntdev xen-gntalloc xenfs xen-privcmd bridge xen-netback
mount -t xenfs xenfs /proc/xen || envfail "cannot mount xenfs"
timeout 60 $XB/xenstored --pid-file /run/xenstored.pid || envfail "xenstored did not start"
timeout 60 $XB/xen-init-dom0 || envfail "xen-init-dom0 failed"
$XB/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
    envfail "xenconsoled did not start"
timeout -k 5 30 xl list >/dev/null || envfail "xl list failed"
mark xenstored-up
# Every guest's console, live on ours (a stall shows where it stalled).
( cd /var/log/xen/console && tail -q -n +1 -F guest-drvdom.log guest-domu1.log guest-domu2.log guest-domu3.log guest-domu4.log guest-domu5.log guest-domu6.log guest-domu7.log guest-domu8.log guest-domu9.log guest-domulv.log 2>/dev/null |
    sed -u -e 's/\r//g' -e '/^\[ *[0-9.]*\] /{/blk\|xen\|xvd\|response\|bounce\|hung\|task\|error\|I\/O\|EXT\|ext4\|Grant\|Disabled for/!d}' -e 's/^/[guest] /' ) &

# waitfor SECONDS CMD...: runs CMD every 0.5 s until it succeeds; 1 if it never did.
# The bound is in seconds of uptime, not in tries: a try (xl) can take seconds.
waitfor() {
    end=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift
    while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do "$@" && return 0; sleep 0.5; done
    return 1
}
console() { tr -d '\r' < /var/log/xen/console/guest-$1.log 2>/dev/null; }
gone() { ! xl domid "$1" >/dev/null 2>&1; }
guest_up() { console "$1" | grep -q '^@@DOMU xvda ' || gone "$1"; }

# The driver domain's uplink (scenario 3): its vif, served by dom0's kernel
# netback, goes on this bridge.  xl runs Xen's vif-bridge for it, which
# needs no more than iproute2 here (Debian's vif-common.sh skips iptables).
# Its own address: a bridge takes its lowest port's, and the only port here,
# netback's vif, has fe:ff:ff:ff:ff:ff - which the driver domain's bridge
# holds as a local address (its TAPs have it too) and would never forward.
ip link add xenbr0 type bridge && ip link set xenbr0 address 00:16:3e:99:00:01 &&
    ip addr add 10.99.0.1/24 dev xenbr0 && ip link set xenbr0 up ||
    envfail "cannot make dom0's bridge xenbr0"
mark drvdom-create
timeout -k 10 180 xl create /etc/xen/drvdom.cfg || envfail "xl create drvdom failed"
DD=$(xl domid drvdom)
on_bridge() { [ -e /sys/class/net/xenbr0/brif/vif$DD.0 ]; }
waitfor 60 on_bridge || envfail "vif-bridge did not put the driver domain's vif$DD.0 on xenbr0"
xs_has() { xenstore-read "$1" >/dev/null 2>&1; }
waitfor 240 xs_has /local/domain/$DD/data/bh-serving ||
    envfail "the driver domain never booted to its /init (see its console below)"
if [ "$(xenstore-read /local/domain/$DD/data/bh-serving)" = 1 ]; then
    pass drvdom-serving
else
    fail drvdom-serving "bulkhead-drvdom exited at start (its log is in the driver domain's console)"
fi
mark drvdom-ready "domid=$DD"

# Warm-up: libxl gives a new backend 10 s to reach InitWait, a fixed bound.
# Under software emulation the first device's code runs untranslated yet
# and, on a loaded host, took longer than that (the second was quick), so
# one device with no frontend is put in the driver domain's backend/ by
# hand first: bulkhead-drvdom probes it and goes InitWait (checked; no
# timing asserted), and it is removed again.
W=/local/domain/$DD/backend/vbd/0/51999 F=/local/domain/0/device/vbd/51999
# The frontend's directory must be readable by the backend, as libxl makes it.
xenstore-write $F/state 1 && xenstore-chmod -r $F n0 "r$DD" ||
    envfail "cannot write the warm-up frontend"
xenstore-write $W/frontend $F $W/frontend-id 0 \
    $W/params /var/lib/bulkhead/disk1.img $W/mode r $W/online 1 $W/state 1 &&
    xenstore-chmod -r /local/domain/$DD/backend "n$DD" || envfail "cannot write the warm-up backend"
initwait() { [ "$(xenstore-read $W/state 2>/dev/null)" = 2 ]; }
if waitfor 240 initwait; then pass warmup-initwait; else fail warmup-initwait "no InitWait in 240 s"; fi
xenstore-rm /local/domain/$DD/backend/vbd/0
xenstore-rm $F
mark warmup-done

# ask CMD...: the driver domain's answer to CMD (see the driver domain's loop above).
# Each question has a number of its own: ask runs in $(...), a subshell, so a
# counter would not survive it and a second question would read the first's answer.
ask() {
    SEQ=$(date +%s%N)
    xenstore-write /local/domain/$DD/data/bh-cmd "$SEQ $*"
    waitfor 150 sh -c "xenstore-read /local/domain/$DD/data/bh-res 2>/dev/null | grep -q '^$SEQ '" ||
        return 1
    xenstore-read /local/domain/$DD/data/bh-res | cut -d' ' -f2-
}
# What a failed step leaves to read: the backends in XenStore, the driver domain's log.
diag() {
    echo "---- xenstore backend/ of the driver domain ----"
    xenstore-ls -f /local/domain/$DD/backend 2>&1 | head -60
}
field() { console "$1" | sed -n "s/^@@DOMU $2 //p" | head -1; }

# guest N NAME [TAG [BEFORE]]: one guest's life with disk N of the driver domain;
# its checks (named TAG-..., s<N>- unless given).  BEFORE, a command, runs with
# the guest created paused ($GID its id), before it is let run.
guest() {
    n=$1 name=$2 t=${3:-s$1}
    mark "$name-create"
    # -k: xl may outlive a SIGTERM; the step must still end.
    if ! timeout -k 10 180 xl -vvv create ${4:+-p} /etc/xen/$name.cfg > /run/$name-create.log 2>&1; then
        fail "$t-create" "xl create $name failed (backend never reached InitWait?)"
        grep -v '^libxl: debug: libxl_event.c' /run/$name-create.log | tail -40
        diag
        timeout -k 5 30 xl destroy "$name" 2>/dev/null
        return
    fi
    if [ -n "${4:-}" ]; then
        GID=$(xl domid $name)
        $4
        timeout -k 5 30 xl unpause $name
    fi
    # What the frontend was told about trusting the backend (scenario 6).
    TRUSTED=$(xenstore-read /local/domain/$(xl domid $name 2>/dev/null)/device/vbd/51712/trusted 2>&1)
    mark "$t-trusted" "$TRUSTED"
    # While the guest runs: is the disk's block device open O_DIRECT (disk 1)?
    if [ "$n" = 1 ]; then
        waitfor 120 guest_up "$name"
        od=$(ask odirect /dev/loop0)
        mark "s1-odirect" "$od"
        [ "$od" = yes ] && pass s1-odirect ||
            fail s1-odirect "the driver domain has /dev/loop0 open without O_DIRECT ($od)"
    fi
    if ! waitfor 300 gone "$name"; then
        fail "$t-guest" "$name still running after 300 s: its I/O stalled"
        diag
        timeout -k 5 30 xl destroy "$name"
    fi
    mark "$name-gone"
    want=$(xenstore-read /local/domain/$DD/data/bh-pattern$n)
    got=$(field "$name" read)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then pass "$t-guest-reads-drvdom"
    else fail "$t-guest-reads-drvdom" "guest read '$got', the driver domain wrote '$want'"; fi
    gmd5=$(field "$name" tailmd5)
    dmd5=$(ask md5 /var/lib/bulkhead/disk$n.img 63 1)
    if [ -n "$gmd5" ] && [ "$gmd5" = "$dmd5" ]; then pass "$t-drvdom-reads-guest"
    else fail "$t-drvdom-reads-guest" "guest wrote md5 '$gmd5', the driver domain reads '$dmd5'"; fi
    if console "$name" | grep -q "^@@DOMU fs-md5-ok"; then pass "$t-fs-md5"
    elif grep -q bhfs=1 /etc/xen/$name.cfg; then fail "$t-fs-md5" "$(field "$name" fs-FAILED)"; fi
}

# Scenario 4: xl block-detach and block-attach while the guest runs.  The
# guest (bhhotplug=1) says when it sees its disk go and come back, then
# reads the driver domain's pattern and writes a new tail through it.
said() { console "$1" | grep -q "^@@DOMU $2"; }
hotplug() {
    name=domu3
    mark "$name-create"
    if ! timeout -k 10 180 xl create /etc/xen/$name.cfg > /run/$name-create.log 2>&1; then
        fail s4-create "xl create $name failed"; tail -20 /run/$name-create.log; diag
        timeout -k 5 30 xl destroy "$name" 2>/dev/null
        return
    fi
    if ! waitfor 200 said $name hotplug-ready; then
        fail s4-detach "the guest never got to its hotplug step"
    elif ! timeout -k 10 120 xl -v block-detach $name xvda > /run/$name-detach.log 2>&1; then
        fail s4-detach "xl block-detach failed: $(tail -1 /run/$name-detach.log)"
        tail -15 /run/$name-detach.log; diag
    elif ! waitfor 120 said $name xvda-gone; then
        fail s4-detach "xl block-detach returned, the guest still has xvda"
    else
        pass s4-detach
        mark s4-attach
        if ! timeout -k 10 120 xl block-attach $name \
                'backend=drvdom, backendtype=phy, format=raw, vdev=xvda, access=rw, target=/dev/loop0' \
                > /run/$name-attach.log 2>&1; then
            fail s4-attach "xl block-attach failed: $(tail -3 /run/$name-attach.log | tr '\n' ' ')"; diag
        elif ! waitfor 120 said $name xvda-back; then
            fail s4-attach "xl block-attach returned, the guest never saw xvda again"; diag
        else
            pass s4-attach
        fi
    fi
    if ! waitfor 200 gone "$name"; then
        fail s4-guest "$name still running after its hotplug step: its I/O stalled"; diag
        timeout -k 5 30 xl destroy "$name"
    fi
    mark "$name-gone"
    # What the disk starts with now (domu1's mke2fs left its first sector as it was; asked anyway).
    want=$(ask head /var/lib/bulkhead/disk1.img)
    got=$(field $name read2)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then pass s4-guest-reads-drvdom
    else fail s4-guest-reads-drvdom "after block-attach the guest read '$got', the driver domain wrote '$want'"; fi
    gmd5=$(field $name tail2md5)
    dmd5=$(ask md5 /var/lib/bulkhead/disk1.img 62 1)
    if [ -n "$gmd5" ] && [ "$gmd5" = "$dmd5" ] && ! said $name hotplug-FAILED; then pass s4-drvdom-reads-guest
    else fail s4-drvdom-reads-guest "after block-attach the guest wrote md5 '$gmd5', the driver domain reads '$dmd5' $(field $name hotplug-FAILED)"; fi
}

want 2 && guest 2 domu2   # backendtype=qdisk: a file, buffered I/O
want 1 && guest 1 domu1   # vbd, backendtype=phy: a block device, O_DIRECT
want 4 && hotplug         # domu3: the vbd again, detached and attached while it runs
# Scenario 6: disk 2 again, its frontend told the backend is not trusted
# (frontend key trusted=0, io/blkif.h): Linux's blkfront bounces every page
# through grants of its own.  Debian's xl 4.17 writes trusted=1 and has no
# setting for it (neither a disk flag nor XSA-403's environment variable),
# so dom0 writes the key itself while the guest is created paused, before
# blkfront reads it.  The bounce buffer alone proves little: blkfront
# bounces with persistent grants too, which we offer; the key is what makes
# this the trusted=0 case, and the data checks what we served.
untrust() { xenstore-write /local/domain/$GID/device/vbd/51712/trusted 0; }
if want 6; then
    guest 2 domu4 s6 untrust
    if [ "$TRUSTED" = 0 ] && [ "$(field domu4 bounce)" = enabled ]; then pass s6-bounce
    else fail s6-bounce "frontend key trusted '$TRUSTED' (want 0), blkfront's bounce buffer '$(field domu4 bounce)' (want enabled)"; fi
fi

# Scenario 5: the driver domain's worker for domu7's disk (scenario 1's) is
# SIGKILLed three times, replaced by `bulkhead-drvdom --upgrade` run in the
# driver domain (no dom0 command reaches its keepers' abstract sockets on
# Xen), and the upgraded worker SIGKILLed once more, while the guest writes
# and reads back chunks (bhrestart=1).  After each step dom0 waits for a
# worker of another pid (its XenStore node, data/bulkhead-worker/, and the
# process of that name in the driver domain) and for the guest to verify
# two more chunks; the guest must end with no I/O error.
wpid() { xenstore-read /local/domain/$DD/data/bulkhead-worker/vbd-$GID-51712 2>/dev/null; }
s5_progress() { console domu7 | sed -n 's/^@@DOMU s5-progress //p' | tail -1; }
s5_more() { p=$(s5_progress); [ "${p:-0}" -ge "$1" ]; }
s5_newworker() { p=$(wpid); [ -n "$p" ] && [ "$p" != "$1" ]; }
# s5_step WHAT OLDPID: the worker that replaced OLDPID serves, and the guest's I/O goes on.
s5_step() {
    if ! waitfor 120 s5_newworker "$2"; then
        fail s5-$1 "no new worker after $1 (was pid $2, now '$(wpid)')"; diag; return 1
    fi
    # The node is the worker's word; the process of that name is the driver domain's.
    if [ "$(ask pid bhw-$GID-51712)" != "$(wpid)" ]; then
        fail s5-$1 "worker $(wpid) published, the driver domain's bhw-$GID-51712 is '$(ask pid bhw-$GID-51712)'"
        return 1
    fi
    p=$(s5_progress)
    if ! waitfor 180 s5_more $((${p:-0} + 2)); then
        fail s5-$1 "the guest's I/O stopped after $1 (at chunk ${p:-0}); worker $(wpid)"; diag; return 1
    fi
    mark s5-$1 "worker $2 -> $(wpid), guest at chunk $(s5_progress)"
}
restart() {
    name=domu7
    mark "$name-create"
    if ! timeout -k 10 180 xl create /etc/xen/$name.cfg > /run/$name-create.log 2>&1; then
        fail s5-create "xl create $name failed"; tail -20 /run/$name-create.log; diag
        timeout -k 5 30 xl destroy "$name" 2>/dev/null
        return
    fi
    GID=$(xl domid $name)
    ok=0
    if ! waitfor 200 s5_more 2; then
        fail s5-worker-killed "the guest's loop never got going: $(console $name | grep '^@@DOMU' | tail -2 | tr '\n' ' ')"
    else
        first=$(wpid) ok=1
        for k in 1 2 3; do
            old=$(ask kill bhw-$GID-51712)
            [ -n "$old" ] || { fail s5-worker-killed "no process bhw-$GID-51712 in the driver domain"; ok=0; break; }
            s5_step killed-$k "$old" || { ok=0; break; }
        done
        [ $ok = 1 ] && pass s5-worker-killed
    fi
    if [ $ok = 1 ]; then
        old=$(wpid)
        up_=$(ask upgrade)
        mark s5-upgrade "$up_"
        if [ "$up_" != "1 of 1 device taken over" ]; then
            fail s5-upgraded "bulkhead-drvdom --upgrade in the driver domain said '$up_'"; ok=0
        elif s5_step upgraded "$old"; then
            old=$(ask kill bhw-$GID-51712)
            s5_step upgraded-killed "$old" && pass s5-upgraded
        fi
    fi
    [ "$(wpid)" != "$first" ] && mark s5-worker-pid "first $first, last $(wpid)"
    ask stop /var/lib/bulkhead/disk1.img 7 >/dev/null
    if ! waitfor 300 gone "$name"; then
        fail s5-guest "$name still running after it was told to stop: its I/O stalled"; diag
        timeout -k 5 30 xl destroy "$name"
    fi
    mark "$name-gone"
    if said $name s5-io-ok && ! said $name s5-io-FAILED && [ "$first" != "$(wpid)" ]; then
        pass s5-guest-io-ok
    else
        fail s5-guest-io-ok "$(field $name s5-io-FAILED) (worker pid first '$first', last '$(wpid)')"
    fi
}
want 5 && restart

# Scenario 8: our own blkfront in a guest (domu8: the nbdkit plugin through
# libxengntshr and libxenevtchn, no xen-blkfront) against our blkback, on
# scenario 1's disk: fio's crc32c verify over the plugin's NBD export, then
# a tail the guest wrote, read in the driver domain.
ownfront() {
    name=domu8
    mark "$name-create"
    if ! timeout -k 10 180 xl create /etc/xen/$name.cfg > /run/$name-create.log 2>&1; then
        fail s8-create "xl create $name failed"; tail -20 /run/$name-create.log; diag
        timeout -k 5 30 xl destroy "$name" 2>/dev/null
        return
    fi
    if ! waitfor 600 gone "$name"; then
        fail s8-guest "$name still running after 600 s: its I/O stalled"; diag
        timeout -k 5 30 xl destroy "$name"
    fi
    mark "$name-gone"
    if said $name s8-fio-ok && ! said $name s8-FAILED; then pass s8-fio-verify
    else fail s8-fio-verify "$(console $name | sed -n 's/^@@DOMU s8-FAILED //p' | tr '\n' ' ')"; fi
    gmd5=$(field $name s8-tailmd5)
    dmd5=$(ask md5 /var/lib/bulkhead/disk1.img 63 1)
    if [ -n "$gmd5" ] && [ "$gmd5" = "$dmd5" ]; then pass s8-drvdom-reads-guest
    else fail s8-drvdom-reads-guest "the guest's blkfront wrote md5 '$gmd5', the driver domain reads '$dmd5'"; fi
}
want 8 && ownfront

# Scenario 3: a guest whose vif the driver domain serves (backend=drvdom):
# Linux's xen-netfront against bulkhead-drvdom's netback, its TAP on the
# driver domain's xenbr0, bridged through the driver domain's own
# netfront to dom0's xenbr0.  The guest (bhnet=1) pings dom0 and listens;
# dom0 sends it 8 MiB whose md5 dom0 knows, then fetches 8 MiB whose md5
# the guest printed.  bash's /dev/tcp is dom0's client: no nc in the image.
net_guest() {
    name=domu6
    mark "$name-create"
    if ! timeout -k 10 180 xl -vvv create /etc/xen/$name.cfg > /run/$name-create.log 2>&1; then
        fail s3-create "xl create $name failed (the vif's backend never reached InitWait?)"
        grep -v '^libxl: debug: libxl_event.c' /run/$name-create.log | tail -30
        xenstore-ls -f /local/domain/$DD/backend/vif 2>&1 | head -40
        timeout -k 5 30 xl destroy "$name" 2>/dev/null
        return
    fi
    GID=$(xl domid $name)
    ok=0
    if ! waitfor 300 said $name net-listening; then
        fail s3-ping "the guest never got to listen: $(field $name net-FAILED)"
        xenstore-ls -f /local/domain/$DD/backend/vif 2>&1 | head -40
    else
        if [ "$(field $name ping)" = ok ]; then
            pass s3-ping
        else
            fail s3-ping "the guest's ping of dom0 (10.99.0.1) through the driver domain failed"
            ip -s link; ip neigh; ask netdiag >/dev/null
        fi
        head -c $((8 * MIB)) /dev/urandom > /run/s3.data
        want=$(md5sum < /run/s3.data | cut -d' ' -f1)
        if ! timeout 300 bash -c 'cat /run/s3.data > /dev/tcp/10.99.0.10/5001'; then
            fail s3-tcp-md5 "dom0 could not send 8 MiB to the guest's port 5001 (connect or write failed)"
        else
            waitfor 200 said $name rx-md5
            got=$(field $name rx-md5)
            if [ -n "$got" ] && [ "$got" = "$want" ]; then pass s3-tcp-md5; ok=$((ok + 1))
            else fail s3-tcp-md5 "dom0 sent 8 MiB of md5 '$want', the guest received $(field $name rx-bytes) bytes of md5 '$got'"; fi
        fi
        timeout 300 bash -c 'cat < /dev/tcp/10.99.0.10/5002' > /run/s3.back
        got=$(md5sum < /run/s3.back | cut -d' ' -f1)
        want=$(field $name tx-md5)
        if [ -n "$want" ] && [ "$got" = "$want" ]; then pass s3-tcp-md5-back; ok=$((ok + 1))
        else fail s3-tcp-md5-back "the guest sent md5 '$want', dom0 received $(stat -c %s /run/s3.back) bytes of md5 '$got'"; fi
    fi
    # Both transfers done, the guest powers off; otherwise it still listens.
    if [ $ok != 2 ] || ! waitfor 120 gone "$name"; then
        [ $ok = 2 ] && fail s3-guest "$name still running after its transfers"
        timeout -k 5 30 xl destroy "$name"
    fi
    mark "$name-gone"
    # The vif gone, its TAP must be gone too (its keeper closed the last fd).
    tap=$(ask iface vif$GID.0)
    [ "$tap" = absent ] && pass s3-tap-gone ||
        fail s3-tap-gone "vif$GID.0 is still in the driver domain after the guest went ($tap)"
}
want 3 && net_guest

# Scenario 9: a disk whose params name an NBD server's unix socket in the
# driver domain (nbdkit over disk 9): the opener connects for the confined
# worker, which serves the guest's xen-blkfront over NBD.
want 9 && guest 9 domu9

# Scenario 7: a guest managed by libvirt, not xl: libvirtd (Debian 12 has
# the monolithic daemon only, no virtxend) with its libxl driver, the guest
# defined and started with virsh from tests/xen/domu-lv.xml, whose disk
# names the driver domain with <backenddomain>.  No systemd, dbus or polkit
# here: root on the unix socket with auth "none" is enough.  libvirtd not
# coming up is the environment's failure; a guest without its disk, or a
# teardown that leaves the driver domain's backend behind, is ours.
LVLOG=/var/log/libvirt/libvirtd.log
V() { timeout -k 5 120 virsh -q -c xen:///system "$@"; }
lv_up() { [ -S /run/libvirt/libvirt-sock ] && V uri >/dev/null 2>&1; }
lv_diag() {
    echo "---- libvirtd's log, libxl's (tails) ----"
    tail -n 15 $LVLOG; tail -n 25 /var/log/libvirt/libxl/libxl-driver.log 2>/dev/null
    diag
}
libvirt_guest() {
    name=domulv
    mkdir -p /var/log/libvirt /run/libvirt-drivers
    printf '%s\n' 'auth_unix_rw = "none"' 'auth_unix_ro = "none"' 'unix_sock_rw_perms = "0700"' \
        'log_outputs = "2:file:/var/log/libvirt/libvirtd.log"' > /run/libvirtd.conf
    # The libxl driver alone (LIBVIRT_DRIVER_DIR): libvirt-daemon's hard
    # dependency on the QEMU driver brings one whose start fails here (no
    # libvirt-qemu user: that is libvirt-daemon-system's) and takes the
    # whole daemon down with it; the others want dbus or udev.
    ln -sf /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_libxl.so /run/libvirt-drivers/
    # The libxl driver names the host CPU after the closest model of libvirt's
    # map, and will not start if none fits (x86Decode: "Cannot find suitable
    # CPU model").  None does here: every model in it wants vme or sep, and
    # Xen on QEMU's qemu64 reports neither (hw_caps 178bf3fd:...; qemu64 has
    # no vme, Xen hides sep on this AMD-branded CPU).  So the map gets one more
    # model, fpu alone, which fits any x86 and loses to every model that also
    # fits: only the name libvirt gives this host's CPU changes.
    mark s7-hw-caps "$(xl info 2>/dev/null | sed -n 's/^hw_caps *: //p')"
    M=/usr/share/libvirt/cpu_map
    printf '%s\n' '<cpus>' "  <model name='bh-emulated'>" "    <decode host='on' guest='off'/>" \
        "    <feature name='fpu'/>" '  </model>' '</cpus>' > $M/x86_bh-emulated.xml
    grep -q x86_bh-emulated.xml $M/index.xml ||
        sed -i "s|<include filename='x86_486.xml'/>|&\n    <include filename='x86_bh-emulated.xml'/>|" $M/index.xml
    mark libvirtd-start
    LIBVIRT_DRIVER_DIR=/run/libvirt-drivers \
        libvirtd --config /run/libvirtd.conf --pid-file /run/libvirtd.pid > /run/libvirtd.out 2>&1 &
    if ! waitfor 180 lv_up; then
        echo "@@ENV libvirtd (libxl driver) did not answer on xen:///system in 180 s: $(V uri 2>&1 | tail -1) $(tail -1 /run/libvirtd.out)"
        echo "---- libvirtd ($(pidof libvirtd || echo not running)): its output, its log ----"
        ls -la /run/libvirt; tail -n 20 /run/libvirtd.out; tail -n 40 $LVLOG
        return
    fi
    mark libvirtd-up "$(V version 2>&1 | tr '\n' ' ')"
    # The guest as an xl config line, for the log only: libvirt 9.0's xen-xl
    # converter leaves <backenddomain> out, what libxl was told is checked below.
    mark s7-native "$(V domxml-to-native xen-xl /etc/xen/domu-lv.xml 2>&1 | grep -E '^disk|^vif' | tr '\n' ' ')"
    if ! V define /etc/xen/domu-lv.xml > /run/$name-define.log 2>&1; then
        fail s7-define "virsh define rejected domu-lv.xml: $(tail -1 /run/$name-define.log)"
        return
    fi
    # Started paused: the device layout libvirt had libxl write is checked
    # before the guest runs, as xl would have written it.
    mark "$name-create"
    if ! V start --paused $name > /run/$name-start.log 2>&1; then
        fail s7-start "virsh start failed (backend never reached InitWait?): $(tail -2 /run/$name-start.log | tr '\n' ' ')"
        lv_diag
        V destroy $name >/dev/null 2>&1; V undefine $name >/dev/null 2>&1
        return
    fi
    GID=$(V domid $name)
    B=/local/domain/$DD/backend/qdisk/$GID/51712 F=/local/domain/$GID/device/vbd/51712
    got="$(xenstore-read $B/frontend 2>&1) $(xenstore-read $B/frontend-id 2>&1) $(xenstore-read $F/backend 2>&1) $(xenstore-read $F/backend-id 2>&1) $(xenstore-read $B/params 2>&1)"
    if [ "$got" = "$F $GID $B $DD aio:/var/lib/bulkhead/disk2.img" ]; then pass s7-backend-path
    else fail s7-backend-path "libvirt's layout: '$got', xl's would be '$F $GID $B $DD aio:/var/lib/bulkhead/disk2.img'"; diag; fi
    N=/local/domain/$DD/backend/vif/$GID/0
    V resume $name > /dev/null 2>&1 || fail s7-start "virsh resume failed"
    # The interface: Linux's netfront against the driver domain's netback.
    vif_up() { [ "$(xenstore-read $N/state 2>/dev/null)" = 4 ]; }
    if waitfor 120 vif_up; then pass s7-vif-connected
    else fail s7-vif-connected "the vif's backend $N is in state '$(xenstore-read $N/state 2>&1)', not 4 (Connected)"; diag; fi
    lv_done() { said $name done || gone $name; }
    if ! waitfor 300 lv_done; then
        fail s7-guest "$name not done after 300 s: its I/O stalled"; lv_diag
    fi
    # The teardown: virsh destroy of the running guest, its disk connected;
    # then no backend, frontend or domain may be left, nor libvirt's definition.
    mark "$name-destroy"
    bgone() { ! xs_has $B && ! xs_has $N && ! xs_has /local/domain/$GID && gone $name; }
    if gone $name; then
        why="$name was gone before virsh destroy (it powers off only without xvda: $(field $name xvda-MISSING))"
    elif ! V destroy $name > /run/$name-destroy.log 2>&1; then
        why="virsh destroy failed: $(tail -1 /run/$name-destroy.log)"
    elif ! waitfor 60 bgone; then
        why="after virsh destroy: disk backend $(xs_has $B && echo left || echo gone), vif backend $(xs_has $N && echo left || echo gone), frontend $(xs_has /local/domain/$GID && echo left || echo gone), domain $(gone $name && echo gone || echo left)"
    elif ! V undefine $name > /run/$name-undefine.log 2>&1; then
        why="virsh undefine failed: $(tail -1 /run/$name-undefine.log)"
    elif V list --all --name | grep -qx $name; then
        why="virsh still lists $name after undefine"
    else
        why=""
    fi
    if [ -z "$why" ]; then pass s7-cleanup; else fail s7-cleanup "$why"; lv_diag; fi
    V undefine $name >/dev/null 2>&1
    mark "$name-gone"
    want=$(xenstore-read /local/domain/$DD/data/bh-pattern2)
    got=$(field $name read)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then pass s7-guest-reads-drvdom
    else fail s7-guest-reads-drvdom "guest read '$got', the driver domain wrote '$want'"; fi
    gmd5=$(field $name tailmd5)
    dmd5=$(ask md5 /var/lib/bulkhead/disk2.img 63 1)
    if [ -n "$gmd5" ] && [ "$gmd5" = "$dmd5" ]; then pass s7-drvdom-reads-guest
    else fail s7-drvdom-reads-guest "guest wrote md5 '$gmd5', the driver domain reads '$dmd5'"; fi
    kill "$(cat /run/libvirtd.pid 2>/dev/null)" 2>/dev/null
}
want 7 && libvirt_guest

# The ratio: domu3 (bhbench=1) timed its O_DIRECT writes and reads against
# the driver domain; domu5 runs the same against dom0's own kernel blkback
# on a loop device over a tmpfs file, as the driver domain's disk 1.  Only
# reported: absolute figures under emulation mean nothing, and no test
# asserts a speed.  A dom0 that cannot serve it says why and fails nothing.
bench_dom0() {
    modprobe xen-blkback 2>/dev/null || { mark ratio-unmeasured "no xen-blkback in dom0"; return; }
    modprobe loop 2>/dev/null
    dd if=/dev/zero of=/run/dom0disk.img bs=1M count=64 2>/dev/null &&
        losetup /dev/loop0 /run/dom0disk.img || { mark ratio-unmeasured "no loop device in dom0"; return; }
    mark domu5-create
    if ! timeout -k 10 180 xl create /etc/xen/domu5.cfg > /run/domu5-create.log 2>&1; then
        mark ratio-unmeasured "xl create domu5 (dom0's blkback) failed: $(tail -1 /run/domu5-create.log)"
        timeout -k 5 30 xl destroy domu5 2>/dev/null
    elif ! waitfor 300 gone domu5; then
        mark ratio-unmeasured "domu5 did not finish"; timeout -k 5 30 xl destroy domu5
    fi
    losetup -d /dev/loop0
    dd_=$(field domu3 bench) d0=$(field domu5 bench)
    mark bench-drvdom "$dd_"
    mark bench-dom0 "$d0"
    w1=${dd_#write_ms=}; w1=${w1%% *}; r1=${dd_##*read_ms=}
    w0=${d0#write_ms=}; w0=${w0%% *}; r0=${d0##*read_ms=}
    if [ -n "$w1" ] && [ -n "$w0" ] && [ "$w1" -gt 0 ] 2>/dev/null && [ "$r1" -gt 0 ] 2>/dev/null; then
        # throughput ratio driver domain / dom0 = dom0's time / the driver domain's, in percent
        mark ratio "write $((100 * w0 / w1))% read $((100 * r0 / r1))% of dom0's kernel blkback"
    else
        mark ratio-unmeasured "no timings (driver domain '$dd_', dom0 '$d0')"
    fi
}
want 4 && bench_dom0   # domu3 (scenario 4) is the driver domain's half

[ "$(ask alive)" = yes ] && pass drvdom-still-serving || fail drvdom-still-serving "bulkhead-drvdom died"
timeout -k 5 60 xl destroy drvdom
finish
