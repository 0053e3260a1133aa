/*
 * types.c - the ring kinds of Xen's public io headers, described by size.
 *
 * Sizes come from Xen's own DEFINE_RING_TYPES structures, so that a change
 * in the headers is a change here; the layout assertions below make the
 * build fail rather than a ring silently disagree with a Xen peer.
 */
#include <string.h>

#include "private.h"

#define BH_LAYOUT(tag)                                                                             \
    _Static_assert(offsetof(struct tag##_sring, req_prod) == BHRING_OFF_REQ_PROD, #tag);           \
    _Static_assert(offsetof(struct tag##_sring, req_event) == BHRING_OFF_REQ_EVENT, #tag);         \
    _Static_assert(offsetof(struct tag##_sring, rsp_prod) == BHRING_OFF_RSP_PROD, #tag);           \
    _Static_assert(offsetof(struct tag##_sring, rsp_event) == BHRING_OFF_RSP_EVENT, #tag);         \
    _Static_assert(offsetof(struct tag##_sring, ring) == BHRING_HDR_SIZE, #tag)

BH_LAYOUT(blkif);
BH_LAYOUT(netif_tx);
BH_LAYOUT(netif_rx);
BH_LAYOUT(xen_netif_ctrl);

#define BH_TYPE(var, tag, str)                                                                     \
    const struct bhring_type var = {                                                               \
        .name = str,                                                                               \
        .req_size = sizeof(((struct tag##_sring *)0)->ring[0].req),                                \
        .rsp_size = sizeof(((struct tag##_sring *)0)->ring[0].rsp),                                \
        .ent_size = sizeof(((struct tag##_sring *)0)->ring[0]),                                    \
    }

BH_TYPE(bhring_blkif, blkif, "blkif");
BH_TYPE(bhring_netif_tx, netif_tx, "netif_tx");
BH_TYPE(bhring_netif_rx, netif_rx, "netif_rx");
BH_TYPE(bhring_netif_ctrl, xen_netif_ctrl, "netif_ctrl");

static const struct bhring_type *const all_types[] = {
    &bhring_blkif,
    &bhring_netif_tx,
    &bhring_netif_rx,
    &bhring_netif_ctrl,
};

const struct bhring_type *bhring_type_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++)
        if (strcmp(all_types[i]->name, name) == 0)
            return all_types[i];
    return NULL;
}

const char *bhring_type_name(const struct bhring_type *t)
{
    return t->name;
}

size_t bhring_type_req_size(const struct bhring_type *t)
{
    return t->req_size;
}

size_t bhring_type_rsp_size(const struct bhring_type *t)
{
    return t->rsp_size;
}

size_t bhring_type_ent_size(const struct bhring_type *t)
{
    return t->ent_size;
}

size_t bhring_bytes(unsigned int order)
{
    return order > BHRING_MAX_ORDER ? 0 : (size_t)BHRING_PAGE_SIZE << order;
}

unsigned int bhring_type_nr_ents(const struct bhring_type *t, unsigned int order)
{
    size_t n;
    unsigned int p = 1;

    if (t == NULL || order > BHRING_MAX_ORDER)
        return 0;
    /* __CONST_RING_SIZE: as many entries as fit, rounded down to a power of two. */
    n = (bhring_bytes(order) - BHRING_HDR_SIZE) / t->ent_size;
    while ((size_t)p * 2 <= n)
        p *= 2;
    return n == 0 ? 0 : p;
}
