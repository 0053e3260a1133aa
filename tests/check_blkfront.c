/*
 * check_blkfront.c - libbhblkfront against a fake backend written here
 * with libbhring and the hostile harness (tests/hostile.h): the test plays
 * the driver domain (its grants mapped with its own identity) and serves
 * an in-memory disk, honestly or not.  Everything runs in this thread, in
 * lock step: the frontend submits, the fake backend serves what is on the
 * ring, the frontend consumes - so every assertion is exact.  Covered:
 * negotiation against a backend offering only the basics and one offering
 * everything; splitting into 11-segment and indirect requests; flush,
 * discard; trusted=0 bouncing; reissue after a reconnect; lying responses
 * (duplicate and unknown ids, impossible status and operation, rsp_prod
 * overflow) that break the device and not the process; an event storm;
 * and the handshake over the feature space, pairwise (a covering array of
 * both ends' knobs, each row negotiated exactly and moving data).
 * Needs root (the simulation).
 */
#define _GNU_SOURCE
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/blkif.h>

#include "bhblkfront.h"
#include "hostile.h"

#define DISK_SECTORS 2048u /* 1 MiB of 512-byte sectors */

static struct hst_sim sim;
static struct hst_domain guest, drv;
static struct hst_id gid, did;
static struct bhxb_dev dev;
static struct bhxb_layout *lay;

/* ---- the fake backend ---- */

enum lie { HONEST, DUP_ID, UNKNOWN_ID, BAD_STATUS, BAD_OP, RSP_PROD_OVERFLOW, LIES };

struct fake {
    struct hst_end end;
    struct bhring ring[HST_MAX_QUEUES]; /* one per queue the frontend set up */
    unsigned int on_queue[HST_MAX_QUEUES]; /* requests taken from each */
    uint8_t disk[DISK_SECTORS * 512];
    unsigned int sector_size;
    unsigned int requests, max_segs, indirect, flushes, discards;
    uint8_t last_page[4096]; /* the last data page a write granted, as mapped */
    bool hold;               /* take requests, answer none */
};

static struct fake *fk;
static bhblkfront *fb;
static char broken_why[256];
/* Keys a test writes over the backend's offer. */
static const char *const (*extra)[2];
static size_t nextra;
static unsigned int want_queues; /* cfg.queues of attach(): 0, the default */

static void on_broken(void *arg, const char *why)
{
    (void)arg;
    snprintf(broken_why, sizeof(broken_why), "%s", why);
}

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    ck_assert_int_eq(hst_id_open(&did, drv.uid), 0);
    dev = (struct bhxb_dev){"vbd", NULL, guest.domid, drv.domid, 51712};
    lay = hst_layout(sim.xs, &dev);
    ck_assert_ptr_nonnull(lay);
    fk = calloc(1, sizeof(*fk));
    ck_assert_ptr_nonnull(fk);
    broken_why[0] = '\0';
    extra = NULL;
    nextra = 0;
    want_queues = 0;
}

static void teardown(void)
{
    bhblkfront_free(fb);
    fb = NULL;
    hst_end_close(&fk->end);
    free(fk);
    bhxb_layout_free(lay);
    hst_id_close(&did);
    hst_id_close(&gid);
    hst_sim_stop(&sim);
}

/* Copies one segment between the disk and a granted page of the guest. */
static void seg_io(struct fake *f, bool write, uint32_t gref, unsigned int first, unsigned int last,
                   uint64_t *sector)
{
    uint8_t *pg = bhgnttab_map_grant_ref(did.gt, guest.domid, gref, PROT_READ | PROT_WRITE);
    size_t n = (size_t)(last - first + 1) * 512;

    ck_assert_msg(pg != NULL, "mapping grant %u: %s", gref, strerror(errno));
    ck_assert_uint_le(first, last);
    ck_assert_uint_le(last, 7);
    ck_assert_uint_le((*sector + (last - first + 1)) * 512, sizeof(f->disk));
    if (write) {
        memcpy(f->disk + *sector * 512, pg + first * 512, n);
        memcpy(f->last_page, pg, 4096);
    } else {
        memcpy(pg + first * 512, f->disk + *sector * 512, n);
    }
    *sector += last - first + 1;
    ck_assert_int_eq(bhgnttab_unmap(did.gt, pg, 1), 0);
}

/* Serves one request copy; returns the status to answer. */
static int16_t serve_one(
    struct fake *f, const union {
        blkif_request_t rw;
        blkif_request_discard_t d;
        blkif_request_indirect_t ind;
        uint8_t raw[112];
    } * r)
{
    uint64_t sector;

    f->requests++;
    switch (r->rw.operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
        ck_assert_uint_le(r->rw.nr_segments, BLKIF_MAX_SEGMENTS_PER_REQUEST);
        f->max_segs = r->rw.nr_segments > f->max_segs ? r->rw.nr_segments : f->max_segs;
        sector = r->rw.sector_number;
        for (unsigned int i = 0; i < r->rw.nr_segments; i++)
            seg_io(f, r->rw.operation == BLKIF_OP_WRITE, r->rw.seg[i].gref, r->rw.seg[i].first_sect,
                   r->rw.seg[i].last_sect, &sector);
        return BLKIF_RSP_OKAY;
    case BLKIF_OP_INDIRECT: {
        unsigned int n = r->ind.nr_segments, np = (n + 511) / 512;
        struct blkif_request_segment *segs;

        f->indirect++;
        ck_assert_uint_le(np, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
        segs = bhgnttab_map_domain_grant_refs(did.gt, np, guest.domid,
                                              (uint32_t *)r->ind.indirect_grefs, PROT_READ);
        ck_assert_ptr_nonnull(segs);
        f->max_segs = n > f->max_segs ? n : f->max_segs;
        sector = r->ind.sector_number;
        for (unsigned int i = 0; i < n; i++)
            seg_io(f, r->ind.indirect_op == BLKIF_OP_WRITE, segs[i].gref, segs[i].first_sect,
                   segs[i].last_sect, &sector);
        bhgnttab_unmap(did.gt, segs, np);
        return BLKIF_RSP_OKAY;
    }
    case BLKIF_OP_FLUSH_DISKCACHE:
    case BLKIF_OP_WRITE_BARRIER:
        f->flushes++;
        return BLKIF_RSP_OKAY;
    case BLKIF_OP_DISCARD:
        f->discards++;
        ck_assert_uint_le((r->d.sector_number + r->d.nr_sectors) * 512, sizeof(f->disk));
        memset(f->disk + r->d.sector_number * 512, 0, r->d.nr_sectors * 512);
        return BLKIF_RSP_OKAY;
    default:
        return BLKIF_RSP_EOPNOTSUPP;
    }
}

/*
 * The backend's turn on queue q: takes every request on its ring, answers
 * each (honestly, or with one lie on the first), pushes and notifies.
 */
static unsigned int serve_queue(struct fake *f, unsigned int q, enum lie lie)
{
    union {
        blkif_request_t rw;
        blkif_request_discard_t d;
        blkif_request_indirect_t ind;
        uint8_t raw[112];
    } r;
    blkif_response_t rsp;
    unsigned int n = 0;

    while (bhring_back_get(&f->ring[q], &r) == 1) {
        n++;
        f->on_queue[q]++;
        if (f->hold)
            continue;
        memset(&rsp, 0, sizeof(rsp));
        rsp.id = r.rw.id;
        rsp.operation = r.rw.operation;
        rsp.status = serve_one(f, (void *)&r);
        if (lie != HONEST && n == 1) {
            if (lie == UNKNOWN_ID)
                rsp.id ^= 0x5a5a0000u;
            if (lie == BAD_STATUS)
                rsp.status = 7;
            if (lie == BAD_OP)
                rsp.operation = BLKIF_OP_DISCARD;
            if (lie == DUP_ID) {
                ck_assert_int_eq(bhring_back_put(&f->ring[q], &rsp), 0);
                /* the second request: answered with the first one's id */
                n += (unsigned int)bhring_back_get(&f->ring[q], &r);
            }
        }
        ck_assert_int_eq(bhring_back_put(&f->ring[q], &rsp), 0);
    }
    if (bhring_back_push(&f->ring[q]) == 1)
        ck_assert_int_eq(hst_notify_queue(&f->end, q), 0);
    if (lie == RSP_PROD_OVERFLOW && n > 0)
        hst_idx_set(&f->end.ring[q], HST_RSP_PROD,
                    hst_idx_get(&f->end.ring[q], HST_RSP_PROD) + f->end.ring[q].nr_ents + 1);
    return n;
}

/* The backend's turn on every queue; a lie goes on the first queue with requests. */
static unsigned int serve(struct fake *f, enum lie lie)
{
    unsigned int n = 0, m;

    hst_events(&f->end);
    for (unsigned int q = 0; q < f->end.nqueues; q++) {
        n += m = serve_queue(f, q, lie);
        if (m > 0)
            lie = HONEST;
    }
    return n;
}

/* Attaches the fake's ring ends to the rings hst_back_connect mapped. */
static void fake_rings(struct fake *f)
{
    for (unsigned int q = 0; q < f->end.nqueues; q++)
        ck_assert_int_eq(bhring_attach(&f->ring[q], &bhring_blkif, BHRING_BACK,
                                       (void *)f->end.ring[q].sh, f->end.ring[q].order, 0, false),
                         0);
}

/* The guest's turn: events on its port, then consume. */
static void guest_turn(void)
{
    int p;

    while ((p = bhevtchn_pending(gid.ev)) >= 0)
        bhevtchn_unmask(gid.ev, (uint32_t)p);
    bhblkfront_kick(fb);
}

/* ---- attaching ---- */

enum offer { BASIC, EVERYTHING };

static void attach_front(struct bhblkfront_cfg *cfg, int trusted);

static void attach(enum offer offer, unsigned int want_order, int trusted)
{
    struct bhblkfront_cfg cfg = {0};

    ck_assert_int_eq(hst_back_init(&fk->end, &did, HST_BLKIF, &dev), 0);
    ck_assert_int_eq(hst_back_publish(&fk->end), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "%u", DISK_SECTORS), 0);
    if (offer == BASIC) {
        ck_assert_int_eq(hst_rm(&fk->end, "max-ring-page-order"), 0);
        ck_assert_int_eq(hst_rm(&fk->end, "feature-persistent"), 0);
        ck_assert_int_eq(hst_rm(&fk->end, "multi-queue-max-queues"), 0);
    } else {
        ck_assert_int_eq(hst_set(&fk->end, "feature-max-indirect-segments", "256"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "feature-flush-cache", "1"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "feature-barrier", "1"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "feature-discard", "1"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "discard-granularity", "4096"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "multi-queue-max-queues", "4"), 0);
    }
    for (size_t i = 0; i < nextra; i++)
        ck_assert_int_eq(hst_set(&fk->end, extra[i][0], "%s", extra[i][1]), 0);
    cfg.ring_order = want_order;
    cfg.queues = want_queues;
    attach_front(&cfg, trusted);
}

/*
 * The frontend's half of attach(), the backend's keys written: the
 * toolstack's trusted key (-1: none), then both ends to Connected, each
 * mapping what the other published.  cfg holds the frontend's own choices.
 */
static void attach_front(struct bhblkfront_cfg *cfg, int trusted)
{
    char why[256], path[300];

    if (trusted >= 0) {
        snprintf(path, sizeof(path), "%s/trusted", fk->end.peer_dir);
        ck_assert(xs_write(sim.xs, XBT_NULL, path, trusted ? "1" : "0", 1));
    }
    cfg->xs = gid.xs;
    cfg->gntshr = gid.gs;
    cfg->evtchn = gid.ev;
    cfg->dir = fk->end.peer_dir;
    cfg->backend = fk->end.dir;
    cfg->backend_domid = drv.domid;
    cfg->broken = on_broken;
    fb = bhblkfront_new(cfg);
    ck_assert_ptr_nonnull(fb);
    ck_assert_msg(bhblkfront_publish(fb, why, sizeof(why)) == 0, "%s", why);
    ck_assert_msg(hst_back_connect(&fk->end) == 0, "%s", fk->end.why);
    fake_rings(fk);
    ck_assert_msg(bhblkfront_connect(fb, why, sizeof(why)) == 0, "%s", why);
}

/* Re-attaches after the backend went away: a new mapping of the new ring. */
static void reattach(void)
{
    char why[256];

    hst_end_close(&fk->end);
    ck_assert_msg(bhblkfront_publish(fb, why, sizeof(why)) == 0, "%s", why);
    ck_assert_msg(hst_back_connect(&fk->end) == 0, "%s", fk->end.why);
    fake_rings(fk);
    ck_assert_msg(bhblkfront_connect(fb, why, sizeof(why)) == 0, "%s", why);
}

struct waiter {
    int done;
    int err;
};

static void on_done(void *arg, int err)
{
    struct waiter *w = arg;

    w->done++;
    w->err = err;
}

/* Submits one I/O and runs both ends until it completes; returns its error. */
static int io(enum bhblkfront_op op, uint64_t off, uint64_t len, void *buf)
{
    struct waiter w = {0, -1};

    if (bhblkfront_submit(fb, op, off, len, buf, on_done, &w) != 0)
        return -errno;
    for (int i = 0; i < 1000 && w.done == 0; i++) {
        serve(fk, HONEST);
        guest_turn();
    }
    ck_assert_int_eq(w.done, 1);
    return w.err;
}

/* A key of the frontend's directory as dom0 reads it, "(none)" if missing. */
static const char *fkey(const char *name)
{
    static char v[128];
    char path[400], *s;
    unsigned int len;

    snprintf(path, sizeof(path), "%s/%s", fk->end.peer_dir, name);
    if ((s = xs_read(sim.xs, XBT_NULL, path, &len)) == NULL)
        return "(none)";
    snprintf(v, sizeof(v), "%.*s", (int)len, s);
    free(s);
    return v;
}

static void fill(uint8_t *p, size_t n, unsigned int seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + seed + i / 4096);
}

/* ---- tests ---- */

/* A backend offering only the basics: one page, 11 segments, no flush or discard. */
START_TEST(test_basic_backend_falls_back)
{
    struct bhblkfront_info in;
    static uint8_t out[1 << 20], back[1 << 20];
    char v[16];
    unsigned int len;
    char path[300], *s;

    attach(BASIC, 4, -1);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.queues, 1); /* 4 wanted, none offered: one, with the top-level keys */
    ck_assert_uint_eq(in.backend_max_queues, 1);
    ck_assert_uint_eq(fk->end.nqueues, 1);
    ck_assert_str_eq(fkey("multi-queue-num-queues"), "(none)");
    ck_assert_str_ne(fkey("ring-ref"), "(none)");
    ck_assert_str_ne(fkey("event-channel"), "(none)");
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.ring_order, 0);
    ck_assert_uint_eq(in.ring_slots, 32);
    ck_assert(!in.persistent);
    ck_assert(!in.indirect);
    ck_assert_uint_eq(in.max_segments, 11);
    ck_assert(!in.flush && !in.discard);
    ck_assert(in.trusted); /* no trusted key: trusted, as Linux */
    ck_assert_uint_eq(in.sectors, DISK_SECTORS);
    /* The frontend offered persistent grants and used ring-ref (order 0). */
    snprintf(path, sizeof(path), "%s/feature-persistent", fk->end.peer_dir);
    s = xs_read(sim.xs, XBT_NULL, path, &len);
    ck_assert_ptr_nonnull(s);
    snprintf(v, sizeof(v), "%s", s);
    free(s);
    ck_assert_str_eq(v, "1");

    fill(out, sizeof(out), 3);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 0, sizeof(out), out), 0);
    ck_assert_uint_eq(fk->max_segs, 11);
    ck_assert_uint_eq(fk->indirect, 0);
    ck_assert_uint_eq(fk->requests, (256 + 10) / 11);
    ck_assert_mem_eq(fk->disk, out, sizeof(out));
    ck_assert_int_eq(io(BHBLKFRONT_READ, 0, sizeof(back), back), 0);
    ck_assert_mem_eq(back, out, sizeof(out));
    /* What the backend did not offer is refused at once. */
    ck_assert_int_eq(io(BHBLKFRONT_FLUSH, 0, 0, NULL), -ENOTSUP);
    ck_assert_int_eq(io(BHBLKFRONT_DISCARD, 0, 4096, NULL), -ENOTSUP);
    /* Unaligned, out of range. */
    ck_assert_int_eq(io(BHBLKFRONT_READ, 100, 512, back), -EINVAL);
    ck_assert_int_eq(io(BHBLKFRONT_READ, sizeof(out) - 512, 1024, back), -EINVAL);
    ck_assert_int_eq(io(BHBLKFRONT_READ, UINT64_MAX - 511, 512, back), -EINVAL);
    ck_assert_int_eq(bhblkfront_in_flight(fb), 0);
}
END_TEST

/* Everything offered: order 4, indirect, persistent, flush, discard. */
START_TEST(test_everything_offered_is_used)
{
    struct bhblkfront_info in;
    static uint8_t out[1 << 20], back[1 << 20];

    attach(EVERYTHING, 4, 1);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.ring_order, 4);
    ck_assert_uint_eq(in.ring_slots, 512);
    ck_assert(in.persistent && in.indirect && in.flush && !in.barrier && in.discard);
    ck_assert_uint_eq(in.max_segments, BHBLKFRONT_MAX_INDIRECT);
    ck_assert_uint_eq(in.discard_granularity, 4096);
    ck_assert_uint_eq(in.backend_max_queues, 4);
    ck_assert_uint_eq(in.queues, BHBLKFRONT_QUEUES);

    fill(out, sizeof(out), 9);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 0, sizeof(out), out), 0);
    ck_assert_uint_eq(fk->max_segs, BHBLKFRONT_MAX_INDIRECT);
    ck_assert_uint_eq(fk->indirect, 256 / BHBLKFRONT_MAX_INDIRECT);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 0, sizeof(back), back), 0);
    ck_assert_mem_eq(back, out, sizeof(out));
    /* A small odd-sized read: one plain request. */
    ck_assert_int_eq(io(BHBLKFRONT_READ, 512 * 3, 512 * 5, back), 0);
    ck_assert_mem_eq(back, out + 512 * 3, 512 * 5);
    ck_assert_int_eq(io(BHBLKFRONT_FLUSH, 0, 0, NULL), 0);
    ck_assert_uint_eq(fk->flushes, 1);
    ck_assert_int_eq(io(BHBLKFRONT_DISCARD, 8192, 8192, NULL), 0);
    ck_assert_uint_eq(fk->discards, 1);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 8192, 8192, back), 0);
    for (int i = 0; i < 8192; i++)
        ck_assert_uint_eq(back[i], 0);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 16384, 4096, back), 0);
    ck_assert_mem_eq(back, out + 16384, 4096);
}
END_TEST

/*
 * Barrier only: flush goes as WRITE_BARRIER; 4 KiB sectors (sectors still
 * counts 512-byte units, as Linux); read-only refuses writes.
 */
START_TEST(test_barrier_and_read_only)
{
    struct bhblkfront_info in;
    static uint8_t buf[4096];
    static const char *const keys[][2] = {{"feature-barrier", "1"},
                                          {"info", "4"},
                                          {"sector-size", "4096"},
                                          {"sectors", "2048"},
                                          {"physical-sector-size", "8192"}};

    extra = keys;
    nextra = 5;
    attach(BASIC, 0, -1);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert(in.flush && in.barrier);
    ck_assert_uint_eq(in.sector_size, 4096);
    ck_assert_uint_eq(in.physical_sector_size, 8192);
    ck_assert_uint_eq(in.sectors, 2048);
    ck_assert_uint_eq(in.info, 4);
    ck_assert_int_eq(io(BHBLKFRONT_FLUSH, 0, 0, NULL), 0);
    ck_assert_uint_eq(fk->flushes, 1);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 0, 4096, buf), -EROFS);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 512, 4096, buf), -EINVAL); /* 4 KiB sectors */
    ck_assert_int_eq(io(BHBLKFRONT_READ, 4096, 4096, buf), 0);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 255 * 4096, 4096, buf), 0); /* the last block */
    ck_assert_int_eq(io(BHBLKFRONT_READ, 255 * 4096, 8192, buf), -EINVAL);
}
END_TEST

/*
 * Online resize: the backend wrote a new sectors (and its state again);
 * bhblkfront_refresh reads it, and I/O is checked against it from then on.
 * A bogus one is an error for the caller to break the device with.
 */
START_TEST(test_resize_refresh)
{
    struct bhblkfront_info in;
    static uint8_t buf[4096];
    char why[256];

    attach(BASIC, 0, -1);
    ck_assert_int_eq(bhblkfront_refresh(fb, why, sizeof(why)), 0); /* unchanged */
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "%u", DISK_SECTORS / 2), 0);
    ck_assert_int_eq(bhblkfront_refresh(fb, why, sizeof(why)), 1);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.sectors, DISK_SECTORS / 2);
    ck_assert_int_eq(io(BHBLKFRONT_READ, DISK_SECTORS / 2 * 512, 4096, buf), -EINVAL);
    ck_assert_int_eq(io(BHBLKFRONT_READ, DISK_SECTORS / 2 * 512 - 4096, 4096, buf), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "%u", DISK_SECTORS), 0);
    ck_assert_int_eq(bhblkfront_refresh(fb, why, sizeof(why)), 1);
    ck_assert_int_eq(io(BHBLKFRONT_READ, DISK_SECTORS / 2 * 512, 4096, buf), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "lots"), 0);
    ck_assert_int_eq(bhblkfront_refresh(fb, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "sectors") != NULL, "%s", why);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.sectors, DISK_SECTORS); /* the last good size stays */
    bhblkfront_disconnect(fb);
    ck_assert_int_eq(bhblkfront_refresh(fb, why, sizeof(why)), -1); /* not connected */
}
END_TEST

/*
 * trusted=0: the unused part of a bounce page is cleared before the
 * backend sees it; trusted=1 leaves the previous request's bytes there.
 * The pool hands the page just freed out first, so the second write
 * lands on the first one's page.
 */
START_TEST(test_untrusted_pages_hold_only_the_request)
{
    static uint8_t full[4096], small[512];
    struct bhblkfront_info in;

    attach(EVERYTHING, 0, _i);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_int_eq(in.trusted, _i);
    memset(full, 0xaa, sizeof(full));
    memset(small, 0x55, sizeof(small));
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 0, sizeof(full), full), 0);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 8192, sizeof(small), small), 0);
    ck_assert_mem_eq(fk->last_page, small, sizeof(small));
    for (size_t i = 512; i < 4096; i++)
        ck_assert_uint_eq(fk->last_page[i], _i ? 0xaa : 0);
}
END_TEST

/* A backend that lies loses its device; callbacks see EIO; the process lives. */
START_TEST(test_lying_backend_breaks_the_device)
{
    static uint8_t buf[2][4096];
    struct waiter w[2] = {{0, -1}, {0, -1}};
    char err[256];

    attach(BASIC, 0, 0);
    ck_assert_int_eq(bhblkfront_submit(fb, BHBLKFRONT_READ, 0, 4096, buf[0], on_done, &w[0]), 0);
    ck_assert_int_eq(bhblkfront_submit(fb, BHBLKFRONT_READ, 4096, 4096, buf[1], on_done, &w[1]), 0);
    ck_assert_uint_eq(serve(fk, (enum lie)_i), 2);
    guest_turn();
    ck_assert(bhblkfront_broken(fb));
    bhblkfront_error(fb, err, sizeof(err));
    ck_assert_str_ne(err, "");
    ck_assert_str_eq(broken_why, err);
    ck_assert_int_eq(w[0].done + w[1].done, 2);
    ck_assert(w[0].err == EIO || w[1].err == EIO);
    ck_assert_int_eq(bhblkfront_in_flight(fb), 0);
    /* Broken stays broken. */
    ck_assert_int_eq(bhblkfront_submit(fb, BHBLKFRONT_READ, 0, 4096, buf[0], on_done, &w[0]), -1);
    ck_assert_int_eq(errno, EIO);
    guest_turn();
    ck_assert_int_eq(w[0].done, 1);
}
END_TEST

/*
 * 1, 2 and 4 queues negotiated against a backend offering 4: the keys
 * where blkif puts them, and I/O on every queue, each on its own ring.
 */
/*
 * One write of len bytes (up to 64 KiB) on each of nq queues (up to 4), at
 * base + q * step, all on their rings at once: each completes without
 * error, each queue carried a request, and the fake's disk holds the data.
 */
static void write_each_queue(unsigned int nq, uint64_t base, uint64_t step, uint64_t len,
                             unsigned int seed)
{
    static uint8_t out[4][65536];
    struct waiter w[4];

    ck_assert(nq <= 4 && len <= sizeof(out[0]));
    for (unsigned int q = 0; q < nq; q++) {
        fill(out[q], len, seed + q);
        w[q] = (struct waiter){0, -1};
        ck_assert_int_eq(bhblkfront_submit_queue(fb, q, BHBLKFRONT_WRITE, base + q * step, len,
                                                 out[q], on_done, &w[q]),
                         0);
    }
    for (int i = 0; i < 1000; i++) {
        unsigned int done = 0;

        serve(fk, HONEST);
        guest_turn();
        for (unsigned int q = 0; q < nq; q++)
            done += w[q].done;
        if (done == nq)
            break;
    }
    for (unsigned int q = 0; q < nq; q++) {
        ck_assert_int_eq(w[q].done, 1);
        ck_assert_int_eq(w[q].err, 0);
        ck_assert_msg(fk->on_queue[q] >= 1, "no request on queue %u", q);
        ck_assert_mem_eq(fk->disk + base + q * step, out[q], len);
    }
}

START_TEST(test_queues_negotiated_and_used)
{
    static const unsigned int want[] = {1, 2, 4};
    static uint8_t back[65536];
    struct bhblkfront_info in;
    unsigned int nq = want[_i];
    char name[64];

    want_queues = nq;
    attach(EVERYTHING, 1, 1);
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.queues, nq);
    ck_assert_uint_eq(fk->end.nqueues, nq);
    ck_assert_str_eq(fkey("ring-page-order"), "1");
    if (nq == 1) {
        ck_assert_str_eq(fkey("multi-queue-num-queues"), "(none)");
        ck_assert_str_ne(fkey("ring-ref0"), "(none)");
        ck_assert_str_eq(fkey("queue-0/ring-ref0"), "(none)");
    } else {
        ck_assert_uint_eq(strtoul(fkey("multi-queue-num-queues"), NULL, 10), nq);
        ck_assert_str_eq(fkey("ring-ref0"), "(none)");
        ck_assert_str_eq(fkey("event-channel"), "(none)");
        for (unsigned int q = 0; q < nq; q++) {
            snprintf(name, sizeof(name), "queue-%u/event-channel", q);
            ck_assert_int_eq(atoi(fkey(name)), bhblkfront_queue_port(fb, q));
            snprintf(name, sizeof(name), "queue-%u/ring-ref1", q);
            ck_assert_str_ne(fkey(name), "(none)");
        }
        snprintf(name, sizeof(name), "queue-%u/ring-ref0", nq);
        ck_assert_str_eq(fkey(name), "(none)");
    }
    /* One write per queue, all on their rings at once, then read back. */
    write_each_queue(nq, 0, sizeof(back), sizeof(back), 1);
    for (unsigned int q = 0; q < nq; q++) {
        ck_assert_int_eq(io(BHBLKFRONT_READ, q * sizeof(back), sizeof(back), back), 0);
        ck_assert_mem_eq(back, fk->disk + q * sizeof(back), sizeof(back));
    }
    /* The thread's own queue is one of them, and a queue number past the count wraps. */
    ck_assert_uint_lt(bhblkfront_queue(fb), nq);
    ck_assert_int_eq(bhblkfront_queue_port(fb, nq), -1);
}
END_TEST

/* A lie on queue 1 of 2 breaks the whole device: queue 0's I/O fails too. */
START_TEST(test_lie_on_one_queue_breaks_the_device)
{
    static uint8_t buf[2][4096];
    struct waiter w[2] = {{0, -1}, {0, -1}};
    blkif_response_t rsp = {.id = 0x5a5a5a5aull, .operation = BLKIF_OP_READ};
    char err[256];

    want_queues = 2;
    attach(EVERYTHING, 0, 1);
    ck_assert_uint_eq(fk->end.nqueues, 2);
    fk->hold = true;
    ck_assert_int_eq(bhblkfront_submit_queue(fb, 0, BHBLKFRONT_READ, 0, 4096, buf[0], on_done,
                                             &w[0]),
                     0);
    ck_assert_int_eq(bhblkfront_submit_queue(fb, 1, BHBLKFRONT_READ, 4096, 4096, buf[1], on_done,
                                             &w[1]),
                     0);
    ck_assert_uint_eq(serve(fk, HONEST), 2);
    ck_assert_uint_eq(fk->on_queue[0], 1);
    ck_assert_uint_eq(fk->on_queue[1], 1);
    /* Queue 1 answers an id it was never given. */
    ck_assert_int_eq(bhring_back_put(&fk->ring[1], &rsp), 0);
    bhring_back_push(&fk->ring[1]);
    ck_assert_int_eq(hst_notify_queue(&fk->end, 1), 0);
    guest_turn();
    ck_assert(bhblkfront_broken(fb));
    bhblkfront_error(fb, err, sizeof(err));
    ck_assert_msg(strstr(err, "queue 1") != NULL, "%s", err);
    ck_assert_str_eq(broken_why, err);
    ck_assert_int_eq(w[0].done, 1);
    ck_assert_int_eq(w[1].done, 1);
    ck_assert_int_eq(w[0].err, EIO);
    ck_assert_int_eq(w[1].err, EIO);
    ck_assert_int_eq(bhblkfront_in_flight(fb), 0);
    ck_assert_int_eq(bhblkfront_submit_queue(fb, 0, BHBLKFRONT_READ, 0, 4096, buf[0], on_done,
                                             &w[0]),
                     -1);
    ck_assert_int_eq(errno, EIO);
}
END_TEST

/* An honest response that breaks nothing: the storm is survived, I/O goes on. */
START_TEST(test_event_storm_is_harmless)
{
    static uint8_t out[8192], back[8192];

    attach(BASIC, 0, 0);
    ck_assert_int_eq(hst_storm(&fk->end, 20000), 20000);
    for (int i = 0; i < 100; i++)
        guest_turn();
    ck_assert(!bhblkfront_broken(fb));
    fill(out, sizeof(out), 1);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 4096, sizeof(out), out), 0);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 4096, sizeof(back), back), 0);
    ck_assert_mem_eq(back, out, sizeof(out));
}
END_TEST

/*
 * The backend took requests and went away: after the reconnect (to a
 * backend that now offers less) they are reissued, split to fit.
 */
START_TEST(test_reconnect_reissues_in_flight)
{
    static uint8_t out[1 << 19], back[1 << 19];
    struct waiter w = {0, -1};

    struct bhblkfront_info in;

    attach(EVERYTHING, 2, 1);
    fill(out, sizeof(out), 5);
    fk->hold = true;
    /* On the last of 4 queues, which the new connection will not have. */
    ck_assert_int_eq(
        bhblkfront_submit_queue(fb, 3, BHBLKFRONT_WRITE, 0, sizeof(out), out, on_done, &w), 0);
    ck_assert_uint_ge(serve(fk, HONEST), 1);
    ck_assert_uint_ge(fk->on_queue[3], 1);
    guest_turn();
    ck_assert_int_eq(w.done, 0);
    bhblkfront_disconnect(fb);
    fk->hold = false;
    ck_assert_int_eq(hst_rm(&fk->end, "feature-max-indirect-segments"), 0);
    ck_assert_int_eq(hst_rm(&fk->end, "max-ring-page-order"), 0);
    ck_assert_int_eq(hst_set(&fk->end, "multi-queue-max-queues", "2"), 0);
    reattach();
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.queues, 2);
    ck_assert_uint_eq(fk->end.nqueues, 2);
    for (int i = 0; i < 1000 && w.done == 0; i++) {
        serve(fk, HONEST);
        guest_turn();
    }
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(fk->max_segs, 11);
    ck_assert_mem_eq(fk->disk, out, sizeof(out));
    ck_assert_int_eq(io(BHBLKFRONT_READ, 0, sizeof(back), back), 0);
    ck_assert_mem_eq(back, out, sizeof(out));
}
END_TEST

/* Bogus backend keys fail publish or connect with a reason, never the process. */
START_TEST(test_bogus_backend_keys)
{
    struct bhblkfront_cfg cfg = {0};
    char why[256];
    static const char *const keys[][2] = {{"sectors", "-1"},
                                          {"sector-size", "1000"},
                                          {"feature-discard", "yes"},
                                          {"info", "0x4"},
                                          {"physical-sector-size", "768"}};

    ck_assert_int_eq(hst_back_init(&fk->end, &did, HST_BLKIF, &dev), 0);
    ck_assert_int_eq(hst_back_publish(&fk->end), 0);
    ck_assert_int_eq(hst_set(&fk->end, keys[_i][0], "%s", keys[_i][1]), 0);
    cfg = (struct bhblkfront_cfg){.xs = gid.xs,
                                  .gntshr = gid.gs,
                                  .evtchn = gid.ev,
                                  .dir = fk->end.peer_dir,
                                  .backend = fk->end.dir,
                                  .backend_domid = drv.domid};
    fb = bhblkfront_new(&cfg);
    ck_assert_ptr_nonnull(fb);
    ck_assert_msg(bhblkfront_publish(fb, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(bhblkfront_connect(fb, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, keys[_i][0]) != NULL, "%s", why);
}
END_TEST

/*
 * Runs argv in the guest (it starts nbdkit with the plugin) against the
 * fake backend, which plays the backend's handshake and then serves (or
 * lies) until argv exits; returns its wait status.
 */
static int guest_nbdkit(char *const argv[], int out_fd, enum lie lie)
{
    char why[1024];
    int status = -1;
    pid_t pid;

    ck_assert_int_eq(hst_back_init(&fk->end, &did, HST_BLKIF, &dev), 0);
    ck_assert_int_eq(hst_back_publish(&fk->end), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "%u", DISK_SECTORS), 0);
    ck_assert_int_eq(hst_set(&fk->end, "feature-flush-cache", "1"), 0);
    ck_assert_int_eq(hst_set(&fk->end, "feature-max-indirect-segments", "32"), 0);
    for (size_t i = 0; i < nextra; i++)
        ck_assert_int_eq(hst_set(&fk->end, extra[i][0], "%s", extra[i][1]), 0);
    ck_assert_int_eq(hst_state(&fk->end, XenbusStateInitWait), 0);
    pid = hst_sim_spawn(&guest, argv, out_fd);
    ck_assert_int_gt(pid, 0);
    ck_assert_msg(hst_wait(did.xs, fk->end.peer_dir, HST_STATE(XenbusStateInitialised), true,
                           HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateInitialised,
                  "%s", why);
    ck_assert_msg(hst_back_connect(&fk->end) == 0, "%s", fk->end.why);
    fake_rings(fk);
    ck_assert_int_eq(hst_state(&fk->end, XenbusStateConnected), 0);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        struct pollfd p = {.fd = bhevtchn_fd(did.ev), .events = POLLIN};

        poll(&p, 1, 20);
        serve(fk, lie);
    }
    return status;
}

/*
 * The plugin loaded by real nbdkit inside the guest, against the fake
 * backend served from here: nbdinfo sees the size, nbdcopy writes the whole
 * disk and reads it back identical; the fake's disk holds what was written.
 */
/*
 * How nbdkit is started: in the background, with the plugin (%s) on the
 * vbd (%u); the script waits for its socket, talks to it, and stops it.
 * Not with --run: nbdkit forks that command once the plugin's event thread
 * runs, and a sanitizer runtime can deadlock in such a child.  In a
 * sanitizer build the plugin carries AddressSanitizer and nbdkit does not,
 * so its runtime is preloaded into nbdkit alone (with its leak check, which
 * would judge nbdkit's own exit, left off), with p11-kit after it, as
 * bulkhead-guest does (fe_vbd.c's vbd_spawn says why).
 */
#ifdef BH_ASAN_RUNTIME
#define NBDKIT_ENV "LD_PRELOAD='" BH_ASAN_RUNTIME " libp11-kit.so.0' ASAN_OPTIONS=detect_leaks=0 "
#else
#define NBDKIT_ENV ""
#endif
#define NBDKIT_START                                                                               \
    "rm -f /tmp/vbd.sock; " NBDKIT_ENV "nbdkit -U /tmp/vbd.sock -t 4 -f %s vbd=%u timeout=20000 %s " \
    "& nbd=$!; for i in $(seq 600); do [ -S /tmp/vbd.sock ] && break; sleep 0.1; done; "          \
    "uri='nbd+unix:///?socket=/tmp/vbd.sock'; "
#define NBDKIT_STOP "kill $nbd; wait $nbd || true; "
/*
 * After a lying backend broke the device: SIGTERM, and SIGKILL only as a
 * safety net a few seconds later, which fails the test (NBDKIT-HUNG): an
 * nbdkit that needs it hung in its shutdown (under AddressSanitizer it did,
 * in a glibc locale lock the sanitizer's late start had broken - see
 * fe_vbd.c's vbd_spawn).
 */
#define NBDKIT_STOP_BROKEN                                                                         \
    "kill $nbd; for i in $(seq 50); do kill -0 $nbd 2>/dev/null || break; sleep 0.1; done; "     \
    "kill -9 $nbd 2>/dev/null && echo NBDKIT-HUNG; wait $nbd || true; "

/* Twice: against a backend offering one queue, and with queues=2 against one offering 4. */
START_TEST(test_nbdkit_plugin_serves_the_vbd)
{
    char plugin[600], script[2048], outpath[] = "/tmp/check_blkfront.XXXXXX", out[4096];
    char *argv[] = {"/bin/sh", "-c", script, NULL}, cpus[64], mine[64];
    static const char *const offer4[][2] = {{"multi-queue-max-queues", "4"}};
    const char *p, *q;
    int fd, status = -1;
    ssize_t n;

    if (_i == 1) {
        extra = offer4;
        nextra = 1;
    }

    snprintf(plugin, sizeof(plugin), "%s/frontend/blk/.libs/nbdkit-bulkhead-plugin.so",
             test_builddir());
    snprintf(script, sizeof(script),
             "set -e; cd /tmp; head -c %u /dev/urandom > in; " NBDKIT_START
             "nbdinfo --size \"$uri\"; nbdinfo \"$uri\" | grep -E \"can_(multi_conn|flush)\"; "
             "nbdcopy in \"$uri\"; nbdcopy \"$uri\" back; cmp in back && echo SAME; "
             "echo CPUS=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/$nbd/task/*/status | "
             "sort -u | tr '\\n' ' '); echo MINE=$(awk '/^Cpus_allowed_list/ {print $2}' "
             "/proc/self/status); " NBDKIT_STOP "cat in",
             DISK_SECTORS * 512, plugin, dev.devid, _i == 1 ? "queues=2 cpu=all" : "");
    ck_assert_int_ge(fd = mkstemp(outpath), 0);
    unlink(outpath);
    status = guest_nbdkit(argv, fd, HONEST);
    n = pread(fd, out, sizeof(out) - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n < 1024 ? n : 1024] = '\0';
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, out);
    ck_assert_msg(strncmp(out, "1048576\n", 8) == 0 || strstr(out, "\n1048576\n") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "can_multi_conn: true") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "can_flush: true") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "SAME\n") != NULL, "%s", out);
    /*
     * Where nbdkit's threads (main, the event thread) may run: with cpu=all
     * where the shell may, by default on a single CPU.
     */
    ck_assert_msg((p = strstr(out, "CPUS=")) != NULL && (q = strstr(out, "MINE=")) != NULL, "%s",
                  out);
    ck_assert_int_eq(sscanf(p, "CPUS=%63[^\n]", cpus), 1); /* one line: echo joined them */
    ck_assert_int_eq(sscanf(q, "MINE=%63s", mine), 1);
    if (_i == 1)
        ck_assert_msg(strcmp(cpus, mine) == 0,
                      "cpu=all: nbdkit's threads may run on '%s', the shell on '%s'", cpus, mine);
    else
        ck_assert_msg(cpus[strspn(cpus, "0123456789")] == '\0',
                      "default cpu=auto: nbdkit's threads may run on '%s', not on one CPU", cpus);
    /* What the guest wrote (cat in, after the run) is on the fake's disk. */
    n = pread(fd, out, sizeof(out), 0);
    {
        static uint8_t in[DISK_SECTORS * 512 + 4096];
        off_t size = lseek(fd, 0, SEEK_END);

        ck_assert_int_ge(size, (off_t)sizeof(fk->disk));
        ck_assert_int_eq(pread(fd, in, sizeof(fk->disk), size - (off_t)sizeof(fk->disk)),
                         (ssize_t)sizeof(fk->disk));
        ck_assert_mem_eq(in, fk->disk, sizeof(fk->disk));
    }
    ck_assert_uint_gt(fk->indirect, 0);
    ck_assert_uint_eq(fk->end.nqueues, _i == 1 ? 2 : 1);
    ck_assert_uint_gt(fk->on_queue[0] + fk->on_queue[1], 0);
    close(fd);
}
END_TEST

/*
 * cpu= names a CPU this process may not use, or no CPU at all: nbdkit
 * refuses to start, with one line that says what to give.  No simulation
 * is needed: the plugin checks in config and config_complete.
 */
START_TEST(test_nbdkit_plugin_refuses_a_cpu_it_may_not_use)
{
    static const struct {
        const char *arg, *says;
    } cases[] = {
        {"cpu=1", "cpu=1: this process may not run on CPU 1 (taskset -p "},
        {"cpu=99999", "cpu=99999: give a CPU number below "},
        {"cpu=some", "cpu=some: give a CPU number below "},
    };
    char cmd[1024], out[2048];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FILE *f;
        size_t n;

        snprintf(cmd, sizeof(cmd),
                 NBDKIT_ENV "taskset -c 0 nbdkit -f -U /tmp/check_blkfront-cpu.sock "
                            "%s/frontend/blk/.libs/nbdkit-bulkhead-plugin.so vbd=51712 %s 2>&1",
                 test_builddir(), cases[i].arg);
        ck_assert_ptr_nonnull(f = popen(cmd, "r"));
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        ck_assert_msg(pclose(f) != 0, "%s: nbdkit started: %s", cases[i].arg, out);
        ck_assert_msg(strstr(out, cases[i].says) != NULL, "%s: %s", cases[i].arg, out);
    }
}
END_TEST

/*
 * A backend that lies to the plugin: the guest's reads fail with EIO, the
 * device gets its error node and goes Closing, and nbdkit lives on.
 */
START_TEST(test_nbdkit_plugin_survives_a_lying_backend)
{
    char plugin[600], script[2048], outpath[] = "/tmp/check_blkfront.XXXXXX", out[4096];
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    int fd, status, state;
    const char *p;
    ssize_t n;

    snprintf(plugin, sizeof(plugin), "%s/frontend/blk/.libs/nbdkit-bulkhead-plugin.so",
             test_builddir());
    snprintf(script, sizeof(script),
             "cd /tmp; " NBDKIT_START
             "if nbdcopy \"$uri\" back 2>/dev/null; then echo READ-OK; else echo READ-FAILED; fi; "
             "sz=$(nbdinfo --size \"$uri\") && echo \"SIZE=$sz ALIVE\"; " NBDKIT_STOP_BROKEN,
             plugin, dev.devid, "");
    ck_assert_int_ge(fd = mkstemp(outpath), 0);
    unlink(outpath);
    status = guest_nbdkit(argv, fd, BAD_STATUS);
    n = pread(fd, out, sizeof(out) - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n] = '\0';
    close(fd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, out);
    /*
     * nbdkit's own error lines go to the same output, between ours, and
     * may come in pieces (stderr is unbuffered): each of ours is one echo,
     * one write, so it is never split.
     */
    ck_assert_msg((p = strstr(out, "READ-FAILED\n")) != NULL, "%s", out);
    ck_assert_msg(strstr(p, "SIZE=1048576 ALIVE\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "READ-OK") == NULL, "%s", out);
    /* It stopped on SIGTERM, closing the broken device: no SIGKILL was needed. */
    ck_assert_msg(strstr(out, "NBDKIT-HUNG") == NULL, "nbdkit did not stop on SIGTERM: %s", out);
    ck_assert_int_eq(hst_read_error(sim.xs, fk->end.peer_dir, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "status 7") != NULL, "%s", out);
    state = hst_read_state(sim.xs, fk->end.peer_dir);
    ck_assert_msg(state == XenbusStateClosing || state == XenbusStateClosed, "state %d", state);
}
END_TEST

/* ---- the feature space, pairwise ---- */

/*
 * Every handshake knob of both ends is a factor with a few levels; the
 * table below is a pairwise covering array over them: for any two
 * factors, every combination of their levels is in some row (so every
 * feature is on and off at least once, and every interaction of two is
 * met), in 14 rows instead of the 2^6 * 3^5 = 15552 of the full product.
 * test_pairwise_table_covers_every_pair checks that property, so a
 * column added (a factor, its levels, what the row test sets and checks)
 * fails that test until the rows are extended to cover the new pairs - the
 * covering array was found by a
 * greedy search (each new row the random candidate covering the most
 * uncovered pairs), and rows may be added by hand the same way.
 */
enum factor {
    F_FE_PERSISTENT, /* frontend asks for persistent grants: no, yes */
    F_FE_INDIRECT,   /* frontend uses indirect requests: no, yes */
    F_FE_ORDER,      /* frontend's wanted ring order: fe_orders[] */
    F_TRUSTED,       /* the toolstack's trusted key: 0, 1 */
    F_BE_PERSISTENT, /* backend offers feature-persistent: no, yes */
    F_BE_INDIRECT,   /* backend's feature-max-indirect-segments: be_indirect[] */
    F_BE_MAX_ORDER,  /* backend's max-ring-page-order: be_max_order[] */
    F_BE_FLUSH_TRIM, /* backend offers flush and discard: no, yes */
    F_FE_QUEUES,     /* frontend's wanted queues: fe_queues[] */
    F_BE_QUEUES,     /* backend's multi-queue-max-queues: be_queues[] */
    F_SECTOR,        /* backend's sector-size: 512, 4096 */
    NFACTORS
};

static const unsigned int nlevels[NFACTORS] = {2, 2, 3, 2, 2, 3, 3, 2, 3, 3, 2};
static const unsigned int fe_queues[3] = {1, 2, 4};
static const unsigned int be_queues[3] = {0, 2, 4}; /* 0: no key */
static const unsigned int fe_orders[3] = {0, 2, 4};
static const unsigned int be_indirect[3] = {0, 32, 256}; /* 0: no key */
static const int be_max_order[3] = {-1, 1, 4};           /* -1: no key */

static const unsigned char pairwise[][NFACTORS] = {
    {0, 1, 1, 1, 0, 0, 1, 0, 1, 2, 0}, {1, 1, 2, 0, 1, 2, 2, 1, 0, 1, 1},
    {0, 0, 0, 1, 0, 1, 0, 0, 2, 0, 1}, {1, 0, 0, 0, 1, 0, 0, 1, 0, 2, 0},
    {0, 0, 2, 0, 1, 2, 1, 0, 2, 1, 0}, {1, 1, 1, 1, 1, 1, 2, 1, 2, 0, 0},
    {1, 1, 0, 0, 0, 2, 1, 1, 1, 0, 1}, {0, 0, 1, 1, 0, 0, 2, 0, 0, 1, 1},
    {0, 1, 2, 1, 1, 1, 0, 1, 1, 1, 0}, {1, 0, 2, 0, 0, 1, 1, 0, 0, 2, 1},
    {1, 0, 1, 0, 0, 2, 0, 1, 2, 2, 1}, {1, 0, 0, 1, 1, 2, 2, 0, 1, 1, 0},
    {0, 1, 2, 0, 0, 0, 1, 0, 0, 0, 1}, {0, 0, 1, 1, 1, 0, 2, 0, 2, 2, 0},
};
#define NROWS ((int)(sizeof(pairwise) / sizeof(pairwise[0])))

START_TEST(test_pairwise_table_covers_every_pair)
{
    for (unsigned int f = 0; f < NFACTORS; f++)
        for (unsigned int g = f + 1; g < NFACTORS; g++)
            for (unsigned int a = 0; a < nlevels[f]; a++)
                for (unsigned int b = 0; b < nlevels[g]; b++) {
                    bool met = false;

                    for (int r = 0; r < NROWS && !met; r++)
                        met = pairwise[r][f] == a && pairwise[r][g] == b;
                    ck_assert_msg(met, "no row has factor %u at level %u with factor %u at %u", f,
                                  a, g, b);
                }
    for (int r = 0; r < NROWS; r++)
        for (unsigned int f = 0; f < NFACTORS; f++)
            ck_assert_uint_lt(pairwise[r][f], nlevels[f]);
}
END_TEST

/* What a frontend key of ours reads ("" when absent). */
static void front_key(const char *key, char *buf, size_t size)
{
    char path[300], *v;
    unsigned int len;

    snprintf(path, sizeof(path), "%s/%s", fk->end.peer_dir, key);
    v = xs_read(sim.xs, XBT_NULL, path, &len);
    snprintf(buf, size, "%s", v ? v : "");
    free(v);
}

/*
 * One row: both ends offer what it says, handshake to Connected, and what
 * was negotiated is exactly what both offered; then data moves (a 1 MiB
 * write, split as negotiated, read back), a flush and a discard where
 * negotiated, refused where not.
 */
START_TEST(test_pairwise_handshake)
{
    const unsigned char *row = pairwise[_i];
    struct bhblkfront_cfg cfg = {0};
    struct bhblkfront_info in;
    static uint8_t out[1 << 20], back[1 << 20];
    unsigned int want = fe_orders[row[F_FE_ORDER]], ind = be_indirect[row[F_BE_INDIRECT]];
    int maxo = be_max_order[row[F_BE_MAX_ORDER]];
    unsigned int order = maxo < 0 ? 0 : (want < (unsigned int)maxo ? want : (unsigned int)maxo);
    bool indirect = row[F_FE_INDIRECT] && ind > BLKIF_MAX_SEGMENTS_PER_REQUEST;
    unsigned int wantq = fe_queues[row[F_FE_QUEUES]], offq = be_queues[row[F_BE_QUEUES]];
    unsigned int nq = offq == 0 ? 1 : (wantq < offq ? wantq : offq);
    unsigned int ssize = row[F_SECTOR] ? 4096 : 512;
    uint8_t small[4096];
    char v[16];

    ck_assert_int_eq(hst_back_init(&fk->end, &did, HST_BLKIF, &dev), 0);
    ck_assert_int_eq(hst_back_publish(&fk->end), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sectors", "%u", DISK_SECTORS), 0);
    if (!row[F_BE_PERSISTENT])
        ck_assert_int_eq(hst_rm(&fk->end, "feature-persistent"), 0);
    if (ind > 0)
        ck_assert_int_eq(hst_set(&fk->end, "feature-max-indirect-segments", "%u", ind), 0);
    if (maxo < 0)
        ck_assert_int_eq(hst_rm(&fk->end, "max-ring-page-order"), 0);
    else
        ck_assert_int_eq(hst_set(&fk->end, "max-ring-page-order", "%d", maxo), 0);
    if (row[F_BE_FLUSH_TRIM]) {
        ck_assert_int_eq(hst_set(&fk->end, "feature-flush-cache", "1"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "feature-discard", "1"), 0);
        ck_assert_int_eq(hst_set(&fk->end, "discard-granularity", "4096"), 0);
    }
    if (offq == 0)
        ck_assert_int_eq(hst_rm(&fk->end, "multi-queue-max-queues"), 0);
    else
        ck_assert_int_eq(hst_set(&fk->end, "multi-queue-max-queues", "%u", offq), 0);
    ck_assert_int_eq(hst_set(&fk->end, "sector-size", "%u", ssize), 0);
    ck_assert_int_eq(hst_set(&fk->end, "physical-sector-size", "%u", ssize), 0);
    cfg.ring_order = want;
    cfg.queues = wantq;
    cfg.no_persistent = !row[F_FE_PERSISTENT];
    cfg.no_indirect = !row[F_FE_INDIRECT];
    attach_front(&cfg, row[F_TRUSTED]);

    /* Negotiated: what both offered, no more. */
    ck_assert_int_eq(bhblkfront_get_info(fb, &in), 0);
    ck_assert_uint_eq(in.ring_order, order);
    ck_assert_uint_eq(in.ring_slots, 32u << order);
    ck_assert_uint_eq(fk->end.ring[0].order, order); /* what the backend mapped */
    ck_assert_int_eq(in.persistent, row[F_FE_PERSISTENT] && row[F_BE_PERSISTENT]);
    front_key("feature-persistent", v, sizeof(v));
    ck_assert_str_eq(v, row[F_FE_PERSISTENT] ? "1" : "0");
    ck_assert_int_eq(in.indirect, indirect);
    ck_assert_uint_eq(in.max_segments, !indirect ? BLKIF_MAX_SEGMENTS_PER_REQUEST
                                       : ind < BHBLKFRONT_MAX_INDIRECT ? ind
                                                                       : BHBLKFRONT_MAX_INDIRECT);
    ck_assert_int_eq(in.trusted, row[F_TRUSTED]);
    ck_assert_int_eq(in.flush, row[F_BE_FLUSH_TRIM]);
    ck_assert_int_eq(in.discard, row[F_BE_FLUSH_TRIM]);
    ck_assert_uint_eq(in.queues, nq);
    ck_assert_uint_eq(fk->end.nqueues, nq); /* what the backend mapped */
    ck_assert_uint_eq(in.sector_size, ssize);
    ck_assert_uint_eq(in.sectors, DISK_SECTORS); /* 512-byte units whatever the sector */

    /* One logical sector's write on every queue, all on their rings at once. */
    write_each_queue(nq, 64 * 4096, 4096, ssize, 100);
    /* Less than a logical sector is refused before it reaches the ring. */
    ck_assert_int_eq(io(BHBLKFRONT_READ, 512, 512, small), ssize == 512 ? 0 : -EINVAL);

    /* Data: split as negotiated, on the fake's disk, read back the same. */
    fill(out, sizeof(out), (unsigned int)_i);
    ck_assert_int_eq(io(BHBLKFRONT_WRITE, 0, sizeof(out), out), 0);
    ck_assert_mem_eq(fk->disk, out, sizeof(out));
    ck_assert_uint_le(fk->max_segs, in.max_segments);
    ck_assert_int_eq(fk->indirect > 0, indirect);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 0, sizeof(back), back), 0);
    ck_assert_mem_eq(back, out, sizeof(out));
    ck_assert_int_eq(io(BHBLKFRONT_FLUSH, 0, 0, NULL), row[F_BE_FLUSH_TRIM] ? 0 : -ENOTSUP);
    ck_assert_uint_eq(fk->flushes, row[F_BE_FLUSH_TRIM]);
    ck_assert_int_eq(io(BHBLKFRONT_DISCARD, 8192, 8192, NULL), row[F_BE_FLUSH_TRIM] ? 0 : -ENOTSUP);
    ck_assert_uint_eq(fk->discards, row[F_BE_FLUSH_TRIM]);
    ck_assert_int_eq(io(BHBLKFRONT_READ, 8192, 8192, back), 0);
    for (int i = 0; i < 8192; i++)
        ck_assert_uint_eq(back[i], row[F_BE_FLUSH_TRIM] ? 0 : out[8192 + i]);
    ck_assert(!bhblkfront_broken(fb));
    ck_assert_int_eq(bhblkfront_in_flight(fb), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blkfront");
    TCase *tc = tcase_create("blkfront");
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces): run make check as root\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_basic_backend_falls_back);
    tcase_add_test(tc, test_everything_offered_is_used);
    tcase_add_test(tc, test_barrier_and_read_only);
    tcase_add_test(tc, test_resize_refresh);
    tcase_add_loop_test(tc, test_untrusted_pages_hold_only_the_request, 0, 2);
    tcase_add_loop_test(tc, test_lying_backend_breaks_the_device, DUP_ID, LIES);
    tcase_add_test(tc, test_event_storm_is_harmless);
    tcase_add_loop_test(tc, test_queues_negotiated_and_used, 0, 3);
    tcase_add_test(tc, test_lie_on_one_queue_breaks_the_device);
    tcase_add_test(tc, test_reconnect_reissues_in_flight);
    tcase_add_loop_test(tc, test_bogus_backend_keys, 0, 5);
    tcase_add_loop_test(tc, test_nbdkit_plugin_serves_the_vbd, 0, 2);
    tcase_add_test(tc, test_nbdkit_plugin_survives_a_lying_backend);
    tcase_add_loop_test(tc, test_pairwise_handshake, 0, NROWS);
    suite_add_tcase(s, tc);
    tc = tcase_create("pairwise table"); /* no simulation: a property of the table */
    tcase_add_test(tc, test_pairwise_table_covers_every_pair);
    suite_add_tcase(s, tc);
    tc = tcase_create("plugin parameters"); /* refused before any device is opened */
    tcase_add_test(tc, test_nbdkit_plugin_refuses_a_cpu_it_may_not_use);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
