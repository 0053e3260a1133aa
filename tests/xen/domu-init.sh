#!/bin/busybox sh
# domu-init.sh - PID 1 of the Xen tier's guests: Linux's own xen-blkfront
# against the driver domain.  Reads what the driver domain wrote at the
# start of /dev/xvda, writes 1 MiB of random data at 63 MiB (the driver
# domain reads it back), and with bhfs=1 on the command line makes an ext2
# filesystem in the first 60 MiB, fills it, and checks the file's md5
# after a remount.  Reports "@@DOMU <what> <value>" lines and powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
up() { cut -d' ' -f1 /proc/uptime; }
echo "@@DOMU up $(up)"
while read -r m; do insmod /lib/modules/$m || echo "@@DOMU insmod-FAILED $m"; done < /lib/modules/order
# bhownfront=1 (scenario 8): no xen-blkfront here; our own blkfront, the
# nbdkit plugin, takes the vbd (51712, xvda) on the Xen platform and
# exports it over NBD, and fio verifies 16 MiB through it.  Then a 1 MiB
# tail of a pattern made here goes in at 63 MiB, for dom0 to compare with
# what the driver domain reads there.
if grep -q bhownfront=1 /proc/cmdline; then
    export LD_LIBRARY_PATH=/usr/local/lib BULKHEAD_PLATFORM=xen
    for d in gntalloc evtchn xenbus; do
        [ -e /dev/xen/$d ] || echo "@@DOMU s8-FAILED no /dev/xen/$d"
    done
    [ -e /sys/module/xen_blkfront ] && echo "@@DOMU s8-FAILED Linux's xen-blkfront is loaded"
    sock=/run/vbd.sock uri="nbd+unix:///?socket=/run/vbd.sock"
    nbdkit -f -U $sock -t 8 /usr/local/lib/bulkhead/nbdkit-bulkhead-plugin.so vbd=51712 \
        timeout=120000 > /tmp/nbdkit.log 2>&1 &
    i=0; while [ ! -S $sock ] && [ $i -lt 600 ] && kill -0 $! 2>/dev/null; do sleep 0.2; i=$((i+1)); done
    if [ ! -S $sock ]; then
        echo "@@DOMU s8-FAILED nbdkit never listened: $(tail -3 /tmp/nbdkit.log | tr '\n' ' ')"
    else
        echo "@@DOMU s8-nbd $(up)"
        fio --name=s8 --ioengine=nbd --uri="$uri" --rw=randrw --bsrange=4k-64k --iodepth=8 \
            --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 > /tmp/fio.out 2>&1
        rc=$?
        grep -E 'err=|READ:|WRITE:|verify' /tmp/fio.out | sed 's/^ */@@DOMU s8-fio-out /'
        if [ $rc = 0 ] && grep -q 'err= 0' /tmp/fio.out; then echo "@@DOMU s8-fio-ok $(up)"
        else echo "@@DOMU s8-FAILED fio exit $rc: $(tail -5 /tmp/fio.out | tr '\n' ' ')"; fi
        # 16 characters, which 64 KiB blocks repeat whole: 1 MiB of it is easy to make here.
        p=$(printf 's8t-%012d' "$(cut -d' ' -f1 /proc/uptime | tr -d .)"); t=$p
        for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do t=$t$t; done
        fio --name=s8tail --ioengine=nbd --uri="$uri" --rw=write --bs=64k --offset=63M --size=1M \
            --buffer_pattern="\"$p\"" > /tmp/fio2.out 2>&1 ||
            echo "@@DOMU s8-FAILED fio's tail write: $(tail -3 /tmp/fio2.out | tr '\n' ' ')"
        echo "@@DOMU s8-tailmd5 $(printf '%s' "$t" | md5sum | cut -d' ' -f1)"
    fi
    kill $! 2>/dev/null
    sed 's/^/@@DOMU s8-nbdkit-log /' /tmp/nbdkit.log | head -20
    echo "@@DOMU done $(up)"
    poweroff -f
fi
# bhnet=1 (scenario 3): no disk; eth0, whose backend is the driver domain,
# gets 10.99.0.10/24 and pings dom0 (10.99.0.1).  Then two listeners: 8 MiB
# from dom0 on port 5001 (its md5 printed), and 8 MiB of our own, md5
# printed first, to whoever connects to port 5002 (dom0).
if grep -q bhnet=1 /proc/cmdline; then
    i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
    if ! ip addr add 10.99.0.10/24 dev eth0 || ! ip link set eth0 up; then
        echo "@@DOMU net-FAILED no eth0 to configure $(up)"; poweroff -f
    fi
    echo "@@DOMU eth0 $(up)"
    ok=FAILED
    for t in 1 2 3 4 5 6 7 8 9 10; do
        ping -c 1 -W 5 10.99.0.1 >/dev/null 2>&1 && { ok=ok; break; }
    done
    echo "@@DOMU ping $ok"
    [ $ok = ok ] || { ip -s link show eth0; ip neigh; }
    # Numbered lines: a chunk lost, doubled or reordered changes the md5.
    { echo "back-$(cat /proc/uptime)-$$"; seq 1 1200000; } | head -c 8388608 > /tmp/out
    echo "@@DOMU tx-md5 $(md5sum < /tmp/out | cut -d' ' -f1)"
    nc -l -p 5001 > /tmp/in &
    rx=$!
    nc -l -p 5002 < /tmp/out &
    tx=$!
    echo "@@DOMU net-listening $(up)"
    wait $rx
    echo "@@DOMU rx-bytes $(wc -c < /tmp/in)"
    echo "@@DOMU rx-md5 $(md5sum < /tmp/in | cut -d' ' -f1)"
    wait $tx
    echo "@@DOMU done $(up)"
    poweroff -f
fi
i=0; while [ ! -b /dev/xvda ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
if [ ! -b /dev/xvda ]; then
    echo "@@DOMU xvda-MISSING $(up)"; poweroff -f
fi
echo "@@DOMU xvda $(up) sectors=$(cat /sys/block/xvda/size)"
# blkfront says at connect whether it bounces (a frontend told trusted=0).
echo "@@DOMU bounce $(dmesg | sed -n 's/.*bounce buffer: \([a-z]*\).*/\1/p' | head -1)"
echo "@@DOMU read $(dd if=/dev/xvda bs=512 count=1 2>/dev/null | tr -dc 'A-Za-z0-9-' | head -c 40)"
# Not /dev/urandom: before the guest's CRNG is seeded (slow under emulation)
# a read of it waits; data that differs per boot is all the check needs.
yes "tail-$(cat /proc/uptime)-$$" | head -c 1048576 > /tmp/tail
dd if=/tmp/tail of=/dev/xvda bs=1M seek=63 conv=fsync 2>/dev/null
echo "@@DOMU tailmd5 $(md5sum < /tmp/tail | cut -d' ' -f1)"
if grep -q bhfs=1 /proc/cmdline; then
    if mke2fs -q /dev/xvda 61440 && mkdir -p /mnt && mount -t ext2 /dev/xvda /mnt; then
        yes "fill-$(cat /proc/uptime)-$$" | head -c 16777216 > /mnt/fill
        a=$(md5sum < /mnt/fill | cut -d' ' -f1)
        umount /mnt; echo 3 > /proc/sys/vm/drop_caches
        mount -t ext2 /dev/xvda /mnt && b=$(md5sum < /mnt/fill | cut -d' ' -f1) && umount /mnt
        if [ "$a" = "$b" ]; then echo "@@DOMU fs-md5-ok $a"; else echo "@@DOMU fs-FAILED md5 $a then $b"; fi
    else
        echo "@@DOMU fs-FAILED mke2fs or mount"
    fi
fi
# bhhotplug=1 (scenario 4): the disk is taken away and given back while this
# guest runs (dom0's xl block-detach / block-attach); the guest says when it
# saw each, then reads the driver domain's pattern and writes and reads back
# a new tail through the new device.
if grep -q bhhotplug=1 /proc/cmdline; then
    echo "@@DOMU hotplug-ready $(up)"
    i=0; while [ -b /dev/xvda ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done
    if [ -b /dev/xvda ]; then
        echo "@@DOMU hotplug-FAILED xvda still there"
    else
        echo "@@DOMU xvda-gone $(up)"
        i=0; while [ ! -b /dev/xvda ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done
        if [ ! -b /dev/xvda ]; then
            echo "@@DOMU hotplug-FAILED xvda never came back"
        else
            echo "@@DOMU xvda-back $(up)"
            echo "@@DOMU read2 $(dd if=/dev/xvda bs=512 count=1 2>/dev/null | tr -dc 'A-Za-z0-9-' | head -c 40)"
            yes "tail2-$(cat /proc/uptime)-$$" | head -c 1048576 > /tmp/tail2
            dd if=/tmp/tail2 of=/dev/xvda bs=1M seek=62 conv=fsync 2>/dev/null
            echo 3 > /proc/sys/vm/drop_caches
            a=$(md5sum < /tmp/tail2 | cut -d' ' -f1)
            b=$(dd if=/dev/xvda bs=1M skip=62 count=1 2>/dev/null | md5sum | cut -d' ' -f1)
            [ "$a" = "$b" ] || echo "@@DOMU hotplug-FAILED wrote $a, read back $b"
            echo "@@DOMU tail2md5 $a"
        fi
    fi
fi
# bhbench=1: the ratio's half from this guest: 32 MiB written and read
# back with O_DIRECT (past the guest's page cache), each timed by the
# guest's clock.  Reported, never judged: emulation makes the absolute
# figures meaningless, the driver-domain-to-dom0 ratio is what dom0 prints.
if grep -q bhbench=1 /proc/cmdline; then
    ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
    # From 1 MiB: the first sector's pattern and the tails at 62 and 63 MiB stay.
    a=$(ms); dd if=/dev/zero of=/dev/xvda bs=1M seek=1 count=32 oflag=direct 2>/dev/null; b=$(ms)
    dd if=/dev/xvda of=/dev/null bs=1M skip=1 count=32 iflag=direct 2>/dev/null; c=$(ms)
    echo "@@DOMU bench write_ms=$((b - a)) read_ms=$((c - b))"
fi
# bhrestart=1 (scenario 5): writes 256 KiB chunks of data that differ per
# chunk and per boot, O_DIRECT and fsynced, round the 4 MiB from 8 MiB, and
# reads each back O_DIRECT and compares, while dom0 has the driver domain's
# worker for this disk killed and upgraded.  A progress line per chunk lets
# dom0 see I/O go on after each restart; dom0 ends the loop by having the
# driver domain write S5-STOP at 7 MiB, which the guest reads each round.
if grep -q bhrestart=1 /proc/cmdline; then
    seed=$(cut -d' ' -f1 /proc/uptime); i=0; bad=""
    echo "@@DOMU s5-loop $(up)"
    while [ $i -lt 3000 ]; do
        at=$((32 + i % 16))
        yes "s5-$seed-$i" | head -c 262144 > /tmp/c
        dd if=/tmp/c of=/dev/xvda bs=256k seek=$at oflag=direct conv=fsync 2>/tmp/err ||
            { bad="chunk $i: write failed: $(tr '\n' ' ' < /tmp/err)"; break; }
        a=$(md5sum < /tmp/c | cut -d' ' -f1)
        b=$(dd if=/dev/xvda bs=256k skip=$at count=1 iflag=direct 2>/tmp/err | md5sum | cut -d' ' -f1)
        [ "$a" = "$b" ] || { bad="chunk $i: wrote md5 $a, read back $b $(tr '\n' ' ' < /tmp/err)"; break; }
        i=$((i + 1))
        echo "@@DOMU s5-progress $i"
        [ "$(dd if=/dev/xvda bs=1M skip=7 count=1 iflag=direct 2>/dev/null | head -c 7)" = S5-STOP ] && break
    done
    dmesg | grep -q -i 'I/O error' && bad="$bad; the kernel logged: $(dmesg | grep -i 'I/O error' | head -1)"
    if [ -z "$bad" ]; then echo "@@DOMU s5-io-ok $i chunks verified"
    else echo "@@DOMU s5-io-FAILED $bad"; fi
fi
echo "@@DOMU done $(up)"
# bhhold=1 (scenario 7): stay up, the disk still connected, until dom0's
# toolstack destroys the guest (virsh destroy): the teardown under test is
# the one of a running guest, not of one that powered itself off.
if grep -q bhhold=1 /proc/cmdline; then
    while :; do sleep 60; done
fi
poweroff -f
