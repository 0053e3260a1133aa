/*
 * fuzz_netback_ctrl.c - netback's control ring consumer (bhnet_ctrl_serve
 * over bhnet_ctrl_handle): a ring whose slots, producer index and granted
 * page come from the fuzzer, served in rounds, then frames steered by
 * whatever hash settings the requests made.
 *
 * Input: queues (1 byte: 1..8), the granted page's first 512 bytes (the
 * rest repeats them), then rounds of: a request count (1 byte), a producer
 * index skew (1 byte: 0 honest, else a hostile index), that many requests
 * of 16 bytes; the bytes left are a frame.  Every response must echo its
 * request, every mapping entry in use must name a queue, a frame must be
 * steered to a queue, and a broken ring must stay broken.
 */
#include <stdlib.h>
#include <string.h>

#include "bhnetback.h"
#include "fuzz.h"

static uint8_t grant[BHNET_PAGE];

/* Odd grant references do not map: their requests must fail, not crash. */
static void *page(void *ctx, uint32_t gref, bool writable)
{
    (void)ctx;
    FUZZ_ASSERT(!writable);
    return gref & 1 ? NULL : grant;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    unsigned int nq = fuzz_u8(&in) % 8 + 1, refused, rounds = 0;
    struct bhnet_hash h;
    struct bhring front, back;
    struct bhnet_rxmeta m;
    uint8_t *ring;
    uint32_t prod = 0, cons;
    static uint8_t shadow[BHNET_PAGE - 64];
    char why[200];
    bool broken = false;

    if ((ring = aligned_alloc(BHNET_PAGE, BHNET_PAGE)) == NULL)
        return 0;
    memset(ring, 0, BHNET_PAGE);
    memset(&h, 0, sizeof(h));
    for (size_t i = 0; i < sizeof(grant); i++)
        grant[i] = i < 512 ? fuzz_u8(&in) : grant[i % 512];
    FUZZ_ASSERT(bhring_attach(&front, &bhring_netif_ctrl, BHRING_FRONT, ring, 0, 0, true) == 0);
    FUZZ_ASSERT(bhring_attach(&back, &bhring_netif_ctrl, BHRING_BACK, ring, 0, 0, false) == 0);
    while (in.n > 16 && rounds++ < 64) {
        unsigned int n = fuzz_u8(&in) % 40, skew = fuzz_u8(&in);
        struct xen_netif_ctrl_request req;
        struct xen_netif_ctrl_response rsp;
        int got;

        /* Requests straight into the slots, as a frontend writes them. */
        for (unsigned int i = 0; i < n; i++) {
            for (size_t x = 0; x < sizeof(req); x++)
                ((uint8_t *)&req)[x] = fuzz_u8(&in);
            memcpy(ring + 64 + ((prod + i) % bhring_size(&back)) * 16, &req, sizeof(req));
        }
        prod += n;
        {
            uint32_t p = skew == 0 ? prod : prod + skew * 977u;

            memcpy(ring, &p, 4); /* req_prod */
        }
        memcpy(shadow, ring + 64, sizeof(shadow)); /* the requests as the backend will find them */
        cons = back.cons;
        got = bhnet_ctrl_serve(&back, &h, nq, page, NULL, NULL, &refused, why, sizeof(why));
        if (broken)
            FUZZ_ASSERT(got == -1);
        if (got < 0) {
            FUZZ_ASSERT(bhring_broken(&back) && why[0] != '\0');
            broken = true;
            break;
        }
        FUZZ_ASSERT(refused <= (unsigned int)got && (unsigned int)got <= bhring_size(&back));
        bhring_back_push(&back);
        /* Each response in its slot echoes the request there. */
        for (unsigned int i = 0; i < (unsigned int)got; i++) {
            uint32_t at = (cons + i) % bhring_size(&back);

            memcpy(&rsp, ring + 64 + at * 16, sizeof(rsp));
            memcpy(&req, shadow + at * 16, sizeof(req));
            FUZZ_ASSERT(rsp.id == req.id && rsp.type == req.type);
            FUZZ_ASSERT(rsp.status <= XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
        }
        FUZZ_ASSERT(h.size <= BHNET_HASH_MAPPING_MAX);
        FUZZ_ASSERT(h.alg <= XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
        for (unsigned int i = 0; i < h.size; i++)
            FUZZ_ASSERT(h.mapping[i] < nq);
        prod = back.cons; /* the next round's requests go where the consumer is */
    }
    memset(&m, 0, sizeof(m));
    m.len = (uint32_t)in.n;
    FUZZ_ASSERT(bhnet_hash_steer(&h, nq, in.p, in.n, &m, 0) < nq);
    FUZZ_ASSERT(!m.has_hash || h.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    FUZZ_ASSERT(!m.has_hash || m.hash_type <= _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
    (void)front;
    free(ring);
    return 0;
}
