/*
 * fuzz_xs_proto.c - bulkhead-xenstored's message parser and every handler,
 * against an in-memory daemon (libbhxs without sockets): dom0 and three
 * domains' connections, fed bytes in any pieces and any order.
 *
 * Input: a script of steps.  Each step's first byte picks the connection
 * (low 2 bits) and the action (the rest): raw bytes, a well-framed message
 * (type, transaction id, payload from the input), a domain's death, a
 * reader that stops or starts reading its replies, or a new connection.
 * Setup introduces domains 1 and 3 from dom0 (domain 5 exists but is never
 * introduced; even domids do not exist).
 *
 * Invariants, after every step: no crash or leak (ASan); every child a node
 * lists exists and every node but / is listed by its parent; the nodes
 * counted per owner add up to the nodes there are; a connection's queued
 * bytes add up; a domain's counters match its connections'.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xenstored.h"

struct fz {
    struct xsd d;
    struct xs_conn *c[4];
    uint16_t domid[4];
    bool reading[4];
};

static bool fz_domain_exists(struct xsd *d, uint16_t domid)
{
    (void)d;
    return domid % 2 == 1 && domid < 8;
}

/* A reader: it takes every byte queued to it at once, unless it stopped reading. */
static void fz_output(struct xsd *d, struct xs_conn *c)
{
    struct fz *f = d->env;

    for (int i = 0; i < 4; i++)
        if (f->c[i] == c && f->reading[i] && c->out_bytes > 0)
            xsd_conn_wrote(d, c, c->out_bytes);
}

static const struct xsd_ops fz_ops = {.domain_exists = fz_domain_exists, .conn_output = fz_output};

static void feed(struct fz *f, int i, const uint8_t *p, size_t n)
{
    if (f->c[i] != NULL)
        xsd_conn_input(&f->d, f->c[i], p, n);
}

static void send_msg(struct fz *f, int i, uint32_t type, uint32_t tx, const void *p, size_t n)
{
    struct xsd_sockmsg h = {type, 1, tx, (uint32_t)n};

    feed(f, i, (const uint8_t *)&h, sizeof(h));
    feed(f, i, p, n);
}

static void reconnect(struct fz *f, int i)
{
    if (f->c[i] != NULL)
        xsd_conn_free(&f->d, f->c[i]);
    f->c[i] = xsd_conn_new(&f->d, -1, f->domid[i]);
    f->reading[i] = true;
}

static bool has_child(const struct xs_node *n, const char *leaf)
{
    for (uint32_t off = 0; off < n->clen; off += (uint32_t)strlen(n->children + off) + 1)
        if (strcmp(n->children + off, leaf) == 0)
            return true;
    return false;
}

static void check_store(const struct xs_store *st)
{
    char child[2 * XENSTORE_ABS_PATH_MAX + 2];
    unsigned long owned = 0;

    for (size_t i = 0; i < st->nodes.nb; i++)
        for (const struct xs_hent *e = st->nodes.b[i]; e != NULL; e = e->next) {
            const struct xs_node *n = (const struct xs_node *)e;
            FUZZ_ASSERT(n->nperms >= 1);
            for (uint32_t off = 0; off < n->clen; off += (uint32_t)strlen(n->children + off) + 1) {
                snprintf(child, sizeof(child), "%s%s%s", n->path, strcmp(n->path, "/") ? "/" : "",
                         n->children + off);
                FUZZ_ASSERT(xs_store_get(st, child) != NULL);
            }
            if (strcmp(n->path, "/") != 0) {
                const char *slash = strrchr(n->path, '/');
                char parent[XENSTORE_ABS_PATH_MAX + 1];
                const struct xs_node *pn;
                snprintf(parent, sizeof(parent), "%.*s",
                         (int)(slash == n->path ? 1 : slash - n->path), n->path);
                FUZZ_ASSERT((pn = xs_store_get(st, parent)) != NULL);
                FUZZ_ASSERT(has_child(pn, slash + 1));
            }
        }
    for (unsigned int d = 0; d < 0x10000; d++)
        owned += st->owned[d];
    FUZZ_ASSERT(owned == xs_store_count(st));
}

static void check_conns(struct fz *f)
{
    for (struct xs_dom *dom = f->d.doms; dom != NULL; dom = dom->next) {
        unsigned int conns = 0, watches = 0, txns = 0, outstanding = 0;
        for (struct xs_conn *c = f->d.conns; c != NULL; c = c->next) {
            size_t bytes = 0;
            if (c->dom != dom)
                continue;
            conns++;
            for (struct xs_watch *w = c->watches; w != NULL; w = w->next)
                watches++;
            for (struct xs_txn *t = c->txns; t != NULL; t = t->next)
                txns++;
            for (struct xs_out *o = c->out; o != NULL; o = o->next) {
                bytes += o->len;
                outstanding += o->reply;
            }
            FUZZ_ASSERT(bytes == c->out_bytes + c->out_off);
        }
        FUZZ_ASSERT(conns == dom->conns && watches == dom->watches && txns == dom->txns);
        FUZZ_ASSERT(outstanding == dom->outstanding);
    }
}

static void step(struct fz *f, struct fuzz_in *in)
{
    uint8_t op = fuzz_u8(in), len = fuzz_u8(in);
    int i = op & 3;
    size_t n = len < in->n ? len : in->n;

    switch ((op >> 2) % 8) {
    case 0: /* raw bytes, framing and all */
        feed(f, i, in->p, n);
        break;
    case 1: /* a framed message */
    case 2:
    case 3: {
        uint32_t type = fuzz_u8(in) % (XS_TYPE_COUNT + 2), tx = fuzz_u8(in) % 4;
        n = len < in->n ? len : in->n;
        send_msg(f, i, type, tx, in->p, n);
        break;
    }
    case 4: /* a domain dies */
        xsd_domain_died(&f->d, f->domid[i], len & 1);
        n = 0;
        break;
    case 5: /* a reader stops, or starts again and takes what waits */
        f->reading[i] = !f->reading[i];
        if (f->c[i] != NULL)
            fz_output(&f->d, f->c[i]);
        n = 0;
        break;
    case 6:
        reconnect(f, i);
        n = 0;
        break;
    case 7: /* a quota changes */
    {
        char val[8];
        snprintf(val, sizeof(val), "%u", len % 40);
        xsd_quota_set(&f->d, xs_quota_defs[op % XSQ_COUNT].name, val);
        n = 0;
        break;
    }
    }
    in->p += n;
    in->n -= n;
    for (int k = 0; k < 4; k++)
        if (f->c[k] != NULL && f->c[k]->dead) {
            xsd_conn_free(&f->d, f->c[k]);
            f->c[k] = NULL;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz f;
    struct fuzz_in in = {data, size};
    unsigned int steps = 0;

    memset(&f, 0, sizeof(f));
    FUZZ_ASSERT(xsd_init(&f.d, &fz_ops, &f) == 0);
    f.domid[0] = 0;
    f.domid[1] = 1;
    f.domid[2] = 3;
    f.domid[3] = 5;
    reconnect(&f, 0);
    send_msg(&f, 0, XS_INTRODUCE, 0,
             "1\0"
             "0\0"
             "1",
             6);
    send_msg(&f, 0, XS_INTRODUCE, 0,
             "3\0"
             "0\0"
             "1",
             6);
    for (int i = 1; i < 4; i++)
        reconnect(&f, i);
    FUZZ_ASSERT(f.c[1] != NULL && f.c[2] != NULL && f.c[3] == NULL);
    while (in.n > 0 && steps++ < 2000) {
        step(&f, &in);
        check_conns(&f);
    }
    check_store(f.d.st);
    xsd_fini(&f.d);
    return 0;
}
