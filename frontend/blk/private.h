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
    bool onring; /* issued on the current connection, not answered */
    uint32_t page[BHBLKFRONT_MAX_INDIRECT + BLK_MAX_IND_PAGES]; /* pool indices */
};

struct bhblkfront {
    pthread_mutex_t lock;   /* everything below */
    pthread_mutex_t evlock; /* the event channel handle (notify vs pending/unmask) */
    struct bhblkfront_cfg cfg;
    char *dir, *backend;

    /* connection */
    bool published, connected, ever_connected;
    void *ring_pages;
    uint32_t ring_refs[16];
    struct bhring ring;
    struct bhring_ids *ids;
    int port;

    /* data pool: pool_pages pages, granted in batches of BLK_BATCH */
    unsigned int npool;
    uint8_t **pg;
    uint32_t *pref;
    void **batch;
    unsigned int nbatch;
    uint32_t *freepg;
    unsigned int nfree;

    struct blk_chunk *chunks;
    struct blk_chunk *freech;
    struct blk_chunk *reissue, *reissue_tail;
    unsigned int busy; /* chunks on the ring */

    struct blk_io *qhead, *qtail; /* not fully issued yet */
    unsigned int nio;             /* queued or in flight */

    struct bhblkfront_info info;
    unsigned int offered_order;
    bool be_persistent;
    unsigned int be_indirect;

    bool broken;
    bool broken_reported;
    char why[200];
};

/* blkfront.c: take pending events of the device's port (evlock held inside). */
int blk_take_events(bhblkfront *b);

#endif
