/*
 * vnet.c - netback's other wire: frames to and from a TAP opened with
 * IFF_VNET_HDR, whose virtio_net_hdr carries what netif's flags and GSO
 * extra carry on the ring.  The netif side says only "checksum blank";
 * the TAP wants where the checksum goes, so the frame's headers are read
 * - from our private copy, never from the frontend's page, which it can
 * change while we look.  The header's fields are little-endian as virtio
 * 1.0 has them; on a big-endian host the TAP must be told so (TUNSETVNETLE).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>

#include "bhnetback.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int bhnet_csum_locate(const uint8_t *frame, size_t len, uint16_t *csum_start, uint16_t *csum_off,
                      uint16_t *hdr_len, uint8_t *proto, bool *ipv6)
{
    size_t l3 = BHNET_ETH_HLEN, l4, l4len;
    uint16_t type;

    if (len < l3)
        return -1;
    type = be16(frame + 12);
    if (type == ETH_P_8021Q) {
        if (len < l3 + 4)
            return -1;
        type = be16(frame + 16);
        l3 += 4;
    }
    if (type == ETH_P_IP) {
        size_t ihl;
        if (len < l3 + 20 || (frame[l3] >> 4) != 4)
            return -1;
        ihl = (size_t)(frame[l3] & 0x0f) * 4;
        /* A fragment's L4 header is in its first piece only: no offload for it. */
        if (ihl < 20 || len < l3 + ihl || (be16(frame + l3 + 6) & 0x3fff) != 0)
            return -1;
        *proto = frame[l3 + 9];
        *ipv6 = false;
        l4 = l3 + ihl;
    } else if (type == ETH_P_IPV6) {
        if (len < l3 + 40 || (frame[l3] >> 4) != 6)
            return -1;
        *proto = frame[l3 + 6];
        *ipv6 = true;
        l4 = l3 + 40;
    } else {
        return -1;
    }
    if (*proto == 6) {
        if (len < l4 + 20)
            return -1;
        l4len = (size_t)(frame[l4 + 12] >> 4) * 4;
        if (l4len < 20 || len < l4 + l4len)
            return -1;
        *csum_off = 16;
    } else if (*proto == 17) {
        l4len = 8;
        if (len < l4 + l4len)
            return -1;
        *csum_off = 6;
    } else {
        return -1;
    }
    *csum_start = (uint16_t)l4;
    *hdr_len = (uint16_t)(l4 + l4len);
    return 0;
}

/* The virtio_net_hdr for a TX packet whose frame (len bytes) is at f. */
static int tx_hdr(const struct bhnet_txpkt *pkt, const uint8_t *f, size_t len,
                  struct virtio_net_hdr *h, char *why, size_t whylen)
{
    uint16_t start, off, hlen;
    uint8_t proto;
    bool v6;

    memset(h, 0, sizeof(*h));
    if (pkt->flags & NETTXF_csum_blank) {
        if (bhnet_csum_locate(f, len, &start, &off, &hlen, &proto, &v6) != 0) {
            snprintf(why, whylen, "frame with a blank checksum is not TCP or UDP over IPv4 or IPv6");
            return 1;
        }
        h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h->csum_start = htole16(start);
        h->csum_offset = htole16(off);
        h->hdr_len = htole16(hlen);
        if (pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE) {
            bool want6 = pkt->gso_type == XEN_NETIF_GSO_TYPE_TCPV6;
            if (proto != 6 || v6 != want6) {
                snprintf(why, whylen, "GSO %s on a frame that is not TCP over %s",
                         want6 ? "TCPv6" : "TCPv4", want6 ? "IPv6" : "IPv4");
                return 1;
            }
            h->gso_type = want6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
            h->gso_size = htole16(pkt->gso_size);
        }
    } else if (pkt->flags & NETTXF_data_validated) {
        h->flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    return 0;
}

/*
 * The last steps of a TX frame whose first `seen` bytes are in scratch
 * after hdrsz bytes of room (all of it, gathered, or its copied head):
 * the filter and the offload's checks on them, the virtio_net_hdr
 * written before them, and one writev of them and of iov[1..niov) (the
 * rest, from the pages).  Returns as bhnet_tx_to_fd_filtered.
 */
static int tx_send(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt, void *ctx,
                   bhnet_filter_fn filter, uint8_t *scratch, size_t seen, struct iovec *iov,
                   unsigned int niov, char *why, size_t whylen)
{
    struct virtio_net_hdr h;
    uint8_t *f = scratch + hdrsz;
    ssize_t r;
    int rc;

    if (filter != NULL && !filter(ctx, f, seen)) {
        snprintf(why, whylen, "refused by the filter");
        return 2;
    }
    if ((rc = tx_hdr(pkt, f, seen, &h, why, whylen)) != 0)
        return rc;
    memset(scratch, 0, hdrsz);
    memcpy(scratch, &h, sizeof(h));
    if (hdrsz >= sizeof(struct virtio_net_hdr_mrg_rxbuf))
        ((struct virtio_net_hdr_mrg_rxbuf *)(void *)scratch)->num_buffers = htole16(1);
    iov[0] = (struct iovec){scratch, hdrsz + seen};
    do
        r = writev(fd, iov, (int)niov);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

int bhnet_tx_to_fd(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt, bhnet_page_fn page,
                   void *ctx, uint8_t *scratch, char *why, size_t whylen)
{
    return bhnet_tx_to_fd_filtered(fd, hdrsz, pkt, page, ctx, NULL, scratch, why, whylen);
}

int bhnet_tx_to_fd_filtered(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt,
                            bhnet_page_fn page, void *ctx, bhnet_filter_fn filter,
                            uint8_t *scratch, char *why, size_t whylen)
{
    struct iovec iov[1];
    uint8_t *f = scratch + hdrsz;
    size_t len = 0;

    if (hdrsz < sizeof(struct virtio_net_hdr) || pkt->kind != BHNET_TX_PACKET || pkt->len > BHNET_FRAME_MAX) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned int i = 0; i < pkt->nfrags; i++) {
        const struct bhnet_frag *fr = &pkt->frag[i];
        const uint8_t *pg = page(ctx, fr->gref, false);
        if (pg == NULL) {
            snprintf(why, whylen, "TX slot %u: grant %u does not map", i, fr->gref);
            return 1;
        }
        memcpy(f + len, pg + fr->off, fr->len);
        len += fr->len;
    }
    return tx_send(fd, hdrsz, pkt, ctx, filter, scratch, len, iov, 1, why, whylen);
}

int bhnet_tx_to_fd_kept(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt, bhnet_page_fn page,
                        uint64_t (*epoch)(void *ctx), void *ctx, bhnet_filter_fn filter,
                        uint8_t *scratch, char *why, size_t whylen)
{
    struct iovec iov[1 + BHNET_TX_FATAL_MAX];
    const uint8_t *pg[BHNET_TX_FATAL_MAX];
    uint8_t *f = scratch + hdrsz;
    size_t head, at = 0;
    unsigned int niov = 1;
    uint64_t e0;

    if (epoch == NULL || hdrsz < sizeof(struct virtio_net_hdr) || pkt->kind != BHNET_TX_PACKET ||
        pkt->len > BHNET_FRAME_MAX || pkt->nfrags > BHNET_TX_FATAL_MAX)
        return bhnet_tx_to_fd_filtered(fd, hdrsz, pkt, page, ctx, filter, scratch, why, whylen);
    e0 = epoch(ctx);
    for (unsigned int i = 0; i < pkt->nfrags; i++) {
        if ((pg[i] = page(ctx, pkt->frag[i].gref, false)) == NULL) {
            snprintf(why, whylen, "TX slot %u: grant %u does not map", i, pkt->frag[i].gref);
            return 1;
        }
    }
    /* A page mapped for a later slot took the place of an earlier one's: one at a time, then. */
    if (epoch(ctx) != e0)
        return bhnet_tx_to_fd_filtered(fd, hdrsz, pkt, page, ctx, filter, scratch, why, whylen);
    /* The head, copied: the only bytes looked at, and the ones written. */
    head = pkt->len < BHNET_TX_COPY_LEN ? pkt->len : BHNET_TX_COPY_LEN;
    for (unsigned int i = 0; i < pkt->nfrags; i++) {
        const struct bhnet_frag *fr = &pkt->frag[i];
        size_t c = at < head ? (head - at < fr->len ? head - at : fr->len) : 0;

        memcpy(f + at, pg[i] + fr->off, c);
        if (c < fr->len)
            iov[niov++] = (struct iovec){(void *)(uintptr_t)(pg[i] + fr->off + c), fr->len - c};
        at += fr->len;
    }
    return tx_send(fd, hdrsz, pkt, ctx, filter, scratch, head, iov, niov, why, whylen);
}

int bhnet_rx_meta(const uint8_t *hdr, size_t hdrsz, size_t flen, struct bhnet_rxmeta *m,
                  char *why, size_t whylen)
{
    struct virtio_net_hdr h;

    memset(m, 0, sizeof(*m));
    if (flen < BHNET_ETH_HLEN || hdrsz < sizeof(h)) {
        snprintf(why, whylen, "frame of %zu bytes from the TAP: a runt", hdrsz + flen);
        return 2;
    }
    memcpy(&h, hdr, sizeof(h));
    if (flen > BHNET_RX_MAX_LEN) {
        snprintf(why, whylen, "frame of %zu bytes from the TAP: more than a frontend takes (%u)",
                 flen, BHNET_RX_MAX_LEN);
        return 2;
    }
    m->len = (uint32_t)flen;
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
        m->flags = NETRXF_csum_blank | NETRXF_data_validated;
    else if (h.flags & VIRTIO_NET_HDR_F_DATA_VALID)
        m->flags = NETRXF_data_validated;
    switch (h.gso_type) {
    case VIRTIO_NET_HDR_GSO_NONE:
        return 1;
    case VIRTIO_NET_HDR_GSO_TCPV4:
    case VIRTIO_NET_HDR_GSO_TCPV6:
        m->gso_type = h.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 ? XEN_NETIF_GSO_TYPE_TCPV4
                                                             : XEN_NETIF_GSO_TYPE_TCPV6;
        m->gso_size = le16toh(h.gso_size);
        if (m->gso_size == 0) {
            snprintf(why, whylen, "GSO frame from the TAP with a segment size of 0");
            return 2;
        }
        return 1;
    default:
        /* UDP fragmentation offload and ECN have no netif GSO type. */
        snprintf(why, whylen, "GSO type 0x%x from the TAP has no netif equivalent: turn the TAP's offload off",
                 h.gso_type);
        return 2;
    }
}

int bhnet_rx_from_fd(int fd, size_t hdrsz, uint8_t *buf, struct bhnet_rxmeta *m,
                     const uint8_t **frame, char *why, size_t whylen)
{
    ssize_t r;

    do
        r = read(fd, buf, hdrsz + BHNET_FRAME_MAX);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    *frame = buf + hdrsz;
    if ((size_t)r < hdrsz) {
        memset(m, 0, sizeof(*m));
        snprintf(why, whylen, "frame of %zd bytes from the TAP: a runt", r);
        return 2;
    }
    return bhnet_rx_meta(buf, hdrsz, (size_t)r - hdrsz, m, why, whylen);
}

int bhnet_rx_deliver_placed(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                            const struct netif_rx_request *reqs, unsigned int n,
                            bhnet_page_fn page, uint64_t (*epoch)(void *ctx), void *ctx,
                            struct netif_rx_response *rsp, unsigned int *used)
{
    struct bhnet_rxcopy copy[BHNET_RX_MAX_REQS];
    unsigned int ncopy;
    int s;

    *used = 0;
    if (epoch == NULL ||
        (m->gso_type != XEN_NETIF_GSO_TYPE_NONE &&
         !((m->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
           (m->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6)))) {
        errno = EINVAL;
        return -1;
    }
    if ((s = bhnet_rx_build(o, m, reqs, n, rsp, copy, &ncopy)) < 0)
        return -1;
    for (unsigned int i = 0; i < ncopy; i++) {
        unsigned int from = BHNET_RX_PLACE(copy[i].pkt_off / BHNET_PAGE);
        uint8_t *dst = NULL, *src = NULL;

        if (from >= n || copy[i].pkt_off % BHNET_PAGE != 0) {
            errno = EINVAL; /* not a layout bhnet_rx_build makes */
            return -1;
        }
        if (reqs[from].gref == copy[i].gref)
            continue; /* in place */
        /* Two mappings at once: a second that evicts the first maps it again (the table has room then). */
        for (int tries = 0; tries < 2; tries++) {
            uint64_t e = epoch(ctx);

            dst = page(ctx, copy[i].gref, true);
            src = dst != NULL ? page(ctx, reqs[from].gref, true) : NULL;
            if (epoch(ctx) == e || src == NULL)
                break;
            dst = src = NULL;
        }
        if (dst == NULL || src == NULL) {
            rsp[0] = bhnet_rx_error(&reqs[0], NETIF_RSP_ERROR);
            *used = 1;
            errno = EFAULT;
            return -1;
        }
        memcpy(dst, src, copy[i].len);
    }
    *used = (unsigned int)s;
    return 0;
}

int bhnet_rx_deliver(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                     const uint8_t *frame, const struct netif_rx_request *reqs, unsigned int n,
                     bhnet_page_fn page, void *ctx, struct netif_rx_response *rsp,
                     unsigned int *used)
{
    struct bhnet_rxcopy copy[BHNET_RX_MAX_REQS];
    unsigned int ncopy;
    int s;

    *used = 0;
    /* A GSO frame to a frontend that did not ask for its type would arrive
     * as one frame larger than its MTU: the TAP's offloads must match. */
    if (m->gso_type != XEN_NETIF_GSO_TYPE_NONE &&
        !((m->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
          (m->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6))) {
        errno = EINVAL;
        return -1;
    }
    if ((s = bhnet_rx_build(o, m, reqs, n, rsp, copy, &ncopy)) < 0)
        return -1;
    for (unsigned int i = 0; i < ncopy; i++) {
        uint8_t *pg = page(ctx, copy[i].gref, true);
        if (pg == NULL) {
            rsp[0] = bhnet_rx_error(&reqs[0], NETIF_RSP_ERROR);
            *used = 1;
            errno = EFAULT;
            return -1;
        }
        memcpy(pg, frame + copy[i].pkt_off, copy[i].len);
    }
    *used = (unsigned int)s;
    return 0;
}
