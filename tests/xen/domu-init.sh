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
echo "@@DOMU done $(up)"
# bhhold=1 (scenario 7): stay up, the disk still connected, until dom0's
# toolstack destroys the guest (virsh destroy): the teardown under test is
# the one of a running guest, not of one that powered itself off.
if grep -q bhhold=1 /proc/cmdline; then
    while :; do sleep 60; done
fi
poweroff -f
