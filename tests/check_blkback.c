/*
 * check_blkback.c - blkback's engine (backend/blk) served for real through
 * the simulation: a frontend in a guest (tests/hostile.h) grants its ring
 * and data pages, the engine maps them as the driver domain and reads and
 * writes a temporary image with io_uring.  Data are compared byte for byte
 * with the image; lies fail the lying ring only, while a second guest's
 * ring keeps being served.  Needs root (namespaces).
 *
 * The _nbd variants serve the same image through an NBD server (nbdkit's
 * file plugin on a unix socket) and the engine's libnbd storage instead of
 * io_uring: the same bytes must land in the same places.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bhblkback.h"
#include "hostile.h"

#define IMG_SECTORS 4096u /* 2 MiB */

static struct hst_sim sim;
static struct hst_domain guest, guest2, drv;
static struct hst_id gid, gid2, did;
static struct bhxb_layout *lay, *lay2;

struct pair {
    struct hst_end f, b;
    struct bhring fr;
    struct bhblk *eng;
    struct bhblk_kept kept;
    int img;
    char path[64];
    pid_t nbdkit; /* serving path over NBD; 0: none */
};

static struct pair p1, p2;

/* Engines opened with feature-persistent negotiated (the _persistent variants). */
static bool use_persistent;
static bool use_buffered; /* the engine's page-cache mode instead of O_DIRECT */
/* The disk's logical block size for the engines opened (0: 512). */
static unsigned int use_sector_size;
/* A disk to serve instead of a fresh temporary image (-1: none), filled as pair_open's. */
static int use_fd = -1;
/* Engines serving the image through nbdkit (the _nbd variants); nbdkit -r with nbd_ro. */
static bool use_nbd, nbd_ro;
/* nbdkit's delay filter in front of reads: a read stays in flight (test_server_dies_nbd). */
static bool nbd_slow_reads;

/* nbdkit's file plugin on p->path, and the engine's connection to it. */
static struct bhnbd *nbd_serve(struct pair *p)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char pidfile[80], why[256];
    struct bhnbd *n;
    int s;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.sock", p->path);
    snprintf(pidfile, sizeof(pidfile), "%s.pid", p->path);
    /*
     * In the foreground, dying with this test's process even when an
     * assertion ends it early; it writes its pid file once it listens.
     */
    ck_assert_int_ge(p->nbdkit = fork(), 0);
    if (p->nbdkit == 0) {
        char *argv[16] = {"nbdkit", "--exit-with-parent", "-f", nbd_ro ? "-r" : "-t4",
                          "-U",     sa.sun_path,          "-P", pidfile};
        int k = 8;
        if (nbd_slow_reads)
            argv[k++] = "--filter=delay";
        argv[k++] = "file";
        argv[k++] = p->path;
        if (nbd_slow_reads)
            argv[k++] = "rdelay=3600";
        execvp("nbdkit", argv);
        _exit(127);
    }
    for (int ms = 0; access(pidfile, F_OK) != 0; ms += 10) {
        int st;
        ck_assert_msg(waitpid(p->nbdkit, &st, WNOHANG) == 0, "nbdkit exited: is it installed?");
        ck_assert_msg(ms < HST_TIMEOUT_MS, "nbdkit did not listen"); /* a hang fails */
        usleep(10000);
    }
    unlink(pidfile);
    ck_assert_int_ge(s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = bhnbd_open(s, why, sizeof(why));
    ck_assert_msg(n != NULL, "%s", why);
    ck_assert_uint_eq(bhnbd_info(n)->size, IMG_SECTORS * 512ull);
    ck_assert(bhnbd_info(n)->readonly == nbd_ro);
    return n;
}

static void nbd_stop(struct pair *p)
{
    char sock[80];

    if (p->nbdkit > 0) {
        kill(p->nbdkit, SIGKILL);
        waitpid(p->nbdkit, NULL, 0);
    }
    p->nbdkit = 0;
    snprintf(sock, sizeof(sock), "%s.sock", p->path);
    unlink(sock);
    unlink(p->path);
}

static void pair_open(struct pair *p, struct hst_id *fid, uint32_t fdomid, unsigned int order,
                      bool ro)
{
    struct bhxb_dev dev = {"vbd", NULL, fdomid, drv.domid, 51712};
    struct bhblk_opts o = {0};
    char why[256];
    uint8_t buf[4096];

    ck_assert_msg(hst_front_init(&p->f, fid, HST_BLKIF, &dev, order) == 0, "%s", p->f.why);
    ck_assert_int_eq(hst_front_publish(&p->f), 0);
    ck_assert_int_eq(hst_back_init(&p->b, &did, HST_BLKIF, &dev), 0);
    ck_assert_msg(hst_back_connect(&p->b) == 0, "%s", p->b.why);
    ck_assert_int_eq(bhring_attach(&p->fr, &bhring_blkif, BHRING_FRONT, (void *)p->f.ring[0].sh,
                                   order, 0, false),
                     0);
    snprintf(p->path, sizeof(p->path), "/tmp/check_blkback.XXXXXX");
    if (use_fd >= 0) {
        p->img = dup(use_fd);
    } else {
        p->img = mkstemp(p->path);
        if (!use_nbd)
            unlink(p->path); /* nbdkit opens it by name */
    }
    ck_assert_int_ge(p->img, 0);
    p->nbdkit = 0;
    for (unsigned int i = 0; use_fd < 0 && i < IMG_SECTORS * 512 / sizeof(buf); i++) {
        for (size_t k = 0; k < sizeof(buf); k++)
            buf[k] = (uint8_t)rand();
        ck_assert_int_eq(write(p->img, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    }
    memset(&p->kept, 0, sizeof(p->kept));
    o.fd = p->img;
    o.domid = fdomid;
    o.gt = did.gt;
    o.ring = (void *)p->b.ring[0].sh;
    o.order = order;
    o.geom = (struct bhblk_geom){.sectors = IMG_SECTORS,
                                 .readonly = ro,
                                 .discard = true,
                                 .max_indirect = BHBLK_MAX_INDIRECT};
    o.geom.sector_size = use_sector_size;
    o.kept = &p->kept;
    o.persistent = use_persistent;
    o.direct = !use_buffered;
    if (use_nbd) {
        o.nbd = nbd_serve(p);
        o.fd = -1;
    }
    p->eng = bhblk_open(&o, why, sizeof(why));
    ck_assert_msg(p->eng != NULL, "%s", why);
    ck_assert(!bhblk_direct(p->eng) || !use_buffered);
}

static void pair_close(struct pair *p)
{
    bhblk_close(p->eng);
    p->eng = NULL;
    hst_end_close(&p->b);
    hst_end_close(&p->f);
    close(p->img);
    if (use_nbd)
        nbd_stop(p);
}

static void setup(void)
{
    char err[512];
    struct bhxb_dev d1, d2;

    srand(1);
    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest2", 0, &guest2), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    ck_assert_int_eq(hst_id_open(&gid2, guest2.uid), 0);
    ck_assert_int_eq(hst_id_open(&did, drv.uid), 0);
    d1 = (struct bhxb_dev){"vbd", NULL, guest.domid, drv.domid, 51712};
    d2 = (struct bhxb_dev){"vbd", NULL, guest2.domid, drv.domid, 51712};
    ck_assert_ptr_nonnull(lay = hst_layout(sim.xs, &d1));
    ck_assert_ptr_nonnull(lay2 = hst_layout(sim.xs, &d2));
}

static void teardown(void)
{
    bhxb_layout_free(lay);
    bhxb_layout_free(lay2);
    hst_id_close(&did);
    hst_id_close(&gid2);
    hst_id_close(&gid);
    hst_sim_stop(&sim);
}

/*
 * Publishes the request (len bytes of a blkif_request or one of its
 * variants, the rest of the slot zero), serves until its response comes;
 * returns the status (or -100: lie).
 */
#define roundtrip(p, req) roundtrip_n((p), (req), sizeof(*(req)))
static int roundtrip_n(struct pair *p, const void *in, size_t len)
{
    struct blkif_response rsp;
    struct blkif_request slot, *r = &slot;
    char why[256];
    int got;

    ck_assert_uint_le(len, sizeof(slot));
    memset(&slot, 0, sizeof(slot));
    memcpy(&slot, in, len);
    ck_assert_int_eq(bhring_front_put(&p->fr, &slot), 0);
    ck_assert_int_ge(bhring_front_push(&p->fr), 0);
    for (;;) {
        struct pollfd pf = {.fd = bhblk_fd(p->eng), .events = POLLIN};
        if (bhblk_run(p->eng, why, sizeof(why)) < 0)
            return -100;
        if ((got = bhring_front_get(&p->fr, &rsp)) == 1)
            break;
        ck_assert_int_eq(got, 0);
        ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0); /* a hang fails, never a speed */
    }
    ck_assert_uint_eq(rsp.id, r->id);
    /* An indirect request is answered with the operation it carried (as Linux's blkback). */
    if (r->operation == BLKIF_OP_INDIRECT)
        ck_assert_uint_eq(rsp.operation, ((const struct blkif_request_indirect *)r)->indirect_op);
    else
        ck_assert_uint_eq(rsp.operation, r->operation);
    return rsp.status;
}

/* A read or write of the segments (first[i]..last[i]) at sector, through direct or indirect. */
static void rw(struct pair *p, uint8_t op, uint64_t sector, unsigned int n, const uint8_t *first,
               const uint8_t *last, bool indirect, int want)
{
    uint32_t refs[BHBLK_MAX_INDIRECT], iref;
    uint8_t *pages = hst_grant(&p->f, n, op == BLKIF_OP_READ, refs);
    struct blkif_request_segment *isegs = NULL;
    struct blkif_request req = {0};
    uint8_t *expect = malloc((size_t)n * 4096);
    uint64_t off = sector * 512;
    static uint64_t id = 1;

    ck_assert_ptr_nonnull(pages);
    for (unsigned int i = 0; i < n * 4096u; i++)
        pages[i] = (uint8_t)rand();
    if (indirect) {
        struct blkif_request_indirect *ind = (void *)&req;
        isegs = hst_grant(&p->f, 1, false, &iref);
        ck_assert_ptr_nonnull(isegs);
        for (unsigned int i = 0; i < n; i++)
            isegs[i] = (struct blkif_request_segment){refs[i], first[i], last[i]};
        ind->operation = BLKIF_OP_INDIRECT;
        ind->indirect_op = op;
        ind->nr_segments = (uint16_t)n;
        ind->id = id++;
        ind->sector_number = sector;
        ind->indirect_grefs[0] = iref;
    } else {
        req.operation = op;
        req.nr_segments = (uint8_t)n;
        req.id = id++;
        req.sector_number = sector;
        for (unsigned int i = 0; i < n; i++)
            req.seg[i] = (struct blkif_request_segment){refs[i], first[i], last[i]};
    }
    ck_assert_int_eq(roundtrip(p, &req), want);
    for (unsigned int i = 0; want == 0 && i < n; i++) {
        size_t len = (size_t)(last[i] - first[i] + 1) * 512;
        ck_assert_int_eq(pread(p->img, expect, len, (off_t)off), (ssize_t)len);
        ck_assert_msg(memcmp(expect, pages + (size_t)i * 4096 + first[i] * 512u, len) == 0,
                      "segment %u of %u (sector %llu, %u..%u, %s) differs", i, n,
                      (unsigned long long)sector, first[i], last[i], indirect ? "indirect" : "direct");
        off += len;
    }
    if (isegs)
        hst_ungrant(&p->f, isegs, 1);
    hst_ungrant(&p->f, pages, n);
    free(expect);
}

/* Reads and writes of every segment count, size and alignment, direct and indirect. */
START_TEST(test_rw_sizes)
{
    uint8_t first[BHBLK_MAX_INDIRECT], last[BHBLK_MAX_INDIRECT];

    pair_open(&p1, &gid, guest.domid, 0, false);
    for (unsigned int n = 1; n <= BLKIF_MAX_SEGMENTS_PER_REQUEST; n++)
        for (unsigned int shape = 0; shape < 4; shape++) {
            for (unsigned int i = 0; i < n; i++) {
                first[i] = (uint8_t)(shape == 0 ? 0 : (i + shape) % 8);
                last[i] = (uint8_t)(shape == 0 ? 7 : first[i] + (7 - first[i]) * (shape & 1));
            }
            uint64_t sector = (n * 37 + shape * 13) % (IMG_SECTORS - 100);
            rw(&p1, BLKIF_OP_WRITE, sector, n, first, last, false, 0);
            rw(&p1, BLKIF_OP_READ, sector + shape, n, first, last, false, 0);
        }
    for (unsigned int n = 1; n <= BHBLK_MAX_INDIRECT; n = n * 2 + 3) {
        for (unsigned int i = 0; i < n; i++) {
            first[i] = (uint8_t)(i % 3);
            last[i] = (uint8_t)(7 - i % 2);
        }
        rw(&p1, BLKIF_OP_WRITE, 7, n, first, last, true, 0);
        rw(&p1, BLKIF_OP_READ, 3, n, first, last, true, 0);
    }
    for (unsigned int i = 0; i < BHBLK_MAX_INDIRECT; i++)
        first[i] = 0, last[i] = 7;
    rw(&p1, BLKIF_OP_WRITE, IMG_SECTORS - 8 * BHBLK_MAX_INDIRECT, BHBLK_MAX_INDIRECT, first, last,
       true, 0);
    rw(&p1, BLKIF_OP_READ, IMG_SECTORS - 8, 1, first, last, false, 0); /* the last page */
    ck_assert_uint_eq(bhblk_in_flight(p1.eng), 0);
    pair_close(&p1);
}
END_TEST

/*
 * The same with persistent grants: pages granted read-write stay mapped in
 * the engine and serve later requests from there; read-only ones (the pages
 * of writes, here) are mapped per request.  Byte for byte as without.
 */
START_TEST(test_rw_sizes_persistent)
{
    use_persistent = true;
    test_rw_sizes_fn(_i);
    use_persistent = false;
}
END_TEST

/* The same through the page cache (a file without direct-io-safe). */
START_TEST(test_rw_sizes_buffered)
{
    use_buffered = true;
    test_rw_sizes_fn(_i);
    use_buffered = false;
}
END_TEST

/* Flush and barrier answer OK; discard punches a hole (fewer blocks, zeroes read back). */
START_TEST(test_flush_discard)
{
    struct blkif_request req = {.operation = BLKIF_OP_FLUSH_DISKCACHE, .id = 77};
    struct blkif_request_discard dis = {.operation = BLKIF_OP_DISCARD, .id = 78,
                                        .sector_number = 256, .nr_sectors = 1024};
    uint8_t first[1] = {0}, last[1] = {7}, buf[512 * 1024];
    struct stat before, after;

    pair_open(&p1, &gid, guest.domid, 2, false);
    ck_assert_int_eq(roundtrip(&p1, &req), BLKIF_RSP_OKAY);
    req.operation = BLKIF_OP_WRITE_BARRIER;
    ck_assert_int_eq(roundtrip(&p1, &req), BLKIF_RSP_OKAY);
    ck_assert_int_eq(fstat(p1.img, &before), 0);
    ck_assert_int_eq(roundtrip(&p1, &dis), BLKIF_RSP_OKAY);
    ck_assert_int_eq(fstat(p1.img, &after), 0);
    ck_assert_int_lt(after.st_blocks, before.st_blocks);
    ck_assert_int_eq(after.st_size, before.st_size);
    ck_assert_int_eq(pread(p1.img, buf, sizeof(buf), 256 * 512), (ssize_t)sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0);
    rw(&p1, BLKIF_OP_READ, 300, 1, first, last, false, 0); /* the hole reads as zeroes */
    pair_close(&p1);
}
END_TEST

/* A read-only disk reads, and refuses writes, barriers with data and discards. */
START_TEST(test_readonly)
{
    uint8_t first[2] = {0, 0}, last[2] = {7, 7};
    struct blkif_request_discard dis = {.operation = BLKIF_OP_DISCARD, .id = 9,
                                        .sector_number = 0, .nr_sectors = 8};
    uint8_t before[8192], now[8192];

    pair_open(&p1, &gid, guest.domid, 0, true);
    ck_assert_int_eq(pread(p1.img, before, sizeof(before), 0), (ssize_t)sizeof(before));
    rw(&p1, BLKIF_OP_WRITE, 0, 2, first, last, false, BLKIF_RSP_ERROR);
    rw(&p1, BLKIF_OP_WRITE, 0, 2, first, last, true, BLKIF_RSP_ERROR);
    rw(&p1, BLKIF_OP_READ, 0, 2, first, last, false, BLKIF_RSP_OKAY);
    ck_assert_int_eq(roundtrip(&p1, &dis), BLKIF_RSP_ERROR);
    ck_assert_int_eq(pread(p1.img, now, sizeof(now), 0), (ssize_t)sizeof(now));
    ck_assert_mem_eq(before, now, sizeof(now));
    pair_close(&p1);
}
END_TEST

enum { LIE_RANGE, LIE_WRAP, LIE_BOUNDS, LIE_GREF, LIE_NSEG, LIE_IND_NSEG, LIE_IND_GREF, LIE_OP,
       LIE_PROD, LIE_CASES };

/* Each lie breaks the liar's ring only: the other guest's keeps being served. */
START_TEST(test_lies)
{
    struct blkif_request req = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 5};
    struct blkif_request_indirect *ind = (void *)&req;
    uint8_t first[1] = {0}, last[1] = {7};
    uint32_t ref;
    void *page;
    char why[256];

    pair_open(&p1, &gid, guest.domid, 0, false);
    pair_open(&p2, &gid2, guest2.domid, 0, false);
    page = hst_grant(&p1.f, 1, true, &ref);
    req.seg[0] = (struct blkif_request_segment){ref, 0, 7};
    switch (_i) {
    case LIE_RANGE: req.sector_number = IMG_SECTORS - 7; break;
    case LIE_WRAP: req.sector_number = UINT64_MAX - 3; break;
    case LIE_BOUNDS: req.seg[0].first_sect = 6, req.seg[0].last_sect = 2; break;
    case LIE_GREF: req.seg[0].gref = 0xfffff; break;
    case LIE_NSEG: req.nr_segments = 12; break;
    case LIE_IND_NSEG:
        ind->operation = BLKIF_OP_INDIRECT, ind->indirect_op = BLKIF_OP_READ;
        ind->nr_segments = BHBLK_MAX_INDIRECT + 1, ind->indirect_grefs[0] = ref;
        break;
    case LIE_IND_GREF:
        ind->operation = BLKIF_OP_INDIRECT, ind->indirect_op = BLKIF_OP_READ;
        ind->nr_segments = 4, ind->indirect_grefs[0] = 0xfffff;
        break;
    case LIE_OP: req.operation = BLKIF_OP_RESERVED_1; break;
    case LIE_PROD: break;
    }
    if (_i == LIE_PROD) {
        hst_idx_set(&p1.f.ring[0], HST_REQ_PROD, p1.f.ring[0].nr_ents + 1);
        ck_assert_int_eq(bhblk_run(p1.eng, why, sizeof(why)), -1);
    } else {
        ck_assert_int_eq(roundtrip(&p1, &req), -100);
    }
    ck_assert_int_eq(bhblk_run(p1.eng, why, sizeof(why)), -1); /* and stays broken */
    ck_assert_int_gt(strlen(why), 10);
    rw(&p2, BLKIF_OP_WRITE, 8, 1, first, last, false, 0);
    rw(&p2, BLKIF_OP_READ, 8, 1, first, last, false, 0);
    hst_ungrant(&p1.f, page, 1);
    pair_close(&p2);
    pair_close(&p1);
}
END_TEST

/* Over NBD: the size matrix, with contiguous mappings and with persistent pages. */
START_TEST(test_rw_sizes_nbd)
{
    use_nbd = true;
    use_persistent = _i == 1;
    test_rw_sizes_fn(0);
}
END_TEST

/* Over NBD: flush and barrier reach the server, discard (its trim) punches the hole. */
START_TEST(test_flush_discard_nbd)
{
    use_nbd = true;
    test_flush_discard_fn(0);
}
END_TEST

/*
 * Over NBD to a server that is read-only: it says so (the driver publishes
 * it), reads work, and a write that got past a geometry claiming otherwise
 * is refused by the server itself - an error, and the image unchanged.
 */
START_TEST(test_readonly_nbd)
{
    uint8_t first[2] = {0, 0}, last[2] = {7, 7}, before[8192], now[8192];

    use_nbd = true;
    nbd_ro = true;
    pair_open(&p1, &gid, guest.domid, 0, false); /* checks the server's read-only flag */
    ck_assert_int_eq(pread(p1.img, before, sizeof(before), 0), (ssize_t)sizeof(before));
    rw(&p1, BLKIF_OP_WRITE, 0, 2, first, last, false, BLKIF_RSP_ERROR);
    rw(&p1, BLKIF_OP_READ, 0, 2, first, last, false, BLKIF_RSP_OKAY);
    ck_assert_int_eq(pread(p1.img, now, sizeof(now), 0), (ssize_t)sizeof(now));
    ck_assert_mem_eq(before, now, sizeof(now));
    pair_close(&p1);
}
END_TEST

/*
 * Writes, a flush and a write after it, pushed together: the flush is
 * answered after every write before it (NBD's flush covers only answered
 * writes, so the engine holds it back until they are), and all succeed.
 */
START_TEST(test_flush_orders_nbd)
{
    enum { NW = 24 };
    uint32_t refs[NW + 1];
    uint8_t *pages;
    struct blkif_request req;
    struct blkif_response rsp;
    unsigned int answered = 0, flush_at = 0;
    char why[256];

    use_nbd = true;
    pair_open(&p1, &gid, guest.domid, 2, false);
    ck_assert_ptr_nonnull(pages = hst_grant(&p1.f, NW + 1, false, refs));
    for (unsigned int i = 0; i <= NW; i++) {
        memset(pages + (size_t)i * 4096, 'a' + i % 26, 4096);
        req = (struct blkif_request){
            .operation = BLKIF_OP_WRITE, .nr_segments = 1, .id = i, .sector_number = 8u * i};
        req.seg[0] = (struct blkif_request_segment){refs[i], 0, 7};
        if (i == NW - 1) /* the flush, with no data */
            req = (struct blkif_request){.operation = BLKIF_OP_FLUSH_DISKCACHE, .id = i};
        ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
    }
    ck_assert_int_ge(bhring_front_push(&p1.fr), 0);
    while (answered <= NW) {
        struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
        ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
        while (bhring_front_get(&p1.fr, &rsp) == 1) {
            ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
            if (rsp.id == NW - 1)
                flush_at = answered;
            answered++;
        }
        if (answered <= NW)
            ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
    }
    ck_assert_uint_ge(flush_at, NW - 1); /* every write before it was answered first */
    for (unsigned int i = 0; i <= NW; i++) {
        uint8_t back[4096];
        if (i == NW - 1)
            continue;
        ck_assert_int_eq(pread(p1.img, back, sizeof(back), (off_t)i * 4096), (ssize_t)sizeof(back));
        ck_assert_mem_eq(back, pages + (size_t)i * 4096, sizeof(back));
    }
    hst_ungrant(&p1.f, pages, NW + 1);
    pair_close(&p1);
}
END_TEST

/*
 * The NBD server dies (_i 1: with a read in flight): that read and later ones are answered with
 * an error, the engine says why (the driver's error node), and the ring is
 * not broken - the frontend did nothing wrong.
 */
START_TEST(test_server_dies_nbd)
{
    uint8_t first[1] = {0}, last[1] = {7};
    char why[256];

    use_nbd = true;
    nbd_slow_reads = _i == 1;
    pair_open(&p1, &gid, guest.domid, 0, false);
    rw(&p1, BLKIF_OP_WRITE, 8, 1, first, last, false, BLKIF_RSP_OKAY);
    ck_assert_ptr_null(bhblk_storage_error(p1.eng));
    if (nbd_slow_reads) {
        /* A read the server holds for an hour: in flight when it dies, answered then. */
        struct blkif_request req = {
            .operation = BLKIF_OP_READ, .nr_segments = 1, .id = 99, .sector_number = 8};
        struct blkif_response rsp;
        uint32_t ref;
        void *page = hst_grant(&p1.f, 1, true, &ref);
        int got;
        req.seg[0] = (struct blkif_request_segment){ref, 0, 7};
        ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
        ck_assert_int_ge(bhring_front_push(&p1.fr), 0);
        ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
        ck_assert_uint_eq(bhblk_in_flight(p1.eng), 1);
        kill(p1.nbdkit, SIGKILL);
        while ((got = bhring_front_get(&p1.fr, &rsp)) == 0) {
            struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
            ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0); /* a hang fails */
            ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
        }
        ck_assert_int_eq(got, 1);
        ck_assert_uint_eq(rsp.id, 99);
        ck_assert_int_eq(rsp.status, BLKIF_RSP_ERROR);
        hst_ungrant(&p1.f, page, 1);
    }
    kill(p1.nbdkit, SIGKILL);
    waitpid(p1.nbdkit, NULL, 0);
    p1.nbdkit = 0;
    rw(&p1, BLKIF_OP_READ, 8, 1, first, last, false, BLKIF_RSP_ERROR);
    ck_assert_ptr_nonnull(bhblk_storage_error(p1.eng));
    rw(&p1, BLKIF_OP_WRITE, 16, 1, first, last, false, BLKIF_RSP_ERROR);
    ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhblk_in_flight(p1.eng), 0);
    pair_close(&p1);
}
END_TEST

/* A request consumed by an engine that died is answered once by the next one. */
/*
 * A multi-queue vbd as bulkhead-drvdom serves it: one engine per queue
 * (its ring, its io_uring, its kept state) over one image fd, for 1, 2
 * and 4 queues.  What queue q writes, queue q+1 reads back; each ring
 * carries only what was put on it; a lie on queue 1 breaks its engine
 * while queue 0's keeps serving (the driver then fails the whole device).
 */
START_TEST(test_engine_per_queue)
{
    static const unsigned int counts[] = {1, 2, 4};
    unsigned int nq = counts[_i];
    struct bhxb_dev dev = {"vbd", NULL, guest.domid, drv.domid, 51712};
    static struct bhblk_kept kept[HST_MAX_QUEUES];
    struct pair qp[HST_MAX_QUEUES];
    struct hst_end f, b;
    uint8_t first[BLKIF_MAX_SEGMENTS_PER_REQUEST] = {0}, last[BLKIF_MAX_SEGMENTS_PER_REQUEST];
    char why[256];

    memset(last, 7, sizeof(last));
    memset(kept, 0, sizeof(kept));
    pair_open(&p1, &gid, guest.domid, 0, false); /* only for its image */
    ck_assert_msg(hst_front_init_mq(&f, &gid, &dev, 1, nq) == 0, "%s", f.why);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_back_init(&b, &did, HST_BLKIF, &dev), 0);
    ck_assert_msg(hst_back_connect(&b) == 0, "%s", b.why);
    ck_assert_uint_eq(b.nqueues, nq);
    for (unsigned int q = 0; q < nq; q++) {
        struct bhblk_opts o = {.fd = p1.img, .domid = guest.domid, .gt = did.gt,
                               .ring = (void *)b.ring[q].sh, .order = 1, .kept = &kept[q],
                               .geom = {IMG_SECTORS, false, true, BHBLK_MAX_INDIRECT}};

        memset(&qp[q], 0, sizeof(qp[q]));
        qp[q].f = f; /* the liar's handles, for its grants */
        qp[q].img = p1.img;
        ck_assert_int_eq(bhring_attach(&qp[q].fr, &bhring_blkif, BHRING_FRONT,
                                       (void *)f.ring[q].sh, 1, 0, false),
                         0);
        ck_assert_msg((qp[q].eng = bhblk_open(&o, why, sizeof(why))) != NULL, "%s", why);
    }
    for (unsigned int q = 0; q < nq; q++) {
        rw(&qp[q], BLKIF_OP_WRITE, 64 * q, 4, first, last, false, 0);
        rw(&qp[(q + 1) % nq], BLKIF_OP_READ, 64 * q, 4, first, last, false, 0);
    }
    for (unsigned int q = 0; q < nq; q++) {
        ck_assert_uint_eq(hst_idx_get(&b.ring[q], HST_REQ_PROD), 2);
        ck_assert_uint_eq(kept[q].ring.cons, 2);
        ck_assert_uint_eq(bhblk_in_flight(qp[q].eng), 0);
    }
    if (nq > 1) {
        hst_idx_set(&f.ring[1], HST_REQ_PROD, f.ring[1].nr_ents + 3);
        ck_assert_int_eq(bhblk_run(qp[1].eng, why, sizeof(why)), -1);
        rw(&qp[0], BLKIF_OP_WRITE, 512, 11, first, last, false, 0);
    }
    for (unsigned int q = 0; q < nq; q++)
        bhblk_close(qp[q].eng);
    hst_end_close(&b);
    hst_end_close(&f);
    pair_close(&p1);
}
END_TEST

START_TEST(test_restart_reissues)
{
    struct blkif_request req = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 42};
    struct blkif_response rsp;
    struct bhblk_opts o = {0};
    uint32_t ref;
    uint8_t *page, want[4096];
    char why[256];
    int got = 0;

    pair_open(&p1, &gid, guest.domid, 0, false);
    page = hst_grant(&p1.f, 1, true, &ref);
    req.seg[0] = (struct blkif_request_segment){ref, 0, 7};
    req.sector_number = 64;
    ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
    ck_assert_int_ge(bhring_front_push(&p1.fr), 0);
    ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
    bhblk_close(p1.eng); /* dies with the request taken: its answer is never pushed */
    while (bhring_front_get(&p1.fr, &rsp) == 1)
        got++;
    if (got == 0) {
        ck_assert_int_eq(p1.kept.busy[0] + p1.kept.busy[1] + p1.kept.busy[2], 1);
        o = (struct bhblk_opts){
            .fd = p1.img,
            .domid = guest.domid,
            .gt = did.gt,
            .ring = (void *)p1.b.ring[0].sh,
            .order = 0,
            .geom = {.sectors = IMG_SECTORS, .discard = true, .max_indirect = BHBLK_MAX_INDIRECT},
            .kept = &p1.kept};
        ck_assert_ptr_nonnull(p1.eng = bhblk_open(&o, why, sizeof(why)));
        while (got == 0) {
            struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
            ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
            while (bhring_front_get(&p1.fr, &rsp) == 1)
                got++;
            if (got == 0)
                ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
        }
    } else {
        p1.eng = NULL; /* answered before the close: nothing to re-issue */
        ck_assert_int_eq(p1.kept.busy[0], 0);
    }
    ck_assert_int_eq(got, 1);
    ck_assert_uint_eq(rsp.id, 42);
    ck_assert_int_eq(rsp.status, 0);
    ck_assert_int_eq(pread(p1.img, want, sizeof(want), 64 * 512), (ssize_t)sizeof(want));
    ck_assert_mem_eq(want, page, sizeof(want));
    hst_ungrant(&p1.f, page, 1);
    pair_close(&p1);
}
END_TEST

/* A 4096-byte-sector disk: a request not in whole 4 KiB blocks is an error, not a lie. */
static void sector_4096(void)
{
    uint8_t first[BHBLK_MAX_INDIRECT], last[BHBLK_MAX_INDIRECT];
    struct blkif_request_discard dis = {
        .operation = BLKIF_OP_DISCARD, .id = 90, .sector_number = 64, .nr_sectors = 12};

    use_sector_size = 4096;
    pair_open(&p1, &gid, guest.domid, 0, false);
    use_sector_size = 0;
    for (unsigned int i = 0; i < BHBLK_MAX_INDIRECT; i++)
        first[i] = 0, last[i] = 7;
    for (unsigned int n = 1; n <= BLKIF_MAX_SEGMENTS_PER_REQUEST; n += 5) {
        rw(&p1, BLKIF_OP_WRITE, 8 * n, n, first, last, false, BLKIF_RSP_OKAY);
        rw(&p1, BLKIF_OP_READ, 8 * n + 8, n, first, last, false, BLKIF_RSP_OKAY);
    }
    rw(&p1, BLKIF_OP_WRITE, 800, 40, first, last, true, BLKIF_RSP_OKAY);
    rw(&p1, BLKIF_OP_READ, 808, 40, first, last, true, BLKIF_RSP_OKAY);
    /* misaligned: the start, a segment's first sector, a segment's length */
    rw(&p1, BLKIF_OP_READ, 4, 1, first, last, false, BLKIF_RSP_ERROR);
    rw(&p1, BLKIF_OP_WRITE, 12, 3, first, last, true, BLKIF_RSP_ERROR);
    first[1] = 4;
    rw(&p1, BLKIF_OP_READ, 8, 2, first, last, false, BLKIF_RSP_ERROR);
    first[1] = 0, last[2] = 3;
    rw(&p1, BLKIF_OP_WRITE, 8, 3, first, last, true, BLKIF_RSP_ERROR);
    last[2] = 7;
    ck_assert_int_eq(roundtrip(&p1, &dis), BLKIF_RSP_ERROR);
    dis.nr_sectors = 16;
    ck_assert_int_eq(roundtrip(&p1, &dis), BLKIF_RSP_OKAY);
    /* the ring is still served */
    rw(&p1, BLKIF_OP_READ, 0, 2, first, last, false, BLKIF_RSP_OKAY);
    ck_assert_uint_eq(bhblk_in_flight(p1.eng), 0);
    pair_close(&p1);
}

START_TEST(test_sector_4096)
{
    sector_4096();
}
END_TEST

/* The same on a real 4 KiB-sector block device: a loop device (losetup -b 4096). */
START_TEST(test_sector_4096_loop)
{
    char file[] = "/tmp/check_blkback.loop.XXXXXX", dev[64] = "", cmd[256];
    int fd = mkstemp(file), lfd;
    unsigned int lbs = 0;
    FILE *f;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)IMG_SECTORS * 512), 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "losetup -b 4096 --show -f %s 2>/dev/null", file);
    if ((f = popen(cmd, "r")) == NULL || fgets(dev, sizeof(dev), f) == NULL) {
        if (f != NULL)
            pclose(f);
        unlink(file);
        if (access("/dev/loop-control", F_OK) != 0) {
            printf("SKIP test_sector_4096_loop: no loop devices (/dev/loop-control)\n");
            return;
        }
        ck_abort_msg("losetup -b 4096 failed although /dev/loop-control exists");
    }
    pclose(f);
    dev[strcspn(dev, "\n")] = '\0';
    unlink(file);
    lfd = open(dev, O_RDWR | O_CLOEXEC);
    snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
    ck_assert_int_eq(system(cmd), 0); /* autoclear: goes when the last fd closes */
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(ioctl(lfd, BLKSSZGET, &lbs), 0);
    ck_assert_uint_eq(lbs, 4096);
    use_fd = lfd;
    sector_4096();
    use_fd = -1;
    close(lfd);
}
END_TEST

/* After a shrink, a request past the new end but within the old is an error; past both, a lie. */
START_TEST(test_shrink)
{
    uint8_t first[1] = {0}, last[1] = {7};
    struct blkif_request_discard dis = {
        .operation = BLKIF_OP_DISCARD, .id = 91, .sector_number = IMG_SECTORS / 2, .nr_sectors = 8};
    char why[256];

    pair_open(&p1, &gid, guest.domid, 0, false);
    bhblk_set_sectors(p1.eng, IMG_SECTORS / 2);
    rw(&p1, BLKIF_OP_READ, IMG_SECTORS / 2 - 8, 1, first, last, false, BLKIF_RSP_OKAY);
    rw(&p1, BLKIF_OP_READ, IMG_SECTORS / 2, 1, first, last, false, BLKIF_RSP_ERROR);
    rw(&p1, BLKIF_OP_WRITE, IMG_SECTORS - 8, 1, first, last, true, BLKIF_RSP_ERROR);
    ck_assert_int_eq(roundtrip(&p1, &dis), BLKIF_RSP_ERROR);
    bhblk_set_sectors(p1.eng, IMG_SECTORS); /* grown back: served again */
    rw(&p1, BLKIF_OP_READ, IMG_SECTORS - 8, 1, first, last, false, BLKIF_RSP_OKAY);
    bhblk_set_sectors(p1.eng, IMG_SECTORS / 4);
    rw(&p1, BLKIF_OP_READ, IMG_SECTORS, 1, first, last, false, -100);
    ck_assert_int_eq(bhblk_run(p1.eng, why, sizeof(why)), -1);
    pair_close(&p1);
}
END_TEST

/* Puts a one-page read of sector on the ring and serves it as far as the engine can. */
static void read_start(struct pair *p, uint32_t ref, uint64_t sector, uint64_t id)
{
    struct blkif_request req = {
        .operation = BLKIF_OP_READ, .nr_segments = 1, .id = id, .sector_number = sector};
    char why[256];

    req.seg[0] = (struct blkif_request_segment){ref, 0, 7};
    ck_assert_int_eq(bhring_front_put(&p->fr, &req), 0);
    ck_assert_int_ge(bhring_front_push(&p->fr), 0);
    ck_assert_int_ge(bhblk_run(p->eng, why, sizeof(why)), 0);
}

/* Serves until the response to id comes; returns its status. */
static int read_finish(struct pair *p, uint64_t id)
{
    struct blkif_response rsp;
    char why[256];

    for (;;) {
        struct pollfd pf = {.fd = bhblk_fd(p->eng), .events = POLLIN};
        ck_assert_int_ge(bhblk_run(p->eng, why, sizeof(why)), 0);
        if (bhring_front_get(&p->fr, &rsp) == 1)
            break;
        ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
    }
    ck_assert_uint_eq(rsp.id, id);
    return rsp.status;
}

/*
 * bhblk_poll serves what is on the ring but leaves the request event
 * behind, so that the frontend's pushes meanwhile ask for no notification;
 * the bhblk_run that ends the polling sets it again, and the next push
 * notifies.  The counters say what happened.
 */
START_TEST(test_poll_holds_notifications)
{
    uint32_t ref;
    uint8_t *page;
    char why[256];
    const struct bhblk_stats *st;
    struct blkif_response rsp;

    pair_open(&p1, &gid, guest.domid, 0, false);
    ck_assert_ptr_nonnull(page = hst_grant(&p1.f, 1, true, &ref));
    read_start(&p1, ref, 8, 1); /* bhblk_run: the event set past request 1 */
    ck_assert_int_eq(read_finish(&p1, 1), BLKIF_RSP_OKAY);
    /* request 2: the backend asked to hear of it */
    struct blkif_request req = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 2,
                                .sector_number = 16};
    req.seg[0] = (struct blkif_request_segment){ref, 0, 7};
    ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
    ck_assert_int_eq(bhring_front_push(&p1.fr), 1);
    for (;;) { /* polled to its answer */
        struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
        ck_assert_int_ge(bhblk_poll(p1.eng, why, sizeof(why)), 0);
        if (bhring_front_get(&p1.fr, &rsp) == 1)
            break;
        ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
    }
    ck_assert_uint_eq(rsp.id, 2);
    /* request 3 while polling: no notification asked for, and a poll serves it */
    req.id = 3;
    ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
    ck_assert_int_eq(bhring_front_push(&p1.fr), 0);
    for (;;) {
        struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
        ck_assert_int_ge(bhblk_poll(p1.eng, why, sizeof(why)), 0);
        if (bhring_front_get(&p1.fr, &rsp) == 1)
            break;
        ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
    }
    ck_assert_uint_eq(rsp.id, 3);
    /* the polling ends with bhblk_run: request 4 notifies again */
    ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
    req.id = 4;
    ck_assert_int_eq(bhring_front_put(&p1.fr, &req), 0);
    ck_assert_int_eq(bhring_front_push(&p1.fr), 1);
    ck_assert_int_eq(read_finish(&p1, 4), BLKIF_RSP_OKAY);
    st = bhblk_get_stats(p1.eng);
    ck_assert_uint_eq(st->requests, 4);
    ck_assert_uint_ge(st->pushes, 4);
    ck_assert_uint_le(st->notifies, st->pushes);
    ck_assert_uint_ge(st->enters, 4); /* one read each, each pass its own enter */
    ck_assert_uint_ge(st->map_calls, 4); /* no persistent grants here: a map per request */
    hst_ungrant(&p1.f, page, 1);
    pair_close(&p1);
}
END_TEST

/* Bytes of memfd pages (guest memory, granted or mapped) mapped in this process. */
static unsigned long long memfd_bytes(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long long total = 0, lo, hi;
    char line[512];

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "/memfd:") != NULL && sscanf(line, "%llx-%llx", &lo, &hi) == 2)
            total += hi - lo;
    fclose(f);
    return total;
}

/*
 * Without persistent grants, the requests one pass takes off the ring are
 * mapped in one call per protection (4 writes, a flush, 4 reads: 2 calls),
 * each reads and writes its own pages, and their mappings are gone by the
 * time the frontend sees the responses (the push unmaps them, in one call,
 * before it publishes).  Then a batch with a request that lies about its
 * grant: the engine breaks naming that request, not its neighbours.
 */
START_TEST(test_pass_maps_in_one_call)
{
    uint32_t wref[4], rref[4], bad[3];
    uint8_t *w = NULL, *r = NULL, *b3, expect[4096];
    struct blkif_response rsp;
    unsigned int seen = 0;
    unsigned long long before;
    const struct bhblk_stats *st;
    char why[256];

    pair_open(&p1, &gid, guest.domid, 0, false);
    ck_assert_ptr_nonnull(w = hst_grant(&p1.f, 4, false, wref));
    ck_assert_ptr_nonnull(r = hst_grant(&p1.f, 4, true, rref));
    for (unsigned int i = 0; i < 4 * 4096; i++)
        w[i] = (uint8_t)rand();
    before = memfd_bytes();
    ck_assert_uint_gt(before, 0); /* the ring and our grants: guest memory is memfd pages */
    for (unsigned int i = 0; i < 9; i++) {
        struct blkif_request q = {.id = 100 + i};
        if (i == 4) {
            q.operation = BLKIF_OP_FLUSH_DISKCACHE;
        } else {
            bool rd = i > 4;
            unsigned int k = rd ? i - 5 : i;
            q.operation = rd ? BLKIF_OP_READ : BLKIF_OP_WRITE;
            q.nr_segments = 1;
            q.sector_number = (rd ? 256 : 0) + 8 * k; /* reads and writes never overlap */
            q.seg[0] = (struct blkif_request_segment){rd ? rref[k] : wref[k], 0, 7};
        }
        ck_assert_int_eq(bhring_front_put(&p1.fr, &q), 0);
    }
    ck_assert_int_ge(bhring_front_push(&p1.fr), 0);
    while (seen < 9) {
        struct pollfd pf = {.fd = bhblk_fd(p1.eng), .events = POLLIN};
        ck_assert_int_ge(bhblk_run(p1.eng, why, sizeof(why)), 0);
        while (bhring_front_get(&p1.fr, &rsp) == 1) {
            ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
            seen++;
            /* every mapping of an answered request is gone when its answer shows */
            if (seen == 9)
                ck_assert_uint_eq(memfd_bytes(), before);
        }
        if (seen < 9)
            ck_assert_int_gt(poll(&pf, 1, HST_TIMEOUT_MS), 0);
    }
    st = bhblk_get_stats(p1.eng);
    ck_assert_uint_eq(st->requests, 9);
    ck_assert_uint_eq(st->map_calls, 2); /* the writes' pages, the reads' pages */
    ck_assert_uint_ge(st->unmap_calls, 1);
    ck_assert_uint_le(st->unmap_calls, st->pushes);
    for (unsigned int k = 0; k < 4; k++) {
        ck_assert_int_eq(pread(p1.img, expect, 4096, (off_t)(8 * k) * 512), 4096);
        ck_assert_mem_eq(expect, w + k * 4096, 4096);
        ck_assert_int_eq(pread(p1.img, expect, 4096, (off_t)(256 + 8 * k) * 512), 4096);
        ck_assert_mem_eq(expect, r + k * 4096, 4096);
    }
    /* three reads in one pass, the middle one on a grant that does not exist */
    ck_assert_ptr_nonnull(b3 = hst_grant(&p1.f, 3, true, bad));
    bad[1] = 0xfffff;
    for (unsigned int i = 0; i < 3; i++) {
        struct blkif_request q = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 200 + i,
                                  .sector_number = 8 * i};
        q.seg[0] = (struct blkif_request_segment){bad[i], 0, 7};
        ck_assert_int_eq(bhring_front_put(&p1.fr, &q), 0);
    }
    ck_assert_int_ge(bhring_front_push(&p1.fr), 0);
    ck_assert_int_eq(bhblk_run(p1.eng, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "request 201: cannot map") != NULL, "%s", why);
    hst_ungrant(&p1.f, b3, 3);
    hst_ungrant(&p1.f, r, 4);
    hst_ungrant(&p1.f, w, 4);
    pair_close(&p1);
}
END_TEST

/* An indirect read of n whole pages at sector through the indirect page ind (iref); checks the data. */
static void indirect_read(struct pair *p, struct blkif_request_segment *ind, uint32_t iref,
                          const uint32_t *refs, uint8_t *pages, unsigned int n, uint64_t sector,
                          uint8_t first)
{
    struct blkif_request req = {0};
    struct blkif_request_indirect *r = (void *)&req;
    uint8_t expect[4096];
    static uint64_t id = 5000;

    for (unsigned int i = 0; i < n; i++)
        ind[i] = (struct blkif_request_segment){refs[i], first, 7};
    r->operation = BLKIF_OP_INDIRECT;
    r->indirect_op = BLKIF_OP_READ;
    r->nr_segments = (uint16_t)n;
    r->id = id++;
    r->sector_number = sector;
    r->indirect_grefs[0] = iref;
    ck_assert_int_eq(roundtrip(p, &req), BLKIF_RSP_OKAY);
    for (unsigned int i = 0; i < n; i++) {
        size_t len = (8u - first) * 512u;
        ck_assert_int_eq(pread(p->img, expect, len, (off_t)(sector * 512 + i * len)), (ssize_t)len);
        ck_assert_mem_eq(expect, pages + (size_t)i * 4096 + first * 512u, len);
    }
}

/*
 * With persistent grants an indirect page granted read-write is kept
 * mapped like a data page (as Linux's blkback): a later request through it
 * needs no map at all, and the segments are read afresh out of it each
 * time.  A read-only one is mapped for its request, as before.
 */
START_TEST(test_indirect_pages_persistent)
{
    uint32_t refs[40], iref, roref;
    uint8_t *pages;
    struct blkif_request_segment *ind, *roind;
    unsigned long long maps;

    use_persistent = true;
    pair_open(&p1, &gid, guest.domid, 0, false);
    use_persistent = false;
    ck_assert_ptr_nonnull(pages = hst_grant(&p1.f, 40, true, refs));
    ck_assert_ptr_nonnull(ind = hst_grant(&p1.f, 1, true, &iref));
    indirect_read(&p1, ind, iref, refs, pages, 40, 64, 0);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 41);
    maps = bhblk_get_stats(p1.eng)->map_calls;
    /* the same indirect page, other segments in it: no map, the new segments obeyed */
    memset(pages, 0, 40 * 4096);
    indirect_read(&p1, ind, iref, refs, pages, 20, 512, 3);
    ck_assert_uint_eq(bhblk_get_stats(p1.eng)->map_calls, maps);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 41);
    /* a read-only indirect page: mapped for the request, not kept */
    ck_assert_ptr_nonnull(roind = hst_grant(&p1.f, 1, false, &roref));
    indirect_read(&p1, roind, roref, refs, pages, 30, 1024, 1);
    ck_assert_uint_gt(bhblk_get_stats(p1.eng)->map_calls, maps);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 41);
    ck_assert_uint_eq(bhblk_in_flight(p1.eng), 0);
    hst_ungrant(&p1.f, roind, 1);
    hst_ungrant(&p1.f, ind, 1);
    hst_ungrant(&p1.f, pages, 40);
    pair_close(&p1);
}
END_TEST

/*
 * Idle persistent grants are unmapped by bhblk_tick, never one a request
 * in flight uses; a later request maps its page again and reads right.
 */
START_TEST(test_idle_unmap)
{
    uint8_t first[BLKIF_MAX_SEGMENTS_PER_REQUEST], last[BLKIF_MAX_SEGMENTS_PER_REQUEST];
    unsigned int mapped;

    for (unsigned int i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
        first[i] = 0, last[i] = 7;
    use_persistent = true;
    pair_open(&p1, &gid, guest.domid, 0, false);
    use_persistent = false;
    rw(&p1, BLKIF_OP_READ, 16, BLKIF_MAX_SEGMENTS_PER_REQUEST, first, last, false, 0);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), BLKIF_MAX_SEGMENTS_PER_REQUEST);
    ck_assert_uint_eq(bhblk_persistent_busy(p1.eng), 0);
    /* none has been idle for an hour; every one has been for 0 ms */
    ck_assert_uint_eq(bhblk_tick(p1.eng, 3600u * 1000u), 0);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), BLKIF_MAX_SEGMENTS_PER_REQUEST);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), BLKIF_MAX_SEGMENTS_PER_REQUEST);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 0);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), 0);
    /* mapped again on demand, byte for byte right */
    rw(&p1, BLKIF_OP_READ, 40, 3, first, last, false, 0);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 3);
    rw(&p1, BLKIF_OP_WRITE, 48, 2, first, last, false, 0); /* read-only grants: not kept */
    rw(&p1, BLKIF_OP_READ, 48, 2, first, last, true, 0);
    mapped = bhblk_persistent_mapped(p1.eng);
    ck_assert_uint_ge(mapped, 3);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), mapped);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 0);
    pair_close(&p1);
}
END_TEST

/*
 * A page a request in flight uses stays mapped through any tick: the disk
 * is a FIFO, so a read waits until the test writes its data.
 */
START_TEST(test_idle_unmap_busy)
{
    char dir[] = "/tmp/check_blkback.fifo.XXXXXX", fifo[64];
    uint8_t data[4096], *pa, *pb;
    uint32_t ra, rb;
    int fd;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/disk", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    fd = open(fifo, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    unlink(fifo);
    rmdir(dir);
    use_persistent = true;
    use_fd = fd;
    pair_open(&p1, &gid, guest.domid, 0, false);
    use_fd = -1;
    use_persistent = false;
    pa = hst_grant(&p1.f, 1, true, &ra);
    pb = hst_grant(&p1.f, 1, true, &rb);
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_nonnull(pb);
    /* a: served and done; b: waits on the FIFO */
    memset(data, 0xa5, sizeof(data));
    ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    read_start(&p1, ra, 0, 1);
    ck_assert_int_eq(read_finish(&p1, 1), BLKIF_RSP_OKAY);
    ck_assert_mem_eq(pa, data, sizeof(data));
    read_start(&p1, rb, 8, 2);
    ck_assert_uint_eq(bhblk_in_flight(p1.eng), 1);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 2);
    ck_assert_uint_eq(bhblk_persistent_busy(p1.eng), 1);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), 1); /* a's page only */
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 1);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), 0);
    memset(data, 0x5a, sizeof(data));
    ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    ck_assert_int_eq(read_finish(&p1, 2), BLKIF_RSP_OKAY);
    ck_assert_mem_eq(pb, data, sizeof(data)); /* read into the page kept mapped */
    ck_assert_uint_eq(bhblk_persistent_busy(p1.eng), 0);
    ck_assert_uint_eq(bhblk_tick(p1.eng, 0), 1);
    ck_assert_uint_eq(bhblk_persistent_mapped(p1.eng), 0);
    hst_ungrant(&p1.f, pa, 1);
    hst_ungrant(&p1.f, pb, 1);
    pair_close(&p1);
    close(fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blkback");
    TCase *tc = tcase_create("blkback");
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces): run make check as root\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_rw_sizes);
    tcase_add_test(tc, test_rw_sizes_persistent);
    tcase_add_test(tc, test_rw_sizes_buffered);
    tcase_add_test(tc, test_flush_discard);
    tcase_add_test(tc, test_readonly);
    tcase_add_loop_test(tc, test_lies, 0, LIE_CASES);
    tcase_add_test(tc, test_restart_reissues);
    tcase_add_test(tc, test_sector_4096);
    tcase_add_test(tc, test_sector_4096_loop);
    tcase_add_test(tc, test_shrink);
    tcase_add_test(tc, test_poll_holds_notifications);
    tcase_add_test(tc, test_pass_maps_in_one_call);
    tcase_add_test(tc, test_indirect_pages_persistent);
    tcase_add_test(tc, test_idle_unmap);
    tcase_add_test(tc, test_idle_unmap_busy);
    tcase_add_loop_test(tc, test_engine_per_queue, 0, 3);
    tcase_add_loop_test(tc, test_rw_sizes_nbd, 0, 2);
    tcase_add_test(tc, test_flush_discard_nbd);
    tcase_add_test(tc, test_readonly_nbd);
    tcase_add_test(tc, test_flush_orders_nbd);
    tcase_add_loop_test(tc, test_server_dies_nbd, 0, 2);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
