/*
 * xs_proto.c - the xenstore wire protocol (xs_wire.h): connections and
 * their framing, the handler table, the domain messages, CONTROL.
 *
 * A connection's bytes come in through xsd_conn_input, in whatever pieces
 * the socket gives them: a half message waits in the connection's own
 * buffer and stalls no one else.  A payload over XENSTORE_PAYLOAD_MAX
 * kills the connection, as in C xenstored (the client cannot be trusted
 * to resynchronise); every other fault is answered with an XS_ERROR
 * naming an errno of xs_wire.h, and the connection stays.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xenstored.h"

/* One request being served. */
struct xs_req {
    struct xsd *d;
    struct xs_conn *c;
    const struct xsd_sockmsg *hdr;
    char *p;    /* payload, NUL-terminated one byte past len by the framing */
    size_t len; /* payload bytes */
    struct xs_txn *txn;
    struct xs_who who;
    struct xs_view view;
};

typedef int (*xs_handler_fn)(struct xs_req *r);

/* ---- the daemon ---- */

void xsd_log(struct xsd *d, const char *fmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (d->log == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(d->log, "%s.%03ldZ ", ts, now.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(d->log, fmt, ap);
    va_end(ap);
    fputc('\n', d->log);
    fflush(d->log);
}

static struct xs_dom *dom_new(struct xsd *d, uint16_t domid)
{
    struct xs_dom *dom = calloc(1, sizeof(*dom));

    if (dom == NULL)
        return NULL;
    dom->domid = domid;
    dom->target = XS_NO_TARGET;
    if (d->doms == NULL) {
        d->doms = dom;
    } else { /* dom0 stays first */
        dom->next = d->doms->next;
        d->doms->next = dom;
    }
    return dom;
}

struct xs_dom *xsd_dom_find(struct xsd *d, uint16_t domid)
{
    for (struct xs_dom *dom = d->doms; dom != NULL; dom = dom->next)
        if (dom->domid == domid)
            return dom;
    return NULL;
}

/* A released domain's record lives while a dying connection still points at it. */
static void dom_maybe_free(struct xsd *d, struct xs_dom *dom)
{
    if (dom->domid == 0 || dom->introduced || dom->conns > 0)
        return;
    for (struct xs_dom **pp = &d->doms; *pp != NULL; pp = &(*pp)->next)
        if (*pp == dom) {
            *pp = dom->next;
            free(dom);
            return;
        }
}

int xsd_init(struct xsd *d, const struct xsd_ops *ops, void *env)
{
    struct xs_dom *dom0;

    d->ops = ops;
    d->env = env;
    for (int i = 0; i < XSQ_COUNT; i++)
        d->quota[i] = xs_quota_defs[i].dflt;
    for (int i = 0; i < XSS_COUNT; i++)
        d->soft[i] = xs_soft_defs[i].dflt;
    d->out_max_dom = XS_OUT_MAX_DOM;
    d->out_max_dom0 = XS_OUT_MAX_DOM0;
    if ((d->st = xs_store_new()) == NULL || (dom0 = dom_new(d, 0)) == NULL) {
        xsd_fini(d);
        errno = ENOMEM;
        return -1;
    }
    dom0->introduced = true;
    return 0;
}

void xsd_fini(struct xsd *d)
{
    struct xs_dom *dom;

    for (struct xs_conn *c = d->conns; c != NULL; c = c->next)
        c->dead = true; /* none is woken for the others' going */
    while (d->conns != NULL)
        xsd_conn_free(d, d->conns);
    while ((dom = d->doms) != NULL) {
        d->doms = dom->next;
        free(dom);
    }
    xs_store_free(d->st);
    d->st = NULL;
}

static int quota_set(unsigned int *q, const struct xs_quota_def *defs, int n, const char *name,
                     const char *val)
{
    char *end;
    unsigned long v = strtoul(val, &end, 10);

    if (val[0] < '0' || val[0] > '9' || *end != '\0' || v < 1 || v > 0x7fffffff)
        return EINVAL;
    for (int i = 0; i < n; i++)
        if (strcmp(name, defs[i].name) == 0) {
            q[i] = (unsigned int)v;
            return 0;
        }
    return EINVAL;
}

int xsd_quota_set(struct xsd *d, const char *name, const char *val)
{
    return quota_set(d->quota, xs_quota_defs, XSQ_COUNT, name, val);
}

int xsd_soft_set(struct xsd *d, const char *name, const char *val)
{
    return quota_set(d->soft, xs_soft_defs, XSS_COUNT, name, val);
}

uint64_t xsd_dom_mem(const struct xsd *d, const struct xs_dom *dom)
{
    return d->st->mem[dom->domid] + dom->watch_mem;
}

/* ---- connections ---- */

void xsd_who(const struct xs_conn *c, const unsigned int *quota, struct xs_who *w)
{
    w->domid = c->dom->domid;
    w->target = c->dom->target;
    w->priv = c->dom->domid == 0;
    w->quota = quota;
}

struct xs_conn *xsd_conn_new(struct xsd *d, int fd, uint16_t domid)
{
    struct xs_dom *dom = xsd_dom_find(d, domid);
    struct xs_conn *c;

    if (dom == NULL || !dom->introduced) {
        errno = EACCES;
        return NULL;
    }
    if (domid != 0 && dom->conns >= d->quota[XSQ_CONNECTIONS]) {
        errno = EDQUOT;
        return NULL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->fd = fd;
    c->id = ++d->next_conn_id;
    c->dom = dom;
    c->out_tail = &c->out;
    c->next_txid = 1;
    c->next = d->conns;
    d->conns = c;
    dom->conns++;
    return c;
}

void xsd_conn_kill(struct xsd *d, struct xs_conn *c, const char *why)
{
    if (c->dead)
        return;
    xsd_log(d, "connection %llu (domain %u) closed: %s", (unsigned long long)c->id, c->dom->domid,
            why);
    c->dead = true;
}

static void txn_end(struct xs_conn *c, struct xs_txn *t)
{
    for (struct xs_txn **pp = &c->txns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    c->dom->txns--;
    xs_txn_free(t);
}

static bool dom_over_outstanding(const struct xsd *d, const struct xs_dom *dom)
{
    return dom->domid != 0 && dom->outstanding >= d->quota[XSQ_OUTSTANDING];
}

/* The domain went under its outstanding quota: each of its connections may read on. */
static void dom_resume_reading(struct xsd *d, const struct xs_dom *dom, const struct xs_conn *but)
{
    for (struct xs_conn *o = d->conns; o != NULL; o = o->next)
        if (o != but && o->dom == dom && !o->dead)
            d->ops->conn_output(d, o);
}

void xsd_conn_free(struct xsd *d, struct xs_conn *c)
{
    bool was_over = dom_over_outstanding(d, c->dom);
    struct xs_out *o;

    for (struct xs_conn **pp = &d->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    xs_watch_reset(d, c);
    while (c->txns != NULL)
        txn_end(c, c->txns);
    while ((o = c->out) != NULL) {
        c->out = o->next;
        if (o->reply)
            c->dom->outstanding--;
        free(o);
    }
    c->dom->conns--;
    /*
     * Its unread replies counted against the whole domain: a connection of
     * the domain that asked while it was over is waiting to be read again
     * (no event of its own would wake it).
     */
    if (was_over && !dom_over_outstanding(d, c->dom))
        dom_resume_reading(d, c->dom, c);
    dom_maybe_free(d, c->dom);
    free(c);
}

bool xsd_conn_may_read(const struct xsd *d, const struct xs_conn *c)
{
    return !c->dead && !dom_over_outstanding(d, c->dom);
}

size_t xsd_conn_want(const struct xs_conn *c)
{
    if (c->hdr_got < sizeof(c->hdr))
        return sizeof(c->hdr) - c->hdr_got;
    return c->hdr.len - c->body_got;
}

int xsd_queue(struct xsd *d, struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
              const void *p, size_t len, bool reply)
{
    struct xsd_sockmsg h = {type, req_id, tx_id, (uint32_t)len};
    size_t max = c->dom->domid == 0 ? d->out_max_dom0 : d->out_max_dom;
    struct xs_out *o;

    if (c->dead)
        return EPIPE;
    /* A peer that does not read what it asked for loses its connection, not our memory. */
    if (c->out_bytes + sizeof(h) + len > max) {
        xsd_conn_kill(d, c, "it does not read its replies and watch events");
        return EPIPE;
    }
    if ((o = malloc(sizeof(*o) + sizeof(h) + len)) == NULL) {
        xsd_conn_kill(d, c, "out of memory for its reply");
        return ENOMEM;
    }
    o->next = NULL;
    o->len = sizeof(h) + len;
    o->reply = reply;
    memcpy(o->data, &h, sizeof(h));
    if (len > 0)
        memcpy(o->data + sizeof(h), p, len);
    *c->out_tail = o;
    c->out_tail = &o->next;
    c->out_bytes += o->len;
    if (reply)
        c->dom->outstanding++;
    d->ops->conn_output(d, c);
    return 0;
}

void xsd_conn_wrote(struct xsd *d, struct xs_conn *c, size_t n)
{
    bool was_blocked = !xsd_conn_may_read(d, c);
    struct xs_out *o;

    c->out_off += n;
    c->out_bytes -= n;
    while ((o = c->out) != NULL && c->out_off >= o->len) {
        c->out_off -= o->len;
        c->out = o->next;
        if (c->out == NULL)
            c->out_tail = &c->out;
        if (o->reply)
            c->dom->outstanding--;
        free(o);
    }
    /* Under its quota again: every connection of the domain may read on. */
    if (was_blocked && xsd_conn_may_read(d, c))
        dom_resume_reading(d, c->dom, c);
}

static int reply(struct xs_req *r, const void *p, size_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX)
        return E2BIG;
    xsd_queue(r->d, r->c, r->hdr->type, r->hdr->req_id, r->hdr->tx_id, p, len, true);
    return 0;
}

static int reply_str(struct xs_req *r, const char *s)
{
    return reply(r, s, strlen(s) + 1);
}

static void reply_error(struct xs_req *r, int rc)
{
    const char *name = "EINVAL"; /* as xenstored: an errno with no name of its own */

    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == rc)
            name = xsd_errors[i].errstring;
    xsd_queue(r->d, r->c, XS_ERROR, r->hdr->req_id, r->hdr->tx_id, name, strlen(name) + 1, true);
}

/* ---- arguments ---- */

/* The payload as exactly one NUL-terminated string, or NULL. */
static const char *onearg(const struct xs_req *r)
{
    if (r->len == 0 || r->p[r->len - 1] != '\0' || strlen(r->p) != r->len - 1)
        return NULL;
    return r->p;
}

/* Up to max NUL-terminated strings from the payload; returns how many are complete. */
static int strings(const struct xs_req *r, const char **v, int max)
{
    size_t off = 0;
    int n = 0;

    while (n < max && off < r->len) {
        const char *nul = memchr(r->p + off, '\0', r->len - off);
        if (nul == NULL)
            break;
        v[n++] = r->p + off;
        off = (size_t)(nul - r->p) + 1;
    }
    return n;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (*s == '\0')
        return EINVAL;
    for (; *s; s++)
        if (*s < '0' || *s > '9' || (v = v * 10 + (unsigned long)(*s - '0')) > max)
            return EINVAL;
    *out = v;
    return 0;
}

static int parse_domid(const char *s, bool zero_ok, uint16_t *domid)
{
    unsigned long v;

    if (s == NULL || parse_uint(s, 0xffff, &v) != 0 || (!zero_ok && v == 0))
        return EINVAL;
    *domid = (uint16_t)v;
    return 0;
}

static int canon(struct xs_req *r, const char *in, bool special, char *out)
{
    if (in == NULL)
        return EINVAL;
    return xs_path_canonical(&r->who, in, special, out, XENSTORE_ABS_PATH_MAX + 1);
}

/* ---- the store's messages ---- */

static int h_read(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *n;
    int rc;

    if ((rc = canon(r, onearg(r), false, path)) != 0 ||
        (rc = xs_op_read(&r->view, &r->who, path, &n)) != 0)
        return rc;
    return reply(r, n->value, n->vlen);
}

static int h_write(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const char *nul = memchr(r->p, '\0', r->len);
    int rc;

    if (nul == NULL)
        return EINVAL;
    if ((rc = canon(r, r->p, false, path)) != 0 ||
        (rc = xs_op_write(&r->view, &r->who, path, nul + 1, r->len - (size_t)(nul + 1 - r->p))) !=
            0)
        return rc;
    return reply_str(r, "OK");
}

static int h_mkdir(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc;

    if ((rc = canon(r, onearg(r), false, path)) != 0 ||
        (rc = xs_op_mkdir(&r->view, &r->who, path)) != 0)
        return rc;
    return reply_str(r, "OK");
}

static int h_rm(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    int rc;

    if ((rc = canon(r, onearg(r), false, path)) != 0 ||
        (rc = xs_op_rm(&r->view, &r->who, path)) != 0)
        return rc;
    return reply_str(r, "OK");
}

static int h_directory(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const struct xs_node *n;
    int rc;

    if ((rc = canon(r, onearg(r), false, path)) != 0 ||
        (rc = xs_op_read(&r->view, &r->who, path, &n)) != 0)
        return rc;
    return reply(r, n->children, n->clen); /* E2BIG when too long: the client asks by parts */
}

/*
 * DIRECTORY_PART path|offset| -> gencnt|names from offset|, and one more
 * empty string when the list ends in this reply (libxenstore stops there).
 */
static int h_directory_part(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1], buf[XENSTORE_PAYLOAD_MAX];
    const struct xs_node *n;
    const char *v[2];
    unsigned long off;
    size_t len, end;
    int rc;

    if (strings(r, v, 2) != 2 || parse_uint(v[1], 0xffffffffu, &off) != 0)
        return EINVAL;
    if ((rc = canon(r, v[0], false, path)) != 0 ||
        (rc = xs_op_read(&r->view, &r->who, path, &n)) != 0)
        return rc;
    if (off > n->clen)
        return EINVAL;
    len = (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)n->gen) + 1;
    for (end = off; end < n->clen;) {
        size_t l = strlen(n->children + end) + 1;
        if (len + (end - off) + l + 1 > sizeof(buf))
            break;
        end += l;
    }
    /* A node without children has no children buffer at all: nothing to copy. */
    if (end > off)
        memcpy(buf + len, n->children + off, end - off);
    len += end - off;
    if (end == n->clen)
        buf[len++] = '\0';
    return reply(r, buf, len);
}

static int h_get_perms(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1], buf[XENSTORE_PAYLOAD_MAX + 16];
    const struct xs_perm *p;
    size_t len = 0;
    uint16_t np;
    int rc;

    if ((rc = canon(r, onearg(r), true, path)) != 0 ||
        (rc = xs_op_get_perms(&r->view, &r->who, path, &p, &np)) != 0)
        return rc;
    for (uint16_t i = 0; i < np && len < XENSTORE_PAYLOAD_MAX; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%c%u", "nrwb"[p[i].perm & 3],
                                p[i].domid) +
               1;
    return reply(r, buf, len);
}

static int h_set_perms(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const char *v[XENSTORE_PAYLOAD_MAX / 2 + 1];
    struct xs_perm p[XENSTORE_PAYLOAD_MAX / 2];
    int n, rc;

    if (r->len == 0 || r->p[r->len - 1] != '\0')
        return EINVAL;
    if ((n = strings(r, v, (int)(sizeof(v) / sizeof(v[0])))) < 2)
        return EINVAL;
    for (int i = 1; i < n; i++)
        if (xs_perm_parse(v[i], &p[i - 1]) != 0)
            return EINVAL;
    if ((rc = canon(r, v[0], true, path)) != 0 ||
        (rc = xs_op_set_perms(&r->view, &r->who, path, p, (uint16_t)(n - 1))) != 0)
        return rc;
    return reply_str(r, "OK");
}

/* ---- watches and transactions ---- */

static int h_watch(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const char *v[2];
    int rc;

    if (strings(r, v, 2) != 2)
        return EINVAL;
    if ((rc = canon(r, v[0], true, path)) != 0 ||
        (rc = xs_watch_add(r->d, r->c, path, v[1], v[0][0] != '/' && v[0][0] != '@')) != 0)
        return rc;
    reply_str(r, "OK");
    xs_watch_initial(r->d, r->c, path, v[1]);
    return 0;
}

static int h_unwatch(struct xs_req *r)
{
    char path[XENSTORE_ABS_PATH_MAX + 1];
    const char *v[2];
    int rc;

    if (strings(r, v, 2) != 2)
        return EINVAL;
    if ((rc = canon(r, v[0], true, path)) != 0 || (rc = xs_watch_del(r->d, r->c, path, v[1])) != 0)
        return rc;
    return reply_str(r, "OK");
}

static int h_reset_watches(struct xs_req *r)
{
    xs_watch_reset(r->d, r->c);
    while (r->c->txns != NULL)
        txn_end(r->c, r->c->txns);
    return reply_str(r, "OK");
}

static struct xs_txn *txn_find(struct xs_conn *c, uint32_t id)
{
    for (struct xs_txn *t = c->txns; t != NULL; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static int h_txn_start(struct xs_req *r)
{
    char buf[16];
    struct xs_txn *t;
    uint32_t id;

    if (r->txn != NULL)
        return EBUSY; /* no nesting */
    if (!r->who.priv && r->c->dom->txns >= r->d->quota[XSQ_TRANSACTIONS])
        return ENOSPC;
    do
        id = r->c->next_txid++;
    while (id == 0 || txn_find(r->c, id) != NULL);
    if ((t = xs_txn_new(id, &r->who)) == NULL)
        return ENOMEM;
    t->next = r->c->txns;
    r->c->txns = t;
    r->c->dom->txns++;
    snprintf(buf, sizeof(buf), "%u", id);
    return reply_str(r, buf);
}

/* The transaction ends whatever the answer: committed, discarded, or lost to a conflict. */
static int h_txn_end(struct xs_req *r)
{
    const char *arg = onearg(r);
    int rc = 0;

    if (r->txn == NULL)
        return ENOENT;
    if (arg == NULL || (strcmp(arg, "T") != 0 && strcmp(arg, "F") != 0))
        return EINVAL;
    if (arg[0] == 'T')
        rc = xs_txn_commit(r->txn, r->d->st, &r->who, xs_watch_changed, r->d);
    txn_end(r->c, r->txn);
    r->txn = NULL;
    return rc != 0 ? rc : reply_str(r, "OK");
}

/* ---- domains ---- */

static void dom_release(struct xsd *d, struct xs_dom *dom, const char *why)
{
    dom->introduced = false;
    dom->shutdown = false;
    dom->target = XS_NO_TARGET;
    for (struct xs_conn *c = d->conns; c != NULL; c = c->next)
        if (c->dom == dom)
            xsd_conn_kill(d, c, why);
    xsd_log(d, "domain %u released: %s", dom->domid, why);
    xs_watch_fire_special(d, "@releaseDomain");
    dom_maybe_free(d, dom);
}

static int h_introduce(struct xs_req *r)
{
    const char *v[3];
    unsigned long long mfn;
    unsigned long port;
    struct xs_dom *dom;
    uint16_t domid;
    char *end;

    if (strings(r, v, 3) != 3 || parse_domid(v[0], false, &domid) != 0 || domid > XS_DOMID_MAX ||
        parse_uint(v[2], 0xffffffffu, &port) != 0 || port == 0)
        return EINVAL;
    /* xenstore.txt: the mfn is signed decimal; the simulation only records it. */
    errno = 0;
    mfn = strtoull(v[1], &end, 10);
    if (v[1][0] == '\0' || *end != '\0' || errno != 0)
        return EINVAL;
    if (!r->d->ops->domain_exists(r->d, domid))
        return EINVAL; /* xenstored cannot map a page of a domain that does not exist */
    if ((dom = xsd_dom_find(r->d, domid)) == NULL && (dom = dom_new(r->d, domid)) == NULL)
        return ENOMEM;
    dom->mfn = mfn;
    dom->port = (uint32_t)port;
    if (!dom->introduced) {
        dom->introduced = true;
        dom->shutdown = false;
        xsd_log(r->d, "domain %u introduced (mfn %llu, port %lu)", domid, mfn, port);
        xs_watch_fire_special(r->d, "@introduceDomain");
    }
    return reply_str(r, "OK");
}

static int onearg_dom(struct xs_req *r, struct xs_dom **dom)
{
    uint16_t domid;

    if (parse_domid(onearg(r), false, &domid) != 0)
        return EINVAL;
    *dom = xsd_dom_find(r->d, domid);
    return *dom != NULL && (*dom)->introduced ? 0 : ENOENT;
}

static int h_release(struct xs_req *r)
{
    struct xs_dom *dom;
    int rc;

    if ((rc = onearg_dom(r, &dom)) != 0)
        return rc;
    dom_release(r->d, dom, "RELEASE by dom0");
    return reply_str(r, "OK");
}

static int h_resume(struct xs_req *r)
{
    struct xs_dom *dom;
    int rc;

    if ((rc = onearg_dom(r, &dom)) != 0)
        return rc;
    dom->shutdown = false;
    return reply_str(r, "OK");
}

static int h_is_introduced(struct xs_req *r)
{
    struct xs_dom *dom;
    uint16_t domid;

    if (parse_domid(onearg(r), true, &domid) != 0)
        return EINVAL;
    dom = xsd_dom_find(r->d, domid);
    return reply_str(r, dom != NULL && dom->introduced ? "T" : "F");
}

static int h_get_domain_path(struct xs_req *r)
{
    char buf[32];
    uint16_t domid;

    if (parse_domid(onearg(r), true, &domid) != 0)
        return EINVAL;
    snprintf(buf, sizeof(buf), XS_LOCAL_DOMAIN "%u", domid);
    return reply_str(r, buf);
}

static int h_set_target(struct xs_req *r)
{
    struct xs_dom *dom, *tdom;
    uint16_t domid, tdomid;
    const char *v[2];

    if (strings(r, v, 2) != 2 || parse_domid(v[0], false, &domid) != 0 ||
        parse_domid(v[1], false, &tdomid) != 0)
        return EINVAL;
    dom = xsd_dom_find(r->d, domid);
    tdom = xsd_dom_find(r->d, tdomid);
    if (dom == NULL || !dom->introduced || tdom == NULL || !tdom->introduced)
        return ENOENT;
    dom->target = tdomid;
    xsd_log(r->d, "domain %u now targets domain %u", domid, tdomid);
    return reply_str(r, "OK");
}

void xsd_domain_died(struct xsd *d, uint16_t domid, bool gone)
{
    struct xs_dom *dom = xsd_dom_find(d, domid);
    struct xs_view v = {d->st, NULL, xs_watch_changed, d};

    if (domid == 0)
        return;
    if (!gone) {
        /* Shut down: @releaseDomain once, until RESUME (xenstore.txt). */
        if (dom != NULL && dom->introduced && !dom->shutdown) {
            dom->shutdown = true;
            xsd_log(d, "domain %u shut down", domid);
            xs_watch_fire_special(d, "@releaseDomain");
        }
        return;
    }
    if (dom != NULL && dom->introduced)
        dom_release(d, dom, "destroyed");
    xs_store_purge_domain(&v, domid);
}

/* ---- CONTROL ---- */

static int ctl_quota_show(struct xs_req *r, const unsigned int *q, const struct xs_quota_def *defs,
                          int n)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "Quota settings:\n");

    for (int i = 0; i < n && len < sizeof(buf); i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%-17s: %8u %s\n", defs[i].name,
                                q[i], defs[i].descr);
    return reply_str(r, buf);
}

static int ctl_quota_domain(struct xs_req *r, const char *arg)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    struct xs_dom *dom;
    uint16_t domid;

    if (parse_domid(arg, true, &domid) != 0)
        return EINVAL;
    if ((dom = xsd_dom_find(r->d, domid)) == NULL || !dom->introduced)
        return ENOENT;
    snprintf(buf, sizeof(buf),
             "Domain %u:\n%-17s: %8u\n%-17s: %8u\n%-17s: %8u\n%-17s: %8u\n%-17s: %8u\n"
             "%-17s: %8llu\n",
             domid, "nodes", r->d->st->owned[domid], "watches", dom->watches, "transactions",
             dom->txns, "outstanding", dom->outstanding, "connections", dom->conns, "memory",
             (unsigned long long)xsd_dom_mem(r->d, dom));
    return reply_str(r, buf);
}

static int ctl_quota(struct xs_req *r, const char **v, int n)
{
    int rc;

    if (n == 0)
        return ctl_quota_show(r, r->d->quota, xs_quota_defs, XSQ_COUNT);
    if (strcmp(v[0], "set") == 0) {
        if (n != 3 || (rc = xsd_quota_set(r->d, v[1], v[2])) != 0)
            return EINVAL;
        xsd_log(r->d, "quota %s set to %s by CONTROL", v[1], v[2]);
        return reply_str(r, "OK");
    }
    return n == 1 ? ctl_quota_domain(r, v[0]) : EINVAL;
}

/* As 4.17's: show and set; a domain's usage is shown by "quota <domid>". */
static int ctl_quota_soft(struct xs_req *r, const char **v, int n)
{
    if (n == 0)
        return ctl_quota_show(r, r->d->soft, xs_soft_defs, XSS_COUNT);
    if (n != 3 || strcmp(v[0], "set") != 0 || xsd_soft_set(r->d, v[1], v[2]) != 0)
        return EINVAL;
    xsd_log(r->d, "soft quota %s set to %s by CONTROL", v[1], v[2]);
    return reply_str(r, "OK");
}

static int ctl_log(struct xs_req *r, const char **v, int n)
{
    if (n != 1 || (strcmp(v[0], "on") != 0 && strcmp(v[0], "off") != 0))
        return EINVAL;
    r->d->trace = strcmp(v[0], "on") == 0;
    xsd_log(r->d, "request tracing %s", v[0]);
    return reply_str(r, "OK");
}

static int ctl_logfile(struct xs_req *r, const char **v, int n)
{
    FILE *f;

    if (n != 1 || v[0][0] != '/')
        return EINVAL;
    if ((f = fopen(v[0], "ae")) == NULL)
        return EIO;
    xsd_log(r->d, "logging to %s from now on", v[0]);
    if (r->d->log != NULL)
        fclose(r->d->log);
    r->d->log = f;
    snprintf(r->d->log_path, sizeof(r->d->log_path), "%s", v[0]);
    return reply_str(r, "OK");
}

static int ctl_print(struct xs_req *r, const char **v, int n)
{
    if (n != 1)
        return EINVAL;
    xsd_log(r->d, "print: %s", v[0]);
    return reply_str(r, "OK");
}

/* Every node's parent lists it, and every listed child exists. */
static int ctl_check(struct xs_req *r, const char **v, int n)
{
    const struct xs_store *st = r->d->st;
    char child[XENSTORE_ABS_PATH_MAX * 2 + 2];
    unsigned long bad = 0;

    (void)v;
    if (n != 0)
        return EINVAL;
    for (size_t i = 0; i < st->nodes.nb; i++)
        for (const struct xs_hent *e = st->nodes.b[i]; e != NULL; e = e->next) {
            const struct xs_node *node = (const struct xs_node *)e;
            for (uint32_t off = 0; off < node->clen;
                 off += (uint32_t)strlen(node->children + off) + 1) {
                snprintf(child, sizeof(child), "%s%s%s", node->path,
                         strcmp(node->path, "/") ? "/" : "", node->children + off);
                bad += xs_store_get(st, child) == NULL;
            }
        }
    xsd_log(r->d, "check: %zu nodes, %lu missing children", xs_store_count(st), bad);
    return bad == 0 ? reply_str(r, "OK") : EIO;
}

static int ctl_memreport(struct xs_req *r, const char **v, int n)
{
    (void)v;
    if (n != 0)
        return EINVAL;
    xsd_log(r->d, "memreport: %zu nodes, generation %llu", xs_store_count(r->d->st),
            (unsigned long long)r->d->st->gen);
    return reply_str(r, "OK");
}

static int ctl_help(struct xs_req *r, const char **v, int n);

static const struct {
    const char *name;
    int (*fn)(struct xs_req *r, const char **v, int n);
    const char *args;
} controls[] = {
    {"check", ctl_check, ""},
    {"log", ctl_log, "on|off"},
    {"logfile", ctl_logfile, "<file>"},
    {"memreport", ctl_memreport, ""},
    {"print", ctl_print, "<string>"},
    {"quota", ctl_quota, "[set <name> <val>|<domid>]"},
    {"quota-soft", ctl_quota_soft, "[set <name> <val>]"},
    {"help", ctl_help, ""},
};

static int ctl_help(struct xs_req *r, const char **v, int n)
{
    char buf[1024];
    size_t len = 0;

    (void)v;
    (void)n;
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%-15s %s\n", controls[i].name,
                                controls[i].args);
    return reply_str(r, buf);
}

static int h_control(struct xs_req *r)
{
    const char *v[64];
    int n = strings(r, v, 64);

    if (n == 0)
        return EINVAL;
    for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
        if (strcmp(v[0], controls[i].name) == 0)
            return controls[i].fn(r, v + 1, n - 1);
    return EINVAL;
}

/* ---- dispatch ---- */

#define XSH_PRIV  1u /* dom0 only: others get EACCES */
#define XSH_GROWS 2u /* may grow the domain's memory: ENOMEM over the memory quota */

static const struct {
    xs_handler_fn fn;
    unsigned int flags;
    const char *name;
} handlers[XS_TYPE_COUNT] = {
    [XS_CONTROL] = {h_control, XSH_PRIV, "CONTROL"},
    [XS_DIRECTORY] = {h_directory, 0, "DIRECTORY"},
    [XS_READ] = {h_read, 0, "READ"},
    [XS_GET_PERMS] = {h_get_perms, 0, "GET_PERMS"},
    [XS_WATCH] = {h_watch, XSH_GROWS, "WATCH"},
    [XS_UNWATCH] = {h_unwatch, 0, "UNWATCH"},
    [XS_TRANSACTION_START] = {h_txn_start, 0, "TRANSACTION_START"},
    [XS_TRANSACTION_END] = {h_txn_end, 0, "TRANSACTION_END"},
    [XS_INTRODUCE] = {h_introduce, XSH_PRIV, "INTRODUCE"},
    [XS_RELEASE] = {h_release, XSH_PRIV, "RELEASE"},
    [XS_GET_DOMAIN_PATH] = {h_get_domain_path, 0, "GET_DOMAIN_PATH"},
    [XS_WRITE] = {h_write, XSH_GROWS, "WRITE"},
    [XS_MKDIR] = {h_mkdir, XSH_GROWS, "MKDIR"},
    [XS_RM] = {h_rm, 0, "RM"},
    [XS_SET_PERMS] = {h_set_perms, XSH_GROWS, "SET_PERMS"},
    [XS_IS_DOMAIN_INTRODUCED] = {h_is_introduced, 0, "IS_DOMAIN_INTRODUCED"},
    [XS_RESUME] = {h_resume, XSH_PRIV, "RESUME"},
    [XS_SET_TARGET] = {h_set_target, XSH_PRIV, "SET_TARGET"},
    [XS_RESET_WATCHES] = {h_reset_watches, 0, "RESET_WATCHES"},
    [XS_DIRECTORY_PART] = {h_directory_part, 0, "DIRECTORY_PART"},
};

/* The soft quota only speaks: once when a domain crosses it, once when it is back under. */
static void mem_watermarks(struct xsd *d, struct xs_dom *dom)
{
    uint64_t mem = xsd_dom_mem(d, dom);

    if (dom->hard_logged && mem < d->quota[XSQ_MEMORY]) {
        dom->hard_logged = false;
        xsd_log(d, "domain %u below hard memory quota again", dom->domid);
    }
    if (!dom->soft_logged && mem >= d->soft[XSS_MEMORY]) {
        dom->soft_logged = true;
        xsd_log(d, "domain %u exceeds soft memory quota (%llu bytes, soft quota %u)", dom->domid,
                (unsigned long long)mem, d->soft[XSS_MEMORY]);
    } else if (dom->soft_logged && mem < d->soft[XSS_MEMORY]) {
        dom->soft_logged = false;
        xsd_log(d, "domain %u below soft memory quota again", dom->domid);
    }
}

static void serve(struct xsd *d, struct xs_conn *c)
{
    struct xs_req r = {.d = d, .c = c, .hdr = &c->hdr, .p = c->body, .len = c->hdr.len};
    uint32_t type = c->hdr.type;
    int rc;

    c->body[c->hdr.len] = '\0'; /* a guard for string functions; len still bounds the payload */
    xsd_who(c, d->quota, &r.who);
    if (d->trace)
        xsd_log(d, "domain %u conn %llu: type %u req %u tx %u len %u", c->dom->domid,
                (unsigned long long)c->id, type, c->hdr.req_id, c->hdr.tx_id, c->hdr.len);
    if (type >= XS_TYPE_COUNT || handlers[type].fn == NULL) {
        rc = ENOSYS;
    } else if (c->hdr.tx_id != 0 && (r.txn = txn_find(c, c->hdr.tx_id)) == NULL) {
        rc = ENOENT;
    } else if ((handlers[type].flags & XSH_PRIV) && !r.who.priv) {
        rc = EACCES;
    } else if ((handlers[type].flags & XSH_GROWS) && !r.who.priv &&
               xsd_dom_mem(d, c->dom) >= d->quota[XSQ_MEMORY]) {
        /* Checked before, not during: one request overshoots by at most a node. */
        if (!c->dom->hard_logged)
            xsd_log(d, "domain %u exceeds hard memory quota (%llu bytes, quota %u): refusing "
                       "what would grow it", c->dom->domid,
                    (unsigned long long)xsd_dom_mem(d, c->dom), d->quota[XSQ_MEMORY]);
        c->dom->hard_logged = true;
        rc = ENOMEM;
    } else {
        r.view = (struct xs_view){d->st, r.txn, xs_watch_changed, d};
        rc = handlers[type].fn(&r);
    }
    if (rc != 0)
        reply_error(&r, rc);
    if (!r.who.priv)
        mem_watermarks(d, c->dom);
}

size_t xsd_conn_input(struct xsd *d, struct xs_conn *c, const uint8_t *p, size_t n)
{
    size_t used = 0;

    while (used < n && xsd_conn_may_read(d, c)) {
        size_t k = xsd_conn_want(c) < n - used ? xsd_conn_want(c) : n - used;
        if (c->hdr_got < sizeof(c->hdr)) {
            memcpy((uint8_t *)&c->hdr + c->hdr_got, p + used, k);
            c->hdr_got += k;
            if (c->hdr_got == sizeof(c->hdr) && c->hdr.len > XENSTORE_PAYLOAD_MAX) {
                char why[96];
                snprintf(why, sizeof(why), "payload of %u bytes, over %u", c->hdr.len,
                         XENSTORE_PAYLOAD_MAX);
                xsd_conn_kill(d, c, why);
                return used + k;
            }
        } else {
            memcpy(c->body + c->body_got, p + used, k);
            c->body_got += k;
        }
        used += k;
        if (c->hdr_got == sizeof(c->hdr) && c->body_got == c->hdr.len) {
            serve(d, c);
            c->hdr_got = c->body_got = 0;
        }
    }
    return used;
}
