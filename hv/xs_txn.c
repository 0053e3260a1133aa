/*
 * xs_txn.c - transactions, as C xenstored makes them: a transaction keeps
 * its own copy of every node it touches (read or written), together with
 * the node's generation in the store when first touched.  Reads and writes
 * inside it see only those copies; the commit checks that none of the
 * touched nodes changed in the store meanwhile (else EAGAIN: the client
 * retries) and then applies the written ones.  Only conflicting changes
 * fail a commit, not every intervening write.
 *
 * Watches hear about a transaction's changes when it commits, never before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xenstored.h"

struct xs_txn_ent {
    struct xs_hent h;        /* key = path */
    struct xs_node *node;    /* what the transaction sees; NULL: absent */
    uint64_t base_gen;       /* the store's generation when first touched; 0: it was absent */
    bool dirty;              /* written: the commit applies it */
    struct xs_txn_ent *next; /* in the order touched */
    char path[];
};

struct xs_txn_event {
    struct xs_txn_event *next;
    bool recurse;
    uint16_t nperms;
    struct xs_perm *perms;
    char path[];
};

struct xs_txn *xs_txn_new(uint32_t id, const struct xs_who *w)
{
    struct xs_txn *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->id = id;
    t->domid = w->domid;
    t->priv = w->priv;
    t->events_tail = &t->events;
    return t;
}

void xs_txn_free(struct xs_txn *t)
{
    struct xs_txn_ent *e, *en;
    struct xs_txn_event *ev, *evn;

    if (t == NULL)
        return;
    for (e = t->ents; e != NULL; e = en) {
        en = e->next;
        xs_node_free(e->node);
        free(e);
    }
    for (ev = t->events; ev != NULL; ev = evn) {
        evn = ev->next;
        free(ev->perms);
        free(ev);
    }
    xs_hash_fini(&t->seen);
    free(t);
}

void xs_txn_record_change(struct xs_txn *t, const struct xs_change *c)
{
    size_t len = strlen(c->path);
    struct xs_txn_event *ev = calloc(1, sizeof(*ev) + len + 1);

    /*
     * Out of memory, the event is lost; watches may fire spuriously or
     * late by xenstore.txt, but a lost one breaks a waiting client, so
     * this is the one place to say so.
     */
    if (ev == NULL || (ev->perms = malloc(c->nperms * sizeof(*ev->perms))) == NULL) {
        free(ev);
        fprintf(stderr, "bulkhead-xenstored: out of memory: a transaction's watch event is lost\n");
        return;
    }
    memcpy(ev->path, c->path, len + 1);
    memcpy(ev->perms, c->perms, c->nperms * sizeof(*ev->perms));
    ev->nperms = c->nperms;
    ev->recurse = c->recurse;
    *t->events_tail = ev;
    t->events_tail = &ev->next;
}

static struct xs_txn_ent *find(struct xs_txn *t, const char *path)
{
    return (struct xs_txn_ent *)xs_hash_get(&t->seen, path, xs_hash_key(path));
}

/* The transaction's entry for path, made from the store's node on first touch. */
static int touch(struct xs_view *v, const struct xs_who *w, const char *path,
                 struct xs_txn_ent **out)
{
    struct xs_txn *t = v->txn;
    const struct xs_node *n;
    struct xs_txn_ent *e;
    size_t len = strlen(path);

    if ((*out = find(t, path)) != NULL)
        return 0;
    if (!w->priv && t->seen.n >= w->quota[XSQ_TXN_NODES])
        return ENOSPC;
    if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
        return ENOMEM;
    memcpy(e->path, path, len + 1);
    e->h.key = e->path;
    e->h.hash = xs_hash_key(path);
    if ((n = xs_store_get(v->st, path)) != NULL) {
        e->base_gen = n->gen;
        if ((e->node = xs_node_copy(n)) == NULL) {
            free(e);
            return ENOMEM;
        }
    }
    if (xs_hash_put(&t->seen, &e->h) != 0) {
        xs_node_free(e->node);
        free(e);
        return ENOMEM;
    }
    e->next = t->ents;
    t->ents = e;
    *out = e;
    return 0;
}

int xs_view_get(struct xs_view *v, const struct xs_who *w, const char *path,
                const struct xs_node **out)
{
    struct xs_txn_ent *e;
    int rc;

    if (v->txn == NULL) {
        *out = xs_store_get(v->st, path);
        return 0;
    }
    if ((rc = touch(v, w, path, &e)) != 0)
        return rc;
    *out = e->node;
    return 0;
}

static long owned(const struct xs_node *n, uint16_t domid)
{
    return n != NULL && n->perms[0].domid == domid;
}

int xs_view_put(struct xs_view *v, const struct xs_who *w, struct xs_node *n)
{
    struct xs_txn_ent *e;
    int rc;

    if (v->txn == NULL)
        return xs_store_put(v->st, n);
    if ((rc = touch(v, w, n->path, &e)) != 0) {
        xs_node_free(n);
        return rc;
    }
    v->txn->owned_delta += owned(n, v->txn->domid) - owned(e->node, v->txn->domid);
    n->gen = ++v->st->gen; /* DIRECTORY_PART inside the transaction sees it change */
    xs_node_free(e->node);
    e->node = n;
    e->dirty = true;
    return 0;
}

int xs_view_del(struct xs_view *v, const struct xs_who *w, const char *path)
{
    struct xs_txn_ent *e;
    int rc;

    if (v->txn == NULL) {
        xs_store_del(v->st, path);
        return 0;
    }
    if ((rc = touch(v, w, path, &e)) != 0)
        return rc;
    v->txn->owned_delta -= owned(e->node, v->txn->domid);
    xs_node_free(e->node);
    e->node = NULL;
    e->dirty = true;
    return 0;
}

static bool conflicts(const struct xs_txn *t, const struct xs_store *st)
{
    for (const struct xs_txn_ent *e = t->ents; e != NULL; e = e->next) {
        const struct xs_node *n = xs_store_get(st, e->path);
        if ((n ? n->gen : 0) != e->base_gen)
            return true;
    }
    return false;
}

int xs_txn_commit(struct xs_txn *t, struct xs_store *st, const struct xs_who *w,
                  void (*changed)(void *arg, const struct xs_change *c), void *arg)
{
    int rc = 0;

    if (conflicts(t, st))
        return EAGAIN;
    /* Others' commits may have used up the quota since the transaction checked it. */
    if (!w->priv && t->owned_delta > 0 &&
        st->owned[t->domid] + t->owned_delta > (long)w->quota[XSQ_NODES])
        return ENOSPC;
    for (struct xs_txn_ent *e = t->ents; e != NULL; e = e->next) {
        if (!e->dirty)
            continue;
        if (e->node == NULL) {
            xs_store_del(st, e->path);
        } else if (xs_store_put(st, e->node) != 0) {
            rc = ENOMEM; /* the store freed it */
        }
        e->node = NULL;
    }
    for (struct xs_txn_event *ev = t->events; ev != NULL && changed != NULL; ev = ev->next) {
        struct xs_change c = {ev->path, ev->perms, ev->nperms, ev->recurse};
        changed(arg, &c);
    }
    return rc;
}
