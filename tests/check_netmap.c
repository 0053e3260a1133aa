/*
 * check_netmap.c - netback's kept mappings of a frontend's pages
 * (driverdom/netmap.c, bulkhead-persistent-pools) in the simulation: a
 * page is mapped once and kept, a read-only one mapped again writable, at
 * most 512 per queue (the 513th page drops them all), every one unmapped
 * by clear (so the frontend can end its grants), and a frontend that ends
 * a grant while it is kept harms only itself.  Needs root (the simulation).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"
#include "netmap.h"

#define PG 4096u

static struct hst_sim sim;
static struct hst_domain guest, drv;
static struct hst_id gid, did;

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    ck_assert_int_eq(hst_id_open(&did, drv.uid), 0);
}

static void teardown(void)
{
    hst_id_close(&did);
    hst_id_close(&gid);
    hst_sim_stop(&sim);
}

/* count pages granted by the guest to the driver domain, each page's first byte its index. */
static uint8_t *grant_pages(unsigned int count, uint32_t *refs)
{
    uint8_t *p = bhgntshr_share_pages(gid.gs, drv.domid, (int)count, refs, 1);

    ck_assert_ptr_nonnull(p);
    for (unsigned int i = 0; i < count; i++)
        memset(p + (size_t)i * PG, (int)(i & 0xff), PG);
    return p;
}

START_TEST(test_bad_sizes)
{
    ck_assert_ptr_null(netmap_new(did.gt, guest.domid, 0));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(netmap_new(did.gt, guest.domid, NETMAP_MAX + 1));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(netmap_new(NULL, guest.domid, 8));
}
END_TEST

/* Mapped once, kept; a read-only mapping wanted writable is made again, once. */
START_TEST(test_kept_and_upgraded)
{
    uint32_t refs[4];
    uint8_t *g = grant_pages(4, refs), *r, *w;
    struct netmap *m = netmap_new(did.gt, guest.domid, 8);

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(r = netmap_get(m, refs[2], false));
    ck_assert_uint_eq(r[0], 2);
    ck_assert_ptr_eq(netmap_get(m, refs[2], false), r);
    ck_assert_uint_eq(netmap_count(m), 1);
    /* The guest's writes show through the kept mapping: it is the page, not a copy. */
    g[2 * PG + 7] = 0x77;
    ck_assert_uint_eq(r[7], 0x77);
    ck_assert_ptr_nonnull(w = netmap_get(m, refs[2], true));
    w[9] = 0x99;
    ck_assert_uint_eq(g[2 * PG + 9], 0x99);
    ck_assert_uint_eq(netmap_count(m), 1);
    ck_assert_ptr_eq(netmap_get(m, refs[2], false), w); /* writable serves reads too */
    ck_assert_ptr_eq(netmap_get(m, refs[2], true), w);
    for (unsigned int i = 0; i < 4; i++)
        ck_assert_uint_eq(((uint8_t *)netmap_get(m, refs[i], false))[0], i);
    ck_assert_uint_eq(netmap_count(m), 4);
    /* A reference the guest never granted does not map, and takes no room. */
    ck_assert_ptr_null(netmap_get(m, refs[3] + 1000, false));
    ck_assert_uint_eq(netmap_count(m), 4);
    netmap_free(m);
    ck_assert_int_eq(bhgntshr_unshare(gid.gs, g, 4), 0);
}
END_TEST

/* At most 512 kept: the 513th page drops them all, and each maps again when asked. */
START_TEST(test_bounded_at_512)
{
    enum { N = NETMAP_MAX + 1, BATCH = 64 };
    uint32_t refs[N + BATCH];
    uint8_t *g[(N + BATCH - 1) / BATCH];
    struct netmap *m = netmap_new(did.gt, guest.domid, NETMAP_MAX);
    unsigned int nb = (N + BATCH - 1) / BATCH;

    ck_assert_ptr_nonnull(m);
    for (unsigned int b = 0; b < nb; b++)
        g[b] = grant_pages(BATCH, &refs[b * BATCH]);
    for (unsigned int i = 0; i < NETMAP_MAX; i++) {
        uint8_t *p = netmap_get(m, refs[i], i % 2 == 0);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(p[0], i % BATCH);
    }
    ck_assert_uint_eq(netmap_count(m), NETMAP_MAX);
    /* Every one is still there: found, not mapped again. */
    for (unsigned int i = 0; i < NETMAP_MAX; i++)
        ck_assert_ptr_nonnull(netmap_get(m, refs[i], false));
    ck_assert_uint_eq(netmap_count(m), NETMAP_MAX);
    ck_assert_ptr_nonnull(netmap_get(m, refs[NETMAP_MAX], false));
    ck_assert_uint_eq(netmap_count(m), 1);
    ck_assert_uint_eq(((uint8_t *)netmap_get(m, refs[5], true))[0], 5);
    ck_assert_uint_eq(netmap_count(m), 2);
    netmap_free(m);
    for (unsigned int b = 0; b < nb; b++)
        ck_assert_int_eq(bhgntshr_unshare(gid.gs, g[b], BATCH), 0);
}
END_TEST

/*
 * Clear unmaps every page: the guest's grants can then end for good (a
 * reference no longer maps).  A guest that ends a grant while it is kept
 * cannot take the page back from under us: the kept mapping stays
 * readable (the page is the guest's loss, never reused), and once dropped
 * the reference no longer maps.
 */
START_TEST(test_clear_and_grant_ended_while_kept)
{
    uint32_t refs[2];
    uint8_t *g = grant_pages(2, refs), *kept;
    struct netmap *m = netmap_new(did.gt, guest.domid, 8);

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(kept = netmap_get(m, refs[1], false));
    ck_assert_ptr_nonnull(netmap_get(m, refs[0], true));
    g[PG + 3] = 0x33;
    /* The guest ends both grants while we keep them mapped. */
    ck_assert_int_eq(bhgntshr_unshare(gid.gs, g, 2), 0);
    ck_assert_uint_eq(kept[3], 0x33);
    ck_assert_ptr_eq(netmap_get(m, refs[1], false), kept);
    netmap_clear(m);
    ck_assert_uint_eq(netmap_count(m), 0);
    /*
     * Unmapped by us, the grants end at the guest's next grant call (as
     * with gntalloc, a busy grant is ended again later): then nothing
     * maps, and nothing is kept.
     */
    {
        uint32_t ref;
        uint8_t *p = grant_pages(1, &ref);

        ck_assert_int_eq(bhgntshr_unshare(gid.gs, p, 1), 0);
    }
    ck_assert_ptr_null(netmap_get(m, refs[1], false));
    ck_assert_ptr_null(netmap_get(m, refs[0], true));
    ck_assert_uint_eq(netmap_count(m), 0);
    netmap_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("netmap");
    TCase *tc = tcase_create("netmap");
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_netmap: the simulation needs root: skipped\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_sizes);
    tcase_add_test(tc, test_kept_and_upgraded);
    tcase_add_test(tc, test_bounded_at_512);
    tcase_add_test(tc, test_clear_and_grant_ended_while_kept);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
