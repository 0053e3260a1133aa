/*
 * bhblkfront.h - the frontend half of a PV block device (io/blkif.h) as a
 * library: negotiation with whatever the backend offers, a hardened
 * response consumer, and byte-range I/O completed through a callback.
 *
 * Two layers:
 *
 *  - The device steps (bhblkfront_new/publish/connect/disconnect/kick), for
 *    a caller that runs the XenBus handshake itself (a bhxb_machine, as
 *    bulkhead-guest does, or a test playing both ends).  publish reads the
 *    backend's features (written before InitWait), grants the ring and the
 *    data pool and writes our keys in one transaction; connect reads the
 *    connect-time keys; disconnect ends every grant and puts the requests
 *    in flight back in the queue, so that the next publish/connect reissues
 *    them (a backend that went Closing/Closed and came back).
 *
 *  - bhblkfront_open: the whole device in one call, for a process that owns
 *    it (the nbdkit plugin): its own XenStore and platform handles, the
 *    frontend's bhxb_machine, and one event thread serving watches and the
 *    event channel.  Threads: start it only after fork.
 *
 * Data path.  Every byte goes through a pool of pages granted to the
 * backend once per connection and used for nothing but this device's I/O
 * (bounce buffers: the caller's memory is never granted).  With the
 * backend's feature-persistent the pool is announced as persistent (the
 * backend may keep it mapped).  With trusted=0 (the frontend's `trusted`
 * key, XSA-403) the unused part of every data page is cleared before it is
 * granted for a request, so a page never carries anything but the
 * request's own data.  A request carries up to 11 segments, or with
 * feature-max-indirect-segments up to min(offered, BHBLKFRONT_MAX_INDIRECT)
 * segments through indirect pages from the same pool.
 *
 * Trust.  Every backend key is parsed strictly; every response is copied
 * once and validated (its id is one we issued and have not seen answered,
 * its operation is the request's, its status is OKAY, ERROR or
 * EOPNOTSUPP).  A lie breaks the device: every I/O fails with EIO, the
 * reason is in bhblkfront_error(), and (with bhblkfront_open) the error
 * node is written and the device goes Closing.  Never the process.
 *
 * Queues (io/blkif.h multi-queue): min(cfg.queues, the backend's
 * multi-queue-max-queues) rings, each with its own event channel, ids,
 * share of the pool and lock; one queue (the top-level keys) when the
 * backend offers none.  An I/O goes on the queue of the submitting thread
 * (each thread is given one, round robin, at its first call) or on the one
 * named with bhblkfront_submit_queue, and completes from that queue, so
 * threads on different queues do not contend.
 *
 * Threads: every call is thread-safe.  Completion callbacks run from
 * whichever thread consumed the response (the event thread, or a
 * submitter polling with bhblkfront_poll), never with a library lock held;
 * they must not block.  Functions return 0 or -1 with errno; nothing logs.
 */
#ifndef BULKHEAD_BHBLKFRONT_H
#define BULKHEAD_BHBLKFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenstore.h>

#include "bhplat.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BHBLKFRONT_MAX_INDIRECT 128 /* segments per indirect request we use */
#define BHBLKFRONT_POOL_PAGES   256 /* default data pool, pages (1 MiB) */
#define BHBLKFRONT_QUEUES       4   /* queues wanted by default (Linux's xen_blkfront.max_queues) */
#define BHBLKFRONT_MAX_QUEUES   16

typedef struct bhblkfront bhblkfront;

enum bhblkfront_op {
    BHBLKFRONT_READ = 0,
    BHBLKFRONT_WRITE = 1,
    BHBLKFRONT_FLUSH = 2,
    BHBLKFRONT_DISCARD = 3,
};

/* What was negotiated, as of the last connect. */
struct bhblkfront_info {
    /*
     * The size in 512-byte units whatever sector_size is (as Linux reads
     * "sectors", and io/blkif.h since 2024); I/O covers whole sectors of
     * sector_size within sectors * 512 bytes.
     */
    uint64_t sectors;
    unsigned int sector_size; /* logical: 512 .. 65536, a power of two */
    unsigned int physical_sector_size; /* a power of two >= sector_size (default: it) */
    unsigned int info;        /* VDISK_* (read-only 4, removable 2, cdrom 1) */
    unsigned int ring_order;  /* 0..4 */
    unsigned int ring_slots;
    unsigned int max_segments; /* per request: 11, or the indirect count */
    bool persistent;           /* both ends: persistent grants */
    bool indirect;             /* indirect requests in use */
    bool flush;                /* FLUSH_DISKCACHE (or barrier as a flush) */
    bool barrier;              /* flush carried by WRITE_BARRIER */
    bool discard;
    bool discard_secure;
    unsigned int discard_granularity, discard_alignment;
    unsigned int backend_max_queues; /* offered (1 when the backend says nothing) */
    unsigned int queues;             /* in use: min(wanted, offered) */
    bool trusted;
};

struct bhblkfront_cfg {
    struct xs_handle *xs;    /* the device's store handle */
    bhgntshr_handle *gntshr; /* to grant ring and pool to the backend */
    bhevtchn_handle *evtchn; /* one port is bound on it; see bhblkfront_kick */
    const char *dir;         /* our device directory */
    const char *backend;     /* the backend's directory */
    uint32_t backend_domid;
    unsigned int ring_order; /* wanted, 0..4: min(this, max-ring-page-order) is used */
    unsigned int pool_pages; /* 0: BHBLKFRONT_POOL_PAGES; raised to 129 pages per queue */
    unsigned int queues;     /* wanted, 0: BHBLKFRONT_QUEUES; at most BHBLKFRONT_MAX_QUEUES */
    bool no_persistent;      /* do not ask for persistent grants */
    bool no_indirect;        /* do not use indirect requests */
    /* Called (from the thread that caught it, no lock held) when the backend lied. */
    void (*broken)(void *arg, const char *why);
    void *arg;
};

/* Copies cfg (the strings too).  NULL with EINVAL or ENOMEM. */
bhblkfront *bhblkfront_new(const struct bhblkfront_cfg *cfg);
/* Disconnects, fails what is queued with ECANCELED (callbacks run), frees. */
void bhblkfront_free(bhblkfront *b);

/*
 * Reads the backend's features and our `trusted` key, grants each queue's
 * ring and the pool, binds an unbound port per queue for the backend and
 * writes ring-ref (or ring-page-order + ring-refN), event-channel (under
 * queue-N/ with multi-queue-num-queues when there are several queues),
 * protocol and feature-persistent in one transaction.  I/O of queues that
 * the new connection no longer has moves to the others.  -1 with a
 * one-line reason.
 */
int bhblkfront_publish(bhblkfront *b, char *why, size_t whylen);

/*
 * Reads sectors, info, sector-size and the discard keys strictly, then
 * issues whatever is queued (requests reissued after a reconnect).
 */
int bhblkfront_connect(bhblkfront *b, char *why, size_t whylen);

/*
 * Online resize: re-reads sectors while connected (the backend rewrote
 * its state with the new size, as Linux's blkfront re-reads on a Connected
 * seen again).  Returns 1 when the size changed, 0 when not, -1 with a
 * reason (a missing or bogus sectors key: the caller breaks the device).
 */
int bhblkfront_refresh(bhblkfront *b, char *why, size_t whylen);

/* Ends grants and closes the port; requests in flight go back to the queue.  Idempotent. */
void bhblkfront_disconnect(bhblkfront *b);

/*
 * The device moved to another backend (its driver domain was rebuilt with
 * a new id, bulkhead restart): the next publish grants the ring and pool
 * to backend_domid and reads the keys under backend; what is queued (and
 * what was in flight at the disconnect) is issued there.  Only while
 * disconnected: -1 with EBUSY otherwise, EINVAL, ENOMEM.
 */
int bhblkfront_set_backend(bhblkfront *b, const char *backend, uint32_t backend_domid);

/* The event channel fired (the caller took and unmasked it): consume responses. */
void bhblkfront_kick(bhblkfront *b);

/* Our port (queue 0's), or -1 when not published. */
int bhblkfront_port(const bhblkfront *b);
/* Queue `queue`'s port, or -1 (not published, or no such queue). */
int bhblkfront_queue_port(bhblkfront *b, unsigned int queue);

/* Completion: 0, or an errno (EIO: backend error or broken device; ENOTSUP). */
typedef void bhblkfront_done_fn(void *arg, int err);

/*
 * Queues one I/O: read into / write from buf (len bytes at byte offset),
 * flush (offset, len, buf unused), discard (offset, len).  Offset and len
 * must be multiples of the sector size and inside the disk.  buf stays the
 * caller's until done runs.  -1 with EINVAL (alignment, range), EROFS
 * (write or discard on a read-only disk), ENOTSUP (an operation the
 * backend did not offer), EIO (the device is broken); done is then not
 * called.  Queued I/O is issued while connected, in order of submission.
 */
int bhblkfront_submit(bhblkfront *b, enum bhblkfront_op op, uint64_t offset, uint64_t len,
                      void *buf, bhblkfront_done_fn *done, void *arg);

/*
 * As bhblkfront_submit, on queue `queue` modulo the queues of the
 * connection (a reconnect may have changed their count).
 */
int bhblkfront_submit_queue(bhblkfront *b, unsigned int queue, enum bhblkfront_op op,
                            uint64_t offset, uint64_t len, void *buf, bhblkfront_done_fn *done,
                            void *arg);

/* The calling thread's queue (what bhblkfront_submit uses), 0..queues-1. */
unsigned int bhblkfront_queue(bhblkfront *b);

/* Consumes responses now, on every queue; returns completions run. */
int bhblkfront_poll(bhblkfront *b);

/* Consumes the responses of one queue (a submitter waiting for its own), modulo the count. */
int bhblkfront_poll_queue(bhblkfront *b, unsigned int queue);

/* What was negotiated; EAGAIN before the first connect. */
int bhblkfront_get_info(bhblkfront *b, struct bhblkfront_info *out);

bool bhblkfront_broken(bhblkfront *b);
/* Why the device broke ("" while healthy), copied into buf. */
void bhblkfront_error(bhblkfront *b, char *buf, size_t size);

/* Requests on the ring now, and I/Os queued or in flight. */
unsigned int bhblkfront_in_flight(bhblkfront *b);

/* ---- the whole device (attach.c) ---- */

typedef struct bhblkfront_dev bhblkfront_dev;

/*
 * Attaches to vbd `devid` of this domain: opens XenStore (as a domain),
 * the platform handles, runs the frontend handshake in an event thread and
 * waits up to timeout_ms for Connected.  opts as bhblkfront_cfg's (xs,
 * gntshr, evtchn, dir, backend, backend_domid ignored).  NULL with errno
 * and a one-line reason in why.
 */
bhblkfront_dev *bhblkfront_open(uint32_t devid, const struct bhblkfront_cfg *opts, int timeout_ms,
                                char *why, size_t whylen);
/* The device's library handle (valid until close). */
bhblkfront *bhblkfront_dev_blk(bhblkfront_dev *d);
/* Stops the thread, closes the device (state Closed), frees. */
void bhblkfront_close(bhblkfront_dev *d);

#ifdef __cplusplus
}
#endif

#endif
