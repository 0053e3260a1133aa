/*
 * fuzz_netfront_rsp.c - netfront's response validators over a hostile
 * backend's responses.
 *
 * Input: one byte of options (GSO TCPv4/v6 asked, hashing on, a smaller
 * slot limit), a byte t of TX requests put in flight (ids from a
 * bhring_ids table), then TX responses of 4 bytes while the next byte is
 * odd, then RX responses of 8 bytes (up to 40) with the ids the frontend
 * posted in their slots (2 bytes each).  What the validators accept must
 * be safe to act on; a complete chain never waits.
 */
#include <stdlib.h>
#include <string.h>

#include "bhnetfront.h"
#include "fuzz.h"

#define NRSP 40u

static void check_rx(const struct bhnetf_rxpkt *p, unsigned int n, const struct bhnetf_rxopts *o)
{
    uint32_t sum = 0;
    unsigned int max = o->max_slots ? o->max_slots : XEN_NETIF_NR_SLOTS_MIN;

    FUZZ_ASSERT(p->nrsp >= 1 && p->nrsp <= n && p->nfrags >= 1 && p->nfrags <= max);
    for (unsigned int i = 0; i < p->nfrags; i++) {
        FUZZ_ASSERT(p->frag[i].slot < p->nrsp);
        FUZZ_ASSERT((uint32_t)p->frag[i].off + p->frag[i].len <= 4096);
        sum += p->frag[i].len;
    }
    FUZZ_ASSERT(sum == p->len);
    if (p->gso_type)
        FUZZ_ASSERT(p->gso_size > 0 && ((p->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
                                        (p->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6)));
    FUZZ_ASSERT(!p->has_hash || o->hash);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct bhnetf_rxopts o = {0};
    struct bhring_ids *ids = bhring_ids_new(256, 16);
    struct netif_rx_response rsp[NRSP];
    uint16_t rid[NRSP];
    struct bhnetf_rxpkt pkt, pkt2;
    unsigned int t, n = 0, busy;
    uint8_t opt, cookie;
    char why[200];

    if (ids == NULL)
        return 0;
    opt = fuzz_u8(&in);
    o.gso_tcpv4 = opt & 1;
    o.gso_tcpv6 = opt & 2;
    o.hash = opt & 4;
    o.max_slots = opt & 8 ? 4 : 0;
    t = fuzz_u8(&in);
    for (unsigned int i = 0; i < t; i++) {
        uint64_t id;
        if (bhring_ids_get(ids, &cookie, &id) != 0)
            break;
    }
    while (fuzz_u8(&in) & 1) {
        struct netif_tx_response r;
        void *c;
        int16_t st;
        enum bhnetf_verdict v;
        for (size_t x = 0; x < sizeof(r); x++)
            ((uint8_t *)&r)[x] = fuzz_u8(&in);
        busy = bhring_ids_busy(ids);
        v = bhnetf_tx_rsp(&r, ids, &c, &st, why, sizeof(why));
        if (v == BHNETF_OK)
            FUZZ_ASSERT(c == &cookie && bhring_ids_busy(ids) == busy - 1 &&
                        (st == NETIF_RSP_OKAY || st == NETIF_RSP_ERROR || st == NETIF_RSP_DROPPED));
        else
            FUZZ_ASSERT(bhring_ids_busy(ids) == busy && (v == BHNETF_SKIP || why[0]));
    }
    bhring_ids_free(ids);
    while (in.n > 0 && n < NRSP) {
        for (size_t x = 0; x < sizeof(rsp[n]); x++)
            ((uint8_t *)&rsp[n])[x] = fuzz_u8(&in);
        rid[n] = (uint16_t)(fuzz_u8(&in) << 8 | fuzz_u8(&in));
        n++;
    }
    for (unsigned int start = 0; start < n;) {
        enum bhnetf_verdict v = bhnetf_rx_parse(rsp + start, rid + start, n - start, true, &o,
                                                &pkt, why, sizeof(why));
        enum bhnetf_verdict w = bhnetf_rx_parse(rsp + start, rid + start, n - start, false, &o,
                                                &pkt2, why, sizeof(why));
        FUZZ_ASSERT(v != BHNETF_MORE && v != BHNETF_SKIP);
        if (v == BHNETF_LIE) {
            FUZZ_ASSERT(why[0] != '\0' && (w == BHNETF_LIE || w == BHNETF_MORE));
            break;
        }
        FUZZ_ASSERT(w == v && pkt2.nrsp == pkt.nrsp && pkt2.len == pkt.len);
        if (v == BHNETF_OK) {
            check_rx(&pkt, n - start, &o);
            FUZZ_ASSERT(pkt.len >= 14);
        }
        start += pkt.nrsp;
    }
    return 0;
}
