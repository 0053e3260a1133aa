/*
 * engine.c - blkback's engine: one blkif ring served from a disk's fd with
 * io_uring.  Each request is copied out of the ring once, validated
 * (parse.c), its granted pages mapped (kept mapped with persistent grants,
 * indirect pages too;
 * otherwise a pass's requests are mapped in one call and a push unmaps the
 * answered ones in one, before it publishes their responses), and read or
 * written with one readv/writev straight into them; flush and barrier are
 * fsync, discard punches a hole.  Completions become responses, pushed
 * with Xen's notification hold-off.  Every request consumed and not yet
 * answered is also written to the kept state, so that a restarted engine
 * issues it again instead of losing it.  A disk behind an NBD server takes the same
 * path with nbd.c in io_uring's place (the storage calls are issue, reap,
 * submit, ready and the fd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bhblkback.h"
#include "nbd.h"

#define PAGE 4096u

struct slot {
    struct bhblk_req r;
    struct blkif_request_segment *segs; /* the request's segments, private */
    struct iovec *iov;
    void *map; /* the data pages, contiguous */
    unsigned int nmap;
    unsigned int pending; /* SQEs not yet completed */
    uint64_t expect;      /* bytes the read or write must move */
    int16_t status;
    bool retried; /* an O_DIRECT read or write sent again buffered */
    bool pinned;  /* its segments hold persistent pages (one pin each) */
    bool needmap; /* waits in tomap for its pages to be mapped */
    bool used;
};

/*
 * A persistently mapped data page, found by its grant reference.  pins:
 * segments of requests in flight on it (never unmapped while nonzero);
 * last: when it was last let go, for the idle purge.
 */
struct pgrant {
    uint32_t gref;
    bool used;
    unsigned int pins;
    uint64_t last; /* CLOCK_MONOTONIC, ms */
    void *page;
};

#define PGRANT_BUCKETS 2048u /* open addressing, twice BHBLK_MAX_PERSISTENT */

struct bhblk {
    struct bhring ring;
    bool persistent;
    struct pgrant *pg; /* PGRANT_BUCKETS, when persistent */
    unsigned int npg;
    struct io_uring uring;
    bool uring_up;
    struct bhnbd *nbd; /* NBD storage instead of the fd and io_uring */
    int fd, dfd; /* buffered, and O_DIRECT (-1 when the fd does not allow it) */
    uint32_t domid;
    bhgnttab_handle *gt;
    struct bhblk_geom geom;
    struct bhblk_kept *kept;
    unsigned int npinned; /* persistent pages with pins > 0 */
    unsigned int nslots, maxseg, inflight;
    unsigned long sqes; /* submitted and not yet completed */
    struct slot *slots;
    unsigned int *freel, nfree;
    unsigned int *done, ndone; /* answered since the last push */
    /*
     * Mappings are made and let go in batches, one call each (a round trip
     * to the hypervisor in the simulation): the requests of a pass that
     * need their pages mapped wait in tomap until the pass has read the
     * ring; the mappings of answered requests wait in unmap_addr and
     * unmap_count until the push that publishes their responses, which
     * unmaps them first (no more than the ring's size between two
     * pushes: unpushed responses fit the ring).
     */
    unsigned int *tomap, ntomap;
    void **unmap_addr;
    uint32_t *unmap_count, nunmap;
    bool broken;
    char why[200];
    void (*trace)(void *arg, const char *line);
    void *trace_arg;
    unsigned int ntraced;
    struct bhblk_stats st;
};

static void tracef(struct bhblk *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tracef(struct bhblk *b, const char *fmt, ...)
{
    char line[200];
    va_list ap;

    if (b->trace == NULL || b->ntraced >= BHBLK_TRACE_MAX)
        return;
    if (++b->ntraced == BHBLK_TRACE_MAX) {
        b->trace(b->trace_arg, "trace: the first requests were traced; quiet from here");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b->trace(b->trace_arg, line);
}

static int fail(struct bhblk *b, char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct bhblk *b, char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (!b->broken) {
        va_start(ap, fmt);
        vsnprintf(b->why, sizeof(b->why), fmt, ap);
        va_end(ap);
        bhring_break(&b->ring, "%s", b->why);
        b->broken = true;
    }
    snprintf(why, len, "%s", b->why);
    errno = EPROTO;
    return -1;
}

/* A second open file description with O_DIRECT, when the file allows it. */
static int open_direct(int fd, bool ro)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, (ro ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
}

static void unmap_slot(struct bhblk *b, struct slot *s)
{
    if (s->map != NULL)
        bhgnttab_unmap(b->gt, s->map, s->nmap);
    s->map = NULL;
    s->nmap = 0;
}

/* The persistent mappings go with the ring (a disconnect, a worker's end). */
static void pg_unmap_all(struct bhblk *b)
{
    for (unsigned int h = 0; b->pg != NULL && h < PGRANT_BUCKETS; h++)
        if (b->pg[h].used)
            bhgnttab_unmap(b->gt, b->pg[h].page, 1);
    free(b->pg);
    b->pg = NULL;
    b->npg = 0;
}

static uint64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static struct pgrant *pg_slot(struct bhblk *b, uint32_t gref);

/* Lets go of the first n segments' persistent pages (a request done, or a partial pin). */
static void pg_unpin(struct bhblk *b, const struct slot *s, unsigned int n)
{
    uint64_t t = now_ms();

    for (unsigned int k = 0; k < n; k++) {
        struct pgrant *g = pg_slot(b, s->segs[k].gref);
        if (!g->used || g->pins == 0)
            continue; /* cannot happen: every pin is on a mapped page */
        g->last = t;
        if (--g->pins == 0)
            b->npinned--;
    }
}

static void unmap_answered(struct bhblk *b);

static void answer(struct bhblk *b, unsigned int i, int16_t status)
{
    struct slot *s = &b->slots[i];
    struct blkif_response rsp = {.id = s->r.id, .operation = s->r.operation, .status = status};

    tracef(b, "trace: answer %llu (op %u): %d", (unsigned long long)s->r.id, s->r.operation,
           status);
    if (s->map != NULL) { /* unmapped by the push that publishes this response */
        if (b->nunmap == b->nslots)
            unmap_answered(b); /* cannot happen: unpushed responses fit the ring */
        b->unmap_addr[b->nunmap] = s->map;
        b->unmap_count[b->nunmap++] = s->nmap;
        s->map = NULL;
        s->nmap = 0;
    }
    if (s->pinned)
        pg_unpin(b, s, s->r.nseg);
    s->pinned = false;
    if (bhring_back_put(&b->ring, &rsp) != 0) {
        b->broken = true; /* cannot happen: every slot answers a consumed request */
        snprintf(b->why, sizeof(b->why), "response lost: %s", strerror(errno));
    }
    s->used = false;
    b->freel[b->nfree++] = i;
    b->done[b->ndone++] = i;
    b->inflight--;
}

static uint64_t tag(unsigned int i, unsigned int k)
{
    return ((uint64_t)i << 2) | k;
}

/*
 * The ring's files are registered (index FILE_BUFFERED: the disk's fd,
 * FILE_DIRECT: its O_DIRECT twin) and the ring is restricted to them: an
 * SQE names its file by index with IOSQE_FIXED_FILE, never by number.
 */
enum { FILE_BUFFERED, FILE_DIRECT };

/*
 * The io_uring operations blkback issues, and all the restricted ring
 * accepts (ring_open): readv and writev for READ and WRITE (and the data
 * of a barrier), fsync for FLUSH_DISKCACHE and WRITE_BARRIER, fallocate
 * for DISCARD.  Printed by `bulkhead-drvdom --print-policy`.
 */
const char *const bhblk_uring_ops[] = {"readv", "writev", "fsync", "fallocate", NULL};
static const uint8_t uring_ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
                                    IORING_OP_FALLOCATE};

/*
 * io_uring_register_restrictions and io_uring_enable_rings are declared by
 * Debian 12's liburing.h but not exported by its liburing.so.2 (2.3): the
 * two registrations are made with the system call itself.
 */
static int ring_register(struct io_uring *r, unsigned int op, void *arg, unsigned int n)
{
    return syscall(__NR_io_uring_register, r->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/*
 * A ring that can do nothing but blkback's work, even for code that would
 * write SQEs of its own into it: created disabled, given its two files,
 * restricted (the four operations above, IOSQE_FIXED_FILE required, only
 * the drain and link flags a barrier uses beside it, no registration after),
 * and only then enabled.  Only the worker's thread ever submits to it and
 * enables it (SINGLE_ISSUER lets the kernel skip its locking), and a
 * completion need not interrupt that thread with an IPI while it runs
 * (COOP_TASKRUN): the worker enters the kernel on every drain anyway, and
 * TASKRUN_FLAG makes liburing's peek enter it when completions wait as task
 * work, so reap() still sees them.  A kernel older than 6.0 refuses those
 * flags: plain then.  Returns 0 or a negative errno.
 */
static int ring_open(struct bhblk *b, unsigned int entries)
{
    struct io_uring_restriction res[sizeof(uring_ops) + 2];
    int files[2] = {b->fd, b->dfd}; /* -1: an empty slot, no O_DIRECT twin */
    unsigned int n = 0;
    int rc;

    struct io_uring_params p = {
        .flags = IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                 IORING_SETUP_TASKRUN_FLAG,
    };

    rc = io_uring_queue_init_params(entries, &b->uring, &p);
    if (rc == -EINVAL) /* a kernel before 6.0: plain, still disabled until restricted */
        rc = io_uring_queue_init(entries, &b->uring, IORING_SETUP_R_DISABLED);
    if (rc < 0)
        return rc;
    memset(res, 0, sizeof(res));
    for (size_t i = 0; i < sizeof(uring_ops); i++) {
        res[n].opcode = IORING_RESTRICTION_SQE_OP;
        res[n++].sqe_op = uring_ops[i];
    }
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
    res[n++].sqe_flags = IOSQE_FIXED_FILE;
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[n++].sqe_flags = IOSQE_FIXED_FILE | IOSQE_IO_DRAIN | IOSQE_IO_LINK;
    if ((rc = io_uring_register_files(&b->uring, files, 2)) < 0 ||
        (rc = ring_register(&b->uring, IORING_REGISTER_RESTRICTIONS, res, n)) < 0 ||
        (rc = ring_register(&b->uring, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0) {
        io_uring_queue_exit(&b->uring);
        return rc;
    }
    return 0;
}

/* After io_uring_prep_*, which clears the flags: the SQE's file is by index. */
static void fixed_file(struct io_uring_sqe *q, int index)
{
    q->fd = index;
    q->flags |= IOSQE_FIXED_FILE;
}

static struct io_uring_sqe *sqe(struct bhblk *b, unsigned int i, unsigned int k)
{
    struct io_uring_sqe *q = io_uring_get_sqe(&b->uring);

    if (q == NULL) { /* the queue holds two per slot: flush what is there and retry */
        b->st.enters++;
        io_uring_submit(&b->uring);
        q = io_uring_get_sqe(&b->uring);
    }
    if (q != NULL) {
        io_uring_sqe_set_data64(q, tag(i, k));
        b->slots[i].pending++;
        b->sqes++;
    }
    return q;
}

/* Issues a validated, mapped request; 0, or -1 when no SQE could be had. */
static int issue(struct bhblk *b, unsigned int i)
{
    struct slot *s = &b->slots[i];
    struct io_uring_sqe *q;
    off_t off = (off_t)(s->r.sector * BHBLK_SECTOR);
    bool direct = b->dfd >= 0 && !s->retried;

    if (b->nbd != NULL)
        return bhnbd_submit(b->nbd, i, s->r.op, (uint64_t)off, s->r.nr_sectors * BHBLK_SECTOR,
                            s->iov, s->nmap);
    switch (s->r.op) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
        if ((q = sqe(b, i, 0)) == NULL)
            return -1;
        if (s->r.op == BLKIF_OP_READ)
            io_uring_prep_readv(q, -1, s->iov, s->nmap, off);
        else
            io_uring_prep_writev(q, -1, s->iov, s->nmap, off);
        fixed_file(q, direct ? FILE_DIRECT : FILE_BUFFERED);
        return 0;
    case BLKIF_OP_WRITE_BARRIER:
    case BLKIF_OP_FLUSH_DISKCACHE:
        /* After everything before it; data first, then the cache to the disk. */
        if (s->nmap > 0) {
            if ((q = sqe(b, i, 1)) == NULL)
                return -1;
            io_uring_prep_writev(q, -1, s->iov, s->nmap, off);
            fixed_file(q, FILE_BUFFERED);
            q->flags |= IOSQE_IO_DRAIN | IOSQE_IO_LINK;
        }
        if ((q = sqe(b, i, 2)) == NULL)
            return -1;
        io_uring_prep_fsync(q, -1, 0);
        fixed_file(q, FILE_BUFFERED);
        if (s->nmap == 0)
            q->flags |= IOSQE_IO_DRAIN;
        return 0;
    case BLKIF_OP_DISCARD:
        if ((q = sqe(b, i, 3)) == NULL)
            return -1;
        io_uring_prep_fallocate(q, b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
                                (off_t)(s->r.nr_sectors * BHBLK_SECTOR));
        fixed_file(q, FILE_BUFFERED);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

/* The bucket of gref: its own, or the empty one where it would go. */
static struct pgrant *pg_slot(struct bhblk *b, uint32_t gref)
{
    unsigned int h = (gref * 2654435761u) & (PGRANT_BUCKETS - 1);

    while (b->pg[h].used && b->pg[h].gref != gref)
        h = (h + 1) & (PGRANT_BUCKETS - 1);
    return &b->pg[h];
}

/*
 * The persistent mapping of gref, made (read-write, once) if there is room;
 * NULL when there is none or the frontend granted the page read-only: the
 * request then maps its pages for its own time.
 */
static void *pg_get(struct bhblk *b, uint32_t gref)
{
    struct pgrant *g = pg_slot(b, gref);
    void *page;

    if (g->used)
        return g->page;
    if (b->npg >= BHBLK_MAX_PERSISTENT)
        return NULL;
    b->st.map_calls++;
    page = bhgnttab_map_domain_grant_refs(b->gt, 1, b->domid, &gref, PROT_READ | PROT_WRITE);
    if (page == NULL)
        return NULL;
    *g = (struct pgrant){.gref = gref, .used = true, .page = page};
    b->npg++;
    return page;
}

/* gref's page, pinned for a request; NULL as pg_get. */
static void *pg_pin(struct bhblk *b, uint32_t gref)
{
    void *page = pg_get(b, gref);
    struct pgrant *g;

    if (page == NULL)
        return NULL;
    g = pg_slot(b, gref);
    if (g->pins++ == 0)
        b->npinned++;
    return page;
}

/*
 * Unmaps the page in bucket h and closes the gap it leaves, so that every
 * gref after it in its probe run is still found (deletion from linear
 * probing without tombstones).
 */
static void pg_drop(struct bhblk *b, unsigned int h)
{
    unsigned int gap = h;

    bhgnttab_unmap(b->gt, b->pg[h].page, 1);
    b->pg[h] = (struct pgrant){0};
    b->npg--;
    for (unsigned int j = (h + 1) & (PGRANT_BUCKETS - 1); b->pg[j].used;
         j = (j + 1) & (PGRANT_BUCKETS - 1)) {
        unsigned int home = (b->pg[j].gref * 2654435761u) & (PGRANT_BUCKETS - 1);
        /* j may move into the gap unless its home lies cyclically in (gap, j] */
        bool stays = gap <= j ? (home > gap && home <= j) : (home > gap || home <= j);
        if (!stays) {
            b->pg[gap] = b->pg[j];
            b->pg[j] = (struct pgrant){0};
            gap = j;
        }
    }
}

/* Every segment's page from the persistent map; false if one is not to be had. */
static bool map_persistent(struct bhblk *b, struct slot *s)
{
    s->expect = 0;
    for (unsigned int k = 0; k < s->r.nseg; k++) {
        uint8_t *page = pg_pin(b, s->segs[k].gref);
        if (page == NULL) {
            pg_unpin(b, s, k);
            return false;
        }
        s->iov[k].iov_base = page + (size_t)s->segs[k].first_sect * BHBLK_SECTOR;
        s->iov[k].iov_len = (size_t)(s->segs[k].last_sect - s->segs[k].first_sect + 1) *
                            BHBLK_SECTOR;
        s->expect += s->iov[k].iov_len;
    }
    s->nmap = s->r.nseg; /* iovecs in use; s->map stays NULL: nothing to unmap per request */
    s->pinned = true;
    return true;
}

/* Lays slot i's iovecs over its mapped pages at s->map. */
static void lay_iov(struct slot *s)
{
    s->expect = 0;
    for (unsigned int k = 0; k < s->nmap; k++) {
        s->iov[k].iov_base = (uint8_t *)s->map + (size_t)k * PAGE +
                             (size_t)s->segs[k].first_sect * BHBLK_SECTOR;
        s->iov[k].iov_len = (size_t)(s->segs[k].last_sect - s->segs[k].first_sect + 1) *
                            BHBLK_SECTOR;
        s->expect += s->iov[k].iov_len;
    }
}

/* A read writes into its pages; a write only reads them. */
static int data_prot(const struct slot *s)
{
    return s->r.op == BLKIF_OP_READ ? PROT_READ | PROT_WRITE : PROT_READ;
}

/* Maps the segments of slot i alone and lays the iovecs over them; -1 (a lie) with why. */
static int map_one(struct bhblk *b, unsigned int i, char *why, size_t len)
{
    struct slot *s = &b->slots[i];
    uint32_t refs[BHBLK_MAX_INDIRECT > BLKIF_MAX_SEGMENTS_PER_REQUEST ? BHBLK_MAX_INDIRECT
                                                                      : BLKIF_MAX_SEGMENTS_PER_REQUEST];
    unsigned int n = s->r.nseg;

    for (unsigned int k = 0; k < n; k++)
        refs[k] = s->segs[k].gref;
    b->st.map_calls++;
    s->map = bhgnttab_map_domain_grant_refs(b->gt, n, b->domid, refs, data_prot(s));
    if (s->map == NULL)
        return fail(b, why, len, "request %llu: cannot map its %u grants (first %u): %s",
                    (unsigned long long)s->r.id, n, refs[0], strerror(errno));
    s->nmap = n;
    lay_iov(s);
    return 0;
}

/*
 * Copies an indirect request's segments out of its indirect pages kept in
 * the persistent map (as Linux's blkback keeps them): false, copying
 * nothing, if one of them is not to be had there.  No pin: the pages are
 * read here and never again for this request.
 */
static bool indirect_persistent(struct bhblk *b, struct slot *s)
{
    const unsigned int per_page = PAGE / sizeof(s->segs[0]);
    void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    uint64_t t = now_ms();

    for (unsigned int j = 0; j < s->r.nind; j++)
        if ((pages[j] = pg_get(b, s->r.ind_grefs[j])) == NULL)
            return false;
    for (unsigned int j = 0; j < s->r.nind; j++) {
        unsigned int first = j * per_page;
        unsigned int n = s->r.nseg - first < per_page ? s->r.nseg - first : per_page;

        memcpy(&s->segs[first], pages[j], n * sizeof(s->segs[0]));
        pg_slot(b, s->r.ind_grefs[j])->last = t; /* in use: not idle */
    }
    return true;
}

/* An indirect request's segments: copied once out of their pages, then checked; 1: refused. */
static int read_indirect(struct bhblk *b, unsigned int i, char *why, size_t len)
{
    struct slot *s = &b->slots[i];
    void *pages;
    char w[160];
    enum bhblk_verdict v;

    if (!b->persistent || !indirect_persistent(b, s)) {
        b->st.map_calls++;
        pages = bhgnttab_map_domain_grant_refs(b->gt, s->r.nind, b->domid, s->r.ind_grefs,
                                               PROT_READ);
        if (pages == NULL)
            return fail(b, why, len, "request %llu: cannot map its %u indirect pages: %s",
                        (unsigned long long)s->r.id, s->r.nind, strerror(errno));
        memcpy(s->segs, pages, s->r.nseg * sizeof(s->segs[0]));
        bhgnttab_unmap(b->gt, pages, s->r.nind);
    }
    v = bhblk_check_segs(s->segs, s->r.nseg, s->r.sector, &b->geom, &s->r.nr_sectors, w, sizeof(w));
    if (v == BHBLK_LIE)
        return fail(b, why, len, "indirect request %llu: %s", (unsigned long long)s->r.id, w);
    return v == BHBLK_REFUSE ? 1 : 0; /* misaligned, or past a disk that shrank */
}

/* Takes a request (fresh from the ring, or kept from a dead engine) into slot i. */
static int start(struct bhblk *b, unsigned int i, const struct blkif_request *raw, char *why,
                 size_t len)
{
    struct slot *s = &b->slots[i];
    char w[160];
    enum bhblk_verdict v = bhblk_parse(raw, &b->geom, &s->r, w, sizeof(w));

    s->used = true;
    s->pending = 0;
    s->status = BLKIF_RSP_OKAY;
    s->retried = false;
    s->pinned = false;
    s->map = NULL;
    s->nmap = 0;
    b->inflight++;
    tracef(b, "trace: request %llu op %u (%u) sector %llu, %u segments, %u indirect pages%s",
           (unsigned long long)raw->id, raw->operation, s->r.op, (unsigned long long)s->r.sector,
           s->r.nseg, s->r.nind, v == BHBLK_LIE ? ", a lie" : v == BHBLK_REFUSE ? ", refused" : "");
    if (v == BHBLK_LIE)
        return fail(b, why, len, "request %llu: %s", (unsigned long long)raw->id, w);
    if (v == BHBLK_REFUSE) {
        answer(b, i, s->r.status);
        return 0;
    }
    if (s->r.nind > 0) {
        int rc = read_indirect(b, i, why, len);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            answer(b, i, BLKIF_RSP_ERROR);
            return 0;
        }
    } else {
        for (unsigned int k = 0; k < s->r.nseg; k++)
            s->segs[k] = (struct blkif_request_segment){
                .gref = s->r.seg[k].gref, .first_sect = s->r.seg[k].first, .last_sect = s->r.seg[k].last};
    }
    s->needmap = s->r.nseg > 0 && !(b->persistent && map_persistent(b, s));
    if (s->needmap || b->ntomap > 0) {
        /* mapped with the pass's others (map_pass), and issued in the
         * ring's order still: a flush drains what was issued before it */
        b->tomap[b->ntomap++] = i;
        return 0;
    }
    if (issue(b, i) != 0)
        answer(b, i, BLKIF_RSP_ERROR);
    return 0;
}

/*
 * The requests in tomap: the pages of those that need them mapped, in as
 * few calls as the batch bounds allow (requests of one protection in each:
 * a read writes its pages), then every one issued in the ring's order.  A
 * batch the hypervisor refuses is mapped again one request at a time, so
 * that the lie is pinned on the request that told it.
 */
#define MAP_BATCH_SETS 64u
#define MAP_BATCH_REFS 256u
_Static_assert(MAP_BATCH_REFS >= BHBLK_MAX_INDIRECT, "a batch holds any one request's segments");

static int map_batch(struct bhblk *b, const unsigned int *idx, unsigned int n, int prot, char *why,
                     size_t len)
{
    uint32_t refs[MAP_BATCH_REFS], counts[MAP_BATCH_SETS] = {0};
    void *addrs[MAP_BATCH_SETS];
    unsigned int nref = 0;

    for (unsigned int t = 0; t < n; t++) {
        const struct slot *s = &b->slots[idx[t]];
        for (unsigned int k = 0; k < s->r.nseg; k++)
            refs[nref + k] = s->segs[k].gref;
        nref += s->r.nseg;
        counts[t] = s->r.nseg;
    }
    b->st.map_calls++;
    if (bhgnttab_map_many(b->gt, n, b->domid, counts, refs, prot, addrs) != 0) {
        for (unsigned int t = 0; t < n; t++)
            if (map_one(b, idx[t], why, len) != 0)
                return -1;
        return 0;
    }
    for (unsigned int t = 0; t < n; t++) {
        b->slots[idx[t]].map = addrs[t];
        b->slots[idx[t]].nmap = counts[t];
        lay_iov(&b->slots[idx[t]]);
    }
    return 0;
}

static int map_pass(struct bhblk *b, char *why, size_t len)
{
    static const int prots[2] = {PROT_READ | PROT_WRITE, PROT_READ};
    unsigned int idx[MAP_BATCH_SETS], ntomap = b->ntomap;

    b->ntomap = 0;
    for (unsigned int p = 0; p < 2; p++) {
        unsigned int n = 0, nref = 0;

        for (unsigned int t = 0; t < ntomap; t++) {
            const struct slot *s = &b->slots[b->tomap[t]];
            if (!s->needmap || data_prot(s) != prots[p])
                continue;
            if (n == MAP_BATCH_SETS || nref + s->r.nseg > MAP_BATCH_REFS) {
                if (map_batch(b, idx, n, prots[p], why, len) != 0)
                    return -1;
                n = nref = 0;
            }
            idx[n++] = b->tomap[t];
            nref += s->r.nseg;
        }
        if (n > 0 && map_batch(b, idx, n, prots[p], why, len) != 0)
            return -1;
    }
    for (unsigned int t = 0; t < ntomap; t++)
        if (issue(b, b->tomap[t]) != 0)
            answer(b, b->tomap[t], BLKIF_RSP_ERROR);
    return 0;
}

static void complete(struct bhblk *b, struct io_uring_cqe *c)
{
    unsigned int i = (unsigned int)(c->user_data >> 2), k = (unsigned int)(c->user_data & 3);
    struct slot *s;

    b->sqes--;
    if (i >= b->nslots || !b->slots[i].used)
        return;
    s = &b->slots[i];
    s->pending--;
    if (k == 0 && c->res == -EINVAL && b->dfd >= 0 && !s->retried) {
        s->retried = true; /* O_DIRECT refused this alignment: buffered instead */
        if (issue(b, i) == 0)
            return;
        s->status = BLKIF_RSP_ERROR;
    } else if (c->res < 0 || ((k == 0 || k == 1) && (uint64_t)c->res != s->expect)) {
        s->status = c->res == -EOPNOTSUPP && k == 3 ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR;
    }
    if (s->pending == 0)
        answer(b, i, s->status);
}

static void nbd_done(void *arg, unsigned int i, int16_t status)
{
    struct bhblk *b = arg;

    if (i < b->nslots && b->slots[i].used)
        answer(b, i, status);
}

/* Completions become answers; returns how many were seen. */
static unsigned int reap(struct bhblk *b)
{
    struct io_uring_cqe *c;
    unsigned int n = 0;

    if (b->nbd != NULL)
        return bhnbd_reap(b->nbd, nbd_done, b);
    while (io_uring_peek_cqe(&b->uring, &c) == 0) {
        complete(b, c);
        io_uring_cqe_seen(&b->uring, c);
        n++;
    }
    return n;
}

/* Hands the kernel the SQEs of this pass, in one io_uring_enter whatever their number. */
static void submit(struct bhblk *b)
{
    if (b->uring_up && io_uring_sq_ready(&b->uring) > 0) {
        b->st.enters++;
        io_uring_submit(&b->uring);
    }
}

/* Whether completions wait already. */
static bool ready(struct bhblk *b)
{
    return b->nbd != NULL ? bhnbd_pending(b->nbd) : io_uring_cq_ready(&b->uring) > 0;
}

/* The answered requests' mappings, in one call (before their responses are published). */
static void unmap_answered(struct bhblk *b)
{
    if (b->nunmap == 0)
        return;
    b->st.unmap_calls++;
    bhgnttab_unmap_many(b->gt, b->nunmap, b->unmap_addr, b->unmap_count);
    b->nunmap = 0;
}

static int push(struct bhblk *b)
{
    int n;

    unmap_answered(b); /* XSA-396: no page of a published response is still mapped */
    n = bhring_back_push(&b->ring);

    b->st.pushes++;
    if (n > 0)
        b->st.notifies++;
    for (unsigned int k = 0; k < b->ndone; k++)
        b->kept->busy[b->done[k]] = 0;
    b->ndone = 0;
    bhring_save(&b->ring, &b->kept->ring);
    b->kept->valid = 1;
    return n;
}

/* bhblk_run and bhblk_poll: arm says whether the ring's request event is set before returning. */
static int run(struct bhblk *b, bool arm, char *why, size_t len)
{
    int notify = 0;

    if (b->broken)
        return fail(b, why, len, "%s", b->why);
    b->st.runs++;
    for (;;) {
        unsigned int progress = reap(b);
        struct blkif_request raw;
        int more, got = 0;

        if (b->ndone > 0 && push(b) > 0)
            notify = 1;
        while (b->nfree > 0 && (got = bhring_back_get(&b->ring, &raw)) == 1) {
            unsigned int i = b->freel[--b->nfree];
            b->kept->req[i] = raw;
            b->kept->busy[i] = 1;
            bhring_save(&b->ring, &b->kept->ring);
            b->st.requests++;
            if (start(b, i, &raw, why, len) != 0)
                return -1;
            progress++;
        }
        if (b->ntomap > 0 && map_pass(b, why, len) != 0)
            return -1;
        if (got < 0)
            return fail(b, why, len, "%s", bhring_error(&b->ring));
        submit(b);
        if (b->ndone > 0 && push(b) > 0)
            notify = 1;
        if (b->broken)
            return fail(b, why, len, "%s", b->why);
        if (!arm) {
            /* polled: the request event stays behind, so the frontend's pushes notify nobody */
            if (progress > 0 && ready(b))
                continue;
            return notify;
        }
        more = bhring_back_final_check(&b->ring);
        if (more < 0)
            return fail(b, why, len, "%s", bhring_error(&b->ring));
        if ((more == 1 && b->nfree > 0) || (progress > 0 && ready(b)))
            continue;
        return notify;
    }
}

int bhblk_run(struct bhblk *b, char *why, size_t len)
{
    return run(b, true, why, len);
}

int bhblk_poll(struct bhblk *b, char *why, size_t len)
{
    return run(b, false, why, len);
}

struct bhblk *bhblk_open(const struct bhblk_opts *o, char *why, size_t len)
{
    struct bhblk *b;
    unsigned int n;
    int rc;

    unsigned int ss = o->geom.sector_size;

    if (o->ring == NULL || o->order > BHRING_MAX_ORDER || o->kept == NULL ||
        (o->fd < 0 && o->nbd == NULL) || o->gt == NULL ||
        o->geom.max_indirect > BHBLK_MAX_INDIRECT ||
        (ss != 0 && (ss < BHBLK_SECTOR || ss > PAGE || (ss & (ss - 1)) != 0))) {
        snprintf(why, len, "bhblk_open: bad options");
        bhnbd_close(o->nbd);
        errno = EINVAL;
        return NULL;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        bhnbd_close(o->nbd);
        goto nomem;
    }
    b->nbd = o->nbd;
    b->fd = o->fd;
    b->dfd = b->nbd != NULL || !o->direct ? -1 : open_direct(o->fd, o->geom.readonly);
    b->domid = o->domid;
    b->gt = o->gt;
    b->persistent = o->persistent;
    b->trace = o->trace;
    b->trace_arg = o->trace_arg;
    if (b->persistent && (b->pg = calloc(PGRANT_BUCKETS, sizeof(*b->pg))) == NULL)
        goto nomem;
    b->geom = o->geom;
    if (b->geom.sector_size == 0)
        b->geom.sector_size = BHBLK_SECTOR;
    b->kept = o->kept;
    if (bhring_attach(&b->ring, &bhring_blkif, BHRING_BACK, o->ring, o->order, 0, false) != 0 ||
        (o->kept->valid && bhring_restore(&b->ring, &o->kept->ring) != 0)) {
        snprintf(why, len, "cannot attach the ring: %s", strerror(errno));
        goto out;
    }
    if (!o->kept->valid)
        memset(o->kept, 0, sizeof(*o->kept));
    n = bhring_size(&b->ring);
    b->nslots = n;
    b->maxseg = o->geom.max_indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST
                    ? o->geom.max_indirect
                    : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    if ((b->slots = calloc(n, sizeof(*b->slots))) == NULL ||
        (b->freel = calloc(n, sizeof(*b->freel))) == NULL ||
        (b->done = calloc(n, sizeof(*b->done))) == NULL ||
        (b->tomap = calloc(n, sizeof(*b->tomap))) == NULL ||
        (b->unmap_addr = calloc(n, sizeof(*b->unmap_addr))) == NULL ||
        (b->unmap_count = calloc(n, sizeof(*b->unmap_count))) == NULL)
        goto nomem;
    for (unsigned int i = 0; i < n; i++) {
        b->slots[i].segs = calloc(b->maxseg, sizeof(*b->slots[i].segs));
        b->slots[i].iov = calloc(b->maxseg, sizeof(*b->slots[i].iov));
        if (b->slots[i].segs == NULL || b->slots[i].iov == NULL)
            goto nomem;
    }
    if (b->nbd == NULL && (rc = ring_open(b, 2 * n)) < 0) {
        errno = -rc;
        snprintf(why, len, "io_uring: %s (a kernel with io_uring enabled is needed)",
                 strerror(errno));
        goto out;
    }
    b->uring_up = b->nbd == NULL;
    for (unsigned int i = n; i-- > 0;)
        if (!o->kept->busy[i])
            b->freel[b->nfree++] = i;
    /* Requests a dead engine consumed and never answered: issued once more. */
    for (unsigned int i = 0; i < n; i++)
        if (o->kept->busy[i] && start(b, i, &o->kept->req[i], why, len) != 0)
            break; /* the ring is broken: bhblk_run says so */
    if (b->ntomap > 0 && !b->broken)
        map_pass(b, why, len); /* a lie breaks the ring: bhblk_run says so */
    b->ntomap = 0;
    submit(b);
    return b;
nomem:
    snprintf(why, len, "out of memory");
    errno = ENOMEM;
out:
    rc = errno;
    bhblk_close(b);
    errno = rc;
    return NULL;
}

void bhblk_close(struct bhblk *b)
{
    if (b == NULL)
        return;
    if (b->uring_up) {
        struct io_uring_cqe *c;
        /* the kernel may still be writing into mapped pages: wait before unmapping */
        io_uring_submit(&b->uring);
        while (b->sqes > 0 && io_uring_wait_cqe(&b->uring, &c) == 0) {
            b->sqes--;
            io_uring_cqe_seen(&b->uring, c);
        }
        io_uring_queue_exit(&b->uring);
    }
    bhnbd_close(b->nbd); /* no reply lands in a mapped page after this */
    if (b->unmap_addr != NULL)
        unmap_answered(b);
    for (unsigned int i = 0; b->slots != NULL && i < b->nslots; i++) {
        unmap_slot(b, &b->slots[i]);
        free(b->slots[i].segs);
        free(b->slots[i].iov);
    }
    pg_unmap_all(b);
    if (b->dfd >= 0)
        close(b->dfd);
    free(b->slots);
    free(b->freel);
    free(b->done);
    free(b->tomap);
    free(b->unmap_addr);
    free(b->unmap_count);
    free(b);
}

int bhblk_fd(const struct bhblk *b)
{
    return b->nbd != NULL ? bhnbd_fd(b->nbd) : b->uring.ring_fd;
}

void bhblk_set_sectors(struct bhblk *b, uint64_t sectors)
{
    if (b->geom.sectors > b->geom.ever_sectors)
        b->geom.ever_sectors = b->geom.sectors;
    b->geom.sectors = sectors;
}

unsigned int bhblk_tick(struct bhblk *b, uint64_t idle_ms)
{
    uint64_t t = now_ms();
    unsigned int n = 0;

    if (b->pg == NULL)
        return 0;
    for (unsigned int h = 0; h < PGRANT_BUCKETS; h++) {
        /* pg_drop may shift a later entry into h: look at h again then */
        while (b->pg[h].used && b->pg[h].pins == 0 && t - b->pg[h].last >= idle_ms) {
            pg_drop(b, h);
            n++;
        }
    }
    return n;
}

void bhblk_ring_state(const struct bhblk *b, char *buf, size_t len)
{
    const volatile uint32_t *h = (const volatile uint32_t *)b->ring.shared;

    /* The header's four words: req_prod, req_event, rsp_prod, rsp_event (io/ring.h). */
    snprintf(buf, len,
             "ring: req_prod %u req_event %u rsp_prod %u rsp_event %u; ours: req_cons %u "
             "rsp_prod %u; %u requests in flight, %lu SQEs, %u persistent pages%s",
             h[0], h[1], h[2], h[3], b->ring.cons, b->ring.prod_pvt, b->inflight, b->sqes, b->npg,
             b->broken ? ", broken" : "");
}

unsigned int bhblk_persistent_mapped(const struct bhblk *b)
{
    return b->npg;
}

unsigned int bhblk_persistent_busy(const struct bhblk *b)
{
    return b->npinned;
}

unsigned int bhblk_in_flight(const struct bhblk *b)
{
    return b->inflight;
}

const char *bhblk_storage_error(const struct bhblk *b)
{
    return b->nbd != NULL ? bhnbd_error(b->nbd) : NULL;
}

const struct bhblk_stats *bhblk_get_stats(const struct bhblk *b)
{
    return &b->st;
}

bool bhblk_direct(const struct bhblk *b)
{
    return b->dfd >= 0;
}
