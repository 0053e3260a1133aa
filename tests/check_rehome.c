/*
 * check_rehome.c - the pure part of bulkhead restart (toolstack/rehome.c):
 * which devices move and to which paths, the new backend directory built
 * from the trusted copy (fresh handshake keys, the copy's others, libxl's
 * permissions for the new domain), the nodes restart writes and those it
 * leaves to the frontend, the permission rewrite, and what the broker is
 * told again of a disk and a vif.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome.h"

#define ck_refused(rc, err, hint)                                                                  \
    do {                                                                                           \
        ck_assert_int_eq((rc), -1);                                                                \
        ck_assert_msg(strchr((err), '\n') == NULL, "two lines: %s", (err));                        \
        ck_assert_msg(strstr((err), (hint)) != NULL, "'%s' does not say '%s'", (err), (hint));     \
    } while (0)

START_TEST(test_which_devices_move)
{
    struct rehome_dev d;
    char err[512] = "";

    ck_assert_int_eq(rehome_dev_init(&d, "vbd", 3, 51712, "/local/domain/1/backend/vbd/3/51712",
                                     1, 7, err, sizeof(err)),
                     1);
    ck_assert_str_eq(d.old_paths.backend, "/local/domain/1/backend/vbd/3/51712");
    ck_assert_str_eq(d.new_paths.backend, "/local/domain/7/backend/vbd/3/51712");
    ck_assert_str_eq(d.new_paths.frontend, "/local/domain/3/device/vbd/51712");
    ck_assert_str_eq(d.old_paths.frontend, d.new_paths.frontend);
    ck_assert_str_eq(d.new_paths.libxl, "/libxl/3/device/vbd/51712");
    ck_assert_str_eq(d.backend_kind, "vbd");
    ck_assert_uint_eq(d.old_be, 1);
    ck_assert_uint_eq(d.new_be, 7);
    /* A qdisk serving a vbd keeps its backend kind. */
    ck_assert_int_eq(rehome_dev_init(&d, "vbd", 3, 51728, "/local/domain/1/backend/qdisk/3/51728",
                                     1, 7, err, sizeof(err)),
                     1);
    ck_assert_str_eq(d.new_paths.backend, "/local/domain/7/backend/qdisk/3/51728");
    /* dom0's devices and another driver domain's stay. */
    ck_assert_int_eq(rehome_dev_init(&d, "vbd", 3, 51744, "/local/domain/0/backend/vbd/3/51744",
                                     1, 7, err, sizeof(err)),
                     0);
    ck_assert_int_eq(rehome_dev_init(&d, "vif", 3, 0, "/local/domain/2/backend/vif/3/0", 1, 7, err,
                                     sizeof(err)),
                     0);
}
END_TEST

START_TEST(test_copy_not_libxls_is_left)
{
    static const char *const bad[] = {
        "/local/domain/1/backend/vbd/4/51712",   /* another frontend */
        "/local/domain/1/backend/vbd/3/51713",   /* another device */
        "/local/domain/01/backend/vbd/3/51712",  /* not canonical */
        "/local/domain/1/backend/vbd/3/51712/x", /* below it */
        "/local/domain/1/backend/VBD/3/51712",   /* not a kind */
        "/local/domain/1/device/vbd/3/51712",    /* a frontend path */
        "",
    };
    struct rehome_dev d;
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_refused(rehome_dev_init(&d, "vbd", 3, 51712, bad[i], 1, 7, err, sizeof(err)), err,
                   "left as it is");
    }
}
END_TEST

static const struct rehome_key vbd_copy[] = {
    {"frontend", "/local/domain/3/device/vbd/51712"},
    {"backend", "/local/domain/1/backend/vbd/3/51712"},
    {"frontend-id", "3"},
    {"online", "0"}, /* told to close by the restart */
    {"state", "5"},
    {"params", "/srv/a.img"},
    {"type", "phy"},
    {"mode", "w"},
    {"dev", "xvda"},
    {"discard-enable", "1"},
};

static const char *node(const struct bhxb_layout *l, const char *path)
{
    const struct bhxb_node *nd = bhxb_layout_find(l, path);

    return nd ? nd->value : NULL;
}

static void perms_of(const struct bhxb_layout *l, const char *path, char *buf, size_t size)
{
    const struct bhxb_node *nd = bhxb_layout_find(l, path);

    ck_assert_ptr_nonnull(nd);
    ck_assert_int_gt(bhxb_perms_format(nd->perms, nd->nperms, buf, size), 0);
}

START_TEST(test_new_backend_layout)
{
    struct rehome_dev d;
    struct bhxb_layout *l;
    char err[256], perms[64];
    size_t written = 0;

    ck_assert_int_eq(rehome_dev_init(&d, "vbd", 3, 51712, "/local/domain/1/backend/vbd/3/51712",
                                     1, 7, err, sizeof(err)),
                     1);
    l = rehome_layout(&d, vbd_copy, sizeof(vbd_copy) / sizeof(vbd_copy[0]));
    ck_assert_ptr_nonnull(l);
    /* A fresh handshake, whatever the copy says of the old one. */
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/state"), "1");
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/online"), "1");
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/frontend-id"), "3");
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/frontend"),
                     "/local/domain/3/device/vbd/51712");
    /* The copy's configuration, carried over. */
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/params"), "/srv/a.img");
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/mode"), "w");
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vbd/3/51712/discard-enable"), "1");
    ck_assert_ptr_null(node(l, "/local/domain/7/backend/vbd/3/51712/backend"));
    /* The frontend's links, and the copy's. */
    ck_assert_str_eq(node(l, "/local/domain/3/device/vbd/51712/backend"),
                     "/local/domain/7/backend/vbd/3/51712");
    ck_assert_str_eq(node(l, "/local/domain/3/device/vbd/51712/backend-id"), "7");
    ck_assert_str_eq(node(l, "/libxl/3/device/vbd/51712/backend"),
                     "/local/domain/7/backend/vbd/3/51712");
    /* libxl's permissions: the new domain owns its directory, the frontend reads. */
    perms_of(l, "/local/domain/7/backend/vbd/3/51712", perms, sizeof(perms));
    ck_assert_str_eq(perms, "n7,r3");
    perms_of(l, "/local/domain/7/backend/vbd/3/51712/params", perms, sizeof(perms));
    ck_assert_str_eq(perms, "n7,r3");
    /* Written: the backend side and three links; never the frontend's own state. */
    ck_assert(rehome_node_written(&d, "/local/domain/7/backend/vbd/3/51712"));
    ck_assert(rehome_node_written(&d, "/local/domain/7/backend/vbd/3/51712/params"));
    ck_assert(rehome_node_written(&d, "/local/domain/3/device/vbd/51712/backend"));
    ck_assert(rehome_node_written(&d, "/local/domain/3/device/vbd/51712/backend-id"));
    ck_assert(rehome_node_written(&d, "/libxl/3/device/vbd/51712/backend"));
    ck_assert(!rehome_node_written(&d, "/local/domain/3/device/vbd/51712/state"));
    ck_assert(!rehome_node_written(&d, "/local/domain/3/device/vbd/51712"));
    ck_assert(!rehome_node_written(&d, "/local/domain/3/device/vbd/51712/virtual-device"));
    ck_assert(!rehome_node_written(&d, "/libxl/3/device/vbd/51712/frontend"));
    ck_assert(!rehome_node_written(&d, "/local/domain/7/backend/vbd/3/517120"));
    for (size_t i = 0; i < l->n; i++) {
        written += rehome_node_written(&d, l->nodes[i].path);
        /* Nothing of the old domain survives in what is written. */
        if (rehome_node_written(&d, l->nodes[i].path))
            ck_assert_msg(strstr(l->nodes[i].value, "/local/domain/1/") == NULL, "%s = %s",
                          l->nodes[i].path, l->nodes[i].value);
    }
    /* The directory, its 4 fresh keys, the copy's 5 others, 3 links. */
    ck_assert_uint_eq(written, 13);
    bhxb_layout_free(l);
}
END_TEST

static unsigned int reperm(const struct xs_permissions *in, unsigned int n, char *buf,
                           size_t size, bool *changed)
{
    struct xs_permissions out[8];
    unsigned int m = rehome_perms(in, n, 3, 1, 7, out, changed);

    ck_assert_uint_le(m, n + 1);
    bhxb_perms_format(out, m, buf, size);
    return m;
}

START_TEST(test_perms_follow_the_domain)
{
    const struct xs_permissions named[] = {{3, XS_PERM_NONE}, {1, XS_PERM_READ}};
    const struct xs_permissions stripped[] = {{3, XS_PERM_NONE}};
    const struct xs_permissions ro[] = {{1, XS_PERM_NONE}, {3, XS_PERM_READ}};
    const struct xs_permissions done[] = {{3, XS_PERM_NONE}, {7, XS_PERM_READ}};
    const struct xs_permissions both[] = {{3, XS_PERM_NONE}, {1, XS_PERM_READ}, {7, XS_PERM_READ}};
    const struct xs_permissions dom0[] = {{0, XS_PERM_NONE}, {3, XS_PERM_READ}};
    char buf[64];
    bool changed;

    /* The old backend still named: renamed. */
    reperm(named, 2, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n3,r7");
    ck_assert(changed);
    /* xenstored stripped the dead domain already: the new one is given read. */
    reperm(stripped, 1, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n3,r7");
    ck_assert(changed);
    /* A key the old backend owned in the frontend's directory changes owner. */
    reperm(ro, 2, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n7,r3");
    ck_assert(changed);
    /* Done already: nothing changes (a retried transaction). */
    reperm(done, 2, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n3,r7");
    ck_assert(!changed);
    /* Never two entries for the new domain. */
    reperm(both, 3, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n3,r7");
    ck_assert(changed);
    /* A node the frontend does not own and the old backend had no part in: left. */
    reperm(dom0, 2, buf, sizeof(buf), &changed);
    ck_assert_str_eq(buf, "n0,r3");
    ck_assert(!changed);
}
END_TEST

START_TEST(test_vif_mtu_in_the_frontend)
{
    const struct rehome_key copy[] = {{"mac", "00:16:3e:00:00:11"}, {"mtu", "9000"},
                                      {"bridge", "xenbr0"}, {"handle", "0"}};
    struct rehome_dev d;
    struct bhxb_layout *l;
    char err[256], perms[64];

    ck_assert_int_eq(rehome_dev_init(&d, "vif", 3, 0, "/local/domain/1/backend/vif/3/0", 1, 7,
                                     err, sizeof(err)),
                     1);
    ck_assert_ptr_nonnull(l = rehome_layout(&d, copy, 4));
    /* The backend owned it, so xenstored removed it with the old domain: written anew. */
    ck_assert_str_eq(node(l, "/local/domain/3/device/vif/0/mtu"), "9000");
    perms_of(l, "/local/domain/3/device/vif/0/mtu", perms, sizeof(perms));
    ck_assert_str_eq(perms, "n7,r3");
    ck_assert(rehome_node_written(&d, "/local/domain/3/device/vif/0/mtu"));
    ck_assert(!rehome_node_written(&d, "/local/domain/3/device/vif/0/mac"));
    ck_assert(!rehome_node_written(&d, "/local/domain/3/device/vif/0/handle"));
    ck_assert_str_eq(node(l, "/local/domain/7/backend/vif/3/0/bridge"), "xenbr0");
    bhxb_layout_free(l);
    /* No mtu in the copy: the default. */
    ck_assert_ptr_nonnull(l = rehome_layout(&d, copy, 1));
    ck_assert_str_eq(node(l, "/local/domain/3/device/vif/0/mtu"), "1500");
    bhxb_layout_free(l);
}
END_TEST

START_TEST(test_disk_registration)
{
    struct rehome_disk dk;
    char err[512];

    ck_assert_int_eq(rehome_disk_reg(vbd_copy, sizeof(vbd_copy) / sizeof(vbd_copy[0]), &dk, err,
                                     sizeof(err)),
                     0);
    ck_assert_str_eq(dk.path, "/srv/a.img");
    ck_assert(!dk.readonly && !dk.nbd && !dk.empty);
    {
        const struct rehome_key k[] = {{"params", "qcow2:/srv/b.qcow2"}, {"type", "qdisk"},
                                       {"mode", "r"},
                                       {"bulkhead-nbd", "/run/bh/nbd/3-51728.sock"}};
        ck_assert_int_eq(rehome_disk_reg(k, 4, &dk, err, sizeof(err)), 0);
        ck_assert_str_eq(dk.path, "/run/bh/nbd/3-51728.sock");
        ck_assert(dk.readonly && dk.nbd);
    }
    {
        const struct rehome_key k[] = {{"params", "aio:/srv/c:d.img"}, {"type", "qdisk"},
                                       {"mode", "w"}};
        ck_assert_int_eq(rehome_disk_reg(k, 3, &dk, err, sizeof(err)), 0);
        ck_assert_str_eq(dk.path, "/srv/c:d.img");
    }
    {
        const struct rehome_key k[] = {{"params", "aio:"}, {"type", "qdisk"}, {"mode", "r"}};
        ck_assert_int_eq(rehome_disk_reg(k, 3, &dk, err, sizeof(err)), 0);
        ck_assert(dk.empty);
    }
    {
        const struct rehome_key k[] = {{"params", "/srv/a.img"}, {"type", "phy"}};
        ck_refused(rehome_disk_reg(k, 2, &dk, err, sizeof(err)), err, "mode");
    }
    {
        const struct rehome_key k[] = {{"params", "/srv/a.img"}, {"type", "phy"}, {"mode", "x"}};
        ck_refused(rehome_disk_reg(k, 3, &dk, err, sizeof(err)), err, "neither r nor w");
    }
    {
        const struct rehome_key k[] = {{"params", "a.img"}, {"type", "phy"}, {"mode", "w"}};
        ck_refused(rehome_disk_reg(k, 3, &dk, err, sizeof(err)), err, "no absolute path");
    }
    {
        const struct rehome_key k[] = {{"params", "/srv/a.img"}, {"type", "qdisk"}, {"mode", "w"}};
        ck_refused(rehome_disk_reg(k, 3, &dk, err, sizeof(err)), err, "no format");
    }
}
END_TEST

START_TEST(test_vif_registration)
{
    struct rehome_vif v;
    char err[512];
    const struct rehome_key k[] = {{"mac", "00:16:3e:00:00:11"}, {"mtu", "9000"},
                                   {"bridge", "br9k"}};
    const struct rehome_key dflt[] = {{"mac", "00:16:3e:00:00:12"}};

    ck_assert_int_eq(rehome_vif_reg(k, 3, &v, err, sizeof(err)), 0);
    ck_assert_uint_eq(v.mac[0], 0x00);
    ck_assert_uint_eq(v.mac[2], 0x3e);
    ck_assert_uint_eq(v.mac[5], 0x11);
    ck_assert_uint_eq(v.mtu, 9000);
    ck_assert_str_eq(v.bridge, "br9k");
    ck_assert_int_eq(rehome_vif_reg(dflt, 1, &v, err, sizeof(err)), 0);
    ck_assert_uint_eq(v.mtu, 1500);
    ck_assert_str_eq(v.bridge, "");
    ck_refused(rehome_vif_reg(k + 1, 2, &v, err, sizeof(err)), err, "no mac");
    {
        const struct rehome_key bad[] = {{"mac", "00:16:3e:00:00:11"}, {"mtu", "9x"}};
        ck_refused(rehome_vif_reg(bad, 2, &v, err, sizeof(err)), err, "68 to 65535");
    }
    {
        const struct rehome_key bad[] = {{"mac", "00:16:3e:00:00:11"},
                                         {"bridge", "a-bridge-name-too-long"}};
        ck_refused(rehome_vif_reg(bad, 2, &v, err, sizeof(err)), err, "interface name");
    }
    ck_assert(!v.routed);
}
END_TEST

/* A routed vif moves routed: its addresses, gatewaydev and vifname from the copy, no bridge. */
START_TEST(test_vif_registration_routed)
{
    struct rehome_vif v;
    char err[512];
    const struct rehome_key k[] = {{"mac", "00:16:3e:00:00:11"},
                                   {"script", "/etc/xen/scripts/vif-route"},
                                   {"bridge", "xenbr0"},
                                   {"ip", "192.0.2.5 192.0.2.6"},
                                   {"gatewaydev", "eth1"},
                                   {"vifname", "g.r"}};

    ck_assert_int_eq(rehome_vif_reg(k, 6, &v, err, sizeof(err)), 0);
    ck_assert(v.routed);
    ck_assert_str_eq(v.bridge, "");
    ck_assert_str_eq(v.gatewaydev, "eth1");
    ck_assert_str_eq(v.vifname, "g.r");
    ck_assert_uint_eq(v.nip4, 2);
    ck_assert_uint_eq(v.ip4[1], htonl(0xc0000206));
    ck_assert_int_eq(rehome_vif_reg(k, 4, &v, err, sizeof(err)), 0);
    ck_assert_str_eq(v.gatewaydev, ""); /* the new backend's uplink, then */
    ck_refused(rehome_vif_reg(k, 3, &v, err, sizeof(err)), err, "needs ip=");
    {
        const struct rehome_key bad[] = {{"mac", "00:16:3e:00:00:11"}, {"script", "vif-nat"}};
        ck_refused(rehome_vif_reg(bad, 2, &v, err, sizeof(err)), err, "does not exist here");
    }
    {
        const struct rehome_key bad[] = {
            {"mac", "00:16:3e:00:00:11"}, {"script", "vif-route"}, {"ip", "10.0.0.0/8"}};
        ck_refused(rehome_vif_reg(bad, 3, &v, err, sizeof(err)), err, "is a network");
    }
    {
        /* Spaces only name no address: refused as no ip= at all (found by fuzz_rehome). */
        const struct rehome_key bad[] = {
            {"mac", "00:16:3e:00:00:11"}, {"script", "vif-route"}, {"ip", "  "}};
        ck_refused(rehome_vif_reg(bad, 3, &v, err, sizeof(err)), err, "needs ip=");
    }
    {
        const struct rehome_key bad[] = {{"mac", "00:16:3e:00:00:11"}, {"vifname", "a/b"}};
        ck_refused(rehome_vif_reg(bad, 2, &v, err, sizeof(err)), err, "vifname 'a/b'");
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rehome");
    TCase *tc = tcase_create("plan");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_which_devices_move);
    tcase_add_test(tc, test_copy_not_libxls_is_left);
    tcase_add_test(tc, test_new_backend_layout);
    tcase_add_test(tc, test_perms_follow_the_domain);
    tcase_add_test(tc, test_vif_mtu_in_the_frontend);
    tcase_add_test(tc, test_disk_registration);
    tcase_add_test(tc, test_vif_registration);
    tcase_add_test(tc, test_vif_registration_routed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
