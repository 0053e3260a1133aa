/*
 * netmap.h - netback's kept mappings of a frontend's data pages (the
 * frontend's bulkhead-persistent-pools), one cache per vif queue.
 *
 * A page is mapped the first time the engine asks for it and kept, so that
 * a frontend that grants its pools once per connection costs one map per
 * page, not one per packet (in the simulation a map is a call to the
 * hypervisor).  At most `max` pages are kept: a frontend that shows more
 * has every mapping dropped and made again as needed, never more memory.
 * A page mapped read-only and later wanted writable is mapped again.
 *
 * A frontend that ends a grant while we keep it mapped cannot take the page
 * back (the platform keeps a mapped page granted until it is unmapped, as
 * Xen's gntalloc does): we go on copying from or into a page it no longer
 * uses, which harms only its own traffic.  Once the cache drops that
 * mapping, the grant no longer maps and the frame is dropped.
 */
#ifndef BULKHEAD_NETMAP_H
#define BULKHEAD_NETMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "bhplat.h"

#define NETMAP_MAX 512u /* pages kept per queue: twice what our netfront grants one */

struct netmap;

/* A cache of gt's mappings of domid's grants, at most max (1..NETMAP_MAX); NULL: ENOMEM/EINVAL. */
struct netmap *netmap_new(bhgnttab_handle *gt, uint32_t domid, unsigned int max);
/* Unmaps every page and frees the cache; NULL is fine. */
void netmap_free(struct netmap *m);

/* The page behind gref, mapped (writable if asked) and kept; NULL when it does not map. */
void *netmap_get(struct netmap *m, uint32_t gref, bool writable);
/* Unmaps every kept page (the frontend may then end its grants). */
void netmap_clear(struct netmap *m);
/* Changes whenever a mapping netmap_get returned before may have been unmapped. */
uint64_t netmap_epoch(const struct netmap *m);
/* Pages mapped now. */
unsigned int netmap_count(const struct netmap *m);

#endif
