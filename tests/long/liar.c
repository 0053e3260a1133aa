/*
 * liar.c - a hostile guest for tests/long/hostile-load.sh: run as the
 * guest's first program in bulkhead-guest's place (BULKHEAD_GUEST), it
 * plays every frontend of its domain with tests/hostile.h, each honestly up
 * to Connected (so that `bulkhead create` returns as for any guest), and
 * then, once dom0 writes data/go = 1 in its home, tells each device's lie:
 *
 *   liar --devices N [...] -- KIND:DEVID:LIE ...
 *
 * vbd lies: garbage (an unknown operation), past-end (a read past the end
 * of the disk), bad-gref (a grant that does not exist), prod-overflow
 * (req_prod a ring and one ahead), indirect-many (an indirect request of
 * 4096 segments), indirect-seg (an indirect page whose last segment crosses
 * its page), storm (200000 notifications with nothing on the ring, then
 * one honest read, whose answer it waits for).
 * vif lies: tx-chain (TX requests that all say more_data: a chain that
 * never ends), prod-overflow (the TX req_prod a ring and one ahead), no-rx
 * (never posts an RX buffer: dom0 floods it), storm (200000
 * notifications with nothing on the rings).
 *
 * Run with no argument at all - as a driver domain's first program, in
 * bulkhead-drvdom's place (BULKHEAD_DRVDOM) - it plays the backend of
 * every device the toolstack gives it instead, honestly up to Connected,
 * and lies in what it answers, by device: vbd 51728 (xvdb) answers a
 * request twice (a duplicate id), 51744 with an id never issued, 51760
 * with a status no blkif has, 51776 moves rsp_prod a ring and one past the
 * requests; 51792 storms the frontend with 200000 notifications and then
 * answers honestly (OKAY, no data moved).  vif 0 answers an RX buffer with
 * 5000 bytes (more than its page), vif 1 answers a TX request twice, vif 2
 * storms, then serves nothing.  Those lies need no go-ahead: they answer
 * what the guest asks.
 *
 * It says where it is in data/liar: "connected", then "told"; a storm's
 * outcome in data/storm-KIND-DEVID ("answered", or why not).  Then it
 * sleeps until the domain dies, keeping its grants and mappings.  Any
 * failure before the lies is printed (the domain's console) and written to
 * data/liar as "failed: ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>

#include "hostile.h"

#define MAX_DEVS   16
#define STORM      200000ul
#define WAIT_TICKS 3000 /* 10 ms each: a bound against a hang, never a speed */

struct dev {
    char kind[8];
    uint32_t devid;
    char lie[32];
    struct bhxb_dev d;
    struct hst_end f;
};

static struct hst_id id;
static char home[64];

static void say(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *key, const char *fmt, ...)
{
    char path[128], v[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/data/%s", home, key);
    xs_write(id.xs, XBT_NULL, path, v, strlen(v));
}

static void __attribute__((noreturn)) fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("liar: %s\n", msg);
    fflush(stdout);
    if (id.xs != NULL)
        say("liar", "failed: %s", msg);
    for (;;)
        pause(); /* the domain lives on, for dom0 to look at */
}

static char *rd(const char *dir, const char *key)
{
    char path[200];
    unsigned int len;

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xs_read(id.xs, XBT_NULL, path, &len);
}

/* The device honestly up to Connected on both sides. */
static void connect_dev(struct dev *v)
{
    char fdir[128], why[1024], *be;
    int st;

    snprintf(fdir, sizeof(fdir), "%s/device/%s/%u", home, v->kind, v->devid);
    /* The toolstack writes the devices after the domain starts, as for bulkhead-guest. */
    for (int i = 0; i < WAIT_TICKS && (be = rd(fdir, "backend-id")) == NULL; i++)
        usleep(10000);
    if (be == NULL)
        fail("%s %u: no backend-id in %s: %s", v->kind, v->devid, fdir, strerror(errno));
    v->d = (struct bhxb_dev){strcmp(v->kind, "vbd") == 0 ? "vbd" : "vif", NULL, id.domid,
                             (uint32_t)atoi(be), v->devid};
    free(be);
    if (strcmp(v->kind, "vbd") == 0 ? hst_front_init(&v->f, &id, HST_BLKIF, &v->d, 0)
                                    : hst_front_init_vif(&v->f, &id, &v->d, 1))
        fail("%s %u: %s: %s", v->kind, v->devid, v->f.why, strerror(errno));
    st = hst_wait(id.xs, v->f.peer_dir, HST_STATE(XenbusStateInitWait), true, HST_TIMEOUT_MS, why,
                  sizeof(why));
    if (st != XenbusStateInitWait)
        fail("%s %u: %s", v->kind, v->devid, why);
    if (hst_front_publish(&v->f) != 0 || hst_state(&v->f, XenbusStateInitialised) != 0)
        fail("%s %u: cannot publish: %s", v->kind, v->devid, strerror(errno));
    st = hst_wait(id.xs, v->f.peer_dir, HST_STATE(XenbusStateConnected), true, HST_TIMEOUT_MS, why,
                  sizeof(why));
    if (st != XenbusStateConnected)
        fail("%s %u: %s", v->kind, v->devid, why);
    if (hst_state(&v->f, XenbusStateConnected) != 0)
        fail("%s %u: cannot say Connected", v->kind, v->devid);
}

/* An honest read of sector 0 after a storm: answered, or why not. */
static void storm_then_read(struct dev *v, uint32_t ref)
{
    blkif_request_t r = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = 7};
    blkif_response_t rsp;
    uint32_t prod = hst_idx_get(&v->f.ring[0], HST_REQ_PROD);
    char key[64];
    long n = hst_storm(&v->f, STORM);

    snprintf(key, sizeof(key), "storm-vbd-%u", v->devid);
    if (n != (long)STORM) {
        say(key, "the storm stopped after %ld notifications: %s", n, strerror(errno));
        return;
    }
    r.seg[0] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
    if (hst_produce(&v->f, 0, &r, sizeof(r), 1, true) != 0) {
        say(key, "cannot put the read on the ring");
        return;
    }
    for (int i = 0; i < WAIT_TICKS && hst_idx_get(&v->f.ring[0], HST_RSP_PROD) != prod + 1; i++)
        usleep(10000);
    if (hst_idx_get(&v->f.ring[0], HST_RSP_PROD) != prod + 1) {
        say(key, "no answer to a read after the storm");
        return;
    }
    hst_slot_read(&v->f.ring[0], prod, &rsp, sizeof(rsp));
    if (rsp.id != 7 || rsp.status != BLKIF_RSP_OKAY)
        say(key, "the read after the storm answered id %llu status %d", (unsigned long long)rsp.id,
            rsp.status);
    else
        say(key, "answered");
}

static void tell_vbd(struct dev *v)
{
    uint32_t ref;
    union {
        blkif_request_t rw;
        blkif_request_indirect_t ind;
    } r;
    char *sectors = rd(v->f.peer_dir, "sectors");
    uint64_t nsect = sectors ? strtoull(sectors, NULL, 10) : 0;

    free(sectors);
    if (hst_grant(&v->f, 1, true, &ref) == NULL)
        fail("vbd %u: cannot grant a page", v->devid);
    memset(&r, 0, sizeof(r));
    r.rw.id = 1;
    r.rw.operation = BLKIF_OP_READ;
    r.rw.nr_segments = 1;
    r.rw.seg[0] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
    if (strcmp(v->lie, "garbage") == 0) {
        r.rw.operation = 238;
    } else if (strcmp(v->lie, "past-end") == 0) {
        r.rw.sector_number = nsect - 4; /* 8 sectors from 4 before the end */
    } else if (strcmp(v->lie, "bad-gref") == 0) {
        r.rw.seg[0].gref = ref + 100000;
    } else if (strcmp(v->lie, "prod-overflow") == 0) {
        hst_idx_set(&v->f.ring[0], HST_REQ_PROD, v->f.ring[0].nr_ents + 1);
        hst_notify(&v->f);
        return;
    } else if (strcmp(v->lie, "indirect-many") == 0) {
        memset(&r, 0, sizeof(r));
        r.ind.operation = BLKIF_OP_INDIRECT;
        r.ind.indirect_op = BLKIF_OP_READ;
        r.ind.nr_segments = 4096;
        r.ind.id = 1;
        for (unsigned int i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            r.ind.indirect_grefs[i] = ref;
    } else if (strcmp(v->lie, "indirect-seg") == 0) {
        uint32_t pref;
        struct blkif_request_segment *segs = hst_grant(&v->f, 1, false, &pref);

        if (segs == NULL)
            fail("vbd %u: cannot grant an indirect page", v->devid);
        for (unsigned int i = 0; i < 200; i++)
            segs[i] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
        segs[199].last_sect = 9;
        memset(&r, 0, sizeof(r));
        r.ind.operation = BLKIF_OP_INDIRECT;
        r.ind.indirect_op = BLKIF_OP_READ;
        r.ind.nr_segments = 200;
        r.ind.id = 1;
        r.ind.indirect_grefs[0] = pref;
    } else if (strcmp(v->lie, "storm") == 0) {
        storm_then_read(v, ref);
        return;
    } else {
        fail("vbd %u: no lie called %s", v->devid, v->lie);
    }
    hst_produce(&v->f, 0, &r, sizeof(r), 1, true);
}

static void tell_vif(struct dev *v)
{
    struct netif_tx_request t = {.offset = 0, .flags = NETTXF_more_data, .size = 60};
    uint32_t ref;
    char key[64];

    if (hst_grant(&v->f, 1, false, &ref) == NULL)
        fail("vif %u: cannot grant a page", v->devid);
    t.gref = ref;
    if (strcmp(v->lie, "tx-chain") == 0) {
        /* The whole TX ring, every slot saying another follows. */
        for (uint32_t i = 0; i < v->f.ring[0].nr_ents; i++) {
            t.id = (uint16_t)i;
            hst_produce(&v->f, 0, &t, sizeof(t), 1, false);
        }
        hst_notify(&v->f);
    } else if (strcmp(v->lie, "prod-overflow") == 0) {
        hst_idx_set(&v->f.ring[0], HST_REQ_PROD, v->f.ring[0].nr_ents + 1);
        hst_notify(&v->f);
    } else if (strcmp(v->lie, "no-rx") == 0) {
        /* Nothing: its RX ring stays empty while dom0 floods it. */
    } else if (strcmp(v->lie, "storm") == 0) {
        long n = hst_storm(&v->f, STORM);

        snprintf(key, sizeof(key), "storm-vif-%u", v->devid);
        if (n == (long)STORM)
            say(key, "sent");
        else
            say(key, "the storm stopped after %ld notifications: %s", n, strerror(errno));
    } else {
        fail("vif %u: no lie called %s", v->devid, v->lie);
    }
}

/* ---- the lying backend ---- */

struct bdev {
    struct bhxb_dev d;
    struct hst_end b;
    uint32_t cons; /* requests (TX requests for a vif) taken */
    uint32_t rx_cons;
    bool up, done;
};

/* The backend honestly up to Connected, once the frontend has published. */
static int back_connect(struct bdev *v)
{
    char why[1024];
    int st;

    if (hst_back_init(&v->b, &id, strcmp(v->d.kind, "vbd") == 0 ? HST_BLKIF : HST_NETIF, &v->d) !=
            0 ||
        hst_back_publish(&v->b) != 0 || hst_state(&v->b, XenbusStateInitWait) != 0) {
        printf("liar: %s %u: cannot publish: %s\n", v->d.kind, v->d.devid, strerror(errno));
        return -1;
    }
    st = hst_wait(id.xs, v->b.peer_dir,
                  HST_STATE(XenbusStateInitialised) | HST_STATE(XenbusStateConnected), false,
                  HST_TIMEOUT_MS, why, sizeof(why));
    if (st < 0 || hst_back_connect(&v->b) != 0 || hst_state(&v->b, XenbusStateConnected) != 0) {
        printf("liar: %s %u: %s %s\n", v->d.kind, v->d.devid, why, v->b.why);
        return -1;
    }
    printf("liar: backend of %s %u connected\n", v->d.kind, v->d.devid);
    return 0;
}

/* Answers what the vbd's frontend asked, with this device's lie. */
static void serve_vbd(struct bdev *v)
{
    struct hst_ring *r = &v->b.ring[0];
    uint32_t prod = hst_idx_get(r, HST_REQ_PROD);
    blkif_request_t req;
    blkif_response_t rsp;

    if (v->done || prod == v->cons || prod - v->cons > r->nr_ents)
        return;
    hst_slot_read(r, v->cons, &req, sizeof(req));
    v->cons++;
    rsp = (blkif_response_t){.id = req.id, .operation = req.operation, .status = BLKIF_RSP_OKAY};
    switch (v->d.devid) {
    case 51728: /* a duplicate id */
        hst_produce(&v->b, 0, &rsp, sizeof(rsp), 2, true);
        v->done = true;
        break;
    case 51744: /* an id never issued */
        rsp.id = req.id ^ 0x5a5a0000u;
        hst_produce(&v->b, 0, &rsp, sizeof(rsp), 1, true);
        v->done = true;
        break;
    case 51760: /* a status no blkif has */
        rsp.status = 77;
        hst_produce(&v->b, 0, &rsp, sizeof(rsp), 1, true);
        v->done = true;
        break;
    case 51776: /* rsp_prod a ring and one past */
        hst_idx_set(r, HST_RSP_PROD, v->cons + r->nr_ents + 1);
        hst_notify(&v->b);
        v->done = true;
        break;
    case 51792: /* a storm, then the honest answer */
        hst_storm(&v->b, STORM);
        hst_produce(&v->b, 0, &rsp, sizeof(rsp), 1, true);
        break;
    default:
        hst_produce(&v->b, 0, &rsp, sizeof(rsp), 1, true);
    }
}

static void serve_vif(struct bdev *v)
{
    struct hst_ring *tx = &v->b.ring[0], *rx = &v->b.ring[1];
    uint32_t tprod = hst_idx_get(tx, HST_REQ_PROD), rprod = hst_idx_get(rx, HST_REQ_PROD);

    if (v->done)
        return;
    if (v->d.devid == 0 && rprod != v->rx_cons && rprod - v->rx_cons <= rx->nr_ents) {
        struct netif_rx_request q;
        struct netif_rx_response a;

        hst_slot_read(rx, v->rx_cons, &q, sizeof(q));
        a = (struct netif_rx_response){.id = q.id, .offset = 0, .flags = 0, .status = 5000};
        hst_produce(&v->b, 1, &a, sizeof(a), 1, true);
        v->done = true;
    } else if (v->d.devid == 1 && tprod != v->cons && tprod - v->cons <= tx->nr_ents) {
        struct netif_tx_request q;
        struct netif_tx_response a[2];

        hst_slot_read(tx, v->cons, &q, sizeof(q));
        v->cons++;
        a[0] = (struct netif_tx_response){.id = q.id, .status = NETIF_RSP_OKAY};
        hst_produce(&v->b, 0, &a[0], sizeof(a[0]), 2, true);
        v->done = true;
    } else if (v->d.devid == 2) {
        hst_storm(&v->b, STORM);
        v->done = true;
    }
}

/* Finds the devices the toolstack gave this backend domain (kind/frontend/devid). */
static unsigned int find_backends(struct bdev *devs, unsigned int n)
{
    static const char *const kinds[] = {"vbd", "vif"};

    for (unsigned int k = 0; k < 2; k++) {
        char path[128];
        unsigned int nfe = 0;
        char **fes;

        snprintf(path, sizeof(path), "%s/backend/%s", home, kinds[k]);
        if ((fes = xs_directory(id.xs, XBT_NULL, path, &nfe)) == NULL)
            continue;
        for (unsigned int f = 0; f < nfe; f++) {
            char p2[160];
            unsigned int nd = 0;
            char **ds;

            snprintf(p2, sizeof(p2), "%s/%s", path, fes[f]);
            if ((ds = xs_directory(id.xs, XBT_NULL, p2, &nd)) == NULL)
                continue;
            for (unsigned int j = 0; j < nd && n < MAX_DEVS; j++) {
                uint32_t fe = (uint32_t)atoi(fes[f]), devid = (uint32_t)atoi(ds[j]);
                bool known = false;

                for (unsigned int m = 0; m < n; m++)
                    known |= devs[m].d.domid == fe && devs[m].d.devid == devid &&
                             strcmp(devs[m].d.kind, kinds[k]) == 0;
                if (!known)
                    devs[n++].d = (struct bhxb_dev){kinds[k], NULL, fe, id.domid, devid};
            }
            free(ds);
        }
        free(fes);
    }
    return n;
}

static void __attribute__((noreturn)) lying_backend(void)
{
    static struct bdev devs[MAX_DEVS];
    unsigned int n = 0;

    printf("liar: a lying backend in domain %u\n", id.domid);
    for (;;) {
        n = find_backends(devs, n);
        for (unsigned int k = 0; k < n; k++) {
            if (!devs[k].up) {
                devs[k].up = true;
                if (back_connect(&devs[k]) != 0)
                    devs[k].done = true;
                continue;
            }
            if (strcmp(devs[k].d.kind, "vbd") == 0)
                serve_vbd(&devs[k]);
            else
                serve_vif(&devs[k]);
        }
        poll(NULL, 0, 5);
    }
}

int main(int argc, char **argv)
{
    static struct dev devs[MAX_DEVS];
    unsigned int n = 0;
    int i = 1;
    char *go;

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* bulkhead-guest's options are for bulkhead-guest: the lies follow "--". */
    while (i < argc && strcmp(argv[i], "--") != 0)
        i++;
    /*
     * The first program of a domain starts before the toolstack introduces
     * the domain to XenStore, which refuses it until then: wait for that
     * as bulkhead-guest does, then open the handles for good.
     */
    {
        struct xs_handle *boot = bhxb_open_domain(HST_TIMEOUT_MS);

        if (boot == NULL)
            fail("XenStore never took this domain: %s", strerror(errno));
        xs_close(boot);
    }
    if (hst_id_open(&id, HST_SELF) != 0)
        fail("cannot open the domain's handles: %s", strerror(errno));
    snprintf(home, sizeof(home), "/local/domain/%u", id.domid);
    if (argc == 1)
        lying_backend();
    for (i++; i < argc && n < MAX_DEVS; i++, n++) {
        struct dev *v = &devs[n];

        if (sscanf(argv[i], "%7[a-z]:%u:%31s", v->kind, &v->devid, v->lie) != 3 ||
            (strcmp(v->kind, "vbd") != 0 && strcmp(v->kind, "vif") != 0))
            fail("'%s' is no KIND:DEVID:LIE", argv[i]);
    }
    for (unsigned int k = 0; k < n; k++)
        connect_dev(&devs[k]);
    say("liar", "connected");
    printf("liar: %u devices connected; waiting for data/go\n", n);
    for (;;) {
        go = rd(home, "data/go");
        if (go != NULL && strcmp(go, "1") == 0)
            break;
        free(go);
        poll(NULL, 0, 100);
    }
    free(go);
    for (unsigned int k = 0; k < n; k++) {
        if (strcmp(devs[k].kind, "vbd") == 0)
            tell_vbd(&devs[k]);
        else
            tell_vif(&devs[k]);
        printf("liar: told %s %u: %s\n", devs[k].kind, devs[k].devid, devs[k].lie);
    }
    say("liar", "told");
    for (;;)
        pause();
}
