/*
 * xsdom.c - a domain's own XenStore nodes, written as libxl writes them
 * (libxl__domain_make, then libxl__build_post), and released with it.
 *
 * Two permission sets, as libxl has them:
 *   roperm: owned by dom0, readable by the domain - its root, vm, cpu,
 *           memory, device and control directories and what dom0 tells it;
 *   rwperm: owned by the domain - data, drivers, feature, attr, error,
 *           control/shutdown, control/feature-*, control/sysrq and
 *           device/suspend/event-channel, which the guest itself writes.
 * /libxl/<domid> is dom0's alone.  Everything is written in one transaction,
 * retried on EAGAIN, and the domain is introduced to XenStore after it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "toolstack.h"
#include "xsdom.h"

#define XSDOM_TRIES 16

struct xs_handle *xsdom_open(bool quiet)
{
    char path[PATH_MAX];
    struct xs_handle *h;

    snprintf(path, sizeof(path), "%s/xenstored.sock", state_dir);
    setenv("XENSTORED_PATH", path, 1);
    if ((h = xs_open(0)) == NULL && !quiet)
        errorf("cannot reach XenStore at %s: %s (is the simulation up? 'bulkhead up')", path,
               strerror(errno));
    return h;
}

/* One node with a value and permissions, inside transaction t. */
static bool put(struct xs_handle *h, xs_transaction_t t, const char *path, const char *value,
                struct xs_permissions *perms, unsigned int nperms)
{
    if (!xs_write(h, t, path, value, (unsigned int)strlen(value)))
        return false;
    return perms == NULL || xs_set_permissions(h, t, path, perms, nperms);
}

static bool putf(struct xs_handle *h, xs_transaction_t t, struct xs_permissions *perms,
                 unsigned int nperms, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static bool putf(struct xs_handle *h, xs_transaction_t t, struct xs_permissions *perms,
                 unsigned int nperms, const char *value, const char *fmt, ...)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return put(h, t, path, value, perms, nperms);
}

static void new_uuid(char *out, size_t len)
{
    int fd = open("/proc/sys/kernel/random/uuid", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;

    if (fd >= 0)
        close(fd);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* The domain's tree: libxl__domain_make's nodes, then libxl__build_post's. */
static bool write_tree(struct xs_handle *h, xs_transaction_t t, const struct xsdom_info *di)
{
    struct xs_permissions ro[2] = {{0, XS_PERM_NONE}, {di->domid, XS_PERM_READ}};
    struct xs_permissions rw[1] = {{di->domid, XS_PERM_NONE}};
    struct xs_permissions no[1] = {{0, XS_PERM_NONE}};
    static const char *const guest_rw[] = {
        "control/shutdown",
        "control/feature-poweroff",
        "control/feature-reboot",
        "control/feature-suspend",
        "control/feature-s3",
        "control/feature-s4",
        "control/sysrq",
        "device/suspend/event-channel",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
    };
    static const char *const ro_dirs[] = {"cpu", "memory", "device", "control"};
    unsigned int id = di->domid;
    char num[32], vm[64];
    bool ok;

    snprintf(vm, sizeof(vm), "/vm/%s", di->uuid);
    xs_rm(h, t, vm);
    ok = putf(h, t, ro, 2, "", "/local/domain/%u", id) && put(h, t, vm, "", ro, 2) &&
         putf(h, t, no, 1, "", "/libxl/%u", id) &&
         putf(h, t, NULL, 0, vm, "/local/domain/%u/vm", id) &&
         putf(h, t, NULL, 0, di->name, "/local/domain/%u/name", id) &&
         putf(h, t, NULL, 0, di->name, "%s/name", vm) &&
         putf(h, t, NULL, 0, di->uuid, "%s/uuid", vm);
    for (size_t i = 0; ok && i < sizeof(ro_dirs) / sizeof(ro_dirs[0]); i++)
        ok = putf(h, t, ro, 2, "", "/local/domain/%u/%s", id, ro_dirs[i]);
    for (size_t i = 0; ok && i < sizeof(guest_rw) / sizeof(guest_rw[0]); i++)
        ok = putf(h, t, rw, 1, "", "/local/domain/%u/%s", id, guest_rw[i]);
    ok = ok &&
         putf(h, t, NULL, 0, "1",
              "/local/domain/%u/control/platform-feature-multiprocessor-suspend", id) &&
         putf(h, t, NULL, 0, "1", "/local/domain/%u/control/platform-feature-xs_reset_watches", id);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)di->memory_kb);
    ok = ok && putf(h, t, NULL, 0, num, "/local/domain/%u/memory/static-max", id) &&
         putf(h, t, NULL, 0, num, "/local/domain/%u/memory/target", id) &&
         putf(h, t, NULL, 0, "-1", "/local/domain/%u/memory/videoram", id);
    snprintf(num, sizeof(num), "%u", id);
    ok = ok && putf(h, t, NULL, 0, num, "/local/domain/%u/domid", id);
    for (unsigned int c = 0; ok && c < di->vcpus; c++)
        ok = putf(h, t, NULL, 0, "online", "/local/domain/%u/cpu/%u/availability", id, c);
    return ok;
}

int xsdom_introduce(struct xs_handle *h, const struct xsdom_info *di, char *err, size_t errlen)
{
    struct xsdom_info copy = *di;

    if (copy.uuid[0] == '\0')
        new_uuid(copy.uuid, sizeof(copy.uuid));
    for (int tries = 0; tries < XSDOM_TRIES; tries++) {
        xs_transaction_t t = xs_transaction_start(h);
        if (t == XBT_NULL)
            break;
        if (!write_tree(h, t, &copy)) {
            int e = errno;
            xs_transaction_end(h, t, true);
            snprintf(err, errlen, "cannot write /local/domain/%u: %s", copy.domid, strerror(e));
            return -1;
        }
        if (xs_transaction_end(h, t, false)) {
            /*
             * Introduced last, so that @introduceDomain sees a domain whose tree is
             * there.  A simulated domain reaches XenStore through its socket, not a
             * shared ring: there is no ring page and no ring event channel, and
             * the mfn (0) and port (1, the lowest valid one) are only recorded.
             */
            if (copy.domid != 0 && !xs_introduce_domain(h, copy.domid, 0, 1)) {
                snprintf(err, errlen, "cannot introduce domain %u to XenStore: %s", copy.domid,
                         strerror(errno));
                return -1;
            }
            return 0;
        }
        if (errno != EAGAIN)
            break;
    }
    snprintf(err, errlen, "cannot write /local/domain/%u: %s", copy.domid, strerror(errno));
    return -1;
}

int xsdom_release(struct xs_handle *h, unsigned int domid)
{
    char path[64], *vm;
    unsigned int len;
    int rc = 0;

    if (!xs_release_domain(h, domid) && errno != ENOENT)
        rc = -1;
    snprintf(path, sizeof(path), "/local/domain/%u/vm", domid);
    if ((vm = xs_read(h, XBT_NULL, path, &len)) != NULL && strncmp(vm, "/vm/", 4) == 0)
        xs_rm(h, XBT_NULL, vm);
    free(vm);
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    xs_rm(h, XBT_NULL, path);
    snprintf(path, sizeof(path), "/libxl/%u", domid);
    xs_rm(h, XBT_NULL, path);
    return rc;
}
