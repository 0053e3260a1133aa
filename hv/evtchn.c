/*
 * evtchn.c - the event channels of bulkhead-hv.
 *
 * A port is an eventfd: its owner polls and reads it, and the port bound
 * to it notifies by writing it, directly, never through the daemon.  The
 * daemon makes the eventfds, hands them out, keeps one reference of each
 * for the next binder, and wakes a port whose peer went away.
 *
 * An interdomain pair holds exactly two eventfds, A (port a's) and B
 * (port b's): a's owner got [A, B], b's owner [B, A].  When b closes, a is
 * unbound again and keeps B as the eventfd its next peer will wait on - the
 * one a's owner already writes to - so a rebinding needs nothing new from
 * a's owner.
 *
 * An eventfd cannot be reopened, so every holder shares one open file
 * description: any of them can clear O_NONBLOCK on it and fill its counter,
 * after which write(2) would block until someone reads.  The daemon
 * therefore never write(2)s an eventfd (see evt_kick).
 *
 * Ports bound through a channel belong to it (the port records its
 * channel) and close with it; a domain's ports close with the domain.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/aio_abi.h>
#include <xen/event_channel.h>

#include "evtkick.h"
#include "hv.h"

/* Xen's own limit (the FIFO ABI), as DOM_CREATE accepts; port tables are allocated whole. */
#define EVT_MAX_PORTS (1u << 17)

struct evt_port {
    uint8_t state;         /* EVTCHNSTAT_closed, _unbound or _interdomain */
    uint16_t remote_domid; /* _unbound: the domain that may bind; _interdomain: the peer's */
    uint32_t remote_port;  /* _interdomain */
    int fd;                /* the port's own eventfd; -1 when closed */
    int peer_fd;           /* _unbound: the eventfd its next peer will wait on; else -1 */
    struct hv_conn *conn;  /* the channel that bound it */
};

struct hv_evtchn {
    uint32_t nports; /* ports 1..nports-1: port 0 is never bound, as on Xen */
    uint32_t nbound;
    struct evt_port port[];
};

/* Wakes a port, never blocking, whatever its holders did to it (evtkick.h). */
static void evt_kick(struct hv *hv, int fd)
{
    static aio_context_t ctx; /* one for the daemon's life */

    if (evtkick(&ctx, fd) != 0)
        hv_log(hv, "evtchn: cannot wake a port: %s (check fs.aio-max-nr)", strerror(errno));
}

static void evt_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int evtchn_dom_init(struct hv_dom *d)
{
    uint32_t max = d->max_evtchn_ports ? d->max_evtchn_ports : HV_DEFAULT_EVTCHN_PORTS;
    struct hv_evtchn *t;

    if (max > EVT_MAX_PORTS)
        return EINVAL;
    t = calloc(1, sizeof(*t) + sizeof(t->port[0]) * (max + 1));
    if (t == NULL)
        return ENOMEM;
    t->nports = max + 1;
    for (uint32_t p = 0; p < t->nports; p++) {
        t->port[p].state = EVTCHNSTAT_closed;
        t->port[p].fd = t->port[p].peer_fd = -1;
    }
    d->evt = t;
    return 0;
}

/* The port `p` of domain `d`, if it is bound. */
static struct evt_port *port_get(const struct hv_dom *d, uint32_t p)
{
    if (d == NULL || d->evt == NULL || p == 0 || p >= d->evt->nports)
        return NULL;
    return d->evt->port[p].state == EVTCHNSTAT_closed ? NULL : &d->evt->port[p];
}

/* The lowest free port, as Xen hands them out; 0 when the table is full. */
static uint32_t port_alloc(const struct hv_evtchn *t)
{
    for (uint32_t p = 1; p < t->nports; p++)
        if (t->port[p].state == EVTCHNSTAT_closed)
            return p;
    return 0;
}

/* A domain named in a request: HVW_DOMID_SELF is the caller's. */
static struct hv_dom *evt_dom(struct hv *hv, struct hv_dom *me, uint16_t domid)
{
    struct hv_dom *d = domid == HVW_DOMID_SELF ? me : hv_dom_find(hv, domid);

    return d != NULL && d->evt != NULL ? d : NULL;
}

/* Closes port p of d; an interdomain peer becomes unbound, keeps p's eventfd and is woken. */
static void port_close(struct hv *hv, struct hv_dom *d, uint32_t p)
{
    struct evt_port *me = &d->evt->port[p], *peer;

    if (me->state == EVTCHNSTAT_interdomain) {
        peer = port_get(hv_dom_find(hv, me->remote_domid), me->remote_port);
        if (peer == NULL || peer->state != EVTCHNSTAT_interdomain ||
            peer->remote_domid != d->domid || peer->remote_port != p) {
            hv_log(hv, "evtchn: port %u of domain %u has no peer: internal error", p, d->domid);
            abort();
        }
        peer->state = EVTCHNSTAT_unbound;
        peer->remote_domid = d->domid;
        peer->peer_fd = me->fd; /* what the peer's owner already writes to */
        me->fd = -1;
        evt_kick(hv, peer->fd);
    }
    evt_close_fd(&me->fd);
    evt_close_fd(&me->peer_fd);
    me->state = EVTCHNSTAT_closed;
    me->conn = NULL;
    d->evt->nbound--;
}

void evtchn_conn_release(struct hv *hv, struct hv_conn *c)
{
    struct hv_evtchn *t = c->dom != NULL ? c->dom->evt : NULL;

    for (uint32_t p = 1; t != NULL && p < t->nports; p++)
        if (t->port[p].state != EVTCHNSTAT_closed && t->port[p].conn == c)
            port_close(hv, c->dom, p);
}

void evtchn_dom_release(struct hv *hv, struct hv_dom *d)
{
    struct hv_evtchn *t = d->evt;

    if (t == NULL)
        return;
    for (uint32_t p = 1; p < t->nports; p++)
        if (t->port[p].state != EVTCHNSTAT_closed)
            port_close(hv, d, p);
    free(t);
    d->evt = NULL;
}

/*
 * The reply of UNBOUND and BIND: the port, and duplicates of [own,
 * remote's] that conn.c closes once sent (close-on-exec meanwhile, as the
 * daemon forks domains).
 */
static int port_reply(struct hv *hv, struct hv_rsp *rsp, uint32_t port, int own, int remote)
{
    if ((rsp->fds[0] = fcntl(own, F_DUPFD_CLOEXEC, 0)) < 0)
        goto fail;
    if ((rsp->fds[1] = fcntl(remote, F_DUPFD_CLOEXEC, 0)) < 0) {
        close(rsp->fds[0]);
        goto fail;
    }
    rsp->nfds = 2;
    memcpy(rsp->p, &port, sizeof(port));
    rsp->len = sizeof(struct hvw_evt_port_rsp);
    return 0;
fail:
    hv_log(hv, "evtchn: cannot pass a port's eventfds: %s (raise the daemon's RLIMIT_NOFILE)",
           strerror(errno));
    return ENOMEM;
}

int evtchn_unbound(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_evt_unbound_req u;
    struct hv_dom *me = req->conn->dom, *rd;
    int own = -1, remote = -1, rc = 0;
    uint32_t p;

    if (req->len != sizeof(u))
        return EINVAL;
    memcpy(&u, req->p, sizeof(u));
    if (me->evt == NULL || (rd = evt_dom(hv, me, u.remote_domid)) == NULL)
        return ESRCH;
    if ((p = port_alloc(me->evt)) == 0)
        return ENOSPC;
    own = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    remote = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (own < 0 || remote < 0) {
        hv_log(
            hv,
            "evtchn: cannot make an eventfd for domain %u: %s (raise the daemon's RLIMIT_NOFILE)",
            me->domid, strerror(errno));
        rc = ENOMEM;
        goto out;
    }
    if ((rc = port_reply(hv, rsp, p, own, remote)) != 0)
        goto out;
    me->evt->port[p] = (struct evt_port){.state = EVTCHNSTAT_unbound,
                                         .remote_domid = rd->domid,
                                         .fd = own,
                                         .peer_fd = remote,
                                         .conn = req->conn};
    me->evt->nbound++;
out:
    if (rc != 0) {
        evt_close_fd(&own);
        evt_close_fd(&remote);
    }
    return rc;
}

int evtchn_bind(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_evt_bind_req b;
    struct hv_dom *me = req->conn->dom, *rd;
    struct evt_port *rp;
    uint32_t p;
    int rc;

    if (req->len != sizeof(b))
        return EINVAL;
    memcpy(&b, req->p, sizeof(b));
    if (me->evt == NULL || (rd = evt_dom(hv, me, b.remote_domid)) == NULL)
        return ESRCH;
    /* Only a port left unbound for us, as Xen checks: anything else is EINVAL. */
    rp = port_get(rd, b.remote_port);
    if (rp == NULL || rp->state != EVTCHNSTAT_unbound || rp->remote_domid != me->domid)
        return EINVAL;
    if ((p = port_alloc(me->evt)) == 0)
        return ENOSPC;
    if ((rc = port_reply(hv, rsp, p, rp->peer_fd, rp->fd)) != 0)
        return rc;
    me->evt->port[p] = (struct evt_port){.state = EVTCHNSTAT_interdomain,
                                         .remote_domid = rd->domid,
                                         .remote_port = b.remote_port,
                                         .fd = rp->peer_fd,
                                         .peer_fd = -1,
                                         .conn = req->conn};
    me->evt->nbound++;
    rp->state = EVTCHNSTAT_interdomain;
    rp->remote_domid = me->domid;
    rp->remote_port = p;
    rp->peer_fd = -1;
    return 0;
}

int evtchn_close(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_evt_port_req c;
    struct evt_port *p;

    if (req->len != sizeof(c))
        return EINVAL;
    memcpy(&c, req->p, sizeof(c));
    if (req->conn->dom->evt == NULL)
        return ESRCH;
    if ((p = port_get(req->conn->dom, c.port)) == NULL)
        return EINVAL;
    /* Another channel's port, as Linux's evtchn driver answers for another file's. */
    if (p->conn != req->conn)
        return ENOTCONN;
    port_close(hv, req->conn->dom, c.port);
    rsp->len = 0;
    return 0;
}

int evtchn_status(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_evt_status_req s;
    struct hvw_evt_status_rsp out = {.status = EVTCHNSTAT_closed};
    struct hv_dom *me = req->conn->dom, *d;
    const struct evt_port *p;

    if (req->len != sizeof(s))
        return EINVAL;
    memcpy(&s, req->p, sizeof(s));
    /* Another domain's ports are dom0's business only, as on Xen. */
    if (s.domid != HVW_DOMID_SELF && s.domid != me->domid && me->domid != 0)
        return EPERM;
    if ((d = evt_dom(hv, me, s.domid)) == NULL)
        return ESRCH;
    if (s.port >= d->evt->nports)
        return EINVAL;
    if ((p = port_get(d, s.port)) != NULL) {
        out.status = p->state;
        out.remote_domid = p->remote_domid;
        out.remote_port = p->state == EVTCHNSTAT_interdomain ? p->remote_port : 0;
    }
    memcpy(rsp->p, &out, sizeof(out));
    rsp->len = sizeof(out);
    return 0;
}

void evtchn_stats(struct hv *hv, struct hvw_stats_rsp *st)
{
    st->ports = 0;
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->evt != NULL)
            st->ports += d->evt->nbound;
}
