/*
 * store.c - a device's keys, state and error nodes over libxenstore.
 *
 * Every multi-key operation runs in one transaction and is retried when the
 * commit fails with EAGAIN (another writer got in between), so that a peer
 * never sees half a set of features and we never act on half of its keys.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bhxenbus.h"

#define PATH_LEN (XENSTORE_ABS_PATH_MAX + 1)

typedef int txn_fn(struct xs_handle *xs, xs_transaction_t t, void *ctx);

/*
 * Runs fn in a transaction until a commit succeeds.  fn may run several
 * times, so it must not keep anything it read in a previous attempt.
 */
static int with_txn(struct xs_handle *xs, txn_fn *fn, void *ctx)
{
    for (int attempt = 0; attempt < BHXB_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return -1;
        if (fn(xs, t, ctx) != 0) {
            int saved = errno;
            xs_transaction_end(xs, t, true);
            errno = saved;
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

static int join(char *buf, const char *dir, const char *name)
{
    int r = snprintf(buf, PATH_LEN, "%s/%s", dir, name);

    if (r < 0 || r >= PATH_LEN) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* ---- typed keys ---- */

static unsigned long type_max(const struct bhxb_key *k)
{
    unsigned long limit = k->type == BHXB_UINT  ? UINT_MAX
                          : k->type == BHXB_INT ? INT_MAX
                                                : ULONG_MAX;

    return k->max != 0 && k->max < limit ? k->max : limit;
}

static int format_key(const struct bhxb_key *k, char *buf, size_t size)
{
    int r;

    switch (k->type) {
    case BHXB_INT:
        r = snprintf(buf, size, "%d", *(const int *)k->ptr);
        break;
    case BHXB_UINT:
        r = snprintf(buf, size, "%u", *(const unsigned int *)k->ptr);
        break;
    case BHXB_ULONG:
        r = snprintf(buf, size, "%lu", *(const unsigned long *)k->ptr);
        break;
    case BHXB_BOOL:
        r = snprintf(buf, size, "%d", *(const bool *)k->ptr ? 1 : 0);
        break;
    case BHXB_STR:
        r = snprintf(buf, size, "%s", (const char *)k->ptr);
        break;
    default:
        errno = EINVAL;
        return -1;
    }
    if (r < 0 || (size_t)r >= size) {
        errno = E2BIG;
        return -1;
    }
    return r;
}

struct keys_ctx {
    const char *dir;
    const struct bhxb_key *keys;
    size_t n;
    const char **bad;
    void *scratch; /* reads: parsed values, stored only after the commit */
};

static int write_keys_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    struct keys_ctx *c = arg;
    char path[PATH_LEN], val[BHXB_VALUE_MAX + 1];

    for (size_t i = 0; i < c->n; i++) {
        int len = format_key(&c->keys[i], val, sizeof(val));
        if (len < 0 || join(path, c->dir, c->keys[i].name) != 0)
            return -1;
        if (!xs_write(xs, t, path, val, (unsigned int)len))
            return -1;
    }
    return 0;
}

int bhxb_write_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n)
{
    struct keys_ctx c = {dir, keys, n, NULL, NULL};

    if (xs == NULL || dir == NULL || (keys == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (keys[i].name == NULL || keys[i].ptr == NULL) {
            errno = EINVAL;
            return -1;
        }
    return with_txn(xs, write_keys_txn, &c);
}

/* The keys, then <dir>/state rewritten with what it holds (never recreated). */
static int restate_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    char path[PATH_LEN], *state;
    unsigned int len;
    bool ok;

    if (write_keys_txn(xs, t, arg) != 0 || join(path, ((struct keys_ctx *)arg)->dir, "state") != 0)
        return -1;
    if ((state = xs_read(xs, t, path, &len)) == NULL)
        return -1;
    ok = xs_write(xs, t, path, state, len);
    free(state);
    return ok ? 0 : -1;
}

int bhxb_write_keys_restate(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys,
                            size_t n)
{
    struct keys_ctx c = {dir, keys, n, NULL, NULL};

    if (xs == NULL || dir == NULL || keys == NULL || n == 0) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (keys[i].name == NULL || keys[i].ptr == NULL) {
            errno = EINVAL;
            return -1;
        }
    return with_txn(xs, restate_txn, &c);
}

/* One parsed value, held until the transaction commits. */
struct parsed {
    bool present;
    union {
        int i;
        unsigned long ul;
        bool b;
    } v;
    char *str;
};

static int parse_key(const struct bhxb_key *k, const char *s, size_t len, struct parsed *p)
{
    uint64_t u;

    switch (k->type) {
    case BHXB_INT:
        return bhxb_parse_int(s, len, INT_MIN, (int)type_max(k), &p->v.i);
    case BHXB_UINT:
    case BHXB_ULONG:
        if (bhxb_parse_u64(s, len, 0, type_max(k), &u) != 0)
            return -1;
        p->v.ul = (unsigned long)u;
        return 0;
    case BHXB_BOOL:
        return bhxb_parse_bool(s, len, &p->v.b);
    case BHXB_STR:
        if ((p->str = malloc(k->size ? k->size : 1)) == NULL)
            return -1;
        return bhxb_parse_str(s, len, p->str, k->size);
    }
    errno = EINVAL;
    return -1;
}

static void parsed_clear(struct parsed *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].str);
        memset(&p[i], 0, sizeof(p[i]));
    }
}

static int read_keys_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    struct keys_ctx *c = arg;
    struct parsed *p = c->scratch;
    char path[PATH_LEN];

    parsed_clear(p, c->n); /* a retry starts afresh */
    for (size_t i = 0; i < c->n; i++) {
        unsigned int len;
        char *val;
        int r;

        if (join(path, c->dir, c->keys[i].name) != 0)
            goto bad;
        if ((val = xs_read(xs, t, path, &len)) == NULL) {
            if (errno == ENOENT && !c->keys[i].required)
                continue;
            goto bad;
        }
        r = parse_key(&c->keys[i], val, len, &p[i]);
        free(val);
        if (r != 0)
            goto bad;
        p[i].present = true;
        continue;
    bad:
        if (c->bad)
            *c->bad = c->keys[i].name;
        return -1;
    }
    return 0;
}

static void store_parsed(const struct bhxb_key *k, const struct parsed *p)
{
    /* A missing "feature-x" means no feature: it reads as false. */
    if (!p->present && k->type == BHXB_BOOL)
        *(bool *)k->ptr = false;
    if (!p->present)
        return;
    switch (k->type) {
    case BHXB_INT:
        *(int *)k->ptr = p->v.i;
        break;
    case BHXB_UINT:
        *(unsigned int *)k->ptr = (unsigned int)p->v.ul;
        break;
    case BHXB_ULONG:
        *(unsigned long *)k->ptr = p->v.ul;
        break;
    case BHXB_BOOL:
        *(bool *)k->ptr = p->v.b;
        break;
    case BHXB_STR:
        memcpy(k->ptr, p->str, strlen(p->str) + 1);
        break;
    }
}

int bhxb_read_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n,
                   const char **bad)
{
    struct keys_ctx c = {dir, keys, n, bad, NULL};
    struct parsed *p = NULL;
    int rc = -1, saved;

    if (bad)
        *bad = NULL;
    if (xs == NULL || dir == NULL || (keys == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i].name == NULL || keys[i].ptr == NULL ||
            (keys[i].type == BHXB_STR && keys[i].size == 0)) {
            errno = EINVAL;
            return -1;
        }
    }
    if ((p = calloc(n ? n : 1, sizeof(*p))) == NULL)
        return -1;
    c.scratch = p;
    if (with_txn(xs, read_keys_txn, &c) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        store_parsed(&keys[i], &p[i]);
    rc = 0;
out:
    saved = errno;
    parsed_clear(p, n);
    free(p);
    errno = saved;
    return rc;
}

/* ---- the state node ---- */

int bhxb_read_state(struct xs_handle *xs, const char *dir)
{
    char path[PATH_LEN];
    unsigned int len;
    XenbusState s;
    char *val;
    int r;

    if (xs == NULL || dir == NULL) {
        errno = EINVAL;
        return -2;
    }
    if (join(path, dir, "state") != 0)
        return -2;
    if ((val = xs_read(xs, XBT_NULL, path, &len)) == NULL)
        return errno == ENOENT ? XenbusStateUnknown : -2;
    r = bhxb_parse_state(val, len, &s);
    free(val);
    return r == 0 ? (int)s : BHXB_PEER_INVALID;
}

struct state_ctx {
    const char *dir;
    XenbusState state;
    const char *error; /* bhxb_dev_fatal: the error node's value */
};

static int switch_state_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    struct state_ctx *c = arg;
    char path[PATH_LEN], val[4];
    unsigned int len;
    XenbusState cur;
    char *old;
    int same;

    if (join(path, c->dir, "state") != 0)
        return -1;
    /* Writing to a removed device would recreate its directory: refuse. */
    if ((old = xs_read(xs, t, path, &len)) == NULL)
        return -1;
    same = bhxb_parse_state(old, len, &cur) == 0 && cur == c->state;
    free(old);
    if (c->error) {
        char epath[PATH_LEN];
        if (join(epath, c->dir, "error") != 0 ||
            !xs_write(xs, t, epath, c->error, (unsigned int)strlen(c->error)))
            return -1;
    }
    /* An unchanged state is not rewritten: a write fires the peer's watch. */
    if (same)
        return 0;
    snprintf(val, sizeof(val), "%d", (int)c->state);
    return xs_write(xs, t, path, val, (unsigned int)strlen(val)) ? 0 : -1;
}

int bhxb_switch_state(struct xs_handle *xs, const char *dir, XenbusState state)
{
    struct state_ctx c = {dir, state, NULL};

    if (xs == NULL || dir == NULL || state < XenbusStateUnknown ||
        state > XenbusStateReconfigured) {
        errno = EINVAL;
        return -1;
    }
    return with_txn(xs, switch_state_txn, &c);
}

bool bhxb_read_online(struct xs_handle *xs, const char *dir)
{
    char path[PATH_LEN];
    unsigned int len;
    bool online = false;
    char *val;

    if (xs == NULL || dir == NULL || join(path, dir, "online") != 0)
        return false;
    if ((val = xs_read(xs, XBT_NULL, path, &len)) == NULL)
        return errno == ENOENT;
    if (bhxb_parse_bool(val, len, &online) != 0)
        online = false;
    free(val);
    return online;
}

bool bhxb_peer_online(struct xs_handle *xs, const char *backend_dir)
{
    char path[PATH_LEN];
    unsigned int len;
    char *val;

    if (!bhxb_read_online(xs, backend_dir) || join(path, backend_dir, "error") != 0)
        return false;
    if ((val = xs_read(xs, XBT_NULL, path, &len)) != NULL) {
        free(val);
        return false;
    }
    return errno == ENOENT;
}

/* ---- the error node ---- */

/* Replaces control characters, so that an error is always one line. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

int bhxb_dev_fatal(struct xs_handle *xs, const char *dir, int err, const char *fmt, ...)
{
    char msg[256], val[300];
    struct state_ctx c = {dir, XenbusStateClosing, val};
    va_list ap;

    if (xs == NULL || dir == NULL || fmt == NULL) {
        errno = EINVAL;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    one_line(msg);
    /* Linux's format: the positive errno, a space, the message. */
    snprintf(val, sizeof(val), "%d %s", err < 0 ? -err : err, msg);
    return with_txn(xs, switch_state_txn, &c);
}

int bhxb_read_error(struct xs_handle *xs, const char *dir, char *buf, size_t size)
{
    char path[PATH_LEN];
    unsigned int len;
    char *val;

    if (xs == NULL || dir == NULL || buf == NULL || size == 0) {
        errno = EINVAL;
        return -1;
    }
    if (join(path, dir, "error") != 0 || (val = xs_read(xs, XBT_NULL, path, &len)) == NULL)
        return -1;
    /* The peer may have written it: bound it and keep it on one line. */
    if (len >= size)
        len = (unsigned int)size - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    free(val);
    one_line(buf);
    return 0;
}

/* ---- writing a layout ---- */

static int layout_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    const struct bhxb_layout *l = arg;
    const char *dirs[] = {l->paths.frontend, l->paths.backend, l->paths.libxl};

    /* What an earlier device left behind must not leak into this one. */
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (!xs_rm(xs, t, dirs[i]) && errno != ENOENT)
            return -1;
    for (size_t i = 0; i < l->n; i++) {
        const struct bhxb_node *nd = &l->nodes[i];
        struct xs_permissions perms[2];

        memcpy(perms, nd->perms, sizeof(perms));
        if (!xs_write(xs, t, nd->path, nd->value, (unsigned int)strlen(nd->value)) ||
            !xs_set_permissions(xs, t, nd->path, perms, nd->nperms))
            return -1;
    }
    return 0;
}

struct layouts {
    const struct bhxb_layout *const *l;
    size_t n;
};

static int layouts_txn(struct xs_handle *xs, xs_transaction_t t, void *arg)
{
    const struct layouts *ls = arg;

    for (size_t i = 0; i < ls->n; i++)
        if (layout_txn(xs, t, (void *)ls->l[i]) != 0)
            return -1;
    return 0;
}

int bhxb_layouts_write(struct xs_handle *xs, const struct bhxb_layout *const *l, size_t n)
{
    struct layouts ls = {l, n};

    if (xs == NULL || (l == NULL && n > 0)) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (l[i] == NULL) {
            errno = EINVAL;
            return -1;
        }
    return with_txn(xs, layouts_txn, &ls);
}

int bhxb_layout_write(struct xs_handle *xs, const struct bhxb_layout *l)
{
    if (xs == NULL || l == NULL) {
        errno = EINVAL;
        return -1;
    }
    return with_txn(xs, layout_txn, (void *)l);
}

struct xs_handle *bhxb_open_domain(int timeout_ms)
{
    struct timespec pause = {0, 20 * 1000000};
    int waited = 0;

    for (;;) {
        struct xs_handle *xs = xs_open(0);
        unsigned int len;
        char *v = xs != NULL ? xs_read(xs, XBT_NULL, "domid", &len) : NULL;
        int saved = errno;

        /* An answer, even "no such node", means the daemon took us: we are introduced. */
        if (v != NULL || (xs != NULL && (saved == ENOENT || saved == EACCES))) {
            free(v);
            return xs;
        }
        if (xs != NULL)
            xs_close(xs);
        else if (saved == ENOENT || saved == ENOTDIR || saved == EACCES)
            return NULL; /* no daemon there at all: waiting will not help */
        /* Refused (not introduced yet) or no home yet: the toolstack is still at it. */
        if (waited >= timeout_ms) {
            errno = saved ? saved : ETIMEDOUT;
            return NULL;
        }
        nanosleep(&pause, NULL);
        waited += 20;
    }
}

int bhxb_learn_domid(struct xs_handle *xs, int known, uint32_t *domid)
{
    if (known >= 0) {
        *domid = (uint32_t)known;
        return 0;
    }
    return bhxb_read_domid(xs, domid);
}

int bhxb_read_domid(struct xs_handle *xs, uint32_t *domid)
{
    unsigned int len;
    uint64_t n;
    char *v = xs_read(xs, XBT_NULL, "domid", &len);
    int rc;

    if (v == NULL)
        return -1;
    rc = bhxb_parse_u64(v, len, 0, BHXB_DOMID_MAX, &n);
    free(v);
    if (rc == 0)
        *domid = (uint32_t)n;
    return rc;
}
