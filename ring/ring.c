/*
 * ring.c - both ends of a shared ring, with the peer treated as hostile.
 *
 * The peer may write anything, at any time, to the shared pages: indices
 * that run ahead, backwards or flip between two reads, and slot contents
 * that change while we copy them.  Three rules keep us safe:
 *   1. the geometry (nr_ents, order) is ours and never read from the page;
 *   2. the peer's producer index is read once per batch, checked against
 *      what the peer may have produced, and only then used;
 *   3. slots are copied once into the caller's buffer, and every index into
 *      the slot array is masked with nr_ents - 1, so no value the peer
 *      writes can make us touch memory outside the ring.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

/* The peer may change these words at any time: read and write them once. */
static uint32_t idx_load(const struct bhring *r, size_t off)
{
    return __atomic_load_n((const uint32_t *)(r->shared + off), __ATOMIC_RELAXED);
}

static void idx_store(struct bhring *r, size_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(r->shared + off), v, __ATOMIC_RELAXED);
}

static volatile uint8_t *slot(const struct bhring *r, uint32_t idx)
{
    return r->shared + BHRING_HDR_SIZE + (size_t)(idx & (r->nr_ents - 1)) * r->type->ent_size;
}

int bhring_break(struct bhring *r, const char *fmt, ...)
{
    va_list ap;

    if (!r->broken) {
        r->broken = 1;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof(r->why), fmt, ap);
        va_end(ap);
    }
    errno = EPROTO;
    return -1;
}

static int fail_if_broken(const struct bhring *r, int role)
{
    if (r->type == NULL || r->role != role) {
        errno = EINVAL;
        return -1;
    }
    if (r->broken) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int bhring_attach(struct bhring *r, const struct bhring_type *t, enum bhring_role role,
                  void *shared, unsigned int order, uint32_t start, bool init)
{
    if (r == NULL || t == NULL || shared == NULL || order > BHRING_MAX_ORDER ||
        ((uintptr_t)shared & (BHRING_PAGE_SIZE - 1)) != 0 ||
        (role != BHRING_FRONT && role != BHRING_BACK) || (init && role != BHRING_FRONT)) {
        errno = EINVAL;
        return -1;
    }
    memset(r, 0, sizeof(*r));
    r->type = t;
    r->shared = shared;
    r->order = order;
    r->nr_ents = bhring_type_nr_ents(t, order);
    r->role = role;
    r->prod_pvt = r->cons = r->pushed = r->peer_prod = start;
    if (init) {
        /* SHARED_RING_INIT, at the start index of a resumed ring if asked. */
        memset((void *)r->shared, 0, BHRING_HDR_SIZE);
        idx_store(r, BHRING_OFF_REQ_PROD, start);
        idx_store(r, BHRING_OFF_RSP_PROD, start);
        idx_store(r, BHRING_OFF_REQ_EVENT, start + 1);
        idx_store(r, BHRING_OFF_RSP_EVENT, start + 1);
        xen_wmb(); /* the header is reset before the peer is told where the ring is */
    }
    return 0;
}

unsigned int bhring_size(const struct bhring *r)
{
    return r->nr_ents;
}

bool bhring_broken(const struct bhring *r)
{
    return r->broken != 0;
}

const char *bhring_error(const struct bhring *r)
{
    return r->broken ? r->why : "";
}

unsigned int bhring_in_flight(const struct bhring *r)
{
    return r->role == BHRING_BACK ? r->cons - r->prod_pvt : r->prod_pvt - r->cons;
}

/*
 * Publishes our producer index and says whether the peer asked to be told
 * (the hold-off test of RING_PUSH_*_AND_CHECK_NOTIFY).  The old index is our
 * own record of what we published, not the shared word, which the peer could
 * rewrite to make us notify or stay silent.  The peer's event index only
 * decides whether we notify: a lie there costs the liar its wake-ups.
 */
static int push(struct bhring *r, size_t prod_off, size_t event_off)
{
    uint32_t old = r->pushed, new = r->prod_pvt, event;

    if (old == new)
        return 0;
    xen_wmb(); /* the peer sees the slots before the index that covers them */
    idx_store(r, prod_off, new);
    xen_mb(); /* the peer sees the new index before we read its event index */
    event = idx_load(r, event_off);
    r->pushed = new;
    r->pushes++;
    if ((uint32_t)(new - event) < (uint32_t)(new - old)) {
        r->notifies++;
        return 1;
    }
    return 0;
}

/* ---- back end ---- */

/*
 * Reads the front's request producer once and checks it.  It may be at most
 * a ring ahead of the responses we produced (RING_REQUEST_PROD_OVERFLOW), and
 * never behind the requests we already consumed.  Returns the number of
 * requests available, or -1 when the front lied.
 */
static int back_refresh(struct bhring *r)
{
    uint32_t prod, ahead, used;

    if (r->cons != r->peer_prod)
        return (int)(r->peer_prod - r->cons);
    prod = idx_load(r, BHRING_OFF_REQ_PROD);
    xen_rmb(); /* read the slots only after the index that covers them */
    ahead = prod - r->prod_pvt;
    used = r->cons - r->prod_pvt;
    if (ahead > r->nr_ents || ahead < used) {
        if (r->cons - prod <= r->nr_ents)
            return bhring_break(r, "%s ring: request producer went back to %u below requests "
                                   "consumed at %u",
                                r->type->name, prod, r->cons);
        return bhring_break(r, "%s ring: request producer %u is %u ahead of responses at %u on "
                               "a %u-slot ring",
                            r->type->name, prod, ahead, r->prod_pvt, r->nr_ents);
    }
    r->peer_prod = prod;
    return (int)(prod - r->cons);
}

int bhring_back_get(struct bhring *r, void *req)
{
    int n;

    if (fail_if_broken(r, BHRING_BACK) != 0)
        return -1;
    if ((n = back_refresh(r)) <= 0)
        return n;
    /* RING_REQUEST_CONS_OVERFLOW cannot hold here: back_refresh bounded prod. */
    memcpy(req, (const void *)slot(r, r->cons), r->type->req_size);
    r->cons++;
    return 1;
}

int bhring_back_put(struct bhring *r, const void *rsp)
{
    if (fail_if_broken(r, BHRING_BACK) != 0)
        return -1;
    if (r->prod_pvt == r->cons) {
        errno = EAGAIN;
        return -1;
    }
    memcpy((void *)slot(r, r->prod_pvt), rsp, r->type->rsp_size);
    r->prod_pvt++;
    return 0;
}

int bhring_back_push(struct bhring *r)
{
    if (fail_if_broken(r, BHRING_BACK) != 0)
        return -1;
    return push(r, BHRING_OFF_RSP_PROD, BHRING_OFF_RSP_EVENT);
}

int bhring_back_final_check(struct bhring *r)
{
    int n;

    if (fail_if_broken(r, BHRING_BACK) != 0)
        return -1;
    if ((n = back_refresh(r)) != 0)
        return n < 0 ? -1 : 1;
    idx_store(r, BHRING_OFF_REQ_EVENT, r->cons + 1);
    xen_mb(); /* the front sees our event index before we look at its producer again */
    if ((n = back_refresh(r)) != 0)
        return n < 0 ? -1 : 1;
    return 0;
}

/* ---- front end ---- */

unsigned int bhring_front_free(const struct bhring *r)
{
    return r->nr_ents - (r->prod_pvt - r->cons);
}

int bhring_front_put(struct bhring *r, const void *req)
{
    if (fail_if_broken(r, BHRING_FRONT) != 0)
        return -1;
    if (bhring_front_free(r) == 0) {
        errno = EAGAIN;
        return -1;
    }
    memcpy((void *)slot(r, r->prod_pvt), req, r->type->req_size);
    r->prod_pvt++;
    return 0;
}

int bhring_front_push(struct bhring *r)
{
    if (fail_if_broken(r, BHRING_FRONT) != 0)
        return -1;
    return push(r, BHRING_OFF_REQ_PROD, BHRING_OFF_REQ_EVENT);
}

/*
 * Reads the back's response producer once and checks it.  The back may
 * answer only requests we published (a stricter form of
 * RING_RESPONSE_PROD_OVERFLOW), and may never move backwards.
 */
static int front_refresh(struct bhring *r)
{
    uint32_t prod;

    if (r->cons != r->peer_prod)
        return (int)(r->peer_prod - r->cons);
    prod = idx_load(r, BHRING_OFF_RSP_PROD);
    xen_rmb(); /* read the slots only after the index that covers them */
    if ((uint32_t)(prod - r->cons) > (uint32_t)(r->pushed - r->cons))
        return bhring_break(r, "%s ring: response producer %u is outside the %u requests "
                               "published from %u",
                            r->type->name, prod, r->pushed - r->cons, r->cons);
    r->peer_prod = prod;
    return (int)(prod - r->cons);
}

int bhring_front_get(struct bhring *r, void *rsp)
{
    int n;

    if (fail_if_broken(r, BHRING_FRONT) != 0)
        return -1;
    if ((n = front_refresh(r)) <= 0)
        return n;
    memcpy(rsp, (const void *)slot(r, r->cons), r->type->rsp_size);
    r->cons++;
    return 1;
}

int bhring_front_final_check(struct bhring *r)
{
    int n;

    if (fail_if_broken(r, BHRING_FRONT) != 0)
        return -1;
    if ((n = front_refresh(r)) != 0)
        return n < 0 ? -1 : 1;
    idx_store(r, BHRING_OFF_RSP_EVENT, r->cons + 1);
    xen_mb(); /* the back sees our event index before we look at its producer again */
    if ((n = front_refresh(r)) != 0)
        return n < 0 ? -1 : 1;
    return 0;
}

/* ---- keeper state ---- */

void bhring_save(const struct bhring *r, struct bhring_state *s)
{
    s->prod_pvt = r->prod_pvt;
    s->cons = r->cons;
    s->pushed = r->pushed;
    s->peer_prod = r->peer_prod;
}

/*
 * The saved state comes from our own keeper, not from the peer, but a
 * corrupted save must not turn into an out-of-ring walk: check that it
 * describes a ring of this size before taking it.
 */
int bhring_restore(struct bhring *r, const struct bhring_state *s)
{
    uint32_t n = r->nr_ents;
    int ok;

    if (r->type == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (r->role == BHRING_BACK)
        ok = s->cons - s->prod_pvt <= n && s->prod_pvt - s->pushed <= n &&
             s->peer_prod - s->cons <= n - (s->cons - s->prod_pvt);
    else
        ok = s->prod_pvt - s->cons <= n && s->pushed - s->cons <= s->prod_pvt - s->cons &&
             s->peer_prod - s->cons <= s->pushed - s->cons;
    if (!ok) {
        errno = EINVAL;
        return -1;
    }
    r->prod_pvt = s->prod_pvt;
    r->cons = s->cons;
    r->pushed = s->pushed;
    r->peer_prod = s->peer_prod;
    return 0;
}
