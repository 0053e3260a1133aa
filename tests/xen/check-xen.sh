#!/bin/bash
# check-xen.sh - the real-Xen tier (`make check-xen`): boots Xen 4.17 and a
# Debian dom0 under QEMU (software emulation), starts a Linux PV driver
# domain (driver_domain=1, no kernel backends) running bulkhead-drvdom on
# the Xen platform, and has Linux PV guests, made by the real `xl` from
# ordinary configs, use it.  tests/xen/init.sh is dom0's and the driver
# domain's /init and runs the scenarios; tests/xen/domu-init.sh is the
# guests'.  Every result is a marker on the serial console; this script
# passes only on the explicit success markers it expects.
#
# Exit: 0 passed; 1 product failure (dom0 and the driver domain came up,
# a scenario did not pass); 77 skipped (a tool is missing or not root: the
# message says what to install); 99 environment failure (package download,
# debootstrap, QEMU or Xen never reaching dom0) - not Bulkhead's fault.
#
# Env: BH_XEN_CACHE (default /var/cache/bulkhead-xen): images, by package
#      versions; BH_BUILDDIR, BH_SRCDIR (set by make); BH_XEN_KEEP=1 keeps
#      the run directory; BH_XEN_BOOT_TIMEOUT (default 900 s) bounds the boot;
#      BH_XEN_TRACE=1 puts blkback's trace (BULKHEAD_BLK_TRACE) in the log;
#      BH_XEN_SCENARIOS (default all), e.g. "1,4": only those scenarios run
#      and only their markers are expected (for working on one of them).
set -uo pipefail

SRC=${BH_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BH_BUILDDIR:-$SRC/build}
CACHE=${BH_XEN_CACHE:-/var/cache/bulkhead-xen}
BOOT_TIMEOUT=${BH_XEN_BOOT_TIMEOUT:-900}
SCEN=${BH_XEN_SCENARIOS:-all}
[[ $SCEN =~ ^(all|[0-9]+(,[0-9]+)*)$ ]] ||
    { echo "check-xen: BH_XEN_SCENARIOS='$SCEN': give 'all' or scenario numbers like 1,4" >&2; exit 2; }
XENVER=4.17
T0=$(date +%s)

say() { echo "check-xen [$(( $(date +%s) - T0 ))s]: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
envfail() { say "ENVIRONMENT FAILURE (not a Bulkhead failure): $*"; exit 99; }

# ---- tools: a missing one is a skip, and says how to get it ----
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap and chroot build the image): run it as root"
for t in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap cpio:cpio zstd:zstd \
         apt-get:apt dpkg-deb:dpkg; do
    command -v "${t%%:*}" >/dev/null ||
        skip "${t%%:*} is missing: install ${t#*:} (scripts/install-deps-xen installs all the tier needs)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && grep -q 'not a dynamic' <<<"$(ldd "$BUSYBOX" 2>&1)" ||
    skip "a static busybox is missing: install busybox-static (scripts/install-deps-xen)"
wants() { [ "$SCEN" = all ] || [[ ,$SCEN, == *,$1,* ]]; }
# Scenario 8's guest runs nbdkit (our blkfront plugin) and fio from the host.
if wants 8; then
    for t in nbdkit:nbdkit fio:fio; do
        command -v "${t%%:*}" >/dev/null ||
            skip "${t%%:*} is missing (scenario 8's guest runs it): install ${t#*:} (scripts/install-deps-xen), or run BH_XEN_SCENARIOS without 8"
    done
fi
# Scenario 9's driver domain serves a disk from the host's nbdkit (its file plugin).
NBDKIT_FILE=$(nbdkit --dump-config 2>/dev/null | sed -n 's/^plugindir=//p')/nbdkit-file-plugin.so
if wants 9 && [ ! -f "$NBDKIT_FILE" ]; then
    skip "nbdkit's file plugin is missing (scenario 9's driver domain runs it): install nbdkit (scripts/install-deps-xen), or run BH_XEN_SCENARIOS without 9"
fi
[ -x "$BUILD/driverdom/bulkhead-drvdom" ] ||
    { say "no $BUILD/driverdom/bulkhead-drvdom: build Bulkhead first (make)"; exit 1; }

# ---- the image: cached by the versions of what goes in it ----
pkgver() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
XENV=$(pkgver xen-hypervisor-$XENVER-amd64)
UTILV=$(pkgver xen-utils-$XENVER)
[ -n "$KPKG" ] && [ -n "$XENV" ] && [ -n "$UTILV" ] && [ "$XENV" != "(none)" ] ||
    envfail "apt knows no xen-hypervisor-$XENVER-amd64 / xen-utils-$XENVER / linux-image-amd64: run apt-get update (Debian 12 sources)"
KV=$(pkgver "$KPKG")
# The recipe itself is part of the key: a changed image script rebuilds.
KEY=$(printf '%s\n' "$XENV" "$UTILV" "$KPKG" "$KV" "$(sed -n '/^# ---- image recipe/,/^# ---- end of recipe/p' "$0")" |
      sha256sum | cut -c1-16)
IMG=$CACHE/img-$KEY
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bh-xen.XXXXXX")
QPID=""
MOUNTS=()

cleanup() {
    local rc=$?
    [ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        mountpoint -q "${MOUNTS[$i]}" && umount -l "${MOUNTS[$i]}"
    done
    if [ "${BH_XEN_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- image recipe (changes here rebuild the cached image) ----
build_image() {
    local tmp=$CACHE/.build-$KEY mirror
    rm -rf "$tmp"; mkdir -p "$tmp/debs" "$tmp/pkg"
    say "building the image into $IMG (once per package versions)"
    (cd "$tmp/debs" && timeout 300 apt-get download -q "xen-hypervisor-$XENVER-amd64" "$KPKG") \
        > "$tmp/download.log" 2>&1 || { tail -5 "$tmp/download.log" >&2; envfail "apt-get download of Xen/the kernel failed"; }
    for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/pkg"; done
    zcat "$tmp"/pkg/boot/xen-$XENVER-amd64.gz > "$tmp/xen.elf"     # QEMU's multiboot wants ELF32
    cp "$tmp"/pkg/boot/vmlinuz-* "$tmp/vmlinuz"
    local kver; kver=$(ls "$tmp/pkg/lib/modules"); echo "$kver" > "$tmp/kver"
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
    mirror=${mirror:-http://deb.debian.org/debian}
    say "debootstrap (minbase bookworm) from $mirror"
    timeout 900 debootstrap --variant=minbase --include=kmod,iproute2,procps,util-linux,xxd \
        bookworm "$tmp/rootfs" "$mirror" > "$tmp/debootstrap.log" 2>&1 ||
        { tail -5 "$tmp/debootstrap.log" >&2; envfail "debootstrap failed (network? mirror $mirror)"; }
    # The host's sources: bookworm-security carries the same xen 4.17.x as the hypervisor.
    if [ -e /etc/apt/sources.list.d/debian.sources ]; then
        cp /etc/apt/sources.list.d/debian.sources "$tmp/rootfs/etc/apt/sources.list.d/"
        rm -f "$tmp/rootfs/etc/apt/sources.list"
    else
        cp /etc/apt/sources.list "$tmp/rootfs/etc/apt/sources.list"
    fi
    mount --bind /proc "$tmp/rootfs/proc"; MOUNTS+=("$tmp/rootfs/proc")
    timeout 900 chroot "$tmp/rootfs" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends xen-utils-$XENVER=$UTILV xenstore-utils \
        liburing2 libnbd0 e2fsprogs libvirt-daemon libvirt-daemon-driver-xen libvirt-clients" > "$tmp/chroot-apt.log" 2>&1
    local rc=$?
    umount "$tmp/rootfs/proc"; unset 'MOUNTS[-1]'
    [ $rc = 0 ] || { tail -5 "$tmp/chroot-apt.log" >&2; envfail "installing xen-utils-$XENVER in the image failed"; }
    rm -rf "$tmp"/rootfs/usr/share/{doc,man,locale,info} "$tmp"/rootfs/var/cache/apt/* \
           "$tmp"/rootfs/var/lib/apt/lists/*
    local m=$tmp/pkg/lib/modules/$kver
    for d in drivers/xen drivers/block drivers/net/xen-netfront.ko drivers/net/tun.ko net/bridge \
             drivers/net/xen-netback \
             net/802 net/llc fs/ext4 fs/jbd2 fs/mbcache.ko lib crypto arch/x86/crypto; do
        [ -e "$m/kernel/$d" ] || continue
        mkdir -p "$tmp/rootfs/lib/modules/$kver/kernel/$(dirname "$d")"
        cp -a "$m/kernel/$d" "$tmp/rootfs/lib/modules/$kver/kernel/$d"
    done
    cp -a "$m"/modules.{order,builtin,builtin.modinfo} "$tmp/rootfs/lib/modules/$kver/"
    chroot "$tmp/rootfs" depmod "$kver" || envfail "depmod in the image failed"
    (cd "$tmp/rootfs" && find . -xdev | grep -v '^./proc/' | cpio -o -H newc --quiet | zstd -q -T0 -10) \
        > "$tmp/base.cpio.zst" || envfail "packing the image failed"
    rm -rf "$tmp/debs" "$tmp/pkg"
    rm -rf "$IMG"; mv "$tmp" "$IMG"
}
# ---- end of recipe ----

mkdir -p "$CACHE"
if [ ! -s "$IMG/base.cpio.zst" ]; then
    build_image
else
    say "image cached: $IMG (xen $XENV, $KPKG $KV)"
fi
[ "${BH_XEN_ONLY_IMAGE:-0}" = 1 ] && exit 0
KVER=$(cat "$IMG/kver")
ROOT=$IMG/rootfs

# ---- the overlay: Bulkhead's binaries, the scripts, the guests' initramfs ----
OV=$WORK/ov
mkdir -p "$OV/usr/local" "$OV/etc/xen" "$OV/root"
say "installing Bulkhead into the overlay"
make -s -C "$BUILD" install DESTDIR="$OV" prefix=/usr/local > "$WORK/install.log" 2>&1 ||
    { tail -20 "$WORK/install.log" >&2; say "make install failed"; exit 1; }
# Libraries the image lacks come from the host: both are Debian 12.
for f in "$OV"/usr/local/bin/* "$OV"/usr/local/sbin/* "$OV"/usr/local/lib/*.so*; do
    [ -f "$f" ] || continue
    LD_LIBRARY_PATH=$OV/usr/local/lib ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
    case $lib in "$OV"*) continue;; esac
    [ -e "$ROOT$lib" ] || [ -e "$ROOT/usr$lib" ] || { mkdir -p "$OV$(dirname "$lib")"; cp -L "$lib" "$OV$lib"; }
done
# Scenario 9: nbdkit and its file plugin for the driver domain, with what they link.
if wants 9; then
    mkdir -p "$OV/usr/local/lib/nbdkit/plugins"
    cp -L "$(command -v nbdkit)" "$OV/usr/local/bin/nbdkit"
    cp -L "$NBDKIT_FILE" "$OV/usr/local/lib/nbdkit/plugins/"
    for f in "$OV/usr/local/bin/nbdkit" "$OV/usr/local/lib/nbdkit/plugins/nbdkit-file-plugin.so"; do
        ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
    done | sort -u | while read -r lib; do
        [ -e "$ROOT$lib" ] || [ -e "$ROOT/usr$lib" ] || { mkdir -p "$OV$(dirname "$lib")"; cp -L "$lib" "$OV$lib"; }
    done
fi
mkdir -p "$OV/etc/ld.so.conf.d"; echo /usr/local/lib > "$OV/etc/ld.so.conf.d/bulkhead.conf"
install -m 0755 "$SRC/tests/xen/init.sh" "$OV/init"
cp "$SRC"/tests/xen/*.cfg "$SRC"/tests/xen/*.xml "$OV/etc/xen/"
# BH_XEN_TRACE=1: blkback's trace (BULKHEAD_BLK_TRACE) in the driver domain's log.
[ "${BH_XEN_TRACE:-0}" = 1 ] && sed -i 's/role=driverdomain/role=driverdomain bhtrace=1/' "$OV/etc/xen/drvdom.cfg"
cp "$IMG/vmlinuz" "$OV/root/vmlinuz"

# A guest: static busybox, the frontends and ext4's modules with their dependencies.
DU=$WORK/domu
mkdir -p "$DU"/{bin,proc,sys,dev,mnt,tmp,lib/modules}
cp "$BUSYBOX" "$DU/bin/busybox"
mods() { # the .ko files for modules $@, dependencies first (modules.dep)
    local m dep
    for m in "$@"; do
        dep=$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$ROOT/lib/modules/$KVER/modules.dep") || continue
        for d in $(echo "${dep#*:}" | tr ' ' '\n' | tac) "${dep%%:*}"; do echo "$d"; done
    done | awk '!seen[$0]++'
}
# crc32c_generic: ext4 asks the crypto API for crc32c by name (a soft
# dependency, not in modules.dep); without it no ext2/ext4 mounts.
mods xen-blkfront xen-netfront crc32c_generic ext4 > "$DU/lib/modules/order"
while read -r k; do cp "$ROOT/lib/modules/$KVER/$k" "$DU/lib/modules/"; done < "$DU/lib/modules/order"
sed -i 's|.*/||' "$DU/lib/modules/order"
install -m 0755 "$SRC/tests/xen/domu-init.sh" "$DU/init"
(cd "$DU" && find . | cpio -o -H newc --quiet | gzip -1) > "$OV/root/domu.cpio.gz"
# Scenario 8's guest: our own blkfront (the nbdkit plugin, through
# libxengntshr and libxenevtchn) and fio instead of Linux's xen-blkfront,
# which it must not load.  A second, bigger initramfs, so that the other
# guests stay small: the binaries and every library ldd names, from the host
# (Debian 12, as the image), and the modules for /dev/xen/{gntalloc,evtchn}
# (/dev/xen/xenbus comes with the kernel's xenbus).
if wants 8; then
    D8=$WORK/domu8
    mkdir -p "$D8"/{bin,proc,sys,dev,tmp,run,lib/modules}
    cp "$BUSYBOX" "$D8/bin/busybox"
    PLUGIN=$OV/usr/local/lib/bulkhead/nbdkit-bulkhead-plugin.so
    for f in "$(command -v nbdkit)" "$(command -v fio)" "$PLUGIN"; do
        case $f in "$OV"/*) t=${f#"$OV"};; *) t=$f;; esac
        mkdir -p "$D8$(dirname "$t")"; cp -L "$f" "$D8$t"
        LD_LIBRARY_PATH=$OV/usr/local/lib ldd "$f" | awk '/=> \//{print $3} /^\t\//{print $1}'
    done | sort -u | while read -r lib; do
        case $lib in "$OV"/*) t=${lib#"$OV"};; *) t=$lib;; esac
        mkdir -p "$D8$(dirname "$t")"; cp -L "$lib" "$D8$t"
    done
    mods xen-gntalloc xen-evtchn > "$D8/lib/modules/order"
    while read -r k; do cp "$ROOT/lib/modules/$KVER/$k" "$D8/lib/modules/"; done < "$D8/lib/modules/order"
    sed -i 's|.*/||' "$D8/lib/modules/order"
    install -m 0755 "$SRC/tests/xen/domu-init.sh" "$D8/init"
    (cd "$D8" && find . | cpio -o -H newc --quiet | gzip -1) > "$OV/root/domu8.cpio.gz"
fi
# The driver domain boots the image and the overlay (minus the copies it does not need).
(cd "$OV" && find . ! -path ./root/domu.cpio.gz ! -path ./root/domu8.cpio.gz ! -path ./root/vmlinuz | cpio -o -H newc --quiet | gzip -1) > "$WORK/ovdd.cpio.gz"
cat "$IMG/base.cpio.zst" "$WORK/ovdd.cpio.gz" > "$OV/root/drvdom.cpio"
(cd "$OV" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/ov.cpio.gz"
cat "$IMG/base.cpio.zst" "$WORK/ov.cpio.gz" > "$WORK/dom0.cpio"
rm -f "$OV/root/drvdom.cpio"
say "images packed: dom0 $(( $(stat -c %s "$WORK/dom0.cpio") >> 20 )) MiB"

# ---- boot ----
# -initrd's commas separate multiboot modules: those of bhscen= are doubled.
# -cpu qemu64: a conservative model.  Under TCG's -cpu max glibc in the
# guests sometimes aborted (ld.so's hwcaps), and Xen needed smap=0 smep=0.
XEN_CMD="console=com1 com1=115200,8n1 dom0_mem=1280M,max:1280M dom0_max_vcpus=2 loglvl=all guest_loglvl=all noreboot"
LOG=$WORK/serial.log
say "booting Xen under QEMU (TCG, -cpu qemu64); serial log: $LOG"
timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi,tb-size=256 -cpu qemu64 \
    -m 3072 -smp 2 -display none -serial "file:$LOG" -monitor none -no-reboot -net none \
    -kernel "$IMG/xen.elf" -append "$XEN_CMD" \
    -initrd "$IMG/vmlinuz console=hvc0 earlyprintk=xen bhscen=${SCEN//,/,,},$WORK/dom0.cpio" </dev/null > "$WORK/qemu.log" 2>&1 &
QPID=$!
# dom0 powers off when done; should Xen then halt without QEMU exiting, end
# QEMU ourselves once dom0 said it finished.
while kill -0 "$QPID" 2>/dev/null; do
    if grep -a -q '^@@ finish' "$LOG"; then
        sleep 20; kill "$QPID" 2>/dev/null; break
    fi
    sleep 2
done
wait "$QPID"; qrc=$?; QPID=""
grep -a -q '^@@ finish' "$LOG" && [ $qrc = 143 ] && qrc=0
say "QEMU exited ($qrc)"
tr -d '\r' < "$LOG" | grep -a -E '^@@|\(XEN\) Xen version|Panic|crashed' >&2

# ---- verdict ----
grep -a -q '(XEN) Xen version' "$LOG" ||
    { cat "$WORK/qemu.log" >&2; envfail "Xen printed nothing: QEMU could not boot it (see above)"; }
grep -a -q '@@ dom0-up' "$LOG" || envfail "dom0 never reached its /init (rc $qrc)"
grep -a -q '@@ xenstored-up' "$LOG" || envfail "xenstored/xen-init-dom0 did not start in dom0"
grep -a -q '@@ENV ' "$LOG" && envfail "$(grep -a '@@ENV ' "$LOG" | head -1 | tr -d '\r')"
[ $qrc = 124 ] && say "QEMU hit the ${BOOT_TIMEOUT}s bound: a step stalled"
fail=0
# The markers each scenario must print (BH_XEN_SCENARIOS picks the scenarios).
declare -A MARKS=(
    [1]="s1-guest-reads-drvdom s1-drvdom-reads-guest s1-fs-md5 s1-odirect"
    [2]="s2-guest-reads-drvdom s2-drvdom-reads-guest"
    [3]="s3-ping s3-tcp-md5 s3-tcp-md5-back s3-tap-gone"
    [4]="s4-detach s4-attach s4-guest-reads-drvdom s4-drvdom-reads-guest"
    [5]="s5-worker-killed s5-upgraded s5-guest-io-ok"
    [6]="s6-guest-reads-drvdom s6-drvdom-reads-guest s6-bounce"
    [7]="s7-backend-path s7-vif-connected s7-cleanup s7-guest-reads-drvdom s7-drvdom-reads-guest"
    [8]="s8-fio-verify s8-drvdom-reads-guest"
    [9]="s9-guest-reads-drvdom s9-drvdom-reads-guest"
)
wanted=("@@PASS drvdom-serving" "@@PASS warmup-initwait")
for n in $(printf '%s\n' "${!MARKS[@]}" | sort -n); do
    [ "$SCEN" = all ] || [[ ,$SCEN, == *,$n,* ]] || continue
    for m in ${MARKS[$n]}; do wanted+=("@@PASS $m"); done
done
wanted+=("@@PASS drvdom-still-serving" "@@ finish")
for want in "${wanted[@]}"; do
    if grep -a -q -e "^$want" "$LOG"; then say "ok: $want"; else say "MISSING: $want"; fail=1; fi
done
grep -a '@@FAIL' "$LOG" | tr -d '\r' >&2 && fail=1
say "wall time $(( $(date +%s) - T0 ))s"
if [ $fail != 0 ]; then
    BH_XEN_KEEP=1
    say "PRODUCT FAILURE: a scenario did not pass (the serial log, kept, has each domain's console)"
    exit 1
fi
say "PASS"
exit 0
