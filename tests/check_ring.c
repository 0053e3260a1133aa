/*
 * check_ring.c - the ring library: layout against Xen's own macros, hostile
 * indices, notification hold-off, request ids, and two processes talking.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bhring.h"
#include "ringpair.h"
#include "xenring.h"

/* Rings are allocated at their exact size, so that ASan sees any overrun. */
static void *ring_alloc(unsigned int order)
{
    void *p = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(order));

    ck_assert_ptr_nonnull(p);
    memset(p, 0, bhring_bytes(order));
    return p;
}

static void set_idx(void *page, size_t off, uint32_t v)
{
    memcpy((uint8_t *)page + off, &v, sizeof(v));
}

static uint32_t get_idx(const void *page, size_t off)
{
    uint32_t v;

    memcpy(&v, (const uint8_t *)page + off, sizeof(v));
    return v;
}

/* ---- layout: byte for byte what Xen's macros produce ---- */

START_TEST(test_nr_ents_match_xen)
{
    for (unsigned int order = 0; order <= BHRING_MAX_ORDER; order++) {
        size_t sz = bhring_bytes(order);
        ck_assert_uint_eq(bhring_type_nr_ents(&bhring_blkif, order), __CONST_RING_SIZE(blkif, sz));
        ck_assert_uint_eq(bhring_type_nr_ents(&bhring_netif_tx, order),
                          __CONST_RING_SIZE(netif_tx, sz));
        ck_assert_uint_eq(bhring_type_nr_ents(&bhring_netif_rx, order),
                          __CONST_RING_SIZE(netif_rx, sz));
        ck_assert_uint_eq(bhring_type_nr_ents(&bhring_netif_ctrl, order),
                          __CONST_RING_SIZE(xen_netif_ctrl, sz));
    }
    /* The classic figures: 32 blkif slots and 256 netif slots in one page. */
    ck_assert_uint_eq(bhring_type_nr_ents(&bhring_blkif, 0), 32);
    ck_assert_uint_eq(bhring_type_nr_ents(&bhring_netif_tx, 0), 256);
    ck_assert_uint_eq(bhring_type_nr_ents(&bhring_blkif, 4), 512);
    ck_assert_uint_eq(bhring_type_nr_ents(&bhring_blkif, 5), 0);
    ck_assert_uint_eq(bhring_type_req_size(&bhring_blkif), sizeof(blkif_request_t));
    ck_assert_uint_eq(bhring_type_rsp_size(&bhring_blkif), sizeof(blkif_response_t));
    ck_assert_uint_eq(bhring_type_ent_size(&bhring_blkif), sizeof(union blkif_sring_entry));
    ck_assert_ptr_eq(bhring_type_find("netif_rx"), &bhring_netif_rx);
    ck_assert_ptr_null(bhring_type_find("nosuch"));
    ck_assert_ptr_null(bhring_type_find(NULL));
}
END_TEST

/*
 * The same sequence of requests and responses, once through Xen's macros on
 * one page and once through ours on another, must leave identical bytes:
 * every slot, every index and every event word.
 */
static void blkif_same_bytes(unsigned int order)
{
    size_t sz = bhring_bytes(order);
    void *xp = ring_alloc(order), *bp = ring_alloc(order);
    blkif_front_ring_t xf;
    blkif_back_ring_t xb;
    struct bhring f, b;
    unsigned int n = __CONST_RING_SIZE(blkif, sz);
    int xnotify, notify, more;

    XEN_FRONT_RING_INIT(&xf, (blkif_sring_t *)xp, sz);
    BACK_RING_INIT(&xb, (blkif_sring_t *)xp, sz);
    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, bp, order, 0, true), 0);
    ck_assert_int_eq(bhring_attach(&b, &bhring_blkif, BHRING_BACK, bp, order, 0, false), 0);
    ck_assert_uint_eq(bhring_size(&f), n);
    ck_assert_mem_eq(xp, bp, sz);

    /* Three rounds so that the indices wrap the slot array. */
    for (unsigned int round = 0; round < 3; round++) {
        for (unsigned int i = 0; i < n; i++) {
            blkif_request_t req;
            memset(&req, 0, sizeof(req));
            req.operation = BLKIF_OP_WRITE;
            req.nr_segments = 1 + i % BLKIF_MAX_SEGMENTS_PER_REQUEST;
            req.id = ((uint64_t)round << 32) | i;
            req.sector_number = 8ull * i;
            req.seg[0].gref = 1000 + i;
            req.seg[0].last_sect = 7;
            *RING_GET_REQUEST(&xf, xf.req_prod_pvt) = req;
            xf.req_prod_pvt++;
            ck_assert_int_eq(bhring_front_put(&f, &req), 0);
        }
        ck_assert_int_eq(bhring_front_put(&f, &f), -1); /* full */
        ck_assert_int_eq(errno, EAGAIN);
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&xf, xnotify);
        notify = bhring_front_push(&f);
        ck_assert_int_eq(notify, xnotify);
        ck_assert_mem_eq(xp, bp, sz);

        for (unsigned int i = 0; i < n; i++) {
            blkif_request_t xreq, breq;
            blkif_response_t rsp;
            RING_COPY_REQUEST(&xb, xb.req_cons, &xreq);
            xb.req_cons++;
            ck_assert_int_eq(bhring_back_get(&b, &breq), 1);
            ck_assert_mem_eq(&xreq, &breq, sizeof(breq));
            memset(&rsp, 0, sizeof(rsp));
            rsp.id = breq.id;
            rsp.operation = breq.operation;
            rsp.status = (int16_t)(i % 3) - 1;
            *RING_GET_RESPONSE(&xb, xb.rsp_prod_pvt) = rsp;
            xb.rsp_prod_pvt++;
            ck_assert_int_eq(bhring_back_put(&b, &rsp), 0);
        }
        ck_assert_int_eq(bhring_back_get(&b, &b), 0);
        RING_FINAL_CHECK_FOR_REQUESTS(&xb, more);
        ck_assert_int_eq(bhring_back_final_check(&b), more);
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&xb, xnotify);
        ck_assert_int_eq(bhring_back_push(&b), xnotify);
        ck_assert_mem_eq(xp, bp, sz);

        for (unsigned int i = 0; i < n; i++) {
            blkif_response_t xrsp, brsp;
            RING_COPY_RESPONSE(&xf, xf.rsp_cons, &xrsp);
            xf.rsp_cons++;
            ck_assert_int_eq(bhring_front_get(&f, &brsp), 1);
            ck_assert_mem_eq(&xrsp, &brsp, sizeof(brsp));
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&xf, more);
        ck_assert_int_eq(bhring_front_final_check(&f), more);
        ck_assert_mem_eq(xp, bp, sz);
    }
    free(xp);
    free(bp);
}

START_TEST(test_layout_blkif_1_page)
{
    blkif_same_bytes(0);
}
END_TEST

START_TEST(test_layout_blkif_16_pages)
{
    blkif_same_bytes(4);
}
END_TEST

/* netif TX at 1 and 16 pages: slots at the addresses Xen's macros compute. */
START_TEST(test_layout_netif)
{
    for (unsigned int order = 0; order <= BHRING_MAX_ORDER; order += BHRING_MAX_ORDER) {
        size_t sz = bhring_bytes(order);
        void *p = ring_alloc(order);
        netif_tx_front_ring_t xf;
        netif_rx_back_ring_t xb;
        struct bhring f;
        unsigned int n;

        ck_assert_int_eq(bhring_attach(&f, &bhring_netif_tx, BHRING_FRONT, p, order, 0, true), 0);
        FRONT_RING_INIT(&xf, (netif_tx_sring_t *)p, sz);
        n = bhring_size(&f);
        ck_assert_uint_eq(n, RING_SIZE(&xf));
        for (unsigned int i = 0; i < n; i++) {
            netif_tx_request_t req = {.gref = i, .offset = (uint16_t)i, .id = (uint16_t)i,
                                      .size = 60};
            ck_assert_int_eq(bhring_front_put(&f, &req), 0);
            ck_assert_mem_eq(RING_GET_REQUEST(&xf, i), &req, sizeof(req));
        }
        /* An RX ring's responses land where Xen's RX macros look for them. */
        memset(p, 0, sz);
        BACK_RING_INIT(&xb, (netif_rx_sring_t *)p, sz);
        {
            struct bhring b;
            netif_rx_request_t rq = {.id = 7, .gref = 77};
            netif_rx_response_t rs = {.id = 7, .offset = 0, .flags = 0, .status = 60};
            ck_assert_int_eq(bhring_attach(&b, &bhring_netif_rx, BHRING_BACK, p, order, 0, false),
                             0);
            set_idx(p, 0, 1);
            memcpy((void *)RING_GET_REQUEST(&xb, 0), &rq, sizeof(rq));
            ck_assert_int_eq(bhring_back_get(&b, &rq), 1);
            ck_assert_int_eq(bhring_back_put(&b, &rs), 0);
            bhring_back_push(&b);
            ck_assert_mem_eq(RING_GET_RESPONSE(&xb, 0), &rs, sizeof(rs));
            ck_assert_uint_eq(((netif_rx_sring_t *)p)->rsp_prod, 1);
        }
        free(p);
    }
}
END_TEST

START_TEST(test_attach_refuses_bad_arguments)
{
    void *p = ring_alloc(0);
    struct bhring r;

    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, BHRING_BACK, p, 5, 0, false), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, BHRING_BACK, (char *)p + 8, 0, 0, false),
                     -1);
    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, BHRING_BACK, p, 0, 0, true), -1);
    ck_assert_int_eq(bhring_attach(&r, NULL, BHRING_BACK, p, 0, 0, false), -1);
    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, 3, p, 0, 0, false), -1);
    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, BHRING_BACK, NULL, 0, 0, false), -1);
    /* A back end cannot be driven as a front. */
    ck_assert_int_eq(bhring_attach(&r, &bhring_blkif, BHRING_BACK, p, 0, 0, false), 0);
    ck_assert_int_eq(bhring_front_put(&r, p), -1);
    ck_assert_int_eq(errno, EINVAL);
    free(p);
}
END_TEST

/* ---- hostile indices against a back end ---- */

struct hostile {
    void *page;
    struct bhring b;
    blkif_request_t req;
    blkif_response_t rsp;
};

static void hostile_setup(struct hostile *h, uint32_t start)
{
    h->page = ring_alloc(0);
    struct bhring f;
    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, h->page, 0, start, true), 0);
    ck_assert_int_eq(bhring_attach(&h->b, &bhring_blkif, BHRING_BACK, h->page, 0, start, false),
                     0);
    memset(&h->rsp, 0, sizeof(h->rsp));
}

/* Drains what the back end will take; never more than a ring's worth. */
static int drain(struct hostile *h)
{
    int n = 0, r;

    while ((r = bhring_back_get(&h->b, &h->req)) == 1) {
        n++;
        ck_assert_int_le(n, (int)bhring_size(&h->b));
    }
    return r < 0 ? -1 : n;
}

START_TEST(test_prod_far_ahead_breaks)
{
    struct hostile h;

    hostile_setup(&h, 0);
    set_idx(h.page, 0, 0x7fffffff);
    ck_assert_int_eq(drain(&h), -1);
    ck_assert(bhring_broken(&h.b));
    ck_assert_ptr_nonnull(strstr(bhring_error(&h.b), "ahead"));
    /* Broken for good: even a sane index later is refused. */
    set_idx(h.page, 0, 1);
    ck_assert_int_eq(bhring_back_get(&h.b, &h.req), -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), -1);
    ck_assert_int_eq(bhring_back_push(&h.b), -1);
    ck_assert_int_eq(bhring_back_final_check(&h.b), -1);
    free(h.page);
}
END_TEST

START_TEST(test_prod_exactly_one_ring_ahead_is_legal)
{
    struct hostile h;

    hostile_setup(&h, 0);
    set_idx(h.page, 0, 32);
    ck_assert_int_eq(drain(&h), 32);
    ck_assert(!bhring_broken(&h.b));
    /* 33 while none is answered: one more than fits. */
    set_idx(h.page, 0, 33);
    ck_assert_int_eq(bhring_back_get(&h.b, &h.req), -1);
    ck_assert(bhring_broken(&h.b));
    free(h.page);
}
END_TEST

START_TEST(test_prod_one_past_ring_after_responses)
{
    struct hostile h;

    hostile_setup(&h, 0);
    set_idx(h.page, 0, 32);
    ck_assert_int_eq(drain(&h), 32);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), 0);
    bhring_back_push(&h.b);
    set_idx(h.page, 0, 42); /* 10 answered, 10 more legal */
    ck_assert_int_eq(drain(&h), 10);
    set_idx(h.page, 0, 43);
    ck_assert_int_eq(drain(&h), -1);
    free(h.page);
}
END_TEST

START_TEST(test_prod_behind_consumer_breaks)
{
    struct hostile h;

    hostile_setup(&h, 0);
    set_idx(h.page, 0, 10);
    ck_assert_int_eq(drain(&h), 10);
    for (int i = 0; i < 10; i++)
        bhring_back_put(&h.b, &h.rsp);
    set_idx(h.page, 0, 5); /* back in time */
    ck_assert_int_eq(drain(&h), -1);
    ck_assert_ptr_nonnull(strstr(bhring_error(&h.b), "went back"));
    free(h.page);
}
END_TEST

START_TEST(test_prod_behind_with_requests_in_flight_breaks)
{
    struct hostile h;

    hostile_setup(&h, 0);
    set_idx(h.page, 0, 20);
    ck_assert_int_eq(drain(&h), 20);
    for (int i = 0; i < 5; i++)
        bhring_back_put(&h.b, &h.rsp);
    /* 7 is ahead of the responses (5) but behind what we consumed (20). */
    set_idx(h.page, 0, 7);
    ck_assert_int_eq(drain(&h), -1);
    free(h.page);
}
END_TEST

START_TEST(test_indices_wrap_at_2_32)
{
    struct hostile h;
    uint32_t start = 0xfffffff0u;
    uint32_t total = 0;

    hostile_setup(&h, start);
    for (int round = 0; round < 4; round++) {
        uint32_t prod = start + total + 24;
        set_idx(h.page, 0, prod);
        ck_assert_int_eq(drain(&h), 24);
        for (int i = 0; i < 24; i++)
            ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), 0);
        bhring_back_push(&h.b);
        total += 24;
        ck_assert_uint_eq(get_idx(h.page, 8), start + total);
    }
    ck_assert(!bhring_broken(&h.b));
    ck_assert_uint_lt(start + total, start); /* we really crossed 2^32 */
    free(h.page);
}
END_TEST

START_TEST(test_prod_flipping_between_reads)
{
    struct hostile h;
    int n;

    hostile_setup(&h, 0);
    /* Read once per batch: a flip during the batch does not change it. */
    set_idx(h.page, 0, 8);
    ck_assert_int_eq(bhring_back_get(&h.b, &h.req), 1);
    set_idx(h.page, 0, 0xdeadbeef);
    for (n = 1; n < 8; n++)
        ck_assert_int_eq(bhring_back_get(&h.b, &h.req), 1);
    ck_assert(!bhring_broken(&h.b));
    /* The next batch sees the lie. */
    ck_assert_int_eq(bhring_back_final_check(&h.b), -1);
    ck_assert(bhring_broken(&h.b));
    free(h.page);
}
END_TEST

START_TEST(test_back_cannot_answer_more_than_consumed)
{
    struct hostile h;

    hostile_setup(&h, 0);
    ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), -1);
    ck_assert_int_eq(errno, EAGAIN);
    set_idx(h.page, 0, 1);
    ck_assert_int_eq(drain(&h), 1);
    ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), 0);
    ck_assert_int_eq(bhring_back_put(&h.b, &h.rsp), -1);
    ck_assert_uint_eq(bhring_in_flight(&h.b), 0);
    free(h.page);
}
END_TEST

START_TEST(test_slot_contents_changing_after_copy)
{
    struct hostile h;
    blkif_request_t *shared_slot;

    hostile_setup(&h, 0);
    shared_slot = (blkif_request_t *)((uint8_t *)h.page + BHRING_HDR_SIZE);
    shared_slot->nr_segments = 3;
    set_idx(h.page, 0, 1);
    ck_assert_int_eq(bhring_back_get(&h.b, &h.req), 1);
    shared_slot->nr_segments = 255; /* the front rewrites after we copied */
    ck_assert_int_eq(h.req.nr_segments, 3);
    free(h.page);
}
END_TEST

/* ---- hostile indices against a front end ---- */

START_TEST(test_front_rejects_unrequested_responses)
{
    void *p = ring_alloc(0);
    struct bhring f;
    blkif_request_t req;
    blkif_response_t rsp;

    memset(&req, 0, sizeof(req));
    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, p, 0, 0, true), 0);
    /* A response while nothing was asked. */
    set_idx(p, 8, 1);
    ck_assert_int_eq(bhring_front_get(&f, &rsp), -1);
    ck_assert(bhring_broken(&f));
    ck_assert_int_eq(bhring_front_put(&f, &req), -1);

    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, p, 0, 0, true), 0);
    for (int i = 0; i < 4; i++)
        bhring_front_put(&f, &req);
    /* Put but not pushed: the back cannot have seen them. */
    set_idx(p, 8, 1);
    ck_assert_int_eq(bhring_front_get(&f, &rsp), -1);

    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, p, 0, 0, true), 0);
    for (int i = 0; i < 4; i++)
        bhring_front_put(&f, &req);
    bhring_front_push(&f);
    set_idx(p, 8, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(bhring_front_get(&f, &rsp), 1);
    ck_assert_int_eq(bhring_front_get(&f, &rsp), 0);
    set_idx(p, 8, 2); /* backwards */
    ck_assert_int_eq(bhring_front_final_check(&f), -1);
    free(p);
}
END_TEST

/* ---- notification hold-off ---- */

START_TEST(test_batch_of_32_raises_one_notification)
{
    void *p = ring_alloc(0);
    struct bhring f, b;
    blkif_request_t req;
    blkif_response_t rsp;
    int notifies = 0;

    memset(&req, 0, sizeof(req));
    memset(&rsp, 0, sizeof(rsp));
    ck_assert_int_eq(bhring_attach(&f, &bhring_blkif, BHRING_FRONT, p, 0, 0, true), 0);
    ck_assert_int_eq(bhring_attach(&b, &bhring_blkif, BHRING_BACK, p, 0, 0, false), 0);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(bhring_front_put(&f, &req), 0);
    notifies += bhring_front_push(&f);
    ck_assert_int_eq(notifies, 1);
    ck_assert_int_eq(bhring_front_push(&f), 0); /* nothing new: nothing to say */

    /* The back takes some but has not re-armed: more requests need no kick. */
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(bhring_back_get(&b, &req), 1);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(bhring_back_put(&b, &rsp), 0);
    ck_assert_int_eq(bhring_back_push(&b), 1); /* the front armed rsp_event at init */
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(bhring_front_get(&f, &rsp), 1);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(bhring_front_put(&f, &req), 0);
    ck_assert_int_eq(bhring_front_push(&f), 0);

    /* The back drains everything and arms before sleeping: the next push kicks. */
    while (bhring_back_get(&b, &req) == 1)
        bhring_back_put(&b, &rsp);
    ck_assert_int_eq(bhring_back_final_check(&b), 0);
    ck_assert_int_eq(bhring_front_get(&f, &rsp), 0);
    bhring_back_push(&b);
    while (bhring_front_get(&f, &rsp) == 1)
        ;
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(bhring_front_put(&f, &req), 0);
    ck_assert_int_eq(bhring_front_push(&f), 1);
    ck_assert_uint_eq(f.notifies, 2);
    ck_assert_uint_eq(f.pushes, 3);
    free(p);
}
END_TEST

START_TEST(test_final_check_sees_late_request)
{
    void *p = ring_alloc(0);
    struct bhring f, b;
    blkif_request_t req;

    memset(&req, 0, sizeof(req));
    bhring_attach(&f, &bhring_blkif, BHRING_FRONT, p, 0, 0, true);
    bhring_attach(&b, &bhring_blkif, BHRING_BACK, p, 0, 0, false);
    ck_assert_int_eq(bhring_back_final_check(&b), 0);
    ck_assert_uint_eq(get_idx(p, 4), 1); /* req_event armed at cons + 1 */
    bhring_front_put(&f, &req);
    ck_assert_int_eq(bhring_front_push(&f), 1);
    ck_assert_int_eq(bhring_back_final_check(&b), 1);
    free(p);
}
END_TEST

/* ---- keeper state ---- */

START_TEST(test_save_restore)
{
    struct hostile h;
    struct bhring_state s;
    struct bhring b2;

    hostile_setup(&h, 100);
    set_idx(h.page, 0, 110);
    ck_assert_int_eq(drain(&h), 10);
    for (int i = 0; i < 4; i++)
        bhring_back_put(&h.b, &h.rsp);
    bhring_back_push(&h.b);
    bhring_save(&h.b, &s);
    ck_assert_int_eq(bhring_attach(&b2, &bhring_blkif, BHRING_BACK, h.page, 0, 0, false), 0);
    ck_assert_int_eq(bhring_restore(&b2, &s), 0);
    ck_assert_uint_eq(bhring_in_flight(&b2), 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(bhring_back_put(&b2, &h.rsp), 0);
    ck_assert_int_eq(bhring_back_put(&b2, &h.rsp), -1);
    /* A corrupted save is refused, not walked. */
    s.cons = s.prod_pvt + 1000;
    ck_assert_int_eq(bhring_restore(&b2, &s), -1);
    ck_assert_int_eq(errno, EINVAL);
    free(h.page);
}
END_TEST

/* ---- request ids ---- */

START_TEST(test_ids_edges)
{
    ck_assert_ptr_null(bhring_ids_new(0, 64));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(bhring_ids_new(65537, 64));
    ck_assert_ptr_null(bhring_ids_new(UINT32_MAX, 64));
    ck_assert_ptr_null(bhring_ids_new(512, 8)); /* 512 slots need 9 bits */
    ck_assert_ptr_null(bhring_ids_new(16, 65));
    ck_assert_ptr_null(bhring_ids_new(16, 7));
    bhring_ids_free(NULL);
}
END_TEST

START_TEST(test_ids_unknown_stale_duplicate)
{
    struct bhring_ids *ids = bhring_ids_new(4, 16);
    uint64_t id[4], again;
    void *c;
    int cookies[4];

    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(bhring_ids_get(ids, &cookies[i], &id[i]), 0);
    ck_assert_int_eq(bhring_ids_get(ids, NULL, &again), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(bhring_ids_busy(ids), 4);
    ck_assert_ptr_eq(bhring_ids_peek(ids, id[2]), &cookies[2]);

    ck_assert_int_eq(bhring_ids_put(ids, id[1], &c), 0);
    ck_assert_ptr_eq(c, &cookies[1]);
    ck_assert_int_eq(bhring_ids_put(ids, id[1], &c), -1); /* duplicate */
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_int_eq(bhring_ids_put(ids, 5, &c), -1);          /* slot never issued */
    ck_assert_int_eq(bhring_ids_put(ids, UINT64_MAX, &c), -1); /* bits beyond the id width */
    ck_assert_int_eq(bhring_ids_put(ids, 1u << 16, &c), -1);

    /* Slot 1 is reused with a new generation: the old id is stale. */
    ck_assert_int_eq(bhring_ids_get(ids, NULL, &again), 0);
    ck_assert_uint_eq(again & 3, id[1] & 3);
    ck_assert_uint_ne(again, id[1]);
    ck_assert_int_eq(bhring_ids_put(ids, id[1], &c), -1);
    ck_assert_ptr_null(bhring_ids_peek(ids, id[1]));
    ck_assert_int_eq(bhring_ids_put(ids, again, NULL), 0);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            ck_assert_int_eq(bhring_ids_put(ids, id[i], NULL), 0);
    ck_assert_uint_eq(bhring_ids_busy(ids), 0);
    bhring_ids_free(ids);
}
END_TEST

START_TEST(test_ids_generations_wrap)
{
    /* 256 slots in 8 bits leaves no generation bits: ids are plain slots. */
    struct bhring_ids *ids = bhring_ids_new(256, 8);
    uint64_t id;

    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(bhring_ids_get(ids, NULL, &id), 0);
        ck_assert_uint_lt(id, 256);
        ck_assert_int_eq(bhring_ids_put(ids, id, NULL), 0);
    }
    bhring_ids_free(ids);
    /* One slot and 64 bits: the whole id is a generation. */
    ids = bhring_ids_new(1, 64);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(bhring_ids_get(ids, NULL, &id), 0);
        ck_assert_uint_eq(id, (uint64_t)i);
        ck_assert_int_eq(bhring_ids_put(ids, id + 1, NULL), -1);
        ck_assert_int_eq(bhring_ids_put(ids, id, NULL), 0);
    }
    bhring_ids_free(ids);
}
END_TEST

/* ---- two processes ---- */

static void pair(unsigned int order, unsigned int depth, uint64_t n)
{
    struct ringpair_opts o = {.order = order, .depth = depth, .requests = n, .wait_ms = 10000};
    struct ringpair_result res;
    int rc = ringpair_run(&o, &res);

    ck_assert_msg(rc == 0, "%s", res.error);
    ck_assert_uint_eq(res.completed, n);
    ck_assert_uint_eq(res.back_requests, n);
    /* Batching: far fewer notifications than requests once the ring is deep. */
    if (depth >= 32)
        ck_assert_uint_lt(res.front_notifies + res.back_notifies, n);
}

START_TEST(test_pair_depth32_full_ring_1e6)
{
    pair(0, 32, 1000000);
}
END_TEST

START_TEST(test_pair_depth1_1e5)
{
    pair(0, 1, 100000);
}
END_TEST

START_TEST(test_pair_16_pages_depth512)
{
    pair(4, 512, 200000);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tc;

    tc = tcase_create("layout");
    tcase_add_test(tc, test_nr_ents_match_xen);
    tcase_add_test(tc, test_layout_blkif_1_page);
    tcase_add_test(tc, test_layout_blkif_16_pages);
    tcase_add_test(tc, test_layout_netif);
    tcase_add_test(tc, test_attach_refuses_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, test_prod_far_ahead_breaks);
    tcase_add_test(tc, test_prod_exactly_one_ring_ahead_is_legal);
    tcase_add_test(tc, test_prod_one_past_ring_after_responses);
    tcase_add_test(tc, test_prod_behind_consumer_breaks);
    tcase_add_test(tc, test_prod_behind_with_requests_in_flight_breaks);
    tcase_add_test(tc, test_indices_wrap_at_2_32);
    tcase_add_test(tc, test_prod_flipping_between_reads);
    tcase_add_test(tc, test_back_cannot_answer_more_than_consumed);
    tcase_add_test(tc, test_slot_contents_changing_after_copy);
    tcase_add_test(tc, test_front_rejects_unrequested_responses);
    suite_add_tcase(s, tc);

    tc = tcase_create("notify");
    tcase_add_test(tc, test_batch_of_32_raises_one_notification);
    tcase_add_test(tc, test_final_check_sees_late_request);
    tcase_add_test(tc, test_save_restore);
    suite_add_tcase(s, tc);

    tc = tcase_create("ids");
    tcase_add_test(tc, test_ids_edges);
    tcase_add_test(tc, test_ids_unknown_stale_duplicate);
    tcase_add_test(tc, test_ids_generations_wrap);
    suite_add_tcase(s, tc);

    /* Wake-ups cost ~50 us each here; these are correctness runs, not timings. */
    tc = tcase_create("two_processes");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_pair_depth32_full_ring_1e6);
    tcase_add_test(tc, test_pair_depth1_1e5);
    tcase_add_test(tc, test_pair_16_pages_depth512);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ring_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
