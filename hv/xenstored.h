/*
 * xenstored.h - bulkhead-xenstored's private header: the daemon's objects
 * and the prototypes its files share, grouped by file.
 *
 * The daemon is single-threaded.  xenstored.c owns the sockets: the
 * listening socket, one stream per client, and two channels to bulkhead-hv
 * (a blocking one for DOM_LIST, one for domain events).  Everything a
 * client sends goes through xs_proto.c (framing, the handler table, the
 * domain messages), which calls the tree in xs_store.c, either directly or
 * through a transaction of xs_txn.c, and reports every change to
 * xs_watch.c.  Only xenstored.c makes system calls: the other four files
 * are a library that the fuzz target runs against memory alone.
 *
 * Every byte a client sends is hostile.  Handlers return 0 or a positive
 * errno, which the client gets as an XS_ERROR reply naming it.
 */
#ifndef BULKHEAD_XENSTORED_H
#define BULKHEAD_XENSTORED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/io/xs_wire.h>

#define XS_DOMID_MAX    0x7fefu     /* DOMID_FIRST_RESERVED - 1 */
#define XS_NO_TARGET    0xffffffffu /* a domain with no SET_TARGET */
#define XS_LOCAL_DOMAIN "/local/domain/"

/* Permission bits (a node's ACL entry, and what a caller gets). */
#define XS_P_NONE  0u
#define XS_P_READ  1u
#define XS_P_WRITE 2u
#define XS_P_OWNER 4u /* never stored: the owner and the privileged get it */

struct xs_perm {
    uint16_t domid;
    uint8_t perm; /* XS_P_READ | XS_P_WRITE */
};

/* The quotas, with Xen's defaults; dom0 is exempt from all of them. */
enum xs_quota_id {
    XSQ_NODES,        /* nodes owned by one domain */
    XSQ_WATCHES,      /* watches of one domain */
    XSQ_TRANSACTIONS, /* open transactions of one domain */
    XSQ_OUTSTANDING,  /* replies one domain has not read yet */
    XSQ_TXN_NODES,    /* nodes one transaction may touch */
    XSQ_PERMISSIONS,  /* ACL entries of one node */
    XSQ_NODE_SIZE,    /* bytes of one node: value, children names, ACL */
    XSQ_PATH_MAX,     /* path length below the domain's home */
    XSQ_CONNECTIONS,  /* sockets of one domain (the simulation's own) */
    XSQ_MEMORY,       /* bytes of nodes and watches one domain holds (error level) */
    XSQ_COUNT
};

struct xs_quota_def {
    const char *name; /* as CONTROL "quota" and --quota name it */
    unsigned int dflt;
    const char *descr;
};
extern const struct xs_quota_def xs_quota_defs[XSQ_COUNT];

/* Soft quotas: crossing one is logged, never refused (xenstore-control quota-soft). */
enum xs_soft_id { XSS_MEMORY, XSS_COUNT };
extern const struct xs_quota_def xs_soft_defs[XSS_COUNT];

/* Who asks: everything a permission or quota check needs. */
struct xs_who {
    uint16_t domid;
    uint32_t target; /* SET_TARGET, or XS_NO_TARGET */
    bool priv;       /* dom0: every permission, no quota */
    const unsigned int *quota;
};

/* ---- xs_store.c: the tree ---- */

/*
 * A node: its path is its key.  Children are NUL-terminated leaf names,
 * back to back (the DIRECTORY reply as is).  `gen` changes on every change
 * of the node (value, children, ACL): transactions and DIRECTORY_PART
 * compare it.  perms[0] is the owner and the default for everyone else.
 */
/* An entry of a hash table keyed by path (nodes, transaction entries). */
struct xs_hent {
    struct xs_hent *next;
    uint32_t hash;
    const char *key;
};

struct xs_hash {
    struct xs_hent **b;
    size_t nb, n;
};

struct xs_node {
    struct xs_hent h; /* first: key = path */
    uint32_t vlen;
    uint32_t clen, ccap;
    uint16_t nperms;
    uint64_t gen;
    char *value;
    char *children;
    struct xs_perm *perms;
    char path[]; /* NUL-terminated */
};

struct xs_store {
    struct xs_hash nodes;
    uint64_t gen;                   /* last generation handed out */
    uint32_t *owned;                /* nodes per owner domid */
    uint64_t *mem;                  /* bytes of those nodes (path, value, children, ACL) */
    struct xs_perm *special_acl[2]; /* @introduceDomain, @releaseDomain */
    uint16_t special_n[2];
};

/* A change, for watches: the node's path and the ACL that decides who may see it. */
struct xs_change {
    const char *path;
    const struct xs_perm *perms;
    uint16_t nperms;
    bool recurse; /* removal of a subtree: watches below fire too */
};

struct xs_txn;
struct xs_txn_ent;
struct xs_txn_event;

/* Where operations go: the store itself, or a transaction over it. */
struct xs_view {
    struct xs_store *st;
    struct xs_txn *txn;                                    /* NULL: the store */
    void (*changed)(void *arg, const struct xs_change *c); /* NULL: nobody listens */
    void *arg;
};

struct xs_store *xs_store_new(void); /* with "/" (owner dom0, others none) */
void xs_store_free(struct xs_store *st);
size_t xs_store_count(const struct xs_store *st);

/* Path rules of xenstore.txt; 0 or EINVAL.  Relative paths become absolute first. */
int xs_path_canonical(const struct xs_who *w, const char *in, bool allow_special, char *out,
                      size_t outlen);
bool xs_path_is_child(const char *child, const char *parent); /* child at or below parent */
int xs_perm_parse(const char *s, struct xs_perm *p);          /* "b3" -> 0 or EINVAL */
unsigned int xs_perm_for(const struct xs_who *w, const struct xs_perm *p, uint16_t n);
int xs_special_index(const char *path); /* 0, 1, or -1 for a node path */

/* Node records, for the store and transactions. */
struct xs_node *xs_node_new(const char *path);
struct xs_node *xs_node_copy(const struct xs_node *n);
void xs_node_free(struct xs_node *n);
int xs_node_set_value(struct xs_node *n, const void *v, size_t len);
int xs_node_set_perms(struct xs_node *n, const struct xs_perm *p, uint16_t np);
int xs_node_add_child(struct xs_node *n, const char *leaf);
void xs_node_del_child(struct xs_node *n, const char *leaf);
size_t xs_node_size(const struct xs_node *n);
uint32_t xs_hash_key(const char *key);
struct xs_hent *xs_hash_get(const struct xs_hash *h, const char *key, uint32_t hash);
int xs_hash_put(struct xs_hash *h, struct xs_hent *e); /* e's key must be new; 0 or ENOMEM */
struct xs_hent *xs_hash_take(struct xs_hash *h, const char *key, uint32_t hash);
void xs_hash_fini(struct xs_hash *h); /* the buckets only: entries are the caller's */

/* The store's own records, no checks (xs_txn.c commits through these). */
const struct xs_node *xs_store_get(const struct xs_store *st, const char *path);
int xs_store_put(struct xs_store *st, struct xs_node *n); /* takes n; new gen */
void xs_store_del(struct xs_store *st, const char *path);

/*
 * The operations, with every permission and quota check.  Paths are
 * canonical.  Each returns 0 or an errno for the client; on success,
 * *out (when asked) points at the node as the view sees it, valid until
 * the view changes.
 */
int xs_op_read(struct xs_view *v, const struct xs_who *w, const char *path,
               const struct xs_node **out);
int xs_op_write(struct xs_view *v, const struct xs_who *w, const char *path, const void *val,
                size_t len);
int xs_op_mkdir(struct xs_view *v, const struct xs_who *w, const char *path);
int xs_op_rm(struct xs_view *v, const struct xs_who *w, const char *path);
int xs_op_get_perms(struct xs_view *v, const struct xs_who *w, const char *path,
                    const struct xs_perm **p, uint16_t *n);
int xs_op_set_perms(struct xs_view *v, const struct xs_who *w, const char *path,
                    const struct xs_perm *p, uint16_t n);
/* Removes a dead domain's nodes and its ACL entries elsewhere; as dom0. */
void xs_store_purge_domain(struct xs_view *v, uint16_t domid);

/* ---- xs_txn.c: transactions ---- */

struct xs_txn {
    uint32_t id;
    uint16_t domid;
    bool priv;
    struct xs_hash seen;     /* path -> struct xs_txn_ent, see xs_txn.c */
    struct xs_txn_ent *ents; /* the same, in order */
    long owned_delta;        /* nodes the transaction's domain gains on commit */
    struct xs_txn_event *events;
    struct xs_txn_event **events_tail;
    struct xs_txn *next;
};

struct xs_txn *xs_txn_new(uint32_t id, const struct xs_who *w);
void xs_txn_free(struct xs_txn *t);
/* The view's accessors: what the transaction sees, recording what it read. */
int xs_view_get(struct xs_view *v, const struct xs_who *w, const char *path,
                const struct xs_node **out); /* 0, or ENOSPC when it touched too many */
int xs_view_put(struct xs_view *v, const struct xs_who *w, struct xs_node *n); /* takes n */
int xs_view_del(struct xs_view *v, const struct xs_who *w, const char *path);
/* Applies it, or EAGAIN if a node it touched changed meanwhile (or ENOSPC over quota). */
int xs_txn_commit(struct xs_txn *t, struct xs_store *st, const struct xs_who *w,
                  void (*changed)(void *arg, const struct xs_change *c), void *arg);
void xs_txn_record_change(struct xs_txn *t, const struct xs_change *c);

/* ---- xs_watch.c: watches and their events ---- */

struct xs_watch {
    char *path; /* canonical, or @special */
    char *token;
    size_t strip; /* bytes to cut for a relative watch's events */
    struct xs_watch *next;
};

struct xsd;
struct xs_conn;
int xs_watch_add(struct xsd *d, struct xs_conn *c, const char *path, const char *token,
                 bool relative);
void xs_watch_initial(struct xsd *d, struct xs_conn *c, const char *path, const char *token);
int xs_watch_del(struct xsd *d, struct xs_conn *c, const char *path, const char *token);
void xs_watch_reset(struct xsd *d, struct xs_conn *c);
void xs_watch_fire(struct xsd *d, const struct xs_change *ch);
void xs_watch_fire_special(struct xsd *d, const char *special);
void xs_watch_changed(void *d, const struct xs_change *ch); /* xs_view.changed */

/* ---- xs_proto.c: connections, framing, handlers, domains ---- */

/* A domain xenstored knows of: dom0, and every domain INTRODUCEd. */
struct xs_dom {
    uint16_t domid;
    bool introduced;
    bool shutdown; /* @releaseDomain fired for its shutdown; RESUME clears */
    uint64_t mfn;  /* recorded, unused: there is no ring page in the simulation */
    uint32_t port;
    uint32_t target;
    unsigned int conns, watches, txns, outstanding; /* quota accounting */
    uint64_t watch_mem;         /* bytes of its watches' paths and tokens */
    bool soft_logged, hard_logged; /* over a memory quota, and said so once */
    struct xs_dom *next;
};

struct xs_out {
    struct xs_out *next;
    size_t len;
    bool reply; /* counts as outstanding until written */
    uint8_t data[];
};

struct xs_conn {
    int fd;
    uint64_t id;
    struct xs_dom *dom;
    bool dead;              /* closed: the loop frees it once its batch of events is done */
    uint32_t ev_mask;       /* the loop's: epoll events it asked for */
    struct xsd_sockmsg hdr; /* the message being read */
    size_t hdr_got, body_got;
    char body[XENSTORE_PAYLOAD_MAX + 1];
    struct xs_out *out, **out_tail;
    size_t out_off, out_bytes;
    struct xs_watch *watches;
    struct xs_txn *txns;
    uint32_t next_txid;
    struct xs_conn *next;
};

/* What the protocol needs from its environment: sockets, or the fuzzer. */
struct xsd_ops {
    bool (*domain_exists)(struct xsd *d, uint16_t domid);  /* INTRODUCE's check */
    void (*conn_output)(struct xsd *d, struct xs_conn *c); /* queued output, or input may resume */
};

struct xsd {
    const struct xsd_ops *ops;
    void *env; /* the ops' own state */
    struct xs_store *st;
    unsigned int quota[XSQ_COUNT];
    unsigned int soft[XSS_COUNT];
    struct xs_conn *conns;
    struct xs_dom *doms; /* dom0 first */
    uint64_t next_conn_id;
    FILE *log;
    bool trace; /* CONTROL log on: one line per request too */
    char log_path[512];
    size_t out_max_dom, out_max_dom0; /* queued bytes before a connection is cut */
};

#define XS_OUT_MAX_DOM   (1u << 20)
#define XS_OUT_MAX_DOM0  (16u << 20)
#define XS_MSGS_PER_TURN 32u /* messages served per connection per loop turn */

int xsd_init(struct xsd *d, const struct xsd_ops *ops, void *env); /* 0 or -1 (errno) */
void xsd_fini(struct xsd *d);
void xsd_log(struct xsd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct xs_dom *xsd_dom_find(struct xsd *d, uint16_t domid);
/* A new connection of an introduced domain (or dom0); NULL with errno (EACCES, EDQUOT). */
struct xs_conn *xsd_conn_new(struct xsd *d, int fd, uint16_t domid);
void xsd_conn_kill(struct xsd *d, struct xs_conn *c, const char *why); /* marks it dead */
void xsd_conn_free(struct xsd *d, struct xs_conn *c);                  /* unlinked, freed */
/* Bytes arrived: returns what it consumed; stops when a message is served and
 * XS_MSGS_PER_TURN were, or when the domain is over its outstanding quota. */
size_t xsd_conn_input(struct xsd *d, struct xs_conn *c, const uint8_t *p, size_t n);
bool xsd_conn_may_read(const struct xsd *d, const struct xs_conn *c);
/* How many bytes the connection needs next (header or body). */
size_t xsd_conn_want(const struct xs_conn *c);
void xsd_conn_wrote(struct xsd *d, struct xs_conn *c, size_t n); /* n bytes of output left */
int xsd_queue(struct xsd *d, struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
              const void *p, size_t len, bool reply);
/* A domain's death as bulkhead-hv reports it: gone = destroyed, else shut down. */
void xsd_domain_died(struct xsd *d, uint16_t domid, bool gone);
int xsd_quota_set(struct xsd *d, const char *name, const char *val); /* 0 or EINVAL */
int xsd_soft_set(struct xsd *d, const char *name, const char *val);  /* 0 or EINVAL */
uint64_t xsd_dom_mem(const struct xsd *d, const struct xs_dom *dom); /* the memory quota's count */
void xsd_who(const struct xs_conn *c, const unsigned int *quota, struct xs_who *w);

#endif /* BULKHEAD_XENSTORED_H */
