/*
 * bhblkback.h - blkback's data path: the request validator (a pure
 * function over a request copied out of the ring and the device's
 * geometry) and the engine that serves one blkif ring from a disk's fd
 * with io_uring, reading and writing straight into the frontend's mapped
 * granted pages.
 *
 * The engine owns no XenStore and no event channel: the caller (the driver
 * domain's block driver, or a test) maps the ring, runs bhblk_run() when
 * the frontend's port fires or bhblk_fd() is readable, and notifies the
 * frontend when bhblk_run() says so.  One thread, no per-request thread.
 *
 * Functions return 0 (or a count) on success and -1 with errno set, unless
 * their comment says otherwise.  Nothing logs.
 */
#ifndef BULKHEAD_BHBLKBACK_H
#define BULKHEAD_BHBLKBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>

#include "bhplat.h"
#include "bhring.h"

#define BHBLK_SECTOR       512u  /* the ring's sector, whatever the disk's */
#define BHBLK_MAX_INDIRECT 256u  /* feature-max-indirect-segments we offer */
#define BHBLK_SEGS_PER_PAGE (4096u / sizeof(struct blkif_request_segment)) /* 512 */
#define BHBLK_MAX_SLOTS    512u  /* requests in flight: a blkif ring of 16 pages */

/* What a request is checked against. */
struct bhblk_geom {
    uint64_t sectors;          /* the disk's size in 512-byte sectors */
    bool readonly;             /* writes, barriers and discards are refused */
    bool discard;              /* feature-discard offered */
    unsigned int max_indirect; /* 0: no indirect requests accepted */
    /*
     * The largest size this ring ever had (0: sectors).  After a shrink a
     * request between sectors and this one may have been issued before the
     * frontend saw the new size: it is answered BLKIF_RSP_ERROR, as Linux
     * does; only one past every size ever published is a lie.
     */
    uint64_t ever_sectors;
    /*
     * The disk's logical block size (io/blkif.h sector-size): 512 (or 0)
     * up to 4096, a power of two.  Requests still count 512-byte sectors;
     * one whose start, segments or discard range are not whole logical
     * blocks is answered BLKIF_RSP_ERROR (as Linux's blkback answers a
     * misaligned request: a frontend's bug, not a hostile one).
     */
    unsigned int sector_size;
};

struct bhblk_seg {
    uint32_t gref;
    uint8_t first, last; /* 512-byte sectors within the page, first <= last <= 7 */
};

/* A request as validated: only this copy is ever acted upon. */
struct bhblk_req {
    uint64_t id;
    uint8_t operation;  /* for the response: as on the ring; an indirect one's indirect_op */
    uint8_t op;         /* what to do: READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE, DISCARD */
    uint64_t sector;    /* first 512-byte sector */
    uint64_t nr_sectors;
    unsigned int nseg;  /* segments (direct, or announced by an indirect request) */
    unsigned int nind;  /* indirect pages, 0 for a direct request */
    uint32_t ind_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    struct bhblk_seg seg[BLKIF_MAX_SEGMENTS_PER_REQUEST]; /* direct segments */
    int16_t status;     /* with BHBLK_REFUSE: the status to answer with */
};

enum bhblk_verdict {
    BHBLK_LIE = -1,   /* the frontend lied: it loses its device; why says how */
    BHBLK_GO = 0,     /* valid: carry it out */
    BHBLK_REFUSE = 1, /* valid but not served: answer with req->status */
};

/*
 * Validates one request copied out of the ring: operation, segment count
 * (1..11 direct; 0 allowed for a flush or barrier), segment bounds, the
 * sector range against the disk (wrap-around included), indirect page
 * counts against g->max_indirect, read-only disks.  The segments of an
 * indirect request are checked with bhblk_check_segs once their pages are
 * copied.  Returns a verdict; out is filled for GO and REFUSE.
 */
enum bhblk_verdict bhblk_parse(const struct blkif_request *raw, const struct bhblk_geom *g,
                               struct bhblk_req *out, char *why, size_t whylen);

/*
 * Checks n segments (copied into private memory) of a request starting at
 * sector against the disk; on success *nr_sectors is their total.  Returns
 * BHBLK_GO, BHBLK_LIE, or BHBLK_REFUSE (status BLKIF_RSP_ERROR) for a
 * range not aligned to g->sector_size or past a disk that shrank.
 */
enum bhblk_verdict bhblk_check_segs(const struct blkif_request_segment *segs, unsigned int n,
                                    uint64_t sector, const struct bhblk_geom *g,
                                    uint64_t *nr_sectors, char *why, size_t whylen);

/*
 * What outlives the engine's process (a driver keeps it in its keeper's
 * memory): the ring's private indices and every request consumed and not
 * yet answered, so that a restarted engine answers each exactly once, by
 * issuing it again.  Plain values only; zeroed for a new ring.
 */
struct bhblk_kept {
    struct bhring_state ring;
    uint32_t valid;   /* nonzero once the engine has saved into it */
    uint8_t busy[BHBLK_MAX_SLOTS];
    struct blkif_request req[BHBLK_MAX_SLOTS];
};

/*
 * NBD storage (nbd.c): a disk that is not a raw file - a qcow2 or vhd image
 * behind dom0's qemu-nbd, an nbdkit, any NBD server - is served through
 * libnbd on a connected socket.  bhnbd_open takes the socket (closed on
 * failure too), does the handshake and learns the export's size and flags,
 * which the driver publishes (discard only with trim, flush and barrier
 * only with flush, read-only as the server says); bhblk_open then takes the
 * connection.  A server that goes away fails every request (BLKIF_RSP_ERROR)
 * and bhblk_storage_error says so.
 */
struct bhnbd;
struct bhblk_nbd_info {
    uint64_t size; /* bytes */
    bool readonly, flush, trim, fua;
};
struct bhnbd *bhnbd_open(int sock, char *why, size_t whylen);
void bhnbd_close(struct bhnbd *n); /* NULL is fine */
const struct bhblk_nbd_info *bhnbd_info(const struct bhnbd *n);

struct bhblk_opts {
    int fd;                 /* the disk, opened read-write (or read-only with geom.readonly) */
    struct bhnbd *nbd;      /* instead of fd (-1 then): an NBD connection, the engine's from now */
    uint32_t domid;         /* the frontend's domain */
    bhgnttab_handle *gt;    /* maps its grants */
    void *ring;             /* the mapped ring pages (2^order) */
    unsigned int order;
    struct bhblk_geom geom;
    struct bhblk_kept *kept; /* maintained by the engine; restored from when kept->valid */
    bool persistent;         /* both ends said feature-persistent: keep data pages mapped */
    /*
     * Reads and writes with O_DIRECT (a second open of fd) instead of
     * through the page cache: for a block device, or a file whose
     * toolstack wrote direct-io-safe.  Otherwise buffered, as QEMU's qdisk
     * without direct-io-safe (O_DIRECT on granted pages was unsafe with
     * some storage); flushes are honoured either way.
     */
    bool direct;
    /*
     * Optional: one line per request taken and answered (the first
     * BHBLK_TRACE_MAX of each), for finding where a frontend's I/O stops
     * on a platform we cannot single-step (bulkhead-drvdom's
     * BULKHEAD_BLK_TRACE).  NULL: silent.
     */
    void (*trace)(void *arg, const char *line);
    void *trace_arg;
};

#define BHBLK_TRACE_MAX 200u

/*
 * Persistent grants (io/blkif.h feature-persistent): a data page the
 * frontend grants is mapped once and kept, up to this many per ring (as
 * Linux's max_persistent_grants); past it, or for a page granted read-only,
 * a request maps its pages for its own time as without the feature.
 */
#define BHBLK_MAX_PERSISTENT 1056u

struct bhblk;

/* An engine over a mapped ring; NULL with why (EINVAL, ENOMEM, or io_uring's errno). */
struct bhblk *bhblk_open(const struct bhblk_opts *o, char *why, size_t whylen);
/* The io_uring operations an engine's ring is restricted to, by name, NULL-terminated. */
extern const char *const bhblk_uring_ops[];
/* Waits for the I/O in flight, unmaps what it mapped, frees; the kept state stays. */
void bhblk_close(struct bhblk *b);

/* The io_uring's (or the NBD socket's epoll) fd: readable when bhblk_run() has work. */
int bhblk_fd(const struct bhblk *b);

/*
 * Does all there is to do: completions become responses, new requests are
 * consumed, validated and submitted, responses are pushed.  Returns 1 when
 * the frontend must be notified, 0 when not, -1 with why when it lied (the
 * ring is then broken and every later call fails).
 */
int bhblk_run(struct bhblk *b, char *why, size_t whylen);

/*
 * bhblk_run for a caller that polls: the same work, but the ring's request
 * event is left where it was, so that the frontend's pushes meanwhile do
 * not notify (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY finds it behind).  The
 * caller must end its polling with bhblk_run, which sets the event and
 * looks at the ring once more, before it sleeps: a request pushed after
 * the last poll would otherwise wait for the next notification.
 */
int bhblk_poll(struct bhblk *b, char *why, size_t whylen);

/* A new size (online resize): later requests are checked against it. */
void bhblk_set_sectors(struct bhblk *b, uint64_t sectors);

/*
 * Idle persistent grants (as Linux's blkback purges its LRU): unmaps every
 * persistently mapped page no request in flight uses and none used for
 * idle_ms milliseconds or more (0: every one not in use now).  A later
 * request maps it again.  The caller runs it from its loop now and then
 * (BHBLK_IDLE_MS apart, or sooner).  Returns the pages unmapped.
 */
#define BHBLK_IDLE_MS 60000u /* Linux's persistent grant timeout, 60 s */
unsigned int bhblk_tick(struct bhblk *b, uint64_t idle_ms);

/* The ring's shared indices beside ours and the I/O in flight, as one line (for a trace). */
void bhblk_ring_state(const struct bhblk *b, char *buf, size_t len);

/* Pages persistently mapped now, and those of them a request in flight uses. */
unsigned int bhblk_persistent_mapped(const struct bhblk *b);
unsigned int bhblk_persistent_busy(const struct bhblk *b);

/* Requests submitted and not yet answered. */
unsigned int bhblk_in_flight(const struct bhblk *b);

/*
 * What an engine's requests cost, counted since it was opened: enough to
 * see batching on a host (requests per notification, per io_uring_enter)
 * without tracing it.  enters counts the submissions that had SQEs to hand
 * the kernel (each one io_uring_enter), and the entries liburing made
 * itself to run completions waiting as task work.
 */
struct bhblk_stats {
    uint64_t requests;  /* taken off the ring */
    uint64_t runs;      /* bhblk_run calls */
    uint64_t pushes;    /* response batches made visible to the frontend */
    uint64_t notifies;  /* of them, those the frontend asked to hear of (rsp_event) */
    uint64_t enters;    /* io_uring submissions that entered the kernel */
    uint64_t map_calls;   /* grant map calls: per pass's batch, a lone request, a persistent page */
    uint64_t unmap_calls; /* grant unmap calls for answered requests: one per push at most */
};
const struct bhblk_stats *bhblk_get_stats(const struct bhblk *b);

/* NULL, or why the storage is lost (an NBD server gone): every request now fails. */
const char *bhblk_storage_error(const struct bhblk *b);

/* Whether reads and writes go through O_DIRECT (asked for, and an fd that allows it). */
bool bhblk_direct(const struct bhblk *b);

#endif
