/*
 * private.h - what libbhplat's files share and nobody else sees: the
 * handles, and the operations a platform fills in.
 *
 * core.c owns the handles' life and the argument checks, and picks the
 * platform; each platform file (sim.c, xen.c)
 * fills a `struct plat_ops` and keeps its state behind `priv`.  Names here
 * must not start with "bh": only the bh* API is exported.
 */
#ifndef BULKHEAD_GRANT_PRIVATE_H
#define BULKHEAD_GRANT_PRIVATE_H

#include <stdbool.h>

#include "bhplat.h"

struct bhgntshr_handle {
    const struct plat_ops *ops;
    struct bhplat_logger *logger;
    void *priv;
};

struct bhgnttab_handle {
    const struct plat_ops *ops;
    struct bhplat_logger *logger;
    void *priv;
};

struct bhevtchn_handle {
    const struct plat_ops *ops;
    struct bhplat_logger *logger;
    void *priv;
};

/*
 * A platform.  core.c has checked the arguments described in bhplat.h
 * (counts, prot, domid range) before any of these is called; each returns
 * as its bhplat.h counterpart does, errno set.
 */
struct plat_ops {
    const char *name;
    int (*domid)(void);

    int (*gntshr_open)(bhgntshr_handle *h);
    void (*gntshr_close)(bhgntshr_handle *h);
    void *(*share_pages)(bhgntshr_handle *h, uint16_t domid, uint32_t count, bh_grant_ref_t *refs,
                         bool writable);
    int (*unshare)(bhgntshr_handle *h, void *addr, uint32_t count);

    int (*gnttab_open)(bhgnttab_handle *h);
    void (*gnttab_close)(bhgnttab_handle *h);
    void *(*map)(bhgnttab_handle *h, uint32_t count, uint16_t domid, const bh_grant_ref_t *refs,
                 bool writable);
    int (*unmap)(bhgnttab_handle *h, void *addr, uint32_t count);
    /* Optional: without them, bhgnttab_map_many and _unmap_many loop over map and unmap. */
    int (*map_many)(bhgnttab_handle *h, uint32_t n, uint16_t domid, const uint32_t *counts,
                    const bh_grant_ref_t *refs, bool writable, void **addrs);
    int (*unmap_many)(bhgnttab_handle *h, uint32_t n, void *const *addrs, const uint32_t *counts);
    int (*grant_copy)(bhgnttab_handle *h, uint32_t count, bhgnttab_grant_copy_segment_t *segs);

    int (*evtchn_open)(bhevtchn_handle *h);
    void (*evtchn_close)(bhevtchn_handle *h);
    int (*evtchn_fd)(bhevtchn_handle *h);
    int (*notify)(bhevtchn_handle *h, bh_evtchn_port_t port);
    int (*bind_unbound)(bhevtchn_handle *h, uint16_t domid);
    int (*bind_interdomain)(bhevtchn_handle *h, uint16_t domid, bh_evtchn_port_t remote_port);
    int (*unbind)(bhevtchn_handle *h, bh_evtchn_port_t port);
    int (*pending)(bhevtchn_handle *h);
    int (*unmask)(bhevtchn_handle *h, bh_evtchn_port_t port);
};

/* sim.c: the simulation, over bulkhead-hv's hypercall channel */
extern const struct plat_ops plat_sim_ops;
/* xen.c: Xen, through libxengntshr, libxengnttab and libxenevtchn */
extern const struct plat_ops plat_xen_ops;

/* sim.c: a hypercall channel of its own (hv/hvwire.h); broker.c uses it too */
struct sim_chan {
    int fd;
    uint32_t seq;
    bool broken; /* the daemon sent something we cannot follow: no more requests */
    struct bhplat_logger *logger;
};

/* Where a reply goes: its payload, and exactly nfds descriptors. */
struct chan_reply {
    void *p;
    size_t cap;
    size_t len; /* out */
    int *fds;   /* out */
    unsigned int nfds; /* exactly this many; with upto, at most, and then how many came */
    bool upto;
};

int chan_open(struct sim_chan *ch, struct bhplat_logger *logger); /* BULKHEAD_HV_SOCKET */
void chan_close(struct sim_chan *ch);
/* One request and its reply, which must carry exactly r->nfds descriptors. */
int chan_call(struct sim_chan *ch, uint16_t op, const void *req, size_t len,
              struct chan_reply *r);
int chan_broken(struct sim_chan *ch, uint16_t op, const char *why); /* always -1, EPROTO */

/* core.c: one line to the handle's logger, if it has one; errno is kept. */
void plat_log(struct bhplat_logger *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* BULKHEAD_GRANT_PRIVATE_H */
