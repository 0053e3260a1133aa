/*
 * blkfront.c - the device: negotiation, the bounce pool, splitting I/O
 * into ring requests over one or several queues, the hardened response
 * consumer, reissue after a reconnect.  See bhblkfront.h for the contract
 * and private.h for the locks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/protocols.h>

#include "private.h"

union blk_req {
    blkif_request_t rw;
    blkif_request_discard_t discard;
    blkif_request_indirect_t ind;
    uint8_t raw[128];
};

/* ---- breaking ---- */

static bool is_broken(bhblkfront *b)
{
    return __atomic_load_n(&b->broken, __ATOMIC_ACQUIRE);
}

/* Marks the device broken (from any thread, any lock).  The first reason stays. */
static void blk_break(bhblkfront *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void blk_break(bhblkfront *b, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&b->brlock);
    if (!b->broken) {
        va_start(ap, fmt);
        vsnprintf(b->why, sizeof(b->why), fmt, ap);
        va_end(ap);
        __atomic_store_n(&b->broken, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&b->brlock);
}

static void lock_all(bhblkfront *b)
{
    pthread_mutex_lock(&b->lock);
    for (unsigned int i = 0; i < b->wanted; i++)
        pthread_mutex_lock(&b->q[i].lock);
}

static void unlock_all(bhblkfront *b)
{
    for (unsigned int i = b->wanted; i-- > 0;)
        pthread_mutex_unlock(&b->q[i].lock);
    pthread_mutex_unlock(&b->lock);
}

/* ---- the pool ---- */

static void pool_unshare(bhblkfront *b)
{
    for (unsigned int i = 0; i < b->nbatch; i++) {
        unsigned int n = b->npool - i * BLK_BATCH;

        bhgntshr_unshare(b->cfg.gntshr, b->batch[i], n < BLK_BATCH ? n : BLK_BATCH);
    }
    b->nbatch = 0;
    for (unsigned int i = 0; i < b->wanted; i++)
        b->q[i].nfree = 0;
}

static int pool_share(bhblkfront *b)
{
    unsigned int nb = (b->npool + BLK_BATCH - 1) / BLK_BATCH;

    for (unsigned int i = 0; i < nb; i++) {
        unsigned int n = b->npool - i * BLK_BATCH;
        uint8_t *p;

        n = n < BLK_BATCH ? n : BLK_BATCH;
        p = bhgntshr_share_pages(b->cfg.gntshr, b->cfg.backend_domid, (int)n,
                                 &b->pref[i * BLK_BATCH], 1);
        if (p == NULL) {
            pool_unshare(b);
            return -1;
        }
        b->batch[b->nbatch++] = p;
        for (unsigned int j = 0; j < n; j++)
            b->pg[i * BLK_BATCH + j] = p + (size_t)j * BLK_PAGE;
    }
    /* Each queue of the connection gets a slice: a whole request's pages at least (new()). */
    for (unsigned int i = 0, base = 0; i < b->nq; i++) {
        struct blk_queue *q = &b->q[i];
        unsigned int n = b->npool / b->nq + (i < b->npool % b->nq);

        q->freepg = &b->freepg[base];
        for (unsigned int j = 0; j < n; j++)
            q->freepg[j] = base + n - 1 - j;
        q->nfree = n;
        base += n;
    }
    return 0;
}

/* ---- life ---- */

bhblkfront *bhblkfront_new(const struct bhblkfront_cfg *cfg)
{
    bhblkfront *b;

    if (cfg == NULL || cfg->xs == NULL || cfg->gntshr == NULL || cfg->evtchn == NULL ||
        cfg->dir == NULL || cfg->backend == NULL || cfg->ring_order > BHRING_MAX_ORDER ||
        cfg->queues > BHBLKFRONT_MAX_QUEUES) {
        errno = EINVAL;
        return NULL;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return NULL;
    b->cfg = *cfg;
    b->wanted = cfg->queues ? cfg->queues : BHBLKFRONT_QUEUES;
    b->nq = 1;
    b->npool = cfg->pool_pages ? cfg->pool_pages : BHBLKFRONT_POOL_PAGES;
    /* Every queue's slice holds the largest request (its data and indirect pages). */
    if (b->npool < b->wanted * (BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES))
        b->npool = b->wanted * (BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES);
    /*
     * A ring's worth of chunks per queue, and one more ring's worth spread
     * over them, so that after a reconnect every queue has some free ones
     * even when all the others wait to be reissued.
     */
    b->nchunks = (b->wanted + 1) * BLK_MAX_SLOTS;
    b->dir = strdup(cfg->dir);
    b->backend = strdup(cfg->backend);
    b->pg = calloc(b->npool, sizeof(*b->pg));
    b->pref = calloc(b->npool, sizeof(*b->pref));
    b->freepg = calloc(b->npool, sizeof(*b->freepg));
    b->batch = calloc((b->npool + BLK_BATCH - 1) / BLK_BATCH, sizeof(*b->batch));
    b->chunks = calloc(b->nchunks, sizeof(*b->chunks));
    b->q = calloc(b->wanted, sizeof(*b->q));
    if (!b->dir || !b->backend || !b->pg || !b->pref || !b->freepg || !b->batch || !b->chunks ||
        !b->q) {
        free(b->q);
        b->q = NULL;
        bhblkfront_free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->cfg.dir = b->dir;
    b->cfg.backend = b->backend;
    for (unsigned int i = 0; i < b->wanted; i++) {
        b->q[i].idx = i;
        b->q[i].port = -1;
        pthread_mutex_init(&b->q[i].lock, NULL);
    }
    for (unsigned int i = b->nchunks; i-- > 0;) {
        struct blk_queue *q = &b->q[i % b->wanted];

        b->chunks[i].next = q->freech;
        q->freech = &b->chunks[i];
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->evlock, NULL);
    pthread_mutex_init(&b->brlock, NULL);
    return b;
}

/* Runs the callbacks of a list of finished I/Os (no lock held) and frees them. */
static int run_done(struct blk_io *list)
{
    int n = 0;

    while (list != NULL) {
        struct blk_io *io = list;

        list = io->next;
        io->done(io->arg, io->err);
        free(io);
        n++;
    }
    return n;
}

static void push_done(struct blk_io **list, struct blk_io *io)
{
    io->next = *list;
    *list = io;
}

static void chunk_fail(struct blk_queue *q, struct blk_chunk *c, int err, struct blk_io **done);

/* Fails every I/O queued or requeued on q (its lock held): chunks on the ring stay. */
static void fail_queued(struct blk_queue *q, int err, struct blk_io **done)
{
    while (q->reissue != NULL) {
        struct blk_chunk *c = q->reissue;

        q->reissue = c->next;
        chunk_fail(q, c, err, done);
    }
    q->reissue_tail = NULL;
    while (q->qhead != NULL) {
        struct blk_io *io = q->qhead;

        q->qhead = io->next;
        io->err = err;
        io->issued = io->len; /* nothing more goes out */
        if (io->outstanding == 0) {
            push_done(done, io);
            q->nio--;
        }
    }
    q->qtail = NULL;
}

/* Every lock held. */
static void disconnect_locked(bhblkfront *b)
{
    /* Chunks on a ring go back, in any order, to be reissued on the next connection. */
    for (unsigned int i = 0; i < b->nchunks; i++) {
        struct blk_chunk *c = &b->chunks[i];
        struct blk_queue *q = &b->q[c->q];

        if (!c->onring)
            continue;
        c->onring = false;
        c->npages = c->nind = 0;
        c->next = NULL;
        if (q->reissue_tail)
            q->reissue_tail->next = c;
        else
            q->reissue = c;
        q->reissue_tail = c;
    }
    for (unsigned int i = 0; i < b->wanted; i++) {
        struct blk_queue *q = &b->q[i];

        if (q->port >= 0) {
            pthread_mutex_lock(&b->evlock);
            bhevtchn_unbind(b->cfg.evtchn, (uint32_t)q->port);
            pthread_mutex_unlock(&b->evlock);
            q->port = -1;
        }
        if (q->ring_pages != NULL)
            bhgntshr_unshare(b->cfg.gntshr, q->ring_pages, 1u << b->info.ring_order);
        q->ring_pages = NULL;
        bhring_ids_free(q->ids);
        q->ids = NULL;
        q->busy = 0;
    }
    pool_unshare(b);
    b->published = b->connected = false;
}

void bhblkfront_disconnect(bhblkfront *b)
{
    lock_all(b);
    disconnect_locked(b);
    unlock_all(b);
}

int bhblkfront_set_backend(bhblkfront *b, const char *backend, uint32_t backend_domid)
{
    char *copy;
    int rc = 0;

    if (b == NULL || backend == NULL || (copy = strdup(backend)) == NULL) {
        errno = b == NULL || backend == NULL ? EINVAL : ENOMEM;
        return -1;
    }
    lock_all(b);
    /* Grants and ports name the domain they were made for: only between connections. */
    if (b->published || b->connected) {
        rc = -1;
        free(copy);
    } else {
        free(b->backend);
        b->backend = copy;
        b->cfg.backend = copy;
        b->cfg.backend_domid = backend_domid;
    }
    unlock_all(b);
    if (rc != 0)
        errno = EBUSY;
    return rc;
}

void bhblkfront_free(bhblkfront *b)
{
    struct blk_io *done = NULL;

    if (b == NULL)
        return;
    if (b->q != NULL) {
        lock_all(b);
        disconnect_locked(b);
        for (unsigned int i = 0; i < b->wanted; i++)
            fail_queued(&b->q[i], ECANCELED, &done);
        unlock_all(b);
        run_done(done);
        for (unsigned int i = 0; i < b->wanted; i++)
            pthread_mutex_destroy(&b->q[i].lock);
        pthread_mutex_destroy(&b->lock);
        pthread_mutex_destroy(&b->evlock);
        pthread_mutex_destroy(&b->brlock);
    }
    free(b->q);
    free(b->dir);
    free(b->backend);
    free(b->pg);
    free(b->pref);
    free(b->freepg);
    free(b->batch);
    free(b->chunks);
    free(b);
}

/* ---- negotiation ---- */

static int read_backend_publish_keys(bhblkfront *b, char *why, size_t len)
{
    unsigned int order = 0, queues = 1, trusted = 1;
    const char *bad = NULL;
    struct bhxb_key be[] = {
        {"max-ring-page-order", BHXB_UINT, &order, 0, false, 16},
        {"multi-queue-max-queues", BHXB_UINT, &queues, 0, false, 65536},
    };
    struct bhxb_key fe[] = {{"trusted", BHXB_UINT, &trusted, 0, false, 1}};

    if (bhxb_read_keys(b->cfg.xs, b->backend, be, 2, &bad) != 0) {
        snprintf(why, len, "backend key %s: %s", bad, strerror(errno));
        return -1;
    }
    if (bhxb_read_keys(b->cfg.xs, b->dir, fe, 1, &bad) != 0) {
        snprintf(why, len, "our key %s must be 0 or 1: %s", bad, strerror(errno));
        return -1;
    }
    b->offered_order = order;
    /* 0 offers nothing more than no key: one queue, top-level keys. */
    b->info.backend_max_queues = queues ? queues : 1;
    b->info.trusted = trusted != 0;
    return 0;
}

/*
 * A publish after a reconnect may choose another ring order or queue
 * count: the keys of the other layouts go first, so the backend never
 * reads a mix.  The backend reads them only after Initialised, which comes
 * later.
 */
static void remove_stale_refs(bhblkfront *b, unsigned int order, unsigned int nq)
{
    char path[BHXB_PATH_MAX + 32];

    if (nq > 1) {
        /* Every queue's keys are under queue-N/: none at the top. */
        snprintf(path, sizeof(path), "%s/ring-ref", b->dir);
        xs_rm(b->cfg.xs, XBT_NULL, path);
        snprintf(path, sizeof(path), "%s/event-channel", b->dir);
        xs_rm(b->cfg.xs, XBT_NULL, path);
        for (unsigned int i = 0; i < 16; i++) {
            snprintf(path, sizeof(path), "%s/ring-ref%u", b->dir, i);
            xs_rm(b->cfg.xs, XBT_NULL, path);
        }
    } else {
        snprintf(path, sizeof(path), "%s/multi-queue-num-queues", b->dir);
        xs_rm(b->cfg.xs, XBT_NULL, path);
    }
    for (unsigned int i = 0; i < BHBLKFRONT_MAX_QUEUES; i++) {
        snprintf(path, sizeof(path), "%s/queue-%u", b->dir, i);
        xs_rm(b->cfg.xs, XBT_NULL, path);
    }
    if (order == 0) {
        snprintf(path, sizeof(path), "%s/ring-page-order", b->dir);
        xs_rm(b->cfg.xs, XBT_NULL, path);
    }
    if (nq == 1) {
        snprintf(path, sizeof(path), "%s/ring-ref", b->dir);
        if (order > 0)
            xs_rm(b->cfg.xs, XBT_NULL, path);
        for (unsigned int i = order == 0 ? 0 : 1u << order; i < 16; i++) {
            snprintf(path, sizeof(path), "%s/ring-ref%u", b->dir, i);
            xs_rm(b->cfg.xs, XBT_NULL, path);
        }
    }
}

/*
 * The I/O of queues this connection no longer has goes to the others, and
 * the free chunks are dealt out again over the queues in use (every lock
 * held, disconnected: no chunk is on a ring).
 */
static void requeue(bhblkfront *b, unsigned int nq)
{
    struct blk_chunk *free = NULL;

    for (unsigned int i = nq; i < b->wanted; i++) {
        struct blk_queue *from = &b->q[i], *to = &b->q[i % nq];

        if (from->reissue != NULL) {
            if (to->reissue_tail)
                to->reissue_tail->next = from->reissue;
            else
                to->reissue = from->reissue;
            to->reissue_tail = from->reissue_tail;
            for (struct blk_chunk *c = from->reissue; c != NULL; c = c->next)
                c->q = (uint16_t)to->idx;
        }
        if (from->qhead != NULL) {
            if (to->qtail)
                to->qtail->next = from->qhead;
            else
                to->qhead = from->qhead;
            to->qtail = from->qtail;
        }
        to->nio += from->nio;
        from->reissue = from->reissue_tail = NULL;
        from->qhead = from->qtail = NULL;
        from->nio = 0;
    }
    for (unsigned int i = 0; i < b->wanted; i++) {
        while (b->q[i].freech != NULL) {
            struct blk_chunk *c = b->q[i].freech;

            b->q[i].freech = c->next;
            c->next = free;
            free = c;
        }
    }
    for (unsigned int i = 0; free != NULL; i = (i + 1) % nq) {
        struct blk_chunk *c = free;

        free = c->next;
        c->next = b->q[i].freech;
        b->q[i].freech = c;
    }
}

/* Grants queue q's ring, sets up its ids and binds its port (every lock held). */
static int queue_publish(bhblkfront *b, struct blk_queue *q, unsigned int order, char *why,
                         size_t len)
{
    unsigned int slots = bhring_type_nr_ents(&bhring_blkif, order);

    q->ring_pages =
        bhgntshr_share_pages(b->cfg.gntshr, b->cfg.backend_domid, 1 << order, q->ring_refs, 1);
    if (q->ring_pages == NULL) {
        snprintf(why, len, "cannot grant the ring of queue %u: %s", q->idx, strerror(errno));
        return -1;
    }
    if (bhring_attach(&q->ring, &bhring_blkif, BHRING_FRONT, q->ring_pages, order, 0, true) != 0 ||
        (q->ids = bhring_ids_new(slots, 64)) == NULL) {
        snprintf(why, len, "cannot initialise the ring of queue %u: %s", q->idx, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&b->evlock);
    q->port = bhevtchn_bind_unbound_port(b->cfg.evtchn, b->cfg.backend_domid);
    pthread_mutex_unlock(&b->evlock);
    if (q->port < 0) {
        snprintf(why, len, "cannot allocate an event channel for queue %u: %s", q->idx,
                 strerror(errno));
        return -1;
    }
    q->no_flush = q->no_discard = false;
    return 0;
}

/* The keys of queue q (prefix "" or "queue-N/") into out from n; returns the new n. */
static size_t queue_keys(struct blk_queue *q, unsigned int order, const char *prefix,
                         char (*names)[32], unsigned int *port, struct bhxb_key *out, size_t n)
{
    unsigned int k = 0;

    if (order == 0) {
        snprintf(names[k], sizeof(names[k]), "%sring-ref", prefix);
        out[n++] = (struct bhxb_key){names[k++], BHXB_UINT, &q->ring_refs[0], 0, false, 0};
    } else {
        for (unsigned int i = 0; i < (1u << order); i++) {
            snprintf(names[k], sizeof(names[k]), "%sring-ref%u", prefix, i);
            out[n++] = (struct bhxb_key){names[k++], BHXB_UINT, &q->ring_refs[i], 0, false, 0};
        }
    }
    *port = (unsigned int)q->port;
    snprintf(names[k], sizeof(names[k]), "%sevent-channel", prefix);
    out[n++] = (struct bhxb_key){names[k], BHXB_UINT, port, 0, false, 0};
    return n;
}

#define KEYS_PER_QUEUE 17 /* ring-ref0..15, event-channel */

int bhblkfront_publish(bhblkfront *b, char *why, size_t len)
{
    unsigned int order, persist, nq;
    char proto[] = XEN_IO_PROTO_ABI_NATIVE;
    char (*names)[32] = NULL;
    unsigned int *ports = NULL;
    struct bhxb_key *out = NULL;
    size_t n = 0;
    int rc = -1;

    lock_all(b);
    disconnect_locked(b);
    if (is_broken(b)) {
        pthread_mutex_lock(&b->brlock);
        snprintf(why, len, "the device is broken: %s", b->why);
        pthread_mutex_unlock(&b->brlock);
        goto out;
    }
    if (read_backend_publish_keys(b, why, len) != 0)
        goto out;
    order = b->cfg.ring_order < b->offered_order ? b->cfg.ring_order : b->offered_order;
    nq = b->wanted < b->info.backend_max_queues ? b->wanted : b->info.backend_max_queues;
    names = calloc((size_t)nq * KEYS_PER_QUEUE, sizeof(*names));
    ports = calloc(nq, sizeof(*ports));
    out = calloc((size_t)nq * KEYS_PER_QUEUE + 4, sizeof(*out));
    if (names == NULL || ports == NULL || out == NULL) {
        snprintf(why, len, "cannot publish: %s", strerror(ENOMEM));
        goto out;
    }
    requeue(b, nq);
    __atomic_store_n(&b->nq, nq, __ATOMIC_RELEASE);
    b->info.queues = nq;
    b->info.ring_order = order;
    b->info.ring_slots = bhring_type_nr_ents(&bhring_blkif, order);
    for (unsigned int i = 0; i < nq; i++)
        if (queue_publish(b, &b->q[i], order, why, len) != 0)
            goto out;
    if (pool_share(b) != 0) {
        snprintf(why, len, "cannot grant the data pool of %u pages: %s", b->npool, strerror(errno));
        goto out;
    }
    if (order > 0)
        out[n++] =
            (struct bhxb_key){"ring-page-order", BHXB_UINT, &b->info.ring_order, 0, false, 0};
    if (nq == 1) {
        n = queue_keys(&b->q[0], order, "", names, &ports[0], out, n);
    } else {
        out[n++] = (struct bhxb_key){"multi-queue-num-queues", BHXB_UINT, &b->info.queues, 0,
                                     false, 0};
        for (unsigned int i = 0; i < nq; i++) {
            char prefix[24];

            snprintf(prefix, sizeof(prefix), "queue-%u/", i);
            n = queue_keys(&b->q[i], order, prefix, &names[i * KEYS_PER_QUEUE], &ports[i], out, n);
        }
    }
    remove_stale_refs(b, order, nq);
    persist = b->cfg.no_persistent ? 0 : 1;
    out[n++] = (struct bhxb_key){"protocol", BHXB_STR, proto, sizeof(proto), false, 0};
    out[n++] = (struct bhxb_key){"feature-persistent", BHXB_UINT, &persist, 0, false, 0};
    if (bhxb_write_keys(b->cfg.xs, b->dir, out, n) != 0) {
        snprintf(why, len, "cannot publish the rings: %s", strerror(errno));
        goto out;
    }
    b->published = true;
    rc = 0;
out:
    if (rc != 0)
        disconnect_locked(b);
    unlock_all(b);
    free(names);
    free(ports);
    free(out);
    return rc;
}

static int read_connect_keys(bhblkfront *b, struct bhblkfront_info *in, char *why, size_t len)
{
    unsigned long sectors = 0;
    bool persistent = false, flush = false, barrier = false, discard = false, secure = false;
    unsigned int indirect = 0;
    const char *bad = NULL;
    struct bhxb_key keys[] = {
        {"sectors", BHXB_ULONG, &sectors, 0, true, 0},
        {"info", BHXB_UINT, &in->info, 0, false, 0},
        {"sector-size", BHXB_UINT, &in->sector_size, 0, false, 65536},
        {"physical-sector-size", BHXB_UINT, &in->physical_sector_size, 0, false, 0},
        {"feature-persistent", BHXB_BOOL, &persistent, 0, false, 0},
        {"feature-max-indirect-segments", BHXB_UINT, &indirect, 0, false, 0},
        {"feature-flush-cache", BHXB_BOOL, &flush, 0, false, 0},
        {"feature-barrier", BHXB_BOOL, &barrier, 0, false, 0},
        {"feature-discard", BHXB_BOOL, &discard, 0, false, 0},
        {"discard-secure", BHXB_BOOL, &secure, 0, false, 0},
        {"discard-granularity", BHXB_UINT, &in->discard_granularity, 0, false, 0},
        {"discard-alignment", BHXB_UINT, &in->discard_alignment, 0, false, 0},
    };

    in->sector_size = 512;
    in->physical_sector_size = 0;
    in->info = 0;
    in->discard_granularity = in->discard_alignment = 0;
    if (bhxb_read_keys(b->cfg.xs, b->backend, keys, sizeof(keys) / sizeof(keys[0]), &bad) != 0) {
        snprintf(why, len, "backend key %s: %s", bad,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (in->sector_size < 512 || (in->sector_size & (in->sector_size - 1)) != 0) {
        snprintf(why, len, "backend key sector-size: %u is no power of two from 512",
                 in->sector_size);
        return -1;
    }
    if (in->physical_sector_size == 0)
        in->physical_sector_size = in->sector_size;
    if (in->physical_sector_size < in->sector_size ||
        (in->physical_sector_size & (in->physical_sector_size - 1)) != 0) {
        snprintf(why, len,
                 "backend key physical-sector-size: %u is no power of two from sector-size %u",
                 in->physical_sector_size, in->sector_size);
        return -1;
    }
    /* 512-byte units whatever sector-size is (Linux's reading, and io/blkif.h's since 2024) */
    if (sectors > UINT64_MAX / 512) {
        snprintf(why, len, "backend key sectors: %lu sectors of 512 bytes overflow", sectors);
        return -1;
    }
    in->sectors = sectors;
    in->persistent = persistent && !b->cfg.no_persistent;
    in->indirect = indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST && !b->cfg.no_indirect;
    in->max_segments = BLKIF_MAX_SEGMENTS_PER_REQUEST;
    if (in->indirect)
        in->max_segments = indirect < BHBLKFRONT_MAX_INDIRECT ? indirect : BHBLKFRONT_MAX_INDIRECT;
    if ((uint64_t)in->max_segments * BLK_PAGE < in->sector_size) {
        snprintf(why, len, "backend key sector-size: %u bytes do not fit in a request of %u pages",
                 in->sector_size, in->max_segments);
        return -1;
    }
    in->flush = flush || barrier;
    in->barrier = !flush && barrier;
    in->discard = discard;
    in->discard_secure = discard && secure;
    return 0;
}

static int pump(bhblkfront *b, struct blk_queue *q, struct blk_io **done);

int bhblkfront_refresh(bhblkfront *b, char *why, size_t len)
{
    unsigned long sectors = 0;
    const char *bad = NULL;
    struct bhxb_key key = {"sectors", BHXB_ULONG, &sectors, 0, true, 0};
    int rc = -1;

    lock_all(b); /* submitters read the size under their queue's lock */
    if (!b->connected) {
        snprintf(why, len, "refresh while not connected");
        errno = ENOTCONN;
    } else if (bhxb_read_keys(b->cfg.xs, b->backend, &key, 1, &bad) != 0) {
        snprintf(why, len, "backend key sectors: %s",
                 errno == ENOENT ? "missing" : strerror(errno));
    } else if (sectors > UINT64_MAX / 512) {
        snprintf(why, len, "backend key sectors: %lu sectors of 512 bytes overflow", sectors);
        errno = ERANGE;
    } else {
        rc = b->info.sectors != sectors;
        b->info.sectors = sectors;
    }
    unlock_all(b);
    return rc;
}

int bhblkfront_connect(bhblkfront *b, char *why, size_t len)
{
    struct bhblkfront_info in;
    struct blk_io *done = NULL;
    int rc = -1;

    lock_all(b);
    in = b->info;
    if (!b->published) {
        snprintf(why, len, "connect before publish");
        goto out;
    }
    if (read_connect_keys(b, &in, why, len) != 0)
        goto out;
    b->info = in;
    b->connected = b->ever_connected = true;
    for (unsigned int i = 0; i < b->nq; i++)
        pump(b, &b->q[i], &done);
    rc = 0;
out:
    unlock_all(b);
    run_done(done);
    return rc;
}

/* ---- requests out ---- */

static void chunk_free(struct blk_queue *q, struct blk_chunk *c)
{
    for (unsigned int i = 0; i < (unsigned int)c->npages + c->nind; i++)
        q->freepg[q->nfree++] = c->page[i];
    c->npages = c->nind = 0;
    c->io = NULL;
    c->next = q->freech;
    q->freech = c;
}

static unsigned int chunk_pages(const struct blk_chunk *c)
{
    return (unsigned int)((c->len + BLK_PAGE - 1) / BLK_PAGE);
}

/* Fills the chunk's data pages (writes) and builds its request. */
static void build_rw(bhblkfront *b, struct blk_chunk *c, union blk_req *r)
{
    struct blk_io *io = c->io;
    unsigned int nseg = chunk_pages(c);
    struct blkif_request_segment *seg = r->rw.seg;
    uint8_t op = io->op == BHBLKFRONT_READ ? BLKIF_OP_READ : BLKIF_OP_WRITE;

    for (unsigned int i = 0; i < nseg; i++) {
        uint64_t off = (uint64_t)i * BLK_PAGE;
        size_t n = c->len - off < BLK_PAGE ? (size_t)(c->len - off) : BLK_PAGE;
        uint8_t *pg = b->pg[c->page[i]];

        if (op == BLKIF_OP_WRITE)
            memcpy(pg, io->buf + c->off + off, n);
        /* XSA-403: the rest of the page holds nothing the backend may see. */
        if (!b->info.trusted && n < BLK_PAGE)
            memset(pg + n, 0, BLK_PAGE - n);
        if (c->nind > 0)
            seg = (struct blkif_request_segment *)
                      b->pg[c->page[nseg + i / BLK_SEGS_PER_INDIRECT_PAGE]] +
                  i % BLK_SEGS_PER_INDIRECT_PAGE;
        else
            seg = &r->rw.seg[i];
        seg->gref = b->pref[c->page[i]];
        seg->first_sect = 0;
        seg->last_sect = (uint8_t)(n / 512 - 1);
    }
    c->rw_op = op;
    if (c->nind > 0) {
        c->op = BLKIF_OP_INDIRECT;
        r->ind.operation = BLKIF_OP_INDIRECT;
        r->ind.indirect_op = op;
        r->ind.nr_segments = (uint16_t)nseg;
        r->ind.sector_number = (io->off + c->off) / 512;
        for (unsigned int j = 0; j < c->nind; j++)
            r->ind.indirect_grefs[j] = b->pref[c->page[nseg + j]];
    } else {
        c->op = op;
        r->rw.operation = op;
        r->rw.nr_segments = (uint8_t)nseg;
        r->rw.sector_number = (io->off + c->off) / 512;
    }
}

/* The next chunk to put on q's ring, or NULL (q's lock held). */
static struct blk_chunk *next_chunk(bhblkfront *b, struct blk_queue *q)
{
    uint64_t cap = (uint64_t)b->info.max_segments * BLK_PAGE;
    struct blk_chunk *c;
    struct blk_io *io;

    cap -= cap % b->info.sector_size; /* every request in whole logical sectors (connect: >= 1) */

    if (q->reissue != NULL) {
        c = q->reissue;
        io = c->io;
        /* The new connection may carry less per request: split off what fits. */
        if ((io->op == BHBLKFRONT_READ || io->op == BHBLKFRONT_WRITE) && c->len > cap) {
            struct blk_chunk *head = q->freech;

            if (head == NULL)
                return NULL;
            q->freech = head->next;
            *head = (struct blk_chunk){.io = io, .off = c->off, .len = cap};
            c->off += cap;
            c->len -= cap;
            io->outstanding++;
            return head;
        }
        q->reissue = c->next;
        if (q->reissue == NULL)
            q->reissue_tail = NULL;
        return c;
    }
    if ((io = q->qhead) != NULL && q->freech != NULL) {
        uint64_t n = io->len - io->issued;

        if (io->op == BHBLKFRONT_FLUSH) {
            n = 1;
        } else if (io->op == BHBLKFRONT_DISCARD) {
            n = n > (1ull << 30) ? (1ull << 30) : n;
        } else {
            n = n > cap ? cap : n;
        }
        c = q->freech;
        q->freech = c->next;
        *c = (struct blk_chunk){.io = io, .off = io->issued, .len = n};
        io->issued += n;
        io->outstanding++;
        if (io->issued >= io->len) {
            q->qhead = io->next;
            if (q->qhead == NULL)
                q->qtail = NULL;
        }
        return c;
    }
    return NULL;
}

/* Returns a chunk taken by next_chunk that cannot go out now to the head of the reissue list. */
static void unget_chunk(struct blk_queue *q, struct blk_chunk *c)
{
    c->next = q->reissue;
    q->reissue = c;
    if (q->reissue_tail == NULL)
        q->reissue_tail = c;
}

/* A chunk that cannot be issued on this connection (its feature went away). */
static void chunk_fail(struct blk_queue *q, struct blk_chunk *c, int err, struct blk_io **done)
{
    struct blk_io *io = c->io;

    io->err = err;
    chunk_free(q, c);
    if (--io->outstanding == 0 && io->issued >= io->len && io != q->qhead) {
        push_done(done, io);
        q->nio--;
    }
}

/* Issues what fits on q's ring and in its pool slice; notifies once (q's lock held). */
static int pump(bhblkfront *b, struct blk_queue *q, struct blk_io **done)
{
    struct blk_chunk *c;
    int put = 0;

    if (!b->connected || is_broken(b))
        return 0;
    while (bhring_front_free(&q->ring) > 0 && (c = next_chunk(b, q)) != NULL) {
        union blk_req r;
        unsigned int need = 0, nseg = 0, nind = 0;
        uint64_t id;

        memset(&r, 0, sizeof(r));
        if (c->io->op == BHBLKFRONT_READ || c->io->op == BHBLKFRONT_WRITE) {
            nseg = chunk_pages(c);
            nind = nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST
                       ? (nseg + BLK_SEGS_PER_INDIRECT_PAGE - 1) / BLK_SEGS_PER_INDIRECT_PAGE
                       : 0;
            need = nseg + nind;
        } else if ((c->io->op == BHBLKFRONT_FLUSH && (!b->info.flush || q->no_flush)) ||
                   (c->io->op == BHBLKFRONT_DISCARD && (!b->info.discard || q->no_discard))) {
            chunk_fail(q, c, ENOTSUP, done);
            continue;
        }
        if (need > q->nfree) {
            unget_chunk(q, c);
            break;
        }
        for (unsigned int i = 0; i < need; i++)
            c->page[i] = q->freepg[--q->nfree];
        c->npages = (uint16_t)nseg;
        c->nind = (uint16_t)nind;
        if (nseg > 0) {
            build_rw(b, c, &r);
        } else if (c->io->op == BHBLKFRONT_FLUSH) {
            c->op = b->info.barrier ? BLKIF_OP_WRITE_BARRIER : BLKIF_OP_FLUSH_DISKCACHE;
            r.rw.operation = c->op;
            r.rw.sector_number = 0;
        } else {
            c->op = BLKIF_OP_DISCARD;
            r.discard.operation = BLKIF_OP_DISCARD;
            r.discard.sector_number = (c->io->off + c->off) / 512;
            r.discard.nr_sectors = c->len / 512;
        }
        if (bhring_ids_get(q->ids, c, &id) != 0) {
            unget_chunk(q, c); /* cannot happen: ids = slots >= free slots */
            break;
        }
        if (c->op == BLKIF_OP_INDIRECT)
            r.ind.id = id;
        else if (c->op == BLKIF_OP_DISCARD)
            r.discard.id = id;
        else
            r.rw.id = id;
        if (bhring_front_put(&q->ring, &r) != 0) {
            void *cookie;

            bhring_ids_put(q->ids, id, &cookie);
            unget_chunk(q, c);
            break;
        }
        c->onring = true;
        c->q = (uint16_t)q->idx;
        q->busy++;
        put++;
    }
    if (put > 0 && bhring_front_push(&q->ring) == 1) {
        pthread_mutex_lock(&b->evlock);
        bhevtchn_notify(b->cfg.evtchn, (uint32_t)q->port);
        pthread_mutex_unlock(&b->evlock);
    }
    return put;
}

/* Each thread's ticket, dealt round robin at its first call: its queue is ticket mod the count. */
static atomic_uint next_ticket;
static __thread unsigned int my_ticket; /* 0: none yet */

unsigned int bhblkfront_queue(bhblkfront *b)
{
    if (my_ticket == 0)
        my_ticket = atomic_fetch_add(&next_ticket, 1) + 1;
    return (my_ticket - 1) % __atomic_load_n(&b->nq, __ATOMIC_ACQUIRE);
}

/*
 * Locks and returns queue `queue` modulo the count.  The count changes only
 * with every lock held, so it is checked again once the lock is ours.
 */
static struct blk_queue *lock_queue(bhblkfront *b, unsigned int queue)
{
    for (;;) {
        unsigned int nq = __atomic_load_n(&b->nq, __ATOMIC_ACQUIRE);
        struct blk_queue *q = &b->q[queue % nq];

        pthread_mutex_lock(&q->lock);
        if (b->nq == nq)
            return q;
        pthread_mutex_unlock(&q->lock);
    }
}

static bool consume_locked(bhblkfront *b, struct blk_queue *q, struct blk_io **done);
static int after_break(bhblkfront *b, struct blk_io **done);

int bhblkfront_submit_queue(bhblkfront *b, unsigned int queue, enum bhblkfront_op op,
                            uint64_t offset, uint64_t len, void *buf, bhblkfront_done_fn *done,
                            void *arg)
{
    struct blk_io *io = NULL, *fin = NULL;
    struct blk_queue *q;
    uint64_t size;
    bool broken = false;
    int rc = -1;

    if (done == NULL || (unsigned int)op > BHBLKFRONT_DISCARD ||
        ((op == BHBLKFRONT_READ || op == BHBLKFRONT_WRITE) && buf == NULL && len > 0)) {
        errno = EINVAL;
        return -1;
    }
    q = lock_queue(b, queue);
    size = b->info.sectors * 512;
    size -= size % b->info.sector_size; /* whole logical sectors only */
    if (is_broken(b)) {
        errno = EIO;
    } else if (!b->ever_connected) {
        errno = EAGAIN;
    } else if (op != BHBLKFRONT_FLUSH && ((offset | len) % b->info.sector_size != 0 ||
                                          offset > size || len > size - offset)) {
        errno = EINVAL;
    } else if ((op == BHBLKFRONT_WRITE || op == BHBLKFRONT_DISCARD) && (b->info.info & 4)) {
        errno = EROFS;
    } else if ((op == BHBLKFRONT_FLUSH && (!b->info.flush || q->no_flush)) ||
               (op == BHBLKFRONT_DISCARD && (!b->info.discard || q->no_discard))) {
        errno = ENOTSUP;
    } else if ((io = calloc(1, sizeof(*io))) == NULL) {
        errno = ENOMEM;
    } else {
        *io = (struct blk_io){.op = op,
                              .off = offset,
                              .len = op == BHBLKFRONT_FLUSH ? 1 : len,
                              .buf = buf,
                              .done = done,
                              .arg = arg};
        q->nio++;
        if (io->len == 0) {
            push_done(&fin, io);
            q->nio--;
        } else {
            if (q->qtail)
                q->qtail->next = io;
            else
                q->qhead = io;
            q->qtail = io;
            /*
             * Responses already on the ring are completed here, by the
             * submitter that holds the lock anyway, instead of waiting
             * for the event thread's wake-up (45-58 us across CPUs on a
             * loaded machine): at depth the ring always has some, and
             * their slots are then free for this request at once.
             */
            if (b->published && q->idx < b->nq)
                broken = consume_locked(b, q, &fin);
            else
                pump(b, q, &fin);
        }
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    if (broken)
        after_break(b, &fin); /* a lying response: reported now, not at the next event */
    run_done(fin);
    return rc;
}

int bhblkfront_submit(bhblkfront *b, enum bhblkfront_op op, uint64_t offset, uint64_t len,
                      void *buf, bhblkfront_done_fn *done, void *arg)
{
    return bhblkfront_submit_queue(b, bhblkfront_queue(b), op, offset, len, buf, done, arg);
}

/* ---- responses in ---- */

/* Validates one response copy and completes its chunk (q's lock held); -1 breaks the device. */
static int complete(bhblkfront *b, struct blk_queue *q, const blkif_response_t *rsp,
                    struct blk_io **done)
{
    struct blk_chunk *c;
    struct blk_io *io;
    void *cookie;

    if (bhring_ids_put(q->ids, rsp->id, &cookie) != 0) {
        blk_break(b, "backend answered id %#llx on queue %u, which is unknown or already answered",
                  (unsigned long long)rsp->id, q->idx);
        return -1;
    }
    c = cookie;
    if (rsp->operation != c->op && !(c->op == BLKIF_OP_INDIRECT && rsp->operation == c->rw_op)) {
        blk_break(b, "backend answered operation %u to a request of operation %u", rsp->operation,
                  c->op);
        return -1;
    }
    if (rsp->status != BLKIF_RSP_OKAY && rsp->status != BLKIF_RSP_ERROR &&
        rsp->status != BLKIF_RSP_EOPNOTSUPP) {
        blk_break(b, "backend answered status %d, which blkif does not have", rsp->status);
        return -1;
    }
    io = c->io;
    c->onring = false;
    q->busy--;
    if (rsp->status == BLKIF_RSP_OKAY && c->rw_op == BLKIF_OP_READ && c->npages > 0) {
        for (unsigned int i = 0; i < c->npages; i++) {
            uint64_t off = (uint64_t)i * BLK_PAGE;
            size_t n = c->len - off < BLK_PAGE ? (size_t)(c->len - off) : BLK_PAGE;

            memcpy(io->buf + c->off + off, b->pg[c->page[i]], n);
        }
    } else if (rsp->status == BLKIF_RSP_EOPNOTSUPP) {
        /* Learnt per queue: b->info is the connection's, written with every lock held. */
        if (c->op == BLKIF_OP_FLUSH_DISKCACHE || c->op == BLKIF_OP_WRITE_BARRIER)
            q->no_flush = true;
        if (c->op == BLKIF_OP_DISCARD)
            q->no_discard = true;
        io->err = ENOTSUP;
    } else if (rsp->status == BLKIF_RSP_ERROR) {
        io->err = EIO;
    }
    chunk_free(q, c);
    if (--io->outstanding == 0 && io->issued >= io->len && io != q->qhead) {
        push_done(done, io);
        q->nio--;
    }
    return 0;
}

/* Fails everything of q once the device broke (q's lock held); pages stay granted until disconnect. */
static void fail_all(bhblkfront *b, struct blk_queue *q, struct blk_io **done)
{
    if (q->failed)
        return;
    q->failed = true;
    fail_queued(q, EIO, done);
    for (unsigned int i = 0; i < b->nchunks; i++) {
        struct blk_chunk *c = &b->chunks[i];

        if (!c->onring || c->q != q->idx)
            continue;
        c->onring = false;
        c->npages = c->nind = 0; /* never reused: the pool is re-granted at publish */
        chunk_fail(q, c, EIO, done);
    }
    q->busy = 0;
}

/* Consumes q's responses (q's lock held); true when the device is (now) broken. */
static bool consume_locked(bhblkfront *b, struct blk_queue *q, struct blk_io **done)
{
    blkif_response_t rsp;
    int r;

    if (b->published && !is_broken(b) && q->idx < b->nq) {
        do {
            while ((r = bhring_front_get(&q->ring, &rsp)) == 1)
                if (complete(b, q, &rsp, done) != 0)
                    break;
            if (r < 0)
                blk_break(b, "queue %u: %s", q->idx, bhring_error(&q->ring));
        } while (!is_broken(b) && bhring_front_final_check(&q->ring) == 1);
        if (!is_broken(b))
            pump(b, q, done);
    }
    if (is_broken(b))
        fail_all(b, q, done);
    return is_broken(b);
}

/*
 * A broken device: every queue's I/O fails (each queue under its own lock,
 * one at a time), and the owner hears of it once.
 */
static int after_break(bhblkfront *b, struct blk_io **done)
{
    void (*report)(void *, const char *) = NULL;
    char why[sizeof(b->why)];

    for (unsigned int i = 0; i < b->wanted; i++) {
        pthread_mutex_lock(&b->q[i].lock);
        fail_all(b, &b->q[i], done);
        pthread_mutex_unlock(&b->q[i].lock);
    }
    pthread_mutex_lock(&b->brlock);
    if (!b->broken_reported) {
        b->broken_reported = true;
        report = b->cfg.broken;
        snprintf(why, sizeof(why), "%s", b->why);
    }
    pthread_mutex_unlock(&b->brlock);
    if (report != NULL)
        report(b->cfg.arg, why);
    return 0;
}

static int consume(bhblkfront *b, struct blk_queue *q)
{
    struct blk_io *done = NULL;
    bool broken;

    pthread_mutex_lock(&q->lock);
    broken = consume_locked(b, q, &done);
    pthread_mutex_unlock(&q->lock);
    if (broken)
        after_break(b, &done);
    return run_done(done);
}

static int consume_all(bhblkfront *b)
{
    int n = 0;

    for (unsigned int i = 0; i < __atomic_load_n(&b->nq, __ATOMIC_ACQUIRE); i++)
        n += consume(b, &b->q[i]);
    return n;
}

void bhblkfront_kick(bhblkfront *b)
{
    consume_all(b);
}

int bhblkfront_poll(bhblkfront *b)
{
    return consume_all(b);
}

int bhblkfront_poll_queue(bhblkfront *b, unsigned int queue)
{
    struct blk_io *done = NULL;
    struct blk_queue *q = lock_queue(b, queue);
    bool broken = consume_locked(b, q, &done);

    pthread_mutex_unlock(&q->lock);
    if (broken)
        after_break(b, &done);
    return run_done(done);
}

int blk_take_events(bhblkfront *b)
{
    int n = 0;
    bh_evtchn_port_or_error_t p;

    pthread_mutex_lock(&b->evlock);
    while ((p = bhevtchn_pending(b->cfg.evtchn)) >= 0) {
        bhevtchn_unmask(b->cfg.evtchn, (uint32_t)p);
        n++;
    }
    pthread_mutex_unlock(&b->evlock);
    return n;
}

/* ---- state ---- */

int bhblkfront_port(const bhblkfront *b)
{
    return b->q[0].port;
}

int bhblkfront_queue_port(bhblkfront *b, unsigned int queue)
{
    int port = -1;

    pthread_mutex_lock(&b->lock);
    if (queue < b->nq)
        port = b->q[queue].port;
    pthread_mutex_unlock(&b->lock);
    return port;
}

int bhblkfront_get_info(bhblkfront *b, struct bhblkfront_info *out)
{
    int rc = 0;

    lock_all(b);
    if (!b->ever_connected) {
        errno = EAGAIN;
        rc = -1;
    } else {
        *out = b->info;
        for (unsigned int i = 0; i < b->nq; i++) {
            out->flush = out->flush && !b->q[i].no_flush;
            out->discard = out->discard && !b->q[i].no_discard;
        }
    }
    unlock_all(b);
    return rc;
}

bool bhblkfront_broken(bhblkfront *b)
{
    return is_broken(b);
}

void bhblkfront_error(bhblkfront *b, char *buf, size_t size)
{
    pthread_mutex_lock(&b->brlock);
    snprintf(buf, size, "%s", b->broken ? b->why : "");
    pthread_mutex_unlock(&b->brlock);
}

unsigned int bhblkfront_in_flight(bhblkfront *b)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < b->wanted; i++) {
        pthread_mutex_lock(&b->q[i].lock);
        n += b->q[i].nio;
        pthread_mutex_unlock(&b->q[i].lock);
    }
    return n;
}
