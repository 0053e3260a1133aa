/*
 * check_platxen.c - libbhplat's choice of platform and its Xen side
 * (grant/xen.c) as far as a machine without Xen can check it: which
 * platform BULKHEAD_PLATFORM and the environment pick, that a bad name is
 * refused with a line naming the fix, and that on a host with no
 * /dev/xen every Xen open fails cleanly (errno, one line naming the module
 * to load) instead of crashing or half-opening.  What needs a hypervisor
 * (sharing, mapping, copying, notifying) is proven by tests/xen/ under
 * `make check-xen`.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bhplat.h"

struct lines {
    struct bhplat_logger l;
    char last[512];
    int n;
};

static void keep(struct bhplat_logger *l, const char *line)
{
    struct lines *s = (struct lines *)l;

    snprintf(s->last, sizeof(s->last), "%s", line);
    s->n++;
}

static int on_xen(void)
{
    return access("/dev/xen/gntdev", F_OK) == 0;
}

static void setup(void)
{
    unsetenv("BULKHEAD_PLATFORM");
    unsetenv("BULKHEAD_HV_SOCKET");
}

START_TEST(test_platform_by_name)
{
    setenv("BULKHEAD_PLATFORM", "xen", 1);
    ck_assert_str_eq(bhplat_platform(), "xen");
    setenv("BULKHEAD_PLATFORM", "sim", 1);
    ck_assert_str_eq(bhplat_platform(), "sim");
    /* The simulation's socket named: the simulation, unless told otherwise. */
    unsetenv("BULKHEAD_PLATFORM");
    setenv("BULKHEAD_HV_SOCKET", "/nonexistent/hv.sock", 1);
    ck_assert_str_eq(bhplat_platform(), "sim");
    setenv("BULKHEAD_PLATFORM", "xen", 1);
    ck_assert_str_eq(bhplat_platform(), "xen");
}
END_TEST

START_TEST(test_no_platform_is_no_platform)
{
    struct lines s = {.l.log = keep};

    setenv("BULKHEAD_PLATFORM", "kvm", 1);
    errno = 0;
    ck_assert_ptr_null(bhplat_platform());
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(bhgnttab_open(&s.l, 0));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(s.n, 1);
    ck_assert_msg(strstr(s.last, "BULKHEAD_PLATFORM=kvm") && strstr(s.last, "sim or xen"), "%s",
                  s.last);
    ck_assert_int_eq(bhplat_domid(), -1);

    /* Neither named: Xen only where /dev/xen/gntdev is. */
    unsetenv("BULKHEAD_PLATFORM");
    if (on_xen()) {
        ck_assert_str_eq(bhplat_platform(), "xen");
    } else {
        errno = 0;
        ck_assert_ptr_null(bhplat_platform());
        ck_assert_int_eq(errno, ENOENT);
    }
}
END_TEST

START_TEST(test_xen_opens_fail_cleanly_without_xen)
{
    struct lines s = {.l.log = keep};
    bhgnttab_handle *gt;
    bhgntshr_handle *gs;
    bhevtchn_handle *ev;

    setenv("BULKHEAD_PLATFORM", "xen", 1);
    /* Flags are checked before the platform is: none are defined. */
    errno = 0;
    ck_assert_ptr_null(bhgnttab_open(&s.l, 1));
    ck_assert_int_eq(errno, EINVAL);
    if (on_xen())
        return; /* a Xen guest: opening would succeed, which the Xen tier checks */

    gt = bhgnttab_open(&s.l, 0);
    ck_assert_ptr_null(gt);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_msg(strstr(s.last, "/dev/xen/gntdev") && strstr(s.last, "modprobe xen-gntdev"), "%s",
                  s.last);
    gs = bhgntshr_open(&s.l, 0);
    ck_assert_ptr_null(gs);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_msg(strstr(s.last, "modprobe xen-gntalloc"), "%s", s.last);
    ev = bhevtchn_open(&s.l, 0);
    ck_assert_ptr_null(ev);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_msg(strstr(s.last, "modprobe xen-evtchn"), "%s", s.last);
    /* Silent without a logger, and closing nothing is harmless. */
    ck_assert_ptr_null(bhevtchn_open(NULL, 0));
    ck_assert_int_eq(bhgnttab_close(NULL), 0);
}
END_TEST

START_TEST(test_xen_domid_needs_xenstore)
{
    setenv("BULKHEAD_PLATFORM", "xen", 1);
    /* libxenstore's own override: a socket that is not there. */
    setenv("XENSTORED_PATH", "/nonexistent/xenstored.sock", 1);
    ck_assert_int_eq(bhplat_domid(), -1);
    unsetenv("XENSTORED_PATH");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("platxen");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_platform_by_name);
    tcase_add_test(tc, test_no_platform_is_no_platform);
    tcase_add_test(tc, test_xen_opens_fail_cleanly_without_xen);
    tcase_add_test(tc, test_xen_domid_needs_xenstore);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
