/*
 * rsp.c - netfront's response validators.  A backend that is not trusted
 * can answer anything in any slot; each field is checked before the frame
 * is built from the frontend's own pages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bhnetfront.h"

#define PAGE 4096u
#define ETH_HLEN 14u

static enum bhnetf_verdict say(enum bhnetf_verdict v, char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum bhnetf_verdict say(enum bhnetf_verdict v, char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return v;
}

enum bhnetf_verdict bhnetf_tx_rsp(const struct netif_tx_response *rsp, struct bhring_ids *ids,
                                  void **cookie, int16_t *status, char *why, size_t whylen)
{
    struct netif_tx_response r = *rsp;

    *cookie = NULL;
    *status = r.status;
    if (r.status == NETIF_RSP_NULL)
        return BHNETF_SKIP;
    if (r.status != NETIF_RSP_OKAY && r.status != NETIF_RSP_ERROR &&
        r.status != NETIF_RSP_DROPPED)
        return say(BHNETF_LIE, why, whylen, "TX response with status %d: not a NETIF_RSP_*",
                   r.status);
    if (bhring_ids_put(ids, r.id, cookie) != 0)
        return say(BHNETF_LIE, why, whylen, "TX response for id %u, which is not in flight",
                   r.id);
    return BHNETF_OK;
}

static enum bhnetf_verdict rx_extra(const struct netif_extra_info *ex,
                                    const struct bhnetf_rxopts *o, struct bhnetf_rxpkt *pkt,
                                    char *why, size_t whylen)
{
    switch (ex->type) {
    case XEN_NETIF_EXTRA_TYPE_GSO:
        if (!((ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV4 && o->gso_tcpv4) ||
              (ex->u.gso.type == XEN_NETIF_GSO_TYPE_TCPV6 && o->gso_tcpv6)))
            return say(BHNETF_LIE, why, whylen, "RX GSO extra of type %u, which was not asked for",
                       ex->u.gso.type);
        if (ex->u.gso.size == 0)
            return say(BHNETF_LIE, why, whylen, "RX GSO extra with a segment size of 0");
        pkt->gso_type = ex->u.gso.type;
        pkt->gso_size = ex->u.gso.size;
        return BHNETF_OK;
    case XEN_NETIF_EXTRA_TYPE_HASH:
        if (!o->hash)
            return say(BHNETF_LIE, why, whylen, "RX hash extra, but hashing is not enabled");
        pkt->has_hash = true;
        pkt->hash_type = ex->u.hash.type;
        pkt->hash_alg = ex->u.hash.algorithm;
        pkt->hash = (uint32_t)ex->u.hash.value[0] | (uint32_t)ex->u.hash.value[1] << 8 |
                    (uint32_t)ex->u.hash.value[2] << 16 | (uint32_t)ex->u.hash.value[3] << 24;
        return BHNETF_OK;
    default:
        return say(BHNETF_LIE, why, whylen, "RX extra-info slot of type %u: not one a backend sends",
                   ex->type);
    }
}

static enum bhnetf_verdict need(unsigned int at, bool complete, char *why, size_t whylen)
{
    if (!complete)
        return BHNETF_MORE;
    return say(BHNETF_LIE, why, whylen,
               "RX chain goes on past the last response the backend produced (slot %u)", at);
}

/* A data slot: its id, its status and its place in the page. */
static enum bhnetf_verdict rx_data(const struct netif_rx_response *r, uint16_t id, unsigned int at,
                                   bool *failed, char *why, size_t whylen)
{
    if (r->id != id)
        return say(BHNETF_LIE, why, whylen, "RX response in slot %u names id %u; the request there was %u",
                   at, r->id, id);
    if (r->flags & NETRXF_gso_prefix)
        return say(BHNETF_LIE, why, whylen, "RX response with a GSO prefix, which was not asked for");
    if (r->status < 0) {
        if (r->status != NETIF_RSP_ERROR && r->status != NETIF_RSP_DROPPED)
            return say(BHNETF_LIE, why, whylen, "RX response with status %d: not a NETIF_RSP_*",
                       r->status);
        *failed = true;
        return BHNETF_OK;
    }
    if ((uint32_t)r->offset + (uint32_t)r->status > PAGE)
        return say(BHNETF_LIE, why, whylen, "RX response: offset %u + size %d crosses the page",
                   r->offset, r->status);
    return BHNETF_OK;
}

enum bhnetf_verdict bhnetf_rx_parse(const struct netif_rx_response *rsp, const uint16_t *ids,
                                    unsigned int n, bool complete, const struct bhnetf_rxopts *o,
                                    struct bhnetf_rxpkt *pkt, char *why, size_t whylen)
{
    unsigned int max = o->max_slots ? o->max_slots : XEN_NETIF_NR_SLOTS_MIN, i = 0, seen = 0;
    struct netif_rx_response r;
    struct netif_extra_info ex;
    enum bhnetf_verdict v;
    bool failed = false, more = true;

    memset(pkt, 0, sizeof(*pkt));
    memset(&ex, 0, sizeof(ex));
    if (max > BHNETF_RX_MAX_SLOTS)
        max = BHNETF_RX_MAX_SLOTS;
    if (n == 0)
        return BHNETF_MORE;
    while (more) {
        if (pkt->nfrags >= max)
            return say(BHNETF_LIE, why, whylen, "RX frame of more than %u slots", max);
        if (i >= n)
            return need(i, complete, why, whylen);
        r = rsp[i];
        if ((v = rx_data(&r, ids[i], i, &failed, why, whylen)) != BHNETF_OK)
            return v;
        if (pkt->nfrags > 0 && (r.flags & NETRXF_extra_info))
            return say(BHNETF_LIE, why, whylen, "RX slot %u announces extra info: only a frame's first may", i);
        pkt->frag[pkt->nfrags++] = (struct bhnetf_rxfrag){i, r.offset,
                                                          r.status > 0 ? (uint16_t)r.status : 0};
        pkt->len += r.status > 0 ? (uint32_t)r.status : 0;
        more = r.flags & NETRXF_more_data;
        i++;
        if (pkt->nfrags == 1) {
            pkt->flags = r.flags & (NETRXF_csum_blank | NETRXF_data_validated);
            for (bool xmore = r.flags & NETRXF_extra_info; xmore;
                 xmore = ex.flags & XEN_NETIF_EXTRA_FLAG_MORE) {
                if (i >= n)
                    return need(i, complete, why, whylen);
                memcpy(&ex, &rsp[i], sizeof(ex));
                if (ex.type == XEN_NETIF_EXTRA_TYPE_NONE || ex.type >= XEN_NETIF_EXTRA_TYPE_MAX ||
                    (seen & (1u << ex.type)))
                    return say(BHNETF_LIE, why, whylen, "RX extra-info slot %u: type %u unknown or repeated",
                               i, ex.type);
                seen |= 1u << ex.type;
                if ((v = rx_extra(&ex, o, pkt, why, whylen)) != BHNETF_OK)
                    return v;
                i++;
            }
        }
    }
    pkt->nrsp = i;
    if (failed)
        return say(BHNETF_DROP, why, whylen, "the backend answered the frame with an error");
    if (pkt->len < ETH_HLEN)
        return say(BHNETF_DROP, why, whylen, "RX frame of %u bytes: shorter than an Ethernet header",
                   pkt->len);
    return BHNETF_OK;
}
