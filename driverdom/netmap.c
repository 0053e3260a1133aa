/*
 * netmap.c - netback's kept mappings of a frontend's data pages: an open
 * addressing table of twice the pages kept, so that probes stay short.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "netmap.h"

struct netmap_slot {
    uint32_t gref;
    bool rw;
    void *page; /* NULL: free */
};

struct netmap {
    bhgnttab_handle *gt;
    uint32_t domid;
    unsigned int max, nslots, n;
    uint64_t epoch; /* counts unmappings: a page returned before may be gone */
    struct netmap_slot slot[];
};

struct netmap *netmap_new(bhgnttab_handle *gt, uint32_t domid, unsigned int max)
{
    struct netmap *m;

    if (gt == NULL || max == 0 || max > NETMAP_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if ((m = calloc(1, sizeof(*m) + 2 * max * sizeof(m->slot[0]))) == NULL)
        return NULL;
    m->gt = gt;
    m->domid = domid;
    m->max = max;
    m->nslots = 2 * max;
    return m;
}

void netmap_clear(struct netmap *m)
{
    for (unsigned int i = 0; m != NULL && i < m->nslots; i++)
        if (m->slot[i].page != NULL) {
            bhgnttab_unmap(m->gt, m->slot[i].page, 1);
            m->slot[i].page = NULL;
        }
    if (m != NULL) {
        m->n = 0;
        m->epoch++;
    }
}

uint64_t netmap_epoch(const struct netmap *m)
{
    return m->epoch;
}

void netmap_free(struct netmap *m)
{
    netmap_clear(m);
    free(m);
}

unsigned int netmap_count(const struct netmap *m)
{
    return m->n;
}

/*
 * Deleting from an open-addressing table would break the probe chains of
 * the entries after it, so the one entry ever removed alone - a read-only
 * mapping wanted writable - is replaced in place instead.
 */
void *netmap_get(struct netmap *m, uint32_t gref, bool writable)
{
    unsigned int i = (gref * 2654435761u) % m->nslots;
    struct netmap_slot *s;

    while (m->slot[i].page != NULL && m->slot[i].gref != gref)
        i = (i + 1) % m->nslots;
    s = &m->slot[i];
    if (s->page != NULL && (s->rw || !writable))
        return s->page;
    if (s->page != NULL) {
        void *p = bhgnttab_map_grant_ref(m->gt, m->domid, gref, PROT_READ | PROT_WRITE);

        if (p == NULL)
            return NULL; /* the read-only mapping stays for reads */
        bhgnttab_unmap(m->gt, s->page, 1);
        m->epoch++;
        s->page = p;
        s->rw = true;
        return p;
    }
    if (m->n >= m->max) {
        netmap_clear(m);
        return netmap_get(m, gref, writable);
    }
    s->page = bhgnttab_map_grant_ref(m->gt, m->domid, gref,
                                     writable ? PROT_READ | PROT_WRITE : PROT_READ);
    if (s->page == NULL)
        return NULL;
    s->gref = gref;
    s->rw = writable;
    m->n++;
    return s->page;
}
