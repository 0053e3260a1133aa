/*
 * gnttab.c - the grant tables of bulkhead-hv.
 *
 * Each domain has a table of max_grant_frames * 512 references.  A live
 * reference names a frame: one sealed memfd page that the daemon made for
 * the granter and keeps one fd of, its own, which it never hands out.
 * The granter gets a file description of the page opened afresh,
 * read-write; the domain it was granted to gets one with the access its
 * map asks for, opened at its first map and kept for its later ones
 * (frame_open_kept).
 *
 * Unmapping cannot be trusted.  Once a process has mmapped a page from an
 * fd the daemon sent, nothing the daemon does can take the page away from
 * it: GNT_UNMAP, or a channel closing, is only the process's word that it
 * let go, and a liar can keep the mapping.  So a frame is never reused.
 * When its grant has ended and no channel claims a mapping, the daemon
 * closes its fd and forgets it; a new grant always gets a new memfd.  A liar
 * keeps a view of a page it could already see, and never sees what anyone
 * grants later.
 *
 * A frame's life: shared through a channel, its owner; ended by GNT_END
 * from any channel of the granting domain, by its owner closing (as
 * Linux's gntalloc ends the grants of a file that is closed) or by the
 * granting domain going away; freed once ended and mapped by no channel.
 * Its reference stays taken until it is freed, so an ended grant that is
 * still mapped is never handed out again.  A domain that goes away takes
 * its table with it; its frames still mapped elsewhere live on as orphans,
 * reachable only from the channels that map them, until those unmap or
 * close.
 *
 * Every request is hostile: lengths are checked against req->len before a
 * byte of payload is read, counts are bounded before they are multiplied,
 * and a batch that fails hands out nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xen/grant_table.h>

#include "hv.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008u /* Linux 6.3 */
#endif

/* The largest table a domain may ask for: what DOM_CREATE accepts (domparse.c). */
#define GNT_MAX_FRAMES 4096u

struct gnt_frame {
    struct hv_frame loc;     /* where the page is kept (framestore.c); never handed out */
    uint32_t ref;
    uint16_t granter;        /* domid */
    uint16_t grantee;        /* the only domain that may map it or copy with it */
    bool writable;           /* ... and whether it may write it */
    bool ended;              /* access ended: freed when the last mapping goes */
    bool counted;            /* gnttab_stats: seen in this pass */
    uint32_t mapcount;       /* mappings claimed by channels */
    struct hv_gnttab *table; /* the granter's table while the frame holds its ref */
    struct hv_conn *owner;   /* the channel that shared it, until access ends */
    int cfd[2];              /* kept for the grantee's maps (fdc): [writable], or -1 */
    uint32_t cslot[2];       /* ... and where in fdc */
};

/*
 * Descriptions kept for mapping.  Opening a page through /proc/STORE/fd/N
 * costs 3-4 us (a path walk through procfs), and a backend that does not
 * keep its mappings (no persistent grants) maps the same pages again with
 * every request: 256 opens for one 1 MiB request.  So the description a
 * grantee's map opened is kept, per access mode, and later maps of that
 * frame send it again (each map gets a dup, closed once sent).  Only the
 * grantee ever gets these, and only the frame's grantee may map it, so the
 * processes that share a description are those of one domain: what one of
 * them does to it (its file offset, F_SETFL) reaches nobody else, and a
 * mapping takes none of it.  The daemon's own reads and writes of pages
 * (GNT_COPY) open their own.  The cache is a ring of at most fdc_cap
 * descriptions, the oldest closed to make room; a freed frame's are closed
 * with it (its slots left empty until the ring comes round).
 */
struct fdc_slot {
    struct gnt_frame *f; /* NULL: empty */
    uint8_t w;           /* which of f->cfd */
};
#define FDC_MAX  4096u
#define FDC_SHED 64u /* closed at once when fds run short */
static struct fdc_slot *fdc;
static uint32_t fdc_cap, fdc_head, fdc_n, fdc_live; /* live: slots with a description */
static void fdc_shed(unsigned int n);

/* f's kept description for access w, out of the cache: the caller closes it or hands it out. */
static int fdc_take(struct gnt_frame *f, unsigned int w)
{
    int fd = f->cfd[w];

    f->cfd[w] = -1;
    fdc[f->cslot[w]].f = NULL;
    fdc_live--;
    return fd;
}

struct hv_gnttab {
    uint32_t nrefs;
    uint32_t nframes;        /* references taken */
    struct gnt_frame **refs; /* by reference; NULL when free */
    uint32_t *free;          /* a ring of the free references, oldest first */
    uint32_t free_head;
};

/* One frame a channel has mapped, and how many times. */
struct gnt_map {
    struct gnt_frame *f; /* NULL: an empty slot */
    uint32_t count;
};

/* A channel's mappings: open addressing on (granter, ref), linear probing. */
struct hv_conn_maps {
    struct gnt_map *slots;
    uint32_t cap; /* a power of two, or 0 */
    uint32_t used;
};

/* An environment error: logged with errno, answered with ENOMEM. */
static int env_fail(struct hv *hv, const char *what, uint16_t domid)
{
    hv_log(hv,
           "gnttab: cannot %s for domain %u: %s (raise the daemon's RLIMIT_NOFILE or free memory)",
           what, domid, strerror(errno));
    return ENOMEM;
}

static uint32_t payload_u32(const struct hv_req *req, size_t off)
{
    uint32_t v;

    memcpy(&v, req->p + off, sizeof(v)); /* the payload need not be aligned */
    return v;
}

/* ---- the table ---- */

static struct gnt_frame *table_get(const struct hv_gnttab *t, uint32_t ref)
{
    return ref < t->nrefs ? t->refs[ref] : NULL;
}

/*
 * References come back oldest first, so that a reference just ended is the
 * last to be handed out again: a peer holding a stale one meets ENOENT for
 * as long as possible rather than someone else's new page.
 */
static void table_take(struct hv_gnttab *t, struct gnt_frame *f)
{
    f->ref = t->free[t->free_head];
    t->free_head = (t->free_head + 1) % t->nrefs;
    t->nframes++;
    t->refs[f->ref] = f;
    f->table = t;
}

static void table_put(struct hv_gnttab *t, uint32_t ref)
{
    uint32_t nfree = t->nrefs - t->nframes;

    t->free[(t->free_head + nfree) % t->nrefs] = ref;
    t->nframes--;
    t->refs[ref] = NULL;
}

int gnttab_init(void)
{
    struct rlimit rl;
    unsigned long nr_open = 0;
    FILE *f;

    /*
     * One fd per live frame, up to 32768 per domain with the default table,
     * and two per event channel: the usual soft limit of 1024 would run out
     * with the first busy domain.  Go as far as the kernel allows.
     */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return errno;
    if ((f = fopen("/proc/sys/fs/nr_open", "re")) != NULL) {
        if (fscanf(f, "%lu", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    if (nr_open > rl.rlim_max) {
        struct rlimit up = {.rlim_cur = nr_open, .rlim_max = nr_open};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
        /* Else, without CAP_SYS_RESOURCE: as far as the hard limit. */
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return errno;
    }
    /* Kept descriptions take an eighth of the fds at most (stores keep the frames). */
    if (fdc == NULL)
        gnttab_keep_at_most(rl.rlim_cur / 8 < FDC_MAX ? (uint32_t)(rl.rlim_cur / 8) : FDC_MAX);
    return 0;
}

/* A new ring of n slots (0: none kept), the kept descriptions closed first. */
void gnttab_keep_at_most(uint32_t n)
{
    fdc_shed(UINT32_MAX);
    free(fdc);
    fdc = n > 0 ? calloc(n, sizeof(*fdc)) : NULL;
    fdc_cap = fdc != NULL ? n : 0;
    fdc_head = fdc_n = fdc_live = 0;
}

int gnttab_dom_init(struct hv_dom *d)
{
    uint32_t frames = d->max_grant_frames ? d->max_grant_frames : HV_DEFAULT_GRANT_FRAMES;
    struct hv_gnttab *t;

    if (frames > GNT_MAX_FRAMES)
        return EINVAL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return ENOMEM;
    t->nrefs = frames * HV_GRANTS_PER_FRAME;
    t->refs = calloc(t->nrefs, sizeof(*t->refs));
    t->free = calloc(t->nrefs, sizeof(*t->free));
    if (t->refs == NULL || t->free == NULL) {
        free(t->refs);
        free(t->free);
        free(t);
        return ENOMEM;
    }
    for (uint32_t i = 0; i < t->nrefs; i++)
        t->free[i] = i;
    d->gnt = t;
    return 0;
}

/* ---- frames ---- */

static void frame_forget_fds(struct gnt_frame *f)
{
    for (unsigned int w = 0; w < 2; w++)
        if (f->cfd[w] >= 0)
            close(fdc_take(f, w));
}

static void frame_free(struct gnt_frame *f)
{
    frame_forget_fds(f);
    if (f->table != NULL)
        table_put(f->table, f->ref);
    framestore_drop(NULL, &f->loc);
    free(f);
}

/* Access ends: at once if nobody maps the page, else with its last mapping. */
static void frame_end(struct gnt_frame *f)
{
    f->ended = true;
    f->owner = NULL;
    if (f->mapcount == 0)
        frame_free(f);
}

static void frame_unmap(struct gnt_frame *f, uint32_t n)
{
    f->mapcount -= n;
    if (f->ended && f->mapcount == 0)
        frame_free(f);
}

/* A new zeroed page for `granter`, not yet in its table. */
static int frame_new(struct hv *hv, const struct hv_dom *granter, struct gnt_frame **out)
{
    struct gnt_frame *f = NULL;
    int fd, rc = 0;

    /*
     * Data, never code: MFD_NOEXEC_SEAL where the kernel knows it (6.3), and
     * must have it when vm.memfd_noexec is 2; older kernels refuse it.
     */
    fd = memfd_create("bulkhead-grant", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("bulkhead-grant", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return env_fail(hv, "make a grant page", granter->domid);
    /*
     * Mode 0: nobody without CAP_DAC_OVERRIDE (the daemon has it, a domain's
     * root does not) can reopen the page through /proc/self/fd/N, so a
     * read-only fd stays read-only in its holder's hands.
     */
    if (ftruncate(fd, HVW_PAGE_SIZE) != 0 || fchmod(fd, 0) != 0) {
        rc = env_fail(hv, "size a grant page", granter->domid);
        goto out;
    }
    /*
     * The page can neither shrink nor grow, so a hostile granter cannot
     * truncate it and SIGBUS its mappers, and no seal can be added later
     * (F_SEAL_WRITE would freeze it under the grantee).
     */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = env_fail(hv, "seal a grant page", granter->domid);
        goto out;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        rc = ENOMEM;
        goto out;
    }
    /* Kept by a store process, so that our own fd limit bounds nothing. */
    if (framestore_put(hv, &fd, 1, &f->loc) != 0) {
        rc = env_fail(hv, "store a grant page", granter->domid);
        free(f);
        goto out;
    }
    f->granter = granter->domid;
    f->cfd[0] = f->cfd[1] = -1;
    *out = f;
out:
    close(fd);
    return rc;
}

/*
 * A new open file description of the page with the access mode asked for,
 * never a dup of the store's: a read-only one can be neither mmapped
 * shared-writable nor mprotected writable, and nothing its holder does to
 * it (F_SETFL, the file offset) reaches the store's fd or another domain's.
 */
static int frame_open(struct hv *hv, const struct gnt_frame *f, bool writable, int *fd)
{
    if ((*fd = framestore_open(hv, &f->loc, writable ? O_RDWR : O_RDONLY)) < 0)
        return env_fail(hv, "open a grant page", f->granter);
    return 0;
}

/*
 * Closes kept descriptions, oldest first, until n are closed or none is
 * left (empty slots are passed over): room in the ring, or fds when the
 * limit is near.
 */
static void fdc_shed(unsigned int n)
{
    unsigned int closed = 0;

    while (fdc_n > 0 && closed < n) {
        struct fdc_slot *old = &fdc[fdc_head];

        if (old->f != NULL) {
            close(fdc_take(old->f, old->w));
            closed++;
        }
        fdc_head = (fdc_head + 1) % fdc_cap;
        fdc_n--;
    }
}

/*
 * A grantee's description of the page (see fdc above): a dup of the kept
 * one, opened and kept first if need be.  Short of fds, kept ones are
 * closed to make room, and the last resort hands out the kept one itself;
 * a map fails for want of fds only where it failed without the cache.
 */
static int frame_open_kept(struct hv *hv, struct gnt_frame *f, bool writable, int *fd)
{
    unsigned int w = writable;

    if (fdc_cap == 0)
        return frame_open(hv, f, writable, fd);
    if (f->cfd[w] < 0) {
        int kept = framestore_open(hv, &f->loc, writable ? O_RDWR : O_RDONLY);
        uint32_t at;

        if (kept < 0 && errno == EMFILE && fdc_n > 0) {
            fdc_shed(FDC_SHED);
            kept = framestore_open(hv, &f->loc, writable ? O_RDWR : O_RDONLY);
        }
        if (kept < 0)
            return env_fail(hv, "open a grant page", f->granter);
        if (fdc_n == fdc_cap)
            fdc_shed(1);
        at = (fdc_head + fdc_n++) % fdc_cap;
        fdc[at] = (struct fdc_slot){.f = f, .w = (uint8_t)w};
        f->cfd[w] = kept;
        f->cslot[w] = at;
        fdc_live++;
    }
    if ((*fd = fcntl(f->cfd[w], F_DUPFD_CLOEXEC, 0)) >= 0)
        return 0;
    if (errno != EMFILE)
        return env_fail(hv, "pass a grant page", f->granter);
    /* Out of fds: this one goes out as it is, and others make room for the next. */
    *fd = fdc_take(f, w);
    fdc_shed(FDC_SHED);
    return 0;
}

/* ---- a channel's mappings ---- */

static uint32_t maps_home(const struct hv_conn_maps *m, uint16_t domid, uint32_t ref)
{
    uint64_t k = ((uint64_t)domid << 32 | ref) * 0x9e3779b97f4a7c15ull;

    return (uint32_t)(k >> 32) & (m->cap - 1);
}

static void maps_insert(struct hv_conn_maps *m, struct gnt_frame *f, uint32_t count)
{
    uint32_t i = maps_home(m, f->granter, f->ref);

    while (m->slots[i].f != NULL && m->slots[i].f != f)
        i = (i + 1) & (m->cap - 1);
    if (m->slots[i].f == NULL) {
        m->slots[i].f = f;
        m->used++;
    }
    m->slots[i].count += count;
}

/* Room for n more frames, so that a batch cannot fail half-way. */
static int maps_reserve(struct hv_conn *c, uint32_t n)
{
    struct hv_conn_maps *m = c->maps, grown = {0};
    uint64_t want;

    if (m == NULL && (m = c->maps = calloc(1, sizeof(*m))) == NULL)
        return ENOMEM;
    want = ((uint64_t)m->used + n) * 2; /* at most half full: short probes */
    if (want <= m->cap)
        return 0;
    grown.cap = m->cap ? m->cap : 16;
    while (grown.cap < want) {
        if (grown.cap >= (1u << 30))
            return ENOMEM;
        grown.cap *= 2;
    }
    if ((grown.slots = calloc(grown.cap, sizeof(*grown.slots))) == NULL)
        return ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i].f != NULL)
            maps_insert(&grown, m->slots[i].f, m->slots[i].count);
    free(m->slots);
    *m = grown;
    return 0;
}

/*
 * The slot that claims (domid, ref) with a count left.  `live` is the frame
 * that holds the reference now, if any; an orphan of a granter that went
 * away may carry the same pair, and is the answer only when `live` is not
 * mapped here.
 */
static struct gnt_map *maps_find(struct hv_conn_maps *m, uint16_t domid, uint32_t ref,
                                 const struct gnt_frame *live)
{
    struct gnt_map *orphan = NULL;

    if (m == NULL || m->cap == 0)
        return NULL;
    for (uint32_t i = maps_home(m, domid, ref); m->slots[i].f != NULL; i = (i + 1) & (m->cap - 1)) {
        struct gnt_map *s = &m->slots[i];
        if (s->count == 0 || s->f->granter != domid || s->f->ref != ref)
            continue;
        if (s->f == live)
            return s;
        if (s->f->table == NULL && orphan == NULL)
            orphan = s;
    }
    return orphan;
}

/* The index of f's slot, or m->cap if f is not mapped here. */
static uint32_t maps_slot(const struct hv_conn_maps *m, const struct gnt_frame *f)
{
    uint32_t i = maps_home(m, f->granter, f->ref);

    for (; m->slots[i].f != f; i = (i + 1) & (m->cap - 1))
        if (m->slots[i].f == NULL)
            return m->cap;
    return i;
}

/* Drops slot i, moving later slots of its probe run back into the hole. */
static void maps_remove(struct hv_conn_maps *m, uint32_t i)
{
    uint32_t mask = m->cap - 1, j;

    for (j = (i + 1) & mask; m->slots[j].f != NULL; j = (j + 1) & mask) {
        uint32_t home = maps_home(m, m->slots[j].f->granter, m->slots[j].f->ref);
        /* Slot j may fill the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].f = NULL;
    m->slots[i].count = 0;
    m->used--;
}

/* ---- releases ---- */

void gnttab_conn_release(struct hv *hv, struct hv_conn *c)
{
    struct hv_conn_maps *m = c->maps;
    struct hv_gnttab *t;

    /* Mappings die with their channel, whatever the process still has mapped. */
    if (m != NULL) {
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->slots[i].f != NULL)
                frame_unmap(m->slots[i].f, m->slots[i].count);
        free(m->slots);
        free(m);
        c->maps = NULL;
    }
    /* Grants die with the channel that made them, as with gntalloc. */
    if (c->dom != NULL && (t = c->dom->gnt) != NULL)
        for (uint32_t ref = 0; ref < t->nrefs; ref++)
            if (t->refs[ref] != NULL && t->refs[ref]->owner == c)
                frame_end(t->refs[ref]);
}

void gnttab_dom_release(struct hv *hv, struct hv_dom *d)
{
    struct hv_gnttab *t = d->gnt;

    if (t == NULL)
        return;
    /* Its own mappings go with it, even if its channels are not closed yet. */
    for (struct hv_conn *c = hv->conns; c != NULL; c = c->next)
        if (c->dom == d)
            gnttab_conn_release(hv, c);
    for (uint32_t ref = 0; ref < t->nrefs; ref++) {
        struct gnt_frame *f = t->refs[ref];
        if (f != NULL) {
            f->table = NULL; /* an orphan if mapped: its reference dies with the table */
            frame_end(f);
        }
    }
    free(t->refs);
    free(t->free);
    free(t);
    d->gnt = NULL;
}

/* ---- GNT_SHARE ---- */

static int share_parse(const struct hv_req *req, struct hvw_gnt_share_req *sr)
{
    if (req->len != sizeof(*sr))
        return EINVAL;
    memcpy(sr, req->p, sizeof(*sr));
    if (sr->count == 0 || sr->count > HVW_MAX_FDS || sr->writable > 1)
        return EINVAL;
    return 0;
}

int gnttab_share(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_gnt_share_req sr;
    struct hv_dom *me = req->conn->dom, *to;
    struct gnt_frame *fr[HVW_MAX_FDS];
    int fds[HVW_MAX_FDS];
    uint32_t made = 0, opened = 0;
    int rc;

    if ((rc = share_parse(req, &sr)) != 0)
        return rc;
    if (me->gnt == NULL || (to = hv_dom_find(hv, sr.domid)) == NULL || to->gnt == NULL)
        return ESRCH;
    if (me->gnt->nrefs - me->gnt->nframes < sr.count)
        return ENOSPC;
    /* Everything that can fail first; references are taken only once it all worked. */
    for (; made < sr.count; made++)
        if ((rc = frame_new(hv, me, &fr[made])) != 0)
            goto out;
    for (; opened < sr.count; opened++)
        if ((rc = frame_open(hv, fr[opened], true, &fds[opened])) != 0)
            goto out;
    memcpy(rsp->p, &sr.count, sizeof(sr.count));
    for (uint32_t i = 0; i < sr.count; i++) {
        fr[i]->grantee = to->domid;
        fr[i]->writable = sr.writable;
        fr[i]->owner = req->conn;
        table_take(me->gnt, fr[i]);
        memcpy(rsp->p + sizeof(uint32_t) * (1 + i), &fr[i]->ref, sizeof(uint32_t));
        rsp->fds[i] = fds[i];
    }
    rsp->nfds = sr.count;
    rsp->len = sizeof(uint32_t) * (1 + sr.count);
out:
    if (rc != 0) {
        for (uint32_t i = 0; i < opened; i++)
            close(fds[i]);
        for (uint32_t i = 0; i < made; i++)
            frame_free(fr[i]);
    }
    return rc;
}

/* ---- GNT_END ---- */

static int refs_parse(const struct hv_req *req, uint32_t *count)
{
    if (req->len < sizeof(uint32_t))
        return EINVAL;
    *count = payload_u32(req, 0);
    if (*count == 0 || *count > HVW_MAX_COPY)
        return EINVAL;
    if (req->len != sizeof(uint32_t) * (1 + (size_t)*count))
        return EINVAL;
    return 0;
}

static int32_t end_one(struct hv_gnttab *t, uint32_t ref)
{
    struct gnt_frame *f = table_get(t, ref);

    /*
     * Any channel of the granting domain may end its grants: the domain is
     * the unit of trust, as a Xen guest's kernel owns its whole table.  An
     * ended grant still mapped is no longer the domain's to end.
     */
    if (f == NULL || f->ended)
        return ENOENT;
    if (f->mapcount > 0)
        return EBUSY;
    frame_end(f);
    return 0;
}

int gnttab_end(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hv_gnttab *t = req->conn->dom->gnt;
    uint32_t count;
    int rc;

    if ((rc = refs_parse(req, &count)) != 0)
        return rc;
    if (t == NULL)
        return ESRCH;
    memcpy(rsp->p, &count, sizeof(count));
    for (uint32_t i = 0; i < count; i++) {
        int32_t st = end_one(t, payload_u32(req, sizeof(uint32_t) * (1 + i)));
        memcpy(rsp->p + sizeof(uint32_t) * (1 + i), &st, sizeof(st));
    }
    rsp->len = sizeof(uint32_t) * (1 + count);
    return 0;
}

/* ---- GNT_MAP and GNT_UNMAP ---- */

static int map_parse(const struct hv_req *req, struct hvw_gnt_map_req *mr,
                     uint32_t refs[HVW_MAX_FDS])
{
    if (req->len < sizeof(*mr))
        return EINVAL;
    memcpy(mr, req->p, sizeof(*mr));
    if (mr->count == 0 || mr->count > HVW_MAX_FDS || mr->writable > 1)
        return EINVAL;
    if (req->len != sizeof(*mr) + sizeof(uint32_t) * (size_t)mr->count)
        return EINVAL;
    memcpy(refs, req->p + sizeof(*mr), sizeof(uint32_t) * mr->count);
    return 0;
}

/* The caller's domain and the granter, both alive. */
static int map_doms(struct hv *hv, const struct hv_req *req, uint16_t domid, struct hv_dom **from)
{
    if (req->conn->dom->gnt == NULL)
        return ESRCH;
    *from = hv_dom_find(hv, domid);
    if (*from == NULL || (*from)->gnt == NULL)
        return ESRCH;
    return 0;
}

static int map_check(const struct gnt_frame *f, uint16_t me, bool writable)
{
    if (f == NULL || f->ended)
        return ENOENT;
    if (f->grantee != me)
        return EACCES;
    if (writable && !f->writable)
        return EPERM;
    /* A channel mapping one page forever would wrap the count in hours. */
    if (f->mapcount > UINT32_MAX - HVW_MAX_FDS)
        return ENOSPC;
    return 0;
}

int gnttab_map(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_gnt_map_req mr;
    uint32_t refs[HVW_MAX_FDS], opened = 0;
    struct gnt_frame *fr[HVW_MAX_FDS];
    struct hv_dom *from;
    int fds[HVW_MAX_FDS], rc;

    if ((rc = map_parse(req, &mr, refs)) != 0 || (rc = map_doms(hv, req, mr.domid, &from)) != 0)
        return rc;
    for (uint32_t i = 0; i < mr.count; i++) {
        fr[i] = table_get(from->gnt, refs[i]);
        if ((rc = map_check(fr[i], req->conn->dom->domid, mr.writable)) != 0)
            return rc;
    }
    if ((rc = maps_reserve(req->conn, mr.count)) != 0)
        return rc;
    for (; opened < mr.count; opened++)
        if ((rc = frame_open_kept(hv, fr[opened], mr.writable, &fds[opened])) != 0)
            goto out;
    for (uint32_t i = 0; i < mr.count; i++) {
        maps_insert(req->conn->maps, fr[i], 1);
        fr[i]->mapcount++;
        rsp->fds[i] = fds[i];
    }
    rsp->nfds = mr.count;
    memcpy(rsp->p, &mr.count, sizeof(mr.count));
    rsp->len = sizeof(struct hvw_gnt_map_rsp);
out:
    if (rc != 0)
        for (uint32_t i = 0; i < opened; i++)
            close(fds[i]);
    return rc;
}

/*
 * All or nothing, duplicates included: every reference is first claimed
 * against the channel's counts, which are given back if one is missing;
 * only then are slots dropped and frames let go (which may free them).
 */
int gnttab_unmap(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_gnt_map_req mr;
    uint32_t refs[HVW_MAX_FDS], claimed = 0;
    struct gnt_map *slot[HVW_MAX_FDS];
    struct gnt_frame *fr[HVW_MAX_FDS];
    struct hv_conn_maps *m = req->conn->maps;
    struct hv_dom *from;
    int rc;

    if ((rc = map_parse(req, &mr, refs)) != 0)
        return rc;
    from = hv_dom_find(hv, mr.domid);
    for (; claimed < mr.count; claimed++) {
        const struct gnt_frame *live =
            from != NULL && from->gnt != NULL ? table_get(from->gnt, refs[claimed]) : NULL;
        if ((slot[claimed] = maps_find(m, mr.domid, refs[claimed], live)) == NULL) {
            rc = ENOENT;
            goto out;
        }
        slot[claimed]->count--;
        fr[claimed] = slot[claimed]->f;
    }
    for (uint32_t i = 0; i < mr.count; i++) {
        uint32_t at = maps_slot(m, fr[i]); /* m->cap: a duplicate already dropped it */
        if (at < m->cap && m->slots[at].count == 0)
            maps_remove(m, at);
    }
    for (uint32_t i = 0; i < mr.count; i++)
        frame_unmap(fr[i], 1);
    rsp->len = 0;
out:
    if (rc != 0)
        for (uint32_t i = 0; i < claimed; i++)
            slot[i]->count++;
    return rc;
}

/* ---- GNT_COPY ---- */

static int copy_parse(const struct hv_req *req, uint32_t *count)
{
    if (req->len < sizeof(struct hvw_gnt_copy_req))
        return EINVAL;
    *count = payload_u32(req, 0);
    if (*count == 0 || *count > HVW_MAX_COPY)
        return EINVAL;
    if (req->len != sizeof(struct hvw_gnt_copy_req) + sizeof(struct hvw_copy_seg) * (size_t)*count)
        return EINVAL;
    return 0;
}

/* The grant side of a segment: a frame granted to the caller, writable if written. */
static int16_t copy_frame(struct hv *hv, const struct hv_dom *me, const struct hvw_copy_ptr *p,
                          uint16_t len, bool write, struct gnt_frame **f)
{
    struct hv_dom *d;

    if ((uint32_t)p->offset + len > HVW_PAGE_SIZE)
        return GNTST_bad_copy_arg;
    if ((d = hv_dom_find(hv, p->domid)) == NULL || d->gnt == NULL)
        return GNTST_bad_domain;
    *f = table_get(d->gnt, p->ref);
    if (*f == NULL || (*f)->ended)
        return GNTST_bad_gntref;
    if ((*f)->grantee != me->domid || (write && !(*f)->writable))
        return GNTST_permission_denied;
    return GNTST_okay;
}

/*
 * The caller's side of a segment, in the sending process.  req->pid comes
 * from SCM_CREDENTIALS, which the kernel lets a process fill only with its
 * own pid or, holding CAP_SYS_ADMIN over its PID namespace, with a pid of
 * that namespace - its own domain: a domain can only name its own memory.
 */
static int16_t copy_local(pid_t pid, void *buf, uint64_t virt, uint16_t len, bool write)
{
    struct iovec here = {.iov_base = buf, .iov_len = len};
    struct iovec there = {.iov_base = (void *)(uintptr_t)virt, .iov_len = len};
    ssize_t r;

    if (pid <= 0)
        return GNTST_general_error;
    r = write ? process_vm_writev(pid, &here, 1, &there, 1, 0)
              : process_vm_readv(pid, &here, 1, &there, 1, 0);
    return r == (ssize_t)len ? GNTST_okay : GNTST_bad_virt_addr;
}

/* Reads or writes part of a frame through a description of our own, opened for this. */
static int page_io(struct hv *hv, const struct gnt_frame *f, uint8_t *buf, size_t len, off_t off,
                   bool write)
{
    int fd = framestore_open(hv, &f->loc, write ? O_RDWR : O_RDONLY);
    ssize_t r;

    if (fd < 0)
        return -1;
    r = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
    close(fd);
    return r == (ssize_t)len ? 0 : -1;
}

static int16_t copy_seg(struct hv *hv, const struct hv_req *req, const struct hvw_copy_seg *s)
{
    bool sg = s->flags & GNTCOPY_source_gref, dg = s->flags & GNTCOPY_dest_gref;
    struct gnt_frame *src = NULL, *dst = NULL;
    uint8_t buf[HVW_PAGE_SIZE];
    int16_t st;

    /* A grant on at least one side, as Linux's gntdev insists: len <= one page. */
    if ((s->flags & ~(GNTCOPY_source_gref | GNTCOPY_dest_gref)) != 0 || (!sg && !dg))
        return GNTST_bad_copy_arg;
    if (sg && (st = copy_frame(hv, req->conn->dom, &s->src, s->len, false, &src)) != GNTST_okay)
        return st;
    if (dg && (st = copy_frame(hv, req->conn->dom, &s->dst, s->len, true, &dst)) != GNTST_okay)
        return st;
    if (src != NULL) {
        if (page_io(hv, src, buf, s->len, s->src.offset, false) != 0)
            return GNTST_general_error;
    } else if ((st = copy_local(req->pid, buf, s->src.virt, s->len, false)) != GNTST_okay) {
        return st;
    }
    if (dst != NULL)
        return page_io(hv, dst, buf, s->len, s->dst.offset, true) == 0 ? GNTST_okay
                                                                        : GNTST_general_error;
    return copy_local(req->pid, buf, s->dst.virt, s->len, true);
}

int gnttab_copy(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    uint32_t count;
    int rc;

    if ((rc = copy_parse(req, &count)) != 0)
        return rc;
    if (req->conn->dom->gnt == NULL)
        return ESRCH;
    memcpy(rsp->p, &count, sizeof(count));
    for (uint32_t i = 0; i < count; i++) {
        struct hvw_copy_seg s;
        int32_t st;

        memcpy(&s, req->p + sizeof(struct hvw_gnt_copy_req) + sizeof(s) * i, sizeof(s));
        st = copy_seg(hv, req, &s);
        memcpy(rsp->p + sizeof(uint32_t) * (1 + i), &st, sizeof(st));
    }
    rsp->len = sizeof(uint32_t) * (1 + count);
    return 0;
}

/* ---- GNT stats ---- */

/* Orphans are in no table: they are counted once through the channels that map them. */
static void stats_orphans(struct hv *hv, struct hvw_stats_rsp *st, bool counting)
{
    for (struct hv_conn *c = hv->conns; c != NULL; c = c->next)
        for (uint32_t i = 0; c->maps != NULL && i < c->maps->cap; i++) {
            struct gnt_frame *f = c->maps->slots[i].f;
            if (f == NULL)
                continue;
            if (!counting) {
                f->counted = false;
                continue;
            }
            st->mappings += c->maps->slots[i].count;
            if (f->table == NULL && !f->counted) {
                f->counted = true;
                st->frames++;
            }
        }
}

void gnttab_stats(struct hv *hv, struct hvw_stats_rsp *st)
{
    st->frames = 0;
    st->mappings = 0;
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->gnt != NULL)
            st->frames += d->gnt->nframes;
    stats_orphans(hv, st, true);
    stats_orphans(hv, st, false);
    st->kept = fdc_live;
}
