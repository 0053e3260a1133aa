/*
 * netfront.c - a vif's frontend: rings and pools granted once per
 * connection, frames between the TAP and the rings.  The backend is
 * hostile: every response goes through rsp.c's validators before a byte
 * of our pages is used, and a lie breaks this device only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bhnetfront.h"
#include "bhxenbus.h"

#define PG          4096u
#define RING_ENTS   256u /* NET_TX_RING_SIZE and NET_RX_RING_SIZE of one page */
#define BATCH       64u  /* pages per grant call (the simulation's batch) */
#define FRAME_MAX   65535u
#define TX_MAX_DATA ((FRAME_MAX + PG - 1) / PG) /* data slots of the largest frame */
#define NF_ETH_HLEN 14u

struct nf_queue {
    void *txring, *rxring;
    uint32_t txring_ref, rxring_ref;
    struct bhring tx, rx;
    int txport, rxport; /* the same port without split event channels */
    struct bhring_ids *txids;
    /* pools: TX pages handed out per slot from a free list; RX page i is posted with id i */
    void *txbatch[RING_ENTS / BATCH], *rxbatch[RING_ENTS / BATCH];
    uint8_t *txpg[RING_ENTS], *rxpg[RING_ENTS];
    uint32_t txref[RING_ENTS], rxref[RING_ENTS];
    uint16_t txfree[RING_ENTS];
    unsigned int ntxfree;
    uint32_t rx_prod, rx_got, rx_done; /* RX requests posted, responses taken, handled */
    struct netif_rx_response pend[BHNETF_RX_MAX_RSP];
    uint16_t pend_id[BHNETF_RX_MAX_RSP];
    unsigned int npend;
};

/*
 * The control ring, when the backend offers one: the ring, two data pages
 * (the key, the mapping table: each request's grant starts its data, so
 * they cannot share one) and a port.  The requests go once per
 * connection, in order; the responses must answer them in that order.
 */
#define CTRL_REQS     5u
#define CTRL_MAP_SIZE 128u /* entries: netif.h's and Linux's largest, spreading flows finely */

struct nf_ctrl {
    void *ring;
    uint8_t *data; /* two pages: the key, then the mapping table */
    uint32_t ring_ref, data_ref[2];
    struct bhring r;
    int port;
    unsigned int sent, answered;
};

struct bhnetfront {
    struct bhnetfront_cfg cfg;
    char *dir, *backend;
    int tap[BHNETFRONT_MAX_QUEUES];
    unsigned int wanted, nq;
    bool published, connected;
    struct nf_queue q[BHNETFRONT_MAX_QUEUES];
    struct nf_ctrl ctrl;
    struct bhnetfront_info info;
    struct bhnetf_rxopts rxo;
    struct bhnetfront_stats st;
    uint8_t *scratch; /* one frame with its header */
    bool broken;
    char why[256];
};

static void nf_break(bhnetfront *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void nf_break(bhnetfront *n, const char *fmt, ...)
{
    va_list ap;

    if (n->broken)
        return;
    va_start(ap, fmt);
    vsnprintf(n->why, sizeof(n->why), fmt, ap);
    va_end(ap);
    n->broken = true;
    if (n->cfg.broken != NULL)
        n->cfg.broken(n->cfg.arg, n->why);
}

bhnetfront *bhnetfront_new(const struct bhnetfront_cfg *cfg)
{
    bhnetfront *n;

    if (cfg == NULL || cfg->xs == NULL || cfg->gntshr == NULL || cfg->evtchn == NULL ||
        cfg->dir == NULL || cfg->backend == NULL || cfg->tap == NULL || cfg->ntap == 0 ||
        cfg->ntap > BHNETFRONT_MAX_QUEUES || cfg->queues > cfg->ntap ||
        (cfg->hdrsz != 10 && cfg->hdrsz != 12)) {
        errno = EINVAL;
        return NULL;
    }
    /* Geometry is ours, not the peer's: a one-page ring of each type holds RING_ENTS. */
    if (bhring_type_nr_ents(&bhring_netif_tx, 0) != RING_ENTS ||
        bhring_type_nr_ents(&bhring_netif_rx, 0) != RING_ENTS)
        abort();
    if ((n = calloc(1, sizeof(*n))) == NULL)
        return NULL;
    n->cfg = *cfg;
    memcpy(n->tap, cfg->tap, cfg->ntap * sizeof(int));
    n->cfg.tap = n->tap;
    n->wanted = cfg->queues ? cfg->queues : cfg->ntap;
    n->dir = strdup(cfg->dir);
    n->backend = strdup(cfg->backend);
    n->scratch = malloc(12 + BHNETF_RX_MAX_SLOTS * PG);
    if (n->dir == NULL || n->backend == NULL || n->scratch == NULL) {
        bhnetfront_free(n);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned int i = 0; i < BHNETFRONT_MAX_QUEUES; i++)
        n->q[i].txport = n->q[i].rxport = -1;
    n->ctrl.port = -1;
    return n;
}

void bhnetfront_free(bhnetfront *n)
{
    if (n == NULL)
        return;
    bhnetfront_disconnect(n);
    free(n->dir);
    free(n->backend);
    free(n->scratch);
    free(n);
}

/* ---- connection ---- */

static void unshare_pool(bhnetfront *n, void **batch)
{
    for (unsigned int i = 0; i < RING_ENTS / BATCH; i++)
        if (batch[i] != NULL) {
            bhgntshr_unshare(n->cfg.gntshr, batch[i], BATCH);
            batch[i] = NULL;
        }
}

static int share_pool(bhnetfront *n, void **batch, uint8_t **pg, uint32_t *ref)
{
    for (unsigned int i = 0; i < RING_ENTS / BATCH; i++) {
        uint8_t *p = bhgntshr_share_pages(n->cfg.gntshr, n->cfg.backend_domid, BATCH,
                                          &ref[i * BATCH], 1);
        if (p == NULL)
            return -1;
        batch[i] = p;
        for (unsigned int j = 0; j < BATCH; j++)
            pg[i * BATCH + j] = p + (size_t)j * PG;
    }
    return 0;
}

static void queue_close(bhnetfront *n, struct nf_queue *q)
{
    if (q->rxport >= 0 && q->rxport != q->txport)
        bhevtchn_unbind(n->cfg.evtchn, (uint32_t)q->rxport);
    if (q->txport >= 0)
        bhevtchn_unbind(n->cfg.evtchn, (uint32_t)q->txport);
    q->txport = q->rxport = -1;
    if (q->txring != NULL)
        bhgntshr_unshare(n->cfg.gntshr, q->txring, 1);
    if (q->rxring != NULL)
        bhgntshr_unshare(n->cfg.gntshr, q->rxring, 1);
    q->txring = q->rxring = NULL;
    unshare_pool(n, q->txbatch);
    unshare_pool(n, q->rxbatch);
    bhring_ids_free(q->txids);
    q->txids = NULL;
}

static void ctrl_close(bhnetfront *n)
{
    struct nf_ctrl *c = &n->ctrl;

    if (c->port >= 0)
        bhevtchn_unbind(n->cfg.evtchn, (uint32_t)c->port);
    if (c->ring != NULL)
        bhgntshr_unshare(n->cfg.gntshr, c->ring, 1);
    if (c->data != NULL)
        bhgntshr_unshare(n->cfg.gntshr, c->data, 2);
    memset(c, 0, sizeof(*c));
    c->port = -1;
}

void bhnetfront_disconnect(bhnetfront *n)
{
    if (n == NULL)
        return;
    ctrl_close(n);
    for (unsigned int i = 0; i < BHNETFRONT_MAX_QUEUES; i++)
        queue_close(n, &n->q[i]);
    n->published = n->connected = false;
}

static int queue_open(bhnetfront *n, struct nf_queue *q, bool split, char *why, size_t len)
{
    const char *step;
    int port;

    memset(q, 0, sizeof(*q));
    q->txport = q->rxport = -1;
    step = "grant the rings";
    if ((q->txring = bhgntshr_share_pages(n->cfg.gntshr, n->cfg.backend_domid, 1,
                                          &q->txring_ref, 1)) == NULL ||
        (q->rxring = bhgntshr_share_pages(n->cfg.gntshr, n->cfg.backend_domid, 1,
                                          &q->rxring_ref, 1)) == NULL)
        goto fail;
    step = "initialise the rings";
    if (bhring_attach(&q->tx, &bhring_netif_tx, BHRING_FRONT, q->txring, 0, 0, true) != 0 ||
        bhring_attach(&q->rx, &bhring_netif_rx, BHRING_FRONT, q->rxring, 0, 0, true) != 0)
        goto fail;
    step = "grant the packet pools";
    if (share_pool(n, q->txbatch, q->txpg, q->txref) != 0 ||
        share_pool(n, q->rxbatch, q->rxpg, q->rxref) != 0)
        goto fail;
    step = "allocate TX ids";
    if ((q->txids = bhring_ids_new(RING_ENTS, 16)) == NULL)
        goto fail;
    for (unsigned int i = 0; i < RING_ENTS; i++)
        q->txfree[i] = (uint16_t)i;
    q->ntxfree = RING_ENTS;
    step = "allocate an event channel";
    if ((port = bhevtchn_bind_unbound_port(n->cfg.evtchn, n->cfg.backend_domid)) < 0)
        goto fail;
    q->txport = q->rxport = port;
    if (split) {
        if ((port = bhevtchn_bind_unbound_port(n->cfg.evtchn, n->cfg.backend_domid)) < 0)
            goto fail;
        q->rxport = port;
    }
    return 0;
fail:
    snprintf(why, len, "cannot %s for domain %u: %s", step, n->cfg.backend_domid,
             strerror(errno));
    return -1;
}

/* The control ring's pages and port; its requests wait for connect. */
static int ctrl_open(bhnetfront *n, char *why, size_t len)
{
    struct nf_ctrl *c = &n->ctrl;
    const char *step = "grant the control ring";
    int port;

    if ((c->ring = bhgntshr_share_pages(n->cfg.gntshr, n->cfg.backend_domid, 1, &c->ring_ref,
                                        1)) == NULL)
        goto fail;
    /* Read-only: the backend has no business writing our key or table. */
    step = "grant the control ring's data pages";
    if ((c->data = bhgntshr_share_pages(n->cfg.gntshr, n->cfg.backend_domid, 2, c->data_ref,
                                        0)) == NULL)
        goto fail;
    step = "initialise the control ring";
    if (bhring_attach(&c->r, &bhring_netif_ctrl, BHRING_FRONT, c->ring, 0, 0, true) != 0)
        goto fail;
    step = "allocate the control ring's event channel";
    if ((port = bhevtchn_bind_unbound_port(n->cfg.evtchn, n->cfg.backend_domid)) < 0)
        goto fail;
    c->port = port;
    return 0;
fail:
    snprintf(why, len, "cannot %s for domain %u: %s", step, n->cfg.backend_domid,
             strerror(errno));
    return -1;
}

static int read_offer(bhnetfront *n, char *why, size_t len)
{
    unsigned int maxq = 1, trusted = 1;
    bool sg = false, g4 = false, g6 = false, v6 = false, split = false, ctrl = false;
    const char *bad = NULL;
    struct bhxb_key be[] = {
        {"feature-sg", BHXB_BOOL, &sg, 0, false, 0},
        {"feature-gso-tcpv4", BHXB_BOOL, &g4, 0, false, 0},
        {"feature-gso-tcpv6", BHXB_BOOL, &g6, 0, false, 0},
        {"feature-ipv6-csum-offload", BHXB_BOOL, &v6, 0, false, 0},
        {"feature-split-event-channels", BHXB_BOOL, &split, 0, false, 0},
        {"multi-queue-max-queues", BHXB_UINT, &maxq, 0, false, 65536},
        {"feature-ctrl-ring", BHXB_BOOL, &ctrl, 0, false, 0},
    };
    struct bhxb_key fe[] = {{"trusted", BHXB_UINT, &trusted, 0, false, 1}};

    if (bhxb_read_keys(n->cfg.xs, n->backend, be, sizeof(be) / sizeof(be[0]), &bad) != 0) {
        snprintf(why, len, "backend key %s: %s", bad, strerror(errno));
        return -1;
    }
    if (bhxb_read_keys(n->cfg.xs, n->dir, fe, 1, &bad) != 0) {
        snprintf(why, len, "our key %s must be 0 or 1: %s", bad, strerror(errno));
        return -1;
    }
    memset(&n->info, 0, sizeof(n->info));
    n->info.backend_max_queues = maxq ? maxq : 1;
    n->info.queues = n->wanted < n->info.backend_max_queues ? n->wanted : n->info.backend_max_queues;
    n->info.split = split;
    n->info.sg = sg;
    /* A GSO frame is larger than a slot: without feature-sg it cannot be sent. */
    n->info.gso_tcpv4 = g4 && sg;
    n->info.gso_tcpv6 = g6 && sg;
    n->info.ipv6_csum = v6;
    n->info.trusted = trusted != 0;
    n->info.ctrl = ctrl;
    /*
     * What RX may carry is what we write below: GSO of the types the
     * backend offers, and with a control ring the HASH extra (we choose
     * Toeplitz on it before any frame could carry one).
     */
    n->rxo = (struct bhnetf_rxopts){g4, g6, ctrl, 0};
    return 0;
}

/* Every layout's keys go first: the backend never reads a mix of two connections'. */
static void remove_stale(bhnetfront *n)
{
    static const char *const names[] = {"tx-ring-ref", "rx-ring-ref", "event-channel",
                                        "event-channel-tx", "event-channel-rx",
                                        "multi-queue-num-queues", "ctrl-ring-ref",
                                        "event-channel-ctrl"};
    char path[BHXB_PATH_MAX + 32];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", n->dir, names[i]);
        xs_rm(n->cfg.xs, XBT_NULL, path);
    }
    for (unsigned int i = 0; i < BHNETFRONT_MAX_QUEUES; i++) {
        snprintf(path, sizeof(path), "%s/queue-%u", n->dir, i);
        xs_rm(n->cfg.xs, XBT_NULL, path);
    }
}

#define NF_MAX_KEYS (11 + 5 * BHNETFRONT_MAX_QUEUES)

int bhnetfront_publish(bhnetfront *n, char *why, size_t len)
{
    static bool yes = true;
    struct bhxb_key k[NF_MAX_KEYS];
    char names[BHNETFRONT_MAX_QUEUES][5][40];
    unsigned int vals[BHNETFRONT_MAX_QUEUES][4], nk = 0, nq, cvals[2];

    bhnetfront_disconnect(n);
    /* A new connection starts clean: rings, pools and ids are new. */
    n->broken = false;
    n->why[0] = '\0';
    if (read_offer(n, why, len) != 0)
        return -1;
    nq = n->info.queues;
    for (unsigned int i = 0; i < nq; i++)
        if (queue_open(n, &n->q[i], n->info.split, why, len) != 0) {
            bhnetfront_disconnect(n);
            return -1;
        }
    if (n->info.ctrl && ctrl_open(n, why, len) != 0) {
        bhnetfront_disconnect(n);
        return -1;
    }
    remove_stale(n);
    if (n->info.ctrl) {
        cvals[0] = n->ctrl.ring_ref;
        cvals[1] = (unsigned int)n->ctrl.port;
        k[nk++] = (struct bhxb_key){"ctrl-ring-ref", BHXB_UINT, &cvals[0], 0, false, 0};
        k[nk++] = (struct bhxb_key){"event-channel-ctrl", BHXB_UINT, &cvals[1], 0, false, 0};
    }
    for (unsigned int i = 0; i < nq; i++) {
        struct nf_queue *q = &n->q[i];
        const char *pre = "";
        char qp[16];

        if (nq > 1) {
            snprintf(qp, sizeof(qp), "queue-%u/", i);
            pre = qp;
        }
        vals[i][0] = q->txring_ref;
        vals[i][1] = q->rxring_ref;
        vals[i][2] = (unsigned int)q->txport;
        vals[i][3] = (unsigned int)q->rxport;
        snprintf(names[i][0], sizeof(names[i][0]), "%stx-ring-ref", pre);
        snprintf(names[i][1], sizeof(names[i][1]), "%srx-ring-ref", pre);
        k[nk++] = (struct bhxb_key){names[i][0], BHXB_UINT, &vals[i][0], 0, false, 0};
        k[nk++] = (struct bhxb_key){names[i][1], BHXB_UINT, &vals[i][1], 0, false, 0};
        if (n->info.split) {
            snprintf(names[i][2], sizeof(names[i][2]), "%sevent-channel-tx", pre);
            snprintf(names[i][3], sizeof(names[i][3]), "%sevent-channel-rx", pre);
            k[nk++] = (struct bhxb_key){names[i][2], BHXB_UINT, &vals[i][2], 0, false, 0};
            k[nk++] = (struct bhxb_key){names[i][3], BHXB_UINT, &vals[i][3], 0, false, 0};
        } else {
            snprintf(names[i][2], sizeof(names[i][2]), "%sevent-channel", pre);
            k[nk++] = (struct bhxb_key){names[i][2], BHXB_UINT, &vals[i][2], 0, false, 0};
        }
    }
    if (nq > 1)
        k[nk++] = (struct bhxb_key){"multi-queue-num-queues", BHXB_UINT, &nq, 0, false, 0};
    k[nk++] = (struct bhxb_key){"request-rx-copy", BHXB_BOOL, &yes, 0, false, 0};
    k[nk++] = (struct bhxb_key){"feature-rx-notify", BHXB_BOOL, &yes, 0, false, 0};
    /*
     * Ours: the pools are granted once per connection and never ended
     * before it ends, so the backend may keep their pages mapped (Linux's
     * netfront ends a grant per packet, and a backend must not).
     */
    k[nk++] = (struct bhxb_key){"bulkhead-persistent-pools", BHXB_BOOL, &yes, 0, false, 0};
    k[nk++] = (struct bhxb_key){"feature-sg", BHXB_BOOL, &yes, 0, false, 0};
    k[nk++] = (struct bhxb_key){"feature-ipv6-csum-offload", BHXB_BOOL, &yes, 0, false, 0};
    if (n->rxo.gso_tcpv4)
        k[nk++] = (struct bhxb_key){"feature-gso-tcpv4", BHXB_BOOL, &yes, 0, false, 0};
    if (n->rxo.gso_tcpv6)
        k[nk++] = (struct bhxb_key){"feature-gso-tcpv6", BHXB_BOOL, &yes, 0, false, 0};
    if (bhxb_write_keys(n->cfg.xs, n->dir, k, nk) != 0) {
        snprintf(why, len, "cannot publish the rings: %s", strerror(errno));
        bhnetfront_disconnect(n);
        return -1;
    }
    n->nq = nq;
    n->published = true;
    return 0;
}

static void rx_refill(bhnetfront *n, struct nf_queue *q);

/*
 * The key of Microsoft's RSS documentation, which NDIS drivers use by
 * default: a key both ends (and a test) can check a hash against.
 */
static const uint8_t rss_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

/*
 * Hashing on the control ring: Toeplitz over addresses and TCP ports with
 * the key above, and a table spreading flows over our queues round-robin.
 * One batch, answered in order (ids 1..CTRL_REQS).
 */
static void ctrl_start(bhnetfront *n)
{
    struct nf_ctrl *c = &n->ctrl;
    const uint32_t all = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP |
                         XEN_NETIF_CTRL_HASH_TYPE_IPV6 | XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
    const struct xen_netif_ctrl_request req[CTRL_REQS] = {
        {1, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, {XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0, 0}},
        {2, XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, {all, 0, 0}},
        {3, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, {c->data_ref[0], sizeof(rss_key), 0}},
        {4, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, {CTRL_MAP_SIZE, 0, 0}},
        {5, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, {c->data_ref[1], CTRL_MAP_SIZE, 0}},
    };

    memset(c->data, 0, 2 * PG);
    memcpy(c->data, rss_key, sizeof(rss_key));
    for (uint32_t i = 0; i < CTRL_MAP_SIZE; i++) {
        uint32_t qi = i % n->nq;

        memcpy(c->data + PG + 4 * i, &qi, 4);
    }
    for (unsigned int i = 0; i < CTRL_REQS; i++)
        bhring_front_put(&c->r, &req[i]); /* a new ring: room for all */
    c->sent = CTRL_REQS;
    c->answered = 0;
    if (bhring_front_push(&c->r) == 1)
        bhevtchn_notify(n->cfg.evtchn, (uint32_t)c->port);
}

/* The control ring's responses: each must answer the next request sent. */
static void ctrl_consume(bhnetfront *n)
{
    struct nf_ctrl *c = &n->ctrl;
    struct xen_netif_ctrl_response rsp;
    int r;

    if (c->ring == NULL)
        return;
    for (;;) {
        if ((r = bhring_front_get(&c->r, &rsp)) == 0 && (r = bhring_front_final_check(&c->r)) == 1)
            r = bhring_front_get(&c->r, &rsp);
        if (r < 0) {
            nf_break(n, "control ring: %s", bhring_error(&c->r));
            return;
        }
        if (r == 0)
            return;
        if (c->answered >= c->sent || rsp.id != c->answered + 1 ||
            rsp.status > XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW) {
            nf_break(n, "control response id %u, status %u: not the answer to request %u",
                     rsp.id, rsp.status, c->answered + 1);
            return;
        }
        c->answered++;
        if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS)
            n->st.ctrl_refused++;
        else
            n->st.ctrl_done++;
    }
}

int bhnetfront_ctrl_port(const bhnetfront *n)
{
    return n->ctrl.port;
}

int bhnetfront_connect(bhnetfront *n, char *why, size_t len)
{
    bool rx_copy = false;
    const char *bad = NULL;
    struct bhxb_key in[] = {{"feature-rx-copy", BHXB_BOOL, &rx_copy, 0, false, 0}};

    if (!n->published) {
        snprintf(why, len, "connect before publish");
        return -1;
    }
    if (bhxb_read_keys(n->cfg.xs, n->backend, in, 1, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s", bad, strerror(errno));
        return -1;
    }
    if (!rx_copy) {
        snprintf(why, len, "the backend offers no feature-rx-copy: it cannot serve this frontend");
        return -1;
    }
    n->connected = true;
    for (unsigned int i = 0; i < n->nq; i++)
        rx_refill(n, &n->q[i]);
    if (n->ctrl.ring != NULL)
        ctrl_start(n);
    return 0;
}

/* ---- TX: TAP -> ring ---- */

static uint16_t csum_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/*
 * Finishes a partial checksum here (virtio's NEEDS_CSUM: the field holds
 * the pseudo-header's sum; the rest is summed from csum_start), for a
 * frame the backend was not told it may get blank.
 */
static int csum_finish(uint8_t *f, size_t len, uint16_t start, uint16_t off)
{
    uint32_t s = 0;
    uint16_t c;
    size_t i;

    if ((size_t)start + off + 2 > len)
        return -1;
    for (i = start; i + 1 < len; i += 2)
        s += (uint32_t)f[i] << 8 | f[i + 1];
    if (i < len)
        s += (uint32_t)f[i] << 8;
    c = (uint16_t)~csum_fold(s);
    f[start + off] = (uint8_t)(c >> 8);
    f[start + off + 1] = (uint8_t)c;
    return 0;
}

static uint16_t ethertype(const uint8_t *f, size_t len)
{
    uint16_t t = (uint16_t)(f[12] << 8 | f[13]);

    if (t == 0x8100 && len >= 18)
        t = (uint16_t)(f[16] << 8 | f[17]);
    return t;
}

bool bhnetfront_tx_room(const bhnetfront *n, unsigned int qi)
{
    const struct nf_queue *q = &n->q[qi];

    return n->connected && !n->broken && qi < n->nq && q->ntxfree >= TX_MAX_DATA &&
           bhring_front_free(&q->tx) >= TX_MAX_DATA + 1;
}

/* The page that carries data slot i of the next frame: the free list's top, downwards. */
static uint8_t *tx_slot_page(const struct nf_queue *q, unsigned int i)
{
    return q->txpg[q->txfree[q->ntxfree - 1 - i]];
}

/*
 * An IPv6 checksum the backend cannot fill: finished over the frame, which
 * lies in its slots' pages; gathered for the sum and the result put back.
 */
static int tx_csum_in_pages(bhnetfront *n, struct nf_queue *q, size_t flen, uint16_t start,
                            uint16_t off)
{
    uint8_t *f = n->scratch;

    for (size_t at = 0; at < flen; at += PG)
        memcpy(f + at, tx_slot_page(q, (unsigned int)(at / PG)), flen - at < PG ? flen - at : PG);
    if (csum_finish(f, flen, start, off) != 0)
        return -1;
    for (size_t at = 0; at < flen; at += PG)
        memcpy(tx_slot_page(q, (unsigned int)(at / PG)), f + at, flen - at < PG ? flen - at : PG);
    return 0;
}

/*
 * One frame of flen bytes that the TAP read put straight into the pages of
 * the free list's top slots (tx_slot_page), its vnet header h beside it:
 * onto the ring, or dropped (its pages stay free).
 */
static void tx_frame(bhnetfront *n, struct nf_queue *q, const struct virtio_net_hdr *hp,
                     size_t flen)
{
    struct virtio_net_hdr h = *hp;
    const uint8_t *f0 = tx_slot_page(q, 0); /* the first 4096 bytes: every header looked at */
    uint16_t flags = 0;
    uint8_t gso = 0;
    unsigned int nslots;

    if (flen < NF_ETH_HLEN || flen > FRAME_MAX) {
        n->st.tx_dropped++;
        return;
    }
    if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        if (h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 && n->info.gso_tcpv4)
            gso = XEN_NETIF_GSO_TYPE_TCPV4;
        else if (h.gso_type == VIRTIO_NET_HDR_GSO_TCPV6 && n->info.gso_tcpv6)
            gso = XEN_NETIF_GSO_TYPE_TCPV6;
        if (gso == 0 || h.gso_size == 0 || !(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
            /* ECN, UDP, or a GSO the backend did not offer: the TAP's offloads follow the offer. */
            n->st.tx_dropped++;
            return;
        }
    }
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        if (gso == 0 && ethertype(f0, flen) == 0x86dd && !n->info.ipv6_csum) {
            if (tx_csum_in_pages(n, q, flen, h.csum_start, h.csum_offset) != 0) {
                n->st.tx_dropped++;
                return;
            }
            flags = NETTXF_data_validated;
        } else {
            flags = NETTXF_csum_blank | NETTXF_data_validated;
        }
    } else if (h.flags & VIRTIO_NET_HDR_F_DATA_VALID) {
        flags = NETTXF_data_validated;
    }
    nslots = (unsigned int)((flen + PG - 1) / PG);
    if (nslots > 1 && !n->info.sg) {
        n->st.tx_dropped++;
        return;
    }
    for (unsigned int i = 0; i < nslots; i++) {
        struct netif_tx_request r;
        size_t chunk = flen - (size_t)i * PG < PG ? flen - (size_t)i * PG : PG;
        uint16_t pg = q->txfree[--q->ntxfree];
        uint64_t id;

        /* trusted=0: a page granted for a slot carries the slot's bytes and nothing older. */
        if (!n->info.trusted && chunk < PG)
            memset(q->txpg[pg] + chunk, 0, PG - chunk);
        if (bhring_ids_get(q->txids, (void *)(uintptr_t)(pg + 1u), &id) != 0)
            abort(); /* as many ids as pages: a free page has a free id */
        memset(&r, 0, sizeof(r));
        r.gref = q->txref[pg];
        r.offset = 0;
        r.id = (uint16_t)id;
        r.size = (uint16_t)(i == 0 ? flen : chunk);
        r.flags = (uint16_t)((i == 0 ? flags : 0) | (i + 1 < nslots ? NETTXF_more_data : 0) |
                             (i == 0 && gso ? NETTXF_extra_info : 0));
        bhring_front_put(&q->tx, &r);
        n->st.tx_slots++;
        if (i == 0 && gso) {
            struct netif_extra_info ex;
            union {
                struct netif_tx_request r;
                struct netif_extra_info ex;
            } slot;

            memset(&ex, 0, sizeof(ex));
            ex.type = XEN_NETIF_EXTRA_TYPE_GSO;
            ex.u.gso.size = h.gso_size;
            ex.u.gso.type = gso;
            memset(&slot, 0, sizeof(slot));
            slot.ex = ex;
            bhring_front_put(&q->tx, &slot);
        }
    }
    n->st.tx_frames++;
}

/*
 * Frames from the TAP onto the TX ring.  Each is read straight into the
 * granted pages of the slots it will take (the free list's top
 * TX_MAX_DATA, room for the largest frame and one byte more, which marks
 * an oversized one): no copy in between.
 */
void bhnetfront_tap_ready(bhnetfront *n, unsigned int qi)
{
    struct nf_queue *q;
    bool any = false;

    if (qi >= n->nq)
        return;
    q = &n->q[qi];
    while (bhnetfront_tx_room(n, qi)) {
        union {
            struct virtio_net_hdr h;
            uint8_t b[16];
        } hdr;
        struct iovec iov[1 + TX_MAX_DATA];
        ssize_t r;

        memset(&hdr, 0, sizeof(hdr));
        iov[0] = (struct iovec){hdr.b, n->cfg.hdrsz};
        for (unsigned int i = 0; i < TX_MAX_DATA; i++)
            iov[1 + i] = (struct iovec){tx_slot_page(q, i), PG};
        r = readv(n->tap[qi], iov, 1 + TX_MAX_DATA);
        if (r <= 0)
            break; /* EAGAIN: drained; 0 (a socket whose peer left) or an error: not now */
        if ((size_t)r < n->cfg.hdrsz) {
            n->st.tx_dropped++;
            continue;
        }
        tx_frame(n, q, &hdr.h, (size_t)r - n->cfg.hdrsz);
        any = true;
    }
    if (any && bhring_front_push(&q->tx) == 1)
        bhevtchn_notify(n->cfg.evtchn, (uint32_t)q->txport);
}

static void tx_complete(bhnetfront *n, struct nf_queue *q)
{
    struct netif_tx_response rsp;
    char why[200];
    int r;

    do {
        while ((r = bhring_front_get(&q->tx, &rsp)) == 1) {
            void *cookie;
            int16_t status;
            enum bhnetf_verdict v = bhnetf_tx_rsp(&rsp, q->txids, &cookie, &status, why,
                                                  sizeof(why));

            if (v == BHNETF_LIE) {
                nf_break(n, "%s", why);
                return;
            }
            if (v == BHNETF_SKIP)
                continue;
            q->txfree[q->ntxfree++] = (uint16_t)((uintptr_t)cookie - 1);
            if (status != NETIF_RSP_OKAY)
                n->st.tx_errors++;
        }
        if (r < 0) {
            nf_break(n, "TX ring: %s", bhring_error(&q->tx));
            return;
        }
    } while (bhring_front_final_check(&q->tx) == 1);
}

/* ---- RX: ring -> TAP ---- */

int bhnetf_l4_locate(const uint8_t *f, size_t len, uint16_t *csum_start, uint16_t *csum_off,
                     uint16_t *hdr_len, bool *tcp)
{
    size_t l3 = NF_ETH_HLEN, l4;
    uint16_t t;
    uint8_t proto;

    if (len < NF_ETH_HLEN)
        return -1;
    t = (uint16_t)(f[12] << 8 | f[13]);
    if (t == 0x8100) {
        if (len < 18)
            return -1;
        t = (uint16_t)(f[16] << 8 | f[17]);
        l3 = 18;
    }
    if (t == 0x0800) {
        if (len < l3 + 20 || (f[l3] >> 4) != 4 || (f[l3] & 15) < 5)
            return -1;
        /* A fragment carries no L4 header of its own (offset) or not all of it (MF). */
        if ((f[l3 + 6] & 0x3f) != 0 || f[l3 + 7] != 0)
            return -1;
        proto = f[l3 + 9];
        l4 = l3 + (size_t)(f[l3] & 15) * 4;
    } else if (t == 0x86dd) {
        if (len < l3 + 40 || (f[l3] >> 4) != 6)
            return -1;
        proto = f[l3 + 6];
        l4 = l3 + 40;
    } else {
        return -1;
    }
    if (proto == 6) {
        if (len < l4 + 20 || (f[l4 + 12] >> 4) < 5 || len < l4 + (size_t)(f[l4 + 12] >> 4) * 4)
            return -1;
        *csum_off = 16;
        *hdr_len = (uint16_t)(l4 + (size_t)(f[l4 + 12] >> 4) * 4);
        *tcp = true;
    } else if (proto == 17) {
        if (len < l4 + 8)
            return -1;
        *csum_off = 6;
        *hdr_len = (uint16_t)(l4 + 8);
        *tcp = false;
    } else {
        return -1;
    }
    *csum_start = (uint16_t)l4;
    return 0;
}

/*
 * The bytes of an RX frame copied out of our pages before the frame is
 * written: every header looked at lies in them (Ethernet, a VLAN tag, IPv4
 * and TCP with all options: 138 bytes).
 */
#define RX_COPY_LEN 256u

/*
 * A validated frame to the TAP, written in one writev: its head from a
 * private copy, where its headers are read (the backend keeps our pages
 * mapped and may change them while we look: what is written is what was
 * looked at), the rest straight from our RX pages.
 */
static void rx_deliver(bhnetfront *n, unsigned int qi, const struct bhnetf_rxpkt *pkt)
{
    struct nf_queue *q = &n->q[qi];
    struct virtio_net_hdr_mrg_rxbuf h;
    struct iovec iov[2 + BHNETF_RX_MAX_SLOTS];
    unsigned int niov = 2;
    uint8_t *f = n->scratch;
    size_t at = 0, head = pkt->len < RX_COPY_LEN ? pkt->len : RX_COPY_LEN, flen = 0;
    ssize_t w;

    for (unsigned int i = 0; i < pkt->nfrags; i++) {
        const struct bhnetf_rxfrag *fr = &pkt->frag[i];
        const uint8_t *p = q->rxpg[q->pend_id[fr->slot]] + fr->off;
        size_t c = flen < head ? (head - flen < fr->len ? head - flen : fr->len) : 0;

        memcpy(f + flen, p, c);
        flen += c;
        if (c < fr->len)
            iov[niov++] = (struct iovec){(void *)(uintptr_t)(p + c), fr->len - c};
        at += fr->len;
    }
    iov[1] = (struct iovec){f, flen};
    memset(&h, 0, sizeof(h));
    if (pkt->flags & NETRXF_csum_blank || pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE) {
        uint16_t start, off, hl;
        bool tcp;

        /* GSO needs the checksum left blank: the guest's stack fills it per segment. */
        if (!(pkt->flags & NETRXF_csum_blank) ||
            bhnetf_l4_locate(f, flen, &start, &off, &hl, &tcp) != 0 ||
            (pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE && !tcp)) {
            n->st.rx_dropped++;
            return;
        }
        h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.hdr.csum_start = start;
        h.hdr.csum_offset = off;
        if (pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE) {
            h.hdr.gso_type = pkt->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 ? VIRTIO_NET_HDR_GSO_TCPV4
                                                                        : VIRTIO_NET_HDR_GSO_TCPV6;
            h.hdr.gso_size = pkt->gso_size;
            h.hdr.hdr_len = hl;
        }
    } else if (pkt->flags & NETRXF_data_validated) {
        h.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    h.num_buffers = 1;
    iov[0] = (struct iovec){&h, n->cfg.hdrsz};
    do
        w = writev(n->tap[qi], iov, (int)niov);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)(n->cfg.hdrsz + at)) {
        n->st.rx_dropped++; /* the TAP is full or refuses the frame: a NIC drops too */
        return;
    }
    n->st.rx_frames++;
}

/* Posts every RX buffer whose page is free: page i goes with id i, in slot i (mod the ring). */
static void rx_refill(bhnetfront *n, struct nf_queue *q)
{
    bool any = false;

    while (q->rx_prod - q->rx_done < RING_ENTS) {
        struct netif_rx_request r = {.id = (uint16_t)(q->rx_prod % RING_ENTS),
                                     .gref = q->rxref[q->rx_prod % RING_ENTS]};

        if (bhring_front_put(&q->rx, &r) != 0)
            break;
        q->rx_prod++;
        any = true;
    }
    if (any && bhring_front_push(&q->rx) == 1)
        bhevtchn_notify(n->cfg.evtchn, (uint32_t)q->rxport);
}

static void rx_consume(bhnetfront *n, unsigned int qi)
{
    struct nf_queue *q = &n->q[qi];
    struct bhnetf_rxpkt pkt;
    char why[200];

    for (;;) {
        int r = 0;

        while (q->npend < BHNETF_RX_MAX_RSP && (r = bhring_front_get(&q->rx, &q->pend[q->npend])) == 1)
            q->pend_id[q->npend++] = (uint16_t)(q->rx_got++ % RING_ENTS);
        if (q->npend < BHNETF_RX_MAX_RSP && r < 0) {
            nf_break(n, "RX ring: %s", bhring_error(&q->rx));
            return;
        }
        if (q->npend == 0) {
            if (bhring_front_final_check(&q->rx) == 1)
                continue;
            break;
        }
        switch (bhnetf_rx_parse(q->pend, q->pend_id, q->npend, q->npend == BHNETF_RX_MAX_RSP,
                                &n->rxo, &pkt, why, sizeof(why))) {
        case BHNETF_LIE:
            nf_break(n, "%s", why);
            return;
        case BHNETF_MORE:
            /* The rest of the chain is not produced yet: wait for it. */
            if (bhring_front_final_check(&q->rx) == 1)
                continue;
            rx_refill(n, q);
            return;
        case BHNETF_DROP:
            n->st.rx_dropped++;
            break;
        default:
            rx_deliver(n, qi, &pkt);
            break;
        }
        q->npend -= pkt.nrsp;
        memmove(q->pend, q->pend + pkt.nrsp, q->npend * sizeof(q->pend[0]));
        memmove(q->pend_id, q->pend_id + pkt.nrsp, q->npend * sizeof(q->pend_id[0]));
        q->rx_done += pkt.nrsp;
    }
    rx_refill(n, q);
}

void bhnetfront_kick(bhnetfront *n)
{
    if (!n->connected)
        return;
    for (unsigned int i = 0; i < n->nq && !n->broken; i++) {
        tx_complete(n, &n->q[i]);
        if (!n->broken)
            rx_consume(n, i);
    }
    if (!n->broken)
        ctrl_consume(n);
}

/* ---- queries ---- */

unsigned int bhnetfront_queues(const bhnetfront *n)
{
    return n->published ? n->nq : 0;
}

int bhnetfront_port(const bhnetfront *n, unsigned int q, bool rx)
{
    if (!n->published || q >= n->nq)
        return -1;
    return rx ? n->q[q].rxport : n->q[q].txport;
}

int bhnetfront_get_info(const bhnetfront *n, struct bhnetfront_info *out)
{
    if (!n->published) {
        errno = EAGAIN;
        return -1;
    }
    *out = n->info;
    return 0;
}

const struct bhnetfront_stats *bhnetfront_get_stats(const bhnetfront *n)
{
    return &n->st;
}

bool bhnetfront_broken(const bhnetfront *n)
{
    return n->broken;
}

const char *bhnetfront_error(const bhnetfront *n)
{
    return n->why;
}
