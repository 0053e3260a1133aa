/*
 * diskspec.h - one entry of an xl config's disk = [ ... ] list, parsed by
 * libxlutil's xlu_disk_parse (exactly xl's grammar, xl-disk-configuration(5)),
 * then given what libxl 4.17 derives from it: the device number from the
 * vdev, and the backend that serves it.  A library: no hypervisor, no store.
 *
 * One extension: the flags "trusted" and "untrusted" may appear among the
 * items before target= (Xen 4.17's disk grammar has none; xl would take the
 * word for the target).  They are removed before libxlutil sees the spec.
 */
#ifndef BULKHEAD_DISKSPEC_H
#define BULKHEAD_DISKSPEC_H

#include <stdbool.h>
#include <stddef.h>

#define DISKSPEC_TARGET_MAX       1024
#define DISKSPEC_BACKEND_NAME_MAX 64

enum diskspec_format {
    DISKSPEC_RAW,
    DISKSPEC_QCOW,
    DISKSPEC_QCOW2,
    DISKSPEC_VHD,
    DISKSPEC_QED,
    DISKSPEC_EMPTY, /* a cdrom drive without a medium */
};

enum diskspec_backend {
    DISKSPEC_BE_UNKNOWN, /* backendtype= not given: libxl chooses (diskspec_backend) */
    DISKSPEC_BE_PHY,     /* backend kind "vbd", type "phy" */
    DISKSPEC_BE_QDISK,   /* backend kind "qdisk" */
    DISKSPEC_BE_TAP,     /* backend kind "vbd3" (tapdisk) */
};

struct diskspec {
    char vdev[32];                    /* as written, without ":cdrom" */
    int devid;                        /* libxl's device number for vdev */
    char target[DISKSPEC_TARGET_MAX]; /* "" for an empty cdrom */
    enum diskspec_format format;
    enum diskspec_backend backend;                /* as given */
    char script[256];                             /* "" : none given */
    char backend_name[DISKSPEC_BACKEND_NAME_MAX]; /* "" : dom0 */
    bool readwrite, cdrom, removable, direct_io_safe;
    int discard; /* -1: not given (libxl: on when read-write) */
    int trusted; /* -1: not given */
};

/*
 * Parses one disk spec; file names the config in messages.  Refused, one
 * line naming the fix: what libxlutil refuses (its own message), a vdev
 * that is no disk name, a relative target, specification=virtio (no virtio
 * in the simulation), COLO, a target longer than DISKSPEC_TARGET_MAX - 1.
 */
int diskspec_parse(const char *file, const char *spec, struct diskspec *d, char *err,
                   size_t errlen);

/*
 * libxl's device number for a vdev (libxl__device_disk_dev_number), from
 * the names a PV frontend knows:
 *   xvdX[N]  X = a..z, aa.. (up to 2^20 disks), N = 1..255:
 *            202 << 8 | disk << 4 | N when disk and N are at most 15, else
 *            the extended form 1 << 28 | disk << 8 | N;
 *   dNpM     the same, from numbers (N < 2^20, M < 256);
 *   hdX[N]   X = a..d, N <= 63: major 3 (hda, hdb) or 22 (hdc, hdd),
 *            (disk & 1) << 6 | N;
 *   sdX[N]   X = a..p, N <= 15: 8 << 8 | disk << 4 | N;
 *   a decimal number up to INT_MAX, taken as is.
 * Numbers are canonical decimal (libxl also takes "0x..", "+1", "xvd",
 * which we refuse).  Returns the number, or -1.
 */
int diskspec_devid(const char *vdev);

/* params' prefix for qdisk and tap, as libxl: "aio" (raw, empty), "qcow2", ... */
const char *diskspec_format_prefix(enum diskspec_format f);
const char *diskspec_format_name(enum diskspec_format f); /* "raw", "qcow2", ... */

/*
 * The backend that serves the disk, as libxl__device_disk_set_backend picks
 * it: the one given, if it can serve the format; else phy for a raw image
 * (or an empty cdrom) served by a driver domain or through a script, or by
 * dom0 from a block device; else qdisk; else tap.  dom0: the backend is
 * dom0.  Differences: libxl refuses a dom0 target it cannot stat (we pick
 * qdisk, so that create -n works before the image exists), accepts a
 * regular file for an explicit backendtype=phy only through a script (we
 * accept it: the simulation's blkback serves files), and 4.17 refuses
 * backendtype=tap (we serve it as vbd3, as Xen 4.18 does).
 */
int diskspec_backend(const struct diskspec *d, bool dom0, enum diskspec_backend *out, char *err,
                     size_t errlen);

#endif
