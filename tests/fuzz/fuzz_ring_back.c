/*
 * fuzz_ring_back.c - a back end consuming a ring whose every byte, and
 * every change to it between calls, comes from the fuzzer.
 *
 * Input: type (1 byte), order (1), start index (4), initial ring bytes
 * (2 bytes of length, then that many bytes repeated over the ring), then a
 * script of (op, argument) steps that play the hostile front end and drive
 * the back end.  The back end must never read or write outside the ring
 * (ASan), never take more than a ring of requests, and stay broken once
 * broken.
 */
#include <stdlib.h>
#include <string.h>

#include "bhring.h"
#include "fuzz.h"

static const struct bhring_type *const types[] = {
    &bhring_blkif, &bhring_netif_tx, &bhring_netif_rx, &bhring_netif_ctrl};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    const struct bhring_type *t = types[fuzz_u8(&in) % 4];
    unsigned int order = fuzz_u8(&in) % (BHRING_MAX_ORDER + 1);
    uint32_t start = fuzz_u32(&in);
    size_t bytes = bhring_bytes(order), fill;
    uint8_t *page, req[256], rsp[256];
    struct bhring r;
    unsigned int nr, steps = 0;
    uint64_t got = 0, answered = 0;

    page = aligned_alloc(BHRING_PAGE_SIZE, bytes);
    if (page == NULL)
        return 0;
    fill = ((size_t)fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 512;
    for (size_t i = 0; i < bytes; i++)
        page[i] = fill && in.n ? in.p[i % (fill < in.n ? fill : in.n)] : 0;
    in.p += fill < in.n ? fill : in.n;
    in.n -= fill < in.n ? fill : in.n;
    memset(rsp, 0xa5, sizeof(rsp));

    FUZZ_ASSERT(bhring_attach(&r, t, BHRING_BACK, page, order, start, false) == 0);
    nr = bhring_size(&r);
    while (in.n > 0 && steps++ < 4096) {
        uint8_t op = fuzz_u8(&in);
        uint32_t arg = fuzz_u32(&in);
        int was_broken = bhring_broken(&r), rc = 0;

        switch (op % 7) {
        case 0: /* the front writes any request producer */
            memcpy(page, &arg, 4);
            break;
        case 1: /* ... or a plausible one near ours */
        {
            uint32_t v = r.cons + (arg % (2 * nr + 2)) - nr / 2;
            memcpy(page, &v, 4);
            break;
        }
        case 2: /* the front scribbles over a slot or the header */
            page[arg % bytes] = (uint8_t)(arg >> 24);
            break;
        case 3: /* we take requests */
            for (unsigned int i = 0; i < (arg % 64) + 1; i++) {
                rc = bhring_back_get(&r, req);
                if (rc != 1)
                    break;
                got++;
                FUZZ_ASSERT(got - answered <= nr);
            }
            break;
        case 4: /* we answer some */
            for (unsigned int i = 0; i < (arg % 64) + 1; i++) {
                rc = bhring_back_put(&r, rsp);
                if (rc != 0)
                    break;
                answered++;
                FUZZ_ASSERT(answered <= got);
            }
            break;
        case 5:
            rc = bhring_back_push(&r);
            break;
        case 6:
            rc = bhring_back_final_check(&r);
            break;
        }
        FUZZ_ASSERT(bhring_in_flight(&r) == got - answered);
        FUZZ_ASSERT(bhring_in_flight(&r) <= nr);
        if (was_broken)
            FUZZ_ASSERT(rc == -1 || op % 7 <= 2);
        if (bhring_broken(&r))
            FUZZ_ASSERT(bhring_error(&r)[0] != '\0');
    }
    free(page);
    return 0;
}
