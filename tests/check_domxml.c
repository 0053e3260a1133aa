/*
 * check_domxml.c - libvirt domain XML as the simulation reads it: the xl
 * specs each device becomes, the domain settings and their units, and the
 * refusals (schema, DOCTYPE, values an xl spec cannot carry, sizes).
 * Validates against the installed libvirt domain.rng, as create does.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"

/* A PV domain around `devices`, with `head` after its name. */
static int parse(struct xlcfg *c, const char *head, const char *devices, char *err, size_t errlen)
{
    char buf[8192];

    snprintf(buf, sizeof(buf),
             "<domain type='xen'>\n<name>t</name>\n%s\n<os><type>linux</type></os>\n"
             "<devices>\n%s\n</devices>\n</domain>\n",
             head, devices);
    return domxml_read(c, "t.xml", buf, strlen(buf), NULL, err, errlen);
}

START_TEST(test_disk_specs)
{
    struct xlcfg c;
    char err[1024];

    ck_assert_msg(parse(&c, "<memory>131072</memory>",
                        "<disk type='block' device='disk'><driver name='phy' type='raw'/>"
                        "<source dev='/dev/vg/x'/><target dev='xvda'/><readonly/>"
                        "<backenddomain name='drv'/></disk>"
                        "<disk type='file' device='cdrom'><driver name='tap' type='aio'/>"
                        "<target dev='xvdc'/></disk>"
                        "<disk type='file'><driver type='qcow2'/><source file='/i,j.qcow2'/>"
                        "<target dev='xvdb'/></disk>",
                        err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.ndisks, 3);
    ck_assert_str_eq(c.disks[0],
                     "format=raw,vdev=xvda,access=ro,backendtype=phy,backend=drv,target=/dev/vg/x");
    ck_assert_str_eq(c.disks[1], "format=raw,vdev=xvdc,access=rw,backendtype=tap,devtype=cdrom");
    /* The target is last: xl takes the rest of the spec, commas and all. */
    ck_assert_str_eq(c.disks[2], "format=qcow2,vdev=xvdb,access=rw,target=/i,j.qcow2");
    ck_assert_ptr_null(c.disks[3]);
    xlcfg_free(&c);
}
END_TEST

START_TEST(test_interface_specs)
{
    struct xlcfg c;
    char err[1024];

    ck_assert_msg(parse(&c, "",
                        "<interface type='bridge'><mac address='00:16:3e:00:00:01'/>"
                        "<source bridge='br0'/><vlan><tag id='42'/></vlan>"
                        "<virtualport type='openvswitch'/><ip address='10.0.0.1' prefix='8'/>"
                        "<ip address='2001:db8::1'/><model type='netfront'/>"
                        "<bandwidth><outbound average='1000'/></bandwidth>"
                        "<mtu size='9000'/></interface>"
                        "<interface type='ethernet'><model type='e1000'/>"
                        "<target dev='vifx'/></interface>",
                        err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.nvifs, 2);
    ck_assert_str_eq(c.vifs[0], "mac=00:16:3e:00:00:01,bridge=br0.42,ip=10.0.0.1/8 2001:db8::1,"
                                "script=vif-openvswitch,type=vif,rate=1000KB/s,mtu=9000");
    ck_assert_str_eq(c.vifs[1], "model=e1000,vifname=vifx");
    xlcfg_free(&c);
}
END_TEST

START_TEST(test_domain_settings)
{
    struct xlcfg c;
    char err[1024];

    ck_assert_msg(parse(&c,
                        "<memory unit='GiB'>1</memory><currentMemory unit='b'>1</currentMemory>"
                        "<vcpu current='3'>8</vcpu><bootloader>/usr/bin/pygrub</bootloader>",
                        "<controller type='xenbus' maxGrantFrames='64' maxEventChannels='2047'/>",
                        err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(c.name, "t");
    ck_assert_int_eq(c.maxmem_mb, 1024);
    ck_assert_int_eq(c.memory_mb, 1); /* one byte rounds up to a MiB, as libvirt rounds */
    ck_assert_int_eq(c.vcpus, 3);
    ck_assert_int_eq(c.max_grant_frames, 64);
    ck_assert_int_eq(c.max_event_channels, 2047);
    ck_assert_str_eq(c.noted, "bootloader");
    ck_assert(!c.driver_domain);
    xlcfg_free(&c);

    ck_assert_int_eq(parse(&c, "", "", err, sizeof(err)), 0);
    ck_assert_int_eq(c.memory_mb, 128); /* xl's default */
    ck_assert_int_eq(c.vcpus, 1);
    xlcfg_free(&c);
}
END_TEST

/* Each refusal: one line, naming what is wrong. */
static void refused(const char *head, const char *devices, const char *want)
{
    struct xlcfg c;
    char err[1024];

    ck_assert_int_eq(parse(&c, head, devices, err, sizeof(err)), -1);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
}

START_TEST(test_refusals)
{
    refused("<memory>131072</memory><currentMemory>262144</currentMemory>", "",
            "<currentMemory> is larger than <memory>");
    refused("<memory unit='TiB'>17</memory>", "", "<memory> must be a size from 1 MiB to 16 TiB");
    refused("<memory unit='EiB'>1</memory>", "", "<memory> must be a size");
    refused("<memory unit='parsec'>1</memory>", "", "<memory> in <domain> does not follow");
    refused("<memory>18446744073709551615</memory>", "", "must be a size");
    refused("<vcpu current='9'>8</vcpu>", "", "<vcpu current='9'> must be a number from 1 to 8");
    refused("", "<disk type='file'><source file='/x'/><target dev='xvda'/><transient/></disk>",
            "<transient/> disks are not available");
    refused("",
            "<disk type='file'><driver type='vmdk'/><source file='/x'/>"
            "<target dev='xvda'/></disk>",
            "the format must be raw, qcow, qcow2, vhd or qed");
    refused("", "<interface type='user'/>", "<interface type='user'> is not available");
    refused("", "<interface type='bridge'/>", "has no <source bridge='...'/>");
    refused("",
            "<interface type='bridge'><source bridge='b'/><vlan><tag id='1'/><tag id='2'/>"
            "</vlan></interface>",
            "<vlan> takes one <tag id='N'/>");
    refused("", "<interface type='ethernet'><script path='/a,b'/></interface>",
            "script '/a,b' holds a ','");
    refused("", "<disk type='file'><source file='/x'/><target dev='xvda'/><bogus/></disk>",
            "t.xml:6: <bogus> in <disk> does not follow libvirt's domain.rng");
}
END_TEST

START_TEST(test_document_refusals)
{
    struct xlcfg c;
    char err[1024];
    static const char *const cases[][2] = {
        {"", "not well-formed XML"},
        {"<domain type='xen'><name>a</name>", "not well-formed XML"},
        {"<?xml version='1.0'?><!DOCTYPE domain SYSTEM 'http://x/d.dtd'><domain/>", "DOCTYPE"},
        {"<dom type='xen'/>", "the root element is not <domain>"},
        {"<domain type='xen'><name>x</name><memory>1024</memory>"
         "<os><type>hvm</type></os></domain>",
         "hvm guests are not available in the simulation"},
        {"<domain type='xen'><name>x</name><memory>1024</memory>"
         "<os><type>xenpvh</type></os></domain>",
         "pvh guests are not available in the simulation"},
        {"<domain type='xen'><name>a&#10;b</name><memory>1024</memory></domain>",
         "<name> does not follow libvirt's domain.rng"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(
            domxml_read(&c, "d.xml", cases[i][0], strlen(cases[i][0]), NULL, err, sizeof(err)), -1);
        ck_assert_ptr_null(strchr(err, '\n'));
        ck_assert_msg(strstr(err, cases[i][1]) != NULL, "case %zu: '%s'", i, err);
    }
}
END_TEST

START_TEST(test_schema_missing)
{
    struct xlcfg c;
    char err[1024];
    const char *x = "<domain type='xen'><name>a</name></domain>";

    ck_assert_int_eq(
        domxml_read(&c, "m.xml", x, strlen(x), "/nonexistent/domain.rng", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "install libvirt0"));
}
END_TEST

START_TEST(test_is_xml)
{
    ck_assert(domxml_is_xml(" \n\t<domain>", 10));
    ck_assert(!domxml_is_xml("name = \"x\"", 10));
    ck_assert(!domxml_is_xml("   ", 3));
    ck_assert(!domxml_is_xml("", 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("domxml");
    TCase *tc = tcase_create("read");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60); /* compiling domain.rng under a sanitizer takes a while */
    tcase_add_test(tc, test_disk_specs);
    tcase_add_test(tc, test_interface_specs);
    tcase_add_test(tc, test_domain_settings);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_document_refusals);
    tcase_add_test(tc, test_schema_missing);
    tcase_add_test(tc, test_is_xml);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
