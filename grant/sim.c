/*
 * sim.c - the simulation platform: grants and event channels through
 * bulkhead-hv, over a hypercall channel of each handle's own (hv/hvwire.h).
 *
 * Grants: the daemon answers a share or a map with one memfd page per
 * reference; the pages of one call are mapped side by side in a range
 * reserved first, and their fds closed once mapped - the mapping keeps the
 * page.  Event channels: a port is an eventfd; this handle polls its ports'
 * eventfds through one epoll set and notifies a peer by signalling the
 * peer's eventfd itself, never through the daemon.
 *
 * The daemon is trusted (it is the hypervisor); the peers are not.  A peer
 * shares each eventfd's open file description with us and can clear its
 * O_NONBLOCK, so no read(2) or write(2) of an eventfd here may rely on that
 * flag (see drain_port and kick).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/aio_abi.h>
#include <xen/grant_table.h>

#include "evtkick.h"
#include "hvwire.h"
#include "private.h"

#define SIM_SOCKET   "/run/bulkhead/hv.sock" /* inside a domain (hvwire.h) */
#define SIM_MAX_PORT (1u << 17)              /* Xen's largest port space */
#define PAGE         HVW_PAGE_SIZE

/* ---- the hypercall channel ---- */

/* struct sim_chan and struct chan_reply: private.h (broker.c speaks here too) */

static void close_fds(const int *fds, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        close(fds[i]);
}

void chan_close(struct sim_chan *ch)
{
    int saved = errno;

    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = -1;
    errno = saved;
}

int chan_open(struct sim_chan *ch, struct bhplat_logger *logger)
{
    const char *path = secure_getenv("BULKHEAD_HV_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    *ch = (struct sim_chan){.fd = -1, .logger = logger};
    if (path == NULL || *path == '\0')
        path = SIM_SOCKET;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        plat_log(logger, "bhplat: BULKHEAD_HV_SOCKET=%s is too long for a unix socket path", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    if ((ch->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0 ||
        connect(ch->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        plat_log(logger,
                 "bhplat: cannot connect to bulkhead-hv at %s: %s (is it running, and "
                 "BULKHEAD_HV_SOCKET right?)",
                 path, strerror(errno));
        chan_close(ch);
        return -1;
    }
    return 0;
}

/* The daemon broke the protocol: the channel is done for. */
int chan_broken(struct sim_chan *ch, uint16_t op, const char *why)
{
    plat_log(ch->logger, "bhplat: bulkhead-hv answered op %u with %s: channel abandoned", op, why);
    ch->broken = true;
    errno = EPROTO;
    return -1;
}

static int chan_send(struct sim_chan *ch, uint16_t op, const void *req, size_t len)
{
    struct hvw_hdr hdr = {.magic = HVW_MAGIC, .op = op, .seq = ++ch->seq};
    struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)req, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    ssize_t r;

    if (ch->broken) {
        errno = EPROTO;
        return -1;
    }
    do
        r = sendmsg(ch->fd, &m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        plat_log(ch->logger, "bhplat: cannot reach bulkhead-hv: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The descriptors a message carried, at most max of them; -1 if there were more. */
static int take_fds(struct msghdr *m, int *fds, unsigned int max, unsigned int *n)
{
    int extra = 0;

    *n = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm != NULL; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*n < max) {
                fds[(*n)++] = fd;
            } else {
                close(fd);
                extra = 1;
            }
        }
    }
    return extra ? -1 : 0;
}

/* Receives the reply to request `seq`; events (never asked for here) are skipped. */
static int chan_recv(struct sim_chan *ch, uint16_t op, struct chan_reply *r)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct hvw_hdr hdr;
    struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {r->p, r->cap}};
    int fds[HVW_MAX_FDS];
    unsigned int nfds;

    for (;;) {
        struct msghdr m = {
            .msg_iov = iov, .msg_iovlen = 2, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        ssize_t n = recvmsg(ch->fd, &m, MSG_CMSG_CLOEXEC);
        int extra;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            plat_log(ch->logger, "bhplat: lost bulkhead-hv: %s",
                     n ? strerror(errno) : "it hung up");
            errno = n ? errno : ECONNRESET;
            return -1;
        }
        extra = take_fds(&m, fds, HVW_MAX_FDS, &nfds);
        if (extra != 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(hdr) ||
            hdr.magic != HVW_MAGIC) {
            close_fds(fds, nfds);
            return chan_broken(ch, op, "a malformed message");
        }
        if (hdr.flags & HVW_F_EVENT) {
            close_fds(fds, nfds);
            continue;
        }
        if (!(hdr.flags & HVW_F_REPLY) || hdr.seq != ch->seq || hdr.op != op || hdr.err < 0 ||
            hdr.err > 4095 || (hdr.err == 0 && (r->upto ? nfds > r->nfds : nfds != r->nfds)) ||
            (hdr.err != 0 && nfds != 0)) {
            close_fds(fds, nfds);
            return chan_broken(ch, op, "a reply to something else");
        }
        if (hdr.err != 0) {
            errno = hdr.err;
            return -1;
        }
        if (nfds > 0)
            memcpy(r->fds, fds, sizeof(int) * nfds);
        r->nfds = nfds;
        r->len = (size_t)n - sizeof(hdr);
        return 0;
    }
}

/* One request and its reply, with the descriptors r asks for. */
int chan_call(struct sim_chan *ch, uint16_t op, const void *req, size_t len,
              struct chan_reply *r)
{
    if (chan_send(ch, op, req, len) != 0)
        return -1;
    return chan_recv(ch, op, r);
}

static int sim_domid(void)
{
    struct hvw_hello_rsp h;
    struct chan_reply r = {.p = &h, .cap = sizeof(h)};
    struct sim_chan ch;
    int rc;

    if (chan_open(&ch, NULL) != 0)
        return -1;
    rc = chan_call(&ch, HVW_OP_HELLO, NULL, 0, &r);
    if (rc == 0 && r.len != sizeof(h))
        rc = chan_broken(&ch, HVW_OP_HELLO, "a short reply");
    chan_close(&ch);
    return rc == 0 ? h.domid : -1;
}

/* ---- grants: what both grant handles keep ---- */

/* A range of pages this handle mapped, with the references behind them. */
struct sim_area {
    struct sim_area *next;
    uint8_t *addr;
    uint32_t count;
    uint16_t domid; /* gntshr: the grantee; gnttab: the granter */
    bh_grant_ref_t refs[];
};

struct sim_gnt {
    struct sim_chan ch;
    struct sim_area *areas;
    bh_grant_ref_t *busy; /* gntshr: references whose end met EBUSY, to end later */
    uint32_t nbusy, capbusy;
};

/* A new area, its pages reserved inaccessible until each is mapped over. */
static struct sim_area *area_new(uint32_t count, uint16_t domid)
{
    struct sim_area *a = calloc(1, sizeof(*a) + sizeof(a->refs[0]) * count);

    if (a == NULL)
        return NULL;
    a->count = count;
    a->domid = domid;
    a->addr = mmap(NULL, (size_t)count * PAGE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a->addr == MAP_FAILED) {
        free(a);
        return NULL;
    }
    return a;
}

static void area_free(struct sim_area *a)
{
    int saved = errno;

    munmap(a->addr, (size_t)a->count * PAGE);
    free(a);
    errno = saved;
}

/* Unlinks the area that starts at addr and spans exactly count pages. */
static struct sim_area *area_take(struct sim_gnt *s, void *addr, uint32_t count)
{
    for (struct sim_area **pp = &s->areas; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->addr == addr && (*pp)->count == count) {
            struct sim_area *a = *pp;
            *pp = a->next;
            return a;
        }
    errno = EINVAL;
    return NULL;
}

/*
 * Maps n page fds side by side at addr and closes them; -1 if one would not
 * map.  Populated at once: the pages are there to be read or written now
 * (a backend's I/O goes straight into them), and a fault per page later
 * cost a 1 MiB request without persistent grants a tenth of its time.
 */
static int map_fds(uint8_t *addr, const int *fds, uint32_t n, int prot)
{
    int rc = 0, saved = 0;

    for (uint32_t i = 0; i < n; i++) {
        if (rc == 0 && mmap(addr + (size_t)i * PAGE, PAGE, prot,
                            MAP_SHARED | MAP_FIXED | MAP_POPULATE, fds[i], 0) == MAP_FAILED) {
            rc = -1;
            saved = errno;
        }
        close(fds[i]);
    }
    if (rc != 0)
        errno = saved;
    return rc;
}

static int sim_gnt_open(void **priv, struct bhplat_logger *logger)
{
    struct sim_gnt *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    if (chan_open(&s->ch, logger) != 0) {
        free(s);
        return -1;
    }
    *priv = s;
    return 0;
}

/* Closing the channel is what releases grants and mappings in the daemon. */
static void sim_gnt_close(void *priv)
{
    struct sim_gnt *s = priv;

    while (s->areas != NULL) {
        struct sim_area *a = s->areas;
        s->areas = a->next;
        area_free(a);
    }
    chan_close(&s->ch);
    free(s->busy);
    free(s);
}

/* ---- granting: gntshr ---- */

static void busy_add(struct sim_gnt *s, bh_grant_ref_t ref)
{
    if (s->nbusy == s->capbusy) {
        uint32_t cap = s->capbusy ? 2 * s->capbusy : 64;
        bh_grant_ref_t *b = realloc(s->busy, sizeof(*b) * cap);
        if (b == NULL)
            return; /* it stays granted until the handle closes */
        s->busy = b;
        s->capbusy = cap;
    }
    s->busy[s->nbusy++] = ref;
}

/* One GNT_END of n <= HVW_MAX_COPY references; status[i] per reference. */
static int end_batch(struct sim_gnt *s, const bh_grant_ref_t *refs, uint32_t n, int32_t *status)
{
    uint32_t req[1 + HVW_MAX_COPY], rsp[1 + HVW_MAX_COPY];
    struct chan_reply r = {.p = rsp, .cap = sizeof(rsp)};

    req[0] = n;
    memcpy(req + 1, refs, sizeof(uint32_t) * n);
    if (chan_call(&s->ch, HVW_OP_GNT_END, req, sizeof(uint32_t) * (1 + n), &r) != 0)
        return -1;
    if (r.len != sizeof(uint32_t) * (1 + n) || rsp[0] != n)
        return chan_broken(&s->ch, HVW_OP_GNT_END, "a reply of the wrong size");
    memcpy(status, rsp + 1, sizeof(int32_t) * n);
    return 0;
}

/*
 * Ends the grants of refs.  One still mapped by its grantee (EBUSY) stays
 * granted, as with gntalloc, and is ended by a later call once unmapped.
 */
static int end_refs(struct sim_gnt *s, const bh_grant_ref_t *refs, uint32_t count)
{
    int32_t status[HVW_MAX_COPY];

    for (uint32_t done = 0, n; done < count; done += n) {
        n = count - done < HVW_MAX_COPY ? count - done : HVW_MAX_COPY;
        if (end_batch(s, refs + done, n, status) != 0)
            return -1;
        for (uint32_t i = 0; i < n; i++)
            if (status[i] == EBUSY)
                busy_add(s, refs[done + i]);
    }
    return 0;
}

/* Tries again to end one batch of the references that were busy. */
static void busy_retry(struct sim_gnt *s)
{
    int32_t status[HVW_MAX_COPY];
    uint32_t n = s->nbusy < HVW_MAX_COPY ? s->nbusy : HVW_MAX_COPY, kept = 0;
    bh_grant_ref_t *batch = s->busy + s->nbusy - n;

    if (n == 0 || end_batch(s, batch, n, status) != 0)
        return;
    for (uint32_t i = 0; i < n; i++)
        if (status[i] == EBUSY)
            batch[kept++] = batch[i];
    s->nbusy -= n - kept;
}

/* One GNT_SHARE of n pages into a, from page *granted on, which grows as the daemon grants. */
static int share_batch(struct sim_gnt *s, struct sim_area *a, uint32_t *granted, uint32_t n,
                       bool writable)
{
    struct hvw_gnt_share_req req = {.domid = a->domid, .writable = writable, .count = n};
    uint32_t rsp[1 + HVW_MAX_FDS];
    int fds[HVW_MAX_FDS];
    struct chan_reply r = {.p = rsp, .cap = sizeof(rsp), .fds = fds, .nfds = n};
    uint8_t *at = a->addr + (size_t)*granted * PAGE;

    if (chan_call(&s->ch, HVW_OP_GNT_SHARE, &req, sizeof(req), &r) != 0)
        return -1;
    if (r.len != sizeof(uint32_t) * (1 + n) || rsp[0] != n) {
        close_fds(fds, n);
        return chan_broken(&s->ch, HVW_OP_GNT_SHARE, "a reply of the wrong size");
    }
    memcpy(a->refs + *granted, rsp + 1, sizeof(uint32_t) * n);
    *granted += n;
    return map_fds(at, fds, n, PROT_READ | PROT_WRITE);
}

static void *sim_share_pages(bhgntshr_handle *h, uint16_t domid, uint32_t count,
                             bh_grant_ref_t *refs, bool writable)
{
    struct sim_gnt *s = h->priv;
    struct sim_area *a;
    uint32_t granted = 0;
    int saved;

    busy_retry(s);
    if ((a = area_new(count, domid)) == NULL)
        return NULL;
    while (granted < count) {
        uint32_t n = count - granted < HVW_MAX_FDS ? count - granted : HVW_MAX_FDS;
        if (share_batch(s, a, &granted, n, writable) != 0)
            goto fail;
    }
    memcpy(refs, a->refs, sizeof(*refs) * count);
    a->next = s->areas;
    s->areas = a;
    return a->addr;
fail:
    /* No allocation survives a failure (unless a racing grantee mapped a page: then as unshare). */
    saved = errno;
    end_refs(s, a->refs, granted);
    area_free(a);
    errno = saved;
    return NULL;
}

static int sim_unshare(bhgntshr_handle *h, void *addr, uint32_t count)
{
    struct sim_gnt *s = h->priv;
    struct sim_area *a = area_take(s, addr, count);
    int rc;

    if (a == NULL)
        return -1;
    munmap(a->addr, (size_t)a->count * PAGE);
    busy_retry(s);
    rc = end_refs(s, a->refs, count);
    free(a);
    return rc;
}

static int sim_gntshr_open(bhgntshr_handle *h)
{
    return sim_gnt_open(&h->priv, h->logger);
}

static void sim_gntshr_close(bhgntshr_handle *h)
{
    sim_gnt_close(h->priv);
}

/* ---- mapping and copying: gnttab ---- */

/* GNT_UNMAP of count references, in batches; the first error is returned. */
static int unmap_refs(struct sim_gnt *s, uint16_t domid, const bh_grant_ref_t *refs, uint32_t count)
{
    uint8_t req[sizeof(struct hvw_gnt_map_req) + sizeof(uint32_t) * HVW_MAX_FDS];
    int rc = 0, saved = 0;

    for (uint32_t done = 0, n; done < count; done += n) {
        struct hvw_gnt_map_req mr = {.domid = domid};
        struct chan_reply r = {.p = NULL, .cap = 0};
        n = count - done < HVW_MAX_FDS ? count - done : HVW_MAX_FDS;
        mr.count = n;
        memcpy(req, &mr, sizeof(mr));
        memcpy(req + sizeof(mr), refs + done, sizeof(uint32_t) * n);
        if (chan_call(&s->ch, HVW_OP_GNT_UNMAP, req, sizeof(mr) + sizeof(uint32_t) * n, &r) != 0 &&
            rc == 0) {
            rc = -1;
            saved = errno;
        }
    }
    if (rc != 0)
        errno = saved;
    return rc;
}

/* One GNT_MAP of n references, mapped at page `off` of a. */
static int map_batch(struct sim_gnt *s, struct sim_area *a, uint32_t off, uint32_t n, bool writable)
{
    uint8_t req[sizeof(struct hvw_gnt_map_req) + sizeof(uint32_t) * HVW_MAX_FDS];
    struct hvw_gnt_map_req mr = {.domid = a->domid, .writable = writable, .count = n};
    uint32_t rsp;
    int fds[HVW_MAX_FDS];
    struct chan_reply r = {.p = &rsp, .cap = sizeof(rsp), .fds = fds, .nfds = n};

    memcpy(req, &mr, sizeof(mr));
    memcpy(req + sizeof(mr), a->refs + off, sizeof(uint32_t) * n);
    if (chan_call(&s->ch, HVW_OP_GNT_MAP, req, sizeof(mr) + sizeof(uint32_t) * n, &r) != 0)
        return -1;
    if (r.len != sizeof(rsp) || rsp != n) {
        close_fds(fds, n);
        return chan_broken(&s->ch, HVW_OP_GNT_MAP, "a reply of the wrong size");
    }
    if (map_fds(a->addr + (size_t)off * PAGE, fds, n,
                writable ? PROT_READ | PROT_WRITE : PROT_READ) != 0) {
        int saved = errno;
        unmap_refs(s, a->domid, a->refs + off, n);
        errno = saved;
        return -1;
    }
    return 0;
}

/* count references mapped side by side, HVW_MAX_FDS pages a message; not yet on s->areas. */
static struct sim_area *map_area(struct sim_gnt *s, uint32_t count, uint16_t domid,
                                 const bh_grant_ref_t *refs, bool writable)
{
    struct sim_area *a = area_new(count, domid);
    uint32_t mapped = 0;

    if (a == NULL)
        return NULL;
    memcpy(a->refs, refs, sizeof(*refs) * count);
    for (uint32_t n; mapped < count; mapped += n) {
        n = count - mapped < HVW_MAX_FDS ? count - mapped : HVW_MAX_FDS;
        if (map_batch(s, a, mapped, n, writable) != 0) {
            int saved = errno;
            unmap_refs(s, domid, a->refs, mapped); /* all or nothing */
            area_free(a);
            errno = saved;
            return NULL;
        }
    }
    return a;
}

static void *sim_map(bhgnttab_handle *h, uint32_t count, uint16_t domid, const bh_grant_ref_t *refs,
                     bool writable)
{
    struct sim_gnt *s = h->priv;
    struct sim_area *a = map_area(s, count, domid, refs, writable);

    if (a == NULL)
        return NULL;
    a->next = s->areas;
    s->areas = a;
    return a->addr;
}

static int sim_unmap(bhgnttab_handle *h, void *addr, uint32_t count)
{
    struct sim_gnt *s = h->priv;
    struct sim_area *a = area_take(s, addr, count);
    int rc;

    if (a == NULL)
        return -1;
    rc = unmap_refs(s, a->domid, a->refs, a->count);
    area_free(a);
    return rc;
}

/*
 * The sets are mapped side by side as one area (map_area's batches of
 * HVW_MAX_FDS pages, one message each), which is then cut into an area
 * per set: each is unmapped on its own, as if mapped alone.
 */
static int sim_map_many(bhgnttab_handle *h, uint32_t n, uint16_t domid, const uint32_t *counts,
                        const bh_grant_ref_t *refs, bool writable, void **addrs)
{
    struct sim_gnt *s = h->priv;
    struct sim_area **parts = calloc(n, sizeof(*parts)), *whole = NULL;
    uint32_t total = 0, off = 0, made = 0;

    for (uint32_t i = 0; i < n; i++)
        total += counts[i];
    for (; parts != NULL && made < n; made++)
        if ((parts[made] = calloc(1, sizeof(*parts[made]) + sizeof(refs[0]) * counts[made])) ==
            NULL)
            break;
    if (parts == NULL || made < n)
        errno = ENOMEM;
    else
        whole = map_area(s, total, domid, refs, writable);
    if (whole == NULL) {
        int saved = errno;

        for (uint32_t i = 0; i < made; i++)
            free(parts[i]);
        free(parts);
        errno = saved;
        return -1;
    }
    for (uint32_t i = 0; i < n; off += counts[i++]) {
        struct sim_area *a = parts[i];

        a->addr = whole->addr + (size_t)off * PAGE;
        a->count = counts[i];
        a->domid = domid;
        memcpy(a->refs, refs + off, sizeof(refs[0]) * counts[i]);
        a->next = s->areas;
        s->areas = a;
        addrs[i] = a->addr;
    }
    free(whole); /* the struct alone: its pages are the parts' now */
    free(parts);
    return 0;
}

/*
 * The areas' references in one GNT_UNMAP per HVW_MAX_FDS of one granter
 * (every caller's areas have one), then their pages.
 */
static int sim_unmap_many(bhgnttab_handle *h, uint32_t n, void *const *addrs,
                          const uint32_t *counts)
{
    struct sim_gnt *s = h->priv;
    bh_grant_ref_t refs[HVW_MAX_FDS];
    uint32_t nrefs = 0;
    int rc = 0, saved = 0, domid = -1;

    for (uint32_t i = 0; i < n; i++) {
        struct sim_area *a = area_take(s, addrs[i], counts[i]);

        if (nrefs > 0 && (a == NULL || a->domid != domid || nrefs + a->count > HVW_MAX_FDS)) {
            if (unmap_refs(s, (uint16_t)domid, refs, nrefs) != 0 && rc == 0) {
                rc = -1;
                saved = errno;
            }
            nrefs = 0;
        }
        if (a == NULL) {
            if (rc == 0) {
                rc = -1;
                saved = EINVAL;
            }
            continue;
        }
        if (a->count > HVW_MAX_FDS) { /* a big one goes alone */
            if (unmap_refs(s, a->domid, a->refs, a->count) != 0 && rc == 0) {
                rc = -1;
                saved = errno;
            }
        } else {
            memcpy(refs + nrefs, a->refs, sizeof(refs[0]) * a->count);
            nrefs += a->count;
            domid = a->domid;
        }
        area_free(a);
    }
    if (nrefs > 0 && unmap_refs(s, (uint16_t)domid, refs, nrefs) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0)
        errno = saved;
    return rc;
}

static void copy_ptr(struct hvw_copy_ptr *w, const union bhgnttab_copy_ptr *p, bool gref)
{
    if (gref) {
        w->ref = p->foreign.ref;
        w->offset = p->foreign.offset;
        w->domid = p->foreign.domid;
    } else {
        w->virt = (uint64_t)(uintptr_t)p->virt;
    }
}

/* One GNT_COPY of n <= HVW_MAX_COPY segments. */
static int copy_batch(struct sim_gnt *s, bhgnttab_grant_copy_segment_t *segs, uint32_t n)
{
    uint8_t req[sizeof(struct hvw_gnt_copy_req) + sizeof(struct hvw_copy_seg) * HVW_MAX_COPY];
    struct hvw_gnt_copy_req head = {.count = n};
    int32_t rsp[1 + HVW_MAX_COPY];
    struct chan_reply r = {.p = rsp, .cap = sizeof(rsp)};

    memcpy(req, &head, sizeof(head));
    for (uint32_t i = 0; i < n; i++) {
        struct hvw_copy_seg w = {.len = segs[i].len, .flags = segs[i].flags};
        copy_ptr(&w.src, &segs[i].source, segs[i].flags & GNTCOPY_source_gref);
        copy_ptr(&w.dst, &segs[i].dest, segs[i].flags & GNTCOPY_dest_gref);
        memcpy(req + sizeof(head) + sizeof(w) * i, &w, sizeof(w));
    }
    if (chan_call(&s->ch, HVW_OP_GNT_COPY, req, sizeof(head) + sizeof(struct hvw_copy_seg) * n,
                  &r) != 0)
        return -1;
    if (r.len != sizeof(int32_t) * (1 + n) || (uint32_t)rsp[0] != n)
        return chan_broken(&s->ch, HVW_OP_GNT_COPY, "a reply of the wrong size");
    for (uint32_t i = 0; i < n; i++)
        segs[i].status = (int16_t)rsp[1 + i];
    return 0;
}

static int sim_grant_copy(bhgnttab_handle *h, uint32_t count, bhgnttab_grant_copy_segment_t *segs)
{
    for (uint32_t done = 0, n; done < count; done += n) {
        n = count - done < HVW_MAX_COPY ? count - done : HVW_MAX_COPY;
        if (copy_batch(h->priv, segs + done, n) != 0)
            return -1;
    }
    return 0;
}

static int sim_gnttab_open(bhgnttab_handle *h)
{
    return sim_gnt_open(&h->priv, h->logger);
}

static void sim_gnttab_close(bhgnttab_handle *h)
{
    sim_gnt_close(h->priv);
}

/* ---- event channels ---- */

/*
 * A port's eventfd sits in the handle's epoll set edge-triggered: every
 * notify (an add to the counter) reports the port once, and the counter is
 * never read.  Masking is ours: pending() masks the port it returns; a
 * notify that comes while it is masked is latched, and unmask() sends the
 * port to itself then, so that it fires again at once, as Xen delivers a
 * pending event on unmask.  That is two system calls an event (epoll_wait,
 * and the kick that caused it) where a one-shot registration took four (an
 * epoll_ctl to re-arm it and a read to clear the counter besides): about
 * 0.9 us less an event here, and the network path takes several a frame.
 */
struct sim_port {
    int fd;        /* the port's own eventfd, in the epoll set */
    int remote_fd; /* the peer port's eventfd, signalled to notify */
    bool bound;
    bool masked;  /* returned by pending(), not yet unmasked */
    bool latched; /* notified while masked */
};

struct sim_evt {
    struct sim_chan ch;
    int epfd;
    struct sim_port *ports; /* by port number */
    uint32_t nports;
};

static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;
static aio_context_t kick_ctx; /* under kick_lock; 0 until the first notify */

/*
 * Adds 1 to the peer's eventfd without ever blocking, as Xen's notify never
 * blocks: through the kernel (evtkick.h), since write(2) can block on an
 * eventfd whose holders cleared O_NONBLOCK and filled the counter.
 * Where there is no aio (a sandbox forbids it, fs.aio-max-nr is reached),
 * a plain write(2) does: it fails with EAGAIN on a full counter (the peer
 * is notified already) unless the peer played the trick above, which then
 * costs this thread, not the peer.
 */
static int kick_write(int fd, int *err)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) == (ssize_t)sizeof(one) || errno == EAGAIN)
        return 0;
    *err = errno;
    return -1;
}

static int kick(int fd)
{
    int rc, saved = 0;

    pthread_mutex_lock(&kick_lock);
    if ((rc = evtkick(&kick_ctx, fd)) != 0 && errno == EINVAL)
        rc = evtkick(&kick_ctx, fd); /* after fork(2): a context of our own, once */
    if (rc != 0)
        rc = kick_write(fd, &saved);
    pthread_mutex_unlock(&kick_lock);
    errno = saved;
    return rc;
}

static struct sim_port *port_get(struct sim_evt *e, bh_evtchn_port_t port)
{
    if (port >= e->nports || !e->ports[port].bound) {
        errno = ENOTCONN; /* not bound through this handle, as Linux's evtchn answers */
        return NULL;
    }
    return &e->ports[port];
}

/* Tracks a port the daemon bound for us: fds [own, remote's]. */
static int port_add(struct sim_evt *e, uint32_t port, const int fds[2])
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = port};

    if (port >= e->nports) {
        struct sim_port *p = realloc(e->ports, sizeof(*p) * (port + 1));
        if (p == NULL)
            return -1;
        memset(p + e->nports, 0, sizeof(*p) * (port + 1 - e->nports));
        e->ports = p;
        e->nports = port + 1;
    }
    /* A notify that came before this fires at once (the counter is nonzero). */
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fds[0], &ev) != 0)
        return -1;
    e->ports[port] = (struct sim_port){.fd = fds[0], .remote_fd = fds[1], .bound = true};
    return 0;
}

static int port_close_remote(struct sim_evt *e, uint32_t port)
{
    struct hvw_evt_port_req req = {.port = port};
    struct chan_reply r = {.p = NULL, .cap = 0};

    return chan_call(&e->ch, HVW_OP_EVT_CLOSE, &req, sizeof(req), &r);
}

/* UNBOUND or BIND: the daemon answers with a port and its two eventfds. */
static int evt_bound(struct sim_evt *e, uint16_t op, const void *req, size_t len)
{
    uint32_t port;
    int fds[2];
    struct chan_reply r = {.p = &port, .cap = sizeof(port), .fds = fds, .nfds = 2};

    if (chan_call(&e->ch, op, req, len, &r) != 0)
        return -1;
    if (r.len != sizeof(port) || port == 0 || port > SIM_MAX_PORT ||
        (port < e->nports && e->ports[port].bound)) {
        close_fds(fds, 2);
        return chan_broken(&e->ch, op, "a port that cannot be");
    }
    if (port_add(e, port, fds) != 0) {
        int saved = errno;
        close_fds(fds, 2);
        port_close_remote(e, port);
        errno = saved;
        return -1;
    }
    return (int)port;
}

static int sim_bind_unbound(bhevtchn_handle *h, uint16_t domid)
{
    struct hvw_evt_unbound_req req = {.remote_domid = domid};

    return evt_bound(h->priv, HVW_OP_EVT_UNBOUND, &req, sizeof(req));
}

static int sim_bind_interdomain(bhevtchn_handle *h, uint16_t domid, bh_evtchn_port_t remote_port)
{
    struct hvw_evt_bind_req req = {.remote_domid = domid, .remote_port = remote_port};

    return evt_bound(h->priv, HVW_OP_EVT_BIND, &req, sizeof(req));
}

static int sim_unbind(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    struct sim_evt *e = h->priv;
    struct sim_port *p = port_get(e, port);

    if (p == NULL || port_close_remote(e, port) != 0)
        return -1;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    close(p->remote_fd);
    *p = (struct sim_port){.bound = false};
    return 0;
}

static int sim_notify(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    struct sim_port *p = port_get(h->priv, port);

    return p != NULL ? kick(p->remote_fd) : -1;
}

/* The next port notified and not masked, now masked; -1 with EAGAIN when there is none. */
static int sim_pending(bhevtchn_handle *h)
{
    struct sim_evt *e = h->priv;
    struct epoll_event ev;
    struct sim_port *p;
    int n;

    for (;;) {
        do
            n = epoll_wait(e->epfd, &ev, 1, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (ev.data.u32 >= e->nports || !e->ports[ev.data.u32].bound)
            continue; /* unbound since: its fd left the set with it */
        p = &e->ports[ev.data.u32];
        if (p->masked) {
            p->latched = true;
            continue;
        }
        p->masked = true;
        return (int)ev.data.u32;
    }
}

static int sim_unmask(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    struct sim_port *p = port_get(h->priv, port);

    if (p == NULL)
        return -1;
    p->masked = false;
    if (p->latched) {
        /* notified while masked: it fires again at once, as on Xen */
        p->latched = false;
        return kick(p->fd);
    }
    return 0;
}

static int sim_evtchn_fd(bhevtchn_handle *h)
{
    return ((struct sim_evt *)h->priv)->epfd;
}

static int sim_evtchn_open(bhevtchn_handle *h)
{
    struct sim_evt *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return -1;
    if ((e->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || chan_open(&e->ch, h->logger) != 0) {
        int saved = errno;
        if (e->epfd >= 0)
            close(e->epfd);
        free(e);
        errno = saved;
        return -1;
    }
    h->priv = e;
    return 0;
}

/* Closing the channel closes the ports in the daemon, which wakes their peers. */
static void sim_evtchn_close(bhevtchn_handle *h)
{
    struct sim_evt *e = h->priv;

    chan_close(&e->ch);
    for (uint32_t p = 0; p < e->nports; p++)
        if (e->ports[p].bound) {
            close(e->ports[p].fd);
            close(e->ports[p].remote_fd);
        }
    close(e->epfd);
    free(e->ports);
    free(e);
}

const struct plat_ops plat_sim_ops = {
    .name = "sim",
    .domid = sim_domid,
    .gntshr_open = sim_gntshr_open,
    .gntshr_close = sim_gntshr_close,
    .share_pages = sim_share_pages,
    .unshare = sim_unshare,
    .gnttab_open = sim_gnttab_open,
    .gnttab_close = sim_gnttab_close,
    .map = sim_map,
    .unmap = sim_unmap,
    .map_many = sim_map_many,
    .unmap_many = sim_unmap_many,
    .grant_copy = sim_grant_copy,
    .evtchn_open = sim_evtchn_open,
    .evtchn_close = sim_evtchn_close,
    .evtchn_fd = sim_evtchn_fd,
    .notify = sim_notify,
    .bind_unbound = sim_bind_unbound,
    .bind_interdomain = sim_bind_interdomain,
    .unbind = sim_unbind,
    .pending = sim_pending,
    .unmask = sim_unmask,
};
