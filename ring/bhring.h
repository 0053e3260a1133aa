/*
 * bhring.h - hardened shared rings over Xen's <xen/io/ring.h> ABI.
 *
 * A ring is one to sixteen contiguous pages (ring-page-order 0..4) laid out
 * exactly as Xen's DEFINE_RING_TYPES lays them out: a 64-byte header holding
 * req_prod, req_event, rsp_prod and rsp_event, then a power-of-two array of
 * entries, each the size of the union of the request and the response.  The
 * blkif, netif TX/RX and netif control rings from Xen's public headers are
 * described by the ring types below; any other DEFINE_RING_TYPES ring can be
 * described with bhring_type_custom().
 *
 * The shared pages are hostile.  Everything the peer can write is read once
 * into private memory before it is looked at:
 *   - the geometry (order, number of entries) is given at attach time and
 *     never read from the shared page;
 *   - a producer index is read once per batch and checked against what the
 *     peer may legitimately have produced (RING_REQUEST_PROD_OVERFLOW and the
 *     stricter "never behind what we consumed" check); a lie breaks the ring;
 *   - each request or response is copied once into the caller's buffer
 *     (RING_COPY_REQUEST) and only the copy is validated, by the caller.
 * A broken ring stays broken: every later call fails with EPROTO, and
 * bhring_error() says why in one line.  Breaking a ring never ends the
 * process: the device that owns it is torn down by its owner.
 *
 * None of these calls blocks, allocates after attach, or logs.  They are not
 * thread-safe: one thread owns each end of a ring.  Notification itself (an
 * event channel) is the caller's: the push and final-check calls only say
 * whether one is needed, following Xen's notification hold-off protocol.
 *
 * Functions return 0 or a positive count on success, and -1 with errno set
 * on failure, unless their comment says otherwise.
 */
#ifndef BULKHEAD_BHRING_H
#define BULKHEAD_BHRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BHRING_PAGE_SIZE 4096u
#define BHRING_MAX_ORDER 4u /* 16 pages, Xen's XENBUS_MAX_RING_GRANT_ORDER */
#define BHRING_HDR_SIZE 64u /* offsetof(struct X_sring, ring) for every X */

/* A ring's entry layout; opaque, one constant object per ring kind. */
struct bhring_type;

extern const struct bhring_type bhring_blkif;      /* io/blkif.h */
extern const struct bhring_type bhring_netif_tx;   /* io/netif.h, guest transmit */
extern const struct bhring_type bhring_netif_rx;   /* io/netif.h, guest receive */
extern const struct bhring_type bhring_netif_ctrl; /* io/netif.h, control ring */

/*
 * Looks a ring type up by name ("blkif", "netif_tx", "netif_rx",
 * "netif_ctrl"); NULL if unknown.
 */
const struct bhring_type *bhring_type_find(const char *name);

/* The type's name, request size, response size and entry size in bytes. */
const char *bhring_type_name(const struct bhring_type *t);
size_t bhring_type_req_size(const struct bhring_type *t);
size_t bhring_type_rsp_size(const struct bhring_type *t);
size_t bhring_type_ent_size(const struct bhring_type *t);

/*
 * Number of entries of a ring of 2^order pages of this type: Xen's
 * __CONST_RING_SIZE, the largest power of two that fits.  0 if order > 4.
 */
unsigned int bhring_type_nr_ents(const struct bhring_type *t, unsigned int order);

/* Bytes of shared memory a ring of 2^order pages takes. */
size_t bhring_bytes(unsigned int order);

enum bhring_role {
    BHRING_FRONT = 1, /* produces requests, consumes responses */
    BHRING_BACK = 2,  /* consumes requests, produces responses */
};

/*
 * One end of a ring.  The structure lives in the owner's private memory
 * (a keeper can hold it across worker restarts); its fields are private to
 * the library but its size is part of the ABI so that it can be embedded.
 */
struct bhring {
    const struct bhring_type *type;
    volatile uint8_t *shared;  /* the 2^order shared pages: hostile */
    uint32_t nr_ents;          /* power of two, fixed at attach */
    uint32_t order;
    int role;
    int broken;                /* sticky: nonzero once the peer lied */
    uint32_t prod_pvt;         /* front: req_prod_pvt; back: rsp_prod_pvt */
    uint32_t cons;             /* front: rsp_cons; back: req_cons */
    uint32_t pushed;           /* last producer index we published */
    uint32_t peer_prod;        /* peer's producer index as last validated */
    uint64_t notifies;         /* pushes that asked for a notification */
    uint64_t pushes;           /* pushes that published something */
    char why[160];             /* one-line reason once broken */
};

/*
 * Attaches to a ring of 2^order pages at `shared`, page-aligned, mapped
 * read-write by both ends.  `start` is the index both private counters begin
 * at: 0 for a new ring, or the saved consumer index when a restarted backend
 * re-attaches (see bhring_state below).  With `init`, the front end resets
 * the shared header as SHARED_RING_INIT does (and only a front may init).
 * EINVAL: NULL pointer, unaligned page, order > 4, bad role, init from back.
 */
int bhring_attach(struct bhring *r, const struct bhring_type *t, enum bhring_role role,
                  void *shared, unsigned int order, uint32_t start, bool init);

/* Slots this ring has (a power of two); 0 before attach. */
unsigned int bhring_size(const struct bhring *r);

/* True once the peer has been caught lying; see bhring_error(). */
bool bhring_broken(const struct bhring *r);

/* Why the ring broke, one line; "" while it is healthy. */
const char *bhring_error(const struct bhring *r);

/*
 * Marks the ring broken with a reason (printf-style), as the consumer does
 * when it catches a lie.  A device's own validator calls this when the copy
 * of a request it just took is invalid.  Always returns -1 with EPROTO.
 */
int bhring_break(struct bhring *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- front end: requests out, responses in ---- */

/* Free request slots: RING_FREE_REQUESTS. */
unsigned int bhring_front_free(const struct bhring *r);

/*
 * Copies one request of bhring_type_req_size() bytes into the next slot,
 * privately (the peer sees it after bhring_front_push()).
 * EAGAIN when the ring is full, EPROTO when broken.
 */
int bhring_front_put(struct bhring *r, const void *req);

/*
 * Publishes the requests put so far; returns 1 if the back end asked to be
 * notified (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY), 0 if not, -1 if broken.
 * A batch of any size costs at most one notification.
 */
int bhring_front_push(struct bhring *r);

/*
 * Takes the next response into `rsp` (bhring_type_rsp_size() bytes).
 * Returns 1 with a response, 0 when none is waiting, -1 with EPROTO when the
 * back end produced more responses than requests were published (the ring
 * is then broken).
 */
int bhring_front_get(struct bhring *r, void *rsp);

/*
 * Before sleeping: returns 1 if responses arrived after all, 0 if it is safe
 * to wait for a notification (rsp_event is then armed), -1 if broken.
 * RING_FINAL_CHECK_FOR_RESPONSES.
 */
int bhring_front_final_check(struct bhring *r);

/* ---- back end: requests in, responses out ---- */

/*
 * Takes the next request into `req` (bhring_type_req_size() bytes).
 * Returns 1 with a request, 0 when none is waiting or when every response
 * slot is spoken for (RING_REQUEST_CONS_OVERFLOW: answer some first), -1
 * with EPROTO when the front end's producer index is impossible (more than
 * a ring ahead of the responses, or behind the requests already consumed).
 */
int bhring_back_get(struct bhring *r, void *req);

/*
 * Copies one response of bhring_type_rsp_size() bytes into the next slot.
 * EAGAIN when there is no request left to answer (a back end may only answer
 * what it consumed), EPROTO when broken.
 */
int bhring_back_put(struct bhring *r, const void *rsp);

/* Publishes the responses; 1 if the front asked to be notified. */
int bhring_back_push(struct bhring *r);

/* Before sleeping: 1 if requests arrived after all, 0 to wait, -1 if broken. */
int bhring_back_final_check(struct bhring *r);

/* Requests consumed and not yet answered (back), or published and not yet
 * answered (front). */
unsigned int bhring_in_flight(const struct bhring *r);

/*
 * The private state that a keeper saves so that a replacement process can
 * re-attach where the old one stopped: bhring_attach() with start = cons
 * only when prod_pvt == cons; otherwise restore with bhring_restore().
 */
struct bhring_state {
    uint32_t prod_pvt;
    uint32_t cons;
    uint32_t pushed;
    uint32_t peer_prod;
};
void bhring_save(const struct bhring *r, struct bhring_state *s);
int bhring_restore(struct bhring *r, const struct bhring_state *s);

/* ---- request ids for front ends ---- */

/*
 * A frontend's table of outstanding requests.  An id on the wire indexes the
 * table (low bits) and carries a generation (high bits, as many as the id
 * field has room for), so that a response naming an id that was never
 * issued, was already answered, or belongs to an earlier use of the slot is
 * caught as a lie instead of completing the wrong request.  Never cast an id
 * to a pointer.
 */
struct bhring_ids;

/*
 * A table of `slots` entries (1..65536) for ids `id_bits` wide (8..64; 16 for
 * netif, 64 for blkif).  `slots` must fit in id_bits.  NULL with EINVAL or
 * ENOMEM.
 */
struct bhring_ids *bhring_ids_new(unsigned int slots, unsigned int id_bits);
void bhring_ids_free(struct bhring_ids *ids);

/*
 * Allocates an id for a request and remembers `cookie` for it.  Returns 0
 * and stores the id, or -1 with EAGAIN when every slot is in use.
 */
int bhring_ids_get(struct bhring_ids *ids, void *cookie, uint64_t *id);

/*
 * Completes the request `id` names: returns 0 and gives back its cookie,
 * or -1 with EPROTO when the id is unknown, stale or already completed (the
 * caller then breaks its ring: the peer lied).
 */
int bhring_ids_put(struct bhring_ids *ids, uint64_t id, void **cookie);

/* The cookie of an outstanding id without completing it; NULL if not outstanding. */
void *bhring_ids_peek(const struct bhring_ids *ids, uint64_t id);

/* Ids currently outstanding. */
unsigned int bhring_ids_busy(const struct bhring_ids *ids);

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_BHRING_H */
