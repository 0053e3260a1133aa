/*
 * xsfake.c - an in-process XenStore for tests: the xs_* calls the XenBus
 * library and its tests make, over a table of nodes.  See xsfake.h.
 *
 * Small on purpose: a linear table, a full copy per transaction.  Tests hold
 * a few hundred nodes at most.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xsfake.h"

#define MAX_PERMS 8
#define MAX_TXNS  16

struct node {
    char *path;
    char *val;
    unsigned int len;
    struct xs_permissions perms[MAX_PERMS];
    unsigned int nperms;
};

struct tree {
    struct node *v;
    size_t n, cap;
};

struct change {
    char *path;
    bool removed;
};

struct txn {
    bool used;
    struct tree tree;
    unsigned long start_gen;
    struct change *ch;
    size_t nch;
};

struct event {
    char *path, *token;
};

struct xs_handle {
    unsigned int domid;
    int pipe[2];
    struct event *q;
    size_t qn, qcap;
};

struct watchrec {
    struct xs_handle *h;
    char *path, *token;
};

static struct tree store;
static unsigned long gen, nwrites;
static struct txn txns[MAX_TXNS];
static struct watchrec *watches;
static size_t nwatches;
static int fail_commits;
static char fail_name[32];
static int fail_skip, fail_err;
static char race_op[32], *race_path, *race_val;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    return strcpy(xmalloc(strlen(s) + 1), s);
}

/* ---- knobs ---- */

void xsfake_set_domid(struct xs_handle *h, unsigned int domid)
{
    h->domid = domid;
}

void xsfake_fail_commits(int n)
{
    fail_commits = n;
}

void xsfake_fail_op(const char *op, int skip, int err)
{
    snprintf(fail_name, sizeof(fail_name), "%s", op);
    fail_skip = skip;
    fail_err = err;
}

unsigned long xsfake_writes(void)
{
    return nwrites;
}

void xsfake_race_write(const char *op, const char *path, const char *value)
{
    snprintf(race_op, sizeof(race_op), "%s", op);
    free(race_path);
    free(race_val);
    race_path = xstrdup(path);
    race_val = xstrdup(value);
}

static bool should_fail(const char *op)
{
    if (strcmp(fail_name, op) != 0)
        return false;
    if (fail_skip > 0) {
        fail_skip--;
        return false;
    }
    fail_name[0] = '\0';
    errno = fail_err;
    return true;
}

/* ---- the tree ---- */

static long tree_find(const struct tree *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].path, path) == 0)
            return (long)i;
    return -1;
}

static struct node *tree_add(struct tree *t, const char *path, const struct node *like)
{
    struct node *nd;

    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = realloc(t->v, t->cap * sizeof(*t->v));
        if (t->v == NULL)
            abort();
    }
    nd = &t->v[t->n++];
    memset(nd, 0, sizeof(*nd));
    nd->path = xstrdup(path);
    nd->val = xstrdup("");
    memcpy(nd->perms, like->perms, sizeof(nd->perms));
    nd->nperms = like->nperms;
    return nd;
}

static void node_free(struct node *nd)
{
    free(nd->path);
    free(nd->val);
}

static void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        node_free(&t->v[i]);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static void tree_copy(struct tree *dst, const struct tree *src)
{
    dst->n = dst->cap = src->n;
    dst->v = xmalloc(src->n * sizeof(*dst->v));
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i] = src->v[i];
        dst->v[i].path = xstrdup(src->v[i].path);
        dst->v[i].val = xmalloc(src->v[i].len + 1);
        memcpy(dst->v[i].val, src->v[i].val, src->v[i].len + 1);
    }
}

static void store_init(void)
{
    struct node root = {.nperms = 1, .perms = {{0, XS_PERM_NONE}}};

    if (store.n == 0)
        tree_add(&store, "/", &root);
}

/* Whether path is base or below it. */
static bool under(const char *base, const char *path)
{
    size_t len = strlen(base);

    if (strcmp(base, "/") == 0)
        return path[0] == '/';
    return strncmp(base, path, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static bool path_valid(const char *p)
{
    size_t len = p ? strlen(p) : 0;

    if (len == 0 || len >= XENSTORE_ABS_PATH_MAX || p[0] != '/')
        return false;
    if (len > 1 && p[len - 1] == '/')
        return false;
    return strstr(p, "//") == NULL;
}

static bool can(const struct xs_handle *h, const struct node *nd, unsigned int want)
{
    unsigned int have = nd->perms[0].perms;

    if (h->domid == 0 || nd->perms[0].id == h->domid)
        return true;
    for (unsigned int i = 1; i < nd->nperms; i++)
        if (nd->perms[i].id == h->domid)
            have = nd->perms[i].perms;
    return (have & want) == want;
}

/* ---- watches ---- */

static void queue_event(struct xs_handle *h, const char *path, const char *token)
{
    char byte = 0;

    if (h->qn == h->qcap) {
        h->qcap = h->qcap ? 2 * h->qcap : 16;
        h->q = realloc(h->q, h->qcap * sizeof(*h->q));
        if (h->q == NULL)
            abort();
    }
    h->q[h->qn].path = xstrdup(path);
    h->q[h->qn].token = xstrdup(token);
    h->qn++;
    if (write(h->pipe[1], &byte, 1) != 1 && errno != EAGAIN)
        abort();
}

/* A change at path fires watches at or above it; a removal also those below. */
static void fire(const char *path, bool removed)
{
    for (size_t i = 0; i < nwatches; i++) {
        struct watchrec *w = &watches[i];
        if (under(w->path, path))
            queue_event(w->h, path, w->token);
        else if (removed && under(path, w->path))
            queue_event(w->h, w->path, w->token);
    }
}

/* ---- operations, on the store or on a transaction's copy ---- */

static struct tree *tree_of(xs_transaction_t t, struct txn **tx)
{
    *tx = NULL;
    store_init();
    if (t == XBT_NULL)
        return &store;
    if (t > MAX_TXNS || !txns[t - 1].used) {
        errno = ENOENT;
        return NULL;
    }
    *tx = &txns[t - 1];
    return &(*tx)->tree;
}

static void changed(struct txn *tx, const char *path, bool removed)
{
    if (tx == NULL) {
        gen++;
        nwrites++;
        fire(path, removed);
        return;
    }
    tx->ch = realloc(tx->ch, (tx->nch + 1) * sizeof(*tx->ch));
    if (tx->ch == NULL)
        abort();
    tx->ch[tx->nch].path = xstrdup(path);
    tx->ch[tx->nch].removed = removed;
    tx->nch++;
}

static void race(const char *op);

/* Looks a node up for an access; NULL with errno set if it may not be made. */
static struct node *lookup(struct xs_handle *h, xs_transaction_t t, const char *path,
                           unsigned int want, struct txn **tx, const char *op)
{
    struct tree *tr;
    long i;

    race(op);
    if (should_fail(op))
        return NULL;
    if (!path_valid(path)) {
        errno = EINVAL;
        return NULL;
    }
    if ((tr = tree_of(t, tx)) == NULL)
        return NULL;
    if ((i = tree_find(tr, path)) < 0) {
        errno = ENOENT;
        return NULL;
    }
    if (!can(h, &tr->v[i], want)) {
        errno = EACCES;
        return NULL;
    }
    return &tr->v[i];
}

/*
 * Creates path and its missing parents, which inherit the permissions of
 * the nearest existing ancestor; an unprivileged creator owns them.
 */
static struct node *create(struct xs_handle *h, struct tree *tr, struct txn *tx, const char *path)
{
    char *anc = xstrdup(path), *slash;
    struct node like;
    long i;

    do {
        slash = strrchr(anc, '/');
        if (slash == anc)
            anc[1] = '\0';
        else
            *slash = '\0';
    } while ((i = tree_find(tr, anc)) < 0);
    free(anc);
    if (!can(h, &tr->v[i], XS_PERM_WRITE)) {
        errno = EACCES;
        return NULL;
    }
    like = tr->v[i];
    if (h->domid != 0)
        like.perms[0].id = h->domid;
    for (const char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char *prefix = strndup(path, (size_t)(p - path));
            if (tree_find(tr, prefix) < 0) {
                tree_add(tr, prefix, &like);
                changed(tx, prefix, false);
            }
            free(prefix);
        }
        if (*p == '\0')
            break;
    }
    return &tr->v[tree_find(tr, path)];
}

static void race(const char *op)
{
    struct xs_handle dom0 = {0};
    struct node *nd;

    if (race_path == NULL || strcmp(race_op, op) != 0)
        return;
    race_op[0] = '\0';
    store_init();
    if ((nd = create(&dom0, &store, NULL, race_path)) != NULL) {
        free(nd->val);
        nd->val = xstrdup(race_val);
        nd->len = (unsigned int)strlen(race_val);
        changed(NULL, race_path, false);
    }
    free(race_path);
    free(race_val);
    race_path = race_val = NULL;
}

static void txn_free(struct txn *tx);

void xsfake_reset(void)
{
    tree_free(&store);
    for (unsigned int i = 0; i < MAX_TXNS; i++)
        if (txns[i].used)
            txn_free(&txns[i]);
    for (size_t i = 0; i < nwatches; i++) {
        free(watches[i].path);
        free(watches[i].token);
    }
    free(watches);
    watches = NULL;
    nwatches = 0;
    gen = nwrites = 0;
    fail_commits = fail_skip = fail_err = 0;
    fail_name[0] = race_op[0] = '\0';
    free(race_path);
    free(race_val);
    race_path = race_val = NULL;
    store_init();
}

/* ---- the xs_* API ---- */

struct xs_handle *xs_open(unsigned long flags)
{
    struct xs_handle *h = calloc(1, sizeof(*h));

    (void)flags;
    if (h == NULL || pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(h);
        return NULL;
    }
    store_init();
    return h;
}

void xs_close(struct xs_handle *h)
{
    size_t j = 0;

    if (h == NULL)
        return;
    for (size_t i = 0; i < nwatches; i++) {
        if (watches[i].h == h) {
            free(watches[i].path);
            free(watches[i].token);
        } else {
            watches[j++] = watches[i];
        }
    }
    nwatches = j;
    for (size_t i = 0; i < h->qn; i++) {
        free(h->q[i].path);
        free(h->q[i].token);
    }
    free(h->q);
    close(h->pipe[0]);
    close(h->pipe[1]);
    free(h);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_READ, &tx, "read");
    char *v;

    if (nd == NULL)
        return NULL;
    v = xmalloc(nd->len + 1);
    memcpy(v, nd->val, nd->len + 1);
    if (len)
        *len = nd->len;
    return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
              unsigned int len)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_WRITE, &tx, "write");

    if (nd == NULL && errno != ENOENT)
        return false;
    if (len > XENSTORE_PAYLOAD_MAX) {
        errno = E2BIG;
        return false;
    }
    if (nd == NULL) {
        struct tree *tr = tree_of(t, &tx);
        /* create() reports the new node's change: one event per write. */
        if (tr == NULL || (nd = create(h, tr, tx, path)) == NULL)
            return false;
    } else {
        changed(tx, path, false);
    }
    free(nd->val);
    nd->val = xmalloc(len + 1);
    memcpy(nd->val, data, len);
    nd->val[len] = '\0';
    nd->len = len;
    return true;
}

bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_WRITE, &tx, "mkdir");

    if (nd != NULL)
        return true;
    struct tree *tr;

    if (errno != ENOENT || (tr = tree_of(t, &tx)) == NULL)
        return false;
    return create(h, tr, tx, path) != NULL;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_WRITE, &tx, "rm");
    struct tree *tr;
    size_t j = 0;

    if (nd == NULL)
        return false;
    if (strcmp(path, "/") == 0) {
        errno = EINVAL;
        return false;
    }
    tr = tree_of(t, &tx);
    for (size_t i = 0; i < tr->n; i++) {
        if (under(path, tr->v[i].path))
            node_free(&tr->v[i]);
        else
            tr->v[j++] = tr->v[i];
    }
    tr->n = j;
    changed(tx, path, true);
    return true;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_READ, &tx, "directory");
    struct tree *tr;
    const char *base = strcmp(path, "/") == 0 ? "" : path;
    size_t plen = strlen(base), n = 0, bytes = 0;
    char **out = NULL, *strs = NULL;

    if (nd == NULL)
        return NULL;
    tr = tree_of(t, &tx);
    for (size_t pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            out = xmalloc((n + 1) * sizeof(char *) + bytes);
            strs = (char *)(out + n + 1);
            n = 0;
        }
        for (size_t i = 0; i < tr->n; i++) {
            const char *p = tr->v[i].path;
            if (strncmp(p, base, plen) != 0 || p[plen] != '/' || p[plen + 1] == '\0' ||
                strchr(p + plen + 1, '/'))
                continue;
            if (pass == 0) {
                bytes += strlen(p + plen + 1) + 1;
            } else {
                out[n] = strcpy(strs, p + plen + 1);
                strs += strlen(strs) + 1;
            }
            n++;
        }
    }
    out[n] = NULL;
    *num = (unsigned int)n;
    return out;
}

struct xs_permissions *xs_get_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
                                          unsigned int *num)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_READ, &tx, "get_permissions");
    struct xs_permissions *p;

    if (nd == NULL)
        return NULL;
    p = xmalloc(nd->nperms * sizeof(*p));
    memcpy(p, nd->perms, nd->nperms * sizeof(*p));
    *num = nd->nperms;
    return p;
}

bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
                        struct xs_permissions *perms, unsigned int num_perms)
{
    struct txn *tx;
    struct node *nd = lookup(h, t, path, XS_PERM_WRITE, &tx, "set_permissions");

    if (nd == NULL)
        return false;
    if (num_perms == 0 || num_perms > MAX_PERMS) {
        errno = num_perms ? E2BIG : EINVAL;
        return false;
    }
    /* Only dom0 gives a node away. */
    if (h->domid != 0 && perms[0].id != nd->perms[0].id) {
        errno = EPERM;
        return false;
    }
    memcpy(nd->perms, perms, num_perms * sizeof(*perms));
    nd->nperms = num_perms;
    changed(tx, path, false);
    return true;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
    race("watch");
    if (should_fail("watch"))
        return false;
    if (path == NULL || token == NULL || (path[0] != '@' && !path_valid(path))) {
        errno = EINVAL;
        return false;
    }
    watches = realloc(watches, (nwatches + 1) * sizeof(*watches));
    if (watches == NULL)
        abort();
    watches[nwatches].h = h;
    watches[nwatches].path = xstrdup(path);
    watches[nwatches].token = xstrdup(token);
    nwatches++;
    queue_event(h, path, token); /* a watch fires once when it is set */
    return true;
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
    if (should_fail("unwatch"))
        return false;
    for (size_t i = 0; i < nwatches; i++) {
        if (watches[i].h == h && strcmp(watches[i].path, path) == 0 &&
            strcmp(watches[i].token, token) == 0) {
            free(watches[i].path);
            free(watches[i].token);
            watches[i] = watches[--nwatches];
            return true;
        }
    }
    errno = ENOENT;
    return false;
}

int xs_fileno(struct xs_handle *h)
{
    return h->pipe[0];
}

char **xs_check_watch(struct xs_handle *h)
{
    size_t lp, lt;
    char **out, byte;

    if (should_fail("check_watch"))
        return NULL;
    if (h->qn == 0) {
        errno = EAGAIN;
        return NULL;
    }
    lp = strlen(h->q[0].path) + 1;
    lt = strlen(h->q[0].token) + 1;
    out = xmalloc(2 * sizeof(char *) + lp + lt);
    out[XS_WATCH_PATH] = memcpy((char *)(out + 2), h->q[0].path, lp);
    out[XS_WATCH_TOKEN] = memcpy((char *)(out + 2) + lp, h->q[0].token, lt);
    free(h->q[0].path);
    free(h->q[0].token);
    memmove(h->q, h->q + 1, (h->qn - 1) * sizeof(*h->q));
    h->qn--;
    if (read(h->pipe[0], &byte, 1) < 0 && errno != EAGAIN)
        abort();
    return out;
}

char **xs_read_watch(struct xs_handle *h, unsigned int *num)
{
    char **ev = xs_check_watch(h);

    if (ev && num)
        *num = 2;
    return ev;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    (void)h;
    race("transaction_start");
    if (should_fail("transaction_start"))
        return XBT_NULL;
    store_init();
    for (unsigned int i = 0; i < MAX_TXNS; i++) {
        if (!txns[i].used) {
            memset(&txns[i], 0, sizeof(txns[i]));
            txns[i].used = true;
            txns[i].start_gen = gen;
            tree_copy(&txns[i].tree, &store);
            return i + 1;
        }
    }
    errno = EBUSY;
    return XBT_NULL;
}

static void txn_free(struct txn *tx)
{
    tree_free(&tx->tree);
    for (size_t i = 0; i < tx->nch; i++)
        free(tx->ch[i].path);
    free(tx->ch);
    memset(tx, 0, sizeof(*tx));
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort_it)
{
    struct txn *tx;

    (void)h;
    race("transaction_end");
    if (tree_of(t, &tx) == NULL || tx == NULL) {
        errno = ENOENT;
        return false;
    }
    if (abort_it) {
        txn_free(tx);
        return true;
    }
    if (fail_commits > 0 || tx->start_gen != gen) {
        if (fail_commits > 0)
            fail_commits--;
        txn_free(tx);
        errno = EAGAIN;
        return false;
    }
    tree_free(&store);
    store = tx->tree;
    memset(&tx->tree, 0, sizeof(tx->tree));
    if (tx->nch)
        gen++;
    for (size_t i = 0; i < tx->nch; i++) {
        nwrites++;
        fire(tx->ch[i].path, tx->ch[i].removed);
    }
    txn_free(tx);
    return true;
}
