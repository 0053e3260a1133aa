/*
 * check_devcfg.c - a config's devices: the vif parser (every key, every
 * refusal, its rates against libxlutil's own), the disk device numbers,
 * libxl's backend choice, the trust rule, the storage check (".." and
 * symlinks and prefixes), duplicates, the simulation's own keys, and the
 * JSON of create -n.
 */
#define _GNU_SOURCE
#include <check.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxl.h>
#include <libxlutil.h>

#include "devplan.h"
#include "diskspec.h"
#include "vifspec.h"
#include "xlcfg.h"

/* A refusal: one line, and it says what to do (contains hint). */
#define ck_refused(rc, err, hint)                                                                  \
    do {                                                                                           \
        ck_assert_int_eq((rc), -1);                                                                \
        ck_assert_msg(strchr((err), '\n') == NULL, "two lines: %s", (err));                        \
        ck_assert_msg(strstr((err), (hint)) != NULL, "'%s' does not say '%s'", (err), (hint));     \
    } while (0)

static int vif(const char *spec, struct vifspec *v, char *err)
{
    err[0] = '\0';
    return vifspec_parse(spec, v, err, 512);
}

START_TEST(test_vif_defaults)
{
    struct vifspec v;
    char err[512];

    ck_assert_int_eq(vif("", &v, err), 0);
    ck_assert(!v.has_mac && !v.has_rate && !v.accel);
    ck_assert_int_eq(v.mtu, 1500);
    ck_assert_int_eq(v.devid, -1);
    ck_assert_int_eq(v.trusted, -1);
    ck_assert_str_eq(v.bridge, "");
    ck_assert_str_eq(v.backend, "");
    ck_assert_int_eq(vif("   ", &v, err), 0);
}
END_TEST

START_TEST(test_vif_every_key)
{
    struct vifspec v;
    char err[512], mac[18];

    ck_assert_msg(vif("mac=00:16:3E:0a:Bb:cc, bridge=br0 ,gatewaydev=eth0,type=vif,model=e1000,"
                      "vifname=vif9.0,script=vif-route,ip=192.0.2.1/24 2001:db8::1,backend=drv,"
                      "rate=10MB/s@20ms,mtu=9000,devid=7,accel=whatever,untrusted",
                      &v, err) == 0,
                  "%s", err);
    ck_assert(v.has_mac);
    vifspec_format_mac(v.mac, mac);
    ck_assert_str_eq(mac, "00:16:3e:0a:bb:cc");
    ck_assert_str_eq(v.bridge, "br0");
    ck_assert_str_eq(v.gatewaydev, "eth0");
    ck_assert_str_eq(v.model, "e1000");
    ck_assert_str_eq(v.vifname, "vif9.0");
    ck_assert_str_eq(v.script, "vif-route");
    ck_assert_str_eq(v.ip, "192.0.2.1/24 2001:db8::1");
    ck_assert_str_eq(v.backend, "drv");
    ck_assert(v.has_rate);
    ck_assert_uint_eq(v.rate_bytes, 200000);
    ck_assert_uint_eq(v.rate_usecs, 20000);
    ck_assert_uint_eq(v.mtu, 9000);
    ck_assert_int_eq(v.devid, 7);
    ck_assert(v.accel);
    ck_assert_int_eq(v.trusted, 0);
    ck_assert_int_eq(vif("trusted,netdev=eth1", &v, err), 0);
    ck_assert_int_eq(v.trusted, 1);
    ck_assert_str_eq(v.gatewaydev, "eth1");
    ck_assert_int_eq(vif("mtu=68,devid=0", &v, err), 0);
    ck_assert_int_eq(vif("mtu=65535,devid=65535", &v, err), 0);
}
END_TEST

START_TEST(test_vif_refusals)
{
    static const struct {
        const char *spec, *hint;
    } bad[] = {
        {"foo=1", "unknown key 'foo'"},
        {"bridge=a,bridge=b", "given twice"},
        {"trusted,untrusted", "given twice"},
        {"mac=00:16:3e:00:00:01,,mtu=1400", "remove the extra comma"},
        {"mac=00:16:3e:00:00:01,", "remove the extra comma"},
        {"mac", "mac=VALUE"},
        {"mac=0:16:3e:1:2:3", "six pairs of hex digits"},
        {"mac=00:16:3e:00:00", "six pairs of hex digits"},
        {"mac=00-16-3e-00-00-01", "six pairs of hex digits"},
        {"mac=00:16:3e:00:00:0g", "six pairs of hex digits"},
        {"mac=01:00:5e:00:00:01", "multicast"},
        {"mac=ff:ff:ff:ff:ff:ff", "multicast"},
        {"mac=00:00:00:00:00:00", "all zeros"},
        {"rate=10", "a number and a unit"},
        {"rate=MB/s", "a number and a unit"},
        {"rate=10MB", "the unit must be"},
        {"rate=10TB/s", "the unit must be"},
        {"rate=10mb/s", "the unit must be"},
        {"rate=010MB/s", "leading zeros"},
        {"rate=0MB/s", "the number must be 1"},
        {"rate=4294967296B/s", "the number must be 1"},
        {"rate=10MB/s@50", "needs a number and a unit"},
        {"rate=10MB/s@50m", "needs a number and a unit"},
        {"rate=10MB/s@0ms", "from 1us"},
        {"rate=10MB/s@4295s", "from 1us"},
        {"rate=1B/s@1ms", "less than one byte"},
        {"rate=4294967295GB/s@4294s", "overflows"},
        {"mtu=67", "from 68 to 65535"},
        {"mtu=65536", "from 68 to 65535"},
        {"mtu=01500", "from 68 to 65535"},
        {"mtu=1500x", "from 68 to 65535"},
        {"devid=65536", "from 0 to 65535"},
        {"devid=-1", "from 0 to 65535"},
        {"type=ioemu", "use type=vif"},
        {"type=tap", "use type=vif"},
        {"colo_sock_mirror_id=1", "COLO"},
        {"forwarddev=eth0", "COLO"},
        {"ip=192.0.2.300", "not a list of addresses"},
        {"ip=192.0.2.1/33", "not a list of addresses"},
        {"ip=192.0.2.1  192.0.2.2", "not a list of addresses"},
        {"ip=", "not a list of addresses"},
        {"bridge=averyveryverylongbridge", "not an interface name"},
        {"bridge=a/b", "not an interface name"},
        {"vifname=a:b", "not an interface name"},
        {"gatewaydev=..", "not an interface name"},
        {"backend=", "printable characters"},
        {"script=a\tb", "printable characters"},
    };
    struct vifspec v;
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = vif(bad[i].spec, &v, err);
        ck_assert_msg(rc == -1, "accepted: %s", bad[i].spec);
        ck_refused(rc, err, bad[i].hint);
    }
}
END_TEST

/* Every rate we accept, libxlutil reads to the same numbers. */
START_TEST(test_vif_rate_as_libxlutil)
{
    static const char *const rates[] = {
        "20B/s",       "10MB/s",       "100Mb/s",       "1Gb/s@1s",
        "5KB/s@100ms", "3Mb/s@250us",  "4294967295B/s", "4294967295GB/s@1us",
        "7GB/s@2s",    "12345b/s@3ms",
    };
    char *report = NULL;
    size_t rlen = 0;
    FILE *rf = open_memstream(&report, &rlen);
    XLU_Config *c = xlu_cfg_init(rf, "test");

    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        libxl_device_nic nic;
        uint64_t bytes;
        uint32_t usecs;
        char err[512];
        libxl_device_nic_init(&nic);
        ck_assert_msg(vifspec_parse_rate(rates[i], &bytes, &usecs, err, sizeof(err)) == 0, "%s",
                      err);
        ck_assert_int_eq(xlu_vif_parse_rate(c, rates[i], &nic), 0);
        ck_assert_msg(bytes == nic.rate_bytes_per_interval && usecs == nic.rate_interval_usecs,
                      "%s: ours %llu,%u libxlutil %llu,%u", rates[i], (unsigned long long)bytes,
                      usecs, (unsigned long long)nic.rate_bytes_per_interval,
                      nic.rate_interval_usecs);
        libxl_device_nic_dispose(&nic);
    }
    xlu_cfg_destroy(c);
    fclose(rf);
    free(report);
}
END_TEST

START_TEST(test_default_mac)
{
    uint8_t a[6], b[6], c[6];

    ck_assert_int_eq(vifspec_default_mac("g1", 0, true, a), 0);
    ck_assert_int_eq(vifspec_default_mac("g1", 0, true, b), 0);
    ck_assert_int_eq(vifspec_default_mac("g1", 1, true, c), 0);
    ck_assert(memcmp(a, b, 6) == 0);
    ck_assert(memcmp(a, c, 6) != 0);
    ck_assert(a[0] == 0x00 && a[1] == 0x16 && a[2] == 0x3e && a[3] < 0x80);
    ck_assert_int_eq(vifspec_default_mac("g1", 0, false, b), 0);
    ck_assert(b[0] == 0x00 && b[1] == 0x16 && b[2] == 0x3e && b[3] < 0x80);
}
END_TEST

START_TEST(test_disk_devid_table)
{
    static const struct {
        const char *vdev;
        int devid;
    } t[] = {
        {"xvda", 202 << 8},
        {"xvdb", 202 << 8 | 1 << 4},
        {"xvdp", 202 << 8 | 15 << 4},
        {"xvda1", 202 << 8 | 1},
        {"xvda15", 202 << 8 | 15},
        {"xvdq", 1 << 28 | 16 << 8},
        {"xvda16", 1 << 28 | 16},
        {"xvdz255", 1 << 28 | 25 << 8 | 255},
        {"xvdaa", 1 << 28 | 26 << 8},
        {"xvdzz", 1 << 28 | 701 << 8},
        {"d0p0", 202 << 8},
        {"d1p2", 202 << 8 | 1 << 4 | 2},
        {"d16p0", 1 << 28 | 16 << 8},
        {"d1048575p255", 1 << 28 | 1048575 << 8 | 255},
        {"hda", 3 << 8},
        {"hdb", 3 << 8 | 64},
        {"hdc", 22 << 8},
        {"hdd", 22 << 8 | 64},
        {"hda1", 3 << 8 | 1},
        {"hdd63", 22 << 8 | 64 | 63},
        {"sda", 8 << 8},
        {"sdb", 8 << 8 | 16},
        {"sdp15", 8 << 8 | 15 << 4 | 15},
        {"51712", 51712},
        {"0", 0},
        {"2147483647", 2147483647},
        /* refused: not a name a frontend knows, or not canonical */
        {"", -1},
        {"xvd", -1},
        {"xvdA", -1},
        {"xvda0", -1},
        {"xvda01", -1},
        {"xvda256", -1},
        {"d1048576p0", -1},
        {"d0p256", -1},
        {"d0p", -1},
        {"dp0", -1},
        {"hde", -1},
        {"hda64", -1},
        {"sdq", -1},
        {"sda16", -1},
        {"0x10", -1},
        {"+1", -1},
        {"2147483648", -1},
        {"vda", -1},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ck_assert_msg(diskspec_devid(t[i].vdev) == t[i].devid, "%s: %d, want %d", t[i].vdev,
                      diskspec_devid(t[i].vdev), t[i].devid);
}
END_TEST

static int backend(const char *spec, bool dom0, char *err)
{
    struct diskspec d;
    enum diskspec_backend be = DISKSPEC_BE_UNKNOWN;

    err[0] = '\0';
    if (diskspec_parse("t.cfg", spec, &d, err, 512) != 0 ||
        diskspec_backend(&d, dom0, &be, err, 512) != 0)
        return -1;
    return (int)be;
}

START_TEST(test_disk_backend_choice)
{
    char err[512];

    /* As libxl: a driver domain gets phy for raw, qdisk for the rest. */
    ck_assert_int_eq(backend("/srv/a.img,raw,xvda,rw", false, err), DISKSPEC_BE_PHY);
    ck_assert_int_eq(backend("/srv/a.qcow2,qcow2,xvda,rw", false, err), DISKSPEC_BE_QDISK);
    /* dom0: phy only for a block device; a file (or nothing yet) goes to qdisk. */
    ck_assert_int_eq(backend("/nonexistent/a.img,raw,xvda,rw", true, err), DISKSPEC_BE_QDISK);
    ck_assert_int_eq(backend("/dev/null,raw,xvda,rw", true, err), DISKSPEC_BE_QDISK);
    ck_assert_int_eq(backend("/nonexistent/a.img,raw,xvda,rw,script=block", true, err),
                     DISKSPEC_BE_PHY);
    ck_assert_int_eq(backend(",,hdc:cdrom,r", true, err), DISKSPEC_BE_PHY);
    ck_assert_int_eq(backend("vdev=xvda,backendtype=tap,target=/a.vhd", true, err),
                     DISKSPEC_BE_TAP);
    ck_assert_int_eq(backend("format=vhd,vdev=xvda,script=x,target=/a.vhd", true, err),
                     DISKSPEC_BE_TAP);
    ck_assert_int_eq(backend("vdev=xvda,backendtype=phy,target=/srv/a.img", true, err),
                     DISKSPEC_BE_PHY);
    ck_refused(backend("format=qcow2,vdev=xvda,backendtype=phy,target=/a", true, err), err,
               "use backendtype=qdisk");
    ck_refused(backend("format=qcow2,vdev=xvda,backendtype=tap,target=/a", true, err), err,
               "use backendtype=qdisk");
    ck_refused(backend("vdev=xvda,backendtype=qdisk,script=x,target=/a", true, err), err,
               "remove script=");
    ck_refused(backend("format=qcow2,vdev=xvda,script=x,target=/a", true, err), err,
               "remove script=");
    ck_refused(backend("vdev=xvda,specification=virtio,target=/a", true, err), err,
               "virtio disks are not available");
    ck_refused(backend("a.img,raw,xvda,rw", true, err), err, "not an absolute path");
    ck_refused(backend("/a.img,raw,vda,rw", true, err), err, "not a disk name");
    ck_refused(backend("/a.img,raw,xvda,rw,bogus=1", true, err), err, "xl-disk-configuration");
    ck_refused(backend("format=empty,vdev=xvda,target=/a", true, err), err, "devtype=cdrom");
}
END_TEST

START_TEST(test_disk_spec_forms)
{
    struct diskspec d;
    char err[512];

    ck_assert_int_eq(
        diskspec_parse("t", "/srv/a,qcow2,xvdb,ro,backend=drv,no-discard", &d, err, sizeof(err)),
        0);
    ck_assert_str_eq(d.target, "/srv/a");
    ck_assert_int_eq(d.format, DISKSPEC_QCOW2);
    ck_assert(!d.readwrite);
    ck_assert_int_eq(d.discard, 0);
    ck_assert_str_eq(d.backend_name, "drv");
    ck_assert_int_eq(d.trusted, -1);
    /* target= takes the rest, commas and all; the trust flags are ours */
    ck_assert_int_eq(
        diskspec_parse("t", "untrusted, vdev=xvdc,target=/srv/a,b,trusted", &d, err, sizeof(err)),
        0);
    ck_assert_str_eq(d.target, "/srv/a,b,trusted");
    ck_assert_int_eq(d.trusted, 0);
    ck_refused(diskspec_parse("t", "trusted,untrusted,vdev=xvdc,target=/a", &d, err, sizeof(err)),
               err, "keep one");
    ck_assert_int_eq(diskspec_parse("t", "/srv/cd.iso,raw,xvdd:cdrom,r", &d, err, sizeof(err)), 0);
    ck_assert(d.cdrom && d.removable && !d.readwrite);
}
END_TEST

/* ---- storage ---- */

static char base[PATH_MAX];

static void make_tree(void)
{
    char p[PATH_MAX + 64];

    snprintf(base, sizeof(base), "/tmp/check_devcfg.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(p, sizeof(p), "%s/srv", base);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/srv/a", base);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/srv/ab", base);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/srv/a/img", base);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/secret", base);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    {
        char t[PATH_MAX + 64];
        snprintf(p, sizeof(p), "%s/srv/a/escape", base);
        snprintf(t, sizeof(t), "%s/secret", base);
        ck_assert_int_eq(symlink(t, p), 0);
        snprintf(p, sizeof(p), "%s/srv/a/dangling", base);
        ck_assert_int_eq(symlink("/nonexistent/x", p), 0);
        snprintf(p, sizeof(p), "%s/alias", base); /* a storage dir named through a symlink */
        snprintf(t, sizeof(t), "%s/srv/a", base);
        ck_assert_int_eq(symlink(t, p), 0);
        snprintf(p, sizeof(p), "%s/srv/a/img/inner", base); /* a symlink that stays inside */
        ck_assert_int_eq(symlink("../img", p), 0);
    }
}

static int check_in(const char *rel, const char *store_rel, char *err)
{
    char t[PATH_MAX + 64], s[PATH_MAX + 64];
    const char *storage[1] = {s};

    snprintf(t, sizeof(t), "%s%s", base, rel);
    snprintf(s, sizeof(s), "%s%s", base, store_rel);
    err[0] = '\0';
    return devplan_storage_check(t, "drv", storage, 1, err, 512);
}

START_TEST(test_storage_check)
{
    char err[512];

    make_tree();
    ck_assert_msg(check_in("/srv/a/img/disk.raw", "/srv/a", err) == 0, "%s", err);
    ck_assert_msg(check_in("/srv/a/new/not/yet.raw", "/srv/a", err) == 0, "%s", err);
    ck_assert_msg(check_in("/srv/a/img/../x.raw", "/srv/a", err) == 0, "%s", err);
    ck_assert_msg(check_in("/srv/a//./img/x.raw", "/srv/a/", err) == 0, "%s", err);
    ck_assert_msg(check_in("/srv/a/img/inner/x.raw", "/srv/a", err) == 0, "%s", err);
    ck_assert_msg(check_in("/srv/a/x.raw", "/alias", err) == 0, "%s", err);
    ck_assert_msg(check_in("/alias/x.raw", "/srv/a", err) == 0, "%s", err);
    /* out: "..", a prefix that is not a parent, a symlink out, one to nowhere, the dir itself */
    ck_refused(check_in("/srv/a/../ab/x.raw", "/srv/a", err), err, "is outside drv's storage");
    ck_refused(check_in("/srv/a/img/../../../secret/x", "/srv/a", err), err,
               "add its directory to bulkhead_storage in drv's config");
    ck_refused(check_in("/srv/ab/x.raw", "/srv/a", err), err, "is outside");
    ck_refused(check_in("/srv/a/escape/x.raw", "/srv/a", err), err, "is outside");
    ck_refused(check_in("/srv/a/escape", "/srv/a", err), err, "is outside");
    ck_refused(check_in("/srv/a/dangling", "/srv/a", err), err, "leads nowhere");
    ck_refused(check_in("/srv/a", "/srv/a", err), err, "is outside");
    ck_refused(devplan_storage_check("rel/x", "drv", NULL, 0, err, sizeof(err)), err,
               "write it from /");
    ck_refused(devplan_storage_check("/srv/x", "drv", NULL, 0, err, sizeof(err)), err,
               "storage (none)");
    {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        ck_assert_int_eq(system(cmd), 0);
    }
}
END_TEST

/* ---- plans ---- */

struct fake {
    const char *storage[2];
};

static int fake_resolve(void *arg, const char *name, struct devplan_backend *out, char *err,
                        size_t errlen)
{
    struct fake *f = arg;

    if (strcmp(name, "drv") == 0) {
        out->domid = 3;
        out->storage = f->storage;
        out->nstorage = 2;
        return 0;
    }
    if (strcmp(name, "open") == 0) { /* a driver domain whose storage is unknown */
        out->domid = 4;
        out->storage = NULL;
        return 0;
    }
    if (strcmp(name, "self") == 0) {
        out->domid = 5;
        return 0;
    }
    snprintf(err, errlen, "no domain %s: create it first", name);
    return -1;
}

static int plan(const char *text, struct devplan **p, char *err)
{
    static struct fake f = {{"/srv/bh/a", "/srv/bh/b"}};
    struct devplan_opts o = {.domid = 5, .resolve = fake_resolve, .arg = &f, .stable_macs = true};
    struct xlcfg cfg;
    int rc;

    err[0] = '\0';
    *p = NULL;
    if (xlcfg_read(&cfg, "t.cfg", text, strlen(text), err, 1024) != 0)
        return -1;
    rc = devplan_build(&cfg, "t.cfg", &o, p, err, 1024);
    xlcfg_free(&cfg);
    return rc;
}

static const char *value(const struct devplan_dev *d, const char *path)
{
    const struct bhxb_node *n = bhxb_layout_find(d->layout, path);
    return n ? n->value : NULL;
}

START_TEST(test_trust_rule)
{
    struct devplan *p;
    char err[1024];

    ck_assert_msg(plan("name='g'\n"
                       "disk=['/srv/bh/a/r.img,raw,xvda,rw,backend=drv',"
                       "'/srv/x.img,raw,xvdb,rw',"
                       "'untrusted,/srv/y.img,raw,xvdc,rw',"
                       "'trusted,/srv/bh/b/z.img,raw,xvdd,rw,backend=drv']\n"
                       "vif=['backend=drv','','backend=drv,trusted','untrusted']\n",
                       &p, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(p->n, 8);
    ck_assert(!p->devs[0].trusted && p->devs[1].trusted && !p->devs[2].trusted &&
              p->devs[3].trusted);
    ck_assert(!p->devs[4].trusted && p->devs[5].trusted && p->devs[6].trusted &&
              !p->devs[7].trusted);
    ck_assert_str_eq(value(&p->devs[0], "/local/domain/5/device/vbd/51712/trusted"), "0");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/5/device/vbd/51728/trusted"), "1");
    ck_assert_str_eq(value(&p->devs[4], "/local/domain/5/device/vif/0/trusted"), "0");
    ck_assert_str_eq(value(&p->devs[6], "/local/domain/5/device/vif/2/trusted"), "1");
    ck_assert(p->devs[0].storage_checked && !p->devs[1].storage_checked);
    devplan_free(p);
}
END_TEST

START_TEST(test_plan_layout)
{
    struct devplan *p;
    const struct bhxb_node *n;
    char err[1024], perms[32];

    ck_assert_msg(plan("name='g'\ndisk=['/srv/bh/a/r.img,raw,xvda,rw,backend=drv']\n"
                       "vif=['backend=drv,mtu=9000,rate=1MB/s@10ms,ip=192.0.2.5']\n",
                       &p, err) == 0,
                  "%s", err);
    ck_assert_str_eq(p->devs[0].backend_kind, "vbd");
    ck_assert_uint_eq(p->devs[0].backend_domid, 3);
    ck_assert_str_eq(p->devs[0].layout->paths.backend, "/local/domain/3/backend/vbd/5/51712");
    ck_assert_str_eq(value(&p->devs[0], "/local/domain/3/backend/vbd/5/51712/params"),
                     "/srv/bh/a/r.img");
    ck_assert_str_eq(value(&p->devs[0], "/libxl/5/device/vbd/51712/params"), "/srv/bh/a/r.img");
    ck_assert_str_eq(value(&p->devs[0], "/local/domain/3/backend/vbd/5/51712/type"), "phy");
    n = bhxb_layout_find(p->devs[0].layout, "/local/domain/3/backend/vbd/5/51712/mode");
    ck_assert_int_ge(bhxb_perms_format(n->perms, n->nperms, perms, sizeof(perms)), 0);
    ck_assert_str_eq(perms, "n3,r5");
    n = bhxb_layout_find(p->devs[0].layout, "/local/domain/5/device/vbd/51712/virtual-device");
    ck_assert_int_ge(bhxb_perms_format(n->perms, n->nperms, perms, sizeof(perms)), 0);
    ck_assert_str_eq(perms, "n5,r3");
    ck_assert_str_eq(n->value, "51712");
    /* the vif: mtu on the frontend is the backend's, read-only to the guest */
    n = bhxb_layout_find(p->devs[1].layout, "/local/domain/5/device/vif/0/mtu");
    ck_assert_int_ge(bhxb_perms_format(n->perms, n->nperms, perms, sizeof(perms)), 0);
    ck_assert_str_eq(perms, "n3,r5");
    ck_assert_str_eq(n->value, "9000");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/0/rate"), "10000,10000");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/0/ip"), "192.0.2.5");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/0/mtu"), "9000");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/0/bridge"), "xenbr0");
    devplan_free(p);
}
END_TEST

START_TEST(test_plan_refusals)
{
    struct devplan *p;
    char err[1024];

    ck_refused(plan("name='g'\ndisk=['/srv/bh/c/r.img,raw,xvda,rw,backend=drv']\n", &p, err), err,
               "t.cfg: disk xvda: target /srv/bh/c/r.img is outside drv's storage");
    ck_refused(plan("name='g'\ndisk=['/srv/bh/ab/r.img,raw,xvda,rw,backend=drv']\n", &p, err), err,
               "outside");
    ck_refused(plan("name='g'\ndisk=['/srv/bh/a/../c/r.img,raw,xvda,rw,backend=drv']\n", &p, err),
               err, "that is /srv/bh/c/r.img");
    ck_refused(
        plan("name='g'\ndisk=['/srv/a.img,raw,xvda,rw','/srv/b.img,raw,51712,rw']\n", &p, err), err,
        "disks xvda and 51712 are the same device (51712)");
    ck_refused(
        plan("name='g'\ndisk=['/srv/a.img,raw,xvda,rw','/srv/b.img,raw,d0p0,rw']\n", &p, err), err,
        "give each disk its own vdev");
    ck_refused(plan("name='g'\nvif=['mac=00:16:3e:00:00:01','mac=00:16:3E:00:00:01']\n", &p, err),
               err, "both have mac 00:16:3e:00:00:01");
    ck_refused(plan("name='g'\nvif=['devid=1','']\n", &p, err), err, "both have devid 1");
    ck_refused(plan("name='g'\nvif=['backend=nosuch']\n", &p, err), err,
               "t.cfg: vif 0: no domain nosuch: create it first");
    ck_refused(plan("name='g'\ndisk=['/a,raw,xvda,rw,backend=self']\n", &p, err), err,
               "the new domain itself");
    ck_refused(plan("name='g'\nvif=['mtu=1']\n", &p, err), err, "t.cfg: vif 0: mtu '1'");
    ck_assert_ptr_null(p);
    /* unknown storage: no check */
    ck_assert_msg(plan("name='g'\ndisk=['/anywhere/r.img,raw,xvda,rw,backend=open']\n", &p, err) ==
                      0,
                  "%s", err);
    ck_assert(!p->devs[0].storage_checked);
    devplan_free(p);
}
END_TEST

/* script=vif-route: a routed vif, on no bridge, with its IPv4 host addresses for the broker. */
START_TEST(test_plan_routed)
{
    struct devplan *p;
    char err[1024];

    ck_assert_msg(plan("name='g'\nvif=['backend=drv,script=vif-route,ip=192.0.2.5 192.0.2.6/32',"
                       "'backend=drv,script=/etc/xen/scripts/vif-route,ip=198.51.100.1,"
                       "gatewaydev=eth1,vifname=g.r1',"
                       "'backend=drv,script=/etc/xen/scripts/vif-bridge,bridge=br1']\n",
                       &p, err) == 0,
                  "%s", err);
    ck_assert_uint_eq(p->n, 3);
    ck_assert(p->devs[0].routed && p->devs[1].routed && !p->devs[2].routed);
    ck_assert_str_eq(p->devs[0].bridge, "");
    ck_assert_uint_eq(p->devs[0].nip4, 2);
    ck_assert_uint_eq(p->devs[0].ip4[0], htonl(0xc0000205));
    ck_assert_uint_eq(p->devs[0].ip4[1], htonl(0xc0000206));
    ck_assert_str_eq(p->devs[0].gatewaydev, "");
    ck_assert_str_eq(p->devs[1].gatewaydev, "eth1");
    ck_assert_str_eq(p->devs[1].vifname, "g.r1");
    ck_assert_uint_eq(p->devs[1].nip4, 1);
    ck_assert_str_eq(p->devs[2].bridge, "br1");
    ck_assert_uint_eq(p->devs[2].nip4, 0);
    /* the keys libxl writes: the script's full path, ip as given */
    ck_assert_str_eq(value(&p->devs[0], "/local/domain/3/backend/vif/5/0/script"),
                     "/etc/xen/scripts/vif-route");
    ck_assert_str_eq(value(&p->devs[0], "/local/domain/3/backend/vif/5/0/ip"),
                     "192.0.2.5 192.0.2.6/32");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/1/gatewaydev"), "eth1");
    ck_assert_str_eq(value(&p->devs[1], "/local/domain/3/backend/vif/5/1/vifname"), "g.r1");
    devplan_free(p);
}
END_TEST

START_TEST(test_plan_routed_refusals)
{
    static const struct {
        const char *vifs, *hint;
    } bad[] = {
        {"'script=vif-route'", "t.cfg: vif 0: script=vif-route needs ip=: vif-route routes"},
        {"'script=vif-route,ip= '", "t.cfg: vif 0: ip '' is not a list of addresses"},
        {"'script=vif-route,bridge=xenbr0,ip=192.0.2.5'", "a routed vif is on no bridge; remove"},
        {"'script=vif-route,ip=192.0.2.5/24'", "write 192.0.2.5"},
        {"'script=vif-route,ip=2001:db8::5'", "IPv4 only here; remove it"},
        {"'script=vif-route,ip=192.0.2.5 2001:db8::5'", "ip 2001:db8::5 of a routed vif"},
        {"'script=vif-route,ip=127.0.0.1'", "no unicast host address"},
        {"'script=vif-route,ip=224.0.0.1'", "no unicast host address"},
        {"'script=vif-route,ip=0.1.2.3'", "no unicast host address"},
        {"'script=vif-route,ip=255.255.255.255'", "no unicast host address"},
        {"'script=vif-route,ip=192.0.2.5 192.0.2.5/32'", "ip 192.0.2.5 is given twice"},
        {"'script=vif-route,ip=10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7 "
         "10.0.0.8 10.0.0.9'",
         "more than 8 addresses: keep 8"},
        {"'script=vif-openvswitch'", "script 'vif-openvswitch' does not exist here"},
        {"'script=/etc/xen/scripts/vif-nat'", "use script=vif-bridge (the default) or"},
        {"'script=/usr/lib/xen/vif-route'", "script '/usr/lib/xen/vif-route' does not exist"},
        {"'script=vif-route-x,ip=192.0.2.5'", "does not exist here"},
        {"'vifname=v1','vifname=v1'", "vifs 0 and 1 both have vifname v1"},
    };
    struct devplan *p;
    char err[1024];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char cfg[512];
        snprintf(cfg, sizeof(cfg), "name='g'\nvif=[%s]\n", bad[i].vifs);
        ck_refused(plan(cfg, &p, err), err, bad[i].hint);
        ck_assert_ptr_null(p);
    }
}
END_TEST

START_TEST(test_plan_json)
{
    struct devplan *p;
    char err[1024], *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    ck_assert_msg(plan("name='g'\ndisk=['vdev=xvda,target=/srv/a \"q\" \\\\b.img']\n", &p, err) ==
                      0,
                  "%s", err);
    ck_assert_int_eq(devplan_json(p, f), 0);
    fclose(f);
    {
        const char *first = "[\n{\"path\": \"/libxl/5/device/vbd/51712\", \"value\": \"\", "
                            "\"perms\": \"n0\"},\n";
        ck_assert(strncmp(out, first, strlen(first)) == 0);
    }
    ck_assert_ptr_nonnull(strstr(out,
                                 "{\"path\": \"/local/domain/0/backend/qdisk/5/51712/params\", "
                                 "\"value\": \"aio:/srv/a \\\"q\\\" \\\\b.img\", \"perms\": "
                                 "\"n0,r5\"},\n"));
    ck_assert(strcmp(out + len - 3, "}\n]") == 0 || strcmp(out + len - 4, "}\n]\n") == 0);
    /* sorted, one object per line */
    {
        char *prev = NULL, *line = strtok(out, "\n");
        int lines = 0;
        for (; line; line = strtok(NULL, "\n"), lines++) {
            if (line[0] != '{')
                continue;
            if (prev)
                ck_assert_int_lt(strcmp(prev, line), 0);
            prev = line;
        }
        ck_assert_int_eq(lines, (int)p->devs[0].layout->n + 2);
    }
    free(out);
    devplan_free(p);
}
END_TEST

/* ---- the simulation's own keys ---- */

START_TEST(test_bulkhead_keys)
{
    struct xlcfg c;
    char err[512];
    const char *t = "name='d'\ndriver_domain=1\nbulkhead_storage=['/srv//a/./b/','/srv/c/../d']\n"
                    "bulkhead_uplink='br-up'\nbulkhead_init='/bin/work  --fast x'\n"
                    "disk=['/a,raw,xvda,rw']\nvif=['', 'bridge=br1']\n";

    ck_assert_msg(xlcfg_read(&c, "t.cfg", t, strlen(t), err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.nstorage, 2);
    ck_assert_str_eq(c.storage[0], "/srv/a/b");
    ck_assert_str_eq(c.storage[1], "/srv/d");
    ck_assert_str_eq(c.uplink, "br-up");
    ck_assert_uint_eq(c.ninit, 3);
    ck_assert_str_eq(c.init[0], "/bin/work");
    ck_assert_str_eq(c.init[1], "--fast");
    ck_assert_ptr_null(c.init[3]);
    ck_assert_uint_eq(c.ndisks, 1);
    ck_assert_uint_eq(c.nvifs, 2);
    ck_assert_str_eq(c.vifs[1], "bridge=br1");
    xlcfg_free(&c);

    t = "name='g'\nbulkhead_init=['/bin/sh', '-c', 'echo a b']\n";
    ck_assert_msg(xlcfg_read(&c, "t.cfg", t, strlen(t), err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(c.ninit, 3);
    ck_assert_str_eq(c.init[2], "echo a b");
    xlcfg_free(&c);

    static const struct {
        const char *text, *hint;
    } bad[] = {
        {"name='d'\nbulkhead_storage=['srv/a']\n", "write it from /"},
        {"name='d'\nbulkhead_storage=['/srv/..']\n", "the whole host"},
        {"name='d'\nbulkhead_storage='/srv/a'\n", "bulkhead_storage = [ \"...\", ... ]"},
        {"name='d'\nbulkhead_uplink='a bridge'\n", "not a bridge name"},
        {"name='d'\nbulkhead_uplink=['br0']\n", "bulkhead_uplink = \"BRIDGE\""},
        {"name='d'\nbulkhead_init=''\n", "names no command"},
        {"name='d'\nbulkhead_init=[]\n", "names no command"},
        {"name='d'\nbulkhead_init=['', 'x']\n", "names no command"},
        {"name='d'\ndisk='/a,raw,xvda,rw'\n", "disk = [ \"...\", ... ]"},
        {"name='d'\nvif=['a\x01']\n", "printable"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = xlcfg_read(&c, "t.cfg", bad[i].text, strlen(bad[i].text), err, sizeof(err));
        ck_assert_msg(rc == -1, "accepted: %s", bad[i].text);
        ck_refused(rc, err, bad[i].hint);
    }
}
END_TEST

START_TEST(test_normalize_path)
{
    char b[64];

    ck_assert_int_eq(xlcfg_normalize_path("/a/./b//c/../d/", b, sizeof(b)), 0);
    ck_assert_str_eq(b, "/a/b/d");
    ck_assert_int_eq(xlcfg_normalize_path("/../..", b, sizeof(b)), 0);
    ck_assert_str_eq(b, "/");
    ck_assert_int_eq(xlcfg_normalize_path("a/b", b, sizeof(b)), -1);
    ck_assert_int_eq(xlcfg_normalize_path("/aaaaaaaaaa", b, 8), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("devcfg");
    TCase *tv = tcase_create("vif"), *td = tcase_create("disk"), *tp = tcase_create("plan");
    SRunner *sr;
    int failed;

    tcase_add_test(tv, test_vif_defaults);
    tcase_add_test(tv, test_vif_every_key);
    tcase_add_test(tv, test_vif_refusals);
    tcase_add_test(tv, test_vif_rate_as_libxlutil);
    tcase_add_test(tv, test_default_mac);
    tcase_add_test(td, test_disk_devid_table);
    tcase_add_test(td, test_disk_backend_choice);
    tcase_add_test(td, test_disk_spec_forms);
    tcase_add_test(tp, test_storage_check);
    tcase_add_test(tp, test_trust_rule);
    tcase_add_test(tp, test_plan_layout);
    tcase_add_test(tp, test_plan_refusals);
    tcase_add_test(tp, test_plan_routed);
    tcase_add_test(tp, test_plan_routed_refusals);
    tcase_add_test(tp, test_plan_json);
    tcase_add_test(tp, test_bulkhead_keys);
    tcase_add_test(tp, test_normalize_path);
    suite_add_tcase(s, tv);
    suite_add_tcase(s, td);
    suite_add_tcase(s, tp);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
