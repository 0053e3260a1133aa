/*
 * engine.c - netback's data path for one queue: TX chains from the ring to
 * the TAP, frames from the TAP into the RX ring's buffers.  Every request is
 * copied once (libbhring) and validated (tx.c, rx.c) before it is acted on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhnetback.h"

#define BUDGET 64u /* chains or frames per ring per bhnet_run: the other ring gets its turn */

struct bhnet {
    struct bhnet_opts o;
    struct bhring tx, rx;
    struct bhnet_txq txq;
    struct bhnet_stats st;
    bool broken;
    char why[200];
    /* RX: one frame held while buffers are short, and the requests taken for it. */
    bool have_frame;
    struct bhnet_rxmeta m;
    const uint8_t *frame;
    unsigned int nreq;
    struct netif_rx_request req[BHNET_RX_MAX_REQS];
    unsigned int nmcast;
    uint8_t mcast[BHNET_MCAST_MAX][6];
    uint8_t txbuf[12 + BHNET_FRAME_MAX];
    uint8_t rxbuf[12 + BHNET_FRAME_MAX];
};

struct bhnet *bhnet_open(const struct bhnet_opts *o, char *why, size_t whylen)
{
    struct bhnet *n;

    if (o->page == NULL || o->fd < 0 || (o->hdrsz != 10 && o->hdrsz != 12)) {
        snprintf(why, whylen, "netback engine: a page function, a TAP fd and a 10- or 12-byte vnet header are needed");
        errno = EINVAL;
        return NULL;
    }
    if ((n = calloc(1, sizeof(*n))) == NULL) {
        snprintf(why, whylen, "netback engine: out of memory");
        return NULL;
    }
    n->o = *o;
    if (bhring_attach(&n->tx, &bhring_netif_tx, BHRING_BACK, o->tx_ring, o->tx_order, 0, false) != 0 ||
        bhring_attach(&n->rx, &bhring_netif_rx, BHRING_BACK, o->rx_ring, o->rx_order, 0, false) != 0) {
        snprintf(why, whylen, "netback engine: rings not attachable (unaligned or order > 4)");
        free(n);
        errno = EINVAL;
        return NULL;
    }
    return n;
}

void bhnet_close(struct bhnet *n)
{
    free(n);
}

const struct bhnet_stats *bhnet_get_stats(const struct bhnet *n)
{
    return &n->st;
}

bool bhnet_mcast_has(const struct bhnet *n, const uint8_t addr[6])
{
    for (unsigned int i = 0; i < n->nmcast; i++)
        if (memcmp(n->mcast[i], addr, 6) == 0)
            return true;
    return false;
}

static int16_t mcast_apply(struct bhnet *n, const struct bhnet_txpkt *pkt)
{
    unsigned int i;

    for (i = 0; i < n->nmcast && memcmp(n->mcast[i], pkt->mcast, 6) != 0; i++)
        ;
    if (pkt->kind == BHNET_TX_MCAST_DEL) {
        if (i < n->nmcast)
            memcpy(n->mcast[i], n->mcast[--n->nmcast], 6);
        return NETIF_RSP_OKAY;
    }
    if (i < n->nmcast)
        return NETIF_RSP_OKAY;
    if (n->nmcast == BHNET_MCAST_MAX)
        return NETIF_RSP_ERROR;
    memcpy(n->mcast[n->nmcast++], pkt->mcast, 6);
    return NETIF_RSP_OKAY;
}

static int fail(struct bhnet *n, struct bhring *r, const char *msg, char *why, size_t whylen)
{
    if (!bhring_broken(r))
        bhring_break(r, "%s", msg);
    n->broken = true;
    snprintf(n->why, sizeof(n->why), "%s", bhring_error(r));
    snprintf(why, whylen, "%s", n->why);
    return -1;
}

/* One TX chain: 1 done, 0 nothing more for now, -1 a lie. */
static int tx_one(struct bhnet *n, char *why, size_t whylen)
{
    struct netif_tx_response rsp[BHNET_TX_MAX_REQS];
    struct bhnet_txpkt pkt;
    char msg[200] = "";
    int16_t status = NETIF_RSP_OKAY;
    unsigned int nr;

    switch (bhnet_tx_take(&n->tx, &n->o.tx, &n->txq, &pkt, msg, sizeof(msg))) {
    case BHNET_MORE:
        return 0;
    case BHNET_LIE:
        return fail(n, &n->tx, msg, why, whylen);
    case BHNET_DROP:
        status = NETIF_RSP_ERROR;
        break;
    case BHNET_GO:
        if (pkt.kind != BHNET_TX_PACKET)
            status = mcast_apply(n, &pkt);
        /* A frame the TAP cannot take now (EAGAIN) or at all is dropped
         * and answered as such: the frontend's slots are never held. */
        else if (bhnet_tx_to_fd(n->o.fd, n->o.hdrsz, &pkt, n->o.page, n->o.ctx, n->txbuf, msg,
                                sizeof(msg)) != 0)
            status = NETIF_RSP_ERROR;
        break;
    }
    if (pkt.kind == BHNET_TX_PACKET) {
        if (status == NETIF_RSP_OKAY)
            n->st.tx_packets++;
        else
            n->st.tx_dropped++;
    }
    nr = bhnet_tx_responses(&pkt, status, rsp);
    for (unsigned int i = 0; i < nr; i++)
        if (bhring_back_put(&n->tx, &rsp[i]) != 0)
            return fail(n, &n->tx, "TX response without a request (engine bug)", why, whylen);
    return 1;
}

static void rx_answer(struct bhnet *n, const struct netif_rx_response *rsp, unsigned int used)
{
    for (unsigned int i = 0; i < used; i++)
        bhring_back_put(&n->rx, &rsp[i]); /* each answers a request we hold: cannot fail */
    n->nreq -= used;
    memmove(n->req, n->req + used, n->nreq * sizeof(n->req[0]));
}

/* One RX frame: 1 done (delivered or dropped), 0 waiting, -1 a lie. */
static int rx_one(struct bhnet *n, char *why, size_t whylen)
{
    struct netif_rx_response rsp[BHNET_RX_MAX_REQS];
    unsigned int need, used;
    char msg[200] = "";
    int r;

    if (!n->have_frame) {
        r = bhnet_rx_from_fd(n->o.fd, n->o.hdrsz, n->rxbuf, &n->m, &n->frame, msg, sizeof(msg));
        if (r == 0 || r < 0)
            return 0; /* nothing waiting, or a read error the next wake-up retries */
        if (r == 2) {
            n->st.rx_dropped++;
            return 1;
        }
        n->have_frame = true;
    }
    need = bhnet_rx_slots(&n->o.rx, &n->m);
    while (need > 0 && n->nreq < need) {
        if ((r = bhring_back_get(&n->rx, &n->req[n->nreq])) < 0)
            return fail(n, &n->rx, bhring_error(&n->rx), why, whylen);
        if (r == 0)
            return 0; /* no buffers: hold this frame, read no more */
        if (bhnet_rx_check_req(&n->req[n->nreq], &n->o.rx, msg, sizeof(msg)) != BHNET_GO)
            return fail(n, &n->rx, msg, why, whylen);
        n->nreq++;
    }
    n->have_frame = false;
    if (bhnet_rx_deliver(&n->o.rx, &n->m, n->frame, n->req, n->nreq, n->o.page, n->o.ctx, rsp,
                         &used) != 0) {
        n->st.rx_dropped++;
        rx_answer(n, rsp, used); /* EFAULT answers one buffer with an error; EINVAL none */
        return 1;
    }
    n->st.rx_packets++;
    rx_answer(n, rsp, used);
    return 1;
}

/*
 * Runs one direction up to its budget.  Idle, it arms the ring's event
 * (final check); requests that arrived meanwhile get one more try, but a
 * try that moves nothing (RX: buffers posted while no frame waits) ends
 * the round.  Returns the notify bit or 0, BHNET_AGAIN if the budget ran
 * out, -1 on a lie.
 */
static int drain(struct bhnet *n, struct bhring *ring, int (*one)(struct bhnet *, char *, size_t),
                 int bit, char *why, size_t whylen)
{
    unsigned int k = 0;
    int r, f, again = BHNET_AGAIN;

    while (k < BUDGET) {
        if ((r = one(n, why, whylen)) < 0)
            return -1;
        if (r == 0) {
            if ((f = bhring_back_final_check(ring)) < 0)
                return fail(n, ring, bhring_error(ring), why, whylen);
            if (f == 0 || (r = one(n, why, whylen)) == 0) {
                again = 0;
                break;
            }
            if (r < 0)
                return -1;
        }
        k++;
    }
    return again | (bhring_back_push(ring) == 1 ? bit : 0);
}

int bhnet_run(struct bhnet *n, char *why, size_t whylen)
{
    int tx, rx;

    if (n->broken) {
        snprintf(why, whylen, "%s", n->why);
        return -1;
    }
    if ((tx = drain(n, &n->tx, tx_one, BHNET_NOTIFY_TX, why, whylen)) < 0)
        return -1;
    if ((rx = drain(n, &n->rx, rx_one, BHNET_NOTIFY_RX, why, whylen)) < 0)
        return -1;
    return tx | rx;
}
