/*
 * check_netparse.c - netback's request consumers (backend/net) and
 * netfront's response consumers (frontend/net), rule by rule: valid TX
 * packets of 1..N slots, each lie and each drop from a table; TX chains
 * taken from a real ring, partial and whole; RX frames of every size laid
 * over requests by the backend and read back by the frontend's validator;
 * each lie a backend can tell the frontend; frames to and from a
 * TAP-like socket with virtio_net_hdr (a SOCK_SEQPACKET socketpair keeps
 * frame boundaries as a TAP does); and the engine serving both rings of a
 * queue against that socket.  No root needed.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#include "bhnetback.h"
#include "bhnetfront.h"

#define WHY 256

/* ---- TX: building chains ---- */

static struct netif_tx_request data(uint16_t off, uint16_t size, uint16_t flags)
{
    static uint16_t next_id;

    return (struct netif_tx_request){.gref = 100u + next_id, .offset = off, .flags = flags,
                                     .id = next_id++, .size = size};
}

static struct netif_tx_request extra(uint8_t type, uint8_t flags, uint16_t a, uint8_t b)
{
    struct netif_tx_request r;
    struct netif_extra_info ex;

    memset(&r, 0, sizeof(r));
    memset(&ex, 0, sizeof(ex));
    ex.type = type;
    ex.flags = flags;
    if (type == XEN_NETIF_EXTRA_TYPE_GSO) {
        ex.u.gso.size = a;
        ex.u.gso.type = b;
    } else if (type == XEN_NETIF_EXTRA_TYPE_HASH) {
        ex.u.hash.type = b;
        ex.u.hash.algorithm = (uint8_t)a;
        ex.u.hash.value[0] = 0x78;
        ex.u.hash.value[3] = 0x12;
    } else if (type == XEN_NETIF_EXTRA_TYPE_MCAST_ADD || type == XEN_NETIF_EXTRA_TYPE_MCAST_DEL) {
        ex.u.mcast.addr[0] = 0x01;
        ex.u.mcast.addr[5] = (uint8_t)a;
    }
    memcpy(&r, &ex, sizeof(ex));
    r.id = 0xeeee;
    return r;
}

#define MD NETTXF_more_data
#define EI NETTXF_extra_info
#define CB NETTXF_csum_blank
#define XM XEN_NETIF_EXTRA_FLAG_MORE
#define GSO XEN_NETIF_EXTRA_TYPE_GSO
#define T4 XEN_NETIF_GSO_TYPE_TCPV4
#define T6 XEN_NETIF_GSO_TYPE_TCPV6

static const struct bhnet_txopts all_on = {.gso_tcpv4 = true, .gso_tcpv6 = true, .mcast = true};
static const struct bhnet_txopts all_off = {0};

/* A chain of `slots` data slots carrying `len` bytes, the first holding what the rest leaves. */
static unsigned int chain(struct netif_tx_request *r, unsigned int slots, uint16_t len,
                          uint16_t first_flags)
{
    uint16_t each = slots > 1 ? (uint16_t)((len - 64) / (slots - 1)) : 0;

    r[0] = data(0, len, first_flags | (slots > 1 ? MD : 0));
    for (unsigned int i = 1; i < slots; i++)
        r[i] = data(0, each, i + 1 < slots ? MD : 0);
    return slots;
}

/* Valid packets of 1..18 slots (XEN_NETIF_NR_SLOTS_MIN): each one GO, every byte accounted for. */
START_TEST(test_tx_valid_slots)
{
    struct netif_tx_request r[BHNET_TX_MAX_REQS];
    struct netif_tx_response rsp[BHNET_TX_MAX_REQS];
    struct bhnet_txpkt pkt;
    unsigned int slots = (unsigned int)_i, n = chain(r, slots, 3000, CB);
    uint32_t sum = 0;
    char why[WHY] = "";

    ck_assert_int_eq(bhnet_tx_parse(r, n, true, &all_off, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_uint_eq(pkt.nreq, slots);
    ck_assert_uint_eq(pkt.nfrags, slots);
    ck_assert_uint_eq(pkt.len, 3000);
    ck_assert_uint_eq(pkt.flags, CB);
    ck_assert_int_eq(pkt.kind, BHNET_TX_PACKET);
    for (unsigned int i = 0; i < pkt.nfrags; i++) {
        ck_assert_uint_eq(pkt.frag[i].gref, r[i].gref);
        ck_assert_uint_le(pkt.frag[i].off + pkt.frag[i].len, BHNET_PAGE);
        sum += pkt.frag[i].len;
    }
    ck_assert_uint_eq(sum, 3000);
    ck_assert_uint_eq(bhnet_tx_responses(&pkt, NETIF_RSP_OKAY, rsp), slots);
    for (unsigned int i = 0; i < slots; i++) {
        ck_assert_uint_eq(rsp[i].id, r[i].id);
        ck_assert_int_eq(rsp[i].status, NETIF_RSP_OKAY);
    }
    /* Without the last request the same chain is not finished yet. */
    if (slots > 1) {
        ck_assert_int_eq(bhnet_tx_parse(r, n - 1, false, &all_off, &pkt, why, sizeof(why)),
                         BHNET_MORE);
        ck_assert_int_eq(bhnet_tx_parse(r, n - 1, true, &all_off, &pkt, why, sizeof(why)),
                         BHNET_LIE);
        ck_assert_ptr_nonnull(strstr(why, "past the last request"));
    }
}
END_TEST

/* 19 and 20 slots are dropped (answered, not sent); 21 is a lie; raising max_slots admits 19. */
START_TEST(test_tx_slot_limits)
{
    struct netif_tx_request r[BHNET_TX_MAX_REQS];
    struct bhnet_txpkt pkt;
    struct bhnet_txopts wide = {.max_slots = 19};
    char why[WHY] = "";

    chain(r, 19, 3000, 0);
    ck_assert_int_eq(bhnet_tx_parse(r, 19, true, &all_off, &pkt, why, sizeof(why)), BHNET_DROP);
    ck_assert_uint_eq(pkt.nreq, 19);
    ck_assert_ptr_nonnull(strstr(why, "19 slots"));
    ck_assert_int_eq(bhnet_tx_parse(r, 19, true, &wide, &pkt, why, sizeof(why)), BHNET_GO);
    chain(r, 20, 3000, 0);
    ck_assert_int_eq(bhnet_tx_parse(r, 20, true, &all_off, &pkt, why, sizeof(why)), BHNET_DROP);
    chain(r, 21, 3000, 0);
    ck_assert_int_eq(bhnet_tx_parse(r, 21, true, &all_off, &pkt, why, sizeof(why)), BHNET_LIE);
    ck_assert_ptr_nonnull(strstr(why, "fatal"));
    /* The fatal limit holds before the rest arrives: no waiting for a chain that is already a lie. */
    ck_assert_int_eq(bhnet_tx_parse(r, 20, false, &all_off, &pkt, why, sizeof(why)), BHNET_LIE);
}
END_TEST

struct txcase {
    const char *name;
    struct netif_tx_request r[6];
    unsigned int n;
    const struct bhnet_txopts *o;
    enum bhnet_verdict v;
    const char *why; /* a word the reason must hold */
};

static struct txcase txcases[32];
static unsigned int ntxcases;

static void add(const char *name, const struct bhnet_txopts *o, enum bhnet_verdict v,
                const char *why, unsigned int n, ...)
{
    struct txcase *c;
    va_list ap;

    /* Also called while the suite is built, before Check runs: no ck_assert here. */
    if (ntxcases >= sizeof(txcases) / sizeof(txcases[0]) || n > sizeof(c->r) / sizeof(c->r[0]))
        abort();
    c = &txcases[ntxcases++];
    c->name = name;
    c->o = o;
    c->v = v;
    c->why = why;
    c->n = n;
    va_start(ap, n);
    for (unsigned int i = 0; i < n; i++)
        c->r[i] = va_arg(ap, struct netif_tx_request);
    va_end(ap);
}

static void txcases_fill(void)
{
    ntxcases = 0;
    add("one slot", &all_off, BHNET_GO, NULL, 1, data(0, 60, 0));
    add("first slot ends at the page end", &all_off, BHNET_GO, NULL, 1, data(4036, 60, 0));
    add("GSO TCPv4", &all_on, BHNET_GO, NULL, 3, data(0, 5000, EI | MD | CB),
        extra(GSO, 0, 1448, T4), data(0, 4000, 0));
    add("GSO TCPv6 and a hash", &all_on, BHNET_GO, NULL, 4, data(0, 100, EI | CB | MD),
        extra(GSO, XM, 1440, T6), extra(XEN_NETIF_EXTRA_TYPE_HASH, 0, 1, 1), data(0, 1, 0));
    add("multicast add", &all_on, BHNET_GO, NULL, 2, data(0, 0, EI),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 5, 0));
    add("multicast delete", &all_on, BHNET_GO, NULL, 2, data(0, 0, EI),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_DEL, 0, 5, 0));
    /* lies */
    add("following slot crosses its page", &all_off, BHNET_LIE, "crosses", 2, data(0, 200, MD),
        data(4000, 100, 0));
    add("first slot crosses its page", &all_off, BHNET_LIE, "crosses", 1, data(4090, 60, 0));
    add("first slot crosses with the rest", &all_off, BHNET_LIE, "crosses", 2,
        data(4000, 200, MD), data(0, 50, 0));
    add("extra of type 0", &all_on, BHNET_LIE, "unknown type", 2, data(0, 60, EI),
        extra(0, 0, 0, 0));
    add("extra of type 5", &all_on, BHNET_LIE, "unknown type", 2, data(0, 60, EI),
        extra(XEN_NETIF_EXTRA_TYPE_MAX, 0, 0, 0));
    add("GSO extra twice", &all_on, BHNET_LIE, "twice", 3, data(0, 60, EI | CB),
        extra(GSO, XM, 1448, T4), extra(GSO, 0, 1448, T4));
    add("GSO size 0", &all_on, BHNET_LIE, "size of 0", 2, data(0, 60, EI | CB),
        extra(GSO, 0, 0, T4));
    add("GSO type none", &all_on, BHNET_LIE, "GSO type", 2, data(0, 60, EI | CB),
        extra(GSO, 0, 1448, XEN_NETIF_GSO_TYPE_NONE));
    add("GSO type 3", &all_on, BHNET_LIE, "GSO type", 2, data(0, 60, EI | CB), extra(GSO, 0, 1448, 3));
    add("GSO TCPv4 not offered", &all_off, BHNET_LIE, "not offered", 2, data(0, 60, EI | CB),
        extra(GSO, 0, 1448, T4));
    add("GSO TCPv6 not offered", &all_off, BHNET_LIE, "not offered", 2, data(0, 60, EI | CB),
        extra(GSO, 0, 1448, T6));
    add("multicast not negotiated", &all_off, BHNET_LIE, "multicast", 2, data(0, 0, EI),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 5, 0));
    add("multicast add and delete", &all_on, BHNET_LIE, "add and delete", 3, data(0, 0, EI),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XM, 5, 0),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_DEL, 0, 5, 0));
    add("multicast over two slots", &all_on, BHNET_LIE, "data slots", 3, data(0, 10, EI | MD),
        extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 5, 0), data(0, 10, 0));
    add("extra info on a following slot", &all_on, BHNET_LIE, "only a packet's first", 2,
        data(0, 100, MD), data(0, 10, EI));
    add("extra chain never ends", &all_on, BHNET_LIE, "extra-info chain", 2, data(0, 60, EI | CB),
        extra(GSO, XM, 1448, T4));
    add("data chain never ends", &all_on, BHNET_LIE, "chain of slots", 2, data(0, 100, MD),
        data(0, 10, MD));
    /* drops */
    add("rest larger than the total", &all_off, BHNET_DROP, "more than the packet", 2,
        data(0, 100, MD), data(0, 101, 0));
    add("shorter than an Ethernet header", &all_off, BHNET_DROP, "Ethernet", 1, data(0, 13, 0));
    add("first slot's own bytes too few", &all_off, BHNET_DROP, "Ethernet", 2, data(0, 100, MD),
        data(0, 90, 0));
    add("GSO without csum_blank", &all_on, BHNET_DROP, "csum_blank", 2, data(0, 60, EI),
        extra(GSO, 0, 1448, T4));
}

START_TEST(test_tx_table)
{
    struct bhnet_txpkt pkt;
    const struct txcase *c;
    char why[WHY] = "";
    enum bhnet_verdict v;

    txcases_fill();
    ck_assert_uint_lt((unsigned int)_i, ntxcases);
    c = &txcases[_i];
    v = bhnet_tx_parse(c->r, c->n, true, c->o, &pkt, why, sizeof(why));
    ck_assert_msg(v == c->v, "%s: verdict %d, expected %d (%s)", c->name, v, c->v, why);
    if (c->why != NULL)
        ck_assert_msg(strstr(why, c->why) != NULL, "%s: why \"%s\" lacks \"%s\"", c->name, why,
                      c->why);
    if (v == BHNET_LIE)
        return;
    /* GO and DROP consumed the whole chain, and answer every slot once. */
    ck_assert_uint_eq(pkt.nreq, c->n);
    for (unsigned int i = 0; i < pkt.nreq; i++)
        ck_assert_int_eq(pkt.req_extra[i], (i > 0 && c->r[i].id == 0xeeee));
    /* A chain that stops one short is still in the making. */
    if (c->n > 1)
        ck_assert_int_eq(bhnet_tx_parse(c->r, c->n - 1, false, c->o, &pkt, why, sizeof(why)),
                         BHNET_MORE);
}
END_TEST

/* What GO packets carry: GSO, hash, multicast address, flags. */
START_TEST(test_tx_fields)
{
    struct bhnet_txpkt pkt;
    char why[WHY];
    struct netif_tx_request r[4] = {data(100, 100, EI | CB | NETTXF_data_validated),
                                    extra(GSO, XM, 1440, T6),
                                    extra(XEN_NETIF_EXTRA_TYPE_HASH, 0, 1, 3), {0}};
    struct netif_tx_response rsp[4];

    ck_assert_int_eq(bhnet_tx_parse(r, 3, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_uint_eq(pkt.gso_type, T6);
    ck_assert_uint_eq(pkt.gso_size, 1440);
    ck_assert(pkt.has_hash);
    ck_assert_uint_eq(pkt.hash_type, 3);
    ck_assert_uint_eq(pkt.hash, 0x12000078u);
    ck_assert_uint_eq(pkt.flags, CB | NETTXF_data_validated);
    ck_assert_uint_eq(pkt.nfrags, 1);
    ck_assert_uint_eq(pkt.frag[0].off, 100);
    ck_assert_uint_eq(pkt.frag[0].len, 100);
    ck_assert_uint_eq(bhnet_tx_responses(&pkt, NETIF_RSP_ERROR, rsp), 3);
    ck_assert_int_eq(rsp[0].status, NETIF_RSP_ERROR);
    ck_assert_int_eq(rsp[1].status, NETIF_RSP_NULL);
    ck_assert_int_eq(rsp[2].status, NETIF_RSP_NULL);
    /* A hash of an unknown algorithm is ignored, not believed. */
    r[2] = extra(XEN_NETIF_EXTRA_TYPE_HASH, 0, 7, 3);
    ck_assert_int_eq(bhnet_tx_parse(r, 3, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert(!pkt.has_hash);
    r[1] = extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 0x42, 0);
    ck_assert_int_eq(bhnet_tx_parse(r, 2, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(pkt.kind, BHNET_TX_MCAST_ADD);
    ck_assert_uint_eq(pkt.mcast[0], 1);
    ck_assert_uint_eq(pkt.mcast[5], 0x42);
    ck_assert_uint_eq(pkt.nfrags, 0);
}
END_TEST

/* ---- TX from a ring ---- */

struct rings {
    void *mem;
    struct bhring f, b;
};

static void rings_open(struct rings *x)
{
    x->mem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));
    ck_assert_ptr_nonnull(x->mem);
    ck_assert_int_eq(bhring_attach(&x->f, &bhring_netif_tx, BHRING_FRONT, x->mem, 0, 0, true), 0);
    ck_assert_int_eq(bhring_attach(&x->b, &bhring_netif_tx, BHRING_BACK, x->mem, 0, 0, false), 0);
}

static void put(struct rings *x, const struct netif_tx_request *r, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        ck_assert_int_eq(bhring_front_put(&x->f, &r[i]), 0);
    ck_assert_int_ge(bhring_front_push(&x->f), 0);
}

/* A chain published in two halves waits for the second; answers reach the frontend's validator. */
START_TEST(test_tx_ring_partial)
{
    struct rings x;
    struct netif_tx_request r[8];
    struct netif_tx_response rsp[8], got;
    struct bhnet_txq q = {0};
    struct bhnet_txpkt pkt;
    struct bhring_ids *ids = bhring_ids_new(256, 16);
    uint64_t id;
    void *cookie;
    int16_t status;
    unsigned int n = chain(r, 5, 3000, 0), nrsp, seen = 0;
    char why[WHY] = "";

    rings_open(&x);
    ck_assert_ptr_nonnull(ids);
    for (unsigned int i = 0; i < n; i++) {
        ck_assert_int_eq(bhring_ids_get(ids, &r[i], &id), 0);
        r[i].id = (uint16_t)id;
    }
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_MORE);
    put(&x, r, 3);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_MORE);
    ck_assert_uint_eq(q.n, 3);
    put(&x, r + 3, 2);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_uint_eq(q.n, 0);
    ck_assert_uint_eq(pkt.nfrags, 5);
    nrsp = bhnet_tx_responses(&pkt, NETIF_RSP_OKAY, rsp);
    for (unsigned int i = 0; i < nrsp; i++)
        ck_assert_int_eq(bhring_back_put(&x.b, &rsp[i]), 0);
    ck_assert_int_ge(bhring_back_push(&x.b), 0);
    while (bhring_front_get(&x.f, &got) == 1) {
        ck_assert_int_eq(bhnetf_tx_rsp(&got, ids, &cookie, &status, why, sizeof(why)), BHNETF_OK);
        ck_assert_ptr_eq(cookie, &r[seen]);
        seen++;
    }
    ck_assert_uint_eq(seen, 5);
    /* The same response again names an id no longer in flight. */
    ck_assert_int_eq(bhnetf_tx_rsp(&rsp[0], ids, &cookie, &status, why, sizeof(why)), BHNETF_LIE);
    ck_assert_ptr_nonnull(strstr(why, "not in flight"));
    bhring_ids_free(ids);
    free(x.mem);
}
END_TEST

/* A lie breaks the ring: later takes fail too, with the same reason. */
START_TEST(test_tx_ring_lie)
{
    struct rings x;
    struct netif_tx_request r[2] = {data(0, 100, MD), data(4095, 2, 0)};
    struct bhnet_txq q = {0};
    struct bhnet_txpkt pkt;
    char why[WHY] = "";

    rings_open(&x);
    put(&x, r, 2);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_LIE);
    ck_assert(bhring_broken(&x.b));
    ck_assert_ptr_nonnull(strstr(bhring_error(&x.b), "crosses"));
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_LIE);
    free(x.mem);
}
END_TEST

/* A dropped chain is consumed whole, so the next packet starts where it should. */
START_TEST(test_tx_ring_drop_then_go)
{
    struct rings x;
    struct netif_tx_request r[3] = {data(0, 10, 0), data(0, 100, MD), data(0, 30, 0)};
    struct bhnet_txq q = {0};
    struct bhnet_txpkt pkt;
    char why[WHY] = "";

    rings_open(&x);
    put(&x, r, 3);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_DROP);
    ck_assert_uint_eq(pkt.nreq, 1);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_uint_eq(pkt.nreq, 2);
    ck_assert_uint_eq(pkt.req_id[0], r[1].id);
    ck_assert_int_eq(bhnet_tx_take(&x.b, &all_off, &q, &pkt, why, sizeof(why)), BHNET_MORE);
    free(x.mem);
}
END_TEST

/* ---- RX: backend builds, frontend reads ---- */

static const uint32_t rx_lens[] = {14, 60, 1514, 4095, 4096, 4097, 9014, 65535, BHNET_RX_MAX_LEN};
#define RX_LENS (sizeof(rx_lens) / sizeof(rx_lens[0]))

/* Every length, with no GSO, with a GSO extra and with a prefix: read back whole by netfront. */
START_TEST(test_rx_roundtrip)
{
    uint32_t len = rx_lens[_i % RX_LENS];
    unsigned int mode = (unsigned int)_i / RX_LENS; /* 0 none, 1 extra, 2 GSO not asked */
    struct bhnet_rxopts bo = {.gso_tcpv4 = mode == 1, .ring_ids = 256};
    struct bhnetf_rxopts fo = {.gso_tcpv4 = mode == 1};
    struct bhnet_rxmeta m = {.len = len, .flags = NETRXF_csum_blank | NETRXF_data_validated,
                             .gso_type = mode ? T4 : XEN_NETIF_GSO_TYPE_NONE,
                             .gso_size = mode ? 1448 : 0};
    struct netif_rx_request req[BHNET_RX_MAX_REQS + 2];
    struct netif_rx_response rsp[BHNET_RX_MAX_REQS + 2];
    struct bhnet_rxcopy copy[BHNET_RX_MAX_REQS];
    uint16_t ids[BHNET_RX_MAX_REQS + 2];
    struct bhnetf_rxpkt pkt;
    unsigned int need = bhnet_rx_slots(&bo, &m), ncopy, data = (len + 4095) / 4096;
    uint32_t off = 0;
    char why[WHY] = "";
    int used;

    ck_assert_uint_eq(need, data + (mode == 1));
    ck_assert_uint_le(need, BHNET_RX_MAX_REQS);
    for (unsigned int i = 0; i < need + 2; i++) {
        req[i] = (struct netif_rx_request){.id = (uint16_t)(i * 7 + 3), .gref = 500 + i};
        ids[i] = req[i].id;
        ck_assert_int_eq(bhnet_rx_check_req(&req[i], &bo, why, sizeof(why)), BHNET_GO);
    }
    ck_assert_int_eq(bhnet_rx_build(&bo, &m, req, need - 1, rsp, copy, &ncopy), -1);
    used = bhnet_rx_build(&bo, &m, req, need + 2, rsp, copy, &ncopy);
    ck_assert_int_eq(used, (int)need);
    ck_assert_uint_eq(ncopy, data);
    for (unsigned int i = 0; i < ncopy; i++) {
        ck_assert_uint_eq(copy[i].pkt_off, off);
        ck_assert_uint_le(copy[i].len, 4096);
        off += copy[i].len;
    }
    ck_assert_uint_eq(off, len);
    ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, (unsigned int)used, true, &fo, &pkt, why, sizeof(why)),
                     BHNETF_OK);
    ck_assert_uint_eq(pkt.len, len);
    ck_assert_uint_eq(pkt.nrsp, need);
    ck_assert_uint_eq(pkt.nfrags, data);
    ck_assert_uint_eq(pkt.flags, NETRXF_csum_blank | NETRXF_data_validated);
    ck_assert_uint_eq(pkt.gso_type, mode == 1 ? T4 : 0);
    ck_assert_uint_eq(pkt.gso_size, mode == 1 ? 1448 : 0);
    /* Every data slot's buffer is the request's posted in that slot. */
    for (unsigned int i = 0; i < pkt.nfrags; i++)
        ck_assert_uint_eq(req[pkt.frag[i].slot].gref, copy[i].gref);
    /* One response short, the frontend waits. */
    if (used > 1)
        ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, (unsigned int)used - 1, false, &fo, &pkt, why,
                                         sizeof(why)),
                         BHNETF_MORE);
}
END_TEST

/* The deprecated GSO prefix, and frames that cannot be delivered. */
START_TEST(test_rx_prefix_and_bounds)
{
    struct bhnet_rxopts bo = {.gso_tcpv6 = true, .gso_prefix = true, .ring_ids = 4};
    struct bhnet_rxmeta m = {.len = 3000, .gso_type = T6, .gso_size = 1440};
    struct netif_rx_request req[4] = {{1, 0, 10}, {2, 0, 11}, {3, 0, 12}, {4, 0, 13}};
    struct netif_rx_response rsp[4], e;
    struct bhnet_rxcopy copy[4];
    unsigned int ncopy;
    char why[WHY] = "";

    ck_assert_int_eq(bhnet_rx_build(&bo, &m, req, 4, rsp, copy, &ncopy), 2);
    ck_assert_uint_eq(rsp[0].flags, NETRXF_gso_prefix | NETRXF_more_data);
    ck_assert_uint_eq(rsp[0].offset, 1440);
    ck_assert_int_eq(rsp[1].status, 3000);
    ck_assert_uint_eq(rsp[1].id, 2);
    ck_assert_uint_eq(ncopy, 1);
    ck_assert_uint_eq(copy[0].gref, 11);
    m.len = 0;
    ck_assert_uint_eq(bhnet_rx_slots(&bo, &m), 0);
    m.len = BHNET_RX_MAX_LEN + 1;
    ck_assert_uint_eq(bhnet_rx_slots(&bo, &m), 0);
    m = (struct bhnet_rxmeta){.len = 100, .gso_type = 3, .gso_size = 1440};
    ck_assert_int_eq(bhnet_rx_build(&bo, &m, req, 4, rsp, copy, &ncopy), -1);
    m = (struct bhnet_rxmeta){.len = 100, .gso_type = T6};
    ck_assert_uint_eq(bhnet_rx_slots(&bo, &m), 0);
    ck_assert_int_eq(bhnet_rx_check_req(&req[3], &bo, why, sizeof(why)), BHNET_LIE);
    ck_assert_ptr_nonnull(strstr(why, "names no buffer"));
    e = bhnet_rx_error(&req[2], NETIF_RSP_DROPPED);
    ck_assert_uint_eq(e.id, 3);
    ck_assert_int_eq(e.status, NETIF_RSP_DROPPED);
}
END_TEST

/* ---- what a lying backend tells netfront ---- */

static struct netif_rx_response rxr(uint16_t id, uint16_t off, uint16_t flags, int16_t status)
{
    return (struct netif_rx_response){id, off, flags, status};
}

static struct netif_rx_response rxx(uint8_t type, uint8_t flags, uint16_t size, uint8_t gtype)
{
    struct netif_rx_response r;
    struct netif_extra_info ex;

    memset(&ex, 0, sizeof(ex));
    ex.type = type;
    ex.flags = flags;
    ex.u.gso.size = size;
    ex.u.gso.type = gtype;
    memcpy(&r, &ex, sizeof(r));
    return r;
}

struct rxcase {
    const char *name;
    struct netif_rx_response r[4];
    unsigned int n;
    enum bhnetf_verdict v;
    const char *why;
};

#define RX_FRONT_CASES 19
#define RM NETRXF_more_data
#define RE NETRXF_extra_info

START_TEST(test_rx_front_table)
{
    static const uint16_t ids[4] = {0, 1, 2, 3};
    const struct bhnetf_rxopts fo = {.gso_tcpv4 = true, .max_slots = 2};
    struct rxcase cases[] = {
        {"two slots", {rxr(0, 0, RM, 4096), rxr(1, 0, 0, 10)}, 2, BHNETF_OK, NULL},
        {"GSO extra", {rxr(0, 0, RE, 100), rxx(GSO, 0, 1448, T4)}, 2, BHNETF_OK, NULL},
        {"wrong id", {rxr(5, 0, 0, 100)}, 1, BHNETF_LIE, "names id"},
        {"crosses the page", {rxr(0, 4000, 0, 100)}, 1, BHNETF_LIE, "crosses"},
        {"bogus negative status", {rxr(0, 0, 0, -7)}, 1, BHNETF_LIE, "NETIF_RSP"},
        {"GSO prefix", {rxr(0, 0, NETRXF_gso_prefix, 100)}, 1, BHNETF_LIE, "prefix"},
        {"GSO type not asked", {rxr(0, 0, RE, 100), rxx(GSO, 0, 1448, T6)}, 2, BHNETF_LIE,
         "not asked"},
        {"GSO size 0", {rxr(0, 0, RE, 100), rxx(GSO, 0, 0, T4)}, 2, BHNETF_LIE, "size of 0"},
        {"hash not enabled", {rxr(0, 0, RE, 100), rxx(XEN_NETIF_EXTRA_TYPE_HASH, 0, 0, 0)}, 2,
         BHNETF_LIE, "hash"},
        {"multicast extra", {rxr(0, 0, RE, 100), rxx(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 0, 0)}, 2,
         BHNETF_LIE, "type 2"},
        {"extra type 0", {rxr(0, 0, RE, 100), rxx(0, 0, 0, 0)}, 2, BHNETF_LIE, "unknown"},
        {"extra repeated", {rxr(0, 0, RE, 100), rxx(GSO, XM, 1448, T4), rxx(GSO, 0, 1448, T4)}, 3,
         BHNETF_LIE, "repeated"},
        {"extra on a later slot", {rxr(0, 0, RM, 100), rxr(1, 0, RE, 100)}, 2, BHNETF_LIE,
         "only a frame's first"},
        {"too many slots", {rxr(0, 0, RM, 100), rxr(1, 0, RM, 100), rxr(2, 0, 0, 100)}, 3,
         BHNETF_LIE, "more than 2"},
        {"chain never ends", {rxr(0, 0, RM, 100)}, 1, BHNETF_LIE, "past the last"},
        {"extras never end", {rxr(0, 0, RE, 100), rxx(GSO, XM, 1448, T4)}, 2, BHNETF_LIE,
         "past the last"},
        {"error status", {rxr(0, 0, RM, NETIF_RSP_ERROR), rxr(1, 0, 0, 100)}, 2, BHNETF_DROP,
         "error"},
        {"dropped status", {rxr(0, 0, 0, NETIF_RSP_DROPPED)}, 1, BHNETF_DROP, "error"},
        {"short frame", {rxr(0, 0, 0, 13)}, 1, BHNETF_DROP, "Ethernet"},
    };
    const struct rxcase *c = &cases[_i % (sizeof(cases) / sizeof(cases[0]))];
    struct bhnetf_rxpkt pkt;
    char why[WHY] = "";
    enum bhnetf_verdict v;

    ck_assert_uint_eq(sizeof(cases) / sizeof(cases[0]), RX_FRONT_CASES);
    v = bhnetf_rx_parse(c->r, ids, c->n, true, &fo, &pkt, why, sizeof(why));
    ck_assert_msg(v == c->v, "%s: verdict %d, expected %d (%s)", c->name, v, c->v, why);
    if (c->why)
        ck_assert_msg(strstr(why, c->why) != NULL, "%s: why \"%s\" lacks \"%s\"", c->name, why,
                      c->why);
    if (v == BHNETF_OK || v == BHNETF_DROP)
        ck_assert_uint_eq(pkt.nrsp, c->n);
}
END_TEST

START_TEST(test_tx_front_status)
{
    struct bhring_ids *ids = bhring_ids_new(16, 16);
    struct netif_tx_response r;
    void *cookie;
    int16_t status;
    uint64_t id;
    char why[WHY] = "";
    int tag;

    ck_assert_ptr_nonnull(ids);
    ck_assert_int_eq(bhring_ids_get(ids, &tag, &id), 0);
    r = (struct netif_tx_response){(uint16_t)id, NETIF_RSP_NULL};
    ck_assert_int_eq(bhnetf_tx_rsp(&r, ids, &cookie, &status, why, sizeof(why)), BHNETF_SKIP);
    r.status = 2;
    ck_assert_int_eq(bhnetf_tx_rsp(&r, ids, &cookie, &status, why, sizeof(why)), BHNETF_LIE);
    ck_assert_ptr_nonnull(strstr(why, "status 2"));
    r.status = -3;
    ck_assert_int_eq(bhnetf_tx_rsp(&r, ids, &cookie, &status, why, sizeof(why)), BHNETF_LIE);
    r.id = (uint16_t)(id + 1);
    r.status = NETIF_RSP_OKAY;
    ck_assert_int_eq(bhnetf_tx_rsp(&r, ids, &cookie, &status, why, sizeof(why)), BHNETF_LIE);
    r.id = (uint16_t)id;
    r.status = NETIF_RSP_DROPPED;
    ck_assert_int_eq(bhnetf_tx_rsp(&r, ids, &cookie, &status, why, sizeof(why)), BHNETF_OK);
    ck_assert_ptr_eq(cookie, &tag);
    ck_assert_int_eq(status, NETIF_RSP_DROPPED);
    bhring_ids_free(ids);
}
END_TEST

/* ---- frames to and from the TAP's side ---- */

#define NPAGES 64
static uint8_t pages[NPAGES][4096];

static void *page_of(void *ctx, uint32_t gref, bool writable)
{
    (void)ctx;
    (void)writable;
    return gref < NPAGES ? pages[gref] : NULL;
}

/* An Ethernet frame of len bytes: IPv4 or IPv6 (after a VLAN tag if asked), TCP or UDP. */
static void frame_make(uint8_t *f, size_t len, bool v6, bool vlan, uint8_t proto)
{
    size_t l3 = 14;

    for (size_t i = 0; i < len; i++)
        f[i] = (uint8_t)(i * 31 + 7);
    if (vlan) {
        f[12] = 0x81, f[13] = 0x00, f[16] = v6 ? 0x86 : 0x08, f[17] = v6 ? 0xdd : 0x00;
        l3 = 18;
    } else {
        f[12] = v6 ? 0x86 : 0x08, f[13] = v6 ? 0xdd : 0x00;
    }
    if (v6) {
        f[l3] = 0x60;
        f[l3 + 6] = proto;
        l3 += 40;
    } else {
        f[l3] = 0x45;
        f[l3 + 6] = 0x40, f[l3 + 7] = 0; /* don't fragment, offset 0 */
        f[l3 + 9] = proto;
        l3 += 20;
    }
    if (proto == 6)
        f[l3 + 12] = 0x50; /* a 20-byte TCP header */
}

static int sp[2];

static void vnet_setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp), 0);
}

static void vnet_teardown(void)
{
    close(sp[0]);
    close(sp[1]);
}

/* A 3000-byte TCPv4 packet over three slots with GSO: one write, offsets found, bytes intact. */
START_TEST(test_vnet_tx_gso)
{
    static uint8_t frame[3000], scratch[12 + BHNET_FRAME_MAX], got[12 + 4000];
    struct netif_tx_request r[4] = {data(100, 3000, EI | MD | CB), extra(GSO, 0, 1448, T4),
                                    data(0, 1000, MD), data(0, 1000, 0)};
    struct virtio_net_hdr_mrg_rxbuf h;
    struct bhnet_txpkt pkt;
    char why[WHY] = "";
    ssize_t n;

    frame_make(frame, sizeof(frame), false, false, 6);
    r[0].gref = 1, r[2].gref = 2, r[3].gref = 3;
    memcpy(pages[1] + 100, frame, 1000);
    memcpy(pages[2], frame + 1000, 1000);
    memcpy(pages[3], frame + 2000, 1000);
    ck_assert_int_eq(bhnet_tx_parse(r, 4, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 12, &pkt, page_of, NULL, scratch, why, sizeof(why)), 0);
    n = recv(sp[1], got, sizeof(got), 0);
    ck_assert_int_eq(n, 12 + 3000);
    memcpy(&h, got, sizeof(h));
    ck_assert_uint_eq(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    ck_assert_uint_eq(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    ck_assert_uint_eq(le16toh(h.hdr.gso_size), 1448);
    ck_assert_uint_eq(le16toh(h.hdr.csum_start), 34);
    ck_assert_uint_eq(le16toh(h.hdr.csum_offset), 16);
    ck_assert_uint_eq(le16toh(h.hdr.hdr_len), 54);
    ck_assert_uint_eq(le16toh(h.num_buffers), 1);
    ck_assert_mem_eq(got + 12, frame, 3000);
    /* The same frame claimed as TCPv6 is dropped, and nothing is written. */
    r[1] = extra(GSO, 0, 1448, T6);
    ck_assert_int_eq(bhnet_tx_parse(r, 4, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 12, &pkt, page_of, NULL, scratch, why, sizeof(why)), 1);
    ck_assert_ptr_nonnull(strstr(why, "not TCP over IPv6"));
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1);
    ck_assert_int_eq(errno, EAGAIN);
}
END_TEST

/* Checksum flags without GSO; frames that cannot be offloaded; grants that do not map. */
START_TEST(test_vnet_tx_csum)
{
    static uint8_t scratch[10 + BHNET_FRAME_MAX], got[10 + 4096];
    struct netif_tx_request r[1] = {data(0, 200, NETTXF_data_validated)};
    struct virtio_net_hdr h;
    struct bhnet_txpkt pkt;
    char why[WHY] = "";

    r[0].gref = 5;
    memset(pages[5], 0, 4096); /* ethertype 0: not IP */
    ck_assert_int_eq(bhnet_tx_parse(r, 1, true, &all_off, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 10, &pkt, page_of, NULL, scratch, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 10 + 200);
    memcpy(&h, got, sizeof(h));
    ck_assert_uint_eq(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
    ck_assert_uint_eq(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    r[0].flags = CB;
    ck_assert_int_eq(bhnet_tx_parse(r, 1, true, &all_off, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 10, &pkt, page_of, NULL, scratch, why, sizeof(why)), 1);
    ck_assert_ptr_nonnull(strstr(why, "not TCP or UDP"));
    frame_make(pages[5], 200, true, true, 17);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 10, &pkt, page_of, NULL, scratch, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 10 + 200);
    memcpy(&h, got, sizeof(h));
    ck_assert_uint_eq(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    ck_assert_uint_eq(h.csum_start, 18 + 40);
    ck_assert_uint_eq(h.csum_offset, 6);
    r[0].gref = NPAGES + 1;
    ck_assert_int_eq(bhnet_tx_parse(r, 1, true, &all_off, &pkt, why, sizeof(why)), BHNET_GO);
    ck_assert_int_eq(bhnet_tx_to_fd(sp[0], 10, &pkt, page_of, NULL, scratch, why, sizeof(why)), 1);
    ck_assert_ptr_nonnull(strstr(why, "does not map"));
}
END_TEST

/* The kept-pages path: an epoch that says whether page() evicted, a filter that meddles. */
static uint64_t kept_epoch;
static unsigned int kept_evict_at, kept_calls;
static size_t filter_saw;

static uint64_t epoch_of(void *ctx)
{
    (void)ctx;
    return kept_epoch;
}

static void *page_evicting(void *ctx, uint32_t gref, bool writable)
{
    if (++kept_calls == kept_evict_at)
        kept_epoch++; /* this mapping took an earlier one's place */
    return page_of(ctx, gref, writable);
}

/* Passes the frame, then changes the source MAC in the frontend's page: too late. */
static bool filter_meddles(void *ctx, const uint8_t *frame, size_t len)
{
    (void)ctx;
    (void)frame;
    filter_saw = len;
    pages[1][100 + 6] ^= 0xff;
    return true;
}

/*
 * A GSO frame whose headers (IPv4 and TCP with options: 14 + 60 + 60) run
 * past its first slot, written from the pages with its head copied: the
 * bytes arrive intact, the offsets are the headers', the filter saw the
 * head alone, and the head written is the copy it saw (a change the
 * frontend makes after the copy does not reach the TAP).  An epoch that
 * moves while the slots are mapped sends the frame gathered instead.
 */
START_TEST(test_vnet_tx_kept)
{
    static uint8_t frame[5000], scratch[12 + BHNET_FRAME_MAX], got[12 + 6000];
    struct netif_tx_request r[4] = {data(100, 5000, EI | MD | CB), extra(GSO, 0, 1400, T4),
                                    data(0, 100, MD), data(0, 4800, 0)};
    struct virtio_net_hdr_mrg_rxbuf h;
    struct bhnet_txpkt pkt;
    char why[WHY] = "";
    uint8_t mac0;

    r[3] = data(0, 4096, 0); /* a slot holds at most a page: 100 + 100 + 4096 ... */
    r[0].size = 100 + 100 + 4096;
    frame_make(frame, sizeof(frame), false, false, 6);
    frame[14] = 0x4f;      /* IHL 60 */
    frame[14 + 9] = 6;
    frame[74 + 12] = 0xf0; /* a 60-byte TCP header at 74 */
    for (size_t i = 134; i < sizeof(frame); i++)
        frame[i] = (uint8_t)(i * 7);
    r[0].gref = 1, r[2].gref = 2, r[3].gref = 3;
    memcpy(pages[1] + 100, frame, 100);
    memcpy(pages[2], frame + 100, 100);
    memcpy(pages[3], frame + 200, 4096);
    mac0 = frame[6];
    ck_assert_int_eq(bhnet_tx_parse(r, 4, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    kept_epoch = 0, kept_calls = 0, kept_evict_at = 0;
    ck_assert_int_eq(bhnet_tx_to_fd_kept(sp[0], 12, &pkt, page_evicting, epoch_of, NULL,
                                         filter_meddles, scratch, why, sizeof(why)), 0);
    ck_assert_uint_eq(filter_saw, BHNET_TX_COPY_LEN);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 4296);
    memcpy(&h, got, sizeof(h));
    ck_assert_uint_eq(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
    ck_assert_uint_eq(le16toh(h.hdr.csum_start), 74);
    ck_assert_uint_eq(le16toh(h.hdr.hdr_len), 134);
    ck_assert_uint_eq(got[12 + 6], mac0);          /* the copy, not the page as changed */
    ck_assert_uint_ne(pages[1][100 + 6], mac0);
    ck_assert_mem_eq(got + 12 + 7, frame + 7, 4296 - 7);
    /* The second slot's mapping evicts: gathered, page by page (the page as it is now). */
    kept_calls = 0, kept_evict_at = 2;
    pages[1][100 + 6] = mac0;
    ck_assert_int_eq(bhnet_tx_to_fd_kept(sp[0], 12, &pkt, page_evicting, epoch_of, NULL,
                                         filter_meddles, scratch, why, sizeof(why)), 0);
    ck_assert_uint_eq(filter_saw, 4296); /* the gathered frame, whole */
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 4296);
    ck_assert_uint_eq(got[12 + 6], mac0);
    ck_assert_mem_eq(got + 12 + 7, frame + 7, 4296 - 7);
    /* A frame shorter than the head is copied whole: no second piece. */
    r[0] = data(0, 60, 0);
    r[0].gref = 4;
    memcpy(pages[4], frame, 60);
    ck_assert_int_eq(bhnet_tx_parse(r, 1, true, &all_on, &pkt, why, sizeof(why)), BHNET_GO);
    kept_evict_at = 0;
    ck_assert_int_eq(bhnet_tx_to_fd_kept(sp[0], 12, &pkt, page_of, epoch_of, NULL, NULL, scratch,
                                         why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_mem_eq(got + 12, frame, 60);
}
END_TEST

START_TEST(test_vnet_csum_locate)
{
    uint8_t f[200];
    uint16_t start, off, hlen;
    uint8_t proto;
    bool v6;

    frame_make(f, sizeof(f), false, false, 6);
    ck_assert_int_eq(bhnet_csum_locate(f, sizeof(f), &start, &off, &hlen, &proto, &v6), 0);
    ck_assert_uint_eq(hlen, 54);
    ck_assert_int_eq(bhnet_csum_locate(f, 53, &start, &off, &hlen, &proto, &v6), -1);
    f[14 + 7] = 1; /* a fragment */
    ck_assert_int_eq(bhnet_csum_locate(f, sizeof(f), &start, &off, &hlen, &proto, &v6), -1);
    frame_make(f, sizeof(f), false, false, 6);
    f[14] = 0x44; /* IHL 16 bytes */
    ck_assert_int_eq(bhnet_csum_locate(f, sizeof(f), &start, &off, &hlen, &proto, &v6), -1);
    frame_make(f, sizeof(f), true, false, 1); /* ICMP */
    ck_assert_int_eq(bhnet_csum_locate(f, sizeof(f), &start, &off, &hlen, &proto, &v6), -1);
    ck_assert_int_eq(bhnet_csum_locate(f, 10, &start, &off, &hlen, &proto, &v6), -1);
}
END_TEST

/* A 9000-byte GSO TCPv6 frame from the TAP lands in the frontend's pages, told as netfront reads it. */
START_TEST(test_vnet_rx)
{
    static uint8_t frame[9000], buf[12 + BHNET_FRAME_MAX], wire[12 + 9000], back[9000];
    struct bhnet_rxopts o = {.gso_tcpv6 = true, .ring_ids = 256};
    struct bhnetf_rxopts fo = {.gso_tcpv6 = true};
    struct virtio_net_hdr_mrg_rxbuf h = {0};
    struct netif_rx_request req[6];
    struct netif_rx_response rsp[6];
    uint16_t ids[6];
    struct bhnet_rxmeta m;
    struct bhnetf_rxpkt pkt;
    const uint8_t *f;
    unsigned int used;
    uint32_t off = 0;
    char why[WHY] = "";

    frame_make(frame, sizeof(frame), true, false, 6);
    h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
    h.hdr.gso_size = htole16(1440);
    memcpy(wire, &h, sizeof(h));
    memcpy(wire + 12, frame, sizeof(frame));
    ck_assert_int_eq(bhnet_rx_from_fd(sp[1], 12, buf, &m, &f, why, sizeof(why)), 0);
    ck_assert_int_eq(send(sp[0], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhnet_rx_from_fd(sp[1], 12, buf, &m, &f, why, sizeof(why)), 1);
    ck_assert_uint_eq(m.len, 9000);
    ck_assert_uint_eq(m.gso_type, T6);
    ck_assert_uint_eq(m.gso_size, 1440);
    ck_assert_uint_eq(m.flags, NETRXF_csum_blank | NETRXF_data_validated);
    for (unsigned int i = 0; i < 6; i++) {
        req[i] = (struct netif_rx_request){.id = (uint16_t)(i + 40), .gref = 10 + i};
        ids[i] = req[i].id;
    }
    ck_assert_int_eq(bhnet_rx_deliver(&o, &m, f, req, 3, page_of, NULL, rsp, &used), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(bhnet_rx_deliver(&o, &m, f, req, 6, page_of, NULL, rsp, &used), 0);
    ck_assert_uint_eq(used, 4); /* three pages and the GSO extra */
    ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, used, true, &fo, &pkt, why, sizeof(why)), BHNETF_OK);
    ck_assert_uint_eq(pkt.len, 9000);
    ck_assert_uint_eq(pkt.gso_size, 1440);
    for (unsigned int i = 0; i < pkt.nfrags; i++) {
        memcpy(back + off, pages[req[pkt.frag[i].slot].gref] + pkt.frag[i].off, pkt.frag[i].len);
        off += pkt.frag[i].len;
    }
    ck_assert_mem_eq(back, frame, sizeof(frame));
    /* Not asked for: refused whole.  A grant that does not map: one error response. */
    o.gso_tcpv6 = false;
    ck_assert_int_eq(bhnet_rx_deliver(&o, &m, f, req, 6, page_of, NULL, rsp, &used), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_uint_eq(used, 0);
    o.gso_tcpv6 = true;
    req[2].gref = NPAGES + 5; /* req[1] carries the GSO extra, no data */
    ck_assert_int_eq(bhnet_rx_deliver(&o, &m, f, req, 6, page_of, NULL, rsp, &used), -1);
    ck_assert_int_eq(errno, EFAULT);
    ck_assert_uint_eq(used, 1);
    ck_assert_int_eq(rsp[0].status, NETIF_RSP_ERROR);
    ck_assert_uint_eq(rsp[0].id, 40);
    /* What netif cannot tell: UDP fragmentation offload, ECN; and a runt. */
    h.hdr.gso_type = VIRTIO_NET_HDR_GSO_UDP;
    memcpy(wire, &h, sizeof(h));
    ck_assert_int_eq(send(sp[0], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhnet_rx_from_fd(sp[1], 12, buf, &m, &f, why, sizeof(why)), 2);
    ck_assert_ptr_nonnull(strstr(why, "no netif equivalent"));
    h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
    memcpy(wire, &h, sizeof(h));
    ck_assert_int_eq(send(sp[0], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhnet_rx_from_fd(sp[1], 12, buf, &m, &f, why, sizeof(why)), 2);
    ck_assert_int_eq(send(sp[0], wire, 12 + 5, 0), 12 + 5);
    ck_assert_int_eq(bhnet_rx_from_fd(sp[1], 12, buf, &m, &f, why, sizeof(why)), 2);
    ck_assert_ptr_nonnull(strstr(why, "runt"));
}
END_TEST

/* ---- the engine: both rings of a queue against a TAP-like socket ---- */

struct vif {
    void *txmem, *rxmem;
    struct bhring ftx, frx; /* the frontend's ends */
    struct bhnet *eng;
};

static void vif_open_with(struct vif *v, const struct bhnet_opts *more);

static void vif_open(struct vif *v, const struct bhnet_txopts *tx, const struct bhnet_rxopts *rx)
{
    struct bhnet_opts o = {.tx = *tx, .rx = *rx};

    vif_open_with(v, &o);
}

/* The rings and an engine over them, with more's tx, rx and optional fields. */
static void vif_open_with(struct vif *v, const struct bhnet_opts *more)
{
    struct bhnet_opts o = *more;
    char why[WHY] = "";

    v->txmem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));
    v->rxmem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));
    ck_assert(v->txmem && v->rxmem);
    ck_assert_int_eq(bhring_attach(&v->ftx, &bhring_netif_tx, BHRING_FRONT, v->txmem, 0, 0, true), 0);
    ck_assert_int_eq(bhring_attach(&v->frx, &bhring_netif_rx, BHRING_FRONT, v->rxmem, 0, 0, true), 0);
    o.tx_ring = v->txmem, o.rx_ring = v->rxmem;
    o.fd = sp[0], o.hdrsz = 12, o.page = page_of;
    v->eng = bhnet_open(&o, why, sizeof(why));
    ck_assert_msg(v->eng != NULL, "%s", why);
}

static void vif_close(struct vif *v)
{
    bhnet_close(v->eng);
    free(v->txmem);
    free(v->rxmem);
}

/* TX: a GSO packet reaches the TAP, a runt is answered with an error, multicast is kept. */
START_TEST(test_engine_tx)
{
    static uint8_t frame[3000], got[12 + 4000];
    struct vif v;
    struct netif_tx_request r[8] = {data(0, 3000, EI | MD | CB), extra(GSO, 0, 1448, T4),
                                    data(0, 1000, MD), data(0, 1000, 0), data(0, 10, 0),
                                    data(0, 0, EI),
                                    extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 0x33, 0)};
    static const int16_t want[7] = {NETIF_RSP_OKAY, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_RSP_OKAY,
                                    NETIF_RSP_ERROR, NETIF_RSP_OKAY, NETIF_RSP_NULL};
    const uint8_t mc[6] = {1, 0, 0, 0, 0, 0x33};
    struct netif_tx_response rsp;
    char why[WHY] = "";
    unsigned int k = 0;
    int rc;

    vif_open(&v, &all_on, &(struct bhnet_rxopts){0});
    frame_make(frame, sizeof(frame), false, false, 6);
    r[0].gref = 1, r[2].gref = 2, r[3].gref = 3, r[4].gref = 4;
    memcpy(pages[1], frame, 1000);
    memcpy(pages[2], frame + 1000, 1000);
    memcpy(pages[3], frame + 2000, 1000);
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), 0);
    for (unsigned int i = 0; i < 7; i++)
        ck_assert_int_eq(bhring_front_put(&v.ftx, &r[i]), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    rc = bhnet_run(v.eng, why, sizeof(why));
    ck_assert_msg(rc >= 0, "%s", why);
    ck_assert_int_eq(rc & BHNET_NOTIFY_TX, BHNET_NOTIFY_TX);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 3000);
    ck_assert_mem_eq(got + 12, frame, 3000);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1); /* the runt never left */
    while (bhring_front_get(&v.ftx, &rsp) == 1) {
        ck_assert_uint_lt(k, 7);
        ck_assert_int_eq(rsp.status, want[k]);
        if (want[k] != NETIF_RSP_NULL)
            ck_assert_uint_eq(rsp.id, r[k].id);
        k++;
    }
    ck_assert_uint_eq(k, 7);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_packets, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_dropped, 1);
    ck_assert(bhnet_mcast_has(v.eng, mc));
    /* A lie: the vif's rings are done with, and say why ever after. */
    r[0] = data(4000, 200, 0);
    ck_assert_int_eq(bhring_front_put(&v.ftx, &r[0]), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "crosses"));
    why[0] = '\0';
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "crosses"));
    vif_close(&v);
}
END_TEST

/* RX: a frame waits for buffers (held, not read further), then arrives whole. */
START_TEST(test_engine_rx)
{
    static uint8_t frame[5000], wire[12 + 5000], back[5000];
    struct vif v;
    struct virtio_net_hdr_mrg_rxbuf h = {0};
    struct netif_rx_response rsp[4];
    uint16_t ids[4];
    struct bhnetf_rxpkt pkt;
    char why[WHY] = "";
    unsigned int k = 0, off = 0;

    vif_open(&v, &all_off, &(struct bhnet_rxopts){.ring_ids = 256});
    frame_make(frame, sizeof(frame), false, false, 17);
    h.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    memcpy(wire, &h, sizeof(h));
    memcpy(wire + 12, frame, sizeof(frame));
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 0);
    /* One buffer is not enough for 5000 bytes: still held. */
    ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = 0, .gref = 20}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 0);
    for (uint16_t i = 1; i < 4; i++)
        ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = i, .gref = 20u + i}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)) & BHNET_NOTIFY_RX, BHNET_NOTIFY_RX);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 2);
    while (k < 4 && bhring_front_get(&v.frx, &rsp[k]) == 1) {
        ids[k] = (uint16_t)k;
        k++;
    }
    ck_assert_uint_eq(k, 4);
    ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, 2, true, &(struct bhnetf_rxopts){0}, &pkt, why,
                                     sizeof(why)),
                     BHNETF_OK);
    ck_assert_uint_eq(pkt.flags, NETRXF_data_validated);
    for (unsigned int i = 0; i < pkt.nfrags; i++) {
        memcpy(back + off, pages[20 + pkt.frag[i].slot] + pkt.frag[i].off, pkt.frag[i].len);
        off += pkt.frag[i].len;
    }
    ck_assert_uint_eq(off, 5000);
    ck_assert_mem_eq(back, frame, 5000);
    ck_assert_int_eq(bhnetf_rx_parse(rsp + 2, ids + 2, 2, true, &(struct bhnetf_rxopts){0}, &pkt,
                                     why, sizeof(why)),
                     BHNETF_OK);
    /* A buffer id beyond the ring is a lie. */
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = 999, .gref = 20}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_eq(bhnet_run(v.eng, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "names no buffer"));
    vif_close(&v);
}
END_TEST


static unsigned int rx_page_calls;

static void *page_counted(void *ctx, uint32_t gref, bool writable)
{
    rx_page_calls++;
    return page_evicting(ctx, gref, writable);
}

/*
 * RX read straight into the frontend's buffers (an engine with an epoch
 * and 40 buffers posted): a frame with no extra whose second page must
 * move back two requests, a GSO frame whose later pages move back one, a
 * short frame that moves nothing - each arrives whole where its
 * responses say.  Then the same with a mapping that evicts during the
 * read: read into the engine's buffer instead, the bytes the same.
 */
START_TEST(test_engine_rx_placed)
{
    static uint8_t f1[5000], f2[9000], f3[100], wire[12 + 9000], back[9000];
    const uint8_t *fr[3] = {f1, f2, f3};
    const size_t len[3] = {sizeof(f1), sizeof(f2), sizeof(f3)};
    struct bhnetf_rxopts fo = {.gso_tcpv4 = true};
    struct netif_rx_response rsp[64];
    uint16_t ids[64];
    char why[WHY] = "";

    frame_make(f1, sizeof(f1), false, false, 17);
    frame_make(f2, sizeof(f2), false, false, 6);
    frame_make(f3, sizeof(f3), false, false, 17);
    for (size_t i = 60; i < sizeof(f2); i++)
        f2[i] = (uint8_t)(i * 13 + 1);
    for (size_t i = 60; i < sizeof(f1); i++)
        f1[i] = (uint8_t)(i * 5 + 3);
    for (int pass = 0; pass < 2; pass++) {
        struct vif v;
        unsigned int got = 0, at = 0;

        kept_epoch = 0, kept_calls = 0, kept_evict_at = pass == 0 ? 0 : 5, rx_page_calls = 0;
        vif_open(&v, &all_off, &(struct bhnet_rxopts){0});
        bhnet_close(v.eng); /* again, with an epoch and over page_counted */
        ck_assert_ptr_nonnull(v.eng = bhnet_open(&(struct bhnet_opts){.tx_ring = v.txmem,
                                    .rx_ring = v.rxmem, .fd = sp[0], .hdrsz = 12,
                                    .page = page_counted, .epoch = epoch_of, .tx = all_off,
                                    .rx = {.gso_tcpv4 = true, .ring_ids = 256}}, why, sizeof(why)));
        for (uint16_t i = 0; i < 40; i++)
            ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = i, .gref = 20u + i}), 0);
        ck_assert_int_ge(bhring_front_push(&v.frx), 0);
        for (int i = 0; i < 3; i++) {
            struct virtio_net_hdr_mrg_rxbuf h = {0};

            h.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
            if (i == 1) {
                h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
                h.hdr.gso_size = htole16(1448);
            }
            memcpy(wire, &h, sizeof(h));
            memcpy(wire + 12, fr[i], len[i]);
            ck_assert_int_eq(send(sp[1], wire, 12 + len[i], 0), (ssize_t)(12 + len[i]));
            ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
            if (i == 0 && pass == 0)
                ck_assert_uint_ge(rx_page_calls, BHNET_RX_MAX_DATA); /* every placed page mapped */
        }
        ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 3);
        while (got < 64 && bhring_front_get(&v.frx, &rsp[got]) == 1) {
            ids[got] = rsp[got].id; /* buffer id i is page 20 + i */
            got++;
        }
        for (int i = 0; i < 3; i++) {
            struct bhnetf_rxpkt pkt;
            uint32_t off = 0;

            ck_assert_int_eq(bhnetf_rx_parse(rsp + at, ids + at, got - at, true, &fo, &pkt, why,
                                             sizeof(why)),
                             BHNETF_OK);
            for (unsigned int j = 0; j < pkt.nfrags; j++) {
                memcpy(back + off, pages[20 + ids[at + pkt.frag[j].slot]] + pkt.frag[j].off,
                       pkt.frag[j].len);
                off += pkt.frag[j].len;
            }
            ck_assert_uint_eq(off, len[i]);
            ck_assert_msg(memcmp(back, fr[i], len[i]) == 0, "pass %d frame %d differs", pass, i);
            ck_assert_uint_eq(pkt.gso_type, i == 1 ? T4 : 0);
            at += pkt.nrsp;
        }
        ck_assert_uint_eq(at, got);
        vif_close(&v);
    }
}
END_TEST

/*
 * unpage runs before the push that shows the frontend its responses: by
 * then no data page is mapped (Linux's netfront disables a vif whose
 * backend still maps a page it ends).  ctx is the ring page whose
 * rsp_prod the frontend reads.
 */
static bool data_mapped;
static unsigned int unpages;
static RING_IDX rsp_prod_seen;

static void *page_tracked(void *ctx, uint32_t gref, bool writable)
{
    data_mapped = true;
    return page_of(ctx, gref, writable);
}

static void unpage_tracked(void *ctx)
{
    const struct netif_tx_sring *txs = ctx;

    if (data_mapped) {
        unpages++;
        rsp_prod_seen = txs->rsp_prod; /* what the frontend could see at the unmap */
    }
    data_mapped = false;
}

START_TEST(test_engine_unpage_before_push)
{
    static uint8_t frame[1000], got[12 + 1000];
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .rx = {.ring_ids = 256}};
    struct netif_tx_request r = data(0, 1000, 0);
    struct netif_tx_response rsp;
    char why[WHY] = "";
    int rc;

    vif_open_with(&v, &o);
    bhnet_close(v.eng);
    /* Again with the hooks: vif_open_with sets page_of, these replace it. */
    o.tx_ring = v.txmem, o.rx_ring = v.rxmem, o.fd = sp[0], o.hdrsz = 12;
    o.page = page_tracked, o.unpage = unpage_tracked, o.ctx = v.txmem;
    ck_assert_ptr_nonnull(v.eng = bhnet_open(&o, why, sizeof(why)));
    frame_make(frame, sizeof(frame), false, false, 17);
    memcpy(pages[5], frame, sizeof(frame));
    r.gref = 5, r.id = 3;
    ck_assert_int_eq(bhring_front_put(&v.ftx, &r), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    unpages = 0;
    rc = bhnet_run(v.eng, why, sizeof(why));
    ck_assert_msg(rc >= 0, "%s", why);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 1000);
    ck_assert_uint_gt(unpages, 0);
    ck_assert(!data_mapped);
    /* The unmap came while the response was not yet the frontend's to see. */
    ck_assert_uint_eq(rsp_prod_seen, 0);
    ck_assert_uint_eq(((const struct netif_tx_sring *)v.txmem)->rsp_prod, 1);
    ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 1);
    ck_assert_uint_eq(rsp.id, 3);
    vif_close(&v);
}
END_TEST

/* A 60-byte frame from src in page gref, and its single-slot request. */
static struct netif_tx_request tx_frame(uint32_t gref, uint8_t src_last, uint16_t id)
{
    memset(pages[gref], 0, 60);
    memset(pages[gref], 0xff, 6);
    memcpy(pages[gref] + 6, "\x00\x16\x3e\x00\x00", 5);
    pages[gref][11] = src_last;
    pages[gref][12] = 0x88;
    pages[gref][13] = 0xb5;
    pages[gref][14] = (uint8_t)id;
    return (struct netif_tx_request){.gref = gref, .offset = 0, .flags = 0, .id = id, .size = 60};
}

static int put_tx(struct vif *v, struct netif_tx_request r)
{
    return bhring_front_put(&v->ftx, &r);
}

static bool only_src_1(void *ctx, const uint8_t *f, size_t len)
{
    static const struct bhnet_antispoof a = {.has_mac = true, .mac = {0, 0x16, 0x3e, 0, 0, 1}};

    (void)ctx;
    return bhnet_antispoof_ok(&a, f, len);
}

/* The filter: a refused frame is answered OKAY, never written, counted apart. */
START_TEST(test_engine_filter)
{
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .filter = only_src_1};
    struct netif_tx_response rsp;
    uint8_t got[200];
    char why[WHY] = "";

    vif_open_with(&v, &o);
    ck_assert_int_eq(put_tx(&v, tx_frame(1, 9, 1)), 0);
    ck_assert_int_eq(put_tx(&v, tx_frame(2, 1, 2)), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_uint_eq(got[12 + 14], 2); /* the second: the first never left */
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1);
    for (uint16_t id = 1; id <= 2; id++) {
        ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 1);
        ck_assert_uint_eq(rsp.id, id);
        ck_assert_int_eq(rsp.status, NETIF_RSP_OKAY);
    }
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_filtered, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_packets, 1);
    vif_close(&v);
}
END_TEST

/*
 * rate=: 100 bytes per 1000 s.  Two 60-byte frames go (the second puts the
 * window in debt), the third stays on the ring, unanswered, with the time
 * to wait said; no window passes during the test.
 */
START_TEST(test_engine_credit)
{
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .credit_bytes = 100, .credit_usec = 1000000000u};
    struct netif_tx_response rsp;
    uint8_t got[200];
    char why[WHY] = "";

    vif_open_with(&v, &o);
    ck_assert_uint_eq(bhnet_wait_usec(v.eng), 0);
    for (uint16_t id = 1; id <= 3; id++)
        ck_assert_int_eq(put_tx(&v, tx_frame(id, 1, id)), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1);
    ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 1);
    ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 1);
    ck_assert_uint_eq(rsp.id, 2);
    ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_throttled, 1);
    ck_assert_uint_gt(bhnet_wait_usec(v.eng), 0);
    ck_assert_uint_le(bhnet_wait_usec(v.eng), 1000000000u);
    /* Another run (an event) does not send it either, nor count a second throttling. */
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_throttled, 1);
    vif_close(&v);
}
END_TEST

/*
 * The kept state: an engine closed (a worker gone) and another opened over
 * the same rings goes on - no TX slot answered or sent twice, and an RX
 * request taken for a frame still there for the next.
 */
START_TEST(test_engine_kept_across_engines)
{
    static struct bhnet_kept k;
    static uint8_t wire[12 + 5000];
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .rx = {.ring_ids = 256}, .kept = &k};
    struct netif_tx_response rsp;
    struct netif_rx_response rrsp;
    uint8_t got[200];
    char why[WHY] = "";

    memset(&k, 0, sizeof(k));
    vif_open_with(&v, &o);
    ck_assert_int_eq(put_tx(&v, tx_frame(1, 1, 1)), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    /* A 5000-byte frame and one RX buffer: the buffer is taken, the frame held. */
    memset(wire, 0, sizeof(wire));
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = 5, .gref = 20}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_uint_eq(k.nreq, 1);
    ck_assert_uint_eq(k.tx.cons, 1);
    bhnet_close(v.eng); /* the worker dies: its held frame with it */

    ck_assert_ptr_nonnull(v.eng = bhnet_open(&(struct bhnet_opts){.tx_ring = v.txmem, .rx_ring = v.rxmem,
                                                                  .fd = sp[0], .hdrsz = 12, .page = page_of,
                                                                  .tx = all_off, .rx = {.ring_ids = 256},
                                                                  .kept = &k},
                                             why, sizeof(why)));
    ck_assert_int_eq(put_tx(&v, tx_frame(2, 1, 2)), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = 6, .gref = 21}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), 12 + 60);
    ck_assert_uint_eq(got[12 + 14], 2); /* the new frame only */
    ck_assert_int_eq(recv(sp[1], got, sizeof(got), 0), -1);
    for (uint16_t id = 1; id <= 2; id++) {
        ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 1);
        ck_assert_uint_eq(rsp.id, id);
    }
    ck_assert_int_eq(bhring_front_get(&v.ftx, &rsp), 0);
    /* The buffer taken by the first engine carries the first part of the new frame. */
    ck_assert_int_eq(bhring_front_get(&v.frx, &rrsp), 1);
    ck_assert_uint_eq(rrsp.id, 5);
    ck_assert_int_eq(bhring_front_get(&v.frx, &rrsp), 1);
    ck_assert_uint_eq(rrsp.id, 6);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->tx_packets, 2); /* counters are kept too */
    vif_close(&v);
}
END_TEST

/*
 * XSA-392: with no RX buffers the engine holds one frame and stops reading
 * (wants_fd false); past rx_stall_ms the queue stalls and drops what comes,
 * reading the TAP again; a buffer posted ends the stall.
 */
START_TEST(test_engine_rx_stall)
{
    static uint8_t wire[12 + 100];
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .rx = {.ring_ids = 256}, .rx_stall_ms = 1};
    struct netif_rx_response rrsp;
    char why[WHY] = "";

    vif_open_with(&v, &o);
    memset(wire, 0, sizeof(wire));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert(!bhnet_wants_fd(v.eng));
    ck_assert_uint_gt(bhnet_wait_usec(v.eng), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 0);
    usleep(20000); /* past the 1 ms stall timeout: what is asserted is the state after it */
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_stalls, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 3);
    ck_assert(bhnet_wants_fd(v.eng));
    /* Buffers again: the next frame is delivered. */
    ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = 1, .gref = 20}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(bhring_front_get(&v.frx, &rrsp), 1);
    ck_assert_int_eq(rrsp.status, 100);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 1);
    vif_close(&v);
}
END_TEST


/* Posts buffer id (page gref) on v's RX ring. */
static void rx_post(struct vif *v, uint16_t id, uint32_t gref)
{
    ck_assert_int_eq(bhring_front_put(&v->frx, &(struct netif_rx_request){.id = id, .gref = gref}), 0);
    ck_assert_int_ge(bhring_front_push(&v->frx), 0);
}

/* The next RX response: its frame's first byte (the tag rx_push_tag wrote), or -1 if none. */
static int rx_got_tag(struct vif *v)
{
    struct netif_rx_response r;

    if (bhring_front_get(&v->frx, &r) != 1)
        return -1;
    ck_assert_int_eq(r.status, 60);
    return pages[20 + r.id][r.offset];
}

/* Pushes a 60-byte frame whose first byte is tag, as another queue's engine would. */
static int rx_push_tag(struct vif *v, uint8_t tag, int *notify)
{
    uint8_t f[60] = {tag};
    char why[WHY] = "";
    int r = bhnet_rx_push(v->eng, &(struct bhnet_rxmeta){.len = 60}, f, notify, why, sizeof(why));

    ck_assert_msg(r >= 0, "%s", why);
    return r;
}

/*
 * Frames steered here while the queue has no buffers wait, in order, in
 * its backlog (not dropped: another queue's frames must not be lost to a
 * moment without buffers); buffers posted later take them first, through
 * a later push or the queue's own run.  The backlog is bounded, and a
 * stall drops what it holds.
 */
/* Posts one RX buffer: 1 if the backend asked to be told (its request event), else 0. */
static int rx_post_notify(struct vif *v, uint16_t id, uint32_t gref)
{
    ck_assert_int_eq(bhring_front_put(&v->frx, &(struct netif_rx_request){.id = id, .gref = gref}), 0);
    return bhring_front_push(&v->frx);
}

/*
 * RX asks to be told of new buffers only while a frame waits for them
 * (Linux's netback likewise): idle, the TAP wakes the queue, and a refill
 * costs the frontend no notification - a frame held short of buffers, or
 * one steered here into the backlog, does.
 */
START_TEST(test_engine_rx_event_only_when_waiting)
{
    static uint8_t frame[5000], wire[12 + 5000];
    struct virtio_net_hdr_mrg_rxbuf h = {0};
    struct vif v;
    char why[WHY] = "";
    int notify;

    vif_open(&v, &all_off, &(struct bhnet_rxopts){.ring_ids = 256});
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0); /* idle: no frame */
    rx_post_notify(&v, 0, 20); /* a new ring's event asks for the first request */
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(rx_post_notify(&v, 1, 21), 0);
    /* A 5000-byte frame needs two buffers and has them: delivered, and idle again. */
    frame_make(frame, sizeof(frame), false, false, 17);
    h.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    memcpy(wire, &h, sizeof(h));
    memcpy(wire + 12, frame, sizeof(frame));
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 1);
    ck_assert_int_eq(rx_post_notify(&v, 2, 22), 0);
    /* The next frame finds one buffer: held, and the next buffer posted wakes the queue. */
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 1);
    ck_assert_int_eq(rx_post_notify(&v, 3, 23), 1);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 2);
    ck_assert_int_eq(rx_post_notify(&v, 4, 24), 0);
    /* A frame steered here: delivered into the buffer there is, the next one waits and asks. */
    ck_assert_int_eq(rx_push_tag(&v, 1, &notify), 1);
    ck_assert_int_eq(rx_push_tag(&v, 2, &notify), 2);
    ck_assert_int_eq(rx_post_notify(&v, 5, 25), 1);
    vif_close(&v);
}
END_TEST

START_TEST(test_engine_rx_push_backlog)
{
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .rx = {.ring_ids = 256}};
    char why[WHY] = "";
    int notify;
    unsigned int kept = 0;

    vif_open_with(&v, &o);
    for (uint8_t t = 1; t <= 3; t++)
        ck_assert_int_eq(rx_push_tag(&v, t, &notify), 2);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 0);
    ck_assert(!bhnet_wants_fd(v.eng)); /* the TAP waits behind them */
    /* Two buffers: a fourth push delivers 1 and 2 first, and waits behind 3. */
    rx_post(&v, 0, 20);
    rx_post(&v, 1, 21);
    ck_assert_int_eq(rx_push_tag(&v, 4, &notify), 2);
    ck_assert_int_eq(notify, BHNET_NOTIFY_RX);
    ck_assert_int_eq(rx_got_tag(&v), 1);
    ck_assert_int_eq(rx_got_tag(&v), 2);
    ck_assert_int_eq(rx_got_tag(&v), -1);
    /* The queue's own run serves the rest when buffers come. */
    rx_post(&v, 2, 22);
    rx_post(&v, 3, 23);
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(rx_got_tag(&v), 3);
    ck_assert_int_eq(rx_got_tag(&v), 4);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 4);
    ck_assert(bhnet_wants_fd(v.eng));
    /* With a buffer free and nothing waiting, a push is delivered at once. */
    rx_post(&v, 4, 24);
    ck_assert_int_eq(rx_push_tag(&v, 5, &notify), 1);
    ck_assert_int_eq(rx_got_tag(&v), 5);
    /* Bounded: what does not fit is dropped and counted. */
    for (unsigned int i = 0; i < 200; i++)
        kept += rx_push_tag(&v, 6, &notify) == 2;
    ck_assert_uint_eq(kept, 128);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 72);
    vif_close(&v); /* frees the backlog: ASan's leak check says so */
}
END_TEST

/* A backlog whose buffers never come stalls like a held frame: dropped; then a buffer ends it. */
START_TEST(test_engine_rx_push_backlog_stalls)
{
    struct vif v;
    struct bhnet_opts o = {.tx = all_off, .rx = {.ring_ids = 256}, .rx_stall_ms = 1};
    char why[WHY] = "";
    int notify;

    vif_open_with(&v, &o);
    ck_assert_int_eq(rx_push_tag(&v, 1, &notify), 2);
    ck_assert_int_eq(rx_push_tag(&v, 2, &notify), 2);
    ck_assert_uint_gt(bhnet_wait_usec(v.eng), 0); /* the worker is woken for the stall */
    usleep(20000); /* past the 1 ms stall timeout: what is asserted is the state after it */
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_stalls, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 2);
    ck_assert_int_eq(rx_push_tag(&v, 3, &notify), 0); /* stalled, no buffers: dropped */
    rx_post(&v, 0, 20);
    ck_assert_int_eq(rx_push_tag(&v, 4, &notify), 1);
    ck_assert_int_eq(rx_got_tag(&v), 4);
    ck_assert_int_eq(rx_push_tag(&v, 5, &notify), 2); /* the stall is over: it waits again */
    vif_close(&v);
}
END_TEST

/* Multicast control: RX multicast only to groups added (broadcast always); off, all pass. */
START_TEST(test_engine_rx_mcast_filter)
{
    static uint8_t wire[12 + 60];
    struct bhnet_txopts tx = {.mcast = true};
    struct vif v;
    struct netif_rx_response rrsp;
    struct netif_tx_response trsp;
    struct netif_tx_request add[2] = {data(0, 0, EI), extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0, 0x44, 0)};
    char why[WHY] = "";

    vif_open(&v, &tx, &(struct bhnet_rxopts){.ring_ids = 256});
    for (uint16_t i = 0; i < 4; i++)
        ck_assert_int_eq(bhring_front_put(&v.frx, &(struct netif_rx_request){.id = i, .gref = 20u + i}), 0);
    ck_assert_int_ge(bhring_front_push(&v.frx), 0);
    memset(wire, 0, sizeof(wire));
    memcpy(wire + 12, "\x01\x00\x00\x00\x00\x44", 6); /* a group not added: dropped */
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    memset(wire + 12, 0xff, 6); /* broadcast: delivered */
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 1);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 1);
    ck_assert_int_eq(bhring_front_get(&v.frx, &rrsp), 1);
    ck_assert_int_eq(bhring_front_get(&v.frx, &rrsp), 0);
    /* The frontend adds the group: now it is delivered. */
    for (unsigned int i = 0; i < 2; i++)
        ck_assert_int_eq(bhring_front_put(&v.ftx, &add[i]), 0);
    ck_assert_int_ge(bhring_front_push(&v.ftx), 0);
    memcpy(wire + 12, "\x01\x00\x00\x00\x00\x44", 6);
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_int_eq(bhring_front_get(&v.ftx, &trsp), 1);
    ck_assert_int_eq(trsp.status, NETIF_RSP_OKAY);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 2);
    /* Multicast control off (dynamic): every group passes. */
    bhnet_set_mcast(v.eng, false);
    memcpy(wire + 12, "\x01\x00\x00\x00\x00\x55", 6);
    ck_assert_int_eq(send(sp[1], wire, sizeof(wire), 0), (ssize_t)sizeof(wire));
    ck_assert_int_ge(bhnet_run(v.eng, why, sizeof(why)), 0);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_packets, 3);
    ck_assert_uint_eq(bhnet_get_stats(v.eng)->rx_dropped, 1);
    vif_close(&v);
}
END_TEST

static Suite *netparse_suite(void)
{
    Suite *s = suite_create("netparse");
    TCase *tx = tcase_create("tx"), *ring = tcase_create("tx_ring"), *rx = tcase_create("rx");
    TCase *vnet = tcase_create("vnet"), *engine = tcase_create("engine");

    tcase_add_loop_test(tx, test_tx_valid_slots, 1, XEN_NETIF_NR_SLOTS_MIN + 1);
    tcase_add_test(tx, test_tx_slot_limits);
    txcases_fill();
    tcase_add_loop_test(tx, test_tx_table, 0, (int)ntxcases);
    tcase_add_test(tx, test_tx_fields);
    tcase_add_test(ring, test_tx_ring_partial);
    tcase_add_test(ring, test_tx_ring_lie);
    tcase_add_test(ring, test_tx_ring_drop_then_go);
    tcase_add_test(ring, test_tx_front_status);
    tcase_add_loop_test(rx, test_rx_roundtrip, 0, (int)(3 * RX_LENS));
    tcase_add_test(rx, test_rx_prefix_and_bounds);
    tcase_add_loop_test(rx, test_rx_front_table, 0, RX_FRONT_CASES);
    suite_add_tcase(s, tx);
    suite_add_tcase(s, ring);
    suite_add_tcase(s, rx);
    tcase_add_checked_fixture(vnet, vnet_setup, vnet_teardown);
    tcase_add_test(vnet, test_vnet_tx_gso);
    tcase_add_test(vnet, test_vnet_tx_csum);
    tcase_add_test(vnet, test_vnet_tx_kept);
    tcase_add_test(vnet, test_vnet_csum_locate);
    tcase_add_test(vnet, test_vnet_rx);
    suite_add_tcase(s, vnet);
    tcase_add_checked_fixture(engine, vnet_setup, vnet_teardown);
    tcase_add_test(engine, test_engine_tx);
    tcase_add_test(engine, test_engine_unpage_before_push);
    tcase_add_test(engine, test_engine_rx);
    tcase_add_test(engine, test_engine_rx_placed);
    tcase_add_test(engine, test_engine_rx_event_only_when_waiting);
    tcase_add_test(engine, test_engine_filter);
    tcase_add_test(engine, test_engine_credit);
    tcase_add_test(engine, test_engine_kept_across_engines);
    tcase_add_test(engine, test_engine_rx_stall);
    tcase_add_test(engine, test_engine_rx_mcast_filter);
    tcase_add_test(engine, test_engine_rx_push_backlog);
    tcase_add_test(engine, test_engine_rx_push_backlog_stalls);
    suite_add_tcase(s, engine);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(netparse_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
