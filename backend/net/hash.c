/*
 * hash.c - the control ring's requests (io/netif.h's XEN_NETIF_CTRL_TYPE_*
 * hash messages) and the Toeplitz hash that picks a frame's RX queue.
 *
 * What a request may do is learnt from netif.h's comments and Linux's
 * xen-netback (hash.c): a key of at most 40 octets, a mapping table of at
 * most 128 entries, each entry a queue the frontend has.  Where the two
 * differ, netif.h wins (a key longer than we keep is BUFFER_OVERFLOW).
 * Every request is a private copy; a granted page's contents are copied
 * out once before they are checked, so that a frontend that rewrites its
 * page while we read it cannot slip a bad entry past the check.
 */
#include <stdio.h>
#include <string.h>

#include "bhnetback.h"

#define HASH_FLAGS_SUPPORTED                                                                       \
    (XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP |                           \
     XEN_NETIF_CTRL_HASH_TYPE_IPV6 | XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP)

uint32_t bhnet_toeplitz(const uint8_t *key, size_t keylen, const uint8_t *in, size_t len)
{
    uint32_t h = 0, v = 0;
    size_t next = 4; /* the key byte whose bits shift into v next */

    /* v is the 32-bit window of the key that lines up with the input bit. */
    for (size_t i = 0; i < 4; i++)
        v = v << 8 | (i < keylen ? key[i] : 0);
    for (size_t i = 0; i < len; i++, next++) {
        uint8_t kb = next < keylen ? key[next] : 0; /* octets not given are zero (netif.h) */

        for (int b = 7; b >= 0; b--) {
            if (in[i] & (1u << b))
                h ^= v;
            v = v << 1 | ((kb >> b) & 1u);
        }
    }
    return h;
}

bool bhnet_ctrl_gref(const struct xen_netif_ctrl_request *req, uint32_t *gref)
{
    if (req->type != XEN_NETIF_CTRL_TYPE_SET_HASH_KEY &&
        req->type != XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING)
        return false;
    *gref = req->data[0];
    return true;
}

static uint32_t set_key(struct bhnet_hash *h, const struct xen_netif_ctrl_request *req,
                        const uint8_t *page)
{
    uint32_t len = req->data[1];

    if (len > BHNET_HASH_KEY_MAX)
        return XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
    if (page == NULL && len > 0)
        return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    /* A new key replaces the old whole: octets not given are zero. */
    memset(h->key, 0, sizeof(h->key));
    if (len > 0)
        memcpy(h->key, page, len);
    return XEN_NETIF_CTRL_STATUS_SUCCESS;
}

static uint32_t set_mapping(struct bhnet_hash *h, unsigned int nqueues,
                            const struct xen_netif_ctrl_request *req, const uint8_t *page)
{
    uint32_t len = req->data[1], off = req->data[2];
    uint32_t m[BHNET_PAGE / 4];

    if (len > BHNET_PAGE / 4)
        return XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
    /* 64-bit sum: off + len cannot wrap past the table's end. */
    if ((uint64_t)off + len > h->size || (page == NULL && len > 0))
        return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
    if (len == 0)
        return XEN_NETIF_CTRL_STATUS_SUCCESS; /* an empty sub-table sets nothing */
    memcpy(m, page, (size_t)len * 4); /* copied once, then checked: the page is the frontend's */
    for (uint32_t i = 0; i < len; i++)
        if (m[i] >= nqueues)
            return XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER; /* nothing applied */
    memcpy(&h->mapping[off], m, (size_t)len * 4);
    return XEN_NETIF_CTRL_STATUS_SUCCESS;
}

struct xen_netif_ctrl_response bhnet_ctrl_handle(struct bhnet_hash *h, unsigned int nqueues,
                                                 const struct xen_netif_ctrl_request *req,
                                                 const uint8_t *page)
{
    struct xen_netif_ctrl_response rsp = {req->id, req->type,
                                          XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER, 0};

    switch (req->type) {
    case XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS:
        rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        rsp.data = HASH_FLAGS_SUPPORTED;
        break;
    case XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS:
        /* Flags mean something only under an algorithm (netif.h: select one first). */
        if ((req->data[0] & ~(uint32_t)HASH_FLAGS_SUPPORTED) == 0 &&
            h->alg != XEN_NETIF_CTRL_HASH_ALGORITHM_NONE) {
            h->flags = req->data[0];
            rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        }
        break;
    case XEN_NETIF_CTRL_TYPE_SET_HASH_KEY:
        rsp.status = set_key(h, req, page);
        break;
    case XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE:
        rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        rsp.data = BHNET_HASH_MAPPING_MAX;
        break;
    case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE:
        if (req->data[0] <= BHNET_HASH_MAPPING_MAX) {
            /* A new size invalidates the old table: the new one is all queue 0. */
            h->size = req->data[0];
            memset(h->mapping, 0, sizeof(h->mapping));
            rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        }
        break;
    case XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING:
        rsp.status = set_mapping(h, nqueues, req, page);
        break;
    case XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM:
        if (req->data[0] == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE ||
            req->data[0] == XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ) {
            h->alg = req->data[0];
            rsp.status = XEN_NETIF_CTRL_STATUS_SUCCESS;
        }
        break;
    default: /* the static-grant messages among them: we keep our own mappings */
        rsp.status = XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
        break;
    }
    return rsp;
}

/*
 * The Toeplitz input of a frame as the flags allow: source and destination
 * address, then source and destination port for TCP (netif.h's hash types;
 * UDP gets the addresses only, as there is no UDP type).  A fragment
 * other than the first carries no ports, so no fragment is hashed on them.
 * Returns the input's length and *type, 0 when no type applies.
 */
static size_t flow_input(uint32_t flags, const uint8_t *f, size_t len, uint8_t in[36],
                         uint8_t *type)
{
    size_t l3 = BHNET_ETH_HLEN, l4;
    uint16_t et;

    if (len < BHNET_ETH_HLEN)
        return 0;
    et = (uint16_t)(f[12] << 8 | f[13]);
    if (et == 0x8100) { /* one 802.1Q tag */
        if (len < BHNET_ETH_HLEN + 4)
            return 0;
        et = (uint16_t)(f[16] << 8 | f[17]);
        l3 += 4;
    }
    if (et == 0x0800) {
        const uint8_t *ip = f + l3;
        bool frag;

        if (len < l3 + 20 || (ip[0] >> 4) != 4 || (ip[0] & 15) < 5)
            return 0;
        l4 = l3 + (size_t)(ip[0] & 15) * 4;
        frag = ((ip[6] & 0x3f) | ip[7]) != 0; /* MF or an offset */
        memcpy(in, ip + 12, 8);
        if ((flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP) && ip[9] == 6 && !frag && len >= l4 + 4) {
            memcpy(in + 8, f + l4, 4);
            *type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
            return 12;
        }
        if (flags & XEN_NETIF_CTRL_HASH_TYPE_IPV4) {
            *type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4;
            return 8;
        }
        return 0;
    }
    if (et == 0x86dd) {
        const uint8_t *ip = f + l3;

        if (len < l3 + 40 || (ip[0] >> 4) != 6)
            return 0;
        l4 = l3 + 40;
        memcpy(in, ip + 8, 32);
        /* TCP right after the fixed header: extension headers are not walked. */
        if ((flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP) && ip[6] == 6 && len >= l4 + 4) {
            memcpy(in + 32, f + l4, 4);
            *type = _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
            return 36;
        }
        if (flags & XEN_NETIF_CTRL_HASH_TYPE_IPV6) {
            *type = _XEN_NETIF_CTRL_HASH_TYPE_IPV6;
            return 32;
        }
    }
    return 0;
}

unsigned int bhnet_hash_steer(const struct bhnet_hash *h, unsigned int nqueues,
                              const uint8_t *frame, size_t len, struct bhnet_rxmeta *m,
                              unsigned int dflt)
{
    uint8_t in[36], type = 0;
    uint32_t hash = 0;
    unsigned int q;
    size_t n;

    m->has_hash = false;
    if (h->alg != XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ || nqueues == 0)
        return dflt;
    if ((n = flow_input(h->flags, frame, len, in, &type)) > 0) {
        hash = bhnet_toeplitz(h->key, sizeof(h->key), in, n);
        m->has_hash = true;
        m->hash_type = type;
        m->hash = hash;
    }
    /* A frame with no hash type goes where hash 0 does, as Linux's netback sends it. */
    q = h->size == 0 || h->size > BHNET_HASH_MAPPING_MAX ? hash % nqueues
                                                         : h->mapping[hash % h->size];
    return q < nqueues ? q : dflt;
}

int bhnet_ctrl_serve(struct bhring *r, struct bhnet_hash *h, unsigned int nqueues,
                     bhnet_page_fn page, void (*unpage)(void *ctx, void *p), void *ctx,
                     unsigned int *refused, char *why, size_t whylen)
{
    struct xen_netif_ctrl_request req;
    struct xen_netif_ctrl_response rsp;
    unsigned int done = 0;
    uint32_t gref;
    int got;

    *refused = 0;
    /* A ring's worth at a time: a frontend that keeps producing cannot hold us here. */
    while (done < bhring_size(r)) {
        void *p = NULL;

        if ((got = bhring_back_get(r, &req)) == 0 && (got = bhring_back_final_check(r)) == 1)
            got = bhring_back_get(r, &req);
        if (got < 0) {
            snprintf(why, whylen, "%s", bhring_error(r));
            return -1;
        }
        if (got == 0)
            break;
        if (bhnet_ctrl_gref(&req, &gref))
            p = page(ctx, gref, false);
        rsp = bhnet_ctrl_handle(h, nqueues, &req, p);
        if (p != NULL && unpage != NULL)
            unpage(ctx, p);
        if (bhring_back_put(r, &rsp) != 0) { /* it answers the request just taken */
            snprintf(why, whylen, "control response without a request (netback bug)");
            return -1;
        }
        if (rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS)
            (*refused)++;
        done++;
    }
    return (int)done;
}
