/*
 * fuzz_blkfront_rsp.c - libbhblkfront's response consumer and validator
 * (frontend/blk/blkfront.c, compiled in) under a hostile backend.
 *
 * The platform and the store are replaced here by plain memory (granted
 * pages are malloc'd, keys come from a table), so the real device code runs
 * without a simulation.  Input: a configuration byte (ring order, indirect,
 * trusted, 4096-byte sectors), then a script of (op, argument) steps:
 * submit a read, write, flush or discard; answer the next request with a
 * response the input mutates (id, operation, status); move rsp_prod
 * anywhere; poll (or first an online resize to any size); reconnect.
 * Invariants: no access outside what was allocated (ASan), every I/O
 * completes exactly once (by the end at the latest), a broken device
 * has nothing in flight and refuses new I/O, every request is in whole
 * logical sectors, the process lives.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/blkif.h>

#include "bhblkfront.h"
#include "bhring.h"
#include "bhxenbus.h"
#include "fuzz.h"

#define PAGE   4096u
#define MAX_IO 64

/* ---- the platform and the store, in memory ---- */

static unsigned int cfg_order, cfg_indirect, cfg_trusted, cfg_sector;
static unsigned long cfg_sectors; /* the backend's sectors key, 512-byte units */
static uint32_t next_ref = 1;
static void *ring_mem; /* the last ring shared: the first share of a publish */
static bool want_ring;

void *bhgntshr_share_pages(bhgntshr_handle *h, uint32_t domid, int count, bh_grant_ref_t *refs,
                           int writable)
{
    void *p = aligned_alloc(PAGE, (size_t)count * PAGE);

    (void)h, (void)domid, (void)writable;
    if (p == NULL)
        return NULL;
    memset(p, 0, (size_t)count * PAGE);
    for (int i = 0; i < count; i++)
        refs[i] = next_ref++;
    if (want_ring) {
        ring_mem = p;
        want_ring = false;
    }
    return p;
}

int bhgntshr_unshare(bhgntshr_handle *h, void *start, uint32_t count)
{
    (void)h, (void)count;
    if (start == ring_mem)
        ring_mem = NULL;
    free(start);
    return 0;
}

bh_evtchn_port_or_error_t bhevtchn_bind_unbound_port(bhevtchn_handle *h, uint32_t domid)
{
    (void)h, (void)domid;
    return 5;
}

int bhevtchn_unbind(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    (void)h, (void)port;
    return 0;
}

int bhevtchn_notify(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    (void)h, (void)port;
    return 0;
}

bh_evtchn_port_or_error_t bhevtchn_pending(bhevtchn_handle *h)
{
    (void)h;
    errno = EAGAIN;
    return -1;
}

int bhevtchn_unmask(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    (void)h, (void)port;
    return 0;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    (void)h, (void)t, (void)path;
    return true;
}

int bhxb_write_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n)
{
    (void)xs, (void)dir, (void)keys, (void)n;
    return 0;
}

static unsigned long key_value(const char *name, bool *found)
{
    static const struct {
        const char *name;
        unsigned long v;
    } tab[] = {{"info", 0},
               {"feature-persistent", 1},
               {"feature-flush-cache", 1},
               {"feature-discard", 1}};

    *found = true;
    if (strcmp(name, "sectors") == 0)
        return cfg_sectors;
    if (strcmp(name, "sector-size") == 0)
        return cfg_sector;
    if (strcmp(name, "max-ring-page-order") == 0)
        return cfg_order;
    if (strcmp(name, "feature-max-indirect-segments") == 0)
        return cfg_indirect;
    if (strcmp(name, "trusted") == 0)
        return cfg_trusted;
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strcmp(tab[i].name, name) == 0)
            return tab[i].v;
    *found = false;
    return 0;
}

int bhxb_read_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n,
                   const char **bad)
{
    (void)xs, (void)dir, (void)bad;
    for (size_t i = 0; i < n; i++) {
        bool found;
        unsigned long v = key_value(keys[i].name, &found);

        if (!found)
            continue;
        if (keys[i].type == BHXB_BOOL)
            *(bool *)keys[i].ptr = v != 0;
        else if (keys[i].type == BHXB_UINT)
            *(unsigned int *)keys[i].ptr = (unsigned int)v;
        else if (keys[i].type == BHXB_ULONG)
            *(unsigned long *)keys[i].ptr = v;
    }
    return 0;
}

/* ---- the script ---- */

static uint8_t disk_buf[MAX_IO][8 * PAGE];
static int done_count[MAX_IO];

static void on_done(void *arg, int err)
{
    (void)err;
    done_count[(uintptr_t)arg]++;
}

static int reattach(bhblkfront *b, struct bhring *back)
{
    char why[256];

    want_ring = true;
    if (bhblkfront_publish(b, why, sizeof(why)) != 0)
        return -1;
    FUZZ_ASSERT(ring_mem != NULL);
    {
        struct bhblkfront_info in;
        unsigned int order = 0;

        if (bhblkfront_connect(b, why, sizeof(why)) != 0)
            return -1;
        FUZZ_ASSERT(bhblkfront_get_info(b, &in) == 0);
        order = in.ring_order;
        FUZZ_ASSERT(bhring_attach(back, &bhring_blkif, BHRING_BACK, ring_mem, order, 0, false) ==
                    0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t conf = fuzz_u8(&in);
    static char dummy;
    struct bhblkfront_cfg cfg = {.xs = (struct xs_handle *)&dummy,
                                 .gntshr = (bhgntshr_handle *)&dummy,
                                 .evtchn = (bhevtchn_handle *)&dummy,
                                 .dir = "/fe",
                                 .backend = "/be",
                                 .ring_order = 4,
                                 .pool_pages = 160};
    struct bhring back;
    bhblkfront *b;
    unsigned int nio = 0, steps = 0;

    cfg_order = conf & 3;
    cfg_indirect = (conf & 4) ? 32 : 0;
    cfg_trusted = (conf >> 3) & 1;
    cfg_sector = (conf & 16) ? 4096 : 512;
    cfg_sectors = 2048;
    memset(done_count, 0, sizeof(done_count));
    b = bhblkfront_new(&cfg);
    FUZZ_ASSERT(b != NULL);
    FUZZ_ASSERT(reattach(b, &back) == 0);

    while (in.n > 0 && steps++ < 2048) {
        uint8_t op = fuzz_u8(&in) % 8;
        uint32_t arg = fuzz_u32(&in);

        switch (op) {
        case 0:
        case 1:
        case 2:
        case 3: {
            uint64_t unit = (arg & 0x800) ? cfg_sector : 512; /* aligned, or maybe not */
            uint64_t off = (uint64_t)(arg % 2048) * unit;
            uint64_t len = (uint64_t)((arg >> 12) % 64 + 1) * unit;

            if (nio >= MAX_IO)
                break;
            if (bhblkfront_submit(b, (enum bhblkfront_op)op, off, len, disk_buf[nio], on_done,
                                  (void *)(uintptr_t)nio) == 0)
                nio++;
            else
                FUZZ_ASSERT(errno == EINVAL || errno == EIO);
            break;
        }
        case 4: {
            /* The backend answers the next request, with the input's mutations. */
            union {
                blkif_request_t rw;
                uint8_t raw[112];
            } req;
            blkif_response_t rsp;

            if (ring_mem == NULL || bhring_back_get(&back, &req) != 1)
                break;
            if (req.rw.operation == BLKIF_OP_READ || req.rw.operation == BLKIF_OP_WRITE) {
                unsigned int k = cfg_sector / 512;
                FUZZ_ASSERT(req.rw.sector_number % k == 0);
                for (unsigned int i = 0; i < req.rw.nr_segments && i < 11; i++)
                    FUZZ_ASSERT(req.rw.seg[i].first_sect % k == 0 &&
                                (req.rw.seg[i].last_sect + 1u) % k == 0);
            } else if (req.rw.operation == BLKIF_OP_INDIRECT) {
                FUZZ_ASSERT(((blkif_request_indirect_t *)&req)->sector_number % (cfg_sector / 512) ==
                            0);
            }
            memset(&rsp, 0, sizeof(rsp));
            rsp.id = req.rw.id ^ ((arg & 0x10) ? (uint64_t)fuzz_u8(&in) << (arg & 7) * 8 : 0);
            rsp.operation = (arg & 0x20) ? fuzz_u8(&in) : req.rw.operation;
            rsp.status = (arg & 0x40) ? (int16_t)(int8_t)fuzz_u8(&in) : 0;
            if (bhring_back_put(&back, &rsp) == 0)
                bhring_back_push(&back);
            break;
        }
        case 5:
            if (arg & 0x100) { /* online resize, as the backend's state rewrite makes it */
                char why[200];
                cfg_sectors = arg >> 16;
                FUZZ_ASSERT(bhblkfront_refresh(b, why, sizeof(why)) >= 0 || bhblkfront_broken(b) ||
                            errno == ENOTCONN);
            }
            bhblkfront_poll(b);
            break;
        case 6:
            /* rsp_prod anywhere. */
            if (ring_mem != NULL)
                __atomic_store_n((uint32_t *)((uint8_t *)ring_mem + 8), arg, __ATOMIC_RELEASE);
            bhblkfront_poll(b);
            break;
        case 7:
            /* The backend went away and came back: what was in flight is reissued. */
            bhblkfront_disconnect(b);
            if (reattach(b, &back) != 0)
                FUZZ_ASSERT(bhblkfront_broken(b));
            break;
        }
        if (bhblkfront_broken(b)) {
            FUZZ_ASSERT(bhblkfront_in_flight(b) == 0);
            for (unsigned int i = 0; i < nio; i++)
                FUZZ_ASSERT(done_count[i] == 1);
        }
        for (unsigned int i = 0; i < nio; i++)
            FUZZ_ASSERT(done_count[i] <= 1);
    }
    bhblkfront_free(b);
    for (unsigned int i = 0; i < nio; i++)
        FUZZ_ASSERT(done_count[i] == 1);
    return 0;
}
