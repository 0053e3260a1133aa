/*
 * xs_store.c - the XenStore tree: nodes, values, permissions and the
 * quotas that bound what one domain may make of them.
 *
 * Nodes live in one hash table keyed by their path, as C xenstored keeps
 * them in a database keyed by name; a node's children are a list of leaf
 * names inside it.  Every operation here goes through a view (the store, or
 * a transaction over it: xs_txn.c), so that the same code runs inside and
 * outside transactions.  Permission answers follow C xenstored, including
 * its care not to tell a caller whether a node it may not read exists.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xenstored.h"

const struct xs_quota_def xs_quota_defs[XSQ_COUNT] = {
    [XSQ_NODES] = {"nodes", 1000, "Nodes per domain"},
    [XSQ_WATCHES] = {"watches", 128, "Watches per domain"},
    [XSQ_TRANSACTIONS] = {"transactions", 10, "Transactions per domain"},
    [XSQ_OUTSTANDING] = {"outstanding", 20, "Outstanding requests per domain"},
    [XSQ_TXN_NODES] = {"transaction-nodes", 1024, "Max. number of accessed nodes per transaction"},
    [XSQ_PERMISSIONS] = {"permissions", 5, "Max. number of permissions per node"},
    [XSQ_NODE_SIZE] = {"node-size", 2048, "Max. size of a node"},
    [XSQ_PATH_MAX] = {"path-max", XENSTORE_REL_PATH_MAX, "Max. length of a node path"},
    [XSQ_CONNECTIONS] = {"connections", 16, "Sockets per domain"},
    [XSQ_MEMORY] = {"memory", 2 * 1024 * 1024 + 512 * 1024,
                    "Total Xenstore memory per domain (error level)"},
};

const struct xs_quota_def xs_soft_defs[XSS_COUNT] = {
    [XSS_MEMORY] = {"memory", 2 * 1024 * 1024, "Total Xenstore memory per domain (warning level)"},
};

static const char *const specials[2] = {"@introduceDomain", "@releaseDomain"};

/* ---- paths and permissions ---- */

static bool valid_chars(const char *p)
{
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("-/_@", *p) != NULL))
            return false;
    return true;
}

/* The length of "/local/domain/<id>/" at the start of p, or 0. */
static size_t local_prefix(const char *p)
{
    size_t n = strlen(XS_LOCAL_DOMAIN), d = 0;

    if (strncmp(p, XS_LOCAL_DOMAIN, n) != 0)
        return 0;
    while (p[n + d] >= '0' && p[n + d] <= '9' && d < 6)
        d++;
    return d > 0 && p[n + d] == '/' ? n + d + 1 : 0;
}

int xs_path_canonical(const struct xs_who *w, const char *in, bool allow_special, char *out,
                      size_t outlen)
{
    size_t len;

    if (in[0] == '@') {
        if (!allow_special || strlen(in) > XENSTORE_REL_PATH_MAX || !valid_chars(in))
            return EINVAL;
        snprintf(out, outlen, "%s", in);
        return 0;
    }
    if (in[0] == '/') {
        if (strlen(in) >= outlen)
            return EINVAL;
        strcpy(out, in);
    } else if ((size_t)snprintf(out, outlen, XS_LOCAL_DOMAIN "%u/%s", w->domid, in) >= outlen) {
        return EINVAL;
    }
    len = strlen(out);
    if (len > XENSTORE_ABS_PATH_MAX || (len > 1 && out[len - 1] == '/') ||
        strstr(out, "//") != NULL || !valid_chars(out))
        return EINVAL;
    /* The quota counts what a domain chose: the part below a domain's home. */
    if (!w->priv && len - local_prefix(out) > w->quota[XSQ_PATH_MAX])
        return EINVAL;
    return 0;
}

bool xs_path_is_child(const char *child, const char *parent)
{
    size_t n = strlen(parent);

    if (strcmp(parent, "/") == 0)
        return child[0] == '/';
    return strncmp(child, parent, n) == 0 && (child[n] == '\0' || child[n] == '/');
}

int xs_special_index(const char *path)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(path, specials[i]) == 0)
            return i;
    return -1;
}

int xs_perm_parse(const char *s, struct xs_perm *p)
{
    unsigned long v = 0;
    const char *d = s + 1;

    switch (s[0]) {
    case 'n':
        p->perm = XS_P_NONE;
        break;
    case 'r':
        p->perm = XS_P_READ;
        break;
    case 'w':
        p->perm = XS_P_WRITE;
        break;
    case 'b':
        p->perm = XS_P_READ | XS_P_WRITE;
        break;
    default:
        return EINVAL;
    }
    if (*d == '\0')
        return EINVAL;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || (v = v * 10 + (unsigned long)(*d - '0')) > 0xffff)
            return EINVAL;
    }
    p->domid = (uint16_t)v;
    return 0;
}

/*
 * What w may do with a node of ACL p: the owner, its SET_TARGET
 * controller and dom0 everything; anyone else the first entry naming it
 * (or its target), else the owner entry's default.
 */
unsigned int xs_perm_for(const struct xs_who *w, const struct xs_perm *p, uint16_t n)
{
    bool tgt = w->target != XS_NO_TARGET;

    if (w->priv || p[0].domid == w->domid || (tgt && p[0].domid == w->target))
        return XS_P_READ | XS_P_WRITE | XS_P_OWNER;
    for (uint16_t i = 1; i < n; i++)
        if (p[i].domid == w->domid || (tgt && p[i].domid == w->target))
            return p[i].perm & (XS_P_READ | XS_P_WRITE);
    return p[0].perm & (XS_P_READ | XS_P_WRITE);
}

/* ---- the hash table ---- */

uint32_t xs_hash_key(const char *key)
{
    uint32_t h = 2166136261u;

    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h;
}

struct xs_hent *xs_hash_get(const struct xs_hash *h, const char *key, uint32_t hash)
{
    if (h->nb == 0)
        return NULL;
    for (struct xs_hent *e = h->b[hash & (h->nb - 1)]; e != NULL; e = e->next)
        if (e->hash == hash && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int hash_grow(struct xs_hash *h)
{
    size_t nb = h->nb ? h->nb * 2 : 64;
    struct xs_hent **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return ENOMEM;
    for (size_t i = 0; i < h->nb; i++) {
        struct xs_hent *e, *next;
        for (e = h->b[i]; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(h->b);
    h->b = b;
    h->nb = nb;
    return 0;
}

int xs_hash_put(struct xs_hash *h, struct xs_hent *e)
{
    struct xs_hent **slot;

    if (h->n >= h->nb && hash_grow(h) != 0)
        return ENOMEM;
    slot = &h->b[e->hash & (h->nb - 1)];
    e->next = *slot;
    *slot = e;
    h->n++;
    return 0;
}

struct xs_hent *xs_hash_take(struct xs_hash *h, const char *key, uint32_t hash)
{
    if (h->nb == 0)
        return NULL;
    for (struct xs_hent **pp = &h->b[hash & (h->nb - 1)]; *pp != NULL; pp = &(*pp)->next) {
        struct xs_hent *e = *pp;
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            *pp = e->next;
            h->n--;
            return e;
        }
    }
    return NULL;
}

void xs_hash_fini(struct xs_hash *h)
{
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}

/* ---- node records ---- */

struct xs_node *xs_node_new(const char *path)
{
    size_t len = strlen(path);
    struct xs_node *n = calloc(1, sizeof(*n) + len + 1);

    if (n == NULL)
        return NULL;
    memcpy(n->path, path, len + 1);
    n->h.key = n->path;
    n->h.hash = xs_hash_key(n->path);
    return n;
}

void xs_node_free(struct xs_node *n)
{
    if (n == NULL)
        return;
    free(n->value);
    free(n->children);
    free(n->perms);
    free(n);
}

int xs_node_set_value(struct xs_node *n, const void *v, size_t len)
{
    char *nv = NULL;

    if (len > 0 && (nv = malloc(len)) == NULL)
        return ENOMEM;
    if (len > 0)
        memcpy(nv, v, len);
    free(n->value);
    n->value = nv;
    n->vlen = (uint32_t)len;
    return 0;
}

int xs_node_set_perms(struct xs_node *n, const struct xs_perm *p, uint16_t np)
{
    struct xs_perm *c = malloc(np * sizeof(*c));

    if (c == NULL)
        return ENOMEM;
    memcpy(c, p, np * sizeof(*c));
    free(n->perms);
    n->perms = c;
    n->nperms = np;
    return 0;
}

struct xs_node *xs_node_copy(const struct xs_node *src)
{
    struct xs_node *n = xs_node_new(src->path);

    if (n == NULL)
        return NULL;
    n->gen = src->gen;
    if (xs_node_set_value(n, src->value, src->vlen) != 0 ||
        xs_node_set_perms(n, src->perms, src->nperms) != 0)
        goto fail;
    if (src->clen > 0) {
        if ((n->children = malloc(src->clen)) == NULL)
            goto fail;
        memcpy(n->children, src->children, src->clen);
        n->clen = n->ccap = src->clen;
    }
    return n;
fail:
    xs_node_free(n);
    return NULL;
}

int xs_node_add_child(struct xs_node *n, const char *leaf)
{
    size_t len = strlen(leaf) + 1;

    if (n->clen + len > n->ccap) {
        size_t cap = n->ccap * 2 > n->clen + len ? n->ccap * 2 : n->clen + len + 32;
        char *c = realloc(n->children, cap);
        if (c == NULL)
            return ENOMEM;
        n->children = c;
        n->ccap = (uint32_t)cap;
    }
    memcpy(n->children + n->clen, leaf, len);
    n->clen += (uint32_t)len;
    return 0;
}

void xs_node_del_child(struct xs_node *n, const char *leaf)
{
    for (uint32_t off = 0; off < n->clen;) {
        size_t len = strlen(n->children + off) + 1;
        if (strcmp(n->children + off, leaf) == 0) {
            memmove(n->children + off, n->children + off + len, n->clen - off - len);
            n->clen -= (uint32_t)len;
            return;
        }
        off += (uint32_t)len;
    }
}

/* As C xenstored sizes its records: a 16-byte header, 8 bytes per ACL entry, value, children. */
size_t xs_node_size(const struct xs_node *n)
{
    return 16 + 8 * (size_t)n->nperms + n->vlen + n->clen;
}

/* ---- the store's records ---- */

static void own(struct xs_store *st, const struct xs_node *n, int by)
{
    if (n != NULL && n->nperms > 0) {
        uint64_t bytes = xs_node_size(n) + strlen(n->path);
        st->owned[n->perms[0].domid] += (uint32_t)by;
        st->mem[n->perms[0].domid] += by > 0 ? bytes : -bytes;
    }
}

const struct xs_node *xs_store_get(const struct xs_store *st, const char *path)
{
    struct xs_hent *e = xs_hash_get(&st->nodes, path, xs_hash_key(path));

    return (const struct xs_node *)e;
}

int xs_store_put(struct xs_store *st, struct xs_node *n)
{
    struct xs_node *old = (struct xs_node *)xs_hash_take(&st->nodes, n->path, n->h.hash);

    if (xs_hash_put(&st->nodes, &n->h) != 0) {
        if (old != NULL)
            xs_hash_put(&st->nodes, &old->h); /* cannot fail: its slot was just freed */
        xs_node_free(n);
        return ENOMEM;
    }
    own(st, old, -1);
    own(st, n, 1);
    n->gen = ++st->gen;
    xs_node_free(old);
    return 0;
}

void xs_store_del(struct xs_store *st, const char *path)
{
    struct xs_node *old = (struct xs_node *)xs_hash_take(&st->nodes, path, xs_hash_key(path));

    own(st, old, -1);
    xs_node_free(old);
}

struct xs_store *xs_store_new(void)
{
    static const struct xs_perm none = {0, XS_P_NONE};
    struct xs_store *st = calloc(1, sizeof(*st));
    struct xs_node *root = NULL;

    if (st == NULL || (st->owned = calloc(0x10000, sizeof(*st->owned))) == NULL ||
        (st->mem = calloc(0x10000, sizeof(*st->mem))) == NULL)
        goto fail;
    for (int i = 0; i < 2; i++) {
        if ((st->special_acl[i] = malloc(sizeof(none))) == NULL)
            goto fail;
        st->special_acl[i][0] = none;
        st->special_n[i] = 1;
    }
    if ((root = xs_node_new("/")) == NULL || xs_node_set_perms(root, &none, 1) != 0 ||
        xs_store_put(st, root) != 0) {
        root = NULL; /* put frees it on failure */
        goto fail;
    }
    return st;
fail:
    xs_node_free(root);
    xs_store_free(st);
    return NULL;
}

void xs_store_free(struct xs_store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nodes.nb; i++) {
        struct xs_hent *e, *next;
        for (e = st->nodes.b[i]; e != NULL; e = next) {
            next = e->next;
            xs_node_free((struct xs_node *)e);
        }
    }
    xs_hash_fini(&st->nodes);
    free(st->special_acl[0]);
    free(st->special_acl[1]);
    free(st->owned);
    free(st->mem);
    free(st);
}

size_t xs_store_count(const struct xs_store *st)
{
    return st->nodes.n;
}

/* ---- operations ---- */

/* Cuts p (absolute, not "/") to its parent's path, in place. */
static void to_parent(char *p)
{
    char *slash = strrchr(p, '/');

    slash[slash == p ? 1 : 0] = '\0';
}

static void parent_of(const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", path);
    to_parent(out);
}

static void emit(struct xs_view *v, const struct xs_node *n, bool recurse)
{
    struct xs_change c = {n->path, n->perms, n->nperms, recurse};

    if (v->txn != NULL)
        xs_txn_record_change(v->txn, &c);
    else if (v->changed != NULL)
        v->changed(v->arg, &c);
}

/*
 * A missing node, or one the caller may not use: ENOENT only if the nearest
 * existing ancestor grants `perm`, so that no one learns what exists where
 * they may not look (C xenstored's errno_from_parents).
 */
static int from_parents(struct xs_view *v, const struct xs_who *w, const char *path,
                        unsigned int perm, int rc)
{
    char p[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *n = NULL;
    int r;

    snprintf(p, sizeof(p), "%s", path);
    while (n == NULL && strcmp(p, "/") != 0) {
        to_parent(p);
        if ((r = xs_view_get(v, w, p, &n)) != 0)
            return r;
    }
    if (n == NULL)
        return EACCES; /* no root: cannot happen, refuse */
    return (xs_perm_for(w, n->perms, n->nperms) & perm) ? rc : EACCES;
}

static int get_node(struct xs_view *v, const struct xs_who *w, const char *path, unsigned int perm,
                    const struct xs_node **out)
{
    const struct xs_node *n;
    int rc;

    if ((rc = xs_view_get(v, w, path, &n)) != 0)
        return rc;
    if (n == NULL)
        return from_parents(v, w, path, perm, ENOENT);
    if ((xs_perm_for(w, n->perms, n->nperms) & perm) != perm)
        return EACCES;
    *out = n;
    return 0;
}

static bool too_big(const struct xs_who *w, const struct xs_node *n)
{
    return !w->priv && xs_node_size(n) >= w->quota[XSQ_NODE_SIZE];
}

static long owned_by(struct xs_view *v, uint16_t domid)
{
    long n = v->st->owned[domid];

    if (v->txn != NULL && v->txn->domid == domid)
        n += v->txn->owned_delta;
    return n;
}

int xs_op_read(struct xs_view *v, const struct xs_who *w, const char *path,
               const struct xs_node **out)
{
    return get_node(v, w, path, XS_P_READ, out);
}

/* Puts n (taken) and tells watchers; n stays valid after a successful put. */
static int put_emit(struct xs_view *v, const struct xs_who *w, struct xs_node *n)
{
    int rc = xs_view_put(v, w, n);

    if (rc == 0)
        emit(v, n, false);
    return rc;
}

static int write_existing(struct xs_view *v, const struct xs_who *w, const struct xs_node *n,
                          const void *val, size_t len)
{
    struct xs_node *c = xs_node_copy(n);
    int rc = ENOMEM;

    if (c == NULL || (rc = xs_node_set_value(c, val, len)) != 0)
        goto fail;
    if (too_big(w, c)) {
        rc = ENOSPC;
        goto fail;
    }
    return put_emit(v, w, c);
fail:
    xs_node_free(c);
    return rc;
}

/* The new nodes from below `anc` down to path: each inherits its parent's ACL. */
static int build_chain(const struct xs_who *w, struct xs_node *anc, const char *path,
                       struct xs_node **chain, unsigned int levels)
{
    const char *p = path + strlen(anc->path) + (strcmp(anc->path, "/") != 0);
    struct xs_node *parent = anc;
    int rc;

    for (unsigned int i = 0; i < levels; i++) {
        const char *end = strchr(p, '/');
        size_t leaflen = end ? (size_t)(end - p) : strlen(p);
        char leaf[XENSTORE_ABS_PATH_MAX + 1], child[XENSTORE_ABS_PATH_MAX + 1];

        snprintf(leaf, sizeof(leaf), "%.*s", (int)leaflen, p);
        snprintf(child, sizeof(child), "%.*s", (int)((size_t)(p - path) + leaflen), path);
        if ((chain[i] = xs_node_new(child)) == NULL)
            return ENOMEM;
        if ((rc = xs_node_set_perms(chain[i], parent->perms, parent->nperms)) != 0 ||
            (rc = xs_node_add_child(parent, leaf)) != 0)
            return rc;
        if (!w->priv)
            chain[i]->perms[0].domid = w->domid; /* a domain owns what it creates */
        parent = chain[i];
        p = end ? end + 1 : p;
    }
    return 0;
}

/*
 * Creates path and every missing ancestor, as C xenstored's construct_node.
 * Everything is built and checked before the first change, so that a
 * refusal leaves nothing half made.
 */
static int create(struct xs_view *v, const struct xs_who *w, const char *path, const void *val,
                  size_t len)
{
    char top[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *anc = NULL;
    struct xs_node *ac = NULL, **chain = NULL;
    unsigned int levels = 0, put = 0;
    int rc;

    snprintf(top, sizeof(top), "%s", path);
    while (anc == NULL) {
        to_parent(top);
        levels++;
        if ((rc = xs_view_get(v, w, top, &anc)) != 0)
            return rc;
    }
    if (!w->priv && owned_by(v, w->domid) + levels > (long)w->quota[XSQ_NODES])
        return ENOSPC;
    rc = ENOMEM;
    if ((ac = xs_node_copy(anc)) == NULL || (chain = calloc(levels, sizeof(*chain))) == NULL)
        goto out;
    if ((rc = build_chain(w, ac, path, chain, levels)) != 0 ||
        (rc = xs_node_set_value(chain[levels - 1], val, len)) != 0)
        goto out;
    rc = too_big(w, ac) ? ENOSPC : 0;
    for (unsigned int i = 0; i < levels && rc == 0; i++)
        rc = too_big(w, chain[i]) ? ENOSPC : 0;
    if (rc != 0)
        goto out;
    /* From here only memory can fail. */
    rc = xs_view_put(v, w, ac);
    ac = NULL;
    for (; put < levels && rc == 0; put++)
        rc = xs_view_put(v, w, chain[put]);
    if (rc == 0)
        emit(v, chain[levels - 1], false);
out:
    xs_node_free(ac);
    for (unsigned int i = put; chain != NULL && i < levels; i++)
        xs_node_free(chain[i]);
    free(chain);
    return rc;
}

int xs_op_write(struct xs_view *v, const struct xs_who *w, const char *path, const void *val,
                size_t len)
{
    const struct xs_node *n;
    int rc = get_node(v, w, path, XS_P_WRITE, &n);

    if (rc == 0)
        return write_existing(v, w, n, val, len);
    return rc == ENOENT ? create(v, w, path, val, len) : rc;
}

int xs_op_mkdir(struct xs_view *v, const struct xs_who *w, const char *path)
{
    const struct xs_node *n;
    int rc = get_node(v, w, path, XS_P_WRITE, &n);

    if (rc == 0)
        return 0; /* exists: left as it is */
    return rc == ENOENT ? create(v, w, path, NULL, 0) : rc;
}

/* Deletes path and everything below it, children first; each tells its own watchers. */
static int rm_tree(struct xs_view *v, const struct xs_who *w, const char *path, bool top)
{
    const struct xs_node *n;
    int rc;

    if ((rc = xs_view_get(v, w, path, &n)) != 0 || n == NULL)
        return rc;
    for (uint32_t off = 0; off < n->clen; off += (uint32_t)strlen(n->children + off) + 1) {
        size_t len = strlen(path) + strlen(n->children + off) + 2;
        char *child = malloc(len);
        if (child == NULL)
            return ENOMEM;
        snprintf(child, len, "%s%s%s", path, strcmp(path, "/") ? "/" : "", n->children + off);
        rc = rm_tree(v, w, child, false);
        free(child);
        if (rc != 0)
            return rc;
    }
    emit(v, n, top);
    return xs_view_del(v, w, path);
}

int xs_op_rm(struct xs_view *v, const struct xs_who *w, const char *path)
{
    char pp[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *n, *parent;
    struct xs_node *pc;
    int rc;

    if (strcmp(path, "/") == 0)
        return EINVAL;
    parent_of(path, pp, sizeof(pp));
    if ((rc = get_node(v, w, path, XS_P_WRITE, &n)) != 0) {
        /* Not there: fine, as long as its parent is. */
        if (rc == ENOENT && (rc = xs_view_get(v, w, pp, &parent)) == 0)
            return parent != NULL ? 0 : ENOENT;
        return rc;
    }
    if ((rc = xs_view_get(v, w, pp, &parent)) != 0)
        return rc;
    if ((pc = xs_node_copy(parent)) == NULL)
        return ENOMEM;
    xs_node_del_child(pc, strrchr(path, '/') + 1);
    if ((rc = rm_tree(v, w, path, true)) != 0) {
        xs_node_free(pc);
        return rc;
    }
    return xs_view_put(v, w, pc);
}

int xs_op_get_perms(struct xs_view *v, const struct xs_who *w, const char *path,
                    const struct xs_perm **p, uint16_t *np)
{
    int s = xs_special_index(path), rc;
    const struct xs_node *n;

    if (s >= 0) {
        if (!(xs_perm_for(w, v->st->special_acl[s], v->st->special_n[s]) & XS_P_READ))
            return EACCES;
        *p = v->st->special_acl[s];
        *np = v->st->special_n[s];
        return 0;
    }
    if (path[0] == '@')
        return EINVAL;
    if ((rc = get_node(v, w, path, XS_P_READ, &n)) != 0)
        return rc;
    *p = n->perms;
    *np = n->nperms;
    return 0;
}

/* Only the owner changes an ACL, and only dom0 changes an owner. */
static int check_new_perms(const struct xs_who *w, const struct xs_perm *old,
                           const struct xs_perm *p, uint16_t np)
{
    if (!w->priv && np > w->quota[XSQ_PERMISSIONS])
        return ENOSPC;
    if (!w->priv && p[0].domid != old[0].domid)
        return EPERM;
    return 0;
}

static int set_special_perms(struct xs_view *v, const struct xs_who *w, int s,
                             const struct xs_perm *p, uint16_t np)
{
    struct xs_store *st = v->st;
    struct xs_perm *c;
    int rc;

    if (!(xs_perm_for(w, st->special_acl[s], st->special_n[s]) & XS_P_OWNER))
        return EACCES;
    if ((rc = check_new_perms(w, st->special_acl[s], p, np)) != 0)
        return rc;
    if ((c = malloc(np * sizeof(*c))) == NULL)
        return ENOMEM;
    memcpy(c, p, np * sizeof(*c));
    free(st->special_acl[s]);
    st->special_acl[s] = c;
    st->special_n[s] = np;
    return 0;
}

int xs_op_set_perms(struct xs_view *v, const struct xs_who *w, const char *path,
                    const struct xs_perm *p, uint16_t np)
{
    int s = xs_special_index(path), rc;
    const struct xs_node *n;
    struct xs_node *c;

    if (np == 0)
        return EINVAL;
    if (s >= 0)
        return set_special_perms(v, w, s, p, np);
    if (path[0] == '@')
        return EINVAL;
    if ((rc = get_node(v, w, path, XS_P_WRITE | XS_P_OWNER, &n)) != 0)
        return rc;
    if ((rc = check_new_perms(w, n->perms, p, np)) != 0)
        return rc;
    if ((c = xs_node_copy(n)) == NULL)
        return ENOMEM;
    if ((rc = xs_node_set_perms(c, p, np)) != 0 || (too_big(w, c) && (rc = ENOSPC) != 0)) {
        xs_node_free(c);
        return rc;
    }
    return put_emit(v, w, c);
}

/* ---- a dead domain ---- */

/* A node whose ACL names domid past the owner entry, rewritten without it (no event). */
static int strip_acl(struct xs_view *v, const struct xs_who *w, const struct xs_node *n,
                     uint16_t domid)
{
    struct xs_perm p[n->nperms];
    uint16_t np = 1;
    struct xs_node *c;

    p[0] = n->perms[0];
    for (uint16_t i = 1; i < n->nperms; i++)
        if (n->perms[i].domid != domid)
            p[np++] = n->perms[i];
    if (np == n->nperms)
        return 0;
    if ((c = xs_node_copy(n)) == NULL || xs_node_set_perms(c, p, np) != 0) {
        xs_node_free(c);
        return ENOMEM;
    }
    return xs_view_put(v, w, c);
}

static bool owned_root(const struct xs_store *st, const struct xs_node *n, uint16_t domid)
{
    char pp[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *parent;

    if (n->perms[0].domid != domid || strcmp(n->path, "/") == 0)
        return false;
    parent_of(n->path, pp, sizeof(pp));
    parent = xs_store_get(st, pp);
    return parent == NULL || parent->perms[0].domid != domid;
}

/*
 * Its nodes go (as xenstored removes a destroyed domain's nodes, so that a
 * later domain with the same id inherits nothing), and the ACL entries
 * naming it elsewhere with them.  Runs on the store, as dom0.
 */
void xs_store_purge_domain(struct xs_view *v, uint16_t domid)
{
    static const unsigned int none[XSQ_COUNT];
    const struct xs_who dom0 = {0, XS_NO_TARGET, true, none};
    struct xs_store *st = v->st;
    char **paths = NULL;
    size_t n = 0;

    if ((paths = calloc(st->nodes.n + 1, sizeof(*paths))) == NULL)
        return;
    for (size_t i = 0; i < st->nodes.nb; i++)
        for (struct xs_hent *e = st->nodes.b[i]; e != NULL; e = e->next) {
            const struct xs_node *node = (const struct xs_node *)e;
            bool acl = false;
            for (uint16_t j = 1; j < node->nperms; j++)
                acl |= node->perms[j].domid == domid;
            if ((owned_root(st, node, domid) || acl) && (paths[n] = strdup(node->path)) != NULL)
                n++;
        }
    for (size_t i = 0; i < n; i++) {
        const struct xs_node *node = xs_store_get(st, paths[i]);
        if (node != NULL && node->perms[0].domid == domid)
            xs_op_rm(v, &dom0, paths[i]);
        else if (node != NULL)
            strip_acl(v, &dom0, node, domid);
        free(paths[i]);
    }
    free(paths);
    for (int s = 0; s < 2; s++) {
        struct xs_node tmp = {.perms = st->special_acl[s], .nperms = st->special_n[s]};
        uint16_t np = 1;
        for (uint16_t j = 1; j < tmp.nperms; j++)
            if (tmp.perms[j].domid != domid)
                tmp.perms[np++] = tmp.perms[j];
        st->special_n[s] = np;
    }
}
