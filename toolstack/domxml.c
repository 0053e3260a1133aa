/*
 * domxml.c - see domxml.h.  The schema says what is well formed; this file
 * says what libvirt's libxl driver makes of it, spelled as xl specs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "diskspec.h"
#include "domxml.h"

#define DOMXML_MAX_BYTES (1u << 20) /* as xlcfg's bound on an xl config */
#define VAL_MAX          256        /* one attribute or text we keep */

struct rd {
    struct xlcfg *cfg;
    const char *file;
    char *err;
    size_t errlen;
};

static int fail(struct rd *r, const xmlNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A one-line refusal, located by the element's line when there is one. */
static int fail(struct rd *r, const xmlNode *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    long line = n != NULL ? xmlGetLineNo(n) : -1;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(r->err, r->errlen, "%s:%ld: %s", r->file, line, msg);
    else
        snprintf(r->err, r->errlen, "%s: %s", r->file, msg);
    xlcfg_one_line(r->err);
    return -1;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns == NULL && strcmp((const char *)n->name, name) == 0;
}

/* The first child element called name (libvirt's elements have no namespace). */
static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c != NULL; c = c->next)
        if (is_elem(c, name))
            return c;
    return NULL;
}

/*
 * An attribute (or, with name NULL, the element's text) into buf.  Returns
 * 1 if present, 0 if absent, -1 (refused) if longer than buf or holding a
 * control character: nothing we keep may break a spec or a message.
 */
static int value(struct rd *r, const xmlNode *n, const char *name, char *buf, size_t size)
{
    xmlChar *v;
    size_t len;

    buf[0] = '\0';
    if (n == NULL)
        return 0;
    v = name != NULL ? xmlGetNoNsProp(n, (const xmlChar *)name) : xmlNodeGetContent(n);
    if (v == NULL)
        return 0;
    len = strlen((const char *)v);
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] == 0x7f) {
            xmlFree(v);
            return fail(r, n, "<%s>%s%s holds a control character: write it on one line",
                        (const char *)n->name, name ? " " : "", name ? name : "");
        }
    }
    if (len >= size) {
        xmlFree(v);
        return fail(r, n, "<%s>%s%s is longer than %zu bytes", (const char *)n->name,
                    name ? " " : "", name ? name : "", size - 1);
    }
    memcpy(buf, v, len + 1);
    xmlFree(v);
    return 1;
}

/* A number from min to max, canonical decimal. */
static bool number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- domain settings ---- */

/* libvirt's memory units (formatdomain: "Memory Allocation"), in bytes. */
static const struct {
    const char *name;
    uint64_t bytes;
} units[] = {
    {"b", 1},           {"bytes", 1},        {"KB", 1000},        {"k", 1024},
    {"KiB", 1024},      {"MB", 1000000},     {"M", 1 << 20},      {"MiB", 1 << 20},
    {"GB", 1000000000}, {"G", 1ull << 30},   {"GiB", 1ull << 30}, {"TB", 1000000000000ull},
    {"T", 1ull << 40},  {"TiB", 1ull << 40},
};

/* <memory> or <currentMemory> in MiB, rounded up as libvirt's xenFormatMem; 0 if absent. */
static int memory_mib(struct rd *r, const xmlNode *dom, const char *name, long *out)
{
    const xmlNode *n = child(dom, name);
    char text[VAL_MAX], unit[16];
    uint64_t v, mult = 0;
    int got;

    *out = 0;
    if ((got = value(r, n, NULL, text, sizeof(text))) <= 0)
        return got;
    if (value(r, n, "unit", unit, sizeof(unit)) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && mult == 0; i++)
        if (strcmp(unit[0] ? unit : "KiB", units[i].name) == 0)
            mult = units[i].bytes;
    /* 2^24 MiB is xl's bound on memory (xlcfg.c). */
    if (mult == 0 || !number(text, 1, UINT64_MAX / mult, &v) ||
        (v * mult + (1 << 20) - 1) >> 20 > (1 << 24))
        return fail(r, n, "<%s> must be a size from 1 MiB to 16 TiB, e.g. <%s unit='MiB'>512</%s>",
                    name, name, name);
    *out = (long)((v * mult + (1 << 20) - 1) >> 20);
    return 0;
}

static int read_memory(struct rd *r, const xmlNode *dom)
{
    long max, cur;

    if (memory_mib(r, dom, "memory", &max) != 0 || memory_mib(r, dom, "currentMemory", &cur) != 0)
        return -1;
    r->cfg->memory_mb = cur ? cur : max ? max : 128;
    r->cfg->maxmem_mb = max ? max : r->cfg->memory_mb;
    if (r->cfg->maxmem_mb < r->cfg->memory_mb)
        return fail(r, child(dom, "currentMemory"),
                    "<currentMemory> is larger than <memory>: <memory> is the most it may have");
    return 0;
}

static int read_vcpus(struct rd *r, const xmlNode *dom)
{
    const xmlNode *n = child(dom, "vcpu");
    char max[VAL_MAX], cur[VAL_MAX];
    uint64_t m = 1, c;
    int got;

    r->cfg->vcpus = 1;
    if ((got = value(r, n, NULL, max, sizeof(max))) < 0 || (got > 0 && !number(max, 1, 512, &m)))
        return got < 0 ? -1 : fail(r, n, "<vcpu> must be a number from 1 to 512");
    r->cfg->vcpus = (long)m;
    if ((got = value(r, n, "current", cur, sizeof(cur))) < 0)
        return -1;
    if (got > 0) {
        if (!number(cur, 1, m, &c))
            return fail(r, n, "<vcpu current='%s'> must be a number from 1 to %" PRIu64, cur, m);
        r->cfg->vcpus = (long)c; /* the vcpus online, as xl's vcpus= (maxvcpus= is the max) */
    }
    return 0;
}

/* Appends key to cfg->noted, as xlcfg does for the boot settings. */
static void note(struct xlcfg *cfg, const char *key)
{
    size_t n = strlen(cfg->noted);

    snprintf(cfg->noted + n, sizeof(cfg->noted) - n, "%s%s", n ? ", " : "", key);
}

/*
 * os/type: linux (or xen, its old name) is a PV guest.  hvm and xenpvh are
 * refused with the words xlcfg uses for type = "hvm" / "pvh", so that both
 * descriptions of one guest give one refusal.
 */
static int read_os(struct rd *r, const xmlNode *dom)
{
    const xmlNode *os = child(dom, "os"), *t = child(os, "type");
    char type[VAL_MAX] = "";
    const char *kind;

    if (value(r, t, NULL, type, sizeof(type)) < 0)
        return -1;
    if (type[0] != '\0' && strcmp(type, "linux") != 0 && strcmp(type, "xen") != 0) {
        kind = strcmp(type, "xenpvh") == 0 ? "pvh" : type;
        snprintf(r->err, r->errlen, XLCFG_NOT_PV_FMT, r->file, kind);
        xlcfg_one_line(r->err);
        return -1;
    }
    snprintf(r->cfg->type, sizeof(r->cfg->type), "pv");
    /* In xl's order (xlcfg.c): kernel, ramdisk, extra, cmdline, root, bootloader. */
    if (child(os, "kernel"))
        note(r->cfg, "kernel");
    if (child(os, "initrd"))
        note(r->cfg, "ramdisk");
    if (child(os, "cmdline"))
        note(r->cfg, "cmdline");
    if (child(dom, "bootloader"))
        note(r->cfg, "bootloader");
    return 0;
}

/* <controller type='xenbus' maxGrantFrames= maxEventChannels=>, as libvirt maps them. */
static int read_xenbus(struct rd *r, const xmlNode *devs)
{
    char type[32], v[VAL_MAX];
    uint64_t n;

    for (xmlNode *c = devs ? devs->children : NULL; c != NULL; c = c->next) {
        if (!is_elem(c, "controller") || value(r, c, "type", type, sizeof(type)) <= 0 ||
            strcmp(type, "xenbus") != 0)
            continue;
        if (value(r, c, "maxGrantFrames", v, sizeof(v)) > 0) {
            if (!number(v, 1, 4096, &n))
                return fail(r, c, "maxGrantFrames must be a number from 1 to 4096");
            r->cfg->max_grant_frames = (long)n;
        }
        if (value(r, c, "maxEventChannels", v, sizeof(v)) > 0) {
            if (!number(v, 1, 131072, &n))
                return fail(r, c, "maxEventChannels must be a number from 1 to 131072");
            r->cfg->max_event_channels = (long)n;
        }
    }
    return 0;
}

/* ---- devices, as xl specs ---- */

struct spec {
    char s[XLCFG_SPEC_MAX];
    size_t n;
    bool over;
};

static void spec_put(struct spec *sp, const char *key, const char *val)
{
    int w = snprintf(sp->s + sp->n, sizeof(sp->s) - sp->n, "%s%s=%s", sp->n ? "," : "", key, val);

    if (w < 0 || (size_t)w >= sizeof(sp->s) - sp->n)
        sp->over = true;
    else
        sp->n += (size_t)w;
}

/*
 * A value that goes into a spec as KEY=VALUE: a ',' would start another
 * item (the disk target, last, is the exception: xl takes the rest).
 */
static int spec_value(struct rd *r, const xmlNode *n, const char *what, const char *v)
{
    if (strchr(v, ',') != NULL)
        return fail(r, n, "%s '%s' holds a ',', which an xl spec cannot carry: rename it", what, v);
    return 0;
}

static int push_spec(struct rd *r, const xmlNode *n, char ***list, size_t *count,
                     const struct spec *sp)
{
    char **l;

    if (sp->over)
        return fail(r, n, "<%s> makes a spec longer than %d bytes", (const char *)n->name,
                    XLCFG_SPEC_MAX - 1);
    if (*count >= XLCFG_DEVS_MAX)
        return fail(r, n, "more than %d <%s> elements", XLCFG_DEVS_MAX, (const char *)n->name);
    if ((l = realloc(*list, (*count + 2) * sizeof(*l))) == NULL)
        return fail(r, NULL, "out of memory");
    *list = l;
    if ((l[*count] = strdup(sp->s)) == NULL)
        return fail(r, NULL, "out of memory");
    l[++*count] = NULL;
    return 0;
}

/* driver name -> backendtype, as xenFormatXLDisk: qemu is qdisk, tap and tap2 tap, phy phy. */
static const char *disk_backendtype(const char *driver)
{
    if (strcmp(driver, "qemu") == 0)
        return "qdisk";
    if (strcmp(driver, "tap") == 0 || strcmp(driver, "tap2") == 0)
        return "tap";
    if (strcmp(driver, "phy") == 0)
        return "phy";
    return NULL; /* "file" and others: libxl chooses, as libvirt leaves it to */
}

/* driver type -> format=; libvirt calls tap's raw "aio". */
static const char *disk_format(const char *type)
{
    static const char *const known[] = {"raw", "qcow", "qcow2", "vhd", "qed"};

    if (type[0] == '\0' || strcmp(type, "aio") == 0)
        return "raw";
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(type, known[i]) == 0)
            return known[i];
    return NULL;
}

/* The disk's source path into target ("" for an empty cdrom). */
static int disk_source(struct rd *r, const xmlNode *d, const char *type, char *target, size_t size)
{
    const xmlNode *src = child(d, "source");

    if (strcmp(type, "file") == 0)
        return value(r, src, "file", target, size) < 0 ? -1 : 0;
    if (strcmp(type, "block") == 0)
        return value(r, src, "dev", target, size) < 0 ? -1 : 0;
    if (strcmp(type, "network") == 0)
        return fail(r, d,
                    "<disk type='network'> is not served by the simulation (its backends "
                    "serve files and block devices): give <disk type='file'> or "
                    "<disk type='block'> inside the driver domain's storage");
    return fail(r, d,
                "<disk type='%s'> is not available in the simulation: use type='file' or "
                "type='block'",
                type);
}

static int read_disk(struct rd *r, const xmlNode *d)
{
    const xmlNode *drv = child(d, "driver");
    char type[32], device[32], dname[32], dtype[32], dev[32], target[DISKSPEC_TARGET_MAX];
    char backend[DISKSPEC_BACKEND_NAME_MAX];
    const char *fmt, *bt;
    struct spec sp = {.n = 0};

    if (value(r, d, "type", type, sizeof(type)) < 0 ||
        value(r, d, "device", device, sizeof(device)) < 0 ||
        value(r, drv, "name", dname, sizeof(dname)) < 0 ||
        value(r, drv, "type", dtype, sizeof(dtype)) < 0 ||
        value(r, child(d, "target"), "dev", dev, sizeof(dev)) < 0 ||
        value(r, child(d, "backenddomain"), "name", backend, sizeof(backend)) < 0)
        return -1;
    if (device[0] != '\0' && strcmp(device, "disk") != 0 && strcmp(device, "cdrom") != 0)
        return fail(r, d,
                    "<disk device='%s'> is not available in the simulation: use "
                    "device='disk' or device='cdrom'",
                    device);
    if (child(d, "transient") != NULL)
        return fail(r, d, "<transient/> disks are not available in the simulation: remove it");
    if ((fmt = disk_format(dtype)) == NULL)
        return fail(r, drv, "<driver type='%s'>: the format must be raw, qcow, qcow2, vhd or qed",
                    dtype);
    if (dev[0] == '\0')
        return fail(r, d, "<disk> has no <target dev='...'/>: name its vdev, e.g. xvda");
    if (disk_source(r, d, type[0] ? type : "file", target, sizeof(target)) != 0 ||
        spec_value(r, d, "target dev", dev) != 0 || spec_value(r, d, "backenddomain", backend))
        return -1;
    /* The order xenFormatXLDisk writes them in; target last, as xl wants it. */
    spec_put(&sp, "format", fmt);
    spec_put(&sp, "vdev", dev);
    spec_put(&sp, "access", child(d, "readonly") ? "ro" : "rw");
    if ((bt = disk_backendtype(dname)) != NULL)
        spec_put(&sp, "backendtype", bt);
    if (backend[0] != '\0')
        spec_put(&sp, "backend", backend);
    if (strcmp(device, "cdrom") == 0)
        spec_put(&sp, "devtype", "cdrom");
    if (target[0] != '\0')
        spec_put(&sp, "target", target);
    return push_spec(r, d, &r->cfg->disks, &r->cfg->ndisks, &sp);
}

/* The <ip> elements as xl's ip=: addresses, with /prefix, single spaces. */
static int vif_ips(struct rd *r, const xmlNode *i, char *out, size_t size)
{
    char addr[VAL_MAX], prefix[16];
    size_t n = 0;

    out[0] = '\0';
    for (xmlNode *c = i->children; c != NULL; c = c->next) {
        int w;
        if (!is_elem(c, "ip"))
            continue;
        if (value(r, c, "address", addr, sizeof(addr)) < 0 ||
            value(r, c, "prefix", prefix, sizeof(prefix)) < 0)
            return -1;
        w = snprintf(out + n, size - n, "%s%s%s%s", n ? " " : "", addr, prefix[0] ? "/" : "",
                     prefix);
        if (w < 0 || (size_t)w >= size - n)
            return fail(r, c, "the <ip> addresses are longer than %zu bytes together", size - 1);
        n += (size_t)w;
    }
    return 0;
}

/*
 * <source bridge=> and a single <vlan><tag id=>, which libvirt writes as
 * xl's bridge=NAME.TAG; an openvswitch <virtualport> gives the script
 * vif-openvswitch when none is named, as xenFormatNet does.
 */
static int vif_bridge(struct rd *r, const xmlNode *i, char *bridge, size_t size, char *script,
                      size_t ssize)
{
    const xmlNode *vlan = child(i, "vlan"), *vp = child(i, "virtualport");
    char tag[16], vptype[32];
    size_t n;

    if (value(r, child(i, "source"), "bridge", bridge, size) < 0)
        return -1;
    if (bridge[0] == '\0')
        return fail(r, i,
                    "<interface type='bridge'> has no <source bridge='...'/>: name the "
                    "bridge in the driver domain (or dom0)");
    if (vlan != NULL) {
        const xmlNode *t = child(vlan, "tag");
        int tags = 0;
        for (const xmlNode *c = vlan->children; c != NULL; c = c->next)
            tags += is_elem(c, "tag");
        if (t == NULL || tags != 1 || value(r, t, "id", tag, sizeof(tag)) <= 0 ||
            (n = strlen(bridge)) + 1 + strlen(tag) >= size)
            return fail(r, vlan, "<vlan> takes one <tag id='N'/> here (xl's bridge=NAME.TAG)");
        snprintf(bridge + n, size - n, ".%s", tag);
    }
    if (vp != NULL && value(r, vp, "type", vptype, sizeof(vptype)) > 0 &&
        strcmp(vptype, "openvswitch") == 0 && script[0] == '\0')
        snprintf(script, ssize, "vif-openvswitch");
    return 0;
}

static int read_interface(struct rd *r, const xmlNode *i)
{
    const xmlNode *out = child(child(i, "bandwidth"), "outbound");
    char type[32], mac[32], bridge[VAL_MAX] = "", script[VAL_MAX], model[VAL_MAX];
    char ifname[VAL_MAX], ips[VAL_MAX], avg[32], mtu[16], backend[64], rate[48];
    struct spec sp = {.n = 0};

    if (value(r, i, "type", type, sizeof(type)) < 0 ||
        value(r, child(i, "mac"), "address", mac, sizeof(mac)) < 0 ||
        value(r, child(i, "script"), "path", script, sizeof(script)) < 0 ||
        value(r, child(i, "model"), "type", model, sizeof(model)) < 0 ||
        value(r, child(i, "target"), "dev", ifname, sizeof(ifname)) < 0 ||
        value(r, out, "average", avg, sizeof(avg)) < 0 ||
        value(r, child(i, "mtu"), "size", mtu, sizeof(mtu)) < 0 ||
        value(r, child(i, "backenddomain"), "name", backend, sizeof(backend)) < 0 ||
        vif_ips(r, i, ips, sizeof(ips)) != 0)
        return -1;
    if (strcmp(type, "bridge") == 0) {
        if (vif_bridge(r, i, bridge, sizeof(bridge), script, sizeof(script)) != 0)
            return -1;
    } else if (strcmp(type, "network") == 0) {
        return fail(r, i,
                    "<interface type='network'> needs libvirt's networks, which the "
                    "simulation has not: use <interface type='bridge'> with <source "
                    "bridge='...'/>");
    } else if (strcmp(type, "ethernet") != 0) {
        return fail(r, i,
                    "<interface type='%s'> is not available in the simulation: use "
                    "type='bridge' or type='ethernet'",
                    type);
    }
    if (spec_value(r, i, "mac", mac) || spec_value(r, i, "bridge", bridge) ||
        spec_value(r, i, "script", script) || spec_value(r, i, "model", model) ||
        spec_value(r, i, "target dev", ifname) || spec_value(r, i, "backenddomain", backend))
        return -1;
    /* The order xenFormatNet writes them in. */
    if (mac[0] != '\0')
        spec_put(&sp, "mac", mac);
    if (bridge[0] != '\0')
        spec_put(&sp, "bridge", bridge);
    if (ips[0] != '\0')
        spec_put(&sp, "ip", ips);
    if (script[0] != '\0')
        spec_put(&sp, "script", script);
    /* A PV guest's netfront is what xl calls type=vif (libvirt's xlconfigdata: vif-typename). */
    if (strcmp(model, "netfront") == 0)
        spec_put(&sp, "type", "vif");
    else if (model[0] != '\0')
        spec_put(&sp, "model", model);
    if (ifname[0] != '\0')
        spec_put(&sp, "vifname", ifname);
    if (avg[0] != '\0') {
        /* libvirt's average is in KiB/s, which libvirt writes as xl's KB/s. */
        snprintf(rate, sizeof(rate), "%sKB/s", avg);
        spec_put(&sp, "rate", rate);
    }
    if (mtu[0] != '\0')
        spec_put(&sp, "mtu", mtu);
    if (backend[0] != '\0')
        spec_put(&sp, "backend", backend);
    return push_spec(r, i, &r->cfg->vifs, &r->cfg->nvifs, &sp);
}

static int read_devices(struct rd *r, const xmlNode *devs)
{
    for (xmlNode *c = devs ? devs->children : NULL; c != NULL; c = c->next) {
        if (is_elem(c, "disk") && read_disk(r, c) != 0)
            return -1;
        if (is_elem(c, "interface") && read_interface(r, c) != 0)
            return -1;
    }
    return 0;
}

/* ---- the document ---- */

struct firsterr {
    char msg[512];
    char elem[64];
    int line;
    bool set;
};

/* libxml2's structured error callback: keeps the first error, which names the cause. */
static void keep_first(void *arg, xmlErrorPtr e)
{
    struct firsterr *f = arg;
    const xmlNode *n = e != NULL ? e->node : NULL;

    if (f->set || e == NULL || e->level < XML_ERR_ERROR)
        return;
    f->set = true;
    snprintf(f->msg, sizeof(f->msg), "%s", e->message ? e->message : "invalid");
    f->msg[strcspn(f->msg, "\n")] = '\0';
    f->line = e->line;
    if (n != NULL && n->type == XML_ELEMENT_NODE) {
        snprintf(f->elem, sizeof(f->elem), "%s", (const char *)n->name);
        if (f->line <= 0)
            f->line = (int)xmlGetLineNo(n);
    }
}

static char cached_path[4096];
static xmlRelaxNGPtr cached_schema;

/* domain.rng compiled, kept for the next call with the same path. */
static xmlRelaxNGPtr load_schema(const char *path, char *err, size_t errlen)
{
    struct firsterr fe = {.set = false};
    xmlRelaxNGParserCtxtPtr pc;
    xmlRelaxNGPtr s = NULL;

    if (cached_schema != NULL && strcmp(cached_path, path) == 0)
        return cached_schema;
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen,
                 "cannot read libvirt's schema %s: %s: install libvirt0 "
                 "(apt-get install libvirt0) or set BULKHEAD_DOMAIN_RNG",
                 path, strerror(errno));
        return NULL;
    }
    if ((pc = xmlRelaxNGNewParserCtxt(path)) != NULL) {
        xmlRelaxNGSetParserStructuredErrors(pc, keep_first, &fe);
        s = xmlRelaxNGParse(pc);
        xmlRelaxNGFreeParserCtxt(pc);
    }
    if (s == NULL) {
        snprintf(err, errlen, "libvirt's schema %s does not compile (%s): reinstall libvirt0", path,
                 fe.set ? fe.msg : "out of memory");
        xlcfg_one_line(err);
        return NULL;
    }
    if (cached_schema != NULL)
        xmlRelaxNGFree(cached_schema);
    cached_schema = s;
    snprintf(cached_path, sizeof(cached_path), "%s", path);
    return s;
}

/* 0 if doc follows the schema, 1 if not, -1 out of memory; the first error into *fe. */
static int valid(xmlRelaxNGPtr s, xmlDocPtr doc, struct firsterr *fe)
{
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(s);
    int r;

    if (vc == NULL)
        return -1;
    xmlRelaxNGSetValidStructuredErrors(vc, keep_first, fe);
    r = xmlRelaxNGValidateDoc(vc, doc);
    xmlRelaxNGFreeValidCtxt(vc);
    return r == 0 ? 0 : r > 0 ? 1 : -1;
}

/*
 * Which element breaks the schema.  libxml2 reports an invalid device
 * inside libvirt's <interleave>s as "Extra element devices in interleave"
 * on <domain>, which names nothing a user can fix; so the document is
 * tried without each child element in turn: the one whose removal makes it
 * valid is the culprit, and its own children are tried the same way.
 * Bounded (*budget validations) so that a hostile file cannot make it slow.
 */
static xmlNode *culprit(xmlRelaxNGPtr s, xmlDocPtr doc, xmlNode *node, int depth, int *budget)
{
    for (xmlNode *c = node->children; c != NULL && *budget > 0; c = c->next) {
        struct firsterr fe = {.set = false};
        xmlNode *next = c->next, *deeper;
        int r;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        xmlUnlinkNode(c);
        (*budget)--;
        r = valid(s, doc, &fe);
        if (next != NULL)
            xmlAddPrevSibling(next, c);
        else
            xmlAddChild(node, c);
        if (r == 0) {
            deeper = depth < 4 ? culprit(s, doc, c, depth + 1, budget) : NULL;
            return deeper != NULL ? deeper : c;
        }
    }
    return NULL;
}

static int validate(xmlDocPtr doc, const char *file, const char *schema, char *err, size_t errlen)
{
    struct firsterr fe = {.set = false};
    xmlNode *bad;
    xmlRelaxNGPtr s;
    int r, budget = 64;

    if ((s = load_schema(schema, err, errlen)) == NULL)
        return -1;
    if ((r = valid(s, doc, &fe)) == 0)
        return 0;
    if (r < 0) {
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    if ((bad = culprit(s, doc, xmlDocGetRootElement(doc), 0, &budget)) != NULL)
        snprintf(err, errlen,
                 "%s:%ld: <%s>%s%s%s does not follow libvirt's domain.rng: check "
                 "its attributes, values and children against libvirt's formatdomain page",
                 file, xmlGetLineNo(bad), (const char *)bad->name,
                 bad->parent && bad->parent->type == XML_ELEMENT_NODE ? " in <" : "",
                 bad->parent && bad->parent->type == XML_ELEMENT_NODE
                     ? (const char *)bad->parent->name
                     : "",
                 bad->parent && bad->parent->type == XML_ELEMENT_NODE ? ">" : "");
    else
        snprintf(err, errlen,
                 "%s:%d: <%s> does not follow libvirt's domain.rng (%s): fix it as "
                 "libvirt's formatdomain page describes",
                 file, fe.line, fe.elem[0] ? fe.elem : "domain", fe.set ? fe.msg : "invalid");
    xlcfg_one_line(err);
    return -1;
}

static int read_domain(struct rd *r, const xmlNode *dom)
{
    char type[32], name[XLCFG_NAME_MAX + 1];
    int got;

    if (value(r, dom, "type", type, sizeof(type)) < 0)
        return -1;
    if (strcmp(type, "xen") != 0)
        return fail(r, dom,
                    "<domain type='%s'>: Bulkhead runs Xen guests: write <domain "
                    "type='xen'>",
                    type);
    if ((got = value(r, child(dom, "name"), NULL, name, sizeof(name))) < 0)
        return -1;
    if (got == 0 || name[0] == '\0')
        return fail(r, dom, "no name: add <name>NAME</name>");
    if (strlen(name) >= XLCFG_NAME_MAX)
        return fail(r, child(dom, "name"), "name is longer than %d characters", XLCFG_NAME_MAX - 1);
    snprintf(r->cfg->name, sizeof(r->cfg->name), "%s", name);
    r->cfg->vbd_persistent = -1;
    if (read_memory(r, dom) != 0 || read_vcpus(r, dom) != 0 || read_os(r, dom) != 0)
        return -1;
    return read_xenbus(r, child(dom, "devices")) != 0 ? -1 : read_devices(r, child(dom, "devices"));
}

bool domxml_is_xml(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')
            continue;
        return data[i] == '<';
    }
    return false;
}

int domxml_read(struct xlcfg *cfg, const char *file, const char *data, size_t len,
                const char *schema, char *err, size_t errlen)
{
    struct rd r = {.cfg = cfg, .file = file, .err = err, .errlen = errlen};
    struct firsterr fe = {.set = false};
    xmlDocPtr doc = NULL;
    xmlNode *root;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    if (schema == NULL && ((schema = getenv("BULKHEAD_DOMAIN_RNG")) == NULL || !schema[0]))
        schema = DOMXML_SCHEMA_DEFAULT;
    if (len > DOMXML_MAX_BYTES || len > INT32_MAX) {
        snprintf(err, errlen, "%s: larger than %u bytes: is it a libvirt domain?", file,
                 DOMXML_MAX_BYTES);
        return -1;
    }
    xmlInitParser();
    /*
     * NONET: no fetching; no NOENT, DTDLOAD or DTDATTR: entities stay
     * references and no external subset is read; a DOCTYPE is refused below.
     */
    xmlSetStructuredErrorFunc(&fe, keep_first);
    doc = xmlReadMemory(data, (int)len, file, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                            XML_PARSE_NOCDATA);
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (doc == NULL) {
        snprintf(err, errlen, "%s:%d: not well-formed XML (%s): fix the syntax", file, fe.line,
                 fe.set ? fe.msg : "empty");
        xlcfg_one_line(err);
        goto out;
    }
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        snprintf(err, errlen, "%s: a <!DOCTYPE>: libvirt domain XML has none: remove it", file);
        goto out;
    }
    if ((root = xmlDocGetRootElement(doc)) == NULL || !is_elem(root, "domain")) {
        snprintf(err, errlen,
                 "%s: the root element is not <domain>: give a libvirt domain XML "
                 "(virsh dumpxml) or an xl config",
                 file);
        goto out;
    }
    if (validate(doc, file, schema, err, errlen) != 0)
        goto out;
    if ((rc = read_domain(&r, root)) != 0)
        xlcfg_free(cfg);
out:
    xmlFreeDoc(doc);
    return rc;
}

int domcfg_read(struct xlcfg *cfg, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "re");
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;

    memset(cfg, 0, sizeof(*cfg));
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read it: %s", file, strerror(errno));
        return -1;
    }
    if ((buf = malloc(DOMXML_MAX_BYTES + 1)) != NULL)
        n = fread(buf, 1, DOMXML_MAX_BYTES + 1, f);
    if (buf == NULL || ferror(f))
        snprintf(err, errlen, "%s: cannot read it: %s", file, strerror(errno ? errno : EIO));
    else if (n > DOMXML_MAX_BYTES)
        snprintf(err, errlen, "%s: larger than %u bytes: is it a domain config?", file,
                 DOMXML_MAX_BYTES);
    else if (domxml_is_xml(buf, n))
        rc = domxml_read(cfg, file, buf, n, NULL, err, errlen);
    else
        rc = xlcfg_read(cfg, file, buf, n, err, errlen);
    fclose(f);
    free(buf);
    return rc;
}
