/*
 * xsdom.h - a domain's own XenStore nodes, as libxl writes them.
 */
#ifndef BULKHEAD_XSDOM_H
#define BULKHEAD_XSDOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xs_handle;

struct xsdom_info {
    unsigned int domid;
    const char *name;
    uint64_t memory_kb; /* memory/static-max and memory/target */
    unsigned int vcpus; /* cpu/N/availability */
    char uuid[40];      /* "" for a new random one */
};

/* Dom0's handle on this state directory's XenStore; NULL after saying why (unless quiet). */
struct xs_handle *xsdom_open(bool quiet);

/*
 * Writes /local/domain/<domid>, /vm/<uuid> and /libxl/<domid> in one
 * transaction with libxl's permissions, then introduces the domain (not
 * dom0).  Returns 0, or -1 with a one-line reason in err.
 */
int xsdom_introduce(struct xs_handle *h, const struct xsdom_info *di, char *err, size_t errlen);

/* Releases the domain from XenStore and removes its nodes; -1 if the release failed. */
int xsdom_release(struct xs_handle *h, unsigned int domid);

#endif
