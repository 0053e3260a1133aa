/*
 * check_nethash.c - netback's control ring and Toeplitz hashing
 * (backend/net/hash.c): the hash against the verification vectors of
 * Microsoft's RSS documentation, every control request's checks (key
 * length, mapping size, offsets, entries naming no queue), the queue a
 * frame is steered to, and the HASH extra laid over RX slots and read back
 * by netfront's validator.  No root needed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bhnetback.h"
#include "bhnetfront.h"

#define WHY 256

/* The key of Microsoft's "Verifying the RSS Hash Calculation". */
static const uint8_t ms_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

/* Each: destination address:port, source address:port, hash with TCP, hash of the addresses. */
static const struct vec {
    const char *dst;
    uint16_t dport;
    const char *src;
    uint16_t sport;
    uint32_t tcp, ip;
} v4[] = {
    {"161.142.100.80", 1766, "66.9.149.187", 2794, 0x51ccc178, 0x323e8fc2},
    {"65.69.140.83", 4739, "199.92.111.2", 14230, 0xc626b0ea, 0xd718262a},
    {"12.22.207.184", 38024, "24.19.198.95", 12898, 0x5c2b394a, 0xd2d0a5de},
    {"209.142.163.6", 2217, "38.27.205.30", 48228, 0xafc7327f, 0x82989176},
    {"202.188.127.2", 1303, "153.39.163.191", 44251, 0x10e828a2, 0x5d1809c5},
}, v6[] = {
    {"3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x40207d3d, 0x2cc18cd5},
    {"ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0xdde51bbf, 0x0f0c461c},
    {"fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251,
     0x02d1feef, 0x4b61e985},
};

/* An Ethernet frame of an IPv4 or IPv6 packet with a TCP (6) or UDP (17) header's ports. */
static size_t frame(uint8_t *f, const struct vec *v, bool ipv6, uint8_t proto)
{
    size_t l3 = 14, l4;

    memset(f, 0, 128);
    f[12] = ipv6 ? 0x86 : 0x08;
    f[13] = ipv6 ? 0xdd : 0x00;
    if (ipv6) {
        f[l3] = 0x60;
        f[l3 + 6] = proto;
        inet_pton(AF_INET6, v->src, f + l3 + 8);
        inet_pton(AF_INET6, v->dst, f + l3 + 24);
        l4 = l3 + 40;
    } else {
        f[l3] = 0x45;
        f[l3 + 9] = proto;
        inet_pton(AF_INET, v->src, f + l3 + 12);
        inet_pton(AF_INET, v->dst, f + l3 + 16);
        l4 = l3 + 20;
    }
    f[l4] = (uint8_t)(v->sport >> 8);
    f[l4 + 1] = (uint8_t)v->sport;
    f[l4 + 2] = (uint8_t)(v->dport >> 8);
    f[l4 + 3] = (uint8_t)v->dport;
    return l4 + 20;
}

static struct bhnet_hash toeplitz(uint32_t flags)
{
    struct bhnet_hash h;

    memset(&h, 0, sizeof(h));
    h.alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
    h.flags = flags;
    memcpy(h.key, ms_key, sizeof(ms_key));
    return h;
}

/* The vectors, on the hash alone and through a frame (which fields, in which order). */
START_TEST(test_toeplitz_vectors)
{
    const struct vec *v = _i < 5 ? &v4[_i] : &v6[_i - 5];
    bool ipv6 = _i >= 5;
    uint32_t all = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP |
                   XEN_NETIF_CTRL_HASH_TYPE_IPV6 | XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
    uint32_t addrs = XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV6;
    uint8_t in[36], f[128];
    size_t alen = ipv6 ? 16 : 4, len;
    struct bhnet_hash h;
    struct bhnet_rxmeta m;

    inet_pton(ipv6 ? AF_INET6 : AF_INET, v->src, in);
    inet_pton(ipv6 ? AF_INET6 : AF_INET, v->dst, in + alen);
    in[2 * alen] = (uint8_t)(v->sport >> 8);
    in[2 * alen + 1] = (uint8_t)v->sport;
    in[2 * alen + 2] = (uint8_t)(v->dport >> 8);
    in[2 * alen + 3] = (uint8_t)v->dport;
    ck_assert_uint_eq(bhnet_toeplitz(ms_key, sizeof(ms_key), in, 2 * alen + 4), v->tcp);
    ck_assert_uint_eq(bhnet_toeplitz(ms_key, sizeof(ms_key), in, 2 * alen), v->ip);

    /* TCP with the TCP type on: the four-tuple. */
    len = frame(f, v, ipv6, 6);
    h = toeplitz(all);
    memset(&m, 0, sizeof(m));
    m.len = (uint32_t)len;
    bhnet_hash_steer(&h, 1, f, len, &m, 0);
    ck_assert(m.has_hash);
    ck_assert_uint_eq(m.hash, v->tcp);
    ck_assert_uint_eq(m.hash_type, ipv6 ? _XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP
                                        : _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    /* TCP with the address types only, and UDP with all: the addresses. */
    h = toeplitz(addrs);
    bhnet_hash_steer(&h, 1, f, len, &m, 0);
    ck_assert(m.has_hash);
    ck_assert_uint_eq(m.hash, v->ip);
    ck_assert_uint_eq(m.hash_type, ipv6 ? _XEN_NETIF_CTRL_HASH_TYPE_IPV6
                                        : _XEN_NETIF_CTRL_HASH_TYPE_IPV4);
    len = frame(f, v, ipv6, 17);
    h = toeplitz(all);
    bhnet_hash_steer(&h, 1, f, len, &m, 0);
    ck_assert(m.has_hash);
    ck_assert_uint_eq(m.hash, v->ip);
    /* The other family's types only: no hash. */
    h = toeplitz(ipv6 ? XEN_NETIF_CTRL_HASH_TYPE_IPV4 | XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP
                      : XEN_NETIF_CTRL_HASH_TYPE_IPV6 | XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
    bhnet_hash_steer(&h, 1, f, len, &m, 0);
    ck_assert(!m.has_hash);
}
END_TEST

/*
 * An IPv4 fragment is hashed on its addresses: only its first piece holds
 * the ports, and every piece of a packet must land on the same queue.
 */
START_TEST(test_toeplitz_fragment)
{
    struct bhnet_hash h = toeplitz(XEN_NETIF_CTRL_HASH_TYPE_IPV4 |
                                   XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    struct bhnet_rxmeta m;
    uint8_t f[128];
    size_t len = frame(f, &v4[0], false, 6);

    memset(&m, 0, sizeof(m));
    f[14 + 6] = 0x20; /* more fragments */
    bhnet_hash_steer(&h, 1, f, len, &m, 0);
    ck_assert(m.has_hash);
    ck_assert_uint_eq(m.hash_type, _XEN_NETIF_CTRL_HASH_TYPE_IPV4);
    ck_assert_uint_eq(m.hash, v4[0].ip);
    /* Cut short before the ports: the addresses; before the addresses: nothing. */
    f[14 + 6] = 0;
    bhnet_hash_steer(&h, 1, f, 14 + 20 + 2, &m, 0);
    ck_assert_uint_eq(m.hash_type, _XEN_NETIF_CTRL_HASH_TYPE_IPV4);
    bhnet_hash_steer(&h, 1, f, 14 + 19, &m, 0);
    ck_assert(!m.has_hash);
}
END_TEST

static struct xen_netif_ctrl_request creq(uint16_t type, uint32_t a, uint32_t b, uint32_t c)
{
    static uint16_t id;

    return (struct xen_netif_ctrl_request){++id, type, {a, b, c}};
}

/* Runs one request and checks that the response echoes it. */
static uint32_t ctrl(struct bhnet_hash *h, unsigned int nq, struct xen_netif_ctrl_request r,
                     const void *page, uint32_t *data)
{
    struct xen_netif_ctrl_response rsp = bhnet_ctrl_handle(h, nq, &r, page);

    ck_assert_uint_eq(rsp.id, r.id);
    ck_assert_uint_eq(rsp.type, r.type);
    if (data != NULL)
        *data = rsp.data;
    return rsp.status;
}

#define OK   XEN_NETIF_CTRL_STATUS_SUCCESS
#define INV  XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER
#define OVF  XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW
#define NSUP XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED

START_TEST(test_ctrl_hash_settings)
{
    struct bhnet_hash h;
    uint8_t page[4096];
    uint32_t d = 0, gref = 0;
    struct xen_netif_ctrl_request r;

    memset(&h, 0, sizeof(h));
    memset(page, 0xab, sizeof(page));
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS, 0, 0, 0), NULL, &d), OK);
    ck_assert_uint_eq(d, 0xf);
    /* Flags before an algorithm, an algorithm we lack, flags we lack. */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 1, 0, 0), NULL, NULL), INV);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 2, 0, 0), NULL, NULL), INV);
    ck_assert_uint_eq(h.alg, XEN_NETIF_CTRL_HASH_ALGORITHM_NONE);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 1, 0, 0), NULL, NULL), OK);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 0x10, 0, 0), NULL, NULL), INV);
    ck_assert_uint_eq(h.flags, 0);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 0xf, 0, 0), NULL, NULL), OK);
    ck_assert_uint_eq(h.flags, 0xf);

    /* The key: at most 40 octets, from the page, the rest zero; the page must map. */
    r = creq(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 77, 41, 0);
    ck_assert(bhnet_ctrl_gref(&r, &gref));
    ck_assert_uint_eq(gref, 77);
    ck_assert_uint_eq(ctrl(&h, 2, r, page, NULL), OVF);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 77, 4, 0), NULL, NULL), INV);
    memcpy(page, ms_key, sizeof(ms_key));
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 77, 40, 0), page, NULL), OK);
    ck_assert_mem_eq(h.key, ms_key, 40);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 77, 3, 0), page, NULL), OK);
    ck_assert_mem_eq(h.key, ms_key, 3);
    for (unsigned int i = 3; i < 40; i++)
        ck_assert_uint_eq(h.key[i], 0);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, 77, 0, 0), NULL, NULL), OK);

    /* The mapping table: its size, then entries within it, each a queue we have. */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, 0, 0, 0), NULL, &d), OK);
    ck_assert_uint_eq(d, BHNET_HASH_MAPPING_MAX);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 129, 0, 0), NULL, NULL), INV);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 8, 0, 0), NULL, NULL), OK);
    ck_assert_uint_eq(h.size, 8);
    for (uint32_t i = 0; i < 1024; i++)
        memcpy(page + 4 * i, &(uint32_t){i % 2}, 4);
    r = creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 6);
    ck_assert(bhnet_ctrl_gref(&r, &gref));
    ck_assert_uint_eq(ctrl(&h, 2, r, page, NULL), INV); /* 6 + 4 > 8 */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 2, 0xffffffffu), page, NULL), INV);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 1025, 0), page, NULL), OVF);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 0), NULL, NULL), INV);
    /* An empty sub-table sets nothing and needs no page, even at the table's end. */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 0, 8), NULL, NULL), OK);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 0, 9), NULL, NULL), INV);
    /* Entry 1 is queue 1: a one-queue vif refuses the whole table. */
    ck_assert_uint_eq(ctrl(&h, 1, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 8, 0), page, NULL), INV);
    for (unsigned int i = 0; i < 8; i++)
        ck_assert_uint_eq(h.mapping[i], 0);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, 5, 4, 4), page, NULL), OK);
    for (unsigned int i = 0; i < 8; i++)
        ck_assert_uint_eq(h.mapping[i], i < 4 ? 0 : i % 2);
    /* A new size starts a new table. */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 4, 0, 0), NULL, NULL), OK);
    for (unsigned int i = 0; i < BHNET_HASH_MAPPING_MAX; i++)
        ck_assert_uint_eq(h.mapping[i], 0);

    /* What we do not do. */
    for (uint16_t t = 8; t <= 11; t++)
        ck_assert_uint_eq(ctrl(&h, 2, creq(t, 0, 0, 0), NULL, NULL), NSUP);
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_INVALID, 0, 0, 0), NULL, NULL), NSUP);
    ck_assert_uint_eq(ctrl(&h, 2, creq(0xffff, 0, 0, 0), NULL, NULL), NSUP);
    r = creq(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS, 0, 0, 0);
    ck_assert(!bhnet_ctrl_gref(&r, &gref));
    /* No algorithm again: flags stay, hashing stops. */
    ck_assert_uint_eq(ctrl(&h, 2, creq(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, 0, 0, 0), NULL, NULL), OK);
    ck_assert_uint_eq(h.alg, XEN_NETIF_CTRL_HASH_ALGORITHM_NONE);
}
END_TEST

/* The queue a frame goes to: the mapping table's entry for its hash, or the TAP's queue. */
START_TEST(test_steer)
{
    struct bhnet_hash h = toeplitz(0xf);
    struct bhnet_rxmeta m;
    uint8_t f[128];
    size_t len = frame(f, &v4[0], false, 6);

    memset(&m, 0, sizeof(m));
    /* No table: the hash modulo the queues. */
    ck_assert_uint_eq(bhnet_hash_steer(&h, 3, f, len, &m, 9), v4[0].tcp % 3);
    h.size = 8;
    for (unsigned int i = 0; i < 8; i++)
        h.mapping[i] = i % 4;
    ck_assert_uint_eq(bhnet_hash_steer(&h, 4, f, len, &m, 9), h.mapping[v4[0].tcp % 8]);
    h.mapping[v4[0].tcp % 8] = 3;
    ck_assert_uint_eq(bhnet_hash_steer(&h, 4, f, len, &m, 9), 3);
    /* An entry past the queues (a table made for more of them): the TAP's queue. */
    ck_assert_uint_eq(bhnet_hash_steer(&h, 2, f, len, &m, 1), 1);
    /* Not IP: no hash, hash 0's entry. */
    f[12] = 0x08;
    f[13] = 0x06;
    h.mapping[0] = 2;
    ck_assert_uint_eq(bhnet_hash_steer(&h, 4, f, len, &m, 9), 2);
    ck_assert(!m.has_hash);
    /* No algorithm: the TAP's queue, no hash. */
    h.alg = XEN_NETIF_CTRL_HASH_ALGORITHM_NONE;
    len = frame(f, &v4[0], false, 6);
    ck_assert_uint_eq(bhnet_hash_steer(&h, 4, f, len, &m, 1), 1);
    ck_assert(!m.has_hash);
    /* One 802.1Q tag is looked through. */
    h.alg = XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
    memmove(f + 16, f + 12, len - 12);
    f[12] = 0x81;
    f[13] = 0x00;
    bhnet_hash_steer(&h, 4, f, len + 4, &m, 0);
    ck_assert(m.has_hash);
    ck_assert_uint_eq(m.hash, v4[0].tcp);
}
END_TEST

/* The HASH extra after a GSO one, as netback lays them and netfront reads them. */
START_TEST(test_rx_hash_extra)
{
    bool gso = _i & 1;
    struct bhnet_rxopts o = {.gso_tcpv4 = true, .ring_ids = 256};
    struct bhnet_rxmeta m = {.len = 6000, .gso_type = gso ? XEN_NETIF_GSO_TYPE_TCPV4 : 0,
                             .gso_size = gso ? 1448 : 0, .has_hash = true,
                             .hash_type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP, .hash = 0x51ccc178};
    struct netif_rx_request req[8];
    struct netif_rx_response rsp[8];
    struct bhnet_rxcopy copy[8];
    uint16_t ids[8];
    unsigned int ncopy, need = bhnet_rx_slots(&o, &m);
    struct bhnetf_rxopts fo = {.gso_tcpv4 = true, .hash = true};
    struct bhnetf_rxpkt pkt;
    char why[WHY];
    int used;

    ck_assert_uint_eq(need, 2 + (gso ? 2 : 1));
    for (unsigned int i = 0; i < 8; i++) {
        req[i] = (struct netif_rx_request){.id = (uint16_t)(10 + i), .gref = 100 + i};
        ids[i] = req[i].id;
    }
    used = bhnet_rx_build(&o, &m, req, 8, rsp, copy, &ncopy);
    ck_assert_int_eq(used, (int)need);
    ck_assert_uint_eq(ncopy, 2);
    ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, (unsigned int)used, true, &fo, &pkt, why, sizeof(why)),
                     BHNETF_OK);
    ck_assert(pkt.has_hash);
    ck_assert_uint_eq(pkt.hash, 0x51ccc178);
    ck_assert_uint_eq(pkt.hash_type, _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    ck_assert_uint_eq(pkt.hash_alg, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    ck_assert_uint_eq(pkt.gso_size, gso ? 1448 : 0);
    ck_assert_uint_eq(pkt.len, 6000);
    /* A frontend that did not turn hashing on takes the extra for a lie. */
    fo.hash = false;
    ck_assert_int_eq(bhnetf_rx_parse(rsp, ids, (unsigned int)used, true, &fo, &pkt, why, sizeof(why)),
                     BHNETF_LIE);
    ck_assert_ptr_nonnull(strstr(why, "hash"));
}
END_TEST

static Suite *nethash_suite(void)
{
    Suite *s = suite_create("nethash");
    TCase *t = tcase_create("toeplitz"), *c = tcase_create("ctrl");

    tcase_add_loop_test(t, test_toeplitz_vectors, 0, 8);
    tcase_add_test(t, test_toeplitz_fragment);
    tcase_add_test(t, test_steer);
    tcase_add_loop_test(t, test_rx_hash_extra, 0, 2);
    tcase_add_test(c, test_ctrl_hash_settings);
    suite_add_tcase(s, t);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nethash_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
