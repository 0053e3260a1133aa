/*
 * fe_trivial.c - the frontend table of the guest runtime, and its trivial
 * netfront: the real handshake of a Linux netfront (io/netif.h, one queue,
 * one event channel), with rings granted and initialised and no packet
 * sent yet: the network issue fills kick in.  The vbd frontend is
 * fe_vbd.c (nbdkit with the blkfront plugin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xen/io/protocols.h>

#include "bhring.h"
#include "bhbroker.h"
#include "front.h"

/* ---- vif ---- */

struct net_front {
    void *tx_page, *rx_page;
    struct bhring tx, rx;
    uint32_t tx_ref, rx_ref;
    int port;
    /* The guest's eth<devid>, from dom0's broker: kept across reconnects, so that
     * the interface (and what the guest's stack holds on it) outlives a backend. */
    int tap[BHBROKER_MAX_QUEUES];
    unsigned int ntap;
};

/* eth<devid> in this guest's network namespace, once per device. */
static int netfront_tap(struct bhfront *f, struct net_front *n, char *why, size_t len)
{
    if (n->ntap > 0)
        return 0;
    if (bhbroker_tap(f->domid, f->devid, BHBROKER_TAP_CSUM | BHBROKER_TAP_TSO4 | BHBROKER_TAP_TSO6,
                     n->tap, &n->ntap) != 0) {
        if (errno == ENOENT) {
            bhfront_log(f, "no eth%u: the toolstack registered no TAP for this vif", f->devid);
            return 0;
        }
        snprintf(why, len, "cannot get eth%u from dom0's broker: %s", f->devid, strerror(errno));
        return -1;
    }
    bhfront_log(f, "eth%u: %u queue%s", f->devid, n->ntap, n->ntap == 1 ? "" : "s");
    return 0;
}

static void netfront_release(struct bhfront *f)
{
    struct net_front *n = f->priv;

    for (unsigned int i = 0; i < n->ntap; i++)
        close(n->tap[i]);
    n->ntap = 0;
}

static int netfront_publish(struct bhfront *f, char *why, size_t len)
{
    struct net_front *n = f->priv;
    unsigned int tx, rx, port;
    bool yes = true;
    struct bhxb_key out[] = {
        {"tx-ring-ref", BHXB_UINT, &tx, 0, false, 0},
        {"rx-ring-ref", BHXB_UINT, &rx, 0, false, 0},
        {"event-channel", BHXB_UINT, &port, 0, false, 0},
        {"request-rx-copy", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-rx-notify", BHXB_BOOL, &yes, 0, false, 0},
    };

    if (netfront_tap(f, n, why, len) != 0)
        return -1;
    if ((n->tx_page = bhfront_share(f, 1, &n->tx_ref, why, len)) == NULL ||
        (n->rx_page = bhfront_share(f, 1, &n->rx_ref, why, len)) == NULL)
        return -1;
    if (bhring_attach(&n->tx, &bhring_netif_tx, BHRING_FRONT, n->tx_page, 0, 0, true) != 0 ||
        bhring_attach(&n->rx, &bhring_netif_rx, BHRING_FRONT, n->rx_page, 0, 0, true) != 0) {
        snprintf(why, len, "cannot initialise the rings: %s", strerror(errno));
        return -1;
    }
    if ((n->port = bhfront_evtchn_alloc(f, why, len)) < 0)
        return -1;
    tx = n->tx_ref;
    rx = n->rx_ref;
    port = (unsigned int)n->port;
    if (bhxb_write_keys(f->xs, f->dir, out, 5) != 0) {
        snprintf(why, len, "cannot publish the rings: %s", strerror(errno));
        return -1;
    }
    bhfront_log(f, "published tx-ring-ref %u, rx-ring-ref %u, event-channel %u", tx, rx, port);
    return 0;
}

static int netfront_connect(struct bhfront *f, char *why, size_t len)
{
    bool rx_copy = false;
    const char *bad = NULL;
    struct bhxb_key in[] = {{"feature-rx-copy", BHXB_BOOL, &rx_copy, 0, false, 0}};

    if (bhxb_read_keys(f->xs, f->backend, in, 1, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s", bad, strerror(errno));
        return -1;
    }
    if (!rx_copy) {
        snprintf(why, len, "the backend offers no feature-rx-copy: it cannot serve this frontend");
        return -1;
    }
    bhfront_log(f, "connected");
    return 0;
}

static void netfront_disconnect(struct bhfront *f)
{
    struct net_front *n = f->priv;

    if (n->port > 0)
        bhfront_evtchn_close(f, (uint32_t)n->port);
    bhfront_unshare(f, n->tx_page, 1);
    bhfront_unshare(f, n->rx_page, 1);
    n->tx_page = n->rx_page = NULL;
    n->port = 0;
}

static void netfront_kick(struct bhfront *f)
{
    (void)f;
}

static const struct bhfrontdrv netfront_trivial = {
    .name = "netfront (handshake only)",
    .kind = "vif",
    .priv_size = sizeof(struct net_front),
    .publish = netfront_publish,
    .connect = netfront_connect,
    .kick = netfront_kick,
    .disconnect = netfront_disconnect,
    .release = netfront_release,
};

const struct bhfrontdrv *bhfrontdrv_find(const char *kind)
{
    static const struct bhfrontdrv *const table[] = {&blkfront_nbdkit, &netfront_trivial};

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i]->kind, kind) == 0)
            return table[i];
    return NULL;
}
