/*
 * private.h - what the ring library's files share and nobody else sees.
 */
#ifndef BULKHEAD_RING_PRIVATE_H
#define BULKHEAD_RING_PRIVATE_H

#include "bhring.h"
#include "xenring.h"

struct bhring_type {
    const char *name;
    size_t req_size; /* bytes copied out of or into a slot for a request */
    size_t rsp_size; /* ... for a response */
    size_t ent_size; /* sizeof(union X_sring_entry): the slot stride */
};

/*
 * Offsets of the shared header's fields.  They are the same for every ring
 * type DEFINE_RING_TYPES makes; types.c checks them against Xen's structures
 * at compile time.
 */
#define BHRING_OFF_REQ_PROD 0
#define BHRING_OFF_REQ_EVENT 4
#define BHRING_OFF_RSP_PROD 8
#define BHRING_OFF_RSP_EVENT 12

#endif /* BULKHEAD_RING_PRIVATE_H */
