/*
 * net.c - the trivial network backend (kind vif): the real handshake of
 * io/netif.h and nothing more yet.  It publishes rx-copy and split event
 * channels, reads the keys a Linux netfront writes for one queue
 * (tx-ring-ref, rx-ring-ref, event-channel or event-channel-tx and -rx,
 * request-rx-copy) strictly, maps both rings, binds the event channel(s),
 * and moves no packet: the network issue fills kick in.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bhring.h"
#include "bhbroker.h"
#include "drv.h"

#define EVTCHN_MAX ((1u << 17) - 1)

struct net_kept {
    uint32_t tx_ref, rx_ref;
    uint32_t remote_tx, remote_rx; /* equal unless the frontend split its event channels */
    uint32_t connected;
    struct bhring_state tx, rx;
    uint64_t kicks;
};

struct net_priv {
    void *tx_page, *rx_page;
    struct bhring tx, rx;
    uint32_t port_tx, port_rx;
};

/*
 * The vif's TAP from dom0's broker: vif<frontend>.<devid> in this domain's
 * network namespace, on the vif's bridge, one fd per queue, offloads on.
 */
static int net_acquire(const struct bhxb_dev *id, struct bhacquired *a)
{
    unsigned int nq = 0;

    if (bhbroker_tap(id->domid, id->devid,
                     BHBROKER_TAP_CSUM | BHBROKER_TAP_TSO4 | BHBROKER_TAP_TSO6, a->fds, &nq) != 0) {
        if (errno == ENOENT)
            return 0; /* not registered: no TAP (a vif plumbed by hand) */
        a->err = errno;
        snprintf(a->why, sizeof(a->why), "vif %u/%u's TAP: %s", id->domid, id->devid,
                 strerror(errno));
        return -1;
    }
    a->nfds = nq;
    return 0;
}

static int net_probe(struct bhdev *d, char *why, size_t len)
{
    char mac[32] = "";
    const char *bad = NULL;
    struct bhxb_key in[] = {{"mac", BHXB_STR, mac, sizeof(mac), false, 0}};
    bool yes = true;
    char hotplug[] = "connected";
    struct bhxb_key out[] = {
        {"feature-rx-copy", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-split-event-channels", BHXB_BOOL, &yes, 0, false, 0},
        {"hotplug-status", BHXB_STR, hotplug, sizeof(hotplug), false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.backend, in, 1, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s (the toolstack wrote it)", bad, strerror(errno));
        return -1;
    }
    if (bhxb_write_keys(d->xs, d->paths.backend, out, 3) != 0) {
        snprintf(why, len, "cannot publish the features: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "probed: mac '%s'", mac);
    return 0;
}

static int net_attach(struct bhdev *d, bool restore, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    int port;

    if ((p->tx_page = bhdev_map(d, &k->tx_ref, 1, why, len)) == NULL ||
        (p->rx_page = bhdev_map(d, &k->rx_ref, 1, why, len)) == NULL)
        goto fail;
    if (bhring_attach(&p->tx, &bhring_netif_tx, BHRING_BACK, p->tx_page, 0, 0, false) != 0 ||
        bhring_attach(&p->rx, &bhring_netif_rx, BHRING_BACK, p->rx_page, 0, 0, false) != 0 ||
        (restore && (bhring_restore(&p->tx, &k->tx) != 0 || bhring_restore(&p->rx, &k->rx) != 0))) {
        snprintf(why, len, "cannot attach the rings: %s", strerror(errno));
        goto fail;
    }
    if ((port = bhdev_bind(d, k->remote_tx, why, len)) < 0)
        goto fail;
    p->port_tx = p->port_rx = (uint32_t)port;
    if (k->remote_rx != k->remote_tx) {
        if ((port = bhdev_bind(d, k->remote_rx, why, len)) < 0)
            goto fail;
        p->port_rx = (uint32_t)port;
    }
    k->connected = 1;
    return 0;
fail:
    bhdev_unbind(d, p->port_tx);
    bhdev_unmap(d, p->tx_page, 1);
    bhdev_unmap(d, p->rx_page, 1);
    memset(p, 0, sizeof(*p));
    return -1;
}

static int net_connect(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    unsigned int tx = 0, rx = 0, evt = 0, evt_tx = 0, evt_rx = 0, copy = 0, queues = 1;
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"tx-ring-ref", BHXB_UINT, &tx, 0, true, 0},
        {"rx-ring-ref", BHXB_UINT, &rx, 0, true, 0},
        {"event-channel", BHXB_UINT, &evt, 0, false, EVTCHN_MAX},
        {"event-channel-tx", BHXB_UINT, &evt_tx, 0, false, EVTCHN_MAX},
        {"event-channel-rx", BHXB_UINT, &evt_rx, 0, false, EVTCHN_MAX},
        {"request-rx-copy", BHXB_UINT, &copy, 0, false, 1},
        {"multi-queue-num-queues", BHXB_UINT, &queues, 0, false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.frontend, in, sizeof(in) / sizeof(in[0]), &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (queues != 1) {
        snprintf(why, len, "frontend asked for %u queues: this backend offers one", queues);
        return -1;
    }
    if (copy != 1) {
        snprintf(why, len, "frontend did not write request-rx-copy=1: only rx-copy is served");
        return -1;
    }
    /* Split channels win, as in Linux's netback; then both must be valid ports. */
    if (evt_tx != 0 || evt_rx != 0)
        evt = 0;
    else
        evt_tx = evt_rx = evt;
    if (evt_tx == 0 || evt_rx == 0) {
        snprintf(why, len, "frontend key event-channel%s: missing or port 0",
                 evt == 0 && (evt_tx | evt_rx) ? (evt_tx ? "-rx" : "-tx") : "");
        return -1;
    }
    memset(k, 0, sizeof(*k));
    k->tx_ref = tx;
    k->rx_ref = rx;
    k->remote_tx = evt_tx;
    k->remote_rx = evt_rx;
    if (net_attach(d, false, why, len) != 0)
        return -1;
    bhdev_log(d, "connected: tx-ring-ref %u, rx-ring-ref %u, event channel%s %u/%u", tx, rx,
              evt_tx == evt_rx ? "" : "s", evt_tx, evt_rx);
    return 0;
}

static int net_resume(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;

    if (!k->connected) {
        snprintf(why, len, "the keeper holds no rings for a connected device");
        return -1;
    }
    if (net_attach(d, true, why, len) != 0)
        return -1;
    bhdev_log(d, "resumed: tx-ring-ref %u, rx-ring-ref %u, event channel %u, %llu kicks before",
              k->tx_ref, k->rx_ref, k->remote_tx, (unsigned long long)k->kicks);
    return 0;
}

static void net_kick(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;

    k->kicks++;
    if (p->tx_page != NULL) {
        bhring_save(&p->tx, &k->tx);
        bhring_save(&p->rx, &k->rx);
    }
}

static void net_disconnect(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;

    if (p->port_rx != p->port_tx)
        bhdev_unbind(d, p->port_rx);
    bhdev_unbind(d, p->port_tx);
    bhdev_unmap(d, p->tx_page, 1);
    bhdev_unmap(d, p->rx_page, 1);
    memset(p, 0, sizeof(*p));
    k->connected = 0;
}

const struct bhdrv netback_trivial = {
    .name = "netback (handshake only)",
    .kinds = {"vif", NULL},
    .frontend_kind = "vif",
    .kept_size = sizeof(struct net_kept),
    .priv_size = sizeof(struct net_priv),
    .acquire = net_acquire,
    .probe = net_probe,
    .connect = net_connect,
    .resume = net_resume,
    .kick = net_kick,
    .disconnect = net_disconnect,
};
