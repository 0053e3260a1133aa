/*
 * fuzz_ring_front.c - a front end reading responses from a hostile back end.
 *
 * Input: type (1 byte), order (1), start index (4), then a script of
 * (op, argument) steps.  The front issues requests with ids from a
 * bhring_ids table and checks each response's id there, as a trusted=0
 * frontend must.  Invariants: no access outside the ring (ASan), never more
 * responses than requests published, an unknown, stale or duplicate id is
 * caught, and a broken ring stays broken.
 */
#include <stdlib.h>
#include <string.h>

#include "bhring.h"
#include "fuzz.h"
#include "xenring.h"

static const struct bhring_type *const types[] = {
    &bhring_blkif, &bhring_netif_tx, &bhring_netif_rx, &bhring_netif_ctrl};

/* Where each response type keeps its id, and how wide it is. */
static uint64_t rsp_id(const struct bhring_type *t, const uint8_t *rsp)
{
    uint64_t id64;
    uint16_t id16;

    _Static_assert(offsetof(struct blkif_response, id) == 0, "blkif response id");
    _Static_assert(offsetof(struct netif_tx_response, id) == 0, "netif tx response id");
    _Static_assert(offsetof(struct netif_rx_response, id) == 0, "netif rx response id");
    _Static_assert(offsetof(struct xen_netif_ctrl_response, id) == 0, "ctrl response id");
    if (t == &bhring_blkif) {
        memcpy(&id64, rsp, 8);
        return id64;
    }
    memcpy(&id16, rsp, 2);
    return id16;
}

static void put_id(const struct bhring_type *t, uint8_t *req, uint64_t id)
{
    uint16_t id16 = (uint16_t)id;

    if (t == &bhring_blkif)
        memcpy(req + offsetof(struct blkif_request, id), &id, 8);
    else if (t == &bhring_netif_tx)
        memcpy(req + offsetof(struct netif_tx_request, id), &id16, 2);
    else if (t == &bhring_netif_rx)
        memcpy(req + offsetof(struct netif_rx_request, id), &id16, 2);
    else
        memcpy(req + offsetof(struct xen_netif_ctrl_request, id), &id16, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    const struct bhring_type *t = types[fuzz_u8(&in) % 4];
    unsigned int order = fuzz_u8(&in) % (BHRING_MAX_ORDER + 1);
    uint32_t start = fuzz_u32(&in);
    size_t bytes = bhring_bytes(order);
    uint8_t *page, req[256], rsp[256];
    struct bhring r;
    struct bhring_ids *ids;
    unsigned int nr, steps = 0;
    uint64_t published = 0, completed = 0;

    page = aligned_alloc(BHRING_PAGE_SIZE, bytes);
    if (page == NULL)
        return 0;
    memset(page, 0, bytes);
    FUZZ_ASSERT(bhring_attach(&r, t, BHRING_FRONT, page, order, start, true) == 0);
    nr = bhring_size(&r);
    ids = bhring_ids_new(nr, t == &bhring_blkif ? 64 : 16);
    FUZZ_ASSERT(ids != NULL);
    memset(req, 0, sizeof(req));

    while (in.n > 0 && steps++ < 4096) {
        uint8_t op = fuzz_u8(&in);
        uint32_t arg = fuzz_u32(&in);
        int was_broken = bhring_broken(&r), rc = 0;
        uint64_t id;

        switch (op % 6) {
        case 0: /* the back writes any response producer */
            memcpy(page + 8, &arg, 4);
            break;
        case 1: /* the back writes a response slot: any id, any status */
        {
            size_t off = BHRING_HDR_SIZE + (size_t)(arg % nr) * bhring_type_ent_size(t);
            uint64_t v = (uint64_t)arg * 0x9e3779b97f4a7c15ull;
            memcpy(page + off, &v, sizeof(v) < bhring_type_rsp_size(t) ? sizeof(v)
                                                                      : bhring_type_rsp_size(t));
            break;
        }
        case 2: /* we issue requests */
            if (bhring_broken(&r)) {
                rc = bhring_front_put(&r, req);
                break;
            }
            for (unsigned int i = 0; i < (arg % 64) + 1 && bhring_front_free(&r) > 0; i++) {
                if (bhring_ids_get(ids, NULL, &id) != 0)
                    break;
                put_id(t, req, id);
                rc = bhring_front_put(&r, req);
                if (rc != 0) {
                    bhring_ids_put(ids, id, NULL);
                    break;
                }
            }
            break;
        case 3:
            rc = bhring_front_push(&r);
            if (rc >= 0)
                published = r.pushed - start;
            break;
        case 4: /* we take responses, validating their ids */
            for (unsigned int i = 0; i < (arg % 64) + 1; i++) {
                rc = bhring_front_get(&r, rsp);
                if (rc != 1)
                    break;
                completed++;
                FUZZ_ASSERT(completed <= published);
                if (bhring_ids_put(ids, rsp_id(t, rsp), NULL) != 0) {
                    rc = bhring_break(&r, "response with bad id");
                    break;
                }
            }
            break;
        case 5:
            rc = bhring_front_final_check(&r);
            break;
        }
        FUZZ_ASSERT(bhring_in_flight(&r) <= nr);
        FUZZ_ASSERT(bhring_front_free(&r) <= nr);
        if (!bhring_broken(&r))
            FUZZ_ASSERT(bhring_ids_busy(ids) == bhring_in_flight(&r));
        if (was_broken)
            FUZZ_ASSERT(rc == -1 || op % 6 <= 1);
    }
    bhring_ids_free(ids);
    free(page);
    return 0;
}
