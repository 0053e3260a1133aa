/*
 * check_xlcfg.c - xl configs as the simulation reads them: values,
 * defaults, refusals with the fix named, and libxlutil's syntax errors.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlcfg.h"

static int parse(struct xlcfg *c, const char *text, char *err, size_t errlen)
{
    return xlcfg_read(c, "test.cfg", text, strlen(text), err, errlen);
}

START_TEST(test_values)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(parse(&c, "name=\"g1\"\nmemory=256\nmaxmem=512\nvcpus=4\n"
                               "max_grant_frames=32\nmax_event_channels=2048\n"
                               "bulkhead_vbd_queues=2\nbulkhead_vbd_persistent=0\n",
                           err, sizeof(err)),
                     0);
    ck_assert_str_eq(c.name, "g1");
    ck_assert_int_eq(c.memory_mb, 256);
    ck_assert_int_eq(c.maxmem_mb, 512);
    ck_assert_int_eq(c.vcpus, 4);
    ck_assert_int_eq(c.max_grant_frames, 32);
    ck_assert_int_eq(c.max_event_channels, 2048);
    ck_assert_int_eq(c.vbd_queues, 2);
    ck_assert_int_eq(c.vbd_persistent, 0);
    ck_assert(!c.driver_domain);
    ck_assert_str_eq(c.type, "pv");
    ck_assert_str_eq(c.noted, "");
}
END_TEST

START_TEST(test_defaults_and_driver_domain)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(parse(&c, "name='dd'\ndriver_domain=1\n", err, sizeof(err)), 0);
    ck_assert_int_eq(c.memory_mb, 128);
    ck_assert_int_eq(c.maxmem_mb, 128);
    ck_assert_int_eq(c.vcpus, 1);
    ck_assert_int_eq(c.max_grant_frames, 0);
    ck_assert_int_eq(c.vbd_queues, 0);
    ck_assert_int_eq(c.vbd_persistent, -1);
    ck_assert(c.driver_domain);
}
END_TEST

START_TEST(test_boot_settings_noted)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(parse(&c, "name='g'\ntype='pv'\nkernel='/boot/vmlinuz'\nextra='quiet'\n"
                               "ramdisk='/boot/initrd'\n",
                           err, sizeof(err)),
                     0);
    ck_assert_str_eq(c.noted, "kernel, ramdisk, extra");
}
END_TEST

START_TEST(test_refusals_name_the_fix)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(parse(&c, "memory=128\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: no name: add name = \"NAME\"");
    ck_assert_int_eq(parse(&c, "name='h'\ntype='hvm'\n", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "hvm guests are not available in the simulation"));
    ck_assert_ptr_nonnull(strstr(err, "type = \"pv\""));
    ck_assert_int_eq(parse(&c, "name='h'\ntype='pvh'\n", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "pvh guests"));
    ck_assert_int_eq(parse(&c, "name='h'\nbuilder='hvm'\n", err, sizeof(err)), -1);
    ck_assert_int_eq(parse(&c, "name='h'\nmemory=0\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: memory must be a number from 1 to 16777216");
    ck_assert_int_eq(parse(&c, "name='h'\nvcpus='many'\n", err, sizeof(err)), -1);
    ck_assert_int_eq(parse(&c, "name='h'\ndriver_domain=2\n", err, sizeof(err)), -1);
    ck_assert_int_eq(parse(&c, "name='h'\nbulkhead_vbd_queues=17\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_vbd_queues must be a number from 1 to 16");
    ck_assert_int_eq(parse(&c, "name='h'\nbulkhead_vbd_queues=0\n", err, sizeof(err)), -1);
    ck_assert_int_eq(parse(&c, "name='h'\nbulkhead_vbd_persistent=2\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_vbd_persistent must be a number from 0 to 1");
    ck_assert_int_eq(parse(&c, "name='h'\nmemory=256\nmaxmem=128\n", err, sizeof(err)), -1);
    ck_assert_int_eq(parse(&c, "name=''\n", err, sizeof(err)), -1);
    ck_assert_int_eq(
        parse(&c, "name='0123456789012345678901234567890123456789012345678901234567890123'\n", err,
              sizeof(err)),
        -1);
    ck_assert_ptr_nonnull(strstr(err, "longer than 63"));
    /* libxlutil unescapes "\n" in a string: the value quoted back stays on one line. */
    ck_assert_int_eq(parse(&c, "name='h'\nbulkhead_uplink=\"a\\nb\"\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_uplink 'a?b' is not a bridge name: 1 to 15 "
                          "characters, none of '/', ':' or spaces");
}
END_TEST

/* bulkhead_uplink_address: the uplink bridge's IPv4 address, what routed vifs take. */
START_TEST(test_uplink_address)
{
    static const char *const bad[] = {"10.0.0.1",      "10.0.0.1/0",  "10.0.0.1/33",
                                      "10.0.0.1/024",  "10.0.0.1/-1", "10.0.0.1/24x",
                                      "127.0.0.1/8",   "224.0.0.1/4", "0.0.0.1/8",
                                      "2001:db8::1/64", "a.b.c.d/24", "10.0.0.1/24 "};
    struct xlcfg c;
    char err[512], cfg[256];

    ck_assert_msg(parse(&c,
                        "name='d'\ndriver_domain=1\nbulkhead_uplink='xenbr0'\n"
                        "bulkhead_uplink_address='192.0.2.1/24'\n",
                        err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.uplink_addr, htonl(0xc0000201));
    ck_assert_uint_eq(c.uplink_prefix, 24);
    xlcfg_free(&c);
    ck_assert_int_eq(parse(&c, "name='d'\nbulkhead_uplink='xenbr0'\n", err, sizeof(err)), 0);
    ck_assert_uint_eq(c.uplink_addr, 0);
    xlcfg_free(&c);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cfg, sizeof(cfg), "name='d'\nbulkhead_uplink='xenbr0'\n"
                 "bulkhead_uplink_address='%s'\n", bad[i]);
        ck_assert_int_eq(parse(&c, cfg, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "is not an IPv4 host address with its prefix") != NULL, "%s: %s",
                      bad[i], err);
    }
    ck_assert_int_eq(parse(&c, "name='d'\nbulkhead_uplink_address='192.0.2.1/24'\n", err,
                           sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_uplink_address without bulkhead_uplink: name the "
                          "bridge it goes on (bulkhead_uplink = \"xenbr0\")");
    ck_assert_int_eq(parse(&c, "name='d'\nbulkhead_uplink='x'\nbulkhead_uplink_address=['a']\n",
                           err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "is one address"));
}
END_TEST

/* A driver domain's tunables become bulkhead-drvdom's options; a guest's config may not set them. */
START_TEST(test_driver_domain_tunables)
{
    struct xlcfg c;
    char err[512], num[XLCFG_DRV_NOPTS][24];
    const char *argv[2 * XLCFG_DRV_NOPTS + 1] = {NULL};
    size_t n;

    ck_assert_msg(parse(&c, "name='d'\ndriver_domain=1\nbulkhead_net_poll_us=30\n"
                            "bulkhead_rx_stall_ms=0\nbulkhead_grant_idle_ms=86400000\n",
                        err, sizeof(err)) == 0,
                  "%s", err);
    n = xlcfg_drvdom_args(&c, num, argv);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq(argv[0], "--net-poll-us");
    ck_assert_str_eq(argv[1], "30");
    ck_assert_str_eq(argv[2], "--rx-stall-ms");
    ck_assert_str_eq(argv[3], "0");
    ck_assert_str_eq(argv[4], "--grant-idle-ms");
    ck_assert_str_eq(argv[5], "86400000");
    xlcfg_free(&c);
    /* None given: bulkhead-drvdom's own defaults. */
    ck_assert_int_eq(parse(&c, "name='d'\ndriver_domain=1\n", err, sizeof(err)), 0);
    ck_assert_uint_eq(xlcfg_drvdom_args(&c, num, argv), 0);
    xlcfg_free(&c);
    ck_assert_int_eq(parse(&c, "name='d'\ndriver_domain=1\nbulkhead_blk_poll_us=1000001\n", err,
                           sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_blk_poll_us must be a number from 0 to 1000000");
    ck_assert_int_eq(parse(&c, "name='d'\ndriver_domain=1\nbulkhead_net_poll_us=\"fast\"\n", err,
                           sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_net_poll_us must be a number from 0 to 1000000");
    ck_assert_int_eq(parse(&c, "name='g'\nbulkhead_net_poll_us=30\n", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: bulkhead_net_poll_us is a driver domain's setting: add "
                          "driver_domain = 1 or remove it");
}
END_TEST

START_TEST(test_syntax_error_is_one_line)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(parse(&c, "name = \"g\"\nmemory = = 3\n", err, sizeof(err)), -1);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_ptr_nonnull(strstr(err, "test.cfg"));
    ck_assert_ptr_nonnull(strstr(err, "xl.cfg(5)"));
}
END_TEST

START_TEST(test_nul_byte_refused)
{
    struct xlcfg c;
    char err[512];
    static const char text[] = "name=\"a\0b\"\n";

    /* libxlutil would assert on it: we refuse first. */
    ck_assert_int_eq(xlcfg_read(&c, "test.cfg", text, sizeof(text) - 1, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "test.cfg: a NUL byte at offset 7: an xl config is text");
}
END_TEST

START_TEST(test_missing_file)
{
    struct xlcfg c;
    char err[512];

    ck_assert_int_eq(xlcfg_read(&c, "/nonexistent/x.cfg", NULL, 0, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/nonexistent/x.cfg: cannot read it: No such file or directory");
}
END_TEST

START_TEST(test_examples_parse)
{
    struct xlcfg c;
    char err[512], path[1024];
    const char *srcdir = getenv("srcdir");

    snprintf(path, sizeof(path), "%s/examples/guest1.cfg", srcdir ? srcdir : ".");
    ck_assert_msg(xlcfg_read(&c, path, NULL, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.name, "guest1");
    xlcfg_free(&c);
    snprintf(path, sizeof(path), "%s/examples/drvdom.cfg", srcdir ? srcdir : ".");
    ck_assert_msg(xlcfg_read(&c, path, NULL, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert(c.driver_domain);
    ck_assert_uint_eq(c.nstorage, 1);
    ck_assert_str_eq(c.storage[0], "/var/lib/bulkhead/images");
    ck_assert_str_eq(c.uplink, "xenbr0");
    xlcfg_free(&c);
    snprintf(path, sizeof(path), "%s/examples/guest-drv.cfg", srcdir ? srcdir : ".");
    ck_assert_msg(xlcfg_read(&c, path, NULL, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.ndisks, 2);
    ck_assert_uint_eq(c.nvifs, 1);
    xlcfg_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("xlcfg");
    TCase *tc = tcase_create("parse");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_defaults_and_driver_domain);
    tcase_add_test(tc, test_boot_settings_noted);
    tcase_add_test(tc, test_refusals_name_the_fix);
    tcase_add_test(tc, test_syntax_error_is_one_line);
    tcase_add_test(tc, test_nul_byte_refused);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_examples_parse);
    tcase_add_test(tc, test_uplink_address);
    tcase_add_test(tc, test_driver_domain_tunables);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
