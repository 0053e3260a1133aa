/*
 * hostile.c - the hostile-peer harness: see hostile.h.
 *
 * Everything here plays a peer that lies, so it never validates what it
 * writes, and it treats what it reads back (the peer's keys, responses,
 * producer indices) as hostile in turn: keys through the bhxb parsers,
 * ring contents only as raw bytes copied once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dombuild.h"
#include "hostile.h"
#include "hvwire.h"

_Static_assert(HST_DOM_DRIVER == HVW_DOM_DRIVER, "hostile.h mirrors hvwire.h");

#define PAGE HVW_PAGE_SIZE

/* ---- the simulation ---- */

static int hv_channel(struct hst_sim *s)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (s->hvch >= 0)
        return 0;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/hv.sock", s->hv.state);
    if ((s->hvch = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(s->hvch, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int saved = errno;
        close(s->hvch);
        s->hvch = -1;
        errno = saved;
        return -1;
    }
    return 0;
}

/* One dom0 hypercall: 0, or -1 with the daemon's errno. */
static int hv_call(struct hst_sim *s, uint16_t op, const void *p, size_t len, void *out, size_t cap)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = op, .seq = ++s->seq};
    ssize_t n;

    if (len > sizeof(buf) - sizeof(h) || hv_channel(s) != 0) {
        errno = errno ? errno : EINVAL;
        return -1;
    }
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), p, len);
    if (send(s->hvch, buf, sizeof(h) + len, MSG_NOSIGNAL) != (ssize_t)(sizeof(h) + len))
        return -1;
    if ((n = recv(s->hvch, buf, sizeof(buf), 0)) < (ssize_t)sizeof(h)) {
        errno = n < 0 ? errno : EPROTO;
        return -1;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.err != 0) {
        errno = h.err;
        return -1;
    }
    if (out != NULL)
        memcpy(out, buf + sizeof(h), (size_t)n - sizeof(h) < cap ? (size_t)n - sizeof(h) : cap);
    return 0;
}

static int xsd_launch(struct hst_sim *s, char *err, size_t errlen)
{
    char bin[1024], ready[16], msg[256] = "";
    int p[2];
    ssize_t r;

    snprintf(bin, sizeof(bin), "%s/hv/bulkhead-xenstored", test_builddir());
    if (pipe(p) != 0 || (s->xsd_pid = fork()) < 0) {
        snprintf(err, errlen, "starting bulkhead-xenstored: %s", strerror(errno));
        return -1;
    }
    if (s->xsd_pid == 0) {
        close(p[0]);
        snprintf(ready, sizeof(ready), "%d", p[1]);
        execl(bin, "bulkhead-xenstored", "--state-dir", s->hv.state, "--ready-fd", ready,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    r = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    msg[r > 0 ? r : 0] = '\0';
    if (strcmp(msg, "ok\n") != 0) {
        snprintf(err, errlen, "%s did not start: %s (build it: make)", bin,
                 msg[0] ? msg : "(no word)");
        return -1;
    }
    return 0;
}

int hst_sim_start(struct hst_sim *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->hvch = -1;
    if (geteuid() != 0) {
        snprintf(err, errlen, "needs root (namespaces): run the test as root");
        errno = EPERM;
        return -1;
    }
    if (test_hv_start(&s->hv, err, errlen) != 0)
        goto fail;
    /*
     * Both daemons serve one state directory, as after `bulkhead up`: the
     * domains built from then on see its xenstored.sock at
     * /run/bulkhead/xenstored.sock.  A test process wearing a domain's uid
     * reaches both sockets through the directory.
     */
    if (chmod(s->hv.state, 0711) != 0) {
        snprintf(err, errlen, "chmod %s: %s", s->hv.state, strerror(errno));
        goto fail;
    }
    snprintf(s->xssock, sizeof(s->xssock), "%s/xenstored.sock", s->hv.state);
    setenv("XENSTORED_PATH", s->xssock, 1);
    if (xsd_launch(s, err, errlen) != 0)
        goto fail;
    if ((s->xs = xs_open(0)) == NULL) {
        snprintf(err, errlen, "xs_open(%s): %s", s->xssock, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    hst_sim_stop(s);
    errno = EIO;
    return -1;
}

void hst_sim_stop(struct hst_sim *s)
{
    if (s->xs != NULL)
        xs_close(s->xs);
    s->xs = NULL;
    if (s->xsd_pid > 0) {
        kill(s->xsd_pid, SIGTERM);
        waitpid(s->xsd_pid, NULL, 0);
    }
    s->xsd_pid = 0;
    if (s->hvch >= 0)
        close(s->hvch);
    s->hvch = -1;
    test_hv_stop(&s->hv);
}

int hst_sim_domain(struct hst_sim *s, const char *name, uint32_t flags, struct hst_domain *out)
{
    static const char env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    uint8_t buf[sizeof(struct hvw_dom_create_req) + sizeof(env)];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    struct hvw_dominfo di;
    struct xs_permissions perm;
    char home[64];

    memset(buf, 0, sizeof(buf));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->flags = flags;
    r->envc = 1;
    r->strings_len = sizeof(env);
    memcpy(r->strings, env, sizeof(env));
    if (hv_call(s, HVW_OP_DOM_CREATE, r, sizeof(buf), &di, sizeof(di)) != 0)
        return -1;
    perm = (struct xs_permissions){.id = di.domid, .perms = XS_PERM_NONE};
    snprintf(home, sizeof(home), "/local/domain/%u", di.domid);
    if (!xs_introduce_domain(s->xs, di.domid, 1234, 5) || !xs_mkdir(s->xs, XBT_NULL, home) ||
        !xs_set_permissions(s->xs, XBT_NULL, home, &perm, 1))
        return -1;
    *out = (struct hst_domain){.domid = di.domid, .uid = di.uid, .pid = (pid_t)di.pid};
    snprintf(out->name, sizeof(out->name), "%s", di.name);
    return 0;
}

pid_t hst_sim_spawn(const struct hst_domain *d, char *const argv[], int out_fd)
{
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                    "XENSTORED_PATH=/run/bulkhead/xenstored.sock",
                    "BULKHEAD_HV_SOCKET=/run/bulkhead/hv.sock", NULL};
    pid_t pid;

    if ((pid = fork()) != 0)
        return pid;
    {
        char err[256];
        int status;
        if (out_fd >= 0 && (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0))
            _exit(126);
        if (dombuild_exec(d->pid, argv, envp, &status, err, sizeof(err)) != 0) {
            dprintf(2, "%s\n", err);
            _exit(126);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
}

void hst_sim_log_path(const struct hst_sim *s, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s.log", s->hv.state, name);
}

pid_t hst_sim_spawn_logged(const struct hst_sim *s, const struct hst_domain *d, const char *name,
                           char *const argv[])
{
    char path[700];
    int fd;
    pid_t pid;

    hst_sim_log_path(s, name, path, sizeof(path));
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        return -1;
    pid = hst_sim_spawn(d, argv, fd);
    close(fd);
    return pid;
}

const char *hst_sim_log_tail(const struct hst_sim *s, const char *name)
{
    static char out[4][3000];
    static int which;
    char *b = out[which++ % 4], path[700];
    int fd;
    ssize_t n;
    off_t size;

    hst_sim_log_path(s, name, path, sizeof(path));
    b[0] = '\0';
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return b;
    size = lseek(fd, 0, SEEK_END);
    n = pread(fd, b, sizeof(out[0]) - 1,
              size > (off_t)sizeof(out[0]) - 1 ? size - (off_t)sizeof(out[0]) + 1 : 0);
    b[n > 0 ? n : 0] = '\0';
    close(fd);
    return b;
}

/* ---- identities ---- */

void hst_id_close(struct hst_id *id)
{
    if (id->ev != NULL)
        bhevtchn_close(id->ev);
    if (id->gt != NULL)
        bhgnttab_close(id->gt);
    if (id->gs != NULL)
        bhgntshr_close(id->gs);
    if (id->xs != NULL)
        xs_close(id->xs);
    memset(id, 0, sizeof(*id));
}

int hst_id_open(struct hst_id *id, uid_t uid)
{
    uid_t was = geteuid();
    bool wear = uid != HST_SELF && uid != was;
    int domid = -1, saved;

    memset(id, 0, sizeof(*id));
    if (wear && seteuid(uid) != 0)
        return -1;
    /* Both daemons learn who we are from SO_PEERCRED at connect time: the euid. */
    if ((id->xs = xs_open(0)) != NULL && (id->gs = bhgntshr_open(NULL, 0)) != NULL &&
        (id->gt = bhgnttab_open(NULL, 0)) != NULL && (id->ev = bhevtchn_open(NULL, 0)) != NULL)
        domid = bhplat_domid();
    saved = errno;
    if (wear && seteuid(was) != 0)
        abort(); /* we could not become ourselves again: nothing after this is sound */
    if (domid < 0) {
        hst_id_close(id);
        errno = saved ? saved : EIO;
        return -1;
    }
    id->domid = (uint32_t)domid;
    return 0;
}

/* ---- ends ---- */

static void why(struct hst_end *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records which step failed, keeping errno. */
static void why(struct hst_end *e, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->why, sizeof(e->why), fmt, ap);
    va_end(ap);
    errno = saved;
}

static int end_init(struct hst_end *e, struct hst_id *id, enum bhxb_role role, enum hst_proto p,
                    const struct bhxb_dev *dev)
{
    memset(e, 0, sizeof(*e));
    e->port = -1;
    for (unsigned int i = 0; i < HST_MAX_QUEUES; i++)
        e->qport[i] = -1;
    if (id == NULL || dev == NULL || (p != HST_BLKIF && p != HST_NETIF)) {
        errno = EINVAL;
        return -1;
    }
    if (bhxb_dev_paths(dev, &e->paths) != 0)
        return -1;
    e->id = id;
    e->role = role;
    e->proto = p;
    e->dir = role == BHXB_FRONTEND ? e->paths.frontend : e->paths.backend;
    e->peer_dir = role == BHXB_FRONTEND ? e->paths.backend : e->paths.frontend;
    e->peer_domid = role == BHXB_FRONTEND ? dev->backend_domid : dev->domid;
    e->nrings = p == HST_BLKIF ? 1 : 2;
    e->nqueues = 1;
    for (unsigned int i = 0; i < HST_MAX_QUEUES; i++)
        e->ring[i].type = &bhring_blkif;
    if (p == HST_NETIF) {
        e->ring[0].type = &bhring_netif_tx;
        e->ring[1].type = &bhring_netif_rx;
    }
    return 0;
}

static void ring_geometry(struct hst_ring *r, unsigned int order)
{
    r->order = order;
    r->npages = 1u << order;
    r->nr_ents = bhring_type_nr_ents(r->type, order);
    r->ent_size = bhring_type_ent_size(r->type);
}

static int front_init(struct hst_end *f, struct hst_id *id, enum hst_proto p,
                      const struct bhxb_dev *dev, unsigned int order, unsigned int nqueues)
{
    int port;

    if (end_init(f, id, BHXB_FRONTEND, p, dev) != 0)
        return -1;
    if (order > BHRING_MAX_ORDER || (p == HST_NETIF && order != 0) || nqueues == 0 ||
        nqueues > HST_MAX_QUEUES || (p == HST_NETIF && 2 * nqueues > HST_MAX_QUEUES)) {
        errno = EINVAL;
        return -1;
    }
    if (p == HST_BLKIF)
        f->nrings = f->nqueues = nqueues;
    if (p == HST_NETIF) {
        f->nqueues = nqueues;
        f->nrings = 2 * nqueues;
        for (unsigned int i = 0; i < f->nrings; i++)
            f->ring[i].type = i % 2 ? &bhring_netif_rx : &bhring_netif_tx;
    }
    for (unsigned int i = 0; i < f->nrings; i++) {
        struct hst_ring *r = &f->ring[i];
        ring_geometry(r, order);
        r->sh = bhgntshr_share_pages(id->gs, f->peer_domid, (int)r->npages, r->refs, 1);
        if (r->sh == NULL) {
            why(f, "granting %u ring pages to domain %u: %s", r->npages, f->peer_domid,
                strerror(errno));
            goto fail;
        }
        /* SHARED_RING_INIT: the pages are zeroed; both events armed at 1. */
        hst_idx_set(r, HST_REQ_EVENT, 1);
        hst_idx_set(r, HST_RSP_EVENT, 1);
    }
    for (unsigned int i = 0; i < f->nqueues; i++) {
        if ((port = bhevtchn_bind_unbound_port(id->ev, f->peer_domid)) < 0) {
            why(f, "an unbound port for domain %u: %s", f->peer_domid, strerror(errno));
            goto fail;
        }
        f->qport[i] = port;
    }
    f->port = f->qport[0];
    return 0;
fail:
    hst_end_close(f);
    return -1;
}

int hst_front_init(struct hst_end *f, struct hst_id *id, enum hst_proto p,
                   const struct bhxb_dev *dev, unsigned int order)
{
    return front_init(f, id, p, dev, order, 1);
}

int hst_front_init_mq(struct hst_end *f, struct hst_id *id, const struct bhxb_dev *dev,
                      unsigned int order, unsigned int nqueues)
{
    return front_init(f, id, HST_BLKIF, dev, order, nqueues);
}

int hst_front_init_vif(struct hst_end *f, struct hst_id *id, const struct bhxb_dev *dev,
                       unsigned int nqueues)
{
    return front_init(f, id, HST_NETIF, dev, 0, nqueues);
}

int hst_back_init(struct hst_end *b, struct hst_id *id, enum hst_proto p,
                  const struct bhxb_dev *dev)
{
    return end_init(b, id, BHXB_BACKEND, p, dev);
}

void hst_end_close(struct hst_end *e)
{
    int saved = errno;

    for (unsigned int i = 0; i < e->nrings; i++) {
        struct hst_ring *r = &e->ring[i];
        if (r->sh == NULL)
            continue;
        if (e->role == BHXB_FRONTEND)
            bhgntshr_unshare(e->id->gs, (void *)r->sh, r->npages);
        else
            bhgnttab_unmap(e->id->gt, (void *)r->sh, r->npages);
        r->sh = NULL;
    }
    for (unsigned int i = 0; i < HST_MAX_QUEUES; i++) {
        if (e->qport[i] >= 0 && e->qport[i] != e->port)
            bhevtchn_unbind(e->id->ev, (bh_evtchn_port_t)e->qport[i]);
        e->qport[i] = -1;
    }
    if (e->port >= 0)
        bhevtchn_unbind(e->id->ev, (bh_evtchn_port_t)e->port);
    e->port = -1;
    errno = saved;
}

/* ---- XenStore, raw ---- */

/* Keys written in one transaction, retried while the store says EAGAIN. */
struct kv {
    const char *key;
    char value[32];
};

static int write_txn(struct hst_end *e, const struct kv *kv, size_t n)
{
    char path[BHXB_PATH_MAX + 64];

    for (int tries = 0; tries < BHXB_RETRIES; tries++) {
        xs_transaction_t t = xs_transaction_start(e->id->xs);
        size_t i;
        if (t == XBT_NULL)
            return -1;
        for (i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", e->dir, kv[i].key);
            if (!xs_write(e->id->xs, t, path, kv[i].value, strlen(kv[i].value)))
                break;
        }
        if (i < n) {
            int saved = errno;
            xs_transaction_end(e->id->xs, t, true);
            why(e, "writing %s: %s", path, strerror(saved));
            errno = saved;
            return -1;
        }
        if (xs_transaction_end(e->id->xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

int hst_set_raw(struct hst_end *e, const char *key, const void *v, size_t len)
{
    char path[BHXB_PATH_MAX + 64];

    if (snprintf(path, sizeof(path), "%s/%s", e->dir, key) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return xs_write(e->id->xs, XBT_NULL, path, v, (unsigned int)len) ? 0 : -1;
}

int hst_set(struct hst_end *e, const char *key, const char *fmt, ...)
{
    char v[BHXB_VALUE_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof(v)) {
        errno = E2BIG;
        return -1;
    }
    return hst_set_raw(e, key, v, (size_t)n);
}

int hst_rm(struct hst_end *e, const char *key)
{
    char path[BHXB_PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%s", e->dir, key);
    return xs_rm(e->id->xs, XBT_NULL, path) ? 0 : -1;
}

int hst_state(struct hst_end *e, int state)
{
    return hst_set(e, "state", "%d", state);
}

int hst_front_publish(struct hst_end *f)
{
    struct kv kv[HST_MAX_QUEUES * (HST_MAX_PAGES + 1) + 4];
    char names[HST_MAX_QUEUES * (HST_MAX_PAGES + 1)][40]; /* the keys formatted below */
    size_t n = 0, k = 0;

    if (f->role != BHXB_FRONTEND || f->ring[0].sh == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (f->proto == HST_NETIF) {
        kv[n++] = (struct kv){"request-rx-copy", "1"};
        kv[n++] = (struct kv){"feature-rx-notify", "1"};
        if (f->nqueues > 1) {
            kv[n] = (struct kv){"multi-queue-num-queues", ""};
            snprintf(kv[n++].value, sizeof(kv[0].value), "%u", f->nqueues);
        }
        for (unsigned int q = 0; q < f->nqueues; q++) {
            char prefix[24] = "";
            static const char *const what[3] = {"tx-ring-ref", "rx-ring-ref", "event-channel"};

            if (f->nqueues > 1)
                snprintf(prefix, sizeof(prefix), "queue-%u/", q);
            for (unsigned int j = 0; j < 3; j++) {
                kv[n] = (struct kv){names[k], ""};
                snprintf(names[k++], sizeof(names[0]), "%s%s", prefix, what[j]);
                if (j < 2)
                    snprintf(kv[n++].value, sizeof(kv[0].value), "%u", f->ring[2 * q + j].refs[0]);
                else
                    snprintf(kv[n++].value, sizeof(kv[0].value), "%d", f->qport[q]);
            }
        }
        return write_txn(f, kv, n);
    }
    if (f->ring[0].order > 0) {
        kv[n] = (struct kv){"ring-page-order", ""};
        snprintf(kv[n++].value, sizeof(kv[0].value), "%u", f->ring[0].order);
    }
    if (f->nqueues > 1) {
        kv[n] = (struct kv){"multi-queue-num-queues", ""};
        snprintf(kv[n++].value, sizeof(kv[0].value), "%u", f->nqueues);
    }
    for (unsigned int q = 0; q < f->nqueues; q++) {
        char prefix[24] = "";

        if (f->nqueues > 1)
            snprintf(prefix, sizeof(prefix), "queue-%u/", q);
        for (unsigned int i = 0; i < f->ring[q].npages; i++) {
            kv[n] = (struct kv){names[k], ""};
            if (f->ring[q].order == 0)
                snprintf(names[k++], sizeof(names[0]), "%sring-ref", prefix);
            else
                snprintf(names[k++], sizeof(names[0]), "%sring-ref%u", prefix, i);
            snprintf(kv[n++].value, sizeof(kv[0].value), "%u", f->ring[q].refs[i]);
        }
        kv[n] = (struct kv){names[k], ""};
        snprintf(names[k++], sizeof(names[0]), "%sevent-channel", prefix);
        snprintf(kv[n++].value, sizeof(kv[0].value), "%d", f->qport[q]);
    }
    kv[n++] = (struct kv){"protocol", "x86_64-abi"};
    return write_txn(f, kv, n);
}

int hst_back_publish(struct hst_end *b)
{
    static const struct kv blk[] = {
        {"max-ring-page-order", "4"},
        {"feature-persistent", "1"},
        {"sectors", "2048"},
        {"sector-size", "512"},
        {"info", "0"},
        {"multi-queue-max-queues", "1"},
    };
    static const struct kv net[] = {
        {"feature-sg", "1"},
        {"feature-rx-copy", "1"},
        {"multi-queue-max-queues", "1"},
    };

    if (b->role != BHXB_BACKEND) {
        errno = EINVAL;
        return -1;
    }
    return b->proto == HST_BLKIF ? write_txn(b, blk, sizeof(blk) / sizeof(blk[0]))
                                 : write_txn(b, net, sizeof(net) / sizeof(net[0]));
}

/* ---- the backend's connect: the frontend's keys are hostile ---- */

/*
 * Reads <peer_dir>/key once and parses it.  kind: 'g' a grant reference,
 * 'e' an event-channel port, 'o' a ring order (0..4).  A missing key is
 * ENOENT unless optional (then 1 is returned and *out left alone).
 */
static int read_peer(struct hst_end *b, const char *key, int kind, bool optional, uint32_t *out)
{
    char path[BHXB_PATH_MAX + 64];
    unsigned int len;
    char *v;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", b->peer_dir, key);
    if ((v = xs_read(b->id->xs, XBT_NULL, path, &len)) == NULL) {
        if (errno == ENOENT && optional)
            return 1;
        why(b, "reading %s: %s", path, strerror(errno));
        return -1;
    }
    if (kind == 'g') {
        rc = bhxb_parse_gref(v, len, out);
    } else if (kind == 'e') {
        rc = bhxb_parse_evtchn(v, len, out);
    } else {
        uint64_t o;
        rc = bhxb_parse_u64(v, len, 0, BHRING_MAX_ORDER, &o);
        *out = rc == 0 ? (uint32_t)o : 0;
    }
    if (rc != 0)
        why(b, "%s is not a valid value: %s", path, strerror(errno));
    free(v);
    return rc;
}

static int map_ring(struct hst_end *b, struct hst_ring *r, unsigned int order, const char *what)
{
    ring_geometry(r, order);
    r->sh = bhgnttab_map_domain_grant_refs(b->id->gt, r->npages, b->peer_domid, r->refs,
                                           PROT_READ | PROT_WRITE);
    if (r->sh == NULL) {
        why(b, "mapping %s (%u pages, first grant %u) of domain %u: %s", what, r->npages,
            r->refs[0], b->peer_domid, strerror(errno));
        return -1;
    }
    return 0;
}

/* Queue q's references (prefix "" or "queue-N/") of a ring of the given order. */
static int read_blkif_refs(struct hst_end *b, const char *prefix, uint32_t order, uint32_t *refs)
{
    char key[48];

    for (unsigned int i = 0; i < (1u << order); i++) {
        if (order == 0)
            snprintf(key, sizeof(key), "%sring-ref", prefix);
        else
            snprintf(key, sizeof(key), "%sring-ref%u", prefix, i);
        if (read_peer(b, key, 'g', false, &refs[i]) != 0)
            return -1;
    }
    return 0;
}

/* multi-queue-num-queues: missing is 1; 1..HST_MAX_QUEUES. */
static int read_nqueues(struct hst_end *b, unsigned int *nq)
{
    char path[BHXB_PATH_MAX + 64];
    unsigned int len;
    uint64_t v = 1;
    char *s;

    snprintf(path, sizeof(path), "%s/multi-queue-num-queues", b->peer_dir);
    if ((s = xs_read(b->id->xs, XBT_NULL, path, &len)) == NULL) {
        if (errno != ENOENT) {
            why(b, "reading %s: %s", path, strerror(errno));
            return -1;
        }
    } else if (bhxb_parse_u64(s, len, 1, HST_MAX_QUEUES, &v) != 0) {
        why(b, "%s is not 1..%u: %s", path, HST_MAX_QUEUES, strerror(errno));
        free(s);
        return -1;
    } else {
        free(s);
    }
    *nq = (unsigned int)v;
    return 0;
}

static int bind_peer(struct hst_end *b, uint32_t peer_port)
{
    int port = bhevtchn_bind_interdomain(b->id->ev, b->peer_domid, peer_port);

    if (port < 0)
        why(b, "binding event-channel %u of domain %u: %s", peer_port, b->peer_domid,
            strerror(errno));
    return port;
}

int hst_back_connect(struct hst_end *b)
{
    uint32_t order = 0;
    unsigned int nq = 1;
    int port;

    if (b->role != BHXB_BACKEND || b->ring[0].sh != NULL) {
        errno = EINVAL;
        return -1;
    }
    if (b->proto == HST_BLKIF) {
        if (read_nqueues(b, &nq) != 0 || read_peer(b, "ring-page-order", 'o', true, &order) < 0)
            goto fail;
        b->nrings = b->nqueues = nq;
        for (unsigned int q = 0; q < nq; q++) {
            char prefix[24] = "", key[48];

            if (nq > 1)
                snprintf(prefix, sizeof(prefix), "queue-%u/", q);
            snprintf(key, sizeof(key), "%sevent-channel", prefix);
            if (read_blkif_refs(b, prefix, order, b->ring[q].refs) != 0 ||
                map_ring(b, &b->ring[q], order, "ring-ref") != 0 ||
                read_peer(b, key, 'e', false, &b->peer_qport[q]) != 0 ||
                (port = bind_peer(b, b->peer_qport[q])) < 0)
                goto fail;
            b->qport[q] = port;
        }
        b->port = b->qport[0];
        b->peer_port = b->peer_qport[0];
        return 0;
    }
    if (read_peer(b, "tx-ring-ref", 'g', false, &b->ring[0].refs[0]) != 0 ||
        read_peer(b, "rx-ring-ref", 'g', false, &b->ring[1].refs[0]) != 0 ||
        map_ring(b, &b->ring[0], 0, "tx-ring-ref") != 0 ||
        map_ring(b, &b->ring[1], 0, "rx-ring-ref") != 0)
        goto fail;
    if (read_peer(b, "event-channel", 'e', false, &b->peer_port) != 0)
        goto fail;
    if ((port = bind_peer(b, b->peer_port)) < 0)
        goto fail;
    b->port = b->qport[0] = port;
    return 0;
fail:
    hst_end_close(b);
    return -1;
}

/* ---- rings, raw ---- */

uint32_t hst_idx_get(const struct hst_ring *r, enum hst_idx i)
{
    uint32_t v = *(const volatile uint32_t *)(r->sh + i);

    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* what the index covers is read after it */
    return v;
}

void hst_idx_set(struct hst_ring *r, enum hst_idx i, uint32_t v)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the slots written before are visible first */
    *(volatile uint32_t *)(r->sh + i) = v;
}

static volatile uint8_t *slot(const struct hst_ring *r, uint32_t idx)
{
    return r->sh + BHRING_HDR_SIZE + (size_t)(idx & (r->nr_ents - 1)) * r->ent_size;
}

int hst_slot_write(struct hst_ring *r, uint32_t idx, const void *p, size_t len)
{
    volatile uint8_t *s;

    if (r->sh == NULL || len > r->ent_size) {
        errno = EINVAL;
        return -1;
    }
    s = slot(r, idx);
    for (size_t i = 0; i < len; i++)
        s[i] = ((const uint8_t *)p)[i];
    return 0;
}

int hst_slot_read(const struct hst_ring *r, uint32_t idx, void *out, size_t len)
{
    const volatile uint8_t *s;

    if (r->sh == NULL || len > r->ent_size) {
        errno = EINVAL;
        return -1;
    }
    s = slot(r, idx);
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)out)[i] = s[i];
    return 0;
}

int hst_produce(struct hst_end *e, unsigned int ring, const void *ent, size_t len, unsigned int n,
                bool notify)
{
    enum hst_idx prod = e->role == BHXB_FRONTEND ? HST_REQ_PROD : HST_RSP_PROD;
    struct hst_ring *r;
    uint32_t base;

    if (ring >= e->nrings || e->ring[ring].sh == NULL) {
        errno = EINVAL;
        return -1;
    }
    r = &e->ring[ring];
    base = hst_idx_get(r, prod);
    for (unsigned int i = 0; i < n; i++)
        if (hst_slot_write(r, base + i, ent, len) != 0)
            return -1;
    hst_idx_set(r, prod, base + n);
    if (!notify)
        return 0;
    return hst_notify_queue(e, e->proto == HST_BLKIF ? ring : ring / 2);
}

/* ---- event channels and data grants ---- */

int hst_notify_queue(struct hst_end *e, unsigned int q)
{
    if (q >= HST_MAX_QUEUES || e->qport[q] < 0) {
        errno = ENOTCONN;
        return -1;
    }
    return bhevtchn_notify(e->id->ev, (bh_evtchn_port_t)e->qport[q]);
}

int hst_notify(struct hst_end *e)
{
    if (e->port < 0) {
        errno = ENOTCONN;
        return -1;
    }
    return bhevtchn_notify(e->id->ev, (bh_evtchn_port_t)e->port);
}

long hst_storm(struct hst_end *e, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        if (hst_notify(e) != 0)
            return -1;
    return (long)n;
}

int hst_events(struct hst_end *e)
{
    int got = 0, p;

    while ((p = bhevtchn_pending(e->id->ev)) >= 0) {
        for (unsigned int q = 0; q < HST_MAX_QUEUES; q++)
            if (p == e->qport[q] || (q == 0 && p == e->port))
                got++;
        if (bhevtchn_unmask(e->id->ev, (bh_evtchn_port_t)p) != 0)
            return -1;
    }
    return errno == EAGAIN ? got : -1;
}

void *hst_grant(struct hst_end *e, unsigned int count, bool writable, uint32_t *refs)
{
    void *p = bhgntshr_share_pages(e->id->gs, e->peer_domid, (int)count, refs, writable);

    if (p == NULL)
        why(e, "granting %u pages to domain %u: %s", count, e->peer_domid, strerror(errno));
    return p;
}

int hst_ungrant(struct hst_end *e, void *addr, unsigned int count)
{
    return bhgntshr_unshare(e->id->gs, addr, count);
}

/* ---- XenStore helpers for the device layout ---- */

struct bhxb_layout *hst_layout(struct xs_handle *xs, const struct bhxb_dev *dev)
{
    struct bhxb_layout *l = bhxb_layout_new(dev);

    if (l != NULL && bhxb_layout_write(xs, l) != 0) {
        int saved = errno;
        bhxb_layout_free(l);
        errno = saved;
        return NULL;
    }
    return l;
}

int hst_read_state(struct xs_handle *xs, const char *dir)
{
    return bhxb_read_state(xs, dir);
}

int hst_read_error(struct xs_handle *xs, const char *dir, char *buf, size_t size)
{
    return bhxb_read_error(xs, dir, buf, size);
}

struct waiter {
    struct xs_handle *xs;
    const char *dir;
    unsigned int states;
    bool or_error;
    int result;     /* -1 until done */
    int last;       /* the last state seen; -3 before the first */
    char seen[256]; /* every state seen, in order */
};

static void wait_changed(void *arg, const char *path)
{
    struct waiter *w = arg;
    char err[128];
    int st = bhxb_read_state(w->xs, w->dir);
    size_t n = strlen(w->seen);

    (void)path;
    if (st != w->last && n + 16 < sizeof(w->seen))
        snprintf(w->seen + n, sizeof(w->seen) - n, "%s%s", n ? " " : "",
                 st == -2 ? "(unreadable)" : bhxb_state_name(st));
    w->last = st;
    if (w->result >= 0)
        return;
    if (st >= 0 && st < 16 && (w->states & HST_STATE(st)))
        w->result = st;
    else if (w->or_error && bhxb_read_error(w->xs, w->dir, err, sizeof(err)) == 0)
        w->result = HST_ERROR;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* "Connected or Closing or an error node", for the timeout's message. */
static void wanted(unsigned int states, bool or_error, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int s = 0; s <= XenbusStateReconfigured && n < size; s++)
        if (states & HST_STATE(s))
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " or " : "", bhxb_state_name(s));
    if (or_error && n < size)
        snprintf(buf + n, size - n, "%san error node", n ? " or " : "");
}

int hst_wait(struct xs_handle *xs, const char *dir, unsigned int states, bool or_error,
             int timeout_ms, char *whybuf, size_t whylen)
{
    struct waiter w = {
        .xs = xs, .dir = dir, .states = states, .or_error = or_error, .result = -1, .last = -3};
    bhxb_watches *ws = bhxb_watches_new(xs);
    struct timespec t0;
    char want[160], err[160] = "";
    long left;

    if (ws == NULL || bhxb_watch_add(ws, dir, wait_changed, &w) < 0) {
        snprintf(whybuf, whylen, "watching %s: %s", dir, strerror(errno));
        bhxb_watches_free(ws);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* A first look, in case the registration event is slow to come. */
    wait_changed(&w, dir);
    while (w.result < 0 && (left = timeout_ms - ms_since(&t0)) > 0) {
        struct pollfd p = {.fd = bhxb_watches_fd(ws), .events = POLLIN};
        if (poll(&p, 1, (int)left) > 0 && bhxb_watches_dispatch(ws) < 0)
            break;
    }
    bhxb_watches_free(ws);
    if (w.result >= 0)
        return w.result;
    wanted(states, or_error, want, sizeof(want));
    if (bhxb_read_error(xs, dir, err, sizeof(err)) != 0)
        snprintf(err, sizeof(err), "none");
    snprintf(whybuf, whylen, "waited %d ms for %s to reach %s; states seen: %s; error node: %s",
             timeout_ms, dir, want, w.seen[0] ? w.seen : "(none)", err);
    errno = ETIMEDOUT;
    return -1;
}
