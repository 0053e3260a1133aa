/*
 * blk.c - the trivial block backend (kinds vbd, qdisk, vbd3): the real
 * handshake of io/blkif.h and nothing more yet.  It publishes what it can
 * honour (multi-page rings), reads the keys a Linux blkfront writes
 * (ring-ref or ring-page-order + ring-refN, event-channel, protocol)
 * strictly, maps the ring, binds the event channel, and answers no
 * request: the block issue fills kick in.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>

#include "bhbroker.h"
#include "bhring.h"
#include "drv.h"

#define BLK_MAX_ORDER BHRING_MAX_ORDER
#define EVTCHN_MAX    ((1u << 17) - 1) /* the FIFO ABI's last port */

/* What a restarted worker needs, validated once at connect. */
struct blk_kept {
    uint64_t size;     /* bytes of the medium (probe) */
    uint32_t readonly; /* probe: mode r, or a read-only fd */
    uint32_t refs[BHDEV_MAX_RING];
    uint32_t order;
    uint32_t remote_port;
    uint32_t connected;
    struct bhring_state ring; /* the consumer's private indices */
    uint64_t kicks;
};

struct blk_priv {
    void *pages;
    struct bhring ring;
    uint32_t port;
};

/* The disk's fd from dom0's broker, opened beneath this domain's storage. */
static int blk_acquire(const struct bhxb_dev *id, struct bhacquired *a)
{
    int ro = 0, fd;

    if (id->backend_domid == 0)
        return 0; /* dom0 opens its disks with its own rights */
    fd = bhbroker_disk(id->domid, id->devid, 0, &ro, &a->size);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0; /* nothing registered: an empty cdrom drive (probe decides) */
        a->err = errno;
        snprintf(a->why, sizeof(a->why), "disk %u/%u: %s", id->domid, id->devid, strerror(errno));
        return -1;
    }
    a->fds[0] = fd;
    a->nfds = 1;
    a->readonly = ro != 0;
    return 0;
}

/*
 * The disk's size and whether it is read-only: from the broker's fd in a
 * driver domain, from the target itself in dom0 (which needs no broker).
 * -1 with why when there is no disk to serve.
 */
static int blk_medium(struct bhdev *d, const char *params, const char *mode, uint64_t *size,
                      bool *ro, char *why, size_t len)
{
    struct stat st;

    *ro = strcmp(mode, "r") == 0;
    if (d->acq != NULL && d->acq->nfds > 0) {
        *size = d->acq->size;
        *ro = *ro || d->acq->readonly;
        return 0;
    }
    if (params[0] == '\0') {
        *size = 0; /* a drive with no medium */
        return 0;
    }
    if (d->id.backend_domid != 0) {
        snprintf(why, len, "no fd for %s from dom0's broker: was it registered (bulkhead create)?",
                 params);
        return -1;
    }
    if (stat(params, &st) != 0) {
        snprintf(why, len, "target %s: %s", params, strerror(errno));
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int blk_probe(struct bhdev *d, char *why, size_t len)
{
    char params[256] = "", mode[4] = "w";
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"params", BHXB_STR, params, sizeof(params), false, 0},
        {"mode", BHXB_STR, mode, sizeof(mode), false, 0},
    };
    unsigned int order = BLK_MAX_ORDER;
    char hotplug[] = "connected";
    struct bhxb_key out[] = {
        {"max-ring-page-order", BHXB_UINT, &order, 0, false, 0},
        {"hotplug-status", BHXB_STR, hotplug, sizeof(hotplug), false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.backend, in, 2, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s (the toolstack wrote it)", bad, strerror(errno));
        return -1;
    }
    if (strcmp(mode, "r") != 0 && strcmp(mode, "w") != 0) {
        snprintf(why, len, "backend key mode is '%s': the toolstack must write r or w", mode);
        return -1;
    }
    if (bhxb_write_keys(d->xs, d->paths.backend, out, 2) != 0) {
        snprintf(why, len, "cannot publish the features: %s", strerror(errno));
        return -1;
    }
    {
        struct blk_kept *k = d->kept;
        const char *target = params;
        uint64_t size;
        bool ro;
        /* qdisk's and vbd3's "<format>:<target>" (libxl's "aio:" for raw) */
        if (strncmp(params, "aio:", 4) == 0 || strncmp(params, "raw:", 4) == 0 ||
            strncmp(params, "vhd:", 4) == 0 || strncmp(params, "qcow2:", 6) == 0)
            target = strchr(params, ':') + 1;
        if (blk_medium(d, target, mode, &size, &ro, why, len) != 0)
            return -1;
        k->size = size;
        k->readonly = ro;
    }
    bhdev_log(d, "probed: params '%s', mode %s, %llu bytes%s", params, mode,
              (unsigned long long)((struct blk_kept *)d->kept)->size,
              ((struct blk_kept *)d->kept)->readonly ? ", read-only" : "");
    return 0;
}

/* Maps the ring and binds the port the kept state names; restore: the ring's saved indices. */
static int blk_attach(struct bhdev *d, bool restore, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    unsigned int n = 1u << k->order;
    int port;

    if ((p->pages = bhdev_map(d, k->refs, n, why, len)) == NULL)
        return -1;
    if (bhring_attach(&p->ring, &bhring_blkif, BHRING_BACK, p->pages, k->order, 0, false) != 0 ||
        (restore && bhring_restore(&p->ring, &k->ring) != 0)) {
        snprintf(why, len, "cannot attach the ring: %s", strerror(errno));
        goto fail;
    }
    if ((port = bhdev_bind(d, k->remote_port, why, len)) < 0)
        goto fail;
    p->port = (uint32_t)port;
    k->connected = 1;
    return 0;
fail:
    bhdev_unmap(d, p->pages, n);
    p->pages = NULL;
    return -1;
}

static int blk_connect(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    char proto[32] = XEN_IO_PROTO_ABI_NATIVE;
    unsigned int port = 0, order;
    uint32_t refs[BHDEV_MAX_RING];
    const char *bad = NULL;
    struct bhxb_key in[] = {
        {"event-channel", BHXB_UINT, &port, 0, true, EVTCHN_MAX},
        {"protocol", BHXB_STR, proto, sizeof(proto), false, 0},
    };
    unsigned long sectors = 0;
    unsigned int info = 0, sector_size = 512;
    struct bhxb_key out[] = {
        {"sectors", BHXB_ULONG, &sectors, 0, false, 0},
        {"info", BHXB_UINT, &info, 0, false, 0},
        {"sector-size", BHXB_UINT, &sector_size, 0, false, 0},
    };

    if (bhdev_read_ring_refs(d, "", BLK_MAX_ORDER, refs, &order, why, len) != 0)
        return -1;
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 2, &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (port == 0) {
        snprintf(why, len, "frontend key event-channel: port 0 is never valid");
        return -1;
    }
    if (strcmp(proto, XEN_IO_PROTO_ABI_NATIVE) != 0) {
        snprintf(why, len, "frontend protocol '%s' is not served: use %s", proto,
                 XEN_IO_PROTO_ABI_NATIVE);
        return -1;
    }
    sectors = (unsigned long)(k->size / 512);
    info = k->readonly ? VDISK_READONLY : 0;
    {
        uint64_t size = k->size;
        uint32_t ro = k->readonly;
        memset(k, 0, sizeof(*k));
        k->size = size;
        k->readonly = ro;
    }
    memcpy(k->refs, refs, sizeof(refs));
    k->order = order;
    k->remote_port = port;
    if (blk_attach(d, false, why, len) != 0)
        return -1;
    if (bhxb_write_keys(d->xs, d->paths.backend, out, 3) != 0) {
        snprintf(why, len, "cannot publish the disk's size: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "connected: ring-ref %u (order %u), event channel %u -> port %u", refs[0], order,
              port, ((struct blk_priv *)d->priv)->port);
    return 0;
}

static int blk_resume(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;

    if (!k->connected) {
        snprintf(why, len, "the keeper holds no ring for a connected device");
        return -1;
    }
    if (blk_attach(d, true, why, len) != 0)
        return -1;
    bhdev_log(d,
              "resumed: ring-ref %u (order %u), event channel %u -> port %u, ring at %u, "
              "%llu kicks before",
              k->refs[0], k->order, k->remote_port, ((struct blk_priv *)d->priv)->port,
              k->ring.cons, (unsigned long long)k->kicks);
    return 0;
}

/* No request is answered yet: the kick is counted, and the ring's indices kept. */
static void blk_kick(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    k->kicks++;
    if (p->pages != NULL)
        bhring_save(&p->ring, &k->ring);
}

static void blk_disconnect(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    bhdev_unbind(d, p->port);
    bhdev_unmap(d, p->pages, 1u << k->order);
    p->port = 0;
    p->pages = NULL;
    k->connected = 0;
}

const struct bhdrv blkback_trivial = {
    .name = "blkback (handshake only)",
    .kinds = {"vbd", "qdisk", "vbd3", NULL},
    .frontend_kind = "vbd",
    .kept_size = sizeof(struct blk_kept),
    .priv_size = sizeof(struct blk_priv),
    .acquire = blk_acquire,
    .probe = blk_probe,
    .connect = blk_connect,
    .resume = blk_resume,
    .kick = blk_kick,
    .disconnect = blk_disconnect,
};
