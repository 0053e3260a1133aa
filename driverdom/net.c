/*
 * net.c - the network backend (kind vif): the handshake of io/netif.h and
 * the data path of backend/net (libbhnetback: TX chains validated and
 * written to the vif's TAP, frames from the TAP copied into the
 * frontend's RX buffers).  The TAP comes from dom0's broker through the
 * keeper (on Xen from this domain's opener), one fd per queue, in this
 * domain's network namespace on the vif's bridge.
 *
 * What we publish, as Linux's xen-netback does (its xenbus.c names the
 * keys; io/netif.h says what they mean): rx-copy (the only RX mode),
 * scatter-gather, TCP segmentation offload for IPv4 and IPv6, IPv6
 * checksum offload (IPv4's is implied), split event channels, multicast
 * control (static and dynamic), multi-queue-max-queues - NET_MAX_QUEUES
 * capped by the TAP's queues - and the control ring (feature-ctrl-ring).
 * Until the frontend chooses Toeplitz on its control ring, a frame goes to
 * the queue whose TAP fd the kernel gave it to; after, the hash of its
 * flow and the frontend's mapping table pick its RX queue (the engine of
 * the TAP queue that read it hands it over: all queues run in one thread)
 * and the hash reaches the frontend in a HASH extra.
 *
 * The frontend's keys are read strictly at connect; a bad one loses the
 * vif (error node, Closing).  Each queue is one engine (struct bhnet) with
 * its own rings, ports and TAP fd, all behind one epoll fd in the worker's
 * loop, with a timerfd for what no event announces (TX credit coming back,
 * an RX stall to declare).  The engines' state (ring indices, requests
 * taken and not yet answered) lives in the keeper, so a restarted worker
 * neither sends a TX slot twice nor loses an RX buffer.
 *
 * From the backend directory (libxl writes them): mac= (TX frames from
 * another source MAC are dropped), ip= (IPv4 and ARP frames claiming
 * another address are dropped), rate= ("BYTES,USECS": TX credit as Linux's
 * netback), mtu=.  Anti-spoofing drops are answered NETIF_RSP_OKAY, as the
 * vif scripts' iptables rules drop after Linux's netback said OKAY, and
 * counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <linux/if_tun.h>

#include "bhnetback.h"
#include "bhring.h"
#include "bhbroker.h"
#include "drv.h"
#include "netmap.h"

#define EVTCHN_MAX     ((1u << 17) - 1)
#define NET_MAX_QUEUES 4 /* Linux netfront's default (xen_netfront.max_queues is the CPUs) */
#define NET_MAX_IPS    BHNET_SPOOF_MAX_IPS /* addresses in ip= */
#define NET_MTU_MIN    68
#define NET_MTU_MAX    65535

/* The RX stall timeout (Linux's rx_stall_timeout_msecs: 60 s); --rx-stall-ms. */
unsigned int netback_rx_stall_ms = 60000;
/* Polling before sleeping (net_serve), in microseconds; 0: never; --net-poll-us. */
unsigned int netback_poll_us = 0;

/* One queue's part of the kept state. */
struct net_queue_kept {
    uint32_t tx_ref, rx_ref;
    uint32_t remote_tx, remote_rx; /* equal unless the frontend split its event channels */
    struct bhnet_kept eng;
};

struct net_kept {
    uint32_t connected;
    uint32_t nqueues;
    /* what the frontend asked (connect) */
    uint32_t gso4, gso6, mcast;
    /* the toolstack's (probe) */
    struct bhnet_antispoof spoof; /* mac= and ip= */
    uint64_t rate_bytes;
    uint32_t rate_usec;
    uint32_t mtu;
    uint32_t pools; /* the frontend's bulkhead-persistent-pools: its pages may stay mapped */
    uint64_t kicks;
    /* The control ring, when the frontend gave one (ctrl-ring-ref, event-channel-ctrl). */
    uint32_t ctrl, ctrl_ref, remote_ctrl;
    struct bhring_state ctrl_ring;
    struct bhnet_hash hash; /* what its requests set */
    struct net_queue_kept q[NET_MAX_QUEUES];
};

struct net_queue {
    struct bhdev *d;
    void *tx_page, *rx_page;
    struct bhnet *eng;
    uint32_t port_tx, port_rx;
    bool polled; /* the TAP fd is in the epoll set with EPOLLIN */
    /* The one data page mapped now (the engine uses each page at once). */
    void *map;
    uint32_t map_ref;
    bool map_rw;
    /* With persistent pools: the frontend's pages kept mapped (netmap.c). */
    struct netmap *mc;
};

struct net_priv {
    struct net_queue q[NET_MAX_QUEUES];
    void *ctrl_page;
    struct bhring ctrl;
    uint32_t port_ctrl;
    int epfd1;   /* the queues' TAP fds and the timer, plus one; 0: none */
    int timerfd1;
    bool timer_set; /* the timer may be armed: 0 disarms it (else it stays off, no call) */
    struct bhnet_stats logged[NET_MAX_QUEUES]; /* the counters the log last said */
};

/*
 * The vif's TAP: vif<frontend>.<devid> in this domain's network namespace,
 * on the vif's bridge, one fd per queue, offloads on.  In the simulation
 * dom0's broker makes it; a Xen driver domain has no broker, and its
 * opener makes it as vif-bridge would plug the kernel's vif (opener.c,
 * vifplug.c).  Either way the fds are all the data path sees.
 */
static int net_acquire(const struct bhxb_dev *id, struct bhacquired *a)
{
    unsigned int nq = 0;
    int n;

    if (id->backend_domid != 0 && drv_own_targets(id->backend_domid)) {
        if ((n = drvdom_opener_tap(id->domid, id->devid, NET_MAX_QUEUES, a->fds, a->why,
                                   sizeof(a->why))) < 0) {
            if (errno == ENOENT)
                return 0; /* the device is gone already: the worker sees it go */
            a->err = errno;
            return -1;
        }
        a->nfds = (unsigned int)n;
        return 0;
    }
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

/* Queues we offer: NET_MAX_QUEUES, no more than the TAP has; 1 without a TAP. */
static unsigned int net_max_queues(const struct bhdev *d)
{
    if (d->nfds == 0)
        return 1;
    return d->nfds < NET_MAX_QUEUES ? d->nfds : NET_MAX_QUEUES;
}

/* "00:16:3e:01:02:03", strictly. */
static int parse_mac(const char *s, uint8_t mac[6])
{
    for (int i = 0; i < 6; i++) {
        unsigned int v = 0;

        for (int j = 0; j < 2; j++) {
            char c = s[i * 3 + j];
            int x = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (x < 0)
                return -1;
            v = v * 16 + (unsigned int)x;
        }
        if (s[i * 3 + 2] != (i == 5 ? '\0' : ':'))
            return -1;
        mac[i] = (uint8_t)v;
    }
    return 0;
}

/* ip=: IPv4 addresses separated by spaces (libxl writes the config's "ip" as given). */
static int parse_ips(const char *s, uint32_t *ip, unsigned int *n)
{
    char buf[256], *save = NULL;

    *n = 0;
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        struct in_addr a;

        if (*n == NET_MAX_IPS || inet_pton(AF_INET, t, &a) != 1)
            return -1;
        ip[(*n)++] = a.s_addr;
    }
    return 0;
}

/* rate=: "BYTES,USECS" as libxl writes it (both decimal, USECS nonzero). */
static int parse_rate(const char *s, uint64_t *bytes, uint32_t *usec)
{
    char *end;
    unsigned long long b, u;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    b = strtoull(s, &end, 10);
    if (errno != 0 || *end != ',' || end[1] < '0' || end[1] > '9')
        return -1;
    u = strtoull(end + 1, &end, 10);
    if (errno != 0 || *end != '\0' || u == 0 || u > UINT32_MAX || b == 0)
        return -1;
    *bytes = b;
    *usec = (uint32_t)u;
    return 0;
}

static int net_probe(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    char mac[32] = "", ip[256] = "", rate[64] = "";
    unsigned int mtu = 1500;
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"mac", BHXB_STR, mac, sizeof(mac), false, 0},
        {"ip", BHXB_STR, ip, sizeof(ip), false, 0},
        {"rate", BHXB_STR, rate, sizeof(rate), false, 0},
        {"mtu", BHXB_UINT, &mtu, 0, false, NET_MTU_MAX},
    };
    bool yes = true, no = false;
    unsigned int queues = net_max_queues(d);
    char hotplug[] = "connected";
    struct bhxb_key out[] = {
        {"feature-rx-copy", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-rx-flip", BHXB_BOOL, &no, 0, false, 0},
        {"feature-sg", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-gso-tcpv4", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-gso-tcpv6", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-ipv6-csum-offload", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-split-event-channels", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-multicast-control", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-dynamic-multicast-control", BHXB_BOOL, &yes, 0, false, 0},
        {"feature-ctrl-ring", BHXB_BOOL, &yes, 0, false, 0},
        {"multi-queue-max-queues", BHXB_UINT, &queues, 0, false, 0},
        {"hotplug-status", BHXB_STR, hotplug, sizeof(hotplug), false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.backend, in, sizeof(in) / sizeof(in[0]), &bad) != 0) {
        snprintf(why, len, "backend key %s: %s (the toolstack wrote it)", bad, strerror(errno));
        return -1;
    }
    k->spoof.has_mac = mac[0] != '\0';
    if (k->spoof.has_mac && parse_mac(mac, k->spoof.mac) != 0) {
        snprintf(why, len, "backend key mac is '%s': the toolstack must write xx:xx:xx:xx:xx:xx",
                 mac);
        return -1;
    }
    if (parse_ips(ip, k->spoof.ip, &k->spoof.nip) != 0) {
        snprintf(why, len, "backend key ip is '%s': write up to %u IPv4 addresses, spaces between",
                 ip, NET_MAX_IPS);
        return -1;
    }
    k->rate_bytes = 0;
    k->rate_usec = 0;
    if (rate[0] != '\0' && parse_rate(rate, &k->rate_bytes, &k->rate_usec) != 0) {
        snprintf(why, len, "backend key rate is '%s': write BYTES,USECS (both nonzero decimals)",
                 rate);
        return -1;
    }
    if (mtu < NET_MTU_MIN) {
        snprintf(why, len, "backend key mtu is %u: write %u..%u", mtu, NET_MTU_MIN, NET_MTU_MAX);
        return -1;
    }
    k->mtu = mtu;
    if (bhxb_write_keys(d->xs, d->paths.backend, out, sizeof(out) / sizeof(out[0])) != 0) {
        snprintf(why, len, "cannot publish the features: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "probed: mac '%s', ip '%s', rate '%s', mtu %u, %u queue%s offered%s", mac, ip,
              rate, mtu, queues, queues > 1 ? "s" : "",
              d->nfds == 0 ? " (no TAP from the broker: no data path)" : "");
    return 0;
}

/*
 * The engine's view of the frontend's data pages: one mapping at a time
 * (each is copied from or into at once, vnet.c), dropped at the end of
 * every run so that the frontend can end its grants.
 */
static void unmap_data(struct net_queue *q)
{
    if (q->map != NULL)
        bhgnttab_unmap(q->d->gnttab, q->map, 1);
    q->map = NULL;
}

/*
 * The engine's unpage, before it pushes responses: the one data page is
 * unmapped before the frontend can see that its request was answered
 * (Linux's netfront disables a vif whose backend still maps a page it
 * ends).  Kept pages of persistent pools stay: their frontend agreed.
 */
static void net_unpage(void *ctx)
{
    unmap_data(ctx);
}

/*
 * A page of a frontend with persistent pools: mapped once and kept (the
 * simulation's map is a call to the hypervisor, hundreds of microseconds:
 * once per packet it was the whole cost of the data path).
 */
static void *kept_page(struct net_queue *q, uint32_t gref, bool writable)
{
    if (q->mc == NULL &&
        (q->mc = netmap_new(q->d->gnttab, q->d->id.domid, NETMAP_MAX)) == NULL)
        return NULL;
    return netmap_get(q->mc, gref, writable);
}

/* The engine's epoch with persistent pools: the kept pages stay until the map is cleared. */
static uint64_t net_epoch(void *ctx)
{
    struct net_queue *q = ctx;

    return q->mc != NULL ? netmap_epoch(q->mc) : 0;
}

static void *net_page(void *ctx, uint32_t gref, bool writable)
{
    struct net_queue *q = ctx;

    if (((struct net_kept *)q->d->kept)->pools)
        return kept_page(q, gref, writable);
    if (q->map != NULL && q->map_ref == gref && (q->map_rw || !writable))
        return q->map;
    unmap_data(q);
    q->map = bhgnttab_map_grant_ref(q->d->gnttab, q->d->id.domid, gref,
                                    writable ? PROT_READ | PROT_WRITE : PROT_READ);
    q->map_ref = gref;
    q->map_rw = writable;
    return q->map;
}

/*
 * The engine's RX steering: with Toeplitz on, a frame goes to the queue
 * its hash maps to, handed to that queue's engine at once (the frame lives
 * in this engine's buffer only until it returns).  A target that lies
 * there is broken and fails the vif when its own run says so.
 */
static int net_steer(void *ctx, struct bhnet_rxmeta *m, const uint8_t *frame, size_t have)
{
    struct net_queue *q = ctx;
    struct bhdev *d = q->d;
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    unsigned int self = (unsigned int)(q - p->q), to;
    char why[200];
    int notify;

    if (k->hash.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE)
        return 1;
    to = bhnet_hash_steer(&k->hash, k->nqueues, frame, have, m, self);
    if (to == self || p->q[to].eng == NULL)
        return 1;
    if (have < m->len)
        return 2; /* the engine gathers the frame and asks again */
    if (bhnet_rx_push(p->q[to].eng, m, frame, &notify, why, sizeof(why)) >= 0 && notify)
        bhdev_notify(d, p->q[to].port_rx);
    return 0;
}

/* The engine's TX filter: anti-spoofing from mac= and ip= (libbhnetback's spoof.c). */
static bool net_filter(void *ctx, const uint8_t *f, size_t len)
{
    const struct net_kept *k = ((struct net_queue *)ctx)->d->kept;

    return bhnet_antispoof_ok(&k->spoof, f, len);
}

static void net_detach(struct bhdev *d)
{
    struct net_priv *p = d->priv;

    for (unsigned int i = 0; i < NET_MAX_QUEUES; i++) {
        struct net_queue *q = &p->q[i];

        bhnet_close(q->eng);
        unmap_data(q);
        netmap_free(q->mc);
        q->mc = NULL;
        if (q->port_rx != q->port_tx)
            bhdev_unbind(d, q->port_rx);
        bhdev_unbind(d, q->port_tx);
        bhdev_unmap(d, q->tx_page, 1);
        bhdev_unmap(d, q->rx_page, 1);
        memset(q, 0, sizeof(*q));
    }
    if (p->port_ctrl != 0)
        bhdev_unbind(d, p->port_ctrl);
    if (p->ctrl_page != NULL)
        bhdev_unmap(d, p->ctrl_page, 1);
    p->ctrl_page = NULL;
    p->port_ctrl = 0;
    if (p->epfd1 > 0)
        close(p->epfd1 - 1);
    if (p->timerfd1 > 0)
        close(p->timerfd1 - 1);
    p->epfd1 = p->timerfd1 = 0;
    p->timer_set = false;
}

/*
 * The TAP's offloads as the frontend can take them: the kernel then hands
 * us only frames the RX ring can describe (a frontend without checksum
 * offload gets checksummed frames, one without GSO whole segments).  TUN_F_CSUM
 * covers IPv4 and IPv6 alike, so it needs both.
 */
static int net_offloads(struct bhdev *d, bool csum4, bool csum6, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    unsigned long f = 0;

    if (d->nfds == 0)
        return 0;
    if (csum4 && csum6) {
        f |= TUN_F_CSUM;
        if (k->gso4)
            f |= TUN_F_TSO4;
        if (k->gso6)
            f |= TUN_F_TSO6;
    }
    if (ioctl(d->fds[0], TUNSETOFFLOAD, f) != 0) {
        snprintf(why, len, "cannot set the TAP's offloads: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The control ring, from the kept state: mapped, bound, its indices where they were. */
static int ctrl_attach(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    char cwhy[200];
    int port;

    if (!k->ctrl)
        return 0;
    if ((p->ctrl_page = bhdev_map(d, &k->ctrl_ref, 1, cwhy, sizeof(cwhy))) == NULL ||
        (port = bhdev_bind(d, k->remote_ctrl, cwhy, sizeof(cwhy))) < 0) {
        snprintf(why, len, "control ring: %s", cwhy);
        return -1;
    }
    p->port_ctrl = (uint32_t)port;
    if (bhring_attach(&p->ctrl, &bhring_netif_ctrl, BHRING_BACK, p->ctrl_page, 0, 0, false) != 0 ||
        bhring_restore(&p->ctrl, &k->ctrl_ring) != 0) {
        snprintf(why, len, "control ring: the kept indices are not a ring's");
        return -1;
    }
    return 0;
}

/* Maps each queue's rings, binds its ports and starts its engine from the kept state. */
static int net_attach(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    int port;

    if (ctrl_attach(d, why, len) != 0) {
        net_detach(d);
        return -1;
    }

    if (d->nfds > 0 && ((p->epfd1 = epoll_create1(EPOLL_CLOEXEC) + 1) == 0 ||
                        (p->timerfd1 = timerfd_create(CLOCK_MONOTONIC,
                                                      TFD_NONBLOCK | TFD_CLOEXEC) + 1) == 0)) {
        snprintf(why, len, "epoll or timerfd: %s", strerror(errno));
        net_detach(d);
        return -1;
    }
    if (p->epfd1 > 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = NET_MAX_QUEUES};

        if (epoll_ctl(p->epfd1 - 1, EPOLL_CTL_ADD, p->timerfd1 - 1, &ev) != 0) {
            snprintf(why, len, "epoll_ctl: %s", strerror(errno));
            net_detach(d);
            return -1;
        }
    }
    for (unsigned int i = 0; i < k->nqueues; i++) {
        struct net_queue_kept *qk = &k->q[i];
        struct net_queue *q = &p->q[i];
        char qwhy[200];

        q->d = d;
        if ((q->tx_page = bhdev_map(d, &qk->tx_ref, 1, qwhy, sizeof(qwhy))) == NULL ||
            (q->rx_page = bhdev_map(d, &qk->rx_ref, 1, qwhy, sizeof(qwhy))) == NULL)
            goto fail;
        if ((port = bhdev_bind(d, qk->remote_tx, qwhy, sizeof(qwhy))) < 0)
            goto fail;
        q->port_tx = q->port_rx = (uint32_t)port;
        if (qk->remote_rx != qk->remote_tx) {
            if ((port = bhdev_bind(d, qk->remote_rx, qwhy, sizeof(qwhy))) < 0)
                goto fail;
            q->port_rx = (uint32_t)port;
        }
        if (i < d->nfds) {
            int fd = d->fds[i], fl = fcntl(fd, F_GETFL);
            struct bhnet_opts o = {
                .tx_ring = q->tx_page, .rx_ring = q->rx_page, .fd = fd, .hdrsz = 12,
                .page = net_page, .unpage = net_unpage, .ctx = q,
                .epoch = ((struct net_kept *)d->kept)->pools ? net_epoch : NULL,
                .tx = {.gso_tcpv4 = true, .gso_tcpv6 = true, .mcast = k->mcast != 0},
                .rx = {.gso_tcpv4 = k->gso4 != 0, .gso_tcpv6 = k->gso6 != 0,
                       .ring_ids = __CONST_RING_SIZE(netif_rx, BHNET_PAGE)},
                .filter = (k->spoof.has_mac || k->spoof.nip > 0) ? net_filter : NULL,
                .kept = &qk->eng, .credit_bytes = k->rate_bytes, .credit_usec = k->rate_usec,
                .rx_stall_ms = netback_rx_stall_ms, .steer = net_steer};
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

            if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
                snprintf(qwhy, sizeof(qwhy), "the TAP's fd: %s", strerror(errno));
                goto fail;
            }
            if ((q->eng = bhnet_open(&o, qwhy, sizeof(qwhy))) == NULL)
                goto fail;
            if (epoll_ctl(p->epfd1 - 1, EPOLL_CTL_ADD, fd, &ev) != 0) {
                snprintf(qwhy, sizeof(qwhy), "epoll_ctl: %s", strerror(errno));
                goto fail;
            }
            q->polled = true;
        }
        continue;
    fail:
        if (k->nqueues > 1)
            snprintf(why, len, "queue %u: %s", i, qwhy);
        else
            snprintf(why, len, "%s", qwhy);
        net_detach(d);
        return -1;
    }
    k->connected = 1;
    return 0;
}

/*
 * One queue's keys (io/netif.h): at the top of the frontend's directory
 * for one queue, under queue-N/ only for several.  Split event channels
 * (event-channel-tx and -rx, both) win over event-channel, as in Linux's
 * netback; one of the pair alone is a lie.
 */
static int net_read_queue(struct bhdev *d, unsigned int nq, unsigned int i,
                          struct net_queue_kept *qk, char *why, size_t len)
{
    char dir[600];
    unsigned int tx = 0, rx = 0, evt = 0, evt_tx = 0, evt_rx = 0;
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"tx-ring-ref", BHXB_UINT, &tx, 0, true, 0},
        {"rx-ring-ref", BHXB_UINT, &rx, 0, true, 0},
        {"event-channel", BHXB_UINT, &evt, 0, false, EVTCHN_MAX},
        {"event-channel-tx", BHXB_UINT, &evt_tx, 0, false, EVTCHN_MAX},
        {"event-channel-rx", BHXB_UINT, &evt_rx, 0, false, EVTCHN_MAX},
    };
    char q[24] = "";

    if (nq > 1)
        snprintf(q, sizeof(q), "queue-%u/", i);
    if (nq > 1)
        snprintf(dir, sizeof(dir), "%s/queue-%u", d->paths.frontend, i);
    else
        snprintf(dir, sizeof(dir), "%s", d->paths.frontend);
    if (bhxb_read_keys(d->xs, dir, in, sizeof(in) / sizeof(in[0]), &bad) != 0) {
        snprintf(why, len, "frontend key %s%s: %s", q, bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if ((evt_tx != 0) != (evt_rx != 0)) {
        snprintf(why, len, "frontend key %sevent-channel-%s: missing or port 0 (give both)", q,
                 evt_tx ? "rx" : "tx");
        return -1;
    }
    if (evt_tx == 0) {
        if (evt == 0) {
            snprintf(why, len, "frontend key %sevent-channel: missing or port 0", q);
            return -1;
        }
        evt_tx = evt_rx = evt;
    }
    qk->tx_ref = tx;
    qk->rx_ref = rx;
    qk->remote_tx = evt_tx;
    qk->remote_rx = evt_rx;
    return 0;
}

/*
 * The control ring's keys (io/netif.h), optional: both or neither.  A new
 * connection starts with no hashing, whatever the last one chose.
 */
static int net_read_ctrl(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    unsigned int ref = 0, evt = 0;
    bool has_ref = false;
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"ctrl-ring-ref", BHXB_UINT, &ref, 0, false, 0},
        {"event-channel-ctrl", BHXB_UINT, &evt, 0, false, EVTCHN_MAX},
    };
    char path[BHXB_PATH_MAX + 32], *v;

    k->ctrl = 0;
    memset(&k->ctrl_ring, 0, sizeof(k->ctrl_ring));
    memset(&k->hash, 0, sizeof(k->hash));
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, sizeof(in) / sizeof(in[0]), &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", bad, strerror(errno));
        return -1;
    }
    /* ctrl-ring-ref 0 is a grant reference like another: ask whether the key is there. */
    snprintf(path, sizeof(path), "%s/ctrl-ring-ref", d->paths.frontend);
    if ((v = xs_read(d->xs, XBT_NULL, path, NULL)) != NULL) {
        has_ref = true;
        free(v);
    }
    if (has_ref && evt == 0) {
        snprintf(why, len, "frontend key event-channel-ctrl: missing or port 0 (a control ring "
                           "needs ctrl-ring-ref and event-channel-ctrl both)");
        return -1;
    }
    if (!has_ref && evt != 0) {
        snprintf(why, len, "frontend key ctrl-ring-ref: missing (a control ring needs "
                           "ctrl-ring-ref and event-channel-ctrl both)");
        return -1;
    }
    k->ctrl = has_ref;
    k->ctrl_ref = ref;
    k->remote_ctrl = evt;
    return 0;
}

static int net_connect(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;
    unsigned int copy = 0, queues = 1, fmtu = 0, max = net_max_queues(d);
    bool sg = false, gso4 = false, gso6 = false, nocsum = false, csum6 = false, notify = false,
         mcast = false, pools = false;
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"request-rx-copy", BHXB_UINT, &copy, 0, true, 1},
        {"feature-rx-notify", BHXB_BOOL, &notify, 0, false, 0},
        {"feature-sg", BHXB_BOOL, &sg, 0, false, 0},
        {"feature-gso-tcpv4", BHXB_BOOL, &gso4, 0, false, 0},
        {"feature-gso-tcpv6", BHXB_BOOL, &gso6, 0, false, 0},
        {"feature-no-csum-offload", BHXB_BOOL, &nocsum, 0, false, 0},
        {"feature-ipv6-csum-offload", BHXB_BOOL, &csum6, 0, false, 0},
        {"request-multicast-control", BHXB_BOOL, &mcast, 0, false, 0},
        {"multi-queue-num-queues", BHXB_UINT, &queues, 0, false, 0},
        {"mtu", BHXB_UINT, &fmtu, 0, false, NET_MTU_MAX},
        {"bulkhead-persistent-pools", BHXB_BOOL, &pools, 0, false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.frontend, in, sizeof(in) / sizeof(in[0]), &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (copy != 1) {
        snprintf(why, len, "frontend key request-rx-copy is 0: only rx-copy is served (write 1)");
        return -1;
    }
    if (!notify) {
        snprintf(why, len, "frontend key feature-rx-notify is missing or 0: the backend needs "
                           "RX notifications (write 1)");
        return -1;
    }
    if (queues == 0 || queues > max) {
        snprintf(why, len, "frontend key multi-queue-num-queues is %u: give 1..%u", queues, max);
        return -1;
    }
    if (fmtu != 0 && fmtu < NET_MTU_MIN) {
        snprintf(why, len, "frontend key mtu is %u: write %u..%u", fmtu, NET_MTU_MIN, NET_MTU_MAX);
        return -1;
    }
    /* GSO needs scatter-gather (a 64 KiB frame is many slots), as Linux's netback says. */
    if ((gso4 || gso6) && !sg) {
        snprintf(why, len, "frontend key feature-gso-tcpv%s without feature-sg", gso4 ? "4" : "6");
        return -1;
    }
    memset(k->q, 0, sizeof(k->q));
    k->connected = 0;
    k->kicks = 0;
    for (unsigned int i = 0; i < queues; i++)
        if (net_read_queue(d, queues, i, &k->q[i], why, len) != 0)
            return -1;
    if (net_read_ctrl(d, why, len) != 0)
        return -1;
    k->nqueues = queues;
    k->gso4 = gso4;
    k->gso6 = gso6;
    k->mcast = mcast;
    k->pools = pools;
    if (net_offloads(d, !nocsum, csum6, why, len) != 0 || net_attach(d, why, len) != 0)
        return -1;
    bhdev_log(d,
              "connected: %u queue%s, tx-ring-ref %u, rx-ring-ref %u, event channel%s %u/%u, "
              "sg %d, gso %d/%d, csum %d/%d, multicast control %d, control ring %d",
              queues, queues > 1 ? "s" : "", k->q[0].tx_ref, k->q[0].rx_ref,
              k->q[0].remote_tx == k->q[0].remote_rx ? "" : "s", k->q[0].remote_tx,
              k->q[0].remote_rx, sg, gso4, gso6, !nocsum, csum6, mcast, k->ctrl != 0);
    return 0;
}

static int net_resume(struct bhdev *d, char *why, size_t len)
{
    struct net_kept *k = d->kept;

    if (!k->connected || k->nqueues == 0 || k->nqueues > NET_MAX_QUEUES) {
        snprintf(why, len, "the keeper holds no rings for a connected device");
        return -1;
    }
    if (net_attach(d, why, len) != 0)
        return -1;
    bhdev_log(d,
              "resumed: tx-ring-ref %u, rx-ring-ref %u, event channel %u, %llu kicks before, "
              "%u queue%s, TX at %u, RX at %u",
              k->q[0].tx_ref, k->q[0].rx_ref, k->q[0].remote_tx, (unsigned long long)k->kicks,
              k->nqueues, k->nqueues > 1 ? "s" : "", k->q[0].eng.tx.cons, k->q[0].eng.rx.cons);
    return 0;
}

/* The control ring's view of a request's page: mapped read-only for that request alone. */
static void *ctrl_page(void *ctx, uint32_t gref, bool writable)
{
    struct bhdev *d = ctx;

    (void)writable;
    return bhgnttab_map_grant_ref(d->gnttab, d->id.domid, gref, PROT_READ);
}

static void ctrl_unpage(void *ctx, void *page)
{
    bhgnttab_unmap(((struct bhdev *)ctx)->gnttab, page, 1);
}

/*
 * The control ring's requests, carried out and answered in order
 * (libbhnetback's hash.c).  0, or -1 when the frontend lied on the ring
 * (the vif is lost).  The ring's indices are kept after each batch: a
 * worker that dies within one answers its requests again, which changes
 * nothing (every request sets a value; none adds to one).
 */
static int ctrl_serve(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    unsigned int refused;
    char why[200];
    int n;

    if (p->ctrl_page == NULL)
        return 0;
    n = bhnet_ctrl_serve(&p->ctrl, &k->hash, k->nqueues, ctrl_page, ctrl_unpage, d, &refused,
                         why, sizeof(why));
    if (n < 0) {
        bhdev_fail(d, EPROTO, "the frontend lied on the control ring: %s", why);
        return -1;
    }
    if (bhring_back_push(&p->ctrl) == 1)
        bhdev_notify(d, p->port_ctrl);
    bhring_save(&p->ctrl, &k->ctrl_ring);
    if (n > 0)
        bhdev_log(d, "control ring: %d request%s, %u refused; hash algorithm %u, flags %#x, "
                     "%u mapping entries",
                  n, n > 1 ? "s" : "", refused, k->hash.alg, k->hash.flags, k->hash.size);
    return 0;
}

/*
 * Every queue's rings: one bounded run each, again while an engine says
 * it has more, its frontend ends told as the engine says.  Then the TAP
 * fds an engine will not read leave the epoll set (no spinning on a
 * readable TAP while RX buffers are short), and the timer is set for the
 * soonest thing no event will announce.
 */
/* Frames and chains an engine has handled so far: it moved something when this grows. */
static uint64_t moved(const struct bhnet *eng)
{
    const struct bhnet_stats *s = bhnet_get_stats(eng);

    return s->tx_packets + s->tx_dropped + s->tx_filtered + s->rx_packets + s->rx_dropped;
}

/*
 * Every queue run until it has nothing left, its frontend told as the
 * engine says.  Returns whether anything moved, or -1 when a frontend lied
 * (the vif is then failed and detached).
 */
static int serve_queues(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    char why[200];
    int rc, any = 0;

    for (unsigned int i = 0; i < k->nqueues; i++) {
        struct net_queue *q = &p->q[i];
        uint64_t before;

        if (q->eng == NULL)
            continue;
        before = moved(q->eng);
        do {
            rc = bhnet_run(q->eng, why, sizeof(why));
            unmap_data(q);
            if (rc < 0) {
                if (k->nqueues > 1)
                    bhdev_fail(d, EPROTO, "the frontend lied on queue %u: %s", i, why);
                else
                    bhdev_fail(d, EPROTO, "the frontend lied: %s", why);
                net_detach(d);
                return -1;
            }
            if (rc & BHNET_NOTIFY_TX)
                bhdev_notify(d, q->port_tx);
            if (rc & BHNET_NOTIFY_RX)
                bhdev_notify(d, q->port_rx);
        } while (rc & BHNET_AGAIN);
        any |= moved(q->eng) != before;
    }
    return any;
}

static uint64_t mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * Every queue's rings: run until idle, then - when something moved and
 * --net-poll-us asks for it - a short poll before sleeping: the
 * frontend's next request or the TAP's next frame often comes within
 * microseconds, and a wake-up from sleep on the other CPU costs 45-58 us
 * (DESIGN.md).  The poll ends netback_poll_us after the last thing moved,
 * so a busy vif costs the driver domain a CPU for its bursts and that
 * long after.  Off by default: on a machine whose CPUs the guests need
 * (the 2-CPU one CI runs on), the CPU it takes is theirs.  Then the TAP fds an engine will not read
 * leave the epoll set (no spinning on a readable TAP while RX buffers are
 * short), and the timer is set for the soonest thing no event will
 * announce.
 */
static void net_serve(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    uint64_t wait = 0, last;
    int r;

    if (ctrl_serve(d) != 0) {
        net_detach(d);
        return;
    }
    if ((r = serve_queues(d)) < 0)
        return;
    for (last = r > 0 && netback_poll_us > 0 ? mono_ns() : 0; last != 0;) {
        uint64_t t;

        if ((r = serve_queues(d)) < 0)
            return;
        t = mono_ns();
        if (r > 0)
            last = t;
        else if (t - last >= (uint64_t)netback_poll_us * 1000u)
            break;
    }
    for (unsigned int i = 0; i < k->nqueues; i++) {
        struct net_queue *q = &p->q[i];
        bool want;
        uint64_t w;

        if (q->eng == NULL)
            continue;
        want = bhnet_wants_fd(q->eng);
        if (want != q->polled) {
            struct epoll_event ev = {.events = want ? EPOLLIN : 0, .data.u32 = i};

            if (epoll_ctl(p->epfd1 - 1, EPOLL_CTL_MOD, d->fds[i], &ev) == 0)
                q->polled = want;
        }
        w = bhnet_wait_usec(q->eng);
        if (w != 0 && (wait == 0 || w < wait))
            wait = w;
    }
    /* Disarmed and to stay so, as at most wake-ups: no system call. */
    if (p->timerfd1 > 0 && (wait != 0 || p->timer_set)) {
        struct itimerspec its = {.it_value = {.tv_sec = (time_t)(wait / 1000000),
                                              .tv_nsec = (long)(wait % 1000000) * 1000}};
        if (timerfd_settime(p->timerfd1 - 1, 0, &its, NULL) == 0)
            p->timer_set = wait != 0;
    }
}

static void net_kick(struct bhdev *d)
{
    ((struct net_kept *)d->kept)->kicks++;
    net_serve(d);
}

static int net_pollfd(struct bhdev *d)
{
    struct net_priv *p = d->priv;

    return p->epfd1 > 0 ? p->epfd1 - 1 : -1;
}

/* A TAP readable or the timer: take the epoll's events (level-triggered) and serve. */
static void net_ready(struct bhdev *d)
{
    struct net_priv *p = d->priv;
    struct epoll_event ev[NET_MAX_QUEUES + 1];
    uint64_t ticks;
    int n;

    if (p->epfd1 == 0)
        return;
    n = epoll_wait(p->epfd1 - 1, ev, NET_MAX_QUEUES + 1, 0);
    /* The timer is read only when it fired (its tag): a TAP's frames are the usual wake-up. */
    for (int i = 0; i < n; i++)
        if (ev[i].data.u32 == NET_MAX_QUEUES && p->timerfd1 > 0 &&
            read(p->timerfd1 - 1, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
            bhdev_log(d, "timerfd: %s", strerror(errno));
    net_serve(d);
}

/*
 * Now and then: an RX stall noticed without an event, the counters in
 * the log when they moved (a second late at most), and dynamic
 * multicast control (request-multicast-control may change while
 * connected, io/netif.h) - re-read here rather than watched.
 */
static void net_tick(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_priv *p = d->priv;
    bool mcast = k->mcast != 0;
    const char *bad = NULL;
    struct bhxb_key in[] = {{"request-multicast-control", BHXB_BOOL, &mcast, 0, false, 0}};

    if (p->q[0].eng == NULL)
        return;
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 1, &bad) == 0 && mcast != (k->mcast != 0)) {
        k->mcast = mcast;
        for (unsigned int i = 0; i < k->nqueues; i++)
            if (p->q[i].eng != NULL)
                bhnet_set_mcast(p->q[i].eng, mcast);
        bhdev_log(d, "multicast control %s", mcast ? "on" : "off");
    }
    net_serve(d);
    for (unsigned int i = 0; i < k->nqueues; i++) {
        const struct bhnet_stats *s;

        if (p->q[i].eng == NULL ||
            memcmp(s = bhnet_get_stats(p->q[i].eng), &p->logged[i], sizeof(*s)) == 0)
            continue;
        p->logged[i] = *s;
        bhdev_log(d,
                  "queue %u: sent %llu, dropped %llu, spoofed %llu, throttled %llu; received "
                  "%llu, dropped %llu, stalls %llu",
                  i, (unsigned long long)s->tx_packets, (unsigned long long)s->tx_dropped,
                  (unsigned long long)s->tx_filtered, (unsigned long long)s->tx_throttled,
                  (unsigned long long)s->rx_packets, (unsigned long long)s->rx_dropped,
                  (unsigned long long)s->rx_stalls);
    } /* an RX stall is noticed without an event */
}

static void net_disconnect(struct bhdev *d)
{
    struct net_kept *k = d->kept;
    struct net_queue_kept *qk = &k->q[0];

    if (k->connected && k->nqueues > 0)
        bhdev_log(d,
                  "disconnected: queue 0 sent %llu, dropped %llu, spoofed %llu, throttled %llu; "
                  "received %llu, dropped %llu, stalls %llu",
                  (unsigned long long)qk->eng.st.tx_packets,
                  (unsigned long long)qk->eng.st.tx_dropped,
                  (unsigned long long)qk->eng.st.tx_filtered,
                  (unsigned long long)qk->eng.st.tx_throttled,
                  (unsigned long long)qk->eng.st.rx_packets,
                  (unsigned long long)qk->eng.st.rx_dropped,
                  (unsigned long long)qk->eng.st.rx_stalls);
    net_detach(d);
    k->connected = 0;
}

const struct bhdrv netback = {
    .name = "netback",
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
    .pollfd = net_pollfd,
    .ready = net_ready,
    .tick = net_tick,
    .tick_ms = 1000,
};
