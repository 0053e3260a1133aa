/*
 * fuzz_netback_vnet.c - netback's TAP side: the header walk that finds a
 * frame's checksum (over bytes a frontend wrote), and a frame with its
 * virtio_net_hdr read from a TAP-like socket (bytes another guest sent)
 * and delivered into RX pages.
 *
 * Input: one byte of options (GSO TCPv4/v6 asked, a 10- or 12-byte header),
 * then the header and the frame as the TAP would give them.  The checksum
 * offsets found must lie within the frame's headers; a frame delivered
 * must arrive byte for byte as netfront's validator reads it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bhnetback.h"
#include "bhnetfront.h"
#include "fuzz.h"

static uint8_t pages[BHNET_RX_MAX_REQS][4096];

static void *page_of(void *ctx, uint32_t gref, bool writable)
{
    (void)ctx;
    (void)writable;
    return gref < BHNET_RX_MAX_REQS ? pages[gref] : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[12 + BHNET_FRAME_MAX], back[BHNET_FRAME_MAX];
    struct fuzz_in in = {data, size};
    struct bhnet_rxopts o = {.ring_ids = 256};
    struct bhnetf_rxopts fo = {0};
    struct netif_rx_request req[BHNET_RX_MAX_REQS];
    struct netif_rx_response rsp[BHNET_RX_MAX_REQS];
    uint16_t ids[BHNET_RX_MAX_REQS];
    struct bhnet_rxmeta m;
    struct bhnetf_rxpkt pkt;
    const uint8_t *f;
    uint16_t start, off, hlen;
    uint8_t opt, proto;
    bool v6;
    size_t hdrsz;
    unsigned int used;
    uint32_t at = 0;
    char why[200];
    int sp[2], r;

    opt = fuzz_u8(&in);
    o.gso_tcpv4 = fo.gso_tcpv4 = opt & 1;
    o.gso_tcpv6 = fo.gso_tcpv6 = opt & 2;
    hdrsz = opt & 4 ? 12 : 10;
    if (in.n > hdrsz && bhnet_csum_locate(in.p + hdrsz, in.n - hdrsz, &start, &off, &hlen, &proto,
                                          &v6) == 0)
        FUZZ_ASSERT(start >= BHNET_ETH_HLEN && (size_t)start + off + 2 <= hlen &&
                    hlen <= in.n - hdrsz && (proto == 6 || proto == 17));
    if (in.n == 0 || in.n > hdrsz + BHNET_FRAME_MAX)
        return 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp) != 0)
        return 0;
    if (send(sp[0], in.p, in.n, 0) != (ssize_t)in.n)
        goto out;
    r = bhnet_rx_from_fd(sp[1], hdrsz, buf, &m, &f, why, sizeof(why));
    FUZZ_ASSERT(r == 1 || r == 2);
    if (r == 2) {
        FUZZ_ASSERT(why[0] != '\0');
        goto out;
    }
    FUZZ_ASSERT(m.len == in.n - hdrsz && f == buf + hdrsz);
    for (unsigned int i = 0; i < BHNET_RX_MAX_REQS; i++) {
        req[i] = (struct netif_rx_request){.id = (uint16_t)(i * 3), .gref = i};
        ids[i] = req[i].id;
    }
    if (bhnet_rx_deliver(&o, &m, f, req, BHNET_RX_MAX_REQS, page_of, NULL, rsp, &used) != 0) {
        FUZZ_ASSERT(errno == EINVAL && used == 0);
        goto out;
    }
    FUZZ_ASSERT(bhnetf_rx_parse(rsp, ids, used, true, &fo, &pkt, why, sizeof(why)) == BHNETF_OK);
    FUZZ_ASSERT(pkt.len == m.len && pkt.nrsp == used);
    for (unsigned int i = 0; i < pkt.nfrags; i++) {
        memcpy(back + at, pages[req[pkt.frag[i].slot].gref] + pkt.frag[i].off, pkt.frag[i].len);
        at += pkt.frag[i].len;
    }
    FUZZ_ASSERT(at == m.len && memcmp(back, f, m.len) == 0);
out:
    close(sp[0]);
    close(sp[1]);
    return 0;
}
