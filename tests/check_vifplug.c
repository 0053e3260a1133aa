/*
 * check_vifplug.c - a Xen driver domain's vif TAPs (driverdom/vifplug.c),
 * made as Xen's vif-bridge plugs a vif: what the backend directory may
 * say (names, mtu, script), and the TAP itself - its queues, bridge, mtu,
 * address and state, a missing bridge refused in one line, a taken name
 * refused, and the TAP gone with its last fd.  Every test runs in a
 * network namespace of its own (Check forks per test), which needs root
 * and /dev/net/tun; without them the program says so and skips.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if.h>

#include "drv.h"
#include "hv.h"

static char why[200];

/* A namespace of the test's own, with bridge br0 (mtu 1400) when asked; rtnetlink's fd. */
static int fresh_net(bool bridge)
{
    struct nl_link l;
    int nl;

    ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
    ck_assert_int_ge(nl = nl_open(-1), 0);
    if (bridge) {
        ck_assert_int_eq(nl_bridge_add(nl, "br0"), 0);
        ck_assert_int_eq(nl_link_get(nl, "br0", &l), 0);
        ck_assert_int_eq(nl_link_set(nl, l.ifindex, 1400, 0, NULL, true), 0);
    }
    return nl;
}

static void assert_one_line(void)
{
    ck_assert_ptr_null(strchr(why, '\n'));
    ck_assert_uint_gt(strlen(why), 0);
}

START_TEST(test_spec_defaults)
{
    struct vifplug s;

    ck_assert_int_eq(vifplug_spec(7, 0, NULL, NULL, NULL, NULL, 4, &s, why, sizeof(why)), 0);
    ck_assert_str_eq(s.name, "vif7.0");
    ck_assert_str_eq(s.bridge, "xenbr0");
    ck_assert_uint_eq(s.mtu, 0);
    ck_assert_uint_eq(s.queues, 4);
    /* libxl's own default script, by its full path, and explicit names. */
    ck_assert_int_eq(vifplug_spec(7, 1, "guest7", "br1", "9000", "/etc/xen/scripts/vif-bridge", 1,
                                  &s, why, sizeof(why)),
                     0);
    ck_assert_str_eq(s.name, "guest7");
    ck_assert_str_eq(s.bridge, "br1");
    ck_assert_uint_eq(s.mtu, 9000);
}
END_TEST

START_TEST(test_spec_refusals)
{
    static const struct {
        const char *vifname, *bridge, *mtu, *script;
        unsigned int queues;
        int err;
        const char *says;
    } bad[] = {
        {"vif%d", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {"..", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {"a/b", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {"with space", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {"sixteen-chars-xx", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {NULL, "br:0", NULL, NULL, 1, EINVAL, "bridge"},
        {NULL, "br0\n", NULL, NULL, 1, EINVAL, "bridge"},
        {NULL, NULL, "67", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, "65536", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, "-1500", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, "1500x", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, "99999999999999999999", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, NULL, "/etc/xen/scripts/vif-route", 1, EOPNOTSUPP, "not served on Xen yet"},
        {NULL, NULL, NULL, "vif-openvswitch", 1, EOPNOTSUPP, "is not run"},
        {NULL, NULL, NULL, "evil\nscript", 1, EOPNOTSUPP, "is not run"},
        {"vif\n1", NULL, NULL, NULL, 1, EINVAL, "vifname"},
        {NULL, NULL, "15\n00", NULL, 1, EINVAL, "mtu"},
        {NULL, NULL, NULL, NULL, 0, EINVAL, "queues"},
        {NULL, NULL, NULL, NULL, BHDEV_MAX_FDS + 1, EINVAL, "queues"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vifplug s;

        errno = 0;
        why[0] = '\0';
        ck_assert_msg(vifplug_spec(3, 0, bad[i].vifname, bad[i].bridge, bad[i].mtu, bad[i].script,
                                   bad[i].queues, &s, why, sizeof(why)) == -1,
                      "case %zu accepted", i);
        ck_assert_int_eq(errno, bad[i].err);
        ck_assert_msg(strstr(why, bad[i].says) != NULL, "case %zu says '%s'", i, why);
        assert_one_line();
    }
    /* A devid too long for vif<domid>.<devid>: a vifname is asked for. */
    {
        struct vifplug s;

        ck_assert_int_eq(vifplug_spec(32000, 4000000000u, NULL, NULL, NULL, NULL, 1, &s, why,
                                      sizeof(why)),
                         -1);
        ck_assert_ptr_nonnull(strstr(why, "vifname="));
    }
}
END_TEST

START_TEST(test_bridge_missing)
{
    struct vifplug s;
    struct nl_link l;
    int fds[BHDEV_MAX_FDS], nl = fresh_net(false);

    ck_assert_int_eq(vifplug_spec(5, 0, NULL, NULL, NULL, NULL, 2, &s, why, sizeof(why)), 0);
    ck_assert_int_eq(vifplug_make(&s, fds, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, ENODEV);
    ck_assert_ptr_nonnull(strstr(why, "bridge xenbr0 does not exist"));
    assert_one_line();
    ck_assert_int_eq(fds[0], -1);
    ck_assert_int_eq(fds[1], -1);
    /* Nothing was left behind. */
    ck_assert_int_eq(nl_link_get(nl, "vif5.0", &l), -1);
    ck_assert_int_eq(errno, ENODEV);
    /* A link of that name that is no bridge is refused too. */
    ck_assert_int_eq(vifplug_spec(5, 0, NULL, "lo", NULL, NULL, 1, &s, why, sizeof(why)), 0);
    ck_assert_int_eq(vifplug_make(&s, fds, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "no bridge"));
    close(nl);
}
END_TEST

START_TEST(test_tap_on_bridge)
{
    static const uint8_t port_mac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct vifplug s;
    struct nl_link br, tap;
    int fds[BHDEV_MAX_FDS], nl = fresh_net(true);

    ck_assert_int_eq(vifplug_spec(5, 1, NULL, "br0", NULL, "vif-bridge", 3, &s, why, sizeof(why)),
                     0);
    ck_assert_msg(vifplug_make(&s, fds, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(nl_link_get(nl, "br0", &br), 0);
    ck_assert_int_eq(nl_link_get(nl, "vif5.1", &tap), 0);
    ck_assert_str_eq(tap.kind, "tun");
    ck_assert_int_eq(tap.master, br.ifindex);
    ck_assert_uint_eq(tap.mtu, 1400); /* no mtu=: the bridge's, as vif-bridge's set_mtu */
    ck_assert(tap.flags & IFF_UP);
    /* The port's address, asked of a socket of this namespace. */
    {
        struct ifreq ifr;
        int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "vif5.1");
        ck_assert_int_ge(sk, 0);
        ck_assert_int_eq(ioctl(sk, SIOCGIFHWADDR, &ifr), 0);
        ck_assert_mem_eq(ifr.ifr_hwaddr.sa_data, port_mac, 6);
        close(sk);
    }
    for (unsigned int i = 0; i < 3; i++)
        ck_assert_int_ge(fcntl(fds[i], F_GETFD), 0);
    /* A second TAP of the same name would join the first as more queues: refused. */
    {
        int more[BHDEV_MAX_FDS];

        ck_assert_int_eq(vifplug_make(&s, more, why, sizeof(why)), -1);
        ck_assert_int_eq(errno, EEXIST);
        ck_assert_ptr_nonnull(strstr(why, "exists already"));
        assert_one_line();
    }
    /* Its last fd closed (the device gone), the TAP is gone, bridge port and all. */
    for (unsigned int i = 0; i < 3; i++)
        close(fds[i]);
    ck_assert_int_eq(nl_link_get(nl, "vif5.1", &tap), -1);
    ck_assert_int_eq(errno, ENODEV);
    /* mtu= wins over the bridge's; a vifname= names it. */
    ck_assert_int_eq(vifplug_spec(5, 1, "guest5", "br0", "1280", NULL, 1, &s, why, sizeof(why)),
                     0);
    ck_assert_msg(vifplug_make(&s, fds, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(nl_link_get(nl, "guest5", &tap), 0);
    ck_assert_uint_eq(tap.mtu, 1280);
    ck_assert_int_eq(tap.master, br.ifindex);
    close(fds[0]);
    close(nl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vifplug");
    TCase *tc = tcase_create("vifplug");
    SRunner *sr;
    int failed, fd;

    tcase_add_test(tc, test_spec_defaults);
    tcase_add_test(tc, test_spec_refusals);
    if (geteuid() != 0 || (fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0) {
        fprintf(stderr, "check_vifplug: the TAP tests need root and /dev/net/tun (modprobe tun): "
                        "only the parsing tests run\n");
    } else {
        close(fd);
        tcase_add_test(tc, test_bridge_missing);
        tcase_add_test(tc, test_tap_on_bridge);
    }
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
