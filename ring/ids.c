/*
 * ids.c - a frontend's table of outstanding request ids.
 *
 * An id is (generation << slot_bits) | slot.  The slot indexes our array;
 * the generation, bumped each time a slot is freed, tells a late or replayed
 * response for an earlier use of the slot from one for the current use.
 * Free slots are reused in FIFO order, so that a slot's generations are as
 * far apart in time as the table allows.
 */
#include <errno.h>
#include <stdlib.h>

#include "bhring.h"

struct bhring_ids_ent {
    void *cookie;
    uint64_t gen;
    int busy;
};

struct bhring_ids {
    unsigned int slots;
    unsigned int slot_bits;
    uint64_t slot_mask;
    uint64_t gen_mask; /* generations wrap within the id's spare bits */
    unsigned int busy;
    unsigned int head, tail; /* FIFO of free slots: taken at head, given back at tail */
    uint32_t *free;          /* a circular queue of `slots` entries */
    struct bhring_ids_ent *e;
};

struct bhring_ids *bhring_ids_new(unsigned int slots, unsigned int id_bits)
{
    struct bhring_ids *ids;
    unsigned int bits = 0;

    if (slots == 0 || slots > 65536 || id_bits < 8 || id_bits > 64) {
        errno = EINVAL;
        return NULL;
    }
    while ((1u << bits) < slots)
        bits++;
    if (bits > id_bits) {
        errno = EINVAL;
        return NULL;
    }
    if ((ids = calloc(1, sizeof(*ids))) == NULL)
        return NULL;
    ids->slots = slots;
    ids->slot_bits = bits;
    ids->slot_mask = ((uint64_t)1 << bits) - 1;
    ids->gen_mask = id_bits - bits >= 64 ? UINT64_MAX : ((uint64_t)1 << (id_bits - bits)) - 1;
    ids->free = calloc(slots, sizeof(*ids->free));
    ids->e = calloc(slots, sizeof(*ids->e));
    if (ids->free == NULL || ids->e == NULL) {
        bhring_ids_free(ids);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned int i = 0; i < slots; i++)
        ids->free[i] = i;
    return ids;
}

void bhring_ids_free(struct bhring_ids *ids)
{
    if (ids == NULL)
        return;
    free(ids->free);
    free(ids->e);
    free(ids);
}

static uint64_t make_id(const struct bhring_ids *ids, uint32_t slot)
{
    /* A shift by 64 is undefined: with no slot bits the id is the generation. */
    if (ids->slot_bits == 0)
        return ids->e[slot].gen;
    return (ids->e[slot].gen << ids->slot_bits) | slot;
}

int bhring_ids_get(struct bhring_ids *ids, void *cookie, uint64_t *id)
{
    uint32_t s;

    if (ids->busy == ids->slots) {
        errno = EAGAIN;
        return -1;
    }
    s = ids->free[ids->head];
    ids->head = (ids->head + 1) % ids->slots;
    ids->e[s].busy = 1;
    ids->e[s].cookie = cookie;
    ids->busy++;
    *id = make_id(ids, s);
    return 0;
}

/* The slot an id names if it names a current, outstanding request; -1 if not. */
static int64_t lookup(const struct bhring_ids *ids, uint64_t id)
{
    uint64_t slot = id & ids->slot_mask;
    uint64_t gen = ids->slot_bits == 0 ? id : id >> ids->slot_bits;

    if (slot >= ids->slots || gen > ids->gen_mask)
        return -1;
    if (!ids->e[slot].busy || ids->e[slot].gen != gen)
        return -1;
    return (int64_t)slot;
}

int bhring_ids_put(struct bhring_ids *ids, uint64_t id, void **cookie)
{
    int64_t s = lookup(ids, id);

    if (s < 0) {
        errno = EPROTO;
        return -1;
    }
    if (cookie != NULL)
        *cookie = ids->e[s].cookie;
    ids->e[s].busy = 0;
    ids->e[s].cookie = NULL;
    ids->e[s].gen = (ids->e[s].gen + 1) & ids->gen_mask;
    ids->free[ids->tail] = (uint32_t)s;
    ids->tail = (ids->tail + 1) % ids->slots;
    ids->busy--;
    return 0;
}

void *bhring_ids_peek(const struct bhring_ids *ids, uint64_t id)
{
    int64_t s = lookup(ids, id);

    return s < 0 ? NULL : ids->e[s].cookie;
}

unsigned int bhring_ids_busy(const struct bhring_ids *ids)
{
    return ids->busy;
}
