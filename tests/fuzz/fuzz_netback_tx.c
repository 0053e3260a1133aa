/*
 * fuzz_netback_tx.c - netback's TX consumer over a hostile frontend's
 * requests, through a real ring.
 *
 * Input: one byte of options (GSO TCPv4/v6 offered, multicast control,
 * max_slots and fatal_slots raised), then batches: a byte k (1..64 requests)
 * and k requests of 12 bytes each, which the frontend puts and publishes
 * (short inputs zero-padded).  After each batch the backend takes chains
 * until it must wait, answers each one and the frontend takes the answers,
 * so that the ring never fills.  What a GO lets through must be safe to act
 * on; the ring consumer must agree with the array parser on every verdict.
 */
#include <stdlib.h>
#include <string.h>

#include "bhnetback.h"
#include "fuzz.h"

#define MAXREQ 4096u

static void check_go(const struct bhnet_txpkt *p, const struct bhnet_txopts *o)
{
    uint32_t sum = 0;
    unsigned int max = o->max_slots > XEN_NETIF_NR_SLOTS_MIN ? o->max_slots : XEN_NETIF_NR_SLOTS_MIN;

    FUZZ_ASSERT(p->nreq >= 1 && p->nreq <= BHNET_TX_MAX_REQS);
    if (p->kind != BHNET_TX_PACKET) {
        FUZZ_ASSERT(o->mcast && p->nfrags == 0);
        return;
    }
    FUZZ_ASSERT(p->nfrags >= 1 && p->nfrags <= max && p->nfrags <= p->nreq);
    for (unsigned int i = 0; i < p->nfrags; i++) {
        FUZZ_ASSERT((uint32_t)p->frag[i].off + p->frag[i].len <= BHNET_PAGE);
        sum += p->frag[i].len;
    }
    FUZZ_ASSERT(sum == p->len && p->len <= XEN_NETIF_MAX_TX_SIZE);
    FUZZ_ASSERT(p->frag[0].len >= BHNET_ETH_HLEN);
    if (p->gso_type != XEN_NETIF_GSO_TYPE_NONE) {
        FUZZ_ASSERT(p->gso_size > 0 && (p->flags & NETTXF_csum_blank));
        FUZZ_ASSERT((p->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
                    (p->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct netif_tx_request all[MAXREQ];
    struct fuzz_in in = {data, size};
    struct bhnet_txopts o = {0};
    struct bhring f, b;
    struct bhnet_txq q;
    struct bhnet_txpkt pkt, ref;
    struct netif_tx_response rsp[BHNET_TX_MAX_REQS];
    unsigned int nall = 0, pos = 0;
    uint8_t opt;
    char why[200], why2[200];
    void *mem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));

    if (mem == NULL)
        return 0;
    opt = fuzz_u8(&in);
    o.gso_tcpv4 = opt & 1;
    o.gso_tcpv6 = opt & 2;
    o.mcast = opt & 4;
    o.max_slots = opt & 8 ? 24 : 0;
    o.fatal_slots = opt & 16 ? 40 : 0; /* beyond BHNET_TX_FATAL_MAX: clamped */
    memset(&q, 0, sizeof(q));
    if (bhring_attach(&f, &bhring_netif_tx, BHRING_FRONT, mem, 0, 0, true) != 0 ||
        bhring_attach(&b, &bhring_netif_tx, BHRING_BACK, mem, 0, 0, false) != 0)
        abort();
    while (in.n > 0 && !bhring_broken(&b)) {
        unsigned int k = fuzz_u8(&in) % 64 + 1;
        for (unsigned int j = 0; j < k && nall < MAXREQ && bhring_front_free(&f) > 0; j++) {
            struct netif_tx_request r;
            for (size_t x = 0; x < sizeof(r); x++)
                ((uint8_t *)&r)[x] = fuzz_u8(&in);
            all[nall++] = r;
            FUZZ_ASSERT(bhring_front_put(&f, &r) == 0);
        }
        bhring_front_push(&f);
        for (;;) {
            enum bhnet_verdict v = bhnet_tx_take(&b, &o, &q, &pkt, why, sizeof(why));
            enum bhnet_verdict w;
            if (v == BHNET_MORE) {
                FUZZ_ASSERT(pos + q.n == nall);
                break;
            }
            w = bhnet_tx_parse(all + pos, nall - pos, false, &o, &ref, why2, sizeof(why2));
            FUZZ_ASSERT(v == w);
            if (v == BHNET_LIE) {
                FUZZ_ASSERT(why[0] != '\0' && bhring_broken(&b));
                break;
            }
            FUZZ_ASSERT(pkt.nreq == ref.nreq && pkt.len == ref.len);
            if (v == BHNET_GO)
                check_go(&pkt, &o);
            pos += pkt.nreq;
            bhnet_tx_responses(&pkt, v == BHNET_GO ? NETIF_RSP_OKAY : NETIF_RSP_ERROR, rsp);
            for (unsigned int i = 0; i < pkt.nreq; i++)
                FUZZ_ASSERT(bhring_back_put(&b, &rsp[i]) == 0);
            bhring_back_push(&b);
            while (bhring_front_get(&f, &rsp[0]) == 1)
                ;
        }
    }
    free(mem);
    return 0;
}
