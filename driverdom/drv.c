/*
 * drv.c - the helpers drivers share (drv.h): logging, strict ring
 * references, mapping the frontend's grants, binding its event channel,
 * and the table of built-in drivers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bhring.h"
#include "drvdom.h"

extern const struct bhdrv blkback, netback;

const struct bhdrv *const bhdrv_table[] = {&blkback, &netback, NULL};

const struct bhdrv *bhdrv_find(const char *backend_kind)
{
    for (size_t i = 0; bhdrv_table[i] != NULL; i++)
        for (size_t j = 0; j < 4 && bhdrv_table[i]->kinds[j] != NULL; j++)
            if (strcmp(bhdrv_table[i]->kinds[j], backend_kind) == 0)
                return bhdrv_table[i];
    return NULL;
}

bool drv_own_targets(uint32_t backend_domid)
{
    static int xen = -1; /* the platform cannot change under a running process */

    if (backend_domid == 0)
        return true;
    if (xen < 0) {
        const char *plat = bhplat_platform();
        xen = plat != NULL && strcmp(plat, "xen") == 0;
    }
    return xen != 0;
}

void bhdev_log(const struct bhdev *d, const char *fmt, ...)
{
    char name[80];
    va_list ap;

    snprintf(name, sizeof(name), "%s %u/%u", d->id.backend_kind ? d->id.backend_kind : d->id.kind,
             d->id.domid, d->id.devid);
    va_start(ap, fmt);
    vlogline(name, fmt, ap);
    va_end(ap);
}

int bhdev_read_ring_order(struct bhdev *d, const char *prefix, unsigned int max_order,
                          unsigned int *order, char *why, size_t whylen)
{
    char name[48];
    unsigned int o = 0;
    const char *bad = NULL;
    struct bhxb_key ko = {name, BHXB_UINT, &o, 0, false, max_order};

    if (max_order > BHRING_MAX_ORDER)
        max_order = BHRING_MAX_ORDER;
    snprintf(name, sizeof(name), "%sring-page-order", prefix);
    /* A key's max of 0 means "the type's": only read the order where one is allowed. */
    if (max_order > 0) {
        ko.max = max_order;
        if (bhxb_read_keys(d->xs, d->paths.frontend, &ko, 1, &bad) != 0) {
            snprintf(why, whylen, "frontend key %s: %s", name,
                     errno == ENOENT ? "missing" : strerror(errno));
            return -1;
        }
    }
    *order = o;
    return 0;
}

int bhdev_read_refs(struct bhdev *d, const char *prefix, unsigned int order,
                    uint32_t refs[BHDEV_MAX_RING], char *why, size_t whylen)
{
    char names[BHDEV_MAX_RING][48];
    struct bhxb_key keys[BHDEV_MAX_RING];
    unsigned int n = 1u << order;
    const char *bad = NULL;

    if (order > BHRING_MAX_ORDER) {
        snprintf(why, whylen, "a ring of order %u", order);
        errno = EINVAL;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        /* Order 0 is "ring-ref"; a multi-page ring numbers its references. */
        if (order == 0)
            snprintf(names[i], sizeof(names[i]), "%sring-ref", prefix);
        else
            snprintf(names[i], sizeof(names[i]), "%sring-ref%u", prefix, i);
        keys[i] = (struct bhxb_key){names[i], BHXB_UINT, &refs[i], 0, true, 0};
    }
    if (bhxb_read_keys(d->xs, d->paths.frontend, keys, n, &bad) != 0) {
        snprintf(why, whylen, "frontend key %s: %s", bad ? bad : "?",
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    return 0;
}

int bhdev_read_ring_refs(struct bhdev *d, const char *prefix, unsigned int max_order,
                         uint32_t refs[BHDEV_MAX_RING], unsigned int *order, char *why,
                         size_t whylen)
{
    unsigned int o;

    /*
     * The references are read apart from ring-page-order, so a frontend
     * could change the order in between: harmless, the references read are
     * all of one order.
     */
    if (bhdev_read_ring_order(d, prefix, max_order, &o, why, whylen) != 0 ||
        bhdev_read_refs(d, prefix, o, refs, why, whylen) != 0)
        return -1;
    *order = o;
    return 0;
}

void *bhdev_map(struct bhdev *d, const uint32_t *refs, unsigned int count, char *why, size_t whylen)
{
    bh_grant_ref_t r[BHDEV_MAX_RING];
    void *p;

    if (count == 0 || count > BHDEV_MAX_RING) {
        snprintf(why, whylen, "a ring of %u pages", count);
        errno = EINVAL;
        return NULL;
    }
    memcpy(r, refs, sizeof(r[0]) * count);
    p = bhgnttab_map_domain_grant_refs(d->gnttab, count, d->id.domid, r, PROT_READ | PROT_WRITE);
    if (p == NULL)
        snprintf(why, whylen, "cannot map grant reference %u%s of domain %u: %s", refs[0],
                 count > 1 ? " (and the rest)" : "", d->id.domid, strerror(errno));
    return p;
}

void bhdev_unmap(struct bhdev *d, void *addr, unsigned int count)
{
    if (addr != NULL && bhgnttab_unmap(d->gnttab, addr, count) != 0)
        bhdev_log(d, "unmap: %s", strerror(errno));
}

#define BIND_TRIES 100 /* 100 x 20 ms: the hypervisor sees a dead worker's end go long before */

int bhdev_bind(struct bhdev *d, uint32_t remote_port, char *why, size_t whylen)
{
    struct timespec pause = {0, 20 * 1000000L};
    int port;

    for (int i = 0;; i++) {
        if ((port = bhevtchn_bind_interdomain(d->evtchn, d->id.domid, remote_port)) >= 0)
            return port;
        /*
         * EINVAL: the frontend's port is not unbound for us.  After a
         * restart, the dead worker's end may not be closed yet; otherwise
         * the frontend lied.
         */
        if (errno != EINVAL || d->restarts == 0 || i + 1 >= BIND_TRIES)
            break;
        nanosleep(&pause, NULL);
    }
    snprintf(why, whylen, "cannot bind event channel %u of domain %u: %s", remote_port, d->id.domid,
             strerror(errno));
    return -1;
}

void bhdev_unbind(struct bhdev *d, uint32_t port)
{
    if (port != 0 && bhevtchn_unbind(d->evtchn, port) != 0)
        bhdev_log(d, "unbind port %u: %s", port, strerror(errno));
}

int bhdev_notify(struct bhdev *d, uint32_t port)
{
    return bhevtchn_notify(d->evtchn, port);
}
