/*
 * blk.c - the block backend (kinds vbd, qdisk, vbd3): the handshake of
 * io/blkif.h, and the data path of backend/blk (libbhblkback: requests
 * validated, served with io_uring straight into the granted pages).  It
 * publishes what it honours (multi-page rings, indirect segments, flush,
 * barrier, discard), reads the keys a Linux blkfront writes (ring-ref or
 * ring-page-order + ring-refN, event-channel, protocol) strictly, maps the
 * ring, binds the event channel, and serves the ring from the worker's
 * event loop (the event channel and the io_uring's fd).
 *
 * A disk that is not a raw file (qcow2, vhd, qed: dom0 runs a qemu-nbd for
 * it) is served over NBD instead.  The toolstack says so with the backend
 * key bulkhead-nbd, the path of the server's socket; in a driver domain
 * the keeper asks the broker for the disk as a file and, refused with
 * EINVAL (the disk is registered as an NBD server), for it as a socket.
 * Each engine needs a connection of its own (NBD's handshake is once per
 * connection): the first uses the keeper's, a later one (a reconnect, a
 * restarted worker) asks the broker again; dom0 connects to the path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>

#include <xenstore.h>

#include "bhblkback.h"
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
    uint32_t discard; /* feature-discard offered */
    uint32_t cdrom;   /* device-type cdrom */
    uint32_t persistent; /* the frontend said feature-persistent too */
    char target[256];    /* dom0: the file it opens itself (NBD: the server's socket) */
    uint32_t nbd;        /* served over NBD */
    uint32_t nbd_conns;  /* NBD connections made: the keeper's socket serves the first only */
    uint32_t flush;      /* feature-flush-cache offered (an NBD server may not flush) */
    uint64_t kicks;
    struct bhblk_kept eng; /* the ring's indices and the requests in flight */
};

struct blk_priv {
    void *pages;
    struct bhblk *eng;
    uint32_t port;
    int fd1; /* dom0's own open of the target, plus one; 0: none (a driver domain uses the keeper's) */
    struct bhnbd *nbd; /* a connection made by probe, until the engine takes it */
    bool lost;         /* the storage is gone: the device failed once */
};

/* The disk's fd from dom0's broker, opened beneath this domain's storage. */
static int blk_acquire(const struct bhxb_dev *id, struct bhacquired *a)
{
    int ro = 0, fd;

    if (id->backend_domid == 0)
        return 0; /* dom0 opens its disks with its own rights */
    fd = bhbroker_disk(id->domid, id->devid, 0, &ro, &a->size);
    if (fd < 0 && errno == EINVAL) {
        /* Not a file or block device: registered as an NBD server, or of no kind we serve. */
        if ((fd = bhbroker_nbd(id->domid, id->devid)) >= 0)
            a->nbd = true;
        else
            errno = EINVAL;
    }
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

/* A new connection to the disk's NBD server (the header comment says whence). */
static struct bhnbd *blk_nbd_connect(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    int sock;

    if (d->id.backend_domid == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t n = strnlen(k->target, sizeof(k->target));
        sock = n < sizeof(sa.sun_path) ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
        if (n >= sizeof(sa.sun_path))
            errno = ENAMETOOLONG;
        memcpy(sa.sun_path, k->target, n < sizeof(sa.sun_path) ? n : 0);
        if (sock >= 0 && connect(sock, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            int err = errno;
            close(sock);
            errno = err;
            sock = -1;
        }
    } else if (k->nbd_conns == 0 && d->nfds > 0) {
        sock = fcntl(d->fds[0], F_DUPFD_CLOEXEC, 0);
    } else {
        sock = bhbroker_nbd(d->id.domid, d->id.devid);
    }
    if (sock < 0) {
        snprintf(why, len, "cannot reach the disk's NBD server%s%s: %s (is its qemu-nbd running?)",
                 d->id.backend_domid == 0 ? " at " : "", d->id.backend_domid == 0 ? k->target : "",
                 strerror(errno));
        return NULL;
    }
    k->nbd_conns++;
    return bhnbd_open(sock, why, len);
}

/* An NBD disk's size and flags, from a fresh connection that the engine will take. */
static int blk_nbd_medium(struct bhdev *d, const char *sockpath, uint64_t *size, bool *ro,
                          unsigned int *flush, unsigned int *discard, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    const struct bhblk_nbd_info *info;

    if (d->id.backend_domid != 0 && (d->acq == NULL || !d->acq->nbd)) {
        snprintf(why, len,
                 "backend key bulkhead-nbd is set but dom0's broker has no NBD server "
                 "for this disk: register it as one (bulkhead create does)");
        return -1;
    }
    if (d->id.backend_domid == 0)
        snprintf(k->target, sizeof(k->target), "%s", sockpath);
    bhnbd_close(p->nbd);
    if ((p->nbd = blk_nbd_connect(d, why, len)) == NULL)
        return -1;
    info = bhnbd_info(p->nbd);
    *size = info->size;
    *ro = *ro || info->readonly;
    *flush = info->flush;
    *discard = *discard && info->trim;
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
    char devtype[16] = "disk", nbdsock[108] = "";
    unsigned int discard_enable = 1;
    struct bhxb_key opt[] = {
        {"device-type", BHXB_STR, devtype, sizeof(devtype), false, 0},
        {"discard-enable", BHXB_UINT, &discard_enable, 0, false, 1},
        {"bulkhead-nbd", BHXB_STR, nbdsock, sizeof(nbdsock), false, 0},
    };
    unsigned int order = BLK_MAX_ORDER, one = 1, zero = 0, gran = 4096, maxind = BHBLK_MAX_INDIRECT;
    unsigned int discard = 0, flush = 1;
    char hotplug[] = "connected";
    struct bhxb_key out[] = {
        {"max-ring-page-order", BHXB_UINT, &order, 0, false, 0},
        {"feature-flush-cache", BHXB_UINT, &flush, 0, false, 0},
        {"feature-barrier", BHXB_UINT, &flush, 0, false, 0},
        {"feature-max-indirect-segments", BHXB_UINT, &maxind, 0, false, 0},
        {"feature-persistent", BHXB_UINT, &one, 0, false, 0},
        {"feature-discard", BHXB_UINT, &discard, 0, false, 0},
        {"discard-granularity", BHXB_UINT, &gran, 0, false, 0},
        {"discard-alignment", BHXB_UINT, &zero, 0, false, 0},
        {"discard-secure", BHXB_UINT, &zero, 0, false, 0},
        {"hotplug-status", BHXB_STR, hotplug, sizeof(hotplug), false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.backend, in, 2, &bad) != 0 ||
        bhxb_read_keys(d->xs, d->paths.backend, opt, 3, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s (the toolstack wrote it)", bad, strerror(errno));
        return -1;
    }
    if (strcmp(mode, "r") != 0 && strcmp(mode, "w") != 0) {
        snprintf(why, len, "backend key mode is '%s': the toolstack must write r or w", mode);
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
        k->nbd = nbdsock[0] != '\0' || (d->acq != NULL && d->acq->nbd);
        discard = discard_enable && strcmp(devtype, "cdrom") != 0;
        ro = strcmp(mode, "r") == 0;
        if (k->nbd) {
            if (blk_nbd_medium(d, nbdsock, &size, &ro, &flush, &discard, why, len) != 0)
                return -1;
        } else {
            if (blk_medium(d, target, mode, &size, &ro, why, len) != 0)
                return -1;
            snprintf(k->target, sizeof(k->target), "%s", target);
        }
        k->size = size;
        k->readonly = ro;
        k->discard = discard = discard && !ro;
        k->flush = flush;
        k->cdrom = strcmp(devtype, "cdrom") == 0;
    }
    if (bhxb_write_keys(d->xs, d->paths.backend, out, sizeof(out) / sizeof(out[0])) != 0) {
        snprintf(why, len, "cannot publish the features: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "probed: params '%s', mode %s, %llu bytes%s%s", params, mode,
              (unsigned long long)((struct blk_kept *)d->kept)->size,
              ((struct blk_kept *)d->kept)->readonly ? ", read-only" : "",
              ((struct blk_kept *)d->kept)->nbd ? ", over NBD" : "");
    return 0;
}

/* The disk's fd: the keeper's (from the broker), or dom0's own open of the target. */
static int blk_disk_fd(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    if (d->nfds > 0)
        return d->fds[0];
    if (p->fd1 == 0 && k->target[0] != '\0')
        p->fd1 = open(k->target, (k->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC) + 1;
    if (p->fd1 == 0)
        snprintf(why, len, "cannot open %s: %s", k->target[0] ? k->target : "(no medium)",
                 k->target[0] ? strerror(errno) : "insert one first");
    return p->fd1 - 1;
}

/* Maps the ring, starts the engine (from the kept state) and binds the port it names. */
static int blk_attach(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    unsigned int n = 1u << k->order;
    struct bhblk_opts o = {.domid = d->id.domid, .gt = d->gnttab, .order = k->order,
                           .kept = &k->eng, .persistent = k->persistent != 0};
    int port;

    if (k->nbd) {
        /* probe's connection, or (a restarted worker) a new one */
        if (p->nbd == NULL && (p->nbd = blk_nbd_connect(d, why, len)) == NULL)
            return -1;
        o.nbd = p->nbd;
        o.fd = -1;
        p->nbd = NULL; /* the engine's now, even if bhblk_open fails */
    } else if ((o.fd = blk_disk_fd(d, why, len)) < 0) {
        return -1;
    }
    if ((p->pages = bhdev_map(d, k->refs, n, why, len)) == NULL) {
        bhnbd_close(o.nbd);
        return -1;
    }
    o.ring = p->pages;
    o.geom = (struct bhblk_geom){.sectors = k->size / BHBLK_SECTOR, .readonly = k->readonly,
                                 .discard = k->discard, .max_indirect = BHBLK_MAX_INDIRECT};
    if ((p->eng = bhblk_open(&o, why, len)) == NULL)
        goto fail;
    if ((port = bhdev_bind(d, k->remote_port, why, len)) < 0)
        goto fail;
    p->port = (uint32_t)port;
    k->connected = 1;
    return 0;
fail:
    bhblk_close(p->eng);
    p->eng = NULL;
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
    bool persistent = false;
    struct bhxb_key in[] = {
        {"event-channel", BHXB_UINT, &port, 0, true, EVTCHN_MAX},
        {"protocol", BHXB_STR, proto, sizeof(proto), false, 0},
        {"feature-persistent", BHXB_BOOL, &persistent, 0, false, 0},
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
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 3, &bad) != 0) {
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
    info = (k->readonly ? VDISK_READONLY : 0) | (k->cdrom ? VDISK_CDROM | VDISK_REMOVABLE : 0);
    memset(&k->eng, 0, sizeof(k->eng));
    memset(k->refs, 0, sizeof(k->refs));
    k->connected = 0;
    k->kicks = 0;
    memcpy(k->refs, refs, sizeof(refs));
    k->order = order;
    k->remote_port = port;
    k->persistent = persistent;
    if (blk_attach(d, why, len) != 0)
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
    if (blk_attach(d, why, len) != 0)
        return -1;
    bhdev_log(d,
              "resumed: ring-ref %u (order %u), event channel %u -> port %u, ring at %u, "
              "%llu kicks before",
              k->refs[0], k->order, k->remote_port, ((struct blk_priv *)d->priv)->port,
              k->eng.ring.cons, (unsigned long long)k->kicks);
    return 0;
}

/* Online resize: a medium that grew or shrank is published, and checked against from now on. */
static void blk_resize(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    struct stat st;
    char why[160];
    unsigned long sectors;
    struct bhxb_key out[] = {{"sectors", BHXB_ULONG, &sectors, 0, false, 0}};
    int fd = k->nbd ? -1 : blk_disk_fd(d, why, sizeof(why));

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size == k->size)
        return;
    k->size = (uint64_t)st.st_size;
    sectors = (unsigned long)(k->size / BHBLK_SECTOR);
    bhblk_set_sectors(p->eng, sectors);
    if (bhxb_write_keys(d->xs, d->paths.backend, out, 1) != 0)
        bhdev_log(d, "cannot publish the new size: %s", strerror(errno));
    else
        bhdev_log(d, "resized: %lu sectors", sectors);
}

/*
 * The storage is gone (an NBD server died): as Linux's xenbus_dev_error, not
 * _fatal - the error node says why and the device stays Connected, every
 * request answered with an error, so that the guest sees I/O errors at once
 * instead of requests parked for a backend that would come back; removing
 * the device (or the guest) ends it.
 */
static void blk_storage_lost(struct bhdev *d, const char *what)
{
    char path[BHXB_PATH_MAX + 8], val[300];

    snprintf(path, sizeof(path), "%s/error", d->paths.backend);
    snprintf(val, sizeof(val),
             "%d %s: its requests fail (restart the server and attach the "
             "disk again)",
             EIO, what);
    if (!xs_write(d->xs, XBT_NULL, path, val, (unsigned int)strlen(val)))
        bhdev_log(d, "cannot write %s: %s", path, strerror(errno));
    bhdev_log(d, "%s", val + 2);
}

/* The ring and the completions: served until nothing is left, then the frontend told. */
static void blk_serve(struct bhdev *d)
{
    struct blk_priv *p = d->priv;
    char why[200];
    int rc;

    if (p->eng == NULL)
        return;
    blk_resize(d);
    rc = bhblk_run(p->eng, why, sizeof(why));
    if (rc < 0) {
        bhdev_fail(d, EPROTO, "the frontend lied: %s", why);
        return;
    }
    if (rc > 0)
        bhdev_notify(d, p->port);
    if (!p->lost && bhblk_storage_error(p->eng) != NULL) {
        p->lost = true;
        blk_storage_lost(d, bhblk_storage_error(p->eng));
    }
}

static void blk_kick(struct bhdev *d)
{
    ((struct blk_kept *)d->kept)->kicks++;
    blk_serve(d);
}

static int blk_pollfd(struct bhdev *d)
{
    struct blk_priv *p = d->priv;

    return p->eng != NULL ? bhblk_fd(p->eng) : -1;
}

static void blk_disconnect(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    bhblk_close(p->eng);
    p->eng = NULL;
    bhnbd_close(p->nbd);
    p->nbd = NULL;
    bhdev_unbind(d, p->port);
    bhdev_unmap(d, p->pages, 1u << k->order);
    if (p->fd1 > 0)
        close(p->fd1 - 1);
    p->fd1 = 0;
    p->port = 0;
    p->pages = NULL;
    k->connected = 0;
}

const struct bhdrv blkback = {
    .name = "blkback",
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
    .pollfd = blk_pollfd,
    .ready = blk_serve,
};
