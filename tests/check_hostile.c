/*
 * check_hostile.c - the hostile-peer harness (tests/hostile.c) proves that
 * it does what it says, against the project's own consumers that exist
 * today: libbhring's hardened ring ends (a lying req_prod breaks a back
 * end, lying response ids and rsp_prod are caught by a front end), the
 * XenBus machine fed skipped, invalid and out-of-order states and bogus
 * keys through a real bulkhead-xenstored, and bulkhead-hv's grants and
 * event channels (bogus grant references, read-only grants, ungranting
 * under a mapping, an event storm).  Every test starts its own simulation
 * and plays two domains from this process (hst_id_open).  Needs root.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "xenring.h"

static struct hst_sim sim;
static struct hst_domain guest, drv;
static struct hst_id gid, did;
static struct bhxb_dev dev;
static struct bhxb_layout *lay;
static char why[1024];

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    ck_assert_int_eq(hst_id_open(&did, drv.uid), 0);
    /* The identities are the domains', as both daemons see them. */
    ck_assert_uint_eq(gid.domid, guest.domid);
    ck_assert_uint_eq(did.domid, drv.domid);
    ck_assert_uint_eq(geteuid(), 0);
    dev = (struct bhxb_dev){"vbd", NULL, guest.domid, drv.domid, 51712};
    lay = hst_layout(sim.xs, &dev);
    ck_assert_ptr_nonnull(lay);
}

static void teardown(void)
{
    bhxb_layout_free(lay);
    hst_id_close(&did);
    hst_id_close(&gid);
    hst_sim_stop(&sim);
}

/* A frontend in the guest with its keys published, a backend in drv mapped to it. */
static void pair(struct hst_end *f, struct hst_end *b, enum hst_proto p, unsigned int order)
{
    ck_assert_msg(hst_front_init(f, &gid, p, &dev, order) == 0, "%s", f->why);
    ck_assert_int_eq(hst_front_publish(f), 0);
    ck_assert_int_eq(hst_back_init(b, &did, p, &dev), 0);
    ck_assert_msg(hst_back_connect(b) == 0, "%s", b->why);
    ck_assert_uint_eq(b->ring[0].nr_ents, f->ring[0].nr_ents);
}

/* ---- rings: a back end under a lying req_prod ---- */

enum { REQ_WRAP, REQ_FAR_AHEAD, REQ_RING_PLUS_ONE, REQ_EXACTLY_A_RING, REQ_BEHIND, REQ_CASES };

/*
 * The liar produces three garbage requests honestly (the consumer takes
 * exactly those bytes), then lies about req_prod.  Starting near 2^32, the
 * same indices wrap through zero, which is legal.
 */
START_TEST(test_back_ring_under_lying_req_prod)
{
    struct hst_end f, b;
    struct bhring r;
    blkif_request_t req, got;
    uint32_t start = _i == REQ_WRAP ? 0xfffffffeu : 0, nr;
    int rc;

    pair(&f, &b, HST_BLKIF, 0);
    nr = f.ring[0].nr_ents;
    ck_assert_uint_eq(nr, 32);
    hst_idx_set(&f.ring[0], HST_REQ_PROD, start);
    hst_idx_set(&f.ring[0], HST_RSP_PROD, start);
    ck_assert_int_eq(
        bhring_attach(&r, &bhring_blkif, BHRING_BACK, (void *)b.ring[0].sh, 0, start, false), 0);
    memset(&req, 0xa5, sizeof(req));
    req.id = 42;
    ck_assert_int_eq(hst_produce(&f, 0, &req, sizeof(req), 3, true), 0);
    ck_assert_uint_eq(hst_idx_get(&b.ring[0], HST_REQ_PROD), start + 3);
    ck_assert_int_eq(hst_events(&b), 1);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(bhring_back_get(&r, &got), 1);
        ck_assert_mem_eq(&got, &req, sizeof(req));
    }
    ck_assert_int_eq(bhring_back_get(&r, &got), 0);

    switch (_i) {
    case REQ_WRAP:
        ck_assert(!bhring_broken(&r));
        hst_idx_set(&f.ring[0], HST_REQ_PROD, start + 3 + nr + 1);
        break;
    case REQ_FAR_AHEAD:
        hst_idx_set(&f.ring[0], HST_REQ_PROD, 0x80000000u);
        break;
    case REQ_RING_PLUS_ONE:
        hst_idx_set(&f.ring[0], HST_REQ_PROD, nr + 1);
        break;
    case REQ_EXACTLY_A_RING:
        /* Legal: a full ring of requests, none answered.  Taken up to the brim, no more. */
        hst_idx_set(&f.ring[0], HST_REQ_PROD, nr);
        for (uint32_t i = 3; i < nr; i++)
            ck_assert_int_eq(bhring_back_get(&r, &got), 1);
        ck_assert_int_eq(bhring_back_get(&r, &got), 0);
        ck_assert(!bhring_broken(&r));
        ck_assert_uint_eq(bhring_in_flight(&r), nr);
        return;
    case REQ_BEHIND:
        hst_idx_set(&f.ring[0], HST_REQ_PROD, 1);
        break;
    }
    ck_assert_int_eq(hst_notify(&f), 0);
    errno = 0;
    rc = bhring_back_get(&r, &got);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert(bhring_broken(&r));
    ck_assert_str_ne(bhring_error(&r), "");
    /* Sticky: even an honest index now is refused. */
    hst_idx_set(&f.ring[0], HST_REQ_PROD, start + 3);
    ck_assert_int_eq(bhring_back_get(&r, &got), -1);
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

/* ---- rings: a front end under lying responses ---- */

enum { RSP_DUPLICATE, RSP_UNKNOWN, RSP_STALE, RSP_PROD_FAR_AHEAD, RSP_PROD_ONE_AHEAD, RSP_CASES };

START_TEST(test_front_ring_under_lying_responses)
{
    struct hst_end f, b;
    struct bhring r;
    struct bhring_ids *ids = bhring_ids_new(32, 64);
    blkif_request_t req = {.operation = BLKIF_OP_READ}, seen;
    blkif_response_t rsp = {.operation = BLKIF_OP_READ, .status = BLKIF_RSP_OKAY}, got;
    uint64_t id[2];
    void *cookie;

    ck_assert_ptr_nonnull(ids);
    pair(&f, &b, HST_BLKIF, 0);
    ck_assert_int_eq(
        bhring_attach(&r, &bhring_blkif, BHRING_FRONT, (void *)f.ring[0].sh, 0, 0, true), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(bhring_ids_get(ids, &id[i], &id[i]), 0);
        req.id = id[i];
        ck_assert_int_eq(bhring_front_put(&r, &req), 0);
    }
    ck_assert_int_eq(bhring_front_push(&r), 1);
    /* The liar reads what the honest front published, as raw bytes. */
    ck_assert_uint_eq(hst_idx_get(&b.ring[0], HST_REQ_PROD), 2);
    for (uint32_t i = 0; i < 2; i++) {
        ck_assert_int_eq(hst_slot_read(&b.ring[0], i, &seen, sizeof(seen)), 0);
        ck_assert_uint_eq(seen.id, id[i]);
    }

    switch (_i) {
    case RSP_DUPLICATE:
    case RSP_UNKNOWN:
    case RSP_STALE:
        rsp.id = id[0];
        ck_assert_int_eq(hst_produce(&b, 0, &rsp, sizeof(rsp), 1, false), 0);
        rsp.id = _i == RSP_DUPLICATE ? id[0] : _i == RSP_UNKNOWN ? 0xdeadbeefu : id[0];
        if (_i == RSP_STALE) {
            /* The slot of id[0] is reused after its answer: the old id must not complete it. */
            ck_assert_int_eq(bhring_front_get(&r, &got), 1);
            ck_assert_int_eq(bhring_ids_put(ids, got.id, &cookie), 0);
            ck_assert_int_eq(bhring_ids_get(ids, &id[0], &id[0]), 0);
            ck_assert_ptr_nonnull(bhring_ids_peek(ids, id[0]));
            ck_assert_uint_ne(id[0], rsp.id);
        }
        ck_assert_int_eq(hst_produce(&b, 0, &rsp, sizeof(rsp), 1, true), 0);
        if (_i != RSP_STALE) {
            ck_assert_int_eq(bhring_front_get(&r, &got), 1);
            ck_assert_int_eq(bhring_ids_put(ids, got.id, &cookie), 0);
            ck_assert_ptr_eq(cookie, &id[0]);
        }
        ck_assert_int_eq(bhring_front_get(&r, &got), 1);
        errno = 0;
        ck_assert_int_eq(bhring_ids_put(ids, got.id, &cookie), -1);
        ck_assert_int_eq(errno, EPROTO);
        bhring_break(&r, "response id %llu is not outstanding", (unsigned long long)got.id);
        ck_assert_int_eq(bhring_front_get(&r, &got), -1);
        break;
    case RSP_PROD_FAR_AHEAD:
    case RSP_PROD_ONE_AHEAD:
        hst_idx_set(&b.ring[0], HST_RSP_PROD, _i == RSP_PROD_FAR_AHEAD ? 1000 : 3);
        ck_assert_int_eq(hst_notify(&b), 0);
        errno = 0;
        ck_assert_int_eq(bhring_front_get(&r, &got), -1);
        ck_assert_int_eq(errno, EPROTO);
        break;
    }
    ck_assert(bhring_broken(&r));
    ck_assert_str_ne(bhring_error(&r), "");
    /* The liar reads rsp_prod back as it is, whatever it is. */
    ck_assert_uint_eq(hst_idx_get(&f.ring[0], HST_RSP_PROD), _i == RSP_PROD_FAR_AHEAD   ? 1000
                                                             : _i == RSP_PROD_ONE_AHEAD ? 3
                                                                                        : 2);
    bhring_ids_free(ids);
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

/* A netif pair: two rings, both mapped, each written and read through the other side. */
START_TEST(test_netif_pair_and_multi_page_blkif)
{
    struct hst_end f, b;
    uint8_t tx[12] = "tx-garbage!", rx[8] = "rx-slot", back[12];

    pair(&f, &b, HST_NETIF, 0);
    ck_assert_int_eq(hst_produce(&f, 0, tx, sizeof(tx), 1, false), 0);
    ck_assert_int_eq(hst_produce(&f, 1, rx, sizeof(rx), 2, true), 0);
    ck_assert_int_eq(hst_slot_read(&b.ring[0], 0, back, sizeof(tx)), 0);
    ck_assert_mem_eq(back, tx, sizeof(tx));
    ck_assert_int_eq(hst_slot_read(&b.ring[1], 1, back, sizeof(rx)), 0);
    ck_assert_mem_eq(back, rx, sizeof(rx));
    ck_assert_uint_eq(hst_idx_get(&b.ring[1], HST_REQ_PROD), 2);
    ck_assert_int_eq(hst_events(&b), 1);
    hst_end_close(&b);
    hst_end_close(&f);

    /* Sixteen pages: ring-page-order 4 and ring-ref0..15; the last slot lands on the last page. */
    pair(&f, &b, HST_BLKIF, 4);
    ck_assert_uint_eq(b.ring[0].order, 4);
    ck_assert_uint_eq(b.ring[0].nr_ents, bhring_type_nr_ents(&bhring_blkif, 4));
    ck_assert_int_eq(hst_slot_write(&f.ring[0], b.ring[0].nr_ents - 1, tx, sizeof(tx)), 0);
    ck_assert_int_eq(hst_slot_read(&b.ring[0], b.ring[0].nr_ents - 1, back, sizeof(tx)), 0);
    ck_assert_mem_eq(back, tx, sizeof(tx));
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

/* ---- grants and event channels ---- */

/*
 * The backend's connect against one lying key: its errno, and a why naming
 * the key it tripped on (`named`, or the key itself).
 */
static void connect_fails_on(struct hst_end *f, const char *key, const char *value, int err,
                             const char *named)
{
    struct hst_end b;

    ck_assert_int_eq(hst_front_publish(f), 0);
    ck_assert_int_eq(hst_set(f, key, "%s", value), 0);
    ck_assert_int_eq(hst_back_init(&b, &did, f->proto, &dev), 0);
    errno = 0;
    ck_assert_msg(hst_back_connect(&b) == -1, "%s=%s was accepted", key, value);
    ck_assert_msg(errno == err, "%s=%s: errno %d (%s), wanted %d; %s", key, value, errno,
                  strerror(errno), err, b.why);
    ck_assert_msg(strstr(b.why, named) != NULL, "why does not name %s: %s", named, b.why);
    ck_assert_ptr_null((void *)b.ring[0].sh);
    ck_assert_int_eq(b.port, -1);
}

static void connect_fails(struct hst_end *f, const char *key, const char *value, int err)
{
    connect_fails_on(f, key, value, err, key);
}

START_TEST(test_bogus_keys_fail_with_the_simulations_error)
{
    struct hst_end f;
    struct hst_domain other;
    struct hst_id oid;
    uint32_t ref;
    char v[32];
    int port;
    void *page;

    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    /* A reference never granted: the hypervisor says ENOENT. */
    snprintf(v, sizeof(v), "%u", f.ring[0].refs[0] + 1000);
    connect_fails(&f, "ring-ref", v, ENOENT);
    /* A page granted to a third domain: EACCES, never a view of it. */
    ck_assert_int_eq(hst_sim_domain(&sim, "other", 0, &other), 0);
    ck_assert_int_eq(hst_id_open(&oid, other.uid), 0);
    page = bhgntshr_share_pages(gid.gs, other.domid, 1, &ref, 1);
    ck_assert_ptr_nonnull(page);
    snprintf(v, sizeof(v), "%u", ref);
    connect_fails(&f, "ring-ref", v, EACCES);
    /* A port left unbound for a third domain, or no port at all. */
    port = bhevtchn_bind_unbound_port(gid.ev, other.domid);
    ck_assert_int_gt(port, 0);
    snprintf(v, sizeof(v), "%d", port);
    connect_fails(&f, "event-channel", v, EINVAL);
    connect_fails(&f, "event-channel", "4095", EINVAL);
    /* Values that do not parse, or do not fit, never reach the hypervisor. */
    connect_fails(&f, "ring-ref", "12abc", EPROTO);
    connect_fails(&f, "ring-ref", "", EPROTO);
    connect_fails(&f, "ring-ref", " 8", EPROTO);
    connect_fails(&f, "ring-ref", "99999999999999", ERANGE);
    connect_fails(&f, "event-channel", "0", ERANGE);
    connect_fails(&f, "event-channel", "-1", EPROTO);
    connect_fails(&f, "ring-page-order", "99", ERANGE);
    connect_fails_on(&f, "ring-page-order", "1", ENOENT, "ring-ref0");
    ck_assert_int_eq(hst_set_raw(&f, "ring-ref", "8\0", 2), 0);
    ck_assert_int_eq(hst_rm(&f, "ring-page-order"), 0);
    {
        struct hst_end b;
        ck_assert_int_eq(hst_back_init(&b, &did, HST_BLKIF, &dev), 0);
        errno = 0;
        ck_assert_int_eq(hst_back_connect(&b), -1);
        ck_assert_int_eq(errno, EPROTO);
    }
    ck_assert_int_eq(bhgntshr_unshare(gid.gs, page, 1), 0);
    hst_id_close(&oid);
    hst_end_close(&f);
}
END_TEST

/*
 * Multi-queue blkif: 2 queues of 2 pages, keys under queue-N/, a ring and
 * a port per queue, events on one queue's port alone; then counts and
 * queue keys that lie.
 */
START_TEST(test_multi_queue_blkif)
{
    struct hst_end f, b;
    uint8_t req[16] = "queue-1-request", rsp[8] = "answer1", back[16];

    ck_assert_msg(hst_front_init_mq(&f, &gid, &dev, 1, 2) == 0, "%s", f.why);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_back_init(&b, &did, HST_BLKIF, &dev), 0);
    ck_assert_msg(hst_back_connect(&b) == 0, "%s", b.why);
    ck_assert_uint_eq(b.nqueues, 2);
    ck_assert_uint_eq(b.ring[1].order, 1);
    ck_assert_uint_eq(b.peer_qport[1], (uint32_t)f.qport[1]);
    ck_assert_int_ne(b.qport[0], b.qport[1]);
    ck_assert_int_eq(b.port, b.qport[0]);
    /* A request on queue 1, announced on its port: queue 0 saw nothing. */
    ck_assert_int_eq(hst_produce(&f, 1, req, sizeof(req), 1, true), 0);
    ck_assert_int_eq(hst_events(&b), 1);
    ck_assert_int_eq(hst_slot_read(&b.ring[1], 0, back, sizeof(req)), 0);
    ck_assert_mem_eq(back, req, sizeof(req));
    ck_assert_uint_eq(hst_idx_get(&b.ring[1], HST_REQ_PROD), 1);
    ck_assert_uint_eq(hst_idx_get(&b.ring[0], HST_REQ_PROD), 0);
    ck_assert_int_eq(hst_produce(&b, 1, rsp, sizeof(rsp), 1, true), 0);
    ck_assert_int_eq(hst_events(&f), 1);
    ck_assert_int_eq(hst_slot_read(&f.ring[1], 0, back, sizeof(rsp)), 0);
    ck_assert_mem_eq(back, rsp, sizeof(rsp));
    ck_assert_uint_eq(hst_idx_get(&f.ring[0], HST_RSP_PROD), 0);
    hst_end_close(&b);
    /* Counts that lie, and a queue whose keys are not there. */
    connect_fails(&f, "multi-queue-num-queues", "0", ERANGE);
    connect_fails(&f, "multi-queue-num-queues", "5", ERANGE);
    connect_fails(&f, "multi-queue-num-queues", "2x", EPROTO);
    connect_fails_on(&f, "multi-queue-num-queues", "3", ENOENT, "queue-2/ring-ref0");
    ck_assert_int_eq(hst_set(&f, "multi-queue-num-queues", "2"), 0);
    connect_fails(&f, "queue-1/event-channel", "0", ERANGE);
    hst_end_close(&f);
}
END_TEST

START_TEST(test_data_grants_read_only_and_ungranted_in_flight)
{
    struct hst_end f, b;
    uint32_t ro, rw;
    volatile uint8_t *fro, *frw, *bro, *brw;

    pair(&f, &b, HST_BLKIF, 0);
    fro = hst_grant(&f, 1, false, &ro);
    frw = hst_grant(&f, 1, true, &rw);
    ck_assert_ptr_nonnull((void *)fro);
    ck_assert_ptr_nonnull((void *)frw);
    fro[0] = 0x11;
    /* A read-only grant cannot be mapped writable: EPERM. */
    errno = 0;
    ck_assert_ptr_null(bhgnttab_map_grant_ref(did.gt, guest.domid, ro, PROT_READ | PROT_WRITE));
    ck_assert_int_eq(errno, EPERM);
    bro = bhgnttab_map_grant_ref(did.gt, guest.domid, ro, PROT_READ);
    ck_assert_ptr_nonnull((void *)bro);
    ck_assert_uint_eq(bro[0], 0x11);
    /* Ungranted while the backend holds it (a request in flight): it keeps its page. */
    brw = bhgnttab_map_grant_ref(did.gt, guest.domid, rw, PROT_READ | PROT_WRITE);
    ck_assert_ptr_nonnull((void *)brw);
    frw[7] = 0x5a;
    ck_assert_int_eq(hst_ungrant(&f, (void *)frw, 1), 0);
    ck_assert_uint_eq(brw[7], 0x5a);
    brw[8] = 0x6b;
    ck_assert_int_eq(bhgnttab_unmap(did.gt, (void *)brw, 1), 0);
    ck_assert_int_eq(bhgnttab_unmap(did.gt, (void *)bro, 1), 0);
    /*
     * As with gntalloc, the granter's library ends a busy grant at its next
     * call once the page is unmapped: then it is gone for good.
     */
    ck_assert_int_eq(hst_ungrant(&f, (void *)fro, 1), 0);
    errno = 0;
    ck_assert_ptr_null(bhgnttab_map_grant_ref(did.gt, guest.domid, rw, PROT_READ));
    ck_assert_int_eq(errno, ENOENT);
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

#define STORM 100000

/* A storm nobody reads yet: the sender never blocks, the receiver wakes once. */
START_TEST(test_event_storm_coalesces)
{
    struct hst_end f, b;

    pair(&f, &b, HST_BLKIF, 0);
    ck_assert_int_eq(hst_storm(&f, STORM), STORM);
    ck_assert_int_eq(hst_storm(&b, STORM), STORM);
    ck_assert_int_eq(hst_events(&b), 1);
    ck_assert_int_eq(hst_events(&b), 0);
    ck_assert_int_eq(hst_events(&f), 1);
    ck_assert_int_eq(hst_events(&f), 0);
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

/* Whether h's fd is readable now. */
static bool ev_ready(bhevtchn_handle *h)
{
    struct pollfd p = {.fd = bhevtchn_fd(h), .events = POLLIN};

    return poll(&p, 1, 0) == 1;
}

/*
 * Xen's masking through the platform calls: pending() hands a port out once
 * however often it was notified and masks it; a notify while it is masked
 * is kept, not handed out, and unmask delivers it at once (and only then);
 * an unmask with nothing kept delivers nothing.  Two ports are told apart.
 */
START_TEST(test_event_mask_and_unmask)
{
    int a1, a2, b1, b2, p, q;

    ck_assert_int_ge(a1 = bhevtchn_bind_unbound_port(gid.ev, drv.domid), 1);
    ck_assert_int_ge(a2 = bhevtchn_bind_unbound_port(gid.ev, drv.domid), 1);
    ck_assert_int_ge(b1 = bhevtchn_bind_interdomain(did.ev, guest.domid, (uint32_t)a1), 1);
    ck_assert_int_ge(b2 = bhevtchn_bind_interdomain(did.ev, guest.domid, (uint32_t)a2), 1);
    ck_assert(!ev_ready(gid.ev));
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    ck_assert_int_eq(errno, EAGAIN);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(bhevtchn_notify(did.ev, (uint32_t)b1), 0);
    ck_assert(ev_ready(gid.ev));
    ck_assert_int_eq(bhevtchn_pending(gid.ev), a1);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1); /* three notifies, one event */
    /* masked: a notify is kept, not handed out */
    ck_assert_int_eq(bhevtchn_notify(did.ev, (uint32_t)b1), 0);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    ck_assert(!ev_ready(gid.ev));
    /* the other port is not masked with it */
    ck_assert_int_eq(bhevtchn_notify(did.ev, (uint32_t)b2), 0);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), a2);
    /* unmask delivers what was kept, once */
    ck_assert_int_eq(bhevtchn_unmask(gid.ev, (uint32_t)a1), 0);
    ck_assert(ev_ready(gid.ev));
    ck_assert_int_eq(bhevtchn_pending(gid.ev), a1);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    /* nothing kept: unmask delivers nothing */
    ck_assert_int_eq(bhevtchn_unmask(gid.ev, (uint32_t)a1), 0);
    ck_assert_int_eq(bhevtchn_unmask(gid.ev, (uint32_t)a2), 0);
    ck_assert(!ev_ready(gid.ev));
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    /* both notified while unmasked: each handed out once, in either order */
    ck_assert_int_eq(bhevtchn_notify(did.ev, (uint32_t)b2), 0);
    ck_assert_int_eq(bhevtchn_notify(did.ev, (uint32_t)b1), 0);
    ck_assert_int_ge(p = bhevtchn_pending(gid.ev), 1);
    ck_assert_int_ge(q = bhevtchn_pending(gid.ev), 1);
    ck_assert_int_ne(p, q);
    ck_assert(p == a1 || p == a2);
    ck_assert(q == a1 || q == a2);
    ck_assert_int_eq(bhevtchn_pending(gid.ev), -1);
    /* and the other way: the guest notifies the driver domain */
    ck_assert_int_eq(bhevtchn_notify(gid.ev, (uint32_t)a1), 0);
    ck_assert_int_eq(bhevtchn_pending(did.ev), b1);
    ck_assert_int_eq(bhevtchn_unbind(did.ev, (uint32_t)b1), 0);
    ck_assert_int_eq(bhevtchn_unbind(did.ev, (uint32_t)b2), 0);
    ck_assert_int_eq(bhevtchn_unbind(gid.ev, (uint32_t)a1), 0);
    ck_assert_int_eq(bhevtchn_unbind(gid.ev, (uint32_t)a2), 0);
}
END_TEST

struct receiver {
    struct hst_end *b;
    unsigned long wakes;
    int done; /* 1: saw the last mark; -1: stuck (nothing for 30 s) */
};

/* Wakes on the port, counting, until the liar's final mark is in the ring. */
static void *receive(void *arg)
{
    struct receiver *rc = arg;
    uint8_t mark = 0;

    while (rc->done == 0) {
        struct pollfd p = {.fd = bhevtchn_fd(rc->b->id->ev), .events = POLLIN};
        int n;
        if (poll(&p, 1, HST_TIMEOUT_MS) != 1) {
            rc->done = -1;
            break;
        }
        if ((n = hst_events(rc->b)) < 0) {
            rc->done = -1;
            break;
        }
        rc->wakes += (unsigned long)n;
        hst_slot_read(&rc->b->ring[0], 0, &mark, 1);
        if (mark == 1)
            rc->done = 1;
    }
    return NULL;
}

/* A storm into a receiver that is awake: it sees the last notification and never hangs. */
START_TEST(test_event_storm_against_a_live_receiver)
{
    struct hst_end f, b;
    struct receiver rc = {.b = &b};
    uint8_t one = 1;
    pthread_t t;

    pair(&f, &b, HST_BLKIF, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, receive, &rc), 0);
    ck_assert_int_eq(hst_storm(&f, STORM - 1), STORM - 1);
    ck_assert_int_eq(hst_slot_write(&f.ring[0], 0, &one, 1), 0);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the mark before the notification that follows */
    ck_assert_int_eq(hst_notify(&f), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(rc.done == 1, "the receiver lost the last notification (woke %lu times)",
                  rc.wakes);
    ck_assert_uint_ge(rc.wakes, 1);
    ck_assert_uint_le(rc.wakes, STORM);
    printf("event storm: %d notifications, %lu wake-ups\n", STORM, rc.wakes);
    hst_end_close(&b);
    hst_end_close(&f);
}
END_TEST

/* ---- XenBus: an honest machine in a thread, a liar on the other side ---- */

struct honest {
    struct xs_handle *xs; /* this thread's alone */
    const char *self, *peer;
    bhxb_watches *w;
    struct bhxb_machine m;
    int stop; /* an eventfd: the test is over */
    pthread_t thread;
    int step_failed;
};

static int honest_set_state(void *arg, XenbusState st)
{
    struct honest *h = arg;

    return bhxb_switch_state(h->xs, h->self, st);
}

static int honest_publish(void *arg, char *whybuf, size_t len)
{
    struct honest *h = arg;
    bool yes = true;
    unsigned int ref = 8, port = 5, order = 4;
    struct bhxb_key back[] = {{"feature-persistent", BHXB_BOOL, &yes, 0, false, 0},
                              {"max-ring-page-order", BHXB_UINT, &order, 0, false, 0}};
    struct bhxb_key front[] = {{"ring-ref", BHXB_UINT, &ref, 0, false, 0},
                               {"event-channel", BHXB_UINT, &port, 0, false, 0}};
    int r = h->m.view.role == BHXB_BACKEND ? bhxb_write_keys(h->xs, h->self, back, 2)
                                           : bhxb_write_keys(h->xs, h->self, front, 2);

    if (r != 0)
        snprintf(whybuf, len, "writing %s: %s", h->self, strerror(errno));
    return r;
}

/* Reads the peer's keys strictly, as a driver will. */
static int honest_connect(void *arg, char *whybuf, size_t len)
{
    struct honest *h = arg;
    const char *bad = NULL;
    bool persistent = false;
    unsigned int ref, port, order = 0, queues = 1;
    struct bhxb_key back[] = {
        {"feature-persistent", BHXB_BOOL, &persistent, 0, false, 0},
        {"max-ring-page-order", BHXB_UINT, &order, 0, false, BHRING_MAX_ORDER},
        {"multi-queue-max-queues", BHXB_UINT, &queues, 0, false, 64}};
    struct bhxb_key front[] = {{"ring-ref", BHXB_UINT, &ref, 0, true, 0},
                               {"event-channel", BHXB_UINT, &port, 0, true, (1u << 17) - 1}};
    int r = h->m.view.role == BHXB_FRONTEND ? bhxb_read_keys(h->xs, h->peer, back, 3, &bad)
                                            : bhxb_read_keys(h->xs, h->peer, front, 2, &bad);

    if (r != 0)
        snprintf(whybuf, len, "%s/%s: %s", h->peer, bad ? bad : "?", strerror(errno));
    return r;
}

static void honest_fatal(void *arg, const char *reason)
{
    struct honest *h = arg;

    bhxb_dev_fatal(h->xs, h->self, EPROTO, "%s", reason[0] ? reason : "the peer's state is bogus");
}

static const struct bhxb_driver honest_driver = {
    .publish = honest_publish,
    .connect = honest_connect,
    .fatal = honest_fatal,
    .set_state = honest_set_state,
};

static void honest_changed(void *arg, const char *path)
{
    struct honest *h = arg;

    (void)path;
    if (h->m.view.role == BHXB_FRONTEND)
        h->m.view.peer_online = bhxb_peer_online(h->xs, h->peer);
    if (bhxb_machine_step(&h->m, bhxb_read_state(h->xs, h->peer), &honest_driver, h) < 0)
        h->step_failed++;
}

static void *honest_run(void *arg)
{
    struct honest *h = arg;

    for (;;) {
        struct pollfd p[2] = {{bhxb_watches_fd(h->w), POLLIN, 0}, {h->stop, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 || (p[1].revents & POLLIN))
            break;
        if (p[0].revents & POLLIN)
            bhxb_watches_dispatch(h->w);
    }
    return NULL;
}

/* Starts an honest end of the device in its own thread, on its own XenStore handle. */
static void honest_start(struct honest *h, enum bhxb_role role, const struct hst_domain *d)
{
    char path[BHXB_PATH_MAX + 16];

    memset(h, 0, sizeof(*h));
    ck_assert_int_eq(seteuid(d->uid), 0);
    h->xs = xs_open(0);
    ck_assert_int_eq(seteuid(0), 0);
    ck_assert_ptr_nonnull(h->xs);
    h->self = role == BHXB_BACKEND ? lay->paths.backend : lay->paths.frontend;
    h->peer = role == BHXB_BACKEND ? lay->paths.frontend : lay->paths.backend;
    ck_assert_int_eq(bhxb_machine_init(&h->m, role), 0);
    h->m.view.ready = true;
    ck_assert_ptr_nonnull(h->w = bhxb_watches_new(h->xs));
    snprintf(path, sizeof(path), "%s/state", h->peer);
    ck_assert_int_ge(bhxb_watch_add(h->w, path, honest_changed, h), 0);
    ck_assert_int_ge(h->stop = eventfd(0, EFD_CLOEXEC), 0);
    ck_assert_int_eq(pthread_create(&h->thread, NULL, honest_run, h), 0);
}

static void honest_stop(struct honest *h)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(h->stop, &one, sizeof(one)), sizeof(one));
    ck_assert_int_eq(pthread_join(h->thread, NULL), 0);
    ck_assert_int_eq(h->step_failed, 0);
    bhxb_watches_free(h->w);
    xs_close(h->xs);
    close(h->stop);
}

static int wait_for(const char *dir, unsigned int states, bool or_error)
{
    int r = hst_wait(sim.xs, dir, states, or_error, HST_TIMEOUT_MS, why, sizeof(why));

    ck_assert_msg(r >= 0, "%s", why);
    return r;
}

/* The error node of dir, which must exist. */
static const char *error_of(const char *dir)
{
    static char err[256];

    ck_assert_int_eq(hst_read_error(sim.xs, dir, err, sizeof(err)), 0);
    return err;
}

/* A frontend that jumps to Connected without publishing: the backend fails the device. */
START_TEST(test_xenbus_frontend_skips_to_connected)
{
    struct honest h;
    struct hst_end f;

    honest_start(&h, BHXB_BACKEND, &drv);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateInitWait), false);
    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateConnected), 0);
    ck_assert_int_eq(wait_for(lay->paths.backend, HST_STATE(XenbusStateConnected), true),
                     HST_ERROR);
    ck_assert_ptr_nonnull(strstr(error_of(lay->paths.backend), "ring-ref"));
    wait_for(lay->paths.backend, HST_STATE(XenbusStateClosing), false);
    /* The liar closes; the honest side follows to Closed. */
    ck_assert_int_eq(hst_state(&f, XenbusStateClosed), 0);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateClosed), false);
    honest_stop(&h);
    hst_end_close(&f);
}
END_TEST

/* Keys that do not parse: the error node names the key. */
START_TEST(test_xenbus_frontend_writes_garbage_keys)
{
    static const char *const bad[][2] = {{"ring-ref", "12abc"},
                                         {"event-channel", "-1"},
                                         {"event-channel", "131072"},
                                         {"ring-ref", "99999999999999999999999"}};
    struct honest h;
    struct hst_end f;

    honest_start(&h, BHXB_BACKEND, &drv);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateInitWait), false);
    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_set(&f, bad[_i][0], "%s", bad[_i][1]), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateInitialised), 0);
    ck_assert_int_eq(wait_for(lay->paths.backend, HST_STATE(XenbusStateConnected), true),
                     HST_ERROR);
    ck_assert_msg(strstr(error_of(lay->paths.backend), bad[_i][0]) != NULL, "%s",
                  error_of(lay->paths.backend));
    honest_stop(&h);
    hst_end_close(&f);
}
END_TEST

/* States that are no XenbusState: the backend fails the device, and stays sane after. */
START_TEST(test_xenbus_frontend_writes_invalid_states)
{
    static const char *const junk[] = {"9", "garbage", "-1", "99999999999999999999", "", "4 "};
    static const char nul_state[3] = {'4', '\0', '4'};
    struct honest h;
    struct hst_end f;

    honest_start(&h, BHXB_BACKEND, &drv);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateInitWait), false);
    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_set(&f, "state", "%s", junk[_i]), 0);
    ck_assert_int_eq(wait_for(lay->paths.backend, HST_STATE(XenbusStateConnected), true),
                     HST_ERROR);
    ck_assert_int_eq(hst_read_state(sim.xs, lay->paths.backend), XenbusStateClosing);
    /* More junk, with a NUL in it: nothing changes; then Closed closes it. */
    ck_assert_int_eq(hst_set_raw(&f, "state", nul_state, sizeof(nul_state)), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateClosed), 0);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateClosed), false);
    honest_stop(&h);
    hst_end_close(&f);
}
END_TEST

/*
 * Every valid state, in an order no frontend would write, as fast as the
 * store takes them: the backend ends Closed on Closed, then comes back to
 * InitWait for a frontend at Initialising, with no error node.
 */
START_TEST(test_xenbus_frontend_states_out_of_order)
{
    /*
     * No 0 (Unknown): a frontend saying Unknown means its device is gone, and
     * the backend removes it (as Linux's blkback unregisters it) whenever its
     * watch reads that value, which depends on timing.
     */
    static const int order[] = {3, 1, 4, 2, 5, 8, 7, 4, 1, 3, 6};
    struct honest h;
    struct hst_end f;
    char err[64];

    honest_start(&h, BHXB_BACKEND, &drv);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateInitWait), false);
    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        ck_assert_int_eq(hst_state(&f, order[i]), 0);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateClosed), false);
    ck_assert_int_eq(hst_state(&f, XenbusStateInitialising), 0);
    wait_for(lay->paths.backend, HST_STATE(XenbusStateInitWait), false);
    ck_assert_int_eq(hst_read_error(sim.xs, lay->paths.backend, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, ENOENT);
    honest_stop(&h);
    hst_end_close(&f);
}
END_TEST

/* A lying backend's feature values: the honest frontend fails the device naming the key. */
START_TEST(test_xenbus_backend_writes_bogus_features)
{
    static const char *const bogus[][2] = {{"feature-persistent", "7"},
                                           {"max-ring-page-order", "99"},
                                           {"multi-queue-max-queues", "4294967296"},
                                           {"multi-queue-max-queues", "65"}};
    struct honest h;
    struct hst_end b;

    ck_assert_int_eq(hst_back_init(&b, &did, HST_BLKIF, &dev), 0);
    ck_assert_int_eq(hst_back_publish(&b), 0);
    ck_assert_int_eq(hst_set(&b, bogus[_i][0], "%s", bogus[_i][1]), 0);
    honest_start(&h, BHXB_FRONTEND, &guest);
    ck_assert_int_eq(hst_state(&b, XenbusStateInitWait), 0);
    wait_for(lay->paths.frontend, HST_STATE(XenbusStateInitialised), false);
    ck_assert_int_eq(hst_state(&b, XenbusStateConnected), 0);
    ck_assert_int_eq(wait_for(lay->paths.frontend, HST_STATE(XenbusStateConnected), true),
                     HST_ERROR);
    ck_assert_msg(strstr(error_of(lay->paths.frontend), bogus[_i][0]) != NULL, "%s",
                  error_of(lay->paths.frontend));
    honest_stop(&h);
}
END_TEST

/* hst_wait names what it saw when the state never comes. */
START_TEST(test_wait_times_out_naming_the_states_seen)
{
    struct hst_end f;

    ck_assert_int_eq(hst_front_init(&f, &gid, HST_BLKIF, &dev, 0), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateInitialised), 0);
    errno = 0;
    ck_assert_int_eq(hst_wait(sim.xs, lay->paths.frontend, HST_STATE(XenbusStateConnected), true,
                              200, why, sizeof(why)),
                     -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_msg(strstr(why, "Initialised") && strstr(why, "Connected or an error node") &&
                      strstr(why, lay->paths.frontend),
                  "%s", why);
    ck_assert_int_eq(hst_wait(sim.xs, lay->paths.frontend, HST_STATE(XenbusStateInitialised), false,
                              HST_TIMEOUT_MS, why, sizeof(why)),
                     XenbusStateInitialised);
    hst_end_close(&f);
}
END_TEST

/* ---- the liar inside a domain ---- */

/*
 * "--in-domain-front BACKEND": the liar as it runs inside the guest, on the
 * domain's own identity (HST_SELF): a blkif frontend for vbd 51712 with a
 * marked first slot, published and Initialised; it waits for the backend to
 * say Connected, then closes.
 */
static int in_domain_front(const char *backend)
{
    static const char mark[] = "from-inside";
    struct bhxb_dev d = {"vbd", NULL, 0, (uint32_t)atoi(backend), 51712};
    struct hst_id id;
    struct hst_end f;

    if (hst_id_open(&id, HST_SELF) != 0) {
        printf("hst_id_open: %s\n", strerror(errno));
        return 1;
    }
    d.domid = id.domid;
    if (hst_front_init(&f, &id, HST_BLKIF, &d, 0) != 0 || hst_front_publish(&f) != 0 ||
        hst_produce(&f, 0, mark, sizeof(mark), 1, false) != 0 ||
        hst_state(&f, XenbusStateInitialised) != 0) {
        printf("frontend: %s: %s\n", f.why, strerror(errno));
        return 1;
    }
    if (hst_wait(id.xs, f.peer_dir, HST_STATE(XenbusStateConnected), false, HST_TIMEOUT_MS, why,
                 sizeof(why)) != XenbusStateConnected) {
        printf("%s\n", why);
        return 1;
    }
    printf("domain %u connected\n", id.domid);
    hst_end_close(&f);
    hst_id_close(&id);
    return 0;
}

static void read_all(int fd, char *out, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got + 1 < cap && (n = read(fd, out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
}

/* The same harness inside the guest domain, against a backend played from here. */
START_TEST(test_liar_inside_a_domain)
{
    char bin[1024], be[16], out[1024], want[64], got[12];
    char *argv[] = {bin, "--in-domain-front", be, NULL};
    struct hst_end b;
    int p[2], status;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/tests/check_hostile", test_builddir());
    snprintf(be, sizeof(be), "%u", drv.domid);
    ck_assert_int_eq(pipe(p), 0);
    pid = hst_sim_spawn(&guest, argv, p[1]);
    ck_assert_int_gt(pid, 0);
    close(p[1]);
    if (hst_wait(sim.xs, lay->paths.frontend, HST_STATE(XenbusStateInitialised), false,
                 HST_TIMEOUT_MS, why, sizeof(why)) != XenbusStateInitialised) {
        kill(pid, SIGKILL);
        read_all(p[0], out, sizeof(out));
        ck_abort_msg("%s; the liar said: %s", why, out);
    }
    ck_assert_int_eq(hst_back_init(&b, &did, HST_BLKIF, &dev), 0);
    ck_assert_msg(hst_back_connect(&b) == 0, "%s", b.why);
    ck_assert_int_eq(hst_slot_read(&b.ring[0], 0, got, sizeof(got)), 0);
    ck_assert_mem_eq(got, "from-inside", sizeof(got));
    ck_assert_int_eq(hst_state(&b, XenbusStateConnected), 0);
    read_all(p[0], out, sizeof(out));
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the liar failed: %s", out);
    snprintf(want, sizeof(want), "domain %u connected\n", guest.domid);
    ck_assert_str_eq(out, want);
    hst_end_close(&b);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

    if (argc == 3 && strcmp(argv[1], "--in-domain-front") == 0)
        return in_domain_front(argv[2]);
    s = suite_create("hostile");
    tc = tcase_create("hostile");
    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces): run make check as root\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_back_ring_under_lying_req_prod, 0, REQ_CASES);
    tcase_add_loop_test(tc, test_front_ring_under_lying_responses, 0, RSP_CASES);
    tcase_add_test(tc, test_netif_pair_and_multi_page_blkif);
    tcase_add_test(tc, test_bogus_keys_fail_with_the_simulations_error);
    tcase_add_test(tc, test_multi_queue_blkif);
    tcase_add_test(tc, test_data_grants_read_only_and_ungranted_in_flight);
    tcase_add_test(tc, test_event_storm_coalesces);
    tcase_add_test(tc, test_event_mask_and_unmask);
    tcase_add_test(tc, test_event_storm_against_a_live_receiver);
    tcase_add_test(tc, test_xenbus_frontend_skips_to_connected);
    tcase_add_loop_test(tc, test_xenbus_frontend_writes_garbage_keys, 0, 4);
    tcase_add_loop_test(tc, test_xenbus_frontend_writes_invalid_states, 0, 6);
    tcase_add_test(tc, test_xenbus_frontend_states_out_of_order);
    tcase_add_loop_test(tc, test_xenbus_backend_writes_bogus_features, 0, 4);
    tcase_add_test(tc, test_wait_times_out_naming_the_states_seen);
    tcase_add_test(tc, test_liar_inside_a_domain);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
