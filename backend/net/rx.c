/*
 * rx.c - netback's RX side as pure functions: an RX request checked, and a
 * frame laid over RX requests with the responses that describe it.  With
 * rx-copy (the only mode we serve) the backend copies into the frontend's
 * pages, so a data slot is always a page from offset 0.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bhnetback.h"

enum bhnet_verdict bhnet_rx_check_req(const struct netif_rx_request *req,
                                      const struct bhnet_rxopts *o, char *why, size_t whylen)
{
    if (o->ring_ids != 0 && req->id >= o->ring_ids) {
        snprintf(why, whylen, "RX request id %u names no buffer: the ring has %u slots", req->id,
                 o->ring_ids);
        return BHNET_LIE;
    }
    return BHNET_GO;
}

enum gso_mode { GSO_NONE, GSO_EXTRA, GSO_PREFIX };

/* How the frontend wants this frame's GSO told: as it asked, or not at all. */
static enum gso_mode gso_mode(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m)
{
    bool asked = (m->gso_type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
                 (m->gso_type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6);

    if (!asked)
        return GSO_NONE;
    return o->gso_prefix ? GSO_PREFIX : GSO_EXTRA;
}

unsigned int bhnet_rx_slots(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m)
{
    if (m->len == 0 || m->len > BHNET_RX_MAX_LEN || m->gso_type > XEN_NETIF_GSO_TYPE_TCPV6 ||
        (m->gso_type != XEN_NETIF_GSO_TYPE_NONE && m->gso_size == 0))
        return 0;
    return (m->len + BHNET_PAGE - 1) / BHNET_PAGE + (gso_mode(o, m) == GSO_EXTRA) +
           (m->has_hash ? 1u : 0u) + (gso_mode(o, m) == GSO_PREFIX);
}

/* The extras after the first data slot: the GSO one, then the hash one; returns slots used. */
static unsigned int put_extras(struct netif_rx_response *slot, const struct bhnet_rxmeta *m,
                               bool gso)
{
    struct netif_extra_info ex;
    unsigned int s = 0;

    if (gso) {
        memset(&ex, 0, sizeof(ex));
        ex.type = XEN_NETIF_EXTRA_TYPE_GSO;
        ex.flags = m->has_hash ? XEN_NETIF_EXTRA_FLAG_MORE : 0;
        ex.u.gso.size = m->gso_size;
        ex.u.gso.type = m->gso_type;
        /* An extra overlays the response of the request whose slot it takes. */
        memcpy(&slot[s++], &ex, sizeof(ex));
    }
    if (m->has_hash) {
        memset(&ex, 0, sizeof(ex));
        ex.type = XEN_NETIF_EXTRA_TYPE_HASH;
        ex.u.hash.type = m->hash_type;
        ex.u.hash.algorithm = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
        /* Little-endian, as the frontends read it (Linux's netfront, ours). */
        for (unsigned int i = 0; i < 4; i++)
            ex.u.hash.value[i] = (uint8_t)(m->hash >> (8 * i));
        memcpy(&slot[s++], &ex, sizeof(ex));
    }
    return s;
}

int bhnet_rx_build(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                   const struct netif_rx_request *reqs, unsigned int n,
                   struct netif_rx_response *rsp, struct bhnet_rxcopy *copy,
                   unsigned int *ncopy)
{
    unsigned int need = bhnet_rx_slots(o, m), s = 0, d = 0;
    enum gso_mode mode = gso_mode(o, m);
    uint32_t off = 0;

    *ncopy = 0;
    if (need == 0) {
        errno = EINVAL;
        return -1;
    }
    if (n < need) {
        errno = EAGAIN;
        return -1;
    }
    if (mode == GSO_PREFIX) {
        /* The deprecated prefix: a slot of its own, the MSS in its offset. */
        rsp[s] = (struct netif_rx_response){reqs[s].id, m->gso_size,
                                            NETRXF_gso_prefix | NETRXF_more_data, 0};
        s++;
    }
    while (off < m->len) {
        uint32_t len = m->len - off > BHNET_PAGE ? BHNET_PAGE : m->len - off;
        uint16_t flags = 0;

        if (d == 0)
            flags = m->flags & (NETRXF_csum_blank | NETRXF_data_validated);
        if (off + len < m->len)
            flags |= NETRXF_more_data;
        if (d == 0 && (mode == GSO_EXTRA || m->has_hash))
            flags |= NETRXF_extra_info;
        rsp[s] = (struct netif_rx_response){reqs[s].id, 0, flags, (int16_t)len};
        copy[d] = (struct bhnet_rxcopy){reqs[s].gref, off, (uint16_t)len};
        s++;
        d++;
        off += len;
        if (d == 1)
            s += put_extras(&rsp[s], m, mode == GSO_EXTRA);
    }
    *ncopy = d;
    return (int)s;
}

struct netif_rx_response bhnet_rx_error(const struct netif_rx_request *req, int16_t status)
{
    return (struct netif_rx_response){req->id, 0, 0, status};
}
