/*
 * core.c - libbhplat's handles: choosing the platform, opening and closing,
 * and the argument checks every platform would otherwise repeat.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

enum plat_id { PLAT_SIM, PLAT_XEN };

/* The platforms, by name. */
static const struct {
    const char *name;
    const struct plat_ops *ops;
} platforms[] = {
    [PLAT_SIM] = {.name = "sim", .ops = &plat_sim_ops},
    [PLAT_XEN] = {.name = "xen", .ops = &plat_xen_ops},
};

void plat_log(struct bhplat_logger *l, const char *fmt, ...)
{
    char line[512];
    int saved = errno;
    va_list ap;

    if (l == NULL || l->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    l->log(l, line);
    errno = saved;
}

/*
 * BULKHEAD_PLATFORM decides if set; else the simulation if its socket is
 * named, else Xen if this is a Xen guest.  secure_getenv: a set-id program
 * using the library cannot be pointed at a hypervisor of someone's choosing.
 */
static const struct plat_ops *plat_choose(struct bhplat_logger *l)
{
    const char *want = secure_getenv("BULKHEAD_PLATFORM");
    enum plat_id id;

    if (want != NULL && *want != '\0') {
        if (strcmp(want, platforms[PLAT_SIM].name) == 0) {
            id = PLAT_SIM;
        } else if (strcmp(want, platforms[PLAT_XEN].name) == 0) {
            id = PLAT_XEN;
        } else {
            plat_log(l, "bhplat: BULKHEAD_PLATFORM=%s is no platform: set it to sim or xen", want);
            errno = EINVAL;
            return NULL;
        }
    } else if (secure_getenv("BULKHEAD_HV_SOCKET") != NULL) {
        id = PLAT_SIM;
    } else if (access("/dev/xen/gntdev", F_OK) == 0) {
        id = PLAT_XEN;
    } else {
        plat_log(l, "bhplat: no platform: set BULKHEAD_HV_SOCKET to bulkhead-hv's socket, "
                    "or run on Xen");
        errno = ENOENT;
        return NULL;
    }
    return platforms[id].ops;
}

int bhplat_domid(void)
{
    const struct plat_ops *ops = plat_choose(NULL);

    return ops != NULL ? ops->domid() : -1;
}

const char *bhplat_platform(void)
{
    const struct plat_ops *ops = plat_choose(NULL);

    return ops != NULL ? ops->name : NULL;
}

/* ---- handles ---- */

/* What every open checks first: flags (none are defined yet) and the platform. */
static const struct plat_ops *open_ops(struct bhplat_logger *logger, unsigned int open_flags)
{
    if (open_flags != 0) {
        errno = EINVAL;
        return NULL;
    }
    return plat_choose(logger);
}

/* Frees a handle whose platform open failed, keeping that errno. */
static void *open_failed(void *h)
{
    int saved = errno;

    free(h);
    errno = saved;
    return NULL;
}

bhgntshr_handle *bhgntshr_open(struct bhplat_logger *logger, unsigned int open_flags)
{
    const struct plat_ops *ops = open_ops(logger, open_flags);
    bhgntshr_handle *h;

    if (ops == NULL || (h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    h->ops = ops;
    h->logger = logger;
    return ops->gntshr_open(h) == 0 ? h : open_failed(h);
}

int bhgntshr_close(bhgntshr_handle *h)
{
    if (h != NULL) {
        h->ops->gntshr_close(h);
        free(h);
    }
    return 0;
}

bhgnttab_handle *bhgnttab_open(struct bhplat_logger *logger, unsigned int open_flags)
{
    const struct plat_ops *ops = open_ops(logger, open_flags);
    bhgnttab_handle *h;

    if (ops == NULL || (h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    h->ops = ops;
    h->logger = logger;
    return ops->gnttab_open(h) == 0 ? h : open_failed(h);
}

int bhgnttab_close(bhgnttab_handle *h)
{
    if (h != NULL) {
        h->ops->gnttab_close(h);
        free(h);
    }
    return 0;
}

bhevtchn_handle *bhevtchn_open(struct bhplat_logger *logger, unsigned int open_flags)
{
    const struct plat_ops *ops = open_ops(logger, open_flags);
    bhevtchn_handle *h;

    if (ops == NULL || (h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    h->ops = ops;
    h->logger = logger;
    return ops->evtchn_open(h) == 0 ? h : open_failed(h);
}

int bhevtchn_close(bhevtchn_handle *h)
{
    if (h != NULL) {
        h->ops->evtchn_close(h);
        free(h);
    }
    return 0;
}

/* ---- grants ---- */

/* Domain ids are 16 bits on the wire; Xen's DOMID_SELF (0x7ff0) passes. */
static int domid_ok(uint32_t domid)
{
    if (domid > UINT16_MAX) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

void *bhgntshr_share_pages(bhgntshr_handle *h, uint32_t domid, int count, bh_grant_ref_t *refs,
                           int writable)
{
    if (count <= 0 || refs == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (!domid_ok(domid))
        return NULL;
    return h->ops->share_pages(h, (uint16_t)domid, (uint32_t)count, refs, writable != 0);
}

int bhgntshr_unshare(bhgntshr_handle *h, void *start_address, uint32_t count)
{
    if (start_address == NULL || count == 0) {
        errno = EINVAL;
        return -1;
    }
    return h->ops->unshare(h, start_address, count);
}

void *bhgnttab_map_domain_grant_refs(bhgnttab_handle *h, uint32_t count, uint32_t domid,
                                     bh_grant_ref_t *refs, int prot)
{
    /* Pages are addressed with size_t: refuse a count whose bytes would not fit. */
    if (count == 0 || (uint64_t)count * 4096 > SIZE_MAX / 2 || refs == NULL ||
        (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    if (!domid_ok(domid))
        return NULL;
    return h->ops->map(h, count, (uint16_t)domid, refs, prot & PROT_WRITE);
}

void *bhgnttab_map_grant_ref(bhgnttab_handle *h, uint32_t domid, bh_grant_ref_t ref, int prot)
{
    return bhgnttab_map_domain_grant_refs(h, 1, domid, &ref, prot);
}

int bhgnttab_unmap(bhgnttab_handle *h, void *start_address, uint32_t count)
{
    if (start_address == NULL || count == 0) {
        errno = EINVAL;
        return -1;
    }
    return h->ops->unmap(h, start_address, count);
}

int bhgnttab_map_many(bhgnttab_handle *h, uint32_t n, uint32_t domid, const uint32_t *counts,
                      bh_grant_ref_t *refs, int prot, void **addrs)
{
    uint64_t total = 0;
    uint32_t i, off = 0;

    for (i = 0; counts != NULL && i < n; i++) {
        if (counts[i] == 0)
            break;
        total += counts[i];
    }
    if (n == 0 || counts == NULL || i < n || refs == NULL || addrs == NULL ||
        total * 4096 > SIZE_MAX / 2 || (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE))) {
        errno = EINVAL;
        return -1;
    }
    if (!domid_ok(domid))
        return -1;
    if (h->ops->map_many != NULL)
        return h->ops->map_many(h, n, (uint16_t)domid, counts, refs, prot & PROT_WRITE, addrs);
    for (i = 0; i < n; off += counts[i++])
        if ((addrs[i] = h->ops->map(h, counts[i], (uint16_t)domid, refs + off,
                                    prot & PROT_WRITE)) == NULL) {
            int saved = errno;

            while (i-- > 0)
                h->ops->unmap(h, addrs[i], counts[i]);
            errno = saved;
            return -1;
        }
    return 0;
}

int bhgnttab_unmap_many(bhgnttab_handle *h, uint32_t n, void *const *addrs, const uint32_t *counts)
{
    int rc = 0, saved = 0;

    if (n == 0)
        return 0;
    if (addrs == NULL || counts == NULL) {
        errno = EINVAL;
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (addrs[i] == NULL || counts[i] == 0) {
            errno = EINVAL;
            return -1;
        }
    if (h->ops->unmap_many != NULL)
        return h->ops->unmap_many(h, n, addrs, counts);
    for (uint32_t i = 0; i < n; i++)
        if (h->ops->unmap(h, addrs[i], counts[i]) != 0 && rc == 0) {
            rc = -1;
            saved = errno;
        }
    if (rc != 0)
        errno = saved;
    return rc;
}

int bhgnttab_grant_copy(bhgnttab_handle *h, uint32_t count, bhgnttab_grant_copy_segment_t *segs)
{
    if (count == 0)
        return 0;
    if (segs == NULL) {
        errno = EINVAL;
        return -1;
    }
    return h->ops->grant_copy(h, count, segs);
}

/* ---- event channels ---- */

int bhevtchn_fd(bhevtchn_handle *h)
{
    return h->ops->evtchn_fd(h);
}

int bhevtchn_notify(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return h->ops->notify(h, port);
}

bh_evtchn_port_or_error_t bhevtchn_bind_unbound_port(bhevtchn_handle *h, uint32_t domid)
{
    return domid_ok(domid) ? h->ops->bind_unbound(h, (uint16_t)domid) : -1;
}

bh_evtchn_port_or_error_t bhevtchn_bind_interdomain(bhevtchn_handle *h, uint32_t domid,
                                                    bh_evtchn_port_t remote_port)
{
    return domid_ok(domid) ? h->ops->bind_interdomain(h, (uint16_t)domid, remote_port) : -1;
}

int bhevtchn_unbind(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return h->ops->unbind(h, port);
}

bh_evtchn_port_or_error_t bhevtchn_pending(bhevtchn_handle *h)
{
    return h->ops->pending(h);
}

int bhevtchn_unmask(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return h->ops->unmask(h, port);
}
