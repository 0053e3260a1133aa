/*
 * fuzz_netback_rx.c - netback's RX side: hostile RX requests, and any frame
 * the backend's own side may hand it, laid out and read back.
 *
 * Input: one byte of options (GSO TCPv4/v6 asked, prefix, ids bounded by
 * the ring, a hash extra), the frame's description (4 bytes of length,
 * flags, GSO type, 2 bytes of GSO size; with a hash, its type and 4 bytes
 * of value), a byte n (0..20 requests) and n RX requests of 8
 * bytes.  The responses built must describe exactly the frame, in the
 * requests' own slots, and netfront's validator must take them as they are.
 */
#include <stdlib.h>
#include <string.h>

#include "bhnetback.h"
#include "bhnetfront.h"
#include "fuzz.h"

#define NREQ 20u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct bhnet_rxopts o = {0};
    struct bhnet_rxmeta m;
    struct netif_rx_request req[NREQ];
    struct netif_rx_response rsp[NREQ];
    struct bhnet_rxcopy copy[NREQ];
    uint16_t ids[NREQ];
    struct bhnetf_rxopts fo = {0};
    struct bhnetf_rxpkt pkt;
    unsigned int n, ncopy, need, ok = 0;
    uint32_t off = 0;
    uint8_t opt;
    char why[200];
    int used;

    opt = fuzz_u8(&in);
    o.gso_tcpv4 = opt & 1;
    o.gso_tcpv6 = opt & 2;
    o.gso_prefix = opt & 4;
    o.ring_ids = opt & 8 ? 256 : 0;
    m.len = fuzz_u32(&in) % (BHNET_RX_MAX_LEN + 4097);
    m.flags = fuzz_u8(&in);
    m.gso_type = fuzz_u8(&in) % 4;
    m.gso_size = (uint16_t)(fuzz_u8(&in) << 8 | fuzz_u8(&in));
    m.has_hash = opt & 16;
    m.hash_type = m.has_hash ? fuzz_u8(&in) % 4 : 0;
    m.hash = m.has_hash ? fuzz_u32(&in) : 0;
    n = fuzz_u8(&in) % (NREQ + 1);
    for (unsigned int i = 0; i < n; i++) {
        for (size_t x = 0; x < sizeof(req[i]); x++)
            ((uint8_t *)&req[i])[x] = fuzz_u8(&in);
        if (bhnet_rx_check_req(&req[i], &o, why, sizeof(why)) == BHNET_GO)
            ok++;
        else
            FUZZ_ASSERT(o.ring_ids && req[i].id >= o.ring_ids && why[0]);
        ids[i] = req[i].id;
    }
    need = bhnet_rx_slots(&o, &m);
    used = bhnet_rx_build(&o, &m, req, n, rsp, copy, &ncopy);
    if (need == 0 || n < need) {
        FUZZ_ASSERT(used == -1);
        return 0;
    }
    FUZZ_ASSERT(used == (int)need && need <= BHNET_RX_MAX_REQS);
    FUZZ_ASSERT(ncopy == (m.len + BHNET_PAGE - 1) / BHNET_PAGE);
    for (unsigned int i = 0; i < ncopy; i++) {
        FUZZ_ASSERT(copy[i].pkt_off == off && copy[i].len > 0 && copy[i].len <= BHNET_PAGE);
        off += copy[i].len;
    }
    FUZZ_ASSERT(off == m.len);
    if (o.gso_prefix)
        return 0; /* netfront never asks for the prefix: nothing to read it back with */
    fo.gso_tcpv4 = o.gso_tcpv4;
    fo.gso_tcpv6 = o.gso_tcpv6;
    fo.hash = m.has_hash;
    switch (bhnetf_rx_parse(rsp, ids, (unsigned int)used, true, &fo, &pkt, why, sizeof(why))) {
    case BHNETF_OK:
        FUZZ_ASSERT(pkt.len == m.len && pkt.nrsp == need && pkt.nfrags == ncopy);
        FUZZ_ASSERT(pkt.flags == (m.flags & (NETRXF_csum_blank | NETRXF_data_validated)));
        FUZZ_ASSERT(pkt.has_hash == m.has_hash);
        FUZZ_ASSERT(!m.has_hash || (pkt.hash == m.hash && pkt.hash_type == m.hash_type &&
                                    pkt.hash_alg == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ));
        for (unsigned int i = 0; i < ncopy; i++)
            FUZZ_ASSERT(req[pkt.frag[i].slot].gref == copy[i].gref);
        break;
    case BHNETF_DROP:
        FUZZ_ASSERT(m.len < 14);
        break;
    default:
        FUZZ_ASSERT(!"netfront refused what netback built");
    }
    (void)ok;
    return 0;
}
