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
echo "@@DOMU done $(up)"
poweroff -f
