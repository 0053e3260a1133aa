/*
 * blk.c - the block backend (kinds vbd, qdisk, vbd3): the handshake of
 * io/blkif.h, and the data path of backend/blk (libbhblkback: requests
 * validated, served with io_uring straight into the granted pages).  It
 * publishes what it honours (multi-page rings, indirect segments, flush,
 * barrier, discard, several queues), reads the keys a Linux blkfront
 * writes (ring-ref or ring-page-order + ring-refN, event-channel, protocol,
 * multi-queue-num-queues) strictly, maps each queue's ring, binds its event
 * channel, and serves every ring from the worker's event loop (the event
 * channels and the io_urings' fds).
 *
 * Multi-queue (io/blkif.h): we offer multi-queue-max-queues BLK_MAX_QUEUES.
 * As Linux's blkback: no multi-queue-num-queues, or 1, is one queue whose
 * keys (ring-ref*, event-channel) are at the top of the frontend's
 * directory; 2..BLK_MAX_QUEUES queues have theirs under queue-N/ only (the
 * top-level ones are then not read at all); 0 or more than offered loses
 * the device.  ring-page-order stays at the top and sizes every queue's
 * ring.  Each queue is one engine (struct bhblk) with its own ring,
 * io_uring and port; a lie on any of them fails the whole device.
 *
 * A disk that is not a raw file (qcow2, vhd, qed: dom0 runs a qemu-nbd for
 * it) is served over NBD instead.  The toolstack says so with the backend
 * key bulkhead-nbd, the path of the server's socket; in a driver domain
 * the keeper asks the broker for the disk as a file and, refused with
 * EINVAL (the disk is registered as an NBD server), for it as a socket.
 * Each engine (each queue) needs a connection of its own (NBD's handshake
 * is once per connection): the first uses the keeper's, a later one (another
 * queue, a reconnect, a restarted worker) asks the broker again; dom0
 * connects to the path.  A Xen driver domain has no broker and its worker
 * no file system: its opener connects when params names a unix socket, for
 * the keeper and again for each further connection, and opens a cdrom's
 * new medium when the toolstack rewrites params (opener.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>

#include <xenstore.h>

#include "bhblkback.h"
#include "bhbroker.h"
#include "bhring.h"
#include "drv.h"

#define BLK_MAX_ORDER BHRING_MAX_ORDER

unsigned int blkback_grant_idle_ms = BHBLK_IDLE_MS;
/* Polling the rings before sleeping (blk_serve), in microseconds; 0: never; --blk-poll-us. */
unsigned int blkback_poll_us = 0;
#define EVTCHN_MAX    ((1u << 17) - 1) /* the FIFO ABI's last port */
/*
 * Queues offered.  A worker is one thread: more queues buy the frontend
 * rings (and locks) of their own and us io_urings of our own, not CPUs;
 * 4 is Linux blkfront's default (xen_blkfront.max_queues) and bounds the
 * kept state a keeper holds (one struct bhblk_kept, ~57 KiB, per queue).
 */
#define BLK_MAX_QUEUES 4

/* One queue's part of the kept state. */
struct blk_queue_kept {
    uint32_t refs[BHDEV_MAX_RING];
    uint32_t remote_port;
    struct bhblk_kept eng; /* the ring's indices and the requests in flight */
};

/* What a restarted worker needs, validated once at connect. */
struct blk_kept {
    uint64_t size;     /* bytes of the medium (probe) */
    uint32_t readonly; /* probe: mode r, or a read-only fd */
    uint32_t order;   /* of every queue's ring */
    uint32_t nqueues; /* 1..BLK_MAX_QUEUES, as negotiated at connect */
    uint32_t connected;
    uint32_t discard; /* feature-discard offered */
    uint32_t cdrom;   /* device-type cdrom */
    uint32_t direct_io_safe; /* the toolstack's direct-io-safe: O_DIRECT on a file too */
    uint32_t persistent; /* the frontend said feature-persistent too */
    uint32_t lbs, pbs;   /* logical and physical block sizes (probe) */
    uint64_t ever_size;  /* the largest size this ring had, when it shrank since */
    char target[256];    /* dom0: the file it opens itself (NBD: the server's socket) */
    uint32_t nbd;        /* served over NBD */
    uint32_t nbd_conns;  /* NBD connections made: the keeper's socket serves the first only */
    uint32_t flush;      /* feature-flush-cache offered (an NBD server may not flush) */
    uint32_t probed;     /* Xen driver domain: probed once, target is what that probe named */
    uint32_t stale;      /* Xen driver domain: the medium changed, the keeper's fd is not it */
    uint64_t kicks;
    struct blk_queue_kept q[BLK_MAX_QUEUES];
};

struct blk_queue {
    void *pages;
    struct bhblk *eng;
    uint32_t port;
};

struct blk_priv {
    struct blk_queue q[BLK_MAX_QUEUES];
    /* dom0's own open of the target, or a Xen driver domain's from its opener (a medium the
     * keeper does not hold), plus one; 0: none (a driver domain uses the keeper's) */
    int fd1;
    int epfd1; /* with several queues: an epoll over their io_urings, plus one */
    struct bhnbd *nbd; /* a connection made by probe, until queue 0's engine takes it */
    bool lost;         /* the storage is gone: the device failed once */
    char traced[BLK_MAX_QUEUES][240]; /* BULKHEAD_BLK_TRACE: each ring's state as last logged */
    uint64_t readies;  /* wake-ups for storage completions (the event channel's: k->kicks) */
    uint64_t logged_wakes;                     /* kicks + readies when the stats were logged */
    struct bhblk_stats logged[BLK_MAX_QUEUES]; /* each engine's, as last logged */
};

/*
 * BULKHEAD_BLK_TRACE=1: the engine's first requests and answers, and each
 * ring's indices once a second when they moved, in the device's log.  For
 * finding where a frontend's I/O stops where no debugger reaches (a driver
 * domain on real Xen, logging to its console).
 */
static bool blk_tracing(void)
{
    const char *v = getenv("BULKHEAD_BLK_TRACE");

    return v != NULL && strcmp(v, "1") == 0;
}

static void blk_trace_line(void *arg, const char *line)
{
    bhdev_log(arg, "%s", line);
}

/*
 * A Xen driver domain: its worker is confined (no file system), so what it
 * opens by name in dom0 it asks of its opener (opener.c).
 */
static bool blk_xen_dd(const struct bhdev *d)
{
    return d->id.backend_domid != 0 && drv_own_targets(d->id.backend_domid);
}

/* The disk's fd from dom0's broker, opened beneath this domain's storage. */
static int blk_acquire(const struct bhxb_dev *id, struct bhacquired *a)
{
    int ro = 0, fd;

    if (id->backend_domid != 0 && drv_own_targets(id->backend_domid)) {
        /* A Xen driver domain: its own disk, opened by the opener (opener.c). */
        bool xro = false, nbd = false;

        fd = drvdom_opener_disk(id->backend_kind, id->domid, id->devid, &a->size, &xro, &nbd,
                                a->why, sizeof(a->why));
        if (fd < 0) {
            if (errno == ENOENT)
                return 0; /* no params: an empty drive (probe decides) */
            a->err = errno;
            return -1;
        }
        a->fds[0] = fd;
        a->nfds = 1;
        a->readonly = xro;
        a->nbd = nbd;
        return 0;
    }
    if (drv_own_targets(id->backend_domid))
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

/* The disk's bytes now: a block device's size, or a file's. */
static int fd_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size);
    *size = (uint64_t)st.st_size;
    return 0;
}

/*
 * The disk's logical and physical block sizes (io/blkif.h sector-size and
 * physical-sector-size).  A block device says them (BLKSSZGET, BLKPBSZGET,
 * what Linux's blkback publishes).  A file has 512-byte logical sectors;
 * its physical one is its st_blksize bounded to 512..4096: the page cache
 * writes a file in st_blksize units, so a guest writing less pays a
 * read-modify-write, which is what physical-sector-size tells it (Linux's
 * loop device says its logical size instead; ours is more useful and
 * never smaller).  Sizes the engine cannot serve (past a page) are refused.
 */
static int fd_blocks(int fd, unsigned int *lbs, unsigned int *pbs, char *why, size_t len)
{
    struct stat st;
    int l = 512, p = 512;

    if (fstat(fd, &st) != 0) {
        snprintf(why, len, "the disk's fd: %s", strerror(errno));
        return -1;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKSSZGET, &l) != 0 || ioctl(fd, BLKPBSZGET, &p) != 0) {
            snprintf(why, len, "the disk's block sizes (BLKSSZGET): %s", strerror(errno));
            return -1;
        }
    } else if (st.st_blksize >= 512 && (st.st_blksize & (st.st_blksize - 1)) == 0) {
        p = st.st_blksize > 4096 ? 4096 : (int)st.st_blksize;
    }
    if (l < 512 || l > 4096 || (l & (l - 1)) != 0) {
        snprintf(why, len, "the disk's logical block size is %d: only 512..4096 are served", l);
        return -1;
    }
    *lbs = (unsigned int)l;
    *pbs = p >= l && (p & (p - 1)) == 0 ? (unsigned int)p : (unsigned int)l;
    return 0;
}

/*
 * A Xen driver domain's medium that its keeper does not hold (a cdrom's
 * new one, or one inserted into a drive that was empty), from the opener
 * into p->fd1.  Over NBD (params names a server's socket) *nbd is set and
 * nothing is kept: blk_nbd_medium connects again.
 */
static int blk_xen_medium(struct bhdev *d, uint64_t *size, bool *ro, unsigned int *lbs,
                          unsigned int *pbs, bool *nbd, char *why, size_t len)
{
    struct blk_priv *p = d->priv;
    bool xro = false;
    int fd = drvdom_opener_disk(d->id.backend_kind, d->id.domid, d->id.devid, size, &xro, nbd, why,
                                len);

    if (fd < 0 && errno == ENOENT && strncmp(why, "no params", 9) == 0) {
        *size = 0; /* ejected since the probe read params: no medium */
        return 0;
    }
    if (fd < 0)
        return -1;
    if (*nbd) {
        close(fd);
        return 0;
    }
    if (p->fd1 > 0)
        close(p->fd1 - 1);
    p->fd1 = fd + 1;
    *ro = *ro || xro;
    return fd_blocks(fd, lbs, pbs, why, len);
}

/*
 * The disk's size, block sizes and whether it is read-only: from the
 * broker's fd in a driver domain (on Xen the opener's), from the target
 * itself in dom0 (which needs no broker).  -1 with why when there is no
 * disk to serve; *nbd when a Xen driver domain's new medium is an NBD
 * server's socket.
 */
static int blk_medium(struct bhdev *d, const char *params, const char *mode, uint64_t *size,
                      bool *ro, unsigned int *lbs, unsigned int *pbs, bool *nbd, char *why,
                      size_t len)
{
    struct blk_kept *k = d->kept;
    int fd, rc;

    *ro = strcmp(mode, "r") == 0;
    *lbs = *pbs = 512;
    *nbd = false;
    if (blk_xen_dd(d)) {
        struct blk_priv *p = d->priv;

        if (params[0] == '\0') {
            /* A drive with no medium, whatever the keeper holds or the opener gave before. */
            if (p->fd1 > 0)
                close(p->fd1 - 1);
            p->fd1 = 0;
            *size = 0;
            return 0;
        }
        if (k->stale || d->acq == NULL || d->acq->nfds == 0)
            return blk_xen_medium(d, size, ro, lbs, pbs, nbd, why, len);
    }
    if (d->acq != NULL && d->acq->nfds > 0) {
        *size = d->acq->size;
        *ro = *ro || d->acq->readonly;
        return fd_blocks(d->acq->fds[0], lbs, pbs, why, len);
    }
    if (params[0] == '\0') {
        *size = 0; /* a drive with no medium */
        return 0;
    }
    if (!drv_own_targets(d->id.backend_domid)) {
        snprintf(why, len, "no fd for %s from dom0's broker: was it registered (bulkhead create)?",
                 params);
        return -1;
    }
    if ((fd = open(params, O_RDONLY | O_CLOEXEC)) < 0 || fd_size(fd, size) != 0) {
        snprintf(why, len, "target %s: %s", params, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    rc = fd_blocks(fd, lbs, pbs, why, len);
    close(fd);
    return rc;
}

/* A new connection to the disk's NBD server (the header comment says whence). */
static struct bhnbd *blk_nbd_connect(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    int sock;

    if (blk_xen_dd(d)) {
        /* Confined: the keeper's connection for the first, then the opener's (it connects). */
        uint64_t size;
        bool ro, nbd = true;

        if (k->nbd_conns == 0 && !k->stale && d->nfds > 0 && d->acq->nbd)
            sock = fcntl(d->fds[0], F_DUPFD_CLOEXEC, 0);
        else
            sock = drvdom_opener_disk(d->id.backend_kind, d->id.domid, d->id.devid, &size, &ro,
                                      &nbd, why, len);
        if (sock >= 0 && !nbd) {
            close(sock);
            sock = -1;
            errno = EINVAL;
            snprintf(why, len,
                     "params names no NBD server's socket any more (the medium changed): "
                     "the device must be probed again");
        }
        if (sock < 0)
            return NULL;
    } else if (drv_own_targets(d->id.backend_domid)) {
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
                 drv_own_targets(d->id.backend_domid) ? " at " : "",
                 drv_own_targets(d->id.backend_domid) ? k->target : "",
                 strerror(errno));
        return NULL;
    }
    k->nbd_conns++;
    return bhnbd_open(sock, why, len);
}

/* An NBD disk's size and flags, from a fresh connection that queue 0's engine will take. */
static int blk_nbd_medium(struct bhdev *d, const char *sockpath, uint64_t *size, bool *ro,
                          unsigned int *flush, unsigned int *discard, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    const struct bhblk_nbd_info *info;

    if (!drv_own_targets(d->id.backend_domid) && (d->acq == NULL || !d->acq->nbd)) {
        snprintf(why, len,
                 "backend key bulkhead-nbd is set but dom0's broker has no NBD server "
                 "for this disk: register it as one (bulkhead create does)");
        return -1;
    }
    if (drv_own_targets(d->id.backend_domid) && !blk_xen_dd(d))
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
    unsigned int discard_enable = 1, force_lbs = 0, dio_safe = 0;
    struct bhxb_key opt[] = {
        {"device-type", BHXB_STR, devtype, sizeof(devtype), false, 0},
        {"discard-enable", BHXB_UINT, &discard_enable, 0, false, 1},
        {"logical-block-size", BHXB_UINT, &force_lbs, 0, false, 4096},
        {"direct-io-safe", BHXB_UINT, &dio_safe, 0, false, 1},
        {"bulkhead-nbd", BHXB_STR, nbdsock, sizeof(nbdsock), false, 0},
    };
    unsigned int order = BLK_MAX_ORDER, one = 1, zero = 0, gran = 4096, maxind = BHBLK_MAX_INDIRECT;
    unsigned int discard = 0, queues = BLK_MAX_QUEUES, flush = 1;
    char hotplug[] = "connected";
    struct bhxb_key out[] = {
        {"max-ring-page-order", BHXB_UINT, &order, 0, false, 0},
        {"feature-flush-cache", BHXB_UINT, &flush, 0, false, 0},
        {"feature-barrier", BHXB_UINT, &flush, 0, false, 0},
        {"feature-max-indirect-segments", BHXB_UINT, &maxind, 0, false, 0},
        {"feature-persistent", BHXB_UINT, &one, 0, false, 0},
        {"multi-queue-max-queues", BHXB_UINT, &queues, 0, false, 0},
        {"feature-discard", BHXB_UINT, &discard, 0, false, 0},
        {"discard-granularity", BHXB_UINT, &gran, 0, false, 0},
        {"discard-alignment", BHXB_UINT, &zero, 0, false, 0},
        {"discard-secure", BHXB_UINT, &zero, 0, false, 0},
        {"hotplug-status", BHXB_STR, hotplug, sizeof(hotplug), false, 0},
    };

    if (bhxb_read_keys(d->xs, d->paths.backend, in, 2, &bad) != 0 ||
        bhxb_read_keys(d->xs, d->paths.backend, opt, 5, &bad) != 0) {
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
        unsigned int lbs, pbs;
        bool ro;
        /* qdisk's and vbd3's "<format>:<target>" (libxl's "aio:" for raw) */
        if (strncmp(params, "aio:", 4) == 0 || strncmp(params, "raw:", 4) == 0 ||
            strncmp(params, "vhd:", 4) == 0 || strncmp(params, "qcow2:", 6) == 0)
            target = strchr(params, ':') + 1;
        bool over_nbd = false;

        if (blk_xen_dd(d)) {
            /* A medium change (the toolstack rewrote params): the keeper's fd is the old one. */
            if (k->probed && strcmp(k->target, target) != 0)
                k->stale = 1;
            k->probed = 1;
            snprintf(k->target, sizeof(k->target), "%s", target);
        }
        k->nbd = nbdsock[0] != '\0' || (d->acq != NULL && d->acq->nbd && !k->stale);
        discard = discard_enable && strcmp(devtype, "cdrom") != 0;
        if (!k->nbd) {
            if (blk_medium(d, target, mode, &size, &ro, &lbs, &pbs, &over_nbd, why, len) != 0)
                return -1;
            if (!blk_xen_dd(d))
                snprintf(k->target, sizeof(k->target), "%s", target);
            k->nbd = over_nbd;
        }
        if (k->nbd) {
            ro = strcmp(mode, "r") == 0;
            lbs = pbs = BHBLK_SECTOR; /* what NBD addresses */
            if (blk_nbd_medium(d, nbdsock, &size, &ro, &flush, &discard, why, len) != 0)
                return -1;
        }
        if (force_lbs != 0) {
            /* the toolstack's logical-block-size: a larger sector than the storage's */
            if (force_lbs < lbs || (force_lbs & (force_lbs - 1)) != 0) {
                snprintf(why, len,
                         "backend key logical-block-size is %u: write a power of two from the "
                         "storage's own %u up to 4096",
                         force_lbs, lbs);
                return -1;
            }
            lbs = force_lbs;
            pbs = pbs > lbs ? pbs : lbs;
        }
        k->lbs = lbs;
        k->pbs = pbs;
        k->size = size - size % lbs; /* whole logical blocks only */
        k->readonly = ro;
        k->discard = discard = discard && !ro;
        k->flush = flush;
        k->direct_io_safe = dio_safe;
        k->cdrom = strcmp(devtype, "cdrom") == 0;
    }
    if (bhxb_write_keys(d->xs, d->paths.backend, out, sizeof(out) / sizeof(out[0])) != 0) {
        snprintf(why, len, "cannot publish the features: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "probed: params '%s', mode %s, %llu bytes, %u-byte sectors (physical %u)%s%s",
              params, mode, (unsigned long long)((struct blk_kept *)d->kept)->size,
              ((struct blk_kept *)d->kept)->lbs, ((struct blk_kept *)d->kept)->pbs,
              ((struct blk_kept *)d->kept)->readonly ? ", read-only" : "",
              ((struct blk_kept *)d->kept)->nbd ? ", over NBD" : "");
    return 0;
}

/*
 * The disk's fd: the keeper's (from the broker or the opener), a Xen
 * driver domain's medium from its opener (one the keeper does not hold),
 * or dom0's own open of the target.
 */
static int blk_disk_fd(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    if (d->nfds > 0 && !k->stale)
        return d->fds[0];
    if (blk_xen_dd(d)) {
        uint64_t size;
        bool ro, nbd = false;
        int fd;

        if (p->fd1 > 0)
            return p->fd1 - 1;
        if (k->target[0] == '\0') {
            snprintf(why, len, "cannot open (no medium): insert one first");
            return -1;
        }
        /* A restarted worker's: the opener opens what params names now. */
        fd = drvdom_opener_disk(d->id.backend_kind, d->id.domid, d->id.devid, &size, &ro, &nbd,
                                why, len);
        if (fd >= 0 && nbd) {
            close(fd);
            snprintf(why, len, "params names an NBD server's socket now: the device must be "
                               "probed again");
            return -1;
        }
        if (fd >= 0)
            p->fd1 = fd + 1;
        return fd;
    }
    if (p->fd1 == 0 && k->target[0] != '\0')
        p->fd1 = open(k->target, (k->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC) + 1;
    if (p->fd1 == 0)
        snprintf(why, len, "cannot open %s: %s", k->target[0] ? k->target : "(no medium)",
                 k->target[0] ? strerror(errno) : "insert one first");
    return p->fd1 - 1;
}

static void blk_detach(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    for (unsigned int i = 0; i < BLK_MAX_QUEUES; i++) {
        struct blk_queue *q = &p->q[i];

        bhblk_close(q->eng);
        q->eng = NULL;
        bhdev_unbind(d, q->port);
        q->port = 0;
        bhdev_unmap(d, q->pages, 1u << k->order);
        q->pages = NULL;
    }
    if (p->epfd1 > 0)
        close(p->epfd1 - 1);
    p->epfd1 = 0;
    bhnbd_close(p->nbd);
    p->nbd = NULL;
}

/* Maps each queue's ring, starts its engine (from the kept state) and binds the port it names. */
static int blk_attach(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    unsigned int n = 1u << k->order;
    struct bhblk_opts o = {.domid = d->id.domid, .gt = d->gnttab, .order = k->order,
                           .persistent = k->persistent != 0};
    int port;

    if (blk_tracing()) {
        o.trace = blk_trace_line;
        o.trace_arg = d;
    }
    /* New engines count from zero: so do the stats they are logged against. */
    memset(p->logged, 0, sizeof(p->logged));
    p->readies = 0;
    p->logged_wakes = 0;

    if (k->nbd) {
        o.fd = -1; /* each queue's engine gets a connection of its own below */
    } else if ((o.fd = blk_disk_fd(d, why, len)) < 0) {
        return -1;
    } else {
        /* A block device as Linux's blkback serves it, past the page cache;
         * a file through it unless the toolstack said direct-io-safe. */
        struct stat st;

        o.direct = k->direct_io_safe || (fstat(o.fd, &st) == 0 && S_ISBLK(st.st_mode));
    }
    o.geom = (struct bhblk_geom){.sectors = k->size / BHBLK_SECTOR, .readonly = k->readonly,
                                 .discard = k->discard, .max_indirect = BHBLK_MAX_INDIRECT,
                                 .sector_size = k->lbs, .ever_sectors = k->ever_size / BHBLK_SECTOR};
    /* Several io_urings, one descriptor for the worker's loop (drv.h's pollfd). */
    if (k->nqueues > 1 && (p->epfd1 = epoll_create1(EPOLL_CLOEXEC) + 1) == 0) {
        snprintf(why, len, "epoll_create1: %s", strerror(errno));
        return -1;
    }
    for (unsigned int i = 0; i < k->nqueues; i++) {
        struct blk_queue *q = &p->q[i];
        char qwhy[160];

        if ((q->pages = bhdev_map(d, k->q[i].refs, n, qwhy, sizeof(qwhy))) == NULL)
            goto fail;
        o.ring = q->pages;
        o.kept = &k->q[i].eng;
        if (k->nbd) {
            /* probe's connection for the first, or a new one (a restarted worker) */
            if (p->nbd == NULL && (p->nbd = blk_nbd_connect(d, qwhy, sizeof(qwhy))) == NULL)
                goto fail;
            o.nbd = p->nbd;
            p->nbd = NULL; /* the engine's now, even if bhblk_open fails */
        }
        if ((q->eng = bhblk_open(&o, qwhy, sizeof(qwhy))) == NULL)
            goto fail;
        if (p->epfd1 > 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

            if (epoll_ctl(p->epfd1 - 1, EPOLL_CTL_ADD, bhblk_fd(q->eng), &ev) != 0) {
                snprintf(qwhy, sizeof(qwhy), "epoll_ctl: %s", strerror(errno));
                goto fail;
            }
        }
        if ((port = bhdev_bind(d, k->q[i].remote_port, qwhy, sizeof(qwhy))) < 0)
            goto fail;
        q->port = (uint32_t)port;
        continue;
    fail:
        if (k->nqueues > 1)
            snprintf(why, len, "queue %u: %s", i, qwhy);
        else
            snprintf(why, len, "%s", qwhy);
        blk_detach(d);
        return -1;
    }
    k->connected = 1;
    return 0;
}

/*
 * multi-queue-num-queues, strictly: missing is one queue (a frontend that
 * never saw multi-queue-max-queues), 0 or more than we offer is a lie.
 */
static int blk_read_nqueues(struct bhdev *d, unsigned int *nq, char *why, size_t len)
{
    const char *bad = NULL;
    struct bhxb_key in[] = {{"multi-queue-num-queues", BHXB_UINT, nq, 0, false, 0}};

    *nq = 1;
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 1, &bad) != 0) {
        snprintf(why, len, "frontend key multi-queue-num-queues: %s (give 1..%u)", strerror(errno),
                 BLK_MAX_QUEUES);
        return -1;
    }
    if (*nq == 0 || *nq > BLK_MAX_QUEUES) {
        snprintf(why, len,
                 "frontend key multi-queue-num-queues is %u: give 1..%u "
                 "(our multi-queue-max-queues)",
                 *nq, BLK_MAX_QUEUES);
        return -1;
    }
    return 0;
}

/* One queue's ring references and port: top-level keys for one queue, queue-N/ for several. */
static int blk_read_queue(struct bhdev *d, unsigned int nq, unsigned int i, unsigned int order,
                          struct blk_queue_kept *q, char *why, size_t len)
{
    char prefix[24] = "", name[48];
    unsigned int port = 0;
    const char *bad = NULL;
    struct bhxb_key in[] = {{name, BHXB_UINT, &port, 0, true, EVTCHN_MAX}};

    if (nq > 1)
        snprintf(prefix, sizeof(prefix), "queue-%u/", i);
    snprintf(name, sizeof(name), "%sevent-channel", prefix);
    if (bhdev_read_refs(d, prefix, order, q->refs, why, len) != 0)
        return -1;
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 1, &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", name,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (port == 0) {
        snprintf(why, len, "frontend key %s: port 0 is never valid", name);
        return -1;
    }
    q->remote_port = port;
    return 0;
}

static int blk_connect(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;
    char proto[32] = XEN_IO_PROTO_ABI_NATIVE;
    unsigned int order, nq;
    const char *bad = NULL;
    bool persistent = false;
    struct bhxb_key in[] = {
        {"protocol", BHXB_STR, proto, sizeof(proto), false, 0},
        {"feature-persistent", BHXB_BOOL, &persistent, 0, false, 0},
    };
    unsigned long sectors = 0;
    unsigned int info = 0, sector_size = k->lbs ? k->lbs : 512, phys = k->pbs ? k->pbs : 512;
    /*
     * sectors counts 512-byte units whatever sector-size says, as Linux's
     * blkback and blkfront do and as io/blkif.h says since its 2024
     * "reconcile protocol specification with in-use implementations"
     * (older headers, Debian 12's too, said sector-size units, which no
     * implementation followed).
     */
    struct bhxb_key out[] = {
        {"sectors", BHXB_ULONG, &sectors, 0, false, 0},
        {"info", BHXB_UINT, &info, 0, false, 0},
        {"sector-size", BHXB_UINT, &sector_size, 0, false, 0},
        {"physical-sector-size", BHXB_UINT, &phys, 0, false, 0},
    };

    if (blk_read_nqueues(d, &nq, why, len) != 0 ||
        bhdev_read_ring_order(d, "", BLK_MAX_ORDER, &order, why, len) != 0)
        return -1;
    memset(k->q, 0, sizeof(k->q));
    k->connected = 0;
    k->kicks = 0;
    for (unsigned int i = 0; i < nq; i++)
        if (blk_read_queue(d, nq, i, order, &k->q[i], why, len) != 0)
            return -1;
    if (bhxb_read_keys(d->xs, d->paths.frontend, in, 2, &bad) != 0) {
        snprintf(why, len, "frontend key %s: %s", bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (strcmp(proto, XEN_IO_PROTO_ABI_NATIVE) != 0) {
        snprintf(why, len, "frontend protocol '%s' is not served: use %s", proto,
                 XEN_IO_PROTO_ABI_NATIVE);
        return -1;
    }
    sectors = (unsigned long)(k->size / 512);
    info = (k->readonly ? VDISK_READONLY : 0) | (k->cdrom ? VDISK_CDROM | VDISK_REMOVABLE : 0);
    k->order = order;
    k->nqueues = nq;
    k->persistent = persistent;
    k->ever_size = 0; /* a new ring: the frontend reads the size afresh */
    if (blk_attach(d, why, len) != 0)
        return -1;
    if (bhxb_write_keys(d->xs, d->paths.backend, out, 4) != 0) {
        snprintf(why, len, "cannot publish the disk's size: %s", strerror(errno));
        return -1;
    }
    bhdev_log(d, "connected: ring-ref %u (order %u), event channel %u -> port %u, %u queue%s",
              k->q[0].refs[0], order, k->q[0].remote_port,
              ((struct blk_priv *)d->priv)->q[0].port, nq, nq > 1 ? "s" : "");
    return 0;
}

static void blk_serve(struct bhdev *d);

static int blk_resume(struct bhdev *d, char *why, size_t len)
{
    struct blk_kept *k = d->kept;

    if (!k->connected || k->nqueues == 0 || k->nqueues > BLK_MAX_QUEUES) {
        snprintf(why, len, "the keeper holds no ring for a connected device");
        return -1;
    }
    if (blk_attach(d, why, len) != 0)
        return -1;
    bhdev_log(d,
              "resumed: ring-ref %u (order %u), event channel %u -> port %u, ring at %u, "
              "%llu kicks before, %u queue%s",
              k->q[0].refs[0], k->order, k->q[0].remote_port,
              ((struct blk_priv *)d->priv)->q[0].port, k->q[0].eng.ring.cons,
              (unsigned long long)k->kicks, k->nqueues, k->nqueues > 1 ? "s" : "");
    /*
     * A worker that died between taking requests and setting the request
     * event (bhblk_run's last step; all through a --blk-poll-us poll) left
     * the event behind: the frontend's pushes since asked for no
     * notification.  One pass now serves them and sets it.
     */
    blk_serve(d);
    return 0;
}

/*
 * Online resize: a medium that grew or shrank is published, and checked
 * against from now on.  sectors is written with state rewritten as it is,
 * in one transaction, so that a frontend watching the state reads the new
 * size (Linux's xen_vbd_resize; its blkfront re-reads sectors on a
 * Connected it sees again).  A shrink is published too, as Linux does:
 * requests past the new end are then answered with an error.
 */
static void blk_resize(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    char why[160];
    unsigned long sectors;
    struct bhxb_key out[] = {{"sectors", BHXB_ULONG, &sectors, 0, false, 0}};
    int fd = k->nbd ? -1 : blk_disk_fd(d, why, sizeof(why));
    uint64_t size;

    if (fd < 0 || fd_size(fd, &size) != 0)
        return;
    size -= size % (k->lbs ? k->lbs : 512);
    if (size == k->size)
        return;
    if (k->size > k->ever_size)
        k->ever_size = k->size;
    k->size = size;
    sectors = (unsigned long)(k->size / BHBLK_SECTOR);
    for (unsigned int i = 0; i < k->nqueues; i++)
        bhblk_set_sectors(p->q[i].eng, sectors);
    if (bhxb_write_keys_restate(d->xs, d->paths.backend, out, 1) != 0)
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

static uint64_t mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * One pass over every queue, bhblk_run's (arm) or bhblk_poll's, each
 * frontend end told as its engine says.  Returns the requests taken, or -1
 * when a frontend lied (the device is then failed).
 */
static int serve_queues(struct bhdev *d, bool arm)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    char why[200];
    uint64_t taken = 0;
    int rc;

    for (unsigned int i = 0; i < k->nqueues; i++) {
        uint64_t before = bhblk_get_stats(p->q[i].eng)->requests;

        rc = arm ? bhblk_run(p->q[i].eng, why, sizeof(why))
                 : bhblk_poll(p->q[i].eng, why, sizeof(why));
        if (rc < 0) {
            if (k->nqueues > 1)
                bhdev_fail(d, EPROTO, "the frontend lied on queue %u: %s", i, why);
            else
                bhdev_fail(d, EPROTO, "the frontend lied: %s", why);
            return -1;
        }
        if (rc > 0)
            bhdev_notify(d, p->q[i].port);
        if (!p->lost && bhblk_storage_error(p->q[i].eng) != NULL) {
            p->lost = true;
            blk_storage_lost(d, bhblk_storage_error(p->q[i].eng));
        }
        taken += bhblk_get_stats(p->q[i].eng)->requests - before;
    }
    return taken > 0;
}

/*
 * Every queue's ring and completions: served until nothing is left, then
 * its frontend end told.  The worker does not say which port fired, and a
 * queue with nothing to do costs two index reads.  The medium's size is
 * not looked at here (an fstat per wake-up, a third of the worker's system
 * calls at depth 32): blk_tick does, every second, which a resize by the
 * storage needs anyway.
 *
 * With --blk-poll-us, a serve that took requests goes on polling the
 * rings (bhblk_poll: the request events left behind, so the frontend does
 * not notify meanwhile) until blkback_poll_us pass with no new request,
 * bounded by BLK_POLL_MAX_US in all so that the worker's other
 * descriptors are looked at; then one armed pass before it sleeps.  At
 * depth this trades the driver domain's CPU for a notification and a
 * wake-up per batch; off by default, as netback's, since on a machine
 * whose CPUs the guests need the CPU it takes is theirs.
 */
#define BLK_POLL_MAX_US 1000u
static void blk_serve(struct bhdev *d)
{
    struct blk_priv *p = d->priv;
    uint64_t last, start;
    int r;

    if (p->q[0].eng == NULL)
        return;
    if (blkback_poll_us == 0)
        r = 0;
    else if ((r = serve_queues(d, false)) < 0)
        return;
    for (start = last = r > 0 ? mono_ns() : 0; last != 0;) {
        uint64_t t;

        if ((r = serve_queues(d, false)) < 0)
            return;
        t = mono_ns();
        if (r > 0)
            last = t;
        else if (t - last >= (uint64_t)blkback_poll_us * 1000u)
            break;
        if (t - start >= (uint64_t)BLK_POLL_MAX_US * 1000u)
            break;
    }
    serve_queues(d, true);
}

/*
 * What the requests cost since the engines started, logged when it moved:
 * per queue, the requests against the notifications sent, the
 * io_uring_enter calls and the grant maps, and for the worker its
 * wake-ups, so that a user sees how well a host batches (many requests
 * per notification and per enter at depth) without tracing the worker.
 */
static void blk_log_stats(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    bool moved = false;

    for (unsigned int i = 0; i < k->nqueues; i++) {
        const struct bhblk_stats *s = bhblk_get_stats(p->q[i].eng);

        if (memcmp(s, &p->logged[i], sizeof(*s)) == 0)
            continue;
        p->logged[i] = *s;
        moved = true;
        bhdev_log(d,
                  "stats: queue %u: requests %llu in %llu passes; responses pushed %llu times, "
                  "notifies sent %llu; io_uring_enter %llu; grant maps %llu, unmaps %llu",
                  i, (unsigned long long)s->requests, (unsigned long long)s->runs,
                  (unsigned long long)s->pushes, (unsigned long long)s->notifies,
                  (unsigned long long)s->enters, (unsigned long long)s->map_calls,
                  (unsigned long long)s->unmap_calls);
    }
    if (moved && k->kicks + p->readies != p->logged_wakes) {
        p->logged_wakes = k->kicks + p->readies;
        bhdev_log(d, "stats: wake-ups %llu: %llu by the event channel, %llu by completions",
                  (unsigned long long)p->logged_wakes, (unsigned long long)k->kicks,
                  (unsigned long long)p->readies);
    }
}

static void blk_tick(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;
    unsigned int n = 0;

    if (p->q[0].eng == NULL)
        return;
    blk_resize(d);
    for (unsigned int i = 0; i < k->nqueues; i++) {
        n += bhblk_tick(p->q[i].eng, blkback_grant_idle_ms);
        if (blk_tracing()) {
            char st[sizeof(p->traced[0])];

            bhblk_ring_state(p->q[i].eng, st, sizeof(st));
            if (strcmp(st, p->traced[i]) != 0) {
                bhdev_log(d, "trace: queue %u: %s, %llu kicks", i, st,
                          (unsigned long long)k->kicks);
                memcpy(p->traced[i], st, sizeof(st));
            }
        }
    }
    if (n > 0)
        bhdev_log(d, "unmapped %u persistent grants idle for %u ms or more", n,
                  blkback_grant_idle_ms);
    blk_log_stats(d);
}

static void blk_kick(struct bhdev *d)
{
    ((struct blk_kept *)d->kept)->kicks++;
    blk_serve(d);
}

static void blk_ready(struct bhdev *d)
{
    ((struct blk_priv *)d->priv)->readies++;
    blk_serve(d);
}

static int blk_pollfd(struct bhdev *d)
{
    struct blk_priv *p = d->priv;

    if (p->q[0].eng == NULL)
        return -1;
    return p->epfd1 > 0 ? p->epfd1 - 1 : bhblk_fd(p->q[0].eng);
}

static void blk_disconnect(struct bhdev *d)
{
    struct blk_kept *k = d->kept;
    struct blk_priv *p = d->priv;

    blk_detach(d);
    if (p->fd1 > 0)
        close(p->fd1 - 1);
    p->fd1 = 0;
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
    .ready = blk_ready,
    .tick = blk_tick,
    .tick_ms = 1000,
};
