/*
 * private.h - what the files of libbhblkfront share: the device handle's
 * body and the cross-file calls.
 */
#ifndef BULKHEAD_BLKFRONT_PRIVATE_H
#define BULKHEAD_BLKFRONT_PRIVATE_H

#include <pthread.h>
#include <stdint.h>
#include <xen/io/blkif.h>

#include "bhblkfront.h"
#include "bhring.h"
#include "bhxenbus.h"

#define BLK_PAGE                   4096u
#define BLK_MAX_SLOTS              512u /* blkif slots of an order-4 ring */
#define BLK_SEGS_PER_INDIRECT_PAGE (BLK_PAGE / sizeof(struct blkif_request_segment))
#define BLK_MAX_IND_PAGES                                                                          \
    ((BHBLKFRONT_MAX_INDIRECT + BLK_SEGS_PER_INDIRECT_PAGE - 1) / BLK_SEGS_PER_INDIRECT_PAGE)
#define BLK_BATCH 64u /* pages per grant call (the simulation's batch) */

struct blk_io {
    struct blk_io *next;
    enum bhblkfront_op op;
    uint64_t off, len; /* bytes on the disk */
    uint8_t *buf;
    bhblkfront_done_fn *done;
    void *arg;
    uint64_t issued; /* bytes handed to chunks; for flush, 1 once issued */
    unsigned int outstanding;
    int err;
};

/* One ring request.  Its index in the chunk table is only ours: ids come from bhring_ids. */
struct blk_chunk {
    struct blk_chunk *next; /* free list or reissue list */
    struct blk_io *io;
    uint64_t off, len; /* bytes within io */
    uint8_t op;        /* BLKIF_OP_* of the request (INDIRECT for indirect) */
    uint8_t rw_op;     /* the data operation under INDIRECT */
    uint16_t npages, nind;
    uint16_t q;  /* the queue whose ring it is on */
    bool onring; /* issued on the current connection, not answered */
    uint32_t page[BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES]; /* pool indices */
};

/*
 * One queue: its ring, port and ids, its slice of the data pool, and the
 * I/Os submitted on it, under a lock of its own so that submitters on
 * different queues never meet.  An I/O lives on one queue from submit to
 * completion (a reconnect with fewer queues moves it, every lock held).
 */
struct blk_queue {
    pthread_mutex_t lock; /* everything below */
    unsigned int idx;
    void *ring_pages;
    uint32_t ring_refs[16];
    struct bhring ring;
    struct bhring_ids *ids;
    int port;

    uint32_t *freepg; /* this queue's slice of the pool's free page indices */
    unsigned int nfree;

    struct blk_chunk *freech;
    struct blk_chunk *reissue, *reissue_tail;
    unsigned int busy; /* chunks on the ring */

    struct blk_io *qhead, *qtail; /* not fully issued yet */
    unsigned int nio;             /* queued or in flight */

    bool no_flush, no_discard; /* the backend answered EOPNOTSUPP on this queue */
    bool failed;               /* its I/O was failed once the device broke */
};

/*
 * Locks: `lock` serialises the connection's steps (publish, connect,
 * disconnect, free), which take every queue's lock as well, in index
 * order.  Fields written only there (info, nq, published, connected, the
 * pool's pages) may be read under any one queue's lock.  `broken` is set
 * from a queue's consumer: an atomic, with the reason under brlock.
 */
struct bhblkfront {
    pthread_mutex_t lock;   /* the connection's steps */
    pthread_mutex_t evlock; /* the event channel handle (notify vs pending/unmask) */
    pthread_mutex_t brlock; /* why, broken_reported */
    struct bhblkfront_cfg cfg;
    char *dir, *backend;

    /* connection */
    bool published, connected, ever_connected;
    unsigned int wanted; /* queues: cfg.queues or the default */
    unsigned int nq;     /* queues of this connection (1 before the first) */
    struct blk_queue *q; /* wanted of them */

    /* data pool: npool pages, granted in batches of BLK_BATCH, split between the queues */
    unsigned int npool;
    uint8_t **pg;
    uint32_t *pref;
    void **batch;
    unsigned int nbatch;
    uint32_t *freepg;

    struct blk_chunk *chunks; /* nchunks, handed out to the queues' free lists */
    unsigned int nchunks;

    struct bhblkfront_info info;
    unsigned int offered_order;
    bool be_persistent;
    unsigned int be_indirect;

    bool broken; /* atomic */
    bool broken_reported;
    char why[200];
};

/* blkfront.c: take pending events of the device's port (evlock held inside). */
int blk_take_events(bhblkfront *b);

#endif
