/*
 * blkfront.c - the device: negotiation, the bounce pool, splitting I/O
 * into ring requests, the hardened response consumer, reissue after a
 * reconnect.  See bhblkfront.h for the contract.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
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

/* Marks the device broken (lock held).  The first reason stays. */
static void blk_break(bhblkfront *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void blk_break(bhblkfront *b, const char *fmt, ...)
{
    va_list ap;

    if (b->broken)
        return;
    b->broken = true;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof(b->why), fmt, ap);
    va_end(ap);
}

/* ---- the pool ---- */

static void pool_unshare(bhblkfront *b)
{
    for (unsigned int i = 0; i < b->nbatch; i++) {
        unsigned int n = b->npool - i * BLK_BATCH;

        bhgntshr_unshare(b->cfg.gntshr, b->batch[i], n < BLK_BATCH ? n : BLK_BATCH);
    }
    b->nbatch = 0;
    b->nfree = 0;
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
    for (unsigned int i = 0; i < b->npool; i++)
        b->freepg[i] = b->npool - 1 - i;
    b->nfree = b->npool;
    return 0;
}

/* ---- life ---- */

bhblkfront *bhblkfront_new(const struct bhblkfront_cfg *cfg)
{
    bhblkfront *b;

    if (cfg == NULL || cfg->xs == NULL || cfg->gntshr == NULL || cfg->evtchn == NULL ||
        cfg->dir == NULL || cfg->backend == NULL || cfg->ring_order > BHRING_MAX_ORDER) {
        errno = EINVAL;
        return NULL;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return NULL;
    b->cfg = *cfg;
    b->npool = cfg->pool_pages ? cfg->pool_pages : BHBLKFRONT_POOL_PAGES;
    if (b->npool < BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES)
        b->npool = BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES;
    b->dir = strdup(cfg->dir);
    b->backend = strdup(cfg->backend);
    b->pg = calloc(b->npool, sizeof(*b->pg));
    b->pref = calloc(b->npool, sizeof(*b->pref));
    b->freepg = calloc(b->npool, sizeof(*b->freepg));
    b->batch = calloc((b->npool + BLK_BATCH - 1) / BLK_BATCH, sizeof(*b->batch));
    b->chunks = calloc(BLK_MAX_SLOTS, sizeof(*b->chunks));
    if (!b->dir || !b->backend || !b->pg || !b->pref || !b->freepg || !b->batch || !b->chunks) {
        bhblkfront_free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->cfg.dir = b->dir;
    b->cfg.backend = b->backend;
    for (unsigned int i = BLK_MAX_SLOTS; i-- > 0;) {
        b->chunks[i].next = b->freech;
        b->freech = &b->chunks[i];
    }
    b->port = -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->evlock, NULL);
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

static void chunk_fail(bhblkfront *b, struct blk_chunk *c, int err, struct blk_io **done);

/* Fails every I/O queued or requeued (lock held): chunks on the ring stay. */
static void fail_queued(bhblkfront *b, int err, struct blk_io **done)
{
    while (b->reissue != NULL) {
        struct blk_chunk *c = b->reissue;

        b->reissue = c->next;
        chunk_fail(b, c, err, done);
    }
    b->reissue_tail = NULL;
    while (b->qhead != NULL) {
        struct blk_io *io = b->qhead;

        b->qhead = io->next;
        io->err = err;
        io->issued = io->len; /* nothing more goes out */
        if (io->outstanding == 0) {
            push_done(done, io);
            b->nio--;
        }
    }
    b->qtail = NULL;
}

static void disconnect_locked(bhblkfront *b)
{
    /* Chunks on the ring go back, in any order, to be reissued on the next connection. */
    for (unsigned int i = 0; i < BLK_MAX_SLOTS && b->busy > 0; i++) {
        struct blk_chunk *c = &b->chunks[i];

        if (!c->onring)
            continue;
        c->onring = false;
        c->npages = c->nind = 0;
        c->next = NULL;
        if (b->reissue_tail)
            b->reissue_tail->next = c;
        else
            b->reissue = c;
        b->reissue_tail = c;
        b->busy--;
    }
    if (b->port >= 0) {
        pthread_mutex_lock(&b->evlock);
        bhevtchn_unbind(b->cfg.evtchn, (uint32_t)b->port);
        pthread_mutex_unlock(&b->evlock);
        b->port = -1;
    }
    if (b->ring_pages != NULL)
        bhgntshr_unshare(b->cfg.gntshr, b->ring_pages, 1u << b->info.ring_order);
    b->ring_pages = NULL;
    pool_unshare(b);
    bhring_ids_free(b->ids);
    b->ids = NULL;
    b->published = b->connected = false;
    b->busy = 0;
}

void bhblkfront_disconnect(bhblkfront *b)
{
    pthread_mutex_lock(&b->lock);
    disconnect_locked(b);
    pthread_mutex_unlock(&b->lock);
}

void bhblkfront_free(bhblkfront *b)
{
    struct blk_io *done = NULL;

    if (b == NULL)
        return;
    if (b->chunks != NULL) {
        pthread_mutex_lock(&b->lock);
        disconnect_locked(b);
        fail_queued(b, ECANCELED, &done);
        pthread_mutex_unlock(&b->lock);
        run_done(done);
        pthread_mutex_destroy(&b->lock);
        pthread_mutex_destroy(&b->evlock);
    }
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
    b->info.backend_max_queues = queues;
    b->info.trusted = trusted != 0;
    return 0;
}

/*
 * A publish after a reconnect may choose another ring order: the keys of
 * the other layout go first, so the backend never reads a mix.  The
 * backend reads them only after Initialised, which comes later.
 */
static void remove_stale_refs(bhblkfront *b, unsigned int order)
{
    char path[BHXB_PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/%s", b->dir, order == 0 ? "ring-page-order" : "ring-ref");
    xs_rm(b->cfg.xs, XBT_NULL, path);
    for (unsigned int i = order == 0 ? 0 : 1u << order; i < 16; i++) {
        snprintf(path, sizeof(path), "%s/ring-ref%u", b->dir, i);
        xs_rm(b->cfg.xs, XBT_NULL, path);
    }
}

int bhblkfront_publish(bhblkfront *b, char *why, size_t len)
{
    unsigned int order, slots, port, persist;
    char proto[] = XEN_IO_PROTO_ABI_NATIVE;
    char names[16][16];
    struct bhxb_key out[20];
    size_t n = 0;
    int rc = -1;

    pthread_mutex_lock(&b->lock);
    disconnect_locked(b);
    if (b->broken) {
        snprintf(why, len, "the device is broken: %s", b->why);
        goto out;
    }
    if (read_backend_publish_keys(b, why, len) != 0)
        goto out;
    order = b->cfg.ring_order < b->offered_order ? b->cfg.ring_order : b->offered_order;
    slots = bhring_type_nr_ents(&bhring_blkif, order);
    b->ring_pages =
        bhgntshr_share_pages(b->cfg.gntshr, b->cfg.backend_domid, 1 << order, b->ring_refs, 1);
    if (b->ring_pages == NULL) {
        snprintf(why, len, "cannot grant the ring: %s", strerror(errno));
        goto out;
    }
    b->info.ring_order = order;
    b->info.ring_slots = slots;
    if (bhring_attach(&b->ring, &bhring_blkif, BHRING_FRONT, b->ring_pages, order, 0, true) != 0 ||
        (b->ids = bhring_ids_new(slots, 64)) == NULL) {
        snprintf(why, len, "cannot initialise the ring: %s", strerror(errno));
        goto out;
    }
    if (pool_share(b) != 0) {
        snprintf(why, len, "cannot grant the data pool of %u pages: %s", b->npool, strerror(errno));
        goto out;
    }
    pthread_mutex_lock(&b->evlock);
    b->port = bhevtchn_bind_unbound_port(b->cfg.evtchn, b->cfg.backend_domid);
    pthread_mutex_unlock(&b->evlock);
    if (b->port < 0) {
        snprintf(why, len, "cannot allocate an event channel: %s", strerror(errno));
        goto out;
    }
    if (order == 0) {
        out[n++] = (struct bhxb_key){"ring-ref", BHXB_UINT, &b->ring_refs[0], 0, false, 0};
    } else {
        out[n++] =
            (struct bhxb_key){"ring-page-order", BHXB_UINT, &b->info.ring_order, 0, false, 0};
        for (unsigned int i = 0; i < (1u << order); i++) {
            snprintf(names[i], sizeof(names[i]), "ring-ref%u", i);
            out[n++] = (struct bhxb_key){names[i], BHXB_UINT, &b->ring_refs[i], 0, false, 0};
        }
    }
    remove_stale_refs(b, order);
    port = (unsigned int)b->port;
    persist = b->cfg.no_persistent ? 0 : 1;
    out[n++] = (struct bhxb_key){"event-channel", BHXB_UINT, &port, 0, false, 0};
    out[n++] = (struct bhxb_key){"protocol", BHXB_STR, proto, sizeof(proto), false, 0};
    out[n++] = (struct bhxb_key){"feature-persistent", BHXB_UINT, &persist, 0, false, 0};
    if (bhxb_write_keys(b->cfg.xs, b->dir, out, n) != 0) {
        snprintf(why, len, "cannot publish the ring: %s", strerror(errno));
        goto out;
    }
    b->published = true;
    rc = 0;
out:
    if (rc != 0)
        disconnect_locked(b);
    pthread_mutex_unlock(&b->lock);
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

static int pump(bhblkfront *b, struct blk_io **done);

int bhblkfront_refresh(bhblkfront *b, char *why, size_t len)
{
    unsigned long sectors = 0;
    const char *bad = NULL;
    struct bhxb_key key = {"sectors", BHXB_ULONG, &sectors, 0, true, 0};
    int rc = -1;

    pthread_mutex_lock(&b->lock);
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
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int bhblkfront_connect(bhblkfront *b, char *why, size_t len)
{
    struct bhblkfront_info in;
    struct blk_io *done = NULL;
    int rc = -1;

    pthread_mutex_lock(&b->lock);
    in = b->info;
    if (!b->published) {
        snprintf(why, len, "connect before publish");
        goto out;
    }
    if (read_connect_keys(b, &in, why, len) != 0)
        goto out;
    b->info = in;
    b->connected = b->ever_connected = true;
    pump(b, &done);
    rc = 0;
out:
    pthread_mutex_unlock(&b->lock);
    run_done(done);
    return rc;
}

/* ---- requests out ---- */

static void chunk_free(bhblkfront *b, struct blk_chunk *c)
{
    for (unsigned int i = 0; i < (unsigned int)c->npages + c->nind; i++)
        b->freepg[b->nfree++] = c->page[i];
    c->npages = c->nind = 0;
    c->io = NULL;
    c->next = b->freech;
    b->freech = c;
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

/* The next chunk to put on the ring, or NULL (lock held). */
static struct blk_chunk *next_chunk(bhblkfront *b)
{
    uint64_t cap = (uint64_t)b->info.max_segments * BLK_PAGE;
    struct blk_chunk *c;
    struct blk_io *io;

    cap -= cap % b->info.sector_size; /* every request in whole logical sectors (connect: >= 1) */

    if (b->reissue != NULL) {
        c = b->reissue;
        io = c->io;
        /* The new connection may carry less per request: split off what fits. */
        if ((io->op == BHBLKFRONT_READ || io->op == BHBLKFRONT_WRITE) && c->len > cap) {
            struct blk_chunk *head = b->freech;

            if (head == NULL)
                return NULL;
            b->freech = head->next;
            *head = (struct blk_chunk){.io = io, .off = c->off, .len = cap};
            c->off += cap;
            c->len -= cap;
            io->outstanding++;
            return head;
        }
        b->reissue = c->next;
        if (b->reissue == NULL)
            b->reissue_tail = NULL;
        return c;
    }
    if ((io = b->qhead) != NULL && b->freech != NULL) {
        uint64_t n = io->len - io->issued;

        if (io->op == BHBLKFRONT_FLUSH) {
            n = 1;
        } else if (io->op == BHBLKFRONT_DISCARD) {
            n = n > (1ull << 30) ? (1ull << 30) : n;
        } else {
            n = n > cap ? cap : n;
        }
        c = b->freech;
        b->freech = c->next;
        *c = (struct blk_chunk){.io = io, .off = io->issued, .len = n};
        io->issued += n;
        io->outstanding++;
        if (io->issued >= io->len) {
            b->qhead = io->next;
            if (b->qhead == NULL)
                b->qtail = NULL;
        }
        return c;
    }
    return NULL;
}

/* Returns a chunk taken by next_chunk that cannot go out now to the head of the reissue list. */
static void unget_chunk(bhblkfront *b, struct blk_chunk *c)
{
    c->next = b->reissue;
    b->reissue = c;
    if (b->reissue_tail == NULL)
        b->reissue_tail = c;
}

/* A chunk that cannot be issued on this connection (its feature went away). */
static void chunk_fail(bhblkfront *b, struct blk_chunk *c, int err, struct blk_io **done)
{
    struct blk_io *io = c->io;

    io->err = err;
    chunk_free(b, c);
    if (--io->outstanding == 0 && io->issued >= io->len && io != b->qhead) {
        push_done(done, io);
        b->nio--;
    }
}

/* Issues what fits on the ring and in the pool; notifies once (lock held). */
static int pump(bhblkfront *b, struct blk_io **done)
{
    struct blk_chunk *c;
    int put = 0;

    if (!b->connected || b->broken)
        return 0;
    while (bhring_front_free(&b->ring) > 0 && (c = next_chunk(b)) != NULL) {
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
        } else if ((c->io->op == BHBLKFRONT_FLUSH && !b->info.flush) ||
                   (c->io->op == BHBLKFRONT_DISCARD && !b->info.discard)) {
            chunk_fail(b, c, ENOTSUP, done);
            continue;
        }
        if (need > b->nfree) {
            unget_chunk(b, c);
            break;
        }
        for (unsigned int i = 0; i < need; i++)
            c->page[i] = b->freepg[--b->nfree];
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
        if (bhring_ids_get(b->ids, c, &id) != 0) {
            unget_chunk(b, c); /* cannot happen: ids = slots >= free slots */
            break;
        }
        if (c->op == BLKIF_OP_INDIRECT)
            r.ind.id = id;
        else if (c->op == BLKIF_OP_DISCARD)
            r.discard.id = id;
        else
            r.rw.id = id;
        if (bhring_front_put(&b->ring, &r) != 0) {
            void *cookie;

            bhring_ids_put(b->ids, id, &cookie);
            unget_chunk(b, c);
            break;
        }
        c->onring = true;
        b->busy++;
        put++;
    }
    if (put > 0 && bhring_front_push(&b->ring) == 1) {
        pthread_mutex_lock(&b->evlock);
        bhevtchn_notify(b->cfg.evtchn, (uint32_t)b->port);
        pthread_mutex_unlock(&b->evlock);
    }
    return put;
}

int bhblkfront_submit(bhblkfront *b, enum bhblkfront_op op, uint64_t offset, uint64_t len,
                      void *buf, bhblkfront_done_fn *done, void *arg)
{
    struct blk_io *io = NULL, *fin = NULL;
    uint64_t size;
    int rc = -1;

    if (done == NULL || (unsigned int)op > BHBLKFRONT_DISCARD ||
        ((op == BHBLKFRONT_READ || op == BHBLKFRONT_WRITE) && buf == NULL && len > 0)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&b->lock);
    size = b->info.sectors * 512;
    size -= size % b->info.sector_size; /* whole logical sectors only */
    if (b->broken) {
        errno = EIO;
    } else if (!b->ever_connected) {
        errno = EAGAIN;
    } else if (op != BHBLKFRONT_FLUSH && ((offset | len) % b->info.sector_size != 0 ||
                                          offset > size || len > size - offset)) {
        errno = EINVAL;
    } else if ((op == BHBLKFRONT_WRITE || op == BHBLKFRONT_DISCARD) && (b->info.info & 4)) {
        errno = EROFS;
    } else if ((op == BHBLKFRONT_FLUSH && !b->info.flush) ||
               (op == BHBLKFRONT_DISCARD && !b->info.discard)) {
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
        b->nio++;
        if (io->len == 0) {
            push_done(&fin, io);
            b->nio--;
        } else {
            if (b->qtail)
                b->qtail->next = io;
            else
                b->qhead = io;
            b->qtail = io;
            pump(b, &fin);
        }
        rc = 0;
    }
    pthread_mutex_unlock(&b->lock);
    run_done(fin);
    return rc;
}

/* ---- responses in ---- */

/* Validates one response copy and completes its chunk (lock held); -1 breaks the device. */
static int complete(bhblkfront *b, const blkif_response_t *rsp, struct blk_io **done)
{
    struct blk_chunk *c;
    struct blk_io *io;
    void *cookie;

    if (bhring_ids_put(b->ids, rsp->id, &cookie) != 0) {
        blk_break(b, "backend answered id %#llx, which is unknown or already answered",
                  (unsigned long long)rsp->id);
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
    b->busy--;
    if (rsp->status == BLKIF_RSP_OKAY && c->rw_op == BLKIF_OP_READ && c->npages > 0) {
        for (unsigned int i = 0; i < c->npages; i++) {
            uint64_t off = (uint64_t)i * BLK_PAGE;
            size_t n = c->len - off < BLK_PAGE ? (size_t)(c->len - off) : BLK_PAGE;

            memcpy(io->buf + c->off + off, b->pg[c->page[i]], n);
        }
    } else if (rsp->status == BLKIF_RSP_EOPNOTSUPP) {
        if (c->op == BLKIF_OP_FLUSH_DISKCACHE || c->op == BLKIF_OP_WRITE_BARRIER)
            b->info.flush = false;
        if (c->op == BLKIF_OP_DISCARD)
            b->info.discard = false;
        io->err = ENOTSUP;
    } else if (rsp->status == BLKIF_RSP_ERROR) {
        io->err = EIO;
    }
    chunk_free(b, c);
    if (--io->outstanding == 0 && io->issued >= io->len && io != b->qhead) {
        push_done(done, io);
        b->nio--;
    }
    return 0;
}

/* Fails everything once the device broke (lock held); pages stay granted until disconnect. */
static void fail_all(bhblkfront *b, struct blk_io **done)
{
    fail_queued(b, EIO, done);
    for (unsigned int i = 0; i < BLK_MAX_SLOTS; i++) {
        struct blk_chunk *c = &b->chunks[i];

        if (!c->onring)
            continue;
        c->onring = false;
        c->npages = c->nind = 0; /* never reused: the pool is re-granted at publish */
        chunk_fail(b, c, EIO, done);
    }
    b->busy = 0;
}

static int consume(bhblkfront *b)
{
    struct blk_io *done = NULL;
    void (*report)(void *, const char *) = NULL;
    char why[sizeof(b->why)];
    blkif_response_t rsp;
    int r;

    pthread_mutex_lock(&b->lock);
    if (b->published && !b->broken) {
        do {
            while ((r = bhring_front_get(&b->ring, &rsp)) == 1)
                if (complete(b, &rsp, &done) != 0)
                    break;
            if (r < 0)
                blk_break(b, "%s", bhring_error(&b->ring));
        } while (!b->broken && bhring_front_final_check(&b->ring) == 1);
        if (!b->broken)
            pump(b, &done);
    }
    if (b->broken && !b->broken_reported) {
        fail_all(b, &done);
        b->broken_reported = true;
        report = b->cfg.broken;
        snprintf(why, sizeof(why), "%s", b->why);
    }
    pthread_mutex_unlock(&b->lock);
    if (report != NULL)
        report(b->cfg.arg, why);
    return run_done(done);
}

void bhblkfront_kick(bhblkfront *b)
{
    consume(b);
}

int bhblkfront_poll(bhblkfront *b)
{
    return consume(b);
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
    return b->port;
}

int bhblkfront_get_info(bhblkfront *b, struct bhblkfront_info *out)
{
    int rc = 0;

    pthread_mutex_lock(&b->lock);
    if (!b->ever_connected) {
        errno = EAGAIN;
        rc = -1;
    } else {
        *out = b->info;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

bool bhblkfront_broken(bhblkfront *b)
{
    bool r;

    pthread_mutex_lock(&b->lock);
    r = b->broken;
    pthread_mutex_unlock(&b->lock);
    return r;
}

void bhblkfront_error(bhblkfront *b, char *buf, size_t size)
{
    pthread_mutex_lock(&b->lock);
    snprintf(buf, size, "%s", b->broken ? b->why : "");
    pthread_mutex_unlock(&b->lock);
}

unsigned int bhblkfront_in_flight(bhblkfront *b)
{
    unsigned int n;

    pthread_mutex_lock(&b->lock);
    n = b->nio;
    pthread_mutex_unlock(&b->lock);
    return n;
}
