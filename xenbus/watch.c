/*
 * watch.c - XenStore watches dispatched from the caller's event loop.
 *
 * libxenstore reads watch events on a thread of its own and signals them
 * through the descriptor xs_fileno returns; we only ever take events with
 * xs_check_watch, from the caller's thread, so every callback runs there.
 * Each watch has a slot in a table and a token naming the slot and its
 * generation: an event that arrives after its watch was removed (xenstored
 * may have queued it already) names a generation no longer current and is
 * dropped, even if the slot was reused meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhxenbus.h"

#define TOKEN_PREFIX "bhxb/"
#define MAX_SLOTS    0x10000u /* ids carry the slot in 16 bits */
#define GEN_MASK     0x7fffu  /* and the generation in 15, so that ids stay positive */

struct watch {
    char *path; /* NULL: the slot is free */
    bhxb_watch_fn *fn;
    void *arg;
    unsigned int gen;
    char token[32];
};

struct bhxb_watches {
    struct xs_handle *xs;
    struct watch *w;
    size_t n;
    unsigned long dropped;
};

bhxb_watches *bhxb_watches_new(struct xs_handle *xs)
{
    bhxb_watches *w;

    if (xs == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return NULL;
    w->xs = xs;
    return w;
}

static void slot_clear(bhxb_watches *w, size_t slot)
{
    free(w->w[slot].path);
    w->w[slot].path = NULL;
    w->w[slot].fn = NULL;
    w->w[slot].arg = NULL;
}

void bhxb_watches_free(bhxb_watches *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++)
        if (w->w[i].path) {
            xs_unwatch(w->xs, w->w[i].path, w->w[i].token);
            slot_clear(w, i);
        }
    free(w->w);
    free(w);
}

static bool path_ok(const char *path)
{
    size_t len = path ? strlen(path) : 0;

    return len > 0 && len < XENSTORE_ABS_PATH_MAX && (path[0] == '/' || path[0] == '@');
}

/* A free slot, growing the table if needed; -1 with ENOSPC when full. */
static long slot_get(bhxb_watches *w)
{
    size_t cap, first = w->n;
    struct watch *nw;

    for (size_t i = 0; i < w->n; i++)
        if (w->w[i].path == NULL)
            return (long)i;
    if (w->n == MAX_SLOTS) {
        errno = ENOSPC;
        return -1;
    }
    cap = w->n ? 2 * w->n : 8;
    if ((nw = realloc(w->w, cap * sizeof(*nw))) == NULL)
        return -1;
    memset(nw + w->n, 0, (cap - w->n) * sizeof(*nw));
    w->w = nw;
    w->n = cap;
    return (long)first;
}

int bhxb_watch_add(bhxb_watches *w, const char *path, bhxb_watch_fn *fn, void *arg)
{
    struct watch *e;
    long slot;

    if (w == NULL || fn == NULL || !path_ok(path)) {
        errno = EINVAL;
        return -1;
    }
    if ((slot = slot_get(w)) < 0)
        return -1;
    e = &w->w[slot];
    if ((e->path = strdup(path)) == NULL)
        return -1;
    e->gen = (e->gen + 1) & GEN_MASK;
    e->fn = fn;
    e->arg = arg;
    snprintf(e->token, sizeof(e->token), TOKEN_PREFIX "%ld/%u", slot, e->gen);
    if (!xs_watch(w->xs, path, e->token)) {
        int saved = errno;
        slot_clear(w, (size_t)slot);
        errno = saved;
        return -1;
    }
    return (int)((e->gen << 16) | (unsigned int)slot);
}

int bhxb_watch_remove(bhxb_watches *w, int id)
{
    size_t slot = (unsigned int)id & 0xffffu;
    unsigned int gen = ((unsigned int)id >> 16) & GEN_MASK;
    int rc = 0;

    if (w == NULL || id < 0 || slot >= w->n || w->w[slot].path == NULL || w->w[slot].gen != gen) {
        errno = EINVAL;
        return -1;
    }
    /* ENOENT: xenstored forgot it already (its domain's reset); it is gone either way. */
    if (!xs_unwatch(w->xs, w->w[slot].path, w->w[slot].token) && errno != ENOENT)
        rc = -1;
    slot_clear(w, slot);
    return rc;
}

int bhxb_watches_fd(bhxb_watches *w)
{
    if (w == NULL) {
        errno = EINVAL;
        return -1;
    }
    return xs_fileno(w->xs);
}

/* The slot a token names if it is current, else -1. */
static long token_slot(const bhxb_watches *w, const char *token)
{
    const char *p, *slash;
    uint64_t slot, gen;

    if (strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return -1;
    p = token + strlen(TOKEN_PREFIX);
    if ((slash = strchr(p, '/')) == NULL ||
        bhxb_parse_u64(p, (size_t)(slash - p), 0, MAX_SLOTS - 1, &slot) != 0 ||
        bhxb_parse_u64(slash + 1, strlen(slash + 1), 0, GEN_MASK, &gen) != 0)
        return -1;
    if (slot >= w->n || w->w[slot].path == NULL || w->w[slot].gen != gen)
        return -1;
    return (long)slot;
}

/* Whether path is the watched path or below it. */
static bool under(const char *watched, const char *path)
{
    size_t len = strlen(watched);

    if (strncmp(watched, path, len) != 0)
        return false;
    return path[len] == '\0' || path[len] == '/' || (len == 1 && watched[0] == '/');
}

static void dispatch_one(bhxb_watches *w, char **ev, int *ran)
{
    long slot = token_slot(w, ev[XS_WATCH_TOKEN]);
    bhxb_watch_fn *fn;
    void *arg;

    if (slot < 0 || !under(w->w[slot].path, ev[XS_WATCH_PATH])) {
        w->dropped++;
        return;
    }
    /* The callback may add or remove watches: take what it needs first. */
    fn = w->w[slot].fn;
    arg = w->w[slot].arg;
    fn(arg, ev[XS_WATCH_PATH]);
    (*ran)++;
}

int bhxb_watches_dispatch(bhxb_watches *w)
{
    int ran = 0;
    char **ev;

    if (w == NULL) {
        errno = EINVAL;
        return -1;
    }
    /*
     * Drain until EAGAIN: xs_check_watch may leave the descriptor unreadable
     * while events remain, so stopping early could lose a wake-up.
     */
    while ((ev = xs_check_watch(w->xs)) != NULL) {
        dispatch_one(w, ev, &ran);
        free(ev);
    }
    if (errno != EAGAIN)
        return -1;
    return ran;
}

unsigned long bhxb_watches_dropped(const bhxb_watches *w)
{
    return w ? w->dropped : 0;
}
