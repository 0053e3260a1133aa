/*
 * xen.c - the Xen platform: grants and event channels through Xen's own
 * libxengntshr / libxengnttab / libxenevtchn (/dev/xen/gntalloc, gntdev,
 * evtchn), and this domain's id from XenStore, as a guest reads it.
 *
 * bhplat.h is shaped after these libraries, so most operations are a call
 * through; what is ours is the logging (the libraries' messages go to the
 * handle's bhplat_logger, not to stderr, so a daemon's log stays one
 * stream), and the grant-copy segments, converted field by field rather
 * than cast, so that a layout change in a later libxengnttab shows up as a
 * compile error here instead of as copies to the wrong place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>
#include <xen/grant_table.h>

#include "private.h"

/* Segments converted per hypercall batch; a bigger batch is done in pieces. */
#define COPY_BATCH 64

/* ---- the libraries' logger, forwarding to the handle's ---- */

struct xen_log {
    struct xentoollog_logger xtl; /* first: the libraries hand this pointer back */
    struct bhplat_logger *to;
};

static void xen_vmessage(struct xentoollog_logger *xtl, xentoollog_level level, int errnoval,
                         const char *context, const char *format, va_list al)
{
    struct xen_log *l = (struct xen_log *)xtl;
    char msg[400];

    /* Debug and progress chatter is not ours to pass on. */
    if (level < XTL_WARN || l->to == NULL)
        return;
    vsnprintf(msg, sizeof(msg), format, al);
    if (errnoval >= 0)
        plat_log(l->to, "bhplat: xen %s: %s: %s", context ? context : "", msg, strerror(errnoval));
    else
        plat_log(l->to, "bhplat: xen %s: %s", context ? context : "", msg);
}

static void xen_progress(struct xentoollog_logger *xtl, const char *context, const char *doing_what,
                         int percent, unsigned long done, unsigned long total)
{
    (void)xtl, (void)context, (void)doing_what, (void)percent, (void)done, (void)total;
}

static void xen_destroy(struct xentoollog_logger *xtl)
{
    (void)xtl; /* freed with the handle's state, after the library is closed */
}

static void xen_log_init(struct xen_log *l, struct bhplat_logger *to)
{
    l->xtl.vmessage = xen_vmessage;
    l->xtl.progress = xen_progress;
    l->xtl.destroy = xen_destroy;
    l->to = to;
}

/*
 * A guest's id is what the toolstack wrote at "domid" in its own XenStore
 * directory (the relative path resolves there); dom0's is written by
 * xen-init-dom0.  Read fresh each time: the answer cannot change, and
 * callers ask once.
 */
static int xen_domid(void)
{
    struct xs_handle *xs = xs_open(0);
    unsigned int len = 0;
    char *v, *end;
    long id = -1;

    if (xs == NULL)
        return -1;
    v = xs_read(xs, XBT_NULL, "domid", &len);
    if (v != NULL) {
        errno = 0;
        id = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || id < 0 || id > UINT16_MAX) {
            id = -1;
            errno = EPROTO;
        }
        free(v);
    }
    xs_close(xs);
    return (int)id;
}

/* ---- granting pages: xengntshr ---- */

struct xen_gntshr {
    struct xen_log log;
    xengntshr_handle *xgs;
};

static int xen_gntshr_open(bhgntshr_handle *h)
{
    struct xen_gntshr *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    xen_log_init(&s->log, h->logger);
    if ((s->xgs = xengntshr_open(&s->log.xtl, 0)) == NULL) {
        int err = errno;
        plat_log(h->logger, "bhplat: cannot open Xen's gntalloc (/dev/xen/gntalloc): %s "
                            "(modprobe xen-gntalloc)", strerror(err));
        free(s);
        errno = err;
        return -1;
    }
    h->priv = s;
    return 0;
}

static void xen_gntshr_close(bhgntshr_handle *h)
{
    struct xen_gntshr *s = h->priv;

    xengntshr_close(s->xgs);
    free(s);
}

static void *xen_share_pages(bhgntshr_handle *h, uint16_t domid, uint32_t count,
                             bh_grant_ref_t *refs, bool writable)
{
    struct xen_gntshr *s = h->priv;

    return xengntshr_share_pages(s->xgs, domid, (int)count, refs, writable);
}

static int xen_unshare(bhgntshr_handle *h, void *addr, uint32_t count)
{
    struct xen_gntshr *s = h->priv;

    return xengntshr_unshare(s->xgs, addr, count);
}

/* ---- mapping and copying: xengnttab ---- */

struct xen_gnttab {
    struct xen_log log;
    xengnttab_handle *xgt;
};

static int xen_gnttab_open(bhgnttab_handle *h)
{
    struct xen_gnttab *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return -1;
    xen_log_init(&t->log, h->logger);
    if ((t->xgt = xengnttab_open(&t->log.xtl, 0)) == NULL) {
        int err = errno;
        plat_log(h->logger, "bhplat: cannot open Xen's gntdev (/dev/xen/gntdev): %s "
                            "(modprobe xen-gntdev)", strerror(err));
        free(t);
        errno = err;
        return -1;
    }
    h->priv = t;
    return 0;
}

static void xen_gnttab_close(bhgnttab_handle *h)
{
    struct xen_gnttab *t = h->priv;

    xengnttab_close(t->xgt);
    free(t);
}

static void *xen_map(bhgnttab_handle *h, uint32_t count, uint16_t domid, const bh_grant_ref_t *refs,
                     bool writable)
{
    struct xen_gnttab *t = h->priv;

    /* libxengnttab takes the references non-const but only reads them. */
    return xengnttab_map_domain_grant_refs(t->xgt, count, domid, (uint32_t *)refs,
                                           PROT_READ | (writable ? PROT_WRITE : 0));
}

static int xen_unmap(bhgnttab_handle *h, void *addr, uint32_t count)
{
    struct xen_gnttab *t = h->priv;

    return xengnttab_unmap(t->xgt, addr, count);
}

static void copy_ptr_to(union xengnttab_copy_ptr *x, const union bhgnttab_copy_ptr *b, bool gref)
{
    if (gref) {
        x->foreign.ref = b->foreign.ref;
        x->foreign.offset = b->foreign.offset;
        x->foreign.domid = b->foreign.domid;
    } else {
        x->virt = b->virt;
    }
}

static int xen_grant_copy(bhgnttab_handle *h, uint32_t count, bhgnttab_grant_copy_segment_t *segs)
{
    struct xen_gnttab *t = h->priv;
    xengnttab_grant_copy_segment_t x[COPY_BATCH];

    for (uint32_t done = 0; done < count;) {
        uint32_t n = count - done < COPY_BATCH ? count - done : COPY_BATCH;

        for (uint32_t i = 0; i < n; i++) {
            const bhgnttab_grant_copy_segment_t *b = &segs[done + i];
            memset(&x[i], 0, sizeof(x[i]));
            copy_ptr_to(&x[i].source, &b->source, b->flags & GNTCOPY_source_gref);
            copy_ptr_to(&x[i].dest, &b->dest, b->flags & GNTCOPY_dest_gref);
            x[i].len = b->len;
            x[i].flags = b->flags;
        }
        if (xengnttab_grant_copy(t->xgt, n, x) != 0)
            return -1;
        for (uint32_t i = 0; i < n; i++)
            segs[done + i].status = x[i].status;
        done += n;
    }
    return 0;
}

/* ---- event channels: xenevtchn ---- */

struct xen_evt {
    struct xen_log log;
    xenevtchn_handle *xce;
};

static int xen_evtchn_open(bhevtchn_handle *h)
{
    struct xen_evt *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return -1;
    xen_log_init(&e->log, h->logger);
    if ((e->xce = xenevtchn_open(&e->log.xtl, 0)) == NULL) {
        int err = errno;
        plat_log(h->logger, "bhplat: cannot open Xen's event channels (/dev/xen/evtchn): %s "
                            "(modprobe xen-evtchn)", strerror(err));
        free(e);
        errno = err;
        return -1;
    }
    /* libxenevtchn's fd blocks; bhplat.h promises pending() never does. */
    int fl = fcntl(xenevtchn_fd(e->xce), F_GETFL);
    if (fl < 0 || fcntl(xenevtchn_fd(e->xce), F_SETFL, fl | O_NONBLOCK) != 0) {
        int err = errno;
        xenevtchn_close(e->xce);
        free(e);
        errno = err;
        return -1;
    }
    h->priv = e;
    return 0;
}

static void xen_evtchn_close(bhevtchn_handle *h)
{
    struct xen_evt *e = h->priv;

    xenevtchn_close(e->xce);
    free(e);
}

static int xen_evtchn_fd(bhevtchn_handle *h)
{
    return xenevtchn_fd(((struct xen_evt *)h->priv)->xce);
}

static int xen_notify(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return xenevtchn_notify(((struct xen_evt *)h->priv)->xce, port);
}

static int xen_bind_unbound(bhevtchn_handle *h, uint16_t domid)
{
    return xenevtchn_bind_unbound_port(((struct xen_evt *)h->priv)->xce, domid);
}

static int xen_bind_interdomain(bhevtchn_handle *h, uint16_t domid, bh_evtchn_port_t remote_port)
{
    return xenevtchn_bind_interdomain(((struct xen_evt *)h->priv)->xce, domid, remote_port);
}

static int xen_unbind(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return xenevtchn_unbind(((struct xen_evt *)h->priv)->xce, port);
}

/* Non-blocking since open: EAGAIN when nothing is pending, as bhplat.h says. */
static int xen_pending(bhevtchn_handle *h)
{
    return xenevtchn_pending(((struct xen_evt *)h->priv)->xce);
}

static int xen_unmask(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    return xenevtchn_unmask(((struct xen_evt *)h->priv)->xce, port);
}

const struct plat_ops plat_xen_ops = {
    .name = "xen",
    .domid = xen_domid,
    .gntshr_open = xen_gntshr_open,
    .gntshr_close = xen_gntshr_close,
    .share_pages = xen_share_pages,
    .unshare = xen_unshare,
    .gnttab_open = xen_gnttab_open,
    .gnttab_close = xen_gnttab_close,
    .map = xen_map,
    .unmap = xen_unmap,
    .grant_copy = xen_grant_copy,
    .evtchn_open = xen_evtchn_open,
    .evtchn_close = xen_evtchn_close,
    .evtchn_fd = xen_evtchn_fd,
    .notify = xen_notify,
    .bind_unbound = xen_bind_unbound,
    .bind_interdomain = xen_bind_interdomain,
    .unbind = xen_unbind,
    .pending = xen_pending,
    .unmask = xen_unmask,
};
