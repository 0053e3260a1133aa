/*
 * tx.c - netback's TX consumer: one packet's chain of slots assembled from
 * requests copied out of the ring, and validated before anything acts on
 * it.  Lies are told apart from packets that are merely dropped the way
 * Linux's xen-netback tells them apart, so that a frontend that works with
 * Linux works with us, and one that Linux disconnects loses its vif here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bhnetback.h"

static enum bhnet_verdict lie(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum bhnet_verdict lie(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return BHNET_LIE;
}

static enum bhnet_verdict drop(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum bhnet_verdict drop(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return BHNET_DROP;
}

/* The chain needs reqs[at], which the caller does not have (yet). */
static enum bhnet_verdict need(unsigned int at, bool complete, const char *what, char *why,
                               size_t whylen)
{
    if (!complete)
        return BHNET_MORE;
    return lie(why, whylen, "%s goes on past the last request the frontend produced (slot %u)",
               what, at);
}

static void limits(const struct bhnet_txopts *o, unsigned int *max, unsigned int *fatal)
{
    *max = o->max_slots < XEN_NETIF_NR_SLOTS_MIN ? XEN_NETIF_NR_SLOTS_MIN : o->max_slots;
    *fatal = o->fatal_slots ? o->fatal_slots : BHNET_TX_FATAL_SLOTS;
    if (*max > BHNET_TX_FATAL_MAX)
        *max = BHNET_TX_FATAL_MAX;
    if (*fatal < *max)
        *fatal = *max;
    if (*fatal > BHNET_TX_FATAL_MAX)
        *fatal = BHNET_TX_FATAL_MAX;
}

/* One extra-info slot, already known to be of a type not seen before. */
static enum bhnet_verdict tx_extra(const struct netif_extra_info *ex, const struct bhnet_txopts *o,
                                   struct bhnet_txpkt *pkt, char *why, size_t whylen)
{
    switch (ex->type) {
    case XEN_NETIF_EXTRA_TYPE_GSO:
        if (ex->u.gso.type != XEN_NETIF_GSO_TYPE_TCPV4 && ex->u.gso.type != XEN_NETIF_GSO_TYPE_TCPV6)
            return lie(why, whylen, "GSO extra of unknown GSO type %u", ex->u.gso.type);
        if ((ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 && !o->gso_tcpv4) ||
            (ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV6 && !o->gso_tcpv6))
            return lie(why, whylen, "GSO extra of type %s, but feature-gso-%s was not offered",
                       ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 ? "TCPv4" : "TCPv6",
                       ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 ? "tcpv4" : "tcpv6");
        if (ex->u.gso.size == 0)
            return lie(why, whylen, "GSO extra with a segment size of 0");
        pkt->gso_type = ex->u.gso.type;
        pkt->gso_size = ex->u.gso.size;
        return BHNET_GO;
    case XEN_NETIF_EXTRA_TYPE_MCAST_ADD:
    case XEN_NETIF_EXTRA_TYPE_MCAST_DEL:
        if (!o->mcast)
            return lie(why, whylen, "multicast-control extra, but feature-multicast-control was not negotiated");
        if (pkt->kind != BHNET_TX_PACKET)
            return lie(why, whylen, "multicast add and delete in one request");
        pkt->kind = ex->type == XEN_NETIF_EXTRA_TYPE_MCAST_ADD ? BHNET_TX_MCAST_ADD
                                                              : BHNET_TX_MCAST_DEL;
        memcpy(pkt->mcast, ex->u.mcast.addr, sizeof(pkt->mcast));
        return BHNET_GO;
    case XEN_NETIF_EXTRA_TYPE_HASH:
        /* A hash the frontend computed only saves us computing it: one we
         * cannot use (an unknown type or algorithm) is ignored, as Linux does. */
        if (ex->u.hash.type <= _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP &&
            ex->u.hash.algorithm == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ) {
            pkt->has_hash = true;
            pkt->hash_type = ex->u.hash.type;
            pkt->hash = (uint32_t)ex->u.hash.value[0] | (uint32_t)ex->u.hash.value[1] << 8 |
                        (uint32_t)ex->u.hash.value[2] << 16 | (uint32_t)ex->u.hash.value[3] << 24;
        }
        return BHNET_GO;
    default:
        return lie(why, whylen, "extra-info slot of unknown type %u", ex->type);
    }
}

/* The extras after the first slot; *i is the next slot, moved past them. */
static enum bhnet_verdict tx_extras(const struct netif_tx_request *reqs, unsigned int n,
                                    bool complete, unsigned int *i, const struct bhnet_txopts *o,
                                    struct bhnet_txpkt *pkt, char *why, size_t whylen)
{
    unsigned int seen = 0;
    struct netif_extra_info ex;
    enum bhnet_verdict v;

    do {
        if (*i >= n)
            return need(*i, complete, "the extra-info chain", why, whylen);
        /* The extra overlays the request's first 8 bytes (netif.h). */
        memcpy(&ex, &reqs[*i], sizeof(ex));
        if (ex.type == XEN_NETIF_EXTRA_TYPE_NONE || ex.type >= XEN_NETIF_EXTRA_TYPE_MAX)
            return lie(why, whylen, "extra-info slot of unknown type %u", ex.type);
        if (seen & (1u << ex.type))
            return lie(why, whylen, "extra-info type %u given twice in one packet", ex.type);
        seen |= 1u << ex.type;
        if ((v = tx_extra(&ex, o, pkt, why, whylen)) != BHNET_GO)
            return v;
        pkt->req_id[*i] = reqs[*i].id;
        pkt->req_extra[*i] = true;
        (*i)++;
    } while (ex.flags & XEN_NETIF_EXTRA_FLAG_MORE);
    return BHNET_GO;
}

enum bhnet_verdict bhnet_tx_parse(const struct netif_tx_request *reqs, unsigned int n,
                                  bool complete, const struct bhnet_txopts *o,
                                  struct bhnet_txpkt *pkt, char *why, size_t whylen)
{
    unsigned int max, fatal, i = 1, ndata = 1;
    struct netif_tx_request first, t = {0};
    uint32_t rest = 0, own;
    enum bhnet_verdict v;
    bool more;

    memset(pkt, 0, sizeof(*pkt));
    if (n == 0)
        return BHNET_MORE;
    limits(o, &max, &fatal);
    first = reqs[0];
    pkt->req_id[0] = first.id;
    if ((first.flags & NETTXF_extra_info) &&
        (v = tx_extras(reqs, n, complete, &i, o, pkt, why, whylen)) != BHNET_GO)
        return v;
    for (more = first.flags & NETTXF_more_data; more; more = t.flags & NETTXF_more_data) {
        if (ndata >= fatal)
            return lie(why, whylen, "packet of more than %u slots (XSA-39: the fatal limit)",
                       fatal);
        if (i >= n)
            return need(i, complete, "the packet's chain of slots", why, whylen);
        t = reqs[i];
        if ((uint32_t)t.offset + t.size > BHNET_PAGE)
            return lie(why, whylen, "slot %u: offset %u + size %u crosses its page", ndata,
                       t.offset, t.size);
        if (t.flags & NETTXF_extra_info)
            return lie(why, whylen, "slot %u announces extra info: only a packet's first slot may",
                       ndata);
        pkt->frag[ndata] = (struct bhnet_frag){t.gref, t.offset, t.size};
        pkt->req_id[i] = t.id;
        rest += t.size;
        ndata++;
        i++;
    }
    pkt->nreq = i;
    pkt->nfrags = ndata;
    pkt->len = first.size;
    pkt->flags = first.flags & (NETTXF_csum_blank | NETTXF_data_validated);
    if (pkt->kind != BHNET_TX_PACKET) {
        /* A control request: its slot carries no frame (Linux answers it
         * without looking at the data), so it has no business spanning more. */
        if (ndata > 1 || pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE)
            return lie(why, whylen, "multicast-control request with %u data slots%s", ndata,
                       pkt->gso_type ? " and a GSO extra" : "");
        pkt->nfrags = 0;
        pkt->len = 0;
        return BHNET_GO;
    }
    /* The first slot's own bytes are what the rest leaves of the total
     * (netif.h): a rest larger than the total must not underflow it. */
    if (rest > first.size)
        return drop(why, whylen, "following slots hold %u bytes, more than the packet's %u", rest,
                    first.size);
    own = first.size - rest;
    if ((uint32_t)first.offset + own > BHNET_PAGE)
        return lie(why, whylen, "first slot: offset %u + size %u crosses its page", first.offset,
                   own);
    pkt->frag[0] = (struct bhnet_frag){first.gref, first.offset, (uint16_t)own};
    if (ndata > max)
        return drop(why, whylen, "packet of %u slots: at most %u", ndata, max);
    if (own < BHNET_ETH_HLEN)
        return drop(why, whylen, "first slot holds %u bytes: less than an Ethernet header", own);
    if (pkt->gso_type != XEN_NETIF_GSO_TYPE_NONE && !(first.flags & NETTXF_csum_blank))
        return drop(why, whylen, "GSO packet without NETTXF_csum_blank: segments need their checksums filled");
    return BHNET_GO;
}

enum bhnet_verdict bhnet_tx_take(struct bhring *r, const struct bhnet_txopts *o,
                                 struct bhnet_txq *q, struct bhnet_txpkt *pkt, char *why,
                                 size_t whylen)
{
    enum bhnet_verdict v;
    int got;

    for (;;) {
        if (q->n > 0) {
            v = bhnet_tx_parse(q->req, q->n, false, o, pkt, why, whylen);
            if (v != BHNET_MORE) {
                /* Requests are taken one at a time, so a chain ends at the last. */
                if (v == BHNET_LIE)
                    bhring_break(r, "%s", why);
                q->n = 0;
                return v;
            }
        }
        if (q->n >= BHNET_TX_MAX_REQS) {
            /* Unreachable: the fatal limit ends every chain before it. */
            bhring_break(r, "TX chain of more than %u requests", BHNET_TX_MAX_REQS);
            snprintf(why, whylen, "%s", bhring_error(r));
            return BHNET_LIE;
        }
        got = bhring_back_get(r, &q->req[q->n]);
        if (got < 0) {
            snprintf(why, whylen, "%s", bhring_error(r));
            return BHNET_LIE;
        }
        if (got == 0)
            return BHNET_MORE;
        q->n++;
    }
}

unsigned int bhnet_tx_responses(const struct bhnet_txpkt *pkt, int16_t status,
                                struct netif_tx_response *rsp)
{
    for (unsigned int i = 0; i < pkt->nreq; i++) {
        rsp[i].id = pkt->req_id[i];
        rsp[i].status = pkt->req_extra[i] ? NETIF_RSP_NULL : status;
    }
    return pkt->nreq;
}
