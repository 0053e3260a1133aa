/*
 * diskspec.c - see diskspec.h.  The grammar is libxlutil's; this file
 * holds what libxl derives from the result (libxl_device.c, libxl_disk.c),
 * written from their documented behaviour.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libxl.h>
#include <libxlutil.h>

#include "diskspec.h"
#include "xlcfg.h"

/* Canonical decimal of n bytes, at most max; -1 if not. */
static long dec(const char *s, size_t n, long max)
{
    long v = 0;

    if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/*
 * prefix, then drive letters (bijective base 26: a..z, aa..), then an
 * optional partition number.  Returns 0 with the drive index and partition.
 */
static int letters(const char *vdev, const char *prefix, long max_disk, long max_part, long *disk,
                   long *part)
{
    size_t pl = strlen(prefix);
    const char *p = vdev + pl;
    long idx = -1;

    if (strncmp(vdev, prefix, pl) != 0 || *p < 'a' || *p > 'z')
        return -1;
    for (; *p >= 'a' && *p <= 'z'; p++) {
        idx = (idx + 1) * 26 + (*p - 'a');
        if (idx > max_disk)
            return -1;
    }
    *part = 0;
    if (*p == '0' || (*p != '\0' && (*part = dec(p, strlen(p), max_part)) < 0))
        return -1; /* libxl: no leading zero, so no partition 0 either */
    *disk = idx;
    return 0;
}

/* dNpM */
static int dnpm(const char *vdev, long *disk, long *part)
{
    const char *p = strchr(vdev, 'p');

    if (vdev[0] != 'd' || p == NULL)
        return -1;
    *disk = dec(vdev + 1, (size_t)(p - vdev - 1), (1L << 20) - 1);
    *part = dec(p + 1, strlen(p + 1), 255);
    return *disk < 0 || *part < 0 ? -1 : 0;
}

int diskspec_devid(const char *vdev)
{
    long disk, part, n;

    if (vdev == NULL)
        return -1;
    if (dnpm(vdev, &disk, &part) == 0 ||
        letters(vdev, "xvd", (1L << 20) - 1, 255, &disk, &part) == 0) {
        if (disk <= 15 && part <= 15)
            return (int)(202 << 8 | disk << 4 | part);
        return (int)(1L << 28 | disk << 8 | part);
    }
    if ((n = dec(vdev, strlen(vdev), INT_MAX)) >= 0)
        return (int)n;
    if (letters(vdev, "hd", 3, 63, &disk, &part) == 0)
        return (int)((disk < 2 ? 3 : 22) << 8 | (disk & 1) << 6 | part);
    if (letters(vdev, "sd", 15, 15, &disk, &part) == 0)
        return (int)(8 << 8 | disk << 4 | part);
    return -1;
}

const char *diskspec_format_prefix(enum diskspec_format f)
{
    static const char *const p[] = {
        [DISKSPEC_RAW] = "aio", [DISKSPEC_QCOW] = "qcow", [DISKSPEC_QCOW2] = "qcow2",
        [DISKSPEC_VHD] = "vhd", [DISKSPEC_QED] = "qed",   [DISKSPEC_EMPTY] = "aio"};
    return (unsigned int)f < sizeof(p) / sizeof(p[0]) ? p[f] : "aio";
}

const char *diskspec_format_name(enum diskspec_format f)
{
    static const char *const p[] = {
        [DISKSPEC_RAW] = "raw", [DISKSPEC_QCOW] = "qcow", [DISKSPEC_QCOW2] = "qcow2",
        [DISKSPEC_VHD] = "vhd", [DISKSPEC_QED] = "qed",   [DISKSPEC_EMPTY] = "empty"};
    return (unsigned int)f < sizeof(p) / sizeof(p[0]) ? p[f] : "raw";
}

/*
 * Takes the items "trusted"/"untrusted" out of spec (before target=, after
 * which everything is the target), into *trusted.  The rest goes to out.
 */
static int strip_trust(const char *spec, char *out, size_t size, int *trusted, char *err,
                       size_t errlen)
{
    size_t o = 0;
    const char *p = spec;
    bool first = true;

    *trusted = -1;
    out[0] = '\0';
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p), b = 0, e = n;
        while (b < e && p[b] == ' ')
            b++;
        while (e > b && p[e - 1] == ' ')
            e--;
        bool target = e - b >= 7 && strncmp(p + b, "target=", 7) == 0;
        bool flag = (e - b == 7 && strncmp(p + b, "trusted", 7) == 0) ||
                    (e - b == 9 && strncmp(p + b, "untrusted", 9) == 0);
        if (target)
            n = strlen(p), end = NULL; /* the rest is the target, commas and all */
        if (flag) {
            if (*trusted != -1) {
                snprintf(err, errlen, "trusted/untrusted given twice in '%s': keep one", spec);
                return -1;
            }
            *trusted = p[b] == 't';
        } else {
            if (o + n + 2 > size) {
                snprintf(err, errlen, "disk spec '%.40s...' is too long", spec);
                return -1;
            }
            if (!first)
                out[o++] = ',';
            first = false;
            memcpy(out + o, p, n);
            o += n;
            out[o] = '\0';
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

static enum diskspec_format our_format(libxl_disk_format f)
{
    switch (f) {
    case LIBXL_DISK_FORMAT_QCOW:
        return DISKSPEC_QCOW;
    case LIBXL_DISK_FORMAT_QCOW2:
        return DISKSPEC_QCOW2;
    case LIBXL_DISK_FORMAT_VHD:
        return DISKSPEC_VHD;
    case LIBXL_DISK_FORMAT_QED:
        return DISKSPEC_QED;
    case LIBXL_DISK_FORMAT_EMPTY:
        return DISKSPEC_EMPTY;
    default:
        return DISKSPEC_RAW; /* xlu_disk_parse makes UNKNOWN raw */
    }
}

/* The first line libxlutil reported, without its newline. */
static void report_line(char *report, const char *spec, char *err, size_t errlen)
{
    if (report != NULL && report[0] != '\0') {
        report[strcspn(report, "\n")] = '\0';
        snprintf(err, errlen, "%s (see xl-disk-configuration(5))", report);
    } else {
        snprintf(err, errlen, "disk '%s' does not parse: see xl-disk-configuration(5)", spec);
    }
}

/* Copies what we use out of libxl's struct, checking what libxlutil lets through. */
static int from_libxl(const libxl_device_disk *x, const char *file, struct diskspec *d, char *err,
                      size_t errlen)
{
    const char *target = x->pdev_path ? x->pdev_path : "";

    if (x->specification == LIBXL_DISK_SPECIFICATION_VIRTIO ||
        x->backend == LIBXL_DISK_BACKEND_STANDALONE) {
        snprintf(err, errlen,
                 "%s: disk %s: virtio disks are not available in the simulation: "
                 "leave specification= and backendtype=standalone out",
                 file, x->vdev);
        return -1;
    }
    if (libxl_defbool_is_default(x->colo_enable) ? false : libxl_defbool_val(x->colo_enable)) {
        snprintf(err, errlen,
                 "%s: disk %s: COLO is not available in the simulation: remove "
                 "colo",
                 file, x->vdev);
        return -1;
    }
    if (strlen(x->vdev) >= sizeof(d->vdev) || (d->devid = diskspec_devid(x->vdev)) < 0) {
        snprintf(err, errlen,
                 "%s: disk vdev '%s' is not a disk name: use xvda, xvdb, ... (or "
                 "hda, sda, d0p0)",
                 file, x->vdev);
        return -1;
    }
    snprintf(d->vdev, sizeof(d->vdev), "%s", x->vdev);
    if (strlen(target) >= sizeof(d->target)) {
        snprintf(err, errlen, "%s: disk %s: target is longer than %zu bytes", file, d->vdev,
                 sizeof(d->target) - 1);
        return -1;
    }
    snprintf(d->target, sizeof(d->target), "%s", target);
    d->format = our_format(x->format);
    if (d->format == DISKSPEC_EMPTY && (!x->is_cdrom || target[0] != '\0')) {
        snprintf(err, errlen,
                 "%s: disk %s: format=empty is for a cdrom drive without a "
                 "medium: give devtype=cdrom and no target, or a real format",
                 file, d->vdev);
        return -1;
    }
    if (d->format != DISKSPEC_EMPTY && d->target[0] != '/') {
        snprintf(err, errlen,
                 "%s: disk %s: target '%s' is not an absolute path: write it from "
                 "/",
                 file, d->vdev, d->target);
        return -1;
    }
    d->backend = x->backend == LIBXL_DISK_BACKEND_PHY     ? DISKSPEC_BE_PHY
                 : x->backend == LIBXL_DISK_BACKEND_QDISK ? DISKSPEC_BE_QDISK
                 : x->backend == LIBXL_DISK_BACKEND_TAP   ? DISKSPEC_BE_TAP
                                                          : DISKSPEC_BE_UNKNOWN;
    if ((x->script && strlen(x->script) >= sizeof(d->script)) ||
        (x->backend_domname && strlen(x->backend_domname) >= sizeof(d->backend_name))) {
        snprintf(err, errlen, "%s: disk %s: script= or backend= is too long", file, d->vdev);
        return -1;
    }
    snprintf(d->script, sizeof(d->script), "%s", x->script ? x->script : "");
    snprintf(d->backend_name, sizeof(d->backend_name), "%s",
             x->backend_domname ? x->backend_domname : "");
    d->readwrite = x->readwrite != 0;
    d->cdrom = x->is_cdrom != 0;
    d->removable = x->removable != 0;
    d->direct_io_safe = x->direct_io_safe;
    d->discard =
        libxl_defbool_is_default(x->discard_enable) ? -1 : libxl_defbool_val(x->discard_enable);
    return 0;
}

int diskspec_parse(const char *file, const char *spec, struct diskspec *d, char *err, size_t errlen)
{
    char *report = NULL, *clean = NULL;
    size_t rlen = 0, cap = strlen(spec) + 2;
    FILE *rf = open_memstream(&report, &rlen);
    XLU_Config *c = NULL;
    libxl_device_disk x;
    const char *specs[1];
    int rc = -1, trusted;

    memset(d, 0, sizeof(*d));
    libxl_device_disk_init(&x);
    if (rf == NULL || (clean = malloc(cap)) == NULL || (c = xlu_cfg_init(rf, file)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        goto out;
    }
    if (strip_trust(spec, clean, cap, &trusted, err, errlen) != 0)
        goto out;
    specs[0] = clean;
    if (xlu_disk_parse(c, 1, specs, &x) != 0) {
        fflush(rf);
        report_line(report, spec, err, errlen);
        goto out;
    }
    if (from_libxl(&x, file, d, err, errlen) != 0)
        goto out;
    d->trusted = trusted;
    rc = 0;
out:
    if (rc != 0)
        xlcfg_one_line(err);
    libxl_device_disk_dispose(&x);
    if (c != NULL)
        xlu_cfg_destroy(c);
    if (rf != NULL)
        fclose(rf);
    free(report);
    free(clean);
    return rc;
}

static bool is_block_device(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

int diskspec_backend(const struct diskspec *d, bool dom0, enum diskspec_backend *out, char *err,
                     size_t errlen)
{
    bool raw = d->format == DISKSPEC_RAW;
    bool empty = d->format == DISKSPEC_EMPTY;

    switch (d->backend) {
    case DISKSPEC_BE_PHY:
        if (!raw && !empty) {
            snprintf(err, errlen,
                     "disk %s: backendtype=phy serves raw images only: use "
                     "backendtype=qdisk for %s",
                     d->vdev, diskspec_format_name(d->format));
            return -1;
        }
        break;
    case DISKSPEC_BE_QDISK:
        if (d->script[0] != '\0') {
            snprintf(err, errlen,
                     "disk %s: backendtype=qdisk runs no script: remove script= "
                     "or use backendtype=phy",
                     d->vdev);
            return -1;
        }
        break;
    case DISKSPEC_BE_TAP:
        if (d->format != DISKSPEC_RAW && d->format != DISKSPEC_VHD) {
            snprintf(err, errlen,
                     "disk %s: backendtype=tap serves raw and vhd images only: use "
                     "backendtype=qdisk for %s",
                     d->vdev, diskspec_format_name(d->format));
            return -1;
        }
        break;
    default:
        /* libxl tries phy, then qdisk, then tap. */
        if (empty || (raw && (!dom0 || d->script[0] != '\0' || is_block_device(d->target))))
            *out = DISKSPEC_BE_PHY;
        else if (d->script[0] == '\0')
            *out = DISKSPEC_BE_QDISK;
        else if (raw || d->format == DISKSPEC_VHD)
            *out = DISKSPEC_BE_TAP;
        else {
            snprintf(err, errlen,
                     "disk %s: no backend serves %s through script=: remove "
                     "script=",
                     d->vdev, diskspec_format_name(d->format));
            return -1;
        }
        return 0;
    }
    *out = d->backend;
    return 0;
}
